/* SPDX-License-Identifier: MIT */
/* The one-shot "p2p" all-reduce between real processes: run as every rank of a ring
 * (RING_CONFIG, MISTRALRS_NO_NCCL=1) on one machine; coll_p2p.sh starts two on GPU 0.
 * Every size up to the limit that matters (all counts to 1100 elements, powers of two and
 * their neighbours up to the limit, the limit itself), f32/f16/bf16 x sum/prod/min/max/avg,
 * with and without a stream, in place and not, and replayed from a CUDA graph: every
 * result equal to the plain-C reference bit for bit, and the ranks' checksums equal.
 * Without CUDA or a GPU: skipped (exit 77). */
#include "coll_private.h"
#include "coll_kernels.h"
#include "../check.h"

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>

static int nranks, me;

/* Rank r's input element i in a case: the same on every rank, so each checks alone. */
static float value(int r, size_t i, unsigned seed)
{
    uint32_t x = (uint32_t)(i * 2654435761u) ^ (uint32_t)(r * 40503u) ^ (seed * 2246822519u);
    x ^= x >> 15;
    x *= 2246822519u;
    x ^= x >> 13;
    return (float)(x & 0xffff) / 2048.0f - 16.0f;
}

static void fill(unsigned char *h, int r, size_t count, int t, unsigned seed)
{
    for (size_t i = 0; i < count; i++) {
        float v = value(r, i, seed);
        if (t == COLL_KERN_F32)
            ((float *)h)[i] = v;
        else
            ((uint16_t *)h)[i] = t == COLL_KERN_F16 ? coll_float_to_half(v) : coll_float_to_bf16(v);
    }
}

static uint64_t fnv(uint64_t h, const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ull;
    return h;
}

typedef struct bufs {
    unsigned char *host, *want, *got; /* host: nranks inputs of max bytes */
    void *din, *dout;
    size_t max;
    cudaStream_t stream;
} bufs;

static int one_case(coll_comm *c, bufs *b, size_t count, int t, int op, int mode, unsigned seed,
                    uint64_t *sum)
{
    size_t es = t == COLL_KERN_F32 ? 4 : 2;
    const void *rows[COLL_P2P_MAX_RANKS];
    for (int r = 0; r < nranks; r++) {
        fill(b->host + (size_t)r * b->max, r, count, t, seed);
        rows[r] = b->host + (size_t)r * b->max;
    }
    coll_kern_p2p_reduce_ref(b->want, rows, nranks, count, t, op);
    void *dst = mode == 2 ? b->din : b->dout; /* mode 2: in place */
    cudaStream_t s = mode == 1 ? NULL : b->stream;
    CHECK(cudaMemcpyAsync(b->din, rows[me], count * es, cudaMemcpyHostToDevice, b->stream) ==
          cudaSuccess);
    if (!s) CHECK(cudaStreamSynchronize(b->stream) == cudaSuccess);
    coll_status st = coll_allreduce(c, b->din, dst, count, (coll_dtype)t, (coll_op)op, s);
    if (st) {
        fprintf(stderr, "rank %d: allreduce of %zu x type %d op %d: %s\n", me, count, t, op,
                coll_comm_last_error(c));
        test_failures++;
        return -1;
    }
    CHECK(cudaMemcpyAsync(b->got, dst, count * es, cudaMemcpyDeviceToHost, b->stream) ==
          cudaSuccess);
    CHECK(cudaStreamSynchronize(b->stream) == cudaSuccess);
    *sum = fnv(*sum, b->got, count * es);
    if (memcmp(b->want, b->got, count * es)) {
        fprintf(stderr, "rank %d: %zu x type %d op %d mode %d differs from the reference\n", me,
                count, t, op, mode);
        test_failures++;
        return -1;
    }
    return 0;
}

/* The decode step's shape: the all-reduce captured once in a graph, replayed with new
 * inputs; the epoch lives in device memory, so each replay is a new one. */
static void graph_case(coll_comm *c, bufs *b, uint64_t *sum)
{
    const size_t count = 4096; /* 16 KiB of f32 */
    cudaGraph_t g = NULL;
    cudaGraphExec_t ge = NULL;
    CHECK(cudaStreamBeginCapture(b->stream, cudaStreamCaptureModeRelaxed) == cudaSuccess);
    coll_status st = coll_allreduce(c, b->din, b->dout, count, COLL_F32, COLL_SUM, b->stream);
    CHECK(cudaStreamEndCapture(b->stream, &g) == cudaSuccess);
    CHECK(st == COLL_OK);
    CHECK(cudaGraphInstantiate(&ge, g, 0) == cudaSuccess);
    if (st || !ge) return;
    for (unsigned k = 0; k < 5; k++) {
        const void *rows[COLL_P2P_MAX_RANKS];
        for (int r = 0; r < nranks; r++) {
            fill(b->host + (size_t)r * b->max, r, count, COLL_KERN_F32, 9000 + k);
            rows[r] = b->host + (size_t)r * b->max;
        }
        coll_kern_p2p_reduce_ref(b->want, rows, nranks, count, COLL_KERN_F32, COLL_KERN_SUM);
        CHECK(cudaMemcpyAsync(b->din, rows[me], count * 4, cudaMemcpyHostToDevice, b->stream) ==
              cudaSuccess);
        CHECK(cudaGraphLaunch(ge, b->stream) == cudaSuccess);
        CHECK(cudaMemcpyAsync(b->got, b->dout, count * 4, cudaMemcpyDeviceToHost, b->stream) ==
              cudaSuccess);
        CHECK(cudaStreamSynchronize(b->stream) == cudaSuccess);
        *sum = fnv(*sum, b->got, count * 4);
        if (memcmp(b->want, b->got, count * 4)) {
            fprintf(stderr, "rank %d: graph replay %u differs from the reference\n", me, k);
            test_failures++;
        }
    }
    cudaGraphExecDestroy(ge);
    cudaGraphDestroy(g);
}

