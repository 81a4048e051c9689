"""System calls per request (bench/harness/syscalls.py).

Unit tests parse perf's CSV output and check the per-request arithmetic (baseline subtraction,
the 'other' calls, summary.csv names and units). The real tests count known servers for a
known number of requests and check the numbers against what the model must do: server-epoll
at one keep-alive connection makes one epoll_wait, one recvfrom and one sendmsg per request;
a forked process or a thread per connection makes at least one clone per connection. Where
perf cannot count (not root, no perf, no tracepoints) the real tests are skipped with the
reason, never passed."""
from __future__ import annotations

import os
import sys
import unittest
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))

from harness import plan, procfs, summary, syscalls  # noqa: E402
from harness.loadgen import Loadgen, LoadSpec  # noqa: E402
from harness.server import Server  # noqa: E402

BIN = Path(os.environ.get("CMBENCH_BIN_DIR", REPO / "build" / "bin"))

# perf stat -x, (no interval), as perf 6.1 prints it, with and without -G.
PLAIN = """# started on Tue Dec  1 08:21:29 2026

222,,raw_syscalls:sys_enter,1015560808,100.00,,
299,,context-switches,1015561079,100.00,,
15,,syscalls:sys_enter_read,1015561179,100.00,,
<not counted>,,syscalls:sys_enter_write,0,100.00,,
<not supported>,,cycles,0,100.00,,
"""
CGROUP = """27105,,raw_syscalls:sys_enter,cmbench-t1,349605976,100.00,,
2933,,context-switches,cmbench-t1,349605976,100.00,,
"""
# perf stat -I 100 -x, -G cg: a baseline window (0.0-0.3 s), disabled 0.3-0.55 s, a loaded
# window (0.55-1.0 s). In the baseline the cgroup ran in one interval only.
INTERVALS = """# started on Tue Dec  1 08:24:32 2026

     0.100220155,<not counted>,,raw_syscalls:sys_enter,cg,0,100.00,,
     0.100220155,<not counted>,,syscalls:sys_enter_epoll_wait,cg,0,100.00,,
     0.200509643,4,,raw_syscalls:sys_enter,cg,11000,100.00,,
     0.200509643,2,,syscalls:sys_enter_epoll_wait,cg,11000,100.00,,
     0.301401550,<not counted>,,raw_syscalls:sys_enter,cg,0,100.00,,
     0.301401550,<not counted>,,syscalls:sys_enter_epoll_wait,cg,0,100.00,,
     0.401594944,<not counted>,,raw_syscalls:sys_enter,cg,0,100.00,,
     0.401594944,<not counted>,,syscalls:sys_enter_epoll_wait,cg,0,100.00,,
     0.501818684,<not counted>,,raw_syscalls:sys_enter,cg,0,100.00,,
     0.501818684,<not counted>,,syscalls:sys_enter_epoll_wait,cg,0,100.00,,
     0.602035264,3000,,raw_syscalls:sys_enter,cg,52140921,100.00,,
     0.602035264,1000,,syscalls:sys_enter_epoll_wait,cg,52140921,100.00,,
     0.702651710,6000,,raw_syscalls:sys_enter,cg,100228943,100.00,,
     0.702651710,2000,,syscalls:sys_enter_epoll_wait,cg,100228943,100.00,,
     0.802862540,6000,,raw_syscalls:sys_enter,cg,100228943,100.00,,
     0.802862540,2000,,syscalls:sys_enter_epoll_wait,cg,100228943,100.00,,
     0.902862540,6000,,raw_syscalls:sys_enter,cg,100228943,100.00,,
     0.902862540,2000,,syscalls:sys_enter_epoll_wait,cg,100228943,100.00,,
     1.002862540,3000,,raw_syscalls:sys_enter,cg,50228943,100.00,,
     1.002862540,1000,,syscalls:sys_enter_epoll_wait,cg,50228943,100.00,,
"""


