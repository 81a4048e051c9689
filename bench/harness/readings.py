"""Two sentences per chart, generated from this run's numbers.

Nothing here states a result that the data did not produce: every sentence names the models
and values it read from the summary table (medians over repetitions), and a chart without data
says so.
"""
from __future__ import annotations

import math

from . import stats, summary
from .plan import LATENCY_CONNS, PEAK


# --- what limited a figure, and figures that failed their checks ---------------------------
# Shared by the charts (plots/plot.py) and the report, so both leave out the same figures.

LIMITS = ("server-bound", "client-bound", "latency-bound")   # docs/architecture.md §5, the flags column
LIMIT_TEXT = {
    "server-bound": "server-bound (the server used >= 95 % of the CPU it was given)",
    "client-bound": "client-bound (the load generator saturated while the server had room)",
    "latency-bound": "latency-bound (neither side saturated: round trips set the figure)",
    "mixed": "repetitions differ in what limited them",
    None: "what limited it was not recorded (older run)",
}
# Flags that mean a point is not data: it is drawn and tabled as such, never as a number.
# A figure some of whose repetitions were left out (summary.py) is still data when at least
# this many remain; the report says how many.
PARTIAL_FLAGS = {"partly-beyond-generator", "not-measurable-in-some-reps"}
MIN_REPS_PARTIAL = 2

NOT_DATA_FLAGS = {
    "beyond-generator": "not offered on schedule: beyond what one generator core can offer here",
    "not-on-schedule": "not offered on schedule by the generator",
    "generator-limited": "not offered on schedule: the generator fell behind its own schedule",
    "not-measurable": "not measurable",
}
# A latency figure is data only when its load was offered on schedule.
SCHEDULE_EXPERIMENTS = {"latency", "blocking"}
R2_MIN = 0.9          # docs/architecture.md §5: a memory slope fitted with r² below this is not measurable
MIN_IDLE_COUNTS = 3   # ... and so is one over fewer idle counts


def flag_list(flags) -> list[str]:
    if not flags:
        return []
    if isinstance(flags, str):
        return [f for f in flags.split(";") if f]
    return [str(f) for f in flags]


def limit_from_flags(flags) -> str | None:
    """One limit from a flags cell (a union over repetitions): 'mixed' when they differ."""
    found = [lim for lim in LIMITS if lim in flag_list(flags)]
    if not found:
        return None
    return found[0] if len(found) == 1 else "mixed"


def point_limits(runs) -> dict[tuple, str | None]:
    """(experiment, model, str(param)) -> what limited the point over its repetitions: the
    majority of the repetitions' limits; a tie goes to the weaker claim (client- before
    latency- before server-bound), so a headline is never called server-bound by a coin flip."""
    votes: dict[tuple, list[str]] = {}
    for r in summary.ok_records(runs):
        key = (r["experiment"], r["model"], _pkey(r["param"]))
        lim = r.get("limited_by")
        if lim not in LIMITS:
            lim = limit_from_flags(r.get("flags"))
        votes.setdefault(key, [])
        if lim in LIMITS:
            votes[key].append(lim)
    out = {}
    for key, vs in votes.items():
        if not vs:
            out[key] = None
            continue
        top = max(vs.count(v) for v in set(vs))
        out[key] = next(v for v in ("client-bound", "latency-bound", "server-bound")
                        if vs.count(v) == top)
    return out


def _pkey(param) -> str:
    if isinstance(param, float) and param.is_integer():
        return str(int(param))
    return str(param)


