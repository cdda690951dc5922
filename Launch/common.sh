# Shared by the Launch/ scripts (sourced, not run): dependency checks, the release build and the
# mpirun options this machine needs. Everything a user would otherwise have to remember lives here.

DPTRAIN_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
APT_PACKAGES="libopenmpi-dev openmpi-bin libopenblas-dev zlib1g-dev pkg-config"

say() { printf 'dptrain: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# Installs OpenMPI, OpenBLAS and zlib when one is missing: with apt-get when root, otherwise
# prints the exact command to run.
ensure_deps() {
    local missing=0
    command -v swift >/dev/null || die "swift is not on PATH; install Swift 6 (https://swift.org/install) first"
    command -v mpirun >/dev/null || missing=1
    command -v pkg-config >/dev/null || missing=1
    if [ $missing = 0 ]; then
        pkg-config --exists ompi-c openblas zlib 2>/dev/null || missing=1
    fi
    [ $missing = 0 ] && return 0
    if [ "$(id -u)" = 0 ]; then
        say "installing $APT_PACKAGES (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2 || die "apt-get update failed"
        apt-get install -y -qq $APT_PACKAGES >&2 || die "apt-get install $APT_PACKAGES failed"
    else
        die "OpenMPI, OpenBLAS or zlib is missing. Install them with:
    sudo apt-get install -y $APT_PACKAGES
then run this command again."
    fi
}

# Builds the release binary (incremental) and sets DPTRAIN_BIN to it. By default the compiler
# targets this machine's CPU (AVX2/AVX-512 for the element-wise loops); set DPTRAIN_TARGET_CPU=
# (empty) for a binary that must also run on older CPUs, e.g. cluster nodes unlike this one.
export DPTRAIN_TARGET_CPU=${DPTRAIN_TARGET_CPU-native}
build_release() {
    say "building (swift build -c release)"
    (cd "$DPTRAIN_ROOT" && swift build -c release >&2) || die "swift build -c release failed (see above)"
    DPTRAIN_BIN=$(cd "$DPTRAIN_ROOT" && swift build -c release --show-bin-path)/dptrain
    export DPTRAIN_BIN
}

# DPTRAIN_BIN when set (a binary already built, for instance on a shared file system), else the
# release build made here; dies when it is not an executable.
ensure_binary() {
    if [ -z "${DPTRAIN_BIN:-}" ]; then build_release; fi
    [ -x "$DPTRAIN_BIN" ] || die "DPTRAIN_BIN=$DPTRAIN_BIN is not an executable"
}

# The mpirun options for this machine: --allow-run-as-root when root, --oversubscribe when more
# ranks than cores, OPENBLAS_NUM_THREADS so ranks x threads = cores (dptrain runs that many worker
# threads per rank), and each rank bound to as many cores as it has threads (no binding for one
# rank). Usage: mpirun_args RANKS -> MPIRUN_ARGS array.
mpirun_args() {
    local ranks=$1 cores
    cores=$(nproc)
    MPIRUN_ARGS=(-np "$ranks")
    [ "$(id -u)" = 0 ] && MPIRUN_ARGS+=(--allow-run-as-root)
    if [ "$ranks" -gt "$cores" ]; then
        MPIRUN_ARGS+=(--oversubscribe)
        say "note: $ranks ranks on $cores cores is oversubscribed: fine for tests, slow for training"
    fi
    local threads=${OPENBLAS_NUM_THREADS:-$(( cores / ranks > 0 ? cores / ranks : 1 ))}
    if [ "$ranks" -eq 1 ]; then
        MPIRUN_ARGS+=(--bind-to none)
    elif [ "$threads" -gt 1 ]; then
        MPIRUN_ARGS+=(--map-by "slot:PE=$threads" --bind-to core)
    fi
    MPIRUN_ARGS+=(-x "OPENBLAS_NUM_THREADS=$threads")
    [ -n "${DPTRAIN_DATA:-}" ] && MPIRUN_ARGS+=(-x DPTRAIN_DATA)
    # mpirun hands the ranks a pipe, not the terminal: tell rank 0 that its output ends up on one,
    # so it draws the progress bar.
    [ -t 2 ] && MPIRUN_ARGS+=(-x DPTRAIN_STDERR_IS_TERMINAL=1)
    return 0
}

# What the benchmark scripts share: dependencies, the release build, MNIST in data/mnist, and the
# floor program (../shared/floor/ddp.c) built into OUT when it and mpicc are there.
# Usage: bench_setup OUT -> DATA, CORES, FLOOR_BIN (empty without the floor).
bench_setup() {
    ensure_deps
    build_release
    "$DPTRAIN_ROOT/Launch/fetch-mnist.sh" "$DPTRAIN_ROOT/data/mnist"
    DATA="$DPTRAIN_ROOT/data/mnist"
    CORES=$(nproc)
    mkdir -p "$1"
    local floor_src="$DPTRAIN_ROOT/../shared/floor/ddp.c"
    FLOOR_BIN=""
    if [ -f "$floor_src" ] && command -v mpicc >/dev/null; then
        FLOOR_BIN="$1/ddp-floor"
        mpicc -O2 "$floor_src" -o "$FLOOR_BIN" $(pkg-config --cflags --libs openblas) || FLOOR_BIN=""
    fi
    PEERS_DIR=${PEERS_DIR:-$HOME/.cache/dptrain-peers}
}
