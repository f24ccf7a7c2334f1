#!/bin/bash
# SPDX-License-Identifier: MIT
# The ring across 4 "hosts" (network namespaces on a bridge, 10.99.0.1-4), every host's
# egress capped with tbf: all-reduce busbw at 4 ranks against the link rate. On real
# links each rank sends busbw bytes per second on its one outgoing link, so busbw near the
# rate says the algorithm, not the host, was measured. Also one TCP stream through a cap
# (a small Python sender), the most any protocol gets out of one link.
#
#   bench/netns_tbf.sh [-r REPS] [-R RATE] [-s "16M 64M"] [-n ITERS] [-w WARMUP] [-q] [-H]
#                      [--coll-bench PATH] [--ringrun PATH] [-- extra coll-bench args]
#
# Prints one line per size: busbw median of REPS runs (GB/s), min..max, the link rate and
# the ratio; then the same with the caps removed (the host's own bound; -H skips it), with a
# note when the host cannot clearly outrun the links (then the capped figure measures the
# host: the four "hosts" share this machine's cores). Exits non-zero when a run fails or a
# result is wrong (coll-bench -c 1). -q: a smoke run (what tests/ring_netns_tbf.sh uses; no
# host-bound runs). Needs root, ip, tc (tbf) and python3; exits 77 when network namespaces
# cannot be made here.
set -u
reps=3 rate=2gbit sizes="16M 64M 256M" iters=5 warmup=2 quick=0 hostbound=1
bin=${COLL_BENCH:-build/tools/coll-bench} rr=${RINGRUN:-build/tools/ringrun}
while [ $# -gt 0 ]; do
    case $1 in
    -r) reps=$2; shift 2 ;;
    -R) rate=$2; shift 2 ;;
    -s) sizes=$2; shift 2 ;;
    -n) iters=$2; shift 2 ;;
    -w) warmup=$2; shift 2 ;;
    -q) quick=1; hostbound=0; shift ;;
    -H) hostbound=0; shift ;;
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

# One TCP stream through one cap: ns1 -> ns2, 3 s (1 s in a smoke run). Every wait in the
# two Python ends has a deadline, so a lost peer fails the measurement instead of hanging.
secs=3; [ $quick = 1 ] && secs=1
ip netns exec ${tag}n2 timeout 60 python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("10.99.0.2", 29400)); s.listen(1); s.settimeout(30)
c, _ = s.accept(); c.settimeout(30); n = 0
while True:
    b = c.recv(1 << 20)
    if not b: break
    n += len(b)
print(n)' >"$d/sink" 2>&1 &
sink=$!
stream=$(ip netns exec ${tag}n1 timeout 60 python3 -c "
import socket, time
end = time.monotonic() + 30
while True:  # the sink may still be starting: retry until it listens (or the deadline)
    try: s = socket.create_connection(('10.99.0.2', 29400), timeout=1); break
    except OSError:
        if time.monotonic() > end: raise
        time.sleep(0.05)
s.settimeout(30); buf = b'x' * (1 << 20); n = 0
t = time.monotonic(); end = t + $secs
while time.monotonic() < end: n += s.send(buf)
s.shutdown(socket.SHUT_WR); s.recv(1); dt = time.monotonic() - t
print(f'{n / dt / 1e9:.4f}')")
wait $sink || stream="(failed)"
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
summarise() { # SIZE LINK_GBS VALUES...: the median, min..max, against the link rate
    local size=$1 link=$2; shift 2
    printf "%s\n" "$@" | python3 -c "
import statistics, sys
v = sorted(float(x) for x in sys.stdin.read().split())
m = statistics.median(v)
print(f'{\"$size\":>10} {m:10.4f} {v[0]:8.4f}..{v[-1]:<8.4f} {$link:10.4f} {m / $link:7.1%}')"
}
measure() { # REPS SIZE: busbw of REPS runs (out of place) in the array vals
    vals=()
    for rep in $(seq "$1"); do
        run_once "$2" "$d/r" "${extra[@]}" || { fail=1; continue; }
        # Columns: size count type redop root time algbw busbw #wrong (out of place). busbw
        # from the time (us), not the printed busbw's three decimals: 2(n-1)/n = 1.5 at 4.
        vals+=("$(awk '$1 ~ /^[0-9]+$/ && $3 != "" {printf "%.5f", $1 / $6 / 1e3 * 1.5; exit}' "$d/r.0")")
    done
}
extra=("$@")
printf "%10s %10s %18s %10s %8s\n" size busbw "min..max" link "ratio"
for size in $sizes; do
    measure "$reps" "$size"
    [ ${#vals[@]} = 0 ] || summarise "$size" "$link_gbs" "${vals[@]}"
done
# The host's own bound: the same ring with the caps removed. Four hosts here share this
# machine's cores, so the four links' traffic and every copy run on them; when the ring
# without caps does not clearly outrun the link, a capped run measures the host, not the
# algorithm.
if [ $hostbound = 1 ]; then
    for i in 1 2 3 4; do ip netns exec ${tag}n$i tc qdisc del dev eth0 root; done
    echo "# the same ring with no cap (this host's bound), $reps runs per size; ratio: against the link"
    for size in $sizes; do
        measure "$reps" "$size"
        [ ${#vals[@]} = 0 ] && continue
        summarise "$size" "$link_gbs" "${vals[@]}"
        printf "%s\n" "${vals[@]}" | python3 -c "
import statistics, sys
m = statistics.median(float(x) for x in sys.stdin.read().split())
if m < 1.5 * $link_gbs:
    print(f'# NOTE: with no cap the ring makes {m:.3f} GB/s, under 1.5x the link: the host, not the links, bounds the capped run')"
    done
fi
[ $fail = 0 ] && echo "# all results checked (coll-bench -c 1): right"
exit $fail
