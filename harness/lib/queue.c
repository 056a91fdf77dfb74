/*
 * queue.c - Queue, JoinableQueue and SimpleQueue (CPython: queues.py) on a
 * ring in shared memory.
 *
 * A queue is a memfd: a header page, then a ring of records (an 8-byte
 * length, then the bytes, padded to 8).  Every process maps the memfd once,
 * with room for the ring to grow (the file grows; the mapping never moves).
 * Positions (head, tail) count bytes from the queue's birth and never wrap
 * in practice; a position's place in the ring is (pos - base) mod cap, where
 * (cap, base) is the current layout.
 *
 * Producers hold wlock and consumers rlock, both robust process-shared
 * mutexes, only while they copy; nobody sleeps holding one.  A waiter sleeps
 * on a futex sequence word after raising a flag; the other side looks at the
 * flag after its commit (a fence between) and only then makes a system call.
 *
 * Kill -9 safety: a put copies the record beyond tail, then commits by
 * storing tail; a get copies the record out, then commits by storing head.
 * Before a commit, the process notes what it is about to do (pending_* in its
 * line); whoever next takes the lock and gets EOWNERDEAD repairs the counter
 * that goes with the position (nput with tail, nget with head) from that note.
 * Growing the ring copies the live records to a part of the file the old
 * layout does not use, then switches layout with one store.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#include "internal.h"

#define QMAGIC 0x657565517062696cULL /* "libmpQue" */
#define QVERSION 1
#define HDR_SIZE 4096
#define RESERVE (4ULL << 30) /* the most the ring may grow to */
#define INITIAL_CAP (256u * 1024)
#define MAX_MSG (1ULL << 30)
#define SPIN 256
#define FIRST_MAX 256 /* pauses before a waiting consumer's first look */
#define RECHECK 0.1    /* seconds a waiter sleeps before it looks for the
                          dead (see wait_until) */
#define GROW_SPIN 8192 /* pauses a full ring's producer may wait for room */

enum qkind { Q_QUEUE, Q_JOINABLE, Q_SIMPLE };
static const char *const kind_names[] = { "Queue", "JoinableQueue",
                                          "SimpleQueue" };

struct layout {
    uint64_t cap, base;
};

/* Shared by every process: the header page of the memfd.  What producers
 * write, what consumers write and what both only read live on separate cache
 * lines. */
struct shared {
    uint64_t magic;
    uint32_t version, kind;
    int64_t maxsize; /* <= 0: unbounded */
    uint64_t reserve;
    _Atomic uint64_t file_size;
    _Atomic uint32_t gen; /* which layout[] is current */
    struct layout layout[2];

    /* Producers' line: wlock and what only producers touch; then tail,
     * which consumers read, on a line of its own, so that reading it does
     * not take wlock's line away from the producer. */
    alignas(64) pthread_mutex_t wlock;
    _Atomic uint64_t nput;
    _Atomic uint64_t pending_tail, pending_nput; /* the note: see repair */
    uint64_t head_cache;
    alignas(64) _Atomic uint64_t tail;

    /* The same for consumers. */
    alignas(64) pthread_mutex_t rlock;
    _Atomic uint64_t nget;
    _Atomic uint64_t pending_head, pending_nget;
    uint64_t tail_cache;
    alignas(64) _Atomic uint64_t head;

    /* JoinableQueue: task_done() calls so far. */
    alignas(64) _Atomic uint64_t ndone;

    /* Sleepers' flags: written only by one about to sleep and by its
     * waker, so the busy lines above stay where they are. */
    alignas(64) _Atomic uint32_t data_wait, room_wait, done_wait;
    alignas(64) _Atomic uint32_t data_seq, room_seq, done_seq;
};

_Static_assert(sizeof(struct shared) <= HDR_SIZE, "the header fits its page");
_Static_assert(SIZE_MAX > HDR_SIZE + RESERVE, "a 64-bit address space");

