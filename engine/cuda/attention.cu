/* SPDX-License-Identifier: MIT */
/* Causal attention against the KV cache, decode and prefill alike. A block serves one KV
 * head and up to 8 query rows that read it (the GQA group of each of its tokens), so every
 * K/V tile loaded into shared memory is used by all of them. Each warp owns one row and
 * keeps an online softmax (running max m, sum l, accumulator over its lanes' dims).
 * Decode has a single token: the KV range is cut into nsplit chunks (grid.z), each block
 * writes (acc, m, l) and the last of them to finish (or combine_kernel, when no counters are
 * given) merges them (flash-decoding), so a long context
 * still spreads over the GPU. With chunk 0 the chunks are sized at run time from the
 * position (the graph's grid is fixed, the context grows): a short context uses few splits
 * of at least one tile each, the rest exit at once, and combine reads only those used.
 * Long prompts take another path: causal_softmax_kernel between two batched cuBLAS products
 * (cuda_layer.c), then permute_kernel back to token-major rows. */
#include "attention.cuh"

#define MAX_WARPS 8
#define TL 8 /* K/V tile loads in flight per thread */

__global__ void attn_kernel(eng_attn_args a)
{
    extern __shared__ float sm[];
    pdl_launch();
    int hd = a.hd, ld = hd + 1, group = a.nq / a.nkv, g = blockIdx.y, z = blockIdx.z;
    int nw = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int rows = a.n * group, rfirst = blockIdx.x * nw, r = rfirst + warp;
    int rlast = min(rows - 1, rfirst + nw - 1);
    float *Ks = sm, *Vs = Ks + KT * ld, *Qs = Vs + KT * ld + warp * hd;
    int pos0 = *a.pos, active = r < rows;
    int t = r / group, hq = g * group + r % group;
    int kend = pos0 + t, kstart = a.window > 0 ? max(0, kend - a.window + 1) : 0;
    /* The keys any row of this block needs, cut to this block's split. */
    int blo = a.window > 0 ? max(0, pos0 + rfirst / group - a.window + 1) : 0;
    int bhi = pos0 + rlast / group;
    int lo = blo, hi = bhi, used = 1;
    if (a.nsplit > 1) {
        int base, chunk = split_chunk(a, pos0, &base, &used);
        if (z >= used) return; /* combine does not read this split */
        lo = max(lo, base + z * chunk);
        hi = min(hi, base + (z + 1) * chunk - 1);
    }
    size_t kvw = (size_t)a.nkv * hd;
    /* Decode: the first tile's keys before this step's position are loaded before the wait.
     * Earlier steps wrote them, and a decode step is a graph whose launch waited for all work
     * before it (early launch is used only inside that graph; the position was copied in
     * before it too), so only the new key, which the RoPE kernel just wrote, waits. */
    int early = a.n == 1 && lo <= hi;
    if (early)
        kv_tile_load<KT, TL>(Ks, Vs, a.kc, a.vc, lo, min(min(hi, lo + KT - 1), pos0 - 1), g, hd,
                             kvw, ld);
    pdl_wait();
    if (early && pos0 >= lo && pos0 <= min(hi, lo + KT - 1)) {
        __syncthreads(); /* the tile's zeros for this key are stored before it is */
        size_t off = (size_t)pos0 * kvw + (size_t)g * hd;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            Ks[(pos0 - lo) * ld + d] = a.kc[off + d];
            Vs[(pos0 - lo) * ld + d] = a.vc[off + d];
        }
    }
    if (active)
        for (int d = lane; d < hd; d += 32)
            Qs[d] = a.q[((size_t)t * a.nq + hq) * hd + d];
    float m = -INFINITY, l = 0.0f, acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++)
        acc[i] = 0.0f;
    for (int k0 = lo; k0 <= hi; k0 += KT) {
        __syncthreads(); /* the previous tile is no longer read */
        if (!early || k0 != lo) kv_tile_load<KT, TL>(Ks, Vs, a.kc, a.vc, k0, hi, g, hd, kvw, ld);
        __syncthreads();
        if (!active) continue;
        int key = k0 + lane;
        float s = -INFINITY;
        if (key <= hi && key >= kstart && key <= kend)
            s = dot_chains4(Qs, Ks + lane * ld, hd) * a.scale;
        float mn = fmaxf(m, warp_max(s));
        if (mn == -INFINITY) continue; /* no key of this tile is visible to this row */
        float corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + warp_sum(p);
#pragma unroll
        for (int i = 0; i < DPL; i++)
            acc[i] *= corr;
        for (int j = 0; j < KT; j++) {
            float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                int d = lane + 32 * i;
                if (d < hd) acc[i] += pj * Vs[j * ld + d];
            }
        }
        m = mn;
    }
    size_t row = (size_t)t * a.nq + hq;
    if (a.nsplit == 1) {
        if (!active) return;
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            if (d < hd) a.out[row * hd + d] = acc[i] / l;
        }
        return;
    }
    size_t rows_all = (size_t)a.n * a.nq;
    if (active) {
        float *pp = a.part + ((size_t)z * rows_all + row) * (hd + 2);
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            if (d < hd) pp[d] = acc[i];
        }
        if (lane == 0) {
            pp[hd] = m;
            pp[hd + 1] = l;
        }
    }
    if (!a.count) return; /* combine_kernel merges */
    /* The last of the used splits of this block's rows to finish merges them, in split order
     * whichever finished last: an integer count, no float atomics. It leaves the count 0 for
     * the next call (a graph replays this). */
    __shared__ int last;
    __threadfence(); /* the partials visible before the count says so */
    __syncthreads();
    if (threadIdx.x == 0) {
        int *c = a.count + (size_t)blockIdx.y * gridDim.x + blockIdx.x;
        last = atomicAdd(c, 1) == used - 1;
        if (last) *c = 0;
    }
    __syncthreads();
    if (!last || !active) return;
    __threadfence();
    merge_row(a, row, used, lane, 32);
}

