/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the llama2.c checkpoint header (engine/load/load_llama2.c), which decides
 * where every tensor of a model file lies. Input: the checkpoint, written to a memfd that
 * eng_load_llama2 maps by its /proc path. Checks besides the sanitizers: a refusal has a
 * one-line message naming the file; an accepted file's config is consistent and every tensor
 * lies inside the mapping (ASan does not watch mmap'd memory), the last one ending the file. */
#include "eng_internal.h"
#include "fuzz.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* r's bytes inside [lo, hi); returns its end (lo when absent). */
static const char *check_ref(const eng_tref *r, const char *lo, const char *hi)
{
    if (!r->data) return lo;
    const char *d = r->data;
    if (r->dt != ENG_DT_F32 || r->rows <= 0 || r->cols <= 0 || d < lo + 28 || d > hi) abort();
    if ((uint64_t)r->rows * (uint64_t)r->cols > (uint64_t)(hi - d) / 4) abort();
    return d + r->rows * r->cols * 4;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_file_with("model.bin", data, size);
    eng_source src;
    char err[512] = "";
    eng_status st = eng_load_llama2(path, &src, err, sizeof(err));
    if (st != ENG_OK) {
        if (!strstr(err, path) || strchr(err, '\n')) abort(); /* one clear line */
        return 0;
    }
    const eng_config *c = &src.cfg;
    if (src.n_maps != 1 || c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->head_dim * c->n_heads != c->dim || c->vocab_size <= 0 ||
        c->seq_len <= 0 || c->hidden_dim <= 0)
        abort();
    const char *lo = src.maps[0].addr, *hi = lo + src.maps[0].len, *end = lo;
    const char *e;
    if ((e = check_ref(&src.embed, lo, hi)) > end) end = e;
    if ((e = check_ref(&src.final_norm, lo, hi)) > end) end = e;
    if ((e = check_ref(&src.cls, lo, hi)) > end) end = e;
    for (int i = 0; i < c->n_layers * ENG_T_LAYER_COUNT; i++)
        if ((e = check_ref(&src.layers[i], lo, hi)) > end) end = e;
    if (c->tied_embeddings == !!src.cls.data) abort();
    if ((size_t)(hi - end) <
        (c->tied_embeddings ? (size_t)c->seq_len * (size_t)c->head_dim * 4 : 0))
        abort(); /* the legacy RoPE tables after the final norm */
    eng_source_free(&src);
    return 0;
}
