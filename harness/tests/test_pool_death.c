/*
 * test_pool_death.c - pool workers that die: at each point of taking a
 * task and returning its result (the fault points of test_hooks.h, in
 * pool_worker.c and inside the queues' get and put), while idle, and at
 * random instants under load.  Nothing hangs, a task whose result cannot
 * come is MP_EWORKERLOST, every other result arrives exactly once, and
 * the pool goes on with new workers.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "test_hooks.h"

MP_TARGET(ident)
{
    return mp_task_return(MP_ARG(mp_args_int(args, 0)));
}

/* ident, after about 0.2 ms of work, so that kills land inside tasks. */
MP_TARGET(ident_slow)
{
    double until = check_now() + 0.0002;

    while (check_now() < until)
        ;
    return mp_task_return(MP_ARG(mp_args_int(args, 0)));
}

static mp_arg ints[2000];

__attribute__((constructor)) static void ints_init(void)
{
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++)
        ints[i] = mp_arg_int((long long)i);
}

/* A Pool(1) whose first worker carries the fault; its replacements,
 * forked after the reset, do not. */
static mp_pool *pool_with_fault(int *var, int point)
{
    mp_pool_options o = { 0 };
    mp_pool *p;

    ASSERT_OK(mp_get_context(&o.context, "fork"));
    /* Atomic: the pool's threads read it (relaxed, in FAULT()). */
    __atomic_store_n(var, point, __ATOMIC_RELAXED);
    ASSERT_OK(mp_pool_new(&p, 1, &o));
    __atomic_store_n(var, 0, __ATOMIC_RELAXED);
    return p;
}

/* A result queue that breaks ends the result thread: what was pending
 * fails with the queue's error, and so does every later submission
 * instead of making a result nothing would fill. */
TEST(result_queue_breaks)
{
    mp_pool *p = pool_with_fault(&mp__pool_fault, 0);
    mp_result *a, *b = NULL;
    int r;

    __atomic_store_n(&mp__pool_results_break, MP_EQCORRUPT, __ATOMIC_RELAXED);
    ASSERT_OK(mp_pool_apply_async(p, &ident_target, MP_ARGS(1), NULL, &a));
    ASSERT_EQ(MP_EQCORRUPT, mp_result_get(a, 60));
    r = mp_pool_apply_async(p, &ident_target, MP_ARGS(2), NULL, &b);
    if (r == 0) /* a result: it must not be left waiting */
        r = mp_result_get(b, 5);
    ASSERT_EQ(MP_EQCORRUPT, r);
    ASSERT_TRUE(b == NULL);
    ASSERT_OK(mp_pool_close(p));
    ASSERT_OK(mp_pool_join(p));
    mp_result_free(a);
    mp_pool_free(p);
}

/* A watcher that cannot go on (its poll() failed, no memory for its
 * list) leaves a pool that join() and free() end: what was pending
 * fails with the watcher's error, later submissions too, and the
 * workers are stopped. */
MP_TARGET(sleep_forever)
{
    (void)args;
    pause();
    return 0;
}

TEST(watcher_fails)
{
    mp_pool *p = pool_with_fault(&mp__pool_fault, 0);
    mp_result *a, *b = NULL;
    mp_process **kids;
    size_t n;
    int r;

    ASSERT_OK(mp_pool_apply_async(p, &sleep_forever_target, NULL, 0, NULL,
                                  &a));
    __atomic_store_n(&mp__pool_watch_break, -ENOMEM, __ATOMIC_RELAXED);
    ASSERT_OK(mp_pool_close(p)); /* wakes the watcher */
    ASSERT_OK(mp_pool_join(p));
    ASSERT_EQ(-ENOMEM, mp_result_get(a, 60));
    r = mp_pool_apply_async(p, &ident_target, MP_ARGS(2), NULL, &b);
    ASSERT_TRUE(r < 0 && b == NULL);
    ASSERT_OK(mp_active_children(&kids, &n));
    mp_process_list_free(kids, n);
    ASSERT_EQ(0, n);
    ASSERT_OK(mp_pool_terminate(p));
    mp_result_free(a);
    mp_pool_free(p);
}

/* The first worker dies at the point: item 0's outcome is `first` (1
 * for its value, or MP_EWORKERLOST), items 1..4 come whole and once;
 * `dups` results are dropped as a chunk's second (the loss reported
 * after the result it covers). */
