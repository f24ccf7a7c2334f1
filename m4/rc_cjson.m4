dnl SPDX-License-Identifier: MIT
# RC_CHECK_CJSON: cJSON, required (RING_CONFIG files, the engine's model metadata).
# Sets CJSON_CFLAGS / CJSON_LIBS through pkg-config libcjson.
AC_DEFUN([RC_CHECK_CJSON], [
  PKG_CHECK_MODULES([CJSON], [libcjson], [],
    [AC_MSG_ERROR([cJSON not found: install libcjson-dev (scripts/install-deps does it)])])
])
