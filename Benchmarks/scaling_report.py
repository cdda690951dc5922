"""Aggregates Benchmarks/scaling.sh runs (JSON lines) into medians: a printed table,
scaling.csv, scaling.json and scaling.svg (samples/s and scaling efficiency against ranks).
vs_1xC: the epoch's ratio to 1 rank x all cores, the median of the rounds' own ratios.
Usage: python3 scaling_report.py RUNS.jsonl OUT_DIR"""
import csv
import json
import math
import statistics
import sys
from collections import defaultdict

runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
out = sys.argv[2]
groups = defaultdict(list)
for r in runs:
    groups[(r["model"], r["kind"], r["ranks"], r["threads"], r["global_batch"], r["oversubscribed"])].append(r)

rows = []
for (model, kind, ranks, threads, batch, over), rs in groups.items():
    med = lambda xs: statistics.median(xs) if xs else None
    sps = med([r["bench"]["samples_per_second"] for r in rs])
    floor = med([r["floor_epoch_s"] for r in rs if r["floor_epoch_s"] is not None])
    peer = med([60000 / statistics.median(r["peer"]["epoch_s"]) if "epoch_s" in r["peer"] else r["peer"]["samples_per_s"]
                for r in rs if isinstance(r.get("peer"), dict)])
    epoch = 60000 / sps
    rows.append(dict(model=model, kind=kind, ranks=ranks, threads=threads, global_batch=batch, oversubscribed=over,
                     samples_per_s=round(sps), epoch_s=round(epoch, 4),
                     allreduce_ms=round(med([r["bench"]["phases_seconds"]["allreduce"]["median"] for r in rs]) * 1e3, 4),
                     optimizer_ms=round(med([r["bench"]["phases_seconds"]["optimizer"]["median"] for r in rs]) * 1e3, 4),
                     peak_rss_mb=round(max(r["bench"]["peak_rss_mb"]["max"] for r in rs), 1),
                     floor_epoch_s=floor, vs_floor=round(epoch / floor, 3) if floor else None,
                     numpy_peer_samples_per_s=round(peer) if peer else None,
                     vs_numpy_peer=round(sps / peer, 2) if peer else None, repeats=len(rs)))

# Efficiency against 1 rank x 1 thread at the same model and global batch (weak: batch 32).
base = {(r["model"], r["global_batch"]): r["samples_per_s"] for r in rows if r["ranks"] == 1 and r["threads"] == 1}
for r in rows:
    b = base.get((r["model"], r["global_batch"] if r["kind"] != "weak" else 32))
    workers = r["ranks"] * r["threads"]
    r["efficiency"] = round(r["samples_per_s"] / (workers * b), 3) if b else None

# Epoch against 1 rank x all cores at the same model and global batch: the median over the rounds
# of each round's own ratio (the layouts of a round run back to back).
most_threads = max(r["threads"] for r in runs)
def epoch_by_round(model, kind, ranks, threads, batch):
    return {r.get("round", i): 60000 / r["bench"]["samples_per_second"] for i, r in enumerate(runs)
            if (r["model"], r["kind"], r["ranks"], r["threads"], r["global_batch"]) == (model, kind, ranks, threads, batch)}
for r in rows:
    whole = epoch_by_round(r["model"], "layout", 1, most_threads, r["global_batch"])
    mine = epoch_by_round(r["model"], r["kind"], r["ranks"], r["threads"], r["global_batch"])
    ratios = [mine[k] / whole[k] for k in mine if k in whole]
    r["vs_1xC"] = round(statistics.median(ratios), 3) if ratios and r["kind"] != "weak" else None
rows.sort(key=lambda r: (r["model"], r["kind"] != "layout", r["global_batch"], r["ranks"], r["threads"]))

cols = ["model", "kind", "ranks", "threads", "global_batch", "oversubscribed", "samples_per_s", "epoch_s", "floor_epoch_s",
        "vs_floor", "numpy_peer_samples_per_s", "vs_numpy_peer", "efficiency", "vs_1xC", "allreduce_ms", "optimizer_ms", "peak_rss_mb", "repeats"]
