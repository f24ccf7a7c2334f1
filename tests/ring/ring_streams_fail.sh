#!/bin/sh
# SPDX-License-Identifier: MIT
# Striped TCP under failure, with 4 streams per neighbour (RING_OP_TIMEOUT_MS=1000): a
# SIGKILLed rank gives every survivor PEER_CLOSED within 2 s, a SIGSTOPped one TIMEOUT,
# ranks that disagree on the call INVALID_USAGE, SIGTERM ABORTED; ranks that disagree on
# the number of streams fail to form the ring with a message naming both counts; strangers
# (with and without a shared secret) are refused while 4-stream rings form.
d=$(dirname "$0")
trials=${RING_FAIL_TRIALS:-8}
export RING_TCP_STREAMS=4
python3 "$d/ring_fail.py" kill --ranks 2,4 --trials "$trials" ${RING_FAIL_SEED:+--seed $RING_FAIL_SEED} &&
    python3 "$d/ring_fail.py" stop --ranks 2,4 --trials 2 &&
    python3 "$d/ring_fail.py" mismatch --ranks 2,4 &&
    python3 "$d/ring_fail.py" abort --ranks 2,4 &&
    python3 "$d/ring_streams_mismatch.py" &&
    bash "$d/ring_strangers.sh"
