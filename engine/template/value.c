/* SPDX-License-Identifier: MIT */
/* Template values: reference-counted strings, lists and dicts with Python's semantics for
 * truthiness, equality, ordering, str() and repr(). */
#include "jt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fputs("ringinfer: template: out of memory\n", stderr);
        abort();
    }
    return q;
}

/* ---------------------------------------------------------------- buffer */
void jt_buf_put(jt_buf *b, const char *s, size_t n)
{
    if (b->failed) return;
    size_t limit = b->limit ? b->limit : JT_MAX_VALUE;
    if (n > limit - b->len) {
        b->failed = 1;
        return;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

void jt_buf_puts(jt_buf *b, const char *s)
{
    jt_buf_put(b, s, strlen(s));
}
void jt_buf_putc(jt_buf *b, char c)
{
    jt_buf_put(b, &c, 1);
}

void jt_buf_printf(jt_buf *b, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n < sizeof(tmp)) {
        jt_buf_put(b, tmp, (size_t)n);
        return;
    }
    char *big = xrealloc(NULL, (size_t)n + 1);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    jt_buf_put(b, big, (size_t)n);
    free(big);
}

/* ---------------------------------------------------------------- walk budget */
/* Walks over nested values (equality, ordering, str(), tojson, reachability) pay from the
 * render's step budget: shared parts ([x, x] doubled 40 times) or one long list compared in a
 * loop make walks far longer than building the values was. Per thread, as renders are. */
static _Thread_local unsigned long long *walk_steps, walk_max;

void jt_walk_budget(unsigned long long *steps, unsigned long long max)
{
    walk_steps = steps;
    walk_max = max;
}

int jt_walk(unsigned long long steps)
{
    if (!walk_steps) return 1;
    *walk_steps += steps;
    return *walk_steps <= walk_max;
}

/* ---------------------------------------------------------------- constructors */
jv jv_none(void)
{
    return (jv){.kind = JT_NONE};
}
jv jv_undef(void)
{
    return (jv){.kind = JT_UNDEF};
}
jv jv_bool(int b)
{
    return (jv){.kind = JT_BOOL, .u.b = !!b};
}
jv jv_int(int64_t i)
{
    return (jv){.kind = JT_INT, .u.i = i};
}
jv jv_float(double f)
{
    return (jv){.kind = JT_FLOAT, .u.f = f};
}

jv jv_str(const char *s, size_t n)
{
    jt_str *p = xrealloc(NULL, sizeof(*p) + n + 1);
    p->refs = 1;
    p->len = n;
    if (n) memcpy(p->p, s, n);
    p->p[n] = 0;
    return (jv){.kind = JT_STR, .u.s = p};
}

jv jv_strz(const char *s)
{
    return jv_str(s, strlen(s));
}

jv jv_str_buf(jt_buf *b)
{
    jv v = jv_str(b->p ? b->p : "", b->len);
    free(b->p);
    b->p = NULL;
    b->len = b->cap = 0;
    return v;
}

jv jv_undef_msg(const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    jv s = jv_strz(tmp);
    return (jv){.kind = JT_UNDEF, .u.s = s.u.s};
}

jv jv_list(size_t cap)
{
    jt_list *l = xrealloc(NULL, sizeof(*l));
    l->refs = 1;
    l->tuple = l->depth = l->has_ns = 0;
    l->n = 0;
    l->cap = cap;
    l->v = cap ? xrealloc(NULL, cap * sizeof(jv)) : NULL;
    return (jv){.kind = JT_LIST, .u.l = l};
}

jv jv_tuple(size_t cap)
{
    jv t = jv_list(cap);
    t.u.l->tuple = 1;
    return t;
}

jv jv_pair(jv a, jv b)
{
    jv t = jv_tuple(2);
    jt_list_push(t, a);
    jt_list_push(t, b);
    return t;
}

jv jv_dict(void)
{
    jt_dict *d = xrealloc(NULL, sizeof(*d));
    memset(d, 0, sizeof(*d));
    d->refs = 1;
    return (jv){.kind = JT_DICT, .u.d = d};
}

jv jv_ref(jv v)
{
    switch (v.kind) {
    case JT_UNDEF:
    case JT_STR:
        if (v.u.s && v.u.s->refs >= 0) v.u.s->refs++; /* < 0: a template's literal */
        break;
    case JT_LIST:
        v.u.l->refs++;
        break;
    case JT_DICT:
    case JT_NS:
        v.u.d->refs++;
        break;
    case JT_LOOP:
        v.u.loop->refs++;
        break;
    case JT_FUNC:
        v.u.fn->refs++;
        break;
    default:
        break;
    }
    return v;
}

void jv_unref(jv v)
{
    switch (v.kind) {
    case JT_UNDEF:
    case JT_STR:
        if (v.u.s && v.u.s->refs > 0 && --v.u.s->refs == 0) free(v.u.s);
        break;
    case JT_LIST:
        if (--v.u.l->refs == 0) {
            for (size_t i = 0; i < v.u.l->n; i++)
                jv_unref(v.u.l->v[i]);
            free(v.u.l->v);
            free(v.u.l);
        }
        break;
    case JT_DICT:
    case JT_NS:
        if (--v.u.d->refs == 0) {
            for (size_t i = 0; i < v.u.d->n; i++) {
                jv_unref(v.u.d->k[i]);
                jv_unref(v.u.d->v[i]);
            }
            free(v.u.d->k);
            free(v.u.d->v);
            free(v.u.d);
        }
        break;
    case JT_LOOP:
        if (--v.u.loop->refs == 0) {
            jv_unref(v.u.loop->items);
            jv_unref(v.u.loop->changed);
            free(v.u.loop);
        }
        break;
    case JT_FUNC:
        if (--v.u.fn->refs == 0) {
            jv_unref(v.u.fn->self);
            jv_unref(v.u.fn->caller);
            free(v.u.fn);
        }
        break;
    default:
        break;
    }
}

int jv_depth(jv v)
{
    if (v.kind == JT_LIST) return v.u.l->depth;
    if (v.kind == JT_DICT || v.kind == JT_NS) return v.u.d->depth;
    return 0;
}

static void note_child(int *depth, int *has_ns, jv child)
{
    int d = jv_depth(child) + 1;
    if (d > *depth) *depth = d;
    if (child.kind == JT_NS || child.kind == JT_LOOP || child.kind == JT_FUNC ||
        (child.kind == JT_LIST && child.u.l->has_ns) ||
        (child.kind == JT_DICT && child.u.d->has_ns))
        *has_ns = 1;
}

int jv_reaches(jv v, const void *obj, int depth)
{
    if (depth > JT_MAX_DEPTH + JT_MAX_NEST) return 1;
    if ((v.kind == JT_LIST || v.kind == JT_DICT || v.kind == JT_NS) && !jt_walk(1)) return 1;
    switch (v.kind) {
    case JT_NS:
        if (v.u.d == obj) return 1;
        /* fall through */
    case JT_DICT:
        if (v.kind == JT_DICT && !v.u.d->has_ns) return 0;
        for (size_t i = 0; i < v.u.d->n; i++)
            if (jv_reaches(v.u.d->v[i], obj, depth + 1)) return 1;
        return 0;
    case JT_LIST:
        if (!v.u.l->has_ns) return 0;
        for (size_t i = 0; i < v.u.l->n; i++)
            if (jv_reaches(v.u.l->v[i], obj, depth + 1)) return 1;
        return 0;
    case JT_LOOP:
        return v.u.loop == obj || jv_reaches(v.u.loop->items, obj, depth + 1) ||
               jv_reaches(v.u.loop->changed, obj, depth + 1);
    case JT_FUNC:
        return jv_reaches(v.u.fn->self, obj, depth + 1);
    default:
        return 0;
    }
}

void jt_list_push(jv list, jv item)
{
    jt_list *l = list.u.l;
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->v = xrealloc(l->v, l->cap * sizeof(jv));
    }
    l->v[l->n++] = item;
    note_child(&l->depth, &l->has_ns, item);
}

