/* SPDX-License-Identifier: MIT */
/* Every branch of the selection table (docs/SELECTION.md), with fake environments. */
#include "coll_private.h"
#include "../check.h"

#define ALL (COLL_BUILT_NCCL | COLL_BUILT_RING | COLL_BUILT_CUDA)

static coll_layout L;
static char err[512];

static coll_status sel(const char *forced, int visible, unsigned built, fake_env e)
{
    coll_env env;
    coll_env_read(&env, fake_getenv, &e);
    err[0] = '\0';
    return coll_select(&env, forced, visible, built, &L, err, sizeof(err));
}

#define ENV(...) ((fake_env){{__VA_ARGS__, NULL}})
#define NOENV ((fake_env){{NULL}})

static void test_local(void)
{
    /* Rule 1: nothing set; NCCL not applying for each of its three reasons. */
    CHECK(sel(NULL, 0, ALL, NOENV) == COLL_OK && L.mode == COLL_MODE_LOCAL && L.world_size == 1 &&
          L.rank == 0 && L.device == -1);
    CHECK(sel(NULL, 1, ALL, NOENV) == COLL_OK && L.mode == COLL_MODE_LOCAL && L.device == 0);
    CHECK(sel(NULL, 4, COLL_BUILT_RING | COLL_BUILT_CUDA, NOENV) == COLL_OK &&
          L.mode == COLL_MODE_LOCAL);
    CHECK(sel(NULL, 4, ALL, ENV("MISTRALRS_NO_NCCL", "1")) == COLL_OK &&
          L.mode == COLL_MODE_LOCAL && !L.warning[0]);
    /* An empty variable is unset. */
    CHECK(sel(NULL, 1, ALL, ENV("RING_CONFIG", "")) == COLL_OK && L.mode == COLL_MODE_LOCAL);
}

