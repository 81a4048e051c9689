"""A synthetic results folder (meta.json + runs.jsonl) with every registry model, for the chart
and report tests: plausible, deterministic numbers in the harness's record layout, including
the figures that must NOT be shown as numbers:

- py-tornado's idle memory is noise (r² < 0.9) and select holds only two idle counts: both
  memory slopes are not measurable;
- the latency points at 110 % (and fork's at 80 % and above) were not offered on schedule
  (`beyond-generator`);
- the blocking experiment hurts the pure event loops in every repetition, while fork, threads,
  threadpool and offload hold; asio's ratio is below 2 in one repetition (defect 9's case);
- uring's points are skipped (as on a kernel without io_uring);
- the flags carry what limited each point (server-, client-, latency-bound).

    make(folder, models=None, reps=3) -> Path
"""
from __future__ import annotations

import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "bench"))

from harness import registry  # noqa: E402

# model -> (peak req/s at 100 connections, KiB per idle connection, event loop?)
PROFILE = {
    "fork": (90e3, 56.0, False), "threads": (125e3, 14.0, False), "select": (200e3, 0.2, True),
    "poll": (205e3, 0.2, True), "epoll": (205e3, 0.2, True), "asio": (190e3, 5.0, True),
    "libevent": (140e3, 1.2, True), "coro": (195e3, 0.5, True), "asio-coro": (180e3, 5.5, True),
    "fibers": (170e3, 9.0, True), "libuv": (175e3, 0.9, True), "py-epoll": (60e3, 1.5, True),
    "py-threads": (40e3, 70.0, False), "py-asyncio": (45e3, 3.0, True), "py-uvloop": (60e3, 2.5, True),
    "py-gevent": (30e3, 9.0, True), "py-twisted": (28e3, 6.0, True), "py-tornado": (20e3, 4.0, True),
    "threadpool": (180e3, 0.3, False), "offload": (200e3, 0.2, False), "prefork": (200e3, 0.2, True),
    "reuseport": (200e3, 0.2, True), "uring": (220e3, 0.3, True), "nginx": (160e3, 0.5, True),
    "lighttpd": (150e3, 3.5, True), "apache-event": (90e3, 32.0, True),
    "apache-prefork": (60e3, 215.0, False),
}
SKIPPED = {"uring": "server-uring exited 3: io_uring is not available on this kernel"}
STATIC = {"scale", "idle", "churn", "latency", "slowloris", "payload"}
NOT_MEASURABLE_NOISE = "py-tornado"


def _hist(p50: float, p99: float, n: int = 20000) -> list[list[int]]:
    out = {}
    rnd = random.Random(int(p50 * 7 + p99))
    for _ in range(2000):
        u = rnd.random()
        v = p50 * (1 + u) if u < 0.98 else p99 * (1 + 2 * (u - 0.98) * 50)
        out[int(v)] = out.get(int(v), 0) + n // 2000
    return [[k, c] for k, c in sorted(out.items())]


def _rec(exp, model, param, rep, metrics, limit=None, flags=(), status="ok", reason=None, **extra):
    fl = ([limit] if limit else []) + list(flags)
    r = {"schema": 2, "experiment": exp, "model": model, "param": param, "rep": rep,
         "label": f"{exp} {model} {param}", "status": status, "reason": reason,
         "config": extra.pop("config", {}), "metrics": metrics if status == "ok" else {},
         "limited_by": limit, "flags": fl}
    # Reference rows: bench/harness/points.py records the probe's differences from the
    # contract's bytes (reference.differences); one that differs from the known list shows
    # that the report reads this run's records, not the list.
    if model == "nginx" and status == "ok":
        r["probe_differences"] = ["extra header Server: nginx", "extra header Date: <the current time>"]
    r.update(extra)
    return r


