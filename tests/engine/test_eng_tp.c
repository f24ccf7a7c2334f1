/* SPDX-License-Identifier: MIT */
/* TP=N equals TP=1 on random models from eng-genmodel's writer, in both file formats:
 * uneven FFN splits, replicated KV heads, biases, q/k norms, f16/bf16, tied classifier,
 * sharded safetensors, a sliding window. Also that a layout the rules forbid is refused. */
#include "../engine/tools/genmodel.h"
#include "test_eng_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char tmpdir[] = "/tmp/eng_tp_XXXXXX";

static void run_case(const char *label, gen_spec *s, const int *tps, int ntp, int bad_tp)
{
    char path[512], err[512];
    snprintf(path, sizeof(path), "%s/%s%s", tmpdir, label, s->format == GEN_BIN ? ".bin" : "");
    if (gen_write(s, path, err, sizeof(err)) != 0) {
        TEST_FAIL("%s: generator: %s", label, err);
        return;
    }
    enum { NP = 9, NG = 12 };
    int prompt[NP];
    for (int i = 0; i < NP; i++)
        prompt[i] = (i * 37 + 5) % s->vocab_size;
    size_t nl = (size_t)NP * s->vocab_size;
    float *ref = malloc(nl * sizeof(float)), *got = malloc(nl * sizeof(float));
    int ref_ids[NG], ids[NG];
    if (eng_h_generate(path, 1, prompt, NP, NG, ref, ref_ids, err, sizeof(err)) != 0) {
        TEST_FAIL("%s tp=1: %s", label, err);
        goto out;
    }
    for (int i = 0; i < ntp; i++) {
        if (eng_h_generate(path, tps[i], prompt, NP, NG, got, ids, err, sizeof(err)) != 0) {
            TEST_FAIL("%s tp=%d: %s", label, tps[i], err);
            continue;
        }
        double rel = eng_h_rel_err(got, ref, nl);
        int same = !memcmp(ids, ref_ids, sizeof(ids));
        printf("%s tp=%d: logits rel err vs tp=1 %.2e, greedy ids %s\n", label, tps[i], rel,
               same ? "match" : "DIFFER");
        if (rel > 1e-5 || !same) test_failures++;
    }
    if (bad_tp) {
        if (eng_h_generate(path, bad_tp, prompt, NP, NG, got, ids, err, sizeof(err)) == 0 ||
            !strstr(err, "must be divisible")) {
            TEST_FAIL("%s tp=%d accepted or wrong message: %s", label, bad_tp, err);
        } else {
            printf("%s tp=%d refused: %s\n", label, bad_tp, err);
        }
    }
out:
    free(ref);
    free(got);
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 99;
    }
    gen_spec s;
    static const int t248[] = {2, 4, 8}, t26[] = {2, 6}, t24[] = {2, 4}, t2[] = {2};

    gen_spec_init(&s); /* llama2.c .bin, GQA 8/4, FFN 172 (uneven at 8), separate classifier */
    run_case("bin-gqa", &s, t248, 3, 3);

    gen_spec_init(&s); /* Qwen2: q/k/v biases, head_dim 16, FFN 250 (uneven at 4 and 6) */
    s.format = GEN_HF;
    s.arch = GEN_QWEN2;
    s.dim = 96;
    s.n_heads = 6;
    s.n_kv_heads = 2;
    s.head_dim = 16;
    s.hidden_dim = 250;
    s.seed = 2;
    run_case("hf-qwen2", &s, t26, 2, 3);

    gen_spec_init(&s); /* Qwen3 bf16: q/k norm, head_dim 32 != dim/heads, tied, 3 shard files */
    s.format = GEN_HF;
    s.arch = GEN_QWEN3;
    s.dtype = GEN_BF16;
    s.dim = 64;
    s.n_heads = 4;
    s.n_kv_heads = 4;
    s.head_dim = 32;
    s.hidden_dim = 102;
    s.tied = 1;
    s.shards = 3;
    s.seed = 3;
    run_case("hf-qwen3-sharded", &s, t24, 2, 0);

    gen_spec_init(&s); /* Mistral f16, sliding window 5 < prompt + generated */
    s.format = GEN_HF;
    s.arch = GEN_MISTRAL;
    s.dtype = GEN_F16;
    s.n_layers = 3;
    s.sliding_window = 5;
    s.seed = 4;
    run_case("hf-mistral-window", &s, t2, 1, 0);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    TEST_DONE();
}
