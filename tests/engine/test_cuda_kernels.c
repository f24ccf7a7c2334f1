/* SPDX-License-Identifier: MIT */
/* On a GPU: every CUDA kernel family of the engine against its plain-C reference
 * (engine/cuda/ref.c), on random inputs, with outputs poisoned before each run. Skips (77)
 * without a visible GPU. `test_cuda_kernels --bench` also times the matrix-vector kernel
 * on large matrices (GB/s of weights read), `--bench-sample` the sampler, `--bench-attn` the
 * decode attention kernels. */
#include "../check.h"
#include "cuda/cuda_kernels.h"
#include "eng_internal.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x1234567887654321ULL;

static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return (float)((rng * 0x2545F4914F6CDD1DULL) >> 40) / 8388608.0f - 1.0f;
}

#define CU(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            printf("FAIL %s:%d: %s: %s\n", __FILE__, __LINE__, #call, cudaGetErrorString(e_));     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)
#define KL(call)                                                                                   \
    do {                                                                                           \
        int e_ = (call);                                                                           \
        if (e_) {                                                                                  \
            printf("FAIL %s:%d: launch %s: %s\n", __FILE__, __LINE__, #call,                       \
                   cudaGetErrorString((cudaError_t)e_));                                           \
            exit(1);                                                                               \
        }                                                                                          \
        CU(cudaDeviceSynchronize());                                                               \
    } while (0)
/* eng_mv_args.deep: SMs enough that any grid takes two passes in flight (rows of
 * ENG_MV_DEEP_MIN bytes or more; shorter rows keep one pass) */
#define ANY_GRID (1 << 20)

/* Device copy of n bytes of host data (or poison 0xff when h is NULL). */
static void *dev(const void *h, size_t n)
{
    void *d;
    CU(cudaMalloc(&d, n ? n : 1));
    if (h)
        CU(cudaMemcpy(d, h, n, cudaMemcpyHostToDevice));
    else
        CU(cudaMemset(d, 0xff, n));
    return d;
}

static void *back(const void *d, size_t n)
{
    void *h = malloc(n);
    CU(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost));
    return h;
}

static float *rnd(size_t n, float scale)
{
    float *v = malloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++)
        v[i] = frand() * scale;
    return v;
}

/* Random weights in type dt. */
static void *rnd_typed(size_t n, int dt)
{
    float *f = rnd(n, 0.5f);
    if (dt == ENG_DT_F32) return f;
    uint16_t *h = malloc(n * 2);
    for (size_t i = 0; i < n; i++) {
        uint32_t b;
        memcpy(&b, &f[i], 4);
        if (dt == ENG_DT_BF16)
            h[i] = (uint16_t)(b >> 16);
        else { /* an f16 with a random 10-bit mantissa, exponents -4..0 */
            h[i] = (uint16_t)(((b >> 31) << 15) | ((11 + (b >> 20) % 5) << 10) | (b & 0x3ff));
        }
    }
    free(f);
    return h;
}

static double rel(const float *a, const float *b, size_t n)
{
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY; /* poison left: an element was not written */
        double d = (double)a[i] - b[i];
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return den > 0 ? sqrt(num / den) : sqrt(num);
}

/* One line per comparison with its relative error and limit (TEST_REPORT, tests/check.h). */
#define report(what, err, tol) report_rel(__FILE__, __LINE__, what, err, tol)
static void report_rel(const char *file, int line, const char *what, double err, double tol)
{
    test_report_at(file, line, err <= tol, "%-44s rel err %.2e (limit %.0e)", what, err, tol);
}

static const char *dtn(int dt)
{
    return dt == ENG_DT_BF16 ? "bf16" : dt == ENG_DT_F16 ? "f16" : "f32";
}

static void t_embed(int dt)
{
    int V = 300, D = 136, n = 5, tok[5] = {0, 299, 17, 17, 150};
    void *tab = rnd_typed((size_t)V * D, dt);
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    void *dtab = dev(tab, (size_t)V * D * es);
    int *dtok = dev(tok, sizeof(tok));
    float *dx = dev(NULL, (size_t)n * D * 4), *ref = malloc((size_t)n * D * 4);
    KL(eng_cu_embed(dx, dtab, dt, dtok, n, D, NULL));
    eng_ref_embed(ref, tab, dt, tok, n, D);
    float *got = back(dx, (size_t)n * D * 4);
    char w[64];
    snprintf(w, sizeof(w), "embed %s", dtn(dt));
    report(w, memcmp(got, ref, (size_t)n * D * 4) ? 1.0 : 0.0, 0);
    free(tab), free(ref), free(got), cudaFree(dtab), cudaFree(dtok), cudaFree(dx);
}

static void t_norm(int with_delta, int D)
{
    int n = 3;
    float *x = rnd((size_t)n * D, 2), *delta = rnd((size_t)n * D, 1), *b = rnd(D, 1),
          *w = rnd(D, 1);
    float *dxv = dev(x, (size_t)n * D * 4), *dd = dev(delta, (size_t)n * D * 4),
          *db = dev(b, D * 4), *dw = dev(w, D * 4), *dout = dev(NULL, (size_t)n * D * 4);
    void *d16 = dev(NULL, (size_t)n * D * 2);
    float *ref = malloc((size_t)n * D * 4);
    uint16_t *ref16 = malloc((size_t)n * D * 2);
    KL(eng_cu_add_rmsnorm(dxv, with_delta ? dd : NULL, with_delta ? db : NULL, dw, 1e-5f, dout, d16,
                          ENG_DT_BF16, n, D, NULL));
    eng_ref_add_rmsnorm(x, with_delta ? delta : NULL, with_delta ? b : NULL, w, 1e-5f, ref, ref16,
                        ENG_DT_BF16, n, D);
    float *got = back(dout, (size_t)n * D * 4), *gx = back(dxv, (size_t)n * D * 4);
    uint16_t *g16 = back(d16, (size_t)n * D * 2);
    float *f16a = malloc((size_t)n * D * 4), *f16b = malloc((size_t)n * D * 4);
    for (int i = 0; i < n * D; i++) {
        f16a[i] = eng_bf16_to_f32(g16[i]);
        f16b[i] = eng_bf16_to_f32(ref16[i]);
    }
    char wn[64];
    snprintf(wn, sizeof(wn), "%s D=%d", with_delta ? "add_rmsnorm (residual + bias)" : "rmsnorm",
             D);
    report(wn, rel(got, ref, (size_t)n * D), 1e-5);
    report(with_delta ? "add_rmsnorm residual stream" : "rmsnorm input untouched",
           rel(gx, x, (size_t)n * D), 1e-6);
    report("add_rmsnorm bf16 copy", rel(f16a, f16b, (size_t)n * D), 1e-2);
    free(x), free(delta), free(b), free(w), free(ref), free(ref16), free(got), free(gx), free(g16);
    free(f16a), free(f16b);
    cudaFree(dxv), cudaFree(dd), cudaFree(db), cudaFree(dw), cudaFree(dout), cudaFree(d16);
}

/* eng_cu_mul: one product an element, so the same bits as the reference. */
static void t_mul(int D)
{
    float *w = rnd(D, 1), *x = rnd(D, 2), *ref = malloc((size_t)D * 4);
    float *dw = dev(w, (size_t)D * 4), *dx = dev(x, (size_t)D * 4),
          *dout = dev(NULL, (size_t)D * 4);
    KL(eng_cu_mul(dout, dw, dx, D, NULL));
    eng_ref_mul(ref, w, x, D);
    float *got = back(dout, (size_t)D * 4);
    char wn[64];
    snprintf(wn, sizeof(wn), "mul D=%d: the reference's bits", D);
    report(wn, memcmp(got, ref, (size_t)D * 4) ? 1.0 : 0.0, 0);
    free(w), free(x), free(ref), free(got);
    cudaFree(dw), cudaFree(dx), cudaFree(dout);
}

static void t_rope(int interleaved, int extras, int heads_first, int n)
{
    int nq = 4, nkv = 2, hd = 64, ctx = 64, pos = 37, W = (nq + 2 * nkv) * hd;
    float *qkv = rnd((size_t)n * W, 1), *bias = rnd(W, 0.5f), *qn = rnd(hd, 1), *kn = rnd(hd, 1);
    float inv[ENG_CUDA_MAX_HD / 2];
    for (int i = 0; i < hd / 2; i++)
        inv[i] = powf(10000.0f, -(float)(2 * i) / (float)hd);
    size_t cache = (size_t)ctx * nkv * hd;
    float *kc = calloc(cache, 4), *vc = calloc(cache, 4), *q = calloc((size_t)n * nq * hd, 4);
    eng_rope_args a = {.qkv = qkv,
                       .bias = extras ? bias : NULL,
                       .q_norm = extras ? qn : NULL,
                       .k_norm = extras ? kn : NULL,
                       .inv_freq = inv,
                       .q = q,
                       .kc = kc,
                       .vc = vc,
                       .pos = &pos,
                       .n = n,
                       .nq = nq,
                       .nkv = nkv,
                       .hd = hd,
                       .interleaved = interleaved,
                       .eps = 1e-6f,
                       .heads_first = heads_first};
    eng_ref_rope_qkv(&a);
    eng_rope_args d = a;
    d.qkv = dev(qkv, (size_t)n * W * 4);
    d.bias = extras ? dev(bias, W * 4) : NULL;
    d.q_norm = extras ? dev(qn, hd * 4) : NULL;
    d.k_norm = extras ? dev(kn, hd * 4) : NULL;
    d.inv_freq = dev(inv, sizeof(inv));
    d.q = dev(NULL, (size_t)n * nq * hd * 4);
    d.kc = dev(kc, cache * 4); /* zeros outside the written positions, as the reference */
    d.vc = dev(vc, cache * 4);
    d.pos = dev(&pos, 4);
    KL(eng_cu_rope_qkv(&d, NULL));
    float *gq = back(d.q, (size_t)n * nq * hd * 4), *gk = back(d.kc, cache * 4),
          *gv = back(d.vc, cache * 4);
    char w[80];
    snprintf(w, sizeof(w), "rope %s%s: q%s, %d tokens", interleaved ? "interleaved" : "half",
             extras ? " + bias + q/k norm" : "", heads_first ? " head-major" : "", n);
    report(w, rel(gq, q, (size_t)n * nq * hd), 1e-5);
    snprintf(w, sizeof(w), "rope %s%s: k cache", interleaved ? "interleaved" : "half",
             extras ? " + ..." : "");
    report(w, rel(gk, kc, cache), 1e-5);
    report("rope: v cache", rel(gv, vc, cache), 1e-6);
    free(qkv), free(bias), free(qn), free(kn), free(kc), free(vc), free(q), free(gq), free(gk),
        free(gv);
    cudaFree((void *)d.qkv), cudaFree((void *)d.bias), cudaFree((void *)d.q_norm);
    cudaFree((void *)d.k_norm), cudaFree((void *)d.inv_freq), cudaFree(d.q), cudaFree(d.kc);
    cudaFree(d.vc), cudaFree((void *)d.pos);
}

