/* SPDX-License-Identifier: MIT */
/* The engine on a GPU, end to end: stories260K greedy ids against llama2.c's reference, the
 * Hugging Face fixtures' logits against transformers and their greedy ids against the CPU
 * backend's, random models (long prompts, flash-decoding splits, sliding window, q/k/v
 * biases) against the CPU backend, and the sampled decode step (CUDA graph) against plain
 * forward calls. Skips (77) without a visible GPU or without ../shared. */
#include "../engine/tools/genmodel.h"
#include "test_eng_harness.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One line per comparison, with its error and limit (tests/check.h). */
#define report TEST_REPORT

static int ints(const cJSON *a, int *out, int max)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (n < max) out[n++] = e->valueint;
    return n;
}

static int first_diff(const int *a, const int *b, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i] != b[i]) return i;
    return -1;
}

static eng_status open_cuda(const char *path, eng_model **m, char *err, size_t errlen)
{
    eng_load_params lp;
    eng_load_params_init(&lp);
    lp.device = ENG_DEVICE_CUDA;
    return eng_model_open(path, &lp, m, err, errlen);
}

/* The prompt at position 0 and ng ids sampled after it: step by step through
 * eng_forward_sample, or with ahead each decode step started ahead of the token before it
 * (eng_forward_ahead on ids[0], then chained steps, each collected one step later). */
static eng_status decode_ids(eng_model *m, eng_state *s, eng_sampler *smp, const int *prompt,
                             int np, int ng, int ahead, int *ids)
{
    eng_status st = eng_forward_sample(m, s, prompt, np, 0, NULL, smp, &ids[0]);
    for (int i = 1; !ahead && i < ng && st == ENG_OK; i++)
        st = eng_forward_sample(m, s, &ids[i - 1], 1, np + i - 1, NULL, smp, &ids[i]);
    if (!ahead || st != ENG_OK) return st;
    for (int i = 0; i + 1 < ng && st == ENG_OK; i++) {
        st = eng_forward_ahead(m, s, i ? ENG_AHEAD_CHAIN : ids[0], np + i, smp);
        if (st == ENG_OK && i) st = eng_forward_collect(m, s, &ids[i]);
    }
    if (st == ENG_OK && ng > 1) st = eng_forward_collect(m, s, &ids[ng - 1]);
    return st;
}

/* Sampled ids on a new state (the CUDA graph from the second step on): decode_ids. */
static int sampled_ids(const char *model, const int *prompt, int np, int ng, float temp,
                       uint64_t seed, int ahead, int *ids, char *err, size_t errlen)
{
    eng_model *m = NULL;
    eng_state *s = NULL;
    eng_sampler *smp = NULL;
    int rc = -1;
    if (open_cuda(model, &m, err, errlen) != ENG_OK) return -1;
    eng_state_params sp;
    eng_state_params_init(&sp);
    sp.max_batch = np;
    sp.ctx_len = np + ng;
    if (eng_state_create(m, &sp, &s, err, errlen) != ENG_OK) goto out;
    if (eng_sampler_create(eng_model_config(m)->vocab_size, temp, 0.9f, seed, &smp) != ENG_OK)
        goto out;
    eng_status st = decode_ids(m, s, smp, prompt, np, ng, ahead, ids);
    if (st != ENG_OK) {
        snprintf(err, errlen, "eng_forward_sample: %s: %s", eng_status_str(st), eng_state_error(s));
        goto out;
    }
    rc = 0;
out:
    eng_sampler_free(smp);
    eng_state_free(s);
    eng_model_close(m);
    return rc;
}

/* eng_forward_ahead's rules: a chain needs the step before it, at most two in flight, no
 * other forward call until all are collected; a state freed with steps in flight is fine. */
