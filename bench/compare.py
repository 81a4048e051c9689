#!/usr/bin/python3
"""Compare two results folders: `make compare A=results/<a> B=results/<b> [BASE=epoll]`.

    /usr/bin/python3 bench/compare.py A B [--base MODEL|all] [--out DIR]

For every experiment, model and parameter measured in both runs, the ratio B/A of the headline
figures (throughput, p99, memory per idle connection, ...) with both runs' median [min-max].
A difference counts ("*") only when it is larger than the spreads: the two runs' min-max ranges
do not overlap; with a single repetition on either side there is no range, so the documented
run-to-run noise of this kind of machine is used instead ("~").

With --base MODEL (machine-independent mode): two machines of the same kind differ by ~35 % in
absolute terms, while a model's ratio to another model measured in the same run agrees within
~6 % (docs/architecture.md §5). So each rate or CPU figure (req/s, CPU µs per request, churn connections/s,
MB/s, system calls per request) is first divided by the BASE model's same figure at the same
point in its own run; B/A then compares those ratios. The range of such a ratio is the range
of its per-repetition ratios (models run interleaved inside each repetition, so one
repetition's ratio cancels that moment's machine state), or, from summary.csv alone, the
interval quotient [min / base max, max / base min]. `--base all` divides by the geometric mean
of every model both runs measured at that point instead: one baseline model's own noise then
no longer moves every ratio (two back-to-back runs here: req/s at 100 connections agreed within
10 % for 20 of 27 models this way, for 2 of 26 with BASE=epoll). Memory per connection is compared as it
is (it does not depend on CPU speed, and a ratio to epoll's few hundred bytes would be noise),
and so is latency.

A run folder is read from runs.jsonl (and micro.json); a folder holding only summary.csv works
too. Writes compare.md, compare.csv, overlay charts (A dashed, B solid, same colour per model)
and the ratio charts (ratios.png, ratios-2.png, ...: one panel per figure, one row per model)
into B/compare-<name of A>/ (or --out); prints the table, the figures that differ beyond their
spreads, and that path.
"""
from __future__ import annotations

import argparse
import csv
import io
import math
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "plots"))

from harness import stats, store, summary  # noqa: E402

SINGLE_REP_NOISE = 0.25
# Ratios to a baseline model within one run moved by ~6 % between two machines (issue 7):
# with one repetition a BASE-normalised figure counts as different beyond 10 %.
SINGLE_REP_NOISE_BASE = 0.10

# Headline figures and whether more is better (for the arrow in the table).
HEADLINES = [
    ("scale", "rps", True), ("scale", "p99_us", False), ("scale", "cpu_us_per_req", False),
    ("scale", "syscalls_per_req", False),
    ("idle", "pss_slope_kib_per_conn", False), ("idle", "p99_us", False),
    ("churn", "rps", True), ("churn", "cpu_us_per_req", False), ("churn", "syscalls_per_req", False),
    ("latency", "p99_us", False), ("blocking", "p99_us", False), ("blocking", "p99_ratio", False),
    ("cpu", "rps", True), ("payload", "payload_mb_s", True), ("slowloris", "p99_us", False),
    ("micro", "ns_per_op", False),
]

CSV_COLUMNS = ["experiment", "model", "param", "metric", "unit", "a_median", "a_min", "a_max", "a_n",
               "b_median", "b_min", "b_max", "b_n", "ratio_b_over_a", "verdict", "base",
               "a_rel_median", "a_rel_min", "a_rel_max", "b_rel_median", "b_rel_min", "b_rel_max"]

# Figures that scale with the machine's CPU speed: divided by the BASE model's in BASE mode.
# Everything else (memory, latency, the blocking ratio, micro-benchmarks) is compared as is.
RELATIVE_METRICS = {"rps", "cpu_us_per_req", "payload_mb_s", "syscalls_per_req", "mb_s"}


def load_table(run: Path) -> list[dict]:
    runs_file, micro_file = run / store.RUNS, run / store.MICRO
    if runs_file.exists() or micro_file.exists():
        return summary.rows(store.load_runs(runs_file) if runs_file.exists() else [],
                            store.read_json(micro_file))
    return summary.read_csv((run / "summary.csv").read_text(encoding="utf-8"))


