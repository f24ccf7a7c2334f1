/* SPDX-License-Identifier: MIT */
/* Rank 0's scheduler: up to --parallel slots, each a sequence (one choice of a request: a
 * request with n choices is n sequences) with its own KV slot in the one run state. Each step is
 * one batched forward pass: every decoding slot feeds the token it sampled at the previous step,
 * and waiting prompts get one chunk of prompt tokens between them (oldest first), so long prompts
 * do not stall the running streams. After the step the slots that asked for logits sample their
 * next token with their own sampler (seeded per choice: the draws do not depend on what else runs);
 * its text goes through the UTF-8 hold-back and the stop-string hold-back before it reaches the
 * client. Only this thread touches a running request's generation fields; the output buffer and
 * flags are shared with the HTTP thread under srv_server.lock.
 *
 * Prompt caching: a slot's KV cache outlives its sequence, so a new prompt that starts like the
 * last one fed there (the same system prompt, the earlier turns of a chat) takes the positions
 * they share, and the n choices of a request compute their prompt once (the others copy its
 * KV, where the backend can). Only whole chunks are taken, never the last prompt token: a
 * prompt's chunks are cut at multiples of the chunk from its start, so positions [0, k chunk)
 * hold bitwise what its own first k chunks would compute, and an answer is the same cached or
 * not, on every backend. */
#include "serve.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct slot {
    srv_req *r;
    int ci;            /* which of r's choices this slot runs */
    int off;           /* prompt tokens already fed */
    int pending;       /* the token to feed next (decode) */
    int freed;         /* tell the other ranks at the next step */
    unsigned long seq; /* admission order: the oldest prompt is prefilled first */
    int *ctok;         /* [ctx_len] prompt tokens whose KV this slot holds at [0, nc) */
    int nc;
    int wait; /* >= 0: a sibling's slot whose prompt KV this one waits to copy */
} slot;

struct srv_sched {
    srv_server *s;
    slot slots[SRV_MAX_PARALLEL];
    unsigned long admitted; /* sequences given a slot so far */
    float *probs;           /* [vocab] scratch for logprobs */
    int *ctok;              /* [parallel, ctx_len] the slots' ctok */
    int can_copy;           /* the backend copies KV between slots */
};

/* The chunk/usage/body writers live in api.c. */
char *srv_api_chunk_json(const srv_server *s, const srv_req *r, const srv_choice *k,
                         const char *text, size_t len, int role, const char *finish,
                         const cJSON *logprobs);
char *srv_api_usage_json(const srv_server *s, const srv_req *r);
char *srv_api_final_json(const srv_server *s, const srv_req *r);

int srv_sched_create(srv_server *s, srv_sched **out)
{
    srv_sched *q = calloc(1, sizeof(*q));
    if (!q) return -1;
    q->s = s;
    q->probs = malloc((size_t)s->cfg->vocab_size * sizeof(float));
    q->ctok = malloc((size_t)s->slots * (size_t)s->ctx_len * sizeof(int));
    if (!q->probs || !q->ctok) {
        srv_sched_free(q);
        return -1;
    }
    for (int i = 0; i < s->slots; i++) {
        q->slots[i].ctok = q->ctok + (size_t)i * (size_t)s->ctx_len;
        q->slots[i].wait = -1;
    }
    q->can_copy = eng_model_can_copy_seq(s->model);
    *out = q;
    return 0;
}

void srv_sched_free(srv_sched *q)
{
    if (!q) return;
    free(q->probs);
    free(q->ctok);
    free(q);
}

int srv_sched_busy(srv_sched *q)
{
    pthread_mutex_lock(&q->s->lock);
    int n = q->s->running + q->s->queued;
    pthread_mutex_unlock(&q->s->lock);
    return n;
}

/* Appends one SSE event "data: X\n\n" (caller holds the lock). */
static void sse(srv_req *r, const char *json)
{
    if (!json) return; /* out of memory: the event is lost, the stream still ends */
    srv_buf_str(&r->out, "data: ");
    srv_buf_str(&r->out, json);
    srv_buf_str(&r->out, "\n\n");
}

