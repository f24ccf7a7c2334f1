/* SPDX-License-Identifier: MIT */
/* The CUDA backend's kernels (one .cu file per family) and their plain-C references
 * (ref.c), which the GPU unit tests compare them with. Launchers return the launch error
 * (cudaGetLastError) as an int, 0 on success; they never synchronize. Element types are
 * eng_dtype (ENG_DT_F32, ENG_DT_F16, ENG_DT_BF16); activations are always f32.
 * Host- and device-side C: no C++ in this header. */
#ifndef ENG_CUDA_KERNELS_H
#define ENG_CUDA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct CUstream_st *eng_stream; /* == cudaStream_t */

#define ENG_CUDA_MAX_HD 256 /* head_dim limit of the attention and RoPE kernels */

/* embed.cu: x[t, :] = table[tokens[t], :] as f32.   x [n, D], table [V, D] of dt. */
int eng_cu_embed(float *x, const void *table, int dt, const int *tokens, int n, int D,
                 eng_stream st);
void eng_ref_embed(float *x, const void *table, int dt, const int *tokens, int n, int D);

/* norm.cu: per row t: if delta, x[t] += delta[t] (+ bias); then
 * out[t] = w * x[t] / sqrt(mean(x[t]^2) + eps); out16 (NULL: none) gets out in type dt16.
 * x [n, D], delta [n, D] or NULL, bias [D] or NULL, w [D], out [n, D], out16 [n, D]. */
int eng_cu_add_rmsnorm(float *x, const float *delta, const float *bias, const float *w, float eps,
                       float *out, void *out16, int dt16, int n, int D, eng_stream st);
void eng_ref_add_rmsnorm(float *x, const float *delta, const float *bias, const float *w, float eps,
                         float *out, void *out16, int dt16, int n, int D);

/* norm.cu: out[i] = w[i] * x[i], i < D: the unscaled half of a norm whose partial sums of
 * squares came with x (a layer-mapping boundary; ENG_MV_RESID writes the same products). */
int eng_cu_mul(float *out, const float *w, const float *x, int D, eng_stream st);
void eng_ref_mul(float *out, const float *w, const float *x, int D);

/* rope.cu: the merged q/k/v projection of n tokens at positions *pos.. to attention inputs:
 * + bias (Qwen2), per-head RMSNorm of q and k (Qwen3), RoPE (interleaved or half), q out,
 * k and v written into the layer's cache at their positions.
 * qkv [n, (nq+2nkv)*hd], bias [(nq+2nkv)*hd] or NULL, q_norm/k_norm [hd] or NULL,
 * inv_freq [hd/2], q [n, nq*hd] (heads_first: [nq, n, hd]), kc/vc [ctx, nkv*hd] (the
 * layer's cache). */
typedef struct eng_rope_args {
    const float *qkv, *bias, *q_norm, *k_norm, *inv_freq;
    float *q, *kc, *vc;
    const int *pos; /* device: the first token's position */
    int n, nq, nkv, hd, interleaved;
    float eps;
    int heads_first; /* q head-major, for the batched products of long prompts */
} eng_rope_args;
int eng_cu_rope_qkv(const eng_rope_args *a, eng_stream st);
void eng_ref_rope_qkv(const eng_rope_args *a); /* a->pos is a host pointer here */

/* swiglu.cu: out[t, i] = silu(h[t, i] + b[i]) * (h[t, F + i] + b[F + i]).
 * h [n, 2F] (gate | up), b [2F] or NULL, out [n, F], out16 [n, F] of dt16 or NULL. */
int eng_cu_swiglu(const float *h, const float *b, float *out, void *out16, int dt16, int n, int F,
                  eng_stream st);
void eng_ref_swiglu(const float *h, const float *b, float *out, void *out16, int dt16, int n,
                    int F);

/* matvec.cu: y[i] = sum_k w[i, k] * x[k] for one input row (decode).   w [rows, d] of dt,
 * x [d], y [rows]. 16-byte weight loads when a row is a multiple of 16 bytes. */
int eng_cu_matvec(float *y, const void *w, int dt, const float *x, int rows, int d, eng_stream st);
void eng_ref_matvec(float *y, const void *w, int dt, const float *x, int rows, int d);

/* matvec_batch.cu: y[i, :] = w x[i, :] for n input rows (the decode rows of a batched step),
 * each row bitwise equal to eng_cu_matvec of that row alone (the same summation order); the
 * weights are read once per 16 rows.   w [rows, d] of dt, x [n, d], y [n, rows]. */
int eng_cu_matvec_batch(float *y, const void *w, int dt, const float *x, int rows, int d, int n,
                        eng_stream st);
