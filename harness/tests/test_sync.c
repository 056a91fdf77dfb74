/*
 * test_sync.c - Lock, RLock, Semaphore, BoundedSemaphore, Condition, Event
 * and Barrier (sync.c) as CPython's synchronize.py: results, errors and
 * their messages, timeouts, repr() in every state, the per-process count
 * across threads, processes and forks, mutual exclusion, and every object
 * handed to children under fork, spawn and forkserver.  Deaths (robust
 * locks, a Barrier's dead waiter) are in test_sync_death.c.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static const char *const methods[] = { "fork", "spawn", "forkserver" };

static void expect_repr_lock(mp_lock *l, const char *want)
{
    char buf[256];

    ASSERT_TRUE(mp_lock_repr(l, buf, sizeof(buf)) > 0);
    ASSERT_STREQ(want, buf);
}

static void expect_error(int err, const char *exc, const char *msg)
{
    ASSERT_STREQ(exc, mp_exception_name(err));
    ASSERT_STREQ(msg, mp_strerror(err));
}

/* A process of the given method running target with args. */
static mp_process *start(const char *method, const mp_target *t,
                         const mp_arg *v, size_t n)
{
    mp_process_options o = { 0 };
    mp_process *p;

    ASSERT_OK(mp_get_context(&o.context, method));
    ASSERT_OK(mp_process_create(&p, t, v, n, &o));
    ASSERT_OK(mp_process_start(p));
    return p;
}

static void join_ok(mp_process *p)
{
    int code = -1;

    ASSERT_OK(mp_process_join(p, 60));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    mp_process_free(p);
}

/* errors */

TEST(the_new_error_codes_carry_cpython_messages)
{
    expect_error(MP_ERELEASED, "ValueError",
                 "semaphore or lock released too many times");
    expect_error(MP_ENOTOWNER, "AssertionError",
                 "attempt to release recursive lock not owned by thread");
    expect_error(MP_ENOTOWNED, "AssertionError", "lock is not owned");
    expect_error(MP_EWAITNOTOWNED, "AssertionError",
                 "must acquire() condition before using wait()");
    expect_error(MP_EBROKENBARRIER, "threading.BrokenBarrierError", "");
    expect_error(MP_ESEMVALUE, "OSError", "[Errno 22] Invalid argument");
}

/* Lock */

TEST(lock_acquire_release_value_and_repr)
{
    mp_lock *l;

    ASSERT_OK(mp_lock_new(&l));
    expect_repr_lock(l, "<Lock(owner=None)>");
    ASSERT_EQ(1, mp_lock_get_value(l));
    ASSERT_EQ(0, mp_lock_is_mine(l));
    ASSERT_EQ(1, mp_lock_acquire(l, 1, MP_FOREVER));
    ASSERT_EQ(0, mp_lock_get_value(l));
    ASSERT_EQ(1, mp_lock_is_mine(l));
    ASSERT_EQ(1, mp_lock_count(l));
    expect_repr_lock(l, "<Lock(owner=MainProcess)>");
    /* Not reentrant: the holder waits for itself. */
    ASSERT_EQ(0, mp_lock_acquire(l, 0, 5));
    ASSERT_EQ(0, mp_lock_acquire(l, 1, -1));
    ASSERT_EQ(0, mp_lock_release(l));
    ASSERT_EQ(0, mp_lock_count(l));
    ASSERT_EQ(MP_ERELEASED, mp_lock_release(l));
    ASSERT_EQ(1, mp_lock_get_value(l));
    ASSERT_EQ(MP_EINVAL, mp_lock_acquire(NULL, 1, 0));
    ASSERT_TRUE(mp_lock_free(l) == NULL);
    ASSERT_TRUE(mp_lock_free(NULL) == NULL);
}

TEST(a_timed_acquire_of_a_held_lock_returns_0_after_the_timeout)
{
    mp_lock *l;
    double t0;

    ASSERT_OK(mp_lock_new(&l));
    ASSERT_EQ(1, mp_lock_acquire(l, 1, MP_FOREVER));
    t0 = check_now();
    ASSERT_EQ(0, mp_lock_acquire(l, 1, 0.2));
    ASSERT_WITHIN(0.19, 1.0, check_now() - t0);
    /* block = 0 ignores the timeout; a negative timeout is 0. */
    t0 = check_now();
    ASSERT_EQ(0, mp_lock_acquire(l, 0, 10));
    ASSERT_EQ(0, mp_lock_acquire(l, 1, -5));
    ASSERT_WITHIN(0, 0.1, check_now() - t0);
    ASSERT_EQ(0, mp_lock_release(l));
    ASSERT_EQ(1, mp_lock_acquire(l, 0, 0));
    ASSERT_EQ(0, mp_lock_release(l));
    mp_lock_free(l);
}

/* A thread asleep in acquire() is woken by the release, not by its
 * timeout: the futex protocol loses no wake-up. */
struct sleeper {
    mp_lock *l;
    struct check_sleeper me;
    int result;
    double took;
};

static void *acquire_asleep(void *arg)
{
    struct sleeper *s = arg;
    double t0 = check_now();

    check_announce(&s->me);
    s->result = mp_lock_acquire(s->l, 1, 30);
    s->took = check_now() - t0;
    return NULL;
}

TEST(a_sleeping_acquirer_is_woken_by_the_release)
{
    for (int kind = 0; kind < 3; kind++) {
        struct sleeper s = { 0 };
        pthread_t th;

        ASSERT_OK(kind == 0   ? mp_lock_new(&s.l)
                  : kind == 1 ? mp_semaphore_new(&s.l, 1)
                              : mp_lock_new_robust(&s.l));
        ASSERT_EQ(1, mp_lock_acquire(s.l, 1, MP_FOREVER));
        check_sleeper_init(&s.me);
        ASSERT_EQ(0, pthread_create(&th, NULL, acquire_asleep, &s));
        check_await_asleep(&s.me);
        ASSERT_EQ(0, mp_lock_release(s.l));
        ASSERT_EQ(0, pthread_join(th, NULL));
        ASSERT_EQ(1, s.result);
        ASSERT_WITHIN(0, 5.0, s.took);
        ASSERT_EQ(0, mp_lock_get_value(s.l));
        mp_lock_free(s.l);
        check_sleeper_destroy(&s.me);
    }
}

/* RLock */

struct two {
    mp_lock *l;
    int result;
    char repr[256];
};

static void *release_in_thread(void *arg)
{
    struct two *t = arg;

    t->result = mp_lock_release(t->l);
    return NULL;
}

TEST(rlock_counts_levels_and_refuses_other_threads)
{
    struct two t = { 0 };
    pthread_t th;
    mp_lock *l;

    ASSERT_OK(mp_rlock_new(&l));
    expect_repr_lock(l, "<RLock(None, 0)>");
    ASSERT_EQ(MP_ENOTOWNER, mp_lock_release(l));
    ASSERT_EQ(1, mp_lock_acquire(l, 1, MP_FOREVER));
    ASSERT_EQ(1, mp_lock_acquire(l, 0, 0));
    ASSERT_EQ(1, mp_lock_acquire(l, 1, 1));
    ASSERT_EQ(3, mp_lock_count(l));
    ASSERT_EQ(0, mp_lock_get_value(l));
    expect_repr_lock(l, "<RLock(MainProcess, 3)>");
    t.l = l;
    ASSERT_EQ(0, pthread_create(&th, NULL, release_in_thread, &t));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(MP_ENOTOWNER, t.result);
    ASSERT_EQ(0, mp_lock_release(l));
    ASSERT_EQ(0, mp_lock_release(l));
    ASSERT_EQ(0, mp_lock_get_value(l));
    ASSERT_EQ(0, mp_lock_release(l));
    ASSERT_EQ(1, mp_lock_get_value(l));
    ASSERT_EQ(MP_ENOTOWNER, mp_lock_release(l));
    mp_lock_free(l);
}

