/* SPDX-License-Identifier: MIT */
/* One warp's pass over one head of a token's merged q/k/v row, shared by the step's kernel
 * (rope.cu) and the batched step's (batch.cu), which differ only in where the token's
 * position and its cache rows come from. */
#ifndef ENG_ROPE_CUH
#define ENG_ROPE_CUH

#include "cu_common.cuh"

/* Head `head` of src ([hd], q heads first, then k, then v): the bias, the per-head RMSNorm of
 * q and k, RoPE at position p in either layout (not v), then the head to dst ([hd]).
 * v: [hd] of this warp's shared memory, because RoPE pairs lanes (i, i+1) or (i, i+hd/2). */
__device__ __forceinline__ void qkv_head_pass(const eng_rope_args &a, const float *src, float *dst,
                                              float *v, int head, int p, int lane)
{
    int hd = a.hd, half = hd / 2;
    int is_q = head < a.nq, is_k = !is_q && head < a.nq + a.nkv;
    float ss = 0.0f;
#pragma unroll 8
    for (int d = lane; d < hd; d += 32) {
        float x = src[d] + (a.bias ? a.bias[(size_t)head * hd + d] : 0.0f);
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

#endif
