#!/bin/sh
# SPDX-License-Identifier: MIT
# --print-config shows the values in effect, not the raw environment (issue 15): an out-of-range
# RING_PIPELINE_DEPTH shows the depth used and is marked not valid; RING_LOG_LEVEL=bogus is an
# error at communicator creation, not silently "info".
set -u
[ -x "${COLL_BENCH:-}" ] && [ -x "${RINGRUN:-}" ] && [ -x "${RING_TEST:-}" ] || { echo "SKIP: tools not built"; exit 77; }
fails=0
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
out=$(RING_PIPELINE_DEPTH=100000 RING_LOG_LEVEL=bogus "$COLL_BENCH" --print-config 2>&1); rc=$?
line=$(echo "$out" | grep "^RING_PIPELINE_DEPTH")
echo "$line" | grep -Eq "= 16 .*RING_PIPELINE_DEPTH=100000 not valid" && echo "ok: $line" || bad "depth: $line"
line=$(echo "$out" | grep "^RING_LOG_LEVEL")
echo "$line" | grep -Eq "= info .*RING_LOG_LEVEL=bogus not valid" && echo "ok: $line" || bad "log level: $line"
out=$(RING_LOG_LEVEL=bogus timeout -s KILL 60 "$RINGRUN" -n 2 -- "$RING_TEST" 2>&1); rc=$?
[ $rc -ne 0 ] && echo "$out" | grep -q "RING_LOG_LEVEL: expected error, warn, info or debug, got .bogus." \
    && echo "ok: RING_LOG_LEVEL=bogus refused (exit $rc)" || bad "RING_LOG_LEVEL=bogus: exit $rc: $out"
exit $fails
