/* Opens a model: runs the right loader, picks this rank's shard and builds its weights.
 * f32 tensors whose shard is one contiguous block stay in the mapping (zero copy); others
 * (f16/bf16, or column slices of the row-parallel o/down projections) are converted to f32
 * once here, so the forward pass only ever reads f32. */
#include "eng_internal.h"

#include "common/half.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void eng_load_params_init(eng_load_params *p)
{
    memset(p, 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->tp_size = 1;
}

static size_t dt_size(eng_dtype dt) { return dt == ENG_DT_F32 ? 4 : 2; }

static eng_status keep(eng_model *m, void *p, size_t bytes, char *err, size_t errlen)
{
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? 2 * m->cap_owned : 64;
        void **o = realloc(m->owned, (size_t)cap * sizeof(void *));
        if (!o) {
            free(p);
            return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the weights");
        }
        m->owned = o;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    m->owned_bytes += bytes;
    return ENG_OK;
}

/* The block rows [r0, r0+nr) x cols [c0, c0+nc) of t as f32, in the mapping when possible. */
static eng_status slice(eng_model *m, const eng_tref *t, int64_t r0, int64_t nr, int64_t c0,
                        int64_t nc, const float **out, char *err, size_t errlen)
{
    const char *base = t->data;
    size_t es = dt_size(t->dt);
    if (t->dt == ENG_DT_F32 && c0 == 0 && nc == t->cols) {
        const char *p = base + (size_t)(r0 * t->cols) * es;
        if (((uintptr_t)p & 3) == 0) {
            *out = (const float *)p;
            m->mapped_bytes += (size_t)(nr * nc) * 4;
            return ENG_OK;
        }
    }
    size_t bytes = (size_t)(nr * nc) * sizeof(float);
    float *dst = eng_alloc_aligned(bytes);
    if (!dst) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory converting %s", t->name);
    for (int64_t r = 0; r < nr; r++) {
        const char *row = base + (size_t)((r0 + r) * t->cols + c0) * es;
        float *d = dst + r * nc;
        if (t->dt == ENG_DT_F32) {
            memcpy(d, row, (size_t)nc * 4);
        } else {
            for (int64_t c = 0; c < nc; c++) {
                uint16_t h;
                memcpy(&h, row + c * 2, 2);
                d[c] = t->dt == ENG_DT_F16 ? rc_f16_to_f32(h) : rc_bf16_to_f32(h);
            }
        }
    }
    *out = dst;
    return keep(m, dst, bytes, err, errlen);
}

static eng_status expect(const eng_tref *t, int64_t rows, int64_t cols, const char *what,
                         char *err, size_t errlen)
{
    if (!t->data)
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "tensor %s missing (%s)",
                        t->name ? t->name : what, what);
    if (t->rows != rows || t->cols != cols)
        return eng_fail(ENG_ERR_FORMAT, err, errlen,
                        "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", t->name,
                        (long long)t->rows, (long long)t->cols, (long long)rows,
                        (long long)cols);
    return ENG_OK;
}

/* Shape check then slice; optional tensors may be absent (out = NULL). */
static eng_status get(eng_model *m, const eng_tref *t, int optional, const char *what,
                      int64_t rows, int64_t cols, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      const float **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!t->data && optional) return ENG_OK;
    eng_status st = expect(t, rows, cols, what, err, errlen);
    if (st != ENG_OK) return st;
    return slice(m, t, r0, nr, c0, nc, out, err, errlen);
}

static eng_status build_layer(eng_model *m, const eng_tref *tr, int l, eng_layer_w *w, char *err,
                              size_t errlen)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *s = &m->sh;
    int64_t D = c->dim, hd = c->head_dim, Q = (int64_t)c->n_heads * hd,
            KVd = (int64_t)c->n_kv_heads * hd, F = c->hidden_dim;
    int64_t q0 = s->head0 * hd, nq = s->n_heads * hd, k0 = s->kv_head0 * hd,
            nk = s->n_kv_heads * hd;
    int qb = c->has_qkv_bias ? 0 : 1, ob = c->has_o_bias ? 0 : 1, fb = c->has_mlp_bias ? 0 : 1;
    char what[64];
    eng_status st = ENG_OK;
#define GET(kind, opt, rows, cols, r0, nr, c0, nc, dst)                                            \
    do {                                                                                           \
        snprintf(what, sizeof(what), "layer %d %s", l, #kind + 6);                                 \
        st = get(m, &tr[kind], opt, what, rows, cols, r0, nr, c0, nc, &w->dst, err, errlen);       \
        if (st != ENG_OK) return st;                                                               \
    } while (0)
    GET(ENG_T_ATT_NORM, 0, 1, D, 0, 1, 0, D, att_norm);
    GET(ENG_T_WQ, 0, Q, D, q0, nq, 0, D, wq);
    GET(ENG_T_WK, 0, KVd, D, k0, nk, 0, D, wk);
    GET(ENG_T_WV, 0, KVd, D, k0, nk, 0, D, wv);
    GET(ENG_T_BQ, qb, 1, Q, 0, 1, q0, nq, bq);
    GET(ENG_T_BK, qb, 1, KVd, 0, 1, k0, nk, bk);
    GET(ENG_T_BV, qb, 1, KVd, 0, 1, k0, nk, bv);
    GET(ENG_T_QNORM, !c->has_qk_norm, 1, hd, 0, 1, 0, hd, q_norm);
    GET(ENG_T_KNORM, !c->has_qk_norm, 1, hd, 0, 1, 0, hd, k_norm);
    GET(ENG_T_WO, 0, D, Q, 0, D, q0, nq, wo);
    GET(ENG_T_BO, ob, 1, D, 0, 1, 0, D, bo);
    GET(ENG_T_FFN_NORM, 0, 1, D, 0, 1, 0, D, ffn_norm);
    GET(ENG_T_W1, 0, F, D, s->ffn0, s->ffn, 0, D, w1);
    GET(ENG_T_W3, 0, F, D, s->ffn0, s->ffn, 0, D, w3);
    GET(ENG_T_B1, fb, 1, F, 0, 1, s->ffn0, s->ffn, b1);
    GET(ENG_T_B3, fb, 1, F, 0, 1, s->ffn0, s->ffn, b3);
    GET(ENG_T_W2, 0, D, F, 0, D, s->ffn0, s->ffn, w2);
    GET(ENG_T_B2, fb, 1, D, 0, 1, 0, D, b2);
#undef GET
    return st;
}

