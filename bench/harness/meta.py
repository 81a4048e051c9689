"""meta.json: what machine, build and tools produced a run.

Anything this kind of machine does not have (no cpufreq governor on a KVM guest, no hardware
PMU for `perf stat -e cycles`, no git commit yet, a library or framework not installed) is
recorded as "unavailable" instead of failing the run. Paths inside the checkout are recorded
relative to it (`build/CMakeCache.txt`), so a committed run names no machine's folders.
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
REPO = Path(__file__).resolve().parents[2]


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
    """Hardware counters (cycles): a KVM guest without a virtual PMU has none."""
    rc, out = _run(["perf", "stat", "-x,", "-e", "cycles", "true"])
    if rc != 0 or "not supported" in out or "not counted" in out:
        return UNAVAILABLE
    return "available"


def perf_syscalls() -> str:
    """Whether system calls per request can be counted (syscall tracepoints), else why not."""
    from . import syscalls
    why = syscalls.available()
    return "available" if why is None else f"{UNAVAILABLE}: {why}"


def cgroups() -> dict:
    """Which cgroup layout the machine has: v2 (a fresh Debian 12), v1, or hybrid (v1
    controllers with a v2 tree beside them), and where the cpu controller is (a CPU cap for
    the server needs cpu.max on v2 or cpu.cfs_* on v1)."""
    text = procfs.read_text("/proc/self/mountinfo") or ""
    v1, v2 = [], None
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields = right.split(" ")
        mount = left.split(" ")[4] if len(left.split(" ")) > 4 else "?"
        if fields[:1] == ["cgroup2"]:
            v2 = mount
        elif fields[:1] == ["cgroup"]:
            v1.append((mount, fields[2] if len(fields) > 2 else ""))
    cpu_v1 = next((m for m, opts in v1 if "cpu" in opts.split(",")), None)
    v2_cpu = False
    if v2:
        v2_cpu = "cpu" in (procfs.read_text(f"{v2}/cgroup.controllers") or "").split()
    version = "v2" if v2 and not v1 else ("v1" if v1 and not v2 else ("hybrid" if v1 else UNAVAILABLE))
    return {"version": version, "v2_mount": v2 or UNAVAILABLE,
            "cpu_controller": ("v2" if v2_cpu else f"v1 ({cpu_v1})" if cpu_v1 else UNAVAILABLE)}


def repo_relative(path: Path, repo: Path | None = REPO) -> str:
    """A path inside the checkout relative to it (committed runs must not name the folder
    they were made in); a path outside it as it is."""
    p = Path(path).resolve()
    if repo is not None:
        try:
            return str(p.relative_to(Path(repo).resolve()))
        except ValueError:
            pass
    return str(p)


def scrub(text: str, repo: Path = REPO) -> str:
    """A command line or message with the checkout's absolute path made relative."""
    return text.replace(str(Path(repo).resolve()) + "/", "")


_FLAG_TOKEN = re.compile(r"^(-O\w*|-g\w*|-DNDEBUG|-f[\w=+-]+|-m[\w=+-]+|-std=\S+|-W[\w=+-]+|-D\w+(=\S*)?)$")


def flags_used(build_dir: Path, source: str = "servers/epoll/main.cpp") -> str | None:
    """The compiler flags a model's source was really compiled with, from build.ninja (the
    cache's CMAKE_CXX_FLAGS_RELEASE is only a default: a CMakeLists.txt that sets the normal
    variable overrides it without touching the cache). Include paths are left out."""
    text = procfs.read_text(str(Path(build_dir) / "build.ninja"))
    if not text:
        return None
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("build ") and source in line and ".o:" in line:
            for follow in lines[i + 1:i + 8]:
                if follow.strip().startswith("FLAGS = "):
                    toks = follow.strip()[len("FLAGS = "):].split()
                    return " ".join(t for t in toks if _FLAG_TOKEN.match(t))
    return None


