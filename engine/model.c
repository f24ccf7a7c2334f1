/* Opens a model: runs the right loader, picks this rank's shard and hands its tensors to the
 * backend (which converts or uploads them). */
#include "backend.h"

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

eng_status eng_tref_expect(const eng_tref *t, int64_t rows, int64_t cols, const char *what,
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
    /* Vectors (norms, biases) are small enough to check whole: a NaN there poisons every
     * activation and would only show as NaN logits much later. */
    for (int64_t i = 0; rows == 1 && i < cols; i++) {
        float v;
        if (t->dt == ENG_DT_F32) {
            memcpy(&v, (const char *)t->data + i * 4, 4);
        } else {
            uint16_t h;
            memcpy(&h, (const char *)t->data + i * 2, 2);
            v = t->dt == ENG_DT_F16 ? eng_f16_to_f32(h) : eng_bf16_to_f32(h);
        }
        if (!isfinite(v))
            return eng_fail(ENG_ERR_FORMAT, err, errlen,
                            "tensor %s holds %g at index %lld: weights must be finite", t->name,
                            (double)v, (long long)i);
    }
    return ENG_OK;
}

void eng_tref_copy(const eng_tref *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc, void *dst)
{
    size_t es = eng_dt_size(t->dt);
    const char *base = t->data;
    char *d = dst;
    if (c0 == 0 && nc == t->cols) {
        memcpy(d, base + (size_t)(r0 * t->cols) * es, (size_t)(nr * nc) * es);
        return;
    }
    for (int64_t r = 0; r < nr; r++)
        memcpy(d + (size_t)(r * nc) * es, base + (size_t)((r0 + r) * t->cols + c0) * es,
               (size_t)nc * es);
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

    /* The backend takes the shard: converted in place on the CPU, uploaded to a GPU. */
    if (!(m->b = eng_backend_pick(params, err, errlen))) {
        st = ENG_ERR_UNSUPPORTED;
        goto close_model;
    }
    ENG_CHECK(m->b->model_init(m, params, err, errlen), close_model);
    ENG_CHECK(m->b->upload_globals(m, &src, err, errlen), close_model);
    for (int l = 0; l < c->n_layers; l++)
        ENG_CHECK(m->b->upload_layer(m, l, src.layers + (size_t)l * ENG_T_LAYER_COUNT, err,
                                     errlen),
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
    if (m->b) m->b->model_free(m);
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

const char *eng_model_backend(const eng_model *m) { return m->b->name; }

void eng_model_describe(const eng_model *m, char *buf, size_t len) { m->b->describe(m, buf, len); }