def records(models: list[str], reps: int = 3) -> list[dict]:
    rnd = random.Random(42)
    out = []

    def noise(v, pct=0.08):
        return v * (1 + rnd.uniform(-pct, pct))

    for rep in range(reps):
        for m in models:
            peak, kib, loop = PROFILE.get(m, (100e3, 1.0, True))
            static = registry.BY_NAME[m].serves == "static" if m in registry.BY_NAME else False
            exps = STATIC if static else {"scale", "idle", "churn", "latency", "blocking", "cpu",
                                          "payload", "slowloris"}
            if m in SKIPPED:
                for exp in sorted(exps):
                    out.append(_rec(exp, m, 100, rep, {}, status="skipped", reason=SKIPPED[m]))
                continue
            for c in (1, 10, 100, 1000):
                rps = noise(peak * (0.15 if c == 1 else 0.8 if c == 10 else 1.0 if c == 100
                                     else (0.95 if loop else 0.6)))
                lim = "latency-bound" if c == 1 else ("client-bound" if m == "nginx" and c >= 10
                                                      else "server-bound")
                met = {"rps": rps, "p50_us": noise(c * 1e6 / rps), "p99_us": noise(3 * c * 1e6 / rps + 50),
                       "p999_us": noise(6 * c * 1e6 / rps + 80), "cpu_us_per_req": noise(1e6 / peak),
                       "ctxsw_per_req": noise(0.01 if loop else 1.0), "pss_kib": 1500 + kib * c,
                       "server_cpu_util": 0.96, "client_cpu_frac": 0.4, "error_rate": 0.0}
                extra = {}
                if c == 100:
                    extra["loadgen"] = {"histogram": {"sig_digits": 3, "unit": "us",
                                                      "buckets": _hist(met["p50_us"], met["p99_us"])}}
                    if rep == 0:
                        calls = ({"epoll_wait": 1.0, "recvfrom": 1.0, "sendmsg": 1.0} if loop else
                                 {"recvfrom": 1.0, "sendmsg": 1.0, "futex": 0.2})
                        if m == "select":
                            calls = {"pselect6": 1.0, "recvfrom": 1.0, "sendmsg": 1.0}
                        for name, v in calls.items():
                            met[f"syscall_{name}_per_req"] = v
                        met["syscall_other_per_req"] = 0.1
                        met["syscalls_per_req"] = sum(calls.values()) + 0.1
                out.append(_rec("scale", m, c, rep, met, lim, **extra))
            idle_counts = [0, 250, 500, 900] if m == "select" else [0, 500, 1000, 5000]
            if m == "select":
                idle_counts = [0, 500]      # then FD_SETSIZE: two counts, no slope
            for n in idle_counts:
                mem = 1500 + kib * n
                if m == NOT_MEASURABLE_NOISE:
                    mem = 1500 + rnd.uniform(0, 20000)     # noise: r² far below 0.9
                rps = noise(peak * 0.5 * (1 if (loop and m not in ("select", "poll")) or n == 0
                                          else 0.1 if m == "poll" else 0.8))
                out.append(_rec("idle", m, n, rep, {"rps": rps, "p99_us": noise(10 * 1e6 / rps + 40),
                                                    "pss_kib": mem + 400, "model_kib": mem,
                                                    "error_rate": 0.0}, "server-bound"))
            out.append(_rec("churn", m, 10, rep, {"rps": noise(peak / (8 if loop else 20)),
                                                  "p99_us": noise(400), "ctxsw_per_req": noise(2.0),
                                                  "cpu_us_per_req": noise(30 if loop else 90),
                                                  "error_rate": 0.0,
                                                  **({"syscalls_per_req": 9.0, "syscall_accept4_per_req": 1.0,
                                                      "syscall_close_per_req": 1.0}
                                                     if rep == 0 else {})}, "server-bound"))
            for pct in (10, 50, 80, 95, 110):
                flags = ["generator-limited", "beyond-generator"] if pct == 110 or (m == "fork" and pct >= 80) else []
                p99 = noise(100 + 50 * pct + (20000 if pct >= 95 else 0))
                out.append(_rec("latency", m, pct, rep, {"p99_us": p99, "p50_us": p99 / 3,
                                                         "offered_rps": peak * pct / 100,
                                                         "rps": peak * pct / 100 * 0.99,
                                                         "achieved_frac": 0.99, "error_rate": 0.0},
                                "latency-bound", flags, config={"peak_rps": peak}))
            if "blocking" in exps:
                hurt = loop and m not in ("offload",)
                base = noise(300)
                # the poll example of defect 9: per-repetition ratios differ from the ratio of medians
                factor = (4.0 if rep == 0 else 2.1) if m == "poll" else (3.5 if hurt else 1.2)
                if m == "asio":
                    factor = 2.5 if rep else 0.83      # one repetition did not double
                out.append(_rec("blocking", m, 0, rep, {"p99_us": base, "error_rate": 0.0},
                                "latency-bound", config={"peak_rps": peak}))
                out.append(_rec("blocking", m, 1, rep, {"p99_us": base * factor, "error_rate": 0.0},
                                "latency-bound", config={"peak_rps": peak}))
                out.append(_rec("cpu", m, 100, rep, {"rps": noise(9000), "p99_us": noise(1500),
                                                     "cpu_us_per_req": noise(105), "error_rate": 0.0},
                                "server-bound"))
                out.append(_rec("slowloris", m, 500, rep, {"p99_us": noise(500), "rps": noise(peak * 0.4),
                                                           "slow_alive": 500, "slow_closed": 0,
                                                           "error_rate": 0.0}, "server-bound"))
            else:
                out.append(_rec("slowloris", m, 500, rep, {"p99_us": noise(500), "rps": noise(peak * 0.4),
                                                           "slow_alive": 500, "slow_closed": 0,
                                                           "error_rate": 0.0}, "server-bound"))
            for size in (13, 1024, 65536, 1048576):
                rps = noise(peak / (1 + size / 20000))
                out.append(_rec("payload", m, size, rep, {"payload_mb_s": rps * size / 1e6, "rps": rps,
                                                          "error_rate": 0.0}, "server-bound"))
    return out


