/* SPDX-License-Identifier: MIT */
/* Handshake and op-header encoding: round trips and every rejection. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

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

static void test_hello_round_trip(void **state)
{
    (void)state;
    ring_hello h = sample(), g;
    unsigned char b[RING_HELLO_BYTES];
    ring_hello_encode(&h, b);
    assert_int_equal(b[0], RING_WIRE_MAGIC & 0xff); /* little-endian on the wire */
    char err[128];
    assert_int_equal(ring_hello_decode(b, sizeof b, &g, err, sizeof err), RING_OK);
    assert_int_equal(g.rank, 5);
    assert_int_equal(g.world_size, 8);
    assert_true(g.job_id == h.job_id);
    assert_int_equal(g.kind, RING_MSG_HELLO);
}

static void test_hello_rejections(void **state)
{
    (void)state;
    ring_hello h = sample(), g;
    unsigned char b[RING_HELLO_BYTES];
    char err[128];
    ring_hello_encode(&h, b);
    assert_int_equal(ring_hello_decode(b, 10, &g, err, sizeof err), RING_ERR_PROTOCOL);
    assert_string_equal(err, "handshake too short (10 bytes)");
    b[0] ^= 0xff;
    assert_int_equal(ring_hello_decode(b, sizeof b, &g, err, sizeof err), RING_ERR_PROTOCOL);
    assert_non_null(strstr(err, "not a ring peer"));
    h.version = 9;
    ring_hello_encode(&h, b);
    assert_int_equal(ring_hello_decode(b, sizeof b, &g, err, sizeof err), RING_ERR_PROTOCOL);
    assert_non_null(strstr(err, "protocol version 9"));
    h = sample();
    h.kind = 77;
    ring_hello_encode(&h, b);
    assert_int_equal(ring_hello_decode(b, sizeof b, &g, err, sizeof err), RING_ERR_PROTOCOL);
    assert_non_null(strstr(err, "unknown handshake message 77"));
}

static void test_op_header(void **state)
{
    (void)state;
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
    assert_true(g.magic == h.magic && g.coll == h.coll && g.dtype == h.dtype && g.op == h.op);
    assert_true(g.seq == h.seq && g.count == h.count && g.root == h.root && g.flags == h.flags);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_round_trip),
        cmocka_unit_test(test_hello_rejections),
        cmocka_unit_test(test_op_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
