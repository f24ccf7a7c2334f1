/* SPDX-License-Identifier: MIT */
/* The decode rows of a batched step on tensor cores (bf16 weights): eng_cu_matvec_batch_fused's
 * products and epilogues for 1 to 16 input rows, the weights read once for all of them.
 *
 * matvec_batch.cu keeps each row's bits those of the batch-1 kernel, at the price of a thread
 * holding 4 weight rows x 16 inputs of accumulators and reloading x every 4 rows: at 16 rows
 * it runs far below the memory's bandwidth. Here `mma` does the products: a warp's 16 weight
 * rows are the A operand, the (padded) input rows the B operand, so 16 inputs cost a weight
 * load what one does. The f32 inputs enter as two bf16 halves (hi = bf16(x), lo = bf16(x -
 * hi), split by the lane that feeds them to mma), each multiplied in f32 accumulators: the
 * product is that of x to about 16 bits, not 8. A fused input norm's scale is computed by every
 * block, as matvec_fused does, so a product is one kernel.
 *
 * Batch invariance: a column of an mma's output depends only on its own column of B, and
 * every row of a launch goes through the same instructions in the same order whatever n is
 * (the k split over warps and the sum of the warps' parts are fixed per matrix), so a row
 * gets the same bits alone (n = 1) as in any batch. The engine therefore runs every decode
 * row of a batched step through this kernel when it is on (ENG_CUDA_FUSE bit 16), alone or not.
 *
 * k order: the 32 elements of a k-block are cut into four 8-element chunks, chunk t loaded by
 * lane t of each group of four (16 bytes of weight rows g and g + 8, 32 of input row g). Its
 * first four elements feed the first mma of the block and its last four the second, in the
 * places mma reads the logical k = 2t, 2t+1, 2t+8, 2t+9: A and B use the same permutation of
 * k, so the dot product is the same sum, each operand loaded 16 bytes at a time. */
#include "cu_common.cuh"

/* Below this many blocks (of 16 weight rows), blocks of 16 warps, else of 8: a small matrix
 * (the 1B shape's, q/k/v, o_proj and down of the 8B) then keeps more loads in flight. Measured
 * on an H200, 2026-12-04 (docs/BENCHMARKS.md, section 16). */
#define TC_SMALL_GRID 512
#define TC_MAX 16 /* input rows per launch */

typedef struct tc_args {
    float *out, *res, *ssq_out;
    const void *w;
    const float *x, *ssq_in, *bias, *nw_out;
    int rows, d, n, per, ss_stride, nss, nd;
    float eps;
} tc_args;

/* d += a b on tensor cores: a 16 x 16 bf16 tile of weights, b 16 x 8 bf16 inputs, f32 sums. */
__device__ __forceinline__ void tc_mma(float *c, unsigned a0, unsigned a1, unsigned a2, unsigned a3,
                                       unsigned b0, unsigned b1)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
#endif
}

/* 8 inputs as the B operands of a k-block's two mmas: hi[0..1] and lo[0..1] the first's,
 * hi[2..3] and lo[2..3] the second's (bf16 pairs, the lower k in the low half). */
__device__ __forceinline__ void tc_split(float4 a, float4 b, unsigned *hi, unsigned *lo)
{
    float v[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        __nv_bfloat162 h = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
        float2 f = __bfloat1622float2(h);
        __nv_bfloat162 l = __floats2bfloat162_rn(v[2 * k] - f.x, v[2 * k + 1] - f.y);
        hi[k] = *(unsigned *)&h;
        lo[k] = *(unsigned *)&l;
    }
}

/* The weights of k-blocks kb0 .. kb0 + U - 1 (zeros past nkb) of rows g and g + 8 of each
 * tile, streamed past the caches (read once). */
template <int U, int MT>
__device__ __forceinline__ void tc_load_w(uint4 (&wv)[U][MT][2], const uint4 *const (&wr)[MT][2],
                                          int kb0, int nkb)
{
#pragma unroll
    for (int u = 0; u < U; u++)
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int h = 0; h < 2; h++)
                wv[u][m][h] = kb0 + u < nkb ? __ldcs(wr[m][h] + (size_t)(kb0 + u) * 4)
                                            : make_uint4(0, 0, 0, 0);
}

/* grid: rows / 16 blocks (SWIGLU: F / 16, each a tile of gate rows and its tile of up rows),
 * W warps each. A warp takes U k-blocks of 32 in turn (k-block kb0 + u with kb0 stepping
 * by W U), for MT tiles of 16 weight rows and NT tiles of 8 input rows; the warps' sums
 * are added in warp order.   w [rows, d] bf16, out as eng_cu_matvec_batch_fused. */
