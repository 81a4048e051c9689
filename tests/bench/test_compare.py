"""`make compare A=… B=… [BASE=epoll]` (bench/compare.py) on synthetic summary.csv files: the
BASE arithmetic (rates and CPU as ratios to the base model within each run, memory and latency
as they are), the verdicts, the command line, and a ratio chart of legible size."""
from __future__ import annotations

import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "plots"))

import compare  # noqa: E402
from harness import summary  # noqa: E402

HEADER = "experiment,model,param,metric,unit,n,median,min,max,spread_pct,status,flags,note\n"


def csv_rows(*rows) -> str:
    """rows: (experiment, model, param, metric, median, min, max[, n])"""
    out = HEADER
    for r in rows:
        exp, model, param, metric, med, lo, hi = r[:7]
        n = r[7] if len(r) > 7 else 3
        out += f"{exp},{model},{param},{metric},,{n},{med},{lo},{hi},,ok,,\n"
    return out


# Machine A, and machine B which is 1.5x faster at everything CPU-bound. On B, fork's
# throughput relative to epoll is the same (0.5); threads' fell from 0.8 to 0.4 of epoll's.
A = csv_rows(
    ("scale", "epoll", 100, "rps", 100000, 95000, 105000),
    ("scale", "fork", 100, "rps", 50000, 48000, 52000),
    ("scale", "threads", 100, "rps", 80000, 78000, 82000),
    ("scale", "epoll", 100, "cpu_us_per_req", 5.0, 4.8, 5.2),
    ("scale", "fork", 100, "cpu_us_per_req", 10.0, 9.6, 10.4),
    ("scale", "epoll", 100, "p99_us", 1000, 900, 1100),
    ("scale", "fork", 100, "p99_us", 4000, 3800, 4200),
    ("scale", "fork", 10, "rps", 70000, 69000, 71000),        # no epoll at c=10 in A
    ("idle", "epoll", "slope", "pss_slope_kib_per_conn", 0.25, 0.2, 0.3),
    ("idle", "fork", "slope", "pss_slope_kib_per_conn", 56.0, 55.0, 57.0),
    ("churn", "epoll", 10, "rps", 20000, 19000, 21000),
    ("churn", "fork", 10, "rps", 4000, 3900, 4100),
)
B = csv_rows(
    ("scale", "epoll", 100, "rps", 150000, 142500, 157500),
    ("scale", "fork", 100, "rps", 75000, 72000, 78000),
    ("scale", "threads", 100, "rps", 60000, 58500, 61500),
    ("scale", "epoll", 100, "cpu_us_per_req", 3.333, 3.2, 3.47),
    ("scale", "fork", 100, "cpu_us_per_req", 6.667, 6.4, 6.93),
    ("scale", "epoll", 100, "p99_us", 700, 650, 750),
    ("scale", "fork", 100, "p99_us", 2800, 2700, 2900),
    ("scale", "fork", 10, "rps", 105000, 104000, 106000),
    ("idle", "epoll", "slope", "pss_slope_kib_per_conn", 0.5, 0.45, 0.55),
    ("idle", "fork", "slope", "pss_slope_kib_per_conn", 56.5, 55.5, 57.5),
    ("churn", "epoll", 10, "rps", 30000, 28500, 31500),
    ("churn", "fork", 10, "rps", 6000, 5850, 6150),
)


def table(text: str) -> list[dict]:
    return summary.read_csv(text)


def by(rows, exp, model, param, metric):
    for r in rows:
        if (r["experiment"], r["model"], str(r["param"]), r["metric"]) == (exp, model, str(param), metric):
            return r
    return None


