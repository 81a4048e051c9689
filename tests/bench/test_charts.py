"""Chart code on a synthetic results folder with every registry model (synthetic_run.py) and on
the committed results/reference/ (older schema): every chart is written without an exception,
every model appears in the family charts, and a figure that is not data (a memory slope that
failed its checks, a load not offered on schedule) is never drawn as a number."""
from __future__ import annotations

import json
import shutil
import sys
import tempfile
import unittest
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "plots"))
sys.path.insert(0, str(HERE))

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import plot  # noqa: E402
import synthetic_run  # noqa: E402
from harness import registry  # noqa: E402


def draw(data, name):
    chart = next(c for c in plot.CHARTS if c.name == name)
    fig = plt.figure(figsize=chart.size)
    chart.draw(data, fig)
    return fig


def labels(fig) -> set[str]:
    out = set()
    for ax in fig.axes:
        out |= {t.get_text() for t in ax.get_xticklabels() + ax.get_yticklabels()}
        leg = ax.get_legend()
        if leg:
            out |= {t.get_text().split(" (")[0] for t in leg.get_texts()}
    return out


def bar_at(ax, x: float) -> bool:
    return any(isinstance(p, Rectangle) and abs(p.get_x() + p.get_width() / 2 - x) < 0.05
               and p.get_height() > 0 for p in ax.patches)


