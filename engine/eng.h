/* SPDX-License-Identifier: MIT */
/* libeng: tensor-parallel transformer inference (Llama, Mistral, Qwen2, Qwen3) on the CPU or
 * on one NVIDIA GPU per rank (CUDA + cuBLAS, when built --with-cuda).
 *
 * Layout follows llama2.c: a model is config + the weights of one tensor-parallel shard
 * (read-only after load), a run state holds every activation buffer and the KV cache, and
 * eng_forward() only reads the former and writes the latter; it allocates nothing. Where
 * the weights and the run state live is the model's backend (eng_load_params.device).
 *
 * Tensor parallelism: the row-parallel layers (attention output, FFN down) leave partial
 * sums that the caller's collective adds up over the ranks (an all-reduce). The engine never
 * talks to the network itself, so the same code runs one process, N processes over libcoll,
 * or N shards in one process (tests).
 *
 * Thread safety: a model may be shared by threads (read-only); a run state is used by one
 * thread at a time (its own worker threads, if any, are internal to eng_forward and idle
 * between calls). No global state.
 */
#ifndef ENG_H
#define ENG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ENG_STATUS_LIST(X)                                                                         \
    X(ENG_OK, "success")                                                                           \
    X(ENG_ERR_INVALID_ARG, "invalid argument")                                                     \
    X(ENG_ERR_IO, "I/O error")                                                                     \
    X(ENG_ERR_FORMAT, "malformed file")                                                            \
    X(ENG_ERR_UNSUPPORTED, "unsupported model or feature")                                         \
    X(ENG_ERR_NOMEM, "out of memory")                                                              \
    X(ENG_ERR_COLL, "collective operation failed")                                                 \
    X(ENG_ERR_LAYOUT, "model does not split over this tensor-parallel size")                       \
    X(ENG_ERR_RANGE, "position or token out of range")                                             \
    X(ENG_ERR_DEVICE, "GPU error")

#define ENG_STATUS_ENUM_(name, msg) name,
typedef enum { ENG_STATUS_LIST(ENG_STATUS_ENUM_) ENG_STATUS_COUNT } eng_status;
#undef ENG_STATUS_ENUM_

const char *eng_status_str(eng_status s);

typedef enum {
    ENG_ROPE_INTERLEAVED, /* llama2.c: pairs (i, i+1) */
    ENG_ROPE_HALF,        /* Hugging Face: pairs (i, i + head_dim/2) */
} eng_rope_style;

/* The whole (unsharded) model's hyper-parameters. */
typedef struct eng_config {
    int dim;        /* hidden size */
    int hidden_dim; /* FFN width */
    int n_layers;
    int n_heads; /* query heads */
    int n_kv_heads;
    int head_dim;
    int vocab_size;
    int seq_len;        /* context length */
    int sliding_window; /* 0: none */
    float norm_eps;
    float rope_theta;
    eng_rope_style rope_style;
    int tied_embeddings; /* classifier is the token embedding */
    int has_qkv_bias;    /* Qwen2, Llama attention_bias */
    int has_o_bias;      /* Llama attention_bias */
    int has_mlp_bias;    /* Llama mlp_bias */
    int has_qk_norm;     /* Qwen3: per-head RMSNorm on q and k before RoPE */
} eng_config;

/* What one rank holds. */
typedef struct eng_shard_info {
    int tp_rank, tp_size;
    int n_heads;       /* local query heads */
    int head0;         /* first global query head */
    int n_kv_heads;    /* local KV heads */
    int kv_head0;      /* first global KV head */
    int kv_replicated; /* tp_size > n_kv_heads: several ranks share one KV head */
    int ffn;           /* local FFN width */
    int ffn0;          /* first global FFN column */
} eng_shard_info;

typedef void (*eng_log_fn)(void *ctx, const char *line);

/* Where a model's weights and its run states live and compute. */
typedef enum {
    ENG_DEVICE_CPU,  /* host memory, the CPU kernels (the default) */
    ENG_DEVICE_CUDA, /* one NVIDIA GPU; ENG_ERR_UNSUPPORTED when not built with CUDA or none
                        is visible (CUDA_VISIBLE_DEVICES is respected) */
    ENG_DEVICE_AUTO, /* CUDA when built with it and a GPU is visible, else the CPU */
} eng_device;

typedef struct eng_load_params {
    size_t struct_size; /* sizeof(eng_load_params) */
    int tp_rank;        /* 0 */
    int tp_size;        /* 1 */
    eng_log_fn log;     /* NULL: silent; gets one line per call, no newline */
    void *log_ctx;
    eng_device device;         /* ENG_DEVICE_CPU */
    int gpu;                   /* CUDA device ordinal among the visible ones; 0 */
    const char *device_layers; /* --device-layers spec (devmap.h grammar); NULL: all on device */
    int auto_split;            /* 1: split the layers over the visible GPUs by free memory */
} eng_load_params;

