"""From per-point records to the figures people read: summary.csv rows, with median, min, max
and spread over repetitions, status and flags; plus the figures that need several points
(memory per idle connection = least-squares PSS slope, blocking impact).
"""
from __future__ import annotations

import csv
import io
import math
from collections import defaultdict

from . import stats, syscalls
from .plan import EXPERIMENTS, PEAK

COLUMNS = ["experiment", "model", "param", "metric", "unit", "n", "median", "min", "max",
           "spread_pct", "status", "flags", "note"]

UNITS = {
    "rps": "req/s", "p50_us": "us", "p90_us": "us", "p99_us": "us", "p999_us": "us",
    "max_us": "us", "service_p99_us": "us", "slow_p99_us": "us", "cpu_us_per_req": "us/req",
    "ctxsw_per_req": "switches/req", "pss_kib": "KiB", "rss_kib": "KiB", "tcp_mem_kib": "KiB",
    "threads": "threads", "procs": "processes", "server_cpu_util": "cores",
    "client_cpu_frac": "fraction", "error_rate": "fraction", "achieved_frac": "fraction",
    "offered_rps": "req/s", "payload_mb_s": "MB/s", "mb_s": "MB/s", "slow_alive": "clients",
    "slow_closed": "clients", "pss_slope_kib_per_conn": "KiB/conn",
    "tcp_mem_slope_kib_per_conn": "KiB/conn", "pss_intercept_kib": "KiB",
    "p99_ratio": "x", "ns_per_op": "ns", "core_other_tasks": "cores", "core_busy": "fraction",
    "model_kib": "KiB", "pss_total_slope_kib_per_conn": "KiB/conn", "server_cpu_frac_of_given": "fraction",
    "lag_p99_us": "us", "sampler_frac_of_core": "fraction", "throttled_frac": "fraction", "wait_p99_us": "us", "syscalls_per_req": "calls/req",
}

_CPU = ["server_cpu_util", "server_cpu_frac_of_given", "throttled_frac", "client_cpu_frac",
        "core_other_tasks", "sampler_frac_of_core"]
METRICS = {
    "scale": ["rps", "p50_us", "p99_us", "p999_us", "cpu_us_per_req", "ctxsw_per_req", "pss_kib",
              "model_kib", "threads", "procs", *_CPU, "error_rate"],
    "idle": ["p99_us", "rps", "model_kib", "pss_kib", "rss_kib", "tcp_mem_kib", "threads", "procs",
             "cpu_us_per_req", *_CPU, "error_rate"],
    "churn": ["rps", "p99_us", "cpu_us_per_req", "ctxsw_per_req", *_CPU, "error_rate"],
    "latency": ["p50_us", "p99_us", "p999_us", "service_p99_us", "lag_p99_us", "wait_p99_us", "rps",
                "offered_rps", "achieved_frac", *_CPU, "error_rate"],
    "blocking": ["p99_us", "p50_us", "p999_us", "slow_p99_us", "lag_p99_us", "rps", "offered_rps",
                 *_CPU, "error_rate"],
    "cpu": ["rps", "p99_us", "cpu_us_per_req", "ctxsw_per_req", *_CPU, "error_rate"],
    "payload": ["payload_mb_s", "rps", "p99_us", "cpu_us_per_req", *_CPU, "error_rate"],
    "slowloris": ["p99_us", "rps", "slow_alive", "slow_closed", *_CPU, "error_rate"],
}
PEAK_METRICS = ["rps", "p99_us", *_CPU, "error_rate"]
# Open-loop experiments: a repetition the generator could not offer on schedule is not data.
SCHEDULED = {"latency", "blocking"}
BEYOND = "beyond what one generator core can offer here"

# The figures compare.py and the spread flags look at first.
HEADLINE = {
    "scale": ["rps", "p99_us"], "idle": ["pss_slope_kib_per_conn", "p99_us"], "churn": ["rps"],
    "latency": ["p99_us"], "blocking": ["p99_us", "p99_ratio"], "cpu": ["rps"],
    "payload": ["payload_mb_s"], "slowloris": ["p99_us"], "micro": ["ns_per_op"],
}


def param_sort_key(p) -> tuple:
    try:
        return (0, float(p), "")
    except (TypeError, ValueError):
        return (-1 if p == PEAK else 1, 0.0, str(p))


