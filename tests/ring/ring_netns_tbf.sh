#!/bin/sh
# SPDX-License-Identifier: MIT
# Smoke run of bench/netns_tbf.sh: a ring of 4 network namespaces, every host's egress
# capped with tbf at 2 Gbit/s; the all-reduce must be right (coll-bench -c 1) at 1 MiB and
# 16 MiB. Prints busbw against the link rate; never asserts it (timed tests do not judge
# speed: docs/BENCHMARKS.md holds the measured figures). Skips (77) without root or netns.
set -u
exec "$abs_top_srcdir/bench/netns_tbf.sh" -q -r 1 -R 2gbit -s "1M 16M" -n 3 -w 1 \
    --coll-bench "$COLL_BENCH" --ringrun "$RINGRUN"
