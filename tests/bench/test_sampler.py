"""Tests of the /proc + cgroup readings on real process trees: the memory of a forked tree
(Pss_Anon + Pss_Shmem = N x K), a process that vanished mid-pass (never counted as 0), CPU of
live tasks, exited threads and reaped children, the cgroup counter against the /proc walk, CPU
that goes backwards (not clamped), context switches, and the readings' cost."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness import cgroup, procfs, sampler  # noqa: E402

PY = sys.executable


def spawn(code: str, *args: str) -> subprocess.Popen:
    """A Python process running `code`; it prints 'ready' when its tree is in place and then
    waits for stdin to close."""
    return subprocess.Popen([PY, "-c", textwrap.dedent(code), *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)


def wait_ready(p: subprocess.Popen) -> str:
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
        for f in (p.stdin, p.stdout):
            if f is not None and not f.closed:
                try:
                    f.close()
                except OSError:
                    pass


# N children, each touching K KiB of private memory; all map one shared file read-only too
# (file pages: in Pss, not in Pss_Anon + Pss_Shmem).
TREE = """
import mmap, os, sys, time
n, kib, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
f = open(path, "rb")
shared = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
for j in range(0, len(shared), 4096):
    shared[j]                                 # fault the file pages in
kids = []
r, w = os.pipe()
for i in range(n):
    pid = os.fork()
    if pid == 0:
        os.close(r)
        block = bytearray(kib * 1024)         # private and touched
        for j in range(0, len(block), 4096):
            block[j] = 1
        for j in range(0, len(shared), 4096):
            shared[j]
        os.write(w, b"k")
        time.sleep(60)
        os._exit(0)
    kids.append(pid)
os.close(w)
got = 0
while got < n:
    got += len(os.read(r, 64))
print("ready", flush=True)
sys.stdin.read()
for pid in kids:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
"""


class Memory(unittest.TestCase):
    def tree_reading(self, n: int, kib: int) -> sampler.Reading:
        with tempfile.NamedTemporaryFile() as f:
            f.write(b"x" * (8 << 20))   # 8 MiB file mapped by every process
            f.flush()
            p = spawn(TREE, str(n), str(kib), f.name)
            try:
                wait_ready(p)
                return sampler.TreeReader(p.pid).read(cpu=False, memory=True)
            finally:
                finish(p)

    def test_forked_tree_costs_n_times_k(self):
        small = self.tree_reading(2, 1024)
        big = self.tree_reading(12, 1024)
        self.assertTrue(small.complete and big.complete)
        self.assertEqual(big.procs, 13)
        # 10 more children of 1 MiB each: 10 MiB more Pss_Anon (plus each child's own
        # copy-on-write pages of the interpreter, a few hundred KiB).
        grew = big.model_kib - small.model_kib
        self.assertGreater(grew, 10 * 1024, (small.model_kib, big.model_kib))
        self.assertLess(grew, 10 * 1024 * 1.6, (small.model_kib, big.model_kib))

    def test_file_pages_are_not_model_memory(self):
        r = self.tree_reading(4, 256)
        # The 8 MiB file is mapped and touched by all 5 processes: it is in Pss (shared
        # among them), not in what the model allocated.
        self.assertGreater(r.pss_kib - r.model_kib, 7 * 1024, r)
        self.assertLess(r.model_kib, r.pss_kib)


class Vanished(unittest.TestCase):
    def test_vanished_process_makes_the_reading_incomplete_not_zero(self):
        gone = subprocess.Popen([PY, "-c", "pass"])
        gone.wait()
        p = spawn('print("ready", flush=True)\nimport sys\nsys.stdin.read()')
        try:
            wait_ready(p)
            real_tree = procfs.process_tree
            # A child listed by the walk but gone before it is read (the race of a fork server
            # whose children exit mid-pass).
            procfs.process_tree = lambda root: real_tree(root) + [gone.pid]
            try:
                r = sampler.TreeReader(p.pid).read(cpu=True, memory=True)
            finally:
                procfs.process_tree = real_tree
            self.assertFalse(r.complete)
            self.assertEqual(r.vanished, 1)
            self.assertEqual(r.procs, 1, "the vanished process is not counted (as 0 or otherwise)")
            self.assertEqual(r.attempts, sampler.RETRIES + 1, "an incomplete pass is retried")
            good = sampler.TreeReader(p.pid).read(cpu=True)
            w = sampler.window(good, r)
            self.assertIsNone(w.cpu_s, "a CPU figure from an incomplete pass would be wrong")
            self.assertTrue(any("missed processes" in n for n in w.notes), w.notes)
        finally:
            finish(p)

    def test_cpu_going_backwards_is_not_clamped(self):
        def mk(t, ns):
            return sampler.Reading(t, t, "cpu", True, 0, 1, 1, 1, 0.0, tree_cpu_ns=ns)
        w = sampler.window(mk(0.0, 5_000_000), mk(1.0, 2_000_000))
        self.assertIsNone(w.cpu_s)
        self.assertTrue(any("backwards" in n for n in w.notes))
        w = sampler.window(mk(0.0, 0), mk(1.0, 300_000_000))
        self.assertAlmostEqual(w.cpu_s, 0.3)

    def test_reading_covers_its_pass(self):
        p = spawn(TREE, "20", "64", __file__)
        try:
            wait_ready(p)
            t_before = time.monotonic()
            r = sampler.TreeReader(p.pid).read(cpu=True, memory=True)
            t_after = time.monotonic()
            self.assertLessEqual(t_before, r.t0)
            self.assertLess(r.t0, r.t1)
            self.assertLessEqual(r.t1, t_after)
            self.assertEqual(r.procs, 21)
        finally:
            finish(p)


SPIN = """
import os, sys, threading, time

