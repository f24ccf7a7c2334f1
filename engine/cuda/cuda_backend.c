/* SPDX-License-Identifier: MIT */
/* The CUDA backend's ops table: device discovery, host copies of outputs, the decode step
 * captured as a CUDA graph (inputs in device memory, so the same graph serves every step).
 * With ENG_CUDA_PROFILE=1 no graph is made: each step runs eagerly through the capture hooks,
 * with an event after each stage (cuda_mark), read back when the token is. */
#include "cuda.h"

#include <stdio.h>
#include <string.h>

#define K(call)                                                                                    \
    do {                                                                                           \
        int e_ = (int)(call);                                                                      \
        if (e_) return cu_fail(cs->err, sizeof(cs->err), #call, e_);                               \
    } while (0)

static eng_status cuda_available(const eng_load_params *p, char *err, size_t errlen)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen, "--device cuda: no CUDA GPU visible (%s)",
                        cudaGetErrorString(e));
    }
    if (n == 0)
        return eng_fail(
            ENG_ERR_UNSUPPORTED, err, errlen,
            "--device cuda: no CUDA GPU visible (CUDA_VISIBLE_DEVICES hides them all?)");
    if (p->gpu < 0 || p->gpu >= n)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "GPU %d asked for, %d visible", p->gpu,
                        n);
    return ENG_OK;
}

void eng_cuda_print_devices(FILE *out)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        cudaGetLastError();
        fprintf(out, "%-12s = built, no GPU visible (%s)\n", "backend cuda",
                e != cudaSuccess ? cudaGetErrorString(e) : "none listed");
        return;
    }
    for (int i = 0; i < n; i++) {
        struct cudaDeviceProp pr;
        if (cudaGetDeviceProperties(&pr, i) != cudaSuccess) continue;
        fprintf(out, "%-12s = GPU %d: %s, sm_%d%d, %d SMs, %.1f GiB%s\n", "backend cuda", i,
                pr.name, pr.major, pr.minor, pr.multiProcessorCount,
                (double)pr.totalGlobalMem / 1073741824.0,
                i == 0 ? " (default: --device cuda)" : "");
    }
}

static void cuda_describe(const eng_model *m, char *buf, size_t len)
{
    const cuda_weights *w = m->bw;
    static const char *dts[] = {"f32", "f16", "bf16"};
    snprintf(buf, len, "cuda (GPU %d: %s, sm_%d%d, %d SMs; weights %.2f GiB %s)", w->dev,
             w->prop.name, w->prop.major, w->prop.minor, w->prop.multiProcessorCount,
             (double)w->arena_size / 1073741824.0, dts[w->layers[0].wqkv.dt]);
}

static eng_status cuda_get_logits(const eng_model *m, eng_state *s, const float **host)
{
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    K(cudaMemcpyAsync(cs->logits_h, cs->logits, (size_t)cs->logit_rows * m->cfg.vocab_size * 4,
                      cudaMemcpyDeviceToHost, cs->st));
    cuda_mark(cs, CUDA_ST_COPY);
    eng_status st = cuda_wait(cs);
    if (st != ENG_OK) return st;
    cuda_prof_collect(cs);
    *host = cs->logits_h;
    return ENG_OK;
}

static eng_status cuda_get_token(const eng_model *m, eng_state *s, int *token)
{
    (void)m;
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    K(cudaMemcpyAsync(cs->next_h, cs->next_d, 4, cudaMemcpyDeviceToHost, cs->st));
    eng_status st = cuda_wait(cs);
    if (st != ENG_OK) return st;
    cuda_prof_collect(cs);
    *token = *cs->next_h;
    return ENG_OK;
}

/* Decoding ahead (backend.h): slot k of ahead_h carries a step's position and draw in and its
 * sampled id out; the token itself stays in in_d[0], where the sampler wrote it. */
static eng_status cuda_ahead_inputs(const eng_model *m, eng_state *s, int slot)
{
    (void)m;
    cuda_state *cs = s->bs;
    if (slot < 0) /* profiling collects each step's events before the next one starts */
        return cs->prof ? ENG_ERR_UNSUPPORTED : ENG_OK;
    CU_BIND(cs);
    int *h = cs->ahead_h + 3 * slot;
    h[0] = s->pos;
    memcpy(&h[1], &s->draw, 4);
    K(cudaMemcpyAsync(cs->in_d + s->max_batch, h, 2 * 4, cudaMemcpyHostToDevice, cs->st));
    return ENG_OK;
}

static eng_status cuda_ahead_fetch(const eng_model *m, eng_state *s, int slot)
{
    (void)m;
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    K(cudaMemcpyAsync(cs->ahead_h + 3 * slot + 2, cs->next_d, 4, cudaMemcpyDeviceToHost, cs->st));
    K(cudaEventRecord(cs->ahead_ev[slot], cs->st));
    return ENG_OK;
}

