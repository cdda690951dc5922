#!/usr/bin/env bash
# Simulated cluster hosts on this machine: each "host" is a Linux network namespace with its own
# network stack and host name, joined to the others by a bridge, so mpirun takes exactly the path
# it takes on a cluster: it starts its daemons through a launch agent (in place of ssh), the ranks
# talk TCP between hosts, and the interface-selection options matter. Needs root, ip and tc.
#
#   Launch/simulate-hosts.sh run N [--rate RATE] [--slots K] [--cores-per-host C] [--agent-ignores-links] -- COMMAND...
#                                                                # up, COMMAND with the variables below, down
#   eval "$(Launch/simulate-hosts.sh up N [--rate RATE] [--slots K] [--cores-per-host C] [--agent-ignores-links])"
#                                                                # up, and set the variables in this shell
#   Launch/simulate-hosts.sh down                                # remove every host it made
#   Launch/simulate-hosts.sh status                              # what is up
#   Launch/simulate-hosts.sh alive                               # the hosts whose network answers (for elastic.sh --discover)
#
# e.g.  Launch/simulate-hosts.sh run 2 --rate 1gbit -- Launch/cluster.sh --epochs 1
#
# Hosts dpt-h1 ... dpt-hN at 10.77.0.1 ... (bridge dpt-br0 at 10.77.0.254, names in /etc/hosts).
# RATE (1gbit, 10gbit, 500mbit, ...) shapes each host's outgoing link with a token bucket (tc tbf;
# this kernel has no netem, so no added latency). The launch agent behaves like ssh: it fails for a
# host whose link is down; with --agent-ignores-links it reaches every host, as ssh over a separate
# management network would, so a host whose data link is down starts a daemon that never calls
# mpirun back (the case DPTRAIN_STARTUP_TIMEOUT ends). With --cores-per-host C each host is a
# machine of C cores of its own: host i's daemon and ranks are confined to cores (i-1)C ... iC-1
# (taskset), so a figure about what a second host buys means what it would on a cluster; refused
# when N x C exceeds this machine's cores. (The kernel's network work for the links is not
# confined: it runs on whichever core the packets arrive.) The variables it sets, which Launch/cluster.sh,
# Launch/elastic.sh, Benchmarks/hosts.sh and plain mpirun read:
#   DPTRAIN_HOSTS=dpt-h1:K,...,dpt-hN:K   K slots (ranks) per host, 1 unless --slots K
#   DPTRAIN_IFACE=10.77.0.0/24           the simulated network (btl and oob tcp_if_include)
#   DPTRAIN_BIND=none                    the hosts share this machine's cores: binding each
#                                        host's rank 0 to core 0 would stack them on one core
#   OMPI_MCA_plm_rsh_agent               Launch/netns-agent.sh, which runs the daemon in the host
#   OMPI_MCA_btl=tcp,self                TCP between ranks, never shared memory
#   OMPI_MCA_plm_rsh_no_tree_spawn=1     mpirun starts every daemon itself
#   DPTRAIN_SIM_AGENT_IGNORES_LINKS=1    with --agent-ignores-links (read by netns-agent.sh)
#   DPTRAIN_SIM_CORES_PER_HOST=C         with --cores-per-host C (read by netns-agent.sh)
#
# It touches only what it made: namespaces, links and /etc/hosts lines are recorded in
# /run/dptrain-simulate-hosts and removed by `down`; `up` interrupted (Ctrl-C) removes what it
# had made, and `run` removes everything when COMMAND ends, fails or is interrupted.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
say() { printf 'simulate-hosts: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

state=/run/dptrain-simulate-hosts
subnet=10.77.0
bridge=dpt-br0
marker="# dptrain simulate-hosts"

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit "${1:-2}"; }

require() {
    [ "$(id -u)" = 0 ] || die "must run as root (it creates network namespaces and links); try: sudo $0 $*"
    command -v ip >/dev/null || die "'ip' (iproute2) is not installed: apt-get install iproute2"
    command -v tc >/dev/null || die "'tc' (iproute2) is not installed: apt-get install iproute2"
    command -v unshare >/dev/null || die "'unshare' (util-linux) is not installed"
}

# record KIND NAME: remember something this script made, so down removes exactly that.
record() { mkdir -p "$state"; echo "$1 $2" >> "$state/made"; }

down() {
    [ -f "$state/made" ] || { say "no simulated hosts are up"; return 0; }
    # Newest first: namespaces (their veth ends go with them), then links, then /etc/hosts lines.
    tac "$state/made" | while read -r kind name; do
        case $kind in
            netns)
                # Processes left in the host (a daemon mpirun lost) go with it.
                pids=$(ip netns pids "$name" 2>/dev/null || true)
                [ -n "$pids" ] && kill -9 $pids 2>/dev/null
                ip netns delete "$name" 2>/dev/null || true ;;
            link) ip link delete "$name" 2>/dev/null || true ;;
            hosts) sed -i "/ $name $marker\$/d" /etc/hosts ;;
        esac
    done
    rm -rf "$state"
    say "removed the simulated hosts"
}

