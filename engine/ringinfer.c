/* SPDX-License-Identifier: MIT */
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
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static coll_dtype dtype(eng_elem et)
{
    switch (et) {
    case ENG_ELEM_F16:
        return COLL_F16;
    case ENG_ELEM_BF16:
        return COLL_BF16;
    case ENG_ELEM_I32:
        return COLL_I32;
    default:
        return COLL_F32;
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

/* run or serve: same communicator, different command. */
static int command(int argc, char **argv, const eng_coll *comm)
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

/* --device cpu among run's or serve's options (parsed for real later). */
static int wants_cpu(int argc, char **argv)
{
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--device=cpu")) return 1;
        if (!strcmp(argv[i], "--device") && i + 1 < argc && !strcmp(argv[i + 1], "cpu")) return 1;
    }
    return 0;
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
    coll_params cp;
    coll_params_init(&cp);
    /* The engine's selection counts no GPU for --device cpu: libcoll must not pick NCCL. */
    if (wants_cpu(argc, argv)) cp.visible_devices = 0;
    coll_status cs = coll_comm_create(&cp, &comm, err, sizeof(err));
    if (cs != COLL_OK) {
        fprintf(stderr, "ringinfer: communicator: %s: %s\n", coll_status_str(cs), err);
        return 1;
    }
    /* libcoll takes the engine's device buffers (a model on a GPU sums its partials there on
     * the compute stream: p2p up to its limit, then NCCL or the staged ring); NCCL and p2p
     * are stream-ordered without a host wait, so a CUDA graph may hold them. */
    const char *prov = coll_comm_provider(comm);
    int gpu = coll_comm_device(comm);
    eng_coll ec = {.rank = coll_comm_rank(comm),
                   .size = coll_comm_size(comm),
                   .allreduce = allreduce,
                   .broadcast = broadcast,
                   .device_buffers = gpu >= 0,
                   .ctx = comm,
                   .gpu = gpu,
                   .provider = prov,
                   .graph_bytes = !strcmp(prov, "nccl")    ? SIZE_MAX
                                  : !strcmp(prov, "local") ? SIZE_MAX
                                                           : coll_comm_p2p_max_bytes(comm)};
    int rc = command(argc, argv, &ec);
    if (rc != 0)
        coll_comm_abort(comm); /* peers blocked in a collective fail fast instead of timing out */
    coll_comm_destroy(comm);
    return rc;
}
