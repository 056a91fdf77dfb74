/*
 * side.h - a side of a queue (its producers', its consumers'): a robust
 * process-shared mutex with a bias, in shared memory (side.c says how).
 *
 * A thread that took the mutex many times in a row, uncontended, is given
 * the side, and then enters and leaves it with plain stores and loads:
 * mp__side_enter() and mp__side_unlock() are static inline for that, and
 * the thread's token is a hidden thread-local, so that a queue's put or
 * get makes no call on its way in or out (libmp.so aside: see below).
 * Whatever else a side does (the mutex, a revocation, a claim) is in
 * side.c.
 *
 * What a holder that died inside left half done is the user's to repair:
 * the side calls back `repair(ctx)`, with the side held, when it finds such
 * a death (a mutex that gave EOWNERDEAD, a biased owner dead inside).
 */
#ifndef MP_SIDE_H
#define MP_SIDE_H

#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "futex.h"
#include "live.h"
#ifdef MP_TEST_HOOKS
#include "test_hooks.h"
#endif

#define MP__HIDDEN __attribute__((visibility("hidden")))

#define MP__SIDE_SLOTS 16 /* threads a side remembers as biased owners */

/* A thread that has held a side's bias: its own line of the side, so that a
 * thread that looked at the side too long ago to know it has lost the bias
 * writes nowhere but here. */
struct mp__side_slot {
    alignas(32) _Atomic uint64_t token; /* whose it is; 0: free */
    _Atomic uint32_t busy;  /* it is inside */
    struct mp__thread_id id; /* the thread: to tell a dead owner from a
                                slow one */
};

/* A side, in shared memory, zeroed but for the mutex (mp__side_init()). */
struct mp__side {
    pthread_mutex_t m;        /* robust.h's */
    _Atomic uint32_t owner;   /* the biased thread's slot + 1; 0: none */
    uint32_t last;            /* with m held: the slot + 1 of the last bias */
    uint32_t pending;         /* with m held: what the last holder left owed
                                 (side.c's take_over()) */
    uint64_t streak_token;    /* with m held: who took m last, uncontended, */
    uint32_t streak;          /* and how many times in a row */
    struct mp__side_slot slot[MP__SIDE_SLOTS];
};

/* What taking a side returns: MP__SIDE_MUTEX (held through the mutex), or
 * MP__SIDE_MUTEX + o (held through the bias, from slot o - 1); negative:
 * an error.  mp__side_unlock() takes it back. */
enum { MP__SIDE_MUTEX = 1 };

typedef void mp__side_repair_fn(void *ctx);

/* This thread's token: names it as a biased owner (0: none yet).  Hidden:
 * in a program linked with libmp.a it is one load from %fs, and in
 * libmp.so one __tls_get_addr() a put or get.  (The initial-exec model
 * would save that call, but would put all of libmp.so's thread-locals in
 * the static TLS block, which a dlopen() of it may find too small.) */
extern _Thread_local uint64_t mp__side_token MP__HIDDEN;
/* This process's membarrier(2): 0 not set up, 1 registered, -1 cannot. */
extern atomic_int mp__membarrier_state MP__HIDDEN;

/* Makes the side's mutex (the rest of a new side is zero): 0, -errno. */
int mp__side_init(struct mp__side *sd);

/* Takes the side through its mutex (after mp__side_enter() said no), by
 * the CLOCK_MONOTONIC deadline (0: only if free now; -t: t seconds from
 * now; INFINITY: no limit): MP__SIDE_MUTEX, -ETIMEDOUT when another thread
 * or process stays inside past it, MP_EQCORRUPT for a side no process
 * made.  `bias`: whether this thread may be given the bias (every user of
 * the side can run membarrier(2): a queue's header says).  `repair(ctx)`
 * puts right what a holder killed inside left. */
int mp__side_lock(struct mp__side *sd, double deadline, bool bias,
                  mp__side_repair_fn *repair, void *ctx);

/* Gives the mutex back (and, after a streak, the bias to this thread). */
void mp__side_unlock_mutex(struct mp__side *sd);

/* For a waiter that looks for the dead: takes and drops the side if it is
 * free or its holder is dead, which repairs; a holder that lives is left
 * alone, and so is a biased owner that lives or is not inside (the waiter
 * has a deadline, which also bounds the wait for a dead owner's slot). */
void mp__side_repair_dead(struct mp__side *sd, double deadline,
                          mp__side_repair_fn *repair, void *ctx);

/* Registers this process for membarrier(2) (again in a fork child). */
void mp__membarrier_setup(void);

static inline long mp__membarrier(int cmd)
{
    return syscall(SYS_membarrier, cmd, 0, 0);
}

/* Whether this process can use membarrier(2) (after the setup). */
static inline bool mp__membarrier_ok(void)
{
    return atomic_load_explicit(&mp__membarrier_state,
                                memory_order_relaxed) > 0;
}

/* A side's owner (or last owner) as the header says it: the slot + 1, or 0
 * for none, which is also what a number that names no slot is taken for
 * (the slot index is checked before any use). */
static inline uint32_t mp__side_slot_index(uint32_t o)
{
    return o <= MP__SIDE_SLOTS ? o : 0;
}

/*
 * Fault injection for the tests (see queue.c): (21) a biased owner pauses
 * between its look at the owner and its busy = 1, as a preempted one
 * would, and again once inside; (22) a biased owner stays inside, once,
 * for MP__SIDE_FAULT_STAY seconds (a long copy, or a stopped process).
 */
#ifdef MP_TEST_HOOKS
#define MP__SIDE_FAULT_STALL 21
#define MP__SIDE_FAULT_LONG_STAY 22
#define MP__SIDE_FAULT_STAY 2.0
#define MP__SIDE_FAULT_PREEMPTED()                                            \
    do {                                                                      \
        if (__builtin_expect(mp__queue_fault == MP__SIDE_FAULT_STALL, 0))     \
            usleep(50);                                                       \
    } while (0)
#define MP__SIDE_FAULT_INSIDE()                                               \
    do {                                                                      \
        if (__builtin_expect(mp__queue_fault >= MP__SIDE_FAULT_STALL, 0)) {   \
            usleep(mp__queue_fault == MP__SIDE_FAULT_STALL                    \
                       ? 50 : MP__SIDE_FAULT_STAY * 1e6);                     \
            if (mp__queue_fault == MP__SIDE_FAULT_LONG_STAY)                  \
                mp__queue_fault = 0;                                          \
        }                                                                     \
    } while (0)
#else
#define MP__SIDE_FAULT_PREEMPTED() ((void)0)
#define MP__SIDE_FAULT_INSIDE() ((void)0)
#endif

/* The biased owner leaves (or backs out): wakes a revoker waiting for it. */
static inline void mp__side_leave(struct mp__side *sd, uint32_t o)
{
    struct mp__side_slot *sl = &sd->slot[o - 1];

    atomic_store_explicit(&sl->busy, 0, memory_order_release);
    atomic_signal_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&sd->owner, memory_order_relaxed) != o)
        mp__futex_wake(&sl->busy, 1);
}

/* Enters the side through this thread's bias: MP__SIDE_MUTEX + o, or 0
 * when the thread must take the mutex (mp__side_lock()). */
static inline int mp__side_enter(struct mp__side *sd)
{
    uint32_t o = atomic_load_explicit(&sd->owner, memory_order_relaxed);
    uint64_t me = mp__side_token;

    /* o - 1 wraps for 0: one comparison bounds the index a peer may have
     * written (the look again below is at the same o). */
    if (me != 0 && o - 1 < MP__SIDE_SLOTS &&
        atomic_load_explicit(&sd->slot[o - 1].token, memory_order_relaxed) ==
            me) {
        MP__SIDE_FAULT_PREEMPTED();
        atomic_store_explicit(&sd->slot[o - 1].busy, 1, memory_order_relaxed);
        atomic_signal_fence(memory_order_seq_cst);
        if (atomic_load_explicit(&sd->owner, memory_order_acquire) == o) {
            MP__SIDE_FAULT_INSIDE();
            return MP__SIDE_MUTEX + (int)o;
        }
        mp__side_leave(sd, o); /* revoked meanwhile */
    }
    return 0;
}

/* Leaves a side taken as `held` says. */
static inline void mp__side_unlock(struct mp__side *sd, int held)
{
    if (held > MP__SIDE_MUTEX)
        mp__side_leave(sd, (uint32_t)(held - MP__SIDE_MUTEX));
    else
        mp__side_unlock_mutex(sd);
}

#endif /* MP_SIDE_H */
