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

LATENCY_CONNS = 100        # open-loop connections; the uncapped closed-loop peak is measured at this c
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

PEAK = "peak"              # parameter of a dedicated (uncapped) peak-rate point

# Throughput experiments run with the server's CPU capped by its cgroup (cgroup.py) so that the
# generator has headroom and the figure is the server's (server-bound). Latency experiments run
# uncapped: throttling would add up to a period (~1.5 ms) to latencies. Their offered rates are
# a share of the uncapped peak, and a point the generator could not offer on schedule is
# recorded as beyond what one generator core can offer, not as data.
CAPPED_EXPERIMENTS = {"scale", "idle", "churn", "cpu", "payload"}
UNCAPPED_EXPERIMENTS = {"latency", "blocking", "slowloris"}

# What a reference row (kind reference, serves=static: nginx, lighttpd, apache) can serve.
STATIC_EXPERIMENTS = {"scale", "idle", "churn", "latency", "slowloris", "payload"}

# select cannot watch an fd >= FD_SETSIZE (1024): its idle counts stay below it (with the active
# connections, the listener and stdio), so that it too gets the three counts a slope needs.
FD_SETSIZE = 1024
FD_LIMITED_MODELS = {"select"}
FD_SETSIZE_IDLE = [0, 300, 900]

# Apache's prefork MPM forks at most 32 processes a second (hard-coded in httpd 2.4), one per
# connection beyond its 64 spare ones: 900 idle clients take half a minute to be accepted and
# 10000 five minutes. Its idle counts stay where the set-up takes seconds (three, for a slope).
SPAWN_LIMITED_IDLE = {"apache-prefork": [0, 150, 300]}

# The syscall-counting window (harness/syscalls.py) runs after the timed window of the points a
# preset names (Preset.count_points), in the first repetition, on the same server, never inside
# it; it costs about syscalls.estimate_s(preset.duration_s) per point.


@dataclass
class Preset:
    name: str
    reps: int
    warmup_s: float
    duration_s: float
    points: dict[str, list]
    micro_min_time_s: float
    micro_reps: int
    budget_s: float = 0.0      # what the whole preset must fit in on the 2-core machine
    count_points: list = field(default_factory=list)   # [experiment, param] with a syscall count

    def to_json(self) -> dict:
        return asdict(self)


# Budgets (issue 7 item 7), with every model of the registry (23 + 4 reference rows) on this
# 2-core machine: quick <= 4 min, default <= 30 min, full <= 2 h. `run.py --dry-run` prints the
# estimate of a selection; estimate_point_s is calibrated on measured point costs here.
PRESETS = {
    # every model, the fewest points that still give every headline figure once
    "quick": Preset(
        "quick", reps=1, warmup_s=0.1, duration_s=0.3,
        points={"scale": [100], "idle": [0, 300, 900], "churn": [10],
                "latency": [80], "blocking": [0, 1], "payload": [65536]},
        micro_min_time_s=0.01, micro_reps=1, budget_s=240, count_points=[]),
    # the default suite: every model in every headline chart, 3 interleaved repetitions (short
    # windows: with ~27 models, three interleaved repetitions of 0.5 s beat two of 1 s on a VM
    # whose drift, not its window length, makes most of the spread; leaves ~10 % of the budget)
    "default": Preset(
        "default", reps=3, warmup_s=0.2, duration_s=0.5,
        points={"scale": [1, 100, 1000], "idle": [0, 1000, 10000], "churn": [10],
                "latency": [50, 80, 110], "blocking": [0, 1], "cpu": [100],
                "payload": [13, 1048576], "slowloris": [500]},
        micro_min_time_s=0.05, micro_reps=3, budget_s=1800,
        count_points=[["scale", 100], ["churn", 10]]),
    # all points, 10000 connections (3 repetitions, not the 5 one might expect: five do not fit in 2 h
    # once the registry holds ~27 models)
    "full": Preset(
        "full", reps=3, warmup_s=0.5, duration_s=2.0,
        points={"scale": [1, 10, 100, 1000, 5000, 10000], "idle": [0, 500, 1000, 5000, 10000],
                "churn": [10, 100], "latency": [10, 50, 80, 95, 110], "blocking": [0, 1],
                "cpu": [100], "payload": [13, 65536, 1048576], "slowloris": [500]},
        micro_min_time_s=0.2, micro_reps=5, budget_s=7200,
        count_points=[["scale", 100], ["churn", 10]]),
}


