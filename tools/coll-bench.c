/* SPDX-License-Identifier: MIT */
/* coll-bench: collectives benchmark with the flags and table of nccl-tests.
 * One process per rank: run it under ringrun, or with RING_CONFIG set by hand. */
#include "bench_backend.h"
#include "common/clock.h"
#include "common/half.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum {
    C_ALLREDUCE,
    C_REDUCESCATTER,
    C_ALLGATHER,
    C_BROADCAST,
    C_BARRIER,
    C_COUNT
} bench_kind;
static const char *const bench_kind_names[] = {"allreduce", "reducescatter", "allgather",
                                               "broadcast", "barrier"};

typedef struct opts {
    size_t minbytes, maxbytes, stepbytes;
    double stepfactor;
    int iters, warmup, check, root, average, timeout_s, json, print_config, device;
    int all_types, all_ops;
    coll_dtype type;
    coll_op op;
    bench_kind coll;
    const char *provider;
} opts;

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || v < 0) return -1;
    double mult = 1;
    switch (*end) {
    case 'K':
    case 'k':
        mult = 1024;
        end++;
        break;
    case 'M':
    case 'm':
        mult = 1024.0 * 1024;
        end++;
        break;
    case 'G':
    case 'g':
        mult = 1024.0 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end) return -1;
    *out = (size_t)(v * mult);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(
        f,
        "usage: coll-bench [options]   (one process per rank, e.g. ringrun -n 4 -- coll-bench "
        "...)\n"
        "  -b, --minbytes SIZE     smallest size (default 32M; K, M, G suffixes)\n"
        "  -e, --maxbytes SIZE     largest size (default 32M)\n"
        "  -i, --stepbytes SIZE    size increment when -f is 1 (default 1M)\n"
        "  -f, --stepfactor F      size multiplier (default 1: use -i)\n"
        "  -n, --iters N           timed iterations (default 20)\n"
        "  -w, --warmup_iters N    untimed iterations first (default 5)\n"
        "  -c, --check 0|1         check results (default 1)\n"
        "  -d, --datatype T        float double half bfloat16 int32 int64 uint8 (nccl-tests' "
        "names,\n"
        "                          as the table prints them; f32 f64 f16 bf16 i32 i64 u8 too) or "
        "all\n"
        "  -o, --op OP             sum prod min max avg, or all\n"
        "  -r, --root R            root for broadcast (default 0)\n"
        "  -a, --average 0|1|2|3   combine ranks' times: rank 0, average, min, max (default 1)\n"
        "  -T, --timeout S         per-collective timeout in seconds\n"
        "      --coll NAME         allreduce reducescatter allgather broadcast barrier\n"
        "      --provider NAME     %s\n"
        "  -G, --device            buffers in CUDA device memory (libcoll providers; nccl implies "
        "it)\n"
        "      --json              one JSON object per result line instead of the table\n"
        "      --print-config      print the provider, the layout and every knob, then exit\n",
        bench_backend_names());
}

