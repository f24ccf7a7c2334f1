/* SPDX-License-Identifier: MIT */
/* The forward pass: a walk over the segments (one, or several with layer mapping) and their
 * layers, each run by its segment's backend; the residual stream crosses from one segment to
 * the next at each boundary. */
#include "backend.h"

static eng_status check_call(const eng_model *m, const eng_state *s, const int *tokens, int n,
                             int pos)
{
    if (s->ahead_n) return ENG_ERR_INVALID_ARG; /* steps started ahead, not yet collected */
    if (n <= 0 || n > s->max_batch || pos < 0 || pos + n > s->ctx_len) return ENG_ERR_RANGE;
    for (int t = 0; t < n; t++)
        if (tokens[t] < 0 || tokens[t] >= m->cfg.vocab_size) return ENG_ERR_RANGE;
    return ENG_OK;
}

/* The call (tokens, n, pos, draw; a batch's positions, slots and logits rows, NULL for one
 * sequence) in every segment's state. */
static void set_call_batch(eng_state *s, const int *tokens, int n, int pos, float draw,
                           const int *tok_pos, const int *tok_seq, const int *out_row, int n_out,
                           int n_dec)
{
    for (int i = 0; i < s->n_seg; i++) {
        eng_state *ss = s->seg[i];
        ss->tokens = tokens;
        ss->n = n;
        ss->pos = pos;
        ss->draw = draw;
        ss->tok_pos = tok_pos;
        ss->tok_seq = tok_seq;
        ss->out_row = out_row;
        ss->n_out = n_out;
        ss->n_dec = n_dec;
        ss->row_temp = ss->row_top_p = ss->row_draw = NULL;
    }
}

static void set_call(eng_state *s, const int *tokens, int n, int pos, float draw)
{
    set_call_batch(s, tokens, n, pos, draw, NULL, NULL, NULL, 0, 0);
}

/* x of segment i into segment i + 1: the backend's own link (device or peer copy, ordered by
 * events, no host wait) or through the host buffer. */
static eng_status cross(const eng_model *m, eng_state *s, int i)
{
    const eng_model *a = m->seg[i], *b = m->seg[i + 1];
    eng_state *sa = s->seg[i], *sb = s->seg[i + 1];
    if (s->link[i]) return a->b->cross(a, sa, b, sb, s->link[i]);
    eng_status st = a->b->get_act(a, sa, s->act_h);
    if (st == ENG_OK) st = b->b->put_act(b, sb, s->act_h);
    return st;
}

/* Per segment: set_inputs, the embedding (first) or the crossing, its layers; then the
 * classifier on the last when asked. */
static eng_status walk(const eng_model *m, eng_state *s, const eng_coll *coll, int want_logits)
{
    eng_status st = ENG_OK;
    for (int i = 0; i < m->n_seg && st == ENG_OK; i++) {
        const eng_model *sm = m->seg[i];
        eng_state *ss = s->seg[i];
        const eng_backend *b = sm->b;
        st = b->set_inputs(sm, ss);
        if (st == ENG_OK) st = i == 0 ? b->embed(sm, ss) : cross(m, s, i - 1);
        for (int l = 0; l < sm->cfg.n_layers && st == ENG_OK; l++)
            st = b->layer(sm, ss, l, coll);
    }
    const eng_model *last = m->seg[m->n_seg - 1];
    if (st == ENG_OK && want_logits) st = last->b->logits(last, s->seg[m->n_seg - 1]);
    return st;
}

eng_status eng_forward(const eng_model *m, eng_state *s, const int *tokens, int n, int pos,
                       int want_logits, const eng_coll *coll, const float **logits)
{
    if (logits) *logits = NULL;
    eng_status st = check_call(m, s, tokens, n, pos);
    if (st != ENG_OK) return st;
    set_call(s, tokens, n, pos, 0.0f);
    if ((st = walk(m, s, coll, want_logits)) != ENG_OK) return st;
    /* The last segment's stream waited for every earlier one (events or host copies): its
     * end is the call's end. */
    const eng_model *last = m->seg[m->n_seg - 1];
    eng_state *sl = s->seg[m->n_seg - 1];
    if (!want_logits) return last->b->sync(last, sl);
    const float *host;
    if ((st = last->b->get_logits(last, sl, &host)) != ENG_OK) return st;
    if (logits) *logits = host;
    return ENG_OK;
}

