"""System calls and context switches per request, counted from kernel tracepoints with perf.

What one request costs in kernel crossings is the lecture's mechanism made countable: epoll
serves a keep-alive request with about one read, one write and one epoll_wait; a forked
process per connection adds clone, wait4 and exit_group; select and poll pay per call for the
whole fd set. This module counts them with `perf stat` on tracepoints (works as root without a
hardware PMU; Debian `linux-perf`):

    perf stat -I 100 -x, -a -C <server cpus> [-G <cgroup>] -D -1 --control fd:CTL,ACK \\
        -e raw_syscalls:sys_enter -e context-switches -e syscalls:sys_enter_<name> ...

How it counts, and why:

* Per CPU, not per thread (`-a -C`, docs/architecture.md §5): a 1000-thread server would need one
  counter per thread and event, more descriptors than `ulimit -n` allows. perf opens one
  descriptor per event and CPU.
* Only the server: the server's process tree is moved into a fresh cgroup (v2, created
  inside the one it is in, so a cpu.max cap on that one still holds; children forked later
  inherit it) and perf filters on it (`-G`). Without it, `-a -C` also counts whatever else runs on the server's CPUs (other users
  of a shared machine, kernel threads, the harness). When no cgroup v2 hierarchy is writable,
  counting falls back to the whole CPUs ("scope": "cpus" in the record). The load generator
  runs on the client CPUs and is counted in neither scope.
* A curated set of tracepoints, not all ~360. Descriptors are not the limit: perf opens one
  per event and CPU (measured: 726 for all 360 sys_enter tracepoints on 2 CPUs), so the full
  set fits `ulimit -n` 20000 up to 55 server CPUs. Time is: opening is quick (60 ms), but
  perf's teardown waits for an RCU grace period per tracepoint, ~30-40 ms each (all 360: 11.5 s
  on one CPU, 15.6 s on two; the 58 curated ones: 1.5-2.2 s). The set (CURATED) names every
  call the models make per request or per connection;
  `raw_syscalls:sys_enter` counts all calls, so `syscalls_per_req` is the true total and
  `syscall_other_per_req` is what the named set missed.
* A separate counting window, never inside a timed window whose latency is reported: perf's
  tracepoints put every task's system calls on the kernel's slow path while they are open.
  The caller runs a short extra load window (e.g. 1 s closed loop, same connections and
  request) while perf counts, and its completed requests divide the counts.
* An idle baseline first: the same perf process counts a window with the server idle, is
  disabled for 2.5 intervals, then counts the loaded window; its interval output (-I) is
  split by time into the two windows (perf's interval clock is dated by a `ping`). The idle
  rate times the loaded window's length is subtracted. In the cgroup scope the baseline is the
  server's own idle activity (timer wake-ups, housekeeping threads, Python's interpreter); in
  the cpus scope it also holds everything else on those CPUs (other processes, kernel
  threads), and when that is more than 5 % of the loaded count the figures are withheld
  (recorded as unavailable): on a shared machine other users' load comes and goes, so
  subtracting an earlier idle rate cannot recover the server's count (measured here: another
  user's server on CPU 0 made 15k recvfrom calls in a 0.3 s baseline). Loopback softirq work makes no system calls, but the context switches of kernel
  threads woken on the server CPUs (ksoftirqd, kworkers) are in the cpus scope only.
* Context switches are perf's `context-switches` software event for the same scope: unlike
  /proc's per-task counters it includes children reaped during the window (fork churn).

The counting window's load starts without warm-up (its connections are opened while perf
counts), so the accept/close of its own connections are included: for c connections and R
requests that is a few calls times c/R per request (c=100 over ~100k requests: < 0.01).
"""
from __future__ import annotations

import functools
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from . import procfs

