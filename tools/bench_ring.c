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
    .alloc = bench_host_alloc,
    .release = bench_host_release,
    .upload = bench_host_copy_in,
    .download = bench_host_copy_out,
    .sync = bench_host_sync,
    .reduce_scalar = bench_host_reduce_scalar,
};

void *bench_host_alloc(bench_backend *b, size_t bytes)
{
    (void)b;
    void *p = malloc(bytes ? bytes : 1);
    if (p) memset(p, 0, bytes); /* touch every page before timing */
    return p;
}
void bench_host_release(bench_backend *b, void *p)
{
    (void)b;
    free(p);
}
int bench_host_copy_in(bench_backend *b, void *dst, const void *host, size_t bytes)
{
    (void)b;
    if (dst != host) memmove(dst, host, bytes);
    return 0;
}
int bench_host_copy_out(bench_backend *b, void *host, const void *src, size_t bytes)
{
    (void)b;
    if (host != src) memmove(host, src, bytes);
    return 0;
}
ring_status bench_host_sync(bench_backend *b)
{
    (void)b;
    return RING_OK;
}
ring_status bench_host_reduce_scalar(bench_backend *b, double *v, ring_op op)
{
    return b->ops->allreduce(b, v, v, 1, RING_F64, op);
}

int bench_ring_open(int timeout_s, bench_backend **out, char *err, size_t errlen)
{
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

int bench_backend_open(const char *provider, int timeout_s, int device, bench_backend **out, char *err,
                       size_t errlen)
{
    if ((!provider || strcmp(provider, "ring") == 0) && !device) return bench_ring_open(timeout_s, out, err, errlen);
    return bench_coll_open(provider ? provider : "ring", timeout_s, device, out, err, errlen);
}

const char *bench_backend_names(void)
{
    return "ring (libring directly, the default), auto (libcoll's selection), coll-ring, nccl, local, p2p (one-shot CUDA IPC all-reduce up to COLL_P2P_MAX_BYTES, then the selected provider)";
}
