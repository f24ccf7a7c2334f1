#!/bin/bash
# SPDX-License-Identifier: MIT
# The engine on one GPU: kernel tests, end-to-end correctness, and (BENCH=1) decode speed.
#   tests/gpu/run-engine-gpu.sh BUILD_DIR [SHARED_DIR]
# BUILD_DIR: a tree built on the CPU machine with `configure --with-cuda`, then `make` and
# `make -C tests engine/test_cuda_kernels engine/test_eng_cuda engine/test_eng_batch`; BUILD_DIR/gpu-libs may hold libraries the
# GPU host lacks (libcjson.so.1, ...). SHARED_DIR (default: ../shared beside the sources):
# models/, fixtures/hf/, bench/. Results: $OUT/engine-gpu.txt, one line per check, and logs.
#   BENCH=1       also time decode on random bf16 models in the Llama-3.2-1B shape
#   BENCH_8B=1    and the Llama-3-8B shape (16 GB generated here first)
#   PEER=1        and run bench/gptfast_peer.py (PyTorch, compiled) on the same shapes
#   RUNS=N        decode runs per shape (default 5; the median goes to docs/BENCHMARKS.md)
#   RUNS_8B=N     decode runs of the 8B shape (default RUNS; each loads 15 GB)
#   HF=0          skip the comparison with transformers of random models in real shapes
#   COLD=1        (with BENCH_8B) also time the 8B load with the page cache dropped first
# With BENCH, one more run per shape sets ENG_CUDA_PROFILE=1: the decode step's time per stage.
set -u
GPU_USAGE="run-engine-gpu.sh BUILD_DIR [SHARED_DIR]" GPU_SHARED=optional GPU_RESULTS=engine-gpu.txt
. "$(dirname "$0")/common.sh"
RI=$(bin engine ringinfer)
GEN=$(bin engine eng-genmodel)
KT=$(bin tests/engine test_cuda_kernels)
ET=$(bin tests/engine test_eng_cuda)

need_gpus 1
line "== $(date -u +%F' '%T) $(head -1 "$OUT/gpus.txt")"
# The 16 GB model is written while the checks and the small model run (one core each).
if [ "${BENCH:-0}" = 1 ] && [ "${BENCH_8B:-0}" = 1 ] && [ ! -d /tmp/eng-bench-llama3-8b ]; then
    ( t0=$(date +%s.%N); "$GEN" --out /tmp/eng-bench-llama3-8b --format hf --arch llama --dtype bf16 \
        --dim 4096 --hidden 14336 --layers 32 --heads 32 --kv-heads 8 --head-dim 128 --vocab 128256 \
        --seq-len 4096 --std 0.02 > /dev/null 2>&1; awk "BEGIN{print $(date +%s.%N) - $t0}" > /tmp/eng-bench-llama3-8b.time ) &
    echo $! > /tmp/eng-bench-llama3-8b.pid
fi
fail=0
# step NAME CMD...: run with a deadline, log to $OUT/NAME.log, record the status.
step() {
    local name=$1; shift
    timeout 400 "$@" > "$OUT/$name.log" 2>&1
    local rc=$?
    line "$name: rc=$rc"
    [ $rc -eq 0 ] || { fail=1; tail -15 "$OUT/$name.log"; }
    return $rc
}
step kernels "$KT" --bench
grep -cE "^ok" "$OUT/kernels.log" | sed 's/^/kernel checks passed: /' | tee -a "$RES"
grep -E "^(FAIL|bench)" "$OUT/kernels.log" | tee -a "$RES"
step engine "$ET"
grep -E "^(ok|FAIL|SKIP)" "$OUT/engine.log" | tee -a "$RES"
# the same without the query-head decode attention (its step is one graph, not two)
step engine-tiled env ENG_CUDA_FUSE=511 "$ET"
grep -E "^(ok|FAIL|SKIP)" "$OUT/engine-tiled.log" | sed 's/^/ENG_CUDA_FUSE=511: /' | tee -a "$RES"
# continuous batching: each sequence's logits bit for bit alone and batched (f32/f16/bf16)
if [ -x "$(bin tests/engine test_eng_batch)" ]; then
    step batch "$(bin tests/engine test_eng_batch)" cuda
    grep -E "tp=" "$OUT/batch.log" | tee -a "$RES"
    step batch-high "$(bin tests/engine test_eng_batch)" cuda-high
    grep -E "tp=" "$OUT/batch-high.log" | sed 's/^/prefill precision high: /' | tee -a "$RES"
