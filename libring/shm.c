/* SPDX-License-Identifier: MIT */
/* The shared-memory transport, for ranks on one host. Each connection's receiving side owns
 * a POSIX shared-memory segment that the sending side maps, and picks how bytes cross it:
 * - CMA (the default where the kernel allows it): the sender publishes each send's address
 *   and length in the segment, and the receiver copies the bytes straight from the sender's
 *   memory into its receive (process_vm_readv): one copy a hop;
 * - FIFO: the sender copies into a byte ring in the segment, the receiver copies out.
 * Either way on the caller's thread, with no system call while both sides keep up. The
 * socket the bootstrap made stays open: it carries the segments' names once, and afterwards
 * reads as ready only when the peer is gone.
 *
 * Waiting: spin for spin_us (looking at the abort fd, the peers' sockets and the deadline
 * every CHECK_NS), then sleep in futex_waitv on the words the peer bumps when it adds data
 * or frees space, SLICE_MS at most at a time. Segments are unlinked once the peer mapped them. */
#include "sock.h"
#include "tcp_io.h"
#include "transport.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/futex.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define SHM_FIFO_BYTES (2u << 20) /* per direction; a power of 2 */
#define SHM_PIECE (256u << 10)    /* bytes copied before the peer is told (pipelining) */
#define SLICE_MS 20      /* a sleep lasts at most this long: then the peers and the deadline */
#define CHECK_NS 1000000 /* while spinning, the abort fd, the peers and the deadline */
#define SHM_MAGIC 0x52494e4753484d32ull /* "RINGSHM2" */

/* How a connection moves bytes, the receiver's choice (written into its segment at connect,
 * before any collective: the master's GO waits for every rank's connect). */
enum { MODE_NONE, MODE_FIFO, MODE_CMA };
#define SHM_DESCS 256 /* CMA: send descriptors in flight, as many as a queue holds */
#define SHM_INLINE 48 /* CMA: sends this small travel in their descriptor (segment headers) */
/* CMA: a descriptor's len with this bit names bytes in the receiver's own segment (the data
 * area, at offset addr), where the sender keeps its staging slots (shm_staging): the receiver
 * reduces from there in place and hands the descriptor back once done (shm_release). */
#define DESC_REF (1ull << 63)

/* The head of a segment; the FIFO's bytes follow it. Each side's words on their own line.
 * FIFO mode: head and tail count bytes. CMA mode: they count descriptors, and the receiver
 * copies each send straight from the sender's buffer (process_vm_readv): one copy a hop
 * instead of two; the data area holds the sender's staging slots. */
typedef struct shm_fifo {
    uint64_t magic, size;
    _Atomic uint32_t mode;
    char pad0[44];
    _Atomic uint64_t head;     /* bytes or descriptors written (the sender) */
    _Atomic uint32_t data_seq; /* bumped after head moves: the receiver's futex word */
    _Atomic uint32_t rx_sleep; /* the receiver is asleep, or about to be */
    char pad1[48];
    _Atomic uint64_t tail;      /* bytes or descriptors read (the receiver) */
    _Atomic uint32_t space_seq; /* bumped after tail moves: the sender's futex word */
    _Atomic uint32_t tx_sleep;  /* the sender is asleep, or about to be */
    char pad2[48];
    struct {
        uint64_t addr, len;
        unsigned char inl[SHM_INLINE];
    } desc[SHM_DESCS];
    unsigned char data[];
} shm_fifo;

/* What each side tells the other over the socket at open. */
typedef struct shm_hello {
    uint64_t magic;
    uint64_t netns; /* inode of /proc/self/ns/net */
    uint64_t size;  /* FIFO bytes */
    uint64_t pid;
    uint64_t probe_addr, probe; /* a word of ours the peer tries to read (CMA allowed?) */
    char boot_id[40];
    char name[64]; /* the receiving FIFO's segment */
} shm_hello;

