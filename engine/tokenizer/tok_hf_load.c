/* SPDX-License-Identifier: MIT */
/* Loading a Hugging Face tokenizer.json (model BPE with a byte-level pre-tokenizer) with cJSON.
 * Every refusal names the file and the JSON path of what is wrong. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>

#include "tok_bpe.h"

#define BPE_MAX_ID (1 << 24)

typedef struct {
    const char *path;
    char *err;
    size_t errlen;
} load_ctx;

#define FAIL(c, st, ...) tok_fail((st), (c)->err, (c)->errlen, __VA_ARGS__)

static eng_status parse_json_file(const char *path, cJSON **root, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    *root = NULL;
    eng_status st = tok_read_file(path, &buf, &len, err, errlen);
    if (st != ENG_OK) return st;
    const char *end = NULL;
    *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!*root) {
        size_t at = end ? (size_t)(end - buf) : 0, line = 1, col = 1;
        for (size_t i = 0; i < at && i < len; i++, col++)
            if (buf[i] == '\n') line++, col = 0;
        st = tok_fail(ENG_ERR_FORMAT, err, errlen, "%s: bad JSON at line %zu column %zu (byte %zu)",
                      path, line, col, at);
    } else if (!cJSON_IsObject(*root)) {
        cJSON_Delete(*root);
        *root = NULL;
        st = tok_fail(ENG_ERR_FORMAT, err, errlen, "%s: the top level is not a JSON object", path);
    }
    free(buf);
    return st;
}

static const cJSON *get(const cJSON *o, const char *name)
{
    return cJSON_GetObjectItemCaseSensitive(o, name);
}

static int is_true(const cJSON *o, const char *name, int dflt)
{
    const cJSON *v = get(o, name);
    return cJSON_IsBool(v) ? cJSON_IsTrue(v) : dflt;
}

/* An id in 0..BPE_MAX_ID-1, or -1. */
static int as_id(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= BPE_MAX_ID ||
        v->valuedouble != (double)(int)v->valuedouble)
        return -1;
    return (int)v->valuedouble;
}

static eng_status check_model(load_ctx *c, const cJSON *model)
{
    const cJSON *type = get(model, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "BPE") != 0)
        return FAIL(c, ENG_ERR_UNSUPPORTED, "%s: model type \"%s\" is not supported (only BPE)",
                    c->path, type->valuestring);
    if (is_true(model, "byte_fallback", 0))
        return FAIL(c, ENG_ERR_UNSUPPORTED,
                    "%s: model.byte_fallback (SentencePiece-style BPE) is not supported", c->path);
    static const char *const affixes[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = get(model, affixes[i]);
        if (cJSON_IsString(v) && v->valuestring[0])
            return FAIL(c, ENG_ERR_UNSUPPORTED, "%s: model.%s is not supported", c->path,
                        affixes[i]);
    }
    const cJSON *drop = get(model, "dropout");
    if (cJSON_IsNumber(drop) && drop->valuedouble > 0)
        return FAIL(c, ENG_ERR_UNSUPPORTED, "%s: model.dropout %g is not supported", c->path,
                    drop->valuedouble);
    return ENG_OK;
}