with open(f"{out}/scaling.csv", "w", newline="") as f:
    w = csv.DictWriter(f, fieldnames=cols)
    w.writeheader()
    w.writerows(rows)
json.dump(rows, open(f"{out}/scaling.json", "w"), indent=1)

widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in cols]
print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
for r in rows:
    print("  ".join(str(r[c]).rjust(w) for c, w in zip(cols, widths)))

# SVG: samples/s (left) and efficiency (right) against ranks, one line per model and batch.
W, H, M = 900, 360, 50
series = defaultdict(list)
for r in rows:
    if r["threads"] == 1 and r["kind"] in ("layout", "strong"):
        series[f'{r["model"]} B={r["global_batch"]}'].append((r["ranks"], r["samples_per_s"], r["efficiency"] or 0, r["oversubscribed"]))
maxr = max([p[0] for s in series.values() for p in s] + [1])
def nice_ceiling(v):
    """The smallest round number >= v whose quarters are round too (an axis top with 4 ticks)."""
    power = 10 ** math.floor(math.log10(v))
    return next(m * power for m in (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10) if m * power >= v)


def tick_label(v):
    return f"{v / 1e6:g}M" if v >= 1e6 else f"{v / 1000:g}k" if v >= 1000 else f"{v:g}"


maxs = nice_ceiling(max([p[1] for s in series.values() for p in s] + [1]))
colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" font-family="sans-serif" font-size="11">',
       f'<rect width="{W}" height="{H}" fill="white"/>']
for panel, (title, key, top) in enumerate([("samples/s (strong scaling, 1 thread per rank)", 1, maxs), ("scaling efficiency", 2, 1.2)]):
    x0 = M + panel * (W // 2)
    pw, ph = W // 2 - 2 * M, H - 2 * M
    svg.append(f'<text x="{x0}" y="{M - 20}" font-size="13">{title}</text>')
    svg.append(f'<line x1="{x0}" y1="{M + ph}" x2="{x0 + pw}" y2="{M + ph}" stroke="black"/><line x1="{x0}" y1="{M}" x2="{x0}" y2="{M + ph}" stroke="black"/>')
    for t in range(5):
        v = top * t / 4
        y = M + ph - ph * t / 4
        svg.append(f'<text x="{x0 - 5}" y="{y + 4}" text-anchor="end">{tick_label(v) if key == 1 else f"{v:.1f}"}</text>')
    for k in range(1, maxr + 1):
        if k & (k - 1) == 0:
            svg.append(f'<text x="{x0 + pw * (k - 1) / max(maxr - 1, 1)}" y="{M + ph + 15}" text-anchor="middle">{k}</text>')
    svg.append(f'<text x="{x0 + pw / 2}" y="{M + ph + 32}" text-anchor="middle">ranks (dashed: oversubscribed)</text>')
    for i, (name, pts) in enumerate(sorted(series.items())):
        pts.sort()
        coords = [(x0 + pw * (p[0] - 1) / max(maxr - 1, 1), M + ph - ph * min(p[key] / top, 1)) for p in pts]
        # A segment that reaches an oversubscribed run is dashed, as the axis label says.
        for (xa, ya), (xb, yb), pa, pb in zip(coords, coords[1:], pts, pts[1:]):
            dash = ' stroke-dasharray="6,4"' if pa[3] or pb[3] else ""
            svg.append(f'<line x1="{xa:.1f}" y1="{ya:.1f}" x2="{xb:.1f}" y2="{yb:.1f}" stroke="{colors[i % len(colors)]}" stroke-width="2"{dash}/>')
        for (x, y), p in zip(coords, pts):
            svg.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{"white" if p[3] else colors[i % len(colors)]}" stroke="{colors[i % len(colors)]}"/>')
        if panel == 0:
            svg.append(f'<text x="{x0 + pw - 5}" y="{M + 15 + 14 * i}" text-anchor="end" fill="{colors[i % len(colors)]}">{name}</text>')
svg.append("</svg>")
open(f"{out}/scaling.svg", "w").write("\n".join(svg))
print(f"\nwrote {out}/scaling.csv, {out}/scaling.json, {out}/scaling.svg")
