/* SPDX-License-Identifier: MIT */
/* Plain-C reference kernels (also the fallback without AVX2/FMA) and the run-time pick. */
#include "cpu.h"
#include "common/errline.h"

#include <string.h>

static void matmul_scalar(float *out, const float *x, cpu_mat w, int T, int n, int d, int i0,
                          int i1)
{
    for (int t = 0; t < T; t++) {
        const float *xt = x + (size_t)t * d;
        for (int i = i0; i < i1; i++) {
            float s = 0.0f;
            for (int k = 0; k < d; k++)
                s += cpu_elem(w.p, w.dt, (size_t)i * d + k) * xt[k];
            out[(size_t)t * n + i] = s;
        }
    }
}

static float dot_scalar(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int k = 0; k < n; k++)
        s += a[k] * b[k];
    return s;
}

static void axpy_scalar(float *y, float a, const float *x, int n)
{
    for (int k = 0; k < n; k++)
        y[k] += a * x[k];
}

static void scores_scalar(float *att, const float *q, const float *k, size_t kstride, int n, int hd,
                          float scale)
{
    for (int p = 0; p < n; p++)
        att[p] = dot_scalar(q, k + (size_t)p * kstride, hd) * scale;
}

static void values_scalar(float *o, const float *att, float inv, const float *v, size_t vstride,
                          int n, int hd)
{
    for (int k = 0; k < hd; k++)
        o[k] = 0.0f;
    for (int p = 0; p < n; p++)
        axpy_scalar(o, att[p] * inv, v + (size_t)p * vstride, hd);
}

const eng_kernels eng_kernels_scalar = {
    .name = "scalar",
    .matmul = matmul_scalar,
    .dot = dot_scalar,
    .axpy = axpy_scalar,
    .scores = scores_scalar,
    .values = values_scalar,
};

#if defined(__x86_64__) && defined(__GNUC__)
static int has_avx2(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
}

static int has_avx512(void)
{
    return has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl");
}
#else
static int has_avx2(void)
{
    return 0;
}

static int has_avx512(void)
{
    return 0;
}
#endif

static int has_scalar(void)
{
    return 1;
}

/* ENG_CPU_KERNELS's values, fastest first. */
static const struct {
    const char *name;
    const eng_kernels *k;
    int (*usable)(void);
} tables[] = {
    {"avx512", &eng_kernels_avx512, has_avx512},
    {"avx2", &eng_kernels_avx2, has_avx2},
    {"scalar", &eng_kernels_scalar, has_scalar},
};

const eng_kernels *eng_kernels_pick(char *err, size_t errlen)
{
    const char *want = eng_knob_str(ENG_KNOB_CPU_KERNELS);
    int any = !strcmp(want, "auto");
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
        if (!any && strcmp(want, tables[i].name)) continue;
        if (tables[i].usable()) return tables[i].k;
        if (!any) {
            eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                     "ENG_CPU_KERNELS=%s: this CPU cannot run those kernels", want);
            return NULL;
        }
    }
    eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
             "ENG_CPU_KERNELS=%s: expected auto, avx512, avx2 or scalar", want);
    rc_errline_escape(err, errlen); /* the value may hold a newline */
    return NULL;
}

const char *eng_kernel_name(void)
{
    const eng_kernels *k = eng_kernels_pick(NULL, 0);
    return k ? k->name : "none (bad ENG_CPU_KERNELS)";
}
