/* SPDX-License-Identifier: MIT */
/* Minimal checks for libcoll's tests (no cmocka: some run on the GPU machine). */
#ifndef COLL_TEST_H
#define COLL_TEST_H
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int coll_test_failures __attribute__((unused));

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);               \
            coll_test_failures++;                                                                  \
        }                                                                                          \
    } while (0)

#define CHECK_STR(hay, needle)                                                                     \
    do {                                                                                           \
        if (!strstr((hay), (needle))) {                                                            \
            fprintf(stderr, "%s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__, (hay),      \
                    (needle));                                                                     \
            coll_test_failures++;                                                                  \
        }                                                                                          \
    } while (0)

#define TEST_DONE()                                                                                \
    do {                                                                                           \
        if (coll_test_failures) fprintf(stderr, "%d checks failed\n", coll_test_failures);         \
        return coll_test_failures ? 1 : 0;                                                         \
    } while (0)

/* A fake environment: NULL-terminated name/value pairs. */
typedef struct fake_env {
    const char *kv[64];
} fake_env;

static inline const char *fake_getenv(const char *name, void *ctx)
{
    const fake_env *e = ctx;
    for (int i = 0; e->kv[i]; i += 2)
        if (!strcmp(e->kv[i], name)) return e->kv[i + 1];
    return NULL;
}
#endif