static int parse_args(int argc, char **argv, opts *o)
{
    *o = (opts){.minbytes = 32u << 20,
                .maxbytes = 32u << 20,
                .stepbytes = 1u << 20,
                .stepfactor = 1,
                .iters = 20,
                .warmup = 5,
                .check = 1,
                .average = 1,
                .type = COLL_F32,
                .op = COLL_SUM,
                .coll = C_ALLREDUCE};
    enum { O_COLL = 1000, O_PROVIDER, O_JSON, O_PRINT };
    static const struct option lo[] = {{"minbytes", 1, 0, 'b'},
                                       {"maxbytes", 1, 0, 'e'},
                                       {"stepbytes", 1, 0, 'i'},
                                       {"stepfactor", 1, 0, 'f'},
                                       {"iters", 1, 0, 'n'},
                                       {"warmup_iters", 1, 0, 'w'},
                                       {"check", 1, 0, 'c'},
                                       {"datatype", 1, 0, 'd'},
                                       {"op", 1, 0, 'o'},
                                       {"root", 1, 0, 'r'},
                                       {"average", 1, 0, 'a'},
                                       {"timeout", 1, 0, 'T'},
                                       {"coll", 1, 0, O_COLL},
                                       {"provider", 1, 0, O_PROVIDER},
                                       {"json", 0, 0, O_JSON},
                                       {"print-config", 0, 0, O_PRINT},
                                       {"device", 0, 0, 'G'},
                                       {"help", 0, 0, 'h'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "b:e:i:f:n:w:c:d:o:r:a:T:Gh", lo, NULL)) != -1) {
        char *end = NULL;
        long v = 0;
        if (strchr("nwcraT", c)) {
            errno = 0;
            v = strtol(optarg, &end, 10);
            if (errno == ERANGE || (!errno && !*end && *optarg && v > 100000000)) {
                fprintf(stderr, "coll-bench: -%c %s is too large (at most 100000000)\n", c, optarg);
                return -1;
            }
            if (errno || *end || !*optarg || v < 0) {
                fprintf(stderr, "coll-bench: -%c expects a non-negative integer, got '%s'\n", c,
                        optarg);
                return -1;
            }
        }
        switch (c) {
        case 'b':
        case 'e':
        case 'i': {
            size_t *dst = c == 'b' ? &o->minbytes : c == 'e' ? &o->maxbytes : &o->stepbytes;
            if (parse_size(optarg, dst)) {
                fprintf(stderr, "coll-bench: -%c expects a size like 8, 64K, 1M or 1G, got '%s'\n",
                        c, optarg);
                return -1;
            }
            break;
        }
        case 'f':
            o->stepfactor = strtod(optarg, &end);
            if (*end || o->stepfactor < 1) {
                fprintf(stderr, "coll-bench: -f expects a factor >= 1, got '%s'\n", optarg);
                return -1;
            }
            break;
        case 'n':
            o->iters = (int)v;
            break;
        case 'w':
            o->warmup = (int)v;
            break;
        case 'c':
            o->check = v != 0;
            break;
        case 'r':
            o->root = (int)v;
            break;
        case 'a':
            if (v > 3) {
                fprintf(stderr, "coll-bench: -a expects 0 (rank 0), 1 (avg), 2 (min) or 3 (max)\n");
                return -1;
            }
            o->average = (int)v;
            break;
        case 'T':
            o->timeout_s = (int)v;
            break;
        case 'd':
            if (strcmp(optarg, "all") == 0)
                o->all_types = 1;
            else if (coll_dtype_parse(optarg, &o->type)) {
                fprintf(stderr, "coll-bench: unknown data type '%s'\n", optarg);
                return -1;
            }
            break;
        case 'o':
            if (strcmp(optarg, "all") == 0)
                o->all_ops = 1;
            else if (coll_op_parse(optarg, &o->op)) {
                fprintf(stderr, "coll-bench: unknown op '%s'\n", optarg);
                return -1;
            }
            break;
        case O_COLL: {
            int found = 0;
            for (int k = 0; k < C_COUNT; k++)
                if (strcmp(optarg, bench_kind_names[k]) == 0) o->coll = (bench_kind)k, found = 1;
            if (!strcmp(optarg, "reduce_scatter")) o->coll = C_REDUCESCATTER, found = 1;
            if (!found) {
                fprintf(stderr, "coll-bench: unknown collective '%s'\n", optarg);
                return -1;
            }
            break;
        }
        case O_PROVIDER:
            o->provider = optarg;
            break;
        case O_JSON:
            o->json = 1;
            break;
        case O_PRINT:
            o->print_config = 1;
            break;
        case 'G':
            o->device = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "coll-bench: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    if (o->minbytes > o->maxbytes) {
        fprintf(stderr, "coll-bench: -b (%zu) is larger than -e (%zu)\n", o->minbytes, o->maxbytes);
        return -1;
    }
    if (o->iters < 1) o->iters = 1;
    return 0;
}

/* ------------------------------------------------------------------ data and checks
 * Values are small integers, so every result is exact in every type and any order. */

static double input_value(coll_op op, int rank, size_t i)
{
    if (op == COLL_PROD) return (double)(1 + ((rank + i) % 2 == 0 && (i % 3) == 0));
    return (double)((rank * 3 + i) % 7 + 1);
}

static double expected_value(coll_op op, int n, size_t i, coll_dtype t)
{
    double acc = input_value(op, 0, i);
    for (int r = 1; r < n; r++) {
        double v = input_value(op, r, i);
        switch (op) {
        case COLL_SUM:
        case COLL_AVG:
            acc += v;
            break;
        case COLL_PROD:
            acc *= v;
            break;
        case COLL_MIN:
            acc = v < acc ? v : acc;
            break;
        case COLL_MAX:
            acc = v > acc ? v : acc;
            break;
        default:
            break;
        }
    }
    if (op == COLL_AVG) acc /= n;
    if (t == COLL_U8) acc = fmod(acc, 256.0);
    return acc;
}

