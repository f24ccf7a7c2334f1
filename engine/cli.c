/* SPDX-License-Identifier: MIT */
/* `ringinfer run`: argument parsing, prefill in one batched pass, decode loop with rank 0
 * sampling and broadcasting each token, text/ids/logits output and timing. */
#include "devmap.h"
#include "eng_internal.h"
#include "template/jinja.h"
#include "tokenizer.h"
#include "utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "--dump-logits writes host floats and promises little-endian"
#endif

/* Prompts longer than this are prefilled in chunks of it. On one H200 a 2048-token prompt of
 * the 8B shape took 68 ms in chunks of 1024 and 69 in one of 2048; chunks of 512 were 2-3 ms
 * slower. Past 1024 rows the products gain nothing and the scores buffer doubles. */
#define PREFILL_CHUNK 1024

typedef struct {
    const char *model, *tokenizer, *text, *ids, *dump;
    int n;
    float temperature, top_p;
    unsigned long long seed;
    int print_ids;
    int threads;   /* 0: ENG_THREADS */
    int chunk;     /* --prefill-chunk: prompt tokens per forward pass */
    int precision; /* --prefill-precision: eng_prefill_precision */
    eng_device device;
    const char *device_layers; /* --device-layers (layer mapping), NULL: none */
} cli_args;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: ringinfer run -m MODEL [--tokenizer FILE] (-p TEXT | --prompt-ids 1,2,3) -n N\n"
            "                     [--temperature T] [--top-p P] [--seed S] [--print-ids]\n"
            "                     [--dump-logits FILE] [--threads N] [--device cuda|cpu]\n"
            "                     [--prefill-chunk N] [--prefill-precision fast|high]\n"
            "                     [--device-layers \"ORD:NUM;...\" | --device-layers N]\n"
            "       ringinfer template FILE VARS.json   (ringinfer template --help)\n"
            "       ringinfer serve -m MODEL ...         (ringinfer serve --help)\n"
            "       ringinfer --print-config\n"
            "  MODEL: a llama2.c .bin (--tokenizer names its tokenizer .bin) or a Hugging Face\n"
            "  folder (config.json, model.safetensors[.index.json], tokenizer.json).\n"
            "  -n N tokens are generated (no early stop); temperature 0 is greedy (default 0.8,\n"
            "  top-p 0.9; top-p 1 keeps the whole vocabulary, 0 only the most likely token, as\n"
            "  in transformers). --print-ids prints the generated ids; --dump-logits writes the\n"
            "  logits of every prompt position (float32 little-endian, [positions, vocab]).\n"
            "  --threads N: threads per rank for the matmuls (default: ENG_THREADS).\n"
            "  --prefill-chunk N: prompt tokens per forward pass (default %d; longer prompts\n"
            "  are prefilled in chunks of N; larger chunks take more memory).\n"
            "  --prefill-precision: the prompt's products on a GPU with 16-bit weights take the\n"
            "  activations rounded to 16 bits (fast, the default) or as two 16-bit parts, about\n"
            "  f32 accuracy at about twice the products' time (high). Decoding is f32 either way.\n"
            "  --device: where the model runs (default: cuda when built with CUDA and a GPU is\n"
            "  visible, else cpu; CUDA_VISIBLE_DEVICES picks the GPUs). The layout (NCCL or ring\n"
            "  tensor parallelism, one GPU, layer mapping, the CPU) follows mistral.rs: see\n"
            "  docs/SELECTION.md.\n"
            "  --device-layers: layer mapping (mistral.rs's -n/--device-layers; here the long\n"
            "  form only, -n is the token count): ORD:NUM;... gives NUM layers to visible GPU\n"
            "  ORD in order, a bare N gives GPU 0 N layers; the other layers run on the CPU.\n"
            "  Run one process, or one per rank under ringrun (RING_CONFIG per rank).\n"
            "Environment (--print-config shows the values in effect):\n",
            PREFILL_CHUNK);
    for (const eng_knob *k = eng_knobs(); k->name; k++)
        fprintf(f, "  %-12s default %-4s %s\n", k->name, k->default_value, k->help);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int parse_float(const char *opt, const char *v, float lo, float hi, float *out, FILE *e)
{
    char *end;
    errno = 0;
    float x = strtof(v, &end);
    if (errno || *end || end == v || !(x >= lo && x <= hi)) {
        fprintf(e, "ringinfer: %s: '%s' is not a number in [%g, %g]\n", opt, v, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

static int parse_args(int argc, char **argv, cli_args *a, FILE *e)
{
    memset(a, 0, sizeof(*a));
    a->n = -1;
    a->temperature = 0.8f;
    a->top_p = 0.9f;
    a->device = ENG_DEVICE_AUTO;
    if (argc < 2 || strcmp(argv[1], "run")) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            usage(stdout);
            return 1;
        }
        if (argc == 2 && !strcmp(argv[1], "--print-config")) {
            eng_knobs_print(stdout);
            eng_backends_print(stdout);
            return 1;
        }
        fprintf(
            e, "ringinfer: expected the command 'run', 'serve' or 'template' (ringinfer --help)\n");
        return -1;
    }
    enum {
        O_TOK = 256,
        O_IDS,
        O_TEMP,
        O_TOPP,
        O_SEED,
        O_PRINT,
        O_DUMP,
        O_HELP,
        O_THREADS,
        O_DEV,
        O_DEVLAYERS,
        O_CHUNK,
        O_PRECISION
    };
    static const struct option opts[] = {{"model", 1, 0, 'm'},
                                         {"prompt", 1, 0, 'p'},
                                         {"tokenizer", 1, 0, O_TOK},
                                         {"prompt-ids", 1, 0, O_IDS},
                                         {"temperature", 1, 0, O_TEMP},
                                         {"top-p", 1, 0, O_TOPP},
                                         {"seed", 1, 0, O_SEED},
                                         {"print-ids", 0, 0, O_PRINT},
                                         {"dump-logits", 1, 0, O_DUMP},
                                         {"help", 0, 0, O_HELP},
                                         {"threads", 1, 0, O_THREADS},
                                         {"device", 1, 0, O_DEV},
                                         {"device-layers", 1, 0, O_DEVLAYERS},
                                         {"prefill-chunk", 1, 0, O_CHUNK},
                                         {"prefill-precision", 1, 0, O_PRECISION},
                                         {0, 0, 0, 0}};
    optind = 1;
    opterr = 0;
    int c;
    char *end;
    while ((c = getopt_long(argc - 1, argv + 1, ":m:p:n:", opts, NULL)) != -1) {
        switch (c) {
        case 'm':
            a->model = optarg;
            break;
        case 'p':
            a->text = optarg;
            break;
        case 'n':
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || n < 0 || n > (1 << 24)) {
                fprintf(e, "ringinfer: -n: '%s' is not a token count\n", optarg);
                return -1;
            }
            a->n = (int)n;
            break;
        case O_TOK:
            a->tokenizer = optarg;
            break;
        case O_IDS:
            a->ids = optarg;
            break;
        case O_TEMP:
            if (parse_float("--temperature", optarg, 0.0f, 100.0f, &a->temperature, e)) return -1;
            break;
        case O_TOPP:
            if (parse_float("--top-p", optarg, 0.0f, 1.0f, &a->top_p, e)) return -1;
            break;
        case O_SEED:
            errno = 0;
            a->seed = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg || optarg[0] == '-') {
                fprintf(e, "ringinfer: --seed: '%s' is not a non-negative integer\n", optarg);
                return -1;
            }
            break;
        case O_PRINT:
            a->print_ids = 1;
            break;
        case O_DUMP:
            a->dump = optarg;
            break;
        case O_THREADS:
            errno = 0;
            long th = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || th < 1 || th > ENG_MAX_THREADS) {
                fprintf(e, "ringinfer: --threads: '%s' is not a thread count in 1..%d\n", optarg,
                        ENG_MAX_THREADS);
                return -1;
            }
            a->threads = (int)th;
            break;
        case O_DEV:
            if (eng_device_parse(optarg, &a->device)) {
                fprintf(e, "ringinfer: --device: '%s' is not cuda or cpu\n", optarg);
                return -1;
            }
            break;
        case O_DEVLAYERS:
            a->device_layers = optarg;
            break;
        case O_PRECISION:
            if ((a->precision = eng_prefill_precision_parse(optarg)) < 0) {
                fprintf(e, "ringinfer: --prefill-precision: '%s' is neither fast nor high\n",
                        optarg);
                return -1;
            }
            break;
        case O_CHUNK:
            errno = 0;
            long ch = strtol(optarg, &end, 10);
            if (errno || *end || end == optarg || ch < 1 || ch > (1 << 20)) {
                fprintf(e, "ringinfer: --prefill-chunk: '%s' is not a token count in 1..%d\n",
                        optarg, 1 << 20);
                return -1;
            }
            a->chunk = (int)ch;
            break;
        case O_HELP:
            usage(stdout);
            return 1;
        case ':':
            fprintf(e, "ringinfer: option %s needs a value\n", argv[optind]);
            return -1;
        default:
            fprintf(e, "ringinfer: unknown option %s\n", argv[optind]);
            return -1;
        }
    }
    if (optind + 1 != argc) {
        fprintf(e, "ringinfer: unexpected argument '%s'\n", argv[optind + 1]);
        return -1;
    }
    if (!a->model) return fprintf(e, "ringinfer: -m MODEL is required\n"), -1;
    if (!a->text == !a->ids)
        return fprintf(e, "ringinfer: give exactly one of -p TEXT and --prompt-ids\n"), -1;
    if (a->n < 0) return fprintf(e, "ringinfer: -n N is required\n"), -1;
    if (a->device_layers && a->device == ENG_DEVICE_CPU)
        return fprintf(e, "ringinfer: --device-layers puts layers on GPUs: it cannot go with "
                          "--device cpu\n"),
               -1;
    return 0;
}

