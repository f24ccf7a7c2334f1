/* SPDX-License-Identifier: MIT */
/* The local provider's copies, argument checks, and the dispatcher's provider chain:
 * "not supported" goes to the next provider (logged at debug), failures latch. */
#include "coll_private.h"
#include "../check.h"

#include <fcntl.h>
#include <unistd.h>

static coll_comm *make_local(fake_env *e)
{
    coll_params p;
    coll_params_init(&p);
    p.getenv_fn = fake_getenv;
    p.getenv_ctx = e;
    p.visible_devices = 0;
    coll_comm *c = NULL;
    char err[256];
    CHECK(coll_comm_create(&p, &c, err, sizeof(err)) == COLL_OK);
    return c;
}

static void test_copies(void)
{
    fake_env e = {{"COLL_LOG_LEVEL", "error", NULL}};
    coll_comm *c = make_local(&e);
    if (!c) return;
    CHECK(!strcmp(coll_comm_provider(c), "local") && coll_comm_device(c) == -1);
    for (int t = 0; t < COLL_DTYPE_COUNT; t++) {
        unsigned char src[64], dst[64];
        for (int i = 0; i < 64; i++)
            src[i] = (unsigned char)(i * 7 + t), dst[i] = 0;
        size_t n = 64 / coll_dtype_size((coll_dtype)t);
        CHECK(coll_allreduce(c, src, dst, n, (coll_dtype)t, COLL_MAX, NULL) == COLL_OK);
        CHECK(!memcmp(src, dst, 64));
        memset(dst, 0, 64);
        CHECK(coll_allgather(c, src, dst, n, (coll_dtype)t, NULL) == COLL_OK);
        CHECK(!memcmp(src, dst, 64));
        memset(dst, 0, 64);
        CHECK(coll_reduce_scatter(c, src, dst, n, (coll_dtype)t, COLL_SUM, NULL) == COLL_OK);
        CHECK(!memcmp(src, dst, 64));
        memset(dst, 0, 64);
        CHECK(coll_broadcast(c, src, dst, n, (coll_dtype)t, 0, NULL) == COLL_OK);
        CHECK(!memcmp(src, dst, 64));
        /* In place leaves the data alone. */
        CHECK(coll_allreduce(c, dst, dst, n, (coll_dtype)t, COLL_SUM, NULL) == COLL_OK);
        CHECK(!memcmp(src, dst, 64));
    }
    CHECK(coll_barrier(c) == COLL_OK);
    CHECK(coll_sync(c, NULL) == COLL_OK);
    /* Bad arguments: an error, and the communicator stays usable. */
    float a[4] = {1, 2, 3, 4}, b[4];
    int ia[4] = {1, 2, 3, 4}, ib[4];
    CHECK(coll_allreduce(c, a, b, 4, (coll_dtype)99, COLL_SUM, NULL) == COLL_ERR_INVALID_ARG);
    CHECK_STR(coll_comm_last_error(c), "data type 99");
    CHECK(coll_allreduce(c, ia, ib, 4, COLL_I32, COLL_AVG, NULL) == COLL_ERR_INVALID_ARG);
    CHECK_STR(coll_comm_last_error(c), "avg needs a floating type");
    CHECK(coll_allreduce(c, a, b, 4, COLL_F32, (coll_op)9, NULL) == COLL_ERR_INVALID_ARG);
    CHECK(coll_broadcast(c, a, b, 4, COLL_F32, 1, NULL) == COLL_ERR_INVALID_ARG);
    CHECK_STR(coll_comm_last_error(c), "root 1");
    CHECK(coll_allreduce(c, NULL, b, 4, COLL_F32, COLL_SUM, NULL) == COLL_ERR_INVALID_ARG);
    CHECK(coll_allreduce(c, a, b, 4, COLL_F32, COLL_AVG, NULL) == COLL_OK && b[3] == 4.0f);
    CHECK(coll_allreduce(NULL, a, b, 4, COLL_F32, COLL_SUM, NULL) == COLL_ERR_INVALID_ARG);
    coll_comm_abort(c);
    CHECK(coll_allreduce(c, a, b, 4, COLL_F32, COLL_SUM, NULL) == COLL_ERR_FAILED);
    coll_comm_destroy(c);
}

/* Fake providers for the chain. */
static int fake_calls[3];
static coll_status fake_create(coll_comm *comm, void **state, char *err, size_t errlen)
{
    (void)comm;
    (void)err;
    (void)errlen;
    *state = NULL;
    return COLL_OK;
}
static coll_status unsup_call(void *s, const coll_call *c, char *err, size_t errlen)
{
    (void)s;
    (void)c;
    fake_calls[0]++;
    return coll_fail(COLL_ERR_UNSUPPORTED, err, errlen, "fake: not this one");
}
static coll_status timeout_call(void *s, const coll_call *c, char *err, size_t errlen)
{
    (void)s;
    (void)c;
    fake_calls[1]++;
    return coll_fail(COLL_ERR_TIMEOUT, err, errlen, "fake: peer 3 silent for 10 ms");
}
static void fake_nop(void *s)
{
    (void)s;
}
static const coll_provider fake_unsup = {.name = "fake-unsup",
                                         .create = fake_create,
                                         .call = unsup_call,
                                         .abort = fake_nop,
                                         .destroy = fake_nop};
static const coll_provider fake_timeout = {.name = "fake-timeout",
                                           .create = fake_create,
                                           .call = timeout_call,
                                           .abort = fake_nop,
                                           .destroy = fake_nop};

