#!/bin/bash
# SPDX-License-Identifier: MIT
# ringinfer's tensor parallelism on GPUs over the ring on device buffers (issue 11):
#   tests/gpu/run-engine-tp-gpu.sh BUILD_DIR SHARED_DIR
# 1. Greedy ids of TP 2 (and 4 on stories260K) equal to TP 1 on the GPU, on stories260K and
#    the HF fixtures, twice: with the one-shot p2p on (the default; the decode step is one
#    CUDA graph, all-reduces inside) and off (COLL_P2P_MAX_BYTES=0: ring-cuda, host-staged;
#    the step walks its layers).
#    Then `ringinfer serve` at TP 1, 2 and 4 (tests/engine/serve_http.py tp, SERVE_PY to point
#    elsewhere): the same tokens.
# 2. BENCH=1: decode tok/s in the Llama-3.2-1B shape (bf16, generated here by eng-genmodel)
#    at TP 1 and TP 2 on both paths.
# The ranks use the GPUs in TP_GPUS (CUDA_VISIBLE_DEVICES, default 0; ring rank r takes GPU
# r mod visible). On one GPU every rank shares it: two CUDA contexts that the GPU
# time-slices, so the speeds there show the path's overheads, not scaling (several GPUs:
# tests/gpu/run-multi-gpu.sh). Build as for run-engine-gpu.sh (configure --with-cuda
# --with-nccl; make); BUILD_DIR/gpu-libs may hold libraries the GPU host lacks.
# Results: $OUT/engine-tp-gpu.txt, one line per check, logs beside it.
set -u
GPU_USAGE="run-engine-tp-gpu.sh BUILD_DIR SHARED_DIR" GPU_SHARED=required GPU_RESULTS=engine-tp-gpu.txt
. "$(dirname "$0")/common.sh"
# The ring, not NCCL, even where several GPUs are visible; NVLink multicast stays off.
export CUDA_VISIBLE_DEVICES=${TP_GPUS:-0} MISTRALRS_NO_NCCL=1 NCCL_NVLS_ENABLE=0
export COLL_OP_TIMEOUT_MS=${COLL_OP_TIMEOUT_MS:-60000}
RI=$(bin engine ringinfer)
RR=$(bin tools ringrun)
GEN=$(bin engine eng-genmodel)

need_gpus 1
need_bins "$RI" "$RR" "$GEN"
line "== $(date -u +%F' '%T) UTC, $(head -1 "$OUT/gpus.txt"), CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"
L1B="--dim 2048 --hidden 8192 --layers 16 --heads 32 --kv-heads 8 --head-dim 64 --vocab 128256 --seq-len 4096 --tied"
M1B=/tmp/eng-bench-llama3.2-1b
# The 1B model is written (one core) while the checks run.
if [ "${BENCH:-0}" = 1 ] && [ ! -d "$M1B" ]; then
    ( t0=$(date +%s.%N); "$GEN" --out "$M1B.tmp" --format hf --arch llama --dtype bf16 $L1B \
        --std 0.02 > /dev/null 2>&1 && mv "$M1B.tmp" "$M1B"
      awk "BEGIN{print $(date +%s.%N) - $t0}" > "$M1B.time" ) &
    gen_pid=$!
fi
fail=0

# run NAME TP ENVS ARGS...: `ringinfer run ARGS` as TP ranks (TP 1: one process), rank 0's
# last stdout line on stdout, rank 0's stderr in $OUT/NAME.err.
run() {
    local name=$1 tp=$2 envs=$3; shift 3
    if [ "$tp" = 1 ]; then
        env $envs timeout 300 "$RI" run "$@" 2> "$OUT/$name.err" | tail -n 1
    else
        env $envs timeout 300 "$RR" -n "$tp" -- "$RI" run "$@" 2> "$OUT/$name.all" |
            sed -n 's/^\[0\] //p' | tail -n 1
        sed -n 's/^\[0\] //p' "$OUT/$name.all" > "$OUT/$name.err"
    fi
}
# how NAME ran: the engine's layout and decode path, libcoll's p2p line
how() {
    grep -h "ringinfer: layout:\|decode graphs\|p2p: \(off\|one-shot\)" "$OUT/$1.err" |
        sed 's/^.*ringinfer: //; s/.*decode graphs: /decode graphs: /; s/^.*\(p2p: [a-z-]*\).*/\1/' |
        paste -sd'|' - | sed 's/|/; /g'
}
# check NAME WANT TP ENVS ARGS...: rank 0's ids equal WANT
check() {
    local name=$1 want=$2 tp=$3 envs=$4; shift 4
    local got; got=$(run "$name" "$tp" "$envs" "$@")
    if [ -n "$got" ] && [ "$got" = "$want" ]; then
        line "$name: ids equal to TP 1 ($(how "$name"))"
    else
        line "$name: FAIL: '$got' vs '$want'"; tail -5 "$OUT/$name.err" "$OUT/$name.all" 2> /dev/null; fail=1
    fi
}
PATHS=("p2p:" "ring-cuda:COLL_P2P_MAX_BYTES=0")

