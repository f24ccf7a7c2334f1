/* SPDX-License-Identifier: MIT */
/* Shared driver of the peer harnesses (mpi_allreduce, gloo_allreduce).
 *
 * Each harness supplies a small table of operations (one all-reduce of the
 * current size, a combine of a few doubles across ranks); this driver owns the
 * command line, the size sweep, the data pattern and its check, the timing and
 * the output (an nccl-tests-like table, or JSON lines with --json).
 * Single-threaded: one sweep per process. */
#ifndef BENCH_HARNESS_H
#define BENCH_HARNESS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum hb_combine { HB_MAX, HB_SUM };

struct hb_opts {
    size_t minbytes, maxbytes, stepbytes; /* stepbytes 0: multiply by stepfactor */
    double stepfactor;
    int iters, warmup, check, json, timeout_s;
    /* Only for harnesses that launch without a launcher (gloo). */
    int rank, nranks;
    const char *store; /* rendezvous directory */
    const char *algo;  /* harness-specific algorithm name */
};

/* What a harness provides. `ctx` is its own state. Every function returns 0 on
 * success, or prints a one-line error to stderr and returns -1. */
struct hb_ops {
    const char *impl; /* name in the output, e.g. "mpi", "gloo-ring-chunked" */
    int rank, nranks;
    int in_place; /* the all-reduce writes its result over its input */
    void *ctx;
    /* Prepare for all-reduces of `count` floats from `in` into `out`
     * (out == in when in_place). Called once per size, outside timing. */
    int (*setup)(void *ctx, float *in, float *out, size_t count);
    int (*allreduce)(void *ctx);
    void (*teardown)(void *ctx);
    /* Element-wise combine of v[0..n) across all ranks, result on every rank. */
    int (*combine)(void *ctx, double *v, int n, enum hb_combine how);
    /* Clock in seconds; NULL: CLOCK_MONOTONIC. */
    double (*now)(void);
};

/* Parses argv. `with_launch` accepts --rank/--nranks/--store/--algo too.
 * Returns 0, 1 after printing help (exit 0), or -1 after a one-line error.
 * On 0 it also arms alarm(timeout_s): past it the process exits with status 3. */
int hb_parse(int argc, char **argv, struct hb_opts *o, int with_launch);

/* Runs the sweep; prints on rank 0. Returns the process exit status:
 * 0, 1 for wrong results, 2 for an error (3 is the timeout's, see hb_parse). */
int hb_run(const struct hb_opts *o, const struct hb_ops *ops);

#ifdef __cplusplus
}
#endif

#endif
