# SPDX-License-Identifier: MIT
# coll-info: what libcoll would choose here, the layout and every knob with its value.
bin_PROGRAMS += coll-info
coll_info_SOURCES = coll-info.c
coll_info_CPPFLAGS = -I$(top_srcdir)/libcoll
coll_info_LDADD = $(top_builddir)/libcoll/libcoll.la
