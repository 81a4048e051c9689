"""Runs one point: start the server pinned (and capped, for throughput experiments), probe it,
drive it with loadgen, read it on schedule, stop it.

The schedule of one point (loadgen: set-up, then warm-up W, then the measured window D):

    spawn loadgen ── set-up ──┬── warm-up W ──┬────────── window D ──────────┬─ drain, exit
                              S               S+W                            S+W+D
                        memory reading M  CPU reading A              CPU reading B
                        (connections held,    (+30 ms)                  (-60 ms: load
                         nothing timed)                                   still running)

S is seen from the generator's side: the moment its descriptor count reaches the connections
it opens (polled every 20 ms during set-up only). A and B are taken inside the window while
every connection is still open, so a fork server's children cannot exit between them; the
window's CPU per request is CPU(A..B) / (req/s x (B - A)). The memory reading happens in the
warm-up, when the generator holds every connection and no latency is recorded (the warm-up is
stretched for a process-per-connection tree, whose reading takes ~0.1 ms per process).

run_point() never raises for anything the server or loadgen does: every outcome becomes a
record with status "ok", "skipped" (the model cannot run this point, or its binary or
mechanism is missing, with the reason) or "failed" (it tried and something broke, with the
reason and the server's stderr).
"""
from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cgroup as cgroupmod
from . import procfs, registry, sampler, syscalls
from . import reference as referencemod
from .loadgen import Loadgen, LoadResult, LoadSpec
from .plan import (BLOCKING_FAST_CONNS, BLOCKING_LOAD_PCT, BLOCKING_MAX_FAST_RPS, BLOCKING_SLEEP_US,
                   BLOCKING_SLOW_CONNS, CAPPED_EXPERIMENTS,
                   CPU_CONNS, FD_SETSIZE, IDLE_ACTIVE_CONNS, LATENCY_CONNS, MEMORY_PASS_S_PER_PROC,
                   MEMORY_PASS_S_PER_THREAD, PAYLOAD_CONNS, PEAK, PROCESS_PER_CONN,
                   SLOWLORIS_ACTIVE_CONNS, THREAD_PER_CONN, TIMEOUT_S, Point,
                   Preset, connections_of, syscall_window)
from .server import Server, free_port


SCHEMA = 2
SERVER_BOUND_FRAC = 0.95   # the server used >= 95 % of the CPU it was given
CLIENT_BOUND_FRAC = 0.90   # the generator used >= 90 % of its CPUs
THROTTLED_BOUND_FRAC = 0.5  # capped: the quota stopped the server in >= half of its periods
ERROR_LIMIT = 0.001
CONTENDED_FRAC = 0.10      # other tasks used more than this share of the server's CPUs
SAMPLER_COST_LIMIT = 0.02  # the harness's readings may cost at most 2 % of a core over a window
A_AFTER_S = 0.03           # reading A this long after the window starts ...
B_BEFORE_S = 0.06          # ... reading B this long before it ends (the load still running)
SETUP_POLL_S = 0.02
SLOWLORIS = Path(__file__).with_name("slowloris.py")

# Rough memory per connection, only to refuse points that would exhaust the machine.
_EST_KIB_PER_CONN = {"fork": 256, "threads": 96, "apache-prefork": 512}


@dataclass
class Context:
    bin_dir: Path
    loadgen: Path
    preset: Preset
    server_cpus: list[int] | None
    client_cpus: list[int] | None
    python: str = "/usr/bin/python3"
    cgroup: cgroupmod.Method | None = None          # how to cap/account, or None
    quota: tuple[int, int] | None = None            # (quota_us, period_us) of capped points
    git: dict = field(default_factory=dict)         # commit the points are measured at
    peaks: dict[tuple[str, int], float] = field(default_factory=dict)   # (model, rep) -> req/s
    current: list = field(default_factory=list)     # live child handles, for Ctrl-C clean-up
    mem_s_per_proc: float = MEMORY_PASS_S_PER_PROC  # measured wall time of a memory reading, per process
    mem_s_per_thread: float = MEMORY_PASS_S_PER_THREAD   # ... per thread of one process
    count_syscalls: bool = True

    @property
    def server_cpu(self) -> int | None:   # the first one, for older readers of the records
        return self.server_cpus[0] if self.server_cpus else None

    @property
    def client_cpu(self) -> int | None:
        return self.client_cpus[0] if self.client_cpus else None

    def client_threads(self) -> int:
        return max(1, len(self.client_cpus or [0]))


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
    if point.model in ("fork", "threads", "py-threads", "apache-prefork"):
        what = "processes" if point.model in PROCESS_PER_CONN else "threads"
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


