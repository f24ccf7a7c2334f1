/* SPDX-License-Identifier: MIT */
/* libring: ring collectives over TCP (and RDMA verbs) between processes.
 *
 * One communicator per process. Each rank listens on its `port` for its left
 * neighbour, connects to `right_ip:right_port`, and checks in with rank 0 at
 * `master_ip:master_port`. Collectives are pipelined rings on host memory.
 *
 * Thread safety: a communicator is used by one thread at a time; calls on
 * different communicators may run concurrently. ring_comm_abort() is the one
 * call that may come from any thread (or a signal handler's helper thread)
 * while another thread is inside a collective.
 *
 * Errors: every call returns a ring_status. After a fatal error (timeout, peer
 * lost, invalid usage, ...) the communicator accepts only ring_comm_destroy()
 * (other calls return RING_ERR_FAILED); the job must rebuild it on every rank.
 * ring_comm_last_error() gives the one-line message of the last failure.
 *
 * Failure contract (docs/RELIABILITY.md):
 * - Every wait has a deadline: connect_timeout_ms for forming the ring (5 s at most
 *   per handshake), op_timeout_ms without progress inside a collective.
 * - A dead or silent rank gives EVERY surviving rank an error within 2 x op_timeout_ms:
 *   a library thread per communicator keeps heartbeats with rank 0 and relays the first
 *   failure, so all ranks return the root cause: RING_ERR_PEER_CLOSED (a rank died),
 *   RING_ERR_TIMEOUT (a rank is silent), RING_ERR_INVALID_USAGE (ranks disagree on
 *   collective, count, type, op or root), RING_ERR_SYSTEM, RING_ERR_PROTOCOL (bad or
 *   corrupted data), RING_ERR_ABORTED (ring_comm_abort on some rank), RING_ERR_AUTH
 *   (shared secret missing or different, at creation).
 * - ring_comm_abort() is async-signal-safe: every wait returns at once.
 */
#ifndef RING_H
#define RING_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the public API: libring is built with -fvisibility=hidden, so only what carries
 * RING_API is exported (tests/exports.sh checks the list against this header). */
#if defined(__GNUC__)
#define RING_API __attribute__((visibility("default")))
#else
#define RING_API
#endif

/* X(name, message): the one list the status enum and its strings come from. */
#define RING_STATUS_LIST(X)                                                                        \
    X(RING_OK, "success")                                                                          \
    X(RING_ERR_INVALID_ARG, "invalid argument")                                                    \
    X(RING_ERR_CONFIG, "invalid configuration")                                                    \
    X(RING_ERR_NOMEM, "out of memory")                                                             \
    X(RING_ERR_SYSTEM, "system error")                                                             \
    X(RING_ERR_TIMEOUT, "timed out")                                                               \
    X(RING_ERR_PEER_CLOSED, "peer closed the connection")                                          \
    X(RING_ERR_PROTOCOL, "protocol error")                                                         \
    X(RING_ERR_INVALID_USAGE, "ranks disagree on the call")                                        \
    X(RING_ERR_AUTH, "authentication failed")                                                      \
    X(RING_ERR_UNSUPPORTED, "not supported")                                                       \
    X(RING_ERR_ABORTED, "aborted")                                                                 \
    X(RING_ERR_FAILED, "communicator failed earlier; destroy it and rebuild on every rank")

#define RING_STATUS_ENUM_(name, msg) name,
typedef enum { RING_STATUS_LIST(RING_STATUS_ENUM_) RING_STATUS_COUNT } ring_status;
#undef RING_STATUS_ENUM_

/* Short fixed text for a status ("timed out"). */
RING_API const char *ring_status_str(ring_status s);
/* The enumerator's name ("RING_ERR_TIMEOUT"). */
RING_API const char *ring_status_name(ring_status s);

#define RING_DTYPE_LIST(X)                                                                         \
    X(RING_F32, "f32", 4)                                                                          \
    X(RING_F64, "f64", 8)                                                                          \
    X(RING_F16, "f16", 2)                                                                          \
    X(RING_BF16, "bf16", 2)                                                                        \
    X(RING_I32, "i32", 4)                                                                          \
    X(RING_I64, "i64", 8)                                                                          \
    X(RING_U8, "u8", 1)

#define RING_DTYPE_ENUM_(name, str, size) name,
typedef enum { RING_DTYPE_LIST(RING_DTYPE_ENUM_) RING_DTYPE_COUNT } ring_dtype;
#undef RING_DTYPE_ENUM_

#define RING_OP_LIST(X)                                                                            \
    X(RING_SUM, "sum")                                                                             \
    X(RING_PROD, "prod")                                                                           \
    X(RING_MIN, "min")                                                                             \
    X(RING_MAX, "max")                                                                             \
    X(RING_AVG, "avg")

