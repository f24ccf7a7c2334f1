/* SPDX-License-Identifier: MIT */
/* `ringinfer serve`: an OpenAI-compatible HTTP server on rank 0, the other ranks in lock-step.
 *
 * Pieces (one file each): serve_main.c (options, loading, the step loop of every rank),
 * record.c (the fixed-size command record broadcast each step), sched.c (rank 0: slots,
 * admission, sampling, stop strings, output), http.c (libmicrohttpd: routing, bodies, SSE),
 * api.c (request parsing and validation, response JSON), tmpl.c (chat template).
 *
 * Threads on rank 0: the libmicrohttpd polling thread (parses and validates requests,
 * tokenizes, renders templates, writes responses) and the engine thread (runs the steps).
 * They share srv_server under srv_server.lock; the tokenizer has its own lock. Other ranks
 * run only the engine thread. Internal header: not part of the engine's public API.
 */
#ifndef ENG_SERVE_H
#define ENG_SERVE_H

#include "../eng.h"
#include "../tokenizer/tokenizer.h"
#include "../utf8.h"

#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>

/* The subcommand: argv[1] is "serve". Returns the exit code like eng_cli_main. */
int eng_serve_main(int argc, char **argv, const eng_coll *comm, FILE *out, FILE *errf);

#define SRV_MAX_PARALLEL 64
#define SRV_MAX_STOP 4
#define SRV_MAX_TOP_LOGPROBS 20

/* ------------------------------------------------------------------ growable byte buffer */
typedef struct srv_buf {
    char *p;
    size_t len, cap;
} srv_buf;
int srv_buf_add(srv_buf *b, const void *data, size_t n); /* 0 ok, -1 out of memory */
int srv_buf_str(srv_buf *b, const char *s);
void srv_buf_free(srv_buf *b);

/* ------------------------------------------------------------------ options */
typedef struct srv_opts {
    const char *model, *tokenizer, *host, *api_key_file, *chat_template, *alias;
    int port, parallel, max_queue, threads, ctx_size, chunk;
    int precision; /* --prefill-precision: eng_prefill_precision */
    double drain_timeout_s;
    size_t max_body;           /* bytes of a request body */
    eng_device device;         /* --device (default: auto) */
    const char *device_layers; /* --device-layers / -n, NULL when not given */
} srv_opts;

/* ------------------------------------------------------------------ one request */
typedef enum { SRV_CHAT, SRV_COMPLETION } srv_kind;

typedef struct srv_req srv_req;

/* One of a request's n choices: its own sequence (slot, sampler, text). Engine thread only,
 * except that the final answer reads every choice once all have finished. */
typedef struct srv_choice {
    int index;         /* in the answer: prompt * n + its number for that prompt */
    int stream_no;     /* its number for its prompt: the seed's stream */
    const int *prompt; /* [n_prompt], inside srv_req.prompt */
    int n_prompt;
    eng_sampler *smp;               /* while it holds a slot */
    int slot, n_gen, prev, started; /* started: the role chunk was sent */
    const char *finish;             /* "stop" / "length" once finished, else NULL */
    srv_buf text;                   /* generated text (valid UTF-8) */
    size_t emitted;                 /* bytes of text already sent */
    eng_utf8_stream utf8;           /* holds back a character split across tokens */
    cJSON *lp_pending;              /* logprob entries not yet sent (all of them unstreamed) */
} srv_choice;

