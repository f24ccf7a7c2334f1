#!/bin/bash
# SPDX-License-Identifier: MIT
# A ring of 4 "hosts": network namespaces joined by veth pairs and a bridge (10.99.0.1-4,
# addresses only inside them), one rank each with its own RING_CONFIG from
# `ringrun --print-configs`. Cases: clean; 3% random loss (nft); a 200 Mbit/s tbf cap; a
# delaying relay between ranks 1 and 2 (no netem here); a relay that flips a bit with
# CRC32C on; `ss -K` killing a live ring connection; a port refused with a TCP reset.
# Data cases must finish bitwise right; fault cases must give every rank the documented
# error within 2x the deadline. Needs root, ip, tc, nft, ss: otherwise SKIP (77).
set -u
RINGRUN_BIN=${RINGRUN_BIN:-../tools/ringrun}
RING_CHAOS=${RING_CHAOS:-./ring/ring-chaos}
here=$(cd "$(dirname "$0")" && pwd)
tag=rc$$
. "${abs_top_srcdir:-$here/../..}/bench/netns_lib.sh"
skip() { netns_skip "$@"; }
for t in tc nft ss python3; do command -v $t >/dev/null || skip "needs '$t' (apt-get install iproute2 nftables)"; done
netns_probe $tag

d=$(mktemp -d /tmp/ringnetns.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    netns_cleanup $tag
    rm -rf "$d"
}
trap cleanup EXIT INT TERM
netns_hosts $tag
ns() { local i=$1; shift; ip netns exec ${tag}n$i "$@"; }
"$RINGRUN_BIN" --print-configs --hosts 10.99.0.1,10.99.0.2,10.99.0.3,10.99.0.4 --base-port 29500 --out "$d/cfg" >/dev/null || exit 1

# start_ring LABEL ARGS...: one rank per namespace; ENV holds extra variables.
ENV=()
start_ring() {
    local label=$1; shift
    pids=()
    for r in 0 1 2 3; do
        local cfg=${CFG_OVERRIDE[$r]:-$d/cfg/rank-$r.json}
        # timeout: a case that goes wrong fails in bounded time instead of hanging the suite.
        ip netns exec ${tag}n$((r + 1)) timeout -s KILL 300 env RING_CONFIG="$cfg" RING_LOG_LEVEL=error RING_OP_TIMEOUT_MS=${OPMS:-5000} \
            RING_CONNECT_TIMEOUT_MS=${CONNMS:-20000} "${ENV[@]}" "$RING_CHAOS" "$@" >"$d/$label.$r" 2>&1 &
        pids+=($!)
    done
}
wait_ring() { local rc=0; for p in "${pids[@]}"; do wait "$p" || rc=1; done; pids=(); return $rc; }
CFG_OVERRIDE=()

# Data cases run at the default operation deadline (30 s), as users do: under 3% loss a
# connection that has no RTT sample yet retransmits after 1 s, then 2 s, then 4 s, so a
# 5 s deadline can expire on a healthy ring (seen once in CI, at the third all-reduce).
data_case() { # LABEL DESCRIPTION ARGS...: every rank must print DONE
    local label=$1 what=$2; shift 2
    local t0=$(date +%s.%N)
    OPMS=${DATA_OPMS:-30000} start_ring "$label" "$@"
    if ! wait_ring; then echo "FAIL $label:"; cat "$d/$label".*; return 1; fi
    local n=$(cat "$d/$label".* | grep -c '^DONE')
    [ "$n" = 4 ] || { echo "FAIL $label: $n of 4 ranks done"; cat "$d/$label".*; return 1; }
    printf "%-40s 4 ranks, results bitwise right, %.1f s\n" "$what" "$(echo "$(date +%s.%N) - $t0" | bc)"
}

