#!/bin/sh
# SPDX-License-Identifier: MIT
# CI smoke run of the fuzz targets: build them, then 5 s each over the kept corpus and its
# dictionary (new inputs go to a scratch folder, so the tree stays clean). SKIP (77) without
# clang.
set -u
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d /tmp/ringfuzz.XXXXXX)
trap 'rm -rf "$out"' EXIT
"$here/build.sh" "$out" || exit $?
for t in $(cat "$out/targets"); do
    dict=; [ -f "$here/$t.dict" ] && dict=-dict="$here/$t.dict"
    mkdir -p "$out/new_$t"
    if ! "$out/fuzz_$t" $dict -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$out/" -max_total_time="${FUZZ_SECONDS:-5}" -print_final_stats=1 "$out/new_$t" "$here/corpus/$t" \
        >"$out/log_$t" 2>&1; then
        echo "FAIL: fuzz_$t found a crash:"; tail -40 "$out/log_$t"; exit 1
    fi
    echo "fuzz_$t: $(grep -E 'stat::number_of_executed_units' "$out/log_$t" | awk '{print $2}') runs, no crash"
done
