/* SPDX-License-Identifier: MIT */
/* Tokenizer tests: llama2.c tok512.bin (README facts and an independent naive encoder), every
 * tokenizer_samples entry of the Hugging Face fixtures, hand-made tokenizer.json files for the
 * pre-tokenizer patterns and added tokens, and bad inputs with their error lines.
 * Needs ../shared (tests/check.h's test_shared_dir(), or argv[1]) for the real files; without it
 * those tests are skipped and the program exits 77 after running the others. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../check.h"
#include <cJSON.h>

#include "tokenizer.h"

static const char *shared_dir;
static char tmp_dir[] = "/tmp/test_eng_tokenizer.XXXXXX";

static int have_shared(void)
{
    char p[4096];
    struct stat sb;
    if ((size_t)snprintf(p, sizeof p, "%s/models/tok512.bin", shared_dir) >= sizeof p) return 0;
    return stat(p, &sb) == 0;
}

#define NEED_SHARED()                                                                              \
    do {                                                                                           \
        if (!have_shared()) {                                                                      \
            printf("SKIP: %s/models/tok512.bin absent\n", shared_dir);                             \
            return;                                                                                \
        }                                                                                          \
    } while (0)

static char *path_in(const char *dir, const char *name)
{
    static char p[4][4096];
    static int k;
    k = (k + 1) % 4;
    if ((size_t)snprintf(p[k], sizeof p[k], "%s/%s", dir, name) >= sizeof p[k]) {
        TEST_FAIL("path too long: %s/%s", dir, name);
        exit(1);
    }
    return p[k];
}

static void write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    REQUIRE(f != NULL);
    CHECK(fwrite(data, 1, n, f) == n);
    CHECK(fclose(f) == 0);
}

static void *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        TEST_FAIL("cannot open %s", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    if (!b) exit(1);
    CHECK((fread(b, 1, (size_t)sz, f)) == ((size_t)sz));
    b[sz] = '\0';
    fclose(f);
    *n = (size_t)sz;
    return b;
}

/* Concatenated pieces of ids[from..n), each decoded after the id before it. */
static char *decode_all(const eng_tokenizer *t, const int *ids, int from, int n)
{
    size_t cap = 64, len = 0;
    char *s = malloc(cap);
    if (!s) exit(1);
    for (int i = from; i < n; i++) {
        const char *p = eng_tokenizer_decode(t, i > 0 ? ids[i - 1] : -1, ids[i]);
        size_t pl = strlen(p);
        while (len + pl + 1 > cap)
            s = realloc(s, cap *= 2);
        if (!s) exit(1);
        memcpy(s + len, p, pl);
        len += pl;
    }
    s[len] = '\0';
    return s;
}

/* ------------------------------------------------------------------ llama2.c tok512 */

static eng_tokenizer *load_tok512(void)
{
    char err[512] = "";
    eng_tokenizer *t = NULL;
    eng_status st = eng_tokenizer_load_llama2(path_in(shared_dir, "models/tok512.bin"), 512, &t,
                                              err, sizeof err);
    if (st != ENG_OK) {
        TEST_FAIL("load tok512: %s", err);
        exit(1);
    }
    return t;
}

static void test_l2_basics(void)
{
    NEED_SHARED();
    eng_tokenizer *t = load_tok512();
    CHECK(eng_tokenizer_vocab_size(t) == 512);
    CHECK(eng_tokenizer_bos(t) == 1);
    CHECK(eng_tokenizer_eos(t) == 2);
    int ids[8], n = -1;
    /* Empty text: no dummy prefix, only BOS. */
    CHECK(eng_tokenizer_encode(t, "", 1, ids, 8, &n) == ENG_OK);
    CHECK(n == 1);
    CHECK(ids[0] == 1);
    CHECK(eng_tokenizer_encode(t, "", 0, ids, 8, &n) == ENG_OK);
    CHECK(n == 0);
    /* Byte tokens decode to their byte; ids out of range to "". */
    CHECK(strcmp(eng_tokenizer_decode(t, -1, 3 + 'A'), "A") == 0);
    CHECK(strcmp(eng_tokenizer_decode(t, -1, 3 + 0x0A), "\n") == 0);
    CHECK(strcmp(eng_tokenizer_decode(t, -1, 512), "") == 0);
    CHECK(strcmp(eng_tokenizer_decode(t, -1, -5), "") == 0);
    /* Too small an output: the count is still given. */
    int need = 0;
    CHECK(eng_tokenizer_encode(t, "Once upon a time", 1, NULL, 0, &need) == ENG_ERR_INVALID_ARG);
    CHECK(need > 2);
    CHECK(eng_tokenizer_encode(t, "Once upon a time", 1, ids, 2, &n) == ENG_ERR_INVALID_ARG);
    CHECK(n == need);
    CHECK(ids[0] == 1);
    CHECK(eng_tokenizer_encode(NULL, "x", 1, ids, 8, &n) == ENG_ERR_INVALID_ARG);
    CHECK(eng_tokenizer_encode(t, NULL, 1, ids, 8, &n) == ENG_ERR_INVALID_ARG);
    eng_tokenizer_free(t);
}

