"""Unit tests of the Python protocol module (servers/python/cmbench_http.py): the cases of the C++
parser, route and session tests (tests/unit/test_*.cpp) where they apply, against the same
exact bytes, plus what is Python-specific (the head cache, linear body parsing, fairness, the
command line). No sockets here: the models are tested over real sockets by the conformance
suite. Run: /usr/bin/python3 -m unittest discover -s tests/python
"""
import random
import sys
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "servers" / "python"))
import cmbench_http as http  # noqa: E402

HELLO = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"


def wire(status: str, ctype: str, body: bytes, extra: str = "", head_only: bool = False) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
            f"{extra}\r\n").encode()
    return head if head_only else head + body


def error_wire(status: str, reason: str) -> bytes:
    return wire(status, "text/plain", reason.encode(), "Connection: close\r\n")


def flat(out) -> bytes:
    return b"".join(bytes(p) for p in out)


def answer(*chunks: bytes):
    """Feeds the chunks to a fresh session (and more turns while it has requests left);
    returns (all response bytes, closing)."""
    s = http.Session()
    out = []
    for c in chunks:
        out += s.feed(c)
        while s.more:
            out += s.feed(b"")
    return flat(out), s.closing


def bytewise(request: bytes):
    """One byte per feed, as a server reading one byte per recv: returns (response, how many
    bytes had arrived when the first response byte appeared, closing)."""
    s = http.Session()
    for n in range(len(request)):
        out = s.feed(request[n:n + 1])
        while s.more:
            out += s.feed(b"")
        if out:
            return flat(out), n + 1, s.closing
    return b"", len(request) + 1, s.closing


def head_of_size(total: int) -> bytes:
    start, end = b"GET / HTTP/1.1\r\nX-Pad: ", b"\r\n\r\n"
    return start + b"a" * (total - len(start) - len(end)) + end


