/*
 * bench_sync.c - libmp's Lock, RLock, Semaphore, Condition, Event and
 * Barrier against CPython's multiprocessing ones and against the least the
 * system calls can do (rawsync.h: atomics and futexes in shared memory):
 *
 *   lock_uncontended, rlock_uncontended  one process, acquire+release
 *                         pairs: seconds a pair (the fastest of five chunks
 *                         of a run: what else runs only ever slows a loop
 *                         that makes no system call)
 *   lock_pingpong         two processes hand two Locks, both held, back and
 *                         forth (A releases the first and takes the second,
 *                         B the other way round): round trips a second
 *   cond_pingpong         two processes take turns on one Condition
 *                         (notify, then wait): round trips a second
 *   event_latency         from set() in one process to wait() returning in
 *                         another that was asleep in it: seconds (the
 *                         median of a run's samples)
 *   barrier  (2, 4, 8)    every process waits on one Barrier, again and
 *                         again: rounds a second
 *   semaphore (4)         four processes acquire and release one
 *                         Semaphore(2): pairs a second, all of them together
 *   lock_timeout, cond_timeout, event_timeout, barrier_timeout
 *                         one process: Lock.acquire(timeout=0.1) on a held
 *                         Lock, Condition.wait(0.1), Event.wait(0.1) on a
 *                         clear Event, Barrier(2).wait(0.1) alone (then
 *                         reset(), untimed): seconds past 0.1 that the call
 *                         returns (the median of a run's samples); the raw
 *                         limit is a FUTEX_WAIT of 0.1 s on a word nobody
 *                         changes
 *
 * One run; in every round each scenario runs libmp, CPython and the raw
 * limit in an order that rotates from round to round, so the machine's load
 * falls on all alike.  libmp's children are Processes of the fork context
 * that get the objects as typed arguments (MP_ARGS); the raw limit's are the
 * same Processes, which reach their words in a MAP_SHARED mapping the
 * parent made first; CPython runs scripts/bench_sync.py, one interpreter per
 * scenario and round, which does the same with multiprocessing's fork
 * context, timed inside it.
 *
 * A sleeping waiter is what event_latency is about: before each set() the
 * parent waits until the waiter's /proc/PID/stat says S (asleep: nothing
 * else it does between two waits can sleep), looking again after each
 * sched_yield(): the kernel offers no wake-up for "another process went to
 * sleep", and this waiting is outside the timed span.
 *
 *   mp-bench-sync [--rounds R] [--scale F] [--python PATH] [--out FILE]
 *                 [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "children.h"
#include "common.h"
#include "mp.h"
#include "rawsync.h"

#define MAX_PROCS 8
#define CHUNKS 5
/* Seconds a run may take before the benchmark gives up on it. */
#define RUN_LIMIT BENCH_RUN_LIMIT

enum impl { RAW, LIBMP, CPY, NIMPL };
static const char *const impl_keys[NIMPL] = { "raw_futex", "libmp",
                                              "cpython" };
static const char *const impl_names[NIMPL] = { "raw futex", "libmp",
                                               "CPython" };

enum scen { LOCK_UNC, RLOCK_UNC, LOCK_PP, COND_PP, EVENT_LAT, BARRIER_2,
            BARRIER_4, BARRIER_8, SEM_4, LOCK_TO, COND_TO, EVENT_TO,
            BARRIER_TO, NSCEN };
