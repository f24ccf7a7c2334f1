/* The one place libring reads the environment: a declared table of knobs. */
#include "ring_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum {
    K_CONFIG,
    K_LOG_LEVEL,
    K_CONNECT_TIMEOUT,
    K_OP_TIMEOUT,
    K_SEGMENT,
    K_SMALL,
    K_SPIN,
    K_DEPTH,
    K_STEP_GROUP,
    K_CHECKSUM,
    K_SECRET_FILE,
    K_TRANSPORT,
    K_IB_DEVICE,
    K_IB_PORT,
    K_IB_GID_INDEX,
    K_TCP_STREAMS,
    K_TCP_THREADS,
    K_TCP_THREADS_MIN,
    K_COUNT
};

static const ring_knob knob_table[K_COUNT + 1] = {
    [K_CONFIG] = {"RING_CONFIG", "", "path of this rank's RING_CONFIG JSON file"},
    [K_LOG_LEVEL] = {"RING_LOG_LEVEL", "info", "error, warn, info or debug"},
    [K_CONNECT_TIMEOUT] = {"RING_CONNECT_TIMEOUT_MS", "60000",
                           "deadline for forming the ring (connect, accept, check-in)"},
    [K_OP_TIMEOUT] = {"RING_OP_TIMEOUT_MS", "30000",
                      "a collective fails when no byte moves for this long"},
    [K_SEGMENT] = {"RING_SEGMENT_BYTES", "131072", "pipeline segment size on the wire"},
    [K_SMALL] = {"RING_SMALL_BYTES", "32768",
                 "all-reduce at or below this size takes the latency path"},
    [K_SPIN] = {"RING_SPIN_US", "100", "poll the sockets this many microseconds before sleeping"},
    [K_DEPTH] = {"RING_PIPELINE_DEPTH", "16", "segments in flight per direction (1..64)"},
    [K_STEP_GROUP] = {"RING_STEP_GROUP", "8",
                      "segments of one ring step sent back to back before the next step's (1..63, below the depth)"},
    [K_CHECKSUM] = {"RING_CHECKSUM", "0",
                    "1: CRC32C of every data segment, checked by the receiver (also \"checksum\" in RING_CONFIG)"},
    [K_SECRET_FILE] = {"RING_SECRET_FILE", "",
                       "file holding the shared secret for HMAC authentication (overrides \"secret_file\")"},
    [K_TRANSPORT] = {"RING_TRANSPORT", "", "tcp, verbs or auto: overrides the config's \"transport\""},
    [K_IB_DEVICE] = {"RING_IB_DEVICE", "", "verbs device to use (default: the first usable one)"},
    [K_IB_PORT] = {"RING_IB_PORT", "", "verbs port number (default: the first active port)"},
    [K_IB_GID_INDEX] = {"RING_IB_GID_INDEX", "",
                        "GID index for RoCE (default: a RoCE v2 GID, IPv4-mapped first)"},
    [K_TCP_STREAMS] = {"RING_TCP_STREAMS", "1",
                       "TCP streams per neighbour connection, 1..16, each moved by its own threads; "
                       "every rank must use the same (overrides \"tcp_streams\")"},
    [K_TCP_THREADS] = {"RING_TCP_THREADS", "1",
                       "1: a send and a receive worker thread move even one TCP stream (the caller's "
                       "thread only reduces) for large collectives; 0: the caller's thread moves "
                       "everything; more than one stream always uses workers"},
    [K_TCP_THREADS_MIN] = {"RING_TCP_THREADS_MIN_BYTES", "262144",
                           "with worker threads, collectives whose largest step chunk is smaller "
                           "move on the caller's thread (lower latency); 0: workers for every size"},
    [K_COUNT] = {NULL, NULL, NULL},
};

const ring_knob *ring_knobs(void) { return knob_table; }

static const char *knob_value(int k)
{
    const char *v = getenv(knob_table[k].name);
    return (v && *v) ? v : NULL;
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* -1 when v names no log level. */
static int parse_level(const char *v)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(v, level_names[i]) == 0) return i;
    return strcasecmp(v, "warning") == 0 ? RING_LOG_WARN : -1;
}

/* The values in effect (what a communicator created without params would use), each marked as
 * the default, taken from the environment, or the environment's value refused. */
void ring_knobs_print(FILE *out)
{
    ring_settings s;
    ring_settings_resolve(NULL, &s);
    long long eff[K_COUNT];
    int numeric[K_COUNT] = {0};
    eff[K_CONNECT_TIMEOUT] = s.connect_timeout_ms, eff[K_OP_TIMEOUT] = s.op_timeout_ms;
    eff[K_SEGMENT] = (long long)s.segment_bytes, eff[K_SMALL] = (long long)s.small_bytes;
    eff[K_SPIN] = s.spin_us, eff[K_DEPTH] = s.depth, eff[K_CHECKSUM] = s.checksum;
    numeric[K_CONNECT_TIMEOUT] = numeric[K_OP_TIMEOUT] = numeric[K_SEGMENT] = numeric[K_SMALL] =
        numeric[K_SPIN] = numeric[K_DEPTH] = numeric[K_CHECKSUM] = 1;
    for (int k = 0; k < K_COUNT; k++) {
        const char *v = knob_value(k);
        char shown[32], note[96] = "";
        snprintf(shown, sizeof shown, "%s", v ? v : knob_table[k].default_value);
        if (numeric[k]) {
            snprintf(shown, sizeof shown, "%lld", eff[k]);
            char *end;
            long long x = v ? strtoll(v, &end, 10) : 0;
            if (v && (*end || x != eff[k])) snprintf(note, sizeof note, "(%s=%s not valid) ", knob_table[k].name, v);
        } else if (k == K_LOG_LEVEL && v && parse_level(v) < 0) {
            snprintf(shown, sizeof shown, "info");
            snprintf(note, sizeof note, "(%s=%s not valid) ", knob_table[k].name, v);
        }
        fprintf(out, "%-26s = %-12s %s%s%s\n", knob_table[k].name, shown, v ? "" : "(default) ", note,
                knob_table[k].help);
    }
}

