/* SPDX-License-Identifier: MIT */
/* AVX2/FMA kernels, compiled for that target only and picked at run time.
 * matmul: pairs of weight rows are loaded once and used against up to 16 input rows (prefill,
 * a batch of decode tokens); a single row runs 4 weight rows at once against one x to keep 4
 * FMA chains busy, rows a quarter of the range apart so that each chain's loads stream. Every
 * output element has one dot4 lane's order, so its bits do not depend on T. */
#include "cpu.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma,f16c")))

AVX2 static inline float hsum(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

AVX2 float eng_avx2_dot(const float *a, const float *b, int n)
{
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    int k = 0;
    for (; k + 16 <= n; k += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k + 8), _mm256_loadu_ps(b + k + 8), s1);
    }
    for (; k + 8 <= n; k += 8)
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + k), _mm256_loadu_ps(b + k), s0);
    float s = hsum(_mm256_add_ps(s0, s1));
    for (; k < n; k++)
        s += a[k] * b[k];
    return s;
}

AVX2 void eng_avx2_axpy(float *y, float a, const float *x, int n)
{
    __m256 va = _mm256_set1_ps(a);
    int k = 0;
    for (; k + 8 <= n; k += 8)
        _mm256_storeu_ps(y + k,
                         _mm256_fmadd_ps(va, _mm256_loadu_ps(x + k), _mm256_loadu_ps(y + k)));
    for (; k < n; k++)
        y[k] += a * x[k];
}

/* Four positions' scores at a time, each summed exactly as eng_avx2_dot sums it (two chains of
 * 16-float steps, an 8-float step, hsum, the scalar tail): the four share q's loads and keep
 * eight FMA chains busy instead of two. */
AVX2 void eng_avx2_scores(float *att, const float *q, const float *k, size_t kstride, int n, int hd,
                          float scale)
{
    int p = 0;
    for (; p + 4 <= n; p += 4) {
        const float *r[4];
        __m256 s0[4], s1[4];
        for (int j = 0; j < 4; j++) {
            r[j] = k + (size_t)(p + j) * kstride;
            s0[j] = s1[j] = _mm256_setzero_ps();
            /* The next group's keys, while these are summed. */
            if (p + 8 <= n)
                for (int x = 0; x < hd; x += 16)
                    _mm_prefetch((const char *)(r[j] + 4 * kstride + x), _MM_HINT_T0);
        }
        int i = 0;
        for (; i + 16 <= hd; i += 16) {
            __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                s0[j] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r[j] + i), s0[j]);
                s1[j] = _mm256_fmadd_ps(q1, _mm256_loadu_ps(r[j] + i + 8), s1[j]);
            }
        }
        for (; i + 8 <= hd; i += 8) {
            __m256 q0 = _mm256_loadu_ps(q + i);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                s0[j] = _mm256_fmadd_ps(q0, _mm256_loadu_ps(r[j] + i), s0[j]);
        }
        for (int j = 0; j < 4; j++) {
            float sum = hsum(_mm256_add_ps(s0[j], s1[j]));
            for (int x = i; x < hd; x++)
                sum += q[x] * r[j][x];
            att[p + j] = sum * scale;
        }
    }
    for (; p < n; p++)
        att[p] = eng_avx2_dot(q, k + (size_t)p * kstride, hd) * scale;
}

/* nb (1..8) registers of o kept across all positions: each element gets the FMAs of
 * eng_avx2_axpy's vector part in the same p order, without a store and reload per position. */
AVX2 static inline __attribute__((always_inline)) void
values_regs(float *o, const float *att, float inv, const float *v, size_t vstride, int n, int nb)
{
    __m256 acc[8];
#pragma GCC unroll 8
    for (int b = 0; b < nb; b++)
        acc[b] = _mm256_setzero_ps();
    for (int p = 0; p < n; p++) {
        __m256 a = _mm256_set1_ps(att[p] * inv);
        const float *vp = v + (size_t)p * vstride;
        /* A value row a few positions ahead, a line per two registers. */
        if (p + 4 < n)
#pragma GCC unroll 4
            for (int b = 0; b < nb; b += 2)
                _mm_prefetch((const char *)(vp + 4 * vstride + 8 * b), _MM_HINT_T0);
#pragma GCC unroll 8
        for (int b = 0; b < nb; b++)
            acc[b] = _mm256_fmadd_ps(a, _mm256_loadu_ps(vp + 8 * b), acc[b]);
    }
#pragma GCC unroll 8
    for (int b = 0; b < nb; b++)
        _mm256_storeu_ps(o + 8 * b, acc[b]);
}

