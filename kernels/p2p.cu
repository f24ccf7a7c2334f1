/* SPDX-License-Identifier: MIT */
// One-shot all-reduce over CUDA IPC buffers (protocol in coll_kernels.h); p2p_ref.c is
// the reference of its reduce step, bit for bit.
#include "coll_kernels.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>

namespace
{

__device__ __forceinline__ unsigned long long *flag_of(void *buf)
{
    return static_cast<unsigned long long *>(buf);
}

__device__ __forceinline__ unsigned long long load_acquire_sys(const unsigned long long *p)
{
    unsigned long long v;
    asm volatile("ld.acquire.sys.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ void store_release_sys(unsigned long long *p, unsigned long long v)
{
    asm volatile("st.release.sys.global.u64 [%0], %1;" ::"l"(p), "l"(v) : "memory");
}

__device__ __forceinline__ unsigned long long now_ns()
{
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

// Copy src into this rank's half for the next epoch; the last block to finish publishes.
__global__ void publish(coll_p2p_args a, const void *src, size_t bytes)
{
    unsigned long long e = *a.epoch + 1; // every block reads it before the last one bumps it
    char *half = static_cast<char *>(a.peer[a.rank]) + COLL_P2P_DATA_OFF + (e & 1) * a.max_bytes;
    size_t tid = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    if ((reinterpret_cast<uintptr_t>(src) & 15) == 0) {
        const uint4 *s = static_cast<const uint4 *>(src);
        uint4 *d = reinterpret_cast<uint4 *>(half);
        size_t n16 = bytes / 16;
        for (size_t i = tid; i < n16; i += stride)
            d[i] = s[i];
        for (size_t i = n16 * 16 + tid; i < bytes; i += stride)
            half[i] = static_cast<const char *>(src)[i];
    } else {
        for (size_t i = tid; i < bytes; i += stride)
            half[i] = static_cast<const char *>(src)[i];
    }
    __threadfence_system(); // this thread's stores before the block's arrival
    __syncthreads();
    if (threadIdx.x == 0) {
        unsigned prev = atomicAdd(a.arrive, 1u);
        if (prev == gridDim.x - 1) {
            __threadfence_system();
            *a.arrive = 0;
            *a.epoch = e;
            store_release_sys(flag_of(a.peer[a.rank]), e);
        }
    }
}

__device__ __forceinline__ float load(const float *p, size_t i)
{
    return __ldcg(p + i);
}
__device__ __forceinline__ float load(const __half *p, size_t i)
{
    return __half2float(__ushort_as_half(__ldcg(reinterpret_cast<const unsigned short *>(p) + i)));
}
__device__ __forceinline__ float load(const __nv_bfloat16 *p, size_t i)
{
    return __bfloat162float(
        __ushort_as_bfloat16(__ldcg(reinterpret_cast<const unsigned short *>(p) + i)));
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

// Wait for every rank's epoch-e data, then combine in rank order.
template <typename T, int OP> __global__ void reduce(coll_p2p_args a, T *dst, size_t count)
{
    __shared__ int give_up;
    unsigned long long e = *a.epoch; // published by this rank's publish, earlier on the stream
    if (threadIdx.x == 0) {
        give_up = 0;
        unsigned long long start = now_ns();
        for (int p = 0; p < a.nranks && !give_up; p++) {
            const unsigned long long *f = flag_of(a.peer[p]);
            for (unsigned spins = 0; load_acquire_sys(f) < e; spins++) {
                if ((spins & 1023) == 1023) {
                    if (*a.error) {
                        give_up = 1; // aborted, or a peer timed out earlier
                        break;
                    }
                    if (now_ns() - start > a.timeout_ns) {
                        *a.error = 1 + p;
                        __threadfence_system();
                        give_up = 1;
                        break;
                    }
                }
            }
        }
    }
    __syncthreads();
    if (give_up) return;
    const T *half[COLL_P2P_MAX_RANKS];
    for (int p = 0; p < a.nranks; p++)
        half[p] = reinterpret_cast<const T *>(static_cast<const char *>(a.peer[p]) +
                                              COLL_P2P_DATA_OFF + (e & 1) * a.max_bytes);
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += stride) {
        float acc = load(half[0], i);
        for (int p = 1; p < a.nranks; p++) {
            float v = load(half[p], i);
            // __fadd_rn/__fmul_rn: no contraction, the same rounding as the C reference.
            if (OP == COLL_KERN_SUM || OP == COLL_KERN_AVG) acc = __fadd_rn(acc, v);
            if (OP == COLL_KERN_PROD) acc = __fmul_rn(acc, v);
            if (OP == COLL_KERN_MIN) acc = v < acc ? v : acc;
            if (OP == COLL_KERN_MAX) acc = acc < v ? v : acc;
        }
        if (OP == COLL_KERN_AVG) acc = __fdiv_rn(acc, (float)a.nranks);
        store(dst, i, acc);
    }
}

int grid_for(size_t work, int threads, int cap)
{
    size_t want = (work + threads - 1) / threads;
    return (int)(want < (size_t)cap ? (want ? want : 1) : cap);
}

template <typename T>
cudaError_t launch_reduce(const coll_p2p_args &a, void *dst, size_t count, int op, cudaStream_t s)
{
    const int threads = 256;
    int blocks = grid_for(count, threads, 64);
    T *d = static_cast<T *>(dst);
    switch (op) {
    case COLL_KERN_SUM:
        reduce<T, COLL_KERN_SUM><<<blocks, threads, 0, s>>>(a, d, count);
        break;
    case COLL_KERN_PROD:
        reduce<T, COLL_KERN_PROD><<<blocks, threads, 0, s>>>(a, d, count);
        break;
    case COLL_KERN_MIN:
        reduce<T, COLL_KERN_MIN><<<blocks, threads, 0, s>>>(a, d, count);
        break;
    case COLL_KERN_MAX:
        reduce<T, COLL_KERN_MAX><<<blocks, threads, 0, s>>>(a, d, count);
        break;
    case COLL_KERN_AVG:
        reduce<T, COLL_KERN_AVG><<<blocks, threads, 0, s>>>(a, d, count);
        break;
    default:
        return cudaErrorInvalidValue;
    }
    return cudaGetLastError();
}

} // namespace

extern "C" int coll_kern_p2p_allreduce(const coll_p2p_args *a, void *dst, const void *src,
                                       size_t count, int dtype, int op, void *stream)
{
    if (!coll_kern_supports(dtype, op) || a->nranks < 1 || a->nranks > COLL_P2P_MAX_RANKS)
        return (int)cudaErrorInvalidValue;
    size_t es = dtype == COLL_KERN_F32 ? 4 : 2;
    if (count > a->max_bytes / es) return (int)cudaErrorInvalidValue;
    cudaStream_t s = static_cast<cudaStream_t>(stream);
    // Even an empty call publishes: every rank's epoch advances together.
    publish<<<grid_for(count * es / 16 + 1, 256, 32), 256, 0, s>>>(*a, src, count * es);
    cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) return (int)e;
    switch (dtype) {
    case COLL_KERN_F32:
        return (int)launch_reduce<float>(*a, dst, count, op, s);
    case COLL_KERN_F16:
        return (int)launch_reduce<__half>(*a, dst, count, op, s);
    case COLL_KERN_BF16:
        return (int)launch_reduce<__nv_bfloat16>(*a, dst, count, op, s);
    }
    return (int)cudaErrorInvalidValue;
}
