/* SPDX-License-Identifier: MIT */
/* The local provider: world size 1, so every collective is a copy (or nothing in place). */
#include "coll_private.h"
#include "coll_cuda.h"

#include <string.h>

static coll_status local_create(coll_comm *comm, void **state, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    *state = comm;
    return COLL_OK;
}

static coll_status local_call(void *state, const coll_call *c, char *err, size_t errlen)
{
    (void)state;
    if (c->kind == COLL_OP_BARRIER || c->sendbuf == c->recvbuf || c->count == 0) return COLL_OK;
    size_t bytes = c->count * coll_dtype_size(c->type);
    if (c->mem == COLL_MEM_HOST) {
        memmove(c->recvbuf, c->sendbuf, bytes);
        return COLL_OK;
    }
#ifdef HAVE_CUDA
    coll_status st;
    if (c->stream) {
        CUDA_CHECK(cudaMemcpyAsync(c->recvbuf, c->sendbuf, bytes, cudaMemcpyDeviceToDevice,
                                   (cudaStream_t)c->stream),
                   fail);
    } else {
        CUDA_CHECK(cudaMemcpy(c->recvbuf, c->sendbuf, bytes, cudaMemcpyDeviceToDevice), fail);
    }
    return COLL_OK;
fail:
    return st;
#else
    return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "local: device memory without CUDA");
#endif
}

static coll_status local_sync(void *state, void *stream, char *err, size_t errlen)
{
    (void)state;
#ifdef HAVE_CUDA
    coll_status st;
    if (stream) CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream), fail);
    return COLL_OK;
fail:
    return st;
#else
    (void)stream;
    (void)err;
    (void)errlen;
    return COLL_OK;
#endif
}

static void local_nop(void *state)
{
    (void)state;
}

const coll_provider coll_provider_local = {
    .name = "local",
    .create = local_create,
    .call = local_call,
    .sync = local_sync,
    .abort = local_nop,
    .destroy = local_nop,
};
