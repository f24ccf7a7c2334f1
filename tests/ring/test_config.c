/* SPDX-License-Identifier: MIT */
/* RING_CONFIG rules: every rule rejects with one line that names the file and the field. */
#include <stddef.h>
#include <stdint.h>
#include "../check.h"

#include "ring.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOOD1                                                                                      \
    "\"master_ip\": \"10.0.0.1\", \"master_port\": 29500, \"port\": 29501, "                       \
    "\"right_ip\": \"10.0.0.2\", \"right_port\": 29502"

typedef struct bad_case {
    const char *json;
    const char *message; /* must appear in the error line */
} bad_case;

static const bad_case bad_cases[] = {
    {"{" GOOD1 ", \"rank\": 1", "invalid JSON at line 1, column"},
    {"[1, 2]", "expected a JSON object, got an array"},
    {"{\"master_port\": 29500, \"port\": 29501, \"right_port\": 29502, \"rank\": 0}",
     "missing field 'world_size'"},
    {"{\"master_port\": 29500, \"right_port\": 29502, \"rank\": 0, \"world_size\": 2}",
     "missing field 'port'"},
    {"{\"master_port\": 29500, \"port\": 29501, \"rank\": 0, \"world_size\": 2}",
     "missing field 'right_port'"},
    {"{\"port\": 29501, \"right_port\": 29502, \"rank\": 0, \"world_size\": 2}",
     "missing field 'master_port'"},
    {"{\"master_port\": 29500, \"port\": 29501, \"right_port\": 29502, \"world_size\": 2}",
     "missing field 'rank'"},
    {"{" GOOD1 ", \"rank\": \"1\", \"world_size\": 2}",
     "field 'rank' must be an integer, got a string"},
    {"{" GOOD1 ", \"rank\": 1.5, \"world_size\": 2}", "field 'rank' must be an integer, got 1.5"},
    {"{\"master_ip\": 10, \"master_port\": 29500, \"port\": 29501, \"right_port\": 29502, "
     "\"rank\": 1, \"world_size\": 2}",
     "field 'master_ip' must be a string, got a number"},
    {"{\"master_port\": 29500, \"port\": 70000, \"right_port\": 29502, \"rank\": 0, "
     "\"world_size\": 2}",
     "field 'port' must be in 1..65535, got 70000"},
    {"{\"master_port\": 0, \"port\": 29501, \"right_port\": 29502, \"rank\": 0, \"world_size\": 2}",
     "field 'master_port' must be in 1..65535, got 0"},
    {"{\"master_port\": 29500, \"port\": 29501, \"right_port\": -3, \"rank\": 0, \"world_size\": "
     "2}",
     "field 'right_port' must be in 1..65535, got -3"},
    {"{" GOOD1 ", \"rank\": 4, \"world_size\": 4}",
     "field 'rank' (4) must be less than world_size (4)"},
    {"{" GOOD1 ", \"rank\": 0, \"world_size\": 0}",
     "field 'world_size' must be in 1..1048576, got 0"},
    {"{" GOOD1 ", \"rank\": 0, \"world_size\": 3}", "world_size must be a power of 2, got 3"},
    {"{" GOOD1 ", \"rank\": -1, \"world_size\": 2}", "field 'rank' must be in 0..1048576, got -1"},
    {"{\"master_port\": 29500, \"port\": 29501, \"right_port\": 29502, \"rank\": 1, "
     "\"world_size\": 2}",
     "field 'master_ip' is required when rank != 0 (this is rank 1)"},
    {"{\"master_port\": 29500, \"port\": 29500, \"right_port\": 29502, \"rank\": 0, "
     "\"world_size\": 2}",
     "rank 0 serves master_port and listens on port: they must differ, both are 29500"},
    {"{" GOOD1 ", \"rank\": 0, \"world_size\": 2, \"transport\": \"udp\"}",
     "field 'transport' must be \"tcp\", \"shm\", \"verbs\" or \"auto\", got \"udp\""},
    {"{" GOOD1 ", \"rank\": 0, \"world_size\": 2, \"job_id\": \"xyz\"}",
     "field 'job_id' must be an unsigned integer"},
    {"{\"master_ip\": \"\", \"master_port\": 29500, \"port\": 29501, \"right_port\": 29502, "
     "\"rank\": 1, \"world_size\": 2}",
     "field 'master_ip' must not be empty"},
};

static void test_bad_configs(void)
{
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        ring_config cfg;
        char err[512] = "";
        ring_status st = ring_config_parse(bad_cases[i].json, "cfg.json", &cfg, err, sizeof err);
        if (st != RING_ERR_CONFIG || !strstr(err, bad_cases[i].message) ||
            strncmp(err, "cfg.json: ", 10) || strchr(err, '\n')) {
            TEST_FAIL_RETURN("case %zu: status %s, message '%s', expected '%s'", i,
                             ring_status_name(st), err, bad_cases[i].message);
        }
    }
}

