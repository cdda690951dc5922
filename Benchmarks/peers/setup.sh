#!/usr/bin/env bash
# Installs the peers into virtual environments under PEERS_DIR (default ~/.cache/dptrain-peers):
#   tf     tensorflow-cpu (Keras 3)        for keras_peer.py
#   torch  torch, the CPU build             for torch_peer.py
#   mpi    mpi4py + numpy (needs OpenMPI)   for numpy_peer.py
# Idempotent; a peer that fails to install is reported and skipped by the benchmarks.
set -uo pipefail
PEERS_DIR=${PEERS_DIR:-$HOME/.cache/dptrain-peers}
say() { printf 'peers: %s\n' "$*" >&2; }
venv() { [ -x "$PEERS_DIR/$1/bin/python" ] || python3 -m venv "$PEERS_DIR/$1"; }
mkdir -p "$PEERS_DIR"
failed=0
venv tf && "$PEERS_DIR/tf/bin/pip" install -q tensorflow-cpu numpy || { say "tensorflow-cpu did not install"; failed=1; }
# The plain torch wheel is a CUDA build that pulls gigabytes of NVIDIA libraries: take the CPU one
# when the index has it.
venv torch && { "$PEERS_DIR/torch/bin/pip" install -q "torch==2.13.0+cpu" numpy 2>/dev/null \
    || "$PEERS_DIR/torch/bin/pip" install -q torch numpy; } || { say "torch did not install"; failed=1; }
venv mpi && "$PEERS_DIR/mpi/bin/pip" install -q mpi4py numpy || { say "mpi4py did not install (is OpenMPI's libopenmpi-dev there?)"; failed=1; }
say "installed in $PEERS_DIR"
exit $failed