/* A Lock has no owner: another thread may release it, as CPython's. */
TEST(a_lock_is_released_by_another_thread)
{
    struct two t = { 0 };
    pthread_t th;
    mp_lock *l;

    ASSERT_OK(mp_lock_new(&l));
    ASSERT_EQ(1, mp_lock_acquire(l, 1, MP_FOREVER));
    t.l = l;
    ASSERT_EQ(0, pthread_create(&th, NULL, release_in_thread, &t));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(0, t.result);
    ASSERT_EQ(1, mp_lock_get_value(l));
    ASSERT_EQ(0, mp_lock_count(l));
    expect_repr_lock(l, "<Lock(owner=None)>");
    mp_lock_free(l);
}

/* A Lock handed to and fro between threads, one acquiring as the other
 * releases (the release of a held Lock, from any thread, is valid), and
 * a release that races another and fails: this process's count is its
 * acquires less its successful releases all the same, as CPython's. */
#define HANDOFFS 200000

static void *acquire_many(void *arg)
{
    for (int i = 0; i < HANDOFFS; i++)
        if (mp_lock_acquire(arg, 1, MP_FOREVER) != 1)
            return (void *)1;
    return NULL;
}

static void *release_when_held(void *arg)
{
    for (int i = 0; i < HANDOFFS; i++) {
        while (mp_lock_get_value(arg) != 0)
            sched_yield();
        if (mp_lock_release(arg) != 0)
            return (void *)1;
    }
    return NULL;
}

static void *release_once(void *arg)
{
    return (void *)(intptr_t)mp_lock_release(arg);
}

TEST(a_lock_handed_between_threads_keeps_its_count)
{
    pthread_t th[2];
    void *res[2];
    mp_lock *l;

    ASSERT_OK(mp_lock_new(&l));
    ASSERT_EQ(1, mp_lock_acquire(l, 1, MP_FOREVER));
    ASSERT_EQ(0, pthread_create(&th[0], NULL, acquire_many, l));
    ASSERT_EQ(0, pthread_create(&th[1], NULL, release_when_held, l));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(0, pthread_join(th[i], &res[i]));
        ASSERT_TRUE(res[i] == NULL);
    }
    ASSERT_EQ(0, mp_lock_get_value(l));
    ASSERT_EQ(1, mp_lock_count(l));
    ASSERT_EQ(0, mp_lock_release(l));
    ASSERT_EQ(0, mp_lock_count(l));

    /* Two releases of a held Lock at once: one fails, and the count is
     * what the other made it. */
    for (int i = 0; i < 5000; i++) {
        ASSERT_EQ(1, mp_lock_acquire(l, 1, MP_FOREVER));
        for (int k = 0; k < 2; k++)
            ASSERT_EQ(0, pthread_create(&th[k], NULL, release_once, l));
        for (int k = 0; k < 2; k++)
            ASSERT_EQ(0, pthread_join(th[k], &res[k]));
        ASSERT_EQ(MP_ERELEASED, (int)(intptr_t)res[0] +
                                    (int)(intptr_t)res[1]);
        ASSERT_EQ(0, mp_lock_count(l));
    }
    mp_lock_free(l);
}

/* Semaphore, BoundedSemaphore */

TEST(semaphores_count_and_bound)
{
    mp_lock *s, *b;
    char buf[128];

    ASSERT_EQ(MP_ESEMVALUE, mp_semaphore_new(&s, -1));
    ASSERT_EQ(MP_ESEMVALUE, mp_bounded_semaphore_new(&s, -3));
    ASSERT_OK(mp_semaphore_new(&s, 2));
    expect_repr_lock(s, "<Semaphore(value=2)>");
    ASSERT_EQ(1, mp_lock_acquire(s, 1, MP_FOREVER));
    ASSERT_EQ(1, mp_lock_acquire(s, 1, MP_FOREVER));
    ASSERT_EQ(0, mp_lock_acquire(s, 0, 0));
    ASSERT_EQ(2, mp_lock_count(s));
    /* A Semaphore is "mine" as SemLock counts it: acquired here last. */
    ASSERT_EQ(1, mp_lock_is_mine(s));
    for (int i = 0; i < 5; i++)
        ASSERT_EQ(0, mp_lock_release(s));
    ASSERT_EQ(5, mp_lock_get_value(s));
    ASSERT_EQ(-3, mp_lock_count(s)); /* CPython's count goes below 0 too */
    mp_lock_free(s);

    ASSERT_OK(mp_semaphore_new(&s, INT_MAX));
    ASSERT_EQ(MP_ERELEASED, mp_lock_release(s));
    mp_lock_free(s);

    ASSERT_OK(mp_bounded_semaphore_new(&b, 2));
    ASSERT_TRUE(mp_lock_repr(b, buf, sizeof(buf)) > 0);
    ASSERT_STREQ("<BoundedSemaphore(value=2, maxvalue=2)>", buf);
    ASSERT_EQ(MP_ERELEASED, mp_lock_release(b));
    ASSERT_EQ(1, mp_lock_acquire(b, 1, 0));
    expect_repr_lock(b, "<BoundedSemaphore(value=1, maxvalue=2)>");
    ASSERT_EQ(0, mp_lock_release(b));
    ASSERT_EQ(MP_ERELEASED, mp_lock_release(b));
    mp_lock_free(b);

    ASSERT_OK(mp_bounded_semaphore_new(&b, 0));
    ASSERT_EQ(MP_ERELEASED, mp_lock_release(b));
    ASSERT_EQ(0, mp_lock_acquire(b, 1, 0.01));
    mp_lock_free(b);
}

/* Many threads releasing a BoundedSemaphore at once never carry it past
 * its maximum (CPython checks, then posts: it can). */
static void *release_all(void *arg)
{
    mp_lock *b = arg;
    long ok = 0;

    for (int i = 0; i < 2000; i++) {
        int r = mp_lock_release(b);
        ASSERT_TRUE(r == 0 || r == MP_ERELEASED);
        if (r == 0) {
            ok++;
            ASSERT_EQ(1, mp_lock_acquire(b, 1, MP_FOREVER));
        }
    }
    return (void *)ok;
}

TEST(racing_releases_stay_within_a_bounded_semaphore)
{
    pthread_t th[4];
    mp_lock *b;

    ASSERT_OK(mp_bounded_semaphore_new(&b, 3));
    ASSERT_EQ(1, mp_lock_acquire(b, 1, 0));
    ASSERT_EQ(1, mp_lock_acquire(b, 1, 0));
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, release_all, b));
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_join(th[i], NULL));
    ASSERT_EQ(1, mp_lock_get_value(b));
    mp_lock_free(b);
}

/* repr from another thread */

struct holder {
    mp_lock *l;
    mp_lock *go, *done; /* the holder holds l until done is released */
    char repr[256];
};

