/*
 * test_pool.c - Pool, AsyncResult and imap (pool*.c) as CPython's
 * multiprocessing.Pool behaves (SCENARIOS.md section 21): every call and
 * error, the three start methods, callbacks, chunksize quirks,
 * maxtasksperchild, initializers, sys.exit in a task, terminate().
 * Deaths at each point of a task's round trip: test_pool_death.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

MP_TARGET(square)
{
    long long x = mp_args_int(args, 0);

    return mp_task_return(MP_ARG(x * x));
}

/* add(a, b): by position, or by name (kwargs). */
MP_TARGET(add)
{
    long long a = mp_args_int_or(args, "a", 0);
    long long b = mp_args_int_or(args, "b", 0);

    if (mp_args_count(args) == 2 && mp_args_name(args, 0) == NULL) {
        a = mp_args_int(args, 0);
        b = mp_args_int(args, 1);
    }
    return mp_task_return(MP_ARG(a + b));
}

MP_TARGET(fail_on_3)
{
    long long x = mp_args_int(args, 0);

    if (x == 3)
        return mp_raise("ValueError", "bad %lld", x);
    return mp_task_return(MP_ARG(x));
}

MP_TARGET(getpid_task)
{
    return mp_task_return(MP_ARG((long long)getpid()));
}

/* Returns nothing: None. */
MP_TARGET(nothing)
{
    return 0;
}

/* Its argument back, whatever its type. */
MP_TARGET(echo)
{
    switch (mp_args_type(args, 0)) {
    case MP_ARG_STR:
        return mp_task_return(MP_ARG(mp_args_str(args, 0)));
    case MP_ARG_BYTES: {
        size_t n;
        const void *b = mp_args_bytes(args, 0, &n);
        return mp_task_return(mp_arg_bytes(b, n));
    }
    case MP_ARG_DOUBLE:
        return mp_task_return(MP_ARG(mp_args_double(args, 0)));
    default:
        return mp_task_return(MP_ARG(mp_args_int(args, 0)));
    }
}

/* sys.exit(n) in the worker. */
MP_TARGET(exit_with)
{
    return (int)mp_args_int(args, 0);
}

MP_TARGET(underscore_exit)
{
    _exit(7);
}

/* Reads an int out of a str: TypeError, raised (mp_args_int ends the
 * task's worker after its caller has the error). */
MP_TARGET(misread)
{
    return mp_task_return(MP_ARG(mp_args_int(args, 0)));
}

MP_TARGET(sleep_forever)
{
    pause();
    return 0;
}

/* mp_task_return() with what it refuses. */
MP_TARGET(bad_returns)
{
    mp_queue *q;
    int r;

    if (mp_queue_new(&q, 0) < 0)
        return 1;
    r = mp_task_return(MP_ARG(q));
    mp_queue_free(q);
    if (r != MP_EINVAL || mp_task_return(mp_arg_str(NULL)) != MP_EINVAL)
        return mp_raise("AssertionError", "accepted");
    return mp_task_return(MP_ARG("fine"));
}

/* The initializer's state, per worker. */
static long long init_value;
static mp_queue *init_queue;

MP_TARGET(init_set)
{
    init_value = mp_args_int(args, 0);
    if (mp_args_count(args) > 1)
        init_queue = mp_args_queue(args, 1);
    return 0;
}

MP_TARGET(read_init)
{
    long long x = mp_args_int(args, 0);

    if (init_queue != NULL)
        mp_check(mp_queue_put_i64(init_queue, x));
    return mp_task_return(MP_ARG(init_value));
}

static mp_pool *pool_of(const char *method, int n, long maxtasks)
{
    mp_pool_options o = { .maxtasksperchild = maxtasks };
    mp_pool *p;

    ASSERT_OK(mp_get_context(&o.context, method));
    ASSERT_OK(mp_pool_new(&p, n, &o));
    return p;
}

/* 0, 1, 2, ... as map's items. */
static mp_arg ints[4000];

__attribute__((constructor)) static void ints_init(void)
{
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        ints[i] = mp_arg_int((long long)i);
}

static long long int_at(const mp_result *r, size_t i)
{
    const mp_arg *v = mp_result_value(r, i);

    ASSERT_TRUE(v != NULL);
    ASSERT_EQ(MP_ARG_INT, v->type);
    return v->u.i;
}

/* The basics under one start method (SCENARIOS #191): map, apply (with
 * kwargs), starmap, imap, imap_unordered, an empty map; the workers'
 * names and daemon flag. */
static void basics(const char *method, const char *prefix)
{
    mp_pool *p = pool_of(method, 2, 0);
    mp_result *r;
    mp_imap *it;
    const mp_arg *v;
    mp_process **kids;
    size_t nkids, seen = 0;
    long long sum = 0;
    mp_call calls[2] = { { MP_ARGS(1, 2) }, { MP_ARGS(3, 4) } };

    ASSERT_EQ(0, mp_pool_map(p, &square_target, ints, 10, MP_CHUNKSIZE_AUTO,
                             &r));
    ASSERT_EQ(10, mp_result_len(r));
    for (size_t i = 0; i < 10; i++)
        ASSERT_EQ((long long)(i * i), int_at(r, i));
    mp_result_free(r);
    ASSERT_EQ(0, mp_pool_apply(p, &add_target, MP_ARGS(2, 3), &r));
    ASSERT_EQ(1, mp_result_len(r));
    ASSERT_EQ(5, int_at(r, 0));
    mp_result_free(r);
    ASSERT_EQ(0, mp_pool_apply(p, &add_target,
                               MP_ARGS(MP_NAMED("a", 1), MP_NAMED("b", 2)),
                               &r));
    ASSERT_EQ(3, int_at(r, 0));
    mp_result_free(r);
    ASSERT_EQ(0, mp_pool_starmap(p, &add_target, calls, 2, MP_CHUNKSIZE_AUTO,
                                 &r));
    ASSERT_EQ(3, int_at(r, 0));
    ASSERT_EQ(7, int_at(r, 1));
    mp_result_free(r);
    ASSERT_OK(mp_pool_imap(p, &square_target, ints, 5, MP_CHUNKSIZE_AUTO,
                           &it));
    for (long long i = 0; i < 5; i++) {
        ASSERT_EQ(1, mp_imap_next(it, MP_FOREVER, &v));
        ASSERT_EQ(i * i, v->u.i);
    }
    ASSERT_EQ(0, mp_imap_next(it, MP_FOREVER, &v));
    mp_imap_free(it);
    ASSERT_OK(mp_pool_imap_unordered(p, &square_target, ints, 5, 2, &it));
    while (mp_imap_next(it, MP_FOREVER, &v) == 1) {
        seen++;
        sum += v->u.i;
    }
    ASSERT_EQ(5, seen);
    ASSERT_EQ(0 + 1 + 4 + 9 + 16, sum);
    mp_imap_free(it);
    ASSERT_EQ(0, mp_pool_map(p, &square_target, NULL, 0, MP_CHUNKSIZE_AUTO,
                             &r));
    ASSERT_EQ(0, mp_result_len(r));
    mp_result_free(r);

    ASSERT_OK(mp_active_children(&kids, &nkids));
    ASSERT_EQ(2, nkids);
    for (size_t i = 0; i < nkids; i++) {
        const char *name = mp_process_name(kids[i]);
        ASSERT_TRUE(strncmp(name, prefix, strlen(prefix)) == 0);
        ASSERT_EQ(1, mp_process_daemon(kids[i]));
    }
    mp_process_list_free(kids, nkids);
    ASSERT_OK(mp_pool_close(p));
    ASSERT_OK(mp_pool_join(p));
    ASSERT_OK(mp_active_children(&kids, &nkids));
    ASSERT_EQ(0, nkids);
    mp_process_list_free(kids, nkids);
    mp_pool_free(p);
}

