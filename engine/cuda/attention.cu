/* Causal attention against the KV cache, decode and prefill alike. A block serves one KV
 * head and up to 8 query rows that read it (the GQA group of each of its tokens), so every
 * K/V tile loaded into shared memory is used by all of them. Each warp owns one row and
 * keeps an online softmax (running max m, sum l, accumulator over its lanes' dims).
 * Decode has a single token: the KV range is cut into nsplit chunks (grid.z), each block
 * writes (acc, m, l) and combine_kernel merges them (flash-decoding), so a long context
 * still spreads over the GPU. */
#include "cu_common.cuh"

#define KT 32 /* keys per shared-memory tile: one per lane */
#define MAX_WARPS 8
#define DPL (ENG_CUDA_MAX_HD / 32) /* dims per lane */

__global__ void attn_kernel(eng_attn_args a)
{
    extern __shared__ float sm[];
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
    int lo = blo, hi = bhi;
    if (a.nsplit > 1) {
        lo = max(lo, z * a.chunk);
        hi = min(hi, (z + 1) * a.chunk - 1);
    }
    size_t kvw = (size_t)a.nkv * hd;
    if (active)
        for (int d = lane; d < hd; d += 32)
            Qs[d] = a.q[((size_t)t * a.nq + hq) * hd + d];
    float m = -INFINITY, l = 0.0f, acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++)
        acc[i] = 0.0f;
    for (int k0 = lo; k0 <= hi; k0 += KT) {
        __syncthreads(); /* the previous tile is no longer read */
        for (int idx = threadIdx.x; idx < KT * hd; idx += blockDim.x) {
            int j = idx / hd, d = idx - j * hd, key = k0 + j;
            float kv = 0.0f, vv = 0.0f;
            if (key <= hi) {
                size_t off = (size_t)key * kvw + (size_t)g * hd + d;
                kv = a.kc[off];
                vv = a.vc[off];
            }
            Ks[j * ld + d] = kv;
            Vs[j * ld + d] = vv;
        }
        __syncthreads();
        if (!active) continue;
        int key = k0 + lane;
        float s = -INFINITY;
        if (key <= hi && key >= kstart && key <= kend) {
            float dot = 0.0f;
            for (int d = 0; d < hd; d++)
                dot += Qs[d] * Ks[lane * ld + d];
            s = dot * a.scale;
        }
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
    if (!active) return;
    size_t row = (size_t)t * a.nq + hq;
    if (a.nsplit == 1) {
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            int d = lane + 32 * i;
            if (d < hd) a.out[row * hd + d] = acc[i] / l;
        }
        return;
    }
    float *pp = a.part + ((size_t)z * a.n * a.nq + row) * (hd + 2);
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

/* One block per (token, query head) row: the splits' partial softmaxes merged. */
__global__ void combine_kernel(eng_attn_args a)
{
    size_t row = blockIdx.x, rows = (size_t)a.n * a.nq;
    int hd = a.hd;
    float M = -INFINITY;
    for (int z = 0; z < a.nsplit; z++)
        M = fmaxf(M, a.part[((size_t)z * rows + row) * (hd + 2) + hd]);
    for (int d = threadIdx.x; d < hd; d += blockDim.x) {
        float L = 0.0f, o = 0.0f;
        for (int z = 0; z < a.nsplit; z++) {
            const float *pp = a.part + ((size_t)z * rows + row) * (hd + 2);
            if (pp[hd] == -INFINITY) continue;
            float w = expf(pp[hd] - M);
            L += pp[hd + 1] * w;
            o += pp[d] * w;
        }
        a.out[row * hd + d] = o / L;
    }
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

extern "C" int eng_cu_attention_init(size_t max_smem)
{
    cudaFuncSetAttribute(attn_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)max_smem);
    return eng_cu_err();
}

extern "C" int eng_cu_attention(const eng_attn_args *a, eng_stream st)
{
    int group = a->nq / a->nkv, nw = warps_for(a->n, group);
    dim3 grid((a->n * group + nw - 1) / nw, a->nkv, a->nsplit);
    attn_kernel<<<grid, nw * 32, eng_cu_attention_smem(a->n, group, a->hd), st>>>(*a);
    int e = eng_cu_err();
    if (e || a->nsplit == 1) return e;
    int threads = a->hd < 128 ? 32 * ((a->hd + 31) / 32) : 128;
    combine_kernel<<<a->n * a->nq, threads, 0, st>>>(*a);
    return eng_cu_err();
}
