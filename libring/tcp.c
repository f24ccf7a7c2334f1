/* SPDX-License-Identifier: MIT */
/* The TCP transport: one non-blocking socket per neighbour, moved by the caller's thread
 * (tcp_io.c). Chosen with RING_TCP_THREADS=0; the default is the striped transport, whose
 * worker threads move large collectives (tcp_streams.c). */
#include "tcp_io.h"
#include "transport.h"

#include <stdlib.h>
#include <unistd.h>

struct ring_conn {
    ring_tcp_io io;
};

static ring_status tcp_open(const ring_tp_opts *opts, int fd, int peer_rank, ring_conn **out,
                            char *err, size_t errlen)
{
    ring_conn *c = calloc(1, sizeof *c);
    if (!c) return ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory for a connection");
    c->io.fd = fd;
    c->io.spin_us = opts ? opts->spin_us : 0;
    c->io.peer = peer_rank;
    *out = c;
    return RING_OK;
}

static ring_status tcp_post_send(ring_conn *c, const void *buf, size_t len)
{
    return ring_tcp_queue_post(&c->io.tx, buf, len);
}
static ring_status tcp_post_recv(ring_conn *c, void *buf, size_t len)
{
    return ring_tcp_queue_post(&c->io.rx, buf, len);
}
static int tcp_pending_sends(const ring_conn *c)
{
    return ring_tcp_queue_pending(&c->io.tx);
}
static int tcp_pending_recvs(const ring_conn *c)
{
    return ring_tcp_queue_pending(&c->io.rx);
}

static ring_status tcp_progress(ring_conn *tx, ring_conn *rx, int abort_fd, int64_t deadline_ns,
                                int *sends, int *recvs, char *err, size_t errlen)
{
    return ring_tcp_io_progress(tx ? &tx->io : NULL, rx ? &rx->io : NULL, abort_fd, deadline_ns,
                                sends, recvs, err, errlen);
}

static void tcp_close(ring_conn *c)
{
    if (!c) return;
    if (c->io.fd >= 0) close(c->io.fd);
    free(c);
}

const ring_transport ring_transport_tcp = {
    .name = "tcp",
    .open = tcp_open,
    .post_send = tcp_post_send,
    .post_recv = tcp_post_recv,
    .progress = tcp_progress,
    .pending_sends = tcp_pending_sends,
    .pending_recvs = tcp_pending_recvs,
    .close = tcp_close,
};
