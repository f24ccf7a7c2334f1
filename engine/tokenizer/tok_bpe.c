/* SPDX-License-Identifier: MIT */
/* Byte-level BPE (GPT-2, Llama-3, Qwen2): added tokens split out first, then the pre-tokenizer
 * regex, the byte to character mapping and ranked merges (lowest rank first, leftmost on ties). */
#include <stdlib.h>
#include <string.h>

#include "tok_bpe.h"

static int keeps_code_point(int b)
{
    return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

void bpe_byte_map(uint32_t cp_of[256])
{
    uint32_t next = 256;
    for (int b = 0; b < 256; b++)
        cp_of[b] = keeps_code_point(b) ? (uint32_t)b : next++;
}

static uint32_t hash_bytes(const char *s, int len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static size_t pow2_at_least(size_t n)
{
    size_t c = 16;
    while (c < 2 * n)
        c *= 2;
    return c;
}

int bpe_str_map_init(bpe_str_map *m, size_t n)
{
    m->cap = pow2_at_least(n);
    m->slot = malloc(m->cap * sizeof *m->slot);
    if (!m->slot) return -1;
    for (size_t i = 0; i < m->cap; i++)
        m->slot[i].id = -1;
    return 0;
}

int bpe_str_map_put(bpe_str_map *m, const char *s, int len, int id)
{
    size_t i = hash_bytes(s, len) & (m->cap - 1);
    for (; m->slot[i].id >= 0; i = (i + 1) & (m->cap - 1))
        if (m->slot[i].len == len && memcmp(m->slot[i].s, s, (size_t)len) == 0) return 1;
    m->slot[i] = (bpe_str_slot){s, len, id};
    return 0;
}

int bpe_str_map_get(const bpe_str_map *m, const char *s, int len)
{
    size_t i = hash_bytes(s, len) & (m->cap - 1);
    for (; m->slot[i].id >= 0; i = (i + 1) & (m->cap - 1))
        if (m->slot[i].len == len && memcmp(m->slot[i].s, s, (size_t)len) == 0)
            return m->slot[i].id;
    return -1;
}

static uint64_t pair_key(int l, int r)
{
    return (uint64_t)(uint32_t)l << 32 | (uint32_t)r;
}

static size_t pair_hash(uint64_t k)
{
    k ^= k >> 33; /* a 64-bit finaliser: mixes both ids into the low bits */
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (size_t)k;
}

int bpe_pair_map_init(bpe_pair_map *m, size_t n)
{
    m->cap = pow2_at_least(n);
    m->slot = malloc(m->cap * sizeof *m->slot);
    if (!m->slot) return -1;
    for (size_t i = 0; i < m->cap; i++)
        m->slot[i].key = UINT64_MAX;
    return 0;
}

void bpe_pair_map_put(bpe_pair_map *m, int l, int r, int rank, int merged)
{
    uint64_t k = pair_key(l, r);
    size_t i = pair_hash(k) & (m->cap - 1);
    while (m->slot[i].key != UINT64_MAX && m->slot[i].key != k)
        i = (i + 1) & (m->cap - 1);
    m->slot[i] = (bpe_pair_slot){k, rank, merged};
}

const bpe_pair_slot *bpe_pair_map_get(const bpe_pair_map *m, int l, int r)
{
    uint64_t k = pair_key(l, r);
    for (size_t i = pair_hash(k) & (m->cap - 1); m->slot[i].key != UINT64_MAX;
         i = (i + 1) & (m->cap - 1))
        if (m->slot[i].key == k) return &m->slot[i];
    return NULL;
}

static int bpe_pair(const void *ctx, int left, int right, int *merged, double *prio)
{
    const bpe_pair_slot *p = bpe_pair_map_get(&((const bpe_tok *)ctx)->merges, left, right);
    if (!p) return 0;
    *merged = p->merged;
    *prio = -(double)p->rank;
    return 1;
}

typedef struct {
    tok_sym *syms;      /* [n + 1] */
    tok_heap_ent *heap; /* [3 * (n + 1)] */
    char *key;          /* [2 * n + 2]: a word in byte-level characters */
} bpe_scratch;

static void encode_word(const bpe_tok *t, const unsigned char *w, size_t n, bpe_scratch *sc,
                        tok_out *out)
{
    if (t->ignore_merges) {
        int kl = 0;
        for (size_t i = 0; i < n; i++)
            kl += tok_utf8_put(t->byte_cp[w[i]], sc->key + kl);
        int id = bpe_str_map_get(&t->vocab, sc->key, kl);
        if (id >= 0) {
            tok_out_push(out, id);
            return;
        }
    }
    int ns = 0;
    for (size_t i = 0; i < n; i++) {
        int id = t->byte_id[w[i]] >= 0 ? t->byte_id[w[i]] : t->unk;
        if (id >= 0) sc->syms[ns++].id = id;
    }
    for (int i = 0; i < ns; i++) {
        sc->syms[i].prev = i - 1;
        sc->syms[i].next = i + 1 < ns ? i + 1 : -1;
    }
    if (ns == 0) return;
    tok_merge(sc->syms, ns, sc->heap, bpe_pair, t);
    for (int i = 0; i >= 0; i = sc->syms[i].next)
        tok_out_push(out, sc->syms[i].id);
}

/* Text between added tokens: pre-tokenize, then BPE each piece. */
static void encode_plain(const bpe_tok *t, const unsigned char *s, size_t n, bpe_scratch *sc,
                         tok_out *out)
{
    if (n == 0) return;
    for (size_t i = 0; i < n;) {
        size_t m = t->use_regex ? tok_pretok_match(t->pattern, s + i, n - i) : n - i;
        encode_word(t, s + i, m, sc, out);
        i += m;
    }
}

static int is_word_char(const unsigned char *s, size_t len)
{
    int a;
    uint32_t cp = tok_utf8_next(s, len, &a);
    return cp == '_' || tok_uni_is_letter(cp) || tok_uni_is_number(cp);
}

/* Start of the UTF-8 character that ends at s[end] (exclusive). */
static size_t char_before(const unsigned char *s, size_t end)
{
    size_t i = end - 1;
    while (i > 0 && (s[i] & 0xC0) == 0x80 && end - i < 4)
        i--;
    return i;
}

/* The leftmost, then longest, added token in s[from..n): its span widened by lstrip/rstrip. */
static const bpe_added *find_added(const bpe_tok *t, const unsigned char *s, size_t n, size_t from,
                                   size_t *start, size_t *end)
{
    for (size_t i = from; i < n; i++) {
        if (!t->added_first[s[i]]) continue;
        for (int k = 0; k < t->n_added; k++) { /* longest first */
            const bpe_added *a = &t->added[k];
            if ((size_t)a->len > n - i || memcmp(s + i, a->s, (size_t)a->len) != 0) continue;
            size_t b = i, e = i + (size_t)a->len;
            if (a->single_word &&
                ((b > 0 && is_word_char(s + char_before(s, b), n - char_before(s, b))) ||
                 (e < n && is_word_char(s + e, n - e))))
                continue;
            int adv;
            if (a->lstrip)
                while (b > from && tok_uni_is_space(tok_utf8_next(s + char_before(s, b),
                                                                  n - char_before(s, b), &adv)))
                    b = char_before(s, b);
            if (a->rstrip)
                while (e < n && tok_uni_is_space(tok_utf8_next(s + e, n - e, &adv)))
                    e += (size_t)adv;
            *start = b;
            *end = e;
            return a;
        }
    }
    return NULL;
}

static eng_status bpe_encode(const eng_tokenizer *base, const char *text, tok_out *out)
{
    const bpe_tok *t = (const bpe_tok *)base;
    size_t n = strlen(text);
    /* One more byte for a prefix space. */
    bpe_scratch sc = {
        .syms = malloc((n + 1) * sizeof *sc.syms),
        .heap = malloc(3 * (n + 1) * sizeof *sc.heap),
        .key = malloc(2 * n + 2),
    };
    char *pbuf = t->add_prefix_space ? malloc(n + 2) : NULL;
    eng_status st = ENG_OK;
    if (!sc.syms || !sc.heap || !sc.key || (t->add_prefix_space && !pbuf)) {
        st = ENG_ERR_NOMEM;
        goto free_scratch;
    }
    const unsigned char *s = (const unsigned char *)text;
    size_t pos = 0;
    while (pos < n) {
        size_t b = n, e = n;
        const bpe_added *a = find_added(t, s, n, pos, &b, &e);
        const unsigned char *seg = s + pos;
        size_t len = b - pos;
        if (pbuf && len > 0 && seg[0] != ' ') {
            pbuf[0] = ' ';
            memcpy(pbuf + 1, seg, len);
            seg = (const unsigned char *)pbuf;
            len++;
        }
        encode_plain(t, seg, len, &sc, out);
        if (!a) break;
        tok_out_push(out, a->id);
        pos = e;
    }
free_scratch:
    free(pbuf);
    free(sc.key);
    free(sc.heap);
    free(sc.syms);
    return st;
}

static const char *bpe_decode(const eng_tokenizer *base, int prev_id, int id)
{
    (void)prev_id;
    const char *p = ((const bpe_tok *)base)->piece[id];
    return p ? p : ""; /* an id without a token */
}

static void bpe_destroy(eng_tokenizer *base)
{
    bpe_tok *t = (bpe_tok *)base;
    for (int i = 0; t->key && i < t->base.vocab_size; i++)
        free(t->key[i]);
    for (int i = 0; t->piece && i < t->base.vocab_size; i++)
        free(t->piece[i]);
    for (int i = 0; i < t->n_added; i++)
        free(t->added[i].s);
    free(t->added);
    free(t->key);
    free(t->key_len);
    free(t->piece);
    free(t->vocab.slot);
    free(t->merges.slot);
    free(t);
}

const tok_ops bpe_ops = {
    .encode = bpe_encode,
    .decode = bpe_decode,
    .destroy = bpe_destroy,
};
