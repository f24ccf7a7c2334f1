/* SPDX-License-Identifier: MIT */
/* Small helpers: one-line errors, file mapping, aligned allocation. */
#include "eng_internal.h"
#include "common/errline.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

eng_status eng_fail(eng_status st, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_errline_v(err, errlen, fmt, ap);
    va_end(ap);
    return st;
}

eng_status eng_map_file(const char *path, eng_mapping *m, char *err, size_t errlen)
{
    eng_status st = ENG_OK;
    m->addr = NULL;
    m->len = 0;
    /* O_NONBLOCK: a FIFO must be refused below, not block open() forever. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return eng_fail(ENG_ERR_IO, err, errlen, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        st = eng_fail(ENG_ERR_IO, err, errlen, "%s: %s", path, strerror(errno));
        goto close_fd;
    }
    if (!S_ISREG(sb.st_mode)) {
        st = eng_fail(ENG_ERR_IO, err, errlen, "%s: not a regular file", path);
        goto close_fd;
    }
    if (sb.st_size == 0) {
        st = eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: empty file", path);
        goto close_fd;
    }
    void *a = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (a == MAP_FAILED) {
        st = eng_fail(ENG_ERR_IO, err, errlen, "%s: mmap: %s", path, strerror(errno));
        goto close_fd;
    }
    m->addr = a;
    m->len = (size_t)sb.st_size;
close_fd:
    close(fd);
    return st;
}

void eng_unmap(eng_mapping *m)
{
    if (m->addr) munmap(m->addr, m->len);
    m->addr = NULL;
    m->len = 0;
}

void *eng_alloc_aligned(size_t bytes)
{
    void *p = NULL;
    if (bytes == 0) bytes = 64;
    size_t rounded = (bytes + 63) / 64 * 64;
    p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

void eng_source_free(eng_source *src)
{
    for (int i = 0; i < src->n_maps; i++)
        eng_unmap(&src->maps[i]);
    free(src->maps);
    free(src->layers);
    free(src->names);
    memset(src, 0, sizeof(*src));
}
