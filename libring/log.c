/* The one logging module: lines go to the communicator's callback, by default
 * "[ring R] LEVEL message" on stderr. */
#include "ring_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

int64_t ring_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int ring_ms_left(int64_t deadline_ns)
{
    int64_t left = deadline_ns - ring_now_ns();
    if (left <= 0) return 0;
    left = (left + 999999) / 1000000;
    return left > 0x7fffffff ? 0x7fffffff : (int)left;
}

void ring_log_stderr(void *ctx, ring_log_level level, int rank, const char *line)
{
    (void)ctx;
    if ((unsigned)level > RING_LOG_DEBUG) level = RING_LOG_ERROR;
    /* One fprintf per line keeps lines whole when ranks share a terminal. */
    if (rank >= 0)
        fprintf(stderr, "[ring %d] %s %s\n", rank, level_names[level], line);
    else
        fprintf(stderr, "[ring] %s %s\n", level_names[level], line);
}

void ring_logf(const ring_logger *lg, ring_log_level level, int rank, const char *fmt, ...)
{
    if (level > lg->level) return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    lg->fn(lg->ctx, level, rank, line);
}
