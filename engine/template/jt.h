/* SPDX-License-Identifier: MIT */
/* Internals of the template renderer: values, tokens, syntax tree, evaluation context. */
#ifndef ENG_TEMPLATE_JT_H
#define ENG_TEMPLATE_JT_H

#include "jinja.h"

#include <stdarg.h>
#include <stdint.h>

/* Limits that keep a hostile template from hanging or exhausting the process. */
#define JT_MAX_NEST 200           /* parser nesting (blocks and expressions) */
#define JT_MAX_CALL_DEPTH 100     /* macro / recursive loop calls */
#define JT_MAX_STEPS 5000000ull   /* evaluated nodes per render (+1 per 32 bytes built) */
#define JT_MAX_OUTPUT (64u << 20) /* bytes of rendered text */
#define JT_MAX_VALUE (64u << 20)  /* bytes of one string or elements of one list */
#define JT_MAX_DEPTH 512          /* nesting of lists and dicts a template may build */
#define JT_MAX_EVAL_DEPTH 3000    /* nested evaluation (bounds the C stack) */

/* ---------------------------------------------------------------- values */
typedef enum {
    JT_UNDEF, /* u.s: why it is undefined (the message of a later error), or NULL */
    JT_NONE,
    JT_BOOL,
    JT_INT,
    JT_FLOAT,
    JT_STR,
    JT_LIST,
    JT_DICT,
    JT_NS,   /* namespace(): a mutable dict (u.d) */
    JT_LOOP, /* the `loop` variable */
    JT_FUNC,
} jt_kind;

typedef struct jt_str jt_str;
typedef struct jt_list jt_list;
typedef struct jt_dict jt_dict;
typedef struct jt_loop jt_loop;
typedef struct jt_func jt_func;

typedef struct {
    jt_kind kind;
    union {
        int b;
        int64_t i;
        double f;
        jt_str *s;
        jt_list *l;
        jt_dict *d;
        jt_loop *loop;
        jt_func *fn;
    } u;
} jv;

struct jt_str {
    int refs; /* -1: a literal of a parsed template, never counted nor freed by renders */
    size_t len;
    char p[]; /* len bytes + NUL */
};
struct jt_list {
    int refs;
    int tuple;  /* prints as (a, b); a tuple never equals a list */
    int depth;  /* nesting below this container (kept as a maximum) */
    int has_ns; /* a namespace may be reachable from here (cycle checks) */
    size_t n, cap;
    jv *v;
};
struct jt_dict { /* insertion-ordered, linear lookup (chat dicts are small) */
    int refs;
    int depth, has_ns; /* as in jt_list */
    size_t n, cap;
    jv *k, *v;
};

/* Growable byte buffer; `failed` once an allocation or the size limit failed. */
typedef struct {
    char *p;
    size_t len, cap, limit;
    int failed;
} jt_buf;