fi
"$RI" --print-config | grep backend | tee -a "$RES"

if [ -n "$SH" ]; then
    st="$SH/models/stories260K.bin"; tk="$SH/models/tok512.bin"
    rm -f "$OUT/gpus.txt"
    g=$("$RI" run -m "$st" --tokenizer "$tk" --prompt-ids 1 -n 32 --temperature 0 --print-ids --device cuda 2> "$OUT/cli-cuda.err" | tail -1)
    c=$("$RI" run -m "$st" --tokenizer "$tk" --prompt-ids 1 -n 32 --temperature 0 --print-ids --device cpu 2> "$OUT/cli-cpu.err" | tail -1)
    [ -n "$g" ] && [ "$g" = "$c" ] && line "cli stories260K ids cuda == cpu: ok ($g)" || { line "cli stories260K ids cuda != cpu: FAIL ($g vs $c)"; fail=1; }
    grep -h "holds\|decode" "$OUT/cli-cuda.err" | tee -a "$RES"
    rm -f "$OUT/cli-cuda.err" "$OUT/cli-cpu.err"
    # the engine's own diagnostics (libcoll may add an INFO line of its own)
    e=$(CUDA_VISIBLE_DEVICES= "$RI" run -m "$st" --prompt-ids 1 -n 4 --device cuda 2>&1 | grep '^ringinfer'); rc=$?
    line "no visible GPU: $e"
    [ $(echo "$e" | wc -l) -eq 1 ] && echo "$e" | grep -qE "no (CUDA )?GPU (is )?visible" || fail=1
fi

