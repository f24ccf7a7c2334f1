/* SPDX-License-Identifier: MIT */
/* Element-wise reductions. Each loop is a plain C loop that the compiler vectorises, built
 * twice: for the baseline ISA and for AVX2 with FMA and F16C, picked per call from the CPU's
 * feature bits. (target_clones("arch=haswell") picked the baseline copy on every CPU that is
 * not a Haswell, newer ones included: perf showed f32_sum.default on an AVX-512 machine.) */
#include "reduce.h"

#include "common/half.h"

#include <stdint.h>
#include <string.h>

#if defined(__x86_64__)
#include <emmintrin.h>
#define RING_STREAM 1
#endif

/* -O2 (GCC 12's "very cheap" cost model) leaves these loops scalar: they need a run-time
 * overlap check and a remainder loop. The reductions are the ring's only arithmetic, so
 * they get -O3's vectoriser whatever the build's flags. */
#if defined(__GNUC__) && !defined(__clang__)
#define VEC __attribute__((optimize("O3")))
#else
#define VEC
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_THREAD__)
#define RING_REDUCE_AVX2 1
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

float ring_bf16_to_f32(uint16_t h)
{
    return rc_bf16_to_f32(h);
}
uint16_t ring_f32_to_bf16(float f)
{
    return rc_f32_to_bf16(f);
}
float ring_f16_to_f32(uint16_t h)
{
    return rc_f16_to_f32(h);
}
uint16_t ring_f32_to_f16(float f)
{
    return rc_f32_to_f16(f);
}

#define OP_SUM(x, y) ((x) + (y))
#define OP_PROD(x, y) ((x) * (y))
#define OP_MIN(x, y) ((y) < (x) ? (y) : (x))
#define OP_MAX(x, y) ((y) > (x) ? (y) : (x))

/* Native types. Integers combine as unsigned so that overflow wraps instead of being UB. */
#define LOOP_(name, ATTR, T, U, OP)                                                                \
    ATTR static void name(T *d, const T *a, const T *b, size_t n)                                  \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            d[i] = (T)OP((U)a[i], (U)b[i]);                                                        \
    }
/* Signed min/max must compare as signed. */
#define LOOP_CMP_(name, ATTR, T, OP)                                                               \
    ATTR static void name(T *d, const T *a, const T *b, size_t n)                                  \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            d[i] = OP(a[i], b[i]);                                                                 \
    }
/* Half types through f32. */
#define LOOP_HALF_(name, ATTR, TO32, FROM32, OP)                                                   \
    ATTR static void name(uint16_t *d, const uint16_t *a, const uint16_t *b, size_t n)             \
    {                                                                                              \
        for (size_t i = 0; i < n; i++)                                                             \
            d[i] = FROM32(OP(TO32(a[i]), TO32(b[i])));                                             \
    }

