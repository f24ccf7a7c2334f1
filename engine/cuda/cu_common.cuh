/* SPDX-License-Identifier: MIT */
/* Device helpers shared by the kernel files: stored types to f32 and back, warp and block
 * reductions. */
#ifndef ENG_CU_COMMON_CUH
#define ENG_CU_COMMON_CUH

#include "../eng_internal.h"
#include "cuda_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

__device__ __forceinline__ float eng_ld(const void *p, int dt, size_t i)
{
    if (dt == ENG_DT_BF16) return __bfloat162float(((const __nv_bfloat16 *)p)[i]);
    if (dt == ENG_DT_F16) return __half2float(((const __half *)p)[i]);
    return ((const float *)p)[i];
}

__device__ __forceinline__ void eng_st(void *p, int dt, size_t i, float v)
{
    if (dt == ENG_DT_BF16)
        ((__nv_bfloat16 *)p)[i] = __float2bfloat16(v);
    else if (dt == ENG_DT_F16)
        ((__half *)p)[i] = __float2half(v);
    else
        ((float *)p)[i] = v;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over the block (blockDim.x a multiple of 32, <= 1024); every thread gets it. */
__device__ __forceinline__ float block_sum(float v)
{
    __shared__ float red[32];
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads(); /* red may still be read by a previous call */
    if (lane == 0) red[w] = v;
    __syncthreads();
    v = lane < nw ? red[lane] : 0.0f;
    return warp_sum(v);
}

/* A fused product's input-norm scale, 1 / sqrt(sum(in[0..nss)) / nd + eps), into *scale: by
 * a block of 256 threads, the partial sums taken in matvec_fused's fixed order (matvec.cu). */
__device__ __forceinline__ void mv_norm_scale_block(float *scale, const float *in, int nss, int nd,
                                                    float eps)
{
    __shared__ float sred[8];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    float s4[4];
#pragma unroll
    for (int k = 0; k < 4; k++) {
        int i = threadIdx.x + k * 256;
        s4[k] = i < nss ? in[i] : 0.0f;
    }
    float ss = (s4[0] + s4[1]) + (s4[2] + s4[3]);
    for (int i = threadIdx.x + 1024; i < nss; i += 256)
        ss += in[i];
    ss = warp_sum(ss);
    if (lane == 0) sred[warp] = ss;
    __syncthreads();
    if (warp == 0) {
        float t = warp_sum(lane < 8 ? sred[lane] : 0.0f);
        if (lane == 0) *scale = rsqrtf(t / (float)nd + eps);
    }
    __syncthreads();
}

static inline int eng_cu_err(void)
{
    return (int)cudaGetLastError();
}

/* Keys [k0, k0 + KTILE) of KV head g (zeros past key hi) from the caches kc, vc (rows of kvw
 * floats) into the shared tiles Ks, Vs (rows of ld floats), by every thread of the block.
 * TLOADS loads of K and V per thread are in flight before the first store: a tile costs a few
 * memory latencies, not one per element. Heads of a multiple of 4 dims (all real ones) at
 * 16-byte aligned caches load 16 bytes at a time: a decode tile of 32 keys then takes one round
 * of loads per thread, not four (hd 128, 4 warps). */
template <int KTILE, int TLOADS>
__device__ __forceinline__ void kv_tile_load(float *Ks, float *Vs, const float *kc, const float *vc,
                                             int k0, int hi, int g, int hd, size_t kvw, int ld)
{
    if ((hd & 3) == 0 && (((uintptr_t)kc | (uintptr_t)vc) & 15) == 0) {
        int hd4 = hd >> 2;
        for (int i0 = threadIdx.x; i0 < KTILE * hd4; i0 += TLOADS * blockDim.x) {
            float4 kv[TLOADS], vv[TLOADS];
#pragma unroll
            for (int u = 0; u < TLOADS; u++) {
                int idx = i0 + u * blockDim.x, j = idx / hd4, d = (idx - j * hd4) * 4;
                kv[u] = vv[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (idx < KTILE * hd4 && k0 + j <= hi) {
                    size_t off = (size_t)(k0 + j) * kvw + (size_t)g * hd + d;
                    kv[u] = *(const float4 *)(kc + off);
                    vv[u] = *(const float4 *)(vc + off);
                }
            }
#pragma unroll
            for (int u = 0; u < TLOADS; u++) {
                int idx = i0 + u * blockDim.x, j = idx / hd4, d = (idx - j * hd4) * 4;
                if (idx < KTILE * hd4) {
                    float *ks = Ks + j * ld + d, *vs = Vs + j * ld + d;
                    if ((ld & 3) == 0) { /* rows of a multiple of 4 floats: 16-byte stores */
                        *(float4 *)ks = kv[u], *(float4 *)vs = vv[u];
                        continue;
                    }
                    ks[0] = kv[u].x, ks[1] = kv[u].y, ks[2] = kv[u].z, ks[3] = kv[u].w;
                    vs[0] = vv[u].x, vs[1] = vv[u].y, vs[2] = vv[u].z, vs[3] = vv[u].w;
                }
            }
        }
        return;
    }
    for (int i0 = threadIdx.x; i0 < KTILE * hd; i0 += TLOADS * blockDim.x) {
        float kv[TLOADS], vv[TLOADS];
#pragma unroll
        for (int u = 0; u < TLOADS; u++) {
            int idx = i0 + u * blockDim.x, j = idx / hd, d = idx - j * hd;
            kv[u] = vv[u] = 0.0f;
            if (idx < KTILE * hd && k0 + j <= hi) {
                size_t off = (size_t)(k0 + j) * kvw + (size_t)g * hd + d;
                kv[u] = kc[off];
                vv[u] = vc[off];
            }
        }
#pragma unroll
        for (int u = 0; u < TLOADS; u++) {
            int idx = i0 + u * blockDim.x, j = idx / hd, d = idx - j * hd;
            if (idx < KTILE * hd) {
                Ks[j * ld + d] = kv[u];
                Vs[j * ld + d] = vv[u];
            }
        }
    }
}

/* Programmatic dependent launch (sm_90+): a kernel launched with eng_launch() may start while
 * the kernel before it still runs. It must call pdl_wait() before it reads anything an earlier
 * kernel of the stream writes and before it writes anything at all; only reads of data no
 * kernel writes (weights) may come first. pdl_wait() returns once the kernel before has
 * finished, and that one's own pdl_wait() made it wait for the one before it, so the order of
 * the stream holds however early each kernel starts. The engine's kernels call pdl_launch()
 * on entry: the next kernel's blocks then take free SMs at once and a matrix-vector product
 * streams its first weights while the small kernels before it run. Both are no-ops when the
 * kernel was launched the ordinary way. */
__device__ __forceinline__ void pdl_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

__device__ __forceinline__ void pdl_launch()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Early launch only inside a graph capture (the decode step) on sm_90+: there the launch gaps
 * between the step's small kernels are what it saves. */
static inline int eng_cu_pdl(cudaStream_t st)
{
    cudaStreamCaptureStatus cap = cudaStreamCaptureStatusNone;
    if (!st || cudaStreamIsCapturing(st, &cap) != cudaSuccess ||
        cap != cudaStreamCaptureStatusActive)
        return 0;
    int dev = 0, major = 0;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev) != cudaSuccess)
        return 0;
    return major >= 9;
}

/* kernel<<<grid, block, smem, st>>>(args...), with programmatic dependent launch where
 * eng_cu_pdl() allows it. The kernel must follow pdl_wait()'s rule. */
template <typename... KArgs, typename... Args>
static inline void eng_launch(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                              cudaStream_t st, Args... args)
{
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = st;
    cfg.attrs = at;
    cfg.numAttrs = eng_cu_pdl(st) ? 1 : 0;
    cudaLaunchKernelEx(&cfg, kernel, static_cast<KArgs>(args)...);
}

#endif
