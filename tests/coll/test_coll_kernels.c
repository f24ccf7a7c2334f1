/* SPDX-License-Identifier: MIT */
/* The plain-C reference of the reduction kernels: conversions and reductions. */
#include "coll_kernels.h"
#include "../check.h"

#include <math.h>

static void test_half(void)
{
    CHECK(coll_float_to_half(1.0f) == 0x3c00);
    CHECK(coll_float_to_half(-2.0f) == 0xc000);
    CHECK(coll_float_to_half(65504.0f) == 0x7bff);
    CHECK(coll_float_to_half(65520.0f) == 0x7c00); /* rounds up to inf */
    CHECK(coll_float_to_half(65519.0f) == 0x7bff);
    CHECK(coll_float_to_half(ldexpf(1, -24)) == 0x0001);        /* smallest subnormal */
    CHECK(coll_float_to_half(ldexpf(1, -25)) == 0x0000);        /* tie to even: 0 */
    CHECK(coll_float_to_half(ldexpf(3, -25)) == 0x0002);        /* tie to even: 2 */
    CHECK(coll_float_to_half(1.0f + ldexpf(1, -11)) == 0x3c00); /* tie: stays even */
    CHECK(coll_float_to_half(1.0f + ldexpf(3, -11)) == 0x3c02); /* tie: up to even */
    CHECK(coll_float_to_half(INFINITY) == 0x7c00);
    CHECK((coll_float_to_half(NAN) & 0x7c00) == 0x7c00 && (coll_float_to_half(NAN) & 0x3ff));
    CHECK(coll_half_to_float(0x3555) == 0x1.554p-2f);
    CHECK(coll_half_to_float(0x0001) == ldexpf(1, -24));
    /* Every non-NaN half survives the round trip. */
    int bad = 0;
    for (unsigned h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        bad += coll_float_to_half(coll_half_to_float((uint16_t)h)) != h;
    }
    CHECK(bad == 0);
}

static void test_bf16(void)
{
    CHECK(coll_float_to_bf16(1.0f) == 0x3f80);
    CHECK(coll_float_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80); /* tie: even */
    CHECK(coll_float_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82); /* tie: up to even */
    CHECK(coll_float_to_bf16(1.0f + ldexpf(1, -7)) == 0x3f81);
    CHECK(coll_bf16_to_float(0xc040) == -3.0f);
    uint16_t n = coll_float_to_bf16(NAN);
    CHECK((n & 0x7f80) == 0x7f80 && (n & 0x7f));
    int bad = 0;
    for (unsigned b = 0; b < 0x10000; b++) {
        if ((b & 0x7f80) == 0x7f80 && (b & 0x7f)) continue;
        bad += coll_float_to_bf16(coll_bf16_to_float((uint16_t)b)) != b;
    }
    CHECK(bad == 0);
}

