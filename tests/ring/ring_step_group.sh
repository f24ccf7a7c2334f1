#!/bin/sh
# SPDX-License-Identifier: MIT
# Segment order (RING_STEP_GROUP: G segments of one step back to back, then the next
# step's) over TCP (ringrun --transport tcp), and the ways one TCP stream is moved: the
# default (worker threads for collectives of chunks >= RING_TCP_THREADS_MIN_BYTES, the caller's
# loop below, so one communicator switches back and forth), workers for every size
# (RING_TCP_THREADS_MIN_BYTES=0), and no workers (RING_TCP_THREADS=0), and the caller receiving
# while one worker sends (RING_TCP_RECV_WORKER=0, and auto, which picks it on hosts of few
# CPUs): every collective, type, op, count and placement on 2 and 4 ranks. 4 KiB segments with
# the latency path off make chunks of many segments whose counts differ by step (odd counts),
# so groups end early, G=1 is the old piece-major order, and G >= depth is clamped to depth-1.
set -u
big=${RING_TEST_BIG:-1048579}
for n in 2 4; do
    for v in "RING_STEP_GROUP=1" \
             "RING_STEP_GROUP=3 RING_PIPELINE_DEPTH=4 RING_SEGMENT_BYTES=4096 RING_SMALL_BYTES=0" \
             "RING_STEP_GROUP=63 RING_PIPELINE_DEPTH=2 RING_SEGMENT_BYTES=4096 RING_SMALL_BYTES=0" \
             "RING_STEP_GROUP=5 RING_PIPELINE_DEPTH=8 RING_SEGMENT_BYTES=4096 RING_CHECKSUM=1" \
             "RING_TCP_THREADS=0" \
             "RING_TCP_THREADS_MIN_BYTES=0" \
             "RING_TCP_THREADS_MIN_BYTES=4096 RING_SMALL_BYTES=0" \
             "RING_TCP_THREADS_MIN_BYTES=0 RING_STEP_GROUP=2 RING_PIPELINE_DEPTH=3 RING_SEGMENT_BYTES=4096 RING_SMALL_BYTES=0" \
             "RING_TCP_RECV_WORKER=0 RING_TCP_THREADS_MIN_BYTES=4096 RING_SMALL_BYTES=0" \
             "RING_TCP_RECV_WORKER=auto RING_TCP_THREADS_MIN_BYTES=0 RING_SEGMENT_BYTES=16384 RING_PIPELINE_DEPTH=4 RING_STEP_GROUP=3"; do
        echo "== $n ranks, $v"
        # --timeout only catches a hang (each collective has its own deadline): the 4 KiB-segment
        # variants on 4 ranks took 213-283 s under make check -j4 at load 20 on 2 cores.
        # shellcheck disable=SC2086
        if ! env $v "$RINGRUN" -n "$n" --transport tcp --timeout 900 -- "$RING_TEST" --counts 0,1,3,1000,40000 --big "$big"; then
            echo "FAIL: ring-test on $n ranks with $v"
            exit 1
        fi
    done
done
echo "PASS: ring collectives with step groups 1, 3, 5 and clamped, and one stream moved by workers, by the caller, by both (per collective), and by the caller receiving beside a send worker, on 2 and 4 ranks"