int main(void)
{
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("SKIP: no CUDA device visible (the one-shot all-reduce runs on the GPU "
               "machine: tests/gpu/run-multi-gpu.sh)\n");
        return 77;
    }
    coll_params p;
    coll_params_init(&p);
    coll_comm *c = NULL;
    char err[512];
    if (coll_comm_create(&p, &c, err, sizeof(err)) != COLL_OK) {
        fprintf(stderr, "coll_comm_create: %s\n", err);
        return 1;
    }
    nranks = coll_comm_size(c);
    me = coll_comm_rank(c);
    size_t max = coll_comm_p2p_max_bytes(c);
    if (max == 0 || nranks > COLL_P2P_MAX_RANKS) {
        fprintf(stderr, "rank %d: the one-shot provider is off (its log line says why)\n", me);
        coll_comm_destroy(c);
        return 1;
    }
    bufs b = {.max = max};
    b.host = malloc(max * (size_t)nranks);
    b.want = malloc(max);
    b.got = malloc(max);
    CHECK(cudaSetDevice(coll_comm_device(c)) == cudaSuccess);
    CHECK(cudaMalloc(&b.din, max) == cudaSuccess);
    CHECK(cudaMalloc(&b.dout, max) == cudaSuccess);
    CHECK(cudaStreamCreateWithFlags(&b.stream, cudaStreamNonBlocking) == cudaSuccess);

    static const int types[] = {COLL_KERN_F32, COLL_KERN_F16, COLL_KERN_BF16};
    uint64_t sum = 1469598103934665603ull;
    unsigned seed = 1;
    int cases = 0, stop = 0;
    for (int ti = 0; ti < 3 && !stop; ti++) {
        int t = types[ti];
        size_t es = t == COLL_KERN_F32 ? 4 : 2, maxn = max / es;
        /* Every count up to 1100 (all tails of the 16-byte copies), sum, three modes. */
        for (size_t n = 0; n <= 1100 && n <= maxn && !stop; n++)
            stop = one_case(c, &b, n, t, COLL_KERN_SUM, (int)(n % 3), seed++, &sum) != 0;
        /* Powers of two and their neighbours up to the limit, every op. */
        for (size_t k = 2048; k <= maxn && !stop; k *= 2)
            for (int d = -1; d <= 1 && !stop; d++) {
                size_t n = k + (size_t)d;
                if (n > maxn) continue;
                for (int op = COLL_KERN_SUM; op <= COLL_KERN_AVG && !stop; op++, cases++)
                    stop = one_case(c, &b, n, t, op, (int)((n + op) % 3), seed++, &sum) != 0;
            }
        for (int op = COLL_KERN_SUM; op <= COLL_KERN_AVG && !stop; op++, cases++)
            stop = one_case(c, &b, maxn, t, op, op % 3, seed++, &sum) != 0;
        cases += 1101;
    }
    if (!stop) graph_case(c, &b, &sum);

    /* One more past the limit: the next provider serves it (no bitwise claim there). */
    size_t over = max / 4 + 1;
    void *big_in = NULL, *big_out = NULL;
    CHECK(cudaMalloc(&big_in, over * 4) == cudaSuccess);
    CHECK(cudaMalloc(&big_out, over * 4) == cudaSuccess);
    CHECK(cudaMemset(big_in, 0, over * 4) == cudaSuccess);
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(coll_allreduce(c, big_in, big_out, over, COLL_F32, COLL_SUM, NULL) == COLL_OK);

    /* The ranks' checksums, through the ring on host memory. */
    uint64_t sums[COLL_P2P_MAX_RANKS];
    CHECK(coll_allgather(c, &sum, sums, 1, COLL_I64, NULL) == COLL_OK);
    for (int r = 0; r < nranks; r++)
        if (sums[r] != sum) {
            fprintf(stderr, "rank %d: checksum %016llx, rank %d has %016llx\n", me,
                    (unsigned long long)sum, r, (unsigned long long)sums[r]);
            test_failures++;
        }
    printf("rank %d of %d: p2p up to %zu bytes, %d cases + 5 graph replays, checksum %016llx%s\n",
           me, nranks, max, cases, (unsigned long long)sum, test_failures ? " FAILED" : "");
    cudaFree(big_in);
    cudaFree(big_out);
    cudaFree(b.din);
    cudaFree(b.dout);
    cudaStreamDestroy(b.stream);
    free(b.host);
    free(b.want);
    free(b.got);
    coll_comm_destroy(c);
    TEST_DONE();
}
#else
int main(void)
{
    printf("SKIP: built without CUDA (configure --with-cuda to test the one-shot all-reduce)\n");
    return 77;
}
#endif
