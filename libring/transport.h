/* The transport table: how the ring moves bytes between neighbours.
 *
 * Connections are set up over TCP by the bootstrap (handshake, authentication);
 * a transport then turns the two neighbour sockets into data connections.
 * The data path is asynchronous: post sends and receives (completed in FIFO
 * order per connection), then progress until something completes. */
#ifndef RING_TRANSPORT_H
#define RING_TRANSPORT_H

#include "ring.h"

#include <stdint.h>

typedef struct ring_conn ring_conn;

typedef struct ring_transport {
    const char *name;
    /* Take over a connected, authenticated socket (ownership moves on success). */
    ring_status (*open)(int fd, int peer_rank, ring_conn **out, char *err, size_t errlen);
    /* Queue a send or receive of len bytes; buf must stay valid until it completes. */
    ring_status (*post_send)(ring_conn *c, const void *buf, size_t len);
    ring_status (*post_recv)(ring_conn *c, void *buf, size_t len);
    /* Move bytes on tx's sends and rx's receives (either may be NULL). Returns once at
     * least one operation completed, the abort fd is readable, or the deadline passes.
     * *sends and *recvs get the number of operations completed by this call. */
    ring_status (*progress)(ring_conn *tx, ring_conn *rx, int abort_fd, int64_t deadline_ns,
                            int *sends, int *recvs, char *err, size_t errlen);
    /* Operations queued and not yet completed. */
    int (*pending_sends)(const ring_conn *c);
    int (*pending_recvs)(const ring_conn *c);
    void (*close)(ring_conn *c);
} ring_transport;

extern const ring_transport ring_transport_tcp;

#endif
