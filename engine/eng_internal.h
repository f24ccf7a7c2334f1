/* SPDX-License-Identifier: MIT */
/* Private to libeng: errors, knobs, files, tensor sources, the model and run state every
 * backend shares (backend.h: the backends; cpu/, cuda/: their weights and buffers). */
#ifndef ENG_INTERNAL_H
#define ENG_INTERNAL_H

#include "eng.h"

#include "common/half.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

/* ------------------------------------------------------------------ errors */
/* One-line error into err; returns st. */
eng_status eng_fail(eng_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#define ENG_CHECK(expr, label)                                                                     \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != ENG_OK) goto label;                                                              \
    } while (0)

/* The largest head the loaders accept (a head's scratch fits on the stack). */
#define ENG_MAX_HEAD_DIM 1024

/* ------------------------------------------------------------------ knobs (knobs.c) */
typedef enum {
    ENG_KNOB_THREADS,
    ENG_KNOB_SPIN_US,
    ENG_KNOB_CUDA_PROFILE,
    ENG_KNOB_NO_P2P,
    ENG_KNOB_CUDA_FUSE,
    ENG_KNOB_DECODE_AHEAD,
    ENG_KNOB_CPU_KERNELS,
    ENG_KNOB_COUNT
} eng_knob_id;

typedef struct eng_knob {
    const char *name, *default_value, *help;
} eng_knob;

const eng_knob *eng_knobs(void); /* [ENG_KNOB_COUNT], then a NULL name */
void eng_knobs_print(FILE *out); /* name, value (or default), help; one line each */
/* The knob as an integer in [lo, hi] (its default when unset); a bad value is an error. */
eng_status eng_knob_int(eng_knob_id k, long lo, long hi, long *out, char *err, size_t errlen);
/* The knob's text (its default when unset). */
const char *eng_knob_str(eng_knob_id k);

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
    char *names; /* storage for tref names (loader-owned) */
} eng_source;

void eng_source_free(eng_source *src); /* frees arrays; unmaps unless maps were moved out */

eng_status eng_load_llama2(const char *path, eng_source *src, char *err, size_t errlen);
eng_status eng_load_hf(const char *dir, eng_source *src, char *err, size_t errlen);

/* f16/bf16 storage to f32 (exact): common/half.h's, the one implementation. */
static inline float eng_bf16_to_f32(uint16_t h)
{
    return rc_bf16_to_f32(h);
}
static inline float eng_f16_to_f32(uint16_t h)
{
    return rc_f16_to_f32(h);
}
static inline size_t eng_dt_size(eng_dtype dt)
{
    return dt == ENG_DT_F32 ? 4 : 2;
}

/* Shape check of a tensor reference: "tensor NAME missing (what)" or "has shape ...". */
eng_status eng_tref_expect(const eng_tref *t, int64_t rows, int64_t cols, const char *what,
                           char *err, size_t errlen);
/* Copies the block rows [r0, r0+nr) x cols [c0, c0+nc) of t into dst, in its stored type. */
void eng_tref_copy(const eng_tref *t, int64_t r0, int64_t nr, int64_t c0, int64_t nc, void *dst);

/* ------------------------------------------------------------------ sampler internals */
void eng_sampler_settings(const eng_sampler *s, float *temperature, float *top_p);
float eng_sampler_draw(eng_sampler *s); /* the next uniform draw in [0, 1) */
/* One row of logits [V] -> a token, as eng_sampler_sample with these settings and the uniform
 * draw in [0, 1) (-1: a logit is not finite). scratch: eng_sample_scratch_bytes(V) bytes, one
 * per thread; the logits are read only, so rows can be sampled in parallel. */
int eng_sample_row(void *scratch, const float *logits, int V, float temperature, float top_p,
                   float draw);
size_t eng_sample_scratch_bytes(int vocab);

/* ------------------------------------------------------------------ model and run state */
struct eng_backend;

/* The globals a model (or a segment of one) holds besides its layers. */
enum { ENG_PART_EMBED = 1, ENG_PART_HEAD = 2 /* final norm + classifier */ };

/* A boundary between two segments: how the residual stream crosses it. */
typedef enum {
    ENG_LINK_HOST,   /* get_act into host memory, put_act out of it (a CPU side) */
    ENG_LINK_SAME,   /* one GPU twice: a device copy */
    ENG_LINK_PEER,   /* GPU to GPU: an asynchronous peer copy */
    ENG_LINK_STAGED, /* GPU to GPU without peer access: through pinned host memory */
} eng_link_mode;

