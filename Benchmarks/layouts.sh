#!/usr/bin/env bash
# One rank per core against one rank with a thread per core, on this machine: how much the ranks'
# shared memory closes the gap, in alternating rounds of the same run, for each layout:
#   threads     1 rank x C threads
#   shared      C ranks summing in shared memory, each updating a slice of one shared copy of the
#               parameters and optimizer state (the default)
#   shared-sum  C ranks summing in shared memory, each updating its own copy of everything
#               (DPTRAIN_GRADIENT_SUM=shared-sum)
#   allreduce   C ranks through one MPI_Allreduce (DPTRAIN_GRADIENT_SUM=allreduce)
# Measured:
#   - `dptrain bench` for each model and global batch: the step, its forward, backward, allreduce
#     and optimizer phases (slowest rank's median), median and fastest over the rounds;
#   - the tutorial (Configs/mlp.yaml, 5 epochs) from launch to exit under mpirun in each layout.
# Prints medians over the rounds and the ratios to 1 rank x C threads (the median of the rounds' own
# ratios, and the fastest rounds'). Figures only.
#
#   Benchmarks/layouts.sh [--rounds 5] [--models "mlp cnn"] [--batches "32 128"] [--no-tutorial]
#                         [--layouts "threads shared shared-sum allreduce"]
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

rounds=5 models="mlp cnn" batches="32 128" tutorial=1 out=bench-results/layouts
layouts="threads shared shared-sum allreduce"
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift ;;
        --models) models=$2; shift ;;
        --batches) batches=$2; shift ;;
        --layouts) layouts=$2; shift ;;
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
        shared|shared-sum|allreduce) DPTRAIN_GRADIENT_SUM=$name mpirun "${root[@]}" -np "$cores" --bind-to core \
            -x OPENBLAS_NUM_THREADS=1 -x DPTRAIN_GRADIENT_SUM "$DPTRAIN_BIN" "$@" --threads 1 ;;
        *) die "unknown layout $name (threads, shared, shared-sum, allreduce)" ;;
    esac
}

for round in $(seq 1 "$rounds"); do
    for model in $models; do
        for batch in $batches; do
            for layout in $layouts; do
                line=$(run_layout "$layout" bench --config "Configs/$model.yaml" --data-dir "$DATA" --batch-size "$batch" \
                    --steps 300 --warmup 100 --json 2>/dev/null | tail -1) || line=""
                [ -n "$line" ] && echo "{\"kind\":\"bench\",\"round\":$round,\"model\":\"$model\",\"batch\":$batch,\"layout\":\"$layout\",\"report\":$line}" >> "$raw"
            done
        done
    done
    if [ "$tutorial" = 1 ]; then
        for layout in $layouts; do
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
layouts = ("threads", "shared", "shared-sum", "allreduce")
names = {"threads": f"1 rank x {cores} threads", "shared": f"{cores} ranks, shared update", "shared-sum": f"{cores} ranks, shared sum only", "allreduce": f"{cores} ranks, MPI_Allreduce"}
med = statistics.median
print(f"step (ms), slowest rank's medians: median over the rounds (fastest round); ratio to 1 rank x {cores} threads:")
print("  median of the rounds' ratios (each round's layouts run back to back, so a slow stretch of the machine")
print("  slows both sides of a ratio), then the ratio of the fastest rounds")
for model in sorted({r["model"] for r in rows if r["kind"] == "bench"}):
    for batch in sorted({r["batch"] for r in rows if r["kind"] == "bench" and r["model"] == model}):
        def step_by_round(layout):
            return {r["round"]: r["report"]["step_seconds"]["max"] * 1e3 for r in rows
                    if r["kind"] == "bench" and r["model"] == model and r["batch"] == batch and r["layout"] == layout}
        base = step_by_round("threads")
        for layout in layouts:
            rs = [r["report"] for r in rows if r["kind"] == "bench" and r["model"] == model and r["batch"] == batch and r["layout"] == layout]
            if not rs:
                continue
            by_round = step_by_round(layout)
            steps = list(by_round.values())
            step, fastest = med(steps), min(steps)
            phase = {p: med(r["phases_seconds"][p]["max"] for r in rs) * 1e3 for p in ("forward", "backward", "allreduce", "optimizer")}
            ratios = [by_round[k] / base[k] for k in by_round if k in base]
            ratio = f"ratio {med(ratios):5.2f} ({fastest / min(base.values()):4.2f})" if ratios else ""
            print(f"  {model} batch {batch:<4} {names[layout]:<28} step {step:7.3f} ({fastest:7.3f})  forward {phase['forward']:6.3f}  "
                  f"backward {phase['backward']:6.3f}  allreduce {phase['allreduce']:6.3f}  optimizer {phase['optimizer']:6.3f}  "
                  f"{ratio}  ({len(rs)} rounds)")
tut = {l: {r["round"]: r["seconds"] for r in rows if r["kind"] == "tutorial" and r["layout"] == l} for l in layouts}
if tut["threads"]:
    base = tut["threads"]
    print("tutorial (Configs/mlp.yaml, 5 epochs) from launch to exit under mpirun, fastest and median of the rounds;")
    print("ratio to 1 rank x threads: median of the rounds' ratios, then of the fastest rounds:")
    for l, by_round in tut.items():
        if by_round:
            s = list(by_round.values())
            ratios = [by_round[k] / base[k] for k in by_round if k in base]
            print(f"  {names[l]:<28} {min(s):6.2f} s  median {med(s):6.2f} s  ratio {med(ratios):5.2f} ({min(s) / min(base.values()):4.2f})")
PY