void eng_ref_matvec_batch(float *y, const void *w, int dt, const float *x, int rows, int d, int n);

/* The matvec kernel's plan, shared with the references: wpr warps a row (split-K) for
 * matrices of under 1024 rows while each lane keeps four or more 16-byte loads, a block of 8
 * warps covering 8 / wpr rows. es: bytes per weight element. */
static inline int eng_mv_wpr(int rows, int d, int es)
{
    int nv = (int)((size_t)d * es / 16), wpr = 1;
    while (wpr < 4 && (size_t)rows * wpr < 1024 && nv >= 256 * wpr)
        wpr *= 2;
    return wpr;
}
/* 16-byte loads possible: rows of whole 16-byte chunks, w and x 16-byte aligned. */
static inline int eng_mv_vec_ok(const void *w, int es, const void *x, int d)
{
    return ((size_t)d * es) % 16 == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;
}
/* Partial sums of squares an ENG_MV_RESID product of `rows` rows writes: one per block. */
static inline int eng_mv_parts(int rows, int d, int es)
{
    int per = 8 / eng_mv_wpr(rows, d, es);
    return (rows + per - 1) / per;
}

/* matvec.cu, the decode step's fused products (one token, 16-byte loads: eng_mv_vec_ok).
 * They remove the RMSNorm and SwiGLU kernels from the step:
 * - ENG_MV_RESID (o_proj, down): res[i] += y_i + bias[i]; out[i] = nw_out[i] * res[i]
 *   (the next RMSNorm's weight applied, its 1/rms not yet known); ssq_out[b] = sum of res[i]^2
 *   over block b's rows (eng_mv_parts of them), summed in a fixed order.
 * - ssq_in (any mode; NULL: none): x is such an out; the product is scaled by
 *   1/sqrt(sum(ssq_in[0..nss)) / nd + eps), the sum taken in the same fixed order by every
 *   block, so the norm completes here with no atomics and the same result every run.
 * - ENG_MV_SWIGLU (gate/up, rows = 2F: gate rows then up rows): a block holds pairs of
 *   rows (i, F + i); out[i] = silu(g_i + bias[i]) * (u_i + bias[F + i]), out [F].
 * - ENG_MV_PLAIN: out[i] = y_i.
 * - ENG_MV_ROPE (the merged q/k/v product of one token, rows = (nq + 2 nkv) hd): the
 *   epilogue does what eng_cu_rope_qkv does with the same rope arguments (its bits): bias,
 *   RoPE, q into rope.q, k and v into the caches at *rope.pos; out and bias unused. Without
 *   q/k norms (rope.q_norm, k_norm NULL) and with hd % 8 == 0: eng_mv_rope_ok. In the Hugging
 *   Face layout a block's rows are then rotation pairs (i, i + hd/2), not consecutive rows.
 * w [rows, d] of dt, x [d], out [rows] (SWIGLU: [rows/2]), res/bias/nw_out [rows]
 * (SWIGLU bias [rows]), ssq_out [eng_mv_parts(rows, d, es)], ssq_in [nss]. */
enum { ENG_MV_PLAIN, ENG_MV_SWIGLU, ENG_MV_RESID, ENG_MV_ROPE };
typedef struct eng_mv_args {
    float *out;
    const void *w;
    int dt, rows, d, mode;
    const float *x;
    const float *ssq_in; /* input norm's partial sums of squares, or NULL */
    int nss, nd;         /* their count; the norm's width */
    float eps;
    const float *bias; /* or NULL */
    float *res;        /* RESID: the residual stream */
    const float *nw_out;
    float *ssq_out;
    eng_rope_args rope; /* ROPE: n 1, qkv unused */
    int whole;          /* rows of up to 4 KiB (one warp a row) asked for whole before the wait */
    /* rows longer than `whole` takes, one warp a row: x kept out of the weights' way, staged
     * in shared memory after the wait (d * 4 <= ENG_MV_XS_MAX) or else kept in L1 by loading
     * the weights past it (the same bits either way) */
    int xs;
    /* rows the loop walks, one warp a row, of two passes or more (ENG_MV_DEEP_MIN bytes), on a
     * grid of at most two blocks for each of `deep` SMs (0: none): two passes in flight, not
     * one (the same bits) */
    int deep;
} eng_mv_args;
#define ENG_MV_XS_MAX (32u << 10)
#define ENG_MV_DEEP_MIN (8u << 10) /* two passes of a warp's eight 16-byte loads a lane */
static inline int eng_mv_rope_ok(const eng_rope_args *r)
{
    return r->n == 1 && !r->q_norm && !r->k_norm && r->hd % 8 == 0;
}
int eng_cu_matvec_fused(const eng_mv_args *a, eng_stream st);
void eng_ref_matvec_fused(const eng_mv_args *a);

