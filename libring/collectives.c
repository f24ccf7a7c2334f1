/* SPDX-License-Identifier: MIT */
/* Ring collectives as schedules of steps, run by one pipelined engine.
 *
 * A collective is a list of steps. In each step a rank sends one chunk to its right
 * neighbour and receives one chunk from its left. Chunks move in segments; a segment
 * received in step t is reduced (or stored) and then forwarded in step t+1 while
 * later segments are still on the wire, so sending, receiving and reducing overlap.
 * Received segments that must be reduced land in staging slots (depth of them);
 * all-gather segments land directly in the user's buffer, or, where the right neighbour
 * reads our slots in place (shm), pass through the slots too and are copied out once. */
#include "reduce.h"
#include "ring_private.h"
#include "wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { SRC_NONE, SRC_OWN, SRC_SLOT, SRC_OUT };
enum { DST_NONE, DST_SLOT, DST_FINAL, DST_DIRECT, DST_COPY };
enum { KIND_ALLREDUCE = 1, KIND_REDUCE_SCATTER, KIND_ALLGATHER, KIND_BROADCAST, KIND_BARRIER };

static const char *const collective_names[] = {"?",         "allreduce", "reduce_scatter",
                                               "allgather", "broadcast", "barrier"};

typedef struct step {
    int src;                 /* SRC_*: where the sent chunk lives */
    const unsigned char *sp; /* SRC_OWN, SRC_OUT: the chunk */
    size_t sbytes;
    int dep;           /* receive step that must finish a segment before we send it; -1 none */
    int dst;           /* DST_*; DST_COPY: copied out of the staging slot to rp */
    int keep;          /* DST_FINAL, DST_COPY: the segment stays in a slot for the next send */
    unsigned char *rp; /* DST_FINAL, DST_DIRECT, DST_COPY: where the chunk ends */
    const unsigned char *lp; /* DST_SLOT, DST_FINAL: our own operand */
    size_t rbytes;
} step;

#define MAX_STEPS 64 /* schedules longer than this live on the heap */

/* A position in a stream of units. Units go group-major: segments [gG, gG+G) of every
 * step, then the next G segments of every step (G = run.group). A staging slot is held
 * only until the same segment's next step, so at most G slots wait on the wire whatever
 * the chunk size (deadlock-free while G < depth). G = 1 is NCCL's piece-major order, but
 * then a link carries one segment per hop: a send of step t waits for the same segment
 * of step t-1 to come in and be reduced. G segments per step keep the link busy while
 * the next hop's first segment is reduced and forwarded. */
typedef struct cursor {
    int t;
    size_t k;
    int end;
} cursor;

typedef struct run {
    ring_comm *c;
    step *steps;
    int nsteps;
    ring_dtype type;
    ring_op op;
    size_t esz, seg, maxseg;
    size_t group;    /* segments of one step sent back to back (1 .. depth-1) */
    int scale_final; /* RING_AVG: divide the finished chunk by size */
    int stream;      /* copies out to rp bypass the cache (ring_copy_out) */
    cursor rpost, rdone, spost, sdone;
    /* Staging slots. free_slots is a stack; the others are FIFOs. */
    int free_slots[RING_MAX_DEPTH], nfree;
    int rslot[RING_MAX_DEPTH * 2];        /* slot of each posted, unfinished receive */
    const void *rsrc[RING_MAX_DEPTH * 2]; /* where its payload is: the slot, or the peer's */
    unsigned rslot_head, rslot_tail;
    int held[RING_MAX_DEPTH * 2]; /* slots holding a reduced segment, waiting to be sent */
    unsigned held_head, held_tail;
    int sslot[RING_MAX_DEPTH * 2]; /* slot of each posted, unfinished send, or -1 */
    unsigned sslot_head, sslot_tail;
    /* Wire integrity: a header ahead of every segment, at the same FIFO index as the
     * segment's slot entry; each segment is two transport operations. */
    const ring_op_header *hdr;
    unsigned char shdr[RING_MAX_DEPTH * 2][RING_SEG_HEADER_BYTES];
    unsigned char rhdr[RING_MAX_DEPTH * 2][RING_SEG_HEADER_BYTES];
    int rhalf, shalf; /* 1: the segment's header is done, its payload is next */
    uint32_t seg_crc; /* CRC32C announced by the header of the segment being received */
} run;

