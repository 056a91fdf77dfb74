/*
 * pool_watch.c - a pool's workers: starting them, watching them die,
 * replacing them, stopping them (CPython: Pool._handle_workers,
 * _maintain_pool, _repopulate_pool_static, _terminate_pool).
 *
 * The watcher thread sleeps in poll() on the workers' sentinels and an
 * eventfd (close(), terminate(), a job's end after close()), and starts
 * every worker itself: a worker dies with the thread that started it
 * (pool_worker.c), and this one lives as long as the workers do.
 *
 * A worker that dies names, in its slot of the shared page, the task it
 * held: the slot is written with the task queue's consumers' side held,
 * before the take is committed (pool_worker.c's claim), and cleared once
 * the task's result is put.  So when a dead worker's slot names task X
 * whose record starts at position P of the task queue:
 *   - if the queue's head has not passed P, the take was never
 *     committed: X is still in the queue, and another worker runs it;
 *   - if it has, X was taken, by the dead worker or (after its take was
 *     cut short) by another, whose slot was written before its commit:
 *     if another slot names X, that worker has it; if none does, either
 *     the dead worker had it, or the other finished it and put its result
 *     before clearing its slot.  Either way an MP_EWORKERLOST for X put
 *     now comes after any result X got, and the result thread keeps the
 *     first result of a chunk: the loss is reported once, and only for a
 *     task whose result cannot come.
 * Deaths are read one at a time and a slot is cleared once read, so of
 * two dead workers naming one task, exactly one reports it.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pool.h"
#ifdef MP_TEST_HOOKS
#include "test_hooks.h"

int mp__pool_watch_break;
#endif

/* Seconds a worker that outlives terminate()'s SIGTERM gets before a
 * SIGKILL; a worker's start that failed is tried again after RETRY. */
#define TERM_GRACE 1.0
#define RETRY 0.1

/* "ForkProcess-3" -> "ForkPoolWorker-3", every "Process" replaced, as
 * CPython's w.name.replace('Process', 'PoolWorker'). */
static int rename_worker(mp_process *w)
{
    const char *name = mp_process_name(w), *at;
    char buf[256];
    size_t len = 0;
    int r;

    while ((at = strstr(name, "Process")) != NULL) {
        size_t k = (size_t)(at - name);
        if (len + k + 10 >= sizeof(buf))
            return 0;
        memcpy(buf + len, name, k);
        memcpy(buf + len + k, "PoolWorker", 10);
        len += k + 10;
        name = at + 7;
    }
    if (len + strlen(name) >= sizeof(buf))
        return 0;
    strcpy(buf + len, name);
    r = mp_process_set_name(w, buf);
    return r;
}

static int worker_start(mp_pool *p, size_t i)
{
    struct mp__pool_blob b = {
        .magic = MP__POOL_MAGIC,
        .slot = (uint32_t)i,
        .nslots = (uint32_t)p->processes,
        .maxtasks = p->maxtasks,
        .ninit = p->ninit,
        .check_parent = p->check_parent,
        .owner = p->owner,
    };
    mp_process_options o = { .daemon = MP_DAEMON_YES, .context = p->ctx };
    mp_process *w = NULL;
    int r;

    memcpy(b.initializer, p->initializer, sizeof(b.initializer));
    atomic_store(&p->page->slot[i].task, 0);
    r = mp__process_create_encoded(&w, MP__POOL_WORKER, &b, sizeof(b),
                                   p->wargs, p->wargs_len, p->whandles,
                                   p->nwh, &o);
    if (r == 0 && (r = rename_worker(w)) == 0 &&
        (r = mp_process_start(w)) == 0)
        r = mp_process_sentinel(w);
    if (r < 0) {
        mp_process_free(w);
        p->workers[i].retry_at = mp__now() + RETRY;
        return r;
    }
    p->workers[i].proc = w;
    p->workers[i].sentinel = r;
    p->live++;
    return 0;
}

