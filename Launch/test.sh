#!/usr/bin/env bash
# Runs the test suite from a fresh machine: installs what is missing, builds the release binary
# (the end-to-end tests launch it under mpirun), makes sure MNIST is in data/mnist, then runs
# `swift test`. Extra arguments pass through to `swift test` (e.g. --filter IDX).
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

ensure_deps
build_release
"$DPTRAIN_ROOT/Launch/fetch-mnist.sh" "$DPTRAIN_ROOT/data/mnist"
export DPTRAIN_TEST_DATA="$DPTRAIN_ROOT/data/mnist"
say "swift test $*"
swift test "$@"