static void test_reduce(void)
{
    /* 3 blocks of 4 f32. */
    float src[12] = {1, -2, 3, 0.5f, 10, 20, -30, 4, 100, 0.25f, 7, -8};
    float dst[4];
    coll_kern_reduce_ref(dst, src, 3, 4, COLL_KERN_F32, COLL_KERN_SUM);
    CHECK(dst[0] == 111 && dst[1] == 18.25f && dst[2] == -20 && dst[3] == -3.5f);
    coll_kern_reduce_ref(dst, src, 3, 4, COLL_KERN_F32, COLL_KERN_PROD);
    CHECK(dst[0] == 1000 && dst[1] == -10 && dst[2] == -630 && dst[3] == -16);
    coll_kern_reduce_ref(dst, src, 3, 4, COLL_KERN_F32, COLL_KERN_MIN);
    CHECK(dst[0] == 1 && dst[1] == -2 && dst[2] == -30 && dst[3] == -8);
    coll_kern_reduce_ref(dst, src, 3, 4, COLL_KERN_F32, COLL_KERN_MAX);
    CHECK(dst[0] == 100 && dst[1] == 20 && dst[2] == 7 && dst[3] == 4);
    coll_kern_reduce_ref(dst, src, 3, 4, COLL_KERN_F32, COLL_KERN_AVG);
    CHECK(dst[0] == 37 && dst[2] == -20.0f / 3.0f);
    /* Block order matters in f32: (1e8 + 1) + -1e8 = 0, not 1. */
    float ord[3] = {1e8f, 1, -1e8f};
    coll_kern_reduce_ref(dst, ord, 3, 1, COLL_KERN_F32, COLL_KERN_SUM);
    CHECK(dst[0] == 0.0f);
    /* f16/bf16: widened, summed in f32, rounded once: 2048 + 1 + 1 = 2050 exactly, while
     * rounding after each step would give 2048. */
    uint16_t h[3] = {coll_float_to_half(2048), coll_float_to_half(1), coll_float_to_half(1)};
    uint16_t hd;
    coll_kern_reduce_ref(&hd, h, 3, 1, COLL_KERN_F16, COLL_KERN_SUM);
    CHECK(coll_half_to_float(hd) == 2050.0f);
    uint16_t b[2] = {coll_float_to_bf16(3), coll_float_to_bf16(-7)};
    coll_kern_reduce_ref(&hd, b, 2, 1, COLL_KERN_BF16, COLL_KERN_AVG);
    CHECK(coll_bf16_to_float(hd) == -2.0f);
    coll_kern_reduce_ref(&hd, b, 2, 1, COLL_KERN_BF16, COLL_KERN_MAX);
    CHECK(coll_bf16_to_float(hd) == 3.0f);
    CHECK(coll_kern_supports(COLL_KERN_BF16, COLL_KERN_AVG));
    CHECK(!coll_kern_supports(1 /* f64 */, COLL_KERN_SUM));
    CHECK(!coll_kern_supports(COLL_KERN_F32, 7));
}

/* The one-shot reference over per-rank pointers equals the block reference over the same
 * data laid out contiguously, for every type and op, and keeps rank order. */
static void test_p2p_ref(void)
{
    static const int types[] = {COLL_KERN_F32, COLL_KERN_F16, COLL_KERN_BF16};
    enum { N = 4, COUNT = 37 };
    uint32_t rng = 7;
    for (int ti = 0; ti < 3; ti++)
        for (int op = COLL_KERN_SUM; op <= COLL_KERN_AVG; op++) {
            int t = types[ti];
            size_t es = t == COLL_KERN_F32 ? 4 : 2;
            unsigned char flat[N * COUNT * 4], want[COUNT * 4], got[COUNT * 4];
            for (size_t i = 0; i < (size_t)N * COUNT; i++) {
                rng = rng * 1664525u + 1013904223u;
                float v = (float)((rng >> 8) & 0xffff) / 512.0f - 64.0f;
                if (t == COLL_KERN_F32)
                    ((float *)flat)[i] = v;
                else
                    ((uint16_t *)flat)[i] =
                        t == COLL_KERN_F16 ? coll_float_to_half(v) : coll_float_to_bf16(v);
            }
            const void *rows[N];
            for (int r = 0; r < N; r++)
                rows[r] = flat + (size_t)r * COUNT * es;
            coll_kern_reduce_ref(want, flat, N, COUNT, t, op);
            coll_kern_p2p_reduce_ref(got, rows, N, COUNT, t, op);
            CHECK(memcmp(want, got, COUNT * es) == 0);
        }
    float a = 1e8f, b = 1, c = -1e8f, d;
    const void *ord[3] = {&a, &b, &c};
    coll_kern_p2p_reduce_ref(&d, ord, 3, 1, COLL_KERN_F32, COLL_KERN_SUM);
    CHECK(d == 0.0f); /* (1e8 + 1) + -1e8 in rank order */
    CHECK(coll_p2p_buffer_bytes(1024) == COLL_P2P_DATA_OFF + 2048);
}

int main(void)
{
    test_half();
    test_bf16();
    test_reduce();
    test_p2p_ref();
    TEST_DONE();
}
