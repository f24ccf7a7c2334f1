/* SPDX-License-Identifier: MIT */
/* The RDMA verbs transport: one reliable-connected queue pair per ring connection.
 *
 * Bytes move through registered bounce rings, never through user memory: a connection
 * owns VB_SLOTS send slots and VB_SLOTS receive slots of VB_SLOT_BYTES, registered once
 * when it opens. Sending copies queued bytes into a free send slot and RDMA-WRITEs it,
 * with the byte count as immediate data, into the same slot of the peer's receive ring;
 * the immediate consumes one pre-posted zero-length receive there and raises a
 * completion. The receiver copies slots out into its posted receives in order (a byte
 * stream, as over TCP, so the two sides need not cut messages alike) and hands slots
 * back with credits (a zero-length SEND with immediate), so a sender never writes into a
 * slot that has not been read. Why copies instead of registering user buffers: see
 * docs/VERBS.md (a registration cache is unsafe without memory hooks).
 *
 * Nothing spins: progress() waits in poll() on the completion channels, the bootstrap
 * sockets (whose EOF says the peer process is gone; they carry nothing after set-up),
 * the abort fd and the deadline. */
#include "sock.h"
#include "transport.h"
#include "verbs_wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define VB_QUEUE 256          /* posted operations per direction, as TCP */
#define VB_CREDIT 0x80000000u /* immediate data: set for credits, clear for data */
#define VB_INLINE 256 /* inline data asked for: op headers and small latency-path messages */
#define VB_CLOSE_WAIT_MS 2000 /* close: how long unacknowledged writes may take to land */

enum { WR_DATA = 1, WR_CREDIT, WR_RECV };

typedef struct vb_op {
    unsigned char *buf;
    size_t len, done;
} vb_op;

typedef struct vb_queue {
    vb_op ops[VB_QUEUE];
    unsigned head, tail;
} vb_queue;

struct ring_conn {
    int fd; /* the bootstrap socket: set-up messages, then only watched for EOF */
    int peer;
    ring_tp_opts o;
    struct ibv_context *ctx;
    struct ibv_pd *pd;
    struct ibv_comp_channel *ch;
    struct ibv_cq *cq;
    struct ibv_qp *qp;
    struct ibv_mr *mr;
    unsigned char *mem; /* [0, VB_SLOTS): send slots; [VB_SLOTS, 2 VB_SLOTS): receive slots */
    vb_local me;
    vb_local them;
    int armed;        /* a completion event has been requested and not yet taken */
    int peer_gone;    /* the bootstrap socket reached EOF */
    ring_status lost; /* a queue pair failure seen outside a data write, reported on need */
    char lost_why[200];
    /* Sender: slots written, writes completed locally, slots the peer has released. */
    uint64_t sent, sent_done, credits;
    /* Receiver: slots arrived, slots copied out, credits handed back; bytes read of the head slot.
     */
    uint64_t arrived, consumed, returned;
    size_t head_off;
    uint32_t arrived_len[VB_SLOTS];
    unsigned credit_wrs; /* credit SENDs posted and not completed */
    uint32_t max_inline; /* writes this small go inline: the device copies them at post time */
    vb_queue tx, rx;
};

static unsigned char *send_slot(ring_conn *c, uint64_t n)
{
    return c->mem + (n % VB_SLOTS) * VB_SLOT_BYTES;
}
static unsigned char *recv_slot(ring_conn *c, uint64_t n)
{
    return c->mem + (VB_SLOTS + n % VB_SLOTS) * VB_SLOT_BYTES;
}

/* ------------------------------------------------------------------ set-up */

static void release(ring_conn *c)
{
    if (c->qp) ibv_destroy_qp(c->qp);
    if (c->mr) ibv_dereg_mr(c->mr);
    if (c->cq) ibv_destroy_cq(c->cq);
    if (c->ch) ibv_destroy_comp_channel(c->ch);
    if (c->pd) ibv_dealloc_pd(c->pd);
    if (c->ctx) ibv_close_device(c->ctx);
    free(c->mem);
    if (c->fd >= 0) close(c->fd);
    free(c);
}

