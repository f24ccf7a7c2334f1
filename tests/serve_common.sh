# SPDX-License-Identifier: MIT
# Sourced by the serve_*.sh tests: skip (77) unless ringinfer has `serve` and ../shared exists.
top=${abs_top_builddir:-$(cd "$(dirname "$0")/.." && pwd)}
src=${abs_top_srcdir:-$(cd "$(dirname "$0")/.." && pwd)}
SHARED_DIR=${SHARED_DIR:-$src/../shared}
export abs_top_builddir="$top" SHARED_DIR
ri=$top/engine/ringinfer
[ -x "$ri" ] || { echo "SKIP: $ri not built"; exit 77; }
"$ri" serve --help >/dev/null 2>&1 || { echo "SKIP: ringinfer built without HTTP support (libmicrohttpd)"; exit 77; }
[ -f "$SHARED_DIR/models/stories260K.bin" ] || { echo "SKIP: $SHARED_DIR/models absent"; exit 77; }
[ -d "$SHARED_DIR/fixtures/hf/tiny-llama-f32" ] || { echo "SKIP: $SHARED_DIR/fixtures/hf absent"; exit 77; }
command -v python3 >/dev/null || { echo "SKIP: python3 absent"; exit 77; }