/* "1,2,3" -> ids; returns the count or -1. */
static int parse_ids(const char *s, int *ids, int max, int vocab, FILE *e)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (errno || end == p || v < 0 || v >= vocab || (*end && *end != ',')) {
            fprintf(e, "ringinfer: --prompt-ids: bad id at '%s' (ids are 0..%d, comma separated)\n",
                    p, vocab - 1);
            return -1;
        }
        if (n == max) {
            fprintf(e, "ringinfer: --prompt-ids: more than %d ids\n", max);
            return -1;
        }
        ids[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (n == 0) fprintf(e, "ringinfer: --prompt-ids: no ids\n");
    return n ? n : -1;
}

typedef struct {
    const eng_coll *comm;
    double seconds;
    long calls;
} timed_comm;

static eng_status timed_allreduce(void *ctx, void *buf, size_t count, eng_elem et, eng_mem mem,
                                  void *stream)
{
    timed_comm *t = ctx;
    double t0 = now_s();
    eng_status st = t->comm->allreduce(t->comm->ctx, buf, count, et, mem, stream);
    t->seconds += now_s() - t0;
    t->calls++;
    return st;
}

static eng_status timed_broadcast(void *ctx, void *buf, size_t count, eng_elem et, int root)
{
    timed_comm *t = ctx;
    return t->comm->broadcast(t->comm->ctx, buf, count, et, root);
}

