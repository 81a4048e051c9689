#!/usr/bin/python3
"""A test double for build/bin/loadgen: same flags (docs/architecture.md §4), same --json keys, real but
slow HTTP requests (asyncio). It lets the harness's fault-handling tests run without the real
load generator; the end-to-end test always uses the real one.

Histogram buckets are exact microsecond values ([[value_us, count], ...]), which is a valid
(if unbounded-precision) instance of the mergeable layout the harness expects.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import time


def duration(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)?", text)
    if not m:
        raise SystemExit(f"fake_loadgen: bad duration {text!r}")
    return float(m.group(1)) * {"us": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


class Stats:
    def __init__(self):
        self.lat: dict[int, int] = {}
        self.svc: dict[int, int] = {}
        self.requests = 0
        self.bytes = 0
        self.errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0, "parse": 0}
        self.timeline: dict[int, list[int]] = {}


async def request(reader, writer, head: bytes, timeout: float) -> int:
    writer.write(head)
    await writer.drain()
    status_line = await asyncio.wait_for(reader.readline(), timeout)
    if not status_line:
        raise ConnectionError("closed")
    length = 0
    nbytes = len(status_line)
    while True:
        line = await asyncio.wait_for(reader.readline(), timeout)
        nbytes += len(line)
        if line in (b"\r\n", b""):
            break
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if length:
        await asyncio.wait_for(reader.readexactly(length), timeout)
    status = int(status_line.split()[1])
    if status != 200:
        raise ValueError(status)
    return nbytes + length


def pct(hist: dict[int, int], p: float) -> int:
    total = sum(hist.values())
    if not total:
        return 0
    target = max(1, math.ceil(p / 100 * total))
    run = 0
    for v in sorted(hist):
        run += hist[v]
        if run >= target:
            return v
    return max(hist)


def summary(hist: dict[int, int]) -> dict:
    total = sum(hist.values())
    return {"min": min(hist) if hist else 0,
            "mean": int(sum(v * c for v, c in hist.items()) / total) if total else 0,
            "p50": pct(hist, 50), "p90": pct(hist, 90), "p99": pct(hist, 99),
            "p999": pct(hist, 99.9), "p9999": pct(hist, 99.99), "max": max(hist) if hist else 0}


async def main_async(a) -> dict:
    m = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)?", a.url)
    host, port, path = m.group(1), int(m.group(2)), m.group(3) or "/"
    head = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n" + ("Connection: close\r\n" if a.close else "") + "\r\n"
    head = head.encode()
    st = Stats()
    t0 = time.monotonic()
    t_measure = t0 + a.warmup
    t_end = t_measure + a.duration
    idle = []
    for _ in range(a.idle):
        try:
            r, w = await asyncio.open_connection(host, port)
            await request(r, w, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode(), a.timeout)
            idle.append(w)
        except Exception:
            st.errors["connect"] += 1

    async def conn(i: int):
        rw = None
        interval = a.connections / a.rate if a.rate else 0
        intended = time.monotonic() + (interval * i / a.connections if interval else 0)
        while True:
            now = time.monotonic()
            if now >= t_end:
                break
            if interval:
                if intended > now:
                    await asyncio.sleep(intended - now)
                start = intended
                intended += interval
                if start >= t_end:
                    break
            else:
                start = time.monotonic()
            try:
                if rw is None:
                    rw = await asyncio.wait_for(asyncio.open_connection(host, port), a.timeout)
                sent = time.monotonic()
                n = await request(rw[0], rw[1], head, a.timeout)
            except asyncio.TimeoutError:
                st.errors["timeout"] += 1
                rw = None
                continue
            except ValueError:
                st.errors["status"] += 1
                continue
            except (OSError, ConnectionError, asyncio.IncompleteReadError):
                st.errors["read"] += 1
                rw = None
                await asyncio.sleep(0.001)
                continue
            done = time.monotonic()
            if a.close:
                rw[1].close()
                rw = None
            if done >= t_measure and done < t_end:
                us = max(1, int((done - start) * 1e6))
                st.lat[us] = st.lat.get(us, 0) + 1
                svc = max(1, int((done - sent) * 1e6))
                st.svc[svc] = st.svc.get(svc, 0) + 1
                st.requests += 1
                st.bytes += n
                sec = int(done - t_measure) + 1
                st.timeline.setdefault(sec, [0, 0])[0] += 1
        if rw is not None:
            rw[1].close()

    await asyncio.gather(*(conn(i) for i in range(a.connections)))
    for w in idle:
        w.close()
    cpu = os.times()
    out = {
        "url": a.url, "mode": "open" if a.rate else "closed", "connections": a.connections,
        "threads": a.threads, "duration_s": a.duration, "rate": a.rate or 0,
        "requests": st.requests, "bytes": st.bytes, "rps": st.requests / a.duration,
        "errors": st.errors, "incomplete": 0, "latency_us": summary(st.lat),
        "generator_limited": False,
        "histogram": {"sig_digits": 3, "unit": "us", "buckets": [[v, c] for v, c in sorted(st.lat.items())]},
        "timeline": [{"t": t, "requests": v[0], "errors": v[1]} for t, v in sorted(st.timeline.items())],
        "cpu_s": {"user": cpu.user, "sys": cpu.system},
    }
    if a.rate:
        out["service_us"] = summary(st.svc)
        out["lag_us"] = summary({0: 1})
    return out


def main() -> int:
    if "--version" in sys.argv:
        print("fake_loadgen 0 (test double)")
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("-c", dest="connections", type=int, default=10)
    ap.add_argument("-t", dest="threads", type=int, default=1)
    ap.add_argument("-d", dest="duration", type=duration, default=10.0)
    ap.add_argument("--warmup", type=duration, default=0.0)
    ap.add_argument("--timeout", type=duration, default=2.0)
    ap.add_argument("-R", dest="rate", type=float, default=0.0)
    ap.add_argument("--close", action="store_true")
    ap.add_argument("--idle", type=int, default=0)
    ap.add_argument("--json")
    ap.add_argument("url")
    a = ap.parse_args()
    out = asyncio.run(main_async(a))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f)
    print(f"{out['requests']} requests in {a.duration:g}s, {out['rps']:.1f} req/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
