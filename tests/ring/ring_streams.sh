#!/bin/sh
# SPDX-License-Identifier: MIT
# Striped TCP (RING_TCP_STREAMS; ringrun --transport tcp, its default being shm): every
# collective, type, op, count and placement on 2 and 4 ranks with 2 and 4 streams: default
# segments (256 KiB: cut in K parts), 96 KiB + 8 segments (3 parts: fewer than K streams carry
# data) and 4 KiB segments with the latency path off (every operation whole on stream 0, many
# in flight).
set -u
big=${RING_TEST_BIG:-1048579}
for n in 2 4; do
    for k in 2 4; do
        for v in default 98312 4096; do
            case $v in
            default) set -- ;;
            4096) set -- RING_SMALL_BYTES=0 RING_SEGMENT_BYTES=4096 ;;
            *) set -- RING_SEGMENT_BYTES=$v ;;
            esac
            echo "== $n ranks, $k streams, segments $v"
            if ! env "$@" RING_TCP_STREAMS=$k "$RINGRUN" -n "$n" --transport tcp --timeout 900 -- "$RING_TEST" \
                --counts 0,1,3,1000,40000 --big "$big"; then
                echo "FAIL: ring-test on $n ranks with $k TCP streams (segments $v)"
                exit 1
            fi
        done
    done
done
echo "PASS: ring collectives over 2 and 4 TCP streams, on 2 and 4 ranks"
