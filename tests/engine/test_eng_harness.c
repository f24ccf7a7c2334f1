/* SPDX-License-Identifier: MIT */
#include "test_eng_harness.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct group group;

typedef struct {
    group *g;
    int rank;
    float *scratch; /* [max elements of one reduce] */
    int status;
    char err[512];
} member;

struct group {
    const char *model;
    int tp, threads, n_prompt, n_gen, vocab;
    eng_device device;
    int precision; /* eng_state_params.prefill_precision */
    const int *prompt;
    float *prompt_logits;
    float *gen_logits; /* NULL or [n_gen, vocab] */
    int *gen;
    pthread_barrier_t bar;
    float **bufs;       /* [tp]: each rank's buffer in the current reduce */
    int token;          /* rank 0's pick, read by all after a barrier */
    _Atomic int failed; /* set by any rank that could not start */
};

/* The in-memory all-reduce: publish, sum in rank order, copy back. */
static eng_status reduce(void *ctx, void *vbuf, size_t count, eng_elem et, eng_mem mem,
                         void *stream)
{
    member *me = ctx;
    float *buf = vbuf;
    (void)stream;
    if (et != ENG_ELEM_F32 || mem != ENG_MEM_HOST) return ENG_ERR_UNSUPPORTED;
    eng_h_reduce_f32(me->g->bufs, me->g->tp, me->rank, &me->g->bar, me->scratch, buf, count);
    return ENG_OK;
}

void eng_h_reduce_f32(float **bufs, int tp, int rank, pthread_barrier_t *bar, float *scratch,
                      float *buf, size_t count)
{
    bufs[rank] = buf;
    pthread_barrier_wait(bar);
    memcpy(scratch, bufs[0], count * sizeof(float));
    for (int r = 1; r < tp; r++)
        for (size_t i = 0; i < count; i++)
            scratch[i] += bufs[r][i];
    pthread_barrier_wait(bar);
    memcpy(buf, scratch, count * sizeof(float));
}

int eng_h_argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* Every rank walks the same steps; a failing rank still joins every barrier. */
static void *run_rank(void *arg)
{
    member *me = arg;
    group *g = me->g;
    eng_load_params lp;
    eng_load_params_init(&lp);
    lp.tp_rank = me->rank;
    lp.tp_size = g->tp;
    lp.device = g->device;
    eng_model *m = NULL;
    eng_state *s = NULL;
    eng_status st = eng_model_open(g->model, &lp, &m, me->err, sizeof(me->err));
    if (st == ENG_OK) {
        eng_state_params sp;
        eng_state_params_init(&sp);
        sp.max_batch = g->n_prompt;
        sp.ctx_len = g->n_prompt + g->n_gen;
        sp.all_logits = 1;
        sp.n_threads = g->threads;
        sp.prefill_precision = g->precision;
        st = eng_state_create(m, &sp, &s, me->err, sizeof(me->err));
    }
    if (st == ENG_OK) {
        if (me->rank == 0) g->vocab = eng_model_config(m)->vocab_size; /* one writer: no race */
        me->scratch = malloc((size_t)g->n_prompt * eng_model_config(m)->dim * sizeof(float));
    }
    if (st != ENG_OK) g->failed = 1;
    pthread_barrier_wait(&g->bar);
    if (g->failed) goto out;
    eng_coll red = {.rank = me->rank, .size = g->tp, .allreduce = reduce, .ctx = me};
    const eng_coll *rp = g->tp > 1 ? &red : NULL;
    const float *lg;
    st = eng_forward(m, s, g->prompt, g->n_prompt, 0, 1, rp, &lg);
    if (st != ENG_OK) goto fail;
    if (me->rank == 0) {
        if (g->prompt_logits)
            memcpy(g->prompt_logits, lg, (size_t)g->n_prompt * g->vocab * sizeof(float));
        const float *last = lg + (size_t)(g->n_prompt - 1) * g->vocab;
        if (g->gen_logits && g->n_gen > 0)
            memcpy(g->gen_logits, last, (size_t)g->vocab * sizeof(float));
        g->token = eng_h_argmax(last, g->vocab);
    }
    for (int i = 0; i < g->n_gen; i++) {
        pthread_barrier_wait(&g->bar); /* the token is published */
        int tok = g->token;
        if (me->rank == 0 && g->gen) g->gen[i] = tok;
        if (i + 1 == g->n_gen) break;
        pthread_barrier_wait(&g->bar); /* everyone has read it */
        st = eng_forward(m, s, &tok, 1, g->n_prompt + i, me->rank == 0, rp, &lg);
        if (st != ENG_OK) goto fail;
        if (me->rank == 0) {
            if (g->gen_logits)
                memcpy(g->gen_logits + (size_t)(i + 1) * g->vocab, lg,
                       (size_t)g->vocab * sizeof(float));
            g->token = eng_h_argmax(lg, g->vocab);
        }
    }
    goto out;
fail:
    /* A forward failure mid-run would desynchronise the barriers; it cannot happen for the
     * in-range calls made here, so report it loudly. */
    snprintf(me->err, sizeof(me->err), "eng_forward: %s", eng_status_str(st));
    fprintf(stderr, "rank %d: %s\n", me->rank, me->err);
    abort();
out:
    me->status = st == ENG_OK && !g->failed ? 0 : -1;
    free(me->scratch);
    eng_state_free(s);
    eng_model_close(m);
    return NULL;
}

