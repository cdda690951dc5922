#!/usr/bin/env bash
# Runs dptrain, the floor program and the single-process peers (Keras/TensorFlow, PyTorch, and the
# numpy trainer) back to back on the same model, batch and cores, and prints seconds per epoch
# with dptrain's speed-up over each: the machine is shared and noisy, so only ratios measured in
# the same run mean anything.
#
#   Benchmarks/peers.sh                        # MLP at batch 32 and 128, CNN at 32 and 128, 3 rounds
#   Benchmarks/peers.sh --rounds 5 --cases "mlp:32 cnn:32" --out bench-results/peers
#   DPTRAIN_BIN=other/dptrain Benchmarks/peers.sh ...   # another build of dptrain
#
# Every system uses all cores in one process: dptrain `train`'s default (a worker thread per
# core), the floor with as many BLAS threads, Keras and PyTorch with their default threads, the
# numpy trainer with OPENBLAS_NUM_THREADS=cores. Peers come from PEERS_DIR (default
# ~/.cache/dptrain-peers, installed by Benchmarks/peers/setup.sh); a missing one is skipped.
# Each system trains the same epochs (5 for the MLP, as the tutorial; 2 for the CNN) and is
# timed as it times itself: dptrain and Keras by their steady epochs (those after the first;
# evaluation excluded), PyTorch and numpy by the median of their epochs; the floor by its
# epochs. dptrain's `bench` estimate (its first 330 steps, from initialisation) is printed
# beside it: the CNN's Dense layer gets sparser inputs as it trains, so the two differ there.
# Figures only: never fails on them.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

cases="mlp:32 mlp:128 cnn:32 cnn:128"; rounds=3; out=bench-results/peers
while [ $# -gt 0 ]; do
    case $1 in
        --cases) cases=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --out) out=$2; shift ;;
        *) die "unknown option $1 (see the comment at the top of Benchmarks/peers.sh)" ;;
    esac
    shift
done

bench_setup "$out"
data=$DATA cores=$CORES floor_bin=$FLOOR_BIN
raw="$out/peers.jsonl"; : > "$raw"
say "$("$DPTRAIN_BIN" --version)"

# record SYSTEM MODEL BATCH EPOCH_SECONDS: one JSON line (nothing when the run gave no figure).
record() {
    [ -n "$4" ] && [ "$4" != null ] && printf '{"round":%d,"system":"%s","model":"%s","batch":%s,"epoch_s":%s}\n' "$round" "$1" "$2" "$3" "$4" >> "$raw"
    return 0
}
# steady_epoch METRICS_FILE: the median of a train run's epoch seconds after the first.
steady_epoch() {
    python3 -c "import json,statistics,sys
s=[json.loads(l) for l in open(sys.argv[1]) if '\"summary\"' in l][-1]['epoch_seconds']
print(statistics.median(s[1:] or s))" "$1" 2>/dev/null || true
}

for round in $(seq "$rounds"); do
    for c in $cases; do
        model=${c%%:*} batch=${c##*:}
        # The MLP's epochs last 0.1-4 s: a hiccup of the host can double one, so five give
        # four steady ones to take the median of.
        epochs=5; [ "$model" = cnn ] && epochs=2
        steps=1500; [ "$model" = cnn ] && steps=300
        metrics="$out/dptrain-train.jsonl"
        s=$("$DPTRAIN_BIN" train --config "Configs/$model.yaml" --data-dir "$data" --batch-size "$batch" --epochs "$epochs" \
                --metrics-file "$metrics" > /dev/null 2>&1 && steady_epoch "$metrics")
        record dptrain "$model" "$batch" "$s"
        s=$("$DPTRAIN_BIN" bench --config "Configs/$model.yaml" --data-dir "$data" --batch-size "$batch" --steps "$steps" --json | json_field epoch_seconds)
        record dptrain-bench "$model" "$batch" "$s"
        s=$(OPENBLAS_NUM_THREADS=$cores "$DPTRAIN_ROOT/Launch/mpirun.sh" 1 "$floor_bin" --model "$model" --batch "$batch" --epochs 2 2>/dev/null \
            | json_field epoch_s_median)
        record floor "$model" "$batch" "$s"
        record keras "$model" "$batch" "$(peer tf keras_peer.py --model "$model" --batch "$batch" --epochs "$epochs" | json_field steady_epoch_s)"
        if [ "$model" = mlp ]; then
            record pytorch "$model" "$batch" "$(peer torch torch_peer.py --batch "$batch" --epochs "$epochs" --threads "$cores" | json_field median_epoch_s)"
            record numpy "$model" "$batch" "$(OPENBLAS_NUM_THREADS=$cores peer mpi numpy_peer.py --batch "$batch" --epochs "$epochs" | json_field median_epoch_s)"
        fi
        say "round $round/$rounds: $model batch $batch done"
    done
done

python3 - "$raw" "$cores" <<'EOF'
import json, math, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cores = sys.argv[2]
systems = ["dptrain", "dptrain-bench", "floor", "keras", "pytorch", "numpy"]
def median(v): return statistics.median(v) if v else math.nan
print(f"seconds per epoch, one process on {cores} cores (medians of the rounds), and ratios taken within each round (medians)")
print(f"{'model':6} {'batch':>5} " + " ".join(f"{s:>13}" for s in systems) + "  dptrain/floor  keras/dptrain  pytorch/dptrain  numpy/dptrain")
cases = [(key, [r for r in rows if (r["model"], r["batch"]) == key])
         for key in sorted({(r["model"], r["batch"]) for r in rows}, key=lambda k: (k[0] != "mlp", k))]
for key, runs in cases:
    seconds = {s: median([r["epoch_s"] for r in runs if r["system"] == s]) for s in systems}
    rounds = {}
    for r in runs: rounds.setdefault(r["round"], {})[r["system"]] = r["epoch_s"]
    def ratio(a, b): return median([t[a] / t[b] for t in rounds.values() if a in t and b in t])
    cells = " ".join(f"{seconds[s]:13.3f}" for s in systems)
    print(f"{key[0]:6} {key[1]:5d} {cells}  {ratio('dptrain', 'floor'):13.2f}  {ratio('keras', 'dptrain'):12.1f}x  "
          f"{ratio('pytorch', 'dptrain'):15.1f}x  {ratio('numpy', 'dptrain'):13.1f}x")
# A slow spell of the host can cover part of a round (dptrain and the floor, run first, slowed;
# the peers not): the fastest epoch of each system over the rounds is the other usual estimator,
# since interference only ever slows a run down.
print(f"\nbest of the rounds (each system's fastest epoch), and the same ratios between them")
print(f"{'model':6} {'batch':>5} " + " ".join(f"{s:>13}" for s in systems) + "  dptrain/floor  keras/dptrain  pytorch/dptrain  numpy/dptrain")
for key, runs in cases:
    best = {s: min([r["epoch_s"] for r in runs if r["system"] == s], default=math.nan) for s in systems}
    cells = " ".join(f"{best[s]:13.3f}" for s in systems)
    print(f"{key[0]:6} {key[1]:5d} {cells}  {best['dptrain'] / best['floor']:13.2f}  {best['keras'] / best['dptrain']:12.1f}x  "
          f"{best['pytorch'] / best['dptrain']:15.1f}x  {best['numpy'] / best['dptrain']:13.1f}x")
EOF