static eng_status cuda_ahead_wait(const eng_model *m, eng_state *s, int slot, int *token)
{
    (void)m;
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    eng_status st = cuda_wait_event(cs, cs->ahead_ev[slot]);
    if (st != ENG_OK) return st;
    *token = cs->ahead_h[3 * slot + 2];
    return ENG_OK;
}

static eng_status cuda_get_batch(const eng_model *m, eng_state *s, int *ids, const int *keep,
                                 const float **host)
{
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    size_t V = (size_t)m->cfg.vocab_size;
    K(cudaMemcpyAsync(cs->ids_h, cs->ids_d, (size_t)s->n_out * 4, cudaMemcpyDeviceToHost, cs->st));
    for (int k = 0; keep && k < s->n_out; k++) /* logprobs: only the rows that ask */
        if (keep[k])
            K(cudaMemcpyAsync(cs->logits_h + (size_t)k * V, cs->logits + (size_t)k * V, V * 4,
                              cudaMemcpyDeviceToHost, cs->st));
    cuda_mark(cs, CUDA_ST_COPY);
    eng_status st = cuda_wait(cs);
    if (st != ENG_OK) return st;
    cuda_prof_collect(cs);
    memcpy(ids, cs->ids_h, (size_t)s->n_out * sizeof(int));
    if (host) *host = cs->logits_h;
    return ENG_OK;
}

static eng_status cuda_get_act(const eng_model *m, eng_state *s, float *host)
{
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    eng_status st = cuda_flush(m, s);
    if (st != ENG_OK) return st;
    K(cudaMemcpyAsync(host, cs->x, (size_t)s->n * m->cfg.dim * 4, cudaMemcpyDeviceToHost, cs->st));
    return cuda_wait(cs);
}

static eng_status cuda_put_act(const eng_model *m, eng_state *s, const float *host)
{
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    K(cudaMemcpyAsync(cs->x, host, (size_t)s->n * m->cfg.dim * 4, cudaMemcpyHostToDevice, cs->st));
    cs->pending = 0;
    cs->fused_nw = NULL;
    return cuda_wait(cs);
}

static eng_status cuda_sync(const eng_model *m, eng_state *s)
{
    (void)m;
    eng_status st = cuda_wait(s->bs);
    if (st == ENG_OK) cuda_prof_collect(s->bs);
    return st;
}

/* The graph of this call: the decode step (two: cuda_head_step), or a batch of decode rows
 * (one per row count). */
static cudaGraphExec_t *graph_slot(cuda_state *cs, const eng_state *s)
{
    if (s->tok_pos) return &cs->bgraph[s->n];
    return cuda_head_past(cs, s) ? &cs->graph_long : &cs->graph;
}

/* A decode graph just captured into slot i (0: graph, 1: graph_long) at the settings
 * cap_*: the other one goes unless both sampled here alike. forward.c tracks one set of
 * settings for "the" decode graph (graph_stale) and recaptures only the step's own. A graph
 * that sampled on another segment's state (layer mapping) or not at all (a rank without the
 * classifier) counts as unknown: the other goes, to be captured again when next needed. */
static void decode_captured(cuda_state *cs, int i)
{
    cs->graph_sampled[i] = cs->cap_sampled;
    cs->graph_temp[i] = cs->cap_temp;
    cs->graph_top_p[i] = cs->cap_top_p;
    cudaGraphExec_t *o = i ? &cs->graph : &cs->graph_long;
    if (*o && (!cs->cap_sampled || !cs->graph_sampled[!i] || cs->graph_temp[!i] != cs->cap_temp ||
               cs->graph_top_p[!i] != cs->cap_top_p)) {
        cudaGraphExecDestroy(*o);
        *o = NULL;
    }
}

static eng_status cuda_capture_begin(const eng_model *m, eng_state *s)
{
    (void)m;
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    if (cs->prof) { /* profiling: the "capture" runs the step at once, with events */
        cs->prof_on = 1;
        cs->prof_n = 0;
        cuda_mark(cs, 0);
        return ENG_OK;
    }
    cs->cap_sampled = 0;
    K(cudaStreamBeginCapture(cs->st, cudaStreamCaptureModeThreadLocal));
    return ENG_OK;
}

