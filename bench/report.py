#!/usr/bin/python3
"""report.md of one results folder: `make report RUN=results/<folder>`.

    /usr/bin/python3 bench/report.py RUN_DIR

For every experiment: the question it answers, how it was measured, its charts (drawn first if
missing) each with two sentences computed from this run's numbers, and its summary tables
(median [min-max] over repetitions). Then skipped/failed points, flags, the machine, and how to
cite.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))
sys.path.insert(0, str(REPO / "plots"))

from harness import readings, store, summary  # noqa: E402
from harness.plan import (BLOCKING_FAST_CONNS, BLOCKING_LOAD_PCT, BLOCKING_MAX_FAST_RPS,  # noqa: E402
                          BLOCKING_SLEEP_US,
                          BLOCKING_SLOW_CONNS, CPU_CONNS, IDLE_ACTIVE_CONNS, LATENCY_CONNS,
                          PAYLOAD_CONNS, PEAK, QUESTIONS, SLOWLORIS_ACTIVE_CONNS, TIMEOUT_S)
from harness.readings import cell  # noqa: E402

METHOD = {
    "scale": f"Closed loop: each of c keep-alive connections sends `GET /` as soon as the previous "
             f"response arrived, for c from the preset's list.",
    "idle": f"{IDLE_ACTIVE_CONNS} active closed-loop connections plus N idle ones (`loadgen --idle N`: "
            f"one request each, then held silent). Memory per idle connection is the least-squares "
            f"slope of the server tree's PSS (sum of `smaps_rollup` Pss, sampled while the "
            f"connections are held) over N, fitted per repetition; kernel socket buffer memory "
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
    "scale": ["scale_throughput", "scale_p99", "latency_distribution", "cpu_per_request"],
    "idle": ["idle_memory"],
    "churn": ["churn"],
    "latency": ["latency_knee"],
    "blocking": ["blocking"],
    "cpu": ["cpu_bound"],
    "payload": ["payload"],
    "slowloris": ["slowloris"],
    "micro": ["micro_readiness", "micro_costs"],
}

FLAG_MEANINGS = {
    "client-bound": "loadgen used >= 90 % of its CPU: the figure may describe the client, not the server",
    "generator-limited": "loadgen reported it could not keep its schedule",
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
            if r:
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


def tables_for(exp: str, table: list[dict]) -> list[str]:
    t = []
    if exp == "scale":
        t.append(_grid(table, "scale", "rps", label="req/s by connections"))
        t.append(_grid(table, "scale", "p99_us", 1e-3, "{:.2f}", label="p99 ms by connections")
                 .replace("(us)", "(ms)"))
        t.append(_grid(table, "scale", "cpu_us_per_req", 1.0, "{:.1f}", label="server CPU per request"))
        t.append(_grid(table, "scale", "pss_kib", 1 / 1024, "{:.1f}", label="server PSS MiB")
                 .replace("(KiB)", "(MiB)"))
    elif exp == "idle":
        t.append(_simple(table, "idle", [("pss_slope_kib_per_conn", 1, "{:.2f}", "PSS KiB per idle conn"),
                                         ("tcp_mem_slope_kib_per_conn", 1, "{:.2f}", "kernel TCP KiB per conn"),
                                         ("pss_intercept_kib", 1 / 1024, "{:.1f}", "PSS at 0 idle (MiB, fit)")],
                         param="slope"))
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
        t.append(_simple(table, "blocking", [("p99_ratio", 1, "{:.2f}", "p99 with / without")],
                         param="impact"))
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


def _headline(table: list[dict]) -> str:
    """The three figures people quote, per model: median [min-max] over repetitions."""
    models = _models(table, "scale") or _models(table, "idle") or _models(table, "latency")
    models = sorted(set(models) | set(_models(table, "idle")) | set(_models(table, "latency")),
                    key=lambda m: _models(table, "scale").index(m) if m in _models(table, "scale") else 99)
    rows = []
    for m in models:
        rps = summary.lookup(table, "scale", m, LATENCY_CONNS, "rps")
        slope = summary.lookup(table, "idle", m, "slope", "pss_slope_kib_per_conn")
        p99 = summary.lookup(table, "latency", m, 80, "p99_us")
        rows.append([m, cell(rps), cell(slope, 1, "{:.1f}"), cell(p99, 1e-3, "{:.2f}")])
    if not rows:
        return "No headline figures in this run."
    return _table(["model", f"req/s at {LATENCY_CONNS} connections", "KiB PSS per idle connection",
                   "CO-corrected p99 at 80 % load (ms)"], rows)


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
    out += ["## Headline figures", "", _headline(table), ""]
    out += ["## Method", "",
            f"* Each point (experiment x model x parameter x repetition) starts the server pinned to "
            f"CPU {s.get('server_cpu', 0)} (`sched_setaffinity`), waits for its `listening on` line, "
            f"checks that `GET /` returns exactly the contract's bytes, then runs `loadgen` pinned to CPU "
            f"{s.get('client_cpu', 1)}: {s.get('warmup_s', '?')} s of warm-up (not recorded), then "
            f"{s.get('duration_s', '?')} s measured. Then SIGTERM, and the server must exit 0 with no "
            f"child left behind.",
            f"* {s.get('reps', '?')} repetition(s), interleaved: every model runs each parameter before "
            f"the next parameter starts, and the model order rotates between repetitions. Figures are "
            f"medians with [min-max] over repetitions; on a 2-vCPU guest identical runs differ by "
            f"20-25 %, so only differences larger than those ranges mean anything.",
            "* The server's whole process tree is sampled from /proc every 100 ms (more slowly when "
            "one pass over thousands of processes would cost more than a fifth of the client CPU): CPU "
            "from `/proc/<pid>/task/*/schedstat` plus the parent's `cutime`/`cstime` for reaped "
            "children, context switches, threads, processes, RSS, and PSS from `smaps_rollup`; "
            "`/proc/net/sockstat` and `MemAvailable` before and after. Window figures are "
            "interpolated over the measured seconds.",
            "* Latency comes from loadgen's HdrHistogram (3 significant digits). Open-loop runs "
            "(`-R`) measure from each request's intended send time (coordinated omission corrected, "
            "as wrk2).",
            "* Flags: " + "; ".join(f"`{k}`: {v}" for k, v in FLAG_MEANINGS.items()) + ".", ""]

    for exp in experiments:
        out += [f"## {exp}", "", f"**Question.** {QUESTIONS.get(exp, '')}", "",
                f"**Method.** {METHOD.get(exp, '')}", ""]
        for chart in SECTION_CHARTS[exp]:
            png = run / store.CHARTS / f"{chart}.png"
            if png.exists():
                out += [f"![{chart}](charts/{chart}.png)", ""]
            out += [f"*{chart}*: {readings.reading(chart, table, runs)}", ""]
        for t in tables_for(exp, table):
            out += [t, ""]

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