/* Range checks of a batch, and the flagged rows into s->scratch ([n_out] rows). */
static eng_status check_batch(const eng_model *m, eng_state *s, const eng_batch *b, int *n_out)
{
    if (s->ahead_n) return ENG_ERR_INVALID_ARG;
    if (!b || b->n <= 0 || b->n > s->max_batch || !b->tokens || !b->pos || !b->seq)
        return ENG_ERR_RANGE;
    int *rows = s->scratch, *next = s->scratch + s->max_batch; /* next[seq]: its next position */
    for (int q = 0; q < s->n_seqs; q++)
        next[q] = -1;
    int k = 0;
    for (int t = 0; t < b->n; t++) {
        int q = b->seq[t], p = b->pos[t];
        if (b->tokens[t] < 0 || b->tokens[t] >= m->cfg.vocab_size || q < 0 || q >= s->n_seqs ||
            p < 0 || p >= s->ctx_len || (next[q] >= 0 && p != next[q]))
            return ENG_ERR_RANGE;
        next[q] = p + 1;
        if (b->logits && b->logits[t]) rows[k++] = t;
    }
    /* One sequence without all_logits keeps a single logits row (state.c's backends). */
    if (k > 1 && !s->all_logits && s->n_seqs == 1) return ENG_ERR_RANGE;
    *n_out = k;
    return ENG_OK;
}

/* The batch reordered into the scratch (see eng_state.n_dec): the tokens of sequences with
 * one token first, in the caller's order, then the others grouped by sequence (in the order
 * of their first token, each sequence's tokens in order); the flagged rows renumbered. */
static int reorder(eng_state *s, const eng_batch *b, int n_out, int **tok, int **pos, int **seq)
{
    int B = s->max_batch, n = b->n;
    int *rows = s->scratch, *cnt = rows + B, *at = cnt + s->n_seqs, *idx = at + s->n_seqs;
    *tok = idx + B, *pos = *tok + B, *seq = *pos + B;
    for (int q = 0; q < s->n_seqs; q++)
        cnt[q] = 0, at[q] = -1;
    for (int t = 0; t < n; t++)
        cnt[b->seq[t]]++;
    int n_dec = 0, cur;
    for (int t = 0; t < n; t++)
        if (cnt[b->seq[t]] == 1) idx[t] = n_dec++;
    cur = n_dec;
    for (int t = 0; t < n; t++) {
        int q = b->seq[t];
        if (cnt[q] == 1) continue;
        if (at[q] < 0) at[q] = cur, cur += cnt[q];
        idx[t] = at[q]++;
    }
    for (int t = 0; t < n; t++) {
        (*tok)[idx[t]] = b->tokens[t];
        (*pos)[idx[t]] = b->pos[t];
        (*seq)[idx[t]] = b->seq[t];
    }
    for (int k = 0; k < n_out; k++)
        rows[k] = idx[rows[k]];
    return n_dec;
}

eng_status eng_forward_batch(const eng_model *m, eng_state *s, const eng_batch *b,
                             const eng_coll *coll, const float **logits)
{
    if (logits) *logits = NULL;
    int n_out = 0;
    eng_status st = check_batch(m, s, b, &n_out);
    if (st != ENG_OK) return st;
    int *tok, *pos, *seq, n_dec = reorder(s, b, n_out, &tok, &pos, &seq);
    set_call_batch(s, tok, b->n, pos[0], 0.0f, pos, seq, s->scratch, n_out, n_dec);
    int want = n_out > 0;
    if ((st = walk(m, s, coll, want)) != ENG_OK) return st;
    const eng_model *last = m->seg[m->n_seg - 1];
    eng_state *sl = s->seg[m->n_seg - 1];
    if (!want) return last->b->sync(last, sl);
    const float *host;
    if ((st = last->b->get_logits(last, sl, &host)) != ENG_OK) return st;
    if (logits) *logits = host;
    return ENG_OK;
}

/* A batch of decode rows sampled on the device, as a graph captured on the first step with
 * this many rows and replayed after (tokens, positions, slots and the sampling settings are
 * in device memory, copied by set_inputs). *in_capture: the failure came from capturing. */
static eng_status batch_graph(const eng_model *m, eng_state *s, int *in_capture)
{
    const eng_backend *b = m->b;
    eng_status st = b->set_inputs(m, s);
    if (st != ENG_OK) return st;
    st = b->replay(m, s);
    if (st != ENG_ERR_UNSUPPORTED) return st;
    *in_capture = 1;
    if ((st = b->capture_begin(m, s)) != ENG_OK) return st;
    st = b->embed(m, s);
    for (int l = 0; l < m->cfg.n_layers && st == ENG_OK; l++)
        st = b->layer(m, s, l, NULL);
    if (st == ENG_OK) st = b->logits(m, s);
    if (st == ENG_OK) st = b->sample_batch(m, s);
    eng_status ce = b->capture_end(m, s);
    if (st == ENG_OK) st = ce;
    if (st != ENG_OK) return st;
    *in_capture = 0;
    return b->replay(m, s);
}

