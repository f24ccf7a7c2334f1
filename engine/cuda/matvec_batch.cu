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
 * eng_cu_matvec_batch_fused does the same for matvec.cu's fused products (matvec_fused): the
 * same dot products, then each row's epilogue (input norm's scale, SwiGLU, residual add and
 * partial sums of squares) with that kernel's rounding, so a decode row of a batched step
 * gets the bits of the fused batch-1 step; a group of one row runs matvec_fused itself.
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

/* The launch's arguments (eng_mvb_args flattened). The block's weight rows: PLAIN, RESID
 * rows b*G + k (G = MB_R, or 8 for a residual product whose partial sums span 8 rows: two
 * sets of MB_R); SWIGLU the pairs p = 2b, 2b + 1 as rows p, F + p (gate, up). */
typedef struct mb_args {
    float *out, *res, *ssq_out;
    const void *w;
    const float *x, *scale, *bias, *nw_out;
    int rows, d, n, wpr, per, ss_stride;
} mb_args;

/* grid: PLAIN ceil(rows / MB_R), SWIGLU ceil(rows / 2 / 2), RESID ceil(rows / G) blocks of
 * MB_THREADS. out [n, rows] (SWIGLU [n, rows / 2]), x [n, d], n <= NB. */
template <int DT, int NB, int MODE>
__global__ void __launch_bounds__(MB_THREADS) matvec_batch_kernel(mb_args a)
{
    const int EPV = mb_traits<DT>::EPV;
    const int SETS = MODE == ENG_MV_RESID ? 2 : 1;
    __shared__ float part[MB_R * NB][4][32]; /* [row pair][accumulator][lane] */
    __shared__ float res[SETS * MB_R * NB];  /* [row of the block][input row]: the dot products */
    int k = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int rows = a.rows, d = a.d, n = a.n, wpr = a.wpr, nv = d / EPV, F = rows / 2;
    int G = MODE == ENG_MV_RESID && a.per > MB_R ? 2 * MB_R : MB_R, sets = G / MB_R;
    const uint4 *wr[MB_R];
    pdl_launch();
    pdl_wait();
    for (int set = 0; set < sets; set++) {
#pragma unroll
        for (int r = 0; r < MB_R; r++) {
            int row, ok;
            if (MODE == ENG_MV_SWIGLU) {
                int p = blockIdx.x * 2 + r / 2;
                ok = p < F;
                row = (r & 1) ? F + p : p;
            } else {
                row = blockIdx.x * G + set * MB_R + r;
                ok = row < rows;
            }
            wr[r] = (const uint4 *)a.w + (size_t)(ok ? row : 0) * nv;
        }
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
                    const float *xi = a.x + (size_t)i * d + (size_t)c * EPV;
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
                float *o = &res[set * MB_R * NB + p];
                if (lane == 0) *o = s == 0 ? v : __fadd_rn(*o, v);
            }
            __syncthreads();
        }
    }
    /* The epilogues, each with exactly matvec_fused's arithmetic for its row (matvec.cu):
     * the scale is that kernel's (mb_scale_kernel below), applied by one rounded multiply. */
    if (MODE == ENG_MV_PLAIN) {
        for (int p = threadIdx.x; p < MB_R * NB; p += MB_THREADS) {
            int r = p / NB, i = p % NB, row = blockIdx.x * MB_R + r;
            if (i >= n || row >= rows) continue;
            float v = res[p];
            if (a.scale) v = __fmul_rn(v, a.scale[i]);
            a.out[(size_t)i * rows + row] = v;
        }
    } else if (MODE == ENG_MV_SWIGLU) {
        for (int q = threadIdx.x; q < 2 * NB; q += MB_THREADS) {
            int j = q / NB, i = q % NB, p = blockIdx.x * 2 + j;
            if (i >= n || p >= F) continue;
            float g = res[2 * j * NB + i], u = res[(2 * j + 1) * NB + i];
            if (a.scale) {
                g = __fmul_rn(g, a.scale[i]);
                u = __fmul_rn(u, a.scale[i]);
            }
            if (a.bias) {
                g = __fadd_rn(g, a.bias[p]);
                u = __fadd_rn(u, a.bias[F + p]);
            }
            a.out[(size_t)i * F + p] = g / (1.0f + expf(-g)) * u;
        }
    } else {
        /* a warp per (input row, group of `per` rows): lane j holds row j of the group, and
         * the group's partial sum of squares is warp_sum over the lanes as in matvec_fused */
        int per = a.per, groups = G / per;
        for (int t = k; t < NB * groups; t += 4) {
            int i = t / groups, g = t % groups, r = blockIdx.x * G + g * per + lane;
            if (i >= n || blockIdx.x * G + g * per >= rows) continue;
            float v = 0.0f;
            if (lane < per) v = res[(g * per + lane) * NB + i];
            float sq = 0.0f;
            if (lane < per && r < rows) {
                size_t o = (size_t)i * rows + r;
                float x2 = a.res[o] + v + (a.bias ? a.bias[r] : 0.0f);
                a.res[o] = x2;
                a.out[o] = a.nw_out[r] * x2;
                sq = x2 * x2;
            }
            sq = warp_sum(sq);
            if (lane == 0) a.ssq_out[(size_t)i * a.ss_stride + blockIdx.x * groups + g] = sq;
        }
    }
}

