/* SPDX-License-Identifier: MIT */
/* The ring provider on host buffers: libring, with coll's types and ops mapped 1:1. */
#include "coll_private.h"
#include "ring.h"
#include "provider_ring.h"

#include <stdlib.h>

_Static_assert((int)COLL_F32 == (int)RING_F32 && (int)COLL_U8 == (int)RING_U8 &&
                   (int)COLL_DTYPE_COUNT == (int)RING_DTYPE_COUNT,
               "coll and ring data types differ");
_Static_assert((int)COLL_SUM == (int)RING_SUM && (int)COLL_AVG == (int)RING_AVG &&
                   (int)COLL_OP_COUNT == (int)RING_OP_COUNT,
               "coll and ring ops differ");

coll_status coll_ring_status(ring_status rs)
{
    static const coll_status map[RING_STATUS_COUNT] = {
        [RING_OK] = COLL_OK,
        [RING_ERR_INVALID_ARG] = COLL_ERR_INVALID_ARG,
        [RING_ERR_CONFIG] = COLL_ERR_CONFIG,
        [RING_ERR_NOMEM] = COLL_ERR_NOMEM,
        [RING_ERR_SYSTEM] = COLL_ERR_SYSTEM,
        [RING_ERR_TIMEOUT] = COLL_ERR_TIMEOUT,
        [RING_ERR_PEER_CLOSED] = COLL_ERR_PEER_CLOSED,
        [RING_ERR_PROTOCOL] = COLL_ERR_PROTOCOL,
        [RING_ERR_INVALID_USAGE] = COLL_ERR_INVALID_USAGE,
        [RING_ERR_AUTH] = COLL_ERR_AUTH,
        [RING_ERR_UNSUPPORTED] = COLL_ERR_UNSUPPORTED,
        [RING_ERR_ABORTED] = COLL_ERR_ABORTED,
        [RING_ERR_FAILED] = COLL_ERR_FAILED,
    };
    return (unsigned)rs < RING_STATUS_COUNT ? map[rs] : COLL_ERR_PROTOCOL;
}

coll_status coll_ring_op(ring_comm *rc, const coll_call *c, const void *send, void *recv,
                         size_t count, char *err, size_t errlen)
{
    ring_status rs = RING_OK;
    ring_dtype t = (ring_dtype)c->type;
    switch (c->kind) {
    case COLL_OP_ALLREDUCE:
        rs = ring_allreduce(rc, send, recv, count, t, (ring_op)c->op);
        break;
    case COLL_OP_REDUCE_SCATTER:
        rs = ring_reduce_scatter(rc, send, recv, count, t, (ring_op)c->op);
        break;
    case COLL_OP_ALLGATHER:
        rs = ring_allgather(rc, send, recv, count, t);
        break;
    case COLL_OP_BROADCAST:
        rs = ring_broadcast(rc, send, recv, count, t, c->root);
        break;
    case COLL_OP_BARRIER:
        rs = ring_barrier(rc);
        break;
    }
    if (rs == RING_OK) return COLL_OK;
    return coll_fail(coll_ring_status(rs), err, errlen, "ring: %.400s", ring_comm_last_error(rc));
}

static coll_status ring_create(coll_comm *comm, void **state, char *err, size_t errlen)
{
    const char *path = coll_env_get(&comm->env, KNOB_RING_CONFIG);
    ring_config cfg;
    char rerr[512];
    ring_status rs = ring_config_load(path, &cfg, rerr, sizeof(rerr));
    if (rs) return coll_fail(coll_ring_status(rs), err, errlen, "RING_CONFIG: %.480s", rerr);
    ring_params rp;
    ring_params_init(&rp);
    rp.config = &cfg;
    /* Only what was set for libcoll goes down; libcoll's defaults would hide RING_*_TIMEOUT_MS
     * (order of precedence: README, "Configuration"). */
    if (comm->rdv_timeout_explicit) rp.connect_timeout_ms = comm->rdv_timeout_ms;
    if (comm->op_timeout_explicit) rp.op_timeout_ms = comm->op_timeout_ms;
    ring_comm *rc = NULL;
    rs = ring_comm_create(&rp, &rc, rerr, sizeof(rerr));
    if (rs) return coll_fail(coll_ring_status(rs), err, errlen, "ring: %.480s", rerr);
    coll_layout *L = &comm->layout;
    L->world_size = ring_comm_size(rc);
    L->rank = ring_comm_rank(rc);
    L->local_rank = 0;
    L->local_size = 1;
    /* Ranks of one host share its GPUs round-robin. */
    L->device = L->visible > 0 ? L->rank % L->visible : -1;
    snprintf(comm->peers, sizeof(comm->peers), "right %.60s:%d, master %.60s:%d (%.100s)",
             cfg.right_ip, cfg.right_port, cfg.master_ip, cfg.master_port, path);
    comm->shared = rc;
    *state = rc;
    return COLL_OK;
}

static coll_status ring_call(void *state, const coll_call *c, char *err, size_t errlen)
{
    if (c->mem != COLL_MEM_HOST)
        return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "ring: device memory needs staging");
    return coll_ring_op(state, c, c->sendbuf, c->recvbuf, c->count, err, errlen);
}

static void ring_abort_(void *state)
{
    ring_comm_abort(state);
}
static void ring_destroy_(void *state)
{
    ring_comm_destroy(state);
}

const coll_provider coll_provider_ring = {
    .name = "ring",
    .create = ring_create,
    .call = ring_call,
    .sync = NULL,
    .abort = ring_abort_,
    .destroy = ring_destroy_,
};