class BaseArithmetic(unittest.TestCase):
    def setUp(self):
        self.ta, self.tb = table(A), table(B)

    def test_absolute_mode_sees_the_faster_machine_everywhere(self):
        rows = compare.compare(self.ta, self.tb)
        r = by(rows, "scale", "fork", 100, "rps")
        self.assertAlmostEqual(r["ratio"], 1.5)
        self.assertEqual(r["verdict"], "*")
        self.assertIsNone(r["base"])
        self.assertEqual(by(rows, "churn", "fork", 10, "rps")["verdict"], "*")

    def test_base_mode_divides_by_the_base_model_in_each_run(self):
        rows = compare.compare(self.ta, self.tb, base="epoll")
        fork = by(rows, "scale", "fork", 100, "rps")
        self.assertEqual(fork["base"], "epoll")
        self.assertAlmostEqual(fork["a_rel"]["median"], 0.5)
        self.assertAlmostEqual(fork["b_rel"]["median"], 0.5)
        self.assertAlmostEqual(fork["ratio"], 1.0)
        self.assertEqual(fork["verdict"], "")
        # The range of a ratio: [min / base max, max / base min].
        self.assertAlmostEqual(fork["a_rel"]["min"], 48000 / 105000)
        self.assertAlmostEqual(fork["a_rel"]["max"], 52000 / 95000)
        # threads really changed relative to epoll: 0.8 -> 0.4, beyond both ranges.
        thr = by(rows, "scale", "threads", 100, "rps")
        self.assertAlmostEqual(thr["ratio"], 0.5)
        self.assertEqual(thr["verdict"], "*")
        # CPU per request is a CPU figure: normalised too (fork costs 2x epoll on both).
        cpu = by(rows, "scale", "fork", 100, "cpu_us_per_req")
        self.assertAlmostEqual(cpu["ratio"], 1.0, places=3)
        self.assertEqual(cpu["verdict"], "")
        churn = by(rows, "churn", "fork", 10, "rps")
        self.assertAlmostEqual(churn["ratio"], 1.0)
        # The base model itself is 1 by definition, never a difference.
        ep = by(rows, "scale", "epoll", 100, "rps")
        self.assertEqual((ep["a_rel"]["median"], ep["a_rel"]["min"], ep["a_rel"]["max"]), (1.0, 1.0, 1.0))
        self.assertEqual(ep["verdict"], "")

    def test_memory_and_latency_are_compared_as_they_are(self):
        rows = compare.compare(self.ta, self.tb, base="epoll")
        slope = by(rows, "idle", "fork", "slope", "pss_slope_kib_per_conn")
        self.assertIsNone(slope["base"])
        self.assertAlmostEqual(slope["ratio"], 56.5 / 56.0)
        self.assertEqual(slope["verdict"], "")
        ep_slope = by(rows, "idle", "epoll", "slope", "pss_slope_kib_per_conn")
        self.assertAlmostEqual(ep_slope["ratio"], 2.0)       # not 1: epoll is no base for memory
        self.assertEqual(ep_slope["verdict"], "*")
        p99 = by(rows, "scale", "fork", 100, "p99_us")
        self.assertIsNone(p99["base"])
        self.assertAlmostEqual(p99["ratio"], 0.7)

    def test_a_point_without_the_base_model_is_left_out_and_named(self):
        rows = compare.compare(self.ta, self.tb, base="epoll")
        r = by(rows, "scale", "fork", 10, "rps")
        self.assertTrue(r["missing_base"])
        self.assertIsNone(r["ratio"])
        md = compare.to_markdown(rows, "A", "B", "epoll")
        self.assertIn("BASE = epoll", md)
        self.assertNotIn("| scale | rps (req/s) / epoll | fork | 10 |", md)
        self.assertIn("left out: epoll has no figure at the same point", md)
        self.assertIn("## Figures that differ beyond their spreads", md)
        self.assertIn("- scale rps / epoll threads 100: B/A 0.50 * (worse)", md)
        csv_text = compare.to_csv(rows)
        self.assertIn("a_rel_median", csv_text.splitlines()[0])

    def test_single_repetition_uses_the_tighter_noise_of_ratios(self):
        a = table(csv_rows(("scale", "epoll", 100, "rps", 100000, 100000, 100000, 1),
                           ("scale", "fork", 100, "rps", 50000, 50000, 50000, 1)))
        b = table(csv_rows(("scale", "epoll", 100, "rps", 150000, 150000, 150000, 1),
                           ("scale", "fork", 100, "rps", 60000, 60000, 60000, 1)))
        r = by(compare.compare(a, b, base="epoll"), "scale", "fork", 100, "rps")
        self.assertAlmostEqual(r["ratio"], 0.8)
        self.assertEqual(r["verdict"], "~")               # 20 % off in a ratio: beyond 10 %
        r_abs = by(compare.compare(a, b), "scale", "fork", 100, "rps")
        self.assertEqual(r_abs["verdict"], "")            # +20 % absolute: within 25 % noise


class AllModelsBase(unittest.TestCase):
    def test_geometric_mean_of_the_shared_models_is_the_base(self):
        ta, tb = table(A), table(B)
        compare.add_all_base(ta, tb, {}, {})
        a_all = by(ta, "scale", "all", 100, "rps")
        # epoll, fork and threads at c=100 in both runs: (100000 * 50000 * 80000) ** (1/3)
        self.assertAlmostEqual(a_all["median"], (100000 * 50000 * 80000) ** (1 / 3), places=3)
        rows = compare.compare(ta, tb, "all")
        fork = by(rows, "scale", "fork", 100, "rps")
        b_all = (150000 * 75000 * 60000) ** (1 / 3)
        self.assertAlmostEqual(fork["ratio"], (75000 / b_all) / (50000 / a_all["median"]), places=6)
        # fork at c=10 has no other model there: its own figure is the mean, ratio 1
        self.assertAlmostEqual(by(rows, "scale", "fork", 10, "rps")["ratio"], 1.0)
        # memory is not divided
        self.assertAlmostEqual(by(rows, "idle", "fork", "slope", "pss_slope_kib_per_conn")["ratio"], 56.5 / 56.0)


