/* SPDX-License-Identifier: MIT */
/* libFuzzer target: byte-level BPE encoding (engine/tokenizer/tok_bpe.c, tok_pretok.c,
 * tok_merge.c) of untrusted text, the prompt of every request. Eight small tokenizer.json files
 * are written and loaded at start-up: the 256 byte characters, a few dozen merges and three
 * added tokens, under the GPT-2 regex, the Llama-3 and Qwen2 Split regexes or no regex, each with
 * and without ignore_merges. Input: one byte that picks the tokenizer, then the text (up to a
 * NUL). Checks besides the sanitizers: every pre-tokenizer match is 1..len bytes; the count asked
 * for first is the count written into a buffer of exactly that size (a write past it is an ASan
 * report) and a buffer one short is refused; ids are in the vocabulary; and, the vocabulary being
 * complete and nothing stripped, decoding the ids gives the text back byte for byte. */
#include "tok_impl.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define N_TOK 8

static eng_tokenizer *toks[N_TOK];

static void die(const char *what, const char *err)
{
    fprintf(stderr, "fuzz_tok_encode: set-up failed: %s %s\n", what, err ? err : "");
    abort();
}

/* GPT-2's byte characters, UTF-8 (written here independently of the library). */
static void byte_char(int b, char *out)
{
    int keep = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE, cp = b;
    if (!keep) {
        cp = 256;
        for (int i = 0; i < b; i++)
            cp += !((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE);
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

static void bytes_to_chars(const char *s, char *out)
{
    out[0] = 0;
    for (; *s; s++)
        byte_char((unsigned char)*s, out + strlen(out));
}

/* Merges in raw bytes, "left|right"; each merged text becomes a token. */
static const char *const merges[] = {
    " |t",    "h|e",  " t|he",     "i|n",           " |a",       "e|r",   "o|u",   " |s",
    "a|n",    " |w",  "r|e",       "o|n",           "\n|\n",     " | ",   "  |  ", "1|2",
    "12|3",   "0|0",  "\xc3|\xa9", "\xe2\x80|\x99", "\xe2|\x80", "'|s",   "l|l",   "ll|o",
    "he|llo", " |he", " he|llo",   "!|!",           "<|<",       "\t|\t", "\r|\n",
};

static const char *const patterns[] = {
    NULL, /* GPT-2 through ByteLevel use_regex */
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL, /* no regex: the whole text is one word */
};

static char *make_json(int k)
{
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject();
    cJSON *vocab = cJSON_CreateObject(), *ml = cJSON_CreateArray(), *added = cJSON_CreateArray();
    char a[32], b[32], ab[64];
    for (int i = 0; i < 256; i++) {
        byte_char(i, a);
        cJSON_AddNumberToObject(vocab, a, i);
    }
    int next = 256;
    for (size_t i = 0; i < sizeof(merges) / sizeof(merges[0]); i++) {
        char l[16], r[16];
        const char *bar = strchr(merges[i], '|');
        snprintf(l, sizeof(l), "%.*s", (int)(bar - merges[i]), merges[i]);
        snprintf(r, sizeof(r), "%s", bar + 1);
        bytes_to_chars(l, a);
        bytes_to_chars(r, b);
        snprintf(ab, sizeof(ab), "%s%s", a, b);
        if (!cJSON_GetObjectItemCaseSensitive(vocab, ab))
            cJSON_AddNumberToObject(vocab, ab, next++);
        char m[80];
        snprintf(m, sizeof(m), "%s %s", a, b);
        cJSON_AddItemToArray(ml, cJSON_CreateString(m));
    }
    static const char *const specials[] = {"<|endoftext|>", "<|im_start|>", "<w>"};
    for (int i = 0; i < 3; i++) {
        cJSON *t = cJSON_CreateObject();
        cJSON_AddNumberToObject(t, "id", next + 2 + i); /* a gap: ids without a token */
        cJSON_AddStringToObject(t, "content", specials[i]);
        cJSON_AddBoolToObject(t, "special", 1);
        cJSON_AddBoolToObject(t, "single_word", i == 2);
        cJSON_AddItemToArray(added, t);
    }
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddBoolToObject(model, "ignore_merges", k >= 4);
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", ml);
    cJSON_AddItemToObject(root, "model", model);
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON *bl = cJSON_CreateObject();
    cJSON_AddStringToObject(bl, "type", "ByteLevel");
    cJSON_AddBoolToObject(bl, "add_prefix_space", 0);
    cJSON_AddBoolToObject(bl, "use_regex", k % 4 == 0);
    if (patterns[k % 4]) {
        cJSON *seq = cJSON_CreateObject(), *list = cJSON_CreateArray(), *sp = cJSON_CreateObject();
        cJSON *pat = cJSON_CreateObject();
        cJSON_AddStringToObject(pat, "Regex", patterns[k % 4]);
        cJSON_AddStringToObject(sp, "type", "Split");
        cJSON_AddItemToObject(sp, "pattern", pat);
        cJSON_AddStringToObject(sp, "behavior", "Isolated");
        cJSON_AddItemToArray(list, sp);
        cJSON_AddItemToArray(list, bl);
        cJSON_AddStringToObject(seq, "type", "Sequence");
        cJSON_AddItemToObject(seq, "pretokenizers", list);
        cJSON_AddItemToObject(root, "pre_tokenizer", seq);
    } else {
        cJSON_AddItemToObject(root, "pre_tokenizer", bl);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s) die("cJSON_Print", NULL);
    return s;
}

static void setup(void)
{
    char dir[] = "/tmp/fuzz_tok_encode.XXXXXX", p[64], err[512];
    if (!mkdtemp(dir)) die("mkdtemp", dir);
    snprintf(p, sizeof(p), "%s/tokenizer.json", dir);
    for (int k = 0; k < N_TOK; k++) {
        char *j = make_json(k);
        FILE *f = fopen(p, "w");
        if (!f || fputs(j, f) < 0 || fclose(f) != 0) die("write", p);
        free(j);
        if (eng_tokenizer_load_hf(p, &toks[k], err, sizeof(err)) != ENG_OK) die("load", err);
    }
    unlink(p);
    rmdir(dir);
}

static void check_pretok(const unsigned char *s, size_t n)
{
    static const tok_pattern pats[] = {TOK_PAT_GPT2, TOK_PAT_LLAMA3, TOK_PAT_QWEN2};
    for (size_t k = 0; k < sizeof(pats) / sizeof(pats[0]); k++)
        for (size_t i = 0; i < n;) {
            size_t m = tok_pretok_match(pats[k], s + i, n - i);
            if (m < 1 || m > n - i) abort();
            i += m;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!toks[0]) setup();
    if (size < 1) return 0;
    const eng_tokenizer *t = toks[data[0] % N_TOK];
    char *text = malloc(size);
    if (!text) abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    size_t len = strlen(text);
    check_pretok((const unsigned char *)text, len);
    int V = eng_tokenizer_vocab_size(t), n = -1, m = -1;
    eng_status st = eng_tokenizer_encode(t, text, 0, NULL, 0, &n);
    if (n < 0 || (st == ENG_OK) != (n == 0) || (len > 0) != (n > 0)) abort();
    int *ids = malloc((size_t)(n ? n : 1) * sizeof(int));
    if (!ids) abort();
    if (n > 1 &&
        (eng_tokenizer_encode(t, text, 0, ids, n - 1, &m) != ENG_ERR_INVALID_ARG || m != n))
        abort();
    if (eng_tokenizer_encode(t, text, 0, ids, n, &m) != ENG_OK || m != n) abort();
    /* decode(encode(text)) == text */
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) abort();
        const char *p = eng_tokenizer_decode(t, i ? ids[i - 1] : -1, ids[i]);
        size_t pl = strlen(p);
        if (pl == 0 || pl > len - at || memcmp(text + at, p, pl) != 0) abort();
        at += pl;
    }
    if (at != len) abort();
    free(ids);
    free(text);
    return 0;
}
