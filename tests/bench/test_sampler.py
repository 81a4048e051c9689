"""Unit tests of the /proc sampler on real process trees: the PSS sum over a tree, CPU deltas
(live tasks from schedstat, exited threads, reaped children through cutime), context switches,
and the window arithmetic."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import psutil  # noqa: E402

from harness import procfs, sampler  # noqa: E402

PY = sys.executable


def spawn(code: str) -> subprocess.Popen:
    """A Python process running `code`; it prints 'ready' when its tree is in place and then
    waits for stdin to close."""
    return subprocess.Popen([PY, "-c", textwrap.dedent(code)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def wait_ready(p: subprocess.Popen, timeout: float = 20) -> str:
    line = p.stdout.readline()
    if not line.startswith("ready"):
        p.kill()
        raise AssertionError(f"helper did not get ready: {line!r}")
    return line


def finish(p: subprocess.Popen) -> None:
    """Ends a helper and everything it forked: each helper leads its own process group."""
    try:
        p.stdin.close()
        p.wait(timeout=20)
    finally:
        try:
            os.killpg(p.pid, 9)   # orphaned grandchildren would keep our output pipes open
        except ProcessLookupError:
            pass
        if p.poll() is None:
            p.wait()


TREE = """
import os, sys, time
MIB = 1 << 20
kids = []
for i in range(3):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        block = bytearray(8 * MIB)          # private, touched: 8 MiB of PSS each
        for j in range(0, len(block), 4096):
            block[j] = 1
        if i == 0:                           # one grandchild, to check the tree is walked
            if os.fork() == 0:
                os.write(w, b"g")
                time.sleep(30)
                os._exit(0)
        os.write(w, b"k")
        time.sleep(30)
        os._exit(0)
    os.close(w)
    kids.append((pid, r))
for pid, r in kids:
    want = 2 if pid == kids[0][0] else 1
    got = b""
    while len(got) < want:
        got += os.read(r, 2)
print("ready", flush=True)
sys.stdin.read()
for pid, _ in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


class ProcessTree(unittest.TestCase):
    def test_pss_sum_over_tree_matches_psutil(self):
        p = spawn(TREE)
        try:
            wait_ready(p)
            pids = procfs.process_tree(p.pid)
            self.assertEqual(len(pids), 5, f"parent + 3 children + 1 grandchild, got {pids}")
            s = sampler.TreeReader(p.pid).sample(want_pss=True)
            # psutil reads /proc/<pid>/smaps (not smaps_rollup) and finds the tree itself.
            tree = [psutil.Process(p.pid)] + psutil.Process(p.pid).children(recursive=True)
            expect_kib = sum(q.memory_full_info().pss for q in tree) / 1024
            self.assertEqual(s.procs, 5)
            self.assertAlmostEqual(s.pss_kib, expect_kib, delta=expect_kib * 0.05)
            self.assertGreater(s.pss_kib, 3 * 8 * 1024, "three children touched 8 MiB each")
            self.assertGreaterEqual(s.rss_kib, s.pss_kib, "RSS counts shared pages in full")
            self.assertEqual(s.threads, 5)
        finally:
            finish(p)

    def test_missing_process_is_not_an_error(self):
        p = subprocess.Popen([PY, "-c", "pass"])
        p.wait()
        self.assertIsNone(procfs.proc_stat(p.pid))
        self.assertIsNone(procfs.pss_kib(p.pid))
        s = sampler.TreeReader(p.pid).sample(want_pss=True)
        self.assertEqual((s.procs, s.cpu_ns), (0, 0))


SPIN = """
import os, sys, threading, time

def spin(seconds, clock):
    # Reading a CPU clock is a system call: check it rarely so the spin is user time.
    t0 = clock()
    while clock() - t0 < seconds:
        for _ in range(20000):
            pass

sys.stdin.readline()                                   # go
mode = sys.argv[1]
if mode == "child":                                    # a child that spins, exits, is reaped
    pid = os.fork()
    if pid == 0:
        spin(0.3, time.process_time)
        os._exit(0)
    os.waitpid(pid, 0)
elif mode == "thread":                                 # a thread that spins and exits
    t = threading.Thread(target=spin, args=(0.3, time.thread_time))
    t.start()
    t.join()
elif mode == "self":                                   # the process itself, still alive
    spin(0.3, time.thread_time)
print("done", flush=True)
sys.stdin.read()
"""


