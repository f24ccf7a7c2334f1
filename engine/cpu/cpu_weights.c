/* SPDX-License-Identifier: MIT */
/* The CPU backend's weights: this rank's shard. Matrices keep their stored type (f32, f16 or
 * bf16; the kernels widen 16-bit weights as they read them) and stay in the mapping when the
 * shard is one contiguous block (zero copy); column slices of the row-parallel o/down
 * projections are copied once. Vectors (norms, biases) are converted to f32. */
#include "cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static eng_status keep(eng_model *m, void *p, size_t bytes, char *err, size_t errlen)
{
    cpu_weights *w = m->bw;
    if (w->n_owned == w->cap_owned) {
        int cap = w->cap_owned ? 2 * w->cap_owned : 64;
        void **o = realloc(w->owned, (size_t)cap * sizeof(void *));
        if (!o) {
            free(p);
            return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the weights");
        }
        w->owned = o;
        w->cap_owned = cap;
    }
    w->owned[w->n_owned++] = p;
    m->owned_bytes += bytes;
    return ENG_OK;
}

/* The block rows [r0, r0+nr) x cols [c0, c0+nc) of t as f32, in the mapping when possible. */
static eng_status slice(eng_model *m, const eng_tref *t, int64_t r0, int64_t nr, int64_t c0,
                        int64_t nc, const float **out, char *err, size_t errlen)
{
    const char *base = t->data;
    size_t es = eng_dt_size(t->dt);
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
                d[c] = t->dt == ENG_DT_F16 ? eng_f16_to_f32(h) : eng_bf16_to_f32(h);
            }
        }
    }
    *out = dst;
    return keep(m, dst, bytes, err, errlen);
}

/* The block rows [r0, r0+nr) x all or cols [c0, c0+nc) of matrix t in its stored type, in the
 * mapping when the block is contiguous and aligned to its element. */
static eng_status mslice(eng_model *m, const eng_tref *t, int64_t r0, int64_t nr, int64_t c0,
                         int64_t nc, cpu_mat *out, char *err, size_t errlen)
{
    size_t es = eng_dt_size(t->dt);
    const char *base = t->data;
    out->dt = t->dt;
    if (c0 == 0 && nc == t->cols) {
        const char *p = base + (size_t)(r0 * t->cols) * es;
        if (((uintptr_t)p & (es - 1)) == 0) {
            out->p = p;
            m->mapped_bytes += (size_t)(nr * nc) * es;
            return ENG_OK;
        }
    }
    size_t bytes = (size_t)(nr * nc) * es;
    void *dst = eng_alloc_aligned(bytes);
    if (!dst) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory copying %s", t->name);
    eng_tref_copy(t, r0, nr, c0, nc, dst);
    out->p = dst;
    return keep(m, dst, bytes, err, errlen);
}

/* Shape check then slice; optional tensors may be absent (out = NULL). */
static eng_status get(eng_model *m, const eng_tref *t, int optional, const char *what, int64_t rows,
                      int64_t cols, int64_t r0, int64_t nr, int64_t c0, int64_t nc,
                      const float **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!t->data && optional) return ENG_OK;
    eng_status st = eng_tref_expect(t, rows, cols, what, err, errlen);
    if (st != ENG_OK) return st;
    return slice(m, t, r0, nr, c0, nc, out, err, errlen);
}

/* get() for a matrix. */
static eng_status getm(eng_model *m, const eng_tref *t, const char *what, int64_t rows,
                       int64_t cols, int64_t r0, int64_t nr, int64_t c0, int64_t nc, cpu_mat *out,
                       char *err, size_t errlen)
{
    *out = (cpu_mat){0};
    eng_status st = eng_tref_expect(t, rows, cols, what, err, errlen);
    if (st != ENG_OK) return st;
    return mslice(m, t, r0, nr, c0, nc, out, err, errlen);
}

eng_status cpu_model_init(eng_model *m, const eng_load_params *p, char *err, size_t errlen)
{
    (void)p;
    cpu_weights *w = calloc(1, sizeof(*w));
    if (w) w->layers = calloc((size_t)m->cfg.n_layers, sizeof(eng_layer_w));
    if (!w || !w->layers) {
        free(w);
        return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    }
    m->bw = w;
    if (!(w->k = eng_kernels_pick(err, errlen))) return ENG_ERR_INVALID_ARG;
    return ENG_OK;
}

