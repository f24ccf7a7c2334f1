/* SPDX-License-Identifier: MIT */
/* The CPU backend's product kernels (plain C, AVX2, AVX-512) against a double-precision sum,
 * for f32, f16 and bf16 weights and awkward shapes (d not a multiple of 8 or 16, row counts not
 * a multiple of 4, batches of 1 to 33 rows). For each table this CPU runs, also:
 * - a row's result is bitwise the same alone (T = 1) as in any batch (the server relies on it);
 * - splitting the weight rows at multiples of 4 (the worker threads) changes no bit;
 * and ENG_CPU_KERNELS picks a table, or fails with a message that names it. */
#include "check.h"
#include "common/half.h"
#include "cpu/cpu.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

/* A value of type dt (exactly representable) from a small pseudo-random sequence. */
static float next(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return (float)((int)(*s >> 20) - 2048) / 1024.0f; /* [-2, 2), 10 fraction bits */
}

static void fill(void *w, int dt, size_t count, uint32_t seed)
{
    for (size_t i = 0; i < count; i++) {
        float v = next(&seed); /* exact in f16; bf16 rounds it, which is any bf16 value */
        if (dt == ENG_DT_F32)
            ((float *)w)[i] = v;
        else if (dt == ENG_DT_BF16)
            ((uint16_t *)w)[i] = rc_f32_to_bf16(v);
        else
            ((uint16_t *)w)[i] = rc_f32_to_f16(v);
    }
}

static const char *dt_name(int dt)
{
    return dt == ENG_DT_F32 ? "f32" : dt == ENG_DT_F16 ? "f16" : "bf16";
}

/* One shape on one table: the sums, the batch and split invariance. */
static void check_shape(const eng_kernels *K, int dt, int n, int d, int T)
{
    size_t es = dt == ENG_DT_F32 ? 4 : 2;
    void *w = malloc((size_t)n * d * es);
    float *x = malloc((size_t)T * d * sizeof(float));
    float *out = malloc((size_t)T * n * sizeof(float));
    float *one = malloc((size_t)n * sizeof(float));
    float *split = malloc((size_t)T * n * sizeof(float));
    if (!w || !x || !out || !one || !split) {
        printf("FAIL out of memory\n");
        failures++;
        goto free_all;
    }
    fill(w, dt, (size_t)n * d, 7u + (uint32_t)(n * 31 + d));
    fill(x, ENG_DT_F32, (size_t)T * d, 11u + (uint32_t)(T * 17 + d));
    cpu_mat m = {w, dt};
    K->matmul(out, x, m, T, n, d, 0, n);
    double worst = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) {
            double ref = 0, mag = 0;
            for (int k = 0; k < d; k++) {
                double p = (double)cpu_elem(w, dt, (size_t)i * d + k) * x[(size_t)t * d + k];
                ref += p;
                mag += fabs(p);
            }
            double err = fabs(out[(size_t)t * n + i] - ref) / (mag + 1e-30);
            if (err > worst) worst = err;
        }
    if (worst > 1e-5) {
        printf("FAIL %s %s n=%d d=%d T=%d: relative error %.3g\n", K->name, dt_name(dt), n, d, T,
               worst);
        failures++;
    }
    /* Each row alone. */
    for (int t = 0; t < T; t++) {
        K->matmul(one, x + (size_t)t * d, m, 1, n, d, 0, n);
        if (memcmp(one, out + (size_t)t * n, (size_t)n * sizeof(float))) {
            printf("FAIL %s %s n=%d d=%d: row %d of %d differs from the row alone\n", K->name,
                   dt_name(dt), n, d, t, T);
            failures++;
            break;
        }
    }
    /* The rows in pieces of 4, 8, 4, ... as threads would take them. */
    memset(split, 0, (size_t)T * n * sizeof(float));
    for (int i0 = 0, step = 4; i0 < n; i0 += step, step = step == 4 ? 8 : 4)
        K->matmul(split, x, m, T, n, d, i0, i0 + step < n ? i0 + step : n);
    if (memcmp(split, out, (size_t)T * n * sizeof(float))) {
        printf("FAIL %s %s n=%d d=%d T=%d: a split of the rows changes bits\n", K->name,
               dt_name(dt), n, d, T);
        failures++;
    }
free_all:
    free(w);
    free(x);
    free(out);
    free(one);
    free(split);
}

static void check_table(const eng_kernels *K)
{
    static const int ds[] = {1, 7, 8, 15, 16, 17, 33, 100, 773};
    static const int ns[] = {1, 3, 4, 5, 9, 37};
    static const int Ts[] = {1, 2, 3, 4, 5, 6, 16, 17, 33};
    int before = failures;
    for (int dt = ENG_DT_F32; dt <= ENG_DT_BF16; dt++)
        for (size_t a = 0; a < sizeof(ds) / sizeof(ds[0]); a++)
            for (size_t b = 0; b < sizeof(ns) / sizeof(ns[0]); b++)
                for (size_t c = 0; c < sizeof(Ts) / sizeof(Ts[0]); c++)
                    check_shape(K, dt, ns[b], ds[a], Ts[c]);
    printf("%s %s: %d shapes x 3 types\n", failures == before ? "ok" : "FAIL", K->name,
           (int)(sizeof(ds) / sizeof(ds[0]) * sizeof(ns) / sizeof(ns[0]) * sizeof(Ts) /
                 sizeof(Ts[0])));
}

/* ENG_CPU_KERNELS=value: the table named `want` (NULL: a refusal naming the knob). */
static const eng_kernels *pick(const char *value)
{
    char err[256] = "";
    setenv("ENG_CPU_KERNELS", value, 1);
    const eng_kernels *k = eng_kernels_pick(err, sizeof(err));
    unsetenv("ENG_CPU_KERNELS");
    if (!k && !strstr(err, "ENG_CPU_KERNELS")) {
        printf("FAIL ENG_CPU_KERNELS=%s refused without naming the knob: '%s'\n", value, err);
        failures++;
    }
    if (!k && strchr(err, '\n')) {
        printf("FAIL the refusal of a bad ENG_CPU_KERNELS is not one line\n");
        failures++;
    }
    if (!k) printf("refused: %s\n", err);
    return k;
}

int main(void)
{
    const eng_kernels *runs[3] = {&eng_kernels_scalar, NULL, NULL};
    if (pick("scalar") != &eng_kernels_scalar) {
        printf("FAIL ENG_CPU_KERNELS=scalar did not pick the plain-C kernels\n");
        failures++;
    }
    runs[1] = pick("avx2");
    runs[2] = pick("avx512");
    if (pick("bogus") || pick("avx2\nscalar")) {
        printf("FAIL a bad ENG_CPU_KERNELS was taken\n");
        failures++;
    }
    const eng_kernels *best = pick("auto");
    if (best != (runs[2] ? runs[2] : runs[1] ? runs[1] : &eng_kernels_scalar)) {
        printf("FAIL auto picked %s, not the fastest this CPU runs\n", best ? best->name : "none");
        failures++;
    }
    for (int i = 0; i < 3; i++)
        if (runs[i])
            check_table(runs[i]);
        else
            printf("note: %s kernels not run: this CPU lacks them (the others are tested)\n",
                   i == 1 ? "avx2" : "avx512");
    printf("%s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