TEST(basics_fork)
{
    basics("fork", "ForkPoolWorker-");
}

TEST(basics_spawn)
{
    basics("spawn", "SpawnPoolWorker-");
}

TEST(basics_forkserver)
{
    basics("forkserver", "ForkServerPoolWorker-");
}

/* Worker names count as CPython's process counter does: a Process made
 * before takes a number. */
TEST(worker_names_count_processes)
{
    mp_process *before;
    mp_process **kids;
    size_t n;
    mp_pool *p;
    int a, b;

    ASSERT_OK(mp_process_new(&before, NULL, NULL, 0, NULL));
    ASSERT_STREQ("Process-1", mp_process_name(before));
    p = pool_of("fork", 2, 0);
    ASSERT_OK(mp_active_children(&kids, &n));
    ASSERT_EQ(2, n);
    ASSERT_EQ(1, sscanf(mp_process_name(kids[0]), "ForkPoolWorker-%d", &a));
    ASSERT_EQ(1, sscanf(mp_process_name(kids[1]), "ForkPoolWorker-%d", &b));
    ASSERT_EQ(2 + 3, a + b);
    mp_process_list_free(kids, n);
    mp_process_free(before);
    mp_pool_free(p);
}

/* SCENARIOS #196: the construction's errors, in CPython's order. */
TEST(new_errors)
{
    mp_pool_options o = { .maxtasksperchild = -1 };
    const mp_target unknown = { "no_such_target", square_target.fn };
    mp_pool *p = (mp_pool *)&o;

    ASSERT_EQ(MP_EPOOLPROCS, mp_pool_new(&p, 0, NULL));
    ASSERT_TRUE(p == NULL);
    ASSERT_EQ(MP_EPOOLPROCS, mp_pool_new(&p, -1, &o));
    ASSERT_STREQ("ValueError", mp_exception_name(MP_EPOOLPROCS));
    ASSERT_STREQ("Number of processes must be at least 1",
                 mp_strerror(MP_EPOOLPROCS));
    ASSERT_EQ(MP_EMAXTASKS, mp_pool_new(&p, 1, &o));
    ASSERT_STREQ("maxtasksperchild must be a positive int or None",
                 mp_strerror(MP_EMAXTASKS));
    o.maxtasksperchild = 0;
    o.initializer = &unknown;
    ASSERT_EQ(MP_ENOTARGET, mp_pool_new(&p, 1, &o));
    o.initializer = &init_set_target;
    o.n_initargs = 1; /* initargs NULL */
    ASSERT_EQ(MP_EINVAL, mp_pool_new(&p, 1, &o));
    o.initargs = (mp_arg[]){ mp_arg_str(NULL) };
    ASSERT_EQ(MP_EINVAL, mp_pool_new(&p, 1, &o));
    ASSERT_EQ(MP_EINVAL, mp_pool_new(NULL, 1, NULL));
}

/* Pool(processes=None) is os.cpu_count() workers. */
TEST(cpus_by_default)
{
    mp_pool *p;

    ASSERT_OK(mp_pool_new(&p, MP_POOL_CPUS, NULL));
    ASSERT_EQ(mp_cpu_count(), mp_pool_processes(p));
    mp_pool_free(p);
}

/* close(), terminate(), join() and the submissions, in every state. */
TEST(state_errors)
{
    mp_pool *p = pool_of("fork", 1, 0);
    mp_result *r = (mp_result *)p;
    mp_imap *it = (mp_imap *)p;
    char buf[128];

    ASSERT_EQ(MP_EPOOLRUNNING, mp_pool_join(p));
    ASSERT_STREQ("Pool is still running", mp_strerror(MP_EPOOLRUNNING));
    ASSERT_EQ(49, mp_pool_repr(p, buf, sizeof(buf)));
    ASSERT_STREQ("<multiprocessing.pool.Pool state=RUN pool_size=1>", buf);
    ASSERT_OK(mp_pool_close(p));
    ASSERT_OK(mp_pool_close(p));
    mp_pool_repr(p, buf, sizeof(buf));
    ASSERT_STREQ("<multiprocessing.pool.Pool state=CLOSE pool_size=1>", buf);
    ASSERT_EQ(MP_EPOOLNOTRUNNING,
              mp_pool_apply_async(p, &square_target, MP_ARGS(1), NULL, &r));
    ASSERT_TRUE(r == NULL);
    ASSERT_EQ(MP_EPOOLNOTRUNNING, mp_pool_apply(p, &square_target,
                                                MP_ARGS(1), &r));
    ASSERT_EQ(MP_EPOOLNOTRUNNING,
              mp_pool_map(p, &square_target, ints, 3, 1, &r));
    ASSERT_EQ(MP_EPOOLNOTRUNNING,
              mp_pool_map_async(p, &square_target, ints, 3, 1, NULL, &r));
    ASSERT_EQ(MP_EPOOLNOTRUNNING,
              mp_pool_starmap(p, &square_target, NULL, 0, 1, &r));
    ASSERT_EQ(MP_EPOOLNOTRUNNING, mp_pool_starmap_async(
                                      p, &square_target, NULL, 0, 1, NULL, &r));
    ASSERT_EQ(MP_EPOOLNOTRUNNING,
              mp_pool_imap(p, &square_target, ints, 3, 1, &it));
    ASSERT_TRUE(it == NULL);
    ASSERT_EQ(MP_EPOOLNOTRUNNING,
              mp_pool_imap_unordered(p, &square_target, ints, 3, 1, &it));
    ASSERT_STREQ("Pool not running", mp_strerror(MP_EPOOLNOTRUNNING));
    ASSERT_OK(mp_pool_join(p));
    ASSERT_OK(mp_pool_terminate(p));
    ASSERT_OK(mp_pool_terminate(p));
    ASSERT_OK(mp_pool_join(p));
    mp_pool_repr(p, buf, sizeof(buf));
    ASSERT_STREQ("<multiprocessing.pool.Pool state=TERMINATE pool_size=1>",
                 buf);
    mp_pool_free(p);
    ASSERT_EQ(MP_EINVAL, mp_pool_close(NULL));
    ASSERT_EQ(MP_EINVAL, mp_pool_terminate(NULL));
    ASSERT_EQ(MP_EINVAL, mp_pool_join(NULL));
    ASSERT_TRUE(mp_pool_free(NULL) == NULL);
}

