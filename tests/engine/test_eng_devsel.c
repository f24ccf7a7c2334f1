/* SPDX-License-Identifier: MIT */
/* The engine's device selection with fake GPU counts, builds and environments: every mode
 * of the mistral.rs page and every error, each error one line naming what to change. */
#include <config.h>

#include "../libcoll/coll.h"
#include "devmap.h"
#include "../check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct fake {
    const char *kv[16]; /* name, value, ..., NULL */
} fake;

static const char *fake_get(const char *name, void *ctx)
{
    const fake *e = ctx;
    for (int i = 0; e->kv[i]; i += 2)
        if (!strcmp(e->kv[i], name)) return e->kv[i + 1];
    return NULL;
}

enum {
    FULL = COLL_BUILT_NCCL | COLL_BUILT_RING | COLL_BUILT_CUDA,
    NO_NCCL_BUILT = FULL & ~COLL_BUILT_NCCL
};

static eng_place_facts facts(int visible, unsigned built, fake *env)
{
    eng_place_facts f = {.visible = visible,
                         .cuda_backend = 1,
                         .coll_built = built,
                         .getenv_fn = fake_get,
                         .getenv_ctx = env,
                         .device = ENG_DEVICE_AUTO,
                         .n_heads = 32,
                         .n_kv_heads = 8};
    return f;
}

static void want_mode(const char *what, const eng_place_facts *f, eng_place_mode mode, int tp,
                      int gpus, int auto_split, const char *warning)
{
    eng_place p;
    char err[512] = "";
    eng_status st = eng_place_select(f, &p, err, sizeof(err));
    if (st != ENG_OK || p.mode != mode || p.tp_size != tp || p.gpus != gpus ||
        p.auto_split != auto_split || (warning && !strstr(p.warning, warning)) ||
        (!warning && p.warning[0])) {
        printf("FAIL %s: %s%s mode '%s' tp %d gpus %d auto %d warning '%s'; expected '%s' tp %d "
               "gpus %d auto %d\n",
               what, eng_status_str(st), st ? err : "", st ? "-" : eng_place_name(p.mode),
               p.tp_size, p.gpus, p.auto_split, p.warning, eng_place_name(mode), tp, gpus,
               auto_split);
        test_failures++;
    }
}

static void want_err(const char *what, const eng_place_facts *f, eng_status want, const char *a,
                     const char *b)
{
    eng_place p;
    char err[512] = "";
    eng_status st = eng_place_select(f, &p, err, sizeof(err));
    if (st != want || !strstr(err, a) || (b && !strstr(err, b)) || strchr(err, '\n')) {
        TEST_FAIL("%s: %s '%s'; expected %s with '%s'%s%s", what, eng_status_str(st), err,
                  eng_status_str(want), a, b ? " and " : "", b ? b : "");
    }
}

/* eng_place_apply: the selection against a communicator, the load parameters and the line. */
static void want_apply(const char *what, const eng_place_facts *f, const eng_coll *comm,
                       eng_device dev, int gpu, int auto_split, const char *line_has)
{
    eng_load_params lp;
    eng_load_params_init(&lp);
    eng_place pl;
    char line[512] = "", err[512] = "";
    eng_status st = eng_place_apply(f, comm, &lp, &pl, line, sizeof(line), err, sizeof(err));
    if (st != ENG_OK || lp.device != dev || lp.gpu != gpu || lp.auto_split != auto_split ||
        (f->device_layers && pl.mode == ENG_PLACE_LAYERS && lp.device_layers != f->device_layers) ||
        !strstr(line, line_has) || strchr(line, '\n')) {
        printf("FAIL apply %s: %s%s device %d gpu %d auto %d line '%s'; expected device %d gpu %d "
               "auto %d, line with '%s'\n",
               what, eng_status_str(st), err, (int)lp.device, lp.gpu, lp.auto_split, line, (int)dev,
               gpu, auto_split, line_has);
        test_failures++;
    }
}

static void want_apply_err(const char *what, const eng_place_facts *f, const eng_coll *comm,
                           eng_status want, const char *a)
{
    eng_load_params lp;
    eng_load_params_init(&lp);
    eng_place pl;
    char line[512], err[512] = "";
    eng_status st = eng_place_apply(f, comm, &lp, &pl, line, sizeof(line), err, sizeof(err));
    if (st != want || !strstr(err, a) || strchr(err, '\n')) {
        TEST_FAIL("apply %s: %s '%s'; expected %s with '%s'", what, eng_status_str(st), err,
                  eng_status_str(want), a);
    }
}

