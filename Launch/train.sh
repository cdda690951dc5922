#!/usr/bin/env bash
# Trains from a fresh machine: installs what is missing, builds the release binary, prepares the
# data the config reads when it knows how (MNIST in data/mnist, Keras's data/mnist.npz made from
# it, the breast-cancer table in data/breast-cancer: see `dptrain data missing`), and runs under
# mpirun: by default one rank with a worker thread per core, which trains exactly as one rank per
# core would (each thread takes a rank's share of the batch) without MPI's copies between processes.
#
#   Launch/train.sh                                  # the tutorial MLP (Configs/mlp.yaml)
#   Launch/train.sh --config Configs/binary-tabular.yaml --epochs 1
#   DPTRAIN_RANKS=2 Launch/train.sh                  # 2 ranks, cores / 2 threads each
#   DPTRAIN_BIN=path/to/dptrain Launch/train.sh      # a binary already built: no build step
#   DPTRAIN_DATA=/data/mnist Launch/train.sh         # MNIST copied from there instead of downloaded
#
# Arguments pass through to `dptrain train` (see `dptrain train --help`). A file the config needs
# that this script cannot make stops it with the file's name before mpirun starts.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

ensure_deps
ensure_binary

# The config and data directory the arguments name (for `dptrain data missing`).
config=Configs/mlp.yaml data_dir=""
args=("$@")
for i in "${!args[@]}"; do
    case ${args[$i]} in
        --config) config=${args[$((i + 1))]:-} ;;
        --config=*) config=${args[$i]#--config=} ;;
        --data-dir) data_dir=${args[$((i + 1))]:-} ;;
        --data-dir=*) data_dir=${args[$i]#--data-dir=} ;;
    esac
done
# MNIST's IDX files, for the configs that name no data directory of their own, live in data/mnist
# (relative to the repository root, where mpirun starts the ranks); DPTRAIN_DATA as given is
# where fetch-mnist.sh copies them from.
source_data=${DPTRAIN_DATA:-}
[ -n "$data_dir" ] || export DPTRAIN_DATA=data/mnist
missing=$("$DPTRAIN_BIN" data missing --config "$config" ${data_dir:+--data-dir "$data_dir"}) \
    || die "could not read what $config needs (see above)"
dptrain() { "$DPTRAIN_BIN" "$@"; }
made="|"
while IFS=$'\t' read -r path command; do
    [ -n "$path" ] || continue
    [ -n "$command" ] || die "$path: not found, and this script does not know how to make it: put it there, or pass --data-dir"
    [[ $made == *"|$command|"* ]] && continue  # one command makes several files
    say "$path is missing: $command"
    (
        if [ -n "$source_data" ]; then export DPTRAIN_DATA=$source_data; else unset DPTRAIN_DATA; fi
        eval "$command"
    ) < /dev/null || die "could not make $path ($command failed, see above)"
    made="$made$command|"
done <<< "$missing"
ranks=${DPTRAIN_RANKS:-1}
mpirun_args "$ranks"
say "mpirun ${MPIRUN_ARGS[*]} $DPTRAIN_BIN train $*"
run_mpirun "${MPIRUN_ARGS[@]}" "$DPTRAIN_BIN" train "$@"
