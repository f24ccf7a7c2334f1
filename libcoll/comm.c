/* SPDX-License-Identifier: MIT */
/* The communicator: selection, the provider chain, dispatch with "not supported"
 * fallback, failure latching. */
#include "coll_private.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

static const char *const opkind_name[] = {"allreduce", "reduce-scatter", "allgather", "broadcast",
                                          "barrier"};
static const char *const dtype_name[] = {"f32", "f64", "f16", "bf16", "i32", "i64", "u8"};

/* Statuses after which the ranks may disagree on what happened: the comm is done. */
static int is_fatal(coll_status st)
{
    return st != COLL_OK && st != COLL_ERR_INVALID_ARG && st != COLL_ERR_UNSUPPORTED &&
           st != COLL_ERR_CONFIG;
}

/* Copy what the caller's struct has; later fields keep their defaults. */
static coll_status read_params(const coll_params *in, coll_params *p, char *err, size_t errlen)
{
    coll_params_init(p);
    if (!in) return COLL_OK;
    if (in->struct_size < offsetof(coll_params, memtype) || in->struct_size > sizeof(*p))
        return coll_fail(COLL_ERR_INVALID_ARG, err, errlen,
                         "coll_params.struct_size is %zu: call coll_params_init() first",
                         in->struct_size);
    memcpy(p, in, in->struct_size);
    p->struct_size = sizeof(*p);
    return COLL_OK;
}

coll_status coll_comm_create_chain(const coll_params *params, const coll_layout *layout,
                                   const coll_provider *const *chain, int n, coll_comm **out,
                                   char *err, size_t errlen)
{
    coll_params p;
    coll_status st;
    if (!out || n < 1 || n > COLL_MAX_CHAIN)
        return coll_fail(COLL_ERR_INVALID_ARG, err, errlen, "coll_comm_create: bad arguments");
    *out = NULL;
    if ((st = read_params(params, &p, err, errlen))) return st;
    coll_comm *c = calloc(1, sizeof(*c));
    if (!c) return coll_fail(COLL_ERR_NOMEM, err, errlen, "coll_comm_create: out of memory");
    coll_env_read(&c->env, p.getenv_fn, p.getenv_ctx);
    c->layout = *layout;
    c->log.level = COLL_LOG_INFO;
    c->log.rank = layout->rank;
    long v;
    if ((st = coll_env_log_level(&c->env, &c->log.level, err, errlen))) goto free_comm;
    if ((st = coll_env_int(&c->env, KNOB_OP_TIMEOUT, 1, 86400000, 60000, &v, err, errlen)))
        goto free_comm;
    c->op_timeout_ms = p.op_timeout_ms > 0 ? p.op_timeout_ms : (int)v;
    c->op_timeout_explicit = p.op_timeout_ms > 0 || coll_env_isset(&c->env, KNOB_OP_TIMEOUT);
    if ((st = coll_env_int(&c->env, KNOB_RDV_TIMEOUT, 1, 86400000, 120000, &v, err, errlen)))
        goto free_comm;
    c->rdv_timeout_ms = (int)v;
    c->rdv_timeout_explicit = coll_env_isset(&c->env, KNOB_RDV_TIMEOUT);
    c->memtype = p.memtype;
    /* No CUDA device here (or no CUDA at all): every pointer is host memory. */
    if (c->memtype == COLL_MEM_AUTO && coll_cuda_device_count() == 0) c->memtype = COLL_MEM_HOST;

    c->p2p_max_bytes = p.p2p_max_bytes;
    c->nprov = n;
    for (int i = 0; i < n; i++)
        c->prov[i] = chain[i];
    /* Two passes: the late providers last, so they can talk through the others. */
    for (int late = 0; late < 2; late++)
        for (int i = 0; i < n; i++) {
            if (!chain[i]->late != !late) continue;
            c->log.rank = c->layout.rank; /* known once the ring has read its config */
            if ((st = chain[i]->create(c, &c->state[i], err, errlen))) {
                coll_log(&c->log, COLL_LOG_ERROR, "provider %s: %s", chain[i]->name, err);
                goto destroy_providers;
            }
            c->created[i] = 1;
            c->order[c->ncreated++] = i;
        }
    c->log.rank = c->layout.rank;
    *out = c;
    return COLL_OK;
destroy_providers:
    coll_comm_destroy(c);
    return st;
free_comm:
    free(c);
    return st;
}

