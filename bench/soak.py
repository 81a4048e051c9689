#!/usr/bin/python3
"""Soak test: does a server stay correct and flat under hours-like load? (make soak, issue 10)

    make soak MODEL=epoll [MINUTES=10]
    bench/soak.py --model epoll [--minutes 10] [--bin build/bin] [--server-cpus 0] [--client-cpus 1]

Starts build/bin/server-<MODEL> pinned to the server CPUs, with idle and header deadlines longer
than the soak (a server that does not know those flags yet, exit 2, is restarted without them,
with a warning). Finds the server's peak with a short closed-loop run, then for MINUTES keeps
beside it, all pinned to the client CPUs:
  * 1000 idle keep-alive connections (one loadgen holding them for the whole soak),
  * loadgen in open loop at 80 % of that peak (in chunks of 30 s, so progress is printed),
  * churn: a second loadgen with --close at 500 new connections/s (same chunks).
After every chunk it prints the errors, the server's open descriptors, RSS and PSS (summed over
its whole process tree, so fork's children count). It exits 1 when any request failed (or an
idle connection was lost), when the descriptors are not back to their baseline after the load,
or when the server's memory at the end exceeds its memory after the first minute by more than
10 %. The memory compared is Pss_Anon + Pss_Shmem, what the server itself allocates (docs/architecture.md
section 5): the total Pss, printed beside it, also holds shared-library pages whose share moves
with every other process on the machine that maps them, which is noise, not a leak.
Exit 3 (with the reason) when the model cannot run here, 2 on bad arguments.

Not part of make test or CI: it runs for minutes and its numbers depend on the machine's load.
Every loadgen and the server are stopped by PID at the end, also on Ctrl-C.
"""

import argparse
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CLK_TCK = os.sysconf("SC_CLK_TCK")
PSS_GROWTH_LIMIT = 0.10


def log(msg=""):
    print(msg, flush=True)


def parse_cpus(text):
    """'0', '0-1', '0,2' -> set of CPU numbers."""
    cpus = set()
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.update(range(int(lo), int(hi or lo) + 1))
    return cpus


def pinned(cpus):
    return lambda: os.sched_setaffinity(0, cpus)


# --------------------------------------------------------------------------------------------
# The server's process tree, read from /proc

def process_tree(root):
    """root and all its descendants (one pass over /proc)."""
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def reading(root):
    """Descriptors, RSS, Pss and Pss_Anon + Pss_Shmem (KiB) and CPU seconds of the tree (RSS is a
    plain sum, so pages shared between a forked tree's processes count once per process; PSS
    divides them fairly)."""
    r = {"procs": 0, "fds": 0, "rss_kib": 0, "pss_kib": 0, "own_kib": 0, "cpu_s": 0.0}
    for pid in process_tree(root):
        try:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            with open(f"/proc/{pid}/status") as f:
                rss = next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
            pss = own = 0
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    name, _, rest = line.partition(":")
                    if name == "Pss":
                        pss = int(rest.split()[0])
                    elif name in ("Pss_Anon", "Pss_Shmem"):
                        own += int(rest.split()[0])
            # CPU: nanoseconds on a CPU of every live thread (schedstat; utime/stime ticks miss
            # most of the short bursts a process per connection runs), plus the ticks of the
            # children already reaped (cutime, cstime).
            run_ns = 0
            for tid in os.listdir(f"/proc/{pid}/task"):
                try:
                    with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                        run_ns += int(f.read().split()[0])
                except OSError:
                    pass
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            fields = stat[stat.rindex(")") + 2:].split()
            reaped_ticks = int(fields[13]) + int(fields[14])
        except (OSError, StopIteration, ValueError):
            continue  # the process ended while we read it
        r["procs"] += 1
        r["fds"] += fds
        r["rss_kib"] += rss
        r["pss_kib"] += pss
        r["own_kib"] += own
        r["cpu_s"] += run_ns / 1e9 + reaped_ticks / CLK_TCK
    return r


def mib(kib):
    return f"{kib / 1024:.1f} MiB"


# --------------------------------------------------------------------------------------------
# Server and load generators

