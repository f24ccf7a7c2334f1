/* SPDX-License-Identifier: MIT */
/* libcoll: the collectives the engine calls, over pluggable providers.
 *
 * Providers: "nccl" (CUDA devices, when built with NCCL), "ring" (libring, host and
 * device buffers), "local" (world size 1). coll_comm_create() picks one by the
 * selection flow of docs/SELECTION.md (the mistral.rs rules) unless params name one.
 * With nccl or the ring, ranks of one machine also get "p2p": a one-shot all-reduce of
 * small device buffers over CUDA IPC (up to COLL_P2P_MAX_BYTES); larger ones and other
 * collectives go to the mode's provider.
 *
 * Thread safety: a communicator is used by one thread at a time; different
 * communicators may be used concurrently. coll_comm_abort() may be called from
 * any thread.
 */
#ifndef COLL_H
#define COLL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public API: libcoll is built with -fvisibility=hidden, so only what carries
 * COLL_API is exported (tests/exports.sh checks the list against this header). */
#if defined(__GNUC__)
#define COLL_API __attribute__((visibility("default")))
#else
#define COLL_API
#endif

#define COLL_STATUS_LIST(X)                                                                        \
    X(COLL_OK, "success")                                                                          \
    X(COLL_ERR_INVALID_ARG, "invalid argument")                                                    \
    X(COLL_ERR_CONFIG, "invalid configuration")                                                    \
    X(COLL_ERR_NOMEM, "out of memory")                                                             \
    X(COLL_ERR_SYSTEM, "system error")                                                             \
    X(COLL_ERR_TIMEOUT, "timed out")                                                               \
    X(COLL_ERR_PEER_CLOSED, "peer closed the connection")                                          \
    X(COLL_ERR_PROTOCOL, "protocol error")                                                         \
    X(COLL_ERR_INVALID_USAGE, "ranks disagree on the call")                                        \
    X(COLL_ERR_AUTH, "authentication failed")                                                      \
    X(COLL_ERR_UNSUPPORTED, "not supported")                                                       \
    X(COLL_ERR_ABORTED, "aborted")                                                                 \
    X(COLL_ERR_CUDA, "CUDA error")                                                                 \
    X(COLL_ERR_NCCL, "NCCL error")                                                                 \
    X(COLL_ERR_FAILED, "communicator failed earlier; destroy it and rebuild on every rank")

#define COLL_STATUS_ENUM_(name, msg) name,
typedef enum { COLL_STATUS_LIST(COLL_STATUS_ENUM_) COLL_STATUS_COUNT } coll_status;
#undef COLL_STATUS_ENUM_

COLL_API const char *coll_status_str(coll_status s);
/* The enumerator's name ("COLL_ERR_TIMEOUT"). */
COLL_API const char *coll_status_name(coll_status s);

/* Same order and meaning as libring's types and ops. */
typedef enum {
    COLL_F32,
    COLL_F64,
    COLL_F16,
    COLL_BF16,
    COLL_I32,
    COLL_I64,
    COLL_U8,
    COLL_DTYPE_COUNT
} coll_dtype;
typedef enum { COLL_SUM, COLL_PROD, COLL_MIN, COLL_MAX, COLL_AVG, COLL_OP_COUNT } coll_op;

COLL_API size_t coll_dtype_size(coll_dtype t);
/* Names: "f32", "bf16", ...; "sum", "avg", ...; NULL when out of range. */
COLL_API const char *coll_dtype_name(coll_dtype t);
COLL_API const char *coll_op_name(coll_op op);
/* Parse a name (case-insensitive; nccl-tests' spellings such as "float", "half", "bfloat16",
 * "int32" are accepted too); 0 on success, -1 when unknown. */
COLL_API int coll_dtype_parse(const char *s, coll_dtype *out);
COLL_API int coll_op_parse(const char *s, coll_op *out);
/* 1 when op applies to t (avg only to the floating-point types). */
COLL_API int coll_op_valid_for(coll_op op, coll_dtype t);

typedef enum { COLL_MEM_AUTO, COLL_MEM_HOST, COLL_MEM_DEVICE } coll_memtype;

/* Environment lookup: the one place libcoll reads variables. Tests pass a fake. */
typedef const char *(*coll_getenv_fn)(const char *name, void *ctx);