#define FIFO_N (RING_MAX_DEPTH * 2)

static size_t nseg(size_t bytes, size_t seg)
{
    return (bytes + seg - 1) / seg;
}

static size_t step_units(const run *R, int t, int recv)
{
    return nseg(recv ? R->steps[t].rbytes : R->steps[t].sbytes, R->seg);
}

/* Next step of the cursor's group; past the last step, the first step of the next group. */
static void cur_step(const run *R, cursor *c)
{
    if (++c->t == R->nsteps) {
        c->t = 0;
        c->k += R->group;
        if (c->k >= R->maxseg) c->end = 1;
    }
}

/* Move to the first existing unit at or after the cursor. */
static void cur_settle(const run *R, cursor *c, int recv)
{
    while (!c->end && c->k >= step_units(R, c->t, recv)) {
        c->k -= c->k % R->group;
        cur_step(R, c);
    }
}

static void cur_init(const run *R, cursor *c, int recv)
{
    *c = (cursor){.t = 0, .k = 0, .end = R->maxseg == 0};
    cur_settle(R, c, recv);
}

static void cur_next(const run *R, cursor *c, int recv)
{
    if (++c->k % R->group == 0) {
        c->k -= R->group;
        cur_step(R, c);
    }
    cur_settle(R, c, recv);
}

/* Has the receive of (t, k) been finished? Order: group, then step, then segment. */
static int recv_done(const run *R, int t, size_t k)
{
    const cursor *d = &R->rdone;
    if (d->end) return 1;
    size_t dg = d->k / R->group, g = k / R->group;
    if (dg != g) return dg > g;
    if (d->t != t) return d->t > t;
    return d->k > k;
}

static unsigned char *slot_ptr(const run *R, int slot)
{
    return R->c->slots + (size_t)slot * R->seg;
}

static size_t seg_len(const run *R, size_t bytes, size_t k)
{
    size_t off = k * R->seg;
    return bytes - off < R->seg ? bytes - off : R->seg;
}

/* The header of segment k of step t as this rank sends it (with its CRC32C if enabled). */
static void ring_seg_encode_for(const run *R, int t, size_t k, const unsigned char *payload,
                                size_t len, unsigned char *out)
{
    const ring_op_header *h = R->hdr;
    ring_seg_header sh = {.coll = h->coll,
                          .dtype = h->dtype,
                          .op = h->op,
                          .flags = R->c->set.checksum ? RING_SEG_FLAG_CRC : 0,
                          .seq = (uint32_t)h->seq,
                          .step = (uint16_t)t,
                          .count = h->count,
                          .offset = k * R->seg,
                          .len = (uint32_t)len};
    if (R->c->set.checksum) sh.crc = ring_crc32c(0, payload, len);
    ring_seg_encode(&sh, out);
}

static ring_status post_recvs(run *R)
{
    ring_comm *c = R->c;
    while (!R->rpost.end && c->tp->pending_recvs(c->left) < 2 * c->set.depth) {
        const step *s = &R->steps[R->rpost.t];
        size_t k = R->rpost.k;
        unsigned char *buf;
        int slot = -1;
        if (s->dst == DST_DIRECT) {
            buf = s->rp + k * R->seg;
        } else {
            if (R->nfree == 0) break;
            slot = R->free_slots[--R->nfree];
            buf = slot_ptr(R, slot);
        }
        ring_status st =
            c->tp->post_recv(c->left, R->rhdr[R->rslot_tail % FIFO_N], RING_SEG_HEADER_BYTES);
        /* a segment to reduce may stay in the peer's staging: no copy before the reduction */
        const void **src = &R->rsrc[R->rslot_tail % FIFO_N];
        size_t len = seg_len(R, s->rbytes, k);
        *src = buf;
        if (st == RING_OK)
            st = slot >= 0 && c->tp->post_recv_ref ? c->tp->post_recv_ref(c->left, buf, len, src)
                                                   : c->tp->post_recv(c->left, buf, len);
        if (st != RING_OK) return st;
        R->rslot[R->rslot_tail++ % FIFO_N] = slot;
        cur_next(R, &R->rpost, 1);
    }
    return RING_OK;
}

