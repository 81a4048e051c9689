#!/usr/bin/python3
"""report.md of one results folder: `make report RUN=results/<folder>`.

    /usr/bin/python3 bench/report.py RUN_DIR

For every experiment: the question it answers, how it was measured, its charts (drawn first if
missing) each with two sentences computed from this run's numbers, and its summary tables
(median [min-max] over repetitions). Then skipped/failed points, flags, the machine, and how to
cite.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "plots"))

from harness import readings, reference, registry, store, summary  # noqa: E402
from harness.plan import (BLOCKING_FAST_CONNS, BLOCKING_LOAD_PCT, BLOCKING_MAX_FAST_RPS,  # noqa: E402
                          BLOCKING_SLEEP_US,
                          BLOCKING_SLOW_CONNS, CPU_CONNS, IDLE_ACTIVE_CONNS, LATENCY_CONNS,
                          PAYLOAD_CONNS, PEAK, QUESTIONS, SLOWLORIS_ACTIVE_CONNS)
from harness.readings import cell  # noqa: E402

METHOD = {
    "scale": "Closed loop: each of c keep-alive connections sends `GET /` as soon as the previous "
             "response arrived, for c from the preset's list.",
    "idle": f"{IDLE_ACTIVE_CONNS} active closed-loop connections plus N idle ones (`loadgen --idle N`: "
            f"one request each, then held silent). Memory per idle connection is the least-squares "
            f"slope of the server tree's `Pss_Anon` + `Pss_Shmem` (what the model itself allocates, "
            f"from `smaps_rollup`, read while the connections are held) over N, fitted per "
            f"repetition over at least three counts (r² >= 0.9, else not measurable); the total "
            f"Pss slope beside it; kernel socket buffer memory "
            f"(`/proc/net/sockstat` TCP mem, whole machine, both ends of each connection) is "
            f"reported separately.",
    "churn": "Closed loop with `--close`: every request opens a new connection and the server "
             "closes it after the response, so each request pays accept (plus fork or thread "
             "creation for those models).",
    "latency": f"First each model's peak rate: closed loop at {LATENCY_CONNS} connections (the "
               f"scale point of the same repetition when it is measured). Then open loop "
               f"(`loadgen -R`, wrk2-style fixed schedule on {LATENCY_CONNS} connections) at the "
               f"preset's percentages of that peak; latency counts from each request's intended "
               f"send time, so a stalled server is charged for the requests it kept waiting "
               f"(coordinated omission corrected).",
    "blocking": f"Fast `GET /` requests open loop at {BLOCKING_LOAD_PCT} % of the model's peak "
                f"(at most {BLOCKING_MAX_FAST_RPS} req/s, so the sleeps leave an event loop time to "
                f"serve) on "
                f"{BLOCKING_FAST_CONNS} connections, alone and then with a second loadgen adding "
                f"`/sleep/{BLOCKING_SLEEP_US}` requests (the handler blocks its thread for "
                f"{BLOCKING_SLEEP_US} us) as the given share of all requests on "
                f"{BLOCKING_SLOW_CONNS} connections. The figure is the fast requests' p99.",
    "cpu": f"Closed loop on {CPU_CONNS} connections of `/cpu/US`: the handler busy-spins US "
           f"microseconds of CPU.",
    "payload": f"Closed loop on {PAYLOAD_CONNS} connections of `/bytes/N`; the figure is response "
               f"body bytes delivered per second (requests x N / duration).",
    "slowloris": f"N slow clients (a Python helper on the client CPU) each send a request line and "
                 f"then one header byte per second, never finishing; meanwhile "
                 f"{SLOWLORIS_ACTIVE_CONNS} normal closed-loop connections measure latency.",
    "micro": "Google Benchmark (`build/bin/micro`) pinned to the server CPU: one "
             "select/poll/epoll wait with one ready fd among N socketpair ends (plus finding it), "
             "fork + exit + wait, thread create + join, the shared request parser, and the loadgen "
             "histogram's record().",
}

# Charts of each experiment's section (names from plots/plot.py).
SECTION_CHARTS = {
    "scale": ["scale_throughput", "scale_p99", "latency_distribution", "cpu_per_request", "syscalls"],
    "idle": ["idle_active", "idle_memory"],
    "churn": ["churn"],
    "latency": ["latency_knee"],
    "blocking": ["blocking"],
    "cpu": ["cpu_bound"],
    "payload": ["payload"],
    "slowloris": ["slowloris"],
    "micro": ["micro_readiness", "micro_costs"],
}

FLAG_MEANINGS = {
    "server-bound": "the server used >= 95 % of the CPU it was given: the figure is the server's",
    "client-bound": "the load generator saturated while the server had room: the figure may describe the client",
    "latency-bound": "neither side saturated: round trips set the figure",
    "limit-unknown": "what limited the point could not be told (the server's CPU was not measured)",
    "generator-limited": "loadgen fell behind its own schedule (its lag, not waiting for the server)",
    "beyond-generator": "a load beyond what one generator core can offer on schedule here: not data",
    "not-measurable": "the figure failed its checks (e.g. a memory slope with r² < 0.9): not data",
    "uncapped": "a throughput point that should have run under the CPU cap ran without it",
    "cpu-unmeasured": "the server's CPU could not be measured for this point",
    "memory-incomplete": "a memory reading missed part of the server's process tree",
    "reading-after-load": "the end-of-window reading was taken after the load had stopped",
    "sampler>2%": "the harness's own sampling used more than 2 % of a core in the window",
    "errors>0.1%": "more than 0.1 % of requests failed (connect, read, write, timeout, status or parse)",
    "contended": "other tasks used more than 10 % of the server's CPU during the window (a busy machine)",
    "no-pss-sample": "the sampler took no PSS reading while the idle connections were held",
    "idle-short": "loadgen could not hold every requested idle connection open",
    "unclean-exit": "the server did not exit 0 within the stop timeout after SIGTERM, or left a child behind",
    "spread>10%": "max - min over repetitions exceeds 10 % of the median",
}


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _models(table, experiment) -> list[str]:
    from plot import model_order
    return model_order({r["model"] for r in table if r["experiment"] == experiment})


def _params(table, experiment, metric) -> list:
    ps = {r["param"] for r in table if r["experiment"] == experiment and r["metric"] == metric}
    return sorted(ps, key=summary.param_sort_key)


def _status_cell(table, experiment, model, param) -> str | None:
    for r in table:
        if (r["experiment"] == experiment and r["model"] == model and str(r["param"]) == str(param)
                and r["status"] in ("skipped", "failed")):
            return r["status"]
    return None


def _grid(table, experiment, metric, scale=1.0, fmt="{:,.0f}", label=None) -> str:
    """Models down, parameters across; a cell is median [min-max], or why there is none."""
    params = sorted({r["param"] for r in table if r["experiment"] == experiment
                     and (r["metric"] == metric or r["status"] in ("skipped", "failed"))
                     and r["param"] not in ("slope", "impact", PEAK)}, key=summary.param_sort_key)
    models = _models(table, experiment)
    if not models or not params:
        return ""
    rows = []
    for m in models:
        line = [m]
        for p in params:
            r = summary.lookup(table, experiment, m, p, metric)
            why = readings.not_data_reason(r, experiment) if r else None
            if r and why:
                # Kept for the curious, but marked: it is not a figure to cite or compare.
                line.append(f"not data ({why.split(':')[0]}): {cell(r, scale, fmt)}")
            elif r:
                line.append(cell(r, scale, fmt) + (f" ({r['flags']})" if r["flags"] else ""))
            else:
                line.append(_status_cell(table, experiment, m, p) or "-")
        rows.append(line)
    unit = summary.UNITS.get(metric, "")
    return _table([f"{label or metric} ({unit})"] + [str(p) for p in params], rows)


def _simple(table, experiment, metrics: list[tuple[str, float, str, str]], param=None) -> str:
    models = _models(table, experiment)
    rows = []
    for m in models:
        line = [m]
        for metric, scale, fmt, _label in metrics:
            rs = [r for r in table if r["experiment"] == experiment and r["model"] == m
                  and r["metric"] == metric and (param is None or str(r["param"]) == str(param))]
            line.append(cell(rs[0], scale, fmt) if rs else "-")
        rows.append(line)
    if not rows:
        return ""
    return _table(["model"] + [lab for *_, lab in metrics], rows)


def idle_table(table: list[dict], runs: list[dict]) -> str:
    """Memory per idle connection per model: the slope, or why it is not a number (docs/architecture.md §5),
    with the total-Pss and kernel TCP slopes beside it when they pass the same checks."""
    rows = []
    for m in _models(table, "idle"):
        cells = [m]
        for metric in ("pss_slope_kib_per_conn", "pss_total_slope_kib_per_conn", "tcp_mem_slope_kib_per_conn"):
            row, why = readings.slope_check(table, runs, m, metric)
            if metric != "pss_slope_kib_per_conn" and row is None:
                cells.append("-")
                continue
            cells.append(why if why else figure(row))
        rows.append(cells)
    if not rows:
        return ""
    return _table(["model", "KiB per idle connection (model memory)", "total Pss KiB per conn",
                   "kernel TCP KiB per conn"], rows)


def blocking_table(table: list[dict], runs: list[dict]) -> str:
    """Ratio of the medians the grid above shows, the per-repetition ratios' range beside it,
    and the verdict: hurt only when every repetition at least doubled."""
    rows = []
    for m in _models(table, "blocking"):
        base = summary.lookup(table, "blocking", m, 0, "p99_us")
        withs = [r for r in table if r["experiment"] == "blocking" and r["model"] == m
                 and r["metric"] == "p99_us" and (readings._num(r["param"]) or 0) > 0]
        w = withs[-1] if withs else None
        if not base or not w:
            continue
        if readings.not_data_reason(base, "blocking") or readings.not_data_reason(w, "blocking"):
            rows.append([m, "not data (not offered on schedule)", "-", "-"])
            continue
        per = readings.blocking_ratios(runs, m)
        verdict = readings.blocking_verdict(table, runs, m)
        rows.append([m, f"{w['median'] / base['median']:.2g}x",
                     f"{min(per):.2g}-{max(per):.2g}x" if per else "-",
                     {"hurt": "at least doubled in every repetition",
                      "held": "below 2x in some repetition"}.get(verdict, "-")])
    if not rows:
        return ""
    return _table(["model", "p99 beside slow / alone (ratio of the medians)", "per-repetition ratios",
                   "verdict"], rows)


def tables_for(exp: str, table: list[dict], runs: list[dict] | None = None) -> list[str]:
    runs = runs or []
    t = []
    if exp == "scale":
        t.append(_grid(table, "scale", "rps", label="req/s by connections"))
        t.append(_grid(table, "scale", "p99_us", 1e-3, "{:.2f}", label="p99 ms by connections")
                 .replace("(us)", "(ms)"))
        t.append(_grid(table, "scale", "cpu_us_per_req", 1.0, "{:.1f}", label="server CPU per request"))
        t.append(_grid(table, "scale", "pss_kib", 1 / 1024, "{:.1f}", label="server PSS MiB")
                 .replace("(KiB)", "(MiB)"))
    elif exp == "idle":
        t.append(idle_table(table, runs))
        t.append(_grid(table, "idle", "pss_kib", 1 / 1024, "{:.1f}", label="PSS MiB by idle conns")
                 .replace("(KiB)", "(MiB)"))
        t.append(_grid(table, "idle", "p99_us", 1e-3, "{:.2f}", label="active clients' p99 ms")
                 .replace("(us)", "(ms)"))
    elif exp == "churn":
        t.append(_simple(table, "churn", [("rps", 1, "{:,.0f}", "connections/s"),
                                          ("p99_us", 1e-3, "{:.2f}", "p99 (ms)"),
                                          ("cpu_us_per_req", 1, "{:.1f}", "CPU us/conn"),
                                          ("ctxsw_per_req", 1, "{:.2f}", "ctx switches/conn")]))
    elif exp == "latency":
        t.append(_simple(table, "latency", [("rps", 1, "{:,.0f}", f"peak req/s (closed, c={LATENCY_CONNS})")],
                         param=PEAK) if any(r["param"] == PEAK for r in table if r["experiment"] == "latency")
                 else _simple(table, "scale", [("rps", 1, "{:,.0f}", f"peak req/s (scale c={LATENCY_CONNS})")],
                              param=LATENCY_CONNS))
        t.append(_grid(table, "latency", "p99_us", 1e-3, "{:.2f}", label="CO-corrected p99 ms by % of peak")
                 .replace("(us)", "(ms)"))
        t.append(_grid(table, "latency", "achieved_frac", 100, "{:.0f}", label="achieved % of offered")
                 .replace("(fraction)", "(%)"))
    elif exp == "blocking":
        t.append(_grid(table, "blocking", "p99_us", 1e-3, "{:.2f}", label="fast p99 ms by % slow")
                 .replace("(us)", "(ms)"))
        t.append(blocking_table(table, runs))
    elif exp == "cpu":
        t.append(_simple(table, "cpu", [("rps", 1, "{:,.0f}", "req/s"), ("p99_us", 1e-3, "{:.2f}", "p99 (ms)"),
                                        ("cpu_us_per_req", 1, "{:.1f}", "CPU us/req"),
                                        ("server_cpu_util", 1, "{:.2f}", "server cores busy")]))
    elif exp == "payload":
        t.append(_grid(table, "payload", "payload_mb_s", 1, "{:,.1f}", label="MB/s by body bytes"))
        t.append(_grid(table, "payload", "rps", 1, "{:,.0f}", label="req/s by body bytes"))
    elif exp == "slowloris":
        t.append(_simple(table, "slowloris", [("p99_us", 1e-3, "{:.2f}", "normal clients' p99 (ms)"),
                                              ("rps", 1, "{:,.0f}", "normal req/s"),
                                              ("slow_alive", 1, "{:,.0f}", "slow clients still connected"),
                                              ("slow_closed", 1, "{:,.0f}", "closed by server")]))
    elif exp == "micro":
        rows = [[str(r["param"]).split("/")[0], r["model"], str(r["param"]).split("/")[1]
                 if "/" in str(r["param"]) else "", cell(r, 1, "{:,.0f}")]
                for r in table if r["experiment"] == "micro"]
        if rows:
            t.append(_table(["group", "case", "N", "ns per op"], rows))
    return [x for x in t if x]


# --- figures rounded to what their spread supports ------------------------------------------

def sig_digits(row: dict | None) -> int:
    """Significant digits the spread supports: ±20 % (half the min-max range over the median)
    gets 2, ±2 % gets 3, a single repetition 3."""
    if not row or row.get("median") in (None, 0) or row.get("min") is None or row.get("n", 0) < 2:
        return 3
    rel = (row["max"] - row["min"]) / 2 / abs(row["median"])
    if rel >= 0.5:
        return 1
    if rel >= 0.05:
        return 2
    return 3   # tighter spreads than ±5 % still get 3: this machine's noise is ±20-25 %


def round_sig(v: float, digits: int) -> float:
    """Half away from zero (Python's round() goes to even: 245000 -> 240000 at 2 digits)."""
    if v == 0:
        return 0.0
    step = 10.0 ** (math.floor(math.log10(abs(v))) - digits + 1)
    return math.copysign(math.floor(abs(v) / step + 0.5) * step, v)


def fmt_sig(v: float, digits: int, kind: str = "") -> str:
    """kind 'rate' writes 204000 as 200k (at 2 digits)."""
    r = round_sig(v, digits)
    if kind == "rate" and abs(r) >= 10000:
        return f"{r / 1000:g}k"
    if abs(r) >= 1000:
        return f"{r:,.0f}"
    return f"{r:.{max(0, digits - 1 - math.floor(math.log10(abs(r))))}f}" if r else "0"


def figure(row: dict | None, scale: float = 1.0, kind: str = "") -> str:
    """median [min-max] ±spread, all rounded to the digits the spread supports."""
    if not row or row.get("median") is None:
        return "-"
    d = sig_digits(row)
    med = row["median"] * scale
    out = fmt_sig(med, d, kind)
    if row.get("n", 0) > 1 and row.get("min") is not None and row["min"] == row["max"]:
        return out + f" (all {row['n']} repetitions)"
    if row.get("n", 0) > 1 and row.get("min") is not None:
        # The range to the same decimal place as the median (one more digit is no more true).
        exp = math.floor(math.log10(abs(med))) if med else 0
        dd = lambda x: max(1, d + (math.floor(math.log10(abs(x))) - exp if x else 0))  # noqa: E731
        half = (row["max"] - row["min"]) / 2 / abs(row["median"]) * 100 if row["median"] else 0
        out += (f" [{fmt_sig(row['min'] * scale, dd(row['min'] * scale), kind)}-"
                f"{fmt_sig(row['max'] * scale, dd(row['max'] * scale), kind)}] ±{half:.0f} %")
    if set(readings.flag_list(row.get("flags"))) & readings.PARTIAL_FLAGS:
        out += f" (from {row['n']} repetitions; the others were not data)"
    return out


def _limit_short(lim: str | None) -> str:
    return {"server-bound": "server-bound", "client-bound": "client-bound",
            "latency-bound": "latency-bound", "mixed": "reps differ"}.get(lim, "limit not recorded")


HEADLINE_FIGURES = [
    # (column, experiment, param, metric, scale, kind, must be server-bound)
    (f"req/s at {LATENCY_CONNS} connections", "scale", LATENCY_CONNS, "rps", 1.0, "rate", True),
    ("req/s at 1000 connections", "scale", 1000, "rps", 1.0, "rate", True),
    (f"server CPU us/request (c={LATENCY_CONNS})", "scale", LATENCY_CONNS, "cpu_us_per_req", 1.0, "", False),
    ("churn connections/s", "churn", None, "rps", 1.0, "rate", True),
    ("KiB per idle connection", "idle", "slope", "pss_slope_kib_per_conn", 1.0, "", False),
    ("p99 at 80 % load (ms)", "latency", 80, "p99_us", 1e-3, "", False),
]


def _headline_cell(table, runs, limits, model, exp, param, metric, scale, kind, need_server) -> tuple[str, str | None]:
    """(cell text, why it was left out or None)."""
    if exp == "idle":
        row, why = readings.slope_check(table, runs, model)
        if why == "not measured" and row is None:
            return "-", None
        if why:
            return "left out", why
        return figure(row, scale, kind), None
    if param is None:
        ps = sorted({r["param"] for r in table if r["experiment"] == exp and r["model"] == model
                     and r["metric"] == metric}, key=summary.param_sort_key)
        param = ps[0] if ps else None
    row = readings.row_or_status(table, exp, model, param, metric) if param is not None else None
    if row is None:
        return "-", None
    why = readings.not_data_reason(row, exp)
    if why:
        return "left out", why
    lim = limits.get((exp, model, readings._pkey(param)))
    if lim is None:
        lim = readings.limit_from_flags(row.get("flags"))
    if need_server and lim != "server-bound":
        return "left out", f"not server-bound ({_limit_short(lim)}): a headline rate must be the server's"
    return f"{figure(row, scale, kind)}, {_limit_short(lim)}", None


def _headline(table: list[dict], runs: list[dict] | None = None) -> str:
    """The figures people quote, per model: median [min-max] ±spread, what limited it, rounded
    to what the spread supports; a figure that failed its checks is left out, saying why."""
    runs = runs or []
    limits = readings.point_limits(runs)
    models = [m for m in registry.NAMES if any(r["model"] == m for r in table)]
    models += sorted({r["model"] for r in table} - set(models) - {"micro"}
                     - {r["model"] for r in table if r["experiment"] == "micro"})
    rows, notes = [], []
    for m in models:
        line = [m + (" (reference)" if m in registry.BY_NAME and registry.BY_NAME[m].is_reference else "")]
        for col, exp, param, metric, scale, kind, need in HEADLINE_FIGURES:
            text, why = _headline_cell(table, runs, limits, m, exp, param, metric, scale, kind, need)
            if why:
                notes.append(f"{m}, {col}: {why}")
                text = f"left out [{len(notes)}]"
            line.append(text)
        if any(c != "-" for c in line[1:]):
            rows.append(line)
    if not rows:
        return "No headline figures in this run."
    out = _table(["model"] + [c[0] for c in HEADLINE_FIGURES], rows)
    if notes:
        out += "\n\nLeft out (the figure failed its checks, so no number is cited):\n\n" + "\n".join(
            f"{i}. {n}" for i, n in enumerate(notes, 1))
    return out


# --- lines of code, style and memory, side by side ------------------------------------------

_CPP_EXT = (".cpp", ".cc", ".hpp", ".h")


def cpp_loc(text: str) -> int:
    """Non-blank lines that are not only comments (// and /* */), string literals respected."""
    count = 0
    in_block = False
    for line in text.splitlines():
        code = []
        i, n = 0, len(line)
        quote = None
        while i < n:
            c = line[i]
            if in_block:
                if line.startswith("*/", i):
                    in_block = False
                    i += 2
                    continue
                i += 1
                continue
            if quote:
                code.append(c)
                if c == "\\":
                    i += 2
                    continue
                if c == quote:
                    quote = None
                i += 1
                continue
            if line.startswith("//", i):
                break
            if line.startswith("/*", i):
                in_block = True
                i += 2
                continue
            if c in "\"'":
                quote = c
            code.append(c)
            i += 1
        if "".join(code).strip():
            count += 1
    return count


def python_loc(text: str) -> int:
    """Non-blank lines that are not only comments or docstrings (a string standing alone as a
    statement)."""
    import io
    import tokenize
    code_lines: set[int] = set()
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return sum(1 for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}
    prev = tokenize.NEWLINE
    for k, t in enumerate(toks):
        if t.type in skip:
            if t.type in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT):
                prev = t.type
            continue
        nxt = next((x.type for x in toks[k + 1:] if x.type not in (tokenize.COMMENT, tokenize.NL)), None)
        if t.type == tokenize.STRING and prev in (tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT) \
                and nxt in (tokenize.NEWLINE, tokenize.ENDMARKER):
            prev = tokenize.STRING
            continue          # a docstring
        code_lines.update(range(t.start[0], t.end[0] + 1))
        prev = t.type
    return len(code_lines)


