/* SPDX-License-Identifier: MIT */
/* The `is` tests of jinja2 (defined, string, mapping, divisibleby, ...). */
#include "jt.h"

#include <ctype.h>
#include <math.h>
#include <string.h>

typedef int (*test_fn)(jt_ctx *c, jv v, jt_args *a);

static jv *arg1(jt_ctx *c, jt_args *a, const char *name)
{
    jv *x = jt_arg(a, 0, NULL);
    if (!x) jt_fail(c, "test '%s' needs an argument", name);
    return x;
}

static int t_defined(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind != JT_UNDEF;
}
static int t_undefined(jt_ctx *c, jv v, jt_args *a)
{
    return !t_defined(c, v, a);
}
static int t_none(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_NONE;
}
static int t_boolean(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_BOOL;
}
static int t_true(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_BOOL && v.u.b;
}
static int t_false(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_BOOL && !v.u.b;
}
static int t_string(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_STR;
}
static int t_number(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return jv_is_number(v);
}
static int t_integer(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_INT;
}
static int t_float(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_FLOAT;
}
static int t_mapping(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_DICT;
}
static int t_callable(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_FUNC || v.kind == JT_LOOP;
}
/* Python: str, list and dict have a length and items; Undefined iterates as empty. */
static int t_sequence(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_STR || v.kind == JT_LIST || v.kind == JT_DICT;
}
static int t_iterable(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)a;
    return v.kind == JT_STR || v.kind == JT_LIST || v.kind == JT_DICT || v.kind == JT_UNDEF;
}

static int parity(jt_ctx *c, jv v, const char *name)
{
    if (v.kind == JT_INT || v.kind == JT_BOOL) return (int)((v.kind == JT_INT ? v.u.i : v.u.b) & 1);
    if (v.kind == JT_FLOAT) return fmod(fabs(v.u.f), 2.0) == 1.0; /* nan, inf: not odd */
    jt_fail(c, "test '%s' needs a number, not %s", name, jv_type_name(v));
    return -1;
}
static int t_odd(jt_ctx *c, jv v, jt_args *a)
{
    (void)a;
    return parity(c, v, "odd");
}
static int t_even(jt_ctx *c, jv v, jt_args *a)
{
    (void)a;
    int p = parity(c, v, "even");
    return p < 0 ? -1 : !p;
}
static int t_divisibleby(jt_ctx *c, jv v, jt_args *a)
{
    jv *d = arg1(c, a, "divisibleby");
    if (!d) return -1;
    if (!jv_is_number(v) || !jv_is_number(*d)) {
        jt_fail(c, "test 'divisibleby' needs numbers");
        return -1;
    }
    if (jv_num(*d) == 0) {
        jt_fail(c, "integer division or modulo by zero");
        return -1;
    }
    if (v.kind == JT_INT && d->kind == JT_INT) return d->u.i == -1 || v.u.i % d->u.i == 0;
    return fmod(jv_num(v), jv_num(*d)) == 0;
}

static int cmp_test(jt_ctx *c, jv v, jt_args *a, const char *name, int want)
{
    jv *o = arg1(c, a, name);
    if (!o) return -1;
    if (want == 0) return jv_equal(v, *o);
    if (want == 9) return !jv_equal(v, *o);
    int ok, r = jv_compare(v, *o, &ok);
    if (!ok) {
        jt_fail(c, "test '%s': cannot compare %s and %s", name, jv_type_name(v), jv_type_name(*o));
        return -1;
    }
    switch (want) {
    case 1:
        return r < 0;
    case 2:
        return r <= 0;
    case 3:
        return r > 0;
    default:
        return r >= 0;
    }
}
static int t_eq(jt_ctx *c, jv v, jt_args *a)
{
    return cmp_test(c, v, a, "eq", 0);
}
static int t_ne(jt_ctx *c, jv v, jt_args *a)
{
    return cmp_test(c, v, a, "ne", 9);
}
static int t_lt(jt_ctx *c, jv v, jt_args *a)
{
    return cmp_test(c, v, a, "lt", 1);
}
static int t_le(jt_ctx *c, jv v, jt_args *a)
{
    return cmp_test(c, v, a, "le", 2);
}
static int t_gt(jt_ctx *c, jv v, jt_args *a)
{
    return cmp_test(c, v, a, "gt", 3);
}
static int t_ge(jt_ctx *c, jv v, jt_args *a)
{
    return cmp_test(c, v, a, "ge", 4);
}

/* `is sameas`: identity; for our immutable values, equal scalars of one kind. */
static int t_sameas(jt_ctx *c, jv v, jt_args *a)
{
    jv *o = arg1(c, a, "sameas");
    if (!o) return -1;
    if (v.kind != o->kind) return 0;
    switch (v.kind) {
    case JT_NONE:
    case JT_UNDEF:
        return 1;
    case JT_BOOL:
        return v.u.b == o->u.b;
    case JT_INT:
        return v.u.i == o->u.i;
    case JT_FLOAT:
        return v.u.f == o->u.f;
    case JT_STR:
        return v.u.s == o->u.s;
    case JT_LIST:
        return v.u.l == o->u.l;
    case JT_DICT:
    case JT_NS:
        return v.u.d == o->u.d;
    default:
        return jv_equal(v, *o);
    }
}

