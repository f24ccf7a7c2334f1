/* Private to libring: the communicator, error helpers and CHECK macros. */
#ifndef RING_PRIVATE_H
#define RING_PRIVATE_H

#include "ring.h"
#include "transport.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Built-in defaults; knobs.c lets the environment override them. */
#define RING_DEFAULT_CONNECT_TIMEOUT_MS 60000
#define RING_DEFAULT_OP_TIMEOUT_MS 30000
#define RING_DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
#define RING_DEFAULT_SEGMENT_BYTES (128u * 1024u)
#define RING_DEFAULT_SMALL_BYTES (32u * 1024u)
#define RING_DEFAULT_SPIN_US 100
#define RING_DEFAULT_DEPTH 16
#define RING_DEFAULT_STEP_GROUP 8
#define RING_DEFAULT_THREADS_MIN_BYTES (256u * 1024u)
#define RING_MAX_DEPTH 64
#define RING_MAX_TCP_STREAMS 16

/* Settings resolved from params, environment and defaults. */
typedef struct ring_settings {
    int connect_timeout_ms;
    int op_timeout_ms;
    int handshake_timeout_ms;
    size_t segment_bytes;
    size_t small_bytes;
    int spin_us;
    int depth; /* staging slots and sends in flight */
    int step_group; /* segments of one step sent back to back (clamped below depth) */
    int checksum; /* CRC32C of every data segment */
    int tcp_streams; /* TCP connections per neighbour */
    size_t threads_min_bytes; /* worker threads move collectives of chunks at least this large */
} ring_settings;

/* The control plane (ctrl.c): a thread per communicator watches the master
 * connections, relays the first failure to every rank and exchanges heartbeats, so
 * that a dead or silent rank is noticed by all ranks, not only its neighbours. */
typedef struct ring_ctrl {
    pthread_t thread;
    int running;
    int wake_fd;            /* eventfd: main thread -> control thread (report, stop) */
    atomic_int stop;
    atomic_int report;      /* a local failure to tell the others (status, 0 = none) */
    atomic_int claimed;     /* the first verdict wins */
    atomic_int verdict;     /* status of the first failure anywhere, 0 = none */
    char verdict_msg[256];  /* written before verdict is stored (release) */
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
    ring_status failed; /* RING_OK until a fatal error */
    uint64_t seq;       /* collective sequence number */
    unsigned char *slots;  /* depth * segment_bytes staging for received segments */
    unsigned char *gather; /* size * small_bytes for the latency path */
    char err[512];
    ring_ctrl ctrl;
    struct ring_auth *auth; /* NULL: no shared secret */
};

/* Record a one-line message on comm (and log it at ERROR); returns st. */
ring_status ring_fail(ring_comm *comm, ring_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Write a one-line message into a caller's buffer; returns st. */
ring_status ring_errf(char *err, size_t errlen, ring_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Resolve params against knobs and defaults. */
void ring_settings_resolve(const ring_params *p, ring_settings *out);
/* Knobs that are errors when wrong (RING_LOG_LEVEL), rather than ignored with a warning. */
ring_status ring_knobs_check(char *err, size_t errlen);
/* RING_CONFIG's value, or NULL if unset. */
const char *ring_knob_config_path(void);
/* RING_SECRET_FILE's value, or NULL if unset. */
const char *ring_knob_secret_file(void);
/* RING_TRANSPORT and the RING_IB_* knobs: NULL / 0 / -1 when unset (port, GID index). */
const char *ring_knob_transport(void);
/* RING_TCP_STREAMS's text, or NULL if unset (transport_select.c checks it). */
const char *ring_knob_tcp_streams(void);
/* RING_TCP_THREADS: 1 (the default) moves even one TCP stream with worker threads (for
 * collectives of chunks from RING_TCP_THREADS_MIN_BYTES up); 0: the caller's thread moves it. */
int ring_knob_tcp_threads(void);
const char *ring_knob_ib_device(void);
int ring_knob_ib_port(void);
int ring_knob_ib_gid_index(void);

/* Monotonic clock in nanoseconds, and a deadline helper. */
int64_t ring_now_ns(void);
static inline int64_t ring_deadline_in(int ms) { return ring_now_ns() + (int64_t)ms * 1000000; }
/* Milliseconds left until deadline, clamped to [0, INT_MAX]. */
int ring_ms_left(int64_t deadline_ns);

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
