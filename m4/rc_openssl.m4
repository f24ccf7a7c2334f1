dnl SPDX-License-Identifier: MIT
# RC_CHECK_OPENSSL: OpenSSL's libcrypto, optional: HMAC-SHA256 authentication of the ring's
# handshakes (without it a configured secret is refused with a clear error).
# Sets CRYPTO_CFLAGS / CRYPTO_LIBS, defines HAVE_CRYPTO, the automake conditional
# HAVE_CRYPTO and have_crypto.
AC_DEFUN([RC_CHECK_OPENSSL], [
  PKG_CHECK_MODULES([CRYPTO], [libcrypto], [have_crypto=yes], [have_crypto=no])
  AS_IF([test "x$have_crypto" = xyes], [AC_DEFINE([HAVE_CRYPTO], [1], [libcrypto for HMAC authentication])])
  AM_CONDITIONAL([HAVE_CRYPTO], [test "x$have_crypto" = xyes])
])