static ring_status post_sends(run *R)
{
    ring_comm *c = R->c;
    while (!R->spost.end && c->tp->pending_sends(c->right) < 2 * c->set.depth) {
        const step *s = &R->steps[R->spost.t];
        size_t k = R->spost.k;
        if (s->dep >= 0 && !recv_done(R, s->dep, k)) break; /* not reduced/received yet */
        const unsigned char *buf;
        int slot = -1;
        if (s->src == SRC_SLOT) {
            slot = R->held[R->held_head++ % FIFO_N];
            buf = slot_ptr(R, slot);
        } else {
            buf = s->sp + k * R->seg;
        }
        size_t len = seg_len(R, s->sbytes, k);
        unsigned char *hb = R->shdr[R->sslot_tail % FIFO_N];
        ring_seg_encode_for(R, R->spost.t, k, buf, len, hb);
        ring_status st = c->tp->post_send(c->right, hb, RING_SEG_HEADER_BYTES);
        if (st == RING_OK) st = c->tp->post_send(c->right, buf, len);
        if (st != RING_OK) return st;
        R->sslot[R->sslot_tail++ % FIFO_N] = slot;
        cur_next(R, &R->spost, 0);
    }
    return RING_OK;
}

/* The header of the segment at the receive cursor arrived: is it what we expect? */
static ring_status check_seg(run *R, char *why, size_t cap)
{
    const step *s = &R->steps[R->rdone.t];
    const ring_op_header *m = R->hdr;
    size_t k = R->rdone.k, len = seg_len(R, s->rbytes, k);
    ring_seg_header h;
    ring_status st =
        ring_seg_decode(R->rhdr[R->rslot_head % FIFO_N], RING_SEG_HEADER_BYTES, &h, why, cap);
    if (st != RING_OK) return st;
    if (h.seq != (uint32_t)m->seq || h.coll != m->coll || h.dtype != m->dtype || h.op != m->op ||
        h.count != m->count || h.step != (uint16_t)R->rdone.t || h.offset != k * R->seg ||
        h.len != len) {
        snprintf(why, cap,
                 "segment out of step: left neighbour sent #%u coll %u step %u offset %llu len %u "
                 "count %llu, "
                 "expected #%u coll %u step %d offset %zu len %zu count %llu",
                 h.seq, h.coll, h.step, (unsigned long long)h.offset, h.len,
                 (unsigned long long)h.count, (uint32_t)m->seq, m->coll, R->rdone.t, k * R->seg,
                 len, (unsigned long long)m->count);
        return RING_ERR_INVALID_USAGE;
    }
    if ((h.flags & RING_SEG_FLAG_CRC) != (R->c->set.checksum ? RING_SEG_FLAG_CRC : 0)) {
        snprintf(
            why, cap,
            "left neighbour %s checksums and this rank %s (set RING_CHECKSUM alike on every rank)",
            h.flags & RING_SEG_FLAG_CRC ? "sends" : "does not send",
            R->c->set.checksum ? "expects them" : "does not");
        return RING_ERR_INVALID_USAGE;
    }
    R->seg_crc = h.crc;
    return RING_OK;
}

/* The payload at the receive cursor arrived: with checksums on, is it intact? */
static ring_status check_payload(run *R, char *why, size_t cap)
{
    if (!R->c->set.checksum) return RING_OK;
    const step *s = &R->steps[R->rdone.t];
    size_t k = R->rdone.k, len = seg_len(R, s->rbytes, k);
    const unsigned char *p = R->rsrc[R->rslot_head % FIFO_N];
    uint32_t crc = ring_crc32c(0, p, len);
    if (crc == R->seg_crc) return RING_OK;
    snprintf(
        why, cap,
        "corrupted segment from the left neighbour: step %d offset %zu len %zu, CRC32C 0x%08x, "
        "sent 0x%08x",
        R->rdone.t, k * R->seg, len, crc, R->seg_crc);
    return RING_ERR_PROTOCOL;
}

