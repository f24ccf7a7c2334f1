/* The forward pass: a walk over the layers, each run by the model's backend. */
#include "backend.h"

static eng_status check_call(const eng_model *m, const eng_state *s, const int *tokens, int n,
                             int pos)
{
    if (n <= 0 || n > s->max_batch || pos < 0 || pos + n > s->ctx_len) return ENG_ERR_RANGE;
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= m->cfg.vocab_size) return ENG_ERR_RANGE;
    return ENG_OK;
}

/* set_inputs, embed, every layer, then the classifier when asked. */
static eng_status walk(const eng_model *m, eng_state *s, const eng_coll *coll, int want_logits)
{
    const eng_backend *b = m->b;
    eng_status st = b->set_inputs(m, s);
    if (st == ENG_OK) st = b->embed(m, s);
    for (int l = 0; l < m->cfg.n_layers && st == ENG_OK; l++)
        st = b->layer(m, s, l, coll);
    if (st == ENG_OK && want_logits) st = b->logits(m, s);
    return st;
}

eng_status eng_forward(const eng_model *m, eng_state *s, const int *tokens, int n, int pos,
                       int want_logits, const eng_coll *coll, const float **logits)
{
    if (logits) *logits = NULL;
    eng_status st = check_call(m, s, tokens, n, pos);
    if (st != ENG_OK) return st;
    s->tokens = tokens;
    s->n = n;
    s->pos = pos;
    s->draw = 0.0f;
    s->tok_pos = s->tok_seq = s->out_row = NULL;
    s->n_out = 0;
    if ((st = walk(m, s, coll, want_logits)) != ENG_OK) return st;
    if (!want_logits) return m->b->sync(m, s);
    const float *host;
    if ((st = m->b->get_logits(m, s, &host)) != ENG_OK) return st;
    if (logits) *logits = host;
    return ENG_OK;
}

/* Range checks of a batch, and the flagged rows into s->out_row (s->scratch). */
static eng_status check_batch(const eng_model *m, eng_state *s, const eng_batch *b)
{
    if (!b || b->n <= 0 || b->n > s->max_batch || !b->tokens || !b->pos || !b->seq)
        return ENG_ERR_RANGE;
    int *rows = s->scratch, *next = s->scratch + s->max_batch; /* next[seq]: its next position */
    for (int q = 0; q < s->n_seqs; q++)
        next[q] = -1;
    int n_out = 0;
    for (int t = 0; t < b->n; t++) {
        int q = b->seq[t], p = b->pos[t];
        if (b->tokens[t] < 0 || b->tokens[t] >= m->cfg.vocab_size || q < 0 || q >= s->n_seqs ||
            p < 0 || p >= s->ctx_len || (next[q] >= 0 && p != next[q]))
            return ENG_ERR_RANGE;
        next[q] = p + 1;
        if (b->logits && b->logits[t]) rows[n_out++] = t;
    }
    /* One sequence without all_logits keeps a single logits row (state.c's backends). */
    if (n_out > 1 && !s->all_logits && s->n_seqs == 1) return ENG_ERR_RANGE;
    s->out_row = rows;
    s->n_out = n_out;
    return ENG_OK;
}

eng_status eng_forward_batch(const eng_model *m, eng_state *s, const eng_batch *b,
                             const eng_coll *coll, const float **logits)
{
    if (logits) *logits = NULL;
    eng_status st = check_batch(m, s, b);
    if (st != ENG_OK) return st;
    s->tokens = b->tokens;
    s->n = b->n;
    s->pos = b->pos[0];
    s->draw = 0.0f;
    s->tok_pos = b->pos;
    s->tok_seq = b->seq;
    int want = s->n_out > 0;
    if ((st = walk(m, s, coll, want)) != ENG_OK) return st;
    if (!want) return m->b->sync(m, s);
    const float *host;
    if ((st = m->b->get_logits(m, s, &host)) != ENG_OK) return st;
    if (logits) *logits = host;
    return ENG_OK;
}

eng_status eng_forward_sample(const eng_model *m, eng_state *s, const int *tokens, int n, int pos,
                              eng_sampler *smp, int *next)
{
    const eng_backend *b = m->b;
    eng_status st = check_call(m, s, tokens, n, pos);
    if (st != ENG_OK) return st;
    s->tokens = tokens;
    s->n = n;
    s->pos = pos;
    s->draw = 0.0f;
    s->tok_pos = s->tok_seq = s->out_row = NULL;
    s->n_out = 0;
    if (!b->sample) {
        if ((st = walk(m, s, NULL, 1)) != ENG_OK) return st;
        const float *host;
        if ((st = b->get_logits(m, s, &host)) != ENG_OK) return st;
        /* all_logits keeps every row: the last one is sampled */
        *next = eng_sampler_sample(smp, host + (size_t)(s->all_logits ? n - 1 : 0) *
                                                   (size_t)m->cfg.vocab_size);
        return ENG_OK;
    }
    float temperature, top_p;
    eng_sampler_settings(smp, &temperature, &top_p);
    /* The host sampler draws only when it samples (temperature > 0): the same here. */
    if (temperature != 0.0f) s->draw = eng_sampler_draw(smp);
    if (n == 1 && b->replay && !s->all_logits) {
        /* The decode step as a graph: captured on first use, replayed after. */
        if ((st = b->set_inputs(m, s)) != ENG_OK) return st;
        st = b->replay(m, s);
        if (st == ENG_ERR_UNSUPPORTED) {
            if ((st = b->capture_begin(m, s)) != ENG_OK) return st;
            st = b->embed(m, s);
            for (int l = 0; l < m->cfg.n_layers && st == ENG_OK; l++)
                st = b->layer(m, s, l, NULL);
            if (st == ENG_OK) st = b->logits(m, s);
            if (st == ENG_OK) st = b->sample(m, s, temperature, top_p);
            eng_status ce = b->capture_end(m, s);
            if (st == ENG_OK) st = ce;
            if (st == ENG_OK) st = b->replay(m, s);
        }
    } else {
        st = walk(m, s, NULL, 1);
        if (st == ENG_OK) st = b->sample(m, s, temperature, top_p);
    }
    if (st != ENG_OK) return st;
    return b->get_token(m, s, next);
}