class Parsing(unittest.TestCase):
    def test_plain_csv(self):
        c = syscalls.parse_csv(PLAIN)
        self.assertEqual(c["raw_syscalls:sys_enter"], 222)
        self.assertEqual(c["context-switches"], 299)
        self.assertEqual(c["syscalls:sys_enter_read"], 15)
        self.assertIsNone(c["syscalls:sys_enter_write"])   # <not counted> is not 0
        self.assertIsNone(c["cycles"])                      # <not supported> either
        self.assertEqual(syscalls.parse_csv(CGROUP, cgroup=True)["raw_syscalls:sys_enter"], 27105)

    def test_intervals_split_into_the_two_windows(self):
        iv = syscalls.parse_intervals(INTERVALS, cgroup=True)
        self.assertEqual(len(iv), 10)
        self.assertAlmostEqual(iv[1][0], 0.200509643)
        self.assertEqual(iv[1][1]["syscalls:sys_enter_epoll_wait"], 2)
        self.assertIsNone(iv[0][1]["raw_syscalls:sys_enter"])
        base, load = syscalls.assign_phases(iv, [(0.0, 0.30), (0.55, 1.0)])
        self.assertEqual(base, {"raw_syscalls:sys_enter": 4, "syscalls:sys_enter_epoll_wait": 2})
        self.assertEqual(load, {"raw_syscalls:sys_enter": 24000, "syscalls:sys_enter_epoll_wait": 8000})

    def test_an_interval_outside_every_window_is_dropped(self):
        iv = [(0.1, {"raw_syscalls:sys_enter": 5}), (0.5, {"raw_syscalls:sys_enter": 99}),
              (0.9, {"raw_syscalls:sys_enter": 7})]
        self.assertEqual(syscalls.assign_phases(iv, [(0.0, 0.1), (0.8, 0.9)]),
                         [{"raw_syscalls:sys_enter": 5}, {"raw_syscalls:sys_enter": 7}])