static void ahead_misuse(const char *path)
{
    char err[512];
    eng_model *m = NULL;
    eng_state *s = NULL;
    eng_sampler *smp = NULL;
    if (open_cuda(path, &m, err, sizeof(err)) != ENG_OK) {
        report(0, "decoding ahead, misuse: %s", err);
        return;
    }
    eng_state_params sp;
    eng_state_params_init(&sp);
    sp.ctx_len = 8;
    int ok = eng_state_create(m, &sp, &s, err, sizeof(err)) == ENG_OK &&
             eng_sampler_create(512, 0.0f, 1.0f, 1, &smp) == ENG_OK;
    int one = 1, t = -1, got[3];
    int n_ok = 0, n_checks = 0;
#define EXPECT(call, want) (n_checks++, n_ok += (call) == (want))
    if (ok) {
        EXPECT(eng_forward_collect(m, s, &t), ENG_ERR_INVALID_ARG);
        EXPECT(eng_forward_ahead(m, s, ENG_AHEAD_CHAIN, 0, smp), ENG_ERR_INVALID_ARG);
        EXPECT(eng_forward_ahead(m, s, 512, 0, smp), ENG_ERR_RANGE);
        EXPECT(eng_forward_ahead(m, s, 1, 8, smp), ENG_ERR_RANGE);
        EXPECT(eng_forward_ahead(m, s, 1, 0, NULL), ENG_ERR_INVALID_ARG);
        EXPECT(eng_forward_ahead(m, s, 1, 0, smp), ENG_OK);
        EXPECT(eng_forward_ahead(m, s, 1, 1, smp), ENG_ERR_INVALID_ARG); /* not a chain */
        EXPECT(eng_forward_ahead(m, s, ENG_AHEAD_CHAIN, 2, smp), ENG_ERR_INVALID_ARG);
        EXPECT(eng_forward_ahead(m, s, ENG_AHEAD_CHAIN, 1, smp), ENG_OK);
        EXPECT(eng_forward_ahead(m, s, ENG_AHEAD_CHAIN, 2, smp), ENG_ERR_INVALID_ARG); /* 3 */
        EXPECT(eng_forward_sample(m, s, &one, 1, 2, NULL, smp, &t), ENG_ERR_INVALID_ARG);
        EXPECT(eng_forward(m, s, &one, 1, 2, 1, NULL, NULL), ENG_ERR_INVALID_ARG);
        EXPECT(eng_forward_collect(m, s, &got[0]), ENG_OK);
        EXPECT(eng_forward_ahead(m, s, ENG_AHEAD_CHAIN, 2, smp), ENG_OK);
        EXPECT(eng_forward_collect(m, s, &got[1]), ENG_OK);
        EXPECT(eng_forward_collect(m, s, &got[2]), ENG_OK);
        EXPECT(eng_forward_collect(m, s, &t), ENG_ERR_INVALID_ARG);
        /* (a chain on token 1 at 0: only the ids' range is known here) */
        for (int i = 0; i < 3; i++)
            ok &= got[i] >= 0 && got[i] < 512;
        EXPECT(eng_forward_sample(m, s, &one, 1, 3, NULL, smp, &t), ENG_OK);
        EXPECT(eng_forward_ahead(m, s, t, 4, smp), ENG_OK); /* freed while in flight */
    }
#undef EXPECT
    report(ok && n_ok == n_checks,
           "decoding ahead: %d of %d rule checks as documented, collected ids in range", n_ok,
           n_checks);
    eng_sampler_free(smp);
    eng_state_free(s);
    eng_model_close(m);
}

/* One state, three samplers in turn: greedy, T=0.8 (seed 42), greedy. The decode graph
 * holds the sampler's settings, so each switch must capture it again. */
