/* SPDX-License-Identifier: MIT */
/* The CPU backend's forward pass: embedding, one transformer layer over a batch of tokens
 * (consecutive positions of one sequence, or tokens of several sequences each with its own
 * position and KV slot), final norm + classifier. Every step works row by row or through
 * matmuls whose rows do not depend on each other, so a row's result is the same bits
 * whatever else is in the batch. */
#include "cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps)
{
    float ss = 0.0f;
    for (int i = 0; i < n; i++)
        ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / (float)n + eps);
    for (int i = 0; i < n; i++)
        o[i] = w[i] * (r * x[i]);
}

static void add_bias(float *x, const float *b, int T, int n)
{
    if (!b) return;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++)
            x[(size_t)t * n + i] += b[i];
}

/* One head [hd] rotated by the angles whose cosines and sines are cr, ci [hd/2]. */
static void rotate(const eng_config *c, float *p, const float *cr, const float *ci)
{
    int half = c->head_dim / 2, il = c->rope_style == ENG_ROPE_INTERLEAVED;
    for (int i = 0; i < half; i++) {
        int i0 = il ? 2 * i : i, i1 = il ? 2 * i + 1 : i + half;
        float x0 = p[i0], x1 = p[i1];
        p[i0] = x0 * cr[i] - x1 * ci[i];
        p[i1] = x0 * ci[i] + x1 * cr[i];
    }
}

/* Rotates each head of q [nq, hd] and k [nk, hd] for position pos: the angles' cosines and
 * sines once for both. */
static void rope(const eng_model *m, float *q, int nq, float *k, int nk, int pos)
{
    int half = m->cfg.head_dim / 2;
    float cr[ENG_MAX_HEAD_DIM / 2], ci[ENG_MAX_HEAD_DIM / 2];
    for (int i = 0; i < half; i++) {
        float a = (float)pos * m->rope_inv_freq[i];
        cr[i] = cosf(a);
        ci[i] = sinf(a);
    }
    for (int h = 0; h < nq; h++)
        rotate(&m->cfg, q + (size_t)h * m->cfg.head_dim, cr, ci);
    for (int h = 0; h < nk; h++)
        rotate(&m->cfg, k + (size_t)h * m->cfg.head_dim, cr, ci);
}

/* Up to 3 independent matmuls (q/k/v, gate/up) as one pool job, i.e. one barrier: every
 * thread takes the same share of each one's output rows, cut at multiples of 4 so each
 * element is computed exactly as by one thread. Small jobs stay on the caller. */
#define MM_MAX 3
#define MM_MIN_PAR_WORK 16384 /* multiply-adds below which a wake-up costs more than it saves */
/* A single row's product is memory-bound: a split gains less, so it needs more work. */
#define MM_MIN_PAR_WORK_ROW 262144

typedef struct mm_op {
    float *out;     /* [T, n] */
    const float *x; /* [T, d] */
    cpu_mat w;      /* [n, d] */
    int T, n, d;
} mm_op;

typedef struct mm_job {
    const eng_kernels *K;
    int count;
    mm_op op[MM_MAX];
    /* With two ops of the same shape (gate, up): each thread then applies their biases (or
     * NULL) and SwiGLU to its own columns, op[0].out = silu(gate) * up, with no second
     * hand-off and not on the caller alone. */
    int swiglu;
    const float *b0, *b1; /* [n] */
} mm_job;

/* Columns [i0, i1) of every row: out0 = silu(out0 + b0) * (out1 + b1). */
static void swiglu_cols(const mm_job *j, int i0, int i1)
{
    const mm_op *g = &j->op[0], *u = &j->op[1];
    for (int t = 0; t < g->T; t++) {
        float *gr = g->out + (size_t)t * g->n, *ur = u->out + (size_t)t * u->n;
        for (int i = i0; i < i1; i++) {
            float a = j->b0 ? gr[i] + j->b0[i] : gr[i], b = j->b1 ? ur[i] + j->b1[i] : ur[i];
            gr[i] = a / (1.0f + expf(-a)) * b;
        }
    }
}

static void mm_part(void *ctx, int part, int nparts)
{
    const mm_job *j = ctx;
    int i0 = 0, i1 = 0;
    for (int k = 0; k < j->count; k++) {
        const mm_op *o = &j->op[k];
        long blocks = (o->n + 3) / 4;
        i0 = (int)(blocks * part / nparts) * 4, i1 = (int)(blocks * (part + 1) / nparts) * 4;
        if (i1 > o->n) i1 = o->n;
        if (i0 < i1) j->K->matmul(o->out, o->x, o->w, o->T, o->n, o->d, i0, i1);
    }
    if (j->swiglu && i0 < i1) swiglu_cols(j, i0, i1);
}

/* Whether `work` multiply-adds over `rows` rows are worth the pool's wake-up. */
static int par_worth(const cpu_state *s, int rows, double work)
{
    return s->pool && work >= (rows > 1 ? MM_MIN_PAR_WORK : MM_MIN_PAR_WORK_ROW);
}