static const struct scenario {
    const char *name;    /* the results' "scenario", bench_sync.py's */
    const char *key;     /* the ratios': sync.<key>.X_over_Y */
    const char *label;   /* the printed table's */
    int procs;
    bool rate;           /* a figure per second, else seconds an operation */
    double shown;        /* the printed table's unit, in the figure's */
    const char *unit;
    double count[NIMPL]; /* operations a run at scale 1 */
} scens[NSCEN] = {
    { "lock_uncontended", "lock_uncontended", "Lock acquire+release, ns",
      1, false, 1e9, "s", { 1e7, 1e7, 2e6 } },
    { "rlock_uncontended", "rlock_uncontended", "RLock acquire+release, ns",
      1, false, 1e9, "s", { 1e7, 1e7, 2e6 } },
    { "lock_pingpong", "lock_pingpong", "Lock ping-pong, round trips/s",
      2, true, 1, "round trips/s", { 2e4, 2e4, 2e4 } },
    { "cond_pingpong", "cond_pingpong", "Condition ping-pong, round trips/s",
      2, true, 1, "round trips/s", { 2e4, 2e4, 1e4 } },
    { "event_latency", "event_latency", "Event set -> waiter awake, us",
      2, false, 1e6, "s", { 2000, 2000, 1000 } },
    { "barrier", "barrier.2p", "Barrier, 2 processes, rounds/s",
      2, true, 1, "rounds/s", { 2e4, 2e4, 3e3 } },
    { "barrier", "barrier.4p", "Barrier, 4 processes, rounds/s",
      4, true, 1, "rounds/s", { 1e4, 1e4, 1500 } },
    { "barrier", "barrier.8p", "Barrier, 8 processes, rounds/s",
      8, true, 1, "rounds/s", { 5e3, 5e3, 600 } },
    { "semaphore", "semaphore.4p", "Semaphore(2), 4 processes, pairs/s",
      4, true, 1, "acquire+release/s", { 4e6, 4e6, 2e6 } },
    { "lock_timeout", "lock_timeout", "Lock.acquire(timeout=0.1) late, us",
      1, false, 1e6, "s", { 20, 20, 20 } },
    { "cond_timeout", "cond_timeout", "Condition.wait(0.1) late, us",
      1, false, 1e6, "s", { 20, 20, 20 } },
    { "event_timeout", "event_timeout", "Event.wait(0.1) late, us",
      1, false, 1e6, "s", { 20, 20, 20 } },
    { "barrier_timeout", "barrier_timeout", "Barrier.wait(0.1) late, us",
      1, false, 1e6, "s", { 20, 20, 20 } },
};

/* One figure a round: [scenario][impl][round]. */
static double fig[NSCEN][NIMPL][64];
static int rounds = 5;
static double scale = 1.0;
static char py_version[32] = "?";

/* An uncontended run keeps half its length under --quick: a shorter one
 * is a few milliseconds, at the mercy of one time slice of the host. */
static long count_for(enum scen s, enum impl i)
{
    if (s >= LOCK_TO) /* 0.1 s a sample */
        return (long)fmax(5, scens[s].count[i] * scale);
    if (scens[s].procs == 1)
        return (long)fmax(5000, scens[s].count[i] * fmax(scale, 0.5));
    return (long)fmax(50, scens[s].count[i] * scale);
}

/* the raw limit's words, mapped before any child exists */

static struct raw_area {
    alignas(64) _Atomic uint32_t m1;
    alignas(64) _Atomic uint32_t m2;
    struct raw_cond cond;
    struct raw_event event;
    struct raw_barrier barrier;
    struct raw_sem sem;
    alignas(64) _Atomic uint32_t idle; /* nobody changes it */
} *raw;

/* children: Processes of the fork context, daemonic so that a benchmark
 * that gives up leaves none behind; a watchdog kills them on a hang
 * (children.h) */

static mp_context *fork_ctx;

static mp_process *start(const mp_target *t, const mp_arg *args, size_t n)
{
    return bench_child(fork_ctx, t, args, n);
}

static double median(double *v, int n)
{
    return bench_quantile(v, (size_t)n, 0.5);
}

/* uncontended: one process, no child */

static double run_uncontended(enum impl i, bool recursive, long n)
{
    long per = n / CHUNKS;
    double t[CHUNKS];
    mp_lock *l = NULL;

    if (i == LIBMP)
        bench_check(recursive ? mp_rlock_new(&l) : mp_lock_new(&l), 0,
              "making the lock");
    atomic_store(&raw->m1, 0);
    for (int c = 0; c < CHUNKS; c++) {
        double t0 = bench_now();
        if (i == RAW) {
            for (long k = 0; k < per; k++) {
                raw_mutex_lock(&raw->m1);
                raw_mutex_unlock(&raw->m1);
            }
        } else {
            for (long k = 0; k < per; k++)
                if (mp_lock_acquire(l, 1, MP_FOREVER) != 1 ||
                    mp_lock_release(l) != 0)
                    bench_fail("acquire+release", MP_EINVAL);
        }
        t[c] = (bench_now() - t0) / (double)per;
    }
    mp_lock_free(l);
    return bench_quantile(t, CHUNKS, 0);
}

