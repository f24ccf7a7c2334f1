/* SPDX-License-Identifier: MIT */
/* coll-bench's view of a provider: the five collectives, typed on libcoll's coll.h whether
 * the calls go to libcoll or straight to libring (bench_ring.c translates). */
#ifndef BENCH_BACKEND_H
#define BENCH_BACKEND_H

#include "coll.h"

#include <stdio.h>

typedef struct bench_backend bench_backend;

typedef struct bench_ops {
    coll_status (*allreduce)(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t,
                             coll_op op);
    coll_status (*reduce_scatter)(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t,
                                  coll_op op);
    coll_status (*allgather)(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t);
    coll_status (*broadcast)(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t,
                             int root);
    coll_status (*barrier)(bench_backend *b);
    const char *(*last_error)(bench_backend *b);
    void (*close)(bench_backend *b);
    /* Buffers: host memory, or device memory for providers that use it. */
    void *(*alloc)(bench_backend *b, size_t bytes);
    void (*release)(bench_backend *b, void *p);
    int (*upload)(bench_backend *b, void *dst, const void *host, size_t bytes);
    int (*download)(bench_backend *b, void *host, const void *src, size_t bytes);
    /* Wait until every call made so far has finished (stream-ordered providers). */
    coll_status (*sync)(bench_backend *b);
    /* All-reduce one host double (timings, #wrong), whatever memory the data lives in. */
    coll_status (*reduce_scalar)(bench_backend *b, double *v, coll_op op);
} bench_ops;

/* Host-memory implementations, for backends that need nothing else. */
void *bench_host_alloc(bench_backend *b, size_t bytes);
void bench_host_release(bench_backend *b, void *p);
int bench_host_copy_in(bench_backend *b, void *dst, const void *host, size_t bytes);
int bench_host_copy_out(bench_backend *b, void *host, const void *src, size_t bytes);
coll_status bench_host_sync(bench_backend *b);
coll_status bench_host_reduce_scalar(bench_backend *b, double *v, coll_op op);

struct bench_backend {
    const bench_ops *ops;
    const char *name;
    int rank, size;
    void *impl;
};

/* provider NULL or "ring": libring directly, from RING_CONFIG. Others go through libcoll. */
int bench_backend_open(const char *provider, int timeout_s, int device, bench_backend **out,
                       char *err, size_t errlen);
int bench_ring_open(int timeout_s, bench_backend **out, char *err, size_t errlen);
int bench_coll_open(const char *provider, int timeout_s, int device, bench_backend **out, char *err,
                    size_t errlen);
const char *bench_backend_names(void);
int bench_print_config(FILE *out, const char *provider);

#endif
