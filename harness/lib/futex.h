/*
 * futex.h - the futex waits and wake-ups libmp's shared-memory objects
 * (queues, locks, conditions, barriers) sleep on.
 *
 * Static inline: the queue's fast path calls these in its loops, and a call
 * through the PLT or an out-of-line function there is measurable.
 * Every word is process-shared (no FUTEX_PRIVATE_FLAG): the objects live in
 * memfds mapped by several processes.
 */
#ifndef MP_FUTEX_H
#define MP_FUTEX_H

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#include "internal.h"

/* One pause of a spinning waiter. */
static inline void mp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/*
 * Sleeps while *w == val, until woken, a signal, or the absolute
 * CLOCK_MONOTONIC deadline (INFINITY, or anything from 1e12 seconds on:
 * none).  0 (woken, interrupted, or *w was not val: callers look again),
 * or MP_ETIMEDOUT.  The deadline is absolute, so a caller that loops after
 * a signal or a spurious wake-up never waits longer in all than it asked.
 */
static inline int mp__futex_wait(_Atomic uint32_t *w, uint32_t val,
                                 double deadline)
{
    struct timespec ts, *tp = NULL;

    if (deadline < 1e12) { /* finite (callers cap it): a time_t fits */
        if (!(deadline > 0))
            return MP_ETIMEDOUT;
        ts.tv_sec = (time_t)deadline; /* positive: truncation is floor */
        ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
        tp = &ts;
    }
    if (syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_BITSET, val, tp, NULL,
                FUTEX_BITSET_MATCH_ANY) < 0 && errno == ETIMEDOUT)
        return MP_ETIMEDOUT;
    return 0;
}

/* Wakes up to n sleepers on *w (INT_MAX: all). */
static inline void mp__futex_wake(_Atomic uint32_t *w, int n)
{
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE, n, NULL, NULL, 0);
}

/* Sets `bits` in *w and wakes every sleeper on it, in one step that no
 * death can split (FUTEX_WAKE_OP: the kernel's atomic OR, then the wake-up,
 * under its lock).  Where the kernel lacks it, the OR and then the wake-up,
 * as two steps. */
static inline void mp__futex_wake_or(_Atomic uint32_t *w, uint32_t bits)
{
    if (syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_OP, INT_MAX, NULL,
                (uint32_t *)w,
                FUTEX_OP(FUTEX_OP_OR, bits, FUTEX_OP_CMP_EQ, 0)) < 0) {
        atomic_fetch_or(w, bits);
        mp__futex_wake(w, INT_MAX);
    }
}

#endif /* MP_FUTEX_H */
