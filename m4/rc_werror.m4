dnl SPDX-License-Identifier: MIT
# RC_ENABLE_WERROR: --enable-werror turns compiler warnings into errors (scripts/test.sh,
# and so CI, passes it); without it warnings stay warnings. Appends to WARN_CFLAGS.
AC_DEFUN([RC_ENABLE_WERROR], [
  AC_ARG_ENABLE([werror],
    [AS_HELP_STRING([--enable-werror], [treat compiler warnings as errors (on in CI)])],
    [], [enable_werror=no])
  AS_IF([test "x$enable_werror" = xyes], [WARN_CFLAGS="$WARN_CFLAGS -Werror"])
])
