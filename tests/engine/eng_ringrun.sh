#!/bin/sh
# SPDX-License-Identifier: MIT
# ringinfer over the real ring on loopback: stories260K greedy ids and position-0 logits at
# TP 1, 2, 4, and the HF fixtures' greedy ids at every TP size their heads allow.
# Skips (77) when ringinfer/ringrun are not built or ../shared is absent. ringrun prefixes
# each line with its rank; only rank 0 prints, so its last line holds the ids.
. "$(dirname "$0")/../common.sh"
ri=$top/engine/ringinfer; rr=$top/tools/ringrun; shared=$SHARED_DIR
[ -x "$ri" ] || { echo "SKIP: $ri not built (needs libcoll)"; exit 77; }
[ -x "$rr" ] || { echo "SKIP: $rr not built"; exit 77; }
need_shared models/stories260K.bin
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0
want="403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 426 385"
for n in 1 2 4; do
  got=$(timeout 120 "$rr" -n $n -- "$ri" run -m "$shared/models/stories260K.bin" --prompt-ids 1 \
        -n 32 --temperature 0 --print-ids --dump-logits "$tmp/l$n.f32" 2>"$tmp/err$n" | sed -n 's/^\[0\] //p' | tail -n 1)
  l1=$(od -An -t f4 -j 4 -N 4 "$tmp/l$n.f32" 2>/dev/null | tr -d ' ')
  if [ "$got" = "$want" ] && awk -v x="$l1" 'BEGIN{d=x-8.404342; exit !(d<1e-4 && d>-1e-4)}'; then
    echo "stories260K tp=$n: ids match, logit[1] $l1"
  else
    echo "FAIL stories260K tp=$n: ids '$got' logit[1] '$l1'"; cat "$tmp/err$n"; fail=1
  fi
done
for f in tiny-llama-f32:1,2,4 tiny-qwen3-bf16:1,2,4 tiny-mistral-f16:1,2,4,8; do
  name=${f%%:*}; d=$shared/fixtures/hf/$name
  [ -d "$d" ] || { echo "fixture $name absent, skipped"; continue; }
  ids=$(python3 -c "import json;r=json.load(open('$d/reference.json'));print(','.join(map(str,r['prompt_ids'])));print(' '.join(map(str,r['greedy_ids'])))")
  prompt=$(echo "$ids" | sed -n 1p); greedy=$(echo "$ids" | sed -n 2p)
  for n in $(echo "${f#*:}" | tr , ' '); do
    got=$(timeout 120 "$rr" -n $n -- "$ri" run -m "$d" --prompt-ids "$prompt" -n 16 \
          --temperature 0 --print-ids 2>"$tmp/e" | sed -n 's/^\[0\] //p' | tail -n 1)
    if [ "$got" = "$greedy" ]; then echo "$name tp=$n: greedy ids match"
    else echo "FAIL $name tp=$n: '$got'"; cat "$tmp/e"; fail=1; fi
  done
done
exit $fail
