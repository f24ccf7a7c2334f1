/* SPDX-License-Identifier: MIT */
/* Shared by the ring providers (host and device buffers). */
#ifndef COLL_PROVIDER_RING_H
#define COLL_PROVIDER_RING_H
#include "coll_private.h"
#include "ring.h"

coll_status coll_ring_status(ring_status rs);
/* Run c's collective on host buffers send/recv with this count. */
coll_status coll_ring_op(ring_comm *rc, const coll_call *c, const void *send, void *recv,
                         size_t count, char *err, size_t errlen);
#endif
