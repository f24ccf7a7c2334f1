/* SPDX-License-Identifier: MIT */
/* CRC32C: the standard check value, both implementations agree on every length and
 * alignment, incremental use, and the segment-header codec round trip and rejections.
 * Prints the hardware path's speed (informational, never asserted). */
#include "../check.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint32_t ring_crc32c_portable(uint32_t crc, const void *buf, size_t len);

int main(void)
{
    CHECK_MSG(ring_crc32c(0, "123456789", 9) == 0xE3069283u, "check value: 0x%08x",
              ring_crc32c(0, "123456789", 9));
    CHECK_MSG(ring_crc32c_portable(0, "123456789", 9) == 0xE3069283u, "portable check value");
    CHECK_MSG(ring_crc32c(0, "", 0) == 0, "empty");
    unsigned char buf[4096 + 16];
    for (size_t i = 0; i < sizeof buf; i++)
        buf[i] = (unsigned char)(i * 131 + 7);
    for (size_t off = 0; off < 9; off++)
        for (size_t len = 0; len < 300; len++)
            CHECK_MSG(ring_crc32c(0, buf + off, len) == ring_crc32c_portable(0, buf + off, len),
                      "off %zu len %zu", off, len);
    uint32_t whole = ring_crc32c(0, buf, 4096);
    CHECK_MSG(ring_crc32c(ring_crc32c(0, buf, 1000), buf + 1000, 3096) == whole, "incremental");
    buf[17] ^= 4;
    CHECK_MSG(ring_crc32c(0, buf, 4096) != whole, "a flipped bit changes the CRC");

    ring_seg_header h = {.coll = 1,
                         .dtype = 2,
                         .op = 3,
                         .flags = RING_SEG_FLAG_CRC,
                         .seq = 77,
                         .step = 5,
                         .count = 1ull << 40,
                         .offset = 262144,
                         .len = 4096,
                         .crc = 0xdeadbeef},
                    g;
    unsigned char w[RING_SEG_HEADER_BYTES];
    char err[200];
    ring_seg_encode(&h, w);
    CHECK_MSG(ring_seg_decode(w, sizeof w, &g, err, sizeof err) == RING_OK, "decode: %s", err);
    CHECK_MSG(!memcmp(&h, &g, sizeof h) ||
                  (g.seq == 77 && g.step == 5 && g.count == 1ull << 40 && g.offset == 262144 &&
                   g.len == 4096 && g.crc == 0xdeadbeef),
              "round trip");
    CHECK_MSG(ring_seg_decode(w, sizeof w - 1, &g, err, sizeof err) == RING_ERR_PROTOCOL, "short");
    w[0] ^= 1;
    CHECK_MSG(ring_seg_decode(w, sizeof w, &g, err, sizeof err) == RING_ERR_PROTOCOL &&
                  strstr(err, "magic"),
              "magic");
    w[0] ^= 1;
    w[7] |= 0x80;
    CHECK_MSG(ring_seg_decode(w, sizeof w, &g, err, sizeof err) == RING_ERR_PROTOCOL, "flags");

    size_t n = 64u << 20;
    unsigned char *big = malloc(n);
    if (big) {
        memset(big, 0x5a, n);
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        volatile uint32_t sink = ring_crc32c(0, big, n);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        clock_gettime(CLOCK_MONOTONIC, &a);
        sink = ring_crc32c_portable(0, big, n);
        clock_gettime(CLOCK_MONOTONIC, &b);
        double t = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
        (void)sink;
        printf("crc32c over 64 MiB: dispatched %.2f GB/s, table %.2f GB/s\n", (double)n / s / 1e9,
               (double)n / t / 1e9);
        free(big);
    }
    if (test_failures) return 1;
    printf("PASS crc32c and segment header\n");
    return 0;
}