/* One block per (token, query head) row: the splits' partial softmaxes merged. */
__global__ void combine_kernel(eng_attn_args a)
{
    pdl_launch();
    pdl_wait();
    int base, used;
    split_chunk(a, *a.pos, &base, &used);
    if (a.tiles > 0 && used == 1) return; /* attn_decode_kernel wrote out */
    merge_row(a, blockIdx.x, used, threadIdx.x, blockDim.x);
}

static int warps_for(int n, int group)
{
    int rows = n * group;
    return rows < MAX_WARPS ? rows : MAX_WARPS;
}

extern "C" size_t eng_cu_attention_smem(int n, int group, int hd)
{
    return (size_t)(2 * KT * (hd + 1) + warps_for(n, group) * hd) * sizeof(float);
}

extern "C" int eng_cu_attention_counts(int n, int nq, int nkv)
{
    int group = nq / nkv, nw = warps_for(n, group), c = (n * group + nw - 1) / nw * nkv;
    return n == 1 && c < nq ? nq : c; /* a decode count a query head (attn_head.cu) */
}

extern "C" int eng_cu_attention_init(size_t max_smem)
{
    cudaFuncSetAttribute(attn_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)max_smem);
    int e = eng_cu_err();
    return e ? e : eng_cu_attention_decode_init(max_smem);
}

extern "C" int eng_cu_attention(const eng_attn_args *a, eng_stream st)
{
    int group = a->nq / a->nkv, nw = warps_for(a->n, group), e;
    if (a->tiles > 0) {
        e = a->qhead ? eng_cu_attention_head(a, st) : eng_cu_attention_decode(a, st);
    } else {
        dim3 grid((a->n * group + nw - 1) / nw, a->nkv, a->nsplit);
        eng_launch(attn_kernel, grid, nw * 32, eng_cu_attention_smem(a->n, group, a->hd), st, *a);
        e = eng_cu_err();
    }
    if (e || a->nsplit == 1 || a->count) return e;
    int threads = a->hd < 128 ? 32 * ((a->hd + 31) / 32) : 128;
    eng_launch(combine_kernel, a->n * a->nq, threads, 0, st, *a);
    return eng_cu_err();
}

