/* SPDX-License-Identifier: MIT */
/* Layer mapping: the residual stream x [n, dim] (f32) from one CUDA segment to the next.
 * Peer copy where the GPUs can reach each other (peer access enabled once, at load), a
 * device copy on one GPU, else staged through pinned host memory, as mistral.rs does. The
 * copy runs on the sending segment's stream; an event orders the receiving stream after
 * it, so the host never waits at a boundary. */
#include "cuda.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct cu_link {
    eng_link_mode mode;
    int dev_a;         /* the sending GPU: the event's device */
    cudaEvent_t moved; /* recorded on a's stream after the copy (or its device half) */
    float *host;       /* ENG_LINK_STAGED: pinned [B, dim] */
} cu_link;

eng_status cuda_link_model(const eng_model *a, const eng_model *b, int no_p2p, eng_link_mode *mode,
                           char *warn, size_t warnlen, char *err, size_t errlen)
{
    int da = ((const cuda_weights *)a->bw)->dev, db = ((const cuda_weights *)b->bw)->dev;
    if (no_p2p) { /* also for one GPU twice (test hook): the staged path testable on one GPU */
        *mode = ENG_LINK_STAGED;
        snprintf(warn, warnlen,
                 "GPU %d -> GPU %d: peer and device copies turned off (ENG_NO_P2P=1); "
                 "activations are staged through pinned host memory",
                 da, db);
        return ENG_OK;
    }
    if (da == db) {
        *mode = ENG_LINK_SAME;
        return ENG_OK;
    }
    int can = 0;
    CU_CHECK(cudaDeviceCanAccessPeer(&can, da, db), err, errlen);
    if (!can) {
        *mode = ENG_LINK_STAGED;
        snprintf(warn, warnlen,
                 "GPU %d -> GPU %d: no peer access between these GPUs "
                 "(cudaDeviceCanAccessPeer); activations are staged through pinned host memory, "
                 "which is slower",
                 da, db);
        return ENG_OK;
    }
    /* a writes into b's memory: a's context needs access to b. Once per process and pair
     * (a second model finds it enabled). */
    CU_CHECK(cudaSetDevice(da), err, errlen);
    cudaError_t e = cudaDeviceEnablePeerAccess(db, 0);
    if (e == cudaErrorPeerAccessAlreadyEnabled) {
        cudaGetLastError();
    } else if (e != cudaSuccess) {
        cudaGetLastError();
        *mode = ENG_LINK_STAGED;
        snprintf(warn, warnlen,
                 "GPU %d -> GPU %d: enabling peer access failed (%s); activations are staged "
                 "through pinned host memory, which is slower",
                 da, db, cudaGetErrorString(e));
        return ENG_OK;
    }
    *mode = ENG_LINK_PEER;
    return ENG_OK;
}

eng_status cuda_link_create(const eng_model *a, eng_state *sa, const eng_model *b, eng_state *sb,
                            eng_link_mode mode, void **link, char *err, size_t errlen)
{
    (void)b;
    (void)sb;
    *link = NULL;
    cu_link *k = calloc(1, sizeof(*k));
    if (!k) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    k->mode = mode;
    k->dev_a = ((const cuda_weights *)a->bw)->dev;
    *link = k;
    CU_CHECK(cudaSetDevice(k->dev_a), err, errlen);
    CU_CHECK(cudaEventCreateWithFlags(&k->moved, cudaEventDisableTiming), err, errlen);
    if (mode == ENG_LINK_STAGED) /* x, then (decode) the norm's partial sums */
        CU_CHECK(cudaHostAlloc((void **)&k->host, ((size_t)sa->max_batch + 1) * a->cfg.dim * 4,
                               cudaHostAllocPortable),
                 err, errlen);
    return ENG_OK;
}

/* The next call's copy into b's x cannot overtake b's use of it: every forward call ends
 * with the host waiting for the last segment, whose stream waited (through these events)
 * for all earlier ones. */
eng_status cuda_cross(const eng_model *a, eng_state *sa, const eng_model *b, eng_state *sb,
                      void *link)
{
    cu_link *k = link;
    cuda_state *ca = sa->bs, *cb = sb->bs;
    size_t bytes = (size_t)sa->n * a->cfg.dim * 4;
    eng_status st = cuda_flush(a, sa); /* binds a's GPU: x complete */
    if (st != ENG_OK) return st;
    /* A decode step whose last product left the next norm's partial sums (a->ones as its
     * weight) hands them over too: b's first product then runs fused, as in one segment. */
    const float *nw = ((const cuda_weights *)b->bw)->layers[0].att_norm;
    int carry = sa->n == 1 && ca->ones && ca->fused_nw == ca->ones && nw;
    size_t sbytes = carry ? (size_t)ca->nss * 4 : 0;
    float *shost = k->host ? k->host + (size_t)sa->max_batch * a->cfg.dim : NULL;
#define KA(call)                                                                                   \
    do {                                                                                           \
        int e_ = (int)(call);                                                                      \
        if (e_) return cu_fail(ca->err, sizeof(ca->err), #call, e_);                               \
    } while (0)
    switch (k->mode) {
    case ENG_LINK_PEER:
        KA(cudaMemcpyPeerAsync(cb->x, cb->dev, ca->x, ca->dev, bytes, ca->st));
        if (carry) KA(cudaMemcpyPeerAsync(cb->ssq, cb->dev, ca->ssq, ca->dev, sbytes, ca->st));
        break;
    case ENG_LINK_SAME:
        KA(cudaMemcpyAsync(cb->x, ca->x, bytes, cudaMemcpyDeviceToDevice, ca->st));
        if (carry) KA(cudaMemcpyAsync(cb->ssq, ca->ssq, sbytes, cudaMemcpyDeviceToDevice, ca->st));
        break;
    default:
        KA(cudaMemcpyAsync(k->host, ca->x, bytes, cudaMemcpyDeviceToHost, ca->st));
        if (carry) KA(cudaMemcpyAsync(shost, ca->ssq, sbytes, cudaMemcpyDeviceToHost, ca->st));
        break;
    }
    KA(cudaEventRecord(k->moved, ca->st));
    KA(cudaStreamWaitEvent(cb->st, k->moved, 0));
#undef KA
    CU_BIND(cb);
    if (k->mode == ENG_LINK_STAGED) {
        int e = (int)cudaMemcpyAsync(cb->x, k->host, bytes, cudaMemcpyHostToDevice, cb->st);
        if (!e && carry)
            e = (int)cudaMemcpyAsync(cb->ssq, shost, sbytes, cudaMemcpyHostToDevice, cb->st);
        if (e) return cu_fail(cb->err, sizeof(cb->err), "cudaMemcpyAsync (staged)", e);
    }
    cb->pending = 0;
    cb->fused_nw = NULL;
    if (carry) { /* xb = nw * x, as the product's epilogue writes it; the partials came along */
        int e = eng_cu_mul(cb->xb, nw, cb->x, a->cfg.dim, (eng_stream)cb->st);
        if (e) return cu_fail(cb->err, sizeof(cb->err), "eng_cu_mul (boundary norm)", e);
        cb->fused_nw = nw;
        cb->nss = ca->nss;
    }
    return ENG_OK;
}

void cuda_link_free(void *link)
{
    cu_link *k = link;
    if (!k) return;
    cudaSetDevice(k->dev_a);
    if (k->moved) {
        cudaEventSynchronize(k->moved);
        cudaEventDestroy(k->moved);
    }
    if (k->host) cudaFreeHost(k->host);
    cudaGetLastError();
    free(k);
}