void eng_load_params_init(eng_load_params *p);

/* Check the mistral.rs head-layout rules; err gets their exact messages. */
eng_status eng_tp_check_heads(int n_heads, int n_kv_heads, int tp_size, char *err, size_t errlen);
/* Fill the shard of rank tp_rank (checks the layout first). */
eng_status eng_tp_shard(const eng_config *cfg, int tp_rank, int tp_size, eng_shard_info *out,
                        char *err, size_t errlen);

typedef struct eng_model eng_model;

/* path: a llama2.c checkpoint file (.bin, "v0") or a Hugging Face folder (config.json,
 * model.safetensors[.index.json]). The file is mmapped; only this rank's shard is read.
 * Layer mapping (device_layers or auto_split; one rank only): the layers are cut into
 * segments of consecutive layers, each on one GPU or on the CPU (CPU offload), the
 * embedding on the first, the final norm and classifier on the last; the device of every
 * layer is logged. Activations cross GPU boundaries by peer copy where the GPUs allow it
 * (ENG_NO_P2P=1: never), else through pinned host memory (logged as a warning). */
eng_status eng_model_open(const char *path, const eng_load_params *params, eng_model **out,
                          char *err, size_t errlen);
void eng_model_close(eng_model *m);
const eng_config *eng_model_config(const eng_model *m);
const eng_shard_info *eng_model_shard(const eng_model *m);
/* Bytes of weights this rank owns (converted/copied; on a GPU: device memory) and maps
 * without copying. */
void eng_model_memory(const eng_model *m, size_t *owned_bytes, size_t *mapped_bytes);
/* The backend ("cpu", "cuda") and one line describing it (kernels, threads or the GPU). */
const char *eng_model_backend(const eng_model *m);
void eng_model_describe(const eng_model *m, char *buf, size_t len);
/* One line per backend built in: its name and what it would run on here (GPUs seen). */
void eng_backends_print(FILE *out);

/* The collective seam: how the ranks of one tensor-parallel group talk. A NULL eng_coll (or
 * size 1) is a single rank. Every rank makes the same calls in the same order. */
typedef enum { ENG_ELEM_F32, ENG_ELEM_F16, ENG_ELEM_BF16, ENG_ELEM_I32 } eng_elem;
typedef enum { ENG_MEM_HOST, ENG_MEM_DEVICE } eng_mem;

typedef struct eng_coll {
    int rank, size;
    /* Sums buf[0..count) of type et over all ranks, in place. mem: where buf lives; stream:
     * the cudaStream_t ordering the work on a device buffer (NULL on the host). Only asked
     * for ENG_MEM_DEVICE when device_buffers is set (else the engine stages through the host). */
    eng_status (*allreduce)(void *ctx, void *buf, size_t count, eng_elem et, eng_mem mem,
                            void *stream);
    /* buf[0..count) of rank root to every rank (host memory). */
    eng_status (*broadcast)(void *ctx, void *buf, size_t count, eng_elem et, int root);
    int device_buffers;
    void *ctx;
    /* Fields below were added later; zero keeps the first version's behaviour. */
    int gpu;              /* this rank's CUDA ordinal as the collective placed it (libcoll's
                             coll_comm_device); -1: none (host only) */
    const char *provider; /* the collective's name ("local", "nccl", "ring"); NULL: a harness */
    size_t graph_bytes;   /* device all-reduces up to this size are stream-ordered without a
                             host wait, so a CUDA graph may capture them (0: none) */
} eng_coll;

typedef struct eng_state eng_state;

typedef struct eng_state_params {
    size_t struct_size;    /* sizeof(eng_state_params) */
    int max_batch;         /* tokens per forward call (prefill chunk); default 64 */
    int ctx_len;           /* KV cache positions; 0: the model's seq_len */
    int all_logits;        /* keep logits of every position of a batch (else only the last) */
    int n_threads;         /* threads for the matmuls: the caller + n-1 workers (started here,
                              owned by the state); default ENG_DEFAULT_THREADS; 1..ENG_MAX_THREADS */
    int spin_us;           /* how long a waiting thread busy-polls before it sleeps; default
                              ENG_DEFAULT_SPIN_US */
    int n_seqs;            /* KV-cache slots (sequences decoded together by eng_forward_batch);
                              default 1; each holds ctx_len positions */
    int prefill_precision; /* eng_prefill_precision: how a GPU's prompt products (cuBLAS on
                              16-bit weights) take the f32 activations; default FAST */
} eng_state_params;

