/* ringinfer: the engine's command line over libcoll. Every rank runs the same command; the
 * communicator (provider, rank, size) comes from the environment (RING_CONFIG per rank,
 * see docs/SELECTION.md), or a single local rank when nothing is configured. */
#include "../libcoll/coll.h"
#include "eng.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>

static coll_dtype dtype(eng_elem et)
{
    switch (et) {
    case ENG_ELEM_F16: return COLL_F16;
    case ENG_ELEM_BF16: return COLL_BF16;
    case ENG_ELEM_I32: return COLL_I32;
    default: return COLL_F32;
    }
}

/* Host or device buffers alike: libcoll picks the provider from where buf lives. */
static eng_status allreduce(void *ctx, void *buf, size_t count, eng_elem et, eng_mem mem,
                            void *stream)
{
    (void)mem;
    return coll_allreduce(ctx, buf, buf, count, dtype(et), COLL_SUM, stream) == COLL_OK
               ? ENG_OK
               : ENG_ERR_COLL;
}

static eng_status broadcast(void *ctx, void *buf, size_t count, eng_elem et, int root)
{
    return coll_broadcast(ctx, buf, buf, count, dtype(et), root, NULL) == COLL_OK ? ENG_OK
                                                                                   : ENG_ERR_COLL;
}

int main(int argc, char **argv)
{
    /* A closed stdout would lose the text, and a file opened later could take its descriptor. */
    if (fcntl(1, F_GETFD) < 0) {
        fprintf(stderr, "ringinfer: standard output is closed; nowhere to write the text\n");
        return 1;
    }
    /* Help and a missing command need no communicator (and must not wait for peers). */
    int local = argc < 2 || strcmp(argv[1], "run") != 0;
    for (int i = 2; i < argc && !local; i++) local = !strcmp(argv[i], "--help");
    if (local) return eng_cli_main(argc, argv, NULL, stdout, stderr);
    char err[512];
    coll_comm *comm = NULL;
    coll_status cs = coll_comm_create(NULL, &comm, err, sizeof(err));
    if (cs != COLL_OK) {
        fprintf(stderr, "ringinfer: communicator: %s: %s\n", coll_status_str(cs), err);
        return 1;
    }
    eng_coll ec = {.rank = coll_comm_rank(comm),
                   .size = coll_comm_size(comm),
                   .allreduce = allreduce,
                   .broadcast = broadcast,
                   .device_buffers = 0, /* the next issue hands device buffers to NCCL */
                   .ctx = comm};
    int rc = eng_cli_main(argc, argv, &ec, stdout, stderr);
    if (rc != 0)
        coll_comm_abort(comm); /* peers blocked in a collective fail fast instead of timing out */
    coll_comm_destroy(comm);
    return rc;
}
