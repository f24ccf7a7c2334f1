/* SPDX-License-Identifier: MIT */
/* The one-shot all-reduce for ranks of one machine ("p2p"). At create every rank allocates
 * one device buffer, exports it with CUDA IPC and opens the others' (the handles travel
 * through the chain's other provider: the ring on host memory, NCCL on device memory).
 * A call is two kernels on the caller's stream (kernels/p2p.cu): copy in and raise a flag,
 * wait for every rank's flag, sum all ranks' data in rank order. No host round trip, so a
 * decode step that contains it can be one CUDA graph. It serves all-reduce of f32/f16/bf16
 * device buffers up to its limit; anything else is "not supported" (the next provider). */
#include "coll_private.h"
#include "common/clock.h"

#include "coll_cuda.h"
#include "coll_kernels.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* What each rank tells the others at create. */
typedef struct p2p_info {
    cudaIpcMemHandle_t handle;
    char boot[48];     /* the kernel's boot id: equal ids mean one machine */
    int64_t max_bytes; /* 0: this rank cannot take part */
    int32_t device;
    int32_t pad;
} p2p_info;

typedef struct p2p {
    coll_comm *comm;
    int n, rank, device;
    size_t limit;                     /* 0: off */
    void *buf;                        /* exposed: coll_p2p_buffer_bytes(limit) bytes */
    void *mapped[COLL_P2P_MAX_RANKS]; /* peers' buffers opened here; NULL for this rank */
    unsigned long long *dstate;       /* device: [0] epoch, [1] arrive count */
    int *herr;                        /* pinned, mapped: the kernels' error word */
    cudaStream_t stream;              /* for calls without one */
    cudaEvent_t done;
    coll_p2p_args args;
    int aborted, told_big, told_first;
} p2p;

static void read_boot_id(char *out, size_t len)
{
    out[0] = '\0';
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(out, (int)len, f)) out[0] = '\0';
        fclose(f);
    }
    out[strcspn(out, "\n")] = '\0';
    if (!out[0] && gethostname(out, len - 1) != 0) snprintf(out, len, "unknown");
}

/* An allgather through the other providers: host memory, else staged on the device. */
static coll_status exchange(p2p *s, const void *mine, void *all, size_t bytes, char *err,
                            size_t errlen)
{
    coll_status st =
        coll_comm_exchange(s->comm, mine, all, bytes, COLL_MEM_HOST, NULL, err, errlen);
    if (st != COLL_ERR_UNSUPPORTED) return st;
    if (s->device < 0 || coll_cuda_device_count() == 0) return st;
    char *d = NULL;
    st = COLL_OK;
    CUDA_CHECK(cudaSetDevice(s->device), fail);
    CUDA_CHECK(cudaMalloc((void **)&d, bytes * (size_t)(s->n + 1)), fail);
    CUDA_CHECK(cudaMemcpy(d, mine, bytes, cudaMemcpyHostToDevice), free_dev);
    if ((st = coll_comm_exchange(s->comm, d, d + bytes, bytes, COLL_MEM_DEVICE, NULL, err, errlen)))
        goto free_dev;
    CUDA_CHECK(cudaMemcpy(all, d + bytes, bytes * (size_t)s->n, cudaMemcpyDeviceToHost), free_dev);
free_dev:
    cudaFree(d);
fail:
    return st;
}

/* Undo what create built locally (peers' mappings included). */
static void release(p2p *s)
{
    for (int p = 0; p < COLL_P2P_MAX_RANKS; p++)
        if (s->mapped[p]) cudaIpcCloseMemHandle(s->mapped[p]);
    memset(s->mapped, 0, sizeof(s->mapped));
    if (s->done) cudaEventDestroy(s->done);
    if (s->stream) cudaStreamDestroy(s->stream);
    if (s->herr) cudaFreeHost(s->herr);
    if (s->dstate) cudaFree(s->dstate);
    if (s->buf) cudaFree(s->buf);
    s->done = NULL;
    s->stream = NULL;
    s->herr = NULL;
    s->dstate = NULL;
    s->buf = NULL;
    s->limit = 0;
    cudaGetLastError(); /* a failed attempt must not be blamed on the caller's next call */
}