def loc_of(path: Path) -> int | None:
    """Lines of code of a file or folder (C++ sources, Python files, config templates)."""
    if not path.exists():
        return None
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    total = 0
    for f in files:
        text = f.read_text(errors="replace")
        if f.suffix in _CPP_EXT:
            total += cpp_loc(text)
        elif f.suffix == ".py":
            total += python_loc(text)
        elif f.suffix == ".in" or f.name.endswith(".conf.in"):
            total += sum(1 for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("#"))
    return total


def _python_shared(repo: Path) -> list[Path]:
    """The Python protocol module(s): files in servers/python that are no model's own file."""
    own = {repo / m.source for m in registry.MODELS if m.kind == "python"}
    folder = repo / "servers" / "python"
    return sorted(p for p in folder.glob("*.py") if p not in own and not p.name.startswith("test"))


def _memory_cell(table, runs, model) -> str:
    row, why = readings.slope_check(table, runs, model)
    if why == "not measured":
        return "not in this run"
    if why:
        return why.split("(")[0].strip() if len(why) > 60 else why
    return figure(row, 1.0)


def code_table(table: list[dict], runs: list[dict], repo: Path = REPO) -> str:
    """Per model: its own lines of code, its programming style and its memory per idle
    connection, side by side (the lecture's "the code no longer looks simple" as a table);
    the shared code on its own rows, counted once."""
    rows = []
    for m in registry.MODELS:
        path = repo / m.source
        if m.is_reference:
            src = [p for p in (repo / "bench" / "reference").glob("*.conf.in")
                   if p.name.split(".")[0] in (m.name, m.name.split("-")[0])]
            n = sum(loc_of(p) or 0 for p in src)
            rows.append([f"{m.name} (reference)", "not our code; config: " +
                         (", ".join(f"`bench/reference/{p.name}`" for p in src) or "-"),
                         f"{n} config lines" if src else "-", "reference",
                         _memory_cell(table, runs, m.name)])
            continue
        n = loc_of(path)
        shown = f"`{m.source}/`" if m.kind == "cpp" else f"`{m.source}`"
        rows.append([m.name, shown, str(n) if n is not None else "not in this checkout", m.style,
                     _memory_cell(table, runs, m.name)])
    common = repo / "servers" / "common"
    if common.exists():
        rows.append(["(shared C++)", "`servers/common/` (parser, response, session, sockets, CLI, "
                     "event loop)", str(loc_of(common)), "-", "-"])
    for p in _python_shared(repo):
        rows.append(["(shared Python)", f"`servers/python/{p.name}`", str(loc_of(p)), "-", "-"])
    return _table(["model", "its own code", "lines of code", "style", "KiB per idle connection"], rows) + (
        "\n\nLines of code: non-blank lines that are not only comments (C++ `//` and `/* */`, Python "
        "`#` and docstrings), of the model's own folder or file; the shared code on its own rows, "
        "counted once. Memory: the least-squares slope of the server tree's memory over the idle "
        "counts (docs/architecture.md §5), or why it is not a number.")