def not_data_reason(row: dict | None, experiment: str | None = None) -> str | None:
    """Why a summary row's figure is not data (None when it is): a not-measurable slope, a load
    not offered on schedule (latency experiments), a missing median."""
    if row is None:
        return "not measured"
    exp = experiment or row.get("experiment")
    flags = flag_list(row.get("flags"))
    note = row.get("note") or ""
    partial = PARTIAL_FLAGS & set(flags)
    if partial and row.get("median") is not None:
        # Some repetitions were not data (beyond the generator, a slope over too few counts):
        # the figure stands on the others when at least MIN_REPS_PARTIAL of them remain.
        if int(row.get("n") or 0) < MIN_REPS_PARTIAL:
            return (f"only {int(row.get('n') or 0)} repetition(s) are data "
                    f"({next(iter(partial))}: {note[:120]})")
        note = ""
    for f, why in NOT_DATA_FLAGS.items():
        if f in flags and (f == "not-measurable" or exp in SCHEDULE_EXPERIMENTS):
            # The harness's own reason (e.g. "r2 0.42 < 0.9", the offered rate) when it gave one.
            return why + (f" ({note[:160]})" if note and f == "not-measurable" else "")
    if "not measurable" in note.lower() or "not-measurable" in note.lower():
        return "not measurable" + (f" ({row['note']})" if len(row["note"]) < 120 else "")
    if row.get("status") in ("skipped", "failed"):
        return row["status"] + (f": {row['note'][:100]}" if row.get("note") else "")
    if row.get("median") is None:
        return "no value"
    return None


def row_or_status(table, experiment: str, model: str, param, metric: str) -> dict | None:
    """The summary row of a figure, or, when there is none, the row that says why (a point
    whose every repetition was skipped, failed, or not offered on schedule has no metric)."""
    r = summary.lookup(table, experiment, model, param, metric)
    if r is not None:
        return r
    return next((x for x in table if x["experiment"] == experiment and x["model"] == model
                 and str(x["param"]) == str(param) and not x.get("metric")), None)


def slope_check(table, runs, model: str, metric: str = "pss_slope_kib_per_conn"):
    """(row, reason): the memory-per-idle-connection row and why it is not a number, if so.
    Beside the harness's own verdict (flags, note), the fit is checked against docs/architecture.md §5 here
    too, so an older run (or a slope over noise) is never shown as a number: at least three
    idle counts, r² >= 0.9 in the median repetition, and not negative."""
    row = summary.lookup(table, "idle", model, "slope", metric)
    why = not_data_reason(row, "idle")
    if why:
        return row, why
    if row["median"] < 0:
        return row, f"not measurable (negative slope {row['median']:.2f} KiB: a fit over noise)"
    fits = _idle_fits(runs, model, _FIT_ON.get(metric, _SLOPE_MEMORY))
    if fits is not None:
        counts, r2 = fits
        if counts < MIN_IDLE_COUNTS:
            return row, f"not measurable (fitted over {counts} idle count(s), fewer than {MIN_IDLE_COUNTS})"
        if r2 is not None and r2 < R2_MIN:
            return row, f"not measurable (r² {r2:.2f} < {R2_MIN})"
    return row, None


def blocking_ratios(runs, model: str) -> list[float]:
    """Per repetition: the fast requests' p99 beside slow requests / alone, from the points
    that are data (both on schedule)."""
    by: dict = {}
    for r in summary.ok_records(runs):
        if r["experiment"] != "blocking" or r["model"] != model or _num(r["param"]) is None:
            continue
        if any(f in flag_list(r.get("flags")) for f in NOT_DATA_FLAGS):
            continue
        p99 = (r.get("metrics") or {}).get("p99_us")
        if p99:
            by.setdefault(r.get("rep", 0), {})[float(r["param"])] = p99
    out = []
    for d in by.values():
        withs = [v for k, v in d.items() if k > 0]
        if d.get(0.0) and withs:
            out.append(max(withs) / d[0.0])
    return out


def blocking_verdict(table, runs, model: str) -> str | None:
    """'hurt' when the fast p99 at least doubled in EVERY repetition, 'held' when it did not
    in some repetition, None without a repetition that has both points as data."""
    ratios = blocking_ratios(runs, model)
    if not ratios:
        return None
    return "hurt" if all(x >= 2 for x in ratios) else "held"


# The memory a slope is fitted on, newest name first (docs/architecture.md §5: Pss_Anon + Pss_Shmem).
_SLOPE_MEMORY = ("model_kib", "pss_anon_shmem_kib", "pss_anon_kib", "pss_kib")


