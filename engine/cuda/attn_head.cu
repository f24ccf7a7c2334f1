/* SPDX-License-Identifier: MIT */
/* Decode attention, one block a query head (CUDA_FUSE_HEAD): the tiled kernel
 * (attn_decode.cu) gives a block a KV head and each warp a 32-key tile, so on an idle GPU a
 * warp's long serial chain (a lane scoring a key over every dim, then 32 keys summed into its
 * dims) is the step's critical path (BENCHMARKS section 44). Here 16 warps share a head's 128
 * keys, 8 a warp: a lane scores a quarter of one key's dims, so the chain a warp walks is a
 * quarter as long, and the heads' blocks fill four times as many SMs. Keys and values go
 * straight from the cache into registers (each is read once a block; no tiles, no barrier),
 * those of earlier steps before the wait; the warps' partial softmaxes merge in shared memory.
 * Longer contexts walk 128 keys at a time, or split across blocks as the tiled kernel does. */
#include "attention.cuh"

#define HU 128 /* keys a block a pass */
/* Lanes a key. On one H100 (2026-12-07, `test_cuda_kernels --bench-attn`), at 40-500 keys:
 * 4 (16 warps of 8 keys) and 2 (8 warps of 16) level, 8 (32 warps of 4) 1-2 us slower; in
 * the decode step 8 lost 3% (Qwen3-0.6B) to 4. */
#define HL 4

/* LPK lanes share a key's score (lane = key * LPK + part); a warp takes 32 / LPK keys a pass
 * and a block HU / (32 / LPK) warps. */
template <int HD, int LPK> struct head_traits {
    enum {
        HK = 32 / LPK,       /* keys a warp a pass */
        HW = HU / HK,        /* warps a block */
        QV = HD / (4 * LPK), /* 16-byte units of a lane's part of a key */
        VD = HD / 32         /* dims of the output a lane sums */
    };
};

/* VD floats at p (16-byte aligned for VD 4, 8-byte for VD 2), or zeros. */
template <int VD> __device__ __forceinline__ void ldv(float *v, const float *p, bool ok)
{
    if (VD == 4) {
        float4 t = ok ? *(const float4 *)p : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        v[0] = t.x, v[1] = t.y, v[2] = t.z, v[3] = t.w;
    } else {
        float2 t = ok ? *(const float2 *)p : make_float2(0.0f, 0.0f);
        v[0] = t.x, v[1] = t.y;
    }
}

/* A warp's HK keys from kb on, keys kb..last only (zeros past them): this lane's part of
 * key kb + lane / LPK (head_k) and its VD dims of every key's value (head_v). */