def reference_section(runs: list[dict]) -> str:
    """Reference rows: what their responses to GET / differ in (the conformance probe), from this
    run's records when the harness stored them, else as measured by tests/bench/test_reference.py."""
    names = [m.name for m in registry.MODELS if m.is_reference]
    seen = {r["model"] for r in runs if r.get("model") in names}
    lines = ["Reference rows are industrial servers (not our code), started in the foreground from "
             "`bench/reference/` configs on a loopback port the harness picks and stopped by PID. "
             "They serve `GET /` and `/bytes/N` from static files, so they appear only in the "
             "experiments that need nothing else (scale, idle, churn, latency, slowloris, payload).",
             ""]
    for n in names:
        stored = None
        for r in runs:
            if r.get("model") == n:
                stored = (r.get("probe_differences") or (r.get("server") or {}).get("probe_differences")
                          or (r.get("server") or {}).get("probe"))
                if stored:
                    break
        if isinstance(stored, str):
            stored = [stored]
        diffs = stored or reference.KNOWN_DIFFERENCES.get(n)
        src = "this run's probe" if stored else "the probe on Debian 12 (tests/bench/test_reference.py)"
        status = "" if n in seen else " Not in this run."
        if stored or diffs:
            lines.append(f"* **{n}** cannot produce the contract's exact bytes; {src} found: "
                         + "; ".join(diffs) + f". Its response head is longer than ours by those "
                         f"headers, so compare it like for like only where a few dozen bytes per "
                         f"response do not matter.{status}")
        else:
            lines.append(f"* **{n}**: identical bytes.{status}")
    return "\n".join(lines)


