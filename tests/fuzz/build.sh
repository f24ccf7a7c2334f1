#!/bin/sh
# SPDX-License-Identifier: MIT
# Build the libFuzzer targets into $1 (default ./fuzz-build) with clang, ASan and UBSan,
# straight from the libraries' sources, and list their names in $1/targets (smoke.sh and
# long-run.sh run what is listed). Exit 77 when clang or its fuzzer runtime is missing.
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
flags="-g -O1 -std=gnu11 -D_GNU_SOURCE -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$src/libring -I$src -I$src/engine -I$src/engine/tokenizer $(pkg-config --cflags libcjson)"
: >"$out/targets"
# build NAME SOURCES... [-lLIBS]: tests/fuzz/fuzz_NAME.c with the given sources
build() {
    name=$1
    shift
    "$CC" $flags -o "$out/fuzz_$name" "$src/tests/fuzz/fuzz_$name.c" "$@"
    echo "$name" >>"$out/targets"
}
e=$src/engine
template=$(ls "$e"/template/*.c | grep -v /cli.c)
tokenizer=$(ls "$e"/tokenizer/*.c)
cjson=$(pkg-config --libs libcjson)
# knobs.c reads the transport names from config.c (ring_transport_name), so both go together.
ringlib="$src/libring/status.c $src/libring/log.c $src/libring/knobs.c $src/libring/wire.c
$src/libring/config.c $cjson"
build config $ringlib -lm
build wire $ringlib -lm
build api "$e/server/api.c" "$e/server/tmpl.c" "$e/server/http.c" "$e/sampler.c" "$e/status.c" \
    "$e/utf8.c" $template $tokenizer $cjson $(pkg-config --libs libmicrohttpd) -lm -lpthread
build template $template $cjson -lm
build safetensors "$e/load/safetensors.c" "$e/util.c" $cjson
build hf_config "$e/load/load_hf.c" "$e/load/safetensors.c" "$e/util.c" $cjson -lm
build ckpt_llama2 "$e/load/load_llama2.c" "$e/util.c"
build tok_hf $tokenizer $cjson
build tok_llama2 $tokenizer $cjson
build tok_encode $tokenizer $cjson
echo "built: $(tr '\n' ' ' <"$out/targets")"
