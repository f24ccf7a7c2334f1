/* SPDX-License-Identifier: MIT */
/* The ring on CUDA device buffers: pinned host staging in pieces, three slots in flight.
 * Piece k+1 is copied device-to-host while the ring runs on piece k and piece k-1 is
 * copied back, on two streams. The reduction runs inside libring on the CPU, or (with
 * COLL_RING_DEVICE_REDUCE=gpu, all-reduce of f32/f16/bf16) the ring all-gathers the pieces
 * and kernels/ reduces them on the GPU in rank order. Staging is allocated once, at
 * create; calls allocate nothing. */
#include "coll_private.h"
#include "common/clock.h"

#if defined(HAVE_RING) && defined(HAVE_CUDA)
#include "coll_cuda.h"
#include "coll_kernels.h"
#include "provider_ring.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOTS 3

typedef struct slot {
    void *hin, *hout; /* pinned, piece bytes each */
    void *dgather;    /* device, piece bytes: gathered blocks for the GPU reduction */
    cudaEvent_t d2h_done, h2d_done;
} slot;

typedef struct rcuda {
    coll_comm *comm;
    ring_comm *rc;
    int n, rank, device, reduce_gpu;
    size_t piece;
    cudaStream_t d2h, h2d;
    cudaEvent_t start, done;
    slot s[SLOTS];
    int ready;
    int aborted;
} rcuda;

/* Wait for an event with the op deadline; short naps leave the cores to the ring. */
static coll_status wait_event(rcuda *r, cudaEvent_t ev, int64_t deadline, char *err, size_t errlen)
{
    for (int spins = 0;; spins++) {
        cudaError_t e = cudaEventQuery(ev);
        if (e == cudaSuccess) return COLL_OK;
        if (e != cudaErrorNotReady) return coll_cuda_status(e, "cudaEventQuery", err, errlen);
        if (__atomic_load_n(&r->aborted, __ATOMIC_SEQ_CST))
            return coll_fail(COLL_ERR_ABORTED, err, errlen, "ring-cuda: aborted");
        if (rc_now_ms() > deadline)
            return coll_fail(COLL_ERR_TIMEOUT, err, errlen,
                             "ring-cuda: staging copy not done after %d ms",
                             r->comm->op_timeout_ms);
        if (spins > 200) {
            struct timespec nap = {0, 20000};
            nanosleep(&nap, NULL);
        }
    }
}

static void free_staging(rcuda *r)
{
    for (int i = 0; i < SLOTS; i++) {
        if (r->s[i].hin) cudaFreeHost(r->s[i].hin);
        if (r->s[i].hout) cudaFreeHost(r->s[i].hout);
        if (r->s[i].dgather) cudaFree(r->s[i].dgather);
        if (r->s[i].d2h_done) cudaEventDestroy(r->s[i].d2h_done);
        if (r->s[i].h2d_done) cudaEventDestroy(r->s[i].h2d_done);
    }
    if (r->start) cudaEventDestroy(r->start);
    if (r->done) cudaEventDestroy(r->done);
    if (r->d2h) cudaStreamDestroy(r->d2h);
    if (r->h2d) cudaStreamDestroy(r->h2d);
}

static coll_status rcuda_create(coll_comm *comm, void **state, char *err, size_t errlen)
{
    coll_status st = COLL_OK;
    rcuda *r = calloc(1, sizeof(*r));
    if (!r) return coll_fail(COLL_ERR_NOMEM, err, errlen, "ring-cuda: out of memory");
    r->comm = comm;
    r->rc = comm->shared;
    r->n = comm->layout.world_size;
    r->rank = comm->layout.rank;
    r->device = comm->layout.device;
    *state = r;
    long piece;
    if ((st = coll_env_int(&comm->env, KNOB_STAGING_BYTES, 4096, 1L << 30, 4 << 20, &piece, err,
                           errlen)))
        goto free_state;
    r->piece = (size_t)piece & ~(size_t)63; /* whole elements of every type, per block too */
    const char *red = coll_env_get(&comm->env, KNOB_DEVICE_REDUCE);
    if (strcmp(red, "cpu") && strcmp(red, "gpu")) {
        st = coll_fail(COLL_ERR_CONFIG, err, errlen, "%s: expected cpu or gpu, got '%s'",
                       coll_knob_name(KNOB_DEVICE_REDUCE), red);
        goto free_state;
    }
    r->reduce_gpu = !strcmp(red, "gpu");
    /* No GPU here: the provider stays, answering "not supported" for device memory. */
    if (r->device < 0 || coll_cuda_device_count() == 0) return COLL_OK;
    CUDA_CHECK(cudaSetDevice(r->device), free_cuda);
    CUDA_CHECK(cudaStreamCreateWithFlags(&r->d2h, cudaStreamNonBlocking), free_cuda);
    CUDA_CHECK(cudaStreamCreateWithFlags(&r->h2d, cudaStreamNonBlocking), free_cuda);
    CUDA_CHECK(cudaEventCreateWithFlags(&r->start, cudaEventDisableTiming), free_cuda);
    CUDA_CHECK(cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming), free_cuda);
    for (int i = 0; i < SLOTS; i++) {
        CUDA_CHECK(cudaHostAlloc(&r->s[i].hin, r->piece, cudaHostAllocDefault), free_cuda);
        CUDA_CHECK(cudaHostAlloc(&r->s[i].hout, r->piece, cudaHostAllocDefault), free_cuda);
        if (r->reduce_gpu) CUDA_CHECK(cudaMalloc(&r->s[i].dgather, r->piece), free_cuda);
        CUDA_CHECK(cudaEventCreateWithFlags(&r->s[i].d2h_done, cudaEventDisableTiming), free_cuda);
        CUDA_CHECK(cudaEventCreateWithFlags(&r->s[i].h2d_done, cudaEventDisableTiming), free_cuda);
    }
    r->ready = 1;
    return COLL_OK;
