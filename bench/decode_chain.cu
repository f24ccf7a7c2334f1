/* SPDX-License-Identifier: MIT */
/* A probe of the batch-1 decode products' ceiling (docs/BENCHMARKS.md section 40): one token's
 * matrix-vector products of the Llama-3-8B shape (per layer q/k/v [6144 x 4096], o_proj
 * [4096 x 4096], gate/up [28672 x 4096], down [4096 x 14336]; random bf16 weights, each layer
 * its own), each product's output the next one's input, run in these forms:
 *   chain       one kernel a product in a CUDA graph, each launched with programmatic
 *               dependent launch and asking for its rows' first chunks before its wait (the
 *               engine's scheme, without the engine's epilogues);
 *   chain+small the same with a small dependent kernel between each layer's q/k/v and o_proj,
 *               where the engine's decode attention sits;
 *   chain-xs    the chain with x staged in shared memory by each block after its wait;
 *   chain-gs    the chain with a grid of as many blocks as fit on the SMs at once, the rows
 *               walked grid-strided (chain-gs-xs: and x staged in shared memory);
 *   persistent  one cooperative kernel with a grid barrier after each product, each warp
 *               asking for its next row's first chunks before the barrier; x staged in shared
 *               memory (persistent-ldg: read by __ldg; persistent-l1: by __ldca, from a
 *               buffer per product).
 * Every form sums a row as the engine's batch-1 kernel does (a warp a row, 16-byte streaming
 * loads, four in flight and the next four asked for before use), so their outputs must be
 * bitwise equal; the probe fails (exit 1) when they are not.
 *
 * Not part of the build (it needs only nvcc):
 *   nvcc -O3 -std=c++17 -arch=sm_90 -o decode_chain bench/decode_chain.cu
 *   ./decode_chain [LAYERS [8b|1b]]  (1-64, default 32: 13.96 GB of weights on the GPU; 1b:
 *                                    the Llama-3.2-1B shape's products, 16 layers 1.95 GB)
 * Prints, per form and round, the best of 6 tokens timed with events, and GB/s of weights. */
#include <cooperative_groups.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace cg = cooperative_groups;

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "decode_chain: %s: %s\n", #call, cudaGetErrorString(e_));              \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* One product: y [rows] = w [rows, d] (bf16) x [d]. */
struct Prod {
    const uint4 *w;
    const float *x;
    float *y;
    int rows, d;
};

__device__ __forceinline__ float bf2_dot(unsigned u, float a, float b)
{
    return __uint_as_float(u << 16) * a + __uint_as_float(u & 0xffff0000u) * b;
}

__device__ __forceinline__ float dot16(uint4 w, float4 a, float4 b)
{
    return bf2_dot(w.x, a.x, a.y) + bf2_dot(w.y, a.z, a.w) + bf2_dot(w.z, b.x, b.y) +
           bf2_dot(w.w, b.z, b.w);
}

/* Where x comes from. */
enum { X_LDG, X_SHARED, X_L1 };

/* Chunk c (8 elements) of x against 16 bytes of weights. X_L1 reads a buffer that other blocks
 * wrote earlier in the same kernel but nobody read before in it, so L1 holds no stale line. */
template <int XM> __device__ __forceinline__ float dot_chunk(uint4 w, const float *x, int c)
{
    const float4 *p = (const float4 *)(x + (size_t)c * 8);
    if (XM == X_SHARED) return dot16(w, p[0], p[1]);
    if (XM == X_L1) return dot16(w, __ldca(p), __ldca(p + 1));
    return dot16(w, __ldg(p), __ldg(p + 1));
}

#define LD(k, b)                                                                                   \
    ((b) + lane + (k)*32 < nv ? __ldcs(wr + (b) + lane + (k)*32) : make_uint4(0, 0, 0, 0))
#define DOT(v, k, b) ((b) + lane + (k)*32 < nv ? dot_chunk<XM>(v, x, (b) + lane + (k)*32) : 0.0f)

