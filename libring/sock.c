/* SPDX-License-Identifier: MIT */
/* Socket helpers for the bootstrap: listen, connect with backoff, whole reads and
 * writes under a deadline. Every socket is non-blocking; every wait is a poll(). */
#include "sock.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

ring_status ring_sock_tune(int fd, char *err, size_t errlen)
{
    int one = 1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return ring_errf(RING_ERR_SYSTEM, err, errlen, "fcntl(O_NONBLOCK): %s", strerror(errno));
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        return ring_errf(RING_ERR_SYSTEM, err, errlen, "setsockopt(TCP_NODELAY): %s",
                         strerror(errno));
    return RING_OK;
}

/* Listens on every address, IPv6 and IPv4 (one dual-stack socket, so that a config may name
 * either); IPv4 alone where the kernel has no IPv6. */
ring_status ring_sock_listen(int port, int *out, char *err, size_t errlen)
{
    int v6 = 1;
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && (errno == EAFNOSUPPORT || errno == EPROTONOSUPPORT)) {
        v6 = 0;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) return ring_errf(RING_ERR_SYSTEM, err, errlen, "socket: %s", strerror(errno));
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_ANY)};
    struct sockaddr_in6 a6 = {
        .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = in6addr_any};
    if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (v6 ? bind(fd, (struct sockaddr *)&a6, sizeof a6) < 0
           : bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return ring_errf(RING_ERR_SYSTEM, err, errlen, "cannot listen on port %d: %s", port,
                         strerror(e));
    }
    if (listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return ring_errf(RING_ERR_SYSTEM, err, errlen, "listen on port %d: %s", port, strerror(e));
    }
    *out = fd;
    return RING_OK;
}

/* common/sock.c's results as libring's statuses. */
static ring_status from_rc(int r)
{
    switch (r) {
    case 0:
        return RING_OK;
    case -ETIMEDOUT:
        return RING_ERR_TIMEOUT;
    case -ECANCELED:
        return RING_ERR_ABORTED;
    case -EPIPE:
        return RING_ERR_PEER_CLOSED;
    default:
        return RING_ERR_SYSTEM;
    }
}

/* Wait for events on fd (and the abort fd) until the deadline. Returns RING_OK when fd is
 * ready, RING_ERR_TIMEOUT or RING_ERR_ABORTED otherwise. */
ring_status ring_sock_wait(int fd, short events, int abort_fd, int64_t deadline_ns)
{
    return from_rc(rc_sock_wait(fd, events, abort_fd, deadline_ns));
}

ring_status ring_sock_connect(const char *host, int port, int64_t deadline_ns, int abort_fd,
                              int *out, char *err, size_t errlen)
{
    char why[256];
    int fd = -1;
    int r = rc_sock_connect(host, port, deadline_ns, abort_fd, &fd, why, sizeof why);
    if (r == -ENOENT)
        return ring_errf(RING_ERR_CONFIG, err, errlen, "cannot resolve %s: %s", host, why);
    if (r == -ECANCELED)
        return ring_errf(RING_ERR_ABORTED, err, errlen, "connecting to %s:%d: aborted", host, port);
    if (r)
        return ring_errf(RING_ERR_TIMEOUT, err, errlen,
                         "cannot connect to %s:%d before the deadline (last error: %s)", host, port,
                         why[0] ? why : "none");
    ring_status st = ring_sock_tune(fd, err, errlen);
    if (st != RING_OK) {
        close(fd);
        return st;
    }
    *out = fd;
    return RING_OK;
}

/* Move len bytes with non-blocking I/O, waiting with poll until the deadline. */
static ring_status io_all(int fd, void *buf, size_t len, int writing, int64_t deadline_ns,
                          int abort_fd, char *err, size_t errlen)
{
    int r = rc_sock_io_all(fd, buf, len, writing, deadline_ns, abort_fd);
    ring_status st = from_rc(r);
    switch (st) {
    case RING_OK:
        return RING_OK;
    case RING_ERR_PEER_CLOSED:
        return ring_errf(st, err, errlen, "peer closed the connection");
    case RING_ERR_TIMEOUT:
        return ring_errf(st, err, errlen, "peer silent: %s timed out", writing ? "send" : "recv");
    case RING_ERR_ABORTED:
        return ring_errf(st, err, errlen, "%s", ring_status_str(st));
    default:
        return ring_errf(st, err, errlen, "%s: %s", writing ? "send" : "recv", strerror(-r));
    }
}

ring_status ring_sock_write_all(int fd, const void *buf, size_t len, int64_t deadline_ns,
                                int abort_fd, char *err, size_t errlen)
{
    return io_all(fd, (void *)buf, len, 1, deadline_ns, abort_fd, err, errlen);
}

ring_status ring_sock_read_all(int fd, void *buf, size_t len, int64_t deadline_ns, int abort_fd,
                               char *err, size_t errlen)
{
    return io_all(fd, buf, len, 0, deadline_ns, abort_fd, err, errlen);
}

int ring_sock_is_self(int fd, int port)
{
    struct sockaddr_storage me, peer;
    socklen_t ml = sizeof me, pl = sizeof peer;
    if (getsockname(fd, (struct sockaddr *)&me, &ml) < 0 ||
        getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 || me.ss_family != peer.ss_family)
        return 0;
    if (peer.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const void *)&me, *b = (const void *)&peer;
        return ntohs(b->sin_port) == port && a->sin_addr.s_addr == b->sin_addr.s_addr;
    }
    if (peer.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const void *)&me, *b = (const void *)&peer;
        return ntohs(b->sin6_port) == port &&
               !memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr);
    }
    return 0;
}

void ring_sock_peer_name(int fd, char *out, size_t cap)
{
    rc_sock_peer_name(fd, out, cap);
}

ring_status ring_sock_poll_progress(struct pollfd *p, int n, int64_t deadline_ns, int peer,
                                    const char *dir, char *err, size_t errlen)
{
    int ms = rc_ms_left(deadline_ns);
    if (ms == 0)
        return ring_errf(RING_ERR_TIMEOUT, err, errlen, "no progress from rank %d%s", peer, dir);
    int r = poll(p, (nfds_t)n, ms);
    if (r < 0 && errno != EINTR)
        return ring_errf(RING_ERR_SYSTEM, err, errlen, "poll: %s", strerror(errno));
    if (r > 0 && (p[0].revents & POLLIN))
        return ring_errf(RING_ERR_ABORTED, err, errlen, "aborted");
    return RING_OK;
}
