/* SPDX-License-Identifier: MIT */
/* The chat template: --chat-template FILE or the model folder's tokenizer_config.json
 * (chat_template, bos_token, eos_token), parsed once at start-up (a template the renderer
 * cannot handle stops the server with the renderer's message), rendered per request with the
 * variables transformers passes: messages, add_generation_prompt, bos_token, eos_token, tools
 * and the request's chat_template_kwargs. */
#include "serve.h"

#include "../template/jinja.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct srv_tmpl {
    eng_tmpl *t; /* NULL: the model has none */
    char *bos, *eos;
    char *source; /* where it came from, for messages */
};

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    srv_buf b = {0};
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        if (srv_buf_add(&b, chunk, n)) break;
    int bad = ferror(f);
    fclose(f);
    if (bad || !b.p) {
        snprintf(err, errlen, "%s: read failed", path);
        srv_buf_free(&b);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* "<s>" or {"content": "<s>", ...} */
static char *token_text(const cJSON *v)
{
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    return strdup(cJSON_IsString(v) ? v->valuestring : "");
}

int srv_tmpl_load(const srv_opts *o, srv_tmpl **out, char *err, size_t errlen)
{
    srv_tmpl *t = calloc(1, sizeof(*t));
    cJSON *cfg = NULL;
    char *src = NULL;
    size_t len = 0;
    if (!t) return snprintf(err, errlen, "out of memory"), -1;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/tokenizer_config.json", o->model);
    if (stat(o->model, &sb) == 0 && S_ISDIR(sb.st_mode) && stat(path, &sb) == 0) {
        char *text = read_file(path, &len, err, errlen);
        if (!text) goto fail;
        cfg = cJSON_ParseWithLength(text, len);
        free(text);
        if (!cJSON_IsObject(cfg)) {
            snprintf(err, errlen, "%s: not a JSON object", path);
            goto fail;
        }
    }
    t->bos = token_text(cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"));
    t->eos = token_text(cJSON_GetObjectItemCaseSensitive(cfg, "eos_token"));
    if (o->chat_template) {
        if (!(src = read_file(o->chat_template, &len, err, errlen))) goto fail;
        t->source = strdup(o->chat_template);
    } else if (cfg) {
        const cJSON *ct = cJSON_GetObjectItemCaseSensitive(cfg, "chat_template"), *it;
        if (cJSON_IsArray(ct)) { /* named templates: the "default" one, else the first */
            const cJSON *pick = NULL;
            cJSON_ArrayForEach(it, ct)
            {
                const cJSON *name = cJSON_GetObjectItemCaseSensitive(it, "name");
                if (!pick || (cJSON_IsString(name) && !strcmp(name->valuestring, "default")))
                    pick = it;
            }
            ct = pick ? cJSON_GetObjectItemCaseSensitive(pick, "template") : NULL;
        }
        if (cJSON_IsString(ct)) {
            src = strdup(ct->valuestring);
            len = strlen(ct->valuestring);
            t->source = strdup(path);
        }
    }
    char why[512] = "";
    if (src && eng_tmpl_parse(src, len, &t->t, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "chat template %s: %s", t->source ? t->source : "", why);
        goto fail;
    }
    if (!t->bos || !t->eos) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    free(src);
    cJSON_Delete(cfg);
    *out = t;
    return 0;
fail:
    free(src);
    cJSON_Delete(cfg);
    srv_tmpl_free(t);
    return -1;
}

const char *srv_tmpl_bos(const srv_tmpl *t)
{
    return t && t->bos ? t->bos : "";
}

void srv_tmpl_free(srv_tmpl *t)
{
    if (!t) return;
    eng_tmpl_free(t->t);
    free(t->bos);
    free(t->eos);
    free(t->source);
    free(t);
}

/* messages with list-of-parts content flattened to text (what text-only templates expect). */
static cJSON *messages_of(const cJSON *req, srv_error *e)
{
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(req, "messages");
    cJSON *m;
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0) {
        srv_err(e, 400, "messages", "invalid_type", "'messages' must be a non-empty array");
        return NULL;
    }
    cJSON *out = cJSON_Duplicate(msgs, 1);
    int i = 0;
    cJSON_ArrayForEach(m, out)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(m, "role");
        if (!cJSON_IsObject(m) || !cJSON_IsString(role)) {
            srv_err(e, 400, "messages", "invalid_value", "'messages'[%d] needs a string 'role'", i);
            cJSON_Delete(out);
            return NULL;
        }
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (cJSON_IsArray(content)) {
            srv_buf b = {0};
            const cJSON *part;
            srv_buf_str(&b, "");
            cJSON_ArrayForEach(part, content)
            {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(type) || strcmp(type->valuestring, "text") ||
                    !cJSON_IsString(text)) {
                    srv_buf_free(&b);
                    srv_err(e, 400, "messages", "invalid_value",
                            "'messages'[%d]: only text content parts are supported", i);
                    cJSON_Delete(out);
                    return NULL;
                }
                srv_buf_str(&b, text->valuestring);
            }
            cJSON_ReplaceItemInObjectCaseSensitive(m, "content", cJSON_CreateString(b.p));
            srv_buf_free(&b);
        } else if (content && !cJSON_IsString(content) && !cJSON_IsNull(content)) {
            srv_err(e, 400, "messages", "invalid_type",
                    "'messages'[%d].content must be a string or a list of text parts", i);
            cJSON_Delete(out);
            return NULL;
        }
        i++;
    }
    return out;
}

