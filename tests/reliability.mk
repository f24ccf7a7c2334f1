# SPDX-License-Identifier: MIT
# Reliability tests (issue 5), for tests/Makefile.am inside `if WITH_RING`, after
# check_PROGRAMS, TESTS and EXTRA_DIST are defined: `include $(srcdir)/reliability.mk`.
check_PROGRAMS += ring-chaos
ring_chaos_SOURCES = ring-chaos.c
ring_chaos_LDADD = $(top_builddir)/libring/libring.la

TESTS += ring_fail_kill.sh ring_fail_stop.sh ring_fail_mismatch.sh
EXTRA_DIST += ring_fail.py ring_fail_kill.sh ring_fail_stop.sh ring_fail_mismatch.sh
AM_TESTS_ENVIRONMENT += RING_CHAOS=$(abs_builddir)/ring-chaos; export RING_CHAOS;

check_PROGRAMS += test_crc32c
test_crc32c_SOURCES = test_crc32c.c
test_crc32c_LDADD = $(top_builddir)/libring/libring_internal.la
TESTS += test_crc32c

# A misbehaving client (links libring's private wire and auth code).
check_PROGRAMS += ring-stranger
ring_stranger_SOURCES = ring-stranger.c
ring_stranger_CPPFLAGS = -I$(top_srcdir) -I$(top_srcdir)/libring
ring_stranger_LDADD = $(top_builddir)/libring/libring_internal.la
TESTS += ring_strangers.sh fuzz/smoke.sh ring_netns.sh
EXTRA_DIST += ring_strangers.sh fuzz ring_netns.sh ring_relay.py free_ports.py
AM_TESTS_ENVIRONMENT += RING_STRANGER=$(abs_builddir)/ring-stranger; RINGRUN_BIN=$(abs_top_builddir)/tools/ringrun; \
	export RING_STRANGER RINGRUN_BIN;
