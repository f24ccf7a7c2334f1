/* SPDX-License-Identifier: MIT */
/* The filters of jinja2 (with transformers' tojson), one table of name -> function. */
#include "jt.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef jv (*filter_fn)(jt_ctx *c, jv v, jt_args *a);

jv jt_str_strip(jv s, jv *chars, int left, int right);
jv jt_str_case(jv s, int mode);
jv jt_str_replace(jt_ctx *c, jv s, jv old, jv new, int64_t count);

#define ARGS(what, npos, ...)                                                                      \
    do {                                                                                           \
        static const char *const names_[] = {__VA_ARGS__, NULL};                                   \
        if (jt_args_check(c, a, what, npos, names_)) return jv_undef();                            \
    } while (0)

static jv need_string(jt_ctx *c, jv v, const char *what)
{
    if (v.kind == JT_UNDEF) return jv_strz("");
    (void)c;
    (void)what;
    return jv_stringify(v);
}

static int opt_bool(jv *v, int dflt)
{
    return v ? jv_truthy(*v) : dflt;
}

/* Attribute paths of map/sort/selectattr...: "a.b.0" */
static jv get_path(jt_ctx *c, jv v, const char *path)
{
    jv cur = jv_ref(v);
    const char *p = path;
    while (*p && !c->failed) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        int digits = n > 0;
        for (size_t i = 0; i < n; i++)
            if (!isdigit((unsigned char)p[i])) digits = 0;
        jv key = digits ? jv_int(strtoll(p, NULL, 10)) : jv_str(p, n);
        jv next = cur.kind == JT_UNDEF ? jv_ref(cur) : jt_getitem(c, cur, key);
        jv_unref(key);
        jv_unref(cur);
        cur = next;
        p += n + (dot ? 1 : 0);
        if (!dot) break;
    }
    return cur;
}

static jv attr_arg(jt_ctx *c, jt_args *a, size_t pos, const char *name, const char **out)
{
    jv *at = jt_arg(a, pos, name);
    *out = NULL;
    if (!at || at->kind == JT_NONE) return jv_none();
    if (at->kind == JT_INT) return jv_stringify(*at);
    if (at->kind != JT_STR) return jt_fail(c, "%s must be a string", name);
    return jv_ref(*at);
}

/* ---------------------------------------------------------------- strings */
static jv f_trim(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("trim", 1, "chars");
    jv s = need_string(c, v, "trim");
    jv r = jt_str_strip(s, jt_arg(a, 0, "chars"), 1, 1);
    jv_unref(s);
    return r;
}

static jv case_filter(jt_ctx *c, jv v, jt_args *a, const char *name, int mode)
{
    if (jt_args_check(c, a, name, 0, NULL)) return jv_undef();
    jv s = need_string(c, v, name);
    jv r = jt_str_case(s, mode);
    jv_unref(s);
    return r;
}
static jv f_upper(jt_ctx *c, jv v, jt_args *a)
{
    return case_filter(c, v, a, "upper", 0);
}
static jv f_lower(jt_ctx *c, jv v, jt_args *a)
{
    return case_filter(c, v, a, "lower", 1);
}
static jv f_capitalize(jt_ctx *c, jv v, jt_args *a)
{
    return case_filter(c, v, a, "capitalize", 3);
}

/* jinja2's title: a word starts after whitespace or one of - ( { [ < */
static jv f_title(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "title", 0, NULL)) return jv_undef();
    jv s = need_string(c, v, "title");
    const char *p = s.u.s->p;
    size_t n = s.u.s->len;
    jt_buf b = {0};
    int start = 1;
    for (size_t i = 0; i < n;) {
        uint32_t ch;
        size_t next = jt_utf8_next(p, n, i, &ch);
        if (ch == 0xfffffffu) {
            jt_buf_put(&b, p + i, next - i);
        } else if (ch < 0x80 && (isspace((int)ch) || strchr("-({[<", (int)ch))) {
            jt_buf_putc(&b, (char)ch);
            start = 1;
        } else {
            jt_buf_put_cp(&b, start ? jt_cp_upper(ch) : jt_cp_lower(ch));
            start = 0;
        }
        i = next;
    }
    jv_unref(s);
    return jv_str_buf(&b);
}

static jv f_replace(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("replace", 3, "old", "new", "count");
    jv *o = jt_arg(a, 0, "old"), *n = jt_arg(a, 1, "new"), *cnt = jt_arg(a, 2, "count");
    if (!o || !n) return jt_fail(c, "replace() needs old and new");
    if (cnt && cnt->kind != JT_INT && cnt->kind != JT_NONE)
        return jt_fail(c, "replace() count must be an integer");
    jv s = need_string(c, v, "replace");
    jv os = jv_stringify(*o), ns = jv_stringify(*n);
    jv r = jt_str_replace(c, s, os, ns, cnt && cnt->kind == JT_INT ? cnt->u.i : -1);
    jv_unref(s);
    jv_unref(os);
    jv_unref(ns);
    return r;
}

static jv f_string(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "string", 0, NULL)) return jv_undef();
    return need_string(c, v, "string");
}

static jv f_safe(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "safe", 0, NULL)) return jv_undef();
    return jv_ref(v);
}

static jv f_escape(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "escape", 0, NULL)) return jv_undef();
    jv s = need_string(c, v, "escape");
    jt_buf b = {0};
    for (size_t i = 0; i < s.u.s->len; i++) {
        char ch = s.u.s->p[i];
        switch (ch) {
        case '&':
            jt_buf_puts(&b, "&amp;");
            break;
        case '<':
            jt_buf_puts(&b, "&lt;");
            break;
        case '>':
            jt_buf_puts(&b, "&gt;");
            break;
        case '"':
            jt_buf_puts(&b, "&#34;");
            break;
        case '\'':
            jt_buf_puts(&b, "&#39;");
            break;
        default:
            jt_buf_putc(&b, ch);
        }
    }
    jv_unref(s);
    return jv_str_buf(&b);
}

