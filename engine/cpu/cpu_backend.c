/* SPDX-License-Identifier: MIT */
/* The CPU backend's ops table. */
#include "cpu.h"

#include <stdio.h>
#include <string.h>

static eng_status cpu_available(const eng_load_params *p, char *err, size_t errlen)
{
    (void)p;
    (void)err;
    (void)errlen;
    return ENG_OK;
}

static void cpu_describe(const eng_model *m, char *buf, size_t len)
{
    snprintf(buf, len, "cpu (kernels %s)", ((const cpu_weights *)m->bw)->k->name);
}

static eng_status cpu_set_inputs(const eng_model *m, eng_state *s)
{
    (void)m;
    (void)s;
    return ENG_OK; /* the layers read s->tokens and s->pos directly */
}

static eng_status cpu_get_logits(const eng_model *m, eng_state *s, const float **host)
{
    (void)m;
    *host = ((cpu_state *)s->bs)->logits;
    return ENG_OK;
}

static eng_status cpu_get_act(const eng_model *m, eng_state *s, float *host)
{
    memcpy(host, ((cpu_state *)s->bs)->x, (size_t)s->n * m->cfg.dim * sizeof(float));
    return ENG_OK;
}

static eng_status cpu_put_act(const eng_model *m, eng_state *s, const float *host)
{
    memcpy(((cpu_state *)s->bs)->x, host, (size_t)s->n * m->cfg.dim * sizeof(float));
    return ENG_OK;
}

static eng_status cpu_sync(const eng_model *m, eng_state *s)
{
    (void)m;
    (void)s;
    return ENG_OK;
}

static const char *cpu_last_error(const eng_state *s)
{
    (void)s;
    return "";
}

const eng_backend eng_backend_cpu = {
    .name = "cpu",
    .available = cpu_available,
    .model_init = cpu_model_init,
    .upload_globals = cpu_upload_globals,
    .upload_layer = cpu_upload_layer,
    .model_free = cpu_model_free,
    .describe = cpu_describe,
    .state_create = cpu_state_create,
    .state_free = cpu_state_free,
    .set_inputs = cpu_set_inputs,
    .embed = cpu_embed,
    .layer = cpu_layer,
    .logits = cpu_logits,
    .get_logits = cpu_get_logits,
    .sample_batch = cpu_sample_batch,
    .get_batch = cpu_get_batch,
    .get_act = cpu_get_act,
    .put_act = cpu_put_act,
    .sync = cpu_sync,
    .copy_seq = cpu_copy_seq,
    .last_error = cpu_last_error,
};
