/* SPDX-License-Identifier: MIT */
/* Python methods of strings, dicts, lists and `loop`, and the global functions (range,
 * namespace, dict, strftime_now). Mutating methods are refused, as jinja2's immutable
 * sandbox does. Case mapping and whitespace are ASCII. */
#include "jt.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define JT_MAX_RANGE 100000 /* jinja2's sandbox limit */

static const char *const str_methods[] = {
    "strip",    "lstrip",  "rstrip",       "split",        "rsplit",     "splitlines", "startswith",
    "endswith", "upper",   "lower",        "title",        "capitalize", "swapcase",   "replace",
    "find",     "rfind",   "index",        "count",        "join",       "format",     "center",
    "ljust",    "rjust",   "zfill",        "isdigit",      "isalpha",    "isalnum",    "isspace",
    "islower",  "isupper", "removeprefix", "removesuffix", "partition",  NULL};
static const char *const dict_methods[] = {"items", "keys", "values", "get", "copy", NULL};
static const char *const list_methods[] = {"index", "count", "copy", NULL};
static const char *const unsafe_methods[] = {"append", "extend",  "insert",     "pop",
                                             "remove", "clear",   "sort",       "reverse",
                                             "update", "popitem", "setdefault", NULL};
static const char *const loop_methods[] = {"cycle", "changed", NULL};
static const char *const globals[] = {"range",           "namespace",    "dict",
                                      "raise_exception", "strftime_now", NULL};

static const char *find_name(const char *const *tab, const char *name)
{
    for (; *tab; tab++)
        if (!strcmp(*tab, name)) return *tab;
    return NULL;
}

const char *jt_method_lookup(jv obj, const char *name)
{
    switch (obj.kind) {
    case JT_STR:
        return find_name(str_methods, name);
    case JT_DICT: {
        const char *m = find_name(dict_methods, name);
        return m ? m : find_name(unsafe_methods, name);
    }
    case JT_LIST: {
        const char *m = find_name(list_methods, name);
        return m ? m : find_name(unsafe_methods, name);
    }
    case JT_LOOP:
        return find_name(loop_methods, name);
    default:
        return NULL;
    }
}

int jt_global_known(const char *name)
{
    return find_name(globals, name) != NULL;
}

static int is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static jv need_str(jt_ctx *c, jt_args *a, size_t i, const char *name, const char *what)
{
    jv *v = jt_arg(a, i, name);
    if (!v) return jt_fail(c, "%s() missing required argument '%s'", what, name);
    if (v->kind != JT_STR)
        return jt_fail(c, "%s() argument must be str, not %s", what, jv_type_name(*v));
    return jv_ref(*v);
}

/* strip family: chars NULL means whitespace. */
static jv strip(jv s, const char *chars, size_t nchars, int left, int right)
{
    const char *p = s.u.s->p;
    size_t a = 0, b = s.u.s->len;
    unsigned char set[256] = {0}; /* a table: chars may be as long as s */
    for (size_t i = 0; chars && i < nchars; i++)
        set[(unsigned char)chars[i]] = 1;
#define STRIPPABLE(ch) (chars ? set[(unsigned char)(ch)] : is_space(ch))
    if (left)
        while (a < b && STRIPPABLE(p[a]))
            a++;
    if (right)
        while (b > a && STRIPPABLE(p[b - 1]))
            b--;
#undef STRIPPABLE
    return jv_str(p + a, b - a);
}

jv jt_str_strip(jv s, jv *chars, int left, int right)
{
    if (chars && chars->kind == JT_STR)
        return strip(s, chars->u.s->p, chars->u.s->len, left, right);
    return strip(s, NULL, 0, left, right);
}

/* One piece of a split: each is a new string, paid for as it is made (a 60 MB string of
 * separators is 60M pieces); -1 once out of steps. */
static int piece(jt_ctx *c, jv out, const char *p, size_t n)
{
    if (jt_charge(c, 1)) return -1;
    jt_list_push(out, jv_str(p, n));
    return 0;
}