/* A row of nv 16-byte chunks whose first four (c0..c3) the lane already asked for: the sum,
 * in every lane. */
template <int XM>
__device__ __forceinline__ float row_sum(const uint4 *wr, int nv, const float *x, int lane,
                                         uint4 c0, uint4 c1, uint4 c2, uint4 c3)
{
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    for (int b = 0; b < nv; b += 128) {
        int bn = b + 128;
        uint4 n0 = LD(0, bn), n1 = LD(1, bn), n2 = LD(2, bn), n3 = LD(3, bn);
        a0 += DOT(c0, 0, b);
        a1 += DOT(c1, 1, b);
        a2 += DOT(c2, 2, b);
        a3 += DOT(c3, 3, b);
        c0 = n0, c1 = n1, c2 = n2, c3 = n3;
    }
    float s = (a0 + a1) + (a2 + a3);
    for (int o = 16; o; o >>= 1)
        s += __shfl_xor_sync(0xffffffffu, s, o);
    return s;
}

/* chain: one product, a warp a row, 8 rows a block. */
__global__ void __launch_bounds__(256) chain_kernel(Prod P)
{
    const int XM = X_LDG;
    int lane = threadIdx.x & 31, row = blockIdx.x * 8 + (threadIdx.x >> 5), nv = P.d / 8;
    const uint4 *wr = P.w + (size_t)(row < P.rows ? row : 0) * nv;
    uint4 c0 = LD(0, 0), c1 = LD(1, 0), c2 = LD(2, 0), c3 = LD(3, 0);
    asm volatile("griddepcontrol.launch_dependents;");
    asm volatile("griddepcontrol.wait;" ::: "memory");
    float s = row_sum<XM>(wr, nv, P.x, lane, c0, c1, c2, c3);
    if (lane == 0 && row < P.rows) P.y[row] = s;
}

/* chain-xs, chain-gs, chain-gs-xs: the chain's kernel with x staged in shared memory by each
 * block after the wait (XM == X_SHARED) and/or a grid of a few blocks an SM walking the rows
 * grid-strided (GS), each warp asking for its next row's first chunks as it finishes one. */
template <int XM, int GS> __global__ void __launch_bounds__(256) chainx_kernel(Prod P)
{
    extern __shared__ float xs[]; /* [P.d] with X_SHARED */
    int lane = threadIdx.x & 31, row = blockIdx.x * 8 + (threadIdx.x >> 5), nv = P.d / 8;
    const uint4 *wr = P.w + (size_t)(row < P.rows ? row : 0) * nv;
    uint4 c0 = LD(0, 0), c1 = LD(1, 0), c2 = LD(2, 0), c3 = LD(3, 0);
    asm volatile("griddepcontrol.launch_dependents;");
    asm volatile("griddepcontrol.wait;" ::: "memory");
    if (XM == X_SHARED) {
        for (int i = threadIdx.x * 4; i < P.d; i += 1024)
            *(float4 *)(xs + i) = __ldcg((const float4 *)(P.x + i));
        __syncthreads();
    }
    const float *x = XM == X_SHARED ? xs : P.x;
    if (!GS) {
        float s = row_sum<XM>(wr, nv, x, lane, c0, c1, c2, c3);
        if (lane == 0 && row < P.rows) P.y[row] = s;
        return;
    }
    int W = gridDim.x * 8;
    while (row < P.rows) {
        float s = row_sum<XM>(wr, nv, x, lane, c0, c1, c2, c3);
        if (lane == 0) P.y[row] = s;
        row += W;
        wr = P.w + (size_t)(row < P.rows ? row : 0) * nv;
        if (row < P.rows) c0 = LD(0, 0), c1 = LD(1, 0), c2 = LD(2, 0), c3 = LD(3, 0);
    }
}