#define RING_OP_ENUM_(name, str) name,
typedef enum { RING_OP_LIST(RING_OP_ENUM_) RING_OP_COUNT } ring_op;
#undef RING_OP_ENUM_

RING_API size_t ring_dtype_size(ring_dtype t);      /* 0 for an invalid type */
RING_API const char *ring_dtype_name(ring_dtype t); /* "f32"; NULL if invalid */
RING_API const char *ring_op_name(ring_op op);      /* "sum"; NULL if invalid */
/* Parse "f32"/"float"/"bf16"... and "sum"/"max"...; return 0 on success, -1 if unknown. */
RING_API int ring_dtype_parse(const char *s, ring_dtype *out);
RING_API int ring_op_parse(const char *s, ring_op *out);
/* avg is defined for floating types only. */
RING_API int ring_op_valid_for(ring_op op, ring_dtype t);

/* Half-precision conversions as the reductions do them (round to nearest even). */
RING_API float ring_f16_to_f32(uint16_t h);
RING_API uint16_t ring_f32_to_f16(float f);
RING_API float ring_bf16_to_f32(uint16_t h);
RING_API uint16_t ring_f32_to_bf16(float f);

/* ------------------------------------------------------------------ logging */

/* Lines above RING_LOG_LEVEL (read at communicator creation; default info) are dropped. */
typedef enum { RING_LOG_ERROR, RING_LOG_WARN, RING_LOG_INFO, RING_LOG_DEBUG } ring_log_level;
/* Where a communicator's log lines go (ring_params.log_fn): one call per line, without a
 * newline; rank is -1 where none applies. Called only from the thread inside a libring call
 * on that communicator (never from libring's own threads), so it needs no lock of its own
 * for one communicator; it must not call back into the communicator. */
typedef void (*ring_log_fn)(void *ctx, ring_log_level level, int rank, const char *line);
/* The default: "[ring <rank>] LEVEL line" on stderr, one write per line. */
RING_API void ring_log_stderr(void *ctx, ring_log_level level, int rank, const char *line);

/* ------------------------------------------------------------------ RING_CONFIG */

#define RING_IP_MAX 256
#define RING_PATH_MAX 4096

/* shm: shared memory between ranks of one host (every rank on the same host and network
 * namespace; refused at connect otherwise). auto: verbs when usable, else tcp. */
typedef enum {
    RING_TRANSPORT_TCP,
    RING_TRANSPORT_VERBS,
    RING_TRANSPORT_AUTO,
    RING_TRANSPORT_SHM
} ring_transport_kind;

/* One rank's view of the ring, as read from its RING_CONFIG file. The struct grows at its
 * end: struct_size (set by ring_config_init to the caller's sizeof) tells libring how much
 * of it the caller's build has, so a program built against an older ring.h keeps working
 * (fields it lacks take their defaults). The macros below pass sizeof for you. */
typedef struct ring_config {
    size_t struct_size;
    char master_ip[RING_IP_MAX]; /* default "0.0.0.0"; required when rank != 0 */
    int master_port;
    int port;                   /* where this rank listens for its left neighbour */
    char right_ip[RING_IP_MAX]; /* default "0.0.0.0" */
    int right_port;
    int rank;
    int world_size; /* a power of 2 */
    /* Optional fields beyond mistral.rs's. */
    uint64_t job_id; /* 0: derived from master address and world size */
    int has_job_id;
    char secret_file[RING_PATH_MAX]; /* "" if none: shared-secret authentication */
    ring_transport_kind transport;   /* default TCP */
    int checksum;                    /* "checksum": true: CRC32C of every data segment */
    int tcp_streams;                 /* "tcp_streams": 1..16 TCP streams per neighbour; 0 unset */
} ring_config;

/* Fill defaults (master_ip/right_ip "0.0.0.0", transport tcp, everything else 0) and set
 * struct_size = size (the caller's sizeof(ring_config)). */
RING_API void ring_config_init_sized(ring_config *cfg, size_t size);
#define ring_config_init(cfg) ring_config_init_sized((cfg), sizeof *(cfg))

/* A transport's name as in the config's "transport" and RING_TRANSPORT ("tcp", "verbs", "auto",
 * "shm"); NULL for a value outside the enum. Thread-safe (constant strings). */
RING_API const char *ring_transport_name(ring_transport_kind kind);

/* Parse the JSON text of a RING_CONFIG file into cfg (size: the caller's sizeof). `origin`
 * names it in messages. On failure writes one line to err ("<origin>: field 'port': must be
 * ... , got 70000"). Unknown fields are ignored with a warning on stderr (RING_LOG_LEVEL). */
RING_API ring_status ring_config_parse_sized(const char *json, const char *origin, ring_config *cfg,
                                             size_t size, char *err, size_t errlen);
