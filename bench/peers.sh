#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# peers.sh: our coll-bench beside its peers, same sizes and ranks, over loopback.
#
# Builds bench/build/{mpi_allreduce,gloo_allreduce} (our harnesses against Debian's
# Open MPI and Gloo), then for each rank count and size runs, R times each and
# interleaved so that machine noise spreads over all of them:
#   ours      ringrun -n N --transport tcp -- coll-bench (ring provider, TCP over lo)
#   mpi       Open MPI MPI_Allreduce forced onto its TCP BTL on lo
#   gloo-rc   gloo::AllreduceRingChunked<float>, TCP device on lo
#   gloo-ar   gloo::allreduce (the newer API), TCP device on lo
#   iperf3    one loopback TCP stream: the link's ceiling
# and prints one markdown table of medians (also written to -o FILE).
# All traffic stays on 127.0.0.1. Every run is bounded by `timeout`.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
orig_args=("$@")
root=$(cd "$here/.." && pwd)

ranks="2 4"
reps=5
sizes="4K 64K 1M 16M 64M 256M"
out_md=""
run_timeout=300
only="ours mpi gloo-rc gloo-ar iperf"
coll_bench=${COLL_BENCH:-$root/build/tools/coll-bench}
ringrun=${RINGRUN:-$root/build/tools/ringrun}
ours_launch='{ringrun} -n {n} --transport tcp --timeout {t} --'
iperf_secs=3
logdir=""

usage() {
    cat <<EOF
usage: $0 [options]
  -n "2 4"          rank counts (default: "$ranks")
  -r R              repetitions of every measurement; the median is reported (default: $reps)
  -s "4K 64K ..."   sizes in bytes, K/M/G = 1024-based (default: "$sizes")
  -o FILE           also write the table, commands and machine as markdown to FILE
  -T S              timeout of each single run in seconds (default: $run_timeout)
  -O "ours mpi ..." what to run, from: ours mpi gloo-rc gloo-ar iperf (default: all)
  -L DIR            keep every raw output under DIR (default: a temp dir, removed)
  --coll-bench P    our coll-bench binary (env COLL_BENCH; default: ../build/tools/coll-bench)
  --ringrun P       our ringrun binary (env RINGRUN; default: ../build/tools/ringrun)
  --ours-launch T   launcher prefix for coll-bench; {ringrun} {n} {t} are replaced
                    (default: '$ours_launch')
  -h                this help
Iterations per size: about 512 MiB of data per timed loop, at least 3 and at most 200
iterations, plus a tenth of that (1..20) as warmup.
EOF
}

die() { echo "peers.sh: $*" >&2; exit 2; }

while [ $# -gt 0 ]; do
    case "$1" in
    -n) ranks=${2:?-n needs a value}; shift 2 ;;
    -r) reps=${2:?-r needs a value}; shift 2 ;;
    -s) sizes=${2:?-s needs a value}; shift 2 ;;
    -o) out_md=${2:?-o needs a value}; shift 2 ;;
    -T) run_timeout=${2:?-T needs a value}; shift 2 ;;
    -O) only=${2:?-O needs a value}; shift 2 ;;
    -L) logdir=${2:?-L needs a value}; shift 2 ;;
    --coll-bench) coll_bench=${2:?--coll-bench needs a value}; shift 2 ;;
    --ringrun) ringrun=${2:?--ringrun needs a value}; shift 2 ;;
    --ours-launch) ours_launch=${2:?--ours-launch needs a value}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown option '$1' (try -h)" ;;
    esac
done

is_uint() { case "$1" in '' | *[!0-9]*) return 1 ;; *) return 0 ;; esac; }
{ is_uint "$reps" && [ "$reps" -ge 1 ]; } || die "-r must be a positive integer, got '$reps'"
{ is_uint "$run_timeout" && [ "$run_timeout" -ge 1 ]; } || die "-T must be a positive integer, got '$run_timeout'"
for n in $ranks; do { is_uint "$n" && [ "$n" -ge 1 ]; } || die "-n: bad rank count '$n'"; done
for w in $only; do
    case "$w" in ours | mpi | gloo-rc | gloo-ar | iperf) ;; *) die "-O: unknown '$w'" ;; esac
