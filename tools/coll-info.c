/* SPDX-License-Identifier: MIT */
/* coll-info: print the provider libcoll would choose in this environment, the layout,
 * and every knob (environment variable) with its value, default and meaning. */
#include "coll.h"

#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

static void usage(FILE *out)
{
    fprintf(out, "usage: coll-info [--provider local|nccl|ring] [--gpus N]\n"
                 "  --provider P  print what forcing provider P would give\n"
                 "  --gpus N      pretend N GPUs are visible (default: ask CUDA)\n");
}

int main(int argc, char **argv)
{
    coll_params p;
    coll_params_init(&p);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--provider") && i + 1 < argc) {
            p.provider = argv[++i];
        } else if (!strcmp(argv[i], "--gpus") && i + 1 < argc) {
            char *end;
            long n = strtol(argv[++i], &end, 10);
            if (*end || n < 0 || n > 1024) {
                fprintf(stderr, "coll-info: --gpus: expected 0..1024, got '%s'\n", argv[i]);
                return 2;
            }
            p.visible_devices = (int)n;
        } else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "coll-info: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    coll_print_config(stdout, &p);
    if (fflush(stdout) != 0 || ferror(stdout)) { /* a full disk or closed pipe loses the report */
        fprintf(stderr, "coll-info: cannot write to standard output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