# alive: the hosts whose network stack answers a TCP connection from the bridge (a refusal
# counts: the host is there; silence or "no route" means its link is down), one a line.
alive() {
    [ -f "$state/made" ] || return 0
    local host address answer
    for host in $(awk '$1 == "netns" { print $2 }' "$state/made"); do
        address=$subnet.${host#dpt-h}
        answer=$(timeout 2 bash -c "exec 3<>/dev/tcp/$address/9" 2>&1) && { echo "$host"; continue; }
        [[ $answer == *"refused"* ]] && echo "$host"
    done
    return 0
}

status() {
    [ -f "$state/made" ] || { say "no simulated hosts are up"; return 0; }
    cat "$state/env"
    ip netns list | grep '^dpt-h' || true
}

# up N RATE IGNORE_LINKS SLOTS CORES: makes the hosts; prints the variables (export lines) on stdout.
up() {
    local n=$1 rate=$2 ignore_links=$3 slots=$4 cores=$5 i
    [[ $n =~ ^[1-9][0-9]*$ ]] && [ "$n" -le 200 ] || die "N must be a whole number from 1 to 200, got '$n'"
    if [ -n "$cores" ] && [ $((n * cores)) -gt "$(nproc)" ]; then
        die "$n hosts x $cores core(s) each is $((n * cores)) cores, and this machine has $(nproc): give fewer hosts or fewer cores per host"
    fi
    [ -f "$state/made" ] && die "simulated hosts are already up ($(grep -c '^netns' "$state/made") of them): run '$0 down' first"
    if [ -n "$rate" ]; then
        [[ $rate =~ ^[0-9]+(\.[0-9]+)?[kmg]?bit$ ]] || die "--rate must look like 1gbit, 10gbit or 500mbit, got '$rate'"
    fi
    ip link show "$bridge" >/dev/null 2>&1 && die "a link named $bridge exists that this script did not record; remove it or pick another machine"
    trap 'say "interrupted: removing what was made"; down; exit 130' INT TERM
    trap 'status=$?; [ $status = 0 ] || { say "failed: removing what was made"; down; }' EXIT
    mkdir -p "$state"; : > "$state/made"
    ip link add "$bridge" type bridge; record link "$bridge"
    ip addr add "$subnet.254/24" dev "$bridge"
    ip link set "$bridge" up
    for i in $(seq 1 "$n"); do
        local host=dpt-h$i veth=dpt-v$i
        ip netns add "$host"; record netns "$host"
        ip link add "$veth" type veth peer name eth0 netns "$host"; record link "$veth"
        ip link set "$veth" master "$bridge" up
        ip -n "$host" addr add "$subnet.$i/24" dev eth0
        ip -n "$host" link set eth0 up
        ip -n "$host" link set lo up
        if [ -n "$rate" ]; then
            ip netns exec "$host" tc qdisc add dev eth0 root tbf rate "$rate" burst 256kb latency 100ms
        fi
        echo "$subnet.$i $host $marker" >> /etc/hosts; record hosts "$host"
    done
    local hosts
    hosts=$(seq 1 "$n" | sed "s/^/dpt-h/; s/\$/:$slots/" | paste -sd, -)
    cat > "$state/env" <<EOF
export DPTRAIN_HOSTS=$hosts
export DPTRAIN_IFACE=$subnet.0/24
export DPTRAIN_BIND=none
export OMPI_MCA_plm_rsh_agent=$here/netns-agent.sh
export OMPI_MCA_btl=tcp,self
export OMPI_MCA_plm_rsh_no_tree_spawn=1
EOF
    if [ "$ignore_links" = 1 ]; then echo "export DPTRAIN_SIM_AGENT_IGNORES_LINKS=1" >> "$state/env"; fi
    if [ -n "$cores" ]; then echo "export DPTRAIN_SIM_CORES_PER_HOST=$cores" >> "$state/env"; fi
    trap - INT TERM EXIT
    say "$n simulated host(s) up: dpt-h1 ... dpt-h$n at $subnet.1 ... $subnet.$n${rate:+, links shaped to $rate}${cores:+, $cores core(s) each}"
    cat "$state/env"
}

cmd=${1:-}; [ $# -gt 0 ] && shift
case $cmd in
    up|run)
        require "$cmd"
        [ $# -ge 1 ] || usage
        n=$1; shift; rate=""; ignore_links=0; slots=1; cores=""
        while [ $# -gt 0 ] && [ "$1" != "--" ]; do
            case $1 in
                --rate) [ $# -ge 2 ] || die "--rate needs a value (e.g. 1gbit)"; rate=$2; shift ;;
                --agent-ignores-links) ignore_links=1 ;;
                --slots) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--slots needs a whole number of ranks per host (e.g. 2)"; slots=$2; shift ;;
                --cores-per-host) [[ ${2:-} =~ ^[1-9][0-9]*$ ]] || die "--cores-per-host needs a whole number of cores (e.g. 1)"; cores=$2; shift ;;
                *) die "unknown option '$1' (see $0 --help)" ;;
            esac
            shift
        done
        if [ "$cmd" = up ]; then up "$n" "$rate" "$ignore_links" "$slots" "$cores"; exit 0; fi
        [ "${1:-}" = "--" ] && shift
        [ $# -ge 1 ] || die "run needs a command after --"
        up "$n" "$rate" "$ignore_links" "$slots" "$cores" > /dev/null
        trap 'down' EXIT
        # shellcheck disable=SC1091
        source "$state/env"
        # The command runs in the background so a SIGTERM or Ctrl-C here reaches it as SIGTERM
        # (cluster.sh then stops its job cleanly); the hosts go once it has ended.
        "$@" &
        child=$!
        trap 'say "interrupted: removing the hosts once the command has stopped"; kill -TERM $child 2>/dev/null' INT TERM
        while true; do
            status=0
            wait "$child" || status=$?
            kill -0 "$child" 2>/dev/null || break
        done
        exit $status
        ;;
    down) require down; down ;;
    status) status ;;
    alive) alive ;;
    -h|--help|help) usage 0 ;;
    *) usage ;;
esac