/* The README's greedy ids decode to the start of its greedy text, and that text encodes back
 * to the same ids. */
static void test_l2_readme(void)
{
    NEED_SHARED();
    static const int greedy[33] = {1,   403, 407, 261, 378, 432, 383, 286, 261, 376, 298,
                                   315, 421, 395, 317, 426, 338, 401, 396, 267, 337, 410,
                                   408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385};
    static const char story[] = "Once upon a time, there was a little girl named Lily. She loved "
                                "to play outside in the park. One day, she saw a big, red ball. "
                                "She wanted to play with it, but i";
    eng_tokenizer *t = load_tok512();
    char *text = decode_all(t, greedy, 1, 33);
    CHECK(strlen(text) > 80);
    CHECK(memcmp(text, story, strlen(text)) == 0);
    int ids[64], n;
    CHECK(eng_tokenizer_encode(t, text, 1, ids, 64, &n) == ENG_OK);
    CHECK(n == 33);
    CHECK(memcmp(ids, greedy, sizeof greedy) == 0);
    free(text);
    eng_tokenizer_free(t);
}

/* An independent llama2.c-style encoder over the raw file: linear lookups and a full rescan of
 * all pairs after every merge. */
typedef struct {
    int n;
    char **s;
    int *len;
    float *score;
} naive_vocab;

static naive_vocab naive_load(void)
{
    size_t n;
    unsigned char *d = read_all(path_in(shared_dir, "models/tok512.bin"), &n);
    naive_vocab v = {512, calloc(512, sizeof(char *)), calloc(512, sizeof(int)),
                     calloc(512, sizeof(float))};
    size_t off = 4;
    for (int i = 0; i < 512; i++) {
        int32_t len;
        memcpy(&v.score[i], d + off, 4);
        memcpy(&len, d + off + 4, 4);
        off += 8;
        v.s[i] = malloc((size_t)len + 1);
        memcpy(v.s[i], d + off, (size_t)len);
        v.s[i][len] = '\0';
        v.len[i] = len;
        off += (size_t)len;
    }
    CHECK(off == n);
    free(d);
    return v;
}

static int naive_find(const naive_vocab *v, const char *s, int len)
{
    for (int i = 0; i < v->n; i++)
        if (v->len[i] == len && memcmp(v->s[i], s, (size_t)len) == 0) return i;
    return -1;
}

static int naive_encode(const naive_vocab *v, const char *text, int *ids)
{
    int n = 0;
    if (!*text) return 0;
    ids[n++] = naive_find(v, " ", 1);
    size_t tl = strlen(text);
    for (size_t i = 0; i < tl;) {
        size_t k = 1;
        while (i + k < tl && k < 4 && ((unsigned char)text[i + k] & 0xC0) == 0x80)
            k++;
        int id = naive_find(v, text + i, (int)k);
        if (id >= 0)
            ids[n++] = id;
        else
            for (size_t j = 0; j < k; j++)
                ids[n++] = 3 + (unsigned char)text[i + j];
        i += k;
    }
    char buf[256];
    for (;;) {
        float best = -1e10f;
        int at = -1, best_id = -1;
        for (int i = 0; i + 1 < n; i++) {
            int la = v->len[ids[i]], lb = v->len[ids[i + 1]];
            memcpy(buf, v->s[ids[i]], (size_t)la);
            memcpy(buf + la, v->s[ids[i + 1]], (size_t)lb);
            int id = naive_find(v, buf, la + lb);
            if (id >= 0 && v->score[id] > best) best = v->score[id], at = i, best_id = id;
        }
        if (at < 0) break;
        ids[at] = best_id;
        memmove(ids + at + 1, ids + at + 2, (size_t)(n - at - 2) * sizeof(int));
        n--;
    }
    return n;
}

