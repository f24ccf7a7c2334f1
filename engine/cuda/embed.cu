/* SPDX-License-Identifier: MIT */
/* Embedding gather: one block per token, the row converted to f32. */
#include "cu_common.cuh"

__global__ void embed_kernel(float *x, const void *table, int dt, const int *tokens, int D)
{
    int t = blockIdx.x;
    size_t row = (size_t)tokens[t] * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        x[(size_t)t * D + i] = eng_ld(table, dt, row + i);
}

extern "C" int eng_cu_embed(float *x, const void *table, int dt, const int *tokens, int n, int D,
                            eng_stream st)
{
    embed_kernel<<<n, 256, 0, st>>>(x, table, dt, tokens, D);
    return eng_cu_err();
}
