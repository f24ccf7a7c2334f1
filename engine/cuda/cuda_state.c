/* SPDX-License-Identifier: MIT */
/* The CUDA backend's run state: one device allocation for activations, KV cache and
 * scratch, pinned host mirrors of the inputs and outputs, the stream and cuBLAS handle. */
#include "cuda.h"

#include <sched.h>
#include <stdlib.h>
#include <time.h>

#define WAIT_LIMIT_S 120.0 /* a kernel that runs longer than this is taken as hung */
#define ALIGN 256
#define BATCH_SPLIT_MAX 32 /* key-range splits of a batched step's attention */
/* Long-prompt attention keeps [heads, batch, keys] scores: up to this many keys (longer
 * contexts fall back to the attention kernel past it). */
#define SCORE_KEYS_MAX 8192
#define SCORE_BATCH_MIN 64 /* smaller batches never take the batched-product path */

static size_t up(size_t b)
{
    return (b + ALIGN - 1) / ALIGN * ALIGN;
}

eng_status cuda_wait(cuda_state *cs)
{
    return cuda_wait_event(cs, NULL);
}

eng_status cuda_wait_event(cuda_state *cs, cudaEvent_t ev)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        cudaError_t e = ev ? cudaEventQuery(ev) : cudaStreamQuery(cs->st);
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

/* Splits of a decode step's keys: as many as chunks of at least `unit` keys over ctx make,
 * at most enough for `fit` blocks an SM when each split has `per` blocks; at least one. */
