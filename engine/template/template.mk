# SPDX-License-Identifier: MIT
# Chat-template renderer (the Jinja language), for engine/Makefile.am:
# `include $(srcdir)/template/template.mk`, then add $(TEMPLATE_SOURCES) to the engine library.
TEMPLATE_SOURCES = template/jinja.h template/jt.h template/template.c template/lexer.c \
	template/parser.c template/value.c template/json.c template/eval.c template/filters.c \
	template/tests.c template/methods.c template/unicase.c template/cli.c
