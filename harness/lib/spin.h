/*
 * spin.h - a waiter's spin before it sleeps, bounded in time and adapted
 * per object and per process: the synchronisation objects' waiters
 * (sync.c) and the queue's (queue.c).  Not installed.
 *
 * A spin pays where the holder (or the other side of a queue) runs on
 * another CPU: it releases within a round trip (0.1 to 0.5 us between two
 * processes), where a sleep and a wake-up cost two system calls and a
 * context switch (5 us; 20 us when the sleeper's virtual CPU has gone
 * idle).  Where it shares the waiter's CPU, it cannot run to release until
 * the spin ends: every pause there is lost.
 *
 * So a spin that ends with what it waited for doubles the next one's
 * length, up to MP__SPIN_MAX_NS, and one that ends in a sleep says, once
 * woken, whether the waker ran on the CPU the waiter spun on (the waker
 * writes its CPU beside the word).  If so, the spin could not succeed, and
 * the next one is a quarter as long, down to none at all: the wake-ups that
 * follow say when the two no longer share a CPU.  If not, the other side
 * was slow (preempted, or asleep itself and slow to wake), and the next
 * spin is twice as long, long enough to see a peer that was just woken
 * come back: a spin that shrank for that would leave two processes on two
 * CPUs waking each other for ever, each round trip two wake-ups of an idle
 * CPU.  The length is time, not pauses: a pause takes 1 ns on some CPUs
 * and 25 on others (this project's VM).
 */
#ifndef MP_SPIN_H
#define MP_SPIN_H

#include <stdatomic.h>
#include <stdint.h>

#include "internal.h"

#define MP__SPIN_MIN_NS 250 /* shorter: none */
#define MP__SPIN_START_NS 1000
#define MP__SPIN_MAX_NS 8000

static inline void mp__spin_init(_Atomic int32_t *budget)
{
    atomic_init(budget, MP__SPIN_START_NS);
}

static inline void mp__spin_grow(_Atomic int32_t *budget)
{
    int32_t b = atomic_load_explicit(budget, memory_order_relaxed);

    b = b < MP__SPIN_MIN_NS       ? MP__SPIN_MIN_NS
        : b < MP__SPIN_MAX_NS / 2 ? b * 2
                                  : MP__SPIN_MAX_NS;
    atomic_store_explicit(budget, b, memory_order_relaxed);
}

static inline void mp__spin_shrink(_Atomic int32_t *budget)
{
    int32_t b = atomic_load_explicit(budget, memory_order_relaxed) / 4;

    atomic_store_explicit(budget, b < MP__SPIN_MIN_NS ? 0 : b,
                          memory_order_relaxed);
}

/* When a spin that starts now ends (its budget, or the deadline first);
 * 0: no spin. */
static inline double mp__spin_end(_Atomic int32_t *budget, double deadline)
{
    int32_t b = atomic_load_explicit(budget, memory_order_relaxed);
    double end;

    if (b <= 0)
        return 0;
    end = mp__now() + b * 1e-9;
    return end < deadline ? end : deadline;
}

/* After a sleep on CPU `cpu` (< 0: unknown) that a wake-up from `waker`
 * ended. */
static inline void mp__spin_learn(_Atomic int32_t *budget, int cpu,
                                  int waker)
{
    if (cpu < 0)
        return;
    if (waker == cpu)
        mp__spin_shrink(budget);
    else
        mp__spin_grow(budget);
}

#endif /* MP_SPIN_H */
