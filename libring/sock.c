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
        return ring_errf(err, errlen, RING_ERR_SYSTEM, "fcntl(O_NONBLOCK): %s", strerror(errno));
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) < 0)
        return ring_errf(err, errlen, RING_ERR_SYSTEM, "setsockopt(TCP_NODELAY): %s", strerror(errno));
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
    if (fd < 0) return ring_errf(err, errlen, RING_ERR_SYSTEM, "socket: %s", strerror(errno));
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_ANY)};
    struct sockaddr_in6 a6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port),
                              .sin6_addr = in6addr_any};
    if (v6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (v6 ? bind(fd, (struct sockaddr *)&a6, sizeof a6) < 0
           : bind(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        int e = errno;
        close(fd);
        return ring_errf(err, errlen, RING_ERR_SYSTEM, "cannot listen on port %d: %s", port, strerror(e));
    }
    if (listen(fd, 64) < 0) {
        int e = errno;
        close(fd);
        return ring_errf(err, errlen, RING_ERR_SYSTEM, "listen on port %d: %s", port, strerror(e));
    }
    *out = fd;
    return RING_OK;
}

/* Wait for events on fd (and the abort fd) until the deadline. Returns RING_OK when fd is
 * ready, RING_ERR_TIMEOUT or RING_ERR_ABORTED otherwise. */
ring_status ring_sock_wait(int fd, short events, int abort_fd, int64_t deadline_ns)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = abort_fd, .events = POLLIN}};
        int ms = ring_ms_left(deadline_ns);
        int n = poll(p, abort_fd >= 0 ? 2 : 1, ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            return RING_ERR_SYSTEM;
        }
        if (abort_fd >= 0 && (p[1].revents & POLLIN)) return RING_ERR_ABORTED;
        if (n > 0 && p[0].revents) return RING_OK;
        if (ms == 0 || ring_ms_left(deadline_ns) == 0) return RING_ERR_TIMEOUT;
    }
}

ring_status ring_sock_connect(const char *host, int port, int64_t deadline_ns, int abort_fd,
                              int *out, char *err, size_t errlen)
{
    char service[16], bare[256];
    snprintf(service, sizeof service, "%d", port);
    /* "[::1]" (the bracketed form of host:port places) names the address "::1". */
    size_t hl = strlen(host);
    if (hl > 2 && hl < sizeof bare && host[0] == '[' && host[hl - 1] == ']') {
        memcpy(bare, host + 1, hl - 2);
        bare[hl - 2] = 0;
        host = bare;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int backoff_ms = 10;
    int last_errno = 0;
    for (;;) {
        int gai = getaddrinfo(host, service, &hints, &res);
        if (gai != 0) {
            if (gai != EAI_AGAIN)
                return ring_errf(err, errlen, RING_ERR_CONFIG, "cannot resolve %s: %s", host,
                                 gai_strerror(gai));
        } else {
            for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                                ai->ai_protocol);
                if (fd < 0) {
                    last_errno = errno;
                    continue;
                }
                int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
                if (rc < 0 && errno == EINPROGRESS) {
                    ring_status w = ring_sock_wait(fd, POLLOUT, abort_fd, deadline_ns);
                    if (w == RING_ERR_ABORTED) {
                        close(fd);
                        freeaddrinfo(res);
                        return ring_errf(err, errlen, w, "connecting to %s:%d: aborted", host, port);
                    }
                    socklen_t len = sizeof last_errno;
                    last_errno = ETIMEDOUT;
                    if (w == RING_OK) getsockopt(fd, SOL_SOCKET, SO_ERROR, &last_errno, &len);
                    rc = last_errno ? -1 : 0;
                } else if (rc < 0) {
                    last_errno = errno;
                }
                if (rc == 0) {
                    freeaddrinfo(res);
                    ring_status st = ring_sock_tune(fd, err, errlen);
                    if (st != RING_OK) {
                        close(fd);
                        return st;
                    }
                    *out = fd;
                    return RING_OK;
                }
                close(fd);
            }
            freeaddrinfo(res);
            res = NULL;
        }
        /* The peer may not be listening yet: back off exponentially, up to 1 s. */
        int left = ring_ms_left(deadline_ns);
        if (left == 0)
            return ring_errf(err, errlen, RING_ERR_TIMEOUT,
                             "cannot connect to %s:%d before the deadline (last error: %s)", host,
                             port, last_errno ? strerror(last_errno) : "none");
        int nap = backoff_ms < left ? backoff_ms : left;
        struct pollfd p = {.fd = abort_fd, .events = POLLIN};
        if (poll(&p, abort_fd >= 0 ? 1 : 0, nap) > 0)
            return ring_errf(err, errlen, RING_ERR_ABORTED, "connecting to %s:%d: aborted", host, port);
        backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
    }
}

/* Move len bytes with non-blocking I/O, waiting with poll until the deadline. */
static ring_status io_all(int fd, void *buf, size_t len, int writing, int64_t deadline_ns,
                          int abort_fd, char *err, size_t errlen)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        ssize_t n = writing ? send(fd, p + done, len - done, MSG_NOSIGNAL)
                            : recv(fd, p + done, len - done, 0);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0 && !writing)
            return ring_errf(err, errlen, RING_ERR_PEER_CLOSED, "peer closed the connection");
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            int e = errno;
            return ring_errf(err, errlen,
                             e == ECONNRESET || e == EPIPE ? RING_ERR_PEER_CLOSED : RING_ERR_SYSTEM,
                             "%s: %s", writing ? "send" : "recv", strerror(e));
        }
        ring_status st = ring_sock_wait(fd, writing ? POLLOUT : POLLIN, abort_fd, deadline_ns);
        if (st == RING_ERR_TIMEOUT)
            return ring_errf(err, errlen, st, "peer silent: %s timed out", writing ? "send" : "recv");
        if (st != RING_OK) return ring_errf(err, errlen, st, "%s", ring_status_str(st));
    }
    return RING_OK;
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
        return ntohs(b->sin6_port) == port && !memcmp(&a->sin6_addr, &b->sin6_addr, sizeof a->sin6_addr);
    }
    return 0;
}

void ring_sock_peer_name(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0 &&
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) == 0) {
        /* IPv4 through the dual-stack listener reads as ::ffff:a.b.c.d: show it as IPv4. */
        const char *h = strncmp(host, "::ffff:", 7) == 0 && strchr(host + 7, '.') ? host + 7 : host;
        snprintf(out, cap, strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, serv);
    } else
        snprintf(out, cap, "?");
}

ring_status ring_sock_poll_progress(struct pollfd *p, int n, int64_t deadline_ns, int peer,
                                    const char *dir, char *err, size_t errlen)
{
    int ms = ring_ms_left(deadline_ns);
    if (ms == 0) return ring_errf(err, errlen, RING_ERR_TIMEOUT, "no progress from rank %d%s", peer, dir);
    int r = poll(p, (nfds_t)n, ms);
    if (r < 0 && errno != EINTR)
        return ring_errf(err, errlen, RING_ERR_SYSTEM, "poll: %s", strerror(errno));
    if (r > 0 && (p[0].revents & POLLIN)) return ring_errf(err, errlen, RING_ERR_ABORTED, "aborted");
    return RING_OK;
}