def per_rep_values(run: Path) -> dict[tuple, dict[int, float]]:
    """(experiment, model, param, metric) -> {repetition: value} of the rate and CPU figures,
    from runs.jsonl (empty for a folder with only summary.csv)."""
    out: dict[tuple, dict[int, float]] = {}
    runs_file = run / store.RUNS
    if not runs_file.exists():
        return out
    for r in summary.ok_records(store.load_runs(runs_file)):
        p = r.get("param")
        if isinstance(p, float) and p.is_integer():
            p = int(p)
        for metric in RELATIVE_METRICS:
            v = (r.get("metrics") or {}).get(metric)
            if isinstance(v, (int, float)):
                out.setdefault((r["experiment"], r["model"], str(p), metric), {})[int(r.get("rep", 0))] = float(v)
    return out


def index_rows(table: list[dict]) -> dict[tuple, dict]:
    """(experiment, model, param as text, metric) -> summary row."""
    return {(r["experiment"], r["model"], str(r["param"]), r["metric"]): r for r in table}


ALL = "all"   # --base all: the geometric mean of every model both runs measured at the point


def _geomean(values: list[float]) -> float | None:
    values = [v for v in values if v and v > 0]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else None


def add_all_base(ta: list[dict], tb: list[dict], reps_a: dict, reps_b: dict) -> None:
    """Adds a synthetic model "all" to both tables (and their per-repetition values): at each
    point and rate/CPU metric, the geometric mean over the models both runs measured there.
    One model's own noise then no longer moves every ratio: a baseline of one model carries
    its spread into each figure divided by it; the mean of ~27 carries a fifth of it."""
    ia, ib = index_rows(ta), index_rows(tb)
    points: dict[tuple, list[str]] = {}
    for key in ia.keys() & ib.keys():
        exp, model, param, metric = key
        if (metric in RELATIVE_METRICS and model != ALL and ia[key].get("median") is not None
                and ib[key].get("median") is not None):
            points.setdefault((exp, param, metric), []).append(model)
    for (exp, param, metric), models in points.items():
        for table, idx, reps in ((ta, ia, reps_a), (tb, ib, reps_b)):
            rows = [idx[(exp, m, param, metric)] for m in models]
            row = {"experiment": exp, "model": ALL, "param": rows[0]["param"], "metric": metric,
                   "unit": rows[0].get("unit", ""), "n": min(r["n"] for r in rows),
                   "median": _geomean([r["median"] for r in rows]),
                   "min": _geomean([r["min"] for r in rows if r.get("min") is not None]),
                   "max": _geomean([r["max"] for r in rows if r.get("max") is not None])}
            table.append(row)
            per = [reps.get((exp, m, param, metric)) or {} for m in models]
            common = set.intersection(*(set(d) for d in per)) if per else set()
            if common:
                reps[(exp, ALL, param, metric)] = {k: _geomean([d[k] for d in per]) for k in common}


def is_relative(metric: str, base: str | None) -> bool:
    return base is not None and metric in RELATIVE_METRICS


def relative_to(row: dict, base_row: dict | None, reps: dict[int, float] | None = None,
                base_reps: dict[int, float] | None = None) -> dict | None:
    """A figure divided by the baseline model's same figure in the same run. The median is
    median over median (so it agrees with the raw medians shown beside it). The range: when
    per-repetition values of both are known (runs.jsonl), the min-max of the per-repetition
    ratios (models run interleaved, so a repetition's ratio cancels that repetition's machine
    state), widened to hold the median; otherwise the interval quotient of summary.csv's ranges
    (min / base max, max / base min), which can only be wider."""
    if base_row is None or not base_row.get("median") or row.get("median") is None:
        return None
    if base_row is row or base_row.get("model") == row.get("model"):
        return {"median": 1.0, "min": 1.0, "max": 1.0, "n": row["n"], "paired": True}   # the base itself
    med = row["median"] / base_row["median"]
    common = sorted(set(reps or {}) & set(base_reps or {}))
    ratios = [reps[k] / base_reps[k] for k in common if base_reps[k]]
    if ratios:
        return {"median": med, "min": min(min(ratios), med), "max": max(max(ratios), med),
                "n": len(ratios), "paired": True}
    out = {"median": med, "n": min(row["n"], base_row["n"]), "min": None, "max": None, "paired": False}
    if row.get("min") is not None and base_row.get("max"):
        out["min"] = row["min"] / base_row["max"]
    if row.get("max") is not None and base_row.get("min"):
        out["max"] = row["max"] / base_row["min"]
    if out["min"] is None or out["max"] is None:
        out["min"] = out["max"] = out["median"]
    return out


