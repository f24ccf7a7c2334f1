/* SPDX-License-Identifier: MIT */
/* The one place libring reads the environment: a declared list of knobs, read once into a
 * communicator's settings when it is created. Every default is written once, as text in
 * the list (what --print-config shows is what the code uses). */
#include "common/knob.h"
#include "ring_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DAY_MS 86400000LL

/* X(id, name, default as text ("": unset), lo, hi, help). lo..hi bound the integer knobs;
 * for the others both are 0. */
#define KNOB_LIST(X)                                                                               \
    X(K_CONFIG, "RING_CONFIG", "", 0, 0, "path of this rank's RING_CONFIG JSON file")              \
    X(K_LOG_LEVEL, "RING_LOG_LEVEL", "info", 0, 0, "error, warn, info or debug")                   \
    X(K_CONNECT_TIMEOUT, "RING_CONNECT_TIMEOUT_MS", "60000", 1, DAY_MS,                            \
      "deadline for forming the ring (connect, accept, check-in)")                                 \
    X(K_OP_TIMEOUT, "RING_OP_TIMEOUT_MS", "30000", 1, DAY_MS,                                      \
      "a collective fails when no byte moves for this long")                                       \
    X(K_SEGMENT, "RING_SEGMENT_BYTES", "131072", 4096, 1 << 26,                                    \
      "pipeline segment size on the wire (shm: 524288 x depth 4 unless this or the depth is set)") \
    X(K_SMALL, "RING_SMALL_BYTES", "32768", 0, 1 << 24,                                            \
      "all-reduce at or below this size takes the latency path")                                   \
    X(K_SPIN, "RING_SPIN_US", "100", 0, 1000000,                                                   \
      "poll the sockets this many microseconds before sleeping")                                   \
    X(K_DEPTH, "RING_PIPELINE_DEPTH", "16", 1, RING_MAX_DEPTH,                                     \
      "segments in flight per direction (1..64; transport shm: 2 or more)")                        \
    X(K_STEP_GROUP, "RING_STEP_GROUP", "8", 1, RING_MAX_DEPTH - 1,                                 \
      "segments of one ring step sent back to back before the next step's (1..63, below the "      \
      "depth)")                                                                                    \
    X(K_CHECKSUM, "RING_CHECKSUM", "0", 0, 1,                                                      \
      "1: CRC32C of every data segment, checked by the receiver (also \"checksum\" in "            \
      "RING_CONFIG)")                                                                              \
    X(K_SECRET_FILE, "RING_SECRET_FILE", "", 0, 0,                                                 \
      "file holding the shared secret for HMAC authentication (overrides \"secret_file\")")        \
    X(K_TRANSPORT, "RING_TRANSPORT", "", 0, 0,                                                     \
      "tcp, shm (ranks on one host), verbs or auto: overrides the config's \"transport\"")         \
    X(K_IB_DEVICE, "RING_IB_DEVICE", "", 0, 0,                                                     \
      "verbs device to use (default: the first usable one)")                                       \
    X(K_IB_PORT, "RING_IB_PORT", "", 1, 255, "verbs port number (default: the first active port)") \
    X(K_IB_GID_INDEX, "RING_IB_GID_INDEX", "", 0, 65535,                                           \
      "GID index for RoCE (default: a RoCE v2 GID, IPv4-mapped first)")                            \
    X(K_TCP_STREAMS, "RING_TCP_STREAMS", "1", 1, RING_MAX_TCP_STREAMS,                             \
      "TCP streams per neighbour connection, 1..16, each moved by its own threads; every rank "    \
      "must use the same (overrides \"tcp_streams\")")                                             \
    X(K_TCP_THREADS, "RING_TCP_THREADS", "1", 0, 1,                                                \
      "1: a send and a receive worker thread move even one TCP stream for large collectives (the " \
      "caller's thread only reduces); 0: the caller's thread moves everything; more than one "     \
      "stream always uses workers")                                                                \
    X(K_TCP_THREADS_MIN, "RING_TCP_THREADS_MIN_BYTES", "262144", 0, 1LL << 40,                     \
      "with worker threads, collectives whose largest step chunk is smaller move on the caller's " \
      "thread (lower latency); 0: workers for every size")                                         \
    X(K_TCP_RECV_WORKER, "RING_TCP_RECV_WORKER", "1", 0, 1,                                        \
      "with one TCP stream moved by worker threads: 1: a worker receives; 0: the caller's thread " \
      "receives and reduces, one worker sends (one thread fewer per rank); auto: 0 when "          \
      "RING_LOCAL_RANKS x 3 threads exceed this process's CPUs, else 1")                           \
    X(K_SHM_CMA, "RING_SHM_CMA", "1", 0, 1,                                                        \
      "transport shm: 1: a receiver copies straight from the sender's buffer (process_vm_readv, "  \
      "one copy; a FIFO where the kernel refuses it); 0: always through the shared FIFO (two "     \
      "copies)")                                                                                   \
    X(K_SHM_SPIN, "RING_SHM_SPIN_US", "1000", 0, 1000000,                                          \
      "transport shm: poll the peers' words this many microseconds before sleeping, while the "    \
      "host's ranks (RING_LOCAL_RANKS) fit its CPUs (else RING_SPIN_US)")                          \
    X(K_SHM_GATHER, "RING_SHM_GATHER", "1", 0, 1,                                                  \
      "transport shm, staging slots shared: 1: an all-reduce's all-gather also passes through "    \
      "the slots, each segment read in place and copied once into the result; 0: each rank "       \
      "copies the left's result buffer (process_vm_readv)")                                        \
    X(K_STREAM, "RING_STREAM_BYTES", "16777216", 0, 1LL << 40,                                     \
      "with RING_SHM_GATHER=1, all-reduces of at least this many bytes write their result with "   \
      "streaming stores (no read for ownership, past the cache): out of place where 2 ranks or "   \
      "more run at once, in place see RING_STREAM_RANKS; 0: never")                                \
    X(K_STREAM_RANKS, "RING_STREAM_RANKS", "4", 2, 1 << 20,                                        \
      "in-place all-reduces stream their result (RING_STREAM_BYTES) where the ring has at least "  \
      "this many ranks and this process at least this many CPUs")                                  \
    X(K_LOCAL_RANKS, "RING_LOCAL_RANKS", "", 1, 1 << 20,                                           \
      "ranks of this job on this host (ringrun sets it; unset: 1), for RING_TCP_RECV_WORKER=auto")

