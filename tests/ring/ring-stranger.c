/* SPDX-License-Identifier: MIT */
/* ring-stranger: a process that is not part of the ring connects to a ring port and
 * misbehaves; it checks that the ring drops it within the handshake deadline.
 *
 *   ring-stranger MODE HOST PORT [--secret FILE] [--job ID] [--limit-ms MS] [--rank R]
 *                 [--checkin 0|1] [--world N]   (claims: rank R of N, check-in or ring hello)
 *   MODE: silent     connect and say nothing
 *         random     256 random bytes
 *         magic      a well-formed handshake with a wrong magic
 *         job        a handshake of another job
 *         nosecret   a good handshake (job ID) without the auth flag, to a ring with a secret
 *         wrongkey   a full challenge-response with a different secret
 *         replay     a client proof made with the real secret (FILE) for an earlier
 *                    challenge, replayed against a fresh one (a captured handshake)
 * Exit 0 when dropped (REJECT or closed) within --limit-ms (default 6000), 1 when the ring
 * accepted us or kept us longer, 2 on usage or connect errors. */
#include "auth.h"
#include "wire.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read until n bytes, EOF or the limit; returns bytes read. */
static size_t read_some(int fd, unsigned char *b, size_t n, long long until)
{
    size_t got = 0;
    while (got < n && now_ms() < until) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, (int)(until - now_ms())) <= 0) continue;
        ssize_t r = recv(fd, b + got, n - got, 0);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr,
                "usage: ring-stranger silent|random|magic|job|nosecret|wrongkey|replay HOST PORT "
                "[--secret FILE] [--job ID] [--limit-ms MS]\n");
        return 2;
    }
    const char *mode = argv[1], *secret = NULL;
    uint64_t job = 0;
    long long limit = 6000;
    int claim = 0, kind = RING_MSG_HELLO, world = 4;
    for (int i = 4; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rank")) claim = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--checkin"))
            kind = atoi(argv[i + 1]) ? RING_MSG_CHECKIN : RING_MSG_HELLO;
        if (!strcmp(argv[i], "--world")) world = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--secret")) secret = argv[i + 1];
        if (!strcmp(argv[i], "--job")) job = strtoull(argv[i + 1], NULL, 0);
        if (!strcmp(argv[i], "--limit-ms")) limit = atoll(argv[i + 1]);
    }
    char err[300];
    ring_auth *key = NULL;
    ring_logger lg = ring_logger_from_env();
    if (secret && ring_auth_load(secret, &lg, &key, err, sizeof err) != RING_OK) {
        fprintf(stderr, "ring-stranger: %s\n", err);
        return 2;
    }
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[3]))};
    if (inet_pton(AF_INET, argv[2], &a.sin_addr) != 1) return 2;
    int fd = -1;
    long long give_up = now_ms() + 15000;
    while (now_ms() < give_up) { /* the ring may not listen yet */
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) break;
        close(fd);
        fd = -1;
        usleep(20000);
    }
    if (fd < 0) {
        fprintf(stderr, "ring-stranger %s: cannot connect to %s:%s\n", mode, argv[2], argv[3]);
        return 2;
    }
    printf("stranger %s connected\n", mode); /* the script starts the last rank after this */
    fflush(stdout);
    long long t0 = now_ms();
    unsigned char out[256], in[256];
    ring_hello h = {.magic = RING_WIRE_MAGIC,
                    .version = RING_WIRE_VERSION,
                    .kind = (uint16_t)kind,
                    .world_size = (uint32_t)world,
                    .rank = (uint32_t)claim,
                    .job_id = job,
                    .reason = 0};
    size_t len = 0;
    if (!strcmp(mode, "random")) {
        int r = open("/dev/urandom", O_RDONLY);
        len = r >= 0 && read(r, out, sizeof out) == (ssize_t)sizeof out ? sizeof out : 0;
        if (r >= 0) close(r);
    } else if (!strcmp(mode, "magic")) {
        h.magic = 0x11223344u;
        ring_hello_encode(&h, out);
        len = RING_HELLO_BYTES;
    } else if (!strcmp(mode, "job")) {
        h.job_id = job + 1;
        ring_hello_encode(&h, out);
        len = RING_HELLO_BYTES;
    } else if (!strcmp(mode, "nosecret")) {
        ring_hello_encode(&h, out);
        len = RING_HELLO_BYTES;
    } else if (!strcmp(mode, "wrongkey") || !strcmp(mode, "replay")) {
        h.reason = RING_HELLO_FLAG_AUTH;
        ring_hello_encode(&h, out);
        ring_auth_nonce(out + RING_HELLO_BYTES, err, sizeof err);
        len = RING_HELLO_BYTES + RING_NONCE_BYTES;
    } else if (strcmp(mode, "silent") != 0) {
        fprintf(stderr, "ring-stranger: unknown mode %s\n", mode);
        return 2;
    }
    if (len && send(fd, out, len, MSG_NOSIGNAL) < 0) len = 0;
    int verdict = 0; /* 0 dropped, 1 accepted */
    const char *how = "closed";
    size_t got = read_some(fd, in, RING_HELLO_BYTES, t0 + limit + 1000);
    ring_hello ans;
    if (got == RING_HELLO_BYTES && ring_hello_decode(in, got, &ans, err, sizeof err) == RING_OK) {
        if (ans.kind == RING_MSG_CHALLENGE) {
            unsigned char ch[RING_NONCE_BYTES + RING_MAC_BYTES], mac[RING_MAC_BYTES];
            read_some(fd, ch, sizeof ch, t0 + limit);
            if (!strcmp(mode, "replay") && key) {
                /* A proof that was valid for an earlier challenge (what a sniffer captured). */
                unsigned char old_ns[RING_NONCE_BYTES];
                ring_auth_nonce(old_ns, err, sizeof err);
                ring_auth_mac(key, 0, out, old_ns, mac);
            } else {
                ring_auth *wrong = NULL;
                char tmp[] = "/tmp/ring-stranger-key.XXXXXX";
                int tf = mkstemp(tmp);
                if (tf >= 0 && write(tf, "not the secret\n", 15) == 15)
                    ring_auth_load(tmp, &lg, &wrong, err, sizeof err);
                if (tf >= 0) close(tf);
                unlink(tmp);
                if (wrong)
                    ring_auth_mac(wrong, 0, out, ch, mac);
                else
                    memset(mac, 0, sizeof mac);
                ring_auth_free(wrong);
            }
            send(fd, mac, sizeof mac, MSG_NOSIGNAL);
            got = read_some(fd, in, RING_HELLO_BYTES, t0 + limit + 1000);
            if (got == RING_HELLO_BYTES &&
                ring_hello_decode(in, got, &ans, err, sizeof err) == RING_OK &&
                ans.kind == RING_MSG_ACK)
                verdict = 1;
        } else if (ans.kind == RING_MSG_ACK) {
            verdict = 1;
        }
        if (!verdict && ans.kind == RING_MSG_REJECT) how = ring_reject_str(ans.reason);
        if (!verdict && got == RING_HELLO_BYTES && ans.kind == RING_MSG_REJECT) {
            /* after a REJECT the ring closes the connection */
            read_some(fd, in, 1, t0 + limit + 1000);
        }
    }
    long long dt = now_ms() - t0;
    close(fd);
    ring_auth_free(key);
    if (verdict) {
        printf("FAIL stranger %s on port %s: the ring accepted it\n", mode, argv[3]);
        return 1;
    }
    if (dt > limit) {
        printf("FAIL stranger %s on port %s: kept for %lld ms (limit %lld)\n", mode, argv[3], dt,
               limit);
        return 1;
    }
    printf("stranger %-8s port %s: dropped after %lld ms (%s)\n", mode, argv[3], dt, how);
    return 0;
}
