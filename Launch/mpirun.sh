#!/usr/bin/env bash
# Runs a command under mpirun with this machine's options (see mpirun_args in common.sh):
#   Launch/mpirun.sh [-np] RANKS COMMAND [ARGS...]
# e.g. Launch/mpirun.sh 4 .build/release/dptrain train --epochs 1  (mpirun's own -np/-n also works)
set -euo pipefail
source "$(dirname "$0")/common.sh"
if [ "${1:-}" = "-np" ] || [ "${1:-}" = "-n" ]; then shift; fi
[ $# -ge 2 ] || die "usage: Launch/mpirun.sh [-np] RANKS COMMAND [ARGS...]"
[[ $1 =~ ^[1-9][0-9]*$ ]] || die "RANKS must be a positive whole number, got '$1'"
ranks=$1; shift
mpirun_args "$ranks"
exec mpirun "${MPIRUN_ARGS[@]}" "$@"
