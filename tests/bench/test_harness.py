"""Tests of the harness's behaviour around failures, with stand-in servers and loadgen
(fake_server.py, fake_loadgen.py): a crashing server, a failed probe, a missing ready line, a
child left behind and a missing binary are recorded and the run goes on; skip rules; Ctrl-C
leaves a valid folder that --resume completes; the slow-client helper."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))

from harness import plan, points, store, summary  # noqa: E402

PY = sys.executable
RUN = REPO / "bench" / "run.py"


def make_bin(tmp: Path, models: list[str]) -> Path:
    b = tmp / "bin"
    b.mkdir()
    (b / "loadgen").symlink_to(HERE / "fake_loadgen.py")
    for m in models:
        (b / f"server-{m}").symlink_to(HERE / "fake_server.py")
    return b


def run_harness(tmp: Path, bin_dir: Path, *args: str, timeout: float = 180,
                ready_timeout: float = 10) -> subprocess.CompletedProcess:
    cmd = [PY, str(RUN), "--bin-dir", str(bin_dir), "--no-charts", *args]
    env = dict(os.environ, CMBENCH_READY_TIMEOUT=str(ready_timeout))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


class Faults(unittest.TestCase):
    def test_bad_servers_are_recorded_and_the_run_goes_on(self):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            b = make_bin(tmp, ["good", "crash", "badprobe", "noready", "leaker", "nokernel", "oldflags"])
            out = tmp / "run"
            p = run_harness(tmp, b, "--out", str(out), "--models",
                            "good,crash,badprobe,noready,leaker,uring,nokernel,oldflags",
                            "--experiments", "scale", "--points", "scale=2", "--reps", "1",
                            "--warmup", "0.1", "--duration", "0.8",
                            # CI once saw a stand-in take over 10 s to print its ready line
                            # on a loaded machine: only noready should time out here.
                            ready_timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            runs = {r["model"]: r for r in store.load_runs(out / store.RUNS)}
            self.assertEqual(set(runs), {"good", "crash", "badprobe", "noready", "leaker", "uring",
                                         "nokernel", "oldflags"})
            self.assertEqual(runs["good"]["status"], "ok")
            self.assertEqual(runs["good"]["server"]["notes"], [], "good takes the deadline flags")
            self.assertIn(runs["good"]["limited_by"], ("server-bound", "client-bound", "latency-bound"))
            self.assertTrue(runs["good"]["git"]["commit"])
            self.assertTrue(runs["good"]["server"]["stop"]["clean"])
            self.assertGreater(runs["good"]["metrics"]["requests"], 0)
            self.assertEqual(runs["crash"]["status"], "failed")
            self.assertIn("exited during the run", runs["crash"]["reason"])
            self.assertIn("crashing on purpose", runs["crash"]["reason"])
            self.assertEqual(runs["badprobe"]["status"], "failed")
            self.assertIn("probe got unexpected bytes", runs["badprobe"]["reason"])
            self.assertEqual(runs["noready"]["status"], "failed")
            self.assertIn("no ready line", runs["noready"]["reason"])
            # Not built here, or the kernel lacks the mechanism: a skip with the reason.
            self.assertEqual(runs["uring"]["status"], "skipped")   # in the registry, not built
            self.assertIn("binary not found", runs["uring"]["reason"])
            self.assertEqual(runs["nokernel"]["status"], "skipped")
            self.assertIn("io_uring is not available", runs["nokernel"]["reason"])
            self.assertEqual(runs["oldflags"]["status"], "ok")
            self.assertIn("rejected --idle-timeout", runs["oldflags"]["server"]["notes"][0])
            leak = runs["leaker"]
            self.assertIn("unclean-exit", leak["flags"])
            self.assertEqual(len(leak["server"]["stop"]["leftover"]), 1)
            leftover = leak["server"]["stop"]["leftover"][0]
            time.sleep(0.2)
            self.assertFalse(Path(f"/proc/{leftover}").exists() and
                             "Z" not in (Path(f"/proc/{leftover}/stat").read_text().split()[2:3] or ["Z"]),
                             "the harness kills a leftover child")
            meta = json.loads((out / store.META).read_text())
            self.assertTrue(meta["complete"])
            table = summary.read_csv((out / store.SUMMARY).read_text())
            failed = {r["model"] for r in table if r["status"] == "failed"}
            self.assertEqual(failed, {"crash", "badprobe", "noready"})


class SkipRules(unittest.TestCase):
    LIMITS = {"nofile": 20000, "nproc": 100000, "pid_max": 32768, "threads_max": 200000,
              "ephemeral_ports": 28232, "mem_available_kib": 20 << 20, "root": True}

    def test_select_above_fd_setsize(self):
        why = points.skip_reason(plan.Point("scale", "select", 1000, 0), self.LIMITS)
        self.assertIsNone(why)
        why = points.skip_reason(plan.Point("scale", "select", 5000, 0), self.LIMITS)
        self.assertIn("FD_SETSIZE", why)
        why = points.skip_reason(plan.Point("idle", "select", 1000, 0), self.LIMITS)
        self.assertIn("FD_SETSIZE", why, "1000 idle + 10 active + listener and stdio pass 1024")

    def test_process_and_fd_limits(self):
        small = dict(self.LIMITS, pid_max=4000)
        why = points.skip_reason(plan.Point("scale", "fork", 10000, 0), small)
        self.assertIn("processes", why)
        self.assertIsNone(points.skip_reason(plan.Point("scale", "epoll", 10000, 0), small))
        few_fds = dict(self.LIMITS, nofile=1024)
        self.assertIn("ulimit -n", points.skip_reason(plan.Point("scale", "epoll", 5000, 0), few_fds))


class CommandLine(unittest.TestCase):
    def test_cpu_lists(self):
        sys.path.insert(0, str(REPO / "bench"))
        import run
        self.assertEqual(run.cpu_list("0"), [0])
        self.assertEqual(run.cpu_list("0-1"), [0, 1])
        self.assertEqual(run.cpu_list("2,3"), [2, 3])
        self.assertEqual(run.cpu_list("0-1,4"), [0, 1, 4])
        for bad in ("", "x", "3-1", "-1"):
            with self.assertRaises(Exception, msg=bad):
                run.cpu_list(bad)
        self.assertEqual(run.cpu_cap("1000/2500"), (1000, 2500))
        self.assertIsNone(run.cpu_cap("off"))
        with self.assertRaises(Exception):
            run.cpu_cap("500/2500")   # cgroup v1 refuses quotas under 1000 us

    def test_groups_expand_and_unknown_models_are_refused(self):
        with tempfile.TemporaryDirectory() as d:
            b = make_bin(Path(d), ["good"])
            p = run_harness(Path(d), b, "--dry-run", "--models", "card,good", "--experiments", "scale")
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("8 models", p.stdout)   # the seven of the card, plus a built stand-in
            p = run_harness(Path(d), b, "--dry-run", "--models", "epol")
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("unknown model or group: epol", p.stderr)
            p = run_harness(Path(d), b, "--dry-run", "--server-cpus", "0-1", "--client-cpus", "1")
            self.assertIn("overlap", p.stderr)

    def test_every_preset_fits_its_budget_with_every_registry_model(self):
        # issue 7 item 7: quick <= 4 min, default <= 30 min, full <= 2 h on this 2-core machine
        from harness import registry
        for name, preset in plan.PRESETS.items():
            pl = plan.build(preset, registry.NAMES, plan.EXPERIMENTS, preset.reps)
            est = sum(plan.estimate_point_s(p, preset) for p in pl.points) + \
                plan.estimate_micro_s(preset) + plan.CHARTS_S
            self.assertLessEqual(est, preset.budget_s, f"{name}: {est:.0f} s")
            limit = {"quick": 240, "default": 1800, "full": 7200}[name]
            self.assertLessEqual(preset.budget_s, limit)
            # every model appears in every experiment it can serve (headline charts complete)
            for m in registry.MODELS:
                exps = {p.experiment for p in pl.points if p.model == m.name}
                want = {e for e in plan.LOAD_EXPERIMENTS if preset.points.get(e) and plan.serves(m.name, e)}
                self.assertEqual(exps, want, (name, m.name))

    def test_select_gets_three_idle_counts_below_fd_setsize(self):
        for name, preset in plan.PRESETS.items():
            pl = plan.build(preset, ["select", "epoll"], ["idle"], 1)
            counts = [p.param for p in pl.points if p.model == "select"]
            self.assertGreaterEqual(len(counts), 3, (name, counts))
            self.assertLess(max(counts) + plan.IDLE_ACTIVE_CONNS + 16, plan.FD_SETSIZE)
            for p in pl.points:
                self.assertIsNone(points.skip_reason(p, SkipRules.LIMITS) if p.model == "select" else None)

    def test_reference_rows_only_in_static_experiments_and_skipped_with_reason(self):
        pl = plan.build(plan.PRESETS["quick"], ["nginx"], plan.EXPERIMENTS, 1)
        self.assertEqual({p.experiment for p in pl.points},
                         {"scale", "idle", "churn", "latency", "payload"} & set(plan.PRESETS["quick"].points))
        with tempfile.TemporaryDirectory() as d:
            b = make_bin(Path(d), [])
            out = Path(d) / "run"
            p = run_harness(Path(d), b, "--out", str(out), "--models", "nginx", "--experiments", "scale",
                            "--points", "scale=2", "--reps", "1")
            self.assertEqual(p.returncode, 0, p.stderr)
            (r,) = store.load_runs(out / store.RUNS)
            # Not installed (or the reference module not merged): a skip that says why, never a
            # failure; installed: a measured point.
            self.assertIn(r["status"], ("skipped", "ok"), r.get("reason"))
            if r["status"] == "skipped":
                self.assertTrue(r["reason"])


class NoCgroup(unittest.TestCase):
    def test_uncapped_throughput_point_says_why(self):
        from harness import cgroup
        with tempfile.TemporaryDirectory() as d:
            b = make_bin(Path(d), ["good"])
            preset = plan.Preset("t", 1, 0.1, 0.5, {}, 0.01, 1)
            ctx = points.Context(bin_dir=b, loadgen=b / "loadgen", preset=preset, server_cpus=None,
                                 client_cpus=None, quota=(1000, 2500), count_syscalls=False,
                                 cgroup=cgroup.Method(None, "not root: cannot create cgroups"))
            rec = points.run_point(plan.Point("scale", "good", 2, 0), ctx)
            self.assertEqual(rec["status"], "ok", rec["reason"])
            self.assertIn("uncapped", rec["flags"])
            self.assertIn("not root", rec["config"]["cpu_cap"]["reason"])
            self.assertEqual(rec["metrics"]["cpu_source"], "proc", "CPU from /proc without a cgroup")
            self.assertIsNotNone(rec["metrics"]["server_cpu_s"])
            # A latency point is uncapped by design: no such flag.
            rec = points.run_point(plan.Point("latency", "good", plan.PEAK, 0), ctx)
            self.assertNotIn("uncapped", rec["flags"])


class ReferenceServers(unittest.TestCase):
    def test_started_from_argv_waited_for_by_port_probed_like_for_like(self):
        from harness.server import Server, free_port
        with tempfile.TemporaryDirectory() as d:
            b = make_bin(Path(d), ["refstyle"])
            port = free_port()
            srv = Server("nginx", None, None, port=port,
                         argv=[str(b / "server-refstyle"), "--port", str(port)])
            try:
                self.assertIsNone(srv.start())
                self.assertIsNone(srv.probe(), "same status and body: like for like")
                self.assertIn("differs from docs/architecture.md", srv.notes[0])
                self.assertIn(b"Server: fake", srv.probe_response)
                stop = srv.stop()
                self.assertTrue(stop["clean"], stop)
            finally:
                srv.close()
            # One of our models must send exactly the contract's bytes.
            own = Server("refstyle", b / "server-refstyle", None)
            try:
                self.assertIsNone(own.start())
                self.assertIn("unexpected bytes", own.probe())
                own.stop()
            finally:
                own.close()


class Interrupt(unittest.TestCase):
    def test_ctrl_c_leaves_valid_folder_and_resume_completes(self):
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d)
            b = make_bin(tmp, ["good"])
            out = tmp / "run"
            args = ["--out", str(out), "--models", "good", "--experiments", "scale",
                    "--points", "scale=1,2,3", "--reps", "2", "--warmup", "0.1", "--duration", "0.4"]
            proc = subprocess.Popen([PY, str(RUN), "--bin-dir", str(b), "--no-charts", *args],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and len(store.load_runs(out / store.RUNS)) < 2:
                time.sleep(0.05)
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=60)
            self.assertEqual(proc.returncode, 130, stdout + stderr)
            self.assertIn("--resume", stdout)
            first = store.load_runs(out / store.RUNS)
            self.assertGreaterEqual(len(first), 2)
            self.assertLess(len(first), 6)
            self.assertFalse(json.loads((out / store.META).read_text())["complete"])
            self.assertTrue((out / store.SUMMARY).exists())
            # Every line is whole JSON (nothing torn), and no temp file is left behind.
            for line in (out / store.RUNS).read_text().splitlines():
                json.loads(line)
            self.assertEqual([f for f in os.listdir(out) if f.endswith(".tmp")], [])

            p = run_harness(tmp, b, "--resume", str(out))
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            done = store.load_runs(out / store.RUNS)
            keys = [store.point_key(r) for r in done]
            self.assertEqual(len(keys), 6)
            self.assertEqual(len(set(keys)), 6, "resume must not repeat a recorded point")
            self.assertTrue(json.loads((out / store.META).read_text())["complete"])
            p = run_harness(tmp, b, "--resume", str(out))
            self.assertIn("(0 to run)", p.stdout)

    def test_torn_last_line_is_ignored_and_repaired(self):
        with tempfile.TemporaryDirectory() as d:
            f = store.RunFolder(Path(d)).create()
            f.append_run({"experiment": "scale", "model": "a", "param": 1, "rep": 0})
            with open(f.runs_path, "a") as w:
                w.write('{"experiment": "scale", "mod')   # a crash mid-write
            self.assertEqual(len(f.runs()), 1)
            f.append_run({"experiment": "scale", "model": "b", "param": 1, "rep": 0})
            self.assertEqual([r["model"] for r in f.runs()], ["a", "b"])


class SlowClients(unittest.TestCase):
    def test_slowloris_helper_connects_trickles_and_reports(self):
        with tempfile.TemporaryDirectory() as d:
            b = make_bin(Path(d), ["good"])
            srv = subprocess.Popen([str(b / "server-good"), "--port", "0"], stdout=subprocess.PIPE,
                                   stderr=subprocess.DEVNULL, text=True)
            try:
                port = int(srv.stdout.readline().strip().rsplit(":", 1)[1])
                helper = subprocess.Popen([PY, str(REPO / "bench" / "harness" / "slowloris.py"),
                                           "--port", str(port), "--clients", "20", "--interval", "0.1",
                                           "--max-seconds", "10"], stdout=subprocess.PIPE, text=True)
                self.assertEqual(helper.stdout.readline().split(), ["ready", "20", "0"])
                time.sleep(0.55)
                helper.send_signal(signal.SIGTERM)
                out, _ = helper.communicate(timeout=10)
                res = json.loads(out.strip().splitlines()[-1])
                self.assertEqual(res["alive_at_end"], 20)
                self.assertEqual(res["closed_by_server"], 0)
                # The request line, then about one byte per client per 0.1 s.
                line = len(b"GET / HTTP/1.1\r\nHost: slowloris\r\nX-Slow: ")
                self.assertGreaterEqual(res["bytes_sent"], 20 * (line + 3))
                self.assertLess(res["bytes_sent"], 20 * (line + 10))
            finally:
                srv.terminate()
                srv.wait(timeout=5)
                srv.stdout.close()


if __name__ == "__main__":
    unittest.main()