void jt_buf_put(jt_buf *b, const char *s, size_t n);
void jt_buf_puts(jt_buf *b, const char *s);
void jt_buf_putc(jt_buf *b, char c);
void jt_buf_printf(jt_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

jv jv_none(void);
jv jv_undef(void);
jv jv_undef_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
jv jv_bool(int b);
jv jv_int(int64_t i);
jv jv_float(double f);
jv jv_str(const char *s, size_t n); /* JT_NONE on allocation failure is avoided: aborts */
jv jv_strz(const char *s);
jv jv_str_buf(jt_buf *b); /* takes the buffer's bytes */
jv jv_list(size_t cap);
jv jv_tuple(size_t cap);
jv jv_pair(jv a, jv b); /* takes both */
jv jv_dict(void);
jv jv_ref(jv v);
void jv_unref(jv v);

void jt_list_push(jv list, jv item);       /* takes item */
void jt_dict_set(jv dict, jv key, jv val); /* takes key and val */
jv *jt_dict_find(const jt_dict *d, jv key);
jv *jt_dict_findz(const jt_dict *d, const char *key);

int jv_depth(jv v);
/* Whether namespace (jt_dict) or loop (jt_loop) obj can be reached from v (storing v in obj
 * would make a reference cycle). 1 also when the walk ran out of steps. */
int jv_reaches(jv v, const void *obj, int depth);
/* Pays steps for a walk over a value from the budget of the render running on this thread
 * (set by jt_walk_budget; none outside renders): 0 when it ran out, the walk then stops with a
 * meaningless result and the render fails at its next step. */
int jt_walk(unsigned long long steps);
void jt_walk_budget(unsigned long long *steps, unsigned long long max);
int jv_truthy(jv v);
int jv_equal(jv a, jv b);
/* -1/0/1; sets *ok to 0 when Python would refuse to order the two. */
int jv_compare(jv a, jv b, int *ok);
int jv_is_number(jv v); /* bool, int or float (Python numbers) */
double jv_num(jv v);
const char *jv_type_name(jv v);   /* Python's name: 'str', 'dict object'... */
void jv_to_str(jt_buf *b, jv v);  /* Python str() */
void jv_to_repr(jt_buf *b, jv v); /* Python repr() */
jv jv_stringify(jv v);            /* new JT_STR of str(v) */
/* Python float repr: shortest text that reads back the same. */
void jt_fmt_float(jt_buf *b, double f);

/* UTF-8 helpers: strings index and count by code points. */
size_t jt_utf8_len(const char *s, size_t n);
size_t jt_utf8_offset(const char *s, size_t n, size_t cp); /* byte offset of code point cp */

/* Case mapping (unicase.c): ASCII, Latin-1, Latin Extended-A, Greek, Cyrillic. */
uint32_t jt_cp_upper(uint32_t c);
uint32_t jt_cp_lower(uint32_t c);
int jt_cp_cased(uint32_t c);
/* Decodes the character at byte i; returns the next index. A byte that is not UTF-8 gives
 * *cp = 0xfffffff (copied as is by the callers). */
size_t jt_utf8_next(const char *s, size_t n, size_t i, uint32_t *cp);
void jt_buf_put_cp(jt_buf *b, uint32_t cp);

/* JSON. */
jv jt_from_json(const cJSON *j, int depth);
/* json.dumps(v, ensure_ascii, indent (<0: none), separators (NULL: default), sort_keys). */
int jt_to_json(jt_buf *b, jv v, int ensure_ascii, int indent, const char *item_sep,
               const char *key_sep, int sort_keys, int depth, char *err, size_t errlen);

/* ---------------------------------------------------------------- lexer */
typedef enum {
    TK_TEXT,
    TK_VAR_BEGIN,
    TK_VAR_END,
    TK_BLOCK_BEGIN,
    TK_BLOCK_END,
    TK_NAME,
    TK_STRING,
    TK_INT,
    TK_FLOAT,
    TK_OP,
    TK_EOF,
} jt_tok_kind;

typedef struct {
    jt_tok_kind kind;
    int line;
    char *s; /* text, name, decoded string, operator (malloc'd) */
    size_t n;
    int64_t i;
    double f;
} jt_tok;

typedef struct {
    jt_tok *v;
    size_t n, cap;
} jt_toks;

int jt_lex(const char *src, size_t len, jt_toks *out, char *err, size_t errlen);
void jt_toks_free(jt_toks *t);

/* ---------------------------------------------------------------- syntax tree */
typedef enum {
    /* expressions */
    N_LIT,     /* lit */
    N_NAME,    /* name */
    N_LIST,    /* kids */
    N_TUPLE,   /* kids */
    N_DICT,    /* kids: key, value, key, value... */
    N_GETATTR, /* a.name */
    N_GETITEM, /* a[b] */
    N_SLICE,   /* a[b:c:d], each may be NULL */
    N_CALL,    /* a(kids): N_KWARG(name, a) for keyword arguments */
    N_KWARG,
    N_FILTER, /* a|name(kids); a NULL in a filter block's chain */
    N_TEST,   /* a is [not] name(kids); op 1 for `is not` */
    N_BIN,    /* a op b */
    N_AND,
    N_OR,
    N_NOT,
    N_NEG,
    N_POS,
    N_COND, /* b if a else c */
    /* statements */
    N_BODY,        /* kids */
    N_TEXT,        /* name: the text */
    N_OUTPUT,      /* {{ a }} */
    N_IF,          /* if a: b else c (c: N_BODY, N_IF for elif, or NULL) */
    N_FOR,         /* for a in b if c: kids[0]=body kids[1]=else body; op 1: recursive */
    N_SET,         /* a = b; block set: a = (capture of c) | d-chain */
    N_MACRO,       /* name(kids: N_NAME or N_KWARG default): b */
    N_CALLBLOCK,   /* call(kids params) a: b is the caller's body */
    N_FILTERBLOCK, /* b rendered through the chain a */
    N_WITH,        /* kids: N_KWARG assignments; b body */
    N_BREAK,
    N_CONTINUE,
    N_DO, /* a */
} jt_node_kind;

enum {
    OP_ADD,
    OP_SUB,
    OP_MUL,
    OP_DIV,
    OP_FLOORDIV,
    OP_MOD,
    OP_POW,
    OP_CONCAT,
    OP_EQ,
    OP_NE,
    OP_LT,
    OP_LE,
    OP_GT,
    OP_GE,
    OP_IN,
    OP_NOTIN
};

typedef struct jt_node jt_node;
struct jt_node {
    jt_node_kind kind;
    int line;
    int op;
    jt_node *a, *b, *c, *d;
    jt_node **kids;
    size_t nkids, capkids;
    char *name; /* NUL-terminated */
    size_t namelen;
    jv lit;
};

struct eng_tmpl {
    jt_node *root;
    unsigned long long max_steps; /* JT_MAX_STEPS; tests lower it */
    jt_node **all;                /* every node, for freeing */
    size_t nall, capall;
};

int jt_parse(eng_tmpl *t, jt_toks *toks, char *err, size_t errlen);
void jt_node_add_kid(jt_node *n, jt_node *kid);

/* ---------------------------------------------------------------- evaluation */
typedef struct jt_scope jt_scope;
struct jt_scope {
    jv vars; /* JT_DICT */
    jt_scope *parent;
};

typedef struct {
    jv *pos;
    size_t npos;
    const char **kwn;
    jv *kwv;
    size_t nkw;
} jt_args;

typedef struct {
    jt_buf *out;
    jt_scope *scope;
    jt_scope *globals;
    char *err;
    size_t errlen;
    int failed;
    int line;   /* of the node being evaluated, for messages */
    int depth;  /* macro and recursive-loop calls */
    int edepth; /* nested jt_eval / jt_exec */
    unsigned long long steps, max_steps;
    int loopctl; /* 1 break, 2 continue */
    jv caller;   /* the `caller` of the innermost call block */
} jt_ctx;

struct jt_loop {
    int refs;
    jv items; /* JT_LIST */
    size_t i;
    int depth;
    const jt_node *node; /* the recursive for loop, for loop(...) */
    jv changed;          /* last loop.changed() arguments (JT_UNDEF: none yet) */
};

enum { FN_BUILTIN, FN_METHOD, FN_MACRO, FN_CALLER };
struct jt_func {
    int refs;
    int type;
    const char *name; /* builtin or method name (static or tree-owned) */
    jv self;          /* bound object of a method; loop of FN_LOOP_CALL */
    const jt_node *macro;
    jv caller;          /* FN_CALLER: the enclosing caller of the call block */
    jt_scope *defscope; /* FN_CALLER: the scope the call block was in */
};

/* Sets the error (first one wins) and returns JT_UNDEF for convenient `return jt_fail(...)`. */
jv jt_fail(jt_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Adds steps; past the render's limit it fails (a runaway template) and returns -1. */
int jt_charge(jt_ctx *c, unsigned long long steps);
/* Steps for an operation over v: scanning a string or going through a list or dict is paid
 * for by its size (a step per 32 bytes or 4 items), so a loop over a 60 MB string stops as
 * soon as a loop of cheap steps does. */
unsigned long long jt_cost(jv v);
/* raise_exception(msg): fails with the template's message as err (one line, never empty). */
jv jt_raise(jt_ctx *c, jt_args *a);
jv jt_func_new(int type, const char *name, jv self);

jv jt_eval(jt_ctx *c, const jt_node *n);
void jt_exec(jt_ctx *c, const jt_node *n);
jv jt_call(jt_ctx *c, jv fn, jt_args *a);
jv jt_getattr(jt_ctx *c, jv obj, const char *name);
jv jt_getitem(jt_ctx *c, jv obj, jv key);
/* Iterable to a new list (dict: keys; string: characters); JT_UNDEF with error if not. */
jv jt_to_list(jt_ctx *c, jv v);

/* Argument access for builtins: positional i, else keyword name, else NULL. */
jv *jt_arg(jt_args *a, size_t i, const char *name);
/* Checks that no argument past `npos` positions / outside `names` was given. */
int jt_args_check(jt_ctx *c, jt_args *a, const char *what, size_t npos, const char *const *names);

int jt_filter_known(const char *name);
jv jt_filter_apply(jt_ctx *c, const char *name, jv v, jt_args *a);
int jt_test_known(const char *name);
int jt_test_apply(jt_ctx *c, const char *name, jv v, jt_args *a); /* -1 on error */
int jt_global_known(const char *name);
jv jt_global_call(jt_ctx *c, const char *name, jt_args *a);
/* The method `name` of obj (a static copy of the name), or NULL when obj has none. */
const char *jt_method_lookup(jv obj, const char *name);
jv jt_method_call(jt_ctx *c, const char *name, jv self, jt_args *a);

#endif