class Arithmetic(unittest.TestCase):
    def test_names_follow_design(self):
        self.assertEqual(syscalls.metric_name("raw_syscalls:sys_enter"), "syscalls_per_req")
        self.assertEqual(syscalls.metric_name("context-switches"), "ctxsw_per_req")
        self.assertEqual(syscalls.metric_name("syscalls:sys_enter_pselect6"), "syscall_pselect6_per_req")
        self.assertIsNone(syscalls.metric_name("cycles"))
        self.assertEqual(syscalls.unit("syscall_epoll_wait_per_req"), "calls/req")
        self.assertIsNone(syscalls.unit("rps"))
        # glibc's select() enters the kernel as pselect6: the curated set must count it.
        self.assertIn("pselect6", syscalls.CURATED)

    def test_per_request_subtracts_the_baseline_rate(self):
        load = {"raw_syscalls:sys_enter": 3100, "context-switches": 120,
                "syscalls:sys_enter_epoll_wait": 1050, "syscalls:sys_enter_recvfrom": 1000,
                "syscalls:sys_enter_sendmsg": 1000, "syscalls:sys_enter_clone": 0}
        # 0.5 s of idle: 50 calls (all epoll_wait) and 20 switches, i.e. 100 calls/s, 40/s.
        base = {"raw_syscalls:sys_enter": 50, "context-switches": 20, "syscalls:sys_enter_epoll_wait": 50}
        pr = syscalls.per_request(load, 1000, 1.0, base, 0.5)
        self.assertAlmostEqual(pr["syscalls_per_req"], 3.0)       # (3100 - 100) / 1000
        self.assertAlmostEqual(pr["ctxsw_per_req"], 0.08)         # (120 - 40) / 1000
        self.assertAlmostEqual(pr["syscall_epoll_wait_per_req"], 0.95)
        self.assertAlmostEqual(pr["syscall_recvfrom_per_req"], 1.0)
        self.assertAlmostEqual(pr["syscall_other_per_req"], 0.05)  # 3000 - 2950 named
        self.assertNotIn("syscall_clone_per_req", pr)             # a call it does not make
        # A baseline larger than the load never makes a negative count.
        pr2 = syscalls.per_request({"raw_syscalls:sys_enter": 10}, 10, 1.0, {"raw_syscalls:sys_enter": 100}, 1.0)
        self.assertEqual(pr2["syscalls_per_req"], 0.0)
        self.assertEqual(syscalls.per_request(load, 0, 1.0), {})

    def test_run_window_may_answer_a_count_or_the_loadgen_json(self):
        self.assertEqual(syscalls._requests_of(1234), 1234)
        self.assertEqual(syscalls._requests_of({"requests": 99, "rps": 99.0}), 99)
        self.assertIsNone(syscalls._requests_of(None))
        self.assertIsNone(syscalls._requests_of({"requests": 0}))
        self.assertIsNone(syscalls._requests_of({}))

    def test_baseline_share(self):
        load = {"raw_syscalls:sys_enter": 10000}
        self.assertAlmostEqual(syscalls.baseline_share(load, {"raw_syscalls:sys_enter": 150}, 1.0, 0.3), 0.05)
        self.assertEqual(syscalls.baseline_share(load, {}, 1.0, 0.3), 0.0)
        self.assertEqual(syscalls.baseline_share({}, {"raw_syscalls:sys_enter": 5}, 1.0, 0.3), 0.0)
        self.assertGreater(syscalls.baseline_share(load, {"raw_syscalls:sys_enter": 300}, 1.0, 0.3),
                           syscalls.MAX_CPUS_BASELINE_SHARE)

    def test_counted_points_are_the_presets(self):
        from harness import plan
        P = SimpleNamespace
        default = plan.PRESETS["default"]
        self.assertTrue(plan.counts_syscalls(P(experiment="scale", param=100, rep=0), default))
        self.assertTrue(plan.counts_syscalls(P(experiment="scale", param="100", rep=1), default))
        self.assertFalse(plan.counts_syscalls(P(experiment="scale", param=10, rep=0), default))
        self.assertFalse(plan.counts_syscalls(P(experiment="latency", param=80, rep=0), default))
        self.assertFalse(plan.counts_syscalls(P(experiment="scale", param=100, rep=0), plan.PRESETS["quick"]))

    def test_metrics_flow_into_summary(self):
        def rec(rep, epw, recv):
            return {"experiment": "scale", "model": "epoll", "param": 100, "rep": rep, "status": "ok",
                    "metrics": {"rps": 1000.0, "syscalls_per_req": epw + recv + 1,
                                "syscall_epoll_wait_per_req": epw, "syscall_recvfrom_per_req": recv,
                                "syscall_sendmsg_per_req": 1.0}, "flags": []}
        runs = [rec(0, 0.2, 1.0), rec(1, 0.4, 1.0)]
        rows = {r["metric"]: r for r in summary.rows(runs)}
        self.assertEqual(rows["syscalls_per_req"]["unit"], "calls/req")
        self.assertAlmostEqual(rows["syscall_epoll_wait_per_req"]["median"], 0.3)
        self.assertEqual(rows["syscall_epoll_wait_per_req"]["n"], 2)
        self.assertIn("syscall_sendmsg_per_req", rows)
        names = syscalls.metric_names(runs)
        self.assertEqual(names[0], "syscalls_per_req")
        self.assertLess(names.index("syscall_recvfrom_per_req"), names.index("syscall_epoll_wait_per_req"))

    def test_perf_ctxsw_replaces_the_proc_figure(self):
        m = syscalls.metrics_of({"scope": "cgroup", "requests": 10, "counts": {"x": 1},
                                 "ctxsw_per_req": 2.2, "syscalls_per_req": 24.0,
                                 "syscall_clone_per_req": 1.0}, {"ctxsw_per_req": 0.14})
        self.assertEqual(set(m), {"ctxsw_per_req", "ctxsw_proc_per_req", "syscalls_per_req",
                                  "syscall_clone_per_req"})
        self.assertEqual(m["ctxsw_per_req"], 2.2)
        self.assertEqual(m["ctxsw_proc_per_req"], 0.14)
        self.assertEqual(syscalls.metrics_of({"unavailable": "not root"}, {}), {})
        # A repetition of a counted point without its own window: its /proc figure moves
        # aside, so summary.csv's ctxsw_per_req there is perf's alone.
        m2 = syscalls.metrics_of({"unavailable": "x", "counted_in_other_rep": True}, {"ctxsw_per_req": 0.3})
        self.assertEqual(m2, {"ctxsw_per_req": None, "ctxsw_proc_per_req": 0.3})
        runs = [{"experiment": "churn", "model": "fork", "param": 10, "rep": 0, "status": "ok",
                 "metrics": {"rps": 1.0, "ctxsw_per_req": 2.2}},
                {"experiment": "churn", "model": "fork", "param": 10, "rep": 1, "status": "ok",
                 "metrics": {"rps": 1.0, **m2}}]
        row = next(r for r in summary.rows(runs) if r["metric"] == "ctxsw_per_req")
        self.assertEqual((row["n"], row["median"]), (1, 2.2))

    def test_counting_points_are_the_presets_first_repetition(self):
        # The preset, not count_for_point, decides which points get a counting window
        # (plan.syscall_window, which points.py follows): the named points' first repetition;
        # their later repetitions point at it (no /proc ctxsw mixed into perf's median), and
        # every other point gets none, so nothing is counted (or costs time) twice.
        P = SimpleNamespace
        default = plan.PRESETS["default"]
        self.assertEqual(plan.syscall_window(P(experiment="scale", param=100, rep=0, model="epoll"), default), "count")
        self.assertEqual(plan.syscall_window(P(experiment="churn", param=10, rep=2, model="fork"), default), "other-rep")
        self.assertIsNone(plan.syscall_window(P(experiment="idle", param=0, rep=0, model="epoll"), default))
        self.assertIsNone(plan.syscall_window(P(experiment="scale", param=1000, rep=0, model="epoll"), default))
        for p in plan.build(plan.PRESETS["quick"], ["epoll"], plan.EXPERIMENTS, 1).points:
            self.assertIsNone(plan.syscall_window(p, plan.PRESETS["quick"]), p)
        # ... and the plan's time estimate charges the window once, to the first repetition.
        first = plan.Point("scale", "epoll", 100, 0)
        later = plan.Point("scale", "epoll", 100, 1)
        extra = plan.estimate_point_s(first, default) - plan.estimate_point_s(later, default)
        self.assertAlmostEqual(extra, syscalls.estimate_s(default.duration_s), places=6)
        # A later repetition's ctxsw from /proc is kept aside, not mixed into perf's figure.
        m = syscalls.metrics_of({"unavailable": "counted in repetition 0", "counted_in_other_rep": True},
                                {"ctxsw_per_req": 2.0})
        self.assertEqual(m, {"ctxsw_per_req": None, "ctxsw_proc_per_req": 2.0})