static struct ibv_context *open_device(const char *name)
{
    int n = 0;
    struct ibv_device **list = ibv_get_device_list(&n);
    struct ibv_context *ctx = NULL;
    for (int i = 0; list && i < n && !ctx; i++)
        if (strcmp(ibv_get_device_name(list[i]), name) == 0) ctx = ibv_open_device(list[i]);
    if (list) ibv_free_device_list(list);
    return ctx;
}

static ring_status post_recv_wr(ring_conn *c)
{
    /* No scatter list: write-with-immediate and credit SENDs carry no payload here. */
    struct ibv_recv_wr wr = {.wr_id = WR_RECV, .sg_list = NULL, .num_sge = 0}, *bad;
    return ibv_post_recv(c->qp, &wr, &bad) == 0 ? RING_OK : RING_ERR_SYSTEM;
}

#define VB_TRY(cond, st_, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            st = ring_errf(st_, err, errlen, __VA_ARGS__);                                         \
            goto release_conn;                                                                     \
        }                                                                                          \
    } while (0)

static ring_status vb_open(const ring_tp_opts *o, int fd, int peer_rank, ring_conn **out, char *err,
                           size_t errlen)
{
    ring_status st = RING_OK;
    ring_conn *c = calloc(1, sizeof *c);
    if (!c) return ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory for a connection");
    c->fd = -1; /* the caller keeps the socket until we succeed */
    c->peer = peer_rank;
    c->o = *o;
    VB_TRY(c->ctx = open_device(o->ib_device), RING_ERR_SYSTEM, "verbs: cannot open device %s: %s",
           o->ib_device, strerror(errno));
    VB_TRY(c->pd = ibv_alloc_pd(c->ctx), RING_ERR_SYSTEM, "verbs: ibv_alloc_pd on %s failed",
           o->ib_device);
    VB_TRY(c->ch = ibv_create_comp_channel(c->ctx), RING_ERR_SYSTEM,
           "verbs: ibv_create_comp_channel failed");
    int fl = fcntl(c->ch->fd, F_GETFL);
    VB_TRY(fl >= 0 && fcntl(c->ch->fd, F_SETFL, fl | O_NONBLOCK) == 0, RING_ERR_SYSTEM,
           "verbs: completion channel: fcntl: %s", strerror(errno));
    /* Room for every work request that can be outstanding: 2 VB_SLOTS each way. */
    VB_TRY(c->cq = ibv_create_cq(c->ctx, 4 * VB_SLOTS + 8, NULL, c->ch, 0), RING_ERR_SYSTEM,
           "verbs: ibv_create_cq failed: %s", strerror(errno));
    size_t bytes = 2 * (size_t)VB_SLOTS * VB_SLOT_BYTES;
    VB_TRY(posix_memalign((void **)&c->mem, 4096, bytes) == 0, RING_ERR_NOMEM,
           "out of memory for %zu bytes of verbs slots", bytes);
    memset(c->mem, 0, bytes);
    c->mr = ibv_reg_mr(c->pd, c->mem, bytes, IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE);
    VB_TRY(c->mr, errno == ENOMEM ? RING_ERR_NOMEM : RING_ERR_SYSTEM,
           "verbs: registering %zu KiB of slots failed: %s%s", bytes >> 10, strerror(errno),
           errno == ENOMEM || errno == EPERM ? " (raise the locked-memory limit: ulimit -l)" : "");
    struct ibv_qp_init_attr ia = {
        .send_cq = c->cq,
        .recv_cq = c->cq,
        .cap = {.max_send_wr = 2 * VB_SLOTS,
                .max_recv_wr = 2 * VB_SLOTS,
                .max_send_sge = 1,
                .max_recv_sge = 1,
                .max_inline_data = VB_INLINE},
        .qp_type = IBV_QPT_RC,
    };
    c->qp = ibv_create_qp(c->pd, &ia);
    if (!c->qp) { /* a device without inline sends: do without */
        ia.cap.max_inline_data = 0;
        c->qp = ibv_create_qp(c->pd, &ia);
    }
    VB_TRY(c->qp, RING_ERR_SYSTEM, "verbs: ibv_create_qp failed: %s", strerror(errno));
    c->max_inline = ia.cap.max_inline_data; /* what the device granted */
    struct ibv_qp_attr a = {.qp_state = IBV_QPS_INIT,
                            .pkey_index = 0,
                            .port_num = (uint8_t)o->ib_port,
                            .qp_access_flags = IBV_ACCESS_REMOTE_WRITE};
    VB_TRY(ibv_modify_qp(c->qp, &a,
                         IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS) == 0,
           RING_ERR_SYSTEM, "verbs: queue pair to INIT failed: %s", strerror(errno));
    /* Enough receives for every data slot and every credit message the peer can have in flight. */
    for (int i = 0; i < 2 * VB_SLOTS; i++)
        VB_TRY(post_recv_wr(c) == RING_OK, RING_ERR_SYSTEM, "verbs: ibv_post_recv failed");

    struct ibv_port_attr pa;
    VB_TRY(ibv_query_port(c->ctx, (uint8_t)o->ib_port, &pa) == 0, RING_ERR_SYSTEM,
           "verbs: cannot query %s port %d", o->ib_device, o->ib_port);
    c->me = (vb_local){.qpn = c->qp->qp_num,
                       .psn = (uint32_t)(rc_now_ns() ^ c->qp->qp_num) & 0xffffff,
                       .lid = pa.lid,
                       .mtu = (uint8_t)pa.active_mtu,
                       .roce = (uint8_t)o->ib_roce,
                       .addr = (uint64_t)(uintptr_t)recv_slot(c, 0),
                       .rkey = c->mr->rkey,
                       .slots = VB_SLOTS,
                       .slot_bytes = VB_SLOT_BYTES};
    VB_TRY(ibv_query_gid(c->ctx, (uint8_t)o->ib_port, o->ib_gid_index, &c->me.gid) == 0,
           RING_ERR_SYSTEM, "verbs: cannot read GID %d of %s port %d", o->ib_gid_index,
           o->ib_device, o->ib_port);
    /* Our half of the exchange goes out now; the peer's is read in connect(), after every
     * rank has opened both connections, so no rank waits on a neighbour that waits on it. */
    unsigned char msg[VB_WIRE_BYTES];
    vb_wire_encode(&c->me, msg);
    char why[200];
    VB_TRY(ring_sock_write_all(fd, msg, sizeof msg, ring_deadline_in(5000), -1, why, sizeof why) ==
               RING_OK,
           RING_ERR_PEER_CLOSED, "verbs: sending queue pair details to rank %d: %s", peer_rank,
           why);
    c->fd = fd;
    *out = c;
    return RING_OK;

release_conn:
    release(c);
    return st;
}

