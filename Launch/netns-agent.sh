#!/bin/sh
# mpirun's launch agent for simulated hosts (Launch/simulate-hosts.sh), in place of ssh: mpirun
# calls it as `netns-agent.sh HOST COMMAND` and it runs COMMAND (the daemon that starts that
# host's ranks) inside the network namespace HOST, with HOST as its host name (its own UTS
# namespace), as ssh would run it on that machine.
host=$1
shift
[ -n "$host" ] && [ $# -gt 0 ] || { echo "usage: $0 HOST COMMAND..." >&2; exit 2; }
exec ip netns exec "$host" unshare --uts sh -c 'hostname "$0" && eval "$*"' "$host" "$@"
