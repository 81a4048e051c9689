"""The protocol every Python model speaks (docs/architecture.md §2): one incremental parser, one response
builder, one per-connection session; and what every model shares around it (§3): the command
line, the listening socket, the ready line, deadlines, the client cap and the stop signal.

Same bytes, limits and statuses as servers/common/http_parser.cpp, http_response.cpp and
http_session.cpp; the models differ only in how they wait and dispatch. Standard library only.

Speed matters because the frameworks, not this file, are what the benchmark measures: a
complete head is found with one bytes.find, checked with C-speed bytes methods (count,
translate) instead of a Python loop per byte, and the outcome of a head seen before (a load
generator sends the same head again and again) comes from a small cache keyed by the exact
head bytes, so it is exactly what the strict parse of those bytes gave.
"""
from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import sys
import threading
import time

MAX_HEAD = 8192                # whole head: request line .. blank line
MAX_BODY = 1048576             # POST /echo
MAX_BYTES = 16777216           # GET /bytes/N
MAX_HANDLER_US = 10000000      # /sleep/US and /cpu/US
READ_SIZE = 16384              # every model reads 16 KiB at most (where the framework lets us)
OUTPUT_HIGH_WATER = 256 * 1024  # stop answering pipelined requests above this much output
DRAIN_LIMIT = 4 * 1024 * 1024  # lingering close discards at most this much input
LINGER = 1.0                   # lingering close ends this long after it starts (absolute)
# Fairness: a connection gets at most this many pipelined requests answered per turn of its
# event loop; the rest wait in its buffer for the next turn. One read can hold hundreds of
# requests; answering all of them before anyone else would let one client freeze the loop for
# the sum of their handlers (40 x /cpu/50000 = 2 s). 4 keeps such a turn at 0.2 s, so another
# client's request waits well under the 0.6 s the fairness test allows even on a busy machine,
# while the per-turn cost (one trip through the loop) stays small beside 4 requests' work.
REQUESTS_PER_TURN = 4

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           408: "Request Timeout", 413: "Content Too Large",
           431: "Request Header Fields Too Large", 501: "Not Implemented",
           503: "Service Unavailable"}

TEXT = b"text/plain"
OCTETS = b"application/octet-stream"

# One read-only block of 'x' that every /bytes/N response points into (memoryview slices):
# a 16 MiB response costs 256 small views, never 16 MiB of memory.
FILL = b"x" * 65536
FILL_VIEW = memoryview(FILL)


def build(status: int, ctype: bytes, body: bytes, head_only: bool = False, close: bool = False,
          http10_keep_alive: bool = False, length: int | None = None) -> bytes:
    """The one response head (+ body) builder: status line, exactly Content-Type and
    Content-Length, Allow on 405, Connection when the server closes or keeps HTTP/1.0 open."""
    n = len(body) if length is None else length
    head = b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n" % (
        status, REASONS[status].encode(), ctype, n)
    if status == 405:
        head += b"Allow: GET, HEAD, POST\r\n"
    if close:
        head += b"Connection: close\r\n"
    elif http10_keep_alive:
        head += b"Connection: keep-alive\r\n"  # HTTP/1.0 clients wait for a close otherwise
    head += b"\r\n"
    return head if head_only else head + body


def error_response(status: int) -> bytes:
    """A request the parser refused (400, 408, 413, 431, 501) or a client we cannot take (503)."""
    return build(status, TEXT, REASONS[status].encode(), close=True)


HELLO = build(200, TEXT, b"Hello, World!")
ERRORS = {s: error_response(s) for s in (400, 408, 413, 431, 501, 503)}


def filler(n: int) -> list:
    """n bytes of 'x' as views of the shared block, at most 64 KiB each."""
    if n <= len(FILL):
        return [FILL_VIEW[:n]] if n else []
    full, rest = divmod(n, len(FILL))
    return [FILL_VIEW] * full + ([FILL_VIEW[:rest]] if rest else [])


# --- the parser ---------------------------------------------------------------------------------

_TCHAR = b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VCHAR = bytes([9] + [c for c in range(0x20, 0x100) if c != 0x7F])   # field-value bytes
_TARGET = bytes(range(0x21, 0x7F))                                    # visible ASCII


def _is_token(s: bytes) -> bool:
    return bool(s) and not s.translate(None, _TCHAR)


