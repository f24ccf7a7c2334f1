dnl SPDX-License-Identifier: MIT
# RC_CHECK_CMOCKA: cmocka, optional (the unit tests written with it are left out without it).
# Sets CMOCKA_CFLAGS / CMOCKA_LIBS, the automake conditional HAVE_CMOCKA and have_cmocka.
AC_DEFUN([RC_CHECK_CMOCKA], [
  PKG_CHECK_MODULES([CMOCKA], [cmocka], [have_cmocka=yes], [have_cmocka=no])
  AM_CONDITIONAL([HAVE_CMOCKA], [test "x$have_cmocka" = xyes])
])
