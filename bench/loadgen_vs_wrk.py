#!/usr/bin/python3
"""make loadgen-vs-wrk: cmbench's loadgen side by side with wrk at maximum rate.

Against server-epoll and against nginx-light (the reference row's config: one worker, the same
13-byte response, started on an ephemeral loopback port in a temporary folder and stopped by PID;
skipped with the reason when nginx is not installed: make deps-reference), with the server
pinned to CPU 0 and the client to CPU 1, for c = 10, 100 and 1000, 5 s per run, loadgen and wrk
alternated three times (interleaved, because identical runs on this kind of machine differ by
20-25 %). Both clients use one thread. Prints req/s, p50 and p99 for both (medians, with the
req/s range) and the ratio loadgen/wrk of the median req/s: the goal is >= 1.0 everywhere, i.e.
the server and not the client is the bottleneck. The last columns give each client's own CPU
time per request (whole process, from the children's rusage): the client's speed regardless of
which side limited the run.

    /usr/bin/python3 bench/loadgen_vs_wrk.py [--bin-dir build/bin] [--servers epoll,nginx]
        [--connections 10,100,1000] [--duration 5] [--reps 3] [--server-cpu 0] [--client-cpu 1]
        [--json FILE]
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from harness import reference  # noqa: E402  (the reference rows' configs and start commands)
from harness.server import Server  # noqa: E402  (the harness's server lifecycle)
BODY = b"Hello, World!"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cpu):
    """preexec_fn pinning the child to one CPU (None: no pinning)."""
    if cpu is None:
        return None
    return lambda: os.sched_setaffinity(0, {cpu})


def raise_fd_limit():
    """wrk and loadgen need one descriptor per connection; children inherit the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def probe(port, timeout=5.0):
    """Waits until GET / on the port answers with the 13-byte body; returns True on success."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            if data.startswith(b"HTTP/1.1 200") and data.endswith(BODY):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


class EpollServer:
    """server-epoll, started pinned, probed and stopped by the harness's own Server."""
    name = "server-epoll"

    def __init__(self, bin_dir, cpu):
        self.server = Server("epoll", bin_dir / "server-epoll", [cpu] if cpu is not None else None)
        reason = self.server.start() or self.server.probe()
        if reason:
            self.stop()
            raise RuntimeError(f"server-epoll: {reason} (build it first: make)")
        self.port = self.server.port

    def stop(self):
        self.server.stop()
        self.server.close()


class Nginx:
    """nginx-light with one worker returning the same 13-byte body: the reference row's own
    config and start command (bench/harness/reference.py, bench/reference/nginx.conf.in),
    in the foreground on a free loopback port, stopped by PID."""
    name = "nginx"

    def __init__(self, cpu):
        reason = reference.available("nginx")
        if reason:
            raise RuntimeError(reason)
        self.dir = Path(tempfile.mkdtemp(prefix="cmbench-nginx-"))
        self.proc = None
        for _ in range(5):  # the free port may be taken between probe and bind: retry
            self.port = free_port()
            argv = reference.command("nginx", "127.0.0.1", self.port, self.dir, None)
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                         preexec_fn=pinned(cpu))
            if reference.wait_for_port("127.0.0.1", self.port, 5, lambda: self.proc.poll() is None) is None \
                    and probe(self.port):
                return
            self.stop(keep_dir=True)
        log = reference.error_log(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)
        raise RuntimeError(f"nginx did not start: {log}")

    def stop(self, keep_dir=False):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the master stops its worker and exits
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


UNITS_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def wrk_time_us(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"cannot parse wrk time {text!r}")
    return float(m.group(1)) * UNITS_US[m.group(2)]


def children_cpu_s():
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_wrk(url, c, duration, cpu):
    cmd = ["wrk", "-t1", f"-c{c}", f"-d{duration}s", "--latency", url]
    before = children_cpu_s()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, preexec_fn=pinned(cpu)).stdout
    cpu_s = children_cpu_s() - before
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    if not (rps and p50 and p99):
        raise RuntimeError(f"cannot parse wrk output:\n{out}")
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    requests = re.search(r"(\d+) requests in", out)
    return {"rps": float(rps.group(1)), "p50_us": wrk_time_us(p50.group(1)), "p99_us": wrk_time_us(p99.group(1)),
            "errors": sum(int(x) for x in errors.groups()) if errors else 0,
            "cpu_us_per_req": cpu_s * 1e6 / int(requests.group(1)) if requests and int(requests.group(1)) else None}


def run_loadgen(loadgen, url, c, duration, cpu):
    with tempfile.TemporaryDirectory(prefix="cmbench-lg-") as tmp:
        path = os.path.join(tmp, "r.json")
        cmd = [str(loadgen), "-t", "1", "-c", str(c), "-d", f"{duration}s", "--json", path, url]
        before = children_cpu_s()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60, preexec_fn=pinned(cpu))
        cpu_s = children_cpu_s() - before  # whole process, like wrk's figure
        if not os.path.exists(path):
            raise RuntimeError(f"loadgen failed ({proc.returncode}): {proc.stderr}")
        with open(path) as f:
            r = json.load(f)
    return {"rps": r["rps"], "p50_us": float(r["latency_us"]["p50"]), "p99_us": float(r["latency_us"]["p99"]),
            "errors": sum(r["errors"].values()),
            "cpu_us_per_req": cpu_s * 1e6 / r["requests"] if r["requests"] else None}


def fmt_us(us):
    return f"{us:.0f}us" if us < 1000 else f"{us / 1000:.2f}ms" if us < 1e6 else f"{us / 1e6:.2f}s"