def cpu_cap_method(meta: dict, runs: list[dict]) -> str:
    """How the server's CPU was capped for throughput points, as the harness recorded it."""
    for key in ("cpu_cap", "cap", "cgroup"):
        v = meta.get(key) or (meta.get("settings") or {}).get(key)
        if isinstance(v, dict) and ("quota_us" in v or "applied" in v):
            return _cap_from_harness(v)
        if v:
            if isinstance(v, dict):
                method = v.get("method") or v.get("description") or v.get("version")
                extra = {k: x for k, x in v.items() if k not in ("method", "description") and x is not None}
                return (str(method) if method else "recorded") + (
                    f" ({', '.join(f'{k}: {x}' for k, x in extra.items())})" if extra else "")
            return str(v)
    methods = set()
    for r in runs:
        cap = (r.get("config") or {}).get("cpu_cap")
        if isinstance(cap, dict) and cap.get("method"):
            methods.add(str(cap["method"]))
        elif isinstance(cap, str):
            methods.add(cap)
    if methods:
        return "; ".join(sorted(methods)) + " (from the points' records)"
    return "unknown (this run's metadata does not record a CPU cap method)"


def _cap_from_harness(v: dict) -> str:
    """meta.json's cpu_cap as bench/run.py records it: cgroup version, quota, period, the
    experiments it applies to, its own description, or why it was not applied."""
    cg = v.get("cgroup") or {}
    version = cg.get("version") if isinstance(cg, dict) else cg
    if not v.get("applied"):
        return f"none: the server ran uncapped ({v.get('reason') or (cg or {}).get('reason') or 'no reason recorded'})"
    out = f"cgroup {version or '?'} CPU quota {v.get('quota_us')} us per {v.get('period_us')} us period"
    if v.get("share"):
        out += f" ({v['share']:g} of a core)"
    out += " on the server's whole process tree"
    if v.get("capped_experiments"):
        out += f", in {', '.join(v['capped_experiments'])}"
    if v.get("uncapped_experiments"):
        out += f"; uncapped: {', '.join(v['uncapped_experiments'])}"
    out += "."
    if v.get("method"):
        out += f" {v['method']}"
    return out


