/*
 * pool.c - Pool: its making, its state (RUN, CLOSE, TERMINATE), the
 * submission of tasks, close(), terminate(), join() (CPython: pool.py's
 * Pool).
 *
 * CPython's Pool has three threads: one feeds tasks to the workers'
 * pipe, one collects results, one maintains the workers.  Here a submit
 * puts its tasks into the task queue itself (pool_submit.c: a libmp
 * queue's put copies and returns, no feeder is needed), so two threads
 * remain: the result thread (pool_result.c) and the watcher
 * (pool_watch.c).  A pool belongs to the process that made it: in a fork
 * child its copy is inert.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pool.h"
#ifdef MP_TEST_HOOKS
#include "test_hooks.h"
#endif

/* Forks this process came through (queue.c's fork handler counts them):
 * a pool made in another generation is a copy from before a fork. */
static _Atomic unsigned fork_gen;

void mp__pool_forked(void)
{
    atomic_fetch_add_explicit(&fork_gen, 1, memory_order_relaxed);
    mp__pool_task_forked();
}

unsigned mp__pool_gen(void)
{
    return atomic_load_explicit(&fork_gen, memory_order_relaxed);
}

bool mp__pool_foreign(const mp_pool *p)
{
    return p->gen != mp__pool_gen();
}

static bool foreign(const mp_pool *p)
{
    return mp__pool_foreign(p);
}

#ifdef MP_TEST_HOOKS
pthread_mutex_t *mp__pool_mutex(mp_pool *p)
{
    return &p->lock;
}
#endif

void mp__pool_wake(mp_pool *p)
{
    uint64_t one = 1;

    /* The counter cannot overflow in practice; a full one wakes too. */
    if (write(p->efd, &one, sizeof(one)) < 0) {
        /* EAGAIN: the watcher has wake-ups pending already */
    }
}

/* The pools of this process, terminated at its exit as CPython's
 * finalizer (exitpriority 15) does before util._exit_function joins
 * the children.  Registered with mp_atexit() once per fork generation. */
static pthread_mutex_t pools_lock = PTHREAD_MUTEX_INITIALIZER;
static mp_pool *pools;
static unsigned registered; /* fork generation + 1 */

static void terminate_all(void *unused)
{
    (void)unused;
    for (;;) {
        mp_pool *p;

        pthread_mutex_lock(&pools_lock);
        for (p = pools; p != NULL; p = p->next_pool)
            if (!foreign(p) && p->state != MP__POOL_TERMINATE)
                break;
        pthread_mutex_unlock(&pools_lock);
        if (p == NULL)
            return;
        mp_pool_terminate(p);
    }
}

static int pools_add(mp_pool *p)
{
    int r = 0;

    pthread_mutex_lock(&pools_lock);
    if (registered != mp__pool_gen() + 1) {
        if ((r = mp_atexit(terminate_all, NULL)) == 0)
            registered = mp__pool_gen() + 1;
    }
    if (r == 0) {
        p->next_pool = pools;
        pools = p;
    }
    pthread_mutex_unlock(&pools_lock);
    return r;
}

static void pools_remove(mp_pool *p)
{
    pthread_mutex_lock(&pools_lock);
    for (mp_pool **pp = &pools; *pp != NULL; pp = &(*pp)->next_pool)
        if (*pp == p) {
            *pp = p->next_pool;
            break;
        }
    pthread_mutex_unlock(&pools_lock);
}

/* making */

/* The page of worker slots, as a memfd the workers are handed. */
static int page_new(mp_pool *p)
{
    size_t len = sizeof(struct mp__pool_page) +
                 (size_t)p->processes * sizeof(struct mp__pool_slot);
    int fd = memfd_create("libmp-pool", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    int r = 0;

    if (fd < 0)
        return -errno;
    if ((p->page_handle = mp__conn_wrap(fd, 0)) == NULL) {
        close(fd);
        return -ENOMEM;
    }
    if (ftruncate(fd, (off_t)len) < 0 ||
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
            0)
        return -errno;
    p->page = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p->page == MAP_FAILED) {
        r = -errno;
        p->page = NULL;
        return r;
    }
    p->page_len = len;
    p->page->nslots = (uint64_t)p->processes;
    atomic_store(&p->page->magic, MP__POOL_MAGIC);
    return 0;
}

/* The workers' typed arguments: the initargs, then the queues and the
 * page, encoded once for every worker the pool will start. */