/* ping-pong through two Locks: the parent is A, the child B */

MP_TARGET(lock_pp_libmp)
{
    mp_lock *l1 = mp_args_lock(args, 0), *l2 = mp_args_lock(args, 1);
    long n = (long)mp_args_int(args, 2);
    int r;

    for (long k = 0; k < n; k++)
        if ((r = mp_lock_acquire(l1, 1, MP_FOREVER)) != 1 ||
            (r = mp_lock_release(l2)) != 0)
            return bench_child_fail("lock ping-pong", r);
    return 0;
}

MP_TARGET(lock_pp_raw)
{
    long n = (long)mp_args_int(args, 0);

    for (long k = 0; k < n; k++) {
        raw_mutex_lock(&raw->m1);
        raw_mutex_unlock(&raw->m2);
    }
    return 0;
}

static double run_lock_pp(enum impl i, long n)
{
    mp_lock *l1 = NULL, *l2 = NULL;
    mp_process *p;
    double t0 = 0, t;

    if (i == LIBMP) {
        bench_check(mp_lock_new(&l1), 0, "Lock()");
        bench_check(mp_lock_new(&l2), 0, "Lock()");
        bench_check(mp_lock_acquire(l1, 1, MP_FOREVER), 1, "acquire");
        bench_check(mp_lock_acquire(l2, 1, MP_FOREVER), 1, "acquire");
        p = start(&lock_pp_libmp_target, MP_ARGS(l1, l2, n + 1));
    } else {
        atomic_store(&raw->m1, 1);
        atomic_store(&raw->m2, 1);
        p = start(&lock_pp_raw_target, MP_ARGS(n + 1));
    }
    for (long k = 0; k <= n; k++) {
        if (k == 1)
            t0 = bench_now(); /* the first round trip waits for the child */
        if (i == LIBMP) {
            if (mp_lock_release(l1) != 0 ||
                mp_lock_acquire(l2, 1, MP_FOREVER) != 1)
                bench_fail("lock ping-pong", MP_EINVAL);
        } else {
            raw_mutex_unlock(&raw->m1);
            raw_mutex_lock(&raw->m2);
        }
    }
    t = bench_now() - t0;
    bench_children_join(&p, 1);
    mp_lock_free(l1);
    mp_lock_free(l2);
    return (double)n / t;
}

/* ping-pong on a Condition: B holds the lock, says so, and waits; A takes
 * the lock (so B waits by then); each then notifies and waits in turn */

MP_TARGET(cond_pp_libmp)
{
    mp_cond *c = mp_args_cond(args, 0);
    mp_queue *back = mp_args_queue(args, 1);
    long n = (long)mp_args_int(args, 2);
    int r;

    if ((r = mp_cond_acquire(c, 1, MP_FOREVER)) != 1 ||
        (r = mp_queue_put_double(back, 0)) < 0)
        return bench_child_fail("condition set-up", r);
    for (long k = 0; k < n; k++)
        if ((r = mp_cond_wait(c, MP_FOREVER)) != 1 ||
            (r = mp_cond_notify(c, 1)) != 0)
            return bench_child_fail("condition ping-pong", r);
    return (r = mp_cond_release(c)) != 0 ? bench_child_fail("release", r) : 0;
}

MP_TARGET(cond_pp_raw)
{
    mp_queue *back = mp_args_queue(args, 0);
    long n = (long)mp_args_int(args, 1);

    raw_mutex_lock(&raw->m1);
    if (mp_queue_put_double(back, 0) < 0)
        return 3;
    for (long k = 0; k < n; k++) {
        raw_cond_wait(&raw->cond, &raw->m1);
        raw_cond_notify(&raw->cond);
    }
    raw_mutex_unlock(&raw->m1);
    return 0;
}

