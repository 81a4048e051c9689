"""Samples a server's whole process tree from /proc, every 100 ms, in a background thread.

What one sample holds, summed over the root and all its descendants alive at that moment:

* cpu_ns - CPU time, cumulative. Per process: the larger of the sum of its live tasks'
  schedstat run times (nanoseconds, exact) and its stat utime+stime (ticks, but including
  threads that already exited), plus cutime+cstime: the time of children it reaped. The sum
  over the tree of these per-process totals only grows, and a difference between two samples
  is the CPU the tree used in between: a process alive at the first sample and reaped before
  the second moves its whole life into its parent's cutime while its first value is
  subtracted. (utime/stime ticks alone would lose most of a short-lived child's time.)
* user_ticks / sys_ticks - the same accounting from stat ticks, only to split cpu_ns into
  user and system shares.
* ctx_vol / ctx_invol - context switches, cumulative over every task ever seen (a task that
  vanished keeps its last seen count; tasks born and gone between samples are not seen).
* procs, threads, rss_kib (sum of RSS: counts shared pages many times) and pss_kib (sum of
  smaps_rollup Pss: shared pages divided among their users, so a tree's PSS sum is what it
  really costs). Reading smaps_rollup walks page tables; for big trees it is read less often
  (pss_kib is None in samples that skipped it).
* tcp_mem_kib - kernel socket buffer memory of the whole machine (/proc/net/sockstat).

The sampler keeps its own cost bounded: when one pass over a big tree (thousands of forked
processes) takes longer than a fifth of the period, the period stretches so the sampler never
uses more than ~20 % of the client CPU it runs on.
"""
from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass, field

from . import procfs


@dataclass
class Sample:
    t: float            # time.monotonic() when the pass started
    cost_s: float       # how long the pass took
    procs: int
    threads: int
    cpu_ns: int
    user_ticks: int
    sys_ticks: int
    ctx_vol: int
    ctx_invol: int
    rss_kib: int
    pss_kib: int | None
    tcp_mem_kib: int
    core: list[int] | None = None   # /proc/stat ticks of the server's CPU (see procfs.cpu_ticks)

    def to_json(self) -> dict:
        d = asdict(self)
        d["t"] = round(d["t"], 4)
        d["cost_s"] = round(d["cost_s"], 5)
        return d


@dataclass
class _TaskCounts:
    vol: int
    invol: int


class TreeReader:
    """Takes one sample of a process tree. Keeps per-task context-switch history between
    samples so vanished tasks still count."""

    def __init__(self, root: int, pss_every_s: float = 0.0, core: int | None = None,
                 pss_always: bool = False):
        self.root = root
        self.core = core
        self.pss_always = pss_always
        self.pss_every_s = pss_every_s    # 0: every sample
        self._tasks: dict[tuple[int, int], _TaskCounts] = {}
        self._retired = _TaskCounts(0, 0)   # counts of tasks whose tid was reused
        self._last_pss_t = -1e9
        self._pss_cost = 0.0
        self.pids_seen: dict[int, int] = {}   # pid -> starttime, for leftover checks

    def sample(self, want_pss: bool | None = None) -> Sample:
        t0 = time.monotonic()
        pids = procfs.process_tree(self.root)
        if want_pss is None:
            # Read PSS when it is cheap, or often enough that its cost stays near 10 %.
            want_pss = self.pss_always or \
                (t0 - self._last_pss_t) >= max(self.pss_every_s, 10 * self._pss_cost)
        procs = threads = rss = 0
        pss = 0
        cpu_ns = user = sys_ = 0
        for pid in pids:
            st = procfs.proc_stat(pid)
            if st is None:
                continue   # exited between listing and reading
            self.pids_seen.setdefault(pid, st.starttime)
            procs += 1
            threads += st.num_threads
            sched_sum = 0
            for tid in procfs.list_tasks(pid):
                ns = procfs.task_runtime_ns(pid, tid)
                if ns is not None:
                    sched_sum += ns
                cs = procfs.task_ctxsw(pid, tid)
                if cs is not None:
                    key = (pid, tid)
                    prev = self._tasks.get(key)
                    if prev is not None and (cs[0] < prev.vol or cs[1] < prev.invol):
                        # tid reused by a new task: keep the old task's counts.
                        self._retired.vol += prev.vol
                        self._retired.invol += prev.invol
                    self._tasks[key] = _TaskCounts(cs[0], cs[1])
            own = max(sched_sum, (st.utime + st.stime) * procfs.TICK_NS)
            cpu_ns += own + (st.cutime + st.cstime) * procfs.TICK_NS
            user += st.utime + st.cutime
            sys_ += st.stime + st.cstime
            rss += procfs.rss_kib(pid) or 0
        if want_pss:
            p0 = time.monotonic()
            for pid in pids:
                pss += procfs.pss_kib(pid) or 0
            self._pss_cost = time.monotonic() - p0
            self._last_pss_t = t0
        vol = self._retired.vol + sum(c.vol for c in self._tasks.values())
        invol = self._retired.invol + sum(c.invol for c in self._tasks.values())
        tcp = procfs.sockstat().get("tcp_mem_kib", 0)
        core = procfs.cpu_ticks(self.core) if self.core is not None else None
        return Sample(t0, time.monotonic() - t0, procs, threads, cpu_ns, user, sys_, vol, invol,
                      rss, pss if want_pss else None, tcp, core)


