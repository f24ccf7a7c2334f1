/* SPDX-License-Identifier: MIT */
/* The OpenAI-compatible API: request bodies -> validated srv_req (prompt tokens, sampling,
 * stop strings), and the JSON of answers, stream chunks, errors, /tokenize, /detokenize,
 * /apply-template, /v1/models and /metrics. Runs on the HTTP thread, except the chunk and
 * body writers which the engine thread calls. */
#include "serve.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int srv_buf_add(srv_buf *b, const void *data, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) return -1;
        b->p = p;
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, data, n);
    b->len += n;
    b->p[b->len] = 0;
    return 0;
}

int srv_buf_str(srv_buf *b, const char *s)
{
    return srv_buf_add(b, s, strlen(s));
}

void srv_buf_free(srv_buf *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

double srv_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int srv_err(srv_error *e, int status, const char *param, const char *code, const char *fmt, ...)
{
    e->status = status;
    e->param = param;
    e->code = code;
    e->type = status == 401   ? "authentication_error"
              : status == 404 ? "not_found_error"
              : status >= 500 ? "server_error"
                              : "invalid_request_error";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->message, sizeof(e->message), fmt, ap);
    va_end(ap);
    return -1;
}

char *srv_api_error_json(const srv_error *e)
{
    cJSON *root = cJSON_CreateObject(), *o = cJSON_AddObjectToObject(root, "error");
    cJSON_AddStringToObject(o, "message", e->message);
    cJSON_AddStringToObject(o, "type", e->type ? e->type : "server_error");
    if (e->param)
        cJSON_AddStringToObject(o, "param", e->param);
    else
        cJSON_AddNullToObject(o, "param");
    if (e->code)
        cJSON_AddStringToObject(o, "code", e->code);
    else
        cJSON_AddNullToObject(o, "code");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

/* ------------------------------------------------------------------ field helpers */
static int get_num(const cJSON *req, const char *name, double lo, double hi, double *out,
                   srv_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return srv_err(e, 400, name, "invalid_value", "'%s' must be a number in [%g, %g]", name, lo,
                       hi);
    *out = v->valuedouble;
    return 1;
}

static int get_int(const cJSON *req, const char *name, double lo, double hi, long long *out,
                   srv_error *e)
{
    double d;
    int r = get_num(req, name, lo, hi, &d, e);
    if (r <= 0) return r;
    if (d != floor(d))
        return srv_err(e, 400, name, "invalid_value", "'%s' must be an integer", name);
    *out = (long long)d;
    return 1;
}

static int get_bool(const cJSON *req, const char *name, int *out, srv_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, name);
    if (!v || cJSON_IsNull(v)) return 0;
    if (!cJSON_IsBool(v))
        return srv_err(e, 400, name, "invalid_type", "'%s' must be a boolean", name);
    *out = cJSON_IsTrue(v);
    return 1;
}

static cJSON *parse_body(const char *body, size_t len, srv_error *e)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(body, len, &end, 0);
    if (!j) {
        srv_err(e, 400, NULL, "invalid_json", "request body is not valid JSON (near byte %ld)",
                end ? (long)(end - body) : 0L);
        return NULL;
    }
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        srv_err(e, 400, NULL, "invalid_json", "request body must be a JSON object");
        return NULL;
    }
    return j;
}

/* Encodes text into r->prompt (at most ctx_len tokens). */
static int encode(srv_server *s, const char *text, int add_bos, srv_req *r, const char *param,
                  srv_error *e)
{
    if (!s->tok)
        return srv_err(e, 400, param, "no_tokenizer",
                       "the model has no tokenizer: send the prompt as token ids");
    r->prompt = malloc((size_t)s->ctx_len * sizeof(int));
    if (!r->prompt) return srv_err(e, 500, NULL, NULL, "out of memory");
    pthread_mutex_lock(&s->tok_lock);
    eng_status st =
        eng_tokenizer_encode(s->tok, text, add_bos, r->prompt, s->ctx_len, &r->n_prompt);
    pthread_mutex_unlock(&s->tok_lock);
    if (st != ENG_OK && r->n_prompt > s->ctx_len)
        return srv_err(e, 400, param, "context_length_exceeded",
                       "This model's maximum context length is %d tokens. However, your prompt "
                       "has %d tokens. Please reduce the length of the prompt.",
                       s->ctx_len, r->n_prompt);
    if (st != ENG_OK)
        return srv_err(e, 400, param, "invalid_value", "the prompt cannot be tokenized: %s",
                       eng_status_str(st));
    return 0;
}