static double run_cond_pp(enum impl i, long n)
{
    mp_cond *c = NULL;
    mp_queue *back;
    mp_process *p;
    double t0 = 0, t;

    bench_check(mp_queue_new(&back, 0), 0, "Queue()");
    if (i == LIBMP) {
        bench_check(mp_cond_new(&c, NULL), 0, "Condition()");
        p = start(&cond_pp_libmp_target, MP_ARGS(c, back, n + 1));
    } else {
        atomic_store(&raw->m1, 0);
        atomic_store(&raw->cond.seq, 0);
        p = start(&cond_pp_raw_target, MP_ARGS(back, n + 1));
    }
    if (mp_queue_get_double(back, &t, RUN_LIMIT) < 0)
        bench_fail("the condition's child did not start", MP_ETIMEDOUT);
    if (i == LIBMP)
        bench_check(mp_cond_acquire(c, 1, MP_FOREVER), 1, "acquire");
    else
        raw_mutex_lock(&raw->m1);
    for (long k = 0; k <= n; k++) {
        if (k == 1)
            t0 = bench_now();
        if (i == LIBMP) {
            if (mp_cond_notify(c, 1) != 0 || mp_cond_wait(c, MP_FOREVER) != 1)
                bench_fail("condition ping-pong", MP_EINVAL);
        } else {
            raw_cond_notify(&raw->cond);
            raw_cond_wait(&raw->cond, &raw->m1);
        }
    }
    t = bench_now() - t0;
    if (i == LIBMP)
        bench_check(mp_cond_release(c), 0, "release");
    else
        raw_mutex_unlock(&raw->m1);
    bench_children_join(&p, 1);
    mp_cond_free(c);
    mp_queue_free(back);
    return (double)n / t;
}

/* Event: the child waits, reads the clock as it wakes, clears the event and
 * sends the time back; the parent sets it once the child sleeps again */

MP_TARGET(event_libmp)
{
    mp_event *e = mp_args_event(args, 0);
    mp_queue *back = mp_args_queue(args, 1);
    long n = (long)mp_args_int(args, 2);
    int r;

    for (long k = 0; k < n; k++) {
        double t;
        if ((r = mp_event_wait(e, MP_FOREVER)) != 1)
            return bench_child_fail("Event.wait", r);
        t = bench_now();
        if ((r = mp_event_clear(e)) != 0 ||
            (r = mp_queue_put_double(back, t)) < 0)
            return bench_child_fail("Event.clear", r);
    }
    return 0;
}

MP_TARGET(event_raw)
{
    mp_queue *back = mp_args_queue(args, 0);
    long n = (long)mp_args_int(args, 1);

    for (long k = 0; k < n; k++) {
        double t;
        raw_event_wait(&raw->event);
        t = bench_now();
        raw_event_clear(&raw->event);
        if (mp_queue_put_double(back, t) < 0)
            return 3;
    }
    return 0;
}

/* Returns once the process whose stat file fd is sleeps (state S). */
static void await_asleep(int fd)
{
    double deadline = bench_now() + RUN_LIMIT;
    char buf[512];

    for (;;) {
        ssize_t k = pread(fd, buf, sizeof(buf) - 1, 0);
        char *p;
        if (k <= 0)
            bench_die("cannot read the waiter's /proc/PID/stat");
        buf[k] = '\0';
        p = strrchr(buf, ')'); /* the name in parentheses may hold anything */
        if (p != NULL && p[1] == ' ' && p[2] == 'S')
            return;
        if (bench_now() > deadline)
            bench_die("the Event's waiter never went to sleep");
        sched_yield();
    }
}