def ok_records(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r.get("status") == "ok"]


def group(runs: list[dict]) -> dict[tuple, list[dict]]:
    """(experiment, model, param) -> records of all repetitions."""
    g: dict[tuple, list[dict]] = defaultdict(list)
    for r in runs:
        g[(r["experiment"], r["model"], r["param"] if not isinstance(r["param"], float)
           else (int(r["param"]) if r["param"].is_integer() else r["param"]))].append(r)
    return g


def on_schedule(r: dict) -> bool:
    """An open-loop record whose load the generator offered on schedule (its own lateness, not
    waiting for the server, decides: loadgen's generator_limited)."""
    return not (r.get("loadgen") or {}).get("generator_limited") and \
        "beyond-generator" not in (r.get("flags") or [])


def _physical(metric: str, m: dict):
    """A point's figure, or None where it cannot be true and so must not be published: a
    server's CPU per request of 0 while it served (its reading missed the tree), and kernel
    TCP memory that fell while connections were held (sockstat is machine-wide: other sockets
    closing meanwhile, not this server)."""
    v = m.get(metric)
    if metric == "cpu_us_per_req" and v == 0 and (m.get("rps") or 0) > 0:
        return None
    if metric == "tcp_mem_kib" and isinstance(v, (int, float)) and v < 0:
        return None
    return v


def metric_values(records: list[dict], metric: str) -> list[float]:
    return stats.clean(_physical(metric, r.get("metrics") or {}) for r in records
                       if r.get("status") == "ok")


def dynamic_metrics(records: list[dict]) -> list[str]:
    """syscall_<name>_per_req and syscalls_per_req, as the syscall counter reported them."""
    names = set()
    for r in records:
        for k in (r.get("metrics") or {}):
            if k.startswith("syscall") and k.endswith("_per_req"):
                names.add(k)
    return (["syscalls_per_req"] if "syscalls_per_req" in names else []) + \
        sorted(n for n in names if n != "syscalls_per_req")


def _status(records: list[dict]) -> str:
    sts = [r.get("status") for r in records]
    if all(s == "ok" for s in sts):
        return "ok"
    if any(s == "ok" for s in sts):
        return "partial"
    return "skipped" if all(s == "skipped" for s in sts) else "failed"


def _note(records: list[dict]) -> str:
    reasons = []
    for r in records:
        if r.get("reason") and r["reason"] not in reasons:
            reasons.append(r["reason"])
    return " | ".join(x.replace("\n", " ")[:300] for x in reasons)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.6g}"
    return str(v)


def _row(experiment, model, param, metric, values, status, flags, note) -> dict:
    s = stats.summarize(values)
    fl = list(flags)
    if stats.spread_exceeds(values):
        fl.append("spread>10%")
    return {"experiment": experiment, "model": model, "param": param, "metric": metric,
            "unit": UNITS.get(metric) or syscalls.unit(metric) or "", "n": s["n"],
            "median": s["median"], "min": s["min"], "max": s["max"], "spread_pct": s["spread_pct"], "status": status,
            "flags": ";".join(sorted(set(fl))), "note": note}


# --- figures across points ---------------------------------------------------------------