static void die_at(int *var, int point, int first, unsigned long dups)
{
    unsigned long dropped = mp__pool_duplicates();
    mp_pool *p = pool_with_fault(var, point);
    mp_imap *it;
    const mp_arg *v;
    mp_result *r;

    ASSERT_OK(mp_pool_imap(p, &ident_target, ints, 5, 1, &it));
    ASSERT_EQ(first, mp_imap_next(it, 60, &v));
    if (first == 1)
        ASSERT_EQ(0, v->u.i);
    for (long long i = 1; i < 5; i++) {
        ASSERT_EQ(1, mp_imap_next(it, 60, &v));
        ASSERT_EQ(i, v->u.i);
    }
    ASSERT_EQ(0, mp_imap_next(it, 60, &v));
    mp_imap_free(it);
    /* Whatever the dead worker left held in the queues, they work. */
    ASSERT_EQ(0, mp_pool_map(p, &ident_target, ints, 100, 1, &r));
    mp_result_free(r);
    mp_pool_close(p);
    ASSERT_OK(mp_pool_join(p)); /* the last results came before */
    ASSERT_EQ(dups, mp__pool_duplicates() - dropped);
    mp_pool_free(p);
}

/* Taken out of the queue but not committed: still there, run again. */
TEST(die_before_slot_written)
{
    die_at(&mp__pool_fault, 1, 1, 0);
}

TEST(die_slot_written_not_committed)
{
    die_at(&mp__pool_fault, 2, 1, 0);
}

TEST(die_in_get_before_commit)
{
    die_at(&mp__queue_fault, 11, 1, 0);
    die_at(&mp__queue_fault, 12, 1, 0);
}

TEST(die_in_get_after_commit)
{
    die_at(&mp__queue_fault, 13, MP_EWORKERLOST, 0);
    die_at(&mp__queue_fault, 14, MP_EWORKERLOST, 0);
}

TEST(die_after_take)
{
    die_at(&mp__pool_fault, 3, MP_EWORKERLOST, 0);
}

TEST(die_before_result_put)
{
    die_at(&mp__pool_fault, 4, MP_EWORKERLOST, 0);
}

/* Inside the result's put: before its commit the result is lost; after
 * it, the result counts and the loss report is dropped. */
TEST(die_in_put)
{
    die_at(&mp__queue_fault, 1, MP_EWORKERLOST, 0);
    die_at(&mp__queue_fault, 2, MP_EWORKERLOST, 0);
    die_at(&mp__queue_fault, 3, 1, 1);
    die_at(&mp__queue_fault, 4, 1, 1);
}

TEST(die_after_result_put)
{
    die_at(&mp__pool_fault, 5, 1, 1);
}

/* A worker killed while it waits for a task loses nothing. */
TEST(idle_worker_killed)
{
    mp_pool_options o = { 0 };
    mp_process **kids;
    size_t n;
    mp_pool *p;
    mp_result *r;
    pid_t pid;

    ASSERT_OK(mp_get_context(&o.context, "fork"));
    ASSERT_OK(mp_pool_new(&p, 1, &o));
    ASSERT_OK(mp_active_children(&kids, &n));
    ASSERT_EQ(1, n);
    ASSERT_EQ(1, mp_process_pid(kids[0], &pid));
    ASSERT_OK(mp_process_kill(kids[0]));
    ASSERT_OK(mp_process_join(kids[0], 30));
    mp_process_list_free(kids, n);
    ASSERT_EQ(0, mp_pool_map(p, &ident_target, ints, 20, 1, &r));
    ASSERT_EQ(19, mp_result_value(r, 19)->u.i);
    mp_result_free(r);
    mp_pool_free(p);
}

/* Kills a random worker every few milliseconds until told to stop. */
struct killer {
    _Atomic int stop;
    int kills;
};

static void *kill_workers(void *arg)
{
    struct killer *k = arg;
    unsigned seed = 1;

    while (!k->stop && k->kills < 40) {
        mp_process **kids;
        size_t n;
        struct timespec ts = { 0, 3000000 + rand_r(&seed) % 4000000 };

        nanosleep(&ts, NULL); /* the pace of the storm, not a wait */
        if (mp_active_children(&kids, &n) < 0)
            continue;
        if (n > 0 && mp_process_kill(kids[rand_r(&seed) % n]) == 0)
            k->kills++;
        mp_process_list_free(kids, n);
    }
    return NULL;
}