/* What a submission refuses: a target that is not one, arguments that
 * CPython cannot pickle (SCENARIOS #196), bad values; imap's chunksize
 * (#197). */
TEST(submit_errors)
{
    mp_pool *p = pool_of("fork", 1, 0);
    const mp_target unknown = { "no_such_target", square_target.fn };
    const mp_target impostor = { "square", add_target.fn };
    mp_result *r;
    mp_imap *it;
    mp_queue *q, *sq;
    mp_lock *l, *rl;
    mp_event *e;
    mp_conn *c1, *c2;
    struct {
        mp_arg a;
        const char *msg;
    } refused[6];

    ASSERT_EQ(MP_EINVAL, mp_pool_apply_async(p, NULL, NULL, 0, NULL, &r));
    ASSERT_EQ(MP_EINVAL, mp_pool_apply_async(p, &square_target, NULL, 0,
                                             NULL, NULL));
    ASSERT_EQ(MP_EINVAL, mp_pool_apply_async(NULL, &square_target, NULL, 0,
                                             NULL, &r));
    ASSERT_EQ(MP_ENOTARGET, mp_pool_apply_async(p, &unknown, NULL, 0, NULL,
                                                &r));
    ASSERT_EQ(MP_ERAISED, mp_pool_apply_async(p, &impostor, NULL, 0, NULL,
                                              &r));
    ASSERT_EQ(MP_EINVAL, mp_pool_apply_async(p, &square_target,
                                             MP_ARGS(mp_arg_str(NULL)), NULL,
                                             &r));
    ASSERT_EQ(MP_EINVAL, mp_pool_map_async(p, &square_target, NULL, 3, 1,
                                           NULL, &r));
    ASSERT_EQ(MP_EINVAL, mp_pool_starmap_async(p, &square_target, NULL, 3,
                                               1, NULL, &r));

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_simple_queue_new(&sq));
    ASSERT_OK(mp_lock_new(&l));
    ASSERT_OK(mp_rlock_new(&rl));
    ASSERT_OK(mp_event_new(&e));
    ASSERT_OK(mp_pipe(&c1, &c2, 1));
    refused[0].a = MP_ARG(q), refused[0].msg = "Queue";
    refused[1].a = MP_ARG(sq), refused[1].msg = "SimpleQueue";
    refused[2].a = MP_ARG(l), refused[2].msg = "Lock";
    refused[3].a = MP_ARG(rl), refused[3].msg = "RLock";
    refused[4].a = MP_ARG(e), refused[4].msg = "Condition";
    refused[5].a = MP_ARG(c1), refused[5].msg = "Connection";
    for (size_t i = 0; i < 6; i++) {
        char want[128];
        mp_arg items[2] = { mp_arg_int(1), refused[i].a };

        snprintf(want, sizeof(want), "%s objects should only be shared "
                 "between processes through inheritance", refused[i].msg);
        ASSERT_EQ(MP_ERAISED, mp_pool_apply_async(p, &square_target,
                                                  &refused[i].a, 1, NULL,
                                                  &r));
        ASSERT_TRUE(r == NULL);
        ASSERT_STREQ("RuntimeError", mp_exception_name(MP_ERAISED));
        ASSERT_STREQ(want, mp_strerror(MP_ERAISED));
        ASSERT_EQ(MP_ERAISED, mp_pool_map_async(p, &square_target, items,
                                                2, 1, NULL, &r));
        ASSERT_STREQ(want, mp_strerror(MP_ERAISED));
    }
    mp_queue_free(q);
    mp_queue_free(sq);
    mp_lock_free(l);
    mp_lock_free(rl);
    mp_event_free(e);
    mp_conn_free(c1);
    mp_conn_free(c2);

    ASSERT_EQ(MP_ERAISED, mp_pool_imap(p, &square_target, ints, 3, 0, &it));
    ASSERT_TRUE(it == NULL);
    ASSERT_STREQ("ValueError", mp_exception_name(MP_ERAISED));
    ASSERT_STREQ("Chunksize must be 1+, not 0", mp_strerror(MP_ERAISED));
    ASSERT_EQ(MP_ERAISED, mp_pool_imap_unordered(p, &square_target, ints, 3,
                                                 -3, &it));
    ASSERT_STREQ("Chunksize must be 1+, not -3", mp_strerror(MP_ERAISED));
    /* The pool is as it was. */
    ASSERT_EQ(0, mp_pool_apply(p, &square_target, MP_ARGS(4), &r));
    ASSERT_EQ(16, int_at(r, 0));
    mp_result_free(r);
    mp_pool_free(p);
}

/* SCENARIOS #197: map's chunksize 0 (or below) makes n Nones and runs
 * nothing (fail_on_3 would fail), with no callback; an empty map is
 * ready at once, without its callback too. */
static int callbacks_run;

static void count_cb(mp_result *r, void *arg)
{
    (void)r;
    (void)arg;
    callbacks_run++;
}