def idle_counts(model: str, counts: list) -> list:
    """The idle counts a model runs: select's stay below FD_SETSIZE (three of them), and a
    server that forks slowly gets counts it can reach in seconds."""
    if model in SPAWN_LIMITED_IDLE:
        return list(SPAWN_LIMITED_IDLE[model])
    if model not in FD_LIMITED_MODELS:
        return list(counts)
    fit = [c for c in counts if int(c) + IDLE_ACTIVE_CONNS + 16 <= FD_SETSIZE]
    return fit if len(fit) >= 3 else list(FD_SETSIZE_IDLE)


def serves(model: str, experiment: str) -> bool:
    m = registry.BY_NAME.get(model)
    if m is None or m.serves == "all":
        return True
    return experiment in STATIC_EXPERIMENTS


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
    """Where latency and blocking get each model's peak rate from: a dedicated uncapped
    closed-loop 'peak' point (at LATENCY_CONNS, the connections the open loop uses) of the first
    experiment that needs it. Scale points are capped, so they cannot be the peak of an
    uncapped experiment."""
    out = {}
    have = None
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
            base = list(preset.points.get(exp, []))
            per_model = {m: (idle_counts(m, base) if exp == "idle" else base) for m in order}
            params: list = []
            for m in order:   # the union, in increasing order (select's idle counts differ)
                for p in per_model[m]:
                    if p not in params:
                        params.append(p)
            params.sort(key=lambda p: float(p))
            if plan.peak_source.get(exp) == "own":
                params = [PEAK] + params
            for param in params:
                for model in order:
                    if not serves(model, exp):
                        continue   # a reference row in an experiment it cannot serve
                    if param != PEAK and param not in per_model[model]:
                        continue
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
    # Calibrated on the 2-vCPU machine: ~0.15 s of start/probe/stop per C++ point (Python
    # interpreters and their frameworks take ~0.4 s more to start), plus connection set-up and
    # tear-down (a forked process per connection costs most), plus the memory reading of a
    # process-per-connection tree in the warm-up.
    conns = connections_of(point)
    m = registry.BY_NAME.get(point.model)
    start = 0.15 + (0.4 if m is not None and m.kind == "python" else 0.0) + \
        (0.3 if m is not None and m.kind == "reference" else 0.0)
    # (measured here: fork 0.85 ms per connection at 300, 1.9 ms at 10000 on a busy machine;
    # threads 0.2 ms; an event loop 0.08 ms: the generator's connect and the server's accept)
    per_conn = {"fork": 1.2e-3, "apache-prefork": 1.2e-3, "threads": 2e-4,
                "py-threads": 2.5e-4}.get(point.model, 8e-5)
    est = start + preset.warmup_s + preset.duration_s + conns * per_conn
    if point.model in PROCESS_PER_CONN and conns > 50:
        est += 1.3 * conns * MEMORY_PASS_S_PER_PROC + 0.3
        if conns > 2000:
            est += 3.5   # thousands of children do not exit within the stop timeout: SIGKILL
    if point.model in THREAD_PER_CONN and conns > 50:
        est += 1.3 * conns * MEMORY_PASS_S_PER_THREAD
    if point.experiment == "slowloris":
        est += 0.15
    if syscall_window(point, preset) == "count":
        est += syscalls.estimate_s(preset.duration_s)   # the separate system-call counting window
    return est


def counts_syscalls(point: Point, preset: Preset) -> bool:
    return any(e == point.experiment and str(p) == str(point.param) for e, p in preset.count_points)


def syscall_window(point: Point, preset: Preset) -> str | None:
    """What a point does about system calls: "count" (a counting point of the preset, first
    repetition: it gets the window), "other-rep" (a counting point's later repetition: its
    count is in repetition 0), None (not a counting point)."""
    if not counts_syscalls(point, preset):
        return None
    return "count" if point.rep == 0 else "other-rep"


# Models whose tree holds a process per connection: the warm-up is stretched for their memory
# reading (measured here: ~65 us of CPU per process for stat + smaps_rollup).
PROCESS_PER_CONN = {"fork", "apache-prefork"}
# ... and a thread per connection: smaps_rollup walks every thread's stack (37 us per thread).
THREAD_PER_CONN = {"threads", "py-threads"}
MEMORY_PASS_S_PER_THREAD = 4e-5
MEMORY_PASS_S_PER_PROC = 2.5e-4   # wall time; measured 0.1-0.6 ms on a busy machine


CHARTS_S = 20.0   # charts and report at the end of a run


def estimate_micro_s(preset: Preset) -> float:
    # ~22 benchmark cases; each runs at least min_time per repetition (Google Benchmark
    # overshoots by ~30 %) plus set-up of up to 10000 socketpairs.
    return 22 * (preset.micro_min_time_s * preset.micro_reps * 1.3 + 0.04) + 0.5