static void *hold_in_thread(void *arg)
{
    struct holder *h = arg;

    ASSERT_EQ(1, mp_lock_acquire(h->l, 1, MP_FOREVER));
    (void)mp_lock_acquire(h->l, 0, 0); /* an RLock: a second level */
    mp_lock_repr(h->l, h->repr, sizeof(h->repr));
    ASSERT_EQ(0, mp_lock_release(h->go));
    ASSERT_EQ(1, mp_lock_acquire(h->done, 1, MP_FOREVER));
    while (mp_lock_is_mine(h->l) == 1)
        ASSERT_EQ(0, mp_lock_release(h->l));
    return NULL;
}

static void held_by_thread(mp_lock *l, const char *mine_prefix,
                           const char *other)
{
    struct holder h = { .l = l };
    pthread_t th;

    ASSERT_OK(mp_semaphore_new(&h.go, 0));
    ASSERT_OK(mp_semaphore_new(&h.done, 0));
    ASSERT_EQ(0, pthread_create(&th, NULL, hold_in_thread, &h));
    ASSERT_EQ(1, mp_lock_acquire(h.go, 1, 30));
    expect_repr_lock(l, other);
    ASSERT_EQ(0, mp_lock_is_mine(l));
    ASSERT_EQ(0, mp_lock_release(h.done));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_TRUE(strncmp(h.repr, mine_prefix, strlen(mine_prefix)) == 0);
    mp_lock_free(h.go);
    mp_lock_free(h.done);
}

TEST(repr_names_the_holding_thread_and_some_other_thread)
{
    mp_lock *l, *r;

    ASSERT_OK(mp_lock_new(&l));
    held_by_thread(l, "<Lock(owner=MainProcess|Thread-",
                   "<Lock(owner=SomeOtherThread)>");
    mp_lock_free(l);
    ASSERT_OK(mp_rlock_new(&r));
    held_by_thread(r, "<RLock(MainProcess|Thread-",
                   "<RLock(SomeOtherThread, nonzero)>");
    expect_repr_lock(r, "<RLock(None, 0)>");
    mp_lock_free(r);
}

static void *named_repr(void *arg)
{
    struct holder *h = arg;

    pthread_setname_np(pthread_self(), "worker-7");
    ASSERT_EQ(1, mp_lock_acquire(h->l, 1, MP_FOREVER));
    mp_lock_repr(h->l, h->repr, sizeof(h->repr));
    ASSERT_EQ(0, mp_lock_release(h->l));
    return NULL;
}

TEST(repr_uses_a_thread_name_given_with_pthread_setname)
{
    struct holder h = { 0 };
    pthread_t th;

    ASSERT_OK(mp_lock_new(&h.l));
    ASSERT_EQ(0, pthread_create(&th, NULL, named_repr, &h));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_STREQ("<Lock(owner=MainProcess|worker-7)>", h.repr);
    mp_lock_free(h.l);
}

/* repr and the count in other processes */

MP_TARGET(hold_until_told)
{
    mp_lock *l = mp_args_lock(args, 0), *r = mp_args_lock(args, 1);
    mp_event *held = mp_args_event(args, 2), *done = mp_args_event(args, 3);

    /* What the parent held reaches a child with a count of 0. */
    if (mp_lock_count(l) != 0 || mp_lock_is_mine(r) != 0)
        return 3;
    mp_check(mp_lock_acquire(l, 1, MP_FOREVER));
    mp_check(mp_lock_acquire(r, 1, MP_FOREVER));
    mp_check(mp_lock_acquire(r, 1, MP_FOREVER));
    mp_check(mp_event_set(held));
    if (mp_event_wait(done, 60) != 1)
        return 4;
    mp_check(mp_lock_release(l));
    mp_check(mp_lock_release(r));
    mp_check(mp_lock_release(r));
    return 0;
}

TEST(repr_says_some_other_process_for_a_holder_elsewhere)
{
    for (int m = 0; m < 3; m++) {
        mp_lock *l, *r;
        mp_event *held, *done;
        mp_process *p;

        ASSERT_OK(mp_lock_new(&l));
        ASSERT_OK(mp_rlock_new(&r));
        ASSERT_OK(mp_event_new(&held));
        ASSERT_OK(mp_event_new(&done));
        p = start(methods[m], &hold_until_told_target,
                  MP_ARGS(l, r, held, done));
        ASSERT_EQ(1, mp_event_wait(held, 60));
        expect_repr_lock(l, "<Lock(owner=SomeOtherProcess)>");
        expect_repr_lock(r, "<RLock(SomeOtherProcess, nonzero)>");
        ASSERT_EQ(0, mp_lock_acquire(l, 1, 0.05));
        ASSERT_EQ(MP_ENOTOWNER, mp_lock_release(r));
        ASSERT_OK(mp_event_set(done));
        join_ok(p);
        expect_repr_lock(l, "<Lock(owner=None)>");
        expect_repr_lock(r, "<RLock(None, 0)>");
        mp_lock_free(l);
        mp_lock_free(r);
        mp_event_free(held);
        mp_event_free(done);
    }
}

/* A fork() of the program's own: the child's count starts at 0, as
 * CPython's _after_fork() sets it. */
TEST(a_fork_child_starts_with_a_count_of_0)
{
    mp_lock *r;
    pid_t pid;
    int status;

    ASSERT_OK(mp_rlock_new(&r));
    ASSERT_EQ(1, mp_lock_acquire(r, 1, MP_FOREVER));
    ASSERT_EQ(1, mp_lock_acquire(r, 1, MP_FOREVER));
    fflush(stdout);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        char buf[128];
        int ok = mp_lock_count(r) == 0 && mp_lock_is_mine(r) == 0 &&
                 mp_lock_release(r) == MP_ENOTOWNER &&
                 mp_lock_acquire(r, 1, 0.05) == 0 &&
                 mp_lock_repr(r, buf, sizeof(buf)) > 0 &&
                 strcmp(buf, "<RLock(SomeOtherProcess, nonzero)>") == 0;
        _exit(ok ? 0 : 1);
    }
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    ASSERT_EQ(2, mp_lock_count(r));
    ASSERT_EQ(0, mp_lock_release(r));
    ASSERT_EQ(0, mp_lock_release(r));
    mp_lock_free(r);
}

/* mutual exclusion */

#define ROUNDS 5000

/* A counter incremented without atomics, with a yield of the CPU between
 * the read and the write: two at once lose updates (thousands of them,
 * without the lock), so only the lock keeps it exact. */
static void bump(volatile long *counter)
{
    long v = *counter;

    sched_yield();
    *counter = v + 1;
}

static volatile long *shared_counter(void)
{
    void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ASSERT_TRUE(p != MAP_FAILED);
    return p;
}

static volatile long *counter_for_children;

MP_TARGET(bump_under_lock)
{
    mp_lock *l = mp_args_lock(args, 0);

    /* All at once: one child alone would finish before the next starts. */
    if (mp_event_wait(mp_args_event(args, 1), 60) != 1)
        return 12;
    for (int i = 0; i < ROUNDS; i++) {
        int r = mp_lock_acquire(l, 1, MP_FOREVER);
        if (r != 1)
            return 10;
        bump(counter_for_children);
        if (mp_lock_release(l) < 0)
            return 11;
    }
    return 0;
}

