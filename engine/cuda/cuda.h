/* SPDX-License-Identifier: MIT */
/* The CUDA backend's private parts (host side): device weights of one shard, the run state's
 * device buffers, error helpers. Kernels: cuda_kernels.h. */
#ifndef ENG_CUDA_H
#define ENG_CUDA_H

#include "../backend.h"
#include "cuda_kernels.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

/* A matrix on the device in its stored type, row-major [rows, cols]. */
typedef struct dmat {
    void *p;
    int dt; /* eng_dtype */
    int rows, cols;
} dmat;

typedef struct cu_layer {
    float *att_norm;        /* [D] */
    dmat wqkv;              /* [(nq+2nkv)*hd, D]: q, k, v rows merged */
    float *bqkv;            /* [(nq+2nkv)*hd] or NULL */
    float *q_norm, *k_norm; /* [hd] or NULL */
    dmat wo;                /* [D, nq*hd] */
    float *bo;              /* [D] or NULL */
    float *ffn_norm;        /* [D] */
    dmat w13;               /* [2F, D]: gate rows, then up rows */
    float *b13;             /* [2F] or NULL */
    dmat w2;                /* [D, F] */
    float *b2;              /* [D] or NULL */
} cu_layer;

typedef struct cuda_weights {
    int dev;
    struct cudaDeviceProp prop;
    char *arena; /* every weight, one allocation */
    size_t arena_size, arena_used;
    dmat embed, cls;   /* [V, D] each (cls == embed when tied) */
    float *final_norm; /* [D] */
    float *inv_freq;   /* [hd/2] */
    cu_layer *layers;  /* [L] */
    void *staging[2];  /* pinned, STAGING bytes each: double-buffered uploads */
    cudaEvent_t staged[2];
    int next_buf;
    /* progress */
    eng_log_fn log;
    void *log_ctx;
    double t0;
    size_t uploaded, logged;
} cuda_weights;

/* What the decode step fuses (ENG_CUDA_FUSE). */
enum {
    CUDA_FUSE_NORM = 1,
    CUDA_FUSE_SWIGLU = 2,
    CUDA_FUSE_MERGE = 4,
    CUDA_FUSE_BATCH = 8,
    CUDA_FUSE_TC = 16,
    CUDA_FUSE_ROPE = 32,
    CUDA_FUSE_TILES = 64,
    CUDA_FUSE_WHOLE = 128,
    CUDA_FUSE_XS = 256,
    CUDA_FUSE_HEAD = 512,
    CUDA_FUSE_DEEP = 1024
};
/* CUDA_FUSE_HEAD: the decode attention one block a query head, 16 warps over its keys
 * (attn_head.cu), for heads of 128 dims and steps at positions below CUDA_HEAD_CTX; before
 * CUDA_FUSE_TILES. Such steps and later ones are two graphs (cuda_head_step). On one H100,
 * 2026-12-07: Qwen3-0.6B +4 to +6%, Llama-3-8B +1.5% (32-token prompt, 128 tokens); with 1500
 * keys it lost 1.3% (8B), and the Llama-3.2-1B's heads of 64 dims did not gain. In the default
 * (knobs.c) since its two graphs passed on a GPU (BENCHMARKS section 53). */
#define CUDA_HEAD_CTX 512
/* CUDA_FUSE_DEEP: a decode product whose rows the loop walks, of two passes or more, on a grid
 * of at most two blocks an SM (eng_mv_args.deep), keeps two passes of its row in flight, not
 * one (the same bits): there the grid alone cannot keep enough loads in flight. For every such
 * product it cost the 8B 8.6% on an H100 (65 registers: three blocks an SM, not five), hence
 * the grid rule; Qwen3-0.6B's 6 KiB rows lost 0.9%, hence the row rule. With both, one H100,
 * 2026-12-07: Llama-3.2-1B +1.4% (its down product), Qwen3-0.6B and the 8B level. In the
 * default (knobs.c) since then; not yet measured on an H200 (BENCHMARKS sections 55, 56). */