/* ByteLevel, Split (a known regex, behaviour Isolated) and Sequence of them. */
static eng_status parse_pretok(load_ctx *c, bpe_tok *t, const cJSON *p, int *byte_level)
{
    const cJSON *type = get(p, "type");
    const char *ty = cJSON_IsString(type) ? type->valuestring : "(none)";
    if (strcmp(ty, "Sequence") == 0) {
        const cJSON *list = get(p, "pretokenizers"), *it;
        if (!cJSON_IsArray(list))
            return FAIL(c, ENG_ERR_FORMAT, "%s: pre_tokenizer Sequence without pretokenizers",
                        c->path);
        cJSON_ArrayForEach(it, list)
        {
            eng_status st = parse_pretok(c, t, it, byte_level);
            if (st != ENG_OK) return st;
        }
        return ENG_OK;
    }
    if (strcmp(ty, "ByteLevel") == 0) {
        *byte_level = 1;
        t->add_prefix_space = is_true(p, "add_prefix_space", 1);
        if (is_true(p, "use_regex", 1)) {
            if (t->use_regex)
                return FAIL(c, ENG_ERR_UNSUPPORTED,
                            "%s: pre_tokenizer ByteLevel use_regex after a Split is not supported",
                            c->path);
            t->use_regex = 1;
            t->pattern = TOK_PAT_GPT2;
        }
        return ENG_OK;
    }
    if (strcmp(ty, "Split") == 0) {
        const cJSON *re = get(get(p, "pattern"), "Regex"), *beh = get(p, "behavior");
        if (!cJSON_IsString(re))
            return FAIL(c, ENG_ERR_UNSUPPORTED,
                        "%s: pre_tokenizer Split without a Regex pattern is not supported",
                        c->path);
        int pat = tok_pretok_lookup(re->valuestring);
        if (pat < 0)
            return FAIL(c, ENG_ERR_UNSUPPORTED,
                        "%s: pre_tokenizer Split regex is not one of GPT-2, Llama-3, Qwen2: %.80s",
                        c->path, re->valuestring);
        if (!cJSON_IsString(beh) || strcmp(beh->valuestring, "Isolated") != 0 ||
            is_true(p, "invert", 0))
            return FAIL(c, ENG_ERR_UNSUPPORTED,
                        "%s: pre_tokenizer Split is supported only with behavior Isolated, not "
                        "inverted",
                        c->path);
        if (t->use_regex)
            return FAIL(c, ENG_ERR_UNSUPPORTED, "%s: two regex pre-tokenizers are not supported",
                        c->path);
        t->use_regex = 1;
        t->pattern = (tok_pattern)pat;
        return ENG_OK;
    }
    return FAIL(c, ENG_ERR_UNSUPPORTED,
                "%s: pre_tokenizer type \"%s\" is not supported (byte-level BPE needs ByteLevel, "
                "optionally after a Split regex)",
                c->path, ty);
}

static eng_status check_pipeline(load_ctx *c, bpe_tok *t, const cJSON *root)
{
    const cJSON *norm = get(root, "normalizer");
    if (norm && !cJSON_IsNull(norm)) {
        const cJSON *type = get(norm, "type"), *list = get(norm, "normalizers");
        const char *ty = cJSON_IsString(type) ? type->valuestring : "(none)";
        /* NFC is accepted on the assumption that the text is already NFC (most text is). */
        int ok = strcmp(ty, "NFC") == 0 ||
                 (strcmp(ty, "Sequence") == 0 && cJSON_GetArraySize(list) == 0);
        if (!ok)
            return FAIL(c, ENG_ERR_UNSUPPORTED, "%s: normalizer \"%s\" is not supported", c->path,
                        ty);
    }
    const cJSON *pre = get(root, "pre_tokenizer");
    int byte_level = 0;
    if (pre && !cJSON_IsNull(pre)) {
        eng_status st = parse_pretok(c, t, pre, &byte_level);
        if (st != ENG_OK) return st;
    }
    if (!byte_level)
        return FAIL(c, ENG_ERR_UNSUPPORTED,
                    "%s: no ByteLevel pre_tokenizer: only byte-level BPE is supported", c->path);
    const cJSON *dec = get(root, "decoder");
    if (dec && !cJSON_IsNull(dec)) {
        const cJSON *type = get(dec, "type");
        if (!cJSON_IsString(type) || strcmp(type->valuestring, "ByteLevel") != 0)
            return FAIL(c, ENG_ERR_UNSUPPORTED, "%s: decoder \"%s\" is not supported (ByteLevel)",
                        c->path, cJSON_IsString(type) ? type->valuestring : "(none)");
    }
    return ENG_OK;
}

