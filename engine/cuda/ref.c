/* SPDX-License-Identifier: MIT */
/* Plain-C references of the CUDA kernels (cuda_kernels.h): the same function, written the
 * obvious way, for the GPU unit tests to compare with. Compiled without CUDA as well. */
#include "../eng_internal.h"
#include "cuda_kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float ld(const void *p, int dt, size_t i)
{
    uint16_t h;
    if (dt == ENG_DT_F32) return ((const float *)p)[i];
    memcpy(&h, (const char *)p + 2 * i, 2);
    return dt == ENG_DT_BF16 ? eng_bf16_to_f32(h) : eng_f16_to_f32(h);
}

/* f32 to bf16/f16, round to nearest even (finite inputs). */
static uint16_t to_bf16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

static uint16_t to_f16(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    uint32_t sign = (b >> 16) & 0x8000u;
    int e = (int)((b >> 23) & 0xff) - 127 + 15;
    uint32_t man = b & 0x7fffffu;
    if (e >= 31) return (uint16_t)(sign | 0x7c00u);
    if (e <= 0) { /* subnormal */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000u;
        int shift = 14 - e;
        uint32_t h = man >> shift, rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (uint16_t)(sign | h);
    }
    uint32_t h = ((uint32_t)e << 10) | (man >> 13), rem = man & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

static void st(void *p, int dt, size_t i, float v)
{
    if (dt == ENG_DT_F32) {
        ((float *)p)[i] = v;
        return;
    }
    uint16_t h = dt == ENG_DT_BF16 ? to_bf16(v) : to_f16(v);
    memcpy((char *)p + 2 * i, &h, 2);
}

void eng_ref_convert_split(void *hi, void *lo, int dt, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        st(hi, dt, i, x[i]);
        st(lo, dt, i, x[i] - ld(hi, dt, i));
    }
}

void eng_ref_embed(float *x, const void *table, int dt, const int *tokens, int n, int D)
{
    for (int t = 0; t < n; t++)
        for (int i = 0; i < D; i++)
            x[(size_t)t * D + i] = ld(table, dt, (size_t)tokens[t] * D + i);
}

void eng_ref_add_rmsnorm(float *x, const float *delta, const float *bias, const float *w, float eps,
                         float *out, void *out16, int dt16, int n, int D)
{
    for (int t = 0; t < n; t++) {
        float *r = x + (size_t)t * D;
        double ss = 0;
        for (int i = 0; i < D; i++) {
            if (delta) r[i] += delta[(size_t)t * D + i] + (bias ? bias[i] : 0.0f);
            ss += (double)r[i] * r[i];
        }
        float inv = (float)(1.0 / sqrt(ss / D + eps));
        for (int i = 0; i < D; i++) {
            float o = w[i] * (inv * r[i]);
            out[(size_t)t * D + i] = o;
            if (out16) st(out16, dt16, (size_t)t * D + i, o);
        }
    }
}

void eng_ref_mul(float *out, const float *w, const float *x, int D)
{
    for (int i = 0; i < D; i++)
        out[i] = w[i] * x[i];
}

void eng_ref_rope_qkv(const eng_rope_args *a)
{
    int hd = a->hd, half = hd / 2, slots = a->nq + 2 * a->nkv;
    float v[ENG_CUDA_MAX_HD];
    for (int t = 0; t < a->n; t++) {
        int p = *a->pos + t;
        for (int s = 0; s < slots; s++) {
            int is_q = s < a->nq, is_k = !is_q && s < a->nq + a->nkv;
            const float *src = a->qkv + (size_t)t * slots * hd + (size_t)s * hd;
            for (int d = 0; d < hd; d++)
                v[d] = src[d] + (a->bias ? a->bias[(size_t)s * hd + d] : 0.0f);
            const float *nw = is_q ? a->q_norm : is_k ? a->k_norm : NULL;
            if (nw) {
                double ss = 0;
                for (int d = 0; d < hd; d++)
                    ss += (double)v[d] * v[d];
                float inv = (float)(1.0 / sqrt(ss / hd + a->eps));
                for (int d = 0; d < hd; d++)
                    v[d] = nw[d] * (inv * v[d]);
            }
            float *dst = is_q && a->heads_first ? a->q + ((size_t)s * a->n + t) * hd
                         : is_q                 ? a->q + (size_t)t * a->nq * hd + (size_t)s * hd
                         : is_k
                             ? a->kc + (size_t)p * a->nkv * hd + (size_t)(s - a->nq) * hd
                             : a->vc + (size_t)p * a->nkv * hd + (size_t)(s - a->nq - a->nkv) * hd;
            if (!is_q && !is_k) {
                memcpy(dst, v, (size_t)hd * sizeof(float));
                continue;
            }
            for (int i = 0; i < half; i++) {
                int i0 = a->interleaved ? 2 * i : i, i1 = a->interleaved ? 2 * i + 1 : i + half;
                float ang = (float)p * a->inv_freq[i], c = cosf(ang), sn = sinf(ang);
                dst[i0] = v[i0] * c - v[i1] * sn;
                dst[i1] = v[i0] * sn + v[i1] * c;
            }
        }
    }
}

