/* SPDX-License-Identifier: MIT */
/* Socket helpers shared by libring (the ring's connections) and libcoll (the NCCL id
 * rendezvous): waits, whole-buffer I/O and connecting, all with a deadline and an optional
 * abort descriptor (readable = give up). Compiled into each library, hidden (rc_ prefix);
 * results are 0 or a negative errno, which each library turns into its own status once:
 *   -ETIMEDOUT  the deadline passed        -ECANCELED  the abort descriptor became readable
 *   -EPIPE      the peer closed or reset   other       -errno of the failing call
 * Thread-safe (no state). Deadlines are CLOCK_MONOTONIC nanoseconds (common/clock.h). */
#ifndef RC_SOCK_H
#define RC_SOCK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Milliseconds until the deadline for poll(): 0 when it has passed, rounded up otherwise. */
int rc_ms_left(int64_t deadline_ns);

/* Waits for events on fd (abort_fd < 0: none). */
int rc_sock_wait(int fd, short events, int abort_fd, int64_t deadline_ns);

/* Moves all len bytes on a non-blocking (or blocking) socket. */
int rc_sock_io_all(int fd, void *buf, size_t len, int writing, int64_t deadline_ns, int abort_fd);

/* Connects to host:port ("[v6]" accepted), trying every address and again with backoff
 * (10 ms doubling to 1 s) while nothing listens yet, until the deadline. *fd_out: a
 * non-blocking, close-on-exec socket. A name that does not resolve is -ENOENT with
 * gai_strerror's text in why; otherwise why gets the last connect error ("" if none). */
int rc_sock_connect(const char *host, int port, int64_t deadline_ns, int abort_fd, int *fd_out,
                    char *why, size_t whylen);

/* "a.b.c.d:port" or "[v6]:port" (IPv4-mapped IPv6 shown as IPv4); "?" when unknown. */
void rc_sockaddr_name(const struct sockaddr *sa, socklen_t len, char *out, size_t cap);
void rc_sock_peer_name(int fd, char *out, size_t cap);

#endif