static int ids_from_json(srv_server *s, const cJSON *arr, srv_req *r, const char *param,
                         srv_error *e)
{
    int n = cJSON_GetArraySize(arr);
    if (n > s->ctx_len)
        return srv_err(e, 400, param, "context_length_exceeded",
                       "This model's maximum context length is %d tokens. However, your prompt "
                       "has %d tokens. Please reduce the length of the prompt.",
                       s->ctx_len, n);
    r->prompt = malloc((size_t)(n ? n : 1) * sizeof(int));
    if (!r->prompt) return srv_err(e, 500, NULL, NULL, "out of memory");
    const cJSON *v;
    int i = 0;
    cJSON_ArrayForEach(v, arr)
    {
        if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
            v->valuedouble >= s->cfg->vocab_size)
            return srv_err(e, 400, param, "invalid_value", "'%s'[%d] is not a token id in 0..%d",
                           param, i, s->cfg->vocab_size - 1);
        r->prompt[i++] = (int)v->valuedouble;
    }
    r->n_prompt = n;
    return 0;
}

/* Appends one prompt's tokens (its own checks done: not empty, room for the completion) to
 * r->prompt; r->prompt_off[i] is where prompt i starts. */
static int append_prompt(srv_server *s, srv_req *r, srv_req *one, const char *param, long long mt,
                         srv_error *e)
{
    if (one->n_prompt == 0) return srv_err(e, 400, param, "invalid_value", "the prompt is empty");
    if (one->n_prompt >= s->ctx_len || (mt > 0 && one->n_prompt + mt > s->ctx_len))
        return srv_err(e, 400, param, "context_length_exceeded",
                       "This model's maximum context length is %d tokens. However, you requested "
                       "%lld tokens (%d in the prompt, %lld for the completion). Please reduce "
                       "the length of the prompt or of max_tokens.",
                       s->ctx_len, one->n_prompt + (mt > 0 ? mt : 1), one->n_prompt,
                       mt > 0 ? mt : 1);
    int *p = realloc(r->prompt, (size_t)(r->n_prompt + one->n_prompt) * sizeof(int));
    int *off = p ? realloc(r->prompt_off, (size_t)(r->n_prompts + 2) * sizeof(int)) : NULL;
    if (p) r->prompt = p;
    if (off) r->prompt_off = off;
    if (!p || !off) return srv_err(e, 500, NULL, NULL, "out of memory");
    memcpy(r->prompt + r->n_prompt, one->prompt, (size_t)one->n_prompt * sizeof(int));
    r->prompt_off[r->n_prompts] = r->n_prompt;
    r->n_prompt += one->n_prompt;
    r->prompt_off[++r->n_prompts] = r->n_prompt;
    return 0;
}

/* One prompt of /v1/completions: a string or an array of token ids. */
static int add_prompt(srv_server *s, const cJSON *p, srv_req *r, long long mt, srv_error *e)
{
    srv_req one = {0};
    int rc = cJSON_IsString(p) ? encode(s, p->valuestring, 1, &one, "prompt", e)
                               : ids_from_json(s, p, &one, "prompt", e);
    if (rc == 0) rc = append_prompt(s, r, &one, "prompt", mt, e);
    free(one.prompt);
    return rc;
}

/* "prompt": a string, token ids, or a batch of those (each prompt gets n choices). */
static int parse_prompt(srv_server *s, const cJSON *req, srv_req *r, long long mt, srv_error *e)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    if (cJSON_IsString(p) || (cJSON_IsArray(p) && (!p->child || cJSON_IsNumber(p->child))))
        return add_prompt(s, p, r, mt, e);
    if (!cJSON_IsArray(p))
        return srv_err(e, 400, "prompt", "invalid_type",
                       "'prompt' is required: a string, an array of token ids, or an array of "
                       "those");
    const cJSON *it;
    cJSON_ArrayForEach(it, p)
    {
        if (!cJSON_IsString(it) && !cJSON_IsArray(it))
            return srv_err(e, 400, "prompt", "invalid_type",
                           "'prompt'[%d] is neither a string nor an array of token ids",
                           r->n_prompts);
        if (add_prompt(s, it, r, mt, e) < 0) return -1;
    }
    return 0;
}

