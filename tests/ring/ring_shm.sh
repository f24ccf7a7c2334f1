#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared-memory transport (RING_TRANSPORT=shm): every collective on 2, 4 and 8 ranks with
# the receivers copying from the senders' memory (CMA), 4 ranks through the FIFO, a killed
# rank turning into errors within 2 s, and no segment left behind in /dev/shm.
set -u
if [ ! -d /dev/shm ]; then
    echo "SKIP: no /dev/shm on this machine"
    exit 77
fi
export RING_TRANSPORT=shm
before=$(ls /dev/shm | grep -c '^ringcoll-')
for n in 2 4 8; do
    echo "== $n ranks, CMA"
    if ! "$RINGRUN" -n "$n" --timeout 600 -- "$RING_TEST" --counts 0,1,3,1000 --big 262147; then
        echo "FAIL: ring-test over shm on $n ranks"
        exit 1
    fi
done
echo "== 4 ranks, FIFO"
if ! RING_SHM_CMA=0 "$RINGRUN" -n 4 --timeout 600 -- "$RING_TEST" --counts 0,1,3,1000 --big 262147; then
    echo "FAIL: ring-test over the shm FIFO on 4 ranks"
    exit 1
fi
echo "== a killed rank"
if ! python3 "$(dirname "$0")/ring_fail.py" kill --ranks 2,4 --trials 5; then
    echo "FAIL: a killed rank over shm"
    exit 1
fi
after=$(ls /dev/shm | grep -c '^ringcoll-')
if [ "$after" -ne "$before" ]; then
    echo "FAIL: /dev/shm had $before ringcoll segments before and $after after"
    ls -l /dev/shm
    exit 1
fi
echo "PASS: the shm transport (CMA and FIFO), a killed rank, no segment left"
