/* SPDX-License-Identifier: MIT */
/* Writes random models. Weights ~ N(0, std); norm weights ~ 1 + N(0, std). */
#include "genmodel.h"

#include "common/half.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void gen_spec_init(gen_spec *s)
{
    memset(s, 0, sizeof(*s));
    s->format = GEN_BIN;
    s->dim = 64;
    s->hidden_dim = 172;
    s->n_layers = 2;
    s->n_heads = 8;
    s->n_kv_heads = 4;
    s->vocab_size = 256;
    s->seq_len = 128;
    s->std = 0.08f;
    s->seed = 1;
}

/* The values are N(0, 1) by Box-Muller over splitmix64 in sequence: each pair of outputs
 * gives m cos, then m sin (kept as the spare for the next value). */
typedef struct {
    uint64_t s; /* splitmix64 state */
    int have;   /* the spare is the next value */
    float spare;
} rng;

/* ------------------------------------------------------------------ tensor list */
typedef struct {
    char name[96];
    int64_t rows, cols; /* rows = 0: 1-D of cols */
    int norm;
} tdesc;

static int list_tensors(const gen_spec *s, tdesc *t, int max)
{
    int n = 0, D = s->dim, hd = s->head_dim ? s->head_dim : s->dim / s->n_heads;
    int64_t Q = (int64_t)s->n_heads * hd, KV = (int64_t)s->n_kv_heads * hd;
#define T(r, c, nm, ...)                                                                           \
    do {                                                                                           \
        if (n < max) {                                                                             \
            snprintf(t[n].name, sizeof(t[n].name), __VA_ARGS__);                                   \
            t[n].rows = r;                                                                         \
            t[n].cols = c;                                                                         \
            t[n].norm = nm;                                                                        \
        }                                                                                          \
        n++;                                                                                       \
    } while (0)
    T(s->vocab_size, D, 0, "model.embed_tokens.weight");
    for (int l = 0; l < s->n_layers; l++) {
        T(0, D, 1, "model.layers.%d.input_layernorm.weight", l);
        T(Q, D, 0, "model.layers.%d.self_attn.q_proj.weight", l);
        T(KV, D, 0, "model.layers.%d.self_attn.k_proj.weight", l);
        T(KV, D, 0, "model.layers.%d.self_attn.v_proj.weight", l);
        if (s->arch == GEN_QWEN2) {
            T(0, Q, 0, "model.layers.%d.self_attn.q_proj.bias", l);
            T(0, KV, 0, "model.layers.%d.self_attn.k_proj.bias", l);
            T(0, KV, 0, "model.layers.%d.self_attn.v_proj.bias", l);
        }
        if (s->arch == GEN_QWEN3) {
            T(0, hd, 1, "model.layers.%d.self_attn.q_norm.weight", l);
            T(0, hd, 1, "model.layers.%d.self_attn.k_norm.weight", l);
        }
        T(D, Q, 0, "model.layers.%d.self_attn.o_proj.weight", l);
        T(0, D, 1, "model.layers.%d.post_attention_layernorm.weight", l);
        T(s->hidden_dim, D, 0, "model.layers.%d.mlp.gate_proj.weight", l);
        T(s->hidden_dim, D, 0, "model.layers.%d.mlp.up_proj.weight", l);
        T(D, s->hidden_dim, 0, "model.layers.%d.mlp.down_proj.weight", l);
    }
    T(0, D, 1, "model.norm.weight");
    if (!s->tied) T(s->vocab_size, D, 0, "lm_head.weight");
#undef T
    return n;
}

static int64_t numel(const tdesc *t)
{
    return (t->rows ? t->rows : 1) * t->cols;
}

/* splitmix64 is a counter: output k after state s is mix(s + k * golden). So value q after
 * state s (with no spare) is pair q / 2's cosine or sine, and threads can fill any range of a
 * tensor independently, value for value what the sequence gives. */
#define GOLDEN 0x9E3779B97F4A7C15ULL
#define GEN_BLOCK ((int64_t)1 << 24) /* values written per parallel round */
#define GEN_THREADS 32

static uint64_t mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Pair p after state s: Box-Muller's radius m and angle. */
static void pair_at(uint64_t s, int64_t p, double *m, double *ang)
{
    uint64_t z1 = mix(s + (uint64_t)(2 * p + 1) * GOLDEN),
             z2 = mix(s + (uint64_t)(2 * p + 2) * GOLDEN);
    double u = ((z1 >> 11) + 1.0) / 9007199254740993.0, v = (z2 >> 11) / 9007199254740992.0;
    *m = sqrt(-2.0 * log(u));
    *ang = 2 * M_PI * v;
}

