#!/bin/sh
# SPDX-License-Identifier: MIT
# The shared-memory transport (RING_TRANSPORT=shm): every collective on 2, 4 and 8 ranks with
# the receivers copying from the senders' memory (CMA), 4 ranks through the FIFO, a killed
# rank turning into errors within 2 s, ranks on different transports refused with a line
# that says so, and no segment left behind in /dev/shm. The all-reduce's all-gather through the
# staging slots (RING_SHM_GATHER), streamed or not (RING_STREAM_BYTES, RING_STREAM_RANKS), gives
# the bits of the copy from the left's buffer, on every rank; the ranks say when they stream.
# A pipeline of depth 1 is refused at start.
set -u
if [ ! -d /dev/shm ]; then
    echo "SKIP: no /dev/shm on this machine"
    exit 77
fi
export RING_TRANSPORT=shm
for n in 2 4 8; do
    echo "== $n ranks, CMA"
    if ! "$RINGRUN" -n "$n" --timeout 600 -- "$RING_TEST" --counts 0,1,3,1000 --big 262147; then
        echo "FAIL: ring-test over shm on $n ranks"
        exit 1
    fi
done
# The receivers reduce from their left neighbours' staging slots in place (logged), also with
# checksums, in the transport's own pipeline (512 KiB x 4, several segments a step here); with
# segments set too large for the shared area (16 x 1 MiB) the slots stay private.
echo "== 4 ranks, CMA, checksums on, slots read in place"
log=$(mktemp) || exit 1
# fail MESSAGE ends the test with it (fail_log prints the ranks' log first).
fail() {
    echo "FAIL: $*"
    rm -f "$log"
    exit 1
}
fail_log() {
    cat "$log"
    fail "$@"
}
if ! RING_CHECKSUM=1 "$RINGRUN" -n 4 --timeout 600 -- "$RING_TEST" --counts 0,1,3,1000 \
    --big 2621447 >"$log" 2>&1; then
    fail_log "ring-test over shm with checksums on 4 ranks"
fi
if [ "$(grep -c 'staging slots shared with rank' "$log")" -ne 4 ]; then
    fail_log "not every rank shared its staging slots"
fi
if [ "$(grep -c 'segment 524288 B x 4,' "$log")" -ne 4 ]; then
    fail_log "the shm transport's pipeline (512 KiB x 4) not taken by every rank"
fi
echo "== 4 ranks, CMA, 1 MiB segments: private slots"
if ! RING_SEGMENT_BYTES=1048576 "$RINGRUN" -n 4 --timeout 600 -- "$RING_TEST" \
    --counts 0,1,3,1000 --big 2621447 >"$log" 2>&1; then
    fail_log "ring-test over shm with 1 MiB segments"
fi
if grep -q 'staging slots shared' "$log"; then
    fail "16 MiB of staging slots claimed to fit the 2 MiB shared area"
fi
if [ "$(grep -c 'segment 1048576 B x 16,' "$log")" -ne 4 ]; then
    fail_log "RING_SEGMENT_BYTES did not win over the transport's pipeline on every rank"
fi
# A send completes when the receiver has taken it, so one staging slot a rank would deadlock
# around the ring (it hung until the operation's deadline): refused at start, naming it.
echo "== a pipeline of depth 1: refused"
if RING_PIPELINE_DEPTH=1 "$RINGRUN" -n 2 --timeout 60 -- "$RING_TEST" --counts 1 --big 1 \
    >"$log" 2>&1; then
    fail_log "shm ran with a pipeline of depth 1"
fi
if ! grep -q 'transport shm needs a pipeline depth of 2 or more, not 1' "$log"; then
    fail_log "no line naming the depth shm needs"
fi
echo "== 4 ranks, CMA, every result streamed (RING_STREAM_BYTES=1, RING_STREAM_RANKS=2)"
if ! RING_STREAM_BYTES=1 RING_STREAM_RANKS=2 "$RINGRUN" -n 4 --timeout 600 -- "$RING_TEST" \
    --counts 0,1,3,17,1000 --big 262147 >"$log" 2>&1; then
    fail_log "ring-test over shm with streamed results"
