#!/usr/bin/python3
"""Deadlines, the client cap and fairness of the Python models (docs/architecture.md §3, issue 10), over real
sockets against build/bin/server-py-*, with short flag values:

    deadlines.py --bin-dir build/bin --model py-asyncio --check idle_timeout
    deadlines.py --list

CTest registers one case per Python model per check (python.<model>.<check>). The mechanisms
live once in servers/python/cmbench_http.py (Session, Tracker), so every model must pass all.
Uses the conformance suite's plumbing (tests/conformance/harness.py).
"""
from __future__ import annotations

import argparse
import socket
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "conformance"))
from harness import (GET_ROOT, HELLO, CheckFailed, Server, connect, error, expect_response,  # noqa: E402
                     get, log, recv_exact, require, show)

CHECKS = {}
TIMEOUT_408 = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 15\r\n"
               b"Connection: close\r\n\r\nRequest Timeout")


def check(fn):
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def wait_close(s: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes (EOF or reset) and the bytes that came first."""
    t0 = time.monotonic()
    got = b""
    s.settimeout(limit)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        raise CheckFailed(f"still open after {limit:.1f}s (got {show(got)})") from None
    return time.monotonic() - t0, got


@check
def check_idle_timeout(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model, args=("--idle-timeout", "500ms")) as server:
        with connect(server) as fresh, connect(server) as used:
            t0 = time.monotonic()
            used.sendall(GET_ROOT)
            expect_response(used, HELLO, "GET / before going quiet")
            took_fresh, got_fresh = wait_close(fresh, 3.0)
            took_used, got_used = wait_close(used, 3.0)
            took_used = time.monotonic() - t0
        require(got_fresh == b"" and got_used == b"", f"idle close must be silent: {show(got_fresh + got_used)}")
        require(0.4 <= took_fresh <= 1.2, f"new silent connection closed after {took_fresh:.2f}s, want ~0.5s")
        require(0.4 <= took_used <= 1.2, f"quiet keep-alive connection closed after {took_used:.2f}s")
        # A connection that keeps talking is never idle.
        with connect(server) as busy:
            for _ in range(8):
                busy.sendall(GET_ROOT)
                expect_response(busy, HELLO, "request every 0.15 s")
                time.sleep(0.15)
        log(f"--idle-timeout 500ms: silent close after {took_fresh:.2f}s (new) and "
            f"{took_used:.2f}s (after a response); a talking client kept for 1.2 s")


@check
def check_header_timeout(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model, args=("--header-timeout", "500ms")) as server:
        with connect(server) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")   # the head never completes
            t0 = time.monotonic()
            got = recv_exact(s, len(TIMEOUT_408), "408 after the header deadline", timeout=3)
            took = time.monotonic() - t0
            require(got == TIMEOUT_408, f"expected {show(TIMEOUT_408)}, got {show(got)}")
            closed_after, extra = wait_close(s, 3.0)
            require(extra == b"", f"bytes after the 408: {show(extra)}")
        require(0.4 <= took <= 1.2, f"408 after {took:.2f}s, want ~0.5s")
        # Trickling a head does not extend the deadline: it runs from the first byte.
        with connect(server) as s:
            t0 = time.monotonic()
            s.setblocking(False)
            got, answered = b"", None
            for c in b"GET / HTTP/1.1\r\nX: " + b"y" * 40:
                try:
                    s.send(bytes([c]))
                    got += s.recv(4096)
                except BlockingIOError:
                    pass
                except OSError:
                    break
                if got and answered is None:
                    answered = time.monotonic() - t0
                time.sleep(0.05)
            s.setblocking(True)
            require(answered is not None, "no 408 while a head trickled in for 3 s")
            _, rest = wait_close(s, 3.0)
            got += rest
            require(got == TIMEOUT_408, f"trickled head: expected 408, got {show(got)}")
            require(answered <= 1.2, f"trickled head answered after {answered:.2f}s, deadline 0.5 s")
            total = answered
        # A complete request in time is served, and the deadline restarts per request.
        with connect(server) as s:
            for _ in range(3):
                s.sendall(b"GET / HT")
                time.sleep(0.3)
                s.sendall(b"TP/1.1\r\n\r\n")
                expect_response(s, HELLO, "head completed within the deadline")
        log(f"--header-timeout 500ms: 408 after {took:.2f}s; a trickled head cut at {total:.2f}s; "
            f"heads completed in 0.3 s served")


@check
def check_linger_deadline(bin_dir: str, model: str) -> None:
    """After its final response the server half-closes at once (our recv sees EOF) and drains
    what we send; it must close for good 1 s later however often we send. Once it has closed,
    our next byte is answered with a reset, so the first failing send marks the close (up to
    one send interval late)."""
    with Server(bin_dir, model) as server, connect(server) as s:
        s.sendall(get("/", headers="Connection: close\r\n"))
        expect_response(s, HELLO.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1), "closing request")
        t0 = time.monotonic()
        s.setblocking(False)
        closed = None
        while time.monotonic() - t0 < 5.0:
            try:
                s.send(b"z")           # a byte every 0.1 s: a trickling lingerer
                while s.recv(100):
                    pass
            except BlockingIOError:
                pass
            except OSError:             # reset: the server has closed the connection
                closed = time.monotonic() - t0
                break
            time.sleep(0.1)
        require(closed is not None, "a trickling client held the lingering close for 5 s")
        require(0.8 <= closed <= 1.6, f"lingering close ended {closed:.2f}s after the response "
                                      f"(deadline 1 s after it starts)")
        log(f"trickling lingerer (1 byte / 0.1 s): reset seen {closed:.2f}s after the final response")


@check
def check_max_clients(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model, args=("--max-clients", "3")) as server:
        held = [connect(server) for _ in range(3)]
        for s in held:
            s.sendall(GET_ROOT)
            expect_response(s, HELLO, "one of the first 3 clients")
        with connect(server) as extra:
            extra.sendall(GET_ROOT)
            expect_response(extra, error(503), "the 4th client", close=True)
        for s in held:
            s.sendall(GET_ROOT)
            expect_response(s, HELLO, "the first 3 still served")
        held.pop().close()
        time.sleep(0.3)
        with connect(server) as again:
            again.sendall(GET_ROOT)
            expect_response(again, HELLO, "a new client once one of the 3 left")
        for s in held:
            s.close()
        log("--max-clients 3: the 4th got 503 and a close; after one left a new one was served")


@check
def check_fairness(bin_dir: str, model: str) -> None:
    """One connection pipelines 40 x /cpu/50000 (2 s of handlers) in one write; another's GET /
    must wait at most about one turn of the loop. The wait is judged in server CPU seconds,
    which a busy shared machine does not stretch, and the wall time is shown beside it."""
    with Server(bin_dir, model) as server, connect(server) as hog, connect(server) as other:
        other.sendall(GET_ROOT)
        expect_response(other, HELLO, "warm-up")
        hog.sendall(get("/cpu/50000") * 40)
        time.sleep(0.1)
        waits, cpu_waits = [], []
        for _ in range(3):
            t0, c0 = time.monotonic(), server.cpu()
            other.sendall(GET_ROOT)
            expect_response(other, HELLO, "GET / beside a pipelining hog", timeout=30)
            waits.append(time.monotonic() - t0)
            cpu_waits.append(server.cpu() - c0)
        ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
        got = recv_exact(hog, len(ok) * 40, "the hog's 40 responses", timeout=60)
        require(got == ok * 40, f"hog's responses wrong: {show(got[:200])}")
        log(f"40 x /cpu/50000 pipelined on one connection: another client's GET / waited "
            f"{', '.join(f'{w * 1000:.0f}' for w in waits)} ms wall, "
            f"{', '.join(f'{w * 1000:.0f}' for w in cpu_waits)} ms of server CPU")
        require(max(cpu_waits) <= 0.6, f"GET / waited {max(cpu_waits):.2f}s of server CPU behind "
                                       f"40 pipelined /cpu/50000 (2 s in all)")


@check
def check_sigterm_while_sleeping(bin_dir: str, model: str) -> None:
    """SIGTERM exits 0 within 2 s even while a handler blocks the serving thread in /sleep."""
    with Server(bin_dir, model) as server:
        sleeper = connect(server)
        sleeper.sendall(get("/sleep/5000000"))
        idle = connect(server)
        time.sleep(0.3)                       # the handler is asleep now
        status, took = server.stop(2.0)
        require(status is not None, "still running 2 s after SIGTERM (a handler sleeps for 5 s)")
        require(status == 0, f"exit status {status} after SIGTERM, expected 0")
        for s in (sleeper, idle):
            took_close, _ = wait_close(s, 2.0)
            s.close()
        log(f"SIGTERM while a handler sleeps: exit 0 after {took:.2f}s, clients closed")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--model")
    ap.add_argument("--check", default="all")
    ap.add_argument("--list", action="store_true")
    a = ap.parse_args()
    if a.list:
        print("\n".join(CHECKS))
        return 0
    names = list(CHECKS) if a.check == "all" else [a.check]
    failed = []
    for name in names:
        log(f"== {a.model}.{name}")
        try:
            CHECKS[name](a.bin_dir, a.model)
        except CheckFailed as e:
            failed.append(name)
            log(f"FAIL {a.model}.{name}: {e}")
        except Exception:
            failed.append(name)
            log(f"FAIL {a.model}.{name}: unexpected error\n{traceback.format_exc()}")
        else:
            log(f"PASS {a.model}.{name}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
