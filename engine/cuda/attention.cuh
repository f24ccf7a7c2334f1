/* SPDX-License-Identifier: MIT */
/* What the attention kernels share (attention.cu, attn_decode.cu, attn_head.cu, batch.cu): the
 * tile size, a key's score, the split plan and the merge of the splits' partial softmaxes. */
#ifndef ENG_ATTENTION_CUH
#define ENG_ATTENTION_CUH

#include "cu_common.cuh"

#define KT 32                      /* keys per shared-memory tile: one per lane */
#define DPL (ENG_CUDA_MAX_HD / 32) /* dims per lane */

/* q . k over dims d..hd-1 in four partial sums, continuing d0..d3: four independent chains
 * instead of one of hd steps. attn_decode.cu starts the sums with 16-byte loads. */
__device__ __forceinline__ float dot_chains4_from(const float *q, const float *k, int d, int hd,
                                                  float d0, float d1, float d2, float d3)
{
#pragma unroll 2
    for (; d + 3 < hd; d += 4) {
        d0 += q[d] * k[d];
        d1 += q[d + 1] * k[d + 1];
        d2 += q[d + 2] * k[d + 2];
        d3 += q[d + 3] * k[d + 3];
    }
    for (; d < hd; d++)
        d0 += q[d] * k[d];
    return (d0 + d1) + (d2 + d3);
}

__device__ __forceinline__ float dot_chains4(const float *q, const float *k, int hd)
{
    return dot_chains4_from(q, k, 0, hd, 0.0f, 0.0f, 0.0f, 0.0f);
}

/* Keys a split's length is a multiple of: what one block loads at once. */
__device__ __forceinline__ int attn_unit(const eng_attn_args &a)
{
    return a.tiles > 0 ? a.tiles * KT : KT;
}

/* The split plan: chunk length and the key where split 0 starts; *used: splits with keys. */
__device__ __forceinline__ int split_chunk(const eng_attn_args &a, int pos0, int *base, int *used)
{
    if (a.chunk > 0) {
        *base = 0;
        *used = a.nsplit;
        return a.chunk;
    }
    int unit = attn_unit(a);
    int hi = pos0 + a.n - 1, lo = a.window > 0 ? max(0, pos0 - a.window + 1) : 0;
    int span = hi - lo + 1, per = (span + a.nsplit - 1) / a.nsplit;
    int chunk = max(unit, (per + unit - 1) / unit * unit);
    *base = lo;
    *used = min(a.nsplit, (span + chunk - 1) / chunk);
    return chunk;
}

/* A decode step's keys for split z: lo..hi of the position *a.pos (the last a.window, if
 * any) and *used, the splits with keys; 0 where split z has none (no merge reads it). */
__device__ __forceinline__ int decode_range(const eng_attn_args &a, int z, int *pos0, int *lo,
                                            int *hi, int *used)
{
    int p = *a.pos;
    *pos0 = p, *lo = a.window > 0 ? max(0, p - a.window + 1) : 0, *hi = p, *used = 1;
    if (a.nsplit > 1) {
        int base, chunk = split_chunk(a, p, &base, used);
        if (z >= *used) return 0;
        *lo = max(*lo, base + z * chunk);
        *hi = min(*hi, base + (z + 1) * chunk - 1);
    }
    return 1;
}

/* One row's partial softmaxes of splits 0..used-1 merged into out, dims d = i, i + n, ...
 * Loads through L2 (__ldcg): other blocks wrote the partials during this kernel. */
__device__ __forceinline__ void merge_row(const eng_attn_args &a, size_t row, int used, int i,
                                          int n)
{
    size_t rows = (size_t)a.n * a.nq;
    int hd = a.hd;
    float M = -INFINITY;
#pragma unroll 4
    for (int z = 0; z < used; z++)
        M = fmaxf(M, __ldcg(a.part + ((size_t)z * rows + row) * (hd + 2) + hd));
    for (int d = i; d < hd; d += n) {
        float L = 0.0f, o = 0.0f;
#pragma unroll 4
        for (int z = 0; z < used; z++) {
            const float *pp = a.part + ((size_t)z * rows + row) * (hd + 2);
            float mz = __ldcg(pp + hd);
            if (mz == -INFINITY) continue;
            float w = expf(mz - M);
            L += __ldcg(pp + hd + 1) * w;
            o += __ldcg(pp + d) * w;
        }
        a.out[row * hd + d] = o / L;
    }
}

#endif
