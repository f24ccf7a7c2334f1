/* SPDX-License-Identifier: MIT */
/* The NCCL id hand-off over TCP: a head accepts a known set of workers, checks what each
 * says about the job, then sends every one the same 128-byte blob. Used by multi-node
 * mode (MISTRALRS_MN_*) and by the local leader for the processes it spawns. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include "coll_private.h"
#include "common/clock.h"
#include "common/sock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RDV_HELLO_MAGIC 0x434f4c48u /* "COLH" */
#define RDV_REPLY_MAGIC 0x434f4c52u /* "COLR" */
#define RDV_VERSION 1u
#define RDV_HELLO_BYTES 32
#define RDV_MSG_BYTES 200
#define RDV_REPLY_BYTES (8 + RDV_MSG_BYTES + COLL_RDV_BLOB)

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Move len bytes before the deadline (ms); COLL_ERR_PEER_CLOSED on EOF. */
static coll_status xfer(int fd, void *buf, size_t len, int writing, int64_t deadline)
{
    int r = rc_sock_io_all(fd, buf, len, writing, deadline * 1000000, -1);
    return r == 0            ? COLL_OK
           : r == -ETIMEDOUT ? COLL_ERR_TIMEOUT
           : r == -EPIPE     ? COLL_ERR_PEER_CLOSED
                             : COLL_ERR_SYSTEM;
}

static void encode_hello(uint8_t *b, const coll_rdv_hello *h)
{
    put32(b, RDV_HELLO_MAGIC);
    put32(b + 4, RDV_VERSION);
    put32(b + 8, (uint32_t)(h->token >> 32));
    put32(b + 12, (uint32_t)h->token);
    put32(b + 16, h->global_ws);
    put32(b + 20, h->local_ws);
    put32(b + 24, h->nodes);
    put32(b + 28, (uint32_t)h->worker_id);
}

static int decode_hello(const uint8_t *b, coll_rdv_hello *h)
{
    if (get32(b) != RDV_HELLO_MAGIC || get32(b + 4) != RDV_VERSION) return -1;
    h->token = (uint64_t)get32(b + 8) << 32 | get32(b + 12);
    h->global_ws = get32(b + 16);
    h->local_ws = get32(b + 20);
    h->nodes = get32(b + 24);
    h->worker_id = (int32_t)get32(b + 28);
    return 0;
}

static coll_status send_reply(int fd, coll_status st, const char *msg, const uint8_t *blob,
                              int64_t deadline)
{
    uint8_t b[RDV_REPLY_BYTES] = {0};
    put32(b, RDV_REPLY_MAGIC);
    put32(b + 4, (uint32_t)st);
    snprintf((char *)b + 8, RDV_MSG_BYTES, "%s", msg ? msg : "");
    if (blob) memcpy(b + 8 + RDV_MSG_BYTES, blob, COLL_RDV_BLOB);
    return xfer(fd, b, sizeof(b), 1, deadline);
}

coll_status coll_parse_hostport(const char *s, const char *what, char *host, size_t hostlen,
                                int *port, char *err, size_t errlen)
{
    const char *colon;
    size_t hl;
    const char *h = s;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s: expected [ipv6]:port, got '%s'",
                             what, s);
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || colon == s)
            return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s: expected host:port, got '%s'", what,
                             s);
        hl = (size_t)(colon - s);
    }
    if (hl >= hostlen)
        return coll_fail(COLL_ERR_CONFIG, err, errlen, "%s: host name too long in '%s'", what, s);
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 1 || p > 65535)
        return coll_fail(COLL_ERR_CONFIG, err, errlen,
                         "%s: port must be 1..65535, got '%s' in '%s'", what, colon + 1, s);
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return COLL_OK;
}

