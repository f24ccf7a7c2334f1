/* SPDX-License-Identifier: MIT */
/* Token sampling: greedy, or temperature + top-p (nucleus). */
#include "eng_internal.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    float p;
    int id;
} prob_id;

struct eng_sampler {
    int vocab;
    float temperature, top_p;
    uint64_t rng;
    prob_id *cand; /* [vocab] */
};

eng_status eng_sampler_create(int vocab, float temperature, float top_p, uint64_t seed,
                              eng_sampler **out)
{
    *out = NULL;
    if (vocab <= 0 || !(temperature >= 0.0f) || !isfinite(temperature) || !(top_p >= 0.0f) ||
        !(top_p <= 1.0f))
        return ENG_ERR_INVALID_ARG;
    eng_sampler *s = calloc(1, sizeof(*s));
    if (!s) return ENG_ERR_NOMEM;
    s->cand = malloc((size_t)vocab * sizeof(prob_id));
    if (!s->cand) {
        free(s);
        return ENG_ERR_NOMEM;
    }
    s->vocab = vocab;
    s->temperature = temperature;
    s->top_p = top_p;
    s->rng = seed ? seed : 0x9E3779B97F4A7C15ULL; /* xorshift must not start at 0 */
    *out = s;
    return ENG_OK;
}

void eng_sampler_free(eng_sampler *s)
{
    if (!s) return;
    free(s->cand);
    free(s);
}

static float rand_f32(uint64_t *s)
{
    /* xorshift64*: the top 24 bits give a float in [0, 1). */
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return (float)((x * 0x2545F4914F6CDD1DULL) >> 40) / 16777216.0f;
}

/* The index of the largest of v[0..n) (the first of equals), or -1 when one is not finite: one
 * pass over the logits, which a small model's decode step otherwise read twice. */
static int finite_argmax(const float *v, int n)
{
    int best = 0;
    float m = v[0];
    for (int i = 0; i < n; i++) {
        float x = v[i];
        if (!isfinite(x)) return -1;
        if (x > m) m = x, best = i;
    }
    return best;
}

static int by_p_desc(const void *a, const void *b)
{
    float pa = ((const prob_id *)a)->p, pb = ((const prob_id *)b)->p;
    return (pa < pb) - (pa > pb);
}

int eng_sampler_sample(eng_sampler *s, const float *logits)
{
    int V = s->vocab;
    /* NaN compares false and inf - inf is NaN: either would leave no candidate (or token 0
     * forever under argmax), so non-finite logits are refused, not sampled. */
    int top = finite_argmax(logits, V);
    if (top < 0 || s->temperature == 0.0f) return top;
    float mx = logits[top], sum = 0.0f;
    for (int i = 0; i < V; i++) {
        s->cand[i].p = expf((logits[i] - mx) / s->temperature);
        s->cand[i].id = i;
        sum += s->cand[i].p;
    }
    float r = rand_f32(&s->rng);
    int n = V;
    if (s->top_p < 1.0f) {
        /* Tokens below (1 - top_p) / (V - 1) cannot be in the nucleus: drop them first. The most
         * likely token (p = 1 after subtracting the max) always stays, so top_p 0 keeps only it,
         * as transformers' TopPLogitsWarper does (min_tokens_to_keep 1). */
        float cutoff = V > 1 ? (1.0f - s->top_p) / (float)(V - 1) * sum : 0.0f;
        if (cutoff > 1.0f) cutoff = 1.0f;
        n = 0;
        for (int i = 0; i < V; i++)
            if (s->cand[i].p >= cutoff) s->cand[n++] = s->cand[i];
        qsort(s->cand, (size_t)n, sizeof(prob_id), by_p_desc);
        float acc = 0.0f, limit = s->top_p * sum;
        for (int i = 0; i < n; i++) {
            acc += s->cand[i].p;
            if (acc > limit) {
                n = i + 1;
                break;
            }
        }
        sum = acc;
    }
    float target = r * sum, run = 0.0f;
    for (int i = 0; i < n; i++) {
        run += s->cand[i].p;
        if (target < run) return s->cand[i].id;
    }
    return s->cand[n - 1].id;
}

void eng_sampler_settings(const eng_sampler *s, float *temperature, float *top_p)
{
    *temperature = s->temperature;
    *top_p = s->top_p;
}

float eng_sampler_draw(eng_sampler *s)
{
    return rand_f32(&s->rng);
}