static void exclusion_between_processes(mp_lock *l)
{
    mp_process *p[3];
    mp_event *go;

    counter_for_children = shared_counter();
    ASSERT_OK(mp_event_new(&go));
    for (int i = 0; i < 3; i++)
        p[i] = start("fork", &bump_under_lock_target, MP_ARGS(l, go));
    ASSERT_OK(mp_event_set(go));
    mp_event_free(go);
    for (int i = 0; i < 3; i++)
        join_ok(p[i]);
    ASSERT_EQ(3 * ROUNDS, *counter_for_children);
    munmap((void *)counter_for_children, 4096);
}

TEST(a_lock_excludes_between_processes)
{
    mp_lock *l;

    ASSERT_OK(mp_lock_new(&l));
    exclusion_between_processes(l);
    mp_lock_free(l);
    ASSERT_OK(mp_rlock_new(&l));
    exclusion_between_processes(l);
    mp_lock_free(l);
    ASSERT_OK(mp_semaphore_new(&l, 1));
    exclusion_between_processes(l);
    mp_lock_free(l);
    ASSERT_OK(mp_lock_new_robust(&l));
    exclusion_between_processes(l);
    mp_lock_free(l);
    ASSERT_OK(mp_rlock_new_robust(&l));
    exclusion_between_processes(l);
    mp_lock_free(l);
}

struct bumper {
    mp_lock *l;
    volatile long *counter;
};

static void *bump_thread(void *arg)
{
    struct bumper *b = arg;

    for (int i = 0; i < ROUNDS; i++) {
        ASSERT_EQ(1, mp_lock_acquire(b->l, 1, MP_FOREVER));
        ASSERT_EQ(1, mp_lock_is_mine(b->l));
        bump(b->counter);
        ASSERT_EQ(0, mp_lock_release(b->l));
    }
    return NULL;
}

static void exclusion_between_threads(mp_lock *l)
{
    volatile long counter = 0;
    struct bumper b = { l, &counter };
    pthread_t th[4];

    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, bump_thread, &b));
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_join(th[i], NULL));
    ASSERT_EQ(4 * ROUNDS, counter);
    /* Every level taken was given back: the per-process count too. */
    ASSERT_EQ(0, mp_lock_count(l));
}

TEST(a_lock_excludes_between_threads)
{
    mp_lock *l;

    ASSERT_OK(mp_lock_new(&l));
    exclusion_between_threads(l);
    mp_lock_free(l);
    ASSERT_OK(mp_rlock_new(&l));
    exclusion_between_threads(l);
    mp_lock_free(l);
    ASSERT_OK(mp_semaphore_new(&l, 1));
    exclusion_between_threads(l);
    mp_lock_free(l);
    ASSERT_OK(mp_lock_new_robust(&l));
    exclusion_between_threads(l);
    mp_lock_free(l);
}

/* Condition */

static int pred_value;
static int pred_calls;

static int predicate(void *arg)
{
    pred_calls++;
    return arg != NULL ? *(int *)arg : 0;
}

TEST(condition_checks_its_lock_and_times_out)
{
    mp_cond *c;
    mp_lock *l;
    char buf[256];
    double t0;

    ASSERT_OK(mp_cond_new(&c, NULL));
    ASSERT_TRUE(mp_cond_repr(c, buf, sizeof(buf)) > 0);
    ASSERT_STREQ("<Condition(<RLock(None, 0)>, 0)>", buf);
    ASSERT_EQ(MP_EWAITNOTOWNED, mp_cond_wait(c, 0));
    ASSERT_EQ(MP_ENOTOWNED, mp_cond_notify(c, 1));
    ASSERT_EQ(MP_ENOTOWNED, mp_cond_notify_all(c));
    ASSERT_EQ(1, mp_cond_acquire(c, 1, MP_FOREVER));
    ASSERT_EQ(1, mp_cond_acquire(c, 1, MP_FOREVER));
    ASSERT_TRUE(mp_cond_repr(c, buf, sizeof(buf)) > 0);
    ASSERT_STREQ("<Condition(<RLock(MainProcess, 2)>, 0)>", buf);
    t0 = check_now();
    ASSERT_EQ(0, mp_cond_wait(c, 0.2));
    ASSERT_WITHIN(0.19, 1.0, check_now() - t0);
    /* Both levels are back. */
    ASSERT_EQ(2, mp_lock_count(mp_cond_lock(c)));
    ASSERT_EQ(0, mp_cond_wait(c, -1));
    ASSERT_OK(mp_cond_notify(c, 1)); /* nobody waits */
    ASSERT_OK(mp_cond_notify(c, 0));
    /* wait_for(): the predicate's value, its last one after a timeout. */
    pred_value = 7;
    pred_calls = 0;
    ASSERT_EQ(7, mp_cond_wait_for(c, predicate, &pred_value, 0.2));
    ASSERT_EQ(1, pred_calls);
    pred_calls = 0;
    t0 = check_now();
    ASSERT_EQ(0, mp_cond_wait_for(c, predicate, NULL, 0.2));
    ASSERT_WITHIN(0.19, 1.0, check_now() - t0);
    ASSERT_TRUE(pred_calls >= 2);
    ASSERT_EQ(0, mp_cond_wait_for(c, predicate, NULL, -1));
    ASSERT_OK(mp_cond_release(c));
    ASSERT_OK(mp_cond_release(c));
    ASSERT_EQ(MP_ENOTOWNER, mp_cond_release(c));
    /* wait_for() with a true predicate never needs the lock, as CPython's;
     * a false one reaches wait(). */
    pred_value = 3;
    ASSERT_EQ(3, mp_cond_wait_for(c, predicate, &pred_value, 1));
    ASSERT_EQ(MP_EWAITNOTOWNED, mp_cond_wait_for(c, predicate, NULL, 1));
    mp_cond_free(c);

    ASSERT_OK(mp_lock_new(&l));
    ASSERT_OK(mp_cond_new(&c, l));
    mp_lock_free(l); /* the condition keeps its own reference */
    l = mp_cond_lock(c);
    ASSERT_TRUE(mp_cond_repr(c, buf, sizeof(buf)) > 0);
    ASSERT_STREQ("<Condition(<Lock(owner=None)>, 0)>", buf);
    ASSERT_EQ(1, mp_lock_acquire(l, 1, 1));
    ASSERT_EQ(0, mp_cond_wait(c, 0.01));
    ASSERT_EQ(0, mp_lock_get_value(l));
    ASSERT_OK(mp_cond_release(c));
    mp_cond_free(c);
}

/* A NaN timeout is CPython's OSError only where it would make the call
 * wait: a free lock is taken, block = 0 ignores it, an RLock's holder
 * goes up a level, a Condition's owner check and a set Event answer
 * first. */
static int always(void *arg)
{
    (void)arg;
    return 5;
}