def _line_ends_ok(s) -> bool:
    """Every CR is followed by LF and every LF follows a CR (no bare CR, no bare LF)."""
    pairs = s.count(b"\r\n")
    return s.count(b"\r") == pairs and s.count(b"\n") == pairs


def request_line(line: bytes):
    """METHOD SP origin-form SP HTTP/1.x -> (method, target, minor) or None if malformed."""
    parts = line.split(b" ")
    if len(parts) != 3:
        return None
    method, target, version = parts
    if not _is_token(method) or not target.startswith(b"/") or target.translate(None, _TARGET):
        return None
    if version == b"HTTP/1.1":
        return method, target, 1
    if version == b"HTTP/1.0":
        return method, target, 0
    return None


def parse_head(head: bytes):
    """A complete head without its final CRLF CRLF, line endings already checked.
    Returns an error status (int) or (method, target, minor, keep_alive, content_length)."""
    lines = head.split(b"\r\n")
    first = request_line(lines[0])
    if first is None:
        return 400
    method, target, minor = first
    saw_te = close = keep = False
    length = None
    for field in lines[1:]:
        colon = field.find(b":")
        if colon < 0:
            return 400
        name = field[:colon]                         # no whitespace allowed before the colon
        value = field[colon + 1:].strip(b" \t")
        if not _is_token(name) or value.translate(None, _VCHAR):
            return 400
        lname = name.lower()
        if lname == b"content-length":
            if not value.isdigit():
                return 400
            digits = value.lstrip(b"0")
            # Saturate instead of converting a huge number: anything past 1 MiB is 413.
            n = MAX_BODY + 1 if len(digits) > 7 else min(int(digits or b"0"), MAX_BODY + 1)
            if length is not None and n != length:
                return 400
            length = n
        elif lname == b"transfer-encoding":
            saw_te = True
        elif lname == b"connection":
            for token in value.split(b","):
                token = token.strip(b" \t").lower()
                if token == b"close":
                    close = True
                elif token == b"keep-alive":
                    keep = True
    if saw_te:
        return 501
    length = length or 0
    if length > MAX_BODY:
        return 413
    keep_alive = False if close else (True if keep else minor == 1)  # "close" wins
    return method, target, minor, keep_alive, length


def _number(digits: bytes, limit: int):
    if not digits or len(digits) > 12 or not digits.isdigit():
        return None
    n = int(digits)
    return n if n <= limit else None


# A plan is what a complete head means, decided once: (kind, arg, length, close), where
# length is the body that follows the head and close says the response ends the connection.
#   "fixed"  arg = the whole response        "bytes" arg = (response head, N filler bytes)
#   "echo"   arg = HTTP/1.0 keep-alive flag  "sleep"/"cpu" arg = (microseconds, response)
#   "error"  arg = the response (always closes; a body is not waited for)
def plan_for(head: bytes):
    parsed = parse_head(head)
    if type(parsed) is int:
        return ("error", ERRORS[parsed], 0, True)
    method, target, minor, keep_alive, length = parsed
    close = not keep_alive
    ka10 = minor == 0 and keep_alive
    head_only = method == b"HEAD"
    get = method == b"GET" or head_only
    path = target.split(b"?", 1)[0]

    def fixed(status, ctype, body):
        return ("fixed", build(status, ctype, body, head_only, close, ka10), length, close)

    def bad_number():  # malformed input: 400 and close (no body for HEAD, as always)
        return ("error", build(400, TEXT, b"Bad Request", head_only, True), 0, True)

    if method not in (b"GET", b"HEAD", b"POST"):
        return fixed(405, TEXT, b"Method Not Allowed")
    if get and path == b"/":
        return fixed(200, TEXT, b"Hello, World!")
    if method == b"POST" and path == b"/echo":
        return ("echo", ka10, length, close)
    if get and path.startswith(b"/bytes/"):
        n = _number(path[7:], MAX_BYTES)
        if n is None:
            return bad_number()
        head_bytes = build(200, OCTETS, b"", True, close, ka10, length=n)
        if head_only:
            return ("fixed", head_bytes, length, close)
        if n <= 4096:  # small bodies are cheaper as part of one object than as views
            return ("fixed", head_bytes + FILL[:n], length, close)
        return ("bytes", (head_bytes, n), length, close)
    for prefix, kind in ((b"/sleep/", "sleep"), (b"/cpu/", "cpu")):
        if get and path.startswith(prefix):
            us = _number(path[len(prefix):], MAX_HANDLER_US)
            if us is None:
                return bad_number()
            return (kind, (us, build(200, TEXT, b"ok", head_only, close, ka10)), length, close)
    return fixed(404, TEXT, b"Not Found")