static int t_in(jt_ctx *c, jv v, jt_args *a)
{
    jv *o = arg1(c, a, "in");
    if (!o) return -1;
    switch (o->kind) {
    case JT_STR:
        if (v.kind != JT_STR) {
            jt_fail(c, "'in <string>' requires string as left operand, not %s", jv_type_name(v));
            return -1;
        }
        return !v.u.s->len || memmem(o->u.s->p, o->u.s->len, v.u.s->p, v.u.s->len) != NULL;
    case JT_LIST:
        for (size_t i = 0; i < o->u.l->n; i++)
            if (jv_equal(o->u.l->v[i], v)) return 1;
        return 0;
    case JT_DICT:
    case JT_NS:
        return jt_dict_find(o->u.d, v) != NULL;
    default:
        jt_fail(c, "argument of type '%s' is not iterable", jv_type_name(*o));
        return -1;
    }
}

static int case_test(jt_ctx *c, jv v, int upper)
{
    (void)c;
    if (v.kind != JT_STR) return 0;
    int cased = 0;
    for (size_t i = 0; i < v.u.s->len; i++) {
        unsigned char ch = (unsigned char)v.u.s->p[i];
        if (upper ? islower(ch) : isupper(ch)) return 0;
        if (isalpha(ch)) cased = 1;
    }
    return cased;
}
static int t_lower(jt_ctx *c, jv v, jt_args *a)
{
    (void)a;
    return case_test(c, v, 0);
}
static int t_upper(jt_ctx *c, jv v, jt_args *a)
{
    (void)a;
    return case_test(c, v, 1);
}
static int t_escaped(jt_ctx *c, jv v, jt_args *a)
{
    (void)c, (void)v, (void)a;
    return 0;
}
static int t_filter(jt_ctx *c, jv v, jt_args *a)
{
    (void)a;
    return v.kind == JT_STR && jt_filter_known(v.u.s->p) ? 1 : (c->failed ? -1 : 0);
}
static int t_test(jt_ctx *c, jv v, jt_args *a)
{
    (void)a;
    return v.kind == JT_STR && jt_test_known(v.u.s->p) ? 1 : (c->failed ? -1 : 0);
}

static const struct {
    const char *name;
    test_fn fn;
} tests[] = {
    {.name = "defined", .fn = t_defined},
    {.name = "undefined", .fn = t_undefined},
    {.name = "none", .fn = t_none},
    {.name = "boolean", .fn = t_boolean},
    {.name = "true", .fn = t_true},
    {.name = "false", .fn = t_false},
    {.name = "string", .fn = t_string},
    {.name = "number", .fn = t_number},
    {.name = "integer", .fn = t_integer},
    {.name = "float", .fn = t_float},
    {.name = "mapping", .fn = t_mapping},
    {.name = "sequence", .fn = t_sequence},
    {.name = "iterable", .fn = t_iterable},
    {.name = "callable", .fn = t_callable},
    {.name = "odd", .fn = t_odd},
    {.name = "even", .fn = t_even},
    {.name = "divisibleby", .fn = t_divisibleby},
    {.name = "eq", .fn = t_eq},
    {.name = "equalto", .fn = t_eq},
    {.name = "==", .fn = t_eq},
    {.name = "ne", .fn = t_ne},
    {.name = "!=", .fn = t_ne},
    {.name = "lt", .fn = t_lt},
    {.name = "lessthan", .fn = t_lt},
    {.name = "<", .fn = t_lt},
    {.name = "le", .fn = t_le},
    {.name = "<=", .fn = t_le},
    {.name = "gt", .fn = t_gt},
    {.name = "greaterthan", .fn = t_gt},
    {.name = ">", .fn = t_gt},
    {.name = "ge", .fn = t_ge},
    {.name = ">=", .fn = t_ge},
    {.name = "sameas", .fn = t_sameas},
    {.name = "in", .fn = t_in},
    {.name = "lower", .fn = t_lower},
    {.name = "upper", .fn = t_upper},
    {.name = "escaped", .fn = t_escaped},
    {.name = "filter", .fn = t_filter},
    {.name = "test", .fn = t_test},
};

static test_fn find(const char *name)
{
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        if (!strcmp(tests[i].name, name)) return tests[i].fn;
    return NULL;
}

int jt_test_known(const char *name)
{
    return find(name) != NULL;
}

int jt_test_apply(jt_ctx *c, const char *name, jv v, jt_args *a)
{
    test_fn fn = find(name);
    if (!fn) {
        jt_fail(c, "no test named '%s'", name);
        return -1;
    }
    /* `x.y is defined` must not fail on an undefined x.y; other tests see the value. */
    if (jt_charge(c, jt_cost(v))) return -1; /* tests scan what they get */
    return fn(c, v, a);
}
