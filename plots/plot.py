#!/usr/bin/python3
"""Charts of one results folder: `make plots RUN=results/<folder>`.

    /usr/bin/python3 plots/plot.py RUN_DIR

Writes RUN_DIR/charts/<name>.png and .svg for every chart in CHARTS. Every chart is titled,
its axes carry units, each model keeps one colour in every chart, and error bars show the
range (min-max) over repetitions around the median. A chart whose experiment is missing from
the run is still written, saying "no data" and which experiment would fill it.
"""
from __future__ import annotations

import io
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator  # noqa: E402
from matplotlib.transforms import blended_transform_factory  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from harness import readings, registry, stats, store, summary  # noqa: E402
from harness.plan import LATENCY_CONNS, MODELS  # noqa: E402

# --- models, families, colours ---------------------------------------------------------------
# One colour per model in every chart. Within a family (the facets) the colours are distinct;
# the card's seven keep the colour-blind-friendly Okabe-Ito colours of earlier runs. Reference
# rows share one style: grey, dashed (shades only tell them apart beside their labels).
MODEL_COLORS = {
    # card
    "fork": "#E69F00", "threads": "#56B4E9", "select": "#009E73", "poll": "#C9B400",
    "epoll": "#0072B2", "asio": "#D55E00", "libevent": "#CC79A7",
    # lecture
    "coro": "#7B3294", "asio-coro": "#E7298A", "fibers": "#66A61E", "libuv": "#A6761D",
    # python
    "py-epoll": "#1F78B4", "py-threads": "#33A02C", "py-asyncio": "#E31A1C", "py-uvloop": "#FF7F00",
    "py-gevent": "#6A3D9A", "py-twisted": "#B15928", "py-tornado": "#01665E",
    # production
    "threadpool": "#8C510A", "offload": "#C51B7D", "prefork": "#4D9221", "reuseport": "#2166AC",
    "uring": "#B2182B",
    # reference (and the wrk client of loadgen-vs-wrk)
    "nginx": "#3A3A3A", "lighttpd": "#6A6A6A", "apache-event": "#8E8E8E", "apache-prefork": "#ADADAD",
    "wrk": "#999999",
}
_EXTRA = ["#882255", "#44AA99", "#117733", "#332288", "#AA4499", "#DDCC77"]
REFERENCE_STYLE = {"ls": (0, (5, 2)), "lw": 1.4}
FAMILIES = list(registry.GROUPS)
FAMILY_TITLES = {
    "card": "card: the design card's seven", "lecture": "lecture: C++ framework styles",
    "python": "python: the Python frameworks", "production": "production: what real servers do",
    "reference": "reference: industrial servers", "other": "other",
}
BASELINE = "epoll"   # drawn faintly in every other family's facet, for scale

# What limited a point (docs/architecture.md §5 flags) -> marker; "not data" points are hollow at the axis.
LIMIT_MARKERS = {"server-bound": "o", "client-bound": "^", "latency-bound": "s", "mixed": "D",
                 None: "."}
LIMIT_LABELS = {"server-bound": "server-bound", "client-bound": "client-bound",
                "latency-bound": "latency-bound", "mixed": "repetitions differ",
                None: "limit not recorded (older run)"}
NOT_DATA_MARKER = "o"


def color(model: str) -> str:
    if model in MODEL_COLORS:
        return MODEL_COLORS[model]
    return _EXTRA[sum(map(ord, model)) % len(_EXTRA)]


def family(model: str) -> str:
    m = registry.BY_NAME.get(model)
    return m.group if m else "other"


def is_reference(model: str) -> bool:
    m = registry.BY_NAME.get(model)
    return bool(m and m.is_reference)


def model_order(models) -> list[str]:
    known = [m for m in MODELS if m in models]
    return known + sorted(m for m in models if m not in MODELS)


def families_of(models) -> list[tuple[str, list[str]]]:
    """[(family, its models in registry order)] for the families that have any of models."""
    ordered = model_order(models)
    out = []
    for fam in FAMILIES + ["other"]:
        ms = [m for m in ordered if family(m) == fam]
        if ms:
            out.append((fam, ms))
    return out


def line_style(model: str) -> dict:
    st = {"color": color(model), "lw": 1.6, "ls": "-"}
    if is_reference(model):
        st.update(REFERENCE_STYLE)
    return st


@dataclass
class Data:
    run: Path
    runs: list[dict]
    micro: dict | None
    table: list[dict]
    meta: dict
    limits: dict = field(default_factory=dict)

    def rows(self, experiment: str, metric: str, param=None) -> list[dict]:
        return [r for r in self.table if r["experiment"] == experiment and r["metric"] == metric
                and (param is None or str(r["param"]) == str(param)) and r["median"] is not None]

    def models(self, experiment: str) -> list[str]:
        return model_order({r["model"] for r in self.table if r["experiment"] == experiment
                            and r["median"] is not None})

    def row(self, experiment: str, model: str, param, metric: str) -> dict | None:
        """The summary row, or one computed from runs.jsonl when the summary does not carry
        the metric (e.g. syscall counts in a summary written before they existed)."""
        r = summary.lookup(self.table, experiment, model, param, metric)
        if r is not None:
            return r
        recs = [x for x in summary.ok_records(self.runs) if x["experiment"] == experiment
                and x["model"] == model and readings._pkey(x["param"]) == str(param)]
        vals = summary.metric_values(recs, metric)
        if not vals:
            return None
        st = stats.summarize(vals)
        flags = sorted({f for x in recs for f in readings.flag_list(x.get("flags"))})
        return {"experiment": experiment, "model": model, "param": param, "metric": metric,
                "status": "ok", "flags": ";".join(flags), "note": "", **st}

    def metric_names(self, experiment: str, prefix: str) -> set[str]:
        names = {r["metric"] for r in self.table if r["experiment"] == experiment
                 and str(r["metric"]).startswith(prefix)}
        for x in summary.ok_records(self.runs):
            if x["experiment"] == experiment:
                names |= {k for k in (x.get("metrics") or {}) if k.startswith(prefix)}
        return names

    def limit(self, experiment: str, model: str, param) -> str | None:
        key = (experiment, model, readings._pkey(param))
        if key in self.limits:
            return self.limits[key]
        r = summary.lookup(self.table, experiment, model, param, "rps")
        return readings.limit_from_flags(r["flags"]) if r else None


