"""Unit tests of the harness statistics: medians and ranges, the spread flag, the PSS slope,
histogram merging, and the summary table built from per-point records."""
from __future__ import annotations

import sys
import unittest
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness import stats, summary  # noqa: E402


def rec(experiment, model, param, rep, status="ok", flags=(), **metrics):
    return {"experiment": experiment, "model": model, "param": param, "rep": rep,
            "status": status, "reason": None if status == "ok" else f"{status} on purpose",
            "metrics": metrics, "flags": list(flags), "config": {}}


class MedianAndRange(unittest.TestCase):
    def test_median_odd_even_and_empty(self):
        self.assertEqual(stats.median([5, 1, 3]), 3)
        self.assertEqual(stats.median([4, 1, 3, 2]), 2.5)
        self.assertIsNone(stats.median([]))
        self.assertEqual(stats.median([None, 7, float("nan")]), 7)

    def test_min_max(self):
        self.assertEqual(stats.min_max([3, 9, 1]), (1, 9))
        self.assertEqual(stats.min_max([]), (None, None))

    def test_spread_and_flag(self):
        self.assertAlmostEqual(stats.spread_pct([90, 100, 110]), 20.0)
        self.assertTrue(stats.spread_exceeds([90, 100, 110]))
        self.assertFalse(stats.spread_exceeds([98, 100, 102]))   # 4 %
        self.assertIsNone(stats.spread_pct([100]))                 # one repetition: no spread
        self.assertFalse(stats.spread_exceeds([100]))

    def test_summarize(self):
        s = stats.summarize([10, 30, 20])
        self.assertEqual((s["n"], s["median"], s["min"], s["max"]), (3, 20, 10, 30))
        self.assertAlmostEqual(s["spread_pct"], 100.0)


class Slope(unittest.TestCase):
    def test_exact_line(self):
        slope, intercept, r2 = stats.linear_fit([0, 1000, 5000], [2000, 2010, 2050])
        self.assertAlmostEqual(slope, 0.01)
        self.assertAlmostEqual(intercept, 2000)
        self.assertAlmostEqual(r2, 1.0)

    def test_noisy_line_least_squares(self):
        xs = [0, 1, 2, 3]
        ys = [0, 1.2, 1.8, 3.0]   # best slope = 0.96, intercept 0.06
        slope, intercept, _ = stats.linear_fit(xs, ys)
        self.assertAlmostEqual(slope, 0.96)
        self.assertAlmostEqual(intercept, 0.06)

    def test_needs_two_distinct_x(self):
        self.assertIsNone(stats.linear_fit([5], [1]))
        self.assertIsNone(stats.linear_fit([5, 5], [1, 2]))

    def test_idle_slopes_per_repetition(self):
        # threads: 16 KiB per connection in rep 0, 20 in rep 1 -> median 18, range 16..20.
        runs = []
        for rep, per in ((0, 16.0), (1, 20.0)):
            for n in (0, 1000, 5000):
                runs.append(rec("idle", "threads", n, rep, model_kib=1000 + per * n,
                                pss_kib=3000 + per * n + (n % 7), tcp_mem_kib=2.0 * n))
        runs.append(rec("idle", "threads", 9999, 0, status="skipped"))
        out = summary.idle_slopes(runs)
        self.assertEqual(sorted(out["threads"]["pss_slope_kib_per_conn"]["values"]), [16.0, 20.0])
        table = summary.rows(runs)
        row = summary.lookup(table, "idle", "threads", "slope", "pss_slope_kib_per_conn")
        self.assertEqual((row["median"], row["min"], row["max"]), (18.0, 16.0, 20.0))
        self.assertIn("spread>10%", row["flags"])   # 4 / 18 = 22 %
        tcp = summary.lookup(table, "idle", "threads", "slope", "tcp_mem_slope_kib_per_conn")
        self.assertAlmostEqual(tcp["median"], 2.0)
        total = summary.lookup(table, "idle", "threads", "slope", "pss_total_slope_kib_per_conn")
        self.assertAlmostEqual(total["median"], 18.0, places=2)

    def test_slope_is_fitted_to_anon_plus_shmem_not_total_pss(self):
        # Total Pss jumps with file pages the generator maps (issue 7: select 1498 -> 1881 KiB
        # with RSS unchanged); the model's own memory does not.
        runs = [rec("idle", "select", n, 0, model_kib=200 + 0.2 * n, pss_kib=p)
                for n, p in ((0, 1498), (300, 1881), (900, 1560))]
        row = summary.lookup(summary.rows(runs), "idle", "select", "slope", "pss_slope_kib_per_conn")
        self.assertAlmostEqual(row["median"], 0.2)

    def test_unsupported_slopes_are_not_numbers(self):
        # Two points (issue 7 defect 2: select fitted over 0 and 500, -0.49 KiB/conn).
        two = [rec("idle", "select", 0, 0, model_kib=1500), rec("idle", "select", 500, 0, model_kib=1255)]
        # Three points that do not lie on a line (r2 < 0.9).
        noisy = [rec("idle", "poll", n, 0, model_kib=v) for n, v in ((0, 100), (300, 900), (900, 150))]
        # Three points on a falling line: memory does not shrink with connections.
        falling = [rec("idle", "epoll", n, 0, model_kib=1000 - n) for n in (0, 300, 900)]
        table = summary.rows(two + noisy + falling)
        for model, why in (("select", "2 idle count(s)"), ("poll", "r2"), ("epoll", "negative")):
            row = summary.lookup(table, "idle", model, "slope", "pss_slope_kib_per_conn")
            self.assertIsNone(row["median"], model)
            self.assertEqual(row["status"], "skipped")
            self.assertIn("not-measurable", row["flags"])
            self.assertIn(why, row["note"])
        self.assertIsInstance(stats.supported_slope([0, 1, 2], [0, 1, 2]), tuple)
        self.assertIn("needs 3", stats.supported_slope([0, 1], [0, 1]))

    def test_incomplete_memory_readings_are_left_out(self):
        runs = [rec("idle", "fork", n, 0, model_kib=100 + 56 * n) for n in (0, 300, 900)]
        runs.append(rec("idle", "fork", 600, 0, model_kib=5, memory_complete=False))
        row = summary.lookup(summary.rows(runs), "idle", "fork", "slope", "pss_slope_kib_per_conn")
        self.assertAlmostEqual(row["median"], 56.0)