template <int NT, int MODE, int W>
__global__ void __launch_bounds__(W * 32, (NT == 1 ? 32 : 16) / W) matvec_tc_kernel(tc_args a)
{
    /* registers bounded for 32 warps an SM (16 with two input tiles) */
    const int MT = MODE == ENG_MV_SWIGLU ? 2 : 1, U = 4 / MT;
    __shared__ float part[W][MT * NT * 4][32]; /* [warp][tile, register][lane] */
    __shared__ float dots[MT * 16][NT * 8];    /* [weight row of the block][input row] */
    __shared__ float scale[NT * 8];            /* the input norm's scale of each row */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    int rows = a.rows, d = a.d, n = a.n, nkb = d / 32, F = rows / 2;
    size_t nv = (size_t)d / 8; /* 16-byte chunks a row */
    const uint4 *wr[MT][2];    /* rows g and g + 8 of each tile */
#pragma unroll
    for (int m = 0; m < MT; m++) {
        int base = (MODE == ENG_MV_SWIGLU && m ? F : 0) + blockIdx.x * 16 + g;
        wr[m][0] = (const uint4 *)a.w + (size_t)base * nv + t;
        wr[m][1] = wr[m][0] + 8 * nv;
    }
    const float4 *xr[NT]; /* input row j * 8 + g, at this lane's 8 floats of a k-block */
    bool xon[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) {
        int c = j * 8 + g;
        xon[j] = c < n;
        xr[j] = (const float4 *)(a.x + (size_t)(xon[j] ? c : 0) * d) + 2 * t;
    }
    float acc[MT][NT][4];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                acc[m][j][e] = 0.0f;
    uint4 wv[U][MT][2];
    int kb0 = warp * U;
    /* the first weights (no kernel writes them) before waiting for the inputs */
    tc_load_w<U, MT>(wv, wr, kb0, nkb);
    pdl_launch();
    pdl_wait();
    while (kb0 < nkb) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            int kb = kb0 + u;
            unsigned bh[NT][4], bl[NT][4];
#pragma unroll
            for (int j = 0; j < NT; j++) {
                float4 x0 = make_float4(0, 0, 0, 0), x1 = x0;
                if (xon[j] && kb < nkb) {
                    x0 = __ldg(xr[j] + (size_t)kb * 8);
                    x1 = __ldg(xr[j] + (size_t)kb * 8 + 1);
                }
                tc_split(x0, x1, bh[j], bl[j]);
            }
#pragma unroll
            for (int m = 0; m < MT; m++)
#pragma unroll
                for (int j = 0; j < NT; j++) {
                    const uint4 &p = wv[u][m][0], &q = wv[u][m][1];
                    tc_mma(acc[m][j], p.x, q.x, p.y, q.y, bh[j][0], bh[j][1]);
                    tc_mma(acc[m][j], p.x, q.x, p.y, q.y, bl[j][0], bl[j][1]);
                    tc_mma(acc[m][j], p.z, q.z, p.w, q.w, bh[j][2], bh[j][3]);
                    tc_mma(acc[m][j], p.z, q.z, p.w, q.w, bl[j][2], bl[j][3]);
                }
        }
        kb0 += W * U;
        if (kb0 >= nkb) break;
        tc_load_w<U, MT>(wv, wr, kb0, nkb);
    }
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int j = 0; j < NT; j++)
#pragma unroll
            for (int e = 0; e < 4; e++)
                part[warp][(m * NT + j) * 4 + e][lane] = acc[m][j][e];
    __syncthreads();
    /* the warps' parts added in warp order; register e of lane (g, t) holds weight row
     * g + 8 (e / 2), input row 2t + e % 2 of its tile */
    for (int p = threadIdx.x; p < MT * NT * 4 * 32; p += W * 32) {
        int reg = p >> 5, ln = p & 31, m = reg / (NT * 4), j = (reg / 4) % NT, e = reg & 3;
        float v = part[0][reg][ln];
#pragma unroll
        for (int w = 1; w < W; w++)
            v = __fadd_rn(v, part[w][reg][ln]);
        dots[m * 16 + (ln >> 2) + 8 * (e >> 1)][j * 8 + 2 * (ln & 3) + (e & 1)] = v;
    }
    /* the input norm's scale of row i: its partial sums added lane by lane, then across the
     * warp, the same way for any n */
    for (int i = warp; a.ssq_in && i < n; i += W) {
        const float *in = a.ssq_in + (size_t)i * a.ss_stride;
        float ss = 0.0f;
        for (int k = lane; k < a.nss; k += 32)
            ss += in[k];
        ss = warp_sum(ss);
        if (lane == 0) scale[i] = rsqrtf(ss / (float)a.nd + a.eps);
    }
    __syncthreads();
    if (MODE == ENG_MV_PLAIN) {
        for (int p = threadIdx.x; p < 16 * n; p += W * 32) {
            int r = p / n, i = p % n, row = blockIdx.x * 16 + r;
            float v = dots[r][i];
            if (a.ssq_in) v = __fmul_rn(v, scale[i]);
            a.out[(size_t)i * rows + row] = v;
        }
    } else if (MODE == ENG_MV_SWIGLU) {
        for (int q = threadIdx.x; q < 16 * n; q += W * 32) {
            int r = q / n, i = q % n, p = blockIdx.x * 16 + r;
            float gt = dots[r][i], up = dots[16 + r][i];
            if (a.ssq_in) {
                gt = __fmul_rn(gt, scale[i]);
                up = __fmul_rn(up, scale[i]);
            }
            if (a.bias) {
                gt = __fadd_rn(gt, a.bias[p]);
                up = __fadd_rn(up, a.bias[F + p]);
            }
            a.out[(size_t)i * F + p] = gt / (1.0f + expf(-gt)) * up;
        }
    } else {
        /* a warp per (input row, group of `per` rows), as matvec_batch.cu's: lane j holds row
         * j of the group; the group's sum of squares by warp_sum */
        int per = a.per, groups = 16 / per;
        for (int q = warp; q < n * groups; q += W) {
            int i = q / groups, gi = q % groups, r = gi * per + lane, row = blockIdx.x * 16 + r;
            float sq = 0.0f;
            if (lane < per) {
                size_t o = (size_t)i * rows + row;
                float x2 = a.res[o] + dots[r][i] + (a.bias ? a.bias[row] : 0.0f);
                a.res[o] = x2;
                a.out[o] = a.nw_out[row] * x2;
                sq = x2 * x2;
            }
            sq = warp_sum(sq);
            if (lane == 0) a.ssq_out[(size_t)i * a.ss_stride + blockIdx.x * groups + gi] = sq;
        }
    }
}

