#!/bin/sh
# SPDX-License-Identifier: MIT
# ringrun and the processes its ranks start (issue 15): each rank is a process group signalled
# as a whole, nothing outlives ringrun (not even after kill -9 of ringrun, whose config folder
# goes too), a signal between fork and exec never runs ringrun's handler in a child, and a
# reader that leaves (`| head -c1`) stops the ranks with the SIGPIPE status. Every wait is
# bounded (an outer `timeout -s KILL`, status 137); the markers are unique sleep lengths looked up with pgrep.
set -u
[ -x "${RINGRUN:-}" ] || { echo "SKIP: ringrun not built"; exit 77; }
fails=0
pass() { echo "ok: $1"; }
bad() { echo "FAIL: $1"; fails=$((fails + 1)); }
tmp=$(mktemp -d)
mark=$$$(od -An -N2 -tu2 /dev/urandom | tr -d ' ')
trap 'for p in $(pgrep -f "^sleep 9$mark" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; rm -rf "$tmp"' EXIT
left() { pgrep -f "^sleep 9$mark" | wc -l; }
# Waits up to 20 s for a condition (a shell command) to hold; the check is the synchronisation.
until_true() { i=0; while ! eval "$1" && [ $i -lt 200 ]; do sleep 0.1; i=$((i + 1)); done; eval "$1"; }
# Waits (bounded) for background process $1; its status in rc, 137 if it had to be killed.
wait_bounded() { until_true "! kill -0 $1 2>/dev/null" || kill -9 "$1" 2>/dev/null; wait "$1"; rc=$?; }

# --timeout stops a rank's children too: a shell waiting on its sleep used to keep ringrun 20 s.
timeout -s KILL 30 "$RINGRUN" -n 2 --timeout 1 -- sh -c "sleep 9$mark.1; echo done" >"$tmp/o" 2>&1; rc=$?
[ $rc -eq 124 ] && ! grep -q done "$tmp/o" && until_true '[ $(left) -eq 0 ]' \
    && pass "--timeout stops the whole group (rc $rc)" || bad "--timeout: rc=$rc, $(left) left: $(cat "$tmp/o")"

# A child that closed its output must not be left behind either.
timeout -s KILL 30 "$RINGRUN" -n 2 --timeout 1 -- sh -c "sleep 9$mark.2 >/dev/null 2>&1" >/dev/null 2>&1; rc=$?
[ $rc -eq 124 ] && until_true '[ $(left) -eq 0 ]' && pass "no silent child left behind" \
    || bad "silent child: rc=$rc, $(left) left"

# A rank that exits leaves nothing running (its background child is stopped with it).
timeout -s KILL 30 "$RINGRUN" -n 2 -- sh -c "sleep 9$mark.3 & echo started" >"$tmp/o" 2>&1; rc=$?
[ $rc -eq 0 ] && until_true '[ $(left) -eq 0 ]' && pass "background child of a finished rank stopped" \
    || bad "background child: rc=$rc, $(left) left"

# SIGINT reaches the whole group: ringrun returns well before the sleep would end.
"$RINGRUN" -n 2 -- sh -c "echo \$\$ >\"$tmp/up.\$\$\"; sleep 9$mark.4; echo done" >"$tmp/o" 2>&1 &
rr=$!
until_true '[ $(ls "$tmp" | grep -c "^up\.") -eq 2 ] && [ $(left) -eq 2 ]'
kill -INT $rr
wait_bounded $rr
[ $rc -eq 130 ] && ! grep -q done "$tmp/o" && until_true '[ $(left) -eq 0 ]' \
    && pass "SIGINT stops every group (rc $rc)" || bad "SIGINT: rc=$rc, $(left) left: $(cat "$tmp/o")"
rm -f "$tmp"/up.*

# kill -9 of ringrun: the ranks, their children and the config folder all go.
"$RINGRUN" -n 2 -- sh -c "dirname \"\$RING_CONFIG\" >\"$tmp/dir.\$\$\"; sleep 9$mark.5" >/dev/null 2>&1 &
rr=$!
until_true '[ $(ls "$tmp" | grep -c "^dir\.") -eq 2 ] && [ $(left) -eq 2 ]'
cfgdir=$(cat "$tmp"/dir.* | head -n 1)
kill -9 $rr
wait_bounded $rr
until_true '[ $(left) -eq 0 ] && [ ! -e "$cfgdir" ]' && pass "kill -9 of ringrun: ranks, children and $cfgdir gone" \
    || bad "kill -9: $(left) left, folder '$cfgdir' $( [ -e "$cfgdir" ] && echo still there)"

# A rank that fails at once while the others start: a SIGTERM landing between fork and exec
# must not run ringrun's handler in the child (spurious "forwarding" lines, lost messages).
spurious=0 lost=0
for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
  timeout -s KILL 30 "$RINGRUN" -n 4 -- /no/such/cmd >"$tmp/o" 2>&1
  grep -q forwarding "$tmp/o" && spurious=$((spurious + 1))
  [ "$(grep -c 'cannot run /no/such/cmd' "$tmp/o")" -ge 1 ] || lost=$((lost + 1))
done
[ $spurious -eq 0 ] && [ $lost -eq 0 ] && pass "20 runs of a missing command: no spurious forwarding" \
    || bad "missing command: $spurious runs with forwarding lines, $lost without the error"

# The reader leaves: ringrun stops the ranks and exits 141 (128 + SIGPIPE), as a killed
# pipeline member would, instead of 0.
( timeout -s KILL 30 "$RINGRUN" -n 2 -- sh -c "while :; do echo line; done" 2>"$tmp/e"; echo $? >"$tmp/rc" ) | head -c1 >/dev/null
rc=$(cat "$tmp/rc")
[ "$rc" = 141 ] && grep -q "cannot write the ranks' output" "$tmp/e" && pass "| head -c1: rc $rc" \
    || bad "| head -c1: rc=$rc $(cat "$tmp/e")"

# --hosts with an empty entry is refused, not a smaller ring.
out=$("$RINGRUN" --print-configs --hosts a,,b,c --out "$tmp/cfg" 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "empty" && pass "--hosts a,,b,c refused" || bad "--hosts a,,b,c: rc=$rc $out"

[ $fails -eq 0 ] && echo "PASS: ringrun process groups" || echo "FAIL: $fails checks"
exit $fails