class Histograms(unittest.TestCase):
    def test_merge_sums_counts_per_value(self):
        merged = stats.merge_buckets([[[10, 2], [20, 1]], [[20, 3], [40, 1]]])
        self.assertEqual(merged, [[10, 2], [20, 4], [40, 1]])

    def test_percentile(self):
        buckets = [[10, 90], [100, 9], [1000, 1]]
        self.assertEqual(stats.percentile(buckets, 50), 10)
        self.assertEqual(stats.percentile(buckets, 90), 10)
        self.assertEqual(stats.percentile(buckets, 99), 100)
        self.assertEqual(stats.percentile(buckets, 99.9), 1000)
        self.assertIsNone(stats.percentile([], 50))

    def test_percentile_curve_is_monotonic(self):
        buckets = [[v, 1] for v in range(1, 10001)]
        curve = stats.percentile_curve(buckets)
        values = [v for _, v in curve]
        self.assertEqual(values, sorted(values))
        self.assertEqual(curve[-1], (100.0, 10000))


class SummaryTable(unittest.TestCase):
    def test_rows_status_flags_and_csv(self):
        runs = [rec("scale", "epoll", 10, 0, rps=100.0, p99_us=50),
                rec("scale", "epoll", 10, 1, rps=120.0, p99_us=60, flags=["client-bound"]),
                rec("scale", "epoll", 10, 2, status="failed"),
                rec("scale", "select", 5000, 0, status="skipped")]
        table = summary.rows(runs)
        rps = summary.lookup(table, "scale", "epoll", 10, "rps")
        self.assertEqual(rps["status"], "partial")
        self.assertEqual((rps["n"], rps["median"], rps["min"], rps["max"]), (2, 110.0, 100.0, 120.0))
        self.assertIn("client-bound", rps["flags"])
        self.assertIn("spread>10%", rps["flags"])
        skipped = [r for r in table if r["model"] == "select"]
        self.assertEqual(len(skipped), 1)
        self.assertEqual(skipped[0]["status"], "skipped")
        self.assertIn("skipped on purpose", skipped[0]["note"])
        back = summary.read_csv(summary.to_csv(table))
        self.assertEqual(len(back), len(table))
        self.assertEqual(list(back[0].keys()), summary.COLUMNS)
        self.assertEqual(summary.lookup(back, "scale", "epoll", "10", "rps")["median"], 110.0)

    def test_blocking_ratio(self):
        runs = [rec("blocking", "epoll", 0, 0, p99_us=100), rec("blocking", "epoll", 1, 0, p99_us=1500),
                rec("blocking", "threads", 0, 0, p99_us=100), rec("blocking", "threads", 1, 0, p99_us=110)]
        r = summary.blocking_ratios(runs)
        self.assertAlmostEqual(r["epoll"][0], 15.0)
        late = rec("blocking", "poll", 1, 0, p99_us=9000, flags=["beyond-generator"])
        r = summary.blocking_ratios(runs + [rec("blocking", "poll", 0, 0, p99_us=100), late])
        self.assertNotIn("poll", r, "a load not offered on schedule gives no ratio")
        self.assertAlmostEqual(r["threads"][0], 1.1)

    def test_micro_table_uses_cpu_time_except_real_time_cases(self):
        micro = {"benchmarks": [
            {"name": "wait/epoll/100", "run_name": "wait/epoll/100", "run_type": "iteration",
             "real_time": 500.0, "cpu_time": 300.0, "time_unit": "ns"},
            {"name": "spawn/fork_wait/real_time", "run_name": "spawn/fork_wait/real_time",
             "run_type": "iteration", "real_time": 200.0, "cpu_time": 50.0, "time_unit": "us"},
            {"name": "wait/epoll/100_median", "run_name": "wait/epoll/100", "run_type": "aggregate",
             "real_time": 1.0, "cpu_time": 1.0, "time_unit": "ns"}]}
        t = summary.micro_table(micro)
        self.assertEqual(t[("wait", "epoll", "100")], [300.0])
        self.assertEqual(t[("spawn", "fork_wait", "")], [200000.0])