/* A receive finished: reduce or keep it, in stream order. */
static void finish_recv(run *R)
{
    const step *s = &R->steps[R->rdone.t];
    size_t off = R->rdone.k * R->seg;
    size_t n = seg_len(R, s->rbytes, R->rdone.k) / R->esz;
    const void *src = R->rsrc[R->rslot_head % FIFO_N];
    int slot = R->rslot[R->rslot_head++ % FIFO_N];
    if (s->dst == DST_SLOT) {
        unsigned char *p = slot_ptr(R, slot);
        ring_reduce(p, s->lp + off, src, n, R->type, R->op);
        R->held[R->held_tail++ % FIFO_N] = slot;
    } else if (s->dst == DST_FINAL && s->keep) {
        /* The finished segment is sent on from the slot, so the result is only written, once;
         * a block at a time, so that the copy out reads it from L1. */
        unsigned char *p = slot_ptr(R, slot);
        const unsigned char *q = src;
        size_t blk = (16u << 10) / R->esz;
        for (size_t i = 0; i < n; i += blk) {
            size_t m = n - i < blk ? n - i : blk, at = i * R->esz;
            ring_reduce(p + at, s->lp + off + at, q + at, m, R->type, R->op);
            if (R->scale_final) ring_reduce_scale(p + at, m, R->type, R->c->size);
            ring_copy_out(s->rp + off + at, NULL, p + at, m * R->esz, R->stream);
        }
        R->held[R->held_tail++ % FIFO_N] = slot;
    } else if (s->dst == DST_COPY) {
        /* one read of the left's slot: into the result, and into ours when sent on */
        unsigned char *p = slot_ptr(R, slot);
        ring_copy_out(s->rp + off, s->keep ? p : NULL, src, n * R->esz, R->stream);
        if (s->keep)
            R->held[R->held_tail++ % FIFO_N] = slot;
        else
            R->free_slots[R->nfree++] = slot;
    } else if (s->dst == DST_FINAL) {
        ring_reduce(s->rp + off, s->lp + off, src, n, R->type, R->op);
        if (R->scale_final) ring_reduce_scale(s->rp + off, n, R->type, R->c->size);
        R->free_slots[R->nfree++] = slot;
    }
    if (slot >= 0 && src != slot_ptr(R, slot)) R->c->tp->release(R->c->left);
    cur_next(R, &R->rdone, 1);
}

static void finish_send(run *R)
{
    int slot = R->sslot[R->sslot_head++ % FIFO_N];
    if (slot >= 0) R->free_slots[R->nfree++] = slot;
    cur_next(R, &R->sdone, 0);
}

/* After a fatal error the data connections are closed, so that the neighbours fail at
 * once instead of at their deadline, and the failure travels around the ring. */
static ring_status fatal(ring_comm *c, ring_status st, const char *detail, const ring_op_header *h)
{
    char why[300];
    snprintf(why, sizeof why, "%s", detail);
    st = ring_ctrl_settle(c, st, why, sizeof why); /* the root cause, from whichever rank */
    ring_fail(c, st, "%s #%llu: %s; destroy the communicator and rebuild it on every rank",
              collective_names[h->coll], (unsigned long long)h->seq, why);
    c->failed = st;
    if (c->right) c->tp->close(c->right);
    if (c->left) c->tp->close(c->left);
    c->right = c->left = NULL;
    if (c->slots_tp) c->slots = NULL; /* they went with the right connection */
    return st;
}

static ring_status check_header(ring_comm *c, const unsigned char *b, const ring_op_header *mine)
{
    ring_op_header h;
    ring_op_header_decode(b, &h);
    char why[300];
    if (h.magic != RING_WIRE_MAGIC) {
        snprintf(why, sizeof why, "left neighbour sent garbage (magic 0x%08x)", h.magic);
        return fatal(c, RING_ERR_PROTOCOL, why, mine);
    }
    if (h.seq != mine->seq || h.coll != mine->coll || h.dtype != mine->dtype || h.op != mine->op ||
        h.count != mine->count || h.root != mine->root) {
        const char *ln = h.coll < sizeof collective_names / sizeof *collective_names
                             ? collective_names[h.coll]
                             : "?";
        const char *lt = ring_dtype_name((ring_dtype)h.dtype), *lo = ring_op_name((ring_op)h.op);
        snprintf(
            why, sizeof why,
            "ranks disagree: left neighbour called %s #%llu count %llu %s %s root %d; this rank "
            "called count %llu %s %s root %d",
            ln, (unsigned long long)h.seq, (unsigned long long)h.count, lt ? lt : "?",
            lo ? lo : "?", h.root, (unsigned long long)mine->count,
            ring_dtype_name((ring_dtype)mine->dtype), ring_op_name((ring_op)mine->op), mine->root);
        return fatal(c, RING_ERR_INVALID_USAGE, why, mine);
    }
    return RING_OK;
}