static jv split(jt_ctx *c, jv s, jv *sepv, int64_t maxsplit, int from_right)
{
    const char *p = s.u.s->p;
    size_t n = s.u.s->len;
    jv out = jv_list(0);
    if (sepv && sepv->kind != JT_NONE) {
        if (sepv->kind != JT_STR) {
            jv_unref(out);
            return jt_fail(c, "must be str or None, not %s", jv_type_name(*sepv));
        }
        const char *sep = sepv->u.s->p;
        size_t sl = sepv->u.s->len;
        if (!sl) {
            jv_unref(out);
            return jt_fail(c, "empty separator");
        }
        if (!from_right) {
            size_t start = 0;
            for (int64_t k = 0; maxsplit < 0 || k < maxsplit; k++) {
                const char *hit = memmem(p + start, n - start, sep, sl);
                if (!hit || piece(c, out, p + start, (size_t)(hit - p) - start)) break;
                start = (size_t)(hit - p) + sl;
            }
            piece(c, out, p + start, n - start);
            goto done;
        }
        /* rsplit: collect from the right, then reverse */
        size_t end = n;
        int64_t k = 0;
        while (maxsplit < 0 || k < maxsplit) {
            size_t i = end;
            int found = 0;
            while (i >= sl) {
                /* a plain search: each try may compare all of a long separator */
                if (sl >= 32 && jt_charge(c, sl / 32)) goto done;
                if (!memcmp(p + i - sl, sep, sl)) {
                    found = 1;
                    break;
                }
                i--;
            }
            if (!found || piece(c, out, p + i, end - i)) break;
            end = i - sl;
            k++;
        }
        if (piece(c, out, p, end)) goto done;
        for (size_t i = 0, j = out.u.l->n - 1; i < j; i++, j--) {
            jv t = out.u.l->v[i];
            out.u.l->v[i] = out.u.l->v[j];
            out.u.l->v[j] = t;
        }
        goto done;
    }
    /* whitespace runs; no empty strings (left-to-right only for maxsplit) */
    size_t i = 0;
    int64_t k = 0;
    while (i < n) {
        while (i < n && is_space(p[i]))
            i++;
        if (i >= n) break;
        if (maxsplit >= 0 && k >= maxsplit) {
            size_t e = n;
            while (e > i && is_space(p[e - 1]))
                e--;
            piece(c, out, p + i, e - i);
            break;
        }
        size_t j = i;
        while (j < n && !is_space(p[j]))
            j++;
        if (piece(c, out, p + i, j - i)) break;
        k++;
        i = j;
    }
done:
    if (c->failed) {
        jv_unref(out);
        return jv_undef();
    }
    return out;
}

static jv case_map(jv s, int mode) /* 0 upper 1 lower 2 title 3 capitalize 4 swapcase */
{
    jt_buf b = {0};
    const char *p = s.u.s->p;
    size_t n = s.u.s->len;
    int prev_cased = 0;
    for (size_t i = 0, k = 0; i < n; k++) {
        uint32_t c;
        size_t next = jt_utf8_next(p, n, i, &c);
        if (c == 0xfffffffu) {
            jt_buf_put(&b, p + i, next - i);
            i = next;
            prev_cased = 0;
            continue;
        }
        uint32_t up = jt_cp_upper(c), low = jt_cp_lower(c), out;
        switch (mode) {
        case 0:
            out = up;
            break;
        case 1:
            out = low;
            break;
        case 2:
            out = prev_cased ? low : up;
            break; /* Python's title(): after a cased char */
        case 3:
            out = k == 0 ? up : low;
            break;
        default:
            out = up != c ? up : low;
        }
        prev_cased = jt_cp_cased(c);
        jt_buf_put_cp(&b, out);
        i = next;
    }
    return jv_str_buf(&b);
}

jv jt_str_case(jv s, int mode)
{
    return case_map(s, mode);
}

