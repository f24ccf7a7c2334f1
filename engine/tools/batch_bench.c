/* SPDX-License-Identifier: MIT */
/* eng-batch-bench: the engine's own decode rate with several sequences in one forward pass
 * (eng_forward_batch), without the server or its HTTP clients: for each batch size B, B
 * sequences each get a prompt of --prompt tokens, then --steps decode steps of B tokens (one
 * per sequence) are timed. Without --temperature the rows' logits are computed but not
 * sampled; with it every row is sampled as the server samples (eng_forward_batch_sample, a
 * sampler per row with --top-p). Prints one line per B: median ms per step over --repeat
 * runs, tokens/s and the ratio to B = 1.
 *   eng-batch-bench -m MODEL [--rows 1,4,16] [--prompt 32] [--steps 64] [--repeat 3]
 *                   [--threads 1] [--device cpu|cuda] [--temperature T] [--top-p P] */
#include "eng.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_ROWS 64
#define MAX_RUNS 16

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The engine's log (with ENG_CUDA_PROFILE=1: each state's per-stage profile at its end). */
static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("# %s\n", line);
}

static int usage(void)
{
    fprintf(stderr, "usage: eng-batch-bench -m MODEL [--rows 1,4,16] [--prompt 32] [--steps 64] "
                    "[--repeat 3] [--threads 1] [--device cpu|cuda] [--temperature T] "
                    "[--top-p P]\n");
    return 2;
}

/* One run: B sequences prefilled together, then `steps` timed decode steps; ms per step.
 * smp: a sampler per row, or NULL (logits only). */
static eng_status run(const eng_model *m, eng_state *s, int B, int prompt, int steps,
                      eng_sampler *const *smp, double *ms)
{
    int V = eng_model_config(m)->vocab_size;
    int n = B * prompt > B ? B * prompt : B;
    int *tok = malloc((size_t)n * sizeof(int)), *pos = malloc((size_t)n * sizeof(int)),
        *seq = malloc((size_t)n * sizeof(int)), *flag = malloc((size_t)n * sizeof(int));
    eng_status st = tok && pos && seq && flag ? ENG_OK : ENG_ERR_NOMEM;
    for (int q = 0; q < B && st == ENG_OK; q++) { /* prompts one sequence per call */
        for (int t = 0; t < prompt; t++) {
            tok[t] = (1 + 7 * t + 13 * q) % V;
            pos[t] = t;
            seq[t] = q;
            flag[t] = 0;
        }
        eng_batch b = {.n = prompt, .tokens = tok, .pos = pos, .seq = seq, .logits = flag};
        st = eng_forward_batch(m, s, &b, NULL, NULL);
    }
    double t0 = now();
    for (int k = 0; k < steps && st == ENG_OK; k++) {
        for (int q = 0; q < B; q++) {
            tok[q] = (3 + 11 * k + 5 * q) % V;
            pos[q] = prompt + k;
            seq[q] = q;
            flag[q] = 1; /* every sequence samples: the classifier runs for every row */
        }
        eng_batch b = {.n = B, .tokens = tok, .pos = pos, .seq = seq, .logits = flag};
        const float *lg;
        int ids[MAX_ROWS];
        st = smp ? eng_forward_batch_sample(m, s, &b, NULL, smp, NULL, ids, NULL)
                 : eng_forward_batch(m, s, &b, NULL, &lg);
    }
    *ms = (now() - t0) * 1e3 / steps;
    free(tok), free(pos), free(seq), free(flag);
    return st;
}

