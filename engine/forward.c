/* The transformer forward pass of one shard over a batch of consecutive positions. */
#include "eng_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void eng_state_params_init(eng_state_params *p)
{
    memset(p, 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->max_batch = 64;
    p->n_threads = ENG_DEFAULT_THREADS;
    p->spin_us = ENG_DEFAULT_SPIN_US;
}

eng_status eng_state_create(const eng_model *m, const eng_state_params *p, eng_state **out,
                            char *err, size_t errlen)
{
    eng_state_params def;
    *out = NULL;
    if (!p) {
        eng_state_params_init(&def);
        p = &def;
    }
    if (p->struct_size < sizeof(eng_state_params) || p->max_batch <= 0 || p->ctx_len < 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "eng_state_params: bad struct_size, max_batch or ctx_len");
    if (p->n_threads < 1 || p->n_threads > ENG_MAX_THREADS || p->spin_us < 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "eng_state_params: n_threads %d not in 1..%d or spin_us %d < 0",
                        p->n_threads, ENG_MAX_THREADS, p->spin_us);
    const eng_config *c = &m->cfg;
    const eng_shard_info *s = &m->sh;
    eng_state *st = calloc(1, sizeof(*st));
    if (!st) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the run state");
    int ctx = p->ctx_len ? p->ctx_len : c->seq_len;
    if (ctx > c->seq_len) ctx = c->seq_len;
    st->ctx_len = ctx;
    st->max_batch = p->max_batch < ctx ? p->max_batch : ctx;
    st->all_logits = p->all_logits;
    size_t B = (size_t)st->max_batch, D = (size_t)c->dim, hd = (size_t)c->head_dim;
    size_t nq = (size_t)s->n_heads * hd, nkv = (size_t)s->n_kv_heads * hd;
    size_t F = (size_t)s->ffn;
    st->x = eng_alloc_aligned(B * D * 4);
    st->xb = eng_alloc_aligned(B * D * 4);
    st->q = eng_alloc_aligned(B * nq * 4);
    st->k = eng_alloc_aligned(B * nkv * 4);
    st->v = eng_alloc_aligned(B * nkv * 4);
    st->att_out = eng_alloc_aligned(B * nq * 4);
    st->att = eng_alloc_aligned((size_t)s->n_heads * (size_t)ctx * 4);
    st->hb = eng_alloc_aligned(B * F * 4);
    st->hb2 = eng_alloc_aligned(B * F * 4);
    size_t cache = (size_t)c->n_layers * (size_t)ctx * nkv * 4;
    st->key_cache = eng_alloc_aligned(cache);
    st->value_cache = eng_alloc_aligned(cache);
    st->logits = eng_alloc_aligned((p->all_logits ? B : 1) * (size_t)c->vocab_size * 4);
    if (!st->x || !st->xb || !st->q || !st->k || !st->v || !st->att_out || !st->att || !st->hb ||
        !st->hb2 || !st->key_cache || !st->value_cache || !st->logits) {
        eng_state_free(st);
        return eng_fail(ENG_ERR_NOMEM, err, errlen,
                        "out of memory for the run state (KV cache %zu MiB for %d positions)",
                        2 * cache >> 20, ctx);
    }
    if (p->n_threads > 1) {
        eng_status ps = eng_pool_create(p->n_threads, p->spin_us, &st->pool, err, errlen);
        if (ps != ENG_OK) {
            eng_state_free(st);
            return ps;
        }
    }
    *out = st;
    return ENG_OK;
}

void eng_state_free(eng_state *s)
{
    if (!s) return;
    eng_pool_free(s->pool);
    free(s->x);
    free(s->xb);
    free(s->q);
    free(s->k);
    free(s->v);
    free(s->att_out);
    free(s->att);
    free(s->hb);
    free(s->hb2);
    free(s->key_cache);
    free(s->value_cache);
    free(s->logits);
    free(s);
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++) o[i] = w[i] * (r * x[i]);
}

static void add_bias(float *x, const float *b, int T, int n)
{
    if (!b) return;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) x[(size_t)t * n + i] += b[i];
}

