/*
 * queue.c - Queue, JoinableQueue and SimpleQueue (CPython: queues.py) on a
 * ring in shared memory.
 *
 * A queue is a memfd: a header page, then a ring of records (an 8-byte
 * length, then the bytes, padded to 8).  Every process maps the memfd with
 * room for the ring to grow (the file grows; see "views" for a ring that
 * outgrows a process's mapping).
 * Positions (head, tail) count bytes from the queue's birth and never wrap
 * in practice; a position's place in the ring is (pos - base) mod cap, where
 * (cap, base) is the current layout.
 *
 * Producers hold the producers' side and consumers the consumers' side, only
 * while they copy; nobody sleeps holding one.  A side is a robust
 * process-shared mutex with a bias (side.c): a thread that took the mutex
 * many times in a row, uncontended, is given the side, and then enters and
 * leaves it with plain stores and loads, no atomic read-modify-write, until
 * another thread wants it and revokes the bias with membarrier(2).  A
 * waiter sleeps on a futex sequence word after raising a
 * flag and running membarrier(2) (or a fence, without it); the other side
 * looks at the flag after its commit and only then makes a system call.
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
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <linux/membarrier.h>

#include "futex.h"
#include "internal.h"
#include "side.h"
#include "spin.h"
#ifdef MP_TEST_HOOKS
#include "test_hooks.h"
#endif

#define QMAGIC 0x657565517062696cULL /* "libmpQue" */
#define QVERSION 6
#define HDR_SIZE 4096
#define MAX_CAP (4ULL << 30) /* the most the ring may grow to */
#define VIEW_MAX (1ULL << 30) /* the most a process reserves for a ring
                                 ahead of its need (see reserve_size) */
#define INITIAL_CAP (256u * 1024)
#define MAX_MSG (1ULL << 30)
#define MAX_GAP 16 /* pauses between two looks of a spinning waiter, after
                      the first */
#define FIRST_MAX 256 /* pauses before a waiting consumer's first look */
#define RECHECK 0.1    /* seconds a waiter sleeps before it looks for the
                          dead (see wait_until) */
#define STALL 0.01     /* seconds without a get after which a full ring
                          grows (see put_waits_for_room) */
#define MAX_ROOM_WAIT 0.02 /* the most one put waits for room in the ring */
#define PUT_GRACE 0.01 /* seconds a non-blocking put waits for another
                          producer to leave the producers' side */

enum qkind { Q_QUEUE, Q_JOINABLE, Q_SIMPLE };
static const char *const kind_names[] = { "Queue", "JoinableQueue",
                                          "SimpleQueue" };

struct layout {
    uint64_t cap, base;
};

/* A layout as a process checked it (see layout_check()), and the
 * generation it was current in.  Its fields are read and written as
 * relaxed atomics (plain moves), for ThreadSanitizer: the threads of a
 * process use a side's copy one after the other, ordered by the side, but
 * a side's bias is handed over in ways it cannot see. */
struct checked {
    uint32_t gen;
    struct layout l;
};

static inline uint64_t cap_of(const struct layout *l)
{
    return __atomic_load_n(&l->cap, __ATOMIC_RELAXED);
}

static inline uint64_t base_of(const struct layout *l)
{
    return __atomic_load_n(&l->base, __ATOMIC_RELAXED);
}

static void checked_set(struct checked *c, uint32_t g, struct layout l)
{
    __atomic_store_n(&c->l.cap, l.cap, __ATOMIC_RELAXED);
    __atomic_store_n(&c->l.base, l.base, __ATOMIC_RELAXED);
    __atomic_store_n(&c->gen, g, __ATOMIC_RELAXED);
}

/* Shared by every process: the header page of the memfd.  What producers
 * write, what consumers write and what both only read live on separate cache
 * lines. */
struct shared {
    _Atomic uint64_t magic; /* stored last, a release: the header is whole */
    uint32_t version, kind;
    int64_t maxsize; /* <= 0: unbounded */
    uint64_t max_cap;
    _Atomic uint32_t gen; /* counts the layouts; layout[gen & 1] is current */
    uint32_t mb;          /* 1: sleepers run membarrier(), committers need
                             no fence (see wake()) */
    struct layout layout[2];

    /* Producers' lines: their side and what only producers touch; then
     * tail, which consumers read, on a line of its own, so that reading it
     * does not take the producers' lines away from them. */
    alignas(64) struct mp__side w; /* see side.h */
    _Atomic uint64_t nput;
    _Atomic uint64_t pending_tail, pending_nput; /* the note: see repair */
    uint64_t head_cache;
    uint64_t head_seen;   /* with the side held: head at the last full ring, */
    double head_seen_at;  /* and when it was first seen there */
    alignas(64) _Atomic uint64_t tail;

    /* The same for consumers. */
    alignas(64) struct mp__side r;
    _Atomic uint64_t nget;
    _Atomic uint64_t pending_head, pending_nget;
    uint64_t tail_cache;
    alignas(64) _Atomic uint64_t head;

    /* JoinableQueue: task_done() calls so far. */
    alignas(64) _Atomic uint64_t ndone;

    /* Sleepers' flags: written only by one about to sleep and by its
     * waker, so the busy lines above stay where they are. */
    alignas(64) _Atomic uint32_t data_wait, room_wait, done_wait, ring_wait;
    _Atomic uint64_t ring_at; /* a producer waiting on ring_wait wants head
                                 to reach this */
    alignas(64) _Atomic uint32_t data_seq, room_seq, done_seq, ring_seq;
    /* The CPU each one's last waker ran on (spin.h): a hint, which a peer
     * may have written anything into. */
    _Atomic int32_t data_waker, room_waker, done_waker, ring_waker;
};

_Static_assert(sizeof(struct shared) <= HDR_SIZE, "the header fits its page");
_Static_assert(SIZE_MAX > HDR_SIZE + MAX_CAP, "a 64-bit address space");

#define OLD_VIEWS 16 /* each view at least doubles: 256 KiB to 4 GiB is 14 */

struct mp_queue {
    struct shared *s;     /* in the first view, which stays mapped */
    /* The data area, right after the header in the current view: any view
     * this process has made serves as well (see "views"). */
    unsigned char *_Atomic ring;
    /* How much of the ring this process has made accessible at `ring`:
     * the rest of the view is PROT_NONE (tools that scan memory skip it). */
    _Atomic uint64_t access;
    uint64_t view_len;    /* with view_lock held: the ring room of the
                             current view */
    struct { void *addr; size_t len; } old[OLD_VIEWS]; /* earlier views, in
                             part: unmapped by mp_queue_free() */
    int nold;
    mp_conn *handle;      /* owns the memfd; what a child is handed */
    enum qkind kind;
    int64_t maxsize;      /* the header's, checked once: it never changes */
    /* The layout that the producers' side (w) and the consumers' side (r)
     * use in this process, read with that side held: checked once when the
     * generation changes, so that the fast path neither rereads nor
     * rechecks what a peer may write over (see layout_check()). */
    struct checked w, r;
    _Atomic bool closed;  /* close() may race another thread's put */
    _Atomic int first_pause; /* a waiting consumer's, adapted: see below */
    /* The spins of this process's waits (spin.h): gets, and puts and
     * join()s. */
    _Atomic int32_t get_spin, put_spin;
    _Atomic uint64_t last_rec; /* the record this process got last */
    bool borrowed;        /* a child's queue: libmp's, never freed */
    bool joined;          /* join_thread() was called */
    unsigned fed;         /* fork_gen + 1 once this process put through it */
};

/*
 * Fault injection for the tests (test_queue.c sets it in a child): the
 * process _exit()s at that point of its next put (1-5) or get (11-14),
 * leaving the queue as a SIGKILL there would; or (21) a biased owner pauses
 * between its look at the owner and its busy = 1, as a preempted one would,
 * and again once inside; or (22) a biased owner stays inside, once, for
 * 2 s (a long copy, or a stopped process): those two in side.h.
 * Only test builds (MP_TEST_HOOKS: libmp-test.a) have it, so that the
 * library a program links has neither the writable switch that makes it
 * _exit() nor its branches on the fast path.
 */
