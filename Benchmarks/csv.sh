#!/usr/bin/env bash
# A user's big table: reading a CSV of ROWS x 20 numeric features and a label (written by NumPy's
# savetxt, %.7g), timed in alternating rounds of one run against Python's csv module (only
# splitting the lines into fields) and numpy.loadtxt, with each one's peak memory:
#   - dptrain data describe, cold (no cache: it parses and caches) and warm (it maps the cache);
#   - python3 csv.reader over the file; numpy.loadtxt(dtype=float32);
#   - dptrain train (1 epoch) under mpirun at 1 rank and at 2 ranks, cold: the 2 ranks parse once.
# Prints the fastest and median of each, and the ratios. Figures only.
#
#   Benchmarks/csv.sh [--rows 1000000] [--rounds 3] [--out bench-results/csv]
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

rows=1000000 rounds=3 out=bench-results/csv
while [ $# -gt 0 ]; do
    case $1 in
        --rows) rows=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --out) out=$2; shift ;;
        *) die "unknown option $1 (see the comment at the top of Benchmarks/csv.sh)" ;;
    esac
    shift
done
ensure_deps
ensure_binary
python3 -c "import numpy" 2>/dev/null || die "numpy is needed to write the table (pip install numpy)"
mkdir -p "$out"
out=$(cd "$out" && pwd)
table="$out/table.csv"
if [ ! -f "$table" ] || [ "$(($(wc -l < "$table") - 1))" != "$rows" ]; then
    say "writing $rows rows to $table"
    python3 - "$table" "$rows" <<'PY'
import sys, numpy as np
path, n, f = sys.argv[1], int(sys.argv[2]), 20
rng = np.random.default_rng(0)
x = rng.normal(size=(n, f)) * rng.uniform(0.1, 100, size=f)
y = (x[:, 0] + x[:, 1] > 0).astype(int)
np.savetxt(path, np.column_stack([x, y]), delimiter=",", fmt=["%.7g"] * f + ["%d"],
           header=",".join([f"f{i}" for i in range(f)] + ["label"]), comments="")
PY
fi
printf '%s\n' "model:" "  input_shape: [20]" "  layers:" "    - {type: dense, units: 16, activation: relu}" \
    "    - {type: dense, units: 1, activation: sigmoid}" "loss: binary_crossentropy" \
    "training: {epochs: 1, batch_size: 256}" "data: {dir: $out, train: table.csv, label_column: label}" > "$out/table.yaml"
say "$table: $(du -h "$table" | cut -f1), $rows rows"
root=(); [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
raw="$out/csv.jsonl"; : > "$raw"
timed() {  # timed NAME COMMAND...: appends {"name","seconds","peak_mb"} (peak: the largest process's)
    local name=$1 report seconds kb; shift
    report=$(mktemp)
    /usr/bin/time -f "%e %M" -o "$report" "$@" > /dev/null 2>&1 || say "$name failed"
    read -r seconds kb < <(tail -1 "$report")
    echo "{\"name\":\"$name\",\"seconds\":$seconds,\"peak_mb\":$((kb / 1024))}" >> "$raw"
    rm -f "$report"
}
for round in $(seq 1 "$rounds"); do
    rm -rf "$out/.dptrain-cache"
    timed "dptrain describe, cold" "$DPTRAIN_BIN" data describe --config "$out/table.yaml"
    timed "dptrain describe, cached" "$DPTRAIN_BIN" data describe --config "$out/table.yaml"
    timed "python csv module, split only" python3 -c "
import csv, sys
with open(sys.argv[1], newline='') as f:
    for row in csv.reader(f): pass" "$table"
    timed "numpy.loadtxt float32" python3 -c "
import sys, numpy as np
np.loadtxt(sys.argv[1], delimiter=',', skiprows=1, dtype=np.float32)" "$table"
    for ranks in 1 2; do
        rm -rf "$out/.dptrain-cache"
        timed "train 1 epoch, $ranks rank(s), cold" mpirun "${root[@]}" -np "$ranks" --bind-to none \
            -x OPENBLAS_NUM_THREADS=1 "$DPTRAIN_BIN" train --config "$out/table.yaml" --threads 1 --quiet
    done
    say "round $round of $rounds done"
done
python3 - "$raw" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
names = list(dict.fromkeys(r["name"] for r in rows))
best = {n: min(r["seconds"] for r in rows if r["name"] == n) for n in names}
print("fastest / median seconds of the rounds, and the peak RSS of the largest process:")
for n in names:
    s = [r["seconds"] for r in rows if r["name"] == n]
    print(f"  {n:<36} {best[n]:7.2f} s  median {statistics.median(s):7.2f} s  peak {max(r['peak_mb'] for r in rows if r['name'] == n):5d} MB")
split = best.get("python csv module, split only")
if split:
    for n in ("dptrain describe, cold", "dptrain describe, cached", "numpy.loadtxt float32"):
        print(f"  python csv split / {n}: {split / best[n]:.1f}x")
one, two = best.get("train 1 epoch, 1 rank(s), cold"), best.get("train 1 epoch, 2 rank(s), cold")
if one and two:
    print(f"  training, 2 ranks / 1 rank (cold cache): {two / one:.2f}x")
PY
