"""Plumbing for the conformance suite: start a server binary, talk to it over real sockets,
watch its process tree in /proc, and spell out the exact response bytes of docs/architecture.md §2.

Standard library only; runs with Debian's /usr/bin/python3.
"""

from __future__ import annotations

import os
import re
import resource
import select
import signal
import socket
import subprocess
import tempfile
import time

# Sanitized builds (make sanitize / make tsan) are several times slower: same checks, looser clocks.
SANITIZED = os.environ.get("CMBENCH_SANITIZED", "") not in ("", "0")
SLOW = 4.0 if SANITIZED else 1.0

READY_RE = re.compile(r"^listening on (\S+):(\d+)$")


class CheckFailed(Exception):
    """A conformance violation: the message says what was expected and what was seen."""


class ModelUnavailable(Exception):
    """The server exited 3 before its ready line: this kernel lacks its mechanism (docs/architecture.md §3,
    e.g. uring without io_uring). The check is skipped with the server's reason, never passed."""


EXIT_UNAVAILABLE = 3


def require(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def log(message: str) -> None:
    print(message, flush=True)


def show(data: bytes, limit: int = 300) -> str:
    """A bytes value short enough for a failure message."""
    if len(data) <= limit:
        return repr(data)
    return f"{data[:limit]!r}... ({len(data)} bytes)"


def first_difference(expected: bytes, got: bytes) -> str:
    n = min(len(expected), len(got))
    i = next((k for k in range(n) if expected[k] != got[k]), n)
    lo = max(0, i - 40)
    return (f"first difference at byte {i}: expected {show(expected[lo:i + 80])}, "
            f"got {show(got[lo:i + 80])} (lengths {len(expected)} vs {len(got)})")


# --- the protocol, spelled out from docs/architecture.md §2 ------------------------------------------------

REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
    408: "Request Timeout", 413: "Content Too Large", 431: "Request Header Fields Too Large", 501: "Not Implemented",
    503: "Service Unavailable",
}


def response(status: int, content_type: str, body: bytes, *, allow: bool = False,
             connection: str | None = None, head_only: bool = False) -> bytes:
    """Exact response bytes: status line, Content-Type, Content-Length, Allow, Connection."""
    head = f"HTTP/1.1 {status} {REASONS[status]}\r\n"
    head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    if allow:
        head += "Allow: GET, HEAD, POST\r\n"
    if connection:
        head += f"Connection: {connection}\r\n"
    head += "\r\n"
    return head.encode() + (b"" if head_only else body)


def ok_text(body: bytes, **kw) -> bytes:
    return response(200, "text/plain", body, **kw)


def ok_octets(body: bytes, **kw) -> bytes:
    return response(200, "application/octet-stream", body, **kw)


def error(status: int, head_only: bool = False) -> bytes:
    """Errors that end the connection: text/plain, reason as body, Connection: close."""
    return response(status, "text/plain", REASONS[status].encode(), connection="close",
                    head_only=head_only)


def not_found(**kw) -> bytes:
    return response(404, "text/plain", b"Not Found", **kw)


def not_allowed(**kw) -> bytes:
    return response(405, "text/plain", b"Method Not Allowed", allow=True, **kw)


