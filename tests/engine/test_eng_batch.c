/* SPDX-License-Identifier: MIT */
/* Continuous batching (eng_forward_batch): sequences decoded together, each in its own KV
 * slot at its own position, with prompts prefilled in chunks between decode steps and slots
 * reused, give exactly (bitwise, on the CPU) the logits and greedy ids each sequence gets
 * alone through eng_forward. stories260K and the Hugging Face fixtures, at TP 1 and 2
 * (shards as threads with an in-memory all-reduce in rank order), the batched runs with two
 * matmul threads. Also: a malformed batch is refused.
 * `test_eng_batch cuda` runs the same on the GPU at TP 1 (tests/gpu/), where "alone" is each
 * sequence by itself through the same batched calls (a decode row alone is a batch of one;
 * eng_forward's own prefill and attention kernels differ), each prompt cut into the same
 * chunks: the logits must be bitwise equal (decode rows through the small-batch kernel with
 * the batch-1 summation order, each prompt chunk through its own cuBLAS product), on f32,
 * f16 and bf16 models. `test_eng_batch cuda-high` does the same with the prompt products at
 * ENG_PREFILL_HIGH (hi + lo inputs, bproj_split). */
#include "test_eng_harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_SEQ 5
#define N_GEN 10
#define SLOTS 3
#define CHUNK 16
#define MAX_TP 2

static const int prompt_len[N_SEQ] = {1, 7, 23, 40, 3};
static eng_device device = ENG_DEVICE_CPU;
static int precision = ENG_PREFILL_FAST;

typedef struct group {
    int tp;
    pthread_barrier_t bar;
    float *bufs[MAX_TP];
} group;

typedef struct job {
    group *g;
    const char *model;
    int rank, batched, threads;
    int only;            /* run_batched: -1 every sequence, else this one alone */
    int sample;          /* run_batched through eng_forward_batch_sample (greedy) */
    eng_sampler *greedy; /* its sampler (temperature 0: no state, shared by the rows) */
    const int *prompts[N_SEQ];
    int *gen;      /* [N_SEQ, N_GEN] */
    float *logits; /* [N_SEQ, N_GEN, vocab]: the row each generated id was picked from */
    int vocab;
    float *red; /* reduce scratch */
    int status;
    char err[512];
} job;

static eng_status reduce(void *ctx, void *vbuf, size_t count, eng_elem et, eng_mem mem,
                         void *stream)
{
    job *j = ctx;
    group *g = j->g;
    (void)stream;
    if (et != ENG_ELEM_F32 || mem != ENG_MEM_HOST) return ENG_ERR_UNSUPPORTED;
    eng_h_reduce_f32(g->bufs, g->tp, j->rank, &g->bar, j->red, vbuf, count);
    return ENG_OK;
}

static void keep(job *j, int q, int k, const float *row)
{
    memcpy(j->logits + ((size_t)q * N_GEN + (size_t)k) * (size_t)j->vocab, row,
           (size_t)j->vocab * sizeof(float));
    j->gen[q * N_GEN + k] = eng_h_argmax(row, j->vocab);
}

/* Each sequence alone: the whole prompt in one eng_forward, then one token per call. */
static eng_status run_alone(job *j, const eng_model *m, eng_state *s, const eng_coll *coll)
{
    eng_status st;
    const float *lg;
    for (int q = 0; q < N_SEQ; q++) {
        int np = prompt_len[q];
        if ((st = eng_forward(m, s, j->prompts[q], np, 0, 1, coll, &lg)) != ENG_OK) return st;
        keep(j, q, 0, lg);
        for (int k = 1; k < N_GEN; k++) {
            int tok = j->gen[q * N_GEN + k - 1];
            if ((st = eng_forward(m, s, &tok, 1, np + k - 1, 1, coll, &lg)) != ENG_OK) return st;
            keep(j, q, k, lg);
        }
    }
    return ENG_OK;
}

/* All sequences through SLOTS slots: sequence q arrives at step 2q and waits for a free slot;
 * each step feeds every decoding sequence its last token plus CHUNK prompt tokens of the
 * prefilling ones, as the server does. */
/* On a GPU each prefilling sequence takes its own CHUNK tokens a step, so that its chunks are
 * cut the same alone or not (a chunk's cuBLAS product depends on its length). */