int main(int argc, char **argv)
{
    const char *model = NULL, *rows_arg = "1,4,16";
    int prompt = 32, steps = 64, repeat = 3, threads = 1;
    float temperature = -1.0f, top_p = 1.0f; /* temperature < 0: no sampling */
    eng_device dev = ENG_DEVICE_CPU;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(a, "-m"))
            model = v;
        else if (!strcmp(a, "--rows"))
            rows_arg = v;
        else if (!strcmp(a, "--prompt"))
            prompt = atoi(v);
        else if (!strcmp(a, "--steps"))
            steps = atoi(v);
        else if (!strcmp(a, "--repeat"))
            repeat = atoi(v);
        else if (!strcmp(a, "--threads"))
            threads = atoi(v);
        else if (!strcmp(a, "--temperature"))
            temperature = strtof(v, NULL);
        else if (!strcmp(a, "--top-p"))
            top_p = strtof(v, NULL);
        else if (!strcmp(a, "--device") && (!strcmp(v, "cpu") || !strcmp(v, "cuda")))
            dev = strcmp(v, "cpu") ? ENG_DEVICE_CUDA : ENG_DEVICE_CPU;
        else
            return usage();
        i++;
    }
    if (!model || prompt < 1 || steps < 1 || repeat < 1 || repeat > MAX_RUNS || threads < 1 ||
        !(top_p >= 0.0f && top_p <= 1.0f))
        return usage();
    int rows[MAX_ROWS], nrows = 0;
    for (const char *p = rows_arg; *p && nrows < MAX_ROWS;) {
        rows[nrows] = atoi(p);
        if (rows[nrows] < 1 || rows[nrows] > MAX_ROWS) return usage();
        nrows++;
        p = strchr(p, ',');
        if (!p) break;
        p++;
    }
    char err[512];
    eng_load_params lp;
    eng_load_params_init(&lp);
    lp.device = dev;
    lp.log = log_line;
    eng_model *m = NULL;
    eng_status st = eng_model_open(model, &lp, &m, err, sizeof(err));
    if (st != ENG_OK) {
        fprintf(stderr, "eng-batch-bench: %s: %s\n", model, err);
        return 1;
    }
    char desc[256];
    eng_model_describe(m, desc, sizeof(desc));
    printf("# %s: %s, prompt %d, %d decode steps, median of %d runs, %d thread%s, ", model, desc,
           prompt, steps, repeat, threads, threads > 1 ? "s" : "");
    if (temperature < 0.0f)
        printf("logits not sampled\n");
    else
        printf("every row sampled at temperature %g, top-p %g\n", temperature, top_p);
    eng_sampler *smp[MAX_ROWS] = {0};
    for (int q = 0; q < MAX_ROWS && temperature >= 0.0f && st == ENG_OK; q++)
        st = eng_sampler_create(eng_model_config(m)->vocab_size, temperature, top_p,
                                (uint64_t)q + 1, &smp[q]);
    if (st != ENG_OK) {
        fprintf(stderr, "eng-batch-bench: sampler: %s\n", eng_status_str(st));
        return 2;
    }
    double base = 0;
    for (int r = 0; r < nrows && st == ENG_OK; r++) {
        int B = rows[r];
        eng_state_params sp;
        eng_state_params_init(&sp);
        sp.n_seqs = B;
        sp.max_batch = B > prompt ? B : prompt;
        sp.ctx_len = prompt + steps;
        sp.n_threads = threads;
        eng_state *s = NULL;
        if ((st = eng_state_create(m, &sp, &s, err, sizeof(err))) != ENG_OK) {
            fprintf(stderr, "eng-batch-bench: %s\n", err);
            break;
        }
        double ms[MAX_RUNS];
        for (int k = 0; k < repeat && st == ENG_OK; k++)
            st = run(m, s, B, prompt, steps, temperature >= 0.0f ? smp : NULL, &ms[k]);
        if (st != ENG_OK) {
            fprintf(stderr, "eng-batch-bench: %d rows: %s %s\n", B, eng_status_str(st),
                    eng_state_error(s));
        } else {
            qsort(ms, (size_t)repeat, sizeof(double), cmp_double);
            double med = ms[repeat / 2], tps = B * 1e3 / med;
            if (r == 0) base = tps;
            printf("rows %2d: %8.3f ms/step  %9.1f tok/s  %5.2fx (runs:", B, med, tps,
                   base > 0 ? tps / base : 0);
            for (int k = 0; k < repeat; k++)
                printf(" %.3f", ms[k]);
            printf(" ms)\n");
        }
        eng_state_free(s);
    }
    for (int q = 0; q < MAX_ROWS; q++)
        eng_sampler_free(smp[q]);
    eng_model_close(m);
    return st == ENG_OK ? 0 : 1;
}
