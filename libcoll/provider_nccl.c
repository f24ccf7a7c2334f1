/* SPDX-License-Identifier: MIT */
/* The NCCL provider: one process per GPU. The local leader (local rank 0) spawns the
 * other local ranks (spawn.c); in multi-node mode the head's leader sends the id to each
 * worker node's leader first (rdv.c). Init is non-blocking and the data path blocking
 * (split from it, see nccl_create); every wait polls ncclCommGetAsyncError and the spawned
 * workers against a deadline, and ends in ncclCommAbort on failure. */
#include "coll_private.h"
#include "common/clock.h"
#include "coll_cuda.h"

#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

_Static_assert(NCCL_UNIQUE_ID_BYTES == COLL_RDV_BLOB, "NCCL id size");

/* Host buffers (the engine's token and step-record broadcasts: a few bytes to a few KiB)
 * pass through this much device memory per round. */
#define NCCL_STAGE (64 * 1024)

typedef struct nccl_state {
    coll_comm *comm;
    ncclComm_t nc;     /* the data path's communicator */
    ncclComm_t parent; /* the non-blocking one it was split from, or NULL */
    cudaStream_t stream;
    int *dscratch; /* [NCCL_STAGE bytes]: the barrier's int; host-buffer calls staged here */
    int aborted;   /* set by coll_comm_abort (any thread); waits notice it */
    int dead;      /* ncclCommAbort done */
} nccl_state;

/* The one translation of NCCL results. */
static coll_status nccl_status(nccl_state *s, ncclResult_t r, const char *what, char *err,
                               size_t errlen)
{
    if (r == ncclSuccess || r == ncclInProgress) return COLL_OK;
    const char *last = s && s->nc ? ncclGetLastError(s->nc) : ncclGetLastError(NULL);
    return coll_fail(r == ncclInvalidArgument ? COLL_ERR_INVALID_ARG : COLL_ERR_NCCL, err, errlen,
                     "NCCL %s: %s%s%s", what, ncclGetErrorString(r), last && *last ? ": " : "",
                     last ? last : "");
}

