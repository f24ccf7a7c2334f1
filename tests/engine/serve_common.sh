# SPDX-License-Identifier: MIT
# Sourced by the serve_*.sh tests: skip (77) unless ringinfer has `serve` and ../shared exists.
. "$(dirname "$0")/../common.sh"
export abs_top_builddir="$top"
ri=$top/engine/ringinfer
[ -x "$ri" ] || { echo "SKIP: $ri not built"; exit 77; }
"$ri" serve --help >/dev/null 2>&1 || { echo "SKIP: ringinfer built without HTTP support (libmicrohttpd)"; exit 77; }
need_shared models/stories260K.bin fixtures/hf/tiny-llama-f32
command -v python3 >/dev/null || { echo "SKIP: python3 absent"; exit 77; }
