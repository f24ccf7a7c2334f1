/* SPDX-License-Identifier: MIT */
/* Lexer: template text into tokens with line numbers. Whitespace control as jinja2 with
 * trim_blocks and lstrip_blocks: `{%-`/`-%}` strip all whitespace on that side, a block or
 * comment tag drops the newline after it, and spaces/tabs before a block or comment tag that
 * starts its line go away (`{%+` keeps them). One trailing newline of the source is dropped. */
#include "jt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *s;
    size_t n, i;
    int line;
    jt_toks *out;
    char *err;
    size_t errlen;
} lexer;

static int lex_fail(lexer *L, int line, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int lex_fail(lexer *L, int line, const char *what, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(L->err, L->errlen, "line %d: %s: %s", line, what, msg);
    return -1;
}

static int push(lexer *L, jt_tok_kind k, int line, const char *s, size_t n)
{
    jt_toks *t = L->out;
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64;
        jt_tok *v = realloc(t->v, cap * sizeof(*v));
        if (!v) return lex_fail(L, line, "template", "out of memory");
        t->v = v;
        t->cap = cap;
    }
    jt_tok *tok = &t->v[t->n];
    memset(tok, 0, sizeof(*tok));
    tok->kind = k;
    tok->line = line;
    if (s) {
        tok->s = malloc(n + 1);
        if (!tok->s) return lex_fail(L, line, "template", "out of memory");
        memcpy(tok->s, s, n);
        tok->s[n] = 0;
        tok->n = n;
    }
    t->n++;
    return 0;
}

static int count_lines(const char *s, size_t n)
{
    int c = 0;
    for (size_t i = 0; i < n; i++)
        c += s[i] == '\n';
    return c;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

/* Decodes a string literal's escapes as Python's unicode-escape does (unknown ones stay). */
static int decode_string(lexer *L, int line, const char *s, size_t n, jt_buf *b)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '\\' || i + 1 == n) {
            jt_buf_putc(b, s[i]);
            continue;
        }
        char c = s[++i];
        unsigned long cp;
        int digits = 0;
        switch (c) {
        case 'n':
            jt_buf_putc(b, '\n');
            continue;
        case 't':
            jt_buf_putc(b, '\t');
            continue;
        case 'r':
            jt_buf_putc(b, '\r');
            continue;
        case 'a':
            jt_buf_putc(b, '\a');
            continue;
        case 'b':
            jt_buf_putc(b, '\b');
            continue;
        case 'f':
            jt_buf_putc(b, '\f');
            continue;
        case 'v':
            jt_buf_putc(b, '\v');
            continue;
        case '\\':
            jt_buf_putc(b, '\\');
            continue;
        case '\'':
            jt_buf_putc(b, '\'');
            continue;
        case '"':
            jt_buf_putc(b, '"');
            continue;
        case '\n':
            continue;
        case 'x':
            digits = 2;
            break;
        case 'u':
            digits = 4;
            break;
        case 'U':
            digits = 8;
            break;
        default:
            if (c >= '0' && c <= '7') {
                cp = 0;
                int k = 0;
                for (; k < 3 && i < n && s[i] >= '0' && s[i] <= '7'; k++)
                    cp = cp * 8 + (unsigned)(s[i++] - '0');
                i--;
                goto put_cp;
            }
            jt_buf_putc(b, '\\');
            jt_buf_putc(b, c);
            continue;
        }
        cp = 0;
        for (int k = 0; k < digits; k++) {
            if (i + 1 >= n || !isxdigit((unsigned char)s[i + 1]))
                return lex_fail(L, line, "string", "truncated \\%c escape", c);
            char h = s[++i];
            cp =
                cp * 16 + (unsigned)(isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
        }
    put_cp:
        if (cp > 0x10ffff || (cp >= 0xd800 && cp < 0xe000))
            return lex_fail(L, line, "string", "escape \\%c is not a valid code point", c);
        char u[4];
        size_t un;
        if (cp < 0x80) {
            u[0] = (char)cp;
            un = 1;
        } else if (cp < 0x800) {
            u[0] = (char)(0xc0 | (cp >> 6));
            u[1] = (char)(0x80 | (cp & 0x3f));
            un = 2;
        } else if (cp < 0x10000) {
            u[0] = (char)(0xe0 | (cp >> 12));
            u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[2] = (char)(0x80 | (cp & 0x3f));
            un = 3;
        } else {
            u[0] = (char)(0xf0 | (cp >> 18));
            u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
            u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
            u[3] = (char)(0x80 | (cp & 0x3f));
            un = 4;
        }
        jt_buf_put(b, u, un);
    }
    return 0;
}