static eng_status load_vocab(load_ctx *c, bpe_tok *t, const cJSON *vocab, const cJSON *added)
{
    int max_id = -1, n = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab)
    {
        int id = as_id(it);
        if (id < 0)
            return FAIL(c, ENG_ERR_FORMAT,
                        "%s: model.vocab[\"%.60s\"]: id is not an integer in 0..%d", c->path,
                        it->string, BPE_MAX_ID - 1);
        max_id = id > max_id ? id : max_id;
        n++;
    }
    int k = 0;
    cJSON_ArrayForEach(it, added)
    {
        int id = as_id(get(it, "id"));
        const cJSON *content = get(it, "content");
        if (id < 0 || !cJSON_IsString(content) || !content->valuestring[0])
            return FAIL(
                c, ENG_ERR_FORMAT,
                "%s: added_tokens[%d]: needs an integer id in 0..%d and a non-empty content",
                c->path, k, BPE_MAX_ID - 1);
        max_id = id > max_id ? id : max_id;
        k++;
    }
    if (n == 0) return FAIL(c, ENG_ERR_FORMAT, "%s: model.vocab is empty", c->path);
    size_t V = (size_t)max_id + 1;
    t->base.vocab_size = (int)V;
    t->key = calloc(V, sizeof *t->key);
    t->key_len = calloc(V, sizeof *t->key_len);
    t->piece = calloc(V, sizeof *t->piece);
    if (!t->key || !t->key_len || !t->piece || bpe_str_map_init(&t->vocab, (size_t)n) != 0)
        return FAIL(c, ENG_ERR_NOMEM, "%s: out of memory for %zu tokens", c->path, V);
    cJSON_ArrayForEach(it, vocab)
    {
        int id = as_id(it);
        if (t->key[id])
            return FAIL(c, ENG_ERR_FORMAT,
                        "%s: model.vocab: id %d is given to \"%.60s\" and \"%.60s\"", c->path, id,
                        t->key[id], it->string);
        t->key_len[id] = (int)strlen(it->string);
        t->key[id] = strdup(it->string);
        if (!t->key[id]) return FAIL(c, ENG_ERR_NOMEM, "%s: out of memory", c->path);
        if (bpe_str_map_put(&t->vocab, t->key[id], t->key_len[id], id))
            return FAIL(c, ENG_ERR_FORMAT, "%s: model.vocab: \"%.60s\" is given twice", c->path,
                        it->string);
    }
    return ENG_OK;
}

static int vocab_id(const bpe_tok *t, const char *s)
{
    return bpe_str_map_get(&t->vocab, s, (int)strlen(s));
}

static eng_status load_merges(load_ctx *c, bpe_tok *t, const cJSON *merges)
{
    int n = cJSON_GetArraySize(merges), rank = 0;
    if (bpe_pair_map_init(&t->merges, (size_t)n) != 0)
        return FAIL(c, ENG_ERR_NOMEM, "%s: out of memory for %d merges", c->path, n);
    char *cat = NULL;
    eng_status st = ENG_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, merges)
    {
        /* "a b" (one space: byte-level tokens never hold a real space) or ["a", "b"]. */
        const char *a = NULL, *b = NULL;
        size_t la = 0;
        if (cJSON_IsString(it)) {
            const char *sp = strchr(it->valuestring, ' ');
            if (sp && !strchr(sp + 1, ' ')) {
                a = it->valuestring, la = (size_t)(sp - a), b = sp + 1;
            }
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(it, 1))) {
            a = cJSON_GetArrayItem(it, 0)->valuestring, la = strlen(a);
            b = cJSON_GetArrayItem(it, 1)->valuestring;
        }
        if (!a) {
            st = FAIL(c, ENG_ERR_FORMAT,
                      "%s: model.merges[%d] is neither \"a b\" nor [\"a\", \"b\"]", c->path, rank);
            goto free_cat;
        }
        size_t lb = strlen(b);
        free(cat);
        cat = malloc(la + lb + 1);
        if (!cat) {
            st = FAIL(c, ENG_ERR_NOMEM, "%s: out of memory", c->path);
            goto free_cat;
        }
        memcpy(cat, a, la);
        memcpy(cat + la, b, lb + 1);
        int ia = bpe_str_map_get(&t->vocab, a, (int)la), ib = vocab_id(t, b);
        int im = vocab_id(t, cat);
        if (ia < 0 || ib < 0 || im < 0) {
            st = FAIL(c, ENG_ERR_FORMAT, "%s: model.merges[%d]: \"%.60s\" is not in the vocab",
                      c->path, rank,
                      ia < 0   ? (cat[la] = '\0', cat)
                      : ib < 0 ? b
                               : cat);
            goto free_cat;
        }
        bpe_pair_map_put(&t->merges, ia, ib, rank, im);
        rank++;
    }
