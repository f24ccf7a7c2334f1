#!/bin/bash
# SPDX-License-Identifier: MIT
# Strangers on the ring's ports while a real ring of 4 forms and runs checked all-reduces:
# without a secret (silent, random bytes, wrong magic, another job) and with a shared
# secret (also: no secret, a wrong secret, a replayed proof). Every stranger must be
# dropped within the handshake deadline and logged; the ring must complete bitwise right.
set -u
RINGRUN_BIN=${RINGRUN_BIN:-../tools/ringrun}
RING_CHAOS=${RING_CHAOS:-./ring/ring-chaos}
RING_STRANGER=${RING_STRANGER:-./ring/ring-stranger}
here=$(cd "$(dirname "$0")" && pwd)
d=$(mktemp -d /tmp/ringstrangers.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done; rm -rf "$d"; }
trap cleanup EXIT

round() { # $1: label, $2: secret file or "", $3...: stranger modes
    local label=$1 secret=$2; shift 2
    local base
    base=$(python3 "$here/free_ports.py" 5) || return 1
    "$RINGRUN_BIN" --print-configs --hosts 127.0.0.1,127.0.0.1,127.0.0.1,127.0.0.1 --base-port $base --out "$d/$label" >/dev/null || return 1
    local job
    job=$(sed -n 's/.*"job_id":[[:space:]]*"\(0x[0-9a-f]*\)".*/\1/p' "$d/$label/rank-0.json")
    [ -n "$job" ] || { echo "FAIL: no job_id in $d/$label/rank-0.json"; exit 1; }
    local env=(RING_LOG_LEVEL=warn RING_OP_TIMEOUT_MS=5000 RING_CONNECT_TIMEOUT_MS=20000)
    [ -n "$secret" ] && env+=(RING_SECRET_FILE="$secret")
    pids=()
    for r in 0 1 2; do
        env "${env[@]}" RING_CONFIG="$d/$label/rank-$r.json" "$RING_CHAOS" --iters 20 --count 50000 \
            >"$d/$label.out$r" 2>"$d/$label.err$r" &
        pids+=($!)
    done
    local spids=() n=0
    for mode in "$@"; do
        for target in master 0 1 2; do
            if [ $target = master ]; then
                args=(127.0.0.1 $base --checkin 1 --rank $((1 + n % 3)))
            else
                args=(127.0.0.1 $((base + 1 + target)) --rank $(((target + 3) % 4)))
            fi
            "$RING_STRANGER" "$mode" "${args[@]}" --job "$job" --world 4 --limit-ms 6000 \
                ${secret:+--secret "$secret"} >"$d/$label.s$n" 2>&1 &
            spids+=($!)
            n=$((n + 1))
        done
    done
    # The last rank joins once every stranger is on its port (or gave up), so the strangers
    # meet a ring that is still forming. Bounded: the strangers give up after 15 s.
    local t
    for ((t = 0; t < 400; t++)); do
        [ "$(cat "$d/$label".s* 2>/dev/null | grep -c ' connected$')" -ge $n ] && break
        local alive=0 p
        for p in "${spids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ $alive = 1 ] || break
        sleep 0.05
    done
    env "${env[@]}" RING_CONFIG="$d/$label/rank-3.json" "$RING_CHAOS" --iters 20 --count 50000 \
        >"$d/$label.out3" 2>"$d/$label.err3" &
    pids+=($!)
    local fail=0
    for r in 0 1 2 3; do
        if ! wait "${pids[$r]}"; then
            echo "FAIL $label: rank $r:"; cat "$d/$label.out$r" "$d/$label.err$r"; fail=1
        fi
    done
    for i in "${!spids[@]}"; do
        if ! wait "${spids[$i]}"; then echo "FAIL $label:"; cat "$d/$label.s$i"; fail=1; fi
    done
    [ $fail = 0 ] || return 1
    local logged
    logged=$(cat "$d/$label".err* | grep -E "refused|dropped|closed during handshake" | grep -oE "dropped [0-9]+|refused|closed during" | awk '{n += ($1 == "dropped") ? $2 : 1} END {print n + 0}')
    echo "$label: ring of 4 completed 20 checked all-reduces with $n strangers; $logged refusals logged"
    grep -hv ' connected$' "$d/$label".s* | sed 's/port [0-9]*: dropped after [0-9]* ms/dropped/' | sort | uniq -c
    grep -hE "refused|dropped" "$d/$label".err* | sed -e 's/from 127[^:]*:[0-9]*/from .../' -e 's/0x[0-9a-f]*/0x../g' | sort | uniq -c
    [ "$logged" -ge 1 ] || { echo "FAIL $label: no refusal was logged"; return 1; }
}

secret="$d/key"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$secret"
chmod 600 "$secret"
# try_round LABEL ...: a round, again on new ports (up to 3 times) when a rank lost its port
# to another test between the choice and the bind; any other failure ends the test.
try_round() {
    for attempt in 1 2 3; do
        round "$@" && return 0
        grep -qs "Address already in use" "$d/$1".err* || return 1
        echo "$1: a port was taken meanwhile (attempt $attempt), again on new ports"
        rm -rf "${d:?}/$1" "$d/$1".*
    done
    return 1
}
try_round plain "" silent random magic job || exit 1
try_round secret "$secret" silent random magic nosecret wrongkey replay || exit 1
echo "PASS: strangers dropped, rings completed"