class Sampler:
    """Background thread: samples the tree every `period_s` until stop()."""

    def __init__(self, root: int, period_s: float = 0.1, max_duty: float = 0.2,
                 core: int | None = None, pss_always: bool = False):
        # pss_always with max_duty 1.0 is the memory mode (idle experiment): passes back to back,
        # each with PSS, so that even a tree of thousands of processes is measured a few times
        # while its connections are held.
        self.reader = TreeReader(root, core=core, pss_always=pss_always)
        self.period_s = period_s
        self.max_duty = max_duty
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="sampler", daemon=True)
        self.error: str | None = None

    def start(self) -> "Sampler":
        self.samples.append(self.reader.sample(want_pss=True))
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:   # sample_now() may run a pass from the caller's thread
                    s = self.reader.sample()
                    self.samples.append(s)
                wait = max(self.period_s, s.cost_s / self.max_duty) - s.cost_s
                self._stop.wait(max(wait, 0.005))
        except Exception as e:  # never take the harness down; the record says what happened
            self.error = f"{type(e).__name__}: {e}"

    def sample_now(self, want_pss: bool = True) -> Sample:
        """An extra sample from the caller's thread, e.g. right after the load ends."""
        with self._lock:
            s = self.reader.sample(want_pss=want_pss)
            self.samples.append(s)
        return s

    def stop(self) -> list[Sample]:
        self._stop.set()
        self._thread.join(timeout=30)
        with self._lock:
            return sorted(self.samples, key=lambda s: s.t)


# --- turning samples into figures for a time window ---------------------------------------

_CUMULATIVE = ("cpu_ns", "user_ticks", "sys_ticks", "ctx_vol", "ctx_invol")


def _interp(samples: list[Sample], t: float, key: str) -> float:
    """Linear interpolation of a cumulative counter at time t (clamped to the sampled range)."""
    if t <= samples[0].t:
        return getattr(samples[0], key)
    for a, b in zip(samples, samples[1:]):
        if a.t <= t <= b.t:
            va, vb = getattr(a, key), getattr(b, key)
            if b.t == a.t:
                return vb
            return va + (vb - va) * (t - a.t) / (b.t - a.t)
    return getattr(samples[-1], key)


@dataclass
class Window:
    start: float
    end: float
    cpu_s: float
    user_s: float | None   # None when no tick was counted (too short to split)
    sys_s: float | None
    ctx_vol: int
    ctx_invol: int
    procs_max: int
    threads_max: int
    rss_kib_max: int
    pss_kib_max: int | None
    pss_kib_last: int | None
    tcp_mem_kib_max: int
    samples_in_window: int
    # The server's CPU over the window, from /proc/stat (fractions of that core): busy in all,
    # used by tasks other than the server, softirq (loopback packet work), hypervisor steal.
    core_busy: float | None = None
    core_other_tasks: float | None = None
    core_softirq: float | None = None
    core_steal: float | None = None
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        d = asdict(self)
        for k in ("start", "end", "cpu_s", "user_s", "sys_s"):
            if d[k] is not None:
                d[k] = round(d[k], 6)
        return d