static int parse_chat_prompt(srv_server *s, const cJSON *req, srv_req *r, long long mt,
                             srv_error *e)
{
    char *text = srv_tmpl_render(s->tmpl, req, e);
    if (!text) return -1;
    /* The template writes BOS as text; the tokenizer adds the id instead. */
    const char *bos = srv_tmpl_bos(s->tmpl);
    size_t bl = strlen(bos);
    int add_bos = bl && !strncmp(text, bos, bl);
    srv_req one = {0};
    int rc = encode(s, text + (add_bos ? bl : 0), add_bos, &one, "messages", e);
    free(text);
    if (rc == 0) rc = append_prompt(s, r, &one, "messages", mt, e);
    free(one.prompt);
    return rc;
}

static int parse_stop(const cJSON *req, srv_req *r, srv_error *e)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(req, "stop");
    if (!v || cJSON_IsNull(v)) return 0;
    const cJSON *it = cJSON_IsArray(v) ? v->child : v;
    for (; it; it = cJSON_IsArray(v) ? it->next : NULL) {
        if (!cJSON_IsString(it) || !it->valuestring[0])
            return srv_err(e, 400, "stop", "invalid_value",
                           "'stop' must be a non-empty string or a list of them");
        if (r->n_stop == SRV_MAX_STOP)
            return srv_err(e, 400, "stop", "invalid_value", "'stop' has more than %d strings",
                           SRV_MAX_STOP);
        if (!(r->stop[r->n_stop++] = strdup(it->valuestring)))
            return srv_err(e, 500, NULL, NULL, "out of memory");
    }
    return 0;
}

