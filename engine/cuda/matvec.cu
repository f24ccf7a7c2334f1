/* SPDX-License-Identifier: MIT */
/* Batch-1 matrix-vector product, the decode step's bottleneck: every weight byte is read
 * once, so the kernel only has to stream the matrix at full bandwidth. One to four warps per
 * row, each lane loading 16 bytes at a time with eight loads in flight (streaming,
 * evict-first: the weights are not reused within a step); x comes through L1, or in the
 * fused products with long rows from shared memory (matvec_fused's XSM). */
#include "cu_common.cuh"

template <int DT> struct vec_traits;
template <> struct vec_traits<ENG_DT_BF16> {
    enum { EPV = 8 };
};
template <> struct vec_traits<ENG_DT_F16> {
    enum { EPV = 8 };
};
template <> struct vec_traits<ENG_DT_F32> {
    enum { EPV = 4 };
};

__device__ __forceinline__ float bf2_dot(unsigned u, float x0, float x1)
{
    return __uint_as_float(u << 16) * x0 + __uint_as_float(u & 0xffff0000u) * x1;
}

__device__ __forceinline__ float h2_dot(unsigned u, float x0, float x1)
{
    __half2 h = *reinterpret_cast<__half2 *>(&u);
    float2 f = __half22float2(h);
    return f.x * x0 + f.y * x1;
}

/* 16 bytes of weights, streamed (evict-first), or (NA) kept out of L1 altogether (evict-first
 * in L2), so they do not push out of L1 an x too long to stage in shared memory. */
template <int NA> __device__ __forceinline__ uint4 wld(const uint4 *p)
{
    if (!NA) return __ldcs(p);
    uint4 r;
    uint64_t pol;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
        : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
        : "l"(p), "l"(pol));
    return r;
}

/* x's 16 bytes at p: through the read-only cache, or (XS) from shared memory. */
template <int XS> __device__ __forceinline__ float4 ldx4(const float *p)
{
    return XS ? *(const float4 *)p : __ldg((const float4 *)p);
}

/* The dot product of 16 bytes of weights with the matching EPV floats of x. */
template <int DT, int XS = 0> __device__ __forceinline__ float dot16(uint4 w, const float *x)
{
    if (DT == ENG_DT_F32) {
        float4 a = ldx4<XS>(x);
        return __uint_as_float(w.x) * a.x + __uint_as_float(w.y) * a.y +
               __uint_as_float(w.z) * a.z + __uint_as_float(w.w) * a.w;
    }
    float4 a = ldx4<XS>(x), b = ldx4<XS>(x + 4);
    if (DT == ENG_DT_F16)
        return h2_dot(w.x, a.x, a.y) + h2_dot(w.y, a.z, a.w) + h2_dot(w.z, b.x, b.y) +
               h2_dot(w.w, b.z, b.w);
    return bf2_dot(w.x, a.x, a.y) + bf2_dot(w.y, a.z, a.w) + bf2_dot(w.z, b.x, b.y) +
           bf2_dot(w.w, b.z, b.w);
}

/* WPR warps share a row (split-K) when the matrix has too few rows to keep enough loads in
 * flight across the GPU; a block of 8 warps covers 8 / WPR rows. Lane l of the row's warp s
 * reads chunks s*32 + l, then every 32*WPR chunks. Each lane keeps four 16-byte loads in
 * flight and issues the next four before using the current ones. The first four are issued
 * before pdl_wait(): weights do not depend on the kernels before, so inside the decode graph
 * they stream while those finish. Alone this takes more registers than four loads in flight
 * (58 against 40) and a [6144 x 4096] product took 19.0 us against 15.9, yet inside the
 * decode graph it was the faster: 833 against 745 tok/s (1B shape), 188 against 180 (8B),
 * H200, 2026-12-02. */
#define WLD(k, b)                                                                                  \
    ((b) + lane + (k)*step < nv ? wld<NAM>(wr + (b) + lane + (k)*step) : make_uint4(0, 0, 0, 0))
#define WDOT(v, k, b)                                                                              \
    ((b) + lane + (k)*step < nv ? dot16<DT, XSM>(v, x + (size_t)((b) + lane + (k)*step) * EPV)     \
                                : 0.0f)
/* One pass of a row: chunks c0..c3 of the pass at b into the sums a0..a3. */
#define MV_PASS(b)                                                                                 \
    do {                                                                                           \
        a0 += WDOT(c0, 0, b);                                                                      \
        a1 += WDOT(c1, 1, b);                                                                      \
        a2 += WDOT(c2, 2, b);                                                                      \
        a3 += WDOT(c3, 3, b);                                                                      \
    } while (0)
