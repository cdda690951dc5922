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

# Builds the release binary (incremental) and sets DPTRAIN_BIN to it. The build targets this
# machine's CPU; DPTRAIN_TARGET_CPU names an older one for a binary that must run elsewhere (see
# Package.swift: haswell for any AVX2 machine, empty for any x86-64).
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

# run_mpirun ARGS...: runs mpirun ARGS (a `dptrain train` job) and returns its exit status, turning
# a stop request into the one mpirun passes on intact. On SIGTERM or SIGINT mpirun itself kills its
# ranks a second later and exits 1, whatever they were doing; SIGUSR1 it forwards to every rank and
# then returns their status. So the first SIGTERM, SIGINT (Ctrl-C) or SIGUSR1 this script gets
# becomes SIGUSR1 for mpirun: the ranks finish their step, checkpoint and exit 75 (see `dptrain
# train --help`). A second one becomes SIGTERM (stop now). mpirun runs in a session of its own, so
# a Ctrl-C in the terminal reaches this script alone.
#
# Start-up limit: a job whose rank 0 has not finished its first step DPTRAIN_STARTUP_TIMEOUT
# seconds (default 120; 0: no limit) after mpirun started is ended, and run_mpirun returns 69
# (EX_UNAVAILABLE: a failed start). That is what happens when a machine answers ssh but its daemon
# cannot call mpirun back over the data network: mpirun would wait for it forever. mpirun's output
# passes through untouched; a copy is searched for the line rank 0 prints after its first step
# (DPTRAIN_ANNOUNCE_FIRST_STEP=1).
STARTUP_FAILED=69
run_mpirun() {
    local pid status stops=0 limit=${DPTRAIN_STARTUP_TIMEOUT:-120} watch timer=""
    [[ $limit =~ ^[0-9]+$ ]] || die "DPTRAIN_STARTUP_TIMEOUT must be a whole number of seconds (0: no limit), got '$limit'"
    watch=$(mktemp -d)
    if [ "$limit" -gt 0 ]; then
        mkfifo "$watch/stderr"
        # The copy outlives a stop signal sent to the whole process group (Ctrl-C reaches it ignored,
        # as any background command of a script): mpirun must not lose its stderr while it stops.
        (
            trap '' TERM
            exec tee >(grep -F --line-buffered "dptrain: first step done" > "$watch/started") < "$watch/stderr" >&2
        ) &
        setsid mpirun -x DPTRAIN_ANNOUNCE_FIRST_STEP=1 "$@" 2> "$watch/stderr" &
        pid=$!
        # The timer has no descriptor of ours open: it must not hold a caller's pipe open after we return.
        (
            trap 'kill $nap 2>/dev/null; exit 0' TERM
            sleep "$limit" & nap=$!
            wait $nap
            [ -s "$watch/started" ] && exit 0
            : > "$watch/timed-out"
            kill -TERM -- -"$pid"
            sleep 5
            kill -KILL -- -"$pid"
        ) < /dev/null > /dev/null 2>&1 &
        timer=$!
    else
        setsid mpirun "$@" &
        pid=$!
    fi
    forward() {
        stops=$((stops + 1))
        if [ $stops = 1 ]; then
            say "stopping: the ranks finish their step and checkpoint (again to stop at once)"
            kill -USR1 "$pid" 2>/dev/null
        else
            kill -TERM "$pid" 2>/dev/null
        fi
    }
    trap forward TERM INT USR1
    # wait returns early when a trapped signal arrives; wait again until mpirun has exited.
    while true; do
        status=0
        wait "$pid" || status=$?
        kill -0 "$pid" 2>/dev/null || break
    done
    trap - TERM INT USR1
    if [ -n "$timer" ]; then
        kill -TERM "$timer" 2>/dev/null || true
        wait "$timer" 2>/dev/null || true
        if [ -e "$watch/timed-out" ]; then
            say "error: no first step within DPTRAIN_STARTUP_TIMEOUT=$limit s of mpirun's start: ended the job." \
                "A machine whose daemon never called back (it answers the launch agent, but its data network" \
                "${DPTRAIN_IFACE:+($DPTRAIN_IFACE) }may be down), or a start-up slower than the limit (raise DPTRAIN_STARTUP_TIMEOUT)"
            status=$STARTUP_FAILED
        fi
    fi
    rm -rf "$watch"
    return $status
}
