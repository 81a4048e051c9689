"""The industrial reference rows (docs/architecture.md §5, issue 9): nginx, lighttpd, apache-event and
apache-prefork, started from the configs committed under bench/reference/.

The harness calls exactly three functions:

    available(name) -> str | None
        None when the row can run here, else the one-line reason it cannot
        ("lighttpd is not installed (make deps-reference)").
    command(name, host, port, workdir, cpus) -> list[str]
        writes the row's config and its static files into workdir and returns the argv that
        runs the server in the FOREGROUND on host:port (never as a system service). It prints
        no ready line: wait until the port accepts, then stop it by PID (SIGTERM; the master
        stops its workers).
    probe(host, port) -> list[str]
        the conformance probe: how the response to `GET /` differs from the contract's bytes
        (docs/architecture.md §2), one line per difference; [] when it is byte for byte identical.

and may use wait_for_port() (the servers print no ready line), like_for_like(diffs) (only extra
headers: the point is valid) and error_log(workdir) (a failed start's reason). The report reads
a point's probe result from its record's "probe_differences" (a list of these lines).

What differs, measured by probe() on Debian 12 with these configs (docs/architecture.md §2 allows only
Content-Type and Content-Length): nginx 1.22 sends `Server: nginx`, `Date` and
`Connection: keep-alive`; lighttpd 1.4.69 sends `Date` (its Server, ETag, Last-Modified and
Accept-Ranges are configured away); Apache 2.4 sends `Date` and `Server: Apache`. None of the
three can drop Date (nor nginx and Apache their Server header) without third-party modules, so
a reference row's response head is 35-75 bytes longer than ours: the report says so, and the
comparison holds only where a few dozen bytes per response do not matter.
Payload (`/bytes/N`) is served from static files of N bytes of 'x' that command() writes.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bench" / "reference"

NAMES = ["nginx", "lighttpd", "apache-event", "apache-prefork"]

# docs/architecture.md §2: the exact bytes of the response to GET /.
EXPECTED_ROOT = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
                 b"Hello, World!")

# Body sizes written for /bytes/N: the payload experiment's sizes (docs/architecture.md §5: 13 B ... 1 MiB)
# and every power of two in between, so another preset's size is there too (1.4 MiB in all).
PAYLOAD_SIZES = sorted({13, *(2 ** k for k in range(0, 21))})

# What probe() finds with these configs on Debian 12 (nginx-light 1.22.1, lighttpd 1.4.69,
# apache2 2.4): the report quotes it when a run did not store its own probe result.
KNOWN_DIFFERENCES = {
    "nginx": ["extra header Server: nginx", "extra header Date: <the current time>",
              "extra header Connection: keep-alive"],
    "lighttpd": ["extra header Date: <the current time>"],
    "apache-event": ["extra header Date: <the current time>", "extra header Server: Apache"],
    "apache-prefork": ["extra header Date: <the current time>", "extra header Server: Apache"],
}

_EXE = {"nginx": ("nginx", "nginx-light"), "lighttpd": ("lighttpd", "lighttpd"),
        "apache-event": ("apache2", "apache2"), "apache-prefork": ("apache2", "apache2")}
_MPM = {"apache-event": "mpm_event", "apache-prefork": "mpm_prefork"}
_APACHE_MODULES = Path("/usr/lib/apache2/modules")


def _which(exe: str) -> str | None:
    # Debian puts the servers in /usr/sbin, which a non-root PATH may lack.
    return shutil.which(exe) or shutil.which(exe, path="/usr/sbin:/sbin:/usr/local/sbin")


def available(name: str) -> str | None:
    if name not in _EXE:
        return f"{name} is not a reference server (known: {', '.join(NAMES)})"
    exe, package = _EXE[name]
    if _which(exe) is None:
        return f"{name} is not installed: no {exe} binary (make deps-reference installs {package})"
    if name in _MPM and not (_APACHE_MODULES / f"mod_{_MPM[name]}.so").exists():
        return f"{name}: {_APACHE_MODULES}/mod_{_MPM[name]}.so is missing (make deps-reference)"
    return None


def _cpu_list(cpus) -> str | None:
    """'0', '0-1', '2,3', [0, 1], {0} or None -> a taskset list, or None for no pinning."""
    if cpus is None or cpus == "" or cpus == []:
        return None
    if isinstance(cpus, int):
        return str(cpus)
    if isinstance(cpus, str):
        return cpus
    return ",".join(str(c) for c in sorted(cpus))


def _listen(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _unprivileged_user() -> tuple[str, str] | None:
    """As root, the servers drop to www-data (or nobody) for their workers; as anyone else they
    keep the current user (the ports are unprivileged)."""
    if os.geteuid() != 0:
        return None
    for user, group in (("www-data", "www-data"), ("nobody", "nogroup")):
        try:
            pwd.getpwnam(user)
            return user, group
        except KeyError:
            continue
    return None


def write_payload(workdir: Path, sizes=PAYLOAD_SIZES) -> None:
    """htdocs/hello (the 13-byte body of GET /) and htdocs/bytes/N for each size."""
    docs = workdir / "htdocs"
    (docs / "bytes").mkdir(parents=True, exist_ok=True)
    (docs / "hello").write_bytes(b"Hello, World!")
    for n in sizes:
        path = docs / "bytes" / str(int(n))
        if not path.exists() or path.stat().st_size != int(n):
            path.write_bytes(b"x" * int(n))


def _fill(template: str, fields: dict[str, str]) -> str:
    for key, value in fields.items():
        template = template.replace(f"@{key}@", value)
    if "@" in "".join(line.split("#", 1)[0] for line in template.splitlines()):
        leftover = [line for line in template.splitlines() if "@" in line.split("#", 1)[0]]
        raise ValueError(f"unfilled template field in: {leftover[0].strip()}")
    return template


def command(name: str, host: str, port: int, workdir, cpus=None, *, sizes=None) -> list[str]:
    """Writes name's config (and static files) into workdir; returns the foreground argv.
    cpus (a CPU list such as '0' or [0]) prefixes `taskset -c`, which execs the server, so the
    PID the harness gets is the server's own; None leaves pinning to the caller."""
    reason = available(name)
    if reason:
        raise ValueError(reason)
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "tmp").mkdir(exist_ok=True)
    write_payload(workdir, PAYLOAD_SIZES if sizes is None else sizes)
    user = _unprivileged_user()
    if user:
        # Workers run as www-data: they must reach the static files (a mkdtemp folder is 0700).
        for d in (workdir, workdir / "htdocs", workdir / "htdocs" / "bytes"):
            d.chmod(0o755)
        if name == "lighttpd":
            # lighttpd opens its error log after dropping to the user: give it the file.
            log = workdir / "error.log"
            log.touch()
            pw = pwd.getpwnam(user[0])
            os.chown(log, pw.pw_uid, pw.pw_gid)
    exe = _which(_EXE[name][0])
    fields = {"WORKDIR": str(workdir), "HOST": host, "PORT": str(int(port)),
              "LISTEN": _listen(host, int(port))}
    if name == "nginx":
        fields["USER"] = f"user {user[0]} {user[1]};" if user else ""
        conf = workdir / "nginx.conf"
        argv = [exe, "-c", str(conf), "-p", f"{workdir}/", "-e", str(workdir / "error.log")]
        template = "nginx.conf.in"
    elif name == "lighttpd":
        fields["USER"] = (f'server.username = "{user[0]}"\nserver.groupname = "{user[1]}"'
                          if user else "")
        fields["HOST"] = f"[{host}]" if ":" in host else host
        conf = workdir / "lighttpd.conf"
        argv = [exe, "-D", "-f", str(conf)]
        template = "lighttpd.conf.in"
    else:
        fields["MPM"] = _MPM[name]
        fields["USER"] = f"User {user[0]}\nGroup {user[1]}" if user else ""
        conf = workdir / "apache.conf"
        argv = [exe, "-DFOREGROUND", "-f", str(conf)]
        template = "apache.conf.in"
    conf.write_text(_fill((CONFIGS / template).read_text(), fields))
    cpu_list = _cpu_list(cpus)
    return (["taskset", "-c", cpu_list] + argv) if cpu_list else argv


