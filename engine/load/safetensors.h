/* SPDX-License-Identifier: MIT */
/* safetensors files: header parsing and tensor lookup over one or more mapped files. */
#ifndef ENG_SAFETENSORS_H
#define ENG_SAFETENSORS_H

#include "eng_internal.h"

typedef struct eng_st_tensor {
    char *name;
    int dt;         /* eng_dtype, or -1 for a type the engine cannot read */
    char dtname[8]; /* as written in the file, for messages */
    int ndim;
    int64_t shape[4]; /* ndim <= 4 kept; more is a format error */
    const void *data;
    uint64_t nbytes;
    const char *file; /* for messages */
} eng_st_tensor;

typedef struct eng_st_index {
    eng_st_tensor *t;
    int n, cap;
    eng_mapping *maps;
    char **files;
    int n_maps;
} eng_st_index;

eng_status eng_st_add_file(eng_st_index *ix, const char *path, char *err, size_t errlen);
const eng_st_tensor *eng_st_find(const eng_st_index *ix, const char *name);
/* Frees the index; the mappings too unless keep_maps (then the caller owns ix->maps). */
void eng_st_free(eng_st_index *ix, int keep_maps);

#endif
