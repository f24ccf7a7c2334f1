/* SPDX-License-Identifier: MIT */
/* Private: element-wise reductions on host memory. */
#ifndef RING_REDUCE_H
#define RING_REDUCE_H

#include "ring.h"

/* dst[i] = a[i] op b[i] for i < count; dst may alias a or b. RING_AVG reduces as a sum
 * (ring_reduce_scale divides at the end). f16 and bf16 are widened to f32, combined and
 * rounded to nearest even. */
void ring_reduce(void *dst, const void *a, const void *b, size_t count, ring_dtype t, ring_op op);
/* buf[i] /= n, for the floating types (the end of RING_AVG). */
void ring_reduce_scale(void *buf, size_t count, ring_dtype t, int n);
/* out[0..bytes) = src, and keep[0..bytes) = src too unless keep is NULL or src (src is read
 * from memory once, a block at a time). stream: out is written with non-temporal stores (no read
 * for ownership, not kept in the cache; x86-64 only, else plain stores), for results written once
 * and not read again soon; ring_copy_fence() must run before anyone else may read them. */
void ring_copy_out(void *out, void *keep, const void *src, size_t bytes, int stream);
/* Orders the streaming stores before what follows (sfence). */
void ring_copy_fence(void);

#endif
