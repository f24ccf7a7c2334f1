/* SPDX-License-Identifier: MIT */
/* The CUDA backend's weights: this rank's shard uploaded once into one device allocation,
 * matrices in their stored type (bf16/f16/f32), q/k/v and gate/up merged into one matrix
 * each; norms and biases as f32. Uploads go through two pinned buffers so that reading the
 * mapped file overlaps the copy to the GPU. */
#include "cuda.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define STAGING (64u << 20)
#define ALIGN 256
#define LOG_EVERY (1ull << 30)

eng_status cu_fail(char *err, size_t errlen, const char *what, int code)
{
    /* cuBLAS statuses are small positive numbers too; the call's name tells them apart. */
    const char *msg =
        strstr(what, "cublas") ? "cuBLAS error" : cudaGetErrorString((cudaError_t)code);
    return eng_fail(ENG_ERR_DEVICE, err, errlen, "CUDA: %s failed: %s (%d)", what, msg, code);
}

eng_status cu_bind(int dev, char *err, size_t errlen)
{
    int cur = -1;
    int e = (int)cudaGetDevice(&cur);
    if (e == 0 && cur == dev) return ENG_OK;
    e = (int)cudaSetDevice(dev);
    return e ? cu_fail(err, errlen, "cudaSetDevice", e) : ENG_OK;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void logf_(cuda_weights *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(cuda_weights *w, const char *fmt, ...)
{
    if (!w->log) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    w->log(w->log_ctx, line);
}

static size_t up(size_t b)
{
    return (b + ALIGN - 1) / ALIGN * ALIGN;
}

static void *take(cuda_weights *w, size_t bytes)
{
    void *p = w->arena + w->arena_used;
    w->arena_used += up(bytes);
    return p;
}

eng_status cuda_model_init(eng_model *m, const eng_load_params *p, char *err, size_t errlen)
{
    const eng_config *c = &m->cfg;
    if (c->head_dim > ENG_CUDA_MAX_HD || (c->head_dim & 1))
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                        "--device cuda: head_dim %d unsupported (even, at most %d)", c->head_dim,
                        ENG_CUDA_MAX_HD);
    cuda_weights *w = calloc(1, sizeof(*w));
    if (w) w->layers = calloc((size_t)c->n_layers, sizeof(cu_layer));
    if (!w || !w->layers) {
        free(w);
        return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    }
    m->bw = w;
    w->dev = p->gpu;
    w->log = p->log;
    w->log_ctx = p->log_ctx;
    CU_CHECK(cudaSetDevice(w->dev), err, errlen);
    CU_CHECK(cudaGetDeviceProperties(&w->prop, w->dev), err, errlen);
    for (int i = 0; i < 2; i++) {
        CU_CHECK(cudaMallocHost(&w->staging[i], STAGING), err, errlen);
        CU_CHECK(cudaEventCreateWithFlags(&w->staged[i], cudaEventDisableTiming), err, errlen);
    }
    return ENG_OK;
}

/* Device bytes of one tensor's shard [nr, nc] in type dt, rounded to the arena's alignment. */
static size_t msize(int64_t nr, int64_t nc, eng_dtype dt)
{
    return up((size_t)(nr * nc) * eng_dt_size(dt));
}

/* The whole shard's device bytes, from the sources' shapes and types. */
static size_t plan(const eng_model *m, const eng_source *src)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *s = &m->sh;
    size_t D = (size_t)c->dim, hd = (size_t)c->head_dim, nq = (size_t)s->n_heads * hd,
           nk = (size_t)s->n_kv_heads * hd, F = (size_t)s->ffn;
    size_t total = up(D * 4) + up(hd * 2);
    int head = m->parts & ENG_PART_HEAD;
    if ((m->parts & ENG_PART_EMBED) || (head && c->tied_embeddings))
        total += msize(c->vocab_size, c->dim, src->embed.dt);
    if (head && !c->tied_embeddings) total += msize(c->vocab_size, c->dim, src->cls.dt);
    for (int l = 0; l < c->n_layers; l++) {
        const eng_tref *t = src->layers + (size_t)l * ENG_T_LAYER_COUNT;
        total += msize((int64_t)(nq + 2 * nk), c->dim, t[ENG_T_WQ].dt);
        total += msize(c->dim, (int64_t)nq, t[ENG_T_WO].dt);
        total += msize(2 * (int64_t)F, c->dim, t[ENG_T_W1].dt);
        total += msize(c->dim, (int64_t)F, t[ENG_T_W2].dt);
        total += 4 * up(D * 4) + up((nq + 2 * nk) * 4) + 2 * up(hd * 4) + up(2 * F * 4);
        /* biases are staged in their own slots before being merged */
        if (c->has_qkv_bias) total += up(nq * 4) + 2 * up(nk * 4);
        if (c->has_mlp_bias) total += 2 * up(F * 4);
    }
    return total;
}

