/*
 * test_hooks.h - what the unit tests reach inside libmp.  Only builds with
 * MP_TEST_HOOKS have it (libmp-test.a, which the tests link); libmp.a and
 * libmp.so, the ones installed, do not.  Not installed.
 */
#ifndef MP_TEST_HOOKS_H
#define MP_TEST_HOOKS_H

#ifndef MP_TEST_HOOKS
#error "test_hooks.h: the hooks exist only in builds with -DMP_TEST_HOOKS"
#endif

#include <pthread.h>
#include <stddef.h>

#include "mp.h"

/* queue.c: the point where this process's next put or get _exit()s, or
 * where a biased owner pauses (see FAULT in queue.c, and side.h); 0: none. */
extern int mp__queue_fault;
/* side.c: when set, called each time this process has taken a queue side's
 * mutex (not its bias), before it uses the queue: a test makes the holder
 * pause there. */
extern void (*mp__queue_locked_hook)(void);
/* queue.c: whether a side (producers: 1) has a biased owner, and whether
 * that owner is inside; the ring's capacity in bytes; side.c: revocations
 * this process made; queue.c: whether it can use membarrier(2). */
int mp__queue_biased(mp_queue *q, int producers);
int mp__queue_biased_inside(mp_queue *q, int producers);
unsigned long long mp__queue_capacity(mp_queue *q);
unsigned long mp__queue_revoke_count(void);
int mp__queue_membarrier(void);
/* queue.c: this process's spin for a queue's gets, ns (spin.h). */
int mp__queue_get_spin(mp_queue *q);

/* start_forkserver.c: the pid of this process's fork server while it
 * runs, 0 when there is none or it has died.  The server stays a child of
 * ours until libmp reaps it, after its death: a signal sent to this pid
 * before then reaches it or its zombie, never a recycled pid. */
pid_t mp__forkserver_pid(void);

/* shm_reaper.c: the pid of the SharedMemory reaper this process hands its
 * segments to, 0 when it has none (or could not start one). */
pid_t mp__shm_reaper_pid(void);
/* shm.c: when set, called by an attaching mp_shm_new() between opening
 * the name and taking its shared lock (a test lets the reaper act there). */
extern void (*mp__shm_opened_hook)(const char *name);

/* queue.c: the header a queue's processes share, field by field, for tests
 * that write over it (test_queue_hostile.c).  type: 'u' a count, position,
 * flag, index or id; 'i' a pid or tid; 'd' a double; 'm' a process-shared
 * mutex (its words). */
struct mp__queue_field {
    const char *name; /* as in queue.c's struct shared: "w.slot[0].id.pid" */
    size_t offset, size;
    char type;
};
/* Every field; *n is set to their number. */
const struct mp__queue_field *mp__queue_fields(size_t *n);
/* The header as this process maps it. */
void *mp__queue_header(mp_queue *q);
/* Where the ring's byte at position pos (a count of bytes since the queue's
 * birth, as head and tail) is in this process, under the current layout
 * (the ring must be accessible here: a put or get since it last grew). */
unsigned char *mp__queue_ring_at(mp_queue *q, unsigned long long pos);

/* sync.c: the point where this process's next robust acquire or release,
 * Event set() or Barrier break, dies by SIGKILL (see FAULT in sync.c); 0: none.
 *   1 acquire: the mutex taken, the lock's state not yet written
 *   2 acquire: the state written, before the return
 *   3 release: the state marked free, the mutex still held
 *   4 release: the mutex let go
 *   5 Event set(): the flag up (its sleepers woken in the same step)
 *   6 Barrier broken (abort(), a timeout): no sleeper signalled
 *   7 Barrier wait(): counted in the round, before anything else
 *   8 Barrier wait(), the last to arrive: its action run, the round not
 *     yet let go */
extern int mp__sync_fault;
/* sync.c: the shared page of a Lock (type MP_ARG_LOCK), Condition, Event
 * or Barrier, for tests that write over it. */
void *mp__sync_page(const void *obj, int type);

/* pool_worker.c: the point where a pool worker kills itself (SIGKILL)
 * in its next task; 0: none.  A fork worker inherits it from the pool's
 * process when it starts.
 *   1 the task's record copied out of the task queue, the slot not yet
 *     written (the take not committed)
 *   2 the slot written, the take not committed
 *   3 the take committed, the task not yet run
 *   4 the task run, its result not yet put
 *   5 the result put, the slot not yet cleared
 * queue.c's mp__queue_fault covers the inside of the get (11-14) and of
 * the put (1-5). */
extern int mp__pool_fault;
/* pool_result.c: results this process dropped as a chunk's second. */
unsigned long mp__pool_duplicates(void);
/* pool_result.c: when set, the result thread's next take from the result
 * queue fails with this error, as if the queue were broken; then 0. */
extern int mp__pool_results_break;
/* pool_watch.c: when set, the watcher's next poll() fails with this error
 * instead of the events it had; then 0. */
extern int mp__pool_watch_break;
/* pool.c, pool_result.c: a pool's lock, an iterator's, for a test that
 * forks while one is held. */
pthread_mutex_t *mp__pool_mutex(mp_pool *p);
pthread_mutex_t *mp__imap_mutex(mp_imap *it);

/* value.c: the memory a value's processes share (its header, then the
 * elements from byte 64), for tests that write over it. */
void *mp__value_page(mp_value *v);

#endif /* MP_TEST_HOOKS_H */
