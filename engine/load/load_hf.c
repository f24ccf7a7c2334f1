/* SPDX-License-Identifier: MIT */
/* Hugging Face checkpoints: config.json + model.safetensors or a sharded set named by
 * model.safetensors.index.json. Architectures: Llama, Mistral, Qwen2, Qwen3. */
#include "safetensors.h"

#include "common/errline.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static eng_status read_json(const char *path, cJSON **out, char *err, size_t errlen)
{
    eng_mapping mp;
    eng_status st = eng_map_file(path, &mp, err, errlen);
    if (st != ENG_OK) return st;
    *out = cJSON_ParseWithLength(mp.addr, mp.len);
    eng_unmap(&mp);
    if (!*out) return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: not valid JSON", path);
    return ENG_OK;
}

/* Integer field; def < 0 means required. */
static eng_status get_int(const cJSON *o, const char *key, int def, int *out, const char *path,
                          char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        if (def < 0) return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: \"%s\" missing", path, key);
        *out = def;
        return ENG_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e9 ||
        v->valuedouble != (double)(int)v->valuedouble)
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: \"%s\" is not a count", path, key);
    *out = (int)v->valuedouble;
    return ENG_OK;
}

static int get_bool(const cJSON *o, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : def;
}

/* A positive number, def when absent or null; anything else (a string, 0, negative) is an
 * error rather than a silent default. */
static eng_status get_pos(const cJSON *o, const char *key, double def, double *out,
                          const char *path, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return ENG_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble) ||
        !((float)v->valuedouble > 0))
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: \"%s\" must be a positive number", path,
                        key);
    *out = v->valuedouble;
    return ENG_OK;
}

static const char *get_str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

enum { ARCH_LLAMA, ARCH_MISTRAL, ARCH_QWEN2, ARCH_QWEN3 };

static eng_status parse_config(const char *path, const cJSON *j, eng_config *c, char *err,
                               size_t errlen)
{
    eng_status st;
    static const struct {
        const char *arch, *type;
        int id;
    } archs[] = {{"LlamaForCausalLM", "llama", ARCH_LLAMA},
                 {"MistralForCausalLM", "mistral", ARCH_MISTRAL},
                 {"Qwen2ForCausalLM", "qwen2", ARCH_QWEN2},
                 {"Qwen3ForCausalLM", "qwen3", ARCH_QWEN3}};
    const cJSON *al = cJSON_GetObjectItemCaseSensitive(j, "architectures");
    const char *arch = cJSON_IsArray(al) && cJSON_IsString(cJSON_GetArrayItem(al, 0))
                           ? cJSON_GetArrayItem(al, 0)->valuestring
                           : NULL;
    const char *type = get_str(j, "model_type");
    int id = -1;
    for (size_t i = 0; i < sizeof(archs) / sizeof(archs[0]); i++)
        if ((arch && !strcmp(arch, archs[i].arch)) ||
            (!arch && type && !strcmp(type, archs[i].type)))
            id = archs[i].id;
    if (id < 0)
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                        "%s: unsupported architecture '%s' (supported: LlamaForCausalLM, "
                        "MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM)",
                        path,
                        arch   ? arch
                        : type ? type
                               : "(none given)");
    memset(c, 0, sizeof(*c));
#define INT(key, def, dst)                                                                         \
    if ((st = get_int(j, key, def, &c->dst, path, err, errlen)) != ENG_OK) return st
    INT("hidden_size", -1, dim);
    INT("intermediate_size", -1, hidden_dim);
    INT("num_hidden_layers", -1, n_layers);
    INT("num_attention_heads", -1, n_heads);
    INT("num_key_value_heads", c->n_heads, n_kv_heads);
    INT("vocab_size", -1, vocab_size);
    INT("max_position_embeddings", 2048, seq_len);
    if (c->n_heads <= 0 || c->dim <= 0)
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: zero hidden_size or heads", path);
    INT("head_dim", c->dim / c->n_heads, head_dim);