eng_status eng_forward_batch_sample(const eng_model *m, eng_state *s, const eng_batch *b,
                                    const eng_coll *coll, eng_sampler *const *smp, const int *keep,
                                    int *ids, const float **logits)
{
    if (logits) *logits = NULL;
    int n_out = 0;
    eng_status st = check_batch(m, s, b, &n_out);
    if (st != ENG_OK) return st;
    if (n_out > 0 && (!smp || !ids)) return ENG_ERR_INVALID_ARG;
    for (int k = 0; k < n_out; k++)
        if (!smp[k]) return ENG_ERR_INVALID_ARG;
    int *tok, *pos, *seq, n_dec = reorder(s, b, n_out, &tok, &pos, &seq);
    set_call_batch(s, tok, b->n, pos[0], 0.0f, pos, seq, s->scratch, n_out, n_dec);
    const eng_model *last = m->seg[m->n_seg - 1];
    eng_state *sl = s->seg[m->n_seg - 1];
    const eng_backend *be = last->b;
    int on_device = n_out > 0 && be->sample_batch && be->get_batch;
    if (on_device) { /* settings and draws ride with the inputs (a draw only where T > 0) */
        /* after the reordered batch in the scratch ([5 max_batch + 2 n_seqs] ints so far) */
        float *temp = (float *)(seq + s->max_batch), *top_p = temp + s->max_batch,
              *draw = top_p + s->max_batch;
        for (int k = 0; k < n_out; k++) {
            eng_sampler_settings(smp[k], &temp[k], &top_p[k]);
            draw[k] = temp[k] != 0.0f ? eng_sampler_draw(smp[k]) : 0.0f;
        }
        sl->row_temp = temp, sl->row_top_p = top_p, sl->row_draw = draw;
    }
    /* Decode rows only, each sampled, one device, one rank: a graph per row count. */
    if (on_device && n_dec == b->n && n_out == b->n && m->n_seg == 1 && !coll && s->bgraph == 0 &&
        be->replay) {
        int in_capture = 0;
        st = batch_graph(m, s, &in_capture);
        if (st == ENG_OK) return be->get_batch(last, sl, ids, keep, logits);
        if (!in_capture) return st;
        s->bgraph = -1; /* this backend could not capture it: walk from now on */
    }
    if ((st = walk(m, s, coll, n_out > 0)) != ENG_OK) return st;
    if (n_out == 0) return be->sync(last, sl);
    if (on_device) {
        if ((st = be->sample_batch(last, sl)) != ENG_OK) return st;
        return be->get_batch(last, sl, ids, keep, logits);
    }
    const float *host;
    if ((st = be->get_logits(last, sl, &host)) != ENG_OK) return st;
    size_t V = (size_t)m->cfg.vocab_size;
    for (int k = 0; k < n_out; k++)
        ids[k] = eng_sampler_sample(smp[k], host + (size_t)k * V);
    if (logits) *logits = host;
    return ENG_OK;
}

/* The classifier and the sampler of the last segment, on rank 0 only. */
static eng_status head(const eng_model *m, eng_state *s, int root, float temperature, float top_p)
{
    eng_status st = ENG_OK;
    if (root && (st = m->b->logits(m, s)) == ENG_OK) st = m->b->sample(m, s, temperature, top_p);
    return st;
}

/* The sampler's settings are arguments of the captured kernels: other settings, a new capture. */
static int graph_stale(const eng_state *s, float temperature, float top_p)
{
    return s->graph == 1 && (s->graph_temp != temperature || s->graph_top_p != top_p);
}

static void graph_captured(eng_state *s, float temperature, float top_p)
{
    s->graph = 1;
    s->graph_temp = temperature;
    s->graph_top_p = top_p;
}

/* The decode step of one segment as a graph, its inputs already on the device: captured on
 * first use, replayed after. With tensor parallelism the all-reduces are captured too
 * (coll->graph_bytes said they can be), and rank 0 alone adds the classifier and the sampler. */
static eng_status decode_launch(const eng_model *m, eng_state *s, const eng_coll *coll, int root,
                                float temperature, float top_p)
{
    const eng_backend *b = m->b;
    eng_status st = graph_stale(s, temperature, top_p) ? ENG_ERR_UNSUPPORTED : b->replay(m, s);
    if (st != ENG_ERR_UNSUPPORTED) return st;
    if ((st = b->capture_begin(m, s)) != ENG_OK) return st;
    st = b->embed(m, s);
    for (int l = 0; l < m->cfg.n_layers && st == ENG_OK; l++)
        st = b->layer(m, s, l, coll);
    if (st == ENG_OK) st = head(m, s, root, temperature, top_p);
    eng_status ce = b->capture_end(m, s);
    if (st == ENG_OK) st = ce;
    if (st == ENG_OK) graph_captured(s, temperature, top_p);
    return st == ENG_OK ? b->replay(m, s) : st;
}

