/*
 * robust.h - a process-shared robust pthread mutex that lives in memory
 * other processes may write (a queue's sides; locks, conditions): made,
 * checked before each lock, and put back as its lock left it before each
 * unlock (robust.c says why).
 *
 * The protocol, for every lock: mp__robust_check(), then pthread_mutex_
 * trylock() or mp__robust_lock_until(); after a 0 or EOWNERDEAD result
 * (and again after pthread_mutex_consistent()) mp__robust_held(); and
 * mp__robust_unlock(), from the same thread, instead of
 * pthread_mutex_unlock().
 */
#ifndef MP_ROBUST_H
#define MP_ROBUST_H

#include <pthread.h>

/* Initialises *m as process-shared and robust, of `type`:
 * PTHREAD_MUTEX_DEFAULT (a queue's), or PTHREAD_MUTEX_ERRORCHECK (a
 * synchronisation object's robust lock, which needs EDEADLK when its holder
 * locks it again).  0, or -errno. */
int mp__robust_init(pthread_mutex_t *m, int type);

/* Before a lock: 0, or -EINVAL when *m is not of the kind
 * mp__robust_init() makes for `type` (a peer wrote over it); the caller
 * then must not lock it, and maps the error to its own code (MP_EQCORRUPT
 * for a queue). */
int mp__robust_check(pthread_mutex_t *m, int type);

/* After a lock that gave 0 or EOWNERDEAD, and again after
 * pthread_mutex_consistent(): keeps a copy of *m as the lock left it, in
 * this thread's memory, for mp__robust_unlock(). */
void mp__robust_held(pthread_mutex_t *m);

/* Puts back what a peer may have written over *m since mp__robust_held()
 * (every field but the lock word, and the lock word's owner), then
 * unlocks it.  Every mp__robust_held() must be paired with this call, in
 * the same thread: the copy is dropped only here. */
void mp__robust_unlock(pthread_mutex_t *m);

/* Locks *m by the CLOCK_MONOTONIC deadline (INFINITY: no limit; 0 or less:
 * only if free now): 0, EOWNERDEAD (taken; the holder died), ETIMEDOUT, or
 * another error pthread_mutex_*lock() gives (positive, as pthread's). */
int mp__robust_lock_until(pthread_mutex_t *m, double deadline);

#endif /* MP_ROBUST_H */