/* Run a schedule to completion: the op header first, then every step's segments. */
static ring_status execute(run *R, const ring_op_header *hdr)
{
    ring_comm *c = R->c;
    ring_status st;
    unsigned char hout[RING_OP_HEADER_BYTES], hin[RING_OP_HEADER_BYTES];
    ring_op_header_encode(hdr, hout);
    R->nfree = 0;
    for (int i = c->set.depth - 1; i >= 0; i--)
        R->free_slots[R->nfree++] = i;
    if ((st = c->tp->post_send(c->right, hout, sizeof hout)) != RING_OK ||
        (st = c->tp->post_recv(c->left, hin, sizeof hin)) != RING_OK)
        return fatal(c, st, "cannot queue the header", hdr);
    int hdr_in = 0, hdr_out = 0;
    int64_t deadline = ring_deadline_in(c->set.op_timeout_ms);
    while (!hdr_in || !hdr_out || !R->rdone.end || !R->sdone.end) {
        if (atomic_load(&c->aborted)) return fatal(c, RING_ERR_ABORTED, "aborted", hdr);
        /* Data receives queue behind the header, so only post them once it is checked. */
        if (hdr_in && (st = post_recvs(R)) != RING_OK)
            return fatal(c, st, "cannot queue a receive", hdr);
        if ((st = post_sends(R)) != RING_OK) return fatal(c, st, "cannot queue a send", hdr);
        int ns = 0, nr = 0;
        char why[256];
        st = c->tp->progress(c->right, c->left, c->abort_fd, deadline, &ns, &nr, why, sizeof why);
        if (st != RING_OK) return fatal(c, st, why, hdr);
        if (ns || nr) deadline = ring_deadline_in(c->set.op_timeout_ms);
        for (; nr > 0; nr--) {
            if (!hdr_in) {
                hdr_in = 1;
                if ((st = check_header(c, hin, hdr)) != RING_OK) return st;
            } else if (!R->rhalf) {
                R->rhalf = 1;
                if ((st = check_seg(R, why, sizeof why)) != RING_OK) return fatal(c, st, why, hdr);
            } else {
                R->rhalf = 0;
                if ((st = check_payload(R, why, sizeof why)) != RING_OK)
                    return fatal(c, st, why, hdr);
                finish_recv(R);
            }
        }
        for (; ns > 0; ns--) {
            if (!hdr_out)
                hdr_out = 1;
            else if (!R->shalf)
                R->shalf = 1;
            else {
                R->shalf = 0;
                finish_send(R);
            }
        }
    }
    return RING_OK;
}

/* Common entry checks; fills the header. */
static ring_status begin(ring_comm *c, int coll, size_t count, ring_dtype type, ring_op op,
                         int root, ring_op_header *h)
{
    if (!c) return RING_ERR_INVALID_ARG;
    if (c->failed) {
        snprintf(c->err, sizeof c->err,
                 "this communicator failed earlier (%s): destroy it and rebuild it on every rank",
                 ring_status_str(c->failed));
        return RING_ERR_FAILED;
    }
    if (atomic_load(&c->aborted)) {
        c->failed = RING_ERR_ABORTED;
        return ring_fail(c, RING_ERR_ABORTED, "%s: communicator aborted", collective_names[coll]);
    }
    char why[256];
    ring_status remote = ring_ctrl_verdict(c, why, sizeof why);
    if (remote) {
        c->failed = remote; /* another rank failed since our last call */
        return ring_fail(c, remote, "%s: %s; destroy the communicator and rebuild it on every rank",
                         collective_names[coll], why);
    }
    if (!ring_dtype_size(type))
        return ring_fail(c, RING_ERR_INVALID_ARG, "%s: invalid data type %d",
                         collective_names[coll], (int)type);
    if (!ring_op_valid_for(op, type))
        return ring_fail(c, RING_ERR_INVALID_ARG, "%s: op %s is not defined for %s",
                         collective_names[coll], ring_op_name(op) ? ring_op_name(op) : "?",
                         ring_dtype_name(type));
    if (root < 0 || root >= c->size)
        return ring_fail(c, RING_ERR_INVALID_ARG, "%s: root %d is outside 0..%d",
                         collective_names[coll], root, c->size - 1);
    if (count > ((size_t)1 << 62) / ring_dtype_size(type))
        return ring_fail(c, RING_ERR_INVALID_ARG, "%s: count %zu is too large",
                         collective_names[coll], count);
    *h = (ring_op_header){.magic = RING_WIRE_MAGIC,
                          .coll = (uint8_t)coll,
                          .dtype = (uint8_t)type,
                          .op = (uint8_t)op,
                          .seq = ++c->seq,
                          .count = count,
                          .root = root};
    return RING_OK;
}