void eng_ref_swiglu(const float *h, const float *b, float *out, void *out16, int dt16, int n, int F)
{
    for (int t = 0; t < n; t++)
        for (int c = 0; c < F; c++) {
            float g = h[(size_t)t * 2 * F + c], u = h[(size_t)t * 2 * F + F + c];
            if (b) {
                g += b[c];
                u += b[F + c];
            }
            float o = g / (1.0f + expf(-g)) * u;
            out[(size_t)t * F + c] = o;
            if (out16) st(out16, dt16, (size_t)t * F + c, o);
        }
}

void eng_ref_matvec(float *y, const void *w, int dt, const float *x, int rows, int d)
{
    for (int i = 0; i < rows; i++) {
        double s = 0;
        for (int k = 0; k < d; k++)
            s += (double)ld(w, dt, (size_t)i * d + k) * x[k];
        y[i] = (float)s;
    }
}

void eng_ref_matvec_batch(float *y, const void *w, int dt, const float *x, int rows, int d, int n)
{
    for (int i = 0; i < n; i++)
        eng_ref_matvec(y + (size_t)i * rows, w, dt, x + (size_t)i * d, rows, d);
}

static void matvec_fused_rows(const eng_mv_args *a)
{
    int es = a->dt == ENG_DT_F32 ? 4 : 2, F = a->rows / 2;
    double scale = 1.0;
    if (a->ssq_in) {
        double ss = 0;
        for (int i = 0; i < a->nss; i++)
            ss += a->ssq_in[i];
        scale = 1.0 / sqrt(ss / a->nd + a->eps);
    }
    if (a->mode == ENG_MV_SWIGLU) {
        for (int p = 0; p < F; p++) {
            double g = 0, u = 0;
            for (int k = 0; k < a->d; k++) {
                g += (double)ld(a->w, a->dt, (size_t)p * a->d + k) * a->x[k];
                u += (double)ld(a->w, a->dt, (size_t)(F + p) * a->d + k) * a->x[k];
            }
            g = g * scale + (a->bias ? a->bias[p] : 0.0f);
            u = u * scale + (a->bias ? a->bias[F + p] : 0.0f);
            a->out[p] = (float)(g / (1.0 + exp(-g)) * u);
        }
        return;
    }
    int per = 8 / eng_mv_wpr(a->rows, a->d, es);
    double sq = 0;
    for (int i = 0; i < a->rows; i++) {
        double y = 0;
        for (int k = 0; k < a->d; k++)
            y += (double)ld(a->w, a->dt, (size_t)i * a->d + k) * a->x[k];
        y *= scale;
        if (a->mode == ENG_MV_RESID) {
            float v = (float)(a->res[i] + y + (a->bias ? a->bias[i] : 0.0f));
            a->res[i] = v;
            a->out[i] = a->nw_out[i] * v;
            sq += (double)v * v;
            if ((i + 1) % per == 0 || i + 1 == a->rows) { /* the block's partial */
                a->ssq_out[i / per] = (float)sq;
                sq = 0;
            }
        } else {
            a->out[i] = (float)y;
        }
    }
}

