"""Reads Benchmarks/machines.sh's runs and checks the performance model, extended with overlap and
compression, against every measured step of 2 hosts x 1 core.

  python3 machines_report.py RUNS.jsonl

The model of a step on N machines (ring_model.py's terms), one rank a machine:

  serial:   phi x (compute + optimizer) + exchange(wire bytes)
  overlap:  the serial step - hidden, hidden = min(the exchange of the buckets ready before
            backward ends, eta x backward)
  PowerSGD: phi x (compute + optimizer) + exchange(P) + exchange(Q and the whole tensors)
            + kappa x the compressed matrices' elements (the products, orthogonalisation and
            error feedback); powersgd-bf16 sends P at bf16's fitted terms

compute (gather + forward + backward) and the optimizer come from one host's runs at the same
local batch; phi is how much slower a host computes in the 2-host runs, from their own phases;
each link's latency and bandwidth are fitted to the exchange-alone runs at every size (float32 and
bf16 apart: bf16's includes its conversions). eta (the share of backward during which an exchange
progresses; fitted to the measured serial step minus the overlapped one) and kappa are one
constant each, fitted by least squares over every link's overlapped and PowerSGD steps. At scale,
phi is 1 (the slowdown is the simulated hosts sharing one VM's memory system). The unshaped link's
exchange is what the exchange costs the cores when no rate limits it."""
import collections
import json
import statistics
import sys

from ring_model import NETWORKS, fit_ring, ring_allreduce as ring

# The models' parameters: (rows, columns) of each tensor in gradient order.
TENSORS = {
    "mlp": [(784, 128), (1, 128), (128, 10), (1, 10)],
    "cnn": [(9, 32), (1, 32), (5408, 128), (1, 128), (128, 10), (1, 10)],
}
RANK, MIN_SIZE, BUCKET_FLOATS, STATISTICS = 4, 4096, 262144, 2  # the defaults of training.powersgd, bucket_mb
NOMINAL = {"1gbit": 1e9 / 8, "10gbit": 10e9 / 8}
med = statistics.median


def powersgd_floats(model):
    """(P, Q and the whole tensors, the compressed matrices' elements) of one step's exchanges."""
    p, q, elements = 0, STATISTICS, 0
    for rows, cols in TENSORS[model]:
        if rows * cols >= MIN_SIZE and RANK * (rows + cols) < rows * cols:
            p, q, elements = p + RANK * rows, q + RANK * cols, elements + rows * cols
        else:
            q += rows * cols
    return p, q, elements


def early_share(model):
    """The share of the gradient in buckets that backward completes before its last layer (the
    first layer's gradient, at the start of the flat gradient, comes last)."""
    total = sum(r * c for r, c in TENSORS[model])
    first = sum(r * c for r, c in TENSORS[model][:2])
    early, end = 0, total
    while end > 0:
        start = max(end - BUCKET_FLOATS, 0)
        if start >= first:
            early += end - start
        end = start
    return early / total


runs = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]


def phase(r, name):
    return r["phases_seconds"][name]["max"]


def pick(**match):
    return [r for r in runs if all(r.get(k) == v for k, v in match.items())]


links = sorted({r["link"] for r in runs if r["link"] != "unshaped"}, key=lambda l: NOMINAL.get(l, 0))
models = [m for m in ("mlp", "cnn") if pick(model=m, kind="step")]

print("the exchange alone on 2 hosts (median over rounds, ms), and the ring terms fitted to it per link and wire format")
network = {}
for link in ["unshaped"] + links:
    for fmt in ("none", "bf16"):
        groups = collections.defaultdict(list)
        for r in pick(link=link, kind="exchange", format=fmt):
            groups[(r["bytes"], r["model"])].append(r["allreduce_seconds"]["median"])
        if not groups:
            continue
        points = [(2, b, med(ts)) for (b, _), ts in sorted(groups.items())]
        latency, bandwidth = fit_ring(points)
        network[(link, fmt)] = (latency, bandwidth)
        rate = f" ({100 * bandwidth / NOMINAL[link]:.0f}% of the rate)" if link in NOMINAL else ""
        print(f"  {link:8} {fmt:5} latency {latency * 1e6:6.1f} us, bandwidth {bandwidth / 1e6:7.1f} MB/s{rate}:"
              + "".join(f"  {name} {t * 1e3:.3f} (fit {100 * (ring(2, b, latency, bandwidth) / t - 1):+.0f}%)"
                        for ((b, name), _), (_, _, t) in zip(sorted(groups.items()), points)))