static void mm_run(cpu_state *s, mm_job *j)
{
    double work = 0;
    for (int k = 0; k < j->count; k++)
        work += (double)j->op[k].T * j->op[k].n * j->op[k].d;
    if (!par_worth(s, j->op[0].T, work))
        mm_part(j, 0, 1);
    else
        eng_pool_run(s->pool, mm_part, j);
}

static void matmul1(const eng_kernels *K, cpu_state *s, float *out, const float *x, cpu_mat w,
                    int T, int n, int d)
{
    mm_job j = {.K = K, .count = 1, .op = {{out, x, w, T, n, d}}};
    mm_run(s, &j);
}

static eng_status reduce(const eng_coll *coll, float *buf, size_t n)
{
    if (!coll || coll->size <= 1 || !coll->allreduce) return ENG_OK;
    return coll->allreduce(coll->ctx, buf, n, ENG_ELEM_F32, ENG_MEM_HOST, NULL);
}

/* Offset of layer l of KV slot seq in a cache [n_seqs, L, ctx, kvdim]. */
static size_t cache_at(const eng_model *m, const eng_state *es, int seq, int l, size_t kvdim)
{
    return ((size_t)seq * (size_t)m->cfg.n_layers + (size_t)l) * (size_t)es->ctx_len * kvdim;
}

/* First cached position token t attends to (a sliding window drops the older ones). */
static int att_start(const eng_config *c, int pos)
{
    return c->sliding_window > 0 && pos - c->sliding_window + 1 > 0 ? pos - c->sliding_window + 1
                                                                    : 0;
}

/* Causal attention of head h of token t (position pos of KV slot seq) against the cache of
 * layer l; att [ctx] is the calling thread's score row. */
static void attend(const eng_model *m, const eng_state *es, const cpu_state *s, float *att, int l,
                   int t, int h)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *sh = &m->sh;
    const eng_kernels *K = ((const cpu_weights *)m->bw)->k;
    int hd = c->head_dim, nq = sh->n_heads, nkv = sh->n_kv_heads, group = nq / nkv;
    int pos = eng_tok_pos(es, t), seq = eng_tok_seq(es, t), start = att_start(c, pos);
    size_t kvdim = (size_t)nkv * hd, off = (size_t)(h / group) * hd;
    const float *kc = s->key_cache + cache_at(m, es, seq, l, kvdim) + off;
    const float *vc = s->value_cache + cache_at(m, es, seq, l, kvdim) + off;
    const float *q = s->q + ((size_t)t * nq + h) * hd;
    int np = pos - start + 1;
    K->scores(att, q, kc + (size_t)start * kvdim, kvdim, np, hd, 1.0f / sqrtf((float)hd));
    float mx = -INFINITY;
    for (int p = 0; p < np; p++)
        if (att[p] > mx) mx = att[p];
    float sum = 0.0f;
    for (int p = 0; p < np; p++) {
        att[p] = expf(att[p] - mx);
        sum += att[p];
    }
    K->values(s->att_out + ((size_t)t * nq + h) * hd, att, 1.0f / sum, vc + (size_t)start * kvdim,
              kvdim, np, hd);
}

/* A pool job over the batch of layer l: the RoPE and attention parts below. */
typedef struct layer_job {
    const eng_model *m;
    const eng_state *es;
    const cpu_state *s;
    int l;
} layer_job;

/* q/k norms, RoPE and the KV-cache write of each token of the batch, the tokens split into
 * contiguous runs, one per thread (a 1024-token prompt chunk's rotations are not the caller's
 * alone). */
static void rope_part(void *ctx, int part, int nparts)
{
    const layer_job *j = ctx;
    const eng_model *m = j->m;
    const eng_config *c = &m->cfg;
    const eng_shard_info *sh = &m->sh;
    const eng_layer_w *w = &((const cpu_weights *)m->bw)->layers[j->l];
    const cpu_state *s = j->s;
    int n = j->es->n, hd = c->head_dim, nq = sh->n_heads * hd, nkv = sh->n_kv_heads * hd;
    for (int t = n * part / nparts; t < n * (part + 1) / nparts; t++) {
        int pos = eng_tok_pos(j->es, t), seq = eng_tok_seq(j->es, t);
        float *kc = s->key_cache + cache_at(m, j->es, seq, j->l, (size_t)nkv);
        float *vc = s->value_cache + cache_at(m, j->es, seq, j->l, (size_t)nkv);
        float *q = s->q + (size_t)t * nq, *k = s->k + (size_t)t * nkv;
        if (w->q_norm) {
            for (int h = 0; h < sh->n_heads; h++)
                rmsnorm(q + (size_t)h * hd, q + (size_t)h * hd, w->q_norm, hd, c->norm_eps);
            for (int h = 0; h < sh->n_kv_heads; h++)
                rmsnorm(k + (size_t)h * hd, k + (size_t)h * hd, w->k_norm, hd, c->norm_eps);
        }
        rope(m, q, sh->n_heads, k, sh->n_kv_heads, pos);
        memcpy(kc + (size_t)pos * nkv, k, (size_t)nkv * sizeof(float));
        memcpy(vc + (size_t)pos * nkv, s->v + (size_t)t * nkv, (size_t)nkv * sizeof(float));
    }
}