class LatencyOnSchedule(unittest.TestCase):
    def late(self, model, param, rep, p99):
        r = rec("latency", model, param, rep, p99_us=p99, lag_p99_us=9000, offered_rps=160000,
                flags=["client-bound", "generator-limited", "beyond-generator"])
        r["loadgen"] = {"generator_limited": True}
        return r

    def test_load_the_generator_cannot_offer_is_not_data(self):
        runs = [self.late("epoll", 80, 0, 15000), self.late("epoll", 80, 1, 3000),
                rec("latency", "fork", 80, 0, p99_us=900, offered_rps=26000)]
        table = summary.rows(runs)
        self.assertIsNone(summary.lookup(table, "latency", "epoll", 80, "p99_us"))
        row = [r for r in table if r["model"] == "epoll" and r["param"] == 80][0]
        self.assertEqual(row["status"], "skipped")
        self.assertIn(summary.BEYOND, row["note"])
        self.assertIn("beyond-generator", row["flags"])
        self.assertEqual(summary.lookup(table, "latency", "fork", 80, "p99_us")["median"], 900)

    def test_late_repetitions_are_left_out_of_the_median(self):
        runs = [self.late("epoll", 80, 0, 15000), rec("latency", "epoll", 80, 1, p99_us=1000),
                rec("latency", "epoll", 80, 2, p99_us=1200)]
        row = summary.lookup(summary.rows(runs), "latency", "epoll", 80, "p99_us")
        self.assertEqual((row["n"], row["median"]), (2, 1100.0))
        self.assertIn("partly-beyond-generator", row["flags"])
        # Its flags are the on-schedule repetitions' (not the late one's), and it is data.
        self.assertNotIn("beyond-generator", row["flags"].split(";"))
        from harness import readings
        self.assertIsNone(readings.not_data_reason(row, "latency"))

    def test_one_repetition_on_schedule_is_not_enough(self):
        runs = [self.late("epoll", 80, 0, 15000), self.late("epoll", 80, 1, 9000),
                rec("latency", "epoll", 80, 2, p99_us=1200)]
        row = summary.lookup(summary.rows(runs), "latency", "epoll", 80, "p99_us")
        self.assertEqual(row["n"], 1)
        from harness import readings
        self.assertIn("only 1 repetition", readings.not_data_reason(row, "latency"))