/* Bitwise memset + eng_avx2_axpy over p: the 8-float blocks in registers, 64 floats a pass, then
 * the tail with axpy's scalar expression. */
AVX2 void eng_avx2_values(float *o, const float *att, float inv, const float *v, size_t vstride,
                          int n, int hd)
{
    int k = 0;
    for (; k + 8 <= hd; k += 64) {
        int nb = (hd - k) / 8 < 8 ? (hd - k) / 8 : 8;
        switch (nb) {
        case 1:
            values_regs(o + k, att, inv, v + k, vstride, n, 1);
            break;
        case 2:
            values_regs(o + k, att, inv, v + k, vstride, n, 2);
            break;
        case 3:
            values_regs(o + k, att, inv, v + k, vstride, n, 3);
            break;
        case 4:
            values_regs(o + k, att, inv, v + k, vstride, n, 4);
            break;
        case 5:
            values_regs(o + k, att, inv, v + k, vstride, n, 5);
            break;
        case 6:
            values_regs(o + k, att, inv, v + k, vstride, n, 6);
            break;
        case 7:
            values_regs(o + k, att, inv, v + k, vstride, n, 7);
            break;
        default:
            values_regs(o + k, att, inv, v + k, vstride, n, 8);
            break;
        }
    }
    for (k = hd / 8 * 8; k < hd; k++) {
        float y = 0.0f;
        for (int p = 0; p < n; p++) {
            float a = att[p] * inv;
            y += a * v[(size_t)p * vstride + k];
        }
        o[k] = y;
    }
}

/* Weights in their stored type (cpu_mat): f16 and bf16 widen to f32 exactly, so a product
 * sums the same floats as over an f32 copy and gives its bits, reading half the bytes. Inside
 * the always-inline kernels below dt is a constant (matmul_avx2 calls one copy per type).
 * ld8: eight elements from p[k]. */
AVX2 static inline __attribute__((always_inline)) __m256 ld8(const void *p, int k, int dt)
{
    if (dt == ENG_DT_BF16) {
        __m128i h = _mm_loadu_si128((const __m128i *)((const uint16_t *)p + k));
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    }
    if (dt == ENG_DT_F16)
        return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)p + k)));
    return _mm256_loadu_ps((const float *)p + k);
}

/* The last step of a dot4-ordered product of four accumulators: the lanes transposed and added
 * into four sums, the scalar tail (d % 8 elements) added after them, the first nv stored at
 * out[0], out[ostride], ... Each sum depends on its own accumulator and row only. v[j] are of
 * type vdt, u of udt. */
AVX2 static inline __attribute__((always_inline)) void
sum4_store(float *out, size_t ostride, __m256 s0, __m256 s1, __m256 s2, __m256 s3,
           const void *const v[4], int vdt, const void *u, int udt, int k, int d, int nv)
{
    __m256 a01 = _mm256_hadd_ps(s0, s1), a23 = _mm256_hadd_ps(s2, s3);
    __m256 a = _mm256_hadd_ps(a01, a23);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    float o[4];
    _mm_storeu_ps(o, r);
    for (; k < d; k++)
        for (int j = 0; j < 4; j++)
            o[j] += cpu_elem(v[j], vdt, (size_t)k) * cpu_elem(u, udt, (size_t)k);
    for (int j = 0; j < nv; j++)
        out[j * ostride] = o[j];
}

/* Four dot products of d elements: rows v, v + vstride, v + 2 vstride, v + 3 vstride (type vdt,
 * strides in elements), each with the shared row u (type udt); sums to out[0], out[ostride], ...
 * Serves both 4 weight rows x 1 input row and 1 weight row x 4 input rows (multiplication
 * commutes exactly, so either role order gives the same bits). */
AVX2 static inline __attribute__((always_inline)) void dot4(float *out, size_t ostride,
                                                            const void *v, int vdt, size_t vstride,
                                                            const void *u, int udt, int d)
{
    const void *vr[4] = {v, cpu_at(v, vstride, vdt), cpu_at(v, 2 * vstride, vdt),
                         cpu_at(v, 3 * vstride, vdt)};
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(),
           s3 = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= d; k += 8) {
        __m256 uv = ld8(u, k, udt);
        s0 = _mm256_fmadd_ps(ld8(vr[0], k, vdt), uv, s0);
        s1 = _mm256_fmadd_ps(ld8(vr[1], k, vdt), uv, s1);
        s2 = _mm256_fmadd_ps(ld8(vr[2], k, vdt), uv, s2);
        s3 = _mm256_fmadd_ps(ld8(vr[3], k, vdt), uv, s3);
    }
    sum4_store(out, ostride, s0, s1, s2, s3, vr, vdt, u, udt, k, d, 4);
}

