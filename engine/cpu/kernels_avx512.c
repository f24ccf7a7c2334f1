/* SPDX-License-Identifier: MIT */
/* AVX-512 products (avx512f/bw/vl), compiled for that target only and picked at run time; the
 * attention kernels are the AVX2 ones.
 *
 * Several input rows: blocks of 4 weight rows against 4 input rows (16 accumulators, 8 loads
 * for 16 FMAs). A batch of decode rows does 4 multiply-adds per f32 weight byte, so a core
 * runs as fast as it brings its weights in, and it does not by itself: while it works on the
 * lines it has, it asks for no more. So every 16-element step also asks L2 for a line or two
 * of a block about 96 KiB ahead, spread over the block's whole time: 16-row products of the
 * stories110M shape ran at 37-40 G multiply-adds/s a core against 21 without (one core), and
 * 320-345 G/s against 229 on 16 cores, 80-86 GB/s of weights (16-core Xeon host, 2026-12-06).
 *
 * One summation order for every output whatever the batch: lane l of one accumulator sums
 * elements k = l mod 16 in k order, a masked step takes the d % 16 left (zeros add +0), and a
 * fixed tree adds the 16 lanes. A row's result then does not depend on how many other rows
 * came with it, nor on how the rows are split among threads. */
#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define INLINE inline __attribute__((always_inline))

/* Sixteen elements of p from k (type dt) as f32. */
AVX512 static INLINE __m512 ld16(const void *p, int k, int dt)
{
    if (dt == ENG_DT_BF16) {
        __m256i h = _mm256_loadu_si256((const __m256i *)((const uint16_t *)p + k));
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    if (dt == ENG_DT_F16)
        return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)((const uint16_t *)p + k)));
    /* Two 32-byte halves: rows in a file's mapping are rarely 64-byte aligned, and a 64-byte
     * load that straddles two lines costs more than two halves of which one may. */
    const float *f = (const float *)p + k;
    __m512d lo = _mm512_castpd256_pd512(_mm256_castps_pd(_mm256_loadu_ps(f)));
    return _mm512_castpd_ps(_mm512_insertf64x4(lo, _mm256_castps_pd(_mm256_loadu_ps(f + 8)), 1));
}

/* The same with the lanes off in m zero (the last, partial step). */
AVX512 static INLINE __m512 ld16m(const void *p, int k, int dt, __mmask16 m)
{
    if (dt == ENG_DT_BF16) {
        __m256i h = _mm256_maskz_loadu_epi16(m, (const uint16_t *)p + k);
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    }
    if (dt == ENG_DT_F16)
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, (const uint16_t *)p + k));
    return _mm512_maskz_loadu_ps(m, (const float *)p + k);
}

AVX512 static INLINE float hsum16(__m512 v)
{
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    __m128 q = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    q = _mm_add_ss(q, _mm_movehdup_ps(q));
    return _mm_cvtss_f32(q);
}

/* v kept in a register, so the compiler does not fold its load into each FMA that uses it. */
AVX512 static INLINE __m512 reg(__m512 v)
{
    __asm__("" : "+v"(v));
    return v;
}

/* Lines still to ask for: per_step of them a step from p while left > 0 (the last step may ask
 * for a few lines past the block: a prefetch never faults). */
typedef struct pf_state {
    const char *p;
    int left, per_step;
} pf_state;

/* One input row's step against the four weight rows (ak: that row's four accumulators). */
#define STEP_ROW(xv, a0, a1, a2, a3)                                                               \
    do {                                                                                           \
        __m512 x_ = (xv);                                                                          \
        a0 = _mm512_fmadd_ps(x_, w0, a0);                                                          \
        a1 = _mm512_fmadd_ps(x_, w1, a1);                                                          \
        a2 = _mm512_fmadd_ps(x_, w2, a2);                                                          \
        a3 = _mm512_fmadd_ps(x_, w3, a3);                                                          \
    } while (0)

/* Weight rows wr[0..3] (type dt) against f32 input rows xr[0..3]: 16 sums, out[j ostride + r]
 * for r < nw, j < nx (short blocks repeat their last row and store only theirs). The 16
 * accumulators are named so that they stay in registers. */