__device__ __forceinline__ float block_max(float v)
{
    __shared__ float red[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : -INFINITY;
    return warp_max(v);
}

/* One row (h, t) of s [nh, n, kv] a block: keys start..pos0+t kept, the rest zeroed. A row of
 * up to SM_PER x 256 keys is read once into registers (thread tid keeps keys start + tid + 256 k,
 * in the order of its partial sum, as the three-pass loop below adds them); longer rows take
 * that loop. Keys outside the window are only written (zeros: P V reads the whole row). */
#define SM_THREADS 256
#define SM_PER 16
__global__ void __launch_bounds__(SM_THREADS)
    causal_softmax_kernel(float *s, int pos0, int n, int kv, int window)
{
    size_t r = blockIdx.x;
    int t = (int)(r % (size_t)n), end = pos0 + t;
    int start = window > 0 ? max(0, end - window + 1) : 0;
    float *row = s + r * (size_t)kv;
    float mx = -INFINITY, sum = 0.0f;
    if (end - start < SM_PER * SM_THREADS) {
        float v[SM_PER];
#pragma unroll
        for (int k = 0; k < SM_PER; k++) {
            int j = start + threadIdx.x + k * SM_THREADS;
            v[k] = j <= end ? row[j] : -INFINITY;
            mx = fmaxf(mx, v[k]);
        }
        mx = block_max(mx);
#pragma unroll
        for (int k = 0; k < SM_PER; k++)
            if (start + (int)threadIdx.x + k * SM_THREADS <= end) {
                v[k] = expf(v[k] - mx);
                sum += v[k];
            }
        float inv = 1.0f / block_sum(sum);
#pragma unroll
        for (int k = 0; k < SM_PER; k++) {
            int j = start + threadIdx.x + k * SM_THREADS;
            if (j <= end) row[j] = v[k] * inv;
        }
        for (int j = threadIdx.x; j < start; j += SM_THREADS)
            row[j] = 0.0f;
        for (int j = end + 1 + threadIdx.x; j < kv; j += SM_THREADS)
            row[j] = 0.0f;
        return;
    }
    for (int j = start + threadIdx.x; j <= end; j += SM_THREADS)
        mx = fmaxf(mx, row[j]);
    mx = block_max(mx);
    for (int j = start + threadIdx.x; j <= end; j += SM_THREADS)
        sum += expf(row[j] - mx);
    float inv = 1.0f / block_sum(sum);
    for (int j = threadIdx.x; j < kv; j += SM_THREADS)
        row[j] = j >= start && j <= end ? expf(row[j] - mx) * inv : 0.0f;
}

extern "C" int eng_cu_causal_softmax(float *s, int pos0, int nh, int n, int kv, int window,
                                     eng_stream st)
{
    causal_softmax_kernel<<<nh * n, SM_THREADS, 0, st>>>(s, pos0, n, kv, window);
    return eng_cu_err();
}

/* o [nh, n, hd] -> out [n, nh*hd] in type dt. */
__global__ void permute_kernel(void *out, int dt, const float *o, int nh, int n, int hd)
{
    size_t total = (size_t)nh * n * hd;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / ((size_t)nh * hd), rem = i - t * nh * hd, h = rem / hd, d = rem - h * hd;
        eng_st(out, dt, i, o[(h * n + t) * hd + d]);
    }
}

extern "C" int eng_cu_heads_to_rows(void *out, int dt, const float *o, int nh, int n, int hd,
                                    eng_stream st)
{
    size_t total = (size_t)nh * n * hd;
    int blocks = (int)((total + 255) / 256);
    if (blocks > 8192) blocks = 8192;
    if (blocks < 1) blocks = 1;
    permute_kernel<<<blocks, 256, 0, st>>>(out, dt, o, nh, n, hd);
    return eng_cu_err();
}