ring_status ring_knobs_check(char *err, size_t errlen)
{
    const char *v = knob_value(K_LOG_LEVEL);
    if (v && parse_level(v) < 0)
        return ring_errf(err, errlen, RING_ERR_CONFIG, "RING_LOG_LEVEL=%s: expected error, warn, info or debug", v);
    return RING_OK;
}

const char *ring_knob_config_path(void) { return knob_value(K_CONFIG); }
const char *ring_knob_secret_file(void) { return knob_value(K_SECRET_FILE); }

ring_log_level ring_log_level_get(void)
{
    const char *v = knob_value(K_LOG_LEVEL);
    int l = v ? parse_level(v) : -1;
    return l < 0 ? RING_LOG_INFO : (ring_log_level)l;
}

/* A positive integer knob within [lo, hi]; a bad value is reported once per read and ignored. */
static long long knob_int(int k, long long def, long long lo, long long hi)
{
    const char *v = knob_value(k);
    if (!v) return def;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end || x < lo || x > hi) {
        ring_log(RING_LOG_WARN, -1, "%s=%s ignored: expected an integer in %lld..%lld",
                 knob_table[k].name, v, lo, hi);
        return def;
    }
    return x;
}

const char *ring_knob_transport(void) { return knob_value(K_TRANSPORT); }
const char *ring_knob_tcp_streams(void) { return knob_value(K_TCP_STREAMS); }
int ring_knob_tcp_threads(void) { return (int)knob_int(K_TCP_THREADS, 1, 0, 1); }
const char *ring_knob_ib_device(void) { return knob_value(K_IB_DEVICE); }
int ring_knob_ib_port(void) { return (int)knob_int(K_IB_PORT, 0, 1, 255); }
int ring_knob_ib_gid_index(void) { return (int)knob_int(K_IB_GID_INDEX, -1, 0, 65535); }

void ring_settings_resolve(const ring_params *p, ring_settings *s)
{
    const int day_ms = 86400000;
    s->connect_timeout_ms = p && p->connect_timeout_ms > 0
                                ? p->connect_timeout_ms
                                : (int)knob_int(K_CONNECT_TIMEOUT, RING_DEFAULT_CONNECT_TIMEOUT_MS, 1, day_ms);
    s->op_timeout_ms = p && p->op_timeout_ms > 0
                           ? p->op_timeout_ms
                           : (int)knob_int(K_OP_TIMEOUT, RING_DEFAULT_OP_TIMEOUT_MS, 1, day_ms);
    s->handshake_timeout_ms = RING_DEFAULT_HANDSHAKE_TIMEOUT_MS;
    if (s->handshake_timeout_ms > s->connect_timeout_ms) s->handshake_timeout_ms = s->connect_timeout_ms;
    s->segment_bytes = p && p->segment_bytes
                           ? p->segment_bytes
                           : (size_t)knob_int(K_SEGMENT, RING_DEFAULT_SEGMENT_BYTES, 4096, 1 << 26);
    s->small_bytes = p && p->small_bytes
                         ? p->small_bytes
                         : (size_t)knob_int(K_SMALL, RING_DEFAULT_SMALL_BYTES, 0, 1 << 24);
    s->spin_us = (int)knob_int(K_SPIN, RING_DEFAULT_SPIN_US, 0, 1000000);
    s->depth = p && p->pipeline_depth > 0
                   ? p->pipeline_depth
                   : (int)knob_int(K_DEPTH, RING_DEFAULT_DEPTH, 1, RING_MAX_DEPTH);
    if (s->depth > RING_MAX_DEPTH) s->depth = RING_MAX_DEPTH;
    s->step_group = (int)knob_int(K_STEP_GROUP, RING_DEFAULT_STEP_GROUP, 1, RING_MAX_DEPTH - 1);
    s->threads_min_bytes = (size_t)knob_int(K_TCP_THREADS_MIN, RING_DEFAULT_THREADS_MIN_BYTES, 0, 1LL << 40);
    s->checksum = (int)knob_int(K_CHECKSUM, 0, 0, 1) || (p && p->config && p->config->checksum);
    /* Segments hold whole elements of any type. */
    s->segment_bytes &= ~(size_t)7;
    if (s->segment_bytes < 4096) s->segment_bytes = 4096;
}
