/*
 * test_threads.c - libmp used from several threads at once (process.c,
 * start_fork.c, context.c, connection.c): the thread contract mp.h states.
 *
 * CPython makes every Process method safe to call from any thread (the GIL
 * serialises them) and active_children() hands each thread references to
 * children other threads still use.  These tests start, join, terminate,
 * list, rename, read and close children from several threads at once.  Some
 * assert outcomes a race would break; the rest of the evidence comes from
 * `make sanitize` (a freed name read) and `make tsan` (data races).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define NTHREADS 8

/* Valgrind checks every fork child for leaks when it exits, and in a child
 * forked while other threads ran, what only their stacks pointed to looks
 * lost: the tests that fork beside other threads are for the sanitizers. */
static void skip_under_valgrind(void)
{
    if (RUNNING_ON_VALGRIND)
        check_skip("valgrind takes other threads' memory in a fork child "
                   "for a leak");
}

MP_TARGET(quick) { (void)arg; (void)len; return 0; }

MP_TARGET(pause_until_signalled)
{
    (void)arg;
    (void)len;
    for (;;)
        pause();
    return 0;
}

/* Runs fn(i, ctx) in n threads that start together; fails the test if any
 * thread could not be made. */
struct crew {
    pthread_barrier_t go;
    void (*fn)(int i, void *ctx);
    void *ctx;
};

struct member {
    struct crew *crew;
    int i;
};

static void *member_main(void *arg)
{
    struct member *m = arg;

    pthread_barrier_wait(&m->crew->go);
    m->crew->fn(m->i, m->crew->ctx);
    return NULL;
}

static void run_crew(int n, void (*fn)(int i, void *ctx), void *ctx)
{
    struct crew crew = { .fn = fn, .ctx = ctx };
    struct member m[NTHREADS];
    pthread_t t[NTHREADS];

    ASSERT_TRUE(n <= NTHREADS);
    ASSERT_EQ(0, pthread_barrier_init(&crew.go, NULL, (unsigned)n));
    for (int i = 0; i < n; i++) {
        m[i] = (struct member){ &crew, i };
        ASSERT_EQ(0, pthread_create(&t[i], NULL, member_main, &m[i]));
    }
    for (int i = 0; i < n; i++)
        ASSERT_EQ(0, pthread_join(t[i], NULL));
    pthread_barrier_destroy(&crew.go);
}

static mp_process *new_named(const char *target, const char *name)
{
    mp_process_options o = { .name = name };
    mp_process *p = NULL;

    ASSERT_OK(mp_process_new(&p, target, NULL, 0, &o));
    return p;
}

/* Every name these tests give starts with 'w' (at creation) or 'r' (a
 * rename by another thread). */
static void check_name(const char *name)
{
    ASSERT_TRUE(name != NULL && (name[0] == 'w' || name[0] == 'r'));
    ASSERT_TRUE(strlen(name) < 32);
}

/* What a thread may do to a child another thread owns: everything but
 * freeing the owner's reference.  The owner may close it meanwhile, so
 * MP_ECLOSED is an answer everywhere but name, daemon and repr. */
static void poke(mp_process *p, int i, int k)
{
    const char *was = mp_process_name(p);
    char buf[128], name[32];
    pid_t pid;
    int r, code;

    check_name(was);
    r = mp_process_repr(p, buf, sizeof(buf));
    ASSERT_TRUE(r > 0 && (size_t)r < sizeof(buf));
    ASSERT_TRUE(strncmp(buf, "<Process name='", 15) == 0);
    ASSERT_TRUE(buf[15] == 'w' || buf[15] == 'r');
    /* A listed child was started: never "initial", however the owner's
     * close() falls between the looks repr takes. */
    if (strstr(buf, " started>") == NULL &&
        strstr(buf, " stopped exitcode=") == NULL &&
        strstr(buf, " closed>") == NULL)
        check_fail(__FILE__, __LINE__, "repr of a listed child: %s", buf);
    r = mp_process_pid(p, &pid);
    ASSERT_TRUE(r == 1 || r == MP_ECLOSED);
    ASSERT_TRUE(r != 1 || pid > 0);
    r = mp_process_is_alive(p);
    ASSERT_TRUE(r == 0 || r == 1 || r == MP_ECLOSED);
    r = mp_process_exitcode(p, &code);
    ASSERT_TRUE(r == 0 || r == 1 || r == MP_ECLOSED);
    ASSERT_TRUE(r != 1 || code == 0 || code == -SIGTERM);
    r = mp_process_sentinel(p);
    ASSERT_TRUE(r >= 0 || r == MP_ECLOSED);
    r = mp_process_join(p, 0);
    ASSERT_TRUE(r == 0 || r == MP_ETIMEDOUT || r == MP_ECLOSED);
    ASSERT_EQ(0, mp_process_daemon(p));
    snprintf(name, sizeof(name), "r%d-%d", i, k);
    ASSERT_OK(mp_process_set_name(p, name));
    check_name(mp_process_name(p));
    check_name(was); /* renamed since, by this thread or another */
    if (k % 3 == 0) {
        r = mp_process_terminate(p);
        ASSERT_TRUE(r == 0 || r == MP_ECLOSED);
    }
}

