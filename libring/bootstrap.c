/* SPDX-License-Identifier: MIT */
/* Forming the ring: listen, connect right, accept left, check in with the master.
 *
 * Order matters for progress without deadlock: every rank binds its ports first,
 * connects right (the kernel's backlog completes the connect before the peer
 * accepts) and sends its HELLO, then accepts its left neighbour, then reads the
 * ACK of its right neighbour. Strangers on any port are refused or dropped at
 * their own handshake deadline while the real peers are served. With K TCP streams
 * per neighbour, each of the K connections passes the same handshake and names its
 * stream in the HELLO; both ends must use the same K (wire.h). */
#include "auth.h"
#include "sock.h"
#include "wire.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Handshakes served at once. A full table evicts the stalest one (idle first), so each
 * stranger costs a slot only until a newer connection needs it, never blocks a real peer
 * (which sends its HELLO at once), and no number of strangers refuses anyone. */
#define MAX_PENDING 32

/* A client's handshake as the server reads it: HELLO [+ nonce [+ its MAC]]. */
#define HS_HELLO_NONCE (RING_HELLO_BYTES + RING_NONCE_BYTES)
#define HS_FULL (HS_HELLO_NONCE + RING_MAC_BYTES)

typedef struct pending {
    int fd;
    int64_t deadline_ns;
    size_t got, need;
    int challenged; /* our CHALLENGE went out; its MAC is awaited */
    ring_hello h;
    unsigned char ns[RING_NONCE_BYTES];
    unsigned char buf[HS_FULL];
    char name[96];
} pending;