static void test_l2_vs_naive(void)
{
    NEED_SHARED();
    eng_tokenizer *t = load_tok512();
    naive_vocab v = naive_load();
    static const char *const alphabet[] = {"a",  "e", "t",    "h",    "o",  "n",   " ",
                                           " ",  ",", ".",    "\n",   "Th", "ing", "é",
                                           "漢", "😀", "\x80", "\xff", "'"};
    uint32_t seed = 12345;
    char text[256];
    int ours[300], ref[300];
    for (int round = 0; round < 300; round++) {
        size_t len = 0;
        int k = (int)((seed >> 8) % 40);
        for (int i = 0; i < k; i++) {
            seed = seed * 1103515245u + 12345u;
            const char *piece = alphabet[(seed >> 16) % (sizeof alphabet / sizeof *alphabet)];
            memcpy(text + len, piece, strlen(piece));
            len += strlen(piece);
        }
        text[len] = '\0';
        seed = seed * 1103515245u + 12345u;
        int n;
        CHECK(eng_tokenizer_encode(t, text, 0, ours, 300, &n) == ENG_OK);
        int rn = naive_encode(&v, text, ref);
        CHECK(n == rn);
        CHECK(memcmp(ours, ref, (size_t)n * sizeof(int)) == 0);
        /* Round trip through decode (with BOS first so the dummy space is dropped). */
        int wb[301];
        CHECK(eng_tokenizer_encode(t, text, 1, wb, 301, &n) == ENG_OK);
        char *back = decode_all(t, wb, 1, n);
        CHECK(strcmp(back, text) == 0);
        free(back);
    }
    /* Byte fallback: a character outside the vocab gives 3 + each byte. */
    int ids[8], n;
    CHECK(eng_tokenizer_encode(t, "漢", 1, ids, 8, &n) == ENG_OK);
    CHECK(n == 5);
    CHECK(ids[2] == (3 + 0xE6));
    CHECK(ids[3] == (3 + 0xBC));
    CHECK(ids[4] == (3 + 0xA2));
    for (int i = 0; i < 512; i++)
        free(v.s[i]);
    free(v.s);
    free(v.len);
    free(v.score);
    eng_tokenizer_free(t);
}

static void expect_l2_error(const char *path, int vocab, eng_status want, const char *needle)
{
    char err[512] = "";
    eng_tokenizer *t = (eng_tokenizer *)&err; /* must be reset to NULL */
    eng_status st = eng_tokenizer_load_llama2(path, vocab, &t, err, sizeof err);
    printf("  -> %s\n", err);
    CHECK(st == want);
    CHECK(t == NULL);
    CHECK_STR(err, path);
    CHECK_STR(err, needle);
    CHECK(strchr(err, '\n') == NULL);
}

static void test_l2_bad(void)
{
    NEED_SHARED();
    size_t n;
    unsigned char *d = read_all(path_in(shared_dir, "models/tok512.bin"), &n);
    char *p = path_in(tmp_dir, "tok_truncated.bin");
    write_file(p, d, 3000);
    expect_l2_error(p, 512, ENG_ERR_FORMAT, "truncated");
    write_file(p, d, 2);
    expect_l2_error(p, 512, ENG_ERR_FORMAT, "no header");
    /* The whole file read as 511 tokens leaves the last one over. */
    write_file(p, d, n);
    expect_l2_error(p, 511, ENG_ERR_FORMAT, "more tokens than the model's vocab_size");
    expect_l2_error(p, 100, ENG_ERR_INVALID_ARG, "too small");
    /* A length field past max_token_length. */
    int32_t bad = 100000;
    memcpy(d + 4 + 4, &bad, 4);
    write_file(p, d, n);
    expect_l2_error(p, 512, ENG_ERR_FORMAT, "token 0 has length 100000");
    expect_l2_error(path_in(tmp_dir, "no_such.bin"), 512, ENG_ERR_IO, "No such file");
    /* Byte token 3 (<0x00>) made "a\nbcde": quoted escaped, one line (found by fuzzing). */
    free(d);
    d = read_all(path_in(shared_dir, "models/tok512.bin"), &n);
    size_t off = 4;
    for (int i = 0; i < 3; i++) {
        int32_t len;
        memcpy(&len, d + off + 4, 4);
        off += 8 + (size_t)len;
    }
    REQUIRE(memcmp(d + off + 8, "<0x00>", 6) == 0);
    memcpy(d + off + 8, "a\nbcde", 6);
    write_file(p, d, n);
    expect_l2_error(p, 512, ENG_ERR_FORMAT, "token 3 is 'a\\x0abcde'");
    free(d);
}

