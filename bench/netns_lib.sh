# SPDX-License-Identifier: MIT
# Four "hosts" for the ring's namespace runs (sourced by bench/netns_tbf.sh and
# tests/ring/ring_netns.sh): network namespaces ${tag}n1..4 joined by veth pairs on the bridge
# ${tag}br, addresses 10.99.0.1-4/24 on each one's eth0. Needs root and ip (bash).
#   netns_probe TAG             exits 77 (SKIP) when namespaces cannot be made here
#   netns_hosts TAG [TBF_RATE]  makes the four hosts; with a rate, every host's egress is
#                               capped with tbf (exits 77 when tc tbf is missing)
#   netns_cleanup TAG           removes them (safe to call twice; for an EXIT trap)
netns_skip() { echo "SKIP: $*"; exit 77; }

netns_probe() {
    [ "$(id -u)" = 0 ] || netns_skip "needs root to create network namespaces"
    command -v ip >/dev/null || netns_skip "needs 'ip' (apt-get install iproute2)"
    ip netns add "$1probe" 2>/dev/null || netns_skip "cannot create network namespaces here"
    ip netns del "$1probe"
}

netns_hosts() {
    local tag=$1 rate=${2:-} i
    ip link add "${tag}br" type bridge && ip link set "${tag}br" up || netns_skip "cannot create a bridge"
    for i in 1 2 3 4; do
        ip netns add "${tag}n$i"
        ip link add "${tag}v$i" type veth peer name eth0 netns "${tag}n$i"
        ip link set "${tag}v$i" master "${tag}br" && ip link set "${tag}v$i" up
        ip -n "${tag}n$i" addr add "10.99.0.$i/24" dev eth0
        ip -n "${tag}n$i" link set eth0 up && ip -n "${tag}n$i" link set lo up
        # Each host's one outgoing link. burst: a few ms at the rate (the timer's granularity).
        [ -z "$rate" ] || ip netns exec "${tag}n$i" tc qdisc add dev eth0 root tbf rate "$rate" \
            burst 1mb latency 20ms || netns_skip "tc tbf is not available here"
    done
}

netns_cleanup() {
    local tag=$1 i
    for i in 1 2 3 4; do
        ip link del "${tag}v$i" 2>/dev/null
        ip netns del "${tag}n$i" 2>/dev/null
    done
    ip link del "${tag}br" 2>/dev/null
}
