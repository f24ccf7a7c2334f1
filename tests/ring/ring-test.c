/* SPDX-License-Identifier: MIT */
/* ring-test: one rank of a multi-process check of every collective, data type, op,
 * count and placement on the ring. Run under ringrun; every rank checks its own
 * results bitwise against values computed independently, and exits non-zero on the
 * first mismatch. Inputs are small integers, so results are exact in every order.
 *
 *   ring-test [--counts 0,1,3,1000] [--big N]   (big: also this count, sum and max only)
 *   ring-test --digest N   all-reduces of N inexact floating values (sum, avg), out of place
 *                          into a misaligned buffer and in place; prints a digest of each
 *                          result, which any two settings of the data path must agree on
 */
#include "ring.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Negative values for min on signed and floating types; u8 stays in its range. */
static double value(ring_dtype t, int op, int rank, size_t i)
{
    if (op == RING_PROD) return (double)(1 + (((size_t)rank + i) % 3 == 0));
    return (double)((rank * 5 + i) % 9) - (op == RING_MIN && t != RING_U8 ? 4 : 0);
}

static double reduce_all(ring_dtype t, int op, int n, size_t i)
{
    double acc = value(t, op, 0, i);
    for (int r = 1; r < n; r++) {
        double v = value(t, op, r, i);
        if (op == RING_SUM || op == RING_AVG) acc += v;
        if (op == RING_PROD) acc *= v;
        if (op == RING_MIN) acc = v < acc ? v : acc;
        if (op == RING_MAX) acc = v > acc ? v : acc;
    }
    return op == RING_AVG ? acc / n : acc;
}

/* Store and compare in the type's own representation. u8 wraps modulo 256. */
static void put(void *b, size_t i, ring_dtype t, double v)
{
    switch (t) {
    case RING_F32:
        ((float *)b)[i] = (float)v;
        break;
    case RING_F64:
        ((double *)b)[i] = v;
        break;
    case RING_F16:
        ((uint16_t *)b)[i] = ring_f32_to_f16((float)v);
        break;
    case RING_BF16:
        ((uint16_t *)b)[i] = ring_f32_to_bf16((float)v);
        break;
    case RING_I32:
        ((int32_t *)b)[i] = (int32_t)v;
        break;
    case RING_I64:
        ((int64_t *)b)[i] = (int64_t)v;
        break;
    case RING_U8:
        ((uint8_t *)b)[i] = (uint8_t)(int64_t)fmod(fmod(v, 256) + 256, 256);
        break;
    default:
        break;
    }
}

static int same(const void *b, size_t i, ring_dtype t, double want)
{
    unsigned char tmp[8];
    put(tmp, 0, t, want);
    size_t es = ring_dtype_size(t);
    return memcmp((const unsigned char *)b + i * es, tmp, es) == 0;
}

typedef struct ctx {
    ring_comm *c;
    int rank, n;
    unsigned char *a, *b; /* big enough for n * maxcount elements of 8 bytes */
    long checks;
} ctx;

static int fail(ctx *x, const char *what, ring_dtype t, int op, size_t count, int inplace, size_t i)
{
    fprintf(stderr, "ring-test: rank %d: %s %s %s count %zu %s: wrong at element %zu\n", x->rank,
            what, ring_dtype_name(t), ring_op_name((ring_op)op), count,
            inplace ? "in-place" : "out-of-place", i);
    return 1;
}

static int status_fail(ctx *x, const char *what, ring_status st)
{
    fprintf(stderr, "ring-test: rank %d: %s: %s: %s\n", x->rank, what, ring_status_str(st),
            ring_comm_last_error(x->c));
    return 1;
}

static int test_allreduce(ctx *x, ring_dtype t, int op, size_t count, int inplace)
{
    for (size_t i = 0; i < count; i++)
        put(x->a, i, t, value(t, op, x->rank, i));
    memset(x->b, 0xEE, count * ring_dtype_size(t));
    void *out = inplace ? x->a : x->b;
    ring_status st = ring_allreduce(x->c, x->a, out, count, t, (ring_op)op);
    if (st != RING_OK) return status_fail(x, "allreduce", st);
    for (size_t i = 0; i < count; i++)
        if (!same(out, i, t, reduce_all(t, op, x->n, i)))
            return fail(x, "allreduce", t, op, count, inplace, i);
    x->checks++;
    return 0;
}

static int test_reduce_scatter(ctx *x, ring_dtype t, int op, size_t count, int inplace)
{
    size_t es = ring_dtype_size(t), total = count * (size_t)x->n;
    for (size_t i = 0; i < total; i++)
        put(x->a, i, t, value(t, op, x->rank, i));
    memset(x->b, 0xEE, count * es);
    void *out = inplace ? x->a + (size_t)x->rank * count * es : x->b;
    ring_status st = ring_reduce_scatter(x->c, x->a, out, count, t, (ring_op)op);
    if (st != RING_OK) return status_fail(x, "reduce_scatter", st);
    for (size_t i = 0; i < count; i++)
        if (!same(out, i, t, reduce_all(t, op, x->n, (size_t)x->rank * count + i)))
            return fail(x, "reduce_scatter", t, op, count, inplace, i);
    x->checks++;
    return 0;
}

static int test_allgather(ctx *x, ring_dtype t, size_t count, int inplace)
{
    size_t es = ring_dtype_size(t), total = count * (size_t)x->n;
    memset(x->b, 0xEE, total * es);
    unsigned char *mine = inplace ? x->b + (size_t)x->rank * count * es : x->a;
    for (size_t i = 0; i < count; i++)
        put(mine, i, t, value(t, RING_SUM, x->rank, (size_t)x->rank * count + i));
    ring_status st = ring_allgather(x->c, mine, x->b, count, t);
    if (st != RING_OK) return status_fail(x, "allgather", st);
    for (size_t i = 0; i < total; i++)
        if (!same(x->b, i, t, value(t, RING_SUM, (int)(i / (count ? count : 1)), i)))
            return fail(x, "allgather", t, RING_SUM, count, inplace, i);
    x->checks++;
    return 0;
}