fi
if [ "$(grep -c 'all-reduces of 1 bytes and more stream their result' "$log")" -ne 4 ]; then
    fail_log "not every rank said it streams its results"
fi
# By default in place streams only where 4 ranks run at once; the log says which it chose.
cpus=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc) # the CPUs libring counts (affinity)
if ! RING_STREAM_BYTES=1 "$RINGRUN" -n 4 --timeout 600 -- "$RING_TEST" --counts 1000 \
    >"$log" 2>&1; then
    fail_log "ring-test over shm, RING_STREAM_BYTES=1, default RING_STREAM_RANKS"
fi
want="out of place only"
[ "$cpus" -ge 4 ] && want="in place too"
if [ "$(grep -c "stream their result ($want)" "$log")" -ne 4 ]; then
    fail_log "with $cpus CPUs, not every rank of 4 said it streams its results ($want)"
fi
# Inexact sums: the same bits whichever way the all-gather goes, on every rank.
for n in 2 4; do
    ref=""
    for v in RING_SHM_GATHER=0 RING_STREAM_BYTES=0 RING_STREAM_BYTES=1; do
        echo "== $n ranks, digests with $v"
        # RING_STREAM_RANKS=2: in place streamed at 2 ranks as well (the default starts at 4).
        if ! env RING_STREAM_RANKS=2 "$v" "$RINGRUN" -n "$n" --timeout 600 -- "$RING_TEST" \
            --digest 1000003 >"$log" 2>&1; then
            fail_log "ring-test --digest over shm with $v"
        fi
        got=$(grep '^\[0\] digest' "$log" | sed 's/^\[0\] //')
        if [ "$(grep -c '^\[[0-9]*\] digest' "$log")" -ne $((16 * n)) ] ||
            [ "$(grep 'digest' "$log" | sed 's/^\[[0-9]*\] //' | sort -u | wc -l)" -ne 16 ]; then
            fail_log "$n ranks with $v: not 16 results alike on every rank"
        fi
        if [ -n "$ref" ] && [ "$got" != "$ref" ]; then
            printf '%s\n--- against RING_SHM_GATHER=0:\n%s\n' "$got" "$ref"
            fail "$n ranks: $v changed the bits of the all-reduce"
        fi
        ref=$got
    done
done
rm -f "$log"
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
echo "== rank 0 on shm, rank 1 on tcp: refused within the connect deadline"
wrap=$(mktemp) && out=$(mktemp) || exit 1
trap 'rm -f "$wrap" "$out"' EXIT
cat >"$wrap" <<'EOS'
#!/bin/sh
# rank 0 (shm) gives up first, so that its line is the one printed
if grep -q '"rank":[[:space:]]*0' "$RING_CONFIG"; then
    RING_TRANSPORT=shm RING_CONNECT_TIMEOUT_MS=2000
else
    RING_TRANSPORT=tcp RING_CONNECT_TIMEOUT_MS=30000
fi
export RING_TRANSPORT RING_CONNECT_TIMEOUT_MS
exec "$@"
EOS
chmod +x "$wrap"
if "$RINGRUN" -n 2 --timeout 60 -- "$wrap" "$RING_TEST" --counts 1 \
    --big 1 >"$out" 2>&1; then
    echo "FAIL: ranks on different transports formed a ring"
    exit 1
fi
if ! grep -q 'every rank must use transport shm' "$out"; then
    echo "FAIL: no line naming the transport mismatch:"
    cat "$out"
    exit 1
fi
# Segments of live processes may belong to other jobs; a dead one's would be a leak (the
# transport sweeps those of dead ranks when it starts, and unlinks its own once mapped).
for f in /dev/shm/ringcoll-*; do
    [ -e "$f" ] || continue
    pid=$(basename "$f" | cut -d- -f2)
    if ! kill -0 "$pid" 2>/dev/null; then
        echo "FAIL: $f is left behind by a process that is gone"
        exit 1
    fi
done
echo "PASS: the shm transport (CMA and FIFO), a killed rank, a mixed ring, no segment left"
