#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# kill-test.sh N TRANSPORT OP_TIMEOUT_MS [SIGNAL]: start N ranks of ring-loop (RING_LOOP)
# with "transport" set in their RING_CONFIG files, send SIGNAL (default KILL) to rank 1
# mid-loop, and check that every other rank fails with an error (exit 3) within
# 2 x OP_TIMEOUT_MS. KILL checks that a dead peer is noticed (connection lost); STOP
# checks the deadline (the peer's process and its queue pairs stay, it just stops).
# Ranks are started directly, not under ringrun, which would stop the survivors itself.
set -u
n=$1 transport=$2 op_ms=$3 sig=${4:-KILL}
: "${RING_LOOP:?RING_LOOP must name the ring-loop binary}"
dir=$(mktemp -d "${TMPDIR:-/tmp}/kill-test.XXXXXX") || exit 1
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$dir"; }
trap cleanup EXIT
base=$((20000 + $$ % 20000))
for ((r = 0; r < n; r++)); do
    cat > "$dir/rank-$r.json" <<JSON
{"master_ip": "127.0.0.1", "master_port": $base, "port": $((base + 1 + r)),
 "right_ip": "127.0.0.1", "right_port": $((base + 1 + (r + 1) % n)), "rank": $r, "world_size": $n,
 "transport": "$transport"}
JSON
done
for ((r = 0; r < n; r++)); do
    RING_CONFIG=$dir/rank-$r.json RING_OP_TIMEOUT_MS=$op_ms RING_CONNECT_TIMEOUT_MS=60000 \
        "$RING_LOOP" --count 50000 --seconds 600 > "$dir/out-$r" 2>&1 &
    pids+=($!)
done
# Wait (bounded) for every rank to be inside the loop.
for ((t = 0; t < 1200; t++)); do
    ready=$(cat "$dir"/out-* 2>/dev/null | grep -c ': running$')
    [ "$ready" -ge "$n" ] && break
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { echo "FAIL: a rank died before the kill"; cat "$dir"/out-*; exit 1; }; done
    sleep 0.1
done
[ "$ready" -ge "$n" ] || { echo "FAIL: ranks not running after 120 s"; cat "$dir"/out-*; exit 1; }
sleep 0.5
t0=$(date +%s%N)
kill -s "$sig" "${pids[1]}"
fail=0
limit=$((2 * op_ms))
# Survivors that are still alive at 3 x the timeout are hung: killed, and the test fails.
declare -A end_ms
while :; do
    alive=0
    now=$((($(date +%s%N) - t0) / 1000000))
    for ((r = 0; r < n; r++)); do
        [ "$r" = 1 ] || [ -n "${end_ms[$r]:-}" ] && continue
        if kill -0 "${pids[$r]}" 2>/dev/null && ! grep -q 'ring-loop: rank .*failed' "$dir/out-$r"; then
            alive=1
            [ "$now" -gt $((3 * op_ms)) ] && { kill -9 "${pids[$r]}"; end_ms[$r]=$now; }
        else
            end_ms[$r]=$now
        fi
    done
    [ "$alive" = 0 ] && break
    sleep 0.05
done
fail=0
limit=$((2 * op_ms))
for ((r = 0; r < n; r++)); do
    [ "$r" = 1 ] && continue
    wait "${pids[$r]}"
    st=$?
    ms=${end_ms[$r]}
    line=$(grep 'ring-loop:' "$dir/out-$r" | tail -n1)
    echo "rank $r: exit $st, failed ${ms} ms after the kill: $line"
    if [ "$st" != 3 ]; then echo "FAIL: rank $r exited $st, expected 3 (a failed call)"; fail=1; fi
    if [ "$ms" -gt "$limit" ]; then echo "FAIL: rank $r took $ms ms, more than 2 x $op_ms ms"; fail=1; fi
done
if [ "$fail" != 0 ]; then for f in "$dir"/out-*; do echo "--- $f"; cat "$f"; done; exit 1; fi
echo "PASS: SIG$sig to rank 1 of $n over $transport: every other rank failed within 2 x $op_ms ms"
