# SPDX-License-Identifier: MIT
# Reliability round 2 (issue 15), for tests/Makefile.am after check_PROGRAMS, TESTS and
# EXTRA_DIST are defined: `include $(srcdir)/reliability2.mk`.
check_PROGRAMS += test_eng_utf8
TESTS += test_eng_utf8
test_eng_utf8_SOURCES = test_eng_utf8.c
test_eng_utf8_CPPFLAGS = -I$(top_srcdir)/engine
test_eng_utf8_LDADD = $(top_builddir)/engine/libeng.la -lm $(PTHREAD_LIBS)

check_PROGRAMS += test_eng_sampler
TESTS += test_eng_sampler
test_eng_sampler_SOURCES = test_eng_sampler.c
test_eng_sampler_CPPFLAGS = -I$(top_srcdir)/engine
test_eng_sampler_LDADD = $(top_builddir)/engine/libeng.la -lm $(PTHREAD_LIBS)

# Output (UTF-8, write errors) and model files that used to run with exit 0.
TESTS += eng_output.sh eng_model_validation.py
EXTRA_DIST += eng_output.sh eng_model_validation.py

if WITH_RING
# Process groups of ranks, nothing left behind, signals between fork and exec, a reader that
# leaves; FIFOs given as any input file.
TESTS += ringrun_groups.sh fifo_refused.sh ring_abort_start.sh ring_join.py coll_bench_footer.sh \
	knobs_effect.sh
EXTRA_DIST += ringrun_groups.sh fifo_refused.sh ring_abort_start.sh ring_join.py coll_bench_footer.sh \
	knobs_effect.sh
endif