typedef struct coll_params {
    size_t struct_size;       /* sizeof(coll_params) */
    const char *provider;     /* NULL: the selection flow; else "ring", "nccl" or "local" */
    coll_getenv_fn getenv_fn; /* NULL: the process environment */
    void *getenv_ctx;
    int visible_devices; /* -1: ask CUDA; tests set it to fake a GPU count */
    int op_timeout_ms;   /* 0: the default */
    /* Fields below were added after the first version; struct_size tells them apart. */
    coll_memtype memtype; /* AUTO: ask CUDA per call; HOST/DEVICE: trust the caller */
    long p2p_max_bytes;   /* one-shot all-reduce limit: -1: COLL_P2P_MAX_BYTES; 0: off */
} coll_params;

COLL_API void coll_params_init(coll_params *p);

typedef struct coll_comm coll_comm;

COLL_API coll_status coll_comm_create(const coll_params *params, coll_comm **out, char *err,
                                      size_t errlen);
COLL_API void coll_comm_destroy(coll_comm *comm);
COLL_API void coll_comm_abort(coll_comm *comm);

COLL_API int coll_comm_rank(const coll_comm *comm);
COLL_API int coll_comm_size(const coll_comm *comm);
COLL_API int coll_comm_local_rank(const coll_comm *comm);
COLL_API int coll_comm_device(const coll_comm *comm); /* CUDA ordinal, -1 for host only */
COLL_API const char *coll_comm_provider(const coll_comm *comm);
COLL_API const char *coll_comm_last_error(const coll_comm *comm);
/* The largest all-reduce (bytes) the one-shot "p2p" provider serves; 0 when it is off. */
COLL_API size_t coll_comm_p2p_max_bytes(const coll_comm *comm);

/* stream: a cudaStream_t for device buffers (stream-ordered), or NULL. */
COLL_API coll_status coll_allreduce(coll_comm *comm, const void *sendbuf, void *recvbuf,
                                    size_t count, coll_dtype type, coll_op op, void *stream);
COLL_API coll_status coll_reduce_scatter(coll_comm *comm, const void *sendbuf, void *recvbuf,
                                         size_t recvcount, coll_dtype type, coll_op op,
                                         void *stream);
COLL_API coll_status coll_allgather(coll_comm *comm, const void *sendbuf, void *recvbuf,
                                    size_t sendcount, coll_dtype type, void *stream);
COLL_API coll_status coll_broadcast(coll_comm *comm, const void *sendbuf, void *recvbuf,
                                    size_t count, coll_dtype type, int root, void *stream);
COLL_API coll_status coll_barrier(coll_comm *comm);

/* Wait until the collectives enqueued on `stream` (NULL: the provider's own) are done,
 * polling for asynchronous provider errors; aborts the communicator at the op deadline. */
COLL_API coll_status coll_sync(coll_comm *comm, void *stream);

/* Every environment variable libcoll reads, declared in one table that ends with a NULL
 * name. The selection flow reads only these. */
typedef struct coll_knob {
    const char *name;
    const char *default_value; /* as text; "" for unset */
    const char *help;
} coll_knob;
COLL_API const coll_knob *coll_knobs(void);

/* What coll_comm_create() would choose (docs/SELECTION.md), creating nothing: for a
 * program that places its work by it (the engine's device selection). `built` is the set
 * of features to assume: coll_built() for this build; tests pass others. */
enum { COLL_BUILT_NCCL = 1, COLL_BUILT_RING = 2, COLL_BUILT_CUDA = 4 };
COLL_API unsigned coll_built(void);

typedef struct coll_plan {
    const char *provider; /* "local", "nccl" or "ring" */
    int multi_node;       /* 1: NCCL over nodes (MISTRALRS_MN_*) */
    int world_size;       /* ranks; the ring's from RING_CONFIG (-1 if it does not load) */
    int local_size;       /* ranks on this node */
    int visible;          /* GPUs counted (or params.visible_devices) */
    char warning[512];    /* "" or what coll_comm_create() would log as a warning */
} coll_plan;

COLL_API coll_status coll_plan_select(const coll_params *params, unsigned built, coll_plan *out,
                                      char *err, size_t errlen);

/* Print the provider that would be chosen, the layout and every knob with its value. */
COLL_API void coll_print_config(FILE *out, const coll_params *params);

#ifdef __cplusplus
}
#endif
#endif