static void progress(cuda_weights *w, size_t bytes, int last)
{
    w->uploaded += bytes;
    if (!last && w->uploaded - w->logged < LOG_EVERY) return;
    w->logged = w->uploaded;
    double dt = now_s() - w->t0;
    logf_(w, "loading to GPU %d: %.2f of %.2f GB (%.2f GB/s)", w->dev, (double)w->uploaded / 1e9,
          (double)w->arena_size / 1e9, dt > 0 ? (double)w->uploaded / 1e9 / dt : 0.0);
}

/* Rows [r0, r0+nr) x cols [c0, c0+nc) of t, stored type kept, to dst (device). */
static eng_status put_rows(cuda_weights *w, char *dst, const eng_tref *t, int64_t r0, int64_t nr,
                           int64_t c0, int64_t nc, char *err, size_t errlen)
{
    size_t row = (size_t)nc * eng_dt_size(t->dt);
    int64_t per = (int64_t)(STAGING / row);
    if (per < 1)
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen, "tensor %s: rows of %zu bytes too long",
                        t->name, row);
    for (int64_t r = 0; r < nr; r += per) {
        int64_t k = nr - r < per ? nr - r : per;
        int b = w->next_buf;
        w->next_buf ^= 1;
        CU_CHECK(cudaEventSynchronize(w->staged[b]), err, errlen); /* its last copy is done */
        eng_tref_copy(t, r0 + r, k, c0, nc, w->staging[b]);
        CU_CHECK(cudaMemcpyAsync(dst + (size_t)r * row, w->staging[b], (size_t)k * row,
                                 cudaMemcpyHostToDevice, 0),
                 err, errlen);
        CU_CHECK(cudaEventRecord(w->staged[b], 0), err, errlen);
    }
    progress(w, (size_t)nr * row, 0);
    return ENG_OK;
}

/* A shape-checked matrix shard into a fresh dmat; merged matrices call it per part. */
static eng_status put_mat(cuda_weights *w, dmat *d, int64_t row_off, const eng_tref *t,
                          int64_t rows, int64_t cols, int64_t r0, int64_t nr, int64_t c0,
                          int64_t nc, const char *what, char *err, size_t errlen)
{
    eng_status st = eng_tref_expect(t, rows, cols, what, err, errlen);
    if (st != ENG_OK) return st;
    if (d->p && (int)t->dt != d->dt)
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                        "tensor %s: merged matrices must share one stored type", t->name);
    d->dt = t->dt;
    char *dst = (char *)d->p + (size_t)row_off * (size_t)nc * eng_dt_size(t->dt);
    return put_rows(w, dst, t, r0, nr, c0, nc, err, errlen);
}