prompt=$(seq -s, 1000 1031) # 32 ids
bench_shape() { # NAME RUNS genmodel-args...
    local name=$1 runs=$2; shift 2
    local dir=/tmp/eng-bench-$name
    # a model generated in the background (BENCH_8B): wait for it
    [ -f "$dir.pid" ] && { wait "$(cat "$dir.pid")"; line "genmodel $name (background): $(cat "$dir.time") s, $(du -sh "$dir" | cut -f1)"; rm -f "$dir.pid"; }
    if [ ! -d "$dir" ]; then
        local t0=$(date +%s.%N)
        "$GEN" --out "$dir" --format hf --arch llama --dtype bf16 "$@" --std 0.02 > /dev/null 2>&1 || { line "genmodel $name failed"; fail=1; return; }
        line "genmodel $name: $(awk "BEGIN{print $(date +%s.%N) - $t0}") s, $(du -sh "$dir" | cut -f1)"
    fi
    local log="$OUT/bench-$name.log"
    : > "$log"
    for i in $(seq 1 "$runs"); do
        timeout 300 "$RI" run -m "$dir" --prompt-ids "$prompt" -n 128 --temperature 0 --device cuda > /dev/null 2> "$OUT/run.err"
        local rc=$?
        cat "$OUT/run.err" >> "$log"
        [ $rc -eq 0 ] || { fail=1; line "$name run $i: rc=$rc: $(tail -2 "$OUT/run.err")"; }
        grep -h "decode" "$OUT/run.err" | sed "s/^/$name run $i: /" | tee -a "$RES"
        [ $i = 1 ] && grep -h "weights on GPU\|holds" "$OUT/run.err" | tee -a "$RES"
    done
    # prefill of a 2048-token prompt (the CLI prefills in one pass up to 1024 tokens at a time)
    local long=$(seq -s, 100 2147)
    timeout 300 "$RI" run -m "$dir" --prompt-ids "$long" -n 1 --temperature 0 --device cuda > /dev/null 2> "$OUT/run.err"
    cat "$OUT/run.err" >> "$log"
    grep -h "prefill\|rank 0:" "$OUT/run.err" | sed "s/^/$name 2048-token prompt: /" | tee -a "$RES"
    # the decode step split into stages (eager launches with events; the timed runs use the graph)
    ENG_CUDA_PROFILE=1 timeout 300 "$RI" run -m "$dir" --prompt-ids "$prompt" -n 128 --temperature 0 \
        --device cuda > /dev/null 2> "$OUT/run.err"
    cat "$OUT/run.err" >> "$log"
    grep -h "profile\|decode\|rank 0:" "$OUT/run.err" | sed "s/^/$name profiled: /" | tee -a "$RES"
    if [ "${COLD:-0}" = 1 ] && [ -w /proc/sys/vm/drop_caches ]; then
        sync; echo 3 > /proc/sys/vm/drop_caches
        timeout 300 "$RI" run -m "$dir" --prompt-ids 1 -n 1 --temperature 0 --device cuda \
            > /dev/null 2> "$OUT/run.err"
        grep -h "loaded in\|weights on GPU\|rank 0:" "$OUT/run.err" | sed "s/^/$name load from disk (page cache dropped): /" | tee -a "$RES"
    fi
    rm -f "$OUT/run.err"
}
# hf_check NAME POSITIONS genmodel-args...: logits against transformers (tests/gpu/hf_compare.py)
hf_check() {
    local name=$1 npos=$2; shift 2
    local dir=/tmp/eng-bench-$name
    if [ ! -d "$dir" ]; then
        "$GEN" --out "$dir" --format hf --dtype bf16 "$@" --std 0.02 > /dev/null 2>&1 || { line "genmodel $name failed"; fail=1; return; }
    fi
    # The bar must hold with --prefill-precision high (f32-accurate prompt products) and for
    # every position through the decode step (chunk 1, f32 activations); the default fast
    # prompt (bf16 activations, as transformers' bf16 runs) is recorded beside them.
    local v prec chunk log rc
    for v in high:512 fast:512 fast:1; do
        prec=${v%:*} chunk=${v#*:}
        log="$OUT/hf-$name-$prec-$chunk.log"
        timeout 600 python3 "$HERE/hf_compare.py" "$RI" "$dir" --positions "$npos" \
            --prefill-precision "$prec" --prefill-chunk "$chunk" > "$log" 2>&1
        rc=$?
        [ $rc -eq 77 ] && { line "hf $name: $(tail -1 "$log")"; return; }
        [ $rc -eq 0 ] || [ "$v" = fast:512 ] || fail=1
        line "hf $name: $(tail -1 "$log")"
    done
}
L1B="--dim 2048 --hidden 8192 --layers 16 --heads 32 --kv-heads 8 --head-dim 64 --vocab 128256 --seq-len 4096 --tied"
Q06B="--arch qwen3 --dim 1024 --hidden 3072 --layers 28 --heads 16 --kv-heads 8 --head-dim 128 --vocab 151936 --seq-len 4096 --tied"
L8B="--dim 4096 --hidden 14336 --layers 32 --heads 32 --kv-heads 8 --head-dim 128 --vocab 128256 --seq-len 4096"
# The peer runs while the 16 GB model is still being written (it needs the GPU, the writer one core).
peer() {
    local shapes=llama3.2-1b; [ "${BENCH_8B:-0}" = 1 ] && shapes="$shapes llama3-8b"
    timeout 400 python3 "$SH/bench/gptfast_peer.py" $shapes > "$OUT/peer.log" 2>&1
    grep -iE "tok_s|error" "$OUT/peer.log" | sed 's/^/peer: /' | tee -a "$RES"
}
if [ "${HF:-1}" = 1 ]; then
    # 600 positions: the CLI prefills 512, then 88 after that cached prefix
    hf_check llama3.2-1b 600 --arch llama $L1B
    hf_check qwen3-0.6b 600 $Q06B
fi
if [ "${BENCH:-0}" = 1 ]; then
    bench_shape llama3.2-1b "${RUNS:-5}" $L1B
    [ "${PEER:-0}" = 1 ] && [ -n "$SH" ] && peer
    [ "${BENCH_8B:-0}" = 1 ] && bench_shape llama3-8b "${RUNS_8B:-${RUNS:-5}}" $L8B
elif [ "${PEER:-0}" = 1 ] && [ -n "$SH" ]; then
    peer
fi
line "engine-gpu: $([ $fail = 0 ] && echo PASS || echo FAIL)"
exit $fail
