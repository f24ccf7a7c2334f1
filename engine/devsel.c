/* SPDX-License-Identifier: MIT */
/* The engine's device selection (devmap.h): libcoll decides the collective (NCCL, the
 * ring, or one rank); this adds what the engine knows (--device, --device-layers, its CUDA
 * backend, the heads) and picks one of the mistral.rs modes. */
#include "../libcoll/coll.h"
#include "devmap.h"
#include "eng_internal.h"

#include <stdio.h>
#include <string.h>

const char *eng_place_name(eng_place_mode m)
{
#define ENG_PLACE_NAME_(id, text) [id] = text,
    static const char *const names[] = {ENG_PLACE_LIST(ENG_PLACE_NAME_)};
#undef ENG_PLACE_NAME_
    return (unsigned)m < ENG_PLACE_COUNT ? names[m] : "?";
}

/* The head rules for a tensor-parallel size, with where the size came from. */
static eng_status check_heads(const eng_place_facts *f, int tp, const char *why, char *err,
                              size_t errlen)
{
    char msg[256];
    eng_status st = eng_tp_check_heads(f->n_heads, f->n_kv_heads, tp, msg, sizeof(msg));
    if (st == ENG_OK) return ENG_OK;
    return eng_fail(st, err, errlen, "%s (tensor parallel size %d: %s)", msg, tp, why);
}

eng_status eng_place_select(const eng_place_facts *f, eng_place *out, char *err, size_t errlen)
{
    if (!f || !out) return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "device selection: NULL");
    memset(out, 0, sizeof(*out));
    out->tp_size = 1;
    int layers = f->device_layers != NULL;
    if (f->device == ENG_DEVICE_CUDA && !f->cuda_backend)
        return eng_fail(ENG_ERR_UNSUPPORTED, err, errlen,
                        "--device cuda: this ringinfer has no CUDA backend (configure "
                        "--with-cuda)");
    if (f->device == ENG_DEVICE_CUDA && f->visible < 1)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "--device cuda: no GPU is visible (check CUDA_VISIBLE_DEVICES and the "
                        "driver)");
    /* GPUs the engine may use; libcoll sees the same count, so --device cpu (or an engine
     * without CUDA) never gets NCCL. */
    int gpus = f->device != ENG_DEVICE_CPU && f->cuda_backend ? f->visible : 0;
    if (layers && gpus == 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "--device-layers \"%s\": layer mapping needs a GPU, and %s",
                        f->device_layers,
                        f->device == ENG_DEVICE_CPU ? "--device cpu was given"
                        : !f->cuda_backend          ? "this ringinfer has no CUDA backend"
                                                    : "none is visible");

    coll_params p;
    coll_params_init(&p);
    p.getenv_fn = f->getenv_fn;
    p.getenv_ctx = f->getenv_ctx;
    p.visible_devices = gpus;
    coll_plan plan;
    char cerr[512];
    if (coll_plan_select(&p, f->coll_built, &plan, cerr, sizeof(cerr)) != COLL_OK)
        return eng_fail(ENG_ERR_COLL, err, errlen, "%s", cerr);
    out->provider = plan.provider;
    snprintf(out->warning, sizeof(out->warning), "%s", plan.warning);

    if (!strcmp(plan.provider, "nccl")) {
        if (layers && plan.multi_node)
            return eng_fail(
                ENG_ERR_INVALID_ARG, err, errlen,
                "--device-layers \"%s\" maps layers, but MISTRALRS_MN_GLOBAL_WORLD_SIZE "
                "asks for multi-node tensor parallelism: unset it, or drop "
                "--device-layers",
                f->device_layers);
        if (layers)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\" maps layers, but NCCL tensor parallelism "
                            "applies (%d visible GPUs): set MISTRALRS_NO_NCCL=1 to map layers "
                            "instead, or drop --device-layers",
                            f->device_layers, gpus);
        out->mode = plan.multi_node ? ENG_PLACE_NCCL_MN : ENG_PLACE_NCCL_TP;
        out->tp_size = plan.world_size;
        out->gpus = 1;
        return check_heads(f, plan.world_size,
                           plan.multi_node ? "MISTRALRS_MN_GLOBAL_WORLD_SIZE"
                                           : "one rank per visible GPU; CUDA_VISIBLE_DEVICES "
                                             "picks them",
                           err, errlen);
    }
    if (!strcmp(plan.provider, "ring")) {
        if (layers)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\" maps layers, but RING_CONFIG asks for ring "
                            "tensor parallelism: unset RING_CONFIG, or drop --device-layers",
                            f->device_layers);
        out->mode = ENG_PLACE_RING_TP;
        out->tp_size = plan.world_size;
        out->gpus = gpus > 0;
        if (plan.world_size > 0)
            return check_heads(f, plan.world_size, "the world size in RING_CONFIG", err, errlen);
        return ENG_OK; /* the config does not load: the communicator will say why */
    }
    /* One rank: the GPUs, if any, share the layers. */
    if (gpus == 0) {
        out->mode = ENG_PLACE_CPU;
    } else if (layers) {
        out->mode = ENG_PLACE_LAYERS;
        out->gpus = gpus;
    } else if (gpus == 1) {
        out->mode = ENG_PLACE_GPU;
        out->gpus = 1;
    } else {
        out->mode = ENG_PLACE_LAYERS; /* NCCL not built or MISTRALRS_NO_NCCL=1 */
        out->gpus = gpus;
        out->auto_split = 1;
    }
    return ENG_OK;
}
