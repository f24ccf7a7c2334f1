/* ringinfer: the engine's command line over libcoll. Every rank runs the same command; the
 * communicator (provider, rank, size) comes from the environment (RING_CONFIG per rank,
 * see docs/SELECTION.md), or a single local rank when nothing is configured. */
#include <config.h>

#include "../libcoll/coll.h"
#include "eng.h"
#ifdef HAVE_MICROHTTPD
#include "server/serve.h"
#endif

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

static eng_status allreduce(void *ctx, float *buf, size_t count)
{
    return coll_allreduce(ctx, buf, buf, count, COLL_F32, COLL_SUM, NULL) == COLL_OK ? ENG_OK
                                                                                     : ENG_ERR_COLL;
}

static eng_status broadcast_i32(void *ctx, int32_t *buf, size_t count, int root)
{
    return coll_broadcast(ctx, buf, buf, count, COLL_I32, root, NULL) == COLL_OK ? ENG_OK
                                                                                 : ENG_ERR_COLL;
}

/* run or serve: same communicator, different command. */
static int command(int argc, char **argv, const eng_comm *comm)
{
    if (argc < 2 || strcmp(argv[1], "serve")) return eng_cli_main(argc, argv, comm, stdout, stderr);
#ifdef HAVE_MICROHTTPD
    return eng_serve_main(argc, argv, comm, stdout, stderr);
#else
    (void)comm;
    fprintf(stderr, "ringinfer: serve: this build has no HTTP support (configure did not find "
                    "libmicrohttpd; install libmicrohttpd-dev and reconfigure)\n");
    return 2;
#endif
}

int main(int argc, char **argv)
{
    /* A closed stdout would lose the text, and a file opened later could take its descriptor. */
    if (fcntl(1, F_GETFD) < 0) {
        fprintf(stderr, "ringinfer: standard output is closed; nowhere to write the text\n");
        return 1;
    }
    /* Help and a missing command need no communicator (and must not wait for peers). */
    int local = argc < 2 || (strcmp(argv[1], "run") != 0 && strcmp(argv[1], "serve") != 0);
    for (int i = 2; i < argc && !local; i++)
        local = !strcmp(argv[i], "--help");
    if (local) return command(argc, argv, NULL);
    /* serve takes SIGTERM/SIGINT in its step loop: block them before libcoll starts threads. */
    sigset_t term;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    sigaddset(&term, SIGINT);
    if (!strcmp(argv[1], "serve")) pthread_sigmask(SIG_BLOCK, &term, NULL);
    char err[512];
    coll_comm *comm = NULL;
    coll_status cs = coll_comm_create(NULL, &comm, err, sizeof(err));
    if (cs != COLL_OK) {
        fprintf(stderr, "ringinfer: communicator: %s: %s\n", coll_status_str(cs), err);
        return 1;
    }
    eng_comm ec = {.rank = coll_comm_rank(comm),
                   .size = coll_comm_size(comm),
                   .allreduce = allreduce,
                   .broadcast_i32 = broadcast_i32,
                   .ctx = comm};
    int rc = command(argc, argv, &ec);
    if (rc != 0)
        coll_comm_abort(comm); /* peers blocked in a collective fail fast instead of timing out */
    coll_comm_destroy(comm);
    return rc;
}
