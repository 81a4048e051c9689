"""End-to-end: a tiny real bench (server-epoll and server-threads, every experiment with two or
fewer points, short durations, one repetition) through bench/run.py with the real loadgen and
micro, then checks the folder, the schema of every file, every chart and the report.

Needs the built binaries: CMBENCH_BIN_DIR (set by CTest) or build/bin. Runs in well under 3 min.
"""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "plots"))

from harness import store, summary  # noqa: E402

BIN = Path(os.environ.get("CMBENCH_BIN_DIR", REPO / "build" / "bin"))
MODELS = ["epoll", "threads"]
NEEDED = [f"server-{m}" for m in MODELS] + ["loadgen", "micro"]
LOADGEN_KEYS = {"url", "mode", "connections", "threads", "duration_s", "rate", "requests", "bytes",
                "rps", "errors", "incomplete", "latency_us", "service_us", "lag_us",
                "generator_limited", "histogram", "timeline", "cpu_s"}
PCT_KEYS = {"min", "mean", "p50", "p90", "p99", "p999", "p9999", "max"}
RECORD_KEYS = {"schema", "experiment", "model", "param", "rep", "label", "status", "reason",
               "started_utc", "git", "wall_s", "config", "loadgen", "loadgen_aux", "client", "server",
               "system", "slowloris", "syscalls", "metrics", "limited_by", "flags"}
WINDOW_KEYS = {"start", "end", "cpu_s", "cpu_source", "user_s", "sys_s", "ctx_vol", "ctx_invol",
               "procs_max", "threads_max", "notes"}
READING_KEYS = {"t0", "t1", "what", "complete", "vanished", "procs", "threads", "cost_s",
                "cgroup_cpu_ns", "tree_cpu_ns", "pss_kib", "model_kib", "pss_anon_kib",
                "pss_shmem_kib", "tcp_mem_kib"}
META_KEYS = {"cpu", "kernel", "build", "git", "governor", "mitigations", "perf", "pinning", "limits",
             "tools", "settings", "plan", "complete", "wall_s", "cpu_cap"}
LIMITS = {"server-bound", "client-bound", "latency-bound"}