/* Under load, workers SIGKILLed at random instants: every item comes
 * exactly once, as its value or as MP_EWORKERLOST (at most one per
 * kill), and the pool is whole afterwards. */
TEST(random_kills_under_load)
{
    enum { N = 2000 };
    static unsigned char seen[N];
    struct killer k = { 0, 0 };
    mp_pool_options o = { 0 };
    pthread_t t;
    mp_pool *p;
    mp_imap *it;
    mp_result *r;
    const mp_arg *v;
    int got, ok = 0, lost = 0;

    ASSERT_OK(mp_get_context(&o.context, "fork"));
    ASSERT_OK(mp_pool_new(&p, 2, &o));
    ASSERT_OK(mp_pool_imap_unordered(p, &ident_slow_target, ints, N, 1, &it));
    ASSERT_EQ(0, pthread_create(&t, NULL, kill_workers, &k));
    while ((got = mp_imap_next(it, 60, &v)) != 0) {
        if (got == MP_EWORKERLOST) {
            lost++;
            continue;
        }
        ASSERT_EQ(1, got);
        ASSERT_TRUE(v->u.i >= 0 && v->u.i < N);
        ASSERT_EQ(0, seen[v->u.i]);
        seen[v->u.i] = 1;
        ok++;
    }
    k.stop = 1;
    pthread_join(t, NULL);
    mp_imap_free(it);
    check_diag("%d kills, %d tasks lost", k.kills, lost);
    ASSERT_EQ(N, ok + lost);
    ASSERT_TRUE(lost <= k.kills);
    ASSERT_TRUE(k.kills > 0);
    ASSERT_EQ(0, mp_pool_map(p, &ident_target, ints, N, 1, &r));
    for (size_t i = 0; i < N; i++)
        ASSERT_EQ((long long)i, mp_result_value(r, i)->u.i);
    mp_result_free(r);
    mp_pool_free(p);
}

/* The initializer: puts this worker's pid to the queue it is given. */
MP_TARGET(put_pid)
{
    mp_queue *q;
    int r = mp_args_get_queue(args, 0, &q);

    return r < 0 ? r : mp_queue_put_i64(q, (long long)getpid());
}

/* Whether the process pidfd names ends before the deadline. */
static bool ends_by(int pidfd, double deadline)
{
    struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
    double left;

    while ((left = deadline - check_now()) > 0) {
        int r = poll(&pfd, 1, (int)(left * 1000) + 1);
        if (r > 0)
            return true;
        if (r < 0 && errno != EINTR)
            return false;
    }
    return false;
}

/* The pool's process, in the test's child: a Pool(3) under the method,
 * then the workers' pids and the fork server's (0: none) on fd. */
static _Noreturn void pool_owner(const char *method, int fd)
{
    enum { N = 3 };
    mp_pool_options o = { .initializer = &put_pid_target, .n_initargs = 1 };
    mp_queue *q;
    mp_pool *p;
    long long pid[N];

    if (mp_queue_new(&q, 0) < 0 || mp_get_context(&o.context, method) < 0)
        _exit(2);
    o.initargs = (mp_arg[]){ mp_arg_queue(q) };
    if (mp_pool_new(&p, N, &o) < 0)
        _exit(3);
    for (size_t i = 0; i < N; i++)
        if (mp_queue_get_i64(q, &pid[i], 60) < 0)
            _exit(4);
    check_say(fd, "%lld %lld %lld %d\n", pid[0], pid[1], pid[2],
              (int)mp__forkserver_pid());
    for (;;)
        pause();
}

/* mp.h: a pool's workers die with the pool's process, as CPython's do
 * (they see EOF on the task pipe), whatever the start method: SIGKILL
 * the process that made the pool and every worker ends. */
