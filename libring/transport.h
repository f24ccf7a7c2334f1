/* SPDX-License-Identifier: MIT */
/* The transport table: how the ring moves bytes between neighbours.
 *
 * Connections are set up over TCP by the bootstrap (handshake, authentication);
 * a transport then turns the two neighbour sockets into data connections.
 * The data path is asynchronous: post sends and receives (completed in FIFO
 * order per connection), then progress until something completes. A receive must
 * have the length of the send it pairs with (the striped TCP transport cuts both
 * the same way from the length alone). */
#ifndef RING_TRANSPORT_H
#define RING_TRANSPORT_H

#include "ring.h"

#include <stdint.h>

typedef struct ring_conn ring_conn;

/* What a transport needs beyond the socket: chosen once per communicator by
 * ring_transport_select() (transport_select.c). TCP ignores it. */
typedef struct ring_tp_opts {
    char ib_device[64]; /* verbs: device name, e.g. "mlx5_0" or "rxe0" */
    int ib_port;        /* verbs: port number (1-based) */
    int ib_gid_index;   /* verbs: GID table index; RoCE needs one, InfiniBand uses the LID */
    int ib_roce;        /* verbs: 1 when the port's link layer is Ethernet (a GRH is required) */
    int spin_us;        /* tcp: poll the sockets this long before sleeping in poll() */
    size_t threads_min_bytes; /* tcp with workers: smaller chunks move on the caller's thread */
    int recv_worker; /* tcp with workers, one stream: 0: the caller receives, a worker only sends */
    int shm_cma;     /* shm: receivers copy from the sender's memory where the kernel allows */
    int shm_spin_us; /* shm: poll this long before sleeping */
} ring_tp_opts;

typedef struct ring_transport {
    const char *name;
    /* The pipeline this transport runs best with, taken when neither the params nor
     * RING_SEGMENT_BYTES / RING_PIPELINE_DEPTH set one (0: the library's defaults). */
    size_t segment_bytes;
    int depth;
    /* The least pipeline depth that cannot deadlock (0: 1). A transport whose send completes
     * only once the receiver has taken the bytes needs 2: with one staging slot a rank cannot
     * post its next receive until its right neighbour has taken its send, around the ring. */
    int min_depth;
    /* Take over a connected, authenticated socket (ownership moves on success). open must
     * not wait for the peer: every rank opens its right connection before its left one. */
    ring_status (*open)(const ring_tp_opts *opts, int fd, int peer_rank, ring_conn **out, char *err,
                        size_t errlen);
    /* Instead of open, for a transport striped over several sockets to the same peer
     * (NULL: one socket). fds[0..nfds) in stream order; all of them move on success. */
    ring_status (*open_streams)(const ring_tp_opts *opts, const int *fds, int nfds, int peer_rank,
                                ring_conn **out, char *err, size_t errlen);
    /* Finish setting up once both of a rank's connections are open (NULL: nothing to do).
     * May exchange messages with the peer on the socket; waits at most until the deadline. */
    ring_status (*connect)(ring_conn *c, int abort_fd, int64_t deadline_ns, char *err,
                           size_t errlen);
    /* Queue a send or receive of len bytes; buf must stay valid until it completes. */
    ring_status (*post_send)(ring_conn *c, const void *buf, size_t len);
    ring_status (*post_recv)(ring_conn *c, void *buf, size_t len);
    /* Move bytes on tx's sends and rx's receives (either may be NULL). Returns once at
     * least one operation completed, the abort fd is readable, or the deadline passes.
     * *sends and *recvs get the number of operations completed by this call. */
    ring_status (*progress)(ring_conn *tx, ring_conn *rx, int abort_fd, int64_t deadline_ns,
                            int *sends, int *recvs, char *err, size_t errlen);
    /* A collective starts, nothing is pending on c, and `chunk` is the largest message one of
     * its steps moves (the same on every rank for the same call). A transport with worker
     * threads moves a collective of small chunks on the caller's thread instead: a worker
     * costs two thread wake-ups per message, more than a small message's whole transfer.
     * NULL: nothing to choose. */
    void (*begin)(ring_conn *c, size_t chunk);
    /* Optional (NULL: plain receives only). A receive the transport may leave where the bytes
     * already are: *where is buf, or, once the receive completed, a pointer to the len bytes
     * in the peer's staging (staging below), readable until release(). */
    ring_status (*post_recv_ref)(ring_conn *c, void *buf, size_t len, const void **where);
    /* Hand back the oldest receive delivered in place (*where != buf): its send completes. */
    void (*release)(ring_conn *c);
    /* Optional (NULL: none). Called on the right connection once the ring is formed: memory of
     * `bytes` for the communicator's staging slots that the peer can read in place, so a
     * segment reduced into a slot reaches it with no copy; NULL when this connection has
     * none. It lives until close. */
    unsigned char *(*staging)(ring_conn *c, size_t bytes);
    /* Operations queued and not yet completed. */
    int (*pending_sends)(const ring_conn *c);
    int (*pending_recvs)(const ring_conn *c);
    void (*close)(ring_conn *c);
} ring_transport;

extern const ring_transport ring_transport_tcp;
/* TCP striped over RING_TCP_STREAMS sockets per neighbour, each moved by its own thread
 * (tcp_streams.c); collectives of chunks below RING_TCP_THREADS_MIN_BYTES move on the
 * caller's thread. The default; ring_transport_tcp with RING_TCP_THREADS=0. */
extern const ring_transport ring_transport_tcp_streams;
/* Shared-memory FIFOs between ranks of one host, moved by the caller's thread (shm.c). */
extern const ring_transport ring_transport_shm;
/* Defined only where configure found libibverbs (HAVE_VERBS). */
extern const ring_transport ring_transport_verbs;
/* Find a usable verbs device and port, honouring the RING_IB_* knobs (want_* may be
 * NULL / 0 / -1 for "any"). On failure err names the devices and ports seen and why
 * none would do. */
ring_status ring_verbs_probe(const char *want_device, int want_port, int want_gid_index,
                             ring_tp_opts *out, char *err, size_t errlen);

/* Pick the transport of a communicator from its config and its settings (RING_TRANSPORT,
 * RING_IB_*); logs the choice at INFO. */
ring_status ring_transport_select(ring_comm *c, const ring_transport **tp, ring_tp_opts *opts,
                                  char *err, size_t errlen);
/* TCP streams per neighbour (into c->set.tcp_streams): RING_TCP_STREAMS, else the config's
 * "tcp_streams", else 1. With more than one, or worker threads (RING_TCP_THREADS, the
 * default), and *tp TCP, *tp becomes the striped transport; other transports keep one
 * connection (logged). */
ring_status ring_transport_streams(ring_comm *c, const ring_transport **tp, char *err,
                                   size_t errlen);

#endif