/* What an accept loop expects: the message kind and which ranks may come. */
typedef struct accept_spec {
    const char *what; /* "left neighbour" or "check-in" */
    uint16_t kind;    /* RING_MSG_HELLO or RING_MSG_CHECKIN */
    int only_rank;    /* >= 0: exactly this rank; -1: any of 1..size-1 */
    int expected;     /* connections to collect */
    int *stream_fds;  /* HELLO: the neighbour's streams land here by index (expected of them) */
    /* Readable when this rank failed on its right side: keep serving the left only until
     * it has been told of a stream-count mismatch, or a handshake timeout passed, so that
     * both neighbours name the mismatch (-1: none). */
    int give_up_fd;
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

/* Server side, hello judged good: send CHALLENGE, our nonce and our proof. */
static ring_status send_challenge(ring_comm *c, pending *p, char *why, size_t cap)
{
    unsigned char b[RING_HELLO_BYTES + RING_NONCE_BYTES + RING_MAC_BYTES];
    ring_status st = ring_auth_nonce(p->ns, why, cap);
    if (st != RING_OK) return st;
    ring_hello ch = make_hello(c, RING_MSG_CHALLENGE, 0);
    ring_hello_encode(&ch, b);
    memcpy(b + RING_HELLO_BYTES, p->ns, RING_NONCE_BYTES);
    ring_auth_mac(c->auth, 1, p->buf, p->ns, b + RING_HELLO_BYTES + RING_NONCE_BYTES);
    return ring_sock_write_all(p->fd, b, sizeof b, p->deadline_ns, c->abort_fd, why, cap);
}

/* Validate a complete handshake from a connecting peer; 0 or a reject reason. final: the
 * peer is authenticated (or no secret is used), so it may learn our stream count. */
static uint32_t judge(const ring_comm *c, const accept_spec *spec, const ring_hello *h,
                      const int *fds, int final, char *why, size_t cap)
{
    if (h->kind != spec->kind) {
        snprintf(why, cap, "sent handshake message %u where %u was expected", h->kind, spec->kind);
        return RING_REJECT_KIND;
    }
    if (!(h->reason & RING_HELLO_FLAG_AUTH) != !c->auth) {
        snprintf(why, cap, "authentication failed: %s",
                 c->auth ? "the client offers no shared secret"
                         : "the client wants a shared secret, we have none");
        return RING_REJECT_AUTH;
    }
    /* World size first: without a job_id in the configs it is part of the derived job id, and
     * "world size differs" is the actual cause. */
    if ((int)h->world_size != c->size) {
        snprintf(why, cap, "world size %u, ours is %d", h->world_size, c->size);
        return RING_REJECT_WORLD;
    }
    if (h->job_id != c->job_id) {
        snprintf(why, cap, "job id 0x%016llx, ours is 0x%016llx", (unsigned long long)h->job_id,
                 (unsigned long long)c->job_id);
        return RING_REJECT_JOB;
    }
    if (spec->only_rank >= 0 && (int)h->rank == c->rank && c->size > 1) {
        snprintf(why, cap,
                 "the connection is from this rank itself (right_ip:right_port name our "
                 "own port)");
        return RING_REJECT_SELF;
    }
    if (spec->only_rank >= 0 ? (int)h->rank != spec->only_rank
                             : (h->rank < 1 || (int)h->rank >= c->size)) {
        snprintf(why, cap, "claims rank %u, expected %s %d", h->rank,
                 spec->only_rank >= 0 ? "rank" : "a rank in 1 ..",
                 spec->only_rank >= 0 ? spec->only_rank : c->size - 1);
        return RING_REJECT_RANK;
    }
    if (spec->only_rank < 0 && fds[h->rank] >= 0) {
        snprintf(why, cap, "rank %u checked in twice", h->rank);
        return RING_REJECT_DUPLICATE;
    }
    if (spec->stream_fds && final) {
        int theirs = ring_hello_streams(h->reason), j = ring_hello_stream_index(h->reason);
        if (theirs != c->set.tcp_streams) {
            snprintf(
                why, cap,
                "rank %u uses %d TCP stream%s per neighbour, this rank %d: set RING_TCP_STREAMS "
                "(or \"tcp_streams\") alike on every rank",
                h->rank, theirs, theirs > 1 ? "s" : "", c->set.tcp_streams);
            return RING_REJECT_STREAMS;
        }
        if (j >= theirs) {
            snprintf(why, cap, "claims stream %d of %d", j, theirs);
            return RING_REJECT_STREAMS;
        }
        if (spec->stream_fds[j] >= 0) {
            snprintf(why, cap, "stream %d of rank %u connected twice", j, h->rank);
            return RING_REJECT_DUPLICATE;
        }
    }
    return 0;
}

static void drop(pending *p, int *np, int i)
{
    close(p[i].fd);
    p[i] = p[--*np];
}

/* The pending handshake to give up for a newer connection: the oldest that sent nothing, else
 * the oldest. */
static int stalest(const pending *p, int np)
{
    int best = 0;
    for (int i = 1; i < np; i++) {
        int idle_i = p[i].got == 0, idle_b = p[best].got == 0;
        if (idle_i > idle_b || (idle_i == idle_b && p[i].deadline_ns < p[best].deadline_ns))
            best = i;
    }
    return best;
}

/* "ranks 2, 3" of those in 1..size-1 that have not checked in. */
static void missing_ranks(const int *fds, int size, char *out, size_t cap)
{
    size_t len = 0;
    int n = 0;
    out[0] = 0;
    for (int r = 1; r < size && len + 16 < cap; r++)
        if (fds[r] < 0) len += (size_t)snprintf(out + len, cap - len, "%s%d", n++ ? ", " : "", r);
}

/* Accept spec->expected valid peers on lfd. fds is indexed by rank (size entries,
 * preset to -1); the left neighbour's streams land in spec->stream_fds instead. */
static ring_status accept_peers(ring_comm *c, int lfd, const accept_spec *spec, int *fds,
                                int64_t deadline, char *err, size_t errlen)
{
    pending p[MAX_PENDING];
    int np = 0, have = 0;
    ring_status st = RING_OK;
    char refused[240] = "";             /* the last refusal, told if the deadline passes */
    int doubled_rank[16], ndoubled = 0; /* ranks refused as duplicates, told at the deadline */
    int giving_up = 0, told = 0;
    while (have < spec->expected) {
        struct pollfd pf[MAX_PENDING + 3];
        pf[0] = (struct pollfd){.fd = c->abort_fd, .events = POLLIN};
        pf[1] = (struct pollfd){.fd = lfd, .events = POLLIN};
        /* After the pending handshakes, so that their indices stay i + 2. */
        pf[np + 2] = (struct pollfd){.fd = giving_up ? -1 : spec->give_up_fd, .events = POLLIN};
        int64_t wake = deadline;
        for (int i = 0; i < np; i++) {
            pf[i + 2] = (struct pollfd){.fd = p[i].fd, .events = POLLIN};
            if (p[i].deadline_ns < wake) wake = p[i].deadline_ns;
        }
        if (giving_up && told) {
            st = ring_errf(RING_ERR_ABORTED, err, errlen, "gave up waiting for %s", spec->what);
            goto close_pending;
        }
        int ms = rc_ms_left(wake);
        if (rc_ms_left(deadline) == 0) {
            char missing[160] = "", doubled[120] = "";
            if (spec->only_rank < 0) missing_ranks(fds, c->size, missing, sizeof missing);
            for (int d = 0, len = 0; d < ndoubled; d++)
                len += snprintf(doubled + len, sizeof doubled - (size_t)len, "%s%d", d ? ", " : "",
                                doubled_rank[d]);
            st = ring_errf(
                RING_ERR_TIMEOUT, err, errlen,
                "waited for %s: only %d of %d arrived before the connect deadline%s%s%s%s%s%s%s",
                spec->what, have, spec->expected, missing[0] ? "; missing rank " : "", missing,
                doubled[0] ? "; came twice (two processes with one rank?): rank " : "", doubled,
                refused[0] ? " (last refused " : "", refused, refused[0] ? ")" : "");
            goto close_pending;
        }
        int r = poll(pf, (nfds_t)(np + 3), ms);
        if (r < 0 && errno != EINTR) {
            st = ring_errf(RING_ERR_SYSTEM, err, errlen, "poll: %s", strerror(errno));
            goto close_pending;
        }
        if (pf[0].revents & POLLIN) {
            st = ring_errf(RING_ERR_ABORTED, err, errlen, "aborted while waiting for %s",
                           spec->what);
            goto close_pending;
        }
        if (pf[np + 2].revents & POLLIN) {
            giving_up = 1;
            int64_t grace = ring_deadline_in(c->set.handshake_timeout_ms);
            if (grace < deadline) deadline = grace;
        }
        /* Serve the pending handshakes (from the back: drop() moves the last entry). */
        int64_t now = rc_now_ns();
        for (int i = np - 1; i >= 0; i--) {
            if (pf[i + 2].revents) {
                ssize_t n = recv(p[i].fd, p[i].buf + p[i].got, p[i].need - p[i].got, 0);
                if (n > 0) p[i].got += (size_t)n;
                if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                    ring_clog(c, RING_LOG_WARN, "%s: connection from %s closed during handshake",
                              spec->what, p[i].name);
                    drop(p, &np, i);
                    continue;
                }
            }
            if (p[i].got == p[i].need) {
                char why[200];
                uint32_t reason = 0;
                if (!p[i].challenged) {
                    reason = RING_REJECT_KIND;
                    if (ring_hello_decode(p[i].buf, RING_HELLO_BYTES, &p[i].h, why, sizeof why) ==
                        RING_OK)
                        reason = judge(c, spec, &p[i].h, fds, !c->auth, why, sizeof why);
                    if (!reason && c->auth && p[i].need == RING_HELLO_BYTES) {
                        p[i].need = HS_HELLO_NONCE; /* the client's nonce follows */
                        continue;
                    }
                    if (!reason && c->auth) {
                        if (send_challenge(c, &p[i], why, sizeof why) != RING_OK) {
                            ring_clog(c, RING_LOG_WARN,
                                      "%s from %s vanished before our challenge: %s", spec->what,
                                      p[i].name, why);
                            drop(p, &np, i);
                            continue;
                        }
                        p[i].challenged = 1;
                        p[i].need = HS_FULL;
                        continue;
                    }
                } else {
                    unsigned char mac[RING_MAC_BYTES];
                    ring_auth_mac(c->auth, 0, p[i].buf, p[i].ns, mac);
                    if (!ring_auth_equal(mac, p[i].buf + HS_HELLO_NONCE, RING_MAC_BYTES)) {
                        snprintf(
                            why, sizeof why,
                            "authentication failed: wrong proof (different secret or a replay)");
                        reason = RING_REJECT_AUTH;
                    } else {
                        reason = judge(c, spec, &p[i].h, fds, 1, why,
                                       sizeof why); /* a duplicate meanwhile? */
                    }
                }
                ring_hello h = p[i].h;
                if (reason) {
                    ring_clog(c, RING_LOG_WARN, "refused %s connection from %s: %s", spec->what,
                              p[i].name, why);
                    if (RING_REJECT_CODE(reason) == RING_REJECT_DUPLICATE) {
                        int seen = 0;
                        for (int d = 0; d < ndoubled; d++)
                            seen |= doubled_rank[d] == (int)p[i].h.rank;
                        if (!seen && ndoubled < 16) doubled_rank[ndoubled++] = (int)p[i].h.rank;
                    }
                    snprintf(refused, sizeof refused, "%s: %s", p[i].name, why);
                    /* A streams refusal tells ours, so that the client can name both counts. */
                    if (reason == RING_REJECT_STREAMS) {
                        reason |= ring_hello_streams_bits(c->set.tcp_streams, 0);
                        told = 1;
                    }
                    ring_hello rej = make_hello(c, RING_MSG_REJECT, reason);
                    send_hello_nowait(p[i].fd, &rej);
                    drop(p, &np, i);
                    continue;
                }
                ring_hello ack = make_hello(c, RING_MSG_ACK, 0);
                unsigned char b[RING_HELLO_BYTES];
                ring_hello_encode(&ack, b);
                if (ring_sock_write_all(p[i].fd, b, sizeof b, deadline, c->abort_fd, why,
                                        sizeof why) != RING_OK) {
                    ring_clog(c, RING_LOG_WARN, "%s from %s vanished before our ACK: %s",
                              spec->what, p[i].name, why);
                    drop(p, &np, i);
                    continue;
                }
                ring_clog(c, RING_LOG_DEBUG, "accepted %s rank %u from %s%s", spec->what, h.rank,
                          p[i].name, c->auth ? " (authenticated)" : "");
                if (spec->stream_fds)
                    spec->stream_fds[ring_hello_stream_index(h.reason)] = p[i].fd;
                else
                    fds[h.rank] = p[i].fd;
                have++;
                p[i] = p[--np];
                continue;
            }
            if (now >= p[i].deadline_ns) {
                ring_clog(c, RING_LOG_WARN, "dropped silent %s connection from %s", spec->what,
                          p[i].name);
                drop(p, &np, i);
            }
        }
        if (pf[1].revents & POLLIN) {
            int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) continue;
            char tmp[RING_IP_MAX];
            if (ring_sock_tune(fd, tmp, sizeof tmp) != RING_OK) {
                ring_clog(c, RING_LOG_WARN, "dropped a connection: %s", tmp);
                close(fd);
                continue;
            }
            if (np == MAX_PENDING) {
                int v = stalest(p, np);
                ring_clog(c, RING_LOG_DEBUG,
                          "%s: %d handshakes pending: dropped the stalest, from %s (%s)",
                          spec->what, np, p[v].name, p[v].got ? "mid-handshake" : "silent");
                drop(p, &np, v);
            }
            p[np] = (pending){.fd = fd,
                              .need = RING_HELLO_BYTES,
                              .deadline_ns = now + (int64_t)c->set.handshake_timeout_ms * 1000000};
            ring_sock_peer_name(fd, p[np].name, sizeof p[np].name);
            np++;
        }
    }
