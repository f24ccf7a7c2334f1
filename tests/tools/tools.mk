# SPDX-License-Identifier: MIT
# The tools' tests (ringrun, coll-bench) and the tree's own checks (exports, style, the README's
# environment table), included from tests/Makefile.am after check_PROGRAMS, TESTS and EXTRA_DIST.

# The shared libraries export their public headers' API and nothing else.
TESTS += tools/exports.sh
# Every C/CUDA file formatted with .clang-format, every source file with its SPDX line.
TESTS += tools/style.sh
EXTRA_DIST += tools/exports.sh tools/style.sh tools/readme_env.sh

if WITH_RING
TESTS += tools/ringrun_behaviour.sh tools/coll_bench_smoke.sh
EXTRA_DIST += tools/ringrun_behaviour.sh tools/coll_bench_smoke.sh
# Process groups of ranks, nothing left behind, signals between fork and exec, a reader that
# leaves; FIFOs given as any input file; --print-config shows the values in effect.
TESTS += tools/ringrun_groups.sh tools/fifo_refused.sh tools/coll_bench_footer.sh \
	tools/knobs_effect.sh
EXTRA_DIST += tools/ringrun_groups.sh tools/fifo_refused.sh tools/coll_bench_footer.sh \
	tools/knobs_effect.sh

# The README's environment table, generated from the knob tables (issue 14).
check_PROGRAMS += tools/env_table
tools_env_table_SOURCES = tools/env_table.c
tools_env_table_CPPFLAGS = $(AM_CPPFLAGS) -I$(top_srcdir)/engine -I$(top_srcdir)/libcoll
tools_env_table_LDADD = $(top_builddir)/libring/libring.la $(top_builddir)/libcoll/libcoll.la \
	$(ENG_TEST_LDADD)
TESTS += tools/readme_env.sh
endif