typedef struct {
    uint64_t s; /* stream state at the tensor's first pair */
    int spare;  /* 1: element 0 is the spare value sv */
    float sv, base, std;
    gen_dtype dt;
    int64_t e0, e1, block; /* this thread's elements [e0, e1); the round's first element */
    float *f32;            /* the round's values (f32) */
    uint16_t *h;           /* or their 16-bit form */
} fill_job;

static void *fill(void *arg)
{
    fill_job *j = arg;
    for (int64_t e = j->e0; e < j->e1;) {
        float g[2];
        int k = 0, cnt;
        if (e == 0 && j->spare) {
            g[0] = j->sv;
            cnt = 1;
        } else {
            int64_t q = e - j->spare;
            double m, ang;
            pair_at(j->s, q >> 1, &m, &ang);
            if (q & 1) {
                g[0] = (float)(m * sin(ang));
                cnt = 1;
            } else {
                g[0] = (float)(m * cos(ang));
                g[1] = (float)(m * sin(ang));
                cnt = e + 1 < j->e1 ? 2 : 1;
            }
        }
        for (; k < cnt; k++, e++) {
            float x = j->base + j->std * g[k];
            size_t i = (size_t)(e - j->block);
            if (j->dt == GEN_F32)
                j->f32[i] = x;
            else
                j->h[i] = j->dt == GEN_F16 ? rc_f32_to_f16(x) : rc_f32_to_bf16(x);
        }
    }
    return NULL;
}

/* Streams numel random values of one tensor to f in the given element type: the values of
 * sequence, computed by up to GEN_THREADS threads a round. */
static int write_random(FILE *f, rng *r, const tdesc *t, gen_dtype dt, float std)
{
    int64_t n = numel(t);
    size_t es = dt == GEN_F32 ? 4 : 2;
    int64_t cap = n < GEN_BLOCK ? n : GEN_BLOCK;
    void *buf = malloc((size_t)(cap > 0 ? cap : 1) * es);
    if (!buf) return -1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int nt = ncpu < 1 ? 1 : ncpu > GEN_THREADS ? GEN_THREADS : (int)ncpu;
    fill_job job = {.s = r->s,
                    .spare = r->have,
                    .sv = r->spare,
                    .base = t->norm ? 1.0f : 0.0f,
                    .std = std,
                    .dt = dt,
                    .f32 = buf,
                    .h = buf};
    int rc = 0;
    for (int64_t b = 0; b < n && rc == 0; b += cap) {
        int64_t len = n - b < cap ? n - b : cap;
        int use = len < 65536 ? 1 : nt; /* small tensors: not worth a thread */
        fill_job jobs[GEN_THREADS];
        pthread_t th[GEN_THREADS];
        int started[GEN_THREADS] = {0};
        for (int i = 0; i < use; i++) {
            jobs[i] = job;
            jobs[i].block = b;
            /* even boundaries keep each pair in one thread */
            jobs[i].e0 = b + (len * i / use & ~(int64_t)1);
            jobs[i].e1 = i + 1 == use ? b + len : b + (len * (i + 1) / use & ~(int64_t)1);
            if (i > 0) started[i] = pthread_create(&th[i], NULL, fill, &jobs[i]) == 0;
            if (i > 0 && !started[i]) fill(&jobs[i]);
        }
        fill(&jobs[0]);
        for (int i = 1; i < use; i++)
            if (started[i]) pthread_join(th[i], NULL);
        if (fwrite(buf, es, (size_t)len, f) != (size_t)len) rc = -1;
    }
    free(buf);
    /* the stream after this tensor, as drawing its values in sequence leaves it */
    int64_t q = n - r->have;
    if (n > 0 && q >= 0) {
        int64_t pairs = (q + 1) / 2;
        if (q & 1) {
            double m, ang;
            pair_at(r->s, pairs - 1, &m, &ang);
            r->spare = (float)(m * sin(ang));
        }
        r->have = (int)(q & 1);
        r->s += (uint64_t)(2 * pairs) * GOLDEN;
    }
    return rc;
}