class Availability(unittest.TestCase):
    def test_missing_perf_is_a_reason_not_a_zero(self):
        saved = syscalls.PERF
        try:
            syscalls.PERF = "perf-that-does-not-exist"
            syscalls.available.cache_clear()
            why = syscalls.available()
            self.assertIsInstance(why, str)
            self.assertIn("perf not found", why)
            res = syscalls.count_point([0], lambda s: 1)
            self.assertEqual(res, {"unavailable": why})
        finally:
            syscalls.PERF = saved
            syscalls.available.cache_clear()


class PerfErrors(unittest.TestCase):
    def test_perf_refusing_an_event_is_a_one_line_reason(self):
        why = syscalls.available()
        if why:
            self.skipTest(f"perf cannot count here: {why}")
        for kw, ev, words in (({"cgroup": "cmbench-no-such-cgroup"}, "raw_syscalls:sys_enter", "cgroup"),
                              ({}, "syscalls:sys_enter_cmbench_no_such_call", "cmbench_no_such_call")):
            c = syscalls.Counting([0], [ev], **kw)
            reason = c.start()
            _phases, stop_why = c.stop()
            self.assertIsNotNone(reason)
            self.assertIn(words, reason)
            self.assertNotIn("\n", reason)
            self.assertIsNotNone(stop_why)


# --- real counts ---------------------------------------------------------------------------