template <int MODE> static void tc_launch(const tc_args *a, eng_stream st)
{
    int blocks = (MODE == ENG_MV_SWIGLU ? a->rows / 2 : a->rows) / 16;
    if (blocks < TC_SMALL_GRID) {
        if (a->n <= 8)
            eng_launch(matvec_tc_kernel<1, MODE, 16>, blocks, 16 * 32, 0, st, *a);
        else
            eng_launch(matvec_tc_kernel<2, MODE, 16>, blocks, 16 * 32, 0, st, *a);
    } else if (a->n <= 8) {
        eng_launch(matvec_tc_kernel<1, MODE, 8>, blocks, 8 * 32, 0, st, *a);
    } else {
        eng_launch(matvec_tc_kernel<2, MODE, 8>, blocks, 8 * 32, 0, st, *a);
    }
}

extern "C" int eng_cu_mvtc_ok(int dt, int rows, int d, int mode)
{
    int tile = mode == ENG_MV_SWIGLU ? 32 : 16;
    return dt == ENG_DT_BF16 && rows > 0 && rows % tile == 0 && d > 0 && d % 32 == 0;
}

extern "C" int eng_cu_matvec_tc(const eng_mvb_args *b, eng_stream st)
{
    const eng_mv_args *a = &b->mv;
    int F = a->rows / 2, ow = a->mode == ENG_MV_SWIGLU ? F : a->rows;
    int need = a->mode == ENG_MV_RESID ? eng_mv_parts(a->rows, a->d, 2) : 0;
    if (a->ssq_in && a->nss > need) need = a->nss;
    if (!eng_cu_mvtc_ok(a->dt, a->rows, a->d, a->mode) || ((uintptr_t)a->w & 15) ||
        ((uintptr_t)a->x & 15) || (a->ssq_in && a->nss <= 0) ||
        (a->mode == ENG_MV_RESID && a->ssq_in) || b->n < 0 || (b->n > 1 && b->ss_stride < need))
        return (int)cudaErrorInvalidValue;
    for (int i0 = 0; i0 < b->n; i0 += TC_MAX) {
        int m = b->n - i0 < TC_MAX ? b->n - i0 : TC_MAX;
        size_t ss = (size_t)i0 * b->ss_stride;
        tc_args k = {.out = a->out + (size_t)i0 * ow,
                     .res = a->res ? a->res + (size_t)i0 * a->rows : NULL,
                     .ssq_out = a->ssq_out ? a->ssq_out + ss : NULL,
                     .w = a->w,
                     .x = a->x + (size_t)i0 * a->d,
                     .ssq_in = a->ssq_in ? a->ssq_in + ss : NULL,
                     .bias = a->bias,
                     .nw_out = a->nw_out,
                     .rows = a->rows,
                     .d = a->d,
                     .n = m,
                     .per = 8 / eng_mv_wpr(a->rows, a->d, 2),
                     .ss_stride = b->ss_stride,
                     .nss = a->nss,
                     .nd = a->nd,
                     .eps = a->eps};
        if (a->mode == ENG_MV_SWIGLU)
            tc_launch<ENG_MV_SWIGLU>(&k, st);
        else if (a->mode == ENG_MV_RESID)
            tc_launch<ENG_MV_RESID>(&k, st);
        else
            tc_launch<ENG_MV_PLAIN>(&k, st);
        int e = eng_cu_err();
        if (e) return e;
    }
    return 0;
}
