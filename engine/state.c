/* The run state's lifetime: parameters, their checks, and the backend's buffers. */
#include "backend.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

void eng_state_params_init(eng_state_params *p)
{
    memset(p, 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->max_batch = 64;
    p->n_threads = ENG_DEFAULT_THREADS;
    p->spin_us = ENG_DEFAULT_SPIN_US;
    p->n_seqs = 1;
}

eng_status eng_state_create(const eng_model *m, const eng_state_params *p, eng_state **out,
                            char *err, size_t errlen)
{
    eng_state_params def;
    *out = NULL;
    if (!p) {
        eng_state_params_init(&def);
        p = &def;
    }
    /* A caller built before n_seqs existed passes the shorter struct: one sequence. */
    size_t old_size = offsetof(eng_state_params, n_seqs);
    int n_seqs = p->struct_size >= sizeof(eng_state_params) ? p->n_seqs : 1;
    if (p->struct_size < old_size || p->max_batch <= 0 || p->ctx_len < 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "eng_state_params: bad struct_size, max_batch or ctx_len");
    if (n_seqs < 1 || n_seqs > ENG_MAX_SEQS)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "eng_state_params: n_seqs %d not in 1..%d", n_seqs, ENG_MAX_SEQS);
    if (p->n_threads < 1 || p->n_threads > ENG_MAX_THREADS || p->spin_us < 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "eng_state_params: n_threads %d not in 1..%d or spin_us %d < 0",
                        p->n_threads, ENG_MAX_THREADS, p->spin_us);
    const eng_config *c = &m->cfg;
    eng_state *st = calloc(1, sizeof(*st));
    if (!st) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the run state");
    int ctx = p->ctx_len ? p->ctx_len : c->seq_len;
    if (ctx > c->seq_len) ctx = c->seq_len;
    st->ctx_len = ctx;
    /* One sequence never needs more than its context; several may fill all their slots. */
    long cap = (long)ctx * n_seqs;
    st->max_batch = p->max_batch < cap ? p->max_batch : (int)cap;
    st->all_logits = p->all_logits;
    st->n_seqs = n_seqs;
    st->scratch = malloc(((size_t)st->max_batch + (size_t)n_seqs) * sizeof(int));
    if (!st->scratch) {
        free(st);
        return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the run state");
    }
    eng_status s = m->b->state_create(m, st, p, err, errlen);
    if (s != ENG_OK) {
        m->b->state_free(st);
        free(st->scratch);
        free(st);
        return s;
    }
    st->b = m->b;
    *out = st;
    return ENG_OK;
}

void eng_state_free(eng_state *s)
{
    if (!s) return;
    s->b->state_free(s);
    free(s->scratch);
    free(s);
}

const char *eng_state_error(const eng_state *s)
{
    return s->b->last_error(s);
}