static void t_swiglu(int n, int F)
{
    float *h = rnd((size_t)n * 2 * F, 3), *b = rnd(2 * F, 1), *ref = malloc((size_t)n * F * 4);
    float *dh = dev(h, (size_t)n * 2 * F * 4), *db = dev(b, 2 * F * 4),
          *dout = dev(NULL, (size_t)n * F * 4);
    KL(eng_cu_swiglu(dh, db, dout, NULL, 0, n, F, NULL));
    eng_ref_swiglu(h, b, ref, NULL, 0, n, F);
    float *got = back(dout, (size_t)n * F * 4);
    char w[64];
    snprintf(w, sizeof(w), "swiglu (+ gate/up bias) %d x %d", n, F);
    report(w, rel(got, ref, (size_t)n * F), 1e-6);
    free(h), free(b), free(ref), free(got), cudaFree(dh), cudaFree(db), cudaFree(dout);
}

static void t_matvec(int dt, int rows, int d)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    void *w = rnd_typed((size_t)rows * d, dt);
    float *x = rnd(d, 1), *ref = malloc((size_t)rows * 4);
    void *dw = dev(w, (size_t)rows * d * es);
    float *dx = dev(x, d * 4), *dy = dev(NULL, (size_t)rows * 4);
    KL(eng_cu_matvec(dy, dw, dt, dx, rows, d, NULL));
    eng_ref_matvec(ref, w, dt, x, rows, d);
    float *got = back(dy, (size_t)rows * 4);
    char wn[64];
    snprintf(wn, sizeof(wn), "matvec %s [%d x %d]", dtn(dt), rows, d);
    report(wn, rel(got, ref, rows), 1e-5);
    free(w), free(x), free(ref), free(got), cudaFree(dw), cudaFree(dx), cudaFree(dy);
}

/* n input rows at once: each row bitwise equal to the batch-1 kernel's (the promise that a
 * decode row gives the same bits alone or batched), and close to the reference. */
static void t_matvec_batch(int dt, int rows, int d, int n)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    void *w = rnd_typed((size_t)rows * d, dt);
    float *x = rnd((size_t)n * d, 1), *ref = malloc((size_t)n * rows * 4);
    void *dw = dev(w, (size_t)rows * d * es);
    float *dx = dev(x, (size_t)n * d * 4), *dy = dev(NULL, (size_t)n * rows * 4),
          *d1 = dev(NULL, (size_t)n * rows * 4);
    KL(eng_cu_matvec_batch(dy, dw, dt, dx, rows, d, n, NULL));
    for (int i = 0; i < n; i++)
        KL(eng_cu_matvec(d1 + (size_t)i * rows, dw, dt, dx + (size_t)i * d, rows, d, NULL));
    eng_ref_matvec_batch(ref, w, dt, x, rows, d, n);
    float *got = back(dy, (size_t)n * rows * 4), *one = back(d1, (size_t)n * rows * 4);
    char wn[96];
    snprintf(wn, sizeof(wn), "matvec_batch %s [%d x %d] x %d rows", dtn(dt), rows, d, n);
    report(wn, rel(got, ref, (size_t)n * rows), 1e-5);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)n * rows; i++)
        diff += memcmp(&got[i], &one[i], 4) != 0;
    snprintf(wn, sizeof(wn), "matvec_batch %s [%d x %d] x %d rows == batch-1 bitwise", dtn(dt),
             rows, d, n);
    report(wn, (double)diff, 0);
    free(w), free(x), free(ref), free(got), free(one);
    cudaFree(dw), cudaFree(dx), cudaFree(dy), cudaFree(d1);
}

/* A fused decode product (eng_mv_args) against its reference: outputs, the residual stream
 * and the partial sums of squares. nss: the input norm's partials (0: no input norm). */
static void t_fused(int dt, int mode, int rows, int d, int nss, int with_bias)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    int nout = mode == ENG_MV_SWIGLU ? rows / 2 : rows, parts = eng_mv_parts(rows, d, (int)es);
    void *w = rnd_typed((size_t)rows * d, dt);
    float *x = rnd(d, 1), *ssq = rnd(nss ? nss : 1, 1), *bias = rnd(rows, 1), *res = rnd(rows, 2),
          *nw = rnd(rows, 1);
    for (int i = 0; i < nss; i++)
        ssq[i] = fabsf(ssq[i]) * 20.0f; /* sums of squares */
    eng_mv_args a = {.w = dev(w, (size_t)rows * d * es),
                     .dt = dt,
                     .rows = rows,
                     .d = d,
                     .mode = mode,
                     .x = dev(x, (size_t)d * 4),
                     .ssq_in = nss ? dev(ssq, (size_t)nss * 4) : NULL,
                     .nss = nss,
                     .nd = 3000,
                     .eps = 1e-5f,
                     .bias = with_bias ? dev(bias, (size_t)rows * 4) : NULL,
                     .out = dev(NULL, (size_t)nout * 4)};
    if (mode == ENG_MV_RESID) {
        a.res = dev(res, (size_t)rows * 4);
        a.nw_out = dev(nw, (size_t)rows * 4);
        a.ssq_out = dev(NULL, (size_t)parts * 4);
    }
    KL(eng_cu_matvec_fused(&a, NULL));
    float *got = back(a.out, (size_t)nout * 4), *gres = NULL, *gss = NULL;
    if (mode == ENG_MV_RESID)
        gres = back(a.res, (size_t)rows * 4), gss = back(a.ssq_out, parts * 4);
    /* rows asked for whole before the wait (rows of up to 4 KiB), x staged in shared memory,
     * two passes in flight, and their mixes: the same bits */
    for (int v = 1; v < 8; v++) {
        if ((v & 1) && (size_t)d * es > 4096) continue;
        if ((v >> 2) && (size_t)d * es < ENG_MV_DEEP_MIN) continue; /* too short: v & 3's kernel */
        eng_mv_args b = a;
        b.whole = v & 1, b.xs = (v >> 1) & 1, b.deep = v >> 2 ? ANY_GRID : 0;
        if (mode == ENG_MV_RESID) { /* the partials overwritten, not left from the first run */
            CU(cudaMemcpy(b.res, res, (size_t)rows * 4, cudaMemcpyHostToDevice));
            CU(cudaMemset(b.ssq_out, 0xff, (size_t)parts * 4));
        }
        CU(cudaMemset(b.out, 0xff, (size_t)nout * 4));
        KL(eng_cu_matvec_fused(&b, NULL));
        float *g2 = back(b.out, (size_t)nout * 4);
        int bad = memcmp(g2, got, (size_t)nout * 4) != 0;
        if (mode == ENG_MV_RESID) {
            float *r2 = back(b.res, (size_t)rows * 4), *s2 = back(b.ssq_out, parts * 4);
            bad += memcmp(r2, gres, (size_t)rows * 4) != 0;
            bad += memcmp(s2, gss, (size_t)parts * 4) != 0;
            free(r2), free(s2);
        }
        static const char *vn[] = {"",
                                   "rows asked for whole before the wait",
                                   "x out of the weights' way (staged, or kept in L1)",
                                   "whole rows and x out of the way",
                                   "two passes in flight",
                                   "whole rows and two passes",
                                   "x out of the way and two passes",
                                   "all three"};
        char vw[80];
        snprintf(vw, sizeof(vw), "  %s: the same bits", vn[v]);
        report(vw, bad, 0);
        free(g2);
    }
    eng_mv_args r = a;
    float *ref = malloc((size_t)nout * 4), *rss = malloc((size_t)parts * 4);
    r.w = w, r.x = x, r.ssq_in = nss ? ssq : NULL, r.bias = with_bias ? bias : NULL, r.out = ref;
    r.res = res, r.nw_out = nw, r.ssq_out = rss;
    eng_ref_matvec_fused(&r);
    static const char *mn[] = {"plain", "swiglu", "residual"};
    char wn[96];
    snprintf(wn, sizeof(wn), "fused matvec %s %s [%d x %d]%s%s", mn[mode], dtn(dt), rows, d,
             nss ? " normed" : "", with_bias ? " + bias" : "");
    report(wn, rel(got, ref, nout), 1e-5);
    if (mode == ENG_MV_RESID) {
        report("fused matvec: residual stream", rel(gres, res, rows), 1e-6);
        report("fused matvec: partial sums of squares", rel(gss, rss, parts), 1e-5);
        cudaFree(a.res), cudaFree((void *)a.nw_out), cudaFree(a.ssq_out);
    }
    free(w), free(x), free(ssq), free(bias), free(res), free(nw), free(got), free(gres), free(gss);
    free(ref), free(rss);
    cudaFree((void *)a.w), cudaFree((void *)a.x), cudaFree((void *)a.ssq_in);
    cudaFree((void *)a.bias), cudaFree(a.out);
}

/* The q/k/v product with RoPE and the cache write in its epilogue (ENG_MV_ROPE): q and both
 * caches bitwise equal to the plain product followed by the RoPE kernel, and close to the
 * reference. */