int eng_h_generate(const char *model, int tp, const int *prompt, int n_prompt, int n_gen,
                   float *prompt_logits, int *gen, char *err, size_t errlen)
{
    return eng_h_generate_threads(model, tp, 1, prompt, n_prompt, n_gen, prompt_logits, NULL, gen,
                                  err, errlen);
}

int eng_h_generate_threads(const char *model, int tp, int threads, const int *prompt, int n_prompt,
                           int n_gen, float *prompt_logits, float *gen_logits, int *gen, char *err,
                           size_t errlen)
{
    return eng_h_generate_on(ENG_DEVICE_CPU, model, tp, threads, prompt, n_prompt, n_gen,
                             prompt_logits, gen_logits, gen, err, errlen);
}

int eng_h_generate_on(eng_device device, const char *model, int tp, int threads, const int *prompt,
                      int n_prompt, int n_gen, float *prompt_logits, float *gen_logits, int *gen,
                      char *err, size_t errlen)
{
    return eng_h_generate_prec(device, ENG_PREFILL_FAST, model, tp, threads, prompt, n_prompt,
                               n_gen, prompt_logits, gen_logits, gen, err, errlen);
}

int eng_h_generate_prec(eng_device device, int precision, const char *model, int tp, int threads,
                        const int *prompt, int n_prompt, int n_gen, float *prompt_logits,
                        float *gen_logits, int *gen, char *err, size_t errlen)
{
    group g = {.model = model,
               .precision = precision,
               .tp = tp,
               .threads = threads,
               .n_prompt = n_prompt,
               .n_gen = n_gen,
               .prompt = prompt,
               .prompt_logits = prompt_logits,
               .gen_logits = gen_logits,
               .gen = gen,
               .device = device};
    member *ms = calloc((size_t)tp, sizeof(member));
    pthread_t *th = calloc((size_t)tp, sizeof(pthread_t));
    g.bufs = calloc((size_t)tp, sizeof(float *));
    pthread_barrier_init(&g.bar, NULL, (unsigned)tp);
    for (int r = 0; r < tp; r++) {
        ms[r].g = &g;
        ms[r].rank = r;
        pthread_create(&th[r], NULL, run_rank, &ms[r]);
    }
    int rc = 0;
    for (int r = 0; r < tp; r++)
        pthread_join(th[r], NULL);
    for (int r = 0; r < tp; r++)
        if (ms[r].status != 0 && rc == 0) {
            snprintf(err, errlen, "rank %d: %s", r, ms[r].err[0] ? ms[r].err : "failed");
            rc = -1;
        }
    pthread_barrier_destroy(&g.bar);
    free(g.bufs);
    free(th);
    free(ms);
    return rc;
}

