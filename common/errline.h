/* SPDX-License-Identifier: MIT */
/* The one-line error every library hands back: printf-formatted into the caller's buffer,
 * which may be NULL or empty. Each library wraps it in its own status-returning
 * function with one argument order, status first: ring_errf, coll_fail, eng_fail.
 * Internal (not installed); header-only. Thread-safe. */
#ifndef RC_ERRLINE_H
#define RC_ERRLINE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

static inline void rc_errline_v(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
}

#endif
