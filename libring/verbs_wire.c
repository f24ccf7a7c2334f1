/* SPDX-License-Identifier: MIT */
/* Encoding of the verbs transport's set-up message. */
#include "verbs_wire.h"

#include <stdio.h>
#include <string.h>

static void put(unsigned char *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t get(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

void vb_wire_encode(const vb_local *l, unsigned char out[VB_WIRE_BYTES])
{
    memset(out, 0, VB_WIRE_BYTES);
    put(out + 0, VB_WIRE_MAGIC, 4);
    put(out + 4, l->qpn, 4);
    put(out + 8, l->psn, 4);
    put(out + 12, l->lid, 2);
    out[14] = l->mtu;
    out[15] = l->roce;
    memcpy(out + 16, l->gid.raw, 16);
    put(out + 32, l->addr, 8);
    put(out + 40, l->rkey, 4);
    put(out + 44, l->slots, 4);
    put(out + 48, l->slot_bytes, 4);
}

int vb_wire_decode(const unsigned char in[VB_WIRE_BYTES], vb_local *l, char *why, size_t whylen)
{
    uint32_t magic = (uint32_t)get(in, 4);
    if (magic != VB_WIRE_MAGIC) {
        snprintf(why, whylen,
                 "magic 0x%08x, expected 0x%08x (is the peer using the verbs transport?)", magic,
                 VB_WIRE_MAGIC);
        return -1;
    }
    l->qpn = (uint32_t)get(in + 4, 4);
    l->psn = (uint32_t)get(in + 8, 4);
    l->lid = (uint16_t)get(in + 12, 2);
    l->mtu = in[14];
    l->roce = in[15];
    memcpy(l->gid.raw, in + 16, 16);
    l->addr = get(in + 32, 8);
    l->rkey = (uint32_t)get(in + 40, 4);
    l->slots = (uint32_t)get(in + 44, 4);
    l->slot_bytes = (uint32_t)get(in + 48, 4);
    if (l->qpn == 0 || l->qpn > 0xffffff || l->psn > 0xffffff || l->mtu < IBV_MTU_256 ||
        l->mtu > IBV_MTU_4096 || l->roce > 1) {
        snprintf(why, whylen, "out-of-range field (qpn %u, psn %u, mtu %u, roce %u)", l->qpn,
                 l->psn, l->mtu, l->roce);
        return -1;
    }
    return 0;
}
