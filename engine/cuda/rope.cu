/* SPDX-License-Identifier: MIT */
/* From the merged q/k/v projection to the attention inputs, in one pass per head: bias
 * (Qwen2), per-head RMSNorm (Qwen3 q/k), RoPE in either layout, then q to its buffer and
 * k/v straight into the layer's KV cache (rope.cuh). One warp per (head, token). A prompt's block
 * holds RQ_WARPS heads of one token: blocks of one warp capped a 2048-token prompt at half the
 * multiprocessors' warps (resident blocks, not threads, ran out). Shared memory is sized to
 * the block: a decode step's blocks start early beside the product before them (PDL), and a
 * fixed 4-warp array there cost the 8B step 3.6%. */
#include "rope.cuh"

#define RQ_WARPS 4

__global__ void rope_qkv_kernel(eng_rope_args a)
{
    extern __shared__ float vs[]; /* [warps of the block][hd] */
    int wpb = blockDim.x >> 5, warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int slot = blockIdx.x * wpb + warp, t = blockIdx.y, hd = a.hd;
    int width = (a.nq + 2 * a.nkv) * hd;
    pdl_launch();
    pdl_wait();
    if (slot >= a.nq + 2 * a.nkv) return;
    int p = *a.pos + t;
    float *dst;
    if (slot < a.nq)
        dst = a.heads_first ? a.q + ((size_t)slot * a.n + t) * hd
                            : a.q + (size_t)t * a.nq * hd + (size_t)slot * hd;
    else if (slot < a.nq + a.nkv)
        dst = a.kc + (size_t)p * a.nkv * hd + (size_t)(slot - a.nq) * hd;
    else
        dst = a.vc + (size_t)p * a.nkv * hd + (size_t)(slot - a.nq - a.nkv) * hd;
    qkv_head_pass(a, a.qkv + (size_t)t * width + (size_t)slot * hd, dst, vs + warp * hd, slot, p,
                  lane);
}

extern "C" int eng_cu_rope_qkv(const eng_rope_args *a, eng_stream st)
{
    int slots = a->nq + 2 * a->nkv, wpb = a->n >= 16 ? RQ_WARPS : 1; /* decode: one warp */
    dim3 grid((slots + wpb - 1) / wpb, a->n);
    eng_launch(rope_qkv_kernel, grid, 32 * wpb, wpb * a->hd * sizeof(float), st, *a);
    return eng_cu_err();
}
