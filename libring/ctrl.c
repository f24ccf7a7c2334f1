/* SPDX-License-Identifier: MIT */
/* The control plane: after the ring forms, every worker keeps its check-in connection
 * to rank 0 open, and a thread per communicator watches it.
 *
 * - A rank whose collective fails sends FAIL (its status) to rank 0, which relays it to
 *   every other rank. Each rank's thread records the first verdict and wakes every wait
 *   through the abort eventfd, so all ranks return the root cause (invalid usage, timeout,
 *   peer closed, ...) instead of the "peer closed" that the cascade of closed data
 *   connections would give them.
 * - A control connection that closes without BYE means the process died: rank 0 relays
 *   PEER_CLOSED; a worker that loses rank 0 records it.
 * - Heartbeats (PING every op_timeout/4) from threads that run regardless of what the
 *   application does: a peer silent for op_timeout is stopped or cut off, so TIMEOUT.
 * The thread only touches the control sockets, its own eventfd and the atomics of
 * ring_ctrl; the main thread never reads or writes the control sockets after start. */
#include "sock.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct peer {
    int fd; /* -1 once gone (BYE, death or silence) */
    int rank;
    size_t got;
    unsigned char buf[RING_HELLO_BYTES];
    int64_t last_heard;
} peer;

static int hb_ms(const ring_comm *c)
{
    int ms = c->set.op_timeout_ms / 4;
    return ms < 5 ? 5 : ms > 1000 ? 1000 : ms;
}

/* Record the first failure seen anywhere and wake every wait of the main thread. */
static void set_verdict(ring_comm *c, ring_status st, const char *msg)
{
    int expect = 0;
    if (!atomic_compare_exchange_strong(&c->ctrl.claimed, &expect, 1)) return;
    snprintf(c->ctrl.verdict_msg, sizeof c->ctrl.verdict_msg, "%s", msg);
    atomic_store_explicit(&c->ctrl.verdict, (int)st, memory_order_release);
    uint64_t one = 1;
    ssize_t n = write(c->abort_fd, &one, sizeof one);
    (void)n;
}

/* Best effort: a 28-byte message fits any socket buffer that is not wedged. `from` is the rank
 * the message speaks for: ours, or the rank whose failure rank 0 relays. */
