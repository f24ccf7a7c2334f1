/* SPDX-License-Identifier: MIT */
/* Evaluator: expressions to values and statements to text, with jinja2's scoping (a fresh
 * scope per loop iteration, macro and with block; namespaces for state that must escape). */
#include "jt.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* err is one line: newlines and other control bytes that a message took from the template
 * (raise_exception's text, a key in "has no attribute") become spaces. */
static void one_line(char *err)
{
    for (; *err; err++)
        if ((unsigned char)*err < 0x20) *err = ' ';
}

jv jt_fail(jt_ctx *c, const char *fmt, ...)
{
    if (!c->failed) {
        c->failed = 1;
        char msg[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        snprintf(c->err, c->errlen, "line %d: %s", c->line, msg);
        if (c->errlen) one_line(c->err);
    }
    return jv_undef();
}

jv jt_raise(jt_ctx *c, jt_args *a)
{
    if (c->failed) return jv_undef();
    jt_buf b = {0};
    if (a->npos) jv_to_str(&b, a->pos[0]);
    if (!b.p || !b.p[0]) { /* the caller prints err as the reason: never an empty one */
        free(b.p);
        return jt_fail(c, "raise_exception() without a message");
    }
    c->failed = 1;
    snprintf(c->err, c->errlen, "%s", b.p);
    if (c->errlen) one_line(c->err);
    free(b.p);
    return jv_undef();
}

/* Using an undefined value where jinja2 raises UndefinedError. */
static jv undef_error(jt_ctx *c, jv u)
{
    return jt_fail(c, "%s", u.u.s ? u.u.s->p : "value is undefined");
}

int jt_charge(jt_ctx *c, unsigned long long steps)
{
    c->steps += steps;
    if (c->steps <= c->max_steps) return 0;
    jt_fail(c, "more than %llu evaluation steps (a runaway template?)", c->max_steps);
    return -1;
}

unsigned long long jt_cost(jv v)
{
    if (v.kind == JT_STR) return v.u.s->len / 32;
    if (v.kind == JT_LIST) return v.u.l->n / 4;
    if (v.kind == JT_DICT || v.kind == JT_NS) return v.u.d->n / 4;
    return 0;
}

jv jt_func_new(int type, const char *name, jv self)
{
    jt_func *f = calloc(1, sizeof(*f));
    if (!f) abort();
    f->refs = 1;
    f->type = type;
    f->name = name;
    f->self = self;
    f->caller = jv_undef();
    return (jv){.kind = JT_FUNC, .u.fn = f};
}

/* ---------------------------------------------------------------- scopes */
static jv *lookup(jt_ctx *c, const char *name)
{
    for (jt_scope *s = c->scope; s; s = s->parent) {
        jv *v = jt_dict_findz(s->vars.u.d, name);
        if (v) return v;
    }
    return NULL;
}

static void assign(jt_ctx *c, const char *name, jv v)
{
    if (jv_depth(v) > JT_MAX_DEPTH) {
        jv_unref(v);
        jt_fail(c, "'%s': value nested deeper than %d", name, JT_MAX_DEPTH);
        return;
    }
    jt_dict_set(c->scope->vars, jv_strz(name), v);
}

static void push_scope(jt_ctx *c, jt_scope *s, jt_scope *parent)
{
    s->vars = jv_dict();
    s->parent = parent;
    c->scope = s;
}

static void pop_scope(jt_ctx *c, jt_scope *s, jt_scope *restore)
{
    jv_unref(s->vars);
    c->scope = restore;
}

/* ---------------------------------------------------------------- lists and access */
jv jt_to_list(jt_ctx *c, jv v)
{
    /* a string becomes one item per character: paid before they are made */
    if (v.kind == JT_STR && jt_charge(c, v.u.s->len / 4)) return jv_undef();
    if ((v.kind == JT_DICT || v.kind == JT_NS) && jt_charge(c, jt_cost(v))) return jv_undef();
    switch (v.kind) {
    case JT_LIST:
        return jv_ref(v);
    case JT_UNDEF:
        return jv_list(0);
    case JT_DICT:
    case JT_NS: {
        jv l = jv_list(v.u.d->n);
        for (size_t i = 0; i < v.u.d->n; i++)
            jt_list_push(l, jv_ref(v.u.d->k[i]));
        return l;
    }
    case JT_STR: {
        jv l = jv_list(v.u.s->len);
        const char *p = v.u.s->p;
        size_t n = v.u.s->len;
        for (size_t i = 0; i < n;) {
            size_t k = i + 1;
            while (k < n && ((unsigned char)p[k] & 0xc0) == 0x80)
                k++;
            jt_list_push(l, jv_str(p + i, k - i));
            i = k;
        }
        return l;
    }
    default:
        return jt_fail(c, "'%s' object is not iterable", jv_type_name(v));
    }
}

static jv loop_attr(jt_ctx *c, jt_loop *L, const char *name)
{
    size_t n = L->items.u.l->n, i = L->i;
    if (!strcmp(name, "index")) return jv_int((int64_t)i + 1);
    if (!strcmp(name, "index0")) return jv_int((int64_t)i);
    if (!strcmp(name, "revindex")) return jv_int((int64_t)(n - i));
    if (!strcmp(name, "revindex0")) return jv_int((int64_t)(n - i - 1));
    if (!strcmp(name, "first")) return jv_bool(i == 0);
    if (!strcmp(name, "last")) return jv_bool(i + 1 == n);
    if (!strcmp(name, "length")) return jv_int((int64_t)n);
    if (!strcmp(name, "depth")) return jv_int(L->depth);
    if (!strcmp(name, "depth0")) return jv_int(L->depth - 1);
    if (!strcmp(name, "previtem"))
        return i > 0 ? jv_ref(L->items.u.l->v[i - 1]) : jv_undef_msg("there is no previous item");
    if (!strcmp(name, "nextitem"))
        return i + 1 < n ? jv_ref(L->items.u.l->v[i + 1]) : jv_undef_msg("there is no next item");
    (void)c;
    return jv_undef_msg("'LoopContext' object has no attribute '%s'", name);
}

jv jt_getattr(jt_ctx *c, jv obj, const char *name)
{
    if (obj.kind == JT_UNDEF) return undef_error(c, obj);
    if (obj.kind == JT_LOOP) {
        if (!strcmp(name, "cycle") || !strcmp(name, "changed"))
            return jt_func_new(FN_METHOD, name, jv_ref(obj));
        return loop_attr(c, obj.u.loop, name);
    }
    if (obj.kind == JT_NS) {
        jv *v = jt_dict_findz(obj.u.d, name);
        return v ? jv_ref(*v) : jv_undef_msg("'Namespace' object has no attribute '%s'", name);
    }
    /* Python attributes (methods) first, as jinja2's getattr does, then items. */
    const char *m = jt_method_lookup(obj, name);
    if (m) return jt_func_new(FN_METHOD, m, jv_ref(obj));
    if (obj.kind == JT_DICT) {
        jv *v = jt_dict_findz(obj.u.d, name);
        if (v) return jv_ref(*v);
        return jv_undef_msg("'dict object' has no attribute '%s'", name);
    }
    if (obj.kind == JT_NONE) return jv_undef_msg("'None' has no attribute '%s'", name);
    return jv_undef_msg("'%s object' has no attribute '%s'", jv_type_name(obj), name);
}

jv jt_getitem(jt_ctx *c, jv obj, jv key)
{
    if (obj.kind == JT_UNDEF) return undef_error(c, obj);
    if (key.kind == JT_UNDEF) return undef_error(c, key);
    if (obj.kind == JT_DICT || obj.kind == JT_NS) {
        jv *v = jt_dict_find(obj.u.d, key);
        if (v) return jv_ref(*v);
        const char *m = key.kind == JT_STR ? jt_method_lookup(obj, key.u.s->p) : NULL;
        if (m) return jt_func_new(FN_METHOD, m, jv_ref(obj));
        jt_buf b = {0};
        jv_to_repr(&b, key);
        jv u = jv_undef_msg("'%s' has no attribute %s",
                            obj.kind == JT_DICT ? "dict object" : "Namespace", b.p ? b.p : "");
        free(b.p);
        return u;
    }
    if ((obj.kind == JT_LIST || obj.kind == JT_STR) &&
        (key.kind == JT_INT || key.kind == JT_BOOL)) {
        int64_t i = key.kind == JT_INT ? key.u.i : key.u.b;
        if (obj.kind == JT_LIST) {
            int64_t n = (int64_t)obj.u.l->n;
            if (i < 0) i += n;
            if (i < 0 || i >= n)
                return jv_undef_msg("list object has no element %lld", (long long)key.u.i);
            return jv_ref(obj.u.l->v[i]);
        }
        const char *p = obj.u.s->p;
        size_t len = obj.u.s->len;
        int64_t n = (int64_t)jt_utf8_len(p, len);
        if (i < 0) i += n;
        if (i < 0 || i >= n)
            return jv_undef_msg("str object has no element %lld", (long long)key.u.i);
        size_t a = jt_utf8_offset(p, len, (size_t)i), b = jt_utf8_offset(p, len, (size_t)i + 1);
        return jv_str(p + a, b - a);
    }
    if (key.kind == JT_STR) return jt_getattr(c, obj, key.u.s->p);
    if (obj.kind == JT_LIST || obj.kind == JT_STR)
        return jt_fail(c, "%s indices must be integers or slices, not %s", jv_type_name(obj),
                       jv_type_name(key));
    if (obj.kind == JT_NONE) return jv_undef_msg("'None' has no element");
    return jv_undef_msg("'%s object' has no element", jv_type_name(obj));
}

static int slice_bound(jt_ctx *c, jv v, int64_t *out)
{
    if (v.kind == JT_NONE || v.kind == JT_UNDEF) return 0;
    if (v.kind == JT_INT || v.kind == JT_BOOL) {
        *out = v.kind == JT_INT ? v.u.i : v.u.b;
        return 1;
    }
    jt_fail(c, "slice indices must be integers or None, not %s", jv_type_name(v));
    return -1;
}

/* Python slice semantics over n items: the count of selected positions, the first in *start
 * (position k is *start + k * step; computed so that a huge step cannot overflow). */
static int64_t slice_indices(int64_t n, int has_a, int64_t a, int has_b, int64_t b, int64_t step,
                             int64_t *start)
{
    if (step > 0) {
        a = !has_a ? 0 : a < 0 ? (a + n < 0 ? 0 : a + n) : (a > n ? n : a);
        b = !has_b ? n : b < 0 ? (b + n < 0 ? 0 : b + n) : (b > n ? n : b);
    } else {
        a = !has_a ? n - 1 : a < 0 ? (a + n < 0 ? -1 : a + n) : (a >= n ? n - 1 : a);
        b = !has_b ? -1 : b < 0 ? (b + n < 0 ? -1 : b + n) : (b >= n ? n - 1 : b);
    }
    *start = a;
    if (step > 0) return a < b ? (int64_t)((uint64_t)(b - a - 1) / (uint64_t)step) + 1 : 0;
    return a > b ? (int64_t)((uint64_t)(a - b - 1) / (0 - (uint64_t)step)) + 1 : 0;
}

static jv eval_slice(jt_ctx *c, const jt_node *n)
{
    jv obj = jt_eval(c, n->a);
    jv parts[3] = {jv_none(), jv_none(), jv_none()};
    const jt_node *pn[3] = {n->b, n->c, n->d};
    int64_t v[3] = {0, 0, 1};
    int has[3] = {0, 0, 0};
    jv out = jv_undef();
    for (int k = 0; k < 3 && !c->failed; k++) {
        if (!pn[k]) continue;
        parts[k] = jt_eval(c, pn[k]);
        if (!c->failed) has[k] = slice_bound(c, parts[k], &v[k]);
    }
    if (c->failed) goto done;
    if (has[2] && v[2] == 0) {
        jt_fail(c, "slice step cannot be zero");
        goto done;
    }
    if (obj.kind == JT_UNDEF) {
        undef_error(c, obj);
        goto done;
    }
    if (obj.kind != JT_LIST && obj.kind != JT_STR) {
        jt_fail(c, "'%s' object is not subscriptable", jv_type_name(obj));
        goto done;
    }
    int64_t at;
    if (obj.kind == JT_LIST) {
        int64_t cnt = slice_indices((int64_t)obj.u.l->n, has[0], v[0], has[1], v[1], v[2], &at);
        out = jv_list((size_t)cnt);
        for (int64_t i = 0; i < cnt; i++)
            jt_list_push(out, jv_ref(obj.u.l->v[at + i * v[2]]));
    } else {
        const char *p = obj.u.s->p;
        size_t len = obj.u.s->len;
        if (jt_charge(c, jt_cost(obj))) goto done;
        size_t ncp = jt_utf8_len(p, len), *offs = NULL;
        if (ncp < len) { /* code point offsets, 8 bytes a character: paid before they are made */
            if (jt_charge(c, len / 4)) goto done;
            offs = malloc((ncp + 1) * sizeof(size_t));
            if (!offs) abort();
            for (size_t i = 0, k = 0; i <= len; i++)
                if (i == len || ((unsigned char)p[i] & 0xc0) != 0x80) offs[k++] = i;
        }
        int64_t cnt = slice_indices((int64_t)ncp, has[0], v[0], has[1], v[1], v[2], &at);
        jt_buf b = {0};
        for (int64_t i = 0; i < cnt; i++) {
            size_t k = (size_t)(at + i * v[2]);
            size_t from = offs ? offs[k] : k, to = offs ? offs[k + 1] : k + 1;
            jt_buf_put(&b, p + from, to - from);
        }
        out = jv_str_buf(&b);
        free(offs);
    }
done:
    for (int k = 0; k < 3; k++)
        jv_unref(parts[k]);
    jv_unref(obj);
    return out;
}

/* ---------------------------------------------------------------- arithmetic */
static jv type_error(jt_ctx *c, const char *op, jv a, jv b)
{
    return jt_fail(c, "unsupported operand type(s) for %s: '%s' and '%s'", op, jv_type_name(a),
                   jv_type_name(b));
}

static int is_intlike(jv v)
{
    return v.kind == JT_INT || v.kind == JT_BOOL;
}
static int64_t as_int(jv v)
{
    return v.kind == JT_INT ? v.u.i : v.u.b;
}

static jv repeat(jt_ctx *c, jv seq, int64_t times)
{
    if (times < 0) times = 0;
    size_t unit = seq.kind == JT_STR ? seq.u.s->len : seq.u.l->n;
    if (unit && (uint64_t)times > JT_MAX_VALUE / unit)
        return jt_fail(c, "result larger than %u bytes or items", JT_MAX_VALUE);
    /* a result the step budget cannot pay for is not made (charged() pays for others after) */
    unsigned long long pay = unit * (uint64_t)times / (seq.kind == JT_STR ? 32 : 4);
    if (c->steps + pay > c->max_steps && jt_charge(c, pay)) return jv_undef();
    if (seq.kind == JT_STR) { /* doubling copies: one memcpy per power of two */
        size_t total = unit * (size_t)times;
        jt_str *p = malloc(sizeof(*p) + total + 1);
        if (!p) return jt_fail(c, "out of memory");
        p->refs = 1;
        p->len = total;
        size_t done = total ? unit : 0;
        if (total) memcpy(p->p, seq.u.s->p, unit);
        while (done < total) {
            size_t k = done < total - done ? done : total - done;
            memcpy(p->p + done, p->p, k);
            done += k;
        }
        p->p[total] = 0;
        return (jv){.kind = JT_STR, .u.s = p};
    }
    jv l = jv_list(unit * (size_t)times);
    for (int64_t i = 0; i < times; i++)
        for (size_t k = 0; k < unit; k++)
            jt_list_push(l, jv_ref(seq.u.l->v[k]));
    return l;
}

jv jt_string_format(jt_ctx *c, jv fmt, jv args); /* filters.c */

static jv arith(jt_ctx *c, int op, jv a, jv b)
{
    static const char *const sym[] = {"+", "-", "*", "/", "//", "%", "**"};
    if (a.kind == JT_UNDEF) return undef_error(c, a);
    if (b.kind == JT_UNDEF) return undef_error(c, b);
    int num = jv_is_number(a) && jv_is_number(b);
    int ints = num && is_intlike(a) && is_intlike(b);
    int64_t x = ints ? as_int(a) : 0, y = ints ? as_int(b) : 0, r;
    switch (op) {
    case OP_ADD:
        if (ints) {
            if (__builtin_add_overflow(x, y, &r)) return jt_fail(c, "integer overflow");
            return jv_int(r);
        }
        if (num) return jv_float(jv_num(a) + jv_num(b));
        if (a.kind == JT_STR && b.kind == JT_STR) {
            if (a.u.s->len + b.u.s->len > JT_MAX_VALUE)
                return jt_fail(c, "string longer than %u bytes", JT_MAX_VALUE);
            jt_buf s = {0};
            jt_buf_put(&s, a.u.s->p, a.u.s->len);
            jt_buf_put(&s, b.u.s->p, b.u.s->len);
            return jv_str_buf(&s);
        }
        if (a.kind == JT_LIST && b.kind == JT_LIST) {
            jv l = jv_list(a.u.l->n + b.u.l->n);
            for (size_t i = 0; i < a.u.l->n; i++)
                jt_list_push(l, jv_ref(a.u.l->v[i]));
            for (size_t i = 0; i < b.u.l->n; i++)
                jt_list_push(l, jv_ref(b.u.l->v[i]));
            return l;
        }
        if (a.kind == JT_STR)
            return jt_fail(c, "can only concatenate str (not \"%s\") to str", jv_type_name(b));
        if (a.kind == JT_LIST)
            return jt_fail(c, "can only concatenate list (not \"%s\") to list", jv_type_name(b));
        return type_error(c, "+", a, b);
    case OP_SUB:
        if (ints) {
            if (__builtin_sub_overflow(x, y, &r)) return jt_fail(c, "integer overflow");
            return jv_int(r);
        }
        if (num) return jv_float(jv_num(a) - jv_num(b));
        return type_error(c, "-", a, b);
    case OP_MUL:
        if (ints) {
            if (__builtin_mul_overflow(x, y, &r)) return jt_fail(c, "integer overflow");
            return jv_int(r);
        }
        if (num) return jv_float(jv_num(a) * jv_num(b));
        if ((a.kind == JT_STR || a.kind == JT_LIST) && is_intlike(b))
            return repeat(c, a, as_int(b));
        if ((b.kind == JT_STR || b.kind == JT_LIST) && is_intlike(a))
            return repeat(c, b, as_int(a));
        return type_error(c, "*", a, b);
    case OP_DIV:
        if (!num) return type_error(c, "/", a, b);
        if (jv_num(b) == 0) return jt_fail(c, "division by zero");
        return jv_float(jv_num(a) / jv_num(b));
    case OP_FLOORDIV:
        if (!num) return type_error(c, "//", a, b);
        if (jv_num(b) == 0) return jt_fail(c, "integer division or modulo by zero");
        if (ints) {
            if (x == INT64_MIN && y == -1) return jt_fail(c, "integer overflow");
            int64_t q = x / y;
            if ((x % y != 0) && ((x < 0) != (y < 0))) q--;
            return jv_int(q);
        }
        return jv_float(floor(jv_num(a) / jv_num(b)));
    case OP_MOD:
        if (a.kind == JT_STR) return jt_string_format(c, a, b);
        if (!num) return type_error(c, "%", a, b);
        if (jv_num(b) == 0) return jt_fail(c, "integer division or modulo by zero");
        if (ints) {
            if (y == -1) return jv_int(0);
            int64_t m = x % y;
            if (m != 0 && ((m < 0) != (y < 0))) m += y;
            return jv_int(m);
        } else {
            double fx = jv_num(a), fy = jv_num(b), m = fmod(fx, fy);
            if (m != 0 && ((m < 0) != (fy < 0))) m += fy;
            return jv_float(m);
        }
    case OP_POW:
        if (!num) return type_error(c, "**", a, b);
        if (ints && y >= 0) {
            int64_t acc = 1, base = x;
            for (int64_t e = y; e > 0; e >>= 1) {
                if ((e & 1) && __builtin_mul_overflow(acc, base, &acc))
                    return jt_fail(c, "integer overflow");
                if (e > 1 && __builtin_mul_overflow(base, base, &base))
                    return jt_fail(c, "integer overflow");
            }
            return jv_int(acc);
        }
        return jv_float(pow(jv_num(a), jv_num(b)));
    }
    return jt_fail(c, "bad operator %s", sym[0]);
}

static int contains(jt_ctx *c, jv hay, jv needle)
{
    switch (hay.kind) {
    case JT_STR:
        if (needle.kind != JT_STR) {
            jt_fail(c, "'in <string>' requires string as left operand, not %s",
                    jv_type_name(needle));
            return -1;
        }
        if (!needle.u.s->len) return 1;
        return memmem(hay.u.s->p, hay.u.s->len, needle.u.s->p, needle.u.s->len) != NULL;
    case JT_LIST:
        for (size_t i = 0; i < hay.u.l->n; i++)
            if (jv_equal(hay.u.l->v[i], needle)) return 1;
        return 0;
    case JT_DICT:
    case JT_NS:
        return jt_dict_find(hay.u.d, needle) != NULL;
    case JT_UNDEF:
        return 0;
    default:
        jt_fail(c, "argument of type '%s' is not iterable", jv_type_name(hay));
        return -1;
    }
}

static jv compare(jt_ctx *c, int op, jv a, jv b)
{
    if (op == OP_EQ) return jv_bool(jv_equal(a, b));
    if (op == OP_NE) return jv_bool(!jv_equal(a, b));
    if (op == OP_IN || op == OP_NOTIN) {
        int r = contains(c, b, a);
        return r < 0 ? jv_undef() : jv_bool(op == OP_IN ? r : !r);
    }
    if (a.kind == JT_UNDEF) return undef_error(c, a);
    if (b.kind == JT_UNDEF) return undef_error(c, b);
    int ok, r = jv_compare(a, b, &ok);
    static const char *const sym[] = {"<", "<=", ">", ">="};
    if (!ok)
        return jt_fail(c, "'%s' not supported between instances of '%s' and '%s'", sym[op - OP_LT],
                       jv_type_name(a), jv_type_name(b));
    switch (op) {
    case OP_LT:
        return jv_bool(r < 0);
    case OP_LE:
        return jv_bool(r <= 0);
    case OP_GT:
        return jv_bool(r > 0);
    default:
        return jv_bool(r >= 0);
    }
}

/* ---------------------------------------------------------------- calls */
static void args_free(jt_args *a)
{
    for (size_t i = 0; i < a->npos; i++)
        jv_unref(a->pos[i]);
    for (size_t i = 0; i < a->nkw; i++)
        jv_unref(a->kwv[i]);
    free(a->pos);
    free(a->kwn);
    free(a->kwv);
}

/* Evaluates argument nodes kids[from..] of n. */
static int args_eval(jt_ctx *c, const jt_node *n, size_t from, jt_args *a)
{
    memset(a, 0, sizeof(*a));
    size_t k = n->nkids > from ? n->nkids - from : 0;
    a->pos = calloc(k + 1, sizeof(jv));
    a->kwn = calloc(k + 1, sizeof(char *));
    a->kwv = calloc(k + 1, sizeof(jv));
    if (!a->pos || !a->kwn || !a->kwv) abort();
    for (size_t i = from; i < n->nkids && !c->failed; i++) {
        const jt_node *arg = n->kids[i];
        if (arg->kind == N_KWARG) {
            for (size_t j = 0; j < a->nkw; j++)
                if (!strcmp(a->kwn[j], arg->name)) {
                    jt_fail(c, "got multiple values for keyword argument '%s'", arg->name);
                    return -1;
                }
            a->kwv[a->nkw] = jt_eval(c, arg->a);
            a->kwn[a->nkw++] = arg->name;
            jt_charge(c, jt_cost(a->kwv[a->nkw - 1])); /* what the callee may scan */
        } else {
            a->pos[a->npos++] = jt_eval(c, arg);
            jt_charge(c, jt_cost(a->pos[a->npos - 1]));
        }
    }
    return c->failed ? -1 : 0;
}

jv *jt_arg(jt_args *a, size_t i, const char *name)
{
    if (i < a->npos) return &a->pos[i];
    if (name)
        for (size_t k = 0; k < a->nkw; k++)
            if (!strcmp(a->kwn[k], name)) return &a->kwv[k];
    return NULL;
}

int jt_args_check(jt_ctx *c, jt_args *a, const char *what, size_t npos, const char *const *names)
{
    if (a->npos > npos) {
        jt_fail(c, "%s() takes at most %zu positional arguments (%zu given)", what, npos, a->npos);
        return -1;
    }
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i = 0;
        for (; names && names[i]; i++)
            if (!strcmp(names[i], a->kwn[k])) break;
        if (!names || !names[i]) {
            jt_fail(c, "%s() got an unexpected keyword argument '%s'", what, a->kwn[k]);
            return -1;
        }
        if (i < a->npos) {
            jt_fail(c, "%s() got multiple values for argument '%s'", what, a->kwn[k]);
            return -1;
        }
    }
    return 0;
}

static void exec_body_capture(jt_ctx *c, const jt_node *body, jt_buf *into)
{
    jt_buf *saved = c->out;
    into->limit = JT_MAX_OUTPUT;
    c->out = into;
    jt_exec(c, body);
    c->out = saved;
    if (into->failed && !c->failed) jt_fail(c, "output larger than %u bytes", JT_MAX_OUTPUT);
}

static jv call_macro(jt_ctx *c, jt_func *f, jt_args *a)
{
    const jt_node *m = f->macro;
    const jt_node *body = m->b;
    size_t nparams = m->nkids;
    jt_scope sc, *saved = c->scope;
    jv caller = c->caller; /* borrowed from the call block running it */
    if (++c->depth > JT_MAX_CALL_DEPTH) {
        c->depth--;
        return jt_fail(c, "calls nested deeper than %d", JT_MAX_CALL_DEPTH);
    }
    c->caller = jv_undef();
    jt_scope *parent = f->type == FN_CALLER ? f->defscope : c->globals;
    push_scope(c, &sc, parent);
    jv varargs = jv_tuple(0), kwargs = jv_dict();
    for (size_t i = 0; i < a->npos; i++) {
        if (i < nparams)
            assign(c, m->kids[i]->name, jv_ref(a->pos[i]));
        else
            jt_list_push(varargs, jv_ref(a->pos[i]));
    }
    for (size_t k = 0; k < a->nkw; k++) {
        size_t i = 0;
        for (; i < nparams; i++)
            if (!strcmp(m->kids[i]->name, a->kwn[k])) break;
        if (i < nparams && i < a->npos) {
            jt_fail(c, "macro '%s' got multiple values for argument '%s'", f->name, a->kwn[k]);
            break;
        }
        if (i < nparams)
            assign(c, a->kwn[k], jv_ref(a->kwv[k]));
        else
            jt_dict_set(kwargs, jv_strz(a->kwn[k]), jv_ref(a->kwv[k]));
    }
    for (size_t i = a->npos; i < nparams && !c->failed; i++) {
        const jt_node *p = m->kids[i];
        if (jt_dict_findz(sc.vars.u.d, p->name)) continue;
        assign(c, p->name,
               p->kind == N_KWARG ? jt_eval(c, p->a)
                                  : jv_undef_msg("parameter '%s' was not provided", p->name));
    }
    assign(c, "varargs", varargs);
    assign(c, "kwargs", kwargs);
    if (caller.kind != JT_UNDEF) assign(c, "caller", jv_ref(caller));
    jt_buf out = {0};
    if (!c->failed) exec_body_capture(c, body, &out);
    pop_scope(c, &sc, saved);
    c->caller = caller;
    c->depth--;
    jv r = jv_str_buf(&out);
    if (c->failed) {
        jv_unref(r);
        return jv_undef();
    }
    return r;
}

static void exec_for(jt_ctx *c, const jt_node *n, jv iter, int depth);

jv jt_call(jt_ctx *c, jv fn, jt_args *a)
{
    if (fn.kind == JT_UNDEF) return undef_error(c, fn);
    if (fn.kind == JT_LOOP) { /* loop(children) in a recursive loop */
        jt_loop *L = fn.u.loop;
        if (!L->node) return jt_fail(c, "loop() needs a 'recursive' loop that is still running");
        if (a->npos != 1 || a->nkw) return jt_fail(c, "loop() takes exactly one argument");
        if (++c->depth > JT_MAX_CALL_DEPTH) {
            c->depth--;
            return jt_fail(c, "recursive loop nested deeper than %d", JT_MAX_CALL_DEPTH);
        }
        jt_buf out = {0};
        jt_buf *saved = c->out;
        out.limit = JT_MAX_OUTPUT;
        c->out = &out;
        exec_for(c, L->node, a->pos[0], L->depth + 1);
        c->out = saved;
        c->depth--;
        if (out.failed && !c->failed) jt_fail(c, "output larger than %u bytes", JT_MAX_OUTPUT);
        jv r = jv_str_buf(&out);
        if (c->failed) {
            jv_unref(r);
            return jv_undef();
        }
        return r;
    }
    if (fn.kind != JT_FUNC) return jt_fail(c, "'%s' object is not callable", jv_type_name(fn));
    jt_func *f = fn.u.fn;
    switch (f->type) {
    case FN_BUILTIN:
        return jt_global_call(c, f->name, a);
    case FN_METHOD:
        if (jt_charge(c, jt_cost(f->self))) return jv_undef();
        return jt_method_call(c, f->name, f->self, a);
    case FN_MACRO:
        return call_macro(c, f, a);
    case FN_CALLER:
        if (!f->defscope) return jt_fail(c, "caller() used outside its call block");
        return call_macro(c, f, a);
    }
    return jt_fail(c, "bad function");
}

static jv eval_call(jt_ctx *c, const jt_node *n)
{
    jt_args a;
    jv fn;
    const jt_node *callee = n->a;
    if (callee->kind == N_GETATTR) {
        /* obj.method(...) without a bound-method object */
        jv obj = jt_eval(c, callee->a);
        if (c->failed) {
            jv_unref(obj);
            return jv_undef();
        }
        if (obj.kind != JT_LOOP && obj.kind != JT_NS && obj.kind != JT_UNDEF &&
            jt_method_lookup(obj, callee->name)) {
            jv r = jv_undef();
            if (!args_eval(c, n, 0, &a) && !jt_charge(c, jt_cost(obj))) {
                c->line = n->line;
                r = jt_method_call(c, callee->name, obj, &a);
            }
            args_free(&a);
            jv_unref(obj);
            return r;
        }
        fn = jt_getattr(c, obj, callee->name);
        jv_unref(obj);
    } else if (callee->kind == N_NAME && !lookup(c, callee->name) &&
               !strcmp(callee->name, "raise_exception")) {
        if (args_eval(c, n, 0, &a)) {
            args_free(&a);
            return jv_undef();
        }
        jt_raise(c, &a); /* the template's own message, as transformers raises it */
        args_free(&a);
        return jv_undef();
    } else {
        fn = jt_eval(c, callee);
    }
    if (c->failed) {
        jv_unref(fn);
        return jv_undef();
    }
    jv r = jv_undef();
    if (!args_eval(c, n, 0, &a)) {
        c->line = n->line;
        r = jt_call(c, fn, &a);
    }
    args_free(&a);
    jv_unref(fn);
    return r;
}

static jv eval_filter(jt_ctx *c, const jt_node *n, jv operand)
{
    jt_args a;
    jv r = jv_undef();
    if (!args_eval(c, n, 0, &a)) {
        c->line = n->line;
        r = jt_filter_apply(c, n->name, operand, &a);
    }
    args_free(&a);
    return r;
}

/* A filter chain whose innermost operand is `v` (filter blocks, `set x | f`). */
static jv apply_chain(jt_ctx *c, const jt_node *f, jv v)
{
    if (!f) return jv_ref(v);
    jv inner = apply_chain(c, f->a, v);
    if (c->failed) {
        jv_unref(inner);
        return jv_undef();
    }
    jv r = eval_filter(c, f, inner);
    jv_unref(inner);
    return r;
}

/* ---------------------------------------------------------------- expressions */
static jv eval_node(jt_ctx *c, const jt_node *n);

/* Operations that build strings or lists pay for their size in steps, so a loop that builds
 * big values (`"x" * 60000000` per iteration) stops as soon as a loop of cheap steps does; a
 * value over the budget is dropped at once, before anything walks it. */
static jv charged(jt_ctx *c, jv r)
{
    if (jt_charge(c, jt_cost(r))) {
        jv_unref(r);
        return jv_undef();
    }
    return r;
}

jv jt_eval(jt_ctx *c, const jt_node *n)
{
    if (c->failed || jt_charge(c, 1)) return jv_undef();
    if (c->edepth >= JT_MAX_EVAL_DEPTH)
        return jt_fail(c, "evaluation nested deeper than %d", JT_MAX_EVAL_DEPTH);
    c->edepth++;
    jv r = eval_node(c, n);
    c->edepth--;
    return r;
}

static jv eval_node(jt_ctx *c, const jt_node *n)
{
    c->line = n->line;
    jv a, b, r;
    switch (n->kind) {
    case N_LIT:
        return jv_ref(n->lit);
    case N_NAME: {
        jv *v = lookup(c, n->name);
        if (v) return jv_ref(*v);
        if (jt_global_known(n->name)) return jt_func_new(FN_BUILTIN, n->name, jv_undef());
        return jv_undef_msg("'%s' is undefined", n->name);
    }
    case N_LIST:
    case N_TUPLE:
        r = n->kind == N_TUPLE ? jv_tuple(n->nkids) : jv_list(n->nkids);
        for (size_t i = 0; i < n->nkids && !c->failed; i++)
            jt_list_push(r, jt_eval(c, n->kids[i]));
        return r;
    case N_DICT:
        r = jv_dict();
        for (size_t i = 0; i + 1 < n->nkids && !c->failed; i += 2) {
            jv k = jt_eval(c, n->kids[i]);
            jt_dict_set(r, k, jt_eval(c, n->kids[i + 1]));
        }
        return r;
    case N_GETATTR:
        a = jt_eval(c, n->a);
        c->line = n->line;
        r = c->failed ? jv_undef() : jt_getattr(c, a, n->name);
        jv_unref(a);
        return r;
    case N_GETITEM:
        a = jt_eval(c, n->a);
        b = jt_eval(c, n->b);
        c->line = n->line;
        /* an index into a string counts characters; a list's is direct */
        r = c->failed || (a.kind != JT_LIST && jt_charge(c, jt_cost(a))) ? jv_undef()
                                                                         : jt_getitem(c, a, b);
        jv_unref(a);
        jv_unref(b);
        return r;
    case N_SLICE:
        return charged(c, eval_slice(c, n));
    case N_CALL:
        return charged(c, eval_call(c, n));
    case N_FILTER:
        a = jt_eval(c, n->a);
        r = c->failed ? jv_undef() : eval_filter(c, n, a);
        jv_unref(a);
        return charged(c, r);
    case N_TEST: {
        a = jt_eval(c, n->a);
        jt_args args = {0};
        int t = -1;
        if (!c->failed) {
            if (!args_eval(c, n, 0, &args)) {
                c->line = n->line;
                t = jt_test_apply(c, n->name, a, &args);
            }
            args_free(&args);
        }
        jv_unref(a);
        if (t < 0) return jv_undef();
        return jv_bool(n->op ? !t : t);
    }
    case N_BIN:
        a = jt_eval(c, n->a);
        b = jt_eval(c, n->b);
        c->line = n->line;
        /* comparisons scan their operands; other operators pay for the result they build */
        if (c->failed || (n->op >= OP_EQ && jt_charge(c, jt_cost(a) + jt_cost(b))))
            r = jv_undef();
        else if (n->op == OP_CONCAT) {
            jt_buf s = {0};
            s.limit = JT_MAX_VALUE;
            jv_to_str(&s, a);
            jv_to_str(&s, b);
            r = s.failed ? jt_fail(c, "string longer than %u bytes", JT_MAX_VALUE) : jv_str_buf(&s);
            free(s.p);
        } else if (n->op >= OP_EQ)
            r = compare(c, n->op, a, b);
        else
            r = arith(c, n->op, a, b);
        jv_unref(a);
        jv_unref(b);
        return charged(c, r);
    case N_AND:
    case N_OR:
        a = jt_eval(c, n->a);
        if (c->failed || (n->kind == N_AND ? !jv_truthy(a) : jv_truthy(a))) return a;
        jv_unref(a);
        return jt_eval(c, n->b);
    case N_NOT:
        a = jt_eval(c, n->a);
        r = jv_bool(!jv_truthy(a));
        jv_unref(a);
        return r;
    case N_NEG:
    case N_POS:
        a = jt_eval(c, n->a);
        if (c->failed) return a;
        if (a.kind == JT_UNDEF) {
            r = undef_error(c, a);
        } else if (!jv_is_number(a)) {
            r = jt_fail(c, "bad operand type for unary %c: '%s'", n->kind == N_NEG ? '-' : '+',
                        jv_type_name(a));
        } else if (n->kind == N_POS) {
            r = a.kind == JT_BOOL ? jv_int(a.u.b) : jv_ref(a);
        } else if (a.kind == JT_FLOAT) {
            r = jv_float(-a.u.f);
        } else {
            int64_t x = as_int(a);
            r = x == INT64_MIN ? jt_fail(c, "integer overflow") : jv_int(-x);
        }
        jv_unref(a);
        return r;
    case N_COND:
        a = jt_eval(c, n->a);
        if (c->failed) return a;
        r = jv_truthy(a) ? jt_eval(c, n->b) : n->c ? jt_eval(c, n->c) : jv_undef();
        jv_unref(a);
        return r;
    default:
        return jt_fail(c, "statement used as an expression");
    }
}

/* ---------------------------------------------------------------- statements */
static void assign_target(jt_ctx *c, const jt_node *t, jv v)
{
    if (t->kind == N_NAME) {
        assign(c, t->name, jv_ref(v));
        return;
    }
    if (t->kind == N_GETATTR) {
        jv *ns = lookup(c, t->a->name);
        if (!ns || ns->kind != JT_NS) {
            jt_fail(c, "cannot assign attribute on non-namespace object");
            return;
        }
        if (jv_depth(v) > JT_MAX_DEPTH) {
            jt_fail(c, "'%s.%s': value nested deeper than %d", t->a->name, t->name, JT_MAX_DEPTH);
            return;
        }
        /* a reference cycle would never be freed; a walk out of steps gives no answer */
        int cycle = jv_reaches(v, ns->u.d, 0);
        if (jt_charge(c, 0)) return;
        if (cycle) {
            jt_fail(c, "cannot store namespace '%s' inside itself", t->a->name);
            return;
        }
        jt_dict_set(*ns, jv_strz(t->name), jv_ref(v));
        return;
    }
    /* tuple unpacking */
    jv l = jt_to_list(c, v);
    if (c->failed) return;
    if (l.u.l->n != t->nkids)
        jt_fail(c, "cannot unpack %zu values into %zu names", l.u.l->n, t->nkids);
    for (size_t i = 0; i < t->nkids && !c->failed; i++)
        assign_target(c, t->kids[i], l.u.l->v[i]);
    jv_unref(l);
}

static void exec_for(jt_ctx *c, const jt_node *n, jv iter, int depth)
{
    jv all = jt_to_list(c, iter);
    if (c->failed) return;
    jt_scope sc, *saved = c->scope;
    jv items = all;
    if (n->c) { /* `for x in y if cond`: filtered first, so loop.length counts what runs */
        items = jv_list(0);
        for (size_t i = 0; i < all.u.l->n && !c->failed; i++) {
            push_scope(c, &sc, saved);
            assign_target(c, n->a, all.u.l->v[i]);
            jv t = jt_eval(c, n->c);
            if (jv_truthy(t)) jt_list_push(items, jv_ref(all.u.l->v[i]));
            jv_unref(t);
            pop_scope(c, &sc, saved);
        }
        jv_unref(all);
    }
    jt_loop *L = calloc(1, sizeof(*L));
    if (!L) abort();
    L->refs = 1;
    L->items = items;
    L->depth = depth;
    L->node = n->op ? n : NULL;
    L->changed = jv_undef();
    jv loop = {.kind = JT_LOOP, .u.loop = L};
    size_t count = items.u.l->n;
    for (size_t i = 0; i < count && !c->failed; i++) {
        L->i = i;
        push_scope(c, &sc, saved);
        assign_target(c, n->a, items.u.l->v[i]);
        assign(c, "loop", jv_ref(loop));
        jt_exec(c, n->kids[0]);
        pop_scope(c, &sc, saved);
        int ctl = c->loopctl;
        c->loopctl = 0;
        if (ctl == 1) break;
    }
    if (!count && n->nkids > 1 && !c->failed) {
        push_scope(c, &sc, saved);
        jt_exec(c, n->kids[1]);
        pop_scope(c, &sc, saved);
    }
    L->node = NULL; /* a loop object kept past its loop can no longer recurse */
    jv_unref(loop);
}

static void exec_node(jt_ctx *c, const jt_node *n);

void jt_exec(jt_ctx *c, const jt_node *n)
{
    if (c->failed || jt_charge(c, 1)) return;
    if (c->edepth >= JT_MAX_EVAL_DEPTH) {
        jt_fail(c, "evaluation nested deeper than %d", JT_MAX_EVAL_DEPTH);
        return;
    }
    c->edepth++;
    exec_node(c, n);
    c->edepth--;
}

static void exec_node(jt_ctx *c, const jt_node *n)
{
    c->line = n->line;
    switch (n->kind) {
    case N_BODY:
        for (size_t i = 0; i < n->nkids && !c->failed && !c->loopctl; i++)
            jt_exec(c, n->kids[i]);
        return;
    case N_TEXT:
        jt_buf_put(c->out, n->name, n->namelen);
        break;
    case N_OUTPUT: {
        jv v = jt_eval(c, n->a);
        if (!c->failed) jv_to_str(c->out, v);
        jv_unref(v);
        break;
    }
    case N_IF: {
        jv v = jt_eval(c, n->a);
        int t = jv_truthy(v);
        jv_unref(v);
        if (c->failed) return;
        if (t)
            jt_exec(c, n->b);
        else if (n->c)
            jt_exec(c, n->c);
        return;
    }
    case N_FOR: {
        jv it = jt_eval(c, n->b);
        if (!c->failed) exec_for(c, n, it, 1);
        jv_unref(it);
        return;
    }
    case N_SET: {
        jv v;
        if (n->b) {
            v = jt_eval(c, n->b);
        } else {
            jt_buf b = {0};
            exec_body_capture(c, n->c, &b);
            jv s = jv_str_buf(&b);
            v = c->failed ? jv_undef() : apply_chain(c, n->d, s);
            jv_unref(s);
        }
        c->line = n->line;
        if (!c->failed) assign_target(c, n->a, v);
        jv_unref(v);
        return;
    }
    case N_MACRO: {
        jv f = jt_func_new(FN_MACRO, n->name, jv_undef());
        f.u.fn->macro = n;
        assign(c, n->name, f);
        return;
    }
    case N_CALLBLOCK: {
        jv f = jt_func_new(FN_CALLER, "caller", jv_undef());
        f.u.fn->macro = n;
        f.u.fn->defscope = c->scope;
        jv saved = c->caller;
        c->caller = f;
        jv r = jt_eval(c, n->a);
        c->caller = saved;
        f.u.fn->defscope = NULL;
        jv_unref(f);
        if (!c->failed) jv_to_str(c->out, r);
        jv_unref(r);
        return;
    }
    case N_FILTERBLOCK: {
        jt_buf b = {0};
        exec_body_capture(c, n->b, &b);
        jv s = jv_str_buf(&b);
        jv r = c->failed ? jv_undef() : apply_chain(c, n->a, s);
        if (!c->failed) jv_to_str(c->out, r);
        jv_unref(s);
        jv_unref(r);
        return;
    }
    case N_WITH: {
        jt_scope sc, *saved = c->scope;
        push_scope(c, &sc, saved);
        for (size_t i = 0; i < n->nkids && !c->failed; i++)
            assign(c, n->kids[i]->name, jt_eval(c, n->kids[i]->a));
        jt_exec(c, n->b);
        pop_scope(c, &sc, saved);
        return;
    }
    case N_BREAK:
        c->loopctl = 1;
        return;
    case N_CONTINUE:
        c->loopctl = 2;
        return;
    case N_DO:
        jv_unref(jt_eval(c, n->a));
        return;
    default:
        jv_unref(jt_eval(c, n));
        return;
    }
    if (c->out->failed) jt_fail(c, "output larger than %u bytes", JT_MAX_OUTPUT);
}