/* Rotates each head of v [n_heads, hd] for position pos. */
static void rope(const eng_model *m, float *v, int n_heads, int pos)
{
    int hd = m->cfg.head_dim, half = hd / 2;
    for (int i = 0; i < half; i++) {
        float a = (float)pos * m->rope_inv_freq[i];
        float cr = cosf(a), ci = sinf(a);
        for (int h = 0; h < n_heads; h++) {
            float *p = v + (size_t)h * hd;
            int i0 = m->cfg.rope_style == ENG_ROPE_INTERLEAVED ? 2 * i : i;
            int i1 = m->cfg.rope_style == ENG_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
            float x0 = p[i0], x1 = p[i1];
            p[i0] = x0 * cr - x1 * ci;
            p[i1] = x0 * ci + x1 * cr;
        }
    }
}

/* Up to 3 independent matmuls (q/k/v, gate/up) as one pool job, i.e. one barrier: every
 * thread takes the same share of each one's output rows, cut at multiples of 4 so each
 * element is computed exactly as by one thread. Small jobs stay on the caller. */
#define MM_MAX 3
#define MM_MIN_PAR_WORK 16384 /* multiply-adds below which a wake-up costs more than it saves */

typedef struct mm_op {
    float *out;          /* [T, n] */
    const float *x, *w;  /* [T, d], [n, d] */
    int T, n, d;
} mm_op;

typedef struct mm_job {
    const eng_kernels *K;
    int count;
    mm_op op[MM_MAX];
} mm_job;

static void mm_part(void *ctx, int part, int nparts)
{
    const mm_job *j = ctx;
    for (int k = 0; k < j->count; k++) {
        const mm_op *o = &j->op[k];
        long blocks = (o->n + 3) / 4;
        int i0 = (int)(blocks * part / nparts) * 4, i1 = (int)(blocks * (part + 1) / nparts) * 4;
        if (i1 > o->n) i1 = o->n;
        if (i0 < i1) j->K->matmul(o->out, o->x, o->w, o->T, o->n, o->d, i0, i1);
    }
}

static void mm_run(eng_state *s, mm_job *j)
{
    double work = 0;
    for (int k = 0; k < j->count; k++) work += (double)j->op[k].T * j->op[k].n * j->op[k].d;
    if (!s->pool || work < MM_MIN_PAR_WORK)
        mm_part(j, 0, 1);
    else
        eng_pool_run(s->pool, mm_part, j);
}

static void matmul1(const eng_model *m, eng_state *s, float *out, const float *x, const float *w,
                    int T, int n, int d)
{
    mm_job j = {.K = m->k, .count = 1, .op = {{out, x, w, T, n, d}}};
    mm_run(s, &j);
}

static eng_status reduce(const eng_reducer *red, float *buf, size_t n)
{
    if (!red || !red->allreduce) return ENG_OK;
    return red->allreduce(red->ctx, buf, n);
}

/* Causal attention of token t (position pos) against the cache of layer l. */
static void attend(const eng_model *m, eng_state *s, int l, int t, int pos)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *sh = &m->sh;
    int hd = c->head_dim, nq = sh->n_heads, nkv = sh->n_kv_heads, group = nq / nkv;
    size_t kvdim = (size_t)nkv * hd;
    const float *kc = s->key_cache + (size_t)l * s->ctx_len * kvdim;
    const float *vc = s->value_cache + (size_t)l * s->ctx_len * kvdim;
    int start = 0;
    if (c->sliding_window > 0 && pos - c->sliding_window + 1 > 0) start = pos - c->sliding_window + 1;
    float scale = 1.0f / sqrtf((float)hd);
    for (int h = 0; h < nq; h++) {
        const float *q = s->q + ((size_t)t * nq + h) * hd;
        float *att = s->att + (size_t)h * s->ctx_len;
        int kvh = h / group;
        float mx = -INFINITY;
        for (int p = start; p <= pos; p++) {
            float a = m->k->dot(q, kc + (size_t)p * kvdim + (size_t)kvh * hd, hd) * scale;
            att[p] = a;
            if (a > mx) mx = a;
        }
        float sum = 0.0f;
        for (int p = start; p <= pos; p++) {
            att[p] = expf(att[p] - mx);
            sum += att[p];
        }
        float *o = s->att_out + ((size_t)t * nq + h) * hd;
        memset(o, 0, (size_t)hd * sizeof(float));
        float inv = 1.0f / sum;
        for (int p = start; p <= pos; p++)
            m->k->axpy(o, att[p] * inv, vc + (size_t)p * kvdim + (size_t)kvh * hd, hd);
    }
}

