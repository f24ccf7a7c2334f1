#!/bin/sh
# SPDX-License-Identifier: MIT
# SIGSTOP one rank of 2, 4 and 8 mid all-reduce, 20 trials each: survivors get TIMEOUT
# within 2 s (2x a 1 s deadline).
exec python3 "$(dirname "$0")/ring_fail.py" stop --ranks 2,4,8 --trials "${RING_FAIL_TRIALS:-20}" \
    ${RING_FAIL_SEED:+--seed $RING_FAIL_SEED}
