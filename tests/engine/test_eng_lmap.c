/* SPDX-License-Identifier: MIT */
/* Layer mapping: a model cut into segments gives what one segment gives.
 * CPU (CI): stories260K and the Hugging Face fixtures split into several CPU segments
 * (eng_model_open_segments, the test hook) give bitwise the same logits and greedy ids as one
 * segment, through eng_forward and eng_forward_sample; --device-layers without a GPU, with
 * tensor parallelism and the hook's bad counts are clear errors.
 * GPU (when one is visible): two segments on GPU 0 (the device-copy boundary), GPU + CPU
 * through --device-layers and the hook, equal to the whole model on the GPU.
 *   test_eng_lmap                      the checks (skips 77 without ../shared)
 *   test_eng_lmap --bench MODEL N SEGS decode tok/s over N tokens, SEGS "DEV:NUM,..." with
 *                                      DEV an ordinal or c (CPU), or "-" for one segment */
#include "backend.h"
#include "test_eng_harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void report(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void report(int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    printf("%s ", ok ? "ok  " : "FAIL");
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!ok) test_failures++;
}

#define MAX_SEG 16

/* How a model is opened: the hook's segments (n_seg > 0), a --device-layers spec, or one
 * segment on device. */
typedef struct how {
    const char *name;
    int n_seg, layers[MAX_SEG], dev[MAX_SEG];
    const char *spec;
    eng_device device;
} how;

typedef struct result {
    float *prompt_logits; /* [np, vocab] (logits mode) */
    float *gen_logits;    /* [ng, vocab] (logits mode) */
    int ids[256];
    double decode_s;
    int graph;        /* eng_state.graph after the run: 1 the decode step ran as a graph */
    eng_status ahead; /* eng_forward_ahead after the sampled run (one segment on a GPU only) */
    char desc[512];
} result;

static eng_status open_how(const char *model, const how *h, eng_model **m, char *err, size_t errlen)
{
    eng_load_params lp;
    eng_load_params_init(&lp);
    lp.device = h->device;
    lp.device_layers = h->spec;
    if (h->n_seg)
        return eng_model_open_segments(model, &lp, h->n_seg, h->layers, h->dev, m, err, errlen);
    return eng_model_open(model, &lp, m, err, errlen);
}

static int argmax(const float *v, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[b]) b = i;
    return b;
}

/* Prompt in one pass, then ng greedy tokens. logits: eng_forward with every row kept (r's
 * logits arrays filled); else eng_forward_sample (the CUDA graph where it applies). */
