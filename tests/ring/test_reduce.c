/* SPDX-License-Identifier: MIT */
/* Reductions: every type and op against a scalar reference, aliasing, and the
 * half-precision conversions' rounding (nearest even); the all-gather's copy out of the slots
 * (streamed or not) at every alignment. */
#include <stddef.h>
#include <stdint.h>
#include "../check.h"

#include "reduce.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void test_bf16_rounding(void)
{
    float f;
    uint32_t u;
    u = 0x3F808000u; /* exactly halfway between 0x3F80 and 0x3F81: to even */
    memcpy(&f, &u, 4);
    CHECK(ring_f32_to_bf16(f) == 0x3F80);
    u = 0x3F818000u; /* halfway between 0x3F81 and 0x3F82: to even */
    memcpy(&f, &u, 4);
    CHECK(ring_f32_to_bf16(f) == 0x3F82);
    u = 0x3F808001u; /* just above halfway: up */
    memcpy(&f, &u, 4);
    CHECK(ring_f32_to_bf16(f) == 0x3F81);
    CHECK(isnan(ring_bf16_to_f32(ring_f32_to_bf16(NAN))));
    CHECK(ring_bf16_to_f32(ring_f32_to_bf16(INFINITY)) == INFINITY);
    CHECK(ring_bf16_to_f32(0x3F80) == 1.0f);
}

static void test_f16_rounding(void)
{
    CHECK(ring_f32_to_f16(1.0f) == 0x3C00);
    CHECK(ring_f32_to_f16(-2.0f) == 0xC000);
    CHECK(ring_f32_to_f16(65504.0f) == 0x7BFF);
    CHECK(ring_f32_to_f16(1e6f) == 0x7C00); /* overflow to infinity */
    /* 1 + 2^-11 is halfway between 1 and 1 + 2^-10: to even (1.0). */
    CHECK(ring_f32_to_f16(1.0f + 1.0f / 2048) == 0x3C00);
    /* 1 + 3 * 2^-11 is halfway between 1 + 2^-10 and 1 + 2^-9: to even (1 + 2^-9). */
    CHECK(ring_f32_to_f16(1.0f + 3.0f / 2048) == 0x3C02);
    CHECK(ring_f16_to_f32(0x0001) == ldexpf(1.0f, -24)); /* smallest subnormal */
    for (uint32_t h = 0; h < 0x7C00; h++) /* every finite positive half round-trips */
        CHECK(ring_f32_to_f16(ring_f16_to_f32((uint16_t)h)) == h);
}

/* Scalar reference in double (exact for the small values used). */
static double ref(ring_op op, double a, double b)
{
    switch (op) {
    case RING_SUM:
    case RING_AVG:
        return a + b;
    case RING_PROD:
        return a * b;
    case RING_MIN:
        return a < b ? a : b;
    case RING_MAX:
        return a > b ? a : b;
    default:
        return NAN;
    }
}

static double get(const void *p, size_t i, ring_dtype t)
{
    switch (t) {
    case RING_F32:
        return ((const float *)p)[i];
    case RING_F64:
        return ((const double *)p)[i];
    case RING_F16:
        return ring_f16_to_f32(((const uint16_t *)p)[i]);
    case RING_BF16:
        return ring_bf16_to_f32(((const uint16_t *)p)[i]);
    case RING_I32:
        return ((const int32_t *)p)[i];
    case RING_I64:
        return (double)((const int64_t *)p)[i];
    case RING_U8:
        return ((const uint8_t *)p)[i];
    default:
        return NAN;
    }
}

static void set(void *p, size_t i, ring_dtype t, double v)
{
    switch (t) {
    case RING_F32:
        ((float *)p)[i] = (float)v;
        break;
    case RING_F64:
        ((double *)p)[i] = v;
        break;
    case RING_F16:
        ((uint16_t *)p)[i] = ring_f32_to_f16((float)v);
        break;
    case RING_BF16:
        ((uint16_t *)p)[i] = ring_f32_to_bf16((float)v);
        break;
    case RING_I32:
        ((int32_t *)p)[i] = (int32_t)v;
        break;
    case RING_I64:
        ((int64_t *)p)[i] = (int64_t)v;
        break;
    case RING_U8:
        ((uint8_t *)p)[i] = (uint8_t)v;
        break;
    default:
        break;
    }
}

