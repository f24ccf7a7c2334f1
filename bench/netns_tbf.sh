#!/bin/bash
# SPDX-License-Identifier: MIT
# The ring across 4 "hosts" (network namespaces on a bridge, 10.99.0.1-4), every host's
# egress capped with tbf: all-reduce busbw at 4 ranks against the link rate. On real
# links each rank sends busbw bytes per second on its one outgoing link, so busbw near the
# rate says the algorithm, not the host, was measured. Also one TCP stream through a cap
# (a small Python sender), the most any protocol gets out of one link.
#
#   bench/netns_tbf.sh [-r REPS] [-R RATE] [-s "16M 64M"] [-n ITERS] [-w WARMUP] [-q]
#                      [--coll-bench PATH] [--ringrun PATH] [-- extra coll-bench args]
#
# Prints one line per size: busbw median of REPS runs (GB/s), min..max, the link rate and
# the ratio; exits non-zero when a run fails or a result is wrong (coll-bench -c 1). -q: a
# smoke run (what tests/ring/ring_netns_tbf.sh uses). Needs root, ip, tc (tbf) and python3;
# exits 77 when network namespaces cannot be made here.
set -u
reps=3 rate=2gbit sizes="16M 64M 256M" iters=5 warmup=2 quick=0
bin=${COLL_BENCH:-build/tools/coll-bench} rr=${RINGRUN:-build/tools/ringrun}
while [ $# -gt 0 ]; do
    case $1 in
    -r) reps=$2; shift 2 ;;
    -R) rate=$2; shift 2 ;;
    -s) sizes=$2; shift 2 ;;
    -n) iters=$2; shift 2 ;;
    -w) warmup=$2; shift 2 ;;
    -q) quick=1; shift ;;
    --coll-bench) bin=$2; shift 2 ;;
    --ringrun) rr=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "netns_tbf.sh: unknown argument '$1' (see the header of this script)" >&2; exit 2 ;;
    esac
done
here=$(cd "$(dirname "$0")" && pwd)
. "$here/netns_lib.sh"
skip() { netns_skip "$@"; }
for t in tc python3; do command -v $t >/dev/null || skip "needs '$t' (apt-get install iproute2 python3)"; done
[ -x "$bin" ] || { echo "netns_tbf.sh: no coll-bench at $bin (--coll-bench PATH)" >&2; exit 2; }
[ -x "$rr" ] || { echo "netns_tbf.sh: no ringrun at $rr (--ringrun PATH)" >&2; exit 2; }
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
tag=tb$$
netns_probe $tag

d=$(mktemp -d /tmp/ringtbf.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    netns_cleanup $tag
    rm -rf "$d"
}
trap cleanup EXIT INT TERM
netns_hosts $tag "$rate"
rate_bps=$(tc -n ${tag}n1 -j qdisc show dev eth0 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["options"]["rate"])')
link_gbs=$(python3 -c "print(f'{$rate_bps/1e9:.4f}')")
"$rr" --print-configs --hosts 10.99.0.1,10.99.0.2,10.99.0.3,10.99.0.4 --base-port 29500 --out "$d/cfg" >/dev/null || exit 1

# One TCP stream through one cap: ns1 -> ns2, 3 s (1 s in a smoke run).
secs=3; [ $quick = 1 ] && secs=1
ip netns exec ${tag}n2 python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("10.99.0.2", 29400)); s.listen(1)
print("ready", flush=True); c, _ = s.accept(); n = 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    n += len(b)
print(n)' >"$d/sink" 2>&1 &
sink=$!
for _ in $(seq 50); do grep -q ready "$d/sink" && break; python3 -c 'import time; time.sleep(0.1)'; done
stream=$(ip netns exec ${tag}n1 python3 -c "
import socket, time
s = socket.create_connection(('10.99.0.2', 29400)); buf = b'x' * (1 << 20); n = 0
t = time.monotonic(); end = t + $secs
while time.monotonic() < end: n += s.send(buf)
s.shutdown(socket.SHUT_WR); s.recv(1); dt = time.monotonic() - t
print(f'{n / dt / 1e9:.4f}')")
wait $sink
echo "# 4 hosts, tbf $rate on every host's egress (link ${link_gbs} GB/s); one TCP stream through it: $stream GB/s"
echo "# coll-bench -b SIZE -e SIZE -n $iters -w $warmup -c 1 $*, $reps runs per size"

fail=0
run_once() { # SIZE OUTFILE: 4 ranks, one per host; rank 0's table to OUTFILE
    local size=$1 out=$2; shift 2
    pids=()
    for r in 0 1 2 3; do
        ip netns exec ${tag}n$((r + 1)) env RING_CONFIG="$d/cfg/rank-$r.json" RING_LOG_LEVEL=error \
            "$bin" -b "$size" -e "$size" -n "$iters" -w "$warmup" -c 1 "$@" >"$out.$r" 2>&1 &
        pids+=($!)
    done
    local rc=0
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    pids=()
    if [ $rc != 0 ] || ! grep -q "Out of bounds values : 0 OK" "$out.0"; then
        echo "FAIL: coll-bench at $size:"; cat "$out".*; return 1
    fi
}
printf "%10s %10s %18s %10s %8s\n" size busbw "min..max" link "ratio"
for size in $sizes; do
    vals=()
    for rep in $(seq "$reps"); do
        run_once "$size" "$d/r" "$@" || { fail=1; continue; }
        # Columns: size count type redop root time algbw busbw #wrong (out of place).
        vals+=("$(awk '$1 ~ /^[0-9]+$/ && $3 != "" {print $8; exit}' "$d/r.0")")
    done
    [ ${#vals[@]} = 0 ] && continue
    printf "%s\n" "${vals[@]}" | python3 -c "
import statistics, sys
v = sorted(float(x) for x in sys.stdin.read().split())
m = statistics.median(v)
print(f'{\"$size\":>10} {m:10.4f} {v[0]:8.4f}..{v[-1]:<8.4f} {$link_gbs:10.4f} {m / $link_gbs:7.1%}')"
done
[ $fail = 0 ] && echo "# all results checked (coll-bench -c 1): right"
exit $fail
