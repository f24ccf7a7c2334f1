/* SPDX-License-Identifier: MIT */
/* libFuzzer target: safetensors header parsing (engine/load/safetensors.c), which reads model
 * files that come from anywhere. Input: the whole file, written to a memfd that eng_st_add_file
 * opens by its /proc path; or, when it starts with '{', the JSON header up to the first NUL and
 * the data after it, the u64 header length put in front by the harness (so that mutations of
 * the JSON keep a consistent length). Checks besides the sanitizers: a refusal has a one-line
 * message, an accepted file's tensors lie inside the mapping (ASan does not watch mmap'd memory),
 * have the byte count of their shape and are found by name; adding the same file again is refused
 * (every name appears twice). */
#include "fuzz.h"
#include "load/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static void check_err(const char *err)
{
    if (!err[0] || strchr(err, '\n')) abort(); /* one clear line */
}

static void check_index(const eng_st_index *ix)
{
    const eng_mapping *mp = &ix->maps[0];
    const char *lo = mp->addr, *hi = lo + mp->len;
    for (int i = 0; i < ix->n; i++) {
        const eng_st_tensor *t = &ix->t[i];
        const char *d = t->data;
        if (d < lo + 8 || d > hi || t->nbytes > (uint64_t)(hi - d)) abort();
        if (t->ndim < 0 || t->ndim > 4) abort();
        uint64_t count = 1;
        for (int k = 0; k < t->ndim; k++) {
            if (t->shape[k] < 0) abort();
            count *= (uint64_t)t->shape[k];
        }
        if (t->nbytes % (count ? count : 1)) abort();
        if (eng_st_find(ix, t->name) != t) abort();
        if (t->nbytes) { /* touch both ends: a wrong bound faults here */
            volatile char c = d[0];
            c = d[t->nbytes - 1];
            (void)c;
        }
    }
    if (eng_st_find(ix, "no such tensor \x01")) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path;
    int fd = fuzz_file("fuzz.safetensors", &path);
    size_t off = 0;
    if (size > 0 && data[0] == '{') {
        const uint8_t *nul = memchr(data, 0, size);
        uint64_t n = nul ? (uint64_t)(nul - data) : size;
        unsigned char le[8];
        for (int i = 0; i < 8; i++)
            le[i] = (unsigned char)(n >> (8 * i));
        if (pwrite(fd, le, 8, 0) != 8 || pwrite(fd, data, n, 8) != (ssize_t)n) abort();
        off = 8 + n;
        if (nul)
            data = nul + 1, size -= n + 1;
        else
            size = 0;
    }
    if (pwrite(fd, data, size, (off_t)off) != (ssize_t)size) abort();
    eng_st_index ix;
    memset(&ix, 0, sizeof(ix));
    char err[512] = "";
    eng_status st = eng_st_add_file(&ix, path, err, sizeof(err));
    if (st != ENG_OK) {
        check_err(err);
    } else {
        check_index(&ix);
        int n = ix.n;
        err[0] = 0;
        st = eng_st_add_file(&ix, path, err, sizeof(err));
        if (n > 0 && st == ENG_OK) abort(); /* duplicate names must be refused */
        if (st != ENG_OK) check_err(err);
    }
    eng_st_free(&ix, 0);
    return 0;
}
