# SPDX-License-Identifier: MIT
# Data path tests (striped TCP streams, step groups, worker threads, rate-capped links),
# for tests/Makefile.am inside
# `if WITH_RING`, after reliability.mk (needs ring-test and ring-chaos):
# `include $(srcdir)/streams.mk`.
TESTS += ring_streams.sh ring_streams_fail.sh ring_step_group.sh ring_netns_tbf.sh
EXTRA_DIST += ring_streams.sh ring_streams_fail.sh ring_streams_mismatch.py ring_step_group.sh ring_netns_tbf.sh