jv *jt_dict_find(const jt_dict *d, jv key)
{
    for (size_t i = 0; i < d->n; i++)
        if (jv_equal(d->k[i], key)) return &d->v[i];
    return NULL;
}

jv *jt_dict_findz(const jt_dict *d, const char *key)
{
    size_t n = strlen(key);
    for (size_t i = 0; i < d->n; i++)
        if (d->k[i].kind == JT_STR && d->k[i].u.s->len == n && !memcmp(d->k[i].u.s->p, key, n))
            return &d->v[i];
    return NULL;
}

void jt_dict_set(jv dict, jv key, jv val)
{
    jt_dict *d = dict.u.d;
    jv *slot = jt_dict_find(d, key);
    note_child(&d->depth, &d->has_ns, val);
    if (slot) {
        jv_unref(*slot);
        *slot = val;
        jv_unref(key);
        return;
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 4;
        d->k = xrealloc(d->k, d->cap * sizeof(jv));
        d->v = xrealloc(d->v, d->cap * sizeof(jv));
    }
    d->k[d->n] = key;
    d->v[d->n++] = val;
}

/* ---------------------------------------------------------------- semantics */
int jv_is_number(jv v)
{
    return v.kind == JT_BOOL || v.kind == JT_INT || v.kind == JT_FLOAT;
}