TEST(map_chunksize_zero)
{
    mp_pool *p = pool_of("fork", 1, 0);
    mp_pool_callbacks cb = { count_cb, NULL, NULL };
    mp_result *r;

    for (long cs = 0; cs >= -2; cs -= 2) {
        ASSERT_OK(mp_pool_map_async(p, &fail_on_3_target, ints, 5, cs, &cb,
                                    &r));
        ASSERT_EQ(1, mp_result_ready(r));
        ASSERT_EQ(0, mp_result_get(r, 0));
        ASSERT_EQ(1, mp_result_successful(r));
        ASSERT_EQ(5, mp_result_len(r));
        for (size_t i = 0; i < 5; i++)
            ASSERT_EQ(MP_ARG_NONE, mp_result_value(r, i)->type);
        ASSERT_TRUE(mp_result_value(r, 5) == NULL);
        mp_result_free(r);
    }
    ASSERT_OK(mp_pool_map_async(p, &fail_on_3_target, ints, 0,
                                MP_CHUNKSIZE_AUTO, &cb, &r));
    ASSERT_EQ(1, mp_result_ready(r));
    ASSERT_EQ(0, mp_result_get(r, 0));
    mp_result_free(r);
    ASSERT_EQ(0, callbacks_run);
    ASSERT_EQ(0, mp_pool_map(p, &fail_on_3_target, ints, 3, 1, &r));
    mp_result_free(r);
    mp_pool_free(p);
}

/* map's default chunksize is CPython's: len / (4 * processes), rounded
 * up, so with 2 workers and 9 items, chunks of 2: the failing item 3
 * takes item 2 with it, and a worker that exits after each task (one
 * chunk) runs 5 of them. */
TEST(map_default_chunksize)
{
    mp_pool *p = pool_of("fork", 2, 1);
    mp_result *r;
    long long pids[9];
    size_t distinct = 0;

    ASSERT_EQ(0, mp_pool_map(p, &getpid_task_target, ints, 9,
                             MP_CHUNKSIZE_AUTO, &r));
    for (size_t i = 0; i < 9; i++) {
        pids[i] = int_at(r, i);
        distinct += i == 0 || pids[i] != pids[i - 1];
    }
    for (size_t i = 0; i + 1 < 9; i += 2)
        ASSERT_EQ(pids[i], pids[i + 1]);
    ASSERT_EQ(5, distinct);
    mp_result_free(r);
    mp_pool_free(p);
}

/* SCENARIOS #193: an AsyncResult before and after it is ready.  The
 * tasks wait for an Event the fork workers inherit. */
static mp_event *shared_event;

MP_TARGET(wait_event)
{
    if (mp_event_wait(shared_event, 30) != 1)
        return mp_raise("TimeoutError", "never set");
    return mp_task_return(MP_ARG(mp_args_int(args, 0)));
}

TEST(async_result_states)
{
    mp_pool *p;
    mp_result *r;
    char want[128];
    double t;

    ASSERT_OK(mp_event_new(&shared_event)); /* fork workers inherit it */
    p = pool_of("fork", 1, 0);
    ASSERT_OK(mp_pool_apply_async(p, &wait_event_target, MP_ARGS(5), NULL,
                                  &r));
    ASSERT_EQ(0, mp_result_ready(r));
    ASSERT_EQ(MP_ERAISED, mp_result_successful(r));
    ASSERT_STREQ("ValueError", mp_exception_name(MP_ERAISED));
    snprintf(want, sizeof(want),
             "<multiprocessing.pool.ApplyResult object at %p> not ready",
             (void *)r);
    ASSERT_STREQ(want, mp_strerror(MP_ERAISED));
    ASSERT_EQ(0, mp_result_len(r));
    ASSERT_TRUE(mp_result_value(r, 0) == NULL);
    t = check_now();
    ASSERT_EQ(MP_ERESULTTIMEOUT, mp_result_get(r, 0.1));
    ASSERT_WITHIN(0.1, 1.0, check_now() - t);
    ASSERT_STREQ("multiprocessing.context.TimeoutError",
                 mp_exception_name(MP_ERESULTTIMEOUT));
    ASSERT_EQ(0, mp_result_wait(r, 0));
    ASSERT_EQ(0, mp_result_wait(r, -1));
    ASSERT_EQ(MP_EINVAL, mp_result_wait(r, __builtin_nan("")));
    ASSERT_OK(mp_event_set(shared_event));
    ASSERT_EQ(1, mp_result_wait(r, MP_FOREVER));
    ASSERT_EQ(1, mp_result_ready(r));
    ASSERT_EQ(1, mp_result_successful(r));
    ASSERT_EQ(0, mp_result_get(r, 0));
    ASSERT_EQ(5, int_at(r, 0));
    mp_result_free(r);

    ASSERT_OK(mp_event_clear(shared_event));
    ASSERT_OK(mp_pool_map_async(p, &wait_event_target, ints, 4, 1, NULL, &r));
    snprintf(want, sizeof(want),
             "<multiprocessing.pool.MapResult object at %p> not ready",
             (void *)r);
    ASSERT_EQ(MP_ERAISED, mp_result_successful(r));
    ASSERT_STREQ(want, mp_strerror(MP_ERAISED));
    ASSERT_OK(mp_event_set(shared_event));
    ASSERT_EQ(0, mp_result_get(r, 5));
    ASSERT_EQ(3, int_at(r, 3));
    mp_result_free(r);
    mp_pool_free(p);
    mp_event_free(shared_event);
}

/* SCENARIOS #194: the task's exception, name and message, in the caller;
 * map's is its failed item's; imap yields it at its item and goes on
 * (chunksize 1), or ends there (a larger chunksize: CPython's generator
 * ends when it raises). */
