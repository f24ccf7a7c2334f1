/* Private to libring: the communicator, error helpers and CHECK macros. */
#ifndef RING_PRIVATE_H
#define RING_PRIVATE_H

#include "ring.h"
#include "transport.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* Built-in defaults; knobs.c lets the environment override them. */
#define RING_DEFAULT_CONNECT_TIMEOUT_MS 60000
#define RING_DEFAULT_OP_TIMEOUT_MS 30000
#define RING_DEFAULT_HANDSHAKE_TIMEOUT_MS 5000
#define RING_DEFAULT_SEGMENT_BYTES (256u * 1024u)
#define RING_DEFAULT_SMALL_BYTES (32u * 1024u)
#define RING_DEFAULT_DEPTH 8
#define RING_MAX_DEPTH 64

/* Settings resolved from params, environment and defaults. */
typedef struct ring_settings {
    int connect_timeout_ms;
    int op_timeout_ms;
    int handshake_timeout_ms;
    size_t segment_bytes;
    size_t small_bytes;
    int depth; /* staging slots and sends in flight */
} ring_settings;

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
};

/* Record a one-line message on comm (and log it at ERROR); returns st. */
ring_status ring_fail(ring_comm *comm, ring_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Write a one-line message into a caller's buffer; returns st. */
ring_status ring_errf(char *err, size_t errlen, ring_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Resolve params against knobs and defaults. */
void ring_settings_resolve(const ring_params *p, ring_settings *out);
/* RING_CONFIG's value, or NULL if unset. */
const char *ring_knob_config_path(void);
/* RING_TRANSPORT and the RING_IB_* knobs: NULL / 0 / -1 when unset (port, GID index). */
const char *ring_knob_transport(void);
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

/* CHECK macros: on failure jump to a label named after what it undoes. */
#define RING_CHECK(expr, label)                                                                    \
    do {                                                                                           \
        st = (expr);                                                                               \
        if (st != RING_OK) goto label;                                                             \
    } while (0)

#endif