static jv f_pprint(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "pprint", 0, NULL)) return jv_undef();
    jt_buf b = {0};
    jv_to_repr(&b, v);
    return jv_str_buf(&b);
}

static jv f_indent(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("indent", 3, "width", "first", "blank");
    jv *w = jt_arg(a, 0, "width");
    jt_buf ind = {0};
    if (w && w->kind == JT_STR)
        jt_buf_put(&ind, w->u.s->p, w->u.s->len);
    else if (!w || w->kind == JT_INT) {
        int64_t n = w ? w->u.i : 4;
        if (n > 1000) return jt_fail(c, "indent width over 1000");
        for (int64_t i = 0; i < n; i++)
            jt_buf_putc(&ind, ' ');
    } else
        return jt_fail(c, "indent width must be an integer or a string");
    int first = opt_bool(jt_arg(a, 1, "first"), 0), blank = opt_bool(jt_arg(a, 2, "blank"), 0);
    jv s = need_string(c, v, "indent");
    jt_buf b = {0};
    b.limit = JT_MAX_VALUE;
    const char *p = s.u.s->p;
    size_t n = s.u.s->len, i = 0;
    int line_no = 0;
    /* lines as Python's splitlines of s + "\n" */
    while (i < n) {
        size_t j = i;
        while (j < n && p[j] != '\n' && p[j] != '\r')
            j++;
        int empty = j == i;
        if (line_no > 0) jt_buf_putc(&b, '\n');
        if ((line_no > 0 || first) && (blank || !empty))
            jt_buf_put(&b, ind.p ? ind.p : "", ind.len);
        jt_buf_put(&b, p + i, j - i);
        if (j < n && p[j] == '\r' && j + 1 < n && p[j + 1] == '\n') j++;
        i = j + 1;
        line_no++;
    }
    if (!line_no && first) jt_buf_put(&b, ind.p ? ind.p : "", ind.len);
    free(ind.p);
    jv_unref(s);
    if (b.failed) {
        free(b.p);
        return jt_fail(c, "string longer than %u bytes", JT_MAX_VALUE);
    }
    return jv_str_buf(&b);
}

static jv f_center(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("center", 1, "width");
    jv *w = jt_arg(a, 0, "width");
    int64_t width = w && w->kind == JT_INT ? w->u.i : 80;
    if (width > 100000) return jt_fail(c, "center width over 100000");
    jv s = need_string(c, v, "center");
    int64_t len = (int64_t)jt_utf8_len(s.u.s->p, s.u.s->len);
    int64_t total = width > len ? width - len : 0, left = total / 2 + (total & width & 1);
    jt_buf b = {0};
    for (int64_t i = 0; i < left; i++)
        jt_buf_putc(&b, ' ');
    jt_buf_put(&b, s.u.s->p, s.u.s->len);
    for (int64_t i = left; i < total; i++)
        jt_buf_putc(&b, ' ');
    jv_unref(s);
    return jv_str_buf(&b);
}

static int word_char(unsigned char ch)
{
    return isalnum(ch) || ch == '_' || ch >= 0x80;
}

static jv f_wordcount(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "wordcount", 0, NULL)) return jv_undef();
    jv s = need_string(c, v, "wordcount");
    int64_t n = 0;
    for (size_t i = 0; i < s.u.s->len; i++)
        if (word_char((unsigned char)s.u.s->p[i]) &&
            (i == 0 || !word_char((unsigned char)s.u.s->p[i - 1])))
            n++;
    jv_unref(s);
    return jv_int(n);
}

static jv f_truncate(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("truncate", 4, "length", "killwords", "end", "leeway");
    jv *l = jt_arg(a, 0, "length"), *e = jt_arg(a, 2, "end"), *lw = jt_arg(a, 3, "leeway");
    int64_t length = l && l->kind == JT_INT ? l->u.i : 255;
    int64_t leeway = lw && lw->kind == JT_INT ? lw->u.i : 5;
    int kill = opt_bool(jt_arg(a, 1, "killwords"), 0);
    const char *end = e && e->kind == JT_STR ? e->u.s->p : "...";
    size_t endlen = strlen(end);
    jv s = need_string(c, v, "truncate");
    int64_t len = (int64_t)jt_utf8_len(s.u.s->p, s.u.s->len);
    if (len <= length + leeway) return s;
    int64_t keep = length - (int64_t)jt_utf8_len(end, endlen);
    if (keep < 0) keep = 0;
    size_t off = jt_utf8_offset(s.u.s->p, s.u.s->len, (size_t)keep);
    if (!kill) { /* drop the last partial word: rsplit(" ", 1)[0] */
        size_t k = off;
        while (k > 0 && s.u.s->p[k - 1] != ' ')
            k--;
        if (k > 0) off = k - 1;
    }
    jt_buf b = {0};
    jt_buf_put(&b, s.u.s->p, off);
    jt_buf_put(&b, end, endlen);
    jv_unref(s);
    return jv_str_buf(&b);
}

jv jt_str_join(jt_ctx *c, jv sep, jv items, const char *attr)
{
    jv l = jt_to_list(c, items);
    if (c->failed) return jv_undef();
    jt_buf b = {0};
    b.limit = JT_MAX_VALUE;
    for (size_t i = 0; i < l.u.l->n && !c->failed; i++) {
        if (i && sep.kind == JT_STR) jt_buf_put(&b, sep.u.s->p, sep.u.s->len);
        jv it = attr ? get_path(c, l.u.l->v[i], attr) : jv_ref(l.u.l->v[i]);
        jv_to_str(&b, it);
        jv_unref(it);
    }
    jv_unref(l);
    if (b.failed) {
        free(b.p);
        return jt_fail(c, "string longer than %u bytes", JT_MAX_VALUE);
    }
    if (c->failed) {
        free(b.p);
        return jv_undef();
    }
    return jv_str_buf(&b);
}