/* The (token, head) pairs of the batch, split into contiguous runs, one per thread; each
 * pair is computed the same whichever thread takes it. */
static void att_part(void *ctx, int part, int nparts)
{
    const layer_job *j = ctx;
    int nh = j->m->sh.n_heads;
    long items = (long)j->es->n * nh;
    float *att = j->s->att + (size_t)part * (size_t)j->es->ctx_len;
    for (long i = items * part / nparts; i < items * (part + 1) / nparts; i++)
        attend(j->m, j->es, j->s, att, j->l, (int)(i / nh), (int)(i % nh));
}

eng_status cpu_embed(const eng_model *m, eng_state *es)
{
    const cpu_weights *w = m->bw;
    cpu_state *s = es->bs;
    int D = m->cfg.dim;
    for (int t = 0; t < es->n; t++) {
        size_t row = (size_t)es->tokens[t] * D;
        for (int i = 0; i < D; i++)
            s->x[(size_t)t * D + i] = cpu_elem(w->embed.p, w->embed.dt, row + i);
    }
    return ENG_OK;
}

eng_status cpu_layer(const eng_model *m, eng_state *es, int l, const eng_coll *coll)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *sh = &m->sh;
    const eng_kernels *K = ((const cpu_weights *)m->bw)->k;
    const eng_layer_w *w = &((const cpu_weights *)m->bw)->layers[l];
    cpu_state *s = es->bs;
    int n = es->n;
    int D = c->dim, hd = c->head_dim, F = sh->ffn;
    int nq = sh->n_heads * hd, nkv = sh->n_kv_heads * hd;
    eng_status st;

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
    layer_job lj = {m, es, s, l};
    if (par_worth(s, n, (double)n * (nq + nkv) * 8))
        eng_pool_run(s->pool, rope_part, &lj);
    else
        rope_part(&lj, 0, 1);
    /* All of the batch's keys are cached first: each token then attends to its own slot up to
     * its own position (a prefill chunk's later tokens see the earlier ones). */
    double att_work = 0;
    for (int t = 0; t < n; t++) {
        int pos = eng_tok_pos(es, t);
        att_work += 2.0 * (pos - att_start(c, pos) + 1) * sh->n_heads * hd;
    }
    if (par_worth(s, n, att_work))
        eng_pool_run(s->pool, att_part, &lj);
    else
        att_part(&lj, 0, 1);
    /* Row-parallel o_proj: partial sums, all-reduced, then the bias once. */
    matmul1(K, s, s->xb, s->att_out, w->wo, n, D, nq);
    if ((st = reduce(coll, s->xb, (size_t)n * D)) != ENG_OK) return st;
    add_bias(s->xb, w->bo, n, D);
    for (size_t i = 0; i < (size_t)n * D; i++)
        s->x[i] += s->xb[i];

    for (int t = 0; t < n; t++)
        rmsnorm(s->xb + (size_t)t * D, s->x + (size_t)t * D, w->ffn_norm, D, c->norm_eps);
    mm_job gate_up = {.K = K,
                      .count = 2,
                      .op = {{s->hb, s->xb, w->w1, n, F, D}, {s->hb2, s->xb, w->w3, n, F, D}},
                      .swiglu = 1,
                      .b0 = w->b1,
                      .b1 = w->b3};
    mm_run(s, &gate_up);
    matmul1(K, s, s->xb, s->hb, w->w2, n, D, F);
    if ((st = reduce(coll, s->xb, (size_t)n * D)) != ENG_OK) return st;
    add_bias(s->xb, w->b2, n, D);
    for (size_t i = 0; i < (size_t)n * D; i++)
        s->x[i] += s->xb[i];
    return ENG_OK;
}

eng_status cpu_logits(const eng_model *m, eng_state *es)
{
    const cpu_weights *w = m->bw;
    cpu_state *s = es->bs;
    int n = es->n, D = m->cfg.dim;
    if (es->out_row) { /* a batch: the flagged rows, packed in order (row j <= token t) */
        for (int j = 0; j < es->n_out; j++)
            rmsnorm(s->xb + (size_t)j * D, s->x + (size_t)es->out_row[j] * D, w->final_norm, D,
                    m->cfg.norm_eps);
        matmul1(w->k, s, s->logits, s->xb, w->cls, es->n_out, m->cfg.vocab_size, D);
        s->logit_rows = es->n_out;
        return ENG_OK;
    }
    int first = es->all_logits ? 0 : n - 1;
    for (int t = first; t < n; t++)
        rmsnorm(s->xb + (size_t)t * D, s->x + (size_t)t * D, w->final_norm, D, m->cfg.norm_eps);
    matmul1(w->k, s, s->logits, s->xb + (size_t)first * D, w->cls, n - first, m->cfg.vocab_size, D);
    s->logit_rows = n - first;
    return ENG_OK;
}