def load(run: Path) -> Data:
    runs = store.load_runs(run / store.RUNS)
    micro = store.read_json(run / store.MICRO)
    return Data(run, runs, micro, summary.rows(runs, micro), store.read_json(run / store.META, {}) or {},
                readings.point_limits(runs))


def _num(p) -> float | None:
    try:
        return float(p)
    except (TypeError, ValueError):
        return None


def _yerr(rows: list[dict], scale: float = 1.0):
    lo = [max(0.0, (r["median"] - r["min"]) * scale) if r.get("min") is not None else 0.0 for r in rows]
    hi = [max(0.0, (r["max"] - r["median"]) * scale) if r.get("max") is not None else 0.0 for r in rows]
    return [lo, hi]


def _series(data: Data, experiment: str, metric: str, model: str, scale: float = 1.0):
    rows = sorted((r for r in data.rows(experiment, metric) if r["model"] == model
                   and _num(r["param"]) is not None), key=lambda r: _num(r["param"]))
    xs = [_num(r["param"]) for r in rows]
    ys = [r["median"] * scale for r in rows]
    return xs, ys, _yerr(rows, scale), rows


def _points(data: Data, experiment: str, metric: str, model: str):
    """(data rows, not-data rows) of a model's numeric parameters, sorted by parameter. A row
    is not data when readings.not_data_reason says so (e.g. not offered on schedule); a
    parameter whose every repetition failed or was skipped counts as not data too."""
    good, bad = [], []
    params = {r["param"] for r in data.table if r["experiment"] == experiment and r["model"] == model
              and _num(r["param"]) is not None and (r["metric"] == metric or r["status"] in ("skipped", "failed"))}
    for p in sorted(params, key=_num):
        r = summary.lookup(data.table, experiment, model, p, metric)
        if r is None:
            r = next((x for x in data.table if x["experiment"] == experiment and x["model"] == model
                      and str(x["param"]) == str(p) and x["status"] in ("skipped", "failed")), None)
        why = readings.not_data_reason(r, experiment)
        (bad if why else good).append((r, why))
    return [r for r, _ in good], bad


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
    server = s.get("server_cpus", s.get("server_cpu", "?"))
    client = s.get("client_cpus", s.get("client_cpu", "?"))
    fig.text(0.01, 0.005, f"{data.run.name} | {cpu} | server CPU {server}, "
             f"loadgen CPU {client} | median of {reps} rep(s), bars: min-max",
             fontsize=7, color="#666666", ha="left", va="bottom")


def _legend(ax, **kw) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, frameon=False, **kw)


def _fmt_count(x, _pos=None) -> str:
    if x >= 1e6:
        return f"{x / 1e6:g}M"
    if x >= 1e3:
        return f"{x / 1e3:g}k"
    return f"{x:g}"


def _fmt_plain(v, _pos=None) -> str:
    if v >= 1000:
        return _fmt_count(v)
    return f"{v:g}"


def log_ticks(ax, axis: str, lo: float, hi: float) -> list[float]:
    """Readable labelled ticks on a log axis between lo and hi (defect 11: one tick label):
    1-2-5 steps, or finer steps when the range spans less than a decade; at least three."""
    lo, hi = max(lo, 1e-12), max(hi, lo * 1.0001)
    ticks: list[float] = []
    for steps in ((1, 2, 5), (1, 1.5, 2, 3, 5, 7), (1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9)):
        ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1)
                 for m in steps if lo <= m * 10.0 ** e <= hi]
        if len(ticks) >= 4:
            break
    if len(ticks) < 3:
        ticks = sorted({lo, math.sqrt(lo * hi), hi})
    a = ax.xaxis if axis == "x" else ax.yaxis
    a.set_major_locator(FixedLocator(ticks))
    a.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:.3g}" if v < 1000 else _fmt_count(v)))
    a.set_minor_formatter(FuncFormatter(lambda v, _p: ""))
    return ticks


def limit_legend_handles(include_not_data: bool = True, not_data_label: str | None = None) -> list:
    hs = [Line2D([], [], ls="", marker=LIMIT_MARKERS[k], color="#444444", markerfacecolor="#444444",
                 markersize=6 if k else 8, label=LIMIT_LABELS[k])
          for k in ("server-bound", "client-bound", "latency-bound", "mixed", None)]
    if include_not_data:
        hs.append(Line2D([], [], ls="", marker=NOT_DATA_MARKER, color="#444444", markerfacecolor="none",
                         markersize=7, label=not_data_label or
                         "hollow, on the axis: not data (not measurable / not offered on schedule)"))
    return hs


def _limit_legend(fig_or_ax, loc="lower center", ncol=3, **kw) -> None:
    fig_or_ax.legend(handles=limit_legend_handles(**kw), loc=loc, ncol=ncol, fontsize=7,
                     frameon=False, title="marker: what limited the point", title_fontsize=7)


def _mark_limits(ax, data: Data, experiment: str, model: str, rows: list[dict], xs, ys) -> None:
    """Each point's marker says what limited it (filled, in the model's colour)."""
    for r, x, y in zip(rows, xs, ys):
        lim = data.limit(experiment, model, r["param"])
        ax.plot([x], [y], ls="", marker=LIMIT_MARKERS.get(lim, "."), color=color(model),
                markeredgecolor="black", markeredgewidth=0.4, markersize=5 if lim else 7, zorder=4)


def _mark_not_data(ax, model: str, xs: list[float]) -> None:
    """Points that are not data: hollow markers on the x axis (not at any value)."""
    if not xs:
        return
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(xs, [0.02] * len(xs), ls="", marker=NOT_DATA_MARKER, markerfacecolor="none",
            markeredgecolor=color(model), markersize=7, transform=tr, clip_on=False, zorder=5)