def window(samples: list[Sample], start: float, end: float, gauge_start: float | None = None) -> Window:
    """Figures for [start, end]: counter deltas by interpolation; gauges (processes, threads,
    RSS, PSS) as the maximum of the samples in [gauge_start, end] (default: the window; the
    harness passes the start of the warm-up, when every connection is already open), or of the
    nearest samples if that span holds none."""
    if not samples:
        raise ValueError("no samples")
    samples = sorted(samples, key=lambda s: s.t)
    d = {k: _interp(samples, end, k) - _interp(samples, start, k) for k in _CUMULATIVE}
    g0 = start if gauge_start is None else min(gauge_start, start)
    inside = [s for s in samples if g0 <= s.t <= end]
    notes = []
    if not inside:
        notes.append("no sample while the load ran; gauges from the nearest samples")
        before = [s for s in samples if s.t < g0][-1:]
        after = [s for s in samples if s.t > end][:1]
        inside = before + after
    pss_vals = [s.pss_kib for s in inside if s.pss_kib is not None]
    if not pss_vals:
        notes.append("no PSS reading while the load ran")
    # PSS grows with the tree: a reading taken while a fork server was still spawning children
    # would understate it, so only readings of (within 1 % of) the fullest tree seen count.
    procs_max = max(s.procs for s in inside)
    pss_full = [s.pss_kib for s in inside
                if s.pss_kib is not None and s.procs >= 0.99 * procs_max]
    if pss_vals and not pss_full:
        notes.append(f"PSS read only while fewer than {procs_max} processes existed")
    ticks = d["user_ticks"] + d["sys_ticks"]
    cpu_s = max(d["cpu_ns"], 0) / 1e9
    # Split the exact total by the tick ratio; ticks alone may be coarse.
    user_share = d["user_ticks"] / ticks if ticks > 0 else 0.0
    core = _core_window(samples, start, end, cpu_s)
    return Window(
        **core,
        start=start, end=end, cpu_s=cpu_s,
        user_s=cpu_s * user_share if ticks > 0 else None,
        sys_s=cpu_s * (1 - user_share) if ticks > 0 else None,
        ctx_vol=int(round(d["ctx_vol"])), ctx_invol=int(round(d["ctx_invol"])),
        procs_max=procs_max, threads_max=max(s.threads for s in inside),
        rss_kib_max=max(s.rss_kib for s in inside),
        pss_kib_max=max(pss_full) if pss_full else None,
        pss_kib_last=pss_vals[-1] if pss_vals else None,
        tcp_mem_kib_max=max(s.tcp_mem_kib for s in inside),
        samples_in_window=len([s for s in samples if start <= s.t <= end]),
        notes=notes,
    )


def _core_window(samples: list[Sample], start: float, end: float, tree_cpu_s: float) -> dict:
    """How busy the server's core was over the window, and with what (from /proc/stat ticks:
    10 ms resolution, so only meaningful over windows of a second or so)."""
    with_core = [s for s in samples if s.core]
    if len(with_core) < 2:
        return {}
    a = min(with_core, key=lambda s: abs(s.t - start))
    b = min(with_core, key=lambda s: abs(s.t - end))
    if b.t <= a.t:
        return {}
    d = [y - x for x, y in zip(a.core, b.core)]
    total = sum(d)
    if total <= 0:
        return {}
    user, nice, system, idle, iowait, irq, softirq, steal = d
    span_ticks = (b.t - a.t) * procfs.CLK_TCK
    tasks_s = (user + nice + system) / procfs.CLK_TCK
    # The tree's CPU scaled to the ticks' interval [a.t, b.t] (the window may differ slightly).
    own_s = tree_cpu_s * (b.t - a.t) / max(end - start, 1e-9)
    return {
        "core_busy": round((total - idle - iowait) / total, 4),
        "core_other_tasks": round(max(0.0, tasks_s - own_s) * procfs.CLK_TCK / span_ticks, 4),
        "core_softirq": round((irq + softirq) / total, 4),
        "core_steal": round(steal / total, 4),
    }
