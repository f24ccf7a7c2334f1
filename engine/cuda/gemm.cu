/* SPDX-License-Identifier: MIT */
/* Batches of 2 and more (prefill) go to cuBLAS (cuda_backend.c); this file holds what feeds
 * it: the f32 activations converted to the weights' stored type. */
#include "cu_common.cuh"

__global__ void convert_kernel(void *out, int dt, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        eng_st(out, dt, i, x[i]);
}

extern "C" int eng_cu_convert(void *out, int dt, const float *x, size_t n, eng_stream st)
{
    int blocks = (int)((n + 255) / 256);
    if (blocks > 4096) blocks = 4096;
    if (blocks < 1) blocks = 1;
    convert_kernel<<<blocks, 256, 0, st>>>(out, dt, x, n);
    return eng_cu_err();
}

/* hi = round(x), lo = round(x - hi): hi + lo carries 16 of x's 24 significant bits (bf16) or
 * 22 (f16), so two products of the 16-bit weights, summed in f32, come close to the f32
 * activations' product. */
__global__ void convert_split_kernel(void *hi, void *lo, int dt, const float *x, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float v = x[i];
        eng_st(hi, dt, i, v);
        eng_st(lo, dt, i, v - eng_ld(hi, dt, i));
    }
}

extern "C" int eng_cu_convert_split(void *hi, void *lo, int dt, const float *x, size_t n,
                                    eng_stream st)
{
    int blocks = (int)((n + 255) / 256);
    if (blocks > 4096) blocks = 4096;
    if (blocks < 1) blocks = 1;
    convert_split_kernel<<<blocks, 256, 0, st>>>(hi, lo, dt, x, n);
    return eng_cu_err();
}