free_cuda:
    free_staging(r);
free_state:
    free(r);
    *state = NULL;
    return st;
}

/* One call's geometry. */
typedef struct plan {
    const coll_call *c;
    size_t es, total, per; /* element size; elements (per block for rs/ag); per piece */
    int gpu;               /* GPU reduction path */
} plan;

static coll_status issue_d2h(rcuda *r, const plan *p, size_t k, char *err, size_t errlen)
{
    coll_status st = COLL_OK;
    slot *s = &r->s[k % SLOTS];
    size_t off = k * p->per, cnt = p->total - off < p->per ? p->total - off : p->per;
    const char *src = (const char *)p->c->sendbuf + off * p->es;
    switch (p->c->kind) {
    case COLL_OP_REDUCE_SCATTER:
        CUDA_CHECK(cudaMemcpy2DAsync(s->hin, cnt * p->es, src, p->total * p->es, cnt * p->es,
                                     (size_t)r->n, cudaMemcpyDeviceToHost, r->d2h),
                   fail);
        break;
    case COLL_OP_BROADCAST:
        if (r->rank != p->c->root) break;
        /* fall through */
    default:
        CUDA_CHECK(cudaMemcpyAsync(s->hin, src, cnt * p->es, cudaMemcpyDeviceToHost, r->d2h), fail);
    }
    CUDA_CHECK(cudaEventRecord(s->d2h_done, r->d2h), fail);
fail:
    return st;
}

static coll_status run_ring(rcuda *r, const plan *p, size_t k, char *err, size_t errlen)
{
    slot *s = &r->s[k % SLOTS];
    size_t off = k * p->per, cnt = p->total - off < p->per ? p->total - off : p->per;
    const coll_call *c = p->c;
    if (c->kind == COLL_OP_ALLREDUCE && p->gpu) {
        coll_call ag = *c;
        ag.kind = COLL_OP_ALLGATHER;
        return coll_ring_op(r->rc, &ag, s->hin, s->hout, cnt, err, errlen);
    }
    if (c->kind == COLL_OP_ALLREDUCE || c->kind == COLL_OP_BROADCAST)
        return coll_ring_op(r->rc, c, s->hin, s->hin, cnt, err, errlen);
    return coll_ring_op(r->rc, c, s->hin, s->hout, cnt, err, errlen);
}

static coll_status issue_h2d(rcuda *r, const plan *p, size_t k, char *err, size_t errlen)
{
    coll_status st = COLL_OK;
    slot *s = &r->s[k % SLOTS];
    size_t off = k * p->per, cnt = p->total - off < p->per ? p->total - off : p->per;
    char *dst = (char *)p->c->recvbuf + off * p->es;
    switch (p->c->kind) {
    case COLL_OP_ALLREDUCE:
        if (p->gpu) {
            CUDA_CHECK(cudaMemcpyAsync(s->dgather, s->hout, (size_t)r->n * cnt * p->es,
                                       cudaMemcpyHostToDevice, r->h2d),
                       fail);
            CUDA_CHECK((cudaError_t)coll_kern_reduce(dst, s->dgather, r->n, cnt, (int)p->c->type,
                                                     (int)p->c->op, r->h2d),
                       fail);
            break;
        }
        /* fall through */
    case COLL_OP_BROADCAST:
        CUDA_CHECK(cudaMemcpyAsync(dst, s->hin, cnt * p->es, cudaMemcpyHostToDevice, r->h2d), fail);
        break;
    case COLL_OP_REDUCE_SCATTER:
        CUDA_CHECK(cudaMemcpyAsync(dst, s->hout, cnt * p->es, cudaMemcpyHostToDevice, r->h2d),
                   fail);
        break;
    case COLL_OP_ALLGATHER:
        CUDA_CHECK(cudaMemcpy2DAsync(dst, p->total * p->es, s->hout, cnt * p->es, cnt * p->es,
                                     (size_t)r->n, cudaMemcpyHostToDevice, r->h2d),
                   fail);
        break;
    case COLL_OP_BARRIER:
        break;
    }
    CUDA_CHECK(cudaEventRecord(s->h2d_done, r->h2d), fail);
fail:
    return st;
}