/* Ask for the pass of chunks at `at` (into n0..n3). */
#define MV_ASK(at)                                                                                 \
    int bn = (at);                                                                                 \
    uint4 n0 = WLD(0, bn), n1 = WLD(1, bn), n2 = WLD(2, bn), n3 = WLD(3, bn)
/* The rest of a row from b on: the next pass's chunks asked for while this one is summed.
 * Every kernel sums a row in this order, so their results are the same bits. */
#define MV_LOOP()                                                                                  \
    for (; b < nv; b += 4 * step) {                                                                \
        MV_ASK(b + 4 * step);                                                                      \
        MV_PASS(b);                                                                                \
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;                                                        \
    }
/* MV_LOOP with two passes in flight (DEEP): c4..c7 hold the pass after b's, and the pass after
 * that is asked for while b's is summed. The same sums in the same order. */
#define MV_LOOP8()                                                                                 \
    for (; b < nv; b += 4 * step) {                                                                \
        MV_ASK(b + 8 * step);                                                                      \
        MV_PASS(b);                                                                                \
        c0 = c4, c1 = c5, c2 = c6, c3 = c7, c4 = n0, c5 = n1, c6 = n2, c7 = n3;                    \
    }

template <int DT, int WPR>
__global__ void __launch_bounds__(256)
    matvec_vec(float *y, const void *w, const float *x, int rows, int d)
{
    const int EPV = vec_traits<DT>::EPV, step = 32 * WPR, XSM = 0, NAM = 0;
    __shared__ float part[8];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int row = blockIdx.x * (8 / WPR) + warp / WPR, sub = warp % WPR;
    int nv = d / EPV; /* 16-byte chunks in the row */
    const uint4 *wr = (const uint4 *)w + (size_t)(row < rows ? row : 0) * nv;
    int b = sub * 32;
    uint4 c0 = WLD(0, b), c1 = WLD(1, b), c2 = WLD(2, b), c3 = WLD(3, b);
    pdl_launch();
    pdl_wait();
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    MV_LOOP();
    float acc = warp_sum((a0 + a1) + (a2 + a3));
    if (WPR > 1) {
        if (lane == 0) part[warp] = acc;
        __syncthreads();
        if (sub != 0) return;
        for (int k = 1; k < WPR; k++)
            acc += part[warp + k];
    }
    if (lane == 0 && row < rows) y[row] = acc;
}

template <int DT>
static void matvec_launch(float *y, const void *w, const float *x, int rows, int d, int wpr,
                          eng_stream st)
{
    int per = 8 / wpr, blocks = (rows + per - 1) / per;
    if (wpr == 4)
        eng_launch(matvec_vec<DT, 4>, blocks, 256, 0, st, y, w, x, rows, d);
    else if (wpr == 2)
        eng_launch(matvec_vec<DT, 2>, blocks, 256, 0, st, y, w, x, rows, d);
    else
        eng_launch(matvec_vec<DT, 1>, blocks, 256, 0, st, y, w, x, rows, d);
}

/* Rows that are not a whole number of 16-byte chunks (tiny models): element by element. */
__global__ void matvec_scalar(float *y, const void *w, int dt, const float *x, int rows, int d)
{
    int row = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    float acc = 0.0f;
    for (int k = lane; k < d; k += 32)
        acc += eng_ld(w, dt, (size_t)row * d + k) * x[k];
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc;
}

extern "C" int eng_cu_matvec(float *y, const void *w, int dt, const float *x, int rows, int d,
                             eng_stream st)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    if (!eng_mv_vec_ok(w, (int)es, x, d)) {
        int blocks = (rows + 7) / 8; /* 8 warps of 256 threads, one row each */
        matvec_scalar<<<blocks, 256, 0, st>>>(y, w, dt, x, rows, d);
        return eng_cu_err();
    }
    /* Split rows over 2 or 4 warps only for matrices of under 1024 rows (fewer than 8 per SM of
     * an H200), as long as each lane still has four or more loads of its own: on an H200 the
     * split made the 1B and 8B shapes' matrices of 2048-6144 rows slower, 7.7 us against 6.2
     * for [3072 x 2048] and 17.6 against 15.2 for [6144 x 4096] (2026-12-02). */
    int wpr = eng_mv_wpr(rows, d, (int)es);
    if (dt == ENG_DT_BF16)
        matvec_launch<ENG_DT_BF16>(y, w, x, rows, d, wpr, st);
    else if (dt == ENG_DT_F16)
        matvec_launch<ENG_DT_F16>(y, w, x, rows, d, wpr, st);
    else
        matvec_launch<ENG_DT_F32>(y, w, x, rows, d, wpr, st);
    return eng_cu_err();
}