/* The rest of this file's helpers: the caller holds the lock. */

/* Counts a request's outcome once, whichever of its choices ends it. */
static void count_end(srv_req *r, unsigned long *counter)
{
    if (r->ended) return;
    r->ended = 1;
    (*counter)++;
}

/* The engine lets go of r once it is neither queued nor in a slot. */
static void engine_drop(srv_req *r)
{
    if (!r->engine_ref || r->in_queue || r->holding) return;
    r->engine_ref = 0;
    srv_req_unref(r);
}

/* r leaves the queue (its choices not yet admitted stop waiting). */
static void leave_queue(srv_server *s, srv_req *r)
{
    if (!r->in_queue) return;
    for (srv_req **pp = &s->queue_head, *prev = NULL; *pp; prev = *pp, pp = &(*pp)->next) {
        if (*pp != r) continue;
        *pp = r->next;
        if (s->queue_tail == r) s->queue_tail = prev;
        break;
    }
    r->next = NULL;
    r->in_queue = 0;
    s->queued--;
    s->queued_seqs -= r->n - r->admitted;
}

/* The slot lets go of its sequence. */
static void release(srv_sched *q, int i)
{
    slot *sl = &q->slots[i];
    srv_req *r = sl->r;
    srv_choice *c = &r->choices[sl->ci];
    eng_sampler_free(c->smp);
    c->smp = NULL;
    c->slot = -1;
    sl->r = NULL;
    sl->freed = 1;
    q->s->running--;
    r->holding--;
    srv_http_wake(r); /* a cancelled request's connection lets libmicrohttpd close it */
    engine_drop(r);
}

static void finish_error(srv_server *s, srv_req *r, int status, const char *message)
{
    srv_error e = {.status = status, .type = status == 503 ? "server_error" : "internal_error"};
    snprintf(e.message, sizeof(e.message), "%s", message);
    char *j = srv_api_error_json(&e);
    int started = 0;
    for (int i = 0; i < r->n; i++)
        started |= r->choices[i].started;
    if (r->stream && started) {
        sse(r, j);
        srv_buf_str(&r->out, "data: [DONE]\n\n");
    } else {
        r->out.len = 0;
        r->status = status;
        if (j) srv_buf_str(&r->out, j);
        if (r->stream) r->stream = 0; /* nothing sent yet: answer with a plain error */
    }
    free(j);
    r->done = 1;
    count_end(r, &s->st.failed);
    srv_http_wake(r);
}

/* r ends with an error: every slot of it is freed and it leaves the queue. */
static void abort_req(srv_sched *q, srv_req *r, int status, const char *message)
{
    srv_server *s = q->s;
    r->refs++; /* r outlives the releases below */
    finish_error(s, r, status, message);
    for (int i = 0; i < s->o->parallel; i++)
        if (q->slots[i].r == r) release(q, i);
    leave_queue(s, r);
    engine_drop(r);
    srv_req_unref(r);
}

void srv_sched_fail_all(srv_sched *q, int status, const char *message)
{
    srv_server *s = q->s;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->o->parallel; i++)
        if (q->slots[i].r) abort_req(q, q->slots[i].r, status, message);
    while (s->queue_head)
        abort_req(q, s->queue_head, status, message);
    pthread_mutex_unlock(&s->lock);
}

/* Prompt positions a sequence may take from a cache holding `common` of its n_prompt tokens:
 * whole chunks, never the last token (its logits are needed). */
static int take(int common, int n_prompt, int chunk)
{
    int most = common < n_prompt - 1 ? common : n_prompt - 1;
    return most > 0 ? most / chunk * chunk : 0;
}

/* The free slot for choice c of r (-1: none): the one whose cache holds most of its prompt,
 * the first on a tie; *reuse: the positions it takes from there. */
