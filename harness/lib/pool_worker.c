/*
 * pool_worker.c - a pool's worker process (CPython: pool.worker()) and
 * what a task sees of it: mp_task_return(), and its arguments as
 * mp_child_args().
 *
 * The worker runs the initializer, then takes tasks from the task queue
 * until the pool's page says stop or maxtasksperchild, runs each item of a
 * task
 * (stopping at the first that fails, as CPython's mapstar's list() does)
 * and puts one result per task.  Between the take and the result, its
 * slot in the pool's page names the task: the take notes it there with
 * the queue's consumers' side held, before the take is committed, so a
 * worker that dies at any instant leaves either the task in the queue or
 * its slot naming it (pool_watch.c reads the slot).  A task's item runs
 * with its arguments decoded into memory reused from one task to the
 * next, so the loop makes no allocation once it has grown.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pool.h"
#ifdef MP_TEST_HOOKS
#include "test_hooks.h"
#endif

/*
 * Fault injection for the tests (test_pool_death.c): the worker kills
 * itself with SIGKILL at that point of its next task (test_hooks.h).
 */
#ifdef MP_TEST_HOOKS
int mp__pool_fault;
#define FAULT(n)                                                              \
    do {                                                                      \
        if (__builtin_expect(__atomic_load_n(&mp__pool_fault,                 \
                                             __ATOMIC_RELAXED) == (n), 0))    \
            kill(getpid(), SIGKILL);                                          \
    } while (0)
#else
#define FAULT(n) ((void)0)
#endif

/* The task this thread runs: what mp_task_return() writes. */
static _Thread_local struct {
    bool in_task;
    mp_arg value;
    char *buf; /* a str or bytes value's copy */
    size_t cap;
} task;

int mp_task_return(mp_arg v)
{
    const void *src = NULL;
    size_t n = 0;

    if (!task.in_task)
        return MP_EINVAL;
    switch (v.type) {
    case MP_ARG_NONE:
    case MP_ARG_INT:
    case MP_ARG_DOUBLE:
        break;
    case MP_ARG_STR:
        if (v.u.s == NULL)
            return MP_EINVAL;
        src = v.u.s;
        n = strlen(v.u.s) + 1;
        break;
    case MP_ARG_BYTES:
        if (v.u.b.buf == NULL && v.u.b.len > 0)
            return MP_EINVAL;
        src = v.u.b.buf;
        n = v.u.b.len;
        break;
    default:
        return MP_EINVAL;
    }
    if (n > task.cap) {
        char *grown = realloc(task.buf, n);
        if (grown == NULL)
            return -ENOMEM;
        task.buf = grown;
        task.cap = n;
    }
    if (n > 0)
        memcpy(task.buf, src, n);
    if (v.type == MP_ARG_STR)
        v.u.s = task.buf;
    else if (v.type == MP_ARG_BYTES)
        v.u.b.buf = task.buf;
    v.name = NULL;
    task.value = v;
    return 0;
}

void mp__pool_task_forked(void)
{
    task.in_task = false;
    mp__set_task_args(NULL);
}

/* A worker's state. */
struct worker {
    mp_queue *tasks, *results; /* results: attached at the first put */
    const mp_args *wargs;       /* the worker's: the result queue's handle */
    struct mp__pool_slot *slot;
    const _Atomic uint32_t *stop; /* the page's */
    char *buf; /* the task message */
    size_t cap;
    struct mp__out res; /* the result being built */
    mp_args *args;      /* the item's arguments, reused */
    char fn_name[MP_TARGET_NAME_MAX + 1];
    size_t fn_len;
    mp_target_fn fn;    /* the target last looked up, by that name */
    uint64_t job, chunk;
};

/* The worker of this process, while it runs a task (mp__uncaught()). */
static struct worker *running;

/* The result queue, attached on first need: a worker that never gets a
 * task (most of a large pool that is closed at once) never maps it. */
static mp_queue *results_of(struct worker *w)
{
    int r;

    if (w->results == NULL &&
        (r = mp_args_get_queue(w->wargs, mp_args_count(w->wargs) - 2,
                               &w->results)) < 0)
        mp__uncaught(r);
    return w->results;
}

void mp__pool_task_uncaught(int err)
{
    struct worker *w = running;

    if (w == NULL || !task.in_task)
        return;
    running = NULL;
    task.in_task = false;
    mp__res_error(&w->res, err, w->job, w->chunk);
    if (!w->res.failed) /* else the watcher's MP_EWORKERLOST says it */
        mp_queue_put(results_of(w), w->res.p, w->res.len, 1, MP_FOREVER);
}

/* The queue's claim: notes the task in the slot before the take is
 * committed (see pool_watch.c for how a death is read). */
