# SPDX-License-Identifier: MIT
# libcoll tests (included from tests/Makefile.am, which defines check_PROGRAMS, TESTS,
# noinst_PROGRAMS, EXTRA_DIST and CLEANFILES with `=` first). Plain C, no cmocka: the
# GPU programs must run on a machine without it.
COLL_TEST_CPPFLAGS = -I$(top_srcdir)/libcoll -I$(top_srcdir)/kernels -I$(top_builddir)
# libcoll_internal.la: the tests reach internals (selection, rendezvous, providers).
COLL_TEST_LIBS = $(top_builddir)/libcoll/libcoll_internal.la $(top_builddir)/kernels/libcollkern.la

COLL_CHECKS = test_coll_select test_coll_local test_coll_rdv test_coll_spawn test_coll_kernels \
	test_coll_gpu
check_PROGRAMS += $(COLL_CHECKS)
TESTS += $(COLL_CHECKS)

test_coll_select_SOURCES = test_coll_select.c coll_test.h
test_coll_select_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
test_coll_select_LDADD = $(COLL_TEST_LIBS)
test_coll_local_SOURCES = test_coll_local.c coll_test.h
test_coll_local_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
test_coll_local_LDADD = $(COLL_TEST_LIBS)
test_coll_rdv_SOURCES = test_coll_rdv.c coll_test.h
test_coll_rdv_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
test_coll_rdv_LDADD = $(COLL_TEST_LIBS)
test_coll_spawn_SOURCES = test_coll_spawn.c coll_test.h
test_coll_spawn_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
test_coll_spawn_LDADD = $(COLL_TEST_LIBS)
test_coll_kernels_SOURCES = test_coll_kernels.c coll_test.h
test_coll_kernels_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
test_coll_kernels_LDADD = $(COLL_TEST_LIBS)
# Kernels against their reference on a GPU; exit 77 (skip) without one.
test_coll_gpu_SOURCES = test_coll_gpu.c coll_test.h
test_coll_gpu_CPPFLAGS = $(COLL_TEST_CPPFLAGS) $(CUDA_CFLAGS)
test_coll_gpu_LDADD = $(COLL_TEST_LIBS) $(CUDA_LIBS)
# -no-install: real binaries (no libtool wrapper), so tests/gpu/run-gpu.sh can run them
# on a machine without libtool, with LD_LIBRARY_PATH pointing at the .libs folders.
test_coll_gpu_LDFLAGS = -no-install

if WITH_RING
check_PROGRAMS += test_coll_ring
TESTS += coll_ring.sh
test_coll_ring_SOURCES = test_coll_ring.c coll_test.h
test_coll_ring_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
test_coll_ring_LDADD = $(COLL_TEST_LIBS)
# The one-shot all-reduce between two processes on one GPU (skips without one).
check_PROGRAMS += test_coll_p2p
TESTS += coll_p2p.sh
test_coll_p2p_SOURCES = test_coll_p2p.c coll_test.h
test_coll_p2p_CPPFLAGS = $(COLL_TEST_CPPFLAGS) $(CUDA_CFLAGS)
test_coll_p2p_LDADD = $(COLL_TEST_LIBS) $(CUDA_LIBS)
test_coll_p2p_LDFLAGS = -no-install
endif
EXTRA_DIST += coll_ring.sh coll_p2p.sh gpu/run-gpu.sh gpu/run-multi-gpu.sh

if HAVE_CUDA
# The GPU benchmark and correctness driver that tests/gpu/run-gpu.sh runs.
noinst_PROGRAMS += coll_gpu_bench
coll_gpu_bench_SOURCES = coll_gpu_bench.c
coll_gpu_bench_CPPFLAGS = $(COLL_TEST_CPPFLAGS) $(CUDA_CFLAGS) $(NCCL_CFLAGS)
coll_gpu_bench_LDADD = $(COLL_TEST_LIBS) $(NCCL_LIBS) $(CUDA_LIBS)
coll_gpu_bench_LDFLAGS = -no-install
endif