/* This rank's part before the first exchange: the buffer and its handle. Failures only
 * make this rank say "cannot" (max_bytes 0); the others learn it from the exchange. */
static void offer(p2p *s, size_t want, p2p_info *mine)
{
    char err[256];
    coll_status st = COLL_OK;
    size_t errlen = sizeof(err);
    mine->device = s->device;
    read_boot_id(mine->boot, sizeof(mine->boot));
    if (!want || s->device < 0 || coll_cuda_device_count() == 0) return;
    CUDA_CHECK(cudaSetDevice(s->device), fail);
    CUDA_CHECK(cudaMalloc(&s->buf, coll_p2p_buffer_bytes(want)), fail);
    CUDA_CHECK(cudaMemset(s->buf, 0, coll_p2p_buffer_bytes(want)), fail);
    CUDA_CHECK(cudaIpcGetMemHandle(&mine->handle, s->buf), fail);
    mine->max_bytes = (int64_t)want;
    return;
fail:
    coll_log(&s->comm->log, COLL_LOG_INFO, "p2p: off on this rank: %s", err);
    release(s);
}

/* After the first exchange: map the peers' buffers and build the per-call state. */
static int open_peers(p2p *s, const p2p_info *all)
{
    char err[256];
    coll_status st = COLL_OK;
    size_t errlen = sizeof(err);
    for (int p = 0; p < s->n; p++) {
        if (p == s->rank) continue;
        CUDA_CHECK(
            cudaIpcOpenMemHandle(&s->mapped[p], all[p].handle, cudaIpcMemLazyEnablePeerAccess),
            fail);
    }
    CUDA_CHECK(cudaMalloc((void **)&s->dstate, 2 * sizeof(*s->dstate)), fail);
    CUDA_CHECK(cudaMemset(s->dstate, 0, 2 * sizeof(*s->dstate)), fail);
    CUDA_CHECK(cudaHostAlloc((void **)&s->herr, sizeof(int), cudaHostAllocMapped), fail);
    *s->herr = 0;
    int *herr_dev = NULL;
    CUDA_CHECK(cudaHostGetDevicePointer((void **)&herr_dev, s->herr, 0), fail);
    CUDA_CHECK(cudaStreamCreateWithFlags(&s->stream, cudaStreamDefault), fail);
    CUDA_CHECK(cudaEventCreateWithFlags(&s->done, cudaEventDisableTiming), fail);
    CUDA_CHECK(cudaDeviceSynchronize(), fail); /* the zeroed flags are in place */
    coll_p2p_args *a = &s->args;
    for (int p = 0; p < s->n; p++)
        a->peer[p] = p == s->rank ? s->buf : s->mapped[p];
    a->epoch = &s->dstate[0];
    a->arrive = (unsigned int *)&s->dstate[1];
    a->error = herr_dev;
    a->nranks = s->n;
    a->rank = s->rank;
    a->timeout_ns = (unsigned long long)s->comm->op_timeout_ms * 1000000ull;
    return 1;
fail:
    coll_log(&s->comm->log, COLL_LOG_INFO, "p2p: cannot map the peers' buffers: %s", err);
    return 0;
}