#define MAX_ROWS (SLOTS * (CHUNK + 1))
static eng_status run_batched(job *j, const eng_model *m, eng_state *s, const eng_coll *coll)
{
    int slot[N_SEQ], off[N_SEQ], ngen[N_SEQ], owner[SLOTS];
    int tokens[MAX_ROWS], pos[MAX_ROWS], seq[MAX_ROWS], flag[MAX_ROWS], who[MAX_ROWS];
    int own_chunks = device == ENG_DEVICE_CUDA;
    for (int q = 0; q < N_SEQ; q++)
        slot[q] = -1, off[q] = ngen[q] = 0;
    for (int i = 0; i < SLOTS; i++)
        owner[i] = -1;
    int done = j->only >= 0 ? N_SEQ - 1 : 0;
    for (int step = 0; done < N_SEQ; step++) {
        for (int q = 0; q < N_SEQ && q * 2 <= step; q++) {
            if (slot[q] >= 0 || ngen[q] == N_GEN || (j->only >= 0 && q != j->only)) continue;
            for (int i = 0; i < SLOTS && slot[q] < 0; i++)
                if (owner[i] < 0) owner[i] = q, slot[q] = i;
        }
        int n = 0, budget = CHUNK;
        for (int i = 0; i < SLOTS; i++) { /* decode tokens, in slot order */
            int q = owner[i];
            if (q < 0 || off[q] < prompt_len[q]) continue;
            tokens[n] = j->gen[q * N_GEN + ngen[q] - 1];
            pos[n] = prompt_len[q] + ngen[q] - 1;
            seq[n] = i, flag[n] = 1, who[n] = q;
            n++;
        }
        for (int q = 0; q < N_SEQ && budget > 0; q++) { /* prompt chunks, oldest first */
            if (slot[q] < 0 || off[q] == prompt_len[q]) continue;
            if (own_chunks) budget = CHUNK;
            int take = prompt_len[q] - off[q] < budget ? prompt_len[q] - off[q] : budget;
            for (int t = 0; t < take; t++, n++) {
                tokens[n] = j->prompts[q][off[q] + t];
                pos[n] = off[q] + t;
                seq[n] = slot[q], who[n] = q;
                flag[n] = off[q] + t + 1 == prompt_len[q];
            }
            off[q] += take;
            budget -= take;
        }
        if (n == 0) continue; /* nobody has arrived yet */
        eng_batch b = {.n = n, .tokens = tokens, .pos = pos, .seq = seq, .logits = flag};
        const float *lg;
        int ids[MAX_ROWS], keep_rows[MAX_ROWS];
        eng_sampler *smp[MAX_ROWS];
        for (int t = 0; t < n; t++)
            smp[t] = j->greedy, keep_rows[t] = 1;
        /* sample: on a GPU the rows are sampled on the device, and steps of decode rows only
         * replay a graph per row count: the same logits and ids as the eager steps */
        eng_status st = j->greedy
                            ? eng_forward_batch_sample(m, s, &b, coll, smp, keep_rows, ids, &lg)
                            : eng_forward_batch(m, s, &b, coll, &lg);
        if (st != ENG_OK) return st;
        for (int t = 0, row = 0; t < n; t++) {
            if (!flag[t]) continue;
            int q = who[t];
            if (j->greedy &&
                ids[row] != eng_h_argmax(lg + (size_t)row * (size_t)j->vocab, j->vocab))
                j->status = -1; /* the device's greedy pick is not the host's */
            keep(j, q, ngen[q]++, lg + (size_t)row++ * (size_t)j->vocab);
            if (ngen[q] == N_GEN) {
                owner[slot[q]] = -1;
                slot[q] = -1;
                done++;
            }
        }
    }
    return ENG_OK;
}

/* A batch that breaks the rules is refused before anything runs. */
static int bad_batches(const eng_model *m, eng_state *s)
{
    int tok[2] = {1, 2}, pos[2] = {0, 2}, seq[2] = {0, 0}, bad_seq[2] = {0, SLOTS};
    int pos_ok[2] = {0, 1}, big_pos[2] = {0, 1 << 20};
    eng_batch gap = {.n = 2, .tokens = tok, .pos = pos, .seq = seq};
    eng_batch slot = {.n = 2, .tokens = tok, .pos = pos_ok, .seq = bad_seq};
    eng_batch far = {.n = 2, .tokens = tok, .pos = big_pos, .seq = bad_seq};
    eng_batch none = {.n = 0, .tokens = tok, .pos = pos_ok, .seq = seq};
    int before = test_failures;
    CHECK(eng_forward_batch(m, s, &gap, NULL, NULL) == ENG_ERR_RANGE);
    CHECK(eng_forward_batch(m, s, &slot, NULL, NULL) == ENG_ERR_RANGE);
    CHECK(eng_forward_batch(m, s, &far, NULL, NULL) == ENG_ERR_RANGE);
    CHECK(eng_forward_batch(m, s, &none, NULL, NULL) == ENG_ERR_RANGE);
    return test_failures != before;
}

