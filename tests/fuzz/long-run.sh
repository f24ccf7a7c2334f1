#!/bin/sh
# SPDX-License-Identifier: MIT
# Outside CI: run each fuzz target for $1 seconds (default 600) at nice 19, then merge what
# it found into the kept corpus (minimised). Logs and any crash land in $2 (default
# /tmp/ringfuzz-long).
set -u
here=$(cd "$(dirname "$0")" && pwd)
secs=${1:-600}
out=${2:-/tmp/ringfuzz-long}
"$here/build.sh" "$out" || exit $?
for t in $(cat "$out/targets"); do
    dict=; [ -f "$here/$t.dict" ] && dict=-dict="$here/$t.dict"
    mkdir -p "$out/new_$t"
    nice -n 19 "$out/fuzz_$t" $dict -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$out/" -max_total_time="$secs" -print_final_stats=1 \
        "$out/new_$t" "$here/corpus/$t" >"$out/log_$t" 2>&1 &
done
wait
for t in $(cat "$out/targets"); do
    echo "fuzz_$t: $(grep -E 'stat::number_of_executed_units' "$out/log_$t" | awk '{print $2}') runs in $secs s," \
        "$(ls "$out"/crash-* 2>/dev/null | wc -l) crash files"
    nice -n 19 "$out/fuzz_$t" -merge=1 "$here/corpus/$t" "$out/new_$t" >/dev/null 2>&1
done