static void start_list_poke_close(int i, void *ctx)
{
    int rounds = *(int *)ctx;

    for (int k = 0; k < rounds; k++) {
        char name[32];
        mp_process *own[2], **list;
        size_t n;
        int code;

        snprintf(name, sizeof(name), "w%d-%d-pause", i, k);
        own[0] = new_named("pause_until_signalled", name);
        snprintf(name, sizeof(name), "w%d-%d-quick", i, k);
        own[1] = new_named("quick", name);
        ASSERT_OK(mp_process_start(own[0]));
        ASSERT_OK(mp_process_start(own[1]));
        ASSERT_OK(mp_active_children(&list, &n));
        for (size_t j = 0; j < n; j++)
            poke(list[j], i, k);
        /* A close while others read: the owner joins first. */
        ASSERT_OK(mp_process_terminate(own[0]));
        ASSERT_OK(mp_process_join(own[0], MP_FOREVER));
        ASSERT_EQ(1, mp_process_exitcode(own[0], &code));
        ASSERT_EQ(-SIGTERM, code);
        ASSERT_OK(mp_process_join(own[1], MP_FOREVER));
        ASSERT_EQ(1, mp_process_exitcode(own[1], &code));
        ASSERT_TRUE(code == 0 || code == -SIGTERM); /* another's terminate */
        ASSERT_OK(mp_process_close(own[0]));
        ASSERT_OK(mp_process_close(own[1]));
        /* The listed references, still held: some closed by now. */
        for (size_t j = 0; j < n; j++)
            poke(list[j], i, k + 1);
        mp_process_list_free(list, n);
        mp_process_free(own[0]);
        mp_process_free(own[1]);
    }
}

TEST(threads_start_list_rename_read_and_close_children)
{
    int rounds = 25;
    mp_process **list;
    size_t n;

    skip_under_valgrind();
    run_crew(NTHREADS, start_list_poke_close, &rounds);
    ASSERT_OK(mp_active_children(&list, &n));
    ASSERT_EQ(0, n);
    mp_process_list_free(list, n);
}

/* start() from two threads at once starts one child: the other thread gets
 * CPython's "cannot start a process twice". */

struct race_start {
    mp_process *p;
    int r[2];
};

static void start_one(int i, void *ctx)
{
    struct race_start *rs = ctx;

    rs->r[i] = mp_process_start(rs->p);
}

TEST(one_object_started_by_two_threads_starts_once)
{
    skip_under_valgrind();
    for (int k = 0; k < 40; k++) {
        struct race_start rs = { .p = new_named("pause_until_signalled", "w") };
        mp_process **list;
        size_t n;
        int code;

        run_crew(2, start_one, &rs);
        ASSERT_TRUE((rs.r[0] == 0 && rs.r[1] == MP_ESTARTTWICE) ||
                    (rs.r[1] == 0 && rs.r[0] == MP_ESTARTTWICE));
        ASSERT_OK(mp_active_children(&list, &n));
        ASSERT_EQ(1, n); /* one child, registered once */
        mp_process_list_free(list, n);
        ASSERT_OK(mp_process_terminate(rs.p));
        ASSERT_OK(mp_process_join(rs.p, MP_FOREVER));
        ASSERT_EQ(1, mp_process_exitcode(rs.p, &code));
        ASSERT_EQ(-SIGTERM, code);
        mp_process_free(rs.p);
    }
}

/* Connections added from two threads before start all reach the child. */

MP_TARGET(count_conns)
{
    size_t n = 0;

    (void)len;
    while (mp_child_conn(n) != NULL)
        n++;
    return (int)n + *(const char *)arg;
}

struct add_conns {
    mp_process *p;
    mp_conn *c[2][20];
};

static void add_twenty(int i, void *ctx)
{
    struct add_conns *ac = ctx;

    for (int k = 0; k < 20; k++)
        ASSERT_OK(mp_process_add_conn(ac->p, ac->c[i][k]));
}

