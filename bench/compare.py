#!/usr/bin/python3
"""Compare two results folders: `make compare A=results/<a> B=results/<b>`.

    /usr/bin/python3 bench/compare.py A B [--out DIR]

For every experiment, model and parameter measured in both runs, the ratio B/A of the headline
figures (throughput, p99, memory per idle connection, ...) with both runs' median [min-max].
A difference counts ("*") only when it is larger than the spreads: the two runs' min-max ranges
do not overlap; with a single repetition on either side there is no range, so the documented
run-to-run noise of this kind of machine (25 %) is used instead ("~"). Writes compare.md,
compare.csv and overlay charts (A dashed, B solid, same colour per model) into
B/compare-<name of A>/ (or --out) and prints that path.
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

# Headline figures and whether more is better (for the arrow in the table).
HEADLINES = [
    ("scale", "rps", True), ("scale", "p99_us", False),
    ("idle", "pss_slope_kib_per_conn", False), ("idle", "p99_us", False),
    ("churn", "rps", True), ("churn", "cpu_us_per_req", False),
    ("latency", "p99_us", False), ("blocking", "p99_us", False), ("blocking", "p99_ratio", False),
    ("cpu", "rps", True), ("payload", "payload_mb_s", True), ("slowloris", "p99_us", False),
    ("micro", "ns_per_op", False),
]

CSV_COLUMNS = ["experiment", "model", "param", "metric", "unit", "a_median", "a_min", "a_max", "a_n",
               "b_median", "b_min", "b_max", "b_n", "ratio_b_over_a", "verdict"]


def load_table(run: Path) -> list[dict]:
    return summary.rows(store.load_runs(run / store.RUNS), store.read_json(run / store.MICRO))


def verdict(a: dict, b: dict, ratio: float | None) -> str:
    """'*' the difference is larger than both spreads; '~' single repetition, off by more than
    the machine's usual noise; '' within the spreads (or the noise)."""
    if ratio is None:
        return ""
    if a["n"] >= 2 and b["n"] >= 2:
        return "*" if not stats.ranges_overlap((a["min"], a["max"]), (b["min"], b["max"])) else ""
    return "~" if abs(ratio - 1.0) > SINGLE_REP_NOISE else ""


def compare(ta: list[dict], tb: list[dict]) -> list[dict]:
    index_b = {(r["experiment"], r["model"], str(r["param"]), r["metric"]): r for r in tb}
    out = []
    for exp, metric, _better in HEADLINES:
        for a in ta:
            if a["experiment"] != exp or a["metric"] != metric or a["median"] is None:
                continue
            b = index_b.get((exp, a["model"], str(a["param"]), metric))
            if not b or b["median"] is None:
                continue
            ratio = b["median"] / a["median"] if a["median"] else None
            out.append({"experiment": exp, "model": a["model"], "param": a["param"], "metric": metric,
                        "unit": a["unit"], "a": a, "b": b, "ratio": ratio,
                        "verdict": verdict(a, b, ratio)})
    out.sort(key=lambda r: ([h[:2] for h in HEADLINES].index((r["experiment"], r["metric"])),
                            r["model"], summary.param_sort_key(r["param"])))
    return out


def _n(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"


def _rng(r: dict) -> str:
    med = _n(r["median"])
    return f"{med} [{_n(r['min'])}-{_n(r['max'])}]" if r["n"] > 1 else med


def to_markdown(rows: list[dict], a_name: str, b_name: str) -> str:
    lines = [f"# cmbench comparison: B = {b_name} vs A = {a_name}", "",
             "Ratio B/A of each headline figure (median over repetitions), with both runs' median "
             "[min-max]. `*`: the ranges do not overlap (a difference larger than the spreads); "
             f"`~`: one side has a single repetition and the ratio is off 1 by more than "
             f"{SINGLE_REP_NOISE:.0%} (this machine's usual run-to-run noise).", "",
             "| experiment | metric | model | param | A | B | B/A | |", "|---|---|---|---|---|---|---|---|"]
    better = {(e, m): up for e, m, up in HEADLINES}
    for r in rows:
        arrow = ""
        if r["verdict"] and r["ratio"] is not None:
            improved = (r["ratio"] > 1) == better[(r["experiment"], r["metric"])]
            arrow = " (better)" if improved else " (worse)"
        ratio = f"{r['ratio']:.2f}" if r["ratio"] is not None else "-"
        lines.append(f"| {r['experiment']} | {r['metric']} ({r['unit']}) | {r['model']} | {r['param']} | "
                     f"{_rng(r['a'])} | {_rng(r['b'])} | {ratio} | {r['verdict']}{arrow} |")
    if not rows:
        lines.append("| (no figure measured in both runs) | | | | | | | |")
    n_sig = sum(1 for r in rows if r["verdict"])
    lines += ["", f"{len(rows)} figures compared, {n_sig} differ by more than their spreads.", ""]
    return "\n".join(lines)


def to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for r in rows:
        a, b = r["a"], r["b"]
        w.writerow([r["experiment"], r["model"], r["param"], r["metric"], r["unit"],
                    a["median"], a["min"], a["max"], a["n"], b["median"], b["min"], b["max"], b["n"],
                    "" if r["ratio"] is None else f"{r['ratio']:.6g}", r["verdict"]])
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

    # All headline ratios in one picture: log2(B/A) per figure, hatched when within the spreads.
    fig, ax = plt.subplots(figsize=(9, max(3.0, 0.22 * len(rows) + 1.5)), dpi=110)
    usable = [r for r in rows if r["ratio"] and r["ratio"] > 0]
    if usable:
        ys = range(len(usable))
        ax.barh(list(ys), [math.log2(r["ratio"]) for r in usable],
                color=[color(r["model"]) for r in usable],
                hatch=None, edgecolor="black", lw=0.4)
        for y, r in zip(ys, usable):
            if not r["verdict"]:
                ax.barh(y, math.log2(r["ratio"]), color="none", hatch="///", edgecolor="white", lw=0)
        ax.set_yticks(list(ys), [f"{r['experiment']} {r['metric']} {r['model']} {r['param']}"
                                 for r in usable], fontsize=6)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_xlabel("log2(B / A)   (hatched: within the spreads)")
    else:
        ax.text(0.5, 0.5, "no figure measured in both runs", ha="center", va="center",
                transform=ax.transAxes)
    ax.set_title(f"Headline ratios B/A: B = {b_name}, A = {a_name}", fontsize=10)
    fig.tight_layout()
    save(fig, "ratios")
    return written


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
    ap.add_argument("--out", type=Path, help="default: B/compare-<name of A>/")
    ap.add_argument("--no-charts", action="store_true")
    args = ap.parse_args(argv)
    for run in (args.a, args.b):
        if not (run / store.RUNS).exists() and not (run / store.MICRO).exists():
            print(f"compare.py: {run} is not a results folder (no runs.jsonl or micro.json)", file=sys.stderr)
            return 2
    a_name, b_name = args.a.resolve().name, args.b.resolve().name
    out = args.out or (args.b / f"compare-{a_name}")
    out.mkdir(parents=True, exist_ok=True)
    ta, tb = load_table(args.a), load_table(args.b)
    rows = compare(ta, tb)
    md = to_markdown(rows, a_name, b_name)
    store.atomic_write_text(out / "compare.md", md)
    store.atomic_write_text(out / "compare.csv", to_csv(rows))
    if not args.no_charts:
        overlay_charts(ta, tb, rows, a_name, b_name, out)
    print(md)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
