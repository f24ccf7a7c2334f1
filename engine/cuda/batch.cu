/* SPDX-License-Identifier: MIT */
/* The kernels of a batched step over several sequences (continuous batching): token t sits at
 * position pos[t] of KV slot seq[t], so RoPE, the cache write and the attention range are per
 * token, not "first position + t" as in rope.cu and attention.cu.
 * - rope_qkv_batch: rope.cu's per-head pass (bias, q/k norm, RoPE, cache write), one warp per
 *   (head, token), at the token's own position and into its own slot.
 * - attn_batch: one block per (token, KV head, split) with one warp per query head of the GQA
 *   group; K/V tiles in shared memory are shared by the group's warps; each warp keeps an
 *   online softmax. The key range of a long context is cut into nsplit chunks (grid.z) that
 *   attn_batch_combine merges, so a few tokens with long contexts still fill the GPU.
 * - gather_rows: the rows whose logits are wanted, packed. */
#include "attention.cuh"
#include "rope.cuh"

#define MAX_WARPS 8
#define TL 8 /* K/V tile loads in flight per thread */

__global__ void rope_qkv_batch_kernel(eng_rope_args a, eng_batch_args b)
{
    __shared__ float v[ENG_CUDA_MAX_HD];
    int head = blockIdx.x, t = blockIdx.y, hd = a.hd;
    int width = (a.nq + 2 * a.nkv) * hd;
    int p = b.pos[t];
    size_t slot = (size_t)b.seq[t] * b.slot_stride;
    float *dst;
    if (head < a.nq)
        dst = a.q + (size_t)t * a.nq * hd + (size_t)head * hd;
    else if (head < a.nq + a.nkv)
        dst = a.kc + slot + (size_t)p * a.nkv * hd + (size_t)(head - a.nq) * hd;
    else
        dst = a.vc + slot + (size_t)p * a.nkv * hd + (size_t)(head - a.nq - a.nkv) * hd;
    qkv_head_pass(a, a.qkv + (size_t)t * width + (size_t)head * hd, dst, v, head, p, threadIdx.x);
}

extern "C" int eng_cu_rope_qkv_batch(const eng_rope_args *a, const eng_batch_args *b, eng_stream st)
{
    dim3 grid(a->nq + 2 * a->nkv, a->n);
    rope_qkv_batch_kernel<<<grid, 32, 0, st>>>(*a, *b);
    return eng_cu_err();
}

static __host__ __device__ int group_warps(int group)
{
    return group < MAX_WARPS ? group : MAX_WARPS;
}

/* grid (n, nkv * ceil(group / warps), nsplit); warp w serves query head g*group + gs*warps + w. */
__global__ void attn_batch_kernel(eng_attn_args a, eng_batch_args b)
{
    extern __shared__ float sm[];
    int hd = a.hd, ld = hd + 1, group = a.nq / a.nkv, nw = group_warps(group);
    int gsplit = (group + nw - 1) / nw, t = blockIdx.x, g = blockIdx.y / gsplit,
        gs = blockIdx.y % gsplit, z = blockIdx.z;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int inner = gs * nw + warp, active = inner < group, hq = g * group + inner;
    float *Ks = sm, *Vs = Ks + KT * ld, *Qs = Vs + KT * ld + warp * hd;
    int kend = b.pos[t], kstart = a.window > 0 ? max(0, kend - a.window + 1) : 0;
    int lo = kstart, hi = kend;
    if (a.nsplit > 1) {
        lo = max(lo, z * a.chunk);
        hi = min(hi, (z + 1) * a.chunk - 1);
    }
    size_t kvw = (size_t)a.nkv * hd;
    const float *kc = a.kc + (size_t)b.seq[t] * b.slot_stride,
                *vc = a.vc + (size_t)b.seq[t] * b.slot_stride;
    if (active)
        for (int d = lane; d < hd; d += 32)
            Qs[d] = a.q[((size_t)t * a.nq + hq) * hd + d];
    float m = -INFINITY, l = 0.0f, acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++)
        acc[i] = 0.0f;
    for (int k0 = lo; k0 <= hi; k0 += KT) {
        __syncthreads(); /* the previous tile is no longer read */
        kv_tile_load<KT, TL>(Ks, Vs, kc, vc, k0, hi, g, hd, kvw, ld);
        __syncthreads();
        if (!active) continue;
        int key = k0 + lane;
        float s = -INFINITY;
        if (key <= hi) s = dot_chains4(Qs, Ks + lane * ld, hd) * a.scale;
        float mn = fmaxf(m, warp_max(s));
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
    /* A split past this token's position has no keys: m stays -inf and the merge skips it. */
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
__global__ void attn_batch_combine(eng_attn_args a)
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

extern "C" size_t eng_cu_attention_batch_smem(int group, int hd)
{
    return (size_t)(2 * KT * (hd + 1) + group_warps(group) * hd) * sizeof(float);
}

extern "C" int eng_cu_attention_batch_init(size_t max_smem)
{
    cudaFuncSetAttribute(attn_batch_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                         (int)max_smem);
    return eng_cu_err();
}

extern "C" int eng_cu_attention_batch(const eng_attn_args *a, const eng_batch_args *b,
                                      eng_stream st)
{
    int group = a->nq / a->nkv, nw = group_warps(group), gsplit = (group + nw - 1) / nw;
    dim3 grid(a->n, a->nkv * gsplit, a->nsplit);
    attn_batch_kernel<<<grid, nw * 32, eng_cu_attention_batch_smem(group, a->hd), st>>>(*a, *b);
    int e = eng_cu_err();
    if (e || a->nsplit == 1) return e;
    int threads = a->hd < 128 ? 32 * ((a->hd + 31) / 32) : 128;
    attn_batch_combine<<<a->n * a->nq, threads, 0, st>>>(*a);
    return eng_cu_err();
}

__global__ void gather_rows_kernel(float *out, const float *in, const int *rows, int D)
{
    const float *src = in + (size_t)rows[blockIdx.x] * D;
    float *dst = out + (size_t)blockIdx.x * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x)
        dst[i] = src[i];
}

extern "C" int eng_cu_gather_rows(float *out, const float *in, const int *rows, int n, int D,
                                  eng_stream st)
{
    gather_rows_kernel<<<n, 256, 0, st>>>(out, in, rows, D);
    return eng_cu_err();
}