coll_status coll_comm_create(const coll_params *params, coll_comm **out, char *err, size_t errlen)
{
    coll_params p;
    coll_env env;
    coll_status st;
    char dummy[1];
    if (!err || !errlen) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    err[0] = '\0';
    if (!out) return coll_fail(COLL_ERR_INVALID_ARG, err, errlen, "coll_comm_create: out is NULL");
    *out = NULL;
    if ((st = read_params(params, &p, err, errlen))) return st;
    coll_env_read(&env, p.getenv_fn, p.getenv_ctx);
    coll_logger lg = {.level = COLL_LOG_INFO, .rank = -1};
    if ((st = coll_env_log_level(&env, &lg.level, err, errlen))) return st;

    int visible = p.visible_devices >= 0 ? p.visible_devices : coll_cuda_device_count();
    const char *forced = p.provider ? p.provider : coll_env_get(&env, KNOB_PROVIDER);
    coll_layout layout;
    if ((st = coll_select(&env, forced, visible, coll_built_features(), &layout, err, errlen))) {
        coll_log(&lg, COLL_LOG_ERROR, "selection: %s", err);
        return st;
    }
    lg.rank = layout.rank;
    if (layout.warning[0]) coll_log(&lg, COLL_LOG_WARN, "%s", layout.warning);

    const coll_provider *chain[COLL_MAX_CHAIN];
    int n = 0;
    switch (layout.mode) {
    case COLL_MODE_LOCAL:
        chain[n++] = &coll_provider_local;
        break;
    case COLL_MODE_RING:
        /* Device all-reduces up to the one-shot limit before the staged ring. */
        chain[n++] = &coll_provider_ring;
        chain[n++] = &coll_provider_p2p;
        chain[n++] = &coll_provider_ring_cuda;
        break;
    case COLL_MODE_NCCL:
    case COLL_MODE_NCCL_MN:
        chain[n++] = &coll_provider_p2p;
        chain[n++] = &coll_provider_nccl;
        break;
    }
    if ((st = coll_comm_create_chain(&p, &layout, chain, n, out, err, errlen))) return st;
    const coll_layout *L = &(*out)->layout;
    coll_log(&(*out)->log, COLL_LOG_INFO,
             "layout: provider %s, mode %s, world size %d, rank %d, local rank %d of %d, node %d "
             "of %d, device %d (%d visible), peers: %s",
             L->provider, coll_mode_name(L->mode), L->world_size, L->rank, L->local_rank,
             L->local_size, L->node, L->nodes, L->device, L->visible,
             (*out)->peers[0] ? (*out)->peers : "none");
    return COLL_OK;
}

void coll_comm_destroy(coll_comm *c)
{
    if (!c) return;
    for (int k = c->ncreated - 1; k >= 0; k--) {
        int i = c->order[k];
        c->created[i] = 0; /* a late provider's destroy may exchange through the others */
        if (c->prov[i]->destroy) c->prov[i]->destroy(c->state[i]);
    }
    if (c->spawn.n) {
        /* The children run the same program: give them the op deadline to finish. */
        char err[256];
        coll_spawn_reap(&c->spawn, c->op_timeout_ms, &c->log, err, sizeof(err));
    }
    free(c);
}

void coll_comm_abort(coll_comm *c)
{
    if (!c) return;
    __atomic_store_n(&c->failed, 1, __ATOMIC_SEQ_CST);
    for (int i = 0; i < c->nprov; i++)
        if (c->created[i] && c->prov[i]->abort) c->prov[i]->abort(c->state[i]);
}

coll_status coll_comm_exchange(coll_comm *c, const void *mine, void *all, size_t bytes,
                               coll_memtype mem, void *stream, char *err, size_t errlen)
{
    if (__atomic_load_n(&c->failed, __ATOMIC_SEQ_CST))
        return coll_fail(COLL_ERR_FAILED, err, errlen, "communicator was aborted");
    coll_call call = {.kind = COLL_OP_ALLGATHER,
                      .sendbuf = mine,
                      .recvbuf = all,
                      .count = bytes,
                      .type = COLL_U8,
                      .stream = stream,
                      .mem = mem};
    coll_status st = coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "no provider to exchange with");
    for (int i = 0; i < c->nprov && st == COLL_ERR_UNSUPPORTED; i++)
        if (c->created[i]) st = c->prov[i]->call(c->state[i], &call, err, errlen);
    if (st == COLL_OK && mem == COLL_MEM_DEVICE)
        for (int i = 0; i < c->nprov && st == COLL_OK; i++)
            if (c->created[i] && c->prov[i]->sync)
                st = c->prov[i]->sync(c->state[i], stream, err, errlen);
    return st;
}

