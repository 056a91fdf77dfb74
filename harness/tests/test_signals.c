/*
 * test_signals.c - every blocking call of libmp under a storm of signals.
 *
 * CPython's PEP 475: a system call that a signal interrupts, whose handler
 * returns, is retried, and a timed call keeps its deadline.  Here a handler
 * is installed without SA_RESTART, so every system call a signal
 * interrupts fails with EINTR, and a storm sends that signal tens of
 * thousands of times a second (from a thread, with tgkill(), or from
 * another process, with kill(); the rounds alternate) while the test sits
 * in each blocking call: join with and without a timeout and the stop
 * sequence, start itself (spawn's and the fork server's handshakes, the
 * server started anew), capture, a child's join of its parent and a
 * child's exit teardown joining its own child (the storm then in the
 * child), put on a full bounded queue and get on an empty one (timed and
 * not, every get form), JoinableQueue.join, a put that grows the ring,
 * poll, recv_bytes, recv_bytes_into and send of a message far larger than
 * a pipe holds (on a pipe and on a socket), wait(), and the waits of the
 * synchronisation objects (Lock, Semaphore and robust Lock acquire,
 * Condition wait and wait_for, Event wait, Barrier wait).  Each call must
 * give the result it gives without signals, and a timed call must neither
 * return before its timeout nor more than LATE after it (widened by
 * CHECK_SLOWDOWN; those over SLOW are counted).  A timed call during which
 * no signal arrived proves nothing, and is made again (three such in a row
 * fail).
 *
 * The other side of each call (a put, a send, a child's exit) comes from a
 * thread that blocks the signal, or from a child process, DELAY after the
 * call began.  With STRESS_SECONDS set, each test runs its rounds for that
 * long and prints a "stress: signals [...]" line with its figures.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

#define STORM_SIG SIGUSR1
#define PERIOD_NS 20000 /* between two sends: 50,000 a second at most */
#define LATE 0.1        /* the most a timed call may overshoot: the
                           wake-up of a thread on a loaded 2-core machine
                           (up to 60 ms seen with a load average of 7) */
#define SLOW 0.01       /* an overshoot worth counting */
#define TIMEOUT 0.05    /* the timed calls' timeout */
#define DELAY 0.03      /* before the other side acts */
#define SHORT 1.0       /* seconds of rounds a test runs in make check */

static const char *const methods[] = { "fork", "spawn", "forkserver" };

/* ThreadSanitizer cannot start a thread in the child of a process that had
 * several: a fork child makes no storm of its own there. */
#define TSAN CHECK_TSAN

/* the storm */

static atomic_ulong delivered;

static void on_storm(int sig)
{
    (void)sig;
    atomic_fetch_add_explicit(&delivered, 1, memory_order_relaxed);
}

struct storm {
    pthread_t thread;
    pid_t sender; /* the sending process, or 0: a thread sends */
    pid_t pid, tid;
    bool sleep;   /* pace by sleeping, not spinning */
    atomic_bool stop;
};

static void block_storm(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, STORM_SIG);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Valgrind runs one thread at a time: a sender that spins would starve
 * the test there. */
static bool under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");

    return p != NULL && strstr(p, "vgpreload") != NULL;
}

/* Sends until stopped, one signal every PERIOD_NS.  A nanosleep() here
 * takes 50 us or more whatever it asks for (a timer interrupt, a VM's
 * timer), a third of the pace wanted: so the sender spins on the clock
 * between two sends, yielding the CPU to whatever else may run.  It sleeps under valgrind, and in a child's storm,
 * which runs beside its parent's (two spinners would take both CPUs of a
 * 2-core machine from the calls they interrupt). */
static void send_loop(pid_t pid, pid_t tid, bool sleep, atomic_bool *stop)
{
    struct timespec period = { 0, PERIOD_NS };
    double next = check_now();

    while (stop == NULL || !atomic_load_explicit(stop, memory_order_relaxed)) {
        if (tid != 0)
            syscall(SYS_tgkill, pid, tid, STORM_SIG);
        else
            kill(pid, STORM_SIG);
        if (sleep) {
            nanosleep(&period, NULL);
            continue;
        }
        /* Yielding: a call whose timeout has fired runs first. */
        next += PERIOD_NS / 1e9;
        while (check_now() < next)
            sched_yield();
    }
}

static void *storm_thread(void *arg)
{
    struct storm *s = arg;

    block_storm();
    send_loop(s->pid, s->tid, s->sleep, &s->stop);
    return NULL;
}