int main(void)
{
    char cfg2[] = "/tmp/eng-devsel-XXXXXX", cfg8[] = "/tmp/eng-devsel-XXXXXX";
    const char *cfg_body = "{\"master_ip\": \"127.0.0.1\", \"master_port\": 1, \"port\": 2, "
                           "\"right_ip\": \"127.0.0.1\", \"right_port\": 3, \"rank\": 0, "
                           "\"world_size\": %d}\n";
    char *cfgs[2] = {cfg2, cfg8};
    for (int i = 0; i < 2; i++) {
        int fd = mkstemp(cfgs[i]);
        FILE *fp = fd >= 0 ? fdopen(fd, "w") : NULL;
        if (!fp) {
            printf("FAIL: cannot write a ring config in /tmp\n");
            return 1;
        }
        fprintf(fp, cfg_body, i ? 8 : 2); /* the ring wants a power of 2 */
        fclose(fp);
    }
    fake none = {{NULL}};
    fake no_nccl = {{"MISTRALRS_NO_NCCL", "1", NULL}};
    fake ring2 = {{"RING_CONFIG", cfg2, "MISTRALRS_NO_NCCL", "1", NULL}};
    fake ring8 = {{"RING_CONFIG", cfg8, "MISTRALRS_NO_NCCL", "1", NULL}};
    fake ring2_nccl = {{"RING_CONFIG", cfg2, NULL}};
    fake ring_missing = {{"RING_CONFIG", "/nonexistent/ring.json", "MISTRALRS_NO_NCCL", "1", NULL}};
    fake mn = {{"MISTRALRS_MN_GLOBAL_WORLD_SIZE", "4", "MISTRALRS_MN_LOCAL_WORLD_SIZE", "2",
                "MISTRALRS_MN_HEAD_NUM_WORKERS", "1", "MISTRALRS_MN_HEAD_PORT", "1234", NULL}};
    eng_place_facts f;

    /* One rank. */
    f = facts(0, FULL, &none);
    want_mode("no GPU", &f, ENG_PLACE_CPU, 1, 0, 0, NULL);
    f = facts(1, FULL, &none);
    want_mode("one GPU", &f, ENG_PLACE_GPU, 1, 1, 0, NULL);
    f = facts(4, FULL, &no_nccl);
    want_mode("4 GPUs, MISTRALRS_NO_NCCL=1", &f, ENG_PLACE_LAYERS, 1, 4, 1, NULL);
    f = facts(4, NO_NCCL_BUILT, &none);
    want_mode("4 GPUs, no NCCL built", &f, ENG_PLACE_LAYERS, 1, 4, 1, NULL);
    f = facts(4, FULL, &no_nccl);
    f.device_layers = "0:2;1:2";
    want_mode("4 GPUs, no NCCL, --device-layers", &f, ENG_PLACE_LAYERS, 1, 4, 0, NULL);
    f = facts(1, FULL, &none);
    f.device_layers = "3";
    want_mode("one GPU, -n 3 (CPU offload)", &f, ENG_PLACE_LAYERS, 1, 1, 0, NULL);
    f = facts(4, FULL, &none);
    f.device = ENG_DEVICE_CPU;
    want_mode("--device cpu with 4 GPUs", &f, ENG_PLACE_CPU, 1, 0, 0, NULL);
    f = facts(4, FULL, &none);
    f.cuda_backend = 0;
    want_mode("no CUDA backend, 4 GPUs", &f, ENG_PLACE_CPU, 1, 0, 0, NULL);
    f = facts(1, FULL, &none);
    f.device = ENG_DEVICE_CUDA;
    want_mode("--device cuda, one GPU", &f, ENG_PLACE_GPU, 1, 1, 0, NULL);

    /* NCCL tensor parallelism over every visible GPU. */
    f = facts(4, FULL, &none);
    want_mode("4 GPUs, NCCL", &f, ENG_PLACE_NCCL_TP, 4, 1, 0, NULL);
    f = facts(2, FULL, &ring2_nccl);
    want_mode("NCCL wins over RING_CONFIG", &f, ENG_PLACE_NCCL_TP, 2, 1, 0,
              "RING_CONFIG is ignored");
    f = facts(3, FULL, &none);
    want_err("3 GPUs, 32 heads", &f, ENG_ERR_LAYOUT,
             "Total number of attention heads (32) must be divisible by tensor parallel size (3).",
             "CUDA_VISIBLE_DEVICES");
    f = facts(16, FULL, &none);
    f.n_heads = 32;
    f.n_kv_heads = 6;
    want_err("16 GPUs, 6 KV heads", &f, ENG_ERR_LAYOUT,
             "Tensor parallel size (16) must be divisible by total number of KV heads (6) when KV "
             "heads are replicated.",
             NULL);
    f = facts(4, FULL, &none);
    f.device_layers = "0:2";
    want_err("--device-layers with NCCL", &f, ENG_ERR_INVALID_ARG, "MISTRALRS_NO_NCCL=1",
             "\"0:2\"");

#ifdef HAVE_RING
    /* The ring. */
    f = facts(2, FULL, &ring2);
    want_mode("RING_CONFIG, 2 GPUs", &f, ENG_PLACE_RING_TP, 2, 1, 0, NULL);
    f = facts(0, NO_NCCL_BUILT, &ring2);
    want_mode("RING_CONFIG on CPUs", &f, ENG_PLACE_RING_TP, 2, 0, 0, NULL);
    f = facts(4, FULL, &ring2_nccl);
    f.device = ENG_DEVICE_CPU;
    want_mode("RING_CONFIG, --device cpu beside 4 GPUs", &f, ENG_PLACE_RING_TP, 2, 0, 0, NULL);
    f = facts(1, FULL, &ring_missing);
    want_mode("RING_CONFIG that does not load", &f, ENG_PLACE_RING_TP, -1, 1, 0, NULL);
    f = facts(2, FULL, &ring8);
    f.n_kv_heads = 6;
    want_err("ring of 8, 6 KV heads", &f, ENG_ERR_LAYOUT,
             "Tensor parallel size (8) must be divisible by total number of KV heads (6) when KV "
             "heads are replicated.",
             "the world size in RING_CONFIG");
    f = facts(2, FULL, &ring2);
    f.device_layers = "1";
    want_err("--device-layers with the ring", &f, ENG_ERR_INVALID_ARG, "unset RING_CONFIG",
             "\"1\"");

#endif

    /* Multi-node NCCL. */
    f = facts(2, FULL, &mn);
    want_mode("MISTRALRS_MN_*, head of 2 nodes x 2", &f, ENG_PLACE_NCCL_MN, 4, 1, 0, NULL);
    f = facts(2, FULL, &mn);
    f.device_layers = "0:1";
    want_err("--device-layers with multi-node", &f, ENG_ERR_INVALID_ARG,
             "unset it, or drop --device-layers", "MISTRALRS_MN_GLOBAL_WORLD_SIZE");
    f = facts(2, NO_NCCL_BUILT, &mn);
    want_err("multi-node without NCCL", &f, ENG_ERR_COLL, "built without NCCL", NULL);
    f = facts(2, FULL, &mn);
    f.n_heads = 10;
    f.n_kv_heads = 10;
    want_err("multi-node, 4 ranks, 10 heads", &f, ENG_ERR_LAYOUT,
             "(tensor parallel size 4: MISTRALRS_MN_GLOBAL_WORLD_SIZE)", NULL);

    /* The flags' own errors. */
    f = facts(0, FULL, &none);
    f.device = ENG_DEVICE_CUDA;
    want_err("--device cuda, no GPU", &f, ENG_ERR_INVALID_ARG, "--device cuda: no GPU is visible",
             NULL);
    f = facts(2, FULL, &none);
    f.device = ENG_DEVICE_CUDA;
    f.cuda_backend = 0;
    want_err("--device cuda, no backend", &f, ENG_ERR_UNSUPPORTED, "no CUDA backend", NULL);
    f = facts(2, FULL, &no_nccl);
    f.device = ENG_DEVICE_CPU;
    f.device_layers = "0:1";
    want_err("--device-layers with --device cpu", &f, ENG_ERR_INVALID_ARG, "--device cpu",
             "\"0:1\"");
    f = facts(0, FULL, &none);
    f.device_layers = "2";
    want_err("--device-layers without a GPU", &f, ENG_ERR_INVALID_ARG, "none is visible", NULL);

    /* Applied to the communicator ringinfer made (provider set) or a harness's (NULL). */
    eng_coll local0 = {.rank = 0, .size = 1, .gpu = 0, .provider = "local"};
    eng_coll host = {.rank = 0, .size = 1, .gpu = -1, .provider = "local"};
    f = facts(1, FULL, &none);
    want_apply("one GPU", &f, &local0, ENG_DEVICE_CUDA, 0, 0,
               "layout: one GPU; provider local, tensor parallel 1, rank 0 on GPU 0");
    f = facts(0, FULL, &none);
    want_apply("no GPU", &f, &host, ENG_DEVICE_CPU, 0, 0, "rank 0 on the CPU");
    want_apply("no communicator", &f, NULL, ENG_DEVICE_CPU, 0, 0, "tensor parallel 1");
    f = facts(4, FULL, &no_nccl);
    want_apply("4 GPUs, no NCCL: split", &f, &local0, ENG_DEVICE_CUDA, 0, 1,
               "layers split by free memory over 4 GPUs");
    f = facts(1, FULL, &none);
    f.device_layers = "3";
    want_apply("-n 3 on one GPU", &f, &local0, ENG_DEVICE_CUDA, 0, 0,
               "--device-layers \"3\" over 1 visible GPU");
    eng_coll nccl3 = {.rank = 3, .size = 4, .gpu = 3, .provider = "nccl"};
    f = facts(4, FULL, &none);
    want_apply("NCCL rank 3", &f, &nccl3, ENG_DEVICE_CUDA, 3, 0,
               "NCCL tensor parallelism, one process per visible GPU; provider nccl, tensor "
               "parallel 4, rank 3 on GPU 3");
    eng_coll nccl2 = {.rank = 0, .size = 2, .gpu = 0, .provider = "nccl"};
    want_apply_err("NCCL of 2, 4 GPUs seen", &f, &nccl2, ENG_ERR_COLL,
                   "the communicator is nccl over 2 ranks, but the device selection gives nccl "
                   "over 4");
    eng_coll harness = {.rank = 1, .size = 2};
    f = facts(0, FULL, &none);
    want_apply("a harness of 2 on the CPU", &f, &harness, ENG_DEVICE_CPU, 0, 0,
               "tensor parallel 2, rank 1 on the CPU");
    f = facts(1, FULL, &none);
    f.device_layers = "2";
    want_apply_err("a harness of 2 with --device-layers", &f, &harness, ENG_ERR_INVALID_ARG,
                   "this run is tensor parallel over 2 ranks: drop --device-layers");
#ifdef HAVE_RING
    eng_coll ring1 = {.rank = 1, .size = 2, .gpu = 0, .provider = "ring"};
    f = facts(1, FULL, &ring2);
    want_apply("ring rank 1, both on GPU 0", &f, &ring1, ENG_DEVICE_CUDA, 0, 0,
               "ring tensor parallelism (RING_CONFIG); provider ring, tensor parallel 2, rank 1 "
               "on GPU 0");
    eng_coll ring1g1 = {.rank = 1, .size = 2, .gpu = 1, .provider = "ring"};
    f = facts(2, FULL, &ring2);
    want_apply("ring rank 1 on GPU 1", &f, &ring1g1, ENG_DEVICE_CUDA, 1, 0, "rank 1 on GPU 1");
    f = facts(2, FULL, &ring2);
    f.device = ENG_DEVICE_CPU;
    want_apply("ring, --device cpu", &f, &ring1g1, ENG_DEVICE_CPU, 0, 0, "rank 1 on the CPU");
    eng_coll local_ring = {.rank = 0, .size = 1, .gpu = 0, .provider = "local"};
    f = facts(1, FULL, &ring2);
    want_apply_err("local communicator, RING_CONFIG in the selection", &f, &local_ring,
                   ENG_ERR_COLL, "the communicator is local over 1 ranks");
#endif

    unlink(cfg2);
    unlink(cfg8);
    if (test_failures) printf("%d failed\n", test_failures);
    TEST_DONE();
}