/* ------------------------------------------------------------------ Hugging Face fixtures */

static void check_fixture(const char *name, int bos, int eos)
{
    char dir[4096], err[512] = "";
    if ((size_t)snprintf(dir, sizeof dir, "%s/fixtures/hf/%s", shared_dir, name) >= sizeof dir)
        TEST_FAIL_RETURN("path too long");
    size_t n;
    char *ref = read_all(path_in(dir, "reference.json"), &n);
    cJSON *root = cJSON_Parse(ref);
    REQUIRE(root != NULL);
    eng_tokenizer *t = NULL;
    if (eng_tokenizer_load_hf(path_in(dir, "tokenizer.json"), &t, err, sizeof err) != ENG_OK)
        TEST_FAIL_RETURN("%s: %s", name, err);
    CHECK(eng_tokenizer_vocab_size(t) == 1024);
    CHECK(eng_tokenizer_bos(t) == bos);
    CHECK(eng_tokenizer_eos(t) == eos);
    const cJSON *samples = cJSON_GetObjectItem(root, "tokenizer_samples"), *s;
    CHECK(cJSON_GetArraySize(samples) > 0);
    int checked = 0;
    cJSON_ArrayForEach(s, samples)
    {
        const char *text = cJSON_GetObjectItem(s, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(s, "ids");
        int ids[512], got;
        CHECK(eng_tokenizer_encode(t, text, 0, ids, 512, &got) == ENG_OK);
        if (got != cJSON_GetArraySize(want))
            TEST_FAIL_RETURN("%s: \"%s\": %d ids, want %d", name, text, got,
                             cJSON_GetArraySize(want));
        for (int i = 0; i < got; i++)
            if (ids[i] != cJSON_GetArrayItem(want, i)->valueint)
                TEST_FAIL_RETURN("%s: \"%s\": id %d is %d, want %d", name, text, i, ids[i],
                                 cJSON_GetArrayItem(want, i)->valueint);
        char *back = decode_all(t, ids, 0, got);
        CHECK(strcmp(back, text) == 0);
        free(back);
        checked++;
    }
    printf("  %s: %d samples exact\n", name, checked);
    eng_tokenizer_free(t);
    cJSON_Delete(root);
    free(ref);
}

static void test_hf_fixtures(void)
{
    NEED_SHARED();
    check_fixture("tiny-llama-f32", 1, 2);
    check_fixture("tiny-mistral-f16", 1, 2);
    check_fixture("tiny-qwen3-bf16", -1, -1); /* its configs give no bos/eos */
}

/* ------------------------------------------------------------------ hand-made tokenizer.json */

/* GPT-2's byte characters, written independently of the library. */
static void byte_char(int b, char *out)
{
    int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    int cp = b;
    if (!printable) {
        int k = 0;
        for (int i = 0; i < b; i++)
            k += !((i >= '!' && i <= '~') || (i >= 0xA1 && i <= 0xAC) || (i >= 0xAE));
        cp = 256 + k;
    }
    if (cp < 0x80) {
        out[0] = (char)cp, out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6)), out[1] = (char)(0x80 | (cp & 0x3F)), out[2] = 0;
    }
}

/* A tokenizer.json: the 256 byte characters as ids 0..255, then one token per merge (256 + i),
 * merges (written "a|b" in raw bytes) given as "a b" strings (pairs 0) or [a, b] arrays (pairs 1);
 * added tokens after. */
