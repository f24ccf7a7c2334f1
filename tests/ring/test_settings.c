/* SPDX-License-Identifier: MIT */
/* libring's settings (issue 14): knobs read once at communicator creation, a value that is
 * not valid refused with the variable's name, log lines through the params' callback, and a
 * ring_config from an older, smaller ring.h still accepted. One-rank communicators: no
 * network. Uses only the public API (libring.la). */
#include <stddef.h>
#include <stdint.h>
#include "../check.h"

#include "ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void one_rank(ring_config *cfg)
{
    ring_config_init(cfg);
    cfg->rank = 0;
    cfg->world_size = 1;
}

static ring_status create(const ring_params *p, char *err, size_t errlen)
{
    ring_comm *c = NULL;
    ring_status st = ring_comm_create(p, &c, err, errlen);
    if (st == RING_OK) {
        CHECK(ring_comm_size(c) == 1);
        ring_comm_destroy(c);
    }
    return st;
}

/* Every refused value names the variable and what it expects. */
static void test_bad_values(void)
{
    static const struct {
        const char *name, *value, *message;
    } bad[] = {
        {"RING_PIPELINE_DEPTH", "0", "RING_PIPELINE_DEPTH: must be in 1..64, got 0"},
        {"RING_OP_TIMEOUT_MS", "soon", "RING_OP_TIMEOUT_MS: not an integer: 'soon'"},
        {"RING_SEGMENT_BYTES", "12k", "RING_SEGMENT_BYTES: not an integer: '12k'"},
        {"RING_TCP_THREADS", "2", "RING_TCP_THREADS: must be in 0..1, got 2"},
        {"RING_TCP_THREADS_MIN_BYTES", "-1",
         "RING_TCP_THREADS_MIN_BYTES: must be in 0..1099511627776, got -1"},
        {"RING_TCP_STREAMS", "17", "RING_TCP_STREAMS: must be in 1..16, got 17"},
        {"RING_TCP_RECV_WORKER", "2", "RING_TCP_RECV_WORKER: expected 0, 1 or auto, got '2'"},
        {"RING_LOCAL_RANKS", "0", "RING_LOCAL_RANKS: must be in 1..1048576, got 0"},
        {"RING_TRANSPORT", "udp", "RING_TRANSPORT: expected tcp, shm, verbs or auto, got 'udp'"},
        {"RING_LOG_LEVEL", "loud",
         "RING_LOG_LEVEL: expected error, warn, info or debug, got 'loud'"},
    };
    ring_config cfg;
    one_rank(&cfg);
    ring_params p;
    ring_params_init(&p);
    p.config = &cfg;
    char err[256];
    CHECK(create(&p, err, sizeof err) == RING_OK);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        setenv(bad[i].name, bad[i].value, 1);
        err[0] = 0;
        ring_status st = create(&p, err, sizeof err);
        unsetenv(bad[i].name);
        if (st != RING_ERR_CONFIG || !strstr(err, bad[i].message))
            TEST_FAIL_RETURN("%s=%s: status %s, message \"%s\", expected \"%s\"", bad[i].name,
                             bad[i].value, ring_status_name(st), err, bad[i].message);
    }
    /* The environment is read at creation only: once created, changing it changes nothing. */
    CHECK(create(&p, err, sizeof err) == RING_OK);
}

typedef struct captured {
    int lines, infos;
    char first[512];
    int rank_seen;
} captured;

static void capture(void *ctx, ring_log_level level, int rank, const char *line)
{
    captured *c = ctx;
    if (c->lines++ == 0) snprintf(c->first, sizeof c->first, "%s", line);
    if (level == RING_LOG_INFO) c->infos++;
    c->rank_seen = rank;
}

/* A host program gets libring's lines through the callback, filtered by RING_LOG_LEVEL. */
static void test_log_callback(void)
{
    ring_config cfg;
    one_rank(&cfg);
    ring_params p;
    ring_params_init(&p);
    p.config = &cfg;
    captured cap = {.rank_seen = -2};
    p.log_fn = capture;
    p.log_ctx = &cap;
    char err[256];
    setenv("RING_LOG_LEVEL", "info", 1);
    CHECK(create(&p, err, sizeof err) == RING_OK);
    CHECK(cap.infos >= 1);
    CHECK(cap.rank_seen == 0);
    CHECK_STR(cap.first, "rank 0 of 1");
    CHECK(strchr(cap.first, '\n') == NULL);

    captured quiet = {0};
    p.log_ctx = &quiet;
    setenv("RING_LOG_LEVEL", "error", 1);
    CHECK(create(&p, err, sizeof err) == RING_OK);
    CHECK(quiet.lines == 0);
    unsetenv("RING_LOG_LEVEL");
}