/* ------------------------------------------------------------------ llama2.c .bin */
static int write_bin(const gen_spec *s, const char *out, char *err, size_t errlen)
{
    if (s->head_dim && s->head_dim * s->n_heads != s->dim) {
        snprintf(err, errlen, "llama2.c format needs head_dim == dim / heads");
        return -1;
    }
    FILE *f = fopen(out, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", out, strerror(errno));
        return -1;
    }
    rng r = {.s = s->seed};
    int D = s->dim, hd = s->dim / s->n_heads, L = s->n_layers;
    int32_t hdr[7] = {D,          s->hidden_dim, L,
                      s->n_heads, s->n_kv_heads, s->tied ? s->vocab_size : -s->vocab_size,
                      s->seq_len};
    int bad = fwrite(hdr, sizeof(hdr), 1, f) != 1;
    tdesc t = {.rows = s->vocab_size, .cols = D};
    bad |= write_random(f, &r, &t, GEN_F32, s->std);
    /* Stacked [L, ...] tensors in the file order. */
    const struct {
        int64_t rows, cols;
        int norm;
    } kinds[] = {{0, D, 1},
                 {(int64_t)s->n_heads * hd, D, 0},
                 {(int64_t)s->n_kv_heads * hd, D, 0},
                 {(int64_t)s->n_kv_heads * hd, D, 0},
                 {D, (int64_t)s->n_heads * hd, 0},
                 {0, D, 1},
                 {s->hidden_dim, D, 0},
                 {D, s->hidden_dim, 0},
                 {s->hidden_dim, D, 0}};
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++)
        for (int l = 0; l < L; l++) {
            t.rows = kinds[k].rows;
            t.cols = kinds[k].cols;
            t.norm = kinds[k].norm;
            bad |= write_random(f, &r, &t, GEN_F32, s->std);
        }
    t = (tdesc){.rows = 0, .cols = D, .norm = 1};
    bad |= write_random(f, &r, &t, GEN_F32, s->std);
    t = (tdesc){.rows = s->seq_len, .cols = hd}; /* legacy RoPE tables: any values */
    bad |= write_random(f, &r, &t, GEN_F32, s->std);
    if (!s->tied) {
        t = (tdesc){.rows = s->vocab_size, .cols = D};
        bad |= write_random(f, &r, &t, GEN_F32, s->std);
    }
    bad |= fclose(f) != 0;
    if (bad) snprintf(err, errlen, "%s: write failed", out);
    return bad ? -1 : 0;
}

/* ------------------------------------------------------------------ Hugging Face */
static const char *arch_name(gen_arch a)
{
    static const char *const n[] = {"LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM",
                                    "Qwen3ForCausalLM"};
    return n[a];
}
static const char *arch_type(gen_arch a)
{
    static const char *const n[] = {"llama", "mistral", "qwen2", "qwen3"};
    return n[a];
}

static int write_config(const gen_spec *s, const char *dir, char *err, size_t errlen)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    static const char *const dts[] = {"float32", "float16", "bfloat16"};
    int hd = s->head_dim ? s->head_dim : s->dim / s->n_heads;
    fprintf(f,
            "{\n  \"architectures\": [\"%s\"],\n  \"model_type\": \"%s\",\n"
            "  \"hidden_size\": %d,\n  \"intermediate_size\": %d,\n"
            "  \"num_hidden_layers\": %d,\n  \"num_attention_heads\": %d,\n"
            "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"vocab_size\": %d,\n"
            "  \"max_position_embeddings\": %d,\n  \"rms_norm_eps\": 1e-06,\n"
            "  \"hidden_act\": \"silu\",\n  \"tie_word_embeddings\": %s,\n"
            "  \"dtype\": \"%s\",\n",
            arch_name(s->arch), arch_type(s->arch), s->dim, s->hidden_dim, s->n_layers, s->n_heads,
            s->n_kv_heads, hd, s->vocab_size, s->seq_len, s->tied ? "true" : "false",
            dts[s->dtype]);
    /* Both spellings of the RoPE base occur in the wild; write the older one for Qwen. */
    if (s->arch == GEN_QWEN2 || s->arch == GEN_QWEN3)
        fprintf(f, "  \"rope_theta\": 10000.0,\n  \"use_sliding_window\": false,\n");
    else
        fprintf(f,
                "  \"rope_parameters\": {\"rope_theta\": 10000.0, \"rope_type\": \"default\"},\n");
    if (s->arch == GEN_MISTRAL && s->sliding_window)
        fprintf(f, "  \"sliding_window\": %d,\n", s->sliding_window);
    fprintf(f, "  \"bos_token_id\": 1,\n  \"eos_token_id\": 2\n}\n");
    if (fclose(f) != 0) {
        snprintf(err, errlen, "%s: write failed", path);
        return -1;
    }
    return 0;
}

