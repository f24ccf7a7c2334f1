/* SPDX-License-Identifier: MIT */
/* The sampler on hostile logits (issue 15): NaN or infinity is refused (-1) under greedy, plain
 * and top-p sampling instead of reading before its buffer or emitting token 0 forever; top-p 0
 * keeps only the most likely token (transformers' meaning); top-p outside [0, 1] is refused.
 * Then what it draws: every token from the top-p nucleus, each as often as its probability
 * says (computed here in double precision and sorted), for small and large vocabularies. */
#include "eng.h"
#include "../check.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static void expect(const char *what, int got, int want)
{
    printf("%s: %d%s\n", what, got, got == want ? "" : " FAIL");
    if (got != want) test_failures++;
}

static const double *sort_p;
static int by_p(const void *a, const void *b)
{
    double x = sort_p[*(const int *)a], y = sort_p[*(const int *)b];
    return (x < y) - (x > y);
}

/* Draws n tokens from logits lg [V] and compares the counts with the exact distribution: the
 * softmax at temperature T, cut to the smallest most likely set whose mass exceeds top_p and
 * renormalized. A token outside it fails, and so does a count more than 6 sigma from its
 * expectation. The logits must not put a tie or a near tie at the nucleus' edge. */
static void check_draws(const char *what, const float *lg, int V, float T, float top_p, int n)
{
    double *p = malloc((size_t)V * sizeof(double)), mx = -INFINITY, sum = 0.0;
    int *order = malloc((size_t)V * sizeof(int)), *count = calloc((size_t)V, sizeof(int));
    char *in = calloc((size_t)V, 1);
    for (int i = 0; i < V; i++)
        mx = lg[i] > mx ? lg[i] : mx;
    for (int i = 0; i < V; i++) {
        p[i] = exp((lg[i] - mx) / T);
        sum += p[i];
        order[i] = i;
    }
    sort_p = p;
    qsort(order, (size_t)V, sizeof(int), by_p);
    double mass = 0.0;
    int k = 0;
    while (k < V && (top_p >= 1.0f || mass <= top_p * sum)) {
        in[order[k]] = 1;
        mass += p[order[k++]];
    }
    eng_sampler *s;
    if (eng_sampler_create(V, T, top_p, 12345, &s) != ENG_OK) {
        expect(what, 0, 1);
        return;
    }
    int outside = -1;
    for (int d = 0; d < n; d++) {
        int id = eng_sampler_sample(s, lg);
        if (id < 0 || id >= V || !in[id])
            outside = id;
        else
            count[id]++;
    }
    /* Tokens expected fewer than 20 times are judged together, as one bucket. */
    double worst = 0.0, tail_q = 0.0;
    long tail_count = 0;
    for (int i = 0; i < V; i++) {
        if (!in[i]) continue;
        double q = p[i] / mass;
        if (q * n < 20.0) {
            tail_q += q;
            tail_count += count[i];
            continue;
        }
        double z = fabs(count[i] - q * n) / sqrt(n * q * (1.0 - q));
        worst = z > worst ? z : worst;
    }
    if (tail_q > 0.0) {
        double z = fabs(tail_count - tail_q * n) / (sqrt(n * tail_q * (1.0 - tail_q)) + 1.0);
        worst = z > worst ? z : worst;
    }
    printf("%s: nucleus of %d tokens, worst count %.2f sigma from its expectation, %s\n", what, k,
           worst, outside < 0 ? "none outside" : "a token outside");
    if (outside >= 0 || worst > 6.0) test_failures++;
    eng_sampler_free(s);
    free(p);
    free(order);
    free(count);
    free(in);
}

/* A normal deviate from a fixed generator, for logits of a realistic spread. */
static float gauss(uint64_t *st)
{
    double u[2];
    for (int i = 0; i < 2; i++) {
        *st = *st * 6364136223846793005ULL + 1442695040888963407ULL;
        u[i] = ((double)(*st >> 11) + 0.5) / 9007199254740992.0;
    }
    return (float)(sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]));
}