static void settings_switch(const char *path, const int *greedy, const int *hot)
{
    char err[512];
    eng_model *m = NULL;
    eng_state *s = NULL;
    eng_sampler *smp[3] = {NULL, NULL, NULL};
    int ok = open_cuda(path, &m, err, sizeof(err)) == ENG_OK;
    eng_state_params sp;
    eng_state_params_init(&sp);
    sp.max_batch = 1; /* as sampled_ids's states: the same splits, the same bits */
    sp.ctx_len = 65;
    ok = ok && eng_state_create(m, &sp, &s, err, sizeof(err)) == ENG_OK &&
         eng_sampler_create(512, 0.0f, 0.9f, 1, &smp[0]) == ENG_OK &&
         eng_sampler_create(512, 0.8f, 0.9f, 42, &smp[1]) == ENG_OK &&
         eng_sampler_create(512, 0.0f, 0.9f, 1, &smp[2]) == ENG_OK;
    int same = 1, bos = 1;
    for (int r = 0; r < 3 && ok; r++) {
        int ids[64], n = r == 1 ? 64 : 32;
        ok = decode_ids(m, s, smp[r], &bos, 1, n, 0, ids) == ENG_OK;
        same &= ok && first_diff(ids, r == 1 ? hot : greedy, n) < 0;
    }
    report(ok && same,
           "stories260K: greedy, T=0.8, greedy on one state: each run's ids as on a fresh one");
    for (int r = 0; r < 3; r++)
        eng_sampler_free(smp[r]);
    eng_state_free(s);
    eng_model_close(m);
}

/* g written as dir/name, dir a new temporary directory (its template filled in): 0, or -1
 * with err set. tmp_remove(dir) after, either way. */
static int tmp_model(gen_spec *g, const char *name, char *dir, char *path, size_t pathlen,
                     char *err, size_t errlen)
{
    if (!mkdtemp(dir)) {
        snprintf(err, errlen, "mkdtemp %s: %s", dir, strerror(errno));
        return -1;
    }
    snprintf(path, pathlen, "%s/%s", dir, name);
    return gen_write(g, path, err, errlen) ? -1 : 0;
}

