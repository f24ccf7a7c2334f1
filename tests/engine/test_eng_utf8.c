/* SPDX-License-Identifier: MIT */
/* The streaming UTF-8 sanitiser (engine/utf8.h): valid text passes unchanged however it is split,
 * incomplete sequences are held back until completed, and each maximal ill-formed subpart becomes
 * one U+FFFD, as Python's bytes.decode(errors="replace") and Rust's from_utf8_lossy give. */
#include "utf8.h"
#include "../check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Pushes in (len bytes) split at every cut in cuts (ascending, -1 terminated), then flushes. */
static void check_split(const char *name, const char *in, size_t len, const int *cuts,
                        const char *want, size_t wlen)
{
    eng_utf8_stream s;
    eng_utf8_init(&s);
    char *out = malloc(3 * (len + 4) * (len + 1) + 12);
    size_t w = 0, at = 0;
    for (int i = 0;; i++) {
        size_t end = cuts[i] < 0 ? len : (size_t)cuts[i];
        w += eng_utf8_push(&s, in + at, end - at, out + w);
        at = end;
        if (cuts[i] < 0) break;
    }
    w += eng_utf8_flush(&s, out + w);
    if (w != wlen || memcmp(out, want, w) != 0) {
        printf("FAIL: %s: got %zu bytes:", name, w);
        for (size_t i = 0; i < w; i++)
            printf(" %02x", (unsigned char)out[i]);
        printf(", want %zu bytes:", wlen);
        for (size_t i = 0; i < wlen; i++)
            printf(" %02x", (unsigned char)want[i]);
        printf("\n");
        test_failures++;
    }
    free(out);
}

/* Every way of cutting in into two and three pushes gives want. */
static void check(const char *name, const char *in, size_t len, const char *want, size_t wlen)
{
    int none[] = {-1};
    check_split(name, in, len, none, want, wlen);
    for (size_t a = 0; a <= len; a++) {
        int one[] = {(int)a, -1};
        check_split(name, in, len, one, want, wlen);
        for (size_t b = a; b <= len; b++) {
            int two[] = {(int)a, (int)b, -1};
            check_split(name, in, len, two, want, wlen);
        }
    }
}

#define R "\xEF\xBF\xBD" /* U+FFFD */
#define CASE(name, in, want) check(name, in, sizeof(in) - 1, want, sizeof(want) - 1)

int main(void)
{
    CASE("ascii", "Hello, world", "Hello, world");
    CASE("two-byte", "caf\xC3\xA9", "caf\xC3\xA9");
    CASE("three-byte", "\xE2\x82\xAC 5", "\xE2\x82\xAC 5");
    CASE("four-byte", "\xF0\x9F\x98\x80!", "\xF0\x9F\x98\x80!");
    CASE("max code point", "\xF4\x8F\xBF\xBF", "\xF4\x8F\xBF\xBF");
    CASE("lone continuation", "a\x80z", "a" R "z");
    CASE("two continuations", "\x80\xBF", R R);
    CASE("truncated then ascii", "\xE2\x82z", R "z");
    CASE("truncated at end", "ok\xF0\x9F\x98", "ok" R);
    CASE("truncated then lead", "\xC3\xE2\x82\xAC", R "\xE2\x82\xAC");
    CASE("overlong C0", "\xC0\xAF", R R);
    CASE("overlong E0", "\xE0\x80\xAF", R R R);
    CASE("surrogate", "\xED\xA0\x80", R R R);
    CASE("above U+10FFFF", "\xF4\x90\x80\x80", R R R R);
    CASE("F5 lead", "\xF5\x80", R R);
    CASE("FF", "x\xFFy", "x" R "y");
    CASE("NUL passes", "a\0b", "a\0b");
    /* An incomplete sequence produces nothing until completed or broken. */
    eng_utf8_stream s;
    eng_utf8_init(&s);
    char out[64];
    size_t w = eng_utf8_push(&s, "\xE2\x82", 2, out);
    if (w != 0 || s.npend != 2) TEST_FAIL("held back %zu bytes written", w);
    w = eng_utf8_push(&s, "\xAC", 1, out);
    if (w != 3 || memcmp(out, "\xE2\x82\xAC", 3) != 0) TEST_FAIL("completion");
    if (eng_utf8_flush(&s, out) != 0) TEST_FAIL("flush after complete");
    /* The worst case fits the documented bound 3*(n+4). */
    eng_utf8_init(&s);
    eng_utf8_push(&s, "\xF0\x9F\x98", 3, out);
    w = eng_utf8_push(&s, "\xF0", 1, out);
    w += eng_utf8_flush(&s, out + w);
    if (w != 6) TEST_FAIL("bound case wrote %zu", w);
    if (test_failures) return 1;
    printf("utf8: all cases OK\n");
    return 0;
}