def spin(seconds, clock):
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
elif mode == "livekids":                               # 3 children spinning, alive at the end
    r, w = os.pipe()
    for _ in range(3):
        if os.fork() == 0:
            spin(0.2, time.process_time)
            os.write(w, b"d")
            time.sleep(30)
            os._exit(0)
    got = 0
    while got < 3:
        got += len(os.read(r, 8))
print("done", flush=True)
sys.stdin.read()
"""


def cgroup_or_none(label: str):
    m = cgroup.probe()
    if m.version is None:
        return None, m.reason
    return cgroup.Group(m, label, None), None


class Cpu(unittest.TestCase):
    def measure(self, mode: str) -> tuple[sampler.Window, sampler.Window | None]:
        group, _why = cgroup_or_none("test-cpu")
        preexec = group.add_self if group else None
        p = subprocess.Popen([PY, "-c", textwrap.dedent(SPIN), mode], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, start_new_session=True,
                             preexec_fn=preexec)
        try:
            time.sleep(0.3)            # interpreter start-up happens before the window
            reader = sampler.TreeReader(p.pid, cgroup=group)
            a = reader.read(cpu=True)
            p.stdin.write("go\n")
            p.stdin.flush()
            self.assertEqual(p.stdout.readline().strip(), "done")
            b = reader.read(cpu=True)
            proc_w = sampler.window(a, b, prefer_cgroup=False)
            cg_w = sampler.window(a, b) if group else None
            return proc_w, cg_w
        finally:
            finish(p)
            if group:
                group.remove()

    def check(self, mode: str, spun: float) -> None:
        w, cg = self.measure(mode)
        self.assertEqual(w.cpu_source, "proc")
        self.assertGreater(w.cpu_s, spun * 0.9, f"{mode}: measured {w.cpu_s:.3f} s")
        self.assertLess(w.cpu_s, spun + 0.25, f"{mode}: measured {w.cpu_s:.3f} s")
        self.assertIsNotNone(w.user_s)
        self.assertGreater(w.user_s, spun * 0.5, f"{mode}: a spin loop is user time")
        if cg is not None:   # the kernel's sum over the cgroup agrees with the /proc walk
            self.assertEqual(cg.cpu_source, "cgroup")
            self.assertAlmostEqual(cg.cpu_s, w.cpu_s, delta=0.05 + 0.1 * w.cpu_s)

    def test_live_task_schedstat(self):
        self.check("self", 0.3)

    def test_exited_thread_is_counted(self):
        self.check("thread", 0.3)

    def test_reaped_child_counted_through_cutime(self):
        self.check("child", 0.3)

    def test_live_children_counted(self):
        self.check("livekids", 0.6)

    def test_idle_process_uses_no_cpu(self):
        p = spawn('print("ready", flush=True)\nimport sys\nsys.stdin.read()')
        try:
            wait_ready(p)
            reader = sampler.TreeReader(p.pid)
            a = reader.read()
            time.sleep(0.4)
            w = sampler.window(a, reader.read())
            self.assertLess(w.cpu_s, 0.02)
        finally:
            finish(p)


class CgroupCap(unittest.TestCase):
    def test_quota_caps_a_spinning_tree(self):
        m = cgroup.probe()
        if m.version is None:
            self.skipTest(f"no cgroup here: {m.reason}")
        g = cgroup.Group(m, "test-cap", (1000, 2500))
        try:
            self.assertAlmostEqual(g.share(), 0.4)
            code = "import os\nos.fork()\nwhile True: pass\n"   # two spinning processes
            p = subprocess.Popen([PY, "-c", code], preexec_fn=lambda: (os.sched_setaffinity(0, {0}),
                                                                       g.add_self()),
                                 start_new_session=True)
            try:
                # The interpreter starts under the 40 % cap (and on a busy machine): wait for
                # its fork rather than guessing how long start-up takes.
                deadline = time.monotonic() + 5.0
                while g.counts()[0] < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                self.assertEqual(g.counts()[0], 2, "the forked child is born in the group")
                u0, t0 = g.usage_ns(), time.monotonic()
                time.sleep(1.0)
                u1, t1 = g.usage_ns(), time.monotonic()
                share = (u1 - u0) / 1e9 / (t1 - t0)
                self.assertLess(share, 0.45, f"capped at 40 %, used {share:.2f}")
                self.assertGreater(share, 0.15, f"used {share:.2f}")
                self.assertGreater(g.throttled().get("nr_throttled", 0), 0)
            finally:
                os.killpg(p.pid, 9)
                p.wait()
        finally:
            g.remove()

    def test_not_root_says_why(self):
        if os.geteuid() == 0:
            real = os.geteuid
            os.geteuid = lambda: 1000
            try:
                m = cgroup.probe()
            finally:
                os.geteuid = real
        else:
            m = cgroup.probe()
        self.assertIsNone(m.version)
        self.assertIn("not root", m.reason)


class CgroupFiles(unittest.TestCase):
    """What the harness writes and reads, on a stand-in hierarchy in a temporary folder (the
    real kernel files are exercised by CgroupCap; this covers the interface a fresh Debian 12
    with cgroup v2 uses, which this v1 machine does not have)."""

    def test_v2_cpu_max_and_usage(self):
        with tempfile.TemporaryDirectory() as d:
            root = Path(d)
            (root / "cgroup.subtree_control").write_text("")
            g = cgroup.Group(cgroup.Method("v2", None, root, root), "t", (1000, 2500))
            gdir = g.dirs[0]
            self.assertEqual((gdir / "cpu.max").read_text(), "1000 2500")
            self.assertIn("+cpu", (root / "cgroup.subtree_control").read_text())
            (gdir / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n"
                                           "nr_periods 7\nnr_throttled 3\nthrottled_usec 42\n")
            self.assertEqual(g.usage_ns(), 1_500_000)
            self.assertEqual(g.user_sys_ns(), (1_000_000, 500_000))
            self.assertEqual(g.throttled(), {"nr_periods": 7, "nr_throttled": 3, "throttled_ns": 42_000})
            for f in gdir.iterdir():
                f.unlink()
            g.remove()
            self.assertFalse(gdir.exists())
            u = cgroup.Group(cgroup.Method("v2", None, root, root), "u", None)
            self.assertEqual((u.dirs[0] / "cpu.max").read_text(), "max 100000")

    def test_v1_quota_and_minimum(self):
        with tempfile.TemporaryDirectory() as d:
            cpu, acct = Path(d) / "cpu", Path(d) / "cpuacct"
            cpu.mkdir()
            acct.mkdir()
            g = cgroup.Group(cgroup.Method("v1", None, cpu, acct), "t", (1000, 2500))
            self.assertEqual((g.dirs[0] / "cpu.cfs_quota_us").read_text(), "1000")
            self.assertEqual((g.dirs[0] / "cpu.cfs_period_us").read_text(), "2500")
            self.assertEqual(len(g.dirs), 2, "v1 accounting lives in the cpuacct hierarchy")
            (g.dirs[1] / "cpuacct.usage").write_text("123456789\n")
            self.assertEqual(g.usage_ns(), 123456789)
            with self.assertRaises(OSError):
                cgroup.Group(cgroup.Method("v1", None, cpu, acct), "small", (500, 2500))
            self.assertEqual(sorted(p.name for p in cpu.iterdir()), [g.dirs[0].name],
                             "a group that could not be set up is removed again")


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
            before = reader.read()
            p.stdin.write("go\n")
            p.stdin.flush()
            p.stdout.readline()
            w = sampler.window(before, reader.read())
            self.assertGreaterEqual(w.ctx_vol, 200)
        finally:
            finish(p)

    def test_exited_tasks_make_proc_switches_unreported(self):
        p = subprocess.Popen([PY, "-c", textwrap.dedent(SPIN), "thread"], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, start_new_session=True)
        try:
            time.sleep(0.3)
            reader = sampler.TreeReader(p.pid)
            a = reader.read()
            # A thread is born and exits between the readings: /proc loses its switches.
            p.stdin.write("go\n")
            p.stdin.flush()
            p.stdout.readline()
            b = reader.read()
            # Pretend a task of the first reading exited (its switches are gone from /proc).
            a.tasks = a.tasks | {(p.pid, 999999)}
            w = sampler.window(a, b)
            self.assertIsNone(w.ctx_vol)
            self.assertTrue(any("context switches incomplete" in n for n in w.notes))
        finally:
            finish(p)


class CoreShare(unittest.TestCase):
    def test_core_contention(self):
        hz = procfs.CLK_TCK
        # Over 1 s the CPU was 100 % busy in user time, the tree used 0.4 s: 0.6 by others.
        a = sampler.Reading(0.0, 0.0, "cpu", True, 0, 1, 1, 1, 0.0, tree_cpu_ns=0,
                            core=[0, 0, 0, 0, 0, 0, 0, 0])
        b = sampler.Reading(1.0, 1.0, "cpu", True, 0, 1, 1, 1, 0.0, tree_cpu_ns=int(4e8),
                            core=[hz, 0, 0, 0, 0, 0, 0, 0])
        w = sampler.window(a, b)
        self.assertAlmostEqual(w.core_busy, 1.0)
        self.assertAlmostEqual(w.core_other_tasks, 0.6, places=2)


if __name__ == "__main__":
    unittest.main()