static void tmp_remove(const char *dir)
{
    char cmd[4300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* A model with heads of 128 dims decodes positions below 512 and past it in two graphs (the
 * query-head attention, then the tiled one): a prompt of 500 and 30 ids across the switch,
 * greedy, T=0.8, greedy on one state, each against a fresh state's ids (the graphs must be
 * captured again with each sampler's settings, the one not in use too), and greedy with each
 * step started ahead (the switch inside a chain). */
static void graph_switch(gen_spec *g)
{
    enum { NP = 500, NG = 30 };
    char dir[] = "/tmp/test_eng_cuda_XXXXXX", path[4200], err[512];
    int prompt[NP], want[2][NG], ahead[NG], ids[NG], ok = 1, same = 1;
    for (int i = 0; i < NP; i++)
        prompt[i] = (i * 7919 + 13) % g->vocab_size;
    eng_model *m = NULL;
    eng_state *s = NULL;
    eng_sampler *smp[3] = {NULL, NULL, NULL};
    if (tmp_model(g, "hd128", dir, path, sizeof(path), err, sizeof(err)) ||
        sampled_ids(path, prompt, NP, NG, 0.0f, 1, 0, want[0], err, sizeof(err)) ||
        sampled_ids(path, prompt, NP, NG, 0.8f, 42, 0, want[1], err, sizeof(err)) ||
        sampled_ids(path, prompt, NP, NG, 0.0f, 1, 1, ahead, err, sizeof(err)) ||
        open_cuda(path, &m, err, sizeof(err)) != ENG_OK) {
        report(0, "graphs below and past position 512: %s", err);
        ok = 0;
    }
    eng_state_params sp;
    eng_state_params_init(&sp);
    sp.max_batch = NP, sp.ctx_len = NP + NG; /* as sampled_ids's */
    int V = g->vocab_size;
    ok = ok && eng_state_create(m, &sp, &s, err, sizeof(err)) == ENG_OK &&
         eng_sampler_create(V, 0.0f, 0.9f, 1, &smp[0]) == ENG_OK &&
         eng_sampler_create(V, 0.8f, 0.9f, 42, &smp[1]) == ENG_OK &&
         eng_sampler_create(V, 0.0f, 0.9f, 1, &smp[2]) == ENG_OK;
    for (int r = 0; r < 3 && ok; r++) {
        ok = decode_ids(m, s, smp[r], prompt, NP, NG, 0, ids) == ENG_OK;
        same &= ok && first_diff(ids, want[r == 1], NG) < 0;
    }
    if (ok)
        report(same && first_diff(ahead, want[0], NG) < 0,
               "graphs below and past position 512: greedy, T=0.8, greedy on one state and "
               "greedy ahead: each as on a fresh state");
    for (int r = 0; r < 3; r++)
        eng_sampler_free(smp[r]);
    eng_state_free(s);
    eng_model_close(m);
    tmp_remove(dir); /* nothing there if mkdtemp failed */
}

/* stories260K from BOS through sampled_ids (T 0: seed 1, else 42) against want's n ids. */
static void expect_ids(const char *path, int n, float temp, int ahead, const int *want,
                       const char *what)
{
    char err[512];
    int bos = 1, ids[64];
    if (sampled_ids(path, &bos, 1, n, temp, temp != 0.0f ? 42 : 1, ahead, ids, err, sizeof(err))) {
        report(0, "stories260K %s: %s", what, err);
        return;
    }
    int bad = first_diff(ids, want, n);
    report(bad < 0, "stories260K %d %s%s", n, what, bad < 0 ? "" : ": DIFFER");
}

static void stories(void)
{
    static const int ref[32] = {403, 407, 261, 378, 432, 383, 286, 261, 376, 298, 315,
                                421, 395, 317, 426, 338, 401, 396, 267, 337, 410, 408,
                                419, 292, 411, 322, 265, 282, 295, 433, 426, 385};
    static const float ref_logits[5] = {-6.222911f, 8.404342f, -6.223737f, -6.222542f, -6.221951f};
    char path[4200], err[512];
    snprintf(path, sizeof(path), "%s/models/stories260K.bin", test_shared_dir());
    test_need_path(path);
    int bos = 1, ids[32];
    float logits[512];
    if (eng_h_generate_on(ENG_DEVICE_CUDA, path, 1, 1, &bos, 1, 32, logits, NULL, ids, err,
                          sizeof(err))) {
        report(0, "stories260K on the GPU: %s", err);
        return;
    }
    float md = 0;
    for (int i = 0; i < 5; i++) {
        float d = logits[i] - ref_logits[i];
        if (d < 0) d = -d;
        if (d > md) md = d;
    }
    report(md < 1e-4f, "stories260K logits at position 0: max abs diff %.2e (limit 1e-4)", md);
    int bad = first_diff(ids, ref, 32);
    report(bad < 0, "stories260K 32 greedy ids vs llama2.c (forward + host argmax)%s",
           bad < 0 ? "" : ": DIFFER");
    /* Sampled on the GPU (CUDA graph): greedy, then T=0.8 twice with one seed; then each step
     * started ahead (the same graph and draws, so the same ids). */
    int a[64];
    if (sampled_ids(path, &bos, 1, 64, 0.8f, 42, 0, a, err, sizeof(err))) {
        report(0, "stories260K temperature sampling: %s", err);
        return;
    }
    int ok = 1;
    for (int i = 0; i < 64; i++)
        ok &= a[i] >= 0 && a[i] < 512;
    report(ok, "stories260K T=0.8 top-p 0.9: ids in range");
    expect_ids(path, 32, 0.0f, 0, ref, "greedy ids sampled on the GPU (CUDA graph)");
    expect_ids(path, 64, 0.8f, 0, a, "T=0.8 top-p 0.9, the same seed again: the same ids");
    expect_ids(path, 32, 0.0f, 1, ref, "greedy ids, each step started ahead");
    expect_ids(path, 64, 0.8f, 1, a, "T=0.8 top-p 0.9, each step started ahead: the same ids");
    ahead_misuse(path);
    settings_switch(path, ref, a);
}

static void fixture(const char *name, double tol)
{
    char dir[4096], path[4200], err[512];
    snprintf(dir, sizeof(dir), "%s/fixtures/hf/%s", test_shared_dir(), name);
    test_need_path(dir);
    snprintf(path, sizeof(path), "%s/reference.json", dir);
    char *txt = eng_h_slurp(path, NULL);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!j) {
        report(0, "%s: cannot read %s", name, path);
        return;
    }
    int prompt[64], greedy[64];
    int np = ints(cJSON_GetObjectItem(j, "prompt_ids"), prompt, 64);
    int ng = ints(cJSON_GetObjectItem(j, "greedy_ids"), greedy, 64);
    cJSON_Delete(j);
    snprintf(path, sizeof(path), "%s/ref_logits.f32", dir);
    size_t len;
    float *ref = (float *)eng_h_slurp(path, &len);
    int vocab = (int)(len / 4 / (size_t)np);
    float *got = malloc(len);
    int ids[64], cpu_ids[64];
    if (eng_h_generate_on(ENG_DEVICE_CUDA, dir, 1, 1, prompt, np, ng, got, NULL, ids, err,
                          sizeof(err)) ||
        eng_h_generate_on(ENG_DEVICE_CPU, dir, 1, 1, prompt, np, ng, NULL, NULL, cpu_ids, err,
                          sizeof(err))) {
        report(0, "%s: %s", name, err);
    } else {
        double rel = eng_h_rel_err(got, ref, (size_t)np * vocab);
        report(rel <= tol, "%s: prompt logits vs transformers rel err %.2e (limit %.0e)", name, rel,
               tol);
        report(first_diff(ids, greedy, ng) < 0, "%s: %d greedy ids vs transformers", name, ng);
        report(first_diff(ids, cpu_ids, ng) < 0, "%s: greedy ids equal to the CPU backend's", name);
        int sids[64];
        if (sampled_ids(dir, prompt, np, ng, 0.0f, 1, 0, sids, err, sizeof(err)))
            report(0, "%s sampled: %s", name, err);
        else
            report(first_diff(sids, greedy, ng) < 0, "%s: greedy ids sampled on the GPU (graph)",
                   name);
        if (sampled_ids(dir, prompt, np, ng, 0.0f, 1, 1, sids, err, sizeof(err)))
            report(0, "%s ahead: %s", name, err);
        else
            report(first_diff(sids, greedy, ng) < 0, "%s: greedy ids, each step started ahead",
                   name);
    }
    free(got);
    free(ref);
}

/* A random model against the CPU backend: every prompt logit and the decode logits. */
/* need_ids: f32 models must pick the same ids; a bf16 model's prefill runs on bf16
 * activations (cuBLAS) where the CPU keeps f32, so a near-tie may flip: logits only, unless
 * the prompt products run at ENG_PREFILL_HIGH (precision). */
static void random_model_prec(const char *label, gen_spec *g, int np, int ng, double tol,
                              int need_ids, int precision)
{
    char dir[] = "/tmp/test_eng_cuda_XXXXXX", path[4200], err[512];
    if (tmp_model(g, label, dir, path, sizeof(path), err, sizeof(err))) {
        report(0, "%s: %s", label, err);
        tmp_remove(dir);
        return;
    }
    int *prompt = malloc((size_t)np * sizeof(int)), gi[512], ci[512];
    for (int i = 0; i < np; i++)
        prompt[i] = (i * 7919 + 13) % g->vocab_size;
    size_t pn = (size_t)np * g->vocab_size, gn = (size_t)ng * g->vocab_size;
    float *gp = malloc(pn * 4), *cp = malloc(pn * 4), *gg = malloc(gn * 4), *cg = malloc(gn * 4);
    if (eng_h_generate_prec(ENG_DEVICE_CUDA, precision, path, 1, 1, prompt, np, ng, gp, gg, gi, err,
                            sizeof(err)) ||
        eng_h_generate_on(ENG_DEVICE_CPU, path, 1, 1, prompt, np, ng, cp, cg, ci, err,
                          sizeof(err))) {
        report(0, "%s: %s", label, err);
    } else {
        double rp = eng_h_rel_err(gp, cp, pn), rg = eng_h_rel_err(gg, cg, gn);
        report(rp <= tol && rg <= tol && (!need_ids || first_diff(gi, ci, ng) < 0),
               "%s%s: %d prompt + %d decode positions vs CPU: rel err %.2e / %.2e (limit %.0e), "
               "ids %s",
               label, precision == ENG_PREFILL_HIGH ? " (prefill precision high)" : "", np, ng, rp,
               rg, tol, first_diff(gi, ci, ng) < 0 ? "equal" : "DIFFER");
    }
    free(prompt), free(gp), free(cp), free(gg), free(cg);
    tmp_remove(dir);
}

static void random_model(const char *label, gen_spec *g, int np, int ng, double tol, int need_ids)
{
    random_model_prec(label, g, np, ng, tol, need_ids, ENG_PREFILL_FAST);
}

int main(void)
{
    /* A model open on the GPU tells whether one is there. */
    char path[4200], err[512];
    snprintf(path, sizeof(path), "%s/models/stories260K.bin", test_shared_dir());
    test_need_path(path);
    eng_model *m = NULL;
    eng_status st = open_cuda(path, &m, err, sizeof(err));
    if (st == ENG_ERR_UNSUPPORTED) {
        printf("SKIP: %s; the GPU tests run on a GPU machine (tests/gpu/run-engine-gpu.sh)\n", err);
        return 77;
    }
    if (st != ENG_OK) {
        TEST_FAIL("open on the GPU: %s", err);
        TEST_DONE();
    }
    eng_model_close(m);
    stories();
    fixture("tiny-llama-f32", 1e-4);
    fixture("tiny-qwen3-bf16", 2e-2);
    fixture("tiny-mistral-f16", 2e-2);
    gen_spec g;
    gen_spec_init(&g);
    g.format = GEN_HF;
    g.arch = GEN_LLAMA;
    g.dim = 512, g.hidden_dim = 1024, g.n_layers = 2, g.n_heads = 4, g.n_kv_heads = 1;
    g.head_dim = 128, g.vocab_size = 700, g.seq_len = 1024;
    random_model("llama-f32-hd128", &g, 300, 40, 1e-4, 1);
    random_model("llama-f32-hd128-past-512", &g, 490, 40, 1e-4, 1);
    graph_switch(&g);
    g.arch = GEN_MISTRAL, g.sliding_window = 48, g.n_heads = 8, g.n_kv_heads = 2, g.head_dim = 64;
    random_model("mistral-f32-window48", &g, 100, 60, 1e-4, 1);
    g.arch = GEN_QWEN2, g.sliding_window = 0, g.tied = 1;
    random_model("qwen2-f32-bias-tied", &g, 64, 20, 1e-4, 1);
    g.arch = GEN_QWEN3, g.tied = 0, g.dtype = GEN_BF16;
    random_model("qwen3-bf16", &g, 64, 20, 2e-2, 0);
    /* the same products on hi + lo halves and f32 attention products: the CPU's f32 activations
     * within f32 rounding, the same ids; 300 positions take the batched attention products */
    random_model_prec("qwen3-bf16", &g, 300, 20, 1e-4, 1, ENG_PREFILL_HIGH);
    g.arch = GEN_LLAMA, g.dtype = GEN_F16;
    random_model_prec("llama-f16", &g, 300, 20, 1e-3, 1, ENG_PREFILL_HIGH);
    printf("%s: %d failure(s)\n", test_failures ? "FAIL" : "PASS", test_failures);
    TEST_DONE();
}