static char *make_bpe_json(const char *pretok, const char *const *merges, int n_merges, int pairs,
                           const char *added)
{
    cJSON *root = cJSON_CreateObject(), *model = cJSON_CreateObject();
    cJSON *vocab = cJSON_CreateObject(), *ml = cJSON_CreateArray();
    for (int b = 0; b < 256; b++) {
        char ch[4];
        byte_char(b, ch);
        cJSON_AddNumberToObject(vocab, ch, b);
    }
    for (int i = 0; i < n_merges; i++) {
        /* merges are given as readable text: map each byte to its character. */
        char a[64] = "", b[64] = "", ch[4];
        const char *sp = strchr(merges[i], '|');
        for (const char *c = merges[i]; c < sp; c++)
            byte_char((unsigned char)*c, ch), strcat(a, ch);
        for (const char *c = sp + 1; *c; c++)
            byte_char((unsigned char)*c, ch), strcat(b, ch);
        char ab[128];
        snprintf(ab, sizeof ab, "%s%s", a, b);
        if (!cJSON_GetObjectItemCaseSensitive(vocab, ab))
            cJSON_AddNumberToObject(vocab, ab, 256 + i);
        if (pairs) {
            cJSON *pr = cJSON_CreateArray();
            cJSON_AddItemToArray(pr, cJSON_CreateString(a));
            cJSON_AddItemToArray(pr, cJSON_CreateString(b));
            cJSON_AddItemToArray(ml, pr);
        } else {
            char m[130];
            snprintf(m, sizeof m, "%s %s", a, b);
            cJSON_AddItemToArray(ml, cJSON_CreateString(m));
        }
    }
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddItemToObject(model, "merges", ml);
    cJSON_AddItemToObject(root, "model", model);
    cJSON_AddItemToObject(root, "pre_tokenizer", cJSON_Parse(pretok));
    if (added) cJSON_AddItemToObject(root, "added_tokens", cJSON_Parse(added));
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static const char gpt2_pretok[] = "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                                  "\"use_regex\":true}";
#define SPLIT(re)                                                                                  \
    "{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"" re   \
    "\"},\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\","                     \
    "\"add_prefix_space\":false,\"use_regex\":false}]}"
static const char llama3_pretok[] =
    SPLIT("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}{1,3}| "
          "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+");
static const char qwen2_pretok[] =
    SPLIT("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|\\\\p{N}| "
          "?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+");

/* Merges chosen so that the pre-tokenizer's boundaries show in the ids. */
static const char *const merges[] = {
    "3|4",    /* 256 */
    "1|2",    /* 257 */
    "12|3",   /* 258 */
    " |1",    /* 259: " 1" */
    "'|S",    /* 260: only a contraction under (?i:...) */
    "\n| ",   /* 261 */
    "\n |\n", /* 262 */
    "!|a",    /* 263: "!a" one word only under Llama-3/Qwen2 */
    " |x",    /* 264 */
};

static eng_tokenizer *load_json_text(const char *json, const char *name)
{
    char *p = path_in(tmp_dir, name), err[512] = "";
    write_file(p, json, strlen(json));
    eng_tokenizer *t = NULL;
    if (eng_tokenizer_load_hf(p, &t, err, sizeof err) != ENG_OK) {
        TEST_FAIL("%s: %s", name, err);
        exit(1);
    }
    return t;
}

static void expect_ids(const eng_tokenizer *t, const char *text, const int *want, int n_want)
{
    int ids[64], n;
    CHECK(eng_tokenizer_encode(t, text, 0, ids, 64, &n) == ENG_OK);
    if (n != n_want || memcmp(ids, want, (size_t)n * sizeof(int)) != 0) {
        char got[512] = "";
        for (int i = 0; i < n; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), " %d", ids[i]);
        TEST_FAIL_RETURN("\"%s\": got%s", text, got);
    }
    char *back = decode_all(t, ids, 0, n);
    CHECK(strcmp(back, text) == 0);
    free(back);
}

#define IDS(...) (const int[]){__VA_ARGS__}, (int)(sizeof((const int[]){__VA_ARGS__}) / sizeof(int))