/* Starts a storm at the calling thread (from_process: at the process, from
 * a child of the test's, which only this thread can take it in: every
 * other thread the test makes blocks the signal); `in_child`: paced by
 * sleeping. */
static void storm_start(struct storm *s, bool from_process, bool in_child)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_storm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0; /* no SA_RESTART: interrupted calls see EINTR */
    ASSERT_EQ(0, sigaction(STORM_SIG, &sa, NULL));
    s->pid = getpid();
    s->tid = (pid_t)syscall(SYS_gettid);
    s->sender = 0;
    s->sleep = in_child || under_valgrind();
    atomic_store(&s->stop, false);
    if (from_process) {
        fflush(NULL);
        s->sender = fork();
        ASSERT_TRUE(s->sender >= 0);
        if (s->sender == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != s->pid)
                _exit(0);
            send_loop(s->pid, 0, s->sleep, NULL);
        }
    } else {
        ASSERT_EQ(0, pthread_create(&s->thread, NULL, storm_thread, s));
    }
}

static void storm_stop(struct storm *s)
{
    int status;

    if (s->sender > 0) {
        kill(s->sender, SIGKILL);
        while (waitpid(s->sender, &status, 0) < 0 && errno == EINTR)
            ;
    } else {
        atomic_store(&s->stop, true);
        pthread_join(s->thread, NULL);
    }
}

/* the figures, and the checks of a timed call */

struct stats {
    unsigned long calls, timed, starts;
    double worst;        /* the largest overshoot of a timed call */
    unsigned long slow;  /* timed calls that overshot by more than SLOW */
    unsigned long sig0;  /* delivered when the test began */
    unsigned long child_signals; /* delivered in children, under theirs */
};

static void stats_begin(struct stats *st)
{
    memset(st, 0, sizeof(*st));
    st->sig0 = atomic_load(&delivered);
}

/* Checks a timed call's timing; whether a signal arrived during it. */
static bool timed_check(struct stats *st, const char *call, int line,
                        double t0, double timeout, unsigned long s0)
{
    double took = check_now() - t0, over = took - timeout;
    unsigned long got = atomic_load(&delivered) - s0;

    if (took < timeout)
        check_fail(__FILE__, line, "%s returned %.1f us before its timeout",
                   call, (timeout - took) * 1e6);
    if (over > LATE * check_slowdown())
        check_fail(__FILE__, line, "%s returned %.1f ms after its timeout",
                   call, over * 1e3);
    if (over > st->worst)
        st->worst = over;
    st->slow += over > SLOW;
    st->timed++;
    st->calls++;
    return got > 0;
}

/* A call with a timeout: its result, then its timing.  One during which no
 * signal arrived (the sender had no CPU: a spinning thread is the first a
 * loaded machine leaves waiting) proved nothing and is made again; three
 * in a row fail. */
