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
    if ((st = walk(m, s, coll, want_logits)) != ENG_OK) return st;
    if (!want_logits) return m->b->sync(m, s);
    const float *host;
    if ((st = m->b->get_logits(m, s, &host)) != ENG_OK) return st;
    if (logits) *logits = host;
    return ENG_OK;
}

/* The decode step captured in pieces: the all-reduces the layers ask for end the piece so
 * far, replay it, run for real, and begin the next piece. */
typedef struct piece_ctx {
    const eng_model *m;
    eng_state *s;
    const eng_coll *real;
    int piece;
} piece_ctx;

static eng_status piece_allreduce(void *ctx, void *buf, size_t count, eng_elem et, eng_mem mem,
                                  void *stream)
{
    piece_ctx *p = ctx;
    const eng_backend *b = p->m->b;
    eng_state *s = p->s;
    if (p->piece == 0) {
        s->piece_buf = buf;
        s->piece_count = count;
        s->piece_et = et;
        s->piece_stream = stream;
    } else if (buf != s->piece_buf || count != s->piece_count || et != s->piece_et ||
               stream != s->piece_stream) {
        b->capture_end(p->m, s, -1);
        return ENG_ERR_UNSUPPORTED; /* the backend changed its buffers: not replayable */
    }
    eng_status st = b->capture_end(p->m, s, p->piece);
    if (st == ENG_OK) st = b->replay(p->m, s, p->piece);
    if (st != ENG_OK) return st;
    p->piece++;
    if ((st = p->real->allreduce(p->real->ctx, buf, count, et, mem, stream)) != ENG_OK) return st;
    return b->capture_begin(p->m, s);
}

/* The classifier and the sampler, on rank 0 only. */
static eng_status head(const eng_model *m, eng_state *s, int root, float temperature, float top_p)
{
    eng_status st = ENG_OK;
    if (root && (st = m->b->logits(m, s)) == ENG_OK) st = m->b->sample(m, s, temperature, top_p);
    return st;
}

/* The decode step (n == 1) as graphs: captured on first use, replayed after. mode 1: the
 * whole step, its all-reduces inside; mode 2: pieces, the all-reduces called between. */
static eng_status decode_graphs(const eng_model *m, eng_state *s, const eng_coll *coll, int mode,
                                int root, float temperature, float top_p)
{
    const eng_backend *b = m->b;
    eng_status st = b->set_inputs(m, s);
    if (st != ENG_OK) return st;
    if (s->graph_mode == mode) {
        if (mode == 1) return b->replay(m, s, 0);
        int pieces = ENG_MAX_PIECES(m->cfg.n_layers);
        for (int k = 0; k < pieces && st == ENG_OK; k++) {
            st = b->replay(m, s, k);
            if (st == ENG_OK && k + 1 < pieces)
                st = coll->allreduce(coll->ctx, s->piece_buf, s->piece_count, s->piece_et,
                                     ENG_MEM_DEVICE, s->piece_stream);
        }
        return st;
    }
    piece_ctx pc = {.m = m, .s = s, .real = coll};
    eng_coll pieces;
    const eng_coll *lc = coll;
    if (mode == 2) {
        pieces = *coll;
        pieces.allreduce = piece_allreduce;
        pieces.ctx = &pc;
        lc = &pieces;
    }
    if ((st = b->capture_begin(m, s)) != ENG_OK) return st;
    st = b->embed(m, s);
    for (int l = 0; l < m->cfg.n_layers && st == ENG_OK; l++)
        st = b->layer(m, s, l, lc);
    if (st == ENG_OK) st = head(m, s, root, temperature, top_p);
    if (st != ENG_OK) {
        b->capture_end(m, s, -1);
        return st;
    }
    if (mode == 2 && pc.piece != ENG_MAX_PIECES(m->cfg.n_layers) - 1) {
        b->capture_end(m, s, -1);
        return ENG_ERR_UNSUPPORTED; /* not two all-reduces per layer: no pieces to replay */
    }
    int last = mode == 1 ? 0 : pc.piece;
    if ((st = b->capture_end(m, s, last)) == ENG_OK) st = b->replay(m, s, last);
    if (st == ENG_OK) s->graph_mode = mode;
    return st;
}

eng_status eng_forward_sample(const eng_model *m, eng_state *s, const int *tokens, int n, int pos,
                              const eng_coll *coll, eng_sampler *smp, int *next)
{
    const eng_backend *b = m->b;
    if (coll && coll->size <= 1) coll = NULL;
    int root = !coll || coll->rank == 0;
    eng_status st = check_call(m, s, tokens, n, pos);
    if (st != ENG_OK) return st;
    if (root && !smp) return ENG_ERR_INVALID_ARG;
    s->tokens = tokens;
    s->n = n;
    s->pos = pos;
    s->draw = 0.0f;
    int32_t token = 0;
    if (!b->sample) {
        if ((st = walk(m, s, coll, root)) != ENG_OK) return st;
        if (root) {
            const float *host;
            if ((st = b->get_logits(m, s, &host)) != ENG_OK) return st;
            /* all_logits keeps every row: the last one is sampled */
            token = eng_sampler_sample(smp, host + (size_t)(s->all_logits ? n - 1 : 0) *
                                                       (size_t)m->cfg.vocab_size);
        }
    } else {
        float temperature = 0.0f, top_p = 1.0f;
        if (root) {
            eng_sampler_settings(smp, &temperature, &top_p);
            /* The host sampler draws only when it samples (temperature > 0): the same here. */
            if (temperature != 0.0f) s->draw = eng_sampler_draw(smp);
        }
        /* 1: every all-reduce of the step can sit in a graph; 2: they wait on the host. */
        int mode = 0;
        if (n == 1 && b->replay && !s->all_logits && !s->no_graphs) {
            if (!coll ||
                (coll->device_buffers && (size_t)m->cfg.dim * sizeof(float) <= coll->graph_bytes))
                mode = 1;
            else if (coll->device_buffers)
                mode = 2;
            if (s->graph_mode && s->graph_mode != mode) mode = 0; /* captured for another coll */
        }
        if (mode)
            st = decode_graphs(m, s, coll, mode, root, temperature, top_p);
        else if ((st = walk(m, s, coll, 0)) == ENG_OK)
            st = head(m, s, root, temperature, top_p);
        if (st != ENG_OK) return st;
        st = root ? b->get_token(m, s, &token) : b->sync(m, s);
        if (st != ENG_OK) return st;
    }
    /* Rank 0's id (or its -1 for NaN logits) to every rank. */
    if (coll && (st = coll->broadcast(coll->ctx, &token, 1, ENG_ELEM_I32, 0)) != ENG_OK) return st;
    *next = token;
    return ENG_OK;
}