static void t_fused_rope(int dt, int nq, int nkv, int hd, int d, int interleaved, int with_bias)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    int rows = (nq + 2 * nkv) * hd, pos = 21, ctx = 24, nss = 7;
    size_t cache = (size_t)ctx * nkv * hd, nqd = (size_t)nq * hd;
    void *w = rnd_typed((size_t)rows * d, dt);
    float *x = rnd(d, 1), *ssq = rnd(nss, 1), *bias = rnd(rows, 0.5f);
    float inv[ENG_CUDA_MAX_HD / 2];
    for (int i = 0; i < hd / 2; i++)
        inv[i] = powf(500000.0f, -(float)(2 * i) / (float)hd);
    for (int i = 0; i < nss; i++)
        ssq[i] = fabsf(ssq[i]) * 20.0f;
    float *zeros = calloc(cache, 4);
    eng_rope_args r = {.bias = with_bias ? dev(bias, (size_t)rows * 4) : NULL,
                       .inv_freq = dev(inv, sizeof(inv)),
                       .q = dev(NULL, nqd * 4),
                       .kc = dev(zeros, cache * 4),
                       .vc = dev(zeros, cache * 4),
                       .pos = dev(&pos, 4),
                       .n = 1,
                       .nq = nq,
                       .nkv = nkv,
                       .hd = hd,
                       .interleaved = interleaved};
    eng_mv_args a = {.w = dev(w, (size_t)rows * d * es),
                     .dt = dt,
                     .rows = rows,
                     .d = d,
                     .mode = ENG_MV_ROPE,
                     .x = dev(x, (size_t)d * 4),
                     .ssq_in = dev(ssq, (size_t)nss * 4),
                     .nss = nss,
                     .nd = d,
                     .eps = 1e-5f,
                     .rope = r};
    KL(eng_cu_matvec_fused(&a, NULL));
    float *gq = back(r.q, nqd * 4), *gk = back(r.kc, cache * 4), *gv = back(r.vc, cache * 4);
    /* the same inputs through the plain product and the RoPE kernel */
    eng_rope_args r2 = r;
    r2.q = dev(NULL, nqd * 4);
    r2.kc = dev(zeros, cache * 4);
    r2.vc = dev(zeros, cache * 4);
    r2.qkv = dev(NULL, (size_t)rows * 4);
    eng_mv_args p = a;
    p.mode = ENG_MV_PLAIN;
    p.out = (float *)r2.qkv;
    KL(eng_cu_matvec_fused(&p, NULL));
    KL(eng_cu_rope_qkv(&r2, NULL));
    float *pq = back(r2.q, nqd * 4), *pk = back(r2.kc, cache * 4), *pv = back(r2.vc, cache * 4);
    int differ = memcmp(gq, pq, nqd * 4) != 0;
    differ += memcmp(gk, pk, cache * 4) != 0;
    differ += memcmp(gv, pv, cache * 4) != 0;
    /* again with x staged in shared memory, from the first run's starting state (q unset,
     * empty caches, so a write left out shows): the same bits */
    eng_mv_args s2 = a;
    s2.xs = 1;
    CU(cudaMemset(r.q, 0xff, nqd * 4));
    CU(cudaMemcpy(r.kc, zeros, cache * 4, cudaMemcpyHostToDevice));
    CU(cudaMemcpy(r.vc, zeros, cache * 4, cudaMemcpyHostToDevice));
    KL(eng_cu_matvec_fused(&s2, NULL));
    float *sq = back(r.q, nqd * 4), *sk = back(r.kc, cache * 4), *sv = back(r.vc, cache * 4);
    int sdiff = memcmp(sq, gq, nqd * 4) != 0;
    sdiff += memcmp(sk, gk, cache * 4) != 0;
    sdiff += memcmp(sv, gv, cache * 4) != 0;
    free(sq), free(sk), free(sv);
    /* and with two passes in flight as well, where the rows are long enough to take them */
    int deep = (size_t)d * es >= ENG_MV_DEEP_MIN, ddiff = 0;
    if (deep) {
        s2.deep = ANY_GRID;
        CU(cudaMemset(r.q, 0xff, nqd * 4));
        CU(cudaMemcpy(r.kc, zeros, cache * 4, cudaMemcpyHostToDevice));
        CU(cudaMemcpy(r.vc, zeros, cache * 4, cudaMemcpyHostToDevice));
        KL(eng_cu_matvec_fused(&s2, NULL));
        sq = back(r.q, nqd * 4), sk = back(r.kc, cache * 4), sv = back(r.vc, cache * 4);
        ddiff = memcmp(sq, gq, nqd * 4) != 0;
        ddiff += memcmp(sk, gk, cache * 4) != 0;
        ddiff += memcmp(sv, gv, cache * 4) != 0;
        free(sq), free(sk), free(sv);
    }
    /* the reference, on the host */
    float *rq = calloc(nqd, 4), *rk = calloc(cache, 4), *rv = calloc(cache, 4);
    eng_mv_args h = a;
    h.w = w, h.x = x, h.ssq_in = ssq;
    h.rope.bias = with_bias ? bias : NULL, h.rope.inv_freq = inv, h.rope.pos = &pos;
    h.rope.q = rq, h.rope.kc = rk, h.rope.vc = rv;
    eng_ref_matvec_fused(&h);
    char wn[112];
    snprintf(wn, sizeof(wn), "fused q/k/v + RoPE %s %s %d/%d hd=%d [%d x %d]%s", dtn(dt),
             interleaved ? "interleaved" : "half", nq, nkv, hd, rows, d,
             with_bias ? " + bias" : "");
    report(wn, fmax(rel(gq, rq, nqd), fmax(rel(gk, rk, cache), rel(gv, rv, cache))), 1e-5);
    report("  == product + RoPE kernel (q, k, v caches) bitwise", differ, 0);
    report("  x staged in shared memory: the same bits", sdiff, 0);
    if (deep) report("  x staged, two passes in flight: the same bits", ddiff, 0);
    free(w), free(x), free(ssq), free(bias), free(zeros), free(gq), free(gk), free(gv);
    free(pq), free(pk), free(pv), free(rq), free(rk), free(rv);
    cudaFree((void *)a.w), cudaFree((void *)a.x), cudaFree((void *)a.ssq_in);
    cudaFree((void *)r.bias), cudaFree((void *)r.inv_freq), cudaFree(r.q), cudaFree(r.kc);
    cudaFree(r.vc), cudaFree((void *)r.pos), cudaFree(r2.q), cudaFree(r2.kc), cudaFree(r2.vc);
    cudaFree((void *)r2.qkv);
}

/* The fused products for n rows at once (eng_cu_matvec_batch_fused): every row's output,
 * residual stream and partial sums of squares bitwise equal to eng_cu_matvec_fused of that
 * row alone (a decode row gets the same bits alone or batched, and as `ringinfer run`'s fused
 * step), and close to the reference. nss: the input norm's partials (0: none). tc: on tensor
 * cores (eng_mvb_args.split), "alone" then the same call with one row, the reference
 * eng_ref_matvec_tc. */
static void t_fused_batch_tc(int dt, int mode, int rows, int d, int nss, int with_bias, int n,
                             int tc)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    int ow = mode == ENG_MV_SWIGLU ? rows / 2 : rows, parts = eng_mv_parts(rows, d, (int)es);
    int stride = (nss > parts ? nss : parts) + 3; /* rows' partials apart, not packed */
    void *w = rnd_typed((size_t)rows * d, dt);
    float *x = rnd((size_t)n * d, 1), *ssq = rnd((size_t)n * stride, 1), *bias = rnd(rows, 1),
          *res = rnd((size_t)n * rows, 2), *nw = rnd(rows, 1);
    for (int i = 0; i < n * stride; i++)
        ssq[i] = fabsf(ssq[i]) * 20.0f;
    int resid = mode == ENG_MV_RESID;
    eng_mvb_args b = {.mv = {.w = dev(w, (size_t)rows * d * es),
                             .dt = dt,
                             .rows = rows,
                             .d = d,
                             .mode = mode,
                             .x = dev(x, (size_t)n * d * 4),
                             .ssq_in = nss ? dev(ssq, (size_t)n * stride * 4) : NULL,
                             .nss = nss,
                             .nd = 3000,
                             .eps = 1e-5f,
                             .bias = with_bias ? dev(bias, (size_t)rows * 4) : NULL,
                             .out = dev(NULL, (size_t)n * ow * 4),
                             .res = resid ? dev(res, (size_t)n * rows * 4) : NULL,
                             .nw_out = resid ? dev(nw, (size_t)rows * 4) : NULL,
                             .ssq_out = resid ? dev(NULL, (size_t)n * stride * 4) : NULL},
                      .n = n,
                      .ss_stride = stride,
                      .scale = dev(NULL, (size_t)n * 4),
                      .tc = tc};
    KL(eng_cu_matvec_batch_fused(&b, NULL));
    /* each row alone through the batch-1 fused kernel, into its own buffers */
    float *o1 = dev(NULL, (size_t)n * ow * 4), *r1 = resid ? dev(res, (size_t)n * rows * 4) : NULL,
          *s1 = resid ? dev(NULL, (size_t)n * stride * 4) : NULL;
    for (int i = 0; i < n; i++) {
        eng_mv_args one = b.mv;
        one.x += (size_t)i * d;
        one.out = o1 + (size_t)i * ow;
        if (nss) one.ssq_in += (size_t)i * stride;
        if (resid) one.res = r1 + (size_t)i * rows, one.ssq_out = s1 + (size_t)i * stride;
        eng_mvb_args b1 = b;
        b1.mv = one, b1.n = 1, b1.scale = b.scale + i;
        if (tc)
            KL(eng_cu_matvec_batch_fused(&b1, NULL));
        else
            KL(eng_cu_matvec_fused(&one, NULL));
    }
    float *got = back(b.mv.out, (size_t)n * ow * 4), *alone = back(o1, (size_t)n * ow * 4);
    size_t diff = 0;
    for (size_t i = 0; i < (size_t)n * ow; i++)
        diff += memcmp(&got[i], &alone[i], 4) != 0;
    float *ref = malloc((size_t)n * ow * 4), *rss = malloc((size_t)n * stride * 4);
    eng_mvb_args r = b;
    r.mv.w = w, r.mv.x = x, r.mv.ssq_in = nss ? ssq : NULL, r.mv.bias = with_bias ? bias : NULL;
    r.mv.out = ref, r.mv.res = res, r.mv.nw_out = nw, r.mv.ssq_out = rss;
    if (tc)
        eng_ref_matvec_tc(&r);
    else
        eng_ref_matvec_batch_fused(&r);
    static const char *mn[] = {"plain", "swiglu", "residual"};
    char wn[128];
    snprintf(wn, sizeof(wn), "%s matvec_batch %s %s [%d x %d] x %d rows%s%s",
             tc ? "tensor-core" : "fused", mn[mode], dtn(dt), rows, d, n, nss ? " normed" : "",
             with_bias ? " + bias" : "");
    report(wn, rel(got, ref, (size_t)n * ow), tc ? 1e-4 : 1e-5);
    strncat(wn, tc ? " == one row bitwise" : " == batch-1 bitwise", sizeof(wn) - strlen(wn) - 1);
    report(wn, (double)diff, 0);
    if (resid) {
        float *gr = back(b.mv.res, (size_t)n * rows * 4), *ar = back(r1, (size_t)n * rows * 4);
        float *gs = back(b.mv.ssq_out, (size_t)n * stride * 4),
              *as = back(s1, (size_t)n * stride * 4);
        size_t dr = 0, ds = 0;
        for (size_t i = 0; i < (size_t)n * rows; i++)
            dr += memcmp(&gr[i], &ar[i], 4) != 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < parts; k++)
                ds += memcmp(&gs[(size_t)i * stride + k], &as[(size_t)i * stride + k], 4) != 0;
        report("fused matvec_batch: residual stream == alone bitwise", (double)dr, 0);
        report("fused matvec_batch: partial sums of squares == alone bitwise", (double)ds, 0);
        report("fused matvec_batch: residual stream", rel(gr, res, (size_t)n * rows),
               tc ? 1e-5 : 1e-6);
        free(gr), free(ar), free(gs), free(as);
        cudaFree(b.mv.res), cudaFree((void *)b.mv.nw_out), cudaFree(b.mv.ssq_out);
        cudaFree(r1), cudaFree(s1);
    }
    free(w), free(x), free(ssq), free(bias), free(res), free(nw), free(got), free(alone);
    free(ref), free(rss);
    cudaFree((void *)b.mv.w), cudaFree((void *)b.mv.x), cudaFree((void *)b.mv.ssq_in);
    cudaFree((void *)b.mv.bias), cudaFree(b.mv.out), cudaFree(b.scale), cudaFree(o1);
}

static void t_fused_batch(int dt, int mode, int rows, int d, int nss, int with_bias, int n)
{
    t_fused_batch_tc(dt, mode, rows, d, nss, with_bias, n, 0);
}

/* The decode step's fused chain inside a graph with early launches, against the unfused
 * references: o_proj + residual -> gate/up + norm + SwiGLU -> down + residual -> q/k/v +
 * norm; replayed twice on the same input, whose results must be equal bit for bit. */