static void claim(void *ctx, uint64_t pos, const void *msg, size_t n)
{
    struct mp__pool_slot *s = ctx;
    struct mp__task_hdr h;

    if (n < sizeof(h))
        return;
    memcpy(&h, msg, sizeof(h));
    FAULT(1);
    atomic_store_explicit(&s->job, h.job, memory_order_relaxed);
    atomic_store_explicit(&s->chunk, h.chunk, memory_order_relaxed);
    atomic_store_explicit(&s->pos, pos, memory_order_relaxed);
    atomic_store_explicit(&s->task, h.tid, memory_order_release);
    FAULT(2);
}

/* The next task message, into w->buf; -ECANCELED once told to stop. */
static int take(struct worker *w, size_t *len)
{
    for (;;) {
        int r = mp__queue_get_claim(w->tasks, w->buf, w->cap, len, claim,
                                    w->slot, w->stop);
        char *grown;

        if (r != MP_ETOOSHORT)
            return r;
        if ((grown = realloc(w->buf, *len)) == NULL)
            return -ENOMEM;
        w->buf = grown;
        w->cap = *len;
    }
}

/* The task's target, looked up once for a run of tasks of one target;
 * w->fn_name is its name, terminated. */
static mp_target_fn target(struct worker *w, const struct mp__task *t)
{
    if (w->fn == NULL || w->fn_len != t->h.namelen ||
        memcmp(w->fn_name, t->name, t->h.namelen) != 0) {
        memcpy(w->fn_name, t->name, t->h.namelen);
        w->fn_name[t->h.namelen] = '\0';
        w->fn_len = t->h.namelen;
        w->fn = mp_target_lookup(w->fn_name);
    }
    return w->fn;
}

/* Runs a task's items into w->res: 0, or n > 0 when an item ended with
 * sys.exit(n). */
static int run(struct worker *w, struct mp__task *t)
{
    static const char empty[1] = "";
    mp_target_fn fn = target(w, t);
    uint32_t done = 0;
    int r = 0;

    w->job = t->h.job;
    w->chunk = t->h.chunk;
    mp__res_begin(&w->res, MP__RES_OK, 0, t->h.job, t->h.chunk);
    if (fn == NULL)
        r = mp__target_missing(w->fn_name);
    for (; r == 0 && done < t->h.nitems; done++) {
        const char *item;
        size_t n;

        if ((r = mp__task_next(t, &item, &n)) < 0 ||
            (r = mp__args_decode_reuse(&w->args, item, n)) < 0)
            break;
        task.value = (mp_arg){ .type = MP_ARG_NONE };
        mp__set_task_args(w->args);
        running = w;
        task.in_task = true;
        r = fn(empty, 0);
        task.in_task = false;
        running = NULL;
        mp__set_task_args(NULL);
        if (r > 0)
            return r; /* SystemExit: the slot still names the task */
        if (r == 0)
            mp__res_value(&w->res, &task.value);
    }
    if (r < 0)
        mp__res_error(&w->res, r, t->h.job, t->h.chunk);
    else
        mp__res_end(&w->res, done);
    return 0;
}

/* The loop: tasks until told to stop or maxtasks.  Returns the exit
 * code. */
static int serve(struct worker *w, int64_t maxtasks)
{
    for (int64_t completed = 0; maxtasks == 0 || completed < maxtasks;
         completed++) {
        struct mp__task t;
        size_t len;
        int r;

        if (atomic_load_explicit(w->stop, memory_order_relaxed))
            return 0;
        if ((r = take(w, &len)) == -ECANCELED)
            return 0;
        if (r < 0)
            mp__uncaught(r); /* the queue is broken: nothing to serve */
        r = mp__task_parse(w->buf, len, &t);
        FAULT(3);
        if (r < 0) /* not a task: the slot names it, if it could */
            mp__uncaught(r);
        if ((r = run(w, &t)) > 0)
            return r;
        FAULT(4);
        if (w->res.failed) /* no memory for the result: say so */
            mp__res_error(&w->res, -ENOMEM, t.h.job, t.h.chunk);
        if ((r = mp_queue_put(results_of(w), w->res.p, w->res.len, 1,
                              MP_FOREVER)) < 0)
            mp__uncaught(r);
        FAULT(5);
        atomic_store_explicit(&w->slot->task, 0, memory_order_release);
    }
    return 0;
}

/* The page, mapped: NULL unless it is a page of at least nslots slots. */
static struct mp__pool_page *map_page(mp_conn *c, uint32_t nslots)
{
    size_t need = sizeof(struct mp__pool_page) +
                  (size_t)nslots * sizeof(struct mp__pool_slot);
    int fd = mp_conn_fileno(c);
    struct mp__pool_page *pg;
    struct stat st;

