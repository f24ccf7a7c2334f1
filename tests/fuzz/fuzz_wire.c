/* SPDX-License-Identifier: MIT */
/* libFuzzer target: bytes from the network -> the handshake decoder and the segment
 * header decoder. Whatever decodes must encode back to the same bytes. */
#include "wire.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    ring_hello h;
    if (ring_hello_decode(data, size, &h, err, sizeof err) == RING_OK) {
        unsigned char b[RING_HELLO_BYTES];
        ring_hello_encode(&h, b);
        if (memcmp(b, data, RING_HELLO_BYTES) != 0) abort();
        (void)ring_reject_str(h.reason);
    } else if (!err[0]) {
        abort();
    }
    ring_seg_header s;
    if (ring_seg_decode(data, size, &s, err, sizeof err) == RING_OK) {
        unsigned char b[RING_SEG_HEADER_BYTES];
        ring_seg_encode(&s, b);
        if (memcmp(b, data, RING_SEG_HEADER_BYTES) != 0) abort();
    } else if (!err[0]) {
        abort();
    }
    return 0;
}
