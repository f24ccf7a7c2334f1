/* SPDX-License-Identifier: MIT */
/* Sampling on the GPU, so that only the token id crosses to the host.
 * Greedy: the lowest id of the maximum (as the host sampler); -1 when a logit is not finite.
 * Otherwise p_i = exp((l_i - max) / T), each weighed as the integer q_i = trunc(p_i * 2^40):
 * integer sums are exact in any order (V <= 2^22, the loaders' bound, keeps them below 2^62),
 * so a row's draw is the same on every run and the reference (ref.c) can agree with it bit
 * for bit. The top-p nucleus is {p_i >= tau} for the largest tau whose mass exceeds top_p of
 * the total. tau is found by radix selection on p's bits (p <= 1, so a float's bits order
 * like its value and fit in 30 bits): three histograms of mass over 1024 buckets, each
 * refining the bucket that holds the edge. The token is then the first id, in id order,
 * whose running nucleus mass exceeds draw * nucleus mass.
 *
 * One block alone took 230 us for a 128256-token row (H100, 2026-12-05): exp over the row is
 * compute for one SM. So a row is cut into SG chunks, one block each, over five kernels (a
 * pass over the row each): the chunks' maxima; the level-0 histogram; level 1; level 2; the
 * chunks' nucleus masses, whose last block to finish draws the token. Each kernel recomputes
 * what it needs from the histograms before it (cheap: 1024 buckets), so no kernel waits on
 * another except by stream order. */
#include "cu_common.cuh"

#include <stdint.h>

#define SG 64   /* blocks (chunks) a row */
#define ST 256  /* threads a block */
#define NB 1024 /* buckets a level: 10 bits of p */

/* A row's scratch; zeroed where needed by the first kernel of each call. */
typedef struct {
    uint64_t hist[3][NB]; /* mass by bucket, levels 0, 1, 2 */
    uint64_t mass[SG];    /* each chunk's nucleus mass */
    float cmax[SG];       /* each chunk's maximum, its lowest id, whether all were finite */
    int carg[SG], cbad[SG];
    unsigned done; /* chunks finished in the last kernel */
} smp_row;

typedef struct {
    const float *lg; /* [n, V] */
    int V;
    const float *T, *P; /* [n] per row settings, or NULL: T0, P0 for all */
    float T0, P0;
    const float *draw; /* [n] */
    int *next;         /* [n] */
    smp_row *rows;     /* [n] */
} smp_args;

extern "C" size_t eng_cu_sample_scratch_bytes(int rows)
{
    return (size_t)(rows > 0 ? rows : 1) * sizeof(smp_row);
}

__device__ __forceinline__ float prob(float l, float mx, float T)
{
    return expf((l - mx) / T);
}

__device__ __forceinline__ uint64_t qmass(float p)
{
    return (uint64_t)(p * 0x1p40f); /* exact scaling; p <= 1 */
}

/* Inclusive prefix sum over the block in thread order; wtot: shared [ST / 32]. */
__device__ uint64_t block_scan(uint64_t v, uint64_t *wtot)
{
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    for (int o = 1; o < 32; o <<= 1) {
        uint64_t n = __shfl_up_sync(0xffffffffu, v, o);
        if (lane >= o) v += n;
    }
    __syncthreads(); /* wtot may still be read by a previous call */
    if (lane == 31) wtot[w] = v;
    __syncthreads();
    uint64_t before = 0;
    for (int k = 0; k < w; k++)
        before += wtot[k];
    return v + before;
}

/* The row, chunk and settings of this block. */
typedef struct {
    const float *lg;
    smp_row *row;
    int i0, i1; /* this block's chunk of ids */
    float T, P;
} smp_ctx;

__device__ smp_ctx ctx_of(const smp_args *a)
{
    smp_ctx c;
    int r = blockIdx.y, per = (a->V + SG - 1) / SG;
    c.lg = a->lg + (size_t)r * a->V;
    c.row = a->rows + r;
    c.i0 = min(a->V, (int)blockIdx.x * per);
    c.i1 = min(a->V, c.i0 + per);
    c.T = a->T ? a->T[r] : a->T0;
    c.P = a->P ? a->P[r] : a->P0;
    return c;
}

/* The row's maximum and its lowest id from the chunks' (every block of a later kernel reads
 * them all, the same way); returns whether every logit was finite. */
__device__ int row_max(const smp_row *row, float *mx, int *arg)
{
    __shared__ float sv;
    __shared__ int si, sbad;
    if (threadIdx.x < 32) {
        float bv = -INFINITY;
        int bi = 0x7fffffff, bad = 0;
        for (int k = threadIdx.x; k < SG; k += 32) {
            float v = row->cmax[k];
            int i = row->carg[k];
            bad |= row->cbad[k];
            if (v > bv || (v == bv && i < bi)) bv = v, bi = i;
        }
        for (int o = 16; o > 0; o >>= 1) {
            float ov = __shfl_xor_sync(0xffffffffu, bv, o);
            int oi = __shfl_xor_sync(0xffffffffu, bi, o);
            if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
        }
        bad = __any_sync(0xffffffffu, bad);
        if (threadIdx.x == 0) sv = bv, si = bi, sbad = bad;
    }
    __syncthreads();
    *mx = sv;
    *arg = si;
    return !sbad;
}

