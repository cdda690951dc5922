#!/usr/bin/env bash
# Runs the test suite as other CPUs would see it, after Launch/test.sh (whose builds it reuses):
#
#  1. once under each OpenBLAS kernel set this CPU can run: SandyBridge (AVX), Haswell (AVX2 +
#     FMA) and, on an AVX-512 CPU, SkylakeX. OpenBLAS picks its kernels by CPU at run time
#     (OPENBLAS_CORETYPE overrides the pick), and they round differently: the Haswell kernels
#     compute the last rows of a product with another micro-kernel, so a row's value depends on
#     how many rows share its sgemm call. The tests say which results are the same bits on any
#     kernels and which agree to a stated tolerance; this shows it on every kernel set at hand.
#  2. the end-to-end tests against a release binary built for any AVX2 CPU (-target-cpu
#     haswell, in .build-haswell), whose engine takes the 256-bit tuning, as on a user's Zen 3
#     or Haswell-to-Alder-Lake machine (skipped, saying so, on a CPU without AVX2).
#
#   Launch/test-portability.sh            # both
#   Launch/test-portability.sh --kernels  # 1 only
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"

only_kernels=0
[ "${1:-}" = "--kernels" ] && only_kernels=1
[ "$(uname -m)" = x86_64 ] || { say "not an x86-64 machine: OpenBLAS's x86 kernel sets and -target-cpu haswell do not apply; nothing to run"; exit 0; }
flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]]; }

ensure_deps
build_release
"$DPTRAIN_ROOT/Launch/fetch-mnist.sh" "$DPTRAIN_ROOT/data/mnist"
export DPTRAIN_TEST_DATA="$DPTRAIN_ROOT/data/mnist"

kernels=()
has avx && kernels+=(SandyBridge)
has avx2 && has fma && kernels+=(Haswell)
has avx512f && has avx512bw && has avx512dq && has avx512vl && kernels+=(SkylakeX)
for core in "${kernels[@]}"; do
    say "swift test with OPENBLAS_CORETYPE=$core"
    OPENBLAS_CORETYPE=$core swift test
done
[ $only_kernels = 1 ] && exit 0

if has avx2 && has fma; then
    say "building for any AVX2 CPU (DPTRAIN_TARGET_CPU=haswell, in .build-haswell)"
    DPTRAIN_TARGET_CPU=haswell swift build -c release --product dptrain --scratch-path .build-haswell >&2 \
        || die "DPTRAIN_TARGET_CPU=haswell swift build -c release failed (see above)"
    bin="$DPTRAIN_ROOT/.build-haswell/release/dptrain"
    "$bin" --version
    say "end-to-end tests against $bin"
    DPTRAIN_BIN=$bin swift test --filter EndToEnd
else
    say "skipped the AVX2 build: this CPU has no AVX2 + FMA"
fi
