/* SPDX-License-Identifier: MIT */
/* Prints the README's table of environment variables from the three libraries' knob tables
 * (libring, libcoll, the engine), so the table cannot drift from the code: readme_env.sh
 * compares it with the README. `env_table` alone prints it (paste between the README's
 * env-table markers). */
#include "coll.h"
#include "eng_internal.h"
#include "ring.h"

#include <stdio.h>
#include <string.h>

#define MAX_ROWS 128

/* Markdown cell text: a '|' would end the cell. */
static void cell(const char *s)
{
    for (; *s; s++) {
        if (*s == '|') fputc('\\', stdout);
        fputc(*s, stdout);
    }
}

static int seen(const char **names, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return 1;
    return 0;
}

static void row(const char *lib, const char *name, const char *dflt, const char *help,
                const char **names, int *n)
{
    if (seen(names, *n, name) || *n >= MAX_ROWS) return; /* RING_CONFIG is in two tables */
    names[(*n)++] = name;
    printf("| `%s` | %s | ", name, lib);
    if (dflt && *dflt) printf("`%s`", dflt);
    printf(" | ");
    cell(help);
    printf(" |\n");
}

int main(void)
{
    const char *names[MAX_ROWS];
    int n = 0;
    printf("| variable | read by | default | meaning |\n|---|---|---|---|\n");
    for (const ring_knob *k = ring_knobs(); k->name; k++)
        row("libring", k->name, k->default_value, k->help, names, &n);
    for (const coll_knob *k = coll_knobs(); k->name; k++)
        row("libcoll", k->name, k->default_value, k->help, names, &n);
    for (const eng_knob *k = eng_knobs(); k->name; k++)
        row("engine", k->name, k->default_value, k->help, names, &n);
    return ferror(stdout) ? 1 : 0;
}