/* Set up the run's cursors from its steps and execute. */
static ring_status run_steps(ring_comm *c, step *steps, int nsteps, ring_dtype type, ring_op op,
                             int scale_final, int stream, const ring_op_header *h)
{
    run R = {.c = c,
             .steps = steps,
             .nsteps = nsteps,
             .type = type,
             .op = op,
             .esz = ring_dtype_size(type),
             .seg = c->set.segment_bytes,
             .scale_final = scale_final,
             .stream = stream,
             .group = c->set.step_group > 0 ? (size_t)c->set.step_group : 1};
    if (R.group >= (size_t)c->set.depth) R.group = c->set.depth > 1 ? (size_t)c->set.depth - 1 : 1;
    for (int t = 0; t < nsteps; t++) {
        size_t u = step_units(&R, t, 0), v = step_units(&R, t, 1);
        if (u > R.maxseg) R.maxseg = u;
        if (v > R.maxseg) R.maxseg = v;
    }
    /* The largest chunk of any step: the same on every rank (a rank's sends and receives
     * together cover every chunk), so both ends of a connection pick the same mode. */
    size_t chunk = 0;
    for (int t = 0; t < nsteps; t++) {
        if (steps[t].sbytes > chunk) chunk = steps[t].sbytes;
        if (steps[t].rbytes > chunk) chunk = steps[t].rbytes;
    }
    if (c->tp->begin) {
        c->tp->begin(c->right, chunk);
        c->tp->begin(c->left, chunk);
    }
    cur_init(&R, &R.rpost, 1);
    cur_init(&R, &R.rdone, 1);
    cur_init(&R, &R.spost, 0);
    cur_init(&R, &R.sdone, 0);
    R.hdr = h;
    ring_status st = execute(&R, h);
    if (stream) ring_copy_fence(); /* the result is in memory before the caller reads it */
    return st;
}

/* Chunk c of count elements split over n ranks: the first count % n chunks get one more. */
static void chunk(size_t count, int n, int c, size_t esz, size_t *off, size_t *len)
{
    size_t base = count / (size_t)n, rem = count % (size_t)n, uc = (size_t)c;
    *off = (uc * base + (uc < rem ? uc : rem)) * esz;
    *len = (base + (uc < rem)) * esz;
}

static int mod(int a, int n)
{
    return ((a % n) + n) % n;
}

static step *alloc_steps(ring_comm *c, int n, step *local, int cap)
{
    if (n <= cap) return local;
    step *s = calloc((size_t)n, sizeof *s);
    if (!s) ring_fail(c, RING_ERR_NOMEM, "out of memory for a schedule");
    return s;
}

/* Latency path: pass every rank's whole vector around the ring (size-1 steps), then
 * every rank reduces all of them in rank order, so results are bitwise identical. */
static ring_status allreduce_small(ring_comm *c, const void *sendbuf, void *recvbuf, size_t count,
                                   ring_dtype type, ring_op op, const ring_op_header *h)
{
    int n = c->size, r = c->rank;
    size_t bytes = count * ring_dtype_size(type);
    unsigned char *g = c->gather;
    memcpy(g + (size_t)r * bytes, sendbuf, bytes);
    step local[MAX_STEPS], *s = alloc_steps(c, n - 1, local, MAX_STEPS);
    if (!s) return RING_ERR_NOMEM;
    for (int t = 0; t < n - 1; t++) {
        s[t] = (step){.src = t == 0 ? SRC_OWN : SRC_OUT,
                      .sp = g + (size_t)mod(r - t, n) * bytes,
                      .sbytes = bytes,
                      .dep = t - 1,
                      .dst = DST_DIRECT,
                      .rp = g + (size_t)mod(r - t - 1, n) * bytes,
                      .rbytes = bytes};
    }
    ring_status st = run_steps(c, s, n - 1, type, op, 0, 0, h);
    if (s != local) free(s);
    if (st != RING_OK) return st;
    ring_reduce(recvbuf, g, g + bytes, count, type, op);
    for (int j = 2; j < n; j++)
        ring_reduce(recvbuf, recvbuf, g + (size_t)j * bytes, count, type, op);
    if (op == RING_AVG) ring_reduce_scale(recvbuf, count, type, n);
    return RING_OK;
}