# Per model: one host's compute, backward and optimizer.
alone = {}
for model in models:
    ones = pick(model=model, kind="step", hosts=1)
    alone[model] = {
        "compute": med([phase(r, "gather") + phase(r, "forward") + phase(r, "backward") for r in ones]),
        "backward": med([phase(r, "backward") for r in ones]),
        "optimizer": med([phase(r, "optimizer") for r in ones]),
        "step": med([r["step_seconds"]["max"] for r in ones]),
    }


def exchange(model, link, fmt, n=2, net=None):
    """Seconds of one step's exchange between n machines, before any of it is hidden."""
    floats = sum(r * c for r, c in TENSORS[model]) + STATISTICS
    if fmt.startswith("powersgd"):
        p, q, _ = powersgd_floats(model)
        latency, bandwidth = net or network[(link, "none")]
        p_latency, p_bandwidth = net or network[(link, "bf16" if fmt == "powersgd-bf16" else "none")]
        p_bytes = (2 if fmt == "powersgd-bf16" else 4) * p
        return ring(n, p_bytes, p_latency, p_bandwidth) + ring(n, 4 * q, latency, bandwidth)
    latency, bandwidth = net or network[(link, fmt)]
    return ring(n, floats * (2 if fmt == "bf16" else 4), latency, bandwidth)


# phi: how much longer a host computes (gather, forward, backward, optimizer) in a 2-host run
# than alone, measured in each 2-host run's own phases (the slowest rank's), per model.
phi = {}
for model in models:
    a = alone[model]
    phi[model] = med([sum(phase(r, k) for k in ("gather", "forward", "backward", "optimizer")) / (a["compute"] + a["optimizer"])
                      for r in pick(model=model, kind="step", hosts=2)])


def serial(model, link, fmt, n=2, net=None, slower=None):
    a = alone[model]
    return (slower or phi[model]) * (a["compute"] + a["optimizer"]) + exchange(model, link, fmt, n, net)


# Each measured 2-host step: (model, link, format, overlap) -> median step, hidden share, the thread's time.
steps = collections.defaultdict(list)
for r in pick(kind="step", hosts=2):
    steps[(r["model"], r["link"], r["format"], r["overlap"])].append(r)
measured = {k: med([r["step_seconds"]["max"] for r in v]) for k, v in steps.items()}

# eta: hidden = eta x backward, from what overlap saved against the serial step measured beside it,
# over the steps whose model has buckets ready before backward ends.
pairs = [(alone[m]["backward"], measured[(m, l, f, False)] - t) for (m, l, f, o), t in measured.items()
         if o and early_share(m) > 0 and (m, l, f, False) in measured]
eta = max(0.0, min(1.0, sum(b * d for b, d in pairs) / sum(b * b for b, _ in pairs))) if pairs else 0.0
# kappa: PowerSGD's seconds per compressed element, over its steps.
pairs = [(powersgd_floats(m)[2], t - serial(m, l, f)) for (m, l, f, o), t in measured.items() if f.startswith("powersgd")]
kappa = max(0.0, sum(e * d for e, d in pairs) / sum(e * e for e, _ in pairs)) if pairs else 0.0


def predict(model, link, fmt, overlap, n=2, net=None, slower=None):
    step = serial(model, link, fmt, n, net, slower)
    if fmt.startswith("powersgd"):
        return step + kappa * powersgd_floats(model)[2]
    if overlap:
        step -= min(early_share(model) * exchange(model, link, fmt, n, net), eta * alone[model]["backward"])
    return step