static int wargs_new(mp_pool *p, const mp_pool_options *o)
{
    size_t ninit = o != NULL ? o->n_initargs : 0;
    mp_arg *v;
    int r;

    if (ninit > 0 && o->initargs == NULL)
        return MP_EINVAL;
    if ((v = calloc(ninit + 3, sizeof(*v))) == NULL)
        return -ENOMEM;
    if (ninit > 0)
        memcpy(v, o->initargs, ninit * sizeof(*v));
    v[ninit] = mp_arg_queue(p->tasks);
    v[ninit + 1] = mp_arg_queue(p->results);
    v[ninit + 2] = mp_arg_conn(p->page_handle);
    r = mp__args_encode(v, ninit + 3, &p->wargs, &p->wargs_len, p->whandles,
                        &p->nwh);
    free(v);
    if (r < 0)
        return r;
    for (size_t i = 0; i < p->nwh; i++)
        mp__conn_ref(p->whandles[i]);
    p->ninit = ninit;
    return 0;
}

static int check_options(int *processes, const mp_pool_options *o)
{
    if (*processes == MP_POOL_CPUS) {
        int n = mp_cpu_count();
        *processes = n > 0 ? n : 1;
    }
    if (*processes < 1)
        return MP_EPOOLPROCS;
    if (o == NULL)
        return 0;
    if (o->maxtasksperchild < 0)
        return MP_EMAXTASKS;
    if (o->initializer != NULL) {
        mp_target_fn fn;
        if (o->initializer->name == NULL || o->initializer->fn == NULL)
            return MP_EINVAL;
        if ((fn = mp_target_lookup(o->initializer->name)) == NULL)
            return mp__target_missing(o->initializer->name);
        if (fn != o->initializer->fn)
            return MP_EINVAL;
    }
    return 0;
}

static mp_pool *pool_alloc(int processes, const mp_pool_options *o)
{
    mp_pool *p = calloc(1, sizeof(*p));
    pthread_condattr_t ca;

    if (p == NULL)
        return NULL;
    p->efd = -1;
    p->processes = processes;
    p->gen = mp__pool_gen();
    p->maxtasks = o != NULL ? o->maxtasksperchild : 0;
    if (o != NULL && o->initializer != NULL)
        snprintf(p->initializer, sizeof(p->initializer), "%s",
                 o->initializer->name);
    pthread_mutex_init(&p->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&p->cond, &ca);
    pthread_condattr_destroy(&ca);
    return p;
}

/* Frees what pool_alloc() and the making took (threads and workers are
 * gone by then). */
static void pool_release(mp_pool *p)
{
    mp_queue_free(p->tasks);
    mp_queue_free(p->results);
    if (p->page != NULL)
        munmap(p->page, p->page_len);
    mp_conn_free(p->page_handle);
    for (size_t i = 0; i < p->nwh; i++)
        mp_conn_free(p->whandles[i]);
    free(p->wargs);
    free(p->workers);
    free(p->table);
    free(p->wfds);
    free(p->wslot);
    free(p->rbuf);
    if (p->efd >= 0)
        close(p->efd);
    pthread_mutex_destroy(&p->lock);
    pthread_cond_destroy(&p->cond);
    free(p);
}