static jv f_join(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("join", 2, "d", "attribute");
    jv *d = jt_arg(a, 0, "d");
    const char *attr;
    jv at = attr_arg(c, a, 1, "attribute", &attr);
    if (c->failed) return jv_undef();
    jv sep = d ? jv_stringify(*d) : jv_strz("");
    jv r = jt_str_join(c, sep, v, at.kind == JT_STR ? at.u.s->p : NULL);
    jv_unref(sep);
    jv_unref(at);
    return r;
}

/* ---------------------------------------------------------------- printf-style formatting */
/* Whether a number converts to int64 (a float is truncated as Python's int() does). */
static int int_range(jv v)
{
    return v.kind != JT_FLOAT || (isfinite(v.u.f) && fabs(v.u.f) < 9.2e18);
}

static void fmt_one(jt_buf *b, const char *flags, int width, int prec, char conv, jv v)
{
    char spec[32];
    snprintf(spec, sizeof(spec), "%%%s%s%s", flags, width >= 0 ? "*" : "", prec >= 0 ? ".*" : "");
    size_t l = strlen(spec);
    char tmp[128];
    jt_buf s = {0};
    switch (conv) {
    case 'd':
    case 'i':
    case 'x':
    case 'X':
    case 'o':
        spec[l] = 'l';
        spec[l + 1] = 'l';
        spec[l + 2] = conv == 'i' ? 'd' : conv;
        spec[l + 3] = 0;
        {
            long long x = v.kind == JT_FLOAT ? (long long)v.u.f : v.kind == JT_INT ? v.u.i : v.u.b;
            if (width >= 0 && prec >= 0)
                snprintf(tmp, sizeof(tmp), spec, width, prec, x);
            else if (width >= 0)
                snprintf(tmp, sizeof(tmp), spec, width, x);
            else if (prec >= 0)
                snprintf(tmp, sizeof(tmp), spec, prec, x);
            else
                snprintf(tmp, sizeof(tmp), spec, x);
        }
        jt_buf_puts(b, tmp);
        return;
    case 'f':
    case 'F':
    case 'e':
    case 'E':
    case 'g':
    case 'G':
        spec[l] = conv;
        spec[l + 1] = 0;
        {
            double x = jv_num(v);
            if (prec < 0) prec = 6;
            if (width >= 0)
                snprintf(tmp, sizeof(tmp), spec, width, prec, x);
            else
                snprintf(tmp, sizeof(tmp), spec, prec, x);
        }
        jt_buf_puts(b, tmp);
        return;
    default: /* s, r */
        if (conv == 'r')
            jv_to_repr(&s, v);
        else
            jv_to_str(&s, v);
        {
            size_t n = s.len;
            if (prec >= 0) n = jt_utf8_offset(s.p ? s.p : "", s.len, (size_t)prec);
            size_t cps = jt_utf8_len(s.p ? s.p : "", n);
            int left = strchr(flags, '-') != NULL;
            int padn = width > (int)cps ? width - (int)cps : 0;
            if (!left)
                for (int i = 0; i < padn; i++)
                    jt_buf_putc(b, ' ');
            jt_buf_put(b, s.p ? s.p : "", n);
            if (left)
                for (int i = 0; i < padn; i++)
                    jt_buf_putc(b, ' ');
        }
        free(s.p);
    }
}

/* Python's `fmt % args`: args a list (tuple), a dict for %(name)s, or one value. */
jv jt_string_format(jt_ctx *c, jv fmt, jv args)
{
    const char *p = fmt.u.s->p;
    size_t n = fmt.u.s->len, next = 0;
    jt_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (p[i] != '%') {
            jt_buf_putc(&b, p[i]);
            continue;
        }
        if (++i >= n) goto bad;
        if (p[i] == '%') {
            jt_buf_putc(&b, '%');
            continue;
        }
        jv val;
        int have = 0;
        if (p[i] == '(') {
            size_t e = i + 1;
            while (e < n && p[e] != ')')
                e++;
            if (e >= n || args.kind != JT_DICT) goto bad;
            jv key = jv_str(p + i + 1, e - i - 1);
            jv *f = jt_dict_find(args.u.d, key);
            jv_unref(key);
            if (!f) {
                free(b.p);
                return jt_fail(c, "format: missing key '%.*s'", (int)(e - i - 1), p + i + 1);
            }
            val = *f;
            have = 1;
            i = e + 1;
        }
        char flags[8] = {0};
        int nf = 0, width = -1, prec = -1;
        while (i < n && strchr("-+ 0#", p[i]) && nf < 7)
            flags[nf++] = p[i++];
        if (i < n && isdigit((unsigned char)p[i])) {
            width = 0;
            while (i < n && isdigit((unsigned char)p[i]) && width < 10000)
                width = width * 10 + p[i++] - '0';
        }
        if (i < n && p[i] == '.') {
            i++;
            prec = 0;
            while (i < n && isdigit((unsigned char)p[i]) && prec < 10000)
                prec = prec * 10 + p[i++] - '0';
        }
        if (i >= n || !strchr("sridxXoeEfFgGc", p[i])) goto bad;
        if (!have) {
            if (args.kind == JT_LIST) {
                if (next >= args.u.l->n) {
                    free(b.p);
                    return jt_fail(c, "not enough arguments for format string");
                }
                val = args.u.l->v[next++];
            } else {
                if (next++) {
                    free(b.p);
                    return jt_fail(c, "not enough arguments for format string");
                }
                val = args;
            }
        }
        char conv = p[i];
        if (strchr("dixXoeEfFgG", conv) && !jv_is_number(val)) {
            free(b.p);
            return jt_fail(c, "%%%c format: a real number is required, not %s", conv,
                           jv_type_name(val));
        }
        if (strchr("dixXo", conv) && !int_range(val)) { /* Python's are unbounded; ours int64 */
            free(b.p);
            return jt_fail(c, "%%%c format: %g is out of the integer range", conv, val.u.f);
        }
        if (conv == 'c') conv = 's';
        fmt_one(&b, flags, width, prec, conv, val);
    }
    if (args.kind == JT_LIST && next < args.u.l->n) {
        free(b.p);
        return jt_fail(c, "not all arguments converted during string formatting");
    }
    return jv_str_buf(&b);
