#!/usr/bin/python3
"""Charts of one results folder: `make plots RUN=results/<folder>`.

    /usr/bin/python3 plots/plot.py RUN_DIR

Writes RUN_DIR/charts/<name>.png and .svg for every chart in CHARTS. Every chart is titled,
its axes carry units, each model keeps one colour in every chart, and error bars show the
range (min-max) over repetitions around the median. A chart whose experiment is missing from
the run is still written, saying "no data" and which experiment would fill it.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from harness import stats, store, summary  # noqa: E402
from harness.plan import LATENCY_CONNS, MODELS, PEAK  # noqa: E402

# One colour per model in every chart (colour-blind-friendly Okabe-Ito order, then greys for
# reference servers such as nginx).
MODEL_COLORS = {
    "fork": "#E69F00", "threads": "#56B4E9", "select": "#009E73", "poll": "#F0E442",
    "epoll": "#0072B2", "asio": "#D55E00", "libevent": "#CC79A7", "nginx": "#555555",
    "wrk": "#999999",
}
_EXTRA = ["#882255", "#44AA99", "#117733", "#332288", "#AA4499", "#DDCC77"]
MARKERS = {"fork": "o", "threads": "s", "select": "^", "poll": "v", "epoll": "D", "asio": "P",
           "libevent": "X", "nginx": "*"}


def color(model: str) -> str:
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    return _EXTRA[sum(map(ord, model)) % len(_EXTRA)]


def model_order(models) -> list[str]:
    known = [m for m in MODELS if m in models]
    return known + sorted(m for m in models if m not in MODELS)


@dataclass
class Data:
    run: Path
    runs: list[dict]
    micro: dict | None
    table: list[dict]
    meta: dict

    def rows(self, experiment: str, metric: str, param=None) -> list[dict]:
        return [r for r in self.table if r["experiment"] == experiment and r["metric"] == metric
                and (param is None or str(r["param"]) == str(param)) and r["median"] is not None]

    def models(self, experiment: str) -> list[str]:
        return model_order({r["model"] for r in self.table if r["experiment"] == experiment
                            and r["median"] is not None})


def load(run: Path) -> Data:
    runs = store.load_runs(run / store.RUNS)
    micro = store.read_json(run / store.MICRO)
    return Data(run, runs, micro, summary.rows(runs, micro), store.read_json(run / store.META, {}) or {})


def _num(p) -> float | None:
    try:
        return float(p)
    except (TypeError, ValueError):
        return None


def _yerr(rows: list[dict], scale: float = 1.0):
    lo = [max(0.0, (r["median"] - r["min"]) * scale) for r in rows]
    hi = [max(0.0, (r["max"] - r["median"]) * scale) for r in rows]
    return [lo, hi]


def _series(data: Data, experiment: str, metric: str, model: str, scale: float = 1.0):
    rows = sorted((r for r in data.rows(experiment, metric) if r["model"] == model
                   and _num(r["param"]) is not None), key=lambda r: _num(r["param"]))
    xs = [_num(r["param"]) for r in rows]
    ys = [r["median"] * scale for r in rows]
    return xs, ys, _yerr(rows, scale), rows


def _no_data(ax, what: str) -> None:
    ax.text(0.5, 0.5, f"no data in this run\n({what})", ha="center", va="center",
            transform=ax.transAxes, fontsize=12, color="#666666")
    ax.set_xticks([])
    ax.set_yticks([])


def _subtitle(fig, data: Data) -> None:
    m = data.meta
    s = m.get("settings") or {}
    cpu = (m.get("cpu") or {}).get("model", "?")
    reps = s.get("reps", "?")
    fig.text(0.01, 0.005, f"{data.run.name} | {cpu} | server CPU {s.get('server_cpu', '?')}, "
             f"loadgen CPU {s.get('client_cpu', '?')} | median of {reps} rep(s), bars: min-max",
             fontsize=7, color="#666666", ha="left", va="bottom")


def _legend(ax) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=8, frameon=False)


def _fmt_count(x, _pos=None) -> str:
    if x >= 1e6:
        return f"{x / 1e6:g}M"
    if x >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


# --- the charts ----------------------------------------------------------------------------

def chart_scale_throughput(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    models = data.models("scale")
    for m in models:
        xs, ys, err, _ = _series(data, "scale", "rps", m)
        if xs:
            ax.errorbar(xs, ys, yerr=err, label=m, color=color(m), marker=MARKERS.get(m, "o"),
                        capsize=3, lw=1.6)
    if not any(_series(data, "scale", "rps", m)[0] for m in models):
        return _no_data(ax, "experiment 'scale'")
    ax.set_xscale("log")
    ax.set_xlabel("keep-alive connections (log scale)")
    ax.set_ylabel("throughput (requests/s)")
    ax.yaxis.set_major_formatter(FuncFormatter(_fmt_count))
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)


def chart_scale_p99(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    drawn = False
    for m in data.models("scale"):
        xs, ys, err, _ = _series(data, "scale", "p99_us", m, 1e-3)
        if xs:
            drawn = True
            ax.errorbar(xs, ys, yerr=err, label=m, color=color(m), marker=MARKERS.get(m, "o"),
                        capsize=3, lw=1.6)
    if not drawn:
        return _no_data(ax, "experiment 'scale'")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("keep-alive connections (log scale)")
    ax.set_ylabel("p99 latency (ms, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)


def chart_idle_memory(data: Data, fig) -> None:
    ax1 = fig.add_subplot(121)
    ax2 = fig.add_subplot(122)
    slopes = [r for r in data.rows("idle", "pss_slope_kib_per_conn", "slope")]
    slopes = sorted(slopes, key=lambda r: model_order([x["model"] for x in slopes]).index(r["model"]))
    if slopes:
        xs = range(len(slopes))
        ax1.bar(xs, [r["median"] for r in slopes], yerr=_yerr(slopes), capsize=3,
                color=[color(r["model"]) for r in slopes], edgecolor="black", lw=0.5)
        for x, r in zip(xs, slopes):
            ax1.annotate(f"{r['median']:.1f}", (x, max(r["median"], 0)), ha="center", va="bottom",
                         fontsize=8, xytext=(0, 3), textcoords="offset points")
        ax1.set_xticks(list(xs), [r["model"] for r in slopes], rotation=30)
        ax1.set_ylabel("server PSS per idle connection (KiB/conn)")
        ax1.set_title("PSS slope (least squares)", fontsize=10)
        ax1.grid(True, axis="y", alpha=0.3)
    else:
        _no_data(ax1, "experiment 'idle' with 2+ idle counts")
    drawn = False
    for m in data.models("idle"):
        xs, ys, err, _ = _series(data, "idle", "pss_kib", m, 1 / 1024)
        if xs:
            drawn = True
            ax2.errorbar(xs, ys, yerr=err, label=m, color=color(m), marker=MARKERS.get(m, "o"),
                         capsize=3, lw=1.4)
    if drawn:
        ax2.set_xlabel("idle connections (beside 10 active)")
        ax2.set_ylabel("server PSS, whole process tree (MiB)")
        ax2.set_title("total PSS", fontsize=10)
        ax2.grid(True, alpha=0.3)
        ax2.xaxis.set_major_formatter(FuncFormatter(_fmt_count))
        _legend(ax2)
    else:
        _no_data(ax2, "experiment 'idle'")


def chart_latency_knee(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    drawn = False
    for m in data.models("latency"):
        rows = sorted((r for r in data.rows("latency", "p99_us") if r["model"] == m
                       and _num(r["param"]) is not None), key=lambda r: _num(r["param"]))
        offered = {str(r["param"]): r["median"] for r in data.rows("latency", "offered_rps")
                   if r["model"] == m}
        pts = [(offered.get(str(r["param"])), r) for r in rows if offered.get(str(r["param"]))]
        if not pts:
            continue
        drawn = True
        xs = [p[0] for p in pts]
        ys = [p[1]["median"] / 1000 for p in pts]
        ax.errorbar(xs, ys, yerr=_yerr([p[1] for p in pts], 1e-3), label=m, color=color(m),
                    marker=MARKERS.get(m, "o"), capsize=3, lw=1.6)
        for x, y, (_, r) in zip(xs, ys, pts):
            if _num(r["param"]) in (80.0, 110.0):
                ax.annotate(f"{_num(r['param']):g}%", (x, y), fontsize=6, color=color(m),
                            xytext=(3, 3), textcoords="offset points")
    if not drawn:
        return _no_data(ax, "experiment 'latency'")
    ax.set_yscale("log")
    ax.set_xlabel("offered load (requests/s, open loop; points at 10-110 % of each model's peak)")
    ax.set_ylabel("p99 latency from intended send time (ms, log scale)")
    ax.xaxis.set_major_formatter(FuncFormatter(_fmt_count))
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)


def _nines_axis(ax, max_nines: int) -> None:
    ticks = list(range(0, max_nines + 1))
    labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"][: max_nines + 1]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, labels)


def chart_latency_distribution(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    max_nines = 1
    drawn = False
    by_model: dict[str, list] = {}
    for r in summary.ok_records(data.runs):
        if r["experiment"] == "scale" and str(r["param"]) == str(LATENCY_CONNS):
            h = ((r.get("loadgen") or {}).get("histogram") or {}).get("buckets")
            if h:
                by_model.setdefault(r["model"], []).append(h)
    for m in model_order(by_model):
        merged = stats.merge_buckets(by_model[m])
        curve = stats.percentile_curve(merged)
        if not curve:
            continue
        drawn = True
        xs = [-math.log10(1 - p / 100) if p < 100 else None for p, _ in curve]
        pts = [(x, v / 1000) for x, (p, v) in zip(xs, curve) if x is not None]
        max_nines = max(max_nines, math.ceil(pts[-1][0]))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{m} ({len(by_model[m])} rep)",
                color=color(m), lw=1.6)
    if not drawn:
        return _no_data(ax, f"experiment 'scale' at {LATENCY_CONNS} connections")
    _nines_axis(ax, min(max_nines, 6))
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
    ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: f"{v:g}" if str(f"{v:g}")[0] in "25" else ""))
    ax.set_xlabel("percentile (log scale of 1/(1-p), HdrHistogram style)")
    ax.set_ylabel("latency (ms, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)


def chart_blocking(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    models = data.models("blocking")
    base = {r["model"]: r for r in data.rows("blocking", "p99_us", 0)}
    withs = {r["model"]: r for r in data.rows("blocking", "p99_us") if (_num(r["param"]) or 0) > 0}
    models = [m for m in models if m in base or m in withs]
    if not models:
        return _no_data(ax, "experiment 'blocking'")
    width = 0.38
    for i, m in enumerate(models):
        for off, d, hatch, lab in ((-width / 2, base, "//", "without slow requests"),
                                   (width / 2, withs, "", "with 1 % /sleep/1000")):
            r = d.get(m)
            if not r:
                continue
            ax.bar(i + off, r["median"] / 1000, width, yerr=_yerr([r], 1e-3), capsize=3,
                   color=color(m), hatch=hatch, edgecolor="black", lw=0.5,
                   alpha=0.55 if hatch else 1.0, label=lab if i == 0 else None)
    ax.set_xticks(range(len(models)), models, rotation=30)
    ax.set_yscale("log")
    ax.set_ylabel("p99 of the fast GET / requests (ms, log scale)")
    ax.grid(True, axis="y", which="both", alpha=0.3)
    _legend(ax)


def chart_cpu_per_request(data: Data, fig) -> None:
    ax1 = fig.add_subplot(121)
    ax2 = fig.add_subplot(122)
    workloads = [("scale", LATENCY_CONNS, f"keep-alive, c={LATENCY_CONNS}", ""),
                 ("churn", None, "new connection per request", "//"),
                 ("cpu", None, "/cpu/100 handler", "..")]
    for ax, metric, ylabel in ((ax1, "cpu_us_per_req", "server CPU per request (us, log scale)"),
                               (ax2, "ctxsw_per_req", "context switches per request (log scale)")):
        present = []
        for exp, param, label, hatch in workloads:
            rows = {r["model"]: r for r in data.rows(exp, metric)
                    if param is None or str(r["param"]) == str(param)}
            if rows:
                present.append((label, hatch, rows))
        models = model_order({m for _, _, rows in present for m in rows})
        if not models:
            _no_data(ax, "experiments 'scale', 'churn', 'cpu'")
            continue
        width = 0.8 / len(present)
        for k, (label, hatch, rows) in enumerate(present):
            for i, m in enumerate(models):
                r = rows.get(m)
                if not r or r["median"] <= 0:
                    continue
                ax.bar(i - 0.4 + width * (k + 0.5), r["median"], width, yerr=_yerr([r]), capsize=2,
                       color=color(m), hatch=hatch, edgecolor="black", lw=0.5,
                       label=label if i == 0 or m == models[0] else None)
        ax.set_xticks(range(len(models)), models, rotation=30)
        ax.set_yscale("log")
        ax.set_ylabel(ylabel)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        seen = {}
        for h, lab in zip(handles, labels):
            seen.setdefault(lab, h)
        if seen:
            # Above the bars, where it hides nothing; white swatches show only the hatch.
            leg = ax.legend(seen.values(), seen.keys(), fontsize=7, frameon=False, ncol=3,
                            loc="lower center", bbox_to_anchor=(0.5, 1.0))
            for patch in leg.get_patches():
                patch.set_facecolor("white")


def _bars(ax, rows: list[dict], scale: float, ylabel: str, fmt: str) -> None:
    rows = sorted(rows, key=lambda r: model_order([x["model"] for x in rows]).index(r["model"]))
    xs = range(len(rows))
    ax.bar(xs, [r["median"] * scale for r in rows], yerr=_yerr(rows, scale), capsize=3,
           color=[color(r["model"]) for r in rows], edgecolor="black", lw=0.5)
    for x, r in zip(xs, rows):
        ax.annotate(fmt.format(r["median"] * scale), (x, r["median"] * scale), ha="center",
                    va="bottom", fontsize=8, xytext=(0, 3), textcoords="offset points")
    ax.set_xticks(list(xs), [r["model"] for r in rows], rotation=30)
    ax.set_ylabel(ylabel)
    ax.grid(True, axis="y", alpha=0.3)


def chart_churn(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    rows = data.rows("churn", "rps")
    if not rows:
        return _no_data(ax, "experiment 'churn'")
    _bars(ax, rows, 1.0, "new connections per second (one request each)", "{:,.0f}")
    ax.yaxis.set_major_formatter(FuncFormatter(_fmt_count))


def chart_cpu_bound(data: Data, fig) -> None:
    ax1 = fig.add_subplot(121)
    ax2 = fig.add_subplot(122)
    rows = data.rows("cpu", "rps")
    if not rows:
        _no_data(ax1, "experiment 'cpu'")
        _no_data(ax2, "experiment 'cpu'")
        return
    _bars(ax1, rows, 1.0, "throughput (requests/s)", "{:,.0f}")
    ax1.yaxis.set_major_formatter(FuncFormatter(_fmt_count))
    _bars(ax2, data.rows("cpu", "p99_us"), 1e-3, "p99 latency (ms)", "{:.2f}")


def chart_payload(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    drawn = False
    for m in data.models("payload"):
        xs, ys, err, _ = _series(data, "payload", "payload_mb_s", m)
        if xs:
            drawn = True
            ax.errorbar(xs, ys, yerr=err, label=m, color=color(m), marker=MARKERS.get(m, "o"),
                        capsize=3, lw=1.6)
    if not drawn:
        return _no_data(ax, "experiment 'payload'")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(
        lambda x, _p: f"{x / 1048576:g} MiB" if x >= 1048576 else f"{x / 1024:g} KiB" if x >= 1024 else f"{x:g} B"))
    ax.set_xlabel("response body size (log scale)")
    ax.set_ylabel("response bodies delivered (MB/s, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)


def chart_slowloris(data: Data, fig) -> None:
    ax1 = fig.add_subplot(121)
    ax2 = fig.add_subplot(122)
    rows = data.rows("slowloris", "p99_us")
    if not rows:
        _no_data(ax1, "experiment 'slowloris'")
        _no_data(ax2, "experiment 'slowloris'")
        return
    _bars(ax1, rows, 1e-3, "p99 of 10 normal clients (ms)", "{:.2f}")
    base = {r["model"]: r for r in data.rows("scale", "p99_us", 10)}
    for i, r in enumerate(sorted(rows, key=lambda r: model_order([x["model"] for x in rows]).index(r["model"]))):
        b = base.get(r["model"])
        if b:
            ax1.plot([i - 0.4, i + 0.4], [b["median"] / 1000] * 2, color="black", lw=1.2, ls="--",
                     label="same load without slow clients (scale c=10)" if i == 0 else None)
    _legend(ax1)
    rps = data.rows("slowloris", "rps")
    if rps:
        _bars(ax2, rps, 1.0, "throughput of the normal clients (requests/s)", "{:,.0f}")
        ax2.yaxis.set_major_formatter(FuncFormatter(_fmt_count))


def _micro_rows(data: Data, group: str) -> dict[str, list[tuple[float, dict]]]:
    out: dict[str, list] = {}
    for r in data.table:
        if r["experiment"] == "micro" and str(r["param"]).startswith(group + "/") and r["median"]:
            arg = _num(str(r["param"]).split("/", 1)[1])
            if arg is not None:
                out.setdefault(r["model"], []).append((arg, r))
    return out


def chart_micro_readiness(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    series = _micro_rows(data, "wait")
    if not series:
        return _no_data(ax, "experiment 'micro' (build/bin/micro)")
    for m in model_order(series):
        pts = sorted(series[m], key=lambda p: p[0])
        ax.errorbar([p[0] for p in pts], [p[1]["median"] for p in pts], yerr=_yerr([p[1] for p in pts]),
                    label=m, color=color(m), marker=MARKERS.get(m, "o"), capsize=3, lw=1.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("watched fds, one of them ready (log scale)")
    ax.set_ylabel("time per wait incl. finding the ready fd (ns, log scale)")
    ax.grid(True, which="both", alpha=0.3)
    _legend(ax)


def chart_micro_costs(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    rows = [r for r in data.table if r["experiment"] == "micro" and r["median"]
            and not str(r["param"]).startswith("wait/")]
    if not rows:
        return _no_data(ax, "experiment 'micro' (build/bin/micro)")
    rows = sorted(rows, key=lambda r: -r["median"])
    ys = range(len(rows))
    palette = {"spawn": "#E69F00", "parse": "#0072B2", "histogram": "#009E73"}
    ax.barh(list(ys), [r["median"] for r in rows], xerr=_yerr(rows), capsize=3,
            color=[palette.get(str(r["param"]).split("/")[0], "#999999") for r in rows],
            edgecolor="black", lw=0.5)
    for y, r in zip(ys, rows):
        ax.annotate(_fmt_ns(r["median"]), (r["median"], y), va="center", fontsize=8,
                    xytext=(4, 0), textcoords="offset points")
    ax.set_yticks(list(ys), [f"{str(r['param']).split('/')[0]}/{r['model']}" for r in rows])
    ax.set_xscale("log")
    ax.set_xlabel("time per operation (ns, log scale)")
    ax.grid(True, axis="x", which="both", alpha=0.3)


def _fmt_ns(ns: float) -> str:
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} us"
    return f"{ns:.0f} ns"


@dataclass
class Chart:
    name: str
    title: str
    experiments: tuple[str, ...]
    draw: Callable
    size: tuple[float, float] = (8.0, 5.0)


CHARTS = [
    Chart("scale_throughput", "Throughput vs keep-alive connections", ("scale",), chart_scale_throughput),
    Chart("scale_p99", "p99 latency vs keep-alive connections", ("scale",), chart_scale_p99),
    Chart("idle_memory", "Memory per idle connection", ("idle",), chart_idle_memory, (11.0, 5.0)),
    Chart("latency_knee", "Coordinated-omission-corrected p99 vs offered load", ("latency",),
          chart_latency_knee),
    Chart("latency_distribution", f"Latency distribution at {LATENCY_CONNS} keep-alive connections",
          ("scale",), chart_latency_distribution),
    Chart("blocking", "Fast requests' p99 without and with 1 % blocking /sleep/1000 requests",
          ("blocking",), chart_blocking),
    Chart("cpu_per_request", "Server CPU and context switches per request", ("scale", "churn", "cpu"),
          chart_cpu_per_request, (11.0, 5.0)),
    Chart("churn", "Connection churn: a new connection per request", ("churn",), chart_churn),
    Chart("cpu_bound", "CPU-bound handler: /cpu/100 (100 us of CPU per request)", ("cpu",),
          chart_cpu_bound, (11.0, 5.0)),
    Chart("payload", "Payload throughput vs response size", ("payload",), chart_payload),
    Chart("slowloris", "Serving 10 normal clients beside 500 slowloris clients", ("slowloris", "scale"),
          chart_slowloris, (11.0, 5.0)),
    Chart("micro_readiness", "One readiness wait with 1 ready fd among N", ("micro",), chart_micro_readiness),
    Chart("micro_costs", "Mechanism costs: process/thread spawn, parsing, histogram", ("micro",),
          chart_micro_costs),
]


def render(run: Path, only: list[str] | None = None) -> list[Path]:
    run = Path(run)
    data = load(run)
    out_dir = run / store.CHARTS
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for c in CHARTS:
        if only and c.name not in only:
            continue
        fig = plt.figure(figsize=c.size, dpi=110)
        try:
            c.draw(data, fig)
            fig.suptitle(c.title, fontsize=12)
            _subtitle(fig, data)
            fig.tight_layout(rect=(0, 0.03, 1, 0.97))
            for ext in ("png", "svg"):
                path = out_dir / f"{c.name}.{ext}"
                tmp = out_dir / f".{c.name}.tmp.{ext}"
                fig.savefig(tmp, format=ext)
                tmp.replace(path)   # atomic: a reader never sees half a chart
                written.append(path)
        finally:
            plt.close(fig)
    return written


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    run = Path(argv[0])
    if not (run / store.RUNS).exists() and not (run / store.MICRO).exists():
        print(f"plot.py: {run} holds no runs.jsonl or micro.json", file=sys.stderr)
        return 2
    written = render(run)
    print(f"{len(written)} files written to {run / store.CHARTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
