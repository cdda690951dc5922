#!/usr/bin/env bash
# Trains across several machines with mpirun (OpenMPI), one rank per slot.
#
#   DPTRAIN_HOSTFILE=Launch/hostfile.example Launch/cluster.sh --config Configs/mlp.yaml
#   DPTRAIN_HOSTS=node01:16,node02:16 Launch/cluster.sh --epochs 5
#   DPTRAIN_HOSTS=localhost:2 Launch/cluster.sh              # the same line on one machine
#   DPTRAIN_BIN=/shared/dptrain Launch/cluster.sh            # a binary already built (on a shared file system): no build step
#
# The options that matter (each can be overridden through the variables below):
#   --map-by ppr:N:node  N ranks per machine (DPTRAIN_RANKS_PER_NODE; default: the slots)
#   --bind-to core       pin each rank to its cores (PE=threads of them), so ranks do not migrate
#   -x VAR               export OPENBLAS_NUM_THREADS and DPTRAIN_DATA to every rank
#   --mca btl_tcp_if_include IFACE, --mca oob_tcp_if_include IFACE
#                        the network interface to use between machines (DPTRAIN_IFACE, e.g. eth0)
#   --mca btl_tcp_links 2  two TCP connections per peer (DPTRAIN_TCP_LINKS)
# Threads per rank: DPTRAIN_THREADS (default 1); ranks x threads should equal each machine's cores.
set -euo pipefail
source "$(dirname "$0")/common.sh"
cd "$DPTRAIN_ROOT"
ensure_deps
ensure_binary

args=()
if [ -n "${DPTRAIN_HOSTFILE:-}" ]; then
    [ -f "$DPTRAIN_HOSTFILE" ] || die "DPTRAIN_HOSTFILE=$DPTRAIN_HOSTFILE: no such file"
    args+=(--hostfile "$DPTRAIN_HOSTFILE")
    ranks=$(awk '!/^#/ && NF { for (i = 2; i <= NF; i++) if ($i ~ /^slots=/) { split($i, s, "="); n += s[2] } } END { print n + 0 }' "$DPTRAIN_HOSTFILE")
elif [ -n "${DPTRAIN_HOSTS:-}" ]; then
    args+=(-H "$DPTRAIN_HOSTS")
    ranks=$(echo "$DPTRAIN_HOSTS" | tr ',' '\n' | awk -F: '{ n += ($2 == "" ? 1 : $2) } END { print n }')
else
    die "set DPTRAIN_HOSTFILE (see Launch/hostfile.example) or DPTRAIN_HOSTS=host1:slots,host2:slots"
fi
[ "$ranks" -ge 1 ] || die "no slots found in the host list"
threads=${DPTRAIN_THREADS:-1}
export OPENBLAS_NUM_THREADS=$threads
args+=(-np "$ranks" --bind-to "${DPTRAIN_BIND:-core}" -x OPENBLAS_NUM_THREADS)
# Each rank gets as many cores as it runs threads (PE), N ranks per machine when asked (ppr).
map=${DPTRAIN_RANKS_PER_NODE:+ppr:$DPTRAIN_RANKS_PER_NODE:node}
[ "$threads" -gt 1 ] && map="${map:-slot}:PE=$threads"
[ -n "$map" ] && args+=(--map-by "$map")
[ -n "${DPTRAIN_DATA:-}" ] && args+=(-x DPTRAIN_DATA)
[ -n "${DPTRAIN_IFACE:-}" ] && args+=(--mca btl_tcp_if_include "$DPTRAIN_IFACE" --mca oob_tcp_if_include "$DPTRAIN_IFACE")
# Two TCP connections to each peer (DPTRAIN_TCP_LINKS): through one, OpenMPI's large messages
# reached about half a shaped link's rate (the CNN's 2.8 MB allreduce on 2 hosts at 1 Gb/s: 42 ms
# with one, 23 ms with two, the rate allows 22; docs/PERFORMANCE.md). Only the tcp BTL reads it.
args+=(--mca btl_tcp_links "${DPTRAIN_TCP_LINKS:-2}")
# mpirun notices a machine that died or dropped off the network through TCP keepalive on its
# connection to that machine's daemon: OpenMPI waits 300 s of silence and 9 probes 20 s apart
# (8 minutes), during which it cannot end the job. 10 s and 3 probes 2 s apart (DPTRAIN_KEEPALIVE
# = "time interval probes") end it about 16 s after a machine falls silent.
read -r keep_time keep_intvl keep_probes <<< "${DPTRAIN_KEEPALIVE:-10 2 3}"
args+=(--mca oob_tcp_keepalive_time "$keep_time" --mca oob_tcp_keepalive_intvl "$keep_intvl" --mca oob_tcp_keepalive_probes "$keep_probes")
# A rank with one machine to itself sends its gradient from a communication thread while its
# workers compute on every core; OpenMPI's waits spin, so the waiting thread yields its core to
# them (DPTRAIN_YIELD_WHEN_IDLE=0 to spin). Measured, CNN on 2 hosts of one core at 10 Gb/s: the
# step 7.9-8.1 ms with it, 8.4-10.1 without (docs/PERFORMANCE.md).
args+=(--mca mpi_yield_when_idle "${DPTRAIN_YIELD_WHEN_IDLE:-1}")
[ "$(id -u)" = 0 ] && args+=(--allow-run-as-root)
say "mpirun ${args[*]} $DPTRAIN_BIN train $*"
run_mpirun "${args[@]}" "$DPTRAIN_BIN" train "$@"
