# SPDX-License-Identifier: MIT
# Engine tests; included from tests/Makefile.am after `check_PROGRAMS =` and `TESTS =`.
# Tests that need ../shared (beside the source tree) skip with exit 77 when it is absent.
ENG_TEST_CPPFLAGS = -I$(top_srcdir) -I$(top_srcdir)/engine -DENG_TEST_SHARED='"$(abs_top_srcdir)/../shared"'
ENG_TEST_LDADD = $(top_builddir)/engine/libeng.la -lm $(PTHREAD_LIBS)
ENG_HARNESS = test_eng_harness.c test_eng_harness.h

check_PROGRAMS += test_eng_stories
TESTS += test_eng_stories

test_eng_stories_SOURCES = test_eng_stories.c $(ENG_HARNESS)
test_eng_stories_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
test_eng_stories_LDADD = $(ENG_TEST_LDADD)

check_PROGRAMS += test_eng_hf
TESTS += test_eng_hf
test_eng_hf_SOURCES = test_eng_hf.c $(ENG_HARNESS)
test_eng_hf_CPPFLAGS = $(ENG_TEST_CPPFLAGS) $(CJSON_CFLAGS)
test_eng_hf_LDADD = $(ENG_TEST_LDADD) $(CJSON_LIBS)

# Continuous batching: sequences in a batch get the logits they get alone (bitwise).
check_PROGRAMS += test_eng_batch
TESTS += test_eng_batch
test_eng_batch_SOURCES = test_eng_batch.c $(ENG_HARNESS)
test_eng_batch_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
test_eng_batch_LDADD = $(ENG_TEST_LDADD)

check_PROGRAMS += test_eng_layout test_eng_tp
TESTS += test_eng_layout test_eng_tp
test_eng_layout_SOURCES = test_eng_layout.c
test_eng_layout_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
test_eng_layout_LDADD = $(ENG_TEST_LDADD)
test_eng_tp_SOURCES = test_eng_tp.c $(ENG_HARNESS)
test_eng_tp_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
test_eng_tp_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/engine/libenggen.la

check_PROGRAMS += test_eng_cli
TESTS += test_eng_cli
test_eng_cli_SOURCES = test_eng_cli.c $(ENG_HARNESS)
test_eng_cli_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
test_eng_cli_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/engine/libenggen.la $(CJSON_LIBS)

# Multi-process over the ring (ringrun + ringinfer); skips until both are built.
TESTS += eng_ringrun.sh eng_place.sh
dist_check_SCRIPTS = eng_ringrun.sh eng_place.sh

# Worker threads within a rank: bitwise-identical logits at 1, 2, 3 threads (TP 1 and 2).
check_PROGRAMS += test_eng_threads
TESTS += test_eng_threads
test_eng_threads_SOURCES = test_eng_threads.c $(ENG_HARNESS)
test_eng_threads_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
test_eng_threads_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/engine/libenggen.la

# --device-layers and the automatic split by free memory: pure, every case and error.
check_PROGRAMS += test_eng_devmap
TESTS += test_eng_devmap
test_eng_devmap_SOURCES = test_eng_devmap.c
test_eng_devmap_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
test_eng_devmap_LDADD = $(ENG_TEST_LDADD)

# Layer mapping: segments of the CPU backend bitwise equal to one (CI), --device-layers errors,
# and on a GPU (when one is visible) GPU|GPU and GPU+CPU equal to the whole model on the GPU.
check_PROGRAMS += test_eng_lmap
TESTS += test_eng_lmap
test_eng_lmap_SOURCES = test_eng_lmap.c $(ENG_HARNESS)
test_eng_lmap_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
test_eng_lmap_LDADD = $(ENG_TEST_LDADD)

# The engine's device selection with fake GPU counts, builds and environments.
check_PROGRAMS += test_eng_devsel
TESTS += test_eng_devsel
test_eng_devsel_SOURCES = test_eng_devsel.c
test_eng_devsel_CPPFLAGS = $(ENG_TEST_CPPFLAGS) -I$(top_builddir)
test_eng_devsel_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/libcoll/libcoll.la

# Chat templates: the Jinja language against jinja2's output, errors, limits, the command, and
# (when ../shared is there) the golden renders of fixtures/chat-templates.
check_PROGRAMS += test_eng_template
TESTS += test_eng_template
test_eng_template_SOURCES = test_eng_template.c eng_template_cases.h
test_eng_template_CPPFLAGS = $(ENG_TEST_CPPFLAGS) $(CJSON_CFLAGS)
test_eng_template_LDADD = $(ENG_TEST_LDADD) $(CJSON_LIBS)
EXTRA_DIST += template_cases.py template/basics.txt template/semantics.txt template/whitespace.txt template/unicode.txt template/chat.txt

# The engine on a GPU (skip without one): kernels against their plain-C references, and the
# whole engine against llama2.c, transformers and the CPU backend.
if HAVE_CUDA
check_PROGRAMS += test_cuda_kernels test_eng_cuda
TESTS += test_cuda_kernels test_eng_cuda
test_cuda_kernels_SOURCES = test_cuda_kernels.c
test_cuda_kernels_CPPFLAGS = $(ENG_TEST_CPPFLAGS) $(CUDA_CFLAGS)
test_cuda_kernels_LDADD = $(ENG_TEST_LDADD) $(CUDA_LIBS)
test_eng_cuda_SOURCES = test_eng_cuda.c $(ENG_HARNESS)
test_eng_cuda_CPPFLAGS = $(ENG_TEST_CPPFLAGS) $(CJSON_CFLAGS)
test_eng_cuda_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/engine/libenggen.la $(CJSON_LIBS)
endif
