/* SPDX-License-Identifier: MIT */
/* Opens a model: runs the right loader, picks this rank's shard and hands its tensors to the
 * backend (which converts or uploads them). */
#include "backend.h"
#include "devmap.h"

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
                        (long long)t->rows, (long long)t->cols, (long long)rows, (long long)cols);
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

/* Weights of one segment (or of the whole model): model_init, the globals it holds, then its
 * layers [m->layer0, m->layer0 + m->cfg.n_layers) of src. */
static eng_status load_segment(eng_model *m, const eng_source *src, const eng_load_params *p,
                               char *err, size_t errlen)
{
    eng_source sub = *src;
    sub.cfg.n_layers = m->cfg.n_layers;
    sub.layers = src->layers + (size_t)m->layer0 * ENG_T_LAYER_COUNT;
    eng_status st = m->b->model_init(m, p, err, errlen);
    if (st == ENG_OK) st = m->b->upload_globals(m, &sub, err, errlen);
    for (int l = 0; l < m->cfg.n_layers && st == ENG_OK; l++)
        st = m->b->upload_layer(m, l, sub.layers + (size_t)l * ENG_T_LAYER_COUNT, err, errlen);
    return st;
}

/* The load parameters of a segment on dev (a GPU ordinal or ENG_DEV_CPU). */
static eng_load_params segment_params(const eng_load_params *p, int dev)
{
    eng_load_params sp = *p;
    sp.device = dev == ENG_DEV_CPU ? ENG_DEVICE_CPU : ENG_DEVICE_CUDA;
    sp.gpu = dev == ENG_DEV_CPU ? 0 : dev;
    return sp;
}

static const char *dev_kind(int dev)
{
    return dev == ENG_DEV_CPU ? "the CPU" : "GPU";
}

/* m's segments: seg_layers[i] layers on seg_dev[i] each (mapped), or, unmapped, the model
 * itself on the device params ask for. Then the boundaries between them. */
static eng_status build_segments(eng_model *m, const eng_source *src, const eng_load_params *p,
                                 int mapped, int n_seg, const int *seg_layers, const int *seg_dev,
                                 char *err, size_t errlen)
{
    eng_status st;
    m->seg = calloc((size_t)n_seg, sizeof(*m->seg));
    m->seg_dev = calloc((size_t)n_seg, sizeof(int));
    m->link = calloc((size_t)n_seg, sizeof(*m->link));
    if (!m->seg || !m->seg_dev || !m->link)
        return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    m->n_seg = n_seg;
    if (n_seg == 1) { /* the model is its own segment: the one-backend path, graphs included */
        eng_load_params sp = mapped ? segment_params(p, seg_dev[0]) : *p;
        m->seg[0] = m;
        m->parts = ENG_PART_EMBED | ENG_PART_HEAD;
        if (!(m->b = eng_backend_pick(&sp, err, errlen))) return ENG_ERR_UNSUPPORTED;
        m->seg_dev[0] = m->b == &eng_backend_cpu ? ENG_DEV_CPU : sp.gpu;
        snprintf(m->name, sizeof(m->name), "%s", m->b->name);
        return load_segment(m, src, &sp, err, errlen);
    }
    int l0 = 0;
    for (int i = 0; i < n_seg; i++) {
        eng_model *sm = calloc(1, sizeof(*sm));
        if (!sm) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        m->seg[i] = sm;
        m->seg_dev[i] = seg_dev[i];
        sm->cfg = m->cfg;
        sm->cfg.n_layers = seg_layers[i];
        sm->sh = m->sh;
        memcpy(sm->rope_inv_freq, m->rope_inv_freq, sizeof(sm->rope_inv_freq));
        sm->layer0 = l0;
        sm->parts = (i == 0 ? ENG_PART_EMBED : 0) | (i == n_seg - 1 ? ENG_PART_HEAD : 0);
        eng_load_params sp = segment_params(p, seg_dev[i]);
        if (!(sm->b = eng_backend_pick(&sp, err, errlen))) return ENG_ERR_UNSUPPORTED;
        if ((st = load_segment(sm, src, &sp, err, errlen)) != ENG_OK) return st;
        m->owned_bytes += sm->owned_bytes;
        m->mapped_bytes += sm->mapped_bytes;
        l0 += seg_layers[i];
        size_t off = strlen(m->name);
        if (!strstr(m->name, sm->b->name))
            snprintf(m->name + off, sizeof(m->name) - off, "%s%s", off ? "+" : "", sm->b->name);
    }
    long no_p2p;
    if ((st = eng_knob_int(ENG_KNOB_NO_P2P, 0, 1, &no_p2p, err, errlen)) != ENG_OK) return st;
    static const char *how[] = {[ENG_LINK_HOST] = "copied through host memory",
                                [ENG_LINK_SAME] = "a device copy",
                                [ENG_LINK_PEER] = "a peer copy",
                                [ENG_LINK_STAGED] = "staged through pinned host memory"};
    for (int i = 0; i + 1 < n_seg; i++) {
        const eng_model *a = m->seg[i], *b = m->seg[i + 1];
        char warn[256] = "";
        m->link[i] = ENG_LINK_HOST;
        if (a->b == b->b && a->b->link_model &&
            (st = a->b->link_model(a, b, (int)no_p2p, &m->link[i], warn, sizeof(warn), err,
                                   errlen)) != ENG_OK)
            return st;
        char da[16] = "", db[16] = "";
        if (seg_dev[i] != ENG_DEV_CPU) snprintf(da, sizeof(da), " %d", seg_dev[i]);
        if (seg_dev[i + 1] != ENG_DEV_CPU) snprintf(db, sizeof(db), " %d", seg_dev[i + 1]);
        logf_(p, "layers %d -> %d: %s%s -> %s%s, activations: %s", b->layer0 - 1, b->layer0,
              dev_kind(seg_dev[i]), da, dev_kind(seg_dev[i + 1]), db, how[m->link[i]]);
        if (warn[0]) logf_(p, "warning: %s", warn);
    }
    return ENG_OK;
}

