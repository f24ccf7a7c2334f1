/* SPDX-License-Identifier: MIT */
/* The CPU backend's sampling of a batch: each flagged row gets its token from the host
 * sampler's row function with the row's settings and draw, the rows spread over the worker
 * pool (a row of a 32000-token vocabulary takes tens of microseconds at top-p, so a server's
 * step of 16 rows no longer waits on one thread for all of them). Every row's token is the
 * one eng_sampler_sample gives for it, whichever thread takes it. */
#include "cpu.h"

typedef struct sample_job {
    const eng_state *s;
    const cpu_state *cs;
    int vocab;
} sample_job;

static void sample_part(void *ctx, int part, int nparts)
{
    const sample_job *j = ctx;
    const eng_state *s = j->s;
    cpu_state *cs = (cpu_state *)j->cs;
    void *scratch = (char *)cs->smp_scratch + (size_t)part * cs->smp_bytes;
    for (int k = s->n_out * part / nparts; k < s->n_out * (part + 1) / nparts; k++)
        cs->ids[k] = eng_sample_row(scratch, cs->logits + (size_t)k * j->vocab, j->vocab,
                                    s->row_temp[k], s->row_top_p[k], s->row_draw[k]);
}

eng_status cpu_sample_batch(const eng_model *m, eng_state *s)
{
    cpu_state *cs = s->bs;
    if (!cs->logits || s->n_out > cs->logit_rows || !s->row_temp) return ENG_ERR_INVALID_ARG;
    sample_job j = {s, cs, m->cfg.vocab_size};
    if (s->n_out > 1 && cs->pool && cs->smp_parts > 1)
        eng_pool_run(cs->pool, sample_part, &j);
    else
        sample_part(&j, 0, 1);
    return ENG_OK;
}

eng_status cpu_get_batch(const eng_model *m, eng_state *s, int *ids, const int *keep,
                         const float **host)
{
    (void)m;
    (void)keep; /* every row's logits are in host memory already */
    cpu_state *cs = s->bs;
    for (int k = 0; k < s->n_out; k++)
        ids[k] = cs->ids[k];
    if (host) *host = cs->logits;
    return ENG_OK;
}