def capped(point: Point) -> bool:
    return point.experiment in CAPPED_EXPERIMENTS and point.param != PEAK


def new_record(point: Point, ctx: Context) -> dict:
    return {
        "schema": SCHEMA,
        "experiment": point.experiment, "model": point.model, "param": point.param,
        "rep": point.rep, "label": point.label(),
        "status": "failed", "reason": None,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git": dict(ctx.git),
        "wall_s": None,
        "config": {"warmup_s": ctx.preset.warmup_s, "duration_s": ctx.preset.duration_s,
                   "server_cpus": ctx.server_cpus, "client_cpus": ctx.client_cpus,
                   "server_cpu": ctx.server_cpu, "client_cpu": ctx.client_cpu,
                   "loadgen_threads": ctx.client_threads(), "cpu_cap": None},
        "loadgen": None, "loadgen_aux": None, "client": None, "client_aux": None,
        "server": None, "system": None, "slowloris": None, "syscalls": None,
        "metrics": {}, "limited_by": None, "flags": [],
    }


def load_specs(point: Point, ctx: Context) -> tuple[LoadSpec, LoadSpec | None, dict] | str:
    """The loadgen invocations of a point (main, optional auxiliary) and config notes, or a
    reason why the point cannot run (no peak rate)."""
    e, p = point.experiment, point.param
    t = ctx.client_threads()
    notes: dict = {}
    if p == PEAK or e == "scale":
        c = LATENCY_CONNS if p == PEAK else int(p)
        return LoadSpec("/", c, threads=min(t, c), timeout_s=TIMEOUT_S), None, \
            {"connections": c, "loop": "closed"}
    if e == "idle":
        return (LoadSpec("/", IDLE_ACTIVE_CONNS, threads=t, idle=int(p), timeout_s=TIMEOUT_S), None,
                {"connections": IDLE_ACTIVE_CONNS, "idle": int(p), "loop": "closed"})
    if e == "churn":
        return (LoadSpec("/", int(p), threads=min(t, int(p)), close=True, timeout_s=TIMEOUT_S), None,
                {"connections": int(p), "loop": "closed", "close": True})
    if e == "cpu":
        return (LoadSpec(f"/cpu/{int(p)}", CPU_CONNS, threads=t, timeout_s=TIMEOUT_S), None,
                {"connections": CPU_CONNS, "path": f"/cpu/{int(p)}", "loop": "closed"})
    if e == "payload":
        return (LoadSpec(f"/bytes/{int(p)}", PAYLOAD_CONNS, threads=t, timeout_s=TIMEOUT_S), None,
                {"connections": PAYLOAD_CONNS, "path": f"/bytes/{int(p)}", "loop": "closed"})
    if e == "slowloris":
        return (LoadSpec("/", SLOWLORIS_ACTIVE_CONNS, threads=t, timeout_s=TIMEOUT_S), None,
                {"connections": SLOWLORIS_ACTIVE_CONNS, "slow_clients": int(p), "loop": "closed"})
    peak = ctx.peaks.get((point.model, point.rep))
    if not peak:
        return (f"no peak rate for {point.model} in repetition {point.rep} "
                f"(its uncapped closed-loop peak point at c={LATENCY_CONNS} failed or was skipped)")
    notes["peak_rps"] = round(peak, 1)
    if e == "latency":
        rate = max(1, int(round(peak * float(p) / 100.0)))
        notes.update(connections=LATENCY_CONNS, loop="open", offered_rps=rate, offered_pct=float(p))
        return LoadSpec("/", LATENCY_CONNS, threads=t, rate=rate, timeout_s=TIMEOUT_S), None, notes
    if e == "blocking":
        share = float(p)
        fast = max(1, min(BLOCKING_MAX_FAST_RPS, int(round(peak * BLOCKING_LOAD_PCT / 100.0))))
        notes.update(connections=BLOCKING_FAST_CONNS, loop="open", offered_rps=fast,
                     slow_share_pct=share, slow_path=f"/sleep/{BLOCKING_SLEEP_US}")
        main = LoadSpec("/", BLOCKING_FAST_CONNS, threads=t, rate=fast, timeout_s=TIMEOUT_S)
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


