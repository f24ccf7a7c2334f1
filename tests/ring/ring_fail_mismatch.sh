#!/bin/sh
# SPDX-License-Identifier: MIT
# Ranks that disagree on count, type, op or collective all get INVALID_USAGE; SIGTERM
# (ring_comm_abort from the handler) gives ABORTED on every rank at once.
d=$(dirname "$0")
python3 "$d/ring_fail.py" mismatch --ranks 2,4,8 && python3 "$d/ring_fail.py" abort --ranks 2,4,8
