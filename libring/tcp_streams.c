/* SPDX-License-Identifier: MIT */
/* TCP striped over K sockets per neighbour, each moved by its own worker thread, so that
 * the kernel's copies of one connection run on K cores. With K=1 (the default,
 * RING_TCP_THREADS=1) the rank's send and receive connections each get a worker and the
 * caller only reduces.
 *
 * Small collectives skip the workers: a worker costs two thread wake-ups per message (the
 * post wakes it, its completion wakes the caller), more than a 4 KiB message's whole trip.
 * begin() picks per collective: when its largest chunk is below threads_min_bytes the
 * caller moves every operation itself on stream 0 (tcp_io.c, the plain transport's loop)
 * while the workers sleep. Nothing is pending at a collective's start, a worker touches its
 * socket only while its lanes hold parts, and both modes put the same bytes on the wire:
 * with one stream trivially, with K > 1 because direct mode is then taken only for chunks
 * shorter than two TS_MIN_PART, which the workers too would send whole on stream 0 (so the
 * ends of a connection need not agree on the threshold).
 *
 * Every posted operation is cut into parts by its length alone (ts_cut), the same way on
 * both ends: short ones go whole on stream 0 (latency), long ones in K contiguous parts,
 * part j on stream j. The caller's thread posts parts into one single-producer,
 * single-consumer lane per stream and direction; the stream's worker moves them in FIFO
 * order with non-blocking sendmsg/readv, sleeping in poll() on its socket and a wake
 * eventfd, and counts down the operation's parts. An operation completes when its last
 * part is moved; progress() collects completions in FIFO order and sleeps on an eventfd
 * the workers signal, with the caller's deadline and abort fd. A worker's error (EOF,
 * reset) is recorded once and wakes the caller. Nothing is allocated per operation.
 *
 * With one stream and RING_TCP_RECV_WORKER=0 (self_rx) the caller receives and reduces
 * itself through tcp_io.c while a worker sends: one thread fewer per rank, for hosts whose
 * ranks times three threads exceed their cores. The receive worker then has no work and
 * sleeps; the send worker and the caller may use one socket at once (2 ranks: the left and
 * the right neighbour are the same rank, its two connections still two sockets), one
 * sending, one receiving, which TCP allows.
 *
 * Threads: post_*, progress, pending_* and close run on the communicator's thread; the
 * workers touch only their lanes, the part counters, the error record and the eventfds. */
#include "sock.h"
#include "tcp_io.h"
#include "transport.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define TS_QUEUE 256 /* operations in flight per direction, a power of 2 (as tcp.c) */
#define TS_IOV 64
#define TS_MIN_PART (32u * 1024) /* shorter operations than two of these are not cut */
#define TS_ALIGN 64              /* cuts fall on cache lines */
#define TS_IDLE_MS 1000          /* a worker without work re-checks its stop flag this often */

/* ThreadSanitizer cannot see causality through the wire: a receive worker may write a
 * buffer that a send worker of the other connection read, once the bytes it sent came
 * back around the ring (an in-place all-reduce receives its all-gather chunks where its
 * reduce-scatter sent from). The kernel copy ended before the peer could answer. In TSan
 * builds only, one lock around every send and receive call shows TSan that order (an
 * annotation after sendmsg could come late: the answer may be read first). With one
 * stream the same thread does both and TSan sees the same order. */
#if defined(__SANITIZE_THREAD__)
static pthread_mutex_t ts_wire_lock = PTHREAD_MUTEX_INITIALIZER;
#define TS_WIRE_LOCK() pthread_mutex_lock(&ts_wire_lock)
#define TS_WIRE_UNLOCK() pthread_mutex_unlock(&ts_wire_lock)
#else
#define TS_WIRE_LOCK() ((void)0)
#define TS_WIRE_UNLOCK() ((void)0)
#endif

typedef struct ts_part {
    unsigned char *buf;
    size_t len;
    unsigned op; /* the operation's index in its direction's queue */
} ts_part;

/* One direction of one stream: the caller produces parts, the worker consumes them. */
typedef struct ts_lane {
    ts_part parts[TS_QUEUE];
    alignas(64) atomic_uint tail; /* caller: parts posted (release) */
    atomic_int idle;              /* worker: asleep with this lane empty; a post must wake it */
    alignas(64) unsigned head;    /* worker: parts finished */
    size_t done;                  /* worker: bytes of parts[head] moved */
} ts_lane;

