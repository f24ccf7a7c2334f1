/* SPDX-License-Identifier: MIT */
/* Decode attention, one query token: a block serves one KV head's G query heads over T 32-key
 * tiles at once with G x T warps (warp w: tile w / G, query head w % G; lanes are keys, then
 * dims) and merges the tiles' partial softmaxes in shared memory. A context of up to T tiles
 * is one block a KV head: no partials through global memory and no merge after it, where
 * attn_kernel (attention.cu) cut such a context into one-tile splits and merged them. Longer
 * contexts are cut into splits of a multiple of T tiles, merged as attn_kernel's are. Every key
 * before this step's position was written by an earlier step (see attn_kernel), so the first
 * T tiles' are loaded before the wait. On an idle GPU the kernel waits on its own instructions,
 * not on memory (BENCHMARKS section 44), so each warp issues few: rows read 16 bytes at a time
 * (dec_ld) and only the dims a lane has (DL); 27% fewer than before, the step 1-5% faster
 * (section 46). */
#include "attention.cuh"

#define DEC_WARPS 16          /* G x T at most */
#define DEC_SMEM (160u << 10) /* shared memory a block may ask for */
#define DEC_TL 4              /* tile loads in flight per thread */

/* A shared K or V row's floats: heads of a multiple of 4 dims get rows of a multiple of 4
 * floats, so the tiles are stored and a key's dims read 16 bytes at a time, and an odd number
 * of 16-byte units, so the 8 lanes of a quarter warp reading 8 keys' rows hit 32 distinct
 * banks. Other heads get hd + 1 (lanes reading keys hit distinct banks). */
__host__ __device__ __forceinline__ int dec_ld(int hd)
{
    if (hd & 3) return hd + 1;
    return (hd >> 2) & 1 ? hd + 8 : hd + 4;
}

/* T: tiles a block; DL: dims a lane holds (hd <= 32 DL), so a head of 64 or 128 dims spends
 * no instructions on dims it does not have. One block an SM is all a launch of a few blocks
 * needs; saying so keeps ptxas from capping the DL 2 instances at 64 registers and spilling. */
