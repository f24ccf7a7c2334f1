/* SPDX-License-Identifier: MIT */
/* The multi-node rendezvous on loopback: processes play the head and the workers, with
 * hellos built from the real selection of fake MISTRALRS_MN_* environments; no NCCL. */
#include "coll_private.h"
#include "../check.h"

#include <sys/socket.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

static const coll_logger quiet = {.level = (coll_log_level)-1, .rank = 0};

typedef struct result {
    coll_status st;
    uint8_t blob[COLL_RDV_BLOB];
    char err[256];
} result;

typedef struct worker {
    pid_t pid;
    int fd;
} worker;

static worker start_worker(int port, coll_rdv_hello h, int timeout_ms)
{
    int p[2];
    if (pipe(p)) abort();
    worker w = {fork(), p[0]};
    if (w.pid == 0) {
        close(p[0]);
        result r = {0};
        r.st =
            coll_rdv_join("127.0.0.1", port, &h, r.blob, timeout_ms, &quiet, r.err, sizeof(r.err));
        if (write(p[1], &r, sizeof(r)) != (ssize_t)sizeof(r)) _exit(2);
        _exit(0);
    }
    close(p[1]);
    return w;
}

static result finish_worker(worker w)
{
    result r;
    memset(&r, 0, sizeof(r));
    r.st = COLL_ERR_SYSTEM;
    if (read(w.fd, &r, sizeof(r)) != (ssize_t)sizeof(r))
        snprintf(r.err, sizeof(r.err), "no result");
    close(w.fd);
    int status;
    waitpid(w.pid, &status, 0);
    return r;
}

/* A layout from the real selection flow for a fake environment. */
static coll_layout layout_of(fake_env e)
{
    coll_env env;
    coll_env_read(&env, fake_getenv, &e);
    coll_layout L;
    char err[256];
    coll_status st =
        coll_select(&env, NULL, 8, COLL_BUILT_NCCL | COLL_BUILT_CUDA, &L, err, sizeof(err));
    if (st) fprintf(stderr, "selection: %s\n", err);
    CHECK(st == COLL_OK);
    return L;
}

static coll_rdv_hello hello_of(const coll_layout *L)
{
    coll_rdv_hello h = {.token = 0,
                        .global_ws = (uint32_t)L->world_size,
                        .local_ws = (uint32_t)L->local_size,
                        .nodes = (uint32_t)L->nodes,
                        .worker_id = L->worker_id};
    return h;
}

static coll_layout worker_layout(const char *global, const char *local, const char *id)
{
    return layout_of((fake_env){
        {"MISTRALRS_MN_GLOBAL_WORLD_SIZE", global, "MISTRALRS_MN_LOCAL_WORLD_SIZE", local,
         "MISTRALRS_MN_WORKER_SERVER_ADDR", "127.0.0.1:1", "MISTRALRS_MN_WORKER_ID", id, NULL}});
}

static coll_layout head_layout(const char *global, const char *local, const char *workers)
{
    return layout_of((fake_env){
        {"MISTRALRS_MN_GLOBAL_WORLD_SIZE", global, "MISTRALRS_MN_LOCAL_WORLD_SIZE", local,
         "MISTRALRS_MN_HEAD_NUM_WORKERS", workers, "MISTRALRS_MN_HEAD_PORT", "1", NULL}});
}

/* Run a head for `head` against workers with the given hellos; return the head's status. */
static coll_status run(const coll_layout *head, const coll_rdv_hello *hellos, int nw,
                       int head_timeout, int worker_timeout, result *res, char *err, size_t el,
                       int stray)
{
    int fd, port;
    CHECK(coll_rdv_listen("127.0.0.1", 0, &fd, &port, err, el) == COLL_OK);
    worker w[8];
    for (int i = 0; i < nw; i++)
        w[i] = start_worker(port, hellos[i], worker_timeout);
    if (stray) {
        /* A stranger that connects and sends junk must not disturb the job. */
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(s, (struct sockaddr *)&a, sizeof(a)) == 0) {
            char junk[40];
            memset(junk, 'x', sizeof(junk));
            CHECK(write(s, junk, sizeof(junk)) == (ssize_t)sizeof(junk));
        }
        close(s);
    }
    uint8_t blob[COLL_RDV_BLOB];
    for (int i = 0; i < COLL_RDV_BLOB; i++)
        blob[i] = (uint8_t)(i * 13 + 5);
    coll_rdv_hello ex = hello_of(head);
    coll_status st = coll_rdv_serve(fd, &ex, blob, head_timeout, NULL, NULL, &quiet, err, el);
    for (int i = 0; i < nw; i++) {
        res[i] = finish_worker(w[i]);
        if (res[i].st == COLL_OK) CHECK(!memcmp(res[i].blob, blob, COLL_RDV_BLOB));
    }
    return st;
}

