/* SPDX-License-Identifier: MIT */
/* safetensors: u64 little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the data;
 * offsets are relative to the end of the header. */
#include "safetensors.h"

#include "common/errline.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static eng_status add_tensor(eng_st_index *ix, const cJSON *e, const char *path, const char *data,
                             uint64_t data_len, char *err, size_t errlen)
{
    const char *name = e->string;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(shape) || !cJSON_IsArray(offs) ||
        cJSON_GetArraySize(offs) != 2)
        return eng_fail(ENG_ERR_FORMAT, err, errlen,
                        "%s: tensor %s: header entry lacks dtype, shape or data_offsets", path,
                        name);
    if (ix->n == ix->cap) {
        int cap = ix->cap ? 2 * ix->cap : 256;
        eng_st_tensor *t = realloc(ix->t, (size_t)cap * sizeof(*t));
        if (!t) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
        ix->t = t;
        ix->cap = cap;
    }
    eng_st_tensor *t = &ix->t[ix->n];
    memset(t, 0, sizeof(*t));
    static const struct {
        const char *s;
        int dt, size;
    } types[] = {{"F32", ENG_DT_F32, 4}, {"F16", ENG_DT_F16, 2}, {"BF16", ENG_DT_BF16, 2},
                 {"F64", -1, 8},         {"I64", -1, 8},         {"I32", -1, 4},
                 {"I16", -1, 2},         {"I8", -1, 1},          {"U8", -1, 1},
                 {"BOOL", -1, 1},        {"F8_E4M3", -1, 1},     {"F8_E5M2", -1, 1}};
    int size = 0;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        if (!strcmp(dt->valuestring, types[i].s)) {
            t->dt = types[i].dt;
            size = types[i].size;
        }
    if (!size)
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: tensor %s: unknown dtype '%s'", path,
                        name, dt->valuestring);
    snprintf(t->dtname, sizeof(t->dtname), "%s", dt->valuestring);
    t->ndim = cJSON_GetArraySize(shape);
    if (t->ndim > 4)
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: tensor %s has %d dimensions", path, name,
                        t->ndim);
    uint64_t count = 1, bytes;
    for (int i = 0; i < t->ndim; i++) {
        const cJSON *d = cJSON_GetArrayItem(shape, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e12 ||
            d->valuedouble != (double)(int64_t)d->valuedouble)
            return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: tensor %s: bad shape", path, name);
        t->shape[i] = (int64_t)d->valuedouble;
        if (__builtin_mul_overflow(count, (uint64_t)t->shape[i], &count))
            return eng_fail(ENG_ERR_FORMAT, err, errlen,
                            "%s: tensor %s: the element count of its shape overflows 64 bits", path,
                            name);
    }
    if (__builtin_mul_overflow(count, (uint64_t)size, &bytes))
        return eng_fail(ENG_ERR_FORMAT, err, errlen,
                        "%s: tensor %s: %llu elements of %s overflow 64 bits", path, name,
                        (unsigned long long)count, dt->valuestring);
    const cJSON *b = cJSON_GetArrayItem(offs, 0), *en = cJSON_GetArrayItem(offs, 1);
    if (!cJSON_IsNumber(b) || !cJSON_IsNumber(en) || b->valuedouble < 0 ||
        en->valuedouble < b->valuedouble)
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: tensor %s: bad data_offsets", path, name);
    /* Compared as doubles first: a value beyond 2^64 must not be converted. */
    if (en->valuedouble > (double)data_len)
        return eng_fail(ENG_ERR_FORMAT, err, errlen,
                        "%s: tensor %s ends at byte %.0f of the data but the file holds %llu "
                        "(truncated?)",
                        path, name, en->valuedouble, (unsigned long long)data_len);
    if (b->valuedouble != (double)(uint64_t)b->valuedouble ||
        en->valuedouble != (double)(uint64_t)en->valuedouble)
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: tensor %s: data_offsets are not integers",
                        path, name);
    uint64_t begin = (uint64_t)b->valuedouble, end = (uint64_t)en->valuedouble;
    if (end > data_len)
        return eng_fail(ENG_ERR_FORMAT, err, errlen,
                        "%s: tensor %s ends at byte %llu of the data but the file holds %llu "
                        "(truncated?)",
                        path, name, (unsigned long long)end, (unsigned long long)data_len);
    if (end - begin != bytes)
        return eng_fail(
            ENG_ERR_FORMAT, err, errlen, "%s: tensor %s: %llu bytes for %llu elements of %s", path,
            name, (unsigned long long)(end - begin), (unsigned long long)count, dt->valuestring);
    t->nbytes = bytes;
    t->name = strdup(name);
    if (!t->name) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    t->data = data + begin;
    t->file = path;
    ix->n++;
    return ENG_OK;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const eng_st_tensor *)a)->name, ((const eng_st_tensor *)b)->name);
}

