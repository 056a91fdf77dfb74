/*
 * live.h - a thread's identity that another process can later tell dead:
 * what a shared-memory object records of a holder (a queue side's biased
 * owner, a lock's owner), so that a process finding it held can ask
 * whether the holder was killed.
 *
 * The answer comes from /proc: the thread's start time must still be the
 * one recorded (a recycled tid has another).  Where /proc cannot answer or
 * would mislead (no descriptor left, hidepid, a thread in another PID or
 * time namespace, whose ids and start times /proc gives otherwise), the
 * thread counts as alive: a caller waits rather than take a live holder's
 * place.  Ids outlive execve(): a thread that exec'd keeps its ids and
 * start time, so a caller that must tell the image before from the one
 * after pairs the identity with a token of its own (side.c does).
 */
#ifndef MP_LIVE_H
#define MP_LIVE_H

#include <stdbool.h>
#include <stdint.h>

/* A thread: its pid and tid, its start time (clock ticks since boot, as
 * /proc/PID/task/TID/stat gives it; 0: unknown), and the inodes of its
 * PID and time namespaces (0: unknown). */
struct mp__thread_id {
    int32_t pid, tid;
    uint64_t start, ns, tns;
};

/* Fills *id with this thread's identity.  false when the thread cannot be
 * told dead, and then tells no other thread dead either: its start time or
 * its PID namespace is unknown (a /proc that is another PID namespace's,
 * hidden, or out of descriptors or memory at the time: then asked again
 * at the next call). */
bool mp__thread_self(struct mp__thread_id *id);

/* Whether the thread *id names is surely dead (gone, a zombie, or its tid
 * now another thread's).  *id may be in memory a peer writes: each field is
 * read once, and ids no thread can have make a dead thread (nobody's).
 * false whenever it cannot be told (see above); this thread's own ids with
 * its own start time are alive. */
bool mp__thread_dead(const struct mp__thread_id *id);

/* This process's identity: its pid as pid and tid, the process's start
 * time (its leader's, which a leader thread that ended keeps while the
 * process lives) and its namespaces.  false when it cannot be told (as
 * mp__thread_self()); then id->start is 0. */
bool mp__process_self(struct mp__thread_id *id);

/* Of the process mp__process_self() gave as *id (in memory nobody else
 * writes): 1 it is still there (alive, or a zombie not yet reaped), 0
 * it is gone (its pid free, or another process's), -1 this process cannot
 * tell (another PID or time namespace, /proc unreadable or hidden). */
int mp__process_check(const struct mp__thread_id *id);

/* *id read once, field by field, from memory another process may write
 * at the same time. */
static inline struct mp__thread_id mp__thread_id_read(
    const struct mp__thread_id *id)
{
    struct mp__thread_id t = {
        __atomic_load_n(&id->pid, __ATOMIC_RELAXED),
        __atomic_load_n(&id->tid, __ATOMIC_RELAXED),
        __atomic_load_n(&id->start, __ATOMIC_RELAXED),
        __atomic_load_n(&id->ns, __ATOMIC_RELAXED),
        __atomic_load_n(&id->tns, __ATOMIC_RELAXED),
    };

    return t;
}

#endif /* MP_LIVE_H */