_PLANS: dict = {}   # exact head bytes -> plan; only heads with valid line endings get here
_PLANS_MAX = 512    # bounded: cleared when full (a client sending unique heads gains nothing)
_BAD_LINE_ENDS = ("error", ERRORS[400], 0, True)


def plan_of(head: bytes):
    plan = _PLANS.get(head)
    if plan is None:
        if not _line_ends_ok(head):
            return _BAD_LINE_ENDS
        plan = plan_for(head)
        if len(_PLANS) >= _PLANS_MAX:
            _PLANS.clear()
        _PLANS[head] = plan
    return plan


# --- handlers that block (the point of /sleep and /cpu) -----------------------------------------

# The unpatched sleep: under gevent's monkey-patching time.sleep would yield to the hub; /sleep
# stands in for a C library call the framework cannot see, so it must block the OS thread.
try:
    from gevent import monkey as _monkey
    blocking_sleep = _monkey.get_original("time", "sleep")
except ImportError:  # pragma: no cover - gevent is a Debian package `make deps` installs
    blocking_sleep = time.sleep


def spin(us: int) -> None:
    """Busy-spin until this thread has used `us` microseconds of CPU."""
    clock = time.thread_time_ns
    until = clock() + us * 1000
    while clock() < until:
        pass


# --- the session: bytes in, response pieces out ------------------------------------------------

class Session:
    """One connection's protocol state. feed(bytes) -> list of response pieces (bytes or
    memoryview, each at most 64 KiB beyond the first) to write in order.

    After writing them the model checks: `closing` (the last response is out: shut down our
    side and linger), `more` (complete requests still wait in the buffer: give the loop a turn,
    then feed(b"") without reading). An idle keep-alive session holds no buffered bytes.
    Deadline bookkeeping (`since`, `head_at`) is read by Tracker.sweep.
    """
    __slots__ = ("buf", "scanned", "line_ok", "waiting", "closing", "more", "writing", "since",
                 "head_at", "linger_at", "requests")

    def __init__(self) -> None:
        self.buf = b""          # unconsumed input, starting at the current request
        self.scanned = 0        # bytes of an incomplete head already checked
        self.line_ok = False    # the incomplete head's request line was checked
        self.waiting = None     # plan of a complete head whose body is still arriving
        self.closing = False    # a final response was produced: only drain from now on
        self.more = False       # buffered complete requests left for the next turn
        self.writing = False    # the model has response bytes not yet taken by the socket
        self.since = time.monotonic()   # last activity (idle deadline)
        self.head_at = 0.0      # first byte of an incomplete head (header deadline), 0 = none
        self.linger_at = 0.0    # lingering close deadline, 0 = not lingering
        self.requests = 0

    def feed(self, data: bytes) -> list:
        if self.closing:
            return []
        if self.buf:                 # an incomplete request waits: append in place
            self.buf += data
            buf = self.buf
        else:                        # the usual case: parse straight from what was read
            buf = data
        now = time.monotonic()
        self.since = now
        out = []
        pos = done = size = 0
        end = len(buf)
        slow = False
        self.more = False
        while pos < end:
            if done == REQUESTS_PER_TURN or size >= OUTPUT_HIGH_WATER:
                self.more = True       # fairness / backpressure: the rest waits a turn
                break
            plan = self.waiting
            if plan is None:
                stop = buf.find(b"\r\n\r\n", pos, pos + MAX_HEAD)
                if stop < 0:
                    status = self._incomplete_head(buf, pos)
                    if status:
                        out.append(ERRORS[status])
                        self.closing = True
                        pos = end
                    break
                plan = plan_of(bytes(buf[pos:stop]) if type(buf) is not bytes else buf[pos:stop])
                pos = stop + 4
                self.scanned = 0
                self.line_ok = False
            kind, arg, length, close = plan
            if length and kind != "error":
                if end - pos < length:      # the body is still arriving: O(1) per read
                    self.waiting = plan
                    break
                body = buf[pos:pos + length]
                pos += length
            else:
                body = b""
            self.waiting = None
            done += 1
            if kind == "fixed" or kind == "error":
                out.append(arg)
                size += len(arg)
            elif kind == "echo":
                out.append(build(200, OCTETS, bytes(body), False, close, arg))
                size += length
            elif kind == "bytes":
                out.append(arg[0])
                out.extend(filler(arg[1]))
                size += arg[1]
            else:
                if kind == "sleep":
                    blocking_sleep(arg[0] / 1e6)
                else:
                    spin(arg[0])
                out.append(arg[1])
                slow = True
            if close:
                self.closing = True
                pos = end
                break
        self.requests += done
        if pos >= end:
            self.buf = b""
            self.head_at = 0.0
        else:
            if self.waiting is not None or self.more:
                self.head_at = 0.0         # a body is arriving, or complete requests wait
            elif done or not self.head_at:
                self.head_at = now         # the first bytes of a new head arrived now
            if buf is not self.buf:
                self.buf = bytearray(buf[pos:])
            elif pos:
                del buf[:pos]
        if slow:
            self.since = time.monotonic()   # quiet time starts after a slow handler
        return out

    def _incomplete_head(self, buf, pos: int) -> int:
        """No CRLF CRLF within the limit: 400 for a bad line ending or request line seen so far,
        431 once the head is past 8192 bytes, else 0 (need more). Scans each byte once."""
        window_end = min(len(buf), pos + MAX_HEAD)
        start = max(pos, pos + self.scanned)
        if start > pos and buf[start - 1] == 13:   # a CR that ended the last read
            start -= 1
        seg = buf[start:window_end]
        pairs = seg.count(b"\r\n")
        trailing_cr = 1 if seg.endswith(b"\r") else 0
        if seg.count(b"\n") != pairs or seg.count(b"\r") != pairs + trailing_cr:
            return 400
        self.scanned = window_end - pos
        if not self.line_ok:
            eol = buf.find(b"\r\n", pos, window_end)
            if eol >= 0:
                if request_line(bytes(buf[pos:eol])) is None:
                    return 400
                self.line_ok = True
        if len(buf) - pos > MAX_HEAD:
            return 431
        return 0

    def reject(self, status: int) -> list:
        """A final response without a request (503 past --max-clients, 408 on the deadline)."""
        if self.closing:
            return []
        self.closing = True
        self.buf = b""
        return [ERRORS[status]]

    def sent(self) -> None:
        """The model wrote (part of) a response: the connection is not quiet."""
        self.since = time.monotonic()


