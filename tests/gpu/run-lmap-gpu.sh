#!/bin/bash
# SPDX-License-Identifier: MIT
# Layer mapping (--device-layers, issue 11) on one host's GPUs: greedy ids of mapped runs
# against the whole model on GPU 0, the errors, then decode speed of mapped runs against the
# plain one-GPU run (what a boundary costs). One command, results in one file.
#   tests/gpu/run-lmap-gpu.sh BUILD_DIR [SHARED_DIR]
# BUILD_DIR: built on the CPU machine with configure --with-cuda [--with-nccl], `make`, then
# `make -C tests engine/test_eng_lmap`; BUILD_DIR/gpu-libs may hold libraries the GPU host lacks.
# SHARED_DIR (default: ../shared beside the sources): models/stories260K.bin, fixtures/hf/.
# One GPU: the test hook's two segments on GPU 0 (device copy; with ENG_NO_P2P=1 staged
# through pinned host memory) and GPU + CPU. Two or more: also "0:A;1:B" against one GPU,
# with peer copies and with ENG_NO_P2P=1 (staged).
# Knobs: SHAPE=1b (Llama-3.2-1B shape, 16 layers; default) or 8b (Llama-3-8B, 32 layers),
# BENCH=0 to skip the speed rows, N (decode tokens, 128), RUNS (3).
# Results: $OUT/lmap-gpu.txt (one line per check, then the speed table), logs beside it.
set -u
GPU_USAGE="run-lmap-gpu.sh BUILD_DIR [SHARED_DIR]" GPU_SHARED=default GPU_RESULTS=lmap-gpu.txt
. "$(dirname "$0")/common.sh"
RI=$(bin engine ringinfer)
GEN=$(bin engine eng-genmodel)
LT=$(bin tests/engine test_eng_lmap)
N=${N:-128}
RUNS=${RUNS:-3}

need_gpus 1
[ -d "$SH/models" ] || { echo "SKIP: no shared data at $SH"; exit 77; }
line "== $(date -u +%F' '%T) UTC, $ngpu GPU(s): $(nvidia-smi -L | head -1 | cut -c1-40)"
fail=0
check() { # NAME OK(0/1) DETAIL
    line "$1: $([ "$2" = 1 ] && echo ok || echo FAIL) $3"
    [ "$2" = 1 ] || fail=1
}

# 1. The engine checks (test hook segments, fixtures), default links and staged ones.
# test_eng_lmap reads the shared data from SHARED_DIR (the preamble exports SH); without it
# the checks skip (77, reported as SKIP).
for env in "" "ENG_NO_P2P=1"; do
    log="$OUT/test_eng_lmap${env:+-staged}.log"
    env $env timeout 300 "$LT" > "$log" 2>&1
    rc=$?
    if [ $rc = 77 ]; then
        line "test_eng_lmap ${env:-(device copies)}: SKIP $(head -1 "$log")"
        continue
    fi
    check "test_eng_lmap ${env:-(device copies)}" "$([ $rc = 0 ] && echo 1 || echo 0)" \
        "rc=$rc, $(grep -c '^ok' "$log") checks passed"
    grep '^FAIL' "$log" | tee -a "$RES"
done

# 2. ringinfer: greedy ids of mapped runs equal to the whole model on GPU 0.
ids() { # ENV MODEL ARGS...: the generated ids, log in $OUT/ids.err
    local envs=$1 m=$2
    shift 2
    env $envs timeout 120 "$RI" run -m "$m" --prompt-ids 1,2,3,4 -n 32 --temperature 0 \
        --print-ids "$@" 2> "$OUT/ids.err" | tail -1
}
same_ids() { # LABEL MODEL SPEC [ENV]
    local ref got
    ref=$(ids "" "$2" --device cuda)
    got=$(ids "${4:-}" "$2" --device-layers "$3")
    check "$1 --device-layers \"$3\"${4:+ $4} ids == cuda" \
        "$([ -n "$ref" ] && [ "$ref" = "$got" ] && echo 1 || echo 0)" \
        "($(echo "$got" | cut -c1-30)...; $(grep -h 'layer mapping\|activations:\|warning\|rank 0:' "$OUT/ids.err" | sed 's/^ringinfer: //' | tr '\n' ' '))"
}
st="$SH/models/stories260K.bin"
hf="$SH/fixtures/hf/tiny-llama-f32"
same_ids stories260K "$st" 3
same_ids tiny-llama-f32 "$hf" 0:2
e=$("$RI" run -m "$st" --prompt-ids 1 -n 4 --device-layers "0:2;0:3" 2>&1 | grep '^ringinfer'); rc=$?
check "stories260K --device-layers \"0:2;0:3\" refused" \
    "$(echo "$e" | grep -q 'ordinal 0 appears twice' && echo 1 || echo 0)" "($e)"
