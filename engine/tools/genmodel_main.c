/* SPDX-License-Identifier: MIT */
/* eng-genmodel: writes a random model in llama2.c or Hugging Face format. */
#include "genmodel.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: eng-genmodel --out PATH [--format bin|hf] [--arch llama|mistral|qwen2|qwen3]\n"
            "         [--dtype f32|f16|bf16] [--dim N] [--hidden N] [--layers N] [--heads N]\n"
            "         [--kv-heads N] [--head-dim N] [--vocab N] [--seq-len N] [--tied]\n"
            "         [--sliding-window N] [--shards N] [--std X] [--seed N]\n"
            "   or: eng-genmodel --out PATH --shape stories15M|stories110M [--format ...]\n");
}

static int num(const char *opt, const char *v, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < 0 || x > (1L << 30)) {
        fprintf(stderr, "eng-genmodel: %s: '%s' is not a count\n", opt, v);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv)
{
    gen_spec s;
    gen_spec_init(&s);
    const char *out = NULL;
    enum {
        O_FORMAT = 256,
        O_ARCH,
        O_DTYPE,
        O_DIM,
        O_HID,
        O_LAY,
        O_HEADS,
        O_KV,
        O_HD,
        O_VOCAB,
        O_SEQ,
        O_TIED,
        O_SW,
        O_SHARDS,
        O_STD,
        O_SEED,
        O_SHAPE,
        O_OUT,
        O_HELP
    };
    static const struct option opts[] = {{"format", 1, 0, O_FORMAT},     {"arch", 1, 0, O_ARCH},
                                         {"dtype", 1, 0, O_DTYPE},       {"dim", 1, 0, O_DIM},
                                         {"hidden", 1, 0, O_HID},        {"layers", 1, 0, O_LAY},
                                         {"heads", 1, 0, O_HEADS},       {"kv-heads", 1, 0, O_KV},
                                         {"head-dim", 1, 0, O_HD},       {"vocab", 1, 0, O_VOCAB},
                                         {"seq-len", 1, 0, O_SEQ},       {"tied", 0, 0, O_TIED},
                                         {"sliding-window", 1, 0, O_SW}, {"shards", 1, 0, O_SHARDS},
                                         {"std", 1, 0, O_STD},           {"seed", 1, 0, O_SEED},
                                         {"shape", 1, 0, O_SHAPE},       {"out", 1, 0, O_OUT},
                                         {"help", 0, 0, O_HELP},         {0, 0, 0, 0}};
    int c, kv_set = 0, seed;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case O_FORMAT:
            if (!strcmp(optarg, "bin"))
                s.format = GEN_BIN;
            else if (!strcmp(optarg, "hf"))
                s.format = GEN_HF;
            else
                bad = fprintf(stderr, "eng-genmodel: --format: '%s' (bin or hf)\n", optarg);
            break;
        case O_ARCH:
            if (!strcmp(optarg, "llama"))
                s.arch = GEN_LLAMA;
            else if (!strcmp(optarg, "mistral"))
                s.arch = GEN_MISTRAL;
            else if (!strcmp(optarg, "qwen2"))
                s.arch = GEN_QWEN2;
            else if (!strcmp(optarg, "qwen3"))
                s.arch = GEN_QWEN3;
            else
                bad = fprintf(stderr, "eng-genmodel: --arch: unknown '%s'\n", optarg);
            break;
        case O_DTYPE:
            if (!strcmp(optarg, "f32"))
                s.dtype = GEN_F32;
            else if (!strcmp(optarg, "f16"))
                s.dtype = GEN_F16;
            else if (!strcmp(optarg, "bf16"))
                s.dtype = GEN_BF16;
            else
                bad = fprintf(stderr, "eng-genmodel: --dtype: unknown '%s'\n", optarg);
            break;
        case O_DIM:
            bad = num("--dim", optarg, &s.dim);
            break;
        case O_HID:
            bad = num("--hidden", optarg, &s.hidden_dim);
            break;
        case O_LAY:
            bad = num("--layers", optarg, &s.n_layers);
            break;
        case O_HEADS:
            bad = num("--heads", optarg, &s.n_heads);
            break;
        case O_KV:
            bad = num("--kv-heads", optarg, &s.n_kv_heads);
            kv_set = 1;
            break;
        case O_HD:
            bad = num("--head-dim", optarg, &s.head_dim);
            break;
        case O_VOCAB:
            bad = num("--vocab", optarg, &s.vocab_size);
            break;
        case O_SEQ:
            bad = num("--seq-len", optarg, &s.seq_len);
            break;
        case O_TIED:
            s.tied = 1;
            break;
        case O_SW:
            bad = num("--sliding-window", optarg, &s.sliding_window);
            break;
        case O_SHARDS:
            bad = num("--shards", optarg, &s.shards);
            break;
        case O_STD:
            s.std = strtof(optarg, NULL);
            break;
        case O_SEED:
            bad = num("--seed", optarg, &seed);
            s.seed = (uint64_t)seed;
            break;
        case O_SHAPE:
            /* llama2.c's stories15M and stories110M shapes (MHA, shared classifier). */
            if (!strcmp(optarg, "stories15M")) {
                s.dim = 288;
                s.hidden_dim = 768;
                s.n_layers = 6;
                s.n_heads = 6;
            } else if (!strcmp(optarg, "stories110M")) {
                s.dim = 768;
                s.hidden_dim = 2048;
                s.n_layers = 12;
                s.n_heads = 12;
            } else {
                bad = fprintf(stderr, "eng-genmodel: --shape: unknown '%s'\n", optarg);
                break;
            }
            s.n_kv_heads = s.n_heads;
            kv_set = 1;
            s.vocab_size = 32000;
            s.seq_len = 256;
            s.tied = 1;
            s.std = 0.02f;
            break;
        case O_OUT:
            out = optarg;
            break;
        case O_HELP:
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) return 2;
    }
    if (!out || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (!kv_set) s.n_kv_heads = s.n_heads < s.n_kv_heads ? s.n_heads : s.n_kv_heads;
    char err[512];
    if (gen_write(&s, out, err, sizeof(err)) != 0) {
        fprintf(stderr, "eng-genmodel: %s\n", err);
        return 1;
    }
    return 0;
}
