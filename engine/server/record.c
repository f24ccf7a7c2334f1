/* SPDX-License-Identifier: MIT */
/* The lock-step command record: rank 0 fills one each step and broadcasts it; every rank then
 * runs exactly what it says. Fixed size (it depends only on --parallel and the prefill chunk,
 * which every rank gets on its command line), so one int32 broadcast per step carries new
 * prompts (chunk by chunk), the tokens sampled at the last step, freed slots and shutdown.
 * Every rank runs a record's RUN slots as one batched forward pass, in slot order.
 *
 * Layout, int32 words:
 *   [0] SRV_MAGIC  [1] step number (checks that no rank skipped one)  [2] flags
 *   [3] parallel   [4] chunk
 *   then per slot: op, pos, n, logits, copy_src, copy_n, tokens[chunk]
 */
#include "serve.h"

#include <stdlib.h>
#include <string.h>

#define SRV_MAGIC 0x52535633 /* "RSV3": one batched step, KV copies */
#define HDR 5
#define SLOT_HDR 6
#define FLAG_SHUTDOWN 1

int srv_record_init(srv_record *r, int parallel, int chunk)
{
    r->parallel = parallel;
    r->chunk = chunk;
    r->n_words = HDR + (size_t)parallel * (SLOT_HDR + (size_t)chunk);
    r->words = calloc(r->n_words, sizeof(int32_t));
    return r->words ? 0 : -1;
}

void srv_record_free(srv_record *r)
{
    free(r->words);
    r->words = NULL;
}

void srv_record_begin(srv_record *r, uint32_t step, int shutdown)
{
    memset(r->words, 0, r->n_words * sizeof(int32_t));
    r->words[0] = SRV_MAGIC;
    r->words[1] = (int32_t)(step & 0x7fffffff);
    r->words[2] = shutdown ? FLAG_SHUTDOWN : 0;
    r->words[3] = r->parallel;
    r->words[4] = r->chunk;
}

srv_slot_cmd srv_record_slot(const srv_record *r, int slot)
{
    int32_t *w = r->words + HDR + (size_t)slot * (SLOT_HDR + (size_t)r->chunk);
    return (srv_slot_cmd){.op = w[0],
                          .pos = w[1],
                          .n = w[2],
                          .logits = w[3],
                          .copy_src = w[4],
                          .copy_n = w[5],
                          .tokens = w + SLOT_HDR};
}

void srv_record_set(srv_record *r, int slot, srv_op op, int pos, const int *tokens, int n,
                    int logits)
{
    int32_t *w = r->words + HDR + (size_t)slot * (SLOT_HDR + (size_t)r->chunk);
    w[0] = op;
    w[1] = pos;
    w[2] = n;
    w[3] = logits;
    for (int i = 0; i < n; i++)
        w[SLOT_HDR + i] = tokens[i];
}

void srv_record_copy(srv_record *r, int slot, int src, int n)
{
    int32_t *w = r->words + HDR + (size_t)slot * (SLOT_HDR + (size_t)r->chunk);
    w[4] = src;
    w[5] = n;
}

int srv_record_check(const srv_record *r, uint32_t step, int *shutdown, char *err, size_t errlen)
{
    const int32_t *w = r->words;
    if (w[0] != SRV_MAGIC || w[3] != r->parallel || w[4] != r->chunk) {
        snprintf(err, errlen,
                 "command record: magic %#x parallel %d chunk %d, expected %#x, %d, %d (every "
                 "rank needs the same --parallel and --chunk)",
                 (unsigned)w[0], w[3], w[4], SRV_MAGIC, r->parallel, r->chunk);
        return -1;
    }
    if ((uint32_t)w[1] != (step & 0x7fffffff)) {
        snprintf(err, errlen, "command record: step %d, expected %u", w[1],
                 (unsigned)(step & 0x7fffffff));
        return -1;
    }
    long total = 0;
    for (int i = 0; i < r->parallel; i++) {
        srv_slot_cmd c = srv_record_slot(r, i);
        if (c.op < SRV_OP_IDLE || c.op > SRV_OP_FREE ||
            (c.op == SRV_OP_RUN && (c.n < 1 || c.n > r->chunk || c.pos < 0))) {
            snprintf(err, errlen, "command record: slot %d: op %d n %d pos %d out of range", i,
                     c.op, c.n, c.pos);
            return -1;
        }
        if (c.copy_n < 0 ||
            (c.copy_n > 0 && (c.copy_src < 0 || c.copy_src >= r->parallel || c.copy_src == i))) {
            snprintf(err, errlen, "command record: slot %d: copy of %d positions from slot %d", i,
                     c.copy_n, c.copy_src);
            return -1;
        }
        if (c.op == SRV_OP_RUN) total += c.n;
    }
    /* One step is one batch: a decode token per slot and one prefill chunk at most. */
    if (total > (long)r->parallel + r->chunk) {
        snprintf(err, errlen, "command record: %ld tokens in one step, at most %d", total,
                 r->parallel + r->chunk);
        return -1;
    }
    *shutdown = (w[2] & FLAG_SHUTDOWN) != 0;
    return 0;
}