static coll_status p2p_create(coll_comm *comm, void **state, char *err, size_t errlen)
{
    coll_status st = COLL_OK;
    p2p *s = calloc(1, sizeof(*s));
    if (!s) return coll_fail(COLL_ERR_NOMEM, err, errlen, "p2p: out of memory");
    *state = s;
    s->comm = comm;
    s->n = comm->layout.world_size;
    s->rank = comm->layout.rank;
    s->device = comm->layout.device;
    long want = comm->p2p_max_bytes;
    if (want < 0 && (st = coll_env_int(&comm->env, KNOB_P2P_MAX_BYTES, 0, 1L << 30, 1 << 20, &want,
                                       err, errlen)))
        goto free_state;
    want &= ~15L; /* whole 16-byte vectors per half */
    /* Decided the same way on every rank: no exchange at all. */
    if (s->n < 2 || s->n > COLL_P2P_MAX_RANKS) {
        coll_log(&comm->log, COLL_LOG_DEBUG, "p2p: off for %d ranks (serves 2..%d)", s->n,
                 COLL_P2P_MAX_RANKS);
        return COLL_OK;
    }
    p2p_info mine, all[COLL_P2P_MAX_RANKS];
    memset(&mine, 0, sizeof(mine));
    offer(s, (size_t)want, &mine);
    if ((st = exchange(s, &mine, all, sizeof(mine), err, errlen))) goto release_all;
    int64_t limit = INT64_MAX;
    const char *why = NULL;
    for (int p = 0; p < s->n; p++) {
        if (all[p].max_bytes < limit) limit = all[p].max_bytes;
        if (strncmp(all[p].boot, all[0].boot, sizeof(all[0].boot)) != 0)
            why = "the ranks are on more than one machine";
    }
    if (!why && limit == 0) why = "a rank has no buffer (no GPU, or COLL_P2P_MAX_BYTES=0)";
    uint8_t ok = !why && open_peers(s, all), oks[COLL_P2P_MAX_RANKS];
    /* Every rank must agree before any uses it: one could not map a peer. */
    if ((st = exchange(s, &ok, oks, 1, err, errlen))) goto release_all;
    for (int p = 0; p < s->n && !why; p++)
        if (!oks[p]) why = "a rank could not map its peers' buffers";
    if (why) {
        coll_log(&comm->log, COLL_LOG_INFO, "p2p: off (%s)", why);
        release(s);
        return COLL_OK;
    }
    s->limit = (size_t)limit;
    s->args.max_bytes = s->limit;
    coll_log(&comm->log, COLL_LOG_INFO,
             "p2p: one-shot all-reduce of device buffers up to %zu bytes over %d ranks of one "
             "machine (CUDA IPC, device %d); larger ones go to the next provider",
             s->limit, s->n, s->device);
    return COLL_OK;
release_all:
    release(s);
free_state:
    free(s);
    *state = NULL;
    return st;
}

static coll_status check_error_word(p2p *s, char *err, size_t errlen)
{
    int e = __atomic_load_n(s->herr, __ATOMIC_SEQ_CST);
    if (e == 0) return COLL_OK;
    if (e < 0) return coll_fail(COLL_ERR_ABORTED, err, errlen, "p2p: aborted");
    return coll_fail(COLL_ERR_TIMEOUT, err, errlen,
                     "p2p: rank %d waited more than %d ms for rank %d's data", s->rank,
                     s->comm->op_timeout_ms, e - 1);
}

/* Wait for `done` with the op deadline, watching the kernels' error word. */
static coll_status wait_done(p2p *s, char *err, size_t errlen)
{
    int64_t deadline = rc_now_ms() + s->comm->op_timeout_ms;
    for (long spins = 0;; spins++) {
        cudaError_t q = cudaEventQuery(s->done);
        if (q == cudaSuccess) return check_error_word(s, err, errlen);
        if (q != cudaErrorNotReady) return coll_cuda_status(q, "cudaEventQuery", err, errlen);
        if (__atomic_load_n(&s->aborted, __ATOMIC_SEQ_CST))
            return coll_fail(COLL_ERR_ABORTED, err, errlen, "p2p: aborted");
        /* A little past the kernels' own deadline: they give up first and say why. */
        if (rc_now_ms() > deadline + 1000)
            return coll_fail(COLL_ERR_TIMEOUT, err, errlen, "p2p: not done after %d ms",
                             s->comm->op_timeout_ms);
        if (spins > 2000) {
            struct timespec nap = {0, 20000};
            nanosleep(&nap, NULL);
        }
    }
}

