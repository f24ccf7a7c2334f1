/* SPDX-License-Identifier: MIT */
/* The llama2.c tokenizer format: int32 max_token_length, then per entry float32 score, int32 len,
 * len bytes. Encoding: dummy prefix space, UTF-8 code points looked up (else byte tokens 3+byte),
 * then greedy merging of the adjacent pair whose concatenation has the highest score. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tok_impl.h"

#define L2_BYTE_BASE 3 /* ids 3..258 are <0x00>..<0xFF> */
/* llama2.c starts its best-score search at -1e10: pairs scoring no more never merge. */
#define L2_MIN_SCORE -1e10f

typedef struct {
    const char *s;
    int len;
    int id;
} l2_entry;

typedef struct {
    eng_tokenizer base;
    char *blob;         /* all token strings, each NUL-terminated */
    char **piece;       /* [vocab] token text */
    int *len;           /* [vocab] token length in bytes */
    float *score;       /* [vocab] merge score */
    l2_entry *sorted;   /* [vocab] by (bytes, id), for bsearch */
    int max_len;        /* longest token in bytes */
    char bytes[256][2]; /* the raw byte of each byte token, NUL-terminated */
} l2_tok;

static int entry_cmp(const void *a, const void *b)
{
    const l2_entry *x = a, *y = b;
    int n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, (size_t)n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Lowest id whose text is s[0..n), or -1. */
static int l2_lookup(const l2_tok *t, const char *s, int n)
{
    int lo = 0, hi = t->base.vocab_size;
    l2_entry key = {s, n, -1}; /* id -1 sorts before every real id of the same text */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (entry_cmp(&t->sorted[mid], &key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < t->base.vocab_size && t->sorted[lo].len == n && memcmp(t->sorted[lo].s, s, n) == 0)
        return t->sorted[lo].id;
    return -1;
}

typedef struct {
    const l2_tok *t;
    char *buf; /* room for two tokens */
} l2_pair_ctx;

static int l2_pair(const void *ctx, int left, int right, int *merged, double *prio)
{
    const l2_pair_ctx *c = ctx;
    const l2_tok *t = c->t;
    memcpy(c->buf, t->piece[left], (size_t)t->len[left]);
    memcpy(c->buf + t->len[left], t->piece[right], (size_t)t->len[right]);
    int id = l2_lookup(t, c->buf, t->len[left] + t->len[right]);
    if (id < 0 || !(t->score[id] > L2_MIN_SCORE)) return 0;
    *merged = id;
    *prio = t->score[id];
    return 1;
}

static eng_status l2_encode(const eng_tokenizer *base, const char *text, tok_out *out)
{
    const l2_tok *t = (const l2_tok *)base;
    size_t n = strlen(text);
    if (n == 0) return ENG_OK;
    /* One symbol per byte at most, plus the dummy prefix. */
    size_t cap = n + 1;
    tok_sym *syms = malloc(cap * sizeof *syms);
    tok_heap_ent *heap = malloc(3 * cap * sizeof *heap);
    char *buf = malloc(2 * (size_t)t->max_len + 1);
    eng_status st = ENG_OK;
    if (!syms || !heap || !buf) {
        st = ENG_ERR_NOMEM;
        goto free_scratch;
    }
    int ns = 0;
    int space = l2_lookup(t, " ", 1);
    syms[ns++].id = space >= 0 ? space : L2_BYTE_BASE + ' ';
    const unsigned char *s = (const unsigned char *)text;
    for (size_t i = 0; i < n;) {
        /* A code point: a byte and the continuation bytes after it, four bytes at most. */
        size_t k = 1;
        while (i + k < n && k < 4 && (s[i + k] & 0xC0) == 0x80)
            k++;
        int id = l2_lookup(t, text + i, (int)k);
        if (id >= 0) {
            syms[ns++].id = id;
        } else {
            for (size_t j = 0; j < k; j++)
                syms[ns++].id = L2_BYTE_BASE + s[i + j];
        }
        i += k;
    }
    for (int i = 0; i < ns; i++) {
        syms[i].prev = i - 1;
        syms[i].next = i + 1 < ns ? i + 1 : -1;
    }
    l2_pair_ctx ctx = {t, buf};
    tok_merge(syms, ns, heap, l2_pair, &ctx);
    for (int i = 0; i >= 0; i = syms[i].next)
        tok_out_push(out, syms[i].id);
free_scratch:
    free(buf);
    free(heap);
    free(syms);
    return st;
}

/* The byte of a "<0xXX>" token, or -1. */
static int byte_token(const char *p, int len)
{
    static const char hex[] = "0123456789ABCDEF";
    if (len != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    const char *hi = memchr(hex, p[3], 16), *lo = memchr(hex, p[4], 16);
    if (!hi || !lo || !p[3] || !p[4]) return -1;
    return (int)((hi - hex) * 16 + (lo - hex));
}

static const char *l2_decode(const eng_tokenizer *base, int prev_id, int id)
{
    const l2_tok *t = (const l2_tok *)base;
    const char *p = t->piece[id];
    if (prev_id == t->base.bos && p[0] == ' ') p++;
    int b = byte_token(t->piece[id], t->len[id]);
    return b >= 0 ? t->bytes[b] : p;
}

static void l2_destroy(eng_tokenizer *base)
{
    l2_tok *t = (l2_tok *)base;
    free(t->blob);
    free(t->piece);
    free(t->len);
    free(t->score);
    free(t->sorted);
    free(t);
}

static const tok_ops l2_ops = {
    .encode = l2_encode,
    .decode = l2_decode,
    .destroy = l2_destroy,
};

static int32_t rd_i32(const unsigned char *p)
{
    uint32_t v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t r;
    memcpy(&r, &v, 4);
    return r;
}

static float rd_f32(const unsigned char *p)
{
    int32_t v = rd_i32(p);
    float f;
    memcpy(&f, &v, 4);
    return f;
}

eng_status eng_tokenizer_load_llama2(const char *path, int vocab_size, eng_tokenizer **out,
                                     char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!path || !out)
        return tok_fail(ENG_ERR_INVALID_ARG, err, errlen, "tokenizer: no path or output given");
    if (vocab_size < L2_BYTE_BASE + 256)
        return tok_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "%s: vocab_size %d is too small (llama2.c tokenizers have byte tokens at "
                        "ids 3..258)",
                        path, vocab_size);
    char *file;
    size_t flen;
    eng_status st = tok_read_file(path, &file, &flen, err, errlen);
    if (st != ENG_OK) return st;
    const unsigned char *d = (const unsigned char *)file;
    l2_tok *t = calloc(1, sizeof *t);
    size_t V = (size_t)vocab_size;
    if (!t) {
        st = tok_fail(ENG_ERR_NOMEM, err, errlen, "%s: out of memory", path);
        goto free_file;
    }
    t->base.ops = &l2_ops;
    t->base.vocab_size = vocab_size;
    t->base.bos = 1;
    t->base.eos = 2;
    t->piece = calloc(V, sizeof *t->piece);
    t->len = calloc(V, sizeof *t->len);
    t->score = calloc(V, sizeof *t->score);
    t->sorted = calloc(V, sizeof *t->sorted);
    /* Strings are at most the file's size in total, plus a NUL each. */
    t->blob = malloc(flen + V);
    if (!t->piece || !t->len || !t->score || !t->sorted || !t->blob) {
        st = tok_fail(ENG_ERR_NOMEM, err, errlen, "%s: out of memory for %d tokens", path,
                      vocab_size);
        goto free_tok;
    }
    if (flen < 4) {
        st = tok_fail(ENG_ERR_FORMAT, err, errlen, "%s: truncated: %zu bytes, no header", path,
                      flen);
        goto free_tok;
    }
    int32_t max_token_length = rd_i32(d);
    if (flen > 0 && file[0] == '{') {
        st = tok_fail(ENG_ERR_FORMAT, err, errlen,
                      "%s: a JSON file, not a llama2.c tokenizer .bin: a tokenizer.json belongs in "
                      "the model's folder (--tokenizer is for llama2.c models)",
                      path);
        goto free_tok;
    }
    if (max_token_length <= 0 || (size_t)max_token_length > flen) {
        st = tok_fail(ENG_ERR_FORMAT, err, errlen, "%s: bad max_token_length %d in the header",
                      path, (int)max_token_length);
        goto free_tok;
    }
    size_t off = 4, boff = 0;
    for (size_t i = 0; i < V; i++) {
        if (flen - off < 8) {
            st = tok_fail(ENG_ERR_FORMAT, err, errlen,
                          "%s: truncated at token %zu of %zu (offset %zu of %zu bytes)", path, i, V,
                          off, flen);
            goto free_tok;
        }
        float score = rd_f32(d + off);
        int32_t len = rd_i32(d + off + 4);
        if (isnan(score)) {
            st = tok_fail(ENG_ERR_FORMAT, err, errlen, "%s: token %zu has a NaN score (offset %zu)",
                          path, i, off);
            goto free_tok;
        }
        if (len < 0 || len > max_token_length) {
            st = tok_fail(ENG_ERR_FORMAT, err, errlen,
                          "%s: token %zu has length %d, outside 0..max_token_length %d "
                          "(offset %zu)",
                          path, i, (int)len, (int)max_token_length, off + 4);
            goto free_tok;
        }
        off += 8;
        if (flen - off < (size_t)len) {
            st = tok_fail(ENG_ERR_FORMAT, err, errlen,
                          "%s: truncated inside token %zu of %zu (offset %zu of %zu bytes)", path,
                          i, V, off, flen);
            goto free_tok;
        }
        t->piece[i] = t->blob + boff;
        memcpy(t->piece[i], d + off, (size_t)len);
        t->piece[i][len] = '\0';
        boff += (size_t)len + 1;
        off += (size_t)len;
        t->len[i] = len;
        t->score[i] = score;
        t->sorted[i] = (l2_entry){t->piece[i], len, (int)i};
        if (len > t->max_len) t->max_len = len;
    }
    if (off != flen) {
        st = tok_fail(ENG_ERR_FORMAT, err, errlen,
                      "%s: %zu bytes left after %zu tokens: the file holds more tokens than the "
                      "model's vocab_size",
                      path, flen - off, V);
        goto free_tok;
    }
    for (int b = 0; b < 256; b++) {
        if (byte_token(t->piece[L2_BYTE_BASE + b], t->len[L2_BYTE_BASE + b]) != b) {
            st = tok_fail(ENG_ERR_FORMAT, err, errlen, "%s: token %d is '%.16s', expected <0x%02X>",
                          path, L2_BYTE_BASE + b, t->piece[L2_BYTE_BASE + b], b);
            goto free_tok;
        }
        t->bytes[b][0] = (char)b;
    }
    qsort(t->sorted, V, sizeof *t->sorted, entry_cmp);
    free(file);
    *out = &t->base;
    return ENG_OK;
free_tok:
    l2_destroy(&t->base);
free_file:
    free(file);
    return st;
}
