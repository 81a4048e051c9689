#!/usr/bin/python3
"""Deadlines, caps and fairness (DESIGN §3, issue 10) for the lecture's framework-style models
(coro, libuv, fibers), over real sockets with short flag values. Each check starts its own
server with --port 0.

    hostile_lecture.py --bin-dir build/bin --model coro --check idle_timeout

CTest registers one case per model per check, named hostile.<model>.<check>. These models keep
their deadlines in their own runtime (coroutine scheduler, libuv timers, fiber hub), not in the
shared event loop, so they are checked here on their own.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
import traceback

import harness
from harness import (GET_ROOT, HELLO, SLOW, CheckFailed, Server, connect, error, expect_response,
                     get, log, recv_exact, require)

harness.REASONS.setdefault(408, "Request Timeout")  # DESIGN §2's header-timeout status

CHECKS = {}


def check(fn):
    CHECKS[fn.__name__.removeprefix("check_")] = fn
    return fn


def wait_eof(s: socket.socket, limit: float) -> tuple[float, bytes]:
    """Seconds until the server closes (EOF or reset), and the bytes that came first."""
    t0 = time.monotonic()
    got = b""
    s.settimeout(limit)
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except socket.timeout:
        raise CheckFailed(f"connection still open after {limit:.1f}s; got {got[:200]!r}") from None
    except ConnectionResetError:
        pass
    return time.monotonic() - t0, got


@check
def check_idle_timeout(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model, args=("--idle-timeout", "300ms")) as server:
        with connect(server) as fresh:  # never sends a byte
            took, got = wait_eof(fresh, 3 * SLOW)
            require(got == b"", f"a silent new connection got bytes: {got!r}")
            require(0.25 <= took <= 1.0 * SLOW, f"silent connection closed after {took:.2f}s, want ~0.3s")
        with connect(server) as keep:  # one request, then quiet
            keep.sendall(GET_ROOT)
            expect_response(keep, HELLO, "GET / before going quiet")
            took2, got = wait_eof(keep, 3 * SLOW)
            require(got == b"", f"the idle close must be silent, got {got!r}")
            require(0.25 <= took2 <= 1.0 * SLOW, f"quiet keep-alive closed after {took2:.2f}s, want ~0.3s")
        with connect(server) as busy:  # requests more often than the timeout: kept
            for _ in range(6):
                time.sleep(0.1)
                busy.sendall(GET_ROOT)
                expect_response(busy, HELLO, "keep-alive request inside the idle timeout")
        log(f"--idle-timeout 300ms: silent client closed after {took:.2f}s, quiet keep-alive after "
            f"{took2:.2f}s, an active one kept for 0.6s")


@check
def check_header_timeout(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model, args=("--header-timeout", "400ms")) as server:
        with connect(server) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHo")
            t0 = time.monotonic()
            for _ in range(3):  # trickling more of the head does not extend the deadline
                time.sleep(0.1)
                s.sendall(b"s")
            expect_response(s, error(408), "a head not complete in time", close=True)
            took = time.monotonic() - t0
            require(0.35 <= took <= 1.2 * SLOW, f"408 after {took:.2f}s, want ~0.4s")
        with connect(server) as quick:  # a complete head in time is served
            quick.sendall(b"GET / HTTP/1.1\r\n")
            time.sleep(0.1)
            quick.sendall(b"Host: t\r\n\r\n")
            expect_response(quick, HELLO, "head completed within the header timeout")
        log(f"--header-timeout 400ms: trickled head answered 408 after {took:.2f}s, then closed")


@check
def check_lingering_close(bin_dir: str, model: str) -> None:
    """After a final response the server drains for 1 s at most, however the peer trickles."""
    with Server(bin_dir, model) as server, connect(server) as s:
        s.sendall(get("/", headers="Connection: close\r\n"))
        recv_exact(s, 1, "first byte of the final response")
        t0 = time.monotonic()
        held = None
        while time.monotonic() - t0 < 4 * SLOW:
            try:
                s.sendall(b"x")  # a byte every 50 ms: an idle-read timeout would never fire
            except (BrokenPipeError, ConnectionResetError):
                held = time.monotonic() - t0
                break
            time.sleep(0.05)
        require(held is not None, "a trickling peer held the lingering close for more than 4 s")
        require(0.8 <= held <= 1.6 * SLOW, f"lingering close ended after {held:.2f}s, want ~1 s")
        log(f"trickling lingerer closed after {held:.2f}s (absolute 1 s deadline)")


@check
def check_max_clients(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model, args=("--max-clients", "3")) as server:
        held = []
        for i in range(3):
            s = connect(server)
            s.sendall(GET_ROOT)
            expect_response(s, HELLO, f"client {i + 1} of 3")
            held.append(s)
        with connect(server) as extra:
            extra.sendall(GET_ROOT)
            expect_response(extra, error(503), "the fourth client", close=True)
        for s in held:  # the others are still served
            s.sendall(GET_ROOT)
            expect_response(s, HELLO, "a client within the cap, after the 503")
        held.pop().close()
        deadline = time.monotonic() + 3 * SLOW
        while True:  # the freed place is taken again once the server has seen the close
            with connect(server) as again:
                again.sendall(GET_ROOT)
                first = recv_exact(again, 12, "a client after one left")
                if first == HELLO[:12]:
                    break
            require(time.monotonic() < deadline, "a place freed by a closed client was never reused")
            time.sleep(0.05)
        for s in held:
            s.close()
        log("--max-clients 3: the fourth client got 503 and a close, the three kept being served, "
            "a freed place was reused")


@check
def check_fairness(bin_dir: str, model: str) -> None:
    """One connection pipelines 40 x /cpu/50000 (2 s of handler CPU); another's GET / must be
    answered after a turn or two of the hog (8 requests a turn), not after all 40. Judged by
    how many of the hog's responses were out when the GET / was answered, which does not
    depend on how fast this shared machine spins; the wall time is logged beside it."""
    ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok"
    with Server(bin_dir, model) as server, connect(server) as hog, connect(server) as other:
        hog.sendall(get("/cpu/50000") * 40)
        time.sleep(0.1)
        t0 = time.monotonic()
        other.sendall(GET_ROOT)
        expect_response(other, HELLO, "GET / beside a pipeline of 40 x /cpu/50000", timeout=10)
        waited = time.monotonic() - t0
        before = b""
        hog.setblocking(False)
        try:
            while True:
                chunk = hog.recv(65536)
                if not chunk:
                    break
                before += chunk
        except BlockingIOError:
            pass
        hog.setblocking(True)
        done_before = len(before) // len(ok)
        rest = recv_exact(hog, len(ok) * 40 - len(before), "the rest of the 40 /cpu responses", timeout=30)
        require(before + rest == ok * 40, "the pipelined /cpu responses are wrong")
        log(f"GET / answered in {waited * 1000:.0f} ms while another connection had 40 x /cpu/50000 "
            f"pipelined; {done_before} of the 40 were answered by then")
        require(done_before <= 16, f"GET / waited for {done_before} of another client's 40 pipelined "
                                   f"requests (expected at most a few turns of 8)")

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
    if not a.model:
        ap.error("--model is required")
    names = list(CHECKS) if a.check == "all" else [a.check]
    if any(n not in CHECKS for n in names):
        ap.error(f"unknown check (known: {', '.join(CHECKS)})")
    failed = []
    for name in names:
        t0 = time.monotonic()
        try:
            CHECKS[name](a.bin_dir, a.model)
        except CheckFailed as e:
            failed.append(name)
            log(f"FAIL {a.model}.{name}: {e}")
        except Exception:
            failed.append(name)
            log(f"FAIL {a.model}.{name}: unexpected error\n{traceback.format_exc()}")
        else:
            log(f"PASS {a.model}.{name} ({time.monotonic() - t0:.1f}s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