static eng_status cuda_capture_end(const eng_model *m, eng_state *s)
{
    (void)m;
    cuda_state *cs = s->bs;
    if (cs->prof) {
        cs->prof_ran = 1; /* the next replay is this step, already run */
        return ENG_OK;
    }
    cudaGraph_t g = NULL;
    cudaGraphExec_t *slot = graph_slot(cs, s);
    cudaError_t e = cudaStreamEndCapture(cs->st, &g);
    if (*slot) { /* captured again (other sampler settings): the old graph goes */
        cudaGraphExecDestroy(*slot);
        *slot = NULL;
    }
    if (e == cudaSuccess) {
        e = cudaGraphInstantiate(slot, g, 0);
        cudaGraphDestroy(g);
    }
    if (e != cudaSuccess) {
        *slot = NULL;
        cudaGetLastError(); /* a failed capture is not sticky: no later check may see it */
        return cu_fail(cs->err, sizeof(cs->err),
                       g ? "cudaGraphInstantiate" : "cudaStreamEndCapture", e);
    }
    if (!s->tok_pos) decode_captured(cs, slot == &cs->graph_long);
    return ENG_OK;
}

static eng_status cuda_replay(const eng_model *m, eng_state *s)
{
    (void)m;
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    if (cs->prof) { /* never a graph: every step goes through capture_begin/end */
        int ran = cs->prof_ran;
        cs->prof_ran = 0;
        return ran ? ENG_OK : ENG_ERR_UNSUPPORTED;
    }
    cudaGraphExec_t g = *graph_slot(cs, s);
    if (!g) return ENG_ERR_UNSUPPORTED;
    K(cudaGraphLaunch(g, cs->st));
    return ENG_OK;
}

static int cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

static eng_status cuda_device_free(int dev, size_t *free_bytes, char *err, size_t errlen)
{
    size_t total = 0;
    CU_CHECK(cudaSetDevice(dev), err, errlen);
    CU_CHECK(cudaMemGetInfo(free_bytes, &total), err, errlen);
    return ENG_OK;
}

static eng_status cuda_wait_for(const eng_model *m, eng_state *s, const eng_model *src_m,
                                eng_state *src)
{
    (void)m;
    (void)src_m;
    cuda_state *cs = s->bs, *cf = src->bs;
    CU_BIND(cf);
    K(cudaEventRecord(cf->mark, cf->st));
    K(cudaStreamWaitEvent(cs->st, cf->mark, 0));
    return ENG_OK;
}

static eng_status cuda_copy_seq(const eng_model *m, eng_state *s, int dst, int src, int n)
{
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    /* kc, vc: [n_seqs, L, ctx, nkv*hd]; one strided copy per cache moves [0, n) of every layer,
     * on the stream, so it lands before the next step reads it. */
    size_t row = (size_t)m->sh.n_kv_heads * (size_t)m->cfg.head_dim * sizeof(float);
    size_t pitch = (size_t)s->ctx_len * row, seq = (size_t)m->cfg.n_layers * pitch;
    char *k = (char *)cs->kc, *v = (char *)cs->vc;
    K(cudaMemcpy2DAsync(k + (size_t)dst * seq, pitch, k + (size_t)src * seq, pitch, (size_t)n * row,
                        (size_t)m->cfg.n_layers, cudaMemcpyDeviceToDevice, cs->st));
    K(cudaMemcpy2DAsync(v + (size_t)dst * seq, pitch, v + (size_t)src * seq, pitch, (size_t)n * row,
                        (size_t)m->cfg.n_layers, cudaMemcpyDeviceToDevice, cs->st));
    return ENG_OK;
}

static const char *cuda_last_error(const eng_state *s)
{
    const cuda_state *cs = s->bs;
    return cs ? cs->err : "";
}

const eng_backend eng_backend_cuda = {
    .name = "cuda",
    .available = cuda_available,
    .model_init = cuda_model_init,
    .upload_globals = cuda_upload_globals,
    .upload_layer = cuda_upload_layer,
    .model_free = cuda_model_free,
    .describe = cuda_describe,
    .state_create = cuda_state_create,
    .state_free = cuda_state_free,
    .set_inputs = cuda_set_inputs,
    .embed = cuda_embed,
    .layer = cuda_layer,
    .logits = cuda_logits,
    .get_logits = cuda_get_logits,
    .sample = cuda_sample,
    .get_token = cuda_get_token,
    .sample_batch = cuda_sample_batch,
    .get_batch = cuda_get_batch,
    .get_act = cuda_get_act,
    .put_act = cuda_put_act,
    .sync = cuda_sync,
    .capture_begin = cuda_capture_begin,
    .capture_end = cuda_capture_end,
    .replay = cuda_replay,
    .wait_for = cuda_wait_for,
    .ahead_inputs = cuda_ahead_inputs,
    .ahead_fetch = cuda_ahead_fetch,
    .ahead_wait = cuda_ahead_wait,
    .copy_seq = cuda_copy_seq,
    .last_error = cuda_last_error,
    .link_model = cuda_link_model,
    .link_create = cuda_link_create,
    .cross = cuda_cross,
    .link_free = cuda_link_free,
    .device_count = cuda_device_count,
    .device_free = cuda_device_free,
};
