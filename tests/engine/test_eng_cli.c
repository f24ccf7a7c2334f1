/* SPDX-License-Identifier: MIT */
/* The ringinfer command line (eng_cli_main) as 1, 2 and 4 processes joined by shared memory:
 * reference ids and logits through --print-ids / --dump-logits, text through -p, only rank 0
 * printing, and one-line errors with the right exit codes for bad input. */
#include "../engine/tools/genmodel.h"
#include "test_eng_harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/eng_cli_XXXXXX";

static char *slurp(const char *name, size_t *len)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    FILE *f = fopen(p, "rb");
    if (!f) return NULL;
    char *b = malloc(1 << 22);
    size_t n = fread(b, 1, (1 << 22) - 1, f);
    fclose(f);
    b[n] = 0;
    if (len) *len = n;
    return b;
}

/* Runs argv at tp ranks; returns rank 0's exit code (-1 on hang/crash). */
static int cli(int tp, char **argv)
{
    int argc = 0, rcs[8];
    while (argv[argc])
        argc++;
    if (eng_h_cli(tp, argc, argv, dir, rcs) != 0) return -1;
    for (int r = 1; r < tp; r++)
        if (rcs[r] != rcs[0]) {
            TEST_FAIL("rank %d exit %d, rank 0 exit %d", r, rcs[r], rcs[0]);
        }
    return rcs[0];
}

static void expect_fail(const char *label, char **argv, int rc_want, const char *needle)
{
    int rc = cli(1, argv);
    char *e = slurp("err0", NULL);
    int lines = 0;
    for (char *p = e; p && *p; p++)
        lines += *p == '\n';
    int ok = rc == rc_want && e && strstr(e, needle) && lines == 1;
    printf("%s: exit %d, %s", label, rc, e ? e : "(no stderr)\n");
    if (!ok) {
        TEST_FAIL("%s: want exit %d and one line containing '%s'", label, rc_want, needle);
    }
    free(e);
}

