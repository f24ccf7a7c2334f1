/* SPDX-License-Identifier: MIT */
/* Plain-C references of the reduction kernels and of the one-shot all-reduce's reduce step
 * (see coll_kernels.h for the semantics). */
#include "coll_kernels.h"

#include "common/half.h"

#include <string.h>

/* The conversions are common/half.h's, shared with libring and the engine. */
float coll_half_to_float(uint16_t h)
{
    return rc_f16_to_f32(h);
}
uint16_t coll_float_to_half(float f)
{
    return rc_f32_to_f16(f);
}
float coll_bf16_to_float(uint16_t b)
{
    return rc_bf16_to_f32(b);
}
uint16_t coll_float_to_bf16(float f)
{
    return rc_f32_to_bf16(f);
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

/* Element i of the reduction of n inputs, input k's element at src(k)[i], in input order
 * (the order the kernels use, so results are bitwise comparable). */
static float reduce_at(const void *const *rows, size_t stride, int n, size_t i, int dtype, int op)
{
    float acc = load(rows[0], i, dtype);
    for (int k = 1; k < n; k++) {
        float v = load(rows[stride ? 0 : k], stride * (size_t)k + i, dtype);
        switch (op) {
        case COLL_KERN_SUM:
        case COLL_KERN_AVG:
            acc = acc + v;
            break;
        case COLL_KERN_PROD:
            acc = acc * v;
            break;
        case COLL_KERN_MIN:
            acc = v < acc ? v : acc;
            break;
        case COLL_KERN_MAX:
            acc = acc < v ? v : acc;
            break;
        }
    }
    return op == COLL_KERN_AVG ? acc / (float)n : acc;
}

/* nblocks blocks of count elements, one after the other in src. */
void coll_kern_reduce_ref(void *dst, const void *src, int nblocks, size_t count, int dtype, int op)
{
    const void *rows[1] = {src};
    for (size_t i = 0; i < count; i++)
        store(dst, i, dtype, reduce_at(rows, count, nblocks, i, dtype, op));
}

/* The one-shot all-reduce's reduce step: nranks separate buffers. */
void coll_kern_p2p_reduce_ref(void *dst, const void *const *data, int nranks, size_t count,
                              int dtype, int op)
{
    for (size_t i = 0; i < count; i++)
        store(dst, i, dtype, reduce_at(data, 0, nranks, i, dtype, op));
}

size_t coll_p2p_buffer_bytes(size_t max_bytes)
{
    return COLL_P2P_DATA_OFF + 2 * max_bytes;
}