int main(void)
{
    char err[256];
    result res[8];

    /* 4 nodes x 2 GPUs: head and 3 workers, arriving in any order, plus a stray. */
    coll_layout head = head_layout("8", "2", "3");
    coll_rdv_hello ok[3];
    for (int i = 0; i < 3; i++) {
        char id[4];
        snprintf(id, sizeof(id), "%d", 2 - i);
        coll_layout wl = worker_layout("8", "2", id);
        CHECK(wl.rank == (3 - i) * 2); /* node (id+1) x local size, local rank 0 */
        ok[i] = hello_of(&wl);
    }
    CHECK(run(&head, ok, 3, 10000, 10000, res, err, sizeof(err), 1) == COLL_OK);
    for (int i = 0; i < 3; i++)
        CHECK(res[i].st == COLL_OK);

    /* Wrong sizes: the worker believes in 3 nodes of 2 (global 6). */
    coll_rdv_hello wrong[2] = {ok[2], hello_of(&(coll_layout){0})};
    coll_layout w6 = worker_layout("6", "2", "1");
    wrong[1] = hello_of(&w6);
    coll_layout head3 = head_layout("8", "2", "3");
    CHECK(run(&head3, wrong, 2, 5000, 5000, res, err, sizeof(err), 0) == COLL_ERR_CONFIG);
    CHECK_STR(err, "global world size 6, local 2, nodes 3");
    CHECK(res[1].st == COLL_ERR_CONFIG);
    CHECK_STR(res[1].err, "refused");
    CHECK_STR(res[1].err, "global world size 6");

    /* A worker id out of range, and the same id twice. */
    coll_rdv_hello bad = ok[0];
    bad.worker_id = 7;
    CHECK(run(&head, &bad, 1, 5000, 5000, res, err, sizeof(err), 0) == COLL_ERR_CONFIG);
    CHECK_STR(err, "worker id 7");
    CHECK_STR(err, "out of range");
    CHECK(res[0].st == COLL_ERR_CONFIG);
    coll_rdv_hello twice[2] = {ok[1], ok[1]};
    CHECK(run(&head, twice, 2, 5000, 5000, res, err, sizeof(err), 0) == COLL_ERR_CONFIG);
    CHECK_STR(err, "connected twice");
    CHECK(res[0].st == COLL_ERR_CONFIG && res[1].st == COLL_ERR_CONFIG);

    /* A worker that never comes: the head's deadline names who is missing. */
    coll_layout head1 = head_layout("3", "1", "2");
    coll_layout w0 = worker_layout("3", "1", "0");
    coll_rdv_hello only = hello_of(&w0);
    CHECK(run(&head1, &only, 1, 700, 5000, res, err, sizeof(err), 0) == COLL_ERR_TIMEOUT);
    CHECK_STR(err, "with 1 of 2 workers; missing worker ids: 1");
    CHECK(res[0].st == COLL_ERR_TIMEOUT);
    CHECK_STR(res[0].err, "refused: rendezvous: timed out");

    /* No head at all: the worker gives up at its deadline. */
    int fd, port;
    CHECK(coll_rdv_listen("127.0.0.1", 0, &fd, &port, err, sizeof(err)) == COLL_OK);
    close(fd);
    uint8_t blob[COLL_RDV_BLOB];
    CHECK(coll_rdv_join("127.0.0.1", port, &only, blob, 400, &quiet, err, sizeof(err)) ==
          COLL_ERR_TIMEOUT);
    CHECK_STR(err, "could not reach the head");
    TEST_DONE();
}
