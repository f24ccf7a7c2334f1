# Striped TCP transport tests (RING_TCP_STREAMS), for tests/Makefile.am inside
# `if WITH_RING`, after reliability.mk (needs ring-test and ring-chaos):
# `include $(srcdir)/streams.mk`.
TESTS += ring_streams.sh ring_streams_fail.sh
EXTRA_DIST += ring_streams.sh ring_streams_fail.sh ring_streams_mismatch.py
