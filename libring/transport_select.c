/* Choosing a communicator's transport: the config's "transport", overridden by the
 * RING_TRANSPORT knob; "auto" takes verbs when a usable device and port exist. Then
 * how many TCP streams per neighbour (RING_TCP_STREAMS over "tcp_streams"). */
#include "config.h"
#include "ring_private.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

ring_status ring_transport_select(ring_transport_kind asked, int rank, const ring_transport **tp,
                                  ring_tp_opts *opts, char *err, size_t errlen)
{
    const char *kn = ring_knob_transport();
    const char *from = "the config's \"transport\"";
    if (kn) {
        from = "RING_TRANSPORT";
        if (strcasecmp(kn, "tcp") == 0)
            asked = RING_TRANSPORT_TCP;
        else if (strcasecmp(kn, "verbs") == 0)
            asked = RING_TRANSPORT_VERBS;
        else if (strcasecmp(kn, "auto") == 0)
            asked = RING_TRANSPORT_AUTO;
        else
            return ring_errf(err, errlen, RING_ERR_CONFIG,
                             "RING_TRANSPORT must be tcp, verbs or auto, got \"%s\"", kn);
    }
    memset(opts, 0, sizeof *opts);
    *tp = &ring_transport_tcp;
    if (asked == RING_TRANSPORT_TCP) return RING_OK;
#ifdef HAVE_VERBS
    char why[400];
    ring_status st = ring_verbs_probe(ring_knob_ib_device(), ring_knob_ib_port(),
                                      ring_knob_ib_gid_index(), opts, why, sizeof why);
    if (st == RING_OK) {
        *tp = &ring_transport_verbs;
        ring_log(RING_LOG_INFO, rank, "transport %s: verbs on %s port %d (%s, GID index %d)",
                 asked == RING_TRANSPORT_AUTO ? "auto" : "verbs", opts->ib_device, opts->ib_port,
                 opts->ib_roce ? "RoCE" : "InfiniBand", opts->ib_gid_index);
        return RING_OK;
    }
    memset(opts, 0, sizeof *opts);
    if (asked == RING_TRANSPORT_VERBS)
        return ring_errf(err, errlen, st, "transport \"verbs\" asked for by %s, but %s", from, why);
    ring_log(RING_LOG_INFO, rank, "transport auto: tcp (%s)", why);
    return RING_OK;
#else
    if (asked == RING_TRANSPORT_VERBS)
        return ring_errf(err, errlen, RING_ERR_UNSUPPORTED,
                         "transport \"verbs\" asked for by %s, but this libring was built without "
                         "verbs (configure --with-verbs needs libibverbs-dev)",
                         from);
    ring_log(RING_LOG_INFO, rank, "transport auto: tcp (this libring has no verbs transport)");
    return RING_OK;
#endif
}

ring_status ring_transport_streams(int configured, int rank, const ring_transport **tp, int *streams,
                                   char *err, size_t errlen)
{
    int k = configured > 0 ? configured : 1;
    const char *kn = ring_knob_tcp_streams();
    if (kn) {
        char *end;
        errno = 0;
        long v = strtol(kn, &end, 10);
        if (errno || end == kn || *end || v < 1 || v > RING_MAX_TCP_STREAMS)
            return ring_errf(err, errlen, RING_ERR_CONFIG, "RING_TCP_STREAMS must be an integer in 1..%d, got \"%s\"",
                             RING_MAX_TCP_STREAMS, kn);
        k = (int)v;
    }
    *streams = 1;
    if (k == 1 && !ring_knob_tcp_threads()) return RING_OK;
    if (*tp != &ring_transport_tcp) {
        if (k == 1) return RING_OK;
        ring_log(RING_LOG_INFO, rank, "%d TCP streams asked for, but the transport is %s: one connection per neighbour",
                 k, (*tp)->name);
        return RING_OK;
    }
    *tp = &ring_transport_tcp_streams;
    *streams = k;
    return RING_OK;
}