struct mp_queue {
    struct shared *s;
    unsigned char *ring;  /* the data area, right after the header */
    size_t map_len;
    /* How much of the ring this process has made accessible: the rest of
     * the reservation is PROT_NONE (tools that scan memory skip it). */
    _Atomic uint64_t access;
    mp_conn *handle;      /* owns the memfd; what a child is handed */
    enum qkind kind;
    _Atomic bool closed;  /* close() may race another thread's put */
    _Atomic int first_pause; /* a waiting consumer's, adapted: see below */
    bool borrowed;        /* a child's queue: libmp's, never freed */
};

/*
 * Fault injection for the tests (test_queue.c sets it in a child): the
 * process _exit()s at that point of its next put (1-5) or get (11-14),
 * leaving the queue as a SIGKILL there would.  One predictable branch.
 */
int mp__queue_fault;
#define FAULT(n)                                                              \
    do {                                                                      \
        if (__builtin_expect(mp__queue_fault == (n), 0))                      \
            _exit(86);                                                        \
    } while (0)

/* futexes */

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Sleeps while *w == val, until woken or the absolute CLOCK_MONOTONIC
 * deadline: 0, or MP_ETIMEDOUT. */
static int futex_wait(_Atomic uint32_t *w, uint32_t val, double deadline)
{
    struct timespec ts, *tp = NULL;

    if (deadline < 1e12) { /* finite (callers cap it): a time_t fits */
        ts.tv_sec = (time_t)deadline; /* positive: truncation is floor */
        ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
        tp = &ts;
    }
    if (syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_BITSET, val, tp, NULL,
                FUTEX_BITSET_MATCH_ANY) < 0 && errno == ETIMEDOUT)
        return MP_ETIMEDOUT;
    return 0;
}

/*
 * After a commit and the unlock that follows it: wakes whoever raised *flag.
 * A sleeper raises its flag (seq_cst) and then looks at the position again;
 * here the store of the position must be ordered before the look at the flag
 * (a store-load order), so either the sleeper sees the commit or this sees the
 * flag.  On x86 the unlock in between is that fence: a futex mutex's unlock
 * must clear the lock word and learn whether anyone waits in one atomic
 * read-modify-write, and every x86 read-modify-write is a full barrier.
 * Elsewhere, an explicit fence.  (Measured: the extra exchange or mfence
 * costs 15-20% of a 64-byte put on x86.)
 */
static void wake(_Atomic uint32_t *flag, _Atomic uint32_t *seq)
{
#if defined(__x86_64__) || defined(__i386__)
    atomic_signal_fence(memory_order_seq_cst); /* the compiler's order */
#else
    atomic_thread_fence(memory_order_seq_cst);
#endif
    if (atomic_load_explicit(flag, memory_order_relaxed) &&
        atomic_exchange(flag, 0)) {
        FAULT(5); /* the flag taken, nobody woken */
        atomic_fetch_add(seq, 1);
        syscall(SYS_futex, (uint32_t *)seq, FUTEX_WAKE, INT_MAX, NULL, NULL,
                0);
    }
}

/* Commits a new tail or head (with its lock held; wake() follows the
 * unlock). */
static void publish(_Atomic uint64_t *pos, uint64_t v)
{
    atomic_store_explicit(pos, v, memory_order_release);
}

static void repair_dead(struct shared *s);

/* A condition on the shared state, tested without a lock. */
typedef bool (*ready_fn)(const struct shared *s, uint64_t arg);

/*
 * Waits until ready(s, arg), or the deadline: spins a little, then raises
 * *flag and sleeps on *seq.  0 when ready (or maybe ready: callers re-check
 * under their lock), MP_ETIMEDOUT.  The spin first pauses `first` times,
 * then looks less and less often: each look pulls the other side's line away
 * from it, and a writer whose line is taken stalls at its next atomic
 * operation until it is back.
 */
