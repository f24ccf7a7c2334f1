/* Plain-C reference of the one-shot all-reduce's reduce step (see coll_kernels.h). */
#include "coll_kernels.h"

size_t coll_p2p_buffer_bytes(size_t max_bytes)
{
    return COLL_P2P_DATA_OFF + 2 * max_bytes;
}

static float load(const void *p, size_t i, int dtype)
{
    if (dtype == COLL_KERN_F32) return ((const float *)p)[i];
    uint16_t v = ((const uint16_t *)p)[i];
    return dtype == COLL_KERN_F16 ? coll_half_to_float(v) : coll_bf16_to_float(v);
}

void coll_kern_p2p_reduce_ref(void *dst, const void *const *data, int nranks, size_t count,
                              int dtype, int op)
{
    for (size_t i = 0; i < count; i++) {
        float acc = load(data[0], i, dtype);
        for (int r = 1; r < nranks; r++) {
            float v = load(data[r], i, dtype);
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
        if (op == COLL_KERN_AVG) acc = acc / (float)nranks;
        if (dtype == COLL_KERN_F32)
            ((float *)dst)[i] = acc;
        else
            ((uint16_t *)dst)[i] =
                dtype == COLL_KERN_F16 ? coll_float_to_half(acc) : coll_float_to_bf16(acc);
    }
}
