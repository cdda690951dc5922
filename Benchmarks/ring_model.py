"""The performance model's terms, shared by Benchmarks/perf_model.py (one node) and
Benchmarks/hosts_report.py (across hosts):

  step(N) = compute(local batch) + optimizer + allreduce(N)
  compute(b) = c0 + c1 * b                                          fitted to measured phases
  allreduce(N) = 2 (N - 1) * latency + 2 (N - 1) / N * bytes / bandwidth   a ring; 0 for N = 1"""

# Nominal per-hop latency and bandwidth (bytes/s) of the networks predictions are made for.
NETWORKS = {
    "10gbe": (30e-6, 10e9 / 8),
    "25gbe": (10e-6, 25e9 / 8),
    "100gbe": (5e-6, 100e9 / 8),
    "ib-hdr": (2e-6, 200e9 / 8),
}


def ring_allreduce(n, nbytes, latency, bandwidth):
    """Seconds for a ring allreduce of `nbytes` over `n` ranks."""
    return 0.0 if n <= 1 else 2 * (n - 1) * latency + 2 * (n - 1) / n * nbytes / bandwidth


def fit_line(points):
    """Least squares (c0, c1) for y = c0 + c1 * x over (x, y) points, with both terms >= 0 (a
    fixed cost and a cost per sample cannot be negative): where the free fit gives a negative
    term, the best fit with that term at 0. With one distinct x the split between the terms is
    not determined; the whole cost is then taken as per sample (c0 = 0)."""
    xs, ys = [x for x, _ in points], [y for _, y in points]
    xbar, ybar = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - xbar) ** 2 for x in xs)
    if sxx == 0:
        return 0.0, ybar / xbar
    c1 = sum((x - xbar) * (y - ybar) for x, y in points) / sxx
    c0 = ybar - c1 * xbar
    if c1 < 0:
        return ybar, 0.0
    if c0 < 0:
        return 0.0, sum(x * y for x, y in points) / sum(x * x for x in xs)
    return c0, c1


def residuals(points, c0, c1):
    """(x, measured, fitted, relative error) for each point of a fit_line fit."""
    return [(x, y, c0 + c1 * x, (c0 + c1 * x) / y - 1) for x, y in points]


def fit_ring(points):
    """(latency, bandwidth) of the ring term over (ranks, bytes, seconds) points, by least squares
    of the relative error, so a 0.4 MB and a 2.8 MB allreduce count alike; the bandwidth term
    alone when the fit would make the latency negative."""
    rows = [(2 * (n - 1) / t, 2 * (n - 1) / n * b / t) for n, b, t in points]  # each row's terms over its time
    saa = sum(a * a for a, _ in rows)
    sbb = sum(b * b for _, b in rows)
    sab = sum(a * b for a, b in rows)
    sa, sb = sum(a for a, _ in rows), sum(b for _, b in rows)
    det = saa * sbb - sab * sab
    if det > 0:
        latency, inverse = (sa * sbb - sb * sab) / det, (saa * sb - sab * sa) / det
        if latency >= 0 and inverse > 0:
            return latency, 1 / inverse
    return 0.0, sbb / sb