/* The prompt (prefill) products on 16-bit weights. FAST: the activations rounded once to the
 * weights' type, as transformers' bf16 runs them. HIGH: as two 16-bit parts (hi + the
 * rounding's remainder), about f32 accuracy, and f32 attention products (a 2048-token prompt
 * of the Llama-3-8B shape on an H200: 162 ms against 69). Decode rows keep f32 activations
 * either way; f32 weights are not affected. */
typedef enum eng_prefill_precision {
    ENG_PREFILL_FAST = 0,
    ENG_PREFILL_HIGH = 1
} eng_prefill_precision;

/* "fast" or "high" (the command lines' --prefill-precision); -1 for anything else. */
int eng_prefill_precision_parse(const char *name);
const char *eng_prefill_precision_name(int precision);

#define ENG_DEFAULT_THREADS 1
/* A worker's futex wake-up per matmul cost 2 threads much of their gain (2 quiet cores,
 * 2026-12-04: stories15M shape 542-645 tok/s without the spin, 604-750 with 50 us; 1 thread
 * 496-500); where the cores are oversubscribed a spinning waiter takes a working thread's core
 * (2026-11-21, load 7-10 on 2 cores: 0.55x), and ENG_SPIN_US=0 is the setting there. */
#define ENG_DEFAULT_SPIN_US 50
#define ENG_MAX_THREADS 256
#define ENG_MAX_SEQS 1024

void eng_state_params_init(eng_state_params *p);
eng_status eng_state_create(const eng_model *m, const eng_state_params *p, eng_state **out,
                            char *err, size_t errlen);
void eng_state_free(eng_state *s);
/* The last forward call's failure in one line (a CUDA or cuBLAS error names the call and the
 * runtime's message), or "" when the status says it all. */
const char *eng_state_error(const eng_state *s);

/* Copies positions [0, n) of KV-cache slot src into slot dst (on every segment), so that a
 * prompt several sequences share is computed once. The copy is exact: a sequence then decodes
 * as if it had computed those positions itself. ENG_ERR_UNSUPPORTED when a backend of the model
 * cannot copy (eng_model_can_copy_seq says so beforehand: compute the positions instead);
 * ENG_ERR_RANGE for a slot or n out of range. Not concurrently with a forward call. */
eng_status eng_state_copy_seq(const eng_model *m, eng_state *s, int dst, int src, int n);
int eng_model_can_copy_seq(const eng_model *m);

/* Runs n tokens at positions pos..pos+n-1 (n <= max_batch, pos+n <= ctx_len), filling the
 * KV cache. want_logits: compute the classifier (rank 0 needs it; others may skip).
 * *logits (may be NULL) gets the logits: [n, vocab] if all_logits, else [1, vocab] for the
 * last token; the buffer belongs to the state and is in host memory whatever the backend.
 * coll: the collective of the tensor-parallel group (NULL: one rank). */
eng_status eng_forward(const eng_model *m, eng_state *s, const int *tokens, int n, int pos,
                       int want_logits, const eng_coll *coll, const float **logits);

/* A batch over several sequences (continuous batching): token t sits at position pos[t] of
 * the sequence in KV-cache slot seq[t] (0..n_seqs-1). The tokens of one slot must have
 * consecutive, increasing positions in the order they appear, and the positions before the
 * first must be cached by earlier calls: each token attends to its own slot up to its own
 * position. logits[t] nonzero asks for token t's logits (NULL: none, e.g. ranks that do not
 * sample; more than one row needs n_seqs > 1 or all_logits). n <= max_batch. */
typedef struct eng_batch {
    int n;
    const int *tokens; /* [n] */
    const int *pos;    /* [n] */
    const int *seq;    /* [n] */
    const int *logits; /* [n] or NULL */
} eng_batch;

/* One forward pass over a batch of sequences; *logits (may be NULL) gets one row per flagged
 * token, in token order ([flagged, vocab], host memory, owned by the state). Each row is
 * bitwise what the sequence gets in a batch of its own tokens alone (the same call with the
 * other sequences' tokens left out): on the CPU, and on a GPU where a sequence's one token (a
 * decode step) runs the small-batch matrix-vector kernel with the batch-1 summation order and
 * each sequence's several tokens (a prompt chunk) their own cuBLAS product, so a chunk is
 * computed the same when it is cut the same. eng_forward (one sequence in slot 0, its own
 * prefill and attention kernels) may differ from it on a GPU in the last bits. */
eng_status eng_forward_batch(const eng_model *m, eng_state *s, const eng_batch *b,
                             const eng_coll *coll, const float **logits);

typedef struct eng_sampler eng_sampler;