jv jt_str_replace(jt_ctx *c, jv s, jv old, jv new, int64_t count)
{
    if (old.kind != JT_STR || new.kind != JT_STR)
        return jt_fail(c, "replace() arguments must be str");
    jt_buf b = {0};
    b.limit = JT_MAX_VALUE;
    const char *p = s.u.s->p;
    size_t n = s.u.s->len, ol = old.u.s->len, i = 0;
    int64_t done = 0;
    if (!ol) { /* Python inserts `new` between every character */
        for (size_t k = 0; k <= n; k++) {
            if (count < 0 || done < count) {
                jt_buf_put(&b, new.u.s->p, new.u.s->len);
                done++;
            }
            if (k < n) {
                size_t e = k + 1;
                while (e < n && ((unsigned char)p[e] & 0xc0) == 0x80)
                    e++;
                jt_buf_put(&b, p + k, e - k);
                k = e - 1;
            }
        }
    } else {
        while (i < n) {
            const char *hit =
                (count < 0 || done < count) ? memmem(p + i, n - i, old.u.s->p, ol) : NULL;
            if (!hit) break;
            jt_buf_put(&b, p + i, (size_t)(hit - p) - i);
            jt_buf_put(&b, new.u.s->p, new.u.s->len);
            i = (size_t)(hit - p) + ol;
            done++;
        }
        jt_buf_put(&b, p + i, n - i);
    }
    if (b.failed) {
        free(b.p);
        return jt_fail(c, "string longer than %u bytes", JT_MAX_VALUE);
    }
    return jv_str_buf(&b);
}

static int64_t find_sub(jt_ctx *c, jv s, jv sub, int last)
{
    const char *p = s.u.s->p, *q = sub.u.s->p;
    size_t n = s.u.s->len, m = sub.u.s->len;
    if (m > n) return -1;
    const char *hit = NULL;
    if (!last) {
        hit = m ? memmem(p, n, q, m) : p;
    } else {
        for (size_t i = n - m + 1; i-- > 0;) {
            /* a plain search: each try may compare all of a long needle */
            if (m >= 32 && jt_charge(c, m / 32)) return -1;
            if (!memcmp(p + i, q, m)) {
                hit = p + i;
                break;
            }
        }
    }
    return hit ? (int64_t)jt_utf8_len(p, (size_t)(hit - p)) : -1;
}

jv jt_str_join(jt_ctx *c, jv sep, jv items, const char *attr);
jv jt_string_format(jt_ctx *c, jv fmt, jv args);
jv jt_str_format_method(jt_ctx *c, jv fmt, jt_args *a);

static int affix(jv s, jv x, int end)
{
    if (x.kind != JT_STR || x.u.s->len > s.u.s->len) return 0;
    size_t off = end ? s.u.s->len - x.u.s->len : 0;
    return !memcmp(s.u.s->p + off, x.u.s->p, x.u.s->len);
}

static jv pad(jt_ctx *c, jv s, jt_args *a, int mode) /* 0 center 1 ljust 2 rjust 3 zfill */
{
    jv *w = jt_arg(a, 0, "width");
    if (!w || w->kind != JT_INT) return jt_fail(c, "width must be an integer");
    jv *fill = mode == 3 ? NULL : jt_arg(a, 1, "fillchar");
    const char *f = fill && fill->kind == JT_STR && fill->u.s->len ? fill->u.s->p
                    : mode == 3                                    ? "0"
                                                                   : " ";
    size_t flen = fill && fill->kind == JT_STR && fill->u.s->len ? fill->u.s->len : 1;
    int64_t len = (int64_t)jt_utf8_len(s.u.s->p, s.u.s->len);
    if (w->u.i > JT_MAX_RANGE * 10) return jt_fail(c, "width too large");
    int64_t total = w->u.i > len ? w->u.i - len : 0, left = 0;
    if (mode == 0) left = total / 2 + (total & len & 1);
    if (mode == 2 || mode == 3) left = total;
    jt_buf b = {0};
    for (int64_t i = 0; i < left; i++)
        jt_buf_put(&b, f, flen);
    jt_buf_put(&b, s.u.s->p, s.u.s->len);
    for (int64_t i = left; i < total; i++)
        jt_buf_put(&b, f, flen);
    return jv_str_buf(&b);
}

