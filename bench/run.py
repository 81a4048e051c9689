#!/usr/bin/python3
"""cmbench harness: runs the experiments of docs/architecture.md §5 for every model and writes a results
folder (meta.json, runs.jsonl, summary.csv, micro.json, charts/, report.md).

    /usr/bin/python3 bench/run.py --preset quick|default|full [--models epoll,threads]
        [--experiments scale,idle] [--reps N] [--resume DIR] [--out DIR]

Interrupt it with Ctrl-C at any time: the folder stays valid, and --resume DIR continues it,
skipping the points already recorded.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from harness import cgroup as cgroupmod  # noqa: E402
from harness import meta as metamod  # noqa: E402
from harness import micro as micromod  # noqa: E402
from harness import plan as planmod  # noqa: E402
from harness import points, registry, store, summary  # noqa: E402
from harness.plan import EXPERIMENTS, PEAK, PRESETS  # noqa: E402


def cpu_list(text: str) -> list[int]:
    """'0', '0-1', '2,3', '0-1,4' -> sorted CPU numbers (the kernel's cpulist format)."""
    out: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if not part:
                continue
            lo, _, hi = part.partition("-")
            a, b = int(lo), int(hi) if hi else int(lo)
            if a < 0 or b < a:
                raise ValueError
            out.update(range(a, b + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad CPU list {text!r} (want e.g. 0, 0-1, 2,3)")
    if not out:
        raise argparse.ArgumentTypeError("empty CPU list")
    return sorted(out)


def cpu_cap(text: str) -> tuple[int, int] | None:
    """'1000/2500' -> (quota_us, period_us); 'off' -> None."""
    if text in ("off", "none", "0"):
        return None
    q, sep, p = text.partition("/")
    try:
        quota, period = int(q), int(p) if sep else cgroupmod.DEFAULT_PERIOD_US
    except ValueError:
        raise argparse.ArgumentTypeError(f"bad --cpu-cap {text!r} (want QUOTA_US/PERIOD_US or off)")
    if quota < cgroupmod.MIN_QUOTA_US or period < quota // 64 or period <= 0:
        raise argparse.ArgumentTypeError(f"--cpu-cap quota must be >= {cgroupmod.MIN_QUOTA_US} us "
                                         f"(cgroup v1's minimum), got {text!r}")
    return quota, period


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", choices=sorted(PRESETS), default="default")
    ap.add_argument("--quick", action="store_true", help="same as --preset quick")
    ap.add_argument("--models", help="comma list of models and/or groups "
                    f"({', '.join(registry.GROUPS)}); default: every model of servers/models.txt")
    ap.add_argument("--experiments", help=f"comma list (default: {','.join(EXPERIMENTS)})")
    ap.add_argument("--reps", type=int, help="repetitions (default: the preset's)")
    ap.add_argument("--resume", metavar="DIR", help="continue an interrupted run in DIR")
    ap.add_argument("--out", metavar="DIR", help="results folder (default results/<UTC time>-<host>)")
    ap.add_argument("--bin-dir", default=str(REPO / "build" / "bin"))
    ap.add_argument("--server-cpus", "--server-cpu", dest="server_cpus", type=cpu_list, default=[0],
                    help="CPUs the server is pinned to (e.g. 0, 0-1, 2,3; default 0)")
    ap.add_argument("--client-cpus", "--client-cpu", dest="client_cpus", type=cpu_list, default=[1],
                    help="CPUs of the load generator (one thread each) and the harness (default 1)")
    ap.add_argument("--cpu-cap", type=cpu_cap, default=(cgroupmod.DEFAULT_QUOTA_US, cgroupmod.DEFAULT_PERIOD_US),
                    metavar="QUOTA/PERIOD",
                    help="cgroup CPU cap of the server in throughput experiments, in us per period "
                         "and per server CPU (default 1000/2500 = 40 %%); 'off' runs uncapped")
    ap.add_argument("--duration", type=float, help="measured seconds per point (default: preset)")
    ap.add_argument("--warmup", type=float, help="warm-up seconds per point (default: preset)")
    ap.add_argument("--points", action="append", default=[], metavar="EXP=a,b",
                    help="override one experiment's parameters, e.g. scale=1,10 (repeatable)")
    ap.add_argument("--micro-min-time", type=float, help="Google Benchmark min time per case (s)")
    ap.add_argument("--micro-filter", help="Google Benchmark --benchmark_filter regex")
    ap.add_argument("--no-charts", action="store_true", help="skip charts and report at the end")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and its time, run nothing")
    args = ap.parse_args(argv)
    if args.quick:
        args.preset = "quick"
    return args


def _csv(text: str | None, allowed: list[str], what: str) -> list[str]:
    if not text:
        return list(allowed)
    items = [x.strip() for x in text.split(",") if x.strip()]
    bad = [x for x in items if what == "experiment" and x not in allowed]
    if bad:
        raise SystemExit(f"run.py: unknown {what}(s): {', '.join(bad)} (choose from {', '.join(allowed)})")
    return items


def _parse_points(specs: list[str]) -> dict[str, list]:
    out = {}
    for spec in specs:
        exp, _, values = spec.partition("=")
        if exp not in planmod.LOAD_EXPERIMENTS or not values:
            raise SystemExit(f"run.py: bad --points {spec!r} (want EXP=a,b with EXP one of "
                             f"{', '.join(planmod.LOAD_EXPERIMENTS)})")
        try:
            out[exp] = [int(v) for v in values.split(",")]
        except ValueError:
            raise SystemExit(f"run.py: --points values must be integers: {spec!r}")
    return out


def repo_relative(path: Path) -> str:
    """A path inside the checkout as relative to it (results carry no absolute paths into the
    checkout they were made in, issue 7 item 8); a path outside it stays absolute."""
    p = path.resolve()
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


def select_models(text: str | None, bin_dir: Path) -> list[str]:
    """Models and groups of the registry (servers/models.txt) in registry order; a name the
    registry does not list is accepted only when its binary exists (a model being built, or a
    test's stand-in), and comes after the registry's."""
    items = [x.strip() for x in (text or "").split(",") if x.strip()]
    known = [x for x in items if x in registry.GROUPS or x in registry.BY_NAME]
    extra = [x for x in items if x not in known]
    unknown = [x for x in extra if not (bin_dir / f"server-{x}").exists()]
    if unknown:
        raise SystemExit(f"run.py: unknown model or group: {', '.join(unknown)} (groups: "
                         f"{', '.join(registry.GROUPS)}; models: {', '.join(registry.NAMES)})")
    models = registry.expand(known) if known or not extra else []
    return models + [x for x in extra if x not in models]


def settings_from_args(args) -> dict:
    """Everything that defines the plan, stored in meta.json so --resume rebuilds it."""
    preset = PRESETS[args.preset]
    pts = dict(preset.points)
    pts.update(_parse_points(args.points))
    models = select_models(args.models, Path(args.bin_dir))
    if set(args.server_cpus) & set(args.client_cpus):
        raise SystemExit(f"run.py: --server-cpus {args.server_cpus} and --client-cpus "
                         f"{args.client_cpus} overlap")
    cap = args.cpu_cap
    if cap is not None:   # per server CPU: N CPUs get N times the quota per period
        cap = (cap[0] * len(args.server_cpus), cap[1])
    return {
        "preset": args.preset,
        "models": models,
        "experiments": _csv(args.experiments, EXPERIMENTS, "experiment"),
        "reps": args.reps or preset.reps,
        "warmup_s": args.warmup if args.warmup is not None else preset.warmup_s,
        "duration_s": args.duration if args.duration is not None else preset.duration_s,
        "points": pts,
        "count_points": preset.count_points,
        "micro_min_time_s": args.micro_min_time or preset.micro_min_time_s,
        "micro_reps": preset.micro_reps if not args.reps else min(args.reps, preset.micro_reps),
        "micro_filter": args.micro_filter,
        "bin_dir": repo_relative(Path(args.bin_dir)),
        "server_cpus": args.server_cpus,
        "client_cpus": args.client_cpus,
        "server_cpu": args.server_cpus[0],   # the first of each, for readers of older runs
        "client_cpu": args.client_cpus[0],
        "cpu_cap": list(cap) if cap else None,
    }


def make_plan(s: dict) -> planmod.Plan:
    base = PRESETS[s["preset"]]
    preset = planmod.Preset(base.name, s["reps"], s["warmup_s"], s["duration_s"], s["points"],
                            s["micro_min_time_s"], s["micro_reps"], base.budget_s,
                            s.get("count_points", base.count_points))
    return planmod.build(preset, s["models"], s["experiments"], s["reps"])


def fmt_time(sec: float) -> str:
    sec = max(0, int(round(sec)))
    return f"{sec // 3600}:{sec // 60 % 60:02d}:{sec % 60:02d}" if sec >= 3600 else f"{sec // 60}:{sec % 60:02d}"


def brief(rec: dict) -> str:
    if rec["status"] != "ok":
        return f"{rec['status'].upper()}: {(rec.get('reason') or '')[:100]}"
    m = rec["metrics"]
    parts = [f"<{rec.get('limited_by') or 'limit unknown'}>"]
    if m.get("rps") is not None:
        parts.append(f"{m['rps'] / 1000:.1f}k req/s")
    if m.get("p99_us") is not None:
        parts.append(f"p99 {m['p99_us'] / 1000:.2f} ms")
    if m.get("cpu_us_per_req") is not None:
        parts.append(f"{m['cpu_us_per_req']:.1f} us CPU/req")
    if rec["experiment"] == "idle" and m.get("model_kib") is not None:
        parts.append(f"anon+shmem {m['model_kib'] / 1024:.1f} MiB")
    other = [f for f in rec.get("flags") or [] if f != rec.get("limited_by")]
    if other:
        parts.append("[" + ",".join(other) + "]")
    return "  ".join(parts)


class Progress:
    def __init__(self, plan: planmod.Plan, todo: list[planmod.Point], micro_todo: bool):
        self.total = len(plan.points) + (1 if micro_todo else 0)
        self.done_before = self.total - len(todo) - (1 if micro_todo else 0)
        self.preset = plan.preset
        self.est_left = sum(planmod.estimate_point_s(p, plan.preset) for p in todo) + \
            (planmod.estimate_micro_s(plan.preset) if micro_todo else 0)
        self.est_done = 0.0
        self.t0 = time.monotonic()
        self.n = self.done_before
        self.tty = sys.stdout.isatty()

    def eta(self) -> float:
        elapsed = time.monotonic() - self.t0
        ratio = elapsed / self.est_done if self.est_done > 1 else 1.0
        return self.est_left * min(max(ratio, 0.5), 3.0)

    def _bar(self) -> str:
        frac = self.n / self.total if self.total else 1.0
        filled = int(frac * 20)
        return f"[{'#' * filled}{'.' * (20 - filled)}] {self.n:>{len(str(self.total))}}/{self.total}"

    def begin(self, label: str) -> None:
        if self.tty:
            line = f"{self._bar()} {label}  elapsed {fmt_time(time.monotonic() - self.t0)}  ETA {fmt_time(self.eta())}"
            sys.stdout.write("\r\033[K" + line[:160])
            sys.stdout.flush()

    def end(self, label: str, est: float, result: str) -> None:
        self.n += 1
        self.est_left = max(0.0, self.est_left - est)
        self.est_done += est
        line = (f"{self._bar()} {label:<34} {result}  "
                f"(ETA {fmt_time(self.eta())})")
        sys.stdout.write(("\r\033[K" if self.tty else "") + line + "\n")
        sys.stdout.flush()


def finish(folder: store.RunFolder, plan_settings: dict, complete: bool, t_start: float,
           charts: bool) -> None:
    runs = folder.runs()
    micro = store.read_json(folder.path / store.MICRO)
    store.atomic_write_text(folder.path / store.SUMMARY, summary.to_csv(summary.rows(runs, micro)))
    m = folder.meta()
    m["complete"] = complete
    m["finished_utc"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    m["wall_s"] = round(m.get("wall_s_before_resume", 0) + time.monotonic() - t_start, 1)
    m["counts"] = {s: sum(1 for r in runs if r.get("status") == s) for s in ("ok", "skipped", "failed")}
    folder.write_meta(m)
    if not charts:
        return
    try:
        sys.path.insert(0, str(REPO / "plots"))
        import plot  # plots/plot.py
        written = plot.render(folder.path)
        print(f"charts: {len(written)} files in {folder.path / store.CHARTS}")
    except Exception as e:   # keep the data even if a chart breaks
        print(f"charts failed: {type(e).__name__}: {e}", file=sys.stderr)
    try:
        import report  # bench/report.py
        path = report.write(folder.path)
        print(f"report: {path}")
    except Exception as e:
        print(f"report failed: {type(e).__name__}: {e}", file=sys.stderr)


def _terminate(_signum, _frame):
    # SIGTERM stops the run like Ctrl-C: the current point cleans up, the folder stays valid.
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)

    if args.resume:
        folder = store.RunFolder(Path(args.resume))
        old = folder.meta()
        if not old.get("settings"):
            raise SystemExit(f"run.py: {args.resume} has no meta.json with settings; not a cmbench run folder")
        settings = old["settings"]
        print(f"resuming {folder.path} (its stored plan: preset {settings['preset']}, "
              f"{len(settings['models'])} models, {settings['reps']} reps; command-line selections ignored)")
    else:
        settings = settings_from_args(args)
        path = Path(args.out) if args.out else store.default_folder(REPO / "results")
        folder = store.RunFolder(path)
        old = None

    plan = make_plan(settings)
    bin_dir = REPO / settings["bin_dir"]   # relative to the checkout (an absolute path stays one)
    loadgen = bin_dir / "loadgen"
    server_cpus = settings.get("server_cpus") or [settings["server_cpu"]]
    client_cpus = settings.get("client_cpus") or [settings["client_cpu"]]
    cpus = os.sched_getaffinity(0)
    for c in server_cpus + client_cpus:
        if c not in cpus:
            raise SystemExit(f"run.py: CPU {c} is not available (have {sorted(cpus)})")
    micro_todo = "micro" in plan.experiments
    done = folder.completed() if args.resume else set()
    todo = [p for p in plan.points if p.key not in done]
    if args.resume and micro_todo and (folder.path / store.MICRO).exists():
        micro_todo = False

    est = sum(planmod.estimate_point_s(p, plan.preset) for p in todo) + \
        (planmod.estimate_micro_s(plan.preset) if micro_todo else 0) + \
        (planmod.CHARTS_S if not args.no_charts else 0)
    budget = PRESETS[settings["preset"]].budget_s if settings["preset"] in PRESETS else None
    print(f"cmbench: {len(plan.models)} models x {len(plan.experiments)} experiments, "
          f"{len(plan.points)} points ({len(todo)} to run), {plan.reps} rep(s), "
          f"warm-up {plan.preset.warmup_s:g} s + {plan.preset.duration_s:g} s per point; "
          f"planned time {fmt_time(est)}" + (f" (budget of preset {settings['preset']}: {fmt_time(budget)})"
                                             if budget else ""))
    cg = cgroupmod.probe()
    stale = cgroupmod.remove_stale(cg)
    if stale:
        print(f"removed {len(stale)} empty cgroup(s) left by an interrupted run")
    cap = settings.get("cpu_cap")
    if cap and cg.version:
        cap_text = (f"throughput experiments capped at {cap[0]} us per {cap[1]} us "
                    f"(cgroup {cg.version})")
    elif cap:
        cap_text = f"NOT capped: {cg.reason} (throughput points flagged 'uncapped')"
    else:
        cap_text = "uncapped (--cpu-cap off)"
    print(f"server on CPUs {server_cpus}, loadgen and harness on CPUs {client_cpus}; {cap_text}; "
          f"results in {folder.path}")
    if args.dry_run:
        for p in todo:
            print(f"  {p.label()} rep {p.rep}: ~{planmod.estimate_point_s(p, plan.preset):.1f} s")
        return 0

    if todo and not loadgen.exists():
        raise SystemExit(f"run.py: {loadgen} not found: build it first (make), or pass --bin-dir")
    # The harness (its readings, slow clients, loadgen) lives on the client CPUs, off the
    # server's; its readings are scheduled so that they cost the generator < 2 % of a core.
    os.sched_setaffinity(0, set(client_cpus))
    folder.create()
    t_start = time.monotonic()
    if old is None:
        m = metamod.collect(REPO, bin_dir, settings["server_cpu"], settings["client_cpu"])
        m["pinning"].update(server_cpus=server_cpus, client_cpus=client_cpus,
                            note="server pinned with sched_setaffinity (its children inherit); "
                                 "loadgen (one thread per client CPU), slow clients and the "
                                 "harness's readings share the client CPUs")
        m["settings"] = settings
        m["plan"] = plan.to_json()
        m["complete"] = False
        m["command"] = metamod.scrub(" ".join([sys.executable] + sys.argv))   # no checkout paths
        folder.write_meta(m)
    else:
        m = folder.meta()
        m["wall_s_before_resume"] = m.get("wall_s", 0) or 0
        # Points measured now carry this commit in their own records (runs.jsonl "git").
        m.setdefault("resumed_utc", []).append(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        folder.write_meta(m)

    m = folder.meta()
    m["cpu_cap"] = cpu_cap_method(cg, cap)
    folder.write_meta(m)
    ctx = points.Context(bin_dir=bin_dir, loadgen=loadgen, preset=plan.preset,
                         server_cpus=server_cpus, client_cpus=client_cpus,
                         cgroup=cg, quota=tuple(cap) if cap else None,
                         git=metamod.git_info(REPO))
    for r in folder.runs():   # peaks measured before an interruption
        _note_peak(ctx, r)
    prog = Progress(plan, todo, micro_todo)
    limits = points.system_limits()
    try:
        for p in todo:
            label = f"{p.label()} rep {p.rep + 1}/{plan.reps}"
            prog.begin(label)
            rec = points.run_point(p, ctx, limits)
            folder.append_run(rec)
            _note_peak(ctx, rec)
            prog.end(label, planmod.estimate_point_s(p, plan.preset), brief(rec))
        if micro_todo:
            prog.begin("micro-benchmarks")
            res = micromod.run(bin_dir / "micro", folder.path / store.MICRO,
                               settings["micro_min_time_s"], settings["micro_reps"],
                               settings["server_cpu"], settings.get("micro_filter"))
            err = res["cmbench"].get("error")
            prog.end("micro-benchmarks", planmod.estimate_micro_s(plan.preset),
                     f"FAILED: {err}" if err else f"{len(res.get('benchmarks', []))} results")
    except KeyboardInterrupt:
        print(f"\ninterrupted: {folder.path} holds every finished point; continue with\n"
              f"  make bench RESUME={folder.path}\n  (or /usr/bin/python3 bench/run.py --resume {folder.path})")
        finish(folder, settings, False, t_start, charts=False)
        return 130
    finish(folder, settings, True, t_start, charts=not args.no_charts)
    wall = folder.meta().get("wall_s")
    print(f"done in {fmt_time(wall or 0)}: {folder.path}")
    return 0


def cpu_cap_method(cg: cgroupmod.Method, cap) -> dict:
    """How the run capped the server, for meta.json and the report's method section."""
    return {
        "cgroup": cg.to_json(),
        "quota_us": cap[0] if cap else None, "period_us": cap[1] if cap else None,
        "share": round(cap[0] / cap[1], 4) if cap else None,
        "applied": bool(cap and cg.version),
        "capped_experiments": sorted(planmod.CAPPED_EXPERIMENTS),
        "uncapped_experiments": sorted(planmod.UNCAPPED_EXPERIMENTS),
        "method": ("Throughput experiments run with the server's whole process tree in a cgroup "
                   "whose CPU quota leaves the generator headroom, so their figures are the "
                   "server's (server-bound = the server used >= 95 % of its quota). Latency "
                   "experiments run uncapped (throttling adds up to a period to a latency) at "
                   "rates that are a share of the uncapped closed-loop peak at the same "
                   "connection count; a load the generator could not offer on schedule is "
                   "recorded as beyond what one generator core can offer, not as data."),
        "reason": None if (cap and cg.version) else (cg.reason if cap else "--cpu-cap off"),
    }


def _note_peak(ctx: points.Context, rec: dict) -> None:
    if rec.get("status") != "ok":
        return
    # Only the dedicated uncapped peak point: latency and blocking run uncapped, so a capped
    # scale point cannot be their 100 %.
    if rec["param"] == PEAK:
        rps = (rec.get("metrics") or {}).get("rps")
        if rps:
            ctx.peaks[(rec["model"], int(rec["rep"]))] = float(rps)


if __name__ == "__main__":
    sys.exit(main())
