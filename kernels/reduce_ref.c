/* Plain-C reference of the reduction kernels (see coll_kernels.h for the semantics). */
#include "coll_kernels.h"

#include <string.h>

float coll_half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    uint32_t bits;
    if (exp == 0x1f) {
        bits = sign | 0x7f800000u | (man << 13); /* inf or NaN */
    } else if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                man <<= 1;
                e++;
            } while (!(man & 0x400));
            bits = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t coll_float_to_half(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t exp = (x >> 23) & 0xff;
    uint32_t man = x & 0x7fffff;
    if (exp == 0xff) return sign | 0x7c00 | (man ? 0x200 | (uint16_t)(man >> 13) : 0);
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f) return sign | 0x7c00; /* overflow to inf */
    if (e <= 0) {                         /* subnormal half or zero */
        if (e < -10) return sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return sign | (uint16_t)half;
    }
    uint32_t half = (uint32_t)e << 10 | man >> 13;
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into inf: right */
    return sign | (uint16_t)half;
}

float coll_bf16_to_float(uint16_t b)
{
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, sizeof(f));
    return f;
}

uint16_t coll_float_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, sizeof(x));
    if ((x & 0x7f800000u) == 0x7f800000u && (x & 0x7fffff)) return (uint16_t)(x >> 16) | 0x40;
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

int coll_kern_supports(int dtype, int op)
{
    return (dtype == COLL_KERN_F32 || dtype == COLL_KERN_F16 || dtype == COLL_KERN_BF16) &&
           op >= COLL_KERN_SUM && op <= COLL_KERN_AVG;
}

static float load(const void *p, size_t i, int dtype)
{
    if (dtype == COLL_KERN_F32) return ((const float *)p)[i];
    uint16_t v = ((const uint16_t *)p)[i];
    return dtype == COLL_KERN_F16 ? coll_half_to_float(v) : coll_bf16_to_float(v);
}

static void store(void *p, size_t i, int dtype, float v)
{
    if (dtype == COLL_KERN_F32)
        ((float *)p)[i] = v;
    else
        ((uint16_t *)p)[i] = dtype == COLL_KERN_F16 ? coll_float_to_half(v) : coll_float_to_bf16(v);
}

void coll_kern_reduce_ref(void *dst, const void *src, int nblocks, size_t count, int dtype, int op)
{
    for (size_t i = 0; i < count; i++) {
        float acc = load(src, i, dtype);
        for (int b = 1; b < nblocks; b++) {
            float v = load(src, (size_t)b * count + i, dtype);
            switch (op) {
            case COLL_KERN_SUM:
            case COLL_KERN_AVG: acc = acc + v; break;
            case COLL_KERN_PROD: acc = acc * v; break;
            case COLL_KERN_MIN: acc = v < acc ? v : acc; break;
            case COLL_KERN_MAX: acc = acc < v ? v : acc; break;
            }
        }
        if (op == COLL_KERN_AVG) acc = acc / (float)nblocks;
        store(dst, i, dtype, acc);
    }
}
