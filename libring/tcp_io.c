/* SPDX-License-Identifier: MIT */
/* FIFO queues of sends and receives on one non-blocking TCP socket, moved by the caller's
 * thread: sendmsg/readv in batches of up to TCP_IOV operations, a short spin, then poll()
 * with the abort fd and the caller's deadline (tcp_io.h). */
#include "tcp_io.h"
#include "sock.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#define TCP_IOV 64

ring_status ring_tcp_queue_post(ring_tcp_queue *q, const void *buf, size_t len)
{
    if (q->tail - q->head == RING_TCP_QUEUE) return RING_ERR_INVALID_ARG;
    q->ops[q->tail % RING_TCP_QUEUE] =
        (ring_tcp_op){.buf = (unsigned char *)buf, .len = len, .done = 0};
    q->tail++;
    return RING_OK;
}

/* Gather the pending operations into an iovec, starting at the head's progress. */
static int fill_iov(ring_tcp_queue *q, struct iovec *iov)
{
    int n = 0;
    for (unsigned i = q->head; i != q->tail && n < TCP_IOV; i++) {
        ring_tcp_op *op = &q->ops[i % RING_TCP_QUEUE];
        iov[n].iov_base = op->buf + op->done;
        iov[n].iov_len = op->len - op->done;
        n++;
    }
    return n;
}

/* Account n moved bytes against the queue; returns the operations completed. */
static int advance(ring_tcp_queue *q, size_t n)
{
    int completed = 0;
    while (q->head != q->tail) {
        ring_tcp_op *op = &q->ops[q->head % RING_TCP_QUEUE];
        size_t take = op->len - op->done < n ? op->len - op->done : n;
        op->done += take;
        n -= take;
        if (op->done < op->len) break;
        q->head++;
        completed++;
    }
    return completed;
}

/* Move what the socket takes now. Returns RING_OK, or an error for a broken connection. */
ring_status ring_tcp_io_push(ring_tcp_io *c, int *completed, char *err, size_t errlen)
{
    struct iovec iov[TCP_IOV];
    while (c->tx.head != c->tx.tail) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)fill_iov(&c->tx, iov)};
        ssize_t n = sendmsg(c->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            *completed += advance(&c->tx, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        int e = errno;
        return ring_errf(e == EPIPE || e == ECONNRESET ? RING_ERR_PEER_CLOSED : RING_ERR_SYSTEM,
                         err, errlen, "send to rank %d: %s", c->peer, strerror(e));
    }
    return RING_OK;
}

ring_status ring_tcp_io_pull(ring_tcp_io *c, int *completed, char *err, size_t errlen)
{
    struct iovec iov[TCP_IOV];
    while (c->rx.head != c->rx.tail) {
        ssize_t n = readv(c->fd, iov, fill_iov(&c->rx, iov));
        if (n > 0) {
            *completed += advance(&c->rx, (size_t)n);
            continue;
        }
        if (n == 0)
            return ring_errf(RING_ERR_PEER_CLOSED, err, errlen,
                             "rank %d closed the connection mid-collective", c->peer);
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        int e = errno;
        return ring_errf(e == ECONNRESET ? RING_ERR_PEER_CLOSED : RING_ERR_SYSTEM, err, errlen,
                         "receive from rank %d: %s", c->peer, strerror(e));
    }
    return RING_OK;
}

/* Retry the sockets for up to spin_us before sleeping: a small message's reply often comes
 * within microseconds, and a sleep in poll() costs a wake-up of several. sched_yield() keeps
 * a spinning rank from starving another rank that shares its core. */
static ring_status spin(ring_tcp_io *tx, ring_tcp_io *rx, int abort_fd, int *sends, int *recvs,
                        char *err, size_t errlen)
{
    int us = (tx ? tx->spin_us : 0) > (rx ? rx->spin_us : 0) ? tx->spin_us : (rx ? rx->spin_us : 0);
    if (us <= 0) return RING_OK;
    int64_t until = rc_now_ns() + (int64_t)us * 1000;
    ring_status st;
    do {
        sched_yield();
        if (tx && (st = ring_tcp_io_push(tx, sends, err, errlen)) != RING_OK) return st;
        if (rx && (st = ring_tcp_io_pull(rx, recvs, err, errlen)) != RING_OK) return st;
        if (*sends || *recvs) return RING_OK;
        struct pollfd a = {.fd = abort_fd, .events = POLLIN};
        if (poll(&a, 1, 0) > 0) return RING_OK; /* the caller's poll() reports it */
    } while (rc_now_ns() < until);
    return RING_OK;
}

ring_status ring_tcp_io_progress(ring_tcp_io *tx, ring_tcp_io *rx, int abort_fd,
                                 int64_t deadline_ns, int *sends, int *recvs, char *err,
                                 size_t errlen)
{
    ring_status st;
    *sends = *recvs = 0;
    int spun = 0;
    for (;;) {
        if (tx && (st = ring_tcp_io_push(tx, sends, err, errlen)) != RING_OK) return st;
        if (rx && (st = ring_tcp_io_pull(rx, recvs, err, errlen)) != RING_OK) return st;
        if (*sends || *recvs) return RING_OK;
        int want_tx = tx && tx->tx.head != tx->tx.tail;
        int want_rx = rx && rx->rx.head != rx->rx.tail;
        if (!want_tx && !want_rx) return RING_OK;
        if (!spun) {
            spun = 1;
            if ((st = spin(want_tx ? tx : NULL, want_rx ? rx : NULL, abort_fd, sends, recvs, err,
                           errlen)) != RING_OK)
                return st;
            if (*sends || *recvs) return RING_OK;
        }
        struct pollfd p[3];
        int n = 0;
        p[n++] = (struct pollfd){.fd = abort_fd, .events = POLLIN};
        if (want_tx) p[n++] = (struct pollfd){.fd = tx->fd, .events = POLLOUT};
        if (want_rx) p[n++] = (struct pollfd){.fd = rx->fd, .events = POLLIN};
        if ((st = ring_sock_poll_progress(p, n, deadline_ns, want_rx ? rx->peer : tx->peer,
                                          want_rx   ? " (receiving)"
                                          : want_tx ? " (sending)"
                                                    : "",
                                          err, errlen)) != RING_OK)
            return st;
    }
}