static void stories(const char *shared)
{
    char model[600], tok[600], dump[600];
    snprintf(model, sizeof(model), "%s/models/stories260K.bin", shared);
    snprintf(tok, sizeof(tok), "%s/models/tok512.bin", shared);
    if (access(model, R_OK) != 0) {
        printf("stories260K absent: its CLI checks are skipped\n");
        return;
    }
    snprintf(dump, sizeof(dump), "%s/logits.f32", dir);
    static const char *ref_ids = "403 407 261 378 432 383 286 261 376 298 315 421 395 317 426 "
                                 "338 401 396 267 337 410 408 419 292 411 322 265 282 295 433 "
                                 "426 385\n";
    for (int tp = 1; tp <= 4; tp *= 2) {
        char *argv[] = {
            "ringinfer", "run",           "-m", model,         "--prompt-ids",  "1",  "-n",
            "32",        "--temperature", "0",  "--print-ids", "--dump-logits", dump, NULL};
        int rc = cli(tp, argv);
        char *out = slurp("out0", NULL), *out1 = tp > 1 ? slurp("out1", NULL) : NULL;
        size_t dl = 0;
        float *lg = (float *)slurp("logits.f32", &dl);
        int ok = rc == 0 && out && !strcmp(out, ref_ids) && (!out1 || !*out1) && dl == 512 * 4 &&
                 fabsf(lg[1] - 8.404342f) < 1e-4f && fabsf(lg[0] + 6.222911f) < 1e-4f;
        printf("stories260K --prompt-ids 1 tp=%d: exit %d, ids %s, logits[1] %.6f\n", tp, rc,
               out && !strcmp(out, ref_ids) ? "match" : "DIFFER", dl >= 8 ? lg[1] : NAN);
        if (!ok) test_failures++;
        free(out);
        free(out1);
        free(lg);
    }
    char *first = NULL;
    for (int tp = 1; tp <= 2; tp++) {
        char *argv[] = {"ringinfer",        "run", "-m", model,           "--tokenizer", tok, "-p",
                        "Once upon a time", "-n",  "40", "--temperature", "0",           NULL};
        int rc = cli(tp, argv);
        char *out = slurp("out0", NULL);
        printf("stories260K -p tp=%d: exit %d: %s", tp, rc, out ? out : "(none)\n");
        if (rc != 0 || !out || strncmp(out, "Once upon a time", 16) || strlen(out) < 60 ||
            (first && strcmp(first, out)))
            test_failures++;
        if (!first)
            first = out;
        else
            free(out);
    }
    free(first);
    /* Sampling: runs, gives n ids in range, same seed same ids. */
    char *ids1 = NULL;
    for (int i = 0; i < 2; i++) {
        char *argv[] = {
            "ringinfer",     "run", "-m",      model, "--prompt-ids", "1,403", "-n",          "20",
            "--temperature", "1.0", "--top-p", "0.9", "--seed",       "42",    "--print-ids", NULL};
        int rc = cli(1, argv);
        char *out = slurp("out0", NULL);
        int n = 0, bad = 0;
        for (char *p = out; p && *p;) {
            char *end;
            long v = strtol(p, &end, 10);
            if (end == p) break;
            n++;
            bad |= v < 0 || v >= 512;
            p = end;
        }
        if (rc != 0 || n != 20 || bad || (ids1 && strcmp(ids1, out))) {
            printf("FAIL sampling: exit %d, %d ids: %s", rc, n, out ? out : "\n");
            test_failures++;
        }
        if (!ids1)
            ids1 = out;
        else
            free(out);
    }
    printf("sampling T=1 top-p 0.9 seed 42: %s", ids1 ? ids1 : "\n");
    free(ids1);
    /* A prompt prefilled in chunks of 4 (4 + 4 + 1) gives the ids of one pass, and so does
     * --prefill-precision high (the CPU's activations are f32 either way). */
    char *whole = NULL;
    for (int i = 0; i < 3; i++) {
        char *argv[] = {"ringinfer",
                        "run",
                        "-m",
                        model,
                        "--prompt-ids",
                        "1,50,60,70,80,90,100,110,120",
                        "-n",
                        "16",
                        "--temperature",
                        "0",
                        "--print-ids",
                        i ? "--prefill-chunk" : NULL,
                        "4",
                        i == 2 ? "--prefill-precision" : NULL,
                        "high",
                        NULL};
        int rc = cli(1, argv);
        char *out = slurp("out0", NULL);
        printf("stories260K 9-token prompt%s%s: exit %d, ids %s", i ? ", --prefill-chunk 4" : "",
               i == 2 ? ", --prefill-precision high" : "", rc, out ? out : "\n");
        if (rc != 0 || !out || (whole && strcmp(whole, out))) test_failures++;
        if (!whole)
            whole = out;
        else
            free(out);
    }
    free(whole);
    char *argv3[] = {"ringinfer", "run", "-m", model, "--prompt-ids", "1", "-n", "4", NULL};
    int rcs[3];
    eng_h_cli(3, 8, argv3, dir, rcs);
    char *e = slurp("err0", NULL);
    printf("stories260K tp=3: exit %d, %s", rcs[0], e ? e : "\n");
    if (rcs[0] != 1 || !e ||
        !strstr(e, "Total number of attention heads (8) must be divisible by tensor parallel "
                   "size (3)."))
        test_failures++;
    free(e);
}