static int pick_slot(const srv_sched *q, const srv_req *r, const srv_choice *c, int *reuse)
{
    int best = -1;
    *reuse = 0;
    for (int i = 0; i < q->s->o->parallel; i++) {
        const slot *sl = &q->slots[i];
        if (sl->r) continue;
        if (best < 0) best = i;
        if (!r->cache_prompt) break;
        int common = 0, most = sl->nc < c->n_prompt ? sl->nc : c->n_prompt;
        while (common < most && sl->ctok[common] == c->prompt[common])
            common++;
        int t = take(common, c->n_prompt, q->s->o->chunk);
        if (t > *reuse) *reuse = t, best = i;
    }
    return best;
}

/* A slot of the same request and prompt that computes the prompt itself and will get further
 * than slot i's own cache, for slot i to copy from (-1: none, or the backend cannot copy). */
static int sibling(const srv_sched *q, int i)
{
    const slot *sl = &q->slots[i];
    const srv_choice *c = &sl->r->choices[sl->ci];
    if (!q->can_copy || take(c->n_prompt, c->n_prompt, q->s->o->chunk) <= sl->off) return -1;
    int best = -1;
    for (int j = 0; j < q->s->o->parallel; j++) {
        const slot *o = &q->slots[j];
        if (j == i || o->r != sl->r || o->wait >= 0 || o->r->choices[o->ci].prompt != c->prompt)
            continue;
        if (best < 0 || o->off > q->slots[best].off) best = j;
    }
    return best;
}