class SyntheticCharts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = Path(tempfile.mkdtemp(prefix="cmbench-charts-"))
        cls.run_dir = synthetic_run.make(cls.tmp / "run")
        cls.data = plot.load(cls.run_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def tearDown(self):
        plt.close("all")

    def test_every_chart_written(self):
        written = plot.render(self.run_dir, strict=True)
        names = {p.stem for p in written}
        self.assertEqual(names, {c.name for c in plot.CHARTS})
        for p in written:
            self.assertGreater(p.stat().st_size, 1000, p)
        self.assertIn("idle_active", names)   # the C10K chart
        self.assertIn("syscalls", names)

    def test_every_model_in_the_family_charts(self):
        measured = set(registry.NAMES) - set(synthetic_run.SKIPPED)
        for name in ("scale_throughput", "scale_p99", "idle_active", "idle_memory", "churn",
                     "payload", "latency_knee", "cpu_per_request", "syscalls"):
            with self.subTest(chart=name):
                missing = measured - labels(draw(self.data, name))
                self.assertEqual(missing, set(), f"{name} lacks {sorted(missing)}")
        serving_all = {m.name for m in registry.MODELS if m.serves == "all"} - set(synthetic_run.SKIPPED)
        missing = serving_all - labels(draw(self.data, "blocking"))
        self.assertEqual(missing, set(), f"blocking lacks {sorted(missing)}")

    def test_not_measurable_slope_has_no_bar(self):
        fig = draw(self.data, "idle_memory")
        ax = fig.axes[0]
        ticks = {t.get_text(): x for t, x in zip(ax.get_xticklabels(), ax.get_xticks())}
        for model in ("select", "py-tornado"):     # two idle counts; noise (r² < 0.9)
            self.assertIn(model, ticks)
            self.assertFalse(bar_at(ax, ticks[model]), f"{model}'s slope drawn as a bar")
        for model in ("fork", "epoll", "apache-prefork"):
            self.assertTrue(bar_at(ax, ticks[model]), f"{model}'s slope missing")
        texts = " ".join(t.get_text() for t in ax.texts)
        self.assertIn("not measurable", texts)

    def test_points_not_offered_on_schedule_not_drawn_as_data(self):
        fig = draw(self.data, "latency_knee")
        # The merged summary writes such a point as a `skipped` row with the reason and no
        # figure; its measured p99s stay in runs.jsonl, and none of them may be drawn.
        skipped = {(r["model"], r["param"]) for r in self.data.table
                   if r["experiment"] == "latency" and r["status"] == "skipped"
                   and "beyond-generator" in r["flags"] and "generator core" in r["note"]}
        self.assertIn(("fork", "80"), {(m, str(p)) for m, p in skipped})
        beyond = [r["metrics"]["p99_us"] / 1000 for r in self.data.runs
                  if r["experiment"] == "latency" and "beyond-generator" in r["flags"]]
        self.assertTrue(beyond)
        for ax in fig.axes:
            for line in ax.get_lines():
                if line.get_transform() != ax.transData:
                    continue   # hollow markers sit on the axis, in axes coordinates
                for y in line.get_ydata():
                    for b in beyond:
                        self.assertNotAlmostEqual(float(y), b, places=6,
                                                  msg="a point beyond the generator was drawn as data")

    def test_blocking_order_and_ticks(self):
        order = [m for m, *_ in plot.blocking_order(self.data)]
        hurt = {m for m, _b, _w, h in plot.blocking_order(self.data) if h}
        self.assertTrue({"select", "poll", "epoll", "coro", "py-asyncio"} <= hurt)
        for m in ("fork", "threads", "threadpool", "offload", "asio"):
            self.assertNotIn(m, hurt)
            self.assertGreater(order.index(m), max(order.index(h) for h in hurt))
        fig = draw(self.data, "blocking")
        ax = fig.axes[0]
        shown = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        self.assertGreaterEqual(len(shown), 3, f"log axis tick labels: {shown}")   # defect 11

    def test_nothing_but_not_data(self):
        """Every blocking and latency point beyond the generator (as in a tiny e2e run): the
        charts say so instead of failing on an empty log axis."""
        runs = synthetic_run.records(["epoll", "threads"], reps=1)
        for r in runs:
            if r["experiment"] in ("blocking", "latency"):
                r["flags"] = r["flags"] + ["beyond-generator"]
        folder = self.tmp / "not-data"
        folder.mkdir()
        with open(folder / "runs.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in runs)
        (folder / "meta.json").write_text(json.dumps(synthetic_run.meta(["epoll", "threads"], 1)))
        written = plot.render(folder, ["blocking", "latency_knee"], strict=True)
        self.assertEqual(len(written), 4)

    def test_limit_markers(self):
        self.assertEqual(self.data.limit("scale", "nginx", 100), "client-bound")
        self.assertEqual(self.data.limit("scale", "epoll", 100), "server-bound")
        self.assertEqual(self.data.limit("scale", "epoll", 1), "latency-bound")

    def test_one_colour_per_model(self):
        colours = [plot.color(m) for m in registry.NAMES if not registry.BY_NAME[m].is_reference]
        self.assertEqual(len(colours), len(set(colours)), "two models share a colour")
        for fam in ("card", "lecture", "python", "production"):
            ms = registry.group(fam)
            self.assertEqual(len({plot.color(m) for m in ms}), len(ms))

    def test_log_ticks_readable(self):
        fig = plt.figure()
        ax = fig.add_subplot(111)
        for lo, hi in ((0.3, 1.7), (0.5, 0.9), (0.05, 400)):
            ticks = plot.log_ticks(ax, "x", lo, hi)
            self.assertGreaterEqual(len(ticks), 3, (lo, hi, ticks))
            self.assertTrue(all(lo <= t <= hi for t in ticks))


class ReferenceRunCharts(unittest.TestCase):
    """The committed reference run has the older schema (no limits, no syscalls, Pss slopes)."""

    def test_renders(self):
        src = REPO / "results" / "reference"
        if not (src / "runs.jsonl").exists():
            self.skipTest("results/reference/runs.jsonl not in this checkout")
        with tempfile.TemporaryDirectory(prefix="cmbench-charts-ref-") as tmp:
            run = Path(tmp) / "reference"
            run.mkdir()
            for f in ("runs.jsonl", "meta.json", "micro.json"):
                if (src / f).exists():
                    shutil.copy(src / f, run / f)
            written = plot.render(run, strict=True)
            self.assertEqual(len(written), 2 * len(plot.CHARTS))
            data = plot.load(run)
            # An older run (schema 1) measured select at two idle counts: its slope is not a
            # number, so no bar. A current run gives select three counts below FD_SETSIZE: a bar.
            schema = json.loads((run / "runs.jsonl").read_text().splitlines()[0]).get("schema", 1)
            fig = draw(data, "idle_memory")
            ax = fig.axes[0]
            ticks = {t.get_text(): x for t, x in zip(ax.get_xticklabels(), ax.get_xticks())}
            self.assertEqual(bool(bar_at(ax, ticks["select"])), schema >= 2)
            plt.close("all")


if __name__ == "__main__":
    unittest.main(verbosity=2)


class SyscallStacks(unittest.TestCase):
    """The stacked calls of a model add up to its syscalls_per_req (the reference run's table
    once said 3.06 calls per request for epoll, which makes 2.04: calls folded into "other"
    were counted again under their own names)."""

    def test_stacks_add_up_and_recv_send_are_named(self):
        from harness import summary as summ
        rows = []
        def add(model, calls):
            rows.append({"experiment": "scale", "model": model, "param": 100, "metric": "syscalls_per_req",
                         "median": sum(calls.values()), "n": 1, "min": None, "max": None, "flags": "", "note": ""})
            for n, v in calls.items():
                rows.append({"experiment": "scale", "model": model, "param": 100,
                             "metric": f"syscall_{n}_per_req", "median": v, "n": 1, "min": None,
                             "max": None, "flags": "", "note": ""})
        add("epoll", {"recvfrom": 1.0, "sendmsg": 1.0, "epoll_wait": 0.012, "accept4": 0.005, "close": 0.004})
        for m in ("select", "poll", "asio", "libuv"):
            add(m, {"recvfrom": 1.0, "sendmsg": 1.0, "close": 0.004})
        # one model with many calls of its own (apache-like) must not push recv/send out
        add("apache-event", {f"quirk{i}": 2.0 for i in range(12)} | {"read": 2.0, "writev": 1.0})
        data = plot.Data(Path("."), [], None, rows, {}, {})
        names, per = plot.syscall_stacks(data, "scale", 100)
        for model in ("epoll", "apache-event"):
            total = summ.lookup(rows, "scale", model, 100, "syscalls_per_req")["median"]
            self.assertAlmostEqual(sum(per[model].values()), total, places=9, msg=model)
            self.assertTrue(set(per[model]) <= set(names), per[model])
        self.assertIn("recvfrom", names)
        self.assertIn("sendmsg", names)