int main(void)
{
    if (!mkdtemp(dir)) return 99;
    const char *shared = test_shared_dir();
    stories(shared);

    /* Bad input, each a one-line error. */
    char bin[600], trunc[600], hf[600];
    snprintf(bin, sizeof(bin), "%s/m.bin", dir);
    snprintf(trunc, sizeof(trunc), "%s/t.bin", dir);
    snprintf(hf, sizeof(hf), "%s/hf", dir);
    gen_spec s;
    char err[256];
    gen_spec_init(&s);
    if (gen_write(&s, bin, err, sizeof(err))) return 99;
    s.format = GEN_HF;
    if (gen_write(&s, hf, err, sizeof(err))) return 99;
    char cmd[2000];
    snprintf(cmd, sizeof(cmd), "head -c 5000 %s > %s", bin, trunc);
    if (system(cmd)) return 99;
    {
        char *a[] = {"ringinfer", "run", "-m", "/nonexistent/model.bin", "--prompt-ids", "1",
                     "-n",        "2",   NULL};
        expect_fail("missing model", a, 1, "/nonexistent/model.bin");
    }
    {
        char *a[] = {"ringinfer", "run", "-m", trunc, "--prompt-ids", "1", "-n", "2", NULL};
        expect_fail("truncated .bin", a, 1, "truncated");
    }
    {
        char *a[] = {"ringinfer", "run", "-m", bin, "--prompt-ids", "1,x", "-n", "2", NULL};
        expect_fail("bad --prompt-ids", a, 2, "--prompt-ids");
    }
    {
        char *a[] = {"ringinfer", "run", "-m", bin, "--prompt-ids", "1,999", "-n", "2", NULL};
        expect_fail("id out of vocab", a, 2, "0..255");
    }
    {
        char *a[] = {"ringinfer", "run", "-m", bin, "--prompt-ids", "1", NULL};
        expect_fail("no -n", a, 2, "-n N is required");
    }
    {
        char *a[] = {"ringinfer",       "run", "-m", bin, "--prompt-ids", "1", "-n", "2",
                     "--prefill-chunk", "0",   NULL};
        expect_fail("bad --prefill-chunk", a, 2, "--prefill-chunk: '0' is not a token count");
        char *b[] = {"ringinfer",           "run",   "-m", bin, "--prompt-ids", "1", "-n", "2",
                     "--prefill-precision", "exact", NULL};
        expect_fail("bad --prefill-precision", b, 2,
                    "--prefill-precision: 'exact' is neither fast nor high");
    }
    {
        /* Layer mapping: -n stays the token count; --device-layers is the long form only. */
        char *a[] = {"ringinfer", "run", "-m",       bin,   "--prompt-ids",    "1",
                     "-n",        "2",   "--device", "cpu", "--device-layers", "1",
                     NULL};
        expect_fail("--device-layers with --device cpu", a, 2, "cannot go with --device cpu");
        char *b[] = {"ringinfer",       "run", "-m", bin, "--prompt-ids", "1", "-n", "2",
                     "--device-layers", "1",   NULL};
        setenv("CUDA_VISIBLE_DEVICES", "", 1); /* read by the forked rank's CUDA runtime */
        expect_fail("--device-layers without a GPU", b, 2,
                    "--device-layers \"1\": ordinal 0 is unknown: no GPU is visible");
        unsetenv("CUDA_VISIBLE_DEVICES");
        char *c[] = {"ringinfer",       "run",   "-m", bin, "--prompt-ids", "1", "-n", "2",
                     "--device-layers", "x;0:1", NULL};
        expect_fail("--device-layers bad item", c, 2, "item 1 (\"x\") is not ORD:NUM");
    }
    {
        char *a[] = {"ringinfer", "run", "-m", bin, "--prompt-ids", "1", "-n", "500", NULL};
        expect_fail("too long", a, 1, "exceeds the context length 128");
    }
    {
        char *a[] = {"ringinfer", "run", "-m", bin, "-p", "hi", "-n", "2", NULL};
        expect_fail("-p without tokenizer", a, 2, "needs a tokenizer");
    }
    {
        char *a[] = {"ringinfer", "run",           "-m", bin, "--prompt-ids", "1", "-n",
                     "2",         "--temperature", "-1", NULL};
        expect_fail("bad temperature", a, 2, "--temperature");
    }
    snprintf(cmd, sizeof(cmd), "sed -i 's/LlamaForCausalLM/GPT2LMHeadModel/' %s/config.json", hf);
    if (system(cmd)) return 99;
    {
        char *a[] = {"ringinfer", "run", "-m", hf, "--prompt-ids", "1", "-n", "2", NULL};
        expect_fail("unsupported architecture", a, 1, "unsupported architecture 'GPT2LMHeadModel'");
    }
    snprintf(cmd, sizeof(cmd),
             "sed -i 's/GPT2LMHeadModel/LlamaForCausalLM/; s/\"intermediate_size\": 172/"
             "\"intermediate_size\": 180/' %s/config.json",
             hf);
    if (system(cmd)) return 99;
    {
        char *a[] = {"ringinfer", "run", "-m", hf, "--prompt-ids", "1", "-n", "2", NULL};
        expect_fail("config does not fit file", a, 1,
                    "model.layers.0.mlp.gate_proj.weight has shape [172, 64], expected [180, 64]");
    }
    snprintf(cmd, sizeof(cmd),
             "sed -i 's/\"intermediate_size\": 180/\"intermediate_size\": 172/' "
             "%s/config.json && mv %s/model.safetensors %s/x",
             hf, hf, hf);
    if (system(cmd)) return 99;
    {
        char *a[] = {"ringinfer", "run", "-m", hf, "--prompt-ids", "1", "-n", "2", NULL};
        expect_fail("no weights", a, 1, "neither model.safetensors");
    }
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd)) fprintf(stderr, "warning: could not remove %s\n", dir);
    TEST_DONE();
}
