/* The CUDA backend's run state: one device allocation for activations, KV cache and
 * scratch, pinned host mirrors of the inputs and outputs, the stream and cuBLAS handle. */
#include "cuda.h"

#include <sched.h>
#include <stdlib.h>
#include <time.h>

#define WAIT_LIMIT_S 120.0 /* a kernel that runs longer than this is taken as hung */
#define ALIGN 256
#define BATCH_SPLIT_MAX 8 /* key-range splits of a batched step's attention */

static size_t up(size_t b)
{
    return (b + ALIGN - 1) / ALIGN * ALIGN;
}

eng_status cuda_wait(cuda_state *cs)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        cudaError_t e = cudaStreamQuery(cs->st);
        if (e == cudaSuccess) return ENG_OK;
        if (e != cudaErrorNotReady) return cu_fail(cs->err, sizeof(cs->err), "the GPU's work", e);
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 > WAIT_LIMIT_S)
            return eng_fail(ENG_ERR_DEVICE, cs->err, sizeof(cs->err),
                            "CUDA: the GPU did not finish a forward step within %.0f s",
                            WAIT_LIMIT_S);
        sched_yield();
    }
}

eng_status cuda_state_create(const eng_model *m, eng_state *s, const eng_state_params *p, char *err,
                             size_t errlen)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *sh = &m->sh;
    const cuda_weights *w = m->bw;
    cuda_state *cs = calloc(1, sizeof(*cs));
    if (!cs) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the run state");
    s->bs = cs;
    CU_CHECK(cudaSetDevice(w->dev), err, errlen);
    CU_CHECK(cudaStreamCreateWithFlags(&cs->st, cudaStreamNonBlocking), err, errlen);
    CU_CHECK(cublasCreate(&cs->blas), err, errlen);
    CU_CHECK(cublasSetStream(cs->blas, cs->st), err, errlen);
    size_t B = (size_t)s->max_batch, D = (size_t)c->dim, hd = (size_t)c->head_dim;
    size_t nq = (size_t)sh->n_heads * hd, nk = (size_t)sh->n_kv_heads * hd, F = (size_t)sh->ffn;
    size_t V = (size_t)c->vocab_size, L = (size_t)c->n_layers, ctx = (size_t)s->ctx_len;
    size_t rows = p->all_logits || s->n_seqs > 1 ? B : 1, wide = D > nq ? D : nq;
    if (F > wide) wide = F;
    /* Flash-decoding: enough splits to give about two blocks per SM, chunks of >= 64 keys. */
    int by_len = (int)((ctx + 63) / 64),
        by_sm = (2 * w->prop.multiProcessorCount + sh->n_kv_heads - 1) / sh->n_kv_heads;
    cs->nsplit = by_len < by_sm ? by_len : by_sm;
    if (cs->nsplit < 1) cs->nsplit = 1;
    cs->chunk = (int)((ctx + (size_t)cs->nsplit - 1) / (size_t)cs->nsplit);
    size_t cache = (size_t)s->n_seqs * L * ctx * nk * 4;
    size_t sz[] = {B * D * 4,
                   B * D * 4,
                   B * (nq + 2 * nk) * 4,
                   B * nq * 4,
                   B * nq * 4,
                   B * 2 * F * 4,
                   B * F * 4,
                   B * D * 4,
                   B * wide * 4,
                   cache,
                   cache,
                   rows * V * 4,
                   (size_t)cs->nsplit * (size_t)sh->n_heads * (hd + 2) * 4,
                   (B + 2) * 4,
                   4};
    size_t total = 0;
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++)
        total += up(sz[i]);
    if (cudaMalloc((void **)&cs->arena, total) != cudaSuccess) {
        cudaGetLastError();
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        return eng_fail(ENG_ERR_NOMEM, err, errlen,
                        "out of device memory for the run state: needs %.2f GiB (KV cache %.2f "
                        "GiB for %zu positions), GPU %d has %.2f GiB free of %.2f",
                        (double)total / 1073741824.0, 2.0 * (double)cache / 1073741824.0, ctx,
                        w->dev, (double)free_b / 1073741824.0, (double)total_b / 1073741824.0);
    }
    cs->arena_size = total;
    char *a = cs->arena;
    void **dst[] = {(void **)&cs->x,    (void **)&cs->xb,    (void **)&cs->qkv,
                    (void **)&cs->q,    (void **)&cs->att,   (void **)&cs->h13,
                    (void **)&cs->hb,   (void **)&cs->delta, (void **)&cs->act16,
                    (void **)&cs->kc,   (void **)&cs->vc,    (void **)&cs->logits,
                    (void **)&cs->part, (void **)&cs->in_d,  (void **)&cs->next_d};
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) {
        *dst[i] = a;
        a += up(sz[i]);
    }
    /* Never read before written, but a forward step that went wrong must not see old NaNs. */
    CU_CHECK(cudaMemsetAsync(cs->arena, 0, total, cs->st), err, errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->in_h, (B + 2) * 4), err, errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->logits_h, rows * V * 4), err, errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->next_h, 4), err, errlen);
    if (sh->tp_size > 1) {
        cs->host_red = malloc(B * D * 4);
        if (!cs->host_red) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    }
    /* eng_forward_batch's inputs and attention partials (a batch may also use one slot) */
    cs->bsplit_max = BATCH_SPLIT_MAX;
    size_t part = (size_t)cs->bsplit_max * B * nq / hd * (hd + 2) * 4;
    CU_CHECK(cudaMalloc((void **)&cs->bin_d, 3 * B * 4), err, errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->bin_h, 3 * B * 4), err, errlen);
    CU_CHECK(cudaMalloc((void **)&cs->bpart, part), err, errlen);
    CU_CHECK(eng_cu_attention_batch_init(
                 eng_cu_attention_batch_smem(sh->n_heads / sh->n_kv_heads, (int)hd)),
             err, errlen);
    CU_CHECK(eng_cu_attention_init(
                 eng_cu_attention_smem(s->max_batch, sh->n_heads / sh->n_kv_heads, (int)hd)),
             err, errlen);
    eng_status st = cuda_wait(cs);
    if (st != ENG_OK) return eng_fail(st, err, errlen, "%s", cs->err);
    return ENG_OK;
}

void cuda_state_free(eng_state *s)
{
    cuda_state *cs = s->bs;
    if (!cs) return;
    if (cs->st) cudaStreamSynchronize(cs->st);
    if (cs->graph) cudaGraphExecDestroy(cs->graph);
    if (cs->blas) cublasDestroy(cs->blas);
    if (cs->st) cudaStreamDestroy(cs->st);
    if (cs->arena) cudaFree(cs->arena);
    if (cs->in_h) cudaFreeHost(cs->in_h);
    if (cs->logits_h) cudaFreeHost(cs->logits_h);
    if (cs->next_h) cudaFreeHost(cs->next_h);
    if (cs->bin_d) cudaFree(cs->bin_d);
    if (cs->bin_h) cudaFreeHost(cs->bin_h);
    if (cs->bpart) cudaFree(cs->bpart);
    cudaGetLastError();
    free(cs->host_red);
    free(cs);
    s->bs = NULL;
}