static const char *const ops3[] = {NULL};
static const char *const ops2[] = {"//", "**", "==", "!=", "<=", ">=", NULL};
static const char ops1[] = "+-*/%~<>=()[]{},.:|;";

/* Tokens of one tag up to its end marker (`}}` or `%}`, with an optional `-`). Returns the
 * index after the marker, with *strip_after set for a `-` marker. */
static int lex_tag(lexer *L, const char *end, int *strip_after)
{
    const char *what = end[0] == '}' ? "expression" : "statement";
    int depth = 0;
    int start_line = L->line;
    (void)ops3;
    for (;;) {
        while (L->i < L->n && is_ws(L->s[L->i])) {
            if (L->s[L->i] == '\n') L->line++;
            L->i++;
        }
        if (L->i >= L->n)
            return lex_fail(L, start_line, what, "missing '%s' before the end of the template",
                            end);
        const char *p = L->s + L->i;
        size_t left = L->n - L->i;
        if (depth == 0) {
            if (left >= 3 && p[0] == '-' && !memcmp(p + 1, end, 2)) {
                L->i += 3;
                *strip_after = 1;
                return 0;
            }
            if (left >= 2 && !memcmp(p, end, 2)) {
                L->i += 2;
                *strip_after = 0;
                return 0;
            }
        }
        char c = *p;
        if (isalpha((unsigned char)c) || c == '_') {
            size_t k = 1;
            while (k < left && (isalnum((unsigned char)p[k]) || p[k] == '_'))
                k++;
            if (push(L, TK_NAME, L->line, p, k)) return -1;
            L->i += k;
            continue;
        }
        if (isdigit((unsigned char)c)) {
            size_t k = 0;
            int is_float = 0;
            char num[128];
            size_t nn = 0;
            while (k < left &&
                   (isdigit((unsigned char)p[k]) ||
                    (p[k] == '_' && k + 1 < left && isdigit((unsigned char)p[k + 1])))) {
                if (p[k] != '_' && nn < sizeof(num) - 1) num[nn++] = p[k];
                k++;
            }
            if (k + 1 < left && p[k] == '.' && isdigit((unsigned char)p[k + 1])) {
                is_float = 1;
                if (nn < sizeof(num) - 1) num[nn++] = p[k];
                k++;
                while (k < left && (isdigit((unsigned char)p[k]) || p[k] == '_')) {
                    if (p[k] != '_' && nn < sizeof(num) - 1) num[nn++] = p[k];
                    k++;
                }
            }
            if (k < left && (p[k] == 'e' || p[k] == 'E')) {
                size_t e = k + 1;
                if (e < left && (p[e] == '+' || p[e] == '-')) e++;
                if (e < left && isdigit((unsigned char)p[e])) {
                    is_float = 1;
                    while (k < e && nn < sizeof(num) - 1)
                        num[nn++] = p[k++];
                    while (k < left && isdigit((unsigned char)p[k])) {
                        if (nn < sizeof(num) - 1) num[nn++] = p[k];
                        k++;
                    }
                }
            }
            num[nn] = 0;
            if (nn == sizeof(num) - 1) /* digits were dropped: the value would be wrong */
                return lex_fail(L, L->line, "number", "longer than %zu characters", nn - 1);
            if (push(L, is_float ? TK_FLOAT : TK_INT, L->line, p, k)) return -1;
            jt_tok *t = &L->out->v[L->out->n - 1];
            errno = 0;
            if (is_float) {
                t->f = strtod(num, NULL);
            } else {
                t->i = strtoll(num, NULL, 10);
                if (errno) return lex_fail(L, L->line, "number", "%s does not fit in 64 bits", num);
            }
            L->i += k;
            continue;
        }
        if (c == '\'' || c == '"') {
            size_t k = 1;
            int line = L->line;
            while (k < left && p[k] != c) {
                if (p[k] == '\\' && k + 1 < left) k++;
                if (p[k] == '\n') L->line++;
                k++;
            }
            if (k >= left) return lex_fail(L, line, "string", "unterminated string literal");
            jt_buf b = {0};
            if (decode_string(L, line, p + 1, k - 1, &b)) {
                free(b.p);
                return -1;
            }
            int rc = push(L, TK_STRING, line, b.p ? b.p : "", b.len);
            free(b.p);
            if (rc) return -1;
            L->i += k + 1;
            continue;
        }
        size_t oplen = 0;
        for (int k = 0; ops2[k]; k++)
            if (left >= 2 && !memcmp(p, ops2[k], 2)) oplen = 2;
        if (!oplen && strchr(ops1, c) && c) oplen = 1;
        if (!oplen) return lex_fail(L, L->line, what, "unexpected character '%c'", c);
        if (c == '(' || c == '[' || c == '{') depth++;
        if ((c == ')' || c == ']' || c == '}') && depth > 0) depth--;
        if (push(L, TK_OP, L->line, p, oplen)) return -1;
        L->i += oplen;
    }
}