# 1. stories260K: BOS, 32 greedy ids (llama2.c's reference), TP 1 on the GPU, then TP 2 and 4.
st="$SH/models/stories260K.bin"
ref="403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385"
a=(-m "$st" --prompt-ids 1 -n 32 --temperature 0 --print-ids)
t1=$(run stories-tp1 1 "" "${a[@]}" --device cuda)
[ "$t1" = "$ref" ] && line "stories-tp1: ids equal to llama2.c's ($(how stories-tp1))" || { line "stories-tp1: FAIL: '$t1'"; fail=1; }
for p in "${PATHS[@]}"; do
    for tp in 2 4; do check "stories-tp$tp-${p%%:*}" "$t1" $tp "${p#*:}" "${a[@]}"; done
done
# The HF fixtures: 16 greedy ids after their prompt, TP 1 against transformers' ids, TP 2.
for name in tiny-llama-f32 tiny-qwen3-bf16 tiny-mistral-f16; do
    d="$SH/fixtures/hf/$name"
    [ -d "$d" ] || { line "$name: absent, skipped"; continue; }
    ids=$(python3 -c "import json;r=json.load(open('$d/reference.json'));print(','.join(map(str,r['prompt_ids'])));print(' '.join(map(str,r['greedy_ids'])))")
    prompt=$(echo "$ids" | sed -n 1p); greedy=$(echo "$ids" | sed -n 2p)
    a=(-m "$d" --prompt-ids "$prompt" -n 16 --temperature 0 --print-ids)
    t1=$(run "$name-tp1" 1 "" "${a[@]}" --device cuda)
    [ "$t1" = "$greedy" ] && line "$name-tp1: ids equal to transformers'" || { line "$name-tp1: FAIL: '$t1' vs '$greedy'"; fail=1; }
    for p in "${PATHS[@]}"; do check "$name-tp2-${p%%:*}" "$t1" 2 "${p#*:}" "${a[@]}"; done
done

# ringinfer serve on the GPU: TP 2 and 4 (ring, device buffers) answer TP 1's tokens, greedy
# and seeded (tests/engine/serve_http.py tp, with this build's binaries).
SPY=${SERVE_PY:-$SRC/tests/engine/serve_http.py}
if [ -f "$SPY" ] && "$RI" serve --help > /dev/null 2>&1; then
    T=$(mktemp -d)
    mkdir -p "$T/engine" "$T/tools" && ln -s "$RI" "$T/engine/ringinfer" && ln -s "$RR" "$T/tools/ringrun"
    if abs_top_builddir="$T" SHARED_DIR="$SH" timeout 300 python3 "$SPY" tp > "$OUT/serve-tp.log" 2>&1; then
        line "serve TP 1/2/4 on the GPU: same tokens, greedy and seeded; clean SIGTERM"
    else
        line "serve TP 1/2/4 on the GPU: FAIL"; tail -5 "$OUT/serve-tp.log"; fail=1
    fi
    rm -rf "$T"
else
    line "serve: skipped (no serve_http.py at $SPY, or ringinfer without HTTP support)"
fi

# 2. Decode speed.
if [ "${BENCH:-0}" = 1 ]; then
    [ -n "${gen_pid:-}" ] && { wait "$gen_pid"; line "genmodel llama3.2-1b: $(cat "$M1B.time") s"; }
    prompt=$(seq -s, 1000 1031)
    # bench NAME TP ENVS N RUNS: decode tok/s of each run and their median
    bench() {
        local name=$1 tp=$2 envs=$3 n=$4 runs=$5 v=() i ids
        for ((i = 1; i <= runs; i++)); do
            ids=$(run "bench-$name" "$tp" "$envs" -m "$M1B" --prompt-ids "$prompt" -n "$n" --temperature 0 --print-ids)
            v+=("$(sed -n 's/.*decode [0-9]* steps in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p' "$OUT/bench-$name.err")")
            cat "$OUT/bench-$name.err" >> "$OUT/bench.log"
            [ "$i" = 1 ] && echo "$ids" > "$OUT/bench-$name.ids"
        done
        local med; med=$(printf '%s\n' "${v[@]}" | sort -g | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}')
        local same=differ
        [ "$(cut -d' ' -f1-"$n" "$OUT/bench-$name.ids")" = "$(cut -d' ' -f1-"$n" "$OUT/bench-tp1.ids")" ] && same=equal
        line "$name: decode tok/s ${v[*]} median $med ($(how "bench-$name"); $n ids $same to TP 1's)"
    }
    if [ -d "$M1B" ]; then
        R=${RUNS:-3}
        bench tp1 1 "" 128 "$R"
        bench tp2-ring-cuda 2 "COLL_P2P_MAX_BYTES=0" 128 "$R"
        # one GPU: each p2p all-reduce waits for the peer's time slice (about 2.3 ms)
        bench tp2-p2p 2 "" 32 "$R"
    else
        line "genmodel llama3.2-1b failed: no benchmark"; fail=1
    fi
fi
line "engine-tp-gpu: $([ $fail = 0 ] && echo PASS || echo FAIL)"
exit $fail