static void store(void *buf, size_t i, coll_dtype t, double v)
{
    switch (t) {
    case COLL_F32:
        ((float *)buf)[i] = (float)v;
        break;
    case COLL_F64:
        ((double *)buf)[i] = v;
        break;
    case COLL_F16:
        ((uint16_t *)buf)[i] = rc_f32_to_f16((float)v);
        break;
    case COLL_BF16:
        ((uint16_t *)buf)[i] = rc_f32_to_bf16((float)v);
        break;
    case COLL_I32:
        ((int32_t *)buf)[i] = (int32_t)v;
        break;
    case COLL_I64:
        ((int64_t *)buf)[i] = (int64_t)v;
        break;
    case COLL_U8:
        ((uint8_t *)buf)[i] = (uint8_t)v;
        break;
    default:
        break;
    }
}

static double load(const void *buf, size_t i, coll_dtype t)
{
    switch (t) {
    case COLL_F32:
        return ((const float *)buf)[i];
    case COLL_F64:
        return ((const double *)buf)[i];
    case COLL_F16:
        return rc_f16_to_f32(((const uint16_t *)buf)[i]);
    case COLL_BF16:
        return rc_bf16_to_f32(((const uint16_t *)buf)[i]);
    case COLL_I32:
        return ((const int32_t *)buf)[i];
    case COLL_I64:
        return (double)((const int64_t *)buf)[i];
    case COLL_U8:
        return ((const uint8_t *)buf)[i];
    default:
        return NAN;
    }
}

/* Fill count elements of rank `r`'s input, element i standing for global index base+i. */
static void fill(void *buf, size_t count, size_t base, coll_dtype t, coll_op op, int r)
{
    for (size_t i = 0; i < count; i++)
        store(buf, i, t, input_value(op, r, base + i));
}

typedef struct sizes {
    size_t count;    /* elements in the table's count column (whole buffer) */
    size_t per_rank; /* the count passed to the call */
    size_t send_elems, recv_elems;
} sizes;

static sizes sizes_for(bench_kind k, size_t bytes, size_t esz, int n)
{
    sizes s = {0};
    size_t total = bytes / esz;
    if (k == C_REDUCESCATTER || k == C_ALLGATHER) {
        s.per_rank = total / (size_t)n;
        s.count = s.per_rank * (size_t)n;
        s.send_elems = k == C_REDUCESCATTER ? s.count : s.per_rank;
        s.recv_elems = k == C_REDUCESCATTER ? s.per_rank : s.count;
    } else {
        s.count = s.per_rank = s.send_elems = s.recv_elems = total;
    }
    return s;
}

static coll_status call(bench_backend *be, bench_kind k, const void *sb, void *rb, size_t count,
                        coll_dtype t, coll_op op, int root)
{
    switch (k) {
    case C_ALLREDUCE:
        return be->ops->allreduce(be, sb, rb, count, t, op);
    case C_REDUCESCATTER:
        return be->ops->reduce_scatter(be, sb, rb, count, t, op);
    case C_ALLGATHER:
        return be->ops->allgather(be, sb, rb, count, t);
    case C_BROADCAST:
        return be->ops->broadcast(be, sb, rb, count, t, root);
    case C_BARRIER:
        return be->ops->barrier(be);
    default:
        return COLL_ERR_INVALID_ARG;
    }
}

/* Pointers for out-of-place or in-place calls, nccl-tests style. */
static void place(bench_kind k, int in_place, unsigned char *send, unsigned char *recv,
                  size_t per_rank, size_t esz, int rank, const void **sb, void **rb)
{
    *sb = send;
    *rb = recv;
    if (!in_place) return;
    if (k == C_REDUCESCATTER) {
        *sb = recv;
        *rb = recv + (size_t)rank * per_rank * esz;
    } else if (k == C_ALLGATHER) {
        *sb = recv + (size_t)rank * per_rank * esz;
    } else {
        *sb = recv;
    }
}

/* One checked call: inputs are built in host memory and uploaded, the result downloaded and
 * compared element by element. Returns the number of wrong elements. */