/* One direction of the connection as the caller sees it. */
typedef struct ts_dir {
    atomic_uint left[TS_QUEUE]; /* parts of each operation not yet moved */
    unsigned head, tail;        /* caller only: oldest pending, next free */
} ts_dir;

typedef struct ts_stream {
    struct ring_conn *conn;
    int index, fd;
    int wake; /* eventfd: caller -> worker (work in an idle lane, or stop) */
    pthread_t thread;
    int started;
    ts_lane tx, rx;
} ts_stream;

struct ring_conn {
    int peer, k;
    int done_fd;        /* eventfd: workers -> caller (an operation completed, or an error) */
    atomic_int waiting; /* the caller sleeps on done_fd: the next completion must signal */
    atomic_int stop;
    atomic_int claimed; /* the first worker error wins */
    atomic_int failed;  /* its status (0: none), stored after why is written */
    char why[200];
    ts_dir tx, rx;
    ts_stream *s;     /* k of them */
    size_t min_bytes; /* collectives of smaller chunks move on the caller's thread */
    int direct;       /* 1: this collective moves on the caller's thread, through io */
    int rx_worker;    /* 0: with one stream, receives always go through io (the caller's) */
    int self_rx;      /* 1: this collective's receives move on the caller's thread */
    ring_tcp_io io;   /* stream 0's socket, for direct mode */
};

/* Where part j of n of a len-byte operation starts (j == n: the end). */
static size_t ts_cut(size_t len, int n, int j)
{
    if (j >= n) return len;
    return (len / (size_t)n * (size_t)j) & ~(size_t)(TS_ALIGN - 1);
}

static int ts_nparts(size_t len, int k)
{
    size_t n = len / TS_MIN_PART;
    return n < 2 ? 1 : n < (size_t)k ? (int)n : k;
}

static void ts_signal(int fd)
{
    uint64_t one = 1;
    ssize_t n = write(fd, &one, sizeof one);
    (void)n; /* an eventfd only fails to count when it is already signalled */
}

static void ts_drain(int fd)
{
    uint64_t v;
    ssize_t n = read(fd, &v, sizeof v);
    (void)n;
}

/* Worker: record the connection's first error and wake the caller. */
__attribute__((format(printf, 3, 4))) static void ts_fail(ring_conn *c, ring_status st,
                                                          const char *fmt, ...)
{
    int zero = 0;
    if (atomic_compare_exchange_strong(&c->claimed, &zero, 1)) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
        atomic_store_explicit(&c->failed, (int)st, memory_order_release);
    }
    ts_signal(c->done_fd);
}

/* Worker: n bytes of the lane moved; count down the operations whose parts finished. */
static void ts_advance(ring_conn *c, ts_lane *l, ts_dir *d, unsigned tail, size_t n)
{
    while (l->head != tail) {
        ts_part *p = &l->parts[l->head % TS_QUEUE];
        size_t take = p->len - l->done < n ? p->len - l->done : n;
        l->done += take;
        n -= take;
        if (l->done < p->len) break;
        l->head++;
        l->done = 0;
        if (atomic_fetch_sub(&d->left[p->op % TS_QUEUE], 1) == 1 && atomic_exchange(&c->waiting, 0))
            ts_signal(c->done_fd);
    }
}

/* Worker: move what the socket takes now on one lane. Returns 1 when bytes moved, 0 when
 * the socket would block or the lane is empty, -1 after an error (recorded). */
