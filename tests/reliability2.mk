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

TESTS += eng_output.sh
EXTRA_DIST += eng_output.sh
