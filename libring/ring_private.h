/* SPDX-License-Identifier: MIT */
/* Private to libring: the communicator, error helpers and CHECK macros. */
#ifndef RING_PRIVATE_H
#define RING_PRIVATE_H

#include "common/clock.h"
#include "common/sock.h"
#include "ring.h"
#include "transport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Limits (the defaults live in knobs.c's list, once). */
#define RING_HANDSHAKE_TIMEOUT_MS 5000 /* one handshake, within the connect deadline */
#define RING_MAX_DEPTH 64
#define RING_MAX_TCP_STREAMS 16

/* Where log lines go: the params' callback (default ring_log_stderr), lines above `level`
 * dropped. Read once, at communicator creation. */
typedef struct ring_logger {
    ring_log_fn fn;
    void *ctx;
    ring_log_level level;
} ring_logger;

/* Settings resolved once, at communicator creation, from params, the environment (knobs.c)
 * and the defaults, in that order of precedence. */
typedef struct ring_settings {
    ring_logger log;
    int connect_timeout_ms;
    int op_timeout_ms;
    int handshake_timeout_ms;
    size_t segment_bytes;
    int pipeline_set; /* segment size or depth came from params or the environment */
    size_t small_bytes;
    int spin_us;
    int depth;            /* staging slots and sends in flight */
    int step_group;       /* segments of one step sent back to back (clamped below depth) */
    int checksum;         /* CRC32C of every data segment */
    int tcp_streams_knob; /* RING_TCP_STREAMS, 0: unset */
    int tcp_streams;      /* TCP connections per neighbour, as resolved by ring_transport_streams */
    int tcp_threads;      /* RING_TCP_THREADS: worker threads move even one stream */
    size_t threads_min_bytes; /* worker threads move collectives of chunks at least this large */
    int tcp_recv_worker; /* RING_TCP_RECV_WORKER: 0: with one stream the caller receives; -1 auto */
    int local_ranks;     /* RING_LOCAL_RANKS: ranks of this job on this host, 0 unset */
    int shm_cma;         /* RING_SHM_CMA: shm receivers copy from the sender's memory */
    int shm_spin_us;     /* RING_SHM_SPIN_US */
    int shm_gather;      /* RING_SHM_GATHER: all-gathers through the shared staging slots */
    size_t stream_bytes; /* RING_STREAM_BYTES: such all-reduces stream their result; 0 never */
    int stream_ranks;    /* RING_STREAM_RANKS: in place too when this many ranks run at once */
    int stream_in_place; /* derived at create: stream_ranks ranks or more run at once */
    char config_path[RING_PATH_MAX]; /* RING_CONFIG, "" unset */
    char secret_file[RING_PATH_MAX]; /* RING_SECRET_FILE, "" unset */
    int transport_knob;              /* RING_TRANSPORT as a ring_transport_kind, -1 unset */
    char ib_device[64];              /* RING_IB_DEVICE, "" unset */
    int ib_port;                     /* RING_IB_PORT, 0 unset */
    int ib_gid_index;                /* RING_IB_GID_INDEX, -1 unset */
} ring_settings;

/* The control plane (ctrl.c): a thread per communicator watches the master
 * connections, relays the first failure to every rank and exchanges heartbeats, so
 * that a dead or silent rank is noticed by all ranks, not only its neighbours. */
typedef struct ring_ctrl {
    pthread_t thread;
    int running;
    int wake_fd; /* eventfd: main thread -> control thread (report, stop) */
    atomic_int stop;
    atomic_int report;     /* a local failure to tell the others (status, 0 = none) */
    atomic_int claimed;    /* the first verdict wins */
    atomic_int verdict;    /* status of the first failure anywhere, 0 = none */
    char verdict_msg[256]; /* written before verdict is stored (release) */
} ring_ctrl;

struct ring_comm {
    ring_config cfg;
    ring_settings set;
    uint64_t job_id;
    int rank, size;
    const ring_transport *tp;
    ring_tp_opts tpo; /* the transport's device choice */
    ring_conn *right; /* we send to it */
    ring_conn *left;  /* we receive from it */
    int master_fd;    /* rank != 0: our control connection to rank 0 */
    int *worker_fds;  /* rank 0: size entries, [0] unused */
    int abort_fd;     /* eventfd: written by ring_comm_abort() */
    atomic_int aborted;
    ring_status failed;    /* RING_OK until a fatal error */
    uint64_t seq;          /* collective sequence number */
    unsigned char *slots;  /* depth * segment_bytes staging for received segments */
    int slots_tp;          /* slots belong to the right connection (tp->staging), not malloc */
    unsigned char *gather; /* size * small_bytes for the latency path */
    char err[512];
    ring_ctrl ctrl;
    struct ring_auth *auth; /* NULL: no shared secret */
};

/* Record a one-line message on comm (and log it at ERROR); returns st. */
ring_status ring_fail(ring_comm *comm, ring_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Write a one-line message into a caller's buffer; returns st. */
ring_status ring_errf(ring_status st, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Read the environment once and resolve params against it and the defaults. A refused
 * value is a RING_ERR_CONFIG naming the variable ("RING_PIPELINE_DEPTH=0: expected ..."). */
ring_status ring_settings_resolve(const ring_params *p, ring_settings *out, char *err,
                                  size_t errlen);
/* For what runs without a communicator (ring_config_parse's warnings): stderr, at the level
 * of RING_LOG_LEVEL as it is now (info when unset or not valid). */
ring_logger ring_logger_from_env(void);
/* Format a line and hand it to lg if its level passes (rank -1: none). */
void ring_logf(const ring_logger *lg, ring_log_level level, int rank, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A caller's ring_config (of its struct_size) as a whole one of this build, the fields it
 * lacks at their defaults; RING_ERR_INVALID_ARG when struct_size was never set. */
ring_status ring_config_copy_in(ring_config *dst, const ring_config *src, char *err, size_t errlen);
/* ring_config_load into a whole struct, warnings to lg. */
ring_status ring_config_load_full(const char *path, ring_config *cfg, const ring_logger *lg,
                                  char *err, size_t errlen);
/* A communicator's log line. */
#define ring_clog(comm, level, ...) ring_logf(&(comm)->set.log, (level), (comm)->rank, __VA_ARGS__)

/* Deadlines: common/clock.h's monotonic nanoseconds; rc_ms_left (common/sock.h) gives the
 * milliseconds left for poll(). */
static inline int64_t ring_deadline_in(int ms)
{
    return rc_now_ns() + (int64_t)ms * 1000000;
}

/* Bootstrap: form the ring and check in with the master. */
ring_status ring_bootstrap(ring_comm *comm);
void ring_bootstrap_close(ring_comm *comm);

/* Control plane (ctrl.c). Start after the ring formed; stop in destroy. */
ring_status ring_ctrl_start(ring_comm *comm, char *err, size_t errlen);
void ring_ctrl_stop(ring_comm *comm);
/* A collective failed locally with st (message in why): find the root cause (a verdict
 * relayed from another rank wins over a local "peer closed" or "aborted" that it caused),
 * tell the other ranks, and return the status to report. */
ring_status ring_ctrl_settle(ring_comm *comm, ring_status st, char *why, size_t cap);
/* RING_OK, or the failure another rank reported (message copied to why). */
ring_status ring_ctrl_verdict(ring_comm *comm, char *why, size_t cap);

/* CHECK macros: on failure jump to a label named after what it undoes. */
#define RING_CHECK(expr, label)                                                                    \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != RING_OK) goto label;                                                             \
    } while (0)

#endif
