# SPDX-License-Identifier: MIT
# Verbs transport tests, for tests/Makefile.am (after check_PROGRAMS, TESTS and EXTRA_DIST):
#   ring-loop         all-reduce in a loop until a call fails (kill tests, any transport)
#   test_verbs_select transport selection and its errors without a usable device (cmocka)
#   verbs_rxe.sh      the verbs checks on Soft-RoCE in a QEMU guest; SKIP (77) if it cannot boot
if WITH_RING
check_PROGRAMS += ring-loop
ring_loop_SOURCES = ring-loop.c
ring_loop_LDADD = $(top_builddir)/libring/libring.la

TESTS += verbs_rxe.sh
EXTRA_DIST += verbs_rxe.sh verbs/rxe-vm.sh verbs/vm-checks.sh verbs/kill-test.sh

if HAVE_CMOCKA
check_PROGRAMS += test_verbs_select
TESTS += test_verbs_select
test_verbs_select_SOURCES = test_verbs_select.c
test_verbs_select_CFLAGS = $(AM_CFLAGS) $(CMOCKA_CFLAGS) $(VERBS_CFLAGS)
test_verbs_select_LDADD = $(top_builddir)/libring/libring_internal.la $(CMOCKA_LIBS) $(VERBS_LIBS)
endif
endif