static int ts_move(ring_conn *c, ts_stream *s, ts_lane *l, ts_dir *d, int sending)
{
    unsigned tail = atomic_load_explicit(&l->tail, memory_order_acquire);
    if (l->head == tail) return 0;
    struct iovec iov[TS_IOV];
    int n = 0;
    for (unsigned i = l->head; i != tail && n < TS_IOV; i++) {
        ts_part *p = &l->parts[i % TS_QUEUE];
        size_t off = i == l->head ? l->done : 0;
        iov[n].iov_base = p->buf + off;
        iov[n].iov_len = p->len - off;
        n++;
    }
    ssize_t got;
    TS_WIRE_LOCK();
    if (sending) {
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = (size_t)n};
        got = sendmsg(s->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);
    } else {
        got = readv(s->fd, iov, n);
    }
    int call_errno = errno;
    TS_WIRE_UNLOCK();
    errno = call_errno;
    if (got > 0) {
        ts_advance(c, l, d, tail, (size_t)got);
        return 1;
    }
    if (got == 0 && !sending) {
        ts_fail(c, RING_ERR_PEER_CLOSED,
                "rank %d closed the connection mid-collective (stream %d of %d)", c->peer, s->index,
                c->k);
        return -1;
    }
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    int e = got < 0 ? errno : EIO;
    int closed = e == EPIPE || e == ECONNRESET;
    ts_fail(c, closed ? RING_ERR_PEER_CLOSED : RING_ERR_SYSTEM, "%s rank %d (stream %d of %d): %s",
            sending ? "send to" : "receive from", c->peer, s->index, c->k, strerror(e));
    return -1;
}

/* Worker: parts of no bytes complete without the socket (readv of nothing reads EOF). */
static void ts_skip_empty(ring_conn *c, ts_lane *l, ts_dir *d)
{
    unsigned tail = atomic_load_explicit(&l->tail, memory_order_acquire);
    while (l->head != tail && l->parts[l->head % TS_QUEUE].len == 0)
        ts_advance(c, l, d, tail, 0);
}

static void *ts_worker(void *arg)
{
    ts_stream *s = arg;
    ring_conn *c = s->conn;
    while (!atomic_load(&c->stop)) {
        ts_skip_empty(c, &s->tx, &c->tx);
        ts_skip_empty(c, &s->rx, &c->rx);
        int a = ts_move(c, s, &s->tx, &c->tx, 1);
        int b = ts_move(c, s, &s->rx, &c->rx, 0);
        if (a < 0 || b < 0) break;
        if (a > 0 || b > 0) continue;
        /* Nothing moved. Tell the caller which empty lanes must wake us, then check once
         * more (a post may have raced the flag) before sleeping. */
        int want_out = s->tx.head != atomic_load(&s->tx.tail);
        int want_in = s->rx.head != atomic_load(&s->rx.tail);
        atomic_store(&s->tx.idle, !want_out);
        atomic_store(&s->rx.idle, !want_in);
        if ((!want_out && s->tx.head != atomic_load(&s->tx.tail)) ||
            (!want_in && s->rx.head != atomic_load(&s->rx.tail))) {
            atomic_store(&s->tx.idle, 0);
            atomic_store(&s->rx.idle, 0);
            continue;
        }
        struct pollfd p[2] = {
            {.fd = s->wake, .events = POLLIN},
            {.fd = s->fd, .events = (short)((want_out ? POLLOUT : 0) | (want_in ? POLLIN : 0))}};
        int r = poll(p, want_out || want_in ? 2 : 1, TS_IDLE_MS);
        atomic_store(&s->tx.idle, 0);
        atomic_store(&s->rx.idle, 0);
        if (r < 0 && errno != EINTR) {
            ts_fail(c, RING_ERR_SYSTEM, "stream %d of %d to rank %d: poll: %s", s->index, c->k,
                    c->peer, strerror(errno));
            break;
        }
        if (r > 0 && (p[0].revents & POLLIN)) ts_drain(s->wake);
    }
    return NULL;
}

/* Stop and join the workers (they may be blocked only in poll, which the wake ends). */
static void ts_stop(ring_conn *c)
{
    atomic_store(&c->stop, 1);
    for (int j = 0; j < c->k; j++)
        if (c->s[j].started) ts_signal(c->s[j].wake);
    for (int j = 0; j < c->k; j++)
        if (c->s[j].started) pthread_join(c->s[j].thread, NULL);
}

static void ts_free(ring_conn *c)
{
    for (int j = 0; j < c->k; j++)
        if (c->s[j].wake >= 0) close(c->s[j].wake);
    if (c->done_fd >= 0) close(c->done_fd);
    free(c->s);
    free(c);
}

static void ts_close(ring_conn *c)
{
    if (!c) return;
    ts_stop(c);
    for (int j = 0; j < c->k; j++)
        close(c->s[j].fd);
    ts_free(c);
}