struct srv_req {
    /* Fixed once queued (written by the HTTP thread before it hands the request over). */
    struct srv_server *srv;
    srv_kind kind;
    int stream, include_usage;
    int *prompt;     /* [n_prompt]: every prompt, one after the other */
    int n_prompt;    /* tokens of all prompts (usage counts each prompt once) */
    int *prompt_off; /* [n_prompts + 1]: where prompt i starts */
    int n_prompts;   /* /v1/completions may send a batch of prompts; chat: 1 */
    int max_tokens;
    float temperature, top_p;
    uint64_t seed; /* choice i samples from the stream of srv_choice_seed(seed, i) */
    char *stop[SRV_MAX_STOP];
    int n_stop;
    int ignore_eos;      /* vLLM's extension, for benchmarks: EOS does not end the answer */
    int cache_prompt;    /* llama.cpp's: take what a slot's KV cache holds of the prompt (1) */
    int logprobs;        /* 0: none */
    int top_logprobs;    /* alternatives per token */
    int n;               /* choices: "n" per prompt, each its own sequence */
    srv_choice *choices; /* [n] */
    char id[48];
    long created;

    /* Shared between the threads, under srv_server.lock. */
    int refs;       /* the HTTP request, the response object, the engine */
    int cancelled;  /* the client went away: free its slots at the next step */
    int done;       /* out holds everything; nothing more will be added */
    int suspended;  /* the connection waits for out to grow */
    void *conn;     /* struct MHD_Connection *, NULL once the HTTP side is finished */
    int status;     /* HTTP status of a non-streamed answer */
    srv_buf out;    /* SSE bytes (streamed) or the JSON body */
    int in_queue;   /* waiting choices left: admitted < n */
    int admitted;   /* choices given a slot so far */
    int holding;    /* slots held now */
    int engine_ref; /* the engine's reference is still held */

    /* Engine thread only. */
    srv_req *next;     /* queue link */
    int n_gen;         /* tokens generated, summed over the choices */
    int cached_tokens; /* prompt tokens taken from a slot's cache (usage) */
    int finished;      /* choices finished */
    int ended;         /* counted in the metrics (finished, cancelled or failed) */
    double t_start;
};

/* The seed of choice i: choice 0 keeps the request's seed (n=1 answers what it always did),
 * the others get independent streams, whatever else runs. */
uint64_t srv_choice_seed(uint64_t seed, int i);

void srv_req_unref(srv_req *r); /* caller holds srv_server.lock */

/* ------------------------------------------------------------------ the server */
typedef struct srv_tmpl srv_tmpl;

typedef struct srv_stats {
    unsigned long requests[6]; /* by class: 2xx, 400, 401, 404/405, 413, 503 */
    unsigned long completions, cancelled, failed;
    unsigned long prompt_tokens, gen_tokens, steps;
    unsigned long cached_tokens; /* prompt positions taken from a cache instead of computed */
    double ttft_sum;
    unsigned long ttft_count;
} srv_stats;

typedef struct srv_server {
    int live; /* srv_req objects not yet freed */
    const srv_opts *o;
    const eng_coll *comm;
    const eng_model *model;
    const eng_config *cfg;
    int ctx_len; /* KV positions per slot */
    int slots;   /* --parallel, once the model (and so its default) is known */

    eng_tokenizer *tok; /* may be NULL: ids only */
    pthread_mutex_t tok_lock;
    srv_tmpl *tmpl; /* NULL: no chat template */
    char *api_key;  /* NULL: open */
    const char *model_name;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* the engine thread: new work */
    srv_req *queue_head, *queue_tail;
    int queued, running; /* requests in the queue; slots holding a sequence */
    int queued_seqs;     /* choices waiting for a slot (bounded by --max-queue) */
    int ready, lost, draining;
    srv_stats st;
    unsigned long next_id;
    void *daemon; /* struct MHD_Daemon * */
} srv_server;

/* http.c */
int srv_http_start(srv_server *s, FILE *out, char *err, size_t errlen);
void srv_http_quiesce(srv_server *s);
void srv_http_stop(srv_server *s);
/* out grew or the request is done: wake its connection (caller holds the lock). */
void srv_http_wake(srv_req *r);
/* The client of a waiting connection hung up (caller holds the lock). */
int srv_http_gone(srv_req *r);

/* api.c: a request body -> a queued-ready srv_req, or an error (status, message, param, code).
 * Runs on the HTTP thread. */
