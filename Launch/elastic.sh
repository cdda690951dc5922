#!/usr/bin/env bash
# Runs a training job on several machines and, when it fails because a machine died or dropped
# off the network, restarts it from the newest checkpoint on the machines that still answer,
# with the world size they give: in the spirit of torchrun's --max-restarts and Horovod's
# --host-discovery-script. dptrain's trajectory does not depend on the world size, so the run
# that lost a machine goes on along the curve of one that never did (up to float rounding).
#
#   Launch/elastic.sh [--hosts H1:SLOTS,H2:SLOTS,...] [--discover COMMAND] [--min-hosts N]
#                     [--max-restarts N] [--startup-timeout S] -- TRAIN ARGUMENTS (with --checkpoint-dir DIR)
#
#   Launch/elastic.sh --hosts node01:1,node02:1,node03:1 --min-hosts 2 -- --config Configs/cnn.yaml --checkpoint-dir ckpt
#
# --hosts       the machines, as Launch/cluster.sh takes them (default: $DPTRAIN_HOSTS)
# --discover    a command that prints the machines still usable, one host[:slots] a line
#               (default: those of the list that answer `$AGENT HOST true` within 10 s, where
#               AGENT is mpirun's launch agent, $OMPI_MCA_plm_rsh_agent, else ssh, and, when
#               DPTRAIN_IFACE names the data network, reach this machine's address on it: a
#               machine that answers ssh but whose data network is down could never call mpirun
#               back; each machine left out is named with the reason)
# --min-hosts   stop, saying why, when fewer machines than this remain (default 1)
# --max-restarts  give up after this many restarts (default 3)
# --startup-timeout  end a run whose first step has not come this many seconds after mpirun
#               started, and treat it as a failed start (default: DPTRAIN_STARTUP_TIMEOUT, else
#               120; see Launch/common.sh)
#
# Each run is Launch/cluster.sh with the train arguments, plus --resume once the checkpoint
# directory holds a checkpoint; set training.checkpoint every_steps so a lost machine costs few
# steps, and training.collective_timeout so a machine that drops off the network is noticed
# soon. It restarts after a failure (any non-zero status but 75: a failed start, 69, too); it
# does not after exit 75 (stopped by a signal, checkpoint written: the scheduler asked the job
# to stop; this script passes SIGTERM and Ctrl-C on to the job). A job that fails again at the
# same checkpoint with every machine answering is not a lost machine, and is not restarted.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/common.sh"

hosts=${DPTRAIN_HOSTS:-}; discover=""; min_hosts=1; max_restarts=3
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    case $1 in
        --hosts) hosts=$2; shift ;;
        --discover) discover=$2; shift ;;
        --min-hosts) min_hosts=$2; shift ;;
        --max-restarts) max_restarts=$2; shift ;;
        --startup-timeout) export DPTRAIN_STARTUP_TIMEOUT=$2; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 0 ;;
        *) die "unknown option '$1' (see Launch/elastic.sh --help)" ;;
    esac
    shift
done
[ "${1:-}" = "--" ] && shift
[ -n "$hosts" ] || die "name the machines: --hosts node01:1,node02:1 (or DPTRAIN_HOSTS)"
[[ $min_hosts =~ ^[1-9][0-9]*$ ]] || die "--min-hosts must be a positive whole number, got '$min_hosts'"
[[ $max_restarts =~ ^[0-9]+$ ]] || die "--max-restarts must be a whole number, got '$max_restarts'"
[[ ${DPTRAIN_STARTUP_TIMEOUT:-120} =~ ^[0-9]+$ ]] \
    || die "--startup-timeout (DPTRAIN_STARTUP_TIMEOUT) must be a whole number of seconds (0: no limit), got '$DPTRAIN_STARTUP_TIMEOUT'"
checkpoints=""
args=("$@")
for i in "${!args[@]}"; do
    [ "${args[$i]}" = "--checkpoint-dir" ] && checkpoints=${args[$((i + 1))]:-}
done
[ -n "$checkpoints" ] || die "elastic restarts resume from checkpoints: pass --checkpoint-dir DIR among the train arguments"

# newest: the newest checkpoint file in the directory (empty if none).
newest() { ls "$checkpoints"/ckpt-step*.safetensors 2>/dev/null | sort | tail -1 || true; }