/* A vector [c0, c0+nc) of t as f32 (NULL when optional and absent). */
static eng_status put_vec(cuda_weights *w, float **out, const eng_tref *t, int optional,
                          int64_t cols, int64_t c0, int64_t nc, const char *what, char *err,
                          size_t errlen)
{
    *out = NULL;
    if (!t->data && optional) return ENG_OK;
    eng_status st = eng_tref_expect(t, 1, cols, what, err, errlen);
    if (st != ENG_OK) return st;
    float *tmp = malloc((size_t)nc * 4);
    if (!tmp) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    for (int64_t i = 0; i < nc; i++) {
        const char *p = (const char *)t->data + (size_t)(c0 + i) * eng_dt_size(t->dt);
        uint16_t h;
        if (t->dt == ENG_DT_F32) {
            memcpy(&tmp[i], p, 4);
        } else {
            memcpy(&h, p, 2);
            tmp[i] = t->dt == ENG_DT_BF16 ? eng_bf16_to_f32(h) : eng_f16_to_f32(h);
        }
    }
    *out = take(w, (size_t)nc * 4);
    int e = cudaMemcpy(*out, tmp, (size_t)nc * 4, cudaMemcpyHostToDevice);
    free(tmp);
    if (e) return cu_fail(err, errlen, "cudaMemcpy", e);
    return ENG_OK;
}

eng_status cuda_upload_globals(eng_model *m, const eng_source *src, char *err, size_t errlen)
{
    cuda_weights *w = m->bw;
    const eng_config *c = &m->cfg;
    eng_status st;
    CU_CHECK(cudaSetDevice(w->dev), err, errlen);
    w->arena_size = plan(m, src);
    size_t free_b = 0, total_b = 0;
    cudaMemGetInfo(&free_b, &total_b);
    if (cudaMalloc((void **)&w->arena, w->arena_size) != cudaSuccess) {
        cudaGetLastError();
        return eng_fail(ENG_ERR_NOMEM, err, errlen,
                        "out of device memory: the weights need %.2f GiB, GPU %d (%s) has %.2f "
                        "GiB free of %.2f",
                        (double)w->arena_size / 1073741824.0, w->dev, w->prop.name,
                        (double)free_b / 1073741824.0, (double)total_b / 1073741824.0);
    }
    m->owned_bytes = w->arena_size;
    w->t0 = now_s();
    int64_t V = c->vocab_size, D = c->dim;
    /* A segment of a layer-mapped model holds the embedding (first) or the head (last). */
    int head = m->parts & ENG_PART_HEAD;
    if ((m->parts & ENG_PART_EMBED) || (head && c->tied_embeddings)) {
        w->embed = (dmat){.rows = (int)V, .cols = (int)D, .dt = src->embed.dt};
        w->embed.p = take(w, (size_t)(V * D) * eng_dt_size(src->embed.dt));
        st =
            put_mat(w, &w->embed, 0, &src->embed, V, D, 0, V, 0, D, "token embedding", err, errlen);
        if (st != ENG_OK) return st;
    }
    if (head && c->tied_embeddings) {
        w->cls = w->embed;
    } else if (head) {
        w->cls = (dmat){.rows = (int)V, .cols = (int)D, .dt = src->cls.dt};
        w->cls.p = take(w, (size_t)(V * D) * eng_dt_size(src->cls.dt));
        st = put_mat(w, &w->cls, 0, &src->cls, V, D, 0, V, 0, D, "lm_head", err, errlen);
        if (st != ENG_OK) return st;
    }
    /* The final norm everywhere: cuda_flush's add into x runs a norm (output unused). */
    st = put_vec(w, &w->final_norm, &src->final_norm, 0, D, 0, D, "final norm", err, errlen);
    if (st != ENG_OK) return st;
    int half = c->head_dim / 2;
    w->inv_freq = take(w, (size_t)half * 4);
    CU_CHECK(cudaMemcpy(w->inv_freq, m->rope_inv_freq, (size_t)half * 4, cudaMemcpyHostToDevice),
             err, errlen);
    return ENG_OK;
}

