"""Presets, experiments and the ordered list of points a run will measure.

A point is one experiment x model x parameter x repetition. The order interleaves models
inside every parameter of every repetition (and rotates the model order from one repetition
to the next), so slow drifts of the machine hit every model alike: on this kind of machine
only interleaved repetitions are comparable.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from . import registry, syscalls

MODELS = registry.NAMES  # servers/models.txt, in chart order
EXPERIMENTS = ["scale", "idle", "churn", "latency", "blocking", "cpu", "payload", "slowloris", "micro"]
LOAD_EXPERIMENTS = [e for e in EXPERIMENTS if e != "micro"]

# What each experiment's parameter means (for labels, tables and charts).
PARAM_NAMES = {
    "scale": ("connections", ""),
    "idle": ("idle connections", ""),
    "churn": ("connections", ""),
    "latency": ("offered load", "% of peak"),
    "blocking": ("slow requests", "%"),
    "cpu": ("CPU per request", "us"),
    "payload": ("response body", "B"),
    "slowloris": ("slow clients", ""),
}

QUESTIONS = {
    "scale": "How do throughput, latency and CPU per request change as keep-alive connections grow?",
    "idle": "What does one idle connection cost in memory, and does holding many slow down the active ones?",
    "churn": "What does a new connection per request cost (accept, plus process or thread creation)?",
    "latency": "How does coordinated-omission-corrected latency grow with offered load, and where is the knee?",
    "blocking": "What happens to fast requests when 1 % of requests make a blocking call?",
    "cpu": "How do the models serve CPU-bound handlers?",
    "payload": "What do copying and buffering cost as responses grow from 13 B to 1 MiB?",
    "slowloris": "Who keeps serving good clients while hundreds of clients trickle their headers?",
    "micro": "What do the mechanisms underneath cost: one readiness wait among N fds, fork, thread spawn, parsing?",
}

LATENCY_CONNS = 100        # open-loop connections, and the closed-loop peak is measured at this c
BLOCKING_FAST_CONNS = 50   # connections carrying the fast requests
BLOCKING_SLOW_CONNS = 4    # connections carrying the /sleep/1000 requests
BLOCKING_LOAD_PCT = 50     # fast requests are offered at this % of the model's peak ...
# ... but at most this many per second, the same for every model that reaches it: at 1 % slow
# requests of 1 ms each, 20000 req/s keeps an event loop 20 % asleep. Uncapped (50 % of a
# 200k req/s peak) the sleeps alone would need 100 % of the loop and nothing else would finish.
BLOCKING_MAX_FAST_RPS = 20000
BLOCKING_SLEEP_US = 1000
IDLE_ACTIVE_CONNS = 10
SLOWLORIS_ACTIVE_CONNS = 10
PAYLOAD_CONNS = 10
CPU_CONNS = 10
TIMEOUT_S = 2.0            # loadgen --timeout: a response slower than this is an error

PEAK = "peak"              # parameter of a dedicated peak-rate point


# Idle counts include 500 beside the 1000/5000/10000: select cannot hold more than
# FD_SETSIZE (1024) fds, and needs two idle counts of its own for a memory slope.


@dataclass
class Preset:
    name: str
    reps: int
    warmup_s: float
    duration_s: float
    points: dict[str, list]
    micro_min_time_s: float
    micro_reps: int
    sample_period_s: float = 0.1

    def to_json(self) -> dict:
        return asdict(self)


PRESETS = {
    # every model, fewer points, one repetition: about 2 minutes
    "quick": Preset(
        "quick", reps=1, warmup_s=0.25, duration_s=0.5,
        points={"scale": [10, 100, 1000], "idle": [0, 500], "churn": [10],
                "latency": [50, 80, 110], "blocking": [0, 1], "cpu": [100],
                "payload": [13, 65536], "slowloris": [500]},
        micro_min_time_s=0.01, micro_reps=1),
    # the default suite: about 15 minutes
    "default": Preset(
        "default", reps=3, warmup_s=0.5, duration_s=1.0,
        points={"scale": [1, 10, 100, 1000], "idle": [0, 500, 1000, 5000], "churn": [10],
                "latency": [10, 50, 80, 95, 110], "blocking": [0, 1], "cpu": [100],
                "payload": [13, 1024, 65536, 1048576], "slowloris": [500]},
        micro_min_time_s=0.05, micro_reps=3),
    # all points, 10000 connections, 5 repetitions: about an hour
    "full": Preset(
        "full", reps=5, warmup_s=1.0, duration_s=2.0,
        points={"scale": [1, 10, 100, 1000, 5000, 10000], "idle": [0, 500, 1000, 5000, 10000],
                "churn": [10], "latency": [10, 50, 80, 95, 110], "blocking": [0, 1],
                "cpu": [100], "payload": [13, 1024, 65536, 1048576], "slowloris": [500]},
        micro_min_time_s=0.2, micro_reps=5),
}


@dataclass(frozen=True)
class Point:
    experiment: str
    model: str
    param: object     # int, or "peak"
    rep: int

    @property
    def key(self) -> tuple:
        return (self.experiment, self.model, str(self.param), self.rep)

    def label(self) -> str:
        if self.param == PEAK:
            return f"{self.experiment} {self.model} peak c={LATENCY_CONNS}"
        name, unit = PARAM_NAMES.get(self.experiment, ("", ""))
        short = {"connections": "c", "idle connections": "idle", "offered load": "load",
                 "slow requests": "slow", "CPU per request": "/cpu/", "response body": "/bytes/",
                 "slow clients": "slow clients"}.get(name, name)
        unit = "%" if unit.startswith("%") else unit
        sep = "" if short.endswith("/") else "="
        return f"{self.experiment} {self.model} {short}{sep}{self.param}{unit}"


@dataclass
class Plan:
    preset: Preset
    models: list[str]
    experiments: list[str]
    reps: int
    points: list[Point] = field(default_factory=list)
    peak_source: dict[str, str] = field(default_factory=dict)   # experiment -> where its peak comes from

    def to_json(self) -> dict:
        return {"preset": self.preset.to_json(), "models": self.models,
                "experiments": self.experiments, "reps": self.reps,
                "peak_source": self.peak_source, "n_points": len(self.points)}


def peak_sources(experiments: list[str], points: dict[str, list]) -> dict[str, str]:
    """Where latency and blocking get each model's peak rate from: the scale point at
    LATENCY_CONNS when it is measured in the same run, else a dedicated 'peak' point of the
    first experiment that needs it."""
    out = {}
    have = "scale" if ("scale" in experiments and LATENCY_CONNS in points.get("scale", [])) else None
    for exp in ("latency", "blocking"):
        if exp in experiments:
            if have is None:
                have = exp
                out[exp] = "own"
            else:
                out[exp] = have
    return out


def build(preset: Preset, models: list[str], experiments: list[str], reps: int) -> Plan:
    plan = Plan(preset, list(models), [e for e in EXPERIMENTS if e in experiments], reps)
    plan.peak_source = peak_sources(plan.experiments, preset.points)
    for rep in range(reps):
        # Rotate the model order each repetition: no model always runs first or last.
        k = rep % max(1, len(models))
        order = list(models[k:]) + list(models[:k])
        for exp in plan.experiments:
            if exp == "micro":
                continue
            params = list(preset.points.get(exp, []))
            if plan.peak_source.get(exp) == "own":
                params = [PEAK] + params
            for param in params:
                for model in order:
                    plan.points.append(Point(exp, model, param, rep))
    return plan


def connections_of(point: Point) -> int:
    """How many connections a point holds open at once (for skip rules and time estimates)."""
    e, p = point.experiment, point.param
    if p == PEAK:
        return LATENCY_CONNS
    if e == "scale":
        return int(p)
    if e == "idle":
        return int(p) + IDLE_ACTIVE_CONNS
    if e == "churn":
        return int(p)
    if e == "latency":
        return LATENCY_CONNS
    if e == "blocking":
        return BLOCKING_FAST_CONNS + BLOCKING_SLOW_CONNS
    if e == "cpu":
        return CPU_CONNS
    if e == "payload":
        return PAYLOAD_CONNS
    if e == "slowloris":
        return int(p) + SLOWLORIS_ACTIVE_CONNS
    return 0


def estimate_point_s(point: Point, preset: Preset) -> float:
    """Planned wall time of one point: start, probe, connect, warm-up, run, stop."""
    # Calibrated on the 2-vCPU machine: ~0.1 s of start/probe/stop per point, plus connection
    # set-up and tear-down (a forked process per connection costs most).
    conns = connections_of(point)
    per_conn = {"fork": 5e-4, "threads": 1.5e-4}.get(point.model, 4e-5)
    est = 0.12 + preset.warmup_s + preset.duration_s + conns * per_conn
    if point.experiment == "slowloris":
        est += 0.15
    est += syscalls.estimate_s(point)   # the separate system-call counting window, if any
    return est


def estimate_micro_s(preset: Preset) -> float:
    # ~22 benchmark cases; each runs at least min_time per repetition (Google Benchmark
    # overshoots by ~30 %) plus set-up of up to 10000 socketpairs.
    return 22 * (preset.micro_min_time_s * preset.micro_reps * 1.3 + 0.04) + 0.5
