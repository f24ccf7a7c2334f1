/* SPDX-License-Identifier: MIT */
/* Test harness: runs N tensor-parallel shards of one model as N threads of this process.
 * The row-parallel partial sums are added in the test (an in-memory all-reduce, in rank
 * order) and rank 0's greedy token is handed to the others, as ringinfer does over the
 * network. Lets tests prove TP=N == TP=1 without sockets. */
#ifndef TEST_ENG_HARNESS_H
#define TEST_ENG_HARNESS_H

#include "../check.h"
#include "eng.h"

#include <pthread.h>

#include <stddef.h>

/* Feeds prompt[0..n_prompt) in one batched pass, then greedily generates n_gen tokens.
 * prompt_logits: NULL or [n_prompt, vocab] from rank 0; gen: NULL or [n_gen].
 * Returns 0, or -1 with a message in err. */
int eng_h_generate(const char *model, int tp, const int *prompt, int n_prompt, int n_gen,
                   float *prompt_logits, int *gen, char *err, size_t errlen);

/* The same with `threads` matmul threads per rank; gen_logits: NULL or [n_gen, vocab], the
 * logits each generated token was picked from (row 0: the last prompt position). */
int eng_h_generate_threads(const char *model, int tp, int threads, const int *prompt, int n_prompt,
                           int n_gen, float *prompt_logits, float *gen_logits, int *gen, char *err,
                           size_t errlen);

/* The same on a device (ENG_DEVICE_CUDA for the GPU tests). */
int eng_h_generate_on(eng_device device, const char *model, int tp, int threads, const int *prompt,
                      int n_prompt, int n_gen, float *prompt_logits, float *gen_logits, int *gen,
                      char *err, size_t errlen);

/* The same with the prompt products' precision (eng_prefill_precision). */
int eng_h_generate_prec(eng_device device, int precision, const char *model, int tp, int threads,
                        const int *prompt, int n_prompt, int n_gen, float *prompt_logits,
                        float *gen_logits, int *gen, char *err, size_t errlen);

/* ||a - b|| / ||b|| */
double eng_h_rel_err(const float *a, const float *b, size_t n);

/* The whole file, NUL-terminated (malloc'd; *len, when given, its size); NULL when unreadable. */
char *eng_h_slurp(const char *path, size_t *len);

/* One rank's part of an in-memory all-reduce over tp threads sharing bar and bufs[tp]: buf is
 * published in bufs[rank], all ranks' buffers are summed in rank order into scratch[count]
 * and copied back, so every rank gets the same bits. */
void eng_h_reduce_f32(float **bufs, int tp, int rank, pthread_barrier_t *bar, float *scratch,
                      float *buf, size_t count);
/* The lowest index of the largest value (greedy pick). */
int eng_h_argmax(const float *v, int n);

#endif

/* Runs eng_cli_main(argc, argv) as tp forked processes joined by shared memory (sum in rank
 * order, broadcast from rank 0). Rank r's stdout/stderr go to files out_r / err_r under dir
 * (dir/out0, dir/err0, ...). rcs[r] gets each exit code. Returns 0, or -1 if a rank died
 * or hung past 60 s (then it is killed). */
int eng_h_cli(int tp, int argc, char **argv, const char *dir, int *rcs);