/* A model is one or more segments. A segment is itself an eng_model: cfg.n_layers its own
 * layer count, b/bw its backend and weights. With one segment the model is its own segment
 * (seg[0] == the model); with several (layer mapping) the model's b and bw are NULL and
 * forward.c walks seg[]. */
struct eng_model {
    eng_config cfg;
    eng_shard_info sh;
    const struct eng_backend *b;
    void *bw;                 /* the backend's weights (cpu_weights, cuda_weights) */
    float rope_inv_freq[512]; /* [head_dim/2] */
    size_t owned_bytes, mapped_bytes;
    eng_mapping *maps;
    int n_maps;
    int layer0;             /* a segment's first layer in the whole model (messages) */
    unsigned parts;         /* ENG_PART_*: which globals this model or segment holds */
    int n_seg;              /* segments (a segment itself: 0) */
    struct eng_model **seg; /* [n_seg] */
    int *seg_dev;           /* [n_seg] a visible GPU ordinal or -1 (the CPU) */
    eng_link_mode *link;    /* [n_seg - 1] boundary i: segment i to i + 1 */
    char name[32];          /* the backends' names, "cuda+cpu" */
};

/* What every backend's run state shares; the backend keeps its buffers behind bs. A layer
 * mapped model's state is one state per segment (seg[0] == the state with one). */
struct eng_state {
    const struct eng_backend *b;
    int max_batch, ctx_len, all_logits;
    int n_seqs;            /* KV-cache slots; the cache is [n_seqs, L, ctx_len, kv] */
    int prefill_precision; /* eng_prefill_precision */
    const int *tokens;     /* [n] the current call's tokens (host) */
    int n, pos; /* the current call: n tokens at positions pos.. (one sequence, slot 0) */
    float draw; /* the current call's sampling draw */
    void *bs;   /* the backend's run state */
    /* A batched call (eng_forward_batch) sets these; NULL for eng_forward. */
    const int *tok_pos; /* [n] each token's position */
    const int *tok_seq; /* [n] each token's KV slot */
    const int *out_row; /* [n_out] the tokens whose logits are wanted, in the caller's order */
    int n_out;
    /* A batch is reordered: first the n_dec tokens of sequences with one token in the call
     * (decode rows), then each other sequence's tokens together (prompt chunks), so that a
     * backend can run the decode rows and each chunk apart and give every row the same
     * result whatever else is in the batch. */
    int n_dec;
    /* eng_forward_batch_sample on a backend that samples: each flagged row's settings and
     * draw ([n_out] each), NULL otherwise. */
    const float *row_temp, *row_top_p, *row_draw;
    /* host scratch of eng_forward_batch, ints: the flagged rows [B], per sequence a count and
     * a cursor [n_seqs] each, the new index of each token [B], the reordered tokens, positions
     * and slots [B] each, then (floats) each flagged row's temperature, top-p, draw [B] each */
    int *scratch; /* [8 * max_batch + 2 * n_seqs] */
    int n_seg;
    struct eng_state **seg; /* [n_seg] */
    void **link;            /* [n_seg - 1] a backend's boundary state, NULL: through act_h */
    float *act_h;           /* [max_batch, dim] host copy of x at ENG_LINK_HOST boundaries */
    int graph; /* the decode step as a graph: 0 not yet, 1 captured, -1 capture failed (walks) */
    float graph_temp, graph_top_p; /* the sampler settings captured in it */
    int bgraph; /* batches of decode rows as graphs: 0 allowed, -1 a capture failed (walks) */
    /* eng_forward_ahead: steps started and not yet collected (0..2), the slot of the oldest,
     * the position of the newest */
    int ahead_n, ahead_first, ahead_pos;
    int ahead_tok; /* the token of a step started ahead with one (s->tokens points here) */
};

/* Token t's position and KV slot in the current call. */
static inline int eng_tok_pos(const struct eng_state *s, int t)
{
    return s->tok_pos ? s->tok_pos[t] : s->pos + t;
}
static inline int eng_tok_seq(const struct eng_state *s, int t)
{
    return s->tok_seq ? s->tok_seq[t] : 0;
}

/* Test hook (layer mapping): eng_model_open with the segments given directly: segment i
 * holds seg_layers[i] (>= 1) consecutive layers on seg_dev[i], a visible GPU ordinal or -1
 * for the CPU. Unlike --device-layers this puts the CPU anywhere and a device in several
 * segments: CI splits the CPU backend, one GPU tests its own boundary. tp_size 1 only. */
eng_status eng_model_open_segments(const char *path, const eng_load_params *p, int n_seg,
                                   const int *seg_layers, const int *seg_dev, eng_model **out,
                                   char *err, size_t errlen);

#endif