def _make_server(point: Point, ctx: Context, group, workdir: str) -> Server | str:
    """The Server of a point, or why this model cannot run here (a skip)."""
    m = registry.BY_NAME.get(point.model)
    if m is not None and m.is_reference:
        why = referencemod.available(point.model)
        if why:
            return why
        port = free_port()
        try:
            argv = referencemod.command(point.model, "127.0.0.1", port, workdir)
        except Exception as e:   # the reference module's problem: a skip with its reason
            return f"{type(e).__name__}: {e}"
        return Server(point.model, None, ctx.server_cpus, cgroup=group, argv=argv, port=port)
    binary = server_binary(ctx, point.model)
    if not binary.exists():
        return f"binary not found: {_repo_relative(binary)} (not built on this machine)"
    return Server(point.model, binary, ctx.server_cpus, cgroup=group)


def _cap_for(point: Point, ctx: Context, rec: dict):
    """The point's cgroup: capped for throughput experiments, accounting only otherwise; None
    (and the reason in the record) when cgroups cannot be used here."""
    want_cap = capped(point)
    quota = ctx.quota if want_cap else None
    info = {"wanted": want_cap and ctx.quota is not None, "method": None, "quota_us": None,
            "period_us": None, "share": None, "reason": None}
    if ctx.cgroup is None or ctx.cgroup.version is None:
        info["reason"] = ctx.cgroup.reason if ctx.cgroup else "cgroups not probed"
        rec["config"]["cpu_cap"] = info
        return None
    try:
        g = cgroupmod.Group(ctx.cgroup, point.model, quota)
    except OSError as e:
        info["reason"] = f"cannot create the server's cgroup: {e}"
        rec["config"]["cpu_cap"] = info
        return None
    info["method"] = f"cgroup {ctx.cgroup.version} " + \
        ("cpu.cfs_quota_us/cpu.cfs_period_us" if ctx.cgroup.version == "v1" else "cpu.max")
    if quota:
        info.update(quota_us=quota[0], period_us=quota[1], share=round(quota[0] / quota[1], 4))
    rec["config"]["cpu_cap"] = info
    return g


