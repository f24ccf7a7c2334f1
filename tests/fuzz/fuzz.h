/* SPDX-License-Identifier: MIT */
/* What the fuzz targets that feed a loader a file share. */
#ifndef RC_FUZZ_H
#define RC_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* A memfd named `name`, emptied for this run's input; *path: its /proc path, which a loader
 * opens like any file. Made once per process. */
static inline int fuzz_file(const char *name, const char **path)
{
    static int fd = -1;
    static char p[64];
    if (fd < 0) {
        fd = memfd_create(name, MFD_CLOEXEC);
        if (fd < 0) abort();
        snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
    }
    if (ftruncate(fd, 0) != 0) abort();
    *path = p;
    return fd;
}

/* fuzz_file holding data[0, size); returns its path. */
static inline const char *fuzz_file_with(const char *name, const uint8_t *data, size_t size)
{
    const char *path;
    int fd = fuzz_file(name, &path);
    if (pwrite(fd, data, size, 0) != (ssize_t)size) abort();
    return path;
}

#endif