close_pending:
    if (np > 0)
        ring_clog(c, RING_LOG_WARN,
                  "dropped %d unfinished %s handshake%s (strangers?) as we stop listening", np,
                  spec->what, np > 1 ? "s" : "");
    while (np > 0)
        drop(p, &np, np - 1);
    return st;
}

/* Read the answer to our handshake: ACK (or GO, CHALLENGE) or a REJECT with its reason.
 * wfd: the descriptor whose readability cancels the wait (the abort fd, or a set of it). */
static ring_status read_answer(ring_comm *c, int fd, uint16_t want, const char *peer,
                               int64_t deadline, int wfd, char *err, size_t errlen)
{
    unsigned char b[RING_HELLO_BYTES];
    char why[160];
    ring_status st = ring_sock_read_all(fd, b, sizeof b, deadline, wfd, why, sizeof why);
    if (st != RING_OK) return ring_errf(st, err, errlen, "%s: %s", peer, why);
    ring_hello h;
    if ((st = ring_hello_decode(b, sizeof b, &h, why, sizeof why)) != RING_OK)
        return ring_errf(st, err, errlen, "%s: %s", peer, why);
    if (h.kind == RING_MSG_REJECT && RING_REJECT_CODE(h.reason) == RING_REJECT_STREAMS)
        return ring_errf(RING_ERR_CONFIG, err, errlen,
                         "%s refused us: it uses %d TCP stream%s per neighbour, this rank %d: set "
                         "RING_TCP_STREAMS "
                         "(or \"tcp_streams\") alike on every rank",
                         peer, ring_hello_streams(h.reason),
                         ring_hello_streams(h.reason) > 1 ? "s" : "", c->set.tcp_streams);
    if (h.kind == RING_MSG_REJECT)
        return ring_errf(RING_REJECT_CODE(h.reason) == RING_REJECT_AUTH ? RING_ERR_AUTH
                                                                        : RING_ERR_CONFIG,
                         err, errlen, "%s refused us: %s", peer, ring_reject_str(h.reason));
    if (h.kind != want)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen, "%s: answered message %u, expected %u",
                         peer, h.kind, want);
    if ((int)h.world_size != c->size)
        return ring_errf(RING_ERR_CONFIG, err, errlen,
                         "%s belongs to another ring: its world size is %u, ours %d", peer,
                         h.world_size, c->size);
    if (h.job_id != c->job_id)
        return ring_errf(RING_ERR_CONFIG, err, errlen,
                         "%s belongs to another ring (its job id differs)", peer);
    return RING_OK;
}