static int decode_splits(size_t ctx, int unit, int fit, int sms, int per)
{
    int by_len = (int)((ctx + (size_t)unit - 1) / (size_t)unit),
        by_sm = (fit * sms + per - 1) / per;
    int n = by_len < by_sm ? by_len : by_sm;
    return n < 1 ? 1 : n;
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
    cs->dev = w->dev;
    CU_CHECK(cudaSetDevice(w->dev), err, errlen);
    CU_CHECK(cudaStreamCreateWithFlags(&cs->st, cudaStreamNonBlocking), err, errlen);
    CU_CHECK(cudaEventCreateWithFlags(&cs->mark, cudaEventDisableTiming), err, errlen);
    CU_CHECK(cublasCreate(&cs->blas), err, errlen);
    CU_CHECK(cublasSetStream(cs->blas, cs->st), err, errlen);
    size_t B = (size_t)s->max_batch, D = (size_t)c->dim, hd = (size_t)c->head_dim;
    size_t nq = (size_t)sh->n_heads * hd, nk = (size_t)sh->n_kv_heads * hd, F = (size_t)sh->ffn;
    size_t V = (size_t)c->vocab_size, L = (size_t)c->n_layers, ctx = (size_t)s->ctx_len;
    /* Only the segment with the classifier has logits; several sequences: a row per token. */
    size_t rows = !(m->parts & ENG_PART_HEAD) ? 0 : p->all_logits || s->n_seqs > 1 ? B : 1;
    size_t wide = D > nq ? D : nq;
    if (F > wide) wide = F;
    /* Flash-decoding: enough splits to give about two blocks per SM, chunks of >= 32 keys (one
     * tile: a split then waits on one round of loads; 64-key chunks were 3.3% slower on the
     * Llama-3.2-1B shape's decode at a 160-position context, H200, 2026-12-04). */
    int sms = w->prop.multiProcessorCount;
    cs->sms = sms;
    cs->nsplit = decode_splits(ctx, 32, 2, sms, sh->n_kv_heads);
    /* The same for blocks of T tiles (attn_decode.cu): as many blocks an SM as fit, up to 2. */
    int G = sh->n_heads / sh->n_kv_heads;
    cs->att_tiles = eng_cu_attention_tiles(sh->n_heads, sh->n_kv_heads, (int)hd,
                                           w->prop.sharedMemPerBlockOptin);
    size_t dsmem = cs->att_tiles ? eng_cu_attention_decode_smem(G, (int)hd, cs->att_tiles) : 0;
    cs->nsplit_tiles = 1;
    if (cs->att_tiles) {
        int fit = (int)(w->prop.sharedMemPerMultiprocessor / dsmem);
        if (fit > 2) fit = 2;
        if (fit < 1) fit = 1;
        cs->nsplit_tiles = decode_splits(ctx, 32 * cs->att_tiles, fit, sms, sh->n_kv_heads);
    }
    /* A block a query head (attn_head.cu): 128 keys a pass, up to two blocks an SM. Heads of
     * 64 dims keep the tiled kernel, whose lanes then walk short rows (cuda.h). */
    cs->att_head = hd == 128 && eng_cu_attention_head_ok(sh->n_heads, sh->n_kv_heads, (int)hd);
    cs->nsplit_head = cs->att_head ? decode_splits(ctx, 128, 2, sms, sh->n_heads) : 1;
    int nsplit_max = cs->nsplit > cs->nsplit_tiles ? cs->nsplit : cs->nsplit_tiles;
    if (cs->nsplit_head > nsplit_max) nsplit_max = cs->nsplit_head;
    cs->chunk = 0; /* sized from the position at run time (attention.cu) */
    size_t cache = (size_t)s->n_seqs * L * ctx * nk * 4;
    cs->score_keys = B >= SCORE_BATCH_MIN ? (int)(ctx < SCORE_KEYS_MAX ? ctx : SCORE_KEYS_MAX) : 0;
    size_t scores = (size_t)sh->n_heads * B * (size_t)cs->score_keys * 4;
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
                   (size_t)nsplit_max * (size_t)sh->n_heads * (hd + 2) * 4,
                   (B + 2) * 4,
                   scores,
                   D * 4 * (size_t)(s->n_seqs > 1 ? s->n_seqs : 1),
                   (size_t)eng_cu_attention_counts(1, sh->n_heads, sh->n_kv_heads) * 4};
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
    void **dst[] = {(void **)&cs->x,    (void **)&cs->xb,       (void **)&cs->qkv,
                    (void **)&cs->q,    (void **)&cs->att,      (void **)&cs->h13,
                    (void **)&cs->hb,   (void **)&cs->delta,    (void **)&cs->act16,
                    (void **)&cs->kc,   (void **)&cs->vc,       (void **)&cs->logits,
                    (void **)&cs->part, (void **)&cs->in_d,     (void **)&cs->scores,
                    (void **)&cs->ssq,  (void **)&cs->att_count};
    for (size_t i = 0; i < sizeof(sz) / sizeof(sz[0]); i++) {
        *dst[i] = a;
        a += up(sz[i]);
    }
    /* The sampled id lands where the next step's embedding reads its token: a step started
     * ahead (eng_forward_ahead) takes it from there. */
    cs->next_d = cs->in_d;
    /* Never read before written, but a forward step that went wrong must not see old NaNs. */
    CU_CHECK(cudaMemsetAsync(cs->arena, 0, total, cs->st), err, errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->in_h, (B + 2) * 4), err, errlen);
    if (rows) CU_CHECK(cudaMallocHost((void **)&cs->logits_h, rows * V * 4), err, errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->next_h, 4), err, errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->ahead_h, 2 * 3 * 4), err, errlen);
    for (int k = 0; k < 2; k++)
        CU_CHECK(cudaEventCreateWithFlags(&cs->ahead_ev[k], cudaEventDisableTiming), err, errlen);
    if (sh->tp_size > 1) {
        cs->host_red = malloc(B * D * 4);
        if (!cs->host_red) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    }
    if (!(m->parts & ENG_PART_HEAD)) {
        float *h = malloc(D * 4);
        if (!h) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        for (size_t i = 0; i < D; i++)
            h[i] = 1.0f;
        cudaError_t e = cudaMalloc((void **)&cs->ones, D * 4);
        if (e == cudaSuccess) e = cudaMemcpy(cs->ones, h, D * 4, cudaMemcpyHostToDevice);
        free(h);
        if (e != cudaSuccess) return cu_fail(err, errlen, "cudaMalloc/cudaMemcpy (ones)", e);
    }
    /* eng_forward_batch's inputs and attention partials (a batch may also use one slot) */
    cs->bsplit_max = BATCH_SPLIT_MAX;
    size_t part = (size_t)cs->bsplit_max * B * nq / hd * (hd + 2) * 4;
    CU_CHECK(cudaMalloc((void **)&cs->bin_d, 6 * B * 4), err, errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->bin_h, 6 * B * 4), err, errlen);
    cs->bgraph = calloc((size_t)s->n_seqs + 1, sizeof(*cs->bgraph));
    if (!cs->bgraph) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    CU_CHECK(cudaMalloc((void **)&cs->ids_d, B * 4), err, errlen);
    CU_CHECK(cudaMalloc(&cs->smp, eng_cu_sample_scratch_bytes((int)B)), err, errlen);
    CU_CHECK(cudaMalloc((void **)&cs->bscale, (size_t)(s->n_seqs > 1 ? s->n_seqs : 1) * 4), err,
             errlen);
    CU_CHECK(cudaMallocHost((void **)&cs->ids_h, B * 4), err, errlen);
    CU_CHECK(cudaMalloc((void **)&cs->bpart, part), err, errlen);
    size_t out_w = nq + 2 * nk > 2 * F ? nq + 2 * nk : 2 * F;
    if (D > out_w) out_w = D;
    CU_CHECK(cudaMalloc(&cs->stage_in, B * wide * 4), err, errlen);
    CU_CHECK(cudaMalloc((void **)&cs->stage_out, B * out_w * 4), err, errlen);
    CU_CHECK(eng_cu_attention_batch_init(
                 eng_cu_attention_batch_smem(sh->n_heads / sh->n_kv_heads, (int)hd)),
             err, errlen);
    size_t asmem = eng_cu_attention_smem(s->max_batch, G, (int)hd);
    CU_CHECK(eng_cu_attention_init(asmem > dsmem ? asmem : dsmem), err, errlen);
    if (!scores) cs->scores = NULL;
    cs->log = w->log;
    cs->log_ctx = w->log_ctx;
    long prof = 0, fuse = 27;
    eng_status st = eng_knob_int(ENG_KNOB_CUDA_PROFILE, 0, 1, &prof, err, errlen);
    if (st != ENG_OK) return st;
    if ((st = eng_knob_int(ENG_KNOB_CUDA_FUSE, 0, 2047, &fuse, err, errlen)) != ENG_OK) return st;
    cs->fuse = (int)fuse;
    cs->split = s->prefill_precision == ENG_PREFILL_HIGH;
    if (prof) {
        cs->prof = 1;
        cs->prof_cap = c->n_layers * 12 + 8;
        cs->prof_ev = calloc((size_t)cs->prof_cap, sizeof(*cs->prof_ev));
        cs->prof_stage = calloc((size_t)cs->prof_cap, sizeof(int));
        if (!cs->prof_ev || !cs->prof_stage)
            return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        for (int i = 0; i < cs->prof_cap; i++)
            CU_CHECK(cudaEventCreate(&cs->prof_ev[i]), err, errlen);
    }
    st = cuda_wait(cs);
    if (st == ENG_OK) st = cuda_warmup(m, s);
    if (st != ENG_OK) return eng_fail(st, err, errlen, "%s", cs->err);
    return ENG_OK;
}

