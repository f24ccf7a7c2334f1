/* SPDX-License-Identifier: MIT */
/* --device-layers and the automatic split by free memory (see devmap.h). */
#include "devmap.h"
#include "eng_internal.h"

#include <stdio.h>
#include <string.h>

#define MAX_ITEMS 256

/* A whole non-negative decimal integer filling [s, end), or -1. */
static long parse_count(const char *s, const char *end)
{
    if (s == end || end - s > 9) return -1; /* empty, or beyond any GPU or layer count */
    long v = 0;
    for (const char *p = s; p < end; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

eng_status eng_devmap_parse(const char *spec, int visible, int n_layers, int *layer_dev, char *err,
                            size_t errlen)
{
    if (!spec || !layer_dev || n_layers < 0 || visible < 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "--device-layers: bad arguments");
    for (int l = 0; l < n_layers; l++)
        layer_dev[l] = ENG_DEV_CPU;
    if (!*spec)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "--device-layers \"\": empty; expected ORD:NUM;... or a layer count");
    /* A bare integer: that many layers on ordinal 0. */
    if (!strchr(spec, ':') && !strchr(spec, ';')) {
        long n = parse_count(spec, spec + strlen(spec));
        if (n < 0)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": not an integer; expected a layer count or "
                            "ORD:NUM;...",
                            spec);
        if (visible < 1)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": ordinal 0 is unknown: no GPU is visible",
                            spec);
        if (n > n_layers)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": %ld layers, but the model has %d", spec, n,
                            n_layers);
        for (long l = 0; l < n; l++)
            layer_dev[l] = 0;
        return ENG_OK;
    }
    int seen[MAX_ITEMS];
    int nseen = 0;
    long total = 0;
    const char *p = spec;
    for (int item = 1;; item++) {
        const char *end = strchr(p, ';');
        if (!end) end = p + strlen(p);
        int len = (int)(end - p);
        const char *colon = memchr(p, ':', (size_t)len);
        if (!colon)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": item %d (\"%.*s\") is not ORD:NUM", spec, item,
                            len, p);
        long ord = parse_count(p, colon), num = parse_count(colon + 1, end);
        if (ord < 0)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": item %d (\"%.*s\"): ordinal \"%.*s\" is not a "
                            "non-negative integer",
                            spec, item, len, p, (int)(colon - p), p);
        if (num < 0)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": item %d (\"%.*s\"): layer count \"%.*s\" is "
                            "not a non-negative integer",
                            spec, item, len, p, (int)(end - colon - 1), colon + 1);
        for (int i = 0; i < nseen; i++)
            if (seen[i] == ord)
                return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                                "--device-layers \"%s\": ordinal %ld appears twice", spec, ord);
        if (ord >= visible && visible == 0)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": ordinal %ld is unknown: no GPU is visible",
                            spec, ord);
        if (ord >= visible)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": ordinal %ld is unknown: %d GPU%s visible "
                            "(ordinals 0..%d after CUDA_VISIBLE_DEVICES)",
                            spec, ord, visible, visible == 1 ? " is" : "s are", visible - 1);
        if (nseen == MAX_ITEMS)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": more than %d items", spec, MAX_ITEMS);
        seen[nseen++] = (int)ord;
        if (total + num > n_layers)
            return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                            "--device-layers \"%s\": %ld layers or more, but the model has %d",
                            spec, total + num, n_layers);
        for (long l = total; l < total + num; l++)
            layer_dev[l] = (int)ord;
        total += num;
        if (!*end) break;
        p = end + 1;
    }
    return ENG_OK;
}

eng_status eng_devmap_auto(const size_t *free_bytes, int n_dev, size_t layer_bytes,
                           size_t reserve_bytes, int n_layers, int *layer_dev, char *err,
                           size_t errlen)
{
    if (!layer_dev || n_layers < 0 || n_dev < 0 || (n_dev > 0 && !free_bytes) || n_dev > MAX_ITEMS)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "layer split: bad arguments");
    if (layer_bytes == 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen, "layer split: a layer of 0 bytes");
    /* Capacities in layers; a GPU with more room than 2^31 layers counts as that much. */
    long long cap[MAX_ITEMS], total = 0;
    long got[MAX_ITEMS];
    for (int d = 0; d < n_dev; d++) {
        size_t room = free_bytes[d] > reserve_bytes ? free_bytes[d] - reserve_bytes : 0;
        size_t c = room / layer_bytes;
        cap[d] = c > (size_t)1 << 31 ? (long long)1 << 31 : (long long)c;
        total += cap[d];
        got[d] = (long)cap[d];
    }
    if (total > n_layers) {
        /* Shares in proportion to capacity: floors first, then the largest remainders. */
        long given = 0;
        for (int d = 0; d < n_dev; d++) {
            got[d] = (long)(n_layers * cap[d] / total);
            given += got[d];
        }
        while (given < n_layers) {
            int best = -1;
            long long best_rem = -1;
            for (int d = 0; d < n_dev; d++) {
                long long rem = n_layers * cap[d] % total;
                if (got[d] < cap[d] && rem > best_rem) {
                    best = d;
                    best_rem = rem;
                }
            }
            got[best]++;
            given++;
        }
    }
    int l = 0;
    for (int d = 0; d < n_dev; d++)
        for (long k = 0; k < got[d]; k++)
            layer_dev[l++] = d;
    while (l < n_layers)
        layer_dev[l++] = ENG_DEV_CPU;
    return ENG_OK;
}

void eng_devmap_describe(const int *layer_dev, int n_layers, char *out, size_t outlen)
{
    if (!outlen) return;
    out[0] = '\0';
    size_t off = 0;
    for (int l = 0; l < n_layers && off < outlen;) {
        int e = l;
        while (e + 1 < n_layers && layer_dev[e + 1] == layer_dev[l])
            e++;
        char dev[32];
        if (layer_dev[l] == ENG_DEV_CPU)
            snprintf(dev, sizeof(dev), "the CPU");
        else
            snprintf(dev, sizeof(dev), "GPU %d", layer_dev[l]);
        int w =
            e > l ? snprintf(out + off, outlen - off, "%slayers %d-%d on %s", off ? ", " : "", l, e,
                             dev)
                  : snprintf(out + off, outlen - off, "%slayer %d on %s", off ? ", " : "", l, dev);
        if (w < 0) break;
        off += (size_t)w;
        l = e + 1;
    }
    if (!n_layers) snprintf(out, outlen, "no layers");
}