class CpuDeltas(unittest.TestCase):
    def measure(self, mode: str) -> tuple[float, sampler.Window]:
        p = subprocess.Popen([PY, "-c", textwrap.dedent(SPIN), mode], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            time.sleep(0.3)            # interpreter start-up happens before the window
            smp = sampler.Sampler(p.pid, period_s=0.05).start()
            t0 = time.monotonic()
            p.stdin.write("go\n")
            p.stdin.flush()
            self.assertEqual(p.stdout.readline().strip(), "done")
            smp.sample_now()
            t1 = time.monotonic()
            samples = smp.stop()
            return t1 - t0, sampler.window(samples, t0, t1)
        finally:
            finish(p)

    def check(self, mode: str) -> None:
        _wall, w = self.measure(mode)
        # 0.3 s of spinning, plus a little interpreter work (fork, thread start, printing).
        self.assertGreater(w.cpu_s, 0.27, f"{mode}: measured {w.cpu_s:.3f} s")
        self.assertLess(w.cpu_s, 0.50, f"{mode}: measured {w.cpu_s:.3f} s")
        self.assertIsNotNone(w.user_s)
        self.assertGreater(w.user_s, 0.15, f"{mode}: a spin loop is user time")

    def test_live_task_schedstat(self):
        self.check("self")

    def test_exited_thread_is_counted(self):
        self.check("thread")

    def test_reaped_child_counted_through_cutime(self):
        self.check("child")

    def test_idle_process_uses_no_cpu(self):
        p = spawn('print("ready", flush=True)\nimport sys\nsys.stdin.read()')
        try:
            wait_ready(p)
            smp = sampler.Sampler(p.pid, period_s=0.05).start()
            t0 = time.monotonic()
            time.sleep(0.4)
            t1 = time.monotonic()
            w = sampler.window(smp.stop(), t0, t1)
            self.assertLess(w.cpu_s, 0.02)
            self.assertGreaterEqual(w.samples_in_window, 4)
        finally:
            finish(p)


class ContextSwitches(unittest.TestCase):
    def test_sleeping_counts_voluntary_switches(self):
        code = """
        import sys, time
        sys.stdin.readline()
        for _ in range(200):
            time.sleep(0.001)
        print("done", flush=True)
        sys.stdin.read()
        """
        p = subprocess.Popen([PY, "-c", textwrap.dedent(code)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            time.sleep(0.2)
            reader = sampler.TreeReader(p.pid)
            before = reader.sample()
            p.stdin.write("go\n")
            p.stdin.flush()
            p.stdout.readline()
            after = reader.sample()
            self.assertGreaterEqual(after.ctx_vol - before.ctx_vol, 200)
        finally:
            finish(p)


class WindowArithmetic(unittest.TestCase):
    def mk(self, t, cpu_ns, pss=None, procs=1, core=None):
        return sampler.Sample(t=t, cost_s=0.001, procs=procs, threads=procs, cpu_ns=cpu_ns,
                              user_ticks=int(cpu_ns / 1e7 * 0.75), sys_ticks=int(cpu_ns / 1e7 * 0.25),
                              ctx_vol=int(t * 100), ctx_invol=0, rss_kib=100, pss_kib=pss,
                              tcp_mem_kib=0, core=core)

    def test_interpolates_counters_and_takes_max_of_gauges(self):
        # The tree burns 0.5 CPU-seconds per second, sampled at t = 0, 1, 2, 3.
        samples = [self.mk(t, int(t * 5e8), pss=1000 + 10 * t, procs=1 + t) for t in range(4)]
        w = sampler.window(samples, 0.5, 2.5)
        self.assertAlmostEqual(w.cpu_s, 1.0, places=6)
        self.assertEqual(w.ctx_vol, 200)
        self.assertEqual(w.pss_kib_max, 1020)     # samples at t=1, 2 are inside
        self.assertEqual(w.procs_max, 3)
        self.assertEqual(w.samples_in_window, 2)
        self.assertAlmostEqual(w.user_s / w.cpu_s, 0.75, places=1)

    def test_pss_only_from_the_full_tree(self):
        # A fork server still spawning: PSS was read at 11 processes, not at 5011.
        early = self.mk(0.0, 0, pss=17000, procs=11)
        full = self.mk(1.0, int(1e8), pss=None, procs=5011)
        w = sampler.window([early, full], 0.0, 1.0)
        self.assertIsNone(w.pss_kib_max)
        self.assertEqual(w.procs_max, 5011)
        self.assertTrue(any("fewer than 5011" in n for n in w.notes))
        # Once a reading of the full tree exists, it is the one reported.
        later = self.mk(1.5, int(1.5e8), pss=169000, procs=5011)
        w = sampler.window([early, full, later], 0.0, 2.0)
        self.assertEqual(w.pss_kib_max, 169000)

    def test_core_contention(self):
        hz = procfs.CLK_TCK
        # Over 1 s the core was 100 % busy in user time, the tree used 0.4 s: 0.6 by others.
        a = self.mk(0.0, 0, core=[0, 0, 0, 0, 0, 0, 0, 0])
        b = self.mk(1.0, int(4e8), core=[hz, 0, 0, 0, 0, 0, 0, 0])
        w = sampler.window([a, b], 0.0, 1.0)
        self.assertAlmostEqual(w.core_busy, 1.0)
        self.assertAlmostEqual(w.core_other_tasks, 0.6, places=2)


if __name__ == "__main__":
    unittest.main()