#ifdef MP_TEST_HOOKS
int mp__queue_fault;
#define FAULT(n)                                                              \
    do {                                                                      \
        if (__builtin_expect(__atomic_load_n(&mp__queue_fault,                \
                                             __ATOMIC_RELAXED) == (n), 0))    \
            _exit(86);                                                        \
    } while (0)
#else
#define FAULT(n) ((void)0)
#endif

static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
/* Serialises the changes to a process's views of queues (see "views"); a
 * fork child gets it free. */
static pthread_mutex_t view_lock = PTHREAD_MUTEX_INITIALIZER;
/* mp_child_queue()'s cache (taken before view_lock: it attaches queues). */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static void atfork_prepare(void)
{
    pthread_mutex_lock(&cache_lock);
    pthread_mutex_lock(&view_lock);
}

static void atfork_parent(void)
{
    pthread_mutex_unlock(&view_lock);
    pthread_mutex_unlock(&cache_lock);
}

/* Forks this process has come through (fork children count theirs anew):
 * what marks a queue's puts as this process's (mp_queue.fed). */
static unsigned fork_gen;

void mp__forked(void)
{
    mp__live_forked();
    mp__robust_forked();
    mp__side_forked();
    mp__sync_forked();
    mp__pool_forked();
}

static void atfork_child(void)
{
    fork_gen++;
    mp__forked();
    pthread_mutex_unlock(&view_lock);
    pthread_mutex_unlock(&cache_lock);
}