/* CUDA_FUSE_XS: a decode product whose rows the loop walks (longer than CUDA_FUSE_WHOLE
 * takes, one warp a row) keeps x out of the streamed weights' way: x of up to 8192 floats
 * staged in shared memory after the wait, a longer one kept in L1 by loading the weights
 * past L1 (the same bits; matvec.cu says what it gave). */
/* CUDA_FUSE_WHOLE: a decode product with rows of up to 4 KiB asks for each row whole before
 * its wait (eight 16-byte loads a lane instead of four), so such a product streams all its
 * weights while the kernels before it finish (eng_mv_args.whole; the same bits). */
/* CUDA_FUSE_TILES: the decode attention takes up to four 32-key tiles a block at once and
 * merges them in shared memory (attn_decode.cu), so a short context needs no split merge. */
/* CUDA_FUSE_ROPE (with NORM): RoPE and the KV-cache write in the decode q/k/v product's
 * epilogue (ENG_MV_ROPE) where eng_mv_rope_ok allows (no q/k norms), one kernel fewer a
 * layer. */
/* CUDA_FUSE_BATCH (with NORM and SWIGLU): the decode rows of a batched step (serve) take the
 * fused products too (matvec_batch.cu); without CUDA_FUSE_TC a lone request's step is then
 * the decode step's. */
/* CUDA_FUSE_TC: those decode rows' products of bf16 weights on tensor cores (matvec_tc.cu),
 * for every row count, one row included, so a request's bits do not depend on its company;
 * 16 rows then cost about 1.3x one. The classifier of a batch takes them too. */
/* CUDA_FUSE_MERGE: alone it lost to the separate merge kernel (H200, 2026-12-02: 887 against
 * 897 tok/s on the Llama-3.2-1B shape); with CUDA_FUSE_TILES, which needs no merge at all for
 * up to 128 keys, it wins (H100, 2026-12-05: 864 against 853), so both are on by default. */

/* Stages of the decode step, for ENG_CUDA_PROFILE. */
enum {
    CUDA_ST_EMBED,
    CUDA_ST_NORM,
    CUDA_ST_QKV,
    CUDA_ST_ROPE,
    CUDA_ST_ATTN,
    CUDA_ST_WO,
    CUDA_ST_W13,
    CUDA_ST_SWIGLU,
    CUDA_ST_W2,
    CUDA_ST_CLS,
    CUDA_ST_SAMPLE,
    CUDA_ST_COPY, /* logits to the host (batched steps) */
    CUDA_STAGES
};