def _cpus(settings: dict, side: str) -> str:
    """The CPU list a side was pinned to (server_cpus / client_cpus; older runs: one number)."""
    v = settings.get(f"{side}_cpus")
    if isinstance(v, list) and v:
        return ",".join(str(c) for c in v)
    return str(settings.get(f"{side}_cpu", 0 if side == "server" else 1))


def syscall_method(settings: dict) -> str:
    """How system calls were counted, from the run's own settings (count_points)."""
    pts = settings.get("count_points") or []
    if not pts:
        return ("* System calls per request were not counted in this run (its preset names no "
                "counting points).")
    named = ", ".join(f"{e} {p}" for e, p in pts)
    return (f"* System calls per request: after the timed window of {named} (first repetition "
            f"only), a separate window of the same load with `perf stat` counting the syscall "
            f"tracepoints of the server's process tree alone (moved into its own cgroup), minus "
            f"an idle baseline; where perf cannot count, the report says why instead of a number.")


def method_caveats(meta: dict, runs: list[dict]) -> list[str]:
    return [
        f"* **CPU cap.** {cpu_cap_method(meta, runs).rstrip('.')}. A headline throughput "
        f"figure is quoted only when its point was server-bound (the server used >= 95 % of the CPU "
        f"it was given); latency points run without the cap, because throttling adds up to a "
        f"period to a request's latency.",
        "* **Offering load on schedule.** Latency points are open-loop (wrk2's schedule, latency "
        "from the intended send time) at a share of each model's uncapped closed-loop peak. The "
        "generator polls instead of sleeping when its next request is due within 0.5 ms: on a "
        "virtual machine a timer wake-up costs more CPU than a request (37 us each, measured), so "
        "a sleeping generator could not offer half of what one server core serves. A point whose "
        "generator was late anyway (lag p99 above 1 ms, or >= 95 % of its core spent on the load) "
        "is listed as beyond what one generator core can offer here, not drawn.",
        "* **Multi-worker models on two cores.** `prefork` and `reuseport` size themselves to the "
        "CPUs the server may run on; on this 2-core machine the server gets one core, so each runs "
        "one worker on one core and measures like one event loop plus its supervision. What they "
        "buy (a loop per core) needs more cores than this machine has.",
        "* **Noise.** Identical runs on a 2-vCPU guest differ by ±20-25 %: figures are medians of "
        "interleaved repetitions with their min-max range, rounded to the digits that range "
        "supports; only differences larger than the ranges mean anything.",
        "* **Across machines.** Absolute figures differ between machines of the same kind (two "
        "complete runs differed by 35 %), while a model's ratio to another model in the same run is "
        "far more stable: compare runs only as ratios to a baseline model within each run "
        "(`make compare A=... B=... BASE=epoll`); memory per connection compares as it is.",
        "* **Reference rows** are not our code and answer `GET /` with a few extra headers (below).",
    ]


