#!/usr/bin/python3
"""Conformance suite: proves one server binary speaks docs/architecture.md §2 byte for byte and survives
bad clients and resource limits (§3). Each check starts its own server with --port 0.

    conformance.py --bin-dir build/bin --model epoll --check exact_rows
    conformance.py --bin-dir build/bin --model epoll --check all
    conformance.py --list

CTest registers one test per model per check (tests/conformance/CMakeLists.txt). Exit status 0
means the check passed; 1 means a violation (the message shows expected vs observed bytes).
With CMBENCH_SANITIZED=1 timeouts are looser; the checks are the same.
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path

from harness import (GET_ROOT, HELLO, SANITIZED, SLOW, CheckFailed, ModelUnavailable, Server, connect, error,
                     exchange, expect_response, get, log, not_allowed, not_found,
                     nothing_arrives, ok_octets, ok_text, post_echo, proc_stat, recv_exact,
                     require, reset_close, settle, show, wait_until)

# servers/models.txt through its reader (by folder: this directory has a harness.py of its own).
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench" / "harness"))
import registry  # noqa: E402

PROCESS_MODELS = {"fork"}
THREAD_MODELS = {"threads"}
POOL_MODELS = {"threadpool", "offload"}  # a blocking handler holds one pool thread, not the server
WORKER_PROCESS_MODELS = {"prefork"}      # a fixed set of worker processes (--workers)
# Frameworks that, out of descriptors, accept and close the connections waiting in the backlog
# (libuv's "EMFILE trick", under uvloop too; Twisted's accept loop) instead of leaving them there.
RESET_AT_FD_LIMIT = {"libuv", "py-uvloop", "py-twisted"}
# A blocking handler stalls only its own client where each client has its own process or OS
# thread: the registry's style "blocking" (fork, threads, py-threads), and the pools. Event
# loops, coroutines and green threads run every client on one thread, so a blocking handler
# stalls them all.
BLOCKING_MODELS = {m.name for m in registry.MODELS if m.style == "blocking"} | POOL_MODELS

MODELS = [m.name for m in registry.MODELS if not m.is_reference]

CHECKS = {}


def check(name: str):
    def register(fn):
        CHECKS[name] = fn
        return fn
    return register


def timed(fn) -> float:
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


# --- every row of the §2 table ------------------------------------------------------------------

def head_of_size(total: int) -> bytes:
    start, end = b"GET / HTTP/1.1\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (total - len(start) - len(end)) + end


def exact_cases() -> list[tuple[str, bytes, bytes, bool]]:
    """(what, request, exact expected response, server closes afterwards)."""
    rnd = random.Random(1)
    mib = rnd.randbytes(1048576)
    close = True
    keep = False
    c = [
        ("GET /", GET_ROOT, HELLO, keep),
        ("GET / without Host", b"GET / HTTP/1.1\r\n\r\n", HELLO, keep),
        ("GET /?query", get("/?a=b&c"), HELLO, keep),
        ("HEAD /", get("/", method="HEAD"), ok_text(b"Hello, World!", head_only=True), keep),
        ("GET /bytes/0", get("/bytes/0"), ok_octets(b""), keep),
        ("GET /bytes/1", get("/bytes/1"), ok_octets(b"x"), keep),
        ("GET /bytes/13", get("/bytes/13"), ok_octets(b"x" * 13), keep),
        ("GET /bytes/65537", get("/bytes/65537"), ok_octets(b"x" * 65537), keep),
        ("GET /bytes/5?n=1", get("/bytes/5?n=1"), ok_octets(b"x" * 5), keep),
        ("GET /bytes/16777216 (limit)", get("/bytes/16777216"), ok_octets(b"x" * 16777216), keep),
        ("HEAD /bytes/16777216", get("/bytes/16777216", method="HEAD"),
         ok_octets(b"x" * 16777216, head_only=True), keep),
        ("GET /bytes/16777217 (past limit)", get("/bytes/16777217"), error(400), close),
        ("GET /bytes/ (empty)", get("/bytes/"), error(400), close),
        ("GET /bytes/abc", get("/bytes/abc"), error(400), close),
        ("GET /bytes/-1", get("/bytes/-1"), error(400), close),
        ("GET /bytes/12x", get("/bytes/12x"), error(400), close),
        ("HEAD /bytes/16777217", get("/bytes/16777217", method="HEAD"), error(400, head_only=True), close),
        ("POST /echo", post_echo(b"hello"), ok_octets(b"hello"), keep),
        ("POST /echo lower-case header", b"POST /echo HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc",
         ok_octets(b"abc"), keep),
        ("POST /echo empty", post_echo(b""), ok_octets(b""), keep),
        ("POST /echo without Content-Length", get("/echo", method="POST"), ok_octets(b""), keep),
        ("POST /echo?q", b"POST /echo?q=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi", ok_octets(b"hi"), keep),
        ("POST /echo 1048576 (limit)", post_echo(mib), ok_octets(mib), keep),
        ("POST /echo 1048577 (past limit), head only",
         b"POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n", error(413), close),
        ("POST /echo 1048577 (past limit), body sent", post_echo(mib + b"z"), error(413), close),
        ("GET /sleep/0", get("/sleep/0"), ok_text(b"ok"), keep),
        ("HEAD /sleep/0", get("/sleep/0", method="HEAD"), ok_text(b"ok", head_only=True), keep),
        ("GET /sleep/10000001 (past limit)", get("/sleep/10000001"), error(400), close),
        ("GET /sleep/x", get("/sleep/x"), error(400), close),
        ("GET /sleep/", get("/sleep/"), error(400), close),
        ("GET /cpu/0", get("/cpu/0"), ok_text(b"ok"), keep),
        ("GET /cpu/10000001 (past limit)", get("/cpu/10000001"), error(400), close),
        ("GET /cpu/1.5", get("/cpu/1.5"), error(400), close),
        ("GET /nope", get("/nope"), not_found(), keep),
        ("GET /echo", get("/echo"), not_found(), keep),
        ("POST /", post_echo(b"").replace(b"/echo", b"/", 1), not_found(), keep),
        ("POST /bytes/5", get("/bytes/5", method="POST"), not_found(), keep),
        ("HEAD /nope", get("/nope", method="HEAD"), not_found(head_only=True), keep),
        ("DELETE /", get("/", method="DELETE"), not_allowed(), keep),
        ("PUT /echo with a body", b"PUT /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", not_allowed(), keep),
        ("get / (methods are case-sensitive)", get("/", method="get"), not_allowed(), keep),
        ("head of 8192 bytes (limit)", head_of_size(8192), HELLO, keep),
        ("head of 8193 bytes (past limit)", head_of_size(8193), error(431), close),
        ("Transfer-Encoding", b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                              b"5\r\nhello\r\n0\r\n\r\n", error(501), close),
        ("bare LF", b"GET / HTTP/1.1\nHost: t\n\n", error(400), close),
        ("unknown version HTTP/1.2", get("/", version="1.2"), error(400), close),
        ("HTTP/2.0", get("/", version="2.0"), error(400), close),
        ("target without /", b"GET bytes/5 HTTP/1.1\r\n\r\n", error(400), close),
        ("absolute-form target", b"GET http://t/ HTTP/1.1\r\n\r\n", error(400), close),
        ("extra request-line field", b"GET / HTTP/1.1 x\r\n\r\n", error(400), close),
        ("space before colon", b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", error(400), close),
        ("obs-fold", b"GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n", error(400), close),
        ("header without colon", b"GET / HTTP/1.1\r\nNoColon\r\n\r\n", error(400), close),
        ("differing Content-Length", b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\n"
                                     b"Content-Length: 2\r\n\r\nab", error(400), close),
        ("bad Content-Length", b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", error(400), close),
        ("binary garbage (a TLS hello)", bytes.fromhex("16030100a5010000a10303") + b"\x00" * 20 + b"\r\n\r\n",
         error(400), close),
        ("HTTP/1.0 GET /", get("/", version="1.0"), ok_text(b"Hello, World!", connection="close"), close),
        ("HTTP/1.0 keep-alive", get("/", version="1.0", headers="Connection: keep-alive\r\n"),
         ok_text(b"Hello, World!", connection="keep-alive"), keep),
        ("HTTP/1.1 Connection: close", get("/", headers="Connection: close\r\n"),
         ok_text(b"Hello, World!", connection="close"), close),
        ("HTTP/1.1 404 with Connection: close", get("/x", headers="Connection: close\r\n"),
         not_found(connection="close"), close),
    ]
    return c


@check("exact_rows")
def check_exact_rows(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        failures = []
        cases = exact_cases()
        for what, request, expected, close in cases:
            try:
                exchange(server, request, expected, what, close)
            except (CheckFailed, OSError) as e:
                failures.append(f"{what}: {e}")
        log(f"{len(cases) - len(failures)} of {len(cases)} rows exact")

        # The handlers do what they say: /sleep waits without CPU, /cpu burns CPU.
        with connect(server) as s:
            cpu0 = server.cpu()
            took = timed(lambda: (s.sendall(get("/sleep/200000")),
                                  expect_response(s, ok_text(b"ok"), "GET /sleep/200000")))
            sleep_cpu = server.cpu() - cpu0
            require(took >= 0.2, f"/sleep/200000 answered after {took:.3f}s, expected >= 0.2s")
            require(took < 2.0 * SLOW, f"/sleep/200000 took {took:.3f}s")
            cpu0 = server.cpu()
            took_cpu = timed(lambda: (s.sendall(get("/cpu/100000")),
                                      expect_response(s, ok_text(b"ok"), "GET /cpu/100000")))
            spin_cpu = server.cpu() - cpu0
            require(took_cpu >= 0.1, f"/cpu/100000 answered after {took_cpu:.3f}s, expected >= 0.1s")
            require(spin_cpu >= 0.08, f"/cpu/100000 used {spin_cpu:.2f}s of server CPU, expected ~0.1s")
            require(sleep_cpu < 0.1, f"/sleep/200000 used {sleep_cpu:.2f}s of server CPU (should sleep)")
            log(f"/sleep/200000 took {took:.3f}s ({sleep_cpu:.2f}s CPU); "
                f"/cpu/100000 took {took_cpu:.3f}s ({spin_cpu:.2f}s CPU)")
        require(not failures, f"{len(failures)} row(s) wrong:\n" + "\n".join(failures))


# --- splits, pipelining, keep-alive ---------------------------------------------------------------

@check("one_byte_writes")
def check_one_byte_writes(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server, connect(server) as s:
        for request, expected in [
            (b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello", ok_octets(b"hello")),
            (b"GET /bytes/7 HTTP/1.1\r\nUser-Agent: one-byte\r\n\r\n", ok_octets(b"x" * 7)),
            (b"HEAD / HTTP/1.1\r\n\r\n", ok_text(b"Hello, World!", head_only=True)),
        ]:
            for i in range(len(request)):
                s.sendall(request[i:i + 1])
                time.sleep(0.002)  # separate segments, separate reads
                if i == len(request) // 2 or i == len(request) - 2:
                    early = nothing_arrives(s, 0.02)
                    require(early == b"", f"answered after {i + 1} of {len(request)} bytes: {show(early)}")
            expect_response(s, expected, f"{request[:20]!r} sent one byte per write")
        log("3 requests sent one byte per write, each answered exactly after its last byte")


@check("pipelined")
def check_pipelined(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        with connect(server) as s:
            s.sendall(GET_ROOT + post_echo(b"abc") + get("/bytes/100"))
            expect_response(s, HELLO + ok_octets(b"abc") + ok_octets(b"x" * 100),
                            "three pipelined requests in one write")
        with connect(server) as s:  # a slow first request must not be overtaken
            s.sendall(get("/sleep/50000") + GET_ROOT + get("/bytes/3", method="HEAD"))
            expect_response(s, ok_text(b"ok") + HELLO + ok_octets(b"xxx", head_only=True),
                            "pipelined behind /sleep/50000, answered in order")
        with connect(server) as s:
            s.sendall(get("/bytes/3") + get("/", headers="Connection: close\r\n") + GET_ROOT)
            expect_response(s, ok_octets(b"xxx") + ok_text(b"Hello, World!", connection="close"),
                            "pipelined with Connection: close in the middle", close=True)
        with connect(server) as s:
            s.sendall(GET_ROOT + b"BROKEN\r\n\r\n" + GET_ROOT)
            expect_response(s, HELLO + error(400), "pipelined then malformed", close=True)
        with connect(server) as s:  # 5 MB of responses to requests sent at once: backpressure
            s.sendall(get("/bytes/100000") * 50 + GET_ROOT)
            expect_response(s, ok_octets(b"x" * 100000) * 50 + HELLO, "50 pipelined /bytes/100000",
                            timeout=20)
        log("pipelined requests answered in order (including 50 x 100 KB in one write)")


@check("keepalive_100")
def check_keepalive_100(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server, connect(server) as s:
        for i in range(100):
            kind = i % 4
            if kind == 0:
                req, exp = GET_ROOT, HELLO
            elif kind == 1:
                req, exp = get(f"/bytes/{i * 37}"), ok_octets(b"x" * (i * 37))
            elif kind == 2:
                body = f"request {i} ".encode() * i
                req, exp = post_echo(body), ok_octets(body)
            else:
                req, exp = get(f"/bytes/{i}", method="HEAD"), ok_octets(b"x" * i, head_only=True)
            s.sendall(req)
            expect_response(s, exp, f"request {i + 1} of 100 on one connection")
        log("100 requests on one keep-alive connection")


@check("connection_close")
def check_connection_close(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        cases = [
            ("HTTP/1.1 Connection: close", get("/", headers="Connection: close\r\n"),
             ok_text(b"Hello, World!", connection="close")),
            ("HTTP/1.1 Connection: Close (case)", get("/bytes/4", headers="connection: Close\r\n"),
             ok_octets(b"xxxx", connection="close")),
            ("HTTP/1.1 Connection: close, 1 MB response", get("/bytes/1000000", headers="Connection: close\r\n"),
             ok_octets(b"x" * 1000000, connection="close")),
            ("HTTP/1.0 GET /", get("/", version="1.0"), ok_text(b"Hello, World!", connection="close")),
            ("HTTP/1.0 404", get("/nope", version="1.0"), not_found(connection="close")),
            ("HTTP/1.0 POST /echo", b"POST /echo HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi",
             ok_octets(b"hi", connection="close")),
        ]
        for what, request, expected in cases:
            with connect(server) as s:
                s.sendall(request)
                expect_response(s, expected, what, close=True)
        # A client that half-closes after its requests (nc -N, shutdown(SHUT_WR)) still gets
        # every response, then EOF.
        with connect(server) as s:
            s.sendall(get("/bytes/1000000") + GET_ROOT)
            s.shutdown(socket.SHUT_WR)
            expect_response(s, ok_octets(b"x" * 1000000) + HELLO, "requests then half-close", close=True)
        log(f"{len(cases)} closing requests and a half-closing client: full response, then EOF")


@check("http10_keepalive")
def check_http10_keepalive(bin_dir: str, model: str) -> None:
    ka = "Connection: keep-alive\r\n"
    with Server(bin_dir, model) as server, connect(server) as s:
        for i in range(5):
            s.sendall(get(f"/bytes/{i}", version="1.0", headers=ka))
            expect_response(s, ok_octets(b"x" * i, connection="keep-alive"), f"HTTP/1.0 keep-alive #{i + 1}")
        s.sendall(get("/", version="1.0", headers=ka, method="HEAD"))
        expect_response(s, ok_text(b"Hello, World!", connection="keep-alive", head_only=True),
                        "HTTP/1.0 HEAD keep-alive")
        s.sendall(get("/nope", version="1.0", headers="Connection: Keep-Alive\r\n"))
        expect_response(s, not_found(connection="keep-alive"), "HTTP/1.0 404 keep-alive")
        s.sendall(GET_ROOT)  # an HTTP/1.1 request on the same connection needs no header
        expect_response(s, HELLO, "HTTP/1.1 after HTTP/1.0 keep-alive")
        s.sendall(get("/", version="1.0"))
        expect_response(s, ok_text(b"Hello, World!", connection="close"),
                        "HTTP/1.0 without keep-alive ends it", close=True)
        log("HTTP/1.0 keep-alive: 8 requests on one connection, then close")


@check("echo_1mib_uneven")
def check_echo_1mib_uneven(bin_dir: str, model: str) -> None:
    rnd = random.Random(7)
    body = rnd.randbytes(1048576)
    request = post_echo(body)
    with Server(bin_dir, model) as server, connect(server) as s:
        sizes = [1, 3, 17, 2, 1000, 65536, 7, 131072, 12345, 1, 300000]
        pos, i = 0, 0
        while pos < len(request):
            n = sizes[i % len(sizes)]
            s.sendall(request[pos:pos + n])
            pos += n
            i += 1
            if i % 5 == 0:
                time.sleep(0.005)  # let some pieces arrive as separate reads
        expect_response(s, ok_octets(body), f"1 MiB echo sent in {i} uneven pieces", timeout=15)
        s.sendall(GET_ROOT)
        expect_response(s, HELLO, "GET / after the 1 MiB echo")
        log(f"1 MiB body in {i} pieces echoed exactly")


@check("slow_reader")
def check_slow_reader(bin_dir: str, model: str) -> None:
    n = 16777216
    head = ok_octets(b"x" * n, head_only=True)
    with Server(bin_dir, model) as server, connect(server, rcvbuf=8192) as s:
        s.sendall(get(f"/bytes/{n}"))
        # While this client reads nothing, the server must still answer others at once: the
        # 16 MiB body is written as the socket drains, not in one blocking go.
        time.sleep(0.3)
        with connect(server) as other:
            t = timed(lambda: (other.sendall(GET_ROOT), expect_response(other, HELLO, "GET / beside a stalled reader")))
            require(t < 1.0 * SLOW, f"GET / took {t:.2f}s while a 16 MiB response was stalled")
        got_head = recv_exact(s, len(head), "head of /bytes/16777216")
        require(got_head == head, f"head of /bytes/16777216: expected {show(head)}, got {show(got_head)}")
        sizes = [1, 100, 4096, 65536, 7, 30000, 16384]
        have, reads = 0, 0
        deadline = time.monotonic() + 60 * SLOW
        while have < n:
            require(time.monotonic() < deadline, f"slow reader: only {have} of {n} body bytes in time")
            chunk = s.recv(min(sizes[reads % len(sizes)], n - have))
            require(chunk != b"", f"EOF after {have} of {n} body bytes")
            bad = len(chunk) - chunk.count(b"x")
            require(bad == 0, f"body byte other than 'x' near offset {have}: {show(chunk[:64])}")
            have += len(chunk)
            reads += 1
            if reads % 64 == 0:
                time.sleep(0.001)
        s.sendall(GET_ROOT)
        expect_response(s, HELLO, "GET / after the 16 MiB response on the same connection")
        log(f"16 MiB read in {reads} small reads, every byte checked; others served meanwhile ({t * 1000:.0f} ms)")


def tree_rss_kib(server: Server) -> int:
    total = 0
    for pid in [server.pid, *server.children()]:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        except (FileNotFoundError, StopIteration):
            pass
    return total


@check("pipeline_flood")
def check_pipeline_flood(bin_dir: str, model: str) -> None:
    """A client pipelines up to 64 MiB of POST /echo requests and reads nothing: the server must
    stop reading instead of buffering the responses (memory stays flat), keep serving others,
    and cope with the reset at the end."""
    body = bytes(range(256)) * 64          # 16 KiB, materialised in every echo response
    request = post_echo(body)
    count = 4096                           # 64 MiB of requests, and as much response
    with Server(bin_dir, model) as server, connect(server) as w:
        w.sendall(GET_ROOT)
        expect_response(w, HELLO, "witness")
        base = settle(server)
        rss0 = tree_rss_kib(server)
        flood = connect(server, rcvbuf=4096)
        flood.setblocking(False)
        data = memoryview(request * count)
        sent, stalled_since = 0, None
        deadline = time.monotonic() + 4 * SLOW
        while sent < len(data) and time.monotonic() < deadline:
            try:
                sent += flood.send(data[sent:sent + 1048576])
                stalled_since = None
            except BlockingIOError:
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 0.5:
                    break  # the server stopped reading: what we wanted
                time.sleep(0.005)
        flood.setblocking(True)
        time.sleep(0.5)
        grown = tree_rss_kib(server) - rss0
        w.sendall(GET_ROOT)
        expect_response(w, HELLO, "witness while another client floods")
        expected = ok_octets(body)
        got = recv_exact(flood, 3 * len(expected), "first 3 flood responses", timeout=20)
        require(got == expected * 3, f"flood responses wrong: {show(got[:200])}")
        reset_close(flood)
        log(f"{sent / 1048576:.1f} MiB of pipelined POST /echo accepted before the server stopped "
            f"reading; server RSS grew {grown / 1024:.1f} MiB")
        require(grown < 32 * 1024, f"server memory grew {grown / 1024:.0f} MiB while a client did not "
                                   f"read: responses are being buffered without bound")
        ok = wait_until(lambda: settle(server, 1.0) == base, 5)
        require(ok, f"fds/threads/children {settle(server)} after the flood, before {base}")
        w.sendall(GET_ROOT)
        expect_response(w, HELLO, "witness after the flood")


# --- many clients -------------------------------------------------------------------------------

class Client:
    """One keep-alive connection of the concurrency check, driven by a selector."""

    def __init__(self, sock: socket.socket, cid: int, count: int):
        self.sock, self.cid, self.count = sock, cid, count
        self.done = 0
        self.out = b""
        self.buf = bytearray()
        self.expected = b""
        self.sent_at = 0.0

    def next_request(self) -> None:
        i = self.done
        kind = (self.cid + i) % 4
        if kind == 0:
            self.out, self.expected = GET_ROOT, HELLO
        elif kind == 1:
            n = (self.cid * 53 + i * 7) % 3000
            self.out, self.expected = get(f"/bytes/{n}"), ok_octets(b"x" * n)
        elif kind == 2:
            body = f"client {self.cid} request {i};".encode() * (1 + i % 5)
            self.out, self.expected = post_echo(body), ok_octets(body)
        else:
            n = self.cid + i
            self.out, self.expected = get(f"/bytes/{n}", method="HEAD"), ok_octets(b"x" * n, head_only=True)
        self.buf.clear()
        self.sent_at = time.monotonic()


def run_clients(server: Server, clients: int, per_client: int, timeout: float,
                on_tick=None) -> dict:
    """clients x per_client requests, every response compared exactly. Returns timings."""
    sel = selectors.DefaultSelector()
    conns = []
    for cid in range(clients):
        s = connect(server)
        s.setblocking(False)
        c = Client(s, cid, per_client)
        c.next_request()
        conns.append(c)
        sel.register(s, selectors.EVENT_WRITE, c)
    completions = []
    max_latency = 0.0
    active = clients
    deadline = time.monotonic() + timeout * SLOW
    try:
        while active:
            require(time.monotonic() < deadline,
                    f"{active} clients unfinished after {timeout * SLOW:.0f}s "
                    f"({len(completions)} of {clients * per_client} requests done)")
            if on_tick:
                on_tick(len(completions))
            for key, mask in sel.select(0.05):
                c: Client = key.data
                if mask & selectors.EVENT_WRITE:
                    n = c.sock.send(c.out)
                    c.out = c.out[n:]
                    if not c.out:
                        sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                try:
                    chunk = c.sock.recv(65536)
                except ConnectionResetError:
                    raise CheckFailed(f"client {c.cid}: reset at request {c.done + 1}") from None
                require(chunk != b"", f"client {c.cid}: EOF at request {c.done + 1}, got {show(bytes(c.buf))}")
                c.buf += chunk
                if len(c.buf) < len(c.expected):
                    continue
                if bytes(c.buf) != c.expected:
                    raise CheckFailed(f"client {c.cid} request {c.done + 1}: expected {show(c.expected)}, "
                                      f"got {show(bytes(c.buf))}")
                now = time.monotonic()
                completions.append(now)
                max_latency = max(max_latency, now - c.sent_at)
                c.done += 1
                if c.done == c.count:
                    sel.unregister(c.sock)
                    active -= 1
                else:
                    c.next_request()
                    sel.modify(c.sock, selectors.EVENT_WRITE, c)
    finally:
        for c in conns:
            c.sock.close()
        sel.close()
    return {"completions": completions, "max_latency": max_latency}


@check("concurrent_sleep")
def check_concurrent_sleep(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        sleeper = connect(server)
        state = {"sent": None, "answered": None, "buf": b""}
        expected_ok = ok_text(b"ok")

        def on_tick(completed: int):
            # Send the /sleep/200000 once every client is under way (1000 of 10000 requests
            # done), then watch for its answer.
            now = time.monotonic()
            if state["sent"] is None and completed >= 1000:
                sleeper.sendall(get("/sleep/200000"))
                state["sent"] = now
            elif state["sent"] is not None and state["answered"] is None:
                got = nothing_arrives(sleeper, 0)
                if got:
                    state["buf"] += got
                    if len(state["buf"]) >= len(expected_ok):
                        state["answered"] = time.monotonic()

        t_start = time.monotonic()
        stats = run_clients(server, 200, 50, timeout=120, on_tick=on_tick)
        total = time.monotonic() - t_start
        if state["answered"] is None:
            rest = recv_exact(sleeper, len(expected_ok) - len(state["buf"]), "/sleep/200000 response", 10)
            state["buf"] += rest
            state["answered"] = time.monotonic()
        sleeper.close()
        require(state["buf"] == expected_ok, f"/sleep/200000: expected {show(expected_ok)}, got {show(state['buf'])}")
        sent, answered = state["sent"], state["answered"]
        require(sent is not None, "the /sleep request was never sent (clients finished too fast?)")
        # Requests completed while the handler slept, with margins: 50 ms for the request to
        # reach the handler, 30 ms because its answer is only polled between client batches.
        in_window = sum(1 for t in stats["completions"] if sent + 0.05 < t < answered - 0.03)
        n = len(stats["completions"])
        log(f"{n} requests by 200 clients in {total:.2f}s ({n / total:.0f} req/s), max latency "
            f"{stats['max_latency'] * 1000:.0f} ms; /sleep/200000 in flight {answered - sent:.3f}s, "
            f"{in_window} requests completed meanwhile")
        require(n == 200 * 50, f"only {n} of 10000 requests completed")
        require(answered - sent >= 0.2, f"/sleep/200000 answered after {answered - sent:.3f}s")
        if model in BLOCKING_MODELS:
            need = 5 if SANITIZED else 30
            require(in_window >= need, f"{model}: only {in_window} requests completed during a "
                                       f"/sleep/200000 on another connection (expected >= {need})")
        else:
            log(f"{model} is an event loop: a blocking handler stalls every client (recorded, not judged)")


@check("reset_clients")
def check_reset_clients(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        with connect(server) as w:
            w.sendall(GET_ROOT)
            expect_response(w, HELLO, "witness before resets")
            base = settle(server)
            partials = [
                b"GET / HTTP/1.1\r\nHo",
                b"GET /bytes/100 HTT",
                b"POST /echo HTTP/1.1\r\nContent-Length: 100\r\n\r\nonly part of it",
                b"GET / HTTP/1.1\r\n\r\nGET /bytes/50000 HTTP/1.1\r\n\r\nGET / HT",
                get("/bytes/16777216"),  # reset while the server is writing 16 MiB
                b"P",
            ]
            for round_ in range(4):
                for i, partial in enumerate(partials):
                    s = connect(server, rcvbuf=4096)
                    s.sendall(partial)
                    if i >= 3:
                        time.sleep(0.02)  # let the server start answering
                    reset_close(s)
                    w.sendall(get(f"/bytes/{round_ * 10 + i}"))
                    expect_response(w, ok_octets(b"x" * (round_ * 10 + i)),
                                    f"witness after reset #{round_ * len(partials) + i + 1}")
            with connect(server) as fresh:
                fresh.sendall(GET_ROOT)
                expect_response(fresh, HELLO, "new client after the resets")
            ok = wait_until(lambda: settle(server, 1.0) == base, 5)
            now = settle(server)
            require(ok, f"after {4 * len(partials)} reset clients: fds/threads/children {now}, "
                        f"before {base}")
            require(server.alive(), "server died")
        log(f"{4 * len(partials)} half-requests reset (RST); the witness and new clients were served; "
            f"fds/threads/children back to {base}")


@check("fd_baseline")
def check_fd_baseline(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        exchange(server, GET_ROOT, HELLO, "warm-up")
        base = settle(server)
        socks = []
        for i in range(50):
            s = connect(server)
            kind = i % 5
            if kind == 1:
                s.sendall(GET_ROOT)
                expect_response(s, HELLO, "keep-alive client")
            elif kind == 2:
                s.sendall(b"GET /bytes/10 HTTP/1.1\r\nHost")
            elif kind == 3:
                s.sendall(get("/", headers="Connection: close\r\n"))
                expect_response(s, ok_text(b"Hello, World!", connection="close"), "closing client", close=True)
            elif kind == 4:
                s.sendall(post_echo(b"x" * 5000)[:-100])
            socks.append(s)
        open_state = settle(server)
        log(f"baseline fds/threads/children {base}; with 50 clients {open_state}")
        if model in PROCESS_MODELS:
            require(open_state[2] >= 40, f"fork: expected a child per open client, saw {open_state[2]}")
        else:
            require(open_state[0] >= base[0] + 40, f"expected >= 40 more fds with 40 open clients, saw {open_state[0]}")
        for s in socks:
            s.close()
        ok = wait_until(lambda: settle(server, 1.0) == base, 5)
        now = settle(server)
        require(ok, f"after every client closed: fds/threads/children {now}, baseline {base}")
        zombies = [p for p, st in server.children().items() if st == "Z"]
        require(not zombies, f"{len(zombies)} zombie children, e.g. {zombies[:10]}")
        log(f"all 50 clients closed: back to {now}")


@check("sigterm")
def check_sigterm(bin_dir: str, model: str) -> None:
    limit = 2.0 * (2 if SANITIZED else 1)
    with Server(bin_dir, model) as server:
        under_tsan = server.sanitizer_threads() > 0
        socks = []
        for i in range(6):
            s = connect(server)
            if i % 3 == 0:
                s.sendall(GET_ROOT)
                expect_response(s, HELLO, "keep-alive client")
            elif i % 3 == 1:
                s.sendall(b"GET / HTTP/1.1\r\nHo")
            socks.append(s)
        if model in BLOCKING_MODELS:
            s = connect(server)  # a handler sleeping for 5 s must not hold the shutdown up
            s.sendall(get("/sleep/5000000"))
            socks.append(s)
        settle(server)
        children = server.children()
        if model in PROCESS_MODELS:
            require(len(children) >= 7, f"fork: expected 7 children with 7 open clients, saw {children}")
        if model in WORKER_PROCESS_MODELS:
            require(len(children) >= 1, f"{model}: expected its worker processes, saw {children}")
        status, took = server.stop(limit)
        require(status is not None, f"still running {limit:.0f}s after SIGTERM")
        require(status == 0, f"exit status {status} after SIGTERM, expected 0")
        require(took <= limit, f"took {took:.2f}s to exit")

        def none_left():
            for pid in server.known_children:
                st = proc_stat(pid)
                if st is not None and st[0] != "Z":
                    return False
            return True

        require(wait_until(none_left, 1.0), f"children still running after the server exited: "
                                            f"{[p for p in server.known_children if proc_stat(p)]}")
        leftovers = [p for p in server.known_children if proc_stat(p)]
        require(not leftovers, f"child processes left (zombies): {leftovers}")
        for s in socks:  # every client sees its connection end
            s.settimeout(2 * SLOW)
            try:
                while s.recv(65536):
                    pass
            except ConnectionResetError:
                pass
            except socket.timeout:
                raise CheckFailed("a client connection stayed open after the server exited") from None
            s.close()
        refused = False
        try:
            connect(server, timeout=1).close()
        except OSError:
            refused = True
        require(refused, "the port still accepts connections after exit")
        rest = server.remaining_stdout()
        require(rest == b"", f"stdout must hold exactly one line; also got {show(rest)}")
        log(f"SIGTERM with {len(socks)} open connections: exit 0 in {took:.2f}s, "
            f"{len(server.known_children)} children gone")

    # The ready line means "ready": a SIGTERM sent the moment it appears (as a harness that
    # only probes a server does) must already get the orderly exit 0, not the default action.
    if under_tsan:
        # TSan's runtime takes every signal itself and runs the program's handler later, at an
        # intercepted call. Measured with server-poll (make tsan): 3 of 80 SIGTERMs sent during
        # start-up never reached the handler; the process sat in poll() waking each second with
        # nothing pending or blocked in /proc/<pid>/status. Release and ASan builds pass this
        # 40 of 40 every time, so under TSan it would test TSan's signal delivery, not ours.
        log("SIGTERM right after the ready line: not checked under TSan (its runtime defers "
            "signal handlers; Release and ASan builds check it)")
        return
    statuses = []
    for _ in range(40):
        with Server(bin_dir, model) as quick:
            quick.proc.send_signal(signal.SIGTERM)  # at once: no /proc scan before it
            try:
                statuses.append(quick.proc.wait(limit))
            except subprocess.TimeoutExpired:
                statuses.append(None)
    bad = [st for st in statuses if st != 0]
    require(not bad, f"SIGTERM right after the ready line: {len(bad)} of {len(statuses)} exits were not 0 "
                     f"(statuses {sorted(set(statuses), key=str)}; negative = killed by that signal)")
    log(f"SIGTERM right after the ready line: exit 0 in {len(statuses)} of {len(statuses)} starts")


# --- resource limits (§3) --------------------------------------------------------------------

@check("connections_1100")
def check_connections_1100(bin_dir: str, model: str) -> None:
    total = 1100
    with Server(bin_dir, model) as server:
        sel = selectors.DefaultSelector()  # epoll: fds above 1024 are fine here
        socks = [connect(server, timeout=10) for _ in range(total)]
        try:
            # Let the server take every connection; past FD_SETSIZE, select answers 503 at once.
            settle(server, 5.0)
            for i, s in enumerate(socks):
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, i)
            early = {key.data for key, _ in sel.select(0.5 * SLOW)}
            rejected, served = [], []
            for i, s in enumerate(socks):
                s.setblocking(True)
                if i in early:
                    expect_response(s, error(503), f"connection {i + 1} (answered unasked)", close=True)
                    rejected.append(i)
                else:
                    s.sendall(GET_ROOT)
            for i, s in enumerate(socks):
                if i not in early:
                    expect_response(s, HELLO, f"connection {i + 1} of {total}", timeout=20)
                    served.append(i)
            # The served ones stay usable: a second request on a sample of them.
            for i in served[::50]:
                socks[i].sendall(get("/bytes/3"))
                expect_response(socks[i], ok_octets(b"xxx"), f"second request on connection {i + 1}")
            log(f"{total} simultaneous connections: {len(served)} served, {len(rejected)} got 503")
            if model == "select":
                require(all(i in served for i in range(1000)), "select: one of the first 1000 connections was not served")
                require(len(rejected) >= total - 1024,
                        f"select: expected >= {total - 1024} connections past FD_SETSIZE to get 503, "
                        f"got {len(rejected)}")
            else:
                require(not rejected, f"{model}: {len(rejected)} connections refused with 503")
        finally:
            sel.close()
            for s in socks:
                s.close()
        exchange(server, GET_ROOT, HELLO, "new client after the 1100 closed")


@check("fd_limit")
def check_fd_limit(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model, nofile=64) as server:
        socks = []
        for _ in range(200):
            s = connect(server)
            s.sendall(GET_ROOT)
            socks.append(s)
        time.sleep(0.3)
        cpu0, t0 = server.cpu(), time.monotonic()
        time.sleep(2.0)
        used, span = server.cpu() - cpu0, time.monotonic() - t0
        share = used / span
        answered = sum(1 for s in socks if nothing_arrives(s, 0))
        err_lines = len(server.stderr_text().splitlines())
        log(f"ulimit -n 64, 200 clients: server CPU {share * 100:.0f}% over {span:.1f}s; "
            f"{answered} clients answered so far; stderr {err_lines} lines")
        require(server.alive(), "server died at the fd limit")
        require(share < 0.5, f"server used {share * 100:.0f}% CPU while out of fds (accept spin?)")
        # One report per back-off, not one per failed accept(): CPython 3.11's asyncio at its
        # default settings wrote 80k lines a second here (every model writes < 100 in all).
        require(err_lines < 1000, f"server wrote {err_lines} lines of stderr at the fd limit "
                                  f"(one per failed accept?)")
        for s in socks:
            s.close()
        # Once the others are gone, new clients are served normally.
        latencies = []
        resets = 0
        for i in range(20):
            t = time.monotonic()
            while True:
                try:
                    exchange(server, get(f"/bytes/{i}"), ok_octets(b"x" * i), f"new client {i + 1} after the flood")
                    break
                except CheckFailed as e:
                    # libuv's policy at EMFILE (its "EMFILE trick", also Twisted's): accept and
                    # close what waits in the backlog while the server is still at its limit, so
                    # a client that connects before the flood's descriptors are released is
                    # reset instead of waiting. Allowed for those frameworks only, for the first
                    # client, a few times; everyone else must serve it at once.
                    if model not in RESET_AT_FD_LIMIT or i > 0 or resets >= 3 or "reset" not in str(e):
                        raise
                    resets += 1
                    time.sleep(0.1)
            latencies.append(time.monotonic() - t)
        # The first may wait for a back-off to end; later ones must be quick.
        require(max(latencies[5:]) < 1.0 * SLOW, f"new clients slow after the flood: {latencies}")
        with connect(server) as s:
            for i in range(10):
                s.sendall(GET_ROOT)
                expect_response(s, HELLO, f"keep-alive request {i + 1} after the flood")
        if resets:
            log(f"{model}: the first new client was reset {resets} time(s) at the fd limit (libuv's EMFILE policy)")
        log(f"then 20 new clients served (first {latencies[0] * 1000:.0f} ms, "
            f"max of the rest {max(latencies[5:]) * 1000:.0f} ms)")


@check("no_zombies")
def check_no_zombies(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        exchange(server, GET_ROOT, HELLO, "warm-up")
        base = settle(server)
        max_zombies = 0
        for i in range(500):
            s = connect(server)
            kind = i % 3
            if kind == 1:
                s.sendall(get("/", headers="Connection: close\r\n"))
                expect_response(s, ok_text(b"Hello, World!", connection="close"), f"client {i + 1}", close=True)
            elif kind == 2:
                s.sendall(b"GET / HT")
            s.close()
            if i % 50 == 49:
                max_zombies = max(max_zombies, sum(1 for st in server.children().values() if st == "Z"))
        ok = wait_until(lambda: settle(server, 1.0) == base, 5)
        now = settle(server)
        kids = server.children()
        zombies = [p for p, st in kids.items() if st == "Z"]
        log(f"500 connections opened and closed: fds/threads/children {now} (baseline {base}); "
            f"zombies now {len(zombies)}, at most {max_zombies} seen meanwhile")
        require(not zombies, f"{len(zombies)} zombie children left, e.g. {zombies[:10]}")
        require(ok, f"fds/threads/children {now} did not return to the baseline {base}")
        exchange(server, GET_ROOT, HELLO, "client after the churn")


# --- real clients ----------------------------------------------------------------------------------

def run_tool(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    tool = shutil.which(args[0])
    require(tool is not None, f"{args[0]} is not installed (make deps)")
    return subprocess.run(args, capture_output=True, timeout=timeout * SLOW)


@check("curl")
def check_curl(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        url = f"http://{server.host}:{server.port}"
        cases = [
            (["-sS", f"{url}/"], b"Hello, World!"),
            (["-sS", f"{url}/bytes/100000"], b"x" * 100000),
            (["-sS", "--data-binary", "hello curl", f"{url}/echo"], b"hello curl"),
            (["-sS", "--http1.0", f"{url}/"], b"Hello, World!"),
            (["-sS", "-I", f"{url}/"], ok_text(b"Hello, World!", head_only=True)),
            (["-sS", "-o", "/dev/null", "-w", "%{http_code}", f"{url}/nope"], b"404"),
            (["-sS", "-o", "/dev/null", "-w", "%{http_code}", "-X", "DELETE", f"{url}/"], b"405"),
            # Two URLs in one run: the second must reuse the keep-alive connection.
            (["-sS", "-w", "[%{num_connects}]", f"{url}/", f"{url}/bytes/3"], b"Hello, World![1]xxx[0]"),
        ]
        for args, expected in cases:
            r = run_tool(["curl", "--max-time", "10", *args], 20)
            require(r.returncode == 0, f"curl {' '.join(args)}: exit {r.returncode}: {r.stderr.decode()[-300:]}")
            require(r.stdout == expected, f"curl {' '.join(args)}: expected {show(expected)}, got {show(r.stdout)}")
        log(f"curl: {len(cases)} invocations, exact bodies")


@check("wrk")
def check_wrk(bin_dir: str, model: str) -> None:
    with Server(bin_dir, model) as server:
        url = f"http://{server.host}:{server.port}/"
        r = run_tool(["wrk", "-t", "1", "-c", "50", "-d", "2s", "--timeout", "2s", url], 30)
        out = r.stdout.decode(errors="replace")
        require(r.returncode == 0, f"wrk exit {r.returncode}: {out}{r.stderr.decode()}")
        m = re.search(r"(\d+) requests in", out)
        rps = re.search(r"Requests/sec:\s*([\d.]+)", out)
        require(m is not None and rps is not None, f"unexpected wrk output:\n{out}")
        require("Socket errors" not in out, f"wrk reports socket errors:\n{out}")
        require("Non-2xx" not in out, f"wrk reports non-2xx responses:\n{out}")
        require(int(m.group(1)) > 0, f"wrk completed no requests:\n{out}")
        require(server.alive(), "server died under wrk")
        log(f"wrk -c 50 -d 2s: {m.group(1)} requests, {rps.group(1)} req/s, no errors")


# --- start-up ---------------------------------------------------------------------------------------

def listen_backlog(port: int) -> int:
    """The listening socket's backlog: ss shows it as Send-Q of a LISTEN socket."""
    r = run_tool(["ss", "-Hltn", f"sport = :{port}"], 10)
    fields = r.stdout.decode().split()
    require(len(fields) >= 3 and fields[0] == "LISTEN", f"ss shows no listener on {port}: {r.stdout!r}")
    return int(fields[2])