eng_status cpu_upload_globals(eng_model *m, const eng_source *src, char *err, size_t errlen)
{
    cpu_weights *w = m->bw;
    const eng_config *c = &m->cfg;
    int64_t V = c->vocab_size, D = c->dim;
    /* A segment of a layer-mapped model holds the embedding (first) or the head (last). */
    int embed = (m->parts & ENG_PART_EMBED) || ((m->parts & ENG_PART_HEAD) && c->tied_embeddings);
    eng_status st = ENG_OK;
    if (embed)
        st = getm(m, &src->embed, "token embedding", V, D, 0, V, 0, D, &w->embed, err, errlen);
    if (st != ENG_OK || !(m->parts & ENG_PART_HEAD)) return st;
    st = get(m, &src->final_norm, 0, "final norm", 1, D, 0, 1, 0, D, &w->final_norm, err, errlen);
    if (st != ENG_OK) return st;
    if (c->tied_embeddings) {
        w->cls = w->embed;
        return ENG_OK;
    }
    return getm(m, &src->cls, "lm_head", V, D, 0, V, 0, D, &w->cls, err, errlen);
}

eng_status cpu_upload_layer(eng_model *m, int l, const eng_tref *tr, char *err, size_t errlen)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *s = &m->sh;
    eng_layer_w *w = &((cpu_weights *)m->bw)->layers[l];
    int64_t D = c->dim, hd = c->head_dim, Q = (int64_t)c->n_heads * hd,
            KVd = (int64_t)c->n_kv_heads * hd, F = c->hidden_dim;
    int64_t q0 = s->head0 * hd, nq = s->n_heads * hd, k0 = s->kv_head0 * hd,
            nk = s->n_kv_heads * hd;
    int qb = c->has_qkv_bias ? 0 : 1, ob = c->has_o_bias ? 0 : 1, fb = c->has_mlp_bias ? 0 : 1;
    char what[64];
    eng_status st = ENG_OK;
#define GET(kind, opt, rows, cols, r0, nr, c0, nc, dst)                                            \
    do {                                                                                           \
        snprintf(what, sizeof(what), "layer %d %s", m->layer0 + l, #kind + 6);                     \
        st = get(m, &tr[kind], opt, what, rows, cols, r0, nr, c0, nc, &w->dst, err, errlen);       \
        if (st != ENG_OK) return st;                                                               \
    } while (0)
#define GETM(kind, rows, cols, r0, nr, c0, nc, dst)                                                \
    do {                                                                                           \
        snprintf(what, sizeof(what), "layer %d %s", m->layer0 + l, #kind + 6);                     \
        st = getm(m, &tr[kind], what, rows, cols, r0, nr, c0, nc, &w->dst, err, errlen);           \
        if (st != ENG_OK) return st;                                                               \
    } while (0)
    GET(ENG_T_ATT_NORM, 0, 1, D, 0, 1, 0, D, att_norm);
    GETM(ENG_T_WQ, Q, D, q0, nq, 0, D, wq);
    GETM(ENG_T_WK, KVd, D, k0, nk, 0, D, wk);
    GETM(ENG_T_WV, KVd, D, k0, nk, 0, D, wv);
    GET(ENG_T_BQ, qb, 1, Q, 0, 1, q0, nq, bq);
    GET(ENG_T_BK, qb, 1, KVd, 0, 1, k0, nk, bk);
    GET(ENG_T_BV, qb, 1, KVd, 0, 1, k0, nk, bv);
    GET(ENG_T_QNORM, !c->has_qk_norm, 1, hd, 0, 1, 0, hd, q_norm);
    GET(ENG_T_KNORM, !c->has_qk_norm, 1, hd, 0, 1, 0, hd, k_norm);
    GETM(ENG_T_WO, D, Q, 0, D, q0, nq, wo);
    GET(ENG_T_BO, ob, 1, D, 0, 1, 0, D, bo);
    GET(ENG_T_FFN_NORM, 0, 1, D, 0, 1, 0, D, ffn_norm);
    GETM(ENG_T_W1, F, D, s->ffn0, s->ffn, 0, D, w1);
    GETM(ENG_T_W3, F, D, s->ffn0, s->ffn, 0, D, w3);
    GET(ENG_T_B1, fb, 1, F, 0, 1, s->ffn0, s->ffn, b1);
    GET(ENG_T_B3, fb, 1, F, 0, 1, s->ffn0, s->ffn, b3);
    GETM(ENG_T_W2, D, F, 0, D, s->ffn0, s->ffn, w2);
    GET(ENG_T_B2, fb, 1, D, 0, 1, 0, D, b2);
#undef GET
#undef GETM
    return st;
}

void cpu_model_free(eng_model *m)
{
    cpu_weights *w = m->bw;
    if (!w) return;
    for (int i = 0; i < w->n_owned; i++)
        free(w->owned[i]);
    free(w->owned);
    free(w->layers);
    free(w);
    m->bw = NULL;
}