static int wait_until(struct shared *s, ready_fn ready, uint64_t arg,
                      _Atomic uint32_t *flag, _Atomic uint32_t *seq,
                      double deadline, int first)
{
    for (int i = 0, pause = first; i < SPIN + first; i += pause,
             pause *= 2) {
        if (ready(s, arg))
            return 0;
        for (int k = 0; k < pause; k++)
            cpu_relax();
    }
    for (;;) {
        uint32_t seen = atomic_load(seq);
        double now, until;

        atomic_store(flag, 1);
        atomic_thread_fence(memory_order_seq_cst);
        if (ready(s, arg))
            return 0;
        now = mp__now();
        if (now >= deadline)
            return MP_ETIMEDOUT;
        /* A process killed after its commit and before its wake-up, or in
         * the middle of a put or get (its counter not yet repaired), sends
         * no wake-up, and the kernel has none to give for it: so a sleep
         * lasts RECHECK at most, and then the locks are tried, which
         * repairs what a dead holder left. */
        until = now + RECHECK < deadline ? now + RECHECK : deadline;
        if (futex_wait(seq, seen, until) == MP_ETIMEDOUT && until < deadline)
            repair_dead(s);
    }
}

static bool has_data(const struct shared *s, uint64_t head)
{
    return atomic_load_explicit(&s->tail, memory_order_acquire) != head;
}

static bool has_room(const struct shared *s, uint64_t unused)
{
    uint64_t nget = atomic_load(&s->nget); /* first: nget <= nput then */

    (void)unused;
    return atomic_load(&s->nput) - nget < (uint64_t)s->maxsize;
}

static bool room_changed(const struct shared *s, uint64_t head)
{
    return atomic_load_explicit(&s->head, memory_order_acquire) != head;
}

static bool all_done(const struct shared *s, uint64_t unused)
{
    (void)unused;
    return atomic_load(&s->ndone) >= atomic_load(&s->nput);
}

/* locks */

/* A dead producer: its put committed (tail moved: nput was stored before)
 * or did not (nput goes back to what it was). */
static void repair_producer(struct shared *s)
{
    if (atomic_load(&s->tail) != atomic_load(&s->pending_tail))
        atomic_store(&s->nput, atomic_load(&s->pending_nput));
    atomic_store(&s->pending_nput, atomic_load(&s->nput));
    atomic_store(&s->pending_tail, atomic_load(&s->tail));
    s->head_cache = atomic_load(&s->head);
}

static void repair_consumer(struct shared *s)
{
    if (atomic_load(&s->head) != atomic_load(&s->pending_head))
        atomic_store(&s->nget, atomic_load(&s->pending_nget));
    atomic_store(&s->pending_nget, atomic_load(&s->nget));
    atomic_store(&s->pending_head, atomic_load(&s->head));
    s->tail_cache = atomic_load(&s->tail);
}

static int lock(struct shared *s, pthread_mutex_t *m)
{
    int r = pthread_mutex_lock(m);

    if (r == EOWNERDEAD) {
        if (m == &s->wlock)
            repair_producer(s);
        else
            repair_consumer(s);
        r = pthread_mutex_consistent(m);
    }
    return -r;
}

static void unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}

/* Takes and drops each lock that is free or held by the dead: the taking
 * repairs (lock()); a lock a live process holds is left alone. */
static void repair_dead(struct shared *s)
{
    pthread_mutex_t *locks[] = { &s->wlock, &s->rlock };

    for (int i = 0; i < 2; i++) {
        int r = pthread_mutex_trylock(locks[i]);

        if (r == EOWNERDEAD) {
            if (i == 0)
                repair_producer(s);
            else
                repair_consumer(s);
            r = pthread_mutex_consistent(locks[i]);
        }
        if (r == 0)
            unlock(locks[i]);
    }
}

static int init_mutex(pthread_mutex_t *m)
{
    pthread_mutexattr_t a;
    int r;

    if ((r = pthread_mutexattr_init(&a)) != 0)
        return -r;
    r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (r == 0)
        r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (r == 0)
        r = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return -r;
}

/* the ring */

static const struct layout *cur_layout(const struct shared *s)
{
    return &s->layout[atomic_load_explicit(&s->gen, memory_order_acquire)];
}

static size_t phys(const struct layout *l, uint64_t pos)
{
    return (size_t)((pos - l->base) & (l->cap - 1));
}

