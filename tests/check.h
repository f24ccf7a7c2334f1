/* SPDX-License-Identifier: MIT */
/* The C tests' checks, one style for every library (plain C, no cmocka: some run on the GPU
 * machine). A failed check prints "FAIL FILE:LINE:" and what failed, counts, and the test goes on;
 * REQUIRE(cond) does the same and returns from the (void) test function, for checks that
 * what follows depends on. TEST_DONE() ends main with 1 when any failed. Also the one way to find
 * the shared test data (models, fixtures): test_shared_dir(), and test_need_shared() to skip
 * without it. */
#ifndef TEST_CHECK_H
#define TEST_CHECK_H
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int test_failures __attribute__((unused));

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

/* CHECK with a printf-style message saying what was wrong. */
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);          \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

#define CHECK_STR(hay, needle)                                                                     \
    do {                                                                                           \
        if (!strstr((hay), (needle))) {                                                            \
            fprintf(stderr, "FAIL %s:%d: '%s' does not contain '%s'\n", __FILE__, __LINE__, (hay), \
                    (needle));                                                                     \
            test_failures++;                                                                       \
        }                                                                                          \
    } while (0)

/* A failure found by the test's own code (a comparison loop, a child's status): counted and
 * printed like a failed check. */
#define TEST_FAIL(...)                                                                             \
    do {                                                                                           \
        fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                       \
        fprintf(stderr, __VA_ARGS__);                                                              \
        fputc('\n', stderr);                                                                       \
        test_failures++;                                                                           \
    } while (0)

/* A comparison that reports either way, on stdout: "ok   MESSAGE" when ok, else "FAIL FILE:LINE:
 * MESSAGE", counted (the GPU tests print every comparison with its error and limit). */
#define TEST_REPORT(ok, ...) test_report_at(__FILE__, __LINE__, (ok), __VA_ARGS__)
static void test_report_at(const char *file, int line, int ok, const char *fmt, ...)
    __attribute__((format(printf, 4, 5), unused));
static void test_report_at(const char *file, int line, int ok, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (ok)
        printf("ok   ");
    else
        printf("FAIL %s:%d: ", file, line);
    vprintf(fmt, ap);
    printf("\n");
    va_end(ap);
    if (!ok) test_failures++;
}

/* CHECK that returns from the (void) function when it fails: what follows needs cond. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FAIL %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);          \
            test_failures++;                                                                       \
            return;                                                                                \
        }                                                                                          \
    } while (0)

/* TEST_FAIL, then return from the (void) function. */
#define TEST_FAIL_RETURN(...)                                                                      \
    do {                                                                                           \
        TEST_FAIL(__VA_ARGS__);                                                                    \
        return;                                                                                    \
    } while (0)

#define TEST_DONE()                                                                                \
    do {                                                                                           \
        if (test_failures) fprintf(stderr, "%d checks failed\n", test_failures);                   \
        return test_failures ? 1 : 0;                                                              \
    } while (0)

/* The shared test data: SHARED_DIR from the environment (the Makefile sets it for make check),
 * else TEST_SHARED_DIR (the build's ../shared beside the source tree), else ../shared. */
#ifndef TEST_SHARED_DIR
#define TEST_SHARED_DIR "../shared"
#endif
static inline const char *test_shared_dir(void)
{
    const char *d = getenv("SHARED_DIR");
    return d && *d ? d : TEST_SHARED_DIR;
}

/* Skips the test (exit 77) with a line naming the path when path does not exist. */
static inline void test_need_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        printf("SKIP: %s absent (the shared test data: set SHARED_DIR or put it beside the "
               "source tree as ../shared)\n",
               path);
        exit(77);
    }
}

/* The same for rel under the shared folder (NULL: the folder itself). */
static inline void test_need_shared(const char *rel)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s%s%s", test_shared_dir(), rel ? "/" : "", rel ? rel : "");
    test_need_path(path);
}

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
