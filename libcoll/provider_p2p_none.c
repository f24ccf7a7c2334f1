/* SPDX-License-Identifier: MIT */
/* The "p2p" provider of a build without CUDA: there are no device buffers, so it never has
 * work; every call passes to the next provider. */
#include "coll_private.h"

static coll_status p2p_none(coll_comm *comm, void **state, char *err, size_t errlen)
{
    (void)comm;
    (void)err;
    (void)errlen;
    *state = NULL;
    return COLL_OK;
}
static coll_status p2p_unsupported(void *state, const coll_call *c, char *err, size_t errlen)
{
    (void)state;
    (void)c;
    return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "p2p: built without CUDA");
}
size_t coll_comm_p2p_max_bytes(const coll_comm *c)
{
    (void)c;
    return 0;
}
const coll_provider coll_provider_p2p = {
    .name = "p2p",
    .create = p2p_none,
    .call = p2p_unsupported,
    .late = 1,
};