# --- the conformance probe -----------------------------------------------------------------

def _split(response: bytes) -> tuple[bytes, list[tuple[bytes, bytes]], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = []
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        headers.append((k.strip(), v.strip()))
    return lines[0], headers, body


def _read_response(host: str, port: int, timeout_s: float) -> bytes:
    got = b""
    with socket.create_connection((host, port), timeout=timeout_s) as s:
        s.sendall(b"GET / HTTP/1.1\r\nHost: probe\r\n\r\n")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status, headers, body = _split(got)
            if b"\r\n\r\n" in got:
                length = next((v for k, v in headers if k.lower() == b"content-length"), None)
                if length is None or (length.isdigit() and len(body) >= int(length)):
                    break
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
    return got


def _show(b: bytes) -> str:
    return b.decode("latin-1")


def differences(got: bytes, expected: bytes = EXPECTED_ROOT) -> list[str]:
    """One line per difference of a response from the expected bytes ([] when identical).
    A Date value changes every second, so it is reported by name only."""
    if got == expected:
        return []
    if not got:
        return ["no response"]
    out = []
    g_status, g_headers, g_body = _split(got)
    e_status, e_headers, e_body = _split(expected)
    if g_status != e_status:
        out.append(f"status line {_show(g_status)!r} instead of {_show(e_status)!r}")
    g_names = [k.lower() for k, _ in g_headers]
    e_map = {k.lower(): (k, v) for k, v in e_headers}
    for k, v in g_headers:
        want = e_map.get(k.lower())
        if want is None:
            shown = "<the current time>" if k.lower() == b"date" else _show(v)
            out.append(f"extra header {_show(k)}: {shown}")
        elif want[1] != v:
            out.append(f"header {_show(k)}: {_show(v)!r} instead of {_show(want[1])!r}")
        elif want[0] != k:
            out.append(f"header name {_show(k)!r} spelled differently from {_show(want[0])!r}")
    for low, (k, v) in e_map.items():
        if low not in g_names:
            out.append(f"missing header {_show(k)}: {_show(v)}")
    if not out and [k.lower() for k, _ in g_headers] != [k.lower() for k, _ in e_headers]:
        out.append("headers in another order")
    if g_body != e_body:
        out.append(f"body {_show(g_body[:60])!r} instead of {_show(e_body)!r}")
    if not out:
        out.append(f"bytes differ: {_show(got[:200])!r}")   # e.g. whitespace inside a header line
    return out


def probe(host: str, port: int, timeout_s: float = 2.0) -> list[str]:
    try:
        got = _read_response(host, port, timeout_s)
    except OSError as e:
        return [f"no response: {e}"]
    return differences(got)


def like_for_like(diffs: list[str]) -> bool:
    """Whether a reference server's differences leave the comparison like for like: only
    extra header lines (Server, Date, Connection), while the status line, the contract's two
    headers and the body are exact. The harness fails a reference point otherwise."""
    return all(d.startswith("extra header ") for d in diffs)


def wait_for_port(host: str, port: int, timeout_s: float = 10.0, alive=None) -> str | None:
    """Reference servers print no ready line: wait until the port accepts. Returns None when it
    does, else why not. alive() (optional) says whether the process still runs."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            return "exited before accepting connections"
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.02)
    return f"port {port} did not accept within {timeout_s:g} s"


def error_log(workdir) -> str:
    """The tail of the server's error log in workdir (for a failed start's reason)."""
    path = Path(workdir) / "error.log"
    try:
        return path.read_text(errors="replace").strip()[-500:]
    except OSError:
        return ""
