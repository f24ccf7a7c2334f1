/* SPDX-License-Identifier: MIT */
/* Private to the byte-level BPE tokenizer: its state, shared by loading (tok_hf_load.c) and
 * encoding (tok_bpe.c). */
#ifndef ENG_TOK_BPE_H
#define ENG_TOK_BPE_H

#include "tok_impl.h"

/* Open-addressing map from a byte string to an id; the strings are not owned. */
typedef struct {
    const char *s;
    int len;
    int id;
} bpe_str_slot;
typedef struct {
    bpe_str_slot *slot; /* [cap], id -1 when empty */
    size_t cap;         /* power of two */
} bpe_str_map;

/* Open-addressing map from a pair of ids to its merge rank and result. */
typedef struct {
    uint64_t key; /* left << 32 | right; UINT64_MAX when empty */
    int rank, merged;
} bpe_pair_slot;
typedef struct {
    bpe_pair_slot *slot; /* [cap] */
    size_t cap;
} bpe_pair_map;

typedef struct {
    char *s; /* the text as in tokenizer.json (owned) */
    int len;
    int id;
    int lstrip, rstrip, single_word;
} bpe_added;

typedef struct {
    eng_tokenizer base;
    char **key;   /* [vocab] byte-level token text (owned), NULL for ids without one */
    int *key_len; /* [vocab] */
    char **piece; /* [vocab] decoded raw bytes, NUL-terminated (owned), NULL without a token */
    bpe_str_map vocab;
    bpe_pair_map merges;
    bpe_added *added; /* [n_added], longest first */
    int n_added;
    unsigned char added_first[256]; /* 1 for the first byte of an added token */
    uint32_t byte_cp[256];          /* the character each byte is written as */
    int byte_id[256];               /* token of each byte's character, -1 if none */
    int use_regex;                  /* split with pattern before BPE */
    tok_pattern pattern;
    int add_prefix_space;
    int ignore_merges; /* a word that is a token is taken whole */
    int unk;           /* -1 when none: characters without a token are dropped */
} bpe_tok;

/* GPT-2's byte to code point mapping: printable Latin-1 bytes keep their code point, the others
 * take 256, 257, ... in byte order. */
void bpe_byte_map(uint32_t cp_of[256]);

int bpe_str_map_init(bpe_str_map *m, size_t n);
/* Returns 0, or 1 when s was already there (the first id stays). */
int bpe_str_map_put(bpe_str_map *m, const char *s, int len, int id);
int bpe_str_map_get(const bpe_str_map *m, const char *s, int len);
int bpe_pair_map_init(bpe_pair_map *m, size_t n);
void bpe_pair_map_put(bpe_pair_map *m, int left, int right, int rank, int merged);
const bpe_pair_slot *bpe_pair_map_get(const bpe_pair_map *m, int left, int right);

extern const tok_ops bpe_ops;

#endif
