/* SPDX-License-Identifier: MIT */
/* Streaming UTF-8 sanitiser (see utf8.h). Well-formed sequences follow Unicode table 3-7. */
#include "utf8.h"

#include <string.h>

/* Length of the sequence lead byte b starts, 0 when b cannot start one. */
static int seq_len(unsigned char b)
{
    if (b < 0x80) return 1;
    if (b >= 0xC2 && b <= 0xDF) return 2;
    if (b >= 0xE0 && b <= 0xEF) return 3;
    if (b >= 0xF0 && b <= 0xF4) return 4;
    return 0; /* continuation byte, overlong lead C0/C1, or beyond U+10FFFF */
}

/* Whether b may follow the held bytes (lead, and npend-1 continuations). The second byte's range
 * depends on the lead: it excludes overlong forms, surrogates and code points above U+10FFFF. */
static int continues(unsigned char lead, int npend, unsigned char b)
{
    unsigned char lo = 0x80, hi = 0xBF;
    if (npend == 1) {
        if (lead == 0xE0)
            lo = 0xA0;
        else if (lead == 0xED)
            hi = 0x9F;
        else if (lead == 0xF0)
            lo = 0x90;
        else if (lead == 0xF4)
            hi = 0x8F;
    }
    return b >= lo && b <= hi;
}

static size_t put_fffd(char *out)
{
    memcpy(out, "\xEF\xBF\xBD", 3);
    return 3;
}

void eng_utf8_init(eng_utf8_stream *s)
{
    memset(s, 0, sizeof(*s));
}

size_t eng_utf8_push(eng_utf8_stream *s, const char *in, size_t n, char *out)
{
    size_t w = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)in[i];
        if (s->npend > 0) {
            if (continues(s->pend[0], s->npend, b)) {
                s->pend[s->npend++] = b;
                if (s->npend == seq_len(s->pend[0])) {
                    memcpy(out + w, s->pend, (size_t)s->npend);
                    w += (size_t)s->npend;
                    s->npend = 0;
                }
                continue;
            }
            /* The held prefix is a maximal ill-formed subpart; b starts afresh. */
            w += put_fffd(out + w);
            s->npend = 0;
        }
        int len = seq_len(b);
        if (len == 1) {
            out[w++] = (char)b;
        } else if (len == 0) {
            w += put_fffd(out + w);
        } else {
            s->pend[0] = b;
            s->npend = 1;
        }
    }
    return w;
}

size_t eng_utf8_flush(eng_utf8_stream *s, char *out)
{
    size_t w = 0;
    if (s->npend > 0) w = put_fffd(out);
    s->npend = 0;
    return w;
}
