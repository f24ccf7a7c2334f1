# SPDX-License-Identifier: MIT
# ringinfer on the GPUs of one host, sourced by run-multi-gpu.sh when it is given SHARED_DIR
# (it sets B, SH, OUT, ngpu and the helpers of common.sh, and counts failed steps in fails). Two parts, one table each:
# 1. Greedy ids at TP n (n = 2, 4, 8 up to the GPU count; with one GPU, 2 ring ranks on it)
#    equal to TP 1 on one GPU, for stories260K and the HF fixtures, on every path:
#      nccl       NCCL, one process per GPU, COLL_P2P_MAX_BYTES=0 (NCCL alone)
#      nccl+p2p   the same with the one-shot p2p for the decode all-reduces (the default)
#      ring       RING_CONFIG + MISTRALRS_NO_NCCL=1, COLL_P2P_MAX_BYTES=0 (ring-cuda, staged)
#      ring+p2p   the ring with p2p (the default)
#      mn         multi-node NCCL: two "nodes" of n/2 GPUs, split by CUDA_VISIBLE_DEVICES
#                 (head: MISTRALRS_MN_HEAD_*, worker: MISTRALRS_MN_WORKER_*)
# 2. Decode speed, Llama-3-8B shape, bf16, batch 1, 128 tokens after 32 (several GPUs, or
#    BENCH_8B=1): TP 1/2/4/8 on nccl+p2p (the decode step one CUDA graph) and on the ring
#    on device buffers, staged (p2p off). All-reduce share: the staged ring times its
#    all-reduces on the host (the CLI's figure); inside a graph they cannot be timed, so for
#    nccl+p2p the share is estimated as 2 x layers x t(all-reduce of dim f32, coll-bench -G,
#    same chain, same GPUs) / step time.
RI=$(bin engine ringinfer)
RR=$(bin tools ringrun)
GEN=$(bin engine eng-genmodel)
ERES="$OUT/engine-results.txt"
: > "$ERES"
for f in "$RI" "$RR" "$GEN"; do
    [ -x "$f" ] || { echo "FAIL: $f is missing: build engine/ and tools/"; fails=$((fails + 1)); return; }
done

# eng NAME PATH N ARGS...: `ringinfer run ARGS` on PATH with N ranks (N 1: one process on
# GPU 0); rank 0's last stdout line on stdout, its stderr in $OUT/eng-NAME.err.
eng() {
    local name=$1 path=$2 n=$3; shift 3
    local vis; vis=$(seq -s, 0 $((n - 1)))
    [ "$ngpu" -lt "$n" ] && vis=0 # one GPU: the ring ranks share it
    local e="$OUT/eng-$name.err"
    case $path in
    one) CUDA_VISIBLE_DEVICES=0 timeout 300 "$RI" run "$@" 2> "$e" | tail -n 1 ;;
    nccl | nccl+p2p)
        local p2p=""; [ "$path" = nccl ] && p2p="COLL_P2P_MAX_BYTES=0"
        env CUDA_VISIBLE_DEVICES="$vis" MISTRALRS_NO_NCCL= $p2p timeout 300 "$RI" run "$@" 2> "$e" | tail -n 1 ;;
    ring | ring+p2p)
        local p2p=""; [ "$path" = ring ] && p2p="COLL_P2P_MAX_BYTES=0"
        env CUDA_VISIBLE_DEVICES="$vis" MISTRALRS_NO_NCCL=1 $p2p timeout 300 "$RR" -n "$n" -- "$RI" run "$@" 2> "$e.all" |
            sed -n 's/^\[0\] //p' | tail -n 1
        sed -n 's/^\[0\] //p' "$e.all" > "$e" ;;
    mn)
        local h=$((n / 2)) port; port=$(free_port)
        local hv wv; hv=$(seq -s, 0 $((h - 1))); wv=$(seq -s, $h $((n - 1)))
        env CUDA_VISIBLE_DEVICES="$wv" MISTRALRS_MN_GLOBAL_WORLD_SIZE=$n MISTRALRS_MN_LOCAL_WORLD_SIZE=$h \
            MISTRALRS_MN_WORKER_SERVER_ADDR=127.0.0.1:$port MISTRALRS_MN_WORKER_ID=0 \
            timeout 300 "$RI" run "$@" > /dev/null 2> "$e.worker" &
        local wp=$!
        env CUDA_VISIBLE_DEVICES="$hv" MISTRALRS_MN_GLOBAL_WORLD_SIZE=$n MISTRALRS_MN_LOCAL_WORLD_SIZE=$h \
            MISTRALRS_MN_HEAD_NUM_WORKERS=1 MISTRALRS_MN_HEAD_PORT=$port \
            timeout 300 "$RI" run "$@" 2> "$e" | tail -n 1
        wait "$wp" || echo "ringinfer: the worker node exited with status $?" >> "$e" ;;
    esac
}