/* matvec_batch.cu: eng_cu_matvec_fused for n input rows at once, the weights read once per 16
 * rows; row i gets bitwise what eng_cu_matvec_fused gives for that row alone (a group of one
 * row runs it). mv holds row 0's arguments; row i's are x + i d, out + i rows (SWIGLU
 * + i rows/2), res + i rows, ssq_in + i ss_stride, ssq_out + i ss_stride (bias, nw_out
 * shared). A residual product takes no ssq_in.   x [n, d], out [n, rows] (SWIGLU
 * [n, rows/2]), res [n, rows], ssq_in [n, ss_stride] (nss used), ssq_out [n, ss_stride]
 * (eng_mv_parts used), scale [n] scratch (needed with ssq_in). */
typedef struct eng_mvb_args {
    eng_mv_args mv;
    int n, ss_stride;
    float *scale;
    /* 1: a product eng_cu_mvtc_ok accepts runs on tensor cores (eng_cu_matvec_tc) for every n,
     * 1 included; 0: the batch-1 bits. */
    int tc;
} eng_mvb_args;
int eng_cu_matvec_batch_fused(const eng_mvb_args *a, eng_stream st);
void eng_ref_matvec_batch_fused(const eng_mvb_args *a);

/* matvec_tc.cu: eng_cu_matvec_batch_fused's products on tensor cores, bf16 weights: the f32
 * inputs as two bf16 halves (hi + lo), f32 sums. Not the batch-1 kernel's bits, but a row's
 * bits are the same for any n (1 included) and whatever the other rows hold. Shapes it takes:
 * eng_cu_mvtc_ok (bf16, rows a multiple of 16, of 32 for SWIGLU, d of 32); a->scale unused.
 * The reference rounds x as the kernel does, then runs eng_ref_matvec_batch_fused. */
int eng_cu_mvtc_ok(int dt, int rows, int d, int mode);
int eng_cu_matvec_tc(const eng_mvb_args *a, eng_stream st);
void eng_ref_matvec_tc(const eng_mvb_args *a);

/* gemm.cu: x f32 -> dt (the weights' type, for cuBLAS). x [n], out [n]. */
int eng_cu_convert(void *out, int dt, const float *x, size_t n, eng_stream st);
/* gemm.cu: x f32 -> hi = dt(x), lo = dt(x - hi) (dt bf16 or f16), for the high-precision
 * prompt products. x [n], hi [n], lo [n]. */
int eng_cu_convert_split(void *hi, void *lo, int dt, const float *x, size_t n, eng_stream st);
void eng_ref_convert_split(void *hi, void *lo, int dt, const float *x, size_t n);

/* attention.cu: causal attention of n query tokens at positions *pos.. (keys 0..pos+t,
 * or the last `window`) against the layer's cache, GQA (query head h reads KV head
 * h / (nq / nkv)). The KV range of each row is cut into nsplit chunks of `chunk` positions
 * (flash-decoding; chunk 0: sized from *pos at run time, at least 32 keys each, so that a
 * graph captured once serves every position), each block keeping a running max and sum; a
 * second kernel combines them.
 * q [n, nq*hd], kc/vc [ctx, nkv*hd], out [n, nq*hd],
 * part [nsplit, n*nq, hd + 2] scratch (NULL when nsplit == 1).
 * count (NULL: a second kernel merges the splits): [eng_cu_attention_counts(n, nq, nkv)]
 * ints, zero, left zero; the last split block of each row block to finish merges them.
 * tiles (decode, n == 1; 0 elsewhere): eng_cu_attention_tiles()'s count of 32-key tiles a
 * block takes at once (attn_decode.cu), chunks then a multiple of that many keys.
 * qhead (decode, with tiles 4, where eng_cu_attention_head_ok()): one block a query head
 * (attn_head.cu) instead of one a KV head, chunks of a multiple of 128 keys. */
typedef struct eng_attn_args {
    const float *q, *kc, *vc;
    float *out, *part;
    int *count;
    const int *pos; /* device (host for the reference) */
    int n, nq, nkv, hd, window, nsplit, chunk, tiles, qhead;
    float scale;
} eng_attn_args;
int eng_cu_attention(const eng_attn_args *a, eng_stream st);
void eng_ref_attention(const eng_attn_args *a);
/* Dynamic shared memory the attention kernel needs for n query tokens. */
size_t eng_cu_attention_smem(int n, int group, int hd);
int eng_cu_attention_counts(int n, int nq, int nkv); /* count's length */
int eng_cu_attention_init(size_t max_smem);          /* raises the kernels' limit once */
/* attn_decode.cu: the tiles a decode block of nq / nkv query heads of hd dims takes at once
 * (1, 2 or 4) within smem_max bytes of shared memory, 0 where only the general kernel serves;
 * the shared memory it then needs. eng_cu_attention() launches it when a->tiles > 0. */
