#!/bin/bash
# SPDX-License-Identifier: MIT
# The one-shot "p2p" all-reduce against NCCL and the ring on one host's GPUs: correctness
# between processes, then coll-bench -G latencies at decode sizes, one table.
#   tests/gpu/run-multi-gpu.sh [BUILD_DIR]    (default: build; run from the repository root)
# Build on the CPU machine: configure --with-cuda --with-nccl, `make`, then
# `make -C tests coll/test_coll_p2p`; BUILD_DIR/gpu-libs may hold libcjson.so.1 and other
# libraries the GPU host lacks. Uses every visible GPU: 2, 4 and 8 ranks where there are
# that many (NCCL mode: one process per GPU, libcoll spawns them), and with a single GPU
# two processes on it (the ring only: NCCL refuses two ranks on one GPU).
# Knobs: SIZES (coll-bench -b/-e, default "4K 1M"), ITERS (200), DTYPE (bf16).
# With SHARED_DIR (a copy of ../shared: models/, fixtures/hf/) the engine too:
#   tests/gpu/run-multi-gpu.sh BUILD_DIR SHARED_DIR
# ringinfer's greedy ids at TP 2, 4, 8 (as many GPUs as there are; with one GPU, 2 ring
# ranks on it) equal to TP 1 on stories260K and the HF fixtures, on NCCL (p2p off and on),
# the ring on device buffers (p2p off and on) and multi-node NCCL as two "nodes" split by
# CUDA_VISIBLE_DEVICES (MISTRALRS_MN_*); then (several GPUs, or BENCH_8B=1) decode speed of
# the Llama-3-8B shape (bf16, 16 GB written by eng-genmodel) at TP 1/2/4/8 with the share
# of each step in all-reduce. Build also engine/ (ringinfer, eng-genmodel) and tools/ringrun.
# Then layer mapping over two GPUs (the section at the end; LMAP=0 skips it).
# Results: $OUT/multi-gpu-results.txt (and engine-results.txt), raw logs beside them. Exit 0
# when every step passed.
set -u
GPU_USAGE="run-multi-gpu.sh [BUILD_DIR [SHARED_DIR]]" GPU_BUILD_DEFAULT=build GPU_SHARED=optional
. "$(dirname "$0")/common.sh"
export NCCL_NVLS_ENABLE=0 MISTRALRS_NO_NCCL=${MISTRALRS_NO_NCCL:-}
export COLL_OP_TIMEOUT_MS=${COLL_OP_TIMEOUT_MS:-60000} COLL_RDV_TIMEOUT_MS=${COLL_RDV_TIMEOUT_MS:-60000}
BENCH="$B/tools/.libs/coll-bench"
[ -x "$BENCH" ] || BENCH="$B/tools/coll-bench"
P2PTEST="$B/tests/coll/test_coll_p2p"
read -r MINB MAXB <<< "${SIZES:-4K 1M}"
ITERS=${ITERS:-200}
DTYPE=${DTYPE:-bf16}
RAW="$OUT/raw.txt"
STATUS="$OUT/status.txt"
: > "$RAW"; : > "$STATUS"

need_gpus 1
need_bins "$BENCH" "$P2PTEST"
cat "$OUT/gpus.txt"
fails=0

# ring_ranks NAME N VISIBLE ENV CMD...: N ring ranks over loopback, rank 0's stdout kept.
ring_ranks() {
    local name=$1 n=$2 vis=$3 envs=$4; shift 4
    local base cfg="$OUT/cfg-$name" pids="" r rc bad=0
    base=$(free_base $((n + 1))) || return 1
    mkdir -p "$cfg"
    echo "== $name: $n ring ranks, CUDA_VISIBLE_DEVICES=$vis, $envs: $*" | tee -a "$RAW"
    for ((r = 0; r < n; r++)); do
        cat > "$cfg/r$r.json" <<JSON
{"master_ip": "127.0.0.1", "master_port": $base, "port": $((base + 1 + r)),
 "right_ip": "127.0.0.1", "right_port": $((base + 1 + (r + 1) % n)), "rank": $r, "world_size": $n}
JSON
        env RING_CONFIG="$cfg/r$r.json" MISTRALRS_NO_NCCL=1 CUDA_VISIBLE_DEVICES="$vis" $envs \
            timeout 300 "$@" > "$OUT/$name.$r.out" 2> "$OUT/$name.$r.err" &
        pids="$pids $!"
    done
    r=0
    for p in $pids; do
        wait "$p"; rc=$?
        [ $rc -eq 0 ] || { bad=1; echo "  $name rank $r FAILED (rc $rc):"; tail -8 "$OUT/$name.$r.err"; }
        r=$((r + 1))
    done
    cat "$OUT/$name.0.out" >> "$RAW"
    grep -hE "p2p|WARN|ERROR" "$OUT/$name".*.err | head -8 >> "$RAW"
    echo "$name rc=$bad" >> "$STATUS"
    return $bad
}

