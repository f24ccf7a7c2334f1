/* SPDX-License-Identifier: MIT */
/* `ringinfer serve`: options, loading on every rank, and the step loop.
 *
 * Every rank loads its shard and one run state with a KV slot per server slot. Rank 0 also
 * starts the HTTP server. Then, each step, rank 0 plans the step (srv_sched_plan: a decode
 * token for every running sequence and at most one prefill chunk of waiting prompts),
 * broadcasts the command record, every rank runs it as one batched forward pass
 * (eng_forward_batch), and rank 0 samples (srv_sched_after). When idle, rank 0 still sends
 * an empty record every HEARTBEAT_S so the others' broadcast never reaches its deadline and
 * a lost rank is noticed while nothing runs. */
#include "serve.h"

#include "devmap.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HEARTBEAT_S 0.2

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringinfer serve -m MODEL [--tokenizer FILE] [--host 127.0.0.1] [--port 8080]\n"
            "                       [--parallel N] [--max-queue Q] [--api-key-file F]\n"
            "                       [--chat-template FILE] [--alias NAME] [--drain-timeout S]\n"
            "                       [--ctx-size N] [--chunk N] [--threads N] [--max-body BYTES]\n"
            "                       [--device cuda|cpu] [-n|--device-layers \"ORD:NUM;...\"]\n"
            "                       [--prefill-precision fast|high]\n"
            "  An OpenAI-compatible server: start it on every rank like `ringinfer run`; rank 0\n"
            "  listens. --port 0 lets the kernel pick; the bound address is printed on stdout.\n"
            "  --parallel N sequences decoded together (default 4 on the CPU, 16 on a GPU),\n"
            "  --max-queue Q waiting sequences (each choice of a request counts one)\n"
            "  (default 64; more get 503), --ctx-size KV positions per sequence (default: the\n"
            "  model's), --chunk prompt tokens per prefill step (default 64), --drain-timeout S\n"
            "  seconds SIGTERM waits for running requests (default 30), --threads per rank\n"
            "  for the matmuls (default 1). --device and --device-layers as for `ringinfer run`\n"
            "  (the layout follows mistral.rs, docs/SELECTION.md), --prefill-precision as for\n"
            "  `ringinfer run` (the prompt chunks' products on a GPU).\n"
            "  Endpoints: /v1/chat/completions /v1/completions /v1/models /health /metrics\n"
            "  /tokenize /detokenize /apply-template (docs/SERVER.md).\n");
}