def draw_lines(ax, data: Data, experiment: str, metric: str, models: list[str], scale: float = 1.0,
               x_of=None, baseline: str | None = None) -> bool:
    """One line per model (its colour), markers by limit, hollow markers for not-data points;
    returns whether anything was drawn. x_of(row) maps a row to x (default: its parameter)."""
    x_of = x_of or (lambda r: _num(r["param"]))
    drawn = False
    if baseline and baseline not in models:
        good, _ = _points(data, experiment, metric, baseline)
        pts = [(x_of(r), r["median"] * scale) for r in good if x_of(r) is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color(baseline), lw=2.5,
                    alpha=0.25, label=f"{baseline} (card, for scale)", zorder=1)
    for m in models:
        good, bad = _points(data, experiment, metric, m)
        good = [r for r in good if x_of(r) is not None]
        if good:
            drawn = True
            xs = [x_of(r) for r in good]
            ys = [r["median"] * scale for r in good]
            ax.errorbar(xs, ys, yerr=_yerr(good, scale), label=m, capsize=2, elinewidth=0.8,
                        zorder=3, **line_style(m))
            _mark_limits(ax, data, experiment, m, good, xs, ys)
        bad_x = [x for r, _why in bad if r and (x := x_of(r)) is not None]
        if bad_x:
            drawn = True
            _mark_not_data(ax, m, bad_x)
            if not good:
                ax.plot([], [], label=f"{m} (no data: hollow on the axis)", **line_style(m))
    return drawn


def facets(fig, n: int, legend_cell: bool = True, sharey: bool = True):
    """n facet axes in a grid of up to three columns, plus (optionally) one cell for legends."""
    cells = n + (1 if legend_cell else 0)
    cols = min(3, cells)
    rows = math.ceil(cells / cols)
    axes = []
    first = None
    for i in range(n):
        ax = fig.add_subplot(rows, cols, i + 1, sharey=first if sharey else None)
        first = first or ax
        axes.append(ax)
    legend_ax = fig.add_subplot(rows, cols, n + 1) if legend_cell else None
    if legend_ax is not None:
        legend_ax.axis("off")
    return axes, legend_ax


