dnl SPDX-License-Identifier: MIT
# RC_CHECK_CUDA: the CUDA toolkit (headers, libcudart, libcublas, nvcc) and the GPU
# architectures to build for.
#   --with-cuda[=DIR]       yes: required; check (default): used when found under DIR
#                           (/usr/local/cuda); no: off. --with-nccl=yes asks for CUDA too.
#   --with-cuda-arch=LIST   comma-separated compute capabilities, e.g. sm_80,sm_90 or 80,90
#                           (default sm_80,sm_90): machine code for each, plus PTX of the
#                           highest for newer GPUs.
# Sets HAVE_CUDA (define and conditional), CUDA_CFLAGS, CUDA_LIBS, CUDA_DIR, NVCC and
# NVCC_ARCH_FLAGS (the -gencode options for .cu files).
AC_DEFUN([RC_CHECK_CUDA], [
AC_ARG_WITH([cuda],
  [AS_HELP_STRING([--with-cuda@<:@=DIR@:>@], [CUDA toolkit (default: check /usr/local/cuda)])],
  [], [with_cuda=check])
AC_ARG_WITH([cuda-arch],
  [AS_HELP_STRING([--with-cuda-arch=LIST], [GPU architectures, comma-separated (default: sm_80,sm_90, plus PTX)])],
  [], [with_cuda_arch=sm_80,sm_90])
AC_ARG_VAR([NVCC], [the CUDA compiler])

have_cuda=no
cuda_dir=/usr/local/cuda
AS_CASE(["$with_cuda"], [yes|check|no], [], [cuda_dir="$with_cuda"; with_cuda=yes])
dnl NCCL needs CUDA: asking for NCCL asks for CUDA unless CUDA was refused.
AS_IF([test "x$with_nccl" != xno && test "x$with_nccl" != xcheck && test "x$with_cuda" = xcheck], [with_cuda=yes])
AS_IF([test "x$with_cuda" != xno], [
  save_CPPFLAGS="$CPPFLAGS"; save_LIBS="$LIBS"; save_LDFLAGS="$LDFLAGS"
  CPPFLAGS="$CPPFLAGS -I$cuda_dir/include"
  LDFLAGS="$LDFLAGS -L$cuda_dir/lib64"
  AC_CHECK_HEADER([cuda_runtime_api.h],
    [AC_CHECK_LIB([cudart], [cudaGetDeviceCount],
      [AC_CHECK_LIB([cublas], [cublasCreate_v2], [have_cuda=yes])])])
  CPPFLAGS="$save_CPPFLAGS"; LIBS="$save_LIBS"; LDFLAGS="$save_LDFLAGS"
  AC_PATH_PROG([NVCC], [nvcc], [no], [$cuda_dir/bin:$PATH])
  AS_IF([test "x$NVCC" = xno], [have_cuda=no])
  AS_IF([test "x$have_cuda" = xno && test "x$with_cuda" = xyes],
    [AC_MSG_ERROR([--with-cuda: no usable CUDA toolkit in $cuda_dir (need cuda_runtime_api.h, libcudart, libcublas and nvcc)])])
])
NVCC_ARCH_FLAGS=""
rc_cuda_arch_list=""
AS_IF([test "x$have_cuda" = xyes], [
  AC_MSG_CHECKING([the CUDA architectures])
  rc_last=""
  for rc_a in `echo "$with_cuda_arch" | tr ',' ' '`; do
    rc_n=`echo "$rc_a" | sed -e 's/^sm_//' -e 's/^compute_//'`
    AS_IF([expr "x$rc_n" : 'x@<:@1-9@:>@@<:@0-9@:>@@<:@0-9@:>@*a\{0,1\}$' >/dev/null], [],
      [AC_MSG_ERROR([--with-cuda-arch: '$rc_a' is not an architecture like sm_90 or 90])])
    NVCC_ARCH_FLAGS="$NVCC_ARCH_FLAGS -gencode arch=compute_$rc_n,code=sm_$rc_n"
    rc_cuda_arch_list="$rc_cuda_arch_list sm_$rc_n"
    rc_last=$rc_n
  done
  AS_IF([test -z "$rc_last"], [AC_MSG_ERROR([--with-cuda-arch: empty list])])
  NVCC_ARCH_FLAGS="$NVCC_ARCH_FLAGS -gencode arch=compute_$rc_last,code=compute_$rc_last"
  rc_cuda_arch_list="${rc_cuda_arch_list# } + PTX compute_$rc_last"
  AC_MSG_RESULT([$rc_cuda_arch_list])
  AC_DEFINE([HAVE_CUDA], [1], [CUDA toolkit available])
  AC_SUBST([CUDA_CFLAGS], ["-I$cuda_dir/include"])
  AC_SUBST([CUDA_LIBS], ["-L$cuda_dir/lib64 -Wl,-rpath,$cuda_dir/lib64 -lcublas -lcudart"])
  AC_SUBST([CUDA_DIR], ["$cuda_dir"])])
AC_SUBST([NVCC_ARCH_FLAGS])
AM_CONDITIONAL([HAVE_CUDA], [test "x$have_cuda" = xyes])
])