static void ring_write(mp_queue *q, const struct layout *l, uint64_t pos,
                       const void *src, size_t n)
{
    size_t at = phys(l, pos), first = l->cap - at;

    if (n <= first) {
        memcpy(q->ring + at, src, n);
    } else {
        memcpy(q->ring + at, src, first);
        memcpy(q->ring, (const char *)src + first, n - first);
    }
}

static void ring_read(const mp_queue *q, const struct layout *l, uint64_t pos,
                      void *dst, size_t n)
{
    size_t at = phys(l, pos), first = l->cap - at;

    if (n <= first) {
        memcpy(dst, q->ring + at, n);
    } else {
        memcpy(dst, q->ring + at, first);
        memcpy((char *)dst + first, q->ring, n - first);
    }
}

static uint64_t rec_size(uint64_t n)
{
    return 8 + ((n + 7) & ~(uint64_t)7);
}

static int ensure_file(mp_queue *q, uint64_t cap)
{
    uint64_t want = HDR_SIZE + cap;

    if (atomic_load(&q->s->file_size) >= want)
        return 0;
    if (ftruncate(mp_conn_fileno(q->handle), (off_t)want) < 0)
        return -errno;
    atomic_store(&q->s->file_size, want);
    return 0;
}

/* Makes the first cap bytes of the ring accessible in this process. */
static int ensure_access(mp_queue *q, uint64_t cap)
{
    if (atomic_load(&q->access) >= cap)
        return 0;
    if (mprotect(q->ring, cap, PROT_READ | PROT_WRITE) < 0)
        return -errno;
    atomic_store(&q->access, cap); /* a race only repeats the call */
    return 0;
}

/*
 * With wlock held: makes the ring big enough for `need` more bytes.  When it
 * holds records, takes rlock as well, copies them to [cap, cap + used) of
 * the new layout (a part of the file the old one never used), then switches.
 * 1: done; 0: the reserve is exhausted (wait for room); < 0: error.
 */
static int grow(mp_queue *q, uint64_t need)
{
    struct shared *s = q->s;
    uint32_t g = atomic_load(&s->gen);
    struct layout old = s->layout[g], nl;
    uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
    uint64_t tail = atomic_load(&s->tail), used = tail - head;
    int r;

    nl.cap = old.cap * 2;
    while (nl.cap < used + need)
        nl.cap *= 2;
    if (nl.cap > s->reserve)
        return 0;
    if ((r = ensure_file(q, nl.cap)) < 0 ||
        (r = ensure_access(q, nl.cap)) < 0)
        return r;
    if (used == 0) {
        /* Nobody reads an empty ring: no copy, no rlock. */
        nl.base = head;
        s->layout[!g] = nl;
        atomic_store_explicit(&s->gen, !g, memory_order_release);
        return 1;
    }
    if ((r = lock(s, &s->rlock)) < 0)
        return r;
    head = atomic_load(&s->head); /* stable now */
    used = tail - head;
    nl.base = head - old.cap;
    for (uint64_t done = 0; done < used;) {
        size_t at = phys(&old, head + done), n = old.cap - at;

        if (n > used - done)
            n = (size_t)(used - done);
        memcpy(q->ring + phys(&nl, head + done), q->ring + at, n);
        done += n;
    }
    s->layout[!g] = nl;
    atomic_store_explicit(&s->gen, !g, memory_order_release);
    unlock(&s->rlock);
    return 1;
}

/*
 * With wlock held and the ring full: before growing it, gives a consumer that
 * is draining it a moment to make room, for as long as head keeps moving (a
 * bounded spin).  A producer that runs ahead of a busy consumer then waits a
 * little instead of growing the ring out of the cache (where both would run
 * slower for good); a queue nobody is getting from grows at once, so an
 * unbounded put still never waits for a consumer.  true: room was made.
 */
static bool room_soon(struct shared *s, uint64_t tail, uint64_t cap,
                      uint64_t rec)
{
    uint64_t last = s->head_cache;

    for (int i = 1; i <= GROW_SPIN; i++) {
        uint64_t head;

        cpu_relax();
        if (i % 32 != 0)
            continue;
        head = atomic_load_explicit(&s->head, memory_order_acquire);
        if (cap - (tail - head) >= rec) {
            s->head_cache = head;
            return true;
        }
        if (head == last)
            return false; /* nobody is getting: grow */
        last = head;
    }
    return false;
}