/* v, kept in a register: without this the compiler folds the load into both FMAs that use
 * it, loading it twice (ten loads for eight FMAs instead of six). */
AVX2 static inline __m256 reg(__m256 v)
{
    __asm__("" : "+x"(v));
    return v;
}

/* Two weight rows u0, u1 (type dt) against four f32 input rows vr[0..3]: eight sums, each
 * with dot4's order, so bitwise what two dot4 calls give. Six loads feed eight FMAs (dot4:
 * five feed four), which is what a batch of decode rows needs: dot4 there is bound by the
 * load ports, not the FMA units. out[j ostride] takes u0's sums, out[j ostride + 1] u1's,
 * for j < nv (fewer than 4 input rows repeat the last one and store only theirs).
 * A pass takes 16 elements of each weight row; pf (or NULL) is a later pair of weight rows
 * (pf, pf + d), fetched into L2 a piece each in every pass (phase < 0) or in the passes p
 * with p % 4 == phase (four calls share the pair's lines). Into L2, not L1: there they would
 * compete with the input rows and the lines in use (a 4-row step of the stories15M shape took
 * 2.5 ms against 6.6 with L1 hints; 1 thread, AMD EPYC, 2026-12-04). */
AVX2 static inline __attribute__((always_inline)) void
dot2x4(float *out, size_t ostride, const float *const vr[4], int nv, const void *u0, const void *u1,
       int dt, int d, const void *pf, int phase)
{
    __m256 a[4], b[4];
    for (int j = 0; j < 4; j++)
        a[j] = b[j] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 16 <= d; k += 16) {
        if (pf && (phase < 0 || ((k >> 4) & 3) == phase)) {
            _mm_prefetch((const char *)cpu_at(pf, k, dt), _MM_HINT_T1);
            _mm_prefetch((const char *)cpu_at(pf, (size_t)d + k, dt), _MM_HINT_T1);
        }
#pragma GCC unroll 2
        for (int h = 0; h < 16; h += 8) {
            __m256 w0 = ld8(u0, k + h, dt), w1 = ld8(u1, k + h, dt);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++) {
                __m256 x = reg(_mm256_loadu_ps(vr[j] + k + h));
                a[j] = _mm256_fmadd_ps(x, w0, a[j]);
                b[j] = _mm256_fmadd_ps(x, w1, b[j]);
            }
        }
    }
    for (; k + 8 <= d; k += 8) {
        __m256 w0 = ld8(u0, k, dt), w1 = ld8(u1, k, dt);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++) {
            __m256 x = reg(_mm256_loadu_ps(vr[j] + k));
            a[j] = _mm256_fmadd_ps(x, w0, a[j]);
            b[j] = _mm256_fmadd_ps(x, w1, b[j]);
        }
    }
    const void *const vv[4] = {vr[0], vr[1], vr[2], vr[3]};
    sum4_store(out, ostride, a[0], a[1], a[2], a[3], vv, ENG_DT_F32, u0, dt, k, d, nv);
    sum4_store(out + 1, ostride, b[0], b[1], b[2], b[3], vv, ENG_DT_F32, u1, dt, k, d, nv);
}

/* Input rows taken together against each weight row: 16 rows of x stay in L1/L2 while the
 * weights stream past once per tile (a batch of decode tokens reads the weights once). When
 * all the rows fit in MM_X_L1 bytes (up to MM_TILE_MAX rows) they make one tile: a server step
 * of 16 decode rows and a few prompt rows then reads the weights once, not twice (20 rows of
 * the stories15M shape, 1 thread: 11.0 ms against 14.1, 2026-12-04). Tiles of 16 otherwise:
 * splitting 24 rows as 12 + 12 took 17.0 ms against 15.1 for 16 + 8 (a tile of fewer than 16
 * rows cannot spread its prefetches, matmul_tile). */
#define MM_TILE 16
#define MM_TILE_MAX 64
#define MM_X_L1 (24 * 1024)

/* Input rows [t0, t1) in blocks of 4, then the tail [t1, t2) (fewer than 4 rows) in the same
 * pass over the weight rows [i0, i1) (type dt): the weights stream past once. */