srv_req *srv_api_parse(srv_server *s, srv_kind kind, const char *body, size_t len, srv_error *e)
{
    cJSON *req = parse_body(body, len, e);
    if (!req) return NULL;
    srv_req *r = calloc(1, sizeof(*r));
    if (!r) {
        srv_err(e, 500, NULL, NULL, "out of memory");
        goto fail_json;
    }
    pthread_mutex_lock(&s->lock);
    s->live++;
    pthread_mutex_unlock(&s->lock);
    r->kind = kind;
    r->srv = s;
    r->refs = 1;
    double t = 1.0, p = 1.0;
    long long ll = 1;
    if (get_num(req, "temperature", 0, 2, &t, e) < 0) goto fail;
    if (get_num(req, "top_p", 0, 1, &p, e) < 0) goto fail;
    if (p <= 0) {
        srv_err(e, 400, "top_p", "invalid_value", "'top_p' must be in (0, 1]");
        goto fail;
    }
    r->temperature = (float)t;
    r->top_p = (float)p;
    long long n = 1;
    if (get_int(req, "n", 1, 128, &n, e) < 0) goto fail;
    /* Any int64 or uint64 seed: negative ones wrap as two's complement. */
    double sd = 0;
    int seeded = get_num(req, "seed", -9.2e18, 1.8e19, &sd, e);
    if (seeded < 0) goto fail;
    if (seeded && sd != floor(sd)) {
        srv_err(e, 400, "seed", "invalid_value", "'seed' must be an integer");
        goto fail;
    }
    r->seed = sd >= 0 ? (uint64_t)sd : (uint64_t)(long long)sd;
    if (get_bool(req, "stream", &r->stream, e) < 0) goto fail;
    const cJSON *so = cJSON_GetObjectItemCaseSensitive(req, "stream_options");
    if (so && !cJSON_IsNull(so)) {
        if (!cJSON_IsObject(so)) {
            srv_err(e, 400, "stream_options", "invalid_type", "'stream_options' must be an object");
            goto fail;
        }
        if (!r->stream) { /* as the OpenAI API answers it */
            srv_err(e, 400, "stream_options", "invalid_value",
                    "'stream_options' is only allowed when 'stream' is true");
            goto fail;
        }
        if (get_bool(so, "include_usage", &r->include_usage, e) < 0) goto fail;
    }
    if (parse_stop(req, r, e) < 0) goto fail;
    if (get_bool(req, "ignore_eos", &r->ignore_eos, e) < 0) goto fail;
    r->cache_prompt = 1;
    if (get_bool(req, "cache_prompt", &r->cache_prompt, e) < 0) goto fail;
    if (kind == SRV_CHAT) {
        int lp = 0;
        if (get_bool(req, "logprobs", &lp, e) < 0) goto fail;
        ll = 0;
        if (get_int(req, "top_logprobs", 0, SRV_MAX_TOP_LOGPROBS, &ll, e) < 0) goto fail;
        if (ll && !lp) {
            srv_err(e, 400, "top_logprobs", "invalid_value",
                    "'top_logprobs' needs 'logprobs': true");
            goto fail;
        }
        r->logprobs = lp;
        r->top_logprobs = (int)ll;
    } else {
        ll = -1;
        if (get_int(req, "logprobs", 0, 5, &ll, e) < 0) goto fail;
        r->logprobs = ll >= 0;
        r->top_logprobs = ll > 0 ? (int)ll : 0;
    }
    long long mt = -1;
    if (get_int(req, "max_tokens", 1, 1e9, &mt, e) < 0) goto fail;
    if (get_int(req, "max_completion_tokens", 1, 1e9, &mt, e) < 0) goto fail;
    if (kind == SRV_CHAT) {
        if (parse_chat_prompt(s, req, r, mt, e) < 0) goto fail;
    } else if (parse_prompt(s, req, r, mt, e) < 0) {
        goto fail;
    }
    if (r->n_prompts == 0) {
        srv_err(e, 400, "prompt", "invalid_value", "'prompt' holds no prompt");
        goto fail;
    }
    /* Without max_tokens a choice runs to the end of the context (checked per choice). */
    r->max_tokens = mt > 0 ? (int)mt : s->ctx_len;
    long long seqs = n * r->n_prompts;
    if (seqs > s->slots + s->o->max_queue) { /* its choices could never all be taken in */
        srv_err(e, 400, "n", "invalid_value",
                "'n'%s is %lld but this server holds at most %d sequences (--parallel %d "
                "running + --max-queue %d waiting)",
                r->n_prompts > 1 ? " times the prompts" : "", seqs, s->slots + s->o->max_queue,
                s->slots, s->o->max_queue);
        goto fail;
    }
    if (!(r->choices = calloc((size_t)seqs, sizeof(*r->choices)))) {
        srv_err(e, 500, NULL, NULL, "out of memory");
        goto fail;
    }
    r->n = (int)seqs;
    for (int i = 0; i < r->n; i++) { /* prompt p's choices are p*n .. p*n+n-1, as OpenAI's */
        srv_choice *c = &r->choices[i];
        int p = i / (int)n;
        c->index = i;
        c->stream_no = i % (int)n; /* a prompt draws the same alone or in a batch */
        c->prompt = r->prompt + r->prompt_off[p];
        c->n_prompt = r->prompt_off[p + 1] - r->prompt_off[p];
        c->slot = -1;
        c->prev = -1;
        eng_utf8_init(&c->utf8);
    }
    pthread_mutex_lock(&s->lock);
    unsigned long id = ++s->next_id;
    if (!seeded) r->seed = (uint64_t)time(NULL) * 2654435761u + id; /* unseeded: any stream */
    pthread_mutex_unlock(&s->lock);
    snprintf(r->id, sizeof(r->id), "%s-%lx%06lu", kind == SRV_CHAT ? "chatcmpl" : "cmpl",
             (unsigned long)time(NULL), id);
    r->created = (long)time(NULL);
    r->t_start = srv_now();
    cJSON_Delete(req);
    return r;
fail:
    pthread_mutex_lock(&s->lock); /* unref expects the lock; nothing else sees r yet */
    srv_req_unref(r);
    pthread_mutex_unlock(&s->lock);
fail_json:
    cJSON_Delete(req);
    return NULL;
}