eng_status eng_forward(const eng_model *m, eng_state *s, const int *tokens, int n, int pos,
                       int want_logits, const eng_reducer *red, const float **logits)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *sh = &m->sh;
    const eng_kernels *K = m->k;
    if (logits) *logits = NULL;
    if (n <= 0 || n > s->max_batch || pos < 0 || pos + n > s->ctx_len) return ENG_ERR_RANGE;
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size) return ENG_ERR_RANGE;
    int D = c->dim, hd = c->head_dim, F = sh->ffn;
    int nq = sh->n_heads * hd, nkv = sh->n_kv_heads * hd;
    eng_status st;

    for (int t = 0; t < n; t++)
        memcpy(s->x + (size_t)t * D, m->embed + (size_t)tokens[t] * D, (size_t)D * sizeof(float));

    for (int l = 0; l < c->n_layers; l++) {
        const eng_layer_w *w = &m->layers[l];
        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * D, s->x + (size_t)t * D, w->att_norm, D, c->norm_eps);
        mm_job qkv = {.K = K,
                      .count = 3,
                      .op = {{s->q, s->xb, w->wq, n, nq, D},
                             {s->k, s->xb, w->wk, n, nkv, D},
                             {s->v, s->xb, w->wv, n, nkv, D}}};
        mm_run(s, &qkv);
        add_bias(s->q, w->bq, n, nq);
        add_bias(s->k, w->bk, n, nkv);
        add_bias(s->v, w->bv, n, nkv);
        float *kc = s->key_cache + (size_t)l * s->ctx_len * nkv;
        float *vc = s->value_cache + (size_t)l * s->ctx_len * nkv;
        for (int t = 0; t < n; t++) {
            float *q = s->q + (size_t)t * nq, *k = s->k + (size_t)t * nkv;
            if (w->q_norm) {
                for (int h = 0; h < sh->n_heads; h++)
                    rmsnorm(q + (size_t)h * hd, q + (size_t)h * hd, w->q_norm, hd, c->norm_eps);
                for (int h = 0; h < sh->n_kv_heads; h++)
                    rmsnorm(k + (size_t)h * hd, k + (size_t)h * hd, w->k_norm, hd, c->norm_eps);
            }
            rope(m, q, sh->n_heads, pos + t);
            rope(m, k, sh->n_kv_heads, pos + t);
            memcpy(kc + (size_t)(pos + t) * nkv, k, (size_t)nkv * sizeof(float));
            memcpy(vc + (size_t)(pos + t) * nkv, s->v + (size_t)t * nkv,
                   (size_t)nkv * sizeof(float));
        }
        /* All of the batch's keys are cached first: token t then attends to 0..pos+t. */
        for (int t = 0; t < n; t++) attend(m, s, l, t, pos + t);
        /* Row-parallel o_proj: partial sums, all-reduced, then the bias once. */
        matmul1(m, s, s->xb, s->att_out, w->wo, n, D, nq);
        if ((st = reduce(red, s->xb, (size_t)n * D)) != ENG_OK) return st;
        add_bias(s->xb, w->bo, n, D);
        for (size_t i = 0; i < (size_t)n * D; i++) s->x[i] += s->xb[i];

        for (int t = 0; t < n; t++)
            rmsnorm(s->xb + (size_t)t * D, s->x + (size_t)t * D, w->ffn_norm, D, c->norm_eps);
        mm_job gate_up = {.K = K,
                          .count = 2,
                          .op = {{s->hb, s->xb, w->w1, n, F, D}, {s->hb2, s->xb, w->w3, n, F, D}}};
        mm_run(s, &gate_up);
        add_bias(s->hb, w->b1, n, F);
        add_bias(s->hb2, w->b3, n, F);
        for (size_t i = 0; i < (size_t)n * F; i++) {
            float g = s->hb[i];
            s->hb[i] = g / (1.0f + expf(-g)) * s->hb2[i];
        }
        matmul1(m, s, s->xb, s->hb, w->w2, n, D, F);
        if ((st = reduce(red, s->xb, (size_t)n * D)) != ENG_OK) return st;
        add_bias(s->xb, w->b2, n, D);
        for (size_t i = 0; i < (size_t)n * D; i++) s->x[i] += s->xb[i];
    }
    if (!want_logits) return ENG_OK;
    int first = s->all_logits ? 0 : n - 1;
    for (int t = first; t < n; t++)
        rmsnorm(s->xb + (size_t)t * D, s->x + (size_t)t * D, m->final_norm, D, c->norm_eps);
    matmul1(m, s, s->logits, s->xb + (size_t)first * D, m->cls, n - first, c->vocab_size, D);
    if (logits) *logits = s->logits;
    return ENG_OK;
}