coll_status coll_rdv_listen(const char *host, int port, int *fd_out, int *bound_port, char *err,
                            size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    char ps[16];
    snprintf(ps, sizeof(ps), "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc)
        return coll_fail(COLL_ERR_CONFIG, err, errlen, "rendezvous: cannot resolve '%s': %s",
                         host ? host : "*", gai_strerror(rc));
    coll_status st = COLL_ERR_SYSTEM;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        st = coll_fail(COLL_ERR_SYSTEM, err, errlen, "rendezvous: socket: %s", strerror(errno));
        goto free_addr;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0) {
        st = coll_fail(COLL_ERR_SYSTEM, err, errlen, "rendezvous: cannot bind %s:%d: %s",
                       host ? host : "*", port, strerror(errno));
        goto close_socket;
    }
    if (listen(fd, 64) < 0) {
        st = coll_fail(COLL_ERR_SYSTEM, err, errlen, "rendezvous: listen: %s", strerror(errno));
        goto close_socket;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                                : ((struct sockaddr_in6 *)&ss)->sin6_port);
    *fd_out = fd;
    freeaddrinfo(res);
    return COLL_OK;
close_socket:
    close(fd);
free_addr:
    freeaddrinfo(res);
    return st;
}

/* Tell every accepted worker why the rendezvous failed, then close them. */
static void reject_all(int *fds, int n, coll_status st, const char *msg, int64_t deadline)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0) {
            send_reply(fds[i], st, msg, NULL, deadline);
            close(fds[i]);
            fds[i] = -1;
        }
}

coll_status coll_rdv_serve(int lfd, const coll_rdv_hello *ex, const uint8_t *blob, int timeout_ms,
                           coll_rdv_check_fn check, void *check_ctx, const coll_logger *lg,
                           char *err, size_t errlen)
{
    int nw = (int)ex->nodes - 1;
    int64_t deadline = rc_now_ms() + timeout_ms;
    coll_status st = COLL_OK;
    int *fds = malloc(sizeof(int) * (size_t)(nw > 0 ? nw : 1));
    if (!fds) {
        close(lfd);
        return coll_fail(COLL_ERR_NOMEM, err, errlen, "rendezvous: out of memory");
    }
    for (int i = 0; i < nw; i++)
        fds[i] = -1;
    int got = 0;
    char msg[RDV_MSG_BYTES];

    while (got < nw) {
        int left = (int)(deadline - rc_now_ms());
        if (left <= 0) {
            char missing[128] = "";
            size_t off = 0;
            for (int i = 0; i < nw && off < sizeof(missing) - 12; i++)
                if (fds[i] < 0)
                    off += (size_t)snprintf(missing + off, sizeof(missing) - off, "%s%d",
                                            off ? ", " : "", i);
            snprintf(msg, sizeof(msg),
                     "rendezvous: timed out after %d ms with %d of %d workers; missing worker "
                     "ids: %s",
                     timeout_ms, got, nw, missing);
            st = coll_fail(COLL_ERR_TIMEOUT, err, errlen, "%s", msg);
            goto reject;
        }
        if (check && (st = check(check_ctx, msg, sizeof(msg)))) {
            coll_fail(st, err, errlen, "%s", msg);
            goto reject;
        }
        struct pollfd pfd = {.fd = lfd, .events = POLLIN};
        int r = poll(&pfd, 1, left < 100 ? left : 100);
        if (r <= 0) continue;
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int cfd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
        if (cfd < 0) continue;
        char who[80];
        rc_sockaddr_name((const struct sockaddr *)&ss, sizeof(ss), who, sizeof(who));
        uint8_t hb[RDV_HELLO_BYTES];
        coll_rdv_hello h;
        /* A stranger gets a few seconds to speak, not the whole deadline. */
        int64_t hello_deadline = rc_now_ms() + 5000 < deadline ? rc_now_ms() + 5000 : deadline;
        if (xfer(cfd, hb, sizeof(hb), 0, hello_deadline) != COLL_OK || decode_hello(hb, &h) ||
            h.token != ex->token) {
            coll_log(lg, COLL_LOG_WARN,
                     "rendezvous: dropped a connection from %s: no valid hello of this job", who);
            close(cfd);
            continue;
        }
        if (h.global_ws != ex->global_ws || h.local_ws != ex->local_ws || h.nodes != ex->nodes) {
            snprintf(msg, sizeof(msg),
                     "rendezvous: worker %d at %s has global world size %u, local %u, nodes %u; "
                     "the head has %u, %u, %u",
                     h.worker_id, who, h.global_ws, h.local_ws, h.nodes, ex->global_ws,
                     ex->local_ws, ex->nodes);
            st = COLL_ERR_CONFIG;
        } else if (h.worker_id < 0 || h.worker_id >= nw) {
            snprintf(msg, sizeof(msg),
                     "rendezvous: worker id %d from %s is out of range: the head expects ids "
                     "0..%d",
                     h.worker_id, who, nw - 1);
            st = COLL_ERR_CONFIG;
        } else if (fds[h.worker_id] >= 0) {
            snprintf(msg, sizeof(msg),
                     "rendezvous: worker id %d connected twice (again from %s): each worker "
                     "needs its own id",
                     h.worker_id, who);
            st = COLL_ERR_CONFIG;
        }
        if (st) {
            send_reply(cfd, st, msg, NULL, deadline);
            close(cfd);
            coll_fail(st, err, errlen, "%s", msg);
            goto reject;
        }
        fds[h.worker_id] = cfd;
        got++;
        coll_log(lg, COLL_LOG_DEBUG, "rendezvous: worker %d joined from %s (%d of %d)", h.worker_id,
                 who, got, nw);
    }
    for (int i = 0; i < nw; i++) {
        coll_status s = send_reply(fds[i], COLL_OK, "", blob, deadline);
        if (s && !st)
            st = coll_fail(s, err, errlen, "rendezvous: could not send the id to worker %d: %s", i,
                           coll_status_str(s));
        close(fds[i]);
    }
    free(fds);
    close(lfd);
    return st;
reject:
    reject_all(fds, nw, st, msg, rc_now_ms() + 1000);
    free(fds);
    close(lfd);
    return st;
}