static void send_from(const ring_comm *c, int fd, uint16_t kind, uint32_t reason, int from)
{
    if (fd < 0) return;
    ring_hello h = {.magic = RING_WIRE_MAGIC,
                    .version = RING_WIRE_VERSION,
                    .kind = kind,
                    .world_size = (uint32_t)c->size,
                    .rank = (uint32_t)from,
                    .job_id = c->job_id,
                    .reason = reason};
    unsigned char b[RING_HELLO_BYTES];
    ring_hello_encode(&h, b);
    ssize_t n = send(fd, b, sizeof b, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

static void send_msg(const ring_comm *c, int fd, uint16_t kind, uint32_t reason)
{
    send_from(c, fd, kind, reason, c->rank);
}

static uint32_t fail_reason(ring_status st, int suspect)
{
    return (uint32_t)st | (uint32_t)(suspect + 1) << 16;
}

/* Rank 0 tells every worker but `except` (the reporter, who knows), in the name of the rank
 * that failed first, so that every rank's error names it. */
static void relay(ring_comm *c, peer *p, int np, int except, ring_status st, int suspect)
{
    int from = except >= 0 ? except : c->rank;
    for (int i = 0; i < np; i++)
        if (p[i].rank != except)
            send_from(c, p[i].fd, RING_MSG_FAIL, fail_reason(st, suspect), from);
}

static void lose(ring_comm *c, peer *p, int np, int i, ring_status st, const char *msg)
{
    close(p[i].fd);
    p[i].fd = -1;
    set_verdict(c, st, msg);
    if (c->rank == 0) relay(c, p, np, -1, st, p[i].rank);
}

static void on_message(ring_comm *c, peer *p, int np, int i)
{
    ring_hello h;
    char why[160], msg[256];
    if (ring_hello_decode(p[i].buf, sizeof p[i].buf, &h, why, sizeof why) != RING_OK ||
        h.job_id != c->job_id) {
        snprintf(msg, sizeof msg, "control connection of rank %d sent garbage: %s", p[i].rank, why);
        lose(c, p, np, i, RING_ERR_PROTOCOL, msg);
        return;
    }
    if (h.kind == RING_MSG_BYE) {
        close(p[i].fd);
        p[i].fd = -1;
    } else if (h.kind == RING_MSG_FAIL) {
        ring_status st = (ring_status)(h.reason & 0xffff);
        int suspect = (int)(h.reason >> 16) - 1;
        if (st <= RING_OK || st >= RING_STATUS_COUNT) st = RING_ERR_PROTOCOL;
        if (suspect >= 0)
            snprintf(msg, sizeof msg, "rank %d lost (%s), reported by rank %u", suspect,
                     ring_status_str(st), h.rank);
        else
            snprintf(msg, sizeof msg, "rank %u failed first: %s", h.rank, ring_status_str(st));
        if (c->rank == 0 && !atomic_load(&c->ctrl.claimed))
            relay(c, p, np, (int)h.rank, st, suspect);
        set_verdict(c, st, msg);
    }
}

static void serve(ring_comm *c, peer *p, int np, int i)
{
    for (;;) {
        ssize_t n = recv(p[i].fd, p[i].buf + p[i].got, sizeof p[i].buf - p[i].got, MSG_DONTWAIT);
        if (n > 0) {
            p[i].last_heard = rc_now_ns();
            p[i].got += (size_t)n;
            if (p[i].got == sizeof p[i].buf) {
                p[i].got = 0;
                on_message(c, p, np, i);
                if (p[i].fd < 0) return;
            }
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        char msg[200];
        snprintf(msg, sizeof msg, "rank %d died (its control connection %s)", p[i].rank,
                 n == 0 ? "closed" : strerror(errno));
        lose(c, p, np, i, RING_ERR_PEER_CLOSED, msg);
        return;
    }
}

static void *ctrl_main(void *arg)
{
    ring_comm *c = arg;
    int np = c->rank == 0 ? c->size - 1 : 1;
    peer p[np > 0 ? np : 1];
    int64_t now = rc_now_ns(), hb = (int64_t)hb_ms(c) * 1000000;
    int64_t silence = (int64_t)c->set.op_timeout_ms * 1000000, last_ping = 0;
    for (int i = 0; i < np; i++)
        p[i] = (peer){.fd = c->rank == 0 ? c->worker_fds[i + 1] : c->master_fd,
                      .rank = c->rank == 0 ? i + 1 : 0,
                      .last_heard = now};
    struct pollfd *pf = calloc((size_t)np + 1, sizeof *pf);
    if (!pf) {
        set_verdict(c, RING_ERR_NOMEM, "control thread: out of memory");
        return NULL;
    }
    for (;;) {
        pf[0] = (struct pollfd){.fd = c->ctrl.wake_fd, .events = POLLIN};
        for (int i = 0; i < np; i++)
            pf[i + 1] = (struct pollfd){.fd = p[i].fd, .events = POLLIN};
        int r = poll(pf, (nfds_t)np + 1, hb_ms(c));
        if (r < 0 && errno != EINTR) {
            set_verdict(c, RING_ERR_SYSTEM, "control thread: poll failed");
            break;
        }
        if (pf[0].revents & POLLIN) {
            uint64_t v;
            ssize_t n = read(c->ctrl.wake_fd, &v, sizeof v);
            (void)n;
            int st = atomic_exchange(&c->ctrl.report, 0);
            if (st) {
                /* Our own failure: the first one anywhere becomes everyone's verdict. */
                int expect = 0;
                if (atomic_compare_exchange_strong(&c->ctrl.claimed, &expect, 1))
                    for (int i = 0; i < np; i++)
                        send_msg(c, p[i].fd, RING_MSG_FAIL, fail_reason(st, -1));
            }
            if (atomic_load(&c->ctrl.stop)) {
                for (int i = 0; i < np; i++)
                    send_msg(c, p[i].fd, RING_MSG_BYE, 0);
                break;
            }
        }
        for (int i = 0; i < np; i++)
            if (p[i].fd >= 0 && pf[i + 1].revents) serve(c, p, np, i);
        now = rc_now_ns();
        if (now - last_ping >= hb) {
            for (int i = 0; i < np; i++)
                send_msg(c, p[i].fd, RING_MSG_PING, 0);
            last_ping = now;
        }
        for (int i = 0; i < np; i++) {
            if (p[i].fd < 0 || now - p[i].last_heard < silence) continue;
            char msg[200];
            snprintf(msg, sizeof msg,
                     "rank %d is silent: no heartbeat for %lld ms (stopped or cut off)", p[i].rank,
                     (long long)((now - p[i].last_heard) / 1000000));
            lose(c, p, np, i, RING_ERR_TIMEOUT, msg);
        }
    }
    /* The sockets belong to the communicator (closed there) unless we closed them. */
    for (int i = 0; i < np; i++)
        if (p[i].fd < 0) {
            if (c->rank == 0)
                c->worker_fds[i + 1] = -1;
            else
                c->master_fd = -1;
        }
    free(pf);
    return NULL;
}

ring_status ring_ctrl_start(ring_comm *c, char *err, size_t errlen)
{
    c->ctrl.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->ctrl.wake_fd < 0)
        return ring_errf(RING_ERR_SYSTEM, err, errlen, "eventfd: %s", strerror(errno));
    int e = pthread_create(&c->ctrl.thread, NULL, ctrl_main, c);
    if (e) {
        close(c->ctrl.wake_fd);
        c->ctrl.wake_fd = -1;
        return ring_errf(RING_ERR_SYSTEM, err, errlen, "cannot start the control thread: %s",
                         strerror(e));
    }
    c->ctrl.running = 1;
    return RING_OK;
}

static void poke(ring_comm *c)
{
    uint64_t one = 1;
    ssize_t n = write(c->ctrl.wake_fd, &one, sizeof one);
    (void)n;
}

void ring_ctrl_stop(ring_comm *c)
{
    if (!c->ctrl.running) return;
    atomic_store(&c->ctrl.stop, 1);
    poke(c);
    pthread_join(c->ctrl.thread, NULL);
    close(c->ctrl.wake_fd);
    c->ctrl.running = 0;
}

ring_status ring_ctrl_verdict(ring_comm *c, char *why, size_t cap)
{
    int st = atomic_load_explicit(&c->ctrl.verdict, memory_order_acquire);
    if (st && why) snprintf(why, cap, "%s", c->ctrl.verdict_msg);
    return (ring_status)st;
}

ring_status ring_ctrl_settle(ring_comm *c, ring_status st, char *why, size_t cap)
{
    if (atomic_load(&c->aborted)) {
        /* Our own abort explains whatever the wire said meanwhile. */
        st = RING_ERR_ABORTED;
        snprintf(why, cap, "aborted by ring_comm_abort()");
    }
    if (!c->ctrl.running) return st;
    /* A closed data connection is usually the cascade of a failure elsewhere: give its
     * report a moment to arrive through rank 0 (it is sent before the data sockets close). */
    if (st == RING_ERR_PEER_CLOSED && !ring_ctrl_verdict(c, NULL, 0)) {
        int64_t until = ring_deadline_in(c->set.op_timeout_ms / 2);
        struct pollfd p = {.fd = c->abort_fd, .events = POLLIN};
        while (!ring_ctrl_verdict(c, NULL, 0) && !atomic_load(&c->aborted) && rc_ms_left(until) > 0)
            poll(&p, 1, rc_ms_left(until) < 20 ? rc_ms_left(until) : 20);
    }
    ring_status remote = ring_ctrl_verdict(c, why, cap);
    int local_abort = atomic_load(&c->aborted);
    if (local_abort && st == RING_ERR_PEER_CLOSED) {
        /* Aborted while we waited: the closed connection was the cascade of an abort. */
        st = RING_ERR_ABORTED;
        snprintf(why, cap, "aborted by ring_comm_abort()");
    }
    if (remote && !local_abort &&
        (st == RING_ERR_PEER_CLOSED || st == RING_ERR_ABORTED || st == remote))
        return remote;
    if (st == RING_ERR_ABORTED && !local_abort && !remote) st = RING_ERR_SYSTEM; /* cannot happen */
    atomic_store(&c->ctrl.report, (int)st);
    poke(c);
    return st;
}