/* construction */

static int map_queue(mp_queue *q, int fd)
{
    void *m;

    q->map_len = HDR_SIZE + RESERVE;
    m = mmap(NULL, q->map_len, PROT_NONE, MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (m == MAP_FAILED)
        return -errno;
    q->s = m;
    q->ring = (unsigned char *)m + HDR_SIZE;
    if (mprotect(m, HDR_SIZE, PROT_READ | PROT_WRITE) < 0)
        return -errno;
    return 0;
}

static int queue_create(mp_queue **out, enum qkind kind, int maxsize)
{
    mp_queue *q;
    struct shared *s;
    int fd, r = 0;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if ((q = calloc(1, sizeof(*q))) == NULL)
        return -ENOMEM;
    q->kind = kind;
    q->first_pause = 1;
    if ((fd = memfd_create("libmp-queue", MFD_CLOEXEC)) < 0) {
        r = -errno;
        free(q);
        return r;
    }
    if ((q->handle = mp__conn_wrap(fd, MP__CONN_QUEUE)) == NULL) {
        close(fd);
        free(q);
        return -ENOMEM;
    }
    if (ftruncate(fd, HDR_SIZE + INITIAL_CAP) < 0 ||
        (r = map_queue(q, fd)) < 0) {
        r = r < 0 ? r : -errno;
        goto fail;
    }
    s = q->s;
    s->version = QVERSION;
    s->kind = kind;
    s->maxsize = maxsize > 0 ? maxsize : 0;
    s->reserve = RESERVE;
    atomic_store(&s->file_size, HDR_SIZE + INITIAL_CAP);
    s->layout[0].cap = INITIAL_CAP;
    if ((r = init_mutex(&s->wlock)) < 0 || (r = init_mutex(&s->rlock)) < 0)
        goto fail;
    atomic_store_explicit(&s->magic, QMAGIC, memory_order_release);
    *out = q;
    return 0;
fail:
    mp_queue_free(q);
    return r;
}

int mp_queue_new(mp_queue **q, int maxsize)
{
    return queue_create(q, Q_QUEUE, maxsize);
}

int mp_joinable_queue_new(mp_queue **q, int maxsize)
{
    return queue_create(q, Q_JOINABLE, maxsize);
}

int mp_simple_queue_new(mp_queue **q)
{
    return queue_create(q, Q_SIMPLE, 0);
}

mp_queue *mp_queue_free(mp_queue *q)
{
    if (q == NULL || q->borrowed)
        return NULL;
    if (q->s != NULL)
        munmap(q->s, q->map_len);
    mp_conn_free(q->handle);
    free(q);
    return NULL;
}

/* A child's view of a queue its parent handed it. */
static mp_queue *queue_attach(mp_conn *handle)
{
    mp_queue *q = calloc(1, sizeof(*q));
    struct stat st;
    int fd = mp_conn_fileno(handle);

    if (q == NULL)
        return NULL;
    q->handle = handle;
    q->borrowed = true;
    q->first_pause = 1;
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < HDR_SIZE ||
        map_queue(q, fd) < 0)
        goto fail;
    if (atomic_load(&q->s->magic) != QMAGIC ||
        q->s->version != QVERSION || q->s->kind > Q_SIMPLE ||
        q->s->reserve != RESERVE)
        goto fail;
    q->kind = (enum qkind)q->s->kind;
    return q;
fail:
    if (q->s != NULL)
        munmap(q->s, q->map_len);
    free(q);
    return NULL;
}

int mp_process_add_queue(mp_process *p, mp_queue *q)
{
    if (q == NULL)
        return MP_EINVAL;
    return mp_process_add_conn(p, q->handle);
}