void eng_ref_matvec_fused(const eng_mv_args *a)
{
    if (a->mode != ENG_MV_ROPE) {
        matvec_fused_rows(a);
        return;
    }
    /* the plain product, then the RoPE reference over it (a->rope.pos: a host pointer) */
    float *qkv = malloc((size_t)a->rows * sizeof(float));
    if (!qkv) return;
    eng_mv_args p = *a;
    p.mode = ENG_MV_PLAIN;
    p.out = qkv;
    matvec_fused_rows(&p);
    eng_rope_args r = a->rope;
    r.qkv = qkv;
    eng_ref_rope_qkv(&r);
    free(qkv);
}

void eng_ref_matvec_batch_fused(const eng_mvb_args *b)
{
    const eng_mv_args *a = &b->mv;
    int ow = a->mode == ENG_MV_SWIGLU ? a->rows / 2 : a->rows;
    for (int i = 0; i < b->n; i++) { /* row by row: the one-row reference */
        eng_mv_args one = *a;
        size_t ss = (size_t)i * b->ss_stride;
        one.x = a->x + (size_t)i * a->d;
        one.out = a->out + (size_t)i * ow;
        if (a->ssq_in) one.ssq_in = a->ssq_in + ss;
        if (a->res) one.res = a->res + (size_t)i * a->rows;
        if (a->ssq_out) one.ssq_out = a->ssq_out + ss;
        eng_ref_matvec_fused(&one);
    }
}

void eng_ref_matvec_tc(const eng_mvb_args *b)
{
    /* x as the kernel sees it: hi = bf16(x), lo = bf16(x - hi), summed in double */
    size_t nx = (size_t)b->n * b->mv.d;
    float *xs = malloc(nx * sizeof(float));
    if (!xs) return;
    for (size_t i = 0; i < nx; i++) {
        float hi = eng_bf16_to_f32(to_bf16(b->mv.x[i]));
        float lo = eng_bf16_to_f32(to_bf16(b->mv.x[i] - hi));
        xs[i] = (float)((double)hi + (double)lo);
    }
    eng_mvb_args r = *b;
    r.mv.x = xs;
    eng_ref_matvec_batch_fused(&r);
    free(xs);
}

void eng_ref_attention(const eng_attn_args *a)
{
    int hd = a->hd, group = a->nq / a->nkv;
    size_t kvw = (size_t)a->nkv * hd;
    for (int t = 0; t < a->n; t++) {
        int end = *a->pos + t,
            start = a->window > 0 && end - a->window + 1 > 0 ? end - a->window + 1 : 0;
        for (int h = 0; h < a->nq; h++) {
            const float *q = a->q + ((size_t)t * a->nq + h) * hd;
            size_t off = (size_t)(h / group) * hd;
            double mx = -INFINITY, sum = 0, o[ENG_CUDA_MAX_HD] = {0};
            for (int p = start; p <= end; p++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)q[d] * a->kc[(size_t)p * kvw + off + d];
                s *= a->scale;
                if (s > mx) mx = s;
            }
            for (int p = start; p <= end; p++) {
                double s = 0;
                for (int d = 0; d < hd; d++)
                    s += (double)q[d] * a->kc[(size_t)p * kvw + off + d];
                double e = exp(s * a->scale - mx);
                sum += e;
                for (int d = 0; d < hd; d++)
                    o[d] += e * a->vc[(size_t)p * kvw + off + d];
            }
            for (int d = 0; d < hd; d++)
                a->out[((size_t)t * a->nq + h) * hd + d] = (float)(o[d] / sum);
        }
    }
}

void eng_ref_rope_qkv_batch(const eng_rope_args *a, const eng_batch_args *b)
{
    /* Token by token: the one-sequence reference at that token's position, in its slot. */
    int width = (a->nq + 2 * a->nkv) * a->hd;
    for (int t = 0; t < a->n; t++) {
        eng_rope_args one = *a;
        size_t slot = (size_t)b->seq[t] * b->slot_stride;
        one.qkv = a->qkv + (size_t)t * width;
        one.q = a->q + (size_t)t * a->nq * a->hd;
        one.kc = a->kc + slot;
        one.vc = a->vc + slot;
        one.pos = &b->pos[t];
        one.n = 1;
        eng_ref_rope_qkv(&one);
    }
}