/* Client side of a handshake: HELLO or CHECKIN, the challenge-response with a secret, ACK.
 * flags: more bits for the hello's reason field (which stream this is). */
static ring_status client_handshake(ring_comm *c, int fd, uint16_t kind, uint32_t flags,
                                    const char *peer, int64_t deadline, int wfd, char *err,
                                    size_t errlen)
{
    unsigned char hello[HS_FULL];
    ring_hello h = make_hello(c, kind, (c->auth ? RING_HELLO_FLAG_AUTH : 0) | flags);
    ring_hello_encode(&h, hello);
    size_t len = RING_HELLO_BYTES;
    ring_status st;
    if (c->auth) {
        if ((st = ring_auth_nonce(hello + RING_HELLO_BYTES, err, errlen)) != RING_OK) return st;
        len = HS_HELLO_NONCE;
    }
    if ((st = ring_sock_write_all(fd, hello, len, deadline, wfd, err, errlen)) != RING_OK)
        return st;
    if (c->auth) {
        unsigned char b[RING_NONCE_BYTES + RING_MAC_BYTES], mac[RING_MAC_BYTES];
        char why[160];
        if ((st = read_answer(c, fd, RING_MSG_CHALLENGE, peer, deadline, wfd, err, errlen)) !=
            RING_OK)
            return st;
        if ((st = ring_sock_read_all(fd, b, sizeof b, deadline, wfd, why, sizeof why)) != RING_OK)
            return ring_errf(st, err, errlen, "%s: %s", peer, why);
        ring_auth_mac(c->auth, 1, hello, b, mac);
        if (!ring_auth_equal(mac, b + RING_NONCE_BYTES, RING_MAC_BYTES))
            return ring_errf(RING_ERR_AUTH, err, errlen,
                             "%s: authentication failed: it does not prove our shared secret",
                             peer);
        ring_auth_mac(c->auth, 0, hello, b, hello + HS_HELLO_NONCE);
        if ((st = ring_sock_write_all(fd, hello + HS_HELLO_NONCE, RING_MAC_BYTES, deadline, wfd,
                                      err, errlen)) != RING_OK)
            return st;
    }
    return read_answer(c, fd, RING_MSG_ACK, peer, deadline, wfd, err, errlen);
}

