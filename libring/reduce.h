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

#endif