eng_status cuda_upload_layer(eng_model *m, int l, const eng_tref *tr, char *err, size_t errlen)
{
    cuda_weights *w = m->bw;
    const eng_config *c = &m->cfg;
    const eng_shard_info *s = &m->sh;
    cu_layer *L = &w->layers[l];
    CU_CHECK(cudaSetDevice(w->dev), err, errlen);
    int64_t D = c->dim, hd = c->head_dim, Q = (int64_t)c->n_heads * hd,
            KVd = (int64_t)c->n_kv_heads * hd, F = c->hidden_dim;
    int64_t q0 = s->head0 * hd, nq = s->n_heads * hd, k0 = s->kv_head0 * hd,
            nk = s->n_kv_heads * hd, f0 = s->ffn0, nf = s->ffn;
    int qb = !c->has_qkv_bias, ob = !c->has_o_bias, fb = !c->has_mlp_bias;
    char what[64];
    eng_status st;
#define NAME(kind) (snprintf(what, sizeof(what), "layer %d %s", m->layer0 + l, #kind + 6), what)
#define TRY(x)                                                                                     \
    do {                                                                                           \
        if ((st = (x)) != ENG_OK) return st;                                                       \
    } while (0)
    TRY(put_vec(w, &L->att_norm, &tr[ENG_T_ATT_NORM], 0, D, 0, D, NAME(ENG_T_ATT_NORM), err,
                errlen));
    L->wqkv = (dmat){.rows = (int)(nq + 2 * nk), .cols = (int)D, .dt = tr[ENG_T_WQ].dt};
    L->wqkv.p = take(w, (size_t)((nq + 2 * nk) * D) * eng_dt_size(tr[ENG_T_WQ].dt));
    TRY(put_mat(w, &L->wqkv, 0, &tr[ENG_T_WQ], Q, D, q0, nq, 0, D, NAME(ENG_T_WQ), err, errlen));
    TRY(put_mat(w, &L->wqkv, nq, &tr[ENG_T_WK], KVd, D, k0, nk, 0, D, NAME(ENG_T_WK), err, errlen));
    TRY(put_mat(w, &L->wqkv, nq + nk, &tr[ENG_T_WV], KVd, D, k0, nk, 0, D, NAME(ENG_T_WV), err,
                errlen));
    if (!qb) { /* the three biases side by side, as the merged rows */
        float *bq, *bk, *bv;
        TRY(put_vec(w, &bq, &tr[ENG_T_BQ], 0, Q, q0, nq, NAME(ENG_T_BQ), err, errlen));
        TRY(put_vec(w, &bk, &tr[ENG_T_BK], 0, KVd, k0, nk, NAME(ENG_T_BK), err, errlen));
        TRY(put_vec(w, &bv, &tr[ENG_T_BV], 0, KVd, k0, nk, NAME(ENG_T_BV), err, errlen));
        /* put_vec takes consecutive aligned slots: make them one contiguous vector */
        L->bqkv = take(w, (size_t)(nq + 2 * nk) * 4);
        CU_CHECK(cudaMemcpy(L->bqkv, bq, (size_t)nq * 4, cudaMemcpyDeviceToDevice), err, errlen);
        CU_CHECK(cudaMemcpy(L->bqkv + nq, bk, (size_t)nk * 4, cudaMemcpyDeviceToDevice), err,
                 errlen);
        CU_CHECK(cudaMemcpy(L->bqkv + nq + nk, bv, (size_t)nk * 4, cudaMemcpyDeviceToDevice), err,
                 errlen);
    }
    TRY(put_vec(w, &L->q_norm, &tr[ENG_T_QNORM], !c->has_qk_norm, hd, 0, hd, NAME(ENG_T_QNORM), err,
                errlen));
    TRY(put_vec(w, &L->k_norm, &tr[ENG_T_KNORM], !c->has_qk_norm, hd, 0, hd, NAME(ENG_T_KNORM), err,
                errlen));
    L->wo = (dmat){.rows = (int)D, .cols = (int)nq, .dt = tr[ENG_T_WO].dt};
    L->wo.p = take(w, (size_t)(D * nq) * eng_dt_size(tr[ENG_T_WO].dt));
    TRY(put_mat(w, &L->wo, 0, &tr[ENG_T_WO], D, Q, 0, D, q0, nq, NAME(ENG_T_WO), err, errlen));
    TRY(put_vec(w, &L->bo, &tr[ENG_T_BO], ob, D, 0, D, NAME(ENG_T_BO), err, errlen));
    TRY(put_vec(w, &L->ffn_norm, &tr[ENG_T_FFN_NORM], 0, D, 0, D, NAME(ENG_T_FFN_NORM), err,
                errlen));
    L->w13 = (dmat){.rows = (int)(2 * nf), .cols = (int)D, .dt = tr[ENG_T_W1].dt};
    L->w13.p = take(w, (size_t)(2 * nf * D) * eng_dt_size(tr[ENG_T_W1].dt));
    TRY(put_mat(w, &L->w13, 0, &tr[ENG_T_W1], F, D, f0, nf, 0, D, NAME(ENG_T_W1), err, errlen));
    TRY(put_mat(w, &L->w13, nf, &tr[ENG_T_W3], F, D, f0, nf, 0, D, NAME(ENG_T_W3), err, errlen));
    if (!fb) {
        float *b1, *b3;
        TRY(put_vec(w, &b1, &tr[ENG_T_B1], 0, F, f0, nf, NAME(ENG_T_B1), err, errlen));
        TRY(put_vec(w, &b3, &tr[ENG_T_B3], 0, F, f0, nf, NAME(ENG_T_B3), err, errlen));
        L->b13 = take(w, (size_t)(2 * nf) * 4);
        CU_CHECK(cudaMemcpy(L->b13, b1, (size_t)nf * 4, cudaMemcpyDeviceToDevice), err, errlen);
        CU_CHECK(cudaMemcpy(L->b13 + nf, b3, (size_t)nf * 4, cudaMemcpyDeviceToDevice), err,
                 errlen);
    }
    L->w2 = (dmat){.rows = (int)D, .cols = (int)nf, .dt = tr[ENG_T_W2].dt};
    L->w2.p = take(w, (size_t)(D * nf) * eng_dt_size(tr[ENG_T_W2].dt));
    TRY(put_mat(w, &L->w2, 0, &tr[ENG_T_W2], D, F, 0, D, f0, nf, NAME(ENG_T_W2), err, errlen));
    TRY(put_vec(w, &L->b2, &tr[ENG_T_B2], fb, D, 0, D, NAME(ENG_T_B2), err, errlen));
#undef TRY
#undef NAME
    if (w->arena_used > w->arena_size)
        return eng_fail(ENG_ERR_NOMEM, err, errlen, "internal: device weight plan too small");
    if (l == c->n_layers - 1) {
        CU_CHECK(cudaDeviceSynchronize(), err, errlen);
        progress(w, 0, 1);
        size_t free_b = 0, total_b = 0;
        cudaMemGetInfo(&free_b, &total_b);
        double dt = now_s() - w->t0;
        logf_(w,
              "weights on GPU %d (%s): %.2f GiB in %.2f s (%.2f GB/s); device memory in use "
              "%.2f GiB of %.2f",
              w->dev, w->prop.name, (double)w->arena_size / 1073741824.0, dt,
              dt > 0 ? (double)w->uploaded / 1e9 / dt : 0.0,
              (double)(total_b - free_b) / 1073741824.0, (double)total_b / 1073741824.0);
    }
    return ENG_OK;
}

void cuda_model_free(eng_model *m)
{
    cuda_weights *w = m->bw;
    if (!w) return;
    cudaSetDevice(w->dev);
    cudaDeviceSynchronize();
    for (int i = 0; i < 2; i++) {
        if (w->staging[i]) cudaFreeHost(w->staging[i]);
        if (w->staged[i]) cudaEventDestroy(w->staged[i]);
    }
    if (w->arena) cudaFree(w->arena);
    cudaGetLastError(); /* a failed free leaves no sticky state for the next model */
    free(w->layers);
    free(w);
    m->bw = NULL;
}
