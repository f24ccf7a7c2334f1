#!/bin/sh
# SPDX-License-Identifier: MIT
# RING_TCP_STREAMS comparison on this host: all-reduce f32 over loopback, K = 1, 2, 4
# (and optionally a baseline build's K=1), interleaved round by round, median busbw
# (out-of-place, GB/s) and p50 latency per size over the rounds. See docs/TCP-STREAMS.md.
#
#   bench/tcp_streams.sh BUILD [BASE_BUILD] [ROUNDS] [RANKS] [-- coll-bench args]
#   e.g. bench/tcp_streams.sh build /tmp/base/build 5 2 -- -b 64K -e 256M -f 16 -n 5 -w 2
set -u
build=$1
base=${2:-}
rounds=${3:-5}
ranks=${4:-2}
shift $(($# < 4 ? $# : 4))
[ "${1:-}" = "--" ] && shift
[ $# -gt 0 ] || set -- -b 64K -e 256M -f 16 -n 5 -w 2
out=$(mktemp -d /tmp/tcpstreams.XXXXXX)
configs="1 2 4"
[ -n "$base" ] && configs="base $configs"
echo "# $(nproc) cores, load before: $(cut -d' ' -f1-3 /proc/loadavg); $ranks ranks; coll-bench $*"
for r in $(seq 1 "$rounds"); do
    for k in $configs; do
        if [ "$k" = base ]; then b=$base; kk=1; else b=$build; kk=$k; fi
        RING_TRANSPORT=tcp RING_TCP_STREAMS=$kk "$b/tools/ringrun" -n "$ranks" --timeout 600 -- "$b/tools/coll-bench" "$@" \
            2>/dev/null | grep '^\[0\] *[0-9]' | awk '{print $2, $9, $15}' >"$out/$k.$r"
    done
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
printf "%12s" "size(B)"
for k in $configs; do printf "  %10s" "K=$k busbw"; done
for k in $configs; do printf "  %10s" "K=$k p50us"; done
echo
for size in $(awk '{print $1}' "$out/$(echo $configs | cut -d' ' -f1).1"); do
    printf "%12s" "$size"
    for col in 2 3; do
        for k in $configs; do
            cat "$out/$k".* | awk -v s="$size" -v c="$col" '$1 == s {print $c}' | sort -g |
                awk '{v[NR] = $1} END {printf "  %10s", NR ? v[int((NR + 1) / 2)] : "-"}'
        done
    done
    echo
done
rm -rf "$out"
