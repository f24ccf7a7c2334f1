#!/bin/sh
# The serving benchmark on this machine's CPU: starts `ringinfer serve` (--parallel 16) on a
# shared model, runs serve_bench.mjs (openai client, vLLM's report format) at concurrency
# 1, 4 and 16, REPEAT times each, with two clients (CLIENTS="python openai": serve_bench.py
# over http.client, the server's own latencies; serve_bench.mjs, what the openai npm client
# sees), and the engine alone (`ringinfer run`) for its own time
# per token. Needs a build with libmicrohttpd, node and npm (the client goes into
# BUILD/tests/serve-node, as the tests install it).
#   bench/serve_bench.sh BUILD_DIR [stories|tiny]   (env: REPEAT=3 OUTPUT_LEN=128 INPUT_LEN=32)
set -eu
build=$(cd "$1" && pwd); model=${2:-stories}
here=$(cd "$(dirname "$0")" && pwd); shared=$here/../../shared
[ -d "$shared" ] || shared=$here/../shared
ri=$build/engine/ringinfer
case $model in
stories) margs="-m $shared/models/stories260K.bin --tokenizer $shared/models/tok512.bin"; vocab=512 ;;
tiny) margs="-m $shared/fixtures/hf/tiny-llama-f32"; vocab=1024 ;;
*) echo "model: stories or tiny" >&2; exit 2 ;;
esac
node_dir=$build/tests/serve-node
if [ ! -f "$node_dir/node_modules/openai/package.json" ]; then
    mkdir -p "$node_dir"; [ -f "$node_dir/package.json" ] || echo '{"private": true}' >"$node_dir/package.json"
    (cd "$node_dir" && timeout 300 npm install --no-audit --no-fund --silent openai)
fi
cp "$here/serve_bench.mjs" "$node_dir/"
tmp=$(mktemp -d); trap 'kill $pid 2>/dev/null; rm -rf "$tmp"' EXIT
# shellcheck disable=SC2086
"$ri" serve $margs --port 0 --parallel 16 --max-queue 256 >"$tmp/out" 2>"$tmp/err" &
pid=$!
for _ in $(seq 1 600); do grep -q "listening on" "$tmp/out" && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$tmp/out")
[ -n "$url" ] || { cat "$tmp/err"; exit 1; }
for _ in $(seq 1 600); do python3 -c "import urllib.request as u;u.urlopen('$url/health')" 2>/dev/null && break; sleep 0.1; done
out=${OUTPUT_LEN:-128}; inl=${INPUT_LEN:-32}
echo "# $(date -u +%F) $(uname -m) $(nproc) cores, model $model, input $inl, output $out tokens"
echo "# engine alone (ringinfer run, greedy, $out tokens after a $inl-token prompt):"
ids=$(python3 -c "import random;random.seed(0);print(','.join(['1']+[str(random.randrange(3,$vocab)) for _ in range($inl-1)]))")
for _ in $(seq 1 "${REPEAT:-3}"); do
    # shellcheck disable=SC2086
    "$ri" run $margs --prompt-ids "$ids" -n "$out" --temperature 0 2>&1 >/dev/null | sed -n 's/.*decode \([0-9]*\) steps in \([0-9.]*\) s (\([0-9.]*\) tok\/s).*/#   decode \1 steps in \2 s: \3 tok\/s/p'
done
for c in 1 4 16; do
    for r in $(seq 1 "${REPEAT:-3}"); do
        echo "## concurrency $c, run $r"
        for client in ${CLIENTS:-python openai}; do
            echo "### client $client"
            if [ "$client" = openai ]; then
                node "$node_dir/serve_bench.mjs" --base-url "$url" --concurrency "$c" --num-prompts $((c * 4)) \
                    --input-len "$inl" --output-len "$out" --vocab "$vocab" --seed "$r"
            else
                python3 "$here/serve_bench.py" --base-url "$url" --concurrency "$c" --num-prompts $((c * 4)) \
                    --input-len "$inl" --output-len "$out" --vocab "$vocab" --seed "$r"
            fi
        done
    done
done
kill -TERM $pid; wait $pid || true