template <int T, int DL>
__global__ void __launch_bounds__(DEC_WARPS * 32, 1) attn_decode_kernel(eng_attn_args a)
{
    extern __shared__ float sm[];
    pdl_launch();
    const int U = T * KT;
    int hd = a.hd, ld = dec_ld(hd), G = a.nq / a.nkv, g = blockIdx.x, z = blockIdx.y;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r = warp % G, tt = warp / G;
    /* Ks, Vs [U, ld]; Qs [G, hd]; Ps [G x T warps, hd + 2]: acc, m, l of each warp */
    float *Ks = sm, *Vs = Ks + U * ld, *Qs = Vs + U * ld, *Ps = Qs + G * hd;
    int pos0, lo, hi, used;
    if (!decode_range(a, z, &pos0, &lo, &hi, &used)) return;
    size_t kvw = (size_t)a.nkv * hd;
    if (lo <= hi)
        kv_tile_load<U, DEC_TL>(Ks, Vs, a.kc, a.vc, lo, min(min(hi, lo + U - 1), pos0 - 1), g, hd,
                                kvw, ld);
    pdl_wait();
    if (pos0 >= lo && pos0 <= min(hi, lo + U - 1)) {
        __syncthreads(); /* the tiles' zeros for this key are stored before it is */
        size_t off = (size_t)pos0 * kvw + (size_t)g * hd;
        for (int d = threadIdx.x; d < hd; d += blockDim.x) {
            Ks[(pos0 - lo) * ld + d] = a.kc[off + d];
            Vs[(pos0 - lo) * ld + d] = a.vc[off + d];
        }
    }
    for (int i = threadIdx.x; i < G * hd; i += blockDim.x)
        Qs[i] = a.q[(size_t)g * G * hd + i];
    const float *qr = Qs + r * hd;
    float m = -INFINITY, l = 0.0f, acc[DL];
#pragma unroll
    for (int i = 0; i < DL; i++)
        acc[i] = 0.0f;
    for (int k0 = lo; k0 <= hi; k0 += U) {
        if (k0 != lo) {
            __syncthreads(); /* the previous tiles are no longer read */
            kv_tile_load<U, DEC_TL>(Ks, Vs, a.kc, a.vc, k0, hi, g, hd, kvw, ld);
        }
        __syncthreads();
        int kb = k0 + tt * KT; /* this warp's tile */
        if (kb > hi) continue;
        float s = -INFINITY;
        if (kb + lane <= hi) {
            /* four partial sums: four independent chains instead of one of hd steps */
            float d0 = 0.0f, d1 = 0.0f, d2 = 0.0f, d3 = 0.0f;
            const float *kr = Ks + (tt * KT + lane) * ld;
            int d = 0;
            if ((ld & 3) == 0) { /* the same sums from 16-byte loads (dec_ld) */
#pragma unroll 4
                for (; d < hd; d += 4) {
                    float4 q4 = *(const float4 *)(qr + d), k4 = *(const float4 *)(kr + d);
                    d0 += q4.x * k4.x;
                    d1 += q4.y * k4.y;
                    d2 += q4.z * k4.z;
                    d3 += q4.w * k4.w;
                }
            }
            s = dot_chains4_from(qr, kr, d, hd, d0, d1, d2, d3) * a.scale;
        }
        float mn = fmaxf(m, warp_max(s)); /* finite: key kb is visible */
        float corr = expf(m - mn), p = expf(s - mn);
        l = l * corr + warp_sum(p);
#pragma unroll
        for (int i = 0; i < DL; i++)
            acc[i] *= corr;
        const float *vt = Vs + tt * KT * ld;
        for (int j = 0; j < KT; j++) {
            float pj = __shfl_sync(0xffffffffu, p, j);
#pragma unroll
            for (int i = 0; i < DL; i++) {
                int d = lane + 32 * i;
                if (d < hd) acc[i] += pj * vt[j * ld + d];
            }
        }
        m = mn;
    }
    /* The T warps of each query head merged, in tile order, by those T warps' threads. */
    float *pw = Ps + (size_t)warp * (hd + 2);
#pragma unroll
    for (int i = 0; i < DL; i++) {
        int d = lane + 32 * i;
        if (d < hd) pw[d] = acc[i];
    }
    if (lane == 0) pw[hd] = m, pw[hd + 1] = l;
    __syncthreads();
    float M = -INFINITY, L = 0.0f, wt[T];
#pragma unroll
    for (int t = 0; t < T; t++)
        M = fmaxf(M, Ps[(size_t)(t * G + r) * (hd + 2) + hd]);
#pragma unroll
    for (int t = 0; t < T; t++) {
        const float *pt = Ps + (size_t)(t * G + r) * (hd + 2);
        wt[t] = pt[hd] == -INFINITY ? 0.0f : expf(pt[hd] - M);
        L += pt[hd + 1] * wt[t];
    }
    size_t row = (size_t)g * G + r;
    int i0 = tt * 32 + lane, nth = T * 32;
    float *out = used == 1 ? a.out + row * hd : a.part + ((size_t)z * a.nq + row) * (hd + 2);
    for (int d = i0; d < hd; d += nth) {
        float o = 0.0f;
#pragma unroll
        for (int t = 0; t < T; t++)
            o += Ps[(size_t)(t * G + r) * (hd + 2) + d] * wt[t];
        out[d] = used == 1 ? o / L : o;
    }
    if (used == 1) return;
    if (i0 == 0) out[hd] = M, out[hd + 1] = L;
    if (!a.count) return; /* combine_kernel merges */
    /* The last split to finish merges them all, as attn_kernel's do. */
    __shared__ int last;
    __threadfence(); /* the partials visible before the count says so */
    __syncthreads();
    if (threadIdx.x == 0) {
        last = atomicAdd(a.count + g, 1) == used - 1;
        if (last) a.count[g] = 0;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    merge_row(a, row, used, i0, nth);
}

extern "C" size_t eng_cu_attention_decode_smem(int group, int hd, int tiles)
{
    return (size_t)(2 * tiles * KT * dec_ld(hd) + group * hd + group * tiles * (hd + 2)) *
           sizeof(float);
}

extern "C" int eng_cu_attention_tiles(int nq, int nkv, int hd, size_t smem_max)
{
    if (nkv <= 0 || nq % nkv || hd <= 0 || hd > ENG_CUDA_MAX_HD) return 0;
    int G = nq / nkv, t = 4;
    if (smem_max > DEC_SMEM) smem_max = DEC_SMEM;
    while (t > 1 && (G * t > DEC_WARPS || eng_cu_attention_decode_smem(G, hd, t) > smem_max))
        t /= 2;
    return G * t <= DEC_WARPS && eng_cu_attention_decode_smem(G, hd, t) <= smem_max ? t : 0;
}

/* Every instance, through one table: [tiles 1, 2, 4][dims a lane 2, 4, 8]. */
typedef void (*dec_fn)(eng_attn_args);
static const dec_fn dec_kernels[3][3] = {
    {attn_decode_kernel<1, 2>, attn_decode_kernel<1, 4>, attn_decode_kernel<1, 8>},
    {attn_decode_kernel<2, 2>, attn_decode_kernel<2, 4>, attn_decode_kernel<2, 8>},
    {attn_decode_kernel<4, 2>, attn_decode_kernel<4, 4>, attn_decode_kernel<4, 8>}};

extern "C" int eng_cu_attention_decode_init(size_t max_smem)
{
    for (int t = 0; t < 3; t++)
        for (int d = 0; d < 3; d++)
            cudaFuncSetAttribute(dec_kernels[t][d], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)max_smem);
    return eng_cu_err();
}

extern "C" int eng_cu_attention_decode(const eng_attn_args *a, eng_stream st)
{
    int G = a->nq / a->nkv, T = a->tiles;
    if (a->n != 1 || (T != 1 && T != 2 && T != 4) || G * T > DEC_WARPS || a->hd > ENG_CUDA_MAX_HD)
        return (int)cudaErrorInvalidValue;
    dim3 grid(a->nkv, a->nsplit);
    size_t smem = eng_cu_attention_decode_smem(G, a->hd, T);
    int ti = T == 4 ? 2 : T - 1, di = a->hd <= 64 ? 0 : a->hd <= 128 ? 1 : 2;
    eng_launch(dec_kernels[ti][di], grid, G * T * 32, smem, st, *a);
    return eng_cu_err();
}
