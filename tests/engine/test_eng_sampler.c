/* SPDX-License-Identifier: MIT */
/* The sampler on hostile logits (issue 15): NaN or infinity is refused (-1) under greedy, plain
 * and top-p sampling instead of reading before its buffer or emitting token 0 forever; top-p 0
 * keeps only the most likely token (transformers' meaning); top-p outside [0, 1] is refused. */
#include "eng.h"
#include "../check.h"

#include <math.h>
#include <stdio.h>

static void expect(const char *what, int got, int want)
{
    printf("%s: %d%s\n", what, got, got == want ? "" : " FAIL");
    if (got != want) test_failures++;
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
    TEST_DONE();
}
