#!/usr/bin/python3
"""Writes tests/fuzz/corpus-response/: the seed corpus of the response-parser fuzzer.

    make_response_corpus.py --server build/bin/server-epoll [--out DIR]

Real responses are captured from server-epoll (each request's bytes as they came off the
socket, up to the server's close or a quiet 0.3 s); the rest are written out by hand: what other
servers send (nginx's and Apache's headers, chunked bodies with extensions and trailers, HTTP/1.0
bodies delimited by the close, 100 Continue, 204/304) and the broken and hostile responses the
generator must survive. Run it again after a protocol change and commit the result."""

import argparse
import os
import signal
import socket
import subprocess
import time

REQUESTS = {
    "get_root": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    "head_root": b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    "get_bytes_0": b"GET /bytes/0 HTTP/1.1\r\nHost: x\r\n\r\n",
    "get_bytes_1000": b"GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n\r\n",
    "post_echo": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
    "not_found": b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n",
    "method_405": b"PUT / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bad_400": b"GARBAGE\r\n\r\n",
    "te_501": b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
    "too_large_413": b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n",
    "header_431": b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
    "close": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "http10": b"GET / HTTP/1.0\r\n\r\n",
    "http10_keep_alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "pipelined_three": b"GET / HTTP/1.1\r\n\r\n" * 3,
    "pipelined_mixed": b"GET / HTTP/1.1\r\n\r\nGET /nope HTTP/1.1\r\n\r\nGET /bytes/20 HTTP/1.1\r\n\r\n",
    "sleep_0": b"GET /sleep/0 HTTP/1.1\r\n\r\n",
    "cpu_0": b"GET /cpu/0 HTTP/1.1\r\n\r\n",
}

HAND = {
    "nginx_root": b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Tue, 01 Dec 2026 08:00:00 GMT\r\n"
                  b"Content-Type: text/plain\r\nContent-Length: 13\r\nLast-Modified: Tue, 01 Dec 2026 07:00:00 GMT\r\n"
                  b"Connection: keep-alive\r\nETag: \"abc-d\"\r\nAccept-Ranges: bytes\r\n\r\nHello, World!",
    "apache_root": b"HTTP/1.1 200 OK\r\nDate: Tue, 01 Dec 2026 08:00:00 GMT\r\nServer: Apache/2.4.57 (Debian)\r\n"
                   b"Keep-Alive: timeout=5, max=100\r\nConnection: Keep-Alive\r\nContent-Length: 13\r\n"
                   b"Content-Type: text/plain\r\n\r\nHello, World!",
    "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n8\r\n, World!\r\n0\r\n\r\n",
    "chunked_ext_trailer": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
                           b"a;name=value\r\n0123456789\r\n0\r\nExpires: never\r\nX-T: 1\r\n\r\n",
    "chunked_upper_hex": b"HTTP/1.1 200 OK\r\ntransfer-encoding: Chunked\r\n\r\n1A\r\n" + b"z" * 26 + b"\r\n0\r\n\r\n",
    "chunked_not_last": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nbody until the close",
    "until_close_10": b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nthe body runs until the server closes",
    "continue_then_ok": b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "no_content_204": b"HTTP/1.1 204 No Content\r\nContent-Length: 99\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "not_modified_304": b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n",
    "bare_lf": b"HTTP/1.1 200 OK\nContent-Length: 3\n\nabc",
    "no_reason": b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
    "connection_list": b"HTTP/1.1 200 OK\r\nConnection: upgrade, close\r\nContent-Length: 1\r\n\r\nx",
    "dup_length_same": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
    "dup_length_differ": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde",
    "length_trailing_ws": b"HTTP/1.1 200 OK\r\nContent-Length: 4 \t\r\n\r\nabcd",
    "length_huge": b"HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
    "length_negative": b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    "chunk_size_huge": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\n",
    "obs_fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 0\r\n\r\n",
    "garbage": b"NOT HTTP AT ALL\r\n\r\n",
    "version_2": b"HTTP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
    "status_short": b"HTTP/1.1 20 OK\r\n\r\n",
    "status_zero": b"HTTP/1.1 000 Zero\r\nContent-Length: 0\r\n\r\n",
    "body_longer": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabcd",
    "truncated_head": b"HTTP/1.1 200 OK\r\nContent-Len",
    "nul_in_header": b"HTTP/1.1 200 OK\r\nX-\x00: \x00\xff\r\nContent-Length: 1\r\n\r\n!",
    "many_headers": b"HTTP/1.1 200 OK\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(200)) + b"Content-Length: 0\r\n\r\n",
}


def capture(port, request):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(request)
    s.settimeout(0.3)
    data = b""
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    s.close()
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--server", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus-response"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    srv = subprocess.Popen([a.server, "--host", "127.0.0.1", "--port", "0"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
    try:
        port = int(srv.stdout.readline().strip().rsplit(":", 1)[1])
        for name, req in REQUESTS.items():
            data = capture(port, req)
            if not data:
                raise SystemExit(f"no response to {name}")
            with open(os.path.join(a.out, "epoll_" + name), "wb") as f:
                f.write(data)
    finally:
        srv.send_signal(signal.SIGTERM)
        srv.wait(5)
    for name, data in HAND.items():
        with open(os.path.join(a.out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(REQUESTS) + len(HAND)} files to {a.out}")


if __name__ == "__main__":
    main()
