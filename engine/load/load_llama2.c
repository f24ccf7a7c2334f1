/* SPDX-License-Identifier: MIT */
/* llama2.c "v0" checkpoints: 7 int32 header, then float32 tensors stacked over layers. */
#include "eng_internal.h"

#include <stdlib.h>
#include <string.h>

/* Points r at count tensors of [rows, cols] f32 starting at *cursor; advances it. */
static void take(eng_tref *r, const float **cursor, int64_t rows, int64_t cols, const char *name)
{
    r->data = *cursor;
    r->dt = ENG_DT_F32;
    r->rows = rows;
    r->cols = cols;
    r->name = name;
    *cursor += rows * cols;
}

eng_status eng_load_llama2(const char *path, eng_source *src, char *err, size_t errlen)
{
    eng_status st;
    memset(src, 0, sizeof(*src));
    src->maps = calloc(1, sizeof(eng_mapping));
    if (!src->maps) return eng_fail(ENG_ERR_NOMEM, err, errlen, "%s: out of memory", path);
    ENG_CHECK(eng_map_file(path, &src->maps[0], err, errlen), free_source);
    src->n_maps = 1;
    const eng_mapping *mp = &src->maps[0];
    if (mp->len < 7 * sizeof(int32_t)) {
        st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                      "%s: truncated llama2.c checkpoint (%zu bytes, header needs 28)", path,
                      mp->len);
        goto free_source;
    }
    int32_t h[7];
    memcpy(h, mp->addr, sizeof(h));
    int dim = h[0], hid = h[1], L = h[2], H = h[3], KV = h[4], V = h[5], S = h[6];
    int shared = V > 0;
    if (V < 0) V = V == INT32_MIN ? 0 : -V; /* INT32_MIN has no positive: left invalid */
    if (dim <= 0 || hid <= 0 || L <= 0 || H <= 0 || KV <= 0 || V <= 0 || S <= 0 ||
        dim > (1 << 16) || hid > (1 << 18) || L > 4096 || S > (1 << 22) || V > (1 << 22) ||
        dim % H != 0 || H % KV != 0 || ((dim / H) & 1)) {
        /* A safetensors file starts with a u64 header length and then '{'. */
        const char *b = mp->addr;
        if (mp->len > 9 && b[8] == '{') {
            st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                          "%s: a safetensors file, not a llama2.c checkpoint: give -m the folder "
                          "that holds it with config.json",
                          path);
            goto free_source;
        }
        st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                      "%s: not a llama2.c v0 checkpoint (header dim=%d hidden=%d layers=%d "
                      "heads=%d kv_heads=%d vocab=%d seq_len=%d)",
                      path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
        goto free_source;
    }
    int hd = dim / H;
    if (hd > ENG_MAX_HEAD_DIM) {
        st = eng_fail(ENG_ERR_UNSUPPORTED, err, errlen, "%s: head size %d > %d", path, hd,
                      ENG_MAX_HEAD_DIM);
        goto free_source;
    }
    /* Expected size in floats, computed in 64 bits to catch lying headers. */
    int64_t need = (int64_t)V * dim + (int64_t)L * dim +
                   (int64_t)L * dim * ((int64_t)H * hd + 2 * (int64_t)KV * hd) +
                   (int64_t)L * H * hd * dim + (int64_t)L * dim + 3 * (int64_t)L * hid * dim + dim +
                   (int64_t)S * hd + (shared ? 0 : (int64_t)V * dim);
    int64_t have = (int64_t)(mp->len - sizeof(h)) / 4;
    if ((mp->len - sizeof(h)) % 4 != 0) { /* a cut float: not a file to run silently */
        st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                      "%s: %zu bytes after the header are not a whole number of floats", path,
                      mp->len - sizeof(h));
        goto free_source;
    }
    if (have != need) {
        st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                      "%s: file holds %lld floats after the header but the header "
                      "(dim=%d hidden=%d layers=%d heads=%d kv_heads=%d vocab=%d seq_len=%d) "
                      "needs %lld%s",
                      path, (long long)have, dim, hid, L, H, KV, V, S, (long long)need,
                      have < need ? " (truncated)" : "");
        goto free_source;
    }
    eng_config *c = &src->cfg;
    c->dim = dim;
    c->hidden_dim = hid;
    c->n_layers = L;
    c->n_heads = H;
    c->n_kv_heads = KV;
    c->head_dim = hd;
    c->vocab_size = V;
    c->seq_len = S;
    c->norm_eps = 1e-5f;
    c->rope_theta = 10000.0f;
    c->rope_style = ENG_ROPE_INTERLEAVED;
    c->tied_embeddings = shared;

    src->layers = calloc((size_t)L * ENG_T_LAYER_COUNT, sizeof(eng_tref));
    if (!src->layers) {
        st = eng_fail(ENG_ERR_NOMEM, err, errlen, "%s: out of memory", path);
        goto free_source;
    }
    const float *p = (const float *)((const char *)mp->addr + sizeof(h));
    take(&src->embed, &p, V, dim, "token_embedding_table");
    /* Stacked tensors: one pass per kind, layer by layer. */
    static const struct {
        int kind;
        const char *name;
    } order[] = {{ENG_T_ATT_NORM, "rms_att_weight"},
                 {ENG_T_WQ, "wq"},
                 {ENG_T_WK, "wk"},
                 {ENG_T_WV, "wv"},
                 {ENG_T_WO, "wo"},
                 {ENG_T_FFN_NORM, "rms_ffn_weight"},
                 {ENG_T_W1, "w1"},
                 {ENG_T_W2, "w2"},
                 {ENG_T_W3, "w3"}};
    for (size_t o = 0; o < sizeof(order) / sizeof(order[0]); o++) {
        int64_t rows = 1, cols = dim;
        switch (order[o].kind) {
        case ENG_T_WQ:
            rows = (int64_t)H * hd;
            break;
        case ENG_T_WK:
        case ENG_T_WV:
            rows = (int64_t)KV * hd;
            break;
        case ENG_T_WO:
            rows = dim;
            cols = (int64_t)H * hd;
            break;
        case ENG_T_W1:
        case ENG_T_W3:
            rows = hid;
            break;
        case ENG_T_W2:
            rows = dim;
            cols = hid;
            break;
        default:
            break;
        }
        for (int l = 0; l < L; l++)
            take(&src->layers[(size_t)l * ENG_T_LAYER_COUNT + order[o].kind], &p, rows, cols,
                 order[o].name);
    }
    take(&src->final_norm, &p, 1, dim, "rms_final_weight");
    p += (int64_t)S * hd; /* legacy RoPE tables (freq_cis_real/imag), unused */
    if (!shared) take(&src->cls, &p, V, dim, "wcls");
    return ENG_OK;
free_source:
    eng_source_free(src);
    return st;
}