double jv_num(jv v)
{
    return v.kind == JT_FLOAT ? v.u.f : v.kind == JT_INT ? (double)v.u.i : (double)v.u.b;
}

int jv_truthy(jv v)
{
    switch (v.kind) {
    case JT_UNDEF:
    case JT_NONE:
        return 0;
    case JT_BOOL:
        return v.u.b;
    case JT_INT:
        return v.u.i != 0;
    case JT_FLOAT:
        return v.u.f != 0;
    case JT_STR:
        return v.u.s->len != 0;
    case JT_LIST:
        return v.u.l->n != 0;
    case JT_DICT:
        return v.u.d->n != 0;
    default:
        return 1;
    }
}

int jv_equal(jv a, jv b)
{
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.kind != JT_FLOAT && b.kind != JT_FLOAT)
            return (a.kind == JT_INT ? a.u.i : a.u.b) == (b.kind == JT_INT ? b.u.i : b.u.b);
        return jv_num(a) == jv_num(b);
    }
    if (a.kind != b.kind) return 0;
    switch (a.kind) {
    case JT_UNDEF:
    case JT_NONE:
        return 1;
    case JT_STR:
        return a.u.s->len == b.u.s->len && jt_walk(a.u.s->len / 32) &&
               !memcmp(a.u.s->p, b.u.s->p, a.u.s->len);
    case JT_LIST:
        if (a.u.l->n != b.u.l->n || a.u.l->tuple != b.u.l->tuple) return 0;
        if (!jt_walk(1 + a.u.l->n / 4)) return 0;
        for (size_t i = 0; i < a.u.l->n; i++)
            if (!jv_equal(a.u.l->v[i], b.u.l->v[i])) return 0;
        return 1;
    case JT_DICT:
        if (a.u.d->n != b.u.d->n || !jt_walk(1 + a.u.d->n * a.u.d->n / 4)) return 0;
        for (size_t i = 0; i < a.u.d->n; i++) {
            jv *o = jt_dict_find(b.u.d, a.u.d->k[i]);
            if (!o || !jv_equal(a.u.d->v[i], *o)) return 0;
        }
        return 1;
    case JT_NS:
        return a.u.d == b.u.d;
    case JT_LOOP:
        return a.u.loop == b.u.loop;
    case JT_FUNC:
        return a.u.fn == b.u.fn;
    default:
        return 0;
    }
}

