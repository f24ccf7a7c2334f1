/* SPDX-License-Identifier: MIT */
/* Status strings, data type sizes and names, params defaults, logging helpers. */
#include "coll_private.h"
#include "common/errline.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define COLL_STATUS_STR_(name, msg) [name] = msg,
static const char *const status_str[] = {COLL_STATUS_LIST(COLL_STATUS_STR_)};
#undef COLL_STATUS_STR_
#define COLL_STATUS_NAME_(name, msg) [name] = #name,
static const char *const status_name[] = {COLL_STATUS_LIST(COLL_STATUS_NAME_)};
#undef COLL_STATUS_NAME_

const char *coll_status_str(coll_status s)
{
    if ((unsigned)s >= COLL_STATUS_COUNT) return "unknown status";
    return status_str[s];
}

const char *coll_status_name(coll_status s)
{
    if ((unsigned)s >= COLL_STATUS_COUNT) return "COLL_STATUS_UNKNOWN";
    return status_name[s];
}

size_t coll_dtype_size(coll_dtype t)
{
    static const size_t sizes[COLL_DTYPE_COUNT] = {
        [COLL_F32] = 4, [COLL_F64] = 8, [COLL_F16] = 2, [COLL_BF16] = 2,
        [COLL_I32] = 4, [COLL_I64] = 8, [COLL_U8] = 1,
    };
    if ((unsigned)t >= COLL_DTYPE_COUNT) return 0;
    return sizes[t];
}

static const char *const dtype_names[COLL_DTYPE_COUNT] = {
    [COLL_F32] = "f32", [COLL_F64] = "f64", [COLL_F16] = "f16", [COLL_BF16] = "bf16",
    [COLL_I32] = "i32", [COLL_I64] = "i64", [COLL_U8] = "u8",
};
static const char *const op_names[COLL_OP_COUNT] = {
    [COLL_SUM] = "sum", [COLL_PROD] = "prod", [COLL_MIN] = "min",
    [COLL_MAX] = "max", [COLL_AVG] = "avg",
};

const char *coll_dtype_name(coll_dtype t)
{
    return (unsigned)t < COLL_DTYPE_COUNT ? dtype_names[t] : NULL;
}
const char *coll_op_name(coll_op op)
{
    return (unsigned)op < COLL_OP_COUNT ? op_names[op] : NULL;
}

int coll_dtype_parse(const char *s, coll_dtype *out)
{
    /* nccl-tests' names, so their scripts' arguments work unchanged. */
    static const struct {
        const char *alias;
        coll_dtype t;
    } aliases[] = {
        {"float", COLL_F32}, {"float32", COLL_F32}, {"double", COLL_F64},    {"float64", COLL_F64},
        {"half", COLL_F16},  {"float16", COLL_F16}, {"bfloat16", COLL_BF16}, {"int32", COLL_I32},
        {"int", COLL_I32},   {"int64", COLL_I64},   {"uint8", COLL_U8},
    };
    if (!s || !out) return -1;
    for (int t = 0; t < COLL_DTYPE_COUNT; t++)
        if (strcasecmp(s, dtype_names[t]) == 0) return *out = (coll_dtype)t, 0;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(s, aliases[i].alias) == 0) return *out = aliases[i].t, 0;
    return -1;
}

int coll_op_parse(const char *s, coll_op *out)
{
    if (!s || !out) return -1;
    for (int o = 0; o < COLL_OP_COUNT; o++)
        if (strcasecmp(s, op_names[o]) == 0) return *out = (coll_op)o, 0;
    return -1;
}

int coll_op_valid_for(coll_op op, coll_dtype t)
{
    if ((unsigned)op >= COLL_OP_COUNT || (unsigned)t >= COLL_DTYPE_COUNT) return 0;
    if (op == COLL_AVG) return t == COLL_F32 || t == COLL_F64 || t == COLL_F16 || t == COLL_BF16;
    return 1;
}

void coll_params_init(coll_params *p)
{
    memset(p, 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->visible_devices = -1;
    p->memtype = COLL_MEM_AUTO;
    p->p2p_max_bytes = -1;
}

coll_status coll_fail(coll_status st, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_errline_v(err, errlen, fmt, ap);
    va_end(ap);
    return st;
}

void coll_log(const coll_logger *lg, coll_log_level level, const char *fmt, ...)
{
    static const char *const names[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    if (lg && (int)level > (int)lg->level) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    /* One fprintf per line so lines of different processes do not interleave. */
    if (lg && lg->rank >= 0)
        fprintf(stderr, "[coll %d] %s %s\n", lg->rank, names[level], line);
    else
        fprintf(stderr, "[coll] %s %s\n", names[level], line);
}
