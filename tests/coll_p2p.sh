#!/bin/sh
# The one-shot "p2p" all-reduce between two real processes on one GPU (CUDA IPC within a
# device): two ring ranks over loopback, both on GPU 0 (MISTRALRS_NO_NCCL=1: NCCL refuses
# two ranks on one GPU). Exit 77 when test_coll_p2p skips (no CUDA build or no GPU).
set -u
bin=${COLL_P2P_TEST:-./test_coll_p2p}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
base=$(( 20000 + ($$ * 7) % 20000 ))
n=2
pids=""
for r in 0 1; do
    right=$(( (r + 1) % n ))
    cat > "$dir/r$r.json" <<JSON
{"master_ip": "127.0.0.1", "master_port": $base, "port": $((base + 1 + r)),
 "right_ip": "127.0.0.1", "right_port": $((base + 1 + right)), "rank": $r, "world_size": $n}
JSON
    RING_CONFIG="$dir/r$r.json" MISTRALRS_NO_NCCL=1 CUDA_VISIBLE_DEVICES=${P2P_GPU:-0} \
        COLL_OP_TIMEOUT_MS=30000 COLL_RDV_TIMEOUT_MS=30000 \
        timeout 240 "$bin" > "$dir/out$r" 2>&1 &
    pids="$pids $!"
done
fail=0 skip=0 r=0
for p in $pids; do
    wait "$p"
    rc=$?
    cat "$dir/out$r"
    case $rc in
    0) ;;
    77) skip=$((skip + 1)) ;;
    *) echo "FAIL: rank $r exited $rc"; fail=1 ;;
    esac
    r=$((r + 1))
done
[ $fail -eq 0 ] || exit 1
[ $skip -eq 0 ] || exit 77
echo "PASS: one-shot all-reduce, 2 processes on one GPU"
