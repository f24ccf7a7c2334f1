/* SPDX-License-Identifier: MIT */
/* The ring provider of a build without libring (configure --without-ring; libcoll/Makefile.am
 * picks this file instead of provider_ring.c): it refuses, so the chain tries the next one. */
#include "coll_private.h"

static coll_status ring_none(coll_comm *comm, void **state, char *err, size_t errlen)
{
    (void)comm;
    (void)state;
    return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "built without the ring (--without-ring)");
}

const coll_provider coll_provider_ring = {.name = "ring", .create = ring_none};