class ParserAccepts(unittest.TestCase):
    def test_simple_get_and_no_host(self):
        self.assertEqual(answer(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"), (HELLO, False))
        self.assertEqual(answer(b"GET / HTTP/1.1\r\n\r\n"), (HELLO, False))

    def test_methods_are_case_sensitive(self):
        not_allowed = wire("405 Method Not Allowed", "text/plain", b"Method Not Allowed",
                           "Allow: GET, HEAD, POST\r\n")
        self.assertEqual(answer(b"DELETE / HTTP/1.1\r\n\r\n"), (not_allowed, False))
        self.assertEqual(answer(b"get / HTTP/1.1\r\n\r\n"), (not_allowed, False))

    def test_body_may_hold_any_byte(self):
        body = bytes(range(256))
        got, _ = answer(b"POST /echo HTTP/1.1\r\nContent-Length: 256\r\n\r\n" + body)
        self.assertEqual(got, wire("200 OK", "application/octet-stream", body))

    def test_header_names_case_insensitive_and_ows(self):
        got, closing = answer(b"POST /echo HTTP/1.1\r\ncOnTeNt-LeNgTh: 3\r\nCONNECTION: CLOSE\r\n\r\nabc")
        self.assertEqual(got, wire("200 OK", "application/octet-stream", b"abc", "Connection: close\r\n"))
        self.assertTrue(closing)
        for head in (b"Content-Length:\t 2 \t", b"Content-Length:2"):
            got, _ = answer(b"POST /echo HTTP/1.1\r\n" + head + b"\r\n\r\nok")
            self.assertEqual(got, wire("200 OK", "application/octet-stream", b"ok"))

    def test_keep_alive_rules(self):
        def closes(req):
            return answer(req)[1]
        self.assertFalse(closes(b"GET / HTTP/1.1\r\n\r\n"))
        self.assertTrue(closes(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n"))
        self.assertTrue(closes(b"GET / HTTP/1.0\r\n\r\n"))
        self.assertFalse(closes(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"))
        self.assertFalse(closes(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"))
        self.assertTrue(closes(b"GET / HTTP/1.1\r\nConnection: foo, close\r\n\r\n"))
        self.assertFalse(closes(b"GET / HTTP/1.0\r\nConnection: upgrade, keep-alive\r\n\r\n"))
        self.assertFalse(closes(b"GET / HTTP/1.1\r\nX-Connection: close\r\n\r\n"))
        self.assertTrue(closes(b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"))  # close wins

    def test_duplicate_equal_content_length_and_query(self):
        got, _ = answer(b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nab")
        self.assertEqual(got, wire("200 OK", "application/octet-stream", b"ab"))
        got, _ = answer(b"GET /bytes/3?x=1&y=2 HTTP/1.1\r\n\r\n")
        self.assertEqual(got, wire("200 OK", "application/octet-stream", b"xxx"))

    def test_one_byte_at_a_time_equals_whole(self):
        for req in (b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
                    b"POST /echo HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world",
                    b"HEAD /bytes/16777216 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"):
            got, at, closing = bytewise(req)
            self.assertEqual(at, len(req), f"answered before the last byte: {req!r}")
            self.assertEqual((got, closing), answer(req))

    def test_body_in_uneven_pieces(self):
        body = b"b" * 100000
        req = b"POST /echo HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + body
        s = http.Session()
        n, step, out = 0, 1, []
        while n < len(req):
            out += s.feed(req[n:n + step])
            n += step
            if n < len(req):
                self.assertEqual(out, [], n)
            step = step * 3 + 1
        self.assertEqual(flat(out), wire("200 OK", "application/octet-stream", body))

    def test_many_requests_in_one_buffer(self):
        reqs = [b"GET / HTTP/1.1\r\n\r\n",
                b"POST /echo HTTP/1.1\r\nContent-Length: 4\r\n\r\nGET ",   # looks like a request
                b"HEAD /bytes/7 HTTP/1.1\r\n\r\n",
                b"GET /sleep/0 HTTP/1.1\r\nConnection: close\r\n\r\n"]
        expected = (HELLO + wire("200 OK", "application/octet-stream", b"GET ")
                    + wire("200 OK", "application/octet-stream", b"x" * 7, head_only=True)
                    + wire("200 OK", "text/plain", b"ok", "Connection: close\r\n"))
        self.assertEqual(answer(b"".join(reqs)), (expected, True))
        # every split of the same bytes gives the same answer
        data = b"".join(reqs)
        for cut in range(1, len(data)):
            self.assertEqual(answer(data[:cut], data[cut:]), (expected, True), cut)

    def test_trailing_partial_request_waits(self):
        s = http.Session()
        self.assertEqual(flat(s.feed(b"GET / HTTP/1.1\r\n\r\nGET /byt")), HELLO)
        self.assertFalse(s.closing)
        self.assertEqual(flat(s.feed(b"es/2 HTTP/1.1\r\n\r\n")), wire("200 OK", "application/octet-stream", b"xx"))


class ParserLimits(unittest.TestCase):
    def test_head_of_8192_accepted_8193_is_431(self):
        self.assertEqual(answer(head_of_size(8192)), (HELLO, False))
        self.assertEqual(bytewise(head_of_size(8192))[0], HELLO)
        self.assertEqual(answer(head_of_size(8193)), (error_wire("431 Request Header Fields Too Large",
                                                                 "Request Header Fields Too Large"), True))
        got, _, closing = bytewise(head_of_size(8193))
        self.assertTrue(got.startswith(b"HTTP/1.1 431 ") and closing)

    def test_endless_head_refused_at_byte_8193(self):
        req = b"GET / HTTP/1.1\r\nX-Pad: " + b"a" * 20000
        got, at, closing = bytewise(req)
        self.assertTrue(got.startswith(b"HTTP/1.1 431 "))
        self.assertEqual(at, 8193)
        self.assertEqual(answer(req[:8192]), (b"", False))

    def test_long_request_line_is_431(self):
        got, _ = answer(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n")
        self.assertTrue(got.startswith(b"HTTP/1.1 431 "))

    def test_body_limits(self):
        body = b"z" * http.MAX_BODY
        head = b"POST /echo HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n"
        self.assertEqual(answer(head), (b"", False))
        self.assertEqual(answer(head + body)[0], wire("200 OK", "application/octet-stream", body))
        too_large = (error_wire("413 Content Too Large", "Content Too Large"), True)
        self.assertEqual(answer(b"POST /echo HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"), too_large)
        for n in (b"18446744073709551616", b"9" * 5000, b"4294967296"):
            self.assertEqual(answer(b"POST /echo HTTP/1.1\r\nContent-Length: " + n + b"\r\n\r\n"), too_large)


BAD = (error_wire("400 Bad Request", "Bad Request"), True)


class ParserErrors(unittest.TestCase):
    def expect(self, req: bytes, expected=BAD):
        self.assertEqual(answer(req), expected, req)
        got, _, closing = bytewise(req)
        self.assertEqual((got, closing), expected, b"bytewise " + req)

    def test_malformed_request_line(self):
        for req in (b"GET\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/1.1 extra\r\n\r\n",
                    b"GET  / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1 \r\n\r\n", b" GET / HTTP/1.1\r\n\r\n",
                    b"GET\t/\tHTTP/1.1\r\n\r\n", b"\r\nGET / HTTP/1.1\r\n\r\n", b"G(T / HTTP/1.1\r\n\r\n",
                    b"GET x HTTP/1.1\r\n\r\n", b"GET * HTTP/1.1\r\n\r\n",
                    b"GET http://localhost/ HTTP/1.1\r\n\r\n", b"GET /a\x01 HTTP/1.1\r\n\r\n",
                    b"GET /\x7f HTTP/1.1\r\n\r\n", b"GET /\xc3\xa9 HTTP/1.1\r\n\r\n"):
            self.expect(req)

    def test_unknown_version(self):
        for v in (b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b"HTTP/1.10", b"HTTP/1",
                  b"HTTP/1.1x", b"FTP/1.1"):
            self.expect(b"GET / " + v + b"\r\n\r\n")

    def test_bare_line_endings(self):
        for req in (b"GET / HTTP/1.1\n\n", b"GET / HTTP/1.1\r\nHost: a\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: a\r\n\n", b"GET / HTTP/1.1\r\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHo\rst: a\r\n\r\n", b"GET / HTTP/1.1\r\nA: b\r\r\n\r\n"):
            self.expect(req)

    def test_bad_request_line_refused_before_the_headers(self):
        self.assertEqual(answer(b"GET / HTTP/9.9\r\n"), BAD)
        self.assertEqual(answer(b"GET / HTTP/1.1\nHost"), BAD)   # bare LF: no need to wait

    def test_malformed_headers(self):
        for field in (b"NoColon", b"Host : a", b"Host\t: a", b": empty-name", b"Bad Name: a",
                      b"X(y): a", b"X-A: b\r\n c", b"X-A: b\r\n\tc", b" Host: a", b"X-A: a\x01z",
                      b"X-A: a\x7fz"):
            self.expect(b"GET / HTTP/1.1\r\n" + field + b"\r\n\r\n")
        # obs-text is allowed in values
        self.assertEqual(answer(b"GET / HTTP/1.1\r\nX-A: caf\xc3\xa9\r\n\r\n"), (HELLO, False))

    def test_bad_content_length(self):
        for value in (b"", b"abc", b"-1", b"+5", b"5a", b"0x10", b"1 2", b"1,1", b"1.0"):
            self.expect(b"POST /echo HTTP/1.1\r\nContent-Length: " + value + b"\r\n\r\n")
        self.expect(b"POST /echo HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab")

    def test_transfer_encoding_is_501(self):
        self.expect(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                    (error_wire("501 Not Implemented", "Not Implemented"), True))
        # a malformed header still wins over Transfer-Encoding, as in the C++ parser
        self.expect(b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\nBad\r\n\r\n")

    def test_random_input_never_breaks_the_session(self):
        rnd = random.Random(5)
        alphabet = b"GET /HTP1.0\r\n:abc-x "
        for _ in range(3000):
            data = bytes(rnd.choice(alphabet) for _ in range(rnd.randint(1, 60)))
            got, closing = answer(data)
            if got:
                self.assertTrue(got.startswith(b"HTTP/1.1 "), data)


class Routes(unittest.TestCase):
    def test_root_and_head(self):
        self.assertEqual(answer(b"GET / HTTP/1.1\r\n\r\n")[0], HELLO)
        self.assertEqual(answer(b"HEAD / HTTP/1.1\r\n\r\n")[0],
                         wire("200 OK", "text/plain", b"Hello, World!", head_only=True))

    def test_bytes(self):
        for n in (0, 1, 13, 4096, 4097, 65536, 65537, 200000):
            self.assertEqual(answer(b"GET /bytes/%d HTTP/1.1\r\n\r\n" % n)[0],
                             wire("200 OK", "application/octet-stream", b"x" * n), n)

    def test_bytes_at_limit_is_views_of_one_block(self):
        out = http.Session().feed(b"GET /bytes/16777216 HTTP/1.1\r\n\r\n")
        self.assertEqual(out[0], b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                 b"Content-Length: 16777216\r\n\r\n")
        views = out[1:]
        self.assertEqual(sum(len(v) for v in views), 16777216)
        self.assertTrue(all(type(v) is memoryview and v.obj is http.FILL for v in views))
        self.assertEqual(answer(b"HEAD /bytes/16777216 HTTP/1.1\r\n\r\n")[0],
                         wire("200 OK", "application/octet-stream", b"x" * 16777216, head_only=True))

    def test_bad_numbers_are_400_and_close(self):
        for route in (b"/bytes/", b"/sleep/", b"/cpu/"):
            for n in (b"", b"x", b"-5", b"1e6", b"99999999999999999999", b"12x", b"1.5"):
                t0 = time.monotonic()
                self.assertEqual(answer(b"GET " + route + n + b" HTTP/1.1\r\n\r\n"), BAD, route + n)
                self.assertLess(time.monotonic() - t0, 0.5)
        self.assertEqual(answer(b"GET /bytes/16777217 HTTP/1.1\r\n\r\n"), BAD)
        self.assertEqual(answer(b"GET /sleep/10000001 HTTP/1.1\r\n\r\n"), BAD)
        self.assertEqual(answer(b"HEAD /bytes/16777217 HTTP/1.1\r\n\r\n"),
                         (error_wire("400 Bad Request", "Bad Request")[:-len(b"Bad Request")], True))

    def test_echo(self):
        self.assertEqual(answer(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")[0],
                         wire("200 OK", "application/octet-stream", b"hello"))
        self.assertEqual(answer(b"POST /echo HTTP/1.1\r\n\r\n")[0],
                         wire("200 OK", "application/octet-stream", b""))
        self.assertEqual(answer(b"POST /echo?q=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi")[0],
                         wire("200 OK", "application/octet-stream", b"hi"))
        self.assertEqual(answer(b"HEAD /echo HTTP/1.1\r\n\r\n")[0],
                         wire("404 Not Found", "text/plain", b"Not Found", head_only=True))

    def test_sleep_blocks_without_cpu(self):
        t0, c0 = time.monotonic(), time.thread_time()
        got, _ = answer(b"GET /sleep/50000 HTTP/1.1\r\n\r\n")
        self.assertEqual(got, wire("200 OK", "text/plain", b"ok"))
        self.assertGreaterEqual(time.monotonic() - t0, 0.05)
        self.assertLess(time.thread_time() - c0, 0.04)
        self.assertEqual(answer(b"HEAD /sleep/0 HTTP/1.1\r\n\r\n")[0],
                         wire("200 OK", "text/plain", b"ok", head_only=True))

    def test_cpu_spins(self):
        c0 = time.thread_time()
        self.assertEqual(answer(b"GET /cpu/30000 HTTP/1.1\r\n\r\n")[0], wire("200 OK", "text/plain", b"ok"))
        self.assertGreaterEqual(time.thread_time() - c0, 0.03)

    def test_404_405_keep_the_connection(self):
        for req in (b"GET /nope HTTP/1.1\r\n\r\n", b"GET /echo HTTP/1.1\r\n\r\n",
                    b"POST /bytes/5 HTTP/1.1\r\n\r\n"):
            self.assertEqual(answer(req), (wire("404 Not Found", "text/plain", b"Not Found"), False))
        # a 405 with a body: the body is skipped, the next request answered
        got, closing = answer(b"PUT /echo HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\n\r\n")
        self.assertEqual(got, wire("405 Method Not Allowed", "text/plain", b"Method Not Allowed",
                                   "Allow: GET, HEAD, POST\r\n") + HELLO)
        self.assertFalse(closing)

    def test_http10(self):
        self.assertEqual(answer(b"GET / HTTP/1.0\r\n\r\n"),
                         (wire("200 OK", "text/plain", b"Hello, World!", "Connection: close\r\n"), True))
        self.assertEqual(answer(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"),
                         (wire("200 OK", "text/plain", b"Hello, World!", "Connection: keep-alive\r\n"), False))
        self.assertEqual(answer(b"GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n"),
                         (wire("404 Not Found", "text/plain", b"Not Found", "Connection: close\r\n"), True))

    def test_every_error_status_has_its_reason(self):
        for status, reason in ((400, "Bad Request"), (408, "Request Timeout"), (413, "Content Too Large"),
                               (431, "Request Header Fields Too Large"), (501, "Not Implemented"),
                               (503, "Service Unavailable")):
            self.assertEqual(http.error_response(status), error_wire(f"{status} {reason}", reason))


class SessionBehaviour(unittest.TestCase):
    def test_closing_ignores_later_requests(self):
        s = http.Session()
        got = flat(s.feed(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\n\r\n"))
        self.assertEqual(got, wire("200 OK", "text/plain", b"Hello, World!", "Connection: close\r\n"))
        self.assertTrue(s.closing)
        self.assertEqual(s.feed(b"GET / HTTP/1.1\r\n\r\n"), [])

    def test_error_after_good_requests(self):
        self.assertEqual(answer(b"GET / HTTP/1.1\r\n\r\nBROKEN\r\n\r\nGET / HTTP/1.1\r\n\r\n"),
                         (HELLO + BAD[0], True))

    def test_reject_is_a_final_503(self):
        s = http.Session()
        self.assertEqual(flat(s.reject(503)), error_wire("503 Service Unavailable", "Service Unavailable"))
        self.assertTrue(s.closing)
        self.assertEqual(s.reject(408), [])

    def test_idle_session_holds_nothing(self):
        s = http.Session()
        s.feed(b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(s.buf, b"")
        self.assertEqual(s.head_at, 0.0)

    def test_fairness_bounds_requests_per_turn(self):
        s = http.Session()
        out = s.feed(b"GET /cpu/0 HTTP/1.1\r\n\r\n" * 40)
        self.assertEqual(len(out), http.REQUESTS_PER_TURN)
        self.assertTrue(s.more)
        turns = 1
        while s.more:
            out = s.feed(b"")
            self.assertLessEqual(len(out), http.REQUESTS_PER_TURN)
            turns += 1
        self.assertEqual(s.requests, 40)
        self.assertEqual(turns, 40 // http.REQUESTS_PER_TURN)

    def test_backpressure_bounds_output_per_turn(self):
        s = http.Session()
        one = wire("200 OK", "application/octet-stream", b"x" * 100000)
        out = flat(s.feed(b"GET /bytes/100000 HTTP/1.1\r\n\r\n" * 50))
        self.assertLess(len(out), http.OUTPUT_HIGH_WATER + len(one))
        while s.more:
            out += flat(s.feed(b""))
        self.assertEqual(out, one * 50)

    def test_head_is_parsed_once_and_body_costs_linear(self):
        calls = []
        real = http.parse_head
        http.parse_head = lambda head: calls.append(1) or real(head)
        try:
            pad = b"X-Pad: " + b"p" * 8000 + b"\r\n"
            body = bytes(random.Random(3).randbytes(200000))
            req = b"POST /echo HTTP/1.1\r\n" + pad + b"Content-Length: 200000\r\n\r\n" + body
            s = http.Session()
            out = []
            t0 = time.process_time()
            for i in range(len(req)):
                out += s.feed(req[i:i + 1])
            spent = time.process_time() - t0
        finally:
            http.parse_head = real
        self.assertEqual(flat(out), wire("200 OK", "application/octet-stream", body))
        self.assertEqual(len(calls), 1, "the head must be parsed once, not per body byte")
        # Quadratic re-scanning of an 8 KiB head for each of 200000 bytes would take minutes.
        self.assertLess(spent, 10.0)

    def test_header_deadline_bookkeeping(self):
        s = http.Session()
        self.assertEqual(s.head_at, 0.0)
        s.feed(b"GET / HT")
        first = s.head_at
        self.assertGreater(first, 0.0)
        s.feed(b"TP/1.1\r\n")
        self.assertEqual(s.head_at, first, "the header deadline runs from the first byte")
        s.feed(b"\r\n")
        self.assertEqual(s.head_at, 0.0)
        s.feed(b"POST /echo HTTP/1.1\r\nContent-Length: 5\r\n\r\nab")
        self.assertEqual(s.head_at, 0.0, "a body in progress is under the idle deadline")


class FakeConn:
    def __init__(self):
        self.session = http.Session()
        self.expired = []

    def expire(self, kind):
        self.expired.append(kind)


class TrackerDeadlines(unittest.TestCase):
    def opts(self, **kw):
        o = http.Options()
        o.idle_timeout, o.header_timeout, o.max_clients = kw.get("idle", 75.0), kw.get("header", 60.0), kw.get("cap", 3)
        return o

    def test_cap(self):
        t = http.Tracker(self.opts(cap=2))
        a, b, c = FakeConn(), FakeConn(), FakeConn()
        self.assertTrue(t.admit(a) and t.admit(b))
        self.assertFalse(t.admit(c))
        t.remove(a)
        self.assertTrue(t.admit(c))

    def test_idle_header_and_linger(self):
        t = http.Tracker(self.opts(idle=0.2, header=0.1))
        idle, partial, busy, lingering = FakeConn(), FakeConn(), FakeConn(), FakeConn()
        for c in (idle, partial, busy, lingering):
            t.admit(c)
        partial.session.feed(b"GET / HTTP/1.1\r\n")
        t.linger(lingering)
        time.sleep(0.15)
        busy.session.sent()
        t.sweep()
        self.assertEqual(partial.expired, ["header"])
        self.assertEqual(idle.expired, [])
        time.sleep(0.1)
        t.next_scan = 0
        t.sweep()
        self.assertEqual(idle.expired, ["idle"])
        self.assertNotIn(idle, t.conns)
        self.assertEqual(busy.expired, [])
        self.assertEqual(lingering.expired, [])
        time.sleep(http.LINGER - 0.2)
        t.sweep()
        self.assertEqual(lingering.expired, ["linger"])


class CommandLine(unittest.TestCase):
    def test_durations(self):
        for text, seconds in (("75s", 75), ("1.5", 1.5), ("500ms", 0.5), ("250us", 0.00025),
                              ("2m", 120), (".5s", 0.5)):
            self.assertAlmostEqual(http.duration(text), seconds)
        for bad in ("", "s", "1h", "-1s", "1.2.3", "ms5"):
            with self.assertRaises(Exception):
                http.duration(bad)


if __name__ == "__main__":
    unittest.main()
