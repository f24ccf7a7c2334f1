dnl SPDX-License-Identifier: MIT
# RC_CHECK_NCCL: the NCCL provider of libcoll. Expand after the CUDA check, which sets
# have_cuda and cuda_dir; configure.ac declares --with-nccl before that check, since
# asking for NCCL asks for CUDA.
#   --with-nccl[=DIR] (default check, in the CUDA toolkit): "check" leaves the provider
#   out when NCCL is missing; "yes" or a DIR make that an error; "no" skips it.
# Sets NCCL_CFLAGS / NCCL_LIBS, defines HAVE_NCCL, the automake conditional HAVE_NCCL and
# have_nccl.
AC_DEFUN([RC_CHECK_NCCL], [
  have_nccl=no
  nccl_dir="$cuda_dir"
  AS_CASE(["$with_nccl"], [yes|check|no], [], [nccl_dir="$with_nccl"; with_nccl=yes])
  AS_IF([test "x$with_nccl" != xno], [
    AS_IF([test "x$have_cuda" = xyes], [
      save_CPPFLAGS="$CPPFLAGS"; save_LIBS="$LIBS"; save_LDFLAGS="$LDFLAGS"
      CPPFLAGS="$CPPFLAGS -I$nccl_dir/include -I$cuda_dir/include"
      LDFLAGS="$LDFLAGS -L$nccl_dir/lib64 -L$nccl_dir/lib -L$cuda_dir/lib64"
      AC_CHECK_HEADER([nccl.h], [AC_CHECK_LIB([nccl], [ncclGetVersion], [have_nccl=yes], [], [-lcudart])])
      CPPFLAGS="$save_CPPFLAGS"; LIBS="$save_LIBS"; LDFLAGS="$save_LDFLAGS"])
    AS_IF([test "x$have_nccl" = xno && test "x$with_nccl" = xyes],
      [AC_MSG_ERROR([--with-nccl: NCCL not usable (need CUDA, nccl.h and libnccl under $nccl_dir)])])
  ])
  AS_IF([test "x$have_nccl" = xyes], [
    AC_DEFINE([HAVE_NCCL], [1], [NCCL provider built])
    AC_SUBST([NCCL_CFLAGS], ["-I$nccl_dir/include"])
    AC_SUBST([NCCL_LIBS], ["-L$nccl_dir/lib64 -Wl,-rpath,$nccl_dir/lib64 -lnccl"])])
  AM_CONDITIONAL([HAVE_NCCL], [test "x$have_nccl" = xyes])
])
