/* SPDX-License-Identifier: MIT */
/* common/half.h: the f16/bf16 conversions on every special value (signed zeros,
 * subnormals, the largest finite, overflow, inf, quiet and signalling NaNs, rounding ties
 * both ways), every f16 and bf16 value there and back, the f16 pair's _Float16 path
 * against its bit-level path on every f16 value and on the f32 values on both sides of
 * every rounding boundary, and the users' wrappers (libring, the kernels' reference). */
#include "coll_kernels.h"
#include "../check.h"
#include "common/half.h"
#include "ring.h"

#include <float.h>
#include <math.h>

static int is_nan16(uint16_t h)
{
    return (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu);
}
static int is_nanbf(uint16_t b)
{
    return (b & 0x7f80u) == 0x7f80u && (b & 0x7fu);
}
static float f(uint32_t u)
{
    return rc_bits_f32(u);
}

static void f16_specials(void)
{
    CHECK(rc_f32_to_f16(0.0f) == 0x0000 && rc_f32_to_f16(-0.0f) == 0x8000);
    CHECK(rc_f32_bits(rc_f16_to_f32(0x8000)) == 0x80000000u); /* -0 stays -0 */
    CHECK(rc_f32_to_f16(1.0f) == 0x3c00 && rc_f32_to_f16(-2.0f) == 0xc000);
    CHECK(rc_f32_to_f16(65504.0f) == 0x7bff);  /* largest finite */
    CHECK(rc_f32_to_f16(65519.99f) == 0x7bff); /* below the tie */
    CHECK(rc_f32_to_f16(65520.0f) == 0x7c00);  /* tie: up to inf */
    CHECK(rc_f32_to_f16(1e6f) == 0x7c00 && rc_f32_to_f16(-1e6f) == 0xfc00);
    CHECK(rc_f32_to_f16(INFINITY) == 0x7c00 && rc_f32_to_f16(-INFINITY) == 0xfc00);
    CHECK(rc_f16_to_f32(0x7c00) == INFINITY && rc_f16_to_f32(0xfc00) == -INFINITY);
    CHECK(rc_f32_to_f16(ldexpf(1, -14)) == 0x0400);    /* smallest normal */
    CHECK(rc_f32_to_f16(ldexpf(1023, -24)) == 0x03ff); /* largest subnormal */
    CHECK(rc_f32_to_f16(ldexpf(1, -24)) == 0x0001);    /* smallest subnormal */
    CHECK(rc_f16_to_f32(0x0001) == ldexpf(1, -24) && rc_f16_to_f32(0x83ff) == -ldexpf(1023, -24));
    CHECK(rc_f32_to_f16(ldexpf(1, -25)) == 0x0000);                /* tie: to even 0 */
    CHECK(rc_f32_to_f16(-ldexpf(1, -25)) == 0x8000);               /* ... keeping the sign */
    CHECK(rc_f32_to_f16(nextafterf(ldexpf(1, -25), 1)) == 0x0001); /* above the tie */
    CHECK(rc_f32_to_f16(ldexpf(3, -25)) == 0x0002);                /* tie: up to even 2 */
    CHECK(rc_f32_to_f16(ldexpf(1, -40)) == 0x0000);                /* far below: zero */
    CHECK(rc_f32_to_f16(f(0x00000001u)) == 0x0000);                /* f32 subnormal */
    CHECK(rc_f32_to_f16(1.0f + ldexpf(1, -11)) == 0x3c00);         /* tie: stays even */
    CHECK(rc_f32_to_f16(1.0f + ldexpf(3, -11)) == 0x3c02);         /* tie: up to even */
    CHECK(rc_f32_to_f16(ldexpf(2047, -11 - 14)) == 0x0400);        /* carry: subnormal->normal */
    uint16_t qn = rc_f32_to_f16(NAN), sn = rc_f32_to_f16(f(0x7f800001u)); /* payload below f16's */
    CHECK(is_nan16(qn) && is_nan16(sn) && (sn & 0x200));                  /* never inf; quiet */
    CHECK(rc_f32_to_f16(f(0xffc00000u)) & 0x8000);                        /* -NaN keeps its sign */
    CHECK(isnan(rc_f16_to_f32(0x7c01)) && isnan(rc_f16_to_f32(0xfe00)));
    CHECK(rc_f32_bits(rc_f16_to_f32(0x7c01)) & 0x00400000u); /* signalling gets quiet */
    CHECK(signbit(rc_f16_to_f32(0xfe00)));
}