/* The edge bucket of hist (from the top down, the first whose running mass exceeds limit):
 * its index, and the mass of the buckets above it. limit < the histogram's total. */
__device__ void edge(const uint64_t *hist, uint64_t limit, uint32_t *bucket, uint64_t *above)
{
    __shared__ uint64_t wtot[ST / 32];
    __shared__ uint32_t sb;
    __shared__ uint64_t sa;
    /* thread t: buckets NB-1-4t down to NB-4-4t */
    uint64_t v[4], s = 0;
    for (int k = 0; k < 4; k++)
        s += v[k] = hist[NB - 1 - 4 * threadIdx.x - k];
    uint64_t run = block_scan(s, wtot) - s;
    for (int k = 0; k < 4; k++) {
        if (run <= limit && run + v[k] > limit) sb = NB - 1 - 4 * threadIdx.x - k, sa = run;
        run += v[k];
    }
    __syncthreads();
    *bucket = sb;
    *above = sa;
}

/* tau's bits chosen by levels [0, upto). */
__device__ uint32_t select_prefix(const smp_row *row, float P, int upto)
{
    __shared__ uint64_t wtot[ST / 32];
    uint64_t s = 0;
    for (int k = 0; k < 4; k++)
        s += row->hist[0][4 * threadIdx.x + k];
    uint64_t total = block_scan(s, wtot);
    __shared__ uint64_t stotal;
    if (threadIdx.x == ST - 1) stotal = total;
    __syncthreads();
    /* top_p 0: limit 0, so tau is the maximum itself (with its ties) */
    uint64_t lim = (uint64_t)((double)P * (double)stotal);
    uint32_t pre = 0;
    for (int level = 0; level < upto; level++) {
        uint32_t b;
        uint64_t above;
        edge(row->hist[level], lim, &b, &above);
        pre = (pre << 10) | b;
        lim -= above;
    }
    return pre;
}

/* 1: the chunks' maxima; zeroes the histograms and the counter. */
__global__ void __launch_bounds__(ST) smp_max_kernel(smp_args a)
{
    smp_ctx c = ctx_of(&a);
    uint64_t *h = &c.row->hist[0][0];
    for (int k = blockIdx.x * ST + threadIdx.x; k < 3 * NB; k += SG * ST)
        h[k] = 0;
    if (blockIdx.x == 0 && threadIdx.x == 0) c.row->done = 0;
    __shared__ float sv[ST / 32];
    __shared__ int si[ST / 32], sbad[ST / 32];
    float bv = -INFINITY;
    int bi = 0x7fffffff, bad = 0;
    for (int i = c.i0 + threadIdx.x; i < c.i1; i += ST) {
        float v = c.lg[i];
        bad |= !isfinite(v);
        if (v > bv) bv = v, bi = i;
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) bv = ov, bi = oi;
    }
    bad = __any_sync(0xffffffffu, bad);
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5;
    if (lane == 0) sv[w] = bv, si[w] = bi, sbad[w] = bad;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int k = 1; k < ST / 32; k++) {
            if (sv[k] > bv || (sv[k] == bv && si[k] < bi)) bv = sv[k], bi = si[k];
            bad |= sbad[k];
        }
        c.row->cmax[blockIdx.x] = bv;
        c.row->carg[blockIdx.x] = bi;
        c.row->cbad[blockIdx.x] = bad;
    }
}

/* 2-4: the histogram of level `level` over this chunk (levels after 0 only of the ids in the
 * edge buckets chosen so far). Level 0 also ends greedy rows and rows with a bad logit. */
__global__ void __launch_bounds__(ST) smp_hist_kernel(smp_args a, int level)
{
    smp_ctx c = ctx_of(&a);
    float mx;
    int arg, ok = row_max(c.row, &mx, &arg);
    if (!ok || c.T == 0.0f) {
        if (level == 0 && blockIdx.x == 0 && threadIdx.x == 0) a.next[blockIdx.y] = ok ? arg : -1;
        return;
    }
    if (c.P >= 1.0f) return; /* no nucleus to find */
    uint32_t prefix = level ? select_prefix(c.row, c.P, level) : 0;
    __shared__ uint64_t h[NB];
    for (int k = threadIdx.x; k < NB; k += ST)
        h[k] = 0;
    __syncthreads();
    int shift = 20 - 10 * level; /* this level's bits: [shift, shift + 10) */
    for (int i = c.i0 + threadIdx.x; i < c.i1; i += ST) {
        float p = prob(c.lg[i], mx, c.T);
        uint32_t b = __float_as_uint(p);
        uint64_t q = qmass(p);
        if (q && (level == 0 || (b >> (shift + 10)) == prefix))
            atomicAdd((unsigned long long *)&h[(b >> shift) & (NB - 1)], q);
    }
    __syncthreads();
    for (int k = threadIdx.x; k < NB; k += ST)
        if (h[k]) atomicAdd((unsigned long long *)&c.row->hist[level][k], h[k]);
}