/* ------------------------------------------------------------------ answers */
static cJSON *base(const srv_server *s, const srv_req *r, const char *object)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", r->id);
    cJSON_AddStringToObject(o, "object", object);
    cJSON_AddNumberToObject(o, "created", (double)r->created);
    cJSON_AddStringToObject(o, "model", s->model_name);
    return o;
}

uint64_t srv_choice_seed(uint64_t seed, int i)
{
    if (i == 0) return seed;
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (uint64_t)i; /* splitmix64 of seed + i*phi */
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void add_usage(cJSON *o, const srv_req *r)
{
    cJSON *u = cJSON_AddObjectToObject(o, "usage");
    cJSON_AddNumberToObject(u, "prompt_tokens", r->n_prompt);
    cJSON_AddNumberToObject(u, "completion_tokens", r->n_gen);
    cJSON_AddNumberToObject(u, "total_tokens", r->n_prompt + r->n_gen);
    cJSON *d = cJSON_AddObjectToObject(u, "prompt_tokens_details");
    cJSON_AddNumberToObject(d, "cached_tokens", r->cached_tokens);
}

/* Chat-shaped entries -> the /v1/completions shape (columns). */
static cJSON *logprobs_json(const srv_req *r, const cJSON *entries, size_t text_offset)
{
    if (!r->logprobs) return cJSON_CreateNull();
    if (r->kind == SRV_CHAT) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddItemToObject(o, "content",
                              entries ? cJSON_Duplicate(entries, 1) : cJSON_CreateArray());
        return o;
    }
    cJSON *o = cJSON_CreateObject();
    cJSON *toks = cJSON_AddArrayToObject(o, "tokens");
    cJSON *lps = cJSON_AddArrayToObject(o, "token_logprobs");
    cJSON *tops = cJSON_AddArrayToObject(o, "top_logprobs");
    cJSON *offs = cJSON_AddArrayToObject(o, "text_offset");
    const cJSON *e;
    cJSON_ArrayForEach(e, entries)
    {
        const char *t = cJSON_GetObjectItem(e, "token")->valuestring;
        cJSON_AddItemToArray(toks, cJSON_CreateString(t));
        cJSON_AddItemToArray(lps,
                             cJSON_CreateNumber(cJSON_GetObjectItem(e, "logprob")->valuedouble));
        cJSON *m = cJSON_CreateObject();
        const cJSON *a;
        cJSON_ArrayForEach(a, cJSON_GetObjectItem(e, "top_logprobs"))
            cJSON_AddNumberToObject(m, cJSON_GetObjectItem(a, "token")->valuestring,
                                    cJSON_GetObjectItem(a, "logprob")->valuedouble);
        cJSON_AddItemToArray(tops, m);
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)text_offset));
        text_offset += strlen(t);
    }
    return o;
}