#undef INT
    if (c->n_layers <= 0 || c->hidden_dim <= 0 || c->vocab_size <= 0 || c->seq_len <= 0 ||
        c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads != 0 || c->head_dim <= 0 ||
        (c->head_dim & 1))
        return eng_fail(ENG_ERR_FORMAT, err, errlen,
                        "%s: inconsistent sizes (layers %d, FFN %d, vocab %d, heads %d, KV "
                        "heads %d, head_dim %d)",
                        path, c->n_layers, c->hidden_dim, c->vocab_size, c->n_heads, c->n_kv_heads,
                        c->head_dim);
    /* The loader allocates and looks up per layer: a billion layers must be refused here, not
     * as a terabyte allocation (llama2.c checkpoints have the same bound). */
    if (c->n_layers > 4096)
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen, "%s: num_hidden_layers %d > 4096", path,
                        c->n_layers);
    if (c->vocab_size > (1 << 22)) /* as llama2.c checkpoints; the GPU sampler's sums need it */
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen, "%s: vocab_size %d > 4194304", path,
                        c->vocab_size);
    if (c->head_dim > ENG_MAX_HEAD_DIM)
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen, "%s: head_dim %d > %d", path, c->head_dim,
                        ENG_MAX_HEAD_DIM);
    const char *act = get_str(j, "hidden_act");
    if (act && strcmp(act, "silu"))
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                        "%s: hidden_act '%s' unsupported (only silu)", path, act);
    double eps, theta = 10000.0;
    if ((st = get_pos(j, "rms_norm_eps", 1e-6, &eps, path, err, errlen)) != ENG_OK) return st;
    c->norm_eps = (float)eps;
    /* rope_theta: top level (older transformers) or under rope_parameters (v5). */
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(j, "rope_parameters");
    if (cJSON_IsObject(rp) &&
        (st = get_pos(rp, "rope_theta", theta, &theta, path, err, errlen)) != ENG_OK)
        return st;
    if ((st = get_pos(j, "rope_theta", theta, &theta, path, err, errlen)) != ENG_OK) return st;
    c->rope_theta = (float)theta;
    const char *rtype = cJSON_IsObject(rp) ? get_str(rp, "rope_type") : NULL;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(j, "rope_scaling");
    if (cJSON_IsObject(rs) && !rtype)
        rtype = get_str(rs, "rope_type") ? get_str(rs, "rope_type") : get_str(rs, "type");
    if (rtype && strcmp(rtype, "default"))
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                        "%s: rope scaling '%s' unsupported (only default RoPE)", path, rtype);
    c->rope_style = ENG_ROPE_HALF;
    c->tied_embeddings = get_bool(j, "tie_word_embeddings", 0);
    if (id == ARCH_LLAMA) {
        c->has_qkv_bias = c->has_o_bias = get_bool(j, "attention_bias", 0);
        c->has_mlp_bias = get_bool(j, "mlp_bias", 0);
    }
    if (id == ARCH_QWEN2) c->has_qkv_bias = 1;
    if (id == ARCH_QWEN3) {
        c->has_qkv_bias = get_bool(j, "attention_bias", 0);
        c->has_qk_norm = 1;
    }
    if (id == ARCH_MISTRAL) {
        int w = 0;
        if ((st = get_int(j, "sliding_window", 0, &w, path, err, errlen)) != ENG_OK) return st;
        c->sliding_window = w < c->seq_len ? w : 0;
    } else if ((id == ARCH_QWEN2 || id == ARCH_QWEN3) && get_bool(j, "use_sliding_window", 0)) {
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                        "%s: use_sliding_window unsupported for %s", path, arch ? arch : type);
    }
    return ENG_OK;
}

/* The data files: the index's weight_map values (each once), or model.safetensors. */
static eng_status open_weights(const char *dir, eng_st_index *ix, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) != 0) {
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        if (access(path, F_OK) != 0)
            return eng_fail(ENG_ERR_IO, err, errlen,
                            "%s: neither model.safetensors nor model.safetensors.index.json", dir);
        return eng_st_add_file(ix, path, err, errlen);
    }
    cJSON *j;
    eng_status st = read_json(path, &j, err, errlen);
    if (st != ENG_OK) return st;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(j, "weight_map"), *e;
    if (!cJSON_IsObject(wm)) {
        cJSON_Delete(j);
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: no \"weight_map\" object", path);
    }
    char idx_path[4096];
    snprintf(idx_path, sizeof(idx_path), "%s", path);
    cJSON_ArrayForEach(e, wm)
    {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/')) {
            st = eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: weight_map[%s] is not a file name",
                          idx_path, e->string);
            break;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, e->valuestring);
        int seen = 0;
        for (int i = 0; i < ix->n_maps && !seen; i++)
            seen = !strcmp(ix->files[i], path);
        if (seen) continue;
        if ((st = eng_st_add_file(ix, path, err, errlen)) != ENG_OK) break;
    }
    /* Every tensor where the index says: a tensor missing from its shard, or found in another
     * one, means the index and the files disagree. */
    if (st == ENG_OK) cJSON_ArrayForEach(e, wm)
        {
            snprintf(path, sizeof(path), "%s/%s", dir, e->valuestring);
            const eng_st_tensor *t = eng_st_find(ix, e->string);
            if (!t || strcmp(t->file, path) != 0) {
                st = t ? eng_fail(ENG_ERR_FORMAT, err, errlen,
                                  "%s: puts tensor %s in %s, but it is in %s", idx_path, e->string,
                                  e->valuestring, t->file)
                       : eng_fail(ENG_ERR_FORMAT, err, errlen,
                                  "%s: puts tensor %s in %s, which does not hold it", idx_path,
                                  e->string, e->valuestring);
                break;
            }
        }
    cJSON_Delete(j);
    return st;
}

