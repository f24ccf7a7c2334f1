# SPDX-License-Identifier: MIT
# The GPU scripts' preamble, sourced by each (`. "$(dirname "$0")/common.sh"`) after it sets
#   GPU_USAGE          its usage line (shown when BUILD_DIR is missing)
#   GPU_BUILD_DEFAULT  BUILD_DIR when the first argument is absent (unset: required)
#   GPU_SHARED         the second argument, SHARED_DIR: none (default), optional, required,
#                      or default (../shared beside the source tree when absent)
#   GPU_RESULTS        the results file's name under $OUT (unset: none)
# It sets HERE (tests/gpu), SRC (the source tree), B (the build tree), SH (the shared data,
# exported as SHARED_DIR for the test programs; "" when absent and optional), OUT (the output
# folder: $OUT or a new temporary one) and RES, exports LD_LIBRARY_PATH (the build's
# libraries, then BUILD_DIR/gpu-libs for those the GPU host lacks), and defines:
#   bin DIR NAME      the program DIR/NAME of the build (libtool's real binary when there)
#   line TEXT         TEXT on stdout and in $RES
#   need_gpus N       ngpu = the GPUs nvidia-smi lists (list in $OUT/gpus.txt); SKIP (77) below N
#   need_bins FILE... FAIL (exit 1) naming the first one that is not built
#   free_base N       a base port P with P..P+N-1 free below the ephemeral range
#   free_port         a free port the kernel picks (for a server that binds it at once)
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../.." && pwd)
if [ -n "${GPU_BUILD_DEFAULT:-}" ]; then
    B=$(cd "${1:-$GPU_BUILD_DEFAULT}" && pwd) || { echo "FAIL: no build folder ${1:-$GPU_BUILD_DEFAULT}"; exit 1; }
else
    B=$(cd "${1:?usage: $GPU_USAGE}" && pwd) || exit 1
fi
SH=""
case ${GPU_SHARED:-none} in
none) ;;
optional) [ -n "${2:-}" ] && { SH=$(cd "$2" && pwd) || { echo "FAIL: no shared folder $2"; exit 1; }; } ;;
required) SH=$(cd "${2:?usage: $GPU_USAGE}" && pwd) || exit 1 ;;
default) SH=${2:-$SRC/../shared} ;;
esac
[ -n "$SH" ] && export SHARED_DIR="$SH"
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
RES=""
if [ -n "${GPU_RESULTS:-}" ]; then
    RES="$OUT/$GPU_RESULTS"
    : > "$RES"
fi
export LD_LIBRARY_PATH="$B/libcoll/.libs:$B/libring/.libs:$B/gpu-libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

bin() { if [ -x "$B/$1/.libs/$2" ]; then echo "$B/$1/.libs/$2"; else echo "$B/$1/$2"; fi; }
line() { echo "$*" | tee -a "${RES:-/dev/null}"; }
need_gpus() {
    nvidia-smi -L > "$OUT/gpus.txt" 2>&1
    ngpu=$(grep -c '^GPU' "$OUT/gpus.txt")
    if [ "$ngpu" -lt "$1" ]; then
        if [ "$1" = 1 ]; then echo "SKIP: no GPU (nvidia-smi lists none)"; else echo "SKIP: needs $1 GPUs, nvidia-smi lists $ngpu"; fi
        exit 77
    fi
}
need_bins() {
    local f
    for f in "$@"; do
        [ -x "$f" ] || { echo "FAIL: $f is missing: build it first (see the header)"; exit 1; }
    done
}
free_base() { python3 "$SRC/tests/ring/free_ports.py" "$1"; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
