"""Runs one point: start the server pinned, probe it, sample it, drive it with loadgen, stop it.

run_point() never raises for anything the server or loadgen does: every outcome becomes a
record with status "ok", "skipped" (the model cannot run this point, with the reason) or
"failed" (it tried and something broke, with the reason and the server's stderr).
"""
from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import procfs, sampler, syscalls
from .meta import repo_relative
from .loadgen import Loadgen, LoadResult, LoadSpec
from .plan import (BLOCKING_FAST_CONNS, BLOCKING_LOAD_PCT, BLOCKING_MAX_FAST_RPS, BLOCKING_SLEEP_US,
                   BLOCKING_SLOW_CONNS,
                   CPU_CONNS, IDLE_ACTIVE_CONNS, LATENCY_CONNS, PAYLOAD_CONNS, PEAK,
                   SLOWLORIS_ACTIVE_CONNS, TIMEOUT_S, Point, Preset, connections_of)
from .server import Server

SCHEMA = 1
FD_SETSIZE = 1024
CLIENT_BOUND_FRAC = 0.90
ERROR_LIMIT = 0.001
CONTENDED_FRAC = 0.10   # other tasks used more than this share of the server's core
SLOWLORIS = Path(__file__).with_name("slowloris.py")

# Rough memory per connection, only to refuse points that would exhaust the machine.
_EST_KIB_PER_CONN = {"fork": 256, "threads": 96}


@dataclass
class Context:
    bin_dir: Path
    loadgen: Path
    preset: Preset
    server_cpu: int | None
    client_cpu: int | None
    python: str = "/usr/bin/python3"
    peaks: dict[tuple[str, int], float] = field(default_factory=dict)   # (model, rep) -> req/s
    current: list = field(default_factory=list)   # live child handles, for Ctrl-C clean-up


def server_binary(ctx: Context, model: str) -> Path:
    return ctx.bin_dir / f"server-{model}"


# --- skip rules ------------------------------------------------------------------------

def system_limits() -> dict:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)
    lo, hi = 32768, 60999
    text = procfs.read_text("/proc/sys/net/ipv4/ip_local_port_range")
    if text:
        try:
            lo, hi = (int(x) for x in text.split()[:2])
        except ValueError:
            pass
    return {
        "nofile": nofile[0],
        "nproc": nproc[0],
        "pid_max": procfs.read_int("/proc/sys/kernel/pid_max") or 32768,
        "threads_max": procfs.read_int("/proc/sys/kernel/threads-max") or 32768,
        "ephemeral_ports": hi - lo + 1,
        "mem_available_kib": procfs.meminfo().get("MemAvailable_kib", 0),
        "root": os.geteuid() == 0,
    }


def skip_reason(point: Point, limits: dict | None = None) -> str | None:
    """Why this model cannot run this point on this machine, or None."""
    limits = limits or system_limits()
    conns = connections_of(point)
    fds = conns + 16   # listener, stdio, epoll fd, slack
    if point.model == "select" and fds > FD_SETSIZE:
        return (f"select cannot watch fds >= FD_SETSIZE ({FD_SETSIZE}); "
                f"this point holds {conns} connections")
    if fds > limits["nofile"]:
        return f"needs about {fds} file descriptors; ulimit -n is {limits['nofile']}"
    if conns > limits["ephemeral_ports"] - 1000:
        return f"needs {conns} client ports; the ephemeral range has {limits['ephemeral_ports']}"
    if point.model in ("fork", "threads"):
        what = "processes" if point.model == "fork" else "threads"
        cap = min(limits["pid_max"], limits["threads_max"])
        if not limits["root"]:
            cap = min(cap, limits["nproc"])
        free = cap - procfs.count_tasks_system() - 1000
        if conns > free:
            return (f"needs {conns} {what}; pid_max/threads-max/ulimit -u leave about {max(free, 0)}")
    need_kib = conns * _EST_KIB_PER_CONN.get(point.model, 24)
    if limits["mem_available_kib"] and need_kib > limits["mem_available_kib"] // 2:
        return (f"would need about {need_kib // 1024} MiB; only "
                f"{limits['mem_available_kib'] // 1024} MiB available")
    return None