static eng_status decode_graph(const eng_model *m, eng_state *s, const eng_coll *coll, int root,
                               float temperature, float top_p)
{
    eng_status st = m->b->set_inputs(m, s);
    return st == ENG_OK ? decode_launch(m, s, coll, root, temperature, top_p) : st;
}

/* Layer mapping: whether one graph can span every segment (one backend with graphs, its own
 * links at every boundary: GPUs only). */
static int graph_spans(const eng_model *m, const eng_state *s)
{
    const eng_backend *b = m->seg[0]->b;
    if (!b->replay || !b->wait_for || !b->sample) return 0;
    for (int i = 1; i < m->n_seg; i++)
        if (m->seg[i]->b != b || !s->link[i - 1]) return 0;
    return 1;
}

/* The decode step over every segment as one graph, captured and launched on the first
 * segment's stream: the others join it through the links' events and rejoin it at the end.
 * Each segment's inputs are copied on its own stream first, so the launch waits for them;
 * the last segment's stream waits for the launch before its token is read. *in_capture: the
 * failure (if any) came from capturing (the caller then walks instead). */
static eng_status decode_graph_spanning(const eng_model *m, eng_state *s, float temperature,
                                        float top_p, int *in_capture)
{
    int L = m->n_seg - 1;
    const eng_model *m0 = m->seg[0], *ml = m->seg[L];
    eng_state *s0 = s->seg[0], *sl = s->seg[L];
    const eng_backend *b = m0->b;
    eng_status st = ENG_OK;
    for (int i = 0; i <= L && st == ENG_OK; i++)
        st = b->set_inputs(m->seg[i], s->seg[i]);
    for (int i = 1; i <= L && st == ENG_OK; i++)
        st = b->wait_for(m0, s0, m->seg[i], s->seg[i]);
    if (st != ENG_OK) return st;
    st = graph_stale(s, temperature, top_p) ? ENG_ERR_UNSUPPORTED : b->replay(m0, s0);
    if (st == ENG_ERR_UNSUPPORTED) {
        *in_capture = 1;
        if ((st = b->capture_begin(m0, s0)) != ENG_OK) return st;
        st = b->embed(m0, s0);
        for (int i = 0; i <= L && st == ENG_OK; i++) {
            const eng_model *sm = m->seg[i];
            if (i) st = cross(m, s, i - 1);
            for (int l = 0; l < sm->cfg.n_layers && st == ENG_OK; l++)
                st = b->layer(sm, s->seg[i], l, NULL);
        }
        if (st == ENG_OK) st = b->logits(ml, sl);
        if (st == ENG_OK) st = b->sample(ml, sl, temperature, top_p);
        for (int i = 1; i <= L && st == ENG_OK; i++) /* every stream rejoins the first */
            st = b->wait_for(m0, s0, m->seg[i], s->seg[i]);
        eng_status ce = b->capture_end(m0, s0);
        if (st == ENG_OK) st = ce;
        if (st != ENG_OK) return st;
        *in_capture = 0;
        graph_captured(s, temperature, top_p);
        st = b->replay(m0, s0);
    }
    if (st == ENG_OK) st = b->wait_for(ml, sl, m0, s0);
    return st;
}

