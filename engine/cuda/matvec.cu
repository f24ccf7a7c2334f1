/* Batch-1 matrix-vector product, the decode step's bottleneck: every weight byte is read
 * once, so the kernel only has to stream the matrix at full bandwidth. One warp per row,
 * each lane loading 16 bytes at a time with four loads in flight (streaming, evict-first:
 * the weights are not reused within a step); x comes through L1. */
#include "cu_common.cuh"

template <int DT> struct vec_traits;
template <> struct vec_traits<ENG_DT_BF16> {
    enum { EPV = 8 };
};
template <> struct vec_traits<ENG_DT_F16> {
    enum { EPV = 8 };
};
template <> struct vec_traits<ENG_DT_F32> {
    enum { EPV = 4 };
};

/* The dot product of 16 bytes of weights with the matching EPV floats of x. */
template <int DT> __device__ __forceinline__ float dot16(uint4 w, const float *x);

__device__ __forceinline__ float bf2_dot(unsigned u, float x0, float x1)
{
    return __uint_as_float(u << 16) * x0 + __uint_as_float(u & 0xffff0000u) * x1;
}

template <> __device__ __forceinline__ float dot16<ENG_DT_BF16>(uint4 w, const float *x)
{
    float4 a = __ldg((const float4 *)x), b = __ldg((const float4 *)x + 1);
    return bf2_dot(w.x, a.x, a.y) + bf2_dot(w.y, a.z, a.w) + bf2_dot(w.z, b.x, b.y) +
           bf2_dot(w.w, b.z, b.w);
}

__device__ __forceinline__ float h2_dot(unsigned u, float x0, float x1)
{
    __half2 h = *reinterpret_cast<__half2 *>(&u);
    float2 f = __half22float2(h);
    return f.x * x0 + f.y * x1;
}

template <> __device__ __forceinline__ float dot16<ENG_DT_F16>(uint4 w, const float *x)
{
    float4 a = __ldg((const float4 *)x), b = __ldg((const float4 *)x + 1);
    return h2_dot(w.x, a.x, a.y) + h2_dot(w.y, a.z, a.w) + h2_dot(w.z, b.x, b.y) +
           h2_dot(w.w, b.z, b.w);
}

template <> __device__ __forceinline__ float dot16<ENG_DT_F32>(uint4 w, const float *x)
{
    float4 a = __ldg((const float4 *)x);
    return __uint_as_float(w.x) * a.x + __uint_as_float(w.y) * a.y + __uint_as_float(w.z) * a.z +
           __uint_as_float(w.w) * a.w;
}

template <int DT>
__global__ void __launch_bounds__(256)
    matvec_vec(float *y, const void *w, const float *x, int rows, int d)
{
    const int EPV = vec_traits<DT>::EPV;
    int row = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    int nv = d / EPV; /* 16-byte chunks in the row */
    const uint4 *wr = (const uint4 *)w + (size_t)row * nv;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int i = lane;
    for (; i + 96 < nv; i += 128) {
        uint4 v0 = __ldcs(wr + i), v1 = __ldcs(wr + i + 32), v2 = __ldcs(wr + i + 64),
              v3 = __ldcs(wr + i + 96);
        a0 += dot16<DT>(v0, x + (size_t)i * EPV);
        a1 += dot16<DT>(v1, x + (size_t)(i + 32) * EPV);
        a2 += dot16<DT>(v2, x + (size_t)(i + 64) * EPV);
        a3 += dot16<DT>(v3, x + (size_t)(i + 96) * EPV);
    }
    for (; i < nv; i += 32)
        a0 += dot16<DT>(__ldcs(wr + i), x + (size_t)i * EPV);
    float acc = warp_sum((a0 + a1) + (a2 + a3));
    if (lane == 0) y[row] = acc;
}

/* Rows that are not a whole number of 16-byte chunks (tiny models): element by element. */
__global__ void matvec_scalar(float *y, const void *w, int dt, const float *x, int rows, int d)
{
    int row = (int)((blockIdx.x * (size_t)blockDim.x + threadIdx.x) >> 5), lane = threadIdx.x & 31;
    if (row >= rows) return;
    float acc = 0.0f;
    for (int k = lane; k < d; k += 32)
        acc += eng_ld(w, dt, (size_t)row * d + k) * x[k];
    acc = warp_sum(acc);
    if (lane == 0) y[row] = acc;
}

extern "C" int eng_cu_matvec(float *y, const void *w, int dt, const float *x, int rows, int d,
                             eng_stream st)
{
    int blocks = (rows + 7) / 8; /* 8 warps of 256 threads, one row each */
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    int aligned =
        ((size_t)d * es) % 16 == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;
    if (!aligned)
        matvec_scalar<<<blocks, 256, 0, st>>>(y, w, dt, x, rows, d);
    else if (dt == ENG_DT_BF16)
        matvec_vec<ENG_DT_BF16><<<blocks, 256, 0, st>>>(y, w, x, rows, d);
    else if (dt == ENG_DT_F16)
        matvec_vec<ENG_DT_F16><<<blocks, 256, 0, st>>>(y, w, x, rows, d);
    else
        matvec_vec<ENG_DT_F32><<<blocks, 256, 0, st>>>(y, w, x, rows, d);
    return eng_cu_err();
}
