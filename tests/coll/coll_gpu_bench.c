/* SPDX-License-Identifier: MIT */
/* GPU driver for tests/gpu/run-gpu.sh: correctness of coll_* on device buffers with the
 * provider the environment selects, and an all-reduce benchmark (f32 sum, in place) of
 * coll_allreduce against a raw ncclAllReduce loop on its own communicator.
 *   coll_gpu_bench check
 *   coll_gpu_bench bench LABEL MIN_BYTES MAX_BYTES [raw]
 * Rank 0 prints "RESULT label variant bytes time_us algbw_GBps busbw_GBps" lines. */
#include "coll.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <nccl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DIE(...)                                                                                   \
    do {                                                                                           \
        fprintf(stderr, "coll_gpu_bench: " __VA_ARGS__);                                           \
        fprintf(stderr, "\n");                                                                     \
        exit(1);                                                                                   \
    } while (0)
#define CU(x)                                                                                      \
    do {                                                                                           \
        cudaError_t e_ = (x);                                                                      \
        if (e_ != cudaSuccess) DIE("%s: %s", #x, cudaGetErrorString(e_));                          \
    } while (0)
#define CO(comm, x)                                                                                \
    do {                                                                                           \
        coll_status s_ = (x);                                                                      \
        if (s_ != COLL_OK) DIE("%s: %s: %s", #x, coll_status_str(s_), coll_comm_last_error(comm)); \
    } while (0)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Exact small values per rank and element, so every op has an exact expected result. */
static double val(int rank, size_t i)
{
    return (double)((int)((i * 7 + (size_t)rank * 3) % 13) - 6);
}

static void fill(void *h, coll_dtype t, size_t n, int rank)
{
    for (size_t i = 0; i < n; i++) {
        double v = val(rank, i);
        switch (t) {
        case COLL_F32:
            ((float *)h)[i] = (float)v;
            break;
        case COLL_F64:
            ((double *)h)[i] = v;
            break;
        case COLL_I32:
            ((int32_t *)h)[i] = (int32_t)v;
            break;
        default:
            break;
        }
    }
}

static double get(const void *h, coll_dtype t, size_t i)
{
    switch (t) {
    case COLL_F32:
        return ((const float *)h)[i];
    case COLL_F64:
        return ((const double *)h)[i];
    case COLL_I32:
        return ((const int32_t *)h)[i];
    default:
        return NAN;
    }
}

static double expect(coll_op op, int size, size_t i)
{
    double acc = val(0, i);
    for (int r = 1; r < size; r++) {
        double v = val(r, i);
        if (op == COLL_SUM || op == COLL_AVG) acc += v;
        if (op == COLL_MAX) acc = v > acc ? v : acc;
        if (op == COLL_MIN) acc = v < acc ? v : acc;
    }
    return op == COLL_AVG ? acc / size : acc;
}

static int check(coll_comm *c)
{
    int rank = coll_comm_rank(c), size = coll_comm_size(c);
    static const coll_dtype types[] = {COLL_F32, COLL_F64, COLL_I32};
    static const coll_op ops[] = {COLL_SUM, COLL_MAX, COLL_MIN, COLL_AVG};
    static const size_t counts[] = {1, 1000, (1 << 20) + 3, (9 << 20) + 5};
    int errors = 0;
    cudaStream_t s;
    CU(cudaStreamCreate(&s));
    size_t maxn = (9 << 20) + 5;
    void *h = malloc(maxn * 8 * (size_t)size), *d, *d2;
    CU(cudaMalloc(&d, maxn * 8 * (size_t)size));
    CU(cudaMalloc(&d2, maxn * 8 * (size_t)size));
    for (int ti = 0; ti < 3; ti++)
        for (int oi = 0; oi < 4; oi++)
            for (int ci = 0; ci < 4; ci++) {
                coll_dtype t = types[ti];
                coll_op op = ops[oi];
                size_t n = counts[ci], es = coll_dtype_size(t);
                if (op == COLL_AVG && t == COLL_I32) continue;
                fill(h, t, n, rank);
                CU(cudaMemcpy(d, h, n * es, cudaMemcpyHostToDevice));
                /* Alternate: caller's stream + coll_sync, and no stream (blocking). */
                void *st = (ci & 1) ? s : NULL;
                CO(c, coll_allreduce(c, d, d, n, t, op, st));
                if (st) CO(c, coll_sync(c, st));
                CU(cudaMemcpy(h, d, n * es, cudaMemcpyDeviceToHost));
                for (size_t i = 0; i < n; i++)
                    if (fabs(get(h, t, i) - expect(op, size, i)) > 1e-6 * (op == COLL_AVG)) {
                        if (errors < 5)
                            fprintf(stderr,
                                    "rank %d: allreduce type %d op %d n %zu [%zu]: %g != %g\n",
                                    rank, t, op, n, i, get(h, t, i), expect(op, size, i));
                        errors++;
                        break;
                    }
            }
    /* reduce-scatter, all-gather, broadcast on f32, odd counts. */
    size_t n = (3 << 20) + 1;
    fill(h, COLL_F32, n * (size_t)size, rank);
    CU(cudaMemcpy(d, h, n * (size_t)size * 4, cudaMemcpyHostToDevice));
    CO(c, coll_reduce_scatter(c, d, d2, n, COLL_F32, COLL_SUM, NULL));
    CU(cudaMemcpy(h, d2, n * 4, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++)
        if (get(h, COLL_F32, i) != expect(COLL_SUM, size, (size_t)rank * n + i)) {
            fprintf(stderr, "rank %d: reduce-scatter [%zu] wrong\n", rank, i);
            errors++;
            break;
        }
    fill(h, COLL_F32, n, rank);
    CU(cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice));
    CO(c, coll_allgather(c, d, d2, n, COLL_F32, NULL));
    CU(cudaMemcpy(h, d2, n * (size_t)size * 4, cudaMemcpyDeviceToHost));
    for (int r = 0; r < size; r++)
        for (size_t i = 0; i < n; i++)
            if (get(h, COLL_F32, (size_t)r * n + i) != val(r, i)) {
                fprintf(stderr, "rank %d: allgather block %d [%zu] wrong\n", rank, r, i);
                errors++;
                r = size;
                break;
            }
    int root = size - 1;
    fill(h, COLL_F32, n, rank);
    CU(cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice));
    CO(c, coll_broadcast(c, d, d, n, COLL_F32, root, NULL));
    CU(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++)
        if (get(h, COLL_F32, i) != val(root, i)) {
            fprintf(stderr, "rank %d: broadcast [%zu] wrong\n", rank, i);
            errors++;
            break;
        }
    CO(c, coll_barrier(c));
    /* Everyone learns the total. */
    int *de;
    CU(cudaMalloc((void **)&de, sizeof(int)));
    CU(cudaMemcpy(de, &errors, sizeof(int), cudaMemcpyHostToDevice));
    CO(c, coll_allreduce(c, de, de, 1, COLL_I32, COLL_SUM, NULL));
    int total;
    CU(cudaMemcpy(&total, de, sizeof(int), cudaMemcpyDeviceToHost));
    if (rank == 0)
        printf("CHECK provider %s world %d: %s (%d errors)\n", coll_comm_provider(c), size,
               total ? "FAIL" : "PASS", total);
    cudaFree(de);
    cudaFree(d);
    cudaFree(d2);
    free(h);
    cudaStreamDestroy(s);
    return total ? 1 : 0;
}

static int iters_for(size_t bytes)
{
    if (bytes <= (1 << 20)) return 1000;
    if (bytes <= (64 << 20)) return 50;
    return 10;
}

static void report(int rank, int size, const char *label, const char *variant, size_t bytes,
                   double t)
{
    if (rank) return;
    double alg = (double)bytes / t / 1e9;
    double bus = alg * 2.0 * (size - 1) / size;
    printf("RESULT %s %s %zu %.2f %.3f %.3f\n", label, variant, bytes, t * 1e6, alg, bus);
    fflush(stdout);
}

static double median3(const double *t)
{
    double a = t[0], b = t[1], c = t[2];
    if (a > b) {
        double x = a;
        a = b;
        b = x;
    }
    if (b > c) {
        double x = b;
        b = c;
        c = x;
    }
    return a > b ? a : b;
}

static int bench(coll_comm *c, const char *label, size_t minb, size_t maxb, int raw)
{
    int rank = coll_comm_rank(c), size = coll_comm_size(c);
    cudaStream_t s;
    CU(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    void *d;
    CU(cudaMalloc(&d, maxb));
    CU(cudaMemset(d, 0, maxb)); /* zeros stay zeros under repeated in-place sums */
    ncclComm_t nc = NULL;
    if (raw) {
        /* The raw loop's own communicator; its id travels through coll_broadcast. */
        ncclUniqueId id;
        if (rank == 0 && ncclGetUniqueId(&id) != ncclSuccess) DIE("ncclGetUniqueId");
        void *did;
        CU(cudaMalloc(&did, sizeof(id)));
        CU(cudaMemcpy(did, &id, sizeof(id), cudaMemcpyHostToDevice));
        CO(c, coll_broadcast(c, did, did, sizeof(id), COLL_U8, 0, NULL));
        CU(cudaMemcpy(&id, did, sizeof(id), cudaMemcpyDeviceToHost));
        cudaFree(did);
        if (ncclCommInitRank(&nc, size, id, rank) != ncclSuccess) DIE("ncclCommInitRank (raw)");
    }
    for (size_t b = minb; b <= maxb; b *= 2) {
        size_t n = b / 4;
        int it = iters_for(b);
        double t_raw[3] = {0}, t_coll[3] = {0}; /* the median of 3 rounds is reported */
        for (int round = 0; round < 3; round++) {
            if (raw) {
                for (int w = 0; w < 3; w++)
                    ncclAllReduce(d, d, n, ncclFloat32, ncclSum, nc, s);
                CU(cudaStreamSynchronize(s));
                CO(c, coll_barrier(c));
                double t0 = now_s();
                for (int i = 0; i < it; i++)
                    if (ncclAllReduce(d, d, n, ncclFloat32, ncclSum, nc, s) != ncclSuccess)
                        DIE("ncclAllReduce");
                CU(cudaStreamSynchronize(s));
                t_raw[round] = (now_s() - t0) / it;
            }
            for (int w = 0; w < 3; w++)
                CO(c, coll_allreduce(c, d, d, n, COLL_F32, COLL_SUM, s));
            CO(c, coll_sync(c, s));
            CO(c, coll_barrier(c));
            double t0 = now_s();
            for (int i = 0; i < it; i++)
                CO(c, coll_allreduce(c, d, d, n, COLL_F32, COLL_SUM, s));
            CO(c, coll_sync(c, s));
            t_coll[round] = (now_s() - t0) / it;
        }
        if (raw) report(rank, size, label, "raw-nccl", b, median3(t_raw));
        report(rank, size, label, "coll", b, median3(t_coll));
    }
    if (nc) ncclCommDestroy(nc);
    cudaFree(d);
    cudaStreamDestroy(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) DIE("usage: coll_gpu_bench check | bench LABEL MIN MAX [raw]");
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
        printf("SKIP: no CUDA device visible\n");
        return 77;
    }
    coll_params p;
    coll_params_init(&p);
    coll_comm *c = NULL;
    char err[512];
    coll_status st = coll_comm_create(&p, &c, err, sizeof(err));
    if (st) DIE("coll_comm_create: %s: %s", coll_status_str(st), err);
    if (coll_comm_device(c) >= 0) CU(cudaSetDevice(coll_comm_device(c)));
    int rc = 0;
    if (!strcmp(argv[1], "check")) {
        rc = check(c);
    } else if (!strcmp(argv[1], "bench") && argc >= 5) {
        rc = bench(c, argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
                   argc > 5 && !strcmp(argv[5], "raw"));
    } else {
        DIE("unknown mode '%s'", argv[1]);
    }
    coll_comm_destroy(c);
    return rc;
}
