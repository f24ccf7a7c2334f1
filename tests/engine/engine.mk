# SPDX-License-Identifier: MIT
# The engine's tests, included from tests/Makefile.am (after check_PROGRAMS, TESTS and
# EXTRA_DIST are defined). Tests that need ../shared find it with tests/check.h's
# test_shared_dir() (SHARED_DIR from the test environment, else TEST_SHARED_DIR below) and skip
# with exit 77, naming the path, when it is absent.
ENG_TEST_CPPFLAGS = -I$(top_srcdir) -I$(top_srcdir)/engine -DTEST_SHARED_DIR='"$(abs_top_srcdir)/../shared"'
ENG_TEST_LDADD = $(top_builddir)/engine/libeng.la -lm $(PTHREAD_LIBS)
ENG_HARNESS = engine/test_eng_harness.c engine/test_eng_harness.h check.h

check_PROGRAMS += engine/test_eng_stories
TESTS += engine/test_eng_stories

engine_test_eng_stories_SOURCES = engine/test_eng_stories.c $(ENG_HARNESS)
engine_test_eng_stories_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_stories_LDADD = $(ENG_TEST_LDADD)

check_PROGRAMS += engine/test_eng_hf
TESTS += engine/test_eng_hf
engine_test_eng_hf_SOURCES = engine/test_eng_hf.c $(ENG_HARNESS)
engine_test_eng_hf_CPPFLAGS = $(ENG_TEST_CPPFLAGS) $(CJSON_CFLAGS)
engine_test_eng_hf_LDADD = $(ENG_TEST_LDADD) $(CJSON_LIBS)

# The CPU product kernels (each table this CPU runs) against a double-precision sum.
check_PROGRAMS += engine/test_cpu_kernels
TESTS += engine/test_cpu_kernels
engine_test_cpu_kernels_SOURCES = engine/test_cpu_kernels.c check.h
engine_test_cpu_kernels_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_cpu_kernels_LDADD = $(ENG_TEST_LDADD)

# Continuous batching: sequences in a batch get the logits they get alone (bitwise).
check_PROGRAMS += engine/test_eng_batch
TESTS += engine/test_eng_batch
engine_test_eng_batch_SOURCES = engine/test_eng_batch.c $(ENG_HARNESS)
engine_test_eng_batch_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_batch_LDADD = $(ENG_TEST_LDADD)

check_PROGRAMS += engine/test_eng_layout engine/test_eng_tp
TESTS += engine/test_eng_layout engine/test_eng_tp
engine_test_eng_layout_SOURCES = engine/test_eng_layout.c
engine_test_eng_layout_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_layout_LDADD = $(ENG_TEST_LDADD)
engine_test_eng_tp_SOURCES = engine/test_eng_tp.c $(ENG_HARNESS)
engine_test_eng_tp_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_tp_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/engine/libenggen.la

check_PROGRAMS += engine/test_eng_cli
TESTS += engine/test_eng_cli
engine_test_eng_cli_SOURCES = engine/test_eng_cli.c $(ENG_HARNESS)
engine_test_eng_cli_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_cli_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/engine/libenggen.la $(CJSON_LIBS)

# Multi-process over the ring (ringrun + ringinfer); skips until both are built.
TESTS += engine/eng_ringrun.sh engine/eng_place.sh
dist_check_SCRIPTS = engine/eng_ringrun.sh engine/eng_place.sh

# Worker threads within a rank: bitwise-identical logits at 1, 2, 3 threads (TP 1 and 2).
check_PROGRAMS += engine/test_eng_threads
TESTS += engine/test_eng_threads
engine_test_eng_threads_SOURCES = engine/test_eng_threads.c $(ENG_HARNESS)
engine_test_eng_threads_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_threads_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/engine/libenggen.la

# --device-layers and the automatic split by free memory: pure, every case and error.
check_PROGRAMS += engine/test_eng_devmap
TESTS += engine/test_eng_devmap
engine_test_eng_devmap_SOURCES = engine/test_eng_devmap.c
engine_test_eng_devmap_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_devmap_LDADD = $(ENG_TEST_LDADD)

# Layer mapping: segments of the CPU backend bitwise equal to one (CI), --device-layers errors,
# and on a GPU (when one is visible) GPU|GPU and GPU+CPU equal to the whole model on the GPU.
check_PROGRAMS += engine/test_eng_lmap
TESTS += engine/test_eng_lmap
engine_test_eng_lmap_SOURCES = engine/test_eng_lmap.c $(ENG_HARNESS)
engine_test_eng_lmap_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_lmap_LDADD = $(ENG_TEST_LDADD)