static void logf_(const eng_load_params *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void logf_(const eng_load_params *p, const char *fmt, ...)
{
    if (!p->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    p->log(p->log_ctx, line);
}

eng_status eng_model_open(const char *path, const eng_load_params *params, eng_model **out,
                          char *err, size_t errlen)
{
    eng_status st;
    eng_load_params def;
    *out = NULL;
    if (!path) return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "no model path given");
    if (!params) {
        eng_load_params_init(&def);
        params = &def;
    }
    if (params->struct_size < sizeof(eng_load_params))
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "eng_load_params: bad struct_size");
    struct stat sb;
    if (stat(path, &sb) != 0)
        return eng_fail(ENG_ERR_IO, err, errlen, "%s: no such file or folder", path);
    eng_source src;
    if (S_ISDIR(sb.st_mode))
        st = eng_load_hf(path, &src, err, errlen);
    else
        st = eng_load_llama2(path, &src, err, errlen);
    if (st != ENG_OK) return st;

    eng_model *m = calloc(1, sizeof(*m));
    if (!m) {
        st = eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        goto free_source;
    }
    m->cfg = src.cfg;
    m->k = eng_kernels_pick();
    const eng_config *c = &m->cfg;
    ENG_CHECK(eng_tp_shard(c, params->tp_rank, params->tp_size, &m->sh, err, errlen),
              close_model);
    if (params->tp_size > 1) {
        const eng_shard_info *s = &m->sh;
        logf_(params, "rank %d/%d: query heads %d..%d, KV heads %d..%d%s, FFN columns %d..%d",
              s->tp_rank, s->tp_size, s->head0, s->head0 + s->n_heads - 1, s->kv_head0,
              s->kv_head0 + s->n_kv_heads - 1,
              s->kv_replicated ? " (replicated: shared with neighbour ranks)" : "", s->ffn0,
              s->ffn0 + s->ffn - 1);
        if (c->hidden_dim % params->tp_size)
            logf_(params,
                  "FFN width %d does not divide by tensor parallel size %d: split unevenly, "
                  "%d ranks hold %d columns and %d ranks hold %d",
                  c->hidden_dim, params->tp_size, c->hidden_dim % params->tp_size,
                  c->hidden_dim / params->tp_size + 1,
                  params->tp_size - c->hidden_dim % params->tp_size,
                  c->hidden_dim / params->tp_size);
    }
    for (int i = 0; i < c->head_dim / 2; i++)
        m->rope_inv_freq[i] = powf(c->rope_theta, -(float)(2 * i) / (float)c->head_dim);

    m->layers = calloc((size_t)c->n_layers, sizeof(eng_layer_w));
    if (!m->layers) {
        st = eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        goto close_model;
    }
    int64_t V = c->vocab_size, D = c->dim;
    ENG_CHECK(get(m, &src.embed, 0, "token embedding", V, D, 0, V, 0, D, &m->embed, err, errlen),
              close_model);
    ENG_CHECK(get(m, &src.final_norm, 0, "final norm", 1, D, 0, 1, 0, D, &m->final_norm, err,
                  errlen),
              close_model);
    if (c->tied_embeddings)
        m->cls = m->embed;
    else
        ENG_CHECK(get(m, &src.cls, 0, "lm_head", V, D, 0, V, 0, D, &m->cls, err, errlen),
                  close_model);
    for (int l = 0; l < c->n_layers; l++)
        ENG_CHECK(build_layer(m, src.layers + (size_t)l * ENG_T_LAYER_COUNT, l, &m->layers[l],
                              err, errlen),
                  close_model);
    /* The mappings now belong to the model. */
    m->maps = src.maps;
    m->n_maps = src.n_maps;
    src.maps = NULL;
    src.n_maps = 0;
    eng_source_free(&src);
    *out = m;
    return ENG_OK;
close_model:
    eng_model_close(m);
free_source:
    eng_source_free(&src);
    return st;
}

void eng_model_close(eng_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->layers);
    for (int i = 0; i < m->n_maps; i++) eng_unmap(&m->maps[i]);
    free(m->maps);
    free(m);
}

const eng_config *eng_model_config(const eng_model *m) { return &m->cfg; }
const eng_shard_info *eng_model_shard(const eng_model *m) { return &m->sh; }

void eng_model_memory(const eng_model *m, size_t *owned_bytes, size_t *mapped_bytes)
{
    if (owned_bytes) *owned_bytes = m->owned_bytes;
    if (mapped_bytes) *mapped_bytes = m->mapped_bytes;
}
