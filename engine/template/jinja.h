/* SPDX-License-Identifier: MIT */
/* Chat-template renderer: the Jinja language as Hugging Face transformers renders chat
 * templates (sandboxed, trim_blocks, lstrip_blocks, loop controls, raise_exception,
 * tojson without ASCII escaping, strftime_now). docs/TEMPLATES.md lists what is supported.
 * A parsed template is immutable: several threads may render one template at once. */
#ifndef ENG_TEMPLATE_JINJA_H
#define ENG_TEMPLATE_JINJA_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdio.h>

typedef struct eng_tmpl eng_tmpl;

/* Parses a template; on error returns non-zero and err gets one line:
 * "line N: <construct>: <what>". */
int eng_tmpl_parse(const char *src, size_t len, eng_tmpl **out, char *err, size_t errlen);

/* Renders with the variables of a cJSON object; *out is malloc'd NUL-terminated text.
 * raise_exception() and runtime errors return non-zero with the message in err. */
int eng_tmpl_render(const eng_tmpl *t, const cJSON *vars, char **out, char *err, size_t errlen);

void eng_tmpl_free(eng_tmpl *t);

/* `ringinfer template FILE VARS.json`: 0 rendered, 1 parse/render error, 2 usage. */
int eng_tmpl_cli(int argc, char **argv, FILE *out, FILE *errf);

#endif