typedef struct srv_error {
    int status;
    char message[512];
    const char *type, *param, *code;
} srv_error;
srv_req *srv_api_parse(srv_server *s, srv_kind kind, const char *body, size_t len, srv_error *e);
char *srv_api_error_json(const srv_error *e); /* malloc'd */
int srv_err(srv_error *e, int status, const char *param, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* /tokenize, /detokenize, /apply-template, /v1/models, /metrics: the body to answer. */
char *srv_api_tokenize(srv_server *s, const char *body, size_t len, srv_error *e);
char *srv_api_detokenize(srv_server *s, const char *body, size_t len, srv_error *e);
char *srv_api_apply_template(srv_server *s, const char *body, size_t len, srv_error *e);
char *srv_api_models(srv_server *s);
char *srv_api_metrics(srv_server *s);

/* tmpl.c */
int srv_tmpl_load(const srv_opts *o, srv_tmpl **out, char *err, size_t errlen);
/* messages (+ tools, chat_template_kwargs) of a chat request -> prompt text (malloc'd). */
char *srv_tmpl_render(const srv_tmpl *t, const cJSON *request, srv_error *e);
const char *srv_tmpl_bos(const srv_tmpl *t); /* "" when unknown */
void srv_tmpl_free(srv_tmpl *t);

/* record.c: the command record every rank receives each step. */
typedef enum { SRV_OP_IDLE = 0, SRV_OP_RUN = 1, SRV_OP_FREE = 2 } srv_op;
typedef struct srv_slot_cmd {
    int32_t op, pos, n, logits; /* logits: rank 0 samples after this chunk */
    /* copy_n > 0: before the step, KV positions [0, copy_n) of slot copy_src become this
     * slot's (a prompt that n choices share, computed once) */
    int32_t copy_src, copy_n;
    int32_t *tokens; /* [chunk] inside the record */
} srv_slot_cmd;
typedef struct srv_record {
    int32_t *words; /* [srv_record_words(parallel, chunk)] */
    size_t n_words;
    int parallel, chunk;
} srv_record;
int srv_record_init(srv_record *r, int parallel, int chunk);
void srv_record_free(srv_record *r);
void srv_record_begin(srv_record *r, uint32_t step, int shutdown);
srv_slot_cmd srv_record_slot(const srv_record *r, int slot);
void srv_record_set(srv_record *r, int slot, srv_op op, int pos, const int *tokens, int n,
                    int logits);
/* Slot gets positions [0, n) of slot src's KV cache before the step (with any op). */
void srv_record_copy(srv_record *r, int slot, int src, int n);
/* Checks a received record: 0 ok, else -1 with err naming what is wrong. */
int srv_record_check(const srv_record *r, uint32_t step, int *shutdown, char *err, size_t errlen);

/* sched.c (rank 0) */
typedef struct srv_sched srv_sched;
int srv_sched_create(srv_server *s, srv_sched **out);
void srv_sched_free(srv_sched *q);
/* Fills the next record from the slots and the queue; returns the number of busy slots. */
int srv_sched_plan(srv_sched *q, srv_record *rec);
/* The sampler of the request in slot i (NULL: none) and whether it wants logprobs. */
eng_sampler *srv_sched_sampler(srv_sched *q, int i, int *logprobs);
/* After the step: the tokens sampled for the slots that asked (ids[i], -1: logits not finite,
 * SRV_NO_TOKEN: none this step; logits[i] the row where logprobs were asked) -> text, SSE. */
#define SRV_NO_TOKEN (-2)
void srv_sched_after(srv_sched *q, const srv_record *rec, const int *ids,
                     const float *const *logits);
/* Every running and queued request ends with an error event / status (rank lost, drain). */
void srv_sched_fail_all(srv_sched *q, int status, const char *message);
int srv_sched_busy(srv_sched *q); /* running + queued */

double srv_now(void); /* api.c: the monotonic clock in seconds */

#endif