/* Generated text on its way to out: token pieces are raw bytes (a piece may end inside a UTF-8
 * sequence or be invalid alone), so they pass through the sanitiser; the first write error is
 * kept so that lost text is an error, not exit 0. */
typedef struct {
    FILE *f;
    eng_utf8_stream u;
    int err; /* errno of the first failed write, 0 while none */
} text_out;

static void text_write(text_out *t, const char *buf, size_t n)
{
    if (t->err || n == 0) return;
    errno = 0;
    if (fwrite(buf, 1, n, t->f) != n) t->err = errno ? errno : EIO;
}

static void text_put(text_out *t, const char *piece)
{
    char buf[3 * (256 + 4)];
    for (size_t n = strlen(piece); n > 0;) {
        size_t k = n < 256 ? n : 256;
        text_write(t, buf, eng_utf8_push(&t->u, piece, k, buf));
        piece += k;
        n -= k;
    }
}

/* Flushes the sanitiser (a trailing incomplete sequence becomes U+FFFD) and then the stream;
 * returns 0 or the errno of the first failed write. */
static int text_sync(text_out *t, int end)
{
    char buf[16];
    if (end) text_write(t, buf, eng_utf8_flush(&t->u, buf));
    errno = 0;
    if (!t->err && fflush(t->f) != 0) t->err = errno ? errno : EIO;
    if (!t->err && ferror(t->f)) t->err = EIO;
    return t->err;
}