TEST(task_exceptions)
{
    mp_pool *p = pool_of("fork", 2, 0);
    mp_result *r;
    mp_imap *it;
    const mp_arg *v;
    long long want[] = { 0, 1, 2, -1, 4, 5 };

    ASSERT_EQ(MP_ERAISED, mp_pool_map(p, &fail_on_3_target, ints, 6, 1, &r));
    ASSERT_STREQ("ValueError", mp_exception_name(MP_ERAISED));
    ASSERT_STREQ("bad 3", mp_strerror(MP_ERAISED));
    ASSERT_EQ(1, mp_result_ready(r));
    ASSERT_EQ(0, mp_result_successful(r));
    ASSERT_EQ(0, mp_result_len(r));
    ASSERT_TRUE(mp_result_value(r, 0) == NULL);
    mp_result_free(r);
    ASSERT_EQ(MP_ERAISED, mp_pool_apply(p, &fail_on_3_target, MP_ARGS(3),
                                        &r));
    ASSERT_STREQ("bad 3", mp_strerror(MP_ERAISED));
    /* get() again raises again, in any thread: the exception is kept */
    mp_raise("KeyError", "other");
    ASSERT_EQ(MP_ERAISED, mp_result_get(r, 0));
    ASSERT_STREQ("ValueError", mp_exception_name(MP_ERAISED));
    mp_result_free(r);

    ASSERT_OK(mp_pool_imap(p, &fail_on_3_target, ints, 6, 1, &it));
    for (size_t i = 0; i < 6; i++) {
        int k = mp_imap_next(it, MP_FOREVER, &v);
        if (want[i] < 0) {
            ASSERT_EQ(MP_ERAISED, k);
            ASSERT_STREQ("bad 3", mp_strerror(MP_ERAISED));
        } else {
            ASSERT_EQ(1, k);
            ASSERT_EQ(want[i], v->u.i);
        }
    }
    ASSERT_EQ(0, mp_imap_next(it, MP_FOREVER, &v));
    mp_imap_free(it);
    ASSERT_OK(mp_pool_imap(p, &fail_on_3_target, ints, 6, 2, &it));
    ASSERT_EQ(1, mp_imap_next(it, MP_FOREVER, &v));
    ASSERT_EQ(0, v->u.i);
    ASSERT_EQ(1, mp_imap_next(it, MP_FOREVER, &v));
    ASSERT_EQ(MP_ERAISED, mp_imap_next(it, MP_FOREVER, &v));
    ASSERT_EQ(0, mp_imap_next(it, MP_FOREVER, &v));
    mp_imap_free(it);
    /* A non-raised code comes back as itself. */
    ASSERT_EQ(0, mp_pool_apply(p, &square_target, MP_ARGS(5), &r));
    mp_result_free(r);
    mp_pool_free(p);
}

/* A raising getter (mp_args_int on a str) ends the worker, as it would
 * any process; its caller gets the TypeError first, and the pool goes
 * on with a new worker. */
TEST(uncaught_error_in_task)
{
    int fd = dup(2), null = open("/dev/null", 1);
    mp_pool *p;
    mp_result *r;

    dup2(null, 2); /* the worker's "Process ForkPoolWorker-1:" */
    p = pool_of("fork", 1, 0);
    ASSERT_EQ(MP_ERAISED, mp_pool_apply(p, &misread_target, MP_ARGS("x"),
                                        &r));
    dup2(fd, 2);
    ASSERT_STREQ("TypeError", mp_exception_name(MP_ERAISED));
    ASSERT_STREQ("argument 0 is str, not int", mp_strerror(MP_ERAISED));
    mp_result_free(r);
    ASSERT_EQ(0, mp_pool_apply(p, &square_target, MP_ARGS(6), &r));
    ASSERT_EQ(36, int_at(r, 0));
    mp_result_free(r);
    mp_pool_free(p);
    close(fd);
    close(null);
}

/* Values of every type come back; a task that returns nothing gives
 * None; mp_task_return() refuses handles and NULL, and works only in a
 * task. */
TEST(values)
{
    mp_pool *p = pool_of("fork", 1, 0);
    mp_arg items[5] = { mp_arg_int(-7), mp_arg_double(2.5),
                        mp_arg_str("text"), mp_arg_bytes("a\0b", 3),
                        mp_arg_str("") };
    mp_result *r;
    const mp_arg *v;

    ASSERT_EQ(0, mp_pool_map(p, &echo_target, items, 5, 2, &r));
    ASSERT_EQ(-7, int_at(r, 0));
    v = mp_result_value(r, 1);
    ASSERT_EQ(MP_ARG_DOUBLE, v->type);
    ASSERT_TRUE(v->u.d == 2.5);
    ASSERT_STREQ("text", mp_result_value(r, 2)->u.s);
    v = mp_result_value(r, 3);
    ASSERT_EQ(MP_ARG_BYTES, v->type);
    ASSERT_EQ(3, v->u.b.len);
    ASSERT_TRUE(memcmp(v->u.b.buf, "a\0b", 3) == 0);
    ASSERT_STREQ("", mp_result_value(r, 4)->u.s);
    mp_result_free(r);
    ASSERT_EQ(0, mp_pool_apply(p, &nothing_target, NULL, 0, &r));
    ASSERT_EQ(MP_ARG_NONE, mp_result_value(r, 0)->type);
    mp_result_free(r);
    ASSERT_EQ(0, mp_pool_apply(p, &bad_returns_target, NULL, 0, &r));
    ASSERT_STREQ("fine", mp_result_value(r, 0)->u.s);
    mp_result_free(r);
    ASSERT_EQ(MP_EINVAL, mp_task_return(MP_ARG(1)));
    mp_pool_free(p);
}

/* SCENARIOS #195: callback and error_callback run in the pool's process,
 * once the result is in and before it is ready, so a get() that returns
 * finds them done. */
struct seen {
    int calls, err;
    long long value;
    int ready_inside;
    char exc[32], msg[32];
};

static void on_result(mp_result *r, void *arg)
{
    struct seen *s = arg;

    s->ready_inside = mp_result_ready(r);
    s->value = mp_result_value(r, 0)->u.i;
    s->calls++;
}

static void on_error(mp_result *r, int err, void *arg)
{
    struct seen *s = arg;

    s->ready_inside = mp_result_ready(r);
    s->err = err;
    snprintf(s->exc, sizeof(s->exc), "%s", mp_exception_name(err));
    snprintf(s->msg, sizeof(s->msg), "%s", mp_strerror(err));
    s->calls++;
}

TEST(callbacks)
{
    mp_pool *p = pool_of("fork", 2, 0);
    struct seen ok = { 0 }, bad = { 0 }, map = { 0 };
    mp_pool_callbacks cb_ok = { on_result, on_error, &ok };
    mp_pool_callbacks cb_bad = { on_result, on_error, &bad };
    mp_pool_callbacks cb_map = { on_result, on_error, &map };
    mp_result *r1, *r2, *r3;

    ASSERT_OK(mp_pool_apply_async(p, &square_target, MP_ARGS(4), &cb_ok,
                                  &r1));
    ASSERT_OK(mp_pool_apply_async(p, &fail_on_3_target, MP_ARGS(3), &cb_bad,
                                  &r2));
    ASSERT_OK(mp_pool_map_async(p, &square_target, ints + 3, 4, 1, &cb_map,
                                &r3));
    ASSERT_EQ(0, mp_result_get(r1, MP_FOREVER));
    ASSERT_EQ(1, ok.calls);
    ASSERT_EQ(16, ok.value);
    ASSERT_EQ(0, ok.ready_inside);
    ASSERT_EQ(MP_ERAISED, mp_result_get(r2, MP_FOREVER));
    ASSERT_EQ(1, bad.calls);
    ASSERT_EQ(MP_ERAISED, bad.err);
    ASSERT_STREQ("ValueError", bad.exc);
    ASSERT_STREQ("bad 3", bad.msg);
    ASSERT_EQ(0, bad.ready_inside);
    ASSERT_EQ(0, mp_result_get(r3, MP_FOREVER));
    ASSERT_EQ(1, map.calls); /* once, with the whole result */
    ASSERT_EQ(9, map.value);
    mp_result_free(r1);
    mp_result_free(r2);
    mp_result_free(r3);
    mp_pool_free(p);
}

