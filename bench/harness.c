/* SPDX-License-Identifier: MIT */
/* Driver shared by the peer harnesses: options, sweep, pattern, timing, output. */
#define _POSIX_C_SOURCE 200809L
#include "harness.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HB_MAX_ITERS 1000000

static void usage(FILE *f, const char *prog, int with_launch)
{
    fprintf(f,
            "usage: %s [options]\n"
            "  -b, --minbytes N        smallest size in bytes (K/M/G suffixes, 1024-based; 4K)\n"
            "  -e, --maxbytes N        largest size (256M)\n"
            "  -f, --stepfactor F      multiply the size by F each step (16)\n"
            "  -i, --stepbytes N       add N bytes each step instead (0: use -f)\n"
            "  -n, --iters N           timed iterations per size (20)\n"
            "  -w, --warmup_iters N    untimed iterations first (5)\n"
            "  -c, --check 0|1         check results (1)\n"
            "  -T, --timeout S         kill the whole run after S seconds (600)\n"
            "      --json              print one JSON object per size instead of the table\n",
            prog);
    if (with_launch)
        fprintf(f, "  -R, --rank R            this process's rank\n"
                   "  -N, --nranks N          number of ranks\n"
                   "  -S, --store DIR         rendezvous directory (empty, shared by all ranks)\n"
                   "  -A, --algo NAME         ring_chunked | allreduce\n");
    fprintf(f, "Data: float32, sum. time_us is the mean over iterations of the slowest rank;\n"
               "p50/p99 are over per-iteration maxima across ranks. GB = 1e9 bytes,\n"
               "busbw = algbw * 2(n-1)/n.\n");
}

/* "64K", "1M", "4096" -> bytes; K/M/G are powers of 1024. */
static int parse_bytes(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-') return -1;
    unsigned long long mult = 1;
    switch (*end) {
    case 'K':
    case 'k':
        mult = 1ULL << 10;
        end++;
        break;
    case 'M':
    case 'm':
        mult = 1ULL << 20;
        end++;
        break;
    case 'G':
    case 'g':
        mult = 1ULL << 30;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'i') end++;
    if (*end == 'B') end++;
    if (*end != '\0' || v > SIZE_MAX / mult) return -1;
    *out = (size_t)(v * mult);
    return 0;
}

static int parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

static void on_alarm(int sig)
{
    static const char msg[] = "peer harness: the run exceeded its -T/--timeout; exiting\n";
    (void)sig;
    ssize_t n = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)n;
    _exit(3);
}