static int test_broadcast(ctx *x, ring_dtype t, size_t count, int inplace, int root)
{
    for (size_t i = 0; i < count; i++)
        put(x->a, i, t, value(t, RING_SUM, x->rank == root ? 0 : 1 + x->rank, i));
    memset(x->b, 0xEE, count * ring_dtype_size(t));
    void *out = inplace ? x->a : x->b;
    ring_status st = ring_broadcast(x->c, x->a, out, count, t, root);
    if (st != RING_OK) return status_fail(x, "broadcast", st);
    for (size_t i = 0; i < count; i++)
        if (!same(out, i, t, value(t, RING_SUM, 0, i)))
            return fail(x, "broadcast", t, RING_SUM, count, inplace, i);
    x->checks++;
    return 0;
}

/* Inputs whose sums round: the bits of the result depend on the order of the reduction. */
static double noisy(int rank, size_t i)
{
    uint64_t z = ((uint64_t)rank << 40) ^ (i * 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
    return (double)(int64_t)(z >> 11) / 9007199254740992.0 * 1000.0;
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

static int run_digest(ctx *x, size_t count)
{
    static const ring_dtype types[] = {RING_F32, RING_F64, RING_F16, RING_BF16};
    static const int ops[] = {RING_SUM, RING_AVG};
    for (int ti = 0; ti < 4; ti++)
        for (int oi = 0; oi < 2; oi++)
            for (int inplace = 0; inplace < 2; inplace++) {
                ring_dtype t = types[ti];
                size_t es = ring_dtype_size(t);
                for (size_t i = 0; i < count; i++)
                    put(x->a, i, t, noisy(x->rank, i));
                /* one element in: chunks and segments start off the cache lines */
                unsigned char *out = inplace ? x->a : x->b + es;
                ring_status st = ring_allreduce(x->c, x->a, out, count, t, (ring_op)ops[oi]);
                if (st != RING_OK) return status_fail(x, "allreduce (digest)", st);
                printf("digest %s %s %s %016llx\n", ring_dtype_name(t),
                       ring_op_name((ring_op)ops[oi]), inplace ? "in-place" : "out-of-place",
                       (unsigned long long)fnv1a(out, count * es));
                x->checks++;
            }
    return 0;
}

static int run_count(ctx *x, size_t count, int all_ops)
{
    for (int t = 0; t < RING_DTYPE_COUNT; t++) {
        for (int inplace = 0; inplace < 2; inplace++) {
            for (int op = 0; op < RING_OP_COUNT; op++) {
                if (!ring_op_valid_for((ring_op)op, (ring_dtype)t)) continue;
                if (!all_ops && op != RING_SUM && op != RING_MAX) continue;
                if (test_allreduce(x, (ring_dtype)t, op, count, inplace) ||
                    test_reduce_scatter(x, (ring_dtype)t, op, count, inplace))
                    return 1;
            }
            if (test_allgather(x, (ring_dtype)t, count, inplace)) return 1;
            for (int root = 0; root < x->n; root += (x->n > 2 ? x->n / 2 - 1 : 1))
                if (test_broadcast(x, (ring_dtype)t, count, inplace, root)) return 1;
        }
    }
    ring_status st = ring_barrier(x->c);
    return st == RING_OK ? 0 : status_fail(x, "barrier", st);
}

int main(int argc, char **argv)
{
    size_t counts[32] = {0, 1, 3, 1000};
    int ncounts = 4;
    size_t big = 0, digest = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--counts") && i + 1 < argc) {
            ncounts = 0;
            for (char *s = strtok(argv[++i], ","); s && ncounts < 32; s = strtok(NULL, ","))
                counts[ncounts++] = strtoull(s, NULL, 10);
        } else if (!strcmp(argv[i], "--big") && i + 1 < argc) {
            big = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--digest") && i + 1 < argc) {
            digest = strtoull(argv[++i], NULL, 10);
            ncounts = 0;
        } else {
            fprintf(stderr, "usage: ring-test [--counts 0,1,3,1000] [--big N] | --digest N\n");
            return 2;
        }
    }
    char err[512];
    ctx x = {0};
    ring_status st = ring_comm_create_from_env(NULL, &x.c, err, sizeof err);
    if (st != RING_OK) {
        fprintf(stderr, "ring-test: %s\n", err);
        return 1;
    }
    x.rank = ring_comm_rank(x.c);
    x.n = ring_comm_size(x.c);
    size_t maxc = big > digest + 1 ? big : digest + 1;
    for (int i = 0; i < ncounts; i++)
        maxc = counts[i] > maxc ? counts[i] : maxc;
    size_t bytes = (maxc ? maxc : 1) * (size_t)x.n * 8;
    x.a = malloc(bytes);
    x.b = malloc(bytes);
    if (!x.a || !x.b) {
        fprintf(stderr, "ring-test: out of memory\n");
        return 1;
    }
    int rc = 0;
    for (int i = 0; i < ncounts && !rc; i++)
        rc = run_count(&x, counts[i], 1);
    if (!rc && big) rc = run_count(&x, big, 0);
    if (!rc && digest) rc = run_digest(&x, digest);
    if (!rc) printf("ring-test: rank %d of %d: %ld checks passed\n", x.rank, x.n, x.checks);
    free(x.a);
    free(x.b);
    ring_comm_destroy(x.c);
    return rc;
}
