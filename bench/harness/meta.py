"""meta.json: what machine, build and tools produced a run.

Anything this kind of machine does not have (no cpufreq governor on a KVM guest, no hardware
PMU for `perf stat -e cycles`, no git commit yet) is recorded as "unavailable" instead of
failing the run.
"""
from __future__ import annotations

import os
import platform
import re
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import procfs
from .loadgen import version as loadgen_version

UNAVAILABLE = "unavailable"


def _run(cmd: list[str], timeout: float = 10) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return p.returncode, (p.stdout + p.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        return -1, str(e)


def cpu_info() -> dict:
    text = procfs.read_text("/proc/cpuinfo") or ""
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines()
                  if line.startswith("model name")), UNAVAILABLE)
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return {"model": model, "cores_online": os.cpu_count(),
            "hypervisor": "hypervisor" in flags}


def governor() -> str:
    text = procfs.read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    return text.strip() if text else UNAVAILABLE


def mitigations() -> dict | str:
    d = Path("/sys/devices/system/cpu/vulnerabilities")
    if not d.is_dir():
        return UNAVAILABLE
    out = {}
    for f in sorted(d.iterdir()):
        out[f.name] = (procfs.read_text(str(f)) or "").strip() or UNAVAILABLE
    cmdline = procfs.read_text("/proc/cmdline") or ""
    m = re.search(r"\bmitigations=(\S+)", cmdline)
    out["cmdline"] = m.group(1) if m else "default"
    return out


def perf_available() -> str:
    rc, out = _run(["perf", "stat", "-x,", "-e", "cycles", "true"])
    if rc != 0 or "not supported" in out or "not counted" in out:
        return UNAVAILABLE
    return "available"


def build_info(bin_dir: Path) -> dict:
    """Compiler and flags from the CMake cache of the build that made the binaries."""
    cache = Path(bin_dir).resolve().parent / "CMakeCache.txt"
    info: dict = {"cmake_cache": str(cache)}
    text = procfs.read_text(str(cache))
    if not text:
        info["compiler"] = UNAVAILABLE
        return info
    want = {"CMAKE_CXX_COMPILER", "CMAKE_BUILD_TYPE", "CMAKE_CXX_FLAGS", "CMAKE_CXX_FLAGS_RELEASE",
            "CMAKE_CXX_FLAGS_RELWITHDEBINFO", "CMBENCH_SANITIZE", "CMBENCH_WERROR"}
    for line in text.splitlines():
        key, _, value = line.partition("=")
        name = key.split(":", 1)[0]
        if name in want:
            info[name] = value
    cxx = info.get("CMAKE_CXX_COMPILER")
    if cxx:
        rc, out = _run([cxx, "--version"])
        info["compiler"] = out.splitlines()[0] if rc == 0 and out else UNAVAILABLE
    return info


def git_info(repo: Path) -> dict:
    rc, commit = _run(["git", "-C", str(repo), "rev-parse", "HEAD"])
    if rc != 0:
        return {"commit": UNAVAILABLE, "dirty": UNAVAILABLE}
    rc2, status = _run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"])
    return {"commit": commit.strip(), "dirty": bool(status.strip()) if rc2 == 0 else UNAVAILABLE}


def limits() -> dict:
    def rl(r):
        soft, hard = resource.getrlimit(r)
        fmt = lambda v: "unlimited" if v == resource.RLIM_INFINITY else v  # noqa: E731
        return {"soft": fmt(soft), "hard": fmt(hard)}
    sysctl = {}
    for name, path in [("somaxconn", "/proc/sys/net/core/somaxconn"),
                       ("tcp_max_syn_backlog", "/proc/sys/net/ipv4/tcp_max_syn_backlog"),
                       ("ip_local_port_range", "/proc/sys/net/ipv4/ip_local_port_range"),
                       ("tcp_tw_reuse", "/proc/sys/net/ipv4/tcp_tw_reuse"),
                       ("pid_max", "/proc/sys/kernel/pid_max"),
                       ("threads_max", "/proc/sys/kernel/threads-max"),
                       ("file_max", "/proc/sys/fs/file-max")]:
        text = procfs.read_text(path)
        sysctl[name] = " ".join(text.split()) if text else UNAVAILABLE
    return {"nofile": rl(resource.RLIMIT_NOFILE), "nproc": rl(resource.RLIMIT_NPROC),
            "stack": rl(resource.RLIMIT_STACK), "sysctl": sysctl}


def tool_versions(bin_dir: Path) -> dict:
    out = {"python": sys.version.split()[0], "python_executable": sys.executable}
    try:
        import matplotlib
        out["matplotlib"] = matplotlib.__version__
    except ImportError:
        out["matplotlib"] = UNAVAILABLE
    try:
        import psutil
        out["psutil"] = psutil.__version__
    except ImportError:
        out["psutil"] = UNAVAILABLE
    lg = Path(bin_dir) / "loadgen"
    out["loadgen"] = loadgen_version(lg) if lg.exists() else UNAVAILABLE
    rc, text = _run(["wrk", "--version"])
    m = re.search(r"wrk (\S+)", text)
    out["wrk"] = m.group(1) if m else UNAVAILABLE
    rc, text = _run(["nginx", "-v"])
    if rc != 0:
        rc, text = _run(["/usr/sbin/nginx", "-v"])
    m = re.search(r"nginx/(\S+)", text)
    out["nginx"] = m.group(1) if m else UNAVAILABLE
    rc, text = _run(["cmake", "--version"])
    out["cmake"] = text.splitlines()[0].split()[-1] if rc == 0 and text else UNAVAILABLE
    return out


def collect(repo: Path, bin_dir: Path, server_cpu, client_cpu) -> dict:
    u = platform.uname()
    mem = procfs.meminfo()
    return {
        "schema": 1,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "host": socket.gethostname(),
        "cpu": cpu_info(),
        "memory_total_kib": mem.get("MemTotal_kib"),
        "kernel": {"release": u.release, "version": u.version, "machine": u.machine},
        "os": _os_release(),
        "build": build_info(bin_dir),
        "git": git_info(repo),
        "governor": governor(),
        "mitigations": mitigations(),
        "perf": perf_available(),
        "pinning": {"server_cpu": server_cpu, "client_cpu": client_cpu,
                    "harness_cpu": client_cpu,
                    "note": "server pinned with sched_setaffinity; loadgen, slow clients and the "
                            "sampler share the client CPU"},
        "limits": limits(),
        "tools": tool_versions(bin_dir),
        "bin_dir": str(Path(bin_dir).resolve()),
    }


def _os_release() -> str:
    text = procfs.read_text("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
    return m.group(1) if m else UNAVAILABLE
