#!/bin/sh
# SPDX-License-Identifier: MIT
# The serving benchmark: starts `ringinfer serve` (--parallel 16) on a model, runs the load
# generators (vLLM's report format) at concurrency 1, 4 and 16, REPEAT times each, with two
# clients (CLIENTS="python openai": serve_bench.py over http.client, the server's own
# latencies; serve_bench.mjs, what the openai npm client sees), and the engine alone
# (`ringinfer run`) for its own time per token. Needs a build with libmicrohttpd; the openai
# client needs node and npm (it goes into BUILD/tests/serve-node, as the tests install it).
#   bench/serve_bench.sh BUILD_DIR [MODEL]   (env: REPEAT=3 OUTPUT_LEN=128 INPUT_LEN=32
#                                             PARALLEL=16 SERVE_ARGS=... RUN_ARGS=...
#                                             SERVER_CPUS=LIST CLIENT_CPUS=LIST
#                                             TEMPERATURE=0 TOP_P=1
#                                             CONCURRENCY="1 4 16")
# TEMPERATURE / TOP_P: the sampling of every request and of the engine alone (default greedy).
# SERVER_CPUS / CLIENT_CPUS pin the server (and the engine alone) and the clients to CPU lists
# (taskset -c): on a small host the clients' threads otherwise take the engine's cores.
# MODEL: stories (stories260K + tok512), tiny (fixtures/hf/tiny-llama-f32), gen15m (random
# weights in the stories15M shape, written by eng-genmodel), or path:FILE_OR_DIR (any model).
# gen15m and path: get a generated llama2.c tokenizer of the model's vocabulary (token i > 258 is
# the text " tI"): random weights have no tokenizer, and the clients time text chunks.
set -eu
build=$(cd "$1" && pwd); model=${2:-stories}
here=$(cd "$(dirname "$0")" && pwd); shared=$here/../../shared
[ -d "$shared" ] || shared=$here/../shared
ri=$build/engine/ringinfer
tmp=$(mktemp -d); pid=
# (set -e holds in the trap too: a failed kill of a server already gone must not end it early)
trap 'if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT
# gen_tok MODEL: writes $tmp/gen.tok for MODEL's vocabulary and prints that vocabulary.
gen_tok() {
    python3 - "$1" "$tmp/gen.tok" <<'PY'
import json, os, struct, sys
m, out = sys.argv[1], sys.argv[2]
if os.path.isdir(m):
    vocab = json.load(open(os.path.join(m, "config.json")))["vocab_size"]
else:
    vocab = abs(struct.unpack("<7i", open(m, "rb").read(28))[5])
# llama2.c's layout: 3..258 are the byte tokens <0x00>..<0xFF>
pieces = [b"<unk>", b"<s>", b"</s>"] + [b"<0x%02X>" % b for b in range(256)]
pieces += [b" t%d" % i for i in range(len(pieces), vocab)]
with open(out, "wb") as f:
    f.write(struct.pack("<i", max(len(p) for p in pieces)))
    for p in pieces:
        f.write(struct.pack("<fi", 0.0, len(p)) + p)
print(vocab)
PY
}
case $model in
stories) margs="-m $shared/models/stories260K.bin --tokenizer $shared/models/tok512.bin"; vocab=512 ;;
tiny) margs="-m $shared/fixtures/hf/tiny-llama-f32"; vocab=1024 ;;
gen15m)
    "$build/engine/eng-genmodel" --out "$tmp/gen15m.bin" --shape stories15M >/dev/null
    vocab=$(gen_tok "$tmp/gen15m.bin"); margs="-m $tmp/gen15m.bin --tokenizer $tmp/gen.tok" ;;
path:*)
    p=${model#path:}; vocab=$(gen_tok "$p"); margs="-m $p --tokenizer $tmp/gen.tok" ;;
*) echo "model: stories, tiny, gen15m or path:MODEL" >&2; exit 2 ;;
esac
pin_s=; pin_c=
[ -z "${SERVER_CPUS:-}" ] || pin_s="taskset -c $SERVER_CPUS"
[ -z "${CLIENT_CPUS:-}" ] || pin_c="taskset -c $CLIENT_CPUS"
node_dir=$build/tests/serve-node
case " ${CLIENTS:-python openai} " in *" openai "*) want_node=1 ;; *) want_node=0 ;; esac
if [ $want_node = 1 ] && [ ! -f "$node_dir/node_modules/openai/package.json" ]; then
    mkdir -p "$node_dir"; [ -f "$node_dir/package.json" ] || echo '{"private": true}' >"$node_dir/package.json"
    (cd "$node_dir" && timeout 300 npm install --no-audit --no-fund --silent openai)
fi
[ $want_node = 0 ] || cp "$here/serve_bench.mjs" "$node_dir/"
# shellcheck disable=SC2086
$pin_s "$ri" serve $margs --port 0 --parallel "${PARALLEL:-16}" --max-queue 256 ${SERVE_ARGS:-} >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 3000); do grep -q "listening on" "$tmp/out" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$url" ] || { cat "$tmp/err"; exit 1; }
for _ in $(seq 1 3000); do
    python3 -c "import urllib.request as u;u.urlopen('$url/health')" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || { cat "$tmp/err"; exit 1; }
    sleep 0.1
done
sed -n 's/^ringinfer: serve: /# server: /p' "$tmp/err"
out=${OUTPUT_LEN:-128}; inl=${INPUT_LEN:-32}
echo "# $(date -u +%F' '%T) $(uname -m) $(nproc) cores, model $model, input $inl, output $out tokens${SERVER_CPUS:+, server on CPUs $SERVER_CPUS}${CLIENT_CPUS:+, clients on CPUs $CLIENT_CPUS}"
temp=${TEMPERATURE:-0}; topp=${TOP_P:-1}
echo "# engine alone (ringinfer run, temperature $temp, top-p $topp, $out tokens after a $inl-token prompt):"
ids=$(python3 -c "import random;random.seed(0);print(','.join(['1']+[str(random.randrange(3,$vocab)) for _ in range($inl-1)]))")
for _ in $(seq 1 "${REPEAT:-3}"); do
    # shellcheck disable=SC2086
    $pin_s "$ri" run $margs ${RUN_ARGS:-} --prompt-ids "$ids" -n "$out" --temperature "$temp" --top-p "$topp" 2>&1 >/dev/null | sed -n 's/.*decode \([0-9]*\) steps in \([0-9.]*\) s (\([0-9.]*\) tok\/s).*/#   decode \1 steps in \2 s: \3 tok\/s/p'
done
for c in ${CONCURRENCY:-1 4 16}; do
    for r in $(seq 1 "${REPEAT:-3}"); do
        echo "## concurrency $c, run $r"
        for client in ${CLIENTS:-python openai}; do
            echo "### client $client"
            if [ "$client" = openai ]; then
                $pin_c node "$node_dir/serve_bench.mjs" --base-url "$url" --concurrency "$c" --num-prompts $((c * 4)) \
                    --input-len "$inl" --output-len "$out" --vocab "$vocab" --seed "$r" \
                    --temperature "$temp" --top-p "$topp"
            else
                $pin_c python3 "$here/serve_bench.py" --base-url "$url" --concurrency "$c" --num-prompts $((c * 4)) \
                    --input-len "$inl" --output-len "$out" --vocab "$vocab" --seed "$r" \
                    --temperature "$temp" --top-p "$topp"
            fi
        done
    done
done
kill -TERM $pid; wait $pid || true
pid=