static void *run_rank(void *arg)
{
    job *j = arg;
    group *g = j->g;
    eng_load_params lp;
    eng_load_params_init(&lp);
    lp.tp_rank = j->rank;
    lp.tp_size = g->tp;
    lp.device = device;
    eng_model *m = NULL;
    eng_state *s = NULL;
    eng_status st = eng_model_open(j->model, &lp, &m, j->err, sizeof(j->err));
    if (st == ENG_OK) {
        int ctx = 0;
        for (int q = 0; q < N_SEQ; q++)
            ctx = prompt_len[q] + N_GEN > ctx ? prompt_len[q] + N_GEN : ctx;
        eng_state_params sp;
        eng_state_params_init(&sp);
        sp.ctx_len = ctx;
        int slots = j->batched || device == ENG_DEVICE_CUDA;
        sp.max_batch = slots ? MAX_ROWS : ctx;
        sp.n_seqs = slots ? SLOTS : 1;
        sp.n_threads = j->threads;
        sp.prefill_precision = precision;
        st = eng_state_create(m, &sp, &s, j->err, sizeof(j->err));
    }
    if (st == ENG_OK) {
        j->vocab = eng_model_config(m)->vocab_size;
        j->red = malloc((size_t)(SLOTS + 64) * (size_t)eng_model_config(m)->dim * sizeof(float));
        j->gen = calloc(N_SEQ * N_GEN, sizeof(int));
        j->logits = malloc((size_t)N_SEQ * N_GEN * (size_t)j->vocab * sizeof(float));
        if (!j->red || !j->gen || !j->logits) st = ENG_ERR_NOMEM;
    }
    /* Both ranks load; a failure on one must not leave the other in a barrier. */
    if (st != ENG_OK) {
        fprintf(stderr, "rank %d: %s: %s\n", j->rank, eng_status_str(st), j->err);
        abort();
    }
    eng_coll red = {.rank = j->rank, .size = g->tp, .allreduce = reduce, .ctx = j};
    const eng_coll *coll = g->tp > 1 ? &red : NULL;
    if (j->batched) {
        j->only = -1;
        if (j->sample) st = eng_sampler_create(j->vocab, 0.0f, 1.0f, 1, &j->greedy);
        if (st == ENG_OK) st = run_batched(j, m, s, coll);
        eng_sampler_free(j->greedy);
    } else if (device == ENG_DEVICE_CUDA) {
        for (int q = 0; q < N_SEQ && st == ENG_OK; q++) {
            j->only = q;
            st = run_batched(j, m, s, coll);
        }
    } else {
        st = run_alone(j, m, s, coll);
    }
    if (st != ENG_OK) {
        snprintf(j->err, sizeof(j->err), "%s (%s)", eng_status_str(st), eng_state_error(s));
        fprintf(stderr, "rank %d: %s\n", j->rank, j->err);
        abort(); /* the other rank would wait in a barrier forever */
    }
    if (j->batched && g->tp == 1 && bad_batches(m, s)) j->status = -1;
    free(j->red);
    eng_state_free(s);
    eng_model_close(m);
    return NULL;
}

/* Runs one configuration; rank 0's job (gen, logits) is returned in *out. */
static int run(const char *model, int tp, int batched, const int *const *prompts, job *out)
{
    if (tp < 1 || tp > MAX_TP) return 1;
    group g = {.tp = tp};
    job jobs[MAX_TP];
    pthread_t th[MAX_TP];
    pthread_barrier_init(&g.bar, NULL, (unsigned)tp);
    for (int r = 0; r < tp; r++) {
        memset(&jobs[r], 0, sizeof(job));
        jobs[r].g = &g;
        jobs[r].model = model;
        jobs[r].rank = r;
        jobs[r].batched = batched != 0;
        jobs[r].sample = batched == 2;
        jobs[r].threads = batched && device == ENG_DEVICE_CPU ? 2 : 1;
        for (int q = 0; q < N_SEQ; q++)
            jobs[r].prompts[q] = prompts[q];
        pthread_create(&th[r], NULL, run_rank, &jobs[r]);
    }
    for (int r = 0; r < tp; r++)
        pthread_join(th[r], NULL);
    pthread_barrier_destroy(&g.bar);
    for (int r = 1; r < tp; r++) {
        free(jobs[r].gen);
        free(jobs[r].logits);
    }
    *out = jobs[0];
    return jobs[0].status;
}

