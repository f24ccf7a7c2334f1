/* SPDX-License-Identifier: MIT */
/* The pre-tokenizer regexes of GPT-2, Llama-3 and Qwen2, matched by hand with the semantics of a
 * backtracking engine (ordered alternatives, greedy quantifiers, the (?!\S) look-ahead).
 *
 * Limits: \p{L} and \p{N} follow the Unicode 14 general categories (tok_unicode_tab.h); the
 * case-insensitive contractions fold ASCII letters only. */
#include <string.h>

#include "tok_impl.h"

enum { C_L = 1, C_N = 2, C_S = 4, C_O = 8, C_NL = 16 }; /* C_NL: \r or \n (also C_S) */

typedef struct {
    const unsigned char *s;
    size_t len;
} text;

static unsigned cls_at(text t, size_t i, size_t *adv)
{
    int a;
    uint32_t cp = tok_utf8_next(t.s + i, t.len - i, &a);
    *adv = (size_t)a;
    if (cp == '\r' || cp == '\n') return C_S | C_NL;
    if (tok_uni_is_letter(cp)) return C_L;
    if (tok_uni_is_number(cp)) return C_N;
    if (tok_uni_is_space(cp)) return C_S;
    return C_O;
}

/* End of the run of characters in class mask starting at i; *last gets the start of the run's
 * last character (i when the run is empty). */
static size_t span(text t, size_t i, unsigned mask, size_t *last)
{
    size_t adv;
    if (last) *last = i;
    while (i < t.len && (cls_at(t, i, &adv) & mask)) {
        if (last) *last = i;
        i += adv;
    }
    return i;
}

/* 's 't 're 've 'm 'll 'd right after an apostrophe at s[0]; returns the match length or 0. */
static size_t contraction(text t, int fold)
{
    if (t.len < 2 || t.s[0] != '\'') return 0;
    unsigned char a = t.s[1], b = t.len > 2 ? t.s[2] : 0;
    if (fold) {
        a = (a >= 'A' && a <= 'Z') ? (unsigned char)(a | 0x20) : a;
        b = (b >= 'A' && b <= 'Z') ? (unsigned char)(b | 0x20) : b;
    }
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
    return 0;
}

/* \s+(?!\S) then \s+, at a whitespace character. */
static size_t trailing_space(text t)
{
    size_t last, end = span(t, 0, C_S, &last);
    if (end == t.len || last == 0) return end;
    return last; /* leave the last space to the word after it */
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t match_gpt2(text t)
{
    size_t n = contraction(t, 0);
    if (n) return n;
    size_t a0, a1 = 0;
    unsigned c0 = cls_at(t, 0, &a0), c1 = 0;
    if (t.s[0] == ' ' && t.len > 1) c1 = cls_at(t, 1, &a1);
    static const unsigned classes[] = {C_L, C_N, C_O};
    for (int k = 0; k < 3; k++) {
        if (c0 & classes[k]) return span(t, 0, classes[k], NULL);
        if (c1 & classes[k]) return span(t, 1, classes[k], NULL);
    }
    if (c0 & C_S) return trailing_space(t);
    return a0;
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,ND}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 * \s*[\r\n]+|\s+(?!\S)|\s+  (ND 3 for Llama-3, 1 for Qwen2) */
static size_t match_llama3(text t, int max_digits)
{
    size_t n = contraction(t, 1);
    if (n) return n;
    size_t a0, a1 = 0;
    unsigned c0 = cls_at(t, 0, &a0), c1 = 0;
    if (a0 < t.len) c1 = cls_at(t, a0, &a1);
    if (c0 & C_L) return span(t, 0, C_L, NULL);
    if (!(c0 & (C_NL | C_L | C_N)) && (c1 & C_L)) return span(t, a0, C_L, NULL);
    if (c0 & C_N) {
        size_t i = 0, adv;
        for (int k = 0; k < max_digits && i < t.len && (cls_at(t, i, &adv) & C_N); k++)
            i += adv;
        return i;
    }
    size_t p = (t.s[0] == ' ' && (c1 & C_O)) ? 1 : 0;
    if (p == 1 || (c0 & C_O)) {
        size_t e = span(t, p, C_O, NULL);
        return span(t, e, C_NL, NULL);
    }
    /* c0 is whitespace from here on. */
    size_t end = span(t, 0, C_S, NULL), last_nl = 0, adv;
    int has_nl = 0;
    for (size_t i = 0; i < end; i += adv)
        if (cls_at(t, i, &adv) & C_NL) last_nl = i, has_nl = 1;
    if (has_nl) return last_nl + 1;
    return trailing_space(t);
}

size_t tok_pretok_match(tok_pattern p, const unsigned char *s, size_t len)
{
    text t = {s, len};
    switch (p) {
    case TOK_PAT_GPT2:
        return match_gpt2(t);
    case TOK_PAT_LLAMA3:
        return match_llama3(t, 3);
    case TOK_PAT_QWEN2:
        return match_llama3(t, 1);
    }
    return 1;
}

static const struct {
    tok_pattern p;
    const char *re;
} known[] = {
    {TOK_PAT_GPT2,
     "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"},
    {TOK_PAT_LLAMA3, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
                     "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {TOK_PAT_QWEN2, "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
                    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

int tok_pretok_lookup(const char *regex)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(regex, known[i].re) == 0) return (int)known[i].p;
    return -1;
}
