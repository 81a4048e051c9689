"""Points run against the real servers and loadgen (short windows): fork's CPU at 100 keep-alive
connections is counted (issue 7 defect 3), memory per idle connection of fork, threads and
epoll against independent counts (defects 1, 2), the readings' cost inside a window (< 2 % of a
core), what limited a point, and the CPU cap.

Needs build/bin (CMBENCH_BIN_DIR): server-fork, server-threads, server-epoll, loadgen. The
machine is shared: thresholds leave room for other tenants' load on the server CPU.
"""
from __future__ import annotations

import os
import sys
import unittest
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from harness import cgroup, plan, points, summary  # noqa: E402

BIN = Path(os.environ.get("CMBENCH_BIN_DIR", REPO / "build" / "bin"))
PRESET = plan.Preset("test", reps=1, warmup_s=0.3, duration_s=1.0, points={},
                     micro_min_time_s=0.01, micro_reps=1)


def context(use_cgroup: bool = True) -> points.Context:
    cg = cgroup.probe() if use_cgroup else None
    return points.Context(bin_dir=BIN, loadgen=BIN / "loadgen", preset=PRESET, server_cpus=[0],
                          client_cpus=[1], cgroup=cg, quota=(1000, 2500),
                          git={"commit": "test", "dirty": False}, count_syscalls=False)


class RealPoints(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get("CMBENCH_SANITIZED", "") not in ("", "0"):
            # These check the physics of real costs (KiB per connection, CPU per request, a
            # process per connection within the warm-up); ASan's shadow memory and TSan's
            # slowdown are the sanitizer's costs, not the models'. `make test` runs them.
            raise unittest.SkipTest("measures a Release build's costs; skipped in sanitizer builds")
        missing = [n for n in ("server-fork", "server-threads", "server-epoll", "loadgen")
                   if not (BIN / n).exists()]
        if missing:
            raise AssertionError(f"needs {', '.join(missing)} in {BIN}: build first")
        cls._aff = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {1})   # like run.py: the harness lives on the client CPU

    @classmethod
    def tearDownClass(cls):
        os.sched_setaffinity(0, cls._aff)

    def run_point(self, ctx, exp, model, param):
        rec = points.run_point(plan.Point(exp, model, param, 0), ctx)
        self.assertEqual(rec["status"], "ok", (rec["label"], rec["reason"]))
        return rec

    def test_fork_cpu_at_100_keepalive_connections_is_counted(self):
        for use_cgroup in (True, False):
            ctx = context(use_cgroup)
            rec = self.run_point(ctx, "scale", "fork", 100)
            m = rec["metrics"]
            given = m["server_cpu_given"]
            # The children serving the connections are busy: the tree used (nearly) all the CPU
            # it was given, or all that other tenants of this shared machine left of it — not 0
            # (issue 7 defect 3: 0-0.59 cores).
            self.assertIsNotNone(m["server_cpu_util"], rec["server"]["window"]["notes"])
            left = min(given, 1.0 - (m["core_other_tasks"] or 0.0) - (m["core_softirq"] or 0.0))
            self.assertGreater(m["server_cpu_util"], 0.6 * left,
                               (use_cgroup, m["server_cpu_util"], m["core_other_tasks"]))
            if (m["core_other_tasks"] or 0) < 0.1:   # a quiet machine: nothing else can limit it
                self.assertEqual(rec["limited_by"], "server-bound", (use_cgroup, m))
            self.assertGreater(m["cpu_us_per_req"], 3.0, "a forked child per connection is not free")
            self.assertEqual(m["cpu_source"], "cgroup" if (use_cgroup and ctx.cgroup.version) else "proc")
            self.assertGreaterEqual(m["procs"], 101, "a process per connection")
            # The readings inside the window cost under 2 % of a core.
            self.assertLess(rec["server"]["sampler"]["window_frac_of_core"], 0.02,
                            rec["server"]["sampler"])
            self.assertIn(rec["limited_by"], ("server-bound", "client-bound", "latency-bound"))
            self.assertIn(rec["limited_by"], rec["flags"])
            self.assertEqual(rec["git"]["commit"], "test")

    def test_capped_point_is_server_bound_and_leaves_the_generator_room(self):
        ctx = context()
        if not ctx.cgroup.version:
            self.skipTest(ctx.cgroup.reason)
        rec = self.run_point(ctx, "scale", "epoll", 100)
        m = rec["metrics"]
        self.assertEqual(rec["config"]["cpu_cap"]["share"], 0.4)
        self.assertLess(m["server_cpu_util"], 0.45, "the quota holds")
        self.assertLess(m["client_cpu_frac"], 0.8, "the generator has headroom")
        self.assertGreater(rec["server"]["throttle"]["nr_throttled"], 0)
        # The peak point of the latency experiment runs uncapped.
        peak = self.run_point(ctx, "latency", "epoll", plan.PEAK)
        self.assertIsNone(peak["config"]["cpu_cap"]["share"])
        self.assertGreater(peak["metrics"]["rps"], m["rps"])

    def test_memory_per_idle_connection(self):
        ctx = context()
        runs = []
        for count in (0, 100, 300):
            for model in ("fork", "threads", "epoll"):
                runs.append(self.run_point(ctx, "idle", model, count))
        slopes = summary.idle_slopes(runs)
        got = {m: (d["pss_slope_kib_per_conn"]["values"] or [None])[0] for m, d in slopes.items()}
        # Independent counts on this kind of machine: fork ~56 KiB, threads 12-17, epoll < 1.
        self.assertIsNotNone(got["fork"], slopes["fork"])
        self.assertGreater(got["fork"], 35, got)
        self.assertLess(got["fork"], 90, got)
        self.assertIsNotNone(got["threads"], slopes["threads"])
        self.assertGreater(got["threads"], 6, got)
        self.assertLess(got["threads"], 30, got)
        if got["epoll"] is not None:   # may be flat noise: then "not measurable", never negative
            self.assertGreaterEqual(got["epoll"], 0)
            self.assertLess(got["epoll"], 1.5, got)
        held = [r for r in runs if r["param"] == 300]
        for r in held:
            self.assertEqual(r["metrics"]["idle_held"], 300, r["label"])
            self.assertTrue(r["metrics"]["memory_complete"], r["label"])


if __name__ == "__main__":
    unittest.main()