# --- the point -------------------------------------------------------------------------

def _system_snapshot() -> dict:
    d = procfs.sockstat()
    d.update(procfs.meminfo())
    return d


def new_record(point: Point, ctx: Context) -> dict:
    return {
        "schema": SCHEMA,
        "experiment": point.experiment, "model": point.model, "param": point.param,
        "rep": point.rep, "label": point.label(),
        "status": "failed", "reason": None,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "wall_s": None,
        "config": {"warmup_s": ctx.preset.warmup_s, "duration_s": ctx.preset.duration_s,
                   "server_cpu": ctx.server_cpu, "client_cpu": ctx.client_cpu,
                   "sample_period_s": ctx.preset.sample_period_s},
        "loadgen": None, "loadgen_aux": None, "client": None, "client_aux": None,
        "server": None, "system": None, "slowloris": None, "syscalls": None,
        "metrics": {}, "flags": [],
    }


def load_specs(point: Point, ctx: Context) -> tuple[LoadSpec, LoadSpec | None, dict] | str:
    """The loadgen invocations of a point (main, optional auxiliary) and config notes, or a
    reason why the point cannot run (no peak rate)."""
    e, p = point.experiment, point.param
    notes: dict = {}
    if p == PEAK or e == "scale":
        c = LATENCY_CONNS if p == PEAK else int(p)
        return LoadSpec("/", c, timeout_s=TIMEOUT_S), None, {"connections": c, "loop": "closed"}
    if e == "idle":
        return (LoadSpec("/", IDLE_ACTIVE_CONNS, idle=int(p), timeout_s=TIMEOUT_S), None,
                {"connections": IDLE_ACTIVE_CONNS, "idle": int(p), "loop": "closed"})
    if e == "churn":
        return (LoadSpec("/", int(p), close=True, timeout_s=TIMEOUT_S), None,
                {"connections": int(p), "loop": "closed", "close": True})
    if e == "cpu":
        return (LoadSpec(f"/cpu/{int(p)}", CPU_CONNS, timeout_s=TIMEOUT_S), None,
                {"connections": CPU_CONNS, "path": f"/cpu/{int(p)}", "loop": "closed"})
    if e == "payload":
        return (LoadSpec(f"/bytes/{int(p)}", PAYLOAD_CONNS, timeout_s=TIMEOUT_S), None,
                {"connections": PAYLOAD_CONNS, "path": f"/bytes/{int(p)}", "loop": "closed"})
    if e == "slowloris":
        return (LoadSpec("/", SLOWLORIS_ACTIVE_CONNS, timeout_s=TIMEOUT_S), None,
                {"connections": SLOWLORIS_ACTIVE_CONNS, "slow_clients": int(p), "loop": "closed"})
    peak = ctx.peaks.get((point.model, point.rep))
    if not peak:
        return (f"no peak rate for {point.model} in repetition {point.rep} "
                f"(its closed-loop c={LATENCY_CONNS} point failed or was skipped)")
    notes["peak_rps"] = round(peak, 1)
    if e == "latency":
        rate = max(1, int(round(peak * float(p) / 100.0)))
        notes.update(connections=LATENCY_CONNS, loop="open", offered_rps=rate, offered_pct=float(p))
        return LoadSpec("/", LATENCY_CONNS, rate=rate, timeout_s=TIMEOUT_S), None, notes
    if e == "blocking":
        share = float(p)
        fast = max(1, min(BLOCKING_MAX_FAST_RPS, int(round(peak * BLOCKING_LOAD_PCT / 100.0))))
        notes.update(connections=BLOCKING_FAST_CONNS, loop="open", offered_rps=fast,
                     slow_share_pct=share, slow_path=f"/sleep/{BLOCKING_SLEEP_US}")
        main = LoadSpec("/", BLOCKING_FAST_CONNS, rate=fast, timeout_s=TIMEOUT_S)
        if share <= 0:
            return main, None, notes
        slow = max(1, int(round(fast * share / (100.0 - share))))
        notes.update(slow_rps=slow, slow_connections=BLOCKING_SLOW_CONNS)
        aux = LoadSpec(f"/sleep/{BLOCKING_SLEEP_US}", BLOCKING_SLOW_CONNS, rate=slow,
                       timeout_s=TIMEOUT_S)
        return main, aux, notes
    return f"unknown experiment {e}"