/* Connect and handshake, again while the server closes the connection before answering: a
 * server busy with strangers may have given our pending handshake up for a newer connection.
 * A REJECT, the deadline or an abort (wfd readable) ends it. */
static ring_status join(ring_comm *c, const char *host, int port, uint16_t kind, uint32_t flags,
                        const char *peer, int64_t deadline, int wfd, int *out, char *err,
                        size_t errlen)
{
    int backoff_ms = 10;
    for (;;) {
        int fd = -1;
        ring_status st = ring_sock_connect(host, port, deadline, wfd, &fd, err, errlen);
        if (st != RING_OK) return st;
        if (kind == RING_MSG_HELLO && c->size > 1 && ring_sock_is_self(fd, c->cfg.port)) {
            close(fd);
            return ring_errf(RING_ERR_CONFIG, err, errlen,
                             "%s is this rank itself: right_ip:right_port name this rank's own "
                             "port %d, not its right neighbour's",
                             peer, c->cfg.port);
        }
        st = client_handshake(c, fd, kind, flags, peer, deadline, wfd, err, errlen);
        if (st == RING_OK) {
            *out = fd;
            return st;
        }
        close(fd);
        int left = rc_ms_left(deadline);
        if (st != RING_ERR_PEER_CLOSED || left == 0) return st;
        ring_clog(c, RING_LOG_DEBUG, "%s closed our handshake (%s): connecting again", peer, err);
        struct pollfd p = {.fd = wfd, .events = POLLIN};
        if (poll(&p, wfd >= 0 ? 1 : 0, backoff_ms < left ? backoff_ms : left) > 0)
            return ring_errf(RING_ERR_ABORTED, err, errlen, "%s: aborted", peer);
        backoff_ms = backoff_ms * 2 > 500 ? 500 : backoff_ms * 2;
    }
}

