#!/usr/bin/env bash
# mpirun's launch agent for simulated hosts (Launch/simulate-hosts.sh), in place of ssh: mpirun
# calls it as `netns-agent.sh HOST COMMAND` and it runs COMMAND (the daemon that starts that
# host's ranks) inside the network namespace HOST, with HOST as its host name (its own UTS
# namespace), as ssh would run it on that machine.
#
# Like ssh, it first connects to the host over the network, and fails (status 255, "No route to
# host") when the host's link is down. With DPTRAIN_SIM_AGENT_IGNORES_LINKS=1 (simulate-hosts.sh
# --agent-ignores-links) it reaches every host regardless, as ssh does on a cluster whose management
# network is not the data network: then a host whose data link is down still starts its daemon,
# which can never call mpirun back. With DPTRAIN_SIM_CORES_PER_HOST=C (simulate-hosts.sh
# --cores-per-host C) the daemon, and so every rank it starts, runs on host i's cores only:
# (i-1)C ... iC-1.
host=$1
shift
[ -n "$host" ] && [ $# -gt 0 ] || { echo "usage: $0 HOST COMMAND..." >&2; exit 2; }
if [ "${DPTRAIN_SIM_AGENT_IGNORES_LINKS:-0}" != 1 ]; then
    address=$(getent hosts "$host" | awk '{ print $1; exit }')
    [ -n "$address" ] || { echo "ssh: Could not resolve hostname $host: Name or service not known" >&2; exit 255; }
    # A refusal means the host's network stack answered: reachable. Silence or no route: down.
    answer=$(timeout 5 bash -c "exec 3<>/dev/tcp/$address/22" 2>&1)
    if [ $? != 0 ] && [[ $answer != *refused* ]]; then
        echo "ssh: connect to host $host port 22: No route to host" >&2
        exit 255
    fi
fi
confine=()
if [ -n "${DPTRAIN_SIM_CORES_PER_HOST:-}" ]; then
    index=${host#dpt-h}
    first=$(( (index - 1) * DPTRAIN_SIM_CORES_PER_HOST ))
    confine=(taskset -c "$first-$((first + DPTRAIN_SIM_CORES_PER_HOST - 1))")
fi
exec "${confine[@]}" ip netns exec "$host" unshare --uts sh -c 'hostname "$0" && eval "$*"' "$host" "$@"