/* Whether a slot other than i names task tid. */
static bool held_elsewhere(mp_pool *p, size_t i, uint64_t tid)
{
    for (size_t k = 0; k < (size_t)p->processes; k++)
        if (k != i && atomic_load_explicit(&p->page->slot[k].task,
                                           memory_order_acquire) == tid)
            return true;
    return false;
}

static void post_lost(mp_pool *p, uint64_t job, uint64_t chunk)
{
    struct mp__res_hdr h = { MP__RES_ERR, MP_EWORKERLOST, job, chunk, 0 };

    mp_queue_put(p->results, &h, sizeof(h), 1, MP_FOREVER);
}

/* Worker i has ended (its sentinel spoke): reap it, report the task it
 * held if that cannot come back otherwise (see above), free its slot. */
static void worker_ended(mp_pool *p, size_t i)
{
    struct mp__pool_slot *s = &p->page->slot[i];
    uint64_t tid;

    mp_process_join(p->workers[i].proc, MP_FOREVER);
    tid = atomic_load_explicit(&s->task, memory_order_acquire);
    if (tid != 0) {
        uint64_t job = atomic_load_explicit(&s->job, memory_order_relaxed);
        uint64_t chunk = atomic_load_explicit(&s->chunk,
                                              memory_order_relaxed);
        uint64_t pos = atomic_load_explicit(&s->pos, memory_order_relaxed);

        if (mp__queue_head(p->tasks) > pos && !held_elsewhere(p, i, tid))
            post_lost(p, job, chunk);
        atomic_store_explicit(&s->task, 0, memory_order_release);
    }
    p->workers[i].proc = mp_process_free(p->workers[i].proc);
    p->workers[i].retry_at = 0;
    p->live--;
}

/* After the deaths: replace the workers while the pool runs or has work
 * (CPython maintains the pool until the cache is empty), stop them once a
 * closed pool has none: the page's stop, which a waiting worker sees when
 * woken and a busy or starting one before its next take (a task still in
 * the queue then is one whose result came already).  true once the
 * watcher's work is done. */
static bool maintain(mp_pool *p, double *wake_at)
{
    bool replace, stop = false, done = false;
    size_t live;

    pthread_mutex_lock(&p->lock);
    if (p->state == MP__POOL_CLOSE && p->pending == 0 && !p->stopping) {
        p->stopping = stop = true;
    }
    replace = p->state == MP__POOL_RUN ||
              (p->state == MP__POOL_CLOSE && !p->stopping);
    pthread_mutex_unlock(&p->lock);
    if (stop) {
        atomic_store(&p->page->stop, 1);
        mp__queue_wake_getters(p->tasks);
    }
    *wake_at = INFINITY;
    for (size_t i = 0; replace && i < (size_t)p->processes; i++) {
        if (p->workers[i].proc != NULL)
            continue;
        if (p->workers[i].retry_at > mp__now() ||
            worker_start(p, i) < 0) {
            if (p->workers[i].retry_at < *wake_at)
                *wake_at = p->workers[i].retry_at;
        }
    }
    live = p->live;
    if (p->stopping && live == 0) {
        pthread_mutex_lock(&p->lock);
        p->finished = done = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }
    return done;
}

static bool should_stop(mp_pool *p)
{
    bool stop;

    pthread_mutex_lock(&p->lock);
    stop = p->watch_stop;
    pthread_mutex_unlock(&p->lock);
    return stop;
}

/* The watcher cannot go on (its poll() failed, no memory for its poll
 * list): no worker would be replaced, no stop sent, and join() would wait
 * for ever.  The pool ends as terminate() ends it, from here: later
 * submissions fail with err, the workers are stopped, every pending job
 * fails with err (through the result thread, which may be running a
 * callback that calls terminate(), itself waiting for this thread: so
 * nothing here waits for the result thread), and join() returns. */
static void watch_failed(mp_pool *p, int err)
{
    pthread_mutex_lock(&p->lock);
    if (p->broken == 0)
        p->broken = err;
    pthread_mutex_unlock(&p->lock);
    mp__workers_stop(p);
    mp__jobs_post_error_all(p, err);
    pthread_mutex_lock(&p->lock);
    p->finished = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
}