static void test_hf_patterns(void)
{
    int nm = (int)(sizeof merges / sizeof *merges);
    char *j;
    eng_tokenizer *t;

    j = make_bpe_json(gpt2_pretok, merges, nm, 0, NULL);
    t = load_json_text(j, "gpt2.json");
    expect_ids(t, "1234", IDS(257, 256)); /* one word: "34" ranks first */
    expect_ids(t, "x 1", IDS('x', 259));  /* " ?\p{N}+" keeps the space */
    expect_ids(t, "'S", IDS('\'', 'S'));  /* contractions are lower case only */
    expect_ids(t, "!a", IDS('!', 'a'));
    expect_ids(t, "a  x", IDS('a', ' ', 264));    /* \s+(?!\S) leaves one space */
    expect_ids(t, "\n \nz", IDS(261, '\n', 'z')); /* ... here the last newline */
    expect_ids(t, "z\n \n", IDS('z', 262));       /* at the end the whole run */
    eng_tokenizer_free(t);
    free(j);

    j = make_bpe_json(llama3_pretok, merges, nm, 1, NULL);
    t = load_json_text(j, "llama3.json");
    expect_ids(t, "1234", IDS(258, '4'));     /* digits in threes */
    expect_ids(t, "x 1", IDS('x', ' ', '1')); /* the space stands alone */
    expect_ids(t, "'S", IDS(260));            /* case-insensitive contraction */
    expect_ids(t, "!a", IDS(263));            /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    expect_ids(t, "a  x", IDS('a', ' ', 264));
    expect_ids(t, "\n \nz", IDS(262, 'z'));                   /* \s*[\r\n]+ */
    expect_ids(t, "x\n\n  ", IDS('x', '\n', '\n', ' ', ' ')); /* newlines, then the end */
    eng_tokenizer_free(t);
    free(j);

    j = make_bpe_json(qwen2_pretok, merges, nm, 0, NULL);
    t = load_json_text(j, "qwen2.json");
    expect_ids(t, "1234", IDS('1', '2', '3', '4')); /* single digits */
    expect_ids(t, "'S", IDS(260));
    eng_tokenizer_free(t);
    free(j);
}

static void test_hf_added(void)
{
    char *j = make_bpe_json(
        gpt2_pretok, merges, (int)(sizeof merges / sizeof *merges), 0,
        "[{\"id\":300,\"content\":\"<|x|>\",\"special\":true},"
        "{\"id\":301,\"content\":\"<|x|>y\",\"special\":true},"
        "{\"id\":302,\"content\":\"<s>\",\"special\":true,\"lstrip\":true,\"rstrip\":true}]");
    eng_tokenizer *t = load_json_text(j, "added.json");
    CHECK(eng_tokenizer_vocab_size(t) == 303);
    expect_ids(t, "a<|x|>b", IDS('a', 300, 'b'));
    expect_ids(t, "<|x|>y<|x|>", IDS(301, 300)); /* the longest match wins */
    int ids[16], n;
    /* lstrip/rstrip swallow the spaces around <s>. */
    CHECK(eng_tokenizer_encode(t, "a  <s>  b", 0, ids, 16, &n) == ENG_OK);
    CHECK(n == 3);
    CHECK(ids[0] == ('a'));
    CHECK(ids[1] == 302);
    CHECK(ids[2] == ('b'));
    CHECK(strcmp(eng_tokenizer_decode(t, -1, 302), "<s>") == 0);
    CHECK(strcmp(eng_tokenizer_decode(t, -1, 290), "") == 0); /* an id without a token */
    eng_tokenizer_free(t);
    free(j);
}

static void expect_hf_error(const char *name, const char *json, eng_status want, const char *needle)
{
    char *p = path_in(tmp_dir, name), err[512] = "";
    if (json) write_file(p, json, strlen(json));
    eng_tokenizer *t = (eng_tokenizer *)&err;
    eng_status st = eng_tokenizer_load_hf(p, &t, err, sizeof err);
    printf("  -> %s\n", err);
    CHECK(st == want);
    CHECK(t == NULL);
    CHECK_STR(err, p);
    if (!strstr(err, needle)) TEST_FAIL_RETURN("error \"%s\" lacks \"%s\"", err, needle);
    CHECK(strchr(err, '\n') == NULL);
}