char *srv_tmpl_render(const srv_tmpl *t, const cJSON *req, srv_error *e)
{
    if (!t || !t->t) {
        srv_err(e, 400, "messages", "no_chat_template",
                "the model has no chat template (start the server with --chat-template FILE, or "
                "use /v1/completions)");
        return NULL;
    }
    cJSON *msgs = messages_of(req, e);
    if (!msgs) return NULL;
    cJSON *vars = cJSON_CreateObject();
    const cJSON *kw = cJSON_GetObjectItemCaseSensitive(req, "chat_template_kwargs"), *it;
    if (kw && !cJSON_IsNull(kw) && !cJSON_IsObject(kw)) {
        cJSON_Delete(msgs);
        cJSON_Delete(vars);
        srv_err(e, 400, "chat_template_kwargs", "invalid_type",
                "'chat_template_kwargs' must be an object");
        return NULL;
    }
    cJSON_ArrayForEach(it, kw) cJSON_AddItemToObject(vars, it->string, cJSON_Duplicate(it, 1));
    cJSON_DeleteItemFromObjectCaseSensitive(vars, "messages");
    cJSON_AddItemToObject(vars, "messages", msgs);
    const cJSON *agp = cJSON_GetObjectItemCaseSensitive(req, "add_generation_prompt");
    if (!cJSON_GetObjectItemCaseSensitive(vars, "add_generation_prompt"))
        cJSON_AddBoolToObject(vars, "add_generation_prompt", agp ? cJSON_IsTrue(agp) : 1);
    if (!cJSON_GetObjectItemCaseSensitive(vars, "bos_token"))
        cJSON_AddStringToObject(vars, "bos_token", t->bos);
    if (!cJSON_GetObjectItemCaseSensitive(vars, "eos_token"))
        cJSON_AddStringToObject(vars, "eos_token", t->eos);
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive(req, "tools");
    if (tools && !cJSON_IsNull(tools) && !cJSON_GetObjectItemCaseSensitive(vars, "tools"))
        cJSON_AddItemToObject(vars, "tools", cJSON_Duplicate(tools, 1));
    char *out = NULL, why[512] = "";
    if (eng_tmpl_render(t->t, vars, &out, why, sizeof(why)) != 0) {
        free(out);
        out = NULL;
        srv_err(e, 400, "messages", "template_error", "chat template: %s", why);
    }
    cJSON_Delete(vars);
    return out;
}
