/* SPDX-License-Identifier: MIT */
/* Choosing a communicator's transport: the config's "transport", overridden by the
 * RING_TRANSPORT knob; "auto" takes verbs when a usable device and port exist. Then
 * how many TCP streams per neighbour (RING_TCP_STREAMS over "tcp_streams"). */
#include "config.h"
#include "ring_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

ring_status ring_transport_select(ring_comm *c, const ring_transport **tp, ring_tp_opts *opts,
                                  char *err, size_t errlen)
{
    ring_transport_kind asked = c->cfg.transport;
    const char *from = "the config's \"transport\"";
    if (c->set.transport_knob >= 0) {
        from = "RING_TRANSPORT";
        asked = (ring_transport_kind)c->set.transport_knob;
    }
    memset(opts, 0, sizeof *opts);
    *tp = &ring_transport_tcp;
    if (asked == RING_TRANSPORT_TCP) return RING_OK;
    if (asked == RING_TRANSPORT_SHM) {
        *tp = &ring_transport_shm;
        ring_clog(c, RING_LOG_INFO, "transport shm (set by %s)", from);
        return RING_OK;
    }
#ifdef HAVE_VERBS
    char why[400];
    ring_status st = ring_verbs_probe(c->set.ib_device[0] ? c->set.ib_device : NULL, c->set.ib_port,
                                      c->set.ib_gid_index, opts, why, sizeof why);
    if (st == RING_OK) {
        *tp = &ring_transport_verbs;
        ring_clog(c, RING_LOG_INFO, "transport %s: verbs on %s port %d (%s, GID index %d)",
                  asked == RING_TRANSPORT_AUTO ? "auto" : "verbs", opts->ib_device, opts->ib_port,
                  opts->ib_roce ? "RoCE" : "InfiniBand", opts->ib_gid_index);
        return RING_OK;
    }
    memset(opts, 0, sizeof *opts);
    if (asked == RING_TRANSPORT_VERBS)
        return ring_errf(st, err, errlen, "transport \"verbs\" asked for by %s, but %s", from, why);
    ring_clog(c, RING_LOG_INFO, "transport auto: tcp (%s)", why);
    return RING_OK;
#else
    if (asked == RING_TRANSPORT_VERBS)
        return ring_errf(RING_ERR_UNSUPPORTED, err, errlen,
                         "transport \"verbs\" asked for by %s, but this libring was built without "
                         "verbs (configure --with-verbs needs libibverbs-dev)",
                         from);
    ring_clog(c, RING_LOG_INFO, "transport auto: tcp (this libring has no verbs transport)");
    return RING_OK;
#endif
}

ring_status ring_transport_streams(ring_comm *c, const ring_transport **tp, char *err,
                                   size_t errlen)
{
    (void)err;
    (void)errlen;
    int k = c->set.tcp_streams_knob > 0 ? c->set.tcp_streams_knob
            : c->cfg.tcp_streams > 0    ? c->cfg.tcp_streams
                                        : 1;
    c->set.tcp_streams = 1;
    if (k == 1 && !c->set.tcp_threads) return RING_OK;
    if (*tp != &ring_transport_tcp) {
        if (k == 1) return RING_OK;
        ring_clog(c, RING_LOG_INFO,
                  "%d TCP streams asked for, but the transport is %s: one connection per neighbour",
                  k, (*tp)->name);
        return RING_OK;
    }
    *tp = &ring_transport_tcp_streams;
    c->set.tcp_streams = k;
    return RING_OK;
}