# fault_case LABEL WANT LIMIT_MS: every rank's STATUS must be in WANT (a regex)
fault_case_check() {
    local label=$1 want=$2 limit=$3 t0=$4 fail=0
    for r in 0 1 2 3; do
        local line=$(grep -E '^(STATUS|CREATE_FAILED)' "$d/$label.$r" | head -1)
        local st=$(echo "$line" | awk '{print ($1 == "STATUS") ? $3 : $2}')
        if ! echo "$st" | grep -qE "^($want)\$"; then
            echo "FAIL $label: rank $r: '${line:-no status}' (want $want)"; cat "$d/$label.$r"; fail=1; continue
        fi
        if [ "$(echo "$line" | awk '{print $1}')" = STATUS ]; then
            local dt=$(($(echo "$line" | awk '{print $4}') - t0))
            [ $dt -le $limit ] || { echo "FAIL $label: rank $r took $dt ms (limit $limit)"; fail=1; }
        fi
        echo "  rank $r: $st ${line#* * * * }" | cut -c1-150
    done
    return $fail
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

fail=0
data_case clean "clean" --iters 30 --count 300000 || fail=1

for i in 1 2 3 4; do
    ns $i nft add table inet fault
    ns $i nft add chain inet fault in '{ type filter hook input priority 0; }'
    ns $i nft add rule inet fault in ip saddr 10.99.0.0/24 numgen random mod 100 '<' 3 drop
done
data_case loss "3% loss on every host (nft)" --iters 30 --count 300000 || fail=1
for i in 1 2 3 4; do ns $i nft delete table inet fault; done

for i in 1 2 3 4; do ns $i tc qdisc add dev eth0 root tbf rate 200mbit burst 64kb latency 50ms; done
data_case tbf "tbf 200 Mbit/s on every host" --iters 20 --count 300000 || fail=1
for i in 1 2 3 4; do ns $i tc qdisc del dev eth0 root; done

# The relay sits in host 3 (rank 2's) between rank 1 and rank 2 (rank 1's right_port points at it).
sed -E 's/"right_port":[[:space:]]*29503/"right_port": 29600/' "$d/cfg/rank-1.json" >"$d/rank-1-relay.json"
grep -q '"right_port": 29600' "$d/rank-1-relay.json" || { echo "FAIL: could not point rank 1 at the relay"; exit 1; }
ip netns exec ${tag}n3 python3 "$here/ring_relay.py" 10.99.0.3:29600 10.99.0.3:29503 --delay-ms 0-15 --chunk 9000 >"$d/relay.log" 2>&1 &
relay=$!
CFG_OVERRIDE=([1]="$d/rank-1-relay.json")
data_case relay "relay 1->2: 0-15 ms jitter, 9 KB cuts" --iters 8 --count 300000 || fail=1
kill $relay 2>/dev/null; wait $relay 2>/dev/null

ip netns exec ${tag}n3 python3 "$here/ring_relay.py" 10.99.0.3:29600 10.99.0.3:29503 --corrupt-after 3000000 >"$d/relay.log" 2>&1 &
relay=$!
# No wait for the relay to listen: rank 1 retries its connection until the connect deadline.
echo "relay 1->2 flipping one bit, RING_CHECKSUM=1 (want PROTOCOL on every rank):"
ENV=(RING_CHECKSUM=1)
t0=$(now_ms)
start_ring corrupt --iters 40 --count 300000
wait_ring
# The deadline runs from the flipped bit (the relay logs when), not from the start, which
# includes forming the ring and the data before it (long on a loaded machine).
flip=$(sed -n 's/^flipped a bit at \([0-9]*\) ms$/\1/p' "$d/relay.log")
[ -n "$flip" ] || { echo "FAIL corrupt: the relay flipped no bit"; cat "$d/relay.log"; fail=1; flip=$t0; }
fault_case_check corrupt "RING_ERR_PROTOCOL" 10000 "$flip" || fail=1
ENV=()
CFG_OVERRIDE=()
kill $relay 2>/dev/null; wait $relay 2>/dev/null

echo "ss -K on the live connection 2->3 (want one failure kind on every rank):"
OPMS=1000 start_ring sskill --count 300000
started=$(now_ms)
# Wait for the connection itself (the ring formed), not a fixed time: forming the ring
# takes seconds on a loaded machine, and killing nothing would leave the ring running.
until ns 3 ss -Htn state established dst 10.99.0.4 dport = 29504 | grep -q .; do
    [ $(($(now_ms) - started)) -lt 60000 ] || break
    sleep 0.05
done
t0=$(now_ms)
ns 3 ss -K dst 10.99.0.4 dport = 29504 >/dev/null 2>&1
if ns 3 ss -Htn state established dst 10.99.0.4 dport = 29504 | grep -q .; then
    # The kernel kept the socket: it cannot destroy sockets (CONFIG_INET_DIAG_DESTROY).
    echo "  case not run: this kernel cannot kill a socket from outside (ss -K needs CONFIG_INET_DIAG_DESTROY)"
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait_ring
else
    wait_ring
    fault_case_check sskill "RING_ERR_PEER_CLOSED|RING_ERR_SYSTEM" 2000 "$t0" || fail=1
    kinds=$(grep -h '^STATUS' "$d"/sskill.* | awk '{print $3}' | sort -u | wc -l)
    [ "$kinds" = 1 ] || { echo "FAIL sskill: ranks disagree on the failure kind"; fail=1; }
fi

echo "host 4 refuses the ring port with a TCP reset (want TIMEOUT at creation, connect deadline 3 s):"
ns 4 nft add table inet fault
ns 4 nft add chain inet fault in '{ type filter hook input priority 0; }'
ns 4 nft add rule inet fault in tcp dport 29504 reject with tcp reset
t0=$(now_ms)
CONNMS=3000 start_ring refused --iters 5
wait_ring
fault_case_check refused "RING_ERR_TIMEOUT|RING_ERR_PEER_CLOSED" 6000 "$t0" || fail=1
grep -h "CREATE_FAILED" "$d"/refused.* | head -2 | cut -c1-200
ns 4 nft delete table inet fault

[ $fail = 0 ] && echo "PASS: ring across 4 network namespaces"
exit $fail