struct ring_conn {
    int fd, peer, spin_us, cma_ok;
    pid_t peer_pid;
    int out_mode;             /* the peer's choice for what we send, once read */
    uint64_t probe;           /* read by the peer at connect */
    uint64_t sent, acked;     /* CMA sends: descriptors published, and consumed by the peer */
    uint64_t rd;              /* CMA receives: descriptors taken (tail lags behind held ones) */
    uint64_t held[SHM_DESCS]; /* CMA: descriptors read in place, not yet released, in order */
    unsigned held_head, held_tail;
    const void **where[RING_TCP_QUEUE]; /* per receive: post_recv_ref's, or NULL */
    shm_fifo *in, *out;                 /* in: ours, the peer sends into it; out: the peer's */
    size_t in_len, out_len;
    char in_name[64];
    int in_linked; /* our segment's name still exists */
    char boot_id[40];
    uint64_t netns; /* this host's identity, read once at open */
    ring_tcp_queue tx, rx;
};

static size_t map_len(size_t fifo)
{
    return sizeof(shm_fifo) + fifo;
}

static void host_id(char boot[40], uint64_t *netns)
{
    memset(boot, 0, 40);
    int fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, boot, 39);
        if (n > 0 && boot[n - 1] == '\n') boot[n - 1] = 0;
        close(fd);
    }
    struct stat sb;
    *netns = stat("/proc/self/ns/net", &sb) == 0 ? (uint64_t)sb.st_ino : 0;
}

static void unlink_in(ring_conn *c)
{
    if (c->in_linked) shm_unlink(c->in_name);
    c->in_linked = 0;
}

static void shm_close(ring_conn *c)
{
    if (!c) return;
    unlink_in(c);
    if (c->in) munmap(c->in, c->in_len);
    if (c->out) munmap(c->out, c->out_len);
    if (c->fd >= 0) close(c->fd);
    free(c);
}

/* A rank killed between creating its segments and its peers mapping them leaves them behind:
 * the next one to start removes those of ours whose process is gone. */
static void sweep_stale(void)
{
    DIR *d = opendir("/dev/shm");
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long pid;
        char rest[32];
        struct stat sb;
        if (sscanf(e->d_name, "ringcoll-%ld-%31s", &pid, rest) != 2 || pid <= 0 ||
            pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        if (fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 && sb.st_uid == getuid()) {
            char name[300];
            snprintf(name, sizeof name, "/%s", e->d_name);
            shm_unlink(name);
        }
    }
    closedir(d);
}

/* Our receiving FIFO: a fresh segment with its pages reserved now (a full /dev/shm is an
 * error here, not a SIGBUS mid-collective). */
