# SPDX-License-Identifier: MIT
# libcoll's tests, included from tests/Makefile.am (after check_PROGRAMS, TESTS, noinst_PROGRAMS
# and EXTRA_DIST are defined). Plain C with tests/check.h, no cmocka: the GPU programs must run
# on a machine without it.
COLL_TEST_CPPFLAGS = -I$(top_srcdir)/libcoll -I$(top_srcdir)/kernels -I$(top_builddir)
# libcoll_internal.la: the tests reach internals (selection, rendezvous, providers).
COLL_TEST_LIBS = $(top_builddir)/libcoll/libcoll_internal.la $(top_builddir)/kernels/libcollkern.la

COLL_CHECKS = coll/test_coll_select coll/test_coll_local coll/test_coll_rdv coll/test_coll_spawn \
	coll/test_coll_kernels coll/test_coll_gpu
check_PROGRAMS += $(COLL_CHECKS)
TESTS += $(COLL_CHECKS)

coll_test_coll_select_SOURCES = coll/test_coll_select.c check.h
coll_test_coll_select_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
coll_test_coll_select_LDADD = $(COLL_TEST_LIBS)
coll_test_coll_local_SOURCES = coll/test_coll_local.c check.h
coll_test_coll_local_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
coll_test_coll_local_LDADD = $(COLL_TEST_LIBS)
coll_test_coll_rdv_SOURCES = coll/test_coll_rdv.c check.h
coll_test_coll_rdv_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
coll_test_coll_rdv_LDADD = $(COLL_TEST_LIBS)
coll_test_coll_spawn_SOURCES = coll/test_coll_spawn.c check.h
coll_test_coll_spawn_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
coll_test_coll_spawn_LDADD = $(COLL_TEST_LIBS)
coll_test_coll_kernels_SOURCES = coll/test_coll_kernels.c check.h
coll_test_coll_kernels_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
coll_test_coll_kernels_LDADD = $(COLL_TEST_LIBS)
# Kernels against their reference on a GPU; exit 77 (skip) without one.
coll_test_coll_gpu_SOURCES = coll/test_coll_gpu.c check.h
coll_test_coll_gpu_CPPFLAGS = $(COLL_TEST_CPPFLAGS) $(CUDA_CFLAGS)
coll_test_coll_gpu_LDADD = $(COLL_TEST_LIBS) $(CUDA_LIBS)
# -no-install: real binaries (no libtool wrapper), so tests/gpu/run-gpu.sh can run them
# on a machine without libtool, with LD_LIBRARY_PATH pointing at the .libs folders.
coll_test_coll_gpu_LDFLAGS = -no-install

if WITH_RING
check_PROGRAMS += coll/test_coll_ring
TESTS += coll/coll_ring.sh
coll_test_coll_ring_SOURCES = coll/test_coll_ring.c check.h
coll_test_coll_ring_CPPFLAGS = $(COLL_TEST_CPPFLAGS)
coll_test_coll_ring_LDADD = $(COLL_TEST_LIBS)
# The one-shot all-reduce between two processes on one GPU (skips without one).
check_PROGRAMS += coll/test_coll_p2p
TESTS += coll/coll_p2p.sh
coll_test_coll_p2p_SOURCES = coll/test_coll_p2p.c check.h
coll_test_coll_p2p_CPPFLAGS = $(COLL_TEST_CPPFLAGS) $(CUDA_CFLAGS)
coll_test_coll_p2p_LDADD = $(COLL_TEST_LIBS) $(CUDA_LIBS)
coll_test_coll_p2p_LDFLAGS = -no-install
endif
EXTRA_DIST += coll/coll_ring.sh coll/coll_p2p.sh

if HAVE_CUDA
if HAVE_NCCL
# The GPU benchmark and correctness driver that tests/gpu/run-gpu.sh runs (raw NCCL beside
# libcoll, so only where NCCL is built in: `--with-cuda --without-nccl` must still build).
noinst_PROGRAMS += coll/coll_gpu_bench
coll_coll_gpu_bench_SOURCES = coll/coll_gpu_bench.c
coll_coll_gpu_bench_CPPFLAGS = $(COLL_TEST_CPPFLAGS) $(CUDA_CFLAGS) $(NCCL_CFLAGS)
coll_coll_gpu_bench_LDADD = $(COLL_TEST_LIBS) $(NCCL_LIBS) $(CUDA_LIBS)
coll_coll_gpu_bench_LDFLAGS = -no-install
endif
endif