bad:
    free(b.p);
    return jt_fail(c, "unsupported format string '%s'", p);
}

/* str.format(): {} {0} {name} {{ }}, conversions !s !r, specs [fill][<>^][width][.prec][type] */
jv jt_str_format_method(jt_ctx *c, jv fmt, jt_args *a)
{
    const char *p = fmt.u.s->p;
    size_t n = fmt.u.s->len, auto_i = 0;
    jt_buf b = {0};
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '}' && i + 1 < n && p[i + 1] == '}') {
            jt_buf_putc(&b, '}');
            i++;
            continue;
        }
        if (p[i] != '{') {
            jt_buf_putc(&b, p[i]);
            continue;
        }
        if (i + 1 < n && p[i + 1] == '{') {
            jt_buf_putc(&b, '{');
            i++;
            continue;
        }
        size_t e = i + 1;
        while (e < n && p[e] != '}')
            e++;
        if (e >= n) {
            free(b.p);
            return jt_fail(c, "format(): single '{' encountered in format string");
        }
        char field[128];
        snprintf(field, sizeof(field), "%.*s", (int)(e - i - 1), p + i + 1);
        char *spec = strchr(field, ':');
        if (spec) *spec++ = 0;
        char *conv = strchr(field, '!');
        if (conv) *conv++ = 0;
        jv *val = NULL;
        if (!field[0]) {
            val = jt_arg(a, auto_i++, NULL);
        } else if (isdigit((unsigned char)field[0])) {
            val = jt_arg(a, (size_t)atoi(field), NULL);
        } else {
            for (size_t k = 0; k < a->nkw; k++)
                if (!strcmp(a->kwn[k], field)) val = &a->kwv[k];
        }
        if (!val) {
            free(b.p);
            return jt_fail(c, "format(): no argument for field '{%s}'", field);
        }
        jt_buf one = {0};
        char type = 's';
        int width = -1, prec = -1;
        char align = 0, fill = ' ';
        if (spec && *spec) {
            char *q = spec;
            if (q[0] && (q[1] == '<' || q[1] == '>' || q[1] == '^')) {
                fill = q[0];
                align = q[1];
                q += 2;
            } else if (*q == '<' || *q == '>' || *q == '^') {
                align = *q++;
            }
            if (*q == '0' && !align) {
                fill = '0';
                align = '>';
            }
            if (isdigit((unsigned char)*q)) width = (int)strtol(q, &q, 10);
            if (*q == '.') prec = (int)strtol(q + 1, &q, 10);
            if (*q) type = *q;
            if (width > 10000 || prec > 1000) {
                free(b.p);
                return jt_fail(c, "format(): width or precision too large");
            }
        }
        if ((strchr("dfFeEgGxXo%", type) && !jv_is_number(*val)) ||
            (strchr("dxXo", type) && val->kind == JT_FLOAT)) { /* Python: ints only */
            free(b.p);
            return jt_fail(c, "format(): unknown format code '%c' for %s", type,
                           jv_type_name(*val));
        }
        if (type == 'd' || type == 'x' || type == 'X' || type == 'o' || strchr("fFeEgG", type))
            fmt_one(&one, "", -1, prec, type, *val);
        else if (conv && *conv == 'r')
            fmt_one(&one, "", -1, prec, 'r', *val);
        else
            fmt_one(&one, "", -1, prec, 's', *val);
        int len = (int)jt_utf8_len(one.p ? one.p : "", one.len);
        int padn = width > len ? width - len : 0;
        if (!align) align = jv_is_number(*val) ? '>' : '<';
        int left = align == '>' ? padn : align == '^' ? padn / 2 : 0;
        for (int k = 0; k < left; k++)
            jt_buf_putc(&b, fill);
        jt_buf_put(&b, one.p ? one.p : "", one.len);
        for (int k = left; k < padn; k++)
            jt_buf_putc(&b, fill);
        free(one.p);
        i = e;
    }
    return jv_str_buf(&b);
}

static jv f_format(jt_ctx *c, jv v, jt_args *a)
{
    jv s = need_string(c, v, "format");
    jv args;
    if (a->nkw) {
        args = jv_dict();
        for (size_t k = 0; k < a->nkw; k++)
            jt_dict_set(args, jv_strz(a->kwn[k]), jv_ref(a->kwv[k]));
    } else {
        args = jv_list(a->npos);
        for (size_t i = 0; i < a->npos; i++)
            jt_list_push(args, jv_ref(a->pos[i]));
    }
    jv r = jt_string_format(c, s, args);
    jv_unref(args);
    jv_unref(s);
    return r;
}

/* ---------------------------------------------------------------- numbers */
static jv f_int(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("int", 2, "default", "base");
    jv *d = jt_arg(a, 0, "default"), *bs = jt_arg(a, 1, "base");
    int base = bs && bs->kind == JT_INT ? (int)bs->u.i : 10;
    switch (v.kind) {
    case JT_INT:
        return v;
    case JT_BOOL:
        return jv_int(v.u.b);
    case JT_FLOAT:
        if (isfinite(v.u.f) && fabs(v.u.f) < 9.2e18) return jv_int((int64_t)v.u.f);
        break;
    case JT_STR: {
        jv t = jt_str_strip(v, NULL, 1, 1);
        const char *p = t.u.s->p;
        char *end;
        long long x = 0;
        if (*p) {
            x = strtoll(p, &end, base);
            if (!*end) {
                jv_unref(t);
                return jv_int(x);
            }
            double f = strtod(p, &end); /* int(float(value)) */
            if (!*end && isfinite(f) && fabs(f) < 9.2e18) {
                jv_unref(t);
                return jv_int((int64_t)f);
            }
        }
        jv_unref(t);
        break;
    }
    default:
        break;
    }
    return d ? jv_ref(*d) : jv_int(0);
}

