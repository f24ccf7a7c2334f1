/* SPDX-License-Identifier: MIT */
/* `ringinfer template FILE VARS.json`: renders a chat template to stdout. */
#include "jinja.h"

#include <stdlib.h>
#include <string.h>

#define MAX_FILE (16u << 20)

static char *slurp(const char *path, size_t *len, FILE *errf)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(errf, "ringinfer template: %s: cannot open\n", path);
        return NULL;
    }
    char *p = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *q = realloc(p, cap);
            if (!q) break;
            p = q;
        }
        size_t r = fread(p + n, 1, cap - n - 1, f);
        n += r;
        if (n > MAX_FILE) {
            fprintf(errf, "ringinfer template: %s: larger than %u bytes\n", path, MAX_FILE);
            fclose(f);
            free(p);
            return NULL;
        }
        if (r == 0) break;
    }
    int bad = ferror(f) || !p;
    fclose(f);
    if (bad) {
        fprintf(errf, "ringinfer template: %s: read error\n", path);
        free(p);
        return NULL;
    }
    p[n] = 0;
    *len = n;
    return p;
}

int eng_tmpl_cli(int argc, char **argv, FILE *out, FILE *errf)
{
    if (argc == 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
        fprintf(out,
                "usage: ringinfer template FILE VARS.json\n"
                "  Renders the Jinja chat template FILE with the variables of the JSON object\n"
                "  in VARS.json (messages, add_generation_prompt, bos_token, tools...) to stdout.\n"
                "  Exit 1 with the message when the template fails; see docs/TEMPLATES.md.\n");
        return 0;
    }
    if (argc != 4) {
        fprintf(errf, "usage: ringinfer template FILE VARS.json\n");
        return 2;
    }
    size_t tlen, vlen;
    char *src = slurp(argv[2], &tlen, errf);
    if (!src) return 1;
    char *vtext = slurp(argv[3], &vlen, errf);
    if (!vtext) {
        free(src);
        return 1;
    }
    int rc = 1;
    char err[512];
    eng_tmpl *t = NULL;
    char *text = NULL;
    cJSON *vars = cJSON_ParseWithLength(vtext, vlen);
    if (!vars || !cJSON_IsObject(vars)) {
        fprintf(errf, "ringinfer template: %s: not a JSON object\n", argv[3]);
        goto out;
    }
    if (eng_tmpl_parse(src, tlen, &t, err, sizeof(err))) {
        fprintf(errf, "ringinfer template: %s: %s\n", argv[2], err);
        goto out;
    }
    if (eng_tmpl_render(t, vars, &text, err, sizeof(err))) {
        fprintf(errf, "ringinfer template: %s: %s\n", argv[2], err);
        goto out;
    }
    fputs(text, out);
    rc = fflush(out) ? 1 : 0;
out:
    free(text);
    eng_tmpl_free(t);
    cJSON_Delete(vars);
    free(vtext);
    free(src);
    return rc;
}