static long long checked_run(bench_backend *be, const opts *o, bench_kind k, unsigned char *send,
                             unsigned char *recv, unsigned char *host, sizes s, coll_dtype t,
                             coll_op op, int in_place, coll_status *st)
{
    int n = be->size, r = be->rank;
    size_t esz = coll_dtype_size(t);
    size_t span = (s.recv_elems > s.send_elems ? s.recv_elems : s.send_elems) * esz;
    const void *sb;
    void *rb;
    place(k, in_place, send, recv, s.per_rank, esz, r, &sb, &rb);
    *st = COLL_ERR_SYSTEM;
    memset(host, 0xA5, span);
    if (be->ops->upload(be, recv, host, span)) return 0;
    /* The input, at the place the call reads it from. */
    size_t in_elems = k == C_ALLGATHER ? s.per_rank : k == C_BROADCAST ? s.count : s.send_elems;
    if (k == C_ALLGATHER)
        fill(host, s.per_rank, (size_t)r * s.per_rank, t, op, r);
    else if (k == C_BROADCAST)
        fill(host, s.count, 0, t, op, r == o->root ? o->root : r + 1000);
    else
        fill(host, s.send_elems, 0, t, op, r);
    if (be->ops->upload(be, (void *)sb, host, in_elems * esz)) return 0;
    *st = call(be, k, sb, rb, s.per_rank, t, op, o->root);
    if (*st != COLL_OK) return 0;
    if (be->ops->download(be, host, rb, s.recv_elems * esz)) {
        *st = COLL_ERR_SYSTEM;
        return 0;
    }
    long long wrong = 0;
    for (size_t i = 0; i < s.recv_elems; i++) {
        double want;
        if (k == C_ALLREDUCE)
            want = expected_value(op, n, i, t);
        else if (k == C_REDUCESCATTER)
            want = expected_value(op, n, (size_t)r * s.per_rank + i, t);
        else if (k == C_ALLGATHER)
            want = input_value(op, (int)(i / s.per_rank), i);
        else if (k == C_BROADCAST)
            want = input_value(op, o->root, i);
        else
            break;
        if (t == COLL_U8) want = fmod(want, 256.0);
        if (load(host, i, t) != want) wrong++;
    }
    return wrong;
}

static double bus_factor(bench_kind k, int n)
{
    if (k == C_ALLREDUCE) return 2.0 * (n - 1) / n;
    if (k == C_REDUCESCATTER || k == C_ALLGATHER) return (double)(n - 1) / n;
    return 1.0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    double time_us, algbw, busbw, p50, p99;
    long long wrong;
} result;

/* Combine a per-rank value across ranks: 0 rank 0's, 1 average, 2 min, 3 max. */
static coll_status combine(bench_backend *be, double *v, int how)
{
    double x = how == 0 && be->rank != 0 ? 0.0 : *v; /* rank 0's value: a sum of it and zeros */
    coll_op op = how <= 1 ? COLL_SUM : how == 2 ? COLL_MIN : COLL_MAX;
    coll_status st = be->ops->reduce_scalar(be, &x, op);
    if (how == 1) x /= be->size;
    *v = x;
    return st;
}

static coll_status measure(bench_backend *be, const opts *o, bench_kind k, unsigned char *send,
                           unsigned char *recv, unsigned char *host, sizes s, coll_dtype t,
                           coll_op op, int in_place, double *lat, result *res)
{
    size_t esz = coll_dtype_size(t);
    const void *sb;
    void *rb;
    place(k, in_place, send, recv, s.per_rank, esz, be->rank, &sb, &rb);
    coll_status st;
    for (int i = 0; i < o->warmup; i++)
        if ((st = call(be, k, sb, rb, s.per_rank, t, op, o->root)) != COLL_OK) return st;
    if ((st = be->ops->sync(be)) != COLL_OK || (st = be->ops->barrier(be)) != COLL_OK) return st;
    /* Throughput: back-to-back calls, as nccl-tests times them. */
    double t0 = rc_now_us();
    for (int i = 0; i < o->iters; i++)
        if ((st = call(be, k, sb, rb, s.per_rank, t, op, o->root)) != COLL_OK) return st;
    if ((st = be->ops->sync(be)) != COLL_OK) return st;
    double per_iter = (rc_now_us() - t0) / o->iters;
    /* Latency percentiles: each call on its own, waited for. */
    for (int i = 0; i < o->iters; i++) {
        double a = rc_now_us();
        if ((st = call(be, k, sb, rb, s.per_rank, t, op, o->root)) != COLL_OK ||
            (st = be->ops->sync(be)) != COLL_OK)
            return st;
        lat[i] = rc_now_us() - a;
    }
    qsort(lat, (size_t)o->iters, sizeof *lat, cmp_double);
    double p50 = lat[(o->iters - 1) / 2], p99 = lat[(size_t)ceil(0.99 * o->iters) - 1];
    if ((st = combine(be, &per_iter, o->average)) != COLL_OK ||
        (st = combine(be, &p50, 3)) != COLL_OK || (st = combine(be, &p99, 3)) != COLL_OK)
        return st;
    double bytes = (double)s.count * (double)esz;
    res->time_us = per_iter;
    res->p50 = p50;
    res->p99 = p99;
    res->algbw = bytes / per_iter / 1e3; /* GB/s with GB = 1e9 */
    res->busbw = res->algbw * bus_factor(k, be->size);
    res->wrong = 0;
    if (o->check) {
        long long w = checked_run(be, o, k, send, recv, host, s, t, op, in_place, &st);
        if (st != COLL_OK) return st;
        double wd = (double)w;
        if ((st = be->ops->reduce_scalar(be, &wd, COLL_SUM)) != COLL_OK) return st;
        res->wrong = (long long)wd;
    }
    return COLL_OK;
}