HELLO = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
GET_ROOT = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def get(target: str, version: str = "1.1", headers: str = "", method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/{version}\r\nHost: t\r\n{headers}\r\n".encode()


def post_echo(body: bytes, headers: str = "") -> bytes:
    return (f"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{headers}\r\n"
            .encode() + body)


# --- sockets ----------------------------------------------------------------------------------

def connect(server: "Server", timeout: float = 5.0, rcvbuf: int | None = None) -> socket.socket:
    family = socket.AF_INET6 if ":" in server.host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.settimeout(timeout * SLOW)
    s.connect((server.host, server.port))
    return s


def reset_close(s: socket.socket) -> None:
    """Close with SO_LINGER 0: the kernel sends RST instead of FIN."""
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()


def recv_exact(s: socket.socket, n: int, what: str, timeout: float = 5.0) -> bytes:
    """Exactly n bytes, or CheckFailed with what did arrive (EOF, reset or timeout)."""
    deadline = time.monotonic() + timeout * SLOW
    chunks, have = [], 0
    while have < n:
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise socket.timeout()
            s.settimeout(left)
            chunk = s.recv(min(n - have, 1 << 20))
        except socket.timeout:
            got = b"".join(chunks)
            raise CheckFailed(f"{what}: timed out after {have} of {n} bytes: {show(got)}") from None
        except ConnectionResetError:
            got = b"".join(chunks)
            raise CheckFailed(f"{what}: connection reset after {have} of {n} bytes: {show(got)}") from None
        if not chunk:
            got = b"".join(chunks)
            raise CheckFailed(f"{what}: EOF after {have} of {n} bytes: {show(got)}")
        chunks.append(chunk)
        have += len(chunk)
    return b"".join(chunks)


def expect_eof(s: socket.socket, what: str, timeout: float = 3.0) -> None:
    """The server closes cleanly (FIN, no extra bytes, no reset) after its final response."""
    deadline = time.monotonic() + timeout * SLOW
    extra = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise CheckFailed(f"{what}: connection still open {timeout * SLOW:.1f}s after the final "
                              f"response (expected EOF); extra bytes: {show(extra)}")
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            raise CheckFailed(f"{what}: connection reset instead of a clean close") from None
        if not chunk:
            require(not extra, f"{what}: unexpected bytes after the response: {show(extra)}")
            return
        extra += chunk


def expect_response(s: socket.socket, expected: bytes, what: str, close: bool = False,
                    timeout: float = 5.0) -> None:
    got = recv_exact(s, len(expected), what, timeout)
    if got != expected:
        raise CheckFailed(f"{what}: wrong response bytes; {first_difference(expected, got)}\n"
                          f"  expected {show(expected)}\n  got      {show(got)}")
    if close:
        expect_eof(s, what)


def exchange(server: "Server", request: bytes, expected: bytes, what: str, close: bool = False) -> None:
    """One request on a fresh connection; afterwards either EOF or a working keep-alive."""
    with connect(server) as s:
        s.sendall(request)
        expect_response(s, expected, what, close)
        if not close:
            s.sendall(GET_ROOT)
            expect_response(s, HELLO, f"{what}: follow-up GET / on the same connection")


def nothing_arrives(s: socket.socket, wait: float) -> bytes:
    """Bytes that arrive within `wait` seconds (empty if none); EOF also counts as nothing."""
    r, _, _ = select.select([s], [], [], wait)
    if not r:
        return b""
    s.setblocking(False)
    try:
        return s.recv(65536)
    except (BlockingIOError, ConnectionResetError):
        return b""
    finally:
        s.setblocking(True)


# --- the server process ------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 is the state), or None."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return data[data.rindex(")") + 2:].split()


def children_of(pid: int) -> dict[int, str]:
    """Direct children of pid and their state letter (R, S, Z, ...)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = proc_stat(int(name))
        if st and int(st[1]) == pid:
            out[int(name)] = st[0]
    return out


def fd_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        return -1


def thread_count(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/task"))
    except FileNotFoundError:
        return -1


def live_cpu_seconds(pid: int) -> float:
    """CPU of every live thread of pid, in nanoseconds from /proc/PID/task/*/schedstat (tick
    counts in /proc/PID/stat are too coarse for short intervals), plus its reaped children."""
    total_ns = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return 0.0
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total_ns += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            pass
    st = proc_stat(pid)
    reaped = (int(st[13]) + int(st[14])) / CLK_TCK if st else 0.0
    return total_ns / 1e9 + reaped


def tree_cpu_seconds(pid: int) -> float:
    """CPU of the server and its live children (fork model), reaped ones included."""
    return live_cpu_seconds(pid) + sum(live_cpu_seconds(c) for c in children_of(pid))


class Server:
    """A server binary started with --port 0; stopped (SIGTERM, then SIGKILL) on exit."""

    def __init__(self, bin_dir: str, model: str, args: tuple[str, ...] = (),
                 nofile: int | None = None, host: str = "127.0.0.1"):
        self.model = model
        self.path = os.path.join(bin_dir, f"server-{model}")
        self.args = args
        self.nofile = nofile
        self.host_arg = host
        self.proc: subprocess.Popen | None = None
        self.host = ""
        self.port = 0
        self.ready_line = ""
        self.stdout_rest = b""
        self.stderr_file = tempfile.TemporaryFile()
        self.known_children: set[int] = set()

    def __enter__(self) -> "Server":
        self.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.kill()
        if exc_type is not None:  # a failing check: show what the server said
            err = self.stderr_text()
            if err:
                log(f"server-{self.model} stderr (last 1000 chars):\n{err[-1000:]}")
        self.stderr_file.close()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        require(os.access(self.path, os.X_OK), f"{self.path} is missing (build server-{self.model})")
        limit = self.nofile

        def set_limits() -> None:
            if limit is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

        self.proc = subprocess.Popen(
            [self.path, "--host", self.host_arg, "--port", "0", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.stderr_file,
            preexec_fn=set_limits, close_fds=True)
        line = self._read_ready_line(10.0 * SLOW)
        m = READY_RE.match(line)
        require(m is not None, f"server-{self.model}: bad ready line {line!r} "
                               f"(stderr: {self.stderr_text()[-500:]!r})")
        self.ready_line = line
        self.host = m.group(1).strip("[]")
        self.port = int(m.group(2))

    def _read_ready_line(self, timeout: float) -> str:
        assert self.proc and self.proc.stdout
        fd = self.proc.stdout.fileno()
        data = b""
        deadline = time.monotonic() + timeout
        while b"\n" not in data:
            left = deadline - time.monotonic()
            r, _, _ = select.select([fd], [], [], max(0.0, left))
            if not r:
                raise CheckFailed(f"server-{self.model}: no ready line within {timeout:.0f}s "
                                  f"(stderr: {self.stderr_text()[-500:]!r})")
            chunk = os.read(fd, 4096)
            if not chunk:
                status = self.proc.wait()
                if status == EXIT_UNAVAILABLE:
                    raise ModelUnavailable(self.stderr_text().strip().splitlines()[-1:] or
                                           [f"server-{self.model} exited 3"])
                raise CheckFailed(f"server-{self.model}: exited before its ready line, status "
                                  f"{status} (stderr: {self.stderr_text()[-500:]!r})")
            data += chunk
        line, _, self.stdout_rest = data.partition(b"\n")
        return line.decode(errors="replace")

    def stderr_text(self) -> str:
        self.stderr_file.flush()
        self.stderr_file.seek(0)
        return self.stderr_file.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def children(self) -> dict[int, str]:
        kids = children_of(self.pid)
        self.known_children.update(kids)
        return kids

    def fds(self) -> int:
        # The whole tree's: a pre-forked worker (prefork) holds its connections, not the parent.
        return fd_count(self.pid) + sum(max(0, fd_count(c)) for c in self.children())

    def threads(self) -> int:
        return thread_count(self.pid)

    def sanitizer_threads(self) -> int:
        """Threads the sanitizer runtime adds to the process (TSan runs one of its own; ASan
        and a Release build none), so that thread-count checks hold in every build."""
        try:
            with open(f"/proc/{self.pid}/maps") as f:
                return 1 if "libtsan" in f.read() else 0
        except OSError:
            return 0

    def cpu(self) -> float:
        return tree_cpu_seconds(self.pid)

    def stop(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM; returns (exit status or None if still running after timeout, seconds taken)."""
        assert self.proc is not None
        self.children()  # remember them: they must go too
        t0 = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None, time.monotonic() - t0
        return status, time.monotonic() - t0

    def remaining_stdout(self) -> bytes:
        assert self.proc and self.proc.stdout
        rest = self.stdout_rest + self.proc.stdout.read()
        self.stdout_rest = b""
        return rest

    def kill(self) -> None:
        """Best-effort cleanup of what this harness started: the server and its children."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in self.known_children:
            st = proc_stat(pid)
            if st and st[0] != "Z" and "server-" in _comm(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.proc.stdout:
            self.proc.stdout.close()


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except FileNotFoundError:
        return ""


def wait_until(predicate, timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout * SLOW
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def settle(server: Server, timeout: float = 3.0) -> tuple[int, int, int]:
    """Waits until fds, threads and live children stop changing; returns them."""
    def snapshot():
        return server.fds(), server.threads(), len(server.children())

    last = snapshot()
    stable_since = time.monotonic()
    deadline = time.monotonic() + timeout * SLOW
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = snapshot()
        if now != last:
            last, stable_since = now, time.monotonic()
        elif time.monotonic() - stable_since >= 0.2:
            break
    return last