TEST(a_nan_timeout_fails_only_where_cpython_would_wait)
{
    const double nan = __builtin_nan("");
    mp_lock *l;
    mp_cond *c;
    mp_event *e;

    for (int robust = 0; robust < 2; robust++) {
        ASSERT_OK(robust ? mp_lock_new_robust(&l) : mp_lock_new(&l));
        ASSERT_EQ(1, mp_lock_acquire(l, 1, nan));
        ASSERT_EQ(0, mp_lock_acquire(l, 0, nan));
        ASSERT_EQ(MP_EINVAL, mp_lock_acquire(l, 1, nan));
        ASSERT_EQ(0, mp_lock_release(l));
        mp_lock_free(l);
        ASSERT_OK(robust ? mp_rlock_new_robust(&l) : mp_rlock_new(&l));
        ASSERT_EQ(1, mp_lock_acquire(l, 0, nan));
        ASSERT_EQ(1, mp_lock_acquire(l, 1, nan));
        ASSERT_EQ(2, mp_lock_count(l));
        ASSERT_EQ(0, mp_lock_release(l));
        ASSERT_EQ(0, mp_lock_release(l));
        mp_lock_free(l);
    }

    ASSERT_OK(mp_cond_new(&c, NULL));
    ASSERT_EQ(MP_EWAITNOTOWNED, mp_cond_wait(c, nan));
    ASSERT_EQ(5, mp_cond_wait_for(c, always, NULL, nan));
    ASSERT_EQ(MP_EWAITNOTOWNED, mp_cond_wait_for(c, predicate, NULL, nan));
    ASSERT_EQ(1, mp_cond_acquire(c, 1, MP_FOREVER));
    ASSERT_EQ(MP_EINVAL, mp_cond_wait(c, nan));
    ASSERT_EQ(MP_EINVAL, mp_cond_wait_for(c, predicate, NULL, nan));
    ASSERT_EQ(1, mp_lock_count(mp_cond_lock(c)));
    ASSERT_OK(mp_cond_release(c));
    mp_cond_free(c);

    ASSERT_OK(mp_event_new(&e));
    ASSERT_EQ(MP_EINVAL, mp_event_wait(e, nan));
    ASSERT_OK(mp_event_set(e));
    ASSERT_EQ(1, mp_event_wait(e, nan));
    mp_event_free(e);
}

/* notify(n) wakes exactly n of several sleeping processes, and returns
 * once they woke; repr counts the rest. */
MP_TARGET(cond_sleeper)
{
    mp_cond *c = mp_args_cond(args, 0);
    mp_queue *q = mp_args_queue(args, 1);
    int r;

    mp_check(mp_cond_acquire(c, 1, MP_FOREVER));
    r = mp_cond_wait(c, 60);
    mp_check(mp_cond_release(c));
    return mp_queue_put_i64(q, r);
}

static int waiters_of(mp_cond *c)
{
    char buf[256], *comma;

    ASSERT_TRUE(mp_cond_repr(c, buf, sizeof(buf)) > 0);
    comma = strrchr(buf, ',');
    ASSERT_TRUE(comma != NULL);
    return atoi(comma + 1);
}

static void wait_for_waiters(mp_cond *c, int n)
{
    double end = check_now() + 30;

    /* repr counts a sleeper once it has said so, under the lock; a short
     * pause between looks (no event says "asleep"). */
    while (waiters_of(c) != n) {
        ASSERT_TRUE(check_now() < end);
        usleep(2000);
    }
}

TEST(notify_n_wakes_exactly_n_sleeping_processes)
{
    mp_process *p[4];
    mp_queue *q;
    mp_cond *c;
    long long v;

    ASSERT_OK(mp_cond_new(&c, NULL));
    ASSERT_OK(mp_queue_new(&q, 0));
    for (int i = 0; i < 4; i++)
        p[i] = start(methods[i % 3], &cond_sleeper_target, MP_ARGS(c, q));
    wait_for_waiters(c, 4);
    ASSERT_EQ(1, mp_cond_acquire(c, 1, MP_FOREVER));
    ASSERT_OK(mp_cond_notify(c, 2));
    /* notify() returned: both woke (they wait for the lock now). */
    ASSERT_EQ(2, waiters_of(c));
    ASSERT_OK(mp_cond_release(c));
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(mp_queue_get_i64(q, &v, 30));
        ASSERT_EQ(1, v);
    }
    ASSERT_EQ(MP_EEMPTY, mp_queue_get_i64(q, &v, 0.2));
    ASSERT_EQ(1, mp_cond_acquire(c, 1, MP_FOREVER));
    ASSERT_OK(mp_cond_notify_all(c));
    ASSERT_EQ(0, waiters_of(c));
    ASSERT_OK(mp_cond_release(c));
    for (int i = 0; i < 2; i++) {
        ASSERT_OK(mp_queue_get_i64(q, &v, 30));
        ASSERT_EQ(1, v);
    }
    for (int i = 0; i < 4; i++)
        join_ok(p[i]);
    mp_queue_free(q);
    mp_cond_free(c);
}

/* Threads, with a lock of the caller's: a waiter that timed out is not
 * counted by the next notify. */
struct cthread {
    mp_cond *c;
    double timeout;
    int result;
};

static void *cond_wait_thread(void *arg)
{
    struct cthread *t = arg;

    ASSERT_EQ(1, mp_cond_acquire(t->c, 1, MP_FOREVER));
    t->result = mp_cond_wait(t->c, t->timeout);
    ASSERT_OK(mp_cond_release(t->c));
    return NULL;
}

TEST(notify_skips_a_waiter_that_timed_out)
{
    struct cthread t[3];
    pthread_t th[3];
    mp_lock *l;
    mp_cond *c;

    ASSERT_OK(mp_lock_new(&l));
    ASSERT_OK(mp_cond_new(&c, l));
    for (int i = 0; i < 3; i++) {
        t[i] = (struct cthread){ c, i == 0 ? 0.05 : 60, -1 };
        ASSERT_EQ(0, pthread_create(&th[i], NULL, cond_wait_thread, &t[i]));
    }
    ASSERT_EQ(0, pthread_join(th[0], NULL));
    ASSERT_EQ(0, t[0].result);
    wait_for_waiters(c, 2);
    ASSERT_EQ(1, mp_lock_acquire(l, 1, MP_FOREVER));
    ASSERT_OK(mp_cond_notify(c, 1));
    ASSERT_EQ(1, waiters_of(c));
    ASSERT_OK(mp_cond_notify(c, 1));
    ASSERT_EQ(0, waiters_of(c));
    ASSERT_OK(mp_lock_release(l));
    for (int i = 1; i < 3; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_EQ(1, t[i].result);
    }
    mp_cond_free(c);
    mp_lock_free(l);
}

/* Event */

TEST(event_set_clear_wait_and_repr)
{
    mp_event *e;
    char buf[128], want[128];
    double t0;

    ASSERT_OK(mp_event_new(&e));
    ASSERT_EQ(0, mp_event_is_set(e));
    snprintf(want, sizeof(want), "<Event at %p unset>", (void *)e);
    ASSERT_TRUE(mp_event_repr(e, buf, sizeof(buf)) > 0);
    ASSERT_STREQ(want, buf);
    t0 = check_now();
    ASSERT_EQ(0, mp_event_wait(e, 0.2));
    ASSERT_WITHIN(0.19, 1.0, check_now() - t0);
    ASSERT_EQ(0, mp_event_wait(e, 0));
    ASSERT_EQ(0, mp_event_wait(e, -1));
    ASSERT_OK(mp_event_set(e));
    ASSERT_OK(mp_event_set(e));
    ASSERT_EQ(1, mp_event_is_set(e));
    ASSERT_EQ(1, mp_event_wait(e, 0));
    ASSERT_EQ(1, mp_event_wait(e, MP_FOREVER));
    snprintf(want, sizeof(want), "<Event at %p set>", (void *)e);
    ASSERT_TRUE(mp_event_repr(e, buf, sizeof(buf)) > 0);
    ASSERT_STREQ(want, buf);
    ASSERT_OK(mp_event_clear(e));
    ASSERT_EQ(0, mp_event_is_set(e));
    ASSERT_EQ(0, mp_event_wait(e, 0.01));
    mp_event_free(e);
}