TEST(connections_added_by_two_threads_all_reach_the_child)
{
    struct add_conns ac;
    mp_conn *other[2][20];
    char zero = 0;
    int code;

    ASSERT_OK(mp_process_new(&ac.p, "count_conns", &zero, 1, NULL));
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 20; k++)
            ASSERT_OK(mp_pipe(&ac.c[i][k], &other[i][k], 0));
    run_crew(2, add_twenty, &ac);
    ASSERT_OK(mp_process_start(ac.p));
    ASSERT_OK(mp_process_join(ac.p, MP_FOREVER));
    ASSERT_EQ(1, mp_process_exitcode(ac.p, &code));
    ASSERT_EQ(40, code);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 20; k++) {
            mp_conn_free(ac.c[i][k]);
            mp_conn_free(other[i][k]);
        }
    mp_process_free(ac.p);
}

/* The daemon death signal changes while other threads start daemons. */

static void toggle_or_start_daemons(int i, void *ctx)
{
    (void)ctx;
    for (int k = 0; k < 10; k++) {
        if (i == 0) {
            int prev = mp_set_daemon_death_signal(k % 2 ? SIGKILL : 0);
            ASSERT_TRUE(prev == 0 || prev == SIGKILL);
            continue;
        }
        mp_process_options o = { .name = "w", .daemon = MP_DAEMON_YES };
        mp_process *p = NULL;
        int code;

        ASSERT_OK(mp_process_new(&p, "quick", NULL, 0, &o));
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
    }
}

TEST(death_signal_set_while_other_threads_start_daemons)
{
    skip_under_valgrind();
    run_crew(4, toggle_or_start_daemons, NULL);
    mp_set_daemon_death_signal(0);
}

/* In a child, threads share mp_parent_process(): one sentinel for all. */

struct parent_views {
    int fd[4];
    int alive[4];
};

static void view_parent(int i, void *ctx)
{
    struct parent_views *pv = ctx;

    pv->fd[i] = mp_process_sentinel(mp_parent_process());
    pv->alive[i] = mp_process_is_alive(mp_parent_process());
}

MP_TARGET(threads_view_parent)
{
    struct parent_views pv;
    int out;

    memcpy(&out, arg, sizeof(out));
    (void)len;
    run_crew(4, view_parent, &pv);
    for (int i = 0; i < 4; i++)
        check_say(out, "%d %d\n", pv.fd[i], pv.alive[i]);
    return 0;
}

/* A child whose four threads look at its parent object: all see the parent
 * alive, through one sentinel. */
