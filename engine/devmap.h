/* SPDX-License-Identifier: MIT */
/* Layer mapping: which device runs each layer (mistral.rs's -n/--device-layers, and the
 * automatic split by free memory), and the engine's device selection (devsel.c). Pure
 * functions of their arguments: no CUDA, no environment, so CI tests every case.
 * Private to libeng. Thread-safe (no state). */
#ifndef ENG_DEVMAP_H
#define ENG_DEVMAP_H

#include "eng.h"

#include <stddef.h>

#define ENG_DEV_CPU (-1) /* a layer on the CPU backend (CPU offload) */

/* Parse a --device-layers spec: "ORD:NUM;ORD:NUM;..." (ORD a visible ordinal, after
 * CUDA_VISIBLE_DEVICES; NUM its layer count) or a bare "N" (ordinal 0 gets N layers).
 * Layers go to the items in the spec's order, NUM at a time from layer 0; the layers no
 * item covers run on the CPU. layer_dev[n_layers] gets the ordinal of every layer or
 * ENG_DEV_CPU. Errors (one line naming the spec): a bad item, a non-integer, a duplicate
 * ordinal, an ordinal that is not visible, more layers than the model has. */
eng_status eng_devmap_parse(const char *spec, int visible, int n_layers, int *layer_dev, char *err,
                            size_t errlen);

/* The automatic split over n_dev GPUs from their free memory: device d holds at most
 * (free_bytes[d] - reserve_bytes) / layer_bytes layers (reserve: what it needs besides
 * the layers: KV cache headroom, scratch, embeddings). When the GPUs hold more than the
 * model, the layers are shared in proportion to what each can hold (largest remainders,
 * ties to the lower ordinal), in ordinal order; what they cannot hold runs on the CPU. */
eng_status eng_devmap_auto(const size_t *free_bytes, int n_dev, size_t layer_bytes,
                           size_t reserve_bytes, int n_layers, int *layer_dev, char *err,
                           size_t errlen);

/* "layers 0-2 on GPU 0, 3-4 on the CPU" for the start-up log: the device of every layer. */
void eng_devmap_describe(const int *layer_dev, int n_layers, char *out, size_t outlen);

/* ------------------------------------------------------------------ device selection */

#define ENG_PLACE_LIST(X)                                                                          \
    X(ENG_PLACE_CPU, "cpu")                                                                        \
    X(ENG_PLACE_GPU, "one GPU")                                                                    \
    X(ENG_PLACE_LAYERS, "layer mapping over the visible GPUs (the rest on the CPU)")               \
    X(ENG_PLACE_NCCL_TP, "NCCL tensor parallelism, one process per visible GPU")                   \
    X(ENG_PLACE_NCCL_MN, "multi-node NCCL tensor parallelism (MISTRALRS_MN_*)")                    \
    X(ENG_PLACE_RING_TP, "ring tensor parallelism (RING_CONFIG)")

#define ENG_PLACE_ENUM_(id, text) id,
typedef enum { ENG_PLACE_LIST(ENG_PLACE_ENUM_) ENG_PLACE_COUNT } eng_place_mode;
#undef ENG_PLACE_ENUM_

const char *eng_place_name(eng_place_mode m);

/* The facts the choice depends on. The collective part (NCCL or the ring or neither, the
 * MISTRALRS_* and RING_CONFIG variables) is libcoll's selection (coll_plan_select), read
 * through getenv_fn: tests pass a fake environment, GPU count and build. */
typedef struct eng_place_facts {
    int visible;         /* GPUs CUDA sees, after CUDA_VISIBLE_DEVICES */
    int cuda_backend;    /* 1: the engine has its CUDA backend */
    unsigned coll_built; /* coll_built(), or a test's COLL_BUILT_* bits */
    const char *(*getenv_fn)(const char *name, void *ctx); /* NULL: the process's */
    void *getenv_ctx;
    eng_device device;         /* --device */
    const char *device_layers; /* --device-layers, NULL when not given */
    int n_heads, n_kv_heads;   /* the model's, for the tensor-parallel checks */
} eng_place_facts;

typedef struct eng_place {
    eng_place_mode mode;
    const char *provider; /* libcoll's: "local", "nccl" or "ring" */
    int tp_size;          /* ranks of tensor parallelism (1 without; -1: ring config unread) */
    int gpus;             /* GPUs this process's model uses: 0 (CPU), 1, or the visible ones */
    int auto_split;       /* layer mapping without --device-layers: split by free memory */
    char warning[512];    /* "" or a warning for the start-up log */
} eng_place;

/* Where the model runs, as the mistral.rs page describes it (docs/SELECTION.md, "The
 * engine's devices"). Errors: --device cuda without a GPU or a CUDA backend; a GPU count
 * the heads cannot split over (mistral.rs's messages); --device-layers with tensor
 * parallelism (the message names the variable or flag to change). */
eng_status eng_place_select(const eng_place_facts *f, eng_place *out, char *err, size_t errlen);

/* --device: "cuda" or "cpu" into *out (0); anything else -1, *out untouched. */
int eng_device_parse(const char *text, eng_device *out);

/* The selection applied to a communicator (comm NULL: one rank): checks that libcoll made
 * the same choice (comm->provider set) or, for a caller's own group (provider NULL, size > 1),
 * that no layers are mapped; fills lp's device, gpu (comm->gpu), device_layers and
 * auto_split; line gets the layout for the start-up log. Pure: tests pass fake facts. */
eng_status eng_place_apply(const eng_place_facts *f, const eng_coll *comm, eng_load_params *lp,
                           eng_place *pl, char *line, size_t linelen, char *err, size_t errlen);

/* ringinfer run and serve: the facts of this process (the model's heads, the visible GPUs,
 * this build, the environment), then eng_place_apply; layout gets the line rank 0 logs
 * once the model is loaded (so that a failed load stays one line). Errors are one line
 * naming the flag or variable to change. */
eng_status eng_place_setup(const char *model, eng_device device, const char *device_layers,
                           const eng_coll *comm, eng_load_params *lp, char *layout,
                           size_t layoutlen, char *err, size_t errlen);

#endif
