#!/bin/sh
# tools/rig.sh: three "hosts" on one machine for trying zkutil across a network.
#
# Host N (1..3) is the network namespace zkrigN, address 10.77.0.N/24 on its eth0, joined
# to the others by the bridge zkrig0 (10.77.0.254 in the root namespace, so this shell can
# reach every host) through the veth pair zkrig-vN <-> eth0. Nothing else is touched: only
# these names and the rig's own range 10.77.0.0/24. Needs root (ip netns, tc).
#
#   tools/rig.sh up             create the rig (removing leftovers of an earlier one first)
#   tools/rig.sh down           remove it (namespaces, veths, bridge)
#   tools/rig.sh cut N          cut host N off (its veth down: every packet to or from it is lost)
#   tools/rig.sh heal N         undo cut N
#   tools/rig.sh delay N MS     add MS ms of latency each way to host N's traffic (0: none)
#   tools/rig.sh exec N CMD...  run CMD inside host N (`ip netns exec zkrigN CMD...`)
#   tools/rig.sh status         addresses and link state of every host
#
# A ZooKeeper member per host:
#   zkutil server start --nodes 3 --bind 10.77.0.1,10.77.0.2,10.77.0.3 \
#       --netns zkrig1,zkrig2,zkrig3 --state-file /tmp/rig.state
# The integration tests (tests/it/across_hosts.rs) drive the rig through this script.
set -eu

NET=10.77.0
BR=zkrig0
HOSTS="1 2 3"

host() {
    case "${1:-}" in
    1 | 2 | 3) ;;
    *) echo "rig.sh: host must be 1, 2 or 3, not '${1:-}'" >&2; exit 2 ;;
    esac
}

down() {
    for i in $HOSTS; do
        ip netns del "zkrig$i" 2>/dev/null || true
        ip link del "zkrig-v$i" 2>/dev/null || true
    done
    ip link del "$BR" 2>/dev/null || true
}

up() {
    down
    ip link add "$BR" type bridge
    ip addr add "$NET.254/24" dev "$BR"
    ip link set "$BR" up
    for i in $HOSTS; do
        ip netns add "zkrig$i"
        ip link add "zkrig-v$i" type veth peer name eth0 netns "zkrig$i"
        ip link set "zkrig-v$i" master "$BR" up
        ip -n "zkrig$i" addr add "$NET.$i/24" dev eth0
        ip -n "zkrig$i" link set eth0 up
        ip -n "zkrig$i" link set lo up
    done
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
up) up ;;
down) down ;;
cut) host "${1:-}"; ip link set "zkrig-v$1" down ;;
heal) host "${1:-}"; ip link set "zkrig-v$1" up ;;
delay)
    host "${1:-}"
    ms="${2:?rig.sh: delay N MS}"
    if [ "$ms" = 0 ]; then
        tc qdisc del dev "zkrig-v$1" root 2>/dev/null || true
        ip netns exec "zkrig$1" tc qdisc del dev eth0 root 2>/dev/null || true
    else
        tc qdisc replace dev "zkrig-v$1" root netem delay "${ms}ms"
        ip netns exec "zkrig$1" tc qdisc replace dev eth0 root netem delay "${ms}ms"
    fi
    ;;
exec) host "${1:-}"; ns="zkrig$1"; shift; exec ip netns exec "$ns" "$@" ;;
status)
    for i in $HOSTS; do
        printf 'host %s (zkrig%s): ' "$i" "$i"
        ip -n "zkrig$i" -br addr show dev eth0 2>/dev/null || echo "absent"
    done
    ;;
*) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
