"""A cgroup for one server's whole process tree: a CPU cap and exact CPU accounting.

Why a cap: on a 2-core machine the server and the load generator each get one core, and the
fast event loops answer as fast as one generator core can ask, so an uncapped throughput figure
is the generator's as much as the server's ("client-bound"). Capping the server with the cgroup
cpu controller (default 1000 us of CPU per 2500 us period = 40 % of each server CPU) leaves the
generator headroom (measured here: 26-33 % busy), so throughput figures are the server's
("server-bound") and the models' ratios to each other stay those of the uncapped runs within
about 10 %. Throttling delays a throttled server by up to the rest of a period (~1.5 ms), so
latency experiments run uncapped (see plan.CAPPED_EXPERIMENTS).

Why accounting: the kernel sums the CPU time of every task in the group, including processes
and threads that already exited — the same per-task run time /proc/<pid>/task/*/schedstat
shows, added up by the kernel in one counter. One file read per reading, instead of a walk
over a fork server's thousands of processes, keeps the sampler's cost off the load
generator's core.

Both cgroup v1 (cpu.cfs_quota_us / cpu.cfs_period_us, cpuacct.usage, as on this kind of
machine; the quota must be >= 1000 us) and v2 (cpu.max, cpu.stat usage_usec, a fresh Debian 12)
are supported. When neither can be written (not root, no cpu controller) `probe()` says why
and the harness runs uncapped, records the reason and flags the points.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
MIN_QUOTA_US = 1000        # cgroup v1 refuses smaller quotas
DEFAULT_QUOTA_US = 1000
DEFAULT_PERIOD_US = 2500
_counter = itertools.count()


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _v1_dir(controller: str) -> Path | None:
    """The v1 hierarchy that carries `controller` (mounted alone or as e.g. cpu,cpuacct)."""
    for line in (_read(Path("/proc/mounts")) or "").splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[2] == "cgroup" and controller in parts[3].split(","):
            return Path(parts[1])
    return None


def _v2_dir() -> Path | None:
    for line in (_read(Path("/proc/mounts")) or "").splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            d = Path(parts[1])
            if "cpu" in (_read(d / "cgroup.controllers") or "").split():
                return d
    return None


@dataclass
class Method:
    version: str | None        # "v1" | "v2" | None
    reason: str | None         # why no cgroup can be used (None when one can)
    cpu_dir: Path | None = None
    acct_dir: Path | None = None

    def to_json(self) -> dict:
        return {"version": self.version, "reason": self.reason,
                "cpu_dir": str(self.cpu_dir) if self.cpu_dir else None}


def probe() -> Method:
    """Which cgroup interface this machine offers us, trying to create (and remove) a group."""
    if os.geteuid() != 0:
        return Method(None, "not root: cannot create cgroups; the server runs uncapped")
    cpu, acct = _v1_dir("cpu"), _v1_dir("cpuacct")
    if cpu is not None and acct is not None and (cpu / "cpu.cfs_quota_us").exists():
        m = Method("v1", None, cpu, acct)
    else:
        v2 = _v2_dir()
        if v2 is None:
            return Method(None, "no cgroup cpu controller (neither v1 cpu+cpuacct nor v2 cpu) is mounted")
        m = Method("v2", None, v2, v2)
    try:
        g = Group(m, "probe", None)
        g.remove()
    except OSError as e:
        return Method(None, f"cannot create a cgroup ({m.version} under {m.cpu_dir}): {e}")
    return m


def remove_stale(method: Method) -> list[str]:
    """Removes groups an interrupted harness left behind (cmbench-<pid>-... whose harness is
    gone); they are empty once their servers exited. Returns the names removed."""
    if method.version is None:
        return []
    removed = []
    for base in {method.cpu_dir, method.acct_dir}:
        if base is None:
            continue
        for d in base.glob("cmbench-*-*"):
            try:
                owner = int(d.name.split("-")[1])
            except (IndexError, ValueError):
                continue
            if owner == os.getpid() or Path(f"/proc/{owner}").exists():
                continue
            # Processes a dead harness left in its own group are its servers: end them by PID.
            for pid in (_read(d / "cgroup.procs") or "").split():
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            if (_read(d / "cgroup.procs") or "").strip():
                time.sleep(0.05)   # killed tasks leave the group a moment later
            try:
                d.rmdir()
                removed.append(d.name)
            except OSError:
                pass   # still has tasks: leave it
    return removed


class Group:
    """One server's cgroup. `quota` is (quota_us, period_us) or None (accounting only)."""

    def __init__(self, method: Method, label: str, quota: tuple[int, int] | None):
        if method.version is None:
            raise OSError(method.reason)
        self.method = method
        self.quota = quota
        name = f"cmbench-{os.getpid()}-{next(_counter)}-{label}"
        if method.version == "v1":
            self.dirs = [method.cpu_dir / name]
            if method.acct_dir != method.cpu_dir:
                self.dirs.append(method.acct_dir / name)
        else:
            parent = method.cpu_dir
            # A v2 parent must delegate the cpu controller to its children.
            ctl = _read(parent / "cgroup.subtree_control") or ""
            if "cpu" not in ctl.split():
                _write(parent / "cgroup.subtree_control", "+cpu")
            self.dirs = [parent / name]
        made = []
        try:
            for d in self.dirs:
                d.mkdir()
                made.append(d)
            self._set_quota()
        except BaseException:   # Ctrl-C mid-creation too: leave no half-made group
            for d in reversed(made):
                try:
                    d.rmdir()
                except OSError:
                    pass
            raise

    def _set_quota(self) -> None:
        d = self.dirs[0]
        if self.method.version == "v1":
            if self.quota is None:
                _write(d / "cpu.cfs_quota_us", "-1")
            else:
                q, p = self.quota
                if q < MIN_QUOTA_US:
                    raise OSError(f"cgroup v1 quota must be >= {MIN_QUOTA_US} us, got {q}")
                _write(d / "cpu.cfs_period_us", str(p))
                _write(d / "cpu.cfs_quota_us", str(q))
        else:
            _write(d / "cpu.max", "max 100000" if self.quota is None else f"{self.quota[0]} {self.quota[1]}")

    def uncap(self) -> None:
        """Lifts the quota (the measured part is over): a server stopping thousands of children
        must not be throttled while it does. Accounting goes on."""
        if self.quota is None:
            return
        self.quota = None
        try:
            self._set_quota()
        except OSError:
            pass

    def share(self) -> float | None:
        """CPUs' worth the quota allows (0.4 for 1000/2500), None when uncapped."""
        return None if self.quota is None else self.quota[0] / self.quota[1]

    def add_self(self) -> None:
        """Moves the calling process into the group (call it between fork and exec: every
        process the server then forks is born inside)."""
        for d in self.dirs:
            _write(d / "cgroup.procs", str(os.getpid()))

    def usage_ns(self) -> int | None:
        """CPU time of every task ever in the group (exited ones included), in ns."""
        if self.method.version == "v1":
            text = _read(self.dirs[-1] / "cpuacct.usage")
            try:
                return int(text) if text else None
            except ValueError:
                return None
        for line in (_read(self.dirs[0] / "cpu.stat") or "").splitlines():
            k, _, v = line.partition(" ")
            if k == "usage_usec":
                return int(v) * 1000
        return None

    def user_sys_ns(self) -> tuple[int, int] | None:
        """(user, system) CPU of the group; v1 counts them in ticks (cpuacct.stat)."""
        if self.method.version == "v1":
            d = {}
            for line in (_read(self.dirs[-1] / "cpuacct.stat") or "").splitlines():
                k, _, v = line.partition(" ")
                d[k] = int(v) * (1_000_000_000 // os.sysconf("SC_CLK_TCK"))
            return (d["user"], d["system"]) if "user" in d and "system" in d else None
        d = {}
        for line in (_read(self.dirs[0] / "cpu.stat") or "").splitlines():
            k, _, v = line.partition(" ")
            d[k] = int(v) * 1000
        return (d["user_usec"], d["system_usec"]) if "user_usec" in d and "system_usec" in d else None

    def throttled(self) -> dict:
        """How often the quota stopped the server (nr_throttled, throttled time in ns)."""
        out = {}
        for line in (_read(self.dirs[0] / "cpu.stat") or "").splitlines():
            k, _, v = line.partition(" ")
            if k in ("nr_periods", "nr_throttled"):
                out[k] = int(v)
            elif k == "throttled_time":          # v1: ns
                out["throttled_ns"] = int(v)
            elif k == "throttled_usec":          # v2: us
                out["throttled_ns"] = int(v) * 1000
        return out

    def counts(self) -> tuple[int, int | None]:
        """(processes, threads) in the group from one or two file reads (threads None where
        the interface does not list them: v2 outside threaded mode)."""
        procs = len((_read(self.dirs[0] / "cgroup.procs") or "").split())
        tasks = _read(self.dirs[0] / ("tasks" if self.method.version == "v1" else "cgroup.threads"))
        return procs, (len(tasks.split()) if tasks is not None else None)

    def pids(self) -> list[int]:
        text = _read(self.dirs[0] / "cgroup.procs") or ""
        return [int(x) for x in text.split()]

    def kill_all(self) -> list[int]:
        """SIGKILLs, by PID, every process still in the group: only the harness puts processes
        here (a server and its children), e.g. a server spawned just as Ctrl-C came."""
        pids = self.pids()
        for pid in pids:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        return pids

    def remove(self, wait_s: float = 2.0) -> None:
        """Removes the group; it must be empty (the server and its children have exited)."""
        deadline = time.monotonic() + wait_s
        for d in self.dirs:
            while True:
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)   # exiting tasks leave the group a moment later