#define ring_config_parse(json, origin, cfg, err, errlen)                                          \
    ring_config_parse_sized((json), (origin), (cfg), sizeof *(cfg), (err), (errlen))
/* Read and parse the file at `path`. */
RING_API ring_status ring_config_load_sized(const char *path, ring_config *cfg, size_t size,
                                            char *err, size_t errlen);
#define ring_config_load(path, cfg, err, errlen)                                                   \
    ring_config_load_sized((path), (cfg), sizeof *(cfg), (err), (errlen))
/* Write cfg as a RING_CONFIG JSON file (used by ringrun). cfg->struct_size must be set. */
RING_API ring_status ring_config_write(const char *path, const ring_config *cfg, char *err,
                                       size_t errlen);

/* ------------------------------------------------------------------ environment knobs */

/* Every environment variable libring reads, declared in one table. */
typedef struct ring_knob {
    const char *name;
    const char *default_value; /* as text; "" for unset */
    const char *help;
} ring_knob;

/* The table, terminated by an entry whose name is NULL. */
RING_API const ring_knob *ring_knobs(void);
/* Print each knob: name, the value in effect (a refused environment value is marked), help. */
RING_API void ring_knobs_print(FILE *out);

/* ------------------------------------------------------------------ communicator */

typedef struct ring_comm ring_comm;

typedef struct ring_params {
    size_t struct_size;        /* sizeof(ring_params): lets the struct grow */
    const ring_config *config; /* required */
    int connect_timeout_ms;    /* 0: RING_CONNECT_TIMEOUT or 60000 */
    int op_timeout_ms;         /* 0: RING_OP_TIMEOUT or 30000 */
    size_t segment_bytes;      /* 0: RING_SEGMENT_BYTES or built-in default */
    size_t small_bytes;        /* 0: RING_SMALL_BYTES or built-in default; latency path below it */
    int pipeline_depth;        /* 0: RING_PIPELINE_DEPTH or built-in default */
    ring_log_fn log_fn;        /* NULL: ring_log_stderr */
    void *log_ctx;             /* passed to log_fn */
} ring_params;

/* Zero the struct and set struct_size. */
RING_API void ring_params_init(ring_params *p);

/* Build the ring: listen, connect right, accept left, check in with the master.
 * Blocks until every rank is connected or the connect deadline passes. Settings are
 * resolved here, once: params, then the environment (RING_* knobs), then the defaults; a
 * knob with a value that is not valid is a RING_ERR_CONFIG naming it. */
RING_API ring_status ring_comm_create(const ring_params *params, ring_comm **out, char *err,
                                      size_t errlen);
/* Read the file named by RING_CONFIG and create. params may be NULL; its config field
 * is ignored, its other fields apply as in ring_comm_create(). */
RING_API ring_status ring_comm_create_from_env(const ring_params *params, ring_comm **out,
                                               char *err, size_t errlen);
RING_API void ring_comm_destroy(ring_comm *comm);

RING_API int ring_comm_rank(const ring_comm *comm);
RING_API int ring_comm_size(const ring_comm *comm);
/* The message of the last failure on this communicator ("" if none). */
RING_API const char *ring_comm_last_error(const ring_comm *comm);
/* Make every current and future call on comm fail with RING_ERR_ABORTED, at once;
 * the other ranks' calls fail with RING_ERR_ABORTED too. Safe from any thread and
 * async-signal-safe (an atomic store and a write to an eventfd). */
RING_API void ring_comm_abort(ring_comm *comm);

/* ------------------------------------------------------------------ collectives
 * Host memory. sendbuf == recvbuf means in place (for reduce-scatter and all-gather,
 * in place means the rank's own chunk already sits at its place in recvbuf).
 * Every rank ends with bitwise-identical results. All ranks must make the same calls
 * in the same order with the same count, type, op and root. */

/* recvbuf[i] = op over ranks of sendbuf[i], for i < count. */
RING_API ring_status ring_allreduce(ring_comm *comm, const void *sendbuf, void *recvbuf,
                                    size_t count, ring_dtype type, ring_op op);
/* sendbuf holds size*recvcount elements; rank r gets the reduction of block r. */
RING_API ring_status ring_reduce_scatter(ring_comm *comm, const void *sendbuf, void *recvbuf,
                                         size_t recvcount, ring_dtype type, ring_op op);
/* recvbuf holds size*sendcount elements; block r comes from rank r. */
RING_API ring_status ring_allgather(ring_comm *comm, const void *sendbuf, void *recvbuf,
                                    size_t sendcount, ring_dtype type);
/* Copy root's buffer to every rank (sendbuf is read on root only). */
RING_API ring_status ring_broadcast(ring_comm *comm, const void *sendbuf, void *recvbuf,
                                    size_t count, ring_dtype type, int root);
RING_API ring_status ring_barrier(ring_comm *comm);

#ifdef __cplusplus
}
#endif
#endif
