/* SPDX-License-Identifier: MIT */
/* Streaming UTF-8 sanitiser for generated text: byte-level BPE pieces may split a character
 * across tokens or be invalid on their own; what reaches a user must be valid UTF-8. */
#ifndef ENG_UTF8_H
#define ENG_UTF8_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Turns a byte stream of decoded token pieces into valid UTF-8: an incomplete trailing
 * sequence is held back until the next push completes it, invalid bytes become U+FFFD
 * (as Hugging Face decoding does). Not thread-safe per stream. */
typedef struct eng_utf8_stream {
    unsigned char pend[4];
    int npend;
} eng_utf8_stream;

void eng_utf8_init(eng_utf8_stream *s);
/* Appends the valid UTF-8 of in[0..n) to out; out must hold 3*(n+4) bytes; returns bytes written.
 * Each maximal ill-formed subpart becomes one U+FFFD (Unicode's recommended practice, which is
 * what Rust's from_utf8_lossy and Python's errors="replace" do). */
size_t eng_utf8_push(eng_utf8_stream *s, const char *in, size_t n, char *out);
/* Emits what is still held back (as U+FFFD), returns bytes written (out holds >= 12). */
size_t eng_utf8_flush(eng_utf8_stream *s, char *out);

#ifdef __cplusplus
}
#endif

#endif