def verdict(a: dict, b: dict, ratio: float | None, noise: float = SINGLE_REP_NOISE) -> str:
    """'*' the difference is larger than both spreads; '~' single repetition, off by more than
    the machine's usual noise; '' within the spreads (or the noise)."""
    if ratio is None:
        return ""
    if a["n"] >= 2 and b["n"] >= 2:
        return "*" if not stats.ranges_overlap((a["min"], a["max"]), (b["min"], b["max"])) else ""
    return "~" if abs(ratio - 1.0) > noise else ""


def compare(ta: list[dict], tb: list[dict], base: str | None = None,
            reps_a: dict | None = None, reps_b: dict | None = None) -> list[dict]:
    """One row per headline figure measured in both runs. With base, the rate and CPU figures
    are compared as ratios to the base model's (rows where either run lacks the base model's
    same point are left out: see missing_base); reps_a/reps_b (per_rep_values) give those
    ratios per-repetition ranges."""
    reps_a, reps_b = reps_a or {}, reps_b or {}
    ia, index_b = index_rows(ta), index_rows(tb)
    out = []
    for exp, metric, _better in HEADLINES:
        for a in ta:
            if a["experiment"] != exp or a["metric"] != metric or a["median"] is None:
                continue
            key = (exp, a["model"], str(a["param"]), metric)
            b = index_b.get(key)
            if not b or b["median"] is None:
                continue
            row = {"experiment": exp, "model": a["model"], "param": a["param"], "metric": metric,
                   "unit": a["unit"], "a": a, "b": b, "base": None, "a_rel": None, "b_rel": None}
            if is_relative(metric, base):
                bkey = (exp, base, str(a["param"]), metric)
                a_rel = relative_to(a, ia.get(bkey), reps_a.get(key), reps_a.get(bkey))
                b_rel = relative_to(b, index_b.get(bkey), reps_b.get(key), reps_b.get(bkey))
                if a_rel is None or b_rel is None:
                    row.update(ratio=None, verdict="", missing_base=True)
                    out.append(row)
                    continue
                ratio = b_rel["median"] / a_rel["median"] if a_rel["median"] else None
                row.update(base=base, a_rel=a_rel, b_rel=b_rel, ratio=ratio,
                           verdict="" if a["model"] == base else verdict(a_rel, b_rel, ratio,
                                                                         SINGLE_REP_NOISE_BASE))
            else:
                ratio = b["median"] / a["median"] if a["median"] else None
                row.update(ratio=ratio, verdict=verdict(a, b, ratio))
            out.append(row)
    out.sort(key=lambda r: ([h[:2] for h in HEADLINES].index((r["experiment"], r["metric"])),
                            r["model"], summary.param_sort_key(r["param"])))
    return out