# data_address: this machine's IPv4 address on the data network DPTRAIN_IFACE (an address range
# such as 10.1.0.0/16, or an interface name; the first of a list), empty when unset or not found.
data_address() {
    local iface=${DPTRAIN_IFACE:-}
    iface=${iface%%,*}
    [ -n "$iface" ] || return 0
    if [[ $iface == */* ]]; then ip -o -4 addr show to "$iface" 2>/dev/null; else ip -o -4 addr show dev "$iface" 2>/dev/null; fi \
        | awk '{ split($4, a, "/"); print a[1]; exit }'
}

# alive: the machines of $hosts that are usable now (one that came back rejoins), as a host:slots list; says on stderr why
# each one left out is.
alive() {
    local found entry host
    if [ -n "$discover" ]; then
        found=$(bash -c "$discover" | awk 'NF { print ($1 ~ /:/ ? $1 : $1 ":1") }' | paste -sd, -)
        for entry in $(echo "$hosts" | tr ',' ' '); do
            [[ ",$found," == *",${entry%%:*}:"* ]] || say "elastic: leaving out ${entry%%:*}: --discover does not list it"
        done
    else
        local agent=${OMPI_MCA_plm_rsh_agent:-ssh -o BatchMode=yes -o ConnectTimeout=5} up=() answer address
        address=$(data_address)
        for entry in $(echo "$hosts" | tr ',' ' '); do
            host=${entry%%:*}
            if [ "$host" = localhost ]; then up+=("$entry"); continue; fi
            if ! answer=$(timeout 10 $agent "$host" true 2>&1); then
                say "elastic: leaving out $host: the launch agent cannot reach it (${answer:-no answer in 10 s})"
                continue
            fi
            if [ -n "$address" ]; then
                # A refusal from this machine counts as an answer: the data network carries it.
                answer=$(timeout 15 $agent "$host" "timeout 5 bash -c 'exec 3<>/dev/tcp/$address/9' 2>&1; echo exit=\$?" 2>&1 || true)
                if [[ $answer != *exit=0* && $answer != *refused* ]]; then
                    say "elastic: leaving out $host: it answers the launch agent but cannot reach this machine ($address)" \
                        "over the data network DPTRAIN_IFACE=$DPTRAIN_IFACE, so its daemon could never report back"
                    continue
                fi
            fi
            up+=("$entry")
        done
        found=$(IFS=,; echo "${up[*]}")
    fi
    echo "$found"
}

# run_job ARGS...: Launch/cluster.sh in the background, so that a SIGTERM or Ctrl-C given to this
# script reaches it as SIGTERM (the clean stop; a second one stops at once) and no restart follows.
stopping=0
run_job() {
    "$here/cluster.sh" "$@" &
    local child=$! status
    trap 'stopping=1; kill -TERM '"$child"' 2>/dev/null' TERM INT
    while true; do
        status=0
        wait "$child" || status=$?
        kill -0 "$child" 2>/dev/null || break
    done
    trap - TERM INT
    return $status
}

restarts=0 current=$hosts previous_checkpoint="none"
while true; do
    resume=()
    [ -n "$(newest)" ] && resume=(--resume)
    started_from=$(newest)
    say "elastic: running on $current${started_from:+ from $started_from}"
    status=0
    export DPTRAIN_HOSTS=$current
    run_job "${args[@]}" "${resume[@]}" || status=$?
    [ $stopping = 1 ] && { say "elastic: stopped on request (status $status)"; exit "$status"; }
    case $status in
        0) say "elastic: done after $restarts restart(s)"; exit 0 ;;
        75) say "elastic: the job was stopped by a signal after writing a checkpoint; not restarting"; exit 75 ;;
        "$STARTUP_FAILED") say "elastic: the job did not start within ${DPTRAIN_STARTUP_TIMEOUT:-120} s (a failed start)" ;;
    esac
    [ "$restarts" -lt "$max_restarts" ] || { say "elastic: the job failed (status $status); giving up after $restarts restart(s) (--max-restarts $max_restarts)"; exit "$status"; }
    found=$(alive)
    count=$(echo "$found" | tr ',' '\n' | grep -c . || true)
    if [ "$count" -lt "$min_hosts" ]; then
        say "elastic: the job failed (status $status) and only $count machine(s) answer (${found:-none}), fewer than --min-hosts $min_hosts; stopping"
        exit "$status"
    fi
    if [ "$found" = "$current" ] && [ "$(newest)" = "$previous_checkpoint" ]; then
        say "elastic: the job failed (status $status) again at the same checkpoint with every machine answering: not a lost machine; stopping (see its message above)"
        exit "$status"
    fi
    previous_checkpoint=$(newest)
    restarts=$((restarts + 1))
    say "elastic: the job failed (status $status); restart $restarts of $max_restarts on the $count machine(s) that answer: $found"
    current=$found
done