/* The right side of the ring runs in its own thread while the main thread accepts the
 * left neighbour: with authentication each side's handshake needs a round trip that the
 * other serves from its accept loop, so doing them in turn would deadlock the ring. */
typedef struct right_job {
    ring_comm *c;
    int64_t deadline;
    int wfd;       /* epoll set of the abort fd and cancel */
    int failed_fd; /* eventfd written when the right side failed: the left accept gives up */
    int fds[RING_MAX_TCP_STREAMS]; /* one per stream, each through its own handshake */
    ring_status st;
    char peer[RING_IP_MAX + 48];
    char err[400];
} right_job;

static void *connect_right(void *arg)
{
    right_job *j = arg;
    ring_comm *c = j->c;
    int k = c->set.tcp_streams;
    j->st = RING_OK;
    for (int s = 0; s < k && j->st == RING_OK; s++)
        j->st = join(c, c->cfg.right_ip, c->cfg.right_port, RING_MSG_HELLO,
                     ring_hello_streams_bits(k, s), j->peer, j->deadline, j->wfd, &j->fds[s],
                     j->err, sizeof j->err);
    if (j->st != RING_OK) {
        for (int s = 0; s < k; s++)
            if (j->fds[s] >= 0) {
                close(j->fds[s]);
                j->fds[s] = -1;
            }
        uint64_t one = 1;
        ssize_t n = write(j->failed_fd, &one, sizeof one);
        (void)n;
    }
    return NULL;
}

/* An fd that is readable when either a or b is (poll on an epoll set). */
static int either_fd(int a, int b)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) return -1;
    struct epoll_event ev = {.events = EPOLLIN};
    ev.data.fd = a;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, a, &ev) < 0) goto fail;
    ev.data.fd = b;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, b, &ev) < 0) goto fail;
    return ep;
fail:
    close(ep);
    return -1;
}

static void close_fds(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
        }
}

/* Hand a neighbour's sockets (one per stream) to the transport; they are its own on success. */
static ring_status open_conn(ring_comm *c, int *fds, int peer, ring_conn **out, char *err,
                             size_t errlen)
{
    int k = c->set.tcp_streams;
    ring_status st = k > 1 ? c->tp->open_streams(&c->tpo, fds, k, peer, out, err, errlen)
                           : c->tp->open(&c->tpo, fds[0], peer, out, err, errlen);
    if (st == RING_OK)
        for (int i = 0; i < k; i++)
            fds[i] = -1;
    return st;
}

