/* SPDX-License-Identifier: MIT */
/* The renderer's entry points: parse once, render many times with cJSON variables. */
#include "jt.h"

#include <stdlib.h>
#include <string.h>

int eng_tmpl_parse(const char *src, size_t len, eng_tmpl **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen) err[0] = 0;
    jt_toks toks;
    if (jt_lex(src, len, &toks, err, errlen)) return -1;
    eng_tmpl *t = calloc(1, sizeof(*t));
    if (!t) {
        jt_toks_free(&toks);
        snprintf(err, errlen, "line 1: template: out of memory");
        return -1;
    }
    t->max_steps = JT_MAX_STEPS;
    int rc = jt_parse(t, &toks, err, errlen);
    jt_toks_free(&toks);
    if (rc && errlen && !err[0]) snprintf(err, errlen, "line 1: template: cannot parse");
    if (rc) {
        eng_tmpl_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* Depth of JSON nesting, stopping past the limit. */
static int json_depth(const cJSON *j, int depth)
{
    if (depth > JT_MAX_NEST) return depth;
    int d = depth;
    for (const cJSON *c = j->child; c; c = c->next) {
        int k = json_depth(c, depth + 1);
        if (k > d) d = k;
        if (d > JT_MAX_NEST) break;
    }
    return d;
}

int eng_tmpl_render(const eng_tmpl *t, const cJSON *vars, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (errlen) err[0] = 0;
    if (vars && !cJSON_IsObject(vars)) {
        snprintf(err, errlen, "template variables must be a JSON object");
        return -1;
    }
    if (vars && json_depth(vars, 0) > JT_MAX_NEST) {
        snprintf(err, errlen, "template variables nested deeper than %d", JT_MAX_NEST);
        return -1;
    }
    jt_buf buf = {.limit = JT_MAX_OUTPUT};
    jt_scope root = {.vars = jv_dict(), .parent = NULL};
    for (const cJSON *v = vars ? vars->child : NULL; v; v = v->next)
        jt_dict_set(root.vars, jv_strz(v->string ? v->string : ""), jt_from_json(v, 0));
    jt_ctx c = {.out = &buf,
                .scope = &root,
                .globals = &root,
                .err = err,
                .errlen = errlen,
                .line = 1,
                .max_steps = t->max_steps,
                .caller = jv_undef()};
    jt_walk_budget(&c.steps, c.max_steps);
    jt_exec(&c, t->root);
    jt_walk_budget(NULL, 0);
    jt_charge(&c, 0); /* a walk that ran out of steps gave a meaningless answer */
    if (!c.failed && buf.failed) jt_fail(&c, "output larger than %u bytes", JT_MAX_OUTPUT);
    jv_unref(root.vars);
    if (c.failed) {
        free(buf.p);
        return -1;
    }
    if (!buf.p) {
        buf.p = calloc(1, 1);
        if (!buf.p) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }
    *out = buf.p;
    return 0;
}

void eng_tmpl_free(eng_tmpl *t)
{
    if (!t) return;
    for (size_t i = 0; i < t->nall; i++) {
        jt_node *n = t->all[i];
        if (n->lit.kind == JT_STR) free(n->lit.u.s); /* literals are not counted */
        free(n->kids);
        free(n->name);
        free(n);
    }
    free(t->all);
    free(t);
}
