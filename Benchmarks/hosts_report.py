"""Reads Benchmarks/hosts.sh's runs and checks the performance model across a network.

  python3 hosts_report.py RUNS.jsonl

For each link and wire format it fits the ring allreduce's terms (ring_model.py) to the
allreduce-only runs on 2 hosts, the MLP's and the CNN's gradient, where each host has a core of
its own as on a cluster, and prints the fit against every measured point (at 4 and 8 hosts the
simulated hosts share the cores: 2 and 4 ranks a core). It fits compute per step as c0 + c1 *
local batch and the optimizer to the one-host runs, predicts every measured two-host step from
them, and prints prediction and measurement side by side, with what sharing the cores cost the
two-host compute. Then it predicts weak-scaling efficiency (32 samples per rank) at
8-256 ranks over 10, 25 and 100 GbE, with each link's nominal latency and its bandwidth scaled by
the fraction of the nominal rate TCP reached on the 1 Gb/s link (at 10 Gb/s the simulated hosts'
shared cores, not the link, limit it)."""
import collections
import json
import statistics
import sys

from ring_model import NETWORKS, fit_line, fit_ring, ring_allreduce as ring

runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
NOMINAL = {"1gbit": 1e9 / 8, "10gbit": 10e9 / 8}
SCALE_TO = {"10 GbE": NETWORKS["10gbe"], "25 GbE": NETWORKS["25gbe"], "100 GbE": NETWORKS["100gbe"]}
med = statistics.median


def phase(r, name):
    return r["phases_seconds"][name]["median"]


networks = {}
print("allreduce alone: ring terms fitted to the 2-host runs of each link and wire format, and the fit at each point (medians)")
for link in sorted({r["link"] for r in runs}):
    for fmt in ("none", "bf16"):
        groups = collections.defaultdict(list)
        for r in runs:
            if r["link"] == link and r["kind"] == "allreduce" and r["compression"] == fmt:
                groups[(r["model"], r["hosts"], r["bytes"])].append(r["allreduce_seconds"]["median"])
        if not groups:
            continue
        points = [(n, b, med(ts)) for (_, n, b), ts in groups.items() if n == 2]
        latency, bandwidth = fit_ring(points)
        networks[(link, fmt)] = (latency, bandwidth)
        print(f"  {link:7} {fmt:5} latency {latency * 1e6:7.1f} us, bandwidth {bandwidth / 1e6:7.1f} MB/s "
              f"({100 * bandwidth / NOMINAL.get(link, bandwidth):.0f}% of the nominal rate)")
        for (model, n, b), ts in sorted(groups.items()):
            p = ring(n, b, latency, bandwidth)
            print(f"      {model} {n} hosts, {b / 1e6:.2f} MB: measured {med(ts) * 1e3:7.2f} ms, model {p * 1e3:7.2f} ms ({100 * (p / med(ts) - 1):+.0f}%)")

print("\nsteps on 2 hosts, one rank each: model (compute and optimizer fitted on 1 host, the allreduce fit above) against measurement")
print(f"  {'link':7} {'model':5} {'scaling':7} {'wire':5} {'compute':>8} {'vs 1 host':>9} {'allreduce':>10} {'optimizer':>10} {'step':>8} {'model':>8} {'error':>6}  (ms)")
errors = []
for link in sorted({r["link"] for r in runs}):
    for model in ("mlp", "cnn"):
        for fmt in ("none", "bf16"):
            steps = [r for r in runs if r["link"] == link and r["kind"] == "step" and r["model"] == model and r["compression"] == fmt]
            alone = [r for r in steps if r["hosts"] == 1]
            if not alone or (link, fmt) not in networks:
                continue
            local = lambda r: r["global_batch"] / r["world_size"]
            pts = [(local(r), phase(r, "gather") + phase(r, "forward") + phase(r, "backward")) for r in alone]
            c0, c1 = fit_line([(x, med([y for v, y in pts if v == x])) for x in sorted({x for x, _ in pts})])
            optimizer = med([phase(r, "optimizer") for r in alone])
            nbytes = 4 * (max(r.get("bytes", 0) for r in runs if r.get("model") == model and r["kind"] == "allreduce" and r["compression"] == "none") // 4)
            wire = nbytes // 2 if fmt == "bf16" else nbytes
            for scaling in ("strong", "weak"):
                two = [r for r in steps if r["hosts"] == 2 and r["scaling"] == scaling]
                if not two:
                    continue
                b = local(two[0])
                measured = {k: med([phase(r, k) for r in two]) for k in ("gather", "forward", "backward", "allreduce", "optimizer")}
                step = med([r["step_seconds"]["median"] for r in two])
                predicted = c0 + c1 * b + optimizer + ring(2, wire, *networks[(link, fmt)])
                errors.append(predicted / step - 1)
                compute = measured["gather"] + measured["forward"] + measured["backward"]
                print(f"  {link:7} {model:5} {scaling:7} {fmt:5} {compute * 1e3:8.3f} {compute / (c0 + c1 * b):8.2f}x {measured['allreduce'] * 1e3:10.3f} {measured['optimizer'] * 1e3:10.3f} "
                      f"{step * 1e3:8.3f} {predicted * 1e3:8.3f} {100 * (predicted / step - 1):+5.0f}%")
if errors:
    print(f"  largest error {100 * max(abs(e) for e in errors):.0f}% over {len(errors)} points")

# Efficiency at scale, weak scaling (32 samples per rank), from the one-host fits.
# Real links at the fraction of their rate that TCP reached on the 1 Gb/s link: the one link
# the simulated hosts' shared cores can fill (at 10 Gb/s the CPU, not the link, limits them).
tcp = networks[("1gbit", "none")][1] / NOMINAL["1gbit"] if ("1gbit", "none") in networks else 1.0
print(f"\npredicted weak-scaling efficiency, 32 samples per rank, over real links at {100 * tcp:.0f}% of their nominal rate "
      "(as TCP reached at 1 Gb/s here)")
for model in ("mlp", "cnn"):
    alone = [r for r in runs if r["kind"] == "step" and r["model"] == model and r["hosts"] == 1 and r["compression"] == "none"
             and r["global_batch"] == 32]
    if not alone:
        continue
    compute = med([phase(r, "gather") + phase(r, "forward") + phase(r, "backward") for r in alone])
    optimizer = med([phase(r, "optimizer") for r in alone])
    nbytes = max(r["bytes"] for r in runs if r.get("model") == model and r["kind"] == "allreduce" and r["compression"] == "none")
    base = compute + optimizer
    header = "".join(f"{name + ' ' + fmt:>18}" for name in SCALE_TO for fmt in ("fp32", "bf16"))
    print(f"  {model}: one rank's step {base * 1e3:.2f} ms, gradient {nbytes / 1e6:.2f} MB\n  {'ranks':>6}{header}")
    for n in (8, 16, 32, 64, 128, 256):
        cells = ""
        for latency, bandwidth in SCALE_TO.values():
            for wire in (nbytes, nbytes // 2):
                cells += f"{base / (base + ring(n, wire, latency, bandwidth * tcp)):18.2f}"
        print(f"  {n:6}{cells}")