static coll_status rcuda_call(void *state, const coll_call *c, char *err, size_t errlen)
{
    rcuda *r = state;
    coll_status st = COLL_OK;
    if (c->mem != COLL_MEM_DEVICE)
        return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "ring-cuda: host memory");
    if (!r->ready) return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "ring-cuda: no CUDA device");
    plan p = {.c = c, .es = coll_dtype_size(c->type), .total = c->count};
    p.gpu = c->kind == COLL_OP_ALLREDUCE && r->reduce_gpu &&
            coll_kern_supports((int)c->type, (int)c->op);
    int blocked = c->kind == COLL_OP_REDUCE_SCATTER || c->kind == COLL_OP_ALLGATHER || p.gpu;
    p.per = r->piece / p.es / (blocked ? (size_t)r->n : 1);
    if (p.per == 0)
        return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s too small for %d ranks",
                         coll_knob_name(KNOB_STAGING_BYTES), r->n);
    if (p.total == 0) return COLL_OK;
    size_t pieces = (p.total + p.per - 1) / p.per;
    int64_t deadline = rc_now_ms() + r->comm->op_timeout_ms;
    cudaStream_t user = (cudaStream_t)c->stream;

    CUDA_CHECK(cudaSetDevice(r->device), fail);
    /* The copies start after the work the caller queued on its stream. */
    CUDA_CHECK(cudaEventRecord(r->start, user), fail);
    CUDA_CHECK(cudaStreamWaitEvent(r->d2h, r->start, 0), fail);
    if ((st = wait_event(r, r->s[0].h2d_done, deadline, err, errlen))) goto fail;
    if ((st = issue_d2h(r, &p, 0, err, errlen))) goto fail;
    for (size_t k = 0; k < pieces; k++) {
        if (k + 1 < pieces) {
            /* The slot of piece k+1 last held piece k-2: its copy back must be done. */
            if ((st = wait_event(r, r->s[(k + 1) % SLOTS].h2d_done, deadline, err, errlen)))
                goto fail;
            if ((st = issue_d2h(r, &p, k + 1, err, errlen))) goto fail;
        }
        if ((st = wait_event(r, r->s[k % SLOTS].d2h_done, deadline, err, errlen))) goto fail;
        if ((st = run_ring(r, &p, k, err, errlen))) goto fail;
        if ((st = issue_h2d(r, &p, k, err, errlen))) goto fail;
    }
    CUDA_CHECK(cudaEventRecord(r->done, r->h2d), fail);
    if (user) {
        /* Stream-ordered: later work on the caller's stream waits for the last copy. */
        CUDA_CHECK(cudaStreamWaitEvent(user, r->done, 0), fail);
    } else {
        st = wait_event(r, r->done, deadline, err, errlen);
    }
fail:
    return st;
}

static coll_status rcuda_sync(void *state, void *stream, char *err, size_t errlen)
{
    rcuda *r = state;
    if (!r->ready) return COLL_OK;
    coll_status st = COLL_OK;
    int64_t deadline = rc_now_ms() + r->comm->op_timeout_ms;
    if (stream) {
        CUDA_CHECK(cudaEventRecord(r->done, (cudaStream_t)stream), fail);
    } else {
        CUDA_CHECK(cudaEventRecord(r->done, r->h2d), fail);
    }
    st = wait_event(r, r->done, deadline, err, errlen);
fail:
    return st;
}

static void rcuda_abort(void *state)
{
    rcuda *r = state;
    __atomic_store_n(&r->aborted, 1, __ATOMIC_SEQ_CST);
}

static void rcuda_destroy(void *state)
{
    rcuda *r = state;
    if (!r) return;
    if (r->ready) {
        cudaStreamSynchronize(r->d2h);
        cudaStreamSynchronize(r->h2d);
        free_staging(r);
    }
    free(r);
}

const coll_provider coll_provider_ring_cuda = {
    .name = "ring-cuda",
    .create = rcuda_create,
    .call = rcuda_call,
    .sync = rcuda_sync,
    .abort = rcuda_abort,
    .destroy = rcuda_destroy,
};
#else
/* Without CUDA every buffer is host memory: this provider never has work. */
static coll_status rcuda_none(coll_comm *comm, void **state, char *err, size_t errlen)
{
    (void)comm;
    (void)err;
    (void)errlen;
    *state = NULL;
    return COLL_OK;
}
static coll_status rcuda_unsupported(void *state, const coll_call *c, char *err, size_t errlen)
{
    (void)state;
    (void)c;
    return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "ring-cuda: built without CUDA");
}
static void rcuda_nop(void *state)
{
    (void)state;
}
const coll_provider coll_provider_ring_cuda = {
    .name = "ring-cuda",
    .create = rcuda_none,
    .call = rcuda_unsupported,
    .sync = NULL,
    .abort = rcuda_nop,
    .destroy = rcuda_nop,
};
#endif
