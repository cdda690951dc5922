"""Performance model for synchronous data parallelism with a ring allreduce (its terms are in
ring_model.py), fitted to Benchmarks/scaling.sh runs, and its prediction for 1..256 ranks over a
network.

Usage: python3 perf_model.py RUNS.jsonl [--model mlp] [--batch 32] [--network 10gbe|25gbe|100gbe|ib-hdr|shm]
       [--latency-us L --bandwidth-gbps G]. "shm" uses the latency and bandwidth fitted to this
node's own allreduce times, which is how the model is validated against the measured runs."""
import argparse
import json
import statistics

from ring_model import NETWORKS, fit_line, residuals, ring_allreduce
PARAMS = {"mlp": 101770, "cnn": 693962}

p = argparse.ArgumentParser()
p.add_argument("runs")
p.add_argument("--model", default="mlp")
p.add_argument("--batch", type=int, default=32)
p.add_argument("--network", default="10gbe")
p.add_argument("--latency-us", type=float)
p.add_argument("--bandwidth-gbps", type=float)
a = p.parse_args()

runs = [json.loads(l) for l in open(a.runs) if l.strip()]
runs = [r for r in runs if r["model"] == a.model and r["threads"] == 1 and not r["oversubscribed"]]
if not runs:
    raise SystemExit(f"perf_model: no single-thread runs of {a.model} in {a.runs}")
med = lambda xs: statistics.median(xs)
phase = lambda r, k: r["bench"]["phases_seconds"][k]["median"]

# compute(b): least squares over (local batch, gather+forward+backward) of every run, each term
# kept >= 0; one point per local batch size (the median of its runs), so no size outweighs another.
by_batch = {}
for r in runs:
    by_batch.setdefault(r["global_batch"] / r["ranks"], []).append(phase(r, "gather") + phase(r, "forward") + phase(r, "backward"))
compute_points = sorted((b, med(ts)) for b, ts in by_batch.items())
c0, c1 = fit_line(compute_points)
opt = med([phase(r, "optimizer") for r in runs])
bytes_ = 4 * (PARAMS[a.model] + 2)

# This node's allreduce: fit latency and bandwidth to the measured allreduce phase at N >= 2.
ar = [(r["ranks"], phase(r, "allreduce")) for r in runs if r["ranks"] >= 2]
if a.network == "shm" or a.latency_us is None:
    if ar:
        # t = 2(N-1) L + 2(N-1)/N * bytes / bw; with one message size, attribute half to each term at N=2.
        t2 = med([t for n, t in ar if n == 2] or [t for _, t in ar])
        shm = (t2 / 4, bytes_ / (t2 / 2))
    else:
        shm = (1e-6, 10e9)
if a.latency_us is not None and a.bandwidth_gbps is not None:
    lat, bw, label = a.latency_us * 1e-6, a.bandwidth_gbps * 1e9 / 8, f"{a.latency_us} us, {a.bandwidth_gbps} Gb/s"
elif a.network == "shm":
    lat, bw, label = shm[0], shm[1], "this node's shared memory (fitted)"
else:
    lat, bw = NETWORKS[a.network]
    label = a.network

def allreduce(n, lat, bw):
    return ring_allreduce(n, bytes_, lat, bw)

def step(n, lat, bw, batch):
    return c0 + c1 * batch / n + opt + allreduce(n, lat, bw)

B = a.batch
print(f"\nperformance model, {a.model}, global batch {B}, network {label}")
print(f"  fitted here: compute(b) = {c0 * 1e6:.1f} us + {c1 * 1e6:.2f} us/sample; optimizer {opt * 1e6:.1f} us; gradient {bytes_} B")
print(f"  compute fitted over {len(compute_points)} local batch size(s)"
      + ("" if len(compute_points) >= 3 else " (fewer than 3: the split between the fixed and the per-sample cost is loosely determined)")
      + "; residuals:")
for b, measured, fitted, error in residuals(compute_points, c0, c1):
    print(f"    b={b:g}: measured {measured * 1e6:9.1f} us, fitted {fitted * 1e6:9.1f} us ({100 * error:+.1f}%)")
if ar:
    print("  validation on this node (shared memory, fitted latency/bandwidth):")
    for n in sorted({r["ranks"] for r in runs if r["global_batch"] == B}):
        meas = med([r["bench"]["samples_per_second"] for r in runs if r["ranks"] == n and r["global_batch"] == B])
        pred = B / step(n, *shm, B)
        print(f"    N={n}: predicted {pred:9.0f} samples/s, measured {meas:9.0f} ({100 * (pred / meas - 1):+.1f}%)")
base = B / step(1, lat, bw, B)
print(f"  prediction over {label} (strong scaling, global batch {B}; weak scaling, {B} per rank):")
print("    ranks   strong samples/s  efficiency     weak samples/s  efficiency")
for n in [1, 2, 4, 8, 16, 32, 64, 128, 256]:
    if n > B:
        strong, se = float("nan"), float("nan")
    else:
        strong = B / step(n, lat, bw, B)
        se = strong / (n * base)
    weak = n * B / step(n, lat, bw, n * B)
    we = weak / (n * base)
    print(f"    {n:5d}   {strong:16.0f}  {se:10.2f}   {weak:16.0f}  {we:10.2f}")