/* The input norm's scale of each row, computed as matvec_fused computes it in every block
 * (256 threads, the same fixed order).   ssq [n, stride] (nss used), scale [n]. */
__global__ void __launch_bounds__(256)
    mb_scale_kernel(float *scale, const float *ssq, int stride, int nss, int nd, float eps)
{
    pdl_launch();
    pdl_wait();
    mv_norm_scale_block(scale + blockIdx.x, ssq + (size_t)blockIdx.x * stride, nss, nd, eps);
}

template <int DT, int MODE> static void mb_launch(const mb_args *a, eng_stream st)
{
    int G = MODE == ENG_MV_RESID && a->per > MB_R ? 2 * MB_R : MB_R;
    int blocks = MODE == ENG_MV_SWIGLU ? (a->rows / 2 + 1) / 2 : (a->rows + G - 1) / G;
    if (a->n <= 4)
        eng_launch(matvec_batch_kernel<DT, 4, MODE>, blocks, MB_THREADS, 0, st, *a);
    else if (a->n <= 8)
        eng_launch(matvec_batch_kernel<DT, 8, MODE>, blocks, MB_THREADS, 0, st, *a);
    else
        eng_launch(matvec_batch_kernel<DT, 16, MODE>, blocks, MB_THREADS, 0, st, *a);
}

template <int MODE> static void mb_mode(int dt, const mb_args *a, eng_stream st)
{
    if (dt == ENG_DT_BF16)
        mb_launch<ENG_DT_BF16, MODE>(a, st);
    else if (dt == ENG_DT_F16)
        mb_launch<ENG_DT_F16, MODE>(a, st);
    else
        mb_launch<ENG_DT_F32, MODE>(a, st);
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
        mb_args a = {};
        a.out = yg, a.w = w, a.x = xg, a.rows = rows, a.d = d, a.n = m;
        a.wpr = eng_mv_wpr(rows, d, es);
        mb_mode<ENG_MV_PLAIN>(dt, &a, st);
        int e = eng_cu_err();
        if (e) return e;
    }
    return 0;
}

extern "C" int eng_cu_matvec_batch_fused(const eng_mvb_args *b, eng_stream st)
{
    const eng_mv_args *a = &b->mv;
    if (b->tc && eng_cu_mvtc_ok(a->dt, a->rows, a->d, a->mode)) return eng_cu_matvec_tc(b, st);
    int es = a->dt == ENG_DT_F32 ? 4 : 2, F = a->rows / 2;
    /* the floats each row needs in ssq_in / ssq_out */
    int need = a->mode == ENG_MV_RESID ? eng_mv_parts(a->rows, a->d, es) : 0;
    if (a->ssq_in && a->nss > need) need = a->nss;
    if (!eng_mv_vec_ok(a->w, es, a->x, a->d) || (a->mode == ENG_MV_SWIGLU && a->rows % 2) ||
        (a->ssq_in && (a->nss <= 0 || !b->scale)) || (a->mode == ENG_MV_RESID && a->ssq_in) ||
        b->n < 0 || (b->n > 1 && b->ss_stride < need))
        return (int)cudaErrorInvalidValue;
    int ow = a->mode == ENG_MV_SWIGLU ? F : a->rows; /* an output row's width */
    int wpr = eng_mv_wpr(a->rows, a->d, es);
    for (int i0 = 0; i0 < b->n; i0 += MB_MAX) {
        int m = b->n - i0 < MB_MAX ? b->n - i0 : MB_MAX;
        size_t ss = (size_t)i0 * b->ss_stride;
        eng_mv_args one = *a; /* the first row of the group */
        one.x = a->x + (size_t)i0 * a->d;
        one.out = a->out + (size_t)i0 * ow;
        if (a->ssq_in) one.ssq_in = a->ssq_in + ss;
        if (a->res) one.res = a->res + (size_t)i0 * a->rows;
        if (a->ssq_out) one.ssq_out = a->ssq_out + ss;
        if (m == 1) { /* one row: the batch-1 fused kernel itself */
            int e = eng_cu_matvec_fused(&one, st);
            if (e) return e;
            continue;
        }
        mb_args k = {.out = one.out,
                     .res = one.res,
                     .ssq_out = one.ssq_out,
                     .w = a->w,
                     .x = one.x,
                     .scale = NULL,
                     .bias = a->bias,
                     .nw_out = a->nw_out,
                     .rows = a->rows,
                     .d = a->d,
                     .n = m,
                     .wpr = wpr,
                     .per = 8 / wpr,
                     .ss_stride = b->ss_stride};
        if (a->ssq_in) {
            eng_launch(mb_scale_kernel, m, 256, 0, st, b->scale + i0, one.ssq_in, b->ss_stride,
                       a->nss, a->nd, a->eps);
            k.scale = b->scale + i0;
        }
        if (a->mode == ENG_MV_SWIGLU)
            mb_mode<ENG_MV_SWIGLU>(a->dt, &k, st);
        else if (a->mode == ENG_MV_RESID)
            mb_mode<ENG_MV_RESID>(a->dt, &k, st);
        else
            mb_mode<ENG_MV_PLAIN>(a->dt, &k, st);
        int e = eng_cu_err();
        if (e) return e;
    }
    return 0;
}
