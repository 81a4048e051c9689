"""One server process: start pinned, wait for its ready line, probe it, stop it.

Nothing here raises for a misbehaving server: start() and probe() return a reason string on
failure, and stop() reports how the server ended, so the harness records a failed point and
goes on.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from . import procfs

# docs/architecture.md §2: the exact bytes of the response to GET /.
EXPECTED_ROOT = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                 b"Hello, World!")
# A Python framework on a busy machine takes seconds to import; CMBENCH_READY_TIMEOUT (seconds)
# overrides it (the harness's own tests, whose stand-in servers share a loaded CI machine).
READY_TIMEOUT_S = float(os.environ.get("CMBENCH_READY_TIMEOUT") or 10.0)
STOP_TIMEOUT_S = 3.0   # the contract says 2 s; one more before we call it unclean


def _complete(data: bytes) -> bool:
    """Whether data holds a whole response (head plus Content-Length bytes of body)."""
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            try:
                return len(body) >= int(value.strip())
            except ValueError:
                return True
    return True


# docs/architecture.md §3: servers are started with deadlines longer than any run, so the harness's held
# idle connections and slow clients are never cut by the server's own timeouts.
DEADLINE_ARGS = ["--idle-timeout", "60m", "--header-timeout", "60m"]
EXIT_UNSUPPORTED = 3   # docs/architecture.md §3: the kernel lacks the model's mechanism (e.g. io_uring)


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for reference servers, which need one named)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _same_service(got: bytes) -> bool:
    """Status 200 and the 13-byte body of GET /, whatever the other headers."""
    head, _, body = got.partition(b"\r\n\r\n")
    return head.startswith(b"HTTP/1.1 200 ") and body == b"Hello, World!"


class Server:
    """One server process. `cpus` pins it (children inherit); `cgroup` (cgroup.Group) puts it,
    and so every process it forks, into the group before exec. `argv`, when given, replaces the
    usual build/bin command line (reference servers: they print no ready line, so start()
    waits until `port` accepts)."""

    def __init__(self, model: str, binary: Path | None, cpus: list[int] | None,
                 extra_args: list[str] | None = None, cgroup=None, argv: list[str] | None = None,
                 port: int = 0, deadline_args: bool = True):
        self.model = model
        self.binary = Path(binary) if binary is not None else None
        # A bare CPU number (the older `cpu` argument) means that one CPU; `list(cpus) if cpus`
        # alone would turn CPU 0 into "not pinned" without a word.
        if isinstance(cpus, int):
            cpus = [cpus]
        self.cpus = list(cpus) if cpus else None
        self.extra_args = extra_args or []
        self.cgroup = cgroup
        self.argv = argv
        self.proc: subprocess.Popen | None = None
        self.host = "127.0.0.1"
        self.port = port
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self.exit_code: int | None = None
        self.deadline_args = deadline_args
        self.notes: list[str] = []
        self.unsupported: str | None = None   # the one-line reason of an exit 3
        self.probe_response = b""

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def url(self, path: str = "/") -> str:
        return f"http://{self.host}:{self.port}{path}"

    def _spawn(self, cmd: list[str]) -> str | None:
        cpus, group = self.cpus, self.cgroup

        def pin():   # runs in the child between fork and exec; no threads run in the harness now
            if cpus:
                os.sched_setaffinity(0, set(cpus))
            if group is not None:
                group.add_self()   # every process the server forks is born in its cgroup
            # A process model's children share this group; the harness still signals by pid.
            os.setpgid(0, 0)

        for f in (self._out, self._err):
            f.seek(0)
            f.truncate()
        try:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self._out,
                                         stderr=self._err, preexec_fn=pin, close_fds=True)
        except (OSError, subprocess.SubprocessError) as e:
            return f"cannot start {cmd[0]}: {e}"
        return None

    def start(self) -> str | None:
        """Starts the server and waits until it is ready. Returns None when ready, else why not
        (and sets `unsupported` when the model exited 3: a skip, not a failure)."""
        if self.argv is not None:
            return self._start_reference()
        if self.binary is None or not self.binary.exists():
            return f"binary not found: {self.binary}"
        base = [str(self.binary), "--host", "127.0.0.1", "--port", "0", *self.extra_args]
        why = self._start_cmd(base + (DEADLINE_ARGS if self.deadline_args else []))
        if why is not None and self.deadline_args and self.exit_code == 2:
            # A server built before the deadline flags existed rejects them (exit 2, usage):
            # run it without, and say so in the record.
            self.notes.append("server rejected " + " ".join(DEADLINE_ARGS) +
                              " (exit 2); started with its default deadlines")
            self.exit_code = None
            why = self._start_cmd(base)
        return why

    def _start_cmd(self, cmd: list[str]) -> str | None:
        why = self._spawn(cmd)
        if why:
            return why
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            line = self._first_line()
            if line:
                if not line.startswith("listening on "):
                    return f"unexpected first line: {line[:120]!r}"
                host, _, port = line[len("listening on "):].strip().rpartition(":")
                try:
                    self.port = int(port)
                except ValueError:
                    return f"bad ready line: {line[:120]!r}"
                self.host = host.strip("[]") or "127.0.0.1"
                return None
            if self.proc.poll() is not None:
                self.exit_code = self.proc.returncode
                tail = self.stderr_tail()
                if self.proc.returncode == EXIT_UNSUPPORTED:
                    self.unsupported = (tail.splitlines() or ["exit 3 without a reason"])[-1][:300]
                return f"exited with code {self.proc.returncode} before its ready line: {tail}"
            time.sleep(0.005)
        return f"no ready line within {READY_TIMEOUT_S:.0f} s ({self._doing()})"

    def _start_reference(self) -> str | None:
        why = self._spawn(list(self.argv or []))
        if why:
            return why
        assert self.proc is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.exit_code = self.proc.returncode
                return f"exited with code {self.proc.returncode} before accepting: {self.stderr_tail()}"
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return None
            except OSError:
                time.sleep(0.02)
        return f"port {self.port} did not accept within {READY_TIMEOUT_S:.0f} s"

    def _doing(self) -> str:
        """What a server that printed no ready line was doing: its state and CPU so far."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
            ticks = os.sysconf("SC_CLK_TCK")
            cpu = (int(fields[11]) + int(fields[12])) / ticks
            tail = self.stderr_tail(200).replace("\n", " | ")
            return f"state {fields[0]}, {cpu:.2f} s CPU" + (f", stderr: {tail}" if tail else "")
        except (OSError, IndexError, ValueError):
            return "its /proc entry is gone"

    def _first_line(self) -> str | None:
        self._out.seek(0)
        data = self._out.read(4096)
        if b"\n" not in data:
            return None
        return data.split(b"\n", 1)[0].decode("utf-8", "replace")

    def stderr_tail(self, limit: int = 2000) -> str:
        try:
            self._err.seek(0, os.SEEK_END)
            size = self._err.tell()
            self._err.seek(max(0, size - limit))
            return self._err.read().decode("utf-8", "replace").strip()
        except (OSError, ValueError):
            return ""

    def probe(self, timeout_s: float = 2.0) -> str | None:
        """One GET / over a fresh connection; the response must be exactly §2's bytes."""
        got = b""
        try:
            with socket.create_connection((self.host, self.port), timeout=timeout_s) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n")
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline and not _complete(got):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
        except OSError as e:
            if not got:
                return f"probe failed: {e}"
        self.probe_response = got
        if got == EXPECTED_ROOT:
            return None
        if self.argv is not None and _same_service(got):
            # A reference server (nginx, apache) adds headers our models do not send (Server,
            # Date, ...): it serves the same thing, not the same bytes. Recorded, not a failure;
            # the report compares like for like.
            head = got.partition(b"\r\n\r\n")[0]
            self.notes.append(f"reference server's response to GET / differs from docs/architecture.md §2's "
                              f"bytes: {head[:300]!r}")
            return None
        return f"probe got unexpected bytes: {got[:200]!r}"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, known_pids: dict[int, int] | None = None) -> dict:
        """SIGTERM, wait for exit; reports exit code, time to exit, and any descendant still
        alive afterwards (which is then killed by pid)."""
        out = {"exit_code": None, "stop_s": None, "clean": False, "leftover": [], "signal": None}
        if self.proc is None:
            return out
        t0 = time.monotonic()
        already = self.proc.poll() is not None
        if self.cgroup is not None:
            # What is measured is over: a capped server stopping thousands of children must not
            # be throttled while it does (the stop timeout is about the server, not the quota).
            self.cgroup.uncap()
        if not already:
            try:
                self.proc.send_signal(signal.SIGTERM)   # by PID, never by name
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                out["signal"] = "SIGKILL after timeout"
                self.proc.kill()
                try:
                    self.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    # Not even SIGKILL ended it in 30 s (a process in uninterruptible sleep):
                    # recorded, never a crash of the whole run.
                    out["signal"] = "did not exit 30 s after SIGKILL"
                    out["stop_s"] = round(time.monotonic() - t0, 4)
                    return out
        out["stop_s"] = round(time.monotonic() - t0, 4)
        rc = self.proc.returncode
        out["exit_code"] = rc
        self.exit_code = rc
        # Descendants that outlived the server: a process model must leave none behind.
        leftovers = []
        candidates = dict(known_pids or {})
        candidates.update(procfs.process_group(self.proc.pid))
        for pid, start in candidates.items():
            if pid == self.proc.pid:
                continue
            st = procfs.proc_stat(pid)
            if st is not None and st.starttime == start and st.state != "Z":
                leftovers.append(pid)
        if leftovers:
            time.sleep(0.2)   # they may be on their way out
            leftovers = [p for p in leftovers if (st := procfs.proc_stat(p)) is not None
                         and st.starttime == candidates.get(p) and st.state != "Z"]
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        out["leftover"] = leftovers
        out["clean"] = (rc == 0 and not already and out["signal"] is None and not leftovers)
        return out

    def close(self) -> None:
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass
