/*
 * rawsync.h - the limits the synchronisation benchmarks set beside libmp's
 * objects (bench_sync.c; scenario.c's instruction counts): the least a
 * lock, a semaphore, a condition, an event and a barrier shared by
 * processes can be.  Atomics and futex(2), nothing else: no spinning before
 * a sleep, no timeouts, no owner, no robustness, no checks of what a peer
 * wrote.  The words live in MAP_SHARED memory, so every futex is
 * process-shared (no FUTEX_PRIVATE_FLAG), as libmp's are.
 */
#ifndef BENCH_RAWSYNC_H
#define BENCH_RAWSYNC_H

#include <limits.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

static inline void raw_futex_wait(_Atomic uint32_t *w, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, val, NULL, NULL, 0);
}

/* A wait that nothing ends but its timeout: FUTEX_WAIT's timeout is
 * relative, on CLOCK_MONOTONIC. */
static inline void raw_futex_wait_for(_Atomic uint32_t *w, uint32_t val,
                                      const struct timespec *timeout)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT, val, timeout, NULL, 0);
}

static inline void raw_futex_wake(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* A mutex: 0 free, 1 held, 2 held and someone may sleep on it.  Any
 * process may release it (as a CPython Lock). */
static inline void raw_mutex_lock(_Atomic uint32_t *m)
{
    uint32_t c = 0;

    if (atomic_compare_exchange_strong_explicit(m, &c, 1,
                                                memory_order_acquire,
                                                memory_order_relaxed))
        return;
    if (c != 2)
        c = atomic_exchange_explicit(m, 2, memory_order_acquire);
    while (c != 0) {
        raw_futex_wait(m, 2);
        c = atomic_exchange_explicit(m, 2, memory_order_acquire);
    }
}

static inline void raw_mutex_unlock(_Atomic uint32_t *m)
{
    if (atomic_exchange_explicit(m, 0, memory_order_release) == 2)
        raw_futex_wake(m, 1);
}

/* A counting semaphore.  post() makes a system call only when someone
 * announced a sleep: the waiter counts itself in before it looks at the
 * value a last time, and both sides' accesses are sequentially consistent,
 * so one of them sees the other. */
struct raw_sem {
    alignas(64) _Atomic uint32_t value;
    _Atomic uint32_t waiters;
};

static inline void raw_sem_wait(struct raw_sem *s)
{
    for (;;) {
        uint32_t v = atomic_load(&s->value);
        while (v > 0)
            if (atomic_compare_exchange_weak(&s->value, &v, v - 1))
                return;
        atomic_fetch_add(&s->waiters, 1);
        if (atomic_load(&s->value) == 0)
            raw_futex_wait(&s->value, 0);
        atomic_fetch_sub(&s->waiters, 1);
    }
}

static inline void raw_sem_post(struct raw_sem *s)
{
    atomic_fetch_add(&s->value, 1);
    if (atomic_load(&s->waiters) > 0)
        raw_futex_wake(&s->value, 1);
}

/* A condition on a raw mutex: a sequence number that notify() advances.  A
 * waiter reads it under the mutex, so a notify() made after the waiter let
 * go of the mutex changes what the futex compares, and none is lost; the
 * loop absorbs a spurious return. */
struct raw_cond {
    alignas(64) _Atomic uint32_t seq;
};

static inline void raw_cond_wait(struct raw_cond *c, _Atomic uint32_t *m)
{
    uint32_t seq = atomic_load(&c->seq);

    raw_mutex_unlock(m);
    while (atomic_load(&c->seq) == seq)
        raw_futex_wait(&c->seq, seq);
    raw_mutex_lock(m);
}

static inline void raw_cond_notify(struct raw_cond *c)
{
    atomic_fetch_add(&c->seq, 1);
    raw_futex_wake(&c->seq, 1);
}

/* An event: a flag; set() always wakes (it cannot know who sleeps). */
struct raw_event {
    alignas(64) _Atomic uint32_t flag;
};

static inline void raw_event_set(struct raw_event *e)
{
    atomic_store(&e->flag, 1);
    raw_futex_wake(&e->flag, INT_MAX);
}

static inline void raw_event_clear(struct raw_event *e)
{
    atomic_store(&e->flag, 0);
}

static inline void raw_event_wait(struct raw_event *e)
{
    while (atomic_load(&e->flag) == 0)
        raw_futex_wait(&e->flag, 0);
}

/* A sense-reversing barrier: the last of `parties` to arrive resets the
 * count, flips the sense and wakes the rest, who sleep while the sense is
 * the old one.  *local is each process's own sense, 0 at first. */
struct raw_barrier {
    alignas(64) _Atomic uint32_t count;
    _Atomic uint32_t sense;
};

static inline void raw_barrier_wait(struct raw_barrier *b, uint32_t parties,
                                    uint32_t *local)
{
    uint32_t s = *local ^= 1;

    if (atomic_fetch_add(&b->count, 1) == parties - 1) {
        atomic_store(&b->count, 0);
        atomic_store(&b->sense, s);
        raw_futex_wake(&b->sense, INT_MAX);
        return;
    }
    while (atomic_load(&b->sense) != s)
        raw_futex_wait(&b->sense, s ^ 1);
}

#endif