def faceted_lines(data: Data, fig, experiment: str, metric: str, *, scale: float = 1.0,
                  xlabel: str, ylabel: str, xlog: bool = True, ylog: bool = False,
                  x_of=None, xfmt=None, no_data: str | None = None, decorate=None) -> None:
    """The line chart of one experiment, faceted by family (card / lecture / python /
    production / reference), epoll drawn faintly in the other facets for scale."""
    models = model_order({r["model"] for r in data.table if r["experiment"] == experiment})
    fams = [(f, ms) for f, ms in families_of(models)]
    if not fams:
        return _no_data(fig.add_subplot(111), no_data or f"experiment '{experiment}'")
    axes, legend_ax = facets(fig, len(fams))
    any_drawn = False
    for ax, (fam, ms) in zip(axes, fams):
        drawn = draw_lines(ax, data, experiment, metric, ms, scale, x_of,
                           baseline=BASELINE if fam != "card" else None)
        any_drawn |= drawn
        ax.set_title(FAMILY_TITLES.get(fam, fam), fontsize=9)
        if xlog:
            ax.set_xscale("log")
        if ylog:
            ax.set_yscale("log")
        if xfmt:
            ax.xaxis.set_major_formatter(FuncFormatter(xfmt))
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel(ylabel, fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        if decorate:
            decorate(ax)
        _legend(ax, loc="best")
    if not any_drawn:
        for ax in axes:
            ax.remove()
        if legend_ax is not None:
            legend_ax.remove()
        return _no_data(fig.add_subplot(111), no_data or f"experiment '{experiment}'")
    if not ylog:
        axes[0].set_ylim(bottom=0)
    else:
        log_ticks(axes[0], "y", *axes[0].get_ylim())
    if legend_ax is not None:
        _limit_legend(legend_ax, loc="center", ncol=1)


def family_positions(models: list[str], gap: float = 0.8) -> tuple[list[float], list[tuple[str, float, float]]]:
    """x positions with a gap between families, and (family, first x, last x) spans."""
    xs, spans = [], []
    x = 0.0
    for fam, ms in families_of(models):
        first = x
        for _ in ms:
            xs.append(x)
            x += 1.0
        spans.append((fam, first, x - 1.0))
        x += gap
    return xs, spans


def _family_axis(ax, models: list[str], xs: list[float], spans, rotation: int = 45) -> None:
    ax.set_xticks(xs, models, rotation=rotation, ha="right" if rotation else "center", fontsize=7)
    for lab, m in zip(ax.get_xticklabels(), models):
        lab.set_color(color(m) if not is_reference(m) else "#555555")
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    for fam, a, b in spans:
        ax.annotate(fam, ((a + b) / 2, 1.0), xycoords=tr, ha="center", va="bottom", fontsize=7,
                    color="#555555", xytext=(0, 2), textcoords="offset points")
        if a > 0:
            ax.axvline(a - 0.9, color="#BBBBBB", lw=0.6, ls=":")


def family_bars(ax, data: Data, experiment: str, metric: str, param=None, *, scale: float = 1.0,
                fmt: str = "{:,.0f}", ylabel: str = "", log: bool = False, row_of=None,
                models: list[str] | None = None) -> bool:
    """One bar per model, grouped by family; marker on top = what limited it; a figure that
    is not data (failed its checks) is a hollow marker on the axis with its reason's gist."""
    if row_of is None:
        def row_of(m):
            if param is None:
                rs = [r for r in data.table if r["experiment"] == experiment and r["model"] == m
                      and r["metric"] == metric]
                r = rs[0] if rs else None
            else:
                r = summary.lookup(data.table, experiment, m, param, metric)
            if r is None:   # every repetition skipped or failed: say so where its bar would be
                r = next((x for x in data.table if x["experiment"] == experiment and x["model"] == m
                          and x["status"] in ("skipped", "failed")), None)
            return r, readings.not_data_reason(r, experiment) if r else None
    if models is None:
        models = model_order({r["model"] for r in data.table if r["experiment"] == experiment})
    entries = [(m, *row_of(m)) for m in models]
    entries = [(m, r, why) for m, r, why in entries if r is not None or why]
    if not entries:
        return False
    models = [m for m, _, _ in entries]
    xs, spans = family_positions(models)
    tr = blended_transform_factory(ax.transData, ax.transAxes)
    values: list[float] = []
    for x, (m, r, why) in zip(xs, entries):
        if why or r is None or r.get("median") is None or (log and r["median"] <= 0):
            ax.plot([x], [0.02], transform=tr, ls="", marker=NOT_DATA_MARKER, markerfacecolor="none",
                    markeredgecolor=color(m), markersize=8, clip_on=False, zorder=5)
            gist = (why or "no value").split(":")[0].split("(")[0].strip()
            ax.annotate(gist, (x, 0.05), xycoords=tr, rotation=90, ha="center", va="bottom",
                        fontsize=6, color="#777777")
            continue
        v = r["median"] * scale
        st = {"color": color(m), "edgecolor": "black", "lw": 0.5}
        if is_reference(m):
            st.update(hatch="//", edgecolor="#555555")
        ax.bar(x, v, 0.8, yerr=_yerr([r], scale), capsize=2, error_kw={"elinewidth": 0.7}, **st)
        lim = data.limit(experiment, m, r["param"]) if r.get("param") not in (None, "slope", "impact") else "n/a"
        if lim != "n/a":
            ax.plot([x], [v], ls="", marker=LIMIT_MARKERS.get(lim, "."), color="white",
                    markeredgecolor="black", markeredgewidth=0.6, markersize=5, zorder=4)
        ax.annotate(fmt.format(v), (x, v), ha="center", va="bottom", fontsize=6, rotation=90,
                    xytext=(0, 6), textcoords="offset points")
        values.append(v)
        values.append((r.get("max") or r["median"]) * scale)
    _family_axis(ax, models, xs, spans)
    if log:
        ax.set_yscale("log")
        pos = [v for v in values if v > 0]
        if pos:
            lo, hi = min(pos) / 2, max(pos) * 3
            ax.set_ylim(lo, hi)
            log_ticks(ax, "y", lo, hi)
    else:
        ax.set_ylim(0, max(values + [0.0]) * 1.18 or 1)
    ax.set_ylabel(ylabel, fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    return True


# --- the charts ----------------------------------------------------------------------------

def chart_scale_throughput(data: Data, fig) -> None:
    faceted_lines(data, fig, "scale", "rps", xlabel="keep-alive connections (log scale)",
                  ylabel="throughput (requests/s)", xfmt=_fmt_count,
                  decorate=lambda ax: ax.yaxis.set_major_formatter(FuncFormatter(_fmt_count)))


def chart_scale_p99(data: Data, fig) -> None:
    faceted_lines(data, fig, "scale", "p99_us", scale=1e-3, xlabel="keep-alive connections (log scale)",
                  ylabel="p99 latency (ms, log scale)", ylog=True, xfmt=_fmt_count)


FD_SETSIZE = 1024


def _fd_setsize_wall(ax) -> None:
    ax.axvline(FD_SETSIZE, color="#009E73", lw=1.0, ls="--", alpha=0.8)
    ax.annotate("select's FD_SETSIZE (1024)", (FD_SETSIZE, 0.97),
                xycoords=blended_transform_factory(ax.transData, ax.transAxes), rotation=90,
                ha="right", va="top", fontsize=6, color="#009E73")


def chart_idle_active(data: Data, fig) -> None:
    """The C10K picture (issue 7 item 1): the active clients' throughput and p99 while N idle
    connections are held, per model, one column per family."""
    models = model_order({r["model"] for r in data.table if r["experiment"] == "idle"})
    fams = families_of(models)
    if not fams or not data.rows("idle", "rps"):
        return _no_data(fig.add_subplot(111), "experiment 'idle'")
    n = len(fams)
    top_first = bot_first = None
    for i, (fam, ms) in enumerate(fams):
        ax1 = fig.add_subplot(2, n, i + 1, sharey=top_first)
        ax2 = fig.add_subplot(2, n, n + i + 1, sharey=bot_first, sharex=ax1)
        top_first, bot_first = top_first or ax1, bot_first or ax2
        base = BASELINE if fam != "card" else None
        x_of = lambda r: _num(r["param"])  # noqa: E731
        draw_lines(ax1, data, "idle", "rps", ms, 1.0, x_of, baseline=base)
        draw_lines(ax2, data, "idle", "p99_us", ms, 1e-3, x_of, baseline=base)
        ax1.set_title(FAMILY_TITLES.get(fam, fam), fontsize=9)
        for ax in (ax1, ax2):
            # Logarithmic from 100 idle connections up (0 has no place on a log axis, and a
            # 0-to-1 stretch would look like measured points): linear below it.
            ax.set_xscale("symlog", linthresh=100, linscale=0.4)
            ax.set_xlim(-5, 13000)
            ax.xaxis.set_major_locator(FixedLocator([0, 100, 1000, 10000]))
            ax.xaxis.set_minor_locator(FixedLocator([200, 300, 500, 2000, 3000, 5000]))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _p: _fmt_count(v)))
            ax.tick_params(labelsize=7)
            ax.grid(True, which="both", alpha=0.3)
            _fd_setsize_wall(ax)
        ax2.set_yscale("log")
        ax1.yaxis.set_major_formatter(FuncFormatter(_fmt_count))
        ax2.set_xlabel("idle connections held (log scale above 100)", fontsize=7)
        if i == 0:
            ax1.set_ylabel("active clients' throughput (req/s)", fontsize=8)
            ax2.set_ylabel("active clients' p99 (ms, log scale)", fontsize=8)
        _legend(ax1, loc="lower left")
    top_first.set_ylim(bottom=0)
    log_ticks(bot_first, "y", *bot_first.get_ylim())
    fig.legend(handles=limit_legend_handles(), loc="lower center", ncol=6, fontsize=7, frameon=False,
               title="marker: what limited the point", title_fontsize=7, bbox_to_anchor=(0.5, 0.02))


