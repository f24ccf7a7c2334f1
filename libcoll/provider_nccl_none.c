/* SPDX-License-Identifier: MIT */
/* The NCCL provider of a build without NCCL (libcoll/Makefile.am picks this file instead of
 * provider_nccl.c): it refuses, so the chain tries the next provider. */
#include "coll_private.h"

static coll_status nccl_none(coll_comm *comm, void **state, char *err, size_t errlen)
{
    (void)comm;
    (void)state;
    return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "built without NCCL");
}

const coll_provider coll_provider_nccl = {.name = "nccl", .create = nccl_none};