# one NAME VISIBLE CMD...: one command (NCCL mode spawns the other ranks itself).
one() {
    local name=$1 vis=$2; shift 2
    echo "== $name: CUDA_VISIBLE_DEVICES=$vis $*" | tee -a "$RAW"
    CUDA_VISIBLE_DEVICES="$vis" timeout 300 "$@" > "$OUT/$name.out" 2> "$OUT/$name.err"
    local rc=$?
    cat "$OUT/$name.out" >> "$RAW"
    grep -hE "p2p|WARN|ERROR" "$OUT/$name.err" | head -8 >> "$RAW"
    echo "$name rc=$rc" >> "$STATUS"
    [ $rc -eq 0 ] || { echo "  $name FAILED (rc $rc):"; tail -10 "$OUT/$name.err"; }
    return $rc
}

BARGS=(-G -b "$MINB" -e "$MAXB" -f 2 -n "$ITERS" -w 20 -c 1 -d "$DTYPE")

# 1. Correctness: two processes on GPU 0 (IPC within one device), and on GPUs 0 and 1.
ring_ranks check-1gpu 2 0 "" "$P2PTEST" || fails=$((fails + 1))
[ "$ngpu" -ge 2 ] && { ring_ranks check-2gpu 2 0,1 "" "$P2PTEST" || fails=$((fails + 1)); }

# 2. Latency at decode sizes.
if [ "$ngpu" -eq 1 ]; then
    ring_ranks p2p-ring-x2-on-1gpu 2 0 "" "$BENCH" --provider p2p "${BARGS[@]}" || fails=$((fails + 1))
    ring_ranks ring-x2-on-1gpu 2 0 "" "$BENCH" --provider coll-ring "${BARGS[@]}" || fails=$((fails + 1))
fi
for n in 2 4 8; do
    [ "$ngpu" -ge "$n" ] || continue
    vis=$(seq -s, 0 $((n - 1)))
    one "p2p-x$n" "$vis" "$BENCH" --provider p2p "${BARGS[@]}" || fails=$((fails + 1))
    one "nccl-x$n" "$vis" "$BENCH" --provider nccl "${BARGS[@]}" || fails=$((fails + 1))
    ring_ranks "ring-x$n" "$n" "$vis" "" "$BENCH" --provider coll-ring "${BARGS[@]}" ||
        fails=$((fails + 1))
done

# One table: a row per size, a column per run: median (p50) latency of the out-of-place
# all-reduce in microseconds, and the mean time.
{
    echo "# coll-bench -G allreduce $DTYPE, $ITERS iters: p50 us / mean us ($(date -u +%F\ %T) UTC, $(nvidia-smi -L | head -1 | cut -c1-40), $ngpu GPUs, NCCL_NVLS_ENABLE=0)"
    sed 's/^/# status: /' "$STATUS"
    awk '/^== / { name = $2; sub(":", "", name); if (name !~ /^check/ && !(name in seen)) { seen[name] = 1; cols[++nc] = name } next }
         /^ +[0-9]+ +[0-9]+ / && name !~ /^check/ { b[$1] = 1; p50[name, $1] = $(NF-1); t[name, $1] = $6 }
         /^rank .* p2p up to/ { print "# " name ": " $0 }
         END {
           printf "%-9s", "bytes"; for (i = 1; i <= nc; i++) printf " | %-19s", cols[i]; printf "\n"
           n = 0; for (x in b) sz[++n] = x + 0
           for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (sz[j] < sz[i]) { s = sz[i]; sz[i] = sz[j]; sz[j] = s }
           for (i = 1; i <= n; i++) {
             printf "%-9d", sz[i]
             for (k = 1; k <= nc; k++) {
               key = cols[k] SUBSEP sz[i]
               if (key in p50) printf " | %8s / %-8s", p50[cols[k], sz[i]], t[cols[k], sz[i]]; else printf " | %-19s", "-"
             }
             printf "\n"
           }
         }' "$RAW"
} | tee "$OUT/multi-gpu-results.txt"

# ---- layer mapping (issue 11, --device-layers; owner: the lmap branch) ----------------------
# Over two GPUs: greedy ids of "0:A;1:B" maps equal to one GPU (stories260K, tiny-llama-f32,
# peer copies and ENG_NO_P2P=1 staging), then decode tok/s of the Llama-3-8B shape mapped
# "0:16;1:16" with peer copies and with staging forced, beside the plain one-GPU run.
# tests/gpu/run-lmap-gpu.sh does it (one GPU too); LMAP=0 skips it, SHARED_DIR names ../shared.
lmap_rows() {
    [ "${LMAP:-1}" = 1 ] && [ "$ngpu" -ge 2 ] || return 0
    echo "== layer mapping: SHAPE=8b $HERE/run-lmap-gpu.sh $B" | tee -a "$RAW"
    OUT="$OUT/lmap" SHAPE=8b "$HERE/run-lmap-gpu.sh" "$B" ${SHARED_DIR:+"$SHARED_DIR"}
    local rc=$?
    echo "lmap rc=$rc" >> "$STATUS"
    { echo; echo "# layer mapping (run-lmap-gpu.sh, SHAPE=8b)"; cat "$OUT/lmap/lmap-gpu.txt"; } \
        >> "$OUT/multi-gpu-results.txt"
    [ $rc -eq 0 ] || fails=$((fails + 1))
}
lmap_rows
# ---- end of layer mapping --------------------------------------------------------------------

[ -n "$SH" ] && . "$(dirname "$0")/multi-gpu-engine.sh"
echo "failed steps: $fails"
[ $fails -eq 0 ]
