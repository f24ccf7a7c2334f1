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
#include <string.h>

static inline void rc_errline_v(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (err && errlen) vsnprintf(err, errlen, fmt, ap);
}

/* Control bytes in err escaped as \xNN ('?' where the buffer has no room): text quoted from a
 * file (a tensor name, a regex, a token) may hold a newline, and the message must stay one
 * line. */
static inline void rc_errline_escape(char *err, size_t errlen)
{
    static const char hex[] = "0123456789abcdef";
    if (!err || !errlen) return;
    size_t n = strnlen(err, errlen - 1);
    err[n] = '\0';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)err[i];
        if (c >= 0x20 && c != 0x7f) continue;
        if (n + 3 >= errlen) {
            err[i] = '?';
            continue;
        }
        memmove(err + i + 4, err + i + 1, n - i); /* the rest and its NUL */
        err[i] = '\\';
        err[i + 1] = 'x';
        err[i + 2] = hex[c >> 4];
        err[i + 3] = hex[c & 15];
        n += 3;
        i += 3;
    }
}

#endif
