/* SPDX-License-Identifier: MIT */
/* coll-bench backend: libring directly, from RING_CONFIG; coll.h's types and statuses
 * translated to and from libring's here, in one place. */
#include "bench_backend.h"
#include "ring.h"

#include <stdlib.h>
#include <string.h>

static ring_comm *comm_of(bench_backend *b)
{
    return b->impl;
}

/* Both libraries list types and ops in the same order (coll.h says so); statuses differ. */
_Static_assert((int)COLL_U8 == (int)RING_U8 && (int)COLL_AVG == (int)RING_AVG,
               "coll.h and ring.h list types and ops in the same order");
static ring_dtype rt(coll_dtype t)
{
    return (ring_dtype)t;
}
static ring_op rop(coll_op op)
{
    return (ring_op)op;
}

static coll_status to_coll(ring_status s)
{
    switch (s) {
    case RING_OK:
        return COLL_OK;
    case RING_ERR_INVALID_ARG:
        return COLL_ERR_INVALID_ARG;
    case RING_ERR_CONFIG:
        return COLL_ERR_CONFIG;
    case RING_ERR_NOMEM:
        return COLL_ERR_NOMEM;
    case RING_ERR_TIMEOUT:
        return COLL_ERR_TIMEOUT;
    case RING_ERR_PEER_CLOSED:
        return COLL_ERR_PEER_CLOSED;
    case RING_ERR_PROTOCOL:
        return COLL_ERR_PROTOCOL;
    case RING_ERR_INVALID_USAGE:
        return COLL_ERR_INVALID_USAGE;
    case RING_ERR_AUTH:
        return COLL_ERR_AUTH;
    case RING_ERR_UNSUPPORTED:
        return COLL_ERR_UNSUPPORTED;
    case RING_ERR_ABORTED:
        return COLL_ERR_ABORTED;
    case RING_ERR_FAILED:
        return COLL_ERR_FAILED;
    default:
        return COLL_ERR_SYSTEM;
    }
}

static coll_status r_allreduce(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t,
                               coll_op op)
{
    return to_coll(ring_allreduce(comm_of(b), s, r, n, rt(t), rop(op)));
}
static coll_status r_reduce_scatter(bench_backend *b, const void *s, void *r, size_t n,
                                    coll_dtype t, coll_op op)
{
    return to_coll(ring_reduce_scatter(comm_of(b), s, r, n, rt(t), rop(op)));
}
static coll_status r_allgather(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t)
{
    return to_coll(ring_allgather(comm_of(b), s, r, n, rt(t)));
}
static coll_status r_broadcast(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t,
                               int root)
{
    return to_coll(ring_broadcast(comm_of(b), s, r, n, rt(t), root));
}
static coll_status r_barrier(bench_backend *b)
{
    return to_coll(ring_barrier(comm_of(b)));
}
static const char *r_last_error(bench_backend *b)
{
    return ring_comm_last_error(comm_of(b));
}
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
coll_status bench_host_sync(bench_backend *b)
{
    (void)b;
    return COLL_OK;
}
coll_status bench_host_reduce_scalar(bench_backend *b, double *v, coll_op op)
{
    return b->ops->allreduce(b, v, v, 1, COLL_F64, op);
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
    *b = (bench_backend){.ops = &ring_ops,
                         .name = "ring",
                         .rank = ring_comm_rank(c),
                         .size = ring_comm_size(c),
                         .impl = c};
    *out = b;
    return 0;
}

int bench_backend_open(const char *provider, int timeout_s, int device, bench_backend **out,
                       char *err, size_t errlen)
{
    if ((!provider || strcmp(provider, "ring") == 0) && !device)
        return bench_ring_open(timeout_s, out, err, errlen);
    return bench_coll_open(provider ? provider : "ring", timeout_s, device, out, err, errlen);
}

const char *bench_backend_names(void)
{
    return "ring (libring directly, the default), auto (libcoll's selection), coll-ring, nccl, "
           "local, p2p (one-shot CUDA IPC all-reduce up to COLL_P2P_MAX_BYTES, then the selected "
           "provider)";
}

int bench_print_config(FILE *out, const char *provider)
{
    fprintf(out, "coll-bench provider: %s\n\nlibring knobs:\n",
            provider ? provider : "ring (libring directly)");
    ring_knobs_print(out);
    fprintf(out, "\nlibcoll:\n");
    coll_params p;
    coll_params_init(&p);
    if (provider && strcmp(provider, "auto") && strcmp(provider, "ring") && strcmp(provider, "p2p"))
        p.provider = provider;
    coll_print_config(out, &p);
    return 0;
}
