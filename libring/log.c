/* SPDX-License-Identifier: MIT */
/* The one logging module: lines go to the communicator's callback, by default
 * "[ring R] LEVEL message" on stderr. */
#include "ring_private.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

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
