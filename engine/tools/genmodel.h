/* SPDX-License-Identifier: MIT */
/* Random models in the real file formats (llama2.c v0 .bin, Hugging Face safetensors +
 * config.json), for tests and benchmarks. */
#ifndef ENG_GENMODEL_H
#define ENG_GENMODEL_H

#include <stddef.h>
#include <stdint.h>

typedef enum { GEN_BIN, GEN_HF } gen_format;
typedef enum { GEN_LLAMA, GEN_MISTRAL, GEN_QWEN2, GEN_QWEN3 } gen_arch;
typedef enum { GEN_F32, GEN_F16, GEN_BF16 } gen_dtype;

typedef struct gen_spec {
    gen_format format;
    gen_arch arch;   /* HF only */
    gen_dtype dtype; /* HF only; .bin is always f32 */
    int dim, hidden_dim, n_layers, n_heads, n_kv_heads, head_dim, vocab_size, seq_len;
    int tied;           /* shared classifier */
    int sliding_window; /* mistral; 0: none */
    int shards;         /* HF: >1 writes model-0000i-of-0000n.safetensors + index */
    float std;          /* weight standard deviation */
    uint64_t seed;
} gen_spec;

void gen_spec_init(gen_spec *s); /* a tiny Llama, f32, seed 1 */
/* out: the .bin file, or the folder (created) for HF. Returns 0 or -1 with err. */
int gen_write(const gen_spec *s, const char *out, char *err, size_t errlen);

#endif