#define NCCL_CHECK(s, call, label)                                                                 \
    do {                                                                                           \
        if ((st = nccl_status((s), (call), #call, err, errlen)) != COLL_OK) goto label;            \
    } while (0)

static void kill_comm(nccl_state *s)
{
    if (s->nc && !s->dead) {
        ncclCommAbort(s->nc);
        if (s->parent) ncclCommAbort(s->parent);
        s->dead = 1;
    }
}

/* Poll until `done` says yes: NCCL async errors, dead workers, abort and the deadline
 * end the wait, and the communicator with it. stream NULL: wait for the comm itself
 * (init, finalize) rather than a stream. */
static coll_status nccl_wait(nccl_state *s, cudaStream_t stream, int timeout_ms, const char *what,
                             char *err, size_t errlen)
{
    coll_status st = COLL_OK;
    int64_t deadline = rc_now_ms() + timeout_ms;
    for (long spins = 0;; spins++) {
        ncclResult_t ae = ncclSuccess;
        ncclResult_t r = ncclCommGetAsyncError(s->nc, &ae);
        if (r != ncclSuccess) ae = r;
        if (ae != ncclSuccess && ae != ncclInProgress) {
            st = nccl_status(s, ae, what, err, errlen);
            break;
        }
        if (ae == ncclInProgress) {
            /* Still enqueuing: the stream may look idle before the work is on it. */
        } else if (stream) {
            cudaError_t q = cudaStreamQuery(stream);
            if (q == cudaSuccess) return COLL_OK;
            if (q != cudaErrorNotReady) {
                st = coll_cuda_status(q, what, err, errlen);
                break;
            }
        } else {
            return COLL_OK;
        }
        if (__atomic_load_n(&s->aborted, __ATOMIC_SEQ_CST)) {
            st = coll_fail(COLL_ERR_ABORTED, err, errlen, "nccl: %s: aborted", what);
            break;
        }
        if ((spins & 1023) == 0 && s->comm->spawn.n &&
            coll_spawn_check(&s->comm->spawn, err, errlen)) {
            st = COLL_ERR_PEER_CLOSED;
            break;
        }
        if (rc_now_ms() > deadline) {
            st = coll_fail(COLL_ERR_TIMEOUT, err, errlen,
                           "nccl: %s not done after %d ms; communicator aborted", what, timeout_ms);
            break;
        }
        /* Spin first for latency, then nap so a stuck peer does not burn a core. */
        if (spins > 20000) {
            struct timespec nap = {0, 50000};
            nanosleep(&nap, NULL);
        }
    }
    kill_comm(s);
    return st;
}

/* Get the id: create it (the job's first process), or receive it. */
static coll_status get_id(coll_comm *comm, nccl_state *s, ncclUniqueId *id, char *err,
                          size_t errlen)
{
    coll_status st = COLL_OK;
    coll_layout *L = &comm->layout;
    uint8_t *blob = (uint8_t *)id->internal;
    if (L->is_child)
        return coll_spawn_join(&comm->env, L->local_rank, L->local_size, (uint32_t)L->world_size,
                               blob, comm->rdv_timeout_ms, &comm->log, err, errlen);
    if (L->mode == COLL_MODE_NCCL_MN && !L->is_mn_head) {
        coll_rdv_hello me = {.token = 0,
                             .global_ws = (uint32_t)L->world_size,
                             .local_ws = (uint32_t)L->local_size,
                             .nodes = (uint32_t)L->nodes,
                             .worker_id = L->worker_id};
        if ((st = coll_rdv_join(L->head_host, L->head_port, &me, blob, comm->rdv_timeout_ms,
                                &comm->log, err, errlen)))
            return st;
        snprintf(comm->peers, sizeof(comm->peers), "head at %.200s:%d", L->head_host, L->head_port);
    } else {
        NCCL_CHECK(s, ncclGetUniqueId(id), fail);
        if (L->mode == COLL_MODE_NCCL_MN) {
            int fd, port;
            if ((st = coll_rdv_listen(NULL, L->head_port, &fd, &port, err, errlen))) return st;
            coll_log(&comm->log, COLL_LOG_INFO,
                     "multi-node head: waiting on port %d for %d workers (deadline %d ms)", port,
                     L->num_workers, comm->rdv_timeout_ms);
            coll_rdv_hello ex = {.token = 0,
                                 .global_ws = (uint32_t)L->world_size,
                                 .local_ws = (uint32_t)L->local_size,
                                 .nodes = (uint32_t)L->nodes};
            if ((st = coll_rdv_serve(fd, &ex, blob, comm->rdv_timeout_ms, NULL, NULL, &comm->log,
                                     err, errlen)))
                return st;
            snprintf(comm->peers, sizeof(comm->peers), "head of %d nodes on port %d", L->nodes,
                     port);
        }
    }
    /* The leader of each node hands the id to its node's other GPUs. */
    if ((st = coll_spawn_local(&comm->spawn, L->local_size, (uint32_t)L->world_size, blob,
                               comm->rdv_timeout_ms, &comm->log, err, errlen)))
        return st;
    if (comm->spawn.n) {
        size_t off = strlen(comm->peers);
        off +=
            (size_t)snprintf(comm->peers + off, sizeof(comm->peers) - off,
                             "%slocal ranks 1..%d spawned as pids", off ? "; " : "", comm->spawn.n);
        for (int i = 0; i < comm->spawn.n && off < sizeof(comm->peers) - 12; i++)
            off += (size_t)snprintf(comm->peers + off, sizeof(comm->peers) - off, " %d",
                                    (int)comm->spawn.pid[i]);
    }
fail:
    return st;
}

static coll_status nccl_create(coll_comm *comm, void **state, char *err, size_t errlen)
{
    coll_status st = COLL_OK;
    coll_layout *L = &comm->layout;
    nccl_state *s = calloc(1, sizeof(*s));
    if (!s) return coll_fail(COLL_ERR_NOMEM, err, errlen, "nccl: out of memory");
    s->comm = comm;
    if (L->device < 0 || L->device >= coll_cuda_device_count()) {
        st = coll_fail(COLL_ERR_CONFIG, err, errlen,
                       "nccl: device %d is not one of the %d GPUs CUDA sees", L->device,
                       coll_cuda_device_count());
        goto free_state;
    }
    CUDA_CHECK(cudaSetDevice(L->device), free_state);
    ncclUniqueId id;
    if ((st = get_id(comm, s, &id, err, errlen))) goto free_state;
    if (!L->is_child && !comm->spawn.n && L->mode == COLL_MODE_NCCL && L->world_size > 1)
        coll_log(&comm->log, COLL_LOG_DEBUG, "nccl: no local processes spawned");
    /* The stream for calls made without one: a blocking stream, so that, like the default
     * stream, it runs after the caller's earlier work there (a pageable cudaMemcpy may
     * return before its copy has landed). */
    CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamDefault), free_state);
    CUDA_CHECK(cudaMalloc((void **)&s->dscratch, NCCL_STAGE), destroy_stream);
    /* Init is non-blocking so that it is bounded and can be aborted. A non-blocking
     * communicator makes every call return ncclInProgress and hands the enqueue to a
     * thread (about 37 us per call on an H200 pair), so by default the data path runs on
     * a blocking communicator split from it (COLL_NCCL_BLOCKING=0 keeps the first). */
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    cfg.blocking = 0;
    NCCL_CHECK(s, ncclCommInitRankConfig(&s->nc, L->world_size, id, L->rank, &cfg), free_scratch);
    if ((st = nccl_wait(s, NULL, comm->rdv_timeout_ms, "ncclCommInitRankConfig", err, errlen)))
        goto free_scratch;
    if (strcmp(coll_env_get(&comm->env, KNOB_NCCL_BLOCKING), "0") != 0) {
        ncclConfig_t bc = NCCL_CONFIG_INITIALIZER;
        bc.blocking = 1;
        ncclComm_t child = NULL;
        NCCL_CHECK(s, ncclCommSplit(s->nc, 0, L->rank, &child, &bc), free_scratch);
        /* The parent is non-blocking: the child's handle is filled in when the split is
         * done, which the parent's state tells. */
        if ((st = nccl_wait(s, NULL, comm->rdv_timeout_ms, "ncclCommSplit", err, errlen)))
            goto free_scratch;
        if (!child) {
            st = coll_fail(COLL_ERR_NCCL, err, errlen,
                           "NCCL ncclCommSplit returned no communicator");
            goto free_scratch;
        }
        s->parent = s->nc;
        s->nc = child;
    }
    *state = s;
    return COLL_OK;
free_scratch:
    kill_comm(s);
    cudaFree(s->dscratch);
destroy_stream:
    cudaStreamDestroy(s->stream);
free_state:
    free(s);
    return st;
}

static ncclDataType_t nccl_type(coll_dtype t)
{
    static const ncclDataType_t map[COLL_DTYPE_COUNT] = {
        [COLL_F32] = ncclFloat32,   [COLL_F64] = ncclFloat64, [COLL_F16] = ncclFloat16,
        [COLL_BF16] = ncclBfloat16, [COLL_I32] = ncclInt32,   [COLL_I64] = ncclInt64,
        [COLL_U8] = ncclUint8,
    };
    return map[t];
}

static ncclRedOp_t nccl_op(coll_op op)
{
    static const ncclRedOp_t map[COLL_OP_COUNT] = {
        [COLL_SUM] = ncclSum, [COLL_PROD] = ncclProd, [COLL_MIN] = ncclMin,
        [COLL_MAX] = ncclMax, [COLL_AVG] = ncclAvg,
    };
    return map[op];
}

/* NCCL reads device memory only: all-reduce and broadcast of host buffers go through the
 * staging buffer, a round at a time, each waited for (deadline, async errors). */
static coll_status nccl_host(nccl_state *s, const coll_call *c, char *err, size_t errlen)
{
    coll_status st = COLL_OK;
    ncclResult_t r = ncclSuccess;
    if (c->kind != COLL_OP_ALLREDUCE && c->kind != COLL_OP_BROADCAST)
        return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen,
                         "nccl: host buffers (NCCL reads device memory only; all-reduce and "
                         "broadcast are staged)");
    size_t es = coll_dtype_size(c->type), per = NCCL_STAGE / es;
    const char *src = c->sendbuf ? c->sendbuf : c->recvbuf;
    char *dst = c->recvbuf;
    for (size_t off = 0; off < c->count; off += per) {
        size_t n = c->count - off < per ? c->count - off : per;
        CUDA_CHECK(
            cudaMemcpyAsync(s->dscratch, src + off * es, n * es, cudaMemcpyHostToDevice, s->stream),
            fail);
        if (c->kind == COLL_OP_ALLREDUCE)
            r = ncclAllReduce(s->dscratch, s->dscratch, n, nccl_type(c->type), nccl_op(c->op),
                              s->nc, s->stream);
        else
            r = ncclBroadcast(s->dscratch, s->dscratch, n, nccl_type(c->type), c->root, s->nc,
                              s->stream);
        NCCL_CHECK(s, r, fail);
        CUDA_CHECK(
            cudaMemcpyAsync(dst + off * es, s->dscratch, n * es, cudaMemcpyDeviceToHost, s->stream),
            fail);
        if ((st = nccl_wait(s, s->stream, s->comm->op_timeout_ms, "staged host collective", err,
                            errlen)))
            return st;
    }
    return COLL_OK;
fail:
    kill_comm(s);
    return st;
}

