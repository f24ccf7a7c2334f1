/* SPDX-License-Identifier: MIT */
/* SwiGLU over the merged gate|up projection: silu(gate + b) * (up + b). */
#include "cu_common.cuh"

__global__ void swiglu_kernel(const float *h, const float *b, float *out, void *out16, int dt16,
                              int F, size_t total)
{
    pdl_launch();
    pdl_wait();
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / F;
        int c = (int)(i - t * F);
        float g = h[t * 2 * F + c], u = h[t * 2 * F + F + c];
        if (b) {
            g += b[c];
            u += b[F + c];
        }
        float o = g / (1.0f + expf(-g)) * u;
        out[i] = o;
        if (out16) eng_st(out16, dt16, i, o);
    }
}

extern "C" int eng_cu_swiglu(const float *h, const float *b, float *out, void *out16, int dt16,
                             int n, int F, eng_stream st)
{
    size_t total = (size_t)n * F;
    int blocks = (int)((total + 255) / 256);
    if (blocks > 4096) blocks = 4096;
    eng_launch(swiglu_kernel, blocks, 256, 0, st, h, b, out, out16, dt16, F, total);
    return eng_cu_err();
}
