/* SPDX-License-Identifier: MIT */
/* libFuzzer target: the chat-template renderer (engine/template), a Jinja interpreter that
 * runs templates shipped with model checkpoints, i.e. code from whoever published the model.
 * Input: the template source; after a NUL byte, optionally a JSON object of variables (when it
 * is not one, a realistic chat request is used: messages with a tool call and a tool answer,
 * tools, bos/eos tokens, add_generation_prompt, enable_thinking). Each template that parses is
 * rendered twice. Checks besides the sanitizers: a failure leaves no output and one non-empty
 * line in err, a success gives NUL-terminated text, and two renders of one parsed template
 * agree (a parsed template is immutable and shared by concurrent renders). */
#include "template/jt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char fixed_json[] =
    "{\"messages\": ["
    "{\"role\": \"system\", \"content\": \"You are a helpful assistant.\"},"
    "{\"role\": \"user\", \"content\": \"What is the weather in Paris? \\u00e9\\u4e2d\"},"
    "{\"role\": \"assistant\", \"content\": \"\", \"tool_calls\": [{\"id\": \"call_1\", "
    "\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
    "\"arguments\": {\"city\": \"Paris\", \"days\": 2}}}]},"
    "{\"role\": \"tool\", \"tool_call_id\": \"call_1\", \"name\": \"get_weather\", "
    "\"content\": \"{\\\"temp\\\": 21.5}\"},"
    "{\"role\": \"assistant\", \"content\": \"It is 21.5 C.\\nAnything else?\"}],"
    "\"add_generation_prompt\": true, \"bos_token\": \"<s>\", \"eos_token\": \"</s>\","
    "\"tools\": [{\"type\": \"function\", \"function\": {\"name\": \"get_weather\", "
    "\"description\": \"Current weather\", \"parameters\": {\"type\": \"object\", "
    "\"properties\": {\"city\": {\"type\": \"string\"}, \"days\": {\"type\": \"integer\"}}, "
    "\"required\": [\"city\"]}}}],"
    "\"enable_thinking\": false}";

static cJSON *fixed;

/* ASan's memmem wrapper checks the whole haystack on every call, which makes a loop over the
 * matches in a long string (split, count, replace) quadratic under ASan alone: a false hang. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
    return "intercept_memmem=0";
}

/* On failure: no output and err one non-empty line, NUL-terminated within its buffer. */
static void check_err(const char *what, int rc, const char *out, const char *err, size_t errlen)
{
    if (!rc) return;
    const char *nul = memchr(err, 0, errlen);
    if (out || !nul || nul == err || strchr(err, '\n')) {
        fprintf(stderr, "%s: bad failure: out %p, err '%.*s'\n", what, (const void *)out,
                (int)errlen, err);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fixed && !(fixed = cJSON_Parse(fixed_json))) abort();
    const uint8_t *nul = memchr(data, 0, size);
    size_t len = nul ? (size_t)(nul - data) : size;
    cJSON *own = nul ? cJSON_ParseWithLength((const char *)nul + 1, size - len - 1) : NULL;
    const cJSON *vars = cJSON_IsObject(own) ? own : fixed;

    char err[512];
    memset(err, 'x', sizeof(err));
    eng_tmpl *t = (eng_tmpl *)1;
    int rc = eng_tmpl_parse((const char *)data, len, &t, err, sizeof(err));
    check_err("parse", rc, rc && t ? "template" : NULL, err, sizeof(err));
    if (!rc) {
        if (!t) abort();
        /* a tenth of the step budget: a template that runs to the limit takes well under the
         * 10 s timeout under the sanitizers, while work that escapes the budget still hangs */
        t->max_steps = JT_MAX_STEPS / 10;
        char *out[2] = {NULL, NULL};
        int r[2];
        for (int k = 0; k < 2; k++) {
            memset(err, 'x', sizeof(err));
            r[k] = eng_tmpl_render(t, vars, &out[k], err, sizeof(err));
            check_err("render", r[k], out[k], err, sizeof(err));
            if (!r[k] && !out[k]) abort();
            if (!r[k]) (void)strlen(out[k]); /* NUL-terminated (ASan checks the read) */
        }
        /* the same result twice, unless the template reads the clock */
        if (r[0] != r[1] ||
            (!r[0] && strcmp(out[0], out[1]) && !memmem(data, len, "strftime_now", 12))) {
            fprintf(stderr, "renders differ: rc %d/%d\n", r[0], r[1]);
            abort();
        }
        free(out[0]);
        free(out[1]);
        eng_tmpl_free(t);
    }
    cJSON_Delete(own);
    return 0;
}