/* ROPE mode: the row that logical row j of the block starting at logical row b0 computes.
 * The q and k rows come in rotation pairs (2i, 2i + 1) or, in the Hugging Face layout,
 * (i, i + hd/2) of a head, as lanes 2k and 2k + 1; then the v rows in order. A block's rows
 * (8 / WPR, even) never straddle the two: (nq + nkv) hd is a multiple of 8. */
__device__ __forceinline__ int rope_row(const eng_rope_args &r, int b0, int j)
{
    int qk = (r.nq + r.nkv) * r.hd, half = r.hd / 2, lr = b0 + j;
    if (r.interleaved || lr >= qk) return lr;
    int p = lr / 2, h = p / half;
    return h * r.hd + p % half + (lr & 1) * half;
}

/* ROPE mode's epilogue, by warp 0: lane k (< R when `has`) holds row `row`'s product v; what
 * rope_qkv_kernel does to that value, in its arithmetic. */
__device__ __forceinline__ void rope_epilogue(const eng_rope_args &r, int row, int has, float v,
                                              int rows)
{
    int hd = r.hd, p = *r.pos, h = row / hd, d = row - h * hd, half = hd / 2;
    float x = v + (r.bias && has && row < rows ? r.bias[row] : 0.0f);
    float other = __shfl_xor_sync(0xffffffffu, x, 1); /* the pair's other row */
    if (!has || row >= rows) return;
    float o = x;
    if (h < r.nq + r.nkv) {
        int i = r.interleaved ? d / 2 : (d < half ? d : d - half);
        int first = r.interleaved ? !(d & 1) : d < half;
        float x0 = first ? x : other, x1 = first ? other : x;
        float ang = (float)p * r.inv_freq[i], c = cosf(ang), s = sinf(ang);
        o = first ? x0 * c - x1 * s : x0 * s + x1 * c;
    }
    size_t kvw = (size_t)r.nkv * hd;
    if (h < r.nq)
        r.q[(size_t)h * hd + d] = o;
    else if (h < r.nq + r.nkv)
        r.kc[(size_t)p * kvw + (size_t)(h - r.nq) * hd + d] = o;
    else
        r.vc[(size_t)p * kvw + (size_t)(h - r.nq - r.nkv) * hd + d] = o;
}

/* The fused products (cuda_kernels.h): the loop of matvec_vec, then an epilogue over the
 * block's rows. Warp w of a block computes logical row w / WPR; in SWIGLU mode logical rows
 * 2j and 2j + 1 of block b are gate row p and up row F + p of pair p = b * R/2 + j, so one
 * block holds both halves of its outputs and the gate/up layout stays as cuBLAS reads it. */