static void test_nccl_single(void)
{
    /* Rule 2. */
    CHECK(sel(NULL, 2, ALL, NOENV) == COLL_OK && L.mode == COLL_MODE_NCCL && L.world_size == 2 &&
          L.rank == 0 && L.device == 0 && !L.warning[0]);
    CHECK(sel(NULL, 3, ALL, NOENV) == COLL_OK && L.world_size == 3); /* not only powers of 2 */
    /* Only "1" disables NCCL: other values warn and keep it. */
    CHECK(sel(NULL, 2, ALL, ENV("MISTRALRS_NO_NCCL", "true")) == COLL_OK &&
          L.mode == COLL_MODE_NCCL);
    CHECK_STR(L.warning, "is not 1");
    CHECK(sel(NULL, 2, ALL, ENV("MISTRALRS_NO_NCCL", "0")) == COLL_OK && L.mode == COLL_MODE_NCCL &&
          !L.warning[0]);
    /* A spawned process takes its local rank. */
    CHECK(sel(NULL, 4, ALL,
              ENV("COLL_LOCAL_RANK", "3", "COLL_LOCAL_RDV", "127.0.0.1:5", "COLL_LOCAL_TOKEN",
                  "ab")) == COLL_OK &&
          L.is_child && L.rank == 3 && L.device == 3 && L.local_size == 4);
    CHECK(sel(NULL, 2, ALL,
              ENV("COLL_LOCAL_RANK", "2", "COLL_LOCAL_RDV", "127.0.0.1:5", "COLL_LOCAL_TOKEN",
                  "ab")) == COLL_ERR_CONFIG);
    CHECK(sel(NULL, 2, ALL, ENV("COLL_LOCAL_RANK", "1")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "COLL_LOCAL_RDV");
    CHECK(sel(NULL, 1, ALL,
              ENV("COLL_LOCAL_RANK", "1", "COLL_LOCAL_RDV", "127.0.0.1:5", "COLL_LOCAL_TOKEN",
                  "ab")) == COLL_ERR_CONFIG);
}

static void test_ring(void)
{
    /* Rule 4: the ring whenever NCCL does not apply. */
    fake_env r = ENV("RING_CONFIG", "/tmp/r.json");
    CHECK(sel(NULL, 0, ALL, r) == COLL_OK && L.mode == COLL_MODE_RING && !L.warning[0]);
    CHECK(sel(NULL, 1, ALL, r) == COLL_OK && L.mode == COLL_MODE_RING);
    CHECK(sel(NULL, 8, COLL_BUILT_RING, r) == COLL_OK && L.mode == COLL_MODE_RING);
    CHECK(sel(NULL, 2, ALL, ENV("RING_CONFIG", "/tmp/r.json", "MISTRALRS_NO_NCCL", "1")) ==
              COLL_OK &&
          L.mode == COLL_MODE_RING);
    /* NCCL applies: NCCL wins, with a warning naming both variables. */
    CHECK(sel(NULL, 2, ALL, r) == COLL_OK && L.mode == COLL_MODE_NCCL);
    CHECK_STR(L.warning, "RING_CONFIG is ignored");
    CHECK_STR(L.warning, "MISTRALRS_NO_NCCL=1");
    /* Not built in. */
    CHECK(sel(NULL, 0, COLL_BUILT_NCCL | COLL_BUILT_CUDA, r) == COLL_ERR_CONFIG);
    CHECK_STR(err, "without the ring");
}

static fake_env head_env(const char *global, const char *local, const char *workers)
{
    return ENV("MISTRALRS_MN_GLOBAL_WORLD_SIZE", global, "MISTRALRS_MN_LOCAL_WORLD_SIZE", local,
               "MISTRALRS_MN_HEAD_NUM_WORKERS", workers, "MISTRALRS_MN_HEAD_PORT", "29500");
}

static fake_env worker_env(const char *global, const char *local, const char *id)
{
    return ENV("MISTRALRS_MN_GLOBAL_WORLD_SIZE", global, "MISTRALRS_MN_LOCAL_WORLD_SIZE", local,
               "MISTRALRS_MN_WORKER_SERVER_ADDR", "10.0.0.1:29500", "MISTRALRS_MN_WORKER_ID", id);
}

static void test_multinode(void)
{
    /* Rule 3: presence of the global size alone turns the mode on. */
    CHECK(sel(NULL, 2, ALL, head_env("4", "2", "1")) == COLL_OK && L.mode == COLL_MODE_NCCL_MN &&
          L.rank == 0 && L.world_size == 4 && L.nodes == 2 && L.is_mn_head &&
          L.head_port == 29500 && L.num_workers == 1);
    /* Even with one visible GPU and NO_NCCL unset, and not only powers of 2. */
    CHECK(sel(NULL, 1, ALL, head_env("3", "1", "2")) == COLL_OK && L.nodes == 3);
    /* Worker 1 of 3 nodes x 2, local rank 1: rank = node x local + local rank = 2*2+1. */
    fake_env w =
        ENV("MISTRALRS_MN_GLOBAL_WORLD_SIZE", "6", "MISTRALRS_MN_LOCAL_WORLD_SIZE", "2",
            "MISTRALRS_MN_WORKER_SERVER_ADDR", "10.0.0.1:29500", "MISTRALRS_MN_WORKER_ID", "1",
            "COLL_LOCAL_RANK", "1", "COLL_LOCAL_RDV", "127.0.0.1:4000", "COLL_LOCAL_TOKEN", "1f");
    CHECK(sel(NULL, 2, ALL, w) == COLL_OK && L.node == 2 && L.rank == 5 && L.device == 1 &&
          !L.is_mn_head && !strcmp(L.head_host, "10.0.0.1") && L.worker_id == 1);
    /* Head-node local rank 1 does not bind the head port. */
    fake_env h1 =
        ENV("MISTRALRS_MN_GLOBAL_WORLD_SIZE", "4", "MISTRALRS_MN_LOCAL_WORLD_SIZE", "2",
            "MISTRALRS_MN_HEAD_NUM_WORKERS", "1", "MISTRALRS_MN_HEAD_PORT", "29500",
            "COLL_LOCAL_RANK", "1", "COLL_LOCAL_RDV", "127.0.0.1:4000", "COLL_LOCAL_TOKEN", "1f");
    CHECK(sel(NULL, 2, ALL, h1) == COLL_OK && L.rank == 1 && !L.is_mn_head);

    /* Rule 5: contradictions. */
    fake_env e = head_env("4", "2", "1");
    e.kv[8] = "RING_CONFIG";
    e.kv[9] = "/tmp/r.json";
    CHECK(sel(NULL, 2, ALL, e) == COLL_ERR_CONFIG);
    CHECK_STR(err, "RING_CONFIG");
    e.kv[8] = "MISTRALRS_NO_NCCL";
    e.kv[9] = "1";
    CHECK(sel(NULL, 2, ALL, e) == COLL_ERR_CONFIG);
    CHECK_STR(err, "MISTRALRS_NO_NCCL=1");
    e.kv[8] = "MISTRALRS_MN_WORKER_ID";
    e.kv[9] = "0";
    CHECK(sel(NULL, 2, ALL, e) == COLL_ERR_CONFIG);
    CHECK_STR(err, "worker variable MISTRALRS_MN_WORKER_ID");
    fake_env we = worker_env("4", "2", "0");
    we.kv[8] = "MISTRALRS_MN_HEAD_PORT";
    we.kv[9] = "1234";
    CHECK(sel(NULL, 2, ALL, we) == COLL_ERR_CONFIG);
    CHECK_STR(err, "head variable MISTRALRS_MN_HEAD_PORT");
    CHECK(sel(NULL, 2, ALL, head_env("5", "2", "1")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "MISTRALRS_MN_GLOBAL_WORLD_SIZE=5 but");
    CHECK(sel(NULL, 2, ALL, worker_env("5", "2", "0")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "not a multiple");
    CHECK(sel(NULL, 2, ALL, worker_env("4", "2", "1")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "worker ids 0..0");
    CHECK(sel(NULL, 2, ALL, worker_env("2", "2", "0")) == COLL_ERR_CONFIG);
    CHECK(sel(NULL, 1, ALL, head_env("4", "2", "1")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "only 1 GPUs are visible");
    CHECK(sel(NULL, 2, COLL_BUILT_RING, head_env("4", "2", "1")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "built without NCCL");
    CHECK(sel("ring", 2, ALL, head_env("4", "2", "1")) == COLL_ERR_CONFIG);
    CHECK(sel(NULL, 2, ALL, ENV("MISTRALRS_MN_GLOBAL_WORLD_SIZE", "4")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "MISTRALRS_MN_LOCAL_WORLD_SIZE");
    CHECK(sel(NULL, 2, ALL,
              ENV("MISTRALRS_MN_GLOBAL_WORLD_SIZE", "4", "MISTRALRS_MN_LOCAL_WORLD_SIZE", "2")) ==
          COLL_ERR_CONFIG);
    CHECK(sel(NULL, 2, ALL,
              ENV("MISTRALRS_MN_GLOBAL_WORLD_SIZE", "4", "MISTRALRS_MN_LOCAL_WORLD_SIZE", "2",
                  "MISTRALRS_MN_HEAD_PORT", "1")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "MISTRALRS_MN_HEAD_NUM_WORKERS is not set");
    /* A multi-node variable without the global size. */
    CHECK(sel(NULL, 2, ALL, ENV("MISTRALRS_MN_HEAD_PORT", "29500")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "MISTRALRS_MN_HEAD_PORT is set but MISTRALRS_MN_GLOBAL_WORLD_SIZE is not");
    /* Bad numbers and addresses name the variable. */
    CHECK(sel(NULL, 2, ALL, head_env("four", "2", "1")) == COLL_ERR_CONFIG);
    CHECK_STR(err, "MISTRALRS_MN_GLOBAL_WORLD_SIZE: not an integer: 'four'");
    fake_env bad = worker_env("4", "2", "0");
    bad.kv[5] = "10.0.0.1";
    CHECK(sel(NULL, 2, ALL, bad) == COLL_ERR_CONFIG);
    CHECK_STR(err, "MISTRALRS_MN_WORKER_SERVER_ADDR: expected host:port");
    bad.kv[5] = "10.0.0.1:70000";
    CHECK(sel(NULL, 2, ALL, bad) == COLL_ERR_CONFIG);
    CHECK_STR(err, "port must be 1..65535");
}

static void test_forced(void)
{
    CHECK(sel("local", 4, ALL, NOENV) == COLL_OK && L.mode == COLL_MODE_LOCAL);
    CHECK(sel("nccl", 1, ALL, NOENV) == COLL_OK && L.mode == COLL_MODE_NCCL && L.world_size == 1);
    CHECK(sel("nccl", 0, ALL, NOENV) == COLL_ERR_CONFIG);
    CHECK(sel("nccl", 2, COLL_BUILT_RING, NOENV) == COLL_ERR_CONFIG);
    CHECK(sel("ring", 2, ALL, NOENV) == COLL_ERR_CONFIG);
    CHECK_STR(err, "RING_CONFIG is not set");
    CHECK(sel("ring", 2, ALL, ENV("RING_CONFIG", "/x")) == COLL_OK && L.mode == COLL_MODE_RING);
    CHECK(sel("mpi", 2, ALL, NOENV) == COLL_ERR_CONFIG);
    CHECK_STR(err, "provider 'mpi' is unknown");
}

static void test_create_and_print(void)
{
    /* The whole create path with a fake environment: local, and an error that names why. */
    fake_env e = ENV("COLL_LOG_LEVEL", "error");
    coll_params p;
    coll_params_init(&p);
    p.getenv_fn = fake_getenv;
    p.getenv_ctx = &e;
    p.visible_devices = 0;
    coll_comm *c = NULL;
    char msg[512];
    CHECK(coll_comm_create(&p, &c, msg, sizeof(msg)) == COLL_OK);
    CHECK(c && !strcmp(coll_comm_provider(c), "local") && coll_comm_size(c) == 1 &&
          coll_comm_rank(c) == 0);
    coll_comm_destroy(c);
    fake_env bad = ENV("COLL_LOG_LEVEL", "error", "MISTRALRS_MN_HEAD_PORT", "1");
    p.getenv_ctx = &bad;
    CHECK(coll_comm_create(&p, &c, msg, sizeof(msg)) == COLL_ERR_CONFIG && c == NULL);
    CHECK_STR(msg, "MISTRALRS_MN_HEAD_PORT");
    fake_env lvl = ENV("COLL_LOG_LEVEL", "loud");
    p.getenv_ctx = &lvl;
    CHECK(coll_comm_create(&p, &c, msg, sizeof(msg)) == COLL_ERR_CONFIG);
    CHECK_STR(msg, "COLL_LOG_LEVEL");
    p.struct_size = 3;
    CHECK(coll_comm_create(&p, &c, msg, sizeof(msg)) == COLL_ERR_INVALID_ARG);

    /* coll_print_config names the provider and every knob of the table. */
    fake_env pe = ENV("RING_CONFIG", "/nonexistent.json", "MISTRALRS_NO_NCCL", "1");
    coll_params_init(&p);
    p.getenv_fn = fake_getenv;
    p.getenv_ctx = &pe;
    p.visible_devices = 2;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    coll_print_config(f, &p);
    fclose(f);
    const coll_knob *k = coll_knobs();
    int n = 0;
    for (; k[n].name; n++)
        CHECK_STR(buf, k[n].name);
    CHECK(n == KNOB_COUNT);
    if (coll_built_features() & COLL_BUILT_RING)
        CHECK_STR(buf, "provider: ring");
    else
        CHECK_STR(buf, "selection: FAILS");
    free(buf);
    /* Status strings come from the one list. */
    CHECK(!strcmp(coll_status_str(COLL_ERR_TIMEOUT), "timed out"));
    CHECK(!strcmp(coll_status_name(COLL_ERR_NCCL), "COLL_ERR_NCCL"));
    CHECK(!strcmp(coll_status_str(COLL_STATUS_COUNT), "unknown status"));
}

int main(void)
{
    test_local();
    test_nccl_single();
    test_ring();
    test_multinode();
    test_forced();
    test_create_and_print();
    TEST_DONE();
}