def _established_to(port: int) -> int | None:
    """Client-side TCP connections to `port` that completed their handshake, from the kernel's
    socket diagnostics with its own filter (`ss`: /proc/net/tcp lists every socket of the
    machine, 46000 TIME_WAIT ones on a busy day, and takes 0.4 s to read). None if ss fails."""
    try:
        p = subprocess.run(["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
                           capture_output=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    return p.stdout.count(b"\n")


def _wait_setup(lg: Loadgen, sockets: int, port: int, limit_s: float,
                others: int = 0) -> tuple[float, str]:
    """When the generator has its connections (its set-up done and its warm-up started). Two
    cheap signals, polled only during set-up: its descriptor count reaches the sockets it
    opens, then that many of its connections to the server completed their handshake (the
    loadgen's set-up waits for exactly that; `others` more connections to the port belong to
    other clients: slow clients, the blocking experiment's second loadgen). Returns (time, how
    it was decided)."""
    want = sockets + 3   # stdin, stdout, stderr
    deadline = time.monotonic() + limit_s
    last, last_change = -1, time.monotonic()
    phase = "fds"
    while time.monotonic() < deadline:
        now = time.monotonic()
        if not lg.running():
            return now, "loadgen exited during set-up"
        if phase == "fds":
            n = lg.open_fds()
            if n is not None and n >= want:
                if sockets == 0:
                    return time.monotonic(), "no connections to open"
                phase, last = "tcp", -1
                continue
        else:
            n = _established_to(port)
            if n is None:
                return time.monotonic(), "descriptors open (ss unavailable)"
            if n >= sockets + others:
                return time.monotonic(), "connections established"
        if n != last:
            last, last_change = n, now
        elif now - last_change > 3.0:
            return now, f"set-up stalled ({phase}: {n} of {sockets})"
        time.sleep(SETUP_POLL_S if phase == "fds" else 2 * SETUP_POLL_S)
    return time.monotonic(), "set-up still running at its time limit"


def _tree_size(srv: Server, group, threads: bool) -> int:
    if threads:   # a thread per connection: the root's thread count (one stat read)
        st = procfs.proc_stat(srv.pid)
        return st.num_threads if st else 0
    if group is not None:
        return len(group.pids())
    return len(procfs.process_tree(srv.pid))


def _settle(srv: Server, group, want: int, until: float, threads: bool = False) -> None:
    """Waits (until at most `until`) for a process- or thread-per-connection server to hold
    `want` processes (threads): when the generator's connections are established the server
    may still be accepting and forking the last of them. Stops early when the tree stopped
    growing for 0.3 s (connections the server refused or dropped never come)."""
    prev, since = -1, time.monotonic()
    while time.monotonic() < until:
        n = _tree_size(srv, group, threads)
        if n >= want:
            return
        if n != prev:
            prev, since = n, time.monotonic()
        elif time.monotonic() - since > 0.3:
            return
        time.sleep(0.05)


def _sleep_until(t: float) -> None:
    dt = t - time.monotonic()
    if dt > 0:
        time.sleep(dt)


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

    workdir = tempfile.TemporaryDirectory(prefix=f"cmbench-{point.model}-")
    group = None
    try:
        group = _cap_for(point, ctx, rec)
        made = _make_server(point, ctx, group, workdir.name)
        if isinstance(made, str):
            rec["status"], rec["reason"] = "skipped", made
            return
        _serve(point, ctx, rec, made, group, main_spec, aux_spec)
    finally:
        # Even when Ctrl-C lands mid-point: the server is stopped by then (_serve's finally).
        _cleanup_group(group, rec)
        workdir.cleanup()


def _serve(point: Point, ctx: Context, rec: dict, srv: Server, group, main_spec: LoadSpec,
           aux_spec: LoadSpec | None) -> None:
    ctx.current.append(srv)
    slow_proc: subprocess.Popen | None = None
    system_before = _system_snapshot()
    try:
        why = srv.start()
        if srv.unsupported:
            # docs/architecture.md §3: exit 3 = the kernel lacks the mechanism (uring without io_uring).
            rec["status"], rec["reason"] = "skipped", f"model unsupported here: {srv.unsupported}"
            return
        if why is None:
            why = srv.probe()
            if srv.argv is not None:   # a reference row: what differs from §2's bytes, for the report
                rec["probe_differences"] = referencemod.differences(srv.probe_response)
        if why is not None:
            rec["reason"] = why
            rec["server"] = {"stderr_tail": srv.stderr_tail(), "notes": srv.notes}
            return
        reader = sampler.TreeReader(srv.pid, cgroup=group, cores=ctx.server_cpus)

        if point.experiment == "slowloris":
            slow_proc, ready = _start_slowloris(ctx, srv, int(point.param))
            ctx.current.append(slow_proc)
            rec["slowloris"] = {"ready": ready}
            if ready is None or not srv.alive():
                rec["reason"] = "slow clients could not connect" if srv.alive() else \
                    f"server died while slow clients connected: {srv.stderr_tail()}"
                return

        # A process-per-connection tree needs a longer warm-up for its memory reading.
        conns = connections_of(point)
        warmup = ctx.preset.warmup_s
        # (the reading's wall time per process as measured on earlier points: the idle counts
        # ascend, so the small ones calibrate the big ones).
        if point.model in PROCESS_PER_CONN and conns > 50:
            warmup += 1.3 * conns * ctx.mem_s_per_proc + 0.3
        elif point.model in THREAD_PER_CONN and conns > 50:
            warmup += 1.3 * conns * ctx.mem_s_per_thread + 0.1
        duration = ctx.preset.duration_s
        rec["config"]["warmup_s"] = round(warmup, 3)
        lg = Loadgen(ctx.loadgen, srv.url(main_spec.path), main_spec, warmup, duration)
        aux = (Loadgen(ctx.loadgen, srv.url(aux_spec.path), aux_spec, warmup, duration)
               if aux_spec else None)
        ctx.current.extend([x for x in (lg, aux) if x])
        if aux:
            aux.start()
        lg.start()
        sockets = (0 if main_spec.close else main_spec.connections) + main_spec.idle
        others = (aux_spec.connections if aux_spec else 0) + \
            int(((rec.get("slowloris") or {}).get("ready") or {}).get("connected") or 0)
        t_setup, setup_how = _wait_setup(lg, sockets, srv.port, limit_s=30 + conns * 0.002,
                                         others=others)
        rec["config"]["setup"] = {"seen_s": round(t_setup - lg.result.t_start, 4), "how": setup_how}

        # M: memory, while every connection is held and nothing is timed.
        readings: list[tuple[str, sampler.Reading]] = []
        # (churn's children come and go by design: nothing to wait for)
        held = conns > 1 and point.experiment != "churn"
        per_proc = point.model in PROCESS_PER_CONN and held
        per_thread = point.model in THREAD_PER_CONN and held
        if per_proc or per_thread:
            _settle(srv, group, conns + 1, threads=per_thread,
                    until=t_setup + warmup - 1.2 * conns * (ctx.mem_s_per_proc if per_proc
                                                            else ctx.mem_s_per_thread))
        mem = reader.read(cpu=False, memory=True, ctxsw=False)
        readings.append(("memory", mem))
        have = mem.procs if per_proc else mem.threads
        if (per_proc or per_thread) and have < conns:
            # Read before the server had a child (thread) for every connection: the memory
            # of this point would be too small for its connection count.
            mem.complete = False
            rec["config"]["memory_note"] = (f"memory read with {have} "
                                            f"{'processes' if per_proc else 'threads'} for "
                                            f"{conns} connections")
        if per_proc and mem.procs > 50:
            ctx.mem_s_per_proc = max((mem.t1 - mem.t0) / mem.procs, 2e-5)
        elif per_thread and mem.threads > 50:
            ctx.mem_s_per_thread = max((mem.t1 - mem.t0) / mem.threads, 5e-6)
        if mem.t1 > t_setup + warmup:
            rec["config"]["memory_note"] = "the memory reading ran into the measured window"
        # A and B: CPU, inside the window, the load still running.
        t_a = t_setup + warmup + A_AFTER_S
        t_b = t_setup + warmup + duration - (B_BEFORE_S if duration > 0.3 else 0.25 * duration)
        proc_cpu = group is None
        # Per-task context switches only where two readings of them cost < 1 % of the window
        # (bigger trees: the perf count of the syscall window, docs/architecture.md §5).
        max_tasks = int(0.01 * duration / 2 / sampler.TASK_READ_S)
        _sleep_until(t_a)
        ra = reader.read(cpu=True, ctxsw=True, proc_cpu=proc_cpu, max_tasks=max_tasks,
                         tasks_hint=mem.threads)
        readings.append(("A", ra))
        _sleep_until(t_b)
        rb = reader.read(cpu=True, ctxsw=True, proc_cpu=proc_cpu, max_tasks=max_tasks,
                         tasks_hint=mem.threads)
        readings.append(("B", rb))
        res = lg.wait()
        res_aux = aux.wait() if aux else None
        server_alive = srv.alive()

        # System calls per request: a separate counting window on the live server, after the
        # timed window (harness/syscalls.py; {"unavailable": why} otherwise). Counts per
        # request barely move between repetitions, so only the first one counts.
        counted = None
        window = syscall_window(point, ctx.preset)
        if window == "other-rep":
            counted = {"unavailable": "counted in repetition 0", "counted_in_other_rep": True}
        elif window == "count":
            if server_alive and ctx.count_syscalls and res.json and res.json.get("requests"):
                counted = syscalls.count_for_point(point, ctx, srv, main_spec)

        if slow_proc is not None:
            rec["slowloris"].update(_stop_slowloris(slow_proc))

        stop = srv.stop(reader.pids_seen)
        time.sleep(0.05)   # let the kernel release the sockets before reading sockstat
        system_after = _system_snapshot()
        throttle = group.throttled() if group is not None else None

        rec["loadgen"] = res.json
        rec["client"] = res.to_json()
        if res_aux:
            rec["loadgen_aux"] = res_aux.json
            rec["client_aux"] = res_aux.to_json()
        win = sampler.window(ra, rb)
        cost = _sampler_cost(readings, win)
        rec["server"] = {
            "binary": _repo_relative(srv.binary) if srv.binary else None, "argv": srv.argv,
            "pid": srv.pid, "port": srv.port,
            "window": win.to_json(),
            "readings": {name: r.to_json() for name, r in readings},
            "sampler": cost, "throttle": throttle,
            "stop": stop, "alive_after_load": server_alive,
            "notes": srv.notes, "stderr_tail": srv.stderr_tail(),
        }
        rec["system"] = {"before": system_before, "after": system_after,
                         "tcp_mem_kib_held": mem.tcp_mem_kib}
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
        if t_b > lg.result.t_end:
            win.notes.append("reading B came after the generator exited")
        rec["status"] = "ok"
        rec["metrics"] = metrics(point, rec, res, res_aux, win, mem, system_before, ctx)
        rec["limited_by"] = limited_by(rec["metrics"], res)
        rec["flags"] = flags(rec, res, win, mem, cost, t_b <= lg.result.t_end)
    finally:
        for child in ctx.current:
            if isinstance(child, Loadgen):
                child.kill()   # only if still running (Ctrl-C or an exception mid-point)
        if slow_proc is not None and slow_proc.poll() is None:
            slow_proc.kill()
            slow_proc.wait()
        if srv.proc is not None and srv.proc.returncode is None and srv.alive():
            info = srv.stop()
            if rec["server"] is not None and isinstance(rec["server"], dict):
                rec["server"].setdefault("stop", info)
        srv.close()
        ctx.current.clear()


def _repo_relative(path: Path) -> str:
    repo = registry.REGISTRY.parents[1]
    try:
        return str(Path(path).resolve().relative_to(repo))
    except ValueError:
        return str(path)


def _cleanup_group(group, rec: dict) -> None:
    if group is None:
        return
    left = group.kill_all()   # normally none: the server and its children were stopped
    if left:
        rec.setdefault("notes", []).append(f"processes left in the server's cgroup, killed: {left}")
    try:
        group.remove()
    except OSError as e:
        rec.setdefault("notes", []).append(f"cgroup not removed: {e}")


def _sampler_cost(readings: list[tuple[str, sampler.Reading]], win: sampler.Window) -> dict:
    """The harness's own CPU for its readings, and the share of a core it took inside the
    window (A and B are in it; M is in the warm-up)."""
    span = max(win.end - win.start, 1e-9)
    inside = sum(r.cost_s for name, r in readings if name in ("A", "B"))
    # Half of A and half of B fall inside [A.mid, B.mid] (proc) or [A.t1, B.t1] (cgroup); count
    # both whole: an upper bound.
    return {"memory_reading_s": round(sum(r.cost_s for n, r in readings if n == "memory"), 5),
            "window_readings_s": round(inside, 5),
            "window_frac_of_core": round(inside / span, 5)}


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


def cpu_given(rec: dict) -> float:
    """The CPUs' worth the server was given: the quota share when capped, else its CPU count."""
    cap = (rec.get("config") or {}).get("cpu_cap") or {}
    if cap.get("share"):
        return float(cap["share"])
    cpus = (rec.get("config") or {}).get("server_cpus") or [0]
    return float(len(cpus))


def metrics(point: Point, rec: dict, res: LoadResult, res_aux: LoadResult | None,
            win: sampler.Window, mem: sampler.Reading, before: dict, ctx: Context) -> dict:
    lg = res.json or {}
    lat = lg.get("latency_us") or {}
    req = int(lg.get("requests") or 0)
    dur = float(lg.get("duration_s") or 0) or None
    rps = lg.get("rps")
    errs = _errors_total(lg)
    m: dict = {
        "rps": rps, "requests": req,
        "p50_us": lat.get("p50"), "p90_us": lat.get("p90"), "p99_us": lat.get("p99"),
        "p999_us": lat.get("p999"), "max_us": lat.get("max"), "mean_us": lat.get("mean"),
        "min_us": lat.get("min"),
        "errors": errs, "error_rate": errs / (req + errs) if (req + errs) else 0.0,
    }
    for key, out in (("service_us", "service_p99_us"), ("lag_us", "lag_p99_us"), ("wait_us", "wait_p99_us")):
        if lg.get(key):
            m[out] = lg[key].get("p99")
    if lg.get("rate"):
        m["generator_limited"] = bool(lg.get("generator_limited"))
        m["on_schedule"] = not m["generator_limited"]
    # Client CPU: loadgen reports its CPU over the measured window (cpu_s); without it, wait4's
    # figure over the process's whole life. As a share of the client CPUs.
    ncli = float(len(ctx.client_cpus or [0]))
    cpu = lg.get("cpu_s") or {}
    if cpu and dur:
        client_cpu = float(cpu.get("user") or 0) + float(cpu.get("sys") or 0)
        m["client_cpu_s"] = round(client_cpu, 4)
        m["client_cpu_frac"] = round(client_cpu / dur / ncli, 4)
    else:
        rusage_cpu = res.cpu_user_s + res.cpu_sys_s
        m["client_cpu_s"] = round(rusage_cpu, 4)
        m["client_cpu_frac"] = round(rusage_cpu / res.wall_s / ncli, 4) if res.wall_s else None
    span = max(win.end - win.start, 1e-9)
    given = cpu_given(rec)
    m["server_cpu_given"] = given
    m["throttled_frac"] = win.throttled_frac
    m["sampler_frac_of_core"] = (rec.get("server") or {}).get("sampler", {}).get("window_frac_of_core")
    m["server_ncpus"] = len(ctx.server_cpus or [0])
    m["window_span_s"] = round(span, 4)
    m["cpu_source"] = win.cpu_source
    if win.cpu_s is not None:
        m["server_cpu_s"] = round(win.cpu_s, 6)
        m["server_user_s"] = None if win.user_s is None else round(win.user_s, 6)
        m["server_sys_s"] = None if win.sys_s is None else round(win.sys_s, 6)
        m["server_cpu_util"] = round(win.cpu_s / span, 4)
        m["server_cpu_frac_of_given"] = round(win.cpu_s / span / given, 4)
        # Requests in [A, B] at the window's rate: A and B lie inside the loadgen's window.
        m["cpu_us_per_req"] = round(win.cpu_s * 1e6 / (rps * span), 3) if rps else None
    else:
        m["server_cpu_s"] = m["server_cpu_util"] = m["cpu_us_per_req"] = None
    m["ctx_vol"], m["ctx_invol"] = win.ctx_vol, win.ctx_invol
    m["ctxsw_source"] = None
    m["ctxsw_per_req"] = None
    if win.ctx_vol is not None and rps:
        m["ctxsw_per_req"] = round((win.ctx_vol + win.ctx_invol) / (rps * span), 4)
        m["ctxsw_source"] = "proc"
    sc = rec.get("syscalls") or {}
    m.update(syscalls.metrics_of(sc, m))
    if isinstance(sc.get("ctxsw_per_req"), (int, float)):
        m["ctxsw_source"] = "perf"   # counts reaped children too: preferred over /proc
    # Memory, read in the warm-up while every connection was held.
    m.update({
        "pss_kib": mem.pss_kib, "model_kib": mem.model_kib, "pss_anon_kib": mem.pss_anon_kib,
        "pss_shmem_kib": mem.pss_shmem_kib, "rss_kib": mem.rss_kib,
        "memory_complete": mem.complete,
        "threads": max(mem.threads, win.threads_max), "procs": max(mem.procs, win.procs_max),
        "tcp_mem_kib": (mem.tcp_mem_kib - before.get("tcp_mem_kib", 0))
        if mem.tcp_mem_kib is not None else None,
        "core_busy": win.core_busy, "core_other_tasks": win.core_other_tasks,
        "core_softirq": win.core_softirq, "core_steal": win.core_steal,
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


def limited_by(m: dict, res: LoadResult) -> str | None:
    """What limited the point, from the measured CPU of both sides (docs/architecture.md §5):
    server-bound: the server used >= 95 % of the CPU it was given; client-bound: the generator
    saturated (its CPU, or its own lateness in open loop) while the server had room;
    latency-bound: neither, the figure is set by round trips. None when the server's CPU could
    not be measured and the generator was not saturated."""
    frac = m.get("server_cpu_frac_of_given")
    util = m.get("server_cpu_util")
    if frac is not None and frac >= SERVER_BOUND_FRAC:
        return "server-bound"
    # Capped: the quota stopped the server in most periods in which it ran, so it wanted more
    # than it was given (it falls short of 95 % of the quota only because other tenants of a
    # shared machine took part of some periods).
    if util is not None and (m.get("throttled_frac") or 0) >= THROTTLED_BOUND_FRAC:
        return "server-bound"
    # On a shared machine other tasks may take part of the server's CPUs. When those CPUs had
    # no idle time left, the server could not have run more: it was CPU-bound too (such a point
    # is also flagged contended when others took more than 10 %). Idle time, not a tick-based
    # subtraction of the others' share, decides: /proc/stat's ticks are sampled.
    busy = m.get("core_busy")
    if util is not None and busy is not None and busy >= SERVER_BOUND_FRAC:
        return "server-bound"
    if (m.get("client_cpu_frac") or 0) >= CLIENT_BOUND_FRAC or (res.json or {}).get("generator_limited"):
        return "client-bound"
    if frac is None:
        return None
    return "latency-bound"


def flags(rec: dict, res: LoadResult, win: sampler.Window, mem: sampler.Reading, cost: dict,
          b_in_window: bool) -> list[str]:
    m = rec["metrics"]
    out = []
    if rec.get("limited_by"):
        out.append(rec["limited_by"])
    else:
        out.append("limit-unknown")
    if (res.json or {}).get("generator_limited"):
        out.append("generator-limited")
        if rec["experiment"] in ("latency", "blocking"):
            # Waiting for an overloaded server is data (wait_us); the generator's own lateness
            # is not: this load is beyond what the generator offers on schedule here.
            out.append("beyond-generator")
    cap = rec["config"].get("cpu_cap") or {}
    if cap.get("wanted") and not cap.get("method"):
        out.append("uncapped")   # a throughput point that should have been capped, and why not: cpu_cap.reason
    if m.get("server_cpu_s") is None:
        out.append("cpu-unmeasured")
    if not mem.complete and rec["experiment"] != "churn":   # churn's tree changes by design
        out.append("memory-incomplete")
    if "ran into the measured window" in (rec["config"].get("memory_note") or ""):
        out.append("memory-in-window")
    if (m.get("core_other_tasks") or 0) > CONTENDED_FRAC:
        out.append("contended")
    if m.get("idle_held") is not None and m["idle_held"] < (m.get("idle") or 0):
        out.append("idle-short")
    if (m.get("error_rate") or 0) > ERROR_LIMIT:
        out.append("errors>0.1%")
    if cost.get("window_frac_of_core", 0) > SAMPLER_COST_LIMIT:
        out.append("sampler>2%")
    if not b_in_window:
        out.append("reading-after-load")
    if m.get("window_span_s") is not None and m["window_span_s"] < 0.5 * rec["config"]["duration_s"]:
        out.append("short-window")   # the harness itself was starved: A came late
    stop = (rec.get("server") or {}).get("stop") or {}
    if stop and not stop.get("clean"):
        out.append("unclean-exit")
    return out


def capped_experiment(rec: dict) -> bool:
    return rec["experiment"] in CAPPED_EXPERIMENTS and rec["param"] != PEAK
