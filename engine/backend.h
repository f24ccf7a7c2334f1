/* SPDX-License-Identifier: MIT */
/* The backend seam: where weights and activations live and how one layer runs. forward.c
 * walks the layers and calls these; a backend is a static const table of them. Every op
 * returns ENG_OK or a status with the one-line reason in the state's or caller's err.
 *
 * Lifecycle: model_init, upload_globals, upload_layer for every layer (in order), then any
 * number of state_create / forward calls / state_free, then model_free. A forward call is
 * set_inputs, embed, layer for l = 0..L-1, then logits (+ get_logits or sample).
 *
 * Layer mapping: a backend may run a segment (eng_internal.h): m->cfg.n_layers is then its
 * own layer count (l counts from its first layer), m->parts says whether it holds the
 * embedding and the classifier, and several instances (GPUs) live in one process. */
#ifndef ENG_BACKEND_H
#define ENG_BACKEND_H

#include "eng_internal.h"

typedef struct eng_backend {
    const char *name;
    /* Whether this backend can run here (built in, a device visible); err says why not. */
    eng_status (*available)(const eng_load_params *p, char *err, size_t errlen);

    /* ---- weights (the model's shard, uploaded/converted once at load) */
    eng_status (*model_init)(eng_model *m, const eng_load_params *p, char *err, size_t errlen);
    /* Token embedding, final norm and classifier. */
    eng_status (*upload_globals)(eng_model *m, const eng_source *src, char *err, size_t errlen);
    /* Layer l from tr[ENG_T_LAYER_COUNT] (this rank's rows/columns taken from m->sh). */
    eng_status (*upload_layer)(eng_model *m, int l, const eng_tref *tr, char *err, size_t errlen);
    void (*model_free)(eng_model *m); /* also after a failed init or upload */
    void (*describe)(const eng_model *m, char *buf, size_t len);

    /* ---- run state: activations, KV cache, scratch, allocated once */
    eng_status (*state_create)(const eng_model *m, eng_state *s, const eng_state_params *p,
                               char *err, size_t errlen);
    void (*state_free)(eng_state *s);

    /* ---- one forward call; s->tokens, n, pos, draw are already set */
    eng_status (*set_inputs)(const eng_model *m, eng_state *s); /* to the device, if any */
    eng_status (*embed)(const eng_model *m, eng_state *s);
    /* Layer l over s->n tokens at s->pos; the two row-parallel partial sums go through coll
     * (NULL: one rank). */
    eng_status (*layer)(const eng_model *m, eng_state *s, int l, const eng_coll *coll);
    /* Final norm + classifier: every row (all_logits) or the last. */
    eng_status (*logits)(const eng_model *m, eng_state *s);
    /* The logits of the last logits call in host memory ([rows, vocab]). */
    eng_status (*get_logits)(const eng_model *m, eng_state *s, const float **host);
    /* Optional (NULL: sample on the host from get_logits): picks the next token from the last
     * row with the sampler's settings and s->draw, leaving it on the backend; get_token reads it.
     */
    eng_status (*sample)(const eng_model *m, eng_state *s, float temperature, float top_p);
    eng_status (*get_token)(const eng_model *m, eng_state *s, int *token);
    /* Optional (NULL: the host samples from get_logits): after logits of a batch, each of its
     * n_out rows sampled on the backend with s->row_temp/row_top_p/row_draw (set before
     * set_inputs); get_batch reads the ids (-1: logits not finite) and, for rows with keep[k]
     * set (keep NULL: none), row k of the logits into (*host)[k] ([n_out, vocab]). */
    eng_status (*sample_batch)(const eng_model *m, eng_state *s);
    eng_status (*get_batch)(const eng_model *m, eng_state *s, int *ids, const int *keep,
                            const float **host);

    /* ---- activations across device boundaries: the residual stream x [n, dim] (f32) */
    eng_status (*get_act)(const eng_model *m, eng_state *s, float *host);
    eng_status (*put_act)(const eng_model *m, eng_state *s, const float *host);
    eng_status (*sync)(const eng_model *m, eng_state *s);

    /* ---- optional (NULL: none): the decode step (n = 1, one rank, set_inputs to sample) as a
     * graph. replay returns ENG_ERR_UNSUPPORTED until one was captured for this state. */
    eng_status (*capture_begin)(const eng_model *m, eng_state *s);
    eng_status (*capture_end)(const eng_model *m, eng_state *s);
    eng_status (*replay)(const eng_model *m, eng_state *s);
    /* Optional with them: s's stream waits for the work queued so far on src's (both this
     * backend's; no host wait). Layer mapping orders its segments around one decode graph
     * that spans them all (captured on the first segment's stream). */
    eng_status (*wait_for)(const eng_model *m, eng_state *s, const eng_model *src_m,
                           eng_state *src);
    /* Optional with them (NULL: no decoding ahead): a decode step started before the host has
     * the token of the one before. ahead_inputs is set_inputs for a step whose input token is
     * the one the step before sampled, where the sampler left it on the device: only s->pos
     * and s->draw go from the host (through slot k of 2); slot -1 queues nothing and asks
     * whether this state can decode ahead now (ENG_ERR_UNSUPPORTED: not while profiling).
     * After replay, ahead_fetch queues the sampled id's copy to slot k; ahead_wait waits for
     * it (with the step's deadline). */
    eng_status (*ahead_inputs)(const eng_model *m, eng_state *s, int slot);
    eng_status (*ahead_fetch)(const eng_model *m, eng_state *s, int slot);
    eng_status (*ahead_wait)(const eng_model *m, eng_state *s, int slot, int *token);

    /* Optional (NULL: unsupported): copies KV positions [0, n) of slot src to slot dst, every
     * layer; the arguments are already checked. */
    eng_status (*copy_seq)(const eng_model *m, eng_state *s, int dst, int src, int n);

    /* The last failure's one-line reason (a CUDA error mid-run), or "" */
    const char *(*last_error)(const eng_state *s);

    /* ---- optional (NULL: ENG_LINK_HOST, through get_act/put_act): a boundary from segment
     * a to segment b, both of this backend. link_model, once at load: picks the mode (and
     * enables peer access), a warning for the log in warn ("" if none); no_p2p: never peer.
     * link_create, per run state (events, staging); cross moves x [n, dim] from a to b
     * without waiting for it on the host; link_free undoes link_create. */
    eng_status (*link_model)(const eng_model *a, const eng_model *b, int no_p2p,
                             eng_link_mode *mode, char *warn, size_t warnlen, char *err,
                             size_t errlen);
    eng_status (*link_create)(const eng_model *a, eng_state *sa, const eng_model *b, eng_state *sb,
                              eng_link_mode mode, void **link, char *err, size_t errlen);
    eng_status (*cross)(const eng_model *a, eng_state *sa, const eng_model *b, eng_state *sb,
                        void *link);
    void (*link_free)(void *link);

    /* ---- optional (NULL: none): the devices this backend sees (after CUDA_VISIBLE_DEVICES)
     * and one's free memory, for --device-layers and the split by free memory. */
    int (*device_count)(void);
    eng_status (*device_free)(int dev, size_t *free_bytes, char *err, size_t errlen);
} eng_backend;

extern const eng_backend eng_backend_cpu;
#ifdef ENG_WITH_CUDA
extern const eng_backend eng_backend_cuda;
#endif

/* The backend for a device (AUTO resolved); NULL with err when it cannot run here. */
const eng_backend *eng_backend_pick(const eng_load_params *p, char *err, size_t errlen);

/* The GPU backend built in (NULL: none), for layer mapping. */
const eng_backend *eng_backend_gpu(void);

#endif
