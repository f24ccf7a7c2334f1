/* coll-bench backend: libring directly, from RING_CONFIG. */
#include "bench_backend.h"

#include <stdlib.h>
#include <string.h>

static ring_comm *comm_of(bench_backend *b) { return b->impl; }

static ring_status r_allreduce(bench_backend *b, const void *s, void *r, size_t n, ring_dtype t, ring_op op)
{
    return ring_allreduce(comm_of(b), s, r, n, t, op);
}
static ring_status r_reduce_scatter(bench_backend *b, const void *s, void *r, size_t n, ring_dtype t,
                                    ring_op op)
{
    return ring_reduce_scatter(comm_of(b), s, r, n, t, op);
}
static ring_status r_allgather(bench_backend *b, const void *s, void *r, size_t n, ring_dtype t)
{
    return ring_allgather(comm_of(b), s, r, n, t);
}
static ring_status r_broadcast(bench_backend *b, const void *s, void *r, size_t n, ring_dtype t, int root)
{
    return ring_broadcast(comm_of(b), s, r, n, t, root);
}
static ring_status r_barrier(bench_backend *b) { return ring_barrier(comm_of(b)); }
static const char *r_last_error(bench_backend *b) { return ring_comm_last_error(comm_of(b)); }
static void r_close(bench_backend *b)
{
    ring_comm_destroy(comm_of(b));
    free(b);
}

static const bench_ops ring_ops = {
    .allreduce = r_allreduce,
    .reduce_scatter = r_reduce_scatter,
    .allgather = r_allgather,
    .broadcast = r_broadcast,
    .barrier = r_barrier,
    .last_error = r_last_error,
    .close = r_close,
};

int bench_backend_open(const char *provider, int timeout_s, bench_backend **out, char *err, size_t errlen)
{
    if (provider && strcmp(provider, "ring") != 0) {
        snprintf(err, errlen, "provider '%s' is not available in this build (have: %s)", provider,
                 bench_backend_names());
        return -1;
    }
    bench_backend *b = calloc(1, sizeof *b);
    if (!b) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ring_params p;
    ring_params_init(&p);
    p.op_timeout_ms = timeout_s * 1000;
    ring_comm *c;
    if (ring_comm_create_from_env(&p, &c, err, errlen) != RING_OK) {
        free(b);
        return -1;
    }
    *b = (bench_backend){.ops = &ring_ops, .name = "ring", .rank = ring_comm_rank(c),
                         .size = ring_comm_size(c), .impl = c};
    *out = b;
    return 0;
}

const char *bench_backend_names(void) { return "ring"; }

int bench_print_config(FILE *out, const char *provider)
{
    fprintf(out, "provider: %s\nknobs:\n", provider ? provider : "ring");
    ring_knobs_print(out);
    return 0;
}
