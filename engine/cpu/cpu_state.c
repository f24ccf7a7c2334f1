/* SPDX-License-Identifier: MIT */
/* The CPU backend's run state: activation buffers, KV cache and the worker pool. */
#include "cpu.h"

#include <stdlib.h>
#include <string.h>

eng_status cpu_state_create(const eng_model *m, eng_state *s, const eng_state_params *p, char *err,
                            size_t errlen)
{
    const eng_config *c = &m->cfg;
    const eng_shard_info *sh = &m->sh;
    cpu_state *cs = calloc(1, sizeof(*cs));
    if (!cs) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the run state");
    s->bs = cs;
    int ctx = s->ctx_len;
    size_t B = (size_t)s->max_batch, D = (size_t)c->dim, hd = (size_t)c->head_dim;
    size_t nq = (size_t)sh->n_heads * hd, nkv = (size_t)sh->n_kv_heads * hd;
    size_t F = (size_t)sh->ffn;
    cs->x = eng_alloc_aligned(B * D * 4);
    cs->xb = eng_alloc_aligned(B * D * 4);
    cs->q = eng_alloc_aligned(B * nq * 4);
    cs->k = eng_alloc_aligned(B * nkv * 4);
    cs->v = eng_alloc_aligned(B * nkv * 4);
    cs->att_out = eng_alloc_aligned(B * nq * 4);
    int threads = p->n_threads > 1 ? p->n_threads : 1;
    cs->att = eng_alloc_aligned((size_t)threads * (size_t)ctx * 4);
    cs->hb = eng_alloc_aligned(B * F * 4);
    cs->hb2 = eng_alloc_aligned(B * F * 4);
    size_t cache = (size_t)s->n_seqs * (size_t)c->n_layers * (size_t)ctx * nkv * 4;
    cs->key_cache = eng_alloc_aligned(cache);
    cs->value_cache = eng_alloc_aligned(cache);
    /* Only the segment with the classifier has logits; several sequences: a batch may ask
     * for a row per token. */
    size_t rows = !(m->parts & ENG_PART_HEAD) ? 0 : p->all_logits || s->n_seqs > 1 ? B : 1;
    cs->logits = rows ? eng_alloc_aligned(rows * (size_t)c->vocab_size * 4) : NULL;
    if (rows) { /* sampling on the backend: a scratch per worker, as many as rows at most */
        cs->smp_parts = (size_t)threads < rows ? threads : (int)rows;
        cs->smp_bytes = (eng_sample_scratch_bytes(c->vocab_size) + 63) / 64 * 64;
        cs->smp_scratch = eng_alloc_aligned((size_t)cs->smp_parts * cs->smp_bytes);
        cs->ids = malloc(rows * sizeof(int));
    }
    if (!cs->x || !cs->xb || !cs->q || !cs->k || !cs->v || !cs->att_out || !cs->att || !cs->hb ||
        !cs->hb2 || !cs->key_cache || !cs->value_cache ||
        (rows && (!cs->logits || !cs->smp_scratch || !cs->ids)))
        return eng_fail(ENG_ERR_NOMEM, err, errlen,
                        "out of memory for the run state (KV cache %zu MiB for %d positions x "
                        "%d sequences)",
                        2 * cache >> 20, ctx, s->n_seqs);
    if (p->n_threads > 1) return eng_pool_create(p->n_threads, p->spin_us, &cs->pool, err, errlen);
    return ENG_OK;
}

eng_status cpu_copy_seq(const eng_model *m, eng_state *s, int dst, int src, int n)
{
    cpu_state *cs = s->bs;
    size_t nkv = (size_t)m->sh.n_kv_heads * (size_t)m->cfg.head_dim;
    size_t layer = (size_t)s->ctx_len * nkv, seq = (size_t)m->cfg.n_layers * layer;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        size_t from = (size_t)src * seq + (size_t)l * layer,
               to = (size_t)dst * seq + (size_t)l * layer;
        memcpy(cs->key_cache + to, cs->key_cache + from, (size_t)n * nkv * sizeof(float));
        memcpy(cs->value_cache + to, cs->value_cache + from, (size_t)n * nkv * sizeof(float));
    }
    return ENG_OK;
}

void cpu_state_free(eng_state *s)
{
    cpu_state *cs = s->bs;
    if (!cs) return;
    eng_pool_free(cs->pool);
    free(cs->x);
    free(cs->xb);
    free(cs->q);
    free(cs->k);
    free(cs->v);
    free(cs->att_out);
    free(cs->att);
    free(cs->hb);
    free(cs->hb2);
    free(cs->key_cache);
    free(cs->value_cache);
    free(cs->logits);
    free(cs->ids);
    free(cs->smp_scratch);
    free(cs);
    s->bs = NULL;
}