static jv str_method(jt_ctx *c, const char *m, jv s, jt_args *a)
{
    const char *p = s.u.s->p;
    size_t n = s.u.s->len;
    if (!strcmp(m, "strip") || !strcmp(m, "lstrip") || !strcmp(m, "rstrip")) {
        jv *ch = jt_arg(a, 0, "chars");
        if (ch && ch->kind != JT_STR && ch->kind != JT_NONE)
            return jt_fail(c, "%s arg must be None or str", m);
        return jt_str_strip(s, ch, m[0] != 'r', m[0] != 'l');
    }
    if (!strcmp(m, "split") || !strcmp(m, "rsplit")) {
        jv *mx = jt_arg(a, 1, "maxsplit");
        if (mx && mx->kind != JT_INT) return jt_fail(c, "maxsplit must be an integer");
        return split(c, s, jt_arg(a, 0, "sep"), mx ? mx->u.i : -1, m[0] == 'r');
    }
    if (!strcmp(m, "splitlines")) {
        jv out = jv_list(0);
        size_t i = 0;
        while (i < n) {
            size_t j = i;
            while (j < n && p[j] != '\n' && p[j] != '\r')
                j++;
            if (piece(c, out, p + i, j - i)) {
                jv_unref(out);
                return jv_undef();
            }
            if (j < n && p[j] == '\r' && j + 1 < n && p[j + 1] == '\n') j++;
            i = j + 1;
        }
        return out;
    }
    if (!strcmp(m, "startswith") || !strcmp(m, "endswith")) {
        jv *x = jt_arg(a, 0, NULL);
        if (!x) return jt_fail(c, "%s() takes at least 1 argument", m);
        int end = m[0] == 'e';
        if (x->kind == JT_LIST) {
            for (size_t i = 0; i < x->u.l->n && !jt_charge(c, jt_cost(x->u.l->v[i])); i++)
                if (affix(s, x->u.l->v[i], end)) return jv_bool(1);
            return jv_bool(0);
        }
        if (x->kind != JT_STR)
            return jt_fail(c, "%s first arg must be str or a tuple of str, not %s", m,
                           jv_type_name(*x));
        return jv_bool(affix(s, *x, end));
    }
    if (!strcmp(m, "upper")) return case_map(s, 0);
    if (!strcmp(m, "lower")) return case_map(s, 1);
    if (!strcmp(m, "title")) return case_map(s, 2);
    if (!strcmp(m, "capitalize")) return case_map(s, 3);
    if (!strcmp(m, "swapcase")) return case_map(s, 4);
    if (!strcmp(m, "replace")) {
        jv *o = jt_arg(a, 0, "old"), *nw = jt_arg(a, 1, "new"), *cnt = jt_arg(a, 2, "count");
        if (!o || !nw) return jt_fail(c, "replace() takes at least 2 arguments");
        if (cnt && cnt->kind != JT_INT) return jt_fail(c, "replace() count must be an integer");
        return jt_str_replace(c, s, *o, *nw, cnt ? cnt->u.i : -1);
    }
    if (!strcmp(m, "find") || !strcmp(m, "rfind") || !strcmp(m, "index") || !strcmp(m, "count")) {
        jv sub = need_str(c, a, 0, "sub", m);
        if (c->failed) return sub;
        jv r;
        if (m[0] == 'c') {
            int64_t k = 0;
            if (!sub.u.s->len) {
                k = (int64_t)jt_utf8_len(p, n) + 1;
            } else {
                for (size_t i = 0; i + sub.u.s->len <= n;) {
                    const char *hit = memmem(p + i, n - i, sub.u.s->p, sub.u.s->len);
                    if (!hit) break;
                    k++;
                    i = (size_t)(hit - p) + sub.u.s->len;
                }
            }
            r = jv_int(k);
        } else {
            int64_t at = find_sub(c, s, sub, m[0] == 'r');
            r = at < 0 && m[0] == 'i' ? jt_fail(c, "substring not found") : jv_int(at);
        }
        jv_unref(sub);
        return r;
    }
    if (!strcmp(m, "join")) {
        jv *items = jt_arg(a, 0, "iterable");
        if (!items) return jt_fail(c, "join() takes exactly one argument");
        return jt_str_join(c, s, *items, NULL);
    }
    if (!strcmp(m, "format")) return jt_str_format_method(c, s, a);
    if (!strcmp(m, "center")) return pad(c, s, a, 0);
    if (!strcmp(m, "ljust")) return pad(c, s, a, 1);
    if (!strcmp(m, "rjust")) return pad(c, s, a, 2);
    if (!strcmp(m, "zfill")) return pad(c, s, a, 3);
    if (!strncmp(m, "is", 2)) {
        int all = n > 0, any_cased = 0, upper = 0, lower = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned char ch = (unsigned char)p[i];
            int ok = !strcmp(m, "isdigit")   ? isdigit(ch)
                     : !strcmp(m, "isalpha") ? isalpha(ch)
                     : !strcmp(m, "isalnum") ? isalnum(ch)
                     : !strcmp(m, "isspace") ? is_space((char)ch)
                                             : 1;
            if (!ok) all = 0;
            if (isupper(ch)) upper = any_cased = 1;
            if (islower(ch)) lower = any_cased = 1;
        }
        if (!strcmp(m, "islower")) return jv_bool(any_cased && !upper);
        if (!strcmp(m, "isupper")) return jv_bool(any_cased && !lower);
        return jv_bool(all);
    }
    if (!strcmp(m, "removeprefix") || !strcmp(m, "removesuffix")) {
        jv x = need_str(c, a, 0, "prefix", m);
        if (c->failed) return x;
        int end = m[6] == 's';
        jv r = affix(s, x, end) ? jv_str(p + (end ? 0 : x.u.s->len), n - x.u.s->len) : jv_ref(s);
        jv_unref(x);
        return r;
    }
    if (!strcmp(m, "partition")) {
        jv sep = need_str(c, a, 0, "sep", m);
        if (c->failed) return sep;
        jv r = jv_tuple(3);
        const char *hit = sep.u.s->len ? memmem(p, n, sep.u.s->p, sep.u.s->len) : NULL;
        if (!hit) {
            jt_list_push(r, jv_ref(s));
            jt_list_push(r, jv_strz(""));
            jt_list_push(r, jv_strz(""));
        } else {
            size_t at = (size_t)(hit - p);
            jt_list_push(r, jv_str(p, at));
            jt_list_push(r, jv_ref(sep));
            jt_list_push(r, jv_str(p + at + sep.u.s->len, n - at - sep.u.s->len));
        }
        jv_unref(sep);
        return r;
    }
    return jt_fail(c, "'str' object has no attribute '%s'", m);
}

