/* SPDX-License-Identifier: MIT */
/* Encoding and decoding of handshake and per-collective headers. */
#include "wire.h"
#include "ring_private.h"

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}
static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)p[i] << (8 * i);
    return v;
}
static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void ring_hello_encode(const ring_hello *h, unsigned char out[RING_HELLO_BYTES])
{
    put32(out, h->magic);
    out[4] = (unsigned char)h->version;
    out[5] = (unsigned char)(h->version >> 8);
    out[6] = (unsigned char)h->kind;
    out[7] = (unsigned char)(h->kind >> 8);
    put32(out + 8, h->world_size);
    put32(out + 12, h->rank);
    put64(out + 16, h->job_id);
    put32(out + 24, h->reason);
}

ring_status ring_hello_decode(const unsigned char *in, size_t len, ring_hello *h, char *err,
                              size_t errlen)
{
    if (len < RING_HELLO_BYTES)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen, "handshake too short (%zu bytes)", len);
    h->magic = get32(in);
    h->version = (uint16_t)(in[4] | in[5] << 8);
    h->kind = (uint16_t)(in[6] | in[7] << 8);
    h->world_size = get32(in + 8);
    h->rank = get32(in + 12);
    h->job_id = get64(in + 16);
    h->reason = get32(in + 24);
    if (h->magic != RING_WIRE_MAGIC)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen, "not a ring peer (magic 0x%08x)",
                         h->magic);
    if (h->version != RING_WIRE_VERSION)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen, "protocol version %u, we speak %u",
                         h->version, RING_WIRE_VERSION);
    if (h->kind < RING_MSG_HELLO || h->kind > RING_MSG_CHALLENGE)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen, "unknown handshake message %u", h->kind);
    return RING_OK;
}

const char *ring_reject_str(uint32_t reason)
{
    switch (RING_REJECT_CODE(reason)) {
    case RING_REJECT_JOB:
        return "job identity differs (a process of another ring?)";
    case RING_REJECT_WORLD:
        return "world size differs";
    case RING_REJECT_RANK:
        return "not the rank expected on this port";
    case RING_REJECT_DUPLICATE:
        return "this rank already checked in";
    case RING_REJECT_KIND:
        return "unexpected handshake message";
    case RING_REJECT_AUTH:
        return "authentication failed (shared secret missing or different)";
    case RING_REJECT_STREAMS:
        return "TCP streams per connection differ (RING_TCP_STREAMS)";
    case RING_REJECT_SELF:
        return "it is this rank itself: right_ip:right_port name this rank's own port, not its "
               "right "
               "neighbour's";
    default:
        return "refused";
    }
}

void ring_op_header_encode(const ring_op_header *h, unsigned char out[RING_OP_HEADER_BYTES])
{
    put32(out, h->magic);
    out[4] = h->coll;
    out[5] = h->dtype;
    out[6] = h->op;
    out[7] = h->flags;
    put64(out + 8, h->seq);
    put64(out + 16, h->count);
    put32(out + 24, (uint32_t)h->root);
}

void ring_op_header_decode(const unsigned char in[RING_OP_HEADER_BYTES], ring_op_header *h)
{
    h->magic = get32(in);
    h->coll = in[4];
    h->dtype = in[5];
    h->op = in[6];
    h->flags = in[7];
    h->seq = get64(in + 8);
    h->count = get64(in + 16);
    h->root = (int32_t)get32(in + 24);
}

void ring_seg_encode(const ring_seg_header *h, unsigned char out[RING_SEG_HEADER_BYTES])
{
    put32(out, RING_SEG_MAGIC);
    out[4] = h->coll;
    out[5] = h->dtype;
    out[6] = h->op;
    out[7] = h->flags;
    put32(out + 8, h->seq);
    out[12] = (unsigned char)h->step;
    out[13] = (unsigned char)(h->step >> 8);
    out[14] = out[15] = 0;
    put64(out + 16, h->count);
    put64(out + 24, h->offset);
    put32(out + 32, h->len);
    put32(out + 36, h->crc);
}

ring_status ring_seg_decode(const unsigned char *in, size_t len, ring_seg_header *h, char *err,
                            size_t errlen)
{
    if (len < RING_SEG_HEADER_BYTES)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen, "segment header too short (%zu bytes)",
                         len);
    uint32_t magic = get32(in);
    if (magic != RING_SEG_MAGIC)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen, "not a segment header (magic 0x%08x)",
                         magic);
    if (in[14] || in[15] || (in[7] & ~RING_SEG_FLAG_CRC))
        return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                         "segment header with unknown flags or reserved bits set");
    h->coll = in[4];
    h->dtype = in[5];
    h->op = in[6];
    h->flags = in[7];
    h->seq = get32(in + 8);
    h->step = (uint16_t)(in[12] | in[13] << 8);
    h->count = get64(in + 16);
    h->offset = get64(in + 24);
    h->len = get32(in + 32);
    h->crc = get32(in + 36);
    return RING_OK;
}