static void test_hf_bad(void)
{
    expect_hf_error("missing.json", NULL, ENG_ERR_IO, "cannot open: No such file");
    expect_hf_error("garbage.json", "{\"model\": {\n  \"type\": BPE}}", ENG_ERR_FORMAT,
                    "bad JSON at line 2 column 11");
    expect_hf_error("empty.json", "", ENG_ERR_FORMAT, "bad JSON");
    expect_hf_error("array.json", "[1,2]", ENG_ERR_FORMAT, "not a JSON object");
    expect_hf_error("nomodel.json", "{}", ENG_ERR_FORMAT, "no \"model\" object");
    expect_hf_error("wordpiece.json", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}",
                    ENG_ERR_UNSUPPORTED, "model type \"WordPiece\" is not supported");
    expect_hf_error("nomerges.json",
                    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0}},"
                    "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                    ENG_ERR_FORMAT, "no model.merges array");
    expect_hf_error("novocab.json", "{\"model\":{\"type\":\"BPE\",\"merges\":[]}}", ENG_ERR_FORMAT,
                    "no model.vocab object");
    expect_hf_error(
        "badmerge.json",
        "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]},"
        "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
        ENG_ERR_FORMAT, "model.merges[0]: \"ab\" is not in the vocab");
    expect_hf_error("badid.json",
                    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-3},\"merges\":[]},"
                    "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                    ENG_ERR_FORMAT, "model.vocab[\"a\"]: id is not an integer");
    expect_hf_error("metaspace.json",
                    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
                    "\"pre_tokenizer\":{\"type\":\"Metaspace\"}}",
                    ENG_ERR_UNSUPPORTED, "pre_tokenizer type \"Metaspace\" is not supported");
    expect_hf_error("regex.json",
                    "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]},"
                    "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\d+\"},"
                    "\"behavior\":\"Isolated\"}}",
                    ENG_ERR_UNSUPPORTED, "regex is not one of GPT-2, Llama-3, Qwen2: \\d+");
    /* Text quoted from the file is escaped: the message stays one line (found by fuzz_tok_hf). */
    expect_hf_error("newline.json",
                    "{\"model\":{\"vocab\":{},\"merges\":[]},"
                    "\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\\nb\"}}}",
                    ENG_ERR_UNSUPPORTED, "Qwen2: a\\x0ab");
    expect_hf_error(
        "fallback.json",
        "{\"model\":{\"type\":\"BPE\",\"byte_fallback\":true,\"vocab\":{},\"merges\":[]}}",
        ENG_ERR_UNSUPPORTED, "byte_fallback");
}

/* One token with the largest id: 2^24 ids, all but one without a token, load without an
 * allocation each (found by fuzz_tok_hf: seconds and a gigabyte for an 80-byte file). */
static void test_hf_sparse(void)
{
    eng_tokenizer *t = load_json_text("{\"model\":{\"vocab\":{\"a\":16777215},\"merges\":[]},"
                                      "\"pre_tokenizer\":{\"type\":\"ByteLevel\"}}",
                                      "sparse.json");
    CHECK(eng_tokenizer_vocab_size(t) == 1 << 24);
    CHECK(strcmp(eng_tokenizer_decode(t, -1, 5), "") == 0);
    CHECK(strcmp(eng_tokenizer_decode(t, -1, 16777215), "a") == 0);
    int ids[4], n;
    CHECK(eng_tokenizer_encode(t, "aba", 0, ids, 4, &n) == ENG_OK);
    CHECK(n == 2); /* "b" has no token and no unk: dropped */
    CHECK(ids[0] == 16777215 && ids[1] == 16777215);
    eng_tokenizer_free(t);
}

static void cleanup(void)
{
    char cmd[256];
    if ((size_t)snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir) >= sizeof cmd || system(cmd) != 0)
        TEST_FAIL("cannot remove %s", tmp_dir);
}

int main(int argc, char **argv)
{
    shared_dir = argc > 1 ? argv[1] : test_shared_dir();
    if (!mkdtemp(tmp_dir)) {
        perror(tmp_dir);
        return 1;
    }
    test_hf_patterns();
    test_hf_added();
    test_hf_bad();
    test_hf_sparse();
    test_l2_basics();
    test_l2_readme();
    test_l2_vs_naive();
    test_l2_bad();
    test_hf_fixtures();
    cleanup();
    if (test_failures == 0 && !have_shared()) {
        printf("SKIP: %s absent (models/tok512.bin, fixtures/hf): the real-file tests did not "
               "run\n",
               shared_dir);
        return 77;
    }
    TEST_DONE();
}