static jv loop_method(jt_ctx *c, const char *m, jt_loop *L, jt_args *a)
{
    if (!strcmp(m, "cycle")) {
        if (!a->npos) return jt_fail(c, "no items for cycling given");
        return jv_ref(a->pos[L->i % a->npos]);
    }
    /* changed(*args): true when the arguments differ from the previous call's */
    jv now = jv_list(a->npos);
    for (size_t i = 0; i < a->npos; i++)
        jt_list_push(now, jv_ref(a->pos[i]));
    int cycle = jv_reaches(now, L, 0);
    if (jt_charge(c, 0) || cycle) { /* the loop keeps `now`: a cycle would never be freed */
        jv_unref(now);
        return jt_fail(c, "loop.changed(): the loop itself cannot be an argument");
    }
    int changed = L->changed.kind == JT_UNDEF || !jv_equal(L->changed, now);
    jv_unref(L->changed);
    L->changed = now;
    return jv_bool(changed);
}

jv jt_method_call(jt_ctx *c, const char *m, jv self, jt_args *a)
{
    if (find_name(unsafe_methods, m) && (self.kind == JT_LIST || self.kind == JT_DICT) &&
        !(self.kind == JT_LIST && (find_name(list_methods, m))))
        return jt_fail(c, "access to attribute '%s' of '%s' object is unsafe.", m,
                       jv_type_name(self));
    switch (self.kind) {
    case JT_STR:
        return str_method(c, m, self, a);
    case JT_LOOP:
        return loop_method(c, m, self.u.loop, a);
    case JT_DICT: {
        jt_dict *d = self.u.d;
        if (!strcmp(m, "get")) {
            jv *k = jt_arg(a, 0, "key");
            if (!k) return jt_fail(c, "get expected at least 1 argument, got 0");
            jv *v = jt_dict_find(d, *k);
            if (v) return jv_ref(*v);
            jv *dflt = jt_arg(a, 1, "default");
            return dflt ? jv_ref(*dflt) : jv_none();
        }
        if (!strcmp(m, "copy")) {
            jv r = jv_dict();
            for (size_t i = 0; i < d->n; i++)
                jt_dict_set(r, jv_ref(d->k[i]), jv_ref(d->v[i]));
            return r;
        }
        jv r = jv_list(d->n);
        for (size_t i = 0; i < d->n; i++) {
            if (m[0] == 'k') {
                jt_list_push(r, jv_ref(d->k[i]));
            } else if (m[0] == 'v') {
                jt_list_push(r, jv_ref(d->v[i]));
            } else {
                jv pair = jv_pair(jv_ref(d->k[i]), jv_ref(d->v[i]));
                jt_list_push(r, pair);
            }
        }
        return r;
    }
    case JT_LIST: {
        jt_list *l = self.u.l;
        if (!strcmp(m, "copy")) return jv_ref(self);
        jv *x = jt_arg(a, 0, NULL);
        if (!x) return jt_fail(c, "%s() takes exactly one argument", m);
        int64_t k = 0;
        for (size_t i = 0; i < l->n; i++) {
            if (!jv_equal(l->v[i], *x)) continue;
            if (m[0] == 'i') return jv_int((int64_t)i);
            k++;
        }
        return m[0] == 'i' ? jt_fail(c, "value is not in list") : jv_int(k);
    }
    default:
        return jt_fail(c, "'%s' object has no attribute '%s'", jv_type_name(self), m);
    }
}