#ifdef RING_REDUCE_AVX2
#define LOOP(name, T, U, OP) LOOP_(name, VEC, T, U, OP) LOOP_(name##_avx2, AVX2 VEC, T, U, OP)
#define LOOP_CMP(name, T, OP) LOOP_CMP_(name, VEC, T, OP) LOOP_CMP_(name##_avx2, AVX2 VEC, T, OP)
#define LOOP_HALF(name, TO32, FROM32, OP)                                                          \
    LOOP_HALF_(name, VEC, TO32, FROM32, OP) LOOP_HALF_(name##_avx2, AVX2 VEC, TO32, FROM32, OP)
#else
#define LOOP(name, T, U, OP) LOOP_(name, VEC, T, U, OP)
#define LOOP_CMP(name, T, OP) LOOP_CMP_(name, VEC, T, OP)
#define LOOP_HALF(name, TO32, FROM32, OP) LOOP_HALF_(name, VEC, TO32, FROM32, OP)
#endif

#define FOUR(prefix, T, U)                                                                         \
    LOOP(prefix##_sum, T, U, OP_SUM)                                                               \
    LOOP(prefix##_prod, T, U, OP_PROD)                                                             \
    LOOP_CMP(prefix##_min, T, OP_MIN)                                                              \
    LOOP_CMP(prefix##_max, T, OP_MAX)

FOUR(f32, float, float)
FOUR(f64, double, double)
FOUR(i32, int32_t, uint32_t)
FOUR(i64, int64_t, uint64_t)
FOUR(u8, uint8_t, uint32_t)
LOOP_HALF(f16_sum, rc_f16_to_f32, rc_f32_to_f16, OP_SUM)
LOOP_HALF(f16_prod, rc_f16_to_f32, rc_f32_to_f16, OP_PROD)
LOOP_HALF(f16_min, rc_f16_to_f32, rc_f32_to_f16, OP_MIN)
LOOP_HALF(f16_max, rc_f16_to_f32, rc_f32_to_f16, OP_MAX)
LOOP_HALF(bf16_sum, rc_bf16_to_f32, rc_f32_to_bf16, OP_SUM)
LOOP_HALF(bf16_prod, rc_bf16_to_f32, rc_f32_to_bf16, OP_PROD)
LOOP_HALF(bf16_min, rc_bf16_to_f32, rc_f32_to_bf16, OP_MIN)
LOOP_HALF(bf16_max, rc_bf16_to_f32, rc_f32_to_bf16, OP_MAX)

typedef void (*reduce_fn)(void *, const void *, const void *, size_t);

#define ROW(prefix, sfx)                                                                           \
    {                                                                                              \
        (reduce_fn) prefix##_sum##sfx, (reduce_fn)prefix##_prod##sfx,                              \
            (reduce_fn)prefix##_min##sfx, (reduce_fn)prefix##_max##sfx,                            \
            (reduce_fn)prefix##_sum##sfx                                                           \
    }
/* [type][op]; avg reduces as a sum. */
static const reduce_fn table[RING_DTYPE_COUNT][RING_OP_COUNT] = {
    [RING_F32] = ROW(f32, ),   [RING_F64] = ROW(f64, ), [RING_F16] = ROW(f16, ),
    [RING_BF16] = ROW(bf16, ), [RING_I32] = ROW(i32, ), [RING_I64] = ROW(i64, ),
    [RING_U8] = ROW(u8, ),
};
#ifdef RING_REDUCE_AVX2
static const reduce_fn table_avx2[RING_DTYPE_COUNT][RING_OP_COUNT] = {
    [RING_F32] = ROW(f32, _avx2),   [RING_F64] = ROW(f64, _avx2), [RING_F16] = ROW(f16, _avx2),
    [RING_BF16] = ROW(bf16, _avx2), [RING_I32] = ROW(i32, _avx2), [RING_I64] = ROW(i64, _avx2),
    [RING_U8] = ROW(u8, _avx2),
};
#endif

/* The CPU's feature bits, read by libgcc's constructor; no state of our own. */
static int have_avx2(void)
{
#ifdef RING_REDUCE_AVX2
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

void ring_reduce(void *dst, const void *a, const void *b, size_t count, ring_dtype t, ring_op op)
{
#ifdef RING_REDUCE_AVX2
    if (have_avx2()) {
        table_avx2[t][op](dst, a, b, count);
        return;
    }
#endif
    table[t][op](dst, a, b, count);
}

VEC static void scale_f32(float *d, size_t n, float divisor)
{
    for (size_t i = 0; i < n; i++)
        d[i] = d[i] / divisor;
}

void ring_reduce_scale(void *buf, size_t count, ring_dtype t, int n)
{
    switch (t) {
    case RING_F32:
        scale_f32(buf, count, (float)n);
        break;
    case RING_F64:
        for (size_t i = 0; i < count; i++)
            ((double *)buf)[i] /= (double)n;
        break;
    case RING_F16:
        for (size_t i = 0; i < count; i++)
            ((uint16_t *)buf)[i] = rc_f32_to_f16(rc_f16_to_f32(((uint16_t *)buf)[i]) / (float)n);
        break;
    case RING_BF16:
        for (size_t i = 0; i < count; i++)
            ((uint16_t *)buf)[i] = rc_f32_to_bf16(rc_bf16_to_f32(((uint16_t *)buf)[i]) / (float)n);
        break;
    default:
        break;
    }
}

/* A plain copy of src to out and keep, a block at a time so that keep's copy reads src from
 * L1 (glibc's memcpy beat 16-byte loops here). */
static void copy_plain(unsigned char *out, unsigned char *keep, const unsigned char *src,
                       size_t bytes)
{
    for (size_t at = 0; at < bytes; at += 4096) {
        size_t n = bytes - at < 4096 ? bytes - at : 4096;
        memcpy(out + at, src + at, n);
        if (keep) memcpy(keep + at, src + at, n);
    }
}

#ifdef RING_STREAM
/* 64-byte lines of src streamed to out (64-byte aligned) and stored to keep unless NULL. */
static void stream_lines(unsigned char *out, unsigned char *keep, const unsigned char *src,
                         size_t bytes)
{
    for (size_t i = 0; i < bytes; i += 64) {
        __m128i x0 = _mm_loadu_si128((const __m128i *)(src + i)),
                x1 = _mm_loadu_si128((const __m128i *)(src + i + 16)),
                x2 = _mm_loadu_si128((const __m128i *)(src + i + 32)),
                x3 = _mm_loadu_si128((const __m128i *)(src + i + 48));
        _mm_stream_si128((__m128i *)(out + i), x0);
        _mm_stream_si128((__m128i *)(out + i + 16), x1);
        _mm_stream_si128((__m128i *)(out + i + 32), x2);
        _mm_stream_si128((__m128i *)(out + i + 48), x3);
        if (keep) {
            _mm_storeu_si128((__m128i *)(keep + i), x0);
            _mm_storeu_si128((__m128i *)(keep + i + 16), x1);
            _mm_storeu_si128((__m128i *)(keep + i + 32), x2);
            _mm_storeu_si128((__m128i *)(keep + i + 48), x3);
        }
    }
}
#endif

void ring_copy_out(void *out, void *keep, const void *src, size_t bytes, int stream)
{
    unsigned char *o = out, *k = keep == src ? NULL : keep;
    const unsigned char *s = src;
#ifdef RING_STREAM
    if (stream) {
        /* Only whole 64-byte lines of out are streamed: a part of a line would reach memory
         * as a partial write. The head and the tail take plain stores. */
        size_t head = (size_t)(-(uintptr_t)o & 63);
        if (head > bytes) head = bytes;
        size_t body = (bytes - head) & ~(size_t)63;
        copy_plain(o, k, s, head);
        o += head, s += head, k = k ? k + head : NULL;
        stream_lines(o, k, s, body);
        copy_plain(o + body, k ? k + body : NULL, s + body, bytes - head - body);
        return;
    }
#else
    (void)stream;
#endif
    if (k)
        copy_plain(o, k, s, bytes);
    else
        memcpy(o, s, bytes); /* glibc picks its own way for a large copy */
}

void ring_copy_fence(void)
{
#ifdef RING_STREAM
    _mm_sfence();
#endif
}