AVX512 static INLINE void dot4x4(float *out, size_t ostride, const float *const xr[4], int nx,
                                 const void *const wr[4], int nw, int dt, int d, pf_state *pf)
{
    __m512 z = _mm512_setzero_ps();
    __m512 a00 = z, a01 = z, a02 = z, a03 = z, a10 = z, a11 = z, a12 = z, a13 = z;
    __m512 a20 = z, a21 = z, a22 = z, a23 = z, a30 = z, a31 = z, a32 = z, a33 = z;
    const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3];
    const void *u0 = wr[0], *u1 = wr[1], *u2 = wr[2], *u3 = wr[3];
    const char *pp = pf->p;
    int left = pf->left, per = pf->per_step;
    int k = 0;
    for (; k + 16 <= d; k += 16) {
        if (left > 0) {
            for (int i = 0; i < per; i++)
                _mm_prefetch(pp + 64 * i, _MM_HINT_T1);
            pp += 64 * per;
            left -= per;
        }
        __m512 w0 = ld16(u0, k, dt), w1 = ld16(u1, k, dt);
        __m512 w2 = ld16(u2, k, dt), w3 = ld16(u3, k, dt);
        STEP_ROW(reg(_mm512_loadu_ps(x0 + k)), a00, a10, a20, a30);
        STEP_ROW(reg(_mm512_loadu_ps(x1 + k)), a01, a11, a21, a31);
        STEP_ROW(reg(_mm512_loadu_ps(x2 + k)), a02, a12, a22, a32);
        STEP_ROW(reg(_mm512_loadu_ps(x3 + k)), a03, a13, a23, a33);
    }
    if (k < d) {
        __mmask16 m = (__mmask16)((1u << (d - k)) - 1);
        __m512 w0 = ld16m(u0, k, dt, m), w1 = ld16m(u1, k, dt, m);
        __m512 w2 = ld16m(u2, k, dt, m), w3 = ld16m(u3, k, dt, m);
        STEP_ROW(_mm512_maskz_loadu_ps(m, x0 + k), a00, a10, a20, a30);
        STEP_ROW(_mm512_maskz_loadu_ps(m, x1 + k), a01, a11, a21, a31);
        STEP_ROW(_mm512_maskz_loadu_ps(m, x2 + k), a02, a12, a22, a32);
        STEP_ROW(_mm512_maskz_loadu_ps(m, x3 + k), a03, a13, a23, a33);
    }
    pf->p = pp;
    pf->left = left;
    const __m512 acc[4][4] = {
        {a00, a01, a02, a03}, {a10, a11, a12, a13}, {a20, a21, a22, a23}, {a30, a31, a32, a33}};
    for (int j = 0; j < nx; j++)
        for (int r = 0; r < nw; r++)
            out[(size_t)j * ostride + r] = hsum16(acc[r][j]);
}

/* Four weight rows against one input row, each summed as dot4x4 sums it: out[r ostride]. */
AVX512 static INLINE void dot4x1(float *out, size_t ostride, const float *x,
                                 const void *const wr[4], int nw, int dt, int d)
{
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const void *u0 = wr[0], *u1 = wr[1], *u2 = wr[2], *u3 = wr[3];
    int k = 0;
    for (; k + 16 <= d; k += 16) {
        __m512 xv = _mm512_loadu_ps(x + k);
        a0 = _mm512_fmadd_ps(xv, ld16(u0, k, dt), a0);
        a1 = _mm512_fmadd_ps(xv, ld16(u1, k, dt), a1);
        a2 = _mm512_fmadd_ps(xv, ld16(u2, k, dt), a2);
        a3 = _mm512_fmadd_ps(xv, ld16(u3, k, dt), a3);
    }
    if (k < d) {
        __mmask16 m = (__mmask16)((1u << (d - k)) - 1);
        __m512 xv = _mm512_maskz_loadu_ps(m, x + k);
        a0 = _mm512_fmadd_ps(xv, ld16m(u0, k, dt, m), a0);
        a1 = _mm512_fmadd_ps(xv, ld16m(u1, k, dt, m), a1);
        a2 = _mm512_fmadd_ps(xv, ld16m(u2, k, dt, m), a2);
        a3 = _mm512_fmadd_ps(xv, ld16m(u3, k, dt, m), a3);
    }
    const __m512 acc[4] = {a0, a1, a2, a3};
    for (int r = 0; r < nw; r++)
        out[(size_t)r * ostride] = hsum16(acc[r]);
}

