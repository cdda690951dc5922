# Shared by the benchmark drivers (sourced): Launch/common.sh's set-up, then what measuring needs.

source "$(dirname "${BASH_SOURCE[0]}")/../Launch/common.sh"
BENCH_DIR="$DPTRAIN_ROOT/Benchmarks"
PEERS_DIR=${PEERS_DIR:-$HOME/.cache/dptrain-peers}

# bench_setup OUT: dependencies, the release build (none when DPTRAIN_BIN names a binary), MNIST
# in data/mnist, and the floor program (Benchmarks/floor/floor.c) built into OUT. Sets DATA,
# CORES and FLOOR_BIN.
bench_setup() {
    ensure_deps
    ensure_binary
    "$DPTRAIN_ROOT/Launch/fetch-mnist.sh" "$DPTRAIN_ROOT/data/mnist"
    DATA="$DPTRAIN_ROOT/data/mnist"
    CORES=$(nproc)
    mkdir -p "$1"
    FLOOR_BIN="$1/floor"
    mpicc -O2 "$BENCH_DIR/floor/floor.c" -o "$FLOOR_BIN" $(pkg-config --cflags --libs openblas) || die "mpicc could not build the floor program"
    [ -x "$PEERS_DIR/tf/bin/python" ] || say "note: no peers in $PEERS_DIR (Benchmarks/peers/setup.sh installs them); their columns stay empty"
}

# peer VENV SCRIPT ARGS...: runs a peer's script from Benchmarks/peers with its virtual
# environment's Python; prints its JSON line, nothing when the peer is not installed or fails.
peer() {
    local venv=$1 script=$2; shift 2
    [ -x "$PEERS_DIR/$venv/bin/python" ] || return 0
    (cd "$BENCH_DIR/peers" && "$PEERS_DIR/$venv/bin/python" "$script" --data-dir "$DATA" "$@" 2>/dev/null | tail -1) || true
}

# json_field FIELD: the field of the JSON object on stdin's last line (nothing if absent).
json_field() { python3 -c "import json,sys; print(json.loads(sys.stdin.readlines()[-1])[sys.argv[1]])" "$1" 2>/dev/null || true; }