static double run_event(enum impl i, long n)
{
    mp_event *e = NULL;
    mp_queue *back;
    mp_process *p;
    double *lat = malloc((size_t)n * sizeof(*lat)), m;
    char path[64];
    pid_t pid;
    int fd;

    if (lat == NULL)
        bench_die("out of memory");
    bench_check(mp_queue_new(&back, 0), 0, "Queue()");
    if (i == LIBMP) {
        bench_check(mp_event_new(&e), 0, "Event()");
        p = start(&event_libmp_target, MP_ARGS(e, back, n + 1));
    } else {
        raw_event_clear(&raw->event);
        p = start(&event_raw_target, MP_ARGS(back, n + 1));
    }
    if (mp_process_pid(p, &pid) != 1)
        bench_die("no pid");
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        bench_die("cannot open the waiter's /proc/PID/stat");
    for (long k = 0; k <= n; k++) {
        double t0, t1;
        await_asleep(fd);
        t0 = bench_now();
        if (i == LIBMP)
            bench_check(mp_event_set(e), 0, "Event.set");
        else
            raw_event_set(&raw->event);
        if (mp_queue_get_double(back, &t1, RUN_LIMIT) < 0)
            bench_fail("the Event's waiter did not answer", MP_ETIMEDOUT);
        if (k > 0) /* the first one finds the child just started */
            lat[k - 1] = t1 - t0;
    }
    close(fd);
    bench_children_join(&p, 1);
    mp_event_free(e);
    mp_queue_free(back);
    m = median(lat, (int)n);
    free(lat);
    return m;
}

/* Barrier: every child waits once (all have started then), reads the
 * clock, waits n times more, reads it again and sends both */

static int send_span(mp_queue *back, double t0, double t1)
{
    double span[2] = { t0, t1 };

    return mp_queue_put(back, span, sizeof(span), 1, MP_FOREVER);
}

MP_TARGET(barrier_libmp)
{
    mp_barrier *b = mp_args_barrier(args, 0);
    mp_queue *back = mp_args_queue(args, 1);
    long n = (long)mp_args_int(args, 2);
    double t0;
    int r;

    if ((r = mp_barrier_wait(b, MP_BARRIER_DEFAULT)) < 0)
        return bench_child_fail("Barrier.wait", r);
    t0 = bench_now();
    for (long k = 0; k < n; k++)
        if ((r = mp_barrier_wait(b, MP_BARRIER_DEFAULT)) < 0)
            return bench_child_fail("Barrier.wait", r);
    return send_span(back, t0, bench_now()) < 0 ? 3 : 0;
}

MP_TARGET(barrier_raw)
{
    mp_queue *back = mp_args_queue(args, 0);
    long n = (long)mp_args_int(args, 1);
    uint32_t parties = (uint32_t)mp_args_int(args, 2), sense = 0;
    double t0;

    raw_barrier_wait(&raw->barrier, parties, &sense);
    t0 = bench_now();
    for (long k = 0; k < n; k++)
        raw_barrier_wait(&raw->barrier, parties, &sense);
    return send_span(back, t0, bench_now()) < 0 ? 3 : 0;
}

/* The spans of procs children: ops over the earliest start to the latest
 * end. */
static double collect_spans(mp_queue *back, int procs, double ops)
{
    double lo = INFINITY, hi = -INFINITY;

    for (int k = 0; k < procs; k++) {
        double span[2];
        size_t len;
        if (mp_queue_get_into(back, span, sizeof(span), &len, 1,
                              RUN_LIMIT) < 0 || len != sizeof(span))
            bench_fail("a child did not report", MP_ETIMEDOUT);
        lo = fmin(lo, span[0]);
        hi = fmax(hi, span[1]);
    }
    return ops / (hi - lo);
}

static double run_barrier(enum impl i, int procs, long n)
{
    mp_barrier *b = NULL;
    mp_process *ps[MAX_PROCS];
    mp_queue *back;
    double v;

    bench_check(mp_queue_new(&back, 0), 0, "Queue()");
    if (i == LIBMP) {
        bench_check(mp_barrier_new(&b, procs, NULL, MP_FOREVER), 0, "Barrier()");
    } else {
        atomic_store(&raw->barrier.count, 0);
        atomic_store(&raw->barrier.sense, 0);
    }
    for (int k = 0; k < procs; k++)
        ps[k] = i == LIBMP ? start(&barrier_libmp_target, MP_ARGS(b, back, n))
                           : start(&barrier_raw_target,
                                   MP_ARGS(back, n, procs));
    v = collect_spans(back, procs, (double)n);
    bench_children_join(ps, procs);
    mp_barrier_free(b);
    mp_queue_free(back);
    return v;
}