def build_info(bin_dir: Path, repo: Path | None = None) -> dict:
    """Compiler and flags of the build that made the binaries: the CMake cache, and the flags
    build.ninja really passes (CMAKE_CXX_FLAGS_RELEASE is what the build used; the cache's
    value beside it only when it differs)."""
    build_dir = Path(bin_dir).resolve().parent
    cache = build_dir / "CMakeCache.txt"
    info: dict = {"cmake_cache": repo_relative(cache, repo)}
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
    used = flags_used(build_dir)
    info["cxx_flags_used"] = used if used is not None else UNAVAILABLE
    if used is not None:
        cfg = (info.get("CMAKE_BUILD_TYPE") or "").upper()
        key = f"CMAKE_CXX_FLAGS_{cfg}" if cfg else None
        toks = used.split()
        # The configuration's own part of the command line: optimisation, debug info, NDEBUG.
        effective = " ".join(t for t in toks if re.match(r"^(-O\w*|-g\w*|-DNDEBUG)$", t))
        if key and key in info and info[key].split() != effective.split():
            info[f"{key}_cache"] = info[key]
            info["flags_note"] = (f"CMakeCache.txt says {key}={info[key]!r}, but the build compiled "
                                  f"with {effective!r} (CMakeLists.txt sets it); recorded what it used")
        if key:
            info[key] = effective
        m = re.findall(r"-O\w*", used)
        info["optimization"] = m[-1] if m else "none"
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
    rc, text = _run(["perf", "--version"])
    m = re.search(r"perf version (\S+)", text)
    out["perf"] = m.group(1) if rc == 0 and m else UNAVAILABLE
    out["boost"] = _boost_version()
    for lib in ("libuv", "liburing", "libevent"):
        rc, text = _run(["pkg-config", "--modversion", lib])
        out[lib] = text.strip() if rc == 0 and text.strip() else UNAVAILABLE
    # The Python frameworks, by their installed metadata (no import: gevent and twisted are
    # slow to import and have nothing to do in the harness process).
    for dist in ("gevent", "greenlet", "twisted", "tornado", "uvloop"):
        out[dist] = _dist_version(dist)
    for name, cmd, pat in (("lighttpd", ["lighttpd", "-v"], r"lighttpd/(\S+)"),
                           ("apache2", ["apache2", "-v"], r"Apache/(\S+)")):
        rc, text = _run(cmd)
        if rc != 0:
            rc, text = _run(["/usr/sbin/" + cmd[0], *cmd[1:]])
        m = re.search(pat, text)
        out[name] = m.group(1) if m else UNAVAILABLE
    return out


def _boost_version() -> str:
    text = procfs.read_text("/usr/include/boost/version.hpp") or ""
    m = re.search(r'#define BOOST_LIB_VERSION "([^"]+)"', text)
    return m.group(1).replace("_", ".") if m else UNAVAILABLE


def _dist_version(dist: str) -> str:
    try:
        from importlib import metadata
        return metadata.version(dist)
    except Exception:   # PackageNotFoundError, or metadata unreadable: record, never fail
        return UNAVAILABLE


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
        "build": build_info(bin_dir, repo),
        "git": git_info(repo),
        "governor": governor(),
        "mitigations": mitigations(),
        "perf": perf_available(),
        "perf_syscalls": perf_syscalls(),
        "cgroup": cgroups(),
        "pinning": {"server_cpu": server_cpu, "client_cpu": client_cpu,
                    "harness_cpu": client_cpu,
                    "note": "server pinned with sched_setaffinity; loadgen, slow clients and the "
                            "sampler share the client CPU"},
        "limits": limits(),
        "tools": tool_versions(bin_dir),
        "bin_dir": repo_relative(bin_dir, repo),
    }


def _os_release() -> str:
    text = procfs.read_text("/etc/os-release") or ""
    m = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.M)
    return m.group(1) if m else UNAVAILABLE