/* Finds the next tag start at or after i: returns its index or n. */
static size_t next_tag(const char *s, size_t n, size_t i)
{
    for (; i + 1 < n; i++)
        if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')) return i;
    return n;
}

/* Text before a tag, trimmed per the tag's opening modifier. */
static int emit_text(lexer *L, const char *t, size_t n, int line, char kind, char mod,
                     int line_starting)
{
    if (mod == '-') {
        while (n && is_ws(t[n - 1]))
            n--;
    } else if (mod != '+' && kind != '{') {
        size_t l = n;
        while (l && t[l - 1] != '\n')
            l--;
        int blank = 1;
        for (size_t k = l; k < n; k++)
            if (!is_ws(t[k])) blank = 0;
        if (blank && (l > 0 || line_starting)) n = l;
    }
    return n ? push(L, TK_TEXT, line, t, n) : 0;
}

/* `{% raw %}` ... `{% endraw %}`: finds the end tag; returns 0 with the body bounds. */
static int find_endraw(lexer *L, size_t from, size_t *body_end, size_t *after, int *strip_before,
                       int *strip_after)
{
    for (size_t i = from; (i = next_tag(L->s, L->n, i)) < L->n; i++) {
        if (L->s[i + 1] != '%') continue;
        size_t k = i + 2;
        int sb = 0;
        if (k < L->n && (L->s[k] == '-' || L->s[k] == '+')) sb = L->s[k++] == '-';
        while (k < L->n && is_ws(L->s[k]))
            k++;
        if (L->n - k < 6 || memcmp(L->s + k, "endraw", 6)) continue;
        k += 6;
        while (k < L->n && is_ws(L->s[k]))
            k++;
        int sa = 0;
        if (k < L->n && L->s[k] == '-') {
            sa = 1;
            k++;
        }
        if (L->n - k < 2 || memcmp(L->s + k, "%}", 2)) continue;
        *body_end = i;
        *after = k + 2;
        *strip_before = sb;
        *strip_after = sa;
        return 0;
    }
    return -1;
}

