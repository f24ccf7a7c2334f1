/* SPDX-License-Identifier: MIT */
/* Tensor-parallel layout: which heads and FFN columns a rank holds (mistral.rs rules). */
#include "eng_internal.h"

eng_status eng_tp_check_heads(int n_heads, int n_kv_heads, int tp_size, char *err, size_t errlen)
{
    if (n_heads <= 0 || n_kv_heads <= 0 || tp_size <= 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "invalid head counts: %d attention heads, %d KV heads, tensor parallel "
                        "size %d",
                        n_heads, n_kv_heads, tp_size);
    if (n_heads % tp_size != 0)
        return eng_fail(ENG_ERR_LAYOUT, err, errlen,
                        "Total number of attention heads (%d) must be divisible by tensor "
                        "parallel size (%d).",
                        n_heads, tp_size);
    if (tp_size <= n_kv_heads) {
        if (n_kv_heads % tp_size != 0)
            return eng_fail(ENG_ERR_LAYOUT, err, errlen,
                            "Total number of KV heads (%d) must be divisible by tensor parallel "
                            "size (%d) when KV heads are partitioned.",
                            n_kv_heads, tp_size);
    } else if (tp_size % n_kv_heads != 0) {
        return eng_fail(ENG_ERR_LAYOUT, err, errlen,
                        "Tensor parallel size (%d) must be divisible by total number of KV heads "
                        "(%d) when KV heads are replicated.",
                        tp_size, n_kv_heads);
    }
    /* After the rules above, so that their messages win (the (30, 8, 3) case). */
    if (n_heads % n_kv_heads != 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "attention heads (%d) are not a multiple of KV heads (%d)", n_heads,
                        n_kv_heads);
    return ENG_OK;
}

eng_status eng_tp_shard(const eng_config *cfg, int tp_rank, int tp_size, eng_shard_info *out,
                        char *err, size_t errlen)
{
    if (tp_size <= 0 || tp_rank < 0 || tp_rank >= tp_size)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "tensor parallel rank %d is outside size %d", tp_rank, tp_size);
    eng_status st = eng_tp_check_heads(cfg->n_heads, cfg->n_kv_heads, tp_size, err, errlen);
    if (st != ENG_OK) return st;
    if (cfg->hidden_dim < tp_size)
        return eng_fail(ENG_ERR_LAYOUT, err, errlen,
                        "FFN width (%d) is smaller than tensor parallel size (%d)", cfg->hidden_dim,
                        tp_size);
    eng_shard_info s = {0};
    s.tp_rank = tp_rank;
    s.tp_size = tp_size;
    s.n_heads = cfg->n_heads / tp_size;
    s.head0 = tp_rank * s.n_heads;
    if (tp_size <= cfg->n_kv_heads) {
        s.n_kv_heads = cfg->n_kv_heads / tp_size;
        s.kv_head0 = tp_rank * s.n_kv_heads;
    } else {
        /* ws/kv consecutive ranks share one KV head; their query heads all map to it. */
        s.n_kv_heads = 1;
        s.kv_head0 = tp_rank / (tp_size / cfg->n_kv_heads);
        s.kv_replicated = 1;
    }
    /* Uneven FFN split: the first (hidden % ws) ranks take one column more. */
    int base = cfg->hidden_dim / tp_size, extra = cfg->hidden_dim % tp_size;
    s.ffn = base + (tp_rank < extra ? 1 : 0);
    s.ffn0 = tp_rank * base + (tp_rank < extra ? tp_rank : extra);
    *out = s;
    return ENG_OK;
}
