#!/bin/sh
# SPDX-License-Identifier: MIT
# ringinfer's output (issue 15): sampled text of the HF fixtures is valid UTF-8 (byte-level BPE
# pieces split characters), a write error on stdout (/dev/full, a closed stdout) is an error
# with a message, and a run that cannot show text says why. Skips (77) when ringinfer is not
# built or ../shared is absent.
. "$(dirname "$0")/../common.sh"
ri=$top/engine/ringinfer; shared=$SHARED_DIR
[ -x "$ri" ] || { echo "SKIP: $ri not built (needs libcoll)"; exit 77; }
need_shared fixtures/hf/tiny-llama-f32
unset RING_CONFIG COLL_PROVIDER
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
valid_utf8() { python3 -c 'import sys; sys.stdin.buffer.read().decode("utf-8")' <"$1" 2>/dev/null; }
for name in tiny-llama-f32 tiny-qwen3-bf16 tiny-mistral-f16; do
  d=$shared/fixtures/hf/$name
  [ -d "$d" ] || continue
  for seed in 1 2 3; do
    timeout 120 "$ri" run -m "$d" -p "Hello, world" -n 200 --temperature 1 --seed $seed \
      >"$tmp/out" 2>"$tmp/err" || { bad "$name seed $seed: exit $?"; cat "$tmp/err"; continue; }
    if valid_utf8 "$tmp/out"; then echo "$name seed $seed: $(wc -c <"$tmp/out") bytes, valid UTF-8"
    else bad "$name seed $seed: output is not valid UTF-8"; fi
  done
done
d=$shared/fixtures/hf/tiny-llama-f32
# A full disk: the text is lost, so the run fails and says so.
timeout 60 "$ri" run -m "$d" -p "Hello" -n 8 --temperature 0 >/dev/full 2>"$tmp/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "No space left on device" "$tmp/err"; then echo "/dev/full: exit $rc: $(cat "$tmp/err" | tail -n 1)"
else bad "/dev/full: exit $rc"; cat "$tmp/err"; fi
# Same with ids only.
timeout 60 "$ri" run -m "$d" --prompt-ids 1,2 -n 4 --temperature 0 --print-ids >/dev/full 2>"$tmp/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "No space left on device" "$tmp/err"; then echo "/dev/full --print-ids: exit $rc"
else bad "/dev/full --print-ids: exit $rc"; cat "$tmp/err"; fi
# A closed stdout.
timeout 60 "$ri" run -m "$d" -p "Hello" -n 8 --temperature 0 >&- 2>"$tmp/err"; rc=$?
if [ $rc -ne 0 ] && grep -q "standard output is closed" "$tmp/err"; then echo "closed stdout: exit $rc"
else bad "closed stdout: exit $rc"; cat "$tmp/err"; fi
# Ids in, no tokenizer, no --print-ids: nothing to show, and it says why.
m=$shared/models/stories260K.bin
if [ -f "$m" ]; then
  timeout 60 "$ri" run -m "$m" --prompt-ids 1 -n 4 --temperature 0 >"$tmp/out" 2>"$tmp/err"; rc=$?
  if [ $rc -eq 0 ] && grep -q "no text:.*--print-ids" "$tmp/err"; then echo "no tokenizer: $(grep 'no text' "$tmp/err")"
  else bad "no tokenizer, no --print-ids: exit $rc, no explanation"; cat "$tmp/err"; fi
fi
exit $fail