static void register_atfork(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Before main(): no fork, whenever it comes, copies view_lock or
 * cache_lock held into its child, and the handler runs before any a
 * program registers, which might use a queue or a lock in the child (with
 * its parent thread's token, ids or held mutexes). */
__attribute__((constructor)) static void queue_init(void)
{
    pthread_once(&atfork_once, register_atfork);
}

/* Before this process's first put or get, and again in a fork child. */
static void proc_setup(void)
{
    pthread_once(&atfork_once, register_atfork);
    mp__membarrier_setup();
}

static inline void proc_ready(void)
{
    if (__builtin_expect(atomic_load_explicit(&mp__membarrier_state,
                                              memory_order_relaxed) == 0, 0))
        proc_setup();
}

/*
 * After a commit and the unlock that follows it: wakes whoever raised *flag.
 * A sleeper raises its flag (seq_cst) and then looks at the position again;
 * here the store of the position must be ordered before the look at the flag
 * (a store-load order), so either the sleeper sees the commit or this sees the
 * flag.  On a queue whose sleepers run membarrier(2) after raising the flag
 * (s->mb), that call is the fence, run on this CPU for us: this side needs
 * none, which matters after a biased side's plain-store unlock.  Otherwise,
 * on x86 the mutex unlock in between is that fence: a futex mutex's unlock
 * must clear the lock word and learn whether anyone waits in one atomic
 * read-modify-write, and every x86 read-modify-write is a full barrier
 * (such a queue has no biased sides).  Elsewhere, an explicit fence.
 * (Measured: the extra exchange or mfence costs 15-20% of a 64-byte put on
 * x86.)
 */
static void wake_fence(const struct shared *s)
{
#if defined(__x86_64__) || defined(__i386__)
    (void)s;
    atomic_signal_fence(memory_order_seq_cst); /* the compiler's order */
#else
    if (s->mb && mp__membarrier_ok())
        atomic_signal_fence(memory_order_seq_cst);
    else
        atomic_thread_fence(memory_order_seq_cst);
#endif
}

/* A raised flag: takes it and wakes, noting this CPU in *waker for the
 * sleepers' spins (spin.h).  Out of line: a put or get that finds no
 * sleeper keeps its registers. */
__attribute__((noinline, cold)) static void wake_slow(
    _Atomic uint32_t *flag, _Atomic uint32_t *seq, _Atomic int32_t *waker)
{
    if (atomic_exchange(flag, 0)) {
        FAULT(5); /* the flag taken, nobody woken */
        atomic_store_explicit(waker, sched_getcpu(), memory_order_relaxed);
        atomic_fetch_add(seq, 1);
        mp__futex_wake(seq, INT_MAX);
    }
}

/* After wake_fence(): wakes whoever raised *flag. */
static inline void wake_flag(_Atomic uint32_t *flag, _Atomic uint32_t *seq,
                             _Atomic int32_t *waker)
{
    if (atomic_load_explicit(flag, memory_order_relaxed))
        wake_slow(flag, seq, waker);
}

static void wake(const struct shared *s, _Atomic uint32_t *flag,
                 _Atomic uint32_t *seq, _Atomic int32_t *waker)
{
    wake_fence(s);
    wake_flag(flag, seq, waker);
}

/* Commits a new tail or head (with its lock held; wake() follows the
 * unlock). */
static void publish(_Atomic uint64_t *pos, uint64_t v)
{
    atomic_store_explicit(pos, v, memory_order_release);
}

static void repair_dead(struct shared *s, double deadline);

/* After a sleeper raised its flag: the fence wake() counts on.  false: none
 * could be run for the committers (they may not see the flag), so the
 * sleeper must not sleep long. */
static bool sleeper_fence(const struct shared *s)
{
    if (s->mb && mp__membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) == 0)
        return true;
    atomic_thread_fence(memory_order_seq_cst);
    return !s->mb;
}

/* A condition on the shared state, tested without a lock. */
typedef bool (*ready_fn)(const struct shared *s, uint64_t arg);

/* A waiting get's stop word (mp__queue_get_claim()): read after the seq
 * word it would sleep on, so that a stop stored before
 * mp__queue_wake_getters()'s increment is seen or that sleep fails. */
static inline bool stopped(const _Atomic uint32_t *stop)
{
    return stop != NULL && atomic_load(stop) != 0;
}

/* What a wait sleeps on: its flag, its sequence word, where its waker
 * notes its CPU, and this process's spin for it. */
struct waitq {
    _Atomic uint32_t *flag, *seq;
    _Atomic int32_t *waker, *spin;
};
#define WAITQ(q, name, budget)                                                \
    (&(struct waitq){ &(q)->s->name##_wait, &(q)->s->name##_seq,             \
                      &(q)->s->name##_waker, &(q)->budget })

/*
 * Waits until ready(s, arg), or the deadline, or *stop (stop NULL: none;
 * see mp__queue_get_claim()): spins for w's budget (spin.h), then raises
 * w's flag and sleeps on its seq.  0 when ready or stopped (or maybe
 * ready: callers re-check under their lock), MP_ETIMEDOUT.  The spin
 * first looks, pauses `first` times, then looks less and less often, down
 * to one look every MAX_GAP pauses: each look pulls the other side's line
 * away from it, and a writer whose line is taken stalls until it is back;
 * but a gap much longer than the other side's turn makes a round trip
 * wait for it (exponential gaps up to 256 pauses make a 64-byte round trip
 * about six times as long as gaps capped at MAX_GAP).  A sleeper woken
 * looks before it raises the flag again: its fence (a membarrier(2), an
 * interrupt of every CPU) is for a sleep, not for a look.
 */
static int wait_until(struct shared *s, ready_fn ready, uint64_t arg,
                      const struct waitq *w, double deadline, int first,
                      const _Atomic uint32_t *stop)
{
    double end = mp__spin_end(w->spin, deadline);
    int cpu = -1;

    for (int pause = first; end != 0;
         pause = pause * 2 < MAX_GAP ? pause * 2 : MAX_GAP) {
        if (ready(s, arg) || stopped(stop)) {
            mp__spin_grow(w->spin);
            return 0;
        }
        if (mp__now() >= end)
            break;
        for (int k = 0; k < pause; k++)
            mp__cpu_relax();
    }
    for (double next_repair = mp__now() + RECHECK;;) {
        uint32_t seen = atomic_load(w->seq);
        double now, until;
        bool fenced;

        atomic_store(w->flag, 1);
        fenced = sleeper_fence(s);
        if (ready(s, arg) || stopped(stop)) {
            /* It came while this thread ran, not asleep: from another CPU,
             * where a longer spin would have seen it. */
            if (cpu < 0)
                mp__spin_grow(w->spin);
            break;
        }
        now = mp__now();
        if (now >= deadline)
            return MP_ETIMEDOUT;
        /* A process killed after its commit and before its wake-up, or in
         * the middle of a put or get (its counter not yet repaired), sends
         * no wake-up, and the kernel has none to give for it: so a sleep
         * lasts RECHECK at most, and every RECHECK the locks are tried,
         * which repairs what a dead holder left (by the clock: signals
         * that cut sleeps short must not put it off).  Without the fence,
         * a sleep lasts a millisecond. */
        if (now >= next_repair) {
            repair_dead(s, deadline);
            next_repair = now + RECHECK;
            continue;
        }
        until = fenced ? next_repair : now + 0.001;
        until = until < deadline ? until : deadline;
        if (cpu < 0)
            cpu = sched_getcpu();
        mp__futex_wait(w->seq, seen, until);
        if (ready(s, arg) || stopped(stop)) {
            mp__spin_learn(w->spin, cpu, atomic_load_explicit(
                                             w->waker, memory_order_relaxed));
            break;
        }
    }
    return 0;
}

static bool has_data(const struct shared *s, uint64_t head)
{
    return atomic_load_explicit(&s->tail, memory_order_acquire) != head;
}

/* arg: the queue's maxsize (the process's copy: see mp_queue). */
static bool has_room(const struct shared *s, uint64_t maxsize)
{
    uint64_t nget = atomic_load(&s->nget); /* first: nget <= nput then */

    return atomic_load(&s->nput) - nget < maxsize;
}

/* Whether the counters can be right: nget, read first, never passes nput
 * (a put counts itself before it commits; a repair only takes back a
 * count that no get can have seen), so nget > nput is a peer's scribble. */
static bool counts_sane(const struct shared *s)
{
    uint64_t nget = atomic_load(&s->nget);

    return nget <= atomic_load(&s->nput);
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

/*
 * sides (side.h): what a dead holder left is repaired here, from the notes
 * (pending_* in the side's lines).
 */

/* A dead producer: its put committed (tail moved: nput was stored before)
 * or did not (nput goes back to what it was). */
static void repair_producer(void *ctx)
{
    struct shared *s = ctx;

    if (atomic_load(&s->tail) != atomic_load(&s->pending_tail))
        atomic_store(&s->nput, atomic_load(&s->pending_nput));
    atomic_store(&s->pending_nput, atomic_load(&s->nput));
    atomic_store(&s->pending_tail, atomic_load(&s->tail));
    s->head_cache = atomic_load(&s->head);
}

static void repair_consumer(void *ctx)
{
    struct shared *s = ctx;

    if (atomic_load(&s->head) != atomic_load(&s->pending_head))
        atomic_store(&s->nget, atomic_load(&s->pending_nget));
    atomic_store(&s->pending_nget, atomic_load(&s->nget));
    atomic_store(&s->pending_head, atomic_load(&s->head));
    s->tail_cache = atomic_load(&s->tail);
}

/* Takes a side: MP__SIDE_MUTEX or more, for side_unlock(); -ETIMEDOUT
 * when another thread or process stays inside past the CLOCK_MONOTONIC
 * deadline (0: only if free now; -t: t seconds from now; INFINITY: no
 * limit); < 0: another error.  The bias first, inline: a put or get makes
 * no call on its way in. */
static inline int side_lock(struct shared *s, struct mp__side *sd,
                            double deadline)
{
    int held = mp__side_enter(sd);

    if (held != 0)
        return held;
    return mp__side_lock(sd, deadline, s->mb != 0,
                         sd == &s->w ? repair_producer : repair_consumer, s);
}

static inline void side_unlock(struct mp__side *sd, int held)
{
    mp__side_unlock(sd, held);
}

/* Takes and drops each side that is free or held by the dead: the taking
 * repairs (see mp__side_repair_dead()). */
static void repair_dead(struct shared *s, double deadline)
{
    mp__side_repair_dead(&s->w, deadline, repair_producer, s);
    mp__side_repair_dead(&s->r, deadline, repair_consumer, s);
}

#ifdef MP_TEST_HOOKS
/* Tests: whether this process can use membarrier. */
int mp__queue_membarrier(void)
{
    proc_ready();
    return mp__membarrier_ok();
}

int mp__queue_get_spin(mp_queue *q)
{
    return atomic_load(&q->get_spin);
}

/* Tests: whether a side has a biased owner; whether it is inside. */
int mp__queue_biased(mp_queue *q, int producers)
{
    return atomic_load(producers ? &q->s->w.owner : &q->s->r.owner) != 0;
}

int mp__queue_biased_inside(mp_queue *q, int producers)
{
    struct mp__side *sd = producers ? &q->s->w : &q->s->r;
    uint32_t o = mp__side_slot_index(atomic_load(&sd->owner));

    return o != 0 && atomic_load(&sd->slot[o - 1].busy) != 0;
}

/* Tests: the ring's capacity now, in bytes. */
unsigned long long mp__queue_capacity(mp_queue *q)
{
    return (unsigned long long)q->s->layout[atomic_load(&q->s->gen) & 1].cap;
}

/* Tests: the header's fields, for test_queue_hostile.c to write over. */
#define FIELD(name, type)                                                     \
    { #name, offsetof(struct shared, name), sizeof(((struct shared *)0)->name),\
      type }
#define SIDE_FIELDS(sd)                                                       \
    FIELD(sd.m, 'm'), FIELD(sd.owner, 'u'), FIELD(sd.last, 'u'),              \
    FIELD(sd.pending, 'u'), FIELD(sd.streak_token, 'u'),                      \
    FIELD(sd.streak, 'u')
#define SLOT_FIELDS(sd, i)                                                    \
    FIELD(sd.slot[i].token, 'u'), FIELD(sd.slot[i].busy, 'u'),                \
    FIELD(sd.slot[i].id.pid, 'i'), FIELD(sd.slot[i].id.tid, 'i'),             \
    FIELD(sd.slot[i].id.start, 'u'), FIELD(sd.slot[i].id.ns, 'u'),            \
    FIELD(sd.slot[i].id.tns, 'u')
#define SLOTS_OF(sd)                                                          \
    SLOT_FIELDS(sd, 0), SLOT_FIELDS(sd, 1), SLOT_FIELDS(sd, 2),               \
    SLOT_FIELDS(sd, 3), SLOT_FIELDS(sd, 4), SLOT_FIELDS(sd, 5),               \
    SLOT_FIELDS(sd, 6), SLOT_FIELDS(sd, 7), SLOT_FIELDS(sd, 8),               \
    SLOT_FIELDS(sd, 9), SLOT_FIELDS(sd, 10), SLOT_FIELDS(sd, 11),             \
    SLOT_FIELDS(sd, 12), SLOT_FIELDS(sd, 13), SLOT_FIELDS(sd, 14),            \
    SLOT_FIELDS(sd, 15)
_Static_assert(MP__SIDE_SLOTS == 16, "SLOTS_OF() names every slot");

static const struct mp__queue_field fields[] = {
    FIELD(magic, 'u'), FIELD(version, 'u'), FIELD(kind, 'u'),
    FIELD(maxsize, 'u'), FIELD(max_cap, 'u'),
    FIELD(gen, 'u'), FIELD(mb, 'u'),
    FIELD(layout[0].cap, 'u'), FIELD(layout[0].base, 'u'),
    FIELD(layout[1].cap, 'u'), FIELD(layout[1].base, 'u'),
    SIDE_FIELDS(w), FIELD(nput, 'u'), FIELD(pending_tail, 'u'),
    FIELD(pending_nput, 'u'), FIELD(head_cache, 'u'), FIELD(head_seen, 'u'),
    FIELD(head_seen_at, 'd'), FIELD(tail, 'u'),
    SIDE_FIELDS(r), FIELD(nget, 'u'), FIELD(pending_head, 'u'),
    FIELD(pending_nget, 'u'), FIELD(tail_cache, 'u'), FIELD(head, 'u'),
    FIELD(ndone, 'u'),
    FIELD(data_wait, 'u'), FIELD(room_wait, 'u'), FIELD(done_wait, 'u'),
    FIELD(ring_wait, 'u'), FIELD(ring_at, 'u'),
    FIELD(data_seq, 'u'), FIELD(room_seq, 'u'), FIELD(done_seq, 'u'),
    FIELD(ring_seq, 'u'),
    FIELD(data_waker, 'u'), FIELD(room_waker, 'u'), FIELD(done_waker, 'u'),
    FIELD(ring_waker, 'u'),
    SLOTS_OF(w), SLOTS_OF(r),
};

const struct mp__queue_field *mp__queue_fields(size_t *n)
{
    *n = ARRAY_SIZE(fields);
    return fields;
}

void *mp__queue_header(mp_queue *q)
{
    return q->s;
}
#endif /* MP_TEST_HOOKS */

/* the ring */

/* Whether a ring of cap bytes can be what the queue made: a power of two
 * between its first size and MAX_CAP. */
static bool cap_valid(uint64_t cap)
{
    return cap >= INITIAL_CAP && cap <= MAX_CAP && (cap & (cap - 1)) == 0;
}

static int ensure_access(mp_queue *q, uint64_t cap);

/*
 * The layout of generation g, read from the header once and checked, into
 * this process's copy c (with c's side held).  Checked: a ring that can be
 * (cap_valid()), no smaller than before (rings only grow), and accessible
 * here (ensure_access(), which checks it against the file).  Every copy
 * through c then stays inside this process's mapping of the ring, whatever
 * a peer writes over the header afterwards: a copy of n <= cap bytes at a
 * place masked by cap - 1.  0, MP_EQCORRUPT, -ENOMEM.
 */
__attribute__((noinline)) static int layout_check(mp_queue *q,
                                                  struct checked *c,
                                                  uint32_t g)
{
    const struct layout *sl = &q->s->layout[g & 1];
    struct layout l = { __atomic_load_n(&sl->cap, __ATOMIC_RELAXED),
                        __atomic_load_n(&sl->base, __ATOMIC_RELAXED) };
    int r;

    if (!cap_valid(l.cap) || l.cap < cap_of(&c->l))
        return MP_EQCORRUPT;
    if ((r = ensure_access(q, l.cap)) < 0)
        return r;
    checked_set(c, g, l);
    return 0;
}

/* With c's side held: this process's checked copy of the current layout
 * (NULL: *r says why). */
static inline const struct layout *cur_layout(mp_queue *q, struct checked *c,
                                              int *r)
{
    uint32_t g = atomic_load_explicit(&q->s->gen, memory_order_acquire);

    if (__builtin_expect(g != __atomic_load_n(&c->gen, __ATOMIC_RELAXED), 0) &&
        (*r = layout_check(q, c, g)) < 0)
        return NULL;
    return &c->l;
}

static size_t phys(const struct layout *l, uint64_t pos)
{
    return (size_t)((pos - base_of(l)) & (cap_of(l) - 1));
}

/* After ensure_access() for the layout's cap: any view will do. */
static unsigned char *ring_of(const mp_queue *q)
{
    return atomic_load_explicit(&q->ring, memory_order_relaxed);
}

static void ring_write(mp_queue *q, const struct layout *l, uint64_t pos,
                       const void *src, size_t n)
{
    unsigned char *ring = ring_of(q);
    uint64_t cap = cap_of(l); /* once: what bounds at is what bounds first */
    size_t at = (size_t)((pos - base_of(l)) & (cap - 1)), first = cap - at;

    if (n <= first) {
        memcpy(ring + at, src, n);
    } else {
        memcpy(ring + at, src, first);
        memcpy(ring, (const char *)src + first, n - first);
    }
}

static void ring_read(const mp_queue *q, const struct layout *l, uint64_t pos,
                      void *dst, size_t n)
{
    unsigned char *ring = ring_of(q);
    uint64_t cap = cap_of(l); /* once: what bounds at is what bounds first */
    size_t at = (size_t)((pos - base_of(l)) & (cap - 1)), first = cap - at;

    if (n <= first) {
        memcpy(dst, ring + at, n);
    } else {
        memcpy(dst, ring + at, first);
        memcpy((char *)dst + first, ring, n - first);
    }
}

#ifdef MP_TEST_HOOKS
/* Tests: the ring's byte at a position. */
unsigned char *mp__queue_ring_at(mp_queue *q, unsigned long long pos)
{
    const struct layout *l = &q->s->layout[atomic_load(&q->s->gen) & 1];

    return ring_of(q) + phys(l, pos);
}
#endif

static uint64_t rec_size(uint64_t n)
{
    return 8 + ((n + 7) & ~(uint64_t)7);
}

/* The memfd's size: what is truly there to map (sealed against
 * shrinking: see queue_create()). */
static int file_size(const mp_queue *q, uint64_t *size)
{
    struct stat st;

    if (fstat(mp_conn_fileno(q->handle), &st) < 0)
        return -errno;
    *size = (uint64_t)st.st_size;
    return 0;
}

static int ensure_file(mp_queue *q, uint64_t cap)
{
    uint64_t size = 0;
    int r;

    if ((r = file_size(q, &size)) < 0 || size >= HDR_SIZE + cap)
        return r;
    if (ftruncate(mp_conn_fileno(q->handle), (off_t)(HDR_SIZE + cap)) < 0)
        return -errno;
    return 0;
}

/*
 * views
 *
 * A process maps the queue (header and ring) with more address space than
 * the ring needs (reserve_size()), PROT_NONE, and opens it up as the ring
 * grows: the mapping does not move, whoever grew the ring.  When the ring
 * outgrows that reservation, in whatever process, the process maps the
 * memfd again, larger, and switches `ring` to the new view.  Another thread
 * of the process may still be copying through the old view (under the
 * other side's lock), so the old view stays mapped, but only as far as it
 * was accessible: its PROT_NONE rest, which nobody can be using, is given
 * back at once, the rest when this process next grows the ring holding
 * both sides.  Both views map the same file, so a copy may go through
 * either.  The header is always read through the first view.  Views change
 * under view_lock and one of the queue's sides; the fast path only compares
 * `access` with the layout's cap.
 */

/* Bytes of address space this process has mapped (0: unknown). */
static uint64_t vm_size(void)
{
    unsigned long long pages = 0;
    char buf[128];
    ssize_t n;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    if (sscanf(buf, "%llu", &pages) != 1)
        return 0;
    return (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/*
 * How much ring to reserve address space for when the ring needs `need`
 * bytes now (a power of two): VIEW_MAX, or under RLIMIT_AS no more than an
 * eighth of what the limit leaves (so that other queues and the program
 * still fit), as a power of two; never less than need.
 */
static uint64_t reserve_size(uint64_t need)
{
    struct rlimit rl;
    uint64_t r = VIEW_MAX;

    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        uint64_t used = vm_size(), limit = (uint64_t)rl.rlim_cur;
        uint64_t room = limit > used ? limit - used : 0;

        while (r > room / 8 && r > need)
            r /= 2;
    }
    return r > need ? r : need;
}

/* A new view with room for a ring of `len` bytes (first the reservation
 * the limit allows, then exactly `need`): its base, or MAP_FAILED. */
static void *map_view(int fd, uint64_t need, uint64_t *len)
{
    void *m;

    *len = reserve_size(need);
    m = mmap(NULL, HDR_SIZE + *len, PROT_NONE, MAP_SHARED | MAP_NORESERVE,
             fd, 0);
    if (m == MAP_FAILED && errno == ENOMEM && *len > need) {
        *len = need;
        m = mmap(NULL, HDR_SIZE + need, PROT_NONE,
                 MAP_SHARED | MAP_NORESERVE, fd, 0);
    }
    return m;
}

static int view_grow(mp_queue *q, uint64_t cap)
{
    unsigned char *ring = atomic_load(&q->ring), *nring;
    uint64_t acc = atomic_load(&q->access), len, size = 0;
    void *m;
    int r;

    if (acc >= cap) /* another thread did it */
        return 0;
    /* cap comes from the header: opening up more than the file holds would
     * make an access fault (SIGBUS), and a cap that is no ring's would map
     * or open up memory for nothing. */
    if (!cap_valid(cap))
        return MP_EQCORRUPT;
    if ((r = file_size(q, &size)) < 0)
        return r;
    if (size < HDR_SIZE + cap)
        return MP_EQCORRUPT;
    if (cap <= q->view_len) {
        if (mprotect(ring, cap, PROT_READ | PROT_WRITE) < 0)
            return -errno;
        atomic_store(&q->access, cap);
        return 0;
    }
    if (q->nold == OLD_VIEWS) /* cannot happen: views at least double */
        return -ENOMEM;
    m = map_view(mp_conn_fileno(q->handle), cap, &len);
    if (m == MAP_FAILED)
        return -errno;
    nring = (unsigned char *)m + HDR_SIZE;
    if (mprotect(nring, cap, PROT_READ | PROT_WRITE) < 0) {
        r = -errno;
        munmap(m, HDR_SIZE + len);
        return r;
    }
    /* The ring first: a thread that sees the new access sees it. */
    atomic_store(&q->ring, nring);
    atomic_store(&q->access, cap);
    if (q->view_len > acc)
        munmap(ring + acc, q->view_len - acc);
    q->old[q->nold].addr = ring - HDR_SIZE;
    q->old[q->nold++].len = HDR_SIZE + acc;
    q->view_len = len;
    return 0;
}

/* Makes the first cap bytes of the ring accessible in this process: -ENOMEM
 * if it has no room left for them, MP_EQCORRUPT if no ring has that size.
 * Once it returns 0, the caller may read and write anywhere in the first
 * cap bytes: which is how every cap read from the header is bounded. */
static int ensure_access(mp_queue *q, uint64_t cap)
{
    int r;

    if (atomic_load(&q->access) >= cap)
        return 0;
    pthread_mutex_lock(&view_lock);
    r = view_grow(q, cap);
    pthread_mutex_unlock(&view_lock);
    return r;
}

/* With both sides held, so that no thread of this process is copying
 * through an earlier view: unmaps them, but for the first view's header. */
static void drop_old_views(mp_queue *q)
{
    pthread_mutex_lock(&view_lock);
    for (int i = 0; i < q->nold; i++) {
        size_t keep = i == 0 ? HDR_SIZE : 0;

        if (q->old[i].len > keep)
            munmap((unsigned char *)q->old[i].addr + keep,
                   q->old[i].len - keep);
    }
    if (q->nold > 0) {
        q->old[0].len = HDR_SIZE;
        q->nold = 1;
    }
    pthread_mutex_unlock(&view_lock);
}

static void unmap_views(mp_queue *q)
{
    unsigned char *ring = atomic_load(&q->ring);

    for (int i = 0; i < q->nold; i++)
        munmap(q->old[i].addr, q->old[i].len);
    if (ring != NULL)
        munmap(ring - HDR_SIZE, HDR_SIZE + q->view_len);
    q->nold = 0;
    q->s = NULL;
    atomic_store(&q->ring, NULL);
}

/*
 * With the producers' side held and `tail` its tail: makes the ring big
 * enough for `need` more bytes.  When it holds records, takes the
 * consumers' side as well, copies them to [cap, cap + used) of the new
 * layout (a part of the file the old one never used), then switches.
 * 1: done (q->w is the new layout); 0: the ring may not grow (wait for
 * room); < 0: error (MP_EQCORRUPT: positions a peer wrote over).
 */
static int grow(mp_queue *q, uint64_t tail, uint64_t need, double deadline)
{
    struct shared *s = q->s;
    /* Checked: see layout_check(). */
    struct layout old = { cap_of(&q->w.l), base_of(&q->w.l) }, nl;
    uint32_t g = __atomic_load_n(&q->w.gen, __ATOMIC_RELAXED);
    uint64_t head = atomic_load_explicit(&s->head, memory_order_acquire);
    uint64_t used = tail - head;
    int r, held;

    if (used > old.cap) /* else the copy would run on */
        return MP_EQCORRUPT;
    nl.cap = old.cap * 2;
    while (nl.cap < used + need)
        nl.cap *= 2;
    if (nl.cap > MAX_CAP)
        return 0;
    if ((r = ensure_file(q, nl.cap)) < 0 ||
        (r = ensure_access(q, nl.cap)) < 0)
        /* No room in this process's address space: wait for room, as at
         * MAX_CAP, if the record fits the ring once it drains. */
        return r == -ENOMEM && old.cap >= need ? 0 : r;
    if (used == 0) {
        /* Nobody reads an empty ring: no copy, no consumers' side. */
        nl.base = head;
        s->layout[(g + 1) & 1] = nl;
        atomic_store_explicit(&s->gen, g + 1, memory_order_release);
        checked_set(&q->w, g + 1, nl);
        return 1;
    }
    if ((held = side_lock(s, &s->r, deadline)) < 0)
        return held;
    head = atomic_load(&s->head); /* stable now */
    used = tail - head;
    if (used > old.cap) {
        side_unlock(&s->r, held);
        return MP_EQCORRUPT;
    }
    nl.base = head - old.cap;
    for (uint64_t done = 0; done < used;) {
        size_t at = phys(&old, head + done), n = old.cap - at;

        if (n > used - done)
            n = (size_t)(used - done);
        memcpy(ring_of(q) + phys(&nl, head + done), ring_of(q) + at, n);
        done += n;
    }
    s->layout[(g + 1) & 1] = nl;
    atomic_store_explicit(&s->gen, g + 1, memory_order_release);
    checked_set(&q->w, g + 1, nl);
    checked_set(&q->r, g + 1, nl); /* both sides held */
    drop_old_views(q);
    side_unlock(&s->r, held);
    return 1;
}

/*
 * With the producers' side held, the ring too full for the next record and
 * head just read: whether the put should wait for consumers to make room
 * rather than grow the ring.  It waits while they are draining it (head has
 * moved within the last STALL seconds), for MAX_ROOM_WAIT at most, never past
 * the caller's deadline and never in a non-blocking put; a record larger than
 * half the ring grows it at once.  Growing for a consumer that is only a
 * little slower than its producer makes the ring as big as the whole
 * backlog: every record then lands on a page never touched before, which
 * both processes fault in (here 20 us a 4 KiB record, 50 times slower than
 * a ring that stays in the cache).  A queue nobody is getting from grows
 * after STALL, once: head has not moved since, so the next full ring grows
 * at once.  *until: when to look again.
 */
static bool put_waits_for_room(struct shared *s, uint64_t rec, uint64_t cap,
                               double deadline, double *first_wait,
                               double *until)
{
    double now = mp__now();

    if (deadline == 0 || rec > cap / 2)
        return false;
    if (s->head_cache != s->head_seen) {
        s->head_seen = s->head_cache;
        s->head_seen_at = now;
    }
    if (*first_wait == 0)
        *first_wait = now;
    *until = s->head_seen_at + STALL;
    if (*until > *first_wait + MAX_ROOM_WAIT)
        *until = *first_wait + MAX_ROOM_WAIT;
    if (*until > deadline)
        *until = deadline;
    return now < *until;
}

static bool head_reached(const struct shared *s, uint64_t want)
{
    return atomic_load_explicit(&s->head, memory_order_acquire) >= want;
}

/* construction */

static int map_queue(mp_queue *q, int fd)
{
    void *m = map_view(fd, INITIAL_CAP, &q->view_len);

    if (m == MAP_FAILED)
        return -errno;
    q->s = m;
    atomic_store(&q->ring, (unsigned char *)m + HDR_SIZE);
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
    /* multiprocessing.Queue() is the default context's Queue(ctx=
     * get_context()): making one fixes the default start method. */
    (void)mp__default_context();
    if ((q = calloc(1, sizeof(*q))) == NULL)
        return -ENOMEM;
    q->kind = kind;
    q->first_pause = 1;
    q->last_rec = 8;
    mp__spin_init(&q->get_spin);
    mp__spin_init(&q->put_spin);
    /* Sealed against shrinking (and further seals): a mapped page whose
     * file was cut short faults with SIGBUS, and anyone holding the memfd
     * could cut it; checks against its size (view_grow()) then hold. */
    if ((fd = memfd_create("libmp-queue", MFD_CLOEXEC | MFD_ALLOW_SEALING))
        < 0) {
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
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_SEAL) < 0 ||
        (r = map_queue(q, fd)) < 0) {
        r = r < 0 ? r : -errno;
        goto fail;
    }
    s = q->s;
    s->version = QVERSION;
    s->kind = kind;
    s->maxsize = q->maxsize = maxsize > 0 ? maxsize : 0;
    s->max_cap = MAX_CAP;
    s->layout[0].cap = INITIAL_CAP;
    q->w = q->r = (struct checked){ 0, s->layout[0] };
    if ((r = ensure_access(q, INITIAL_CAP)) < 0 ||
        (r = mp__side_init(&s->w)) < 0 || (r = mp__side_init(&s->r)) < 0)
        goto fail;
    proc_ready();
    s->mb = mp__membarrier_ok();
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
    unmap_views(q);
    mp_conn_free(q->handle);
    free(q);
    return NULL;
}

/* A child's view of a queue its parent handed it. */
static mp_queue *queue_attach(mp_conn *handle)
{
    mp_queue *q = calloc(1, sizeof(*q));
    struct stat st;
    uint32_t kind;
    int fd = mp_conn_fileno(handle);

    if (q == NULL)
        return NULL;
    q->handle = handle;
    q->borrowed = true;
    q->first_pause = 1;
    q->last_rec = 8;
    mp__spin_init(&q->get_spin);
    mp__spin_init(&q->put_spin);
    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < HDR_SIZE ||
        fcntl(fd, F_GET_SEALS) != (F_SEAL_SHRINK | F_SEAL_SEAL) ||
        map_queue(q, fd) < 0)
        goto fail;
    /* What the header says once, checked once, kept in this process. */
    kind = q->s->kind;
    q->maxsize = q->s->maxsize;
    if (atomic_load(&q->s->magic) != QMAGIC ||
        q->s->version != QVERSION || kind > Q_SIMPLE ||
        q->s->max_cap != MAX_CAP || q->maxsize < 0 || q->maxsize > INT_MAX)
        goto fail;
    q->kind = (enum qkind)kind;
    /* A layout that is safe, for a generation that is not the current
     * one and that the ring cannot reach by growing (it doubles at most 14
     * times): the first put or get checks the current one (see
     * layout_check()). */
    if (ensure_access(q, INITIAL_CAP) < 0)
        goto fail;
    q->w = q->r = (struct checked){ atomic_load(&q->s->gen) - 1,
                                    { INITIAL_CAP, 0 } };
    proc_ready();
    return q;
fail:
    unmap_views(q);
    free(q);
    return NULL;
}

mp_conn *mp__queue_handle(mp_queue *q)
{
    return q->handle;
}

mp_queue *mp__queue_view(mp_conn *handle)
{
    return queue_attach(handle);
}

void mp__queue_view_free(mp_queue *q)
{
    if (q == NULL)
        return;
    unmap_views(q);
    free(q);
}

int mp_process_add_queue(mp_process *p, mp_queue *q)
{
    if (q == NULL)
        return MP_EINVAL;
    return mp_process_add_conn(p, q->handle);
}

mp_queue *mp_child_queue(size_t i)
{
    static mp_queue **cache, **kept;
    static size_t ncache, nkept;
    size_t n = mp__child_conn_count(), k = 0;
    mp_queue *q = NULL;

    pthread_mutex_lock(&cache_lock);
    if (n > ncache) { /* a fork grandchild may have been handed more */
        mp_queue **grown = realloc(cache, n * sizeof(*cache));
        if (grown != NULL) {
            memset(grown + ncache, 0, (n - ncache) * sizeof(*grown));
            cache = grown;
            ncache = n;
        }
    }
    for (size_t j = 0; j < n && j < ncache; j++) {
        mp_conn *c = mp__child_conn_raw(j);

        if (c == NULL || !(mp__conn_flags(c) & MP__CONN_QUEUE))
            continue;
        if (k++ == i) {
            /* A fork child inherits its parent's cache: an entry for
             * another handle is its parent's queue, which the parent's
             * code may still use here; it is kept, not freed. */
            if (cache[j] != NULL && cache[j]->handle != c) {
                mp_queue **grown = realloc(kept, (nkept + 1) * sizeof(*kept));
                if (grown != NULL) {
                    kept = grown;
                    kept[nkept++] = cache[j];
                }
                cache[j] = NULL;
            }
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
    uint64_t rec, tail, nput, used, cap;
    const struct layout *l;
    double deadline, lock_deadline, first_wait = 0, until;
    int r, held;

    if (q == NULL || (buf == NULL && n > 0) || isnan(timeout))
        return MP_EINVAL;
    if (q->closed)
        return closed_error(q);
    if (n > MAX_MSG)
        return -EMSGSIZE;
    s = q->s;
    rec = rec_size(n);
    deadline = deadline_of(block, timeout);
    /* CPython's put never waits for other producers (its feeder thread
     * writes later); here they share one ring, so a put waits for the one
     * inside, up to its deadline, and a non-blocking one PUT_GRACE: as long
     * as a copy takes, not as long as a stopped process stays. */
    lock_deadline = deadline == 0 ? -PUT_GRACE : deadline;
    proc_ready();
    for (;;) {
        if ((held = side_lock(s, &s->w, lock_deadline)) < 0)
            return held == -ETIMEDOUT ? MP_EFULL : held;
        tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
        nput = atomic_load_explicit(&s->nput, memory_order_relaxed);
        if (q->maxsize > 0 && !has_room(s, (uint64_t)q->maxsize)) {
            side_unlock(&s->w, held);
            if (!counts_sane(s))
                return MP_EQCORRUPT; /* else it would wait for nothing */
            if (deadline == 0 ||
                wait_until(s, has_room, (uint64_t)q->maxsize,
                           WAITQ(q, room, put_spin), deadline, 1, NULL) < 0)
                return MP_EFULL;
            continue;
        }
        /* The copy below stays inside the ring whatever the header says:
         * l is checked (cur_layout()), and rec <= cap - used with
         * used <= cap. */
        if ((l = cur_layout(q, &q->w, &r)) == NULL) {
            side_unlock(&s->w, held);
            return r;
        }
        cap = cap_of(l);
        used = tail - s->head_cache;
        if (cap - used < rec || used > cap) {
            uint64_t head = atomic_load_explicit(&s->head,
                                                 memory_order_acquire);

            s->head_cache = head;
            if ((used = tail - head) > cap) { /* tail or head scribbled */
                side_unlock(&s->w, held);
                return MP_EQCORRUPT;
            }
            if (cap - used < rec &&
                put_waits_for_room(s, rec, cap, deadline, &first_wait,
                                   &until)) {
                /* Woken when a quarter of the ring is free (or there is
                 * room for the record, if it is larger): one wake-up for
                 * many gets. */
                uint64_t free_want = rec > cap / 4 ? rec : cap / 4;

                side_unlock(&s->w, held);
                atomic_store_explicit(&s->ring_at, tail + free_want - cap,
                                      memory_order_relaxed);
                wait_until(s, head_reached, tail + free_want - cap,
                           WAITQ(q, ring, put_spin), until, 1, NULL);
                continue;
            }
            if (cap - used < rec) {
                if ((r = grow(q, tail, rec, lock_deadline)) < 0) {
                    side_unlock(&s->w, held);
                    return r == -ETIMEDOUT ? MP_EFULL : r;
                }
                if (r == 0) { /* the ring may not grow: wait for a get */
                    side_unlock(&s->w, held);
                    if (deadline == 0 ||
                        wait_until(s, room_changed, head,
                                   WAITQ(q, room, put_spin), deadline, 1,
                                   NULL) < 0)
                        return MP_EFULL;
                    continue;
                }
                l = &q->w.l;
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
        side_unlock(&s->w, held);
        FAULT(4);
        wake(s, &s->data_wait, &s->data_seq, &s->data_waker);
        if (__atomic_load_n(&q->fed, __ATOMIC_RELAXED) != fork_gen + 1)
            __atomic_store_n(&q->fed, fork_gen + 1, __ATOMIC_RELAXED);
        return 0;
    }
}

/*
 * Up to n puts of an unbounded queue at once, in one hold of the
 * producers' side and one commit (pool.c submits a map's tasks so): the
 * records that fit the ring as it is, never waiting or growing.  0 and
 * *done the number put, maybe none: then mp_queue_put() the next, which
 * waits or grows as a put does.  A death inside commits all or none.
 */
int mp__queue_put_many(mp_queue *q, const char *buf, const size_t *lens,
                       size_t n, size_t *done)
{
    struct shared *s = q->s;
    uint64_t tail, nput, used, cap, at;
    const struct layout *l;
    size_t k = 0;
    bool fresh = false;
    int r, held;

    *done = 0;
    if (q->closed)
        return closed_error(q);
    if (q->maxsize > 0)
        return 0; /* a bounded queue counts each put against maxsize */
    proc_ready();
    if ((held = side_lock(s, &s->w, INFINITY)) < 0)
        return held;
    tail = atomic_load_explicit(&s->tail, memory_order_relaxed);
    nput = atomic_load_explicit(&s->nput, memory_order_relaxed);
    if ((l = cur_layout(q, &q->w, &r)) == NULL) {
        side_unlock(&s->w, held);
        return r;
    }
    cap = cap_of(l);
    used = tail - s->head_cache;
    for (at = tail; k < n && lens[k] <= MAX_MSG; k++) {
        uint64_t rec = rec_size(lens[k]), hdr = lens[k];

        if (used > cap || cap - used < rec) {
            if (fresh)
                break;
            /* Once a batch: the consumers' head, as a put looks. */
            s->head_cache = atomic_load_explicit(&s->head,
                                                 memory_order_acquire);
            used = at - s->head_cache;
            fresh = true;
            if (used > cap) {
                side_unlock(&s->w, held);
                return MP_EQCORRUPT;
            }
            if (cap - used < rec)
                break;
        }
        ring_write(q, l, at, &hdr, 8);
        ring_write(q, l, at + 8, buf, lens[k]);
        buf += lens[k];
        at += rec;
        used += rec;
    }
    if (k > 0) {
        atomic_store_explicit(&s->pending_nput, nput, memory_order_relaxed);
        atomic_store_explicit(&s->pending_tail, at, memory_order_release);
        FAULT(1);
        atomic_store_explicit(&s->nput, nput + k, memory_order_release);
        FAULT(2);
        publish(&s->tail, at);
        FAULT(3);
    }
    side_unlock(&s->w, held);
    if (k > 0) {
        FAULT(4);
        wake(s, &s->data_wait, &s->data_seq, &s->data_waker);
        if (__atomic_load_n(&q->fed, __ATOMIC_RELAXED) != fork_gen + 1)
            __atomic_store_n(&q->fed, fork_gen + 1, __ATOMIC_RELAXED);
    }
    *done = k;
    return 0;
}

int mp_queue_put_nowait(mp_queue *q, const void *buf, size_t n)
{
    return mp_queue_put(q, buf, n, 0, 0);
}

/* get */

/*
 * After a consumer waited for data, or (a biased one) looked at tail again
 * after taking all it knew of: how long to pause before its first look
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

/* Where a message goes: a malloc'd buffer, or the caller's (exact: only a
 * message of exactly size bytes is taken). */
struct sink {
    void **out;
    void *buf;
    size_t size;
    size_t *len;
    bool exact;
    mp__queue_claim_fn claim; /* NULL, or called before the commit */
    void *ctx;
    struct get_extra *x; /* NULL: none */
};

/* What a get may do besides: end its wait once *stop is not 0
 * (mp__queue_get_claim()); take up to max records into the buffer, one
 * after another, their lengths in lens (mp__queue_get_many()). */
struct get_extra {
    const _Atomic uint32_t *stop;
    size_t *lens, max, count;
};

/* With the consumers' side held, the first record (n bytes) copied to the
 * buffer: the whole records after it, up to x->max, that the buffer has
 * room for, copied after it.  Returns where the last one taken ends. */
__attribute__((noinline)) static uint64_t take_more(mp_queue *q,
                                                    const struct layout *l,
                                                    struct sink *k,
                                                    uint64_t head,
                                                    uint64_t tail, uint64_t n)
{
    struct get_extra *x = k->x;
    uint64_t at = head + rec_size(n), used = n, m;

    x->lens[0] = (size_t)n;
    for (x->count = 1; x->count < x->max && tail - at >= 8; x->count++) {
        ring_read(q, l, at, &m, 8);
        /* A record past tail is a peer's scribble: the next get says so. */
        if (m > MAX_MSG || rec_size(m) > tail - at || m > k->size - used)
            break;
        ring_read(q, l, at + 8, (char *)k->buf + used, (size_t)m);
        x->lens[x->count] = (size_t)m;
        used += m;
        at += rec_size(m);
    }
    return at;
}

/* With the consumers' side held, tail_cache - head past the ring: the
 * cache may be what a peer wrote over; tail itself decides.  Whether there
 * is a record that fits the ring (*tail: where the records end). */
__attribute__((noinline)) static bool tail_sane(struct shared *s,
                                                uint64_t head, uint64_t cap,
                                                uint64_t *tail)
{
    *tail = atomic_load_explicit(&s->tail, memory_order_acquire);
    s->tail_cache = *tail;
    return *tail != head && *tail - head <= cap;
}

static int get_common(mp_queue *q, struct sink *k, int block, double timeout)
{
    struct shared *s;
    uint64_t head, tail, n, nget, end, taken;
    const struct layout *l;
    double deadline;
    void *dst;
    bool waited = false;
    int r, held;

    if (q == NULL || k->len == NULL || isnan(timeout))
        return MP_EINVAL;
    if (q->closed)
        return closed_error(q);
    s = q->s;
    deadline = deadline_of(block, timeout);
    proc_ready();
    for (;;) {
        /* As CPython's get, which takes its reader lock with the caller's
         * block and timeout: another consumer inside past the deadline is
         * Empty (get_nowait: at once). */
        if ((held = side_lock(s, &s->r, deadline)) < 0)
            return held == -ETIMEDOUT ? MP_EEMPTY : held;
        head = atomic_load_explicit(&s->head, memory_order_relaxed);
        if (s->tail_cache == head) {
            /* The only consumer (a bias), streaming: pause as a waiter
             * would before it looks at tail, so that the producer writes a
             * batch meanwhile instead of losing tail's line every record. */
            if (held > MP__SIDE_MUTEX && !waited)
                for (int i = atomic_load_explicit(&q->first_pause,
                                                  memory_order_relaxed);
                     i > 1; i--)
                    mp__cpu_relax();
            s->tail_cache = atomic_load_explicit(&s->tail,
                                                 memory_order_acquire);
            if (held > MP__SIDE_MUTEX && !waited && s->tail_cache != head)
                adapt_first_pause(q, s->tail_cache - head,
                                  atomic_load_explicit(&q->last_rec,
                                                       memory_order_relaxed));
        }
        tail = s->tail_cache;
        if (tail != head)
            break;
        side_unlock(&s->r, held);
        if (deadline == 0 || wait_until(s, has_data, head,
                                        WAITQ(q, data, get_spin), deadline,
                                        atomic_load_explicit(
                                            &q->first_pause,
                                            memory_order_relaxed),
                                        k->x != NULL ? k->x->stop : NULL) <
                0)
            return MP_EEMPTY;
        if (k->x != NULL && stopped(k->x->stop))
            return -ECANCELED;
        waited = true;
    }
    /* Every read below stays inside the ring whatever the header says: l
     * is checked (cur_layout()), and a record is at most
     * tail - head <= l->cap bytes. */
    if ((l = cur_layout(q, &q->r, &r)) == NULL) {
        side_unlock(&s->r, held);
        return r;
    }
    if (tail - head > cap_of(l) && !tail_sane(s, head, cap_of(l), &tail)) {
        side_unlock(&s->r, held);
        return MP_EQCORRUPT;
    }
    ring_read(q, l, head, &n, 8);
    if (n > MAX_MSG || rec_size(n) > tail - head) {
        side_unlock(&s->r, held); /* a peer wrote over it */
        return MP_EQCORRUPT;
    }
    if (waited)
        adapt_first_pause(q, tail - head, rec_size(n));
    atomic_store_explicit(&q->last_rec, rec_size(n), memory_order_relaxed);
    *k->len = (size_t)n;
    if (k->out != NULL) {
        if ((dst = malloc((size_t)n + 1)) == NULL) {
            side_unlock(&s->r, held);
            return -ENOMEM;
        }
        ((char *)dst)[n] = '\0';
    } else if (n > k->size || (k->exact && n != k->size)) {
        side_unlock(&s->r, held); /* it stays in the queue */
        return k->exact ? MP_EBADLENGTH : MP_ETOOSHORT;
    } else {
        dst = k->buf;
    }
    ring_read(q, l, head + 8, dst, (size_t)n);
    if (k->claim != NULL)
        k->claim(k->ctx, head, dst, (size_t)n);
    end = head + rec_size(n);
    taken = 1;
    if (k->x != NULL && k->x->lens != NULL) {
        end = take_more(q, l, k, head, tail, n);
        taken = k->x->count;
    }
    nget = atomic_load_explicit(&s->nget, memory_order_relaxed);
    atomic_store_explicit(&s->pending_nget, nget, memory_order_relaxed);
    atomic_store_explicit(&s->pending_head, end, memory_order_release);
    FAULT(11);
    atomic_store_explicit(&s->nget, nget + taken, memory_order_release);
    FAULT(12);
    publish(&s->head, end);
    FAULT(13);
    side_unlock(&s->r, held);
    FAULT(14);
    if (k->out != NULL)
        *k->out = dst;
    wake_fence(s);
    wake_flag(&s->room_wait, &s->room_seq, &s->room_waker);
    if (atomic_load_explicit(&s->ring_wait, memory_order_acquire) &&
        end >= atomic_load_explicit(&s->ring_at, memory_order_relaxed))
        wake_flag(&s->ring_wait, &s->ring_seq, &s->ring_waker);
    return 0;
}

int mp_queue_get(mp_queue *q, void **out, size_t *len, int block,
                 double timeout)
{
    struct sink k = { out, NULL, 0, len, false, NULL, NULL, NULL };

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
    struct sink k = { NULL, buf, size, len, false, NULL, NULL, NULL };

    if (buf == NULL && size > 0)
        return MP_EINVAL;
    return get_common(q, &k, block, timeout);
}

int mp__queue_get_claim(mp_queue *q, void *buf, size_t size, size_t *len,
                        mp__queue_claim_fn claim, void *ctx,
                        const _Atomic uint32_t *stop)
{
    struct get_extra x = { stop, NULL, 0, 0 };
    struct sink k = { NULL, buf, size, len, false, claim, ctx, &x };

    return get_common(q, &k, 1, MP_FOREVER);
}

int mp__queue_get_many(mp_queue *q, void *buf, size_t size, size_t *lens,
                       size_t max, size_t *count)
{
    struct get_extra x = { NULL, lens, max, 0 };
    struct sink k = { NULL, buf, size, lens, false, NULL, NULL, &x };
    int r;

    *count = 0;
    if (buf == NULL || max == 0)
        return MP_EINVAL;
    if ((r = get_common(q, &k, 1, MP_FOREVER)) == 0)
        *count = x.count;
    return r;
}

void mp__queue_wake_getters(mp_queue *q)
{
    /* Unconditional: a waiter reads data_seq before it looks at its stop
     * word, so this increment, after the caller's store of that word,
     * either comes before the read (the look sees the stop) or makes its
     * sleep fail. */
    atomic_fetch_add(&q->s->data_seq, 1);
    mp__futex_wake(&q->s->data_seq, INT_MAX);
}

uint64_t mp__queue_head(mp_queue *q)
{
    return atomic_load_explicit(&q->s->head, memory_order_acquire);
}

const char *mp__queue_kind_name(const mp_queue *q)
{
    return kind_names[q->kind];
}

/* state */

int mp_queue_qsize(mp_queue *q)
{
    uint64_t nget, nput;

    if (q == NULL || q->kind == Q_SIMPLE)
        return MP_EINVAL;
    nget = atomic_load(&q->s->nget); /* first: see has_room() */
    nput = atomic_load(&q->s->nput);
    if (nget > nput) /* see counts_sane() */
        return MP_EQCORRUPT;
    return (int)(nput - nget > INT_MAX ? INT_MAX : nput - nget);
}

int mp_queue_empty(mp_queue *q)
{
    if (q == NULL)
        return MP_EINVAL;
    if (q->closed && q->kind == Q_SIMPLE)
        return MP_EHANDLECLOSED;
    /* CPython: close() tells the feeder thread, started by this process's
     * first put, to close the reader as it ends; after join_thread() it
     * has, and empty() asks a closed reader. */
    if (q->closed && __atomic_load_n(&q->joined, __ATOMIC_RELAXED) &&
        __atomic_load_n(&q->fed, __ATOMIC_RELAXED) == fork_gen + 1)
        return MP_EHANDLECLOSED;
    return !has_data(q->s, atomic_load(&q->s->head));
}

int mp_queue_full(mp_queue *q)
{
    if (q == NULL || q->kind == Q_SIMPLE)
        return MP_EINVAL;
    if (q->maxsize <= 0 || has_room(q->s, (uint64_t)q->maxsize))
        return 0;
    return counts_sane(q->s) ? 1 : MP_EQCORRUPT;
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
    if (!q->closed)
        return MP_EQNOTCLOSED;
    __atomic_store_n(&q->joined, true, __ATOMIC_RELAXED);
    return 0;
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
        wake(s, &s->done_wait, &s->done_seq, &s->done_waker);
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
    return wait_until(q->s, all_done, 0, WAITQ(q, done, put_spin), deadline,
                      1, NULL);
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

/* A message of any other length stays in the queue, whichever it is. */
static int get8(mp_queue *q, void *v, double timeout)
{
    size_t len;
    struct sink k = { NULL, v, 8, &len, true, NULL, NULL, NULL };

    return get_common(q, &k, 1, timeout);
}

int mp_queue_get_i64(mp_queue *q, long long *v, double timeout)
{
    return v == NULL ? MP_EINVAL : get8(q, v, timeout);
}

int mp_queue_get_double(mp_queue *q, double *v, double timeout)
{
    return v == NULL ? MP_EINVAL : get8(q, v, timeout);
}

int mp_queue_get_str(mp_queue *q, char **s, double timeout)
{
    size_t len;

    if (s == NULL)
        return MP_EINVAL;
    return mp_queue_get(q, (void **)s, &len, 1, timeout);
}