/* Fills r from tensor name; absent tensors keep their name for the error message. */
static eng_status ref(const eng_st_index *ix, char *arena, size_t *used, const char *name,
                      eng_tref *r, char *err, size_t errlen)
{
    size_t len = strlen(name) + 1;
    memcpy(arena + *used, name, len);
    r->name = arena + *used;
    *used += len;
    const eng_st_tensor *t = eng_st_find(ix, name);
    if (!t) return ENG_OK;
    if (t->dt < 0)
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                        "%s: tensor %s has dtype %s (supported: F32, F16, BF16)", t->file, name,
                        t->dtname);
    if (t->ndim < 1 || t->ndim > 2)
        return eng_fail(ENG_ERR_FORMAT, err, errlen,
                        "%s: tensor %s has %d dimensions, expected "
                        "1 or 2",
                        t->file, name, t->ndim);
    r->data = t->data;
    r->dt = (eng_dtype)t->dt;
    r->rows = t->ndim == 2 ? t->shape[0] : 1;
    r->cols = t->ndim == 2 ? t->shape[1] : t->shape[0];
    return ENG_OK;
}

static eng_status load_hf(const char *dir, eng_source *src, char *err, size_t errlen)
{
    eng_status st;
    memset(src, 0, sizeof(*src));
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    cJSON *j;
    if ((st = read_json(path, &j, err, errlen)) != ENG_OK) return st;
    st = parse_config(path, j, &src->cfg, err, errlen);
    cJSON_Delete(j);
    if (st != ENG_OK) return st;
    const eng_config *c = &src->cfg;

    eng_st_index ix = {0};
    ENG_CHECK(open_weights(dir, &ix, err, errlen), free_index);
    src->layers = calloc((size_t)c->n_layers * ENG_T_LAYER_COUNT, sizeof(eng_tref));
    size_t arena_len = ((size_t)c->n_layers * ENG_T_LAYER_COUNT + 3) * 80, used = 0;
    src->names = malloc(arena_len);
    if (!src->layers || !src->names) {
        st = eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        goto free_index;
    }
    ENG_CHECK(ref(&ix, src->names, &used, "model.embed_tokens.weight", &src->embed, err, errlen),
              free_index);
    ENG_CHECK(ref(&ix, src->names, &used, "model.norm.weight", &src->final_norm, err, errlen),
              free_index);
    if (!c->tied_embeddings)
        ENG_CHECK(ref(&ix, src->names, &used, "lm_head.weight", &src->cls, err, errlen),
                  free_index);
    static const char *const suffix[ENG_T_LAYER_COUNT] = {
        [ENG_T_ATT_NORM] = "input_layernorm.weight",
        [ENG_T_WQ] = "self_attn.q_proj.weight",
        [ENG_T_WK] = "self_attn.k_proj.weight",
        [ENG_T_WV] = "self_attn.v_proj.weight",
        [ENG_T_BQ] = "self_attn.q_proj.bias",
        [ENG_T_BK] = "self_attn.k_proj.bias",
        [ENG_T_BV] = "self_attn.v_proj.bias",
        [ENG_T_QNORM] = "self_attn.q_norm.weight",
        [ENG_T_KNORM] = "self_attn.k_norm.weight",
        [ENG_T_WO] = "self_attn.o_proj.weight",
        [ENG_T_BO] = "self_attn.o_proj.bias",
        [ENG_T_FFN_NORM] = "post_attention_layernorm.weight",
        [ENG_T_W1] = "mlp.gate_proj.weight",
        [ENG_T_W3] = "mlp.up_proj.weight",
        [ENG_T_B1] = "mlp.gate_proj.bias",
        [ENG_T_B3] = "mlp.up_proj.bias",
        [ENG_T_W2] = "mlp.down_proj.weight",
        [ENG_T_B2] = "mlp.down_proj.bias",
    };
    for (int l = 0; l < c->n_layers; l++)
        for (int k = 0; k < ENG_T_LAYER_COUNT; k++) {
            char name[80];
            snprintf(name, sizeof(name), "model.layers.%d.%s", l, suffix[k]);
            ENG_CHECK(ref(&ix, src->names, &used, name,
                          &src->layers[(size_t)l * ENG_T_LAYER_COUNT + k], err, errlen),
                      free_index);
        }
    /* Biases present in the file are used even when the config does not announce them. */
    const eng_tref *l0 = src->layers;
    if (l0[ENG_T_BQ].data) src->cfg.has_qkv_bias = 1;
    if (l0[ENG_T_BO].data) src->cfg.has_o_bias = 1;
    if (l0[ENG_T_B1].data) src->cfg.has_mlp_bias = 1;
    src->maps = ix.maps;
    src->n_maps = ix.n_maps;
    eng_st_free(&ix, 1);
    return ENG_OK;
free_index:
    eng_st_free(&ix, 0);
    free(src->layers);
    free(src->names);
    memset(src, 0, sizeof(*src));
    return st;
}

eng_status eng_load_hf(const char *dir, eng_source *src, char *err, size_t errlen)
{
    eng_status st = load_hf(dir, src, err, errlen);
    if (st != ENG_OK) rc_errline_escape(err, errlen); /* strings from the files may hold newlines */
    return st;
}