#define KNOB_ENUM_(id, name, def, lo, hi, help) id,
enum { KNOB_LIST(KNOB_ENUM_) K_COUNT };
#undef KNOB_ENUM_

#define KNOB_ENTRY_(id, name, def, lo, hi, help) [id] = {name, def, help},
static const ring_knob knob_table[K_COUNT + 1] = {
    KNOB_LIST(KNOB_ENTRY_)[K_COUNT] = {NULL, NULL, NULL}};
#undef KNOB_ENTRY_

#define KNOB_RANGE_(id, name, def, lo, hi, help) [id] = {lo, hi},
static const long long knob_range[K_COUNT][2] = {KNOB_LIST(KNOB_RANGE_)};
#undef KNOB_RANGE_

const ring_knob *ring_knobs(void)
{
    return knob_table;
}

/* Every knob's text as read once: the environment's value, or NULL when unset or empty. */
typedef struct knob_env {
    const char *v[K_COUNT];
} knob_env;

static void knob_env_read(knob_env *e)
{
    for (int k = 0; k < K_COUNT; k++) {
        const char *v = getenv(knob_table[k].name);
        e->v[k] = v && *v ? v : NULL;
    }
}

static const char *const level_names[] = {"error", "warn", "info", "debug"};

/* -1 when v names no log level. */
static int parse_level(const char *v)
{
    for (int i = 0; i < 4; i++)
        if (strcasecmp(v, level_names[i]) == 0) return i;
    return strcasecmp(v, "warning") == 0 ? RING_LOG_WARN : -1;
}

