/*
 * sync.c - Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event and
 * Barrier (CPython: synchronize.py, _multiprocessing/semaphore.c and
 * threading.Barrier), in shared memory.
 *
 * Every object is a memfd of its own, mapped MAP_SHARED by each process
 * that holds it and handed to a child as a descriptor (an mp_conn flagged
 * MP__CONN_SYNC, which args.c and process.c pass on as they pass a queue's).
 * A composite object keeps all its cells in its one page: a Condition made
 * with its own RLock, an Event, a Barrier.  A Condition given a lock refers
 * to that lock's own page.  The page starts with a header (magic, version,
 * type); whatever a process reads from it is bounded before use, and a
 * value no libmp process writes is MP_ESYNCCORRUPT.
 *
 * A semaphore is a 32-bit futex word, its value, and a count of sleepers:
 * acquire is one compare-and-swap when the value is positive; release is
 * one, then a wake-up when someone sleeps.  What CPython keeps per process
 * (SemLock.count, last_tid) is kept in the process's mp_lock.
 *
 * An Event is one futex word: its flag, whether anyone sleeps, and a
 * generation.  A Barrier is one 64-bit word (generation, phase, count),
 * and a slot for each thread inside it that names the thread, so that the
 * death of any of them is seen.  Robust locks use glibc's robust
 * process-shared mutex.  harness/lib/README.md has the design.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "futex.h"
#include "internal.h"
#include "live.h"
#include "robust.h"
#include "spin.h"

#ifdef MP_TEST_HOOKS
#include "test_hooks.h"
#endif

#if defined(__SANITIZE_THREAD__)
#define SYNC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SYNC_TSAN 1
#endif
#endif
#ifndef SYNC_TSAN
#define SYNC_TSAN 0
#endif

#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define SYNC_HAVE_SINGLE_THREADED 1
#endif
#endif
#ifndef SYNC_HAVE_SINGLE_THREADED
#define SYNC_HAVE_SINGLE_THREADED 0
#endif

#ifdef MP_TEST_HOOKS
int mp__sync_fault;
/* The process dies at fault point n, as a SIGKILL at that instant would
 * kill it. */
#define FAULT(n)                                                              \
    do {                                                                      \
        if (__builtin_expect(mp__sync_fault == (n), 0))                       \
            kill(getpid(), SIGKILL);                                          \
    } while (0)
#else
#define FAULT(n) ((void)0)
#endif

#define SMAGIC 0x636e79537062696cULL /* "libmpSync" */
#define SVERSION 2

enum { T_LOCK = 1, T_COND = 2, T_EVENT = 3, T_BARRIER = 4 };
/* A lock's kind, as its repr names it. */
enum { K_LOCK = 1, K_RLOCK = 2, K_SEM = 3, K_BSEM = 4 };
/* hdr.flags */
enum {
    F_ROBUST = 1,   /* T_LOCK: a robust lock */
    F_OWN_LOCK = 2, /* T_COND: the page holds the condition's RLock */
};

/* Seconds between a sleeper's looks at whether a peer died: the kernel
 * wakes no futex sleeper when another process dies (only the waiters of
 * a robust mutex the dead held). */
#define RECHECK 0.1
/* A Barrier's slots: its parties' and these more. */
#define SPARE_SLOTS 64
#define MAX_SLOTS 65536
#define ACTION_MAX MP_TARGET_NAME_MAX

/* The shared page. */

struct hdr {
    _Atomic uint64_t magic; /* written last: the rest is ready */
    uint32_t version, type;
    uint32_t flags, nslots;
};

/* A semaphore (and a robust lock's state). */
struct sem {
    _Atomic uint32_t value;   /* the futex word */
    _Atomic uint32_t waiters; /* sleepers on value: a hint to wake */
    uint32_t kind;            /* K_* */
    int32_t maxvalue;
    _Atomic int32_t owner; /* robust: the holder's kernel thread id */
    _Atomic int32_t waker_cpu; /* where the last wake-up came from */
    pthread_mutex_t m; /* robust only */
};

struct lock_page {
    struct hdr h;
    struct sem s;
};

/* CPython's Condition: its lock, then Semaphore(0) three times. */
struct cond_page {
    struct hdr h;
    struct sem lock; /* F_OWN_LOCK */
    struct sem sleeping, woken, wait;
};

/* An Event: one futex word (see "Event" below). */
struct event_page {
    struct hdr h;
    _Atomic uint32_t word;
    uint32_t pad;
};

/* A thread inside a Barrier's wait(): its tag (see "Barrier" below) and
 * who it is. */
struct bslot {
    _Atomic uint64_t tag;
    struct mp__thread_id id;
};

struct barrier_page {
    struct hdr h;
    int32_t parties;
    uint32_t action_len;
    double timeout;
    char action[ACTION_MAX + 1];
    _Alignas(64) _Atomic uint64_t word;
    _Atomic uint32_t freed;    /* futex: a slot became free */
    _Atomic uint32_t freewait; /* threads waiting for a free slot */
    _Atomic int32_t waker_cpu; /* where the last wake-up came from */
    uint32_t pad;
    struct bslot slot[];
};

/* This process's objects. */

/* One mapping of an object's memfd. */
struct sync_map {
    _Atomic int refs;
    mp_conn *handle; /* owns the memfd unless borrowed */
    bool borrowed;   /* the handle is a child's argument's */
    void *base;
    size_t len;
};

struct mp_lock {
    _Atomic int refs;
    bool borrowed; /* an argument's view: the list frees it */
    struct sync_map *map;
    struct sem *s;
    int kind;      /* K_* */
    uint32_t max;  /* maxvalue, checked */
    bool robust;
    /* SemLock.count as this process sees it, and the fork generation it
     * was counted in (a fork child starts at 0, as _after_fork() sets):
     * gen << 32 | (uint32_t)count. */
    _Atomic uint64_t count;
    _Atomic uintptr_t last_tid; /* pthread_self() of the last acquirer */
    _Atomic int32_t spin;       /* a waiter's spin, ns (sem_spin()) */
};

struct mp_cond {
    _Atomic int refs;
    bool borrowed;
    struct sync_map *map;
    struct cond_page *p;
    mp_lock *lock; /* a reference of the condition's own */
    _Atomic int32_t spin[2]; /* the waits on `wait` and on `woken` */
};

struct mp_event {
    _Atomic int refs;
    bool borrowed;
    struct sync_map *map;
    struct event_page *p;
};

struct mp_barrier {
    _Atomic int refs;
    bool borrowed;
    struct sync_map *map;
    struct barrier_page *p;
    struct bslot *slot;
    uint32_t nslots;
    int parties;
    double timeout;
    char action[ACTION_MAX + 1];
    _Atomic int32_t spin; /* a sleeper's spin, ns (sem_spin()) */
};

/* threads and forks */

/* Forks this process came through (queue.c's one fork handler counts
 * them: mp__forked()): a count kept before it is 0. */
static _Atomic uint32_t fork_gen;

void mp__sync_forked(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
}


/* This thread's kernel id, cached for this fork generation (a fork
 * child's thread has another): what a robust lock's page names its holder
 * by, looked at on every robust release. */
static _Thread_local struct {
    uint32_t gen1; /* fork_gen + 1 when filled */
    pid_t tid;
} me;

static pid_t my_tid(void)
{
    uint32_t g = atomic_load_explicit(&fork_gen, memory_order_relaxed) + 1;

    if (__builtin_expect(me.gen1 != g, 0)) {
        me.gen1 = g;
        me.tid = gettid();
    }
    return me.tid;
}

/* deadlines */

/* A CPython timeout as an absolute deadline: 0 does not wait (block 0, a
 * timeout <= 0), INFINITY never ends. */
static double deadline_of(int block, double timeout)
{
    if (!block || !(timeout > 0))
        return 0;
    if (timeout >= 1e9) /* 30 years: for ever, and no time_t overflow */
        return INFINITY;
    return mp__now() + timeout;
}

/* mappings */

static size_t page_round(size_t n)
{
    long ps = sysconf(_SC_PAGESIZE);
    size_t p = ps > 0 ? (size_t)ps : 4096;

    return (n + p - 1) / p * p;
}

/* A new object's memfd of `size` bytes (zeroed), sealed: nobody can cut
 * it short under another process's mapping (a SIGBUS there). */
static int map_new(struct sync_map **out, size_t size)
{
    struct sync_map *m = calloc(1, sizeof(*m));
    int fd, r;

    *out = NULL;
    if (m == NULL)
        return -ENOMEM;
    size = page_round(size);
    if ((fd = memfd_create("libmp-sync", MFD_CLOEXEC | MFD_ALLOW_SEALING)) <
        0) {
        r = -errno;
        free(m);
        return r;
    }
    if ((m->handle = mp__conn_wrap(fd, MP__CONN_SYNC)) == NULL) {
        close(fd);
        free(m);
        return -ENOMEM;
    }
    if (ftruncate(fd, (off_t)size) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
            0 ||
        (m->base = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
                        0)) == MAP_FAILED) {
        r = -errno;
        m->base = NULL;
        mp_conn_free(m->handle);
        free(m);
        return r;
    }
    m->len = size;
    atomic_init(&m->refs, 1);
    *out = m;
    return 0;
}