# The engine's device selection with fake GPU counts, builds and environments.
check_PROGRAMS += engine/test_eng_devsel
TESTS += engine/test_eng_devsel
engine_test_eng_devsel_SOURCES = engine/test_eng_devsel.c
engine_test_eng_devsel_CPPFLAGS = $(ENG_TEST_CPPFLAGS) -I$(top_builddir)
engine_test_eng_devsel_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/libcoll/libcoll.la

# Chat templates: the Jinja language against jinja2's output, errors, limits, the command, and
# (when ../shared is there) the golden renders of fixtures/chat-templates.
check_PROGRAMS += engine/test_eng_template
TESTS += engine/test_eng_template
engine_test_eng_template_SOURCES = engine/test_eng_template.c engine/eng_template_cases.h
engine_test_eng_template_CPPFLAGS = $(ENG_TEST_CPPFLAGS) $(CJSON_CFLAGS)
engine_test_eng_template_LDADD = $(ENG_TEST_LDADD) $(CJSON_LIBS)
EXTRA_DIST += engine/template_cases.py engine/template/basics.txt engine/template/semantics.txt engine/template/whitespace.txt engine/template/unicode.txt engine/template/chat.txt

# The engine on a GPU (skip without one): kernels against their plain-C references, and the
# whole engine against llama2.c, transformers and the CPU backend.
if HAVE_CUDA
check_PROGRAMS += engine/test_cuda_kernels engine/test_eng_cuda
TESTS += engine/test_cuda_kernels engine/test_eng_cuda
engine_test_cuda_kernels_SOURCES = engine/test_cuda_kernels.c
engine_test_cuda_kernels_CPPFLAGS = $(ENG_TEST_CPPFLAGS) $(CUDA_CFLAGS)
engine_test_cuda_kernels_LDADD = $(ENG_TEST_LDADD) $(CUDA_LIBS)
engine_test_eng_cuda_SOURCES = engine/test_eng_cuda.c $(ENG_HARNESS)
engine_test_eng_cuda_CPPFLAGS = $(ENG_TEST_CPPFLAGS) $(CJSON_CFLAGS)
engine_test_eng_cuda_LDADD = $(ENG_TEST_LDADD) $(top_builddir)/engine/libenggen.la $(CJSON_LIBS)
endif

# The tokenizer (part of the engine library): llama2.c and HF tokenizers against their files.
check_PROGRAMS += engine/test_eng_tokenizer
TESTS += engine/test_eng_tokenizer
engine_test_eng_tokenizer_SOURCES = engine/test_eng_tokenizer.c check.h
engine_test_eng_tokenizer_CPPFLAGS = $(ENG_TEST_CPPFLAGS) -I$(top_srcdir)/engine/tokenizer $(CJSON_CFLAGS)
engine_test_eng_tokenizer_LDADD = $(ENG_TEST_LDADD) $(CJSON_LIBS)

# Reliability round 2 (issue 15): UTF-8 streaming, the sampler, output write errors and model
# files that used to run with exit 0.
check_PROGRAMS += engine/test_eng_utf8
TESTS += engine/test_eng_utf8
engine_test_eng_utf8_SOURCES = engine/test_eng_utf8.c check.h
engine_test_eng_utf8_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_utf8_LDADD = $(ENG_TEST_LDADD)

check_PROGRAMS += engine/test_eng_sampler
TESTS += engine/test_eng_sampler
engine_test_eng_sampler_SOURCES = engine/test_eng_sampler.c check.h
engine_test_eng_sampler_CPPFLAGS = $(ENG_TEST_CPPFLAGS)
engine_test_eng_sampler_LDADD = $(ENG_TEST_LDADD)

TESTS += engine/eng_output.sh engine/eng_model_validation.py
EXTRA_DIST += engine/eng_output.sh engine/eng_model_validation.py

# ringinfer serve (engine/server, docs/SERVER.md): raw HTTP (python3), the ring (ringrun, killed
# rank), the openai npm client (installed into BUILD/tests/serve-node). Each skips (77) without
# libmicrohttpd, ../shared, python3, ringrun or node/npm.
TESTS += engine/serve_http.sh engine/serve_tp.sh engine/serve_openai.sh
EXTRA_DIST += engine/serve_http.sh engine/serve_tp.sh engine/serve_openai.sh engine/serve_common.sh \
	engine/serve_http.py engine/serve_openai.mjs

clean-local: clean-serve-node
clean-serve-node:
	rm -rf serve-node
.PHONY: clean-serve-node
