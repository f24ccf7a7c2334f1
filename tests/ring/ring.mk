# SPDX-License-Identifier: MIT
# libring's tests, included from tests/Makefile.am inside `if WITH_RING` (after check_PROGRAMS,
# TESTS and EXTRA_DIST are defined). Paths are relative to tests/ (one Makefile, subdir objects).

# Multi-process check program: every collective, type, op and count on the ring.
check_PROGRAMS += ring/ring-test
ring_ring_test_SOURCES = ring/ring-test.c
ring_ring_test_LDADD = $(top_builddir)/libring/libring.la -lm
TESTS += ring/ring_collectives.sh ring/ring_shm.sh
EXTRA_DIST += ring/ring_collectives.sh ring/ring_shm.sh

# common/half.h on every special value, against libring's and the kernels' wrappers.
check_PROGRAMS += ring/test_half
TESTS += ring/test_half
ring_test_half_SOURCES = ring/test_half.c check.h
ring_test_half_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/kernels
ring_test_half_LDADD = $(top_builddir)/libring/libring.la $(top_builddir)/kernels/libcollkern.la -lm

# Config parsing, the reduction kernels, the wire format, and the settings (read once at
# creation, refused values named, the log callback, config growth).
check_PROGRAMS += ring/test_config ring/test_reduce ring/test_wire ring/test_settings
TESTS += ring/test_config ring/test_reduce ring/test_wire ring/test_settings
ring_test_config_SOURCES = ring/test_config.c check.h
ring_test_config_LDADD = $(top_builddir)/libring/libring_internal.la
ring_test_reduce_SOURCES = ring/test_reduce.c check.h
ring_test_reduce_LDADD = $(top_builddir)/libring/libring_internal.la -lm
ring_test_wire_SOURCES = ring/test_wire.c check.h
ring_test_wire_LDADD = $(top_builddir)/libring/libring_internal.la
ring_test_settings_SOURCES = ring/test_settings.c check.h
ring_test_settings_LDADD = $(top_builddir)/libring/libring.la

# Reliability (issue 5): kills, stops, mismatches, CRC32C, strangers, network namespaces.
check_PROGRAMS += ring/ring-chaos
ring_ring_chaos_SOURCES = ring/ring-chaos.c
ring_ring_chaos_LDADD = $(top_builddir)/libring/libring.la
TESTS += ring/ring_fail_kill.sh ring/ring_fail_stop.sh ring/ring_fail_mismatch.sh
EXTRA_DIST += ring/ring_fail.py ring/ring_fail_kill.sh ring/ring_fail_stop.sh \
	ring/ring_fail_mismatch.sh

check_PROGRAMS += ring/test_crc32c
ring_test_crc32c_SOURCES = ring/test_crc32c.c check.h
ring_test_crc32c_LDADD = $(top_builddir)/libring/libring_internal.la
TESTS += ring/test_crc32c

# A misbehaving client (links libring's private wire and auth code).
check_PROGRAMS += ring/ring-stranger
ring_ring_stranger_SOURCES = ring/ring-stranger.c
ring_ring_stranger_LDADD = $(top_builddir)/libring/libring_internal.la
TESTS += ring/ring_strangers.sh fuzz/smoke.sh ring/ring_netns.sh
EXTRA_DIST += ring/ring_strangers.sh fuzz ring/ring_netns.sh ring/ring_relay.py ring/free_ports.py

# Data path (striped TCP streams, step groups, worker threads, rate-capped links).
TESTS += ring/ring_streams.sh ring/ring_streams_fail.sh ring/ring_step_group.sh \
	ring/ring_netns_tbf.sh ring/ring_recv_caller_fail.sh
EXTRA_DIST += ring/ring_streams.sh ring/ring_streams_fail.sh ring/ring_streams_mismatch.py \
	ring/ring_step_group.sh ring/ring_netns_tbf.sh ring/ring_recv_caller_fail.sh

# Reliability round 2 (issue 15): a ring that is aborted while it starts, ranks that join late.
TESTS += ring/ring_abort_start.sh ring/ring_join.py
EXTRA_DIST += ring/ring_abort_start.sh ring/ring_join.py

# Verbs: ring-loop (all-reduce in a loop until a call fails: kill tests, any transport),
# transport selection and its errors without a usable device, and the verbs checks
# on Soft-RoCE in a QEMU guest (verbs/verbs_rxe.sh; SKIP (77) if it cannot boot).
check_PROGRAMS += ring/ring-loop
ring_ring_loop_SOURCES = ring/ring-loop.c
ring_ring_loop_LDADD = $(top_builddir)/libring/libring.la
TESTS += verbs/verbs_rxe.sh
EXTRA_DIST += verbs/verbs_rxe.sh verbs/rxe-vm.sh verbs/vm-checks.sh verbs/kill-test.sh
check_PROGRAMS += ring/test_verbs_select
TESTS += ring/test_verbs_select
ring_test_verbs_select_SOURCES = ring/test_verbs_select.c check.h
ring_test_verbs_select_CFLAGS = $(AM_CFLAGS) $(VERBS_CFLAGS)
ring_test_verbs_select_LDADD = $(top_builddir)/libring/libring_internal.la $(VERBS_LIBS)