int jt_lex(const char *src, size_t len, jt_toks *out, char *err, size_t errlen)
{
    /* Newlines normalised to \n (as jinja2 does for text and strings); one trailing newline
     * dropped (keep_trailing_newline=False). */
    char *s = malloc(len + 1);
    if (!s) {
        snprintf(err, errlen, "line 1: template: out of memory");
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (src[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && src[i + 1] == '\n') i++;
        } else {
            s[n++] = src[i];
        }
    }
    if (n && s[n - 1] == '\n') n--;
    lexer L = {.s = s, .n = n, .line = 1, .out = out, .err = err, .errlen = errlen};
    memset(out, 0, sizeof(*out));
    int line_starting = 1, strip_next = 0, trim_nl = 0, first = 1;
    int rc = 0;
    while (L.i < L.n) {
        size_t tstart = L.i;
        if (strip_next)
            while (tstart < L.n && is_ws(L.s[tstart]))
                tstart++;
        else if (trim_nl && tstart < L.n && L.s[tstart] == '\n')
            tstart++;
        /* jinja2: a line starts where the previous tag (with what it swallowed) ended in \n */
        if (!first) line_starting = tstart > L.i && L.s[tstart - 1] == '\n';
        first = 0;
        L.line += count_lines(L.s + L.i, tstart - L.i);
        L.i = tstart;
        size_t tag = next_tag(L.s, L.n, L.i);
        int text_line = L.line;
        char kind = tag < L.n ? L.s[tag + 1] : 0;
        char mod = tag + 2 < L.n && (L.s[tag + 2] == '-' || L.s[tag + 2] == '+') ? L.s[tag + 2] : 0;
        if ((rc = emit_text(&L, L.s + L.i, tag - L.i, text_line, kind ? kind : '{', kind ? mod : 0,
                            line_starting)))
            break;
        L.line += count_lines(L.s + L.i, tag - L.i);
        if (tag >= L.n) break;
        L.i = tag + 2 + (mod ? 1 : 0);
        int tag_line = L.line;
        strip_next = trim_nl = 0;
        if (kind == '#') {
            size_t k = L.i;
            while (k + 1 < L.n && !(L.s[k] == '#' && L.s[k + 1] == '}'))
                k++;
            if (k + 1 >= L.n) {
                rc = lex_fail(&L, tag_line, "comment", "missing '#}'");
                break;
            }
            strip_next = k > L.i && L.s[k - 1] == '-';
            trim_nl = 1;
            L.line += count_lines(L.s + L.i, k - L.i);
            L.i = k + 2;
        } else if (kind == '{') {
            if ((rc = push(&L, TK_VAR_BEGIN, tag_line, NULL, 0))) break;
            if ((rc = lex_tag(&L, "}}", &strip_next))) break;
            if ((rc = push(&L, TK_VAR_END, L.line, NULL, 0))) break;
        } else {
            /* raw blocks are text */
            size_t k = L.i;
            while (k < L.n && is_ws(L.s[k]))
                k++;
            if (L.n - k >= 3 && !memcmp(L.s + k, "raw", 3) &&
                (k + 3 >= L.n || !(isalnum((unsigned char)L.s[k + 3]) || L.s[k + 3] == '_'))) {
                k += 3;
                while (k < L.n && is_ws(L.s[k]))
                    k++;
                int sa = 0;
                if (k < L.n && L.s[k] == '-') {
                    sa = 1;
                    k++;
                }
                if (L.n - k < 2 || memcmp(L.s + k, "%}", 2)) {
                    rc = lex_fail(&L, tag_line, "raw", "expected '%%}' after 'raw'");
                    break;
                }
                k += 2;
                size_t body_end, after;
                int sb, sa2;
                if (find_endraw(&L, k, &body_end, &after, &sb, &sa2)) {
                    rc = lex_fail(&L, tag_line, "raw", "missing '{%% endraw %%}'");
                    break;
                }
                /* jinja2 keeps the newline after `{% raw %}` but lstrips before endraw */
                size_t b0 = k, b1 = body_end;
                if (sa)
                    while (b0 < b1 && is_ws(L.s[b0]))
                        b0++;
                if (sb) {
                    while (b1 > b0 && is_ws(L.s[b1 - 1]))
                        b1--;
                } else if (L.s[body_end + 2] != '+') {
                    size_t l = b1;
                    while (l > b0 && L.s[l - 1] != '\n')
                        l--;
                    int blank = 1;
                    for (size_t q = l; q < b1; q++)
                        if (!is_ws(L.s[q])) blank = 0;
                    if (blank && (l > b0 || (b0 > k && L.s[b0 - 1] == '\n'))) b1 = l;
                }
                if (b1 > b0 && (rc = push(&L, TK_TEXT, L.line, L.s + b0, b1 - b0))) break;
                L.line += count_lines(L.s + L.i, after - L.i);
                L.i = after;
                strip_next = sa2;
                trim_nl = 1;
            } else {
                if ((rc = push(&L, TK_BLOCK_BEGIN, tag_line, NULL, 0))) break;
                if ((rc = lex_tag(&L, "%}", &strip_next))) break;
                if ((rc = push(&L, TK_BLOCK_END, L.line, NULL, 0))) break;
                trim_nl = 1;
            }
        }
    }
    if (!rc) rc = push(&L, TK_EOF, L.line, NULL, 0);
    free(s);
    if (rc) {
        jt_toks_free(out);
        return -1;
    }
    return 0;
}

void jt_toks_free(jt_toks *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].s);
    free(t->v);
    memset(t, 0, sizeof(*t));
}