template <int HD, int LPK>
__device__ __forceinline__ void head_k(float4 *kq, const float *kc, int kb, int last, size_t kvw,
                                       int g, int lane)
{
    int key = kb + lane / LPK, qd = lane % LPK;
    const float4 *kr = (const float4 *)(kc + (size_t)key * kvw + (size_t)g * HD);
#pragma unroll
    for (int i = 0; i < head_traits<HD, LPK>::QV; i++)
        kq[i] = key <= last ? kr[qd + LPK * i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
}

template <int HD, int LPK>
__device__ __forceinline__ void head_v(float (*vv)[head_traits<HD, LPK>::VD], const float *vc,
                                       int kb, int last, size_t kvw, int g, int lane)
{
    const int VD = head_traits<HD, LPK>::VD;
#pragma unroll
    for (int j = 0; j < head_traits<HD, LPK>::HK; j++)
        ldv<VD>(vv[j], vc + (size_t)(kb + j) * kvw + (size_t)g * HD + VD * lane, kb + j <= last);
}

template <int HD, int LPK>
__global__ void __launch_bounds__(HU / (32 / LPK) * 32, 1) attn_head_kernel(eng_attn_args a)
{
    typedef head_traits<HD, LPK> T;
    const int QV = T::QV, VD = T::VD, HK = T::HK, HW = T::HW;
    __shared__ float Po[HW][HD], Pm[HW], Pl[HW]; /* each warp's acc, m, l */
    pdl_launch();
    int h = blockIdx.x, z = blockIdx.y, G = a.nq / a.nkv, g = h / G;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, qd = lane % LPK;
    int pos0, lo, hi, used;
    if (!decode_range(a, z, &pos0, &lo, &hi, &used)) return;
    size_t kvw = (size_t)a.nkv * HD;
    float4 kq[QV];
    float vv[HK][VD];
    /* The first pass's keys that earlier steps wrote, before the wait (see attn_decode.cu). */
    int kb = lo + warp * HK;
    head_k<HD, LPK>(kq, a.kc, kb, min(hi, pos0 - 1), kvw, g, lane);
    head_v<HD, LPK>(vv, a.vc, kb, min(hi, pos0 - 1), kvw, g, lane);
    pdl_wait();
    float4 q4[QV];
    const float4 *qr = (const float4 *)(a.q + (size_t)h * HD);
#pragma unroll
    for (int i = 0; i < QV; i++)
        q4[i] = qr[qd + LPK * i];
    float m = -INFINITY, l = 0.0f, acc[VD];
#pragma unroll
    for (int i = 0; i < VD; i++)
        acc[i] = 0.0f;
    for (int k0 = lo; k0 <= hi; k0 += HU) {
        kb = k0 + warp * HK;
        if (k0 == lo && pos0 >= kb && pos0 < kb + HK &&
            pos0 <= hi) { /* the new key: just written */
            const float4 *kr = (const float4 *)(a.kc + (size_t)pos0 * kvw + (size_t)g * HD);
            if (kb + lane / LPK == pos0)
#pragma unroll
                for (int i = 0; i < QV; i++)
                    kq[i] = kr[qd + LPK * i];
#pragma unroll
            for (int j = 0; j < HK; j++)
                if (kb + j == pos0)
                    ldv<VD>(vv[j], a.vc + (size_t)pos0 * kvw + (size_t)g * HD + VD * lane, true);
        }
        if (kb > hi) break; /* this warp has no keys in this pass or after it */
        int nb = kb + HU;   /* its keys of the next pass, asked for as this one's are used */
        /* This lane's part of the score: four chains, then the parts summed. */
        float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
#pragma unroll
        for (int i = 0; i < QV; i++) {
            d0 += q4[i].x * kq[i].x;
            d1 += q4[i].y * kq[i].y;
            d2 += q4[i].z * kq[i].z;
            d3 += q4[i].w * kq[i].w;
        }
        float s = (d0 + d1) + (d2 + d3);
#pragma unroll
        for (int o = 1; o < LPK; o <<= 1)
            s += __shfl_xor_sync(0xffffffffu, s, o);
        s = kb + lane / LPK <= hi ? s * a.scale : -INFINITY;
        if (nb <= hi) head_k<HD, LPK>(kq, a.kc, nb, hi, kvw, g, lane);
        float mx = s; /* over the warp's keys: lanes of one key hold the same score */
        for (int o = LPK; o < 32; o <<= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float mn = fmaxf(m, mx); /* finite: key kb is visible */
        float corr = expf(m - mn), p = expf(s - mn), ps = p;
        for (int o = LPK; o < 32; o <<= 1)
            ps += __shfl_xor_sync(0xffffffffu, ps, o);
        l = l * corr + ps;
#pragma unroll
        for (int i = 0; i < VD; i++)
            acc[i] *= corr;
#pragma unroll
        for (int j = 0; j < HK; j++) {
            float pj = __shfl_sync(0xffffffffu, p, LPK * j);
#pragma unroll
            for (int i = 0; i < VD; i++)
                acc[i] += pj * vv[j][i];
        }
        if (nb <= hi) head_v<HD, LPK>(vv, a.vc, nb, hi, kvw, g, lane);
        m = mn;
    }
#pragma unroll
    for (int i = 0; i < VD; i++)
        Po[warp][VD * lane + i] = acc[i];
    if (lane == 0) Pm[warp] = m, Pl[warp] = l;
    __syncthreads();
    /* The warps merged in key order, a dim a thread. */
    int t = threadIdx.x;
    float *out = used == 1 ? a.out + (size_t)h * HD : a.part + ((size_t)z * a.nq + h) * (HD + 2);
    if (t < HD) {
        float M = -INFINITY, L = 0.0f, o = 0.0f;
#pragma unroll
        for (int w = 0; w < HW; w++)
            M = fmaxf(M, Pm[w]);
#pragma unroll
        for (int w = 0; w < HW; w++) {
            float wt = Pm[w] == -INFINITY ? 0.0f : expf(Pm[w] - M);
            L += Pl[w] * wt;
            o += Po[w][t] * wt;
        }
        out[t] = used == 1 ? o / L : o;
        if (used != 1 && t == 0) out[HD] = M, out[HD + 1] = L;
    }
    if (used == 1 || !a.count) return; /* combine_kernel merges */
    /* The last split of this head to finish merges them all, as attn_kernel's do. */
    __shared__ int last;
    __threadfence(); /* the partials visible before the count says so */
    __syncthreads();
    if (t == 0) {
        last = atomicAdd(a.count + h, 1) == used - 1;
        if (last) a.count[h] = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    merge_row(a, (size_t)h, used, t, blockDim.x);
}

extern "C" int eng_cu_attention_head_ok(int nq, int nkv, int hd)
{
    return nkv > 0 && nq % nkv == 0 && (hd == 64 || hd == 128);
}

extern "C" int eng_cu_attention_head(const eng_attn_args *a, eng_stream st)
{
    if (a->n != 1 || a->tiles != HU / KT || !eng_cu_attention_head_ok(a->nq, a->nkv, a->hd) ||
        (((uintptr_t)a->kc | (uintptr_t)a->vc | (uintptr_t)a->q) & 15))
        return (int)cudaErrorInvalidValue;
    dim3 grid(a->nq, a->nsplit);
    if (a->hd == 64)
        eng_launch(attn_head_kernel<64, HL>, grid, HU / (32 / HL) * 32, 0, st, *a);
    else
        eng_launch(attn_head_kernel<128, HL>, grid, HU / (32 / HL) * 32, 0, st, *a);
    return eng_cu_err();
}