static void bf16_specials(void)
{
    CHECK(rc_f32_to_bf16(0.0f) == 0x0000 && rc_f32_to_bf16(-0.0f) == 0x8000);
    CHECK(rc_f32_to_bf16(1.0f) == 0x3f80 && rc_bf16_to_f32(0xc040) == -3.0f);
    CHECK(rc_f32_to_bf16(1.0f + ldexpf(1, -8)) == 0x3f80); /* tie: stays even */
    CHECK(rc_f32_to_bf16(1.0f + ldexpf(3, -8)) == 0x3f82); /* tie: up to even */
    CHECK(rc_f32_to_bf16(1.0f + ldexpf(1, -7)) == 0x3f81);
    CHECK(rc_f32_to_bf16(FLT_MAX) == 0x7f80);        /* rounds up to inf */
    CHECK(rc_f32_to_bf16(f(0x7f7f7fffu)) == 0x7f7f); /* largest finite stays */
    CHECK(rc_f32_to_bf16(INFINITY) == 0x7f80 && rc_f32_to_bf16(-INFINITY) == 0xff80);
    CHECK(rc_f32_to_bf16(f(0x00010000u)) == 0x0001); /* subnormal */
    CHECK(rc_f32_to_bf16(f(0x00008000u)) == 0x0000); /* tie: to even 0 */
    CHECK(rc_f32_to_bf16(f(0x00018000u)) == 0x0002); /* tie: up to even 2 */
    CHECK(rc_f32_to_bf16(f(0x007fffffu)) == 0x0080); /* carry: to normal */
    /* NaN with a payload only in the low bits: plain rounding would make it inf. */
    CHECK(is_nanbf(rc_f32_to_bf16(f(0x7f800001u))) && is_nanbf(rc_f32_to_bf16(f(0x7fffffffu))));
    CHECK(is_nanbf(rc_f32_to_bf16(NAN)) && (rc_f32_to_bf16(f(0xffc00000u)) & 0x8000));
    CHECK(isnan(rc_bf16_to_f32(0x7f81)) && (rc_f32_bits(rc_bf16_to_f32(0x7f81)) & 0x00400000u));
}

/* Every value there and back; the _Float16 path against the bit-level one. */
static void exhaustive(void)
{
    int bad16 = 0, badbf = 0, paths = 0;
    for (uint32_t i = 0; i < 0x10000; i++) {
        uint16_t h = (uint16_t)i;
        float x = rc_f16_to_f32(h);
        paths += rc_f32_bits(x) != rc_f32_bits(rc_f16_to_f32_bits(h));
        uint16_t back = rc_f32_to_f16(x);
        bad16 += is_nan16(h) ? !is_nan16(back) || (back & 0x8000) != (h & 0x8000)
                             : back != h || rc_f32_to_f16_bits(x) != h;
        uint16_t bb = rc_f32_to_bf16(rc_bf16_to_f32(h));
        badbf += is_nanbf(h) ? !is_nanbf(bb) || (bb & 0x8000) != (h & 0x8000) : bb != h;
        if (is_nan16(h) || (h & 0x7fff) >= 0x7bff) continue;
        /* Both sides of the rounding boundary between h and its successor (same sign). */
        float mid = (x + rc_f16_to_f32((uint16_t)(h + 1))) / 2; /* exact in f32 */
        float probe[] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY), -mid,
                         nextafterf(-mid, 0)};
        for (unsigned k = 0; k < sizeof probe / sizeof *probe; k++)
            paths += rc_f32_to_f16(probe[k]) != rc_f32_to_f16_bits(probe[k]);
    }
    /* f32 specials and a spread of NaN payloads through both f16 paths. */
    uint32_t odd[] = {0x7f800000u, 0xff800000u, 0x7f800001u, 0x7fc00000u, 0xffffffffu,
                      0x7fa00000u, 0x00000001u, 0x80000001u, 0x387fffffu, 0x33000000u};
    for (unsigned k = 0; k < sizeof odd / sizeof *odd; k++) {
        uint16_t a = rc_f32_to_f16(f(odd[k])), b = rc_f32_to_f16_bits(f(odd[k]));
        paths += is_nan16(a) ? !is_nan16(b) || (a & 0x8000) != (b & 0x8000) : a != b;
    }
    if (bad16 || badbf || paths)
        fprintf(stderr, "round trips: %d f16, %d bf16 wrong; %d f16 path disagreements\n", bad16,
                badbf, paths);
    CHECK(bad16 == 0 && badbf == 0 && paths == 0);
}

/* The public and reference wrappers are the same functions. */
static void wrappers(void)
{
    int bad = 0;
    for (uint32_t i = 0; i < 0x10000; i += 7) {
        uint16_t h = (uint16_t)i;
        float x = ldexpf((float)i, -9) - 40.0f;
        bad += ring_f32_to_f16(x) != rc_f32_to_f16(x) || ring_f32_to_bf16(x) != rc_f32_to_bf16(x);
        bad +=
            coll_float_to_half(x) != rc_f32_to_f16(x) || coll_float_to_bf16(x) != rc_f32_to_bf16(x);
        if (is_nan16(h) || is_nanbf(h)) continue;
        bad += ring_f16_to_f32(h) != rc_f16_to_f32(h) || coll_half_to_float(h) != rc_f16_to_f32(h);
        bad +=
            ring_bf16_to_f32(h) != rc_bf16_to_f32(h) || coll_bf16_to_float(h) != rc_bf16_to_f32(h);
    }
    CHECK(bad == 0);
}

int main(void)
{
    f16_specials();
    bf16_specials();
    exhaustive();
    wrappers();
    if (!test_failures) printf("half: specials, ties and every value there and back: ok\n");
    TEST_DONE();
}