static ring_status vb_connect(ring_conn *c, int abort_fd, int64_t deadline_ns, char *err,
                              size_t errlen)
{
    unsigned char msg[VB_WIRE_BYTES];
    char why[200];
    ring_status st =
        ring_sock_read_all(c->fd, msg, sizeof msg, deadline_ns, abort_fd, why, sizeof why);
    if (st != RING_OK)
        return ring_errf(st, err, errlen,
                         "verbs: reading rank %d's queue pair details: %s (does it use the verbs "
                         "transport too?)",
                         c->peer, why);
    if (vb_wire_decode(msg, &c->them, why, sizeof why) != 0)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                         "verbs: rank %d sent bad queue pair details: %s", c->peer, why);
    const vb_local *t = &c->them;
    if (t->slots != VB_SLOTS || t->slot_bytes != VB_SLOT_BYTES || t->roce != c->me.roce)
        return ring_errf(
            RING_ERR_CONFIG, err, errlen,
            "verbs: rank %d runs %u slots of %u B on %s, this rank %u of %u B on %s (mixed builds "
            "or link layers)",
            c->peer, t->slots, t->slot_bytes, t->roce ? "RoCE" : "InfiniBand", VB_SLOTS,
            VB_SLOT_BYTES, c->me.roce ? "RoCE" : "InfiniBand");
    if (!t->roce && t->lid == 0)
        return ring_errf(RING_ERR_CONFIG, err, errlen,
                         "verbs: rank %d's InfiniBand port has no LID", c->peer);
    struct ibv_qp_attr a = {
        .qp_state = IBV_QPS_RTR,
        .path_mtu = (enum ibv_mtu)(t->mtu < c->me.mtu ? t->mtu : c->me.mtu),
        .dest_qp_num = t->qpn,
        .rq_psn = t->psn,
        .max_dest_rd_atomic = 1,
        .min_rnr_timer = 12,
        .ah_attr = {.dlid = t->lid, .sl = 0, .src_path_bits = 0, .port_num = (uint8_t)c->o.ib_port},
    };
    if (c->me.roce) { /* RoCE (v2 routes over UDP/IP): every packet carries a GRH */
        a.ah_attr.is_global = 1;
        a.ah_attr.grh.dgid = t->gid;
        a.ah_attr.grh.sgid_index = (uint8_t)c->o.ib_gid_index;
        a.ah_attr.grh.hop_limit = 64;
    }
    if (ibv_modify_qp(c->qp, &a,
                      IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                          IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER) != 0)
        return ring_errf(RING_ERR_SYSTEM, err, errlen,
                         "verbs: queue pair to rank %d: RTR failed: %s", c->peer, strerror(errno));
    /* timeout 14: 4.096 us << 14 = 67 ms per try, 7 retries: a dead peer is noticed in ~0.5 s.
     * rnr_retry stays finite: credits make receiver-not-ready impossible, so one is a failure. */
    struct ibv_qp_attr r = {.qp_state = IBV_QPS_RTS,
                            .timeout = 14,
                            .retry_cnt = 7,
                            .rnr_retry = 6,
                            .sq_psn = c->me.psn,
                            .max_rd_atomic = 1};
    if (ibv_modify_qp(c->qp, &r,
                      IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY |
                          IBV_QP_SQ_PSN | IBV_QP_MAX_QP_RD_ATOMIC) != 0)
        return ring_errf(RING_ERR_SYSTEM, err, errlen,
                         "verbs: queue pair to rank %d: RTS failed: %s", c->peer, strerror(errno));
    return RING_OK;
}

