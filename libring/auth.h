/* SPDX-License-Identifier: MIT */
/* Private: shared-secret authentication (HMAC-SHA256 challenge-response).
 *
 * Client (the connecting side)        Server (the accepting side)
 *   HELLO/CHECKIN, flag AUTH, Nc  ->
 *                                 <-  CHALLENGE, Ns, Ms = HMAC(K, "ring server" | hello | Nc | Ns)
 *   checks Ms; Mc = HMAC(K, "ring client" | hello | Nc | Ns)  ->
 *                                 <-  ACK (or REJECT), after checking Mc
 * Both nonces are fresh (RAND_bytes) on every connection, so a captured exchange replayed
 * later fails (Ns differs), and each side proves the secret to the other. */
#ifndef RING_AUTH_H
#define RING_AUTH_H

#include "ring_private.h"
#include "wire.h"

#define RING_NONCE_BYTES 32
#define RING_MAC_BYTES 32
#define RING_AUTH_SECRET_MAX 4096

typedef struct ring_auth ring_auth;

/* Read the secret from path (1..4096 bytes; trailing newlines dropped). */
ring_status ring_auth_load(const char *path, const ring_logger *lg, ring_auth **out, char *err,
                           size_t errlen);
void ring_auth_free(ring_auth *a);
ring_status ring_auth_nonce(unsigned char out[RING_NONCE_BYTES], char *err, size_t errlen);
/* mac over (label, the client's hello with its nonce, the server's nonce). */
void ring_auth_mac(const ring_auth *a, int server,
                   const unsigned char hello[RING_HELLO_BYTES + RING_NONCE_BYTES],
                   const unsigned char ns[RING_NONCE_BYTES], unsigned char out[RING_MAC_BYTES]);
/* Constant-time comparison; 1 when equal. */
int ring_auth_equal(const unsigned char *a, const unsigned char *b, size_t n);

#endif