/* Bytes a GPU needs per layer (weights, and the KV cache of up to 4096 positions) for the
 * split by free memory. */
static size_t layer_bytes(const eng_source *src)
{
    const eng_config *c = &src->cfg;
    size_t b = 0;
    for (int t = 0; t < ENG_T_LAYER_COUNT; t++) {
        const eng_tref *r = &src->layers[t];
        if (r->data) b += (size_t)(r->rows * r->cols) * (r->rows == 1 ? 4 : eng_dt_size(r->dt));
    }
    size_t ctx = c->seq_len < 4096 ? (size_t)c->seq_len : 4096;
    return b + 2 * ctx * (size_t)c->n_kv_heads * (size_t)c->head_dim * 4;
}

/* --device-layers or the split by free memory, as runs of layers on one device: the
 * segments (seg_layers, seg_dev: [n_layers] each). Logs the device of every layer. */
static eng_status map_layers(const eng_source *src, const eng_load_params *p, int *n_seg,
                             int *seg_layers, int *seg_dev, char *err, size_t errlen)
{
    const eng_config *c = &src->cfg;
    eng_status st;
    const char *what = p->device_layers ? "--device-layers" : "the layer split by free memory";
    if (p->tp_size > 1)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "%s with tensor parallelism (%d ranks): layer mapping runs the whole "
                        "model in one process; drop %s, or run one process (unset RING_CONFIG "
                        "and MISTRALRS_MN_*; MISTRALRS_NO_NCCL=1 over several GPUs)",
                        what, p->tp_size, p->device_layers ? "--device-layers" : "it");
    const eng_backend *g = eng_backend_gpu();
    int visible = g && g->device_count ? g->device_count() : 0;
    int *dev = calloc((size_t)c->n_layers + 1, sizeof(int));
    if (!dev) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    if (p->device_layers) {
        st = eng_devmap_parse(p->device_layers, visible, c->n_layers, dev, err, errlen);
        size_t n = strlen(err);
        if (st != ENG_OK && !g && n < errlen && strstr(err, "no GPU is visible"))
            snprintf(err + n, errlen - n,
                     " (this build has no CUDA backend: configure --with-cuda)");
    } else {
        size_t free_b[256], reserve = (size_t)512 << 20;
        if (visible > 256) visible = 256;
        reserve += (size_t)(src->embed.rows * src->embed.cols) * eng_dt_size(src->embed.dt);
        if (src->cls.data)
            reserve += (size_t)(src->cls.rows * src->cls.cols) * eng_dt_size(src->cls.dt);
        st = ENG_OK;
        for (int d = 0; d < visible && st == ENG_OK; d++)
            st = g->device_free(d, &free_b[d], err, errlen);
        if (st == ENG_OK)
            st = eng_devmap_auto(free_b, visible, layer_bytes(src), reserve, c->n_layers, dev, err,
                                 errlen);
    }
    if (st == ENG_OK) {
        char line[1024];
        eng_devmap_describe(dev, c->n_layers, line, sizeof(line));
        logf_(p, "layer mapping (%s%s%s): %s", what, p->device_layers ? " " : "",
              p->device_layers ? p->device_layers : "", line);
        *n_seg = 0;
        for (int l = 0; l < c->n_layers; l++) {
            if (l == 0 || dev[l] != dev[l - 1]) {
                seg_dev[*n_seg] = dev[l];
                seg_layers[(*n_seg)++] = 0;
            }
            seg_layers[*n_seg - 1]++;
        }
    }
    free(dev);
    return st;
}

