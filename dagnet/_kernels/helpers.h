/* Helper threads that spin a while before they sleep: the parallel loop of a batch-1
   inference conv (direct.pyx forward, parts > 1).

   Why not OpenMP: dagnet runs libgomp with OMP_WAIT_POLICY=PASSIVE (procenv.py: in training
   a spinning OpenMP thread takes a core from OpenBLAS's threads), so every parallel region
   wakes its threads through a futex, tens of microseconds on this 2-core VM, and the region's
   closing barrier waits for the slowest wake-up: more than a batch-1 conv's whole arithmetic.
   These helpers are used by inference alone; after their last task they spin for
   DN_SPIN_NS (the Python between two convs of a program takes a few microseconds) and only
   then sleep. The caller never waits for a helper that has not started: items are claimed
   one at a time from a shared counter, the caller claims too, and it waits only for the
   items a helper holds. Which thread runs an item changes nothing in its result.

   dn_par_for(fn, ctx, n, threads): fn(ctx, i, tid) for i < n on the caller (tid 0) and up
   to threads - 1 helpers (tid 1..), returning when every item is done. One caller at a time
   (a second one meanwhile runs its items alone). A forked child starts its own helpers anew. */
#ifndef DAGNET_HELPERS_H
#define DAGNET_HELPERS_H
#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>

typedef void (*dn_task)(void* ctx, ptrdiff_t item, int tid);

#define DN_MAX_HELPERS 15
#define DN_SPIN_NS 200000 /* an idle helper's spin before it sleeps: 0.2 ms */
/* Helpers pay only where they have a core of their own. On a loaded machine (other
   processes, or a CPU quota) a helper preempted in an item holds it for a time slice,
   milliseconds, where a batch-1 conv takes 0.05, and a spinning helper takes its share of
   the CPU time from the caller. So a caller that waited for the helpers' last items longer
   than it worked on its own, or lost a quarter of the loop's wall-clock time to preemption
   (more than DN_WAIT_FLOOR_NS either way), runs its next loops alone, twice as many after
   each such loop (up to DN_BACKOFF_MAX), and tries again; every DN_GOOD_RUN loops without one
   halve the count again. */
#define DN_WAIT_FLOOR_NS 5000
#define DN_BACKOFF_MAX 4096
#define DN_GOOD_RUN 256

static pthread_mutex_t dn_caller = PTHREAD_MUTEX_INITIALIZER; /* one loop at a time */
/* (dn_caller's) loops to run alone now, after the next long wait, and good loops in a row */
static int dn_alone = 0, dn_backoff = 1, dn_good = 0;
/* counts since load: loops run with helpers, loops run alone, long waits, items helpers ran */
static long long dn_count[4];

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint32_t seq;      /* even: a loop published; odd: one being written (a seqlock) */
    uint64_t ticket;   /* (seq << 32) | the next item to claim */
    dn_task fn;
    void* ctx;
    ptrdiff_t n;
    int threads;       /* of the loop: helpers 1 .. threads - 1 take part */
    ptrdiff_t done;    /* items finished */
    int helpers;       /* helper threads started (in this process) */
    int sleepers;      /* helpers waiting on cv */
    pid_t pid;         /* the process that started them */
} dn_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static inline void dn_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static inline long long dn_now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* CPU time of the calling thread: less than the wall-clock time that passed when it was
   preempted meanwhile. */
static inline long long dn_cpu_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/* The next item of loop seq (whose size is n), or -1 once it has none left or was replaced. */
static inline ptrdiff_t dn_claim(uint32_t seq, ptrdiff_t n) {
    uint64_t t = __atomic_load_n(&dn_pool.ticket, __ATOMIC_ACQUIRE);
    for (;;) {
        if ((uint32_t)(t >> 32) != seq || (ptrdiff_t)(t & 0xffffffffu) >= n)
            return -1;
        if (__atomic_compare_exchange_n(&dn_pool.ticket, &t, t + 1, 1, __ATOMIC_ACQ_REL,
                                        __ATOMIC_ACQUIRE))
            return (ptrdiff_t)(t & 0xffffffffu);
    }
}

static void dn_work(uint32_t seq, dn_task fn, void* ctx, ptrdiff_t n, int tid) {
    ptrdiff_t i;
    while ((i = dn_claim(seq, n)) >= 0) {
        fn(ctx, i, tid);
        if (tid)
            __atomic_fetch_add(&dn_count[3], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&dn_pool.done, 1, __ATOMIC_RELEASE);
    }
}