/* ---------------------------------------------------------------- globals */
static jv g_range(jt_ctx *c, jt_args *a)
{
    int64_t v[3] = {0, 0, 1};
    if (a->npos < 1 || a->npos > 3 || a->nkw) return jt_fail(c, "range expected 1 to 3 arguments");
    for (size_t i = 0; i < a->npos; i++) {
        if (a->pos[i].kind != JT_INT && a->pos[i].kind != JT_BOOL)
            return jt_fail(c, "'%s' object cannot be interpreted as an integer",
                           jv_type_name(a->pos[i]));
        v[i] = a->pos[i].kind == JT_INT ? a->pos[i].u.i : a->pos[i].u.b;
    }
    int64_t start = a->npos == 1 ? 0 : v[0], stop = a->npos == 1 ? v[0] : v[1];
    int64_t step = a->npos == 3 ? v[2] : 1;
    if (!step) return jt_fail(c, "range() arg 3 must not be zero");
    double count = step > 0 ? ((double)stop - (double)start) / (double)step
                            : ((double)start - (double)stop) / -(double)step;
    if (count > JT_MAX_RANGE)
        return jt_fail(c, "Range too big. The sandbox blocks ranges larger than MAX_RANGE (%d).",
                       JT_MAX_RANGE);
    jv l = jv_list(0);
    for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
        jt_list_push(l, jv_int(i));
        if (__builtin_add_overflow(i, step, &i)) break; /* past int64 is past stop too */
    }
    return l;
}

static jv g_dict(jt_ctx *c, jt_args *a, int ns)
{
    jv d = jv_dict();
    if (ns) d.kind = JT_NS;
    for (size_t i = 0; i < a->npos; i++) {
        jv p = a->pos[i];
        if (p.kind != JT_DICT && p.kind != JT_NS) {
            jv_unref(d);
            return jt_fail(c, "%s() positional arguments must be mappings",
                           ns ? "namespace" : "dict");
        }
        for (size_t k = 0; k < p.u.d->n; k++)
            jt_dict_set(d, jv_ref(p.u.d->k[k]), jv_ref(p.u.d->v[k]));
    }
    for (size_t k = 0; k < a->nkw; k++)
        jt_dict_set(d, jv_strz(a->kwn[k]), jv_ref(a->kwv[k]));
    return d;
}

jv jt_global_call(jt_ctx *c, const char *name, jt_args *a)
{
    if (!strcmp(name, "range")) return g_range(c, a);
    if (!strcmp(name, "namespace")) return g_dict(c, a, 1);
    if (!strcmp(name, "dict")) return g_dict(c, a, 0);
    if (!strcmp(name, "strftime_now")) {
        jv *f = jt_arg(a, 0, "format");
        if (!f || f->kind != JT_STR) return jt_fail(c, "strftime_now() needs a format string");
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        char out[512];
        size_t n = f->u.s->len ? strftime(out, sizeof(out), f->u.s->p, &tm) : 0;
        if (!n && f->u.s->len)
            return jt_fail(c, "strftime_now(): format gives no text or over 511 bytes");
        return jv_str(out, n);
    }
    /* raise_exception called through a variable (the direct call is handled in eval.c) */
    return jt_raise(c, a);
}
