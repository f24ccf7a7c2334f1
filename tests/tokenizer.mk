# SPDX-License-Identifier: MIT
# Tokenizer tests, for tests/Makefile.am: define check_PROGRAMS and TESTS (possibly empty) first,
# then `include $(srcdir)/tokenizer.mk`. The program links the engine library (the tokenizer is
# part of it). It finds ../shared beside the source tree and exits 77 (SKIP) with a message when
# it is absent.
if HAVE_CMOCKA
check_PROGRAMS += test_eng_tokenizer
TESTS += test_eng_tokenizer
endif
test_eng_tokenizer_SOURCES = test_eng_tokenizer.c
test_eng_tokenizer_CPPFLAGS = -I$(top_srcdir) -I$(top_srcdir)/engine -I$(top_srcdir)/engine/tokenizer \
	$(CJSON_CFLAGS) $(CMOCKA_CFLAGS) -DSHARED_DIR=\"$(abs_top_srcdir)/../shared\"
test_eng_tokenizer_LDADD = $(top_builddir)/engine/libeng.la $(CJSON_LIBS) $(CMOCKA_LIBS) -lm $(PTHREAD_LIBS)
