/* SPDX-License-Identifier: MIT */
/* Private: FIFO queues of sends and receives on one non-blocking TCP socket, moved by the
 * caller's thread (sendmsg/readv in batches, a short spin, then poll() with the abort fd).
 * The whole of the plain TCP transport (tcp.c); the striped transport (tcp_streams.c) moves
 * small collectives with it, on its stream 0, while its workers sleep. */
#ifndef RING_TCP_IO_H
#define RING_TCP_IO_H

#include "ring_private.h"

#define RING_TCP_QUEUE 256 /* operations in flight per direction, a power of 2 */

typedef struct ring_tcp_op {
    unsigned char *buf;
    size_t len, done;
} ring_tcp_op;

typedef struct ring_tcp_queue {
    ring_tcp_op ops[RING_TCP_QUEUE];
    unsigned head, tail; /* head: oldest pending; tail: next free */
} ring_tcp_queue;

typedef struct ring_tcp_io {
    int fd;
    int peer;    /* rank at the other end, for messages */
    int spin_us; /* poll the socket this long before sleeping */
    ring_tcp_queue tx, rx;
} ring_tcp_io;

/* Queue an operation (RING_ERR_INVALID_ARG when RING_TCP_QUEUE are pending). */
ring_status ring_tcp_queue_post(ring_tcp_queue *q, const void *buf, size_t len);
static inline int ring_tcp_queue_pending(const ring_tcp_queue *q)
{
    return (int)(q->tail - q->head);
}
/* Move what the socket takes now without waiting: push sends, pull receives. *completed
 * grows by the operations finished; an error means a broken connection. */
ring_status ring_tcp_io_push(ring_tcp_io *c, int *completed, char *err, size_t errlen);
ring_status ring_tcp_io_pull(ring_tcp_io *c, int *completed, char *err, size_t errlen);
/* Move tx's sends and rx's receives (either may be NULL) until at least one completes, the
 * abort fd is readable or the deadline passes (the transport table's progress). */
ring_status ring_tcp_io_progress(ring_tcp_io *tx, ring_tcp_io *rx, int abort_fd,
                                 int64_t deadline_ns, int *sends, int *recvs, char *err,
                                 size_t errlen);

#endif