/* Why the environment's value of each knob was refused ("" when it was not). */
typedef struct knob_notes {
    char why[K_COUNT][160];
} knob_notes;

/* An integer knob: the environment's value if valid, else the list's default (`unset` when
 * the default is ""), noting the refusal. */
static long long knob_int(const knob_env *e, knob_notes *n, int k, long long unset)
{
    const char *d = knob_table[k].default_value;
    long long def = *d ? strtoll(d, NULL, 10) : unset;
    const char *v = e->v[k];
    if (!v) return def;
    long x;
    /* The wording all three libraries share (common/knob.h). */
    if (rc_knob_long(knob_table[k].name, v, (long)knob_range[k][0], (long)knob_range[k][1], &x,
                     n->why[k], sizeof n->why[k]) != 0)
        return def;
    return x;
}

/* RING_TCP_RECV_WORKER: 0, 1, auto (-1), or -2 when v is none of them. */
static int parse_recv_worker(const char *v)
{
    if (strcasecmp(v, "auto") == 0) return -1;
    if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0) return v[0] - '0';
    return -2;
}

static void copy_text(char *dst, size_t cap, const char *v)
{
    snprintf(dst, cap, "%s", v ? v : "");
}

/* Resolve everything; refused values fall back to their defaults and are noted. */
static void resolve(const knob_env *e, const ring_params *p, ring_settings *s, knob_notes *n)
{
    memset(s, 0, sizeof *s);
    memset(n, 0, sizeof *n);
    int level = RING_LOG_INFO;
    if (e->v[K_LOG_LEVEL] && (level = parse_level(e->v[K_LOG_LEVEL])) < 0) {
        snprintf(n->why[K_LOG_LEVEL], sizeof n->why[K_LOG_LEVEL],
                 "RING_LOG_LEVEL: expected error, warn, info or debug, got '%.40s'",
                 e->v[K_LOG_LEVEL]);
        level = parse_level(knob_table[K_LOG_LEVEL].default_value);
    }
    s->log.level = (ring_log_level)level;
    s->log.fn = p && p->log_fn ? p->log_fn : ring_log_stderr;
    s->log.ctx = p && p->log_fn ? p->log_ctx : NULL;

    /* Params beat the environment, which beats the defaults. */
    long long v = knob_int(e, n, K_CONNECT_TIMEOUT, 0);
    s->connect_timeout_ms = p && p->connect_timeout_ms > 0 ? p->connect_timeout_ms : (int)v;
    v = knob_int(e, n, K_OP_TIMEOUT, 0);
    s->op_timeout_ms = p && p->op_timeout_ms > 0 ? p->op_timeout_ms : (int)v;
    s->handshake_timeout_ms = RING_HANDSHAKE_TIMEOUT_MS;
    if (s->handshake_timeout_ms > s->connect_timeout_ms)
        s->handshake_timeout_ms = s->connect_timeout_ms;
    v = knob_int(e, n, K_SEGMENT, 0);
    s->segment_bytes = p && p->segment_bytes ? p->segment_bytes : (size_t)v;
    v = knob_int(e, n, K_SMALL, 0);
    s->small_bytes = p && p->small_bytes ? p->small_bytes : (size_t)v;
    s->spin_us = (int)knob_int(e, n, K_SPIN, 0);
    v = knob_int(e, n, K_DEPTH, 0);
    s->depth = p && p->pipeline_depth > 0 ? p->pipeline_depth : (int)v;
    if (s->depth > RING_MAX_DEPTH) s->depth = RING_MAX_DEPTH;
    s->step_group = (int)knob_int(e, n, K_STEP_GROUP, 0);
    s->pipeline_set =
        (p && (p->segment_bytes || p->pipeline_depth > 0)) || e->v[K_SEGMENT] || e->v[K_DEPTH];
    /* The config's "checksum" is or-ed in at creation, from the whole copy of the config
     * (the caller's struct may be older and smaller: never read it here). */
    s->checksum = (int)knob_int(e, n, K_CHECKSUM, 0);
    s->tcp_threads = (int)knob_int(e, n, K_TCP_THREADS, 0);
    s->threads_min_bytes = (size_t)knob_int(e, n, K_TCP_THREADS_MIN, 0);
    /* auto (-1) is resolved at creation, from the local ranks and the CPUs (comm.c). */
    s->tcp_recv_worker = parse_recv_worker(knob_table[K_TCP_RECV_WORKER].default_value);
    const char *rw = e->v[K_TCP_RECV_WORKER];
    if (rw && parse_recv_worker(rw) == -2)
        snprintf(n->why[K_TCP_RECV_WORKER], sizeof n->why[K_TCP_RECV_WORKER],
                 "RING_TCP_RECV_WORKER: expected 0, 1 or auto, got '%.40s'", rw);
    else if (rw)
        s->tcp_recv_worker = parse_recv_worker(rw);
    s->local_ranks = (int)knob_int(e, n, K_LOCAL_RANKS, 0);
    s->shm_cma = (int)knob_int(e, n, K_SHM_CMA, 0);
    s->shm_spin_us = (int)knob_int(e, n, K_SHM_SPIN, 0);
    s->shm_gather = (int)knob_int(e, n, K_SHM_GATHER, 0);
    s->stream_bytes = (size_t)knob_int(e, n, K_STREAM, 0);
    s->stream_ranks = (int)knob_int(e, n, K_STREAM_RANKS, 0);
    s->tcp_streams_knob = e->v[K_TCP_STREAMS] ? (int)knob_int(e, n, K_TCP_STREAMS, 0) : 0;
    /* Segments hold whole elements of any type. */
    s->segment_bytes &= ~(size_t)7;
    if (s->segment_bytes < 4096) s->segment_bytes = 4096;

    copy_text(s->config_path, sizeof s->config_path, e->v[K_CONFIG]);
    copy_text(s->secret_file, sizeof s->secret_file, e->v[K_SECRET_FILE]);
    s->transport_knob = -1;
    if (e->v[K_TRANSPORT]) {
        const char *t = e->v[K_TRANSPORT];
        for (int k = 0; ring_transport_name(k); k++)
            if (strcasecmp(t, ring_transport_name(k)) == 0) s->transport_knob = k;
        if (s->transport_knob < 0)
            snprintf(n->why[K_TRANSPORT], sizeof n->why[K_TRANSPORT],
                     "RING_TRANSPORT: expected tcp, shm, verbs or auto, got '%.40s'", t);
    }
    copy_text(s->ib_device, sizeof s->ib_device, e->v[K_IB_DEVICE]);
    s->ib_port = (int)knob_int(e, n, K_IB_PORT, 0);
    s->ib_gid_index = (int)knob_int(e, n, K_IB_GID_INDEX, -1);
    if (strlen(e->v[K_CONFIG] ? e->v[K_CONFIG] : "") >= sizeof s->config_path)
        snprintf(n->why[K_CONFIG], sizeof n->why[K_CONFIG],
                 "RING_CONFIG: path longer than %d bytes", RING_PATH_MAX - 1);
    if (strlen(e->v[K_SECRET_FILE] ? e->v[K_SECRET_FILE] : "") >= sizeof s->secret_file)
        snprintf(n->why[K_SECRET_FILE], sizeof n->why[K_SECRET_FILE],
                 "RING_SECRET_FILE: path longer than %d bytes", RING_PATH_MAX - 1);
    if (strlen(e->v[K_IB_DEVICE] ? e->v[K_IB_DEVICE] : "") >= sizeof s->ib_device)
        snprintf(n->why[K_IB_DEVICE], sizeof n->why[K_IB_DEVICE],
                 "RING_IB_DEVICE: name longer than %zu bytes", sizeof s->ib_device - 1);
}