static void t_fused_chain(int D, int A, int F, int Q)
{
    int dt = ENG_DT_BF16;
    float *x = rnd(D, 2), *att = rnd(A, 1), *n1 = rnd(D, 1), *n2 = rnd(D, 1);
    void *wo = rnd_typed((size_t)D * A, dt), *w13 = rnd_typed((size_t)2 * F * D, dt),
         *w2 = rnd_typed((size_t)D * F, dt), *wq = rnd_typed((size_t)Q * D, dt);
    float *dx = dev(x, D * 4), *datt = dev(att, A * 4), *dn1 = dev(n1, D * 4),
          *dn2 = dev(n2, D * 4), *dxb = dev(NULL, D * 4), *dhb = dev(NULL, F * 4),
          *dq = dev(NULL, Q * 4), *dss = dev(NULL, D * 4);
    void *dwo = dev(wo, (size_t)D * A * 2), *dw13 = dev(w13, (size_t)2 * F * D * 2),
         *dw2 = dev(w2, (size_t)D * F * 2), *dwq = dev(wq, (size_t)Q * D * 2);
    eng_mv_args o = {.out = dxb,
                     .w = dwo,
                     .dt = dt,
                     .rows = D,
                     .d = A,
                     .mode = ENG_MV_RESID,
                     .x = datt,
                     .eps = 1e-5f,
                     .nd = D,
                     .res = dx,
                     .nw_out = dn1,
                     .ssq_out = dss};
    eng_mv_args g = {.out = dhb,
                     .w = dw13,
                     .dt = dt,
                     .rows = 2 * F,
                     .d = D,
                     .mode = ENG_MV_SWIGLU,
                     .x = dxb,
                     .ssq_in = dss,
                     .nss = eng_mv_parts(D, A, 2),
                     .nd = D,
                     .eps = 1e-5f};
    eng_mv_args dn = {.out = dxb,
                      .w = dw2,
                      .dt = dt,
                      .rows = D,
                      .d = F,
                      .mode = ENG_MV_RESID,
                      .x = dhb,
                      .eps = 1e-5f,
                      .nd = D,
                      .res = dx,
                      .nw_out = dn2,
                      .ssq_out = dss};
    eng_mv_args q = {.out = dq,
                     .w = dwq,
                     .dt = dt,
                     .rows = Q,
                     .d = D,
                     .mode = ENG_MV_PLAIN,
                     .x = dxb,
                     .ssq_in = dss,
                     .nss = eng_mv_parts(D, F, 2),
                     .nd = D,
                     .eps = 1e-5f};
    cudaStream_t st;
    CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaGraph_t gr;
    cudaGraphExec_t ge;
    CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    int e = eng_cu_matvec_fused(&o, st);
    e = e ? e : eng_cu_matvec_fused(&g, st);
    e = e ? e : eng_cu_matvec_fused(&dn, st);
    e = e ? e : eng_cu_matvec_fused(&q, st);
    CU(cudaStreamEndCapture(st, &gr));
    if (e) {
        printf("FAIL %s:%d: launch in capture: %s\n", __FILE__, __LINE__,
               cudaGetErrorString((cudaError_t)e));
        exit(1);
    }
    CU(cudaGraphInstantiate(&ge, gr, 0));
    float *got[2], *gx = NULL;
    for (int rep = 0; rep < 2; rep++) {
        CU(cudaMemcpy(dx, x, D * 4, cudaMemcpyHostToDevice));
        CU(cudaMemset(dq, 0xff, Q * 4));
        CU(cudaGraphLaunch(ge, st));
        CU(cudaStreamSynchronize(st));
        got[rep] = back(dq, Q * 4);
    }
    gx = back(dx, D * 4);
    /* unfused: matvec, add + RMSNorm, matvec, SwiGLU, matvec, add + RMSNorm, matvec */
    float *delta = malloc(D * 4), *xb = malloc(D * 4), *h = malloc((size_t)2 * F * 4),
          *hb = malloc(F * 4), *ref = malloc(Q * 4);
    eng_ref_matvec(delta, wo, dt, att, D, A);
    eng_ref_add_rmsnorm(x, delta, NULL, n1, 1e-5f, xb, NULL, 0, 1, D);
    eng_ref_matvec(h, w13, dt, xb, 2 * F, D);
    eng_ref_swiglu(h, NULL, hb, NULL, 0, 1, F);
    eng_ref_matvec(delta, w2, dt, hb, D, F);
    eng_ref_add_rmsnorm(x, delta, NULL, n2, 1e-5f, xb, NULL, 0, 1, D);
    eng_ref_matvec(ref, wq, dt, xb, Q, D);
    char wn[96];
    snprintf(wn, sizeof(wn), "fused decode chain in a graph D=%d F=%d: q", D, F);
    report(wn, rel(got[0], ref, Q), 1e-5);
    report("fused decode chain: residual stream", rel(gx, x, D), 1e-6);
    report("fused decode chain: replays equal bit for bit", memcmp(got[0], got[1], Q * 4) ? 1 : 0,
           0);
    cudaGraphExecDestroy(ge), cudaGraphDestroy(gr), cudaStreamDestroy(st);
    free(x), free(att), free(n1), free(n2), free(wo), free(w13), free(w2), free(wq);
    free(got[0]), free(got[1]), free(gx), free(delta), free(xb), free(h), free(hb), free(ref);
    cudaFree(dx), cudaFree(datt), cudaFree(dn1), cudaFree(dn2), cudaFree(dxb), cudaFree(dhb);
    cudaFree(dq), cudaFree(dss), cudaFree(dwo), cudaFree(dw13), cudaFree(dw2), cudaFree(dwq);
}

static void t_convert(int dt)
{
    size_t n = 5000;
    float *x = rnd(n, 4);
    float *dx = dev(x, n * 4);
    void *d16 = dev(NULL, n * 2);
    KL(eng_cu_convert(d16, dt, dx, n, NULL));
    uint16_t *g = back(d16, n * 2), *r = malloc(n * 2);
    /* the reference conversion is the swiglu/norm reference's: reuse it through swiglu-free
     * path: eng_ref_add_rmsnorm with w = 1 would rescale, so compare through the f32 values */
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        float back_f = dt == ENG_DT_BF16 ? eng_bf16_to_f32(g[i]) : eng_f16_to_f32(g[i]);
        if (fabsf(back_f - x[i]) >
            fabsf(x[i]) * (dt == ENG_DT_BF16 ? 1.0f / 256 : 1.0f / 2048) + 1e-7f)
            bad++;
    }
    char w[64];
    snprintf(w, sizeof(w), "convert f32 -> %s (elements off by > 1/2 ulp)", dtn(dt));
    report(w, (double)bad, 0);
    free(x), free(g), free(r), cudaFree(dx), cudaFree(d16);
}

/* hi + lo against the reference bit for bit, and how close hi + lo comes to x. */
static void t_convert_split(int dt)
{
    size_t n = 5003;
    float *x = rnd(n, 4);
    x[0] = 0.0f, x[1] = -1e-3f, x[2] = 3.0e4f; /* zero, small, large */
    float *dx = dev(x, n * 4);
    void *dhi = dev(NULL, n * 2), *dlo = dev(NULL, n * 2);
    KL(eng_cu_convert_split(dhi, dlo, dt, dx, n, NULL));
    uint16_t *hi = back(dhi, n * 2), *lo = back(dlo, n * 2);
    uint16_t *rhi = malloc(n * 2), *rlo = malloc(n * 2);
    eng_ref_convert_split(rhi, rlo, dt, x, n);
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        float h = dt == ENG_DT_BF16 ? eng_bf16_to_f32(hi[i]) : eng_f16_to_f32(hi[i]);
        float l = dt == ENG_DT_BF16 ? eng_bf16_to_f32(lo[i]) : eng_f16_to_f32(lo[i]);
        double e = fabs((double)h + l - x[i]) / (fabs(x[i]) + 1e-30);
        /* f16's narrow range: below 2^-6 the lo part is subnormal and carries fewer bits */
        if (x[i] != 0 && (dt == ENG_DT_BF16 || fabsf(x[i]) >= 1.0f / 64) && e > worst) worst = e;
    }
    char w[80];
    snprintf(w, sizeof(w), "convert f32 -> %s hi + lo: equal to the reference bit for bit",
             dtn(dt));
    report(w, memcmp(hi, rhi, n * 2) || memcmp(lo, rlo, n * 2) ? 1 : 0, 0);
    /* bf16: 8 + 8 significant bits (2^-17 at worst); f16: 11 + 11 (2^-22) */
    snprintf(w, sizeof(w), "convert f32 -> %s hi + lo: worst relative error", dtn(dt));
    report(w, worst, dt == ENG_DT_BF16 ? 1.0 / 65536 : 1.0 / 1048576);
    free(x), free(hi), free(lo), free(rhi), free(rlo);
    cudaFree(dx), cudaFree(dhi), cudaFree(dlo);
}

/* One attention configuration on the GPU against ref; with splits, also merged by the last
 * split block: the same bits, again and again (a decode's first tiles are loaded before its
 * wait: a race shows here). */
static void attn_run(eng_attn_args d, const float *ref, const char *what)
{
    int n = d.n, nq = d.nq, hd = d.hd;
    size_t on = (size_t)n * nq * hd;
    size_t smem = eng_cu_attention_smem(n, nq / d.nkv, hd);
    if (d.tiles > 0) smem = eng_cu_attention_decode_smem(nq / d.nkv, hd, d.tiles);
    if (eng_cu_attention_init(smem)) {
        TEST_FAIL("attention init");
    }
    CU(cudaMemset(d.out, 0xff, on * 4));
    KL(eng_cu_attention(&d, NULL));
    float *got = back(d.out, on * 4);
    report(what, rel(got, ref, on), 1e-5);
    if (d.nsplit > 1) {
        int nc = eng_cu_attention_counts(n, nq, d.nkv), bad = 0;
        d.count = dev(NULL, (size_t)nc * 4);
        CU(cudaMemset(d.count, 0, (size_t)nc * 4));
        for (int rep = 0; rep < (n == 1 ? 200 : 2); rep++) {
            CU(cudaMemset(d.out, 0xff, on * 4));
            KL(eng_cu_attention(&d, NULL));
            float *g2 = back(d.out, on * 4);
            bad += memcmp(g2, got, on * 4) != 0;
            free(g2);
        }
        int *cnt = back(d.count, (size_t)nc * 4);
        for (int i = 0; i < nc; i++)
            bad += cnt[i] != 0;
        report("  merged in the last block: equal to the merge kernel, counts reset", bad, 0);
        free(cnt), cudaFree(d.count);
    }
    free(got);
}

/* dyn: chunk 0, the split sized from the position at run time (the decode graph's). Decode
 * (n == 1) runs the general kernel and the tiled one (attn_decode.cu) at every tile count
 * that fits. */
