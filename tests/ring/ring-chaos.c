/* SPDX-License-Identifier: MIT */
/* ring-chaos: one rank of the failure tests (tests/ring_kill.py and friends).
 *
 * Creates the communicator from RING_CONFIG, prints "READY <rank>", then runs checked
 * all-reduces in a loop. On the first failure it prints
 *   "STATUS <rank> <RING_ERR_NAME> <CLOCK_REALTIME ms> <message>"
 * and checks that the communicator now refuses every call with RING_ERR_FAILED.
 * SIGTERM and SIGINT call ring_comm_abort() (async-signal-safe).
 *
 *   ring-chaos [--iters N] [--count C] [--mismatch RANK:WHAT] [--sleep-ms M] [--abort-at-start R]
 *     --iters N      stop after N all-reduces (0: until failure)
 *     --count C      elements per all-reduce (alternates with C/64+1 for the latency path)
 *     --mismatch R:W rank R calls with a different count (W=count), type (W=type),
 *                    op (W=op) or collective (W=coll) at iteration 3
 *     --abort-at-start R  rank R calls ring_comm_abort() and destroy before any collective (as
 *                    a program failing at start-up does), prints "ABORTED_AT_START" and exits 3
 * Exit: 0 all iterations right, 3 a collective failed (see STATUS), 1 wrong data or setup. */
#include "ring.h"

#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The handler reaches the communicator through this one pointer (set before the
 * handler is installed, never changed after). */
static ring_comm *volatile the_comm;

static void on_signal(int sig)
{
    (void)sig;
    if (the_comm) ring_comm_abort(the_comm);
}

static long long realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int report(ring_comm *c, ring_status st)
{
    printf("STATUS %d %s %lld %s\n", ring_comm_rank(c), ring_status_name(st), realtime_ms(),
           ring_comm_last_error(c));
    /* The contract: after a fatal error only destroy is accepted. */
    float x = 0;
    ring_status again = ring_allreduce(c, &x, &x, 1, RING_F32, RING_SUM);
    if (again != RING_ERR_FAILED) {
        printf("CONTRACT %d a call after the failure returned %s, not RING_ERR_FAILED\n",
               ring_comm_rank(c), ring_status_name(again));
        return 1;
    }
    return 3;
}

int main(int argc, char **argv)
{
    long iters = 0;
    size_t count = 100000;
    int mm_rank = -1, sleep_ms = 0, abort_rank = -1;
    char mm_what[16] = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--iters") && i + 1 < argc) {
            iters = strtol(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            count = strtoull(argv[++i], NULL, 10);
        } else if (!strcmp(argv[i], "--abort-at-start") && i + 1 < argc) {
            abort_rank = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--sleep-ms") && i + 1 < argc) {
            sleep_ms = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--mismatch") && i + 1 < argc &&
                   sscanf(argv[i + 1], "%d:%15s", &mm_rank, mm_what) == 2) {
            i++;
        } else {
            fprintf(
                stderr,
                "usage: ring-chaos [--iters N] [--count C] [--mismatch RANK:count|type|op|coll] "
                "[--sleep-ms M] [--abort-at-start R]\n");
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    char err[512];
    ring_comm *c;
    ring_status st = ring_comm_create_from_env(NULL, &c, err, sizeof err);
    if (st != RING_OK) {
        printf("CREATE_FAILED %s %s\n", ring_status_name(st), err);
        return 1;
    }
    the_comm = c;
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    int rank = ring_comm_rank(c), n = ring_comm_size(c);
    printf("READY %d\n", rank);
    if (rank == abort_rank) {
        the_comm = NULL;
        ring_comm_abort(c);
        ring_comm_destroy(c);
        printf("ABORTED_AT_START %d\n", rank);
        return 3;
    }
    float *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
    if (!a || !b) return 1;
    int rc = 0;
    for (long it = 0; !iters || it < iters; it++) {
        size_t m = it % 2 ? count : count / 64 + 1;
        for (size_t i = 0; i < m; i++)
            a[i] = (float)((rank + 1) * (int)((i + (size_t)it) % 7));
        ring_dtype t = RING_F32;
        ring_op op = RING_SUM;
        int coll_bcast = 0;
        if (it == 3 && rank == mm_rank) {
            if (!strcmp(mm_what, "count")) m += 1;
            if (!strcmp(mm_what, "type")) t = RING_I32;
            if (!strcmp(mm_what, "op")) op = RING_MAX;
            if (!strcmp(mm_what, "coll")) coll_bcast = 1;
        }
        st = coll_bcast ? ring_broadcast(c, a, b, m, t, 0) : ring_allreduce(c, a, b, m, t, op);
        if (st != RING_OK) {
            rc = report(c, st);
            break;
        }
        for (size_t i = 0; i < m; i++) {
            float want = (float)(n * (n + 1) / 2 * (int)((i + (size_t)it) % 7));
            if (b[i] != want) {
                printf("WRONG %d iteration %ld element %zu: %g, expected %g\n", rank, it, i, b[i],
                       want);
                rc = 1;
                break;
            }
        }
        if (rc) break;
        if (sleep_ms) usleep((useconds_t)sleep_ms * 1000);
    }
    if (!rc) printf("DONE %d\n", rank);
    free(a);
    free(b);
    the_comm = NULL;
    ring_comm_destroy(c);
    return rc;
}