class PairedRepetitions(unittest.TestCase):
    def test_per_repetition_ratios_give_the_range(self):
        # Three interleaved repetitions; the machine drifts (rep 2 is 20 % slower for both),
        # but fork stays at 0.50-0.52 of epoll within each repetition.
        epoll = {0: 100000.0, 1: 105000.0, 2: 84000.0}
        fork = {0: 50000.0, 1: 54600.0, 2: 42000.0}
        t = table(csv_rows(("scale", "epoll", 100, "rps", 100000, 84000, 105000),
                           ("scale", "fork", 100, "rps", 50000, 42000, 54600)))
        reps = {("scale", "epoll", "100", "rps"): epoll, ("scale", "fork", "100", "rps"): fork}
        r = by(compare.compare(t, t, "epoll", reps, reps), "scale", "fork", 100, "rps")
        rel = r["a_rel"]
        self.assertTrue(rel["paired"])
        self.assertAlmostEqual(rel["median"], 0.5)              # median / median
        self.assertAlmostEqual(rel["min"], 0.5)
        self.assertAlmostEqual(rel["max"], 0.52)
        # Without the repetitions: the interval quotient, much wider.
        r2 = by(compare.compare(t, t, "epoll"), "scale", "fork", 100, "rps")
        self.assertFalse(r2["a_rel"]["paired"])
        self.assertAlmostEqual(r2["a_rel"]["min"], 42000 / 105000)
        self.assertAlmostEqual(r2["a_rel"]["max"], 54600 / 84000)

    def test_per_rep_values_read_runs_jsonl(self):
        import json
        with tempfile.TemporaryDirectory() as d:
            run = Path(d)
            recs = [{"experiment": "scale", "model": m, "param": 100.0, "rep": rep, "status": "ok",
                     "metrics": {"rps": v, "p99_us": 5.0}}
                    for rep, (m, v) in enumerate([("epoll", 10.0), ("fork", 5.0)])]
            (run / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs))
            v = compare.per_rep_values(run)
            self.assertEqual(v[("scale", "fork", "100", "rps")], {1: 5.0})
            self.assertNotIn(("scale", "fork", "100", "p99_us"), v)   # latency is never normalised


class CommandLine(unittest.TestCase):
    def run_compare(self, *args):
        return subprocess.run([sys.executable, str(REPO / "bench" / "compare.py"), *args],
                              capture_output=True, text=True, timeout=120)

    @staticmethod
    def summary_only_runs(d: str) -> tuple[Path, Path]:
        """Two run folders holding only summary.csv (A and B above)."""
        ra, rb = Path(d, "a"), Path(d, "b")
        for p, text in ((ra, A), (rb, B)):
            p.mkdir()
            (p / "summary.csv").write_text(text)
        return ra, rb

    def test_base_all(self):
        with tempfile.TemporaryDirectory() as d:
            ra, rb = self.summary_only_runs(d)
            p = self.run_compare(str(ra), str(rb), "--base", "all", "--no-charts")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("BASE = all", p.stdout)
            self.assertIn("geometric mean", p.stdout)

    def test_summary_only_folders_with_base_and_charts(self):
        with tempfile.TemporaryDirectory() as d:
            ra, rb = self.summary_only_runs(d)
            out = Path(d, "out")
            p = self.run_compare(str(ra), str(rb), "--base", "epoll", "--out", str(out))
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("(BASE = epoll)", p.stdout)
            self.assertIn("threads 100: B/A 0.50", p.stdout)
            self.assertTrue((out / "compare.md").exists())
            import matplotlib.image as mpimg
            img = mpimg.imread(out / "ratios.png")
            h, w = img.shape[:2]
            # Legible: a page is at most a screen, never a 5561 px strip.
            self.assertLessEqual(h, 1400)
            self.assertLessEqual(w, 1400)
            self.assertGreaterEqual(w, 500)

    def test_unknown_base_is_a_one_line_error(self):
        with tempfile.TemporaryDirectory() as d:
            ra, rb = self.summary_only_runs(d)
            p = self.run_compare(str(ra), str(rb), "--base", "nosuchmodel", "--no-charts")
            self.assertEqual(p.returncode, 2)
            self.assertIn("BASE model 'nosuchmodel' is not measured in both runs", p.stderr)
            self.assertEqual(len(p.stderr.strip().splitlines()), 1)


class RatioTicks(unittest.TestCase):
    def test_every_panel_gets_at_least_three_ticks(self):
        for lo, hi in ((0.9, 1.1), (0.5, 2.0), (1 / 64, 64), (0.6, 1.7)):
            ticks = compare.ratio_ticks(lo, hi)
            self.assertGreaterEqual(len(ticks), 3, (lo, hi, ticks))
            self.assertTrue(all(lo <= t <= hi for t in ticks))


if __name__ == "__main__":
    unittest.main()