def _n(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _rng(r: dict) -> str:
    med = _n(r["median"])
    return f"{med} [{_n(r['min'])}-{_n(r['max'])}]" if r["n"] > 1 else med


def _rel(r: dict) -> str:
    med = f"{r['median']:.3g}"
    return f"{med} [{r['min']:.3g}-{r['max']:.3g}]" if r["n"] > 1 else med


def _cell(row: dict, side: str) -> str:
    raw = _rng(row[side])
    rel = row.get(f"{side}_rel")
    return f"{_rel(rel)}x ({raw})" if rel else raw


def _arrow(r: dict) -> str:
    better = {(e, m): up for e, m, up in HEADLINES}
    if r["verdict"] and r["ratio"] is not None:
        improved = (r["ratio"] > 1) == better[(r["experiment"], r["metric"])]
        return " (better)" if improved else " (worse)"
    return ""


def differing(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["verdict"]]


def to_markdown(rows: list[dict], a_name: str, b_name: str, base: str | None = None) -> str:
    intro = ("Ratio B/A of each headline figure (median over repetitions), with both runs' median "
             "[min-max]. `*`: the ranges do not overlap (a difference larger than the spreads); "
             f"`~`: one side has a single repetition and the ratio is off 1 by more than "
             f"{SINGLE_REP_NOISE:.0%} (this machine's usual run-to-run noise).")
    if base:
        whose = ("the geometric mean of every model both runs measured there (`all`)" if base == ALL
                 else f"{base}'s same figure")
        intro += (f" **Machine-independent mode, BASE = {base}:** each rate and CPU figure "
                  f"({', '.join(sorted(RELATIVE_METRICS))}) is first divided by {whose} "
                  f"at the same point in its own run (shown as `0.93x (raw)`), and B/A compares "
                  f"those ratios; a ratio's range is that of its per-repetition ratios (from "
                  f"runs.jsonl), or [min / {base} max, max / {base} min] from summary.csv; with one "
                  f"repetition `~` means off by more than {SINGLE_REP_NOISE_BASE:.0%}. Memory and "
                  f"latency are compared as they are.")
    lines = [f"# cmbench comparison: B = {b_name} vs A = {a_name}" + (f" (BASE = {base})" if base else ""),
             "", intro, "",
             "| experiment | metric | model | param | A | B | B/A | |", "|---|---|---|---|---|---|---|---|"]
    shown = [r for r in rows if not r.get("missing_base")]
    for r in shown:
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        metric = f"{r['metric']} ({r['unit']})" + (f" / {base}" if r.get("base") else "")
        mark = r["verdict"] + _arrow(r) + (" (base)" if r.get("base") and r["model"] == base else "")
        lines.append(f"| {r['experiment']} | {metric} | {r['model']} | {r['param']} | "
                     f"{_cell(r, 'a')} | {_cell(r, 'b')} | {ratio} | {mark} |")
    if not shown:
        lines.append("| (no figure measured in both runs) | | | | | | | |")
    diff = differing(shown)
    lines += ["", f"{len(shown)} figures compared, {len(diff)} differ by more than their spreads.", ""]
    missing = [r for r in rows if r.get("missing_base")]
    if missing:
        lines += [f"{len(missing)} rate/CPU figures left out: {base} has no figure at the same point "
                  f"in A or B (" + ", ".join(sorted({f"{r['experiment']} {r['metric']} {r['param']}"
                                                      for r in missing})) + ").", ""]
    if diff:
        lines += ["## Figures that differ beyond their spreads", ""]
        for r in diff:
            lines.append(f"- {r['experiment']} {r['metric']}{' / ' + base if r.get('base') else ''} "
                         f"{r['model']} {r['param']}: B/A {r['ratio']:.2f} {r['verdict']}{_arrow(r)}")
        lines.append("")
    return "\n".join(lines)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    def rel(x, k):
        return "" if not x or x.get(k) is None else f"{x[k]:.6g}"
    for r in rows:
        a, b = r["a"], r["b"]
        ar, br = r.get("a_rel"), r.get("b_rel")
        w.writerow([r["experiment"], r["model"], r["param"], r["metric"], r["unit"],
                    a["median"], a["min"], a["max"], a["n"], b["median"], b["min"], b["max"], b["n"],
                    "" if r["ratio"] is None else f"{r['ratio']:.6g}", r["verdict"], r.get("base") or "",
                    rel(ar, "median"), rel(ar, "min"), rel(ar, "max"),
                    rel(br, "median"), rel(br, "min"), rel(br, "max")])
    return buf.getvalue()


# --- overlay charts ----------------------------------------------------------------------------

OVERLAYS = [
    # name, experiment, metric, y scale factor, y label, log x, log y
    ("scale_throughput", "scale", "rps", 1.0, "throughput (requests/s)", True, False),
    ("scale_p99", "scale", "p99_us", 1e-3, "p99 latency (ms, log)", True, True),
    ("idle_pss", "idle", "pss_kib", 1 / 1024, "server PSS (MiB)", False, False),
    ("latency_knee", "latency", "p99_us", 1e-3, "CO-corrected p99 (ms, log)", False, True),
    ("payload", "payload", "payload_mb_s", 1.0, "response bodies (MB/s, log)", True, True),
]
XLABELS = {"scale": "keep-alive connections", "idle": "idle connections",
           "latency": "offered load (% of each model's own peak)", "payload": "response body (bytes)"}


def overlay_charts(ta: list[dict], tb: list[dict], rows: list[dict], a_name: str, b_name: str,
                   out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from plot import color, model_order

    written = []

    def save(fig, name):
        for ext in ("png", "svg"):
            p = out / f"{name}.{ext}"
            tmp = out / f".{name}.tmp.{ext}"
            fig.savefig(tmp, format=ext)
            tmp.replace(p)
            written.append(p)
        plt.close(fig)

    for name, exp, metric, scale, ylabel, logx, logy in OVERLAYS:
        fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
        drawn = False
        models = model_order({r["model"] for r in ta + tb if r["experiment"] == exp})
        for m in models:
            for table, style, label in ((ta, "--", a_name), (tb, "-", b_name)):
                pts = sorted(((float(r["param"]), r) for r in table if r["experiment"] == exp
                              and r["metric"] == metric and r["model"] == m and r["median"] is not None
                              and _isnum(r["param"])), key=lambda p: p[0])
                if not pts:
                    continue
                drawn = True
                ax.errorbar([p[0] for p in pts], [p[1]["median"] * scale for p in pts],
                            yerr=[[max(0, (p[1]["median"] - p[1]["min"]) * scale) for p in pts],
                                  [max(0, (p[1]["max"] - p[1]["median"]) * scale) for p in pts]],
                            ls=style, color=color(m), marker="o", ms=4, capsize=2, lw=1.4,
                            label=f"{m} ({'A' if style == '--' else 'B'})")
        if drawn:
            if logx:
                ax.set_xscale("log")
            if logy:
                ax.set_yscale("log")
            ax.set_xlabel(XLABELS.get(exp, "parameter"))
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7, ncol=2, frameon=False)
        else:
            ax.text(0.5, 0.5, "no data in both runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(f"{exp} {metric}: A = {a_name} (dashed), B = {b_name} (solid)", fontsize=10)
        fig.tight_layout()
        save(fig, f"overlay_{name}")

    ratio_charts(rows, a_name, b_name, out, save)
    return written


RATIO_PANELS_PER_PAGE = 4   # 2 x 2 panels of about 6 x 5 in: labels stay legible ...
RATIO_MAX_PAGE_IN = 12.0    # ... and a page stays within a screen: with many models, 2 per page
RATIO_PARAM_MARKERS = "osD^vP*Xh<>p"


def ratio_charts(rows: list[dict], a_name: str, b_name: str, out: Path, save) -> None:
    """The headline ratios B/A as dot plots: one panel per figure (experiment, metric), one row
    per model, one marker per parameter (filled: beyond the spreads; hollow: within them), on
    a log2 axis. Four panels per page: ratios.png, ratios-2.png, ... (the old single chart
    grew to 990 x 5561 px with unreadable labels)."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from plot import color, model_order

    panels: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        if r["ratio"] and r["ratio"] > 0 and not r.get("missing_base"):
            panels.setdefault((r["experiment"], r["metric"]), []).append(r)
    keys = list(panels)
    most = max((len({r["model"] for r in v}) for v in panels.values()), default=1)
    per_page = RATIO_PANELS_PER_PAGE if 2 * (0.28 * most + 1.6) <= RATIO_MAX_PAGE_IN else 2
    pages = [keys[i:i + per_page] for i in range(0, len(keys), per_page)] or [[]]
    # Stale pages of an earlier comparison with more figures would be mistaken for this one's.
    for old in list(out.glob("ratios-*.png")) + list(out.glob("ratios-*.svg")):
        old.unlink()
    for n, page in enumerate(pages, start=1):
        ncols = 2 if len(page) > 1 else 1
        nrows = max(1, (len(page) + ncols - 1) // ncols)
        models_per_panel = [len({r["model"] for r in panels[k]}) for k in page] or [1]
        height = max(3.2, 0.28 * max(models_per_panel) + 1.6)
        fig, axes = plt.subplots(nrows, ncols, figsize=(6.2 * ncols, height * nrows), dpi=100,
                                 squeeze=False)
        for ax in axes.flat[len(page):]:
            ax.set_visible(False)
        if not page:
            axes[0][0].set_visible(True)
            axes[0][0].text(0.5, 0.5, "no figure measured in both runs", ha="center", va="center",
                            transform=axes[0][0].transAxes)
            axes[0][0].set_axis_off()
        for ax, key in zip(axes.flat, page):
            pr = panels[key]
            models = model_order({r["model"] for r in pr})
            params = sorted({str(r["param"]) for r in pr}, key=summary.param_sort_key)
            marker = {p: RATIO_PARAM_MARKERS[i % len(RATIO_PARAM_MARKERS)] for i, p in enumerate(params)}
            ypos = {m: i for i, m in enumerate(reversed(models))}
            lo, hi = 1.0, 1.0
            for r in pr:
                beyond = bool(r["verdict"])
                c = color(r["model"])
                ax.scatter([r["ratio"]], [ypos[r["model"]]], marker=marker[str(r["param"])], s=42,
                           facecolors=c if beyond else "none", edgecolors=c, linewidths=1.3, zorder=3)
                lo, hi = min(lo, r["ratio"]), max(hi, r["ratio"])
            ax.set_xscale("log", base=2)
            span = max(abs(math.log2(lo)), abs(math.log2(hi)), 0.25) * 1.15
            ax.set_xlim(2 ** -span, 2 ** span)
            ax.set_xticks(ratio_ticks(2 ** -span, 2 ** span))
            ax.xaxis.set_major_formatter(matplotlib_ticker_ratio())
            ax.xaxis.set_minor_formatter(matplotlib_ticker_none())
            ax.axvline(1.0, color="black", lw=0.8)
            ax.set_yticks(list(ypos.values()), list(ypos.keys()), fontsize=9)
            ax.set_ylim(-0.7, len(models) - 0.3)
            ax.grid(True, axis="x", which="both", alpha=0.3)
            base = next((r["base"] for r in pr if r.get("base")), None)
            ax.set_title(f"{key[0]} {key[1]}" + (f" (ratio to {base})" if base else ""), fontsize=10)
            ax.set_xlabel("B / A", fontsize=9)
            ax.tick_params(axis="x", labelsize=8)
            if params:
                handles = [Line2D([], [], ls="", marker=marker[p], color="grey", mfc="none", label=p)
                           for p in params]
                ax.legend(handles=handles, title="param", fontsize=7, title_fontsize=7,
                          loc="best", frameon=False)
        fig.suptitle(f"Headline ratios B/A (filled: beyond the spreads, hollow: within): "
                     f"B = {b_name}, A = {a_name}" + (f"  [page {n}/{len(pages)}]" if len(pages) > 1 else ""),
                     fontsize=10)
        fig.tight_layout()
        save(fig, "ratios" if n == 1 else f"ratios-{n}")


def ratio_ticks(lo: float, hi: float) -> list[float]:
    """Tick positions for a log2 ratio axis: powers of two, or finer steps when the span is
    narrow, so every panel has at least three labelled ticks."""
    coarse = [2.0 ** k for k in range(-12, 13) if lo <= 2.0 ** k <= hi]
    if len(coarse) >= 3:
        step = max(1, len(coarse) // 7)   # at most about seven labels
        return coarse[len(coarse) // 2 % step::step]
    fine = [0.5, 0.67, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0]
    return [v for v in fine if lo <= v <= hi]


def _ratio_label(v: float) -> str:
    return f"{v:.2g}x" if v >= 0.1 else f"1/{1 / v:.0f}x"


def matplotlib_ticker_ratio():
    from matplotlib.ticker import FuncFormatter
    return FuncFormatter(lambda v, _pos: _ratio_label(v))


def matplotlib_ticker_none():
    from matplotlib.ticker import NullFormatter
    return NullFormatter()


def _isnum(p) -> bool:
    try:
        float(p)
        return True
    except (TypeError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--base", metavar="MODEL",
                    help="machine-independent mode: rates and CPU as ratios to this model's (e.g. "
                         "epoll), or to the geometric mean of every model both runs measured (all)")
    ap.add_argument("--out", type=Path, help="default: B/compare-<name of A>/")
    ap.add_argument("--no-charts", action="store_true")
    args = ap.parse_args(argv)
    for run in (args.a, args.b):
        if not any((run / f).exists() for f in (store.RUNS, store.MICRO, "summary.csv")):
            print(f"compare.py: {run} is not a results folder (no runs.jsonl, micro.json or summary.csv)",
                  file=sys.stderr)
            return 2
    a_name, b_name = args.a.resolve().name, args.b.resolve().name
    out = args.out or (args.b / f"compare-{a_name}")
    out.mkdir(parents=True, exist_ok=True)
    ta, tb = load_table(args.a), load_table(args.b)
    reps_a, reps_b = (per_rep_values(args.a), per_rep_values(args.b)) if args.base else ({}, {})
    if args.base == ALL:
        add_all_base(ta, tb, reps_a, reps_b)
    elif args.base:
        have = {r["model"] for r in ta} & {r["model"] for r in tb}
        if args.base not in have:
            print(f"compare.py: BASE model {args.base!r} is not measured in both runs "
                  f"(both have: {', '.join(sorted(have)) or 'none'})", file=sys.stderr)
            return 2
    rows = compare(ta, tb, args.base, reps_a, reps_b)
    md = to_markdown(rows, a_name, b_name, args.base)
    store.atomic_write_text(out / "compare.md", md)
    store.atomic_write_text(out / "compare.csv", to_csv(rows))
    if not args.no_charts:
        overlay_charts(ta, tb, rows, a_name, b_name, out)
    print(md)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
