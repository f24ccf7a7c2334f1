/* SPDX-License-Identifier: MIT */
/* From the merged q/k/v projection to the attention inputs, in one pass per head: bias
 * (Qwen2), per-head RMSNorm (Qwen3 q/k), RoPE in either layout, then q to its buffer and
 * k/v straight into the layer's KV cache. One warp per (head, token); the head's values sit
 * in shared memory because RoPE pairs lanes (i, i+1) or (i, i+hd/2). A prompt's block holds
 * RQ_WARPS heads of one token: blocks of one warp capped a 2048-token prompt at half the
 * multiprocessors' warps (resident blocks, not threads, ran out). Shared memory is sized to
 * the block: a decode step's blocks start early beside the product before them (PDL), and a
 * fixed 4-warp array there cost the 8B step 3.6%. */
#include "cu_common.cuh"

#define RQ_WARPS 4

__global__ void rope_qkv_kernel(eng_rope_args a)
{
    extern __shared__ float vs[]; /* [warps of the block][hd] */
    int wpb = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int slot = blockIdx.x * wpb + warp, t = blockIdx.y, hd = a.hd;
    int width = (a.nq + 2 * a.nkv) * hd;
    float *v = vs + warp * hd;
    pdl_launch();
    pdl_wait();
    if (slot >= a.nq + 2 * a.nkv) return;
    int p = *a.pos + t;
    const float *src = a.qkv + (size_t)t * width + (size_t)slot * hd;
    int is_q = slot < a.nq, is_k = !is_q && slot < a.nq + a.nkv;
    float ss = 0.0f;
#pragma unroll 8
    for (int d = lane; d < hd; d += 32) {
        float x = src[d] + (a.bias ? a.bias[(size_t)slot * hd + d] : 0.0f);
        v[d] = x;
        ss += x * x;
    }
    const float *nw = is_q ? a.q_norm : is_k ? a.k_norm : NULL;
    if (nw) {
        ss = warp_sum(ss);
        float inv = rsqrtf(ss / (float)hd + a.eps);
        for (int d = lane; d < hd; d += 32)
            v[d] = nw[d] * (inv * v[d]);
    }
    __syncwarp();
    float *dst;
    if (is_q)
        dst = a.heads_first ? a.q + ((size_t)slot * a.n + t) * hd
                            : a.q + (size_t)t * a.nq * hd + (size_t)slot * hd;
    else if (is_k)
        dst = a.kc + (size_t)p * a.nkv * hd + (size_t)(slot - a.nq) * hd;
    else
        dst = a.vc + (size_t)p * a.nkv * hd + (size_t)(slot - a.nq - a.nkv) * hd;
    int half = hd / 2;
#pragma unroll 8
    for (int d = lane; d < hd; d += 32) {
        float o = v[d];
        if (is_q || is_k) {
            int i, first;
            float x0, x1;
            if (a.interleaved) {
                i = d / 2;
                first = !(d & 1);
                x0 = v[2 * i];
                x1 = v[2 * i + 1];
            } else {
                i = d < half ? d : d - half;
                first = d < half;
                x0 = v[i];
                x1 = v[i + half];
            }
            float ang = (float)p * a.inv_freq[i], c = cosf(ang), s = sinf(ang);
            o = first ? x0 * c - x1 * s : x0 * s + x1 * c;
        }
        dst[d] = o;
    }
}

extern "C" int eng_cu_rope_qkv(const eng_rope_args *a, eng_stream st)
{
    int slots = a->nq + 2 * a->nkv, wpb = a->n >= 16 ? RQ_WARPS : 1; /* decode: one warp */
    dim3 grid((slots + wpb - 1) / wpb, a->n);
    eng_launch(rope_qkv_kernel, grid, 32 * wpb, wpb * a->hd * sizeof(float), st, *a);
    return eng_cu_err();
}
