dnl SPDX-License-Identifier: MIT
# RC_CHECK_VERBS: libibverbs for the ring's RDMA transport.
#   --with-verbs (default check): "check" leaves the transport out when the library is
#   missing; "yes" makes that an error; "no" skips it.
# Sets VERBS_CFLAGS / VERBS_LIBS, defines HAVE_VERBS, the automake conditional HAVE_VERBS
# and have_verbs.
AC_DEFUN([RC_CHECK_VERBS], [
  AC_ARG_WITH([verbs],
    [AS_HELP_STRING([--with-verbs], [RDMA verbs transport for the ring (default: check)])],
    [], [with_verbs=check])
  have_verbs=no
  AS_IF([test "x$with_verbs" != xno], [
    PKG_CHECK_MODULES([VERBS], [libibverbs], [have_verbs=yes], [have_verbs=no])
    AS_IF([test "x$have_verbs" = xno && test "x$with_verbs" = xyes],
      [AC_MSG_ERROR([--with-verbs: libibverbs not found (install libibverbs-dev)])])])
  AS_IF([test "x$have_verbs" = xyes], [AC_DEFINE([HAVE_VERBS], [1], [RDMA verbs transport built])])
  AM_CONDITIONAL([HAVE_VERBS], [test "x$have_verbs" = xyes])
])
