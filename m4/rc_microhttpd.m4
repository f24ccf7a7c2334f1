dnl SPDX-License-Identifier: MIT
# RC_CHECK_MICROHTTPD: GNU libmicrohttpd for `ringinfer serve`.
#   --with-microhttpd (default check): "check" turns the server off when the library is
#   missing; "yes" makes that an error; "no" skips it.
# Sets MICROHTTPD_CFLAGS / MICROHTTPD_LIBS, defines HAVE_MICROHTTPD and the automake
# conditional HAVE_MICROHTTPD, and leaves have_microhttpd=yes|no for the summary.
# Needs 0.9.71 or newer: enum MHD_Result, MHD_ALLOW_SUSPEND_RESUME, MHD_DAEMON_INFO_BIND_PORT.
AC_DEFUN([RC_CHECK_MICROHTTPD], [
  AC_ARG_WITH([microhttpd],
    [AS_HELP_STRING([--with-microhttpd], [HTTP server for ringinfer serve (default: check)])],
    [], [with_microhttpd=check])
  have_microhttpd=no
  AS_IF([test "x$with_microhttpd" != xno], [
    PKG_CHECK_MODULES([MICROHTTPD], [libmicrohttpd >= 0.9.71], [have_microhttpd=yes],
                      [have_microhttpd=no])
    AS_IF([test "x$have_microhttpd" = xno && test "x$with_microhttpd" = xyes],
      [AC_MSG_ERROR([--with-microhttpd: libmicrohttpd >= 0.9.71 not found (install libmicrohttpd-dev; scripts/install-deps does it)])])])
  AS_IF([test "x$have_microhttpd" = xyes],
    [AC_DEFINE([HAVE_MICROHTTPD], [1], [ringinfer serve is built (libmicrohttpd)])])
  AM_CONDITIONAL([HAVE_MICROHTTPD], [test "x$have_microhttpd" = xyes])
])
