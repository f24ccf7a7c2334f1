/* SPDX-License-Identifier: MIT */
/* The one place libeng reads the environment: a declared table of knobs (name, default,
 * help) that `ringinfer --print-config` prints. Command-line flags win over these. */
#include "eng_internal.h"
#include "common/knob.h"

#include <stdlib.h>

#define ENG_STR_(x) #x
#define ENG_STR(x) ENG_STR_(x)

static const eng_knob knob_table[ENG_KNOB_COUNT + 1] = {
    [ENG_KNOB_THREADS] = {"ENG_THREADS", ENG_STR(ENG_DEFAULT_THREADS),
                          "threads per rank for the matmuls: the caller plus N-1 workers "
                          "(1..256; --threads wins)"},
    [ENG_KNOB_SPIN_US] = {"ENG_SPIN_US", ENG_STR(ENG_DEFAULT_SPIN_US),
                          "microseconds a waiting thread busy-polls for the next matmul (or "
                          "its end) before sleeping; 0 where the cores are oversubscribed "
                          "(0..100000)"},
    [ENG_KNOB_CUDA_PROFILE] = {"ENG_CUDA_PROFILE", "0",
                               "1: time the CUDA decode step's stages (also batched steps of "
                               "decode rows) with events (the step then runs without its graph) "
                               "and log the split per step at the end"},
    [ENG_KNOB_NO_P2P] = {"ENG_NO_P2P", "0",
                         "1: layer mapping stages activations between GPU segments through "
                         "pinned host memory even where peer access works (0..1)"},
    [ENG_KNOB_CUDA_FUSE] =
        {"ENG_CUDA_FUSE", "2047",
         "what the CUDA decode step fuses, a sum of: 1 RMSNorm into the "
         "products around it, 2 SwiGLU into the gate/up product, 4 the "
         "flash-decoding merge into attention's last block, 8 the same "
         "fused products (with 1 and 2) for the decode rows of `serve`'s "
         "batched steps, 16 those products on tensor cores for bf16 "
         "weights (one kernel for 1 to 16 rows; without it a decode row "
         "gets `run`'s bits), 32 RoPE and the KV-cache write into the "
         "decode q/k/v product (models without q/k norms), 64 the decode "
         "attention over up to four 32-key tiles a block, merged in shared "
         "memory, 128 a decode product with rows of up to 4 KiB asks for each row "
         "whole before it waits for the kernel before it, 256 a decode "
         "product with longer rows keeps x out of the streamed weights' way "
         "(x of up to 8192 floats staged in shared memory after its wait, a "
         "longer one kept in L1 by loading the weights past L1), 512 the decode "
         "attention one block a query head, 16 warps over its keys (heads of 128 "
         "dims, positions below 512), 1024 such a product with rows of 8 KiB or more "
         "on a grid of at most two blocks an SM keeps two passes of its row in flight "
         "(0..2047)"},
    [ENG_KNOB_DECODE_AHEAD] = {"ENG_DECODE_AHEAD", "1",
                               "1: `ringinfer run` on one GPU starts each decode step before the "
                               "host has read the token of the step before (it stays on the "
                               "device), so the GPU does not wait for the host between steps; "
                               "0: one step at a time (0..1)"},
    [ENG_KNOB_CPU_KERNELS] = {"ENG_CPU_KERNELS", "auto",
                              "the CPU backend's kernels: auto (the fastest this CPU runs), "
                              "avx512, avx2 or scalar (the plain-C reference)"},
    [ENG_KNOB_COUNT] = {NULL, NULL, NULL},
};

const eng_knob *eng_knobs(void)
{
    return knob_table;
}

static const char *knob_value(eng_knob_id k)
{
    const char *v = getenv(knob_table[k].name);
    return (v && *v) ? v : NULL; /* `VAR= prog` clears a knob */
}

void eng_knobs_print(FILE *out)
{
    for (int k = 0; k < ENG_KNOB_COUNT; k++) {
        const char *v = knob_value((eng_knob_id)k);
        fprintf(out, "%-12s = %-6s %s%s\n", knob_table[k].name, v ? v : knob_table[k].default_value,
                v ? "" : "(default) ", knob_table[k].help);
    }
}

eng_status eng_knob_int(eng_knob_id k, long lo, long hi, long *out, char *err, size_t errlen)
{
    const char *v = knob_value(k);
    if (!v) v = knob_table[k].default_value;
    if (rc_knob_long(knob_table[k].name, v, lo, hi, out, err, errlen)) return ENG_ERR_INVALID_ARG;
    return ENG_OK;
}

const char *eng_knob_str(eng_knob_id k)
{
    const char *v = knob_value(k);
    return v ? v : knob_table[k].default_value;
}