/* n_seg > 0: the test hook's segments; 0: one backend, or the mapping params ask for. */
static eng_status open_model(const char *path, const eng_load_params *params, int n_seg,
                             const int *seg_layers, const int *seg_dev, eng_model **out, char *err,
                             size_t errlen)
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

    int *segl = NULL, *segd = NULL, mapped = n_seg > 0;
    eng_model *m = calloc(1, sizeof(*m));
    if (!m) {
        st = eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        goto free_source;
    }
    m->cfg = src.cfg;
    const eng_config *c = &m->cfg;
    ENG_CHECK(eng_tp_shard(c, params->tp_rank, params->tp_size, &m->sh, err, errlen), close_model);
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

    segl = calloc((size_t)c->n_layers + 1, sizeof(int));
    segd = calloc((size_t)c->n_layers + 1, sizeof(int));
    if (!segl || !segd) {
        st = eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        goto close_model;
    }
    if (mapped) { /* the test hook */
        int total = 0;
        for (int i = 0; i < n_seg; i++) {
            if (seg_layers[i] < 1 || total + seg_layers[i] > c->n_layers || params->tp_size > 1) {
                st = eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                              "segments: bad layer counts for %d layers (or tp_size > 1)",
                              c->n_layers);
                goto close_model;
            }
            total += seg_layers[i];
        }
        if (total != c->n_layers) {
            st = eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                          "segments: %d layers given, the model has %d", total, c->n_layers);
            goto close_model;
        }
        memcpy(segl, seg_layers, (size_t)n_seg * sizeof(int));
        memcpy(segd, seg_dev, (size_t)n_seg * sizeof(int));
    } else if (params->device_layers || params->auto_split) {
        ENG_CHECK(map_layers(&src, params, &n_seg, segl, segd, err, errlen), close_model);
        mapped = 1;
    } else {
        n_seg = 1;
    }
    /* The backends take the shard: converted in place on the CPU, uploaded to a GPU. */
    ENG_CHECK(build_segments(m, &src, params, mapped, n_seg, segl, segd, err, errlen), close_model);
    free(segl);
    free(segd);
    /* The mappings now belong to the model. */
    m->maps = src.maps;
    m->n_maps = src.n_maps;
    src.maps = NULL;
    src.n_maps = 0;
    eng_source_free(&src);
    *out = m;
    return ENG_OK;
close_model:
    free(segl);
    free(segd);
    eng_model_close(m);
free_source:
    eng_source_free(&src);
    return st;
}

eng_status eng_model_open(const char *path, const eng_load_params *params, eng_model **out,
                          char *err, size_t errlen)
{
    return open_model(path, params, 0, NULL, NULL, out, err, errlen);
}

eng_status eng_model_open_segments(const char *path, const eng_load_params *p, int n_seg,
                                   const int *seg_layers, const int *seg_dev, eng_model **out,
                                   char *err, size_t errlen)
{
    *out = NULL;
    if (n_seg < 1 || !seg_layers || !seg_dev)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "segments: none given");
    return open_model(path, p, n_seg, seg_layers, seg_dev, out, err, errlen);
}

void eng_model_close(eng_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_seg; i++)
        if (m->seg[i] && m->seg[i] != m) eng_model_close(m->seg[i]);
    if (m->b) m->b->model_free(m);
    for (int i = 0; i < m->n_maps; i++)
        eng_unmap(&m->maps[i]);
    free(m->maps);
    free(m->seg);
    free(m->seg_dev);
    free(m->link);
    free(m);
}

const eng_config *eng_model_config(const eng_model *m)
{
    return &m->cfg;
}
const eng_shard_info *eng_model_shard(const eng_model *m)
{
    return &m->sh;
}

void eng_model_memory(const eng_model *m, size_t *owned_bytes, size_t *mapped_bytes)
{
    if (owned_bytes) *owned_bytes = m->owned_bytes;
    if (mapped_bytes) *mapped_bytes = m->mapped_bytes;
}

const char *eng_model_backend(const eng_model *m)
{
    return m->name;
}

void eng_model_describe(const eng_model *m, char *buf, size_t len)
{
    if (m->n_seg == 1) {
        m->b->describe(m, buf, len);
        return;
    }
    /* "layers 0-2: cuda (GPU 0: ...); layers 3-4: cpu (kernels ...)" */
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < m->n_seg && off + 1 < len; i++) {
        const eng_model *sm = m->seg[i];
        int w = snprintf(buf + off, len - off, "%slayers %d-%d: ", i ? "; " : "", sm->layer0,
                         sm->layer0 + sm->cfg.n_layers - 1);
        if (w < 0 || (size_t)w >= len - off) break;
        off += (size_t)w;
        sm->b->describe(sm, buf + off, len - off);
        off += strlen(buf + off);
    }
}
