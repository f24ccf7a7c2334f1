/* On a GPU: the reduction kernels against their plain-C reference, bit for bit, and the
 * local provider on device memory. Without CUDA or a GPU: skipped (exit 77). */
#include "coll_private.h"
#include "coll_kernels.h"
#include "coll_test.h"

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
                        ((uint16_t *)src)[i] = t == COLL_KERN_F16 ? coll_float_to_half(v)
                                                                  : coll_float_to_bf16(v);
                }
                coll_kern_reduce_ref(want, src, nb, count, t, op);
                void *dsrc, *ddst;
                CHECK(cudaMalloc(&dsrc, n * es) == cudaSuccess);
                CHECK(cudaMalloc(&ddst, count * es) == cudaSuccess);
                CHECK(cudaMemcpy(dsrc, src, n * es, cudaMemcpyHostToDevice) == cudaSuccess);
                CHECK(coll_kern_reduce(ddst, dsrc, nb, count, t, op, NULL) == 0);
                CHECK(cudaMemcpy(got, ddst, count * es, cudaMemcpyDeviceToHost) == cudaSuccess);
                if (memcmp(want, got, count * es)) {
                    fprintf(stderr, "kernel differs from reference: type %d op %d blocks %d\n",
                            t, op, nb);
                    coll_test_failures++;
                }
                cudaFree(dsrc);
                cudaFree(ddst);
                free(src);
                free(want);
                free(got);
            }
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
    for (int i = 0; i < 256; i++) h[i] = (float)i;
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