template <int DT, int WPR, int MODE, int WHOLE, int XSM, int NAM, int DEEP = 0>
__global__ void __launch_bounds__(256) matvec_fused(eng_mv_args a)
{
    const int EPV = vec_traits<DT>::EPV, step = 32 * WPR, R = 8 / WPR;
    __shared__ float part[8], sred[8];
    extern __shared__ float4 xs4[]; /* XSM: x [d], staged after the wait */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, j = warp / WPR, sub = warp % WPR;
    int d = a.d, nv = d / EPV, F = a.rows / 2, row, valid;
    if (MODE == ENG_MV_SWIGLU) {
        int p = blockIdx.x * (R / 2) + j / 2;
        valid = p < F;
        row = (j & 1) ? F + p : p;
    } else if (MODE == ENG_MV_ROPE) {
        row = rope_row(a.rope, blockIdx.x * R, j);
        valid = row < a.rows;
    } else {
        row = blockIdx.x * R + j;
        valid = row < a.rows;
    }
    const float *x = XSM ? (const float *)xs4 : a.x;
    const uint4 *wr = (const uint4 *)a.w + (size_t)(valid ? row : 0) * nv;
    int b = sub * 32;
    uint4 c0 = WLD(0, b), c1 = WLD(1, b), c2 = WLD(2, b), c3 = WLD(3, b), c4, c5, c6, c7;
    if (WHOLE || DEEP) { /* the row's second half (DEEP: the second pass) asked for too */
        int b4 = b + 4 * step;
        c4 = WLD(0, b4), c5 = WLD(1, b4), c6 = WLD(2, b4), c7 = WLD(3, b4);
    }
    pdl_launch();
    pdl_wait();
    /* The input norm's partials: loaded now, summed after the loop (their latency hidden). */
    float s4[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    if (a.ssq_in)
#pragma unroll
        for (int k = 0; k < 4; k++) {
            int i = threadIdx.x + k * 256;
            s4[k] = i < a.nss ? a.ssq_in[i] : 0.0f;
        }
    /* XSM: x once into shared memory; the warps then read it there, not through L1, where the
     * streamed weights keep evicting it. Only for rows the loop walks: there x is read pass
     * after pass (decode tok/s with it, one H100, 2026-12-07: Llama-3-8B 187.7 against 179.8,
     * Llama-3.2-1B 948 against 927). Rows asked for whole are ready at the wait, and the
     * staging's round trip and barrier then only add to the product's time (the 1B 846). A
     * longer x (the 8B's down) stays in L1 with the weights loaded past it (NAM): 190.5
     * against 187.8 for the 8B, where the same loads for every product cost the 1B 0.7%. */
    if (XSM) {
        const float4 *x4 = (const float4 *)a.x;
        if (DEEP) { /* registers to spare (at most two blocks an SM): every load of x in
                     * flight at once, not four an iteration as the loop below issues them */
            const int K = ENG_MV_XS_MAX / (16 * 256);
            float4 t[K];
#pragma unroll
            for (int k = 0; k < K; k++)
                if (threadIdx.x + k * 256 < d / 4) t[k] = x4[threadIdx.x + k * 256];
#pragma unroll
            for (int k = 0; k < K; k++)
                if (threadIdx.x + k * 256 < d / 4) xs4[threadIdx.x + k * 256] = t[k];
        } else {
            for (int i = threadIdx.x; i < d / 4; i += 256)
                xs4[i] = x4[i];
        }
        __syncthreads();
    }
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    if (WHOLE) { /* the loop's two passes, in its order: the same sums */
        MV_PASS(b);
        c0 = c4, c1 = c5, c2 = c6, c3 = c7;
        MV_PASS(b + 4 * step);
    } else if (DEEP) {
        MV_LOOP8();
    } else {
        MV_LOOP();
    }
    /* One barrier: each warp leaves its row's sum and its share of the norm's partials, then
     * warp 0 finishes the block (fixed order: the same scale in every block). */
    float acc = warp_sum((a0 + a1) + (a2 + a3)), ss = 0.0f;
    if (a.ssq_in) {
        ss = (s4[0] + s4[1]) + (s4[2] + s4[3]);
        for (int i = threadIdx.x + 1024; i < a.nss; i += 256)
            ss += a.ssq_in[i];
        ss = warp_sum(ss);
    }
    if (lane == 0) part[warp] = acc, sred[warp] = ss;
    __syncthreads();
    if (warp != 0) return;
    float scale = 1.0f;
    if (a.ssq_in) {
        float t = warp_sum(lane < 8 ? sred[lane] : 0.0f);
        scale = rsqrtf(t / (float)a.nd + a.eps);
    }
    float v = 0.0f; /* lane j < R: logical row j of the block */
    if (lane < R) {
        v = part[lane * WPR];
        for (int k = 1; k < WPR; k++)
            v += part[lane * WPR + k];
        v *= scale;
    }
    if (MODE == ENG_MV_SWIGLU) {
        int p = blockIdx.x * (R / 2) + lane;
        float g = __shfl_sync(0xffffffffu, v, (2 * lane) & 31),
              u = __shfl_sync(0xffffffffu, v, (2 * lane + 1) & 31);
        if (lane < R / 2 && p < F) {
            if (a.bias) {
                g += a.bias[p];
                u += a.bias[F + p];
            }
            a.out[p] = g / (1.0f + expf(-g)) * u;
        }
    } else if (MODE == ENG_MV_RESID) {
        int r = blockIdx.x * R + lane;
        float sq = 0.0f;
        if (lane < R && r < a.rows) {
            float x2 = a.res[r] + v + (a.bias ? a.bias[r] : 0.0f);
            a.res[r] = x2;
            a.out[r] = a.nw_out[r] * x2;
            sq = x2 * x2;
        }
        sq = warp_sum(sq);
        if (lane == 0) a.ssq_out[blockIdx.x] = sq;
    } else if (MODE == ENG_MV_ROPE) {
        rope_epilogue(a.rope, rope_row(a.rope, blockIdx.x * R, lane), lane < R, v, a.rows);
    } else {
        int r = blockIdx.x * R + lane;
        if (lane < R && r < a.rows) a.out[r] = v;
    }
}

template <int DT, int MODE> static void fused_launch(const eng_mv_args *a, int wpr, eng_stream st)
{
    int per = 8 / wpr, blocks = MODE == ENG_MV_SWIGLU ? (a->rows / 2 + per / 2 - 1) / (per / 2)
                                                      : (a->rows + per - 1) / per;
    int nv = a->d / vec_traits<DT>::EPV; /* 16-byte chunks a row */
    size_t xs = (size_t)a->d * sizeof(float);
    int whole = a->whole && nv <= 8 * 32, stage = a->xs && !whole && xs <= ENG_MV_XS_MAX;
    /* a grid too small to keep enough loads in flight, rows of two passes or more (a shorter
     * row leaves the second pass partly empty: Qwen3-0.6B's 6 KiB rows lost 0.9% with it) */
    int deep = blocks <= 2 * a->deep && (size_t)nv * 16 >= ENG_MV_DEEP_MIN;
    if (wpr == 4)
        eng_launch(matvec_fused<DT, 4, MODE, 0, 0, 0>, blocks, 256, 0, st, *a);
    else if (wpr == 2)
        eng_launch(matvec_fused<DT, 2, MODE, 0, 0, 0>, blocks, 256, 0, st, *a);
    else if (whole)
        eng_launch(matvec_fused<DT, 1, MODE, 1, 0, 0>, blocks, 256, 0, st, *a);
    else if (stage && deep)
        eng_launch(matvec_fused<DT, 1, MODE, 0, 1, 0, 1>, blocks, 256, xs, st, *a);
    else if (stage)
        eng_launch(matvec_fused<DT, 1, MODE, 0, 1, 0>, blocks, 256, xs, st, *a);
    else if (a->xs && deep) /* x too long to stage: the weights past L1 */
        eng_launch(matvec_fused<DT, 1, MODE, 0, 0, 1, 1>, blocks, 256, 0, st, *a);
    else if (a->xs)
        eng_launch(matvec_fused<DT, 1, MODE, 0, 0, 1>, blocks, 256, 0, st, *a);
    else if (deep)
        eng_launch(matvec_fused<DT, 1, MODE, 0, 0, 0, 1>, blocks, 256, 0, st, *a);
    else
        eng_launch(matvec_fused<DT, 1, MODE, 0, 0, 0>, blocks, 256, 0, st, *a);
}

template <int DT> static void fused_mode(const eng_mv_args *a, int wpr, eng_stream st)
{
    if (a->mode == ENG_MV_SWIGLU)
        fused_launch<DT, ENG_MV_SWIGLU>(a, wpr, st);
    else if (a->mode == ENG_MV_RESID)
        fused_launch<DT, ENG_MV_RESID>(a, wpr, st);
    else if (a->mode == ENG_MV_ROPE)
        fused_launch<DT, ENG_MV_ROPE>(a, wpr, st);
    else
        fused_launch<DT, ENG_MV_PLAIN>(a, wpr, st);
}

extern "C" int eng_cu_matvec_fused(const eng_mv_args *a, eng_stream st)
{
    int es = a->dt == ENG_DT_F32 ? 4 : 2;
    if (!eng_mv_vec_ok(a->w, es, a->x, a->d) || (a->mode == ENG_MV_SWIGLU && a->rows % 2) ||
        (a->ssq_in && a->nss <= 0) ||
        (a->mode == ENG_MV_ROPE &&
         (!eng_mv_rope_ok(&a->rope) || a->rows != (a->rope.nq + 2 * a->rope.nkv) * a->rope.hd)))
        return (int)cudaErrorInvalidValue;
    int wpr = eng_mv_wpr(a->rows, a->d, es);
    if (a->dt == ENG_DT_BF16)
        fused_mode<ENG_DT_BF16>(a, wpr, st);
    else if (a->dt == ENG_DT_F16)
        fused_mode<ENG_DT_F16>(a, wpr, st);
    else
        fused_mode<ENG_DT_F32>(a, wpr, st);
    return eng_cu_err();
}