/* A mapping of the object another process handed over: NULL unless it is
 * a sealed memfd holding a header of this version. */
static struct sync_map *map_attach(mp_conn *handle)
{
    struct sync_map *m;
    struct stat st;
    struct hdr *h;
    int fd = handle != NULL ? mp_conn_fileno(handle) : -1;

    if (fd < 0 || fstat(fd, &st) < 0 ||
        st.st_size < (off_t)sizeof(struct hdr) ||
        (uint64_t)st.st_size > page_round(sizeof(struct barrier_page) +
                                          (size_t)MAX_SLOTS *
                                              sizeof(struct bslot)) ||
        fcntl(fd, F_GET_SEALS) !=
            (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL))
        return NULL;
    if ((m = calloc(1, sizeof(*m))) == NULL)
        return NULL;
    m->len = (size_t)st.st_size;
    m->base = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (m->base == MAP_FAILED) {
        free(m);
        return NULL;
    }
    h = m->base;
    if (atomic_load_explicit(&h->magic, memory_order_acquire) != SMAGIC ||
        h->version != SVERSION) {
        munmap(m->base, m->len);
        free(m);
        return NULL;
    }
    m->handle = handle;
    m->borrowed = true;
    atomic_init(&m->refs, 1);
    return m;
}

static struct sync_map *map_ref(struct sync_map *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
    return m;
}