int mp_pool_new(mp_pool **out, int processes, const mp_pool_options *o)
{
    mp_pool *p;
    int r;

    if (out == NULL)
        return MP_EINVAL;
    *out = NULL;
    if ((r = check_options(&processes, o)) < 0)
        return r;
    if ((p = pool_alloc(processes, o)) == NULL)
        return -ENOMEM;
    if (o != NULL && o->context != NULL)
        p->ctx = o->context;
    else if ((r = mp_get_context(&p->ctx, NULL)) < 0)
        goto fail;
    /* A forkserver child's OS parent is the server: the worker watches
     * the pool's process itself, known by its start time as well as its
     * pid (which may be another's by the time the worker looks). */
    p->check_parent = strcmp(mp_context_name(p->ctx), "forkserver") != 0;
    if (!p->check_parent)
        mp__process_self(&p->owner);
    p->workers = calloc((size_t)processes, sizeof(*p->workers));
    p->tcap = 64;
    p->table = calloc(p->tcap, sizeof(*p->table));
    if (p->workers == NULL || p->table == NULL) {
        r = -ENOMEM;
        goto fail;
    }
    if ((p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
        r = -errno;
        goto fail;
    }
    if ((r = mp_simple_queue_new(&p->tasks)) < 0 ||
        (r = mp_simple_queue_new(&p->results)) < 0 ||
        (r = page_new(p)) < 0 || (r = wargs_new(p, o)) < 0)
        goto fail;
    if ((r = mp__results_start(p)) < 0)
        goto fail;
    if ((r = mp__watch_start(p)) < 0) {
        mp__results_stop(p);
        goto fail;
    }
    if ((r = pools_add(p)) < 0) {
        mp_pool_terminate(p);
        mp__results_stop(p);
        goto fail;
    }
    *out = p;
    return 0;
fail:
    pool_release(p);
    return r;
}

int mp_pool_processes(const mp_pool *p)
{
    return p != NULL ? p->processes : MP_EINVAL;
}

int mp_pool_repr(const mp_pool *p, char *buf, size_t size)
{
    static const char *const states[] = { "RUN", "CLOSE", "TERMINATE" };
    int state;

    if (p == NULL || (buf == NULL && size > 0))
        return MP_EINVAL;
    if (foreign(p)) { /* its one thread: nothing to lock against */
        state = p->state;
    } else {
        pthread_mutex_lock((pthread_mutex_t *)&p->lock);
        state = p->state;
        pthread_mutex_unlock((pthread_mutex_t *)&p->lock);
    }
    if (state < MP__POOL_RUN || state > MP__POOL_TERMINATE)
        return MP_EINVAL;
    return snprintf(buf, size, "<multiprocessing.pool.Pool state=%s "
                    "pool_size=%d>", states[state], p->processes);
}

/* close, terminate, join */

int mp_pool_close(mp_pool *p)
{
    if (p == NULL)
        return MP_EINVAL;
    if (foreign(p))
        return MP_EPOOLNOTRUNNING;
    pthread_mutex_lock(&p->lock);
    if (p->state == MP__POOL_RUN)
        p->state = MP__POOL_CLOSE;
    pthread_mutex_unlock(&p->lock);
    mp__pool_wake(p);
    return 0;
}

int mp_pool_terminate(mp_pool *p)
{
    if (p == NULL)
        return MP_EINVAL;
    if (foreign(p))
        return MP_EPOOLNOTRUNNING;
    pthread_mutex_lock(&p->lock);
    if (p->state == MP__POOL_TERMINATE) { /* another thread's, or done */
        /* From a callback, while another thread's terminate() waits for
         * this thread to end: waiting here would wait for ever. */
        while (!p->finished && !mp__in_result_thread(p))
            pthread_cond_wait(&p->cond, &p->lock);
        pthread_mutex_unlock(&p->lock);
        return 0;
    }
    p->state = MP__POOL_TERMINATE;
    p->finished = false;
    pthread_mutex_unlock(&p->lock);
    mp__watch_stop(p);
    mp__workers_stop(p);
    mp__results_stop(p);
    mp__jobs_fail_all(p, MP_EPOOLTERMINATED);
    pthread_mutex_lock(&p->lock);
    p->finished = true;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

int mp_pool_join(mp_pool *p)
{
    if (p == NULL)
        return MP_EINVAL;
    if (foreign(p))
        return MP_EPOOLNOTRUNNING;
    pthread_mutex_lock(&p->lock);
    if (p->state == MP__POOL_RUN) {
        pthread_mutex_unlock(&p->lock);
        return MP_EPOOLRUNNING;
    }
    while (!p->finished)
        pthread_cond_wait(&p->cond, &p->lock);
    pthread_mutex_unlock(&p->lock);
    return 0;
}

/* A fork child's copy: the threads and workers are the parent's; only
 * the memory is this process's.  Nothing is locked (a lock copied held
 * would stay held): the child's one thread is all there is. */
static void release_copy(mp_pool *p)
{
    for (size_t i = 0; i < p->tcap; i++)
        for (struct mp_result *j = p->table[i], *next; j != NULL; j = next) {
            next = j->hnext;
            mp__job_unref(j);
        }
    for (int i = 0; i < p->processes; i++)
        mp_process_free(p->workers[i].proc);
    pool_release(p);
}

mp_pool *mp_pool_free(mp_pool *p)
{
    int state;

    if (p == NULL)
        return NULL;
    if (foreign(p)) {
        release_copy(p);
        return NULL;
    }
    pthread_mutex_lock(&p->lock);
    state = p->state;
    pthread_mutex_unlock(&p->lock);
    if (state == MP__POOL_RUN)
        mp_pool_terminate(p);
    mp_pool_join(p);
    mp__watch_stop(p);
    mp__results_stop(p);
    pools_remove(p);
    pool_release(p);
    return NULL;
}

void mp_pool_cleanup(mp_pool **pp)
{
    if (pp == NULL || *pp == NULL)
        return;
    if (!foreign(*pp))
        mp_pool_terminate(*pp);
    *pp = mp_pool_free(*pp);
}