static void t_attention(int n, int pos, int window, int nsplit, int nq, int nkv, int hd, int dyn)
{
    int ctx = pos + n + 5;
    size_t cache = (size_t)ctx * nkv * hd;
    float *q = rnd((size_t)n * nq * hd, 1), *kc = rnd(cache, 1), *vc = rnd(cache, 1);
    float *ref = malloc((size_t)n * nq * hd * 4);
    int chunk = dyn ? 0 : (ctx + nsplit - 1) / nsplit;
    eng_attn_args a = {.q = q,
                       .kc = kc,
                       .vc = vc,
                       .out = ref,
                       .pos = &pos,
                       .n = n,
                       .nq = nq,
                       .nkv = nkv,
                       .hd = hd,
                       .window = window,
                       .nsplit = nsplit,
                       .chunk = chunk,
                       .scale = 1.0f / sqrtf((float)hd)};
    eng_ref_attention(&a);
    eng_attn_args d = a;
    d.q = dev(q, (size_t)n * nq * hd * 4);
    d.kc = dev(kc, cache * 4);
    d.vc = dev(vc, cache * 4);
    d.out = dev(NULL, (size_t)n * nq * hd * 4);
    d.part = nsplit > 1 ? dev(NULL, (size_t)nsplit * n * nq * (hd + 2) * 4) : NULL;
    d.pos = dev(&pos, 4);
    CU(cudaGetLastError());
    char w[128];
    snprintf(w, sizeof(w), "attention n=%d pos=%d win=%d split=%d%s %d/%d hd=%d", n, pos, window,
             nsplit, dyn ? " (sized at run time)" : "", nq, nkv, hd);
    attn_run(d, ref, w);
    int tmax = n == 1 ? eng_cu_attention_tiles(nq, nkv, hd, (size_t)160 << 10) : 0;
    for (int t = 1; t <= tmax; t *= 2) {
        d.tiles = t;
        snprintf(w, sizeof(w), "  the same in blocks of %d tiles", t);
        attn_run(d, ref, w);
    }
    if (n == 1 && eng_cu_attention_head_ok(nq, nkv, hd)) {
        d.tiles = 4, d.qhead = 1;
        attn_run(d, ref, "  the same, a block a query head");
    }
    free(q), free(kc), free(vc), free(ref);
    cudaFree((void *)d.q), cudaFree((void *)d.kc), cudaFree((void *)d.vc), cudaFree(d.out);
    cudaFree(d.part), cudaFree((void *)d.pos);
}

/* The batched step's kernels: n tokens of `slots` sequences, each at its own position (some
 * sharing a slot at consecutive positions, as a prefill chunk beside decode tokens). */
static void t_batch(int n, int slots, int nsplit, int window, int nq, int nkv, int hd)
{
    int ctx = 300, W = (nq + 2 * nkv) * hd, L = 2, layer = 1;
    size_t layer_sz = (size_t)ctx * nkv * hd, stride = (size_t)L * layer_sz;
    size_t cache = (size_t)slots * stride, qn = (size_t)n * nq * hd;
    int *pos = malloc((size_t)n * 4), *seq = malloc((size_t)n * 4), *rows = malloc((size_t)n * 4);
    for (int t = 0; t < n; t++) { /* the last tokens form a chunk of slot 0 at 200.. */
        int chunk = t >= n - 3;
        seq[t] = chunk ? 0 : 1 + t % (slots - 1);
        pos[t] = chunk ? 200 + t - (n - 3) : 17 * t + 3 * seq[t];
        rows[t] = n - 1 - t;
    }
    float *qkv = rnd((size_t)n * W, 1), *kc = rnd(cache, 1), *vc = rnd(cache, 1);
    float *q = calloc(qn, 4), *ref = malloc(qn * 4), *gref = malloc(qn * 4);
    float inv[ENG_CUDA_MAX_HD / 2];
    for (int i = 0; i < hd / 2; i++)
        inv[i] = powf(10000.0f, -(float)(2 * i) / (float)hd);
    eng_rope_args ra = {.qkv = qkv,
                        .inv_freq = inv,
                        .q = q,
                        .kc = kc + layer * layer_sz,
                        .vc = vc + layer * layer_sz,
                        .n = n,
                        .nq = nq,
                        .nkv = nkv,
                        .hd = hd,
                        .eps = 1e-6f};
    eng_batch_args b = {.pos = pos, .seq = seq, .slot_stride = stride};
    float *dkc = dev(kc, cache * 4), *dvc = dev(vc, cache * 4);
    eng_ref_rope_qkv_batch(&ra, &b);
    eng_attn_args aa = {.q = q,
                        .kc = ra.kc,
                        .vc = ra.vc,
                        .out = ref,
                        .n = n,
                        .nq = nq,
                        .nkv = nkv,
                        .hd = hd,
                        .window = window,
                        .nsplit = nsplit,
                        .chunk = (ctx + nsplit - 1) / nsplit,
                        .scale = 1.0f / sqrtf((float)hd)};
    eng_ref_attention_batch(&aa, &b);

    eng_batch_args db = {
        .pos = dev(pos, (size_t)n * 4), .seq = dev(seq, (size_t)n * 4), .slot_stride = stride};
    eng_rope_args dr = ra;
    dr.qkv = dev(qkv, (size_t)n * W * 4);
    dr.inv_freq = dev(inv, sizeof(inv));
    dr.q = dev(NULL, qn * 4);
    dr.kc = dkc + layer * layer_sz;
    dr.vc = dvc + layer * layer_sz;
    KL(eng_cu_rope_qkv_batch(&dr, &db, NULL));
    eng_attn_args da = aa;
    da.q = dr.q;
    da.kc = dr.kc;
    da.vc = dr.vc;
    da.out = dev(NULL, qn * 4);
    da.part = nsplit > 1 ? dev(NULL, (size_t)nsplit * n * nq * (hd + 2) * 4) : NULL;
    if (eng_cu_attention_batch_init(eng_cu_attention_batch_smem(nq / nkv, hd))) {
        TEST_FAIL("attention_batch init");
    }
    KL(eng_cu_attention_batch(&da, &db, NULL));
    int *drows = dev(rows, (size_t)n * 4);
    float *dg = dev(NULL, qn * 4);
    KL(eng_cu_gather_rows(dg, da.out, drows, n, nq * hd, NULL));
    float *gq = back(dr.q, qn * 4), *gk = back(dkc, cache * 4), *gv = back(dvc, cache * 4),
          *go = back(da.out, qn * 4), *gg = back(dg, qn * 4);
    char w[112];
    snprintf(w, sizeof(w), "batch n=%d slots=%d split=%d win=%d %d/%d hd=%d: q", n, slots, nsplit,
             window, nq, nkv, hd);
    report(w, rel(gq, q, qn), 1e-5);
    report("batch: k/v caches of every slot", rel(gk, kc, cache) + rel(gv, vc, cache), 1e-5);
    report("batch: attention", rel(go, ref, qn), 1e-5);
    eng_ref_gather_rows(gref, go, rows, n, nq * hd); /* of the GPU's own attention: exact */
    report("batch: gather rows", rel(gg, gref, qn), 0);
    free(pos), free(seq), free(rows), free(qkv), free(kc), free(vc), free(q), free(ref);
    free(gref), free(gq), free(gk), free(gv), free(go), free(gg);
    cudaFree((void *)db.pos), cudaFree((void *)db.seq), cudaFree((void *)dr.qkv);
    cudaFree((void *)dr.inv_freq), cudaFree(dr.q), cudaFree(dkc), cudaFree(dvc);
    cudaFree(da.out), cudaFree(da.part), cudaFree(drows), cudaFree(dg);
}

static void t_softmax(int nh, int pos0, int window)
{
    int n = 23, kv = pos0 + n;
    size_t sz = (size_t)nh * n * kv;
    float *s = rnd(sz, 6), *ref = malloc(sz * 4);
    memcpy(ref, s, sz * 4);
    float *ds = dev(s, sz * 4);
    KL(eng_cu_causal_softmax(ds, pos0, nh, n, kv, window, NULL));
    eng_ref_causal_softmax(ref, pos0, nh, n, kv, window);
    float *got = back(ds, sz * 4);
    char w[80];
    snprintf(w, sizeof(w), "causal softmax %d heads pos0=%d window=%d", nh, pos0, window);
    report(w, rel(got, ref, sz), 1e-6);
    free(s), free(ref), free(got), cudaFree(ds);
}

static void t_heads_to_rows(int dt)
{
    int nh = 6, n = 37, hd = 40;
    size_t sz = (size_t)nh * n * hd, es = dt == ENG_DT_F32 ? 4 : 2;
    float *o = rnd(sz, 2);
    float *d_o = dev(o, sz * 4);
    void *d_out = dev(NULL, sz * es), *ref = malloc(sz * es);
    KL(eng_cu_heads_to_rows(d_out, dt, d_o, nh, n, hd, NULL));
    eng_ref_heads_to_rows(ref, dt, o, nh, n, hd);
    void *got = back(d_out, sz * es);
    char w[64];
    snprintf(w, sizeof(w), "heads to rows -> %s (bytes differing)", dtn(dt));
    report(w, memcmp(got, ref, sz * es) ? 1.0 : 0.0, 0);
    free(o), free(ref), free(got), cudaFree(d_o), cudaFree(d_out);
}

/* The decode step's launches inside a graph capture, where kernels start early (programmatic
 * dependent launch on sm_90): norm -> matvec -> swiglu -> matvec, each reading the one
 * before; replayed twice with new inputs in between. */
static void t_pdl_graph(void)
{
    int D = 1024, F = 1536;
    float *x = rnd(D, 2), *w = rnd(D, 1);
    void *w13 = rnd_typed((size_t)2 * F * D, ENG_DT_BF16),
         *w2 = rnd_typed((size_t)D * F, ENG_DT_BF16);
    float *dx = dev(x, D * 4), *dw = dev(w, D * 4), *dxb = dev(NULL, D * 4),
          *dh = dev(NULL, (size_t)2 * F * 4), *dhb = dev(NULL, F * 4), *dy = dev(NULL, D * 4);
    void *dw13 = dev(w13, (size_t)2 * F * D * 2), *dw2 = dev(w2, (size_t)D * F * 2);
    cudaStream_t st;
    CU(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaGraph_t g;
    cudaGraphExec_t ge;
    CU(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal));
    int e = eng_cu_add_rmsnorm(dx, NULL, NULL, dw, 1e-5f, dxb, NULL, 0, 1, D, st);
    e = e ? e : eng_cu_matvec(dh, dw13, ENG_DT_BF16, dxb, 2 * F, D, st);
    e = e ? e : eng_cu_swiglu(dh, NULL, dhb, NULL, 0, 1, F, st);
    e = e ? e : eng_cu_matvec(dy, dw2, ENG_DT_BF16, dhb, D, F, st);
    CU(cudaStreamEndCapture(st, &g));
    if (e) {
        printf("FAIL %s:%d: launch in capture: %s\n", __FILE__, __LINE__,
               cudaGetErrorString((cudaError_t)e));
        exit(1);
    }
    CU(cudaGraphInstantiate(&ge, g, 0));
    float *xb = malloc(D * 4), *h = malloc((size_t)2 * F * 4), *hb = malloc(F * 4),
          *ref = malloc(D * 4);
    double worst = 0;
    for (int rep = 0; rep < 2; rep++) {
        if (rep) {
            free(x);
            x = rnd(D, 3);
            CU(cudaMemcpy(dx, x, D * 4, cudaMemcpyHostToDevice));
        }
        CU(cudaMemset(dy, 0xff, D * 4));
        CU(cudaGraphLaunch(ge, st));
        CU(cudaStreamSynchronize(st));
        eng_ref_add_rmsnorm(x, NULL, NULL, w, 1e-5f, xb, NULL, 0, 1, D);
        eng_ref_matvec(h, w13, ENG_DT_BF16, xb, 2 * F, D);
        eng_ref_swiglu(h, NULL, hb, NULL, 0, 1, F);
        eng_ref_matvec(ref, w2, ENG_DT_BF16, hb, D, F);
        float *got = back(dy, D * 4);
        double r = rel(got, ref, D);
        if (r > worst || !(r == r)) worst = r;
        free(got);
    }
    report("graph with early launches: norm, matvec, swiglu, matvec", worst, 1e-5);
    cudaGraphExecDestroy(ge), cudaGraphDestroy(g), cudaStreamDestroy(st);
    free(x), free(w), free(w13), free(w2), free(xb), free(h), free(hb), free(ref);
    cudaFree(dx), cudaFree(dw), cudaFree(dxb), cudaFree(dh), cudaFree(dhb), cudaFree(dy);
    cudaFree(dw13), cudaFree(dw2);
}

