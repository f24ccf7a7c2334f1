/* SPDX-License-Identifier: MIT */
/* Private to the verbs transport: its constants and the queue pair details each side
 * sends over the bootstrap socket (fixed layout, little-endian). */
#ifndef RING_VERBS_WIRE_H
#define RING_VERBS_WIRE_H

#include <infiniband/verbs.h>
#include <stddef.h>
#include <stdint.h>

#define VB_SLOTS 16                  /* bounce slots per direction and connection */
#define VB_SLOT_BYTES (128u * 1024u) /* bytes per slot: one RDMA write at most */
#define VB_WIRE_MAGIC 0x52564231u    /* "RVB1" */
#define VB_WIRE_BYTES 64

typedef struct vb_local {
    uint32_t qpn, psn; /* queue pair number, first packet sequence number (24 bits) */
    uint16_t lid;      /* InfiniBand: the port's LID; RoCE: 0 */
    uint8_t mtu;       /* enum ibv_mtu of the port */
    uint8_t roce;      /* 1: Ethernet link layer, a GRH with the GID is required */
    union ibv_gid gid;
    uint64_t addr; /* where the receive slots start, in the sender's rkey */
    uint32_t rkey;
    uint32_t slots, slot_bytes;
} vb_local;

void vb_wire_encode(const vb_local *l, unsigned char out[VB_WIRE_BYTES]);
/* 0 on success; -1 with a reason in why. */
int vb_wire_decode(const unsigned char in[VB_WIRE_BYTES], vb_local *l, char *why, size_t whylen);

#endif