int jv_compare(jv a, jv b, int *ok)
{
    *ok = 1;
    if (jv_is_number(a) && jv_is_number(b)) {
        if (a.kind == JT_INT && b.kind == JT_INT) return (a.u.i > b.u.i) - (a.u.i < b.u.i);
        double x = jv_num(a), y = jv_num(b);
        return (x > y) - (x < y);
    }
    if (a.kind == JT_STR && b.kind == JT_STR) {
        size_t n = a.u.s->len < b.u.s->len ? a.u.s->len : b.u.s->len;
        if (!jt_walk(n / 32)) return 0;
        int r = memcmp(a.u.s->p, b.u.s->p, n); /* UTF-8 byte order is code point order */
        if (r) return r > 0 ? 1 : -1;
        return (a.u.s->len > b.u.s->len) - (a.u.s->len < b.u.s->len);
    }
    if (a.kind == JT_LIST && b.kind == JT_LIST) {
        if (!jt_walk(1 + a.u.l->n / 4)) return 0;
        for (size_t i = 0; i < a.u.l->n && i < b.u.l->n; i++) {
            if (jv_equal(a.u.l->v[i], b.u.l->v[i])) continue;
            return jv_compare(a.u.l->v[i], b.u.l->v[i], ok);
        }
        return (a.u.l->n > b.u.l->n) - (a.u.l->n < b.u.l->n);
    }
    *ok = 0;
    return 0;
}

const char *jv_type_name(jv v)
{
    switch (v.kind) {
    case JT_UNDEF:
        return "Undefined";
    case JT_NONE:
        return "NoneType";
    case JT_BOOL:
        return "bool";
    case JT_INT:
        return "int";
    case JT_FLOAT:
        return "float";
    case JT_STR:
        return "str";
    case JT_LIST:
        return "list";
    case JT_DICT:
        return "dict";
    case JT_NS:
        return "Namespace";
    case JT_LOOP:
        return "LoopContext";
    default:
        return "function";
    }
}

void jt_fmt_float(jt_buf *b, double f)
{
    if (isnan(f)) {
        jt_buf_puts(b, "nan");
        return;
    }
    if (isinf(f)) {
        jt_buf_puts(b, f < 0 ? "-inf" : "inf");
        return;
    }
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, f);
        if (strtod(tmp, NULL) == f) break;
    }
    /* tmp is d.ddde[+-]XX with prec digits; lay it out as Python's repr does. */
    char digits[24];
    int nd = 0;
    const char *p = tmp;
    int neg = *p == '-';
    if (neg) p++;
    for (; *p && *p != 'e'; p++)
        if (*p != '.') digits[nd++] = *p;
    int exp = atoi(p + 1);
    while (nd > 1 && digits[nd - 1] == '0')
        nd--;
    if (neg) jt_buf_putc(b, '-');
    if (exp < -4 || exp >= 16) {
        jt_buf_putc(b, digits[0]);
        if (nd > 1) {
            jt_buf_putc(b, '.');
            jt_buf_put(b, digits + 1, (size_t)nd - 1);
        }
        jt_buf_printf(b, "e%c%02d", exp < 0 ? '-' : '+', exp < 0 ? -exp : exp);
    } else if (exp < 0) {
        jt_buf_puts(b, "0.");
        for (int i = 0; i < -exp - 1; i++)
            jt_buf_putc(b, '0');
        jt_buf_put(b, digits, (size_t)nd);
    } else {
        for (int i = 0; i <= exp; i++)
            jt_buf_putc(b, i < nd ? digits[i] : '0');
        jt_buf_putc(b, '.');
        if (nd > exp + 1)
            jt_buf_put(b, digits + exp + 1, (size_t)(nd - exp - 1));
        else
            jt_buf_putc(b, '0');
    }
}

static void repr_str(jt_buf *b, const jt_str *s)
{
    /* Python: single quotes unless the text has ' and no ". */
    char q = memchr(s->p, '\'', s->len) && !memchr(s->p, '"', s->len) ? '"' : '\'';
    jt_buf_putc(b, q);
    for (size_t i = 0; i < s->len; i++) {
        unsigned char c = (unsigned char)s->p[i];
        if (c == (unsigned char)q || c == '\\') {
            jt_buf_putc(b, '\\');
            jt_buf_putc(b, (char)c);
        } else if (c == '\n')
            jt_buf_puts(b, "\\n");
        else if (c == '\r')
            jt_buf_puts(b, "\\r");
        else if (c == '\t')
            jt_buf_puts(b, "\\t");
        else if (c < 0x20 || c == 0x7f)
            jt_buf_printf(b, "\\x%02x", c);
        else
            jt_buf_putc(b, (char)c);
    }
    jt_buf_putc(b, q);
}