PERF = "perf"
TOTAL_EVENT = "raw_syscalls:sys_enter"
CTXSW_EVENT = "context-switches"
INTERVAL_MS = 50   # short: each disable waits 2.5 intervals so that phases stay apart
WINDOW_S = 1.0        # the loaded counting window
BASELINE_S = 0.3      # the idle window before it
ACK_TIMEOUT_S = 30.0  # opening the events
STOP_TIMEOUT_S = 60.0 # perf's teardown (one RCU grace period per tracepoint)
MAX_CPUS_BASELINE_SHARE = 0.05   # cpus scope: idle noise above this share withholds the counts

# The calls the models make per request or per connection, as the kernel names them (glibc's
# select() enters as pselect6, fork() as clone, pthread_create as clone3, sendfile as
# sendfile64). Names this kernel has no tracepoint for are left out at run time.
CURATED = [
    # readiness
    "epoll_wait", "epoll_pwait", "epoll_pwait2", "epoll_ctl", "select", "pselect6", "poll",
    "ppoll", "io_uring_enter",
    # data
    "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg", "sendfile64",
    # connections
    "accept", "accept4", "close", "shutdown", "setsockopt", "getsockopt", "fcntl", "ioctl",
    # processes and threads
    "clone", "clone3", "fork", "vfork", "wait4", "exit", "exit_group", "set_robust_list", "rseq",
    "futex", "sched_yield", "prctl", "getppid",
    # memory
    "mmap", "munmap", "mprotect", "madvise", "brk",
    # signals, time
    "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "nanosleep", "clock_nanosleep",
    "timerfd_settime", "eventfd2", "getpid", "gettid",
    # seen in the Python and library models
    "getsockname", "getpeername", "newfstatat", "lseek", "getrandom",
]

# Which points get a counting window is the preset's choice (plan.Preset.count_points, first
# repetition only): each window costs about estimate_s(), and counts per request barely move
# between repetitions (they are counts, not times).
# Measured here (2 vCPUs, shared): a default-preset point (0.53 s window, 50 ms intervals)
# took ~3.2 s more with its counting window than without: the window, the baseline, two gaps of 2.5 intervals after
# each disable, and ~2 s of perf opening and tearing down ~60 tracepoints.
PERF_OPEN_CLOSE_S = 2.1


def window_for(duration_s: float | None) -> float:
    """The loaded counting window of a preset whose points last duration_s (count_for_point)."""
    return max(0.2, min(WINDOW_S, duration_s or WINDOW_S))


def estimate_s(duration_s: float | None = None) -> float:
    """Planned extra wall time of one counting window (for the plan's time estimate), for a
    preset whose points last duration_s (the window is as short as them, at least 0.2 s)."""
    if available() is not None:
        return 0.0
    return window_for(duration_s) + BASELINE_S + 2 * 2.5 * INTERVAL_MS / 1000 + PERF_OPEN_CLOSE_S



# --- can perf count? ---------------------------------------------------------------------

def tracefs() -> Path | None:
    for p in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing"):
        if Path(p, "events", "raw_syscalls", "sys_enter").is_dir():
            return Path(p)
    return None


def _paranoid() -> int | None:
    return procfs.read_int("/proc/sys/kernel/perf_event_paranoid")


