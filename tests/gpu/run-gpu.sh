#!/bin/bash
# SPDX-License-Identifier: MIT
# libcoll on a GPU host with 2 GPUs: correctness and all-reduce benchmarks, one table.
#   tests/gpu/run-gpu.sh [BUILD_DIR]      (default: build; run from the repository root)
# The binaries are built on the CPU machine (configure --with-cuda --with-nccl, then
# `make` and `make -C tests coll/coll_gpu_bench coll/test_coll_gpu`); BUILD_DIR/gpu-libs holds
# libcjson.so.1 for hosts without cJSON. Results: $OUT/gpu-results.txt (and raw logs).
set -u
GPU_USAGE="run-gpu.sh [BUILD_DIR]" GPU_BUILD_DEFAULT=build
. "$(dirname "$0")/common.sh"
export NCCL_NVLS_ENABLE=0
export COLL_OP_TIMEOUT_MS=${COLL_OP_TIMEOUT_MS:-120000} COLL_RDV_TIMEOUT_MS=${COLL_RDV_TIMEOUT_MS:-60000}
BENCH="$B/tests/coll/coll_gpu_bench"
MAXB=${MAXB:-1073741824}
RAW="$OUT/raw.txt"
STATUS="$OUT/status.txt"
: > "$RAW"; : > "$STATUS"

need_gpus 2
need_bins "$BENCH" "$B/tests/coll/test_coll_gpu"
cat "$OUT/gpus.txt"

# step NAME CMD...: run with a deadline, keep stdout and stderr, record the status.
step() {
    local name=$1; shift
    echo "== $name: $*" | tee -a "$RAW"
    timeout 480 "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
    local rc=$?
    cat "$OUT/$name.out" >> "$RAW"
    grep -E "WARN|ERROR" "$OUT/$name.err" | head -20 >> "$RAW"
    echo "$name rc=$rc" >> "$STATUS"
    [ $rc -eq 0 ] || { echo "  $name FAILED (rc $rc); stderr tail:"; tail -20 "$OUT/$name.err"; }
    return $rc
}

# Two processes at once (multi-node halves, ring ranks): both must succeed.
pair() {
    local name=$1 env0=$2 env1=$3; shift 3
    echo "== $name: [$env0] [$env1] $*" | tee -a "$RAW"
    env $env0 timeout 480 "$@" > "$OUT/$name.0.out" 2> "$OUT/$name.0.err" &
    local p0=$!
    env $env1 timeout 480 "$@" > "$OUT/$name.1.out" 2> "$OUT/$name.1.err" &
    local p1=$!
    wait $p0; local r0=$?
    wait $p1; local r1=$?
    cat "$OUT/$name.0.out" >> "$RAW"
    grep -hE "WARN|ERROR" "$OUT/$name.0.err" "$OUT/$name.1.err" | head -20 >> "$RAW"
    echo "$name rc=$r0,$r1" >> "$STATUS"
    if [ $r0 -ne 0 ] || [ $r1 -ne 0 ]; then
        echo "  $name FAILED (rc $r0, $r1); stderr tails:"
        tail -15 "$OUT/$name.0.err" "$OUT/$name.1.err"
        return 1
    fi
}

fails=0
step kernels "$B/tests/coll/test_coll_gpu" || fails=$((fails + 1))

# 1. NCCL, one node: the program starts once, libcoll spawns the second rank.
step nccl-check "$BENCH" check || fails=$((fails + 1))
grep -h "layout" "$OUT/nccl-check.err" | head -2 >> "$RAW"
step nccl-bench "$BENCH" bench nvlink 4096 "$MAXB" raw || fails=$((fails + 1))

# 2. Multi-node NCCL: 2 "nodes" x 1 GPU split by CUDA_VISIBLE_DEVICES.
port=$(free_base 2) || exit 1
MN="MISTRALRS_MN_GLOBAL_WORLD_SIZE=2 MISTRALRS_MN_LOCAL_WORLD_SIZE=1"
HEAD="CUDA_VISIBLE_DEVICES=0 $MN MISTRALRS_MN_HEAD_NUM_WORKERS=1 MISTRALRS_MN_HEAD_PORT=$port"
WORK="CUDA_VISIBLE_DEVICES=1 $MN MISTRALRS_MN_WORKER_SERVER_ADDR=127.0.0.1:$port MISTRALRS_MN_WORKER_ID=0"
pair mn-check "$HEAD" "$WORK" "$BENCH" check || fails=$((fails + 1))
grep -h "layout" "$OUT"/mn-check.*.err >> "$RAW"
port=$((port + 1))
HEAD="CUDA_VISIBLE_DEVICES=0 $MN MISTRALRS_MN_HEAD_NUM_WORKERS=1 MISTRALRS_MN_HEAD_PORT=$port"
WORK="CUDA_VISIBLE_DEVICES=1 $MN MISTRALRS_MN_WORKER_SERVER_ADDR=127.0.0.1:$port MISTRALRS_MN_WORKER_ID=0"
pair mn-bench "$HEAD" "$WORK" "$BENCH" bench multinode 4096 "$MAXB" raw || fails=$((fails + 1))

