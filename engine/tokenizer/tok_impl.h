/* SPDX-License-Identifier: MIT */
/* Private to the tokenizers: the handle, the per-format operations and shared helpers. */
#ifndef ENG_TOK_IMPL_H
#define ENG_TOK_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer.h"

/* Output cursor of encode: writes up to cap ids and counts all of them. */
typedef struct tok_out {
    int *ids;
    int cap;
    int n;
} tok_out;

static inline void tok_out_push(tok_out *o, int id)
{
    if (o->n < o->cap) o->ids[o->n] = id;
    o->n++;
}

/* Per-format operations (a static const table in each format's file). */
typedef struct tok_ops {
    /* Appends the ids of text (no BOS) through tok_out; returns ENG_OK or ENG_ERR_NOMEM. */
    eng_status (*encode)(const eng_tokenizer *t, const char *text, tok_out *out);
    const char *(*decode)(const eng_tokenizer *t, int prev_id, int id);
    void (*destroy)(eng_tokenizer *t);
} tok_ops;

struct eng_tokenizer {
    const tok_ops *ops;
    int vocab_size;
    int bos, eos; /* -1 when none */
};

/* printf into err (if not NULL) and return st. */
eng_status tok_fail(eng_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Reads a whole file into a malloc'd buffer with a NUL after it. */
eng_status tok_read_file(const char *path, char **buf, size_t *len, char *err, size_t errlen);

/* Greedy pair merging shared by both formats. The symbols are a linked list; pair_fn says
 * whether (left,right) merges, into what and with which priority (higher first; among equal
 * priorities the leftmost pair). */
typedef struct tok_sym {
    int id;         /* -1 once merged into its left neighbour */
    int prev, next; /* indexes, -1 at the ends */
} tok_sym;
typedef int (*tok_pair_fn)(const void *ctx, int left, int right, int *merged, double *prio);
typedef struct tok_heap_ent {
    double prio;
    int pos, rpos; /* symbol indexes of the pair */
    int left, right, merged;
} tok_heap_ent;
/* syms[0..n) must be linked in order; heap holds room for 3*n entries. Symbol 0 stays the head
 * of the list. */
void tok_merge(tok_sym *syms, int n, tok_heap_ent *heap, tok_pair_fn fn, const void *ctx);

/* UTF-8: decodes one code point at s (len bytes left). Invalid or truncated sequences give
 * U+FFFD with *adv 1 (never classified as letter or number). */
uint32_t tok_utf8_next(const unsigned char *s, size_t len, int *adv);
int tok_utf8_put(uint32_t cp, char *dst); /* returns the byte count (1..4) */
int tok_uni_is_letter(uint32_t cp);
int tok_uni_is_number(uint32_t cp);
int tok_uni_is_space(uint32_t cp);

/* Pre-tokenizer regexes implemented by hand (see tok_pretok.c). */
typedef enum {
    TOK_PAT_GPT2,   /* ByteLevel use_regex */
    TOK_PAT_LLAMA3, /* Split, digits in groups of up to 3 */
    TOK_PAT_QWEN2,  /* Split, single digits */
} tok_pattern;
/* Length in bytes of the match that starts at s[0] (len > 0); always >= 1. */
size_t tok_pretok_match(tok_pattern p, const unsigned char *s, size_t len);
/* Which pattern a Split regex string is, or -1. */
int tok_pretok_lookup(const char *regex);

#endif