static void workers_die_with_pool(const char *method)
{
    enum { N = 3 };
    int fds[2], status, pidfd[N], server_fd = -1;
    long long pid[N];
    int server = 0, left = 0;
    char buf[256];
    size_t len = 0;
    double deadline;
    pid_t child;

    if (!check_uses_pidfds())
        check_skip("no pidfds to wait on the workers with");
    ASSERT_EQ(0, pipe(fds));
    fflush(NULL);
    if ((child = fork()) == 0) {
        close(fds[0]);
        pool_owner(method, fds[1]);
    }
    ASSERT_TRUE(child > 0);
    close(fds[1]);
    while (len < sizeof(buf) - 1 && memchr(buf, '\n', len) == NULL) {
        ssize_t n = read(fds[0], buf + len, sizeof(buf) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fds[0]);
    if (sscanf(buf, "%lld %lld %lld %d", &pid[0], &pid[1], &pid[2],
               &server) != 4) {
        waitpid(child, &status, 0);
        check_fail(__FILE__, __LINE__, "the pool's process said \"%s\", "
                   "status %#x", buf, status);
    }
    /* The workers live while the pool's process does: these name them. */
    for (size_t i = 0; i < N; i++) {
        pidfd[i] = (int)syscall(SYS_pidfd_open, (pid_t)pid[i], 0);
        ASSERT_TRUE(pidfd[i] >= 0);
    }
    if (server > 0)
        server_fd = (int)syscall(SYS_pidfd_open, (pid_t)server, 0);
    ASSERT_EQ(0, kill(child, SIGKILL));
    ASSERT_EQ(child, waitpid(child, &status, 0));
    deadline = check_now() + 10 * check_slowdown();
    for (size_t i = 0; i < N; i++) {
        if (!ends_by(pidfd[i], deadline)) {
            left++;
            syscall(SYS_pidfd_send_signal, pidfd[i], SIGKILL, NULL, 0);
        }
        close(pidfd[i]);
    }
    check_diag("%s: %.2f s for the workers to end", method,
               check_now() - deadline + 10 * check_slowdown());
    if (server_fd >= 0) {
        bool ended = ends_by(server_fd, check_now() + 5 * check_slowdown());
        check_diag("%s: the fork server %s the pool's process", method,
                   ended ? "ends with" : "outlives");
        if (!ended)
            syscall(SYS_pidfd_send_signal, server_fd, SIGKILL, NULL, 0);
        close(server_fd);
    }
    ASSERT_EQ(0, left);
}

TEST(workers_die_with_pool_fork)
{
    workers_die_with_pool("fork");
}

TEST(workers_die_with_pool_spawn)
{
    workers_die_with_pool("spawn");
}

TEST(workers_die_with_pool_forkserver)
{
    workers_die_with_pool("forkserver");
}

/* A fork child's copies of a pool and its iterators take no lock: one
 * copied held (another thread's at the fork) would stay held.  An
 * iterator whose job was ready at the fork still gives its items; one
 * that was not is MP_EPOOLNOTRUNNING. */
TEST(fork_child_takes_no_lock)
{
    mp_pool *p = pool_with_fault(&mp__pool_fault, 0);
    mp_imap *done, *pending;
    mp_result *r;
    const mp_arg *v;
    int status;
    pid_t pid;

    ASSERT_OK(mp_pool_imap(p, &ident_target, ints, 3, 1, &done));
    /* One worker runs the tasks in order: this result comes after the
     * imap's, which is then ready. */
    ASSERT_OK(mp_pool_apply(p, &ident_target, MP_ARGS(9), &r));
    mp_result_free(r);
    ASSERT_OK(mp_pool_imap(p, &sleep_forever_target, ints, 1, 1,
                           &pending));
    pthread_mutex_lock(mp__pool_mutex(p));
    pthread_mutex_lock(mp__imap_mutex(done));
    pthread_mutex_lock(mp__imap_mutex(pending));
    fflush(NULL);
    if ((pid = fork()) == 0) {
        char buf[128];
        int bad = 0;

        alarm(10); /* a lock taken here would never be let go */
        bad |= mp_pool_repr(p, buf, sizeof(buf)) <= 0 ||
               strstr(buf, "pool_size=1") == NULL;
        for (long long i = 0; i < 3; i++)
            bad |= (mp_imap_next(done, 5, &v) != 1 || v->u.i != i) << 1;
        bad |= (mp_imap_next(done, 5, &v) != 0) << 2;
        bad |= (mp_imap_next(pending, 5, &v) != MP_EPOOLNOTRUNNING) << 3;
        _exit(bad);
    }
    pthread_mutex_unlock(mp__imap_mutex(pending));
    pthread_mutex_unlock(mp__imap_mutex(done));
    pthread_mutex_unlock(mp__pool_mutex(p));
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_EQ(0, status);
    mp_imap_free(done);
    mp_imap_free(pending);
    mp_pool_free(p);
}
