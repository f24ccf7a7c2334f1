#!/bin/sh
# SPDX-License-Identifier: MIT
# Every collective, type, op, count and placement over loopback TCP, for 1, 2, 4 and 8 ranks
# (ringrun's default, shm, has ring_shm.sh).
# RING_TEST_BIG overrides the large count (default 1048579, the odd count of the spec).
set -u
big=${RING_TEST_BIG:-1048579}
for n in 1 2 4 8; do
    echo "== $n ranks"
    if ! "$RINGRUN" -n "$n" --transport tcp --timeout 600 -- "$RING_TEST" --counts 0,1,3,1000 --big "$big"; then
        echo "FAIL: ring-test on $n ranks"
        exit 1
    fi
done
echo "PASS: ring collectives on 1, 2, 4 and 8 ranks"
