/* Forming the ring: listen, connect right, accept left, check in with the master.
 *
 * Order matters for progress without deadlock: every rank binds its ports first,
 * connects right (the kernel's backlog completes the connect before the peer
 * accepts) and sends its HELLO, then accepts its left neighbour, then reads the
 * ACK of its right neighbour. Strangers on any port are refused or dropped at
 * their own handshake deadline while the real peers are served. */
#include "sock.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_PENDING 32

typedef struct pending {
    int fd;
    int64_t deadline_ns;
    size_t got;
    unsigned char buf[RING_HELLO_BYTES];
    char name[96];
} pending;

/* What an accept loop expects: the message kind and which ranks may come. */
typedef struct accept_spec {
    const char *what;    /* "left neighbour" or "check-in" */
    uint16_t kind;       /* RING_MSG_HELLO or RING_MSG_CHECKIN */
    int only_rank;       /* >= 0: exactly this rank; -1: any of 1..size-1 */
    int expected;        /* connections to collect */
} accept_spec;

static ring_hello make_hello(const ring_comm *c, uint16_t kind, uint32_t reason)
{
    return (ring_hello){.magic = RING_WIRE_MAGIC,
                        .version = RING_WIRE_VERSION,
                        .kind = kind,
                        .world_size = (uint32_t)c->size,
                        .rank = (uint32_t)c->rank,
                        .job_id = c->job_id,
                        .reason = reason};
}

/* Best effort: a stranger may already be gone. */
static void send_hello_nowait(int fd, const ring_hello *h)
{
    unsigned char b[RING_HELLO_BYTES];
    ring_hello_encode(h, b);
    ssize_t n = send(fd, b, sizeof b, MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)n;
}

static ring_status send_hello(ring_comm *c, int fd, uint16_t kind, int64_t deadline, char *err,
                              size_t errlen)
{
    unsigned char b[RING_HELLO_BYTES];
    ring_hello h = make_hello(c, kind, 0);
    ring_hello_encode(&h, b);
    return ring_sock_write_all(fd, b, sizeof b, deadline, c->abort_fd, err, errlen);
}

/* Validate a complete handshake from a connecting peer; 0 or a reject reason. */
static uint32_t judge(const ring_comm *c, const accept_spec *spec, const ring_hello *h,
                      const int *fds, char *why, size_t cap)
{
    if (h->kind != spec->kind) {
        snprintf(why, cap, "sent handshake message %u where %u was expected", h->kind, spec->kind);
        return RING_REJECT_KIND;
    }
    if (h->job_id != c->job_id) {
        snprintf(why, cap, "job id 0x%016llx, ours is 0x%016llx", (unsigned long long)h->job_id,
                 (unsigned long long)c->job_id);
        return RING_REJECT_JOB;
    }
    if ((int)h->world_size != c->size) {
        snprintf(why, cap, "world size %u, ours is %d", h->world_size, c->size);
        return RING_REJECT_WORLD;
    }
    if (spec->only_rank >= 0 ? (int)h->rank != spec->only_rank
                             : (h->rank < 1 || (int)h->rank >= c->size)) {
        snprintf(why, cap, "claims rank %u, expected %s %d", h->rank,
                 spec->only_rank >= 0 ? "rank" : "a rank in 1 ..", spec->only_rank >= 0 ? spec->only_rank : c->size - 1);
        return RING_REJECT_RANK;
    }
    if (spec->only_rank < 0 && fds[h->rank] >= 0) {
        snprintf(why, cap, "rank %u checked in twice", h->rank);
        return RING_REJECT_DUPLICATE;
    }
    return 0;
}

static void drop(pending *p, int *np, int i)
{
    close(p[i].fd);
    p[i] = p[--*np];
}

/* Accept spec->expected valid peers on lfd. fds is indexed by rank (size entries,
 * preset to -1); for the ring port the left neighbour's fd lands at its rank. */
