/* SPDX-License-Identifier: MIT */
/* Peer harness: MPI_Allreduce (float32 sum, out of place) over whatever transport
 * mpirun selects (peers.sh forces Open MPI's TCP BTL on lo). Run under mpirun. */
#include "harness.h"

#include <mpi.h>
#include <stdio.h>

struct mpi_ctx {
    float *in, *out;
    int count;
};

static int mpi_fail(const char *what, int err)
{
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, msg, &len);
    fprintf(stderr, "mpi_allreduce: %s failed: %s\n", what, msg);
    return -1;
}

static int mpi_setup(void *p, float *in, float *out, size_t count)
{
    struct mpi_ctx *c = p;
    if (count > (size_t)__INT_MAX__) {
        fprintf(stderr, "mpi_allreduce: %zu elements exceed MPI's int count\n", count);
        return -1;
    }
    c->in = in;
    c->out = out;
    c->count = (int)count;
    return 0;
}

static int mpi_run(void *p)
{
    struct mpi_ctx *c = p;
    int err = MPI_Allreduce(c->in, c->out, c->count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? 0 : mpi_fail("MPI_Allreduce", err);
}

static void mpi_teardown(void *p)
{
    (void)p;
}

static int mpi_combine(void *p, double *v, int n, enum hb_combine how)
{
    (void)p;
    int err = MPI_Allreduce(MPI_IN_PLACE, v, n, MPI_DOUBLE, how == HB_MAX ? MPI_MAX : MPI_SUM,
                            MPI_COMM_WORLD);
    return err == MPI_SUCCESS ? 0 : mpi_fail("MPI_Allreduce (combine)", err);
}

static double mpi_now(void)
{
    return MPI_Wtime();
}

int main(int argc, char **argv)
{
    if (MPI_Init(&argc, &argv) != MPI_SUCCESS) {
        fprintf(stderr, "mpi_allreduce: MPI_Init failed\n");
        return 2;
    }
    /* Errors come back as codes so that each is reported once, with its call. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    struct mpi_ctx ctx = {0};
    struct hb_ops ops = {.impl = "mpi",
                         .ctx = &ctx,
                         .setup = mpi_setup,
                         .allreduce = mpi_run,
                         .teardown = mpi_teardown,
                         .combine = mpi_combine,
                         .now = mpi_now};
    MPI_Comm_rank(MPI_COMM_WORLD, &ops.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &ops.nranks);
    struct hb_opts o;
    int rc = hb_parse(argc, argv, &o, 0);
    if (rc != 0) { /* every rank parsed the same argv, so all leave here together */
        MPI_Finalize();
        return rc > 0 ? 0 : 2;
    }
    int status = hb_run(&o, &ops);
    if (status == 2) {
        /* A failed collective leaves peers waiting; take them down with us. */
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    MPI_Finalize();
    return status;
}