class Server:
    def __init__(self, binary, cpus, flags, stderr_path):
        self.stderr_path = stderr_path
        self.stderr = open(stderr_path, "w")
        self.proc = subprocess.Popen([str(binary), "--host", "127.0.0.1", "--port", "0", *flags],
                                     stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     preexec_fn=pinned(cpus))
        self.pid = self.proc.pid
        self.port = None

    def wait_ready(self, timeout=15):
        """The port from the ready line, or None when the server exited first (see exit_code)."""
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sel.select(timeout=0.2):
                line = self.proc.stdout.readline()
                if line.startswith("listening on "):
                    self.port = int(line.strip().rsplit(":", 1)[1])
                    return self.port
                if not line:  # EOF: it exited
                    break
        try:
            self.proc.wait(2)
        except subprocess.TimeoutExpired:
            pass
        return None

    def last_error_line(self):
        self.stderr.flush()
        try:
            lines = [l.strip() for l in open(self.stderr_path) if l.strip()]
        except OSError:
            return ""
        # The model's start-up banner comes first; the reason for an exit is the last line.
        return lines[-1] if lines else ""

    def stop(self):
        if self.proc.poll() is None:
            os.kill(self.pid, signal.SIGCONT)
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.proc.wait()
        self.stderr.close()


class Loadgen:
    """One loadgen run writing its JSON to a temporary file, stopped by PID."""

    def __init__(self, binary, cpus, args, tmpdir, name):
        self.json_path = os.path.join(tmpdir, f"{name}.json")
        self.out_path = os.path.join(tmpdir, f"{name}.out")
        self.out = open(self.out_path, "w")
        self.proc = subprocess.Popen([str(binary), "--json", self.json_path, *args], stdout=self.out,
                                     stderr=subprocess.STDOUT, text=True, preexec_fn=pinned(cpus))
        self.pid = self.proc.pid
        self.name = name

    def wait(self, timeout):
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.stop(signal.SIGKILL)
            self.proc.wait()
        self.out.close()
        text = open(self.out_path).read()
        try:
            with open(self.json_path) as f:
                return self.proc.returncode, json.load(f), text
        except (OSError, ValueError):
            return self.proc.returncode, None, text

    def stop(self, sig=signal.SIGINT):
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def alive(self):
        return self.proc.poll() is None


def errors_of(result):
    return sum(result["errors"].values()) if result else None