static coll_status p2p_call(void *state, const coll_call *c, char *err, size_t errlen)
{
    p2p *s = state;
    coll_status st = COLL_OK;
    if (!s || !s->limit) return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "p2p: off");
    if (c->kind != COLL_OP_ALLREDUCE)
        return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "p2p: all-reduce only");
    if (c->mem != COLL_MEM_DEVICE)
        return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "p2p: host memory");
    if (!coll_kern_supports((int)c->type, (int)c->op))
        return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "p2p: f32, f16 and bf16 only");
    size_t bytes = c->count * coll_dtype_size(c->type);
    if (bytes > s->limit) {
        if (!s->told_big) {
            s->told_big = 1;
            coll_log(&s->comm->log, COLL_LOG_INFO,
                     "p2p: all-reduces above %zu bytes go to the next provider (first: %zu)",
                     s->limit, bytes);
        }
        return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "p2p: %zu bytes is above %s=%zu", bytes,
                         coll_knob_name(KNOB_P2P_MAX_BYTES), s->limit);
    }
    if ((st = check_error_word(s, err, errlen))) return st;
    if (!s->told_first) {
        s->told_first = 1;
        coll_log(&s->comm->log, COLL_LOG_DEBUG, "p2p: serves all-reduce of %zu bytes", bytes);
    }
    if (c->count == 0) return COLL_OK; /* every rank skips it alike: epochs stay in step */
    cudaStream_t stream = c->stream ? (cudaStream_t)c->stream : s->stream;
    CUDA_CHECK(cudaSetDevice(s->device), fail);
    CUDA_CHECK((cudaError_t)coll_kern_p2p_allreduce(&s->args, c->recvbuf, c->sendbuf, c->count,
                                                    (int)c->type, (int)c->op, stream),
               fail);
    if (!c->stream) {
        CUDA_CHECK(cudaEventRecord(s->done, stream), fail);
        st = wait_done(s, err, errlen);
    }
fail:
    return st;
}

static coll_status p2p_sync(void *state, void *stream, char *err, size_t errlen)
{
    p2p *s = state;
    coll_status st = COLL_OK;
    if (!s || !s->limit) return COLL_OK;
    CUDA_CHECK(cudaSetDevice(s->device), fail);
    CUDA_CHECK(cudaEventRecord(s->done, stream ? (cudaStream_t)stream : s->stream), fail);
    st = wait_done(s, err, errlen);
fail:
    return st;
}

static void p2p_abort(void *state)
{
    p2p *s = state;
    if (!s) return;
    __atomic_store_n(&s->aborted, 1, __ATOMIC_SEQ_CST);
    /* Kernels waiting for a peer read this word and give up. */
    if (s->herr) __atomic_store_n(s->herr, -1, __ATOMIC_SEQ_CST);
}

static void p2p_destroy(void *state)
{
    p2p *s = state;
    if (!s) return;
    if (s->limit) {
        /* Peers may still read this rank's buffer: finish here, then meet them, then free.
         * A failed communicator skips the meeting (the kernels have given up by then). */
        char err[256];
        cudaSetDevice(s->device);
        cudaDeviceSynchronize();
        uint8_t one = 1, all[COLL_P2P_MAX_RANKS];
        if (!__atomic_load_n(&s->comm->failed, __ATOMIC_SEQ_CST) &&
            exchange(s, &one, all, 1, err, sizeof(err)) != COLL_OK)
            coll_log(&s->comm->log, COLL_LOG_WARN, "p2p: closing without the peers: %s", err);
    }
    release(s);
    free(s);
}

size_t coll_comm_p2p_max_bytes(const coll_comm *c)
{
    for (int i = 0; c && i < c->nprov; i++)
        if (c->prov[i] == &coll_provider_p2p && c->created[i] && c->state[i])
            return ((const p2p *)c->state[i])->limit;
    return 0;
}

const coll_provider coll_provider_p2p = {
    .name = "p2p",
    .create = p2p_create,
    .call = p2p_call,
    .sync = p2p_sync,
    .abort = p2p_abort,
    .destroy = p2p_destroy,
    .late = 1,
};
