#!/bin/sh
# Segment order (RING_STEP_GROUP: G segments of one step back to back, then the next
# step's) and the threaded single stream (RING_TCP_THREADS=1): every collective, type, op,
# count and placement on 2 and 4 ranks. 4 KiB segments with the latency path off make
# chunks of many segments whose counts differ by step (odd counts), so groups end early,
# G=1 is the old piece-major order, and G >= depth is clamped to depth-1.
set -u
big=${RING_TEST_BIG:-1048579}
for n in 2 4; do
    for v in "RING_STEP_GROUP=1" \
             "RING_STEP_GROUP=3 RING_PIPELINE_DEPTH=4 RING_SEGMENT_BYTES=4096 RING_SMALL_BYTES=0" \
             "RING_STEP_GROUP=63 RING_PIPELINE_DEPTH=2 RING_SEGMENT_BYTES=4096 RING_SMALL_BYTES=0" \
             "RING_STEP_GROUP=5 RING_PIPELINE_DEPTH=8 RING_SEGMENT_BYTES=4096 RING_CHECKSUM=1" \
             "RING_TCP_THREADS=1" \
             "RING_TCP_THREADS=1 RING_STEP_GROUP=2 RING_PIPELINE_DEPTH=3 RING_SEGMENT_BYTES=4096 RING_SMALL_BYTES=0"; do
        echo "== $n ranks, $v"
        # shellcheck disable=SC2086
        if ! env $v "$RINGRUN" -n "$n" --timeout 300 -- "$RING_TEST" --counts 0,1,3,1000,40000 --big "$big"; then
            echo "FAIL: ring-test on $n ranks with $v"
            exit 1
        fi
    done
done
echo "PASS: ring collectives with step groups 1, 3, 5 and clamped, and threaded single streams, on 2 and 4 ranks"