/* ------------------------------------------------------------------ completions */

/* A failed work completion as the transport contract's status. */
static ring_status wc_status(const ring_conn *c, const struct ibv_wc *wc, char *err, size_t errlen)
{
    ring_status st;
    const char *what;
    switch (wc->status) {
    case IBV_WC_RETRY_EXC_ERR:
    case IBV_WC_RNR_RETRY_EXC_ERR:
        st = RING_ERR_PEER_CLOSED;
        what = "stopped answering";
        break;
    case IBV_WC_WR_FLUSH_ERR:
        st = RING_ERR_PEER_CLOSED;
        what = "is unreachable (queue pair in error)";
        break;
    case IBV_WC_REM_ACCESS_ERR:
    case IBV_WC_REM_INV_REQ_ERR:
    case IBV_WC_REM_OP_ERR:
    case IBV_WC_LOC_PROT_ERR:
    case IBV_WC_LOC_LEN_ERR:
        st = RING_ERR_PROTOCOL;
        what = "refused an RDMA operation";
        break;
    default:
        st = RING_ERR_SYSTEM;
        what = "failed an RDMA operation";
        break;
    }
    return ring_errf(st, err, errlen, "rank %d %s: %s (%s)", c->peer, what,
                     ibv_wc_status_str(wc->status),
                     wc->wr_id == WR_DATA     ? "data write"
                     : wc->wr_id == WR_CREDIT ? "credit"
                                              : "receive");
}

/* Take every completion queued on c. A failed data write is fatal at once (its bytes
 * are lost); other failures are kept and reported when the connection is needed. */