MP_TARGET(event_waiter)
{
    mp_event *e = mp_args_event(args, 0);
    mp_queue *q = mp_args_queue(args, 1);

    mp_check(mp_queue_put_i64(q, -1)); /* about to wait */
    return mp_queue_put_i64(q, mp_event_wait(e, 60));
}

TEST(event_set_wakes_every_waiting_process)
{
    mp_process *p[6];
    mp_queue *q;
    mp_event *e;
    long long v;

    ASSERT_OK(mp_event_new(&e));
    ASSERT_OK(mp_queue_new(&q, 0));
    for (int i = 0; i < 6; i++)
        p[i] = start(methods[i % 3], &event_waiter_target, MP_ARGS(e, q));
    for (int i = 0; i < 6; i++) {
        ASSERT_OK(mp_queue_get_i64(q, &v, 30));
        ASSERT_EQ(-1, v);
    }
    ASSERT_OK(mp_event_set(e));
    for (int i = 0; i < 6; i++) {
        ASSERT_OK(mp_queue_get_i64(q, &v, 30));
        ASSERT_EQ(1, v);
    }
    for (int i = 0; i < 6; i++)
        join_ok(p[i]);
    mp_queue_free(q);
    mp_event_free(e);
}

/* More sleepers than an Event once had room for: every one is woken. */
struct ewaiter {
    mp_event *e;
    struct check_sleeper me;
    int result;
};

static void *event_thread(void *arg)
{
    struct ewaiter *w = arg;

    check_announce(&w->me);
    w->result = mp_event_wait(w->e, 30);
    return NULL;
}

#define MANY_SLEEPERS 200

TEST(event_set_wakes_every_waiting_thread)
{
    static struct ewaiter w[MANY_SLEEPERS];
    static pthread_t th[MANY_SLEEPERS];
    mp_event *e;
    double t0;

    ASSERT_OK(mp_event_new(&e));
    for (int i = 0; i < MANY_SLEEPERS; i++) {
        w[i] = (struct ewaiter){ .e = e, .result = 99 };
        check_sleeper_init(&w[i].me);
        ASSERT_EQ(0, pthread_create(&th[i], NULL, event_thread, &w[i]));
    }
    usleep(100000); /* most asleep: the others find the flag up */
    t0 = check_now();
    ASSERT_OK(mp_event_set(e));
    for (int i = 0; i < MANY_SLEEPERS; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_EQ(1, w[i].result);
        check_sleeper_destroy(&w[i].me);
    }
    ASSERT_WITHIN(0, 10, check_now() - t0);
    mp_event_free(e);
}

/* A set() and a clear() while a waiter sleeps: the waiter saw the event
 * set during its wait, and returns 1 at once, not at its timeout. */
TEST(a_set_and_clear_during_a_wait_wake_it_with_1)
{
    struct ewaiter w;
    pthread_t th;
    mp_event *e;
    double t0;

    ASSERT_OK(mp_event_new(&e));
    for (int i = 0; i < 20; i++) {
        w = (struct ewaiter){ .e = e, .result = 99 };
        check_sleeper_init(&w.me);
        ASSERT_EQ(0, pthread_create(&th, NULL, event_thread, &w));
        check_await_asleep(&w.me);
        t0 = check_now();
        ASSERT_OK(mp_event_set(e));
        ASSERT_OK(mp_event_clear(e));
        ASSERT_EQ(0, pthread_join(th, NULL));
        ASSERT_EQ(1, w.result);
        ASSERT_WITHIN(0, 10, check_now() - t0);
        ASSERT_EQ(0, mp_event_is_set(e));
        check_sleeper_destroy(&w.me);
    }
    mp_event_free(e);
}

/* Barrier */

static volatile long *action_runs;

MP_TARGET(count_action)
{
    __atomic_fetch_add(action_runs, 1, __ATOMIC_SEQ_CST);
    return 0;
}

MP_TARGET(failing_action)
{
    return mp_raise("ValueError", "action failed");
}

MP_TARGET(barrier_party)
{
    mp_barrier *b = mp_args_barrier(args, 0);
    mp_queue *q = mp_args_queue(args, 1);
    int rounds = (int)mp_args_int(args, 2);

    for (int i = 0; i < rounds; i++) {
        int r = mp_barrier_wait(b, MP_BARRIER_DEFAULT);
        mp_check(mp_queue_put_i64(q, r));
        if (r < 0)
            return 0;
    }
    return 0;
}

TEST(barrier_indices_and_the_action_once_a_round)
{
    mp_process *p[3];
    mp_barrier *b;
    mp_queue *q;
    long long v;
    const int rounds = 20;

    action_runs = shared_counter();
    ASSERT_OK(mp_barrier_new(&b, 4, &count_action_target, 30));
    ASSERT_EQ(4, mp_barrier_parties(b));
    ASSERT_EQ(0, mp_barrier_broken(b));
    ASSERT_EQ(0, mp_barrier_n_waiting(b));
    ASSERT_OK(mp_queue_new(&q, 0));
    for (int i = 0; i < 3; i++)
        p[i] = start("fork", &barrier_party_target, MP_ARGS(b, q, rounds));
    for (int round = 0; round < rounds; round++) {
        int seen = 0, r = mp_barrier_wait(b, MP_BARRIER_DEFAULT);
        ASSERT_TRUE(r >= 0 && r < 4);
        /* The action ran before anyone was let go. */
        ASSERT_EQ(round + 1, *action_runs);
        seen |= 1 << r;
        for (int i = 0; i < 3; i++) {
            ASSERT_OK(mp_queue_get_i64(q, &v, 30));
            ASSERT_TRUE(v >= 0 && v < 4);
            seen |= 1 << v;
        }
        ASSERT_EQ(15, seen); /* 0, 1, 2, 3: each once */
    }
    for (int i = 0; i < 3; i++)
        join_ok(p[i]);
    ASSERT_EQ(rounds, *action_runs);
    mp_queue_free(q);
    mp_barrier_free(b);
}

TEST(a_barrier_timeout_breaks_it_until_reset)
{
    mp_barrier *b;
    double t0;

    ASSERT_EQ(MP_EINVAL, mp_barrier_new(&b, 2, NULL, __builtin_nan("")));
    ASSERT_OK(mp_barrier_new(&b, 2, NULL, 0.2));
    t0 = check_now();
    ASSERT_EQ(MP_EBROKENBARRIER, mp_barrier_wait(b, MP_BARRIER_DEFAULT));
    ASSERT_WITHIN(0.19, 1.0, check_now() - t0);
    ASSERT_EQ(1, mp_barrier_broken(b));
    ASSERT_EQ(MP_EBROKENBARRIER, mp_barrier_wait(b, 10));
    ASSERT_OK(mp_barrier_reset(b));
    ASSERT_EQ(0, mp_barrier_broken(b));
    t0 = check_now();
    ASSERT_EQ(MP_EBROKENBARRIER, mp_barrier_wait(b, 0));
    ASSERT_WITHIN(0, 0.1, check_now() - t0);
    ASSERT_OK(mp_barrier_reset(b));
    ASSERT_OK(mp_barrier_abort(b));
    ASSERT_EQ(1, mp_barrier_broken(b));
    ASSERT_EQ(MP_EBROKENBARRIER, mp_barrier_wait(b, 10));
    mp_barrier_free(b);

    /* Barrier(0), as CPython's multiprocessing takes it: every wait times
     * out. */
    ASSERT_OK(mp_barrier_new(&b, 0, NULL, MP_FOREVER));
    ASSERT_EQ(MP_EBROKENBARRIER, mp_barrier_wait(b, 0.05));
    mp_barrier_free(b);
    /* Barrier(1): the one party is the last. */
    ASSERT_OK(mp_barrier_new(&b, 1, NULL, MP_FOREVER));
    ASSERT_EQ(0, mp_barrier_wait(b, MP_BARRIER_DEFAULT));
    ASSERT_EQ(0, mp_barrier_wait(b, 0));
    mp_barrier_free(b);
}

