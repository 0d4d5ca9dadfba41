// The device runtime's worker pool: threads created once, woken per job.
//
// One job runs at a time. The caller publishes it (function, context, count)
// by changing `generation`; workers that are spinning see the new generation
// within a few hundred nanoseconds, sleeping ones are woken through a futex
// on that same word. Every participant, the caller included, takes indices
// until none are left, and the caller waits for `pending` (workers still
// inside the job) to reach zero. Waiting is a short spin followed by a
// futex sleep, so back-to-back jobs inside a forward pass are cheap and an
// idle daemon holding a pool uses no CPU at all.
#define _GNU_SOURCE
#include "fips_sys.h"
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#endif

// How long a waiter spins before it sleeps. Long enough to bridge the serial
// work between two jobs of one forward pass (residual adds, a LayerNorm on
// one core: tens of microseconds), short enough that an idle pool goes
// quiet at once.
#define FIPS_POOL_SPIN_NS 50000
// The first part of that spins without yielding: a job handed over within
// this time is picked up with the least delay.
#define FIPS_POOL_BUSY_NS 5000

#define CACHE_LINE 64

struct fips_pool_worker {
    pthread_t thread;
    struct fips_pool *pool;
    int participant;            // 1..threads-1; the caller is participant 0
};

struct fips_pool {
    // Written by the caller before each job, read by workers after they see
    // the new generation (release/acquire through `generation`).
    fips_pool_fn fn;
    void *ctx;
    int64_t count;
    int schedule;
    int threads;
    int spin;                   // 0 when there are more threads than cores
    unsigned jobs;              // jobs published so far (the caller's own counter)
    struct fips_pool_worker *workers;

    // The futex word workers sleep on: (job number << 9) | participants,
    // participants (caller + workers taking part, 1...256) or 0 for "stop".
    // Carrying the participant count in the word itself lets a worker that
    // is not needed go back to sleep without reading any other field, which
    // the caller may already be rewriting for the next job.
    _Alignas(CACHE_LINE) atomic_uint generation;
    atomic_int sleepers;                          // workers inside (or about to enter) futex_wait
    _Alignas(CACHE_LINE) atomic_uint pending;     // futex word the caller sleeps on
    atomic_int caller_sleeping;
    _Alignas(CACHE_LINE) atomic_llong next;       // next unclaimed index (dynamic schedule)
    _Alignas(CACHE_LINE) atomic_int busy;         // a job is running: nested or concurrent calls run inline
};

// ---- waiting on a 32-bit word ----

