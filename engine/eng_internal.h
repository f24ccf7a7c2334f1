/* Private to libeng: tensor sources, weights, run state, kernels. */
#ifndef ENG_INTERNAL_H
#define ENG_INTERNAL_H

#include "eng.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------------ errors */
/* One-line error into err; returns st. */
eng_status eng_fail(eng_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define ENG_CHECK(expr, label)                                                                     \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != ENG_OK) goto label;                                                              \
    } while (0)

/* ------------------------------------------------------------------ knobs (knobs.c) */
typedef enum { ENG_KNOB_THREADS, ENG_KNOB_SPIN_US, ENG_KNOB_COUNT } eng_knob_id;

typedef struct eng_knob {
    const char *name, *default_value, *help;
} eng_knob;

const eng_knob *eng_knobs(void); /* [ENG_KNOB_COUNT], then a NULL name */
void eng_knobs_print(FILE *out); /* name, value (or default), help; one line each */
/* The knob as an integer in [lo, hi] (its default when unset); a bad value is an error. */
eng_status eng_knob_int(eng_knob_id k, long lo, long hi, long *out, char *err, size_t errlen);

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

/* ------------------------------------------------------------------ files */
typedef struct eng_mapping {
    void *addr;
    size_t len;
} eng_mapping;

eng_status eng_map_file(const char *path, eng_mapping *m, char *err, size_t errlen);
void eng_unmap(eng_mapping *m);
void *eng_alloc_aligned(size_t bytes); /* 64-byte aligned, zeroed; NULL on failure */

/* ------------------------------------------------------------------ tensor sources */
typedef enum { ENG_DT_F32, ENG_DT_F16, ENG_DT_BF16 } eng_dtype;

/* A tensor inside a mapped file, row-major [rows, cols]; 1-D tensors have rows = 1. */
typedef struct eng_tref {
    const void *data; /* NULL: absent */
    eng_dtype dt;
    int64_t rows, cols;
    const char *name; /* for messages */
} eng_tref;

enum {
    ENG_T_ATT_NORM,
    ENG_T_WQ,
    ENG_T_WK,
    ENG_T_WV,
    ENG_T_BQ,
    ENG_T_BK,
    ENG_T_BV,
    ENG_T_QNORM,
    ENG_T_KNORM,
    ENG_T_WO,
    ENG_T_BO,
    ENG_T_FFN_NORM,
    ENG_T_W1, /* gate */
    ENG_T_W3, /* up */
    ENG_T_B1,
    ENG_T_B3,
    ENG_T_W2, /* down */
    ENG_T_B2,
    ENG_T_LAYER_COUNT
};

/* What a loader hands to the shard builder: the config and where every tensor lives. */
typedef struct eng_source {
    eng_config cfg;
    eng_tref embed;      /* [vocab, dim] */
    eng_tref final_norm; /* [dim] */
    eng_tref cls;        /* [vocab, dim]; absent when tied */
    eng_tref *layers;    /* [n_layers][ENG_T_LAYER_COUNT] */
    eng_mapping *maps;   /* files kept mapped while the model lives */
    int n_maps;
    char *names;         /* storage for tref names (loader-owned) */
} eng_source;

void eng_source_free(eng_source *src); /* frees arrays; unmaps unless maps were moved out */

eng_status eng_load_llama2(const char *path, eng_source *src, char *err, size_t errlen);
eng_status eng_load_hf(const char *dir, eng_source *src, char *err, size_t errlen);

/* ------------------------------------------------------------------ kernels */
typedef struct eng_kernels {
    const char *name;
    /* out[t, i] = sum_k x[t, k] * w[i, k] for i in [i0, i1)   out [T, n], x [T, d], w [n, d].
     * Rows are taken in blocks of 4 counted from i0, so splitting [0, n) at multiples of 4
     * gives bitwise the same out as one call (the worker threads rely on it). */
    void (*matmul)(float *out, const float *x, const float *w, int T, int n, int d, int i0,
                   int i1);
    /* sum_k a[k] * b[k] */
    float (*dot)(const float *a, const float *b, int n);
    /* y[k] += a * x[k] */
    void (*axpy)(float *y, float a, const float *x, int n);
} eng_kernels;

extern const eng_kernels eng_kernels_scalar;
extern const eng_kernels eng_kernels_avx2;
const eng_kernels *eng_kernels_pick(void);

/* ------------------------------------------------------------------ weights of one shard */
typedef struct eng_layer_w {
    const float *att_norm; /* [dim] */
    const float *wq;       /* [nq*hd, dim] */
    const float *wk;       /* [nkv*hd, dim] */
    const float *wv;       /* [nkv*hd, dim] */
    const float *bq;       /* [nq*hd] or NULL */
    const float *bk;       /* [nkv*hd] or NULL */
    const float *bv;       /* [nkv*hd] or NULL */
    const float *q_norm;   /* [hd] or NULL */
    const float *k_norm;   /* [hd] or NULL */
    const float *wo;       /* [dim, nq*hd]: our columns of o_proj */
    const float *bo;       /* [dim] or NULL, added once after the all-reduce */
    const float *ffn_norm; /* [dim] */
    const float *w1;       /* [ffn, dim] gate */
    const float *w3;       /* [ffn, dim] up */
    const float *b1;       /* [ffn] or NULL */
    const float *b3;       /* [ffn] or NULL */
    const float *w2;       /* [dim, ffn]: our columns of down_proj */
    const float *b2;       /* [dim] or NULL, added once after the all-reduce */
} eng_layer_w;

struct eng_model {
    eng_config cfg;
    eng_shard_info sh;
    const eng_kernels *k;
    const float *embed;      /* [vocab, dim] */
    const float *final_norm; /* [dim] */
    const float *cls;        /* [vocab, dim] (== embed when tied) */
    eng_layer_w *layers;     /* [n_layers] */
    float rope_inv_freq[512]; /* [head_dim/2] */
    void **owned;            /* converted or copied tensors */
    int n_owned, cap_owned;
    size_t owned_bytes, mapped_bytes;
    eng_mapping *maps;
    int n_maps;
};

/* ------------------------------------------------------------------ run state */
struct eng_state {
    int max_batch, ctx_len, all_logits;
    float *x;      /* [B, dim] residual stream */
    float *xb;     /* [B, dim] normed input; also partial sums of row-parallel layers */
    float *q;      /* [B, nq*hd] */
    float *k;      /* [B, nkv*hd] */
    float *v;      /* [B, nkv*hd] */
    float *att_out; /* [B, nq*hd] */
    float *att;    /* [nq, ctx] scores */
    float *hb;     /* [B, ffn] */
    float *hb2;    /* [B, ffn] */
    float *key_cache;   /* [L, ctx, nkv*hd] */
    float *value_cache; /* [L, ctx, nkv*hd] */
    float *logits; /* [all_logits ? B : 1, vocab] */
    eng_pool *pool; /* NULL: one thread */
};

#endif