static ring_status ts_open(const ring_tp_opts *opts, const int *fds, int nfds, int peer_rank,
                           ring_conn **out, char *err, size_t errlen)
{
    ring_status st = RING_OK;
    ring_conn *c = calloc(1, sizeof *c);
    /* The lanes are cache-line aligned: so must their array be. */
    size_t bytes = ((size_t)nfds * sizeof(ts_stream) + 63) & ~(size_t)63;
    ts_stream *s = aligned_alloc(64, bytes);
    if (!c || !s) {
        free(c);
        free(s);
        return ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory for a connection");
    }
    memset(s, 0, bytes);
    c->peer = peer_rank;
    c->k = nfds;
    c->s = s;
    c->min_bytes = opts ? opts->threads_min_bytes : 0;
    c->rx_worker = opts ? opts->recv_worker : 1;
    c->io = (ring_tcp_io){.fd = fds[0], .peer = peer_rank, .spin_us = opts ? opts->spin_us : 0};
    c->done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    for (int j = 0; j < nfds; j++) {
        s[j].conn = c;
        s[j].index = j;
        s[j].fd = fds[j];
        s[j].wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    }
    for (int j = 0; j < nfds; j++)
        if (c->done_fd < 0 || s[j].wake < 0) {
            st = ring_errf(RING_ERR_SYSTEM, err, errlen, "eventfd: %s", strerror(errno));
            goto free_conn;
        }
    for (int j = 0; j < nfds; j++) {
        int e = pthread_create(&s[j].thread, NULL, ts_worker, &s[j]);
        if (e) {
            st = ring_errf(RING_ERR_SYSTEM, err, errlen, "cannot start a stream thread: %s",
                           strerror(e));
            goto stop_workers;
        }
        s[j].started = 1;
    }
    *out = c;
    return RING_OK;

stop_workers:
    ts_stop(c);
free_conn:
    ts_free(c); /* the sockets stay the caller's */
    return st;
}

/* One stream moved by worker threads (RING_TCP_THREADS=1, the default): the send and the
 * receive connection of a rank each get a worker, so the caller's thread only reduces. */
static ring_status ts_open1(const ring_tp_opts *opts, int fd, int peer_rank, ring_conn **out,
                            char *err, size_t errlen)
{
    return ts_open(opts, &fd, 1, peer_rank, out, err, errlen);
}

/* Queue an operation's parts on the lanes of one direction. */
static ring_status ts_post(ring_conn *c, ts_dir *d, int sending, const void *buf, size_t len)
{
    if (d->tail - d->head == TS_QUEUE) return RING_ERR_INVALID_ARG;
    int n = ts_nparts(len, c->k);
    atomic_store_explicit(&d->left[d->tail % TS_QUEUE], (unsigned)n, memory_order_relaxed);
    for (int j = 0; j < n; j++) {
        ts_stream *s = &c->s[j];
        ts_lane *l = sending ? &s->tx : &s->rx;
        size_t a = ts_cut(len, n, j), b = ts_cut(len, n, j + 1);
        unsigned t = atomic_load_explicit(&l->tail, memory_order_relaxed);
        l->parts[t % TS_QUEUE] =
            (ts_part){.buf = (unsigned char *)buf + a, .len = b - a, .op = d->tail};
        atomic_store(&l->tail, t + 1); /* seq_cst: ordered before reading the idle flag */
        if (atomic_load(&l->idle) && atomic_exchange(&l->idle, 0)) ts_signal(s->wake);
    }
    d->tail++;
    return RING_OK;
}

static ring_status ts_post_send(ring_conn *c, const void *buf, size_t len)
{
    if (c->direct) return ring_tcp_queue_post(&c->io.tx, buf, len);
    return ts_post(c, &c->tx, 1, buf, len);
}
static ring_status ts_post_recv(ring_conn *c, void *buf, size_t len)
{
    if (c->direct || c->self_rx) return ring_tcp_queue_post(&c->io.rx, buf, len);
    return ts_post(c, &c->rx, 0, buf, len);
}
static int ts_pending_sends(const ring_conn *c)
{
    return (int)(c->tx.tail - c->tx.head) + ring_tcp_queue_pending(&c->io.tx);
}
static int ts_pending_recvs(const ring_conn *c)
{
    return (int)(c->rx.tail - c->rx.head) + ring_tcp_queue_pending(&c->io.rx);
}