def run_point(point: Point, ctx: Context, limits: dict | None = None) -> dict:
    rec = new_record(point, ctx)
    t_begin = time.monotonic()
    try:
        _run(point, ctx, rec, limits)
    finally:
        rec["wall_s"] = round(time.monotonic() - t_begin, 3)
    return rec


def _run(point: Point, ctx: Context, rec: dict, limits: dict | None) -> None:
    reason = skip_reason(point, limits)
    if reason:
        rec["status"], rec["reason"] = "skipped", reason
        return
    specs = load_specs(point, ctx)
    if isinstance(specs, str):
        rec["status"], rec["reason"] = "skipped", specs
        return
    main_spec, aux_spec, notes = specs
    rec["config"].update(notes)

    system_before = _system_snapshot()
    srv = Server(point.model, server_binary(ctx, point.model), ctx.server_cpu)
    ctx.current.append(srv)
    smp: sampler.Sampler | None = None
    slow_proc: subprocess.Popen | None = None
    try:
        why = srv.start()
        if why is None:
            why = srv.probe()
        if why is not None:
            rec["reason"] = why
            rec["server"] = {"stderr_tail": srv.stderr_tail()}
            return
        memory_mode = point.experiment == "idle"
        smp = sampler.Sampler(srv.pid, ctx.preset.sample_period_s, core=ctx.server_cpu,
                              max_duty=1.0 if memory_mode else 0.2, pss_always=memory_mode).start()

        if point.experiment == "slowloris":
            slow_proc, ready = _start_slowloris(ctx, srv, int(point.param))
            ctx.current.append(slow_proc)
            rec["slowloris"] = {"ready": ready}
            if ready is None or not srv.alive():
                rec["reason"] = "slow clients could not connect" if srv.alive() else \
                    f"server died while slow clients connected: {srv.stderr_tail()}"
                return

        lg = Loadgen(ctx.loadgen, srv.url(main_spec.path), main_spec, ctx.preset.warmup_s,
                     ctx.preset.duration_s)
        aux = (Loadgen(ctx.loadgen, srv.url(aux_spec.path), aux_spec, ctx.preset.warmup_s,
                       ctx.preset.duration_s) if aux_spec else None)
        ctx.current.extend([x for x in (lg, aux) if x])
        if aux:
            aux.start()
        lg.start()
        res = lg.wait()
        res_aux = aux.wait() if aux else None
        end_sample = smp.sample_now(want_pss=True)
        server_alive = srv.alive()

        if slow_proc is not None:
            rec["slowloris"].update(_stop_slowloris(slow_proc))

        samples = smp.stop()
        # System calls per request: a separate counting window on the live server, after the
        # timed window and the sampler (harness/syscalls.py; {"unavailable": why} otherwise).
        counted = (syscalls.count_for_point(point, ctx, srv, main_spec)
                   if server_alive and res.json and res.json.get("requests") else None)
        stop = srv.stop(smp.reader.pids_seen)
        smp = None
        time.sleep(0.05)   # let the kernel release the sockets before reading sockstat
        system_after = _system_snapshot()

        rec["loadgen"] = res.json
        rec["client"] = res.to_json()
        if res_aux:
            rec["loadgen_aux"] = res_aux.json
            rec["client_aux"] = res_aux.to_json()
        window = None
        if res.json:
            dur = float(res.json.get("duration_s") or ctx.preset.duration_s)
            end = min(res.t_end, end_sample.t)
            # loadgen opens every connection before its warm-up starts: gauges may come from
            # the warm-up too (a big tree is sampled only every few hundred ms).
            window = sampler.window(samples, end - dur, end, gauge_start=end - dur - ctx.preset.warmup_s)
        rec["server"] = {
            "binary": repo_relative(srv.binary), "pid": srv.pid, "port": srv.port,
            "window": window.to_json() if window else None,
            "samples": [s.to_json() for s in samples],
            "sampler_error": None, "stop": stop, "alive_after_load": server_alive,
            "stderr_tail": srv.stderr_tail(),
        }
        rec["system"] = {"before": system_before, "after": system_after,
                         "tcp_mem_kib_max": max((s.tcp_mem_kib for s in samples), default=None)}
        rec["syscalls"] = counted

        if not server_alive:
            rec["reason"] = f"server exited during the run (code {srv.exit_code}): {srv.stderr_tail()[-300:]}"
            return
        if res.json is None:
            rec["reason"] = res.error or "loadgen produced no result"
            return
        if not res.json.get("requests"):
            rec["reason"] = ("loadgen completed no request: "
                             + (res.stderr_tail.splitlines() or ["(nothing on stderr)"])[-1][:300])
            return
        if aux and (res_aux is None or res_aux.json is None):
            rec["reason"] = f"slow-request loadgen failed: {res_aux.error if res_aux else '?'}"
            return
        rec["status"] = "ok"
        rec["metrics"] = metrics(point, rec, res, res_aux, window, system_before)
        rec["metrics"].update(syscalls.metrics_of(counted, rec["metrics"]))
        rec["flags"] = flags(rec, res)
    finally:
        for child in ctx.current:
            if isinstance(child, Loadgen):
                child.kill()   # only if still running (Ctrl-C or an exception mid-point)
        if smp is not None:
            smp.stop()
        if slow_proc is not None and slow_proc.poll() is None:
            slow_proc.kill()
            slow_proc.wait()
        if srv.proc is not None and srv.proc.returncode is None and srv.alive():
            info = srv.stop()
            if rec["server"] is not None and isinstance(rec["server"], dict):
                rec["server"].setdefault("stop", info)
        srv.close()
        ctx.current.clear()


