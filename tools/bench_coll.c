/* SPDX-License-Identifier: MIT */
/* coll-bench backend: libcoll, with any of its providers, on host or CUDA device buffers. */
#include "config.h"

#include "bench_backend.h"
#include "coll.h"

#include <stdlib.h>
#include <string.h>

#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

typedef struct coll_impl {
    coll_comm *comm;
    void *stream;    /* cudaStream_t for device buffers, else NULL */
    double *dscalar; /* device buffers: one double for reduce_scalar */
} coll_impl;

static coll_impl *impl_of(bench_backend *b)
{
    return b->impl;
}

static coll_status c_allreduce(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t,
                               coll_op op)
{
    return coll_allreduce(impl_of(b)->comm, s, r, n, t, op, impl_of(b)->stream);
}
static coll_status c_reduce_scatter(bench_backend *b, const void *s, void *r, size_t n,
                                    coll_dtype t, coll_op op)
{
    return coll_reduce_scatter(impl_of(b)->comm, s, r, n, t, op, impl_of(b)->stream);
}
static coll_status c_allgather(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t)
{
    return coll_allgather(impl_of(b)->comm, s, r, n, t, impl_of(b)->stream);
}
static coll_status c_broadcast(bench_backend *b, const void *s, void *r, size_t n, coll_dtype t,
                               int root)
{
    return coll_broadcast(impl_of(b)->comm, s, r, n, t, root, impl_of(b)->stream);
}
static coll_status c_barrier(bench_backend *b)
{
    return coll_barrier(impl_of(b)->comm);
}
static const char *c_last_error(bench_backend *b)
{
    return coll_comm_last_error(impl_of(b)->comm);
}
static coll_status c_sync(bench_backend *b)
{
    return coll_sync(impl_of(b)->comm, impl_of(b)->stream);
}

static void c_close(bench_backend *b)
{
    coll_impl *x = impl_of(b);
#ifdef HAVE_CUDA
    if (x->stream) cudaStreamDestroy((cudaStream_t)x->stream);
    if (x->dscalar) cudaFree(x->dscalar);
#endif
    coll_comm_destroy(x->comm);
    free(x);
    free(b);
}

static const bench_ops host_ops = {
    .allreduce = c_allreduce,
    .reduce_scatter = c_reduce_scatter,
    .allgather = c_allgather,
    .broadcast = c_broadcast,
    .barrier = c_barrier,
    .last_error = c_last_error,
    .close = c_close,
    .alloc = bench_host_alloc,
    .release = bench_host_release,
    .upload = bench_host_copy_in,
    .download = bench_host_copy_out,
    .sync = c_sync,
    .reduce_scalar = bench_host_reduce_scalar,
};

#ifdef HAVE_CUDA
static void *d_alloc(bench_backend *b, size_t bytes)
{
    (void)b;
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) return NULL;
    cudaMemset(p, 0, bytes);
    return p;
}
static void d_release(bench_backend *b, void *p)
{
    (void)b;
    cudaFree(p);
}
static int d_upload(bench_backend *b, void *dst, const void *host, size_t bytes)
{
    (void)b;
    /* From pageable memory, cudaMemcpy may return before a small copy (<= 64 KB) has
     * landed; the provider's own streams are not ordered after it, so wait here. */
    if (cudaMemcpy(dst, host, bytes, cudaMemcpyHostToDevice) != cudaSuccess) return -1;
    return cudaDeviceSynchronize() == cudaSuccess ? 0 : -1;
}
static int d_download(bench_backend *b, void *host, const void *src, size_t bytes)
{
    coll_status st = c_sync(b);
    if (st != COLL_OK) return -1;
    return cudaMemcpy(host, src, bytes, cudaMemcpyDeviceToHost) == cudaSuccess ? 0 : -1;
}