/* Semaphore(2): every child says it is ready and waits for the word, then
 * acquires and releases n times */

static int await_go(mp_queue *back, mp_queue *go)
{
    char c;
    size_t len;

    if (mp_queue_put(back, "r", 1, 1, MP_FOREVER) < 0)
        return -1;
    return mp_queue_get_into(go, &c, 1, &len, 1, MP_FOREVER);
}

MP_TARGET(sem_libmp)
{
    mp_lock *s = mp_args_lock(args, 0);
    mp_queue *back = mp_args_queue(args, 1), *go = mp_args_queue(args, 2);
    long n = (long)mp_args_int(args, 3);
    double t0;
    int r;

    if (await_go(back, go) < 0)
        return 3;
    t0 = bench_now();
    for (long k = 0; k < n; k++)
        if ((r = mp_lock_acquire(s, 1, MP_FOREVER)) != 1 ||
            (r = mp_lock_release(s)) != 0)
            return bench_child_fail("Semaphore", r);
    return send_span(back, t0, bench_now()) < 0 ? 3 : 0;
}

MP_TARGET(sem_raw)
{
    mp_queue *back = mp_args_queue(args, 0), *go = mp_args_queue(args, 1);
    long n = (long)mp_args_int(args, 2);
    double t0;

    if (await_go(back, go) < 0)
        return 3;
    t0 = bench_now();
    for (long k = 0; k < n; k++) {
        raw_sem_wait(&raw->sem);
        raw_sem_post(&raw->sem);
    }
    return send_span(back, t0, bench_now()) < 0 ? 3 : 0;
}

static double run_sem(enum impl i, int procs, long n)
{
    mp_lock *s = NULL;
    mp_process *ps[MAX_PROCS];
    mp_queue *back, *go;
    long per = n / procs;
    double v;

    bench_check(mp_queue_new(&back, 0), 0, "Queue()");
    bench_check(mp_queue_new(&go, 0), 0, "Queue()");
    if (i == LIBMP) {
        bench_check(mp_semaphore_new(&s, 2), 0, "Semaphore(2)");
    } else {
        atomic_store(&raw->sem.value, 2);
        atomic_store(&raw->sem.waiters, 0);
    }
    for (int k = 0; k < procs; k++)
        ps[k] = i == LIBMP ? start(&sem_libmp_target,
                                   MP_ARGS(s, back, go, per))
                           : start(&sem_raw_target, MP_ARGS(back, go, per));
    for (int k = 0; k < procs; k++) {
        char c;
        size_t len;
        if (mp_queue_get_into(back, &c, 1, &len, 1, RUN_LIMIT) < 0)
            bench_fail("a Semaphore child did not start", MP_ETIMEDOUT);
    }
    for (int k = 0; k < procs; k++)
        bench_check(mp_queue_put(go, "g", 1, 1, MP_FOREVER), 0, "put");
    v = collect_spans(back, procs, (double)(per * procs));
    bench_children_join(ps, procs);
    mp_lock_free(s);
    mp_queue_free(back);
    mp_queue_free(go);
    return v;
}

/* timeouts: one process waits 0.1 s on an object nobody will signal and
 * records how late the call returns */

#define TIMEOUT 0.1