typedef struct cuda_state {
    int dev; /* the GPU of the weights: every entry point makes it current */
    cudaStream_t st;
    cublasHandle_t blas;
    char *arena; /* every buffer below, one allocation */
    size_t arena_size;
    float *x;        /* [B, D] residual stream */
    float *xb;       /* [B, D] normed */
    float *qkv;      /* [B, (nq+2nkv)*hd] */
    float *q;        /* [B, nq*hd] after RoPE */
    float *att;      /* [B, nq*hd] attention output */
    float *h13;      /* [B, 2F] gate | up */
    float *hb;       /* [B, F] */
    float *delta;    /* [B, D] row-parallel output, added to x by the next norm */
    void *act16;     /* [B, max(D, nq*hd, F)] activations in the weights' type for cuBLAS */
    float *kc, *vc;  /* [n_seqs, L, ctx, nkv*hd] (slot 0 first: one sequence uses only it) */
    float *logits;   /* [rows, V]: rows = B with all_logits or several sequences, else 1 */
    float *part;     /* [nsplit, nq, hd+2] flash-decoding partials */
    int *att_count;  /* decode attention's split counters (eng_attn_args.count), zero */
    int *in_d;       /* [B + 2]: tokens, then the position, then the draw (float bits) */
    int *next_d;     /* [1] sampled token: in_d[0], the next step's input token */
    void *smp;       /* the sampler's scratch, eng_cu_sample_scratch_bytes(B) */
    int *in_h;       /* pinned mirror of in_d */
    float *logits_h; /* pinned [rows, V] */
    int *next_h;     /* pinned [1] */
    int *ahead_h;    /* pinned [2 slots][position, draw (float bits), sampled id]: steps ahead */
    cudaEvent_t ahead_ev[2]; /* recorded after each slot's sampled id is copied back */
    float *host_red;         /* [B, D] host staging for a collective without device buffers */
    int nsplit, chunk;
    int att_tiles, nsplit_tiles; /* decode attention with CUDA_FUSE_TILES: its tiles and splits */
    int att_head, nsplit_head;   /* with CUDA_FUSE_HEAD: whether it serves, its splits */
    int pending;                 /* delta (+ pending_bias) not yet added to x */
    const float *pending_bias;
    /* Decode with the norms fused into the products (eng_mv_args): the last o_proj or down
     * product added its output to x, wrote xb = norm_w * x for the norm of weight fused_nw
     * and nss partial sums of squares into ssq; the next product completes that norm. */
    const float *fused_nw; /* NULL: xb is not such an input */
    int fuse;              /* ENG_CUDA_FUSE: CUDA_FUSE_* bits */
    int sms;               /* the GPU's SMs */
    int split;             /* ENG_PREFILL_HIGH: prompt products on hi + lo 16-bit inputs */
    float *ssq;            /* [max(n_seqs, 1), D]: a row's partials at row * D (nss used) */
    /* [D] of 1.0 in a segment followed by another (layer mapping): its last down product
     * takes it as the next norm's weight, so the partials above cross with x (cuda_cross)
     * and the next segment's first product is fused as it would be in one segment. */
    float *ones;
    int nss;
    /* A batch's decode rows in that fused form (rows [0, n_dec) of a batched step): a pending
     * delta then belongs to the prompt rows from pend_row0 on only. */
    int pend_row0;
    float *bscale; /* [n_seqs] the decode rows' input-norm scales (eng_mvb_args.scale) */
    int logit_rows;
    float *scores;              /* [nq, B, score_keys] long-prompt attention scores, or NULL */
    int score_keys;             /* the most keys a batched attention call may have */
    cudaGraphExec_t graph;      /* the decode step, once captured */
    cudaGraphExec_t graph_long; /* the same past CUDA_HEAD_CTX (cuda_head_step: another kernel) */
    int cap_sampled;            /* the capture in progress samples, at these settings: */
    float cap_temp, cap_top_p;
    int graph_sampled[2]; /* graph, graph_long: what each one's capture sampled with */
    float graph_temp[2], graph_top_p[2];
    cudaGraphExec_t *bgraph; /* [n_seqs + 1]: a batch of n decode rows, once captured */
    /* A batch of several sequences (eng_forward_batch): its own inputs and scratch. */
    int *bin_d;   /* [6B]: each token's position, slot, the rows whose logits are wanted, then
                   * (float bits) each such row's temperature, top-p and draw */
    int *bin_h;   /* pinned mirror of bin_d */
    int *ids_d;   /* [B] the tokens sampled from a batch's rows */
    int *ids_h;   /* pinned [B] */
    float *bpart; /* [bsplit_max, B*nq, hd+2] flash-decoding partials of the batch */
    /* A prompt chunk after the first rows of a batch runs its cuBLAS product here, at the
     * buffers' aligned start as when alone (cuBLAS may choose by pointer alignment). */
    void *stage_in;   /* [B, max(D, nq*hd, F)] f32 or 16-bit input rows */
    float *stage_out; /* [B, max((nq+2nkv)*hd, 2F, D)] */
    int bsplit_max;
    /* ENG_CUDA_PROFILE: the decode step runs eagerly with an event at each stage's end */
    int prof, prof_on, prof_ran, prof_n, prof_cap;
    cudaEvent_t *prof_ev; /* [prof_cap]: prof_ev[0] the step's start */
    int *prof_stage;      /* [prof_cap]: the stage that ends at each event */
    double prof_ms[CUDA_STAGES];
    long prof_steps;
    eng_log_fn log;
    void *log_ctx;
    cudaEvent_t mark; /* wait_for: where this stream's queue stood */
    char err[512];
} cuda_state;