# 1. Correctness.
tps=""
for n in 2 4 8; do [ "$ngpu" -ge "$n" ] && tps="$tps $n"; done
[ -z "$tps" ] && tps=2 # one GPU: the ring paths with two ranks on it
paths="ring ring+p2p"
[ "$ngpu" -ge 2 ] && paths="nccl nccl+p2p ring ring+p2p mn"
models="stories260K"
for f in tiny-llama-f32 tiny-qwen3-bf16 tiny-mistral-f16; do [ -d "$SH/fixtures/hf/$f" ] && models="$models $f"; done
{
    echo "# ringinfer greedy ids at TP n against TP 1 on GPU 0 ($(date -u +%F\ %T) UTC, $ngpu GPUs, NCCL_NVLS_ENABLE=0): ok / FAIL / - (not run)"
    printf "%-17s %-3s" model tp
    for p in $paths; do printf " | %-8s" "$p"; done
    printf "\n"
} >> "$ERES"
for model in $models; do
    if [ "$model" = stories260K ]; then
        args=(-m "$SH/models/stories260K.bin" --prompt-ids 1 -n 32 --temperature 0 --print-ids)
    else
        d="$SH/fixtures/hf/$model"
        prompt=$(python3 -c "import json; print(','.join(map(str, json.load(open('$d/reference.json'))['prompt_ids'])))")
        args=(-m "$d" --prompt-ids "$prompt" -n 16 --temperature 0 --print-ids)
    fi
    want=$(eng "$model-tp1" one 1 "${args[@]}" --device cuda)
    [ -n "$want" ] || { echo "FAIL: $model at TP 1: $(tail -2 "$OUT/eng-$model-tp1.err")"; fails=$((fails + 1)); }
    for n in $tps; do
        row=$(printf "%-17s %-3s" "$model" "$n")
        for p in $paths; do
            got=$(eng "$model-tp$n-$p" "$p" "$n" "${args[@]}")
            if [ -n "$want" ] && [ "$got" = "$want" ]; then r=ok
            else r=FAIL; fails=$((fails + 1)); echo "FAIL $model TP $n $p: '$got' vs '$want'"; tail -3 "$OUT/eng-$model-tp$n-$p.err"; fi
            row="$row | $(printf %-8s $r)"
        done
        echo "$row" >> "$ERES"
    done
done

# 2. Decode speed, Llama-3-8B shape.
if [ "$ngpu" -ge 2 ] || [ "${BENCH_8B:-0}" = 1 ]; then
    M8=/tmp/eng-bench-llama3-8b
    if [ ! -d "$M8" ]; then
        "$GEN" --out "$M8.tmp" --format hf --arch llama --dtype bf16 --dim 4096 --hidden 14336 \
            --layers 32 --heads 32 --kv-heads 8 --head-dim 128 --vocab 128256 --seq-len 4096 \
            --std 0.02 > /dev/null 2>&1 && mv "$M8.tmp" "$M8"
    fi
    prompt=$(seq -s, 1000 1031)
    bargs=(-m "$M8" --prompt-ids "$prompt" -n 128 --temperature 0)
    BENCH="$B/tools/.libs/coll-bench"
    [ -x "$BENCH" ] || BENCH="$B/tools/coll-bench"
    # tok/s and the CLI's host all-reduce share of RUNS runs: "tok/s... | share%..."
    speed() {
        local name=$1 path=$2 n=$3 i tok="" share=""
        for ((i = 1; i <= ${RUNS:-3}; i++)); do
            eng "8b-$name" "$path" "$n" "${bargs[@]}" > /dev/null
            cat "$OUT/eng-8b-$name.err" >> "$OUT/eng-8b.log"
            tok="$tok $(sed -n 's/.*decode [0-9]* steps in [0-9.]* s (\([0-9.]*\) tok\/s).*/\1/p' "$OUT/eng-8b-$name.err")"
            share="$share $(sed -n 's/.* host calls (\([0-9.]*\)% of prefill+decode).*/\1/p' "$OUT/eng-8b-$name.err")"
        done
        echo "$tok|$share"
    }
    med() { printf '%s\n' $1 | sort -g | awk 'NF {a[++n] = $1} END {if (n) print a[int((n + 1) / 2)]; else print "-"}'; }
    {
        echo
        echo "# decode tok/s, Llama-3-8B shape bf16, 128 tokens after 32, ${RUNS:-3} runs each (median; runs)"
        echo "# goal (issue 16): TP 2 / 4 / 8 at least 1.65x / 2.6x / 3.3x TP 1"
        printf "%-3s | %-26s | %-7s | %-22s | %-26s | %-20s\n" tp "nccl+p2p tok/s" "vs TP 1" \
            "all-reduce share (est.)" "ring (staged) tok/s" "all-reduce share (host)"
    } >> "$ERES"
    base=""
    for n in 1 $tps; do
        [ "$n" -le "$ngpu" ] || continue
        if [ "$n" = 1 ]; then a=$(speed tp1 one 1); else a=$(speed "tp$n-nccl" nccl+p2p "$n"); fi
        t=$(med "${a%%|*}")
        [ "$n" = 1 ] && base=$t
        ratio=$(awk -v t="$t" -v b="$base" 'BEGIN { if (t + 0 > 0 && b + 0 > 0) printf "%.2fx", t / b; else print "-" }')
        est="-"; rt="-"; rs="-"
        if [ "$n" -gt 1 ]; then
            # one all-reduce of dim (4096) f32 on the same chain and GPUs, p50
            CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((n - 1))) timeout 300 "$BENCH" -G -b 16K -e 16K -n 200 -w 20 -c 1 -d f32 \
                > "$OUT/eng-ar-x$n.txt" 2>&1
            us=$(awk '$1 == 16384 {print $(NF - 1)}' "$OUT/eng-ar-x$n.txt" | head -1)
            est=$(awk -v us="$us" -v t="$t" 'BEGIN { if (us + 0 > 0 && t + 0 > 0) printf "%.1f%% (%s us x 64)", 100 * 64 * us * 1e-6 * t, us; else print "-" }')
            b=$(speed "tp$n-ring" ring "$n")
            rt="$(med "${b%%|*}") ($(echo ${b%%|*}))"
            rs="$(med "${b#*|}")% ($(echo ${b#*|}))"
        fi
        printf "%-3s | %-26s | %-7s | %-22s | %-26s | %-20s\n" "$n" "$t ($(echo ${a%%|*}))" "$ratio" "$est" "$rt" "$rs" >> "$ERES"
    done
fi
cat "$ERES"