struct bthread {
    mp_barrier *b;
    int result;
};

static void *barrier_thread(void *arg)
{
    struct bthread *t = arg;

    t->result = mp_barrier_wait(t->b, 60);
    return NULL;
}

static void *barrier_default_wait(void *arg)
{
    struct bthread *t = arg;

    t->result = mp_barrier_wait(t->b, MP_BARRIER_DEFAULT);
    return NULL;
}

static void wait_n_waiting(mp_barrier *b, int n)
{
    double end = check_now() + 30;

    while (mp_barrier_n_waiting(b) != n) {
        ASSERT_TRUE(check_now() < end);
        usleep(1000);
    }
}

TEST(abort_and_reset_release_the_waiters_broken)
{
    struct bthread t[2];
    pthread_t th[2];
    mp_barrier *b;

    ASSERT_OK(mp_barrier_new(&b, 3, NULL, MP_FOREVER));
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < 2; i++) {
            t[i] = (struct bthread){ b, 99 };
            ASSERT_EQ(0, pthread_create(&th[i], NULL, barrier_thread, &t[i]));
        }
        wait_n_waiting(b, 2);
        if (pass == 0)
            ASSERT_OK(mp_barrier_abort(b));
        else
            ASSERT_OK(mp_barrier_reset(b));
        for (int i = 0; i < 2; i++) {
            ASSERT_EQ(0, pthread_join(th[i], NULL));
            ASSERT_EQ(MP_EBROKENBARRIER, t[i].result);
        }
        ASSERT_EQ(pass == 0, mp_barrier_broken(b));
        ASSERT_EQ(0, mp_barrier_n_waiting(b));
        ASSERT_OK(mp_barrier_reset(b));
    }
    /* Usable again. */
    for (int i = 0; i < 2; i++) {
        t[i] = (struct bthread){ b, 99 };
        ASSERT_EQ(0, pthread_create(&th[i], NULL, barrier_thread, &t[i]));
    }
    wait_n_waiting(b, 2);
    ASSERT_EQ(2, mp_barrier_wait(b, 10));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_TRUE(t[i].result == 0 || t[i].result == 1);
    }
    ASSERT_TRUE(t[0].result != t[1].result);
    mp_barrier_free(b);
}

TEST(a_failing_action_breaks_the_barrier)
{
    struct bthread t;
    pthread_t th;
    mp_barrier *b;

    ASSERT_OK(mp_barrier_new(&b, 2, &failing_action_target, MP_FOREVER));
    t = (struct bthread){ b, 99 };
    ASSERT_EQ(0, pthread_create(&th, NULL, barrier_thread, &t));
    wait_n_waiting(b, 1);
    ASSERT_EQ(MP_ERAISED, mp_barrier_wait(b, 10));
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(MP_EBROKENBARRIER, t.result);
    ASSERT_EQ(1, mp_barrier_broken(b));
    mp_barrier_free(b);
}

/* A wait's timeout runs from when it is inside the barrier, as CPython's
 * wait_for() starts its clock there: time spent waiting for the lock (an
 * action running) or for the last round to drain is not counted. */
static _Atomic int in_slow_action;

MP_TARGET(slow_action)
{
    atomic_store(&in_slow_action, 1);
    usleep(2000000); /* holds the barrier past the late party's timeout */
    return 0;
}

struct late {
    mp_barrier *b;
    int result;
    _Atomic int done;
};

static void *late_party(void *arg)
{
    struct late *t = arg;

    t->result = mp_barrier_wait(t->b, 1.0);
    atomic_store(&t->done, 1);
    return NULL;
}

TEST(a_barrier_timeout_runs_from_the_entry_not_the_call)
{
    struct bthread t[2];
    struct late d = { 0 };
    pthread_t th[2], dth;
    mp_barrier *b;
    double end;

    ASSERT_OK(mp_barrier_new(&b, 2, &slow_action_target, MP_FOREVER));
    t[0] = (struct bthread){ b, 99 };
    ASSERT_EQ(0, pthread_create(&th[0], NULL, barrier_thread, &t[0]));
    wait_n_waiting(b, 1);
    t[1] = (struct bthread){ b, 99 };
    ASSERT_EQ(0, pthread_create(&th[1], NULL, barrier_thread, &t[1]));
    end = check_now() + 30;
    while (!atomic_load(&in_slow_action)) {
        ASSERT_TRUE(check_now() < end);
        usleep(1000);
    }
    d.b = b;
    ASSERT_EQ(0, pthread_create(&dth, NULL, late_party, &d));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_TRUE(t[i].result == 0 || t[i].result == 1);
    }
    /* The late party is inside the next round, with its second to go. */
    while (mp_barrier_n_waiting(b) != 1 && !atomic_load(&d.done))
        usleep(1000);
    ASSERT_EQ(0, atomic_load(&d.done));
    ASSERT_EQ(1, mp_barrier_wait(b, 10));
    ASSERT_EQ(0, pthread_join(dth, NULL));
    ASSERT_EQ(0, d.result);
    ASSERT_EQ(0, mp_barrier_broken(b));
    mp_barrier_free(b);
}

/* Many rounds between threads: every round gives indices 0..3 once, and
 * the barrier ends empty and whole. */
struct rounds {
    mp_barrier *b;
    _Atomic int *seen; /* a bit per index, per round */
};

#define BARRIER_ROUNDS 2000

static void *barrier_rounds(void *arg)
{
    struct rounds *r = arg;

    for (int i = 0; i < BARRIER_ROUNDS; i++) {
        int idx = mp_barrier_wait(r->b, 60);
        ASSERT_TRUE(idx >= 0 && idx < 4);
        atomic_fetch_or(&r->seen[i], 1 << idx);
    }
    return NULL;
}

TEST(a_barrier_holds_for_thousands_of_rounds_between_threads)
{
    static _Atomic int seen[BARRIER_ROUNDS];
    struct rounds r = { NULL, seen };
    pthread_t th[4];

    ASSERT_OK(mp_barrier_new(&r.b, 4, NULL, MP_FOREVER));
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_create(&th[i], NULL, barrier_rounds, &r));
    for (int i = 0; i < 4; i++)
        ASSERT_EQ(0, pthread_join(th[i], NULL));
    for (int i = 0; i < BARRIER_ROUNDS; i++)
        ASSERT_EQ(15, atomic_load(&seen[i]));
    ASSERT_EQ(0, mp_barrier_n_waiting(r.b));
    ASSERT_EQ(0, mp_barrier_broken(r.b));
    mp_barrier_free(r.b);
}

/* More threads than a Barrier has slots (its parties and 64 more): the
 * others wait for a slot, and all see the round that a timeout broke. */
#define OVER_SLOTS 100