void eng_ref_attention_batch(const eng_attn_args *a, const eng_batch_args *b)
{
    size_t row = (size_t)a->nq * a->hd;
    for (int t = 0; t < a->n; t++) {
        eng_attn_args one = *a;
        size_t slot = (size_t)b->seq[t] * b->slot_stride;
        one.q = a->q + (size_t)t * row;
        one.out = a->out + (size_t)t * row;
        one.kc = a->kc + slot;
        one.vc = a->vc + slot;
        one.pos = &b->pos[t];
        one.n = 1;
        eng_ref_attention(&one);
    }
}

void eng_ref_gather_rows(float *out, const float *in, const int *rows, int n, int D)
{
    for (int j = 0; j < n; j++)
        memcpy(out + (size_t)j * D, in + (size_t)rows[j] * D, (size_t)D * sizeof(float));
}

void eng_ref_causal_softmax(float *s, int pos0, int nh, int n, int kv, int window)
{
    for (int h = 0; h < nh; h++)
        for (int t = 0; t < n; t++) {
            float *row = s + ((size_t)h * n + t) * kv;
            int end = pos0 + t, start = window > 0 && end - window + 1 > 0 ? end - window + 1 : 0;
            double mx = -INFINITY, sum = 0;
            for (int j = start; j <= end; j++)
                if (row[j] > mx) mx = row[j];
            for (int j = start; j <= end; j++)
                sum += exp(row[j] - mx);
            for (int j = 0; j < kv; j++)
                row[j] = j >= start && j <= end ? (float)(exp(row[j] - mx) / sum) : 0.0f;
        }
}

void eng_ref_heads_to_rows(void *out, int dt, const float *o, int nh, int n, int hd)
{
    for (int t = 0; t < n; t++)
        for (int h = 0; h < nh; h++)
            for (int d = 0; d < hd; d++)
                st(out, dt, ((size_t)t * nh + h) * hd + d, o[((size_t)h * n + t) * hd + d]);
}

/* A probability as 40-bit fixed point, as the kernels weigh it (exact: p <= 1). */
static uint64_t ref_qmass(float p)
{
    return (uint64_t)(p * 0x1p40f);
}

static int desc_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* As sample.cu, with tau found by a sort instead of radix selection. */
int eng_ref_sample(const float *lg, int V, float T, float top_p, float draw)
{
    for (int i = 0; i < V; i++)
        if (!isfinite(lg[i])) return -1;
    int best = 0;
    for (int i = 1; i < V; i++)
        if (lg[i] > lg[best]) best = i;
    if (T == 0.0f) return best;
    float mx = lg[best], tau = 0.0f, *p = malloc((size_t)V * sizeof(*p));
    if (!p) return -1;
    uint64_t total = 0;
    for (int i = 0; i < V; i++) {
        p[i] = expf((lg[i] - mx) / T);
        total += ref_qmass(p[i]);
    }
    if (top_p < 1.0f) {
        uint64_t limit = (uint64_t)((double)top_p * (double)total), run = 0;
        float *s = malloc((size_t)V * sizeof(*s));
        if (!s) {
            free(p);
            return -1;
        }
        memcpy(s, p, (size_t)V * sizeof(*s));
        qsort(s, (size_t)V, sizeof(*s), desc_float);
        /* the first value, from the top, whose mass and that of all above it exceed limit */
        for (int k = 0; k < V; k++) {
            run += ref_qmass(s[k]);
            if (run > limit && (k + 1 == V || s[k + 1] != s[k])) {
                tau = s[k];
                break;
            }
        }
        free(s);
    }
    uint64_t mass = 0;
    for (int i = 0; i < V; i++)
        if (p[i] >= tau) mass += ref_qmass(p[i]);
    uint64_t target = (uint64_t)((double)draw * (double)mass), run = 0;
    if (target >= mass) target = mass - 1;
    int got = best;
    for (int i = 0; i < V; i++) {
        if (p[i] < tau) continue;
        run += ref_qmass(p[i]);
        if (run > target) {
            got = i;
            break;
        }
    }
    free(p);
    return got;
}