static coll_status d_reduce_scalar(bench_backend *b, double *v, coll_op op)
{
    coll_impl *x = impl_of(b);
    if (d_upload(b, x->dscalar, v, sizeof *v)) return COLL_ERR_SYSTEM;
    coll_status st = c_allreduce(b, x->dscalar, x->dscalar, 1, COLL_F64, op);
    if (st == COLL_OK && d_download(b, v, x->dscalar, sizeof *v)) st = COLL_ERR_SYSTEM;
    return st;
}

static const bench_ops device_ops = {
    .allreduce = c_allreduce,
    .reduce_scatter = c_reduce_scatter,
    .allgather = c_allgather,
    .broadcast = c_broadcast,
    .barrier = c_barrier,
    .last_error = c_last_error,
    .close = c_close,
    .alloc = d_alloc,
    .release = d_release,
    .upload = d_upload,
    .download = d_download,
    .sync = c_sync,
    .reduce_scalar = d_reduce_scalar,
};
#endif

int bench_coll_open(const char *provider, int timeout_s, int device, bench_backend **out, char *err,
                    size_t errlen)
{
    coll_params p;
    coll_params_init(&p);
    /* p2p: the selection flow with the one-shot all-reduce on (it needs device buffers);
     * auto: libcoll's defaults; a named provider is timed alone, the one-shot off. */
    int p2p = strcmp(provider, "p2p") == 0;
    p.p2p_max_bytes = p2p || strcmp(provider, "auto") == 0 ? -1 : 0;
    if (p2p) device = 1;
    if (strcmp(provider, "auto") == 0 || p2p)
        p.provider = NULL;
    else if (strcmp(provider, "coll-ring") == 0 || strcmp(provider, "ring") == 0)
        p.provider = "ring";
    else
        p.provider = provider;
    if (p.provider && strcmp(p.provider, "nccl") == 0) device = 1; /* NCCL works on device memory */
#ifndef HAVE_CUDA
    if (device) {
        snprintf(err, errlen, "device buffers need a build with CUDA (configure --with-cuda)");
        return -1;
    }
#endif
    p.memtype = device ? COLL_MEM_DEVICE : COLL_MEM_HOST;
    p.op_timeout_ms = timeout_s * 1000;
    bench_backend *b = calloc(1, sizeof *b);
    coll_impl *x = calloc(1, sizeof *x);
    if (!b || !x) {
        free(b);
        free(x);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (coll_comm_create(&p, &x->comm, err, errlen) != COLL_OK) {
        free(b);
        free(x);
        return -1;
    }
    if (p2p && coll_comm_p2p_max_bytes(x->comm) == 0) {
        snprintf(err, errlen,
                 "provider p2p: the one-shot all-reduce is off here (its log line says why)");
        coll_comm_destroy(x->comm);
        free(b);
        free(x);
        return -1;
    }
    b->ops = &host_ops;
#ifdef HAVE_CUDA
    if (device) {
        int dev = coll_comm_device(x->comm);
        cudaStream_t s;
        if (dev < 0 || cudaSetDevice(dev) != cudaSuccess ||
            cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) {
            snprintf(err, errlen, "provider %s: no usable CUDA device (device %d)",
                     coll_comm_provider(x->comm), dev);
            coll_comm_destroy(x->comm);
            free(b);
            free(x);
            return -1;
        }
        x->stream = s;
        if (cudaMalloc((void **)&x->dscalar, sizeof(double)) != cudaSuccess) {
            snprintf(err, errlen, "cudaMalloc of 8 bytes failed");
            cudaStreamDestroy(s);
            coll_comm_destroy(x->comm);
            free(b);
            free(x);
            return -1;
        }
        b->ops = &device_ops;
    }
#endif
    b->name = p2p ? "p2p" : coll_comm_provider(x->comm);
    b->rank = coll_comm_rank(x->comm);
    b->size = coll_comm_size(x->comm);
    b->impl = x;
    *out = b;
    return 0;
}
