/* SPDX-License-Identifier: MIT */
/* On a GPU: the reduction kernels against their plain-C reference, bit for bit, and the
 * local provider on device memory. Without CUDA or a GPU: skipped (exit 77). */
#include "coll_private.h"
#include "coll_kernels.h"
#include "../check.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>

static uint32_t rng = 12345;
static float frand(void)
{
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xffff) / 4096.0f - 8.0f;
}

static void check_kernels(void)
{
    static const int types[] = {COLL_KERN_F32, COLL_KERN_F16, COLL_KERN_BF16};
    const size_t count = 100003; /* not a multiple of anything */
    for (int nb = 1; nb <= 4; nb++)
        for (int ti = 0; ti < 3; ti++)
            for (int op = COLL_KERN_SUM; op <= COLL_KERN_AVG; op++) {
                int t = types[ti];
                size_t es = t == COLL_KERN_F32 ? 4 : 2;
                size_t n = count * (size_t)nb;
                unsigned char *src = malloc(n * es), *want = malloc(count * es),
                              *got = malloc(count * es);
                for (size_t i = 0; i < n; i++) {
                    float v = frand();
                    if (t == COLL_KERN_F32)
                        ((float *)src)[i] = v;
                    else
                        ((uint16_t *)src)[i] =
                            t == COLL_KERN_F16 ? coll_float_to_half(v) : coll_float_to_bf16(v);
                }
                coll_kern_reduce_ref(want, src, nb, count, t, op);
                void *dsrc, *ddst;
                CHECK(cudaMalloc(&dsrc, n * es) == cudaSuccess);
                CHECK(cudaMalloc(&ddst, count * es) == cudaSuccess);
                CHECK(cudaMemcpy(dsrc, src, n * es, cudaMemcpyHostToDevice) == cudaSuccess);
                CHECK(coll_kern_reduce(ddst, dsrc, nb, count, t, op, NULL) == 0);
                CHECK(cudaMemcpy(got, ddst, count * es, cudaMemcpyDeviceToHost) == cudaSuccess);
                if (memcmp(want, got, count * es)) {
                    fprintf(stderr, "kernel differs from reference: type %d op %d blocks %d\n", t,
                            op, nb);
                    test_failures++;
                }
                cudaFree(dsrc);
                cudaFree(ddst);
                free(src);
                free(want);
                free(got);
            }
}

/* The one-shot kernels with n ranks faked in this process: each rank's buffer, epoch and
 * stream its own, all on this GPU. Three epochs per case (both halves and a reuse), every
 * rank's result equal to the reference bit for bit. */