def _start_slowloris(ctx: Context, srv: Server, clients: int):
    cmd = [ctx.python, str(SLOWLORIS), "--host", srv.host, "--port", str(srv.port),
           "--clients", str(clients), "--interval", "1",
           "--max-seconds", str(int(ctx.preset.warmup_s + ctx.preset.duration_s + 120))]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, close_fds=True)
    deadline = time.monotonic() + 30
    line = b""
    while time.monotonic() < deadline:
        r, _, _ = select.select([p.stdout], [], [], 0.2)
        if r:
            line = p.stdout.readline()
            break
        if p.poll() is not None:
            break
    parts = line.decode().split()
    if len(parts) == 3 and parts[0] == "ready":
        return p, {"connected": int(parts[1]), "failed": int(parts[2])}
    return p, None


def _stop_slowloris(p: subprocess.Popen) -> dict:
    try:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    for line in reversed(out.decode("utf-8", "replace").splitlines()):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return {"error": f"no summary from slow clients: {err.decode('utf-8', 'replace')[-300:]}"}


# --- figures of one point --------------------------------------------------------------

def _errors_total(lg: dict) -> int:
    errs = lg.get("errors") or {}
    return int(sum(v for v in errs.values() if isinstance(v, (int, float))))


def metrics(point: Point, rec: dict, res: LoadResult, res_aux: LoadResult | None,
            window: sampler.Window | None, before: dict) -> dict:
    lg = res.json or {}
    lat = lg.get("latency_us") or {}
    req = int(lg.get("requests") or 0)
    dur = float(lg.get("duration_s") or 0) or None
    errs = _errors_total(lg)
    m: dict = {
        "rps": lg.get("rps"), "requests": req,
        "p50_us": lat.get("p50"), "p90_us": lat.get("p90"), "p99_us": lat.get("p99"),
        "p999_us": lat.get("p999"), "max_us": lat.get("max"), "mean_us": lat.get("mean"),
        "errors": errs, "error_rate": errs / (req + errs) if (req + errs) else 0.0,
    }
    svc = lg.get("service_us") or {}
    if svc:
        m["service_p99_us"] = svc.get("p99")
    # Client CPU: loadgen reports its CPU over the measured window (cpu_s); without it, wait4's
    # figure over the process's whole life. Either way as a share of one core.
    cpu = lg.get("cpu_s") or {}
    rusage_cpu = res.cpu_user_s + res.cpu_sys_s
    if cpu and dur:
        client_cpu = float(cpu.get("user") or 0) + float(cpu.get("sys") or 0)
        m["client_cpu_s"] = round(client_cpu, 4)
        m["client_cpu_frac"] = round(client_cpu / dur, 4)
    else:
        m["client_cpu_s"] = round(rusage_cpu, 4)
        m["client_cpu_frac"] = round(rusage_cpu / res.wall_s, 4) if res.wall_s else None
    if window is not None:
        span = max(window.end - window.start, 1e-9)
        m.update({
            "server_cpu_s": round(window.cpu_s, 6),
            "server_user_s": None if window.user_s is None else round(window.user_s, 6),
            "server_sys_s": None if window.sys_s is None else round(window.sys_s, 6),
            "server_cpu_util": round(window.cpu_s / span, 4),
            "cpu_us_per_req": round(window.cpu_s * 1e6 / req, 3) if req else None,
            "ctx_vol": window.ctx_vol, "ctx_invol": window.ctx_invol,
            "ctxsw_per_req": round((window.ctx_vol + window.ctx_invol) / req, 4) if req else None,
            "pss_kib": window.pss_kib_max, "rss_kib": window.rss_kib_max,
            "threads": window.threads_max, "procs": window.procs_max,
            "tcp_mem_kib": window.tcp_mem_kib_max - before.get("tcp_mem_kib", 0),
            "core_busy": window.core_busy, "core_other_tasks": window.core_other_tasks,
            "core_softirq": window.core_softirq, "core_steal": window.core_steal,
        })
    if dur:
        m["mb_s"] = round(float(lg.get("bytes") or 0) / dur / 1e6, 3)
    cfg = rec["config"]
    if "offered_rps" in cfg:
        m["offered_rps"] = cfg["offered_rps"]
        if m["rps"] is not None and cfg["offered_rps"]:
            m["achieved_frac"] = round(m["rps"] / cfg["offered_rps"], 4)
    if point.experiment == "payload":
        m["payload_mb_s"] = round(req * int(point.param) / dur / 1e6, 3) if dur else None
    if point.experiment == "idle":
        m["idle"] = int(point.param)
        # loadgen warns on stderr when it could not hold every idle connection.
        short = re.search(r"only (\d+) of (\d+) idle connections", res.stderr_tail or "")
        m["idle_held"] = int(short.group(1)) if short else int(point.param)
    if res_aux is not None and res_aux.json:
        alat = res_aux.json.get("latency_us") or {}
        m["slow_requests"] = res_aux.json.get("requests")
        m["slow_p99_us"] = alat.get("p99")
        m["slow_errors"] = _errors_total(res_aux.json)
    if rec.get("slowloris"):
        s = rec["slowloris"]
        m["slow_connected"] = s.get("connected")
        m["slow_alive"] = s.get("alive_at_end")
        m["slow_closed"] = s.get("closed_by_server")
    return m


def flags(rec: dict, res: LoadResult) -> list[str]:
    m = rec["metrics"]
    out = []
    if (m.get("client_cpu_frac") or 0) >= CLIENT_BOUND_FRAC:
        out.append("client-bound")
    if (res.json or {}).get("generator_limited"):
        out.append("generator-limited")
    if rec["experiment"] == "idle" and m.get("pss_kib") is None:
        out.append("no-pss-sample")
    if (m.get("core_other_tasks") or 0) > CONTENDED_FRAC:
        out.append("contended")
    if m.get("idle_held") is not None and m["idle_held"] < (m.get("idle") or 0):
        out.append("idle-short")
    if (m.get("error_rate") or 0) > ERROR_LIMIT:
        out.append("errors>0.1%")
    stop = (rec.get("server") or {}).get("stop") or {}
    if stop and not stop.get("clean"):
        out.append("unclean-exit")
    return out
