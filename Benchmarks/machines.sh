#!/usr/bin/env bash
# What a second machine buys, step by step, and the performance model with overlap and
# compression checked against it. Two simulated hosts (Launch/simulate-hosts.sh), each a machine
# of one core of its own (--cores-per-host 1), joined by a link shaped to each --links rate, and
# one such host alone at the same work per host:
#
#   - 1 host, local batch B (--batch, default 64): the compute and optimizer terms;
#   - the gradient's exchange alone on 2 hosts (`dptrain bench --allreduce-only`), float32 and
#     bf16, and 4096 and 32768 floats (small exchanges, such as PowerSGD's), over the shaped link
#     and over an unshaped one (what the exchange costs the cores when no rate limits it);
#   - whole steps on 2 hosts at global batch 2B: float32 and bf16, each with the gradient sent
#     after backward (overlap_communication: false) and in buckets during backward (the default),
#     and PowerSGD (rank 4, every step compressed: warmup_steps 0), its P factors as float32 and
#     as bfloat16 (training.powersgd.bf16).
#
# Benchmarks/machines_report.py then fits the model's terms (compute and optimizer to the one-host
# runs; latency and bandwidth to the exchange-alone runs of every size; the share of backward that hides an
# exchange and PowerSGD's cost per compressed element, one constant each over all the points),
# prints every measured step beside its prediction with the error, the efficiency (one host's step
# over two hosts') and the share of the exchange hidden, and predicts the efficiency at 8, 32 and
# 256 machines over 10, 25 and 100 GbE.
#
#   Benchmarks/machines.sh                                   # 1 and 10 Gb/s, MLP and CNN, 3 rounds
#   Benchmarks/machines.sh --links 10gbit --models cnn --rounds 1 --out bench-results/machines
#
# Each run is `dptrain bench` (--steps timed steps after 10), the systems alternating within a
# round; figures are medians over the rounds. Needs root (namespaces) and 2 cores. Prints figures;
# never fails on them.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

links="1gbit 10gbit"; models="mlp cnn"; rounds=3; out=bench-results/machines; batch=64; steps=60
while [ $# -gt 0 ]; do
    case $1 in
        --links) links=$2; shift ;;
        --models) models=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --batch) batch=$2; shift ;;
        --steps) steps=$2; shift ;;
        --out) out=$2; shift ;;
        *) die "unknown option $1 (see the comment at the top of Benchmarks/machines.sh)" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "simulated hosts need root"
bench_setup "$out"
[ "$(nproc)" -ge 2 ] || die "2 hosts x 1 core need 2 cores; this machine has $(nproc)"
raw="$out/machines.jsonl"; : > "$raw"
say "$("$DPTRAIN_BIN" --version); 2 simulated hosts x 1 core of their own against 1 such host; $rounds round(s)"

# The configs as the runs need them: the gradient sent after backward, and PowerSGD from step 1.
for model in $models; do
    { cat "Configs/$model.yaml"; echo "  overlap_communication: false"; } > "$out/$model-serial.yaml"
    for format in powersgd powersgd-bf16; do
        bf16=false; [ $format = powersgd-bf16 ] && bf16=true
        { cat "Configs/$model.yaml"; printf '  allreduce_compression: powersgd\n  powersgd: {warmup_steps: 0, bf16: %s}\n' $bf16; } \
            > "$out/$model-$format.yaml"
    done
done

# One measurement script, run inside the simulated hosts of each link (it sees their variables).
cat > "$out/measure.sh" <<EOF
set -u
run() {  # run HOSTS ARGS...: dptrain on the first HOSTS hosts, one rank each, one thread
    local n=\$1; shift
    local hosts=\$(echo "\$DPTRAIN_HOSTS" | cut -d, -f1-\$n)
    mpirun --allow-run-as-root -H "\$hosts" -np \$n --bind-to none --mca mpi_yield_when_idle 1 --mca btl_tcp_links 2 \\
        --mca btl_tcp_if_include \$DPTRAIN_IFACE --mca oob_tcp_if_include \$DPTRAIN_IFACE -x OPENBLAS_NUM_THREADS=1 \\
        "$DPTRAIN_BIN" "\$@" 2>/dev/null | tail -1
}
record() {  # record FIELDS JSON: the run's JSON with this script's fields in front
    [ -n "\$2" ] && printf '{"link":"%s","round":%s,%s,%s\n' "\$LINK" "\$ROUND" "\$1" "\${2#\\{}" >> "$raw"; return 0
}
for floats in 4096 32768; do  # small exchanges, such as PowerSGD's, so the fit sees the latency
    record '"model":"'\$floats' floats","kind":"exchange","format":"none"' \\
        "\$(run 2 bench --config Configs/mlp.yaml --data-dir "$DATA" --allreduce-only --allreduce-floats \$floats --steps 100 \\
            --warmup 5 --json)"
done
for model in $models; do
    for format in none bf16; do
        record '"model":"'\$model'","kind":"exchange","format":"'\$format'"' \\
            "\$(run 2 bench --config Configs/\$model.yaml --data-dir "$DATA" --allreduce-only --steps 100 --warmup 5 \\
                --allreduce-compression \$format --json)"
    done
    [ "\$LINK" = unshaped ] && continue
    common=(--data-dir "$DATA" --threads 1 --steps $steps --warmup 10 --json)
    record '"model":"'\$model'","kind":"step","hosts":1,"format":"none","overlap":false' \\
        "\$(run 1 bench --config Configs/\$model.yaml --batch-size $batch "\${common[@]}")"
    for format in none bf16; do
        record '"model":"'\$model'","kind":"step","hosts":2,"format":"'\$format'","overlap":false' \\
            "\$(run 2 bench --config $out/\$model-serial.yaml --batch-size $((2 * batch)) --allreduce-compression \$format "\${common[@]}")"
        record '"model":"'\$model'","kind":"step","hosts":2,"format":"'\$format'","overlap":true' \\
            "\$(run 2 bench --config Configs/\$model.yaml --batch-size $((2 * batch)) --allreduce-compression \$format "\${common[@]}")"
    done
    for format in powersgd powersgd-bf16; do
        record '"model":"'\$model'","kind":"step","hosts":2,"format":"'\$format'","overlap":false' \\
            "\$(run 2 bench --config $out/\$model-\$format.yaml --batch-size $((2 * batch)) "\${common[@]}")"
    done
done
EOF
for round in $(seq "$rounds"); do
    for link in unshaped $links; do
        say "round $round: 2 simulated hosts x 1 core, ${link/unshaped/an unshaped} link"
        rate=(); [ "$link" = unshaped ] || rate=(--rate "$link")
        LINK=$link ROUND=$round "$DPTRAIN_ROOT/Launch/simulate-hosts.sh" run 2 "${rate[@]}" --cores-per-host 1 -- bash "$out/measure.sh"
    done
done
python3 "$BENCH_DIR/machines_report.py" "$raw"