/* terminate() from a callback, as CPython allows: the pending results
 * fail, and the pool is freed afterwards from the caller. */
struct term {
    mp_pool *p;
    int r;
};

static void terminate_cb(mp_result *r, void *arg)
{
    struct term *t = arg;

    (void)r;
    t->r = mp_pool_terminate(t->p);
}

TEST(terminate_from_callback)
{
    struct term t = { pool_of("fork", 2, 0), -1 };
    mp_pool_callbacks cb = { terminate_cb, NULL, &t };
    mp_result *stuck, *r;

    ASSERT_OK(mp_pool_apply_async(t.p, &sleep_forever_target, NULL, 0, NULL,
                                  &stuck));
    ASSERT_OK(mp_pool_apply_async(t.p, &square_target, MP_ARGS(2), &cb, &r));
    ASSERT_EQ(0, mp_result_get(r, MP_FOREVER));
    ASSERT_EQ(MP_EPOOLTERMINATED, mp_result_get(stuck, MP_FOREVER));
    ASSERT_EQ(0, t.r);
    ASSERT_OK(mp_pool_join(t.p));
    mp_pool_free(t.p);
    mp_result_free(stuck);
    mp_result_free(r);
}

/* terminate() from a callback while another thread's terminate() waits
 * for the result thread to end: the callback's returns (that thread can
 * end only after it), and both return 0. */
struct race {
    mp_pool *p;
    sem_t in_cb, done;
    int cb_r, r;
};

static void terminate_when_terminating(mp_result *r, void *arg)
{
    struct race *t = arg;
    char repr[96];
    double until = check_now() + 30 * check_slowdown();

    (void)r;
    sem_post(&t->in_cb);
    /* The pool's state has no wake-up to wait on: look every 1 ms. */
    while (mp_pool_repr(t->p, repr, sizeof(repr)) > 0 &&
           strstr(repr, "TERMINATE") == NULL && check_now() < until)
        nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
    t->cb_r = mp_pool_terminate(t->p);
}

static void *terminator(void *arg)
{
    struct race *t = arg;

    t->r = mp_pool_terminate(t->p);
    sem_post(&t->done);
    return NULL;
}

TEST(terminate_from_callback_while_terminating)
{
    struct race t = { .p = pool_of("fork", 1, 0), .cb_r = -1, .r = -1 };
    mp_pool_callbacks cb = { terminate_when_terminating, NULL, &t };
    struct timespec ts;
    pthread_t th;
    mp_result *r;

    sem_init(&t.in_cb, 0, 0);
    sem_init(&t.done, 0, 0);
    ASSERT_OK(mp_pool_apply_async(t.p, &square_target, MP_ARGS(2), &cb, &r));
    ASSERT_EQ(0, sem_wait(&t.in_cb));
    ASSERT_EQ(0, pthread_create(&th, NULL, terminator, &t));
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(20 * check_slowdown());
    ASSERT_EQ(0, sem_timedwait(&t.done, &ts));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(0, t.r);
    ASSERT_EQ(0, t.cb_r);
    ASSERT_EQ(0, mp_result_get(r, MP_FOREVER));
    mp_pool_free(t.p);
    mp_result_free(r);
    sem_destroy(&t.in_cb);
    sem_destroy(&t.done);
}

/* SCENARIOS #200: maxtasksperchild replaces a worker after that many
 * tasks: Pool(1, 2) runs 6 tasks in 3 processes; under load, with two
 * workers of 3 tasks each, no process runs more than 3 of 90. */
static size_t distinct_pids(const mp_result *r, size_t n, size_t most)
{
    long long pids[100];
    size_t distinct = 0;

    for (size_t i = 0; i < n; i++) {
        long long pid = int_at(r, i);
        size_t k = 0, count = 0;
        while (k < distinct && pids[k] != pid)
            k++;
        if (k == distinct)
            pids[distinct++] = pid;
        for (size_t m = 0; m < n; m++)
            count += int_at(r, m) == pid;
        ASSERT_TRUE(count <= most);
    }
    return distinct;
}

TEST(maxtasksperchild)
{
    mp_pool *p = pool_of("fork", 1, 2);
    mp_result *r;

    ASSERT_EQ(0, mp_pool_map(p, &getpid_task_target, ints, 6, 1, &r));
    ASSERT_EQ(3, distinct_pids(r, 6, 2));
    mp_result_free(r);
    mp_pool_free(p);
    p = pool_of("fork", 2, 3);
    ASSERT_EQ(0, mp_pool_map(p, &getpid_task_target, ints, 90, 1, &r));
    ASSERT_TRUE(distinct_pids(r, 90, 3) >= 30);
    mp_result_free(r);
    mp_pool_close(p);
    mp_pool_join(p);
    mp_pool_free(p);
}

/* SCENARIOS #201: a task's sys.exit(3), or its _exit(), ends its worker;
 * beyond CPython its result is MP_EWORKERLOST rather than never; the
 * pool replaces the worker and goes on. */