mp_queue *mp_child_queue(size_t i)
{
    static mp_queue **cache;
    static size_t ncache;
    static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
    size_t n = mp__child_conn_count(), k = 0;
    mp_queue *q = NULL;

    pthread_mutex_lock(&cache_lock);
    if (cache == NULL && n > 0)
        if ((cache = calloc(n, sizeof(*cache))) != NULL)
            ncache = n;
    for (size_t j = 0; j < n && j < ncache; j++) {
        mp_conn *c = mp__child_conn_raw(j);

        if (!(mp__conn_flags(c) & MP__CONN_QUEUE))
            continue;
        if (k++ == i) {
            if (cache[j] == NULL)
                cache[j] = queue_attach(c);
            q = cache[j];
            break;
        }
    }
    pthread_mutex_unlock(&cache_lock);
    return q;
}

/* put */

static double deadline_of(int block, double timeout)
{
    if (!block || !(timeout > 0))
        return 0; /* already passed: check once */
    if (timeout >= 1e9) /* 30 years: forever, and no time_t overflow */
        return INFINITY;
    return mp__now() + timeout;
}

static int closed_error(const mp_queue *q)
{
    return q->kind == Q_SIMPLE ? MP_EHANDLECLOSED : MP_EQCLOSED;
}

int mp_queue_put(mp_queue *q, const void *buf, size_t n, int block,
                 double timeout)
{
    struct shared *s;
    uint64_t rec, tail, nput;
    const struct layout *l;
    double deadline;
    int r;

    if (q == NULL || (buf == NULL && n > 0) || isnan(timeout))
        return MP_EINVAL;
    if (q->closed)
        return closed_error(q);
    if (n > MAX_MSG)
        return -EMSGSIZE;
    s = q->s;
    rec = rec_size(n);
    deadline = deadline_of(block, timeout);
    for (;;) {
        if ((r = lock(s, &s->wlock)) < 0)
            return r;
        tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
        nput = atomic_load_explicit(&s->nput, memory_order_relaxed);
        if (s->maxsize > 0 && !has_room(s, 0)) {
            unlock(&s->wlock);
            if (deadline == 0 || wait_until(s, has_room, 0, &s->room_wait,
                                            &s->room_seq, deadline, 1) < 0)
                return MP_EFULL;
            continue;
        }
        l = cur_layout(s);
        if ((r = ensure_access(q, l->cap)) < 0) {
            unlock(&s->wlock);
            return r;
        }
        if (l->cap - (tail - s->head_cache) < rec) {
            s->head_cache = atomic_load_explicit(&s->head,
                                                 memory_order_acquire);
            if (l->cap - (tail - s->head_cache) < rec &&
                !room_soon(s, tail, l->cap, rec)) {
                if ((r = grow(q, rec)) < 0) {
                    unlock(&s->wlock);
                    return r;
                }
                if (r == 0) { /* 4 GiB of backlog: wait for a get */
                    uint64_t head = s->head_cache;

                    unlock(&s->wlock);
                    if (deadline == 0 ||
                        wait_until(s, room_changed, head, &s->room_wait,
                                   &s->room_seq, deadline, 1) < 0)
                        return MP_EFULL;
                    continue;
                }
                l = cur_layout(s);
            }
        }
        {
            uint64_t hdr = n;

            ring_write(q, l, tail, &hdr, 8);
            ring_write(q, l, tail + 8, buf, n);
        }
        /* The note, then nput, then tail: each store a release, so that
         * neither the compiler nor the CPU lets a later one be seen first
         * (a process killed between two of them must leave them in this
         * order for repair_producer()). */
        atomic_store_explicit(&s->pending_nput, nput, memory_order_relaxed);
        atomic_store_explicit(&s->pending_tail, tail + rec,
                              memory_order_release);
        FAULT(1);
        atomic_store_explicit(&s->nput, nput + 1, memory_order_release);
        FAULT(2);
        publish(&s->tail, tail + rec);
        FAULT(3);
        unlock(&s->wlock);
        FAULT(4);
        wake(&s->data_wait, &s->data_seq);
        return 0;
    }
}

int mp_queue_put_nowait(mp_queue *q, const void *buf, size_t n)
{
    return mp_queue_put(q, buf, n, 0, 0);
}

/* get */