char *srv_api_chunk_json(const srv_server *s, const srv_req *r, const srv_choice *k,
                         const char *text, size_t len, int role, const char *finish,
                         const cJSON *logprobs)
{
    int chat = r->kind == SRV_CHAT;
    cJSON *o = base(s, r, chat ? "chat.completion.chunk" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices"), *c = cJSON_CreateObject();
    cJSON_AddItemToArray(ch, c);
    cJSON_AddNumberToObject(c, "index", k->index);
    char *t = strndup(text, len);
    if (chat) {
        cJSON *d = cJSON_AddObjectToObject(c, "delta");
        if (role) cJSON_AddStringToObject(d, "role", "assistant");
        if (!finish && t) cJSON_AddStringToObject(d, "content", t);
    } else {
        cJSON_AddStringToObject(c, "text", t ? t : "");
    }
    free(t);
    cJSON_AddItemToObject(c, "logprobs",
                          finish && !logprobs ? cJSON_CreateNull()
                                              : logprobs_json(r, logprobs, k->emitted));
    if (finish)
        cJSON_AddStringToObject(c, "finish_reason", finish);
    else
        cJSON_AddNullToObject(c, "finish_reason");
    if (r->include_usage) cJSON_AddNullToObject(o, "usage");
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

char *srv_api_usage_json(const srv_server *s, const srv_req *r)
{
    cJSON *o = base(s, r, r->kind == SRV_CHAT ? "chat.completion.chunk" : "text_completion");
    cJSON_AddArrayToObject(o, "choices");
    add_usage(o, r);
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

char *srv_api_final_json(const srv_server *s, const srv_req *r)
{
    int chat = r->kind == SRV_CHAT;
    cJSON *o = base(s, r, chat ? "chat.completion" : "text_completion");
    cJSON *ch = cJSON_AddArrayToObject(o, "choices");
    for (int i = 0; i < r->n; i++) {
        const srv_choice *k = &r->choices[i];
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToArray(ch, c);
        cJSON_AddNumberToObject(c, "index", k->index);
        const char *text = k->text.p ? k->text.p : "";
        if (chat) {
            cJSON *m = cJSON_AddObjectToObject(c, "message");
            cJSON_AddStringToObject(m, "role", "assistant");
            cJSON_AddStringToObject(m, "content", text);
        } else {
            cJSON_AddStringToObject(c, "text", text);
        }
        cJSON_AddItemToObject(c, "logprobs", logprobs_json(r, k->lp_pending, 0));
        cJSON_AddStringToObject(c, "finish_reason", k->finish ? k->finish : "stop");
    }
    add_usage(o, r);
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

/* ------------------------------------------------------------------ utility endpoints */
char *srv_api_tokenize(srv_server *s, const char *body, size_t len, srv_error *e)
{
    cJSON *req = parse_body(body, len, e);
    if (!req) return NULL;
    char *out = NULL;
    srv_req tmp = {0};
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(req, "content");
    if (!c) c = cJSON_GetObjectItemCaseSensitive(req, "prompt");
    int add = 1;
    if (!cJSON_IsString(c)) {
        srv_err(e, 400, "content", "invalid_type", "'content' (a string) is required");
    } else if (get_bool(req, "add_special", &add, e) >= 0 &&
               encode(s, c->valuestring, add, &tmp, "content", e) == 0) {
        cJSON *o = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(o, "tokens");
        for (int i = 0; i < tmp.n_prompt; i++)
            cJSON_AddItemToArray(a, cJSON_CreateNumber(tmp.prompt[i]));
        cJSON_AddNumberToObject(o, "count", tmp.n_prompt);
        cJSON_AddNumberToObject(o, "max_model_len", s->ctx_len);
        out = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    free(tmp.prompt);
    cJSON_Delete(req);
    return out;
}

char *srv_api_detokenize(srv_server *s, const char *body, size_t len, srv_error *e)
{
    cJSON *req = parse_body(body, len, e);
    if (!req) return NULL;
    char *out = NULL;
    srv_req tmp = {0};
    srv_buf text = {0};
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(req, "tokens");
    if (!cJSON_IsArray(t)) {
        srv_err(e, 400, "tokens", "invalid_type", "'tokens' (an array of ids) is required");
    } else if (!s->tok) {
        srv_err(e, 400, "tokens", "no_tokenizer", "the model has no tokenizer");
    } else if (ids_from_json(s, t, &tmp, "tokens", e) == 0) {
        eng_utf8_stream u;
        eng_utf8_init(&u);
        srv_buf_str(&text, "");
        pthread_mutex_lock(&s->tok_lock);
        int bos = eng_tokenizer_bos(s->tok);
        for (int i = 0; i < tmp.n_prompt; i++) {
            if (tmp.prompt[i] == bos) continue;
            const char *p = eng_tokenizer_decode(s->tok, i ? tmp.prompt[i - 1] : -1, tmp.prompt[i]);
            size_t n = strlen(p);
            char *clean = malloc(3 * (n + 4));
            if (clean) srv_buf_add(&text, clean, eng_utf8_push(&u, p, n, clean));
            free(clean);
        }
        pthread_mutex_unlock(&s->tok_lock);
        char tail[16];
        srv_buf_add(&text, tail, eng_utf8_flush(&u, tail));
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "content", text.p);
        out = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    srv_buf_free(&text);
    free(tmp.prompt);
    cJSON_Delete(req);
    return out;
}

char *srv_api_apply_template(srv_server *s, const char *body, size_t len, srv_error *e)
{
    cJSON *req = parse_body(body, len, e);
    if (!req) return NULL;
    char *out = NULL, *text = srv_tmpl_render(s->tmpl, req, e);
    if (text) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "prompt", text);
        out = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
    }
    free(text);
    cJSON_Delete(req);
    return out;
}

char *srv_api_models(srv_server *s)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON *d = cJSON_AddArrayToObject(o, "data"), *m = cJSON_CreateObject();
    cJSON_AddItemToArray(d, m);
    cJSON_AddStringToObject(m, "id", s->model_name);
    cJSON_AddStringToObject(m, "object", "model");
    cJSON_AddNumberToObject(m, "created", 0);
    cJSON_AddStringToObject(m, "owned_by", "ringinfer");
    cJSON_AddNumberToObject(m, "max_model_len", s->ctx_len);
    char *out = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return out;
}

char *srv_api_metrics(srv_server *s)
{
    static const char *classes[] = {"2xx", "400", "401", "404", "413", "503"};
    srv_buf b = {0};
    char line[256];
    pthread_mutex_lock(&s->lock);
    srv_stats st = s->st;
    int running = s->running, queued = s->queued, waiting = s->queued_seqs,
        ready = s->ready && !s->lost && !s->draining;
    int lost = s->lost, slots = s->slots;
    pthread_mutex_unlock(&s->lock);
    srv_buf_str(&b, "# HELP ringinfer_http_requests_total HTTP requests answered, by status.\n"
                    "# TYPE ringinfer_http_requests_total counter\n");
    for (int i = 0; i < 6; i++) {
        snprintf(line, sizeof(line), "ringinfer_http_requests_total{status=\"%s\"} %lu\n",
                 classes[i], st.requests[i]);
        srv_buf_str(&b, line);
    }
#define METRIC(name, type, help, fmt, val)                                                         \
    snprintf(line, sizeof(line),                                                                   \
             "# HELP " name " " help "\n# TYPE " name " " type "\n" name " " fmt "\n", val);       \
    srv_buf_str(&b, line)
    METRIC("ringinfer_requests_finished_total", "counter", "Completions that ran to the end.",
           "%lu", st.completions);
    METRIC("ringinfer_requests_cancelled_total", "counter", "Completions whose client went away.",
           "%lu", st.cancelled);
    METRIC("ringinfer_requests_failed_total", "counter", "Completions ended by an error.", "%lu",
           st.failed);
    METRIC("ringinfer_prompt_tokens_total", "counter", "Prompt tokens prefilled.", "%lu",
           st.prompt_tokens);
    METRIC("ringinfer_prompt_tokens_cached_total", "counter",
           "Prompt tokens taken from a slot's KV cache or copied from a sibling choice's.", "%lu",
           st.cached_tokens);
    METRIC("ringinfer_generation_tokens_total", "counter", "Tokens generated.", "%lu",
           st.gen_tokens);
    METRIC("ringinfer_steps_total", "counter", "Engine steps run by every rank.", "%lu", st.steps);
    METRIC("ringinfer_requests_running", "gauge", "Slots holding a sequence.", "%d", running);
    METRIC("ringinfer_requests_waiting", "gauge", "Requests with a choice waiting for a slot.",
           "%d", queued);
    METRIC("ringinfer_sequences_waiting", "gauge",
           "Sequences (choices of the queued requests) waiting for a slot.", "%d", waiting);
    METRIC("ringinfer_slots_total", "gauge", "Slots (--parallel).", "%d", slots);
    METRIC("ringinfer_ranks", "gauge", "Tensor-parallel ranks.", "%d", s->comm->size);
    METRIC("ringinfer_ready", "gauge", "1 when the server takes requests.", "%d", ready);
    METRIC("ringinfer_rank_lost", "gauge", "1 once a collective failed.", "%d", lost);
    METRIC("ringinfer_time_to_first_token_seconds_sum", "counter",
           "Sum of the times from request to first token.", "%.6f", st.ttft_sum);
    METRIC("ringinfer_time_to_first_token_seconds_count", "counter", "Requests counted in the sum.",
           "%lu", st.ttft_count);
#undef METRIC
    return b.p;
}