if [ "$ngpu" -ge 2 ]; then
    same_ids stories260K "$st" "0:2;1:3"
    same_ids stories260K "$st" "0:2;1:3" ENG_NO_P2P=1
    same_ids tiny-llama-f32 "$hf" "0:2;1:2"
    same_ids tiny-llama-f32 "$hf" "1:1;0:2"
fi

# 3. Decode speed: plain one GPU, two segments on GPU 0 (the boundary alone), the last layer
# on the CPU (CPU offload), and over two GPUs with peer copies and staged.
if [ "${BENCH:-1}" = 1 ]; then
    if [ "${SHAPE:-1b}" = 8b ]; then
        name=llama3-8b L=32
        args="--dim 4096 --hidden 14336 --layers 32 --heads 32 --kv-heads 8 --head-dim 128 --vocab 128256 --seq-len 4096"
    else
        name=llama3.2-1b L=16
        args="--dim 2048 --hidden 8192 --layers 16 --heads 32 --kv-heads 8 --head-dim 64 --vocab 128256 --seq-len 4096 --tied"
    fi
    dir=/tmp/eng-bench-$name
    if [ ! -d "$dir" ]; then
        t0=$(date +%s.%N)
        "$GEN" --out "$dir" --format hf --arch llama --dtype bf16 $args --std 0.02 > /dev/null 2>&1 ||
            { line "genmodel $name failed"; exit 1; }
        line "genmodel $name: $(awk "BEGIN{print $(date +%s.%N) - $t0}") s"
    fi
    H=$((L / 2))
    prompt=$(seq -s, 1000 1031)
    tps() { sed -n 's/.*decode [0-9]* steps in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p' | head -1; }
    row() { # LABEL ENV CMD...: RUNS runs, their tok/s and the median
        local label=$1 envs=$2 all="" v; shift 2
        for ((i = 0; i < RUNS; i++)); do
            v=$(env $envs timeout 300 "$@" 2>&1 | tee -a "$OUT/bench.log" | tps)
            all="$all ${v:-FAIL}"
        done
        local med=$(echo $all | tr ' ' '\n' | grep -v FAIL | sort -n | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]; else print "FAIL"}')
        printf "| %-44s | %-26s | %8s |\n" "$label" "$all" "$med" | tee -a "$RES"
        [ "$med" = FAIL ] && fail=1
    }
    RUN=("$RI" run -m "$dir" --prompt-ids "$prompt" -n "$N" --temperature 0)
    line ""
    line "decode tok/s, $name bf16, $N tokens after 32, greedy ($RUNS runs, median)"
    line "| run | tok/s per run | median |"
    line "|---|---|---:|"
    row "one GPU (--device cuda, CUDA graph)" "" "${RUN[@]}" --device cuda
    row "test hook: GPU 0 $H layers | GPU 0 $H (device copy)" "" "$LT" --bench "$dir" "$N" "0:$H,0:$H"
    row "test hook: GPU 0 $H | GPU 0 $H, ENG_NO_P2P=1 (staged)" "ENG_NO_P2P=1" "$LT" --bench "$dir" "$N" "0:$H,0:$H"
    row "--device-layers $((L - 1)) (layer $((L - 1)) on the CPU, 8 threads)" "" "${RUN[@]}" --device-layers "$((L - 1))" --threads 8
    if [ "$ngpu" -ge 2 ]; then
        row "--device-layers \"0:$H;1:$H\" (peer copy)" "" "${RUN[@]}" --device-layers "0:$H;1:$H"
        row "--device-layers \"0:$H;1:$H\" ENG_NO_P2P=1 (staged)" "ENG_NO_P2P=1" "${RUN[@]}" --device-layers "0:$H;1:$H"
    fi
fi
line "lmap-gpu: $([ $fail = 0 ] && echo PASS || echo FAIL)"
exit $fail
