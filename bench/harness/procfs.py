"""Readers for the /proc files the harness samples.

Every reader returns None (or skips the entry) when the process or task vanished between
listing and reading: a sampled process tree changes under our feet (forked children come and
go), and that is normal, not an error.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

CLK_TCK = os.sysconf("SC_CLK_TCK")
TICK_NS = 1_000_000_000 // CLK_TCK
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024

_GONE = (FileNotFoundError, ProcessLookupError, PermissionError)


def read_text(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode("ascii", "replace")
    except _GONE:
        return None
    except OSError:
        # ESRCH and friends when a task dies mid-read.
        return None


def list_tasks(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except _GONE:
        return []
    except OSError:
        return []


def children(pid: int) -> list[int]:
    """Direct children of a process: the union of /proc/PID/task/TID/children over its threads
    (a child belongs to the thread that forked it)."""
    kids: list[int] = []
    for tid in list_tasks(pid):
        text = read_text(f"/proc/{pid}/task/{tid}/children")
        if text:
            kids.extend(int(x) for x in text.split())
    return kids


def process_tree(root: int) -> list[int]:
    """root and all its descendants, root first."""
    seen = [root]
    members = {root}   # a set: a fork server at 10000 connections has 10000 children
    i = 0
    while i < len(seen):
        for k in children(seen[i]):
            if k not in members:
                members.add(k)
                seen.append(k)
        i += 1
    return seen


@dataclass
class ProcStat:
    utime: int   # ticks, whole thread group including exited threads
    stime: int
    cutime: int  # ticks, reaped children (and their reaped children)
    cstime: int
    num_threads: int
    starttime: int  # ticks after boot: tells a reused pid from the process we saw before
    state: str = "R"


def proc_stat(pid: int) -> ProcStat | None:
    text = read_text(f"/proc/{pid}/stat")
    if not text:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    rest = text[text.rfind(")") + 2:].split()
    try:
        # rest[0] is field 3 (state); utime is field 14 -> rest[11].
        return ProcStat(int(rest[11]), int(rest[12]), int(rest[13]), int(rest[14]),
                        int(rest[17]), int(rest[19]), rest[0])
    except (IndexError, ValueError):
        return None


def task_runtime_ns(pid: int, tid: int) -> int | None:
    """Nanoseconds this task spent on a CPU (first field of schedstat)."""
    text = read_text(f"/proc/{pid}/task/{tid}/schedstat")
    if not text:
        return None
    try:
        return int(text.split()[0])
    except (IndexError, ValueError):
        return None


def task_ctxsw(pid: int, tid: int) -> tuple[int, int] | None:
    """(voluntary, involuntary) context switches of one task."""
    text = read_text(f"/proc/{pid}/task/{tid}/status")
    if not text:
        return None
    vol = invol = None
    for line in text.splitlines():
        if line.startswith("voluntary_ctxt_switches:"):
            vol = int(line.split()[1])
        elif line.startswith("nonvoluntary_ctxt_switches:"):
            invol = int(line.split()[1])
    if vol is None or invol is None:
        return None
    return vol, invol


def rss_kib(pid: int) -> int | None:
    text = read_text(f"/proc/{pid}/statm")
    if not text:
        return None
    try:
        return int(text.split()[1]) * PAGE_KIB
    except (IndexError, ValueError):
        return None


def pss_kib(pid: int) -> int | None:
    """Proportional set size from smaps_rollup: shared pages are divided among their users,
    so the sum over a process tree counts a forked child's copy-on-write pages once."""
    text = read_text(f"/proc/{pid}/smaps_rollup")
    if not text:
        return None
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return None


def sockstat() -> dict:
    """System-wide socket counters. TCP 'mem' is in pages (of socket buffer memory)."""
    out: dict = {}
    text = read_text("/proc/net/sockstat") or ""
    for line in text.splitlines():
        head, _, tail = line.partition(":")
        parts = tail.split()
        pairs = dict(zip(parts[0::2], parts[1::2]))
        if head == "sockets":
            out["sockets_used"] = int(pairs.get("used", 0))
        elif head == "TCP":
            for k in ("inuse", "orphan", "tw", "alloc"):
                out[f"tcp_{k}"] = int(pairs.get(k, 0))
            out["tcp_mem_kib"] = int(pairs.get("mem", 0)) * PAGE_KIB
    return out


def cpu_ticks(cpu: int) -> list[int] | None:
    """/proc/stat counters of one CPU in ticks: user nice system idle iowait irq softirq steal."""
    text = read_text("/proc/stat") or ""
    prefix = f"cpu{cpu} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return [int(x) for x in line.split()[1:9]]
    return None


def meminfo() -> dict:
    out = {}
    text = read_text("/proc/meminfo") or ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("MemTotal", "MemAvailable"):
            out[f"{key}_kib"] = int(value.split()[0])
    return out


def read_int(path: str) -> int | None:
    text = read_text(path)
    try:
        return int(text.split()[0]) if text else None
    except ValueError:
        return None


def process_group(pgid: int) -> dict[int, int]:
    """pid -> starttime of every process in a process group (the harness starts each server in
    its own group, so this finds descendants the sampler never saw)."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        text = read_text(f"/proc/{name}/stat")
        if not text:
            continue
        rest = text[text.rfind(")") + 2:].split()
        try:
            if int(rest[2]) == pgid and rest[0] != "Z":
                out[int(name)] = int(rest[19])
        except (IndexError, ValueError):
            continue
    return out


def count_tasks_system() -> int:
    """Threads currently alive on the machine (what pid_max / threads-max are compared to)."""
    text = read_text("/proc/loadavg")  # "0.00 0.01 0.05 1/123 4567": running/total tasks
    try:
        return int(text.split()[3].split("/")[1]) if text else 0
    except (IndexError, ValueError):
        return 0