class LimitedBy(unittest.TestCase):
    def classify(self, gen_limited=False, **m):
        from harness import points
        from harness.loadgen import LoadResult
        res = LoadResult(args=[], json={"generator_limited": gen_limited})
        return points.limited_by(m, res)

    def test_three_answers(self):
        # Capped at 0.4 of a core: 0.39 used is server-bound, whatever the client did.
        self.assertEqual(self.classify(server_cpu_frac_of_given=0.975, server_cpu_util=0.39,
                                       server_cpu_given=0.4, client_cpu_frac=0.99), "server-bound")
        # Generator saturated while the server had room: client-bound (issue 7 defect 6).
        self.assertEqual(self.classify(server_cpu_frac_of_given=0.6, server_cpu_util=0.6,
                                       server_cpu_given=1.0, client_cpu_frac=0.97,
                                       core_other_tasks=0.0), "client-bound")
        self.assertEqual(self.classify(True, server_cpu_frac_of_given=0.3, server_cpu_util=0.3,
                                       server_cpu_given=1.0, client_cpu_frac=0.5,
                                       core_other_tasks=0.0), "client-bound")
        self.assertEqual(self.classify(server_cpu_frac_of_given=0.3, server_cpu_util=0.3,
                                       server_cpu_given=1.0, client_cpu_frac=0.2,
                                       core_other_tasks=0.0), "latency-bound")
        # Other tenants took 70 % of the server's CPU and none was idle: CPU-bound.
        self.assertEqual(self.classify(server_cpu_frac_of_given=0.75, server_cpu_util=0.3,
                                       server_cpu_given=0.4, client_cpu_frac=0.2,
                                       core_other_tasks=0.7, core_busy=1.0), "server-bound")
        self.assertEqual(self.classify(server_cpu_frac_of_given=0.75, server_cpu_util=0.3,
                                       server_cpu_given=0.4, client_cpu_frac=0.2,
                                       core_other_tasks=0.1, core_busy=0.45), "latency-bound")
        # Capped and throttled in most of its periods: it wanted more than its quota.
        self.assertEqual(self.classify(server_cpu_frac_of_given=0.8, server_cpu_util=0.32,
                                       server_cpu_given=0.4, client_cpu_frac=0.3,
                                       core_busy=0.8, throttled_frac=0.65), "server-bound")
        self.assertEqual(self.classify(server_cpu_frac_of_given=0.5, server_cpu_util=0.2,
                                       server_cpu_given=0.4, client_cpu_frac=0.3,
                                       core_busy=0.5, throttled_frac=0.1), "latency-bound")
        self.assertIsNone(self.classify(client_cpu_frac=0.2))


class Compare(unittest.TestCase):
    def test_ratio_and_verdicts(self):
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
        import compare
        a = summary.rows([rec("scale", "epoll", 100, r, rps=v) for r, v in enumerate((100, 105, 110))]
                         + [rec("scale", "fork", 100, 0, rps=50)])
        b = summary.rows([rec("scale", "epoll", 100, r, rps=v) for r, v in enumerate((150, 160, 170))]
                         + [rec("scale", "fork", 100, 0, rps=55)])
        rows = {r["model"]: r for r in compare.compare(a, b) if r["metric"] == "rps"}
        self.assertAlmostEqual(rows["epoll"]["ratio"], 160 / 105)
        self.assertEqual(rows["epoll"]["verdict"], "*")      # [100,110] vs [150,170]: no overlap
        self.assertEqual(rows["fork"]["verdict"], "")        # one rep, +10 %: within the noise
        c = summary.rows([rec("scale", "epoll", 100, r, rps=v) for r, v in enumerate((108, 120, 130))])
        self.assertEqual({r["model"]: r for r in compare.compare(a, c)}["epoll"]["verdict"], "")
        self.assertIn("| scale | rps (req/s) | epoll | 100 |", compare.to_markdown(compare.compare(a, b), "A", "B"))


if __name__ == "__main__":
    unittest.main()
