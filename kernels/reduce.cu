/* SPDX-License-Identifier: MIT */
// GPU reduction kernels; reduce_ref.c is the reference they must match bit for bit.
#include "coll_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace
{

__device__ __forceinline__ float load(const float *p, size_t i)
{
    return p[i];
}
__device__ __forceinline__ float load(const __half *p, size_t i)
{
    return __half2float(p[i]);
}
__device__ __forceinline__ float load(const __nv_bfloat16 *p, size_t i)
{
    return __bfloat162float(p[i]);
}
__device__ __forceinline__ void store(float *p, size_t i, float v)
{
    p[i] = v;
}
__device__ __forceinline__ void store(__half *p, size_t i, float v)
{
    p[i] = __float2half_rn(v);
}
__device__ __forceinline__ void store(__nv_bfloat16 *p, size_t i, float v)
{
    p[i] = __float2bfloat16_rn(v);
}

template <typename T, int OP>
__global__ void reduce_blocks(T *dst, const T *src, int nblocks, size_t count)
{
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        float acc = load(src, i);
        for (int b = 1; b < nblocks; b++) {
            float v = load(src, (size_t)b * count + i);
            // __fadd_rn/__fmul_rn: no contraction, the same rounding as the C reference.
            if (OP == COLL_KERN_SUM || OP == COLL_KERN_AVG) acc = __fadd_rn(acc, v);
            if (OP == COLL_KERN_PROD) acc = __fmul_rn(acc, v);
            if (OP == COLL_KERN_MIN) acc = v < acc ? v : acc;
            if (OP == COLL_KERN_MAX) acc = acc < v ? v : acc;
        }
        if (OP == COLL_KERN_AVG) acc = __fdiv_rn(acc, (float)nblocks);
        store(dst, i, acc);
    }
}

template <typename T>
cudaError_t launch(void *dst, const void *src, int nblocks, size_t count, int op, cudaStream_t s)
{
    int threads = 256;
    size_t want = (count + threads - 1) / threads;
    int blocks = (int)(want < 4096 ? (want ? want : 1) : 4096);
    T *d = static_cast<T *>(dst);
    const T *x = static_cast<const T *>(src);
    switch (op) {
    case COLL_KERN_SUM:
        reduce_blocks<T, COLL_KERN_SUM><<<blocks, threads, 0, s>>>(d, x, nblocks, count);
        break;
    case COLL_KERN_PROD:
        reduce_blocks<T, COLL_KERN_PROD><<<blocks, threads, 0, s>>>(d, x, nblocks, count);
        break;
    case COLL_KERN_MIN:
        reduce_blocks<T, COLL_KERN_MIN><<<blocks, threads, 0, s>>>(d, x, nblocks, count);
        break;
    case COLL_KERN_MAX:
        reduce_blocks<T, COLL_KERN_MAX><<<blocks, threads, 0, s>>>(d, x, nblocks, count);
        break;
    case COLL_KERN_AVG:
        reduce_blocks<T, COLL_KERN_AVG><<<blocks, threads, 0, s>>>(d, x, nblocks, count);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

} // namespace

extern "C" int coll_kern_reduce(void *dst, const void *src, int nblocks, size_t count, int dtype,
                                int op, void *stream)
{
    if (!coll_kern_supports(dtype, op) || nblocks < 1) return (int)cudaErrorInvalidValue;
    if (count == 0) return 0;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    switch (dtype) {
    case COLL_KERN_F32:
        return (int)launch<float>(dst, src, nblocks, count, op, s);
    case COLL_KERN_F16:
        return (int)launch<__half>(dst, src, nblocks, count, op, s);
    case COLL_KERN_BF16:
        return (int)launch<__nv_bfloat16>(dst, src, nblocks, count, op, s);
    }
    return (int)cudaErrorInvalidValue;
}
