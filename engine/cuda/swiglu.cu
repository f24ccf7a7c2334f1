/* SPDX-License-Identifier: MIT */
/* SwiGLU over the merged gate|up projection: silu(gate + b) * (up + b). */
#include "cu_common.cuh"

/* grid (x over the row's elements, y over rows), so no thread divides a 64-bit index: the
 * 2048-row prompt of an 8B model spent a third of this kernel's time on that division.
 * VEC: four elements a thread with 16-byte loads (F % 4 == 0). h [n, 2F], out [n, F]. */
template <int VEC>
__global__ void swiglu_kernel(const float *h, const float *b, float *out, void *out16, int dt16,
                              int F, int n)
{
    pdl_launch();
    pdl_wait();
    int per = VEC ? 4 : 1, cols = F / per;
    for (int t = blockIdx.y; t < n; t += gridDim.y) {
        const float *hg = h + (size_t)t * 2 * F, *hu = hg + F;
        for (int q = blockIdx.x * blockDim.x + threadIdx.x; q < cols; q += gridDim.x * blockDim.x) {
            float g[4], u[4];
            if (VEC) {
                float4 a = *(const float4 *)(hg + 4 * q), c = *(const float4 *)(hu + 4 * q);
                g[0] = a.x, g[1] = a.y, g[2] = a.z, g[3] = a.w;
                u[0] = c.x, u[1] = c.y, u[2] = c.z, u[3] = c.w;
            } else {
                g[0] = hg[q], u[0] = hu[q];
            }
            float o[4];
#pragma unroll
            for (int e = 0; e < per; e++) {
                int c = q * per + e;
                if (b) {
                    g[e] += b[c];
                    u[e] += b[F + c];
                }
                o[e] = g[e] / (1.0f + expf(-g[e])) * u[e];
            }
            size_t i = (size_t)t * F + (size_t)q * per;
            if (VEC)
                *(float4 *)(out + i) = make_float4(o[0], o[1], o[2], o[3]);
            else
                out[i] = o[0];
            if (out16)
#pragma unroll
                for (int e = 0; e < per; e++)
                    eng_st(out16, dt16, i + e, o[e]);
        }
    }
}

extern "C" int eng_cu_swiglu(const float *h, const float *b, float *out, void *out16, int dt16,
                             int n, int F, eng_stream st)
{
    int vec = F % 4 == 0 && (uintptr_t)h % 16 == 0 && (uintptr_t)out % 16 == 0;
    int cols = vec ? F / 4 : F, bx = (cols + 255) / 256;
    dim3 grid(bx > 1024 ? 1024 : bx, n < 65535 ? n : 65535);
    if (n <= 0) return 0;
    if (vec)
        eng_launch(swiglu_kernel<1>, grid, 256, 0, st, h, b, out, out16, dt16, F, n);
    else
        eng_launch(swiglu_kernel<0>, grid, 256, 0, st, h, b, out, out16, dt16, F, n);
    return eng_cu_err();
}
