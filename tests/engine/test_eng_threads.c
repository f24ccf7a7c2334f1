/* SPDX-License-Identifier: MIT */
/* Worker threads inside a rank: the pool runs every part of every job exactly once (with
 * and without its spin phase), and the engine's logits are bitwise the same at 1, 2 and 3
 * threads, at TP=1 and TP=2, for prefill and decode; ringinfer's --threads / ENG_THREADS
 * give the same ids and refuse bad values with one line. */
#include "../engine/tools/genmodel.h"
#include "cpu/cpu.h"
#include "test_eng_harness.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/eng_threads_XXXXXX";

/* ------------------------------------------------------------------ the pool alone */
#define JOBS 3000
#define MAXP 8

typedef struct {
    int job;
    int runs[MAXP]; /* plain ints: each part writes only its own slot, TSan checks that */
    int nparts[MAXP];
    atomic_int total; /* parts run over all jobs */
} pool_probe;

static void probe_part(void *ctx, int part, int nparts)
{
    pool_probe *p = ctx;
    p->runs[part]++;
    p->nparts[part] = nparts;
    atomic_fetch_add(&p->total, 1);
}

static void pool_case(int threads, int spin_us)
{
    char err[256];
    eng_pool *pool;
    if (eng_pool_create(threads, spin_us, &pool, err, sizeof(err)) != ENG_OK) {
        TEST_FAIL("pool %d threads: %s", threads, err);
        return;
    }
    pool_probe p;
    memset(&p, 0, sizeof(p));
    int bad = 0;
    for (p.job = 0; p.job < JOBS; p.job++) {
        eng_pool_run(pool, probe_part, &p);
        /* Every part's write is visible once run returns. */
        for (int i = 0; i < threads; i++)
            if (p.runs[i] != p.job + 1 || p.nparts[i] != threads) bad++;
        if (p.job % 500 == 0) usleep(2000); /* let the workers fall asleep on the futex */
    }
    int total = atomic_load(&p.total);
    printf("pool %d threads, spin %d us: %d jobs, %d parts run (want %d), %d bad checks\n", threads,
           spin_us, JOBS, total, JOBS * threads, bad);
    if (bad || total != JOBS * threads || eng_pool_size(pool) != threads) test_failures++;
    eng_pool_free(pool);
}

static void bad_params(void)
{
    char err[256] = "";
    eng_pool *pool = NULL;
    if (eng_pool_create(0, 0, &pool, err, sizeof(err)) != ENG_ERR_INVALID_ARG || pool ||
        !strstr(err, "threads must be in 1..")) {
        TEST_FAIL("a pool of 0 threads was not refused (%s)", err);
    }
}

/* ------------------------------------------------------------------ the engine */
enum { NP = 9, NG = 6 };

static void model_case(const char *label, gen_spec *s)
{
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/%s%s", dir, label, s->format == GEN_BIN ? ".bin" : "");
    if (gen_write(s, path, err, sizeof(err)) != 0) {
        TEST_FAIL("%s: generator: %s", label, err);
        return;
    }
    int prompt[NP];
    for (int i = 0; i < NP; i++)
        prompt[i] = (i * 53 + 11) % s->vocab_size;
    size_t np = (size_t)NP * s->vocab_size, ng = (size_t)NG * s->vocab_size;
    float *ref_p = malloc(np * 4), *ref_g = malloc(ng * 4), *p = malloc(np * 4),
          *g = malloc(ng * 4);
    int ref_ids[NG], ids[NG];
    static const int tps[] = {1, 2}, ths[] = {2, 3};
    for (int a = 0; a < 2; a++) {
        int tp = tps[a];
        if (eng_h_generate_threads(path, tp, 1, prompt, NP, NG, ref_p, ref_g, ref_ids, err,
                                   sizeof(err)) != 0) {
            TEST_FAIL("%s tp=%d threads=1: %s", label, tp, err);
            continue;
        }
        for (int b = 0; b < 2; b++) {
            int th = ths[b];
            memset(p, 0, np * 4);
            memset(g, 0, ng * 4);
            if (eng_h_generate_threads(path, tp, th, prompt, NP, NG, p, g, ids, err, sizeof(err)) !=
                0) {
                TEST_FAIL("%s tp=%d threads=%d: %s", label, tp, th, err);
                continue;
            }
            int same_p = !memcmp(p, ref_p, np * 4), same_g = !memcmp(g, ref_g, ng * 4),
                same_ids = !memcmp(ids, ref_ids, sizeof(ids));
            printf("%s tp=%d threads=%d vs 1: prefill logits %s, decode logits %s, ids %s\n", label,
                   tp, th, same_p ? "identical" : "DIFFER", same_g ? "identical" : "DIFFER",
                   same_ids ? "identical" : "DIFFER");
            if (!same_p || !same_g || !same_ids) test_failures++;
        }
    }
    free(ref_p);
    free(ref_g);
    free(p);
    free(g);
}

/* ------------------------------------------------------------------ the command line */
static char *slurp(const char *name)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *b = calloc(1, 1 << 16);
    size_t n = fread(b, 1, (1 << 16) - 1, f);
    b[n] = 0;
    fclose(f);
    return b;
}