/* RING_TCP_RECV_WORKER: 0 and 1 as asked; auto gives the receiving to the caller when the
 * host's ranks times three threads exceed the CPUs (here: more ranks than any host has). The
 * communicator's INFO line says which. */
static void test_recv_worker(void)
{
    static const struct {
        const char *worker, *local;
        int caller_receives;
    } cases[] = {{"auto", "1048576", 1}, {"1", "1048576", 0}, {"0", NULL, 1}, {NULL, "1048576", 0}};
    ring_config cfg;
    one_rank(&cfg);
    ring_params p;
    ring_params_init(&p);
    p.config = &cfg;
    p.log_fn = capture;
    char err[256];
    setenv("RING_LOG_LEVEL", "info", 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        captured cap = {0};
        p.log_ctx = &cap;
        if (cases[i].worker) setenv("RING_TCP_RECV_WORKER", cases[i].worker, 1);
        if (cases[i].local) setenv("RING_LOCAL_RANKS", cases[i].local, 1);
        CHECK(create(&p, err, sizeof err) == RING_OK);
        unsetenv("RING_TCP_RECV_WORKER");
        unsetenv("RING_LOCAL_RANKS");
        CHECK_STR(cap.first, "worker threads from");
        if ((strstr(cap.first, "the caller receives") != NULL) != cases[i].caller_receives)
            TEST_FAIL_RETURN("RING_TCP_RECV_WORKER=%s RING_LOCAL_RANKS=%s: \"%s\"",
                             cases[i].worker ? cases[i].worker : "(unset)",
                             cases[i].local ? cases[i].local : "(unset)", cap.first);
    }
    unsetenv("RING_LOG_LEVEL");
}

/* ring_config as an older ring.h declared it: the same fields up to tcp_streams, no more. */
typedef struct old_config {
    size_t struct_size;
    char master_ip[RING_IP_MAX];
    int master_port;
    int port;
    char right_ip[RING_IP_MAX];
    int right_port;
    int rank;
    int world_size;
} old_config;

static void test_config_growth(void)
{
    /* Heap blocks of exactly the old size: AddressSanitizer catches any write or read past. */
    old_config *old = malloc(sizeof *old);
    REQUIRE(old != NULL);
    memset(old, 0x5a, sizeof *old);
    ring_config_init_sized((ring_config *)old, sizeof *old);
    CHECK(old->struct_size == (sizeof *old));
    CHECK(strcmp(old->master_ip, "0.0.0.0") == 0);
    CHECK(old->world_size == 0);

    char err[256];
    const char *json =
        "{\"master_port\": 29500, \"port\": 29501, \"right_port\": 29502, \"rank\": 0, "
        "\"world_size\": 1, \"tcp_streams\": 2}";
    CHECK((ring_config_parse_sized(json, "old.json", (ring_config *)old, sizeof *old, err,
                                   sizeof err)) == RING_OK);
    CHECK(old->struct_size == (sizeof *old));
    CHECK(old->master_port == 29500);
    CHECK(old->world_size == 1);

    /* Fields the old struct lacks take their defaults in the communicator. */
    ring_params p;
    ring_params_init(&p);
    p.config = (const ring_config *)old;
    CHECK(create(&p, err, sizeof err) == RING_OK);
    free(old);

    /* A struct_size never set is refused, not read past. */
    ring_config cfg;
    one_rank(&cfg);
    cfg.struct_size = 3;
    p.config = &cfg;
    CHECK(create(&p, err, sizeof err) == RING_ERR_INVALID_ARG);
    CHECK_STR(err, "struct_size");

    /* ring_params from an older build: only struct_size and config. */
    struct {
        size_t struct_size;
        const ring_config *config;
    } *small = malloc(sizeof *small);
    REQUIRE(small != NULL);
    one_rank(&cfg);
    small->struct_size = sizeof *small;
    small->config = &cfg;
    CHECK((create((const ring_params *)small, err, sizeof err)) == RING_OK);
    free(small);
}

int main(void)
{
    unsetenv("RING_LOG_LEVEL");
    test_bad_values();
    test_log_callback();
    test_recv_worker();
    test_config_growth();
    TEST_DONE();
}
