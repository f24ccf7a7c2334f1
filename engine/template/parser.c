/* SPDX-License-Identifier: MIT */
/* Parser: tokens into a syntax tree, with jinja2's grammar and operator precedence.
 * Unknown filters, tests and statements are errors here, before any render. */
#include "jt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    eng_tmpl *t;
    jt_toks *tk;
    size_t i;
    char *err;
    size_t errlen;
    int depth;
    int failed;
    int in_loop, in_macro;
} parser;

static void *fail_at(parser *P, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void *fail_at(parser *P, int line, const char *what, const char *fmt, ...)
{
    if (P->failed) return NULL;
    P->failed = 1;
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(P->err, P->errlen, "line %d: %s: %s", line, what, msg);
    return NULL;
}

static jt_tok *peek(parser *P)
{
    return &P->tk->v[P->i];
}
static jt_tok *peek2(parser *P)
{
    return P->i + 1 < P->tk->n ? &P->tk->v[P->i + 1] : &P->tk->v[P->tk->n - 1];
}
static jt_tok *next(parser *P)
{
    jt_tok *t = &P->tk->v[P->i];
    if (t->kind != TK_EOF) P->i++;
    return t;
}
static int is_op(jt_tok *t, const char *op)
{
    return t->kind == TK_OP && !strcmp(t->s, op);
}
static int is_name(jt_tok *t, const char *n)
{
    return t->kind == TK_NAME && !strcmp(t->s, n);
}

static const char *tok_desc(jt_tok *t, char *buf, size_t n)
{
    switch (t->kind) {
    case TK_EOF:
        return "end of template";
    case TK_VAR_END:
        return "'}}'";
    case TK_BLOCK_END:
        return "'%}'";
    case TK_VAR_BEGIN:
        return "'{{'";
    case TK_BLOCK_BEGIN:
        return "'{%'";
    case TK_TEXT:
        return "text";
    case TK_STRING:
        return "a string";
    default:
        snprintf(buf, n, "'%s'", t->s);
        return buf;
    }
}

static void *unexpected(parser *P, const char *what, const char *expected)
{
    char b[64];
    jt_tok *t = peek(P);
    return fail_at(P, t->line, what, "expected %s, got %s", expected, tok_desc(t, b, sizeof(b)));
}

static jt_node *node(parser *P, jt_node_kind k, int line)
{
    eng_tmpl *t = P->t;
    jt_node *n = calloc(1, sizeof(*n));
    if (!n) return fail_at(P, line, "template", "out of memory");
    if (t->nall == t->capall) {
        size_t cap = t->capall ? t->capall * 2 : 64;
        jt_node **v = realloc(t->all, cap * sizeof(*v));
        if (!v) {
            free(n);
            return fail_at(P, line, "template", "out of memory");
        }
        t->all = v;
        t->capall = cap;
    }
    t->all[t->nall++] = n;
    n->kind = k;
    n->line = line;
    n->lit = jv_undef();
    return n;
}

void jt_node_add_kid(jt_node *n, jt_node *kid)
{
    if (n->nkids == n->capkids) {
        size_t cap = n->capkids ? n->capkids * 2 : 4;
        jt_node **v = realloc(n->kids, cap * sizeof(*v));
        if (!v) abort();
        n->kids = v;
        n->capkids = cap;
    }
    n->kids[n->nkids++] = kid;
}

static int set_name(parser *P, jt_node *n, const char *s)
{
    n->name = strdup(s);
    if (!n->name) {
        fail_at(P, n->line, "template", "out of memory");
        return -1;
    }
    n->namelen = strlen(s);
    return 0;
}

static jt_node *parse_expr(parser *P);
static jt_node *parse_or(parser *P);
static jt_node *parse_unary(parser *P, int with_filter);

static int expect_op(parser *P, const char *op, const char *what)
{
    if (!is_op(peek(P), op)) {
        char e[16];
        snprintf(e, sizeof(e), "'%s'", op);
        unexpected(P, what, e);
        return -1;
    }
    next(P);
    return 0;
}

/* Call arguments after '(' up to ')': positional kids, N_KWARG for name=value. */
static int parse_args(parser *P, jt_node *call, const char *what)
{
    while (!is_op(peek(P), ")")) {
        if (call->nkids && expect_op(P, ",", what)) return -1;
        if (is_op(peek(P), ")")) break; /* trailing comma */
        jt_tok *t = peek(P);
        if (t->kind == TK_NAME && is_op(peek2(P), "=")) {
            jt_node *kw = node(P, N_KWARG, t->line);
            if (!kw || set_name(P, kw, t->s)) return -1;
            next(P);
            next(P);
            if (!(kw->a = parse_expr(P))) return -1;
            jt_node_add_kid(call, kw);
        } else {
            if (is_op(t, "*") || is_op(t, "**"))
                return fail_at(P, t->line, what, "*args and **kwargs are not supported"), -1;
            for (size_t k = 0; k < call->nkids; k++)
                if (call->kids[k]->kind == N_KWARG)
                    return fail_at(P, t->line, what, "positional argument after keyword argument"),
                           -1;
            jt_node *e = parse_expr(P);
            if (!e) return -1;
            jt_node_add_kid(call, e);
        }
    }
    next(P);
    return 0;
}

static jt_node *parse_primary(parser *P)
{
    jt_tok *t = peek(P);
    jt_node *n;
    if (t->kind == TK_NAME) {
        next(P);
        if (!strcmp(t->s, "true") || !strcmp(t->s, "True") || !strcmp(t->s, "false") ||
            !strcmp(t->s, "False")) {
            if (!(n = node(P, N_LIT, t->line))) return NULL;
            n->lit = jv_bool(t->s[0] == 't' || t->s[0] == 'T');
            return n;
        }
        if (!strcmp(t->s, "none") || !strcmp(t->s, "None")) {
            if (!(n = node(P, N_LIT, t->line))) return NULL;
            n->lit = jv_none();
            return n;
        }
        if (!(n = node(P, N_NAME, t->line)) || set_name(P, n, t->s)) return NULL;
        return n;
    }
    if (t->kind == TK_STRING) {
        jt_buf b = {0};
        int line = t->line;
        while (peek(P)->kind == TK_STRING) { /* adjacent literals concatenate */
            t = next(P);
            jt_buf_put(&b, t->s, t->n);
        }
        if (!(n = node(P, N_LIT, line))) {
            free(b.p);
            return NULL;
        }
        n->lit = jv_str_buf(&b);
        n->lit.u.s->refs = -1; /* shared by concurrent renders: never counted */
        return n;
    }
    if (t->kind == TK_INT || t->kind == TK_FLOAT) {
        next(P);
        if (!(n = node(P, N_LIT, t->line))) return NULL;
        n->lit = t->kind == TK_INT ? jv_int(t->i) : jv_float(t->f);
        return n;
    }
    if (is_op(t, "(")) {
        next(P);
        if (is_op(peek(P), ")")) {
            next(P);
            return node(P, N_TUPLE, t->line);
        }
        jt_node *e = parse_expr(P);
        if (!e) return NULL;
        if (is_op(peek(P), ",")) {
            jt_node *tup = node(P, N_TUPLE, t->line);
            if (!tup) return NULL;
            jt_node_add_kid(tup, e);
            while (is_op(peek(P), ",")) {
                next(P);
                if (is_op(peek(P), ")")) break;
                if (!(e = parse_expr(P))) return NULL;
                jt_node_add_kid(tup, e);
            }
            e = tup;
        }
        if (expect_op(P, ")", "expression")) return NULL;
        return e;
    }
    if (is_op(t, "[")) {
        next(P);
        if (!(n = node(P, N_LIST, t->line))) return NULL;
        while (!is_op(peek(P), "]")) {
            if (n->nkids && expect_op(P, ",", "list")) return NULL;
            if (is_op(peek(P), "]")) break;
            jt_node *e = parse_expr(P);
            if (!e) return NULL;
            jt_node_add_kid(n, e);
        }
        next(P);
        return n;
    }
    if (is_op(t, "{")) {
        next(P);
        if (!(n = node(P, N_DICT, t->line))) return NULL;
        while (!is_op(peek(P), "}")) {
            if (n->nkids && expect_op(P, ",", "dict")) return NULL;
            if (is_op(peek(P), "}")) break;
            jt_node *k = parse_expr(P);
            if (!k || expect_op(P, ":", "dict")) return NULL;
            jt_node *v = parse_expr(P);
            if (!v) return NULL;
            jt_node_add_kid(n, k);
            jt_node_add_kid(n, v);
        }
        next(P);
        return n;
    }
    return unexpected(P, "expression", "a value");
}

static jt_node *parse_postfix(parser *P, jt_node *e)
{
    for (;;) {
        jt_tok *t = peek(P);
        if (is_op(t, ".")) {
            next(P);
            jt_tok *a = next(P);
            jt_node *g;
            if (a->kind == TK_NAME) {
                if (!(g = node(P, N_GETATTR, a->line)) || set_name(P, g, a->s)) return NULL;
            } else if (a->kind == TK_INT) { /* x.0 is x[0] */
                jt_node *idx = node(P, N_LIT, a->line);
                if (!idx || !(g = node(P, N_GETITEM, a->line))) return NULL;
                idx->lit = jv_int(a->i);
                g->b = idx;
            } else {
                P->i--;
                return unexpected(P, "attribute", "a name after '.'");
            }
            g->a = e;
            e = g;
        } else if (is_op(t, "[")) {
            next(P);
            jt_node *parts[3] = {NULL, NULL, NULL};
            int nparts = 0, colons = 0;
            for (;;) {
                jt_tok *q = peek(P);
                if (is_op(q, "]")) break;
                if (is_op(q, ":")) {
                    if (++colons > 2) return fail_at(P, q->line, "subscript", "too many ':'");
                    next(P);
                    nparts = colons;
                    continue;
                }
                if (parts[colons]) return unexpected(P, "subscript", "']' or ':'");
                if (!(parts[colons] = parse_expr(P))) return NULL;
                nparts = colons;
            }
            next(P);
            (void)nparts;
            jt_node *g;
            if (colons == 0) {
                if (!parts[0]) return fail_at(P, t->line, "subscript", "empty '[]'");
                if (!(g = node(P, N_GETITEM, t->line))) return NULL;
                g->b = parts[0];
            } else {
                if (!(g = node(P, N_SLICE, t->line))) return NULL;
                g->b = parts[0];
                g->c = parts[1];
                g->d = parts[2];
            }
            g->a = e;
            e = g;
        } else if (is_op(t, "(")) {
            next(P);
            jt_node *c = node(P, N_CALL, t->line);
            if (!c) return NULL;
            c->a = e;
            if (parse_args(P, c, "call")) return NULL;
            e = c;
        } else {
            return e;
        }
    }
}

/* One filter after its `|`: name(args) applied to e (NULL in a filter block's chain). */
static jt_node *parse_one_filter(parser *P, jt_node *e)
{
    jt_tok *nm = next(P);
    if (nm->kind != TK_NAME) {
        P->i--;
        return unexpected(P, "filter", "a filter name");
    }
    if (!jt_filter_known(nm->s))
        return fail_at(P, nm->line, "filter", "no filter named '%s'", nm->s);
    jt_node *f = node(P, N_FILTER, nm->line);
    if (!f || set_name(P, f, nm->s)) return NULL;
    f->a = e;
    if (is_op(peek(P), "(")) {
        next(P);
        if (parse_args(P, f, "filter")) return NULL;
    }
    return f;
}

/* `name | name2(args)`: the chain of a filter block or of `set x | f`. */
static jt_node *parse_filter_chain(parser *P)
{
    jt_node *f = parse_one_filter(P, NULL);
    while (f && is_op(peek(P), "|")) {
        next(P);
        f = parse_one_filter(P, f);
    }
    return f;
}

/* `| name(args)` filters and `is [not] name args` tests after an operand. */
static jt_node *parse_filter_expr(parser *P, jt_node *e)
{
    for (;;) {
        jt_tok *t = peek(P);
        if (is_op(t, "|")) {
            next(P);
            if (!(e = parse_one_filter(P, e))) return NULL;
        } else if (is_name(t, "is")) {
            next(P);
            int neg = 0;
            if (is_name(peek(P), "not")) {
                next(P);
                neg = 1;
            }
            jt_tok *nm = next(P);
            if (nm->kind != TK_NAME) {
                P->i--;
                return unexpected(P, "test", "a test name");
            }
            if (!jt_test_known(nm->s))
                return fail_at(P, nm->line, "test", "no test named '%s'", nm->s);
            jt_node *tn = node(P, N_TEST, nm->line);
            if (!tn || set_name(P, tn, nm->s)) return NULL;
            tn->a = e;
            tn->op = neg;
            jt_tok *q = peek(P);
            if (is_op(q, "(")) {
                next(P);
                if (parse_args(P, tn, "test")) return NULL;
            } else if ((q->kind == TK_NAME && strcmp(q->s, "else") && strcmp(q->s, "or") &&
                        strcmp(q->s, "and") && strcmp(q->s, "if") && strcmp(q->s, "is") &&
                        strcmp(q->s, "in") && strcmp(q->s, "not")) ||
                       q->kind == TK_STRING || q->kind == TK_INT || q->kind == TK_FLOAT ||
                       is_op(q, "[") || is_op(q, "{")) {
                /* one argument without parentheses: `is divisibleby 3`, `is sameas none` */
                jt_node *arg = parse_primary(P);
                if (!arg || !(arg = parse_postfix(P, arg))) return NULL;
                jt_node_add_kid(tn, arg);
            }
            e = tn;
        } else {
            return e;
        }
    }
}

static jt_node *parse_unary(parser *P, int with_filter)
{
    jt_tok *t = peek(P);
    if (++P->depth > JT_MAX_NEST)
        return fail_at(P, t->line, "expression", "nested deeper than %d", JT_MAX_NEST);
    jt_node *e;
    if (is_op(t, "-") || is_op(t, "+")) {
        next(P);
        jt_node *inner = parse_unary(P, 0);
        if (!inner || !(e = node(P, t->s[0] == '-' ? N_NEG : N_POS, t->line))) return NULL;
        e->a = inner;
    } else {
        if (!(e = parse_primary(P))) return NULL;
        if (!(e = parse_postfix(P, e))) return NULL;
    }
    if (with_filter && !(e = parse_filter_expr(P, e))) return NULL;
    P->depth--;
    return e;
}

static jt_node *binary(parser *P, int op, jt_node *a, jt_node *b, int line)
{
    jt_node *n = node(P, N_BIN, line);
    if (!n) return NULL;
    n->op = op;
    n->a = a;
    n->b = b;
    return n;
}

static jt_node *parse_pow(parser *P)
{
    jt_node *e = parse_unary(P, 1);
    while (e && is_op(peek(P), "**")) {
        int line = next(P)->line;
        jt_node *r = parse_unary(P, 1);
        e = r ? binary(P, OP_POW, e, r, line) : NULL;
    }
    return e;
}

static jt_node *parse_math2(parser *P)
{
    jt_node *e = parse_pow(P);
    for (;;) {
        jt_tok *t = peek(P);
        int op = is_op(t, "*")    ? OP_MUL
                 : is_op(t, "/")  ? OP_DIV
                 : is_op(t, "//") ? OP_FLOORDIV
                 : is_op(t, "%")  ? OP_MOD
                                  : -1;
        if (!e || op < 0) return e;
        next(P);
        jt_node *r = parse_pow(P);
        e = r ? binary(P, op, e, r, t->line) : NULL;
    }
}

static jt_node *parse_concat(parser *P)
{
    jt_node *e = parse_math2(P);
    while (e && is_op(peek(P), "~")) {
        int line = next(P)->line;
        jt_node *r = parse_math2(P);
        e = r ? binary(P, OP_CONCAT, e, r, line) : NULL;
    }
    return e;
}

static jt_node *parse_math1(parser *P)
{
    jt_node *e = parse_concat(P);
    for (;;) {
        jt_tok *t = peek(P);
        int op = is_op(t, "+") ? OP_ADD : is_op(t, "-") ? OP_SUB : -1;
        if (!e || op < 0) return e;
        next(P);
        jt_node *r = parse_concat(P);
        e = r ? binary(P, op, e, r, t->line) : NULL;
    }
}

static jt_node *parse_compare(parser *P)
{
    jt_node *e = parse_math1(P);
    /* a < b < c chains as (a < b) and (b < c) */
    jt_node *chain = NULL;
    jt_node *left = e;
    for (;;) {
        jt_tok *t = peek(P);
        int op = -1;
        if (is_op(t, "=="))
            op = OP_EQ;
        else if (is_op(t, "!="))
            op = OP_NE;
        else if (is_op(t, "<"))
            op = OP_LT;
        else if (is_op(t, "<="))
            op = OP_LE;
        else if (is_op(t, ">"))
            op = OP_GT;
        else if (is_op(t, ">="))
            op = OP_GE;
        else if (is_name(t, "in"))
            op = OP_IN;
        else if (is_name(t, "not") && is_name(peek2(P), "in"))
            op = OP_NOTIN;
        if (!left || op < 0) return chain ? chain : left;
        next(P);
        if (op == OP_NOTIN) next(P);
        jt_node *r = parse_math1(P);
        if (!r) return NULL;
        jt_node *cmp = binary(P, op, left, r, t->line);
        if (!cmp) return NULL;
        if (chain) {
            jt_node *and = node(P, N_AND, t->line);
            if (!and) return NULL;
            and->a = chain;
            and->b = cmp;
            chain = and;
        } else {
            chain = cmp;
        }
        left = r;
    }
}

static jt_node *parse_not(parser *P)
{
    jt_tok *t = peek(P);
    if (is_name(t, "not")) {
        next(P);
        if (++P->depth > JT_MAX_NEST)
            return fail_at(P, t->line, "expression", "nested deeper than %d", JT_MAX_NEST);
        jt_node *inner = parse_not(P);
        P->depth--;
        jt_node *n = inner ? node(P, N_NOT, t->line) : NULL;
        if (n) n->a = inner;
        return n;
    }
    return parse_compare(P);
}

static jt_node *parse_and(parser *P)
{
    jt_node *e = parse_not(P);
    while (e && is_name(peek(P), "and")) {
        int line = next(P)->line;
        jt_node *r = parse_not(P);
        jt_node *n = r ? node(P, N_AND, line) : NULL;
        if (n) {
            n->a = e;
            n->b = r;
        }
        e = n;
    }
    return e;
}

static jt_node *parse_or(parser *P)
{
    jt_node *e = parse_and(P);
    while (e && is_name(peek(P), "or")) {
        int line = next(P)->line;
        jt_node *r = parse_and(P);
        jt_node *n = r ? node(P, N_OR, line) : NULL;
        if (n) {
            n->a = e;
            n->b = r;
        }
        e = n;
    }
    return e;
}

/* expr [if cond [else expr]] */
static jt_node *parse_expr(parser *P)
{
    if (++P->depth > JT_MAX_NEST)
        return fail_at(P, peek(P)->line, "expression", "nested deeper than %d", JT_MAX_NEST);
    jt_node *e = parse_or(P);
    while (e && is_name(peek(P), "if")) {
        int line = next(P)->line;
        jt_node *cond = parse_or(P);
        if (!cond) return NULL;
        jt_node *n = node(P, N_COND, line);
        if (!n) return NULL;
        n->a = cond;
        n->b = e;
        if (is_name(peek(P), "else")) {
            next(P);
            if (!(n->c = parse_expr(P))) return NULL;
        }
        e = n;
    }
    P->depth--;
    return e;
}

/* An expression, or a bare tuple `a, b` (set / for / with values). */
static jt_node *parse_tuple(parser *P, int allow_cond)
{
    jt_node *e = allow_cond ? parse_expr(P) : parse_or(P);
    if (!e || !is_op(peek(P), ",")) return e;
    jt_node *tup = node(P, N_TUPLE, e->line);
    if (!tup) return NULL;
    jt_node_add_kid(tup, e);
    while (is_op(peek(P), ",")) {
        next(P);
        jt_tok *q = peek(P);
        if (q->kind == TK_BLOCK_END || is_name(q, "if") || is_name(q, "recursive")) break;
        if (!(e = allow_cond ? parse_expr(P) : parse_or(P))) return NULL;
        jt_node_add_kid(tup, e);
    }
    return tup;
}

/* Assignment targets: name, name.attr (namespaces), or a tuple of names. */
static jt_node *parse_target(parser *P, const char *what, int allow_attr)
{
    int paren = is_op(peek(P), "(");
    if (paren) next(P);
    jt_node *tup = NULL;
    for (;;) {
        jt_tok *t = next(P);
        if (t->kind != TK_NAME) {
            P->i--;
            return unexpected(P, what, "a variable name");
        }
        jt_node *n = node(P, N_NAME, t->line);
        if (!n || set_name(P, n, t->s)) return NULL;
        if (allow_attr && is_op(peek(P), ".")) {
            next(P);
            jt_tok *a = next(P);
            if (a->kind != TK_NAME) {
                P->i--;
                return unexpected(P, what, "an attribute name");
            }
            jt_node *g = node(P, N_GETATTR, a->line);
            if (!g || set_name(P, g, a->s)) return NULL;
            g->a = n;
            n = g;
        }
        if (!tup && !is_op(peek(P), ",")) {
            if (paren && expect_op(P, ")", what)) return NULL;
            return n;
        }
        if (!tup && !(tup = node(P, N_TUPLE, t->line))) return NULL;
        jt_node_add_kid(tup, n);
        if (!is_op(peek(P), ",")) break;
        next(P);
    }
    if (paren && expect_op(P, ")", what)) return NULL;
    return tup;
}

static int expect_block_end(parser *P, const char *what)
{
    if (peek(P)->kind != TK_BLOCK_END) {
        unexpected(P, what, "'%}'");
        return -1;
    }
    next(P);
    return 0;
}

static jt_node *parse_body(parser *P, const char *const *ends, const char *what, int open_line);

/* Ends a block: consumes `{% name %}` (name is one of ends, checked by parse_body). */
static const char *block_end_name(parser *P)
{
    next(P); /* {% */
    return next(P)->s;
}

static jt_node *parse_if(parser *P, int line)
{
    jt_node *n = node(P, N_IF, line);
    if (!n || !(n->a = parse_expr(P)) || expect_block_end(P, "if")) return NULL;
    static const char *const ends[] = {"elif", "else", "endif", NULL};
    if (!(n->b = parse_body(P, ends, "if", line))) return NULL;
    int eline = peek(P)->line;
    const char *e = block_end_name(P);
    if (!strcmp(e, "elif")) {
        if (!(n->c = parse_if(P, eline))) return NULL;
        return n;
    }
    if (!strcmp(e, "else")) {
        static const char *const ends2[] = {"endif", NULL};
        if (expect_block_end(P, "else") || !(n->c = parse_body(P, ends2, "if", line))) return NULL;
        block_end_name(P);
    }
    return expect_block_end(P, "endif") ? NULL : n;
}

static jt_node *parse_for(parser *P, int line)
{
    jt_node *n = node(P, N_FOR, line);
    if (!n || !(n->a = parse_target(P, "for", 0))) return NULL;
    if (!is_name(peek(P), "in")) return unexpected(P, "for", "'in'");
    next(P);
    if (!(n->b = parse_tuple(P, 0))) return NULL;
    if (is_name(peek(P), "if")) {
        next(P);
        if (!(n->c = parse_expr(P))) return NULL;
    }
    if (is_name(peek(P), "recursive")) {
        next(P);
        n->op = 1;
    }
    if (expect_block_end(P, "for")) return NULL;
    static const char *const ends[] = {"else", "endfor", NULL};
    P->in_loop++;
    jt_node *body = parse_body(P, ends, "for", line);
    P->in_loop--;
    if (!body) return NULL;
    jt_node_add_kid(n, body);
    if (!strcmp(block_end_name(P), "else")) {
        static const char *const ends2[] = {"endfor", NULL};
        jt_node *eb;
        if (expect_block_end(P, "else") || !(eb = parse_body(P, ends2, "for", line))) return NULL;
        jt_node_add_kid(n, eb);
        block_end_name(P);
    }
    return expect_block_end(P, "endfor") ? NULL : n;
}

static jt_node *parse_set(parser *P, int line)
{
    jt_node *n = node(P, N_SET, line);
    if (!n || !(n->a = parse_target(P, "set", 1))) return NULL;
    if (is_op(peek(P), "=")) {
        next(P);
        if (!(n->b = parse_tuple(P, 1)) || expect_block_end(P, "set")) return NULL;
        return n;
    }
    if (n->a->kind != N_NAME && n->a->kind != N_GETATTR) return unexpected(P, "set", "'='");
    if (is_op(peek(P), "|")) {
        next(P);
        if (!(n->d = parse_filter_chain(P))) return NULL;
    }
    if (expect_block_end(P, "set")) return NULL;
    static const char *const ends[] = {"endset", NULL};
    if (!(n->c = parse_body(P, ends, "set", line))) return NULL;
    block_end_name(P);
    return expect_block_end(P, "endset") ? NULL : n;
}

/* Parameters: (a, b=default, ...) */
static int parse_params(parser *P, jt_node *n, const char *what)
{
    if (expect_op(P, "(", what)) return -1;
    while (!is_op(peek(P), ")")) {
        if (n->nkids && expect_op(P, ",", what)) return -1;
        jt_tok *t = next(P);
        if (t->kind != TK_NAME) {
            P->i--;
            unexpected(P, what, "a parameter name");
            return -1;
        }
        jt_node *p;
        if (is_op(peek(P), "=")) {
            next(P);
            if (!(p = node(P, N_KWARG, t->line)) || set_name(P, p, t->s) || !(p->a = parse_expr(P)))
                return -1;
        } else {
            for (size_t k = 0; k < n->nkids; k++)
                if (n->kids[k]->kind == N_KWARG)
                    return fail_at(P, t->line, what, "parameter without default after one with"),
                           -1;
            if (!(p = node(P, N_NAME, t->line)) || set_name(P, p, t->s)) return -1;
        }
        jt_node_add_kid(n, p);
    }
    next(P);
    return 0;
}

static jt_node *parse_macro(parser *P, int line)
{
    jt_tok *t = next(P);
    if (t->kind != TK_NAME) {
        P->i--;
        return unexpected(P, "macro", "a macro name");
    }
    jt_node *n = node(P, N_MACRO, line);
    if (!n || set_name(P, n, t->s) || parse_params(P, n, "macro") || expect_block_end(P, "macro"))
        return NULL;
    static const char *const ends[] = {"endmacro", NULL};
    int saved = P->in_loop;
    P->in_loop = 0;
    P->in_macro++;
    n->b = parse_body(P, ends, "macro", line);
    P->in_macro--;
    P->in_loop = saved;
    if (!n->b) return NULL;
    block_end_name(P);
    return expect_block_end(P, "endmacro") ? NULL : n;
}

static jt_node *parse_callblock(parser *P, int line)
{
    jt_node *n = node(P, N_CALLBLOCK, line);
    if (!n) return NULL;
    if (is_op(peek(P), "(") && parse_params(P, n, "call")) return NULL;
    if (!(n->a = parse_expr(P))) return NULL;
    if (n->a->kind != N_CALL) return fail_at(P, line, "call", "expected a macro call");
    if (expect_block_end(P, "call")) return NULL;
    static const char *const ends[] = {"endcall", NULL};
    int saved = P->in_loop;
    P->in_loop = 0;
    n->b = parse_body(P, ends, "call", line);
    P->in_loop = saved;
    if (!n->b) return NULL;
    block_end_name(P);
    return expect_block_end(P, "endcall") ? NULL : n;
}

static jt_node *parse_with(parser *P, int line)
{
    jt_node *n = node(P, N_WITH, line);
    if (!n) return NULL;
    while (peek(P)->kind != TK_BLOCK_END) {
        if (n->nkids && expect_op(P, ",", "with")) return NULL;
        jt_tok *t = next(P);
        if (t->kind != TK_NAME) {
            P->i--;
            return unexpected(P, "with", "a variable name");
        }
        jt_node *kw = node(P, N_KWARG, t->line);
        if (!kw || set_name(P, kw, t->s) || expect_op(P, "=", "with") || !(kw->a = parse_expr(P)))
            return NULL;
        jt_node_add_kid(n, kw);
    }
    next(P);
    static const char *const ends[] = {"endwith", NULL};
    if (!(n->b = parse_body(P, ends, "with", line))) return NULL;
    block_end_name(P);
    return expect_block_end(P, "endwith") ? NULL : n;
}

static jt_node *parse_statement(parser *P)
{
    int line = next(P)->line; /* {% */
    jt_tok *t = next(P);
    if (t->kind != TK_NAME) {
        P->i--;
        return unexpected(P, "statement", "a statement name");
    }
    if (++P->depth > JT_MAX_NEST)
        return fail_at(P, line, t->s, "blocks nested deeper than %d", JT_MAX_NEST);
    jt_node *n = NULL;
    const char *s = t->s;
    if (!strcmp(s, "if"))
        n = parse_if(P, line);
    else if (!strcmp(s, "for"))
        n = parse_for(P, line);
    else if (!strcmp(s, "set"))
        n = parse_set(P, line);
    else if (!strcmp(s, "macro"))
        n = parse_macro(P, line);
    else if (!strcmp(s, "call"))
        n = parse_callblock(P, line);
    else if (!strcmp(s, "with"))
        n = parse_with(P, line);
    else if (!strcmp(s, "filter")) {
        n = node(P, N_FILTERBLOCK, line);
        static const char *const ends[] = {"endfilter", NULL};
        if (n && !(n->a = parse_filter_chain(P))) n = NULL;
        if (n && (expect_block_end(P, "filter") || !(n->b = parse_body(P, ends, "filter", line))))
            n = NULL;
        if (n) {
            block_end_name(P);
            if (expect_block_end(P, "endfilter")) n = NULL;
        }
    } else if (!strcmp(s, "generation")) { /* transformers' assistant-mask tag: renders as is */
        n = node(P, N_WITH, line);
        static const char *const ends[] = {"endgeneration", NULL};
        if (n && (expect_block_end(P, "generation") ||
                  !(n->b = parse_body(P, ends, "generation", line))))
            n = NULL;
        if (n) {
            block_end_name(P);
            if (expect_block_end(P, "endgeneration")) n = NULL;
        }
    } else if (!strcmp(s, "break") || !strcmp(s, "continue")) {
        if (!P->in_loop) return fail_at(P, line, s, "outside of a loop");
        n = node(P, s[0] == 'b' ? N_BREAK : N_CONTINUE, line);
        if (n && expect_block_end(P, s)) n = NULL;
    } else if (!strcmp(s, "do")) {
        n = node(P, N_DO, line);
        if (n && (!(n->a = parse_tuple(P, 1)) || expect_block_end(P, "do"))) n = NULL;
    } else if (!strcmp(s, "extends") || !strcmp(s, "include") || !strcmp(s, "import") ||
               !strcmp(s, "from") || !strcmp(s, "block") || !strcmp(s, "autoescape")) {
        return fail_at(P, line, s, "not supported (a chat template is one file)");
    } else {
        return fail_at(P, line, "statement", "unknown statement '%s'", s);
    }
    P->depth--;
    return n;
}

static jt_node *parse_body(parser *P, const char *const *ends, const char *what, int open_line)
{
    jt_node *body = node(P, N_BODY, peek(P)->line);
    if (!body) return NULL;
    for (;;) {
        jt_tok *t = peek(P);
        jt_node *n = NULL;
        switch (t->kind) {
        case TK_EOF:
            if (ends) {
                const char *const *e = ends;
                while (e[1] && strncmp(*e, "end", 3))
                    e++;
                return fail_at(P, open_line, what, "missing '{%% %s %%}'", *e);
            }
            return body;
        case TK_TEXT:
            next(P);
            if (!(n = node(P, N_TEXT, t->line))) return NULL;
            n->name = malloc(t->n + 1);
            if (!n->name) return fail_at(P, t->line, "template", "out of memory");
            memcpy(n->name, t->s, t->n + 1);
            n->namelen = t->n;
            break;
        case TK_VAR_BEGIN:
            next(P);
            if (!(n = node(P, N_OUTPUT, t->line))) return NULL;
            if (!(n->a = parse_tuple(P, 1))) return NULL;
            if (peek(P)->kind != TK_VAR_END) return unexpected(P, "expression", "'}}'");
            next(P);
            break;
        case TK_BLOCK_BEGIN: {
            jt_tok *nm = peek2(P);
            if (nm->kind == TK_NAME && ends)
                for (const char *const *e = ends; *e; e++)
                    if (!strcmp(nm->s, *e)) return body;
            if (nm->kind == TK_NAME &&
                (!strncmp(nm->s, "end", 3) || !strcmp(nm->s, "else") || !strcmp(nm->s, "elif")))
                return fail_at(P, nm->line, nm->s, "unexpected '{%% %s %%}'%s%s", nm->s,
                               ends ? " inside " : "", ends ? what : "");
            if (!(n = parse_statement(P))) return NULL;
            break;
        }
        default:
            return unexpected(P, "template", "text or a tag");
        }
        jt_node_add_kid(body, n);
    }
}

int jt_parse(eng_tmpl *t, jt_toks *toks, char *err, size_t errlen)
{
    parser P = {.t = t, .tk = toks, .err = err, .errlen = errlen};
    t->root = parse_body(&P, NULL, "template", 1);
    return t->root && !P.failed ? 0 : -1;
}