/*
 * After a consumer waited for data: how long to pause before its first look
 * next time.  Several records waiting when it looked mean the producer is
 * streaming: looking later lets it write a batch without the consumer taking
 * its lines away record by record (on this project's 2-vCPU VM, 3-5 M/s
 * against 15 M/s for 64-byte messages).  A single record means a round trip:
 * looking sooner keeps the latency low.
 */
static void adapt_first_pause(mp_queue *q, uint64_t avail, uint64_t rec)
{
    int f = atomic_load_explicit(&q->first_pause, memory_order_relaxed);

    if (avail >= 8 * rec)
        f = f * 2 > FIRST_MAX ? FIRST_MAX : f * 2;
    else
        f = f / 2 < 1 ? 1 : f / 2;
    atomic_store_explicit(&q->first_pause, f, memory_order_relaxed);
}

/* Where a message goes: a malloc'd buffer, or the caller's. */
struct sink {
    void **out;
    void *buf;
    size_t size;
    size_t *len;
};

static int get_common(mp_queue *q, struct sink *k, int block, double timeout)
{
    struct shared *s;
    uint64_t head, tail, n, nget;
    const struct layout *l;
    double deadline;
    void *dst;
    bool waited = false;
    int r;

    if (q == NULL || k->len == NULL || isnan(timeout))
        return MP_EINVAL;
    if (q->closed)
        return closed_error(q);
    s = q->s;
    deadline = deadline_of(block, timeout);
    for (;;) {
        if ((r = lock(s, &s->rlock)) < 0)
            return r;
        head = atomic_load_explicit(&s->head, memory_order_relaxed);
        if (s->tail_cache == head)
            s->tail_cache = atomic_load_explicit(&s->tail,
                                                 memory_order_acquire);
        tail = s->tail_cache;
        if (tail != head)
            break;
        unlock(&s->rlock);
        if (deadline == 0 || wait_until(s, has_data, head, &s->data_wait,
                                        &s->data_seq, deadline,
                                        atomic_load_explicit(
                                            &q->first_pause,
                                            memory_order_relaxed)) < 0)
            return MP_EEMPTY;
        waited = true;
    }
    l = cur_layout(s);
    if ((r = ensure_access(q, l->cap)) < 0) {
        unlock(&s->rlock);
        return r;
    }
    ring_read(q, l, head, &n, 8);
    if (n > MAX_MSG || rec_size(n) > tail - head) {
        unlock(&s->rlock); /* cannot happen: the ring is ours */
        return MP_EQCORRUPT;
    }
    if (waited)
        adapt_first_pause(q, tail - head, rec_size(n));
    *k->len = (size_t)n;
    if (k->out != NULL) {
        if ((dst = malloc((size_t)n + 1)) == NULL) {
            unlock(&s->rlock);
            return -ENOMEM;
        }
        ((char *)dst)[n] = '\0';
    } else if (n > k->size) {
        unlock(&s->rlock);
        return MP_ETOOSHORT;
    } else {
        dst = k->buf;
    }
    ring_read(q, l, head + 8, dst, (size_t)n);
    nget = atomic_load_explicit(&s->nget, memory_order_relaxed);
    atomic_store_explicit(&s->pending_nget, nget, memory_order_relaxed);
    atomic_store_explicit(&s->pending_head, head + rec_size(n),
                          memory_order_release);
    FAULT(11);
    atomic_store_explicit(&s->nget, nget + 1, memory_order_release);
    FAULT(12);
    publish(&s->head, head + rec_size(n));
    FAULT(13);
    unlock(&s->rlock);
    FAULT(14);
    if (k->out != NULL)
        *k->out = dst;
    wake(&s->room_wait, &s->room_seq);
    return 0;
}

int mp_queue_get(mp_queue *q, void **out, size_t *len, int block,
                 double timeout)
{
    struct sink k = { out, NULL, 0, len };

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    return get_common(q, &k, block, timeout);
}

int mp_queue_get_nowait(mp_queue *q, void **out, size_t *len)
{
    return mp_queue_get(q, out, len, 0, 0);
}

int mp_queue_get_into(mp_queue *q, void *buf, size_t size, size_t *len,
                      int block, double timeout)
{
    struct sink k = { NULL, buf, size, len };

    if (buf == NULL && size > 0)
        return MP_EINVAL;
    return get_common(q, &k, block, timeout);
}