static ring_status accept_peers(ring_comm *c, int lfd, const accept_spec *spec, int *fds,
                                int64_t deadline, char *err, size_t errlen)
{
    pending p[MAX_PENDING];
    int np = 0, have = 0;
    ring_status st = RING_OK;
    while (have < spec->expected) {
        struct pollfd pf[MAX_PENDING + 2];
        pf[0] = (struct pollfd){.fd = c->abort_fd, .events = POLLIN};
        pf[1] = (struct pollfd){.fd = lfd, .events = POLLIN};
        int64_t wake = deadline;
        for (int i = 0; i < np; i++) {
            pf[i + 2] = (struct pollfd){.fd = p[i].fd, .events = POLLIN};
            if (p[i].deadline_ns < wake) wake = p[i].deadline_ns;
        }
        int ms = ring_ms_left(wake);
        if (ring_ms_left(deadline) == 0) {
            st = ring_errf(err, errlen, RING_ERR_TIMEOUT,
                           "waited for %s: only %d of %d arrived before the connect deadline",
                           spec->what, have, spec->expected);
            goto close_pending;
        }
        int r = poll(pf, (nfds_t)(np + 2), ms);
        if (r < 0 && errno != EINTR) {
            st = ring_errf(err, errlen, RING_ERR_SYSTEM, "poll: %s", strerror(errno));
            goto close_pending;
        }
        if (pf[0].revents & POLLIN) {
            st = ring_errf(err, errlen, RING_ERR_ABORTED, "aborted while waiting for %s", spec->what);
            goto close_pending;
        }
        /* Serve the pending handshakes (from the back: drop() moves the last entry). */
        int64_t now = ring_now_ns();
        for (int i = np - 1; i >= 0; i--) {
            if (pf[i + 2].revents) {
                ssize_t n = recv(p[i].fd, p[i].buf + p[i].got, sizeof p[i].buf - p[i].got, 0);
                if (n > 0) p[i].got += (size_t)n;
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    ring_log(RING_LOG_WARN, c->rank, "%s: connection from %s closed during handshake",
                             spec->what, p[i].name);
                    drop(p, &np, i);
                    continue;
                }
            }
            if (p[i].got == sizeof p[i].buf) {
                ring_hello h;
                char why[160];
                uint32_t reason = RING_REJECT_KIND;
                if (ring_hello_decode(p[i].buf, p[i].got, &h, why, sizeof why) == RING_OK)
                    reason = judge(c, spec, &h, fds, why, sizeof why);
                if (reason) {
                    ring_log(RING_LOG_WARN, c->rank, "refused %s connection from %s: %s", spec->what,
                             p[i].name, why);
                    ring_hello rej = make_hello(c, RING_MSG_REJECT, reason);
                    send_hello_nowait(p[i].fd, &rej);
                    drop(p, &np, i);
                    continue;
                }
                ring_hello ack = make_hello(c, RING_MSG_ACK, 0);
                unsigned char b[RING_HELLO_BYTES];
                ring_hello_encode(&ack, b);
                if (ring_sock_write_all(p[i].fd, b, sizeof b, deadline, c->abort_fd, why, sizeof why) != RING_OK) {
                    ring_log(RING_LOG_WARN, c->rank, "%s from %s vanished before our ACK: %s",
                             spec->what, p[i].name, why);
                    drop(p, &np, i);
                    continue;
                }
                ring_log(RING_LOG_DEBUG, c->rank, "accepted %s rank %u from %s", spec->what, h.rank,
                         p[i].name);
                fds[h.rank] = p[i].fd;
                have++;
                p[i] = p[--np];
                continue;
            }
            if (now >= p[i].deadline_ns) {
                ring_log(RING_LOG_WARN, c->rank, "dropped silent %s connection from %s", spec->what,
                         p[i].name);
                drop(p, &np, i);
            }
        }
        if (pf[1].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) continue;
            char tmp[RING_IP_MAX];
            if (ring_sock_tune(fd, tmp, sizeof tmp) != RING_OK || np == MAX_PENDING) {
                ring_log(RING_LOG_WARN, c->rank, "dropped a connection: %s",
                         np == MAX_PENDING ? "too many pending handshakes" : tmp);
                close(fd);
                continue;
            }
            p[np] = (pending){.fd = fd, .deadline_ns = now + (int64_t)c->set.handshake_timeout_ms * 1000000};
            ring_sock_peer_name(fd, p[np].name, sizeof p[np].name);
            np++;
        }
    }
close_pending:
    while (np > 0) drop(p, &np, np - 1);
    return st;
}

/* Read the answer to our handshake: ACK (or GO) or a REJECT with its reason. */
static ring_status read_answer(ring_comm *c, int fd, uint16_t want, const char *peer,
                               int64_t deadline, char *err, size_t errlen)
{
    unsigned char b[RING_HELLO_BYTES];
    char why[160];
    ring_status st = ring_sock_read_all(fd, b, sizeof b, deadline, c->abort_fd, why, sizeof why);
    if (st != RING_OK) return ring_errf(err, errlen, st, "%s: %s", peer, why);
    ring_hello h;
    if ((st = ring_hello_decode(b, sizeof b, &h, why, sizeof why)) != RING_OK)
        return ring_errf(err, errlen, st, "%s: %s", peer, why);
    if (h.kind == RING_MSG_REJECT)
        return ring_errf(err, errlen, RING_ERR_CONFIG, "%s refused us: %s", peer, ring_reject_str(h.reason));
    if (h.kind != want)
        return ring_errf(err, errlen, RING_ERR_PROTOCOL, "%s: answered message %u, expected %u", peer,
                         h.kind, want);
    if (h.job_id != c->job_id || (int)h.world_size != c->size)
        return ring_errf(err, errlen, RING_ERR_CONFIG, "%s belongs to another ring (job or world size differs)",
                         peer);
    return RING_OK;
}

