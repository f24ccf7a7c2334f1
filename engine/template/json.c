/* SPDX-License-Identifier: MIT */
/* Template values from cJSON, and `tojson` as Python's json.dumps writes it. */
#include "jt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

jv jt_from_json(const cJSON *j, int depth)
{
    if (!j || depth > JT_MAX_NEST) return jv_none();
    if (cJSON_IsString(j)) return jv_strz(j->valuestring ? j->valuestring : "");
    if (cJSON_IsBool(j)) return jv_bool(cJSON_IsTrue(j));
    if (cJSON_IsNumber(j)) {
        /* cJSON keeps no text: integral values within 2^53 are ints (JSON "1.0" reads as 1). */
        double d = j->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) return jv_int((int64_t)d);
        return jv_float(d);
    }
    if (cJSON_IsArray(j)) {
        jv l = jv_list(0);
        for (const cJSON *c = j->child; c; c = c->next)
            jt_list_push(l, jt_from_json(c, depth + 1));
        return l;
    }
    if (cJSON_IsObject(j)) {
        jv d = jv_dict();
        for (const cJSON *c = j->child; c; c = c->next)
            jt_dict_set(d, jv_strz(c->string ? c->string : ""), jt_from_json(c, depth + 1));
        return d;
    }
    return jv_none();
}

static void json_str(jt_buf *b, const char *s, size_t n, int ensure_ascii)
{
    jt_buf_putc(b, '"');
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            jt_buf_puts(b, "\\\"");
            break;
        case '\\':
            jt_buf_puts(b, "\\\\");
            break;
        case '\n':
            jt_buf_puts(b, "\\n");
            break;
        case '\r':
            jt_buf_puts(b, "\\r");
            break;
        case '\t':
            jt_buf_puts(b, "\\t");
            break;
        case '\b':
            jt_buf_puts(b, "\\b");
            break;
        case '\f':
            jt_buf_puts(b, "\\f");
            break;
        default:
            if (c < 0x20 || (ensure_ascii && c == 0x7f)) {
                jt_buf_printf(b, "\\u%04x", c);
            } else if (c >= 0x80 && ensure_ascii) {
                /* decode one UTF-8 sequence; write \uXXXX (surrogate pairs above the BMP) */
                unsigned cp = 0;
                int extra = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
                cp = c & (0x3f >> extra);
                for (int k = 0; k < extra && i + 1 < n; k++)
                    cp = (cp << 6) | (s[++i] & 0x3f);
                if (cp >= 0x10000) {
                    cp -= 0x10000;
                    jt_buf_printf(b, "\\u%04x\\u%04x", 0xd800 + (cp >> 10), 0xdc00 + (cp & 0x3ff));
                } else {
                    jt_buf_printf(b, "\\u%04x", cp);
                }
            } else {
                jt_buf_putc(b, (char)c);
            }
        }
    }
    jt_buf_putc(b, '"');
}

static void newline_indent(jt_buf *b, int indent, int level)
{
    jt_buf_putc(b, '\n');
    for (int i = 0; i < indent * level; i++)
        jt_buf_putc(b, ' ');
}

typedef struct {
    int ensure_ascii, indent, sort_keys;
    const char *item_sep, *key_sep;
    char *err;
    size_t errlen;
} json_opts;

static int cmp_keys(const void *x, const void *y)
{
    const jv *a = *(const jv *const *)x, *b = *(const jv *const *)y;
    int ok;
    return jv_compare(*a, *b, &ok);
}

