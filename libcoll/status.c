/* Status strings, data type sizes, params defaults, logging helpers. */
#include "coll_private.h"

#include <stdio.h>
#include <string.h>

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

void coll_params_init(coll_params *p)
{
    memset(p, 0, sizeof(*p));
    p->struct_size = sizeof(*p);
    p->visible_devices = -1;
    p->memtype = COLL_MEM_AUTO;
    p->p2p_max_bytes = -1;
}

coll_status coll_fail(char *err, size_t errlen, coll_status st, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
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