/* Only between collectives: with nothing pending, no worker touches the socket. */
static void ts_begin(ring_conn *c, size_t chunk)
{
    if (ts_pending_sends(c) || ts_pending_recvs(c)) return; /* keep the mode (cannot happen) */
    c->direct = chunk < c->min_bytes && (c->k == 1 || chunk < 2 * TS_MIN_PART);
    c->self_rx = !c->direct && c->k == 1 && !c->rx_worker;
}

/* Operations finished in FIFO order since the last call. */
static int ts_collect(ts_dir *d)
{
    int n = 0;
    while (d->head != d->tail &&
           atomic_load_explicit(&d->left[d->head % TS_QUEUE], memory_order_acquire) == 0) {
        d->head++;
        n++;
    }
    return n;
}

static ring_status ts_failed(ring_conn *c, char *err, size_t errlen)
{
    int st = c ? atomic_load_explicit(&c->failed, memory_order_acquire) : 0;
    if (!st) return RING_OK;
    return ring_errf((ring_status)st, err, errlen, "%s", c->why);
}

static ring_status ts_progress(ring_conn *tx, ring_conn *rx, int abort_fd, int64_t deadline_ns,
                               int *sends, int *recvs, char *err, size_t errlen)
{
    ring_status st;
    *sends = *recvs = 0;
    if ((st = ts_failed(tx, err, errlen)) != RING_OK ||
        (st = ts_failed(rx, err, errlen)) != RING_OK)
        return st;
    if ((!tx || tx->direct) && (!rx || rx->direct))
        return ring_tcp_io_progress(tx ? &tx->io : NULL, rx ? &rx->io : NULL, abort_fd, deadline_ns,
                                    sends, recvs, err, errlen);
    /* The caller's own receives (self_rx): moved here, between looks at the workers. */
    ring_tcp_io *own_rx = rx && rx->self_rx ? &rx->io : NULL;
    for (int armed = 0;;) {
        if ((st = ts_failed(tx, err, errlen)) != RING_OK ||
            (st = ts_failed(rx, err, errlen)) != RING_OK)
            return st;
        if (tx) *sends += ts_collect(&tx->tx);
        if (own_rx) {
            TS_WIRE_LOCK();
            st = ring_tcp_io_pull(own_rx, recvs, err, errlen);
            TS_WIRE_UNLOCK();
            if (st != RING_OK) return st;
        } else if (rx) {
            *recvs += ts_collect(&rx->rx);
        }
        if (*sends || *recvs) return RING_OK;
        int want_tx = tx && tx->tx.head != tx->tx.tail;
        int want_rx =
            own_rx ? ring_tcp_queue_pending(&own_rx->rx) > 0 : rx && rx->rx.head != rx->rx.tail;
        if (!want_tx && !want_rx) return RING_OK;
        if (!armed) {
            /* Ask the workers to signal, then look again: a completion may have come
             * between the look above and the flag. */
            if (tx) atomic_store(&tx->waiting, 1);
            if (rx && !own_rx) atomic_store(&rx->waiting, 1);
            armed = 1;
            continue;
        }
        struct pollfd p[4];
        int n = 0;
        p[n++] = (struct pollfd){.fd = abort_fd, .events = POLLIN};
        if (tx) p[n++] = (struct pollfd){.fd = tx->done_fd, .events = POLLIN};
        if (rx && rx != tx) p[n++] = (struct pollfd){.fd = rx->done_fd, .events = POLLIN};
        int nev = n; /* the eventfds end here; the caller's own socket follows */
        if (own_rx && want_rx) p[n++] = (struct pollfd){.fd = own_rx->fd, .events = POLLIN};
        if ((st = ring_sock_poll_progress(p, n, deadline_ns, want_rx ? rx->peer : tx->peer,
                                          want_rx   ? " (receiving)"
                                          : want_tx ? " (sending)"
                                                    : "",
                                          err, errlen)) != RING_OK)
            return st;
        for (int i = 1; i < nev; i++)
            if (p[i].revents & POLLIN) ts_drain(p[i].fd);
        armed = 0;
    }
}

const ring_transport ring_transport_tcp_streams = {
    .name = "tcp",
    .open = ts_open1,
    .open_streams = ts_open,
    .post_send = ts_post_send,
    .post_recv = ts_post_recv,
    .progress = ts_progress,
    .begin = ts_begin,
    .pending_sends = ts_pending_sends,
    .pending_recvs = ts_pending_recvs,
    .close = ts_close,
};