void cuda_mark(cuda_state *cs, int stage)
{
    if (!cs->prof_on || cs->prof_n >= cs->prof_cap) return;
    if (cudaEventRecord(cs->prof_ev[cs->prof_n], cs->st) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    cs->prof_stage[cs->prof_n++] = stage;
}

void cuda_prof_collect(cuda_state *cs)
{
    if (!cs->prof_on) return;
    for (int i = 1; i < cs->prof_n; i++) {
        float ms = 0.0f;
        if (cudaEventElapsedTime(&ms, cs->prof_ev[i - 1], cs->prof_ev[i]) == cudaSuccess)
            cs->prof_ms[cs->prof_stage[i]] += ms;
        else
            cudaGetLastError();
    }
    cs->prof_steps++;
    cs->prof_on = 0;
}

/* The profile as one log line: microseconds per decode step in each stage. */
static void prof_report(const cuda_state *cs)
{
    static const char *names[CUDA_STAGES] = {"embed", "norm",   "qkv", "rope", "attn",   "wo",
                                             "w13",   "swiglu", "w2",  "cls",  "sample", "copy"};
    char line[1024];
    double total = 0;
    for (int k = 0; k < CUDA_STAGES; k++)
        total += cs->prof_ms[k];
    double per = 1000.0 / (double)cs->prof_steps;
    int o = snprintf(line, sizeof(line),
                     "CUDA decode profile (%ld steps, eager launches with events): %.1f us/step:",
                     cs->prof_steps, total * per);
    for (int k = 0; k < CUDA_STAGES && o < (int)sizeof(line); k++)
        o += snprintf(line + o, sizeof(line) - (size_t)o, " %s %.1f (%.1f%%)", names[k],
                      cs->prof_ms[k] * per, total > 0 ? 100.0 * cs->prof_ms[k] / total : 0.0);
    cs->log(cs->log_ctx, line);
}

void cuda_state_free(eng_state *s)
{
    cuda_state *cs = s->bs;
    if (!cs) return;
    cudaSetDevice(cs->dev);
    if (cs->st) cudaStreamSynchronize(cs->st);
    if (cs->prof && cs->prof_steps > 0 && cs->log) prof_report(cs);
    for (int i = 0; cs->prof_ev && i < cs->prof_cap; i++)
        if (cs->prof_ev[i]) cudaEventDestroy(cs->prof_ev[i]);
    free(cs->prof_ev);
    free(cs->prof_stage);
    if (cs->graph) cudaGraphExecDestroy(cs->graph);
    if (cs->graph_long) cudaGraphExecDestroy(cs->graph_long);
    for (int i = 0; cs->bgraph && i <= s->n_seqs; i++)
        if (cs->bgraph[i]) cudaGraphExecDestroy(cs->bgraph[i]);
    free(cs->bgraph);
    if (cs->mark) cudaEventDestroy(cs->mark);
    if (cs->blas) cublasDestroy(cs->blas);
    if (cs->st) cudaStreamDestroy(cs->st);
    if (cs->arena) cudaFree(cs->arena);
    if (cs->in_h) cudaFreeHost(cs->in_h);
    if (cs->logits_h) cudaFreeHost(cs->logits_h);
    if (cs->next_h) cudaFreeHost(cs->next_h);
    if (cs->ahead_h) cudaFreeHost(cs->ahead_h);
    for (int k = 0; k < 2; k++)
        if (cs->ahead_ev[k]) cudaEventDestroy(cs->ahead_ev[k]);
    if (cs->bin_d) cudaFree(cs->bin_d);
    if (cs->ones) cudaFree(cs->ones);
    if (cs->bin_h) cudaFreeHost(cs->bin_h);
    if (cs->ids_d) cudaFree(cs->ids_d);
    if (cs->smp) cudaFree(cs->smp);
    if (cs->bscale) cudaFree(cs->bscale);
    if (cs->ids_h) cudaFreeHost(cs->ids_h);
    if (cs->bpart) cudaFree(cs->bpart);
    if (cs->stage_in) cudaFree(cs->stage_in);
    if (cs->stage_out) cudaFree(cs->stage_out);
    cudaGetLastError();
    free(cs->host_red);
    free(cs);
    s->bs = NULL;
}
