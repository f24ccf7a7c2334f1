#!/bin/sh
# SPDX-License-Identifier: MIT
# coll-bench says OK only for a run that measured something and did not fail (issue 15): an op
# not defined for the type is refused up front, a run whose peer leaves mid-sweep ends FAILED,
# and a too large count is called too large.
set -u
[ -x "${COLL_BENCH:-}" ] && [ -x "${RINGRUN:-}" ] || { echo "SKIP: coll-bench or ringrun not built"; exit 77; }
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
out=$("$COLL_BENCH" -d i32 -o avg 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "not defined for -d i32" && ! echo "$out" | grep -q " OK" \
    && echo "ok: -d i32 -o avg refused (exit $rc)" || bad "-d i32 -o avg: exit $rc: $out"
# Rank 1 measures one size and leaves; rank 0's sweep fails at the next size.
out=$(RING_OP_TIMEOUT_MS=5000 RING_LOG_LEVEL=error timeout -s KILL 60 "$RINGRUN" -n 2 -- sh -c \
  'if grep -Eq "\"rank\":[[:space:]]*1," "$RING_CONFIG"; then exec "$0" -b 8 -e 8 -n 2 -w 1; else exec "$0" -b 8 -e 1M -f 2 -n 2 -w 1; fi' \
  "$COLL_BENCH" 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -q "Out of bounds values : 0 FAILED" && ! echo "$out" | grep -q " OK$"; then
  echo "ok: a failed run ends FAILED (exit $rc)"
else bad "failed run: exit $rc: $out"; fi
out=$("$COLL_BENCH" -n 2147483647 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "too large" && echo "ok: -n 2147483647: $out" || bad "-n 2147483647: exit $rc: $out"
exit $fails