# The per-point metric each slope is fitted on (for the r² check).
_FIT_ON = {"tcp_mem_slope_kib_per_conn": ("tcp_mem_kib",), "pss_total_slope_kib_per_conn": ("pss_kib",)}


def _idle_fits(runs, model: str, keys=_SLOPE_MEMORY):
    """(idle counts per repetition, median r²) of the per-repetition fits, or None without
    idle records."""
    per: dict = {}
    for r in summary.ok_records(runs):
        if r["experiment"] != "idle" or r["model"] != model or _num(r["param"]) is None:
            continue
        m = r.get("metrics") or {}
        key = next((k for k in keys if m.get(k) is not None), None)
        if key:
            per.setdefault(r.get("rep", 0), []).append((float(r["param"]), float(m[key])))
    if not per:
        return None
    counts = min(len({x for x, _ in pts}) for pts in per.values())
    r2s = [fit[2] for pts in per.values()
           if (fit := stats.linear_fit([x for x, _ in pts], [y for _, y in pts]))]
    return counts, stats.median(r2s)


# --- formatting ------------------------------------------------------------------------------

def rps(v: float) -> str:
    return f"{v / 1000:.1f}k req/s" if v >= 10000 else f"{v:,.0f} req/s"


def ms(us: float) -> str:
    v = us / 1000.0
    if v >= 100:
        return f"{v:,.0f} ms"
    if v >= 10:
        return f"{v:.1f} ms"
    return f"{v:.2f} ms"


def ns(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.2f} ms"
    if v >= 1e3:
        return f"{v / 1e3:.1f} us"
    return f"{v:.0f} ns"


def times(r: float) -> str:
    return f"{r:.1f}x" if r < 10 else f"{r:.0f}x"


def pct_change(a: float, b: float) -> str:
    return f"{(b - a) / a * 100:+.0f} %" if a else "n/a"


def size(b: float) -> str:
    if b >= 1048576:
        return f"{b / 1048576:g} MiB"
    if b >= 1024:
        return f"{b / 1024:g} KiB"
    return f"{b:g} B"


def _num(p):
    try:
        return float(p)
    except (TypeError, ValueError):
        return None


def _by_model(table, experiment, metric, param=None) -> dict[str, float]:
    """model -> median, from the summary rows that are data (a point not offered on schedule,
    or a figure that failed its checks, is left out of every sentence as of every chart)."""
    return {r["model"]: r["median"] for r in table
            if r["experiment"] == experiment and r["metric"] == metric and r["median"] is not None
            and (param is None or str(r["param"]) == str(param))
            and not_data_reason(r, experiment) is None}


def _params(table, experiment, metric) -> list[float]:
    return sorted({_num(r["param"]) for r in table if r["experiment"] == experiment
                   and r["metric"] == metric and r["median"] is not None
                   and _num(r["param"]) is not None})


def poss(model: str) -> str:
    """threads -> threads', epoll -> epoll's."""
    return f"{model}'" if model.endswith("s") else f"{model}'s"


def _pstr(p: float) -> str:
    """A parameter as the summary keys it: 1048576.0 -> '1048576' (not '1.04858e+06', which
    matched no row and left the payload reading with an empty sequence)."""
    return str(int(p)) if float(p).is_integer() else f"{p}"


class NoData(Exception):
    """A reading whose figures are missing: reading() turns it into a sentence saying so."""


def _extremes(d: dict[str, float]):
    if not d:
        raise NoData("No figures to compare in this run (every point missing or left out).")
    lo = min(d, key=d.get)
    hi = max(d, key=d.get)
    return lo, hi


def no_data(experiment: str, table=None) -> str:
    """The sentence for a chart without figures: whether the experiment is absent, or present
    with every point left out (not offered on schedule, failed checks, skipped, failed)."""
    exps = [e.strip("'") for e in experiment.split("' or '")]
    rows = [r for r in (table or []) if r["experiment"] in exps]
    if rows:
        why = sorted({w.split(":")[0] for r in rows if (w := not_data_reason(r))})
        return (f"No figures to read: every point of the '{experiment}' experiment in this run was "
                f"left out ({'; '.join(why) or 'no usable value'}).")
    return f"No data: this run did not include the '{experiment}' experiment (or every point of it failed)."