#ifdef __linux__
static void word_wait(atomic_uint *word, unsigned expected) {
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAIT_PRIVATE, expected, NULL, NULL, 0);
}
static void word_wake(atomic_uint *word, int n) {
    syscall(SYS_futex, (unsigned *)word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}
#else
// Elsewhere: one process-wide mutex and condition variable stand in for the
// futex; correct, with a spurious wake-up now and then.
static pthread_mutex_t word_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t word_cond = PTHREAD_COND_INITIALIZER;
static void word_wait(atomic_uint *word, unsigned expected) {
    pthread_mutex_lock(&word_mutex);
    while (atomic_load(word) == expected) pthread_cond_wait(&word_cond, &word_mutex);
    pthread_mutex_unlock(&word_mutex);
}
static void word_wake(atomic_uint *word, int n) {
    (void)word; (void)n;
    pthread_mutex_lock(&word_mutex);
    pthread_cond_broadcast(&word_cond);
    pthread_mutex_unlock(&word_mutex);
}
#endif

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

// Spins until *word != value or the spin budget runs out; returns the last
// value read. The first few microseconds busy-wait; after that each check
// gives the core away (sched_yield), so on a loaded machine the thread we
// wait for gets to run instead of us burning its time slice.
static unsigned spin_while_equal(const struct fips_pool *p, atomic_uint *word, unsigned value) {
    unsigned v = atomic_load_explicit(word, memory_order_acquire);
    if (v != value || !p->spin) return v;
    int64_t start = fips_now_ns();
    for (int64_t now = start; now - start < FIPS_POOL_SPIN_NS; now = fips_now_ns()) {
        for (int i = 0; i < 64; i++) {
            cpu_relax();
            v = atomic_load_explicit(word, memory_order_acquire);
            if (v != value) return v;
        }
        if (now - start > FIPS_POOL_BUSY_NS) sched_yield();
    }
    return v;
}

// ---- running a job ----

#define PARTICIPANT_BITS 9
#define PARTICIPANTS(word) ((int)((word) & ((1u << PARTICIPANT_BITS) - 1)))

// Runs this participant's share of the current job.
static void take_share(struct fips_pool *p, int participant, int parts) {
    const int64_t count = p->count;
    if (p->schedule == FIPS_POOL_STATIC) {
        // Contiguous blocks, sizes differing by at most one.
        int64_t lo = count * participant / parts, hi = count * (participant + 1) / parts;
        for (int64_t i = lo; i < hi; i++) p->fn(p->ctx, i);
    } else {
        for (;;) {
            int64_t i = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
            if (i >= count) break;
            p->fn(p->ctx, i);
        }
    }
}

static void *worker_main(void *arg) {
    struct fips_pool_worker *w = arg;
    struct fips_pool *p = w->pool;
    unsigned seen = 0;
    for (;;) {
        unsigned g = spin_while_equal(p, &p->generation, seen);
        while (g == seen) {
            // Announce the sleep before re-checking, so a caller that bumps
            // the generation after our check is sure to see us and wake us
            // (both sides use sequentially consistent operations).
            atomic_fetch_add(&p->sleepers, 1);
            g = atomic_load(&p->generation);
            if (g == seen) word_wait(&p->generation, seen);
            atomic_fetch_sub(&p->sleepers, 1);
            g = atomic_load(&p->generation);
        }
        seen = g;
        int parts = PARTICIPANTS(g);
        if (parts == 0) break;                               // the pool is being destroyed
        if (w->participant >= parts) continue;               // a job too small to need this worker
        take_share(p, w->participant, parts);
        if (atomic_fetch_sub(&p->pending, 1) == 1 && atomic_load(&p->caller_sleeping))
            word_wake(&p->pending, 1);
    }
    return NULL;
}

// Publishes the job in p's fields (already set) to its participants (0: stop).
static void publish(struct fips_pool *p, int parts) {
    p->jobs++;
    // The job number wraps; never let a word equal the one workers start from.
    if ((p->jobs << PARTICIPANT_BITS) == 0) p->jobs++;
    atomic_store(&p->generation, (p->jobs << PARTICIPANT_BITS) | (unsigned)parts);
    if (atomic_load(&p->sleepers) > 0) word_wake(&p->generation, INT_MAX);
}

static void wait_for_workers(struct fips_pool *p) {
    unsigned v = atomic_load_explicit(&p->pending, memory_order_acquire);
    while (v != 0) {
        v = spin_while_equal(p, &p->pending, v);
        if (v == 0) return;
        // Same handshake as the workers' sleep: announce, re-check, sleep;
        // only the worker that brings `pending` to 0 wakes us.
        atomic_store(&p->caller_sleeping, 1);
        v = atomic_load(&p->pending);
        if (v != 0) word_wait(&p->pending, v);
        atomic_store(&p->caller_sleeping, 0);
        v = atomic_load(&p->pending);
    }
}

void fips_pool_run(fips_pool *p, int64_t count, fips_pool_fn fn, void *ctx, int schedule) {
    if (count <= 0) return;
    int expected = 0;
    if (p->threads == 1 || count == 1 ||
        !atomic_compare_exchange_strong(&p->busy, &expected, 1)) {
        // One thread, one index, or called from inside a job (or from a
        // second thread while a job runs): run here, in order.
        for (int64_t i = 0; i < count; i++) fn(ctx, i);
        return;
    }
    int parts = count < p->threads ? (int)count : p->threads;
    p->fn = fn;
    p->ctx = ctx;
    p->count = count;
    p->schedule = schedule;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    atomic_store_explicit(&p->pending, (unsigned)(parts - 1), memory_order_relaxed);
    publish(p, parts);
    take_share(p, 0, parts);
    wait_for_workers(p);
    atomic_store(&p->busy, 0);
}

// ---- life cycle ----

fips_pool *fips_pool_create(int threads) {
    if (threads < 1) threads = 1;
    if (threads > FIPS_POOL_MAX_THREADS) threads = FIPS_POOL_MAX_THREADS;
    struct fips_pool *p = NULL;
    if (posix_memalign((void **)&p, CACHE_LINE, sizeof *p) != 0) return NULL;
    memset(p, 0, sizeof *p);
    p->threads = 1;
    // Spinning only pays when every thread has a core of its own; otherwise
    // a spinner steals the time slice of the thread it is waiting for.
    p->spin = threads <= fips_cpu_count();
    if (threads == 1) return p;
    p->workers = calloc((size_t)threads - 1, sizeof *p->workers);
    if (!p->workers) return p;

    // Workers block every signal, so a SIGINT or SIGPIPE is handled by the
    // program's own thread as it would be without a pool.
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < threads - 1; i++) {
        struct fips_pool_worker *w = &p->workers[i];
        w->pool = p;
        w->participant = i + 1;
        // A thread that cannot be created leaves a smaller pool, not a failure.
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) break;
        p->threads++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return p;
}

int fips_pool_threads(const fips_pool *p) { return p->threads; }

void fips_pool_destroy(fips_pool *p) {
    if (!p) return;
    publish(p, 0);
    for (int i = 0; i < p->threads - 1; i++) pthread_join(p->workers[i].thread, NULL);
    free(p->workers);
    free(p);
}