/* chain+small: the stand-in for the attention, y = x over n floats in 16 blocks. */
__global__ void __launch_bounds__(256) small_kernel(const float *x, float *y, int n)
{
    asm volatile("griddepcontrol.launch_dependents;");
    asm volatile("griddepcontrol.wait;" ::: "memory");
    int i = blockIdx.x * 256 + threadIdx.x;
    if (i < n) y[i] = x[i];
}

/* persistent: every product in one cooperative kernel, rows grid-strided over the warps. */
template <int XM>
__global__ void __launch_bounds__(256) persistent_kernel(const Prod *prods, int np)
{
    extern __shared__ float xs[]; /* [the widest d] with X_SHARED */
    cg::grid_group grid = cg::this_grid();
    int lane = threadIdx.x & 31, W = gridDim.x * 8, gw = blockIdx.x * 8 + (threadIdx.x >> 5);
    Prod P = prods[0];
    int nv = P.d / 8, row = gw;
    const uint4 *wr = P.w + (size_t)(row < P.rows ? row : 0) * nv;
    uint4 c0 = LD(0, 0), c1 = LD(1, 0), c2 = LD(2, 0), c3 = LD(3, 0);
    for (int p = 0; p < np; p++) {
        if (XM == X_SHARED) {
            for (int i = threadIdx.x * 4; i < P.d; i += 1024)
                *(float4 *)(xs + i) = __ldcg((const float4 *)(P.x + i));
            __syncthreads();
        }
        const float *x = XM == X_SHARED ? xs : P.x;
        while (row < P.rows) {
            float s = row_sum<XM>(wr, nv, x, lane, c0, c1, c2, c3);
            if (lane == 0) P.y[row] = s;
            row += W;
            wr = P.w + (size_t)(row < P.rows ? row : 0) * nv;
            if (row < P.rows) c0 = LD(0, 0), c1 = LD(1, 0), c2 = LD(2, 0), c3 = LD(3, 0);
        }
        if (p + 1 < np) { /* the next product's first row, asked for before the barrier */
            P = prods[p + 1];
            nv = P.d / 8, row = gw;
            wr = P.w + (size_t)(row < P.rows ? row : 0) * nv;
            c0 = LD(0, 0), c1 = LD(1, 0), c2 = LD(2, 0), c3 = LD(3, 0);
        }
        __syncthreads();
        grid.sync();
    }
}

/* Uniform bf16 in [-a, a] from a hash of the index (a = sqrt(3/d): outputs keep x's scale). */
__global__ void fill_kernel(uint16_t *w, size_t n, float a, unsigned seed)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        unsigned h = (unsigned)i * 2654435761u ^ seed;
        h ^= h >> 13;
        h *= 0x5bd1e995u;
        h ^= h >> 15;
        float f = ((float)(h & 0xffffff) / 16777216.0f * 2.0f - 1.0f) * a;
        w[i] = (uint16_t)(__float_as_uint(f) >> 16);
    }
}

enum {
    F_CHAIN,
    F_CHAIN_SMALL,
    F_CHAIN_XS,
    F_CHAIN_GS,
    F_CHAIN_GS_XS,
    F_PERSISTENT,
    F_PERSISTENT_LDG,
    F_PERSISTENT_L1,
    F_COUNT
};
static const char *form_name[F_COUNT] = {"chain",          "chain+small",  "chain-xs",
                                         "chain-gs",       "chain-gs-xs",  "persistent",
                                         "persistent-ldg", "persistent-l1"};
enum { NCHAIN = 5 }; /* the forms that are graphs of one kernel a product */

