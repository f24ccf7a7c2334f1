/* SPDX-License-Identifier: MIT */
/* The CUDA backend's forward pass. Decode (one token) runs matrix-vector kernels; batches
 * of 2 and more of one sequence (prefill) run cuBLAS on activations in the weights' type (the
 * norms and SwiGLU write that copy themselves), and long prompts run attention as two
 * batched cuBLAS products around a causal softmax. A batch of several sequences runs its
 * decode rows through the small-batch matrix-vector kernels and each prompt chunk through its
 * own cuBLAS product (bproj), so that every row gets what it would get alone; its decode rows
 * take the fused products as the batch-1 decode step does (matvec_batch.cu keeps each row's
 * bits those of matvec_fused), while the prompt rows keep the norm kernels. The residual
 * add of each row-parallel output is deferred into the next RMSNorm. A batch of several sequences
 * (s->tok_pos set) takes batch.cu's RoPE and attention, each token at its own position in
 * its own KV slot. */
#include "cuda.h"

#include <math.h>

#define ST(cs) ((eng_stream)(cs)->st)
#define K(call)                                                                                    \
    do {                                                                                           \
        int e_ = (call);                                                                           \
        if (e_) return cu_fail(cs->err, sizeof(cs->err), #call, e_);                               \
    } while (0)

static cudaDataType cu_type(int dt)
{
    return dt == ENG_DT_BF16 ? CUDA_R_16BF : dt == ENG_DT_F16 ? CUDA_R_16F : CUDA_R_32F;
}

/* out[T, w.rows] = in[T, w.cols] . w^T + beta out, in already in the weights' type. */
static eng_status gemm_acc(cuda_state *cs, float *out, const dmat *w, const void *in, int T,
                           float beta)
{
    const float one = 1.0f;
    /* Column-major view: out^T [rows, T] = W [rows, cols] (stored as cols x rows) x x^T. */
    cublasStatus_t b =
        cublasGemmEx(cs->blas, CUBLAS_OP_T, CUBLAS_OP_N, w->rows, T, w->cols, &one, w->p,
                     cu_type(w->dt), w->cols, in, cu_type(w->dt), w->cols, &beta, out, CUDA_R_32F,
                     w->rows, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    if (b != CUBLAS_STATUS_SUCCESS)
        return eng_fail(ENG_ERR_DEVICE, cs->err, sizeof(cs->err),
                        "cuBLAS: cublasGemmEx [%d x %d] x [%d x %d] failed: %s (%d)", T, w->cols,
                        w->cols, w->rows, cublasGetStatusString(b), (int)b);
    return ENG_OK;
}

static eng_status gemm(cuda_state *cs, float *out, const dmat *w, const void *in, int T)
{
    return gemm_acc(cs, out, w, in, T, 0.0f);
}

/* out[T, w.rows] = x[T, w.cols] . w^T for f32 x and 16-bit weights on cuBLAS: x rounded once
 * into act16, or (ENG_PREFILL_HIGH) split into act16 (hi) and the rounding's remainder after
 * it (lo), out = W hi + W lo. */
static eng_status gemm16(cuda_state *cs, float *out, const dmat *w, const float *x, int T)
{
    size_t n = (size_t)T * w->cols;
    if (!cs->split) {
        K(eng_cu_convert(cs->act16, w->dt, x, n, ST(cs)));
        return gemm(cs, out, w, cs->act16, T);
    }
    void *lo = (char *)cs->act16 + n * 2; /* act16 holds [B, wide] floats: room for both */
    K(eng_cu_convert_split(cs->act16, lo, w->dt, x, n, ST(cs)));
    eng_status st = gemm(cs, out, w, cs->act16, T);
    return st != ENG_OK ? st : gemm_acc(cs, out, w, lo, T, 1.0f);
}

/* out[T, w.rows] = x[T, w.cols] . w^T */
static eng_status proj(cuda_state *cs, float *out, const dmat *w, const float *x, int T)
{
    if (T == 1) {
        K(eng_cu_matvec(out, w->p, w->dt, x, w->rows, w->cols, ST(cs)));
        return ENG_OK;
    }
    if (w->dt != ENG_DT_F32) return gemm16(cs, out, w, x, T);
    return gemm(cs, out, w, x, T);
}

/* Where a kernel before a product of T > 1 rows writes the product's input copy: act16 in
 * the weights' type, or nothing (f32 weights read the f32 output; ENG_PREFILL_HIGH splits
 * the f32 output itself, gemm16). */
static void *in16(cuda_state *cs, const dmat *w)
{
    return w->dt == ENG_DT_F32 || cs->split ? NULL : cs->act16;
}

/* A product of T > 1 rows after a kernel that wrote x (f32) and, where in16 says so, its
 * 16-bit copy in act16. */
static eng_status proj_after(cuda_state *cs, float *out, const dmat *w, const float *x, int T)
{
    return in16(cs, w) ? gemm(cs, out, w, cs->act16, T) : proj(cs, out, w, x, T);
}

/* The decode rows' plain product (no fused norm): on tensor cores when the state uses them
 * and w fits (a choice per matrix, the same for every row count), else the batch-1 bits.
 * x [nd, cols], out [nd, rows]. */
static int dec_plain(cuda_state *cs, float *out, const dmat *w, const float *x, int nd)
{
    if ((cs->fuse & CUDA_FUSE_TC) && eng_cu_mvtc_ok(w->dt, w->rows, w->cols, ENG_MV_PLAIN)) {
        eng_mvb_args b = {.mv = {.out = out,
                                 .w = w->p,
                                 .dt = w->dt,
                                 .rows = w->rows,
                                 .d = w->cols,
                                 .mode = ENG_MV_PLAIN,
                                 .x = x},
                          .n = nd,
                          .tc = 1};
        return eng_cu_matvec_tc(&b, ST(cs));
    }
    return eng_cu_matvec_batch(out, w->p, w->dt, x, w->rows, w->cols, nd, ST(cs));
}

/* A projection of a reordered batch (eng_state.n_dec): the decode rows [0, n_dec) through
 * the small-batch matrix-vector kernel (each row bitwise as alone), or its fused form dec
 * (its own outputs), then each prompt chunk (the rows of one sequence) through its own cuBLAS
 * product into out, so that a chunk's result does not depend on what else runs in the step.
 * x: the f32 input [n, cols]; x16: the same rows in the weights' type, or NULL (converted here
 * when the weights are 16-bit). Under ENG_PREFILL_HIGH each chunk is split by gemm16 at act16's
 * start, where it would be alone. */
static eng_status bproj(cuda_state *cs, const eng_state *s, float *out, const dmat *w,
                        const float *x, const void *x16, const eng_mvb_args *dec)
{
    int n = s->n, nd = s->n_dec;
    if (nd > 0 && dec)
        K(eng_cu_matvec_batch_fused(dec, ST(cs)));
    else if (nd > 0)
        K(dec_plain(cs, out, w, x, nd));
    if (nd == n) return ENG_OK;
    int split = w->dt != ENG_DT_F32 && cs->split;
    size_t es = w->dt == ENG_DT_F32 ? 4 : 2;
    const void *in = x;
    if (w->dt != ENG_DT_F32 && !split) {
        if (!x16) {
            K(eng_cu_convert((char *)cs->act16 + (size_t)nd * w->cols * es, w->dt,
                             x + (size_t)nd * w->cols, (size_t)(n - nd) * w->cols, ST(cs)));
            x16 = cs->act16;
        }
        in = x16;
    }
    for (int a = nd, b; a < n; a = b) {
        for (b = a + 1; b < n && s->tok_seq[b] == s->tok_seq[a]; b++)
            ;
        /* the first chunk at the buffers' start, as alone; the others through the staging
         * buffers, which start there too */
        float *dst = a == 0 ? out : cs->stage_out;
        eng_status st;
        if (split) {
            st = gemm16(cs, dst, w, x + (size_t)a * w->cols, b - a);
        } else {
            const char *src = (const char *)in + (size_t)a * w->cols * es;
            if (a > 0) {
                K(cudaMemcpyAsync(cs->stage_in, src, (size_t)(b - a) * w->cols * es,
                                  cudaMemcpyDeviceToDevice, cs->st));
                src = cs->stage_in;
            }
            st = gemm(cs, dst, w, src, b - a);
        }
        if (st != ENG_OK) return st;
        if (a > 0)
            K(cudaMemcpyAsync(out + (size_t)a * w->rows, cs->stage_out,
                              (size_t)(b - a) * w->rows * 4, cudaMemcpyDeviceToDevice, cs->st));
    }
    return ENG_OK;
}

static eng_status blas_check(cuda_state *cs, cublasStatus_t b, const char *what)
{
    if (b == CUBLAS_STATUS_SUCCESS) return ENG_OK;
    return eng_fail(ENG_ERR_DEVICE, cs->err, sizeof(cs->err), "cuBLAS: %s failed: %s (%d)", what,
                    cublasGetStatusString(b), (int)b);
}

/* Attention of n >= 2 query tokens at host position pos0 as two batched products per KV head
 * (the query heads of its group side by side), with scores [nq, n, kv] in cs->scores:
 * S = scale K Q^T, causal softmax, O = P V into [nq, n, hd] (cs->qkv, free by now), then back
 * to token rows: in act16 where in16 says so, else in cs->att (proj_after reads them). q is
 * head-major ([nq, n, hd]). Models in f32, and any under ENG_PREFILL_HIGH, keep f32 products;
 * bf16/f16 models use TF32 tensor cores, whose rounding is below the bf16 weights' own. */
static eng_status attention_gemm(const eng_model *m, cuda_state *cs, const float *kc,
                                 const float *vc, const dmat *wo, int n, int pos0)
{
    const eng_config *c = &m->cfg;
    int hd = c->head_dim, nq = m->sh.n_heads, nkv = m->sh.n_kv_heads, group = nq / nkv;
    int kv = pos0 + n, cols = group * n;
    cublasComputeType_t ct =
        wo->dt == ENG_DT_F32 || cs->split ? CUBLAS_COMPUTE_32F : CUBLAS_COMPUTE_32F_FAST_TF32;
    const float scale = 1.0f / sqrtf((float)hd), one = 1.0f, zero = 0.0f;
    eng_status st =
        blas_check(cs,
                   cublasGemmStridedBatchedEx(
                       cs->blas, CUBLAS_OP_T, CUBLAS_OP_N, kv, cols, hd, &scale, kc, CUDA_R_32F,
                       nkv * hd, hd, cs->q, CUDA_R_32F, hd, (long long)cols * hd, &zero, cs->scores,
                       CUDA_R_32F, kv, (long long)cols * kv, nkv, ct, CUBLAS_GEMM_DEFAULT),
                   "attention scores (batched K Q^T)");
    if (st != ENG_OK) return st;
    K(eng_cu_causal_softmax(cs->scores, pos0, nq, n, kv, c->sliding_window, ST(cs)));
    st = blas_check(cs,
                    cublasGemmStridedBatchedEx(cs->blas, CUBLAS_OP_N, CUBLAS_OP_N, hd, cols, kv,
                                               &one, vc, CUDA_R_32F, nkv * hd, hd, cs->scores,
                                               CUDA_R_32F, kv, (long long)cols * kv, &zero, cs->qkv,
                                               CUDA_R_32F, hd, (long long)cols * hd, nkv, ct,
                                               CUBLAS_GEMM_DEFAULT),
                    "attention output (batched P V)");
    if (st != ENG_OK) return st;
    void *dst = in16(cs, wo) ? cs->act16 : (void *)cs->att;
    K(eng_cu_heads_to_rows(dst, dst == cs->act16 ? wo->dt : ENG_DT_F32, cs->qkv, nq, n, hd,
                           ST(cs)));
    return ENG_OK;
}

/* Batched products for long prompts only: below this the attention kernel is as fast. */
#define GEMM_ATTENTION_MIN 64

eng_status cuda_warmup(const eng_model *m, eng_state *s)
{
    /* The first cuBLAS products of a process load their kernels (tens of ms): do that here,
     * at the prefill's batch size, rather than inside the first prompt. The inputs are the
     * zeroed scratch; the outputs are overwritten before they are read. */
    const cuda_weights *w = m->bw;
    cuda_state *cs = s->bs;
    int T = s->max_batch, l = 0;
    while (l < m->cfg.n_layers && !w->layers[l].wqkv.p) /* a device may hold only some layers */
        l++;
    if (T < 2 || l == m->cfg.n_layers) return ENG_OK;
    const cu_layer *L = &w->layers[l];
    eng_status st;
    if ((st = gemm(cs, cs->qkv, &L->wqkv, cs->act16, T)) != ENG_OK ||
        (st = gemm(cs, cs->delta, &L->wo, cs->act16, T)) != ENG_OK ||
        (st = gemm(cs, cs->h13, &L->w13, cs->act16, T)) != ENG_OK ||
        (st = gemm(cs, cs->delta, &L->w2, cs->act16, T)) != ENG_OK)
        return st;
    if (cs->scores && T >= GEMM_ATTENTION_MIN && T <= cs->score_keys) {
        if ((st = attention_gemm(m, cs, cs->kc, cs->vc, &L->wo, T, 0)) != ENG_OK) return st;
    }
    return cuda_wait(cs);
}

static int vec_ok(const dmat *w, const float *x)
{
    return eng_mv_vec_ok(w->p, w->dt == ENG_DT_F32 ? 4 : 2, x, w->cols);
}

/* A fused product's arguments (cuda_kernels.h); normed: x is the fused form of a norm whose
 * partial sums of squares are in cs->ssq. */
static eng_mv_args mv_args(cuda_state *cs, const eng_config *c, float *out, const dmat *w,
                           const float *x, int mode, int normed)
{
    return (eng_mv_args){.out = out,
                         .w = w->p,
                         .dt = w->dt,
                         .rows = w->rows,
                         .d = w->cols,
                         .mode = mode,
                         .x = x,
                         .ssq_in = normed ? cs->ssq : NULL,
                         .nss = cs->nss,
                         .nd = c->dim,
                         .eps = c->norm_eps,
                         .whole = (cs->fuse & CUDA_FUSE_WHOLE) != 0,
                         .xs = (cs->fuse & CUDA_FUSE_XS) != 0,
                         .deep = cs->fuse & CUDA_FUSE_DEEP ? cs->sms : 0};
}

/* The RMSNorm of weight nw before the product w over n rows. Decode: when the last product
 * left xb in the fused form for this norm and w can take it, *fused = 1 and the product
 * completes the norm; otherwise the norm kernel runs (adding a pending delta), writing the
 * product's input copy when batched. */
static eng_status norm_before(const eng_model *m, cuda_state *cs, const float *nw, const dmat *w,
                              int n, int batched, int *fused)
{
    *fused = n == 1 && cs->fused_nw == nw && vec_ok(w, cs->xb);
    cs->fused_nw = NULL;
    if (*fused) return ENG_OK;
    K(eng_cu_add_rmsnorm(cs->x, cs->pending ? cs->delta : NULL, cs->pending_bias, nw,
                         m->cfg.norm_eps, cs->xb, batched ? in16(cs, w) : NULL, w->dt, n,
                         m->cfg.dim, ST(cs)));
    cs->pending = 0;
    cuda_mark(cs, CUDA_ST_NORM);
    return ENG_OK;
}

/* The decode rows of a batch through the fused products (bfuse in cuda_layer): row r's
 * arguments at row offsets, its norm partials at ssq + r D. */
static eng_mvb_args bmv_args(cuda_state *cs, const eng_state *s, const eng_config *c, float *out,
                             const dmat *w, const float *x, int mode, int normed)
{
    return (eng_mvb_args){.mv = mv_args(cs, c, out, w, x, mode, normed),
                          .n = s->n_dec,
                          .ss_stride = c->dim,
                          .scale = cs->bscale,
                          .tc = (cs->fuse & CUDA_FUSE_TC) != 0};
}

/* The RMSNorm of weight nw before w in a batch whose decode rows take the fused products:
 * *normed = 1 when the decode rows are in nw's fused form (the products complete their norm)
 * and only the prompt rows run the norm kernel; else every row does. */
static eng_status bnorm(const eng_model *m, const eng_state *s, const float *nw, const dmat *w,
                        int *normed)
{
    cuda_state *cs = s->bs;
    int D = m->cfg.dim, r0 = 0;
    *normed = cs->fused_nw == nw;
    cs->fused_nw = NULL;
    if (*normed) r0 = s->n_dec;
    if (r0 == s->n) return ENG_OK;
    size_t es = w->dt == ENG_DT_F32 ? 4 : 2, off = (size_t)r0 * D;
    void *o16 = in16(cs, w) ? (char *)cs->act16 + off * es : NULL;
    K(eng_cu_add_rmsnorm(cs->x + off, cs->pending ? cs->delta + off : NULL, cs->pending_bias, nw,
                         m->cfg.norm_eps, cs->xb + off, o16, w->dt, s->n - r0, D, ST(cs)));
    cs->pending = 0;
    cuda_mark(cs, CUDA_ST_NORM);
    return ENG_OK;
}

/* After a fused residual product of a batch's decode rows: they hold the fused form of nw;
 * the prompt rows' delta (+ bias) is pending. */
static void bresid_done(cuda_state *cs, const eng_state *s, const float *nw, const dmat *w,
                        const float *bias)
{
    cs->fused_nw = nw;
    cs->nss = eng_mv_parts(w->rows, w->cols, w->dt == ENG_DT_F32 ? 4 : 2);
    cs->pending = s->n_dec < s->n;
    cs->pend_row0 = s->n_dec;
    cs->pending_bias = bias;
}

/* The row-parallel partial sums of all ranks, added (device buffers or through the host). */
static eng_status reduce(const eng_model *m, cuda_state *cs, const eng_coll *coll, int n)
{
    if (!coll || coll->size <= 1 || !coll->allreduce) return ENG_OK;
    size_t count = (size_t)n * m->cfg.dim;
    eng_status st;
    if (coll->device_buffers)
        return coll->allreduce(coll->ctx, cs->delta, count, ENG_ELEM_F32, ENG_MEM_DEVICE, cs->st);
    K(cudaMemcpyAsync(cs->host_red, cs->delta, count * 4, cudaMemcpyDeviceToHost, cs->st));
    if ((st = cuda_wait(cs)) != ENG_OK) return st;
    if ((st = coll->allreduce(coll->ctx, cs->host_red, count, ENG_ELEM_F32, ENG_MEM_HOST, NULL)) !=
        ENG_OK)
        return st;
    K(cudaMemcpyAsync(cs->delta, cs->host_red, count * 4, cudaMemcpyHostToDevice, cs->st));
    return ENG_OK;
}

eng_status cuda_set_inputs(const eng_model *m, eng_state *s)
{
    (void)m;
    cuda_state *cs = s->bs;
    cs->err[0] = 0;
    CU_BIND(cs);
    /* The previous step's copies out of in_h are done: every call ends with a wait. */
    memcpy(cs->in_h, s->tokens, (size_t)s->n * sizeof(int));
    cs->in_h[s->max_batch] = s->pos;
    memcpy(&cs->in_h[s->max_batch + 1], &s->draw, 4);
    K(cudaMemcpyAsync(cs->in_d, cs->in_h, (size_t)(s->max_batch + 2) * 4, cudaMemcpyHostToDevice,
                      cs->st));
    if (!s->tok_pos) return ENG_OK;
    /* A batch of several sequences: positions, slots and the wanted rows, in one copy. */
    int B = s->max_batch;
    memcpy(cs->bin_h, s->tok_pos, (size_t)s->n * sizeof(int));
    memcpy(cs->bin_h + B, s->tok_seq, (size_t)s->n * sizeof(int));
    memcpy(cs->bin_h + 2 * B, s->out_row, (size_t)s->n_out * sizeof(int));
    size_t words = (size_t)3 * B;
    if (s->row_temp) { /* sampling on the device: each row's settings and draw */
        memcpy(cs->bin_h + 3 * B, s->row_temp, (size_t)s->n_out * 4);
        memcpy(cs->bin_h + 4 * B, s->row_top_p, (size_t)s->n_out * 4);
        memcpy(cs->bin_h + 5 * B, s->row_draw, (size_t)s->n_out * 4);
        words = (size_t)6 * B;
    }
    K(cudaMemcpyAsync(cs->bin_d, cs->bin_h, words * 4, cudaMemcpyHostToDevice, cs->st));
    /* ENG_CUDA_PROFILE: batched steps of decode rows only (not prompt chunks), with events */
    if (cs->prof && s->n_dec == s->n) {
        cs->prof_on = 1;
        cs->prof_n = 0;
        cuda_mark(cs, 0);
    }
    return ENG_OK;
}

/* RoPE, cache writes and attention of a batch of several sequences (each token at its own
 * position in its own slot), layer l. */
static eng_status batch_attention(const eng_model *m, eng_state *s, int l, eng_rope_args *ra,
                                  eng_attn_args *aa)
{
    cuda_state *cs = s->bs;
    size_t layer = (size_t)s->ctx_len * m->sh.n_kv_heads * m->cfg.head_dim;
    eng_batch_args b = {.pos = cs->bin_d,
                        .seq = cs->bin_d + s->max_batch,
                        .slot_stride = (size_t)m->cfg.n_layers * layer};
    K(eng_cu_rope_qkv_batch(ra, &b, ST(cs)));
    /* The key range in chunks of a size fixed per state (not per batch): a token's softmax
     * is then summed the same way whatever else is in the batch, and the splits of the
     * longest context fill the GPU. */
    int chunk = (s->ctx_len + cs->bsplit_max - 1) / cs->bsplit_max;
    chunk = chunk < 64 ? 64 : (chunk + 31) / 32 * 32;
    aa->chunk = chunk;
    /* Every split of the context, also those past the tokens' positions (they end at once and
     * the merge skips them): nothing here depends on the positions, so one graph per row
     * count serves every step. */
    aa->nsplit = (s->ctx_len + chunk - 1) / chunk;
    aa->part = cs->bpart;
    (void)l;
    K(eng_cu_attention_batch(aa, &b, ST(cs)));
    return ENG_OK;
}

eng_status cuda_embed(const eng_model *m, eng_state *s)
{
    const cuda_weights *w = m->bw;
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    K(eng_cu_embed(cs->x, w->embed.p, w->embed.dt, cs->in_d, s->n, m->cfg.dim, ST(cs)));
    cuda_mark(cs, CUDA_ST_EMBED);
    cs->pending = 0;
    cs->pend_row0 = 0;
    cs->fused_nw = NULL;
    return ENG_OK;
}

eng_status cuda_layer(const eng_model *m, eng_state *s, int l, const eng_coll *coll)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *sh = &m->sh;
    const cuda_weights *w = m->bw;
    const cu_layer *L = &w->layers[l];
    cuda_state *cs = s->bs;
    int n = s->n, hd = c->head_dim, nq = sh->n_heads, nkv = sh->n_kv_heads;
    CU_BIND(cs);
    size_t cache_layer = (size_t)s->ctx_len * nkv * hd;
    const int *pos_d = cs->in_d + s->max_batch;
    eng_status st;
    int fused;
    /* Decode without a row-parallel sum: o_proj and down add into x themselves and leave xb
     * in the fused form of the next norm (cs->fused_nw). */
    int resid = (cs->fuse & CUDA_FUSE_NORM) && n == 1 && !s->tok_pos &&
                !(coll && coll->size > 1 && coll->allreduce);
    const float *next_nw = NULL; /* the norm after this layer, when this device runs it */
    if (l + 1 < c->n_layers)
        next_nw = w->layers[l + 1].wqkv.p ? w->layers[l + 1].att_norm : NULL;
    else if (m->parts & ENG_PART_HEAD)
        next_nw = w->final_norm;
    else
        next_nw = cs->ones; /* the norm is the next segment's: its partials cross with x */

    int batched = n > 1;
    /* A batch's decode rows through the fused products, as the batch-1 decode step: the same
     * conditions (both fusions and CUDA_FUSE_BATCH on, no row-parallel sum, 16-byte loads), fixed
     * per state so a row takes this path alone or batched. */
    int want = CUDA_FUSE_NORM | CUDA_FUSE_SWIGLU | CUDA_FUSE_BATCH;
    int bfuse = s->tok_pos && s->n_dec > 0 && (cs->fuse & want) == want &&
                !(coll && coll->size > 1 && coll->allreduce) && vec_ok(&L->wqkv, cs->xb) &&
                vec_ok(&L->wo, cs->att) && vec_ok(&L->w13, cs->xb) && vec_ok(&L->w2, cs->hb) &&
                L->w13.rows % 2 == 0;
    int bnormed = 0;
    eng_mvb_args dec;
    /* 16-bit copies of the activations for cuBLAS: prompt rows only (decode rows read f32) */
    int want16 = batched && (!s->tok_pos || s->n_dec < n);
    /* long prompts: attention as batched products (scores fit, keys up to score_keys) */
    /* Long prompts of one sequence only: a batch of several has no common position. */
    int agemm = batched && !s->tok_pos && cs->scores && n >= GEMM_ATTENTION_MIN &&
                s->pos + n <= cs->score_keys;
    if (bfuse) {
        if ((st = bnorm(m, s, L->att_norm, &L->wqkv, &bnormed)) != ENG_OK) return st;
        fused = 0;
    } else if ((st = norm_before(m, cs, L->att_norm, &L->wqkv, n, want16, &fused)) != ENG_OK) {
        return st;
    }
    eng_rope_args ra = {.qkv = cs->qkv,
                        .bias = L->bqkv,
                        .q_norm = L->q_norm,
                        .k_norm = L->k_norm,
                        .inv_freq = w->inv_freq,
                        .q = cs->q,
                        .kc = cs->kc + (size_t)l * cache_layer,
                        .vc = cs->vc + (size_t)l * cache_layer,
                        .pos = pos_d,
                        .n = n,
                        .nq = nq,
                        .nkv = nkv,
                        .hd = hd,
                        .interleaved = c->rope_style == ENG_ROPE_INTERLEAVED,
                        .eps = c->norm_eps,
                        .heads_first = agemm};
    /* Decode: RoPE and the cache write in the product's epilogue where it can take them (a
     * batched step's rows have their own positions and slots: its RoPE kernel does them). */
    int rope_in = fused && !s->tok_pos && (cs->fuse & CUDA_FUSE_ROPE) && eng_mv_rope_ok(&ra);
    if (fused) {
        eng_mv_args a =
            mv_args(cs, c, cs->qkv, &L->wqkv, cs->xb, rope_in ? ENG_MV_ROPE : ENG_MV_PLAIN, 1);
        a.rope = ra;
        K(eng_cu_matvec_fused(&a, ST(cs)));
        st = ENG_OK;
    } else if (s->tok_pos) {
        dec = bmv_args(cs, s, c, cs->qkv, &L->wqkv, cs->xb, ENG_MV_PLAIN, 1);
        st = bproj(cs, s, cs->qkv, &L->wqkv, cs->xb, in16(cs, &L->wqkv), bnormed ? &dec : NULL);
    } else if (batched) {
        st = proj_after(cs, cs->qkv, &L->wqkv, cs->xb, n);
    } else {
        st = proj(cs, cs->qkv, &L->wqkv, cs->xb, n);
    }
    if (st != ENG_OK) return st;
    cuda_mark(cs, CUDA_ST_QKV);
    if (!s->tok_pos && !rope_in) K(eng_cu_rope_qkv(&ra, ST(cs)));
    cuda_mark(cs, CUDA_ST_ROPE);
    if (agemm) {
        if ((st = attention_gemm(m, cs, ra.kc, ra.vc, &L->wo, n, s->pos)) != ENG_OK ||
            (st = proj_after(cs, cs->delta, &L->wo, cs->att, n)) != ENG_OK)
            return st;
    } else {
        int tiles = n == 1 && !s->tok_pos && (cs->fuse & CUDA_FUSE_TILES) ? cs->att_tiles : 0;
        int head = n == 1 && cuda_head_step(cs, s);
        if (head) tiles = 4; /* its split plan: chunks of a multiple of 128 keys */
        eng_attn_args aa = {.q = cs->q,
                            .kc = ra.kc,
                            .vc = ra.vc,
                            .out = cs->att,
                            .part = cs->part,
                            .count = (cs->fuse & CUDA_FUSE_MERGE) && n == 1 ? cs->att_count : NULL,
                            .pos = pos_d,
                            .n = n,
                            .nq = nq,
                            .nkv = nkv,
                            .hd = hd,
                            .window = c->sliding_window,
                            .nsplit = n != 1  ? 1
                                      : head  ? cs->nsplit_head
                                      : tiles ? cs->nsplit_tiles
                                              : cs->nsplit,
                            .tiles = tiles,
                            .qhead = head,
                            .chunk = cs->chunk,
                            .scale = 1.0f / sqrtf((float)hd)};
        if (s->tok_pos) {
            if ((st = batch_attention(m, s, l, &ra, &aa)) != ENG_OK) return st;
        } else {
            K(eng_cu_attention(&aa, ST(cs)));
        }
        cuda_mark(cs, CUDA_ST_ATTN);
        if (resid && vec_ok(&L->wo, cs->att)) {
            eng_mv_args a = mv_args(cs, c, cs->xb, &L->wo, cs->att, ENG_MV_RESID, 0);
            a.bias = L->bo;
            a.res = cs->x;
            a.nw_out = L->ffn_norm;
            a.ssq_out = cs->ssq;
            K(eng_cu_matvec_fused(&a, ST(cs)));
            cs->fused_nw = L->ffn_norm;
            cs->nss = eng_mv_parts(a.rows, a.d, L->wo.dt == ENG_DT_F32 ? 4 : 2);
            cuda_mark(cs, CUDA_ST_WO);
        } else if (bfuse) {
            dec = bmv_args(cs, s, c, cs->xb, &L->wo, cs->att, ENG_MV_RESID, 0);
            dec.mv.bias = L->bo;
            dec.mv.res = cs->x;
            dec.mv.nw_out = L->ffn_norm;
            dec.mv.ssq_out = cs->ssq;
            if ((st = bproj(cs, s, cs->delta, &L->wo, cs->att, NULL, &dec)) != ENG_OK) return st;
            bresid_done(cs, s, L->ffn_norm, &L->wo, L->bo);
            cuda_mark(cs, CUDA_ST_WO);
        } else {
            st = s->tok_pos ? bproj(cs, s, cs->delta, &L->wo, cs->att, NULL, NULL)
                            : proj(cs, cs->delta, &L->wo, cs->att, n);
            if (st != ENG_OK) return st;
            cuda_mark(cs, CUDA_ST_WO);
        }
    }
    if (!cs->fused_nw) {
        if ((st = reduce(m, cs, coll, n)) != ENG_OK) return st;
        cs->pending = 1;
        cs->pending_bias = L->bo;
    }
    if (bfuse) {
        if ((st = bnorm(m, s, L->ffn_norm, &L->w13, &bnormed)) != ENG_OK) return st;
        fused = 0;
    } else if ((st = norm_before(m, cs, L->ffn_norm, &L->w13, n, want16, &fused)) != ENG_OK) {
        return st;
    }
    if (bfuse && bnormed) {
        /* decode rows: norm and SwiGLU in the product (into hb); prompt rows: cuBLAS into h13,
         * then the SwiGLU kernel on their rows */
        int nd = s->n_dec, F = sh->ffn;
        dec = bmv_args(cs, s, c, cs->hb, &L->w13, cs->xb, ENG_MV_SWIGLU, 1);
        dec.mv.bias = L->b13;
        if ((st = bproj(cs, s, cs->h13, &L->w13, cs->xb, in16(cs, &L->w13), &dec)) != ENG_OK)
            return st;
        cuda_mark(cs, CUDA_ST_W13);
        if (nd < n) {
            size_t es = L->w2.dt == ENG_DT_F32 ? 4 : 2;
            void *o16 = in16(cs, &L->w2) ? (char *)cs->act16 + (size_t)nd * F * es : NULL;
            K(eng_cu_swiglu(cs->h13 + (size_t)nd * 2 * F, L->b13, cs->hb + (size_t)nd * F, o16,
                            L->w2.dt, n - nd, F, ST(cs)));
            cuda_mark(cs, CUDA_ST_SWIGLU);
        }
    } else if ((cs->fuse & CUDA_FUSE_SWIGLU) && n == 1 && !s->tok_pos && vec_ok(&L->w13, cs->xb) &&
               L->w13.rows % 2 == 0) {
        /* decode: SwiGLU in the gate/up product's epilogue */
        eng_mv_args a = mv_args(cs, c, cs->hb, &L->w13, cs->xb, ENG_MV_SWIGLU, fused);
        a.bias = L->b13;
        K(eng_cu_matvec_fused(&a, ST(cs)));
        cuda_mark(cs, CUDA_ST_W13);
    } else {
        if (fused) {
            eng_mv_args a = mv_args(cs, c, cs->h13, &L->w13, cs->xb, ENG_MV_PLAIN, 1);
            K(eng_cu_matvec_fused(&a, ST(cs)));
            st = ENG_OK;
        } else if (s->tok_pos) {
            st = bproj(cs, s, cs->h13, &L->w13, cs->xb, in16(cs, &L->w13), NULL);
        } else if (batched) {
            st = proj_after(cs, cs->h13, &L->w13, cs->xb, n);
        } else {
            st = proj(cs, cs->h13, &L->w13, cs->xb, n);
        }
        if (st != ENG_OK) return st;
        cuda_mark(cs, CUDA_ST_W13);
        K(eng_cu_swiglu(cs->h13, L->b13, cs->hb, want16 ? in16(cs, &L->w2) : NULL, L->w2.dt, n,
                        sh->ffn, ST(cs)));
        cuda_mark(cs, CUDA_ST_SWIGLU);
    }
    if (resid && next_nw && vec_ok(&L->w2, cs->hb)) {
        eng_mv_args a = mv_args(cs, c, cs->xb, &L->w2, cs->hb, ENG_MV_RESID, 0);
        a.bias = L->b2;
        a.res = cs->x;
        a.nw_out = next_nw;
        a.ssq_out = cs->ssq;
        K(eng_cu_matvec_fused(&a, ST(cs)));
        cs->fused_nw = next_nw;
        cs->nss = eng_mv_parts(a.rows, a.d, L->w2.dt == ENG_DT_F32 ? 4 : 2);
        cuda_mark(cs, CUDA_ST_W2);
        return ENG_OK;
    }
    if (bfuse && bnormed && next_nw) {
        dec = bmv_args(cs, s, c, cs->xb, &L->w2, cs->hb, ENG_MV_RESID, 0);
        dec.mv.bias = L->b2;
        dec.mv.res = cs->x;
        dec.mv.nw_out = next_nw;
        dec.mv.ssq_out = cs->ssq;
        if ((st = bproj(cs, s, cs->delta, &L->w2, cs->hb, in16(cs, &L->w2), &dec)) != ENG_OK)
            return st;
        bresid_done(cs, s, next_nw, &L->w2, L->b2);
        cuda_mark(cs, CUDA_ST_W2);
        return ENG_OK;
    }
    cs->pend_row0 = 0; /* the delta below is every row's */
    if (s->tok_pos)
        st = bproj(cs, s, cs->delta, &L->w2, cs->hb, in16(cs, &L->w2), NULL);
    else if (batched)
        st = proj_after(cs, cs->delta, &L->w2, cs->hb, n);
    else
        st = proj(cs, cs->delta, &L->w2, cs->hb, n);
    if (st != ENG_OK) return st;
    cuda_mark(cs, CUDA_ST_W2);
    if ((st = reduce(m, cs, coll, n)) != ENG_OK) return st;
    cs->pending = 1;
    cs->pending_bias = L->b2;
    return ENG_OK;
}

eng_status cuda_flush(const eng_model *m, eng_state *s)
{
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    if (!cs->pending) return ENG_OK;
    /* The norm's output is scratch here: only the add into x matters. */
    const cuda_weights *w = m->bw;
    size_t off = (size_t)cs->pend_row0 * m->cfg.dim; /* the rows with a pending delta */
    K(eng_cu_add_rmsnorm(cs->x + off, cs->delta + off, cs->pending_bias, w->final_norm,
                         m->cfg.norm_eps, cs->xb + off, NULL, 0, s->n - cs->pend_row0, m->cfg.dim,
                         ST(cs)));
    cs->pending = 0;
    cs->pend_row0 = 0;
    return ENG_OK;
}

eng_status cuda_logits(const eng_model *m, eng_state *s)
{
    const cuda_weights *w = m->bw;
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    if (s->out_row) {        /* a batch: the flagged rows, normed, packed into delta, classified */
        cs->fused_nw = NULL; /* x is complete: the norm below recomputes xb */
        int r0 = cs->pending ? cs->pend_row0 : s->n, D = m->cfg.dim;
        if (r0 > 0) /* rows with nothing pending (decode rows after fused products) */
            K(eng_cu_add_rmsnorm(cs->x, NULL, NULL, w->final_norm, m->cfg.norm_eps, cs->xb, NULL, 0,
                                 r0, D, ST(cs)));
        if (r0 < s->n)
            K(eng_cu_add_rmsnorm(cs->x + (size_t)r0 * D, cs->delta + (size_t)r0 * D,
                                 cs->pending_bias, w->final_norm, m->cfg.norm_eps,
                                 cs->xb + (size_t)r0 * D, NULL, 0, s->n - r0, D, ST(cs)));
        cs->pending = 0;
        cs->pend_row0 = 0;
        K(eng_cu_gather_rows(cs->delta, cs->xb, cs->bin_d + 2 * s->max_batch, s->n_out, m->cfg.dim,
                             ST(cs)));
        cs->logit_rows = s->n_out;
        cuda_mark(cs, CUDA_ST_NORM);
        /* each row as alone: dec_plain (16 rows per pass over the weights) */
        K(dec_plain(cs, cs->logits, &w->cls, cs->delta, s->n_out));
        cuda_mark(cs, CUDA_ST_CLS);
        return ENG_OK;
    }
    int n = s->n, D = m->cfg.dim, first = s->all_logits ? 0 : n - 1, rows = n - first;
    size_t off = (size_t)first * D;
    if (n == 1) { /* decode: the final norm may be fused into the classifier */
        int fused;
        eng_status st = norm_before(m, cs, w->final_norm, &w->cls, 1, 0, &fused);
        if (st != ENG_OK) return st;
        cs->logit_rows = 1;
        if (fused) {
            eng_mv_args a = mv_args(cs, &m->cfg, cs->logits, &w->cls, cs->xb, ENG_MV_PLAIN, 1);
            K(eng_cu_matvec_fused(&a, ST(cs)));
        } else if ((st = proj(cs, cs->logits, &w->cls, cs->xb, 1)) != ENG_OK) {
            return st;
        }
        cuda_mark(cs, CUDA_ST_CLS);
        return ENG_OK;
    }
    cs->fused_nw = NULL;
    K(eng_cu_add_rmsnorm(cs->x + off, cs->pending ? cs->delta + off : NULL, cs->pending_bias,
                         w->final_norm, m->cfg.norm_eps, cs->xb + off, NULL, 0, rows, D, ST(cs)));
    cs->pending = 0; /* rows before `first` are not needed again */
    cs->logit_rows = rows;
    cuda_mark(cs, CUDA_ST_NORM);
    eng_status st = proj(cs, cs->logits, &w->cls, cs->xb + off, rows);
    cuda_mark(cs, CUDA_ST_CLS);
    return st;
}

eng_status cuda_sample(const eng_model *m, eng_state *s, float temperature, float top_p)
{
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    const float *last = cs->logits + (size_t)(cs->logit_rows - 1) * m->cfg.vocab_size;
    const float *draw = (const float *)(cs->in_d + s->max_batch + 1);
    K(eng_cu_sample(last, m->cfg.vocab_size, temperature, top_p, draw, cs->next_d, cs->smp,
                    ST(cs)));
    cs->cap_sampled = 1, cs->cap_temp = temperature, cs->cap_top_p = top_p;
    cuda_mark(cs, CUDA_ST_SAMPLE);
    return ENG_OK;
}

eng_status cuda_sample_batch(const eng_model *m, eng_state *s)
{
    cuda_state *cs = s->bs;
    CU_BIND(cs);
    int B = s->max_batch;
    const float *f = (const float *)cs->bin_d;
    K(eng_cu_sample_rows(cs->logits, s->n_out, m->cfg.vocab_size, f + 3 * B, f + 4 * B, f + 5 * B,
                         cs->ids_d, cs->smp, ST(cs)));
    cuda_mark(cs, CUDA_ST_SAMPLE);
    return ENG_OK;
}