TEST(threads_beyond_a_barriers_slots_wait_for_one)
{
    static struct bthread t[OVER_SLOTS];
    static pthread_t th[OVER_SLOTS];
    mp_barrier *b;
    double t0 = check_now();

    ASSERT_OK(mp_barrier_new(&b, 0, NULL, 1.0));
    for (int i = 0; i < OVER_SLOTS; i++) {
        t[i] = (struct bthread){ b, 99 };
        ASSERT_EQ(0, pthread_create(&th[i], NULL, barrier_default_wait,
                                    &t[i]));
    }
    for (int i = 0; i < OVER_SLOTS; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_EQ(MP_EBROKENBARRIER, t[i].result);
    }
    ASSERT_WITHIN(0.9, 10, check_now() - t0);
    ASSERT_EQ(1, mp_barrier_broken(b));
    mp_barrier_free(b);
}

/* Events handed back and forth between two processes: every set() is
 * seen by the waiter it was meant for. */
MP_TARGET(event_pong)
{
    mp_event *ping = mp_args_event(args, 0), *pong = mp_args_event(args, 1);

    for (int i = 0; i < 500; i++) {
        if (mp_event_wait(ping, 30) != 1)
            return 40;
        mp_check(mp_event_clear(ping));
        mp_check(mp_event_set(pong));
    }
    return 0;
}

TEST(events_ping_pong_between_processes)
{
    mp_event *ping, *pong;
    mp_process *p;

    ASSERT_OK(mp_event_new(&ping));
    ASSERT_OK(mp_event_new(&pong));
    p = start("fork", &event_pong_target, MP_ARGS(ping, pong));
    for (int i = 0; i < 500; i++) {
        ASSERT_OK(mp_event_set(ping));
        ASSERT_EQ(1, mp_event_wait(pong, 30));
        ASSERT_OK(mp_event_clear(pong));
    }
    join_ok(p);
    mp_event_free(ping);
    mp_event_free(pong);
}

/* every object, handed to children under every method */

MP_TARGET(use_everything)
{
    mp_lock *l = mp_args_lock(args, 0), *rl = mp_args_lock(args, 1);
    mp_lock *s = mp_args_lock(args, 2), *bs = mp_args_lock(args, 3);
    mp_cond *own = mp_args_cond(args, 4), *given = mp_args_cond(args, 5);
    mp_lock *given_lock = mp_args_lock(args, 6);
    mp_lock *own_lock = mp_args_lock(args, 7);
    mp_event *e = mp_args_event(args, 8);
    mp_barrier *b = mp_args_barrier(args, 9);
    mp_lock *robust = mp_args_lock(args, 10);
    char buf[128];

    /* One object for values that name one. */
    if (mp_cond_lock(given) != given_lock || mp_cond_lock(own) != own_lock)
        return 20;
    if (mp_args_lock(args, 11) != l)
        return 21;
    if (mp_lock_repr(bs, buf, sizeof(buf)) < 0 ||
        strcmp(buf, "<BoundedSemaphore(value=1, maxvalue=2)>") != 0)
        return 22;
    if (mp_lock_acquire(l, 0, 0) != 1 || mp_lock_acquire(rl, 0, 0) != 1 ||
        mp_lock_acquire(rl, 0, 0) != 1 || mp_lock_acquire(s, 0, 0) != 1 ||
        mp_lock_acquire(robust, 0, 0) != 1)
        return 23;
    mp_check(mp_lock_release(bs));
    /* A condition wait on the lock given separately. */
    mp_check(mp_lock_acquire(given_lock, 1, MP_FOREVER));
    if (mp_cond_wait(given, 0.01) != 0 || mp_lock_is_mine(given_lock) != 1)
        return 24;
    mp_check(mp_lock_release(given_lock));
    mp_check(mp_cond_acquire(own, 1, MP_FOREVER));
    mp_check(mp_cond_notify_all(own));
    mp_check(mp_cond_release(own));
    mp_check(mp_event_set(e));
    if (mp_barrier_wait(b, 60) < 0)
        return 25;
    mp_check(mp_lock_release(l));
    mp_check(mp_lock_release(rl));
    mp_check(mp_lock_release(rl));
    mp_check(mp_lock_release(robust));
    return 0;
}

TEST(every_object_reaches_a_child_under_every_method)
{
    for (int m = 0; m < 3; m++) {
        mp_lock *l, *rl, *s, *bs, *gl, *robust;
        mp_cond *own, *given;
        mp_event *e;
        mp_barrier *b;
        mp_process *p;

        ASSERT_OK(mp_lock_new(&l));
        ASSERT_OK(mp_rlock_new(&rl));
        ASSERT_OK(mp_semaphore_new(&s, 1));
        ASSERT_OK(mp_bounded_semaphore_new(&bs, 2));
        ASSERT_EQ(1, mp_lock_acquire(bs, 0, 0));
        ASSERT_OK(mp_lock_new(&gl));
        ASSERT_OK(mp_cond_new(&own, NULL));
        ASSERT_OK(mp_cond_new(&given, gl));
        ASSERT_OK(mp_event_new(&e));
        ASSERT_OK(mp_barrier_new(&b, 2, NULL, MP_FOREVER));
        ASSERT_OK(mp_lock_new_robust(&robust));
        {
            mp_arg v[] = { MP_ARG(l), MP_ARG(rl), MP_ARG(s), MP_ARG(bs),
                           MP_ARG(own), MP_ARG(given), MP_ARG(gl),
                           MP_ARG(mp_cond_lock(own)), MP_ARG(e), MP_ARG(b),
                           MP_ARG(robust), MP_ARG(l) };
            mp_process_options o = { 0 };
            ASSERT_OK(mp_get_context(&o.context, methods[m]));
            ASSERT_OK(mp_process_create(&p, &use_everything_target, v, 12,
                                        &o));
        }
        /* The process holds its own references. */
        mp_lock_free(s);
        ASSERT_OK(mp_process_start(p));
        ASSERT_EQ(1, mp_event_wait(e, 60));
        ASSERT_TRUE(mp_barrier_wait(b, 60) >= 0);
        join_ok(p);
        ASSERT_EQ(1, mp_lock_get_value(l));
        ASSERT_EQ(1, mp_lock_get_value(rl));
        ASSERT_EQ(2, mp_lock_get_value(bs));
        ASSERT_EQ(1, mp_lock_acquire(robust, 0, 0));
        ASSERT_OK(mp_lock_release(robust));
        mp_lock_free(l);
        mp_lock_free(rl);
        mp_lock_free(bs);
        mp_lock_free(gl);
        mp_lock_free(robust);
        mp_cond_free(own);
        mp_cond_free(given);
        mp_event_free(e);
        mp_barrier_free(b);
    }
}

MP_TARGET(wrong_type)
{
    mp_lock *l = NULL;
    int r = mp_args_get_int(args, 0, NULL);

    if (r != MP_ERAISED || strcmp(mp_exception_name(r), "TypeError") != 0 ||
        strcmp(mp_strerror(r), "argument 0 is RLock, not int") != 0)
        return 30;
    r = mp_args_get_lock(args, 1, &l);
    if (r != MP_ERAISED ||
        strcmp(mp_strerror(r), "argument 1 is Event, not Lock") != 0)
        return 31;
    return 0;
}

TEST(a_mismatch_names_the_object_type)
{
    mp_lock *r;
    mp_event *e;

    ASSERT_OK(mp_rlock_new(&r));
    ASSERT_OK(mp_event_new(&e));
    join_ok(start("spawn", &wrong_type_target, MP_ARGS(r, e)));
    mp_lock_free(r);
    mp_event_free(e);
}