static double run_timeout(enum scen s, enum impl i, long n)
{
    static const struct timespec rel = { 0, (long)(TIMEOUT * 1e9) };
    double *late = malloc((size_t)n * sizeof(*late)), m;
    mp_lock *l = NULL;
    mp_cond *c = NULL;
    mp_event *e = NULL;
    mp_barrier *b = NULL;

    if (late == NULL)
        bench_die("out of memory");
    if (i == LIBMP) {
        if (s == LOCK_TO) {
            bench_check(mp_lock_new(&l), 0, "Lock()");
            bench_check(mp_lock_acquire(l, 1, MP_FOREVER), 1, "Lock.acquire");
        } else if (s == COND_TO) {
            bench_check(mp_cond_new(&c, NULL), 0, "Condition()");
            bench_check(mp_cond_acquire(c, 1, MP_FOREVER), 1, "Condition.acquire");
        } else if (s == EVENT_TO) {
            bench_check(mp_event_new(&e), 0, "Event()");
        } else {
            bench_check(mp_barrier_new(&b, 2, NULL, MP_FOREVER), 0, "Barrier(2)");
        }
    }
    for (long k = 0; k < n; k++) {
        double t0 = bench_now(), t1;
        int r = 0, want = 0;
        if (i == RAW)
            raw_futex_wait_for(&raw->idle, 0, &rel);
        else if (s == LOCK_TO)
            r = mp_lock_acquire(l, 1, TIMEOUT);
        else if (s == COND_TO)
            r = mp_cond_wait(c, TIMEOUT);
        else if (s == EVENT_TO)
            r = mp_event_wait(e, TIMEOUT);
        else
            r = mp_barrier_wait(b, TIMEOUT), want = MP_EBROKENBARRIER;
        t1 = bench_now();
        bench_check(r, want, "a wait that should have timed out");
        if (b != NULL)
            bench_check(mp_barrier_reset(b), 0, "Barrier.reset");
        late[k] = t1 - t0 - TIMEOUT;
    }
    if (l != NULL)
        bench_check(mp_lock_release(l), 0, "Lock.release");
    if (c != NULL)
        bench_check(mp_cond_release(c), 0, "Condition.release");
    mp_lock_free(l);
    mp_cond_free(c);
    mp_event_free(e);
    mp_barrier_free(b);
    m = median(late, (int)n);
    free(late);
    return m;
}

static double run_c(enum scen s, enum impl i)
{
    long n = count_for(s, i);

    switch (s) {
    case LOCK_UNC: return run_uncontended(i, false, n);
    case RLOCK_UNC: return run_uncontended(i, true, n);
    case LOCK_PP: return run_lock_pp(i, n);
    case COND_PP: return run_cond_pp(i, n);
    case EVENT_LAT: return run_event(i, n);
    case SEM_4: return run_sem(i, scens[s].procs, n);
    case LOCK_TO: case COND_TO: case EVENT_TO: case BARRIER_TO:
        return run_timeout(s, i, n);
    default: return run_barrier(i, scens[s].procs, n);
    }
}

/* CPython: scripts/bench_sync.py, one scenario */

static double run_cpython(const char *python, enum scen s)
{
    char n[32], procs[16];
    char *argv[] = { (char *)python, "scripts/bench_sync.py", "--scenario",
                     (char *)scens[s].name, "--n", n, "--procs", procs,
                     NULL };

    snprintf(n, sizeof(n), "%ld", count_for(s, CPY));
    snprintf(procs, sizeof(procs), "%d", scens[s].procs);
    return bench_cpython(argv, py_version, sizeof(py_version), NULL);
}

/* reporting */

static double med(const double *v)
{
    return bench_quantile(v, (size_t)rounds, 0.5);
}

/* The time an operation takes, round r. */
static double time_of(enum scen s, enum impl i, int r)
{
    return scens[s].rate ? 1 / fig[s][i][r] : fig[s][i][r];
}

/* a's time over b's, round by round; the median of those. */
static json_t *ratio(enum scen s, enum impl a, enum impl b, double *m)
{
    double ta[64], tb[64];

    for (int r = 0; r < rounds; r++)
        ta[r] = time_of(s, a, r), tb[r] = time_of(s, b, r);
    return bench_round_ratios(ta, tb, rounds, m);
}

static void print_fig(enum scen s, double v)
{
    if (!scens[s].rate)
        printf(" %12.3f", v * scens[s].shown);
    else
        printf(" %12.0f", v);
}

