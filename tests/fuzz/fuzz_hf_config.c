/* SPDX-License-Identifier: MIT */
/* libFuzzer target: a Hugging Face model folder's config.json and model.safetensors.index.json
 * (engine/load/load_hf.c) in front of a small fixed model.safetensors written at start-up.
 * Input: config.json, then optionally a NUL and the index (absent without the NUL). Checks
 * besides the sanitizers: a refusal has a one-line message; an accepted folder gives a
 * consistent config and tensors inside the mapped files (ASan does not watch mmap'd memory). */
#include "eng_internal.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/fuzz_hf_config.XXXXXX";
static char cfg_path[64], idx_path[80];

static void die(const char *what)
{
    fprintf(stderr, "fuzz_hf_config: set-up failed: %s\n", what);
    abort();
}

static void write_file(const char *p, const void *d, size_t n)
{
    int f = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (f < 0 || (n && write(f, d, n) != (ssize_t)n) || close(f) != 0) die(p);
}

/* A few tensors of a 1-layer model with dim 2 in the three dtypes, one the engine cannot read
 * (lm_head, I32) and one with three dimensions (layer 1's up projection). */
static void write_model(void)
{
    static const char hdr[] =
        "{\"model.embed_tokens.weight\":{\"dtype\":\"F32\",\"shape\":[4,2],\"data_offsets\":[0,32]}"
        ","
        "\"model.norm.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[32,40]},"
        "\"lm_head.weight\":{\"dtype\":\"I32\",\"shape\":[4,2],\"data_offsets\":[40,72]},"
        "\"model.layers.0.input_layernorm.weight\":{\"dtype\":\"F16\",\"shape\":[2],"
        "\"data_offsets\":[72,76]},"
        "\"model.layers.0.self_attn.q_proj.bias\":{\"dtype\":\"BF16\",\"shape\":[2],"
        "\"data_offsets\":[76,80]},"
        "\"model.layers.1.mlp.up_proj.weight\":{\"dtype\":\"F32\",\"shape\":[1,1,2],"
        "\"data_offsets\":[80,88]}}";
    size_t hn = sizeof(hdr) - 1, n = 8 + hn + 88;
    unsigned char *f = calloc(1, n);
    if (!f) die("calloc");
    for (int i = 0; i < 8; i++)
        f[i] = (unsigned char)((uint64_t)hn >> (8 * i));
    memcpy(f + 8, hdr, hn);
    char p[80];
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    write_file(p, f, n);
    free(f);
}

static void cleanup(void)
{
    char p[80];
    snprintf(p, sizeof(p), "%s/model.safetensors", dir);
    unlink(p);
    unlink(cfg_path);
    unlink(idx_path);
    rmdir(dir);
}

static void check_ref(const eng_source *src, const eng_tref *r)
{
    if (!r->name) abort();
    if (!r->data) return;
    if (r->rows <= 0 || r->cols <= 0) abort();
    const char *d = r->data;
    for (int i = 0; i < src->n_maps; i++) {
        const char *lo = src->maps[i].addr, *hi = lo + src->maps[i].len;
        if (d >= lo && d < hi) {
            uint64_t bytes = (uint64_t)r->rows * (uint64_t)r->cols * (r->dt == ENG_DT_F32 ? 4 : 2);
            if (bytes > (uint64_t)(hi - d)) abort();
            return;
        }
    }
    abort(); /* in no mapping */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!cfg_path[0]) {
        if (!mkdtemp(dir)) die("mkdtemp");
        snprintf(cfg_path, sizeof(cfg_path), "%s/config.json", dir);
        snprintf(idx_path, sizeof(idx_path), "%s/model.safetensors.index.json", dir);
        write_model();
        atexit(cleanup);
    }
    const uint8_t *nul = memchr(data, 0, size);
    size_t cn = nul ? (size_t)(nul - data) : size;
    write_file(cfg_path, data, cn);
    if (nul)
        write_file(idx_path, nul + 1, size - cn - 1);
    else
        unlink(idx_path);
    eng_source src;
    char err[512] = "";
    eng_status st = eng_load_hf(dir, &src, err, sizeof(err));
    if (st != ENG_OK) {
        if (!err[0] || strchr(err, '\n')) abort(); /* one clear line */
        return 0;
    }
    const eng_config *c = &src.cfg;
    if (c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 || c->n_kv_heads <= 0 ||
        c->n_heads % c->n_kv_heads || c->head_dim <= 0 || c->head_dim > 1024 || (c->head_dim & 1) ||
        c->vocab_size <= 0 || c->seq_len <= 0 || c->hidden_dim <= 0 || !(c->norm_eps > 0) ||
        !(c->rope_theta > 0) || src.n_maps < 1)
        abort();
    check_ref(&src, &src.embed);
    check_ref(&src, &src.final_norm);
    if (!c->tied_embeddings) check_ref(&src, &src.cls);
    for (int i = 0; i < c->n_layers * ENG_T_LAYER_COUNT; i++)
        check_ref(&src, &src.layers[i]);
    eng_source_free(&src);
    return 0;
}