def idle_slopes(runs: list[dict]) -> dict[str, dict]:
    """Per model: memory per idle connection, the least-squares slope of the server tree's
    Pss_Anon + Pss_Shmem (read while the generator held the connections) against the idle
    connections it held, fitted per repetition over that repetition's idle counts; the total
    Pss slope and the kernel's TCP memory slope (sockstat, read at the same moment) beside it.
    A fit that its points do not support (stats.supported_slope: < 3 counts, r2 < 0.9,
    negative) is not a number: its reason is kept instead. Returns, per model and metric,
    {"values": [...], "reasons": [...]}."""
    per: dict[str, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in ok_records(runs):
        if r["experiment"] != "idle":
            continue
        m = dict(r.get("metrics") or {})
        # A schema-1 record (before model_kib: e.g. the committed results/reference/) fitted its
        # slope on the total Pss; keep that for it, so an older run still has its slopes. A
        # schema-2 record without model_kib had no complete memory reading: no fallback there.
        if int(r.get("schema", 1) or 1) < 2 and "model_kib" not in m and "pss_kib" in m:
            m["model_kib"] = m["pss_kib"]
        # x: the idle connections the generator really held (loadgen says when it held fewer).
        m["_x"] = m["idle_held"] if m.get("idle_held") is not None else int(r["param"])
        per[r["model"]][int(r["rep"])].append(m)
    out: dict[str, dict] = {}
    for model, reps in per.items():
        res: dict[str, dict] = {k: {"values": [], "reasons": []} for k in
                                ("pss_slope_kib_per_conn", "pss_total_slope_kib_per_conn",
                                 "tcp_mem_slope_kib_per_conn")}
        for ms in reps.values():
            held = [m["_x"] for m in ms]
            for metric, key in (("pss_slope_kib_per_conn", "model_kib"),
                                ("pss_total_slope_kib_per_conn", "pss_kib"),
                                ("tcp_mem_slope_kib_per_conn", "tcp_mem_kib")):
                pts = [(x, m.get(key)) for x, m in zip(held, ms)
                       if x is not None and m.get(key) is not None and m.get("memory_complete", True)]
                fit = stats.supported_slope([p[0] for p in pts], [p[1] for p in pts])
                if isinstance(fit, str):
                    res[metric]["reasons"].append(fit)
                else:
                    res[metric]["values"].append(fit[0])
        out[model] = res
    return out


def blocking_ratios(runs: list[dict]) -> dict[str, list[float]]:
    """Per model and repetition: fast-request p99 with slow requests / without."""
    by: dict[tuple[str, int], dict] = defaultdict(dict)
    for r in ok_records(runs):
        # only loads the generator offered on schedule are data
        if r["experiment"] == "blocking" and r["param"] != PEAK and on_schedule(r):
            by[(r["model"], int(r["rep"]))][float(r["param"])] = (r.get("metrics") or {}).get("p99_us")
    out: dict[str, list[float]] = defaultdict(list)
    for (model, _rep), d in by.items():
        base = d.get(0.0)
        withs = [v for k, v in d.items() if k > 0 and v is not None]
        if base and withs:
            out[model].append(max(withs) / base)
    return dict(out)


def peak_rates(runs: list[dict]) -> dict[str, list[float]]:
    """Per model: the closed-loop peak rates that latency and blocking were driven from."""
    out: dict[str, list[float]] = defaultdict(list)
    seen = set()
    for r in ok_records(runs):
        if r["experiment"] in ("latency", "blocking") and "peak_rps" in (r.get("config") or {}):
            key = (r["model"], r["rep"])
            if key not in seen:
                seen.add(key)
                out[r["model"]].append(float(r["config"]["peak_rps"]))
    return dict(out)


# --- micro -------------------------------------------------------------------------------

_TO_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def micro_table(micro: dict | None) -> dict[tuple[str, str, str], list[float]]:
    """(group, case, arg) -> ns per operation of each repetition, from Google Benchmark JSON.
    Names are 'group/case/arg' (e.g. 'wait/epoll/1000', 'spawn/fork_wait')."""
    out: dict[tuple[str, str, str], list[float]] = defaultdict(list)
    for b in (micro or {}).get("benchmarks", []):
        if b.get("run_type", "iteration") != "iteration" or b.get("error_occurred"):
            continue
        name = b.get("run_name") or b.get("name", "")
        parts = name.split("/")
        parts = [p for p in parts if not p.startswith(("min_time:", "repeats:", "real_time",
                                                       "iterations:", "process_time"))]
        if len(parts) < 2:
            continue
        grp, case = parts[0], parts[1]
        arg = parts[2] if len(parts) > 2 else ""
        # Cases that block or involve another task (fork, thread spawn) are timed in real time
        # (their names end in /real_time); CPU-bound ones by this thread's CPU time, which a busy
        # neighbour on a shared machine disturbs less.
        field = "real_time" if "real_time" in name.split("/") else "cpu_time"
        ns = float(b.get(field, 0.0)) * _TO_NS.get(b.get("time_unit", "ns"), 1.0)
        out[(grp, case, arg)].append(ns)
    return dict(out)


def micro_errors(micro: dict | None) -> list[str]:
    return [f"{b.get('name')}: {b.get('error_message')}" for b in (micro or {}).get("benchmarks", [])
            if b.get("error_occurred")]


# --- the table -----------------------------------------------------------------------------

def rows(runs: list[dict], micro: dict | None = None) -> list[dict]:
    out: list[dict] = []
    groups = group(runs)
    order = {e: i for i, e in enumerate(EXPERIMENTS)}
    keys = sorted(groups, key=lambda k: (order.get(k[0], 99), k[1], param_sort_key(k[2])))
    for exp, model, param in keys:
        recs = groups[(exp, model, param)]
        status = _status(recs)
        note = _note(recs)
        flags = sorted({f for r in recs for f in (r.get("flags") or [])})
        if status in ("skipped", "failed"):
            out.append({"experiment": exp, "model": model, "param": param, "metric": "", "unit": "",
                        "n": 0, "median": None, "min": None, "max": None, "spread_pct": None,
                        "status": status, "flags": ";".join(flags), "note": note})
            continue
        if exp in SCHEDULED and param != PEAK:
            late = [r for r in recs if r.get("status") == "ok" and not on_schedule(r)]
            recs = [r for r in recs if r.get("status") != "ok" or on_schedule(r)]
            if late and not any(r.get("status") == "ok" for r in recs):
                lag = stats.median((r.get("metrics") or {}).get("lag_p99_us") for r in late)
                offered = stats.median((r.get("metrics") or {}).get("offered_rps") for r in late)
                out.append({"experiment": exp, "model": model, "param": param, "metric": "",
                            "unit": "", "n": 0, "median": None, "min": None, "max": None,
                            "spread_pct": None, "status": "skipped",
                            "flags": ";".join(sorted(set(flags) | {"beyond-generator"})),
                            "note": f"{BEYOND}: {offered:.0f} req/s offered, generator lag p99 "
                                    f"{(lag or 0) / 1000:.2f} ms in {len(late)} repetition(s)"
                            if offered else BEYOND})
                continue
            if late:
                note = (note + " | " if note else "") + \
                    f"{len(late)} repetition(s) {BEYOND}: left out"
                # The figure is the on-schedule repetitions': their flags, and that some were not.
                flags = sorted({f for r in recs for f in (r.get("flags") or [])} |
                               {"partly-beyond-generator"})
            status = "ok" if all(r.get("status") == "ok" for r in recs) else "partial"
        metrics = PEAK_METRICS if param == PEAK else METRICS.get(exp, ["rps", "p99_us"])
        for metric in metrics + dynamic_metrics(recs):
            vals = metric_values(recs, metric)
            if not vals:
                continue
            out.append(_row(exp, model, param, metric, vals, status, flags, note))
    for model, d in sorted(idle_slopes(runs).items()):
        for metric, got in d.items():
            reasons = sorted(set(got["reasons"]))
            if got["values"]:
                fl = ["not-measurable-in-some-reps"] if reasons else []
                out.append(_row("idle", model, "slope", metric, got["values"], "ok", fl,
                                " | ".join(reasons)))
            else:
                out.append({"experiment": "idle", "model": model, "param": "slope", "metric": metric,
                            "unit": UNITS.get(metric, ""), "n": 0, "median": None, "min": None,
                            "max": None, "spread_pct": None, "status": "skipped",
                            "flags": "not-measurable", "note": " | ".join(reasons)})
    for model, vals in sorted(blocking_ratios(runs).items()):
        out.append(_row("blocking", model, "impact", "p99_ratio", vals, "ok", [], ""))
    for (grp, case, arg), vals in sorted(micro_table(micro).items()):
        out.append(_row("micro", case, f"{grp}/{arg}" if arg else grp, "ns_per_op", vals, "ok", [], ""))
    return out


def to_csv(table: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in table:
        w.writerow({k: _fmt(r.get(k)) for k in COLUMNS})
    return buf.getvalue()


def read_csv(text: str) -> list[dict]:
    out = []
    for r in csv.DictReader(io.StringIO(text)):
        for k in ("median", "min", "max", "spread_pct"):
            r[k] = float(r[k]) if r.get(k) not in (None, "") else None
        r["n"] = int(r["n"]) if r.get("n") else 0
        out.append(r)
    return out


def lookup(table: list[dict], experiment: str, model: str, param, metric: str) -> dict | None:
    for r in table:
        if (r["experiment"] == experiment and r["model"] == model and str(r["param"]) == str(param)
                and r["metric"] == metric):
            return r
    return None
