/* SPDX-License-Identifier: MIT */
/* Simple (one to one) Unicode case mapping for the scripts chat templates meet most: ASCII,
 * Latin-1, Latin Extended-A, Greek and Cyrillic. Other characters keep their case, and the
 * mappings that change length (ß to SS) or depend on context (final sigma) are left out. */
#include "jt.h"

uint32_t jt_cp_upper(uint32_t c)
{
    if (c >= 'a' && c <= 'z') return c - 32;
    if (c < 0x80) return c;
    if (c >= 0xe0 && c <= 0xfe && c != 0xf7) return c - 0x20;
    if (c == 0xff) return 0x178;
    if (c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) return c & ~1u; /* even upper */
    if (c == 0x131) return 'I';
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) /* odd upper */
        return (c & 1) ? c : c - 1;
    if (c >= 0x14a && c <= 0x177) return c & ~1u;
    if (c == 0x17f) return 'S';
    if (c == 0x3ac) return 0x386;
    if (c >= 0x3ad && c <= 0x3af) return c - 0x25;
    if (c == 0x3c2) return 0x3a3;
    if (c >= 0x3b1 && c <= 0x3cb) return c - 0x20;
    if (c == 0x3cc) return 0x38c;
    if (c == 0x3cd || c == 0x3ce) return c - 0x3f;
    if (c >= 0x430 && c <= 0x44f) return c - 0x20;
    if (c >= 0x450 && c <= 0x45f) return c - 0x50;
    return c;
}

uint32_t jt_cp_lower(uint32_t c)
{
    if (c >= 'A' && c <= 'Z') return c + 32;
    if (c < 0x80) return c;
    if (c >= 0xc0 && c <= 0xde && c != 0xd7) return c + 0x20;
    if (c == 0x178) return 0xff;
    if (c >= 0x100 && c <= 0x137 && c != 0x130 && c != 0x131) return c | 1;
    if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17e)) return (c & 1) ? c + 1 : c;
    if (c >= 0x14a && c <= 0x177) return c | 1;
    if (c == 0x386) return 0x3ac;
    if (c >= 0x388 && c <= 0x38a) return c + 0x25;
    if (c == 0x38c) return 0x3cc;
    if (c == 0x38e || c == 0x38f) return c + 0x3f;
    if (c >= 0x391 && c <= 0x3ab && c != 0x3a2) return c + 0x20;
    if (c >= 0x410 && c <= 0x42f) return c + 0x20;
    if (c >= 0x400 && c <= 0x40f) return c + 0x50;
    return c;
}

int jt_cp_cased(uint32_t c)
{
    return jt_cp_upper(c) != c || jt_cp_lower(c) != c;
}

size_t jt_utf8_next(const char *s, size_t n, size_t i, uint32_t *cp)
{
    unsigned char c = (unsigned char)s[i];
    int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
    if (i + (size_t)extra >= n) extra = (int)(n - i - 1);
    uint32_t v = extra ? c & (0x3fu >> extra) : c;
    for (int k = 1; k <= extra; k++) {
        unsigned char d = (unsigned char)s[i + (size_t)k];
        if ((d & 0xc0) != 0x80) { /* not UTF-8: one byte, unchanged */
            *cp = 0xfffffffu;
            return i + 1;
        }
        v = (v << 6) | (d & 0x3f);
    }
    *cp = (c >= 0x80 && !extra) ? 0xfffffffu : v;
    return i + 1 + (size_t)extra;
}

void jt_buf_put_cp(jt_buf *b, uint32_t cp)
{
    char u[4];
    if (cp < 0x80) {
        jt_buf_putc(b, (char)cp);
        return;
    }
    if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        jt_buf_put(b, u, 2);
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        jt_buf_put(b, u, 3);
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        jt_buf_put(b, u, 4);
    }
}
