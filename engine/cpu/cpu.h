/* SPDX-License-Identifier: MIT */
/* The CPU backend's private parts: kernels (plain C, AVX2 and AVX-512, picked at run time), the
 * worker pool, f32 weights of one shard and the run state's buffers. */
#ifndef ENG_CPU_H
#define ENG_CPU_H

#include "backend.h"

/* ------------------------------------------------------------------ worker pool (pool.c) */
/* Part `part` of nparts of a job; every part runs exactly once per eng_pool_run. */
typedef void (*eng_pool_fn)(void *ctx, int part, int nparts);
typedef struct eng_pool eng_pool;

/* n_threads - 1 workers (none for 1). Not thread-safe: one caller posts jobs. */
eng_status eng_pool_create(int n_threads, int spin_us, eng_pool **out, char *err, size_t errlen);
void eng_pool_free(eng_pool *p);
int eng_pool_size(const eng_pool *p); /* 1 for NULL */
/* Runs fn(ctx, i, n) for every i in [0, n) (the caller takes part 0) and returns when all
 * are done; their writes are then visible to the caller. p NULL: fn(ctx, 0, 1). */
void eng_pool_run(eng_pool *p, eng_pool_fn fn, void *ctx);

/* ------------------------------------------------------------------ kernels */
/* A weight matrix in its stored type. f16 and bf16 stay 16-bit: the kernels widen them as they
 * load (exactly), so a product gives the bits of an f32 copy while reading half the bytes. */
typedef struct cpu_mat {
    const void *p; /* [rows, cols] */
    int dt;        /* ENG_DT_F32, ENG_DT_F16 or ENG_DT_BF16 */
} cpu_mat;

