/* SPDX-License-Identifier: MIT */
/* coll_print_config(): what coll_comm_create() would choose here, and every knob. */
#include "coll_private.h"
#include <string.h>

#ifdef HAVE_RING
#include "ring.h"
#endif

unsigned coll_built(void)
{
    return coll_built_features();
}

coll_status coll_plan_select(const coll_params *params, unsigned built, coll_plan *out, char *err,
                             size_t errlen)
{
    coll_params p;
    coll_params_init(&p);
    if (params && params->struct_size >= sizeof(size_t) && params->struct_size <= sizeof(p))
        memcpy(&p, params, params->struct_size);
    if (!out) return coll_fail(COLL_ERR_INVALID_ARG, err, errlen, "coll_plan_select: out is NULL");
    memset(out, 0, sizeof(*out));
    coll_env env;
    coll_env_read(&env, p.getenv_fn, p.getenv_ctx);
    int visible = p.visible_devices >= 0 ? p.visible_devices : coll_cuda_device_count();
    const char *forced = p.provider ? p.provider : coll_env_get(&env, KNOB_PROVIDER);
    coll_layout L;
    coll_status st = coll_select(&env, forced, visible, built, &L, err, errlen);
    if (st) return st;
    out->provider = L.provider;
    out->multi_node = L.mode == COLL_MODE_NCCL_MN;
    out->world_size = L.world_size;
    out->local_size = L.local_size;
    out->visible = L.visible;
    snprintf(out->warning, sizeof(out->warning), "%s", L.warning);
#ifdef HAVE_RING
    if (L.mode == COLL_MODE_RING) {
        ring_config rc;
        char rerr[256];
        if (ring_config_load(coll_env_get(&env, KNOB_RING_CONFIG), &rc, rerr, sizeof(rerr)) ==
            RING_OK)
            out->world_size = rc.world_size;
    }
#endif
    return COLL_OK;
}

void coll_print_config(FILE *out, const coll_params *params)
{
    coll_params p;
    coll_params_init(&p);
    if (params && params->struct_size >= sizeof(size_t) && params->struct_size <= sizeof(p))
        memcpy(&p, params, params->struct_size);
    coll_env env;
    coll_env_read(&env, p.getenv_fn, p.getenv_ctx);
    unsigned built = coll_built_features();
    fprintf(out, "built with: nccl %s, ring %s, cuda %s\n", built & COLL_BUILT_NCCL ? "yes" : "no",
            built & COLL_BUILT_RING ? "yes" : "no", built & COLL_BUILT_CUDA ? "yes" : "no");
    int visible = p.visible_devices >= 0 ? p.visible_devices : coll_cuda_device_count();
    fprintf(out, "visible GPUs: %d%s\n", visible, p.visible_devices >= 0 ? " (given)" : "");

    const char *forced = p.provider ? p.provider : coll_env_get(&env, KNOB_PROVIDER);
    coll_layout L;
    char err[512] = "";
    coll_status st = coll_select(&env, forced, visible, built, &L, err, sizeof(err));
    if (st) {
        fprintf(out, "selection: FAILS: %s\n", err);
    } else {
        fprintf(out, "provider: %s\nmode: %s\n", L.provider, coll_mode_name(L.mode));
#ifdef HAVE_RING
        if (L.mode == COLL_MODE_RING) {
            ring_config rc;
            if (ring_config_load(coll_env_get(&env, KNOB_RING_CONFIG), &rc, err, sizeof(err)) ==
                RING_OK) {
                L.world_size = rc.world_size;
                L.rank = rc.rank;
                fprintf(out, "ring: listen port %d, right %s:%d, master %s:%d\n", rc.port,
                        rc.right_ip, rc.right_port, rc.master_ip, rc.master_port);
            } else {
                fprintf(out, "ring: config does not load: %s\n", err);
            }
        }
#endif
        fprintf(out,
                "layout: world size %d, rank %d, local rank %d of %d, node %d of %d, device %d\n",
                L.world_size, L.rank, L.local_rank, L.local_size, L.node, L.nodes, L.device);
        if (L.mode == COLL_MODE_NCCL_MN) {
            if (L.node == 0)
                fprintf(out, "multi-node: head, listens on port %d for %d workers\n", L.head_port,
                        L.num_workers);
            else
                fprintf(out, "multi-node: worker %d, head at %s:%d\n", L.worker_id, L.head_host,
                        L.head_port);
        }
        if (L.warning[0]) fprintf(out, "warning: %s\n", L.warning);
    }
    fprintf(out, "knobs:\n");
    const coll_knob *k = coll_knobs();
    for (int i = 0; k[i].name; i++) {
        const char *v = env.value[i];
        fprintf(out, "  %-32s = %-12s%s  # %s\n", k[i].name, v ? v : k[i].default_value,
                v ? "" : (k[i].default_value[0] ? " (default)" : "(unset)"), k[i].help);
    }
}
