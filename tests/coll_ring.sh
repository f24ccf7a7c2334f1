#!/bin/sh
# libcoll selecting the ring from RING_CONFIG and running every collective on host
# buffers, 2 and 4 ranks over loopback. MISTRALRS_NO_NCCL=1 keeps NCCL out on GPU hosts.
set -u
bin=${COLL_RING_TEST:-./test_coll_ring}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
base=$(( 20000 + $$ % 20000 ))
for n in 2 4; do
    pids=""
    for r in $(seq 0 $((n - 1))); do
        right=$(( (r + 1) % n ))
        cat > "$dir/r$r.json" <<JSON
{"master_ip": "127.0.0.1", "master_port": $base, "port": $((base + 1 + r)),
 "right_ip": "127.0.0.1", "right_port": $((base + 1 + right)), "rank": $r, "world_size": $n}
JSON
        RING_CONFIG="$dir/r$r.json" MISTRALRS_NO_NCCL=1 COLL_OP_TIMEOUT_MS=20000 \
            COLL_RDV_TIMEOUT_MS=20000 timeout 60 "$bin" > "$dir/out$r" 2>&1 &
        pids="$pids $!"
    done
    fail=0
    r=0
    for p in $pids; do
        if ! wait "$p"; then
            echo "FAIL: rank $r of $n:"; fail=1
        fi
        cat "$dir/out$r"
        r=$((r + 1))
    done
    [ $fail -eq 0 ] || exit 1
    base=$((base + 10))
done
echo "PASS: coll over the ring, 2 and 4 ranks"