static void test_good_config_and_defaults(void)
{
    ring_config cfg;
    char err[256] = "";
    const char *json =
        "{\"master_port\": 29500, \"port\": 29501, \"right_port\": 29502, \"rank\": 0, "
        "\"world_size\": 4}";
    CHECK(ring_config_parse(json, "x", &cfg, err, sizeof err) == RING_OK);
    CHECK(strcmp(cfg.master_ip, "0.0.0.0") == 0);
    CHECK(strcmp(cfg.right_ip, "0.0.0.0") == 0);
    CHECK(cfg.world_size == 4);
    CHECK(cfg.rank == 0);
    CHECK(cfg.port == 29501);
    CHECK(cfg.transport == RING_TRANSPORT_TCP);
    CHECK(cfg.has_job_id == 0);

    json = "{" GOOD1
           ", \"rank\": 3, \"world_size\": 8, \"job_id\": \"0x10\", \"transport\": \"auto\"}";
    CHECK(ring_config_parse(json, "x", &cfg, err, sizeof err) == RING_OK);
    CHECK(strcmp(cfg.master_ip, "10.0.0.1") == 0);
    CHECK(strcmp(cfg.right_ip, "10.0.0.2") == 0);
    CHECK(cfg.job_id == 16);
    CHECK(cfg.transport == RING_TRANSPORT_AUTO);

    json = "{" GOOD1 ", \"rank\": 1, \"world_size\": 2, \"transport\": \"shm\"}";
    CHECK(ring_config_parse(json, "x", &cfg, err, sizeof err) == RING_OK);
    CHECK(cfg.transport == RING_TRANSPORT_SHM);
    json = "{" GOOD1 ", \"rank\": 1, \"world_size\": 2, \"transport\": \"shared\"}";
    CHECK(ring_config_parse(json, "x", &cfg, err, sizeof err) == RING_ERR_CONFIG);
    CHECK(strstr(err, "\"shm\"") != NULL);
    /* The one table of names that the config, RING_TRANSPORT and ringrun all read. */
    CHECK(strcmp(ring_transport_name(RING_TRANSPORT_TCP), "tcp") == 0);
    CHECK(strcmp(ring_transport_name(RING_TRANSPORT_VERBS), "verbs") == 0);
    CHECK(strcmp(ring_transport_name(RING_TRANSPORT_AUTO), "auto") == 0);
    CHECK(strcmp(ring_transport_name(RING_TRANSPORT_SHM), "shm") == 0);
    CHECK(ring_transport_name((ring_transport_kind)(RING_TRANSPORT_SHM + 1)) == NULL);
    CHECK(ring_transport_name((ring_transport_kind)-1) == NULL);
}

static void test_world_size_one(void)
{
    ring_config cfg;
    char err[256] = "";
    /* One rank: port may equal master_port, nothing is ever bound twice. */
    const char *json =
        "{\"master_port\": 29500, \"port\": 29500, \"right_port\": 29500, \"rank\": 0, "
        "\"world_size\": 1}";
    CHECK(ring_config_parse(json, "x", &cfg, err, sizeof err) == RING_OK);
}

static void test_files(void)
{
    ring_config cfg;
    char err[512] = "";
    CHECK(ring_config_load(NULL, &cfg, err, sizeof err) == RING_ERR_CONFIG);
    CHECK_STR(err, "RING_CONFIG is not set");
    CHECK(ring_config_load("/nonexistent/ring.json", &cfg, err, sizeof err) == RING_ERR_CONFIG);
    CHECK(strcmp(err, "/nonexistent/ring.json: cannot open: No such file or directory") == 0);

    char path[] = "/tmp/test_config_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    ring_config w;
    ring_config_init(&w);
    w.master_port = 1000;
    w.port = 1001;
    w.right_port = 1002;
    w.rank = 1;
    w.world_size = 2;
    strcpy(w.master_ip, "127.0.0.1");
    w.job_id = 0xdeadbeefcafef00dull;
    w.has_job_id = 1;
    CHECK(ring_config_write(path, &w, err, sizeof err) == RING_OK);
    CHECK(ring_config_load(path, &cfg, err, sizeof err) == RING_OK);
    CHECK(cfg.rank == 1);
    CHECK(cfg.right_port == 1002);
    CHECK(cfg.job_id == 0xdeadbeefcafef00dull);

    FILE *f = fopen(path, "w");
    fputs("{\n  \"master_port\": 1,\n  oops\n}", f);
    fclose(f);
    CHECK(ring_config_load(path, &cfg, err, sizeof err) == RING_ERR_CONFIG);
    CHECK_STR(err, "invalid JSON at line 3, column");
    CHECK_STR(err, path);
    unlink(path);
}

static void test_names(void)
{
    ring_dtype t;
    ring_op op;
    CHECK(ring_dtype_parse("float", &t) == 0);
    CHECK(t == RING_F32);
    CHECK(ring_dtype_parse("bf16", &t) == 0);
    CHECK(t == RING_BF16);
    CHECK(ring_dtype_parse("f8", &t) == -1);
    CHECK(ring_op_parse("avg", &op) == 0);
    CHECK(op == RING_AVG);
    CHECK(!ring_op_valid_for(RING_AVG, RING_I32));
    CHECK(ring_op_valid_for(RING_AVG, RING_BF16));
    CHECK(strcmp(ring_status_str(RING_ERR_TIMEOUT), "timed out") == 0);
    CHECK(strcmp(ring_status_name(RING_ERR_TIMEOUT), "RING_ERR_TIMEOUT") == 0);
    REQUIRE(ring_knobs()[0].name != NULL);
}

int main(void)
{
    test_bad_configs();
    test_good_config_and_defaults();
    test_world_size_one();
    test_files();
    test_names();
    TEST_DONE();
}
