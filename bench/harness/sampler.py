"""Readings of a server's whole process tree from /proc (and its cgroup), taken when the harness
asks for them: a memory reading during the warm-up, a CPU reading at the start and one at the
end of the measured window (while the load still runs).

Why readings on schedule instead of a background sampler every 100 ms: a pass over a fork
server's 1000 processes costs ~40 ms of CPU for stat+schedstat and ~40 ms more for
smaps_rollup (measured here), on the load generator's core (the only other core). Sampling
back to back took most of that core and distorted what was measured. Two CPU readings per
window (one cgroup file read each when the server has a cgroup) and one memory pass in the
warm-up keep the harness's cost inside the window near zero; each reading records its own
cost (`cost_s`, CPU time of the reading thread) so the record shows it.

One pass visits each process once and reads everything asked of it there: stat (state,
threads, utime/stime/cutime/cstime ticks), every task's schedstat (run time, ns) and status
(context switches, for small trees only), and smaps_rollup (Rss, Pss, Pss_Anon, Pss_Shmem).
A process listed but gone before it was read makes the pass incomplete: it is retried, and a
pass that stays incomplete says so (`complete=False`) instead of counting the process as 0.

CPU of the tree (`tree_cpu_ns`, cumulative): per process, the larger of its live tasks'
schedstat sum and its utime+stime ticks (which keep threads that exited), plus cutime+cstime
(children it reaped). Processes are read parents first: a child reaped after its parent was
read is missing from the pass (retried), never counted twice. `cgroup_cpu_ns` is the kernel's
sum of the same run times over the server's cgroup, exited tasks included, when the harness
could create one; it is preferred for windows (exact and one read).

Memory: `pss_anon_kib + pss_shmem_kib` is what the model itself allocates (heap, stacks,
copy-on-write copies, shared memory), each page divided among the processes that map it;
`pss_kib` adds the file pages (libc, libstdc++), whose share jumps whenever another process
(the load generator) maps or unmaps the same files, so it is reported beside, never fitted.

Times: `t0`/`t1` are time.monotonic() at the start and end of the pass; a pass over a big tree
reads its processes over that whole span, so a counter delta between two passes covers
[a.t_mid, b.t_mid] to within half a pass.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field

from . import procfs

CTXSW_MAX_TASKS = 256   # above this, per-task status reads cost too much (use perf's count)
TASK_READ_S = 40e-6     # measured: stat + status of one task, in CPU seconds of the reader
RETRIES = 2


@dataclass
class Reading:
    t0: float
    t1: float
    what: str                       # "cpu", "memory" or "cpu+memory"
    complete: bool                  # every listed process was read
    vanished: int                   # processes listed but gone in the last attempt
    attempts: int
    procs: int
    threads: int
    cost_s: float                   # CPU time the reading thread spent on this reading
    tree_cpu_ns: int | None = None
    cgroup_cpu_ns: int | None = None
    cgroup_user_ns: int | None = None
    cgroup_sys_ns: int | None = None
    throttle: dict | None = None    # the cgroup's nr_periods / nr_throttled / throttled_ns
    user_ticks: int | None = None
    sys_ticks: int | None = None
    ctx_vol: int | None = None      # None: not read (tree too big) or incomplete
    ctx_invol: int | None = None
    rss_kib: int | None = None
    pss_kib: int | None = None
    pss_anon_kib: int | None = None
    pss_shmem_kib: int | None = None
    tcp_mem_kib: int | None = None  # machine-wide /proc/net/sockstat
    sockets_used: int | None = None
    core: list[int] | None = None   # /proc/stat ticks of the server CPUs, summed
    tasks: frozenset = field(default=frozenset(), repr=False)   # (pid, tid) seen, not stored

    @property
    def t_mid(self) -> float:
        return (self.t0 + self.t1) / 2

    @property
    def model_kib(self) -> int | None:
        """Pss_Anon + Pss_Shmem: the memory the model itself allocated."""
        if self.pss_anon_kib is None:
            return None
        return self.pss_anon_kib + (self.pss_shmem_kib or 0)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("tasks")
        d["model_kib"] = self.model_kib
        for k in ("t0", "t1"):
            d[k] = round(d[k], 4)
        d["cost_s"] = round(d["cost_s"], 5)
        return d


def _read_bytes(path: str) -> bytes | None:
    # os.open/os.read: a third of the cost of open() with a Python file object, which matters
    # in a pass over thousands of processes.
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:
        return None
    finally:
        os.close(fd)


def _stat(pid: int):
    b = _read_bytes(f"/proc/{pid}/stat")
    if not b:
        return None
    rest = b[b.rfind(b")") + 2:].split()
    try:
        # state, utime, stime, cutime, cstime, num_threads, starttime
        return (rest[0], int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14]), int(rest[17]),
                int(rest[19]))
    except (IndexError, ValueError):
        return None


def _smaps(pid: int) -> dict | None:
    b = _read_bytes(f"/proc/{pid}/smaps_rollup")
    if b is None:
        return None
    out = {}
    for line in b.split(b"\n"):
        k, _, v = line.partition(b":")
        if k in (b"Rss", b"Pss", b"Pss_Anon", b"Pss_Shmem"):
            out[k.decode()] = int(v.split()[0])
    # A zombie (exited, not yet reaped) has an empty smaps_rollup: it holds no memory.
    return out


def _ctxsw(pid: int, tid: int) -> tuple[int, int] | None:
    b = _read_bytes(f"/proc/{pid}/task/{tid}/status")
    if not b:
        return None
    vol = invol = None
    for line in b.split(b"\n"):
        if line.startswith(b"voluntary_ctxt_switches:"):
            vol = int(line.split()[1])
        elif line.startswith(b"nonvoluntary_ctxt_switches:"):
            invol = int(line.split()[1])
    return None if vol is None or invol is None else (vol, invol)


class TreeReader:
    """Reads the process tree rooted at `root`. `cgroup` (a cgroup.Group) adds its exact CPU
    counter; `cores` lists the server CPUs whose /proc/stat ticks each reading records."""

    def __init__(self, root: int, cgroup=None, cores: list[int] | None = None):
        self.root = root
        self.cgroup = cgroup
        self.cores = list(cores or [])
        self.pids_seen: dict[int, int] = {}   # pid -> starttime, for the leftover check at stop

    def read(self, cpu: bool = True, memory: bool = False, ctxsw: bool = True,
             proc_cpu: bool = True, max_tasks: int = CTXSW_MAX_TASKS,
             tasks_hint: int | None = None) -> Reading:
        """One reading. proc_cpu=False skips the per-task schedstat walk when the cgroup
        counter will be used; context switches are then read only for trees of at most
        `max_tasks` tasks (the harness sizes it so two readings cost < 1 % of the window)."""
        self._max_tasks = max_tasks
        c0 = time.thread_time()
        t0 = time.monotonic()
        r = None
        if cpu and not memory and not proc_cpu and self.cgroup is not None and \
                tasks_hint is not None and tasks_hint > max_tasks:
            # A big tree (known from the memory reading): the cgroup's CPU counter alone, not
            # even its member lists (10000 lines each), so the reading stays ~0.1 ms.
            r = Reading(t0, t0, "cpu (cgroup counter)", True, 0, 1, 0, 0, 0.0)
        elif cpu and not memory and not proc_cpu and self.cgroup is not None:
            # The cgroup counts CPU; walk the tree only when it is small enough for its
            # context switches to be cheap to read, else take the counts from the cgroup.
            procs, threads = self.cgroup.counts()
            if threads is None or threads > max_tasks or not ctxsw:
                r = Reading(t0, t0, "cpu", True, 0, 1, procs, threads or 0, 0.0)
        for attempt in range(1, RETRIES + 2):
            if r is not None:
                break
            t0 = time.monotonic()
            r = self._pass(cpu, memory, ctxsw, proc_cpu)
            r.attempts = attempt
            if r.complete:
                break
            r = None if attempt <= RETRIES else r
        assert r is not None
        r.t0 = t0
        if self.cgroup is not None and cpu:
            r.cgroup_cpu_ns = self.cgroup.usage_ns()
            us = self.cgroup.user_sys_ns()
            if us:
                r.cgroup_user_ns, r.cgroup_sys_ns = us
            if self.cgroup.quota is not None:
                r.throttle = self.cgroup.throttled()
        tcp = procfs.sockstat()
        r.tcp_mem_kib, r.sockets_used = tcp.get("tcp_mem_kib"), tcp.get("sockets_used")
        if self.cores:
            ticks = [procfs.cpu_ticks(c) for c in self.cores]
            if all(ticks):
                r.core = [sum(col) for col in zip(*ticks)]
        r.t1 = time.monotonic()
        r.cost_s = time.thread_time() - c0
        return r

    def _pass(self, cpu: bool, memory: bool, ctxsw: bool, proc_cpu: bool) -> Reading:
        pids = procfs.process_tree(self.root)
        what = "+".join(x for x, on in (("cpu", cpu), ("memory", memory)) if on)
        r = Reading(0.0, 0.0, what, True, 0, 1, 0, 0, 0.0)
        cpu_ns = user = sys_ = 0
        rss = pss = anon = shmem = 0
        vol = invol = 0
        tasks = []
        ctx_ok = ctxsw
        for pid in pids:   # parents before children (process_tree is breadth-first)
            st = _stat(pid)
            if st is None:
                r.vanished += 1
                continue
            _state, utime, stime, cutime, cstime, nthreads, starttime = st
            r.procs += 1
            r.threads += nthreads
            self.pids_seen.setdefault(pid, starttime)
            if cpu:
                sched = 0
                tids = procfs.list_tasks(pid) if (proc_cpu or ctx_ok) else []
                if ctx_ok and len(tasks) + len(tids) > getattr(self, "_max_tasks", CTXSW_MAX_TASKS):
                    ctx_ok = False
                for tid in tids:
                    tasks.append((pid, tid))
                    if proc_cpu:
                        b = _read_bytes(f"/proc/{pid}/task/{tid}/schedstat")
                        if b:
                            sched += int(b.split()[0])
                    if ctx_ok:
                        cs = _ctxsw(pid, tid)
                        if cs is None:
                            ctx_ok = False   # a task vanished: the sum would miss its switches
                        else:
                            vol += cs[0]
                            invol += cs[1]
                own = max(sched, (utime + stime) * procfs.TICK_NS)
                cpu_ns += own + (cutime + cstime) * procfs.TICK_NS
                user += utime + cutime
                sys_ += stime + cstime
            if memory:
                sm = _smaps(pid)
                if sm is None:
                    r.vanished += 1
                    r.procs -= 1
                    continue
                rss += sm.get("Rss", 0)
                pss += sm.get("Pss", 0)
                anon += sm.get("Pss_Anon", 0)
                shmem += sm.get("Pss_Shmem", 0)
        r.complete = r.vanished == 0 and r.procs > 0
        if cpu:
            if proc_cpu:
                r.tree_cpu_ns = cpu_ns
            r.user_ticks, r.sys_ticks = user, sys_
            r.tasks = frozenset(tasks)
            if ctx_ok and r.complete:
                r.ctx_vol, r.ctx_invol = vol, invol
        if memory:
            r.rss_kib, r.pss_kib, r.pss_anon_kib, r.pss_shmem_kib = rss, pss, anon, shmem
        return r


# --- a window between two readings --------------------------------------------------------

@dataclass
class Window:
    start: float
    end: float
    cpu_s: float | None             # None: not measurable (reason in notes)
    cpu_source: str | None          # "cgroup" | "proc"
    user_s: float | None
    sys_s: float | None
    ctx_vol: int | None
    ctx_invol: int | None
    procs_max: int
    threads_max: int
    core_busy: float | None = None
    core_other_tasks: float | None = None
    core_softirq: float | None = None
    core_steal: float | None = None
    # Of the quota periods in which the server ran, the share in which the quota stopped it
    # (capped points only): direct evidence that it wanted more CPU than it was given.
    throttled_frac: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("start", "end", "cpu_s", "user_s", "sys_s"):
            if d[k] is not None:
                d[k] = round(d[k], 6)
        return d


def window(a: Reading, b: Reading, prefer_cgroup: bool = True) -> Window:
    """What the server did between reading a and reading b. A counter that went backwards, or a
    reading that missed processes, gives no figure (cpu_s None and a note), never a clamped 0."""
    notes: list[str] = []
    cpu_ns = None
    source = None
    if prefer_cgroup and a.cgroup_cpu_ns is not None and b.cgroup_cpu_ns is not None:
        start, end = a.t1, b.t1          # one file read: exact at the end of each reading
        cpu_ns, source = b.cgroup_cpu_ns - a.cgroup_cpu_ns, "cgroup"
    else:
        start, end = a.t_mid, b.t_mid
        if a.tree_cpu_ns is None or b.tree_cpu_ns is None:
            notes.append("no CPU reading of the process tree")
        elif not (a.complete and b.complete):
            notes.append(f"a CPU reading missed processes that exited mid-pass "
                         f"({a.vanished} and {b.vanished} after retries): CPU not measurable")
        else:
            cpu_ns, source = b.tree_cpu_ns - a.tree_cpu_ns, "proc"
    if cpu_ns is not None and cpu_ns < 0:
        notes.append(f"CPU counter went backwards by {-cpu_ns / 1e6:.1f} ms between the readings "
                     f"({source}): CPU not measurable")
        cpu_ns = None
    cpu_s = None if cpu_ns is None else cpu_ns / 1e9
    user_s = sys_s = None
    du = ds = None
    if source == "cgroup" and a.cgroup_user_ns is not None and b.cgroup_user_ns is not None:
        du, ds = b.cgroup_user_ns - a.cgroup_user_ns, b.cgroup_sys_ns - a.cgroup_sys_ns
    elif a.user_ticks is not None and b.user_ticks is not None:
        du, ds = b.user_ticks - a.user_ticks, b.sys_ticks - a.sys_ticks
    if cpu_s is not None and du is not None:
        # Split the exact total by the (tick-based) user/system ratio.
        if du >= 0 and ds >= 0 and du + ds > 0:
            user_s = cpu_s * du / (du + ds)
            sys_s = cpu_s - user_s
    ctx_vol = ctx_invol = None
    if a.ctx_vol is not None and b.ctx_vol is not None:
        if a.tasks == b.tasks:
            ctx_vol, ctx_invol = b.ctx_vol - a.ctx_vol, b.ctx_invol - a.ctx_invol
        else:
            # Tasks came or went: /proc loses the switches of every task that exited.
            notes.append("tasks were born or exited between the readings: /proc context "
                         "switches incomplete, not reported")
    w = Window(start, end, cpu_s, source, user_s, sys_s, ctx_vol, ctx_invol,
               max(a.procs, b.procs), max(a.threads, b.threads), notes=notes)
    if a.throttle and b.throttle:
        periods = b.throttle.get("nr_periods", 0) - a.throttle.get("nr_periods", 0)
        throttled = b.throttle.get("nr_throttled", 0) - a.throttle.get("nr_throttled", 0)
        if periods > 0 and throttled >= 0:
            w.throttled_frac = round(throttled / periods, 4)
    _core(w, a, b)
    return w


def _core(w: Window, a: Reading, b: Reading) -> None:
    """How busy the server CPUs were over the window and with what (/proc/stat ticks, 10 ms
    resolution: meaningful over a second or so)."""
    if not a.core or not b.core:
        return
    d = [y - x for x, y in zip(a.core, b.core)]
    total = sum(d)
    if total <= 0:
        return
    user, nice, system, idle, iowait, irq, softirq, steal = d
    w.core_busy = round((total - idle - iowait) / total, 4)
    w.core_softirq = round((irq + softirq) / total, 4)
    w.core_steal = round(steal / total, 4)
    if w.cpu_s is not None:
        # Ticks are summed over the server CPUs: the share is of all of them together.
        tasks_s = (user + nice + system) / procfs.CLK_TCK
        w.core_other_tasks = round(max(0.0, tasks_s - w.cpu_s) / (total / procfs.CLK_TCK), 4)