int hb_parse(int argc, char **argv, struct hb_opts *o, int with_launch)
{
    static const struct option longopts[] = {{"minbytes", required_argument, 0, 'b'},
                                             {"maxbytes", required_argument, 0, 'e'},
                                             {"stepfactor", required_argument, 0, 'f'},
                                             {"stepbytes", required_argument, 0, 'i'},
                                             {"iters", required_argument, 0, 'n'},
                                             {"warmup_iters", required_argument, 0, 'w'},
                                             {"check", required_argument, 0, 'c'},
                                             {"timeout", required_argument, 0, 'T'},
                                             {"json", no_argument, 0, 'J'},
                                             {"rank", required_argument, 0, 'R'},
                                             {"nranks", required_argument, 0, 'N'},
                                             {"store", required_argument, 0, 'S'},
                                             {"algo", required_argument, 0, 'A'},
                                             {"help", no_argument, 0, 'h'},
                                             {0, 0, 0, 0}};
    const char *prog = argv[0];
    *o = (struct hb_opts){.minbytes = 4096,
                          .maxbytes = 256u << 20,
                          .stepfactor = 16,
                          .iters = 20,
                          .warmup = 5,
                          .check = 1,
                          .timeout_s = 600,
                          .rank = -1,
                          .nranks = -1};
    const char *shortopts = with_launch ? "b:e:f:i:n:w:c:T:R:N:S:A:h" : "b:e:f:i:n:w:c:T:h";
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, shortopts, longopts, NULL)) != -1) {
        const char *a = optarg;
        int bad = 0;
        if (!with_launch && (c == 'R' || c == 'N' || c == 'S' || c == 'A')) c = '?';
        switch (c) {
        case 'b':
            bad = parse_bytes(a, &o->minbytes);
            break;
        case 'e':
            bad = parse_bytes(a, &o->maxbytes);
            break;
        case 'i':
            bad = parse_bytes(a, &o->stepbytes);
            break;
        case 'f': {
            char *end;
            o->stepfactor = strtod(a, &end);
            bad = (end == a || *end != '\0' || !(o->stepfactor > 1.0));
            break;
        }
        case 'n':
            bad = parse_int(a, 1, HB_MAX_ITERS, &o->iters);
            break;
        case 'w':
            bad = parse_int(a, 0, HB_MAX_ITERS, &o->warmup);
            break;
        case 'c':
            bad = parse_int(a, 0, 1, &o->check);
            break;
        case 'T':
            bad = parse_int(a, 1, 86400, &o->timeout_s);
            break;
        case 'J':
            o->json = 1;
            break;
        case 'R':
            bad = parse_int(a, 0, 4095, &o->rank);
            break;
        case 'N':
            bad = parse_int(a, 1, 4096, &o->nranks);
            break;
        case 'S':
            o->store = a;
            break;
        case 'A':
            o->algo = a;
            break;
        case 'h':
            usage(stdout, prog, with_launch);
            return 1;
        default:
            fprintf(stderr, "%s: unknown option or missing value: '%s' (try --help)\n", prog,
                    argv[optind - 1]);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "%s: bad value '%s' for option '%s'\n", prog, a, argv[optind - 1]);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return -1;
    }
    if (o->minbytes < 4 || o->minbytes % 4 || o->stepbytes % 4) {
        fprintf(stderr, "%s: -b and -i must be positive multiples of 4 bytes (float32)\n", prog);
        return -1;
    }
    if (o->maxbytes < o->minbytes) {
        fprintf(stderr, "%s: -e (%zu) is smaller than -b (%zu)\n", prog, o->maxbytes, o->minbytes);
        return -1;
    }
    if (with_launch) {
        if (o->rank < 0 || o->nranks < 1 || !o->store || !o->algo) {
            fprintf(stderr, "%s: --rank, --nranks, --store and --algo are required\n", prog);
            return -1;
        }
        if (o->rank >= o->nranks) {
            fprintf(stderr, "%s: --rank %d is not below --nranks %d\n", prog, o->rank, o->nranks);
            return -1;
        }
    }
    /* From here the whole run (rendezvous included) is bounded: on SIGALRM the process
     * exits, and the launcher (mpirun or peers.sh) then ends its peers. */
    struct sigaction sa = {.sa_handler = on_alarm};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    alarm((unsigned)o->timeout_s);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Small integers, so any summation order is exact in float32. */
static float pattern(int rank, size_t i)
{
    return (float)((i * 7 + (size_t)rank * 3) % 11);
}

static void fill(float *buf, size_t count, int rank)
{
    for (size_t i = 0; i < count; i++)
        buf[i] = pattern(rank, i);
}

