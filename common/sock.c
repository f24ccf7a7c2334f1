/* SPDX-License-Identifier: MIT */
/* Socket helpers with deadlines (see sock.h). */
#include "common/sock.h"
#include "common/clock.h"

#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int rc_ms_left(int64_t deadline_ns)
{
    int64_t left = deadline_ns - rc_now_ns();
    if (left <= 0) return 0;
    int64_t ms = (left + 999999) / 1000000;
    return ms > 1 << 30 ? 1 << 30 : (int)ms;
}

int rc_sock_wait(int fd, short events, int abort_fd, int64_t deadline_ns)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = events}, {.fd = abort_fd, .events = POLLIN}};
        int ms = rc_ms_left(deadline_ns);
        int n = poll(p, abort_fd >= 0 ? 2 : 1, ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -errno;
        }
        if (abort_fd >= 0 && (p[1].revents & POLLIN)) return -ECANCELED;
        if (n > 0 && p[0].revents) return 0;
        if (ms == 0 || rc_ms_left(deadline_ns) == 0) return -ETIMEDOUT;
    }
}

int rc_sock_io_all(int fd, void *buf, size_t len, int writing, int64_t deadline_ns, int abort_fd)
{
    unsigned char *p = buf;
    size_t done = 0;
    while (done < len) {
        /* MSG_DONTWAIT: a blocking socket must not block past the deadline either. */
        ssize_t n = writing ? send(fd, p + done, len - done, MSG_NOSIGNAL | MSG_DONTWAIT)
                            : recv(fd, p + done, len - done, MSG_DONTWAIT);
        if (n > 0) {
            done += (size_t)n;
            continue;
        }
        if (n == 0 && !writing) return -EPIPE;
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
            return errno == ECONNRESET || errno == EPIPE ? -EPIPE : -errno;
        int w = rc_sock_wait(fd, writing ? POLLOUT : POLLIN, abort_fd, deadline_ns);
        if (w) return w;
    }
    return 0;
}

/* One attempt at every address of res; 0 with *fd_out, or the last error. */
static int try_addresses(const struct addrinfo *res, int64_t deadline_ns, int abort_fd, int *fd_out,
                         int *last_errno)
{
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            *last_errno = errno;
            continue;
        }
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc < 0 && errno == EINPROGRESS) {
            int w = rc_sock_wait(fd, POLLOUT, abort_fd, deadline_ns);
            if (w == -ECANCELED) {
                close(fd);
                return w;
            }
            socklen_t len = sizeof *last_errno;
            *last_errno = ETIMEDOUT;
            if (w == 0) getsockopt(fd, SOL_SOCKET, SO_ERROR, last_errno, &len);
            rc = *last_errno ? -1 : 0;
        } else if (rc < 0) {
            *last_errno = errno;
        }
        if (rc == 0) {
            *fd_out = fd;
            return 0;
        }
        close(fd);
    }
    return -1;
}

int rc_sock_connect(const char *host, int port, int64_t deadline_ns, int abort_fd, int *fd_out,
                    char *why, size_t whylen)
{
    char service[16], bare[256];
    snprintf(service, sizeof service, "%d", port);
    if (why && whylen) why[0] = 0;
    /* "[::1]" (the bracketed form of host:port places) names the address "::1". */
    size_t hl = strlen(host);
    if (hl > 2 && hl < sizeof bare && host[0] == '[' && host[hl - 1] == ']') {
        memcpy(bare, host + 1, hl - 2);
        bare[hl - 2] = 0;
        host = bare;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int backoff_ms = 10, last_errno = 0;
    for (;;) {
        int gai = getaddrinfo(host, service, &hints, &res);
        if (gai != 0 && gai != EAI_AGAIN) {
            if (why && whylen) snprintf(why, whylen, "%s", gai_strerror(gai));
            return -ENOENT;
        }
        if (gai == 0) {
            int rc = try_addresses(res, deadline_ns, abort_fd, fd_out, &last_errno);
            freeaddrinfo(res);
            res = NULL;
            if (rc == 0 || rc == -ECANCELED) return rc;
        }
        if (why && whylen && last_errno) snprintf(why, whylen, "%s", strerror(last_errno));
        /* The peer may not be listening yet: back off exponentially, up to 1 s. */
        int left = rc_ms_left(deadline_ns);
        if (left == 0) return -ETIMEDOUT;
        int nap = backoff_ms < left ? backoff_ms : left;
        struct pollfd p = {.fd = abort_fd, .events = POLLIN};
        if (poll(&p, abort_fd >= 0 ? 1 : 0, nap) > 0) return -ECANCELED;
        backoff_ms = backoff_ms * 2 > 1000 ? 1000 : backoff_ms * 2;
    }
}

void rc_sockaddr_name(const struct sockaddr *sa, socklen_t len, char *out, size_t cap)
{
    char host[NI_MAXHOST], serv[NI_MAXSERV];
    if (getnameinfo(sa, len, host, sizeof host, serv, sizeof serv,
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        snprintf(out, cap, "?");
        return;
    }
    /* IPv4 through a dual-stack listener reads as ::ffff:a.b.c.d: show it as IPv4. */
    const char *h = strncmp(host, "::ffff:", 7) == 0 && strchr(host + 7, '.') ? host + 7 : host;
    snprintf(out, cap, strchr(h, ':') ? "[%s]:%s" : "%s:%s", h, serv);
}

void rc_sock_peer_name(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        rc_sockaddr_name((const struct sockaddr *)&ss, len, out, cap);
    else
        snprintf(out, cap, "?");
}
