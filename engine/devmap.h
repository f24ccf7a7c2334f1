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

#endif