/* eng_forward_batch, then the next token of each flagged token's sequence: ids[k] (-1 when
 * its logits are not finite) drawn with smp[k], k counting flagged tokens in order. A GPU
 * samples on the device (greedy as eng_sampler_sample; otherwise the device sampler of
 * eng_forward_sample, with one draw from smp[k] when its temperature is not 0): only the ids
 * cross to the host, and the logits rows k with keep[k] set (keep may be NULL). On the CPU
 * each row gets the token eng_sampler_sample gives for it, the rows sampled in parallel on the
 * worker threads (a row whose logits are not finite spends its draw there). *logits (may be
 * NULL): [flagged, vocab] in host memory, where rows with keep[k] set are valid. Ranks that
 * flag no token pass NULL smp and ids. */
eng_status eng_forward_batch_sample(const eng_model *m, eng_state *s, const eng_batch *b,
                                    const eng_coll *coll, eng_sampler *const *smp, const int *keep,
                                    int *ids, const float **logits);

/* Sampling: temperature 0 is greedy (lowest id wins ties); else softmax(logits / T), cut to
 * the top-p nucleus when top_p < 1 (top_p 0 keeps only the most likely token, as in
 * transformers; top_p outside [0, 1] is refused), drawn with a xorshift generator seeded by seed.
 * Not thread-safe per sampler. */
eng_status eng_sampler_create(int vocab, float temperature, float top_p, uint64_t seed,
                              eng_sampler **out);
/* logits [vocab] -> token id; -1 when a logit is NaN or infinite (nothing can be sampled). */
int eng_sampler_sample(eng_sampler *s, const float *logits);
void eng_sampler_free(eng_sampler *s);

/* eng_forward, then the next token picked from the last position's logits by smp, on the
 * backend: on a GPU only the token id comes back. coll: the tensor-parallel group (NULL:
 * one rank); rank 0 alone computes the classifier and samples (the others may pass smp
 * NULL), then broadcasts the id, so *next is the same on every rank. On a GPU the decode
 * step (n == 1) is replayed as one CUDA graph when every all-reduce of the step can be
 * captured (one rank, or coll->device_buffers with dim floats <= coll->graph_bytes: NCCL,
 * the one-shot p2p); with the host-staged ring it walks the layers each step. The CPU
 * gives exactly eng_forward + eng_sampler_sample; the GPU samples greedy identically and
 * temperature/top-p with the same random draws but its own summation order (see
 * engine/cuda/sample.cu). *next is -1 when the logits hold NaN or infinity (as
 * eng_sampler_sample). A sampler whose temperature or top-p differ from those of the step
 * captured last has the step captured again. */
eng_status eng_forward_sample(const eng_model *m, eng_state *s, const int *tokens, int n, int pos,
                              const eng_coll *coll, eng_sampler *smp, int *next);

/* Decoding ahead (one rank, one device segment, a backend with graphs: a GPU): the device
 * runs the next decode step while the caller handles the token of this one, so it does not
 * wait for the host between steps. eng_forward_ahead starts the decode step at pos, on token
 * or, with ENG_AHEAD_CHAIN, on the token the step started just before it (at pos - 1)
 * samples, without waiting for that one. eng_forward_collect waits for the oldest step
 * started and not collected and gives its token as eng_forward_sample would (the same graph,
 * the same draws from smp in the same order; -1 when the logits are not finite). At most two
 * steps are in flight; every one must be collected before any other forward call on s, and
 * a chained step takes a sampler with its chain's temperature and top-p (else
 * ENG_ERR_INVALID_ARG). ENG_ERR_UNSUPPORTED: not here (the CPU, layer mapping, all_logits,
 * profiling): use eng_forward_sample. A step started past the caller's last token only costs
 * its time: its KV-cache row is rewritten by whatever step later runs at its position. */
#define ENG_AHEAD_CHAIN (-1)
eng_status eng_forward_ahead(const eng_model *m, eng_state *s, int token, int pos,
                             eng_sampler *smp);
eng_status eng_forward_collect(const eng_model *m, eng_state *s, int *next);

/* The ringinfer command line ("run -m MODEL ..."), over any collective: one process
 * (comm NULL), N processes over libcoll (ringinfer.c), or test harnesses. Rank 0 samples,
 * broadcasts each token and alone writes to out; diagnostics go to errf. Returns the exit
 * code (0 ok, 1 failure, 2 bad usage). */
int eng_cli_main(int argc, char **argv, const eng_coll *comm, FILE *out, FILE *errf);

/* Kernel variant picked at run time ("avx2-fma" or "scalar"). */
const char *eng_kernel_name(void);

#ifdef __cplusplus
}
#endif
#endif