static void check_p2p_kernel(void)
{
    static const int types[] = {COLL_KERN_F32, COLL_KERN_F16, COLL_KERN_BF16};
    static const size_t counts[] = {1, 3, 8, 255, 4096, 8191, 65536};
    const size_t maxb = 65536 * 4;
    int *herr = NULL, *herr_dev = NULL;
    CHECK(cudaHostAlloc((void **)&herr, sizeof(int), cudaHostAllocMapped) == cudaSuccess);
    CHECK(cudaHostGetDevicePointer((void **)&herr_dev, herr, 0) == cudaSuccess);
    *herr = 0;
    for (int n = 2; n <= COLL_P2P_MAX_RANKS; n *= 2) {
        void *buf[COLL_P2P_MAX_RANKS], *in[COLL_P2P_MAX_RANKS], *out[COLL_P2P_MAX_RANKS];
        unsigned long long *st[COLL_P2P_MAX_RANKS];
        cudaStream_t stream[COLL_P2P_MAX_RANKS];
        coll_p2p_args a[COLL_P2P_MAX_RANKS];
        memset(a, 0, sizeof(a));
        for (int r = 0; r < n; r++) {
            CHECK(cudaMalloc(&buf[r], coll_p2p_buffer_bytes(maxb)) == cudaSuccess);
            CHECK(cudaMemset(buf[r], 0, coll_p2p_buffer_bytes(maxb)) == cudaSuccess);
            CHECK(cudaMalloc(&in[r], maxb) == cudaSuccess);
            CHECK(cudaMalloc(&out[r], maxb) == cudaSuccess);
            CHECK(cudaMalloc((void **)&st[r], 16) == cudaSuccess);
            CHECK(cudaMemset(st[r], 0, 16) == cudaSuccess);
            CHECK(cudaStreamCreateWithFlags(&stream[r], cudaStreamNonBlocking) == cudaSuccess);
        }
        for (int r = 0; r < n; r++) {
            for (int p = 0; p < n; p++)
                a[r].peer[p] = buf[p];
            a[r].epoch = st[r];
            a[r].arrive = (unsigned int *)(st[r] + 1);
            a[r].error = herr_dev;
            a[r].max_bytes = maxb;
            a[r].timeout_ns = 10ull * 1000 * 1000 * 1000;
            a[r].nranks = n;
            a[r].rank = r;
        }
        unsigned char *host = malloc(maxb * (size_t)n), *want = malloc(maxb), *got = malloc(maxb);
        for (int ti = 0; ti < 3; ti++)
            for (int op = COLL_KERN_SUM; op <= COLL_KERN_AVG; op++)
                for (size_t ci = 0; ci < sizeof(counts) / sizeof(counts[0]); ci++)
                    for (int rep = 0; rep < 3; rep++) {
                        int t = types[ti];
                        size_t es = t == COLL_KERN_F32 ? 4 : 2, count = counts[ci];
                        const void *rows[COLL_P2P_MAX_RANKS];
                        for (int r = 0; r < n; r++) {
                            unsigned char *h = host + (size_t)r * maxb;
                            for (size_t i = 0; i < count; i++) {
                                float v = frand();
                                if (t == COLL_KERN_F32)
                                    ((float *)h)[i] = v;
                                else
                                    ((uint16_t *)h)[i] = t == COLL_KERN_F16 ? coll_float_to_half(v)
                                                                            : coll_float_to_bf16(v);
                            }
                            rows[r] = h;
                            CHECK(cudaMemcpy(in[r], h, count * es, cudaMemcpyHostToDevice) ==
                                  cudaSuccess);
                        }
                        coll_kern_p2p_reduce_ref(want, rows, n, count, t, op);
                        /* rep 1 runs in place: dst == src. */
                        for (int r = 0; r < n; r++)
                            CHECK(coll_kern_p2p_allreduce(&a[r], rep == 1 ? in[r] : out[r], in[r],
                                                          count, t, op, stream[r]) == 0);
                        CHECK(cudaDeviceSynchronize() == cudaSuccess);
                        CHECK(*herr == 0);
                        for (int r = 0; r < n; r++) {
                            CHECK(cudaMemcpy(got, rep == 1 ? in[r] : out[r], count * es,
                                             cudaMemcpyDeviceToHost) == cudaSuccess);
                            if (memcmp(want, got, count * es)) {
                                fprintf(stderr,
                                        "p2p kernel differs from reference: %d ranks, rank %d, "
                                        "type %d op %d count %zu rep %d\n",
                                        n, r, t, op, count, rep);
                                test_failures++;
                            }
                        }
                    }
        /* A missing peer: the wait gives up at its deadline and names the rank. */
        a[0].timeout_ns = 20ull * 1000 * 1000;
        CHECK(coll_kern_p2p_allreduce(&a[0], out[0], in[0], 16, COLL_KERN_F32, COLL_KERN_SUM,
                                      stream[0]) == 0);
        CHECK(cudaDeviceSynchronize() == cudaSuccess);
        CHECK(*herr == 2); /* 1 + rank 1, the first rank not at the new epoch */
        *herr = 0;
        free(host);
        free(want);
        free(got);
        for (int r = 0; r < n; r++) {
            cudaFree(buf[r]);
            cudaFree(in[r]);
            cudaFree(out[r]);
            cudaFree(st[r]);
            cudaStreamDestroy(stream[r]);
        }
    }
    cudaFreeHost(herr);
}

static void check_local_device(void)
{
    coll_params p;
    coll_params_init(&p);
    p.provider = "local";
    coll_comm *c = NULL;
    char err[256];
    CHECK(coll_comm_create(&p, &c, err, sizeof(err)) == COLL_OK);
    if (!c) return;
    float h[256], back[256];
    for (int i = 0; i < 256; i++)
        h[i] = (float)i;
    float *a, *b;
    CHECK(cudaMalloc((void **)&a, sizeof(h)) == cudaSuccess);
    CHECK(cudaMalloc((void **)&b, sizeof(h)) == cudaSuccess);
    cudaMemcpy(a, h, sizeof(h), cudaMemcpyHostToDevice);
    CHECK(coll_allreduce(c, a, b, 256, COLL_F32, COLL_SUM, NULL) == COLL_OK);
    cudaMemcpy(back, b, sizeof(h), cudaMemcpyDeviceToHost);
    CHECK(!memcmp(h, back, sizeof(h)));
    /* Mixed host and device buffers are refused, not guessed. */
    CHECK(coll_allreduce(c, h, b, 256, COLL_F32, COLL_SUM, NULL) == COLL_ERR_INVALID_ARG);
    cudaFree(a);
    cudaFree(b);
    coll_comm_destroy(c);
}

int main(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIP: no CUDA device visible (kernels are checked against their reference on "
               "the GPU machine: tests/gpu/run-gpu.sh)\n");
        return 77;
    }
    check_kernels();
    check_p2p_kernel();
    check_local_device();
    TEST_DONE();
}
#else
int main(void)
{
    printf("SKIP: built without CUDA (configure --with-cuda to test the kernels)\n");
    return 77;
}
#endif