static ring_status drain(ring_conn *c, char *err, size_t errlen)
{
    struct ibv_wc wc[32];
    for (;;) {
        int n = ibv_poll_cq(c->cq, 32, wc);
        if (n < 0) return ring_errf(RING_ERR_SYSTEM, err, errlen, "verbs: ibv_poll_cq failed");
        if (n == 0) return RING_OK;
        for (int i = 0; i < n; i++) {
            const struct ibv_wc *w = &wc[i];
            if (w->status != IBV_WC_SUCCESS) {
                if (w->wr_id == WR_DATA) return wc_status(c, w, err, errlen);
                if (!c->lost) c->lost = wc_status(c, w, c->lost_why, sizeof c->lost_why);
                continue;
            }
            if (w->wr_id == WR_DATA) {
                c->sent_done++;
            } else if (w->wr_id == WR_CREDIT) {
                c->credit_wrs--;
            } else {
                uint32_t imm = ntohl(w->imm_data);
                if (!(w->wc_flags & IBV_WC_WITH_IMM))
                    return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                                     "rank %d sent a message without immediate data", c->peer);
                if (imm & VB_CREDIT) {
                    uint64_t n_cred = imm & ~VB_CREDIT;
                    if (c->credits + n_cred > c->sent)
                        return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                                         "rank %d returned %llu credits for %llu outstanding slots",
                                         c->peer, (unsigned long long)n_cred,
                                         (unsigned long long)(c->sent - c->credits));
                    c->credits += n_cred;
                } else {
                    if (imm == 0 || imm > VB_SLOT_BYTES || c->arrived - c->consumed >= VB_SLOTS)
                        return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                                         "rank %d wrote %u bytes with %llu slots unread (overrun)",
                                         c->peer, imm,
                                         (unsigned long long)(c->arrived - c->consumed));
                    c->arrived_len[c->arrived % VB_SLOTS] = imm;
                    c->arrived++;
                }
                if (post_recv_wr(c) != RING_OK && !c->lost) /* a QP in error: reported on need */
                    c->lost = ring_errf(RING_ERR_PEER_CLOSED, c->lost_why, sizeof c->lost_why,
                                        "verbs: re-posting a receive for rank %d failed", c->peer);
            }
        }
    }
}

/* ------------------------------------------------------------------ data path */

static ring_status enqueue(vb_queue *q, const void *buf, size_t len)
{
    if (q->tail - q->head == VB_QUEUE) return RING_ERR_INVALID_ARG;
    q->ops[q->tail % VB_QUEUE] = (vb_op){.buf = (unsigned char *)buf, .len = len, .done = 0};
    q->tail++;
    return RING_OK;
}

static ring_status vb_post_send(ring_conn *c, const void *buf, size_t len)
{
    return enqueue(&c->tx, buf, len);
}
static ring_status vb_post_recv(ring_conn *c, void *buf, size_t len)
{
    return enqueue(&c->rx, buf, len);
}
static int vb_pending_sends(const ring_conn *c)
{
    return (int)(c->tx.tail - c->tx.head);
}
static int vb_pending_recvs(const ring_conn *c)
{
    return (int)(c->rx.tail - c->rx.head);
}

/* Pack queued sends into free slots and write them; a send completes once copied. */
static ring_status push(ring_conn *c, int *completed, char *err, size_t errlen)
{
    vb_queue *q = &c->tx;
    while (q->head != q->tail) {
        if (c->sent - c->credits >= VB_SLOTS || c->sent - c->sent_done >= VB_SLOTS) break;
        unsigned char *slot = send_slot(c, c->sent);
        size_t fill = 0;
        while (q->head != q->tail && fill < VB_SLOT_BYTES) {
            vb_op *op = &q->ops[q->head % VB_QUEUE];
            size_t take = op->len - op->done;
            if (take > VB_SLOT_BYTES - fill) take = VB_SLOT_BYTES - fill;
            memcpy(slot + fill, op->buf + op->done, take);
            op->done += take;
            fill += take;
            if (op->done < op->len) break;
            q->head++;
            (*completed)++;
        }
        if (fill == 0) continue; /* only empty sends: done without a write */
        struct ibv_sge sge = {
            .addr = (uint64_t)(uintptr_t)slot, .length = (uint32_t)fill, .lkey = c->mr->lkey};
        struct ibv_send_wr wr = {.wr_id = WR_DATA,
                                 .sg_list = &sge,
                                 .num_sge = 1,
                                 .opcode = IBV_WR_RDMA_WRITE_WITH_IMM,
                                 .send_flags = IBV_SEND_SIGNALED |
                                               (fill <= c->max_inline ? IBV_SEND_INLINE : 0),
                                 .imm_data = htonl((uint32_t)fill)},
                           *bad;
        wr.wr.rdma.remote_addr = c->them.addr + (c->sent % VB_SLOTS) * VB_SLOT_BYTES;
        wr.wr.rdma.rkey = c->them.rkey;
        int e = ibv_post_send(c->qp, &wr, &bad);
        if (e)
            return ring_errf(RING_ERR_SYSTEM, err, errlen,
                             "verbs: posting a write to rank %d failed: %s", c->peer, strerror(e));
        c->sent++;
    }
    return RING_OK;
}

