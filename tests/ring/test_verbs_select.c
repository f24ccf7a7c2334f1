/* SPDX-License-Identifier: MIT */
/* Transport selection: RING_TRANSPORT and the config's "transport", and the errors when
 * verbs is asked for and no usable device exists. Runs on any host: where RDMA devices
 * exist, only the cases that cannot find one are checked against their messages. */
#include "config.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../check.h"

#ifdef HAVE_VERBS
#include <infiniband/verbs.h>

#include "verbs_wire.h" /* libring-private: the set-up message */
#endif

#include "ring.h"

/* Devices on this host (0 when the library has no verbs at all). */
static int host_devices(void)
{
#ifdef HAVE_VERBS
    int n = 0;
    struct ibv_device **l = ibv_get_device_list(&n);
    if (l) ibv_free_device_list(l);
    return l ? n : 0;
#else
    return 0;
#endif
}

/* Create a one-rank communicator (no sockets) with the given config transport. */
static ring_status create(ring_transport_kind kind, char *err, size_t errlen)
{
    ring_config cfg;
    ring_config_init(&cfg);
    cfg.world_size = 1;
    cfg.rank = 0;
    cfg.transport = kind;
    ring_params p;
    ring_params_init(&p);
    p.config = &cfg;
    ring_comm *c = NULL;
    err[0] = 0;
    ring_status st = ring_comm_create(&p, &c, err, errlen);
    if (st == RING_OK) ring_comm_destroy(c);
    return st;
}

static void clear_env(void)
{
    unsetenv("RING_TRANSPORT");
    unsetenv("RING_IB_DEVICE");
    unsetenv("RING_IB_PORT");
    unsetenv("RING_IB_GID_INDEX");
}

/* Each selection test starts from a clean environment. */
static void reset(void)
{
    clear_env();
}

static void missing_device_is_named(void)
{
    char err[512];
    setenv("RING_TRANSPORT", "verbs", 1);
    setenv("RING_IB_DEVICE", "ringcoll_no_such_dev", 1);
    CHECK(create(RING_TRANSPORT_TCP, err, sizeof err) == RING_ERR_UNSUPPORTED);
    printf("# %s\n", err);
#ifdef HAVE_VERBS
    CHECK_STR(err, "transport \"verbs\" asked for by RING_TRANSPORT");
    CHECK_STR(err, "RING_IB_DEVICE=ringcoll_no_such_dev not found (devices seen: ");
#else
    CHECK_STR(err, "built without verbs");
#endif
}

static void verbs_without_device_fails_clearly(void)
{
    if (host_devices() > 0) { /* this host has a device: nothing to fail on */
        printf("# skipped: this host has an RDMA device\n");
        return;
    }
    char err[512];
    CHECK(create(RING_TRANSPORT_VERBS, err, sizeof err) == RING_ERR_UNSUPPORTED);
    printf("# %s\n", err);
    CHECK_STR(err, "transport \"verbs\" asked for by the config's \"transport\"");
#ifdef HAVE_VERBS
    CHECK_STR(err, "no RDMA device found (devices seen: none");
#endif
}

static void auto_falls_back_to_tcp(void)
{
    char err[512];
    setenv("RING_IB_DEVICE", "ringcoll_no_such_dev", 1); /* no device can match */
    CHECK(create(RING_TRANSPORT_AUTO, err, sizeof err) == RING_OK);
    setenv("RING_TRANSPORT", "auto", 1);
    CHECK(create(RING_TRANSPORT_VERBS, err, sizeof err) == RING_OK);
}

static void knob_overrides_config(void)
{
    char err[512];
    setenv("RING_TRANSPORT", "tcp", 1);
    CHECK(create(RING_TRANSPORT_VERBS, err, sizeof err) == RING_OK);
}

static void bad_knob_is_rejected(void)
{
    char err[512];
    setenv("RING_TRANSPORT", "infiniband", 1);
    CHECK(create(RING_TRANSPORT_TCP, err, sizeof err) == RING_ERR_CONFIG);
    CHECK(strcmp(err, "RING_TRANSPORT: expected tcp, shm, verbs or auto, got 'infiniband'") == 0);
}

static void knobs_are_declared(void)
{
    const char *want[] = {"RING_TRANSPORT", "RING_IB_DEVICE", "RING_IB_PORT", "RING_IB_GID_INDEX"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int found = 0;
        for (const ring_knob *k = ring_knobs(); k->name; k++)
            found |= strcmp(k->name, want[i]) == 0;
        CHECK(found);
    }
}

#ifdef HAVE_VERBS
/* The set-up message: a round trip, and what a peer must not be able to slip through. */
static void wire_round_trip_and_rejects(void)
{
    vb_local a = {.qpn = 0x123456,
                  .psn = 0xabcdef,
                  .lid = 7,
                  .mtu = IBV_MTU_4096,
                  .roce = 1,
                  .addr = 0x7f0011223344ull,
                  .rkey = 0xdeadbeef,
                  .slots = VB_SLOTS,
                  .slot_bytes = VB_SLOT_BYTES};
    for (int i = 0; i < 16; i++)
        a.gid.raw[i] = (uint8_t)(i * 17);
    unsigned char m[VB_WIRE_BYTES];
    vb_wire_encode(&a, m);
    vb_local b;
    char why[200];
    CHECK(vb_wire_decode(m, &b, why, sizeof why) == 0);
    CHECK(b.qpn == a.qpn);
    CHECK(b.psn == a.psn);
    CHECK(b.lid == a.lid);
    CHECK(b.mtu == a.mtu);
    CHECK(b.roce == 1);
    CHECK(memcmp(b.gid.raw, a.gid.raw, 16) == 0);
    CHECK(b.addr == a.addr);
    CHECK(b.rkey == a.rkey);
    CHECK(b.slots == VB_SLOTS);
    CHECK(b.slot_bytes == VB_SLOT_BYTES);

    unsigned char bad[VB_WIRE_BYTES];
    memcpy(bad, m, sizeof bad);
    bad[0] ^= 1; /* a TCP-transport peer's op header, or garbage */
    CHECK(vb_wire_decode(bad, &b, why, sizeof why) == -1);
    CHECK_STR(why, "magic");
    memcpy(bad, m, sizeof bad);
    bad[14] = 9; /* no such MTU */
    CHECK(vb_wire_decode(bad, &b, why, sizeof why) == -1);
    memcpy(bad, m, sizeof bad);
    bad[7] = 1; /* QP numbers are 24 bits */
    CHECK(vb_wire_decode(bad, &b, why, sizeof why) == -1);
    CHECK_STR(why, "out-of-range");
}
#endif

int main(void)
{
    reset();
    missing_device_is_named();
    reset();
    verbs_without_device_fails_clearly();
    reset();
    auto_falls_back_to_tcp();
    reset();
    knob_overrides_config();
    reset();
    bad_knob_is_rejected();
    reset();
    knobs_are_declared();
#ifdef HAVE_VERBS
    wire_round_trip_and_rejects();
#endif
    TEST_DONE();
}