static void to_text(jt_buf *b, jv v, int repr, int depth)
{
    if (depth > JT_MAX_NEST) {
        jt_buf_puts(b, "...");
        return;
    }
    if (b->failed) return; /* past the size limit: the rest would be dropped anyway */
    /* a step per item: printing one costs more than comparing it */
    if ((v.kind == JT_LIST && !jt_walk(1 + v.u.l->n)) ||
        ((v.kind == JT_DICT || v.kind == JT_NS) && !jt_walk(1 + v.u.d->n)))
        return;
    switch (v.kind) {
    case JT_UNDEF:
        break;
    case JT_NONE:
        jt_buf_puts(b, "None");
        break;
    case JT_BOOL:
        jt_buf_puts(b, v.u.b ? "True" : "False");
        break;
    case JT_INT:
        jt_buf_printf(b, "%lld", (long long)v.u.i);
        break;
    case JT_FLOAT:
        jt_fmt_float(b, v.u.f);
        break;
    case JT_STR:
        if (repr)
            repr_str(b, v.u.s);
        else
            jt_buf_put(b, v.u.s->p, v.u.s->len);
        break;
    case JT_LIST:
        jt_buf_putc(b, v.u.l->tuple ? '(' : '[');
        for (size_t i = 0; i < v.u.l->n && !b->failed; i++) {
            if (i) jt_buf_puts(b, ", ");
            to_text(b, v.u.l->v[i], 1, depth + 1);
        }
        if (v.u.l->tuple && v.u.l->n == 1) jt_buf_putc(b, ',');
        jt_buf_putc(b, v.u.l->tuple ? ')' : ']');
        break;
    case JT_DICT:
        jt_buf_putc(b, '{');
        for (size_t i = 0; i < v.u.d->n && !b->failed; i++) {
            if (i) jt_buf_puts(b, ", ");
            to_text(b, v.u.d->k[i], 1, depth + 1);
            jt_buf_puts(b, ": ");
            to_text(b, v.u.d->v[i], 1, depth + 1);
        }
        jt_buf_putc(b, '}');
        break;
    case JT_NS:
        jt_buf_puts(b, "<Namespace {");
        for (size_t i = 0; i < v.u.d->n && !b->failed; i++) {
            if (i) jt_buf_puts(b, ", ");
            to_text(b, v.u.d->k[i], 1, depth + 1);
            jt_buf_puts(b, ": ");
            to_text(b, v.u.d->v[i], 1, depth + 1);
        }
        jt_buf_puts(b, "}>");
        break;
    case JT_LOOP:
        jt_buf_puts(b, "<LoopContext>");
        break;
    case JT_FUNC:
        jt_buf_printf(b, "<function %s>", v.u.fn->name ? v.u.fn->name : "?");
        break;
    }
}

void jv_to_str(jt_buf *b, jv v)
{
    to_text(b, v, 0, 0);
}
void jv_to_repr(jt_buf *b, jv v)
{
    to_text(b, v, 1, 0);
}

jv jv_stringify(jv v)
{
    if (v.kind == JT_STR) return jv_ref(v);
    jt_buf b = {0};
    jv_to_str(&b, v);
    return jv_str_buf(&b);
}

/* ---------------------------------------------------------------- UTF-8 */
size_t jt_utf8_len(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xc0) != 0x80) c++;
    return c;
}

size_t jt_utf8_offset(const char *s, size_t n, size_t cp)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        if (((unsigned char)s[i] & 0xc0) != 0x80) {
            if (c == cp) return i;
            c++;
        }
    }
    return n;
}