int eng_cu_attention_tiles(int nq, int nkv, int hd, size_t smem_max);
size_t eng_cu_attention_decode_smem(int group, int hd, int tiles);
int eng_cu_attention_decode(const eng_attn_args *a, eng_stream st);
int eng_cu_attention_decode_init(size_t max_smem);
/* attn_head.cu: whether a decode block a query head serves nq / nkv heads of hd dims. */
int eng_cu_attention_head_ok(int nq, int nkv, int hd);
int eng_cu_attention_head(const eng_attn_args *a, eng_stream st);

/* batch.cu: a step over tokens of several sequences (continuous batching). Token t sits at
 * position pos[t] of KV slot seq[t]; a layer's cache of slot s starts s * slot_stride floats
 * after slot 0's (the cache is [slots, L, ctx, nkv*hd], kc/vc point at slot 0's layer). */
typedef struct eng_batch_args {
    const int *pos, *seq; /* [n] device (host for the references) */
    size_t slot_stride;
} eng_batch_args;
/* eng_cu_rope_qkv with per-token positions and slots (a->pos unused). */
int eng_cu_rope_qkv_batch(const eng_rope_args *a, const eng_batch_args *b, eng_stream st);
void eng_ref_rope_qkv_batch(const eng_rope_args *a, const eng_batch_args *b);
/* Attention of each token against its own slot, keys 0..pos[t] (or the last `window`); the
 * key range cut into nsplit chunks of `chunk` positions (part as in eng_cu_attention). a->pos
 * unused. */
int eng_cu_attention_batch(const eng_attn_args *a, const eng_batch_args *b, eng_stream st);
void eng_ref_attention_batch(const eng_attn_args *a, const eng_batch_args *b);
size_t eng_cu_attention_batch_smem(int group, int hd);
int eng_cu_attention_batch_init(size_t max_smem); /* raises the kernel's limit once */
/* out[j, :] = in[rows[j], :].   in [*, D], rows [n] (device), out [n, D]. */
int eng_cu_gather_rows(float *out, const float *in, const int *rows, int n, int D, eng_stream st);
void eng_ref_gather_rows(float *out, const float *in, const int *rows, int n, int D);
/* The softmax step of long-prompt attention done as two batched matrix products: s holds
 * the scaled scores of nh heads x n query tokens (at positions pos0..) x kv keys; per row
 * (h, t) the keys start..pos0+t (start: 0, or the last `window`) get their softmax, the
 * others 0.   s [nh, n, kv]. */
int eng_cu_causal_softmax(float *s, int pos0, int nh, int n, int kv, int window, eng_stream st);
void eng_ref_causal_softmax(float *s, int pos0, int nh, int n, int kv, int window);
/* Head-major attention output back to token rows, in type dt (the next product's input).
 * o [nh, n, hd], out [n, nh*hd] of dt. */
int eng_cu_heads_to_rows(void *out, int dt, const float *o, int nh, int n, int hd, eng_stream st);
void eng_ref_heads_to_rows(void *out, int dt, const float *o, int nh, int n, int hd);

/* sample.cu: the next token from logits [V]: greedy (temperature 0: the lowest id of the
 * maximum) or softmax(logits / T) cut to the top-p nucleus (the largest threshold whose mass
 * exceeds top_p, found exactly on 40-bit fixed-point masses; top_p 0 keeps the maximum and
 * its ties) and drawn at *draw of its mass in id order. Writes *next (device): -1 when a
 * logit is NaN or infinite. V <= 2^22. scratch: device memory of
 * eng_cu_sample_scratch_bytes(rows), used by one call at a time (no contents kept). */
size_t eng_cu_sample_scratch_bytes(int rows);
int eng_cu_sample(const float *logits, int V, float temperature, float top_p, const float *draw,
                  int *next, void *scratch, eng_stream st);
int eng_ref_sample(const float *logits, int V, float temperature, float top_p, float draw);
/* eng_cu_sample for n rows at once, row r with temperature[r], top_p[r] and draw[r] (device
 * arrays [n]) into next[r].   logits [n, V]; scratch of eng_cu_sample_scratch_bytes(n). */
int eng_cu_sample_rows(const float *logits, int n, int V, const float *temperature,
                       const float *top_p, const float *draw, int *next, void *scratch,
                       eng_stream st);

#ifdef __cplusplus
}
#endif
#endif
