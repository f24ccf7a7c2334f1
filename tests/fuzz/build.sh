#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets into $1 (default ./fuzz-build) with clang, ASan and UBSan,
# straight from libring's sources. Exit 77 when clang or its fuzzer runtime is missing.
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-fuzz-build}
CC=${FUZZ_CC:-clang}
mkdir -p "$out"
if ! command -v "$CC" >/dev/null 2>&1 || ! echo 'int LLVMFuzzerTestOneInput(const char *d, long n){(void)d;(void)n;return 0;}' |
    "$CC" -x c -fsanitize=fuzzer - -o "$out/probe" 2>/dev/null; then
    echo "SKIP: $CC with libFuzzer not available (apt-get install clang libclang-rt-14-dev)"
    exit 77
fi
flags="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$src/libring -I$src $(pkg-config --cflags libcjson)"
lib="$src/libring/status.c $src/libring/log.c $src/libring/knobs.c $src/libring/wire.c"
"$CC" $flags -o "$out/fuzz_config" "$src/tests/fuzz/fuzz_config.c" $lib "$src/libring/config.c" $(pkg-config --libs libcjson) -lm
"$CC" $flags -o "$out/fuzz_wire" "$src/tests/fuzz/fuzz_wire.c" $lib
echo "built $out/fuzz_config $out/fuzz_wire"
