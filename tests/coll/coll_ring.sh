#!/bin/sh
# SPDX-License-Identifier: MIT
# libcoll selecting the ring from RING_CONFIG and running every collective on host
# buffers, 2 and 4 ranks over loopback. MISTRALRS_NO_NCCL=1 keeps NCCL out on GPU hosts.
# Also the order of precedence of the deadlines (README, "Environment variables"): with
# only RING_*_TIMEOUT_MS set the ring uses them; with COLL_* set too, libcoll's win.
set -u
bin=${COLL_RING_TEST:-./coll/test_coll_ring}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT INT TERM
here=$(cd "$(dirname "$0")" && pwd)
# run_ring N VAR=VALUE...: N ranks on ports below the ephemeral range (tests/ring/free_ports.py); returns 2
# when a rank lost its port to another test between the choice and the bind.
run_ring() {
    n=$1
    shift
    base=$(python3 "$here/../ring/free_ports.py" $((n + 1))) || return 1
    pids=""
    for r in $(seq 0 $((n - 1))); do
        right=$(( (r + 1) % n ))
        cat > "$dir/r$r.json" <<JSON
{"master_ip": "127.0.0.1", "master_port": $base, "port": $((base + 1 + r)),
 "right_ip": "127.0.0.1", "right_port": $((base + 1 + right)), "rank": $r, "world_size": $n}
JSON
        env "$@" RING_CONFIG="$dir/r$r.json" MISTRALRS_NO_NCCL=1 RING_LOG_LEVEL=info \
            timeout 60 "$bin" > "$dir/out$r" 2>&1 &
        pids="$pids $!"
    done
    fail=0
    r=0
    for p in $pids; do
        if ! wait "$p"; then
            echo "FAIL: rank $r of $n:"; fail=1
        fi
        cat "$dir/out$r"
        r=$((r + 1))
    done
    [ $fail -eq 0 ] && return 0
    grep -qs "Address already in use" "$dir"/out* && return 2
    return 1
}
ring_env="RING_OP_TIMEOUT_MS=43210 RING_CONNECT_TIMEOUT_MS=54321"
coll_env="COLL_OP_TIMEOUT_MS=20000 COLL_RDV_TIMEOUT_MS=21000"
for n in 2 4; do
    if [ $n = 2 ]; then vars=$ring_env want="connect 54321 ms / op 43210 ms"
    else vars="$ring_env $coll_env" want="connect 21000 ms / op 20000 ms"; fi
    for attempt in 1 2 3; do
        # shellcheck disable=SC2086
        run_ring $n $vars; rc=$?
        [ $rc -eq 2 ] || break
        echo "$n ranks: a port was taken meanwhile (attempt $attempt), again on new ports"
    done
    [ $rc -eq 0 ] || exit 1
    for r in $(seq 0 $((n - 1))); do
        grep -q "timeouts $want" "$dir/out$r" ||
            { echo "FAIL: $n ranks with $vars: rank $r's ring does not use '$want'"; exit 1; }
    done
    echo "$n ranks with $vars: the ring uses $want"
done
echo "PASS: coll over the ring, 2 and 4 ranks"