static void print_header(const opts *o, const bench_backend *be)
{
    if (o->json) return;
    printf("# coll-bench: %s, provider %s, %d ranks, %d iters, %d warm-up, check %s\n",
           bench_kind_names[o->coll], be->name, be->size, o->iters, o->warmup,
           o->check ? "on" : "off");
    printf("#\n# %10s %12s %8s %6s %6s %38s %38s %21s\n", "", "", "", "", "", "out-of-place",
           "in-place", "out-of-place latency");
    printf("# %10s %12s %8s %6s %6s %9s %8s %8s %6s %9s %8s %8s %6s %10s %10s\n", "size", "count",
           "type", "redop", "root", "time", "algbw", "busbw", "#wrong", "time", "algbw", "busbw",
           "#wrong", "p50", "p99");
    printf("# %10s %12s %8s %6s %6s %9s %8s %8s %6s %9s %8s %8s %6s %10s %10s\n", "(B)",
           "(elements)", "", "", "", "(us)", "(GB/s)", "(GB/s)", "", "(us)", "(GB/s)", "(GB/s)", "",
           "(us)", "(us)");
}

/* nccl-tests' type names, so that scripts reading its output read ours. */
static const char *nccl_type_name(coll_dtype t)
{
    static const char *const names[COLL_DTYPE_COUNT] = {
        [COLL_F32] = "float", [COLL_F64] = "double", [COLL_F16] = "half", [COLL_BF16] = "bfloat16",
        [COLL_I32] = "int32", [COLL_I64] = "int64",  [COLL_U8] = "uint8",
    };
    return (unsigned)t < COLL_DTYPE_COUNT ? names[t] : "?";
}

