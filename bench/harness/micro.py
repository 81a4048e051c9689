"""Runs build/bin/micro (Google Benchmark) pinned to the server CPU and stores micro.json.

micro.json is Google Benchmark's own JSON (context + benchmarks, one entry per repetition)
with a "cmbench" section added: how it was run, and an error when it could not run.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

from . import store
from .meta import repo_relative


def run(binary: Path, out_path: Path, min_time_s: float, reps: int, cpu: int | None,
        bench_filter: str | None = None, timeout_s: float = 900) -> dict:
    info = {"binary": repo_relative(binary), "min_time_s": min_time_s, "repetitions": reps, "cpu": cpu,
            "filter": bench_filter, "exit_code": None, "wall_s": None, "error": None}
    result: dict = {"context": {}, "benchmarks": []}
    if not Path(binary).exists():
        info["error"] = f"binary not found: {binary} (build the 'micro' target)"
        result["cmbench"] = info
        store.atomic_write_json(out_path, result)
        return result
    fd, tmp = tempfile.mkstemp(prefix=".micro.", suffix=".json", dir=out_path.parent)
    os.close(fd)
    # Google Benchmark 1.7 takes --benchmark_min_time as plain seconds.
    cmd = [str(binary), f"--benchmark_out={tmp}", "--benchmark_out_format=json",
           f"--benchmark_min_time={min_time_s:g}", f"--benchmark_repetitions={max(1, reps)}",
           "--benchmark_report_aggregates_only=false", "--benchmark_display_aggregates_only=true"]
    if bench_filter:
        cmd.append(f"--benchmark_filter={bench_filter}")

    def pin():
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=timeout_s, preexec_fn=pin)
        info["exit_code"] = p.returncode
        if p.returncode != 0:
            info["error"] = f"micro exited with code {p.returncode}: {p.stderr.strip()[-500:]}"
    except subprocess.TimeoutExpired:
        info["error"] = f"micro ran longer than {timeout_s:.0f} s and was killed"
    except OSError as e:
        info["error"] = f"cannot run micro: {e}"
    info["wall_s"] = round(time.monotonic() - t0, 2)
    try:
        with open(tmp, encoding="utf-8") as f:
            result = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        info["error"] = info["error"] or f"no JSON from micro: {e}"
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass
    # Google Benchmark names its executable by absolute path: a committed run must not name
    # the checkout it was made in.
    ctx = result.get("context")
    if isinstance(ctx, dict) and ctx.get("executable"):
        ctx["executable"] = repo_relative(ctx["executable"])
    result["cmbench"] = info
    store.atomic_write_json(out_path, result)
    return result