free_cat:
    free(cat);
    return st;
}

static int added_cmp(const void *x, const void *y)
{
    const bpe_added *a = x, *b = y;
    return (b->len > a->len) - (b->len < a->len);
}

static eng_status load_added(load_ctx *c, bpe_tok *t, const cJSON *added)
{
    int n = cJSON_GetArraySize(added);
    if (n == 0) return ENG_OK;
    t->added = calloc((size_t)n, sizeof *t->added);
    if (!t->added) return FAIL(c, ENG_ERR_NOMEM, "%s: out of memory", c->path);
    const cJSON *it;
    cJSON_ArrayForEach(it, added)
    {
        bpe_added *a = &t->added[t->n_added];
        a->s = strdup(get(it, "content")->valuestring);
        if (!a->s) return FAIL(c, ENG_ERR_NOMEM, "%s: out of memory", c->path);
        t->n_added++;
        a->len = (int)strlen(a->s);
        t->added_first[(unsigned char)a->s[0]] = 1;
        a->id = as_id(get(it, "id"));
        a->lstrip = is_true(it, "lstrip", 0);
        a->rstrip = is_true(it, "rstrip", 0);
        a->single_word = is_true(it, "single_word", 0);
    }
    qsort(t->added, (size_t)n, sizeof *t->added, added_cmp);
    return ENG_OK;
}

/* Raw bytes of every token: byte-level characters mapped back; added tokens as written. */
static eng_status build_pieces(load_ctx *c, bpe_tok *t)
{
    int inv[512];
    for (int i = 0; i < 512; i++)
        inv[i] = -1;
    for (int b = 0; b < 256; b++)
        inv[t->byte_cp[b]] = b;
    for (int i = 0; i < t->n_added; i++) {
        free(t->piece[t->added[i].id]);
        t->piece[t->added[i].id] = strdup(t->added[i].s);
        if (!t->piece[t->added[i].id]) return FAIL(c, ENG_ERR_NOMEM, "%s: out of memory", c->path);
    }
    for (int id = 0; id < t->base.vocab_size; id++) {
        /* An id without a token keeps NULL: a vocabulary of one token with id 2^24-1 must not
         * cost 2^24 allocations. */
        if (t->piece[id] || !t->key[id]) continue;
        const unsigned char *k = (const unsigned char *)t->key[id];
        size_t n = (size_t)t->key_len[id], o = 0;
        char *p = malloc(n + 1);
        if (!p) return FAIL(c, ENG_ERR_NOMEM, "%s: out of memory", c->path);
        for (size_t i = 0; i < n;) {
            int adv;
            uint32_t cp = tok_utf8_next(k + i, n - i, &adv);
            if (cp < 512 && inv[cp] >= 0) {
                p[o++] = (char)inv[cp];
            } else { /* not a byte-level character: keep its UTF-8 */
                memcpy(p + o, k + i, (size_t)adv);
                o += (size_t)adv;
            }
            i += (size_t)adv;
        }
        p[o] = '\0';
        t->piece[id] = p;
    }
    return ENG_OK;
}

/* BOS from a TemplateProcessing that starts with a special token. */
static void bos_from_template(bpe_tok *t, const cJSON *pp)
{
    const cJSON *type = get(pp, "type");
    if (!cJSON_IsString(type)) return;
    if (strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *it;
        cJSON_ArrayForEach(it, get(pp, "processors")) bos_from_template(t, it);
        return;
    }
    if (strcmp(type->valuestring, "TemplateProcessing") != 0) return;
    const cJSON *first = cJSON_GetArrayItem(get(pp, "single"), 0);
    const cJSON *name = get(get(first, "SpecialToken"), "id");
    if (!cJSON_IsString(name)) return;
    const cJSON *spec = get(get(pp, "special_tokens"), name->valuestring);
    int id = as_id(cJSON_GetArrayItem(get(spec, "ids"), 0));
    if (id >= 0 && id < t->base.vocab_size && t->base.bos < 0) t->base.bos = id;
}

