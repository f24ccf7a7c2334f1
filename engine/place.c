/* SPDX-License-Identifier: MIT */
/* Where `ringinfer run` and `serve` put the model: the engine's device selection
 * (devsel.c) applied to the communicator the program already has, turned into load
 * parameters and one INFO line. One helper for both commands. */
#include "../libcoll/coll.h"
#include "backend.h"
#include "devmap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

eng_status eng_place_apply(const eng_place_facts *f, const eng_coll *comm, eng_load_params *lp,
                           eng_place *pl, char *line, size_t linelen, char *err, size_t errlen)
{
    eng_status st = eng_place_select(f, pl, err, errlen);
    if (st != ENG_OK) return st;
    int size = comm ? comm->size : 1, rank = comm ? comm->rank : 0;
    if (comm && comm->provider) {
        /* libcoll chose from the same environment: a difference means it changed between. */
        if (strcmp(pl->provider, comm->provider) || (pl->tp_size > 0 && pl->tp_size != size))
            return eng_fail(ENG_ERR_COLL, err, errlen,
                            "the communicator is %s over %d ranks, but the device selection "
                            "gives %s over %d (were CUDA_VISIBLE_DEVICES or the MISTRALRS_*/"
                            "RING_CONFIG variables changed while starting?)",
                            comm->provider, size, pl->provider, pl->tp_size);
    } else if (size > 1) {
        /* A caller's own group of ranks (tests): tensor parallel, whatever the environment. */
        if (f->device_layers)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\" maps layers, but this run is tensor "
                            "parallel over %d ranks: drop --device-layers",
                            f->device_layers, size);
        pl->tp_size = size;
    }
    lp->device = pl->gpus > 0 ? ENG_DEVICE_CUDA : ENG_DEVICE_CPU;
    lp->gpu = comm && comm->gpu > 0 && pl->gpus > 0 ? comm->gpu : 0;
    lp->device_layers = pl->mode == ENG_PLACE_LAYERS ? f->device_layers : NULL;
    lp->auto_split = pl->auto_split;
    int n = snprintf(line, linelen, "layout: %s; provider %s, tensor parallel %d, ",
                     eng_place_name(pl->mode), pl->provider, pl->tp_size > 0 ? pl->tp_size : size);
    if (n < 0 || (size_t)n >= linelen) return ENG_OK;
    if (pl->mode == ENG_PLACE_LAYERS && f->device_layers)
        snprintf(line + n, linelen - (size_t)n, "--device-layers \"%s\" over %d visible GPU%s",
                 f->device_layers, pl->gpus, pl->gpus > 1 ? "s" : "");
    else if (pl->mode == ENG_PLACE_LAYERS)
        snprintf(line + n, linelen - (size_t)n, "layers split by free memory over %d GPUs",
                 pl->gpus);
    else if (pl->gpus > 0)
        snprintf(line + n, linelen - (size_t)n,
                 "rank %d on GPU %d (CUDA ordinal, after "
                 "CUDA_VISIBLE_DEVICES)",
                 rank, lp->gpu);
    else
        snprintf(line + n, linelen - (size_t)n, "rank %d on the CPU", rank);
    return ENG_OK;
}

int eng_device_parse(const char *text, eng_device *out)
{
    if (!strcmp(text, "cuda"))
        *out = ENG_DEVICE_CUDA;
    else if (!strcmp(text, "cpu"))
        *out = ENG_DEVICE_CPU;
    else
        return -1;
    return 0;
}

/* The model's heads without loading it: the loader maps the file(s) and reads the header. */
static eng_status peek_config(const char *path, eng_config *cfg, char *err, size_t errlen)
{
    struct stat sb;
    if (!path) return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "no model path given");
    if (stat(path, &sb) != 0)
        return eng_fail(ENG_ERR_IO, err, errlen, "%s: no such file or folder", path);
    eng_source src;
    eng_status st = S_ISDIR(sb.st_mode) ? eng_load_hf(path, &src, err, errlen)
                                        : eng_load_llama2(path, &src, err, errlen);
    if (st != ENG_OK) return st;
    *cfg = src.cfg;
    eng_source_free(&src);
    return ENG_OK;
}

eng_status eng_place_setup(const char *model, eng_device device, const char *device_layers,
                           const eng_coll *comm, eng_load_params *lp, char *layout,
                           size_t layoutlen, char *err, size_t errlen)
{
    eng_config cfg = {0};
    eng_status st = peek_config(model, &cfg, err, errlen);
    if (st != ENG_OK) return st;
    eng_place_facts f = {.coll_built = coll_built(),
                         .device = device,
                         .device_layers = device_layers,
                         .n_heads = cfg.n_heads,
                         .n_kv_heads = cfg.n_kv_heads};
#ifdef ENG_WITH_CUDA
    f.cuda_backend = 1;
    f.visible = eng_backend_cuda.device_count ? eng_backend_cuda.device_count() : 0;
#endif
    /* The spec's own errors (grammar, ordinals, layer count) first, as eng_model_open
     * words them; --device cpu with a spec is the selection's to refuse. */
    if (device_layers && device != ENG_DEVICE_CPU) {
        int *layer_dev = malloc((size_t)cfg.n_layers * sizeof(int));
        if (!layer_dev) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        st = eng_devmap_parse(device_layers, f.visible, cfg.n_layers, layer_dev, err, errlen);
        free(layer_dev);
        if (st != ENG_OK) return st;
    }
    eng_place pl;
    return eng_place_apply(&f, comm, lp, &pl, layout, layoutlen, err, errlen);
}