/* Input rows in one tile when they fit this in L2 (a server step's decode rows plus a prompt
 * chunk then read the weights once), tiles of 16 otherwise. */
#define MM_TILE 16
#define MM_X_L2 (256 * 1024)
/* How far ahead the weights are asked for, and at most how many blocks. */
#define PF_BYTES (96 * 1024)
#define PF_MAX_BLOCKS 8

AVX512 static INLINE void matmul_typed(float *out, const float *x, const void *w, int dt, int T,
                                       int n, int d, int i0, int i1)
{
    if (T == 1) {
        /* The four rows of a block a quarter of the range apart: four long streams that the
         * hardware prefetchers follow (a single row is bound by the weights' bandwidth). */
        int q = (i1 - i0) / 4, i = i0;
        for (; i < i0 + q; i++) {
            const void *wr[4] = {cpu_at(w, (size_t)i * d, dt), cpu_at(w, (size_t)(i + q) * d, dt),
                                 cpu_at(w, (size_t)(i + 2 * q) * d, dt),
                                 cpu_at(w, (size_t)(i + 3 * q) * d, dt)};
            dot4x1(out + i, (size_t)q, x, wr, 4, dt, d);
        }
        for (i = i0 + 4 * q; i < i1; i++) {
            const void *wr[4] = {cpu_at(w, (size_t)i * d, dt), NULL, NULL, NULL};
            wr[1] = wr[2] = wr[3] = wr[0];
            dot4x1(out + i, 0, x, wr, 1, dt, d);
        }
        return;
    }
    size_t block_bytes = (size_t)4 * d * eng_dt_size((eng_dtype)dt);
    int ahead = (int)(PF_BYTES / block_bytes);
    ahead = ahead < 1 ? 1 : ahead > PF_MAX_BLOCKS ? PF_MAX_BLOCKS : ahead;
    int tile = (size_t)T * d * sizeof(float) <= MM_X_L2 ? T : MM_TILE;
    int steps = (d + 15) / 16;
    for (int t0 = 0; t0 < T; t0 += tile) {
        int t1 = t0 + tile < T ? t0 + tile : T, xblocks = (t1 - t0 + 3) / 4;
        for (int i = i0; i < i1; i += 4) {
            int nw = i1 - i < 4 ? i1 - i : 4;
            const void *wr[4];
            for (int r = 0; r < 4; r++)
                wr[r] = cpu_at(w, (size_t)(i + (r < nw ? r : nw - 1)) * d, dt);
            /* The block `ahead` blocks on, within this thread's rows, spread over the steps. */
            int pi = i + 4 * ahead, prow = i1 - pi < 4 ? i1 - pi : 4;
            pf_state pf = {NULL, 0, 0};
            if (prow > 0) {
                pf.p = cpu_at(w, (size_t)pi * d, dt);
                pf.left = (int)(((size_t)prow * d * eng_dt_size((eng_dtype)dt) + 63) / 64);
                pf.per_step = (pf.left + xblocks * steps - 1) / (xblocks * steps);
            }
            for (int t = t0; t < t1; t += 4) {
                const float *xr[4];
                int nx = t1 - t < 4 ? t1 - t : 4;
                cpu_rows4(xr, x, t, nx, d);
                dot4x4(out + (size_t)t * n + i, (size_t)n, xr, nx, wr, nw, dt, d, &pf);
            }
        }
    }
}

AVX512 static void matmul_avx512(float *out, const float *x, cpu_mat w, int T, int n, int d, int i0,
                                 int i1)
{
    CPU_MATMUL_PER_TYPE(matmul_typed, out, x, w, T, n, d, i0, i1);
}

const eng_kernels eng_kernels_avx512 = {
    .name = "avx512",
    .matmul = matmul_avx512,
    .dot = eng_avx2_dot,
    .axpy = eng_avx2_axpy,
    .scores = eng_avx2_scores,
    .values = eng_avx2_values,
};
#else
const eng_kernels eng_kernels_avx512 = {0};
#endif