/* Copy arrived slots into posted receives, in order. */
static int pull(ring_conn *c)
{
    vb_queue *q = &c->rx;
    int completed = 0;
    while (q->head != q->tail) {
        vb_op *op = &q->ops[q->head % VB_QUEUE];
        if (op->done == op->len) {
            q->head++;
            completed++;
            continue;
        }
        if (c->consumed == c->arrived) break;
        uint32_t have = c->arrived_len[c->consumed % VB_SLOTS];
        size_t take = have - c->head_off;
        if (take > op->len - op->done) take = op->len - op->done;
        memcpy(op->buf + op->done, recv_slot(c, c->consumed) + c->head_off, take);
        op->done += take;
        c->head_off += take;
        if (c->head_off == have) {
            c->consumed++;
            c->head_off = 0;
        }
    }
    return completed;
}

/* Hand read slots back. At most VB_SLOTS credit messages can be unreceived at the peer
 * (each frees at least one of its VB_SLOTS), which its pre-posted receives cover. */
static void give_credits(ring_conn *c)
{
    while (!c->lost && c->consumed > c->returned && c->credit_wrs < VB_SLOTS) {
        uint32_t n = (uint32_t)(c->consumed - c->returned);
        struct ibv_send_wr wr = {.wr_id = WR_CREDIT,
                                 .num_sge = 0,
                                 .opcode = IBV_WR_SEND_WITH_IMM,
                                 .send_flags = IBV_SEND_SIGNALED,
                                 .imm_data = htonl(VB_CREDIT | n)},
                           *bad;
        int e = ibv_post_send(c->qp, &wr, &bad);
        if (e) {
            c->lost =
                ring_errf(RING_ERR_SYSTEM, c->lost_why, sizeof c->lost_why,
                          "verbs: posting credits to rank %d failed: %s", c->peer, strerror(e));
            return;
        }
        c->returned += n;
        c->credit_wrs++;
    }
}

/* The bootstrap socket is silent after set-up: readable means EOF (the peer is gone). */
static ring_status check_socket(ring_conn *c, char *err, size_t errlen)
{
    char b;
    ssize_t n = recv(c->fd, &b, 1, MSG_DONTWAIT);
    if (n > 0)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                         "rank %d sent bytes on its idle bootstrap connection", c->peer);
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) c->peer_gone = 1;
    return RING_OK;
}

/* The error of a connection that has work waiting and cannot make progress, if any. */
static ring_status stuck(const ring_conn *c, char *err, size_t errlen)
{
    if (c->lost) return ring_errf(c->lost, err, errlen, "%s", c->lost_why);
    if (c->peer_gone)
        return ring_errf(RING_ERR_PEER_CLOSED, err, errlen,
                         "rank %d closed its connection mid-collective", c->peer);
    return RING_OK;
}

