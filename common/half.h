/* SPDX-License-Identifier: MIT */
/* IEEE binary16 (f16) and bfloat16 (bf16) conversions to and from f32: the one
 * implementation libring, the kernels' reference, the engine and its model generator use.
 * Internal (not installed); header-only so the reduction loops inline and vectorise it.
 *
 * Semantics, tested on every special value in tests/test_half.c:
 *   to f32:   exact (every f16 and bf16 value is an f32 value); NaN stays NaN, quieted,
 *             sign kept.
 *   from f32: round to nearest, ties to even; overflow gives inf; values below half the
 *             smallest subnormal give a signed zero; NaN gives a quiet NaN with the sign
 *             and the top payload bits kept (never inf).
 * The f16 pair uses the compiler's _Float16 where it has one (F16C instructions on x86 in
 * libring's Haswell clones) and the bit-level code otherwise; both are the same function,
 * which the test checks value by value. Thread-safe: pure functions. */
#ifndef RC_HALF_H
#define RC_HALF_H

#include <stdint.h>
#include <string.h>

static inline float rc_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint32_t rc_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

/* ------------------------------------------------------------------ bfloat16 */
static inline float rc_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    if ((u & 0x7fffffffu) > 0x7f800000u) u |= 0x00400000u; /* quiet a signalling NaN */
    return rc_bits_f32(u);
}

static inline uint16_t rc_f32_to_bf16(float f)
{
    uint32_t u = rc_f32_bits(f);
    /* NaN first: rounding could carry a low-payload NaN into inf. */
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u); /* round to nearest even; may carry into inf: right */
    return (uint16_t)(u >> 16);
}

/* ------------------------------------------------------------------ binary16, bit level */
static inline float rc_f16_to_f32_bits(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) /* inf, or NaN quieted */
        return rc_bits_f32(sign | 0x7f800000u | (man ? 0x00400000u | man << 13 : 0));
    if (exp == 0) {
        if (!man) return rc_bits_f32(sign);
        exp = 127 - 15 + 1; /* subnormal: shift the leading one up to the hidden bit */
        while (!(man & 0x400u)) {
            man <<= 1;
            exp--;
        }
        return rc_bits_f32(sign | exp << 23 | (man & 0x3ffu) << 13);
    }
    return rc_bits_f32(sign | (exp + 127 - 15) << 23 | man << 13);
}

static inline uint16_t rc_f32_to_f16_bits(float f)
{
    uint32_t x = rc_f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t man = x & 0x7fffffu;
    int e = (int)((x >> 23) & 0xffu) - 127 + 15;
    if (e == 0xff - 127 + 15) /* inf, or NaN kept NaN */
        return sign | 0x7c00u | (man ? 0x200u | (uint16_t)(man >> 13) : 0);
    if (e >= 0x1f) return sign | 0x7c00u; /* overflow */
    if (e <= 0) {                         /* subnormal f16, or zero */
        if (e < -10) return sign;         /* below half the smallest subnormal */
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (h & 1))) h++;
        return sign | (uint16_t)h;
    }
    uint32_t h = (uint32_t)e << 10 | man >> 13, rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++; /* may carry into inf: right */
    return sign | (uint16_t)h;
}

/* ------------------------------------------------------------------ binary16 */
#if defined(__FLT16_MANT_DIG__) && !defined(RC_HALF_NO_FLOAT16)
static inline float rc_f16_to_f32(uint16_t h)
{
    _Float16 x;
    memcpy(&x, &h, sizeof x);
    return (float)x;
}

static inline uint16_t rc_f32_to_f16(float f)
{
    _Float16 x = (_Float16)f; /* IEEE conversion: round to nearest even */
    uint16_t h;
    memcpy(&h, &x, sizeof h);
    return h;
}
#else
static inline float rc_f16_to_f32(uint16_t h)
{
    return rc_f16_to_f32_bits(h);
}
static inline uint16_t rc_f32_to_f16(float f)
{
    return rc_f32_to_f16_bits(f);
}
#endif

#endif