TEST(task_exits_worker)
{
    mp_pool *p = pool_of("fork", 1, 0);
    mp_result *r;

    ASSERT_EQ(MP_EWORKERLOST, mp_pool_apply(p, &exit_with_target,
                                            MP_ARGS(3), &r));
    ASSERT_STREQ("WorkerLostError", mp_exception_name(MP_EWORKERLOST));
    ASSERT_EQ(1, mp_result_ready(r));
    ASSERT_EQ(0, mp_result_successful(r));
    mp_result_free(r);
    ASSERT_EQ(0, mp_pool_apply(p, &square_target, MP_ARGS(5), &r));
    ASSERT_EQ(25, int_at(r, 0));
    mp_result_free(r);
    ASSERT_EQ(MP_EWORKERLOST, mp_pool_apply(p, &underscore_exit_target,
                                            NULL, 0, &r));
    mp_result_free(r);
    /* A map whose chunk of 3 loses its worker: every other chunk comes. */
    {
        mp_arg items[6] = { mp_arg_int(0), mp_arg_int(0), mp_arg_int(0),
                            mp_arg_int(4), mp_arg_int(0), mp_arg_int(0) };
        mp_imap *it;
        const mp_arg *v;
        int k, lost = 0, ok = 0;

        ASSERT_OK(mp_pool_imap_unordered(p, &exit_with_target, items, 6, 1,
                                         &it));
        while ((k = mp_imap_next(it, MP_FOREVER, &v)) != 0) {
            lost += k == MP_EWORKERLOST;
            ok += k == 1;
        }
        ASSERT_EQ(1, lost);
        ASSERT_EQ(5, ok);
        mp_imap_free(it);
    }
    mp_pool_free(p);
}

/* SCENARIOS #202: the initializer runs in each worker with initargs,
 * which may hold a queue (a Process's argument): every task sees what
 * it set, and puts to the queue. */
TEST(initializer_with_queue)
{
    mp_queue *q;
    mp_pool_options o = { .initializer = &init_set_target };
    mp_pool *p;
    mp_result *r;
    long long got, sum = 0;
    const char *methods[] = { "fork", "spawn" };

    ASSERT_OK(mp_queue_new(&q, 0));
    o.initargs = (mp_arg[]){ mp_arg_int(7), mp_arg_queue(q) };
    o.n_initargs = 2;
    for (size_t m = 0; m < 2; m++) {
        ASSERT_OK(mp_get_context(&o.context, methods[m]));
        ASSERT_OK(mp_pool_new(&p, 2, &o));
        ASSERT_EQ(0, mp_pool_map(p, &read_init_target, ints, 8, 1, &r));
        for (size_t i = 0; i < 8; i++) {
            ASSERT_EQ(7, int_at(r, i));
            ASSERT_OK(mp_queue_get_i64(q, &got, 10));
            sum += got;
        }
        mp_result_free(r);
        mp_pool_free(p);
    }
    ASSERT_EQ(2 * 28, sum);
    ASSERT_EQ(1, mp_queue_empty(q));
    mp_queue_free(q);
}

/* SCENARIOS #192: imap keeps the items' order, imap_unordered yields in
 * the order they end.  Item 0 waits for a token the test puts: before
 * the imap, or once imap_unordered has yielded the two others (were it
 * to keep the items' order, it would wait for item 0: a timeout). */
static mp_queue *token;

MP_TARGET(ordered_by_token)
{
    long long x = mp_args_int(args, 0), t;

    if (x == 0)
        mp_check(mp_queue_get_i64(token, &t, 60));
    return mp_task_return(MP_ARG(x));
}

TEST(imap_order)
{
    mp_pool *p;
    mp_imap *it;
    const mp_arg *v;
    long long sum = 0;

    ASSERT_OK(mp_queue_new(&token, 0));
    ASSERT_OK(mp_event_new(&shared_event));
    p = pool_of("fork", 3, 0);
    ASSERT_OK(mp_queue_put_i64(token, 1));
    ASSERT_OK(mp_pool_imap(p, &ordered_by_token_target, ints, 3, 1, &it));
    for (long long i = 0; i < 3; i++) {
        ASSERT_EQ(1, mp_imap_next(it, 30, &v));
        ASSERT_EQ(i, v->u.i);
    }
    mp_imap_free(it);
    ASSERT_OK(mp_pool_imap_unordered(p, &ordered_by_token_target, ints, 3, 1,
                                     &it));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(1, mp_imap_next(it, 10, &v));
        ASSERT_TRUE(v->u.i != 0);
        sum += v->u.i;
    }
    ASSERT_EQ(1 + 2, sum);
    ASSERT_OK(mp_queue_put_i64(token, 1));
    ASSERT_EQ(1, mp_imap_next(it, 30, &v));
    ASSERT_EQ(0, v->u.i);
    ASSERT_EQ(0, mp_imap_next(it, 30, &v));
    mp_imap_free(it);
    /* next(timeout) on an item that has not come */
    ASSERT_OK(mp_pool_imap(p, &wait_event_target, ints, 1, 1, &it));
    ASSERT_EQ(MP_ERESULTTIMEOUT, mp_imap_next(it, 0.05, &v));
    ASSERT_TRUE(v == NULL);
    mp_imap_free(it); /* pending: allowed */
    mp_pool_free(p);
    mp_queue_free(token);
    mp_event_free(shared_event);
}

/* The pids of the pool's workers (the process's only children). */
static size_t worker_pids(pid_t *pids, size_t max)
{
    mp_process **kids;
    size_t n;

    ASSERT_OK(mp_active_children(&kids, &n));
    ASSERT_TRUE(n <= max);
    for (size_t i = 0; i < n; i++)
        ASSERT_EQ(1, mp_process_pid(kids[i], &pids[i]));
    mp_process_list_free(kids, n);
    return n;
}

/* SCENARIOS #198: terminate() while tasks run: the workers are stopped
 * and reaped (no process left: no child of ours at all), and the
 * pending results fail with MP_EPOOLTERMINATED instead of never
 * becoming ready; done ones keep their values. */
TEST(terminate_while_running)
{
    mp_pool *p = pool_of("fork", 2, 0);
    mp_result *done, *stuck[3];
    pid_t pids[2];
    siginfo_t si;

    ASSERT_EQ(0, mp_pool_apply(p, &square_target, MP_ARGS(3), &done));
    for (size_t i = 0; i < 3; i++)
        ASSERT_OK(mp_pool_apply_async(p, &sleep_forever_target, NULL, 0,
                                      NULL, &stuck[i]));
    ASSERT_EQ(2, worker_pids(pids, 2));
    ASSERT_EQ(MP_ERESULTTIMEOUT, mp_result_get(stuck[0], 0.05));
    ASSERT_OK(mp_pool_terminate(p));
    for (size_t i = 0; i < 3; i++) {
        ASSERT_EQ(1, mp_result_ready(stuck[i]));
        ASSERT_EQ(MP_EPOOLTERMINATED, mp_result_get(stuck[i], 0));
        mp_result_free(stuck[i]);
    }
    ASSERT_STREQ("RuntimeError", mp_exception_name(MP_EPOOLTERMINATED));
    ASSERT_EQ(9, int_at(done, 0));
    mp_result_free(done);
    /* No child at all, not even a zombie: every worker was reaped. */
    ASSERT_EQ(-1, waitid(P_ALL, 0, &si, WEXITED | WNOHANG));
    ASSERT_EQ(ECHILD, errno);
    for (size_t i = 0; i < 2; i++)
        ASSERT_EQ(-1, kill(pids[i], 0));
    ASSERT_OK(mp_pool_join(p));
    mp_pool_free(p);
}