def run_server_expecting_failure(path: str, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([path, *args], capture_output=True, timeout=10 * SLOW, stdin=subprocess.DEVNULL)


@check("startup")
def check_startup(bin_dir: str, model: str) -> None:
    path = f"{bin_dir}/server-{model}"
    with Server(bin_dir, model) as server:
        err = server.stderr_text()
        require(model in err, f"stderr at start does not name the model: {err!r}")
        if model == "libevent":
            # The backend is known once the event_base exists, which may be after the ready line.
            wait_until(lambda: re.search(r"epoll|poll|select", server.stderr_text()) is not None, 2)
            err = server.stderr_text()
            require(re.search(r"epoll|poll|select", err) is not None,
                    f"libevent should print its chosen backend method: {err!r}")
        require(server.ready_line == f"listening on {server.host}:{server.port}", server.ready_line)
        exchange(server, GET_ROOT, HELLO, "GET / on a normally started server")
        # The kernel caps the backlog at net.core.somaxconn (4096 on Debian 12).
        with open("/proc/sys/net/core/somaxconn") as f:
            expected_backlog = min(4096, int(f.read()))
        require(listen_backlog(server.port) == expected_backlog,
                f"default backlog {listen_backlog(server.port)}, expected {expected_backlog}")
    with Server(bin_dir, model, args=("--backlog", "128")) as small:
        require(listen_backlog(small.port) == 128, f"--backlog 128 gave {listen_backlog(small.port)}")
        log(f"listen backlog: {expected_backlog} by default, 128 with --backlog 128")
    with Server(bin_dir, model) as server:
        taken_port = server.port
        log(f"ready line {server.ready_line!r}; stderr {err.strip().splitlines()[0]!r}")

        bad = [
            ["--no-such-flag"],
            ["--port", "70000"],
            ["--port", "abc"],
            ["--port", "-1"],
            ["--host", "not-an-address", "--port", "0"],
            ["--port", str(taken_port)],  # in use by the server above
        ]
        for args in bad:
            r = run_server_expecting_failure(path, args)
            err = r.stderr.decode(errors="replace")
            lines = [line for line in err.splitlines() if line.strip()]
            require(r.returncode == 2, f"server-{model} {' '.join(args)}: exit {r.returncode}, expected 2 "
                                       f"(stderr {err!r})")
            require(b"listening on" not in r.stdout, f"{' '.join(args)}: printed a ready line")
            require(lines and model in lines[0], f"{' '.join(args)}: first stderr line should give the reason "
                                                 f"with the model name: {err!r}")
            require(len(lines) <= 3, f"{' '.join(args)}: expected a one-line reason and usage, got {err!r}")
            log(f"{' '.join(args)} -> exit 2: {lines[0]!r}")
    # IPv6 loopback, bracketed in the ready line.
    with Server(bin_dir, model, host="::1") as server6:
        require(server6.ready_line == f"listening on [::1]:{server6.port}", server6.ready_line)
        exchange(server6, GET_ROOT, HELLO, "GET / over IPv6")
        log(f"IPv6: {server6.ready_line!r}")


# --- hostile clients (issue 10, docs/architecture.md §3): deadlines, the client cap, fairness ----------------

import select  # noqa: E402  (here, not at the top: keeps this section one block for merges)

from harness import expect_eof  # noqa: E402

def closed_by_server(s: socket.socket, within: float) -> tuple[float | None, bytes]:
    """Waits up to `within` seconds for the server to close s: returns (seconds until EOF or
    reset, or None if still open; bytes that arrived meanwhile)."""
    t0 = time.monotonic()
    got = b""
    while True:
        left = within - (time.monotonic() - t0)
        if left <= 0:
            return None, got
        r, _, _ = select.select([s], [], [], left)
        if not r:
            continue
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            return time.monotonic() - t0, got
        if not chunk:
            return time.monotonic() - t0, got
        got += chunk


@check("idle_timeout")
def check_idle_timeout(bin_dir: str, model: str) -> None:
    idle = 0.5
    with Server(bin_dir, model, args=("--idle-timeout", f"{idle}s", "--header-timeout", "10s")) as server:
        # A new connection that never sends: open before the deadline, then closed without a word.
        with connect(server) as s:
            early, got = closed_by_server(s, idle * 0.6)
            require(early is None, f"a silent new connection was closed after {early or 0:.2f}s, "
                                   f"before --idle-timeout {idle}s (bytes {show(got)})")
            took, got = closed_by_server(s, 3.0 * SLOW)
            require(took is not None, f"a silent new connection is still open {idle * 0.6 + 3 * SLOW:.1f}s "
                                      f"after connecting (--idle-timeout {idle}s)")
            require(got == b"", f"the idle close must be silent; got {show(got)}")
            new_total = idle * 0.6 + took
        # Keep-alive: requests every 0.3 s keep the connection (the deadline restarts after each
        # response), then silence closes it about `idle` after the last response.
        with connect(server) as s:
            for i in range(5):
                s.sendall(GET_ROOT)
                expect_response(s, HELLO, f"keep-alive request {i + 1}, {0.3 * i:.1f}s in")
                if i < 4:
                    time.sleep(0.3)
            t_last = time.monotonic()
            took, got = closed_by_server(s, 3.0 * SLOW)
            require(took is not None, "a quiet keep-alive connection was not closed")
            require(got == b"", f"the idle close must be silent; got {show(got)}")
            ka_total = time.monotonic() - t_last
            require(ka_total >= idle * 0.8, f"closed {ka_total:.2f}s after the last response, before "
                                            f"--idle-timeout {idle}s")
        # A response being written is not idle: a reader that stalls longer than the idle
        # timeout in the middle of a 4 MiB body still gets all of it (docs/architecture.md §3: no deadline).
        n = 4 << 20
        with connect(server, rcvbuf=8192) as s:
            s.sendall(get(f"/bytes/{n}"))
            time.sleep(idle * 2.5)
            expect_response(s, ok_octets(b"x" * n), f"/bytes/{n} read after a {idle * 2.5:.2f}s stall",
                            timeout=20)
            s.sendall(GET_ROOT)
            expect_response(s, HELLO, "GET / after the stalled read")
        require(new_total <= idle + 1.0 * SLOW, f"new connection held {new_total:.2f}s")
        require(ka_total <= idle + 1.0 * SLOW, f"keep-alive connection held {ka_total:.2f}s")
        exchange(server, GET_ROOT, HELLO, "a new client after the idle closes")
        log(f"--idle-timeout {idle}s: silent new connection closed after {new_total:.2f}s; keep-alive "
            f"connection (5 requests over 1.2s) closed {ka_total:.2f}s after its last response; "
            f"a reader stalled {idle * 2.5:.2f}s inside a 4 MiB response was not cut")


@check("header_timeout")
def check_header_timeout(bin_dir: str, model: str) -> None:
    header = 0.5
    with Server(bin_dir, model, args=("--header-timeout", f"{header}s", "--idle-timeout", "10s")) as server:
        with connect(server) as s:
            time.sleep(0.3)  # idle first: the header deadline runs from the first byte, not the connect
            partial = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: "
            s.sendall(partial[:1])
            t0 = time.monotonic()
            sent = 1
            got = b""
            expected = error(408)
            # Trickle the rest of a head that never ends, a byte per 0.1 s (slowloris).
            while len(got) < len(expected) and time.monotonic() - t0 < header + 3.0 * SLOW:
                r, _, _ = select.select([s], [], [], 0.1)
                if r:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                else:
                    try:
                        s.sendall(partial[sent:sent + 1] if sent < len(partial) else b"a")
                    except (BrokenPipeError, ConnectionResetError):
                        break
                    sent += 1
            took = time.monotonic() - t0
            require(got == expected, f"a head trickled for {took:.2f}s: expected {show(expected)}, "
                                     f"got {show(got)}")
            require(took >= header * 0.9, f"408 after {took:.2f}s, before --header-timeout {header}s")
            require(took <= header + 1.0 * SLOW, f"408 only after {took:.2f}s (--header-timeout {header}s)")
            expect_eof(s, "after the 408")
        # A complete request is not cut, however slowly its head came (within the deadline).
        with connect(server) as s:
            for b in GET_ROOT:
                s.sendall(bytes([b]))
                time.sleep(0.01)
            expect_response(s, HELLO, "a head sent in 0.25s with --header-timeout 0.5s")
            s.sendall(GET_ROOT)
            expect_response(s, HELLO, "the next request on the same connection")
        log(f"--header-timeout {header}s: a trickled head got 408 and a close {took:.2f}s after its "
            f"first byte ({sent} bytes sent); a complete slow head was served")


def held_resources(server: Server) -> int:
    """What the server holds for connections: fds of the server process plus live children."""
    kids = [p for p, st in server.children().items() if st != "Z"]
    return server.fds() + len(kids)


@check("linger_trickle")
def check_linger_trickle(bin_dir: str, model: str) -> None:
    """After a final response, a client that trickles a byte every 0.3 s (and never closes)
    must not hold the connection past the absolute lingering deadline (1 s after it starts)."""
    with Server(bin_dir, model) as server:
        exchange(server, GET_ROOT, HELLO, "warm-up")
        base = settle(server)
        base_held = held_resources(server)
        s = connect(server)
        try:
            s.sendall(get("/", headers="Connection: close\r\n"))
            expected = ok_text(b"Hello, World!", connection="close")
            got = recv_exact(s, len(expected), "the final response")
            t0 = time.monotonic()  # lingering close starts about now
            require(got == expected, f"final response: expected {show(expected)}, got {show(got)}")
            released = None
            next_byte = t0 + 0.3
            while time.monotonic() - t0 < 4.0 * SLOW:
                if held_resources(server) <= base_held:
                    released = time.monotonic() - t0
                    break
                if time.monotonic() >= next_byte:
                    try:
                        s.send(b"z")
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    next_byte += 0.3
                time.sleep(0.01)
            require(released is not None, f"a trickling lingerer still held {4.0 * SLOW:.0f}s after the "
                                          f"final response (lingering close must end 1s after it starts)")
            require(released <= 1.0 + 0.5 * SLOW, f"a trickling lingerer was held {released:.2f}s "
                                                  f"(the deadline is 1s after the final response)")
        finally:
            s.close()
        ok = wait_until(lambda: settle(server, 1.0) == base, 3)
        require(ok, f"fds/threads/children {settle(server)} after the lingerer, before {base}")
        log(f"a lingerer trickling a byte per 0.3s was released {released:.2f}s after the final response")


@check("max_clients")
def check_max_clients(bin_dir: str, model: str) -> None:
    cap = 5
    # prefork and reuseport cap each worker (docs/architecture.md §3): with one worker, that is the total.
    one_worker = ("--workers", "1") if model in WORKER_PROCESS_MODELS | {"reuseport"} else ()
    with Server(bin_dir, model, args=("--max-clients", str(cap), *one_worker)) as server:
        socks = []
        try:
            for i in range(cap):
                s = connect(server)
                s.sendall(GET_ROOT)
                expect_response(s, HELLO, f"client {i + 1} of {cap}")
                socks.append(s)
            for attempt in range(3):  # the extra ones get 503 and a close, every time
                with connect(server) as extra:
                    expect_response(extra, error(503), f"connection {cap + 1} (attempt {attempt + 1}) "
                                                       f"with --max-clients {cap}", close=True)
            for i, s in enumerate(socks):  # the admitted ones are still served
                s.sendall(get(f"/bytes/{i}"))
                expect_response(s, ok_octets(b"x" * i), f"client {i + 1} after the 503s")
            if model in PROCESS_MODELS:
                kids = [p for p, st in server.children().items() if st != "Z"]
                require(len(kids) <= cap, f"fork: {len(kids)} children with --max-clients {cap}")
            if model in THREAD_MODELS:
                require(server.threads() <= cap + 1 + server.sanitizer_threads(),
                        f"threads: {server.threads()} threads with --max-clients {cap}")
            socks.pop().close()
            # Once the server has seen that close, a new client is served again.
            t0 = time.monotonic()
            rejected = 0
            while True:
                s = connect(server)
                s.sendall(GET_ROOT)
                got = recv_exact(s, min(len(HELLO), len(error(503))), "a client after one closed")
                if got == HELLO[:len(got)]:
                    rest = recv_exact(s, len(HELLO) - len(got), "rest of the response")
                    require(got + rest == HELLO, f"expected {show(HELLO)}, got {show(got + rest)}")
                    socks.append(s)
                    break
                s.close()
                rejected += 1
                require(time.monotonic() - t0 < 2.0 * SLOW,
                        f"still 503 {time.monotonic() - t0:.1f}s after one of {cap} clients closed")
                time.sleep(0.05)
            waited = time.monotonic() - t0
        finally:
            for s in socks:
                s.close()
        log(f"--max-clients {cap}: 3 extra connections got 503 and a close while {cap} were served; "
            f"after one closed, a new client was served ({waited * 1000:.0f} ms, {rejected} 503s meanwhile)")


@check("fairness")
def check_fairness(bin_dir: str, model: str) -> None:
    """One connection pipelines 40 x /cpu/50000 (2 s of handler time); another's GET / must
    still be answered within 0.6 s each time it asks: a loop turn runs a bounded number of
    requests per connection."""
    count, spin_us = 40, 50000
    limit = 0.6 * SLOW
    with Server(bin_dir, model) as server, connect(server, timeout=30) as hog, connect(server) as other:
        other.sendall(GET_ROOT)
        expect_response(other, HELLO, "GET / before the pipeline")
        expected_hog = ok_text(b"ok") * count
        hog.sendall(get(f"/cpu/{spin_us}") * count)
        hog.setblocking(False)
        got_hog = b""
        waits = []
        t_start = time.monotonic()
        while len(got_hog) < len(expected_hog):
            require(time.monotonic() - t_start < 30 * SLOW, f"the pipeline of {count} /cpu/{spin_us} "
                                                            f"did not finish in {30 * SLOW:.0f}s")
            time.sleep(0.1)
            try:
                while True:
                    chunk = hog.recv(65536)
                    require(chunk != b"", "the pipelining connection was closed")
                    got_hog += chunk
            except BlockingIOError:
                pass
            if len(got_hog) >= len(expected_hog):
                break
            t = time.monotonic()
            other.sendall(GET_ROOT)
            expect_response(other, HELLO, f"GET / while {count} /cpu/{spin_us} are pipelined",
                            timeout=30)
            waits.append(time.monotonic() - t)
        total = time.monotonic() - t_start
        require(got_hog == expected_hog, f"pipelined responses: {show(got_hog)}")
        worst = max(waits) if waits else 0.0
        log(f"{count} x /cpu/{spin_us} pipelined on one connection took {total:.2f}s; the other "
            f"connection's GET / was answered {len(waits)} times, worst wait {worst * 1000:.0f} ms, "
            f"median {sorted(waits)[len(waits) // 2] * 1000 if waits else 0:.0f} ms")
        require(waits, "the pipeline finished before the other connection could ask")
        require(worst <= limit, f"GET / waited {worst:.2f}s behind another connection's pipeline "
                                f"(limit {limit:.1f}s): one client starves the others")


# --- main ------------------------------------------------------------------------------------------

def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", default="build/bin")
    ap.add_argument("--model", choices=MODELS)
    ap.add_argument("--check", default="all", help="a check name, or 'all'")
    ap.add_argument("--list", action="store_true", help="print the check names")
    a = ap.parse_args()
    if a.list:
        print("\n".join(CHECKS))
        return 0
    if not a.model:
        ap.error("--model is required")
    names = list(CHECKS) if a.check == "all" else [a.check]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        ap.error(f"unknown check {unknown[0]} (known: {', '.join(CHECKS)})")
    # The 1100-connection check needs more descriptors than a default soft limit of 1024.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 8192:
        want = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    failed, skipped = [], []
    for name in names:
        t0 = time.monotonic()
        log(f"== {a.model}.{name}")
        try:
            CHECKS[name](a.bin_dir, a.model)
        except ModelUnavailable as e:
            skipped.append(name)
            log(f"SKIP {a.model}.{name}: {e.args[0][0] if e.args and e.args[0] else e}")
        except CheckFailed as e:
            failed.append(name)
            log(f"FAIL {a.model}.{name}: {e}")
        except Exception:  # a crash of the harness or an unexpected socket error is a failure too
            failed.append(name)
            log(f"FAIL {a.model}.{name}: unexpected error\n{traceback.format_exc()}")
        else:
            log(f"PASS {a.model}.{name} ({time.monotonic() - t0:.1f}s)")
    if failed:
        log(f"{len(failed)} of {len(names)} checks failed: {', '.join(failed)}")
        return 1
    if skipped:
        log(f"{len(skipped)} of {len(names)} checks skipped: the kernel lacks what server-{a.model} needs")
        return SKIPPED if len(skipped) == len(names) else 0
    return 0


SKIPPED = 77  # CTest's SKIP_RETURN_CODE (tests/conformance/CMakeLists.txt): shown as "Skipped"


if __name__ == "__main__":
    sys.exit(main())