# 3. NCCL forced onto its socket transport over loopback: the ring's yardstick.
SOCK="NCCL_P2P_DISABLE=1 NCCL_SHM_DISABLE=1 NCCL_NET=Socket NCCL_SOCKET_IFNAME=lo"
step nccl-socket env $SOCK "$BENCH" bench socket 4096 "$MAXB" raw || fails=$((fails + 1))

# 4. The ring on device buffers (pinned staging), 2 ranks over loopback TCP.
cfg="$OUT/ring"; mkdir -p "$cfg"
ring_pair() { # name reduce staging_bytes mode args...
    local name=$1 red=$2 stg=$3; shift 3
    local base
    base=$(free_base 3) || return 1
    for r in 0 1; do
        cat > "$cfg/r$r.json" <<JSON
{"master_ip": "127.0.0.1", "master_port": $base, "port": $((base + 1 + r)),
 "right_ip": "127.0.0.1", "right_port": $((base + 2 - r)), "rank": $r, "world_size": 2}
JSON
    done
    local common="MISTRALRS_NO_NCCL=1 COLL_RING_DEVICE_REDUCE=$red COLL_STAGING_BYTES=$stg"
    pair "$name" "RING_CONFIG=$cfg/r0.json $common" "RING_CONFIG=$cfg/r1.json $common" "$BENCH" "$@"
}
ring_pair ring-check cpu 4194304 check || fails=$((fails + 1))
grep -h "layout" "$OUT"/ring-check.*.err >> "$RAW"
ring_pair ring-check-gpu gpu 4194304 check || fails=$((fails + 1))
ring_pair ring-bench cpu 4194304 bench ring-cpu-4M 4096 "$MAXB" || fails=$((fails + 1))
ring_pair ring-bench-16 cpu 16777216 bench ring-cpu-16M 4096 "$MAXB" || fails=$((fails + 1))
ring_pair ring-bench-gpu gpu 4194304 bench ring-gpu-4M 4096 "$MAXB" || fails=$((fails + 1))

# One table: rows of bytes, a column per (label, variant): busbw GB/s and time us.
{
    echo "# libcoll GPU results ($(date -u +%F\ %T) UTC, $(nvidia-smi -L | head -1 | cut -c1-40), NCCL_NVLS_ENABLE=0)"
    cat "$STATUS" | sed 's/^/# status: /'
    grep -h "^CHECK" "$RAW" | sed 's/^/# /'
    awk '/^RESULT/ { key = $2 "/" $3; if (!(key in seen)) { seen[key] = 1; cols[++nc] = key }
                     b[$4] = 1; t[key, $4] = $5; bw[key, $4] = $7 }
         END {
           printf "%-10s", "bytes"; for (i = 1; i <= nc; i++) printf " | %-24s", cols[i]; printf "\n"
           printf "%-10s", ""; for (i = 1; i <= nc; i++) printf " | %-24s", "busbw GB/s   time us"; printf "\n"
           n = 0; for (x in b) sz[++n] = x + 0
           for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (sz[j] < sz[i]) { s = sz[i]; sz[i] = sz[j]; sz[j] = s }
           for (i = 1; i <= n; i++) {
             printf "%-10d", sz[i]
             for (c = 1; c <= nc; c++) {
               k = cols[c]
               if ((k, sz[i]) in t) printf " | %10.3f %12.2f ", bw[k, sz[i]], t[k, sz[i]]; else printf " | %24s", "-"
             }
             printf "\n"
           }
           # The issue-4 targets.
           printf "\n# coll vs raw NCCL (nvlink): busbw ratio at >= 64 MiB, added time at 4 KiB\n"
           for (i = 1; i <= n; i++) if (sz[i] >= 67108864 && ("nvlink/raw-nccl", sz[i]) in bw && bw["nvlink/raw-nccl", sz[i]] > 0)
             printf "#   %d: ratio %.3f\n", sz[i], bw["nvlink/coll", sz[i]] / bw["nvlink/raw-nccl", sz[i]]
           if (("nvlink/raw-nccl", 4096) in t) printf "#   4096: coll %.2f us, raw %.2f us, added %.2f us\n", t["nvlink/coll", 4096], t["nvlink/raw-nccl", 4096], t["nvlink/coll", 4096] - t["nvlink/raw-nccl", 4096]
           printf "# ring on device buffers vs NCCL socket transport (raw), busbw ratio\n"
           for (i = 1; i <= n; i++) if (sz[i] >= 67108864 && ("socket/raw-nccl", sz[i]) in bw && bw["socket/raw-nccl", sz[i]] > 0)
             printf "#   %d: ring-cpu-4M %.2fx, ring-cpu-16M %.2fx, ring-gpu-4M %.2fx\n", sz[i], bw["ring-cpu-4M/coll", sz[i]] / bw["socket/raw-nccl", sz[i]], bw["ring-cpu-16M/coll", sz[i]] / bw["socket/raw-nccl", sz[i]], bw["ring-gpu-4M/coll", sz[i]] / bw["socket/raw-nccl", sz[i]]
         }' "$RAW"
} > "$OUT/gpu-results.txt"
cat "$OUT/gpu-results.txt"
echo "steps failed: $fails (logs in $OUT)"
[ $fails -eq 0 ]
