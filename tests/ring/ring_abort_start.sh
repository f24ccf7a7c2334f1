#!/bin/sh
# SPDX-License-Identifier: MIT
# An abort before the first collective (a rank failing at start-up) reaches every other rank
# as RING_ERR_ABORTED at once, naming the rank, instead of a PEER_CLOSED after the operation
# deadline (issue 15).
d=$(dirname "$0")
exec python3 "$d/ring_fail.py" abort-start --ranks 2,4
