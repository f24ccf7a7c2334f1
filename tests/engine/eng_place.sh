#!/bin/sh
# SPDX-License-Identifier: MIT
# The device selection as ringinfer applies it for run and serve (engine/place.c): the layout
# line at start-up and the selection's errors, one line each, before any model is loaded.
# Without a GPU (CI): the --device/--device-layers errors, ring tensor parallelism on the CPU,
# and a ring the model's heads cannot split over (mistral.rs's message). Skips (77) when
# ringinfer/ringrun are not built or ../shared is absent, or when a GPU is visible (the
# errors below assume none: tests/gpu/run-engine-tp-gpu.sh covers the GPU layouts).
. "$(dirname "$0")/../common.sh"
ri=$top/engine/ringinfer; rr=$top/tools/ringrun; shared=$SHARED_DIR
[ -x "$ri" ] || { echo "SKIP: $ri not built (needs libcoll)"; exit 77; }
[ -x "$rr" ] || { echo "SKIP: $rr not built"; exit 77; }
st=$shared/models/stories260K.bin
need_shared models/stories260K.bin
if "$ri" --print-config | grep -q "^backend cuda *= GPU"; then
    echo "SKIP: a GPU is visible (these checks assume none)"; exit 77
fi
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0

# err NAME RC NEEDLE CMD...: exit RC (a case pattern), and stderr's only ringinfer line
# contains NEEDLE
err() {
    name=$1 want=$2 needle=$3; shift 3
    "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?
    n=$(grep -c "^ringinfer" "$tmp/err")
    ok=0
    case $rc in $want) ok=1 ;; esac
    if [ $ok = 1 ] && [ "$n" = 1 ] && grep -qF -- "$needle" "$tmp/err"; then
        echo "$name: exit $rc: $(grep "^ringinfer" "$tmp/err")"
    else
        echo "FAIL $name: exit $rc (want $want), $n lines, want '$needle':"; cat "$tmp/err"; fail=1
    fi
}
run="$ri run -m $st --prompt-ids 1 -n 2 --temperature 0"
err "--device-layers, no GPU" 2 '--device-layers "3": ordinal 0 is unknown: no GPU is visible' $run --device-layers 3
err "--device-layers, --device cpu" 2 '--device-layers puts layers on GPUs: it cannot go with --device cpu' \
    $run --device cpu --device-layers "0:2"
# 1: no CUDA backend in this build; 2: a CUDA build that sees no GPU
err "--device cuda, no GPU" "[12]" "--device cuda: " $run --device cuda
if "$ri" serve --help > /dev/null 2>&1; then
    err "serve --device-layers" 2 '--device-layers "2": ordinal 0 is unknown: no GPU is visible' \
        "$ri" serve -m "$st" --port 0 -n 2
    err "serve --device cpu --device-layers" 2 '"2": layer mapping needs a GPU, and --device cpu was given' \
        "$ri" serve -m "$st" --port 0 --device cpu -n 2
    err "serve --device gpu" 2 "--device: 'gpu' is not cuda or cpu" "$ri" serve -m "$st" --device gpu
    err "serve --prefill-precision" 2 "--prefill-precision: 'f32' is neither fast nor high" \
        "$ri" serve -m "$st" --prefill-precision f32
else
    echo "serve not built (no libmicrohttpd): its checks skipped"
fi
# 16 ranks of the ring: stories260K's 8 heads do not split; a rank says so in one line (ringrun
# stops the others once one has failed, so not every rank gets to say it).
timeout 120 "$rr" -n 16 -- $run > "$tmp/out" 2> "$tmp/err16"; rc=$?
n=$(grep -c "ringinfer: rank [0-9]*: Total number of attention heads (8) must be divisible by tensor parallel size (16). (tensor parallel size 16: the world size in RING_CONFIG)" "$tmp/err16")
if [ $rc -ne 0 ] && [ "$n" -ge 1 ] && [ "$(grep -c ringinfer: "$tmp/err16")" = "$n" ]; then
    echo "ring of 16, 8 heads: $n ranks said: $(grep -m1 'ringinfer:' "$tmp/err16")"
else
    echo "FAIL ring of 16: exit $rc, $n matching lines:"; grep ringinfer: "$tmp/err16" | head -5; fail=1
fi
# TP 2 on the CPU: the layout line, the ids of TP 1.
timeout 120 "$rr" -n 2 -- $run --print-ids -n 8 > "$tmp/out" 2> "$tmp/err2"
got=$(sed -n 's/^\[0\] //p' "$tmp/out" | tail -n 1)
if [ "$got" = "403 407 261 378 432 383 286 261" ] &&
    grep -q "^\[0\] ringinfer: layout: ring tensor parallelism (RING_CONFIG); provider ring, tensor parallel 2, rank 0 on the CPU" "$tmp/err2"; then
    echo "ring of 2: $(sed -n 's/^\[0\] ringinfer: layout/layout/p' "$tmp/err2"); ids $got"
else
    echo "FAIL ring of 2: ids '$got'"; cat "$tmp/err2"; fail=1
fi
exit $fail