static void child_views_parent(void)
{
    char buf[256], *line, *save = NULL;
    int fds[2], code, first = -2;
    size_t got = 0;
    ssize_t r;
    mp_process *p;

    ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
    ASSERT_OK(mp_process_new(&p, "threads_view_parent", &fds[1],
                             sizeof(fds[1]), NULL));
    ASSERT_OK(mp_process_start(p));
    ASSERT_OK(mp_process_join(p, MP_FOREVER));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    close(fds[1]);
    while ((r = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
        got += (size_t)r;
    buf[got] = '\0';
    close(fds[0]);
    for (line = strtok_r(buf, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        int fd, alive;
        ASSERT_EQ(2, sscanf(line, "%d %d", &fd, &alive));
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(1, alive);
        if (first == -2)
            first = fd;
        ASSERT_EQ(first, fd); /* opened once */
    }
    ASSERT_TRUE(first >= 0);
    mp_process_free(p);
}

TEST(threads_of_a_child_share_its_parent_object)
{
    for (int k = 0; k < 20; k++)
        child_views_parent();
}

/* A child's sentinel fires when it ends, even while another thread starts
 * children that live on (on the pipe fallback, a child forked by another
 * thread at the wrong moment would hold the write end of its sentinel). */

struct overlap {
    mp_process *longer[200];
    pthread_barrier_t done;
};

static void quick_or_long(int i, void *ctx)
{
    struct overlap *o = ctx;

    for (int k = 0; k < 200; k++) {
        mp_process *p = new_named(i == 0 ? "quick" : "pause_until_signalled",
                                  "w");
        ASSERT_OK(mp_process_start(p));
        if (i == 1) {
            o->longer[k] = p;
            continue;
        }
        ASSERT_EQ(0, mp_process_join(p, 10.0 * check_slowdown()));
        mp_process_free(p);
    }
    pthread_barrier_wait(&o->done);
    if (i == 1)
        for (int k = 0; k < 200; k++) {
            ASSERT_OK(mp_process_terminate(o->longer[k]));
            ASSERT_OK(mp_process_join(o->longer[k], MP_FOREVER));
            mp_process_free(o->longer[k]);
        }
}

TEST(sentinel_is_not_held_by_a_child_another_thread_starts)
{
    struct overlap o;

    skip_under_valgrind();
    ASSERT_EQ(0, pthread_barrier_init(&o.done, NULL, 2));
    run_crew(2, quick_or_long, &o);
    pthread_barrier_destroy(&o.done);
}

/* A program's own fork() while another thread is inside libmp: the child
 * finds no lock of libmp's held (each is held across fork() by its atfork
 * handlers from the first call that takes it). */

struct forking {
    pthread_barrier_t started;
    int stop;
};

static void ask_or_fork(int i, void *ctx)
{
    struct forking *f = ctx;

    if (i == 1) {
        pthread_barrier_wait(&f->started);
        while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
            mp_process **list;
            size_t n;

            (void)mp_get_start_method(1);
            ASSERT_OK(mp_active_children(&list, &n));
            mp_process_list_free(list, n);
        }
        return;
    }
    pthread_barrier_wait(&f->started);
    for (int k = 0; k < 300; k++) {
        struct pollfd pfd = { .events = POLLIN };
        int status, gone[2];
        pid_t pid;

        /* The write end is the child's alone: EOF once it has exited. */
        ASSERT_EQ(0, pipe2(gone, O_CLOEXEC));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
            mp_process **list;
            size_t n;

            (void)mp_get_start_method(1);
            if (mp_active_children(&list, &n) < 0)
                _exit(1);
            _exit(0);
        }
        close(gone[1]);
        pfd.fd = gone[0];
        if (poll(&pfd, 1, 10000) != 1) {
            kill(pid, SIGKILL);
            check_fail(__FILE__, __LINE__, "fork %d: the child hangs", k);
        }
        close(gone[0]);
        ASSERT_EQ(pid, waitpid(pid, &status, 0));
        ASSERT_EQ(0, status);
    }
    __atomic_store_n(&f->stop, 1, __ATOMIC_RELAXED);
}

TEST(program_forks_while_another_thread_is_inside_libmp)
{
    struct forking f = { .stop = 0 };
    mp_process **list;
    size_t n;

    skip_under_valgrind();
    /* The first calls, which may register the fork handlers, come before
     * any fork: ThreadSanitizer's pthread_once, unlike glibc's, hangs a
     * child forked while another thread was inside it. */
    (void)mp_get_start_method(1);
    ASSERT_OK(mp_active_children(&list, &n));
    mp_process_list_free(list, n);
    ASSERT_EQ(0, pthread_barrier_init(&f.started, NULL, 2));
    run_crew(2, ask_or_fork, &f);
    pthread_barrier_destroy(&f.started);
}

/* One connection: a thread sends on it while another receives from it. */

struct duplex {
    mp_conn *mine, *peer;
};

static void send_recv_or_echo(int i, void *ctx)
{
    struct duplex *d = ctx;

    for (int k = 0; k < 2000; k++) {
        void *buf = NULL;
        size_t len;
        int v;

        if (i == 0) {
            ASSERT_OK(mp_conn_send_bytes(d->mine, &k, sizeof(k)));
        } else if (i == 1) {
            ASSERT_OK(mp_conn_recv_bytes(d->mine, &buf, &len, MP_NOLIMIT));
            ASSERT_EQ(sizeof(v), len);
            memcpy(&v, buf, sizeof(v));
            ASSERT_EQ(k, v); /* one sender: its order */
        } else {
            ASSERT_OK(mp_conn_recv_bytes(d->peer, &buf, &len, MP_NOLIMIT));
            ASSERT_OK(mp_conn_send_bytes(d->peer, buf, len));
        }
        free(buf);
    }
}

TEST(one_connection_sends_in_one_thread_and_receives_in_another)
{
    struct duplex d;

    ASSERT_OK(mp_pipe(&d.mine, &d.peer, 1));
    run_crew(3, send_recv_or_echo, &d);
    mp_conn_free(d.mine);
    mp_conn_free(d.peer);
}

/* A child another thread starts by a method of its own must not hold the
 * descriptors that tell this child's end: the server's end of a forkserver
 * child's socket, or (no pidfds) a spawned child's sentinel pipe.  One
 * thread starts forkserver or spawn children while another forks long-lived
 * ones; the first must all read as ended once they are (the forkserver
 * children when their server is killed: exit code 255). */
struct mixed {
    const char *method;
    mp_process *longer[40], *watched[40];
};

static void watched_or_long(int i, void *ctx)
{
    struct mixed *mx = ctx;

    for (int k = 0; k < 40; k++) {
        mp_context *c;
        mp_process *p;

        if (i == 1) {
            mx->longer[k] = new_named("pause_until_signalled", "w");
            ASSERT_OK(mp_process_start(mx->longer[k]));
            continue;
        }
        ASSERT_OK(mp_get_context(&c, mx->method));
        ASSERT_OK(mp_context_process_new(c, &p,
                                         strcmp(mx->method, "spawn") == 0
                                             ? "quick"
                                             : "pause_until_signalled",
                                         NULL, 0, NULL));
        ASSERT_OK(mp_process_start(p));
        mx->watched[k] = p;
    }
}

static void end_longer(struct mixed *mx)
{
    for (int k = 0; k < 40; k++) {
        ASSERT_OK(mp_process_kill(mx->longer[k]));
        ASSERT_OK(mp_process_join(mx->longer[k], MP_FOREVER));
        mp_process_free(mx->longer[k]);
    }
}

/* The pid of the OS parent of process pid (/proc/pid/stat, field 4). */
static pid_t os_parent(pid_t pid)
{
    char path[64], buf[512], *close_paren;
    long ppid = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    ASSERT_TRUE((f = fopen(path, "r")) != NULL);
    ASSERT_TRUE(fgets(buf, sizeof(buf), f) != NULL);
    fclose(f);
    ASSERT_TRUE((close_paren = strrchr(buf, ')')) != NULL);
    ASSERT_EQ(1, sscanf(close_paren + 2, "%*c %ld", &ppid));
    return (pid_t)ppid;
}

TEST(forkserver_children_end_though_another_thread_forks)
{
    struct mixed mx = { .method = "forkserver" };
    pid_t server, pid;
    int code;

    skip_under_valgrind();
    run_crew(2, watched_or_long, &mx);
    ASSERT_EQ(1, mp_process_pid(mx.watched[0], &pid));
    server = os_parent(pid);
    ASSERT_EQ(0, kill(server, SIGKILL));
    for (int k = 0; k < 40; k++) {
        mp_process *p = mx.watched[k];
        ASSERT_EQ(1, mp_process_pid(p, &pid));
        ASSERT_EQ(0, mp_process_join(p, 5.0 * check_slowdown()));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(255, code); /* its server died before telling */
        kill(pid, SIGKILL); /* orphaned, still running: not ours now */
        mp_process_free(p);
    }
    end_longer(&mx);
}

TEST(spawn_children_end_though_another_thread_forks)
{
    struct mixed mx = { .method = "spawn" };

    skip_under_valgrind();
    run_crew(2, watched_or_long, &mx);
    for (int k = 0; k < 40; k++) {
        ASSERT_EQ(0, mp_process_join(mx.watched[k], 10.0 * check_slowdown()));
        mp_process_free(mx.watched[k]);
    }
    end_longer(&mx);
}

/* In a child, the threads share its parent object, whose lock a program's
 * own fork() must not copy held (the fork child then hung in is_alive()). */
static int asking_stop; /* atomic */

static void *ask_parent(void *unused)
{
    (void)unused;
    while (!__atomic_load_n(&asking_stop, __ATOMIC_RELAXED))
        (void)mp_process_is_alive(mp_parent_process());
    return NULL;
}

MP_TARGET(fork_while_asking_parent)
{
    pthread_t t;
    int bad = 0;

    (void)arg;
    (void)len;
    if (pthread_create(&t, NULL, ask_parent, NULL) != 0)
        return 2;
    for (int k = 0; k < 300 && !bad; k++) {
        struct pollfd pfd = { .events = POLLIN };
        int gone[2], status;
        pid_t pid;

        if (pipe2(gone, O_CLOEXEC) < 0 || (pid = fork()) < 0)
            return 3;
        if (pid == 0)
            _exit(mp_process_is_alive(mp_parent_process()) >= 0 ? 0 : 1);
        close(gone[1]);
        pfd.fd = gone[0];
        if (poll(&pfd, 1, 10000) != 1) {
            kill(pid, SIGKILL);
            bad = 4; /* it hangs */
        }
        close(gone[0]);
        if (waitpid(pid, &status, 0) != pid || (!bad && status != 0))
            bad = bad ? bad : 5;
    }
    __atomic_store_n(&asking_stop, 1, __ATOMIC_RELAXED);
    pthread_join(t, NULL);
    return bad;
}

TEST(a_childs_fork_while_another_thread_asks_its_parent)
{
    mp_process *p = new_named("fork_while_asking_parent", "w");
    int code = -1;

    skip_under_valgrind();
    ASSERT_OK(mp_process_start(p));
    ASSERT_EQ(0, mp_process_join(p, 60.0 * check_slowdown()));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    mp_process_free(p);
}