static int dump(jt_buf *b, jv v, const json_opts *o, int level)
{
    if (level > JT_MAX_NEST) {
        snprintf(o->err, o->errlen, "tojson: nesting deeper than %d", JT_MAX_NEST);
        return -1;
    }
    /* past the size limit the rest would be dropped; out of steps (one an item) the render fails */
    if (b->failed || ((v.kind == JT_LIST && !jt_walk(1 + v.u.l->n)) ||
                      ((v.kind == JT_DICT || v.kind == JT_NS) && !jt_walk(1 + v.u.d->n))))
        return 0;
    switch (v.kind) {
    case JT_NONE:
        jt_buf_puts(b, "null");
        return 0;
    case JT_BOOL:
        jt_buf_puts(b, v.u.b ? "true" : "false");
        return 0;
    case JT_INT:
        jt_buf_printf(b, "%lld", (long long)v.u.i);
        return 0;
    case JT_FLOAT:
        if (isnan(v.u.f))
            jt_buf_puts(b, "NaN");
        else if (isinf(v.u.f))
            jt_buf_puts(b, v.u.f < 0 ? "-Infinity" : "Infinity");
        else
            jt_fmt_float(b, v.u.f);
        return 0;
    case JT_STR:
        json_str(b, v.u.s->p, v.u.s->len, o->ensure_ascii);
        return 0;
    case JT_LIST:
        if (!v.u.l->n) {
            jt_buf_puts(b, "[]");
            return 0;
        }
        jt_buf_putc(b, '[');
        for (size_t i = 0; i < v.u.l->n && !b->failed; i++) {
            if (i) jt_buf_puts(b, o->item_sep);
            if (o->indent >= 0) newline_indent(b, o->indent, level + 1);
            if (dump(b, v.u.l->v[i], o, level + 1)) return -1;
        }
        if (o->indent >= 0) newline_indent(b, o->indent, level);
        jt_buf_putc(b, ']');
        return 0;
    case JT_DICT:
    case JT_NS: {
        jt_dict *d = v.u.d;
        if (!d->n) {
            jt_buf_puts(b, "{}");
            return 0;
        }
        const jv **order = malloc(d->n * sizeof(*order));
        if (!order) {
            snprintf(o->err, o->errlen, "tojson: out of memory");
            return -1;
        }
        for (size_t i = 0; i < d->n; i++)
            order[i] = &d->k[i];
        if (o->sort_keys) qsort(order, d->n, sizeof(*order), cmp_keys);
        jt_buf_putc(b, '{');
        int rc = 0;
        for (size_t i = 0; i < d->n && !rc && !b->failed; i++) {
            size_t at = (size_t)(order[i] - d->k);
            jv k = d->k[at];
            if (i) jt_buf_puts(b, o->item_sep);
            if (o->indent >= 0) newline_indent(b, o->indent, level + 1);
            if (k.kind == JT_STR) {
                json_str(b, k.u.s->p, k.u.s->len, o->ensure_ascii);
            } else if (k.kind == JT_INT || k.kind == JT_FLOAT || k.kind == JT_BOOL ||
                       k.kind == JT_NONE) {
                jt_buf_putc(b, '"');
                if (dump(b, k, o, level + 1)) rc = -1;
                jt_buf_putc(b, '"');
            } else {
                snprintf(o->err, o->errlen, "tojson: keys must be str, int, float, bool or None");
                rc = -1;
            }
            jt_buf_puts(b, o->key_sep);
            if (!rc) rc = dump(b, d->v[at], o, level + 1);
        }
        free(order);
        if (rc) return -1;
        if (o->indent >= 0) newline_indent(b, o->indent, level);
        jt_buf_putc(b, '}');
        return 0;
    }
    default:
        snprintf(o->err, o->errlen, "tojson: Object of type %s is not JSON serializable",
                 jv_type_name(v));
        return -1;
    }
}

int jt_to_json(jt_buf *b, jv v, int ensure_ascii, int indent, const char *item_sep,
               const char *key_sep, int sort_keys, int depth, char *err, size_t errlen)
{
    json_opts o = {.ensure_ascii = ensure_ascii,
                   .indent = indent,
                   .sort_keys = sort_keys,
                   .item_sep = item_sep      ? item_sep
                               : indent >= 0 ? ","
                                             : ", ",
                   .key_sep = key_sep ? key_sep : ": ",
                   .err = err,
                   .errlen = errlen};
    return dump(b, v, &o, depth);
}
