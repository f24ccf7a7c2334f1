/* SPDX-License-Identifier: MIT */
/* Handshake and op-header encoding: round trips and every rejection. */
#include <stddef.h>
#include <stdint.h>
#include "../check.h"

#include "wire.h"

#include <string.h>

static ring_hello sample(void)
{
    return (ring_hello){.magic = RING_WIRE_MAGIC,
                        .version = RING_WIRE_VERSION,
                        .kind = RING_MSG_HELLO,
                        .world_size = 8,
                        .rank = 5,
                        .job_id = 0x0123456789abcdefull,
                        .reason = 0};
}

static void test_hello_round_trip(void)
{
    ring_hello h = sample(), g;
    unsigned char b[RING_HELLO_BYTES];
    ring_hello_encode(&h, b);
    CHECK(b[0] == (RING_WIRE_MAGIC & 0xff)); /* little-endian on the wire */
    char err[128];
    CHECK(ring_hello_decode(b, sizeof b, &g, err, sizeof err) == RING_OK);
    CHECK(g.rank == 5);
    CHECK(g.world_size == 8);
    CHECK(g.job_id == h.job_id);
    CHECK(g.kind == RING_MSG_HELLO);
}

static void test_hello_rejections(void)
{
    ring_hello h = sample(), g;
    unsigned char b[RING_HELLO_BYTES];
    char err[128];
    ring_hello_encode(&h, b);
    CHECK(ring_hello_decode(b, 10, &g, err, sizeof err) == RING_ERR_PROTOCOL);
    CHECK(strcmp(err, "handshake too short (10 bytes)") == 0);
    b[0] ^= 0xff;
    CHECK(ring_hello_decode(b, sizeof b, &g, err, sizeof err) == RING_ERR_PROTOCOL);
    CHECK_STR(err, "not a ring peer");
    h.version = 9;
    ring_hello_encode(&h, b);
    CHECK(ring_hello_decode(b, sizeof b, &g, err, sizeof err) == RING_ERR_PROTOCOL);
    CHECK_STR(err, "protocol version 9");
    h = sample();
    h.kind = 77;
    ring_hello_encode(&h, b);
    CHECK(ring_hello_decode(b, sizeof b, &g, err, sizeof err) == RING_ERR_PROTOCOL);
    CHECK_STR(err, "unknown handshake message 77");
}

static void test_op_header(void)
{
    ring_op_header h = {.magic = RING_WIRE_MAGIC,
                        .coll = 2,
                        .dtype = RING_BF16,
                        .op = RING_MAX,
                        .flags = 0,
                        .seq = 1ull << 40,
                        .count = 1048579,
                        .root = 3},
                   g;
    unsigned char b[RING_OP_HEADER_BYTES];
    ring_op_header_encode(&h, b);
    ring_op_header_decode(b, &g);
    CHECK(g.magic == h.magic && g.coll == h.coll && g.dtype == h.dtype && g.op == h.op);
    CHECK(g.seq == h.seq && g.count == h.count && g.root == h.root && g.flags == h.flags);
}

int main(void)
{
    test_hello_round_trip();
    test_hello_rejections();
    test_op_header();
    TEST_DONE();
}