static ring_status make_fifo(ring_conn *c, char *err, size_t errlen)
{
    sweep_stale();
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) rnd = (uint64_t)rc_now_ns();
    snprintf(c->in_name, sizeof c->in_name, "/ringcoll-%ld-%016" PRIx64, (long)getpid(), rnd);
    int fd = shm_open(c->in_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return ring_errf(RING_ERR_SYSTEM, err, errlen,
                         "transport shm: cannot create /dev/shm%s: %s (RING_TRANSPORT=tcp needs "
                         "no shared memory)",
                         c->in_name, strerror(errno));
    c->in_linked = 1;
    c->in_len = map_len(SHM_FIFO_BYTES);
    int e = posix_fallocate(fd, 0, (off_t)c->in_len);
    if (e == 0) {
        void *p = mmap(NULL, c->in_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
            e = errno;
        else
            c->in = p;
    }
    close(fd);
    if (e != 0) {
        unlink_in(c);
        return ring_errf(e == ENOSPC ? RING_ERR_NOMEM : RING_ERR_SYSTEM, err, errlen,
                         "transport shm: cannot reserve %zu bytes in /dev/shm: %s "
                         "(RING_TRANSPORT=tcp needs no shared memory)",
                         c->in_len, strerror(e));
    }
    c->in->size = SHM_FIFO_BYTES;
    atomic_store(&c->in->head, 0);
    atomic_store(&c->in->tail, 0);
    c->in->magic = SHM_MAGIC;
    return RING_OK;
}

/* Create our FIFO and tell the peer its name; the peer's hello is read in connect (open must
 * not wait: every rank opens its right connection before its left one). */
static ring_status shm_open_conn(const ring_tp_opts *opts, int fd, int peer_rank, ring_conn **out,
                                 char *err, size_t errlen)
{
    ring_conn *c = calloc(1, sizeof *c);
    if (!c) return ring_errf(RING_ERR_NOMEM, err, errlen, "out of memory for a connection");
    c->fd = -1;
    c->peer = peer_rank;
    c->spin_us = opts ? opts->shm_spin_us : 0;
    c->cma_ok = opts ? opts->shm_cma : 0;
    ring_status st = make_fifo(c, err, errlen);
    if (st != RING_OK) goto fail;
    if (getrandom(&c->probe, sizeof c->probe, 0) != (ssize_t)sizeof c->probe)
        c->probe = (uint64_t)rc_now_ns() ^ SHM_MAGIC;
    shm_hello h = {.magic = SHM_MAGIC,
                   .size = SHM_FIFO_BYTES,
                   .pid = (uint64_t)getpid(),
                   .probe_addr = (uint64_t)(uintptr_t)&c->probe,
                   .probe = c->probe};
    host_id(c->boot_id, &c->netns);
    memcpy(h.boot_id, c->boot_id, sizeof h.boot_id);
    h.netns = c->netns;
    snprintf(h.name, sizeof h.name, "%s", c->in_name);
    /* 144 bytes into a fresh socket's buffer: does not block */
    st = ring_sock_write_all(fd, &h, sizeof h, ring_deadline_in(RING_HANDSHAKE_TIMEOUT_MS), -1, err,
                             errlen);
    if (st != RING_OK) goto fail;
    c->fd = fd;
    *out = c;
    return RING_OK;
fail:
    shm_close(c);
    return st;
}

static ring_status shm_connect(ring_conn *c, int abort_fd, int64_t deadline_ns, char *err,
                               size_t errlen)
{
    shm_hello h;
    ring_status st = ring_sock_read_all(c->fd, &h, sizeof h, deadline_ns, abort_fd, err, errlen);
    if (st == RING_ERR_TIMEOUT)
        return ring_errf(st, err, errlen,
                         "transport shm: rank %d sent no segment description in time (every "
                         "rank must use transport shm)",
                         c->peer);
    if (st != RING_OK) return st;
    h.boot_id[sizeof h.boot_id - 1] = 0;
    h.name[sizeof h.name - 1] = 0;
    if (h.magic != SHM_MAGIC || h.size != SHM_FIFO_BYTES || h.name[0] != '/')
        return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                         "transport shm: rank %d sent no valid segment description (is it using "
                         "the same transport?)",
                         c->peer);
    if (strcmp(c->boot_id, h.boot_id) != 0 || c->netns != h.netns)
        return ring_errf(RING_ERR_CONFIG, err, errlen,
                         "transport shm: rank %d is on another host or in another network "
                         "namespace; shm needs every rank on one host (use tcp or verbs)",
                         c->peer);
    int fd = shm_open(h.name, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0)
        return ring_errf(RING_ERR_SYSTEM, err, errlen,
                         "transport shm: cannot open rank %d's segment /dev/shm%s: %s", c->peer,
                         h.name, strerror(errno));
    shm_unlink(h.name); /* mapped below; nothing is left behind if either side dies */
    struct stat sb = {0};
    c->out_len = map_len(SHM_FIFO_BYTES);
    void *p = MAP_FAILED;
    if (fstat(fd, &sb) == 0 && (size_t)sb.st_size == c->out_len)
        p = mmap(NULL, c->out_len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (p == MAP_FAILED)
        return ring_errf(RING_ERR_SYSTEM, err, errlen,
                         "transport shm: cannot map rank %d's segment: %s", c->peer,
                         (size_t)sb.st_size != c->out_len ? "wrong size" : strerror(e));
    c->out = p;
    if (c->out->magic != SHM_MAGIC)
        return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                         "transport shm: rank %d's segment is not a FIFO", c->peer);
    /* CMA when the kernel lets us read the peer's memory (same user, no ptrace restriction
     * or seccomp filter in the way): try it on the word the peer named. */
    c->peer_pid = (pid_t)h.pid;
    int mode = MODE_FIFO;
    if (c->cma_ok) {
        uint64_t v = 0;
        struct iovec l = {&v, sizeof v}, r = {(void *)(uintptr_t)h.probe_addr, sizeof v};
        if (process_vm_readv(c->peer_pid, &l, 1, &r, 1, 0) == (ssize_t)sizeof v && v == h.probe)
            mode = MODE_CMA;
    }
    atomic_store_explicit(&c->in->mode, (uint32_t)mode, memory_order_release);
    return RING_OK;
}

