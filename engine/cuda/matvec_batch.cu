/* SPDX-License-Identifier: MIT */
/* Small-batch matrix-vector product for the decode rows of a batched step (continuous
 * batching): y[i] = W x[i] for up to 16 input rows, the weights read once for all of them,
 * f32 activations, and for every row exactly the arithmetic of the batch-1 kernel
 * (matvec.cu), so that a sequence's decode step gives the same bits alone or in a batch.
 *
 * matvec.cu's order, which this file repeats: the row is cut into 16-byte chunks; with wpr
 * warps per row, chunk c goes to lane c % 32 of sub-warp (c / 32) % wpr, into accumulator
 * (c / (32 wpr)) % 4 of that lane, chunks taken in increasing order; a chunk's dot product is
 * fma(w0, x0, w1 * x1) per pair of elements (f32: a chain of fmas), the pairs added left to
 * right; each lane adds (a0 + a1) + (a2 + a3), the warp sums by butterfly (warp_sum), and the
 * sub-warps' sums are added in order. The arithmetic is written with explicit intrinsics
 * (no contraction left to the compiler), matching the PTX of matvec.cu's kernels.
 *
 * Here a block of 4 warps serves R weight rows: warp k plays accumulator k of every lane,
 * for all R rows and all n input rows at once (R * NB accumulators per thread), so each
 * weight chunk is loaded once and each x chunk once per R rows. The partial sums go through
 * shared memory to be combined in matvec.cu's order. */
#include "cu_common.cuh"

#define MB_R 4    /* weight rows per block */
#define MB_MAX 16 /* input rows per launch */
#define MB_THREADS 128

template <int DT> struct mb_traits;
template <> struct mb_traits<ENG_DT_BF16> {
    enum { EPV = 8 };
};
template <> struct mb_traits<ENG_DT_F16> {
    enum { EPV = 8 };
};
template <> struct mb_traits<ENG_DT_F32> {
    enum { EPV = 4 };
};

/* One pair of 16-bit weights (lo, hi) against x0, x1: fma(lo, x0, hi * x1). */
__device__ __forceinline__ float mb_pair(float lo, float hi, float x0, float x1)
{
    return __fmaf_rn(lo, x0, __fmul_rn(hi, x1));
}

template <int DT> __device__ __forceinline__ float mb_dot(uint4 w, const float *x);

template <> __device__ __forceinline__ float mb_dot<ENG_DT_BF16>(uint4 w, const float *x)
{
    float4 a = __ldg((const float4 *)x), b = __ldg((const float4 *)x + 1);
#define BF(u, x0, x1) mb_pair(__uint_as_float((u) << 16), __uint_as_float((u)&0xffff0000u), x0, x1)
    float d = __fadd_rn(BF(w.x, a.x, a.y), BF(w.y, a.z, a.w));
    d = __fadd_rn(d, BF(w.z, b.x, b.y));
    return __fadd_rn(d, BF(w.w, b.z, b.w));
#undef BF
}

__device__ __forceinline__ float mb_h2(unsigned u, float x0, float x1)
{
    __half2 h = *reinterpret_cast<__half2 *>(&u);
    float2 f = __half22float2(h);
    return mb_pair(f.x, f.y, x0, x1);
}

template <> __device__ __forceinline__ float mb_dot<ENG_DT_F16>(uint4 w, const float *x)
{
    float4 a = __ldg((const float4 *)x), b = __ldg((const float4 *)x + 1);
    float d = __fadd_rn(mb_h2(w.x, a.x, a.y), mb_h2(w.y, a.z, a.w));
    d = __fadd_rn(d, mb_h2(w.z, b.x, b.y));
    return __fadd_rn(d, mb_h2(w.w, b.z, b.w));
}

template <> __device__ __forceinline__ float mb_dot<ENG_DT_F32>(uint4 w, const float *x)
{
    float4 a = __ldg((const float4 *)x);
    float d = __fmaf_rn(__uint_as_float(w.x), a.x, __fmul_rn(__uint_as_float(w.y), a.y));
    d = __fmaf_rn(__uint_as_float(w.z), a.z, d);
    return __fmaf_rn(__uint_as_float(w.w), a.w, d);
}