#define TIMED(st, timeout, expected, call)                                    \
    do {                                                                      \
        for (int try_ = 1;; try_++) {                                         \
            unsigned long s0_ = atomic_load(&delivered);                      \
            double t0_ = check_now();                                         \
            ASSERT_EQ((expected), (call));                                    \
            if (timed_check((st), #call, __LINE__, t0_, (timeout), s0_))      \
                break;                                                        \
            if (try_ == 3)                                                    \
                check_fail(__FILE__, __LINE__,                                \
                           "%s: no signal arrived, three times", #call);      \
        }                                                                     \
    } while (0)

/* A call without one (or one that an event ends first). */
#define UNTIMED(st, expected, call)                                           \
    do {                                                                      \
        ASSERT_EQ((expected), (call));                                        \
        (st)->calls++;                                                        \
    } while (0)

/* The rounds of a test: SHORT seconds, or STRESS_SECONDS; at least one. */
static double test_end(void)
{
    double s = check_stress_seconds();

    return check_now() + (s > 0 ? s : SHORT);
}

static void stats_report(const struct stats *st, const char *part,
                         unsigned rounds)
{
    double sig = (double)(atomic_load(&delivered) - st->sig0 +
                          st->child_signals);
    char figures[256];

    snprintf(figures, sizeof(figures),
             "%.0f signals, %u rounds, %lu calls (%lu timed, %lu starts), "
             "worst overshoot %.1f ms, %lu over %.0f ms",
             sig, rounds, st->calls, st->timed, st->starts, st->worst * 1e3,
             st->slow, SLOW * 1e3);
    if (check_stress_seconds() > 0) {
        printf("stress: signals [%s]: %s, ok\n", part, figures);
        fflush(stdout);
    } else {
        check_diag("signals [%s]: %s", part, figures);
    }
}

/* Runs round(st, r) under a storm until the test's end (the storm from a
 * thread in even rounds, from another process in odd ones; before(), if
 * any, ahead of each storm), then reports the figures of part. */
static void storm_rounds(const char *part,
                         void (*round)(struct stats *st, unsigned r),
                         void (*before)(void))
{
    struct stats st;
    struct storm s;
    double end = test_end();
    unsigned rounds = 0;

    stats_begin(&st);
    do {
        if (before != NULL)
            before();
        storm_start(&s, rounds % 2 == 1, false);
        round(&st, rounds);
        storm_stop(&s);
        rounds++;
    } while (check_now() < end);
    stats_report(&st, part, rounds);
}

/* the other side: a thread that acts after a delay */

static void nap(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };

    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

struct actor {
    pthread_t thread;
    double delay;
    void (*fn)(void *);
    void *arg;
};

static void *actor_main(void *arg)
{
    struct actor *a = arg;

    block_storm();
    nap(a->delay);
    a->fn(a->arg);
    return NULL;
}

static void actor_start(struct actor *a, double delay, void (*fn)(void *),
                        void *arg)
{
    a->delay = delay;
    a->fn = fn;
    a->arg = arg;
    ASSERT_EQ(0, pthread_create(&a->thread, NULL, actor_main, a));
}

static void actor_join(struct actor *a)
{
    pthread_join(a->thread, NULL);
}

/* targets */

/* Waits for one message on its connection, then exits with 7. */
MP_TARGET(wait_release)
{
    void *buf = NULL;
    size_t n;
    int r = mp_conn_recv_bytes(mp_args_conn(args, 0), &buf, &n, MP_NOLIMIT);

    free(buf);
    return r < 0 ? r : 7;
}

MP_TARGET(sleep_then_exit)
{
    nap(mp_args_double(args, 0));
    return 7;
}

#define OUTPUT (100 * 1000) /* more than a pipe holds */

/* Writes OUTPUT bytes to stdout, waits to be released, writes "end\n". */
MP_TARGET(write_then_wait)
{
    static char block[OUTPUT];
    void *buf = NULL;
    size_t n, done = 0;

    for (size_t i = 0; i < sizeof(block); i++)
        block[i] = (char)('a' + i % 26);
    while (done < sizeof(block)) {
        ssize_t w = write(1, block + done, sizeof(block) - done);
        if (w < 0 && errno != EINTR)
            return 3;
        done += w > 0 ? (size_t)w : 0;
    }
    if (mp_conn_recv_bytes(mp_args_conn(args, 0), &buf, &n, MP_NOLIMIT) < 0)
        return 4;
    free(buf);
    return write(1, "end\n", 4) == 4 ? 0 : 5;
}

/* Under a storm of its own: three timed joins of its parent, which runs
 * on; sends "code worst_us signals" on its connection (the overshoot of the
 * join that failed, if one did).  Exit code 0, or the step that failed:
 * 10 + i a join that did not time out, 20 + i one early, 25 + i one late,
 * 30 is_alive(), 31 no signal. */
MP_TARGET(join_parent)
{
    mp_conn *c = mp_args_conn(args, 0);
    mp_process *parent = mp_parent_process();
    unsigned long s0 = atomic_load(&delivered);
    double worst = 0;
    struct storm s;
    char line[128];
    int code = 0;

    storm_start(&s, false, true);
    for (int i = 0; i < 3 && code == 0; i++) {
        double t0 = check_now(), over;
        if (mp_process_join(parent, TIMEOUT) != MP_ETIMEDOUT)
            code = 10 + i;
        over = check_now() - t0 - TIMEOUT;
        if (code == 0 && over < 0)
            code = 20 + i; /* early */
        if (code == 0 && over > LATE * check_slowdown())
            code = 25 + i; /* late */
        worst = over > worst || code != 0 ? over : worst;
    }
    if (code == 0 && mp_process_is_alive(parent) != 1)
        code = 30;
    storm_stop(&s);
    if (code == 0 && atomic_load(&delivered) == s0)
        code = 31;
    snprintf(line, sizeof(line), "%d %.0f %lu", code, worst * 1e6,
             atomic_load(&delivered) - s0);
    if (mp_conn_send_str(c, line) < 0)
        return 32;
    return code;
}

MP_TARGET(grandchild)
{
    nap(2 * DELAY);
    return mp_conn_send_str(mp_args_conn(args, 0), "gc") < 0 ? 41 : 0;
}

/* Under a storm of its own, starts a child that sleeps, then sends "gc"
 * on the connection, and returns without joining it: its exit teardown
 * joins it, as CPython's util._exit_function does. */
MP_TARGET(teardown_joins)
{
    static struct storm s; /* it outlives the target: to the exit */
    mp_process *p = NULL;

    storm_start(&s, false, true);
    if (mp_process_create(&p, &grandchild_target,
                          MP_ARGS(mp_args_conn(args, 0)), NULL) < 0 ||
        mp_process_start(p) < 0)
        return 40;
    mp_process_free(p);
    return 0;
}

/* A child that puts a message after a delay (the queue's other process). */
MP_TARGET(put_later)
{
    nap(DELAY);
    return mp_queue_put_str(mp_args_queue(args, 0), "from a child") < 0;
}

/* A child that sets an Event after a delay (the waiter's other process). */
MP_TARGET(set_later)
{
    nap(DELAY);
    return mp_event_set(mp_args_event(args, 0)) < 0;
}

/* processes */

static mp_process *make(int m, const mp_target *t, const mp_arg *a, size_t n,
                        mp_process_options *o)
{
    mp_process_options none = { 0 };
    mp_context *ctx;
    mp_process *p = NULL;

    if (o == NULL)
        o = &none;
    ASSERT_OK(mp_get_context(&ctx, methods[m]));
    o->context = ctx;
    ASSERT_OK(mp_process_create(&p, t, a, n, o));
    return p;
}

static void start(struct stats *st, mp_process *p)
{
    UNTIMED(st, 0, mp_process_start(p));
    st->starts++;
}

static int exitcode(mp_process *p)
{
    int code = -1000;

    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    return code;
}

static void send_release(void *arg)
{
    ASSERT_OK(mp_conn_send_str(arg, "go"));
}

/* One round of the process calls under method m. */
static void process_round(int m, struct stats *st)
{
    mp_conn *r, *w;
    mp_process *p;
    struct actor a;
    int fd, ready;
    double t0;

    ASSERT_OK(mp_pipe(&r, &w, 0));

    /* join(timeout), wait() on the sentinel, join() ended by the exit */
    p = make(m, &wait_release_target, MP_ARGS(r), NULL);
    start(st, p);
    TIMED(st, TIMEOUT, MP_ETIMEDOUT, mp_process_join(p, TIMEOUT));
    fd = mp_process_sentinel(p);
    ASSERT_TRUE(fd >= 0);
    TIMED(st, TIMEOUT, 0, mp_wait(&fd, 1, TIMEOUT, &ready));
    actor_start(&a, DELAY, send_release, w);
    t0 = check_now();
    UNTIMED(st, 0, mp_process_join(p, 30));
    ASSERT_TRUE(check_now() - t0 < 10);
    actor_join(&a);
    ASSERT_EQ(7, exitcode(p));
    mp_process_free(p);

    /* join() for ever, the child ending on its own */
    p = make(m, &sleep_then_exit_target, MP_ARGS(DELAY), NULL);
    start(st, p);
    UNTIMED(st, 0, mp_process_join(p, MP_FOREVER));
    ASSERT_EQ(7, exitcode(p));
    mp_process_free(p);

    /* wait() for ever on a sentinel */
    p = make(m, &sleep_then_exit_target, MP_ARGS(DELAY), NULL);
    start(st, p);
    fd = mp_process_sentinel(p);
    UNTIMED(st, 1, mp_wait(&fd, 1, MP_FOREVER, &ready));
    ASSERT_EQ(1, ready);
    UNTIMED(st, 0, mp_process_join(p, MP_FOREVER));
    mp_process_free(p);

    /* the stop sequence: its first step times out, SIGTERM ends it */
    {
        mp_stop_actions stop = { { MP_STOP_WAIT, TIMEOUT },
                                 { MP_STOP_TERMINATE, 30 },
                                 { MP_STOP_KILL, MP_FOREVER } };
        int code = 0;

        p = make(m, &wait_release_target, MP_ARGS(r), NULL);
        start(st, p);
        t0 = check_now();
        UNTIMED(st, 0, mp_process_stop(p, &stop, &code));
        ASSERT_TRUE(check_now() - t0 >= TIMEOUT);
        ASSERT_EQ(-SIGTERM, code);
        mp_process_free(p);
    }

    /* capture(timeout), then to the end */
    {
        mp_process_options o = { 0 };
        char *out = NULL;
        size_t outlen = 0;

        o.stdio[1].how = MP_STDIO_PIPE;
        p = make(m, &write_then_wait_target, MP_ARGS(r), &o);
        start(st, p);
        /* What it read is kept for the next call (not dropped: out is
         * given). */
        TIMED(st, TIMEOUT, MP_ETIMEDOUT,
              mp_process_capture(p, &out, &outlen, NULL, NULL, TIMEOUT));
        actor_start(&a, DELAY, send_release, w);
        UNTIMED(st, 0,
                mp_process_capture(p, &out, &outlen, NULL, NULL,
                                   MP_FOREVER));
        actor_join(&a);
        ASSERT_EQ(OUTPUT + 4, outlen);
        for (size_t i = 0; i < OUTPUT; i++)
            if (out[i] != (char)('a' + i % 26))
                check_fail(__FILE__, __LINE__, "byte %zu differs", i);
        ASSERT_TRUE(memcmp(out + OUTPUT, "end\n", 4) == 0);
        free(out);
        UNTIMED(st, 0, mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(0, exitcode(p));
        mp_process_free(p);
    }

    /* a child's timed join of its parent, under the child's storm */
    if (!(TSAN && m == 0)) {
        char *line = NULL;
        int code = -1;
        double worst_us = 0;
        unsigned long sig = 0;

        p = make(m, &join_parent_target, MP_ARGS(w), NULL);
        start(st, p);
        UNTIMED(st, 0, mp_conn_recv_str(r, &line));
        ASSERT_EQ(3, sscanf(line, "%d %lf %lu", &code, &worst_us, &sig));
        if (code != 0)
            check_fail(__FILE__, __LINE__, "a child's join of its parent: "
                       "step %d, overshoot %.1f ms, %lu signals", code,
                       worst_us / 1e3, sig);
        free(line);
        UNTIMED(st, 0, mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(0, exitcode(p));
        mp_process_free(p);
        st->timed += 3;
        st->calls += 3;
        st->child_signals += sig;
        st->slow += worst_us > SLOW * 1e6;
        if (worst_us / 1e6 > st->worst)
            st->worst = worst_us / 1e6;
    }

    /* a child's exit teardown joins its child, under the child's storm */
    if (!(TSAN && m == 0)) {
        char *msg = NULL;

        p = make(m, &teardown_joins_target, MP_ARGS(w), NULL);
        start(st, p);
        UNTIMED(st, 0, mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(0, exitcode(p));
        /* The grandchild had sent its message before the child ended. */
        ASSERT_EQ(1, mp_conn_poll(r, 0));
        UNTIMED(st, 0, mp_conn_recv_str(r, &msg));
        ASSERT_STREQ("gc", msg);
        free(msg);
        mp_process_free(p);
    }

    ASSERT_EQ(0, mp_conn_poll(r, 0)); /* nothing left over */
    mp_conn_free(r);
    mp_conn_free(w);
}

static int method; /* the process tests' */

static void process_rounds(struct stats *st, unsigned round)
{
    (void)round;
    process_round(method, st);
}

/* The fork server started anew under the storm, every round. */
static void new_forkserver(void)
{
    mp__forkserver_stop();
}

static void process_test(int m)
{
    method = m;
    storm_rounds(methods[m], process_rounds, m == 2 ? new_forkserver : NULL);
}

TEST(storm_over_process_calls_fork) { process_test(0); }
TEST(storm_over_process_calls_spawn) { process_test(1); }
TEST(storm_over_process_calls_forkserver) { process_test(2); }

/* queues */

static void get_one(void *arg)
{
    void *buf = NULL;
    size_t len;

    ASSERT_OK(mp_queue_get(arg, &buf, &len, 1, 30));
    free(buf);
}

static void put_one(void *arg)
{
    ASSERT_OK(mp_queue_put_str(arg, "late"));
}

static void put_i64(void *arg)
{
    ASSERT_OK(mp_queue_put_i64(arg, 42));
}

static void get_and_mark_done(void *arg)
{
    get_one(arg);
    ASSERT_OK(mp_queue_task_done(arg));
}

#define BIG_MSG (3 * 1024 * 1024) /* grows a 256 KiB ring */

static void get_big(void *arg)
{
    void *buf = NULL;
    size_t len = 0;

    ASSERT_OK(mp_queue_get(arg, &buf, &len, 1, 30));
    ASSERT_EQ(BIG_MSG, len);
    for (size_t i = 0; i < len; i += 4096)
        ASSERT_EQ((unsigned char)(i / 4096), ((unsigned char *)buf)[i]);
    free(buf);
}

static void expect_str(struct stats *st, mp_queue *q, const char *want)
{
    char *s = NULL;

    UNTIMED(st, 0, mp_queue_get_str(q, &s, MP_FOREVER));
    ASSERT_STREQ(want, s);
    free(s);
}

static void queue_round(struct stats *st, unsigned round)
{
    (void)round;
    mp_queue *q, *jq, *sq;
    struct actor a;
    char buf[64];
    size_t len;
    long long v = 0;
    void *out = NULL;

    /* a full bounded queue: put(timeout), then put() for ever */
    ASSERT_OK(mp_queue_new(&q, 2));
    ASSERT_OK(mp_queue_put_str(q, "one"));
    ASSERT_OK(mp_queue_put_str(q, "two"));
    TIMED(st, TIMEOUT, MP_EFULL, mp_queue_put(q, "x", 1, 1, TIMEOUT));
    actor_start(&a, DELAY, get_one, q);
    UNTIMED(st, 0, mp_queue_put(q, "three", 5, 1, MP_FOREVER));
    actor_join(&a);
    expect_str(st, q, "two");
    expect_str(st, q, "three");

    /* an empty queue: every get form, timed, then for ever */
    TIMED(st, TIMEOUT, MP_EEMPTY, mp_queue_get(q, &out, &len, 1, TIMEOUT));
    TIMED(st, TIMEOUT, MP_EEMPTY,
          mp_queue_get_into(q, buf, sizeof(buf), &len, 1, TIMEOUT));
    TIMED(st, TIMEOUT, MP_EEMPTY, mp_queue_get_i64(q, &v, TIMEOUT));
    actor_start(&a, DELAY, put_one, q);
    expect_str(st, q, "late");
    actor_join(&a);
    actor_start(&a, DELAY, put_i64, q);
    UNTIMED(st, 0, mp_queue_get_i64(q, &v, MP_FOREVER));
    ASSERT_EQ(42, v);
    actor_join(&a);

    /* the other side in another process */
    {
        mp_process *p = make(0, &put_later_target, MP_ARGS(q), NULL);

        start(st, p);
        expect_str(st, q, "from a child");
        UNTIMED(st, 0, mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(0, exitcode(p));
        mp_process_free(p);
    }
    mp_queue_free(q);

    /* a put that grows the ring while a get waits for it */
    {
        unsigned char *big = malloc(BIG_MSG);

        ASSERT_TRUE(big != NULL);
        for (size_t i = 0; i < BIG_MSG; i++)
            big[i] = (unsigned char)(i / 4096);
        ASSERT_OK(mp_queue_new(&q, 0));
        actor_start(&a, 0, get_big, q);
        UNTIMED(st, 0, mp_queue_put(q, big, BIG_MSG, 1, MP_FOREVER));
        actor_join(&a);
        mp_queue_free(q);
        free(big);
    }

    /* JoinableQueue.join(timeout), then for ever */
    ASSERT_OK(mp_joinable_queue_new(&jq, 0));
    ASSERT_OK(mp_queue_put_str(jq, "task"));
    TIMED(st, TIMEOUT, MP_ETIMEDOUT, mp_queue_join(jq, TIMEOUT));
    actor_start(&a, DELAY, get_and_mark_done, jq);
    UNTIMED(st, 0, mp_queue_join(jq, MP_FOREVER));
    actor_join(&a);
    mp_queue_free(jq);

    /* SimpleQueue.get() for ever */
    ASSERT_OK(mp_simple_queue_new(&sq));
    actor_start(&a, DELAY, put_one, sq);
    expect_str(st, sq, "late");
    actor_join(&a);
    mp_queue_free(sq);
}

TEST(storm_over_queue_calls)
{
    storm_rounds("queue", queue_round, NULL);
}

/* synchronisation objects */

/* Another thread holds the lock until told to let it go (a robust lock
 * can only be released by its holder), then lets it go after DELAY. */
struct holder {
    mp_lock *l;
    sem_t held, go;
};

static void hold_lock(void *arg)
{
    struct holder *h = arg;

    ASSERT_EQ(1, mp_lock_acquire(h->l, 1, MP_FOREVER));
    sem_post(&h->held);
    while (sem_wait(&h->go) != 0)
        ASSERT_EQ(EINTR, errno);
    nap(DELAY);
    ASSERT_OK(mp_lock_release(h->l));
}

static void notify_cond(void *arg)
{
    ASSERT_EQ(1, mp_cond_acquire(arg, 1, MP_FOREVER));
    ASSERT_OK(mp_cond_notify(arg, 1));
    ASSERT_OK(mp_cond_release(arg));
}

static void set_event(void *arg)
{
    ASSERT_OK(mp_event_set(arg));
}

static void barrier_party(void *arg)
{
    ASSERT_EQ(1, mp_barrier_wait(arg, MP_FOREVER));
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

static void sync_round(struct stats *st, unsigned round)
{
    struct actor a;
    struct holder h;
    mp_cond *c;
    mp_event *e;
    mp_barrier *b;

    /* a Lock, Semaphore(1) and robust Lock that another thread holds:
     * acquire(timeout), then acquire() for ever until it lets go */
    ASSERT_EQ(0, sem_init(&h.held, 0, 0));
    ASSERT_EQ(0, sem_init(&h.go, 0, 0));
    for (int kind = 0; kind < 3; kind++) {
        ASSERT_OK(kind == 0   ? mp_lock_new(&h.l)
                  : kind == 1 ? mp_semaphore_new(&h.l, 1)
                              : mp_lock_new_robust(&h.l));
        actor_start(&a, 0, hold_lock, &h);
        while (sem_wait(&h.held) != 0)
            ASSERT_EQ(EINTR, errno);
        TIMED(st, TIMEOUT, 0, mp_lock_acquire(h.l, 1, TIMEOUT));
        sem_post(&h.go);
        UNTIMED(st, 1, mp_lock_acquire(h.l, 1, MP_FOREVER));
        actor_join(&a);
        ASSERT_OK(mp_lock_release(h.l));
        mp_lock_free(h.l);
    }
    sem_destroy(&h.held);
    sem_destroy(&h.go);

    /* Condition: wait(timeout), wait_for(timeout), then wait() for ever */
    ASSERT_OK(mp_cond_new(&c, NULL));
    ASSERT_EQ(1, mp_cond_acquire(c, 1, MP_FOREVER));
    TIMED(st, TIMEOUT, 0, mp_cond_wait(c, TIMEOUT));
    TIMED(st, TIMEOUT, 0, mp_cond_wait_for(c, never, NULL, TIMEOUT));
    actor_start(&a, DELAY, notify_cond, c);
    UNTIMED(st, 1, mp_cond_wait(c, MP_FOREVER));
    ASSERT_OK(mp_cond_release(c));
    actor_join(&a);
    mp_cond_free(c);

    /* Event: wait(timeout), then wait() for ever, set by a thread or, in
     * every other round, by a child process */
    ASSERT_OK(mp_event_new(&e));
    TIMED(st, TIMEOUT, 0, mp_event_wait(e, TIMEOUT));
    if (round % 2 == 0) {
        actor_start(&a, DELAY, set_event, e);
        UNTIMED(st, 1, mp_event_wait(e, MP_FOREVER));
        actor_join(&a);
    } else {
        mp_process *p = make(0, &set_later_target, MP_ARGS(e), NULL);

        start(st, p);
        UNTIMED(st, 1, mp_event_wait(e, MP_FOREVER));
        UNTIMED(st, 0, mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(0, exitcode(p));
        mp_process_free(p);
    }
    mp_event_free(e);

    /* Barrier(2): wait(timeout) alone breaks it; after reset(), wait() for
     * ever until the other party arrives (this one first: index 0) */
    ASSERT_OK(mp_barrier_new(&b, 2, NULL, MP_FOREVER));
    TIMED(st, TIMEOUT, MP_EBROKENBARRIER, mp_barrier_wait(b, TIMEOUT));
    ASSERT_OK(mp_barrier_reset(b));
    actor_start(&a, DELAY, barrier_party, b);
    UNTIMED(st, 0, mp_barrier_wait(b, MP_FOREVER));
    actor_join(&a);
    mp_barrier_free(b);
}

TEST(storm_over_sync_calls)
{
    storm_rounds("sync", sync_round, NULL);
}

/* connections and wait() */

#define HUGE_MSG (8 * 1024 * 1024) /* 128 times what a pipe holds */

static unsigned char *pattern(size_t n, unsigned seed)
{
    unsigned char *b = malloc(n);

    ASSERT_TRUE(b != NULL);
    for (size_t i = 0; i < n; i++)
        b[i] = (unsigned char)(i * 31 + seed + i / 65536);
    return b;
}

struct big_io {
    mp_conn *c;
    unsigned seed;
};

/* Reads one framed HUGE_MSG from the raw descriptor in slices, with
 * pauses, so that the sender finds the pipe full many times. */
static void slow_read_big(void *arg)
{
    struct big_io *io = arg;
    unsigned char *want = pattern(HUGE_MSG, io->seed);
    unsigned char *got = malloc(HUGE_MSG + 4);
    int fd = mp_conn_fileno(io->c);
    size_t done = 0;

    ASSERT_TRUE(got != NULL);
    while (done < HUGE_MSG + 4) {
        size_t want_n = HUGE_MSG + 4 - done;
        ssize_t n = read(fd, got + done, want_n < 65536 ? want_n : 65536);
        if (n < 0 && errno == EINTR)
            continue;
        ASSERT_TRUE(n > 0);
        done += (size_t)n;
        nap(20e-6);
    }
    ASSERT_EQ(HUGE_MSG, (size_t)got[0] << 24 | (size_t)got[1] << 16 |
                            (size_t)got[2] << 8 | got[3]);
    ASSERT_TRUE(memcmp(got + 4, want, HUGE_MSG) == 0);
    free(got);
    free(want);
}

static void send_big(void *arg)
{
    struct big_io *io = arg;
    unsigned char *b = pattern(HUGE_MSG, io->seed);

    ASSERT_OK(mp_conn_send_bytes(io->c, b, HUGE_MSG));
    free(b);
}

static void send_hello(void *arg)
{
    ASSERT_OK(mp_conn_send_str(arg, "hello"));
}

static void conn_round(struct stats *st, int duplex, unsigned seed)
{
    mp_conn *a, *b;
    struct actor act;
    struct big_io io;
    char buf[16], *s = NULL;
    size_t len = 0;
    int fds[2], ready[2];
    void *msg = NULL;

    ASSERT_OK(mp_pipe(&a, &b, duplex)); /* a reads, b writes */

    /* poll(timeout) and wait(timeout) on nothing to read */
    TIMED(st, TIMEOUT, 0, mp_conn_poll(a, TIMEOUT));
    fds[0] = mp_conn_fileno(a);
    fds[1] = duplex ? mp_conn_fileno(b) : mp_conn_fileno(a);
    TIMED(st, TIMEOUT, 0, mp_wait(fds, 2, TIMEOUT, ready));
    TIMED(st, TIMEOUT, 0, mp_wait(NULL, 0, TIMEOUT, NULL));

    /* poll() and wait() for ever, then each recv form */
    actor_start(&act, DELAY, send_hello, b);
    UNTIMED(st, 1, mp_conn_poll(a, MP_FOREVER));
    actor_join(&act);
    UNTIMED(st, 0, mp_conn_recv_str(a, &s));
    ASSERT_STREQ("hello", s);
    free(s);
    actor_start(&act, DELAY, send_hello, b);
    UNTIMED(st, 1, mp_wait(fds, 1, MP_FOREVER, ready));
    ASSERT_EQ(1, ready[0]);
    actor_join(&act);
    UNTIMED(st, 0, mp_conn_recv_bytes_into(a, buf, sizeof(buf), &len));
    ASSERT_EQ(5, len);
    actor_start(&act, DELAY, send_hello, b);
    UNTIMED(st, 0, mp_conn_recv_bytes(a, &msg, &len, MP_NOLIMIT));
    actor_join(&act);
    ASSERT_EQ(5, len);
    ASSERT_TRUE(memcmp(msg, "hello", 5) == 0);
    free(msg);

    /* a send far larger than the pipe holds, read slowly */
    io.c = a;
    io.seed = seed;
    actor_start(&act, DELAY, slow_read_big, &io);
    {
        unsigned char *big = pattern(HUGE_MSG, seed);
        UNTIMED(st, 0, mp_conn_send_bytes(b, big, HUGE_MSG));
        free(big);
    }
    actor_join(&act);

    /* a receive of one, written in pieces as the reader takes them */
    io.c = b;
    io.seed = seed + 1;
    actor_start(&act, DELAY, send_big, &io);
    UNTIMED(st, 0, mp_conn_recv_bytes(a, &msg, &len, MP_NOLIMIT));
    actor_join(&act);
    ASSERT_EQ(HUGE_MSG, len);
    {
        unsigned char *want = pattern(HUGE_MSG, seed + 1);
        ASSERT_TRUE(memcmp(msg, want, HUGE_MSG) == 0);
        free(want);
    }
    free(msg);

    mp_conn_free(a);
    mp_conn_free(b);
}

static void conn_rounds(struct stats *st, unsigned round)
{
    conn_round(st, 0, round);
    conn_round(st, 1, round + 7);
}

TEST(storm_over_connection_calls)
{
    storm_rounds("connection", conn_rounds, NULL);
}