ring_status ring_settings_resolve(const ring_params *p, ring_settings *s, char *err, size_t errlen)
{
    knob_env e;
    knob_env_read(&e);
    knob_notes *n = malloc(sizeof *n);
    if (!n) return ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory for the settings");
    resolve(&e, p, s, n);
    ring_status st = RING_OK;
    for (int k = 0; k < K_COUNT && st == RING_OK; k++)
        if (n->why[k][0]) st = ring_errf(RING_ERR_CONFIG, err, errlen, "%s", n->why[k]);
    free(n);
    return st;
}

ring_logger ring_logger_from_env(void)
{
    const char *v = getenv(knob_table[K_LOG_LEVEL].name);
    int level = v && *v ? parse_level(v) : -1;
    return (ring_logger){.fn = ring_log_stderr,
                         .ctx = NULL,
                         .level = level < 0 ? RING_LOG_INFO : (ring_log_level)level};
}

/* The values a communicator created without params would use, each marked as the default,
 * taken from the environment, or the environment's value refused (creation would fail). */
void ring_knobs_print(FILE *out)
{
    knob_env e;
    knob_env_read(&e);
    ring_settings *s = malloc(sizeof *s);
    knob_notes *n = malloc(sizeof *n);
    if (!s || !n) {
        fprintf(out, "(out of memory)\n");
        goto free_all;
    }
    resolve(&e, NULL, s, n);
    long long eff[K_COUNT];
    int numeric[K_COUNT] = {0};
    eff[K_CONNECT_TIMEOUT] = s->connect_timeout_ms, eff[K_OP_TIMEOUT] = s->op_timeout_ms;
    eff[K_SEGMENT] = (long long)s->segment_bytes, eff[K_SMALL] = (long long)s->small_bytes;
    eff[K_SPIN] = s->spin_us, eff[K_DEPTH] = s->depth, eff[K_CHECKSUM] = s->checksum;
    eff[K_STEP_GROUP] = s->step_group, eff[K_TCP_THREADS] = s->tcp_threads;
    eff[K_TCP_THREADS_MIN] = (long long)s->threads_min_bytes;
    eff[K_TCP_RECV_WORKER] = s->tcp_recv_worker;
    eff[K_LOCAL_RANKS] = s->local_ranks;
    eff[K_SHM_CMA] = s->shm_cma, eff[K_SHM_SPIN] = s->shm_spin_us;
    eff[K_SHM_GATHER] = s->shm_gather, eff[K_STREAM] = (long long)s->stream_bytes;
    eff[K_STREAM_RANKS] = s->stream_ranks;
    numeric[K_CONNECT_TIMEOUT] = numeric[K_OP_TIMEOUT] = numeric[K_SEGMENT] = numeric[K_SMALL] =
        numeric[K_SPIN] = numeric[K_DEPTH] = numeric[K_CHECKSUM] = numeric[K_STEP_GROUP] =
            numeric[K_TCP_THREADS] = numeric[K_TCP_THREADS_MIN] = numeric[K_SHM_CMA] =
                numeric[K_SHM_SPIN] = numeric[K_SHM_GATHER] = numeric[K_STREAM] =
                    numeric[K_STREAM_RANKS] = 1;
    /* Numbers only when they are: RING_TCP_RECV_WORKER may be "auto", RING_LOCAL_RANKS unset. */
    numeric[K_TCP_RECV_WORKER] = s->tcp_recv_worker >= 0;
    numeric[K_LOCAL_RANKS] = s->local_ranks > 0;
    for (int k = 0; k < K_COUNT; k++) {
        const char *v = e.v[k];
        char shown[32], note[200] = "";
        snprintf(shown, sizeof shown, "%s", v && !n->why[k][0] ? v : knob_table[k].default_value);
        if (numeric[k]) snprintf(shown, sizeof shown, "%lld", eff[k]);
        if (k == K_LOG_LEVEL) snprintf(shown, sizeof shown, "%s", level_names[s->log.level]);
        if (n->why[k][0])
            snprintf(note, sizeof note, "(%s=%.40s not valid) ", knob_table[k].name, v);
        fprintf(out, "%-26s = %-12s %s%s%s\n", knob_table[k].name, shown, v ? "" : "(default) ",
                note, knob_table[k].help);
    }
free_all:
    free(s);
    free(n);
}