static ring_status vb_progress(ring_conn *tx, ring_conn *rx, int abort_fd, int64_t deadline_ns,
                               int *sends, int *recvs, char *err, size_t errlen)
{
    ring_conn *cs[2];
    int nc = 0;
    if (tx) cs[nc++] = tx;
    if (rx && rx != tx) cs[nc++] = rx;
    ring_status st;
    *sends = *recvs = 0;
    for (;;) {
        for (int i = 0; i < nc; i++)
            if ((st = drain(cs[i], err, errlen)) != RING_OK) return st;
        if (rx) {
            *recvs += pull(rx);
            give_credits(rx);
        }
        if (tx && (st = push(tx, sends, err, errlen)) != RING_OK) return st;
        if (*sends || *recvs) return RING_OK;
        int want_tx = tx && tx->tx.head != tx->tx.tail;
        int want_rx = rx && rx->rx.head != rx->rx.tail;
        if (!want_tx && !want_rx) return RING_OK;
        if (want_rx && (st = stuck(rx, err, errlen)) != RING_OK) return st;
        if (want_tx && (st = stuck(tx, err, errlen)) != RING_OK) return st;

        /* Ask for an event, then look once more: a completion between the last poll and
         * the request would otherwise raise no event. */
        int requested = 0;
        for (int i = 0; i < nc; i++) {
            if (cs[i]->armed) continue;
            if (ibv_req_notify_cq(cs[i]->cq, 0) != 0)
                return ring_errf(RING_ERR_SYSTEM, err, errlen, "verbs: ibv_req_notify_cq failed");
            cs[i]->armed = requested = 1;
        }
        if (requested) continue;

        int ms = rc_ms_left(deadline_ns);
        if (ms == 0)
            return ring_errf(RING_ERR_TIMEOUT, err, errlen, "no progress from rank %d%s%s",
                             want_rx ? rx->peer : tx->peer, want_rx ? " (receiving)" : "",
                             want_tx && !want_rx ? " (sending)" : "");
        struct pollfd p[5];
        int np = 0;
        p[np++] = (struct pollfd){.fd = abort_fd, .events = POLLIN};
        for (int i = 0; i < nc; i++) {
            p[np++] = (struct pollfd){.fd = cs[i]->ch->fd, .events = POLLIN};
            p[np++] = (struct pollfd){.fd = cs[i]->peer_gone ? -1 : cs[i]->fd,
                                      .events = POLLIN | POLLRDHUP};
        }
        int r = poll(p, (nfds_t)np, ms);
        if (r < 0 && errno != EINTR)
            return ring_errf(RING_ERR_SYSTEM, err, errlen, "poll: %s", strerror(errno));
        if (r <= 0) continue;
        if (p[0].revents & POLLIN) return ring_errf(RING_ERR_ABORTED, err, errlen, "aborted");
        for (int i = 0; i < nc; i++) {
            ring_conn *c = cs[i];
            if (p[1 + 2 * i].revents & POLLIN) {
                struct ibv_cq *cq;
                void *ctx;
                if (ibv_get_cq_event(c->ch, &cq, &ctx) == 0) {
                    ibv_ack_cq_events(cq, 1);
                    c->armed = 0;
                }
            }
            if (p[2 + 2 * i].revents && (st = check_socket(c, err, errlen)) != RING_OK) return st;
        }
    }
}

/* Let written slots land before the queue pair goes: the peer may still be reading
 * them. Bounded, and skipped when the connection already failed. */
static void settle(ring_conn *c)
{
    char why[200];
    int64_t deadline = ring_deadline_in(VB_CLOSE_WAIT_MS);
    while (!c->lost && !c->peer_gone && c->sent_done < c->sent) {
        if (drain(c, why, sizeof why) != RING_OK || c->sent_done == c->sent) return;
        if (!c->armed) {
            if (ibv_req_notify_cq(c->cq, 0) != 0) return;
            c->armed = 1;
            continue;
        }
        int ms = rc_ms_left(deadline);
        if (ms == 0) return;
        struct pollfd p = {.fd = c->ch->fd, .events = POLLIN};
        if (poll(&p, 1, ms) > 0) {
            struct ibv_cq *cq;
            void *ctx;
            if (ibv_get_cq_event(c->ch, &cq, &ctx) == 0) {
                ibv_ack_cq_events(cq, 1);
                c->armed = 0;
            }
        }
    }
}

static void vb_close(ring_conn *c)
{
    if (!c) return;
    settle(c);
    release(c);
}

const ring_transport ring_transport_verbs = {
    .name = "verbs",
    .open = vb_open,
    .connect = vb_connect,
    .post_send = vb_post_send,
    .post_recv = vb_post_recv,
    .progress = vb_progress,
    .pending_sends = vb_pending_sends,
    .pending_recvs = vb_pending_recvs,
    .close = vb_close,
};