/* state */

int mp_queue_qsize(mp_queue *q)
{
    uint64_t nget, nput;

    if (q == NULL || q->kind == Q_SIMPLE)
        return MP_EINVAL;
    nget = atomic_load(&q->s->nget); /* first: see has_room() */
    nput = atomic_load(&q->s->nput);
    return nput > nget ? (int)(nput - nget > INT_MAX ? INT_MAX : nput - nget)
                       : 0;
}

int mp_queue_empty(mp_queue *q)
{
    if (q == NULL)
        return MP_EINVAL;
    if (q->closed && q->kind == Q_SIMPLE)
        return MP_EHANDLECLOSED;
    return !has_data(q->s, atomic_load(&q->s->head));
}

int mp_queue_full(mp_queue *q)
{
    if (q == NULL || q->kind == Q_SIMPLE)
        return MP_EINVAL;
    return q->s->maxsize > 0 && !has_room(q->s, 0);
}

int mp_queue_close(mp_queue *q)
{
    if (q == NULL)
        return MP_EINVAL;
    q->closed = true;
    return 0;
}

int mp_queue_join_thread(mp_queue *q)
{
    if (q == NULL || q->kind == Q_SIMPLE)
        return MP_EINVAL;
    return q->closed ? 0 : MP_EQNOTCLOSED;
}

int mp_queue_cancel_join_thread(mp_queue *q)
{
    return q == NULL || q->kind == Q_SIMPLE ? MP_EINVAL : 0;
}

int mp_queue_task_done(mp_queue *q)
{
    struct shared *s;
    uint64_t done;

    if (q == NULL || q->kind != Q_JOINABLE)
        return MP_EINVAL;
    s = q->s;
    done = atomic_load(&s->ndone);
    do {
        if (done >= atomic_load(&s->nput))
            return MP_ETASKDONE;
    } while (!atomic_compare_exchange_weak(&s->ndone, &done, done + 1));
    if (done + 1 >= atomic_load(&s->nput))
        wake(&s->done_wait, &s->done_seq);
    return 0;
}

int mp_queue_join(mp_queue *q, double timeout)
{
    double deadline;

    if (q == NULL || q->kind != Q_JOINABLE || isnan(timeout))
        return MP_EINVAL;
    if (all_done(q->s, 0))
        return 0;
    deadline = deadline_of(1, timeout);
    if (deadline == 0)
        return MP_ETIMEDOUT;
    return wait_until(q->s, all_done, 0, &q->s->done_wait, &q->s->done_seq,
                      deadline, 1);
}

int mp_queue_repr(const mp_queue *q, char *buf, size_t size)
{
    if (q == NULL)
        return MP_EINVAL;
    return snprintf(buf, size, "<multiprocessing.queues.%s object at %p>",
                    kind_names[q->kind], (const void *)q);
}

/* helpers */

int mp_queue_put_str(mp_queue *q, const char *s)
{
    if (s == NULL)
        return MP_EINVAL;
    return mp_queue_put(q, s, strlen(s), 1, MP_FOREVER);
}

int mp_queue_put_i64(mp_queue *q, long long v)
{
    return mp_queue_put(q, &v, sizeof(v), 1, MP_FOREVER);
}

int mp_queue_put_double(mp_queue *q, double v)
{
    return mp_queue_put(q, &v, sizeof(v), 1, MP_FOREVER);
}

static int get8(mp_queue *q, void *v, double timeout)
{
    size_t len;
    int r = mp_queue_get_into(q, v, 8, &len, 1, timeout);

    if (r == MP_ETOOSHORT || (r == 0 && len != 8))
        return MP_EBADLENGTH;
    return r;
}

int mp_queue_get_i64(mp_queue *q, long long *v, double timeout)
{
    return v == NULL ? MP_EINVAL : get8(q, v, timeout);
}

int mp_queue_get_double(mp_queue *q, double *v, double timeout)
{
    return v == NULL ? MP_EINVAL : get8(q, v, timeout);
}