def chart_idle_memory(data: Data, fig) -> None:
    """Memory per idle connection (docs/architecture.md §5: slope of Pss_Anon + Pss_Shmem over the idle
    counts), one bar per model by family, log scale (0.2 KiB to 200+ KiB); a slope that
    failed its checks (r², fewer than three counts, negative) is shown as not measurable."""
    ax = fig.add_subplot(111)
    models = model_order({r["model"] for r in data.table if r["experiment"] == "idle"})

    def row_of(m):
        r, why = readings.slope_check(data.table, data.runs, m)
        return (r, why) if (r is not None or why != "not measured") else (None, None)

    if not family_bars(ax, data, "idle", "pss_slope_kib_per_conn", "slope", fmt="{:.2g}",
                       ylabel="server memory per idle connection (KiB/conn, log scale)", log=True,
                       row_of=row_of, models=models):
        return _no_data(ax, "experiment 'idle' with 3+ idle counts")
    vals = [r["median"] for r in data.rows("idle", "pss_slope_kib_per_conn", "slope") if r["median"] > 0]
    if vals:
        log_ticks(ax, "y", min(vals) / 2, max(r["max"] or r["median"] for r in
                                              data.rows("idle", "pss_slope_kib_per_conn", "slope")) * 3)
        ax.set_ylim(min(vals) / 2, max(vals) * 6)
    ax.legend(handles=[Line2D([], [], ls="", marker=NOT_DATA_MARKER, markerfacecolor="none",
                              markeredgecolor="#444444", markersize=8,
                              label="hollow, on the axis: not measurable (r² < 0.9, < 3 idle counts, "
                                    "or negative): no number")],
              fontsize=7, frameon=False, loc="upper left")


def chart_latency_knee(data: Data, fig) -> None:
    """CO-corrected p99 against offered load. Only loads the generator offered on schedule are
    data; the others are hollow markers on the axis ("beyond what one generator core can offer
    here"), drawn at the rate that was asked for."""
    offered: dict[tuple[str, str], float] = {}
    for r in data.table:
        if r["experiment"] == "latency" and r["metric"] == "offered_rps" and r["median"]:
            offered[(r["model"], str(r["param"]))] = r["median"]
    if not offered:
        # An older run without offered_rps rows: nothing to put on the x axis.
        return _no_data(fig.add_subplot(111), "experiment 'latency'")

    # A load whose every repetition was beyond the generator may have no offered_rps row: its
    # x is estimated from the model's other loads (offered rate per % of peak).
    per_pct: dict[str, float] = {}
    for (m, p), v in offered.items():
        if _num(p):
            per_pct.setdefault(m, v / _num(p))

    def x_of(r):
        x = offered.get((r["model"], str(r["param"])))
        if x is None and r.get("median") is None and r["model"] in per_pct and _num(r["param"]):
            x = per_pct[r["model"]] * _num(r["param"])
        return x
    faceted_lines(data, fig, "latency", "p99_us", scale=1e-3, x_of=x_of, xlog=False, ylog=True,
                  xlabel="offered load (requests/s, open loop)",
                  ylabel="p99 from intended send time (ms, log scale)", xfmt=_fmt_count,
                  no_data="experiment 'latency'")
    fig.text(0.5, 0.03, "hollow markers on the x axis: loads not offered on schedule (beyond what one "
             "generator core can offer here) - not data", ha="center", fontsize=7, color="#555555")


def _nines_axis(ax, max_nines: int) -> None:
    ticks = list(range(0, max_nines + 1))
    labels = ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"][: max_nines + 1]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(ticks, labels)


