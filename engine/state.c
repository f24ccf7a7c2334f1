/* SPDX-License-Identifier: MIT */
/* The run state's lifetime: parameters, their checks, and the backend's buffers. */
#include "backend.h"

#include <stddef.h>

#include <stdlib.h>
#include <string.h>

int eng_prefill_precision_parse(const char *name)
{
    if (!strcmp(name, "fast")) return ENG_PREFILL_FAST;
    if (!strcmp(name, "high")) return ENG_PREFILL_HIGH;
    return -1;
}

const char *eng_prefill_precision_name(int precision)
{
    return precision == ENG_PREFILL_HIGH ? "high" : "fast";
}

void eng_state_params_init(eng_state_params *p)
{
    memset(p, 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->max_batch = 64;
    p->n_threads = ENG_DEFAULT_THREADS;
    p->spin_us = ENG_DEFAULT_SPIN_US;
    p->n_seqs = 1;
}

/* One run state per segment (the state itself with one), then the boundaries' own state
 * and the host buffer of those that cross through the host. */
static eng_status create_segments(const eng_model *m, eng_state *st, const eng_state_params *p,
                                  char *err, size_t errlen)
{
    eng_status s;
    st->seg = calloc((size_t)m->n_seg, sizeof(*st->seg));
    st->link = calloc((size_t)m->n_seg, sizeof(*st->link));
    if (!st->seg || !st->link) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    st->n_seg = m->n_seg;
    for (int i = 0; i < m->n_seg; i++) {
        const eng_model *sm = m->seg[i];
        eng_state *ss = sm == m ? st : calloc(1, sizeof(*ss));
        if (!ss) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the run state");
        st->seg[i] = ss;
        ss->ctx_len = st->ctx_len;
        ss->max_batch = st->max_batch;
        ss->all_logits = st->all_logits;
        ss->n_seqs = st->n_seqs;
        ss->prefill_precision = st->prefill_precision;
        ss->b = sm->b; /* state_free is safe on a partly created state */
        if ((s = sm->b->state_create(sm, ss, p, err, errlen)) != ENG_OK) return s;
    }
    for (int i = 0; i + 1 < m->n_seg; i++) {
        const eng_model *a = m->seg[i], *b = m->seg[i + 1];
        if (m->link[i] != ENG_LINK_HOST) {
            s = a->b->link_create(a, st->seg[i], b, st->seg[i + 1], m->link[i], &st->link[i], err,
                                  errlen);
            if (s != ENG_OK) return s;
        } else if (!st->act_h) {
            st->act_h = eng_alloc_aligned((size_t)st->max_batch * (size_t)m->cfg.dim * 4);
            if (!st->act_h) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        }
    }
    return ENG_OK;
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
    /* A caller built before n_seqs (or prefill_precision) existed passes the shorter struct:
     * one sequence, fast prompt products. */
    size_t old_size = offsetof(eng_state_params, n_seqs);
    int n_seqs = p->struct_size >= offsetof(eng_state_params, prefill_precision) ? p->n_seqs : 1;
    int precision =
        p->struct_size >= sizeof(eng_state_params) ? p->prefill_precision : ENG_PREFILL_FAST;
    if (p->struct_size < old_size || p->max_batch <= 0 || p->ctx_len < 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "eng_state_params: bad struct_size, max_batch or ctx_len");
    if (n_seqs < 1 || n_seqs > ENG_MAX_SEQS)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "eng_state_params: n_seqs %d not in 1..%d", n_seqs, ENG_MAX_SEQS);
    if (precision != ENG_PREFILL_FAST && precision != ENG_PREFILL_HIGH)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "eng_state_params: prefill_precision %d is neither FAST nor HIGH",
                        precision);
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
    st->prefill_precision = precision;
    st->scratch = malloc((8 * (size_t)st->max_batch + 2 * (size_t)n_seqs) * sizeof(int));
    if (!st->scratch) {
        free(st);
        return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the run state");
    }
    eng_status s = create_segments(m, st, p, err, errlen);
    if (s != ENG_OK) {
        eng_state_free(st);
        return s;
    }
    *out = st;
    return ENG_OK;
}

void eng_state_free(eng_state *s)
{
    if (!s) return;
    for (int i = 0; i + 1 < s->n_seg; i++)
        if (s->link[i]) s->seg[i]->b->link_free(s->link[i]);
    for (int i = 0; i < s->n_seg; i++) {
        eng_state *ss = s->seg[i];
        if (!ss) continue;
        if (ss->b) ss->b->state_free(ss);
        if (ss != s) free(ss);
    }
    free(s->seg);
    free(s->link);
    free(s->act_h);
    free(s->scratch);
    free(s);
}

int eng_model_can_copy_seq(const eng_model *m)
{
    for (int i = 0; i < m->n_seg; i++)
        if (!m->seg[i]->b->copy_seq) return 0;
    return 1;
}

eng_status eng_state_copy_seq(const eng_model *m, eng_state *s, int dst, int src, int n)
{
    if (!eng_model_can_copy_seq(m)) return ENG_ERR_UNSUPPORTED;
    if (dst < 0 || dst >= s->n_seqs || src < 0 || src >= s->n_seqs || n < 0 || n > s->ctx_len)
        return ENG_ERR_RANGE;
    if (dst == src || n == 0) return ENG_OK;
    for (int i = 0; i < m->n_seg; i++) {
        eng_status st = m->seg[i]->b->copy_seq(m->seg[i], s->seg[i], dst, src, n);
        if (st != ENG_OK) return st;
    }
    return ENG_OK;
}

const char *eng_state_error(const eng_state *s)
{
    for (int i = 0; i < s->n_seg; i++) {
        const char *e = s->seg[i]->b->last_error(s->seg[i]);
        if (e && *e) return e;
    }
    return "";
}