def median_or_none(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt_num(v):
    return "-" if v is None else f"{v:.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", type=Path, default=ROOT / "build" / "bin")
    ap.add_argument("--servers", default="epoll,nginx")
    ap.add_argument("--connections", default="10,100,1000")
    ap.add_argument("--duration", type=int, default=5, help="seconds per run")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write all runs to this file")
    args = ap.parse_args()

    loadgen = args.bin_dir / "loadgen"
    if not loadgen.exists():
        sys.exit(f"{loadgen} not found: build first (make)")
    if not shutil.which("wrk"):
        sys.exit("wrk not found: install it (make deps)")
    cpus = os.sched_getaffinity(0)
    server_cpu = args.server_cpu if args.server_cpu in cpus else None
    client_cpu = args.client_cpu if args.client_cpu in cpus and args.client_cpu != args.server_cpu else None
    if server_cpu is None or client_cpu is None:
        print(f"warning: CPUs {sorted(cpus)} available: running unpinned", file=sys.stderr)
    conns = [int(x) for x in args.connections.split(",")]
    fd_limit = raise_fd_limit()
    if max(conns) + 64 > fd_limit:
        sys.exit(f"ulimit -n is {fd_limit}: too low for {max(conns)} connections")

    runs = []
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if "nginx" in servers and (why := reference.available("nginx")):
        print(f"skipping nginx: {why}", file=sys.stderr)
        servers.remove("nginx")
    total = len(servers) * len(conns) * args.reps * 2
    done = 0
    started = time.monotonic()
    for name in servers:
        server = EpollServer(args.bin_dir, server_cpu) if name == "epoll" else Nginx(server_cpu)
        try:
            url = f"http://127.0.0.1:{server.port}/"
            for c in conns:
                for rep in range(args.reps):
                    for tool in ("loadgen", "wrk"):  # alternated: L W L W L W
                        r = run_loadgen(loadgen, url, c, args.duration, client_cpu) if tool == "loadgen" \
                            else run_wrk(url, c, args.duration, client_cpu)
                        r.update(server=server.name, c=c, tool=tool, rep=rep + 1)
                        runs.append(r)
                        done += 1
                        eta = (time.monotonic() - started) / done * (total - done)
                        print(f"[{done}/{total}] {server.name} c={c} {tool} rep {rep + 1}: {r['rps']:.0f} req/s, "
                              f"p50 {fmt_us(r['p50_us'])}, p99 {fmt_us(r['p99_us'])}"
                              f"{', errors ' + str(r['errors']) if r['errors'] else ''}  (ETA {eta:.0f}s)",
                              file=sys.stderr, flush=True)
        finally:
            server.stop()

    print()
    print(f"loadgen vs wrk (-t1 each), {args.duration} s runs, median of {args.reps} interleaved runs; "
          f"server CPU {server_cpu}, client CPU {client_cpu}")
    header = (f"{'server':<13} {'c':>5}  {'loadgen req/s':>22}  {'wrk req/s':>22}  {'ratio':>5}  "
              f"{'p50 lg':>8} {'p50 wrk':>8}  {'p99 lg':>8} {'p99 wrk':>8}  {'CPU us/req lg':>13} {'wrk':>5}")
    print(header)
    print("-" * len(header))
    summary = []
    for name in servers:
        sname = "server-epoll" if name == "epoll" else "nginx"
        for c in conns:
            def pick(tool, key):
                return [r[key] for r in runs if r["server"] == sname and r["c"] == c and r["tool"] == tool]
            lg, wk = pick("loadgen", "rps"), pick("wrk", "rps")
            ratio = statistics.median(lg) / statistics.median(wk) if statistics.median(wk) else float("nan")
            row = {"server": sname, "c": c, "loadgen_rps": statistics.median(lg), "wrk_rps": statistics.median(wk),
                   "ratio": ratio, "loadgen_p50_us": statistics.median(pick("loadgen", "p50_us")),
                   "wrk_p50_us": statistics.median(pick("wrk", "p50_us")),
                   "loadgen_p99_us": statistics.median(pick("loadgen", "p99_us")),
                   "wrk_p99_us": statistics.median(pick("wrk", "p99_us")),
                   "loadgen_cpu_us_per_req": median_or_none(pick("loadgen", "cpu_us_per_req")),
                   "wrk_cpu_us_per_req": median_or_none(pick("wrk", "cpu_us_per_req"))}
            summary.append(row)
            lg_range = f"{row['loadgen_rps']:.0f} ({min(lg) / 1e3:.0f}k-{max(lg) / 1e3:.0f}k)"
            wk_range = f"{row['wrk_rps']:.0f} ({min(wk) / 1e3:.0f}k-{max(wk) / 1e3:.0f}k)"
            print(f"{sname:<13} {c:>5}  {lg_range:>22}  {wk_range:>22}  {ratio:>5.2f}  "
                  f"{fmt_us(row['loadgen_p50_us']):>8} {fmt_us(row['wrk_p50_us']):>8}  "
                  f"{fmt_us(row['loadgen_p99_us']):>8} {fmt_us(row['wrk_p99_us']):>8}  "
                  f"{fmt_num(row['loadgen_cpu_us_per_req']):>13} {fmt_num(row['wrk_cpu_us_per_req']):>5}")
    below = [r for r in summary if r["ratio"] < 1.0]
    if below:
        print("\nratio below 1.0 at: " + ", ".join(f"{r['server']} c={r['c']} ({r['ratio']:.2f})" for r in below))
    if args.json:
        tmp = args.json.with_suffix(args.json.suffix + ".tmp")
        tmp.write_text(json.dumps({"runs": runs, "summary": summary}, indent=2) + "\n")
        tmp.replace(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
