/* RMSNorm fused with the residual add that precedes it: one block per row; the row stays
 * in registers/L1 between the add, the sum of squares and the scaling. */
#include "cu_common.cuh"

__global__ void add_rmsnorm_kernel(float *x, const float *delta, const float *bias, const float *w,
                                   float eps, float *out, void *out16, int dt16, int D)
{
    pdl_wait();
    pdl_launch();
    size_t r = (size_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = x[r + i];
        if (delta) {
            v += delta[r + i] + (bias ? bias[i] : 0.0f);
            x[r + i] = v;
        }
        ss += v * v;
    }
    ss = block_sum(ss);
    float inv = rsqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float o = w[i] * (inv * x[r + i]);
        out[r + i] = o;
        if (out16) eng_st(out16, dt16, r + i, o);
    }
}

extern "C" int eng_cu_add_rmsnorm(float *x, const float *delta, const float *bias, const float *w,
                                  float eps, float *out, void *out16, int dt16, int n, int D,
                                  eng_stream st)
{
    eng_launch(add_rmsnorm_kernel, n, 1024, 0, st, x, delta, bias, w, eps, out, out16, dt16, D);
    return eng_cu_err();
}