def syscall_table(table: list[dict], runs: list[dict]) -> str:
    import plot
    data = plot.Data(Path("."), runs, None, table, {}, readings.point_limits(runs))
    out = []
    for exp, param, label in plot._syscall_point(data):
        names, per = plot.syscall_stacks(data, exp, param)
        rows = []
        for m in plot.model_order(per):
            d = per[m]
            total = sum(d.values())
            cs = data.row(exp, m, param, "ctxsw_per_req")
            rows.append([m, f"{total:.3g}"] + [f"{d.get(n, 0):.2g}" if d.get(n) else "-" for n in names]
                        + [f"{cs['median']:.2g}" if cs and cs.get("median") is not None else "-"])
        out.append(f"System calls per request, {label}:\n\n" +
                   _table(["model", "all calls"] + names + ["ctx switches"], rows))
    return "\n\n".join(out)


def _machine(meta: dict) -> str:
    cpu = meta.get("cpu") or {}
    b = meta.get("build") or {}
    g = meta.get("git") or {}
    tools = meta.get("tools") or {}
    lim = meta.get("limits") or {}
    sysctl = lim.get("sysctl") or {}
    mit = meta.get("mitigations")
    mit_s = mit.get("cmdline", "?") if isinstance(mit, dict) else str(mit)
    rows = [
        ["CPU", f"{cpu.get('model', '?')}, {cpu.get('cores_online', '?')} online"
                + (" (virtual machine)" if cpu.get("hypervisor") else "")],
        ["memory", f"{(meta.get('memory_total_kib') or 0) / 1048576:.1f} GiB"],
        ["kernel", (meta.get("kernel") or {}).get("release", "?")],
        ["OS", str(meta.get("os", "?"))],
        ["compiler", f"{b.get('compiler', '?')}; build type {b.get('CMAKE_BUILD_TYPE', '?')}; "
                     f"flags `{(b.get('CMAKE_CXX_FLAGS', '') + ' ' + b.get('CMAKE_CXX_FLAGS_RELEASE', '')).strip()}`"],
        ["git", f"{g.get('commit', '?')}" + (" (dirty)" if g.get("dirty") is True else "")],
        ["governor", str(meta.get("governor", "?"))],
        ["mitigations", mit_s],
        ["perf (hardware counters)", str(meta.get("perf", "?"))],
        ["pinning", f"server CPU {(meta.get('pinning') or {}).get('server_cpu')}, loadgen CPU "
                    f"{(meta.get('pinning') or {}).get('client_cpu')}"],
        ["limits", f"nofile {(lim.get('nofile') or {}).get('soft')}, somaxconn {sysctl.get('somaxconn')}, "
                   f"ports {sysctl.get('ip_local_port_range')}, pid_max {sysctl.get('pid_max')}"],
        ["tools", ", ".join(f"{k} {v}" for k, v in tools.items() if k != "python_executable")],
    ]
    return _table(["", ""], rows)