int main(int argc, char **argv)
{
    char *end = NULL;
    long layers = argc > 1 ? strtol(argv[1], &end, 10) : 32;
    int small_shape = argc > 2 && !strcmp(argv[2], "1b");
    if (argc > 3 || (argc > 1 && (*end || layers < 1 || layers > 64)) ||
        (argc > 2 && !small_shape && strcmp(argv[2], "8b"))) {
        fprintf(stderr, "usage: decode_chain [LAYERS [8b|1b]]   (LAYERS: 1 to 64, default 32; "
                        "the Llama-3-8B shape, or Llama-3.2-1B's)\n");
        return 2;
    }
    const int shape8[4][2] = {{6144, 4096}, {4096, 4096}, {28672, 4096}, {4096, 14336}};
    const int shape1[4][2] = {{3072, 2048}, {2048, 2048}, {16384, 2048}, {2048, 8192}};
    const int(*shape)[2] = small_shape ? shape1 : shape8;
    const int widest = shape[2][0], dmax = shape[3][1], ny = shape[3][0], np = (int)layers * 4;
    std::vector<Prod> h(np);
    std::vector<float *> buf(np + 1), small_out(layers);
    size_t bytes = 0;
    for (int p = 0; p < np; p++)
        bytes += (size_t)shape[p % 4][0] * shape[p % 4][1] * 2;
    size_t free_b = 0, total_b = 0;
    CK(cudaMemGetInfo(&free_b, &total_b));
    if (bytes + (size_t)(1 << 28) > free_b) {
        fprintf(stderr,
                "decode_chain: %ld layers need %.2f GB of weights, the GPU has %.2f GB free\n",
                layers, bytes / 1e9, free_b / 1e9);
        return 1;
    }
    for (int p = 0; p <= np; p++)
        CK(cudaMalloc(&buf[p], widest * sizeof(float)));
    for (int l = 0; l < layers; l++)
        CK(cudaMalloc(&small_out[l], shape[1][1] * sizeof(float)));
    for (int p = 0; p < np; p++) {
        int rows = shape[p % 4][0], d = shape[p % 4][1];
        uint16_t *w;
        CK(cudaMalloc(&w, (size_t)rows * d * 2));
        fill_kernel<<<1024, 256>>>(w, (size_t)rows * d, sqrtf(3.0f / (float)d), p * 7919u + 1);
        CK(cudaGetLastError());
        h[p] = {(const uint4 *)w, buf[p], buf[p + 1], rows, d};
    }
    std::vector<float> x0(widest);
    for (int i = 0; i < widest; i++)
        x0[i] = (float)(i % 7 - 3) * 0.25f;
    Prod *dprods;
    CK(cudaMalloc(&dprods, np * sizeof(Prod)));
    CK(cudaMemcpy(dprods, h.data(), np * sizeof(Prod), cudaMemcpyHostToDevice));
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));

    int nsm = 0;
    CK(cudaDeviceGetAttribute(&nsm, cudaDevAttrMultiProcessorCount, 0));
    void *ck[NCHAIN] = {(void *)chain_kernel, (void *)chain_kernel,
                        (void *)chainx_kernel<X_SHARED, 0>, (void *)chainx_kernel<X_LDG, 1>,
                        (void *)chainx_kernel<X_SHARED, 1>};
    for (int f = 2; f < NCHAIN; f++)
        CK(cudaFuncSetAttribute(ck[f], cudaFuncAttributeMaxDynamicSharedMemorySize,
                                dmax * (int)sizeof(float)));
    /* the chains, captured once each */
    cudaGraphExec_t chain[NCHAIN];
    for (int f = 0; f < NCHAIN; f++) {
        int small = f == F_CHAIN_SMALL;
        cudaGraph_t g;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
        for (int p = 0; p < np; p++) {
            cudaLaunchAttribute at[1];
            at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
            at[0].val.programmaticStreamSerializationAllowed = 1;
            cudaLaunchConfig_t cfg = {};
            cfg.blockDim = dim3(256);
            cfg.stream = st;
            cfg.attrs = at;
            cfg.numAttrs = 1;
            Prod P = h[p];
            if (small && p % 4 == 1) { /* before o_proj, which then reads the copy */
                cfg.gridDim = dim3(16);
                CK(cudaLaunchKernelEx(&cfg, small_kernel, (const float *)P.x, small_out[p / 4],
                                      shape[1][1]));
                P.x = small_out[p / 4];
            }
            cfg.gridDim = dim3((P.rows + 7) / 8);
            int xsf = f == F_CHAIN_XS || f == F_CHAIN_GS_XS;
            cfg.dynamicSmemBytes = xsf ? P.d * sizeof(float) : 0;
            if (f == F_CHAIN_GS || f == F_CHAIN_GS_XS) {
                int per = 0;
                CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per, ck[f], 256,
                                                                 cfg.dynamicSmemBytes));
                if ((unsigned)(nsm * per) < cfg.gridDim.x) cfg.gridDim = dim3(nsm * per);
            }
            void *args[] = {&P};
            cudaLaunchConfig_t c2 = cfg;
            CK(cudaLaunchKernelExC(&c2, ck[f], args));
        }
        CK(cudaStreamEndCapture(st, &g));
        CK(cudaGraphInstantiate(&chain[f], g, 0));
        CK(cudaGraphDestroy(g));
    }
    /* the persistent grids: as many blocks as fit on every SM at once */
    int smem = dmax * (int)sizeof(float), per_sh = 0, per_l1 = 0, per_ldg = 0;
    CK(cudaFuncSetAttribute(persistent_kernel<X_SHARED>,
                            cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sh, persistent_kernel<X_SHARED>, 256,
                                                     smem));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_l1, persistent_kernel<X_L1>, 256, 0));
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_ldg, persistent_kernel<X_LDG>, 256, 0));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    printf("%s: %ld layers, %d products, %.2f GB of weights; persistent grids %d x %d blocks "
           "(x in shared memory), %d x %d (x through L1), %d x %d (x by __ldg)\n",
           prop.name, layers, np, bytes / 1e9, nsm, per_sh, nsm, per_l1, nsm, per_ldg);

    std::vector<float> out[F_COUNT];
    for (int round = 0; round < 3; round++) {
        for (int f = 0; f < F_COUNT; f++) {
            float best = 1e30f;
            for (int it = 0; it < 6; it++) {
                CK(cudaMemcpyAsync(buf[0], x0.data(), widest * sizeof(float),
                                   cudaMemcpyHostToDevice, st));
                CK(cudaEventRecord(e0, st));
                void *args[] = {&dprods, (void *)&np};
                if (f < NCHAIN)
                    CK(cudaGraphLaunch(chain[f], st));
                else if (f == F_PERSISTENT_LDG)
                    CK(cudaLaunchCooperativeKernel((void *)persistent_kernel<X_LDG>, nsm * per_ldg,
                                                   256, args, 0, st));
                else if (f == F_PERSISTENT)
                    CK(cudaLaunchCooperativeKernel((void *)persistent_kernel<X_SHARED>,
                                                   nsm * per_sh, 256, args, smem, st));
                else
                    CK(cudaLaunchCooperativeKernel((void *)persistent_kernel<X_L1>, nsm * per_l1,
                                                   256, args, 0, st));
                CK(cudaEventRecord(e1, st));
                CK(cudaStreamSynchronize(st));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                if (ms < best) best = ms;
            }
            out[f].resize(ny);
            CK(cudaMemcpy(out[f].data(), buf[np], ny * sizeof(float), cudaMemcpyDeviceToHost));
            printf("round %d %-14s %8.1f us a token (best of 6) %6.0f GB/s\n", round, form_name[f],
                   best * 1000.0f, bytes / (best * 1e-3) / 1e9);
        }
    }
    int bad = 0;
    for (int f = 1; f < F_COUNT; f++)
        if (memcmp(out[f].data(), out[0].data(), ny * sizeof(float))) {
            fprintf(stderr, "decode_chain: %s's output differs from chain's\n", form_name[f]);
            bad = 1;
        }
    if (!bad) printf("outputs bitwise equal in every form (y[0] = %g)\n", out[0][0]);
    return bad;
}