static void print_row(const opts *o, bench_kind k, size_t bytes, size_t count, coll_dtype t,
                      coll_op op, const result *oop, const result *ip)
{
    const char *redop = (k == C_ALLREDUCE || k == C_REDUCESCATTER) ? coll_op_name(op) : "none";
    int root = k == C_BROADCAST ? o->root : -1;
    if (o->json) {
        const result *rs[2] = {oop, ip};
        for (int j = 0; j < 2; j++)
            printf("{\"coll\":\"%s\",\"size\":%zu,\"count\":%zu,\"type\":\"%s\",\"redop\":\"%s\","
                   "\"root\":%d,"
                   "\"inplace\":%d,\"time_us\":%.3f,\"algbw\":%.4f,\"busbw\":%.4f,\"wrong\":%lld,"
                   "\"p50_us\":%.3f,\"p99_us\":%.3f}\n",
                   bench_kind_names[k], bytes, count, nccl_type_name(t), redop, root, j,
                   rs[j]->time_us, rs[j]->algbw, rs[j]->busbw, rs[j]->wrong, rs[j]->p50,
                   rs[j]->p99);
    } else {
        printf("  %10zu %12zu %8s %6s %6d %9.2f %8.3f %8.3f %6lld %9.2f %8.3f %8.3f %6lld %10.2f "
               "%10.2f\n",
               bytes, count, nccl_type_name(t), redop, root, oop->time_us, oop->algbw, oop->busbw,
               oop->wrong, ip->time_us, ip->algbw, ip->busbw, ip->wrong, oop->p50, oop->p99);
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    opts o;
    if (parse_args(argc, argv, &o)) return 2;
    if (o.print_config) {
        int bad = bench_print_config(stdout, o.provider) != 0;
        if (fflush(stdout) != 0 || ferror(stdout)) {
            fprintf(stderr, "coll-bench: cannot write to standard output: %s\n", strerror(errno));
            bad = 1;
        }
        return bad;
    }
    if ((o.coll == C_ALLREDUCE || o.coll == C_REDUCESCATTER) && !o.all_ops && !o.all_types &&
        !coll_op_valid_for(o.op, o.type)) {
        fprintf(stderr, "coll-bench: -o %s is not defined for -d %s: nothing to measure\n",
                coll_op_name(o.op), coll_dtype_name(o.type));
        return 2;
    }
    char err[512];
    bench_backend *be = NULL;
    if (bench_backend_open(o.provider, o.timeout_s, o.device, &be, err, sizeof err) != 0) {
        fprintf(stderr, "coll-bench: %s\n", err);
        return 1;
    }
    int rc = 0;
    if (o.root < 0 || o.root >= be->size) {
        fprintf(stderr, "coll-bench: -r %d is outside 0..%d\n", o.root, be->size - 1);
        be->ops->close(be);
        return 2;
    }
    /* The largest buffers any size in the sweep needs. */
    size_t cap = o.maxbytes < 8 ? 8 : o.maxbytes;
    unsigned char *send = be->ops->alloc(be, cap), *recv = be->ops->alloc(be, cap),
                  *host = malloc(cap);
    double *lat = malloc((size_t)o.iters * sizeof *lat);
    if (!send || !recv || !host || !lat) {
        fprintf(stderr, "coll-bench: cannot allocate 3 x %zu bytes\n", cap);
        return 1;
    }
    if (be->rank == 0) print_header(&o, be);
    long long wrong_total = 0;
    double busbw_sum = 0;
    int rows = 0;
    for (int ti = 0; ti < COLL_DTYPE_COUNT; ti++) {
        coll_dtype t = o.all_types ? (coll_dtype)ti : o.type;
        if (!o.all_types && ti > 0) break;
        for (int oi = 0; oi < COLL_OP_COUNT; oi++) {
            coll_op op = o.all_ops ? (coll_op)oi : o.op;
            if (!o.all_ops && oi > 0) break;
            int reduces = o.coll == C_ALLREDUCE || o.coll == C_REDUCESCATTER;
            if (!reduces && oi > 0) break;
            if (reduces && !coll_op_valid_for(op, t)) continue;
            size_t esz = coll_dtype_size(t);
            for (size_t bytes = o.minbytes;;) {
                sizes s = sizes_for(o.coll, bytes, esz, be->size);
                result oop, ip;
                coll_status st = measure(be, &o, o.coll, send, recv, host, s, t, op, 0, lat, &oop);
                if (st == COLL_OK)
                    st = measure(be, &o, o.coll, send, recv, host, s, t, op, 1, lat, &ip);
                if (st != COLL_OK) {
                    fprintf(stderr, "coll-bench: rank %d: %s: %s\n", be->rank, coll_status_str(st),
                            be->ops->last_error(be));
                    rc = 1;
                    goto done;
                }
                if (be->rank == 0) print_row(&o, o.coll, s.count * esz, s.count, t, op, &oop, &ip);
                wrong_total += oop.wrong + ip.wrong;
                busbw_sum += (oop.busbw + ip.busbw) / 2;
                rows++;
                size_t next =
                    o.stepfactor > 1 ? (size_t)((double)bytes * o.stepfactor) : bytes + o.stepbytes;
                if (next <= bytes || next > o.maxbytes) break;
                bytes = next;
            }
        }
    }
done:
    /* OK only for a run that measured something and did not fail. */
    if (!rc && rows == 0) {
        fprintf(stderr,
                "coll-bench: rank %d: nothing measured (no op of -o is defined for a "
                "type of -d)\n",
                be->rank);
        rc = 1;
    }
    if (be->rank == 0 && !o.json) {
        printf("# Out of bounds values : %lld %s\n", wrong_total,
               wrong_total || rc ? "FAILED" : "OK");
        printf("# Avg bus bandwidth    : %.4f\n#\n", rows ? busbw_sum / rows : 0.0);
    }
    if (wrong_total) rc = 1;
    /* The table is the result: losing it (a full disk, a closed pipe) is a failure. */
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "coll-bench: rank %d: cannot write the results: %s\n", be->rank,
                strerror(errno));
        rc = 1;
    }
    be->ops->release(be, send);
    be->ops->release(be, recv);
    be->ops->close(be);
    free(host);
    free(lat);
    return rc;
}