/* 5: the chunks' nucleus masses; the last block to finish finds the chunk holding the target
 * and walks it. */
__global__ void __launch_bounds__(ST) smp_draw_kernel(smp_args a)
{
    smp_ctx c = ctx_of(&a);
    float mx;
    int arg;
    if (!row_max(c.row, &mx, &arg) || c.T == 0.0f) return;
    float tau = 0.0f;
    if (c.P < 1.0f) {
        tau = __uint_as_float(select_prefix(c.row, c.P, 3));
    }
    __shared__ uint64_t wtot[ST / 32];
    uint64_t m = 0;
    for (int i = c.i0 + threadIdx.x; i < c.i1; i += ST) {
        float p = prob(c.lg[i], mx, c.T);
        if (p >= tau) m += qmass(p);
    }
    m = block_scan(m, wtot);
    __shared__ int last;
    if (threadIdx.x == ST - 1) {
        c.row->mass[blockIdx.x] = m;
        __threadfence();
        last = atomicAdd(&c.row->done, 1u) == SG - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    /* The last block: the chunk holding the target, then its ids. */
    __shared__ int chunk;
    __shared__ uint64_t start, target;
    if (threadIdx.x < 32) {
        uint64_t cm[SG / 32], run = 0;
        for (int k = 0; k < SG / 32; k++) /* lane l holds chunks l * SG/32 ... */
            run += cm[k] = __ldcg(&c.row->mass[threadIdx.x * (SG / 32) + k]);
        uint64_t inc = run;
        for (int o = 1; o < 32; o <<= 1) {
            uint64_t n = __shfl_up_sync(0xffffffffu, inc, o);
            if ((threadIdx.x & 31) >= o) inc += n;
        }
        uint64_t nucleus = __shfl_sync(0xffffffffu, inc, 31);
        uint64_t t = (uint64_t)((double)a.draw[blockIdx.y] * (double)nucleus);
        if (t >= nucleus) t = nucleus - 1; /* nucleus >= 1: the maximum weighs 2^40 */
        uint64_t r = inc - run;
        for (int k = 0; k < SG / 32; k++) {
            if (r <= t && r + cm[k] > t) chunk = threadIdx.x * (SG / 32) + k, start = r;
            r += cm[k];
        }
        if (threadIdx.x == 0) target = t;
    }
    __syncthreads();
    int per = (a.V + SG - 1) / SG, j0 = min(a.V, chunk * per), j1 = min(a.V, j0 + per);
    uint64_t run = start, t = target;
    __shared__ int found;
    for (int base = j0; base < j1; base += ST) {
        int i = base + threadIdx.x;
        uint64_t q = 0;
        if (i < j1) {
            float p = prob(c.lg[i], mx, c.T);
            if (p >= tau) q = qmass(p);
        }
        uint64_t inc = block_scan(q, wtot);
        if (threadIdx.x == 0) found = 0;
        __syncthreads();
        if (q && run + inc > t && run + inc - q <= t) {
            a.next[blockIdx.y] = i;
            found = 1;
        }
        __shared__ uint64_t tot;
        if (threadIdx.x == ST - 1) tot = inc;
        __syncthreads();
        if (found) return;
        run += tot;
    }
}

static int launch(const smp_args *a, int n, int greedy, eng_stream st)
{
    dim3 grid(SG, n);
    smp_max_kernel<<<grid, ST, 0, st>>>(*a);
    smp_hist_kernel<<<grid, ST, 0, st>>>(*a, 0);
    if (!greedy) {
        smp_hist_kernel<<<grid, ST, 0, st>>>(*a, 1);
        smp_hist_kernel<<<grid, ST, 0, st>>>(*a, 2);
        smp_draw_kernel<<<grid, ST, 0, st>>>(*a);
    }
    return eng_cu_err();
}

extern "C" int eng_cu_sample_rows(const float *logits, int n, int V, const float *temperature,
                                  const float *top_p, const float *draw, int *next, void *scratch,
                                  eng_stream st)
{
    smp_args a = {logits, V, temperature, top_p, 0.0f, 1.0f, draw, next, (smp_row *)scratch};
    return launch(&a, n, 0, st);
}

extern "C" int eng_cu_sample(const float *logits, int V, float temperature, float top_p,
                             const float *draw, int *next, void *scratch, eng_stream st)
{
    smp_args a = {logits, V, NULL, NULL, temperature, top_p, draw, next, (smp_row *)scratch};
    return launch(&a, 1, temperature == 0.0f, st);
}