int coll_comm_rank(const coll_comm *c)
{
    return c ? c->layout.rank : -1;
}
int coll_comm_size(const coll_comm *c)
{
    return c ? c->layout.world_size : -1;
}
int coll_comm_local_rank(const coll_comm *c)
{
    return c ? c->layout.local_rank : -1;
}
int coll_comm_device(const coll_comm *c)
{
    return c ? c->layout.device : -1;
}
const char *coll_comm_provider(const coll_comm *c)
{
    return c ? c->layout.provider : NULL;
}
const char *coll_comm_last_error(const coll_comm *c)
{
    return c ? c->last_error : "";
}

static coll_status check_call(coll_comm *c, coll_call *call)
{
    char *e = c->last_error;
    size_t el = sizeof(c->last_error);
    if (call->kind == COLL_OP_BARRIER) {
        call->mem = COLL_MEM_HOST;
        return COLL_OK;
    }
    if ((unsigned)call->type >= COLL_DTYPE_COUNT)
        return coll_fail(COLL_ERR_INVALID_ARG, e, el, "%s: data type %d is not valid",
                         opkind_name[call->kind], (int)call->type);
    int reduces = call->kind == COLL_OP_ALLREDUCE || call->kind == COLL_OP_REDUCE_SCATTER;
    if (reduces && (unsigned)call->op >= COLL_OP_COUNT)
        return coll_fail(COLL_ERR_INVALID_ARG, e, el, "%s: op %d is not valid",
                         opkind_name[call->kind], (int)call->op);
    if (reduces && call->op == COLL_AVG && call->type != COLL_F32 && call->type != COLL_F64 &&
        call->type != COLL_F16 && call->type != COLL_BF16)
        return coll_fail(COLL_ERR_INVALID_ARG, e, el, "%s: avg needs a floating type, got %s",
                         opkind_name[call->kind], dtype_name[call->type]);
    if (call->kind == COLL_OP_BROADCAST && (call->root < 0 || call->root >= c->layout.world_size))
        return coll_fail(COLL_ERR_INVALID_ARG, e, el, "broadcast: root %d not in 0..%d", call->root,
                         c->layout.world_size - 1);
    if (call->count && (!call->recvbuf || (!call->sendbuf && call->kind != COLL_OP_BROADCAST)))
        return coll_fail(COLL_ERR_INVALID_ARG, e, el, "%s: NULL buffer", opkind_name[call->kind]);
    if (call->count > SIZE_MAX / 8 / (size_t)(c->layout.world_size > 0 ? c->layout.world_size : 1))
        return coll_fail(COLL_ERR_INVALID_ARG, e, el, "%s: count %zu is too large",
                         opkind_name[call->kind], call->count);
    if (c->memtype != COLL_MEM_AUTO) {
        call->mem = c->memtype;
    } else {
        call->mem = coll_cuda_memtype(call->recvbuf);
        const void *s = call->sendbuf ? call->sendbuf : call->recvbuf;
        if (coll_cuda_memtype(s) != call->mem)
            return coll_fail(COLL_ERR_INVALID_ARG, e, el,
                             "%s: sendbuf and recvbuf must both be host or both device memory",
                             opkind_name[call->kind]);
    }
    return COLL_OK;
}