done
wants() { case " $only " in *" $1 "*) return 0 ;; *) return 1 ;; esac; }

# "64K" -> 65536
to_bytes() {
    local s=$1 num mult=1
    num=${s%[KkMmGg]}
    case "$s" in
    *[Kk]) mult=1024 ;; *[Mm]) mult=1048576 ;; *[Gg]) mult=1073741824 ;;
    esac
    is_uint "$num" || return 1
    echo $((num * mult))
}
size_bytes=""
for s in $sizes; do
    b=$(to_bytes "$s") || die "-s: bad size '$s'"
    { [ $((b % 4)) -eq 0 ] && [ "$b" -gt 0 ]; } || die "-s: size '$s' is not a positive multiple of 4 bytes"
    size_bytes="$size_bytes $b"
done

iters_for() { # about 512 MiB per timed loop, 3..200 iterations
    local n=$(((536870912 + $1 - 1) / $1))
    [ $n -lt 3 ] && n=3
    [ $n -gt 200 ] && n=200
    echo $n
}
warmup_for() {
    local w=$(($(iters_for "$1") / 10))
    [ $w -lt 1 ] && w=1
    [ $w -gt 20 ] && w=20
    echo $w
}
human() { # bytes -> 4 KiB / 64 MiB
    local b=$1
    if [ $((b % 1073741824)) -eq 0 ]; then echo "$((b / 1073741824)) GiB"
    elif [ $((b % 1048576)) -eq 0 ]; then echo "$((b / 1048576)) MiB"
    elif [ $((b % 1024)) -eq 0 ]; then echo "$((b / 1024)) KiB"
    else echo "$b B"; fi
}

# ---------------------------------------------------------------- build
build=$here/build
mkdir -p "$build" || die "cannot create $build"
have_mpi=0 have_gloo=0
CFLAGS_BENCH=(-O2 -Wall -Wextra -Werror)
newer() { # target is missing or older than any source
    local t=$1; shift
    [ -e "$t" ] || return 0
    for s in "$@"; do [ "$s" -nt "$t" ] && return 0; done
    return 1
}
if wants mpi; then
    if ! command -v mpicc >/dev/null || ! command -v mpirun >/dev/null; then
        echo "peers.sh: mpicc/mpirun not found: apt-get install -y openmpi-bin libopenmpi-dev; skipping MPI" >&2
    elif newer "$build/mpi_allreduce" "$here/mpi_allreduce.c" "$here/harness.c" "$here/harness.h" &&
        ! mpicc "${CFLAGS_BENCH[@]}" -std=c11 "$here/harness.c" "$here/mpi_allreduce.c" \
            -o "$build/mpi_allreduce" -lm; then
        echo "peers.sh: building mpi_allreduce failed; skipping MPI" >&2
    else
        have_mpi=1
    fi
fi
if wants gloo-rc || wants gloo-ar; then
    if [ ! -e /usr/include/gloo/allreduce_ring_chunked.h ]; then
        echo "peers.sh: Gloo headers not found: apt-get install -y libgloo-dev; skipping Gloo" >&2
    elif newer "$build/gloo_allreduce" "$here/gloo_allreduce.cc" "$here/harness.c" "$here/harness.h" &&
        ! { gcc "${CFLAGS_BENCH[@]}" -std=c11 -c "$here/harness.c" -o "$build/harness.o" &&
            g++ "${CFLAGS_BENCH[@]}" -std=c++17 -c "$here/gloo_allreduce.cc" -o "$build/gloo_allreduce.o" &&
            g++ "$build/gloo_allreduce.o" "$build/harness.o" -o "$build/gloo_allreduce" \
                -lgloo -pthread -lm; }; then
        echo "peers.sh: building gloo_allreduce failed; skipping Gloo" >&2
    else
        have_gloo=1
    fi