static int by_data(const void *a, const void *b)
{
    const eng_st_tensor *x = *(const eng_st_tensor *const *)a,
                        *y = *(const eng_st_tensor *const *)b;
    if (x->data != y->data) return x->data > y->data ? 1 : -1;
    /* Then by end, as the safetensors library: an empty tensor where another starts is fine. */
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* The n tensors of the file path (those whose file is that very pointer), whose data is
 * [data, data + data_len): like the safetensors library, each must start where the one before
 * ends and the last end the file, so that no two tensors share bytes (a model that overlaps
 * would run on aliased weights). */
static eng_status check_layout(const eng_st_index *ix, int n, const char *path, const char *data,
                               uint64_t data_len, char *err, size_t errlen)
{
    if (n == 0) return ENG_OK;
    const eng_st_tensor **o = malloc((size_t)n * sizeof(*o));
    if (!o) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    n = 0;
    for (int i = 0; i < ix->n; i++)
        if (ix->t[i].file == path) o[n++] = &ix->t[i];
    qsort(o, (size_t)n, sizeof(*o), by_data);
    eng_status st = ENG_OK;
    uint64_t at = 0;
    for (int i = 0; i < n && st == ENG_OK; i++) {
        uint64_t begin = (uint64_t)((const char *)o[i]->data - data);
        uint64_t len = o[i]->nbytes;
        if (begin < at)
            st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                          "%s: tensors %s and %s overlap (data_offsets)", path, o[i - 1]->name,
                          o[i]->name);
        else if (begin > at)
            st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                          "%s: %llu bytes before tensor %s belong to no tensor (data_offsets "
                          "must be contiguous)",
                          path, (unsigned long long)(begin - at), o[i]->name);
        at = begin + len;
    }
    if (st == ENG_OK && at != data_len)
        st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                      "%s: %llu bytes after the last tensor belong to no tensor", path,
                      (unsigned long long)(data_len - at));
    free(o);
    return st;
}

static eng_status add_file(eng_st_index *ix, const char *path, char *err, size_t errlen)
{
    eng_status st;
    eng_mapping *maps = realloc(ix->maps, (size_t)(ix->n_maps + 1) * sizeof(*maps));
    if (!maps) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    ix->maps = maps;
    char **files = realloc(ix->files, (size_t)(ix->n_maps + 1) * sizeof(*files));
    if (!files) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    ix->files = files;
    eng_mapping mp;
    if ((st = eng_map_file(path, &mp, err, errlen)) != ENG_OK) return st;
    char *fname = strdup(path);
    if (!fname) {
        eng_unmap(&mp);
        return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory");
    }
    ix->maps[ix->n_maps] = mp;
    ix->files[ix->n_maps] = fname;
    ix->n_maps++;
    uint64_t n;
    if (mp.len < 8)
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: truncated (%zu bytes)", path, mp.len);
    memcpy(&n, mp.addr, 8);
    if (n < 2 || n > mp.len - 8 || n > (100u << 20))
        return eng_fail(ENG_ERR_FORMAT, err, errlen,
                        "%s: not a safetensors file (header length %llu, file %zu bytes)", path,
                        (unsigned long long)n, mp.len);
    const char *hdr = (const char *)mp.addr + 8, *hend = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(hdr, (size_t)n, &hend, 0);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: safetensors header is not a JSON object",
                        path);
    }
    /* The header may be padded with spaces (the format aligns the data), nothing else. */
    for (const char *q = hend; q && q < hdr + n; q++)
        if (*q != ' ') {
            cJSON_Delete(root);
            return eng_fail(ENG_ERR_FORMAT, err, errlen,
                            "%s: %lld bytes after the header's JSON that are not spaces", path,
                            (long long)(hdr + n - q));
        }
    const cJSON *e;
    int first = ix->n;
    st = ENG_OK;
    cJSON_ArrayForEach(e, root)
    {
        if (!strcmp(e->string, "__metadata__")) continue;
        if (!cJSON_IsObject(e)) {
            st = eng_fail(ENG_ERR_FORMAT, err, errlen, "%s: header entry %s is not an object", path,
                          e->string);
            break;
        }
        st = add_tensor(ix, e, fname, hdr + n, mp.len - 8 - n, err, errlen);
        if (st != ENG_OK) break;
    }
    cJSON_Delete(root);
    /* Sorted by name, so that eng_st_find bisects and a name given twice (in this file or an
     * earlier one) sits next to its twin: looking each one up as it comes would take quadratic
     * time on a header of a million names. */
    if (st == ENG_OK && ix->n > 1) qsort(ix->t, (size_t)ix->n, sizeof(*ix->t), by_name);
    for (int i = 1; i < ix->n && st == ENG_OK; i++)
        if (!strcmp(ix->t[i - 1].name, ix->t[i].name))
            st = eng_fail(ENG_ERR_FORMAT, err, errlen,
                          "%s: tensor %s appears twice (in %s and here)", fname, ix->t[i].name,
                          ix->t[i - 1].file == fname ? ix->t[i].file : ix->t[i - 1].file);
    if (st == ENG_OK)
        st = check_layout(ix, ix->n - first, fname, hdr + n, mp.len - 8 - n, err, errlen);
    if (st != ENG_OK) { /* a refused file adds no tensor: the index stays sorted and unique */
        int k = 0;
        for (int i = 0; i < ix->n; i++) {
            if (ix->t[i].file == fname)
                free(ix->t[i].name);
            else
                ix->t[k++] = ix->t[i];
        }
        ix->n = k;
    }
    return st;
}

eng_status eng_st_add_file(eng_st_index *ix, const char *path, char *err, size_t errlen)
{
    eng_status st = add_file(ix, path, err, errlen);
    if (st != ENG_OK) rc_errline_escape(err, errlen); /* names from the file may hold newlines */
    return st;
}

const eng_st_tensor *eng_st_find(const eng_st_index *ix, const char *name)
{
    int lo = 0, hi = ix->n; /* ix->t is sorted by name */
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(ix->t[mid].name, name);
        if (c == 0) return &ix->t[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

void eng_st_free(eng_st_index *ix, int keep_maps)
{
    for (int i = 0; i < ix->n; i++)
        free(ix->t[i].name);
    free(ix->t);
    for (int i = 0; i < ix->n_maps; i++) {
        if (!keep_maps) eng_unmap(&ix->maps[i]);
        free(ix->files[i]);
    }
    free(ix->files);
    if (!keep_maps) free(ix->maps);
    memset(ix, 0, sizeof(*ix));
}
