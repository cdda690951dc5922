#!/usr/bin/env bash
# Sweeps process layouts on this node and prints/writes how dptrain scales, next to the floor
# program (Benchmarks/floor: only the GEMMs and one allreduce per step) and, when installed
# (Benchmarks/peers/setup.sh), the mpi4py+numpy trainer in the same layout, in the same run.
#
#   Benchmarks/scaling.sh                      # MLP and CNN, global batches 32 and 128
#   Benchmarks/scaling.sh --quick              # MLP only, batch 32, fewer steps
#   Benchmarks/scaling.sh --repeats 5 --out bench-results --max-ranks 4 --models cnn --batches "32 128"
#   Benchmarks/scaling.sh --dense-inputs ...   # dptrain multiplies zero inputs too, as the floor does
#   DPTRAIN_BIN=other/dptrain Benchmarks/scaling.sh ...   # another build of dptrain
#
# Layouts: 1 rank x 1 thread, 1 rank x all cores, one rank per core, and oversubscribed rank
# counts (marked). Strong scaling keeps the global batch; weak scaling keeps the batch per rank.
# Efficiency = throughput(N) / (N x throughput(1 rank x 1 thread)), throughput from the slowest
# rank. A repeat is a round that runs every layout once, back to back, in the reverse order every
# other round, so a slow stretch of a shared machine slows the layouts of a round alike; the
# table's vs_1xC is the median over the rounds of each round's own epoch ratio to 1 rank x all
# cores at the same model and global batch. Writes OUT/scaling.csv, OUT/scaling.json,
# OUT/scaling.svg and prints a table; then the
# time to a target test accuracy (MLP 97%, CNN 98%; Benchmarks/time_to_accuracy.py) in the two
# one-node layouts, and the performance model (Benchmarks/perf_model.py) fitted to these runs.
# Figures only: never fails on them.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

models="mlp cnn"; batches="32 128"; repeats=3; out=bench-results; steps=400; quick=0; max_ranks=8; extra=()
while [ $# -gt 0 ]; do
    case $1 in
        --quick) quick=1; models=mlp; batches=32; steps=300; repeats=3 ;;
        --models) models=$2; shift ;;
        --batches) batches=$2; shift ;;
        --repeats) repeats=$2; shift ;;
        --out) out=$2; shift ;;
        --max-ranks) max_ranks=$2; shift ;;
        --dense-inputs) extra=(--dense-inputs) ;;
        *) die "unknown option $1 (see the comment at the top of Benchmarks/scaling.sh)" ;;
    esac
    shift
done

bench_setup "$out"
data=$DATA cores=$CORES floor_bin=$FLOOR_BIN
raw="$out/runs.jsonl"; : > "$raw"
say "$("$DPTRAIN_BIN" --version)"

# run_layout ROUND MODEL KIND RANKS THREADS GLOBAL_BATCH: appends one JSON line.
run_layout() {
    local r=$1 model=$2 kind=$3 ranks=$4 threads=$5 batch=$6 over=false
    [ "$ranks" -gt "$cores" ] && over=true
    local s=$steps; [ "$model" = cnn ] && s=$(( steps / 4 ))
    {
        local args=(bench --config "Configs/$model.yaml" --data-dir "$data" --batch-size "$batch" --steps "$s" --warmup 20 --threads "$threads" --json ${extra[@]+"${extra[@]}"})
        local line
        if [ "$ranks" = 1 ]; then
            line=$(OPENBLAS_NUM_THREADS=$threads "$DPTRAIN_BIN" "${args[@]}")
        else
            line=$(OPENBLAS_NUM_THREADS=$threads "$DPTRAIN_ROOT/Launch/mpirun.sh" "$ranks" "$DPTRAIN_BIN" "${args[@]}" 2>/dev/null)
        fi
        local floor=null
        floor=$(OPENBLAS_NUM_THREADS=$threads "$DPTRAIN_ROOT/Launch/mpirun.sh" "$ranks" "$floor_bin" --model "$model" --batch "$batch" --epochs 2 2>/dev/null \
                | json_field epoch_s_median)
        floor=${floor:-null}
        local peer=null
        if [ "$model" = mlp ] && [ -x "$PEERS_DIR/mpi/bin/python" ]; then
            peer=$(cd "$BENCH_DIR/peers" && OPENBLAS_NUM_THREADS=$threads "$DPTRAIN_ROOT/Launch/mpirun.sh" "$ranks" "$PEERS_DIR/mpi/bin/python" numpy_peer.py \
                   --data-dir "$data" --batch "$batch" --epochs 3 2>/dev/null | tail -1 || true)
            peer=${peer:-null}
        fi
        printf '{"round":%d,"model":"%s","kind":"%s","ranks":%d,"threads":%d,"global_batch":%d,"oversubscribed":%s,"bench":%s,"floor_epoch_s":%s,"peer":%s}\n' \
            "$r" "$model" "$kind" "$ranks" "$threads" "$batch" "$over" "$line" "$floor" "$peer" >> "$raw"
        say "$model $kind ranks=$ranks threads=$threads batch=$batch round $r/$repeats done"
    }
}

# Every layout of a round: MODEL KIND RANKS THREADS GLOBAL_BATCH a line.
layouts=()
for model in $models; do
    for batch in $batches; do
        layouts+=("$model layout 1 1 $batch" "$model layout 1 $cores $batch")
        for n in 2 4 8; do
            if [ "$n" -le "$max_ranks" ] && [ "$n" -le "$batch" ]; then layouts+=("$model strong $n 1 $batch"); fi
        done
    done
    [ $quick = 1 ] && continue
    for n in 1 2 4; do
        if [ "$n" -le "$max_ranks" ]; then layouts+=("$model weak $n 1 $(( 32 * n ))"); fi
    done
done
for r in $(seq "$repeats"); do
    order=$(seq 0 $(( ${#layouts[@]} - 1 )))
    [ $(( r % 2 )) = 0 ] && order=$(echo "$order" | tac)
    for i in $order; do
        # shellcheck disable=SC2086  # a layout's words are its arguments
        run_layout "$r" ${layouts[$i]}
    done
done

python3 "$BENCH_DIR/scaling_report.py" "$raw" "$out"

# Time to a target accuracy (MLPerf-style): whole training runs in the two one-node layouts.
for model in $models; do
    if [ "$model" = mlp ]; then target=0.97 epochs=5; else target=0.98 epochs=3; fi
    alone="$out/tta-$model-1x$cores.jsonl" ranked="$out/tta-$model-${cores}x1.jsonl"
    OPENBLAS_NUM_THREADS=$cores "$DPTRAIN_BIN" train --config "Configs/$model.yaml" --data-dir "$data" --epochs $epochs \
        --quiet --metrics-file "$alone" || true
    OPENBLAS_NUM_THREADS=1 "$DPTRAIN_ROOT/Launch/mpirun.sh" "$cores" "$DPTRAIN_BIN" train --config "Configs/$model.yaml" \
        --data-dir "$data" --epochs $epochs --quiet --metrics-file "$ranked" 2>/dev/null || true
    python3 "$BENCH_DIR/time_to_accuracy.py" $target "$model 1 rank x $cores threads=$alone" "$model $cores ranks x 1 thread=$ranked"
done
for model in $models; do
    for network in 10gbe 100gbe; do
        python3 "$BENCH_DIR/perf_model.py" "$raw" --model "$model" --batch "${batches%% *}" --network "$network" || true
    done
done
