/* SPDX-License-Identifier: MIT */
/* Private: what goes on the wire, encoded little-endian byte by byte (no struct casts). */
#ifndef RING_WIRE_H
#define RING_WIRE_H

#include "ring.h"

#include <stdint.h>

#define RING_WIRE_MAGIC 0x52474e52u /* "RNGR" */
#define RING_WIRE_VERSION 1

/* Handshake messages. */
typedef enum {
    RING_MSG_HELLO = 1,   /* ring neighbour: "I am your left neighbour" */
    RING_MSG_CHECKIN = 2, /* a rank checking in with the master */
    RING_MSG_ACK = 3,
    RING_MSG_REJECT = 4,
    RING_MSG_GO = 5, /* master: everyone is here */
    /* Control messages on the master connections once the ring is up (ctrl.c). */
    RING_MSG_PING = 6,      /* heartbeat: "I am alive" */
    RING_MSG_FAIL = 7,      /* rank = reporter, reason = status | (suspect + 1) << 16 */
    RING_MSG_BYE = 8,       /* orderly destroy: my silence from now on is not a failure */
    RING_MSG_CHALLENGE = 9, /* server's nonce and proof follow (auth.h) */
} ring_msg_kind;

/* Handshake flags, carried in the reason field of HELLO and CHECKIN. */
#define RING_HELLO_FLAG_AUTH 1u /* a 32-byte nonce follows; HMAC challenge-response */
/* HELLO only: bits 8..15 hold the TCP streams per neighbour connection minus 1, bits
 * 16..23 which stream this connection is. One stream encodes as 0, as older peers send.
 * A REJECT for RING_REJECT_STREAMS carries the server's count the same way. */
#define RING_HELLO_MAX_STREAMS 256
static inline uint32_t ring_hello_streams_bits(int streams, int index)
{
    return (uint32_t)(streams - 1) << 8 | (uint32_t)index << 16;
}
static inline int ring_hello_streams(uint32_t reason)
{
    return (int)((reason >> 8) & 0xff) + 1;
}
static inline int ring_hello_stream_index(uint32_t reason)
{
    return (int)((reason >> 16) & 0xff);
}
#define RING_REJECT_CODE(reason) ((reason)&0xffu)

typedef enum {
    RING_REJECT_NONE = 0,
    RING_REJECT_JOB = 1,   /* another job's process */
    RING_REJECT_WORLD = 2, /* world size differs */
    RING_REJECT_RANK = 3,  /* not the rank expected on this port */
    RING_REJECT_DUPLICATE = 4,
    RING_REJECT_KIND = 5,
    RING_REJECT_AUTH = 6,    /* secret missing on one side, or proof wrong */
    RING_REJECT_STREAMS = 7, /* TCP streams per connection differ (or a bad stream index) */
    RING_REJECT_SELF = 8,    /* the rank reached its own port (right_ip:right_port names itself) */
} ring_reject_reason;

typedef struct ring_hello {
    uint32_t magic;
    uint16_t version;
    uint16_t kind;
    uint32_t world_size;
    uint32_t rank;
    uint64_t job_id;
    uint32_t reason; /* for REJECT */
} ring_hello;

#define RING_HELLO_BYTES 28

void ring_hello_encode(const ring_hello *h, unsigned char out[RING_HELLO_BYTES]);
/* Checks magic and version; fills *h. One-line message on failure. */
ring_status ring_hello_decode(const unsigned char *in, size_t len, ring_hello *h, char *err,
                              size_t errlen);
const char *ring_reject_str(uint32_t reason);

/* Sent ahead of each collective's data so that ranks that disagree fail cleanly. */
typedef struct ring_op_header {
    uint32_t magic;
    uint8_t coll, dtype, op, flags;
    uint64_t seq;
    uint64_t count;
    int32_t root;
} ring_op_header;

#define RING_OP_HEADER_BYTES 28

void ring_op_header_encode(const ring_op_header *h, unsigned char out[RING_OP_HEADER_BYTES]);
void ring_op_header_decode(const unsigned char in[RING_OP_HEADER_BYTES], ring_op_header *h);

/* Ahead of every data segment: what the sender thinks it sends. The receiver checks it
 * against what it expects at that point of the stream (wire integrity). */
#define RING_SEG_MAGIC 0x47455352u /* "RSEG" */
#define RING_SEG_FLAG_CRC 1u       /* crc holds the CRC32C of the payload */
#define RING_SEG_HEADER_BYTES 40

typedef struct ring_seg_header {
    uint8_t coll, dtype, op, flags;
    uint32_t seq;    /* low 32 bits of the collective's sequence number */
    uint16_t step;   /* schedule step */
    uint64_t count;  /* the collective's count */
    uint64_t offset; /* byte offset of the segment within the step's chunk */
    uint32_t len;    /* payload bytes that follow */
    uint32_t crc;    /* CRC32C of the payload when RING_SEG_FLAG_CRC */
} ring_seg_header;

void ring_seg_encode(const ring_seg_header *h, unsigned char out[RING_SEG_HEADER_BYTES]);
/* Checks magic, reserved bits and flags; fills *h. One-line message on failure. */
ring_status ring_seg_decode(const unsigned char *in, size_t len, ring_seg_header *h, char *err,
                            size_t errlen);

/* CRC32C (Castagnoli), SSE4.2 when the CPU has it, a table otherwise. crc starts at 0. */
uint32_t ring_crc32c(uint32_t crc, const void *buf, size_t len);

#endif