ring_status ring_bootstrap(ring_comm *c)
{
    ring_status st = RING_OK;
    char err[400];
    int lfd = -1, mfd = -1, cancel = -1, wset = -1, rfail = -1, lset = -1, started = 0;
    int k = c->set.tcp_streams, left[RING_MAX_TCP_STREAMS];
    const ring_config *cfg = &c->cfg;
    int left_rank = (c->rank + c->size - 1) % c->size, right_rank = (c->rank + 1) % c->size;
    int64_t deadline = ring_deadline_in(c->set.connect_timeout_ms);
    int64_t t0 = rc_now_ns();
    pthread_t thr;
    right_job job = {.c = c, .deadline = deadline};
    for (int i = 0; i < RING_MAX_TCP_STREAMS; i++)
        job.fds[i] = left[i] = -1;
    int *fds = calloc((size_t)c->size, sizeof *fds);
    if (!fds) return ring_fail(c, RING_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->size; i++)
        fds[i] = -1;

    RING_CHECK(ring_sock_listen(cfg->port, &lfd, err, sizeof err), fail);
    if (c->rank == 0) RING_CHECK(ring_sock_listen(cfg->master_port, &mfd, err, sizeof err), fail);

    snprintf(job.peer, sizeof job.peer, "right neighbour (rank %d at %s:%d)", right_rank,
             cfg->right_ip, cfg->right_port);
    cancel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    rfail = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    job.wfd = wset = cancel >= 0 ? either_fd(c->abort_fd, cancel) : -1;
    job.failed_fd = rfail;
    lset = rfail >= 0 ? either_fd(c->abort_fd, rfail) : -1;
    if (wset < 0 || lset < 0) {
        st = ring_errf(RING_ERR_SYSTEM, err, sizeof err, "eventfd/epoll: %s", strerror(errno));
        goto fail;
    }
    int e = pthread_create(&thr, NULL, connect_right, &job);
    if (e) {
        st = ring_errf(RING_ERR_SYSTEM, err, sizeof err, "cannot start a thread: %s", strerror(e));
        goto fail;
    }
    started = 1;

    /* A right side refused (say for a different stream count) ends the wait for the left. */
    accept_spec left_spec = {.what = "left neighbour",
                             .kind = RING_MSG_HELLO,
                             .only_rank = left_rank,
                             .expected = k,
                             .stream_fds = left,
                             .give_up_fd = lset};
    st = accept_peers(c, lfd, &left_spec, fds, deadline, err, sizeof err);
    if (st != RING_OK && ring_sock_wait(rfail, POLLIN, -1, 0) != RING_OK) goto fail;
    pthread_join(thr, NULL);
    started = 0;
    if ((st = job.st) != RING_OK) {
        snprintf(err, sizeof err, "%s", job.err);
        goto fail;
    }
    RING_CHECK(open_conn(c, job.fds, right_rank, &c->right, err, sizeof err), fail);
    RING_CHECK(open_conn(c, left, left_rank, &c->left, err, sizeof err), fail);
    if (c->tp->connect) {
        RING_CHECK(c->tp->connect(c->right, c->abort_fd, deadline, err, sizeof err), fail);
        RING_CHECK(c->tp->connect(c->left, c->abort_fd, deadline, err, sizeof err), fail);
    }

    /* Rendezvous with the master: every rank checks in, then the master says GO. */
    if (c->rank == 0) {
        accept_spec ck = {.what = "check-in",
                          .kind = RING_MSG_CHECKIN,
                          .only_rank = -1,
                          .expected = c->size - 1,
                          .give_up_fd = -1};
        RING_CHECK(accept_peers(c, mfd, &ck, fds, deadline, err, sizeof err), fail);
        for (int r = 1; r < c->size; r++)
            RING_CHECK(send_hello(c, fds[r], RING_MSG_GO, deadline, err, sizeof err), fail);
        c->worker_fds = fds;
        fds = NULL;
    } else {
        char master[RING_IP_MAX + 32];
        snprintf(master, sizeof master, "master at %s:%d", cfg->master_ip, cfg->master_port);
        RING_CHECK(join(c, cfg->master_ip, cfg->master_port, RING_MSG_CHECKIN, 0, master, deadline,
                        c->abort_fd, &c->master_fd, err, sizeof err),
                   fail);
        RING_CHECK(read_answer(c, c->master_fd, RING_MSG_GO, master, deadline, c->abort_fd, err,
                               sizeof err),
                   fail);
    }
    ring_clog(c, RING_LOG_INFO, "ring of %d formed in %.1f ms (left rank %d, right rank %d)%s",
              c->size, (double)(rc_now_ns() - t0) / 1e6, left_rank, right_rank,
              c->auth ? ", every connection authenticated" : "");
    goto close_listeners;

fail:
    if (started) {
        uint64_t one = 1;
        ssize_t n = write(cancel, &one, sizeof one);
        (void)n;
        pthread_join(thr, NULL);
    }
    ring_fail(c, st, "rank %d: forming the ring: %s", c->rank, err);
    close_fds(job.fds, RING_MAX_TCP_STREAMS);
    close_fds(left, RING_MAX_TCP_STREAMS);
close_listeners:
    if (fds)
        for (int i = 0; i < c->size; i++)
            if (fds[i] >= 0) close(fds[i]);
    free(fds);
    if (lfd >= 0) close(lfd);
    if (mfd >= 0) close(mfd);
    if (wset >= 0) close(wset);
    if (cancel >= 0) close(cancel);
    if (lset >= 0) close(lset);
    if (rfail >= 0) close(rfail);
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