int main(int argc, char **argv)
{
    struct bench_opts opt;
    json_t *root, *results, *ratios;

    bench_prog = "mp-bench-sync";
    mp_main(argc, argv);
    bench_options(argc, argv, 0.25, &opt);
    rounds = opt.rounds, scale = opt.scale;
    raw = mmap(NULL, sizeof(*raw), PROT_READ | PROT_WRITE,
               MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED)
        bench_die("mmap failed");
    bench_check(mp_get_context(&fork_ctx, "fork"), 0, "get_context");

    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < NSCEN; s++)
            for (int k = 0; k < NIMPL; k++) {
                enum impl i = (enum impl)((r + s + k) % NIMPL);
                bench_progress("round %d/%d: %s, %s", r + 1, rounds,
                               scens[s].label, impl_names[i]);
                fig[s][i][r] = i == CPY ? run_cpython(opt.python, s)
                                        : run_c(s, i);
            }
    bench_progress(NULL);

    root = json_object();
    results = json_array();
    ratios = json_object();
    printf("Synchronisation (median of %d rounds, min-max of rounds; "
           "CPython %s)\n", rounds, py_version);
    printf("  %-38s %12s %12s %12s %9s %9s %9s\n", "", "raw futex",
           "libmp", "CPython", "CPy/libmp", "libmp/raw", "CPy/raw");
    for (int s = 0; s < NSCEN; s++) {
        double cpy_lib, lib_raw, cpy_raw;
        char key[128];

        printf("  %-38s", scens[s].label);
        for (int i = 0; i < NIMPL; i++) {
            json_t *rs = json_array();
            for (int r = 0; r < rounds; r++)
                json_array_append_new(rs, json_real(fig[s][i][r]));
            json_array_append_new(results, json_pack(
                "{s:s, s:s, s:i, s:s, s:f, s:f, s:f, s:o}", "scenario",
                scens[s].name, "impl", impl_keys[i], "procs", scens[s].procs,
                "unit", scens[s].unit, "median", med(fig[s][i]), "min",
                bench_quantile(fig[s][i], (size_t)rounds, 0), "max",
                bench_quantile(fig[s][i], (size_t)rounds, 1), "rounds", rs));
            print_fig((enum scen)s, med(fig[s][i]));
        }
        snprintf(key, sizeof(key), "sync.%s.cpython_over_libmp",
                 scens[s].key);
        json_object_set_new(ratios, key, ratio((enum scen)s, CPY, LIBMP,
                                               &cpy_lib));
        snprintf(key, sizeof(key), "sync.%s.libmp_over_raw_futex",
                 scens[s].key);
        json_object_set_new(ratios, key, ratio((enum scen)s, LIBMP, RAW,
                                               &lib_raw));
        /* how far the limit itself is from CPython: information */
        snprintf(key, sizeof(key), "sync.%s.cpython_over_raw_futex",
                 scens[s].key);
        json_object_set_new(ratios, key, ratio((enum scen)s, CPY, RAW,
                                               &cpy_raw));
        printf(" %9.2f %9.3f %9.2f\n", cpy_lib, lib_raw, cpy_raw);
        printf("  %-38s", "  (min-max of rounds)");
        for (int i = 0; i < NIMPL; i++) {
            double lo = bench_quantile(fig[s][i], (size_t)rounds, 0);
            double hi = bench_quantile(fig[s][i], (size_t)rounds, 1);
            double k = scens[s].shown;
            printf(" %5.*f-%-6.*f", scens[s].rate ? 0 : 1, lo * k,
                   scens[s].rate ? 0 : 1, hi * k);
        }
        printf("\n");
    }
    bench_env_json(root, py_version);
    json_object_set_new(root, "rounds", json_integer(rounds));
    json_object_set_new(root, "scale", json_real(scale));
    json_object_set_new(root, "results", results);
    json_object_set_new(root, "ratios", ratios);
    if (opt.out != NULL && json_dump_file(root, opt.out, JSON_INDENT(1)) < 0)
        bench_die("cannot write the results");
    json_decref(root);
    return 0;
}
