/* coll-bench's view of a provider: the five collectives on host buffers. */
#ifndef BENCH_BACKEND_H
#define BENCH_BACKEND_H

#include "ring.h"

#include <stdio.h>

typedef struct bench_backend bench_backend;

typedef struct bench_ops {
    ring_status (*allreduce)(bench_backend *b, const void *s, void *r, size_t n, ring_dtype t, ring_op op);
    ring_status (*reduce_scatter)(bench_backend *b, const void *s, void *r, size_t n, ring_dtype t,
                                  ring_op op);
    ring_status (*allgather)(bench_backend *b, const void *s, void *r, size_t n, ring_dtype t);
    ring_status (*broadcast)(bench_backend *b, const void *s, void *r, size_t n, ring_dtype t, int root);
    ring_status (*barrier)(bench_backend *b);
    const char *(*last_error)(bench_backend *b);
    void (*close)(bench_backend *b);
} bench_ops;

struct bench_backend {
    const bench_ops *ops;
    const char *name;
    int rank, size;
    void *impl;
};

/* provider NULL: the default for this build. */
int bench_backend_open(const char *provider, int timeout_s, bench_backend **out, char *err, size_t errlen);
const char *bench_backend_names(void);
int bench_print_config(FILE *out, const char *provider);

#endif