static void t_sample(int V, float T, float top_p, int draws)
{
    float *lg = rnd(V, 8);
    if (T == 0.0f) { /* a tie for the maximum: the lowest id wins */
        lg[V / 3] = 20.0f;
        lg[V / 2] = 20.0f;
    }
    float *dl = dev(lg, (size_t)V * 4), *dd = dev(NULL, 4);
    int *dn = dev(NULL, 4);
    void *sc = dev(NULL, eng_cu_sample_scratch_bytes(1));
    int mism = 0;
    for (int k = 0; k < draws; k++) {
        float r = (frand() + 1.0f) * 0.5f;
        CU(cudaMemcpy(dd, &r, 4, cudaMemcpyHostToDevice));
        KL(eng_cu_sample(dl, V, T, top_p, dd, dn, sc, NULL));
        int got;
        CU(cudaMemcpy(&got, dn, 4, cudaMemcpyDeviceToHost));
        if (got != eng_ref_sample(lg, V, T, top_p, r)) mism++;
    }
    char w[80];
    snprintf(w, sizeof(w), "sample V=%d T=%.1f top-p %.2f: ids differing of %d", V, T, top_p,
             draws);
    /* Sums in another order can move a draw that lands within rounding of a boundary. */
    report(w, mism, T == 0.0f ? 0 : draws / 50);
    free(lg), cudaFree(dl), cudaFree(dd), cudaFree(dn), cudaFree(sc);
}

/* The nucleus' edge inside a run of equal logits (ties are all in or all out), and n rows
 * of different settings in one launch. */
static void t_sample_rows(int V)
{
    enum { N = 4 };
    static const float T[N] = {0.8f, 0.0f, 1.3f, 0.6f}, P[N] = {0.95f, 0.9f, 1.0f, 0.3f};
    float *lg = rnd((size_t)N * V, 6), draw[N];
    for (int i = 0; i < V / 4; i++) /* row 3: a quarter of the row tied at its top */
        lg[(size_t)3 * V + 4 * i] = 9.0f;
    float *dl = dev(lg, (size_t)N * V * 4), *dt = dev(T, sizeof(T)), *dp = dev(P, sizeof(P));
    float *dd = dev(NULL, sizeof(draw));
    int *dn = dev(NULL, N * sizeof(int)), got[N], mism = 0;
    void *sc = dev(NULL, eng_cu_sample_scratch_bytes(N));
    for (int k = 0; k < 50; k++) {
        for (int r = 0; r < N; r++)
            draw[r] = (frand() + 1.0f) * 0.5f;
        CU(cudaMemcpy(dd, draw, sizeof(draw), cudaMemcpyHostToDevice));
        KL(eng_cu_sample_rows(dl, N, V, dt, dp, dd, dn, sc, NULL));
        CU(cudaMemcpy(got, dn, sizeof(got), cudaMemcpyDeviceToHost));
        for (int r = 0; r < N; r++)
            mism += got[r] != eng_ref_sample(lg + (size_t)r * V, V, T[r], P[r], draw[r]);
        mism += got[3] % 4 != 0; /* row 3's nucleus is its ties */
    }
    char w[80];
    snprintf(w, sizeof(w), "sample rows V=%d: ids differing of %d", V, 50 * N);
    report(w, mism, 2);
    free(lg), cudaFree(dl), cudaFree(dt), cudaFree(dp), cudaFree(dd), cudaFree(dn), cudaFree(sc);
}

/* A NaN among the logits: -1 from both, at any temperature. */
static void t_sample_nan(void)
{
    int V = 5000, got[2];
    float *lg = rnd(V, 4);
    lg[1234] = NAN;
    float *dl = dev(lg, (size_t)V * 4), r = 0.5f, *dd = dev(&r, 4);
    int *dn = dev(NULL, 4);
    void *sc = dev(NULL, eng_cu_sample_scratch_bytes(1));
    for (int k = 0; k < 2; k++) {
        KL(eng_cu_sample(dl, V, k ? 0.8f : 0.0f, 0.9f, dd, dn, sc, NULL));
        CU(cudaMemcpy(&got[k], dn, 4, cudaMemcpyDeviceToHost));
    }
    int ok = got[0] == -1 && got[1] == -1 && eng_ref_sample(lg, V, 0.0f, 0.9f, r) == -1;
    report("sample: NaN logits give -1", ok ? 0.0 : 1.0, 0);
    free(lg), cudaFree(dl), cudaFree(dd), cudaFree(dn), cudaFree(sc);
}

/* mode -1: eng_cu_matvec; else the fused product of that mode (normed input but RESID). */
/* xs: bit 1, the fused product with x kept out of the weights' way (eng_mv_args.xs); bit 2,
 * two passes in flight (eng_mv_args.deep). */
static void bench_matvec(int dt, int rows, int d, int mode, int xs)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2, bytes = (size_t)rows * d * es;
    int copies = (int)((1ull << 31) / bytes) + 1; /* rotate past the 50 MB L2 */
    if (copies > 8) copies = 8;
    void *dw[8];
    for (int i = 0; i < copies; i++) {
        CU(cudaMalloc(&dw[i], bytes));
        CU(cudaMemset(dw[i], 0x3c, bytes)); /* small finite values in every type */
    }
    float *x = rnd(d, 1), *dx = dev(x, d * 4), *dy = dev(NULL, (size_t)rows * 4);
    float *ones = malloc((size_t)rows * 4);
    for (int i = 0; i < rows; i++)
        ones[i] = 1.0f;
    float *dres = dev(ones, (size_t)rows * 4), *dnw = dev(ones, (size_t)rows * 4),
          *dss = dev(ones, (size_t)rows * 4);
    eng_mv_args a = {.out = dy,
                     .dt = dt,
                     .rows = rows,
                     .d = d,
                     .mode = mode < 0 ? 0 : mode,
                     .x = dx,
                     .ssq_in = mode == ENG_MV_RESID ? NULL : dss,
                     .nss = 512,
                     .nd = d,
                     .eps = 1e-5f,
                     .res = dres,
                     .nw_out = dnw,
                     .ssq_out = dss + 512,
                     .xs = xs & 1,
                     .deep = xs >> 1 ? ANY_GRID : 0};
#define MV(w_)                                                                                     \
    (mode < 0 ? eng_cu_matvec(dy, (w_), dt, dx, rows, d, NULL)                                     \
              : (a.w = (w_), eng_cu_matvec_fused(&a, NULL)))
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    for (int i = 0; i < 10; i++)
        MV(dw[i % copies]);
    int iters = 200;
    float best = 1e30f, ms;
    for (int rep = 0; rep < 5; rep++) {
        cudaEventRecord(e0, NULL);
        for (int i = 0; i < iters; i++)
            MV(dw[i % copies]);
        cudaEventRecord(e1, NULL);
        CU(cudaEventSynchronize(e1));
        cudaEventElapsedTime(&ms, e0, e1);
        if (ms < best) best = ms;
    }
    double us = best * 1000.0 / iters;
    static const char *mn[] = {"", "+norm", "+norm+swiglu", "+residual"};
    char label[32];
    snprintf(label, sizeof(label), "%s%s%s", mn[mode + 1], xs & 1 ? "+xs" : "",
             xs & 2 ? "+deep" : "");
    printf("bench matvec%-16s %-4s [%6d x %6d] %8.1f us  %7.1f GB/s (weights only, best of 5 x "
           "%d)\n",
           label, dtn(dt), rows, d, us, (double)bytes / (us * 1e-6) / 1e9, iters);
#undef MV
    free(ones), cudaFree(dres), cudaFree(dnw), cudaFree(dss);
    for (int i = 0; i < copies; i++)
        cudaFree(dw[i]);
    free(x), cudaFree(dx), cudaFree(dy);
}

/* One decode attention (one query token at position pos, the merge in the last block), in
 * a loop of 200 launches timed by events (best of 5): the tiled kernel (qhead 0) or a block a
 * query head (qhead 1), with as many splits as the decode step would give them. Without
 * early launch: each kernel's loads before its wait are on the critical path here. */
static void bench_attention(int nq, int nkv, int hd, int pos, int qhead)
{
    int ctx = 4096, sms = 132, G = nq / nkv,
        t = qhead ? 4 : eng_cu_attention_tiles(nq, nkv, hd, 160u << 10);
    size_t cache = (size_t)ctx * nkv * hd, smem = eng_cu_attention_decode_smem(G, hd, t);
    int fit = (int)((228u << 10) / smem), ns;
    if (fit > 2) fit = 2;
    if (fit < 1) fit = 1;
    ns = qhead ? (2 * sms + nq - 1) / nq : (fit * sms + nkv - 1) / nkv;
    float *kc = rnd(cache, 1), *q = rnd((size_t)nq * hd, 2), best = 1e30f;
    int nc = eng_cu_attention_counts(1, nq, nkv);
    eng_attn_args d = {.q = dev(q, (size_t)nq * hd * 4),
                       .kc = dev(kc, cache * 4),
                       .vc = dev(kc, cache * 4),
                       .out = dev(NULL, (size_t)nq * hd * 4),
                       .part = dev(NULL, (size_t)ns * nq * (hd + 2) * 4),
                       .count = dev(NULL, (size_t)nc * 4),
                       .pos = dev(&pos, 4),
                       .n = 1,
                       .nq = nq,
                       .nkv = nkv,
                       .hd = hd,
                       .nsplit = ns,
                       .tiles = t,
                       .qhead = qhead,
                       .scale = 1.0f / sqrtf((float)hd)};
    CU(cudaMemset(d.count, 0, (size_t)nc * 4));
    if (eng_cu_attention_init(smem)) TEST_FAIL("attention init");
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    for (int rep = 0; rep < 5; rep++) {
        CU(cudaEventRecord(e0, NULL));
        for (int k = 0; k < 200; k++)
            KL(eng_cu_attention(&d, NULL));
        CU(cudaEventRecord(e1, NULL));
        CU(cudaEventSynchronize(e1));
        float ms;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        if (ms < best) best = ms;
    }
    printf("bench attention %-10s %2d/%d hd=%3d pos=%5d splits %2d %8.2f us\n",
           qhead ? "query-head" : "tiled", nq, nkv, hd, pos, ns, best * 1000.0f / 200);
    CU(cudaEventDestroy(e0));
    CU(cudaEventDestroy(e1));
    free(kc), free(q);
    cudaFree((void *)d.q), cudaFree((void *)d.kc), cudaFree((void *)d.vc), cudaFree(d.out);
    cudaFree(d.part), cudaFree(d.count), cudaFree((void *)d.pos);
}