static eng_status ids_from_config(load_ctx *c, bpe_tok *t, const char *dir, const char *file)
{
    char p[4096];
    if ((size_t)snprintf(p, sizeof p, "%s/%s", dir, file) >= sizeof p || access(p, F_OK) != 0)
        return ENG_OK;
    cJSON *root;
    eng_status st = parse_json_file(p, &root, c->err, c->errlen);
    if (st != ENG_OK) return st;
    static const char *const names[2] = {"bos_token_id", "eos_token_id"};
    int *dst[2] = {&t->base.bos, &t->base.eos};
    for (int i = 0; i < 2 && st == ENG_OK; i++) {
        const cJSON *v = get(root, names[i]);
        if (cJSON_IsArray(v)) v = cJSON_GetArrayItem(v, 0);
        if (!v || cJSON_IsNull(v) || *dst[i] >= 0) continue;
        int id = as_id(v);
        if (id < 0 || id >= t->base.vocab_size)
            st = FAIL(c, ENG_ERR_FORMAT, "%s: %s is not an id of the tokenizer (vocab %d)", p,
                      names[i], t->base.vocab_size);
        else
            *dst[i] = id;
    }
    cJSON_Delete(root);
    return st;
}

static eng_status special_ids(load_ctx *c, bpe_tok *t, const cJSON *root)
{
    char dir[4096];
    const char *slash = strrchr(c->path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - c->path), c->path);
    if (slash == c->path) snprintf(dir, sizeof dir, "/");
    eng_status st = ids_from_config(c, t, dir, "generation_config.json");
    if (st == ENG_OK) st = ids_from_config(c, t, dir, "config.json");
    if (st == ENG_OK) bos_from_template(t, get(root, "post_processor"));
    return st;
}

static eng_status load(load_ctx *c, bpe_tok *t, const cJSON *root)
{
    const cJSON *model = get(root, "model");
    if (!cJSON_IsObject(model)) return FAIL(c, ENG_ERR_FORMAT, "%s: no \"model\" object", c->path);
    eng_status st = check_model(c, model);
    if (st != ENG_OK) return st;
    const cJSON *vocab = get(model, "vocab"), *merges = get(model, "merges");
    const cJSON *added = get(root, "added_tokens");
    if (!cJSON_IsObject(vocab))
        return FAIL(c, ENG_ERR_FORMAT, "%s: no model.vocab object", c->path);
    if (!cJSON_IsArray(merges))
        return FAIL(c, ENG_ERR_FORMAT, "%s: no model.merges array", c->path);
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return FAIL(c, ENG_ERR_FORMAT, "%s: added_tokens is not an array", c->path);
    if ((st = check_pipeline(c, t, root)) != ENG_OK ||
        (st = load_vocab(c, t, vocab, added)) != ENG_OK ||
        (st = load_merges(c, t, merges)) != ENG_OK || (st = load_added(c, t, added)) != ENG_OK)
        return st;
    t->ignore_merges = is_true(model, "ignore_merges", 0);
    const cJSON *unk = get(model, "unk_token");
    t->unk = cJSON_IsString(unk) ? vocab_id(t, unk->valuestring) : -1;
    bpe_byte_map(t->byte_cp);
    for (int b = 0; b < 256; b++) {
        char ch[4];
        t->byte_id[b] = bpe_str_map_get(&t->vocab, ch, tok_utf8_put(t->byte_cp[b], ch));
    }
    if ((st = build_pieces(c, t)) != ENG_OK) return st;
    return special_ids(c, t, root);
}

eng_status eng_tokenizer_load_hf(const char *path, eng_tokenizer **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!path || !out)
        return tok_fail(ENG_ERR_INVALID_ARG, err, errlen, "tokenizer: no path or output given");
    cJSON *root;
    eng_status st = parse_json_file(path, &root, err, errlen);
    if (st != ENG_OK) return st;
    bpe_tok *t = calloc(1, sizeof *t);
    if (!t) {
        st = tok_fail(ENG_ERR_NOMEM, err, errlen, "%s: out of memory", path);
        goto free_json;
    }
    t->base.ops = &bpe_ops;
    t->base.bos = t->base.eos = -1;
    load_ctx c = {path, err, errlen};
    st = load(&c, t, root);
    if (st != ENG_OK) {
        bpe_ops.destroy(&t->base);
        goto free_json;
    }
    *out = &t->base;
free_json:
    cJSON_Delete(root);
    return st;
}