/* Runs ringinfer at tp ranks; returns rank 0's exit code with its stdout in *out. */
static int cli(int tp, char **argv, char **out, char **errs)
{
    int argc = 0, rcs[4];
    while (argv[argc])
        argc++;
    if (eng_h_cli(tp, argc, argv, dir, rcs) != 0) return -1;
    *out = slurp("out0");
    *errs = slurp("err0");
    return rcs[0];
}

static void cli_cases(void)
{
    char model[600];
    snprintf(model, sizeof(model), "%s/llama-bin.bin", dir);
    char *run[] = {
        "ringinfer", "run",           "-m", model,         "--prompt-ids", "1,7,9", "-n",
        "8",         "--temperature", "0",  "--print-ids", "--threads",    "1",     NULL};
    char *ref = NULL, *e = NULL, *got = NULL;
    int rc = cli(1, run, &ref, &e);
    free(e);
    if (rc != 0 || !ref || !*ref) {
        TEST_FAIL("cli threads 1: exit %d", rc);
        goto out;
    }
    run[12] = "2";
    for (int tp = 1; tp <= 2; tp++) {
        rc = cli(tp, run, &got, &e);
        int ok = rc == 0 && got && !strcmp(got, ref) && e && strstr(e, "2 threads per rank");
        printf("cli tp=%d --threads 2: exit %d, ids %s", tp, rc, got ? got : "(none)\n");
        if (!ok) {
            printf("FAIL cli tp=%d --threads 2: want ids %s and '2 threads per rank' in %s", tp,
                   ref, e ? e : "(no stderr)\n");
            test_failures++;
        }
        free(got);
        free(e);
    }
    /* ENG_THREADS when --threads is absent; bad values are one-line errors, exit 2. */
    run[11] = NULL;
    setenv("ENG_THREADS", "3", 1);
    rc = cli(1, run, &got, &e);
    if (rc != 0 || !got || strcmp(got, ref) || !e || !strstr(e, "3 threads per rank")) {
        printf("FAIL cli ENG_THREADS=3: exit %d, %s", rc, e ? e : "(no stderr)\n");
        test_failures++;
    }
    free(got);
    free(e);
    setenv("ENG_DECODE_AHEAD", "0", 1); /* step by step: on the CPU it always is */
    rc = cli(1, run, &got, &e);
    if (rc != 0 || !got || strcmp(got, ref)) {
        printf("FAIL cli ENG_DECODE_AHEAD=0: exit %d, %s", rc, e ? e : "(no stderr)\n");
        test_failures++;
    }
    unsetenv("ENG_DECODE_AHEAD");
    free(got);
    free(e);
    static const char *bad[][2] = {{"ENG_THREADS", "two"},
                                   {"ENG_THREADS", "0"},
                                   {"ENG_SPIN_US", "-5"},
                                   {"ENG_DECODE_AHEAD", "2"}};
    for (int i = 0; i < 4; i++) {
        setenv("ENG_THREADS", "1", 1);
        setenv(bad[i][0], bad[i][1], 1);
        rc = cli(1, run, &got, &e);
        int lines = 0;
        for (char *q = e; q && *q; q++)
            lines += *q == '\n';
        printf("cli %s=%s: exit %d, %s", bad[i][0], bad[i][1], rc, e ? e : "(no stderr)\n");
        if (rc != 2 || !e || !strstr(e, bad[i][0]) || lines != 1) test_failures++;
        free(got);
        free(e);
        unsetenv(bad[i][0]);
    }
    unsetenv("ENG_THREADS");
    run[11] = "--threads";
    run[12] = "0";
    rc = cli(1, run, &got, &e);
    printf("cli --threads 0: exit %d, %s", rc, e ? e : "(no stderr)\n");
    if (rc != 2 || !e || !strstr(e, "--threads")) test_failures++;
    free(got);
    free(e);
out:
    free(ref);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 99;
    }
    bad_params();
    pool_case(2, 0);
    pool_case(2, 50);
    pool_case(3, 0);
    pool_case(4, 20);

    /* Output widths that are not multiples of 4 (the split's tail), wide enough that every
     * matmul is handed to the workers; an uneven FFN split at TP=2. */
    gen_spec s;
    gen_spec_init(&s);
    s.dim = 160;
    s.n_heads = 10;
    s.n_kv_heads = 2;
    s.hidden_dim = 333;
    s.vocab_size = 999;
    s.seq_len = 64;
    s.seed = 11;
    model_case("llama-bin", &s);

    gen_spec_init(&s); /* Qwen2 biases, bf16, GQA 12/4 */
    s.format = GEN_HF;
    s.arch = GEN_QWEN2;
    s.dtype = GEN_BF16;
    s.dim = 192;
    s.n_heads = 12;
    s.n_kv_heads = 4;
    s.head_dim = 16;
    s.hidden_dim = 450;
    s.vocab_size = 1001;
    s.seq_len = 64;
    s.seed = 12;
    model_case("hf-qwen2", &s);

    cli_cases();

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", dir);
    printf("%s\n", test_failures ? "FAILED" : "all passed");
    TEST_DONE();
}