# --- one function per chart -------------------------------------------------------------------

def scale_throughput(table, runs) -> str:
    ps = _params(table, "scale", "rps")
    if not ps:
        return no_data("scale", table)
    mid = LATENCY_CONNS if LATENCY_CONNS in ps else ps[len(ps) // 2]
    d = _by_model(table, "scale", "rps", _pstr(mid))
    lo, hi = _extremes(d)
    s1 = (f"At {_pstr(mid)} connections {hi} served the most requests ({rps(d[hi])}) and {lo} the "
          f"fewest ({rps(d[lo])}), {times(d[hi] / d[lo]) if d[lo] else 'n/a'} apart.")
    a, b = ps[0], ps[-1]
    if a == b:
        return s1 + " Only one connection count was measured, so no trend can be read."
    da = _by_model(table, "scale", "rps", _pstr(a))
    db = _by_model(table, "scale", "rps", _pstr(b))
    both = {m: (db[m] - da[m]) / da[m] for m in da if m in db and da[m]}
    if not both:
        return s1
    worst = min(both, key=both.get)
    best = max(both, key=both.get)
    missing = sorted(set(da) - set(db))
    tail = f" ({', '.join(missing)} did not run at {_pstr(b)})" if missing else ""
    return (s1 + f" From {_pstr(a)} to {_pstr(b)} connections {poss(worst)} throughput changed by "
            f"{both[worst] * 100:+.0f} % and {poss(best)} by {both[best] * 100:+.0f} %{tail}.")


def scale_p99(table, runs) -> str:
    ps = _params(table, "scale", "p99_us")
    if not ps:
        return no_data("scale", table)
    top = ps[-1]
    d = _by_model(table, "scale", "p99_us", _pstr(top))
    lo, hi = _extremes(d)
    s1 = (f"At {_pstr(top)} connections the lowest p99 was {poss(lo)} ({ms(d[lo])}) and the highest "
          f"{poss(hi)} ({ms(d[hi])}).")
    first = _by_model(table, "scale", "p99_us", _pstr(ps[0]))
    growth = {m: d[m] / first[m] for m in d if m in first and first[m]}
    if len(ps) < 2 or not growth:
        return s1
    g_hi = max(growth, key=growth.get)
    g_lo = min(growth, key=growth.get)
    return (s1 + f" From {_pstr(ps[0])} to {_pstr(top)} connections p99 grew {times(growth[g_hi])} "
            f"for {g_hi} and {times(growth[g_lo])} for {g_lo}.")


def idle_memory(table, runs) -> str:
    models = sorted({r["model"] for r in table if r["experiment"] == "idle"})
    if not models:
        return no_data("idle", table)
    slopes, left_out = {}, []
    for m in models:
        row, why = slope_check(table, runs, m)
        if why is None:
            slopes[m] = row["median"]
        elif why != "not measured":
            left_out.append(m)
    if not slopes:
        return ("No memory slope passed its checks (at least three idle counts, r² >= 0.9): "
                + (", ".join(left_out) or "none") + " not measurable.")
    lo, hi = _extremes(slopes)
    s1 = (f"Each idle connection added {slopes[hi]:.3g} KiB of server memory for {hi} and "
          f"{slopes[lo]:.2g} KiB for {lo} (least-squares slope over the idle counts, median of the "
          f"repetitions).")
    if left_out:
        s1 += f" Not measurable (no number shown): {', '.join(left_out)}."
    ps = _params(table, "idle", "rps")
    if ps:
        top = _by_model(table, "idle", "rps", _pstr(ps[-1]))
        zero = _by_model(table, "idle", "rps", _pstr(ps[0]))
        kept = {m: top[m] / zero[m] for m in top if zero.get(m)}
        if kept:
            a, b = _extremes(kept)
            s1 += (f" With {_pstr(ps[-1])} idle connections held, the active clients kept "
                   f"{kept[b] * 100:.0f} % of their throughput on {b} and {kept[a] * 100:.0f} % on {a}.")
    return s1


def idle_active(table, runs) -> str:
    ps = _params(table, "idle", "rps")
    if len(ps) < 2:
        return no_data("idle", table) if not ps else "Only one idle count was measured: no trend to read."
    zero = _by_model(table, "idle", "rps", _pstr(ps[0]))
    top_p = ps[-1]
    top = _by_model(table, "idle", "rps", _pstr(top_p))
    kept = {m: top[m] / zero[m] for m in top if zero.get(m)}
    lo, hi = _extremes(kept)
    missing = sorted(set(zero) - set(top))
    s = (f"With {_pstr(top_p)} idle connections held, the active clients' throughput was "
         f"{kept[lo] * 100:.0f} % of its value at {_pstr(ps[0])} for {lo} ({rps(zero[lo])} -> "
         f"{rps(top[lo])}) and {kept[hi] * 100:.0f} % for {hi}.")
    if missing:
        s += f" Not measured at {_pstr(top_p)} idle connections: {', '.join(missing)}"
        s += " (select cannot watch fds >= FD_SETSIZE, 1024)." if "select" in missing else "."
    return s


def latency_knee(table, runs) -> str:
    # Only loads offered on schedule are data (_by_model leaves the others out).
    ps = [p for p in _params(table, "latency", "p99_us")
          if _by_model(table, "latency", "p99_us", _pstr(p))]
    if not ps:
        # The merged summary writes a point not offered on schedule as a `skipped` row without
        # a metric (flag beyond-generator), so look at the rows' flags, not only at p99_us rows.
        late = [r for r in (table or []) if r["experiment"] == "latency"
                and (not_data_reason(r, "latency") or "").startswith("not offered on schedule")]
        if not late and not _params(table, "latency", "p99_us"):
            return no_data("latency", table)
        return "No latency point was offered on schedule by the generator in this run: nothing to read."
    below = [p for p in ps if p <= 80]
    ref = below[-1] if below else ps[0]
    d = _by_model(table, "latency", "p99_us", _pstr(ref))
    lo, hi = _extremes(d)
    s1 = (f"At {_pstr(ref)} % of its own peak rate {lo} had the lowest coordinated-omission-corrected "
          f"p99 ({ms(d[lo])}) and {hi} the highest ({ms(d[hi])}).")
    # Which models this machine could not offer that load to on schedule (not data, not drawn).
    beyond = summary_order({r["model"] for r in table if r["experiment"] == "latency"
                            and r["metric"] == "p99_us" and str(r["param"]) == _pstr(ref)
                            and not_data_reason(r, "latency")})
    if beyond:
        s1 += (f" Not offered on schedule at {_pstr(ref)} % (beyond what one generator core can "
               f"offer here, so not drawn): {', '.join(beyond)}.")
    top = ps[-1]
    if top == ref:
        return s1
    dt = _by_model(table, "latency", "p99_us", _pstr(top))
    ratio = {m: dt[m] / d[m] for m in dt if m in d and d[m]}
    if not ratio:
        return s1
    a, b = _extremes(dt)
    return (s1 + f" At {_pstr(top)} % the p99 ranged from {ms(dt[a])} ({a}) to {ms(dt[b])} ({b}), "
            f"{times(min(ratio.values()))} to {times(max(ratio.values()))} the value at {_pstr(ref)} %.")


def _histograms_at(runs, conns):
    by: dict[str, list] = {}
    for r in summary.ok_records(runs):
        if r["experiment"] == "scale" and str(r["param"]) == str(conns):
            h = ((r.get("loadgen") or {}).get("histogram") or {}).get("buckets")
            if h:
                by.setdefault(r["model"], []).append(h)
    return {m: stats.merge_buckets(v) for m, v in by.items()}


def latency_distribution(table, runs) -> str:
    """The lowest and highest p99.9 are the summary table's medians over repetitions (the
    figures the tables show), not a value pooled over the merged histograms."""
    p999 = _by_model(table, "scale", "p999_us", str(LATENCY_CONNS))
    p50 = _by_model(table, "scale", "p50_us", str(LATENCY_CONNS))
    if not p999:
        return no_data("scale", table) + f" (needs {LATENCY_CONNS} connections)"
    lo, hi = _extremes(p999)
    s = (f"At {LATENCY_CONNS} connections {lo} had the lowest p99.9 ({ms(p999[lo])}, median of the "
         f"repetitions) and {hi} the highest ({ms(p999[hi])}).")
    tail = {m: p999[m] / p50[m] for m in p999 if p50.get(m)}
    if tail:
        t_lo, t_hi = _extremes(tail)
        s += (f" The tail above the median was flattest for {t_lo} (p99.9 = {tail[t_lo]:.1f}x p50) "
              f"and steepest for {t_hi} ({tail[t_hi]:.1f}x p50).")
    return s


def blocking(table, runs) -> str:
    """Ratios of the medians the table shows; "at least doubled" only for a model whose ratio
    was >= 2 in every repetition (defect 9)."""
    base = _by_model(table, "blocking", "p99_us", "0")
    withs: dict[str, float] = {}
    for r in table:
        if (r["experiment"] == "blocking" and r["metric"] == "p99_us" and (_num(r["param"]) or 0) > 0
                and r["median"] is not None and not_data_reason(r, "blocking") is None):
            withs[r["model"]] = max(withs.get(r["model"], 0.0), r["median"])
    ratio = {m: withs[m] / base[m] for m in withs if base.get(m)}
    if not ratio:
        return no_data("blocking", table)
    lo, hi = _extremes(ratio)
    s1 = (f"With 1 % of requests sleeping 1 ms in the handler, the fast requests' median p99 went "
          f"from {ms(base[hi])} to {ms(withs[hi])} for {hi} ({times(ratio[hi])}) and from "
          f"{ms(base[lo])} to {ms(withs[lo])} for {lo} ({times(ratio[lo])}).")
    verdicts = {m: blocking_verdict(table, runs, m) for m in ratio}
    hurt = [m for m in summary_order(ratio) if verdicts[m] == "hurt"]
    held = [m for m in summary_order(ratio) if verdicts[m] == "held"]
    s2 = (f" p99 at least doubled in every repetition for {', '.join(hurt) or 'no model'}; "
          f"it stayed below 2x in at least one repetition for {', '.join(held) or 'no model'}.")
    return s1 + s2


def summary_order(models) -> list[str]:
    from .registry import NAMES
    return [m for m in NAMES if m in models] + sorted(m for m in models if m not in NAMES)


def cpu_per_request(table, runs) -> str:
    ka = _by_model(table, "scale", "cpu_us_per_req", str(LATENCY_CONNS))
    ch = _by_model(table, "churn", "cpu_us_per_req")
    if not ka and not ch:
        return no_data("scale' or 'churn", table)
    out = []
    if ka:
        lo, hi = _extremes(ka)
        out.append(f"With {LATENCY_CONNS} keep-alive connections {lo} used the least server CPU per "
                   f"request ({ka[lo]:.1f} us) and {hi} the most ({ka[hi]:.1f} us).")
    if ch:
        lo, hi = _extremes(ch)
        cs = _by_model(table, "churn", "ctxsw_per_req")
        extra = f", {cs[hi]:.1f} context switches per request" if hi in cs else ""
        out.append(f"With a new connection per request the cost ranged from {ch[lo]:.1f} us ({lo}) "
                   f"to {ch[hi]:.1f} us ({hi}{extra}).")
    return " ".join(out)


def churn(table, runs) -> str:
    d = _by_model(table, "churn", "rps")
    if not d:
        return no_data("churn", table)
    lo, hi = _extremes(d)
    cpu = _by_model(table, "churn", "cpu_us_per_req")
    s2 = ""
    if cpu:
        a, b = _extremes(cpu)
        s2 = f" Server CPU per connection ranged from {cpu[a]:.1f} us ({a}) to {cpu[b]:.1f} us ({b})."
    return (f"{hi} completed the most one-request connections ({d[hi]:,.0f}/s) and {lo} the fewest "
            f"({d[lo]:,.0f}/s), {times(d[hi] / d[lo]) if d[lo] else 'n/a'} apart." + s2)


def cpu_bound(table, runs) -> str:
    d = _by_model(table, "cpu", "rps")
    if not d:
        return no_data("cpu", table)
    ps = _params(table, "cpu", "rps")
    us = ps[0] if ps else 100
    ceiling = 1e6 / us
    lo, hi = _extremes(d)
    p99 = _by_model(table, "cpu", "p99_us")
    s2 = ""
    if p99:
        a, b = _extremes(p99)
        s2 = f" p99 ranged from {ms(p99[a])} ({a}) to {ms(p99[b])} ({b})."
    return (f"With {us:g} us of CPU per request, throughput ranged from {rps(d[lo])} ({lo}) to "
            f"{rps(d[hi])} ({hi}), {d[hi] / ceiling * 100:.0f} % of the {ceiling:,.0f} req/s "
            f"one core could do with no overhead at all." + s2)


def payload(table, runs) -> str:
    ps = [p for p in _params(table, "payload", "payload_mb_s")
          if _by_model(table, "payload", "payload_mb_s", _pstr(p))]
    if not ps:
        return no_data("payload", table)
    top = _by_model(table, "payload", "payload_mb_s", _pstr(ps[-1]))
    lo, hi = _extremes(top)
    s1 = (f"At {size(ps[-1])} per response {hi} delivered the most ({top[hi]:,.0f} MB/s) and {lo} "
          f"the least ({top[lo]:,.0f} MB/s).")
    if len(ps) < 2:
        return s1
    bottom = _by_model(table, "payload", "payload_mb_s", _pstr(ps[0]))
    if hi in bottom and bottom[hi]:
        return s1 + (f" From {size(ps[0])} to {size(ps[-1])} {poss(hi)} byte rate grew "
                     f"{times(top[hi] / bottom[hi])}: small responses are bound by per-request costs, "
                     f"large ones by copying.")
    return s1


def slowloris(table, runs) -> str:
    d = _by_model(table, "slowloris", "p99_us")
    if not d:
        return no_data("slowloris", table)
    lo, hi = _extremes(d)
    alive = _by_model(table, "slowloris", "slow_alive")
    clients = _params(table, "slowloris", "p99_us")
    n = int(clients[0]) if clients else 500
    kept = sorted(m for m, v in alive.items() if v >= n)
    s1 = (f"With {n} slow clients connected, the 10 normal clients saw a p99 of {ms(d[lo])} on "
          f"{lo} and {ms(d[hi])} on {hi}.")
    base = _by_model(table, "scale", "p99_us", "10")
    if base:
        ratio = {m: d[m] / base[m] for m in d if base.get(m)}
        if ratio:
            a, b = _extremes(ratio)
            s1 += (f" Against the same 10 clients without slow ones, p99 changed {times(ratio[a])} "
                   f"({a}) to {times(ratio[b])} ({b}).")
    return s1 + (f" {len(kept)} of {len(d)} models still held all {n} slow connections at the end"
                 + (f" ({', '.join(kept)})." if kept and len(kept) < len(d) else "."))


def _micro(table, group, case, arg=None):
    for r in table:
        if r["experiment"] == "micro" and r["model"] == case and r["median"] is not None:
            p = str(r["param"])
            if p == (f"{group}/{arg}" if arg is not None else group) or \
                    (arg is None and p.startswith(group)):
                return r["median"]
    return None


def micro_readiness(table, runs) -> str:
    series = {}
    for r in table:
        if r["experiment"] == "micro" and str(r["param"]).startswith("wait/") and r["median"]:
            series.setdefault(r["model"], {})[_num(str(r["param"]).split("/")[1])] = r["median"]
    if not series:
        return no_data("micro", table)
    common = sorted(set.intersection(*(set(v) for v in series.values())))
    at = common[-1] if common else None
    s1 = ""
    if at is not None:
        s1 = (f"With one ready fd among {at:g}, one wait took "
              + ", ".join(f"{ns(series[m][at])} with {m}" for m in sorted(series)) + ".")
    growth = []
    for m, pts in sorted(series.items()):
        xs = sorted(pts)
        if len(xs) >= 2 and pts[xs[0]]:
            growth.append(f"{m} {times(pts[xs[-1]] / pts[xs[0]])} (from {xs[0]:g} to {xs[-1]:g} fds)")
    return (s1 + " The cost grew " + "; ".join(growth) + ".") if growth else s1


def micro_costs(table, runs) -> str:
    fork = _micro(table, "spawn", "fork_wait")
    thread = _micro(table, "spawn", "thread_create_join")
    parse = _micro(table, "parse", "minimal")
    if fork is None and thread is None and parse is None:
        return no_data("micro", table)
    parts = []
    if fork is not None and thread is not None:
        parts.append(f"fork + exit + wait took {ns(fork)} and thread create + join {ns(thread)}, "
                     f"{times(fork / thread)} apart.")
    elif fork is not None or thread is not None:
        parts.append(f"Spawning took {ns(fork or thread)}.")
    if parse is not None:
        rec = _micro(table, "histogram", "record")
        s = f"Parsing a minimal request took {ns(parse)}"
        if fork is not None:
            s += f", so one fork costs as much as parsing {fork / parse:,.0f} requests"
        if rec is not None:
            s += f"; recording one latency in the histogram took {ns(rec)}"
        parts.append(s + ".")
    return " ".join(parts)


def syscalls(table, runs) -> str:
    per = _by_model(table, "scale", "syscalls_per_req", str(LATENCY_CONNS))
    if not per:
        per = {r["model"]: (r.get("metrics") or {}).get("syscalls_per_req") for r in summary.ok_records(runs)
               if r["experiment"] == "scale" and str(r["param"]) == str(LATENCY_CONNS)
               and (r.get("metrics") or {}).get("syscalls_per_req") is not None}
    if not per:
        return ("No system-call counts in this run (perf with kernel tracepoints needs root; "
                "each point records why it was not counted).")
    lo, hi = _extremes(per)
    s = (f"With {LATENCY_CONNS} keep-alive connections one request cost {per[lo]:.2g} system calls on "
         f"{lo} and {per[hi]:.2g} on {hi}.")
    cs = _by_model(table, "scale", "ctxsw_per_req", str(LATENCY_CONNS))
    if cs:
        a, b = _extremes(cs)
        s += f" Context switches per request ranged from {cs[a]:.2g} ({a}) to {cs[b]:.2g} ({b})."
    return s


READINGS = {
    "scale_throughput": scale_throughput, "scale_p99": scale_p99, "idle_memory": idle_memory,
    "idle_active": idle_active, "syscalls": syscalls,
    "latency_knee": latency_knee, "latency_distribution": latency_distribution,
    "blocking": blocking, "cpu_per_request": cpu_per_request, "churn": churn,
    "cpu_bound": cpu_bound, "payload": payload, "slowloris": slowloris,
    "micro_readiness": micro_readiness, "micro_costs": micro_costs,
}


def reading(chart: str, table, runs) -> str:
    fn = READINGS.get(chart)
    if fn is None:
        return ""
    try:
        return fn(table, runs)
    except NoData as e:
        return str(e)
    except (ValueError, ZeroDivisionError, KeyError, TypeError, IndexError) as e:
        # Never a crash, and never silence: say which reading could not be computed.
        return f"No reading: the figures it needs are incomplete in this run ({type(e).__name__}: {e})."


# Used by report tables: "median [min-max]".
def cell(row: dict | None, scale: float = 1.0, fmt: str = "{:,.0f}") -> str:
    if not row or row.get("median") is None:
        return "-"
    med = fmt.format(row["median"] * scale)
    if row.get("n", 0) > 1 and row.get("min") is not None:
        return f"{med} [{fmt.format(row['min'] * scale)}-{fmt.format(row['max'] * scale)}]"
    return med


def is_finite(v) -> bool:
    return v is not None and not (isinstance(v, float) and math.isnan(v))


__all__ = ["READINGS", "reading", "cell", "PEAK"]