def meta(models: list[str], reps: int) -> dict:
    return {"schema": 2, "created_utc": "2026-12-01T09:00:00Z", "host": "synthetic", "complete": True,
            "cpu": {"model": "Synthetic CPU", "cores_online": 2, "hypervisor": True},
            "settings": {"preset": "default", "reps": reps, "models": models,
                         "experiments": ["scale", "idle", "churn", "latency", "blocking", "cpu",
                                         "payload", "slowloris"],
                         # as bench/run.py writes them: CPU lists, and the preset's counting points
                         "server_cpus": [0], "client_cpus": [1], "server_cpu": 0, "client_cpu": 1,
                         "count_points": [["scale", 100], ["churn", 10]],
                         "warmup_s": 0.5, "duration_s": 1.0},
            # as bench/run.py records it
            "cpu_cap": {"cgroup": {"version": "v1", "reason": None, "cpu_dir": "/sys/fs/cgroup/cpu"},
                        "quota_us": 1000, "period_us": 2500, "share": 0.4, "applied": True,
                        "capped_experiments": ["churn", "cpu", "idle", "payload", "scale"],
                        "uncapped_experiments": ["blocking", "latency", "slowloris"],
                        "method": "Throughput experiments run with the server's tree in a cgroup.",
                        "reason": None},
            "git": {"commit": "0" * 40, "dirty": False}, "wall_s": 1500}


def make(folder: Path, models: list[str] | None = None, reps: int = 3) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    models = models or list(registry.NAMES)
    with open(folder / "runs.jsonl", "w") as f:
        for r in records(models, reps):
            f.write(json.dumps(r) + "\n")
    (folder / "meta.json").write_text(json.dumps(meta(models, reps), indent=2))
    return folder


if __name__ == "__main__":
    print(make(Path(sys.argv[1])))