print(f"\nfitted: eta {eta:.2f} (the share of backward during which an exchange progresses), "
      f"kappa {kappa * 1e9:.2f} ns per compressed element")
for model in models:
    a = alone[model]
    p, q, e = powersgd_floats(model)
    print(f"  {model}: one host at the same local batch: compute {a['compute'] * 1e3:.3f} ms (backward {a['backward'] * 1e3:.3f}), "
          f"optimizer {a['optimizer'] * 1e3:.3f}, step {a['step'] * 1e3:.3f}; on 2 hosts compute and optimizer take "
          f"{phi[model]:.2f}x that; buckets ready before backward ends: "
          f"{100 * early_share(model):.0f}% of the gradient; PowerSGD sends {p + q} floats")

print("\nsteps on 2 hosts x 1 core (median over rounds, slowest rank): measured against the model; efficiency = one host's step / this")
print(f"  {'model':5} {'link':7} {'wire':13} {'overlap':7} {'measured':>9} {'model':>8} {'error':>6} {'efficiency':>10} {'hidden':>7}  (ms)")
errors = []
for model in models:
    for link in links:
        for fmt, overlap in (("none", False), ("none", True), ("bf16", False), ("bf16", True), ("powersgd", False),
                             ("powersgd-bf16", False)):
            key = (model, link, fmt, overlap)
            if key not in measured:
                continue
            t, p = measured[key], predict(model, link, fmt, overlap)
            errors.append((abs(p / t - 1), key))
            shares = [r["hidden_share"] for r in steps[key] if isinstance(r.get("hidden_share"), (int, float))]
            hidden = f"{100 * med(shares):6.0f}%" if overlap and shares else "      -"
            print(f"  {model:5} {link:7} {fmt:13} {'on' if overlap else 'off':7} {t * 1e3:9.3f} {p * 1e3:8.3f} {100 * (p / t - 1):+5.0f}% "
                  f"{alone[model]['step'] / t:10.2f} {hidden}")
if errors:
    worst = max(errors)
    print(f"  largest error {100 * worst[0]:.0f}% ({' '.join(map(str, worst[1]))}) over {len(errors)} steps")

# The exchange's cost to the cores: over the unshaped link it is bound by the CPUs, not a rate.
for model in models:
    ex = pick(link="unshaped", model=model, kind="exchange", format="none")
    if ex:
        cpu = med([r["allreduce_seconds"]["median"] for r in ex])
        a = alone[model]
        print(f"\n{model}: the float32 exchange over an unshaped link takes {cpu * 1e3:.3f} ms (what it costs the cores); "
              f"a step that hid the whole exchange would still pay it: efficiency at most "
              f"{a['step'] / (a['step'] + cpu):.2f} on 2 hosts of 1 core")

# At scale: weak scaling (the same local batch on every machine), one rank a machine, real links
# at the share of their rate TCP reached on the 1 Gb/s link.
tcp = network[("1gbit", "none")][1] / NOMINAL["1gbit"] if ("1gbit", "none") in network else 1.0
print(f"\npredicted efficiency at scale (one machine's step / the step on N machines, the same local batch), links at "
      f"{100 * tcp:.0f}% of their nominal rate, overlap on; machines that compute as fast in a job as alone (phi 1: the "
      "slowdown above is this machine's, two simulated hosts sharing one VM)")
scale = {"10 GbE": NETWORKS["10gbe"], "25 GbE": NETWORKS["25gbe"], "100 GbE": NETWORKS["100gbe"]}
for model in models:
    print(f"  {model}: {'machines':>8}" + "".join(f"{name + ' ' + fmt:>20}" for name in scale for fmt in ("fp32", "bf16", "powersgd")))
    for n in (8, 32, 256):
        cells = ""
        for latency, bandwidth in scale.values():
            net = (latency, bandwidth * tcp)
            for fmt in ("none", "bf16", "powersgd"):
                cells += f"{alone[model]['step'] / predict(model, None, fmt, fmt != 'powersgd', n, net, 1.0):20.2f}"
        print(f"  {'':5} {n:8}{cells}")
