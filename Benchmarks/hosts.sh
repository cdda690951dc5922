#!/usr/bin/env bash
# Scaling across simulated hosts (Launch/simulate-hosts.sh: network namespaces, links shaped
# with tc), measured the way a cluster would see it, and the performance model checked against it.
#
#   Benchmarks/hosts.sh                                   # 1 and 10 Gb/s links, MLP and CNN, float32 and bf16
#   Benchmarks/hosts.sh --links "1gbit" --models mlp --repeats 2 --out bench-results/hosts
#   Benchmarks/hosts.sh --cores-per-host 1             # each host a machine of 1 core of its own
#
# With --cores-per-host K each simulated host has K cores of its own (its daemon and ranks confined
# to them), every rank runs K threads, and only as many hosts as the machine has cores for K each
# are measured (2 on a 2-core machine): N hosts x K cores against 1 host x K cores, as on a cluster.
# Without it the hosts share this machine's cores:
# the two costs are then measured apart:
#   - the network: `dptrain bench --allreduce-only` (the gradient's allreduce alone) on 2, 4 and
#     8 hosts, with mpi_yield_when_idle so ranks waiting on the link give up their core;
#   - a whole step: `dptrain bench` on 1 and 2 hosts (one rank each, one thread): strong scaling
#     (global batch 32) and weak (32 per host), split into compute, allreduce and optimizer; one
#     host runs 16 and 32 samples, what each of two computes on.
# The ranks use two TCP connections to each other, as Launch/cluster.sh sets up. Each point is a
# median over --repeats runs. Benchmarks/hosts_report.py then fits the model's network terms to
# the 2-host allreduce-only runs of each link and wire format, predicts every other measured
# point from them and the one-host runs, prints both side by side with the error, and predicts
# efficiency at 8-256 ranks over 10, 25 and 100 GbE. Needs root (namespaces). Prints figures;
# never fails on them.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

links="1gbit 10gbit"; models="mlp cnn"; repeats=3; out=bench-results/hosts; formats="none bf16"; cores=""
while [ $# -gt 0 ]; do
    case $1 in
        --links) links=$2; shift ;;
        --models) models=$2; shift ;;
        --repeats) repeats=$2; shift ;;
        --formats) formats=$2; shift ;;
        --cores-per-host) cores=$2; shift ;;
        --out) out=$2; shift ;;
        *) die "unknown option $1 (see the comment at the top of Benchmarks/hosts.sh)" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "simulated hosts need root"
bench_setup "$out"
hosts_up=8 threads=1 confine=()
if [ -n "$cores" ]; then
    hosts_up=$(( $(nproc) / cores )); [ "$hosts_up" -gt 8 ] && hosts_up=8
    [ "$hosts_up" -ge 2 ] || die "2 hosts x $cores core(s) need $((2 * cores)) cores; this machine has $(nproc)"
    threads=$cores confine=(--cores-per-host "$cores")
fi
raw="$out/hosts.jsonl"; : > "$raw"
say "$("$DPTRAIN_BIN" --version)"

# One measurement script, run inside the simulated hosts of each link (it sees their variables).
cat > "$out/measure.sh" <<EOF
set -u
run() {  # run HOSTS ARGS...: dptrain on the first HOSTS hosts, one rank each
    local n=\$1; shift
    local hosts=\$(echo "\$DPTRAIN_HOSTS" | cut -d, -f1-\$n)
    mpirun --allow-run-as-root -H "\$hosts" -np \$n --bind-to none --mca mpi_yield_when_idle 1 --mca btl_tcp_links 2 \\
        --mca btl_tcp_if_include \$DPTRAIN_IFACE --mca oob_tcp_if_include \$DPTRAIN_IFACE -x OPENBLAS_NUM_THREADS=1 \\
        "$DPTRAIN_BIN" "\$@" 2>/dev/null | tail -1
}
record() { [ -n "\$3" ] && printf '{"link":"%s","kind":"%s",%s\n' "\$LINK" "\$1" "\${3#\\{}" >> "$raw"; return 0; }
for model in $models; do
    steps=200; [ \$model = cnn ] && steps=40
    for format in $formats; do
        for n in 2 4 8; do
            [ \$n -le $hosts_up ] || continue
            for r in \$(seq $repeats); do
                record allreduce x "\$(run \$n bench --config Configs/\$model.yaml --data-dir "$DATA" --allreduce-only --steps \$steps --warmup 5 \\
                    --allreduce-compression \$format --json | sed 's/^{/{"model":"'\$model'","hosts":'\$n',/')"
            done
        done
        for n in 1 2; do
            # One host at 16 and 32 samples (what a host computes on at 2 hosts, strong and weak).
            for kind in strong weak; do
                batch=32; [ \$kind = weak ] && batch=\$((32 * n)); [ \$n = 1 ] && [ \$kind = strong ] && batch=16
                for r in \$(seq $repeats); do
                    record step x "\$(run \$n bench --config Configs/\$model.yaml --data-dir "$DATA" --batch-size \$batch --threads $threads --steps \$steps \\
                        --warmup 10 --allreduce-compression \$format --json | sed 's/^{/{"model":"'\$model'","hosts":'\$n',"scaling":"'\$kind'","compression":"'\$format'",/')"
                done
            done
        done
    done
done
EOF
for link in $links; do
    say "simulated hosts with $link links"
    LINK=$link "$DPTRAIN_ROOT/Launch/simulate-hosts.sh" run "$hosts_up" --rate "$link" "${confine[@]}" -- bash "$out/measure.sh"
done
python3 "$BENCH_DIR/hosts_report.py" "$raw"