int main(void)
{
    enum { V = 64 };
    float lg[V];
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const char *names[] = {"NaN", "+inf", "-inf"};
    const float temps[] = {0.0f, 1.0f, 1.0f, 0.7f};
    const float tops[] = {0.9f, 1.0f, 0.9f, 0.0f};
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 4; t++)
            for (int where = 0; where < V; where += V - 1) {
                eng_sampler *s;
                if (eng_sampler_create(V, temps[t], tops[t], 7, &s) != ENG_OK) return 99;
                for (int i = 0; i < V; i++)
                    lg[i] = (float)(i % 7) * 0.1f;
                lg[where] = bad[b];
                char what[128];
                snprintf(what, sizeof(what), "%s at %d, T %.1f, top-p %.1f", names[b], where,
                         temps[t], tops[t]);
                expect(what, eng_sampler_sample(s, lg), -1);
                eng_sampler_free(s);
            }
    /* All NaN: the case that read cand[-1]. */
    eng_sampler *s;
    if (eng_sampler_create(V, 1.0f, 0.9f, 7, &s) != ENG_OK) return 99;
    for (int i = 0; i < V; i++)
        lg[i] = NAN;
    expect("all NaN, top-p 0.9", eng_sampler_sample(s, lg), -1);
    eng_sampler_free(s);
    /* top-p 0: always the most likely token, even with flat logits around it. */
    if (eng_sampler_create(V, 1.0f, 0.0f, 7, &s) != ENG_OK) return 99;
    for (int i = 0; i < V; i++)
        lg[i] = 0.0f;
    lg[37] = 0.01f;
    int ok = 1;
    for (int k = 0; k < 200; k++)
        ok &= eng_sampler_sample(s, lg) == 37;
    expect("top-p 0 picks the argmax 200 times", ok, 1);
    /* Flat logits and top-p 0: a token, not a read before the buffer. */
    lg[37] = 0.0f;
    int id = eng_sampler_sample(s, lg);
    expect("top-p 0, flat logits, id in range", id >= 0 && id < V, 1);
    eng_sampler_free(s);
    expect("top-p 1.5 refused", eng_sampler_create(V, 1.0f, 1.5f, 7, &s), ENG_ERR_INVALID_ARG);
    expect("top-p NaN refused", eng_sampler_create(V, 1.0f, NAN, 7, &s), ENG_ERR_INVALID_ARG);
    expect("temperature inf refused", eng_sampler_create(V, INFINITY, 0.9f, 7, &s),
           ENG_ERR_INVALID_ARG);

    /* Distinct logits, 64 tokens: plain sampling and a nucleus cut between two of them. */
    for (int i = 0; i < V; i++)
        lg[i] = (float)((i * 37) % V) * 0.05f;
    check_draws("64 tokens, T 1, top-p 1", lg, V, 1.0f, 1.0f, 200000);
    check_draws("64 tokens, T 0.7, top-p 0.9", lg, V, 0.7f, 0.9f, 200000);
    check_draws("64 tokens, T 0.5, top-p 0.3", lg, V, 0.5f, 0.3f, 200000);
    /* 32000 tokens spread like a language model's (normal, sd 3): hundreds in the nucleus, so
     * the selection runs several rounds; and the whole vocabulary at top-p 1. */
    enum { BIG = 32000 };
    static float big[BIG];
    uint64_t st = 99;
    for (int i = 0; i < BIG; i++)
        big[i] = 3.0f * gauss(&st);
    check_draws("32000 tokens, T 0.8, top-p 0.95", big, BIG, 0.8f, 0.95f, 40000);
    check_draws("32000 tokens, T 1.2, top-p 1", big, BIG, 1.2f, 1.0f, 40000);
    TEST_DONE();
}
