#!/usr/bin/env bash
# Runs the tests that interrupt jobs (faults, signals, lost machines, elastic restarts) many times,
# at full speed and then with every process confined to one core, and counts the passes: a test
# that races the program's speed fails here long before it fails a user. Too long for CI (about
# 3 minutes a round here); run it after touching those tests or the code they exercise.
#
#   Launch/test-stability.sh [--rounds N] [--one-core-rounds M] [--filter REGEX]
#
# Defaults: 10 rounds, 3 on one core (taskset -c 0), filter
# "SeveralHosts|Preemption|killedRank|watchdogStops|slurm" (swift test --filter: type and function names).
# Builds as Launch/test.sh does; the summary line is
# "N passed, M failed".
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

rounds=10 one_core=3 filter="SeveralHosts|Preemption|killedRank|watchdogStops|slurm"
while [ $# -gt 0 ]; do
    case $1 in
        --rounds) rounds=$2; shift ;;
        --one-core-rounds) one_core=$2; shift ;;
        --filter) filter=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) die "unknown option '$1' (see Launch/test-stability.sh --help)" ;;
    esac
    shift
done
[[ $rounds =~ ^[0-9]+$ && $one_core =~ ^[0-9]+$ ]] || die "--rounds and --one-core-rounds take whole numbers"

ensure_deps
build_release
"$DPTRAIN_ROOT/Launch/fetch-mnist.sh" "$DPTRAIN_ROOT/data/mnist"
export DPTRAIN_TEST_DATA="$DPTRAIN_ROOT/data/mnist"
swift build --build-tests >&2 || die "swift build --build-tests failed"
logs=$(mktemp -d)
passed=0 failed=0
run_round() {  # run_round LABEL [taskset -c 0]
    local label=$1; shift
    say "$label: swift test --filter '$filter'${*:+ under $*}"
    if "$@" swift test --skip-build --filter "$filter" > "$logs/$label.log" 2>&1; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        say "$label FAILED ($logs/$label.log):"
        grep -E "✘|recorded an issue|error:" "$logs/$label.log" | head -20 >&2 || true
    fi
}
for i in $(seq 1 "$rounds"); do run_round "round-$i"; done
for i in $(seq 1 "$one_core"); do run_round "one-core-$i" taskset -c 0; done
echo "stability: $passed passed, $failed failed"
[ "$failed" = 0 ]
