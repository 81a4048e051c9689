"""Runs build/bin/loadgen (docs/architecture.md §4) and reads its --json result.

The loadgen inherits the harness's CPU affinity (the harness pins itself to the client CPU),
and is reaped with wait4 so its own CPU time is known even when its JSON is missing.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import procfs


def fmt_duration(seconds: float) -> str:
    """10 -> '10s', 0.5 -> '500ms' (loadgen and wrk style)."""
    if abs(seconds - round(seconds)) < 1e-9:
        return f"{int(round(seconds))}s"
    return f"{int(round(seconds * 1000))}ms"


@dataclass
class LoadSpec:
    path: str = "/"
    connections: int = 10
    threads: int = 1
    rate: int | None = None        # open loop at this many requests/s in total
    close: bool = False            # Connection: close on every request (churn)
    idle: int = 0                  # extra idle connections held open
    timeout_s: float = 2.0
    extra: list[str] = field(default_factory=list)

    def args(self, warmup_s: float, duration_s: float) -> list[str]:
        a = ["-c", str(self.connections), "-t", str(self.threads),
             "-d", fmt_duration(duration_s), "--warmup", fmt_duration(warmup_s),
             "--timeout", fmt_duration(self.timeout_s)]
        if self.rate is not None:
            a += ["-R", str(int(self.rate))]
        if self.close:
            a.append("--close")
        if self.idle:
            a += ["--idle", str(self.idle)]
        return a + list(self.extra)


@dataclass
class LoadResult:
    args: list[str]
    exit_code: int | None = None
    json: dict | None = None
    wall_s: float = 0.0
    t_start: float = 0.0      # time.monotonic() at spawn
    t_end: float = 0.0        # time.monotonic() when reaped
    cpu_user_s: float = 0.0   # from wait4's rusage: the whole process lifetime
    cpu_sys_s: float = 0.0
    stdout_tail: str = ""
    stderr_tail: str = ""
    error: str | None = None

    def to_json(self) -> dict:
        return {"args": self.args, "exit_code": self.exit_code, "wall_s": round(self.wall_s, 4),
                "cpu_user_s": round(self.cpu_user_s, 4), "cpu_sys_s": round(self.cpu_sys_s, 4),
                "stdout_tail": self.stdout_tail, "stderr_tail": self.stderr_tail,
                "error": self.error}


class Loadgen:
    """One loadgen process. start() returns immediately; wait() reaps it."""

    def __init__(self, binary: Path, url: str, spec: LoadSpec, warmup_s: float, duration_s: float):
        self.binary = Path(binary)
        self.json_file = tempfile.NamedTemporaryFile(prefix="loadgen-", suffix=".json", delete=False)
        self.json_file.close()
        self.args = spec.args(warmup_s, duration_s) + ["--json", self.json_file.name, url]
        self.result = LoadResult(args=[self.binary.name] + self.args[:-3] + ["--json", "FILE", url])
        # Generous bound: connect, warm-up, run, then drain a timeout's worth of replies.
        self.deadline_s = warmup_s + duration_s + 2 * spec.timeout_s + 20 + spec.connections * 0.002 \
            + spec.idle * 0.002
        self._out = tempfile.TemporaryFile()
        self._err = tempfile.TemporaryFile()
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Loadgen":
        self.result.t_start = time.monotonic()
        try:
            self.proc = subprocess.Popen([str(self.binary), *self.args], stdin=subprocess.DEVNULL,
                                         stdout=self._out, stderr=self._err, close_fds=True)
        except OSError as e:
            self.result.error = f"cannot start loadgen: {e}"
        return self

    def wait(self) -> LoadResult:
        r = self.result
        try:
            if self.proc is None:
                return r
            status, usage = self._wait4()
            r.t_end = time.monotonic()
            r.wall_s = r.t_end - r.t_start
            r.exit_code = os.waitstatus_to_exitcode(status) if status is not None else None
            if usage is not None:
                r.cpu_user_s, r.cpu_sys_s = usage.ru_utime, usage.ru_stime
            r.stdout_tail = _tail(self._out)
            r.stderr_tail = _tail(self._err)
            try:
                with open(self.json_file.name, encoding="utf-8") as f:
                    r.json = json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                r.error = r.error or f"no loadgen JSON ({type(e).__name__}); exit code {r.exit_code}"
            if r.exit_code not in (0, None) and r.error is None and r.json is None:
                r.error = f"loadgen exited with code {r.exit_code}"
            return r
        finally:
            self._cleanup()

    def _wait4(self):
        """Reap with rusage, killing the loadgen if it overruns its deadline."""
        assert self.proc is not None
        pid = self.proc.pid
        killed = False
        while True:
            try:
                wpid, status, usage = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                return None, None
            if wpid == pid:
                self.proc.returncode = os.waitstatus_to_exitcode(status)   # Popen must not wait again
                if killed:
                    self.result.error = f"loadgen overran its {self.deadline_s:.0f} s bound and was killed"
                return status, usage
            if not killed and time.monotonic() - self.result.t_start > self.deadline_s:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                killed = True
            # 20 ms: the harness shares the generator's core; polling faster would cost it.
            time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def running(self) -> bool:
        """Still running (not exited). Reads /proc instead of poll(): poll() would reap the
        process and lose the rusage that wait() reads with wait4."""
        if self.proc is None or self.proc.returncode is not None:
            return False
        st = procfs.proc_stat(self.proc.pid)
        return st is not None and st.state not in ("Z", "X")

    def open_fds(self) -> int | None:
        """How many descriptors the generator holds (its connections, once set up)."""
        try:
            return len(os.listdir(f"/proc/{self.proc.pid}/fd")) if self.proc else None
        except OSError:
            return None

    def kill(self) -> None:
        """Kill and reap the loadgen if it is still running (interrupted point)."""
        if self.proc is not None and self.proc.returncode is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
                os.waitpid(self.proc.pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.proc.returncode = -signal.SIGKILL
            self._cleanup()

    def _cleanup(self) -> None:
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass
        try:
            os.unlink(self.json_file.name)
        except OSError:
            pass


def _tail(f, limit: int = 1500) -> str:
    try:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - limit))
        return f.read().decode("utf-8", "replace").strip()
    except (OSError, ValueError):
        return ""


def version(binary: Path) -> str:
    """The loadgen's --version line, or 'unknown'."""
    try:
        p = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=5)
        text = (p.stdout or p.stderr).strip().splitlines()
        return text[0] if p.returncode == 0 and text else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unavailable"