static int parse_long(const char *opt, const char *v, long lo, long hi, long *out, FILE *e)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < lo || x > hi) {
        fprintf(e, "ringinfer serve: %s: '%s' is not an integer in %ld..%ld\n", opt, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

/* 0 ok, 1 help printed, -1 bad usage */
static int parse_args(int argc, char **argv, srv_opts *o, FILE *e)
{
    memset(o, 0, sizeof(*o));
    o->host = "127.0.0.1";
    o->port = 8080;
    o->parallel = 0; /* 0: 4 on the CPU, 16 on a GPU (known once the model is loaded) */
    o->max_queue = 64;
    o->chunk = 64;
    o->drain_timeout_s = 30;
    o->max_body = 4 << 20;
    o->device = ENG_DEVICE_AUTO;
    enum {
        O_TOK = 256,
        O_HOST,
        O_PORT,
        O_PAR,
        O_QUEUE,
        O_KEY,
        O_TMPL,
        O_ALIAS,
        O_DRAIN,
        O_CTX,
        O_CHUNK,
        O_THREADS,
        O_BODY,
        O_HELP,
        O_DEV,
        O_PRECISION
    };
    static const struct option opts[] = {{"model", 1, 0, 'm'},
                                         {"tokenizer", 1, 0, O_TOK},
                                         {"host", 1, 0, O_HOST},
                                         {"port", 1, 0, O_PORT},
                                         {"parallel", 1, 0, O_PAR},
                                         {"max-queue", 1, 0, O_QUEUE},
                                         {"api-key-file", 1, 0, O_KEY},
                                         {"chat-template", 1, 0, O_TMPL},
                                         {"alias", 1, 0, O_ALIAS},
                                         {"drain-timeout", 1, 0, O_DRAIN},
                                         {"ctx-size", 1, 0, O_CTX},
                                         {"chunk", 1, 0, O_CHUNK},
                                         {"threads", 1, 0, O_THREADS},
                                         {"max-body", 1, 0, O_BODY},
                                         {"help", 0, 0, O_HELP},
                                         {"device", 1, 0, O_DEV},
                                         {"device-layers", 1, 0, 'n'},
                                         {"prefill-precision", 1, 0, O_PRECISION},
                                         {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    long v;
    while ((c = getopt_long(argc - 1, argv + 1, ":m:n:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            o->model = optarg;
            break;
        case O_TOK:
            o->tokenizer = optarg;
            break;
        case O_HOST:
            o->host = optarg;
            break;
        case O_PORT:
            if (parse_long("--port", optarg, 0, 65535, &v, e)) return -1;
            o->port = (int)v;
            break;
        case O_PAR:
            if (parse_long("--parallel", optarg, 1, SRV_MAX_PARALLEL, &v, e)) return -1;
            o->parallel = (int)v;
            break;
        case O_QUEUE:
            if (parse_long("--max-queue", optarg, 0, 1000000, &v, e)) return -1;
            o->max_queue = (int)v;
            break;
        case O_KEY:
            o->api_key_file = optarg;
            break;
        case O_TMPL:
            o->chat_template = optarg;
            break;
        case O_ALIAS:
            o->alias = optarg;
            break;
        case O_DRAIN:
            if (parse_long("--drain-timeout", optarg, 0, 86400, &v, e)) return -1;
            o->drain_timeout_s = (double)v;
            break;
        case O_CTX:
            if (parse_long("--ctx-size", optarg, 2, 1 << 24, &v, e)) return -1;
            o->ctx_size = (int)v;
            break;
        case O_CHUNK:
            if (parse_long("--chunk", optarg, 1, 4096, &v, e)) return -1;
            o->chunk = (int)v;
            break;
        case O_THREADS:
            if (parse_long("--threads", optarg, 1, ENG_MAX_THREADS, &v, e)) return -1;
            o->threads = (int)v;
            break;
        case O_BODY:
            if (parse_long("--max-body", optarg, 1024, 1L << 30, &v, e)) return -1;
            o->max_body = (size_t)v;
            break;
        case O_PRECISION:
            if ((o->precision = eng_prefill_precision_parse(optarg)) < 0) {
                fprintf(e, "ringinfer serve: --prefill-precision: '%s' is neither fast nor high\n",
                        optarg);
                return -1;
            }
            break;
        case O_DEV:
            if (eng_device_parse(optarg, &o->device)) {
                fprintf(e, "ringinfer serve: --device: '%s' is not cuda or cpu\n", optarg);
                return -1;
            }
            break;
        case 'n':
            o->device_layers = optarg;
            break;
        case O_HELP:
            usage(stdout);
            return 1;
        case ':':
            fprintf(e, "ringinfer serve: option %s needs a value\n", argv[optind]);
            return -1;
        default:
            fprintf(e, "ringinfer serve: unknown option %s\n", argv[optind]);
            return -1;
        }
    }
    if (optind + 1 != argc) {
        fprintf(e, "ringinfer serve: unexpected argument '%s'\n", argv[optind + 1]);
        return -1;
    }
    if (!o->model) return fprintf(e, "ringinfer serve: -m MODEL is required\n"), -1;
    return 0;
}

static char *read_key(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "--api-key-file %s: %s", path, strerror(errno));
        return NULL;
    }
    char line[1024] = "";
    if (!fgets(line, sizeof(line), f)) line[0] = 0;
    fclose(f);
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        line[--n] = 0;
    if (!n) {
        snprintf(err, errlen, "--api-key-file %s: empty (the first line is the key)", path);
        return NULL;
    }
    return strdup(line);
}

static void log_line(void *ctx, const char *line)
{
    fprintf((FILE *)ctx, "ringinfer: %s\n", line);
}

typedef struct engine {
    const eng_model *m;
    eng_state *state;                      /* one KV slot per server slot */
    srv_sched *q;                          /* rank 0: the requests' samplers */
    const float *logits[SRV_MAX_PARALLEL]; /* per slot: the row, where logprobs were asked */
    int ids[SRV_MAX_PARALLEL];             /* per slot: the token sampled, or SRV_NO_TOKEN */
    eng_sampler *smp[SRV_MAX_PARALLEL];    /* per flagged row */
    int keep[SRV_MAX_PARALLEL], row_ids[SRV_MAX_PARALLEL];
    const eng_coll *coll; /* NULL: one rank */
    int root;
    /* The step's batch, built from the record: [parallel + chunk] each. */
    int *tokens, *pos, *seq, *flag;
} engine;

/* Runs the step a record names as one batched forward pass over the slots (decode tokens
 * and prompt chunks together); on rank 0 each slot that samples gets its token from its
 * request's sampler (on the device where the backend can: only the ids come back, and the
 * logits rows of requests that asked for logprobs). */
static eng_status run_step(engine *en, const srv_record *rec, char *err, size_t errlen)
{
    int n = 0, k = 0;
    /* KV copies first: a slot may run the rest of its prompt in this very step. */
    for (int i = 0; i < rec->parallel; i++) {
        srv_slot_cmd c = srv_record_slot(rec, i);
        if (c.copy_n <= 0) continue;
        eng_status st = eng_state_copy_seq(en->m, en->state, i, c.copy_src, c.copy_n);
        if (st != ENG_OK) {
            snprintf(err, errlen, "copy of %d KV positions from slot %d to %d: %s", c.copy_n,
                     c.copy_src, i, eng_status_str(st));
            return st;
        }
    }
    for (int i = 0; i < rec->parallel; i++) {
        srv_slot_cmd c = srv_record_slot(rec, i);
        en->logits[i] = NULL;
        en->ids[i] = SRV_NO_TOKEN;
        if (c.op != SRV_OP_RUN) continue;
        int lp = 0;
        eng_sampler *smp = en->root && c.logits ? srv_sched_sampler(en->q, i, &lp) : NULL;
        for (int t = 0; t < c.n; t++, n++) {
            en->tokens[n] = c.tokens[t];
            en->pos[n] = c.pos + t;
            en->seq[n] = i;
            en->flag[n] = smp && t == c.n - 1;
        }
        if (smp) en->smp[k] = smp, en->keep[k++] = lp;
    }
    if (n == 0) return ENG_OK;
    eng_batch b = {
        .n = n, .tokens = en->tokens, .pos = en->pos, .seq = en->seq, .logits = en->flag};
    const float *lg = NULL;
    eng_status st = eng_forward_batch_sample(en->m, en->state, &b, en->coll, k ? en->smp : NULL,
                                             en->keep, k ? en->row_ids : NULL, &lg);
    if (st != ENG_OK) {
        const char *why = eng_state_error(en->state);
        snprintf(err, errlen, "batch of %d tokens: %s%s%s", n, eng_status_str(st),
                 why[0] ? ": " : "", why);
        return st;
    }
    /* The flagged rows come back in token order, i.e. slot order. */
    size_t V = (size_t)eng_model_config(en->m)->vocab_size;
    k = 0;
    for (int i = 0; i < rec->parallel; i++) {
        srv_slot_cmd c = srv_record_slot(rec, i);
        if (c.op != SRV_OP_RUN || !en->root || !c.logits) continue;
        int lp = 0;
        if (!srv_sched_sampler(en->q, i, &lp)) continue;
        en->ids[i] = en->row_ids[k];
        if (lp && lg) en->logits[i] = lg + V * (size_t)k;
        k++;
    }
    return ENG_OK;
}

static eng_status bcast(const eng_coll *comm, srv_record *rec)
{
    if (comm->size == 1) return ENG_OK;
    return comm->broadcast(comm->ctx, rec->words, rec->n_words, ENG_ELEM_I32, 0);
}

/* Rank 0: the step loop. Returns the exit code. */
static int root_loop(srv_server *s, srv_sched *q, engine *en, srv_record *rec, uint32_t step,
                     FILE *errf)
{
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    struct timespec zero = {0, 0};
    double drain_end = 0;
    char err[512];
    int rc = 0;
    for (;;) {
        if (sigtimedwait(&term, NULL, &zero) > 0 && !s->draining) {
            fprintf(errf, "ringinfer: serve: draining (at most %g s)\n", s->o->drain_timeout_s);
            pthread_mutex_lock(&s->lock);
            s->draining = 1;
            pthread_mutex_unlock(&s->lock);
            srv_http_quiesce(s);
            drain_end = srv_now() + s->o->drain_timeout_s;
        }
        int shutdown = 0;
        if (s->draining && (srv_sched_busy(q) == 0 || srv_now() >= drain_end)) {
            srv_sched_fail_all(q, 503, "the server is shutting down");
            shutdown = 1;
        }
        if (s->lost) { /* nothing can run; answer 503 until told to stop */
            if (s->draining) break;
            pthread_mutex_lock(&s->lock);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 200000000;
            if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
            pthread_cond_timedwait(&s->wake, &s->lock, &ts);
            pthread_mutex_unlock(&s->lock);
            continue;
        }
        if (!shutdown) { /* idle: sleep until work comes or the heartbeat is due */
            pthread_mutex_lock(&s->lock);
            if (!s->running && !s->queued && !s->draining) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                long ns = ts.tv_nsec + (long)(HEARTBEAT_S * 1e9);
                ts.tv_sec += ns / 1000000000;
                ts.tv_nsec = ns % 1000000000;
                pthread_cond_timedwait(&s->wake, &s->lock, &ts);
            }
            pthread_mutex_unlock(&s->lock);
        }
        srv_record_begin(rec, step, shutdown);
        int busy = shutdown ? 0 : srv_sched_plan(q, rec);
        if (!busy && !shutdown && s->comm->size == 1) continue; /* no one to keep in step */
        eng_status st = bcast(s->comm, rec);
        if (st == ENG_OK)
            st = run_step(en, rec, err, sizeof(err));
        else
            snprintf(err, sizeof(err), "broadcast of step %u: %s", step, eng_status_str(st));
        step++;
        if (shutdown) {
            rc = st == ENG_OK ? 0 : 1;
            break;
        }
        if (st != ENG_OK) {
            fprintf(errf, "ringinfer: serve: %s; a rank is lost, /health answers 503\n", err);
            pthread_mutex_lock(&s->lock);
            s->lost = 1;
            pthread_mutex_unlock(&s->lock);
            srv_sched_fail_all(q, 503, "a rank of the server was lost");
            rc = 1;
            continue;
        }
        pthread_mutex_lock(&s->lock);
        s->st.steps++;
        pthread_mutex_unlock(&s->lock);
        srv_sched_after(q, rec, en->ids, en->logits);
    }
    /* Let the answers already written reach their clients (bounded), then stop. */
    double until = srv_now() + 2.0;
    pthread_mutex_lock(&s->lock);
    while (s->live > 0 && srv_now() < until) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) ts.tv_sec++, ts.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&s->wake, &s->lock, &ts);
    }
    pthread_mutex_unlock(&s->lock);
    return s->lost ? 1 : rc;
}

