/* SPDX-License-Identifier: MIT */
/* Finding a usable verbs device, port and GID: an active port, and on RoCE a GID of the
 * right type (a GRH is mandatory there), on InfiniBand a LID from the subnet manager. */
#include "ring_private.h"

#include <errno.h>
#include <infiniband/verbs.h>
#include <stdio.h>
#include <string.h>

/* Append one formatted note to a bounded buffer (a truncated list is still useful). */
static void note(char *buf, size_t cap, const char *fmt, const char *dev, int port,
                 const char *what)
{
    size_t n = strlen(buf);
    if (n + 4 >= cap) return;
    snprintf(buf + n, cap - n, fmt, n ? "; " : "", dev, port, what);
}

static int gid_is_zero(const union ibv_gid *g)
{
    static const unsigned char zero[16];
    return memcmp(g->raw, zero, sizeof zero) == 0;
}

/* An IPv4-mapped GID (::ffff:a.b.c.d) is what routable RoCE v2 traffic uses. */
static int gid_is_v4_mapped(const union ibv_gid *g)
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(g->raw, prefix, sizeof prefix) == 0;
}

/* RoCE: RoCE v2 with an IPv4-mapped address first, then any RoCE v2, then any valid GID. */
static int pick_roce_gid(struct ibv_context *ctx, int port, int table_len)
{
    int v2 = -1, any = -1;
    for (int i = 0; i < table_len; i++) {
        struct ibv_gid_entry e;
        if (ibv_query_gid_ex(ctx, (uint32_t)port, (uint32_t)i, &e, 0) != 0) continue;
        if (gid_is_zero(&e.gid)) continue;
        if (e.gid_type == IBV_GID_TYPE_ROCE_V2) {
            if (gid_is_v4_mapped(&e.gid)) return i;
            if (v2 < 0) v2 = i;
        }
        if (any < 0) any = i;
    }
    return v2 >= 0 ? v2 : any;
}

/* Check one port; on success fill out and return 1, else add a note saying why not. */
static int try_port(struct ibv_context *ctx, const char *dev, int port, int want_gid,
                    ring_tp_opts *out, char *notes, size_t cap)
{
    struct ibv_port_attr pa;
    if (ibv_query_port(ctx, (uint8_t)port, &pa) != 0) {
        note(notes, cap, "%s%s port %d: %s", dev, port, "cannot be queried");
        return 0;
    }
    if (pa.state != IBV_PORT_ACTIVE) {
        note(notes, cap, "%s%s port %d: %s", dev, port, ibv_port_state_str(pa.state));
        return 0;
    }
    int roce = pa.link_layer == IBV_LINK_LAYER_ETHERNET;
    int gid = want_gid;
    if (gid >= pa.gid_tbl_len) {
        note(notes, cap, "%s%s port %d: %s", dev, port, "RING_IB_GID_INDEX is past its GID table");
        return 0;
    }
    if (gid >= 0) {
        union ibv_gid g;
        if (ibv_query_gid(ctx, (uint8_t)port, gid, &g) != 0 || gid_is_zero(&g)) {
            note(notes, cap, "%s%s port %d: %s", dev, port, "RING_IB_GID_INDEX names an empty GID");
            return 0;
        }
    } else if (roce) {
        gid = pick_roce_gid(ctx, port, pa.gid_tbl_len);
        if (gid < 0) {
            note(notes, cap, "%s%s port %d: %s", dev, port,
                 "RoCE port without any GID (no IP address?)");
            return 0;
        }
    } else {
        gid = 0;
        if (pa.lid == 0) {
            note(notes, cap, "%s%s port %d: %s", dev, port,
                 "InfiniBand port without a LID (no subnet manager?)");
            return 0;
        }
    }
    snprintf(out->ib_device, sizeof out->ib_device, "%s", dev);
    out->ib_port = port;
    out->ib_gid_index = gid;
    out->ib_roce = roce;
    return 1;
}

ring_status ring_verbs_probe(const char *want_device, int want_port, int want_gid_index,
                             ring_tp_opts *out, char *err, size_t errlen)
{
    int n = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    if (!list || n == 0) {
        int e = errno;
        if (list) ibv_free_device_list(list);
        const char *why = list          ? ""
                          : e == ENOSYS ? "; this kernel has no RDMA support"
                                        : "; cannot list devices";
        if (want_device)
            return ring_errf(RING_ERR_UNSUPPORTED, err, errlen,
                             "RING_IB_DEVICE=%s not found (devices seen: none%s)", want_device,
                             why);
        return ring_errf(RING_ERR_UNSUPPORTED, err, errlen,
                         "no RDMA device found (devices seen: none%s)", why);
    }
    char seen[256] = "", notes[512] = "";
    int found_wanted = 0, ok = 0;
    for (int i = 0; i < n && !ok; i++) {
        const char *name = ibv_get_device_name(list[i]);
        size_t k = strlen(seen);
        if (k + 2 < sizeof seen) snprintf(seen + k, sizeof seen - k, "%s%s", k ? ", " : "", name);
        if (want_device && strcmp(want_device, name) != 0) continue;
        found_wanted = 1;
        struct ibv_context *ctx = ibv_open_device(list[i]);
        if (!ctx) {
            note(notes, sizeof notes, "%s%s port %d: %s", name, 0, "cannot be opened");
            continue;
        }
        struct ibv_device_attr da;
        if (ibv_query_device(ctx, &da) != 0) {
            note(notes, sizeof notes, "%s%s port %d: %s", name, 0, "cannot be queried");
        } else {
            for (int p = 1; p <= da.phys_port_cnt && !ok; p++)
                if (!want_port || p == want_port)
                    ok = try_port(ctx, name, p, want_gid_index, out, notes, sizeof notes);
            if (want_port > da.phys_port_cnt)
                note(notes, sizeof notes, "%s%s port %d: %s", name, want_port,
                     "no such port (RING_IB_PORT)");
        }
        ibv_close_device(ctx);
    }
    ibv_free_device_list(list);
    if (ok) return RING_OK;
    if (want_device && !found_wanted)
        return ring_errf(RING_ERR_UNSUPPORTED, err, errlen,
                         "RING_IB_DEVICE=%s not found (devices seen: %s)", want_device, seen);
    return ring_errf(RING_ERR_UNSUPPORTED, err, errlen,
                     "no usable RDMA port (devices seen: %s; %s)", seen, notes);
}