/* Records a failed CUDA call in err ("what: message") and returns ENG_ERR_DEVICE. */
eng_status cu_fail(char *err, size_t errlen, const char *what, int code);
#define CU_CHECK(call, err, errlen)                                                                \
    do {                                                                                           \
        int e_ = (int)(call);                                                                      \
        if (e_ != 0) return cu_fail(err, errlen, #call, e_);                                       \
    } while (0)

/* Makes cs's GPU current (several instances, one per GPU, share a thread; a no-op when it
 * already is, as inside a graph capture); returns from the caller on failure. */
eng_status cu_bind(int dev, char *err, size_t errlen);
#define CU_BIND(cs)                                                                                \
    do {                                                                                           \
        eng_status b_ = cu_bind((cs)->dev, (cs)->err, sizeof((cs)->err));                          \
        if (b_ != ENG_OK) return b_;                                                               \
    } while (0)

/* cuda_weights.c */
eng_status cuda_model_init(eng_model *m, const eng_load_params *p, char *err, size_t errlen);
eng_status cuda_upload_globals(eng_model *m, const eng_source *src, char *err, size_t errlen);
eng_status cuda_upload_layer(eng_model *m, int l, const eng_tref *tr, char *err, size_t errlen);
void cuda_model_free(eng_model *m);
/* cuda_state.c */
eng_status cuda_state_create(const eng_model *m, eng_state *s, const eng_state_params *p, char *err,
                             size_t errlen);
void cuda_state_free(eng_state *s);
eng_status cuda_wait(cuda_state *cs); /* the stream's work done, with a deadline */
eng_status cuda_wait_event(cuda_state *cs, cudaEvent_t ev); /* ev reached (NULL: cuda_wait) */
void cuda_mark(cuda_state *cs, int stage); /* profiling: `stage` ends here (no-op when off) */
void cuda_prof_collect(cuda_state *cs);    /* profiling: the step's events read, after a wait */
/* cuda_layer.c */
eng_status cuda_set_inputs(const eng_model *m, eng_state *s);
eng_status cuda_embed(const eng_model *m, eng_state *s);
eng_status cuda_layer(const eng_model *m, eng_state *s, int l, const eng_coll *coll);
eng_status cuda_logits(const eng_model *m, eng_state *s);
eng_status cuda_sample(const eng_model *m, eng_state *s, float temperature, float top_p);
eng_status cuda_sample_batch(const eng_model *m, eng_state *s);
eng_status cuda_flush(const eng_model *m, eng_state *s);  /* adds a pending delta to x */
eng_status cuda_warmup(const eng_model *m, eng_state *s); /* cuBLAS kernels loaded up front */
/* cuda_link.c: boundaries between segments (layer mapping) */
eng_status cuda_link_model(const eng_model *a, const eng_model *b, int no_p2p, eng_link_mode *mode,
                           char *warn, size_t warnlen, char *err, size_t errlen);
eng_status cuda_link_create(const eng_model *a, eng_state *sa, const eng_model *b, eng_state *sb,
                            eng_link_mode mode, void **link, char *err, size_t errlen);
eng_status cuda_cross(const eng_model *a, eng_state *sa, const eng_model *b, eng_state *sb,
                      void *link);
void cuda_link_free(void *link);

/* Whether the decode step at s->pos is past the query-head attention's reach (CUDA_FUSE_HEAD
 * on and the model's heads fit it, position CUDA_HEAD_CTX on): its graph is cs->graph_long,
 * an earlier step's cs->graph. */
static inline int cuda_head_past(const cuda_state *cs, const eng_state *s)
{
    return (cs->fuse & CUDA_FUSE_HEAD) && cs->att_head && s->pos >= CUDA_HEAD_CTX;
}

/* Whether the decode step at s->pos takes the query-head attention. */
static inline int cuda_head_step(const cuda_state *cs, const eng_state *s)
{
    return !s->tok_pos && (cs->fuse & CUDA_FUSE_HEAD) && cs->att_head && !cuda_head_past(cs, s);
}

#endif