/* --dump-logits FILE. O_NONBLOCK so that a FIFO nobody reads fails at once (ENXIO) instead of
 * blocking open() forever; a FIFO with a reader, or a device like /dev/null, is fine. */
static eng_status open_dump(const char *path, FILE **out, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NONBLOCK, 0644);
    if (fd < 0)
        return eng_fail(ENG_ERR_IO, err, errlen, "--dump-logits %s: %s", path,
                        errno == ENXIO ? "a FIFO that nobody reads" : strerror(errno));
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0 || !(*out = fdopen(fd, "wb"))) {
        close(fd);
        return eng_fail(ENG_ERR_IO, err, errlen, "--dump-logits %s: %s", path, strerror(errno));
    }
    return ENG_OK;
}

static void log_line(void *ctx, const char *line)
{
    fprintf((FILE *)ctx, "ringinfer: %s\n", line);
}

static eng_status load_tokenizer(const cli_args *a, const eng_config *c, eng_tokenizer **tok,
                                 char *err, size_t errlen)
{
    eng_status st =
        eng_tokenizer_load_for_model(a->model, a->tokenizer, c->vocab_size, tok, err, errlen);
    if (st != ENG_OK || *tok) return st;
    if (a->text)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "-p TEXT needs a tokenizer: --tokenizer FILE for a llama2.c model, or "
                        "tokenizer.json in the model folder");
    return ENG_OK; /* ids in, ids out */
}