int srv_sched_plan(srv_sched *q, srv_record *rec)
{
    srv_server *s = q->s;
    int busy = 0;
    pthread_mutex_lock(&s->lock);
    /* Requests whose client hung up (a waiting connection is suspended: libmicrohttpd does not
     * watch it) leave their slots, every one of them, and the queue. */
    for (int i = 0; i < s->o->parallel; i++) {
        srv_req *r = q->slots[i].r;
        if (r && !r->cancelled && srv_http_gone(r)) r->cancelled = 1;
    }
    for (srv_req *r = s->queue_head; r; r = r->next)
        if (!r->cancelled && srv_http_gone(r)) r->cancelled = 1;
    for (srv_req *r = s->queue_head, *next; r; r = next) {
        next = r->next;
        if (!r->cancelled) continue;
        count_end(r, &s->st.cancelled);
        r->refs++; /* r outlives the engine's drop, for the wake */
        leave_queue(s, r);
        engine_drop(r);
        srv_http_wake(r);
        srv_req_unref(r);
    }
    for (int i = 0; i < s->o->parallel; i++) {
        slot *sl = &q->slots[i];
        if (sl->r && sl->r->cancelled) {
            count_end(sl->r, &s->st.cancelled);
            release(q, i);
        }
    }
    /* The next waiting choice (oldest request first) takes the free slot that holds most of
     * its prompt. */
    while (s->queue_head) {
        srv_req *r = s->queue_head;
        srv_choice *c = &r->choices[r->admitted];
        int reuse = 0, i = pick_slot(q, r, c, &reuse);
        if (i < 0) break;
        slot *sl = &q->slots[i];
        if (eng_sampler_create(s->cfg->vocab_size, r->temperature, r->top_p,
                               srv_choice_seed(r->seed, c->stream_no), &c->smp) != ENG_OK) {
            abort_req(q, r, 500, "out of memory");
            continue;
        }
        sl->r = r;
        sl->ci = c->index;
        sl->off = sl->nc = reuse;
        sl->seq = q->admitted++;
        sl->wait = r->cache_prompt ? sibling(q, i) : -1;
        c->prev = c->prompt[c->n_prompt - 1]; /* the piece of a token depends on the one before */
        c->slot = i;
        if (c->stream_no == 0) r->cached_tokens += reuse; /* usage counts a prompt once */
        r->admitted++;
        r->holding++;
        s->queued_seqs--;
        s->running++;
        s->st.prompt_tokens += (unsigned long)(c->n_prompt - reuse);
        s->st.cached_tokens += (unsigned long)reuse;
        if (r->admitted == r->n) leave_queue(s, r);
    }
    /* Choices waiting for a sibling's prompt copy it once the sibling has computed it (before
     * this step runs), or compute it themselves if the sibling is gone. */
    for (int i = 0; i < s->o->parallel; i++) {
        slot *sl = &q->slots[i];
        if (!sl->r || sl->wait < 0) continue;
        const slot *src = &q->slots[sl->wait];
        const srv_choice *c = &sl->r->choices[sl->ci];
        int want = take(c->n_prompt, c->n_prompt, rec->chunk);
        if (src->r != sl->r || src->r->choices[src->ci].prompt != c->prompt) {
            sl->wait = -1;
        } else if (src->off >= want) {
            srv_record_copy(rec, i, sl->wait, want);
            memcpy(sl->ctok, c->prompt, (size_t)want * sizeof(int));
            s->st.prompt_tokens -= (unsigned long)(want - sl->off);
            s->st.cached_tokens += (unsigned long)(want - sl->off);
            sl->off = sl->nc = want;
            sl->wait = -1;
        }
    }
    pthread_mutex_unlock(&s->lock);
    /* Every decoding slot feeds the token it sampled last step. */
    for (int i = 0; i < s->o->parallel; i++) {
        slot *sl = &q->slots[i];
        srv_req *r = sl->r;
        if (!r) {
            if (sl->freed) srv_record_set(rec, i, SRV_OP_FREE, 0, NULL, 0, 0);
            sl->freed = 0;
            continue;
        }
        sl->freed = 0;
        busy++;
        const srv_choice *c = &r->choices[sl->ci];
        if (sl->off == c->n_prompt)
            srv_record_set(rec, i, SRV_OP_RUN, c->n_prompt + c->n_gen - 1, &sl->pending, 1, 1);
    }
    /* Then one chunk of prompt tokens, oldest prompt first (several short prompts may share
     * it), so a long prompt never holds up the running streams for more than a chunk. Each
     * prompt is cut at multiples of the chunk from its own start, whatever else runs: a piece
     * that does not fit waits for the next step, so a prompt's pieces (and on a GPU their
     * products) are the same alone or in a batch. */
    for (int budget = rec->chunk; budget > 0;) {
        int best = -1;
        for (int i = 0; i < s->o->parallel; i++) {
            slot *sl = &q->slots[i];
            if (sl->r && sl->wait < 0 && sl->off < sl->r->choices[sl->ci].n_prompt &&
                srv_record_slot(rec, i).op != SRV_OP_RUN &&
                (best < 0 || sl->seq < q->slots[best].seq))
                best = i;
        }
        if (best < 0) break;
        slot *sl = &q->slots[best];
        const srv_choice *c = &sl->r->choices[sl->ci];
        int n = c->n_prompt - sl->off < rec->chunk ? c->n_prompt - sl->off : rec->chunk;
        if (n > budget) break;
        srv_record_set(rec, best, SRV_OP_RUN, sl->off, c->prompt + sl->off, n,
                       sl->off + n == c->n_prompt);
        memcpy(sl->ctok + sl->off, c->prompt + sl->off, (size_t)n * sizeof(int));
        sl->off += n;
        sl->nc = sl->off;
        budget -= n;
    }
    return busy;
}

/* "token" (valid UTF-8: a piece that is part of a character shows U+FFFD, as the text
 * would) and "bytes" (the piece's own bytes) of a logprob entry. */
static void add_token(cJSON *o, const char *piece)
{
    size_t n = strlen(piece);
    char out[3 * (256 + 4) + 12];
    if (n > 255) n = 255; /* pieces are short; the bound keeps out on the stack */
    eng_utf8_stream u;
    eng_utf8_init(&u);
    size_t w = eng_utf8_push(&u, piece, n, out);
    w += eng_utf8_flush(&u, out + w);
    out[w] = 0;
    cJSON_AddStringToObject(o, "token", out);
    cJSON *bytes = cJSON_AddArrayToObject(o, "bytes");
    for (size_t i = 0; i < n; i++)
        cJSON_AddItemToArray(bytes, cJSON_CreateNumber((unsigned char)piece[i]));
}