static void* dn_helper_main(void* arg) {
    const int tid = (int)(intptr_t)arg;
    uint32_t seen = __atomic_load_n(&dn_pool.seq, __ATOMIC_ACQUIRE) & ~1u;
    long long idle = dn_now_ns();
    for (unsigned spins = 0;; spins++) {
        uint32_t s = __atomic_load_n(&dn_pool.seq, __ATOMIC_ACQUIRE);
        if (s != seen && !(s & 1)) {
            dn_task fn = __atomic_load_n(&dn_pool.fn, __ATOMIC_RELAXED);
            void* ctx = __atomic_load_n(&dn_pool.ctx, __ATOMIC_RELAXED);
            ptrdiff_t n = __atomic_load_n(&dn_pool.n, __ATOMIC_RELAXED);
            int threads = __atomic_load_n(&dn_pool.threads, __ATOMIC_RELAXED);
            __atomic_thread_fence(__ATOMIC_ACQUIRE);
            if (__atomic_load_n(&dn_pool.seq, __ATOMIC_RELAXED) != s)
                continue; /* rewritten while read: read again */
            seen = s;
            if (tid < threads) { /* a loop of fewer threads (its scratch has fewer rows) */
                dn_work(s, fn, ctx, n, tid);
                idle = dn_now_ns();
            }
            continue;
        }
        if ((spins & 63) == 0 && dn_now_ns() - idle > DN_SPIN_NS) {
            pthread_mutex_lock(&dn_pool.mu);
            __atomic_fetch_add(&dn_pool.sleepers, 1, __ATOMIC_SEQ_CST);
            while (((s = __atomic_load_n(&dn_pool.seq, __ATOMIC_SEQ_CST)) == seen) || (s & 1))
                pthread_cond_wait(&dn_pool.cv, &dn_pool.mu);
            __atomic_fetch_sub(&dn_pool.sleepers, 1, __ATOMIC_SEQ_CST);
            pthread_mutex_unlock(&dn_pool.mu);
            idle = dn_now_ns();
            continue;
        }
        dn_relax();
    }
    return NULL;
}

static void dn_after_fork(void) {
    /* the child has none of the parent's helper threads */
    pthread_mutex_init(&dn_caller, NULL);
    pthread_mutex_init(&dn_pool.mu, NULL);
    pthread_cond_init(&dn_pool.cv, NULL);
    dn_pool.helpers = dn_pool.sleepers = 0;
    dn_alone = dn_good = 0;
    dn_backoff = 1;
    dn_pool.pid = getpid();
}

/* Start helpers up to want (at most DN_MAX_HELPERS); how many run. */
static int dn_start_helpers(int want) {
    static int registered = 0;
    if (!registered) {
        pthread_atfork(NULL, NULL, dn_after_fork);
        dn_pool.pid = getpid();
        registered = 1;
    }
    if (want > DN_MAX_HELPERS)
        want = DN_MAX_HELPERS;
    while (dn_pool.helpers < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int bad = pthread_create(&th, &attr, dn_helper_main, (void*)(intptr_t)(dn_pool.helpers + 1));
        pthread_attr_destroy(&attr);
        if (bad)
            break;
        dn_pool.helpers++;
    }
    return dn_pool.helpers;
}

static void dn_par_for(dn_task fn, void* ctx, ptrdiff_t n, int threads) {
    /* a second caller (another Python thread, the GIL released) runs its loop alone */
    if (threads <= 1 || n <= 1 || pthread_mutex_trylock(&dn_caller) != 0) {
        for (ptrdiff_t i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    if (dn_alone > 0 || dn_start_helpers(threads - 1) == 0) {
        dn_alone -= dn_alone > 0;
        dn_count[1]++;
        pthread_mutex_unlock(&dn_caller);
        for (ptrdiff_t i = 0; i < n; i++)
            fn(ctx, i, 0);
        return;
    }
    uint32_t s = __atomic_load_n(&dn_pool.seq, __ATOMIC_RELAXED);
    __atomic_store_n(&dn_pool.seq, s + 1, __ATOMIC_RELAXED);
    __atomic_thread_fence(__ATOMIC_RELEASE);
    __atomic_store_n(&dn_pool.fn, fn, __ATOMIC_RELAXED);
    __atomic_store_n(&dn_pool.ctx, ctx, __ATOMIC_RELAXED);
    __atomic_store_n(&dn_pool.n, n, __ATOMIC_RELAXED);
    __atomic_store_n(&dn_pool.threads, threads, __ATOMIC_RELAXED);
    __atomic_store_n(&dn_pool.done, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&dn_pool.ticket, (uint64_t)(s + 2) << 32, __ATOMIC_RELEASE);
    __atomic_store_n(&dn_pool.seq, s + 2, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&dn_pool.sleepers, __ATOMIC_SEQ_CST)) {
        pthread_mutex_lock(&dn_pool.mu);
        pthread_cond_broadcast(&dn_pool.cv);
        pthread_mutex_unlock(&dn_pool.mu);
    }
    long long c0 = dn_cpu_ns(), start = dn_now_ns(), t0 = start, worked, waited = 0, wall, lost;
    dn_work(s + 2, fn, ctx, n, 0);
    worked = dn_now_ns() - t0;
    /* only items a helper holds are left: a preempted helper (a loaded machine) gets the core */
    if (__atomic_load_n(&dn_pool.done, __ATOMIC_ACQUIRE) < n) {
        t0 = dn_now_ns();
        for (unsigned spins = 1; __atomic_load_n(&dn_pool.done, __ATOMIC_ACQUIRE) < n; spins++) {
            if (spins % 4096 == 0)
                sched_yield();
            else
                dn_relax();
        }
        waited = dn_now_ns() - t0;
    }
    dn_count[0]++;
    wall = dn_now_ns() - start;
    lost = wall - (dn_cpu_ns() - c0);
    if ((waited > worked && waited > DN_WAIT_FLOOR_NS) ||
        (4 * lost > wall && lost > DN_WAIT_FLOOR_NS)) {
        dn_count[2]++;
        dn_alone = dn_backoff;
        dn_backoff = dn_backoff < DN_BACKOFF_MAX ? 2 * dn_backoff : DN_BACKOFF_MAX;
        dn_good = 0;
    } else if (++dn_good >= DN_GOOD_RUN) {
        dn_backoff = dn_backoff > 1 ? dn_backoff / 2 : 1;
        dn_good = 0;
    }
    pthread_mutex_unlock(&dn_caller);
}

#endif
