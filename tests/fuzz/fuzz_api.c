/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the server's request parsing (engine/server/api.c and tmpl.c), the code
 * that turns an HTTP body from anyone who can reach the port into a queued request.
 * Input: one selector byte (chat, completion, tokenize, detokenize, apply-template), then the
 * body. A small llama2.c-format tokenizer and a chat template are written once at start-up, so
 * the run needs no model files. Checks besides the sanitizers: an accepted request's prompts
 * are within the context and the vocabulary, a refused one has a 4xx/5xx status, a one-line
 * message and an error body that is JSON. */
#include "engine/server/serve.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CTX 48      /* KV positions per slot: small, so that long prompts hit the limit */
#define VOCAB 320   /* the model's vocabulary: wider than the tokenizer's, as Qwen's is */
#define TOK_EXTRA 9 /* merged pieces after the 3 specials and 256 bytes */

static srv_server srv;
static srv_opts opts;
static eng_config cfg;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_api: set-up failed: %s\n", what);
    abort();
}

/* tokenizer.bin: <unk> <s> </s>, byte tokens <0x00>..<0xFF>, then a few merges. */
static void write_tokenizer(const char *path)
{
    static const char *const extra[TOK_EXTRA] = {"▁", "▁t",  "he",  "▁the",  "ll",
                                                 "o", "▁he", "llo", "▁hello"};
    FILE *f = fopen(path, "wb");
    if (!f) die(path);
    int32_t maxlen = 16;
    fwrite(&maxlen, 4, 1, f);
    for (int i = 0; i < 3 + 256 + TOK_EXTRA; i++) {
        char piece[16];
        if (i < 3)
            snprintf(piece, sizeof(piece), "%s", i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
        else if (i < 259)
            snprintf(piece, sizeof(piece), "<0x%02X>", i - 3);
        else
            snprintf(piece, sizeof(piece), "%s", extra[i - 259]);
        float score = i < 259 ? 0.0f : (float)(i - 259);
        int32_t n = (int32_t)strlen(piece);
        fwrite(&score, 4, 1, f);
        fwrite(&n, 4, 1, f);
        fwrite(piece, 1, (size_t)n, f);
    }
    if (fclose(f)) die(path);
}

static void write_template(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) die(path);
    fputs("{{ bos_token }}{% for m in messages %}"
          "{% if m.role == 'system' and not loop.first %}"
          "{{ raise_exception('system message must come first') }}{% endif %}"
          "<|{{ m.role }}|>\n{{ m.content | trim }}{% if m.tool_calls %}"
          "{{ m.tool_calls | tojson }}{% endif %}\n{% endfor %}"
          "{% if tools %}{{ tools | tojson(indent=2) }}{% endif %}"
          "{% if add_generation_prompt %}<|assistant|>\n{% endif %}",
          f);
    if (fclose(f)) die(path);
}

static void setup(void)
{
    char dir[] = "/tmp/fuzz_api.XXXXXX", tok[64], tmpl[64], err[512];
    if (!mkdtemp(dir)) die("mkdtemp");
    snprintf(tok, sizeof(tok), "%s/tokenizer.bin", dir);
    snprintf(tmpl, sizeof(tmpl), "%s/template.jinja", dir);
    write_tokenizer(tok);
    write_template(tmpl);
    cfg.vocab_size = VOCAB;
    cfg.seq_len = CTX;
    opts.model = dir;
    opts.chat_template = tmpl;
    opts.max_queue = 8;
    srv.o = &opts;
    srv.cfg = &cfg;
    srv.ctx_len = CTX;
    srv.slots = 4;
    srv.model_name = "fuzz";
    if (eng_tokenizer_load_llama2(tok, 3 + 256 + TOK_EXTRA, &srv.tok, err, sizeof(err)) != ENG_OK)
        die(err);
    if (srv_tmpl_load(&opts, &srv.tmpl, err, sizeof(err))) die(err);
    pthread_mutex_init(&srv.lock, NULL);
    pthread_mutex_init(&srv.tok_lock, NULL);
    pthread_cond_init(&srv.wake, NULL);
    unlink(tok);
    unlink(tmpl);
    rmdir(dir);
}

static void check_error(const srv_error *e)
{
    if (e->status < 400 || e->status > 599 || !e->message[0] || strchr(e->message, '\n')) {
        fprintf(stderr, "bad error: status %d, message '%s'\n", e->status, e->message);
        abort();
    }
    char *body = srv_api_error_json(e);
    cJSON *j = body ? cJSON_Parse(body) : NULL;
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(j, "error"))) abort();
    cJSON_Delete(j);
    free(body);
}

static void check_request(const srv_req *r)
{
    if (r->n_prompts < 1 || r->n < 1 || r->max_tokens < 1 || r->prompt_off[0] != 0 ||
        r->prompt_off[r->n_prompts] != r->n_prompt)
        abort();
    for (int p = 0; p < r->n_prompts; p++) {
        int len = r->prompt_off[p + 1] - r->prompt_off[p];
        if (len < 1 || len >= CTX) abort();
    }
    for (int i = 0; i < r->n_prompt; i++)
        if (r->prompt[i] < 0 || r->prompt[i] >= VOCAB) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1) return 0;
    int which = data[0] % 5;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    srv_error e = {0};
    if (which < 2) {
        srv_req *r = srv_api_parse(&srv, which == 0 ? SRV_CHAT : SRV_COMPLETION, body, len, &e);
        if (!r) {
            check_error(&e);
        } else {
            check_request(r);
            pthread_mutex_lock(&srv.lock);
            srv_req_unref(r);
            pthread_mutex_unlock(&srv.lock);
        }
    } else {
        char *out = which == 2   ? srv_api_tokenize(&srv, body, len, &e)
                    : which == 3 ? srv_api_detokenize(&srv, body, len, &e)
                                 : srv_api_apply_template(&srv, body, len, &e);
        if (!out) {
            check_error(&e);
        } else {
            cJSON *j = cJSON_Parse(out);
            if (!cJSON_IsObject(j)) abort(); /* every answer is a JSON object */
            cJSON_Delete(j);
            free(out);
        }
    }
    if (srv.live != 0) abort(); /* every request freed */
    return 0;
}