/* log-softmax of the chosen token and the top alternatives, in the shape of the chat API
 * ({"token","logprob","bytes","top_logprobs"}); api.c reshapes it for /v1/completions. */
static cJSON *logprob_entry(srv_sched *q, const srv_req *r, int prev, const float *logits, int tok,
                            const char *piece)
{
    srv_server *s = q->s;
    int V = s->cfg->vocab_size;
    float mx = logits[0];
    for (int i = 1; i < V; i++)
        mx = logits[i] > mx ? logits[i] : mx;
    double sum = 0;
    for (int i = 0; i < V; i++)
        sum += exp((double)(logits[i] - mx));
    double lse = mx + log(sum);
    cJSON *e = cJSON_CreateObject();
    add_token(e, piece);
    cJSON_AddNumberToObject(e, "logprob", logits[tok] - lse);
    cJSON *top = cJSON_AddArrayToObject(e, "top_logprobs");
    /* top-k by repeated selection: k <= SRV_MAX_TOP_LOGPROBS */
    int chosen[SRV_MAX_TOP_LOGPROBS];
    for (int k = 0; k < r->top_logprobs; k++) {
        int best = -1;
        for (int i = 0; i < V; i++) {
            int seen = 0;
            for (int j = 0; j < k; j++)
                seen |= chosen[j] == i;
            if (!seen && (best < 0 || logits[i] > logits[best])) best = i;
        }
        chosen[k] = best;
        pthread_mutex_lock(&s->tok_lock);
        const char *alt = s->tok ? eng_tokenizer_decode(s->tok, prev, best) : "";
        cJSON *a = cJSON_CreateObject();
        add_token(a, alt);
        pthread_mutex_unlock(&s->tok_lock);
        cJSON_AddNumberToObject(a, "logprob", logits[best] - lse);
        cJSON_AddItemToArray(top, a);
    }
    return e;
}

/* How many trailing bytes of text could still become a stop string. */
static size_t stop_holdback(const srv_req *r, const char *t, size_t len)
{
    size_t hold = 0;
    for (int k = 0; k < r->n_stop; k++) {
        size_t sl = strlen(r->stop[k]);
        for (size_t m = sl - 1; m > hold; m--)
            if (m <= len && !memcmp(t + len - m, r->stop[k], m)) {
                hold = m;
                break;
            }
    }
    return hold;
}

/* The first stop string in text at or after from - (longest stop - 1); -1 when none. */
static long stop_find(const srv_req *r, const char *t, size_t len, size_t from)
{
    long best = -1;
    for (int k = 0; k < r->n_stop; k++) {
        size_t sl = strlen(r->stop[k]);
        size_t start = from >= sl ? from - sl + 1 : 0;
        const char *hit = memmem(t + start, len - start, r->stop[k], sl);
        if (hit && (best < 0 || hit - t < best)) best = hit - t;
    }
    return best;
}

/* Sends choice c's text[emitted..upto) (streamed) and, with finish, ends the choice; the
 * request ends with its last choice. Caller holds the lock. */
static void emit(srv_server *s, srv_req *r, srv_choice *c, size_t upto, const char *finish)
{
    if (r->stream) {
        if (upto > c->emitted || (finish && !c->started) || (c->lp_pending && finish)) {
            char *j = srv_api_chunk_json(s, r, c, c->text.p ? c->text.p + c->emitted : "",
                                         upto - c->emitted, !c->started, NULL, c->lp_pending);
            sse(r, j);
            free(j);
            cJSON_Delete(c->lp_pending);
            c->lp_pending = NULL;
            c->started = 1;
            c->emitted = upto;
        }
        if (finish) {
            char *j = srv_api_chunk_json(s, r, c, "", 0, 0, finish, NULL);
            sse(r, j);
            free(j);
        }
    } else if (finish) {
        c->text.len = upto; /* a stop string and what follows it are not part of the answer */
        if (c->text.p) c->text.p[upto] = 0;
    }
    if (finish) {
        c->finish = finish;
        r->finished++;
    }
    if (finish && r->finished == r->n) {
        if (r->stream) {
            if (r->include_usage) {
                char *j = srv_api_usage_json(s, r);
                sse(r, j);
                free(j);
            }
            srv_buf_str(&r->out, "data: [DONE]\n\n");
        } else {
            char *j = srv_api_final_json(s, r);
            r->status = j ? 200 : 500;
            if (j) srv_buf_str(&r->out, j);
            free(j);
        }
        r->done = 1;
        count_end(r, &s->st.completions);
    }
    srv_http_wake(r);
}