def _cite(meta: dict, run: Path) -> str:
    g = meta.get("git") or {}
    year = (meta.get("created_utc") or time.strftime("%Y"))[:4]
    commit = g.get("commit", "unavailable")
    return f"""Cite the software with the `CITATION.cff` at the repository root (GitHub's "Cite this
repository" reads it), and name the run you quote:

```bibtex
@misc{{cmbench_{run.name.replace('-', '_')},
  title        = {{cmbench: what does each way of serving many clients cost?}},
  author       = {{{{cmbench contributors}}}},
  year         = {{{year}}},
  note         = {{Results folder {run.name}, commit {commit}, preset {(meta.get('settings') or {}).get('preset', '?')}}},
  howpublished = {{Software and benchmark results}}
}}
```"""


def build(run: Path) -> str:
    runs = store.load_runs(run / store.RUNS)
    micro = store.read_json(run / store.MICRO)
    meta = store.read_json(run / store.META, {}) or {}
    table = summary.rows(runs, micro)
    s = meta.get("settings") or {}
    experiments = [e for e in SECTION_CHARTS if e in (s.get("experiments") or list(SECTION_CHARTS))]
    counts = {st: sum(1 for r in runs if r.get("status") == st) for st in ("ok", "skipped", "failed")}
    out = [f"# cmbench results: {run.name}", ""]
    status = "complete" if meta.get("complete") else "**incomplete** (interrupted; resume with `make bench RESUME=" + str(run) + "`)"
    out += [f"Preset **{s.get('preset', '?')}**, models {', '.join(s.get('models', []))}; "
            f"{counts['ok']} points measured, {counts['skipped']} skipped, {counts['failed']} failed; "
            f"run {status}, wall time {meta.get('wall_s', '?')} s, started {meta.get('created_utc', '?')}.", ""]
    out += ["## Headline figures", "", "Median [min-max] over repetitions, ±half that range, and what "
            "limited the point; rounded to the digits the spread supports.", "", _headline(table, runs), ""]
    out += ["## The models: code, style and memory", "", code_table(table, runs), ""]
    out += ["## Method", "",
            f"* Each point (experiment x model x parameter x repetition) starts the server pinned to "
            f"CPU(s) {_cpus(s, 'server')} (`sched_setaffinity`), waits for its `listening on` line, "
            f"checks that `GET /` returns exactly the contract's bytes, then runs `loadgen` pinned to CPU "
            f"{_cpus(s, 'client')}: {s.get('warmup_s', '?')} s of warm-up (not recorded), then "
            f"{s.get('duration_s', '?')} s measured. Then SIGTERM, and the server must exit 0 with no "
            f"child left behind.",
            f"* {s.get('reps', '?')} repetition(s), interleaved: every model runs each parameter before "
            f"the next parameter starts, and the model order rotates between repetitions. Figures are "
            f"medians with [min-max] over repetitions; on a 2-vCPU guest identical runs differ by "
            f"20-25 %, so only differences larger than those ranges mean anything.",
            "* The server's whole process tree is read from /proc at three moments per point, not "
            "sampled in the background: reading M in the warm-up, while the generator holds every "
            "connection (threads, processes, RSS, PSS and `Pss_Anon` + `Pss_Shmem` from "
            "`smaps_rollup`, `/proc/net/sockstat`), and readings A and B inside the measured "
            "window, while the load runs (CPU from `/proc/<pid>/task/*/schedstat` plus the "
            "parent's `cutime`/`cstime` for reaped children, context switches; with the cap, the "
            "cgroup's throttling from `cpu.stat`). CPU and rates are B - A over the seconds "
            "between them; what the readings themselves cost is recorded beside them "
            "(`server.sampler` in runs.jsonl).",
            syscall_method(s),
            "* Latency comes from loadgen's HdrHistogram (3 significant digits). Open-loop runs "
            "(`-R`) measure from each request's intended send time (coordinated omission corrected, "
            "as wrk2).",
            "* Flags: " + "; ".join(f"`{k}`: {v}" for k, v in FLAG_MEANINGS.items()) + ".",
            *method_caveats(meta, runs), ""]
    out += ["## Reference rows", "", reference_section(runs), ""]

    for exp in experiments:
        out += [f"## {exp}", "", f"**Question.** {QUESTIONS.get(exp, '')}", "",
                f"**Method.** {METHOD.get(exp, '')}", ""]
        for chart in SECTION_CHARTS[exp]:
            png = run / store.CHARTS / f"{chart}.png"
            if png.exists():
                out += [f"![{chart}](charts/{chart}.png)", ""]
            out += [f"*{chart}*: {readings.reading(chart, table, runs)}", ""]
        for t in tables_for(exp, table, runs):
            out += [t, ""]
        if exp == "scale":
            st = syscall_table(table, runs)
            if st:
                out += [st, ""]

    problems = [r for r in table if r["status"] in ("skipped", "failed")]
    out += ["## Skipped and failed points", ""]
    if problems:
        out += [_table(["experiment", "model", "param", "status", "why"],
                       [[r["experiment"], r["model"], str(r["param"]), r["status"],
                         (r["note"] or "").replace("|", "/")[:240]] for r in problems]), ""]
    else:
        out += ["None.", ""]
    flagged = {}
    for r in table:
        for f in filter(None, (r.get("flags") or "").split(";")):
            flagged.setdefault(f, set()).add(f"{r['experiment']}/{r['model']}/{r['param']}")
    out += ["## Flags", ""]
    if flagged:
        for f, where in sorted(flagged.items()):
            lst = sorted(where)
            out.append(f"* `{f}` ({FLAG_MEANINGS.get(f, '')}): {len(lst)} point(s): "
                       + ", ".join(lst[:25]) + (" ..." if len(lst) > 25 else ""))
        out.append("")
    else:
        out += ["None.", ""]
    out += ["## Machine", "", _machine(meta), "", "Full metadata: `meta.json`; every point with its "
            "loadgen JSON and server samples: `runs.jsonl`; all figures: `summary.csv`.", ""]
    out += ["## How to cite", "", _cite(meta, run), ""]
    return "\n".join(out)


def write(run: Path) -> Path:
    run = Path(run)
    charts = run / store.CHARTS
    try:
        import plot
        missing = [c.name for c in plot.CHARTS if not (charts / f"{c.name}.png").exists()]
        if missing:
            plot.render(run, missing)
    except Exception as e:  # the report is still useful without pictures
        print(f"report.py: charts could not be drawn: {type(e).__name__}: {e}", file=sys.stderr)
    path = run / store.REPORT
    store.atomic_write_text(path, build(run))
    return path


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    run = Path(argv[0])
    if not (run / store.META).exists():
        print(f"report.py: {run} has no meta.json; not a results folder", file=sys.stderr)
        return 2
    print(write(run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
