/* SPDX-License-Identifier: MIT */
/* The Hugging Face fixtures (transformers reference, float32): prompt logits within the
 * README's relative error and the 16 greedy ids exactly, at every TP size the heads allow. */
#include "test_eng_harness.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int ints(const cJSON *a, int *out, int max)
{
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a) if (n < max) out[n++] = e->valueint;
    return n;
}

static void check(const char *name, double tol, const int *tps, int ntp)
{
    char dir[4096], path[4200], err[512];
    snprintf(dir, sizeof(dir), "%s/fixtures/hf/%s", test_shared_dir(), name);
    test_need_path(dir);
    snprintf(path, sizeof(path), "%s/reference.json", dir);
    char *txt = eng_h_slurp(path, NULL);
    cJSON *j = txt ? cJSON_Parse(txt) : NULL;
    free(txt);
    if (!j) {
        TEST_FAIL("%s: cannot read %s", name, path);
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
    for (int i = 0; i < ntp; i++) {
        int ids[64];
        if (eng_h_generate(dir, tps[i], prompt, np, ng, got, ids, err, sizeof(err)) != 0) {
            TEST_FAIL("%s tp=%d: %s", name, tps[i], err);
            continue;
        }
        double rel = eng_h_rel_err(got, ref, (size_t)np * vocab);
        int bad = -1;
        for (int k = 0; k < ng && bad < 0; k++)
            if (ids[k] != greedy[k]) bad = k;
        printf("%s tp=%d: logits rel err %.2e (limit %.0e), greedy ids %s\n", name, tps[i], rel,
               tol, bad < 0 ? "match" : "DIFFER");
        if (rel > tol || bad >= 0) test_failures++;
    }
    free(got);
    free(ref);
}

int main(void)
{
    static const int tp124[] = {1, 2, 4}, tp1248[] = {1, 2, 4, 8};
    check("tiny-llama-f32", 1e-4, tp124, 3);
    check("tiny-qwen3-bf16", 1e-3, tp124, 3);
    check("tiny-mistral-f16", 1e-3, tp1248, 4);
    TEST_DONE();
}
