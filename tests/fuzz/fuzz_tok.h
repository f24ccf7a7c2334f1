/* SPDX-License-Identifier: MIT */
/* The tokenizer fuzz targets' check of a loaded tokenizer on one text. */
#ifndef RC_FUZZ_TOK_H
#define RC_FUZZ_TOK_H

#include "tokenizer.h"

#include <stdlib.h>
#include <string.h>

/* Encoding `text` asks for its size, refuses a buffer one short without writing past it, then
 * fills one of exactly that size with ids inside the vocabulary, each of which decodes. */
static inline void fuzz_encode_check(const eng_tokenizer *t, const char *text, int add_bos)
{
    int V = eng_tokenizer_vocab_size(t), n = -1;
    eng_status st = eng_tokenizer_encode(t, text, add_bos, NULL, 0, &n);
    if (n < 0 || (st != ENG_OK && st != ENG_ERR_INVALID_ARG) || (st == ENG_OK) != (n == 0)) abort();
    int *ids = malloc((size_t)(n ? n : 1) * sizeof(int)), m = -1;
    if (!ids) abort();
    if (n > 1) { /* one short: must refuse without writing past the buffer */
        if (eng_tokenizer_encode(t, text, add_bos, ids, n - 1, &m) != ENG_ERR_INVALID_ARG || m != n)
            abort();
    }
    if (eng_tokenizer_encode(t, text, add_bos, ids, n, &m) != ENG_OK || m != n) abort();
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) abort();
        if (!eng_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i])) abort();
    }
    free(ids);
}

/* fuzz_encode_check on each of texts[0, n) (with BOS on every other one) and on the input's
 * first 256 bytes as text (up to a NUL), with BOS or not. */
static inline void fuzz_encode_texts(const eng_tokenizer *t, const char *const *texts, size_t n,
                                     const uint8_t *data, size_t size, int bos)
{
    for (size_t i = 0; i < n; i++)
        fuzz_encode_check(t, texts[i], (int)(i & 1));
    char text[257];
    size_t len = size < 256 ? size : 256;
    memcpy(text, data, len);
    text[len] = '\0';
    fuzz_encode_check(t, text, bos);
}

#endif