    if (fd < 0 || fstat(fd, &st) < 0 || st.st_size < (off_t)need)
        return NULL;
    pg = mmap(NULL, need, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (pg == MAP_FAILED)
        return NULL;
    if (atomic_load(&pg->magic) != MP__POOL_MAGIC || pg->nslots != nslots) {
        munmap(pg, need);
        return NULL;
    }
    return pg;
}

/* The initializer with the initargs as its arguments: its error ends the
 * worker, as an uncaught exception does CPython's; n > 0 is sys.exit(n). */
static int initialize(const struct mp__pool_blob *b, const mp_args *all)
{
    mp_target_fn fn;
    mp_args *init;
    int r;

    if (b->initializer[0] == '\0')
        return 0;
    if ((fn = mp_target_lookup(b->initializer)) == NULL)
        mp__uncaught(mp__target_missing(b->initializer));
    if ((init = mp__args_prefix(all, (size_t)b->ninit)) == NULL)
        mp__uncaught(-ENOMEM);
    mp__set_task_args(init);
    r = fn("", 0);
    mp__set_task_args(NULL);
    free(init);
    if (r < 0)
        mp__uncaught(r);
    return r;
}

static void *owner_watch(void *arg)
{
    struct pollfd pfd = { .fd = (int)(intptr_t)arg, .events = POLLIN };
    int r;

    while ((r = poll(&pfd, 1, -1)) < 0 && errno == EINTR)
        ;
    if (r > 0)
        _exit(1);
    close(pfd.fd);
    return NULL;
}

/* A forkserver worker's OS parent is the server, so no PDEATHSIG: a
 * thread sleeps on a pidfd of the pool's process and ends the worker
 * when that process ends.  The pidfd is opened before the process is
 * checked to be the pool's, so that it names the pool's process or, if
 * the pid was free or another's by then, the check says so.  1: the
 * pool's process is already gone.  Where it cannot be told (no pidfds,
 * another PID namespace), the worker goes unwatched. */
static int watch_owner(const struct mp__pool_blob *b)
{
    struct mp__thread_id owner = b->owner;
    sigset_t all, old;
    pthread_t t;
    int fd, r;

    if (owner.start == 0)
        return 0;
    fd = mp__pidfd_open(owner.pid);
    if ((r = mp__process_check(&owner)) != 1 || fd < 0) {
        mp__fd_close(fd);
        return r == 0;
    }
    /* Signals are the worker's other threads' to take. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = pthread_create(&t, NULL, owner_watch, (void *)(intptr_t)fd);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (r != 0)
        mp__fd_close(fd);
    else
        pthread_detach(t);
    return 0;
}

static int pool_worker(const void *arg, size_t len)
{
    struct mp__pool_blob b;
    const mp_args *a = mp_child_args();
    struct worker w = { 0 };
    struct mp__pool_page *pg;
    mp_conn *c = NULL;
    size_t n = mp_args_count(a);
    int r;

    if (len != sizeof(b))
        mp__uncaught(-EPROTO);
    memcpy(&b, arg, sizeof(b));
    b.initializer[MP_TARGET_NAME_MAX] = '\0';
    if (b.magic != MP__POOL_MAGIC || b.slot >= b.nslots || n < 3 ||
        b.ninit != n - 3 || b.maxtasks < 0)
        mp__uncaught(-EPROTO);
    /* CPython's workers see EOF when the pool's process dies; these
     * would wait on the queue for ever: they die with it instead (the
     * thread that started them, the watcher, lives as long as they). */
    if (b.check_parent) {
        pid_t parent = 0;
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        mp_process_pid(mp_parent_process(), &parent);
        if (getppid() != parent)
            return 1;
    } else if (watch_owner(&b)) {
        return 1;
    }
    w.wargs = a;
    if ((r = mp_args_get_queue(a, n - 3, &w.tasks)) < 0 ||
        (r = mp_args_get_conn(a, n - 1, &c)) < 0)
        mp__uncaught(r);
    if ((pg = map_page(c, b.nslots)) == NULL)
        mp__uncaught(-EPROTO);
    w.slot = &pg->slot[b.slot];
    w.stop = &pg->stop;
    if ((r = initialize(&b, a)) > 0)
        return r;
    r = serve(&w, b.maxtasks);
    free(w.buf);
    free(w.res.p);
    mp__args_reuse_free(w.args);
    return r;
}

const mp_target mp__pool_worker_target = { MP__POOL_WORKER, pool_worker };

__attribute__((constructor)) static void pool_worker_register(void)
{
    mp_target_register(MP__POOL_WORKER, pool_worker);
}
