/* SPDX-License-Identifier: MIT */
/* libcoll internals shared by its modules (not installed). */
#ifndef COLL_PRIVATE_H
#define COLL_PRIVATE_H

#include <config.h>

#include "coll.h"

#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

/* ------------------------------------------------------------------ logging */

typedef enum { COLL_LOG_ERROR, COLL_LOG_WARN, COLL_LOG_INFO, COLL_LOG_DEBUG } coll_log_level;

/* Who logs: the threshold comes from COLL_LOG_LEVEL, the rank is -1 until known. */
typedef struct coll_logger {
    coll_log_level level;
    int rank;
} coll_logger;

void coll_log(const coll_logger *lg, coll_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* snprintf into err (errlen may be 0); returns st so callers can `return coll_fail(...)`. */
coll_status coll_fail(coll_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------ knobs (knobs.c) */

/* X(id, name, default, help): the one table of variables libcoll reads. */
#define COLL_KNOB_LIST(X)                                                                          \
    X(KNOB_PROVIDER, "COLL_PROVIDER", "",                                                          \
      "force a provider: local, nccl or ring (empty: the selection flow)")                         \
    X(KNOB_LOG_LEVEL, "COLL_LOG_LEVEL", "info", "error, warn, info or debug")                      \
    X(KNOB_OP_TIMEOUT, "COLL_OP_TIMEOUT_MS", "60000",                                              \
      "deadline of one collective (and of coll_sync) before the communicator is aborted")          \
    X(KNOB_RDV_TIMEOUT, "COLL_RDV_TIMEOUT_MS", "120000",                                           \
      "deadline of the NCCL id hand-off: multi-node head/workers and local process spawn")         \
    X(KNOB_STAGING_BYTES, "COLL_STAGING_BYTES", "4194304",                                         \
      "ring on device buffers: bytes per pipelined piece of pinned host staging")                  \
    X(KNOB_DEVICE_REDUCE, "COLL_RING_DEVICE_REDUCE", "cpu",                                        \
      "ring on device buffers: reduce on the cpu (inside libring) or the gpu (kernels/)")          \
    X(KNOB_P2P_MAX_BYTES, "COLL_P2P_MAX_BYTES", "1048576",                                         \
      "one-shot all-reduce over CUDA IPC (ranks of one machine): largest message; 0: off")         \
    X(KNOB_NCCL_BLOCKING, "COLL_NCCL_BLOCKING", "1",                                               \
      "1: data path on a blocking communicator split from the non-blocking init; 0: all "          \
      "non-blocking")                                                                              \
    X(KNOB_NO_NCCL, "MISTRALRS_NO_NCCL", "", "1: never use NCCL (the ring or local instead)")      \
    X(KNOB_MN_GLOBAL, "MISTRALRS_MN_GLOBAL_WORLD_SIZE", "",                                        \
      "multi-node NCCL: ranks over all nodes; its presence turns the mode on")                     \
    X(KNOB_MN_LOCAL, "MISTRALRS_MN_LOCAL_WORLD_SIZE", "",                                          \
      "multi-node NCCL: ranks (GPUs) per node, the same on every node")                            \
    X(KNOB_MN_HEAD_WORKERS, "MISTRALRS_MN_HEAD_NUM_WORKERS", "",                                   \
      "multi-node NCCL, head only: number of worker nodes to accept")                              \
    X(KNOB_MN_HEAD_PORT, "MISTRALRS_MN_HEAD_PORT", "",                                             \
      "multi-node NCCL, head only: TCP port the head listens on")                                  \
    X(KNOB_MN_WORKER_ADDR, "MISTRALRS_MN_WORKER_SERVER_ADDR", "",                                  \
      "multi-node NCCL, workers only: the head's host:port")                                       \
    X(KNOB_MN_WORKER_ID, "MISTRALRS_MN_WORKER_ID", "",                                             \
      "multi-node NCCL, workers only: this worker's index from 0 (node = id + 1)")                 \
    X(KNOB_RING_CONFIG, "RING_CONFIG", "", "path of the ring's JSON config: selects the ring")     \
    X(KNOB_CUDA_VISIBLE, "CUDA_VISIBLE_DEVICES", "",                                               \
      "read by CUDA itself; ordinals are the visible ones (printed for the record)")               \
    X(KNOB_LOCAL_RANK, "COLL_LOCAL_RANK", "",                                                      \
      "set by libcoll on the processes it spawns: their local rank")                               \
    X(KNOB_LOCAL_RDV, "COLL_LOCAL_RDV", "",                                                        \
      "set by libcoll on spawned processes: the local leader's loopback host:port")                \
    X(KNOB_LOCAL_TOKEN, "COLL_LOCAL_TOKEN", "",                                                    \
      "set by libcoll on spawned processes: the secret token of the local hand-off")

#define COLL_KNOB_ENUM_(id, name, def, help) id,
typedef enum { COLL_KNOB_LIST(COLL_KNOB_ENUM_) KNOB_COUNT } coll_knob_id;
#undef COLL_KNOB_ENUM_

/* The raw values of every knob, looked up once. NULL: unset. The strings belong to the
 * getenv function (the process environment, or a test's fake) and must outlive their use. */
typedef struct coll_env {
    const char *value[KNOB_COUNT];
} coll_env;

void coll_env_read(coll_env *env, coll_getenv_fn fn, void *ctx);
const char *coll_knob_name(coll_knob_id id);
/* The value or, if unset, the default ("" means none). */
const char *coll_env_get(const coll_env *env, coll_knob_id id);
int coll_env_isset(const coll_env *env, coll_knob_id id);
/* Parse an integer knob in [lo, hi]; an unset knob gives its default (or `dflt` if the table
 * has none). Error text names the variable and the value. */
coll_status coll_env_int(const coll_env *env, coll_knob_id id, long lo, long hi, long dflt,
                         long *out, char *err, size_t errlen);
coll_status coll_env_log_level(const coll_env *env, coll_log_level *out, char *err, size_t errlen);

/* The environment for a spawned child: this process's, with the COLL_LOCAL_* knobs set.
 * Returns a NULL-terminated array (free with coll_child_env_free). */
char **coll_child_env(int local_rank, const char *rdv_addr, const char *token);
void coll_child_env_free(char **envp);

/* ------------------------------------------------------------------ selection (select.c) */

typedef enum { COLL_MODE_LOCAL, COLL_MODE_NCCL, COLL_MODE_NCCL_MN, COLL_MODE_RING } coll_mode;

/* What the selection flow decided for this process. */
typedef struct coll_layout {
    coll_mode mode;
    const char *provider; /* "local", "nccl", "ring" */
    int world_size;       /* -1 until known (ring: from its config file) */
    int rank;             /* -1 until known */
    int local_rank;
    int local_size;
    int node; /* multi-node: 0 = head, worker k = k + 1 */
    int nodes;
    int device;      /* CUDA ordinal among the visible ones, -1 for none */
    int visible;     /* visible GPUs as counted */
    int is_child;    /* spawned by a local leader (COLL_LOCAL_RANK set) */
    int is_mn_head;  /* multi-node, node 0, local rank 0: binds the head port */
    int head_port;   /* head: MISTRALRS_MN_HEAD_PORT */
    int num_workers; /* head: MISTRALRS_MN_HEAD_NUM_WORKERS */
    char head_host[256];
    int worker_id;     /* worker: MISTRALRS_MN_WORKER_ID, else -1 */
    char warning[512]; /* "" or a warning to log at start-up */
} coll_layout;

/* The selection flow of docs/SELECTION.md. Pure: reads only env, visible and built. */
coll_status coll_select(const coll_env *env, const char *forced_provider, int visible,
                        unsigned built, coll_layout *out, char *err, size_t errlen);
unsigned coll_built_features(void);
const char *coll_mode_name(coll_mode m);

/* ------------------------------------------------------------------ rendezvous (rdv.c) */

#define COLL_RDV_BLOB 128 /* NCCL_UNIQUE_ID_BYTES */

/* What a worker announces and what the head expects. */
typedef struct coll_rdv_hello {
    uint64_t token;     /* 0 for multi-node; random for local spawn */
    uint32_t global_ws; /* all ranks */
    uint32_t local_ws;  /* ranks per node (1 for local spawn: one rank per process) */
    uint32_t nodes;     /* participants: head + workers */
    int32_t worker_id;  /* 0..nodes-2 */
} coll_rdv_hello;

/* Checks a worker sends before it waits: returns nonzero to stop with that message. */
typedef coll_status (*coll_rdv_check_fn)(void *ctx, char *err, size_t errlen);

/* Listen on host:port (port 0: ephemeral); *bound_port gets the real port. */
coll_status coll_rdv_listen(const char *host, int port, int *fd, int *bound_port, char *err,
                            size_t errlen);
/* Head: accept exactly expect->nodes-1 workers whose hello matches `expect` (token, sizes,
 * ids in range and distinct) before the deadline, then send each the blob. A stray
 * connection (bad magic or token) is dropped and logged; a mismatched worker fails the whole
 * rendezvous, and every worker already accepted is told why. `check` (may be NULL) runs
 * while waiting (e.g. to notice a spawned child that died). Closes fd. */
coll_status coll_rdv_serve(int fd, const coll_rdv_hello *expect, const uint8_t *blob,
                           int timeout_ms, coll_rdv_check_fn check, void *check_ctx,
                           const coll_logger *lg, char *err, size_t errlen);
/* Worker: connect to host:port (retrying until the deadline), say hello, get the blob. */
coll_status coll_rdv_join(const char *host, int port, const coll_rdv_hello *me, uint8_t *blob,
                          int timeout_ms, const coll_logger *lg, char *err, size_t errlen);
/* Split "host:port" (IPv6 as [addr]:port). */
coll_status coll_parse_hostport(const char *s, const char *what, char *host, size_t hostlen,
                                int *port, char *err, size_t errlen);

/* ------------------------------------------------------------------ local spawn (spawn.c) */

#define COLL_MAX_LOCAL 64

/* The children a local leader spawned: one process per further local rank. */
typedef struct coll_spawn {
    int n; /* children: local ranks 1..n */
    pid_t pid[COLL_MAX_LOCAL];
    int reaped[COLL_MAX_LOCAL]; /* 1 once waited for */
    int status[COLL_MAX_LOCAL];
} coll_spawn;

/* Local leader: spawn local_size-1 copies of this program (same argv, the COLL_LOCAL_*
 * knobs added), hand each the blob over a loopback rendezvous, and return. Children that
 * die before the hand-off are reported by local rank, pid and exit status. */
coll_status coll_spawn_local(coll_spawn *sp, int local_size, uint32_t global_ws,
                             const uint8_t *blob, int timeout_ms, const coll_logger *lg, char *err,
                             size_t errlen);
/* Spawned child: get the blob from the leader named by the COLL_LOCAL_* knobs. */
coll_status coll_spawn_join(const coll_env *env, int local_rank, int local_size, uint32_t global_ws,
                            uint8_t *blob, int timeout_ms, const coll_logger *lg, char *err,
                            size_t errlen);
/* Nonzero (and a message) if a child has exited with failure or a signal, without
 * blocking. A child that exited 0 is fine. */
int coll_spawn_check(coll_spawn *sp, char *err, size_t errlen);
/* Wait for every child until the deadline, then terminate the rest; report failures. */
coll_status coll_spawn_reap(coll_spawn *sp, int timeout_ms, const coll_logger *lg, char *err,
                            size_t errlen);

/* ------------------------------------------------------------------ providers */

/* One call, as the dispatcher hands it to each provider in turn. */
typedef enum {
    COLL_OP_ALLREDUCE,
    COLL_OP_REDUCE_SCATTER,
    COLL_OP_ALLGATHER,
    COLL_OP_BROADCAST,
    COLL_OP_BARRIER
} coll_opkind;

typedef struct coll_call {
    coll_opkind kind;
    const void *sendbuf;
    void *recvbuf;
    size_t count; /* allreduce/broadcast: count; reduce-scatter: recvcount; allgather: sendcount */
    coll_dtype type;
    coll_op op;
    int root;
    void *stream;
    coll_memtype mem; /* HOST or DEVICE, resolved by the dispatcher */
} coll_call;

/* A provider: a static const table. `create` builds its state for the layout;
 * `call` answers COLL_ERR_UNSUPPORTED for what it cannot serve (then the next is tried). */
typedef struct coll_provider {
    const char *name;
    coll_status (*create)(coll_comm *comm, void **state, char *err, size_t errlen);
    coll_status (*call)(void *state, const coll_call *c, char *err, size_t errlen);
    coll_status (*sync)(void *state, void *stream, char *err, size_t errlen);
    void (*abort)(void *state);
    void (*destroy)(void *state);
    /* 1: created after the chain's other providers (and destroyed before them), so that its
     * create and destroy can exchange data through them (coll_comm_exchange). */
    int late;
} coll_provider;

extern const coll_provider coll_provider_local;
extern const coll_provider coll_provider_ring;      /* host buffers */
extern const coll_provider coll_provider_ring_cuda; /* device buffers via pinned staging */
extern const coll_provider coll_provider_nccl;
extern const coll_provider coll_provider_p2p; /* one-shot all-reduce over CUDA IPC */

#define COLL_MAX_CHAIN 4

struct coll_comm {
    coll_layout layout;
    coll_env env;
    coll_logger log;
    int op_timeout_ms;
    int rdv_timeout_ms;
    /* Set by the caller or COLL_*: passed down to the ring; a default is not (README, knobs). */
    int op_timeout_explicit, rdv_timeout_explicit;
    coll_memtype memtype;
    int nprov;
    const coll_provider *prov[COLL_MAX_CHAIN];
    void *state[COLL_MAX_CHAIN];
    int ncreated;
    int order[COLL_MAX_CHAIN]; /* chain indices in creation order (destroyed reversed) */
    unsigned char created[COLL_MAX_CHAIN];
    long p2p_max_bytes; /* coll_params.p2p_max_bytes: -1 means the knob */
    void *shared;       /* state the providers of one chain share (e.g. the ring communicator) */
    int failed;
    char peers[256]; /* for the start-up log line */
    coll_spawn spawn;
    char last_error[512];
};

/* For a `late` provider's create and destroy: an allgather of `bytes` bytes per rank
 * (all = world size x bytes) through the providers created so far, on host or device
 * memory (device: on `stream`, complete on return). Every rank must call it. */
coll_status coll_comm_exchange(coll_comm *c, const void *mine, void *all, size_t bytes,
                               coll_memtype mem, void *stream, char *err, size_t errlen);

/* Build a communicator over an explicit provider chain (tests inject fakes). */
coll_status coll_comm_create_chain(const coll_params *params, const coll_layout *layout,
                                   const coll_provider *const *chain, int n, coll_comm **out,
                                   char *err, size_t errlen);

/* ------------------------------------------------------------------ CUDA helpers (cuda.c) */

/* HOST when built without CUDA or when CUDA does not know the pointer. */
coll_memtype coll_cuda_memtype(const void *p);
/* Number of visible devices; 0 without CUDA or a driver. */
int coll_cuda_device_count(void);

#endif
