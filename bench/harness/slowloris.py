#!/usr/bin/python3
"""Slow clients for the slowloris experiment: N connections that each send a request line and
then one more header byte every interval, never finishing the header section.

Run as a helper process by the harness (pinned to the client CPU with the loadgen):

    slowloris.py --host 127.0.0.1 --port 8080 --clients 500 --interval 1 --max-seconds 600

It connects every client, prints `ready CONNECTED FAILED` on stdout, trickles bytes until
SIGTERM/SIGINT or --max-seconds, then prints one JSON line: how many clients connected, how
many the server closed (or answered), how many were still open, and bytes sent. Bounded in
time (--max-seconds), in connections (--clients) and in bytes per client (--max-bytes stays
below the servers' 8 KiB header limit).
"""
from __future__ import annotations

import argparse
import errno
import json
import selectors
import signal
import socket
import sys
import time

REQUEST_LINE = b"GET / HTTP/1.1\r\nHost: slowloris\r\nX-Slow: "


class SlowClient:
    __slots__ = ("sock", "sent", "open", "response")

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.sent = 0
        self.open = True
        self.response = b""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--clients", type=int, default=500)
    ap.add_argument("--interval", type=float, default=1.0, help="seconds between bytes per client")
    ap.add_argument("--max-seconds", type=float, default=600.0)
    ap.add_argument("--max-bytes", type=int, default=4096)
    ap.add_argument("--connect-timeout", type=float, default=20.0)
    args = ap.parse_args(argv)
    if not 0 < args.clients <= 20000:
        print("slowloris: --clients must be in 1..20000", file=sys.stderr)
        return 2

    stop = False

    def on_signal(_sig, _frm):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    t_begin = time.monotonic()

    # Connect everyone without blocking, then wait until each is writable (connected).
    sel = selectors.DefaultSelector()
    clients: list[SlowClient] = []
    failed = 0
    for _ in range(args.clients):
        s = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        rc = s.connect_ex((args.host, args.port))
        if rc not in (0, errno.EINPROGRESS):
            failed += 1
            s.close()
            continue
        c = SlowClient(s)
        clients.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)
    pending = len(clients)
    deadline = time.monotonic() + args.connect_timeout
    while pending and time.monotonic() < deadline and not stop:
        for key, _ in sel.select(timeout=0.1):
            c = key.data
            sel.unregister(c.sock)
            pending -= 1
            if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) != 0:
                c.open = False
                failed += 1
                c.sock.close()
                continue
            try:
                c.sent += c.sock.send(REQUEST_LINE)
            except OSError:
                c.open = False
                failed += 1
                c.sock.close()
                continue
            sel.register(c.sock, selectors.EVENT_READ, c)
    for c in clients:   # still connecting at the deadline
        if c.open and c.sent == 0:
            c.open = False
            failed += 1
            try:
                sel.unregister(c.sock)
            except (KeyError, ValueError):
                pass
            c.sock.close()
    live = [c for c in clients if c.open]
    print(f"ready {len(live)} {failed}", flush=True)

    closed_by_server = 0
    answered: dict[str, int] = {}
    bytes_sent = sum(c.sent for c in live)
    # Spread the clients' bytes evenly over each interval instead of one burst.
    n = max(1, len(live))
    next_idx = 0
    t_round = time.monotonic()
    end = t_begin + args.max_seconds
    while not stop and time.monotonic() < end:
        now = time.monotonic()
        due = int((now - t_round) / args.interval * n)
        while next_idx < min(due, n):
            c = live[next_idx]
            next_idx += 1
            if c.open and c.sent < args.max_bytes:
                try:
                    c.sent += c.sock.send(b"a")
                    bytes_sent += 1
                except BlockingIOError:
                    pass
                except OSError:
                    c.open = False
                    closed_by_server += 1
        if next_idx >= n:
            next_idx = 0
            t_round += args.interval
        # Anything readable means the server answered (e.g. 408/431) or closed.
        for key, _ in sel.select(timeout=min(0.01, args.interval / n)):
            c = key.data
            try:
                data = c.sock.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                if not c.response:
                    status = data.split(b"\r\n", 1)[0].decode("latin-1", "replace")[:40]
                    answered[status] = answered.get(status, 0) + 1
                c.response += data[:256]
                continue
            sel.unregister(c.sock)
            if c.open:
                c.open = False
                closed_by_server += 1

    alive = sum(1 for c in live if c.open)
    for c in clients:
        try:
            c.sock.close()
        except OSError:
            pass
    print(json.dumps({"clients": args.clients, "connected": len(live), "failed_connect": failed,
                      "closed_by_server": closed_by_server, "alive_at_end": alive,
                      "answered": answered, "bytes_sent": bytes_sent,
                      "interval_s": args.interval,
                      "seconds": round(time.monotonic() - t_begin, 3)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
