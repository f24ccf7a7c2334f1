/* SPDX-License-Identifier: MIT */
/* ring-loop: one rank of a failure test. Runs all-reduces in a loop until one fails,
 * then says how (status name and message) and exits 3. Used by the kill tests: one rank
 * is killed mid-loop and the survivors must fail, not hang.
 *
 *   ring-loop [--count N] [--seconds S]
 * Prints "ring-loop: rank R: running" once warmed up. Exits 0 if S seconds pass with no
 * failure (S defaults to 300), 1 on a set-up error or a wrong result, 3 on a failed call. */
#include "ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    size_t count = 100000;
    double seconds = 300;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--count") && i + 1 < argc)
            count = strtoull(argv[++i], NULL, 10);
        else if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
            seconds = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: ring-loop [--count N] [--seconds S]\n");
            return 2;
        }
    }
    if (count == 0) count = 1;
    char err[512];
    ring_comm *c;
    ring_status st = ring_comm_create_from_env(NULL, &c, err, sizeof err);
    if (st != RING_OK) {
        fprintf(stderr, "ring-loop: %s\n", err);
        return 1;
    }
    int rank = ring_comm_rank(c), n = ring_comm_size(c);
    int *a = malloc(count * sizeof *a), *b = malloc(count * sizeof *b);
    if (!a || !b) {
        fprintf(stderr, "ring-loop: out of memory\n");
        return 1;
    }
    double t0 = now_s(), last_ok = t0;
    int rc = 0;
    for (long it = 0;; it++) {
        for (size_t i = 0; i < count; i++)
            a[i] = (int)((i + (size_t)it) % 7) + rank;
        st = ring_allreduce(c, a, b, count, RING_I32, RING_SUM);
        double t = now_s();
        if (st != RING_OK) {
            printf(
                "ring-loop: rank %d: iteration %ld failed %.2f s after the last success: %s: %s\n",
                rank, it, t - last_ok, ring_status_name(st), ring_comm_last_error(c));
            rc = 3;
            break;
        }
        for (size_t i = 0; i < count; i++) {
            int want = (int)(((i + (size_t)it) % 7) * (size_t)n) + n * (n - 1) / 2;
            if (b[i] != want) {
                printf("ring-loop: rank %d: iteration %ld: element %zu is %d, expected %d\n", rank,
                       it, i, b[i], want);
                rc = 1;
                break;
            }
        }
        if (rc) break;
        last_ok = t;
        if (it == 5) printf("ring-loop: rank %d: running\n", rank);
        fflush(stdout);
        if (t - t0 > seconds) {
            printf("ring-loop: rank %d: %ld iterations in %.0f s without a failure\n", rank, it + 1,
                   t - t0);
            break;
        }
    }
    fflush(stdout);
    free(a);
    free(b);
    ring_comm_destroy(c);
    return rc;
}