/* Run f with stderr captured into buf. */
static void capture_stderr(void (*f)(void *), void *arg, char *buf, size_t len)
{
    char path[] = "/tmp/coll_test_XXXXXX";
    int fd = mkstemp(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    f(arg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    lseek(fd, 0, SEEK_SET);
    ssize_t n = read(fd, buf, len - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
}

static void chain_fallback(void *arg)
{
    coll_comm *c = arg;
    float a[2] = {5, 6}, b[2] = {0, 0};
    CHECK(coll_allreduce(c, a, b, 2, COLL_F32, COLL_SUM, NULL) == COLL_OK);
    CHECK(b[0] == 5 && b[1] == 6);
}

static void test_chain(void)
{
    fake_env dbg = {{"COLL_LOG_LEVEL", "debug", NULL}};
    coll_params p;
    coll_params_init(&p);
    p.getenv_fn = fake_getenv;
    p.getenv_ctx = &dbg;
    coll_layout L = {.mode = COLL_MODE_LOCAL,
                     .provider = "local",
                     .world_size = 1,
                     .rank = 0,
                     .local_size = 1,
                     .nodes = 1,
                     .device = -1};
    coll_comm *c = NULL;
    char err[256];
    const coll_provider *chain1[] = {&fake_unsup, &coll_provider_local};
    CHECK(coll_comm_create_chain(&p, &L, chain1, 2, &c, err, sizeof(err)) == COLL_OK);
    char log[4096];
    capture_stderr(chain_fallback, c, log, sizeof(log));
    CHECK(fake_calls[0] == 1);
    CHECK_STR(log, "DEBUG provider fake-unsup does not serve allreduce of f32 on host memory");
    CHECK_STR(log, "trying local");
    CHECK(!strstr(log, "ERROR"));
    coll_comm_destroy(c);

    /* Nobody serves it: "not supported", which is not a failure of the communicator. */
    const coll_provider *chain2[] = {&fake_unsup, &fake_unsup};
    CHECK(coll_comm_create_chain(&p, &L, chain2, 2, &c, err, sizeof(err)) == COLL_OK);
    float a[1] = {1}, b[1];
    dbg.kv[1] = "error";
    c->log.level = COLL_LOG_ERROR;
    CHECK(coll_allreduce(c, a, b, 1, COLL_F32, COLL_SUM, NULL) == COLL_ERR_UNSUPPORTED);
    CHECK_STR(coll_comm_last_error(c), "no provider serves allreduce of f32");
    CHECK(coll_barrier(c) == COLL_ERR_UNSUPPORTED);
    coll_comm_destroy(c);

    /* A real failure stops the chain and latches. */
    const coll_provider *chain3[] = {&fake_timeout, &coll_provider_local};
    CHECK(coll_comm_create_chain(&p, &L, chain3, 2, &c, err, sizeof(err)) == COLL_OK);
    c->log.level = COLL_LOG_ERROR - 1; /* silence the expected error line */
    CHECK(coll_allreduce(c, a, b, 1, COLL_F32, COLL_SUM, NULL) == COLL_ERR_TIMEOUT);
    CHECK_STR(coll_comm_last_error(c), "peer 3 silent");
    CHECK(coll_allreduce(c, a, b, 1, COLL_F32, COLL_SUM, NULL) == COLL_ERR_FAILED);
    CHECK(fake_calls[1] == 1);
    coll_comm_destroy(c);
}

/* A `late` provider: created after the others (so it can exchange through them) and
 * destroyed before them, whatever its place in the chain. */
static char events[16];
static void note(char e)
{
    events[strlen(events)] = e;
}
static coll_status early_create(coll_comm *comm, void **state, char *err, size_t errlen)
{
    note('E');
    return fake_create(comm, state, err, errlen);
}
static void early_destroy(void *s)
{
    (void)s;
    note('e');
}
static coll_status late_create(coll_comm *comm, void **state, char *err, size_t errlen)
{
    note('L');
    *state = NULL;
    char got[3] = "";
    coll_status st = coll_comm_exchange(comm, "ok", got, 2, COLL_MEM_HOST, NULL, err, errlen);
    CHECK(st == COLL_OK && !memcmp(got, "ok", 2));
    return st;
}
static void late_destroy(void *s)
{
    (void)s;
    note('l');
}
static const coll_provider fake_early = {.name = "fake-early",
                                         .create = early_create,
                                         .call = unsup_call,
                                         .abort = fake_nop,
                                         .destroy = early_destroy};
static const coll_provider fake_late = {.name = "fake-late",
                                        .create = late_create,
                                        .call = unsup_call,
                                        .abort = fake_nop,
                                        .destroy = late_destroy,
                                        .late = 1};

static void test_late(void)
{
    coll_params p;
    coll_params_init(&p);
    coll_layout L = {.mode = COLL_MODE_LOCAL,
                     .provider = "local",
                     .world_size = 1,
                     .rank = 0,
                     .local_size = 1,
                     .nodes = 1,
                     .device = -1};
    coll_comm *c = NULL;
    char err[256];
    const coll_provider *chain[] = {&fake_late, &fake_early, &coll_provider_local};
    CHECK(coll_comm_create_chain(&p, &L, chain, 3, &c, err, sizeof(err)) == COLL_OK);
    CHECK(!strcmp(events, "EL"));
    /* Calls still go in chain order: the late one first, then on. */
    float a[1] = {2}, b[1] = {0};
    int before = fake_calls[0];
    CHECK(coll_allreduce(c, a, b, 1, COLL_F32, COLL_SUM, NULL) == COLL_OK && b[0] == 2);
    CHECK(fake_calls[0] == before + 2);
    CHECK(coll_comm_p2p_max_bytes(c) == 0); /* no p2p in this chain */
    coll_comm_destroy(c);
    CHECK(!strcmp(events, "ELle"));
}

int main(void)
{
    test_copies();
    test_chain();
    test_late();
    TEST_DONE();
}
