#!/bin/sh
# SPDX-License-Identifier: MIT
# The caller receiving while one worker sends (RING_TCP_RECV_WORKER=0), for every size
# (RING_TCP_THREADS_MIN_BYTES=0: ring-chaos's chunks are below the default threshold), under
# failure (RING_OP_TIMEOUT_MS=1000): a SIGKILLed rank gives every survivor PEER_CLOSED within
# 2 s, a SIGSTOPped one TIMEOUT, ranks that disagree on the call INVALID_USAGE, SIGTERM
# ABORTED. The caller's own receive path must keep the deadline, the headers' checks and the
# abort of the workers' path.
d=$(dirname "$0")
trials=${RING_FAIL_TRIALS:-8}
export RING_TCP_RECV_WORKER=0 RING_TCP_THREADS_MIN_BYTES=0
python3 "$d/ring_fail.py" kill --ranks 2,4 --trials "$trials" ${RING_FAIL_SEED:+--seed $RING_FAIL_SEED} &&
    python3 "$d/ring_fail.py" stop --ranks 2,4 --trials 2 &&
    python3 "$d/ring_fail.py" mismatch --ranks 2,4 &&
    python3 "$d/ring_fail.py" abort --ranks 2,4
