/* SPDX-License-Identifier: MIT */
/* The selection flow (docs/SELECTION.md): which provider, and this process's place in it.
 * Pure: the environment arrives as a coll_env, the GPU count and the build as arguments. */
#include "coll_private.h"

#include <stdio.h>
#include <string.h>

#define NAME(id) coll_knob_name(id)

const char *coll_mode_name(coll_mode m)
{
    switch (m) {
    case COLL_MODE_LOCAL:
        return "local (one rank; layers mapped over the visible GPUs)";
    case COLL_MODE_NCCL:
        return "nccl (one node, one process per visible GPU)";
    case COLL_MODE_NCCL_MN:
        return "nccl multi-node (MISTRALRS_MN_*)";
    case COLL_MODE_RING:
        return "ring (RING_CONFIG)";
    }
    return "?";
}

unsigned coll_built_features(void)
{
    unsigned b = 0;
#ifdef HAVE_NCCL
    b |= COLL_BUILT_NCCL;
#endif
#ifdef HAVE_RING
    b |= COLL_BUILT_RING;
#endif
#ifdef HAVE_CUDA
    b |= COLL_BUILT_CUDA;
#endif
    return b;
}

static coll_status select_mn(const coll_env *env, int local_rank, int visible, coll_layout *o,
                             char *err, size_t errlen)
{
    coll_status st;
    long global, local;
    if ((st = coll_env_int(env, KNOB_MN_GLOBAL, 1, 1 << 20, 0, &global, err, errlen))) return st;
    if (!coll_env_isset(env, KNOB_MN_LOCAL))
        return coll_fail(COLL_ERR_CONFIG, err, errlen,
                         "%s is set but %s is not: multi-node mode needs both on every node",
                         NAME(KNOB_MN_GLOBAL), NAME(KNOB_MN_LOCAL));
    if ((st = coll_env_int(env, KNOB_MN_LOCAL, 1, COLL_MAX_LOCAL, 0, &local, err, errlen)))
        return st;

    int head = coll_env_isset(env, KNOB_MN_HEAD_WORKERS) || coll_env_isset(env, KNOB_MN_HEAD_PORT);
    int worker = coll_env_isset(env, KNOB_MN_WORKER_ADDR) || coll_env_isset(env, KNOB_MN_WORKER_ID);
    if (head && worker) {
        coll_knob_id h =
            coll_env_isset(env, KNOB_MN_HEAD_WORKERS) ? KNOB_MN_HEAD_WORKERS : KNOB_MN_HEAD_PORT;
        coll_knob_id w =
            coll_env_isset(env, KNOB_MN_WORKER_ADDR) ? KNOB_MN_WORKER_ADDR : KNOB_MN_WORKER_ID;
        return coll_fail(COLL_ERR_CONFIG, err, errlen,
                         "head variable %s and worker variable %s are both set: a node is "
                         "either the head (MISTRALRS_MN_HEAD_*) or a worker "
                         "(MISTRALRS_MN_WORKER_*)",
                         NAME(h), NAME(w));
    }
    if (!head && !worker)
        return coll_fail(COLL_ERR_CONFIG, err, errlen,
                         "%s is set but neither the head's (%s, %s) nor a worker's (%s, %s) "
                         "variables are",
                         NAME(KNOB_MN_GLOBAL), NAME(KNOB_MN_HEAD_WORKERS), NAME(KNOB_MN_HEAD_PORT),
                         NAME(KNOB_MN_WORKER_ADDR), NAME(KNOB_MN_WORKER_ID));
    coll_knob_id need[2] = {head ? KNOB_MN_HEAD_WORKERS : KNOB_MN_WORKER_ADDR,
                            head ? KNOB_MN_HEAD_PORT : KNOB_MN_WORKER_ID};
    for (int i = 0; i < 2; i++)
        if (!coll_env_isset(env, need[i]))
            return coll_fail(COLL_ERR_CONFIG, err, errlen, "multi-node %s: %s is not set",
                             head ? "head" : "worker", NAME(need[i]));

    if (head) {
        long workers, port;
        if ((st = coll_env_int(env, KNOB_MN_HEAD_WORKERS, 1, 4096, 0, &workers, err, errlen)))
            return st;
        if ((st = coll_env_int(env, KNOB_MN_HEAD_PORT, 1, 65535, 0, &port, err, errlen))) return st;
        o->nodes = (int)workers + 1;
        o->num_workers = (int)workers;
        o->head_port = (int)port;
        o->node = 0;
        if (global != local * o->nodes)
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "%s=%ld but %s x nodes = %ld x %d = %ld (nodes = the head + %ld "
                             "workers)",
                             NAME(KNOB_MN_GLOBAL), global, NAME(KNOB_MN_LOCAL), local, o->nodes,
                             local * o->nodes, workers);
    } else {
        long id;
        if ((st = coll_parse_hostport(coll_env_get(env, KNOB_MN_WORKER_ADDR),
                                      NAME(KNOB_MN_WORKER_ADDR), o->head_host, sizeof(o->head_host),
                                      &o->head_port, err, errlen)))
            return st;
        if ((st = coll_env_int(env, KNOB_MN_WORKER_ID, 0, 4095, 0, &id, err, errlen))) return st;
        if (global % local != 0)
            return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s=%ld is not a multiple of %s=%ld",
                             NAME(KNOB_MN_GLOBAL), global, NAME(KNOB_MN_LOCAL), local);
        o->nodes = (int)(global / local);
        if (o->nodes < 2)
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "%s=%ld and %s=%ld make one node: no room for worker %ld",
                             NAME(KNOB_MN_GLOBAL), global, NAME(KNOB_MN_LOCAL), local, id);
        if (id >= o->nodes - 1)
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "%s=%ld but %s / %s = %d nodes leave worker ids 0..%d",
                             NAME(KNOB_MN_WORKER_ID), id, NAME(KNOB_MN_GLOBAL), NAME(KNOB_MN_LOCAL),
                             o->nodes, o->nodes - 2);
        o->worker_id = (int)id;
        o->node = (int)id + 1;
    }
    if (local > visible)
        return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s=%ld but only %d GPUs are visible",
                         NAME(KNOB_MN_LOCAL), local, visible);
    if (local_rank >= local)
        return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s=%d but %s=%ld", NAME(KNOB_LOCAL_RANK),
                         local_rank, NAME(KNOB_MN_LOCAL), local);
    o->mode = COLL_MODE_NCCL_MN;
    o->provider = "nccl";
    o->local_size = (int)local;
    o->local_rank = local_rank;
    o->world_size = (int)global;
    o->rank = o->node * (int)local + local_rank;
    o->device = local_rank;
    o->is_mn_head = (o->node == 0 && local_rank == 0);
    return COLL_OK;
}

