/* SPDX-License-Identifier: MIT */
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
void coll_kern_reduce_ref(void *dst, const void *src, int nblocks, size_t count, int dtype, int op);

/* The same on the GPU, enqueued on `stream` (a cudaStream_t). dst and src are device
 * pointers. Returns a cudaError_t (0 = success). */
int coll_kern_reduce(void *dst, const void *src, int nblocks, size_t count, int dtype, int op,
                     void *stream);

/* ------------------------------------------------------------------ one-shot all-reduce
 * Every rank exposes one device buffer to the others (CUDA IPC): a flag word, then two
 * data halves of max_bytes used by alternate epochs. An all-reduce at epoch e: `publish`
 * copies the rank's input into its half e % 2 and stores ready = e (release, system
 * scope); `reduce` waits until every rank's ready >= e (acquire), then combines all ranks'
 * halves in rank order 0..n-1 with the semantics above, so every rank gets the same bits.
 * Two halves make a second flag phase unnecessary: a rank writes half e % 2 again at epoch
 * e + 2 only after it saw every peer's ready >= e + 1, and a peer publishes e + 1 only after
 * its reads of epoch e are done (stream order). The epoch lives in device memory, so the
 * pair can be captured in a CUDA graph and replayed. */
#define COLL_P2P_MAX_RANKS 8
#define COLL_P2P_DATA_OFF 256 /* the flag word at 0, the halves from here */

typedef struct coll_p2p_args {
    void *peer[COLL_P2P_MAX_RANKS]; /* every rank's exposed buffer as mapped here (own too) */
    unsigned long long *epoch;      /* device: the last epoch this rank published */
    unsigned int *arrive;           /* device: publish blocks done (reset by the last) */
    volatile int *error;            /* mapped pinned host word: 0; 1 + peer that timed out;
                                       -1 aborted (set by the host: waits give up) */
    size_t max_bytes;               /* bytes of one half */
    unsigned long long timeout_ns;  /* a wait for a peer gives up after this */
    int nranks, rank;
} coll_p2p_args;

/* Bytes of the exposed buffer for halves of max_bytes. */
size_t coll_p2p_buffer_bytes(size_t max_bytes);

/* publish + reduce of count elements (count * size <= max_bytes; f32/f16/bf16 and the ops
 * of coll_kern_supports) on `stream`. dst may equal src. Returns a cudaError_t. */
int coll_kern_p2p_allreduce(const coll_p2p_args *a, void *dst, const void *src, size_t count,
                            int dtype, int op, void *stream);

/* Plain-C reference of the reduce step: dst[i] = op over r = 0..nranks-1 of data[r][i]. */
void coll_kern_p2p_reduce_ref(void *dst, const void *const *data, int nranks, size_t count,
                              int dtype, int op);

/* Conversions used by both sides (round to nearest even; NaN stays NaN). */
float coll_half_to_float(uint16_t h);
uint16_t coll_float_to_half(float f);
float coll_bf16_to_float(uint16_t b);
uint16_t coll_float_to_bf16(float f);

#ifdef __cplusplus
}
#endif
#endif
