#!/usr/bin/env bash
# Trains on MNIST from a fresh machine: installs what is missing, builds the release binary,
# makes sure MNIST is in data/mnist, and runs under mpirun: by default one rank with a worker
# thread per core, which trains exactly as one rank per core would (each thread takes a rank's
# share of the batch) without MPI's copies between processes.
#
#   Launch/train.sh                                  # the tutorial MLP (Configs/mlp.yaml)
#   Launch/train.sh --config Configs/mlp.yaml --epochs 1
#   DPTRAIN_RANKS=2 Launch/train.sh                  # 2 ranks, cores / 2 threads each
#   DPTRAIN_BIN=path/to/dptrain Launch/train.sh      # a binary already built: no build step
#
# Arguments pass through to `dptrain train` (see `dptrain train --help`).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

ensure_deps
ensure_binary
# MNIST in data/mnist, for the configs that read it (those that name a data.dir of their own
# read that: DPTRAIN_DATA comes after it).
if [[ " $* " != *" --data-dir "* ]]; then
    "$DPTRAIN_ROOT/Launch/fetch-mnist.sh" "$DPTRAIN_ROOT/data/mnist"
    export DPTRAIN_DATA=data/mnist  # relative to the repository root, where mpirun starts the ranks
fi
ranks=${DPTRAIN_RANKS:-1}
mpirun_args "$ranks"
say "mpirun ${MPIRUN_ARGS[*]} $DPTRAIN_BIN train $*"
run_mpirun "${MPIRUN_ARGS[@]}" "$DPTRAIN_BIN" train "$@"
