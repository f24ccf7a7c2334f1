#!/bin/sh
# SPDX-License-Identifier: MIT
# ringinfer serve against the official `openai` npm client (serve_openai.mjs). The client is
# installed here into the build tree (tests/serve-node) from the npm registry; without node,
# npm or the registry the test skips (77).
. "$(dirname "$0")/serve_common.sh"
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: node/npm absent (scripts/install-deps)"; exit 77; }
dir=$top/tests/serve-node
if [ ! -f "$dir/node_modules/openai/package.json" ]; then
    mkdir -p "$dir" && [ -f "$dir/package.json" ] || echo '{"private": true}' >"$dir/package.json"
    (cd "$dir" && timeout 300 npm install --no-audit --no-fund --silent openai >npm.log 2>&1) ||
        { echo "SKIP: npm install openai failed (no registry?):"; tail -5 "$dir/npm.log"; exit 77; }
fi
# ESM resolves 'openai' from the script's folder: run a copy that sits beside node_modules.
cp "$(dirname "$0")/serve_openai.mjs" "$dir/serve_openai.mjs" || exit 99
exec timeout 600 node "$dir/serve_openai.mjs" "$ri" "$SHARED_DIR"
