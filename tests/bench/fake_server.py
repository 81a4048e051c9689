#!/usr/bin/python3
"""A stand-in server-<model> for the harness's fault tests (docs/architecture.md §3 command line).

Its behaviour comes from its own file name, so one script serves as several "models" through
symlinks in a temporary bin directory:

  server-good      answers every request with the §2 bytes of GET /, keep-alive
  server-crash     like good, then exits with code 3 after --crash-after seconds (default 0.4)
  server-badprobe  answers GET / with a wrong body
  server-noready   never prints its ready line
  server-leaker    like good, but forks a child that ignores SIGTERM and outlives it
  server-nokernel  exits 3 with a one-line reason, like uring without io_uring (docs/architecture.md §3)
  server-refstyle  answers like nginx: the same status and body plus a Server header
  server-oldflags  like good, but rejects the deadline flags (exit 2), like a server built
                   before --idle-timeout/--header-timeout existed
"""
from __future__ import annotations

import argparse
import os
import selectors
import signal
import socket
import sys
import time

RESPONSE = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            b"Hello, World!")
REFSTYLE = (b"HTTP/1.1 200 OK\r\nServer: fake\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
            b"Hello, World!")
BAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nWrong"


def main() -> int:
    mode = os.path.basename(sys.argv[0]).removeprefix("server-")
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--backlog", type=int, default=4096)
    ap.add_argument("--crash-after", type=float, default=0.4)
    if mode != "oldflags":
        ap.add_argument("--idle-timeout", default="75s")
        ap.add_argument("--header-timeout", default="60s")
    a = ap.parse_args()
    if mode == "nokernel":
        print("server-nokernel: io_uring is not available (io_uring_setup: ENOSYS)",
              file=sys.stderr, flush=True)
        return 3
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    if mode == "leaker" and os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)   # bounded: gone after 30 s even if nobody kills it
        os._exit(0)
    lsock = socket.socket()
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    lsock.bind((a.host, a.port))
    lsock.listen(a.backlog)
    lsock.setblocking(False)
    if mode == "noready":
        time.sleep(60)   # longer than the test's ready timeout; bounded all the same
        return 0
    print(f"listening on {a.host}:{lsock.getsockname()[1]}", flush=True)
    print(f"server-{mode}: fake model for tests", file=sys.stderr, flush=True)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ)
    buffers: dict[socket.socket, bytes] = {}
    t0 = time.monotonic()
    deadline = t0 + 120   # bounded lifetime
    while not stop and time.monotonic() < deadline:
        if mode == "crash" and time.monotonic() - t0 > a.crash_after:
            print("server-crash: crashing on purpose", file=sys.stderr, flush=True)
            os._exit(3)
        for key, _ in sel.select(timeout=0.05):
            if key.fileobj is lsock:
                try:
                    c, _ = lsock.accept()
                except BlockingIOError:
                    continue
                c.setblocking(False)
                buffers[c] = b""
                sel.register(c, selectors.EVENT_READ)
                continue
            c = key.fileobj
            try:
                data = c.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(c)
                c.close()
                buffers.pop(c, None)
                continue
            buf = buffers[c] + data
            while b"\r\n\r\n" in buf:
                head, buf = buf.split(b"\r\n\r\n", 1)
                try:
                    c.sendall(BAD if mode == "badprobe" else REFSTYLE if mode == "refstyle" else RESPONSE)
                except OSError:
                    break
            buffers[c] = buf
    return 0


if __name__ == "__main__":
    sys.exit(main())