static coll_status nccl_call(void *state, const coll_call *c, char *err, size_t errlen)
{
    nccl_state *s = state;
    coll_status st = COLL_OK;
    ncclResult_t r = ncclSuccess;
    if (c->kind == COLL_OP_BARRIER) {
        r = ncclAllReduce(s->dscratch, s->dscratch, 1, ncclInt32, ncclSum, s->nc, s->stream);
        NCCL_CHECK(s, r, fail);
        return nccl_wait(s, s->stream, s->comm->op_timeout_ms, "barrier", err, errlen);
    }
    if (c->mem != COLL_MEM_DEVICE) return nccl_host(s, c, err, errlen);
    cudaStream_t stream = c->stream ? (cudaStream_t)c->stream : s->stream;
    switch (c->kind) {
    case COLL_OP_ALLREDUCE:
        r = ncclAllReduce(c->sendbuf, c->recvbuf, c->count, nccl_type(c->type), nccl_op(c->op),
                          s->nc, stream);
        break;
    case COLL_OP_REDUCE_SCATTER:
        r = ncclReduceScatter(c->sendbuf, c->recvbuf, c->count, nccl_type(c->type), nccl_op(c->op),
                              s->nc, stream);
        break;
    case COLL_OP_ALLGATHER:
        r = ncclAllGather(c->sendbuf, c->recvbuf, c->count, nccl_type(c->type), s->nc, stream);
        break;
    case COLL_OP_BROADCAST:
        r = ncclBroadcast(c->sendbuf, c->recvbuf, c->count, nccl_type(c->type), c->root, s->nc,
                          stream);
        break;
    case COLL_OP_BARRIER:
        break;
    }
    NCCL_CHECK(s, r, fail);
    /* Non-blocking comms may still be enqueuing; without a caller stream, wait here. */
    if (r == ncclInProgress || !c->stream)
        return nccl_wait(s, c->stream ? NULL : stream, s->comm->op_timeout_ms, "collective", err,
                         errlen);
    return COLL_OK;
fail:
    kill_comm(s);
    return st;
}

