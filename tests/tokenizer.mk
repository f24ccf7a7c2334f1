# Tokenizer tests, for tests/Makefile.am: define check_PROGRAMS and TESTS (possibly empty) first,
# then `include $(srcdir)/tokenizer.mk`. The program builds the tokenizer sources itself (objects
# renamed by the per-program flags), so it does not depend on how the engine library is named.
# It finds ../shared beside the source tree and exits 77 (SKIP) with a message when it is absent.
if HAVE_CMOCKA
check_PROGRAMS += test_eng_tokenizer
TESTS += test_eng_tokenizer
endif
test_eng_tokenizer_SOURCES = test_eng_tokenizer.c \
	../engine/tokenizer/tok_common.c ../engine/tokenizer/tok_merge.c ../engine/tokenizer/tok_unicode.c \
	../engine/tokenizer/tok_pretok.c ../engine/tokenizer/tok_llama2.c ../engine/tokenizer/tok_bpe.c ../engine/tokenizer/tok_hf_load.c
test_eng_tokenizer_CPPFLAGS = -I$(top_srcdir)/engine -I$(top_srcdir)/engine/tokenizer $(CJSON_CFLAGS) $(CMOCKA_CFLAGS) \
	-DSHARED_DIR=\"$(abs_top_srcdir)/../shared\"
test_eng_tokenizer_LDADD = $(CJSON_LIBS) $(CMOCKA_LIBS)