static int run(const char *model, const how *h, const int *prompt, int np, int ng, int logits,
               result *r, char *err, size_t errlen)
{
    eng_model *m = NULL;
    eng_state *s = NULL;
    eng_sampler *smp = NULL;
    int rc = -1;
    eng_status st = open_how(model, h, &m, err, errlen);
    if (st != ENG_OK) return -1;
    eng_model_describe(m, r->desc, sizeof(r->desc));
    int V = eng_model_config(m)->vocab_size;
    eng_state_params sp;
    eng_state_params_init(&sp);
    sp.max_batch = np;
    sp.ctx_len = np + ng;
    sp.all_logits = logits;
    if (eng_state_create(m, &sp, &s, err, errlen) != ENG_OK) goto out;
    if (eng_sampler_create(V, 0.0f, 1.0f, 1, &smp) != ENG_OK) goto out;
    const float *lg;
    struct timespec t0, t1;
    if (logits) {
        st = eng_forward(m, s, prompt, np, 0, 1, NULL, &lg);
        if (st == ENG_OK) {
            memcpy(r->prompt_logits, lg, (size_t)np * V * 4);
            memcpy(r->gen_logits, lg + (size_t)(np - 1) * V, (size_t)V * 4);
            r->ids[0] = argmax(lg + (size_t)(np - 1) * V, V);
        }
    } else {
        st = eng_forward_sample(m, s, prompt, np, 0, NULL, smp, &r->ids[0]);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 1; i < ng && st == ENG_OK; i++) {
        if (logits) {
            st = eng_forward(m, s, &r->ids[i - 1], 1, np + i - 1, 1, NULL, &lg);
            if (st != ENG_OK) break;
            memcpy(r->gen_logits + (size_t)i * V, lg, (size_t)V * 4);
            r->ids[i] = argmax(lg, V);
        } else {
            st = eng_forward_sample(m, s, &r->ids[i - 1], 1, np + i - 1, NULL, smp, &r->ids[i]);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->decode_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    r->graph = s->graph;
    if (!logits && st == ENG_OK) /* left in flight: freeing the state waits for it */
        r->ahead = eng_forward_ahead(m, s, r->ids[ng - 1], np + ng - 1, smp);
    if (st != ENG_OK) {
        snprintf(err, errlen, "%s: %s", eng_status_str(st), eng_state_error(s));
        goto out;
    }
    rc = 0;
out:
    eng_sampler_free(smp);
    eng_state_free(s);
    eng_model_close(m);
    return rc;
}

static result *result_new(int np, int ng, int V)
{
    result *r = calloc(1, sizeof(*r));
    r->prompt_logits = calloc((size_t)np * V, 4);
    r->gen_logits = calloc((size_t)ng * V, 4);
    return r;
}

static void result_free(result *r)
{
    free(r->prompt_logits);
    free(r->gen_logits);
    free(r);
}

/* Every way in hows[1..n) against hows[0]: ids equal; logits bitwise equal (exact) or within
 * tol; logits mode and sampled mode. */
static void compare(const char *model, const char *label, const how *hows, int n, int exact,
                    double tol)
{
    enum { NP = 12, NG = 24 };
    int prompt[NP];
    for (int i = 0; i < NP; i++)
        prompt[i] = i == 0 ? 1 : (37 * i + 11) % 200 + 2;
    char err[512];
    eng_model *probe = NULL;
    if (eng_model_open(model, NULL, &probe, err, sizeof(err)) != ENG_OK) {
        report(0, "%s: %s", label, err);
        return;
    }
    int V = eng_model_config(probe)->vocab_size;
    eng_model_close(probe);
    for (int mode = 1; mode >= 0; mode--) {
        result *ref = result_new(NP, NG, V);
        if (run(model, &hows[0], prompt, NP, NG, mode, ref, err, sizeof(err)) != 0) {
            report(0, "%s %s (%s): %s", label, hows[0].name, mode ? "logits" : "sampled", err);
            result_free(ref);
            continue;
        }
        if (!mode) { /* one segment: ahead on a GPU, not on the CPU */
            eng_status want = hows[0].device == ENG_DEVICE_CUDA ? ENG_OK : ENG_ERR_UNSUPPORTED;
            report(ref->ahead == want, "%s %s: decoding ahead gives %s (%s wanted)", label,
                   hows[0].name, eng_status_str(ref->ahead), eng_status_str(want));
        }
        for (int k = 1; k < n; k++) {
            result *got = result_new(NP, NG, V);
            if (run(model, &hows[k], prompt, NP, NG, mode, got, err, sizeof(err)) != 0) {
                report(0, "%s %s (%s): %s", label, hows[k].name, mode ? "logits" : "sampled", err);
                result_free(got);
                continue;
            }
            int ids_ok = !memcmp(ref->ids, got->ids, NG * sizeof(int));
            if (mode) {
                size_t pn = (size_t)NP * V, gn = (size_t)NG * V;
                int bits = !memcmp(ref->prompt_logits, got->prompt_logits, pn * 4) &&
                           !memcmp(ref->gen_logits, got->gen_logits, gn * 4);
                double rp = eng_h_rel_err(got->prompt_logits, ref->prompt_logits, pn),
                       rg = eng_h_rel_err(got->gen_logits, ref->gen_logits, gn);
                report(ids_ok && (exact ? bits : rp <= tol && rg <= tol),
                       "%s %s vs %s: logits %s (rel err prompt %.2e, decode %.2e), %d greedy ids "
                       "%s [%s]",
                       label, hows[k].name, hows[0].name, bits ? "bitwise equal" : "differ", rp, rg,
                       NG, ids_ok ? "equal" : "DIFFER", got->desc);
            } else {
                report(ids_ok && got->ahead == ENG_ERR_UNSUPPORTED,
                       "%s %s vs %s: %d sampled greedy ids %s (decode graph: %d; decoding ahead: "
                       "%s, unsupported wanted)",
                       label, hows[k].name, hows[0].name, NG, ids_ok ? "equal" : "DIFFER",
                       got->graph, eng_status_str(got->ahead));
            }
            result_free(got);
        }
        result_free(ref);
    }
}

static void expect_error(const char *model, const eng_load_params *lp, const char *want,
                         const char *label)
{
    char err[512] = "";
    eng_model *m = NULL;
    eng_status st = eng_model_open(model, lp, &m, err, sizeof(err));
    report(st != ENG_OK && !m && strstr(err, want), "%s: \"%s\"", label, err);
    eng_model_close(m);
}

static void cpu_checks(const char *stories, const char *fixtures)
{
    how st[] = {
        {.name = "one segment", .device = ENG_DEVICE_CPU},
        {.name = "cpu 2|3", .n_seg = 2, .layers = {2, 3}, .dev = {-1, -1}},
        {.name = "cpu 1|1|1|1|1",
         .n_seg = 5,
         .layers = {1, 1, 1, 1, 1},
         .dev = {-1, -1, -1, -1, -1}},
        {.name = "cpu 4|1", .n_seg = 2, .layers = {4, 1}, .dev = {-1, -1}},
    };
    compare(stories, "stories260K", st, 4, 1, 0);
    static const char *fx[] = {"tiny-llama-f32", "tiny-qwen3-bf16", "tiny-mistral-f16"};
    for (int i = 0; i < 3; i++) {
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s/%s", fixtures, fx[i]);
        int two = i == 2; /* mistral has 2 layers */
        how h[] = {
            {.name = "one segment", .device = ENG_DEVICE_CPU},
            {.name = two ? "cpu 1|1" : "cpu 1|3",
             .n_seg = 2,
             .layers = {1, two ? 1 : 3},
             .dev = {-1, -1}},
            {.name = "cpu 2|1|1", .n_seg = 3, .layers = {2, 1, 1}, .dev = {-1, -1, -1}},
        };
        compare(dir, fx[i], h, two ? 2 : 3, 1, 0);
    }

    eng_load_params lp;
    eng_load_params_init(&lp);
    const eng_backend *g = eng_backend_gpu();
    int visible = g ? g->device_count() : 0;
    if (visible == 0) {
        lp.device = ENG_DEVICE_AUTO;
        lp.device_layers = "3";
        expect_error(stories, &lp,
                     g ? "--device-layers \"3\": ordinal 0 is unknown: no GPU is visible"
                       : "no GPU is visible (this build has no CUDA backend",
                     "--device-layers 3 without a GPU");
        lp.device_layers = "0:2;1:3";
        expect_error(stories, &lp, "ordinal 0 is unknown: no GPU is visible",
                     "--device-layers 0:2;1:3 without a GPU");
        /* The split by free memory without a GPU keeps every layer on the CPU. */
        eng_model *m = NULL;
        char err[512];
        lp.device_layers = NULL;
        lp.auto_split = 1;
        if (eng_model_open(stories, &lp, &m, err, sizeof(err)) == ENG_OK) {
            report(!strcmp(eng_model_backend(m), "cpu"), "auto split without a GPU: backend %s",
                   eng_model_backend(m));
            eng_model_close(m);
        } else {
            report(0, "auto split without a GPU: %s", err);
        }
        lp.auto_split = 0;
    }
    lp.device_layers = "3";
    lp.tp_size = 2;
    expect_error(stories, &lp, "--device-layers with tensor parallelism (2 ranks)",
                 "--device-layers at tp 2");
    lp.tp_size = 1;
    lp.device_layers = "3:x";
    expect_error(stories, &lp, "layer count \"x\" is not a non-negative integer",
                 "--device-layers 3:x");

    int l1[] = {2, 2}, d1[] = {-1, -1}, l2[] = {0, 5}, l3[] = {3, 3};
    char err[512];
    eng_model *m = NULL;
    eng_load_params_init(&lp);
    report(eng_model_open_segments(stories, &lp, 2, l1, d1, &m, err, sizeof(err)) ==
                   ENG_ERR_INVALID_ARG &&
               strstr(err, "4 layers given, the model has 5"),
           "segments 2|2 of 5 layers: \"%s\"", err);
    report(eng_model_open_segments(stories, &lp, 2, l2, d1, &m, err, sizeof(err)) ==
               ENG_ERR_INVALID_ARG,
           "segments 0|5: \"%s\"", err);
    report(eng_model_open_segments(stories, &lp, 2, l3, d1, &m, err, sizeof(err)) ==
               ENG_ERR_INVALID_ARG,
           "segments 3|3: \"%s\"", err);
}

static void gpu_checks(const char *stories, const char *fixtures)
{
    how st[] = {
        {.name = "cuda", .device = ENG_DEVICE_CUDA},
        {.name = "gpu0 2|gpu0 3", .n_seg = 2, .layers = {2, 3}, .dev = {0, 0}},
        {.name = "--device-layers 3", .spec = "3", .device = ENG_DEVICE_AUTO},
        {.name = "gpu0 1|cpu 3|gpu0 1", .n_seg = 3, .layers = {1, 3, 1}, .dev = {0, -1, 0}},
    };
    /* One GPU split: the same kernels in the same order, so the same bits (in decode the
     * norm's partial sums cross the boundary with x, so its first product runs fused). */
    compare(stories, "stories260K gpu", st, 2, 1, 0);
    /* With CPU layers: the CPU's sums differ in the last bits. */
    how st2[] = {st[0], st[2], st[3]};
    compare(stories, "stories260K gpu+cpu", st2, 3, 0, 1e-4);
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/tiny-llama-f32", fixtures);
    how hf[] = {
        {.name = "cuda", .device = ENG_DEVICE_CUDA},
        {.name = "gpu0 1|gpu0 3", .n_seg = 2, .layers = {1, 3}, .dev = {0, 0}},
        {.name = "--device-layers 0:2", .spec = "0:2", .device = ENG_DEVICE_AUTO},
    };
    compare(dir, "tiny-llama-f32 gpu", hf, 2, 1, 0);
    how hf2[] = {hf[0], hf[2]};
    compare(dir, "tiny-llama-f32 gpu+cpu", hf2, 2, 0, 1e-4);
    snprintf(dir, sizeof(dir), "%s/tiny-qwen3-bf16", fixtures);
    how q[] = {{.name = "cuda", .device = ENG_DEVICE_CUDA},
               {.name = "--device-layers 0:3", .spec = "0:3", .device = ENG_DEVICE_AUTO}};
    compare(dir, "tiny-qwen3-bf16 gpu+cpu", q, 2, 0, 2e-2);

    eng_load_params lp;
    eng_load_params_init(&lp);
    lp.device = ENG_DEVICE_AUTO;
    lp.device_layers = "0:2;0:3";
    expect_error(stories, &lp, "ordinal 0 appears twice", "--device-layers 0:2;0:3");
    lp.device_layers = "0:2;7:3";
    expect_error(stories, &lp, "ordinal 7 is unknown", "--device-layers 0:2;7:3");
    lp.device_layers = "9";
    expect_error(stories, &lp, "9 layers, but the model has 5", "--device-layers 9");
}

/* "0:8,c:8" -> segments */
static int parse_segs(const char *s, how *h)
{
    if (!strcmp(s, "-")) {
        h->device = ENG_DEVICE_CUDA;
        return 0;
    }
    while (*s && h->n_seg < MAX_SEG) {
        int dev = *s == 'c' ? -1 : atoi(s);
        const char *c = strchr(s, ':');
        if (!c) return -1;
        h->dev[h->n_seg] = dev;
        h->layers[h->n_seg++] = atoi(c + 1);
        s = strchr(c, ',');
        if (!s) break;
        s++;
    }
    return 0;
}

static int bench(const char *model, int n, const char *segs)
{
    how h = {.name = segs, .device = ENG_DEVICE_CUDA};
    if (n < 2 || n > 256 || parse_segs(segs, &h)) {
        fprintf(stderr, "usage: test_eng_lmap --bench MODEL N(2..256) SEGS\n");
        return 2;
    }
    int prompt[32];
    for (int i = 0; i < 32; i++)
        prompt[i] = 1000 + i;
    result r = {0};
    char err[512];
    if (run(model, &h, prompt, 32, n, 0, &r, err, sizeof(err)) != 0) {
        printf("bench %s: FAIL %s\n", segs, err);
        return 1;
    }
    unsigned long sum = 0;
    for (int i = 0; i < n; i++)
        sum = sum * 31 + (unsigned)r.ids[i];
    printf("bench %s: decode %d steps in %.3f s (%.1f tok/s); graph %d; ids hash %lx [%s]\n", segs,
           n - 1, r.decode_s, (n - 1) / r.decode_s, r.graph, sum, r.desc);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 5 && !strcmp(argv[1], "--bench")) return bench(argv[2], atoi(argv[3]), argv[4]);
    char stories[4096], fixtures[4096];
    const char *sh = test_shared_dir();
    test_need_path(sh);
    snprintf(stories, sizeof(stories), "%s/models/stories260K.bin", sh);
    snprintf(fixtures, sizeof(fixtures), "%s/fixtures/hf", sh);
    test_need_path(stories);
    test_need_path(fixtures);
    cpu_checks(stories, fixtures);
    const eng_backend *g = eng_backend_gpu();
    if (g && g->device_count() > 0)
        gpu_checks(stories, fixtures);
    else
        printf("gpu checks skipped: %s\n", g ? "no GPU visible" : "built without CUDA");
    printf("%s\n", test_failures ? "FAIL" : "PASS");
    TEST_DONE();
}