static coll_status nccl_sync(void *state, void *stream, char *err, size_t errlen)
{
    nccl_state *s = state;
    return nccl_wait(s, stream ? (cudaStream_t)stream : s->stream, s->comm->op_timeout_ms,
                     "coll_sync", err, errlen);
}

static void nccl_abort_(void *state)
{
    nccl_state *s = state;
    __atomic_store_n(&s->aborted, 1, __ATOMIC_SEQ_CST);
}

static void nccl_destroy(void *state)
{
    nccl_state *s = state;
    if (!s) return;
    if (!s->dead && !__atomic_load_n(&s->aborted, __ATOMIC_SEQ_CST) && !s->comm->failed) {
        char err[256];
        /* Finalize the data communicator, then its parent; each wait is bounded and a
         * failed one aborts what is left. */
        ncclComm_t comms[2] = {s->nc, s->parent};
        s->parent = NULL;
        int failed = 0;
        for (int k = 0; k < 2; k++) {
            if (!comms[k]) continue;
            s->nc = comms[k];
            s->dead = 0;
            if (failed) { /* an earlier wait failed */
                ncclCommAbort(comms[k]);
                continue;
            }
            ncclResult_t r = ncclCommFinalize(comms[k]);
            if (r == ncclSuccess || r == ncclInProgress)
                nccl_wait(s, NULL, s->comm->op_timeout_ms, "ncclCommFinalize", err, sizeof(err));
            if (s->dead) /* the wait failed and aborted this one */
                failed = 1;
            else
                ncclCommDestroy(comms[k]);
        }
        s->parent = NULL;
        s->nc = NULL;
        s->dead = 1;
    }
    kill_comm(s);
    cudaFree(s->dscratch);
    cudaStreamDestroy(s->stream);
    free(s);
}

const coll_provider coll_provider_nccl = {
    .name = "nccl",
    .create = nccl_create,
    .call = nccl_call,
    .sync = nccl_sync,
    .abort = nccl_abort_,
    .destroy = nccl_destroy,
};