static jv f_float(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("float", 1, "default");
    jv *d = jt_arg(a, 0, "default");
    if (jv_is_number(v)) return jv_float(jv_num(v));
    if (v.kind == JT_STR) {
        jv t = jt_str_strip(v, NULL, 1, 1);
        char *end;
        double f = strtod(t.u.s->p, &end);
        int ok = t.u.s->len && !*end;
        jv_unref(t);
        if (ok) return jv_float(f);
    }
    return d ? jv_ref(*d) : jv_float(0.0);
}

static jv f_abs(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "abs", 0, NULL)) return jv_undef();
    if (v.kind == JT_INT)
        return v.u.i == INT64_MIN ? jt_fail(c, "integer overflow")
                                  : jv_int(v.u.i < 0 ? -v.u.i : v.u.i);
    if (v.kind == JT_BOOL) return jv_int(v.u.b);
    if (v.kind == JT_FLOAT) return jv_float(fabs(v.u.f));
    return jt_fail(c, "bad operand type for abs(): '%s'", jv_type_name(v));
}

static jv f_round(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("round", 2, "precision", "method");
    jv *pr = jt_arg(a, 0, "precision"), *m = jt_arg(a, 1, "method");
    int64_t prec = pr && pr->kind == JT_INT ? pr->u.i : 0;
    const char *method = m && m->kind == JT_STR ? m->u.s->p : "common";
    if (!jv_is_number(v)) return jt_fail(c, "round: must be a number, not %s", jv_type_name(v));
    if (prec < -300 || prec > 300) return jt_fail(c, "round: precision out of range");
    double x = jv_num(v), scale = pow(10.0, (double)prec), y = x * scale;
    if (!strcmp(method, "common"))
        y = nearbyint(y); /* Python's round(): halves to even */
    else if (!strcmp(method, "ceil"))
        y = ceil(y);
    else if (!strcmp(method, "floor"))
        y = floor(y);
    else
        return jt_fail(c, "method must be 'common', 'ceil' or 'floor'");
    return jv_float(y / scale);
}

/* ---------------------------------------------------------------- sequences */
static jv f_length(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "length", 0, NULL)) return jv_undef();
    switch (v.kind) {
    case JT_STR:
        return jv_int((int64_t)jt_utf8_len(v.u.s->p, v.u.s->len));
    case JT_LIST:
        return jv_int((int64_t)v.u.l->n);
    case JT_DICT:
    case JT_NS:
        return jv_int((int64_t)v.u.d->n);
    case JT_UNDEF:
        return jv_int(0);
    default:
        return jt_fail(c, "object of type '%s' has no len()", jv_type_name(v));
    }
}

static jv f_list(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "list", 0, NULL)) return jv_undef();
    return jt_to_list(c, v);
}

static jv first_last(jt_ctx *c, jv v, jt_args *a, int last)
{
    if (jt_args_check(c, a, last ? "last" : "first", 0, NULL)) return jv_undef();
    jv l = jt_to_list(c, v);
    if (c->failed) return jv_undef();
    jv r = l.u.l->n ? jv_ref(l.u.l->v[last ? l.u.l->n - 1 : 0])
                    : jv_undef_msg("No %s item, sequence was empty.", last ? "last" : "first");
    jv_unref(l);
    return r;
}
static jv f_first(jt_ctx *c, jv v, jt_args *a)
{
    return first_last(c, v, a, 0);
}
static jv f_last(jt_ctx *c, jv v, jt_args *a)
{
    return first_last(c, v, a, 1);
}

static jv f_reverse(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "reverse", 0, NULL)) return jv_undef();
    jv l = jt_to_list(c, v);
    if (c->failed) return jv_undef();
    if (v.kind == JT_STR) {
        jt_buf b = {0};
        for (size_t i = l.u.l->n; i-- > 0;)
            jt_buf_put(&b, l.u.l->v[i].u.s->p, l.u.l->v[i].u.s->len);
        jv_unref(l);
        return jv_str_buf(&b);
    }
    jv r = jv_list(l.u.l->n);
    for (size_t i = l.u.l->n; i-- > 0;)
        jt_list_push(r, jv_ref(l.u.l->v[i]));
    jv_unref(l);
    return r;
}

static jv f_items(jt_ctx *c, jv v, jt_args *a)
{
    if (jt_args_check(c, a, "items", 0, NULL)) return jv_undef();
    if (v.kind == JT_UNDEF) return jv_list(0);
    if (v.kind != JT_DICT && v.kind != JT_NS)
        return jt_fail(c, "Can only get item pairs from a mapping.");
    jv r = jv_list(v.u.d->n);
    for (size_t i = 0; i < v.u.d->n; i++) {
        jv pair = jv_pair(jv_ref(v.u.d->k[i]), jv_ref(v.u.d->v[i]));
        jt_list_push(r, pair);
    }
    return r;
}

/* Sort keys: attribute path, lower-cased strings unless case_sensitive. */
static jv sort_key(jt_ctx *c, jv item, const char *attr, int case_sensitive)
{
    jv k = attr ? get_path(c, item, attr) : jv_ref(item);
    if (!case_sensitive && k.kind == JT_STR && !jt_charge(c, jt_cost(k))) { /* a new string */
        jv low = jt_str_case(k, 1);
        jv_unref(k);
        return low;
    }
    return k;
}

typedef struct {
    jv key, item;
    size_t idx;
} keyed;

