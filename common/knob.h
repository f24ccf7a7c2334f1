/* SPDX-License-Identifier: MIT */
/* What the three libraries' knob tables share: parsing a variable's integer value with the
 * one error wording ("NAME: not an integer: 'x'", "NAME: must be in LO..HI, got V"), so a bad
 * value reads the same whichever library refuses it. Each library keeps its own table and is
 * still the only place that reads its variables. Internal (not installed); header-only.
 * Thread-safe: pure functions. */
#ifndef RC_KNOB_H
#define RC_KNOB_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* 0 and *out set, or -1 with the reason in err. */
static inline int rc_knob_long(const char *name, const char *value, long lo, long hi, long *out,
                               char *err, size_t errlen)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno || end == value || *end != '\0') {
        if (err && errlen) snprintf(err, errlen, "%s: not an integer: '%s'", name, value);
        return -1;
    }
    if (v < lo || v > hi) {
        if (err && errlen)
            snprintf(err, errlen, "%s: must be in %ld..%ld, got %ld", name, lo, hi, v);
        return -1;
    }
    *out = v;
    return 0;
}

#endif