ring_status ring_allreduce(ring_comm *c, const void *sendbuf, void *recvbuf, size_t count,
                           ring_dtype type, ring_op op)
{
    ring_op_header h;
    ring_status st = begin(c, KIND_ALLREDUCE, count, type, op, 0, &h);
    if (st != RING_OK) return st;
    size_t esz = ring_dtype_size(type), bytes = count * esz;
    if (count && (!sendbuf || !recvbuf))
        return ring_fail(c, RING_ERR_INVALID_ARG, "allreduce: NULL buffer");
    int n = c->size, r = c->rank;
    if (n == 1) {
        if (sendbuf != recvbuf && bytes) memmove(recvbuf, sendbuf, bytes);
        return RING_OK;
    }
    if (bytes <= c->set.small_bytes)
        return allreduce_small(c, sendbuf, recvbuf, count, type, op, &h);

    const unsigned char *sb = sendbuf;
    unsigned char *rb = recvbuf;
    /* Where the right neighbour reads our slots in place (shm), the all-gather goes through
     * them as well: a segment is forwarded from the slot it came in (in cache) and written to
     * the result once, never read back (streamed when large), where the neighbours copied it
     * from each other's result buffers, a system call and page pinning per segment. */
    int slots = c->slots_tp && c->set.shm_gather;
    int stream = slots && c->set.stream_bytes && bytes >= c->set.stream_bytes &&
                 (sendbuf != recvbuf || c->set.stream_in_place);
    step local[MAX_STEPS], *s = alloc_steps(c, 2 * (n - 1), local, MAX_STEPS);
    if (!s) return RING_ERR_NOMEM;
    for (int t = 0; t < n - 1; t++) { /* reduce-scatter: rank r ends owning chunk r */
        size_t so, sl, ro, rl;
        chunk(count, n, mod(r - t - 1, n), esz, &so, &sl);
        chunk(count, n, mod(r - t - 2, n), esz, &ro, &rl);
        s[t] = (step){.src = t == 0 ? SRC_OWN : SRC_SLOT,
                      .sp = sb + so,
                      .sbytes = sl,
                      .dep = t - 1,
                      .dst = t == n - 2 ? DST_FINAL : DST_SLOT,
                      .keep = slots && t == n - 2,
                      .rp = rb + ro,
                      .lp = sb + ro,
                      .rbytes = rl};
    }
    for (int u = 0; u < n - 1; u++) { /* all-gather of the finished chunks */
        size_t so, sl, ro, rl;
        chunk(count, n, mod(r - u, n), esz, &so, &sl);
        chunk(count, n, mod(r - u - 1, n), esz, &ro, &rl);
        s[n - 1 + u] = (step){.src = slots ? SRC_SLOT : SRC_OUT,
                              .sp = rb + so,
                              .sbytes = sl,
                              .dep = n - 2 + u,
                              .dst = slots ? DST_COPY : DST_DIRECT,
                              .keep = slots && u < n - 2,
                              .rp = rb + ro,
                              .rbytes = rl};
    }
    st = run_steps(c, s, 2 * (n - 1), type, op, op == RING_AVG, stream, &h);
    if (s != local) free(s);
    return st;
}