/* close() then join() waits for the queued tasks, which all complete
 * (#199); free() of a closed pool joins it too. */
TEST(close_join_completes)
{
    mp_pool *p = pool_of("fork", 2, 0);
    mp_result *r;

    ASSERT_OK(mp_pool_map_async(p, &square_target, ints, 200, 1, NULL, &r));
    ASSERT_OK(mp_pool_close(p));
    ASSERT_OK(mp_pool_join(p));
    ASSERT_EQ(1, mp_result_ready(r));
    ASSERT_EQ(0, mp_result_get(r, 0));
    ASSERT_EQ(199 * 199, int_at(r, 199));
    mp_result_free(r);
    mp_pool_free(p);
}

/* `with Pool() as p:` terminates at the end of the block (#198). */
TEST(scoped_pool_terminates)
{
    mp_result *r;
    pid_t pids[2];

    {
        MP_POOL_SCOPED mp_pool *p = pool_of("fork", 2, 0);
        ASSERT_OK(mp_pool_apply_async(p, &sleep_forever_target, NULL, 0,
                                      NULL, &r));
        ASSERT_EQ(2, worker_pids(pids, 2));
    }
    ASSERT_EQ(MP_EPOOLTERMINATED, mp_result_get(r, 0));
    mp_result_free(r);
    for (size_t i = 0; i < 2; i++)
        ASSERT_EQ(-1, kill(pids[i], 0));
}

/* A fork child's copy of a pool is not a pool: its calls fail, and its
 * free releases the copy without touching the parent's workers. */
TEST(fork_child_copy)
{
    mp_pool *p = pool_of("fork", 2, 0);
    mp_result *r, *pending;
    pid_t pid;
    int status;

    ASSERT_OK(mp_pool_apply_async(p, &sleep_forever_target, NULL, 0, NULL,
                                  &pending));
    fflush(NULL);
    if ((pid = fork()) == 0) {
        int bad = mp_pool_apply_async(p, &square_target, MP_ARGS(1), NULL,
                                      &r) != MP_EPOOLNOTRUNNING ||
                  mp_pool_close(p) != MP_EPOOLNOTRUNNING ||
                  mp_pool_terminate(p) != MP_EPOOLNOTRUNNING ||
                  mp_result_get(pending, MP_FOREVER) != MP_EPOOLNOTRUNNING;
        mp_result_free(pending);
        mp_pool_free(p);
        _exit(bad);
    }
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_EQ(0, status);
    ASSERT_EQ(0, mp_pool_apply(p, &square_target, MP_ARGS(9), &r));
    ASSERT_EQ(81, int_at(r, 0));
    mp_result_free(r);
    mp_result_free(pending);
    mp_pool_free(p);
}

/* A target registered after the fork workers started is not theirs: the
 * task fails with MP_ENOTARGET (CPython's worker dies unpickling it). */
static int late_fn(const void *arg, size_t len)
{
    (void)arg;
    (void)len;
    return 0;
}

TEST(target_missing_in_worker)
{
    mp_pool *p = pool_of("fork", 1, 0);
    const mp_target late = { "late_registered", late_fn };
    mp_result *r;

    ASSERT_OK(mp_target_register("late_registered", late_fn));
    ASSERT_EQ(MP_ENOTARGET, mp_pool_apply(p, &late, NULL, 0, &r));
    mp_result_free(r);
    mp_pool_free(p);
}

/* A map whose tasks outgrow the task queue's ring: its batches of puts
 * fall back to a put that waits or grows, and every value comes back in
 * its place. */
TEST(map_larger_than_the_ring)
{
    enum { N = 20000 };
    static mp_arg items[N];
    mp_pool *p = pool_of("fork", 2, 0);
    mp_result *r;

    for (size_t i = 0; i < N; i++)
        items[i] = mp_arg_int((long long)i);
    ASSERT_EQ(0, mp_pool_map(p, &square_target, items, N, 1, &r));
    for (size_t i = 0; i < N; i++)
        ASSERT_EQ((long long)(i * i), int_at(r, i));
    mp_result_free(r);
    mp_pool_free(p);
}

/* A process that exits with a pool still running terminates it first,
 * as CPython's finalizer does: the exit does not wait on a worker that
 * the pool would have replaced, and leaves none. */
static mp_pool *exiting_pool;
static mp_result *exiting_results[2]; /* kept: no leak to report */

static void exit_with_pool(void *arg)
{
    (void)arg;
    exiting_pool = pool_of("fork", 2, 0);
    for (size_t i = 0; i < 2; i++)
        mp_pool_apply_async(exiting_pool, &sleep_forever_target, NULL, 0,
                            NULL, &exiting_results[i]);
    exit(0);
}

TEST(exit_terminates_pools)
{
    char out[16];

    ASSERT_EQ(0, check_output(exit_with_pool, NULL, out, sizeof(out)));
}

/* NULL where an object belongs. */
TEST(null_arguments)
{
    const mp_arg *v = (const mp_arg *)1;
    mp_pool *p = NULL;

    ASSERT_EQ(MP_EINVAL, mp_pool_processes(NULL));
    ASSERT_EQ(MP_EINVAL, mp_pool_repr(NULL, NULL, 0));
    ASSERT_EQ(MP_EINVAL, mp_result_get(NULL, 0));
    ASSERT_EQ(MP_EINVAL, mp_result_wait(NULL, 0));
    ASSERT_EQ(MP_EINVAL, mp_result_ready(NULL));
    ASSERT_EQ(MP_EINVAL, mp_result_successful(NULL));
    ASSERT_EQ(0, mp_result_len(NULL));
    ASSERT_TRUE(mp_result_value(NULL, 0) == NULL);
    ASSERT_TRUE(mp_result_free(NULL) == NULL);
    ASSERT_EQ(MP_EINVAL, mp_imap_next(NULL, 0, &v));
    ASSERT_TRUE(mp_imap_free(NULL) == NULL);
    mp_pool_cleanup(NULL);
    mp_pool_cleanup(&p);
    ASSERT_EQ(MP_EINVAL, mp_pool_imap(NULL, &square_target, ints, 1, 1,
                                      NULL));
}