ring_status ring_bootstrap(ring_comm *c)
{
    ring_status st = RING_OK;
    char err[400];
    int lfd = -1, mfd = -1, right = -1;
    const ring_config *cfg = &c->cfg;
    int left_rank = (c->rank + c->size - 1) % c->size, right_rank = (c->rank + 1) % c->size;
    int64_t deadline = ring_deadline_in(c->set.connect_timeout_ms);
    int64_t t0 = ring_now_ns();
    int *fds = calloc((size_t)c->size, sizeof *fds);
    if (!fds) return ring_fail(c, RING_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->size; i++) fds[i] = -1;

    RING_CHECK(ring_sock_listen(cfg->port, &lfd, err, sizeof err), fail);
    if (c->rank == 0) RING_CHECK(ring_sock_listen(cfg->master_port, &mfd, err, sizeof err), fail);

    char peer[RING_IP_MAX + 48];
    snprintf(peer, sizeof peer, "right neighbour (rank %d at %s:%d)", right_rank, cfg->right_ip, cfg->right_port);
    RING_CHECK(ring_sock_connect(cfg->right_ip, cfg->right_port, deadline, c->abort_fd, &right, err, sizeof err), fail);
    RING_CHECK(send_hello(c, right, RING_MSG_HELLO, deadline, err, sizeof err), fail);

    accept_spec left_spec = {.what = "left neighbour", .kind = RING_MSG_HELLO, .only_rank = left_rank, .expected = 1};
    RING_CHECK(accept_peers(c, lfd, &left_spec, fds, deadline, err, sizeof err), fail);
    int left = fds[left_rank];
    fds[left_rank] = -1;
    st = read_answer(c, right, RING_MSG_ACK, peer, deadline, err, sizeof err);
    if (st != RING_OK) {
        close(left);
        goto fail;
    }
    st = c->tp->open(&c->tpo, right, right_rank, &c->right, err, sizeof err);
    if (st == RING_OK) {
        right = -1;
        st = c->tp->open(&c->tpo, left, left_rank, &c->left, err, sizeof err);
    }
    if (st != RING_OK) {
        close(left);
        goto fail;
    }
    if (c->tp->connect) {
        RING_CHECK(c->tp->connect(c->right, c->abort_fd, deadline, err, sizeof err), fail);
        RING_CHECK(c->tp->connect(c->left, c->abort_fd, deadline, err, sizeof err), fail);
    }

    /* Rendezvous with the master: every rank checks in, then the master says GO. */
    if (c->rank == 0) {
        accept_spec ck = {.what = "check-in", .kind = RING_MSG_CHECKIN, .only_rank = -1, .expected = c->size - 1};
        RING_CHECK(accept_peers(c, mfd, &ck, fds, deadline, err, sizeof err), fail);
        for (int r = 1; r < c->size; r++)
            RING_CHECK(send_hello(c, fds[r], RING_MSG_GO, deadline, err, sizeof err), fail);
        c->worker_fds = fds;
        fds = NULL;
    } else {
        char master[RING_IP_MAX + 32];
        snprintf(master, sizeof master, "master at %s:%d", cfg->master_ip, cfg->master_port);
        RING_CHECK(ring_sock_connect(cfg->master_ip, cfg->master_port, deadline, c->abort_fd, &c->master_fd, err, sizeof err), fail);
        RING_CHECK(send_hello(c, c->master_fd, RING_MSG_CHECKIN, deadline, err, sizeof err), fail);
        RING_CHECK(read_answer(c, c->master_fd, RING_MSG_ACK, master, deadline, err, sizeof err), fail);
        RING_CHECK(read_answer(c, c->master_fd, RING_MSG_GO, master, deadline, err, sizeof err), fail);
    }
    ring_log(RING_LOG_INFO, c->rank, "ring of %d formed in %.1f ms (left rank %d, right rank %d)", c->size,
             (double)(ring_now_ns() - t0) / 1e6, left_rank, right_rank);
    goto close_listeners;

fail:
    ring_fail(c, st, "rank %d: forming the ring: %s", c->rank, err);
    if (right >= 0) close(right);
close_listeners:
    if (fds)
        for (int i = 0; i < c->size; i++)
            if (fds[i] >= 0) close(fds[i]);
    free(fds);
    if (lfd >= 0) close(lfd);
    if (mfd >= 0) close(mfd);
    return st;
}

void ring_bootstrap_close(ring_comm *c)
{
    if (c->right) c->tp->close(c->right);
    if (c->left) c->tp->close(c->left);
    c->right = c->left = NULL;
    if (c->master_fd >= 0) close(c->master_fd);
    c->master_fd = -1;
    if (c->worker_fds) {
        for (int r = 1; r < c->size; r++)
            if (c->worker_fds[r] >= 0) close(c->worker_fds[r]);
        free(c->worker_fds);
        c->worker_fds = NULL;
    }
}
