#!/bin/sh
# SPDX-License-Identifier: MIT
# FIFOs and other non-regular files are refused at once (issue 15): RING_CONFIG, the secret
# file, a config file ringrun writes, a model, its config.json, its safetensors, a tokenizer
# and --dump-logits without a reader used to block in open() past every deadline. Each run is
# bounded by `timeout -s KILL` (status 137 means it blocked).
set -u
. "$(dirname "$0")/../common.sh"
shared=$SHARED_DIR
[ -x "${RING_TEST:-}" ] && [ -x "${RINGRUN:-}" ] || { echo "SKIP: ring-test or ringrun not built"; exit 77; }
ri=$top/engine/ringinfer
fails=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkfifo "$tmp/fifo" || exit 99
# $1 label, $2 text the one-line error must hold, rest: the command.
expect() {
  label=$1 want=$2; shift 2
  timeout -s KILL 20 "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 137 ] && grep -q -- "$want" "$tmp/err"; then
    echo "ok: $label: exit $rc: $(grep -- "$want" "$tmp/err" | head -n 1)"
  else
    echo "FAIL: $label: exit $rc (137: blocked), want '$want':"; cat "$tmp/err"; fails=$((fails + 1))
  fi
}
expect "RING_CONFIG is a FIFO" "fifo: not a regular file" env RING_CONFIG="$tmp/fifo" "$RING_TEST"
"$RINGRUN" --print-configs --hosts 127.0.0.1,127.0.0.1 --out "$tmp/cfg" >/dev/null || exit 99
expect "RING_SECRET_FILE is a FIFO" "fifo: not a regular file" \
  env RING_CONFIG="$tmp/cfg/rank-0.json" RING_SECRET_FILE="$tmp/fifo" "$RING_TEST"
mkdir "$tmp/cfg2" && mkfifo "$tmp/cfg2/rank-0.json"
expect "ringrun --print-configs onto a FIFO" "rank-0.json: cannot create: not a regular file" \
  "$RINGRUN" --print-configs --hosts 127.0.0.1,127.0.0.1 --out "$tmp/cfg2"
if [ -x "$ri" ]; then
  unset RING_CONFIG
  expect "model is a FIFO" "fifo: not a regular file" "$ri" run -m "$tmp/fifo" --prompt-ids 1 -n 1
  m=$shared/models/stories260K.bin hf=$shared/fixtures/hf/tiny-llama-f32
  if [ -f "$m" ] && [ -d "$hf" ]; then
    expect "--tokenizer is a FIFO" "fifo: not a regular file" \
      "$ri" run -m "$m" --tokenizer "$tmp/fifo" -p hi -n 1
    expect "--dump-logits to a FIFO nobody reads" "a FIFO that nobody reads" \
      "$ri" run -m "$m" --prompt-ids 1 -n 1 --dump-logits "$tmp/fifo"
    for f in config.json generation_config.json model.safetensors tokenizer.json; do
      rm -rf "$tmp/hf"; mkdir "$tmp/hf"
      for g in config.json generation_config.json model.safetensors tokenizer.json; do
        [ $g = $f ] && mkfifo "$tmp/hf/$g" || ln -s "$hf/$g" "$tmp/hf/$g"
      done
      expect "$f is a FIFO" "$f: not a regular file" "$ri" run -m "$tmp/hf" -p hi -n 1
    done
  else
    echo "../shared absent: the model and tokenizer FIFO checks are skipped"
  fi
fi
[ $fails -eq 0 ] && echo "PASS: FIFOs refused" || echo "FAIL: $fails checks"
exit $fails
