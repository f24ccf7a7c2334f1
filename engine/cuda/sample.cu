/* SPDX-License-Identifier: MIT */
/* Sampling on the GPU, so that only the token id crosses to the host. One block of 1024
 * threads; thread i owns the contiguous ids [i*C, (i+1)*C).
 * Greedy: the lowest id of the maximum (as the host sampler); -1 when a logit is not finite.
 * Otherwise p_i = exp((l_i - max) / T); the top-p nucleus is {p_i >= tau} for the largest
 * threshold tau whose mass exceeds top_p of the total (30 bisection steps instead of a sort:
 * the same set as sorting up to ties at the boundary); the token is drawn at draw * mass,
 * walking the nucleus in id order. */
#include "cu_common.cuh"

#define ST 1024

__device__ __forceinline__ float prob(const float *lg, int i, float mx, float T)
{
    return expf((lg[i] - mx) / T);
}

/* Mass of {p_i >= tau} over this thread's chunk. */
__device__ float chunk_mass(const float *lg, int i0, int i1, float mx, float T, float tau)
{
    float s = 0.0f;
    for (int i = i0; i < i1; i++) {
        float p = prob(lg, i, mx, T);
        if (p >= tau) s += p;
    }
    return s;
}

__device__ void sample_block(const float *lg, int V, float T, float top_p, const float *draw,
                             int *next)
{
    __shared__ float bvs[32];
    __shared__ int bis[32];
    __shared__ float pre[ST + 1];
    __shared__ int pick;
    int tid = threadIdx.x, lane = tid & 31, w = tid >> 5;
    float bv = -INFINITY;
    int bi = 0x7fffffff;
    int bad = 0;
#pragma unroll 4
    for (int i = tid; i < V; i += ST) {
        float v = lg[i];
        bad |= !isfinite(v);
        if (v > bv) {
            bv = v;
            bi = i;
        }
    }
    /* Non-finite logits are refused (-1), as the host sampler does. */
    if (__syncthreads_or(bad)) {
        if (tid == 0) *next = -1;
        return;
    }
    for (int o = 16; o > 0; o >>= 1) {
        float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (ov > bv || (ov == bv && oi < bi)) {
            bv = ov;
            bi = oi;
        }
    }
    if (lane == 0) {
        bvs[w] = bv;
        bis[w] = bi;
    }
    __syncthreads();
    if (tid == 0) {
        for (int k = 1; k < ST / 32; k++)
            if (bvs[k] > bvs[0] || (bvs[k] == bvs[0] && bis[k] < bis[0])) {
                bvs[0] = bvs[k];
                bis[0] = bis[k];
            }
        pick = bis[0];
    }
    __syncthreads();
    if (T == 0.0f) {
        if (tid == 0) *next = pick;
        return;
    }
    float mx = bvs[0];
    int C = (V + ST - 1) / ST, i0 = min(V, tid * C), i1 = min(V, i0 + C);
    float total = block_sum(chunk_mass(lg, i0, i1, mx, T, 0.0f));
    float tau = 0.0f;
    if (top_p < 1.0f) { /* top_p 0: the maximum alone, as the host sampler */
        float limit = top_p * total;
        if (block_sum(chunk_mass(lg, i0, i1, mx, T, 1.0f)) > limit) {
            tau = 1.0f; /* the maximum alone is enough */
        } else {
            float lo = 0.0f, hi = 1.0f;
            for (int it = 0; it < 30; it++) {
                float mid = 0.5f * (lo + hi);
                if (block_sum(chunk_mass(lg, i0, i1, mx, T, mid)) > limit)
                    lo = mid;
                else
                    hi = mid;
            }
            tau = lo;
        }
    }
    pre[tid] = chunk_mass(lg, i0, i1, mx, T, tau);
    __syncthreads();
    if (tid == 0) { /* exclusive prefix of the chunks' masses, in id order; pre[ST]: the total */
        float run = 0.0f;
        for (int k = 0; k < ST; k++) {
            float v = pre[k];
            pre[k] = run;
            run += v;
        }
        pre[ST] = run;
    }
    __syncthreads();
    float target = *draw * pre[ST];
    /* The one chunk holding the target walks its ids; rounding inside it falls back to its
     * last nucleus id, a target past the end to the last chunk with mass. */
    int mine = pre[tid] <= target && target < pre[tid + 1];
    if (tid == ST - 1 && target >= pre[ST]) mine = 1;
    if (mine) {
        float run = 0.0f, rel = target - pre[tid];
        int got = -1;
        for (int i = i0; i < i1; i++) {
            float p = prob(lg, i, mx, T);
            if (p < tau) continue;
            got = i;
            run += p;
            if (rel < run) break;
        }
        if (got < 0) /* an empty last chunk: the highest id with mass */
            for (int i = V - 1; i >= 0 && got < 0; i--)
                if (prob(lg, i, mx, T) >= tau) got = i;
        *next = got;
    }
}

__global__ void __launch_bounds__(ST)
    sample_kernel(const float *lg, int V, float T, float top_p, const float *draw, int *next)
{
    sample_block(lg, V, T, top_p, draw, next);
}

/* One block per row: row r of logits with its own settings. */
__global__ void __launch_bounds__(ST)
    sample_rows_kernel(const float *lg, int V, const float *temp, const float *top_p,
                       const float *draw, int *next)
{
    int r = blockIdx.x;
    sample_block(lg + (size_t)r * V, V, temp[r], top_p[r], draw + r, next + r);
}

extern "C" int eng_cu_sample_rows(const float *logits, int n, int V, const float *temperature,
                                  const float *top_p, const float *draw, int *next, eng_stream st)
{
    sample_rows_kernel<<<n, ST, 0, st>>>(logits, V, temperature, top_p, draw, next);
    return eng_cu_err();
}

extern "C" int eng_cu_sample(const float *logits, int V, float temperature, float top_p,
                             const float *draw, int *next, eng_stream st)
{
    sample_kernel<<<1, ST, 0, st>>>(logits, V, temperature, top_p, draw, next);
    return eng_cu_err();
}