/* Element i of p, of type dt, as f32 (exact); p aligned to its element. */
static inline float cpu_elem(const void *p, int dt, size_t i)
{
    if (dt == ENG_DT_BF16) return eng_bf16_to_f32(((const uint16_t *)p)[i]);
    if (dt == ENG_DT_F16) return eng_f16_to_f32(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

/* Element i of p, of type dt, as an address. */
static inline const void *cpu_at(const void *p, size_t i, int dt)
{
    return (const char *)p + i * eng_dt_size((eng_dtype)dt);
}

/* r[j] = row t + j of x [*, d] for j < nv, the last of them repeated up to 4 pointers (a block
 * of fewer than 4 input rows computes its last row again and stores only its own). */
static inline void cpu_rows4(const float *r[4], const float *x, int t, int nv, int d)
{
    for (int j = 0; j < 4; j++)
        r[j] = x + (size_t)(t + (j < nv ? j : nv - 1)) * d;
}

/* typed(out, x, w.p, DT, T, n, d, i0, i1) with DT w's type as a constant: a kernel file's one
 * copy of its product per weight type. */
#define CPU_MATMUL_PER_TYPE(typed, out, x, w, T, n, d, i0, i1)                                     \
    do {                                                                                           \
        if ((w).dt == ENG_DT_BF16)                                                                 \
            typed(out, x, (w).p, ENG_DT_BF16, T, n, d, i0, i1);                                    \
        else if ((w).dt == ENG_DT_F16)                                                             \
            typed(out, x, (w).p, ENG_DT_F16, T, n, d, i0, i1);                                     \
        else                                                                                       \
            typed(out, x, (w).p, ENG_DT_F32, T, n, d, i0, i1);                                     \
    } while (0)

typedef struct eng_kernels {
    const char *name;
    /* out[t, i] = sum_k x[t, k] * w[i, k] for i in [i0, i1)   out [T, n], x [T, d], w [n, d].
     * Rows are taken in blocks of 4 counted from i0, so splitting [0, n) at multiples of 4
     * gives bitwise the same out as one call (the worker threads rely on it). */
    void (*matmul)(float *out, const float *x, cpu_mat w, int T, int n, int d, int i0, int i1);
    /* sum_k a[k] * b[k] */
    float (*dot)(const float *a, const float *b, int n);
    /* y[k] += a * x[k] */
    void (*axpy)(float *y, float a, const float *x, int n);
    /* Attention scores: att[p] = dot(q, k + p kstride, hd) * scale for p in [0, n); each
     * bitwise what dot gives.   att [n], q [hd], k [n, kstride] */
    void (*scores)(float *att, const float *q, const float *k, size_t kstride, int n, int hd,
                   float scale);
    /* o = sum_p (att[p] * inv) v[p], summed in p order: bitwise memset + axpy over p.
     * o [hd], att [n], v [n, vstride] */
    void (*values)(float *o, const float *att, float inv, const float *v, size_t vstride, int n,
                   int hd);
} eng_kernels;

extern const eng_kernels eng_kernels_scalar;
extern const eng_kernels eng_kernels_avx2;
extern const eng_kernels eng_kernels_avx512;
/* The table ENG_CPU_KERNELS names (auto: the fastest this CPU runs); NULL and a message when it
 * names none, or one this CPU cannot run. */
const eng_kernels *eng_kernels_pick(char *err, size_t errlen);
/* The AVX2 attention kernels, which the AVX-512 table shares. */
float eng_avx2_dot(const float *a, const float *b, int n);
void eng_avx2_axpy(float *y, float a, const float *x, int n);
void eng_avx2_scores(float *att, const float *q, const float *k, size_t kstride, int n, int hd,
                     float scale);
void eng_avx2_values(float *o, const float *att, float inv, const float *v, size_t vstride, int n,
                     int hd);

/* ------------------------------------------------------------------ weights of one shard */
typedef struct eng_layer_w {
    const float *att_norm; /* [dim] */
    cpu_mat wq;            /* [nq*hd, dim] */
    cpu_mat wk;            /* [nkv*hd, dim] */
    cpu_mat wv;            /* [nkv*hd, dim] */
    const float *bq;       /* [nq*hd] or NULL */
    const float *bk;       /* [nkv*hd] or NULL */
    const float *bv;       /* [nkv*hd] or NULL */
    const float *q_norm;   /* [hd] or NULL */
    const float *k_norm;   /* [hd] or NULL */
    cpu_mat wo;            /* [dim, nq*hd]: our columns of o_proj */
    const float *bo;       /* [dim] or NULL, added once after the all-reduce */
    const float *ffn_norm; /* [dim] */
    cpu_mat w1;            /* [ffn, dim] gate */
    cpu_mat w3;            /* [ffn, dim] up */
    const float *b1;       /* [ffn] or NULL */
    const float *b3;       /* [ffn] or NULL */
    cpu_mat w2;            /* [dim, ffn]: our columns of down_proj */
    const float *b2;       /* [dim] or NULL, added once after the all-reduce */
} eng_layer_w;

/* Matrices keep their stored type; those whose shard is one contiguous block stay in the
 * mapping (zero copy), others (column slices of the row-parallel o/down projections) are
 * copied once. Vectors (norms, biases) are converted to f32. */
typedef struct cpu_weights {
    const eng_kernels *k;
    cpu_mat embed;           /* [vocab, dim] */
    const float *final_norm; /* [dim] */
    cpu_mat cls;             /* [vocab, dim] (== embed when tied) */
    eng_layer_w *layers;     /* [n_layers] */
    void **owned;            /* converted or copied tensors */
    int n_owned, cap_owned;
} cpu_weights;

/* ------------------------------------------------------------------ run state */
typedef struct cpu_state {
    float *x;           /* [B, dim] residual stream */
    float *xb;          /* [B, dim] normed input; also partial sums of row-parallel layers */
    float *q;           /* [B, nq*hd] */
    float *k;           /* [B, nkv*hd] */
    float *v;           /* [B, nkv*hd] */
    float *att_out;     /* [B, nq*hd] */
    float *att;         /* [threads, ctx] scores: one row per worker of the attention */
    float *hb;          /* [B, ffn] */
    float *hb2;         /* [B, ffn] */
    float *key_cache;   /* [n_seqs, L, ctx, nkv*hd] */
    float *value_cache; /* [n_seqs, L, ctx, nkv*hd] */
    float *logits;      /* [all_logits or n_seqs > 1 ? B : 1, vocab] */
    int logit_rows;     /* rows the last logits call wrote */
    int *ids;           /* [rows of logits] the tokens cpu_sample_batch picked */
    void *smp_scratch;  /* [smp_parts, smp_bytes] one sampling scratch per worker */
    size_t smp_bytes;
    int smp_parts;
    eng_pool *pool; /* NULL: one thread */
} cpu_state;

/* cpu_weights.c */
eng_status cpu_model_init(eng_model *m, const eng_load_params *p, char *err, size_t errlen);
eng_status cpu_upload_globals(eng_model *m, const eng_source *src, char *err, size_t errlen);
eng_status cpu_upload_layer(eng_model *m, int l, const eng_tref *tr, char *err, size_t errlen);
void cpu_model_free(eng_model *m);
/* cpu_state.c */
eng_status cpu_state_create(const eng_model *m, eng_state *s, const eng_state_params *p, char *err,
                            size_t errlen);
void cpu_state_free(eng_state *s);
eng_status cpu_copy_seq(const eng_model *m, eng_state *s, int dst, int src, int n);
/* cpu_layer.c */
eng_status cpu_embed(const eng_model *m, eng_state *s);
eng_status cpu_layer(const eng_model *m, eng_state *s, int l, const eng_coll *coll);
eng_status cpu_logits(const eng_model *m, eng_state *s);
/* cpu_sample.c */
eng_status cpu_sample_batch(const eng_model *m, eng_state *s);
eng_status cpu_get_batch(const eng_model *m, eng_state *s, int *ids, const int *keep,
                         const float **host);

#endif
