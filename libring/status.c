/* SPDX-License-Identifier: MIT */
/* Names and messages of statuses, data types and ops, all generated from ring.h's lists. */
#include "ring_private.h"
#include "common/errline.h"

#include <stdarg.h>
#include <string.h>
#include <strings.h>

#define MSG_(name, msg) [name] = msg,
static const char *const status_msgs[] = {RING_STATUS_LIST(MSG_)};
#undef MSG_
#define NAME_(name, msg) [name] = #name,
static const char *const status_names[] = {RING_STATUS_LIST(NAME_)};
#undef NAME_

const char *ring_status_str(ring_status s)
{
    return (unsigned)s < RING_STATUS_COUNT ? status_msgs[s] : "unknown status";
}

const char *ring_status_name(ring_status s)
{
    return (unsigned)s < RING_STATUS_COUNT ? status_names[s] : "RING_STATUS_UNKNOWN";
}

#define DT_NAME_(name, str, size) [name] = str,
static const char *const dtype_names[] = {RING_DTYPE_LIST(DT_NAME_)};
#undef DT_NAME_
#define DT_SIZE_(name, str, size) [name] = size,
static const unsigned char dtype_sizes[] = {RING_DTYPE_LIST(DT_SIZE_)};
#undef DT_SIZE_
#define OP_NAME_(name, str) [name] = str,
static const char *const op_names[] = {RING_OP_LIST(OP_NAME_)};
#undef OP_NAME_

size_t ring_dtype_size(ring_dtype t)
{
    return (unsigned)t < RING_DTYPE_COUNT ? dtype_sizes[t] : 0;
}
const char *ring_dtype_name(ring_dtype t)
{
    return (unsigned)t < RING_DTYPE_COUNT ? dtype_names[t] : NULL;
}
const char *ring_op_name(ring_op op)
{
    return (unsigned)op < RING_OP_COUNT ? op_names[op] : NULL;
}

/* nccl-tests spellings are accepted too. */
static const struct {
    const char *alias;
    ring_dtype t;
} dtype_aliases[] = {
    {"float", RING_F32}, {"float32", RING_F32}, {"double", RING_F64},    {"float64", RING_F64},
    {"half", RING_F16},  {"float16", RING_F16}, {"bfloat16", RING_BF16}, {"int32", RING_I32},
    {"int", RING_I32},   {"int64", RING_I64},   {"uint8", RING_U8},
};

int ring_dtype_parse(const char *s, ring_dtype *out)
{
    if (!s) return -1;
    for (int t = 0; t < RING_DTYPE_COUNT; t++)
        if (strcasecmp(s, dtype_names[t]) == 0) return *out = (ring_dtype)t, 0;
    for (size_t i = 0; i < sizeof dtype_aliases / sizeof dtype_aliases[0]; i++)
        if (strcasecmp(s, dtype_aliases[i].alias) == 0) return *out = dtype_aliases[i].t, 0;
    return -1;
}

int ring_op_parse(const char *s, ring_op *out)
{
    if (!s) return -1;
    for (int o = 0; o < RING_OP_COUNT; o++)
        if (strcasecmp(s, op_names[o]) == 0) return *out = (ring_op)o, 0;
    return -1;
}

int ring_op_valid_for(ring_op op, ring_dtype t)
{
    if ((unsigned)op >= RING_OP_COUNT || (unsigned)t >= RING_DTYPE_COUNT) return 0;
    if (op == RING_AVG) return t == RING_F32 || t == RING_F64 || t == RING_F16 || t == RING_BF16;
    return 1;
}

ring_status ring_errf(ring_status st, char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rc_errline_v(err, errlen, fmt, ap);
    va_end(ap);
    return st;
}

ring_status ring_fail(ring_comm *comm, ring_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(comm->err, sizeof comm->err, fmt, ap);
    va_end(ap);
    ring_clog(comm, RING_LOG_ERROR, "%s (%s)", comm->err, ring_status_name(st));
    return st;
}