/* grid: ceil(rows / MB_R) blocks of MB_THREADS. y [n, rows], x [n, d], n <= NB. */
template <int DT, int NB>
__global__ void __launch_bounds__(MB_THREADS)
    matvec_batch_kernel(float *y, const void *w, const float *x, int rows, int d, int n, int wpr)
{
    const int EPV = mb_traits<DT>::EPV;
    __shared__ float part[MB_R * NB][4][32]; /* [row pair][accumulator][lane] */
    __shared__ float res[MB_R * NB];
    int k = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int row0 = blockIdx.x * MB_R, nv = d / EPV;
    const uint4 *wr[MB_R];
#pragma unroll
    for (int r = 0; r < MB_R; r++)
        wr[r] = (const uint4 *)w + (size_t)(row0 + r < rows ? row0 + r : 0) * nv;
    pdl_launch();
    pdl_wait();
    for (int s = 0; s < wpr; s++) {
        float acc[MB_R][NB];
#pragma unroll
        for (int r = 0; r < MB_R; r++)
#pragma unroll
            for (int i = 0; i < NB; i++)
                acc[r][i] = 0.0f;
        int step = 128 * wpr;
        for (int c = lane + 32 * s + 32 * wpr * k; c < nv; c += step) {
            uint4 wv[MB_R];
#pragma unroll
            for (int r = 0; r < MB_R; r++)
                wv[r] = __ldcs(wr[r] + c);
#pragma unroll
            for (int i = 0; i < NB; i++) {
                if (i >= n) break;
                const float *xi = x + (size_t)i * d + (size_t)c * EPV;
#pragma unroll
                for (int r = 0; r < MB_R; r++)
                    acc[r][i] = __fadd_rn(acc[r][i], mb_dot<DT>(wv[r], xi));
            }
        }
#pragma unroll
        for (int r = 0; r < MB_R; r++)
#pragma unroll
            for (int i = 0; i < NB; i++)
                part[r * NB + i][k][lane] = acc[r][i];
        __syncthreads();
        for (int p = k; p < MB_R * NB; p += 4) {
            if (p % NB >= n) continue;
            float v = __fadd_rn(__fadd_rn(part[p][0][lane], part[p][1][lane]),
                                __fadd_rn(part[p][2][lane], part[p][3][lane]));
            v = warp_sum(v);
            if (lane == 0) res[p] = s == 0 ? v : __fadd_rn(res[p], v);
        }
        __syncthreads();
    }
    for (int p = threadIdx.x; p < MB_R * NB; p += MB_THREADS) {
        int r = p / NB, i = p % NB;
        if (i < n && row0 + r < rows) y[(size_t)i * rows + row0 + r] = res[p];
    }
}

template <int DT>
static void mb_launch(float *y, const void *w, const float *x, int rows, int d, int n, int wpr,
                      eng_stream st)
{
    int blocks = (rows + MB_R - 1) / MB_R;
    if (n <= 4)
        eng_launch(matvec_batch_kernel<DT, 4>, blocks, MB_THREADS, 0, st, y, w, x, rows, d, n, wpr);
    else if (n <= 8)
        eng_launch(matvec_batch_kernel<DT, 8>, blocks, MB_THREADS, 0, st, y, w, x, rows, d, n, wpr);
    else
        eng_launch(matvec_batch_kernel<DT, 16>, blocks, MB_THREADS, 0, st, y, w, x, rows, d, n,
                   wpr);
}

extern "C" int eng_cu_matvec_batch(float *y, const void *w, int dt, const float *x, int rows, int d,
                                   int n, eng_stream st)
{
    int es = dt == ENG_DT_F32 ? 4 : 2, aligned = eng_mv_vec_ok(w, es, x, d);
    for (int i0 = 0; i0 < n; i0 += MB_MAX) {
        int m = n - i0 < MB_MAX ? n - i0 : MB_MAX;
        float *yg = y + (size_t)i0 * rows;
        const float *xg = x + (size_t)i0 * d;
        if (m == 1 || !aligned) { /* one row, or the scalar path: the batch-1 kernel per row */
            for (int i = 0; i < m; i++) {
                int e =
                    eng_cu_matvec(yg + (size_t)i * rows, w, dt, xg + (size_t)i * d, rows, d, st);
                if (e) return e;
            }
            continue;
        }
        /* matvec.cu's choice of warps per row (it sets the summation order) */
        int wpr = eng_mv_wpr(rows, d, es);
        if (dt == ENG_DT_BF16)
            mb_launch<ENG_DT_BF16>(yg, w, xg, rows, d, m, wpr, st);
        else if (dt == ENG_DT_F16)
            mb_launch<ENG_DT_F16>(yg, w, xg, rows, d, m, wpr, st);
        else
            mb_launch<ENG_DT_F32>(yg, w, xg, rows, d, m, wpr, st);
        int e = eng_cu_err();
        if (e) return e;
    }
    return 0;
}
