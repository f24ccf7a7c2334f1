/* Reduction kernels for libcoll's device paths, and the plain-C reference each is tested
 * against. Semantics (both sides, bit for bit): blocks are combined in block order
 * 0, 1, ..., nblocks-1; f16 and bf16 are widened to f32, combined in f32 and rounded to
 * nearest-even once at the end; avg is the f32 sum divided by nblocks; min/max use `<`. */
#ifndef COLL_KERNELS_H
#define COLL_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Data types and ops: the values of coll_dtype and coll_op (libcoll/coll.h). */
enum { COLL_KERN_F32 = 0, COLL_KERN_F16 = 2, COLL_KERN_BF16 = 3 };
enum { COLL_KERN_SUM, COLL_KERN_PROD, COLL_KERN_MIN, COLL_KERN_MAX, COLL_KERN_AVG };

/* 1 if (dtype, op) has a kernel. */
int coll_kern_supports(int dtype, int op);

/* dst[i] = op over b of src[b * count + i], for i < count (src: nblocks x count elements).
 * Plain C. */
void coll_kern_reduce_ref(void *dst, const void *src, int nblocks, size_t count, int dtype,
                          int op);

/* The same on the GPU, enqueued on `stream` (a cudaStream_t). dst and src are device
 * pointers. Returns a cudaError_t (0 = success). */
int coll_kern_reduce(void *dst, const void *src, int nblocks, size_t count, int dtype, int op,
                     void *stream);

/* Conversions used by both sides (round to nearest even; NaN stays NaN). */
float coll_half_to_float(uint16_t h);
uint16_t coll_float_to_half(float f);
float coll_bf16_to_float(uint16_t b);
uint16_t coll_float_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