static void test_all_types_and_ops(void)
{
    enum { N = 1037 }; /* odd: exercises the vector loops' tails */
    unsigned char a[N * 8], b[N * 8], d[N * 8];
    srand(7);
    for (int t = 0; t < RING_DTYPE_COUNT; t++) {
        for (int op = 0; op < RING_OP_COUNT; op++) {
            if (!ring_op_valid_for((ring_op)op, (ring_dtype)t)) continue;
            int lo = t == RING_U8 ? 0 : -8;
            for (size_t i = 0; i < N; i++) {
                set(a, i, (ring_dtype)t, lo + rand() % 16);
                set(b, i, (ring_dtype)t, lo + rand() % 16);
            }
            ring_reduce(d, a, b, N, (ring_dtype)t, (ring_op)op);
            for (size_t i = 0; i < N; i++) {
                double want = ref((ring_op)op, get(a, i, (ring_dtype)t), get(b, i, (ring_dtype)t));
                if (t == RING_U8) want = fmod(want, 256.0);
                if (get(d, i, (ring_dtype)t) != want) {
                    TEST_FAIL_RETURN("%s %s element %zu: %g, want %g",
                                     ring_dtype_name((ring_dtype)t), ring_op_name((ring_op)op), i,
                                     get(d, i, (ring_dtype)t), want);
                }
            }
            /* In place: dst aliases the first operand. */
            memcpy(d, a, sizeof a);
            ring_reduce(d, d, b, N, (ring_dtype)t, (ring_op)op);
            unsigned char e[N * 8];
            ring_reduce(e, a, b, N, (ring_dtype)t, (ring_op)op);
            CHECK(memcmp(d, e, N * ring_dtype_size((ring_dtype)t)) == 0);
        }
    }
}

static void test_integer_overflow_wraps(void)
{
    int32_t a[3] = {INT32_MAX, INT32_MIN, 5}, b[3] = {1, -1, 7}, d[3];
    ring_reduce(d, a, b, 3, RING_I32, RING_SUM);
    CHECK(d[0] == INT32_MIN);
    CHECK(d[1] == INT32_MAX);
    ring_reduce(d, a, b, 3, RING_I32, RING_MIN);
    CHECK(d[1] == INT32_MIN);
    CHECK(d[2] == 5);
}

static void test_scale(void)
{
    float f[5] = {4, 8, -12, 0, 1};
    ring_reduce_scale(f, 5, RING_F32, 4);
    CHECK(f[0] == 1 && f[1] == 2 && f[2] == -3 && f[3] == 0 && f[4] == 0.25f);
    uint16_t h[2] = {ring_f32_to_bf16(6.0f), ring_f32_to_bf16(-2.0f)};
    ring_reduce_scale(h, 2, RING_BF16, 2);
    CHECK(ring_bf16_to_f32(h[0]) == 3.0f && ring_bf16_to_f32(h[1]) == -1.0f);
}

/* Every length around a cache line at every offset of both ends: the streamed body, the
 * plain head and tail, and the bytes either side left alone. */
static void test_copy_out(void)
{
    enum { CAP = 1024 };
    static unsigned char src[CAP], out[CAP + 128], keep[CAP + 128];
    for (size_t i = 0; i < CAP; i++)
        src[i] = (unsigned char)(i * 37 + 11);
    static const size_t lens[] = {0, 1, 15, 63, 64, 65, 127, 128, 200, 640, 1000};
    for (size_t li = 0; li < sizeof lens / sizeof *lens; li++)
        for (size_t oo = 0; oo < 64; oo += 7)
            for (int stream = 0; stream < 2; stream++)
                for (int mode = 0; mode < 3; mode++) { /* keep: NULL, another buffer, src */
                    size_t n = lens[li], so = (oo * 3) % 17;
                    memset(out, 0xEE, sizeof out);
                    memset(keep, 0xEE, sizeof keep);
                    unsigned char *k = mode == 1 ? keep + oo + 5 : NULL;
                    ring_copy_out(out + oo, mode == 2 ? (void *)(src + so) : k, src + so, n,
                                  stream);
                    ring_copy_fence();
                    CHECK_MSG(memcmp(out + oo, src + so, n) == 0, "len %zu at %zu, stream %d", n,
                              oo, stream);
                    CHECK(out[oo + n] == 0xEE && (oo == 0 || out[oo - 1] == 0xEE));
                    if (k) CHECK(memcmp(k, src + so, n) == 0 && k[n] == 0xEE && k[-1] == 0xEE);
                    if (!k) CHECK(keep[oo + 5] == 0xEE);
                }
}

int main(void)
{
    test_bf16_rounding();
    test_f16_rounding();
    test_all_types_and_ops();
    test_integer_overflow_wraps();
    test_scale();
    test_copy_out();
    TEST_DONE();
}