static size_t count_wrong(const float *buf, size_t count, int nranks)
{
    size_t wrong = 0;
    for (size_t i = 0; i < count; i++) {
        float want = 0;
        for (int r = 0; r < nranks; r++)
            want += pattern(r, i);
        wrong += buf[i] != want;
    }
    return wrong;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[0..n). */
static double percentile(const double *v, int n, double p)
{
    int k = (int)ceil(p * n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return v[k];
}

static size_t next_size(const struct hb_opts *o, size_t s)
{
    if (o->stepbytes) return s + o->stepbytes;
    double n = (double)s * o->stepfactor;
    if (n > (double)SIZE_MAX) return SIZE_MAX;
    return ((size_t)n + 3) & ~(size_t)3;
}

static void print_header(const struct hb_opts *o, const struct hb_ops *ops)
{
    if (o->json) return;
    printf("# %s all-reduce, %d ranks, float32 sum, iters %d, warmup %d, check %d%s\n", ops->impl,
           ops->nranks, o->iters, o->warmup, o->check,
           ops->in_place ? " (in place; timed data is zeros)" : "");
    printf("#%12s %12s %6s %6s %11s %8s %8s %7s %11s %11s\n", "size", "count", "type", "redop",
           "time_us", "algbw", "busbw", "#wrong", "p50_us", "p99_us");
    printf("#%12s %12s %6s %6s %11s %8s %8s %7s %11s %11s\n", "(B)", "(elements)", "", "", "(mean)",
           "(GB/s)", "(GB/s)", "", "", "");
}

/* One size: check pass, warmup, timed loop, combine, print. Returns 0, or -1 on error;
 * adds the number of wrong elements to *wrong_total and busbw to *bw_sum. */
static int run_size(const struct hb_opts *o, const struct hb_ops *ops, float *in, float *out,
                    size_t bytes, double *times, double *wrong_total, double *bw_sum)
{
    size_t count = bytes / sizeof(float);
    double (*now)(void) = ops->now ? ops->now : now_s;
    double wrong = 0;
    fill(in, count, ops->rank);
    if (ops->setup(ops->ctx, in, out, count)) return -1;
    int rc = -1;
    if (o->check) {
        if (ops->allreduce(ops->ctx)) goto teardown;
        wrong += (double)count_wrong(out, count, ops->nranks);
    }
    if (ops->in_place) memset(in, 0, bytes); /* repeated in-place sums of zeros stay finite */
    for (int i = 0; i < o->warmup; i++)
        if (ops->allreduce(ops->ctx)) goto teardown;
    double one = 0;
    if (ops->combine(ops->ctx, &one, 1, HB_MAX)) /* start the timed loop together */
        goto teardown;
    double t_start = now();
    for (int i = 0; i < o->iters; i++) {
        double a = now();
        if (ops->allreduce(ops->ctx)) goto teardown;
        times[1 + i] = now() - a;
    }
    times[0] = now() - t_start;
    if (o->check && !ops->in_place) /* the timed loop's output must be right too */
        wrong += (double)count_wrong(out, count, ops->nranks);
    if (ops->combine(ops->ctx, times, 1 + o->iters, HB_MAX) ||
        ops->combine(ops->ctx, &wrong, 1, HB_SUM))
        goto teardown;
    rc = 0;
    if (ops->rank == 0) {
        double mean_s = times[0] / o->iters;
        qsort(times + 1, (size_t)o->iters, sizeof(double), cmp_double);
        double p50 = percentile(times + 1, o->iters, 0.50);
        double p99 = percentile(times + 1, o->iters, 0.99);
        double algbw = (double)bytes / mean_s / 1e9;
        double busbw = algbw * 2.0 * (ops->nranks - 1) / ops->nranks;
        if (o->json)
            printf("{\"impl\":\"%s\",\"nranks\":%d,\"size\":%zu,\"count\":%zu,"
                   "\"type\":\"float\",\"redop\":\"sum\",\"inplace\":%d,\"time_us\":%.3f,"
                   "\"p50_us\":%.3f,\"p99_us\":%.3f,\"algbw\":%.4f,\"busbw\":%.4f,"
                   "\"wrong\":%.0f}\n",
                   ops->impl, ops->nranks, bytes, count, ops->in_place, mean_s * 1e6, p50 * 1e6,
                   p99 * 1e6, algbw, busbw, wrong);
        else
            printf(" %12zu %12zu %6s %6s %11.2f %8.3f %8.3f %7.0f %11.2f %11.2f\n", bytes, count,
                   "float", "sum", mean_s * 1e6, algbw, busbw, wrong, p50 * 1e6, p99 * 1e6);
        fflush(stdout);
    }
    *wrong_total += wrong;
    *bw_sum += (double)bytes / (times[0] / o->iters) / 1e9 * 2.0 * (ops->nranks - 1) / ops->nranks;
teardown:
    ops->teardown(ops->ctx);
    return rc;
}

int hb_run(const struct hb_opts *o, const struct hb_ops *ops)
{
    float *in = NULL, *out = NULL;
    double *times = calloc((size_t)o->iters + 1, sizeof(double));
    size_t cap = (o->maxbytes + 63) & ~(size_t)63;
    in = aligned_alloc(64, cap);
    if (!ops->in_place)
        out = aligned_alloc(64, cap);
    else
        out = in;
    if (!times || !in || !out) {
        fprintf(stderr, "%s: rank %d: cannot allocate %zu bytes for buffers\n", ops->impl,
                ops->rank, cap);
        free(times);
        free(in);
        if (out != in) free(out);
        return 2;
    }
    if (ops->rank == 0) print_header(o, ops);
    double wrong = 0, bw_sum = 0;
    int nsizes = 0, status = 0;
    for (size_t s = o->minbytes; s <= o->maxbytes; s = next_size(o, s)) {
        if (run_size(o, ops, in, out, s, times, &wrong, &bw_sum)) {
            status = 2;
            break;
        }
        nsizes++;
        if (s == SIZE_MAX || next_size(o, s) <= s) break;
    }
    if (status == 0 && wrong > 0) status = 1;
    if (ops->rank == 0 && !o->json && nsizes > 0) {
        printf("# Out of bounds values : %.0f %s\n", wrong, wrong > 0 ? "FAILED" : "OK");
        printf("# Avg bus bandwidth    : %.4f\n", bw_sum / nsizes);
    }
    if (ops->rank == 0 && wrong > 0) fprintf(stderr, "%s: %.0f wrong elements\n", ops->impl, wrong);
    free(times);
    if (out != in) free(out);
    free(in);
    return status;
}