fi
have_ours=0
if wants ours; then
    if [ ! -x "$coll_bench" ]; then
        echo "peers.sh: our coll-bench is not built ($coll_bench missing): build the project first; running the peers only" >&2
    elif [ ! -x "$ringrun" ] && [[ "$ours_launch" == *"{ringrun}"* ]]; then
        echo "peers.sh: ringrun is not built ($ringrun missing): running the peers only" >&2
    else
        have_ours=1
    fi
fi
have_iperf=0
if wants iperf; then
    if command -v iperf3 >/dev/null; then have_iperf=1
    else echo "peers.sh: iperf3 not found (apt-get install -y iperf3); no link ceiling" >&2; fi
fi

# ---------------------------------------------------------------- runs
keep_logs=1
if [ -z "$logdir" ]; then
    logdir=$(mktemp -d /tmp/peers.XXXXXX) || die "mktemp failed"
    keep_logs=0
fi
mkdir -p "$logdir" || die "cannot create $logdir"
gloo_pids=()
iperf_pid=""
results=$logdir/results.txt # tool nranks bytes rep busbw time_us p50_us p99_us wrong
: >"$results"
cleanup() {
    [ "${#gloo_pids[@]}" -gt 0 ] && kill "${gloo_pids[@]}" 2>/dev/null
    [ -n "${iperf_pid:-}" ] && kill "$iperf_pid" 2>/dev/null
    [ "$keep_logs" = 0 ] && rm -rf "$logdir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Harness JSON line(s) -> "busbw time p50 p99 wrong" for the given size.
# Accepts a rank prefix before the '{' (ringrun prefixes lines); with $2 = 1 it skips
# in-place rows (coll-bench prints both; gloo-rc is in place only).
parse_json() {
    awk -v want="$1" -v skip_inplace="${2:-0}" '
    function jget(s, k,   m) {
        if (match(s, "\"" k "\"[ ]*:[ ]*[^,}]*")) {
            m = substr(s, RSTART, RLENGTH); sub(/^[^:]*:[ ]*/, "", m); gsub(/"/, "", m); return m
        }
        return ""
    }
    index($0, "{") {
        s = substr($0, index($0, "{"))
        if (jget(s, "size") != want) next
        ip = jget(s, "inplace"); if (skip_inplace && (ip == "1" || ip == "true")) next
        w = jget(s, "wrong"); if (w == "") w = jget(s, "#wrong")
        p50 = jget(s, "p50_us"); p99 = jget(s, "p99_us")
        print jget(s, "busbw"), jget(s, "time_us"), (p50 == "" ? "-" : p50), (p99 == "" ? "-" : p99), (w == "" ? "-" : w)
        exit
    }'
}
# nccl-tests table row: size count type redop root time algbw busbw #wrong (out of place
# first). The row is found by its size and count, so a rank prefix does not matter.
parse_table() {
    awk -v want="$1" '
    /^[ \t]*#/ { next }
    {
        for (k = 1; k + 8 <= NF; k++)
            if ($k == want && $(k + 1) == want / 4) {
                print $(k + 7), $(k + 5), "-", "-", $(k + 8); exit
            }
    }'
}

record() { # tool n bytes rep logfile rc
    local tool=$1 n=$2 b=$3 rep=$4 log=$5 rc=$6 row f
    row=$(parse_json "$b" "$([ "$tool" = ours ] && echo 1)" <"$log")
    [ -z "$row" ] && row=$(parse_table "$b" <"$log")
    if [ "$rc" -ne 0 ] || [ -z "$row" ]; then
        echo "peers.sh: $tool n=$n size=$b rep=$rep failed (exit $rc); last lines of $log:" >&2
        tail -n 3 "$log" | sed 's/^/    /' >&2
        return
    fi
    read -r -a f <<<"$row"
    set -- "${f[@]}"
    if [ "$5" != "-" ] && [ "$5" != "0" ]; then
        echo "peers.sh: $tool n=$n size=$b rep=$rep: $5 wrong values; not counted" >&2
        return
    fi
    echo "$tool $n $b $rep $*" >>"$results"
}

ours_json=0
if [ "$have_ours" = 1 ] && "$coll_bench" --help 2>&1 | grep -q -- '--json'; then ours_json=1; fi

run_ours() { # n bytes rep
    local n=$1 b=$2 rep=$3 log="$logdir/ours-n$1-b$2-r$3.log" launch rc
    launch=${ours_launch//\{ringrun\}/$ringrun}
    launch=${launch//\{n\}/$n}
    launch=${launch//\{t\}/$run_timeout}
    local json=()
    [ "$ours_json" = 1 ] && json=(--json)
    # shellcheck disable=SC2086 # the launcher prefix is split into words on purpose
    timeout -k 5 $((run_timeout + 10)) $launch "$coll_bench" --coll allreduce -d float -o sum \
        -b "$b" -e "$b" -n "$(iters_for "$b")" -w "$(warmup_for "$b")" -c 1 "${json[@]}" \
        >"$log" 2>&1
    rc=$?
    record ours "$n" "$b" "$rep" "$log" $rc
}

mpi_cmd="mpirun --allow-run-as-root --oversubscribe -np N --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo"
run_mpi() {
    local n=$1 b=$2 rep=$3 log="$logdir/mpi-n$1-b$2-r$3.log" rc
    timeout -k 5 "$run_timeout" mpirun --allow-run-as-root --oversubscribe -np "$n" \
        --mca pml ob1 --mca btl tcp,self --mca btl_tcp_if_include lo \
        "$build/mpi_allreduce" -b "$b" -e "$b" -n "$(iters_for "$b")" -w "$(warmup_for "$b")" \
        -c 1 -T "$run_timeout" --json >"$log" 2>&1
    rc=$?
    record mpi "$n" "$b" "$rep" "$log" $rc
}

run_gloo() { # tool(gloo-rc|gloo-ar) n bytes rep
    local tool=$1 n=$2 b=$3 rep=$4 algo log="$logdir/$1-n$2-b$3-r$4.log" store r rc=0 pid
    algo=ring_chunked
    [ "$tool" = gloo-ar ] && algo=allreduce
    store=$(mktemp -d "$logdir/store.XXXXXX") || die "mktemp failed"
    gloo_pids=()
    for ((r = 0; r < n; r++)); do
        timeout -k 5 "$run_timeout" "$build/gloo_allreduce" -R "$r" -N "$n" -S "$store" -A "$algo" \
            -b "$b" -e "$b" -n "$(iters_for "$b")" -w "$(warmup_for "$b")" -c 1 \
            -T "$run_timeout" --json >"$log.rank$r" 2>&1 &
        gloo_pids+=($!)
    done
    for pid in "${gloo_pids[@]}"; do wait "$pid" || rc=$?; done
    gloo_pids=()
    cat "$log".rank* >"$log"
    rm -f "$log".rank*
    rm -rf "$store"
    record "$tool" "$n" "$b" "$rep" "$log" $rc
}

iperf_port=$((20000 + $$ % 20000))
run_iperf() { # rep
    local rep=$1 log="$logdir/iperf-r$1.json" bps
    timeout -k 2 $((iperf_secs + 20)) iperf3 -s -1 -B 127.0.0.1 -p "$iperf_port" >/dev/null 2>&1 &
    iperf_pid=$!
    sleep 0.5
    timeout -k 2 $((iperf_secs + 15)) iperf3 -c 127.0.0.1 -B 127.0.0.1 -p "$iperf_port" \
        -t "$iperf_secs" -J >"$log" 2>&1
    wait "$iperf_pid" 2>/dev/null
    iperf_pid=""
    # end.sum_received.bits_per_second
    bps=$(awk '/"sum_received"/ { f = 1 } f && /"bits_per_second"/ { gsub(/[^0-9.e+]/, "", $2); print $2; exit }' "$log")
    if [ -z "$bps" ]; then
        echo "peers.sh: iperf3 rep=$rep failed; see $log" >&2
        return
    fi
    echo "iperf 1 0 $rep $(awk -v b="$bps" 'BEGIN { printf "%.4f", b / 8e9 }') - - - 0" >>"$results"
}

echo "peers.sh: ranks [$ranks], sizes [$sizes], $reps reps, logs in $logdir" >&2
load0=$(cut -d' ' -f1 /proc/loadavg)
if awk -v l="$load0" -v c="$(nproc)" 'BEGIN { exit !(l > c / 2) }'; then
    echo "peers.sh: warning: load average $load0 on $(nproc) cores before starting: expect noisy numbers" >&2
fi
loads=""
for ((rep = 1; rep <= reps; rep++)); do
    loads="$loads $(cut -d' ' -f1 /proc/loadavg)"
    [ "$have_iperf" = 1 ] && run_iperf "$rep"
    for n in $ranks; do
        for b in $size_bytes; do
            echo "peers.sh: rep $rep/$reps, $n ranks, $(human "$b")" >&2
            [ "$have_ours" = 1 ] && run_ours "$n" "$b" "$rep"
            [ "$have_mpi" = 1 ] && run_mpi "$n" "$b" "$rep"
            [ "$have_gloo" = 1 ] && wants gloo-rc && run_gloo gloo-rc "$n" "$b" "$rep"
            [ "$have_gloo" = 1 ] && wants gloo-ar && run_gloo gloo-ar "$n" "$b" "$rep"
        done
    done
done

# ---------------------------------------------------------------- table
# Medians of busbw (field 5) and time_us (field 6) per tool, n, size.
medians=$logdir/medians.txt
awk '{ k = $1 " " $2 " " $3; bw[k] = bw[k] " " $5; t[k] = t[k] " " $6 }
function med(list,   a, n, i, j, x) {
    n = split(list, a, " ")
    for (i = 2; i <= n; i++) { x = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > x; j--) a[j + 1] = a[j]; a[j + 1] = x }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
function lo(list,   a, n, i, m) { n = split(list, a, " "); m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 < m) m = a[i] + 0; return m }
function hi(list,   a, n, i, m) { n = split(list, a, " "); m = a[1] + 0; for (i = 2; i <= n; i++) if (a[i] + 0 > m) m = a[i] + 0; return m }
END { for (k in bw) print k, med(bw[k]), (t[k] ~ /-/ ? "-" : med(t[k])), lo(bw[k]), hi(bw[k]) }' "$results" | sort >"$medians"

link=$(awk '$1 == "iperf" { print $4 }' "$medians")
cpu=$(awk -F': ' '/model name/ { print $2; exit }' /proc/cpuinfo)
table=$(awk -v link="${link:-}" -v sizes="$size_bytes" -v ranks="$ranks" '
function human(b) {
    if (b % 1073741824 == 0) return b / 1073741824 " GiB"
    if (b % 1048576 == 0) return b / 1048576 " MiB"
    if (b % 1024 == 0) return b / 1024 " KiB"
    return b " B"
}
function f(x, d) { return x == "" ? "-" : sprintf("%." d "f", x) }
{ bw[$1, $2, $3] = $4; t[$1, $2, $3] = $5 }
END {
    np = split("mpi gloo-rc gloo-ar", peers, " ")
    ns = split(sizes, sz, " "); nn = split(ranks, rk, " ")
    print "| ranks | size | ours busbw | mpi | gloo-rc | gloo-ar | ours / best peer | ours / link | ours time_us | mpi | gloo-rc | gloo-ar | ours time / best peer |"
    print "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for (i = 1; i <= nn; i++) for (j = 1; j <= ns; j++) {
        n = rk[i]; b = sz[j]; best = ""; bestt = ""
        line = "| " n " | " human(b) " | " f(bw["ours", n, b], 3)
        for (p = 1; p <= np; p++) {
            v = bw[peers[p], n, b]; line = line " | " f(v, 3)
            if (v != "" && (best == "" || v + 0 > best + 0)) best = v
            tv = t[peers[p], n, b]
            if (tv != "" && tv != "-" && (bestt == "" || tv + 0 < bestt + 0)) bestt = tv
        }
        o = bw["ours", n, b]; ot = t["ours", n, b]
        line = line " | " (o != "" && best + 0 > 0 ? sprintf("%.2fx", o / best) : "-")
        line = line " | " (o != "" && link + 0 > 0 ? sprintf("%.0f%%", 100 * o / link) : "-")
        line = line " | " f(ot, 1)
        for (p = 1; p <= np; p++) line = line " | " f(t[peers[p], n, b], 1)
        line = line " | " (ot != "" && ot != "-" && bestt + 0 > 0 ? sprintf("%.2fx", ot / bestt) : "-")
        print line " |"
    }
}' "$medians")

note="busbw in GB/s (1e9 B/s) = algbw x 2(n-1)/n; time_us = mean time of one all-reduce, slowest rank; median of $reps runs each. float32 sum, out of place (gloo-rc is in place). '-' = not run or failed (see stderr)."
linkline="one loopback TCP stream (iperf3, ${iperf_secs} s): ${link:--} GB/s"
echo
echo "$table"
echo
echo "$linkline"
echo "$note"

if [ -n "$out_md" ]; then
    {
        echo "# Peers: all-reduce over TCP loopback"
        echo
        echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
        echo "- machine: $(nproc) cores, ${cpu:-unknown CPU}, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(sed -n 's/^PRETTY_NAME="\(.*\)"/\1/p' /etc/os-release 2>/dev/null), kernel $(uname -r)"
        echo "- load average before the table was written: $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- peers: Open MPI $(mpirun --version 2>/dev/null | awk 'NR == 1 { print $NF }'), Gloo $(dpkg-query -W -f '${Version}' libgloo-dev 2>/dev/null || echo '?')"
        echo "- ranks: $ranks; sizes: $sizes; repetitions: $reps; iterations per size: ~512 MiB per timed loop (3..200), warmup a tenth (1..20)"
        echo
        echo "$table"
        echo
        echo "$linkline"
        echo
        echo "$note"
        echo
        echo "## Spread: busbw min .. max over the $reps runs"
        echo
        echo "1-minute load average at the start of each repetition:$loads (on $(nproc) cores)."
        echo
        echo "| ranks | size | ours | mpi | gloo-rc | gloo-ar |"
        echo "|---:|---:|---:|---:|---:|---:|"
        awk -v sizes="$size_bytes" -v ranks="$ranks" '
        function human(b) {
            if (b % 1073741824 == 0) return b / 1073741824 " GiB"
            if (b % 1048576 == 0) return b / 1048576 " MiB"
            if (b % 1024 == 0) return b / 1024 " KiB"
            return b " B"
        }
        { lo[$1, $2, $3] = $6; hi[$1, $2, $3] = $7 }
        END {
            nt = split("ours mpi gloo-rc gloo-ar", tools, " ")
            ns = split(sizes, sz, " "); nn = split(ranks, rk, " ")
            for (i = 1; i <= nn; i++) for (j = 1; j <= ns; j++) {
                line = "| " rk[i] " | " human(sz[j])
                for (p = 1; p <= nt; p++) {
                    k = tools[p] SUBSEP rk[i] SUBSEP sz[j]
                    line = line " | " (k in lo ? sprintf("%.3f .. %.3f", lo[k], hi[k]) : "-")
                }
                print line " |"
            }
        }' "$medians"
        echo
        echo "## Commands (per size B, iterations I, warmup W)"
        echo
        echo '```'
        echo "$(printf '%q ' "$0" "${orig_args[@]}")  # this script"
        [ "$have_ours" = 1 ] && echo "${ours_launch} $coll_bench --coll allreduce -d float -o sum -b B -e B -n I -w W -c 1$([ "$ours_json" = 1 ] && echo ' --json')"
        echo "$mpi_cmd bench/build/mpi_allreduce -b B -e B -n I -w W -c 1 --json"
        echo "bench/build/gloo_allreduce -R r -N N -S STOREDIR -A ring_chunked|allreduce -b B -e B -n I -w W -c 1 --json   # r = 0..N-1, all at once"
        echo "iperf3 -s -1 -B 127.0.0.1 -p P & iperf3 -c 127.0.0.1 -B 127.0.0.1 -p P -t $iperf_secs -J"
        echo '```'
    } >"$out_md" || die "cannot write $out_md"
    echo "peers.sh: wrote $out_md" >&2
fi
