/* SPDX-License-Identifier: MIT */
/* --device-layers (mistral.rs's grammar) and the automatic split by free memory: every
 * mapping and every error, with made-up GPU counts and free bytes. */
#include "devmap.h"
#include "../check.h"

#include <stdio.h>
#include <string.h>

/* want: one char per layer, '0'..'9' a GPU ordinal, 'c' the CPU. */
static void map_ok(const char *spec, int visible, int n_layers, const char *want)
{
    int dev[64];
    char err[256] = "", got[65];
    eng_status st = eng_devmap_parse(spec, visible, n_layers, dev, err, sizeof(err));
    for (int l = 0; l < n_layers; l++)
        got[l] = dev[l] == ENG_DEV_CPU ? 'c' : (char)('0' + dev[l]);
    got[n_layers] = '\0';
    if (st != ENG_OK || strcmp(got, want)) {
        TEST_FAIL("\"%s\" (%d GPUs, %d layers): %s '%s', expected '%s'", spec, visible, n_layers,
                  eng_status_str(st), st ? err : got, want);
    }
}

static void map_err(const char *spec, int visible, int n_layers, const char *part)
{
    int dev[64];
    char err[256] = "";
    eng_status st = eng_devmap_parse(spec, visible, n_layers, dev, err, sizeof(err));
    char quoted[96];
    snprintf(quoted, sizeof(quoted), "\"%s\"", spec);
    if (st != ENG_ERR_INVALID_ARG || !strstr(err, part) || !strstr(err, quoted) ||
        strchr(err, '\n')) {
        TEST_FAIL("\"%s\": %s '%s', expected an error with '%s' naming the spec", spec,
                  eng_status_str(st), err, part);
    }
}

static void split_ok(const size_t *free_b, int n_dev, size_t layer, size_t reserve, int n_layers,
                     const char *want)
{
    int dev[64];
    char err[256] = "", got[65];
    eng_status st = eng_devmap_auto(free_b, n_dev, layer, reserve, n_layers, dev, err, sizeof(err));
    for (int l = 0; l < n_layers; l++)
        got[l] = dev[l] == ENG_DEV_CPU ? 'c' : (char)('0' + dev[l]);
    got[n_layers] = '\0';
    if (st != ENG_OK || strcmp(got, want)) {
        TEST_FAIL("split of %d layers over %d GPUs: %s '%s', expected '%s'", n_layers, n_dev,
                  eng_status_str(st), st ? err : got, want);
    }
}

static void describe(const char *spec, int visible, int n_layers, const char *want)
{
    int dev[64];
    char err[256], out[256];
    if (eng_devmap_parse(spec, visible, n_layers, dev, err, sizeof(err)) != ENG_OK) {
        TEST_FAIL("describe \"%s\": %s", spec, err);
        return;
    }
    eng_devmap_describe(dev, n_layers, out, sizeof(out));
    if (strcmp(out, want)) {
        TEST_FAIL("describe \"%s\": '%s', expected '%s'", spec, out, want);
    }
}

int main(void)
{
    /* A bare integer: ordinal 0 gets that many layers, the rest the CPU (the issue's
     * -n 3 on stories260K's 5 layers). */
    map_ok("3", 1, 5, "000cc");
    map_ok("5", 1, 5, "00000");
    map_ok("0", 2, 4, "cccc");
    /* ORD:NUM items in the spec's order, layers from 0. */
    map_ok("0:2;1:3", 2, 5, "00111");
    map_ok("1:2;0:1", 2, 5, "110cc");
    map_ok("0:1", 4, 3, "0cc");
    map_ok("2:0;3:2", 4, 3, "33c");
    map_ok("007:2", 8, 2, "77"); /* leading zeros are still integers */

    map_err("", 1, 5, "empty");
    map_err("x", 1, 5, "not an integer");
    map_err("-1", 1, 5, "not an integer");
    map_err("3.5", 1, 5, "not an integer");
    map_err("0:2;", 2, 5, "item 2 (\"\") is not ORD:NUM");
    map_err("0:2;;1:1", 2, 5, "item 2");
    map_err("0:2;1", 2, 5, "item 2 (\"1\") is not ORD:NUM");
    map_err("a:2", 2, 5, "ordinal \"a\" is not a non-negative integer");
    map_err(":2", 2, 5, "ordinal \"\" is not");
    map_err("0:x", 2, 5, "layer count \"x\" is not a non-negative integer");
    map_err("0:", 2, 5, "layer count \"\" is not");
    map_err("0:-2", 2, 5, "layer count \"-2\"");
    map_err("0:1:2", 2, 5, "layer count \"1:2\"");
    map_err("0:1;0:2", 2, 5, "ordinal 0 appears twice");
    map_err("1:1;0:1;1:1", 2, 5, "ordinal 1 appears twice");
    map_err("2:1", 2, 5, "ordinal 2 is unknown: 2 GPUs are visible (ordinals 0..1");
    map_err("1:1", 1, 5, "ordinal 1 is unknown: 1 GPU is visible");
    map_err("3", 0, 5, "ordinal 0 is unknown: no GPU is visible");
    map_err("0:2;1:3", 0, 5, "ordinal 0 is unknown: no GPU is visible");
    map_err("6", 1, 5, "6 layers, but the model has 5");
    map_err("0:3;1:3", 2, 5, "6 layers or more, but the model has 5");
    map_err("99999999999", 1, 5, "not an integer");

    describe("3", 1, 5, "layers 0-2 on GPU 0, layers 3-4 on the CPU");
    describe("0:1;1:3", 2, 5, "layer 0 on GPU 0, layers 1-3 on GPU 1, layer 4 on the CPU");

    /* The automatic split: capacity = (free - reserve) / layer bytes. */
    const size_t GB = 1000000000;
    size_t two_equal[2] = {10 * GB, 10 * GB};
    split_ok(two_equal, 2, 1 * GB, 0, 6, "000111");      /* room for 20: 3 + 3 */
    split_ok(two_equal, 2, 1 * GB, 8 * GB, 6, "0011cc"); /* room for 2 + 2 */
    size_t uneven[3] = {30 * GB, 10 * GB, 20 * GB};
    split_ok(uneven, 3, 1 * GB, 0, 12, "000000112222"); /* 30:10:20 of 12 = 6, 2, 4 */
    split_ok(uneven, 3, 1 * GB, 0, 7, "0000122");       /* 3.5, 1.17, 2.33: +1 to 0 */
    size_t one_small[2] = {3 * GB + 5, 500 * 1000 * 1000};
    split_ok(one_small, 2, 1 * GB, 0, 5, "000cc"); /* GPU 1 holds no layer */
    split_ok(NULL, 0, 1 * GB, 0, 3, "ccc");        /* no GPU: all on the CPU */
    size_t ties[2] = {5 * GB, 5 * GB};
    split_ok(ties, 2, 1 * GB, 0, 5, "00011"); /* a tie goes to ordinal 0 */
    int dev[4];
    char err[128];
    if (eng_devmap_auto(ties, 2, 0, 0, 4, dev, err, sizeof(err)) != ENG_ERR_INVALID_ARG) {
        TEST_FAIL("a layer of 0 bytes accepted");
    }
    if (test_failures) printf("%d failed\n", test_failures);
    TEST_DONE();
}