double eng_h_rel_err(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* ------------------------------------------------------------------ multi-process CLI */
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SHM_SLOT (1 << 20) /* floats per rank per reduce */

typedef struct {
    pthread_barrier_t bar;
    int32_t bcast[64];
    float slots[]; /* [tp][SHM_SLOT] */
} shm_area;

typedef struct {
    shm_area *a;
    int rank, tp;
} shm_ctx;

static eng_status shm_allreduce(void *ctx, void *vbuf, size_t count, eng_elem et, eng_mem mem,
                                void *stream)
{
    shm_ctx *c = ctx;
    float *buf = vbuf;
    (void)stream;
    if (et != ENG_ELEM_F32 || mem != ENG_MEM_HOST) return ENG_ERR_UNSUPPORTED;
    if (count > SHM_SLOT) return ENG_ERR_COLL;
    memcpy(c->a->slots + (size_t)c->rank * SHM_SLOT, buf, count * sizeof(float));
    pthread_barrier_wait(&c->a->bar);
    memcpy(buf, c->a->slots, count * sizeof(float));
    for (int r = 1; r < c->tp; r++)
        for (size_t i = 0; i < count; i++)
            buf[i] += c->a->slots[(size_t)r * SHM_SLOT + i];
    pthread_barrier_wait(&c->a->bar);
    return ENG_OK;
}

static eng_status shm_bcast(void *ctx, void *buf, size_t count, eng_elem et, int root)
{
    shm_ctx *c = ctx;
    if (et != ENG_ELEM_I32) return ENG_ERR_UNSUPPORTED;
    if (count > 64) return ENG_ERR_COLL;
    if (c->rank == root) memcpy(c->a->bcast, buf, count * sizeof(int32_t));
    pthread_barrier_wait(&c->a->bar);
    if (c->rank != root) memcpy(buf, c->a->bcast, count * sizeof(int32_t));
    pthread_barrier_wait(&c->a->bar);
    return ENG_OK;
}

int eng_h_cli(int tp, int argc, char **argv, const char *dir, int *rcs)
{
    size_t len = sizeof(shm_area) + (size_t)tp * SHM_SLOT * sizeof(float);
    shm_area *a = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (a == MAP_FAILED) return -1;
    pthread_barrierattr_t at;
    pthread_barrierattr_init(&at);
    pthread_barrierattr_setpshared(&at, PTHREAD_PROCESS_SHARED);
    pthread_barrier_init(&a->bar, &at, (unsigned)tp);
    pid_t pids[64];
    fflush(NULL);
    for (int r = 0; r < tp; r++) {
        pids[r] = fork();
        if (pids[r] == 0) {
            char p[4200];
            snprintf(p, sizeof(p), "%s/out%d", dir, r);
            FILE *out = fopen(p, "w");
            snprintf(p, sizeof(p), "%s/err%d", dir, r);
            FILE *errf = fopen(p, "w");
            if (!out || !errf) _exit(99);
            shm_ctx c = {a, r, tp};
            eng_coll comm = {.rank = r,
                             .size = tp,
                             .allreduce = shm_allreduce,
                             .broadcast = shm_bcast,
                             .ctx = &c};
            int rc = eng_cli_main(argc, argv, tp > 1 ? &comm : NULL, out, errf);
            fclose(out);
            fclose(errf);
            _exit(rc);
        }
    }
    int ok = 0;
    time_t deadline = time(NULL) + 60;
    for (int r = 0; r < tp; r++) {
        int status;
        while (waitpid(pids[r], &status, WNOHANG) == 0) {
            if (time(NULL) > deadline) {
                for (int k = 0; k < tp; k++)
                    kill(pids[k], SIGKILL);
                waitpid(pids[r], &status, 0);
                ok = -1;
                break;
            }
            usleep(10000);
        }
        rcs[r] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        if (!WIFEXITED(status)) ok = -1;
    }
    pthread_barrier_destroy(&a->bar);
    munmap(a, len);
    return ok;
}

char *eng_h_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (b && fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (b) b[n] = 0;
    if (len) *len = (size_t)n;
    return b;
}
