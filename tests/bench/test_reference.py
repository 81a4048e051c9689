"""The reference servers (issue 9): each installed one starts from bench/reference/ through
bench/harness/reference.py on a free loopback port in the foreground, answers the conformance
probe (its differences from the contract's bytes are printed, and only header lines may
differ), serves 100 keep-alive requests and /bytes/N, stops by PID on SIGTERM, and leaves no
process behind.

    /usr/bin/python3 test_reference.py NAME     (exit 77 = skipped, with the reason printed)
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))

from harness import procfs, reference  # noqa: E402

SKIP = 77
NAME = os.environ.get("CMBENCH_REFERENCE", "nginx")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_response(sock: socket.socket, buf: bytes) -> tuple[bytes, bytes, bytes]:
    """One response (head, body) off a keep-alive connection; returns the bytes after it."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed mid-head after {buf[:200]!r}")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    if length is None:
        raise AssertionError(f"no Content-Length in {head!r}")
    while len(rest) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError("connection closed mid-body")
        rest += chunk
    return head, rest[:length], rest[length:]


def alive_pids(pids) -> list[int]:
    out = []
    for pid in pids:
        st = procfs.proc_stat(pid)
        if st is not None and st.state != "Z":
            out.append(pid)
    return out


class ReferenceServer(unittest.TestCase):
    def test_start_probe_serve_stop(self):
        reason = reference.available(NAME)
        if reason:
            self.skipTest(reason)
        with tempfile.TemporaryDirectory(prefix=f"cmbench-ref-{NAME}-") as tmp:
            port = free_port()
            argv = reference.command(NAME, "127.0.0.1", port, tmp, None)
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, start_new_session=True)
            tree: set[int] = {proc.pid}
            try:
                why = reference.wait_for_port("127.0.0.1", port, 15, lambda: proc.poll() is None)
                self.assertIsNone(why, f"{why}: {reference.error_log(tmp)}")
                diffs = reference.probe("127.0.0.1", port)
                print(f"{NAME}: probe differences from the contract's bytes: {diffs or 'none'}")
                # Only extra header lines are allowed: status line, the two contract headers and
                # the body must be exactly the contract's.
                self.assertTrue(reference.like_for_like(diffs), f"{NAME}: {diffs}")
                self.assertEqual(diffs, reference.KNOWN_DIFFERENCES[NAME],
                                 "the report quotes KNOWN_DIFFERENCES: keep it true")
                with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                    buf = b""
                    t0 = time.monotonic()
                    for _ in range(100):
                        s.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
                        head, body, buf = read_response(s, buf)
                        self.assertTrue(head.startswith(b"HTTP/1.1 200 "), head)
                        self.assertEqual(body, b"Hello, World!")
                    elapsed = time.monotonic() - t0
                    for n in (13, 1024, 1048576):
                        s.sendall(f"GET /bytes/{n} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
                        head, body, buf = read_response(s, buf)
                        self.assertIn(b"application/octet-stream", head)
                        self.assertEqual(body, b"x" * n)
                print(f"{NAME}: 100 keep-alive GET / in {elapsed * 1000:.1f} ms on one connection")
                tree |= set(procfs.process_tree(proc.pid))
                self.assertTrue(proc.poll() is None, "server died while serving")
            finally:
                tree |= set(procfs.process_tree(proc.pid)) if proc.poll() is None else set()
                t0 = time.monotonic()
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)   # by PID: the master stops its workers
                try:
                    rc = proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                    rc = None
                stop_s = time.monotonic() - t0
                deadline = time.monotonic() + 5
                while alive_pids(tree - {proc.pid}) and time.monotonic() < deadline:
                    time.sleep(0.05)
                # Also whatever joined the server's process group (it leads a new session), in
                # case a worker was forked after the last look at the tree.
                tree |= set(procfs.process_group(proc.pid))
                left = alive_pids(tree - {proc.pid})
                for pid in left:   # never leave one behind for the next test
                    os.kill(pid, signal.SIGKILL)
            print(f"{NAME}: stopped in {stop_s:.2f} s, exit {rc}, {len(tree)} process(es) seen")
            self.assertIsNotNone(rc, "did not exit within 10 s of SIGTERM")
            self.assertEqual(left, [], f"processes left behind: {left}")


class ProbeDifferences(unittest.TestCase):
    """The probe's comparison itself, on fixed bytes (no server needed)."""

    def test_identical_is_empty(self):
        self.assertEqual(reference.differences(reference.EXPECTED_ROOT), [])

    def test_extra_and_changed_headers_are_named(self):
        got = (b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Tue, 01 Dec 2026 08:00:00 GMT\r\n"
               b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 13\r\n\r\nHello, World!")
        d = reference.differences(got)
        self.assertIn("extra header Server: nginx", d)
        self.assertIn("extra header Date: <the current time>", d)
        self.assertTrue(any(x.startswith("header Content-Type:") for x in d), d)
        self.assertEqual(len(d), 3, d)

    def test_missing_header_and_body(self):
        got = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHello"
        d = reference.differences(got)
        self.assertIn("missing header Content-Type: text/plain", d)
        self.assertTrue(any(x.startswith("body ") for x in d), d)
        self.assertTrue(any(x.startswith("header Content-Length:") for x in d), d)

    def test_like_for_like(self):
        self.assertTrue(reference.like_for_like(["extra header Server: nginx"]))
        self.assertTrue(reference.like_for_like([]))
        self.assertFalse(reference.like_for_like(["extra header Date: x", "body 'Hi' instead of 'Hello, World!'"]))

    def test_no_response(self):
        self.assertEqual(reference.differences(b""), ["no response"])

    def test_unknown_name_has_a_reason(self):
        self.assertIn("not a reference server", reference.available("iis"))


if __name__ == "__main__":
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        NAME = sys.argv.pop(1)
    reason = reference.available(NAME)
    if reason:
        print(f"SKIP: {reason}")
        sys.exit(SKIP)
    unittest.main(verbosity=2)