class EndToEnd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        missing = [n for n in NEEDED if not (BIN / n).exists()]
        if missing:
            raise AssertionError(f"end-to-end bench needs {', '.join(missing)} in {BIN}: build them "
                                 f"first (make, or cmake --build <dir>)")
        cls.tmp = tempfile.TemporaryDirectory(prefix="cmbench-e2e-")
        cls.run_dir = Path(cls.tmp.name) / "run"
        cmd = [sys.executable, str(REPO / "bench" / "run.py"), "--preset", "quick",
               "--bin-dir", str(BIN), "--out", str(cls.run_dir), "--models", ",".join(MODELS),
               "--reps", "1", "--warmup", "0.1", "--duration", "0.3",
               "--points", "scale=1,10", "--points", "idle=0,100,300", "--points", "latency=50,110",
               "--points", "payload=13,65536", "--points", "slowloris=50", "--points", "cpu=100",
               "--micro-min-time", "0.002",
               "--micro-filter", "wait/(select|poll|epoll)/(1|100)$|spawn|parse/minimal|histogram"]
        t0 = time.monotonic()
        cls.proc = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
        cls.wall = time.monotonic() - t0
        print(f"\ntiny bench: {cls.wall:.1f} s\n{cls.proc.stdout[-3000:]}\n{cls.proc.stderr[-3000:]}",
              file=sys.stderr)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_run_succeeded(self):
        self.assertEqual(self.proc.returncode, 0, self.proc.stderr[-2000:])
        for name in (store.META, store.RUNS, store.SUMMARY, store.MICRO, store.REPORT, store.CHARTS):
            self.assertTrue((self.run_dir / name).exists(), name)
        self.assertEqual([f for f in os.listdir(self.run_dir) if f.endswith(".tmp")], [])

    def test_meta_schema(self):
        meta = json.loads((self.run_dir / store.META).read_text())
        self.assertLessEqual(META_KEYS, set(meta), META_KEYS - set(meta))
        self.assertTrue(meta["complete"])
        self.assertEqual(meta["pinning"]["server_cpu"], 0)
        self.assertEqual(meta["pinning"]["client_cpu"], 1)
        self.assertEqual(meta["pinning"]["server_cpus"], [0])
        self.assertEqual(meta["pinning"]["client_cpus"], [1])
        cap = meta["cpu_cap"]
        self.assertIn("method", cap)
        self.assertEqual(cap["applied"], cap["cgroup"]["version"] is not None, cap)
        if not cap["applied"]:
            self.assertTrue(cap["reason"])
        self.assertIn("model", meta["cpu"])
        self.assertIn("compiler", meta["build"])
        self.assertIn("commit", meta["git"])
        for tool in ("loadgen", "wrk", "nginx", "python", "matplotlib"):
            self.assertIn(tool, meta["tools"])
        self.assertIn("somaxconn", meta["limits"]["sysctl"])
        self.assertIn("nofile", meta["limits"])

    def test_runs_schema(self):
        runs = store.load_runs(self.run_dir / store.RUNS)
        lines = (self.run_dir / store.RUNS).read_text().splitlines()
        self.assertEqual(len(runs), len(lines), "every line is one JSON record")
        experiments = {r["experiment"] for r in runs}
        self.assertEqual(experiments, {"scale", "idle", "churn", "latency", "blocking", "cpu",
                                       "payload", "slowloris"})
        for r in runs:
            self.assertLessEqual(RECORD_KEYS, set(r), (r.get("label"), RECORD_KEYS - set(r)))
            self.assertIn(r["status"], ("ok", "skipped", "failed"))
            self.assertIn(r["model"], MODELS)
            if r["status"] != "ok":
                self.assertTrue(r["reason"], r["label"])
                continue
            self.assertLessEqual(LOADGEN_KEYS, set(r["loadgen"]), LOADGEN_KEYS - set(r["loadgen"]))
            self.assertLessEqual(PCT_KEYS, set(r["loadgen"]["latency_us"]))
            self.assertGreater(r["loadgen"]["requests"], 0)
            self.assertLessEqual(WINDOW_KEYS, set(r["server"]["window"]))
            self.assertEqual(set(r["server"]["readings"]), {"memory", "A", "B"})
            for reading in r["server"]["readings"].values():
                self.assertLessEqual(READING_KEYS, set(reading), READING_KEYS - set(reading))
            # The readings: memory in the warm-up, A and B inside the window, the load running.
            rd = r["server"]["readings"]
            self.assertLess(rd["memory"]["t1"], rd["B"]["t0"])
            self.assertLess(rd["A"]["t1"], rd["B"]["t0"])
            self.assertNotIn("reading-after-load", r["flags"], r["label"])
            self.assertIn("window_frac_of_core", r["server"]["sampler"])
            self.assertIn(r["limited_by"], LIMITS, r["label"])
            self.assertEqual(r["flags"][0], r["limited_by"])
            self.assertTrue(r["git"]["commit"])
            self.assertIn("tcp_mem_kib", r["system"]["before"])
            self.assertIn("MemAvailable_kib", r["system"]["after"])
            for key in ("rps", "p99_us", "cpu_us_per_req", "ctxsw_per_req", "pss_kib", "model_kib",
                        "client_cpu_frac", "server_cpu_given", "server_cpu_frac_of_given"):
                self.assertIn(key, r["metrics"], r["label"])
            cap = r["config"]["cpu_cap"]
            if cap["method"] and r["experiment"] in ("scale", "idle", "churn", "cpu", "payload"):
                self.assertEqual(cap["share"], 0.4, r["label"])
            if r["experiment"] in ("latency", "blocking", "slowloris") or r["param"] == "peak":
                self.assertIsNone(cap["share"], r["label"])
        ok = {(r["experiment"], r["model"], str(r["param"])) for r in runs if r["status"] == "ok"}
        for m in MODELS:   # the basics must have worked for both models
            for p in ("1", "10"):
                self.assertIn(("scale", m, p), ok)
            self.assertIn(("idle", m, "100"), ok)
            self.assertIn(("idle", m, "300"), ok)
        threads10 = next(r for r in runs if r["label"] == "scale threads c=10")
        self.assertGreaterEqual(threads10["metrics"]["threads"], 11, "a thread per connection")
        self.assertGreater(threads10["metrics"]["server_cpu_s"], 0)

    def test_summary_columns(self):
        with open(self.run_dir / store.SUMMARY, newline="") as f:
            reader = csv.DictReader(f)
            self.assertEqual(reader.fieldnames, summary.COLUMNS)
            rows = list(reader)
        self.assertTrue(rows)
        for r in rows:
            self.assertIn(r["status"], ("ok", "partial", "skipped", "failed"))
            if r["status"] in ("skipped", "failed"):
                self.assertTrue(r["note"], r)   # a figure left out says why
            elif r["metric"]:
                float(r["median"])
                self.assertLessEqual(float(r["min"]), float(r["median"]))
                self.assertLessEqual(float(r["median"]), float(r["max"]))
        metrics = {(r["experiment"], r["metric"]) for r in rows}
        self.assertIn(("scale", "rps"), metrics)
        self.assertIn(("idle", "pss_slope_kib_per_conn"), metrics)
        slope = {r["model"]: r for r in rows if r["metric"] == "pss_slope_kib_per_conn"}
        if os.environ.get("CMBENCH_SANITIZED", "") in ("", "0"):
            # a stack each (a sanitizer build's readings are its runtime's, and TSan's slowdown
            # can leave the tiny run's slope without three complete counts)
            self.assertGreater(float(slope["threads"]["median"]), 4, slope["threads"])
        for r in slope.values():
            if r["median"]:
                self.assertGreaterEqual(float(r["median"]), 0)
        for r in rows:   # every load point says what limited it
            if r["experiment"] in ("scale", "churn") and r["metric"] == "rps":
                self.assertTrue(LIMITS & set(r["flags"].split(";")), r)
        self.assertIn(("micro", "ns_per_op"), metrics)

    def test_micro_json(self):
        text = (self.run_dir / store.MICRO).read_text()
        micro = json.loads(text)
        self.assertIsNone(micro["cmbench"]["error"])
        # A committed run names no absolute path into the checkout it was made in.
        self.assertNotIn(str(REPO.resolve()) + "/", text)
        if BIN.resolve().is_relative_to(REPO.resolve()):
            self.assertFalse(Path(micro["cmbench"]["binary"]).is_absolute(), micro["cmbench"]["binary"])
        names = {b["run_name"] for b in micro["benchmarks"]}
        for want in ("wait/epoll/100", "wait/poll/1", "wait/select/100", "parse/minimal"):
            self.assertIn(want, names)
        self.assertTrue(any(n.startswith("spawn/fork_wait") for n in names))
        for b in micro["benchmarks"]:
            self.assertFalse(b.get("error_occurred"), b)
            self.assertGreater(b["real_time"], 0)

    def test_every_chart_written(self):
        import plot
        for c in plot.CHARTS:
            for ext in ("png", "svg"):
                path = self.run_dir / store.CHARTS / f"{c.name}.{ext}"
                self.assertTrue(path.exists(), path)
                self.assertGreater(path.stat().st_size, 1000, path)
            self.assertEqual((self.run_dir / store.CHARTS / f"{c.name}.png").read_bytes()[:8],
                             b"\x89PNG\r\n\x1a\n")

    def test_report(self):
        text = (self.run_dir / store.REPORT).read_text()
        for section in ("## Method", "## scale", "## idle", "## churn", "## latency", "## blocking",
                        "## cpu", "## payload", "## slowloris", "## micro", "## Machine",
                        "## How to cite", "@misc{"):
            self.assertIn(section, text)
        self.assertIn("charts/scale_throughput.png", text)
        self.assertTrue((REPO / "CITATION.cff").exists())

    def test_resume_of_complete_run_does_nothing(self):
        p = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--resume",
                            str(self.run_dir), "--no-charts"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("(0 to run)", p.stdout)


if __name__ == "__main__":
    unittest.main()