AVX2 static inline __attribute__((always_inline)) void matmul_tile(float *out, const float *x,
                                                                   const void *w, int dt, int n,
                                                                   int d, int i0, int i1, int t0,
                                                                   int t1, int t2)
{
    const float *r[4];
    int i = i0;
    for (; i + 2 <= i1; i += 2) {
        const void *wi = cpu_at(w, (size_t)i * d, dt), *wj = cpu_at(wi, (size_t)d, dt);
        /* The pair 4 ahead is fetched while this one is summed (near the end the next one,
         * already asked for), its lines spread over the first four blocks of input rows rather
         * than all in the first: the requests trickle out instead of queuing up. 16-row steps
         * took 0.84x-0.90x the time of fetching the next pair in the first block only
         * (stories15M shape, 1 and 2 threads, 2026-12-04); a row's bits do not change. */
        const void *pf = cpu_at(wi, (size_t)d * (i + 10 <= i1 ? 8 : i + 4 <= i1 ? 2 : 0), dt);
        int blocks = (t1 - t0) / 4 + (t1 < t2), spread = blocks >= 4, bi = 0;
        for (int t = t0; t < t1; t += 4, bi++) {
            cpu_rows4(r, x, t, 4, d);
            dot2x4(out + (size_t)t * n + i, (size_t)n, r, 4, wi, wj, dt, d,
                   (spread ? bi < 4 : bi == 0) ? pf : NULL, spread ? bi : -1);
        }
        if (t1 < t2) {
            cpu_rows4(r, x, t1, t2 - t1, d);
            dot2x4(out + (size_t)t1 * n + i, (size_t)n, r, t2 - t1, wi, wj, dt, d,
                   (spread ? bi < 4 : bi == 0) ? pf : NULL, spread ? bi : -1);
        }
    }
    for (; i < i1; i++) {
        const void *wi = cpu_at(w, (size_t)i * d, dt);
        for (int t = t0; t < t1; t += 4)
            dot4(out + (size_t)t * n + i, (size_t)n, x + (size_t)t * d, ENG_DT_F32, (size_t)d, wi,
                 dt, d);
        for (int t = t1; t < t2; t++)
            dot4(out + (size_t)t * n + i, 0, wi, dt, 0, x + (size_t)t * d, ENG_DT_F32, d);
    }
}

AVX2 static inline __attribute__((always_inline)) void
matmul_typed(float *out, const float *x, const void *w, int dt, int T, int n, int d, int i0, int i1)
{
    /* Decode of one row runs 4 weight rows against it. A last group of fewer than 4 weight
     * rows goes through dot4 too (one row four times), so every element has dot4's summation
     * order whatever the batch size: a row's result does not depend on how many other rows
     * came with it. */
    if (T == 1) {
        /* The four rows of a dot4 are a quarter of the range apart, so each of its four load
         * streams runs on through consecutive rows and the hardware prefetchers follow it; four
         * adjacent rows made four short streams that restart every dot4, which they did not
         * (the classifier of the stories15M shape: 1.2 ms against 1.8 with software prefetches,
         * 2.9 without; AMD EPYC, 2026-12-04). A row's bits do not change. */
        int q = (i1 - i0) / 4, i = i0;
        for (; i < i0 + q; i++)
            dot4(out + i, (size_t)q, cpu_at(w, (size_t)i * d, dt), dt, (size_t)q * d, x, ENG_DT_F32,
                 d);
        for (i = i0 + 4 * q; i < i1; i++)
            dot4(out + i, 0, cpu_at(w, (size_t)i * d, dt), dt, 0, x, ENG_DT_F32, d);
        return;
    }
    /* Blocks of 4 input rows share each pair of weight rows' loads; the last tile takes the
     * T % 4 rows left too. A row's sums do not depend on its tile. */
    int T4 = T / 4 * 4;
    size_t fit = MM_X_L1 / ((size_t)d * sizeof(float));
    int size = T4 <= MM_TILE_MAX && (size_t)T <= fit ? T4 : MM_TILE;
    if (size == 0) size = MM_TILE; /* T < 4: one pass, the tail alone */
    for (int t0 = 0;; t0 += size) {
        int t1 = t0 + size < T4 ? t0 + size : T4, last = t1 == T4;
        matmul_tile(out, x, w, dt, n, d, i0, i1, t0, t1, last ? T : t1);
        if (last) break;
    }
}

AVX2 static void matmul_avx2(float *out, const float *x, cpu_mat w, int T, int n, int d, int i0,
                             int i1)
{
    CPU_MATMUL_PER_TYPE(matmul_typed, out, x, w, T, n, d, i0, i1);
}

const eng_kernels eng_kernels_avx2 = {
    .name = "avx2-fma",
    .matmul = matmul_avx2,
    .dot = eng_avx2_dot,
    .axpy = eng_avx2_axpy,
    .scores = eng_avx2_scores,
    .values = eng_avx2_values,
};
#else
const eng_kernels eng_kernels_avx2 = {0};
#endif
