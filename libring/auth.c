/* SPDX-License-Identifier: MIT */
/* Shared-secret authentication with OpenSSL's libcrypto (see auth.h for the exchange). */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#ifdef HAVE_CRYPTO
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#endif

struct ring_auth {
    size_t len;
    unsigned char key[RING_AUTH_SECRET_MAX];
};

ring_status ring_auth_load(const char *path, const ring_logger *lg, ring_auth **out, char *err,
                           size_t errlen)
{
#ifndef HAVE_CRYPTO
    (void)out;
    (void)lg;
    return ring_errf(RING_ERR_UNSUPPORTED, err, errlen,
                     "secret file %s given, but this libring was built without libcrypto", path);
#else
    ring_status st;
    /* O_NONBLOCK: a FIFO would block open() past every deadline; fstat refuses it below. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return ring_errf(RING_ERR_CONFIG, err, errlen, "secret file %s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen, "secret file %s: not a regular file", path);
        goto close_file;
    }
    if (sb.st_mode & 077)
        ring_logf(lg, RING_LOG_WARN, -1, "secret file %s can be read by other users (chmod 600 it)",
                  path);
    ring_auth *a = calloc(1, sizeof *a);
    if (!a) {
        st = ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory");
        goto close_file;
    }
    ssize_t n;
    while ((n = read(fd, a->key + a->len, sizeof a->key - a->len)) > 0)
        a->len += (size_t)n;
    unsigned char extra;
    if (n < 0 || (a->len == sizeof a->key && read(fd, &extra, 1) > 0)) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen, "secret file %s: %s", path,
                       n < 0 ? strerror(errno) : "longer than 4096 bytes");
        goto free_auth;
    }
    while (a->len && (a->key[a->len - 1] == '\n' || a->key[a->len - 1] == '\r'))
        a->len--;
    if (a->len == 0) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen, "secret file %s is empty", path);
        goto free_auth;
    }
    close(fd);
    *out = a;
    return RING_OK;
free_auth:
    ring_auth_free(a);
close_file:
    close(fd);
    return st;
#endif
}

void ring_auth_free(ring_auth *a)
{
    if (!a) return;
#ifdef HAVE_CRYPTO
    OPENSSL_cleanse(a->key, sizeof a->key);
#endif
    free(a);
}

ring_status ring_auth_nonce(unsigned char out[RING_NONCE_BYTES], char *err, size_t errlen)
{
#ifdef HAVE_CRYPTO
    if (RAND_bytes(out, RING_NONCE_BYTES) == 1) return RING_OK;
#else
    (void)out;
#endif
    return ring_errf(RING_ERR_SYSTEM, err, errlen, "no random bytes for a nonce");
}

void ring_auth_mac(const ring_auth *a, int server,
                   const unsigned char hello[RING_HELLO_BYTES + RING_NONCE_BYTES],
                   const unsigned char ns[RING_NONCE_BYTES], unsigned char out[RING_MAC_BYTES])
{
#ifdef HAVE_CRYPTO
    unsigned char msg[16 + RING_HELLO_BYTES + 2 * RING_NONCE_BYTES];
    memcpy(msg, server ? "ring server mac\0" : "ring client mac\0", 16);
    memcpy(msg + 16, hello, RING_HELLO_BYTES + RING_NONCE_BYTES);
    memcpy(msg + 16 + RING_HELLO_BYTES + RING_NONCE_BYTES, ns, RING_NONCE_BYTES);
    unsigned int len = RING_MAC_BYTES;
    if (!HMAC(EVP_sha256(), a->key, (int)a->len, msg, sizeof msg, out, &len))
        memset(out, 0, RING_MAC_BYTES);
#else
    (void)a, (void)server, (void)hello, (void)ns;
    memset(out, 0, RING_MAC_BYTES);
#endif
}

int ring_auth_equal(const unsigned char *a, const unsigned char *b, size_t n)
{
    unsigned char d = 0;
    for (size_t i = 0; i < n; i++)
        d |= a[i] ^ b[i];
    return d == 0;
}