ring_status ring_reduce_scatter(ring_comm *c, const void *sendbuf, void *recvbuf, size_t recvcount,
                                ring_dtype type, ring_op op)
{
    ring_op_header h;
    ring_status st = begin(c, KIND_REDUCE_SCATTER, recvcount, type, op, 0, &h);
    if (st != RING_OK) return st;
    size_t esz = ring_dtype_size(type), bytes = recvcount * esz;
    if (recvcount && (!sendbuf || !recvbuf))
        return ring_fail(c, RING_ERR_INVALID_ARG, "reduce_scatter: NULL buffer");
    int n = c->size, r = c->rank;
    const unsigned char *sb = sendbuf;
    if (n == 1) {
        if (sendbuf != recvbuf && bytes) memmove(recvbuf, sendbuf, bytes);
        return RING_OK;
    }
    step local[MAX_STEPS], *s = alloc_steps(c, n - 1, local, MAX_STEPS);
    if (!s) return RING_ERR_NOMEM;
    for (int t = 0; t < n - 1; t++) {
        const unsigned char *sp = sb + (size_t)mod(r - t - 1, n) * bytes;
        const unsigned char *lp = sb + (size_t)mod(r - t - 2, n) * bytes;
        s[t] = (step){.src = t == 0 ? SRC_OWN : SRC_SLOT,
                      .sp = sp,
                      .sbytes = bytes,
                      .dep = t - 1,
                      .dst = t == n - 2 ? DST_FINAL : DST_SLOT,
                      .rp = recvbuf,
                      .lp = lp,
                      .rbytes = bytes};
    }
    st = run_steps(c, s, n - 1, type, op, op == RING_AVG, 0, &h);
    if (s != local) free(s);
    return st;
}

ring_status ring_allgather(ring_comm *c, const void *sendbuf, void *recvbuf, size_t sendcount,
                           ring_dtype type)
{
    ring_op_header h;
    ring_status st = begin(c, KIND_ALLGATHER, sendcount, type, RING_SUM, 0, &h);
    if (st != RING_OK) return st;
    size_t bytes = sendcount * ring_dtype_size(type);
    if (sendcount && (!sendbuf || !recvbuf))
        return ring_fail(c, RING_ERR_INVALID_ARG, "allgather: NULL buffer");
    int n = c->size, r = c->rank;
    unsigned char *rb = recvbuf;
    if (bytes && sendbuf != rb + (size_t)r * bytes) memmove(rb + (size_t)r * bytes, sendbuf, bytes);
    if (n == 1) return RING_OK;
    step local[MAX_STEPS], *s = alloc_steps(c, n - 1, local, MAX_STEPS);
    if (!s) return RING_ERR_NOMEM;
    for (int t = 0; t < n - 1; t++)
        s[t] = (step){.src = t == 0 ? SRC_OWN : SRC_OUT,
                      .sp = rb + (size_t)mod(r - t, n) * bytes,
                      .sbytes = bytes,
                      .dep = t - 1,
                      .dst = DST_DIRECT,
                      .rp = rb + (size_t)mod(r - t - 1, n) * bytes,
                      .rbytes = bytes};
    st = run_steps(c, s, n - 1, type, RING_SUM, 0, 0, &h);
    if (s != local) free(s);
    return st;
}

ring_status ring_broadcast(ring_comm *c, const void *sendbuf, void *recvbuf, size_t count,
                           ring_dtype type, int root)
{
    ring_op_header h;
    ring_status st = begin(c, KIND_BROADCAST, count, type, RING_SUM, root, &h);
    if (st != RING_OK) return st;
    size_t bytes = count * ring_dtype_size(type);
    int n = c->size, pos = mod(c->rank - root, n);
    if (count && (!recvbuf || (pos == 0 && !sendbuf)))
        return ring_fail(c, RING_ERR_INVALID_ARG, "broadcast: NULL buffer");
    if (pos == 0 && bytes && sendbuf != recvbuf) memmove(recvbuf, sendbuf, bytes);
    if (n == 1) return RING_OK;
    /* A pipelined chain root -> root+1 -> ... -> root-1: each rank forwards what it got. */
    step s = {.src = pos == n - 1 ? SRC_NONE : SRC_OUT,
              .sp = recvbuf,
              .sbytes = pos == n - 1 ? 0 : bytes,
              .dep = pos == 0 ? -1 : 0,
              .dst = pos == 0 ? DST_NONE : DST_DIRECT,
              .rp = recvbuf,
              .rbytes = pos == 0 ? 0 : bytes};
    return run_steps(c, &s, 1, type, RING_SUM, 0, 0, &h);
}

ring_status ring_barrier(ring_comm *c)
{
    ring_op_header h;
    ring_status st = begin(c, KIND_BARRIER, 1, RING_U8, RING_MAX, 0, &h);
    if (st != RING_OK || c->size == 1) return st;
    uint8_t in = 1, out = 0;
    /* Every rank's byte must travel around the whole ring before anyone returns. */
    return allreduce_small(c, &in, &out, 1, RING_U8, RING_MAX, &h);
}