static coll_status dispatch(coll_comm *c, coll_call *call)
{
    if (!c) return COLL_ERR_INVALID_ARG;
    if (__atomic_load_n(&c->failed, __ATOMIC_SEQ_CST)) {
        if (!c->last_error[0])
            snprintf(c->last_error, sizeof(c->last_error), "communicator was aborted");
        return COLL_ERR_FAILED;
    }
    coll_status st = check_call(c, call);
    if (st) return st;
    char err[sizeof(c->last_error)];
    err[0] = '\0';
    for (int i = 0; i < c->nprov; i++) {
        if (!c->created[i]) continue;
        st = c->prov[i]->call(c->state[i], call, err, sizeof(err));
        if (st != COLL_ERR_UNSUPPORTED) break;
        coll_log(&c->log, COLL_LOG_DEBUG,
                 "provider %s does not serve %s of %s on %s memory (%s)%s%s", c->prov[i]->name,
                 opkind_name[call->kind], dtype_name[call->type],
                 call->mem == COLL_MEM_DEVICE ? "device" : "host", err,
                 i + 1 < c->nprov ? "; trying " : "", i + 1 < c->nprov ? c->prov[i + 1]->name : "");
    }
    if (st == COLL_ERR_UNSUPPORTED) {
        snprintf(c->last_error, sizeof(c->last_error),
                 "no provider serves %s of %s on %s memory (last: %s)", opkind_name[call->kind],
                 dtype_name[call->type], call->mem == COLL_MEM_DEVICE ? "device" : "host", err);
        return st;
    }
    if (st) {
        snprintf(c->last_error, sizeof(c->last_error), "%s", err);
        if (is_fatal(st)) {
            __atomic_store_n(&c->failed, 1, __ATOMIC_SEQ_CST);
            coll_log(&c->log, COLL_LOG_ERROR, "%s failed: %s (%s)", opkind_name[call->kind], err,
                     coll_status_name(st));
        }
    }
    return st;
}

coll_status coll_allreduce(coll_comm *comm, const void *sendbuf, void *recvbuf, size_t count,
                           coll_dtype type, coll_op op, void *stream)
{
    coll_call c = {.kind = COLL_OP_ALLREDUCE,
                   .sendbuf = sendbuf,
                   .recvbuf = recvbuf,
                   .count = count,
                   .type = type,
                   .op = op,
                   .stream = stream};
    return dispatch(comm, &c);
}

coll_status coll_reduce_scatter(coll_comm *comm, const void *sendbuf, void *recvbuf,
                                size_t recvcount, coll_dtype type, coll_op op, void *stream)
{
    coll_call c = {.kind = COLL_OP_REDUCE_SCATTER,
                   .sendbuf = sendbuf,
                   .recvbuf = recvbuf,
                   .count = recvcount,
                   .type = type,
                   .op = op,
                   .stream = stream};
    return dispatch(comm, &c);
}

coll_status coll_allgather(coll_comm *comm, const void *sendbuf, void *recvbuf, size_t sendcount,
                           coll_dtype type, void *stream)
{
    coll_call c = {.kind = COLL_OP_ALLGATHER,
                   .sendbuf = sendbuf,
                   .recvbuf = recvbuf,
                   .count = sendcount,
                   .type = type,
                   .stream = stream};
    return dispatch(comm, &c);
}

coll_status coll_broadcast(coll_comm *comm, const void *sendbuf, void *recvbuf, size_t count,
                           coll_dtype type, int root, void *stream)
{
    coll_call c = {.kind = COLL_OP_BROADCAST,
                   .sendbuf = sendbuf,
                   .recvbuf = recvbuf,
                   .count = count,
                   .type = type,
                   .root = root,
                   .stream = stream};
    return dispatch(comm, &c);
}

coll_status coll_barrier(coll_comm *comm)
{
    coll_call c = {.kind = COLL_OP_BARRIER, .type = COLL_U8};
    return dispatch(comm, &c);
}

coll_status coll_sync(coll_comm *c, void *stream)
{
    if (!c) return COLL_ERR_INVALID_ARG;
    if (__atomic_load_n(&c->failed, __ATOMIC_SEQ_CST)) return COLL_ERR_FAILED;
    char err[sizeof(c->last_error)] = "";
    coll_status st = COLL_OK;
    for (int i = 0; i < c->nprov && !st; i++)
        if (c->created[i] && c->prov[i]->sync)
            st = c->prov[i]->sync(c->state[i], stream, err, sizeof(err));
    if (st) {
        snprintf(c->last_error, sizeof(c->last_error), "%s", err);
        if (is_fatal(st)) __atomic_store_n(&c->failed, 1, __ATOMIC_SEQ_CST);
    }
    return st;
}