static ring_status shm_post_send(ring_conn *c, const void *buf, size_t len)
{
    return ring_tcp_queue_post(&c->tx, buf, len);
}
static ring_status shm_post_recv(ring_conn *c, void *buf, size_t len)
{
    c->where[c->rx.tail % RING_TCP_QUEUE] = NULL;
    return ring_tcp_queue_post(&c->rx, buf, len);
}
static ring_status shm_post_recv_ref(ring_conn *c, void *buf, size_t len, const void **where)
{
    c->where[c->rx.tail % RING_TCP_QUEUE] = where;
    *where = buf;
    return ring_tcp_queue_post(&c->rx, buf, len);
}
static int shm_pending_sends(const ring_conn *c)
{
    return ring_tcp_queue_pending(&c->tx);
}
static int shm_pending_recvs(const ring_conn *c)
{
    return ring_tcp_queue_pending(&c->rx);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_wake(_Atomic uint32_t *w)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* The peer's choice for our sends (MODE_NONE until its connect ran). */
static int out_mode(ring_conn *c)
{
    if (c->out_mode == MODE_NONE)
        c->out_mode = (int)atomic_load_explicit(&c->out->mode, memory_order_acquire);
    return c->out_mode;
}

/* FIFO: copy sends into the peer's FIFO, a piece at a time (the peer drains while we fill). */
static int push_fifo(ring_conn *c, int *moved)
{
    shm_fifo *f = c->out;
    uint64_t head = atomic_load_explicit(&f->head, memory_order_relaxed), size = f->size;
    int done = 0;
    while (c->tx.head != c->tx.tail) {
        uint64_t tail = atomic_load_explicit(&f->tail, memory_order_acquire);
        ring_tcp_op *op = &c->tx.ops[c->tx.head % RING_TCP_QUEUE];
        size_t n = op->len - op->done, room = (size_t)(size - (head - tail));
        if (n > room) n = room;
        if (n > SHM_PIECE) n = SHM_PIECE;
        if (n == 0 && op->len > 0) break;
        size_t at = (size_t)(head & (size - 1)), first = size - at < n ? size - at : n;
        memcpy(f->data + at, op->buf + op->done, first);
        memcpy(f->data, op->buf + op->done + first, n - first);
        head += n;
        op->done += n;
        atomic_store_explicit(&f->head, head, memory_order_release);
        atomic_fetch_add(&f->data_seq, 1);
        *moved = 1;
        if (op->done == op->len) c->tx.head++, done++;
    }
    return done;
}

/* CMA: publish the sends' addresses; a send completes once the peer has copied it. */
static int push_cma(ring_conn *c, int *moved)
{
    shm_fifo *f = c->out;
    int done = 0;
    uint64_t tail = atomic_load_explicit(&f->tail, memory_order_acquire);
    for (; c->acked < tail; c->acked++)
        c->tx.head++, done++;
    unsigned next = c->tx.head + (unsigned)(c->sent - c->acked);
    for (; next != c->tx.tail && c->sent - tail < SHM_DESCS; next++, c->sent++) {
        const ring_tcp_op *op = &c->tx.ops[next % RING_TCP_QUEUE];
        uint64_t addr = (uint64_t)(uintptr_t)op->buf, len = op->len;
        uintptr_t base = (uintptr_t)f->data;
        if (len > SHM_INLINE && addr >= base && addr - base <= f->size &&
            len <= f->size - (addr - base)) {
            addr -= base; /* a staging slot: the peer reads it there */
            len |= DESC_REF;
        }
        f->desc[c->sent % SHM_DESCS].addr = addr;
        f->desc[c->sent % SHM_DESCS].len = len;
        if (op->len <= SHM_INLINE) memcpy(f->desc[c->sent % SHM_DESCS].inl, op->buf, op->len);
        atomic_store_explicit(&f->head, c->sent + 1, memory_order_release);
        atomic_fetch_add(&f->data_seq, 1);
        *moved = 1;
    }
    return done;
}

static int push(ring_conn *c)
{
    int moved = 0, mode = out_mode(c),
        done = mode == MODE_CMA    ? push_cma(c, &moved)
               : mode == MODE_FIFO ? push_fifo(c, &moved)
                                   : 0;
    if (moved && atomic_load(&c->out->rx_sleep)) futex_wake(&c->out->data_seq);
    return done;
}

/* FIFO: copy our FIFO's bytes into the receives, freeing its space a piece at a time. */
static int pull_fifo(ring_conn *c, int *moved)
{
    shm_fifo *f = c->in;
    uint64_t tail = atomic_load_explicit(&f->tail, memory_order_relaxed), size = f->size;
    int done = 0;
    while (c->rx.head != c->rx.tail) {
        uint64_t head = atomic_load_explicit(&f->head, memory_order_acquire);
        ring_tcp_op *op = &c->rx.ops[c->rx.head % RING_TCP_QUEUE];
        size_t n = op->len - op->done, avail = (size_t)(head - tail);
        if (n > avail) n = avail;
        if (n > SHM_PIECE) n = SHM_PIECE;
        if (n == 0 && op->len > 0) break;
        size_t at = (size_t)(tail & (size - 1)), first = size - at < n ? size - at : n;
        memcpy(op->buf + op->done, f->data + at, first);
        memcpy(op->buf + op->done + first, f->data, n - first);
        tail += n;
        op->done += n;
        atomic_store_explicit(&f->tail, tail, memory_order_release);
        atomic_fetch_add(&f->space_seq, 1);
        *moved = 1;
        if (op->done == op->len) c->rx.head++, done++;
    }
    return done;
}

/* CMA: the peer may reuse a send's buffer once tail passes its descriptor; tail stops at the
 * oldest descriptor still read in place. */
static void publish_tail(ring_conn *c)
{
    uint64_t t = c->held_head != c->held_tail ? c->held[c->held_head % SHM_DESCS] : c->rd;
    atomic_store_explicit(&c->in->tail, t, memory_order_release);
    atomic_fetch_add(&c->in->space_seq, 1);
}

/* CMA: copy each published send straight from the peer's memory into its receive, or leave it
 * in our segment for a receive that takes it in place. */
static ring_status pull_cma(ring_conn *c, int *moved, int *done, char *err, size_t errlen)
{
    shm_fifo *f = c->in;
    while (c->rx.head != c->rx.tail) {
        uint64_t head = atomic_load_explicit(&f->head, memory_order_acquire);
        if (c->rd == head) break;
        ring_tcp_op *op = &c->rx.ops[c->rx.head % RING_TCP_QUEUE];
        const void **where = c->where[c->rx.head % RING_TCP_QUEUE];
        uint64_t addr = f->desc[c->rd % SHM_DESCS].addr, len = f->desc[c->rd % SHM_DESCS].len;
        int ref = (len & DESC_REF) != 0;
        len &= ~DESC_REF;
        if (len != op->len)
            return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                             "rank %d sent %llu bytes where a receive of %zu was posted", c->peer,
                             (unsigned long long)len, op->len);
        if (ref && (addr > f->size || len > f->size - addr))
            return ring_errf(RING_ERR_PROTOCOL, err, errlen,
                             "rank %d named bytes %llu..%llu of a %llu-byte staging area", c->peer,
                             (unsigned long long)addr, (unsigned long long)(addr + len),
                             (unsigned long long)f->size);
        if (len <= SHM_INLINE) {
            memcpy(op->buf, f->desc[c->rd % SHM_DESCS].inl, len);
            op->done = op->len;
        } else if (ref && where) {
            *where = f->data + addr;
            op->done = op->len;
            c->held[c->held_tail++ % SHM_DESCS] = c->rd;
        } else if (ref) {
            memcpy(op->buf, f->data + addr, len);
            op->done = op->len;
        }
        while (op->done < op->len) {
            struct iovec l = {op->buf + op->done, op->len - op->done},
                         r = {(void *)(uintptr_t)(addr + op->done), op->len - op->done};
            ssize_t n = process_vm_readv(c->peer_pid, &l, 1, &r, 1, 0);
            if (n > 0) {
                op->done += (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            int e = n < 0 ? errno : EIO;
            return ring_errf(e == ESRCH ? RING_ERR_PEER_CLOSED : RING_ERR_SYSTEM, err, errlen,
                             "copying from rank %d: %s", c->peer, strerror(e));
        }
        c->rd++;
        publish_tail(c);
        *moved = 1;
        c->rx.head++, (*done)++;
    }
    return RING_OK;
}

static void shm_release(ring_conn *c)
{
    if (c->held_head == c->held_tail) return;
    c->held_head++;
    publish_tail(c);
    if (atomic_load(&c->in->tx_sleep)) futex_wake(&c->in->space_seq);
}

/* The staging slots of the collectives, in the data area of the peer's segment, which the peer
 * reads in place: only where the peer picked CMA (its FIFO mode uses that area) and they fit. */
static unsigned char *shm_staging(ring_conn *c, size_t bytes)
{
    return out_mode(c) == MODE_CMA && bytes <= c->out->size ? c->out->data : NULL;
}

static ring_status pull(ring_conn *c, int *done, char *err, size_t errlen)
{
    int moved = 0;
    ring_status st = RING_OK;
    int mode = (int)atomic_load_explicit(&c->in->mode, memory_order_relaxed);
    if (mode == MODE_CMA)
        st = pull_cma(c, &moved, done, err, errlen);
    else
        *done += pull_fifo(c, &moved);
    if (moved && atomic_load(&c->in->tx_sleep)) futex_wake(&c->in->space_seq);
    return st;
}

/* Whether the peer moved anything we wait for since we last looked. */
static int ready(ring_conn *tx, const ring_conn *rx)
{
    if (tx && tx->tx.head != tx->tx.tail) {
        uint64_t h = atomic_load(&tx->out->head), t = atomic_load(&tx->out->tail);
        int m = out_mode(tx);
        int unsent = tx->tx.head + (unsigned)(tx->sent - tx->acked) != tx->tx.tail;
        if (m == MODE_CMA ? t != tx->acked || (unsent && tx->sent - t < SHM_DESCS)
                          : m == MODE_FIFO && t + tx->out->size != h)
            return 1;
    }
    if (!rx || rx->rx.head == rx->rx.tail) return 0;
    uint64_t taken = atomic_load_explicit(&rx->in->mode, memory_order_relaxed) == MODE_CMA
                         ? rx->rd
                         : atomic_load(&rx->in->tail);
    return atomic_load(&rx->in->head) != taken;
}

/* A socket that reads as ready carries no data after connect: the peer closed it. */
static ring_status check_peers(ring_conn *tx, ring_conn *rx, int abort_fd, char *err, size_t errlen)
{
    struct pollfd p[3];
    int n = 0;
    p[n++] = (struct pollfd){.fd = abort_fd, .events = POLLIN};
    if (tx) p[n++] = (struct pollfd){.fd = tx->fd, .events = POLLIN};
    if (rx) p[n++] = (struct pollfd){.fd = rx->fd, .events = POLLIN};
    if (poll(p, (nfds_t)n, 0) <= 0) return RING_OK;
    if (p[0].revents & POLLIN) return ring_errf(RING_ERR_ABORTED, err, errlen, "aborted");
    for (int i = 1; i < n; i++)
        if (p[i].revents) {
            int peer = (i == 1 && tx) ? tx->peer : rx->peer;
            return ring_errf(RING_ERR_PEER_CLOSED, err, errlen,
                             "rank %d closed the connection mid-collective", peer);
        }
    return RING_OK;
}

/* Sleep until the peer bumps a word we wait on, at most until `until`. */
static void sleep_on(ring_conn *tx, ring_conn *rx, int64_t until)
{
    struct futex_waitv w[2];
    int n = 0;
    if (tx) atomic_store(&tx->out->tx_sleep, 1);
    if (rx) atomic_store(&rx->in->rx_sleep, 1);
    if (tx)
        w[n++] = (struct futex_waitv){.val = atomic_load(&tx->out->space_seq),
                                      .uaddr = (uintptr_t)&tx->out->space_seq,
                                      .flags = FUTEX_32};
    if (rx)
        w[n++] = (struct futex_waitv){.val = atomic_load(&rx->in->data_seq),
                                      .uaddr = (uintptr_t)&rx->in->data_seq,
                                      .flags = FUTEX_32};
    /* seq_cst: a peer that moved before our flag was set is seen here */
    if (!ready(tx, rx)) {
        struct timespec ts = {.tv_sec = until / 1000000000, .tv_nsec = until % 1000000000};
        long r = syscall(SYS_futex_waitv, w, n, 0, &ts, CLOCK_MONOTONIC);
        if (r < 0 && errno == ENOSYS) {
            /* kernels before 5.16: wait on one word, a slice at a time */
            struct timespec rel = {0, 1000000};
            syscall(SYS_futex, (uint32_t *)w[0].uaddr, FUTEX_WAIT, (uint32_t)w[0].val, &rel, NULL,
                    0);
        }
    }
    if (tx) atomic_store(&tx->out->tx_sleep, 0);
    if (rx) atomic_store(&rx->in->rx_sleep, 0);
}

static ring_status shm_progress(ring_conn *tx, ring_conn *rx, int abort_fd, int64_t deadline_ns,
                                int *sends, int *recvs, char *err, size_t errlen)
{
    *sends = *recvs = 0;
    int64_t spin_until = -1, next_check = 0;
    for (;;) {
        if (tx) *sends += push(tx);
        if (rx) {
            ring_status st = pull(rx, recvs, err, errlen);
            if (st != RING_OK) return st;
        }
        if (*sends || *recvs) return RING_OK;
        int want_tx = tx && tx->tx.head != tx->tx.tail, want_rx = rx && rx->rx.head != rx->rx.tail;
        if (!want_tx && !want_rx) return RING_OK;
        ring_conn *wt = want_tx ? tx : NULL, *wr = want_rx ? rx : NULL;
        int64_t now = rc_now_ns();
        if (spin_until < 0) {
            spin_until = now + (int64_t)(tx ? tx->spin_us : rx->spin_us) * 1000;
            next_check = now + CHECK_NS;
        } else if (now >= next_check) {
            ring_status st = check_peers(wt, wr, abort_fd, err, errlen);
            if (st != RING_OK) return st;
            if (now >= deadline_ns)
                return ring_errf(RING_ERR_TIMEOUT, err, errlen, "no progress from rank %d%s",
                                 wr ? wr->peer : wt->peer, wr ? " (receiving)" : " (sending)");
            next_check = now + CHECK_NS;
        }
        if (now < spin_until) {
            /* a rank sharing its core with others lets them run */
            for (int i = 0; i < 64 && !ready(wt, wr); i++)
                cpu_relax();
            if (!ready(wt, wr)) sched_yield();
            continue;
        }
        int64_t until = now + (int64_t)SLICE_MS * 1000000;
        sleep_on(wt, wr, until < deadline_ns ? until : deadline_ns);
        next_check = 0; /* after a sleep, look at the peers and the deadline at once */
    }
}

/* 512 KiB x 4: half the synchronisation of 128 KiB x 16 for the same 2 MiB of staging (still
 * small enough to live in the receiver's segment); ahead of it in all 8 cells (4 and 8 ranks,
 * 64 and 256 MiB, out of place and in place) on a 16-core host, BENCHMARKS.md section 18. */
const ring_transport ring_transport_shm = {
    .name = "shm",
    .segment_bytes = 512 << 10,
    .depth = 4,
    .min_depth = 2, /* CMA: a send completes when the receiver has copied it (or reduced it) */
    .open = shm_open_conn,
    .connect = shm_connect,
    .post_send = shm_post_send,
    .post_recv = shm_post_recv,
    .post_recv_ref = shm_post_recv_ref,
    .release = shm_release,
    .staging = shm_staging,
    .progress = shm_progress,
    .pending_sends = shm_pending_sends,
    .pending_recvs = shm_pending_recvs,
    .close = shm_close,
};
