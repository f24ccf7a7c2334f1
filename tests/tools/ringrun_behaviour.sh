#!/bin/sh
# SPDX-License-Identifier: MIT
# ringrun: argument checks, output prefixes, first failure stops the rest, timeout,
# signal forwarding, the configs' transport, multi-host config files. Every wait here is
# bounded.
set -u
fails=0
pass() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

out=$("$RINGRUN" -n 3 -- true 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "world_size must be a power of 2, got 3" && pass "-n 3 refused" || bad "-n 3: rc=$rc $out"

out=$("$RINGRUN" -n 2 -- sh -c 'echo hello; echo oops >&2' 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -qx "\[0\] hello" && echo "$out" | grep -qx "\[1\] oops" && pass "prefixes" || bad "prefixes: $out"

# Rank 2 fails with status 3 while the others would sleep for a minute.
start=$(date +%s)
out=$("$RINGRUN" -n 4 -- sh -c 'if grep -Eq "\"rank\":[[:space:]]*2," "$RING_CONFIG"; then exit 3; fi; exec sleep 60' 2>&1); rc=$?
took=$(( $(date +%s) - start ))
[ $rc -eq 3 ] && [ $took -lt 20 ] && echo "$out" | grep -q "rank 2 exited with status 3" && pass "first failure stops the rest (${took}s)" || bad "first failure: rc=$rc took=${took}s $out"

start=$(date +%s)
"$RINGRUN" -n 2 --timeout 1 -- sleep 60 >/dev/null 2>&1; rc=$?
took=$(( $(date +%s) - start ))
[ $rc -eq 124 ] && [ $took -lt 15 ] && pass "--timeout (${took}s)" || bad "--timeout: rc=$rc took=${took}s"

"$RINGRUN" -n 2 -- sleep 60 >/dev/null 2>&1 &
pid=$!
# SIGTERM once both ranks run (bounded), so that it is ringrun's handler that gets it.
i=0
while [ "$(pgrep -P $pid 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
kill -TERM $pid
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
if kill -0 $pid 2>/dev/null; then kill -KILL $pid; bad "SIGTERM not forwarded"; else wait $pid; rc=$?; [ $rc -ne 0 ] && pass "SIGTERM forwarded (rc $rc)" || bad "SIGTERM: rc 0"; fi

"$RINGRUN" --print-configs --hosts hostA,hostB,hostC,hostD --base-port 31000 --out "$tmp" >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && grep -Eq '"right_ip":[[:space:]]*"hostC"' "$tmp/rank-1.json" \
    && grep -Eq '"master_ip":[[:space:]]*"hostA"' "$tmp/rank-3.json" && grep -Eq '"right_port":[[:space:]]*31001' "$tmp/rank-3.json" && pass "--print-configs" || bad "--print-configs rc=$rc"

# Local ranks are given shm unless --transport says otherwise; multi-host files keep tcp (the
# field left out); RING_TRANSPORT still decides over the file.
out=$("$RINGRUN" -n 2 -- sh -c 'cat "$RING_CONFIG"' 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$(echo "$out" | grep -Ec '"transport":[[:space:]]*"shm"')" -eq 2 ] && pass "local ranks: shm" || bad "local ranks' transport: rc=$rc $out"
out=$("$RINGRUN" -n 2 --transport tcp -- sh -c 'cat "$RING_CONFIG"' 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q '"rank"' && ! echo "$out" | grep -q '"transport"' && pass "--transport tcp" || bad "--transport tcp: rc=$rc $out"
out=$("$RINGRUN" -n 2 --transport udp -- true 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "ringrun: --transport must be tcp, shm, verbs or auto, got 'udp'" && pass "--transport udp refused" || bad "--transport udp: rc=$rc $out"
out=$(RING_LOG_LEVEL=info "$RINGRUN" -n 2 -- "$RING_TEST" --counts 1 --big 1 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$(echo "$out" | grep -c "transport shm (set by the config's \"transport\")")" -eq 2 ] && pass "ranks run over shm" || bad "default transport: rc=$rc $out"
out=$(RING_TRANSPORT=tcp RING_LOG_LEVEL=info "$RINGRUN" -n 2 -- "$RING_TEST" --counts 1 --big 1 2>&1); rc=$?
[ $rc -eq 0 ] && ! echo "$out" | grep -q "transport shm" && pass "RING_TRANSPORT=tcp over ringrun's shm" || bad "RING_TRANSPORT=tcp: rc=$rc $out"
# Without a writable /dev/shm (a read-only one in a mount namespace of this test's own) the
# ranks fall back to tcp, and ringrun says so.
if unshare -m sh -c 'mount -t tmpfs -o ro tmpfs /dev/shm' 2>/dev/null; then
    out=$(unshare -m sh -c 'mount -t tmpfs -o ro tmpfs /dev/shm && exec "$0" -n 2 -- sh -c "cat \"\$RING_CONFIG\""' "$RINGRUN" 2>&1); rc=$?
    [ $rc -eq 0 ] && echo "$out" | grep -q "ringrun: /dev/shm is not writable (.*): the ranks use tcp" \
        && echo "$out" | grep -q '"rank"' && ! echo "$out" | grep -q '"transport"' && pass "no writable /dev/shm: tcp" || bad "read-only /dev/shm: rc=$rc $out"
else
    echo "skip: no mount namespace here (unshare -m needs root): the read-only /dev/shm check"
fi
"$RINGRUN" --print-configs --hosts h0,h1 --transport auto --out "$tmp/auto" >/dev/null 2>&1; rc=$?
[ $rc -eq 0 ] && grep -Eq '"transport":[[:space:]]*"auto"' "$tmp/auto/rank-1.json" && ! grep -q '"transport"' "$tmp/rank-0.json" && pass "--print-configs: tcp unless --transport" || bad "--print-configs --transport: rc=$rc"

# A rank whose RING_CONFIG is broken reports the file and the field.
printf '{"master_port": 1, "port": 2, "right_port": 3, "rank": 0, "world_size": 6}' > "$tmp/bad.json"
out=$(RING_CONFIG="$tmp/bad.json" "$RING_TEST" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "bad.json: world_size must be a power of 2, got 6" && pass "bad config reported" || bad "bad config: $out"
out=$(env -u RING_CONFIG "$RING_TEST" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "RING_CONFIG is not set" && pass "unset RING_CONFIG reported" || bad "unset: $out"

[ $fails -eq 0 ] && echo "PASS: ringrun behaviour" || echo "FAIL: $fails ringrun checks"
exit $fails
