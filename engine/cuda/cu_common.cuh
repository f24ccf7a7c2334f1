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

static inline int eng_cu_err(void)
{
    return (int)cudaGetLastError();
}

#endif