static int write_safetensors(const gen_spec *s, const char *path, const tdesc *t, int n, rng *r,
                             char *err, size_t errlen)
{
    static const char *const dts[] = {"F32", "F16", "BF16"};
    size_t es = s->dtype == GEN_F32 ? 4 : 2, cap = 256 + (size_t)n * 200;
    char *hdr = malloc(cap);
    if (!hdr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t len = (size_t)snprintf(hdr, cap, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t bytes = (uint64_t)numel(&t[i]) * es;
        if (t[i].rows)
            len += (size_t)snprintf(hdr + len, cap - len,
                                    ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld,%lld],"
                                    "\"data_offsets\":[%llu,%llu]}",
                                    t[i].name, dts[s->dtype], (long long)t[i].rows,
                                    (long long)t[i].cols, (unsigned long long)off,
                                    (unsigned long long)(off + bytes));
        else
            len += (size_t)snprintf(hdr + len, cap - len,
                                    ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld],"
                                    "\"data_offsets\":[%llu,%llu]}",
                                    t[i].name, dts[s->dtype], (long long)t[i].cols,
                                    (unsigned long long)off, (unsigned long long)(off + bytes));
        off += bytes;
    }
    len += (size_t)snprintf(hdr + len, cap - len, "}");
    while (len % 8)
        hdr[len++] = ' '; /* keep the data 8-byte aligned, as safetensors does */
    FILE *f = fopen(path, "wb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        free(hdr);
        return -1;
    }
    uint64_t hl = len;
    int bad = fwrite(&hl, 8, 1, f) != 1 || fwrite(hdr, 1, len, f) != len;
    free(hdr);
    for (int i = 0; i < n && !bad; i++)
        bad = write_random(f, r, &t[i], s->dtype, s->std) != 0;
    bad |= fclose(f) != 0;
    if (bad) snprintf(err, errlen, "%s: write failed", path);
    return bad ? -1 : 0;
}

static int write_hf(const gen_spec *s, const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (write_config(s, dir, err, errlen) != 0) return -1;
    int n = list_tensors(s, NULL, 0);
    tdesc *t = calloc((size_t)n, sizeof(tdesc));
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    list_tensors(s, t, n);
    rng r = {.s = s->seed};
    char path[4096];
    int rc = 0;
    if (s->shards <= 1) {
        snprintf(path, sizeof(path), "%s/model.safetensors", dir);
        rc = write_safetensors(s, path, t, n, &r, err, errlen);
    } else {
        int k = s->shards > n ? n : s->shards;
        snprintf(path, sizeof(path), "%s/model.safetensors.index.json", dir);
        FILE *ix = fopen(path, "w");
        if (!ix) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(t);
            return -1;
        }
        fprintf(ix, "{\n  \"metadata\": {},\n  \"weight_map\": {");
        for (int i = 0, first = 0; i < k && rc == 0; i++) {
            int end = (int)((int64_t)n * (i + 1) / k);
            snprintf(path, sizeof(path), "%s/model-%05d-of-%05d.safetensors", dir, i + 1, k);
            rc = write_safetensors(s, path, t + first, end - first, &r, err, errlen);
            for (int j = first; j < end; j++)
                fprintf(ix, "%s\n    \"%s\": \"model-%05d-of-%05d.safetensors\"", j ? "," : "",
                        t[j].name, i + 1, k);
            first = end;
        }
        fprintf(ix, "\n  }\n}\n");
        if (fclose(ix) != 0 && rc == 0) {
            snprintf(err, errlen, "index write failed");
            rc = -1;
        }
    }
    free(t);
    return rc;
}

int gen_write(const gen_spec *s, const char *out, char *err, size_t errlen)
{
    if (s->dim <= 0 || s->n_heads <= 0 || s->n_kv_heads <= 0 || s->n_layers <= 0 ||
        s->hidden_dim <= 0 || s->vocab_size <= 0 || s->seq_len <= 0 ||
        (!s->head_dim && s->dim % s->n_heads)) {
        snprintf(err, errlen, "bad model shape");
        return -1;
    }
    return s->format == GEN_BIN ? write_bin(s, out, err, errlen) : write_hf(s, out, err, errlen);
}