# --------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="runs build/bin/server-<model>")
    ap.add_argument("--minutes", type=float, default=10.0, help="length of the load phase (10)")
    ap.add_argument("--bin", default=str(REPO / "build" / "bin"), help="folder of the binaries")
    ap.add_argument("--server-cpus", default="0")
    ap.add_argument("--client-cpus", default="1")
    ap.add_argument("--share", type=float, default=0.8, help="offered load as a share of the peak (0.8)")
    ap.add_argument("--rate", type=int, default=0, help="offered load in req/s instead of a share of the peak")
    # Enough connections that 80 % of the peak needs only a few hundred requests/s each: with a
    # hundred, a round trip of a few ms on a busy machine already caps the open-loop rate.
    ap.add_argument("--connections", type=int, default=256, help="active connections (256)")
    ap.add_argument("--idle", type=int, default=1000, help="idle connections held beside the load (1000)")
    ap.add_argument("--churn-rate", type=int, default=500, help="new connections per second (500)")
    ap.add_argument("--chunk", type=float, default=30.0, help="seconds per loadgen run and report (30)")
    a = ap.parse_args()
    if a.minutes <= 0 or a.chunk <= 0 or not 0 < a.share <= 1:
        ap.error("--minutes and --chunk must be positive, --share in (0, 1]")
    bindir = Path(a.bin)
    server_bin, loadgen_bin = bindir / f"server-{a.model}", bindir / "loadgen"
    for b in (server_bin, loadgen_bin):
        if not os.access(b, os.X_OK):
            print(f"soak: {b} not found: build first (make build), and check MODEL={a.model}", file=sys.stderr)
            return 2
    try:
        server_cpus, client_cpus = parse_cpus(a.server_cpus), parse_cpus(a.client_cpus)
    except ValueError:
        ap.error("CPU lists look like 0, 0-1 or 0,2")

    load_s = a.minutes * 60
    # Deadlines longer than everything the soak does, so held connections are never cut.
    deadline = f"{int(load_s + 600)}s"
    running = []  # everything we started, stopped by PID in the finally block
    server = None
    with tempfile.TemporaryDirectory(prefix="cmbench-soak-") as tmp:
        try:
            flags = ["--idle-timeout", deadline, "--header-timeout", deadline]
            server = Server(server_bin, server_cpus, flags, os.path.join(tmp, "server.err"))
            port = server.wait_ready()
            if port is None and server.proc.returncode == 2:
                log(f"soak: warning: server-{a.model} rejected --idle-timeout/--header-timeout "
                    f"({server.last_error_line()!r}); restarting it without them, so its own default "
                    f"deadlines (if any) apply to the idle connections")
                server.stop()
                server = Server(server_bin, server_cpus, [], os.path.join(tmp, "server2.err"))
                port = server.wait_ready()
            if port is None:
                code = server.proc.returncode
                why = server.last_error_line()
                print(f"soak: server-{a.model} did not start (exit {code}): {why}", file=sys.stderr)
                return 3 if code == 3 else 1
            url = f"http://127.0.0.1:{port}/"
            time.sleep(0.5)
            base = reading(server.pid)
            log(f"soak: server-{a.model} pid {server.pid} on CPU {a.server_cpus}, {url}; loadgens on CPU "
                f"{a.client_cpus}; baseline {base['fds']} fds, RSS {mib(base['rss_kib'])}, "
                f"PSS {mib(base['pss_kib'])} (anon+shmem {mib(base['own_kib'])})")

            # 1. The server-bound peak: a short closed-loop run, with the server's CPU beside it.
            peak = Loadgen(loadgen_bin, client_cpus, ["-c", str(a.connections), "-d", "5s", "--warmup", "1s", url],
                           tmp, "peak")
            running.append(peak)
            # The server's CPU over 4 s inside the measured window (after set-up and warm-up).
            time.sleep(1.5)
            before, t0 = reading(server.pid), time.monotonic()
            time.sleep(4.0)
            cpu = (reading(server.pid)["cpu_s"] - before["cpu_s"]) / (time.monotonic() - t0)
            rc, r, text = peak.wait(60)
            if not r or r["requests"] == 0:
                print(f"soak: the peak run failed (exit {rc}):\n{text}", file=sys.stderr)
                return 1
            share = cpu / len(server_cpus)
            bound = "server-bound" if share >= 0.9 else "NOT server-bound (the peak is a lower bound)"
            rate = a.rate if a.rate > 0 else max(1, int(r["rps"] * a.share))
            log(f"soak: peak {r['rps']:.0f} req/s closed loop with {a.connections} connections; server CPU "
                f"{100 * share:.0f} % of its {len(server_cpus)} CPU(s): {bound}")
            log(f"soak: {a.minutes:g} min at {rate} req/s ({100 * rate / r['rps']:.0f} % of the peak), {a.idle} idle connections, "
                f"churn {a.churn_rate} connections/s")

            # 2. The idle connections, held for the whole soak (stopped with SIGINT at the end).
            idle = Loadgen(loadgen_bin, client_cpus,
                           ["-c", "1", "-R", "1", "--idle", str(a.idle), "-d", f"{int(load_s + 3600)}s",
                            "--timeout", "10s", url], tmp, "idle")
            running.append(idle)
            t_wait = time.monotonic() + 60
            while time.monotonic() < t_wait and idle.alive():
                if reading(server.pid)["fds"] >= base["fds"] + a.idle:
                    break
                time.sleep(0.5)
            log(f"soak: idle connections open: server holds {reading(server.pid)['fds']} fds")

            # 3. Load and churn in chunks, a report after each.
            failures, readings = [], []
            total_errors = total_requests = total_churn = incomplete = limited = 0
            chunks = max(1, math.ceil(load_s / a.chunk - 1e-9))
            t_start = time.monotonic()
            churn_conns = max(1, min(64, a.churn_rate // 25))
            for i in range(chunks):
                secs = min(a.chunk, load_s - i * a.chunk)
                d = f"{secs:g}s"
                main_lg = Loadgen(loadgen_bin, client_cpus, ["-R", str(rate), "-c", str(a.connections), "-d", d,
                                                             "--timeout", "2s", url], tmp, f"load{i}")
                churn = Loadgen(loadgen_bin, client_cpus, ["--close", "-R", str(a.churn_rate), "-c",
                                                           str(churn_conns), "-d", d, "--timeout", "2s", url],
                                tmp, f"churn{i}")
                running += [main_lg, churn]
                rc1, r1, text1 = main_lg.wait(secs + 120)
                rc2, r2, text2 = churn.wait(secs + 120)
                elapsed = time.monotonic() - t_start
                now = reading(server.pid)
                now["t"] = elapsed
                readings.append(now)
                for name, rcode, res, text in (("load", rc1, r1, text1), ("churn", rc2, r2, text2)):
                    if res is None:
                        failures.append(f"chunk {i + 1}: {name} loadgen gave no result (exit {rcode}): "
                                        f"{text.strip().splitlines()[-1:] }")
                e1, e2 = errors_of(r1) or 0, errors_of(r2) or 0
                total_errors += e1 + e2
                total_requests += r1["requests"] if r1 else 0
                total_churn += r2["requests"] if r2 else 0
                incomplete += (r1["incomplete"] if r1 else 0) + (r2["incomplete"] if r2 else 0)
                lim = " GENERATOR-LIMITED" if (r1 and r1["generator_limited"]) else ""
                limited += 1 if lim else 0
                load_txt = (f"load {r1['rps']:.0f} req/s, {e1} err, p99 {r1['latency_us']['p99'] / 1e3:.2f} ms, "
                            f"lag p99 {r1['lag_us']['p99'] / 1e3:.2f} ms{lim}") if r1 else "load: no result"
                churn_txt = f"churn {r2['rps']:.0f} conn/s, {e2} err" if r2 else "churn: no result"
                m, s = divmod(int(elapsed), 60)
                log(f"[{m:2d}:{s:02d}] {load_txt} | {churn_txt} | server: {now['fds']} fds, "
                    f"{now['procs']} procs, RSS {mib(now['rss_kib'])}, PSS {mib(now['pss_kib'])} "
                    f"(anon+shmem {mib(now['own_kib'])})")
                if e1 + e2:
                    log(f"        errors: load {r1 and r1['errors']}, churn {r2 and r2['errors']}")
                if not idle.alive():
                    failures.append(f"the idle-connection loadgen exited early: {open(idle.out_path).read()}")
                    break

            # 4. The idle connections: all held to the end?
            idle.stop(signal.SIGINT)
            rc3, r3, text3 = idle.wait(30)
            held = [l.strip() for l in text3.splitlines() if l.strip().startswith("Idle connections:")]
            log(f"soak: idle: {held[0] if held else 'no report'}; its own requests: "
                f"{r3['requests'] if r3 else '?'} ok, {errors_of(r3)} err")
            if r3:
                total_errors += errors_of(r3)
            if not held or "closed by the server" in held[0] or \
                    not held[0].startswith(f"Idle connections: {a.idle} of {a.idle} held"):
                failures.append(f"idle connections not all held to the end: {held[0] if held else text3[-300:]}")

            # 5. After the load: descriptors back to the baseline (give lingering closes a moment).
            t_fd = time.monotonic() + 10
            after = reading(server.pid)
            while after["fds"] > base["fds"] and time.monotonic() < t_fd:
                time.sleep(0.5)
                after = reading(server.pid)
            log(f"soak: after the load: {after['fds']} fds (baseline {base['fds']}), {after['procs']} procs, "
                f"RSS {mib(after['rss_kib'])}, PSS {mib(after['pss_kib'])} (anon+shmem {mib(after['own_kib'])})")

            # Verdicts.
            log(f"soak: {total_requests} requests and {total_churn} churned connections succeeded, "
                f"{total_errors} failed, {incomplete} unfinished at chunk ends")
            if limited:
                log(f"soak: note: {limited} of {chunks} chunks were generator-limited (the client CPUs also run "
                    f"the churn, the idle connections and whatever else this machine runs): the server saw less "
                    f"than the offered {rate} req/s on schedule")
            if total_errors:
                failures.append(f"{total_errors} requests failed")
            if after["fds"] > base["fds"]:
                failures.append(f"descriptors not back to the baseline: {after['fds']} > {base['fds']}")
            if readings:
                first = next((x for x in readings if x["t"] >= 60), readings[0])
                last = readings[-1]
                growth = (last["own_kib"] - first["own_kib"]) / max(1, first["own_kib"])
                log(f"soak: memory (anon+shmem) after {first['t']:.0f} s {mib(first['own_kib'])}, at the end "
                    f"({last['t']:.0f} s) {mib(last['own_kib'])}: {100 * growth:+.1f} % (limit "
                    f"+{100 * PSS_GROWTH_LIMIT:.0f} %); total PSS {mib(first['pss_kib'])} -> {mib(last['pss_kib'])}")
                if growth > PSS_GROWTH_LIMIT:
                    failures.append(f"memory grew {100 * growth:.1f} % after the first minute")
            if failures:
                for f in failures:
                    log(f"soak: FAIL: {f}")
                return 1
            log("soak: PASS")
            return 0
        finally:
            for lg in running:
                if lg.alive():
                    lg.stop(signal.SIGKILL)
                    lg.proc.wait()
            if server is not None:
                server.stop()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