static int cmp_keyed(const void *x, const void *y, void *failed)
{
    const keyed *a = x, *b = y;
    int ok, r = jv_compare(a->key, b->key, &ok);
    if (!ok && !jv_equal(a->key, b->key)) *(int *)failed = 1;
    if (r) return r;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* Stable sort of l's items by key; reverse keeps equal items in order as Python does. */
static jv sorted(jt_ctx *c, jv l, const char *attr, int case_sensitive, int reverse,
                 int pairs_by_value)
{
    size_t n = l.u.l->n;
    for (size_t m = n; m > 1; m >>= 1) /* n log n comparisons */
        if (jt_charge(c, n / 4)) return jv_undef();
    keyed *k = calloc(n + 1, sizeof(*k));
    if (!k) abort();
    for (size_t i = 0; i < n && !c->failed; i++) {
        jv item = l.u.l->v[i];
        jv base = pairs_by_value >= 0 ? jv_ref(item.u.l->v[pairs_by_value]) : jv_ref(item);
        k[i].key = sort_key(c, base, attr, case_sensitive);
        jv_unref(base);
        k[i].item = item;
        k[i].idx = reverse ? n - i : i;
    }
    int bad = 0;
    if (!c->failed) qsort_r(k, n, sizeof(*k), cmp_keyed, &bad);
    jv r = jv_list(n);
    for (size_t i = 0; i < n; i++) {
        size_t at = reverse ? n - 1 - i : i;
        jt_list_push(r, jv_ref(k[at].item));
    }
    for (size_t i = 0; i < n; i++)
        jv_unref(k[i].key);
    free(k);
    if (bad) {
        jv_unref(r);
        return jt_fail(c, "sort: values of different types cannot be ordered");
    }
    return r;
}

static jv f_sort(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("sort", 3, "reverse", "case_sensitive", "attribute");
    int rev = opt_bool(jt_arg(a, 0, "reverse"), 0),
        cs = opt_bool(jt_arg(a, 1, "case_sensitive"), 0);
    const char *attr;
    jv at = attr_arg(c, a, 2, "attribute", &attr);
    jv l = jt_to_list(c, v);
    jv r = c->failed ? jv_undef() : sorted(c, l, at.kind == JT_STR ? at.u.s->p : NULL, cs, rev, -1);
    jv_unref(l);
    jv_unref(at);
    return r;
}

static jv f_dictsort(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("dictsort", 3, "case_sensitive", "by", "reverse");
    int cs = opt_bool(jt_arg(a, 0, "case_sensitive"), 0),
        rev = opt_bool(jt_arg(a, 2, "reverse"), 0);
    jv *by = jt_arg(a, 1, "by");
    int pos = 0;
    if (by && by->kind == JT_STR && !strcmp(by->u.s->p, "value"))
        pos = 1;
    else if (by && !(by->kind == JT_STR && !strcmp(by->u.s->p, "key")))
        return jt_fail(c, "You can only sort by either \"key\" or \"value\"");
    jv items = f_items(c, v, &(jt_args){0});
    if (c->failed) return jv_undef();
    jv r = sorted(c, items, NULL, cs, rev, pos);
    jv_unref(items);
    return r;
}

static jv f_unique(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("unique", 2, "case_sensitive", "attribute");
    int cs = opt_bool(jt_arg(a, 0, "case_sensitive"), 0);
    const char *attr;
    jv at = attr_arg(c, a, 1, "attribute", &attr);
    jv l = jt_to_list(c, v); /* a list even when attr_arg failed */
    if (c->failed) {
        jv_unref(l);
        jv_unref(at);
        return jv_undef();
    }
    jv seen = jv_list(0), r = jv_list(0);
    for (size_t i = 0; i < l.u.l->n && !c->failed; i++) {
        if (jt_charge(c, seen.u.l->n / 4)) break; /* each item is compared with those kept */
        jv k = sort_key(c, l.u.l->v[i], at.kind == JT_STR ? at.u.s->p : NULL, cs);
        int dup = 0;
        for (size_t j = 0; j < seen.u.l->n && !dup; j++)
            dup = jv_equal(seen.u.l->v[j], k);
        if (dup) {
            jv_unref(k);
            continue;
        }
        jt_list_push(seen, k);
        jt_list_push(r, jv_ref(l.u.l->v[i]));
    }
    jv_unref(seen);
    jv_unref(l);
    jv_unref(at);
    return r;
}

static jv min_max(jt_ctx *c, jv v, jt_args *a, int want_max)
{
    ARGS(want_max ? "max" : "min", 2, "case_sensitive", "attribute");
    int cs = opt_bool(jt_arg(a, 0, "case_sensitive"), 0);
    const char *attr;
    jv at = attr_arg(c, a, 1, "attribute", &attr);
    jv l = jt_to_list(c, v);
    jv best = jv_undef_msg("No aggregated item, sequence was empty."), bestk = jv_undef();
    for (size_t i = 0; !c->failed && i < l.u.l->n; i++) {
        jv k = sort_key(c, l.u.l->v[i], at.kind == JT_STR ? at.u.s->p : NULL, cs);
        int ok = 1, r = i ? jv_compare(k, bestk, &ok) : 0;
        if (!ok) {
            jv_unref(k);
            jt_fail(c, "%s: values of different types cannot be compared",
                    want_max ? "max" : "min");
            break;
        }
        if (!i || (want_max ? r > 0 : r < 0)) {
            jv_unref(best);
            jv_unref(bestk);
            best = jv_ref(l.u.l->v[i]);
            bestk = k;
        } else {
            jv_unref(k);
        }
    }
    jv_unref(bestk);
    jv_unref(l);
    jv_unref(at);
    if (c->failed) {
        jv_unref(best);
        return jv_undef();
    }
    return best;
}
static jv f_min(jt_ctx *c, jv v, jt_args *a)
{
    return min_max(c, v, a, 0);
}
static jv f_max(jt_ctx *c, jv v, jt_args *a)
{
    return min_max(c, v, a, 1);
}

static jv f_sum(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("sum", 2, "attribute", "start");
    const char *attr;
    jv at = attr_arg(c, a, 0, "attribute", &attr);
    jv *st = jt_arg(a, 1, "start");
    jv acc = st ? jv_ref(*st) : jv_int(0);
    jv l = jt_to_list(c, v);
    for (size_t i = 0; !c->failed && i < l.u.l->n; i++) {
        jv x = at.kind == JT_STR ? get_path(c, l.u.l->v[i], at.u.s->p) : jv_ref(l.u.l->v[i]);
        if (!jv_is_number(x) || !jv_is_number(acc)) {
            jt_fail(c, "sum: unsupported operand types '%s' and '%s'", jv_type_name(acc),
                    jv_type_name(x));
        } else if (acc.kind == JT_FLOAT || x.kind == JT_FLOAT) {
            acc = jv_float(jv_num(acc) + jv_num(x));
        } else {
            int64_t r;
            if (__builtin_add_overflow((int64_t)jv_num(acc), (int64_t)jv_num(x), &r))
                jt_fail(c, "integer overflow");
            else
                acc = jv_int(r);
        }
        jv_unref(x);
    }
    jv_unref(l);
    jv_unref(at);
    if (c->failed) {
        jv_unref(acc);
        return jv_undef();
    }
    return acc;
}

static jv f_batch(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("batch", 2, "linecount", "fill_with");
    jv *lc = jt_arg(a, 0, "linecount"), *fill = jt_arg(a, 1, "fill_with");
    if (!lc || lc->kind != JT_INT || lc->u.i <= 0)
        return jt_fail(c, "batch: linecount must be a positive integer");
    jv l = jt_to_list(c, v);
    if (c->failed) return jv_undef();
    size_t per = (size_t)lc->u.i, n = l.u.l->n;
    jv r = jv_list(0), cur = jv_undef();
    for (size_t i = 0; i < n; i++) {
        if (i % per == 0) {
            if (cur.kind == JT_LIST) jt_list_push(r, cur);
            cur = jv_list(per < n - i ? per : n - i);
        }
        jt_list_push(cur, jv_ref(l.u.l->v[i]));
    }
    if (cur.kind == JT_LIST) {
        /* the fill is paid for before it is made: linecount may be huge */
        if (fill && fill->kind != JT_NONE && !jt_charge(c, (per - cur.u.l->n) / 4))
            while (cur.u.l->n < per)
                jt_list_push(cur, jv_ref(*fill));
        jt_list_push(r, cur);
    }
    jv_unref(l);
    return r;
}

static jv f_attr(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("attr", 1, "name");
    jv *n = jt_arg(a, 0, "name");
    if (!n || n->kind != JT_STR) return jt_fail(c, "attr: name must be a string");
    return jt_getattr(c, v, n->u.s->p);
}

static jv f_default(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("default", 2, "default_value", "boolean");
    jv *d = jt_arg(a, 0, "default_value");
    int boolean = opt_bool(jt_arg(a, 1, "boolean"), 0);
    if (v.kind == JT_UNDEF || (boolean && !jv_truthy(v))) return d ? jv_ref(*d) : jv_strz("");
    return jv_ref(v);
}

static jv f_tojson(jt_ctx *c, jv v, jt_args *a)
{
    ARGS("tojson", 1, "indent", "ensure_ascii", "separators", "sort_keys");
    jv *ind = jt_arg(a, 0, "indent"), *sep = jt_arg(a, 99, "separators");
    int indent = -1;
    if (ind && ind->kind == JT_INT)
        indent = ind->u.i > 64 ? 64 : ind->u.i < 0 ? 0 : (int)ind->u.i;
    else if (ind && ind->kind != JT_NONE)
        return jt_fail(c, "tojson: indent must be an integer");
    const char *item_sep = NULL, *key_sep = NULL;
    if (sep && sep->kind == JT_LIST && sep->u.l->n == 2 && sep->u.l->v[0].kind == JT_STR &&
        sep->u.l->v[1].kind == JT_STR) {
        item_sep = sep->u.l->v[0].u.s->p;
        key_sep = sep->u.l->v[1].u.s->p;
    } else if (sep && sep->kind != JT_NONE) {
        return jt_fail(c, "tojson: separators must be a pair of strings");
    }
    char err[256];
    jt_buf b = {0};
    b.limit = JT_MAX_VALUE;
    if (jt_to_json(&b, v, opt_bool(jt_arg(a, 99, "ensure_ascii"), 0), indent, item_sep, key_sep,
                   opt_bool(jt_arg(a, 99, "sort_keys"), 0), 0, err, sizeof(err))) {
        free(b.p);
        return jt_fail(c, "%s", err);
    }
    if (b.failed) {
        free(b.p);
        return jt_fail(c, "tojson: text longer than %u bytes", JT_MAX_VALUE);
    }
    return jv_str_buf(&b);
}

/* ---------------------------------------------------------------- higher order */
/* select/reject(test, args...) and selectattr/rejectattr(attr, test, args...) */
static jv select_common(jt_ctx *c, jv v, jt_args *a, int want, int by_attr)
{
    jv l = jt_to_list(c, v);
    if (c->failed) return jv_undef();
    size_t at = 0;
    const char *attr = NULL;
    if (by_attr) {
        if (a->npos < 1 || a->pos[0].kind != JT_STR) {
            jv_unref(l);
            return jt_fail(c, "%sattr: needs an attribute name", want ? "select" : "reject");
        }
        attr = a->pos[0].u.s->p;
        at = 1;
    }
    const char *test = NULL;
    if (a->npos > at) {
        if (a->pos[at].kind != JT_STR || !jt_test_known(a->pos[at].u.s->p)) {
            jv_unref(l);
            return jt_fail(c, "no test named '%s'",
                           a->pos[at].kind == JT_STR ? a->pos[at].u.s->p : "?");
        }
        test = a->pos[at].u.s->p;
    }
    jt_args targs = {.pos = a->pos + (test ? at + 1 : at),
                     .npos = a->npos - (test ? at + 1 : at),
                     .kwn = a->kwn,
                     .kwv = a->kwv,
                     .nkw = a->nkw};
    jv r = jv_list(0);
    for (size_t i = 0; i < l.u.l->n && !c->failed; i++) {
        jv x = attr ? get_path(c, l.u.l->v[i], attr) : jv_ref(l.u.l->v[i]);
        int t = test ? jt_test_apply(c, test, x, &targs) : jv_truthy(x);
        jv_unref(x);
        if (t < 0) break;
        if (t == want) jt_list_push(r, jv_ref(l.u.l->v[i]));
    }
    jv_unref(l);
    if (c->failed) {
        jv_unref(r);
        return jv_undef();
    }
    return r;
}
static jv f_select(jt_ctx *c, jv v, jt_args *a)
{
    return select_common(c, v, a, 1, 0);
}
static jv f_reject(jt_ctx *c, jv v, jt_args *a)
{
    return select_common(c, v, a, 0, 0);
}
static jv f_selectattr(jt_ctx *c, jv v, jt_args *a)
{
    return select_common(c, v, a, 1, 1);
}
static jv f_rejectattr(jt_ctx *c, jv v, jt_args *a)
{
    return select_common(c, v, a, 0, 1);
}

static jv f_map(jt_ctx *c, jv v, jt_args *a)
{
    jv l = jt_to_list(c, v);
    if (c->failed) return jv_undef();
    jv *attr = NULL, *dflt = NULL;
    for (size_t k = 0; k < a->nkw; k++) {
        if (!strcmp(a->kwn[k], "attribute")) attr = &a->kwv[k];
        if (!strcmp(a->kwn[k], "default")) dflt = &a->kwv[k];
    }
    const char *filter = NULL;
    if (!attr) {
        if (!a->npos || a->pos[0].kind != JT_STR || !jt_filter_known(a->pos[0].u.s->p)) {
            jv_unref(l);
            return jt_fail(c, "map: needs a filter name or attribute=");
        }
        filter = a->pos[0].u.s->p;
    } else if (attr->kind != JT_STR && attr->kind != JT_INT) {
        jv_unref(l);
        return jt_fail(c, "map: attribute must be a string");
    }
    jv attrs = attr ? jv_stringify(*attr) : jv_undef();
    jt_args fargs = {.pos = a->pos + 1,
                     .npos = a->npos ? a->npos - 1 : 0,
                     .kwn = a->kwn,
                     .kwv = a->kwv,
                     .nkw = filter ? a->nkw : 0};
    jv r = jv_list(l.u.l->n);
    for (size_t i = 0; i < l.u.l->n && !c->failed; i++) {
        jv x;
        if (filter) {
            x = jt_filter_apply(c, filter, l.u.l->v[i], &fargs);
        } else {
            x = get_path(c, l.u.l->v[i], attrs.u.s->p);
            if (x.kind == JT_UNDEF && dflt) {
                jv_unref(x);
                x = jv_ref(*dflt);
            }
        }
        jt_list_push(r, x);
    }
    jv_unref(attrs);
    jv_unref(l);
    if (c->failed) {
        jv_unref(r);
        return jv_undef();
    }
    return r;
}

static const struct {
    const char *name;
    filter_fn fn;
} filters[] = {
    {.name = "abs", .fn = f_abs},
    {.name = "attr", .fn = f_attr},
    {.name = "batch", .fn = f_batch},
    {.name = "capitalize", .fn = f_capitalize},
    {.name = "center", .fn = f_center},
    {.name = "count", .fn = f_length},
    {.name = "d", .fn = f_default},
    {.name = "default", .fn = f_default},
    {.name = "dictsort", .fn = f_dictsort},
    {.name = "e", .fn = f_escape},
    {.name = "escape", .fn = f_escape},
    {.name = "first", .fn = f_first},
    {.name = "float", .fn = f_float},
    {.name = "forceescape", .fn = f_escape},
    {.name = "format", .fn = f_format},
    {.name = "indent", .fn = f_indent},
    {.name = "int", .fn = f_int},
    {.name = "items", .fn = f_items},
    {.name = "join", .fn = f_join},
    {.name = "last", .fn = f_last},
    {.name = "length", .fn = f_length},
    {.name = "list", .fn = f_list},
    {.name = "lower", .fn = f_lower},
    {.name = "map", .fn = f_map},
    {.name = "max", .fn = f_max},
    {.name = "min", .fn = f_min},
    {.name = "pprint", .fn = f_pprint},
    {.name = "reject", .fn = f_reject},
    {.name = "rejectattr", .fn = f_rejectattr},
    {.name = "replace", .fn = f_replace},
    {.name = "reverse", .fn = f_reverse},
    {.name = "round", .fn = f_round},
    {.name = "safe", .fn = f_safe},
    {.name = "select", .fn = f_select},
    {.name = "selectattr", .fn = f_selectattr},
    {.name = "sort", .fn = f_sort},
    {.name = "string", .fn = f_string},
    {.name = "sum", .fn = f_sum},
    {.name = "title", .fn = f_title},
    {.name = "tojson", .fn = f_tojson},
    {.name = "trim", .fn = f_trim},
    {.name = "truncate", .fn = f_truncate},
    {.name = "unique", .fn = f_unique},
    {.name = "upper", .fn = f_upper},
    {.name = "wordcount", .fn = f_wordcount},
};

static filter_fn find(const char *name)
{
    for (size_t i = 0; i < sizeof(filters) / sizeof(filters[0]); i++)
        if (!strcmp(filters[i].name, name)) return filters[i].fn;
    return NULL;
}

int jt_filter_known(const char *name)
{
    return find(name) != NULL;
}

jv jt_filter_apply(jt_ctx *c, const char *name, jv v, jt_args *a)
{
    filter_fn fn = find(name);
    if (!fn) return jt_fail(c, "no filter named '%s'", name);
    /* jinja2 treats an undefined value as '' or empty for most filters; these raise */
    static const char *const refuse_undef[] = {"abs", "attr",  "dictsort", "float",
                                               "int", "round", "tojson",   NULL};
    if (v.kind == JT_UNDEF)
        for (const char *const *t = refuse_undef; *t; t++)
            if (!strcmp(*t, name)) return jt_fail(c, "%s", v.u.s ? v.u.s->p : "value is undefined");
    if (jt_charge(c, jt_cost(v))) return jv_undef(); /* filters scan what they get */
    return fn(c, v, a);
}
