/* SPDX-License-Identifier: MIT */
/* libcoll over the ring, host buffers: run as every rank of a ring (coll_ring.sh starts
 * them with RING_CONFIG). The selection flow must pick the ring (no GPU here, or
 * MISTRALRS_NO_NCCL=1), and every collective must give the exact result. */
#include "coll.h"
#include "../check.h"

static float v(int rank, size_t i)
{
    return (float)((int)((i * 5 + (size_t)rank) % 11) - 5);
}

int main(void)
{
    coll_params p;
    coll_params_init(&p);
    coll_comm *c = NULL;
    char err[512];
    coll_status st = coll_comm_create(&p, &c, err, sizeof(err));
    if (st) {
        fprintf(stderr, "coll_comm_create: %s: %s\n", coll_status_str(st), err);
        return 1;
    }
    CHECK(!strcmp(coll_comm_provider(c), "ring"));
    int rank = coll_comm_rank(c), size = coll_comm_size(c);
    size_t n = 300007;
    float *a = malloc(n * sizeof(float) * (size_t)size),
          *b = malloc(n * sizeof(float) * (size_t)size);
    for (size_t i = 0; i < n; i++)
        a[i] = v(rank, i);
    CHECK(coll_allreduce(c, a, b, n, COLL_F32, COLL_SUM, NULL) == COLL_OK);
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < size; r++)
            want += v(r, i);
        if (b[i] != want) {
            CHECK(b[i] == want);
            break;
        }
    }
    CHECK(coll_allreduce(c, a, a, n, COLL_F32, COLL_MAX, NULL) == COLL_OK);
    for (size_t i = 0; i < n; i++) {
        float want = v(0, i);
        for (int r = 1; r < size; r++)
            want = v(r, i) > want ? v(r, i) : want;
        if (a[i] != want) {
            CHECK(a[i] == want);
            break;
        }
    }
    for (size_t i = 0; i < n * (size_t)size; i++)
        a[i] = v(rank, i);
    CHECK(coll_reduce_scatter(c, a, b, n, COLL_F32, COLL_SUM, NULL) == COLL_OK);
    for (size_t i = 0; i < n; i++) {
        float want = 0;
        for (int r = 0; r < size; r++)
            want += v(r, (size_t)rank * n + i);
        if (b[i] != want) {
            CHECK(b[i] == want);
            break;
        }
    }
    for (size_t i = 0; i < n; i++)
        a[i] = v(rank, i);
    CHECK(coll_allgather(c, a, b, n, COLL_F32, NULL) == COLL_OK);
    for (int r = 0; r < size; r++)
        for (size_t i = 0; i < n; i++)
            if (b[(size_t)r * n + i] != v(r, i)) {
                CHECK(b[(size_t)r * n + i] == v(r, i));
                r = size;
                break;
            }
    CHECK(coll_broadcast(c, a, b, n, COLL_F32, size - 1, NULL) == COLL_OK);
    for (size_t i = 0; i < n; i++)
        if (b[i] != v(size - 1, i)) {
            CHECK(b[i] == v(size - 1, i));
            break;
        }
    CHECK(coll_barrier(c) == COLL_OK);
    /* A bad argument is refused locally and the ring stays usable. */
    CHECK(coll_broadcast(c, a, b, n, COLL_F32, size, NULL) == COLL_ERR_INVALID_ARG);
    CHECK(coll_barrier(c) == COLL_OK);
    free(a);
    free(b);
    coll_comm_destroy(c);
    if (!test_failures) printf("rank %d of %d: ok\n", rank, size);
    TEST_DONE();
}