# --- command line, listening socket, ready line (docs/architecture.md §3) -----------------------------------

_DURATION = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)(us|ms|s|m)?$")
_UNIT = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, None: 1.0}


def duration(text: str) -> float:
    m = _DURATION.match(text)
    if not m:
        raise argparse.ArgumentTypeError(f"bad duration '{text}' (a number with us, ms, s or m)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _int_in(lo: int, hi: int, what: str):
    def convert(text: str) -> int:
        try:
            n = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(f"bad {what} '{text}'") from None
        if not lo <= n <= hi:
            raise argparse.ArgumentTypeError(f"{what} {n} out of range {lo}..{hi}")
        return n
    return convert


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line with the reason and the model, then the usage
        fail(self.prog, message, self.format_usage().strip())


def fail(prog: str, message: str, usage: str | None = None) -> None:
    sys.stderr.write(f"{prog}: {message}\n" + (f"{usage}\n" if usage else ""))
    sys.exit(2)


class Options(argparse.Namespace):
    host: str
    port: int
    backlog: int
    idle_timeout: float
    header_timeout: float
    max_clients: int


def start(model: str, description: str, argv=None) -> tuple[socket.socket, Options]:
    """Parses the §3 flags (bad input: one-line reason + usage, exit 2), binds and listens,
    installs the stop signals, names the model on stderr and prints the ready line."""
    prog = f"server-{model}"
    usage = (f"{prog} [--host 127.0.0.1] [--port 8080] [--backlog 4096] [--idle-timeout 75s] "
             "[--header-timeout 60s] [--max-clients 16384]")
    ap = _Parser(prog=prog, description=description, usage=usage, add_help=True)
    ap.add_argument("--host", default="127.0.0.1", help="numeric IPv4 or IPv6 address")
    ap.add_argument("--port", type=_int_in(0, 65535, "port"), default=8080, help="0 picks a free port")
    ap.add_argument("--backlog", type=_int_in(1, 1 << 20, "backlog"), default=4096)
    ap.add_argument("--idle-timeout", type=duration, default=75.0, help="e.g. 75s, 500ms")
    ap.add_argument("--header-timeout", type=duration, default=60.0)
    ap.add_argument("--max-clients", type=_int_in(1, 1 << 30, "max-clients"), default=16384)
    opts = ap.parse_args(argv, namespace=Options())
    usage = ap.format_usage().strip()   # one line: "usage: server-... [--host ...] ..."
    try:
        info = socket.getaddrinfo(opts.host, opts.port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                  socket.AI_PASSIVE | socket.AI_NUMERICHOST | socket.AI_NUMERICSERV)
    except socket.gaierror as e:
        fail(prog, f"bad --host '{opts.host}': {e.strerror}", usage)
    family, kind, proto, _, addr = info[0]
    ls = socket.socket(family, kind, proto)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        ls.bind(addr)
        ls.listen(opts.backlog)
    except OSError as e:
        ls.close()
        fail(prog, f"cannot bind {opts.host}:{opts.port}: {e.strerror}", usage)
    STOP.install()
    # Framework messages (asyncio's and Tornado's loggers) name the model, as ours do.
    logging.basicConfig(format=f"{prog}: %(message)s", level=logging.WARNING)
    sys.stderr.write(f"{prog}: {description}\n")
    sys.stderr.flush()
    host, port = ls.getsockname()[:2]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    sys.stdout.write(f"listening on {shown}:{port}\n")
    sys.stdout.flush()
    return ls, opts


def accepted(sock: socket.socket) -> None:
    """Socket options of every accepted connection (docs/architecture.md §2)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def log(model: str, message: str) -> None:
    sys.stderr.write(f"server-{model}: {message}\n")


# --- stopping (SIGTERM / SIGINT) ---------------------------------------------------------------

class _Stop:
    """SIGTERM or SIGINT: the model's `on_stop` (stop accepting, close the tracked connections,
    end the loop) runs, and a watchdog thread ends the process with status 0 after GRACE
    seconds whatever still runs: a handler blocked in /sleep cannot hold the exit up. The
    Python-level handler runs even while the main thread sleeps in a handler (the sleep is
    interrupted, the handler runs, the sleep resumes)."""
    GRACE = 1.2

    def __init__(self) -> None:
        self.on_stop = None      # set by the model once its loop exists
        self.requested = False

    def install(self) -> None:
        for signo in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signo, self._handle)

    def _handle(self, signo, frame) -> None:
        if self.requested:
            return
        self.requested = True
        watchdog = threading.Thread(target=self._deadline, daemon=True)
        watchdog.start()
        if self.on_stop is None:   # signalled before the loop started: nothing to close
            os._exit(0)
        self.on_stop()

    def _deadline(self) -> None:
        time.sleep(self.GRACE)
        sys.stdout.flush()
        os._exit(0)


STOP = _Stop()


# --- connections: the cap and the deadlines (docs/architecture.md §3) ----------------------------------------

class Tracker:
    """Every open connection of a model: the --max-clients cap, the idle, header and linger
    deadlines, and closing them all on stop. A connection object has `.session` and
    `.expire(kind)` (kind: "idle" -> close silently, "header" -> 408 and close, "linger" -> close).

    Deadlines live in the loop, not in a timer per connection: the model calls sweep() every
    tick() seconds from one periodic timer. A sweep checks each connection against its
    session's timestamps (cost per connection per tick, nothing per request); lingering ones
    are kept apart, in the order they started, and the next sweep is due at the first one's
    deadline, so the 1 s lingering deadline is kept to a few milliseconds.
    """

    def __init__(self, opts: Options) -> None:
        self.conns: set = set()
        self.lingering: dict = {}    # conn -> deadline
        self.idle = opts.idle_timeout
        self.header = opts.header_timeout
        self.max_clients = opts.max_clients
        self.scan_every = min(1.0, max(0.01, min(self.idle, self.header) / 10))
        self.next_scan = 0.0

    def admit(self, conn) -> bool:
        """False when the cap is reached: the model answers 503 and closes."""
        if len(self.conns) >= self.max_clients:
            return False
        self.conns.add(conn)
        return True

    def remove(self, conn) -> None:
        self.conns.discard(conn)
        self.lingering.pop(conn, None)

    def linger(self, conn) -> None:
        """The final response is out and our side shut: the drain ends LINGER from now."""
        conn.session.linger_at = time.monotonic() + LINGER
        self.lingering[conn] = conn.session.linger_at

    def tick(self) -> float:
        """Seconds until the next sweep: the next lingering deadline (the dict keeps them in
        the order they started, and all last LINGER), or the scan interval."""
        if self.lingering:
            first = next(iter(self.lingering.values()))
            return max(0.002, min(self.scan_every, first - time.monotonic()))
        return self.scan_every

    def sweep(self) -> None:
        now = time.monotonic()
        if self.lingering:
            for conn in [c for c, t in self.lingering.items() if t <= now]:
                self.remove(conn)
                conn.expire("linger")
        if now < self.next_scan:
            return
        self.next_scan = now + self.scan_every
        idle_before, header_before = now - self.idle, now - self.header
        due = []
        for conn in self.conns:
            s = conn.session
            if s.linger_at:
                continue
            if s.head_at:
                if s.head_at <= header_before:
                    due.append((conn, "header"))
            elif s.since <= idle_before and not s.more and not s.writing:
                # A response still being written is a request in progress (a slow reader):
                # no idle deadline applies until it is out.
                due.append((conn, "idle"))
        for conn, kind in due:
            if kind == "idle":
                self.remove(conn)
            conn.expire(kind)

    def close_all(self) -> None:
        for conn in list(self.conns):
            self.remove(conn)
            conn.expire("stop")


# --- the blocking-style connection loop (py-threads, and py-gevent with its own sockets) -------

class BlockingConnection:
    """A client served by blocking-style code on its own thread or greenlet. The Tracker's
    sweeper (another thread or greenlet) ends a deadline by shutting the socket's read side:
    the blocked recv returns b"" and the serving code sees `expired` (only it ever writes)."""
    __slots__ = ("sock", "session", "expired")

    def __init__(self, sock) -> None:
        self.sock = sock
        self.session = Session()
        self.expired = None

    def expire(self, kind: str) -> None:
        self.expired = kind
        try:
            self.sock.shutdown(socket.SHUT_RD if kind == "header" else socket.SHUT_RDWR)
        except OSError:
            pass


def linger_blocking(sock) -> None:
    """Lingering close with an absolute deadline: the timeout shrinks with every read, so a
    client trickling a byte now and then cannot hold the connection past LINGER."""
    try:
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + LINGER
        drained = 0
        while drained < DRAIN_LIMIT:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            sock.settimeout(left)
            data = sock.recv(READ_SIZE)
            if not data:
                return
            drained += len(data)
    except OSError:       # socket.timeout is an OSError: the deadline passed
        pass


def _recv(conn: BlockingConnection) -> bytes:
    try:
        return conn.sock.recv(READ_SIZE)
    except OSError:
        if conn.expired:     # gevent raises in the parked reader when another greenlet shuts
            return b""       # the socket; threads see b"": both mean "deadline"
        raise


def serve_blocking(conn: BlockingConnection, tracker: Tracker, yield_turn=None,
                   admitted: bool = False) -> None:
    """One connection, top to bottom: read, answer, repeat; the caller closes the socket.
    `yield_turn` (gevent.sleep) lets other greenlets run between batches of pipelined
    requests; threads need none: the OS schedules them. `admitted`: the caller already
    counted it against --max-clients."""
    sock, session = conn.sock, conn.session
    try:
        if not admitted and not tracker.admit(conn):
            out = session.reject(503)
        else:
            data = _recv(conn)
            out = session.feed(data) if data else None
        while out is not None:
            session.writing = True
            for piece in out:
                sock.sendall(piece)
                session.sent()     # progress: a slow reader is not idle while it reads
            session.writing = False
            if session.closing:
                break
            if session.more:
                if yield_turn is not None:
                    yield_turn()
                out = session.feed(b"")
                continue
            data = _recv(conn)
            if not data:
                if conn.expired == "header":   # the head did not complete in time
                    out = session.reject(408)
                    continue
                return                         # the peer closed, or idle / stop
            out = session.feed(data)
        if session.closing:
            linger_blocking(sock)
    except OSError:
        pass              # reset or failed: this connection only
    finally:
        tracker.remove(conn)


def reject_now(sock, status: int) -> None:
    """For a client we cannot even give a thread: the error response, then close."""
    try:
        sock.setblocking(False)
        sock.send(ERRORS[status])   # a fresh socket's buffer holds these few bytes
        sock.shutdown(socket.SHUT_WR)
        while sock.recv(READ_SIZE):  # what already arrived: unread input would mean a reset
            pass
    except OSError:
        pass
    sock.close()
