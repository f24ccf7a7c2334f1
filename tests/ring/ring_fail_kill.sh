#!/bin/sh
# SPDX-License-Identifier: MIT
# SIGKILL one rank of 2, 4 and 8 mid all-reduce, 20 trials each: survivors get PEER_CLOSED
# within 2 s (2x a 1 s deadline). Longer runs: RING_FAIL_TRIALS=200.
exec python3 "$(dirname "$0")/ring_fail.py" kill --ranks 2,4,8 --trials "${RING_FAIL_TRIALS:-20}" \
    ${RING_FAIL_SEED:+--seed $RING_FAIL_SEED}