static void map_unref(struct sync_map *m)
{
    if (m == NULL ||
        atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (m->base != NULL)
        munmap(m->base, m->len);
    if (!m->borrowed)
        mp_conn_free(m->handle);
    free(m);
}

static void hdr_publish(struct hdr *h, uint32_t type, uint32_t flags,
                        uint32_t nslots)
{
    h->version = SVERSION;
    h->type = type;
    h->flags = flags;
    h->nslots = nslots;
    atomic_store_explicit(&h->magic, SMAGIC, memory_order_release);
}

/* semaphores */

/* Takes one unit if there is one: 1, 0, or MP_ESYNCCORRUPT for a value
 * above the maximum. */
static inline int sem_try(struct sem *s, uint32_t max)
{
    uint32_t v = atomic_load(&s->value);

    while (v > 0) {
        if (__builtin_expect(v > max, 0))
            return MP_ESYNCCORRUPT;
        if (atomic_compare_exchange_weak(&s->value, &v, v - 1))
            return 1;
    }
    return 0;
}

/* A waiter's spin before it sleeps: spin.h (the queue's waiters spin
 * alike); the clock is read every SPIN_LOOKS looks. */
#define SPIN_LOOKS 8

/* CPUs online, read once: a Barrier's sleepers spin only if all its
 * parties can run at once (with more, spinning takes the CPU from a party
 * still to come: 4 processes on 2 CPUs made 15 to 20% fewer rounds). */
static int online_cpus(void)
{
    static _Atomic int n;
    int k = atomic_load_explicit(&n, memory_order_relaxed);

    if (k == 0) {
        long v = sysconf(_SC_NPROCESSORS_ONLN);
        k = v > 0 && v < INT_MAX ? (int)v : 1;
        atomic_store_explicit(&n, k, memory_order_relaxed);
    }
    return k;
}

/* Spins for a unit until the budget or the deadline ends: 1, 0 (none
 * came), MP_ESYNCCORRUPT. */
static int sem_spin(struct sem *s, uint32_t max, double deadline,
                    _Atomic int32_t *budget)
{
    double end = mp__spin_end(budget, deadline);
    int r;

    if (end == 0)
        return 0;
    /* Each look pulls the word's line to this CPU, and the holder's next
     * release must take it back: looks spaced 1, 2, 4 ... 16 pauses apart
     * let a holder that releases and re-takes at once (a lock around a
     * short update) do so on its own line.  Locked increments from two
     * processes: 16 -> 47 M/s (a look every pause handed the lock over,
     * and its line, at every release). */
    int gap = 1;

    do {
        for (int i = 0; i < SPIN_LOOKS; i++) {
            for (int k = 0; k < gap; k++)
                mp__cpu_relax();
            if (atomic_load_explicit(&s->value, memory_order_relaxed) != 0 &&
                (r = sem_try(s, max)) != 0) {
                mp__spin_grow(budget);
                return r;
            }
            if (gap < 16)
                gap *= 2;
        }
    } while (mp__now() < end);
    return 0;
}

/* A release's wake-up of one sleeper, and where it came from. */
static inline void sem_wake(struct sem *s)
{
    atomic_store_explicit(&s->waker_cpu, sched_getcpu(),
                          memory_order_relaxed);
    mp__futex_wake(&s->value, 1);
}

/*
 * The wait for a unit, until the deadline: 1, 0, MP_ESYNCCORRUPT.
 *
 * No wake-up is lost: the sleeper raises `waiters` and then reads `value`
 * again; the releaser raises `value` and then reads `waiters`.  All four
 * are sequentially consistent, so in their single order either the
 * sleeper's read comes after the releaser's raise (it sees the unit and
 * does not sleep) or the releaser's read comes after the sleeper's raise
 * (it sees a sleeper and wakes one).  A wake-up that comes before the
 * sleeper is inside futex_wait() is not lost either: the kernel compares
 * value with 0 under its own lock and returns at once.  A woken sleeper
 * that loses the unit to another thread sleeps again; the winner's release
 * wakes again.  One that times out looks once more, so that a wake-up it
 * took is not wasted while a unit waits.
 */
__attribute__((noinline)) static int sem_wait_slow(struct sem *s,
                                                   uint32_t max,
                                                   double deadline,
                                                   _Atomic int32_t *budget)
{
    int r, cpu;

    if ((r = sem_spin(s, max, deadline, budget)) != 0)
        return r;
    cpu = sched_getcpu();
    atomic_fetch_add(&s->waiters, 1);
    for (;;) {
        if ((r = sem_try(s, max)) != 0)
            break;
        if (mp__futex_wait(&s->value, 0, deadline) == MP_ETIMEDOUT) {
            r = sem_try(s, max);
            break;
        }
    }
    atomic_fetch_sub(&s->waiters, 1);
    if (r == 1)
        mp__spin_learn(budget, cpu,
                   atomic_load_explicit(&s->waker_cpu, memory_order_relaxed));
    return r;
}

static int sem_acquire(struct sem *s, uint32_t max, int block,
                       double timeout, _Atomic int32_t *budget)
{
    int r = sem_try(s, max);
    double deadline;

    if (r != 0)
        return r;
    deadline = deadline_of(block, timeout);
    if (deadline == 0)
        return 0;
    return sem_wait_slow(s, max, deadline, budget);
}

/* Adds one unit unless the value is at max: 0, MP_ERELEASED,
 * MP_ESYNCCORRUPT.  The check and the increment are one atomic step, so
 * two racing releases cannot carry a BoundedSemaphore past its maximum
 * (CPython's check-then-post can). */
static inline int sem_post(struct sem *s, uint32_t max)
{
    uint32_t v = atomic_load_explicit(&s->value, memory_order_relaxed);

    do {
        if (v >= max)
            return v > max ? MP_ESYNCCORRUPT : MP_ERELEASED;
    } while (!atomic_compare_exchange_weak(&s->value, &v, v + 1));
    if (atomic_load(&s->waiters) != 0)
        sem_wake(s);
    return 0;
}

static void sem_init(struct sem *s, int kind, uint32_t value, uint32_t max)
{
    atomic_init(&s->value, value);
    atomic_init(&s->waiters, 0);
    s->kind = (uint32_t)kind;
    s->maxvalue = (int32_t)max;
    atomic_init(&s->owner, 0);
    atomic_init(&s->waker_cpu, -1);
}

/* Whether a cell is one libmp can have made, as a lock of kind `kind`
 * (0: any kind). */
static bool sem_valid(const struct sem *s, int kind)
{
    uint32_t k = s->kind;
    int32_t max = s->maxvalue;

    if (k < K_LOCK || k > K_BSEM || (kind != 0 && k != (uint32_t)kind))
        return false;
    if (k == K_LOCK || k == K_RLOCK)
        return max == 1;
    if (k == K_SEM)
        return max == INT_MAX;
    return max >= 0;
}

/* locks: the per-process count */

static inline uint32_t gen_now(void)
{
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

/* The count is kept as count + COUNT_BIAS in the low half of its word, so
 * that a count that dips below 0 (a release by one thread before the
 * acquirer's increment) borrows nothing from the generation above it. */
#define COUNT_BIAS 0x80000000u
#define GEN_MASK 0xffffffff00000000ULL

static inline int count_get(mp_lock *l)
{
    uint64_t w = atomic_load_explicit(&l->count, memory_order_acquire);

    return (uint32_t)(w >> 32) == gen_now()
               ? (int)(int32_t)((uint32_t)w - COUNT_BIAS)
               : 0;
}

/* Whether no other thread of this process can be running: one that was
 * never given a second thread (glibc says so).  Unknown: no. */
static inline bool single_threaded(void)
{
#if SYNC_HAVE_SINGLE_THREADED
    return __libc_single_threaded != 0;
#else
    return false;
#endif
}

/*
 * An RLock's count, and a robust lock's, changes only in the thread that
 * holds it (a release by another is refused first): a load and a store.
 * Any thread may release a Lock or a semaphore, and does so while the
 * thread that acquired it counts its acquire (the unit it takes orders
 * nothing after it), and a release that loses its race to another puts
 * its count back: so an update is one atomic addition, unless the process
 * has only the one thread, whose own load and store nobody can interleave.
 * A count of an earlier fork generation is replaced, not added to (a
 * compare-and-swap: a thread of the child may be doing the same).
 */
static inline void count_add(mp_lock *l, int d)
{
    uint64_t g = (uint64_t)gen_now() << 32;
    uint64_t w = atomic_load_explicit(&l->count, memory_order_relaxed);
    uint64_t dd = (uint64_t)(int64_t)d;

    if (l->kind == K_RLOCK || l->robust || single_threaded()) {
        w = (w & GEN_MASK) == g ? w + dd : g | (uint32_t)(COUNT_BIAS + dd);
        atomic_store_explicit(&l->count, w, memory_order_release);
        return;
    }
    while ((w & GEN_MASK) != g)
        if (atomic_compare_exchange_weak_explicit(
                &l->count, &w, g | (uint32_t)(COUNT_BIAS + dd),
                memory_order_release, memory_order_relaxed))
            return;
    atomic_fetch_add_explicit(&l->count, dd, memory_order_release);
}

/* CPython's thread ident (pthread_self()): unique among live threads.
 * The thread pointer is the same for glibc on these machines, read in one
 * instruction instead of a call. */
static inline uintptr_t self_token(void)
{
#if defined(__GLIBC__) && (defined(__x86_64__) || defined(__aarch64__)) && \
    (defined(__clang__) || __GNUC__ >= 11)
    return (uintptr_t)__builtin_thread_pointer();
#else
    return (uintptr_t)pthread_self();
#endif
}

/*
 * SemLock._is_mine(): count > 0 and this thread acquired last.  CPython
 * reads the pair under the GIL; here another thread may be between its
 * two stores.  The acquirer stores last_tid first and the count after it
 * (release); a reader loads the count (acquire), then last_tid: one that
 * sees the new count sees the new last_tid, and no thread takes another's
 * fresh count with its own stale last_tid for its own.  A robust lock
 * also names its holder in the page: a thread that glibc gave the
 * pthread_t of one that ended holding it finds another tid there, and is
 * not that thread.
 */
static inline bool is_mine(mp_lock *l)
{
    return count_get(l) > 0 &&
           atomic_load_explicit(&l->last_tid, memory_order_relaxed) ==
               self_token() &&
           (!l->robust || atomic_load_explicit(&l->s->owner,
                                               memory_order_relaxed) ==
                              my_tid());
}

static void acquired(mp_lock *l)
{
    atomic_store_explicit(&l->last_tid, self_token(), memory_order_relaxed);
    count_add(l, 1);
}

/* locks: objects */

static mp_lock *lock_alloc(struct sync_map *map, struct sem *s)
{
    mp_lock *l = calloc(1, sizeof(*l));

    if (l == NULL)
        return NULL;
    atomic_init(&l->refs, 1);
    atomic_init(&l->count, (uint64_t)gen_now() << 32 | COUNT_BIAS);
    mp__spin_init(&l->spin);
    l->map = map;
    l->s = s;
    l->kind = (int)s->kind;
    l->max = (uint32_t)s->maxvalue;
    return l;
}

static int lock_create(mp_lock **out, int kind, int value, int max,
                       bool robust)
{
    struct sync_map *m;
    struct lock_page *p;
    int r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (value < 0 || max < 0)
        return MP_ESEMVALUE;
    if ((r = map_new(&m, sizeof(*p))) < 0)
        return r;
    p = m->base;
    sem_init(&p->s, kind, (uint32_t)value, (uint32_t)max);
    if (robust &&
        (r = mp__robust_init(&p->s.m, PTHREAD_MUTEX_ERRORCHECK)) < 0) {
        map_unref(m);
        return r;
    }
    hdr_publish(&p->h, T_LOCK, robust ? F_ROBUST : 0, 0);
    if ((*out = lock_alloc(m, &p->s)) == NULL) {
        map_unref(m);
        return -ENOMEM;
    }
    (*out)->robust = robust;
    return 0;
}

int mp_lock_new(mp_lock **l)
{
    return lock_create(l, K_LOCK, 1, 1, false);
}

int mp_rlock_new(mp_lock **l)
{
    return lock_create(l, K_RLOCK, 1, 1, false);
}

int mp_lock_new_robust(mp_lock **l)
{
    return lock_create(l, K_LOCK, 1, 1, true);
}

int mp_rlock_new_robust(mp_lock **l)
{
    return lock_create(l, K_RLOCK, 1, 1, true);
}

int mp_semaphore_new(mp_lock **s, int value)
{
    return lock_create(s, K_SEM, value, INT_MAX, false);
}

int mp_bounded_semaphore_new(mp_lock **s, int value)
{
    return lock_create(s, K_BSEM, value, value, false);
}

static mp_lock *lock_ref(mp_lock *l)
{
    atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
    return l;
}

static void lock_unref(mp_lock *l)
{
    if (l == NULL ||
        atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    map_unref(l->map);
    free(l);
}

mp_lock *mp_lock_free(mp_lock *l)
{
    if (l != NULL && !l->borrowed)
        lock_unref(l);
    return NULL;
}

/* locks: robust */

/* A robust Lock acquired again by its holder: CPython's Lock waits for
 * itself, until the timeout or for ever. */
static int wait_for_self(double deadline)
{
    struct timespec ts;

    if (deadline == 0)
        return 0;
    while (isinf(deadline))
        pause();
    ts.tv_sec = (time_t)deadline;
    ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
           EINTR)
        ;
    return 0;
}

/* A robust lock's mutex is error-checking: its holder's relock is
 * EDEADLK (CPython's Lock then waits for itself), an unlock by another
 * thread EPERM, whatever glibc does for a plain kind. */
#define ROBUST_TYPE PTHREAD_MUTEX_ERRORCHECK

static int robust_acquire(mp_lock *l, int block, double timeout)
{
    pthread_mutex_t *m = &l->s->m;
    double deadline = deadline_of(block, timeout);
    int r;

    if (mp__robust_check(m, ROBUST_TYPE) < 0)
        return MP_ESYNCCORRUPT;
    switch ((r = mp__robust_lock_until(m, deadline))) {
    case 0:
        break;
    case EOWNERDEAD:
        mp__robust_held(m);
        if (pthread_mutex_consistent(m) != 0) {
            mp__robust_unlock(m);
            return MP_ESYNCCORRUPT;
        }
        break;
    case ETIMEDOUT:
        return 0;
    case EDEADLK:
        return wait_for_self(deadline);
    default: /* ENOTRECOVERABLE and the like: none that this file makes */
        return MP_ESYNCCORRUPT;
    }
    mp__robust_held(m);
    FAULT(1); /* held; its state not yet written */
    atomic_store_explicit(&l->s->owner, my_tid(), memory_order_relaxed);
    atomic_store_explicit(&l->s->value, 0, memory_order_relaxed);
    /* The mutex has one holder: a count this process kept before is that
     * of a thread of it that ended holding the lock, not this one's. */
    atomic_store_explicit(&l->last_tid, self_token(), memory_order_relaxed);
    atomic_store_explicit(&l->count,
                          (uint64_t)gen_now() << 32 | (COUNT_BIAS + 1),
                          memory_order_release);
    FAULT(2);
    return r == EOWNERDEAD ? MP_EOWNERDEAD : 1;
}

static int robust_release(mp_lock *l)
{
    struct sem *s = l->s;

    if (atomic_load_explicit(&s->owner, memory_order_relaxed) != my_tid())
        return atomic_load_explicit(&s->value, memory_order_relaxed) != 0
                   ? MP_ERELEASED
                   : MP_EROBUSTOWNER;
    count_add(l, -1);
    atomic_store_explicit(&s->owner, 0, memory_order_relaxed);
    atomic_store_explicit(&s->value, 1, memory_order_relaxed);
    FAULT(3); /* marked free, still held */
    /* What a peer wrote over the mutex meanwhile is put back first. */
    mp__robust_unlock(&s->m);
    FAULT(4);
    return 0;
}

/* locks: calls */

int mp_lock_acquire(mp_lock *l, int block, double timeout)
{
    struct sem *s;
    uint32_t v;
    int r;

    if (l == NULL)
        return MP_EINVAL;
    if (l->kind == K_RLOCK && is_mine(l)) {
        count_add(l, 1);
        return 1;
    }
    /* CPython takes a free lock whatever the timeout, and fails on a NaN
     * (sem_timedwait()'s EINVAL) only when it has to wait. */
    if (isnan(timeout)) {
        r = mp_lock_acquire(l, 0, 0);
        return r == 0 && block ? MP_EINVAL : r;
    }
    if (l->robust)
        return robust_acquire(l, block, timeout);
    s = l->s;
    v = atomic_load_explicit(&s->value, memory_order_relaxed);
    if (__builtin_expect(v > 0 && v <= l->max, 1) &&
        atomic_compare_exchange_strong(&s->value, &v, v - 1)) {
        acquired(l);
        return 1;
    }
    if ((r = sem_acquire(s, l->max, block, timeout, &l->spin)) == 1)
        acquired(l);
    return r;
}

int mp_lock_release(mp_lock *l)
{
    struct sem *s;
    uint32_t v;

    if (l == NULL)
        return MP_EINVAL;
    if (l->kind == K_RLOCK) {
        int c = count_get(l);
        if (!is_mine(l))
            return MP_ENOTOWNER;
        if (c > 1) {
            count_add(l, -1);
            return 0;
        }
    }
    if (l->robust)
        return robust_release(l);
    s = l->s;
    if (l->max != 1) {
        int r = sem_post(s, l->max);
        if (r == 0)
            count_add(l, -1);
        return r;
    }
    /* Max 1: the count changes before the unit is published (an RLock's
     * holder may take it back at once), so the check comes first, and a
     * release that loses a race to another release puts it back. */
    v = atomic_load_explicit(&s->value, memory_order_relaxed);
    if (v >= 1)
        return v > 1 ? MP_ESYNCCORRUPT : MP_ERELEASED;
    count_add(l, -1);
    if (!atomic_compare_exchange_strong(&s->value, &v, 1)) {
        count_add(l, 1);
        return v > 1 ? MP_ESYNCCORRUPT : MP_ERELEASED;
    }
    if (atomic_load(&s->waiters) != 0)
        sem_wake(s);
    return 0;
}

int mp_lock_get_value(mp_lock *l)
{
    uint32_t v;

    if (l == NULL)
        return MP_EINVAL;
    v = atomic_load_explicit(&l->s->value, memory_order_relaxed);
    return v <= l->max ? (int)v : MP_ESYNCCORRUPT;
}

int mp_lock_is_mine(mp_lock *l)
{
    return l == NULL ? MP_EINVAL : is_mine(l);
}

int mp_lock_count(mp_lock *l)
{
    return l == NULL ? MP_EINVAL : count_get(l);
}

/* The owner's name as CPython's repr gives it: the process's name, and
 * "|" and the thread's outside the main thread.  A C thread has no
 * Python name: its pthread name if it was given one (one that is not the
 * program's, which every thread starts with), else "Thread-<kernel id>". */
static void owner_name(char *buf, size_t size)
{
    char tname[32] = "", mname[32] = "";
    pid_t tid = gettid();
    int n = snprintf(buf, size, "%s", mp_process_name(mp_current_process()));

    if (tid == getpid() || n < 0 || (size_t)n >= size)
        return;
    if (pthread_getname_np(pthread_self(), tname, sizeof(tname)) != 0)
        tname[0] = '\0';
    {
        FILE *f = fopen("/proc/self/comm", "re");
        if (f != NULL) {
            if (fgets(mname, sizeof(mname), f) == NULL)
                mname[0] = '\0';
            mname[strcspn(mname, "\n")] = '\0';
            fclose(f);
        }
    }
    if (tname[0] != '\0' && strcmp(tname, mname) != 0)
        snprintf(buf + n, size - (size_t)n, "|%s", tname);
    else
        snprintf(buf + n, size - (size_t)n, "|Thread-%d", (int)tid);
}

int mp_lock_repr(mp_lock *l, char *buf, size_t size)
{
    static const char *const names[] = { "", "Lock", "RLock", "Semaphore",
                                         "BoundedSemaphore" };
    char owner[160];
    int v;

    if (l == NULL || (buf == NULL && size > 0))
        return MP_EINVAL;
    if ((v = mp_lock_get_value(l)) < 0)
        return v;
    switch (l->kind) {
    case K_SEM:
        return snprintf(buf, size, "<Semaphore(value=%d)>", v);
    case K_BSEM:
        return snprintf(buf, size, "<BoundedSemaphore(value=%d, "
                                   "maxvalue=%d)>", v, (int)l->max);
    default:
        break;
    }
    if (is_mine(l)) {
        owner_name(owner, sizeof(owner));
        if (l->kind == K_LOCK)
            return snprintf(buf, size, "<Lock(owner=%s)>", owner);
        return snprintf(buf, size, "<RLock(%s, %d)>", owner, count_get(l));
    }
    snprintf(owner, sizeof(owner), "%s",
             v == 1               ? "None"
             : count_get(l) > 0   ? "SomeOtherThread"
                                  : "SomeOtherProcess");
    if (l->kind == K_LOCK)
        return snprintf(buf, size, "<%s(owner=%s)>", names[l->kind], owner);
    return snprintf(buf, size, "<RLock(%s, %s)>", owner,
                    v == 1 ? "0" : "nonzero");
}

/* Condition: CPython's algorithm on the lock and three semaphores */

int mp_cond_new(mp_cond **out, mp_lock *lock)
{
    struct sync_map *m;
    struct cond_page *p;
    mp_cond *c;
    int r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if ((c = calloc(1, sizeof(*c))) == NULL)
        return -ENOMEM;
    if ((r = map_new(&m, sizeof(*p))) < 0) {
        free(c);
        return r;
    }
    p = m->base;
    sem_init(&p->sleeping, K_SEM, 0, INT_MAX);
    sem_init(&p->woken, K_SEM, 0, INT_MAX);
    sem_init(&p->wait, K_SEM, 0, INT_MAX);
    if (lock == NULL) {
        sem_init(&p->lock, K_RLOCK, 1, 1);
        c->lock = lock_alloc(map_ref(m), &p->lock);
        if (c->lock == NULL) {
            map_unref(m);
            map_unref(m);
            free(c);
            return -ENOMEM;
        }
    } else {
        c->lock = lock_ref(lock);
    }
    hdr_publish(&p->h, T_COND, lock == NULL ? F_OWN_LOCK : 0, 0);
    atomic_init(&c->refs, 1);
    mp__spin_init(&c->spin[0]);
    mp__spin_init(&c->spin[1]);
    c->map = m;
    c->p = p;
    *out = c;
    return 0;
}

mp_lock *mp_cond_lock(mp_cond *c)
{
    return c != NULL ? c->lock : NULL;
}

int mp_cond_acquire(mp_cond *c, int block, double timeout)
{
    return c != NULL ? mp_lock_acquire(c->lock, block, timeout) : MP_EINVAL;
}

int mp_cond_release(mp_cond *c)
{
    return c != NULL ? mp_lock_release(c->lock) : MP_EINVAL;
}

int mp_cond_wait(mp_cond *c, double timeout)
{
    int count, r, back = 1;

    if (c == NULL)
        return MP_EINVAL;
    if (!is_mine(c->lock))
        return MP_EWAITNOTOWNED; /* CPython's assert comes first */
    if (isnan(timeout))
        return MP_EINVAL;
    if ((r = sem_post(&c->p->sleeping, INT_MAX)) < 0)
        return r;
    /* All of an RLock's levels, as CPython releases count times. */
    count = count_get(c->lock);
    for (int i = 0; i < count; i++)
        if ((r = mp_lock_release(c->lock)) < 0)
            return r;
    r = sem_acquire(&c->p->wait, INT_MAX, 1, timeout, &c->spin[0]);
    (void)sem_post(&c->p->woken, INT_MAX);
    for (int i = 0; i < count; i++) {
        int a = mp_lock_acquire(c->lock, 1, MP_FOREVER);
        if (a < 0 && back > 0)
            back = a; /* MP_EOWNERDEAD: held all the same */
    }
    return back < 0 ? back : r;
}

int mp_cond_wait_for(mp_cond *c, mp_predicate pred, void *arg,
                     double timeout)
{
    double end = 0;
    bool forever = !(timeout < 1e9);
    int result, r;

    if (c == NULL || pred == NULL)
        return MP_EINVAL;
    if ((result = pred(arg)) != 0)
        return result;
    if (isnan(timeout)) /* CPython's first wait() fails, whoever owns */
        return mp_cond_wait(c, timeout);
    if (!forever)
        end = mp__now() + timeout;
    while (result == 0) {
        double wait = MP_FOREVER;
        if (!forever) {
            wait = end - mp__now();
            if (wait <= 0)
                break;
        }
        if ((r = mp_cond_wait(c, wait)) < 0)
            return r;
        result = pred(arg);
    }
    return result;
}

int mp_cond_notify(mp_cond *c, int n)
{
    struct cond_page *p;
    int sleepers = 0, r;

    if (c == NULL)
        return MP_EINVAL;
    if (!is_mine(c->lock))
        return MP_ENOTOWNED;
    p = c->p;
    /* CPython asserts that wait is at 0 here; only a notifier that died
     * before its last step leaves a unit, which is dropped. */
    if ((r = sem_try(&p->wait, INT_MAX)) < 0)
        return r;
    /* Sleepers that timed out since the last notify are counted off. */
    while ((r = sem_try(&p->woken, INT_MAX)) == 1)
        if ((r = sem_try(&p->sleeping, INT_MAX)) < 0)
            return r;
    if (r < 0)
        return r;
    while (sleepers < n && (r = sem_try(&p->sleeping, INT_MAX)) == 1) {
        if ((r = sem_post(&p->wait, INT_MAX)) < 0)
            return r;
        sleepers++;
    }
    if (r < 0)
        return r;
    /* Each woken sleeper says so before it takes the lock back. */
    for (int i = 0; i < sleepers; i++)
        if ((r = sem_acquire(&p->woken, INT_MAX, 1, MP_FOREVER,
                                &c->spin[1])) < 0)
            return r;
    /* What a sleeper that timed out meanwhile left in wait goes. */
    while ((r = sem_try(&p->wait, INT_MAX)) == 1)
        ;
    return r < 0 ? r : 0;
}

int mp_cond_notify_all(mp_cond *c)
{
    return mp_cond_notify(c, INT_MAX);
}

int mp_cond_repr(mp_cond *c, char *buf, size_t size)
{
    char lock[256];
    int r, s, w;

    if (c == NULL || (buf == NULL && size > 0))
        return MP_EINVAL;
    if ((r = mp_lock_repr(c->lock, lock, sizeof(lock))) < 0)
        return r;
    s = (int)atomic_load(&c->p->sleeping.value);
    w = (int)atomic_load(&c->p->woken.value);
    if (s < 0 || w < 0) /* above INT_MAX: never a semaphore's */
        return MP_ESYNCCORRUPT;
    return snprintf(buf, size, "<Condition(%s, %d)>", lock, s - w);
}

static void cond_unref(mp_cond *c)
{
    if (c == NULL ||
        atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    lock_unref(c->lock);
    map_unref(c->map);
    free(c);
}

mp_cond *mp_cond_free(mp_cond *c)
{
    if (c != NULL && !c->borrowed)
        cond_unref(c);
    return NULL;
}

/*
 * Event: one futex word, E_FLAG (set), E_SLEEPERS (someone may sleep on
 * the word) and a generation above them, which clear() advances.
 *
 * set() raises the flag with a compare-and-swap while nobody sleeps; when
 * someone may, it raises it and wakes every sleeper in one system call
 * (FUTEX_WAKE_OP), so a process killed in set() has either set nothing or
 * set the flag and woken everyone: there is no half-done set() to finish,
 * and no lock, so nothing a death can leave held.  Nobody sleeps on a set
 * flag (a sleeper sleeps on the word with the flag down, and the kernel
 * compares it first), so clear() takes E_SLEEPERS down with the flag.  A
 * waiter returns 1 once the flag is up, or once the generation moved
 * since it started: a set() and a clear() between two of its looks were a
 * set() during its wait.  CPython's waiter may miss such a pair (it needs
 * the lock back before it looks, by when the flag can be down again);
 * either answer is one CPython can give.  Bits CPython's flag cannot
 * hold (E_RESERVED) are MP_ESYNCCORRUPT.
 */
#define E_FLAG 1u
#define E_SLEEPERS 2u
#define E_RESERVED 0xfcu
#define E_GEN_ONE 0x100u

int mp_event_new(mp_event **out)
{
    struct sync_map *m;
    mp_event *e;
    int r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if ((e = calloc(1, sizeof(*e))) == NULL)
        return -ENOMEM;
    if ((r = map_new(&m, sizeof(struct event_page))) < 0) {
        free(e);
        return r;
    }
    e->p = m->base;
    hdr_publish(&e->p->h, T_EVENT, 0, 0);
    atomic_init(&e->refs, 1);
    e->map = m;
    *out = e;
    return 0;
}

static inline uint32_t event_word(mp_event *e)
{
    return atomic_load(&e->p->word);
}

int mp_event_is_set(mp_event *e)
{
    uint32_t w;

    if (e == NULL)
        return MP_EINVAL;
    w = event_word(e);
    return (w & E_RESERVED) != 0 ? MP_ESYNCCORRUPT : (int)(w & E_FLAG);
}

int mp_event_set(mp_event *e)
{
    uint32_t w;

    if (e == NULL)
        return MP_EINVAL;
    w = event_word(e);
    for (;;) {
        if ((w & E_RESERVED) != 0)
            return MP_ESYNCCORRUPT;
        if ((w & E_FLAG) != 0)
            return 0;
        if ((w & E_SLEEPERS) != 0)
            break;
        if (atomic_compare_exchange_weak(&e->p->word, &w, w | E_FLAG)) {
            FAULT(5);
            return 0;
        }
    }
#if SYNC_TSAN
    /* ThreadSanitizer does not see the kernel's write: this release is
     * what the waiters' loads of the word are ordered after. */
    atomic_fetch_or_explicit(&e->p->word, 0, memory_order_release);
#endif
    mp__futex_wake_or(&e->p->word, E_FLAG);
    FAULT(5);
    return 0;
}

int mp_event_clear(mp_event *e)
{
    uint32_t w;

    if (e == NULL)
        return MP_EINVAL;
    w = event_word(e);
    for (;;) {
        if ((w & E_RESERVED) != 0)
            return MP_ESYNCCORRUPT;
        if ((w & E_FLAG) == 0)
            return 0;
        if (atomic_compare_exchange_weak(
                &e->p->word, &w, (w & ~(E_FLAG | E_SLEEPERS)) + E_GEN_ONE))
            return 0;
    }
}

int mp_event_wait(mp_event *e, double timeout)
{
    uint32_t w, gen;
    double deadline;

    if (e == NULL)
        return MP_EINVAL;
    w = event_word(e);
    /* A set flag answers before the timeout is looked at, as CPython's
     * wait() returns before its Condition's wait() would fail on a NaN. */
    if ((w & E_RESERVED) != 0)
        return MP_ESYNCCORRUPT;
    if ((w & E_FLAG) != 0)
        return 1;
    if (isnan(timeout))
        return MP_EINVAL;
    if ((deadline = deadline_of(1, timeout)) == 0)
        return 0;
    gen = w & ~(E_FLAG | E_SLEEPERS | E_RESERVED);
    for (bool timed_out = false;; w = event_word(e)) {
        if ((w & E_RESERVED) != 0)
            return MP_ESYNCCORRUPT;
        if ((w & E_FLAG) != 0 ||
            (w & ~(E_FLAG | E_SLEEPERS | E_RESERVED)) != gen)
            return 1;
        if (timed_out)
            return 0;
        if ((w & E_SLEEPERS) == 0 &&
            !atomic_compare_exchange_strong(&e->p->word, &w,
                                            w | E_SLEEPERS))
            continue;
        timed_out = mp__futex_wait(&e->p->word, w | E_SLEEPERS, deadline) ==
                    MP_ETIMEDOUT;
    }
}

int mp_event_repr(mp_event *e, char *buf, size_t size)
{
    int r;

    if (e == NULL || (buf == NULL && size > 0))
        return MP_EINVAL;
    if ((r = mp_event_is_set(e)) < 0)
        return r;
    return snprintf(buf, size, "<Event at %p %s>", (void *)e,
                    r ? "set" : "unset");
}

mp_event *mp_event_free(mp_event *e)
{
    if (e == NULL || e->borrowed ||
        atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) != 1)
        return NULL;
    map_unref(e->map);
    free(e);
    return NULL;
}

/* slots: who is inside a Barrier's wait() */

static void slot_id_write(struct bslot *s, const struct mp__thread_id *id)
{
    __atomic_store_n(&s->id.pid, id->pid, __ATOMIC_RELAXED);
    __atomic_store_n(&s->id.tid, id->tid, __ATOMIC_RELAXED);
    __atomic_store_n(&s->id.start, id->start, __ATOMIC_RELAXED);
    __atomic_store_n(&s->id.ns, id->ns, __ATOMIC_RELAXED);
    __atomic_store_n(&s->id.tns, id->tns, __ATOMIC_RELAXED);
}

static bool same_id(const struct mp__thread_id *a,
                    const struct mp__thread_id *b)
{
    return a->pid == b->pid && a->tid == b->tid && a->start == b->start &&
           a->ns == b->ns && a->tns == b->tns;
}

/* Ids no thread has are what a peer wrote: nobody's, dead. */
static bool slot_id_dead(const struct mp__thread_id *id)
{
    if (id->pid <= 0 || id->tid <= 0)
        return true;
    if (id->pid == getpid() && id->tid == my_tid())
        return false;
    return mp__thread_dead(id);
}

/*
 * Barrier: threading.Barrier's rounds on one 64-bit word, `word`: the
 * number of parties in the round (B_COUNT), the phase (filling, resetting,
 * broken), B_SLEEPERS (someone may sleep on it) and the generation above
 * them, which each release advances.  Its low half is the futex word
 * sleepers sleep on: every change of the word changes it.
 *
 * A round: each arrival takes its index with one compare-and-swap
 * (filling, count + 1); the last runs the action, then advances the
 * generation (count 0) and wakes every sleeper with one FUTEX_WAKE; a
 * sleeper wakes to a new generation, and leaves, released, touching
 * nothing shared but its slot.  CPython's draining phase (the next
 * round's arrivals wait until the last one's parties have left, each
 * taking the lock) is left out: a party's leaving is done when the
 * generation moves, and an arrival of the next round is counted in the
 * next generation at once, which only timing tells apart.  A round whose
 * count is full (its action running, under the lock in CPython) makes
 * late arrivals, reset() and abort() wait for its end, and sleepers stop
 * counting their timeout, as CPython's do while they wait for the lock.
 *
 * What ends a round otherwise keeps its generation: break (a timeout,
 * abort(), an action's failure, a party's death) makes it broken, and its
 * parties leave with MP_EBROKENBARRIER; reset() makes it resetting until
 * every party of it has left, then a new generation fills.  So a sleeper
 * that finds another generation was released, whenever it looks.
 *
 * Who is inside a round is in the slots, one per thread in wait(): a word
 * (free; claimed; inside generation g, stored before the arrival's
 * compare-and-swap) and the thread's identity.  They serve the rare
 * paths: a reset ends when no slot is inside its generation (whoever
 * leaves a resetting round, or finds one, looks); and a round that lasts
 * RECHECK seconds makes its sleepers look for a dead party in /proc (the
 * kernel wakes no futex sleeper for another process's death): one that
 * died inside a filling round breaks it, as a waiter's timeout would, and
 * one that died inside a resetting round is taken out.  A process killed
 * at any point leaves one of these states, each a single word.
 */
#define B_COUNT 0xffffULL
#define B_PHASE (3ULL << 16)
#define B_FILLING 0ULL
#define B_RESETTING (1ULL << 16)
#define B_BROKEN (2ULL << 16)
#define B_SLEEPERS (1ULL << 18)
#define B_GEN_SHIFT 19

/* A slot's tag: free, claimed (inside no round), inside generation g. */
#define T_FREE 0ULL
#define T_CLAIMED 1ULL
#define T_INSIDE(g) ((g) << 1 | 1)

static uint32_t barrier_slots(int parties)
{
    return (uint32_t)(parties > 0 ? parties : 0) + SPARE_SLOTS;
}

static inline uint64_t bgen(uint64_t w)
{
    return w >> B_GEN_SHIFT;
}

/* The word's low half: the futex word. */
static inline _Atomic uint32_t *bfutex(mp_barrier *b)
{
    return (_Atomic uint32_t *)(void *)((char *)&b->p->word +
                                        (__BYTE_ORDER__ ==
                                                 __ORDER_BIG_ENDIAN__
                                             ? 4
                                             : 0));
}

/* Whether a round of count parties has them all (Barrier(0) never has). */
static inline bool bfull(mp_barrier *b, uint64_t w)
{
    return b->parties > 0 && (w & B_COUNT) >= (uint64_t)b->parties;
}

/* The word, checked: 0, or MP_ESYNCCORRUPT for what no barrier holds. */
static int bload(mp_barrier *b, uint64_t *w)
{
    uint64_t limit = b->parties > 0 ? (uint64_t)b->parties : b->nslots;

    *w = atomic_load(&b->p->word);
    return (*w & B_PHASE) == B_PHASE || (*w & B_COUNT) > limit ||
                   bgen(*w) == 0
               ? MP_ESYNCCORRUPT
               : 0;
}

/* Replaces the word w with n: false when it was no longer w.  Sleepers
 * are woken when there were any. */
static bool bswap(mp_barrier *b, uint64_t w, uint64_t n)
{
    if (!atomic_compare_exchange_strong(&b->p->word, &w, n))
        return false;
    if ((n & B_PHASE) == B_BROKEN)
        FAULT(6); /* broken, nobody woken */
    if (w & B_SLEEPERS) {
        atomic_store_explicit(&b->p->waker_cpu, sched_getcpu(),
                              memory_order_relaxed);
        mp__futex_wake(bfutex(b), INT_MAX);
    }
    return true;
}

/* Sleeps while the word is w, until `until` (a wake-up, a change or a
 * signal end it sooner). */
static void bsleep(mp_barrier *b, uint64_t w, double until)
{
    if ((w & B_SLEEPERS) == 0) {
        if (!atomic_compare_exchange_strong(&b->p->word, &w,
                                            w | B_SLEEPERS))
            return;
        w |= B_SLEEPERS;
    }
    mp__futex_wait(bfutex(b), (uint32_t)w, until);
}

static inline uint64_t tag_of(mp_barrier *b, uint32_t i)
{
    return atomic_load(&b->slot[i].tag);
}

/* Whether the thread in slot i, whose tag is t, has died; if so its slot
 * is freed (true).  Its identity is read twice around the verdict: a slot
 * freed and claimed again meanwhile is another thread's, and its tag was
 * not t while its identity was being written. */
static bool bslot_reap(mp_barrier *b, uint32_t i, uint64_t t)
{
    struct bslot *s = &b->slot[i];
    struct mp__thread_id id = mp__thread_id_read(&s->id), again;

    if (!slot_id_dead(&id))
        return false;
    again = mp__thread_id_read(&s->id);
    if (!same_id(&id, &again))
        return false;
    return atomic_compare_exchange_strong(&s->tag, &t, T_FREE);
}

/*
 * Ends the reset of generation g once no slot is inside it: the next
 * generation fills.  `reap`: a slot inside it whose thread died is taken
 * out (a look in /proc: the rare paths only).  0, or MP_ESYNCCORRUPT.
 */
static int bend_reset(mp_barrier *b, uint64_t g, bool reap)
{
    uint64_t w;
    int r;

    for (uint32_t i = 0; i < b->nslots; i++) {
        uint64_t t = tag_of(b, i);
        if (t == T_INSIDE(g) && !(reap && bslot_reap(b, i, t)))
            return 0;
    }
    do {
        if ((r = bload(b, &w)) < 0)
            return r;
        if ((w & B_PHASE) != B_RESETTING || bgen(w) != g)
            return 0;
    } while (!bswap(b, w, (g + 1) << B_GEN_SHIFT));
    return 0;
}

/* A look for the dead in the round of generation g (every RECHECK
 * seconds of a wait, while the round lasts): a dead party breaks a
 * filling round, and leaves a resetting one.  0, or MP_ESYNCCORRUPT. */
static int bdead(mp_barrier *b, uint64_t g, uint32_t mine)
{
    bool died = false;
    uint64_t w;
    int r;

    for (uint32_t i = 0; i < b->nslots; i++) {
        uint64_t t = tag_of(b, i);
        if (i != mine && t == T_INSIDE(g) && bslot_reap(b, i, t))
            died = true;
    }
    if (!died)
        return 0;
    for (;;) {
        if ((r = bload(b, &w)) < 0)
            return r;
        if (bgen(w) != g)
            return 0;
        if ((w & B_PHASE) == B_RESETTING)
            return bend_reset(b, g, false);
        if ((w & B_PHASE) == B_BROKEN ||
            bswap(b, w, (w & ~(B_PHASE | B_SLEEPERS)) | B_BROKEN))
            return 0;
    }
}

/* Waits for the word to change from w (a full round's end, a reset's):
 * 0, or MP_ESYNCCORRUPT.  *next: when to look for the dead. */
static int bwait_change(mp_barrier *b, uint64_t w, uint32_t mine,
                        double *next)
{
    double now = mp__now();

    if (now >= *next) {
        *next = now + RECHECK;
        return bdead(b, bgen(w), mine);
    }
    bsleep(b, w, *next);
    return 0;
}

static bool bslot_any_free(mp_barrier *b)
{
    for (uint32_t i = 0; i < b->nslots; i++)
        if (tag_of(b, i) == T_FREE)
            return true;
    return false;
}

/* Claims a free slot, looking from `start` on: its index, or -1. */
static int bslot_free_one(mp_barrier *b, uint32_t start)
{
    for (uint32_t k = 0; k < b->nslots; k++) {
        uint32_t i = (start + k) % b->nslots;
        uint64_t t = T_FREE;
        if (tag_of(b, i) == T_FREE &&
            atomic_compare_exchange_strong(&b->slot[i].tag, &t, T_CLAIMED))
            return (int)i;
    }
    return -1;
}

/*
 * A slot for this thread, claimed: its index, or MP_ESYNCCORRUPT.  Each
 * thread starts where it last found one.  A full table is looked through
 * for the dead (a dead party of a filling round breaks it first, as it
 * would have for the sleepers' next look), and waited on.
 */
static int bslot_claim(mp_barrier *b)
{
    static _Thread_local uint32_t hint;
    struct mp__thread_id me_id;
    uint32_t n = b->nslots, start;
    int found = -1;

    /* One that cannot be told dead (an unknown start time) is named all
     * the same: its peers then take it for alive. */
    (void)mp__thread_self(&me_id);
    start = hint != 0 ? hint : (uint32_t)me_id.tid;
    double next_dead = 0;

    while ((found = bslot_free_one(b, start)) < 0) {
        uint32_t seen;
        uint64_t w;
        int r;

        /* Full: the dead are looked for at once, then every RECHECK. */
        if (mp__now() >= next_dead) {
            next_dead = mp__now() + RECHECK;
            if ((r = bload(b, &w)) < 0 || (r = bdead(b, bgen(w), n)) < 0 ||
                (r = bload(b, &w)) < 0)
                return r;
            /* Any other dead thread's: the current round's dead were
             * bdead()'s to take out. */
            for (uint32_t i = 0; i < n; i++) {
                uint64_t t = tag_of(b, i);
                if (t != T_FREE && t != T_INSIDE(bgen(w)))
                    (void)bslot_reap(b, i, t);
            }
            continue;
        }
        /* The freer raises `freed` only when it sees a waiter: the
         * waiter counts itself before it looks again. */
        atomic_fetch_add(&b->p->freewait, 1);
        seen = atomic_load(&b->p->freed);
        if (!bslot_any_free(b))
            mp__futex_wait(&b->p->freed, seen, next_dead);
        atomic_fetch_sub(&b->p->freewait, 1);
    }
    hint = (uint32_t)found;
    slot_id_write(&b->slot[found], &me_id);
    return found;
}

/* Sets slot i's tag; a thread that leaves a resetting round it was
 * inside looks whether it was the last. */
static int btag(mp_barrier *b, uint32_t i, uint64_t t)
{
    uint64_t old = atomic_exchange(&b->slot[i].tag, t), w;
    int r;

    if (t == T_FREE && atomic_load(&b->p->freewait) != 0) {
        atomic_fetch_add(&b->p->freed, 1);
        mp__futex_wake(&b->p->freed, INT_MAX);
    }
    if (old == T_FREE || old == T_CLAIMED || old == t)
        return 0;
    if ((r = bload(b, &w)) < 0)
        return r;
    if ((w & B_PHASE) == B_RESETTING && T_INSIDE(bgen(w)) == old)
        return bend_reset(b, bgen(w), false);
    return 0;
}

/* The action, by the last to arrive: 0, or its error (the barrier breaks:
 * a target that is not registered here is MP_ENOTARGET). */
static int run_action(mp_barrier *b)
{
    mp_target_fn fn;
    int r;

    if (b->action[0] == '\0')
        return 0;
    if ((fn = mp_target_lookup(b->action)) == NULL)
        return mp__target_missing(b->action);
    r = fn("", 0);
    return r < 0 ? r : 0;
}

/* _enter(): this thread's arrival in a filling round, slot i held.  Its
 * index, and the round's generation in *g; MP_EBROKENBARRIER,
 * MP_ESYNCCORRUPT. */
static int barrier_enter(mp_barrier *b, uint32_t i, uint64_t *g)
{
    double next = mp__now() + RECHECK;
    uint64_t w;
    int r;

    for (;;) {
        if ((r = bload(b, &w)) < 0)
            return r;
        if ((w & B_PHASE) == B_BROKEN)
            return MP_EBROKENBARRIER;
        if ((w & B_PHASE) == B_RESETTING || bfull(b, w)) {
            /* CPython waits for the reset to end, or for the lock the
             * last arrival holds while its action runs. */
            if ((r = btag(b, i, T_CLAIMED)) < 0 ||
                (r = bwait_change(b, w, i, &next)) < 0)
                return r;
            continue;
        }
        *g = bgen(w);
        if ((r = btag(b, i, T_INSIDE(*g))) < 0)
            return r;
        if (atomic_compare_exchange_strong(&b->p->word, &w, w + 1)) {
            FAULT(7); /* counted in the round */
            return (int)(w & B_COUNT);
        }
    }
}

/* _release(): the last arrival runs the action, then lets the round go
 * (the next generation), or breaks it when the action fails. */
static int barrier_release(mp_barrier *b, uint64_t g, int index)
{
    int ret = run_action(b), r;
    uint64_t w;

    FAULT(8); /* the action run, the round not let go */
    for (;;) {
        if ((r = bload(b, &w)) < 0)
            return r;
        if (bgen(w) != g || (w & B_PHASE) == B_RESETTING)
            return MP_ESYNCCORRUPT; /* a full round is the last's alone */
        if ((w & B_PHASE) == B_BROKEN) /* a party died meanwhile */
            return ret < 0 ? ret : MP_EBROKENBARRIER;
        if (bswap(b, w, ret < 0 ? (w & ~(B_PHASE | B_SLEEPERS)) | B_BROKEN
                                : (g + 1) << B_GEN_SHIFT))
            return ret < 0 ? ret : index;
    }
}

/* _wait(): until the round of generation g is released (index), broken
 * or reset (MP_EBROKENBARRIER).  The timeout runs from here, as
 * wait_for()'s, not from the call; <= 0 looks once.  A timeout breaks the
 * round. */
static int barrier_sleep(mp_barrier *b, uint32_t i, uint64_t g, int index,
                         double timeout)
{
    double now = mp__now(), next = now + RECHECK;
    double deadline = timeout >= 1e9 ? INFINITY
                      : timeout > 0  ? now + timeout
                                     : 0;
    double spin = b->parties <= online_cpus()
                      ? mp__spin_end(&b->spin, deadline)
                      : 0;
    uint64_t w;
    int r, cpu = -1;

    for (;;) {
        if ((r = bload(b, &w)) < 0)
            return r;
        if (bgen(w) != g) {
            if (cpu >= 0)
                mp__spin_learn(&b->spin, cpu,
                           atomic_load_explicit(&b->p->waker_cpu,
                                                memory_order_relaxed));
            return index;
        }
        if ((w & B_PHASE) != B_FILLING)
            return MP_EBROKENBARRIER;
        if (tag_of(b, i) != T_INSIDE(g))
            return MP_ESYNCCORRUPT; /* a peer wrote over the slot */
        now = mp__now();
        if (!bfull(b, w) && now >= deadline) {
            if (bswap(b, w, (w & ~(B_PHASE | B_SLEEPERS)) | B_BROKEN))
                return MP_EBROKENBARRIER;
            continue;
        }
        if (now >= next) {
            next = now + RECHECK;
            if ((r = bdead(b, g, i)) < 0)
                return r;
            continue;
        }
        if (now < spin) { /* the same spin as a semaphore's waiter */
            for (int k = 0; k < SPIN_LOOKS; k++)
                mp__cpu_relax();
            if (atomic_load_explicit(&b->p->word, memory_order_relaxed) ==
                    w &&
                mp__now() < spin)
                continue;
            if (atomic_load_explicit(&b->p->word, memory_order_relaxed) !=
                w)
                mp__spin_grow(&b->spin);
            spin = 0;
            continue;
        }
        if (cpu < 0)
            cpu = sched_getcpu();
        bsleep(b, w, bfull(b, w) || next < deadline ? next : deadline);
    }
}

int mp_barrier_wait(mp_barrier *b, double timeout)
{
    uint64_t g = 0;
    int i, r, index, left;

    if (b == NULL)
        return MP_EINVAL;
    if (isnan(timeout))
        timeout = b->timeout;
    if ((i = bslot_claim(b)) < 0)
        return i;
    if ((r = index = barrier_enter(b, (uint32_t)i, &g)) >= 0)
        r = index + 1 == b->parties
                ? barrier_release(b, g, index)
                : barrier_sleep(b, (uint32_t)i, g, index, timeout);
    left = btag(b, (uint32_t)i, T_FREE);
    return r >= 0 && left < 0 ? left : r;
}

int mp_barrier_reset(mp_barrier *b)
{
    double next = mp__now() + RECHECK;
    uint64_t w;
    int r;

    if (b == NULL)
        return MP_EINVAL;
    for (;;) {
        if ((r = bload(b, &w)) < 0)
            return r;
        if ((w & B_PHASE) == B_FILLING && bfull(b, w)) {
            if ((r = bwait_change(b, w, b->nslots, &next)) < 0)
                return r;
            continue;
        }
        /* Nobody inside, or a reset under way: nothing to do. */
        if ((w & B_PHASE) == B_RESETTING ||
            ((w & B_PHASE) == B_FILLING && (w & B_COUNT) == 0))
            return 0;
        if (bswap(b, w, (w & ~(B_PHASE | B_SLEEPERS)) | B_RESETTING))
            return bend_reset(b, bgen(w), true);
    }
}

int mp_barrier_abort(mp_barrier *b)
{
    double next = mp__now() + RECHECK;
    uint64_t w;
    int r;

    if (b == NULL)
        return MP_EINVAL;
    for (;;) {
        if ((r = bload(b, &w)) < 0)
            return r;
        if ((w & B_PHASE) == B_BROKEN)
            return 0;
        if ((w & B_PHASE) == B_FILLING && bfull(b, w)) {
            if ((r = bwait_change(b, w, b->nslots, &next)) < 0)
                return r;
            continue;
        }
        if (bswap(b, w, (w & ~(B_PHASE | B_SLEEPERS)) | B_BROKEN))
            return 0;
    }
}

int mp_barrier_parties(mp_barrier *b)
{
    return b != NULL ? b->parties : MP_EINVAL;
}

/* As CPython's, read without the lock: a moment's value. */
int mp_barrier_n_waiting(mp_barrier *b)
{
    uint64_t w;
    int r;

    if (b == NULL)
        return MP_EINVAL;
    if ((r = bload(b, &w)) < 0)
        return r;
    return (w & B_PHASE) == B_FILLING ? (int)(w & B_COUNT) : 0;
}

int mp_barrier_broken(mp_barrier *b)
{
    uint64_t w;
    int r;

    if (b == NULL)
        return MP_EINVAL;
    if ((r = bload(b, &w)) < 0)
        return r;
    return (w & B_PHASE) == B_BROKEN;
}

int mp_barrier_new(mp_barrier **out, int parties, const mp_target *action,
                   double timeout)
{
    struct sync_map *m;
    struct barrier_page *p;
    mp_barrier *b;
    uint32_t n;
    size_t alen = 0;
    int r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if (isnan(timeout) || parties > MAX_SLOTS - SPARE_SLOTS)
        return MP_EINVAL;
    if (action != NULL) {
        if (action->name == NULL ||
            (alen = strlen(action->name)) == 0 || alen > ACTION_MAX)
            return MP_EINVAL;
        if (mp_target_lookup(action->name) == NULL)
            return mp__target_missing(action->name);
    }
    n = barrier_slots(parties);
    if ((b = calloc(1, sizeof(*b))) == NULL)
        return -ENOMEM;
    if ((r = map_new(&m, sizeof(*p) + n * sizeof(struct bslot))) < 0) {
        free(b);
        return r;
    }
    p = m->base;
    p->parties = parties;
    p->timeout = timeout;
    p->action_len = (uint32_t)alen;
    if (alen > 0)
        memcpy(p->action, action->name, alen);
    atomic_init(&p->word, 1ULL << B_GEN_SHIFT);
    hdr_publish(&p->h, T_BARRIER, 0, n);
    atomic_init(&b->refs, 1);
    b->map = m;
    b->p = p;
    b->slot = p->slot;
    b->nslots = n;
    b->parties = parties;
    b->timeout = timeout;
    memcpy(b->action, p->action, sizeof(b->action));
    mp__spin_init(&b->spin);
    *out = b;
    return 0;
}

mp_barrier *mp_barrier_free(mp_barrier *b)
{
    if (b == NULL || b->borrowed ||
        atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return NULL;
    map_unref(b->map);
    free(b);
    return NULL;
}

/* handing over (args.c) */

mp_conn *mp__lock_handle(mp_lock *l)
{
    return l->map->handle;
}

mp_conn *mp__cond_handle(mp_cond *c)
{
    return c->map->handle;
}

mp_conn *mp__event_handle(mp_event *e)
{
    return e->map->handle;
}

mp_conn *mp__barrier_handle(mp_barrier *b)
{
    return b->map->handle;
}

int mp__lock_kind(mp_lock *l)
{
    return l->kind;
}

mp_lock *mp__lock_ref(mp_lock *l)
{
    return lock_ref(l);
}

void mp__lock_unref(mp_lock *l)
{
    lock_unref(l);
}

/* The page's header, checked against what the object needs. */
static struct hdr *attach_hdr(struct sync_map *m, uint32_t type)
{
    struct hdr *h = m->base;

    return h->type == type ? h : NULL;
}

mp_lock *mp__lock_view(mp_conn *handle)
{
    struct sync_map *m = map_attach(handle);
    struct sem *s = NULL;
    struct hdr *h;
    mp_lock *l;
    bool robust = false;

    if (m == NULL)
        return NULL;
    h = m->base;
    if (h->type == T_LOCK && m->len >= sizeof(struct lock_page) &&
        (h->flags & ~(uint32_t)F_ROBUST) == 0) {
        s = &((struct lock_page *)m->base)->s;
        robust = (h->flags & F_ROBUST) != 0;
        if (!sem_valid(s, 0) ||
            (robust && mp__robust_check(&s->m, ROBUST_TYPE) < 0))
            s = NULL;
    } else if (h->type == T_COND && m->len >= sizeof(struct cond_page) &&
               h->flags == F_OWN_LOCK) {
        s = &((struct cond_page *)m->base)->lock;
        if (!sem_valid(s, K_RLOCK))
            s = NULL;
    }
    if (s == NULL || (l = lock_alloc(m, s)) == NULL) {
        map_unref(m);
        return NULL;
    }
    l->robust = robust;
    l->borrowed = true;
    return l;
}

/* Whether lock is the RLock in the page of the condition `handle` names:
 * a condition with a lock of its own must be given that one, and one
 * without, another. */
static bool lock_is_cond_own(const mp_lock *lock, mp_conn *handle)
{
    const struct hdr *h = lock->map->base;

    return lock->map->handle == handle && h->type == T_COND &&
           lock->s == &((struct cond_page *)lock->map->base)->lock;
}

mp_cond *mp__cond_view(mp_conn *handle, mp_lock *lock)
{
    struct sync_map *m = map_attach(handle);
    struct cond_page *p;
    struct hdr *h;
    mp_cond *c;

    if (m == NULL)
        return NULL;
    h = attach_hdr(m, T_COND);
    p = m->base;
    if (h == NULL || m->len < sizeof(*p) || (h->flags & ~F_OWN_LOCK) != 0 ||
        !sem_valid(&p->sleeping, K_SEM) || !sem_valid(&p->woken, K_SEM) ||
        !sem_valid(&p->wait, K_SEM) ||
        ((h->flags & F_OWN_LOCK) != 0) != lock_is_cond_own(lock, handle) ||
        (c = calloc(1, sizeof(*c))) == NULL) {
        map_unref(m);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    mp__spin_init(&c->spin[0]);
    mp__spin_init(&c->spin[1]);
    c->borrowed = true;
    c->map = m;
    c->p = p;
    c->lock = lock_ref(lock);
    return c;
}

mp_event *mp__event_view(mp_conn *handle)
{
    struct sync_map *m = map_attach(handle);
    struct hdr *h;
    mp_event *e;

    if (m == NULL)
        return NULL;
    h = attach_hdr(m, T_EVENT);
    if (h == NULL || h->flags != 0 || h->nslots != 0 ||
        m->len < sizeof(struct event_page) ||
        (e = calloc(1, sizeof(*e))) == NULL) {
        map_unref(m);
        return NULL;
    }
    atomic_init(&e->refs, 1);
    e->borrowed = true;
    e->map = m;
    e->p = m->base;
    return e;
}

mp_barrier *mp__barrier_view(mp_conn *handle)
{
    struct sync_map *m = map_attach(handle);
    struct barrier_page *p;
    struct hdr *h;
    mp_barrier *b;
    uint32_t alen;

    if (m == NULL)
        return NULL;
    h = attach_hdr(m, T_BARRIER);
    p = m->base;
    if (h == NULL || h->flags != 0 || m->len < sizeof(*p) ||
        p->parties > MAX_SLOTS - SPARE_SLOTS ||
        h->nslots != barrier_slots(p->parties) ||
        sizeof(*p) + (size_t)h->nslots * sizeof(struct bslot) > m->len ||
        isnan(p->timeout) || (alen = p->action_len) > ACTION_MAX ||
        memchr(p->action, '\0', alen) != NULL ||
        (b = calloc(1, sizeof(*b))) == NULL) {
        map_unref(m);
        return NULL;
    }
    atomic_init(&b->refs, 1);
    b->borrowed = true;
    b->map = m;
    b->p = p;
    b->slot = p->slot;
    b->nslots = h->nslots;
    b->parties = p->parties;
    b->timeout = p->timeout;
    mp__spin_init(&b->spin);
    memcpy(b->action, p->action, alen);
    b->action[alen] = '\0';
    return b;
}

/* Views are the argument list's: it frees them (mp_*_free() does not). */
void mp__lock_view_free(mp_lock *l)
{
    lock_unref(l);
}

void mp__cond_view_free(mp_cond *c)
{
    cond_unref(c);
}

void mp__event_view_free(mp_event *e)
{
    if (e != NULL) {
        map_unref(e->map);
        free(e);
    }
}

void mp__barrier_view_free(mp_barrier *b)
{
    if (b != NULL) {
        map_unref(b->map);
        free(b);
    }
}

#ifdef MP_TEST_HOOKS
void *mp__sync_page(const void *obj, int type)
{
    switch (type) {
    case MP_ARG_LOCK:
        return ((const mp_lock *)obj)->map->base;
    case MP_ARG_COND:
        return ((const mp_cond *)obj)->map->base;
    case MP_ARG_EVENT:
        return ((const mp_event *)obj)->map->base;
    case MP_ARG_BARRIER:
        return ((const mp_barrier *)obj)->map->base;
    default:
        return NULL;
    }
}
#endif