/* Connect with a deadline; ECONNREFUSED means the head is not up yet: try again. */
static coll_status connect_retry(const char *host, int port, int64_t deadline, int *fd_out,
                                 char *err, size_t errlen)
{
    char why[256];
    int r = rc_sock_connect(host, port, deadline * 1000000, -1, fd_out, why, sizeof(why));
    if (r == 0) return COLL_OK;
    if (r == -ENOENT)
        return coll_fail(COLL_ERR_CONFIG, err, errlen, "rendezvous: cannot resolve '%s': %s", host,
                         why);
    return coll_fail(COLL_ERR_TIMEOUT, err, errlen,
                     "rendezvous: could not reach the head at %s:%d before the deadline (%s)", host,
                     port, why[0] ? why : "no attempt");
}

coll_status coll_rdv_join(const char *host, int port, const coll_rdv_hello *me, uint8_t *blob,
                          int timeout_ms, const coll_logger *lg, char *err, size_t errlen)
{
    int64_t deadline = rc_now_ms() + timeout_ms;
    int fd = -1;
    coll_status st = connect_retry(host, port, deadline, &fd, err, errlen);
    if (st) return st;
    uint8_t hb[RDV_HELLO_BYTES];
    encode_hello(hb, me);
    uint8_t rb[RDV_REPLY_BYTES];
    if ((st = xfer(fd, hb, sizeof(hb), 1, deadline)) ||
        (st = xfer(fd, rb, sizeof(rb), 0, deadline))) {
        if (st == COLL_ERR_TIMEOUT)
            coll_fail(st, err, errlen,
                      "rendezvous: timed out after %d ms waiting for the id from %s:%d", timeout_ms,
                      host, port);
        else
            coll_fail(st, err, errlen,
                      "rendezvous: the head at %s:%d closed the connection before sending the "
                      "id",
                      host, port);
        goto close_socket;
    }
    if (get32(rb) != RDV_REPLY_MAGIC) {
        st = coll_fail(COLL_ERR_PROTOCOL, err, errlen,
                       "rendezvous: %s:%d is not a libcoll head (bad reply)", host, port);
        goto close_socket;
    }
    uint32_t rs = get32(rb + 4);
    if (rs != COLL_OK) {
        char msg[RDV_MSG_BYTES + 1];
        memcpy(msg, rb + 8, RDV_MSG_BYTES);
        msg[RDV_MSG_BYTES] = '\0';
        st = coll_fail(rs < COLL_STATUS_COUNT ? (coll_status)rs : COLL_ERR_PROTOCOL, err, errlen,
                       "rendezvous: the head at %s:%d refused: %s", host, port, msg);
        goto close_socket;
    }
    memcpy(blob, rb + 8 + RDV_MSG_BYTES, COLL_RDV_BLOB);
    coll_log(lg, COLL_LOG_DEBUG, "rendezvous: got the id from %s:%d as worker %d", host, port,
             me->worker_id);
close_socket:
    close(fd);
    return st;
}