static void check(const char *name, const char *model)
{
    test_need_path(model);
    /* Prompts: a fixed pseudo-random walk over the first 500 ids (every vocabulary has them). */
    static int ids[N_SEQ][64];
    const int *prompts[N_SEQ];
    unsigned x = 12345;
    for (int q = 0; q < N_SEQ; q++) {
        for (int t = 0; t < prompt_len[q]; t++) {
            x = x * 1103515245u + 12345u;
            ids[q][t] = t == 0 ? 1 : (int)((x >> 16) % 500);
        }
        prompts[q] = ids[q];
    }
    for (int tp = 1; tp <= (device == ENG_DEVICE_CPU ? MAX_TP : 1); tp++) {
        job alone, batch;
        int rc = run(model, tp, 0, prompts, &alone);
        rc |= run(model, tp, 1, prompts, &batch);
        size_t rows = (size_t)N_SEQ * N_GEN;
        int same_ids = !memcmp(alone.gen, batch.gen, rows * sizeof(int));
        int same_bits =
            !memcmp(alone.logits, batch.logits, rows * (size_t)alone.vocab * sizeof(float));
        double rel = eng_h_rel_err(batch.logits, alone.logits, rows * (size_t)alone.vocab);
        printf("%s tp=%d: %d sequences through %d slots, greedy ids %s, logits %s (rel %.1e)\n",
               name, tp, N_SEQ, SLOTS, same_ids ? "match" : "DIFFER",
               same_bits ? "bitwise equal" : "differ", rel);
        /* Bit for bit, on the CPU and the GPU. */
        CHECK_MSG(!rc && same_ids && same_bits, "%s tp=%d: alone and batched differ (rc %d)", name,
                  tp, rc);
        { /* the server's path: eng_forward_batch_sample (a GPU: on the device, with graphs) */
            job smp;
            rc = run(model, tp, 2, prompts, &smp);
            int ids_ok = !memcmp(smp.gen, batch.gen, rows * sizeof(int));
            int bits_ok =
                !memcmp(smp.logits, batch.logits, rows * (size_t)alone.vocab * sizeof(float));
            printf("%s tp=%d: sampled in the call: ids %s, logits %s\n", name, tp,
                   ids_ok ? "match" : "DIFFER", bits_ok ? "bitwise equal" : "differ");
            CHECK_MSG(!rc && ids_ok && bits_ok, "%s tp=%d: sampled in the call differs (rc %d)",
                      name, tp, rc);
            free(smp.gen);
            free(smp.logits);
        }
        free(alone.gen);
        free(alone.logits);
        free(batch.gen);
        free(batch.logits);
    }
}

int main(int argc, char **argv)
{
    char path[4096];
    if (argc > 1 && !strcmp(argv[1], "cuda")) {
        device = ENG_DEVICE_CUDA;
    } else if (argc > 1 && !strcmp(argv[1], "cuda-high")) {
        device = ENG_DEVICE_CUDA;
        precision = ENG_PREFILL_HIGH;
    } else if (argc > 1 && strcmp(argv[1], "cpu")) {
        fprintf(stderr, "usage: test_eng_batch [cuda|cuda-high|cpu [MODEL...]]\n");
        return 2;
    }
    snprintf(path, sizeof(path), "%s/models/stories260K.bin", test_shared_dir());
    check("stories260K", path);
    static const char *hf[] = {"tiny-llama-f32", "tiny-qwen3-bf16", "tiny-mistral-f16"};
    for (size_t i = 0; i < sizeof(hf) / sizeof(hf[0]); i++) {
        snprintf(path, sizeof(path), "%s/fixtures/hf/%s", test_shared_dir(), hf[i]);
        check(hf[i], path);
    }
    /* Extra models (the GPU script passes generated bf16 ones): cuda|cpu MODEL... */
    for (int i = 2; i < argc; i++)
        check(argv[i], argv[i]);
    TEST_DONE();
}
