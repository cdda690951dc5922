#!/usr/bin/env bash
# One rank per core against one rank with a thread per core, on this machine: how much the ranks'
# shared-memory gradient sum closes the gap, against the MPI_Allreduce it replaces
# (DPTRAIN_GRADIENT_SUM=allreduce), in alternating rounds of the same run:
#   - `dptrain bench` at 1 rank x C threads, C ranks (shared memory), C ranks (MPI_Allreduce), for
#     each model and global batch: the step, its allreduce and optimizer phases (slowest rank's
#     median), the epoch it implies;
#   - the tutorial (Configs/mlp.yaml, 5 epochs) from launch to exit under mpirun in each layout.
# Prints medians over the rounds and the ratios to 1 rank x C threads. Figures only.
#
#   Benchmarks/layouts.sh [--rounds 5] [--models "mlp cnn"] [--batches "32 128"] [--no-tutorial]
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

rounds=5 models="mlp cnn" batches="32 128" tutorial=1 out=bench-results/layouts
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift ;;
        --models) models=$2; shift ;;
        --batches) batches=$2; shift ;;
        --no-tutorial) tutorial=0 ;;
        --out) out=$2; shift ;;
        *) die "unknown option $1 (see the comment at the top of Benchmarks/layouts.sh)" ;;
    esac
    shift
done
bench_setup "$out"
cores=$CORES
root=(); [ "$(id -u)" = 0 ] && root=(--allow-run-as-root)
raw="$out/layouts.jsonl"; : > "$raw"

# layout NAME: the mpirun arguments and environment of a layout.
run_layout() {  # run_layout NAME COMMAND... (the dptrain arguments)
    local name=$1; shift
    case $name in
        threads) OPENBLAS_NUM_THREADS=1 mpirun "${root[@]}" -np 1 --bind-to none "$DPTRAIN_BIN" "$@" --threads "$cores" ;;
        shared) DPTRAIN_GRADIENT_SUM=shared mpirun "${root[@]}" -np "$cores" --bind-to core -x OPENBLAS_NUM_THREADS=1 \
            -x DPTRAIN_GRADIENT_SUM "$DPTRAIN_BIN" "$@" --threads 1 ;;
        allreduce) DPTRAIN_GRADIENT_SUM=allreduce mpirun "${root[@]}" -np "$cores" --bind-to core -x OPENBLAS_NUM_THREADS=1 \
            -x DPTRAIN_GRADIENT_SUM "$DPTRAIN_BIN" "$@" --threads 1 ;;
    esac
}

for round in $(seq 1 "$rounds"); do
    for model in $models; do
        for batch in $batches; do
            for layout in threads shared allreduce; do
                line=$(run_layout "$layout" bench --config "Configs/$model.yaml" --data-dir "$DATA" --batch-size "$batch" \
                    --steps 300 --warmup 100 --json 2>/dev/null | tail -1) || line=""
                [ -n "$line" ] && echo "{\"kind\":\"bench\",\"round\":$round,\"model\":\"$model\",\"batch\":$batch,\"layout\":\"$layout\",\"report\":$line}" >> "$raw"
            done
        done
    done
    if [ "$tutorial" = 1 ]; then
        for layout in threads shared allreduce; do
            started=$(date +%s.%N)
            run_layout "$layout" train --config Configs/mlp.yaml --data-dir "$DATA" --quiet > /dev/null 2>&1 || true
            seconds=$(echo "$(date +%s.%N) - $started" | bc)
            echo "{\"kind\":\"tutorial\",\"round\":$round,\"layout\":\"$layout\",\"seconds\":$seconds}" >> "$raw"
        done
    fi
    say "round $round of $rounds done"
done

python3 - "$raw" "$cores" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
cores = sys.argv[2]
names = {"threads": f"1 rank x {cores} threads", "shared": f"{cores} ranks, shared memory", "allreduce": f"{cores} ranks, MPI_Allreduce"}
med = statistics.median
print(f"step (ms), slowest rank's medians over the rounds; ratio = step / 1 rank x {cores} threads' step")
for model in sorted({r["model"] for r in rows if r["kind"] == "bench"}):
    for batch in sorted({r["batch"] for r in rows if r["kind"] == "bench" and r["model"] == model}):
        base = None
        for layout in ("threads", "shared", "allreduce"):
            rs = [r["report"] for r in rows if r["kind"] == "bench" and r["model"] == model and r["batch"] == batch and r["layout"] == layout]
            if not rs:
                continue
            step = med(r["step_seconds"]["max"] for r in rs) * 1e3
            allreduce = med(r["phases_seconds"]["allreduce"]["max"] for r in rs) * 1e3
            optimizer = med(r["phases_seconds"]["optimizer"]["max"] for r in rs) * 1e3
            base = base or step
            print(f"  {model} batch {batch:<4} {names[layout]:<28} step {step:7.3f}  allreduce {allreduce:6.3f}  optimizer {optimizer:6.3f}  ratio {step / base:5.2f}  ({len(rs)} rounds)")
tut = {l: [r["seconds"] for r in rows if r["kind"] == "tutorial" and r["layout"] == l] for l in ("threads", "shared", "allreduce")}
if tut["threads"]:
    base = min(tut["threads"])
    print("tutorial (Configs/mlp.yaml, 5 epochs) from launch to exit under mpirun, fastest and median of the rounds:")
    for l, s in tut.items():
        if s:
            print(f"  {names[l]:<28} {min(s):6.2f} s  median {med(s):6.2f} s  ratio (fastest) {min(s) / base:5.2f}")
PY