eng_sampler *srv_sched_sampler(srv_sched *q, int i, int *logprobs)
{
    srv_req *r = q->slots[i].r;
    *logprobs = r && r->logprobs;
    return r ? r->choices[q->slots[i].ci].smp : NULL;
}

void srv_sched_after(srv_sched *q, const srv_record *rec, const int *ids,
                     const float *const *logits)
{
    srv_server *s = q->s;
    int eos = s->tok ? eng_tokenizer_eos(s->tok) : -1;
    for (int i = 0; i < s->o->parallel; i++) {
        slot *sl = &q->slots[i];
        srv_slot_cmd cmd = srv_record_slot(rec, i);
        srv_req *r = sl->r;
        if (!r || cmd.op != SRV_OP_RUN || !cmd.logits || ids[i] == SRV_NO_TOKEN) continue;
        srv_choice *c = &r->choices[sl->ci];
        int tok = ids[i];
        if (tok < 0) { /* NaN or infinite logits: nothing can be sampled */
            pthread_mutex_lock(&s->lock);
            abort_req(q, r, 500, "the model produced logits that are not finite numbers");
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        c->n_gen++;
        r->n_gen++;
        const char *finish = NULL;
        char piece_buf[256] = "";
        if (tok == eos && !r->ignore_eos) {
            finish = "stop";
        } else {
            pthread_mutex_lock(&s->tok_lock);
            const char *piece = s->tok ? eng_tokenizer_decode(s->tok, c->prev, tok) : "";
            snprintf(piece_buf, sizeof(piece_buf), "%s", piece);
            size_t n = strlen(piece);
            char *clean = malloc(3 * (n + 4));
            size_t w = clean ? eng_utf8_push(&c->utf8, piece, n, clean) : 0;
            pthread_mutex_unlock(&s->tok_lock);
            if (clean) srv_buf_add(&c->text, clean, w);
            free(clean);
        }
        if (r->logprobs && logits[i]) {
            if (!c->lp_pending) c->lp_pending = cJSON_CreateArray();
            cJSON_AddItemToArray(c->lp_pending,
                                 logprob_entry(q, r, c->prev, logits[i], tok, piece_buf));
        }
        c->prev = tok;
        sl->pending = tok;
        size_t upto = c->text.len;
        long hit = stop_find(r, c->text.p ? c->text.p : "", c->text.len, c->emitted);
        if (!finish && hit >= 0) {
            finish = "stop";
            upto = (size_t)hit;
        } else if (!finish && (c->n_gen >= r->max_tokens || c->n_prompt + c->n_gen >= s->ctx_len)) {
            finish = "length";
        }
        if (finish && hit < 0) { /* the held-back bytes of an unfinished character */
            char tail[16];
            size_t w = eng_utf8_flush(&c->utf8, tail);
            srv_buf_add(&c->text, tail, w);
            upto = c->text.len;
        } else if (!finish) {
            upto = c->text.len - stop_holdback(r, c->text.p ? c->text.p : "", c->text.len);
        }
        double now = srv_now();
        pthread_mutex_lock(&s->lock);
        s->st.gen_tokens++;
        if (r->n_gen == 1) {
            s->st.ttft_sum += now - r->t_start;
            s->st.ttft_count++;
        }
        emit(s, r, c, upto, finish);
        if (finish) release(q, i);
        pthread_mutex_unlock(&s->lock);
    }
}
