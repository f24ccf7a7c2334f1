#!/bin/sh
# SPDX-License-Identifier: MIT
# coll-bench smoke run: every collective with checking on small sizes, 2 and 4 ranks;
# a wrong value or an error would make it exit non-zero.
set -u
for n in 2 4; do
    for coll in allreduce reducescatter allgather broadcast; do
        # --timeout only catches a hang (each collective has its own deadline); generous,
        # as every type and op on 4 ranks takes minutes on a loaded 2-core machine.
        out=$("$RINGRUN" -n $n --timeout 900 -- "$COLL_BENCH" --coll $coll -b 1K -e 1M -f 32 -n 3 -w 1 -c 1 \
              -d all -o all -r $((n - 1)) 2>&1)
        rc=$?
        if [ $rc -ne 0 ] || ! echo "$out" | grep -q "Out of bounds values : 0 OK"; then
            echo "$out"
            echo "FAIL: coll-bench $coll on $n ranks (rc $rc)"
            exit 1
        fi
        echo "ok: coll-bench $coll on $n ranks"
    done
done
out=$("$RINGRUN" -n 2 -- "$COLL_BENCH" -b 4K -e 4K -n 2 -w 0 --json 2>/dev/null)
echo "$out" | grep -q '"busbw":' || { echo "FAIL: --json"; exit 1; }
# The table's type column uses nccl-tests' names.
out=$("$RINGRUN" -n 2 -- "$COLL_BENCH" -b 64 -e 64 -n 1 -w 0 -d all -o sum 2>/dev/null)
for t in float double half bfloat16 int32 int64 uint8; do
    echo "$out" | grep -Eq "[[:space:]]64[[:space:]]+[0-9]+[[:space:]]+$t[[:space:]]+sum[[:space:]]" ||
        { echo "$out"; echo "FAIL: no row of type '$t' (nccl-tests' name) in the table"; exit 1; }
done
echo "PASS: coll-bench smoke"