/* The small-batch kernel with n rows against n = 1: us per product, weights in GB/s. */
/* One row's sampling, in a loop of 200 launches timed by events (best of 5). */
static void bench_sample(int V, float T, float top_p)
{
    float *lg = rnd(V, 8), r = 0.37f, *dl = dev(lg, (size_t)V * 4), *dd = dev(&r, 4), best = 1e30f;
    int *dn = dev(NULL, 4);
    void *sc = dev(NULL, eng_cu_sample_scratch_bytes(1));
    cudaEvent_t e0, e1;
    CU(cudaEventCreate(&e0));
    CU(cudaEventCreate(&e1));
    for (int rep = 0; rep < 5; rep++) {
        CU(cudaEventRecord(e0, NULL));
        for (int k = 0; k < 200; k++)
            KL(eng_cu_sample(dl, V, T, top_p, dd, dn, sc, NULL));
        CU(cudaEventRecord(e1, NULL));
        CU(cudaEventSynchronize(e1));
        float ms;
        CU(cudaEventElapsedTime(&ms, e0, e1));
        if (ms < best) best = ms;
    }
    printf("bench sample V=%6d T=%.1f top-p %.2f %8.1f us\n", V, T, top_p, best * 1000.0f / 200);
    CU(cudaEventDestroy(e0));
    CU(cudaEventDestroy(e1));
    free(lg), cudaFree(dl), cudaFree(dd), cudaFree(dn), cudaFree(sc);
}

static void bench_matvec_batch(int dt, int rows, int d, int n)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2, bytes = (size_t)rows * d * es;
    int copies = (int)((1ull << 31) / bytes) + 1;
    if (copies > 8) copies = 8;
    void *dw[8];
    for (int i = 0; i < copies; i++) {
        CU(cudaMalloc(&dw[i], bytes));
        CU(cudaMemset(dw[i], 0x3c, bytes));
    }
    float *x = rnd((size_t)n * d, 1), *dx = dev(x, (size_t)n * d * 4),
          *dy = dev(NULL, (size_t)n * rows * 4);
    cudaEvent_t e0, e1;
    cudaEventCreate(&e0);
    cudaEventCreate(&e1);
    int iters = 100;
    float best = 1e30f, ms;
    for (int rep = 0; rep < 6; rep++) {
        cudaEventRecord(e0, NULL);
        for (int i = 0; i < iters; i++)
            eng_cu_matvec_batch(dy, dw[i % copies], dt, dx, rows, d, n, NULL);
        cudaEventRecord(e1, NULL);
        CU(cudaEventSynchronize(e1));
        cudaEventElapsedTime(&ms, e0, e1);
        if (rep && ms < best) best = ms;
    }
    double us = best * 1000.0 / iters;
    printf("bench matvec_batch %-4s [%6d x %6d] x %2d rows %8.1f us  %7.1f GB/s\n", dtn(dt), rows,
           d, n, us, (double)bytes / (us * 1e-6) / 1e9);
    for (int i = 0; i < copies; i++)
        cudaFree(dw[i]);
    free(x), cudaFree(dx), cudaFree(dy);
}