static void set_nccl_single(coll_layout *o, int visible, int local_rank)
{
    o->mode = COLL_MODE_NCCL;
    o->provider = "nccl";
    o->world_size = visible;
    o->local_size = visible;
    o->local_rank = local_rank;
    o->rank = local_rank;
    o->device = local_rank;
}

static void set_ring(coll_layout *o)
{
    /* Rank, size and device come from the RING_CONFIG file when the ring is built. */
    o->mode = COLL_MODE_RING;
    o->provider = "ring";
}

static void set_local(coll_layout *o)
{
    o->mode = COLL_MODE_LOCAL;
    o->provider = "local";
    o->world_size = 1;
    o->rank = 0;
    o->device = o->visible > 0 ? 0 : -1;
}

coll_status coll_select(const coll_env *env, const char *forced, int visible, unsigned built,
                        coll_layout *o, char *err, size_t errlen)
{
    coll_status st;
    memset(o, 0, sizeof(*o));
    o->world_size = -1;
    o->rank = -1;
    o->local_size = 1;
    o->nodes = 1;
    o->device = -1;
    o->worker_id = -1;
    o->visible = visible < 0 ? 0 : visible;
    visible = o->visible;

    const char *no_nccl_s = coll_env_get(env, KNOB_NO_NCCL);
    int no_nccl = strcmp(no_nccl_s, "1") == 0;
    if (coll_env_isset(env, KNOB_NO_NCCL) && !no_nccl && strcmp(no_nccl_s, "0") != 0)
        snprintf(o->warning, sizeof(o->warning),
                 "%s='%s' is not 1, so NCCL is not disabled (only the value 1 disables it)",
                 NAME(KNOB_NO_NCCL), no_nccl_s);
    int ring_cfg = coll_env_isset(env, KNOB_RING_CONFIG);
    int mn = coll_env_isset(env, KNOB_MN_GLOBAL);

    if (!mn) {
        static const coll_knob_id stray[] = {KNOB_MN_LOCAL, KNOB_MN_HEAD_WORKERS, KNOB_MN_HEAD_PORT,
                                             KNOB_MN_WORKER_ADDR, KNOB_MN_WORKER_ID};
        for (size_t i = 0; i < sizeof(stray) / sizeof(stray[0]); i++)
            if (coll_env_isset(env, stray[i]))
                return coll_fail(COLL_ERR_CONFIG, err, errlen,
                                 "%s is set but %s is not: set it to turn multi-node mode on, "
                                 "or unset %s",
                                 NAME(stray[i]), NAME(KNOB_MN_GLOBAL), NAME(stray[i]));
    }

    long local_rank = 0;
    if (coll_env_isset(env, KNOB_LOCAL_RANK)) {
        if ((st = coll_env_int(env, KNOB_LOCAL_RANK, 1, COLL_MAX_LOCAL - 1, 0, &local_rank, err,
                               errlen)))
            return st;
        if (!coll_env_isset(env, KNOB_LOCAL_RDV) || !coll_env_isset(env, KNOB_LOCAL_TOKEN))
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "%s is set without %s and %s: only libcoll sets these, on the "
                             "processes it spawns",
                             NAME(KNOB_LOCAL_RANK), NAME(KNOB_LOCAL_RDV), NAME(KNOB_LOCAL_TOKEN));
        o->is_child = 1;
    }

    if (forced && !*forced) forced = NULL;
    if (forced && strcmp(forced, "local") && strcmp(forced, "nccl") && strcmp(forced, "ring"))
        return coll_fail(COLL_ERR_CONFIG, err, errlen,
                         "provider '%s' is unknown: expected local, nccl or ring", forced);

    if (mn) {
        if (ring_cfg)
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "%s (multi-node NCCL) and %s (the ring) are both set: unset one",
                             NAME(KNOB_MN_GLOBAL), NAME(KNOB_RING_CONFIG));
        if (no_nccl)
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "%s (multi-node NCCL) and %s=1 contradict each other: unset one",
                             NAME(KNOB_MN_GLOBAL), NAME(KNOB_NO_NCCL));
        if (forced && strcmp(forced, "nccl"))
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "provider '%s' was asked for, but %s asks for multi-node NCCL", forced,
                             NAME(KNOB_MN_GLOBAL));
        if (!(built & COLL_BUILT_NCCL))
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "%s asks for multi-node NCCL, but libcoll was built without NCCL",
                             NAME(KNOB_MN_GLOBAL));
        return select_mn(env, (int)local_rank, visible, o, err, errlen);
    }

    if (forced) {
        if (!strcmp(forced, "local")) {
            set_local(o);
        } else if (!strcmp(forced, "nccl")) {
            if (!(built & COLL_BUILT_NCCL))
                return coll_fail(COLL_ERR_CONFIG, err, errlen,
                                 "provider nccl was asked for, but libcoll was built without "
                                 "NCCL");
            if (no_nccl)
                return coll_fail(COLL_ERR_CONFIG, err, errlen,
                                 "provider nccl was asked for, but %s=1", NAME(KNOB_NO_NCCL));
            if (visible < 1)
                return coll_fail(COLL_ERR_CONFIG, err, errlen,
                                 "provider nccl was asked for, but no GPU is visible");
            set_nccl_single(o, visible, (int)local_rank);
        } else {
            if (!(built & COLL_BUILT_RING))
                return coll_fail(COLL_ERR_CONFIG, err, errlen,
                                 "provider ring was asked for, but libcoll was built without "
                                 "the ring");
            if (!ring_cfg)
                return coll_fail(COLL_ERR_CONFIG, err, errlen,
                                 "provider ring was asked for, but %s is not set",
                                 NAME(KNOB_RING_CONFIG));
            set_ring(o);
        }
    } else if ((built & COLL_BUILT_NCCL) && !no_nccl && visible >= 2) {
        if (ring_cfg)
            snprintf(o->warning, sizeof(o->warning),
                     "%s is ignored: NCCL applies (%d visible GPUs, built with NCCL), as in "
                     "mistral.rs; set %s=1 to force the ring",
                     NAME(KNOB_RING_CONFIG), visible, NAME(KNOB_NO_NCCL));
        set_nccl_single(o, visible, (int)local_rank);
    } else if (ring_cfg) {
        if (!(built & COLL_BUILT_RING))
            return coll_fail(COLL_ERR_CONFIG, err, errlen,
                             "%s is set, but libcoll was built without the ring (--without-ring)",
                             NAME(KNOB_RING_CONFIG));
        set_ring(o);
    } else {
        set_local(o);
    }

    if (o->is_child && o->mode != COLL_MODE_NCCL)
        return coll_fail(COLL_ERR_CONFIG, err, errlen,
                         "%s is set (a process libcoll spawned) but this process selects %s",
                         NAME(KNOB_LOCAL_RANK), o->provider);
    if (o->is_child && local_rank >= o->local_size)
        return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s=%ld but only %d GPUs are visible",
                         NAME(KNOB_LOCAL_RANK), local_rank, o->local_size);
    return COLL_OK;
}