def _count(model: str, connections: int, close: bool, window_s: float = 1.0) -> dict:
    binary = BIN / f"server-{model}"
    for b in (binary, BIN / "loadgen"):
        if not b.exists():
            raise unittest.SkipTest(f"{b} not built")
    srv = Server(model, binary, [0])   # pinned to CPU 0, where perf counts
    try:
        why = srv.start() or srv.probe()
        if why:
            raise AssertionError(f"server-{model} did not start: {why}")
        spec = LoadSpec("/", connections, close=close)
        done = {}

        def run(seconds: float):
            res = Loadgen(BIN / "loadgen", srv.url("/"), spec, 0.0, seconds).start().wait()
            done["json"] = res.json
            return res.json   # the loadgen's JSON, as the harness passes it

        out = syscalls.count_point([0], run, pids=procfs.process_tree(srv.pid), window_s=window_s)
        out["loadgen"] = done.get("json")
        return out
    finally:
        srv.stop()
        srv.close()


class RealCounts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        why = syscalls.available()
        if why:
            raise unittest.SkipTest(f"perf cannot count here: {why}")
        if (os.cpu_count() or 1) < 2:
            raise unittest.SkipTest("needs two CPUs: server on 0, loadgen on 1")
        cls.saved_affinity = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {1})   # the loadgen inherits it: off the counted CPU

    @classmethod
    def tearDownClass(cls):
        os.sched_setaffinity(0, cls.saved_affinity)

    def test_epoll_one_connection(self):
        r = _count("epoll", 1, close=False)
        self.assertNotIn("unavailable", r, r.get("unavailable"))
        self.assertEqual(r["requests"], r["loadgen"]["requests"])
        self.assertGreater(r["requests"], 500)
        pr = r
        # One keep-alive connection: each request is one wait, one read, one write.
        for name in ("syscall_epoll_wait_per_req", "syscall_recvfrom_per_req", "syscall_sendmsg_per_req"):
            self.assertAlmostEqual(pr.get(name, 0.0), 1.0, delta=0.1, msg=f"{name}: {pr}")
        self.assertAlmostEqual(pr["syscalls_per_req"], 3.0, delta=0.3, msg=str(pr))
        self.assertLess(pr.get("syscall_clone_per_req", 0.0), 0.01)
        self.assertLess(pr["syscall_other_per_req"], 0.1)
        # One connection, one server thread: it sleeps in epoll_wait once per request.
        self.assertGreater(pr["ctxsw_per_req"], 0.5)

    def test_epoll_batches_waits_over_many_connections(self):
        pr = _count("epoll", 10, close=False)
        self.assertAlmostEqual(pr["syscall_recvfrom_per_req"], 1.0, delta=0.1)
        self.assertAlmostEqual(pr["syscall_sendmsg_per_req"], 1.0, delta=0.1)
        self.assertLess(pr["syscall_epoll_wait_per_req"], 0.9, msg=str(pr))

    def test_fork_churn_clones_once_per_connection(self):
        r = _count("fork", 10, close=True)
        pr = r
        self.assertGreaterEqual(pr.get("syscall_clone_per_req", 0.0), 0.99, msg=str(pr))
        self.assertGreaterEqual(pr.get("syscall_accept4_per_req", 0.0), 0.99, msg=str(pr))
        self.assertGreaterEqual(pr.get("syscall_wait4_per_req", 0.0), 0.99, msg=str(pr))
        # Every new process is scheduled at least once; the parent sleeps in accept.
        self.assertGreaterEqual(pr["ctxsw_per_req"], 1.0, msg=str(pr))

    def test_threads_churn_clones_once_per_connection(self):
        pr = _count("threads", 10, close=True)
        clones = pr.get("syscall_clone3_per_req", 0.0) + pr.get("syscall_clone_per_req", 0.0)
        self.assertGreaterEqual(clones, 0.99, msg=str(pr))
        self.assertGreaterEqual(pr["ctxsw_per_req"], 1.0, msg=str(pr))


if __name__ == "__main__":
    unittest.main()