@functools.lru_cache(maxsize=1)
def available() -> str | None:
    """None when perf can count system calls here, else the reason (recorded as unavailable,
    never as 0)."""
    if shutil.which(PERF) is None:
        return "perf not found (Debian package linux-perf)"
    if os.geteuid() != 0:
        par = _paranoid()
        if par is None or par > -1:
            return (f"not root (system-wide tracepoints need root or "
                    f"kernel.perf_event_paranoid <= -1; it is {par})")
    if tracefs() is None:
        return "kernel syscall tracepoints absent (no events/raw_syscalls in tracefs)"
    try:
        p = subprocess.run([PERF, "stat", "-x,", "-a", "-C", "0", "-e", TOTAL_EVENT, "--", "true"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"perf stat failed: {e}"
    counts = parse_csv(p.stderr)
    if p.returncode != 0 or counts.get(TOTAL_EVENT) is None:
        last = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return f"perf cannot count {TOTAL_EVENT}: {last[:200]}"
    return None


def events_here(names: Iterable[str] | None = None) -> list[str]:
    """The curated call names this kernel has a sys_enter tracepoint for."""
    names = CURATED if names is None else names
    root = tracefs()
    if root is None:
        return []
    d = root / "events" / "syscalls"
    return [n for n in names if (d / f"sys_enter_{n}").is_dir()]


# --- perf's CSV ----------------------------------------------------------------------------

def _num(s: str) -> int | None:
    s = s.strip()
    if not s or s.startswith("<"):
        return None   # <not counted>, <not supported>
    try:
        return int(float(s))
    except ValueError:
        return None


def parse_csv(text: str, cgroup: bool = False) -> dict[str, int | None]:
    """Counts of `perf stat -x,` output (no interval): event -> count, None when perf says
    <not counted> or <not supported>. Lines are `count,unit,event[,cgroup],run,pct,...`."""
    out: dict[str, int | None] = {}
    for line in text.splitlines():
        f = line.split(",")
        if line.startswith("#") or len(f) < 3:
            continue
        out[f[2].strip()] = _num(f[0])
    return out


def parse_intervals(text: str, cgroup: bool = False) -> list[tuple[float, dict[str, int | None]]]:
    """`perf stat -I N -x,` output as [(time, {event: count})], one entry per interval, time
    in seconds since perf started counting. Lines are `time,count,unit,event[,cgroup],run,
    pct,...`; a count is None when perf printed <not counted> (the events were disabled, or
    the cgroup never ran on these CPUs in that interval) or <not supported>."""
    by_t: dict[float, dict] = {}
    for line in text.splitlines():
        f = line.split(",")
        if line.startswith("#") or len(f) < 4:
            continue
        try:
            t = float(f[0])
        except ValueError:
            continue
        by_t.setdefault(t, {})[f[3].strip()] = _num(f[1])
    return sorted(by_t.items())


def assign_phases(intervals: list[tuple[float, dict]], windows: list[tuple[float, float]],
                  interval_s: float = INTERVAL_MS / 1000, tol_s: float = 0.02) -> list[dict[str, int]]:
    """Sums the intervals that overlap each window (start, end: seconds on perf's clock) into
    one count per event. The windows are separated by a disabled stretch longer than two
    intervals, so an interval overlaps one window at most; counts outside every window (there
    are none while the events are disabled) are dropped."""
    phases: list[dict[str, int]] = [{} for _ in windows]
    for t, counts in intervals:
        for i, (s, e) in enumerate(windows):
            if t > s - tol_s and t - interval_s < e + tol_s:
                for ev, n in counts.items():
                    phases[i][ev] = phases[i].get(ev, 0) + (n or 0)
                break
    return phases


def metric_name(event: str) -> str | None:
    """summary.csv's name (docs/architecture.md §5) of a counted event."""
    if event == TOTAL_EVENT:
        return "syscalls_per_req"
    if event == CTXSW_EVENT:
        return "ctxsw_per_req"
    if event.startswith("syscalls:sys_enter_"):
        return f"syscall_{event[len('syscalls:sys_enter_'):]}_per_req"
    return None


def per_request(load: dict[str, int], requests: int, load_s: float,
                baseline: dict[str, int] | None = None, baseline_s: float = 0.0,
                digits: int = 4) -> dict[str, float]:
    """Counts of the loaded window minus the idle baseline's rate over the same time, per
    completed request. Also syscall_other_per_req: all calls minus the named ones."""
    if requests <= 0:
        return {}
    out: dict[str, float] = {}
    named = 0.0
    for ev, n in load.items():
        name = metric_name(ev)
        if name is None:
            continue
        base = 0.0
        if baseline and baseline_s > 0:
            base = (baseline.get(ev) or 0) / baseline_s * load_s
        net = max(0.0, (n or 0) - base)
        if ev.startswith("syscalls:sys_enter_"):
            named += net
            if round(net / requests, digits) == 0:
                continue   # a call this model does not make per request: no row for it
        out[name] = round(net / requests, digits)
    if "syscalls_per_req" in out:
        total = out["syscalls_per_req"] * requests
        out["syscall_other_per_req"] = round(max(0.0, total - named) / requests, digits)
    return out


def baseline_share(load: dict[str, int], baseline: dict[str, int], load_s: float, baseline_s: float) -> float:
    """The share of the loaded window's calls that the idle rate accounts for."""
    total = load.get(TOTAL_EVENT) or 0
    if not total or baseline_s <= 0:
        return 0.0
    return (baseline.get(TOTAL_EVENT) or 0) / baseline_s * load_s / total


# --- the server's cgroup -------------------------------------------------------------------

def cgroup2_root() -> Path | None:
    """Mount point of the cgroup v2 hierarchy (a fresh Debian 12's /sys/fs/cgroup, or the
    hybrid layout's /sys/fs/cgroup/unified)."""
    text = procfs.read_text("/proc/self/mountinfo") or ""
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ")[:1] == ["cgroup2"]:
            return Path(left.split(" ")[4])
    return None


def _v2_path(pid: int) -> str | None:
    for line in (procfs.read_text(f"/proc/{pid}/cgroup") or "").splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return None


CGROUP_PREFIX = "cmbench-syscalls-"


def _remove_stale(parent: Path) -> None:
    """Removes empty counting cgroups of harness processes that no longer exist (killed with
    SIGKILL mid-window): cmbench-syscalls-<harness pid>-<server pid>."""
    try:
        entries = list(parent.glob(f"{CGROUP_PREFIX}*"))
    except OSError:
        return
    for d in entries:
        try:
            owner = int(d.name[len(CGROUP_PREFIX):].split("-")[0])
        except ValueError:
            continue
        if owner != os.getpid() and not Path(f"/proc/{owner}").exists():
            try:
                d.rmdir()
            except OSError:
                pass   # still holds a task: leave it


class ServerCgroup:
    """Moves a process tree into a fresh v2 cgroup, so perf counts only it; moves it back and
    removes the cgroup on exit. The cgroup is made inside the one the server is already in
    (the root here), so a CPU cap the harness put on that cgroup (cpu.max) keeps holding
    while it counts. `name` is perf's -G argument (the path relative to the mount), or None
    when no cgroup could be made (reason in `why`)."""

    def __init__(self, pids: list[int]):
        self.pids = pids
        self.root = cgroup2_root()
        self.dir: Path | None = None
        self.name: str | None = None
        self.why: str | None = None
        self.origin: dict[int, str] = {}

    def __enter__(self) -> "ServerCgroup":
        if self.root is None:
            self.why = "no cgroup v2 hierarchy mounted"
            return self
        parent_rel = (_v2_path(self.pids[0]) or "/").strip("/")
        parent = self.root / parent_rel if parent_rel else self.root
        _remove_stale(parent)
        d = parent / f"{CGROUP_PREFIX}{os.getpid()}-{self.pids[0]}"
        try:
            d.mkdir()
        except OSError as e:
            self.why = f"cannot create {d}: {e.strerror}"
            return self
        self.dir, self.name = d, str(d.relative_to(self.root))
        for pid in self.pids:
            origin = _v2_path(pid)
            try:
                (d / "cgroup.procs").write_text(f"{pid}\n")
                self.origin[pid] = origin or "/"
            except OSError as e:
                if procfs.proc_stat(pid) is not None:   # a child that exited meanwhile is fine
                    self.why = f"cannot move pid {pid} into {d}: {e.strerror}"
        if self.why:
            self.__exit__(None, None, None)
        return self

    def __exit__(self, *exc) -> None:
        if self.dir is None:
            return
        procs = self.dir / "cgroup.procs"
        # Everything still inside, including children forked meanwhile, goes back where the
        # server came from (the children's parent's cgroup).
        home = self.root / (self.origin.get(self.pids[0], "/").lstrip("/")) if self.root else None
        for _ in range(50):
            text = procfs.read_text(str(procs)) or ""
            for pid in (int(x) for x in text.split()):
                dest = self.root / self.origin[pid].lstrip("/") if pid in self.origin else home
                try:
                    (dest / "cgroup.procs").write_text(f"{pid}\n")
                except OSError:
                    pass
            try:
                self.dir.rmdir()
                break
            except OSError:
                time.sleep(0.02)   # exiting children leave the cgroup a moment later
        self.dir = None


# --- perf around two windows ---------------------------------------------------------------

@dataclass
class Counting:
    """One perf process over a baseline and a loaded window."""
    cpus: list[int] | None
    events: list[str]
    cgroup: str | None = None
    proc: subprocess.Popen | None = None
    out_path: str = ""
    _ctl: int = -1
    _ack: int = -1
    windows: list[tuple[float, float]] = field(default_factory=list)   # on perf's clock
    _t_ref: float = 0.0   # time.monotonic() when perf started counting (its interval clock's 0)
    _t0: float = 0.0
    _err_text: str | None = None

    def command(self, ctl_fd: int, ack_fd: int) -> list[str]:
        cmd = [PERF, "stat", "-x,", "-I", str(INTERVAL_MS), "-o", self.out_path, "-a"]
        if self.cpus:
            cmd += ["-C", ",".join(str(c) for c in self.cpus)]
        cmd += ["-D", "-1", "--control", f"fd:{ctl_fd},{ack_fd}"]
        for ev in self.events:
            cmd += ["-e", ev]
        if self.cgroup:
            cmd += ["-G", self.cgroup]   # one cgroup applies to every event
        return cmd

    def start(self) -> str | None:
        fd, self.out_path = tempfile.mkstemp(prefix="cmbench-perf-", suffix=".csv")
        os.close(fd)
        ctl_r, self._ctl = os.pipe()
        self._ack, ack_w = os.pipe()
        try:
            self.proc = subprocess.Popen(self.command(ctl_r, ack_w), pass_fds=(ctl_r, ack_w),
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        except OSError as e:
            return f"cannot start perf: {e}"
        finally:
            os.close(ctl_r)
            os.close(ack_w)
        # perf answers control commands only once its events are open and its interval clock
        # has started: the ping's answer dates that clock's 0 (to about a millisecond).
        why = self._command("ping")
        self._t_ref = time.monotonic()
        return why

    def _command(self, word: str) -> str | None:
        try:
            os.write(self._ctl, word.encode() + b"\n")
        except OSError as e:
            return f"perf control ({e.strerror}): {self._exited_stderr()}"
        r, _, _ = select.select([self._ack], [], [], ACK_TIMEOUT_S)
        if not r:
            return f"perf did not acknowledge '{word}' within {ACK_TIMEOUT_S:.0f} s"
        data = os.read(self._ack, 64)
        if not data.startswith(b"ack"):
            return f"perf stopped before '{word}': {self._exited_stderr()}"
        return None

    def _exited_stderr(self) -> str:
        """perf's own words when it quit (a bad -G cgroup, an unknown event, ...)."""
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        return self._stderr() or "(nothing on perf's stderr)"

    def enable(self) -> str | None:
        self._t0 = time.monotonic() - self._t_ref
        return self._command("enable")

    def disable(self) -> str | None:
        why = self._command("disable")
        self.windows.append((self._t0, time.monotonic() - self._t_ref))
        # A disabled stretch longer than two intervals: the phases stay apart in the output.
        time.sleep(2.5 * INTERVAL_MS / 1000)
        return why

    def _stderr(self) -> str:
        """The first line perf wrote on stderr, once it has exited (one-line reasons)."""
        if self._err_text is None and self.proc is not None and self.proc.stderr is not None:
            try:
                if self.proc.poll() is not None:
                    self._err_text = self.proc.stderr.read().decode("utf-8", "replace")
            except (OSError, ValueError):
                pass
        lines = [ln.strip() for ln in (self._err_text or "").splitlines()
                 if ln.strip() and not ln.startswith("Events ")]   # perf's enable/disable notes
        return lines[0][:200] if lines else ""

    def stop(self) -> tuple[list[dict[str, int]], str | None]:
        """SIGINT, wait for perf's teardown, return the counts of each phase."""
        why = None
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                why = f"perf did not exit within {STOP_TIMEOUT_S:.0f} s"
        err = self._stderr()
        for fd in (self._ctl, self._ack):
            if fd >= 0:
                os.close(fd)
        self._ctl = self._ack = -1
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        text = ""
        try:
            text = Path(self.out_path).read_text(errors="replace")
        except OSError:
            pass
        finally:
            try:
                os.unlink(self.out_path)
            except OSError:
                pass
        intervals = parse_intervals(text, cgroup=self.cgroup is not None)
        if not intervals and why is None:
            why = f"perf produced no counts: {err or text[-200:]}"
        return assign_phases(intervals, self.windows), why


def _requests_of(ret) -> int | None:
    """run_window's answer: a request count, or the loadgen's JSON result."""
    if isinstance(ret, dict):
        ret = ret.get("requests")
    try:
        return int(ret) if ret else None
    except (TypeError, ValueError):
        return None


def count_point(server_cpus: list[int] | None, run_window: Callable[[float], object],
                pids: list[int] | None = None, window_s: float = WINDOW_S,
                baseline_s: float = BASELINE_S) -> dict:
    """Counts system calls and context switches per request of one point.

    run_window(seconds) runs the counting load (the caller's loadgen, same shape as the point)
    and returns how many requests completed, or the loadgen's JSON result (None if it failed).
    Run it WITHOUT warm-up: perf counts the whole run, and loadgen's "requests" leave the
    warm-up's out (a 0.1 s warm-up before a 1 s window would add ~10 % to every count).
    pids is the server's process tree: with it perf counts only the server (cgroup scope);
    without it, everything on server_cpus (cpus scope; withheld when other tasks dominate).
    Returns the record for runs.jsonl: the per-request figures under their summary.csv names
    (syscalls_per_req, syscall_<name>_per_req, ctxsw_per_req) beside how they were counted
    (scope, cpus, requests, window_s, counts, baseline, ...), or {"unavailable": reason}."""
    why = available()
    if why:
        return {"unavailable": why}
    if not server_cpus and not pids:
        return {"unavailable": "server not pinned and no pids: cannot tell its calls from the loadgen's"}
    events = [TOTAL_EVENT, CTXSW_EVENT] + [f"syscalls:sys_enter_{n}" for n in events_here()]
    with ServerCgroup(pids) if pids else _NoCgroup() as cg:
        if cg.name is None and not server_cpus:
            return {"unavailable": f"server not pinned and no cgroup: {cg.why}"}
        c = Counting(list(server_cpus) if server_cpus else None, events, cg.name)
        why = c.start()
        if why:
            c.stop()   # reaps perf, closes the control pipes, removes its output file
            return {"unavailable": why}
        requests = None
        try:
            why = c.enable()
            if why is None:
                time.sleep(baseline_s)
                why = c.disable()
            if why is None:
                why = c.enable()
            if why is None:
                requests = _requests_of(run_window(window_s))
                why = c.disable()
        finally:
            phases, stop_why = c.stop()
    why = why or stop_why
    if why:
        return {"unavailable": why}
    if len(phases) != 2:
        return {"unavailable": f"perf counted {len(phases)} windows, not a baseline and a load"}
    if not requests:
        return {"unavailable": "the counting window completed no request"}
    base, load = phases
    (b0, b1), (l0, l1) = c.windows
    base_s, load_s = b1 - b0, l1 - l0
    scope = "cgroup" if cg.name else "cpus"
    # How much of the loaded window's count the idle rate stands for. Small in the cgroup
    # scope (the server's own timers); in the cpus scope it is whatever else ran there, and
    # on a shared machine that load comes and goes: a subtraction cannot recover the server's
    # count, so the figures are withheld.
    share = baseline_share(load, base, load_s, base_s)
    if scope == "cpus" and share > MAX_CPUS_BASELINE_SHARE:
        return {"unavailable": (f"other tasks on CPUs {','.join(map(str, server_cpus))} made "
                                f"{share:.0%} of the calls counted there (idle baseline) and no "
                                f"cgroup could isolate the server ({cg.why})"),
                "scope": scope, "baseline_share": round(share, 4)}
    return {
        "scope": scope, "baseline_share": round(share, 4),
        "cpus": list(server_cpus) if server_cpus else None,
        "cgroup_fallback": cg.why,
        "events": len(events),
        "requests": int(requests),
        "window_s": round(load_s, 4), "baseline_s": round(base_s, 4),
        "counts": {k: v for k, v in load.items() if v},
        "baseline": {k: v for k, v in base.items() if v},
        **per_request(load, int(requests), load_s, base, base_s),
    }


class _NoCgroup:
    name = None
    why = "no server pids given"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


# --- the harness's call ---------------------------------------------------------------------

def count_for_point(point, ctx, srv, spec) -> dict:
    """The counting window of one harness point: the point's load shape (without idle
    connections, which make no calls per request), closed or open loop as the point, no
    warm-up, WINDOW_S long (or the preset's duration when shorter), on the server the point
    just measured. Returns the runs.jsonl
    record (see count_point)."""
    from dataclasses import replace

    from .loadgen import Loadgen

    cpus = getattr(ctx, "server_cpus", None)
    if cpus is None and getattr(ctx, "server_cpu", None) is not None:
        cpus = [ctx.server_cpu]
    window_spec = replace(spec, idle=0)

    def run_window(seconds: float) -> dict | None:
        lg = Loadgen(ctx.loadgen, srv.url(window_spec.path), window_spec, 0.0, seconds)
        ctx.current.append(lg)
        return lg.start().wait().json

    # A short preset (quick, tests) gets a window as short as its points, but at least 0.2 s.
    window_s = window_for(getattr(getattr(ctx, "preset", None), "duration_s", None))
    try:
        return count_point(cpus, run_window, pids=procfs.process_tree(srv.pid), window_s=window_s)
    except Exception as e:   # the point's own figures stand; the count becomes a reason
        return {"unavailable": f"counting failed: {type(e).__name__}: {e}"}


def metrics_of(counted: dict | None, metrics: dict | None = None) -> dict:
    """The per-request figures of a count_point record, for the point's metrics. perf's
    ctxsw_per_req replaces the sampler's /proc figure (which misses reaped children); that
    one stays beside it as ctxsw_proc_per_req."""
    if counted and counted.get("counted_in_other_rep") and metrics \
            and metrics.get("ctxsw_per_req") is not None:
        # This point's perf count is in another repetition: a /proc figure here would be
        # mixed into the same summary median as perf's, and it misses reaped children.
        return {"ctxsw_per_req": None, "ctxsw_proc_per_req": metrics["ctxsw_per_req"]}
    if not counted or "unavailable" in counted:
        return {}
    out = {k: v for k, v in counted.items() if k == "ctxsw_per_req" or unit(k)}
    if "ctxsw_per_req" in out and metrics and metrics.get("ctxsw_per_req") is not None:
        out["ctxsw_proc_per_req"] = metrics["ctxsw_per_req"]
    return out


def metric_names(records: Iterable[dict]) -> list[str]:
    """syscalls_per_req first, then the named calls by their largest value (for summary.csv)."""
    best: dict[str, float] = {}
    for r in records:
        for k, v in ((r.get("metrics") or {}).items()):
            if (k == "syscalls_per_req" or (k.startswith("syscall_") and k.endswith("_per_req"))) \
                    and isinstance(v, (int, float)):
                best[k] = max(best.get(k, 0.0), float(v))
    named = sorted((k for k in best if k != "syscalls_per_req"), key=lambda k: (-best[k], k))
    return (["syscalls_per_req"] if "syscalls_per_req" in best else []) + named


def unit(metric: str) -> str | None:
    if metric == "syscalls_per_req" or (metric.startswith("syscall_") and metric.endswith("_per_req")):
        return "calls/req"
    return None