eng_status eng_forward_sample(const eng_model *m, eng_state *s, const int *tokens, int n, int pos,
                              const eng_coll *coll, eng_sampler *smp, int *next)
{
    const eng_model *last = m->seg[m->n_seg - 1];
    eng_state *sl = s->seg[m->n_seg - 1];
    const eng_backend *b = last->b;
    if (coll && coll->size <= 1) coll = NULL;
    int root = !coll || coll->rank == 0;
    eng_status st = check_call(m, s, tokens, n, pos);
    if (st != ENG_OK) return st;
    if (root && !smp) return ENG_ERR_INVALID_ARG;
    set_call(s, tokens, n, pos, 0.0f);
    int32_t token = 0;
    if (!b->sample) {
        if ((st = walk(m, s, coll, root)) != ENG_OK) return st;
        if (root) {
            const float *host;
            if ((st = b->get_logits(last, sl, &host)) != ENG_OK) return st;
            /* all_logits keeps every row: the last one is sampled */
            token = eng_sampler_sample(smp, host + (size_t)(s->all_logits ? n - 1 : 0) *
                                                       (size_t)m->cfg.vocab_size);
        }
    } else {
        float temperature = 0.0f, top_p = 1.0f;
        if (root) {
            eng_sampler_settings(smp, &temperature, &top_p);
            /* The host sampler draws only when it samples (temperature > 0): the same here. */
            if (temperature != 0.0f) set_call(s, tokens, n, pos, eng_sampler_draw(smp));
        }
        /* Tensor parallel: one graph only when every all-reduce of the step can be captured
         * (NCCL, p2p); the host-staged ring waits on the host, so that step walks. */
        int graphable = !coll || (coll->device_buffers &&
                                  (size_t)m->cfg.dim * sizeof(float) <= coll->graph_bytes);
        if (n == 1 && m->n_seg == 1 && b->replay && !s->all_logits && graphable) {
            st = decode_graph(m, s, coll, root, temperature, top_p);
        } else if (!coll && n == 1 && !s->all_logits && s->graph >= 0 && graph_spans(m, s)) {
            int in_capture = 0;
            st = decode_graph_spanning(m, s, temperature, top_p, &in_capture);
            if (st != ENG_OK && in_capture) {
                /* This backend could not capture across its segments: walk from now on. */
                s->graph = -1;
                st = walk(m, s, NULL, 1);
                if (st == ENG_OK) st = b->sample(last, sl, temperature, top_p);
            }
        } else {
            st = walk(m, s, coll, 0);
            if (st == ENG_OK) st = head(last, sl, root, temperature, top_p);
        }
        if (st != ENG_OK) return st;
        st = root ? b->get_token(last, sl, &token) : b->sync(last, sl);
        if (st != ENG_OK) return st;
    }
    /* Rank 0's id (or its -1 for NaN logits) to every rank. */
    if (coll && (st = coll->broadcast(coll->ctx, &token, 1, ENG_ELEM_I32, 0)) != ENG_OK) return st;
    *next = token;
    return ENG_OK;
}

/* Decoding ahead: slot (ahead_first + i) & 1 belongs to the i-th step not yet collected. */
eng_status eng_forward_ahead(const eng_model *m, eng_state *s, int token, int pos, eng_sampler *smp)
{
    const eng_backend *b = m->b;
    if (m->n_seg != 1 || !b->replay || !b->sample || !b->ahead_inputs || s->all_logits ||
        b->ahead_inputs(m, s, -1) != ENG_OK)
        return ENG_ERR_UNSUPPORTED;
    int chain = token == ENG_AHEAD_CHAIN;
    if (!smp || s->ahead_n >= 2) return ENG_ERR_INVALID_ARG;
    /* A chained step follows the last one started; any other needs none in flight (the host
     * copy of a full set of inputs is not double-buffered). */
    if (chain ? s->ahead_n == 0 || pos != s->ahead_pos + 1 : s->ahead_n != 0)
        return ENG_ERR_INVALID_ARG;
    if (pos < 0 || pos >= s->ctx_len || (!chain && (token < 0 || token >= m->cfg.vocab_size)))
        return ENG_ERR_RANGE;
    float temperature = 0.0f, top_p = 1.0f;
    eng_sampler_settings(smp, &temperature, &top_p);
    /* A chain keeps its graph: the one in flight may still run it. */
    if (chain && graph_stale(s, temperature, top_p)) return ENG_ERR_INVALID_ARG;
    /* The draws in eng_forward_sample's order: one per step, when it samples. */
    float draw = temperature != 0.0f ? eng_sampler_draw(smp) : 0.0f;
    if (!chain) s->ahead_tok = token;
    set_call(s, &s->ahead_tok, 1, pos, draw);
    int slot = (s->ahead_first + s->ahead_n) & 1;
    eng_status st = chain ? b->ahead_inputs(m, s, slot) : b->set_inputs(m, s);
    if (st == ENG_OK) st = decode_launch(m, s, NULL, 1, temperature, top_p);
    if (st == ENG_OK) st = b->ahead_fetch(m, s, slot);
    if (st != ENG_OK) return st;
    s->ahead_n++;
    s->ahead_pos = pos;
    return ENG_OK;
}

eng_status eng_forward_collect(const eng_model *m, eng_state *s, int *next)
{
    if (s->ahead_n == 0) return ENG_ERR_INVALID_ARG;
    eng_status st = m->b->ahead_wait(m, s, s->ahead_first, next);
    /* Collected even when it failed: the state is in error, not blocked. */
    s->ahead_first ^= 1;
    s->ahead_n--;
    return st;
}
