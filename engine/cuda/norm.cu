/* SPDX-License-Identifier: MIT */
/* RMSNorm fused with the residual add that precedes it: one block per row. Rows of up to
 * NV * 1024 elements stay in registers between the add, the sum of squares and the scaling,
 * with every thread's loads issued before their first use (a decode step runs this on one
 * row, where its latency is all that counts); longer rows take a second pass over x. */
#include "cu_common.cuh"

#define NT 1024
#define NV 8 /* elements a thread keeps in registers */

__global__ void __launch_bounds__(NT)
    add_rmsnorm_kernel(float *x, const float *delta, const float *bias, const float *w, float eps,
                       float *out, void *out16, int dt16, int D)
{
    pdl_launch();
    pdl_wait();
    size_t r = (size_t)blockIdx.x * D;
    float v[NV], ss = 0.0f;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        int i = threadIdx.x + k * NT;
        v[k] = i < D ? x[r + i] : 0.0f;
    }
    if (delta) {
        float dv[NV];
#pragma unroll
        for (int k = 0; k < NV; k++) {
            int i = threadIdx.x + k * NT;
            dv[k] = i < D ? delta[r + i] + (bias ? bias[i] : 0.0f) : 0.0f;
        }
#pragma unroll
        for (int k = 0; k < NV; k++) {
            int i = threadIdx.x + k * NT;
            v[k] += dv[k];
            if (i < D) x[r + i] = v[k];
        }
    }
#pragma unroll
    for (int k = 0; k < NV; k++)
        ss += v[k] * v[k];
    for (int i = threadIdx.x + NV * NT; i < D; i += NT) { /* past the registers */
        float e = x[r + i];
        if (delta) {
            e += delta[r + i] + (bias ? bias[i] : 0.0f);
            x[r + i] = e;
        }
        ss += e * e;
    }
    float wv[NV]; /* loaded before the reduction's wait, and before any store to out */
#pragma unroll
    for (int k = 0; k < NV; k++) {
        int i = threadIdx.x + k * NT;
        wv[k] = i < D ? w[i] : 0.0f;
    }
    ss = block_sum(ss);
    float inv = rsqrtf(ss / (float)D + eps);
#pragma unroll
    for (int k = 0; k < NV; k++) {
        int i = threadIdx.x + k * NT;
        if (i < D) {
            float o = wv[k] * (inv * v[k]);
            out[r + i] = o;
            if (out16) eng_st(out16, dt16, r + i, o);
        }
    }
    for (int i = threadIdx.x + NV * NT; i < D; i += NT) {
        float o = w[i] * (inv * x[r + i]);
        out[r + i] = o;
        if (out16) eng_st(out16, dt16, r + i, o);
    }
}

extern "C" int eng_cu_add_rmsnorm(float *x, const float *delta, const float *bias, const float *w,
                                  float eps, float *out, void *out16, int dt16, int n, int D,
                                  eng_stream st)
{
    eng_launch(add_rmsnorm_kernel, n, NT, 0, st, x, delta, bias, w, eps, out, out16, dt16, D);
    return eng_cu_err();
}

__global__ void mul_kernel(float *out, const float *w, const float *x, int D)
{
    pdl_launch();
    pdl_wait();
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < D) out[i] = w[i] * x[i];
}

extern "C" int eng_cu_mul(float *out, const float *w, const float *x, int D, eng_stream st)
{
    eng_launch(mul_kernel, (D + 255) / 256, 256, 0, st, out, w, x, D);
    return eng_cu_err();
}
