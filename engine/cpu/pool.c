/* SPDX-License-Identifier: MIT */
/* The worker pool of one run state: n-1 threads started once, at state creation. The caller
 * posts a job by bumping a generation word, runs part 0 itself, and waits until the workers
 * have run parts 1..n-1 (a barrier per job). A waiting thread busy-polls for spin_us (the
 * next matmul is usually microseconds away), then sleeps on a futex; sleeps are bounded
 * (100 ms) and re-checked, so a lost wake-up costs time, never a hang.
 * Ordering: the job is written before the seq_cst bump of `gen` and read after an acquire
 * load of it; the last worker's seq_cst store of `done` publishes every part's output. */
#include "cpu.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define SLEEP_SLICE_NS 100000000L /* a sleeper re-checks its word at least this often */

typedef struct worker {
    eng_pool *pool;
    int part;
} worker;

struct eng_pool {
    int n; /* parts: the caller + n-1 workers */
    int spin_us;
    int started;    /* workers running */
    eng_pool_fn fn; /* the current job, valid from its gen bump until its done */
    void *ctx;
    _Atomic uint32_t gen;     /* bumped per job (and at shutdown) */
    _Atomic uint32_t pending; /* workers still running the current job */
    _Atomic uint32_t done;    /* == gen once every worker finished the job */
    _Atomic int stop;
    _Atomic int gen_sleepers;  /* workers asleep, or about to be, on gen */
    _Atomic int done_sleepers; /* the caller, asleep on done */
    pthread_t *tid;            /* [n-1] */
    worker *w;                 /* [n-1] */
};

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void futex_sleep(_Atomic uint32_t *word, uint32_t val)
{
#if defined(__linux__)
    struct timespec ts = {0, SLEEP_SLICE_NS};
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAIT_PRIVATE, val, &ts, NULL, 0);
#else
    (void)word;
    (void)val;
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
#endif
}

static void futex_wake_all(_Atomic uint32_t *word)
{
#if defined(__linux__)
    syscall(SYS_futex, (uint32_t *)word, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
#else
    (void)word;
#endif
}

/* Returns once *word != val: spins for spin_us, then sleeps. The sleeper count and the
 * word are both seq_cst, so a waker that stores the word either sees the sleeper or the
 * sleeper sees the new word (and the kernel re-checks it inside FUTEX_WAIT). */
static uint32_t wait_change(_Atomic uint32_t *word, uint32_t val, int spin_us,
                            _Atomic int *sleepers)
{
    uint32_t v = atomic_load_explicit(word, memory_order_acquire);
    if (v != val) return v;
    if (spin_us > 0) {
        long long end = now_ns() + (long long)spin_us * 1000;
        for (unsigned i = 1;; i++) {
            cpu_relax();
            v = atomic_load_explicit(word, memory_order_acquire);
            if (v != val) return v;
            if ((i & 63) == 0 && now_ns() > end) break;
        }
    }
    for (;;) {
        atomic_fetch_add(sleepers, 1);
        if ((v = atomic_load(word)) == val) futex_sleep(word, val);
        atomic_fetch_sub(sleepers, 1);
        if (v != val || (v = atomic_load(word)) != val) return v;
    }
}

static void publish(_Atomic uint32_t *word, uint32_t val, _Atomic int *sleepers)
{
    atomic_store(word, val);
    if (atomic_load(sleepers) > 0) futex_wake_all(word);
}

static void *worker_main(void *arg)
{
    worker *me = arg;
    eng_pool *p = me->pool;
    uint32_t seen = 0;
    for (;;) {
        seen = wait_change(&p->gen, seen, p->spin_us, &p->gen_sleepers);
        if (atomic_load(&p->stop)) break;
        p->fn(p->ctx, me->part, p->n);
        if (atomic_fetch_sub(&p->pending, 1) == 1) publish(&p->done, seen, &p->done_sleepers);
    }
    return NULL;
}

static void stop_workers(eng_pool *p)
{
    atomic_store(&p->stop, 1);
    publish(&p->gen, atomic_load(&p->gen) + 1, &p->gen_sleepers);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->tid[i], NULL);
    p->started = 0;
}

eng_status eng_pool_create(int n_threads, int spin_us, eng_pool **out, char *err, size_t errlen)
{
    *out = NULL;
    if (n_threads < 1 || n_threads > ENG_MAX_THREADS || spin_us < 0)
        return eng_fail(ENG_ERR_INVALID_ARG, err, errlen,
                        "threads must be in 1..%d and the spin time >= 0 (got %d, %d)",
                        ENG_MAX_THREADS, n_threads, spin_us);
    eng_pool *p = calloc(1, sizeof(*p));
    if (!p) return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the thread pool");
    p->n = n_threads;
    p->spin_us = spin_us;
    if (n_threads > 1) {
        p->tid = calloc((size_t)n_threads - 1, sizeof(pthread_t));
        p->w = calloc((size_t)n_threads - 1, sizeof(worker));
        if (!p->tid || !p->w) {
            eng_pool_free(p);
            return eng_fail(ENG_ERR_NOMEM, err, errlen, "out of memory for the thread pool");
        }
    }
    /* Workers take no signals: they stay with the caller's thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = 0;
    for (int i = 0; i < n_threads - 1 && rc == 0; i++) {
        p->w[i] = (worker){p, i + 1};
        rc = pthread_create(&p->tid[i], NULL, worker_main, &p->w[i]);
        if (rc == 0) p->started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        eng_pool_free(p);
        return eng_fail(ENG_ERR_NOMEM, err, errlen, "cannot start worker thread %d of %d: %s",
                        p->started + 1, n_threads - 1, strerror(rc));
    }
    *out = p;
    return ENG_OK;
}

void eng_pool_free(eng_pool *p)
{
    if (!p) return;
    stop_workers(p);
    free(p->tid);
    free(p->w);
    free(p);
}

int eng_pool_size(const eng_pool *p)
{
    return p ? p->n : 1;
}

void eng_pool_run(eng_pool *p, eng_pool_fn fn, void *ctx)
{
    if (!p || p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store_explicit(&p->pending, (uint32_t)(p->n - 1), memory_order_relaxed);
    uint32_t g = atomic_load_explicit(&p->gen, memory_order_relaxed) + 1;
    publish(&p->gen, g, &p->gen_sleepers);
    fn(ctx, 0, p->n);
    uint32_t d = atomic_load_explicit(&p->done, memory_order_acquire);
    while (d != g)
        d = wait_change(&p->done, d, p->spin_us, &p->done_sleepers);
}