int eng_cli_main(int argc, char **argv, const eng_coll *comm, FILE *out, FILE *errf)
{
    if (argc >= 2 && !strcmp(argv[1], "template")) return eng_tmpl_cli(argc, argv, out, errf);
    cli_args a;
    int r = parse_args(argc, argv, &a, errf);
    if (r) return r > 0 ? 0 : 2;
    eng_coll single = {.rank = 0, .size = 1};
    if (!comm) comm = &single;
    int root = comm->rank == 0;
    char err[1024];
    int rc = 1, *prompt = NULL, n_prompt = 0;
    eng_model *m = NULL;
    eng_state *s = NULL;
    eng_sampler *smp = NULL;
    eng_tokenizer *tok = NULL;
    FILE *dump = NULL;
    eng_status st;

    eng_load_params lp;
    eng_load_params_init(&lp);
    lp.tp_rank = comm->rank;
    lp.tp_size = comm->size;
    lp.log = root ? log_line : NULL;
    lp.log_ctx = errf;
    char layout[512];
    if ((st = eng_place_setup(a.model, a.device, a.device_layers, comm, &lp, layout, sizeof(layout),
                              err, sizeof(err))) != ENG_OK)
        goto fail;
    double t_load = now_s();
    if ((st = eng_model_open(a.model, &lp, &m, err, sizeof(err))) != ENG_OK) goto fail;
    t_load = now_s() - t_load;
    const eng_config *c = eng_model_config(m);
    if ((st = load_tokenizer(&a, c, &tok, err, sizeof(err))) != ENG_OK) goto fail;
    if (tok && eng_tokenizer_vocab_size(tok) > c->vocab_size) {
        st = eng_fail(ENG_ERR_FORMAT, err, sizeof(err),
                      "tokenizer has %d tokens but the model's vocabulary is %d",
                      eng_tokenizer_vocab_size(tok), c->vocab_size);
        goto fail;
    }
    int max_prompt = c->seq_len;
    prompt = malloc((size_t)max_prompt * sizeof(int));
    if (!prompt) {
        st = eng_fail(ENG_ERR_NOMEM, err, sizeof(err), "out of memory");
        goto fail;
    }
    if (a.ids) {
        n_prompt = parse_ids(a.ids, prompt, max_prompt, c->vocab_size, errf);
        if (n_prompt < 0) {
            rc = 2;
            goto cleanup;
        }
    } else {
        st = eng_tokenizer_encode(tok, a.text, 1, prompt, max_prompt, &n_prompt);
        if (st != ENG_OK) {
            eng_fail(st, err, sizeof(err), "-p: the prompt needs %d tokens, context is %d",
                     n_prompt, max_prompt);
            goto fail;
        }
        if (n_prompt == 0) {
            st = eng_fail(ENG_ERR_INVALID_ARG, err, sizeof(err), "-p: empty prompt");
            goto fail;
        }
    }
    if (n_prompt + a.n > c->seq_len) {
        st = eng_fail(ENG_ERR_RANGE, err, sizeof(err),
                      "prompt (%d tokens) + -n %d exceeds the context length %d", n_prompt, a.n,
                      c->seq_len);
        goto fail;
    }
    if (root && a.dump && (st = open_dump(a.dump, &dump, err, sizeof(err))) != ENG_OK) goto fail;
    eng_state_params sp;
    eng_state_params_init(&sp);
    int chunk = a.chunk ? a.chunk : PREFILL_CHUNK;
    sp.max_batch = n_prompt < chunk ? n_prompt : chunk;
    sp.ctx_len = n_prompt + a.n; /* the KV cache holds exactly what this run needs */
    sp.all_logits = a.dump != NULL;
    sp.prefill_precision = a.precision;
    long knob;
    if (a.threads) {
        sp.n_threads = a.threads;
    } else {
        if ((st = eng_knob_int(ENG_KNOB_THREADS, 1, ENG_MAX_THREADS, &knob, err, sizeof(err))) !=
            ENG_OK)
            goto fail;
        sp.n_threads = (int)knob;
    }
    if ((st = eng_knob_int(ENG_KNOB_SPIN_US, 0, 100000, &knob, err, sizeof(err))) != ENG_OK)
        goto fail;
    sp.spin_us = (int)knob;
    if ((st = eng_knob_int(ENG_KNOB_DECODE_AHEAD, 0, 1, &knob, err, sizeof(err))) != ENG_OK)
        goto fail;
    int ahead_knob = (int)knob;
    if ((st = eng_state_create(m, &sp, &s, err, sizeof(err))) != ENG_OK) goto fail;
    if ((st = eng_sampler_create(c->vocab_size, a.temperature, a.top_p, a.seed, &smp)) != ENG_OK) {
        eng_fail(st, err, sizeof(err), "sampler: %s", eng_status_str(st));
        goto fail;
    }
    if (root) {
        size_t owned, mapped;
        char backend[256];
        eng_model_memory(m, &owned, &mapped);
        eng_model_describe(m, backend, sizeof(backend));
        fprintf(errf, "ringinfer: %s\n", layout);
        fprintf(errf,
                "ringinfer: %s: dim %d, %d layers, %d/%d heads, FFN %d, vocab %d; rank 0 of %d "
                "holds %.1f MiB converted/uploaded + %.1f MiB mapped; %s, %d thread%s; "
                "prefill precision %s; loaded in %.2f s\n",
                a.model, c->dim, c->n_layers, c->n_heads, c->n_kv_heads, c->hidden_dim,
                c->vocab_size, comm->size, (double)owned / 1048576.0, (double)mapped / 1048576.0,
                backend, sp.n_threads, sp.n_threads > 1 ? "s per rank" : "",
                eng_prefill_precision_name(sp.prefill_precision), t_load);
    }

    timed_comm tc = {.comm = comm};
    eng_coll red = *comm;
    red.allreduce = timed_allreduce;
    red.broadcast = timed_broadcast;
    red.ctx = &tc;
    const eng_coll *rp = comm->size > 1 ? &red : NULL;
    const float *logits = NULL;
    /* Rank 0 samples on the backend (on a GPU only the id comes back; the CPU gives the same
     * ids as sampling here) and eng_forward_sample hands the id to every rank: `pending` is
     * the next token, picked with the forward. --dump-logits needs the logits themselves. */
    int fused = !dump;
    int32_t pending = 0;
    /* Prefill: one batched pass (chunks of PREFILL_CHUNK for longer prompts). */
    double t0 = now_s();
    for (int off = 0; off < n_prompt; off += sp.max_batch) {
        int cnt = n_prompt - off < sp.max_batch ? n_prompt - off : sp.max_batch;
        if (fused && off + cnt == n_prompt)
            st = eng_forward_sample(m, s, prompt + off, cnt, off, rp, smp, &pending);
        else
            st = eng_forward(m, s, prompt + off, cnt, off, root, rp, &logits);
        if (st != ENG_OK) {
            eng_fail(st, err, sizeof(err), "prefill: %s%s%s", eng_status_str(st),
                     *eng_state_error(s) ? ": " : "", eng_state_error(s));
            goto fail;
        }
        if (dump && fwrite(logits, sizeof(float), (size_t)cnt * c->vocab_size, dump) !=
                        (size_t)cnt * c->vocab_size) {
            st = eng_fail(ENG_ERR_IO, err, sizeof(err), "--dump-logits %s: write failed", a.dump);
            goto fail;
        }
    }
    double t_prefill = now_s() - t0;
    if (dump) {
        int bad = fclose(dump) != 0;
        dump = NULL;
        if (bad) {
            st = eng_fail(ENG_ERR_IO, err, sizeof(err), "--dump-logits %s: write failed", a.dump);
            goto fail;
        }
    }
    text_out to = {.f = out};
    eng_utf8_init(&to.u);
    if (root && tok) {
        for (int i = 0; i < n_prompt; i++) /* BOS is a marker, not text */
            if (prompt[i] != eng_tokenizer_bos(tok))
                text_put(&to, eng_tokenizer_decode(tok, i ? prompt[i - 1] : -1, prompt[i]));
        if (text_sync(&to, 0)) {
            st = eng_fail(ENG_ERR_IO, err, sizeof(err), "writing the text: %s", strerror(to.err));
            goto fail;
        }
    }
    /* The last row of the prefill logits (all_logits keeps every row). */
    const float *last =
        logits
            ? logits + (sp.all_logits ? (size_t)((n_prompt - 1) % sp.max_batch) * c->vocab_size : 0)
            : NULL;
    int *gen = malloc((size_t)(a.n ? a.n : 1) * sizeof(int));
    if (!gen) {
        st = eng_fail(ENG_ERR_NOMEM, err, sizeof(err), "out of memory");
        goto fail;
    }
    int prev = prompt[n_prompt - 1], n_decode = 0;
    /* One rank on a GPU: each decode step starts before the host reads the token of the one
     * before (eng_forward_ahead), so the GPU runs on while this loop handles that token. */
    int ahead = ahead_knob && fused && !rp;
    t0 = now_s();
    for (int i = 0; i < a.n; i++) {
        int32_t next = fused ? pending : root ? eng_sampler_sample(smp, last) : 0;
        if (ahead) {
            st = i + 1 < a.n
                     ? eng_forward_ahead(m, s, i ? ENG_AHEAD_CHAIN : pending, n_prompt + i, smp)
                     : ENG_OK;
            if (i == 0 && st == ENG_ERR_UNSUPPORTED) { /* the CPU, profiling: step by step */
                ahead = 0;
                st = ENG_OK;
            }
            if (st == ENG_OK && ahead && i) st = eng_forward_collect(m, s, &next);
            if (st != ENG_OK) {
                eng_fail(st, err, sizeof(err), "decode step %d: %s%s%s", i, eng_status_str(st),
                         *eng_state_error(s) ? ": " : "", eng_state_error(s));
                free(gen);
                goto fail;
            }
        }
        if (next < 0) {
            /* Sampled on rank 0: the fused path gave every rank the -1; otherwise rank 0
             * alone knows, and its failure aborts the communicator for the others. */
            st = eng_fail(ENG_ERR_RANGE, err, sizeof(err),
                          "token %d of the generation (position %d): the logits hold NaN or "
                          "infinity; the model's weights or activations overflowed",
                          i, n_prompt + i);
            free(gen);
            goto fail;
        }
        if (!fused && comm->size > 1 &&
            (st = comm->broadcast(comm->ctx, &next, 1, ENG_ELEM_I32, 0)) != ENG_OK) {
            eng_fail(st, err, sizeof(err), "broadcast of token %d failed", i);
            free(gen);
            goto fail;
        }
        gen[i] = next;
        if (root && tok) {
            text_put(&to, eng_tokenizer_decode(tok, prev, next));
            if (text_sync(&to, 0)) {
                st = eng_fail(ENG_ERR_IO, err, sizeof(err), "writing the text: %s",
                              strerror(to.err));
                free(gen);
                goto fail;
            }
        }
        prev = next;
        if (i + 1 == a.n) break;
        if (ahead)
            st = ENG_OK; /* started above */
        else if (fused)
            st = eng_forward_sample(m, s, &gen[i], 1, n_prompt + i, rp, smp, &pending);
        else
            st = eng_forward(m, s, &gen[i], 1, n_prompt + i, root, rp, &logits);
        if (st != ENG_OK) {
            eng_fail(st, err, sizeof(err), "decode step %d: %s%s%s", i, eng_status_str(st),
                     *eng_state_error(s) ? ": " : "", eng_state_error(s));
            free(gen);
            goto fail;
        }
        last = logits;
        n_decode++;
    }
    double t_decode = now_s() - t0;
    if (root) {
        if (tok) {
            text_sync(&to, 1);
            text_write(&to, "\n", 1);
        }
        if (a.print_ids) {
            for (int i = 0; i < a.n && !to.err; i++) {
                char id[16];
                text_write(&to, id, (size_t)snprintf(id, sizeof(id), "%s%d", i ? " " : "", gen[i]));
            }
            text_write(&to, "\n", 1);
        }
        if (text_sync(&to, 0)) {
            st = eng_fail(ENG_ERR_IO, err, sizeof(err), "writing the output: %s", strerror(to.err));
            free(gen);
            goto fail;
        }
        if (!tok && !a.print_ids)
            fprintf(errf, "ringinfer: no text: this model has no tokenizer (a llama2.c model "
                          "needs --tokenizer FILE); --print-ids prints the generated ids\n");
        fprintf(errf,
                "ringinfer: prefill %d tokens in %.3f s (%.1f tok/s); decode %d steps in %.3f s "
                "(%.1f tok/s); all-reduce %.3f s in %ld host calls (%.1f%% of prefill+decode), "
                "tp %d; decode graphs: %s\n",
                n_prompt, t_prefill, n_prompt / (t_prefill > 0 ? t_prefill : 1e-9), n_decode,
                t_decode, n_decode / (t_decode > 0 ? t_decode : 1e-9), tc.seconds, tc.calls,
                100.0 * tc.seconds / (t_prefill + t_decode > 0 ? t_prefill + t_decode : 1e-9),
                comm->size,
                s->graph != 1 ? "none"
                : ahead       ? "one per step, each started before the last token was read"
                              : "one per step");
    }
    free(gen);
    rc = 0;
    goto cleanup;
fail:
    fprintf(errf, "ringinfer: rank %d: %s\n", comm->rank, err);
    rc = st == ENG_ERR_INVALID_ARG ? 2 : 1;
cleanup:
    if (dump) fclose(dump);
    eng_sampler_free(smp);
    eng_tokenizer_free(tok);
    eng_state_free(s);
    eng_model_close(m);
    free(prompt);
    return rc;
}