/* Other ranks: receive, check, run; until shutdown or a failed collective. */
static int worker_loop(const eng_coll *comm, engine *en, srv_record *rec, FILE *errf)
{
    char err[512];
    for (uint32_t step = 0;; step++) {
        eng_status st = bcast(comm, rec);
        if (st != ENG_OK) {
            fprintf(errf, "ringinfer: serve: rank %d: broadcast of step %u: %s\n", comm->rank, step,
                    eng_status_str(st));
            return 1;
        }
        int shutdown = 0;
        if (srv_record_check(rec, step, &shutdown, err, sizeof(err))) {
            fprintf(errf, "ringinfer: serve: rank %d: %s\n", comm->rank, err);
            return 1;
        }
        if ((st = run_step(en, rec, err, sizeof(err))) != ENG_OK) {
            fprintf(errf, "ringinfer: serve: rank %d: %s\n", comm->rank, err);
            return 1;
        }
        if (shutdown) return 0;
    }
}

int eng_serve_main(int argc, char **argv, const eng_coll *comm, FILE *out, FILE *errf)
{
    srv_opts o;
    int r = parse_args(argc, argv, &o, errf);
    if (r) return r > 0 ? 0 : 2;
    eng_coll single = {.rank = 0, .size = 1};
    if (!comm) comm = &single;
    int root = comm->rank == 0, rc = 1, locks = 0;
    char err[1024] = "";
    eng_model *m = NULL;
    engine en = {0};
    srv_record rec = {0};
    srv_server s = {0};
    srv_sched *q = NULL;
    eng_status st;

    /* SIGTERM/SIGINT are taken by the step loop (sigtimedwait), in every thread started here;
     * a closed client socket must not kill the process. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    pthread_sigmask(SIG_BLOCK, &term, NULL);
    signal(SIGPIPE, SIG_IGN);

    s.o = &o;
    s.comm = comm;
    s.model_name = o.alias ? o.alias : o.model;
    if (root) { /* rank 0 listens while it loads: /health answers 503 until it is ready */
        pthread_mutex_init(&s.lock, NULL);
        pthread_mutex_init(&s.tok_lock, NULL);
        pthread_cond_init(&s.wake, NULL);
        locks = 1;
        st = ENG_ERR_INVALID_ARG;
        if (srv_tmpl_load(&o, &s.tmpl, err, sizeof(err))) goto fail;
        if (o.api_key_file && !(s.api_key = read_key(o.api_key_file, err, sizeof(err)))) goto fail;
        st = ENG_ERR_IO;
        if (srv_http_start(&s, out, err, sizeof(err))) goto fail;
    }

    eng_load_params lp;
    eng_load_params_init(&lp);
    lp.tp_rank = comm->rank;
    lp.tp_size = comm->size;
    lp.log = root ? log_line : NULL;
    lp.log_ctx = errf;
    char layout[512];
    if ((st = eng_place_setup(o.model, o.device, o.device_layers, comm, &lp, layout, sizeof(layout),
                              err, sizeof(err))) != ENG_OK)
        goto fail;
    if ((st = eng_model_open(o.model, &lp, &m, err, sizeof(err))) != ENG_OK) goto fail;
    const eng_config *c = eng_model_config(m);
    int ctx_len = o.ctx_size ? (o.ctx_size < c->seq_len ? o.ctx_size : c->seq_len) : c->seq_len;

    /* One run state for all slots: a step is one batched forward pass of at most a decode
     * token per slot plus one prefill chunk. */
    if (!o.parallel) o.parallel = strcmp(eng_model_backend(m), "cpu") ? 16 : 4;
    eng_state_params sp;
    eng_state_params_init(&sp);
    sp.max_batch = o.parallel + o.chunk;
    sp.ctx_len = ctx_len;
    sp.n_seqs = o.parallel;
    sp.prefill_precision = o.precision;
    if (o.threads) sp.n_threads = o.threads;
    if ((st = eng_state_create(m, &sp, &en.state, err, sizeof(err))) != ENG_OK) goto fail;
    size_t nb = (size_t)(o.parallel + o.chunk);
    en.tokens = malloc(nb * sizeof(int));
    en.pos = malloc(nb * sizeof(int));
    en.seq = malloc(nb * sizeof(int));
    en.flag = malloc(nb * sizeof(int));
    if (!en.tokens || !en.pos || !en.seq || !en.flag) {
        st = ENG_ERR_NOMEM;
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    en.m = m;
    en.root = root;
    en.coll = comm->size > 1 ? comm : NULL;
    if (srv_record_init(&rec, o.parallel, o.chunk)) {
        st = ENG_ERR_NOMEM;
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }

    if (!root) {
        rc = worker_loop(comm, &en, &rec, errf);
        goto cleanup;
    }

    eng_tokenizer *tok = NULL;
    /* No tokenizer: the server works in token ids only. */
    st = eng_tokenizer_load_for_model(o.model, o.tokenizer, c->vocab_size, &tok, err, sizeof(err));
    if (st != ENG_OK) goto fail;
    if (tok && eng_tokenizer_vocab_size(tok) > c->vocab_size) {
        st = ENG_ERR_FORMAT;
        snprintf(err, sizeof(err), "tokenizer has %d tokens but the model's vocabulary is %d",
                 eng_tokenizer_vocab_size(tok), c->vocab_size);
        eng_tokenizer_free(tok);
        goto fail;
    }
    /* What the HTTP thread may read once it sees ready (both sides hold the lock). */
    pthread_mutex_lock(&s.lock);
    s.model = m;
    s.cfg = c;
    s.ctx_len = ctx_len;
    s.slots = o.parallel;
    s.tok = tok;
    pthread_mutex_unlock(&s.lock);
    if (srv_sched_create(&s, &q)) {
        st = ENG_ERR_NOMEM;
        snprintf(err, sizeof(err), "out of memory");
        goto fail;
    }
    en.q = q;
    fprintf(errf, "ringinfer: %s\n", layout);
    fprintf(errf,
            "ringinfer: serve: %s: %d slot%s of %d positions, prefill chunk %d (precision %s), "
            "%d rank%s, kernels %s\n",
            s.model_name, o.parallel, o.parallel > 1 ? "s" : "", s.ctx_len, o.chunk,
            eng_prefill_precision_name(o.precision), comm->size, comm->size > 1 ? "s" : "",
            eng_kernel_name());
    /* Ready only once every rank has loaded and takes records: step 0 is an empty record. */
    srv_record_begin(&rec, 0, 0);
    if ((st = bcast(comm, &rec)) != ENG_OK) {
        snprintf(err, sizeof(err), "the other ranks did not join (first record): %s",
                 eng_status_str(st));
        goto fail;
    }
    pthread_mutex_lock(&s.lock);
    s.ready = 1;
    pthread_mutex_unlock(&s.lock);
    rc = root_loop(&s, q, &en, &rec, 1, errf);
    goto cleanup;
fail:
    fprintf(errf, "ringinfer: serve: rank %d: %s\n", comm->rank, err);
    rc = st == ENG_ERR_INVALID_ARG ? 2 : 1;
cleanup:
    srv_http_stop(&s);
    srv_sched_free(q);
    if (locks) {
        pthread_cond_destroy(&s.wake);
        pthread_mutex_destroy(&s.tok_lock);
        pthread_mutex_destroy(&s.lock);
    }
    srv_tmpl_free(s.tmpl);
    free(s.api_key);
    eng_tokenizer_free(s.tok);
    srv_record_free(&rec);
    eng_state_free(en.state);
    free(en.tokens);
    free(en.pos);
    free(en.seq);
    free(en.flag);
    eng_model_close(m);
    return rc;
}
