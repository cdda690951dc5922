#!/usr/bin/env bash
# Gradient compression where the link is the bottleneck: the MLP and CNN configs trained to the
# end on 2 simulated hosts (Launch/simulate-hosts.sh) joined by a shaped link, with the gradients
# sent as float32, as bfloat16 and as PowerSGD factors (training.allreduce_compression; powersgd-bf16:
# with training.powersgd.bf16, its warm-up and P factors as bfloat16), in alternating rounds. Prints,
# per model and wire format, the mean step time (epoch seconds / steps), the training time to a
# target test accuracy (MLP 97.5%, CNN 98.5%), and the test accuracy after the config's epochs and
# at the end (Benchmarks/compression_report.py). The MLP trains its config's 5 epochs; the CNN 4
# (--cnn-epochs), since its config's 2 do not reach 98.5% with every seed. Each host is a machine of
# --cores-per-host K cores of its own (default 1; one rank of K threads), and one such host alone
# trains the same config with float32 in each round: the baseline a second machine must beat.
#
#   Benchmarks/compression.sh                       # 1gbit, mlp and cnn, 1 round
#   Benchmarks/compression.sh --rate 10gbit --models mlp --rounds 3 --cores-per-host 1 --out bench-results/compression
#   Benchmarks/compression.sh --formats "onehost powersgd"   # some of: onehost none bf16 powersgd powersgd-bf16
#   Benchmarks/compression.sh --batch 128                    # the global batch (default: the config's)
#   Benchmarks/compression.sh --overlap "on off"             # float32 and bf16 also with the gradient
#                                                            # sent after backward (default: on only)
#   Benchmarks/compression.sh --seeds "1 2 3 4 5"            # a round per seed, round r with the r-th
#                                                            # (default: the config's seed each round):
#                                                            # the curves' spread shows in the time to
#                                                            # accuracy, whose median the report prints
#
# Needs root (namespaces). Prints figures; never fails on them.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

rate=1gbit; models="mlp cnn"; rounds=1; out=bench-results/compression; cnn_epochs=4; cores=1
formats="onehost none bf16 powersgd powersgd-bf16" batch=() overlaps=on seeds=""
while [ $# -gt 0 ]; do
    case $1 in
        --rate) rate=$2; shift ;;
        --models) models=$2; shift ;;
        --rounds) rounds=$2; shift ;;
        --cnn-epochs) cnn_epochs=$2; shift ;;
        --cores-per-host) cores=$2; shift ;;
        --formats) formats=$2; shift ;;
        --batch) batch=(--batch-size "$2"); shift ;;
        --overlap) overlaps=$2; shift ;;
        --seeds) seeds=$2; rounds=$(wc -w <<< "$2"); shift ;;
        --out) out=$2; shift ;;
        *) die "unknown option $1 (see the comment at the top of Benchmarks/compression.sh)" ;;
    esac
    shift
done
[ "$(id -u)" = 0 ] || die "simulated hosts need root"
bench_setup "$out"
[ $((2 * cores)) -le "$(nproc)" ] || die "2 hosts x $cores core(s) need $((2 * cores)) cores; this machine has $(nproc)"
say "$("$DPTRAIN_BIN" --version); 2 simulated hosts x 1 rank x $cores thread(s) on $cores core(s) of their own, $rate link; 1 such host alone"

for round in $(seq "$rounds"); do
    seed=(); [ -n "$seeds" ] && seed=(--seed "$(cut -d' ' -f"$round" <<< "$(echo $seeds)")")
    for model in $models; do
        epochs=$(awk '$1 == "epochs:" { print $2 }' "Configs/$model.yaml")
        [ "$model" = cnn ] && epochs=$cnn_epochs
        for format in $formats; do
            for overlap in $overlaps; do
                # Overlap applies where the gradient crosses machines whole (float32 and bf16): one
                # host and PowerSGD run once, with the first value.
                whole=true; case $format in onehost | powersgd*) whole=false ;; esac
                ! $whole && [ "$overlap" != "${overlaps%% *}" ] && continue
                config="Configs/$model.yaml" name=$format compression=${format/onehost/none}
                if [ "$format" = powersgd-bf16 ]; then
                    config="$out/$model-powersgd-bf16.yaml" compression=powersgd
                    { cat "Configs/$model.yaml"; echo "  powersgd: {bf16: true}"; } > "$config"
                fi
                if [ "$overlap" = off ] && $whole; then
                    config="$out/$model-serial.yaml" name=$format-serial
                    { cat "Configs/$model.yaml"; echo "  overlap_communication: false"; } > "$config"
                fi
                metrics="$out/$model-$name-$round.jsonl"
                rm -f "$metrics"
                hosts=2; [ "$format" = onehost ] && hosts=1
                say "round $round: $model, $epochs epochs, $hosts host(s), gradients as ${format/none/float32}, overlap $overlap"
                "$DPTRAIN_ROOT/Launch/simulate-hosts.sh" run "$hosts" --rate "$rate" --cores-per-host "$cores" -- \
                    env DPTRAIN_BIN="$DPTRAIN_BIN" DPTRAIN_THREADS="$cores" \
                    "$DPTRAIN_ROOT/Launch/cluster.sh" --config "$config" --data-dir "$DATA" --epochs "$epochs" \
                    --allreduce-compression "$compression" "${batch[@]}" "${seed[@]}" --metrics-file "$metrics" --quiet || true
            done
        done
    done
done

for model in $models; do
    target=0.975; [ "$model" = cnn ] && target=0.985
    config_epochs=$(awk '$1 == "epochs:" { print $2 }' "Configs/$model.yaml")
    python3 "$BENCH_DIR/compression_report.py" "$model" "$target" "$config_epochs" "$out" "$rounds" "$formats"
done
