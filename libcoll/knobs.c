/* SPDX-License-Identifier: MIT */
/* The one configuration module: every variable libcoll reads is in COLL_KNOB_LIST, and
 * this file is the only one that looks at the environment. */
#include "coll_private.h"
#include "common/knob.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

extern char **environ;

#define COLL_KNOB_ENTRY_(id, name, def, help) [id] = {name, def, help},
static const coll_knob knob_table[KNOB_COUNT + 1] = {
    COLL_KNOB_LIST(COLL_KNOB_ENTRY_)[KNOB_COUNT] = {NULL, NULL, NULL}};
#undef COLL_KNOB_ENTRY_

const coll_knob *coll_knobs(void)
{
    return knob_table;
}

const char *coll_knob_name(coll_knob_id id)
{
    return knob_table[id].name;
}

static const char *process_getenv(const char *name, void *ctx)
{
    (void)ctx;
    return getenv(name);
}

void coll_env_read(coll_env *env, coll_getenv_fn fn, void *ctx)
{
    if (!fn) fn = process_getenv;
    for (int i = 0; i < KNOB_COUNT; i++) {
        const char *v = fn(knob_table[i].name, ctx);
        /* An empty variable counts as unset: `VAR= prog` is how shells clear one. */
        env->value[i] = (v && *v) ? v : NULL;
    }
}

int coll_env_isset(const coll_env *env, coll_knob_id id)
{
    return env->value[id] != NULL;
}

const char *coll_env_get(const coll_env *env, coll_knob_id id)
{
    return env->value[id] ? env->value[id] : knob_table[id].default_value;
}

coll_status coll_env_int(const coll_env *env, coll_knob_id id, long lo, long hi, long dflt,
                         long *out, char *err, size_t errlen)
{
    const char *s = coll_env_get(env, id);
    if (!*s) {
        *out = dflt;
        return COLL_OK;
    }
    if (rc_knob_long(knob_table[id].name, s, lo, hi, out, err, errlen)) return COLL_ERR_CONFIG;
    return COLL_OK;
}

coll_status coll_env_log_level(const coll_env *env, coll_log_level *out, char *err, size_t errlen)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    const char *s = coll_env_get(env, KNOB_LOG_LEVEL);
    for (int i = 0; i < 4; i++)
        if (strcasecmp(s, names[i]) == 0) {
            *out = (coll_log_level)i;
            return COLL_OK;
        }
    return coll_fail(COLL_ERR_CONFIG, err, errlen,
                     "COLL_LOG_LEVEL: expected error, warn, info or debug, got '%s'", s);
}

/* "NAME=value" */
static char *env_entry(const char *name, const char *value)
{
    size_t n = strlen(name) + strlen(value) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s=%s", name, value);
    return s;
}

static int is_local_knob(const char *entry)
{
    static const coll_knob_id ids[] = {KNOB_LOCAL_RANK, KNOB_LOCAL_RDV, KNOB_LOCAL_TOKEN};
    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        size_t n = strlen(knob_table[ids[i]].name);
        if (strncmp(entry, knob_table[ids[i]].name, n) == 0 && entry[n] == '=') return 1;
    }
    return 0;
}

char **coll_child_env(int local_rank, const char *rdv_addr, const char *token)
{
    size_t n = 0;
    while (environ && environ[n])
        n++;
    char **envp = calloc(n + 4, sizeof(char *));
    if (!envp) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (is_local_knob(environ[i])) continue;
        if (!(envp[k++] = strdup(environ[i]))) goto free_envp;
    }
    char rank[16];
    snprintf(rank, sizeof(rank), "%d", local_rank);
    if (!(envp[k++] = env_entry(knob_table[KNOB_LOCAL_RANK].name, rank))) goto free_envp;
    if (!(envp[k++] = env_entry(knob_table[KNOB_LOCAL_RDV].name, rdv_addr))) goto free_envp;
    if (!(envp[k++] = env_entry(knob_table[KNOB_LOCAL_TOKEN].name, token))) goto free_envp;
    return envp;
free_envp:
    coll_child_env_free(envp);
    return NULL;
}

void coll_child_env_free(char **envp)
{
    if (!envp) return;
    for (size_t i = 0; envp[i]; i++)
        free(envp[i]);
    free(envp);
}