int main(int argc, char **argv)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        printf("SKIP: no CUDA GPU visible (%s); the kernels are checked against their plain-C "
               "references on a GPU machine (tests/gpu/run-engine-gpu.sh)\n",
               e != cudaSuccess ? cudaGetErrorString(e) : "no device");
        return 77;
    }
    for (int dt = 0; dt < 3; dt++)
        t_embed(dt);
    t_norm(0, 1000);
    t_mul(1000);
    t_mul(4096);
    t_norm(1, 1000);
    t_norm(1, 4096);
    t_norm(1, 9000); /* past the kernel's registers */
    t_rope(1, 0, 0, 3);
    t_rope(0, 0, 0, 3);
    t_rope(0, 1, 0, 3);
    t_rope(1, 1, 0, 3);
    t_rope(0, 1, 1, 3);
    t_rope(0, 1, 1, 20); /* a prompt's blocks of several heads */
    t_rope(1, 0, 0, 17);
    t_swiglu(4, 700);   /* one element a thread */
    t_swiglu(19, 1024); /* four (16-byte loads) */
    t_matvec(ENG_DT_BF16, 1000, 4096);
    t_matvec(ENG_DT_F16, 333, 2048);
    t_matvec(ENG_DT_F32, 515, 1024);
    t_matvec(ENG_DT_F32, 37, 172);      /* 688-byte rows: 16-byte loads */
    t_matvec(ENG_DT_BF16, 41, 100);     /* 200-byte rows: the scalar path */
    t_matvec(ENG_DT_BF16, 300, 8200);   /* 4 warps a row, a partial block, a partial round */
    t_matvec(ENG_DT_BF16, 9001, 4104);  /* 1 warp a row, a partial last round */
    t_matvec(ENG_DT_F16, 500, 2056);    /* 2 warps a row, a partial round */
    t_matvec(ENG_DT_BF16, 20000, 1024); /* one round per lane */
    t_matvec_batch(ENG_DT_BF16, 3072, 2048, 16); /* 1B q/k/v, 16 decode rows */
    t_matvec_batch(ENG_DT_BF16, 2048, 8192, 5);
    t_matvec_batch(ENG_DT_F16, 333, 2048, 7);
    t_matvec_batch(ENG_DT_F32, 515, 1024, 3);
    t_matvec_batch(ENG_DT_F32, 37, 172, 9);      /* 16-byte loads, a partial block */
    t_matvec_batch(ENG_DT_BF16, 41, 100, 4);     /* the scalar path, row by row */
    t_matvec_batch(ENG_DT_BF16, 300, 8200, 16);  /* 4 warps a row, a partial round */
    t_matvec_batch(ENG_DT_F16, 500, 2056, 12);   /* 2 warps a row */
    t_matvec_batch(ENG_DT_BF16, 1001, 4104, 21); /* more rows than one pass: 16 + 5 */
    t_matvec_batch(ENG_DT_BF16, 64, 64, 2);
    t_fused(ENG_DT_BF16, ENG_MV_PLAIN, 1000, 4096, 512, 0);
    t_fused(ENG_DT_BF16, ENG_MV_PLAIN, 3072, 2048, 1500, 0); /* partials past 4 a thread */
    t_fused(ENG_DT_BF16, ENG_MV_SWIGLU, 1400, 2048, 256, 1);
    t_fused(ENG_DT_F16, ENG_MV_SWIGLU, 300, 2056, 0, 1);   /* 2 warps a row, 2 pairs a block */
    t_fused(ENG_DT_F32, ENG_MV_SWIGLU, 2 * 9, 1024, 7, 0); /* a partial block */
    t_fused(ENG_DT_F32, ENG_MV_RESID, 515, 1024, 33, 1);
    t_fused(ENG_DT_BF16, ENG_MV_RESID, 300, 8200, 0, 1); /* 4 warps a row, a partial block */
    t_fused(ENG_DT_BF16, ENG_MV_RESID, 4096, 4096, 512, 0);
    t_fused(ENG_DT_BF16, ENG_MV_RESID, 2048, 2048, 256, 1);      /* 1B-like o_proj: a row whole */
    t_fused(ENG_DT_BF16, ENG_MV_SWIGLU, 2 * 1100, 1536, 128, 0); /* 3/4 of the chunks */
    t_fused(ENG_DT_F16, ENG_MV_PLAIN, 1030, 1024, 64, 1);
    t_fused(ENG_DT_F32, ENG_MV_PLAIN, 1100, 1024, 0, 0);
    t_fused(ENG_DT_BF16, ENG_MV_SWIGLU, 2 * 1100, 4096, 64, 0); /* 8 KiB rows: the loop */
    t_fused(ENG_DT_BF16, ENG_MV_PLAIN, 1030, 3072, 0, 1);       /* 6 KiB rows: the loop */
    t_fused(ENG_DT_F32, ENG_MV_RESID, 1100, 2048, 99, 1);
    t_fused(ENG_DT_BF16, ENG_MV_PLAIN, 1030, 8192, 0, 0);  /* the longest x staged: 32 KiB */
    t_fused(ENG_DT_BF16, ENG_MV_PLAIN, 1030, 8200, 0, 0);  /* ... and one too long */
    t_fused(ENG_DT_BF16, ENG_MV_RESID, 1030, 14336, 0, 0); /* 8B-like down: x not staged */
    t_fused_batch(ENG_DT_BF16, ENG_MV_PLAIN, 3072, 2048, 256, 0, 16);  /* 1B q/k/v + norm */
    t_fused_batch(ENG_DT_BF16, ENG_MV_SWIGLU, 16384, 2048, 256, 0, 5); /* 1B gate/up */
    t_fused_batch(ENG_DT_BF16, ENG_MV_RESID, 2048, 8192, 0, 0, 9);     /* 1B down: 8-row parts */
    t_fused_batch(ENG_DT_BF16, ENG_MV_PLAIN, 1000, 4096, 1500, 0, 21); /* 16 + 5, long partials */
    t_fused_batch(ENG_DT_BF16, ENG_MV_SWIGLU, 1402, 2048, 77, 1, 3);   /* a partial pair block */
    t_fused_batch(ENG_DT_F16, ENG_MV_SWIGLU, 300, 2056, 0, 1, 4);      /* 2 warps a row */
    t_fused_batch(ENG_DT_F32, ENG_MV_RESID, 515, 1024, 0, 1, 3);       /* 2 warps: 4-row parts */
    t_fused_batch(ENG_DT_BF16, ENG_MV_RESID, 300, 8200, 0, 1, 16);     /* 4 warps: 2-row parts */
    t_fused_batch(ENG_DT_BF16, ENG_MV_RESID, 4100, 4096, 0, 1, 2);     /* a partial last part */
    t_fused_batch(ENG_DT_F32, ENG_MV_PLAIN, 37, 172, 9, 1, 17);        /* 16 + 1: batch-1 tail */
    /* on tensor cores: 1 to 21 rows, each row's bits those of the same row alone */
    t_fused_batch_tc(ENG_DT_BF16, ENG_MV_PLAIN, 3072, 2048, 256, 0, 16, 1); /* 1B q/k/v + norm */
    t_fused_batch_tc(ENG_DT_BF16, ENG_MV_PLAIN, 3072, 2048, 256, 0, 1, 1);
    t_fused_batch_tc(ENG_DT_BF16, ENG_MV_PLAIN, 1024, 4128, 0, 0, 21, 1);    /* a partial round */
    t_fused_batch_tc(ENG_DT_BF16, ENG_MV_SWIGLU, 16384, 2048, 256, 0, 5, 1); /* 1B gate/up */
    t_fused_batch_tc(ENG_DT_BF16, ENG_MV_SWIGLU, 4096, 4096, 1500, 1, 12, 1);
    t_fused_batch_tc(ENG_DT_BF16, ENG_MV_RESID, 2048, 8192, 0, 1, 9, 1); /* 8-row parts */
    t_fused_batch_tc(ENG_DT_BF16, ENG_MV_RESID, 512, 8192, 0, 0, 3, 1);  /* 4-row parts */
    t_fused_batch_tc(ENG_DT_BF16, ENG_MV_RESID, 256, 8192, 0, 1, 16, 1); /* 2-row parts */
    t_fused_rope(ENG_DT_BF16, 32, 8, 64, 2048, 0, 0);                    /* the 1B shape's q/k/v */
    t_fused_rope(ENG_DT_BF16, 8, 2, 128, 1024, 0, 1); /* 8B-like heads, Qwen2's bias */
    t_fused_rope(ENG_DT_BF16, 8, 2, 128, 4096, 0, 1); /* ... 8 KiB rows: two passes in flight */
    t_fused_rope(ENG_DT_F16, 4, 2, 64, 512, 1, 1);    /* interleaved, 2 warps a row */
    t_fused_rope(ENG_DT_F32, 2, 1, 16, 256, 0, 0);    /* small heads, 4 warps a row */
    t_fused_chain(1024, 1024, 1536, 1536);
    t_fused_chain(512, 2048, 2048, 768); /* 2 warps a row in the residual products */
    t_convert(ENG_DT_BF16);
    t_convert(ENG_DT_F16);
    t_convert_split(ENG_DT_BF16);
    t_convert_split(ENG_DT_F16);
    t_batch(16, 5, 1, 0, 8, 2, 64);            /* decode tokens of 4 slots + a chunk of a fifth */
    t_batch(16, 17, 4, 0, 32, 8, 128);         /* 8B-like heads, flash-decoding splits */
    t_batch(9, 3, 3, 40, 16, 4, 256);          /* sliding window with splits, the largest head */
    t_batch(5, 4, 1, 0, 24, 2, 32);            /* a GQA group larger than a block's warps */
    t_attention(1, 250, 0, 4, 8, 2, 64, 0);    /* decode, flash-decoding splits */
    t_attention(1, 250, 0, 1, 32, 8, 128, 0);  /* decode, one split, 8B-like heads */
    t_attention(1, 0, 0, 3, 4, 4, 8, 0);       /* first position: splits with nothing to do */
    t_attention(20, 10, 0, 1, 8, 2, 32, 0);    /* prefill after a cached prefix */
    t_attention(7, 100, 16, 1, 16, 4, 256, 0); /* sliding window, the largest head */
    t_attention(1, 300, 40, 5, 8, 8, 64, 0);   /* window with splits */
    t_attention(1, 160, 0, 33, 32, 8, 128, 1); /* decode as the 8B graph: 6 of 33 splits used */
    t_attention(1, 3000, 0, 33, 32, 8, 64, 1); /* every split used, chunks of 96 keys */
    t_attention(1, 0, 0, 33, 32, 8, 64, 1);    /* first position: one split */
    t_attention(1, 700, 100, 16, 8, 2, 64, 1); /* window: splits over its keys only */
    t_attention(1, 100, 0, 33, 32, 8, 64, 1);  /* 1B-like: one block of 4 tiles a head */
    t_attention(1, 127, 0, 33, 32, 8, 64, 1);  /* the new key last of 4 tiles */
    t_attention(1, 128, 0, 33, 32, 8, 64, 1);  /* ... first of the next split */
    t_attention(1, 95, 0, 33, 16, 8, 128, 1);  /* Qwen3-0.6B-like */
    t_attention(1, 500, 0, 2, 32, 8, 128, 1);  /* 8B-like, tiles walked in turn */
    t_attention(1, 40, 0, 4, 64, 4, 64, 1);    /* 16 query heads a KV head */
    t_attention(1, 60, 50, 1, 8, 8, 256, 1);   /* window, the largest head, one split */
    t_attention(1, 90, 0, 33, 8, 2, 20, 1);    /* rows of 28 floats: 7 16-byte units (dec_ld) */
    t_attention(1, 90, 0, 33, 8, 2, 10, 1);    /* dims not a multiple of 4: rows of 11 floats */
    t_softmax(1, 37, 0);                       /* long-prompt attention's pieces */
    t_softmax(3, 0, 0);
    t_softmax(2, 20, 9);
    t_softmax(1, 4090, 0); /* rows both sides of the 4096 keys kept in registers */
    t_softmax(2, 5000, 700);
    t_softmax(1, 5000, 0);
    t_heads_to_rows(ENG_DT_BF16);
    t_heads_to_rows(ENG_DT_F32);
    t_pdl_graph();
    t_sample(1000, 0.0f, 0.9f, 1);
    t_sample(128256, 0.0f, 0.0f, 1);
    t_sample(1000, 0.8f, 0.9f, 200);
    t_sample(32000, 1.0f, 0.0f, 100);
    t_sample(32000, 0.5f, 0.5f, 100);
    t_sample(32000, 0.7f, 0.0f, 20);    /* top-p 0: the maximum alone */
    t_sample(151936, 0.8f, 0.95f, 100); /* Qwen's vocabulary */
    t_sample(40, 0.8f, 0.9f, 50);       /* fewer ids than chunks */
    t_sample(1, 0.8f, 0.5f, 5);
    t_sample(128256, 1.0f, 1.0f, 50); /* no nucleus cut */
    t_sample_rows(32000);
    t_sample_nan();
    if (argc > 1 && !strcmp(argv[1], "--bench-sample")) {
        bench_sample(128256, 0.0f, 1.0f);
        bench_sample(128256, 0.8f, 0.95f);
        bench_sample(128256, 0.8f, 1.0f);
        bench_sample(151936, 0.8f, 0.95f);
        bench_sample(32000, 0.8f, 0.95f);
    }
    if (argc > 1 && !strcmp(argv[1], "--bench-attn")) {
        static const int ps[] = {40, 100, 150, 500, 1500};
        for (int i = 0; i < 5; i++)
            for (int qh = 0; qh < 2; qh++) {
                bench_attention(32, 8, 128, ps[i], qh); /* 8B */
                bench_attention(32, 8, 64, ps[i], qh);  /* 1B */
                bench_attention(16, 8, 128, ps[i], qh); /* Qwen3-0.6B */
            }
    }
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench_matvec(ENG_DT_BF16, 6144, 4096, -1, 0);   /* 8B q/k/v */
        bench_matvec(ENG_DT_BF16, 28672, 4096, -1, 0);  /* 8B gate/up */
        bench_matvec(ENG_DT_BF16, 4096, 4096, -1, 0);   /* 8B o_proj */
        bench_matvec(ENG_DT_BF16, 4096, 14336, -1, 0);  /* 8B down */
        bench_matvec(ENG_DT_BF16, 128256, 4096, -1, 0); /* 8B classifier */
        bench_matvec(ENG_DT_BF16, 3072, 2048, -1, 0);   /* 1B q/k/v */
        bench_matvec(ENG_DT_BF16, 2048, 2048, -1, 0);   /* 1B o_proj */
        bench_matvec(ENG_DT_BF16, 16384, 2048, -1, 0);  /* 1B gate/up */
        bench_matvec(ENG_DT_BF16, 2048, 8192, -1, 0);   /* 1B down */
        bench_matvec(ENG_DT_BF16, 128256, 2048, -1, 0); /* 1B classifier (tied) */
        bench_matvec(ENG_DT_F32, 8192, 4096, -1, 0);
        /* the fused decode products: their epilogues' cost against the plain product */
        bench_matvec(ENG_DT_BF16, 6144, 4096, ENG_MV_PLAIN, 0);   /* 8B q/k/v + norm */
        bench_matvec(ENG_DT_BF16, 28672, 4096, ENG_MV_SWIGLU, 0); /* 8B gate/up + norm + SwiGLU */
        bench_matvec(ENG_DT_BF16, 4096, 4096, ENG_MV_RESID, 0);   /* 8B o_proj + residual */
        bench_matvec(ENG_DT_BF16, 4096, 14336, ENG_MV_RESID, 0);  /* 8B down + residual */
        bench_matvec(ENG_DT_BF16, 16384, 2048, ENG_MV_SWIGLU, 0); /* 1B gate/up */
        bench_matvec(ENG_DT_BF16, 2048, 8192, ENG_MV_RESID, 0);   /* 1B down */
        /* the same with x kept out of the weights' way, as the decode step runs them */
        bench_matvec(ENG_DT_BF16, 6144, 4096, ENG_MV_PLAIN, 1);
        bench_matvec(ENG_DT_BF16, 28672, 4096, ENG_MV_SWIGLU, 1);
        bench_matvec(ENG_DT_BF16, 4096, 4096, ENG_MV_RESID, 1);
        bench_matvec(ENG_DT_BF16, 4096, 14336, ENG_MV_RESID, 1); /* weights past L1 */
        bench_matvec(ENG_DT_BF16, 2048, 8192, ENG_MV_RESID, 1);
        /* and with two passes in flight */
        bench_matvec(ENG_DT_BF16, 6144, 4096, ENG_MV_PLAIN, 3);
        bench_matvec(ENG_DT_BF16, 28672, 4096, ENG_MV_SWIGLU, 3);
        bench_matvec(ENG_DT_BF16, 4096, 4096, ENG_MV_RESID, 3);
        bench_matvec(ENG_DT_BF16, 4096, 14336, ENG_MV_RESID, 3);
        bench_matvec(ENG_DT_BF16, 2048, 8192, ENG_MV_RESID, 3);
        bench_matvec(ENG_DT_BF16, 2048, 8192, ENG_MV_RESID, 2);
        static const int nb[] = {2, 4, 8, 16};
        for (int i = 0; i < 4; i++) {
            bench_matvec_batch(ENG_DT_BF16, 3072, 2048, nb[i]);
            bench_matvec_batch(ENG_DT_BF16, 16384, 2048, nb[i]);
            bench_matvec_batch(ENG_DT_BF16, 2048, 8192, nb[i]);
            bench_matvec_batch(ENG_DT_BF16, 128256, 2048, nb[i]);
            bench_matvec_batch(ENG_DT_BF16, 28672, 4096, nb[i]);
        }
    }
    printf("%s: %d failure(s)\n", test_failures ? "FAIL" : "PASS", test_failures);
    TEST_DONE();
}
