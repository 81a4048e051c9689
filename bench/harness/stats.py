"""Statistics for repeated, noisy measurements.

On a 2-vCPU guest identical runs differ by 20-25 %, so the harness reports the median of
interleaved repetitions with their full range (min-max), and flags a figure whose range is
wider than SPREAD_LIMIT of its median. Latency histograms are merged by summing counts per
bucket value (HdrHistogram layout: equal values mean equal buckets).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

SPREAD_LIMIT_PCT = 10.0


def clean(values: Iterable[float | None]) -> list[float]:
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def median(values: Iterable[float | None]) -> float | None:
    v = sorted(clean(values))
    if not v:
        return None
    n = len(v)
    mid = n // 2
    return v[mid] if n % 2 else (v[mid - 1] + v[mid]) / 2


def min_max(values: Iterable[float | None]) -> tuple[float | None, float | None]:
    v = clean(values)
    return (min(v), max(v)) if v else (None, None)


def spread_pct(values: Iterable[float | None]) -> float | None:
    """(max - min) / |median| in percent; None with fewer than two values or a zero median."""
    v = clean(values)
    if len(v) < 2:
        return None
    m = median(v)
    if not m:
        return None
    return (max(v) - min(v)) / abs(m) * 100.0


def spread_exceeds(values: Iterable[float | None], limit_pct: float = SPREAD_LIMIT_PCT) -> bool:
    s = spread_pct(values)
    return s is not None and s > limit_pct


def summarize(values: Iterable[float | None]) -> dict:
    v = clean(values)
    lo, hi = min_max(v)
    return {"n": len(v), "median": median(v), "min": lo, "max": hi, "spread_pct": spread_pct(v)}


def linear_fit(xs: Sequence[float], ys: Sequence[float]) -> tuple[float, float, float] | None:
    """Least-squares line y = slope * x + intercept; returns (slope, intercept, r2), or None
    when fewer than two distinct x values are given."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x is not None and y is not None]
    if len(pts) < 2 or len({x for x, _ in pts}) < 2:
        return None
    n = len(pts)
    mx = sum(x for x, _ in pts) / n
    my = sum(y for _, y in pts) / n
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    slope = sxy / sxx
    intercept = my - slope * mx
    ss_tot = sum((y - my) ** 2 for _, y in pts)
    ss_res = sum((y - (slope * x + intercept)) ** 2 for x, y in pts)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return slope, intercept, r2


MIN_FIT_POINTS = 3
MIN_R2 = 0.9


def supported_slope(xs: Sequence[float], ys: Sequence[float], min_points: int = MIN_FIT_POINTS,
                    min_r2: float = MIN_R2) -> tuple[float, float, float] | str:
    """A least-squares slope only where its points support it (docs/architecture.md §5): at least
    `min_points` distinct x values, r^2 >= min_r2, and not negative (memory does not shrink as
    connections are added: a negative slope is noise). Returns (slope, intercept, r2), or the
    reason it is not measurable."""
    pts = [(float(x), float(y)) for x, y in zip(xs, ys) if x is not None and y is not None]
    distinct = len({x for x, _ in pts})
    if distinct < min_points:
        return f"not measurable: {distinct} idle count(s), a slope needs {min_points}"
    fit = linear_fit([x for x, _ in pts], [y for _, y in pts])
    if fit is None:
        return "not measurable: no fit"
    slope, intercept, r2 = fit
    if r2 < min_r2:
        return f"not measurable: r2 {r2:.2f} < {min_r2} over {distinct} idle counts"
    if slope < 0:
        return f"not measurable: negative slope {slope:.3g} (noise) over {distinct} idle counts"
    return fit


def ranges_overlap(a: tuple[float | None, float | None], b: tuple[float | None, float | None]) -> bool:
    """True when two [min, max] ranges touch (a difference is not larger than the spreads)."""
    if None in a or None in b:
        return True
    return not (a[1] < b[0] or b[1] < a[0])


# --- histograms -------------------------------------------------------------------------

def merge_buckets(bucket_lists: Iterable[Iterable[Sequence[int]]]) -> list[list[int]]:
    """Sum counts per bucket value over several [[value_us, count], ...] lists."""
    acc: dict[int, int] = {}
    for buckets in bucket_lists:
        for value, count in buckets:
            acc[int(value)] = acc.get(int(value), 0) + int(count)
    return [[v, c] for v, c in sorted(acc.items()) if c > 0]


def percentile(buckets: Sequence[Sequence[int]], pct: float) -> int | None:
    """Smallest bucket value at which the cumulative count reaches pct % of the total
    (HdrHistogram's getValueAtPercentile)."""
    total = sum(c for _, c in buckets)
    if total == 0:
        return None
    target = max(1, math.ceil(pct / 100.0 * total))
    run = 0
    for value, count in buckets:
        run += count
        if run >= target:
            return int(value)
    return int(buckets[-1][0])


def percentile_curve(buckets: Sequence[Sequence[int]], max_nines: int = 5) -> list[tuple[float, int]]:
    """(percentile, value) points from 0 to 1 - 10^-max_nines, evenly spaced on the
    HdrHistogram 1/(1-p) axis, for a percentile-distribution plot."""
    total = sum(c for _, c in buckets)
    if total == 0:
        return []
    # Do not claim nines the sample count cannot resolve.
    nines = min(max_nines, max(1, int(math.log10(total))))
    out = []
    steps_per_decade = 10
    for i in range(nines * steps_per_decade + 1):
        p = 100.0 * (1.0 - 10.0 ** (-i / steps_per_decade))
        v = percentile(buckets, p)
        if v is not None:
            out.append((p, v))
    out.append((100.0, int(buckets[-1][0])))
    return out