static void watch(mp_pool *p)
{
    size_t n = (size_t)p->processes;
    struct pollfd *fds = p->wfds = calloc(n + 1, sizeof(*fds));
    size_t *slot_of = p->wslot = calloc(n + 1, sizeof(*slot_of));
    double wake_at = INFINITY;
    int err = fds == NULL || slot_of == NULL ? -ENOMEM : 0;

    while (err == 0) {
        size_t k = 1;
        uint64_t count;
        int r;

        fds[0] = (struct pollfd){ .fd = p->efd, .events = POLLIN };
        for (size_t i = 0; i < n; i++)
            if (p->workers[i].proc != NULL) {
                fds[k] = (struct pollfd){ .fd = p->workers[i].sentinel,
                                          .events = POLLIN };
                slot_of[k++] = i;
            }
        r = mp__ppoll_until(fds, k, wake_at);
#ifdef MP_TEST_HOOKS
        if (r >= 0 && __atomic_load_n(&mp__pool_watch_break,
                                      __ATOMIC_RELAXED) < 0)
            r = __atomic_exchange_n(&mp__pool_watch_break, 0,
                                    __ATOMIC_RELAXED);
#endif
        if (r < 0) {
            err = r;
            break;
        }
        if (fds[0].revents & POLLIN) {
            if (read(p->efd, &count, sizeof(count)) < 0) {
                /* EAGAIN: another read took the count */
            }
        }
        if (should_stop(p))
            break;
        for (size_t m = 1; m < k; m++)
            if (fds[m].revents != 0)
                worker_ended(p, slot_of[m]);
        if (maintain(p, &wake_at))
            break;
    }
    if (err < 0)
        watch_failed(p, err);
}

static void *watch_main(void *arg)
{
    mp_pool *p = arg;
    int r = 0;

    for (size_t i = 0; r == 0 && i < (size_t)p->processes; i++)
        r = worker_start(p, i);
    pthread_mutex_lock(&p->lock);
    p->started = true;
    p->start_err = r;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    if (r == 0)
        watch(p);
    return NULL;
}

int mp__watch_start(mp_pool *p)
{
    int r = pthread_create(&p->watcher, NULL, watch_main, p);

    if (r != 0)
        return -r;
    p->has_watcher = true;
    pthread_mutex_lock(&p->lock);
    while (!p->started)
        pthread_cond_wait(&p->cond, &p->lock);
    r = p->start_err;
    pthread_mutex_unlock(&p->lock);
    if (r < 0) { /* the workers it started go, as CPython's do */
        pthread_join(p->watcher, NULL);
        p->has_watcher = false;
        mp__workers_stop(p);
    }
    return r;
}

void mp__watch_stop(mp_pool *p)
{
    if (!p->has_watcher)
        return;
    pthread_mutex_lock(&p->lock);
    p->watch_stop = true;
    pthread_mutex_unlock(&p->lock);
    mp__pool_wake(p);
    pthread_join(p->watcher, NULL);
    p->has_watcher = false;
}

/* With the watcher stopped: SIGTERM to every worker, as CPython's
 * terminate(); one that outlives it by TERM_GRACE gets SIGKILL (CPython's
 * join would wait for it for ever).  Every worker is reaped. */
void mp__workers_stop(mp_pool *p)
{
    double deadline;

    for (size_t i = 0; i < (size_t)p->processes; i++)
        if (p->workers[i].proc != NULL)
            mp_process_terminate(p->workers[i].proc);
    deadline = mp__now() + TERM_GRACE;
    for (size_t i = 0; i < (size_t)p->processes; i++) {
        mp_process *w = p->workers[i].proc;
        double left;

        if (w == NULL)
            continue;
        left = deadline - mp__now();
        if (mp_process_join(w, left > 0 ? left : 0) == MP_ETIMEDOUT) {
            mp_process_kill(w);
            mp_process_join(w, MP_FOREVER);
        }
        p->workers[i].proc = mp_process_free(w);
        p->live--;
    }
}