def chart_latency_distribution(data: Data, fig) -> None:
    by_model: dict[str, list] = {}
    for r in summary.ok_records(data.runs):
        if r["experiment"] == "scale" and str(r["param"]) == str(LATENCY_CONNS):
            h = ((r.get("loadgen") or {}).get("histogram") or {}).get("buckets")
            if h:
                by_model.setdefault(r["model"], []).append(h)
    fams = families_of(by_model)
    if not fams:
        return _no_data(fig.add_subplot(111), f"experiment 'scale' at {LATENCY_CONNS} connections")
    axes, legend_ax = facets(fig, len(fams), legend_cell=False)
    for ax, (fam, ms) in zip(axes, fams):
        max_nines = 1
        for m in ms:
            curve = stats.percentile_curve(stats.merge_buckets(by_model[m]))
            pts = [(-math.log10(1 - p / 100), v / 1000) for p, v in curve if p < 100]
            if not pts:
                continue
            max_nines = max(max_nines, math.ceil(pts[-1][0]))
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=f"{m} ({len(by_model[m])} rep)",
                    **line_style(m))
        _nines_axis(ax, min(max_nines, 6))
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _p: f"{v:g}"))
        ax.set_title(FAMILY_TITLES.get(fam, fam), fontsize=9)
        ax.set_xlabel("percentile (HdrHistogram axis)", fontsize=7)
        ax.set_ylabel("latency (ms, log scale)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.grid(True, which="both", alpha=0.3)
        _legend(ax, loc="upper left")


def blocking_order(data: Data) -> list[tuple[str, dict | None, dict | None, bool]]:
    """[(model, row without, row with, hurt)], the hurt models first, each part by the ratio of
    the medians (largest first): hurt = p99 at least doubled in every repetition."""
    base, withs = {}, {}
    for r in data.table:
        if r["experiment"] != "blocking" or _num(r["param"]) is None or r["metric"] not in ("p99_us", ""):
            continue
        d = base if _num(r["param"]) == 0 else withs
        if r["model"] not in d or r["metric"] == "p99_us":   # a figure beats a status row
            d[r["model"]] = r
    out = []
    for m in model_order(set(base) | set(withs)):
        b, w = base.get(m), withs.get(m)
        ok = b and w and b.get("median") and w.get("median") is not None
        ratio = (w["median"] / b["median"]) if ok else 0.0
        out.append((m, b, w, readings.blocking_verdict(data.table, data.runs, m) == "hurt", ratio))
    out.sort(key=lambda t: (not t[3], -t[4]))
    return [t[:4] for t in out]


def chart_blocking(data: Data, fig) -> None:
    """Every model, ordered so the remedy is visible: the models whose fast p99 at least doubled
    in every repetition (pure event loops) on top, those that held (a thread or process per
    connection, a pool, offload) below; horizontal bars on a log axis with labelled ticks."""
    ax = fig.add_subplot(111)
    order = blocking_order(data)
    if not order:
        return _no_data(ax, "experiment 'blocking'")
    h = 0.38
    values = []
    split = None
    for i, (m, b, w, hurt) in enumerate(order):
        y = len(order) - 1 - i
        for off, r, alpha, hatch, lab in ((h / 2, b, 0.5, "//", "alone (no slow requests)"),
                                          (-h / 2, w, 1.0, "", "beside 1 % /sleep/1000 requests")):
            if r is None:
                continue
            why = readings.not_data_reason(r, "blocking")
            if why:
                ax.plot([0.0], [y + off], ls="", marker=NOT_DATA_MARKER, markerfacecolor="none",
                        markeredgecolor=color(m), markersize=7, clip_on=False,
                        transform=blended_transform_factory(ax.transAxes, ax.transData))
                gist = "not offered on schedule" if "schedule" in why else why.split(":")[0][:40]
                ax.annotate(gist, (0.01, y + off), fontsize=6, color="#777777",
                            xycoords=blended_transform_factory(ax.transAxes, ax.transData), va="center",
                            xytext=(8, 0), textcoords="offset points")
                continue
            v = r["median"] / 1000
            values += [v, (r["min"] or r["median"]) / 1000, (r["max"] or r["median"]) / 1000]
            ax.barh(y + off, v, h, xerr=[[max(0.0, v - (r["min"] or r["median"]) / 1000)],
                                         [max(0.0, (r["max"] or r["median"]) / 1000 - v)]],
                    color=color(m), alpha=alpha, hatch=hatch, edgecolor="black", lw=0.4, capsize=2,
                    error_kw={"elinewidth": 0.7}, label=lab if lab not in ax.get_legend_handles_labels()[1] else None)
        if not hurt and split is None and i > 0:
            split = y + 0.5
    ax.set_yticks(range(len(order)), [t[0] for t in reversed(order)], fontsize=7)
    for lab, (m, *_rest) in zip(ax.get_yticklabels(), reversed(order)):
        lab.set_color(color(m) if not is_reference(m) else "#555555")
    ax.set_xscale("log")
    pos = [v for v in values if v > 0]
    lo, hi = (min(pos), max(pos)) if pos else (0.1, 10.0)   # nothing but not-data points: an empty axis
    ax.set_xlim(lo / 1.6, hi * 1.6)
    log_ticks(ax, "x", lo / 1.6, hi * 1.6)
    if split is not None:
        ax.axhline(split, color="black", lw=0.8, ls="--")
        box = {"fc": "white", "ec": "none", "alpha": 0.85, "pad": 1}
        ax.annotate("above: p99 at least doubled in every repetition", (0.995, split + 0.12), ha="right",
                    va="bottom", fontsize=7, bbox=box,
                    xycoords=blended_transform_factory(ax.transAxes, ax.transData))
        ax.annotate("below: held (under 2x in some repetition), or not data", (0.995, split - 0.12), ha="right",
                    va="top", fontsize=7, bbox=box,
                    xycoords=blended_transform_factory(ax.transAxes, ax.transData))
    ax.tick_params(axis="x", labelsize=7)
    ax.set_xlabel("p99 of the fast GET / requests (ms, log scale)", fontsize=8)
    ax.grid(True, axis="x", which="both", alpha=0.3)
    _legend(ax, loc="lower right")


def chart_cpu_per_request(data: Data, fig) -> None:
    workloads = [("scale", LATENCY_CONNS, f"keep-alive, c={LATENCY_CONNS}"),
                 ("churn", None, "new connection per request"),
                 ("cpu", None, "/cpu/100 handler")]
    present = [(e, p, lab) for e, p, lab in workloads if data.rows(e, "cpu_us_per_req", p)]
    if not present:
        return _no_data(fig.add_subplot(111), "experiments 'scale', 'churn', 'cpu'")
    for i, (exp, param, label) in enumerate(present):
        ax = fig.add_subplot(len(present), 1, i + 1)
        pr = param if param is not None else _first_param(data, exp, "cpu_us_per_req")
        family_bars(ax, data, exp, "cpu_us_per_req", pr, fmt="{:.3g}", log=True,
                    ylabel="server CPU per request\n(us, log scale)")
        ax.set_title(label, fontsize=9, loc="left", pad=14)
    fig.legend(handles=limit_legend_handles(False), loc="lower right", ncol=5, fontsize=7, frameon=False,
               title="marker on the bar: what limited the point", title_fontsize=7)


def _first_param(data: Data, experiment: str, metric: str):
    ps = sorted({r["param"] for r in data.rows(experiment, metric)}, key=summary.param_sort_key)
    return ps[0] if ps else None


# Colours of system calls in the stacked chart (by what the call does), the rest by name.
SYSCALL_COLORS = {
    "epoll_wait": "#0072B2", "epoll_pwait": "#0072B2", "epoll_ctl": "#56B4E9", "pselect6": "#009E73",
    "select": "#009E73", "poll": "#C9B400", "ppoll": "#C9B400", "io_uring_enter": "#B2182B",
    "read": "#D55E00", "recvfrom": "#E69F00", "recvmsg": "#E69F00", "readv": "#D55E00",
    "write": "#CC79A7", "sendto": "#882255", "sendmsg": "#AA4499", "writev": "#CC79A7",
    "sendfile": "#44AA99", "accept": "#117733", "accept4": "#117733", "close": "#999999",
    "clone": "#332288", "clone3": "#332288", "futex": "#66A61E", "wait4": "#A6761D",
    "other": "#DDDDDD",
}
SYSCALL_PREFIX = "syscall_"
SYSCALL_TOP = 9


def _syscall_name(metric: str) -> str:
    return metric[len(SYSCALL_PREFIX):-len("_per_req")]


def syscall_stacks(data: Data, experiment: str, param) -> tuple[list[str], dict[str, dict[str, float]]]:
    """(call names to stack, most common first + 'other'; model -> call -> calls per request)."""
    names = {_syscall_name(m) for m in data.metric_names(experiment, SYSCALL_PREFIX)
             if m.endswith("_per_req")}
    per: dict[str, dict[str, float]] = {}
    models = model_order({r["model"] for r in data.table if r["experiment"] == experiment})
    for m in models:
        d = {}
        for n in names:
            r = data.row(experiment, m, param, f"{SYSCALL_PREFIX}{n}_per_req")
            if r and r.get("median") is not None:
                d[n] = r["median"]
        total = data.row(experiment, m, param, "syscalls_per_req")
        if d or (total and total.get("median") is not None):
            if total and total.get("median") is not None and "other" not in d:
                d["other"] = max(0.0, total["median"] - sum(d.values()))
            per[m] = d
    # The calls that matter across the models (summed over them, so that one model's quirk
    # does not push out the recv/send every model makes) get their own colour; the rest is
    # folded into "other", so each model's calls add up to its syscalls_per_req.
    weight = {n: sum(d.get(n, 0.0) for d in per.values()) for n in names if n != "other"}
    top = sorted(weight, key=lambda n: -weight[n])[:SYSCALL_TOP]
    for d in per.values():
        rest = [n for n in d if n not in top and n != "other"]
        d["other"] = d.get("other", 0.0) + sum(d.pop(n) for n in rest)
    return top + ["other"], per


def _syscall_point(data: Data) -> list[tuple[str, object, str]]:
    out = []
    for exp, param, label in (("scale", LATENCY_CONNS, f"keep-alive GET /, {LATENCY_CONNS} connections"),
                              ("churn", None, "a new connection per request")):
        pr = param if param is not None else _first_param(data, exp, "rps")
        if pr is not None and syscall_stacks(data, exp, pr)[1]:
            out.append((exp, pr, label))
    return out


def chart_syscalls(data: Data, fig) -> None:
    """System calls per request, stacked by call name (kernel tracepoints, docs/architecture.md §5), per model
    by family; context switches per request beside. The lecture's mechanism, countable."""
    points = _syscall_point(data)
    if not points:
        return _no_data(fig.add_subplot(111), "syscall counts (perf, as root): syscall_<name>_per_req")
    gs = fig.add_gridspec(len(points), 4)
    for i, (exp, param, label) in enumerate(points):
        ax = fig.add_subplot(gs[i, :3])
        ax_cs = fig.add_subplot(gs[i, 3])
        names, per = syscall_stacks(data, exp, param)
        models = model_order(per)
        xs, spans = family_positions(models)
        bottom = [0.0] * len(models)
        palette = {}
        for k, n in enumerate(names):
            vals = [per[m].get(n, 0.0) for m in models]
            c = SYSCALL_COLORS.get(n) or plt.get_cmap("tab20")(k % 20)
            palette[n] = c
            ax.bar(xs, vals, 0.8, bottom=bottom, color=c, edgecolor="white", lw=0.3, label=n)
            bottom = [b + v for b, v in zip(bottom, vals)]
        for x, m, tot in zip(xs, models, bottom):
            ax.annotate(f"{tot:.3g}", (x, tot), ha="center", va="bottom", fontsize=6, xytext=(0, 2),
                        textcoords="offset points")
        _family_axis(ax, models, xs, spans)
        ax.set_ylabel("system calls per request", fontsize=8)
        ax.set_title(label, fontsize=9, loc="left", pad=14)
        ax.set_ylim(0, max(bottom + [0.1]) * 1.45)   # headroom for the legend
        ax.grid(True, axis="y", alpha=0.3)
        ax.legend(fontsize=6, frameon=False, ncol=2, loc="upper left", title="call (kernel name)",
                  title_fontsize=6)
        # ctxsw per request beside, same models
        cs = [(m, data.row(exp, m, param, "ctxsw_per_req")) for m in models]
        cs = [(m, r) for m, r in cs if r and r.get("median") is not None]
        if cs:
            ys = range(len(cs))
            ax_cs.barh(list(ys), [r["median"] for _, r in cs], xerr=_yerr([r for _, r in cs]),
                       color=[color(m) for m, _ in cs], edgecolor="black", lw=0.4, capsize=2)
            ax_cs.set_yticks(list(ys), [m for m, _ in cs], fontsize=6)
            ax_cs.invert_yaxis()
            ax_cs.set_xlabel("context switches per request", fontsize=7)
            ax_cs.tick_params(axis="x", labelsize=7)
            ax_cs.grid(True, axis="x", alpha=0.3)
        else:
            _no_data(ax_cs, "ctxsw_per_req")


def chart_churn(data: Data, fig) -> None:
    ax = fig.add_subplot(111)
    p = _first_param(data, "churn", "rps")
    if p is None or not family_bars(ax, data, "churn", "rps", p, ylabel="new connections per second (one request each)"):
        return _no_data(ax, "experiment 'churn'")
    ax.yaxis.set_major_formatter(FuncFormatter(_fmt_count))
    _limit_legend(ax, loc="upper right", ncol=2, include_not_data=False)


def chart_cpu_bound(data: Data, fig) -> None:
    p = _first_param(data, "cpu", "rps")
    if p is None:
        return _no_data(fig.add_subplot(111), "experiment 'cpu'")
    ax1 = fig.add_subplot(211)
    ax2 = fig.add_subplot(212)
    family_bars(ax1, data, "cpu", "rps", p, ylabel="throughput (requests/s)")
    ax1.yaxis.set_major_formatter(FuncFormatter(_fmt_count))
    family_bars(ax2, data, "cpu", "p99_us", p, scale=1e-3, fmt="{:.2f}", ylabel="p99 latency (ms)")
    fig.legend(handles=limit_legend_handles(False), loc="lower right", ncol=5, fontsize=7, frameon=False,
               title="marker on the bar: what limited the point", title_fontsize=7)


def _fmt_size(x, _p=None) -> str:
    return f"{x / 1048576:g} MiB" if x >= 1048576 else f"{x / 1024:g} KiB" if x >= 1024 else f"{x:g} B"


def chart_payload(data: Data, fig) -> None:
    def decorate(ax):
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_locator(FixedLocator([16, 256, 4096, 65536, 1048576]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.xaxis.set_major_formatter(FuncFormatter(_fmt_size))
    faceted_lines(data, fig, "payload", "payload_mb_s", xlabel="response body size (log scale)",
                  ylabel="response bodies delivered (MB/s, log scale)", xlog=False, ylog=True,
                  decorate=decorate)


def chart_slowloris(data: Data, fig) -> None:
    p = _first_param(data, "slowloris", "p99_us")
    if p is None:
        return _no_data(fig.add_subplot(111), "experiment 'slowloris'")
    ax1 = fig.add_subplot(211)
    ax2 = fig.add_subplot(212)
    family_bars(ax1, data, "slowloris", "p99_us", p, scale=1e-3, fmt="{:.2f}",
                ylabel="p99 of 10 normal clients\n(ms, log scale)", log=True)
    # The same 10 clients without slow ones (scale c=10), as a black tick on each bar.
    models = model_order({r["model"] for r in data.table if r["experiment"] == "slowloris"})
    xs, _ = family_positions(models)
    first = True
    for x, m in zip(xs, models):
        b = summary.lookup(data.table, "scale", m, 10, "p99_us")
        if b and b["median"]:
            ax1.plot([x - 0.4, x + 0.4], [b["median"] / 1000] * 2, color="black", lw=1.2, ls="--",
                     label="same 10 clients without slow ones (scale c=10)" if first else None)
            first = False
    _legend(ax1, loc="upper right")
    family_bars(ax2, data, "slowloris", "rps", p, ylabel="throughput of the\nnormal clients (req/s)")
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
                    label=m, color=color(m), marker="o", capsize=3, lw=1.6)
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
    bottom: float = 0.03     # room under the axes for a figure-level legend


CHARTS = [
    Chart("scale_throughput", "Throughput vs keep-alive connections, by family", ("scale",),
          chart_scale_throughput, (13.0, 8.0)),
    Chart("scale_p99", "p99 latency vs keep-alive connections, by family", ("scale",), chart_scale_p99,
          (13.0, 8.0)),
    Chart("idle_active", "C10K: the active clients' throughput and p99 while N idle connections are held",
          ("idle",), chart_idle_active, (18.0, 8.5), 0.1),
    Chart("idle_memory", "Memory per idle connection (slope of Pss_Anon + Pss_Shmem)", ("idle",),
          chart_idle_memory, (13.0, 5.5)),
    Chart("latency_knee", "Coordinated-omission-corrected p99 vs offered load (on-schedule points only)",
          ("latency",), chart_latency_knee, (13.0, 8.0), 0.05),
    Chart("latency_distribution", f"Latency distribution at {LATENCY_CONNS} keep-alive connections",
          ("scale",), chart_latency_distribution, (13.0, 8.0)),
    Chart("blocking", "Fast requests' p99 alone and beside 1 % blocking /sleep/1000 requests",
          ("blocking",), chart_blocking, (10.0, 9.0)),
    Chart("cpu_per_request", "Server CPU per request", ("scale", "churn", "cpu"),
          chart_cpu_per_request, (13.0, 10.0), 0.05),
    Chart("syscalls", "System calls per request by call, and context switches per request",
          ("scale", "churn"), chart_syscalls, (16.0, 10.0)),
    Chart("churn", "Connection churn: a new connection per request", ("churn",), chart_churn, (13.0, 5.5)),
    Chart("cpu_bound", "CPU-bound handler: /cpu/100 (100 us of CPU per request)", ("cpu",),
          chart_cpu_bound, (13.0, 8.0), 0.05),
    Chart("payload", "Payload throughput vs response size, by family", ("payload",), chart_payload,
          (13.0, 8.0)),
    Chart("slowloris", "Serving 10 normal clients beside 500 slowloris clients", ("slowloris", "scale"),
          chart_slowloris, (13.0, 8.0)),
    Chart("micro_readiness", "One readiness wait with 1 ready fd among N", ("micro",), chart_micro_readiness),
    Chart("micro_costs", "Mechanism costs: process/thread spawn, parsing, histogram", ("micro",),
          chart_micro_costs),
]


def render(run: Path, only: list[str] | None = None, strict: bool = False) -> list[Path]:
    """Writes every chart (or those in only). A chart whose drawing fails is written as a page
    that says why, and the others are still drawn (strict=True raises instead: the tests)."""
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
            try:
                c.draw(data, fig)
                fig.suptitle(c.title, fontsize=12)
                _subtitle(fig, data)
                fig.tight_layout(rect=(0, c.bottom, 1, 0.97))
                fig.savefig(io.BytesIO(), format="png")   # drawing errors surface here, not half-way
            except Exception as e:  # noqa: BLE001 - one chart's failure must not cost the others
                if strict:
                    raise
                print(f"plot.py: chart {c.name} could not be drawn: {type(e).__name__}: {e}", file=sys.stderr)
                plt.close(fig)
                fig = plt.figure(figsize=c.size, dpi=110)
                fig.text(0.5, 0.5, f"{c.title}\n\nthis chart could not be drawn from this run:\n"
                         f"{type(e).__name__}: {str(e)[:200]}", ha="center", va="center", fontsize=10,
                         color="#993333", wrap=True)
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
