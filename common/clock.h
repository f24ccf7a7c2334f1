/* SPDX-License-Identifier: MIT */
/* The monotonic clock in the units each caller wants: deadlines (ms, ns) and timings (s, us).
 * Internal (not installed); header-only. Thread-safe. */
#ifndef RC_CLOCK_H
#define RC_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t rc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int64_t rc_now_ms(void)
{
    return rc_now_ns() / 1000000;
}
static inline double rc_now_us(void)
{
    return (double)rc_now_ns() * 1e-3;
}
static inline double rc_now_s(void)
{
    return (double)rc_now_ns() * 1e-9;
}

#endif
