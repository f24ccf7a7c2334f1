/* SPDX-License-Identifier: MIT */
/* Communicator life cycle: create (settings, buffers, bootstrap), abort, destroy. */
#include "auth.h"
#include "ring_private.h"

#include <sched.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

void ring_params_init(ring_params *p)
{
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
}

/* Without a job_id in the config, ranks of one job agree on what they all know. */
static uint64_t derive_job_id(const ring_config *cfg)
{
    if (cfg->has_job_id) return cfg->job_id;
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    int fields[2] = {cfg->master_port, cfg->world_size};
    const unsigned char *b = (const unsigned char *)fields;
    for (size_t i = 0; i < sizeof fields; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

static ring_status check_config(const ring_config *cfg, char *err, size_t errlen)
{
    int ws = cfg->world_size;
    if (ws < 1 || (ws & (ws - 1)))
        return ring_errf(RING_ERR_CONFIG, err, errlen, "world_size must be a power of 2, got %d",
                         ws);
    if (cfg->rank < 0 || cfg->rank >= ws)
        return ring_errf(RING_ERR_CONFIG, err, errlen, "rank %d is outside 0..%d", cfg->rank,
                         ws - 1);
    if (ws > 1 && (cfg->port < 1 || cfg->port > 65535 || cfg->right_port < 1 ||
                   cfg->right_port > 65535 || cfg->master_port < 1 || cfg->master_port > 65535))
        return ring_errf(RING_ERR_CONFIG, err, errlen, "ports must be in 1..65535");
    return RING_OK;
}

/* Fields past what the caller's params struct holds are taken as zero. */
static ring_status params_copy_in(const ring_params *params, ring_params *p, char *err,
                                  size_t errlen)
{
    ring_params_init(p);
    if (!params) return RING_OK;
    if (params->struct_size < offsetof(ring_params, config) + sizeof(void *))
        return ring_errf(RING_ERR_INVALID_ARG, err, errlen,
                         "ring_params.struct_size is %zu: set it with ring_params_init()",
                         params->struct_size);
    memcpy(p, params, params->struct_size < sizeof *p ? params->struct_size : sizeof *p);
    p->struct_size = sizeof *p;
    return RING_OK;
}

/* CPUs this process may run on (its affinity mask: a container's or taskset's share). */
static int usable_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* RING_TCP_RECV_WORKER=auto: a rank with workers runs three busy threads (caller, send and
 * receive worker). When the host's ranks need more than its CPUs, the caller receives
 * itself (docs/BENCHMARKS.md section 6: on 16 CPUs, 8 ranks gained from it, 2 and 4 lost). */
static int recv_worker(const ring_settings *s)
{
    if (s->tcp_recv_worker >= 0) return s->tcp_recv_worker;
    int local = s->local_ranks > 0 ? s->local_ranks : 1;
    return (long)local * 3 <= usable_cpus();
}

/* A long spin pays only while every rank of the host has a CPU of its own: oversubscribed,
 * the spinners take turns with the ranks they wait for, and the short TCP spin is better
 * (docs/BENCHMARKS.md section 17). */
static int shm_spin(const ring_settings *s)
{
    int local = s->local_ranks > 0 ? s->local_ranks : 1;
    return local <= usable_cpus() ? s->shm_spin_us : s->spin_us;
}

/* Streaming stores (RING_STREAM_BYTES) write each line of a result without reading it first,
 * which pays where ranks running at once share the host's memory bandwidth. In place, where
 * a rank read every line it overwrites earlier in the call, they paid at 4 and 8 ranks and
 * lost at 2 (docs/BENCHMARKS.md sections 32-34), hence RING_STREAM_RANKS. Ranks taking turns
 * on fewer CPUs count as the CPUs. shm rings only, whose ranks are all on this host. */
static void stream_rule(ring_settings *s, int size)
{
    int cpus = usable_cpus(), at_once = size < cpus ? size : cpus;
    s->stream_in_place = at_once >= s->stream_ranks;
    if (at_once < 2) s->stream_bytes = 0;
}

/* Create from whole params and the settings resolved from them (once). */
static ring_status create(const ring_params *p, const ring_settings *set, ring_comm **out,
                          char *err, size_t errlen)
{
    ring_status st;
    ring_comm *c = calloc(1, sizeof *c);
    if (!c) return ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory");
    if ((st = ring_config_copy_in(&c->cfg, p->config, err, errlen)) != RING_OK) goto free_comm;
    if ((st = check_config(&c->cfg, err, errlen)) != RING_OK) goto free_comm;
    c->set = *set;
    c->set.checksum = c->set.checksum || c->cfg.checksum;
    c->rank = c->cfg.rank;
    c->size = c->cfg.world_size;
    stream_rule(&c->set, c->size);
    c->master_fd = -1;
    c->job_id = derive_job_id(&c->cfg);
    if ((st = ring_transport_select(c, &c->tp, &c->tpo, err, errlen)) != RING_OK) goto free_comm;
    c->tpo.spin_us = c->set.spin_us;
    c->tpo.threads_min_bytes = c->set.threads_min_bytes;
    c->tpo.recv_worker = recv_worker(&c->set);
    c->tpo.shm_cma = c->set.shm_cma;
    c->tpo.shm_spin_us = shm_spin(&c->set);
    if ((st = ring_transport_streams(c, &c->tp, err, errlen)) != RING_OK) goto free_comm;
    if (!c->set.pipeline_set && c->tp->segment_bytes) {
        c->set.segment_bytes = c->tp->segment_bytes;
        c->set.depth = c->tp->depth;
    }
    if (c->set.depth < c->tp->min_depth) {
        st = ring_errf(RING_ERR_CONFIG, err, errlen,
                       "transport %s needs a pipeline depth of %d or more, not %d "
                       "(RING_PIPELINE_DEPTH or ring_params.pipeline_depth)",
                       c->tp->name, c->tp->min_depth, c->set.depth);
        goto free_comm;
    }
    c->abort_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (c->abort_fd < 0) {
        st = ring_errf(RING_ERR_SYSTEM, err, errlen, "eventfd failed");
        goto free_comm;
    }
    const char *secret = c->set.secret_file[0] ? c->set.secret_file : c->cfg.secret_file;
    if (secret[0] && c->size > 1 &&
        (st = ring_auth_load(secret, &c->set.log, &c->auth, err, errlen)) != RING_OK)
        goto close_abort_fd;
    if (c->size > 1) {
        c->slots = malloc((size_t)c->set.depth * c->set.segment_bytes);
        c->gather = malloc((size_t)c->size * (c->set.small_bytes ? c->set.small_bytes : 1));
        if (!c->slots || !c->gather) {
            st = ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory for staging buffers");
            goto free_buffers;
        }
    }
    char streams[64] = "";
    if (c->set.tcp_streams > 1)
        snprintf(streams, sizeof streams, " (%d streams)", c->set.tcp_streams);
    else if (c->tp == &ring_transport_tcp_streams)
        snprintf(streams, sizeof streams, " (worker threads from %zu B chunks%s)",
                 c->set.threads_min_bytes, c->tpo.recv_worker ? "" : ", the caller receives");
    ring_clog(
        c, RING_LOG_INFO,
        "rank %d of %d: listening on port %d, right %s:%d, master %s:%d, transport %s%s, job "
        "0x%016llx, "
        "segment %zu B x %d, latency path <= %zu B, timeouts connect %d ms / op %d ms, checksum %s",
        c->rank, c->size, c->cfg.port, c->cfg.right_ip, c->cfg.right_port, c->cfg.master_ip,
        c->cfg.master_port, c->tp->name, streams, (unsigned long long)c->job_id,
        c->set.segment_bytes, c->set.depth, c->set.small_bytes, c->set.connect_timeout_ms,
        c->set.op_timeout_ms, c->set.checksum ? "crc32c" : "off");
    if (c->size > 1 && (st = ring_bootstrap(c)) != RING_OK) {
        ring_errf(st, err, errlen, "%s", c->err);
        goto close_bootstrap;
    }
    if (c->size > 1 && (st = ring_ctrl_start(c, err, errlen)) != RING_OK) goto close_bootstrap;
    if (c->size > 1 && c->tp->staging) {
        unsigned char *s = c->tp->staging(c->right, (size_t)c->set.depth * c->set.segment_bytes);
        if (s) {
            free(c->slots);
            c->slots = s;
            c->slots_tp = 1;
            ring_clog(c, RING_LOG_INFO,
                      "rank %d: staging slots shared with rank %d, which reduces from them in "
                      "place",
                      c->rank, (c->rank + 1) % c->size);
            if (c->set.shm_gather && c->set.stream_bytes)
                ring_clog(c, RING_LOG_INFO,
                          "rank %d: all-reduces of %zu bytes and more stream their result (%s)",
                          c->rank, c->set.stream_bytes,
                          c->set.stream_in_place ? "in place too" : "out of place only");
        }
    }
    *out = c;
    return RING_OK;

close_bootstrap:
    ring_bootstrap_close(c);
free_buffers:
    free(c->slots);
    free(c->gather);
    ring_auth_free(c->auth);
close_abort_fd:
    close(c->abort_fd);
free_comm:
    free(c);
    return st;
}

ring_status ring_comm_create(const ring_params *params, ring_comm **out, char *err, size_t errlen)
{
    ring_status st;
    if (!params || !out)
        return ring_errf(RING_ERR_INVALID_ARG, err, errlen,
                         "ring_comm_create: params and config are required");
    ring_params p;
    if ((st = params_copy_in(params, &p, err, errlen)) != RING_OK) return st;
    if (!p.config)
        return ring_errf(RING_ERR_INVALID_ARG, err, errlen,
                         "ring_comm_create: params and config are required");
    ring_settings *set = malloc(sizeof *set);
    if (!set) return ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory");
    if ((st = ring_settings_resolve(&p, set, err, errlen)) == RING_OK)
        st = create(&p, set, out, err, errlen);
    free(set);
    return st;
}

ring_status ring_comm_create_from_env(const ring_params *params, ring_comm **out, char *err,
                                      size_t errlen)
{
    ring_status st;
    if (!out)
        return ring_errf(RING_ERR_INVALID_ARG, err, errlen,
                         "ring_comm_create_from_env: out is required");
    ring_params p;
    if ((st = params_copy_in(params, &p, err, errlen)) != RING_OK) return st;
    p.config = NULL;
    ring_settings *set = malloc(sizeof *set);
    ring_config *cfg = malloc(sizeof *cfg);
    if (!set || !cfg) {
        st = ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory");
        goto free_all;
    }
    if ((st = ring_settings_resolve(&p, set, err, errlen)) != RING_OK) goto free_all;
    if ((st = ring_config_load_full(set->config_path, cfg, &set->log, err, errlen)) != RING_OK)
        goto free_all;
    p.config = cfg;
    st = create(&p, set, out, err, errlen);
free_all:
    free(set);
    free(cfg);
    return st;
}

void ring_comm_destroy(ring_comm *c)
{
    if (!c) return;
    ring_ctrl_stop(c);
    ring_bootstrap_close(c);
    if (!c->slots_tp) free(c->slots);
    free(c->gather);
    ring_auth_free(c->auth);
    close(c->abort_fd);
    free(c);
}

void ring_comm_abort(ring_comm *c)
{
    if (!c) return;
    atomic_store(&c->aborted, 1);
    uint64_t one = 1;
    ssize_t n = write(c->abort_fd, &one, sizeof one);
    (void)n;
    /* Tell the other ranks through the control thread now, not at the next collective: an
     * abort before any collective (a rank failing at start-up) must reach them at once, ahead
     * of the BYE that destroy sends. Only an atomic store and a write: async-signal-safe. */
    if (c->ctrl.running) {
        int expect = 0;
        atomic_compare_exchange_strong(&c->ctrl.report, &expect, (int)RING_ERR_ABORTED);
        n = write(c->ctrl.wake_fd, &one, sizeof one);
        (void)n;
    }
}

int ring_comm_rank(const ring_comm *c)
{
    return c ? c->rank : -1;
}
int ring_comm_size(const ring_comm *c)
{
    return c ? c->size : -1;
}
const char *ring_comm_last_error(const ring_comm *c)
{
    return c ? c->err : "no communicator";
}
