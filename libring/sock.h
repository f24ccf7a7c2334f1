/* SPDX-License-Identifier: MIT */
/* Private: socket helpers used by the bootstrap and the TCP transport. */
#ifndef RING_SOCK_H
#define RING_SOCK_H

#include "ring_private.h"

ring_status ring_sock_tune(int fd, char *err, size_t errlen); /* non-blocking, TCP_NODELAY */
ring_status ring_sock_listen(int port, int *out, char *err, size_t errlen);
/* Connect, retrying with exponential backoff (10 ms .. 1 s) until the deadline. */
ring_status ring_sock_connect(const char *host, int port, int64_t deadline_ns, int abort_fd,
                              int *out, char *err, size_t errlen);
ring_status ring_sock_wait(int fd, short events, int abort_fd, int64_t deadline_ns);
ring_status ring_sock_write_all(int fd, const void *buf, size_t len, int64_t deadline_ns,
                                int abort_fd, char *err, size_t errlen);
ring_status ring_sock_read_all(int fd, void *buf, size_t len, int64_t deadline_ns, int abort_fd,
                               char *err, size_t errlen);
/* Whether connected socket fd reached this host's own `port` (a rank connecting to itself:
 * the peer's address is our local address and its port is ours). */
int ring_sock_is_self(int fd, int port);
void ring_sock_peer_name(int fd, char *out, size_t cap);
/* A transport's wait for progress: poll p[0..n) until the deadline, p[0] being the abort fd.
 * RING_OK when something is ready (or a signal came); TIMEOUT names the silent peer and what
 * we were doing (dir: " (receiving)", " (sending)" or ""); ABORTED when the abort fd fired. */
struct pollfd;
ring_status ring_sock_poll_progress(struct pollfd *p, int n, int64_t deadline_ns, int peer,
                                    const char *dir, char *err, size_t errlen);

#endif
