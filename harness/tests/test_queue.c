/*
 * test_queue.c - Queue, JoinableQueue and SimpleQueue (queue.c) against
 * CPython's observed behaviour (sections 10-12 of SCENARIOS.md, the catalog
 * of CPython behaviours this project was made from), and
 * what libmp promises beyond it: processes killed with SIGKILL at random
 * points while they put or get, many times, with checksums.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "checked_msg.h"
#include "internal.h" /* mp__queue_get_many() */
#include "test_hooks.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static void expect_get(mp_queue *q, const void *want, size_t want_len)
{
    void *buf = NULL;
    size_t len = 0;

    ASSERT_OK(mp_queue_get(q, &buf, &len, 1, 10.0));
    ASSERT_EQ(want_len, len);
    ASSERT_TRUE(memcmp(buf, want, len) == 0);
    ASSERT_EQ(0, ((char *)buf)[len]);
    free(buf);
}

TEST(fifo_and_boundaries)
{
    static const size_t sizes[] = { 0, 1, 7, 8, 9, 4000, 0, 65536 };
    char *data = malloc(65536 + ARRAY_LEN(sizes));
    mp_queue *q;

    ASSERT_TRUE(data != NULL);
    for (size_t i = 0; i < 65536 + ARRAY_LEN(sizes); i++)
        data[i] = (char)(i * 7 + 3);
    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_EQ(1, mp_queue_empty(q));
    ASSERT_EQ(0, mp_queue_qsize(q));
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++)
        ASSERT_OK(mp_queue_put(q, data + i, sizes[i], 1, MP_FOREVER));
    ASSERT_EQ(ARRAY_LEN(sizes), mp_queue_qsize(q));
    ASSERT_EQ(0, mp_queue_empty(q));
    ASSERT_EQ(0, mp_queue_full(q)); /* unbounded */
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++)
        expect_get(q, data + i, sizes[i]);
    ASSERT_EQ(1, mp_queue_empty(q));
    ASSERT_EQ(0, mp_queue_qsize(q));
    mp_queue_free(q);
    free(data);
}

TEST(strings_as_messages)
{
    mp_queue *q;
    char *s = NULL;

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_queue_put_str(q, "first"));
    ASSERT_OK(mp_queue_put_str(q, ""));
    ASSERT_OK(mp_queue_get_str(q, &s, 1));
    ASSERT_STREQ("first", s);
    free(s);
    ASSERT_OK(mp_queue_get_str(q, &s, 1));
    ASSERT_STREQ("", s);
    free(s);
    ASSERT_EQ(MP_EEMPTY, mp_queue_get_str(q, &s, 0));
    ASSERT_EQ(MP_EINVAL, mp_queue_get_str(q, NULL, 0));
    mp_queue_free(q);
}

TEST(empty_and_full_raise_on_time)
{
    mp_queue *q;
    void *buf;
    size_t len;
    double t;

    ASSERT_OK(mp_queue_new(&q, 2));
    /* get on an empty queue: at once without blocking, for timeout 0 or
     * negative, and for block=False whatever the timeout (#115-#118). */
    t = check_now();
    ASSERT_EQ(MP_EEMPTY, mp_queue_get_nowait(q, &buf, &len));
    ASSERT_EQ(MP_EEMPTY, mp_queue_get(q, &buf, &len, 0, 5.0));
    ASSERT_EQ(MP_EEMPTY, mp_queue_get(q, &buf, &len, 1, 0));
    ASSERT_EQ(MP_EEMPTY, mp_queue_get(q, &buf, &len, 1, -1));
    ASSERT_WITHIN(0, 0.1, check_now() - t);
    t = check_now();
    ASSERT_EQ(MP_EEMPTY, mp_queue_get(q, &buf, &len, 1, 0.3));
    ASSERT_WITHIN(0.3, 0.5, check_now() - t);
    ASSERT_STREQ("queue.Empty", mp_exception_name(MP_EEMPTY));
    /* Queue(2) with two items (#119). */
    ASSERT_OK(mp_queue_put(q, "a", 1, 1, MP_FOREVER));
    ASSERT_EQ(0, mp_queue_full(q));
    ASSERT_OK(mp_queue_put(q, "b", 1, 1, MP_FOREVER));
    ASSERT_EQ(1, mp_queue_full(q));
    ASSERT_EQ(2, mp_queue_qsize(q));
    t = check_now();
    ASSERT_EQ(MP_EFULL, mp_queue_put(q, "c", 1, 0, 5.0));
    ASSERT_EQ(MP_EFULL, mp_queue_put_nowait(q, "c", 1));
    ASSERT_WITHIN(0, 0.1, check_now() - t);
    t = check_now();
    ASSERT_EQ(MP_EFULL, mp_queue_put(q, "c", 1, 1, 0.3));
    ASSERT_WITHIN(0.3, 0.5, check_now() - t);
    ASSERT_STREQ("queue.Full", mp_exception_name(MP_EFULL));
    expect_get(q, "a", 1);
    ASSERT_EQ(0, mp_queue_full(q));
    ASSERT_OK(mp_queue_put_nowait(q, "c", 1));
    expect_get(q, "b", 1);
    expect_get(q, "c", 1);
    ASSERT_EQ(MP_EINVAL, mp_queue_put(q, NULL, 1, 1, 1));
    ASSERT_EQ(MP_EINVAL, mp_queue_get(q, NULL, &len, 1, 1));
    mp_queue_free(q);
}

MP_TARGET(put_later)
{
    (void)len;
    usleep(300 * 1000);
    return mp_queue_put_str(*(mp_queue *const *)arg, "late") < 0;
}

TEST(get_waits_for_a_put_and_put_waits_for_room)
{
    mp_queue *q, *full;
    mp_process *p;
    double t;

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_process_new(&p, "put_later", &q, sizeof(q), NULL));
    ASSERT_OK(mp_process_start(p));
    t = check_now();
    expect_get(q, "late", 4); /* #120 */
    ASSERT_WITHIN(0.1, 3.0, check_now() - t);
    ASSERT_OK(mp_process_join(p, 10));
    mp_process_free(p);

    /* A put blocked on a full queue goes in when a get makes room. */
    ASSERT_OK(mp_queue_new(&full, 1));
    ASSERT_OK(mp_queue_put_str(full, "first"));
    ASSERT_OK(mp_process_new(&p, "put_later", &full, sizeof(full), NULL));
    ASSERT_OK(mp_process_start(p));
    expect_get(full, "first", 5);
    expect_get(full, "late", 4);
    ASSERT_OK(mp_process_join(p, 10));
    mp_process_free(p);
    mp_queue_free(q);
    mp_queue_free(full);
}

TEST(close_and_join_thread)
{
    char repr[128], want[128];
    mp_queue *q;
    void *buf;
    size_t len;

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_EQ(MP_EQNOTCLOSED, mp_queue_join_thread(q)); /* #122 */
    ASSERT_STREQ("AssertionError", mp_exception_name(MP_EQNOTCLOSED));
    ASSERT_OK(mp_queue_put_str(q, "kept"));
    ASSERT_OK(mp_queue_cancel_join_thread(q));
    ASSERT_OK(mp_queue_close(q));
    ASSERT_OK(mp_queue_close(q));
    ASSERT_EQ(MP_EQCLOSED, mp_queue_put_str(q, "x"));
    ASSERT_EQ(MP_EQCLOSED, mp_queue_get(q, &buf, &len, 1, 1));
    ASSERT_EQ(1, mp_queue_qsize(q));
    ASSERT_EQ(0, mp_queue_empty(q));
    ASSERT_OK(mp_queue_join_thread(q));
    ASSERT_TRUE(mp_queue_repr(q, repr, sizeof(repr)) > 0);
    snprintf(want, sizeof(want), "<multiprocessing.queues.Queue object at %p>",
             (void *)q);
    ASSERT_STREQ(want, repr);
    mp_queue_free(q);
    ASSERT_TRUE(mp_queue_free(NULL) == NULL);
}

/* As CPython's: close() has the feeder thread (started by this process's
 * first put) close the reader as it ends, so after join_thread() empty()
 * is OSError: handle is closed; a queue this process never put to keeps
 * answering, and so does a fork child's view of its parent's queue. */
TEST(empty_after_close_and_join_thread)
{
    mp_queue *q;
    void *buf;
    size_t n;
    pid_t pid;
    int st;

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_queue_close(q));
    ASSERT_OK(mp_queue_join_thread(q));
    ASSERT_EQ(1, mp_queue_empty(q)); /* never put to: no feeder */
    mp_queue_free(q);
    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_queue_put_str(q, "a"));
    ASSERT_OK(mp_queue_get(q, &buf, &n, 1, 10));
    free(buf);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) /* its puts were the parent's */
        _exit(mp_queue_close(q) == 0 && mp_queue_join_thread(q) == 0 &&
              mp_queue_empty(q) == 1 ? 0 : 1);
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    ASSERT_EQ(0, st);
    ASSERT_OK(mp_queue_close(q));
    ASSERT_EQ(1, mp_queue_empty(q)); /* before join_thread(): answers */
    ASSERT_OK(mp_queue_join_thread(q));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_queue_empty(q));
    ASSERT_EQ(0, mp_queue_qsize(q));
    mp_queue_free(q);
}

TEST(simple_queue)
{
    mp_queue *q;
    void *buf;
    size_t len;

    ASSERT_OK(mp_simple_queue_new(&q)); /* #131 */
    ASSERT_EQ(1, mp_queue_empty(q));
    ASSERT_OK(mp_queue_put_str(q, "1"));
    ASSERT_OK(mp_queue_put_str(q, "2"));
    ASSERT_EQ(0, mp_queue_empty(q));
    expect_get(q, "1", 1);
    expect_get(q, "2", 1);
    ASSERT_EQ(MP_EINVAL, mp_queue_qsize(q)); /* no qsize, no full */
    ASSERT_EQ(MP_EINVAL, mp_queue_full(q));
    ASSERT_EQ(MP_EINVAL, mp_queue_task_done(q));
    ASSERT_OK(mp_queue_close(q));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_queue_put_str(q, "x"));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_queue_get(q, &buf, &len, 1, 1));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_queue_empty(q));
    mp_queue_free(q);
}

MP_TARGET(take_and_mark)
{
    mp_queue *q = *(mp_queue *const *)arg;
    char buf[16];
    size_t n;

    (void)len;
    for (int i = 0; i < 5; i++) {
        if (mp_queue_get_into(q, buf, sizeof(buf), &n, 1, 10) < 0)
            return 1;
        usleep(20 * 1000);
        if (mp_queue_task_done(q) < 0)
            return 2;
    }
    return mp_queue_task_done(q) == MP_ETASKDONE ? 0 : 3;
}

TEST(joinable_queue)
{
    mp_queue *q;
    mp_process *p;
    int code = -1;
    double t;

    ASSERT_OK(mp_joinable_queue_new(&q, 0));
    ASSERT_EQ(MP_ETASKDONE, mp_queue_task_done(q)); /* #127 */
    ASSERT_STREQ("ValueError", mp_exception_name(MP_ETASKDONE));
    t = check_now();
    ASSERT_OK(mp_queue_join(q, MP_FOREVER)); /* #128 */
    ASSERT_WITHIN(0, 0.1, check_now() - t);
    ASSERT_OK(mp_queue_put_str(q, "x"));
    expect_get(q, "x", 1);
    ASSERT_EQ(MP_ETIMEDOUT, mp_queue_join(q, 0.2)); /* #129 */
    ASSERT_EQ(MP_ETIMEDOUT, mp_queue_join(q, 0));
    ASSERT_OK(mp_queue_task_done(q));
    ASSERT_EQ(MP_ETASKDONE, mp_queue_task_done(q));
    ASSERT_OK(mp_queue_join(q, 0));

    /* #126: a child marks five items; join returns after the last. */
    for (int i = 0; i < 5; i++)
        ASSERT_OK(mp_queue_put_i64(q, i));
    ASSERT_OK(mp_process_new(&p, "take_and_mark", &q, sizeof(q), NULL));
    ASSERT_OK(mp_process_start(p));
    t = check_now();
    ASSERT_OK(mp_queue_join(q, 30));
    ASSERT_WITHIN(0.05, 5.0, check_now() - t);
    ASSERT_OK(mp_process_join(p, 10));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    mp_process_free(p);
    mp_queue_free(q);
}

TEST(plain_queue_has_no_task_done)
{
    mp_queue *q;

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_EQ(MP_EINVAL, mp_queue_task_done(q));
    ASSERT_EQ(MP_EINVAL, mp_queue_join(q, 0));
    mp_queue_free(q);
}

TEST(get_into_keeps_a_message_too_long)
{
    mp_queue *q;
    char buf[4];
    size_t len = 0;
    long long v;

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_queue_put_str(q, "too long"));
    ASSERT_EQ(MP_ETOOSHORT, mp_queue_get_into(q, buf, sizeof(buf), &len, 1,
                                              1));
    ASSERT_EQ(8, len);
    ASSERT_EQ(1, mp_queue_qsize(q));
    expect_get(q, "too long", 8);
    ASSERT_OK(mp_queue_put_i64(q, -42));
    ASSERT_OK(mp_queue_get_i64(q, &v, 1));
    ASSERT_EQ(-42, v);
    ASSERT_OK(mp_queue_put_str(q, "abc"));
    ASSERT_EQ(MP_EBADLENGTH, mp_queue_get_i64(q, &v, 1));
    mp_queue_free(q);
}

/* get_i64/get_double take only an 8-byte message: one too short and one too
 * long both stay in the queue (a short one used to be lost), and the
 * caller's value is left alone. */
TEST(get_i64_and_double_leave_a_wrong_length_message)
{
    mp_queue *q;
    long long v = 7;
    double d = 1.5;

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_queue_put_str(q, "abc"));
    ASSERT_OK(mp_queue_put_str(q, "nine byte"));
    ASSERT_EQ(MP_EBADLENGTH, mp_queue_get_i64(q, &v, 1));
    ASSERT_EQ(MP_EBADLENGTH, mp_queue_get_double(q, &d, 1));
    ASSERT_EQ(7, v);
    ASSERT_TRUE(d == 1.5);
    ASSERT_EQ(2, mp_queue_qsize(q));
    expect_get(q, "abc", 3);
    ASSERT_EQ(MP_EBADLENGTH, mp_queue_get_i64(q, &v, 1));
    ASSERT_EQ(1, mp_queue_qsize(q));
    expect_get(q, "nine byte", 9);
    ASSERT_OK(mp_queue_put_double(q, 2.25));
    ASSERT_OK(mp_queue_get_double(q, &d, 1));
    ASSERT_TRUE(d == 2.25);
    mp_queue_free(q);
}

TEST(ring_grows_with_backlog_and_wraps)
{
    enum { N = 3000 };
    static unsigned char buf[70000];
    mp_queue *q;
    size_t len;

    ASSERT_OK(mp_queue_new(&q, 0));
    /* Interleave puts and gets so records wrap at every offset, then leave
     * a backlog of ~10 MB, far beyond the first ring, growing it while it
     * holds records that wrap. */
    for (uint32_t round = 0; round < 2; round++) {
        uint32_t put = 0, got = 0;

        while (got < N) {
            int burst = round == 0 ? 3 : N;

            for (int b = 0; b < burst && put < N; b++, put++) {
                size_t n = (put * 1237u) % (round == 0 ? 700 : 6000);

                for (size_t i = 0; i < n; i++)
                    buf[i] = checked_pat(round, put, i);
                ASSERT_OK(mp_queue_put(q, buf, n, 1, MP_FOREVER));
            }
            for (int b = 0; b < (round == 0 ? 2 : N) && got < put; b++) {
                size_t n = (got * 1237u) % (round == 0 ? 700 : 6000);

                ASSERT_OK(mp_queue_get_into(q, buf, sizeof(buf), &len, 0, 0));
                ASSERT_EQ(n, len);
                for (size_t i = 0; i < n; i++)
                    if (buf[i] != checked_pat(round, got, i))
                        check_fail(__FILE__, __LINE__, "message %u byte %zu",
                                   got, i);
                got++;
            }
        }
        ASSERT_EQ(1, mp_queue_empty(q));
    }
    mp_queue_free(q);
}

TEST(a_64_mib_message)
{
    size_t n = 64u << 20;
    unsigned char *big = malloc(n);
    void *out = NULL;
    size_t len = 0;
    mp_queue *q;

    ASSERT_TRUE(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = checked_pat(1, 2, i);
    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_queue_put_str(q, "before"));
    ASSERT_OK(mp_queue_put(q, big, n, 1, MP_FOREVER));
    ASSERT_OK(mp_queue_put_str(q, "after"));
    expect_get(q, "before", 6);
    ASSERT_OK(mp_queue_get(q, &out, &len, 1, 10));
    ASSERT_EQ(n, len);
    ASSERT_TRUE(memcmp(out, big, n) == 0);
    expect_get(q, "after", 5);
    ASSERT_EQ(-EMSGSIZE, mp_queue_put(q, big, (1u << 30) + 1, 1, 1));
    free(out);
    free(big);
    mp_queue_free(q);
}

MP_TARGET(echo_queues)
{
    mp_queue *in = mp_child_queue(0), *out = mp_child_queue(1);
    char buf[64], reply[128];
    size_t n;

    (void)arg; (void)len;
    if (in == NULL || out == NULL || mp_child_queue(2) != NULL ||
        mp_child_conn(0) == NULL || mp_child_conn(1) != NULL)
        return 1;
    if (mp_queue_get_into(in, buf, sizeof(buf) - 1, &n, 1, 10) < 0)
        return 2;
    buf[n] = '\0';
    snprintf(reply, sizeof(reply), "%s back from %s", buf,
             mp_process_name(mp_current_process()));
    if (mp_queue_put_str(out, reply) < 0)
        return 3;
    return mp_conn_send_bytes(mp_child_conn(0), "conn", 4) < 0 ? 4 : 0;
}

TEST(queues_reach_children_under_every_method)
{
    static const char *const methods[] = { "fork", "spawn", "forkserver" };

    for (int m = 0; m < 3; m++) {
        mp_queue *in, *out;
        mp_context *ctx;
        mp_process *p;
        mp_conn *a, *b;
        char want[128];
        void *buf;
        size_t n;
        int code = -1;

        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        ASSERT_OK(mp_queue_new(&in, 0));
        ASSERT_OK(mp_joinable_queue_new(&out, 0));
        ASSERT_OK(mp_pipe(&a, &b, 1));
        ASSERT_OK(mp_context_process_new(ctx, &p, "echo_queues", NULL, 0,
                                         NULL));
        /* Queues and connections mixed: each kind counts on its own. */
        ASSERT_OK(mp_process_add_queue(p, in));
        ASSERT_OK(mp_process_add_conn(p, b));
        ASSERT_OK(mp_process_add_queue(p, out));
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_queue_put_str(in, "ping"));
        snprintf(want, sizeof(want), "ping back from %s",
                 mp_process_name(p));
        expect_get(out, want, strlen(want));
        ASSERT_OK(mp_conn_recv_bytes(a, &buf, &n, MP_NOLIMIT));
        free(buf);
        ASSERT_EQ(0, mp_process_join(p, 30.0));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
        mp_queue_free(in);
        mp_queue_free(out);
        mp_conn_free(a);
        mp_conn_free(b);
    }
}

/* Puts "g" in the first queue it was handed. */
MP_TARGET(put_g_in_queue0)
{
    (void)arg;
    (void)len;
    return mp_child_queue(0) != NULL &&
                   mp_queue_put_str(mp_child_queue(0), "g") == 0
               ? 0
               : 3;
}

/* Looks at its first queue, then hands its second to a fork grandchild. */
MP_TARGET(hand_queue1_to_a_grandchild)
{
    mp_process *g = NULL;
    int code = -1;

    (void)arg;
    (void)len;
    if (mp_child_queue(0) == NULL || mp_child_queue(1) == NULL ||
        mp_process_new(&g, "put_g_in_queue0", NULL, 0, NULL) < 0 ||
        mp_process_add_queue(g, mp_child_queue(1)) < 0 ||
        mp_process_start(g) < 0 || mp_process_join(g, 30) < 0 ||
        mp_process_exitcode(g, &code) != 1)
        return 4;
    mp_process_free(g);
    return code;
}

/* A fork grandchild's mp_child_queue(0) is the queue handed to it, not the
 * one its parent looked at first (the cache of queues came along with the
 * fork). */
TEST(a_grandchild_gets_the_queue_handed_to_it)
{
    mp_queue *q0, *q1;
    mp_process *p;
    int code = -1;

    ASSERT_OK(mp_queue_new(&q0, 0));
    ASSERT_OK(mp_queue_new(&q1, 0));
    ASSERT_OK(mp_process_new(&p, "hand_queue1_to_a_grandchild", NULL, 0,
                             NULL));
    ASSERT_OK(mp_process_add_queue(p, q0));
    ASSERT_OK(mp_process_add_queue(p, q1));
    ASSERT_OK(mp_process_start(p));
    ASSERT_EQ(0, mp_process_join(p, 30));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    ASSERT_EQ(0, mp_queue_qsize(q0));
    ASSERT_EQ(1, mp_queue_qsize(q1));
    expect_get(q1, "g", 1);
    mp_process_free(p);
    mp_queue_free(q0);
    mp_queue_free(q1);
}

/* Puts a message in the queue it was handed and takes it back. */
MP_TARGET(round_trip_own_queue)
{
    mp_queue *q = mp_child_queue(0);
    void *buf = NULL;
    size_t n = 0;
    int ok;

    (void)arg;
    (void)len;
    if (q == NULL || mp_queue_put_str(q, "mine") < 0 ||
        mp_queue_get(q, &buf, &n, 1, 10) < 0)
        return 3;
    ok = n == 4 && memcmp(buf, "mine", 4) == 0;
    free(buf);
    return ok ? 0 : 4;
}

/* The caller may free its queue right after mp_process_add_queue(): the
 * process holds the queue's handle until start() (it was a
 * use-after-free). */
TEST(a_queue_freed_before_start_still_reaches_the_child)
{
    static const char *const methods[] = { "fork", "spawn", "forkserver" };

    for (int m = 0; m < 3; m++) {
        mp_context *ctx;
        mp_process *p;
        mp_queue *q;
        int code = -1;

        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        ASSERT_OK(mp_queue_new(&q, 0));
        ASSERT_OK(mp_context_process_new(ctx, &p, "round_trip_own_queue",
                                         NULL, 0, NULL));
        ASSERT_OK(mp_process_add_queue(p, q));
        q = mp_queue_free(q);
        ASSERT_OK(mp_process_start(p));
        ASSERT_EQ(0, mp_process_join(p, 30.0));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
    }
}

/* Checked messages (checked_msg.h). */
#define MAX_IDS 4096
#define STOP_ID CHECKED_STOP_ID

/* What the processes of a fault test share (an anonymous shared mapping,
 * inherited by fork children). */
struct tally {
    int64_t returned[MAX_IDS]; /* producer id: last seq whose put returned */
    int64_t next[MAX_IDS];     /* consumer side: next seq expected */
    uint8_t seen[MAX_IDS][512]; /* consumer side: times each seq was got */
    int errors;
    char error[256];
};

static struct tally *tally;
static mp_queue *fq;

static void tally_error(const char *what, uint32_t id, uint32_t seq)
{
    if (__atomic_fetch_add(&tally->errors, 1, __ATOMIC_SEQ_CST) == 0)
        snprintf(tally->error, sizeof(tally->error), "%s (id %u seq %u)",
                 what, id, seq);
}

/* Checks a message got from the queue; 1 for the stop message. */
static int check_msg(const unsigned char *buf, size_t n)
{
    struct checked_head h = { 0, 0, 0, 0 };
    const char *bad = checked_msg_check(buf, n, MAX_IDS, &h);

    if (bad != NULL)
        tally_error(bad, h.id, h.seq);
    return bad == NULL && h.id == STOP_ID;
}

/* A producer: `count` checked messages (0: until killed), noting each put
 * that returned. */
struct producer_arg {
    uint32_t id, count;
};

MP_TARGET(producer)
{
    static unsigned char buf[CHECKED_MSG_MAX];
    struct producer_arg a;

    memcpy(&a, arg, sizeof(a));
    (void)len;
    for (uint32_t seq = 0; a.count == 0 || seq < a.count; seq++) {
        if (mp_queue_put(fq, buf, checked_msg_make(buf, a.id, seq), 1,
                         MP_FOREVER) < 0)
            return 1;
        __atomic_store_n(&tally->returned[a.id], seq, __ATOMIC_SEQ_CST);
    }
    return 0;
}

static int start_producer(mp_process **p, uint32_t id, uint32_t count)
{
    struct producer_arg a = { id, count };
    int r = mp_process_new(p, "producer", &a, sizeof(a), NULL);

    return r < 0 ? r : mp_process_start(*p);
}

/* A consumer's next checked message: 0 (*h filled), 1 for the stop
 * message, -1 if the get failed. */
static int next_msg(struct checked_head *h)
{
    static unsigned char buf[CHECKED_MSG_MAX];
    size_t n;

    if (mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 60) < 0) {
        tally_error("consumer get failed", 0, 0);
        return -1;
    }
    if (check_msg(buf, n))
        return 1;
    memcpy(h, buf, sizeof(*h));
    return 0;
}

/* Counts one more get of (id, seq). */
static void mark(const struct checked_head *h)
{
    if (h->id < MAX_IDS && h->seq < 512)
        __atomic_fetch_add(&tally->seen[h->id][h->seq], 1, __ATOMIC_SEQ_CST);
}

/* Gets until the stop message; each producer's messages must come in order,
 * without a gap or a repeat. */
MP_TARGET(ordered_consumer)
{
    struct checked_head h;
    int r;

    (void)arg; (void)len;
    while ((r = next_msg(&h)) == 0) {
        if (tally->next[h.id] != h.seq)
            tally_error("out of order, lost or repeated", h.id, h.seq);
        tally->next[h.id] = h.seq + 1;
    }
    return r < 0;
}

static int rounds(int n)
{
    return check_slowdown() > 1 ? n / 10 : n;
}

static void put_stop(void)
{
    struct checked_head stop = { STOP_ID, 0, 0, 0 };

    ASSERT_OK(mp_queue_put(fq, &stop, sizeof(stop), 1, MP_FOREVER));
}

static void *shared_map(size_t n)
{
    void *m = mmap(NULL, n, PROT_READ | PROT_WRITE,
                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ASSERT_TRUE(m != MAP_FAILED);
    return m;
}

/*
 * Producers killed with SIGKILL at random points, hundreds of times, while
 * a consumer checks every message: each put that returned is delivered
 * exactly once and in order, the put that was cut short is delivered whole
 * or not at all, and nothing else arrives.
 */
TEST(producers_killed_at_random_lose_nothing)
{
    enum { SLOTS = 3 };
    mp_process *prod[SLOTS] = { 0 }, *cons;
    uint32_t next_id = 0;
    int kills = rounds(300);

    tally = shared_map(sizeof(*tally));
    for (int i = 0; i < MAX_IDS; i++)
        tally->returned[i] = -1;
    srand(12345);
    ASSERT_OK(mp_queue_new(&fq, 0));
    ASSERT_OK(mp_process_new(&cons, "ordered_consumer", NULL, 0, NULL));
    ASSERT_OK(mp_process_start(cons));
    for (int k = 0; k < kills; k++) {
        int s = rand() % SLOTS;

        for (int i = 0; i < SLOTS; i++) {
            if (prod[i] != NULL)
                continue;
            ASSERT_TRUE(next_id < MAX_IDS);
            ASSERT_OK(start_producer(&prod[i], next_id++, 0));
        }
        usleep((useconds_t)(rand() % 3000));
        ASSERT_OK(mp_process_kill(prod[s]));
        ASSERT_OK(mp_process_join(prod[s], 30));
        mp_process_free(prod[s]);
        prod[s] = NULL;
    }
    for (int i = 0; i < SLOTS; i++) {
        if (prod[i] == NULL)
            continue;
        ASSERT_OK(mp_process_kill(prod[i]));
        ASSERT_OK(mp_process_join(prod[i], 30));
        mp_process_free(prod[i]);
    }
    put_stop();
    ASSERT_OK(mp_process_join(cons, 60));
    ASSERT_EQ(0, mp_process_is_alive(cons));
    mp_process_free(cons);
    if (tally->errors)
        check_fail(__FILE__, __LINE__, "%d errors, first: %s", tally->errors,
                   tally->error);
    for (uint32_t id = 0; id < next_id; id++) {
        /* Delivered: every returned put, and maybe the one cut short. */
        int64_t got = tally->next[id], ret = tally->returned[id];

        if (got != ret + 1 && got != ret + 2)
            check_fail(__FILE__, __LINE__,
                       "producer %u: last put returned %lld, %lld delivered",
                       id, (long long)ret, (long long)got);
    }
    check_diag("%d producers killed; %u producers, all their returned puts "
               "delivered once, in order", kills, next_id);
    ASSERT_EQ(1, mp_queue_empty(fq));
    ASSERT_EQ(0, mp_queue_qsize(fq)); /* the counters were repaired */
    mp_queue_free(fq);
}

/* Marks what it got; killed at random. */
MP_TARGET(marking_consumer)
{
    struct checked_head h;
    int r;

    (void)arg; (void)len;
    while ((r = next_msg(&h)) == 0)
        mark(&h);
    return r < 0;
}

/*
 * Consumers killed with SIGKILL at random points while producers put: no
 * message is got twice or corrupt, and at most one per killed consumer is
 * lost (the one it was taking).
 */
TEST(consumers_killed_at_random_lose_at_most_one_each)
{
    enum { PRODUCERS = 4, SLOTS = 2 };
    mp_process *prod[PRODUCERS], *cons[SLOTS] = { 0 };
    int kills = 0, lost = 0, running = PRODUCERS;
    unsigned char buf[CHECKED_MSG_MAX];
    size_t n;

    tally = shared_map(sizeof(*tally));
    srand(54321);
    ASSERT_OK(mp_queue_new(&fq, 0));
    for (uint32_t i = 0; i < PRODUCERS; i++) {
        ASSERT_OK(start_producer(&prod[i], i, 512));
    }
    while (running > 0 || kills < rounds(100)) {
        int s = rand() % SLOTS;

        for (int i = 0; i < SLOTS; i++) {
            if (cons[i] != NULL)
                continue;
            ASSERT_OK(mp_process_new(&cons[i], "marking_consumer", NULL, 0,
                                     NULL));
            ASSERT_OK(mp_process_start(cons[i]));
        }
        usleep((useconds_t)(rand() % 2000));
        ASSERT_OK(mp_process_kill(cons[s]));
        ASSERT_OK(mp_process_join(cons[s], 30));
        mp_process_free(cons[s]);
        cons[s] = NULL;
        kills++;
        running = 0;
        for (int i = 0; i < PRODUCERS; i++)
            running += mp_process_is_alive(prod[i]) == 1;
        if (kills > 5000)
            break;
    }
    for (int i = 0; i < PRODUCERS; i++) {
        int code = -1;

        ASSERT_OK(mp_process_join(prod[i], 60));
        ASSERT_EQ(1, mp_process_exitcode(prod[i], &code));
        ASSERT_EQ(0, code);
        mp_process_free(prod[i]);
    }
    for (int i = 0; i < SLOTS; i++) {
        if (cons[i] == NULL)
            continue;
        ASSERT_OK(mp_process_kill(cons[i]));
        ASSERT_OK(mp_process_join(cons[i], 30));
        mp_process_free(cons[i]);
        kills++;
    }
    /* Drain what is left here. */
    while (mp_queue_get_into(fq, buf, sizeof(buf), &n, 0, 0) == 0) {
        struct checked_head h;

        check_msg(buf, n);
        memcpy(&h, buf, sizeof(h));
        if (h.id < MAX_IDS && h.seq < 512)
            tally->seen[h.id][h.seq]++;
    }
    if (tally->errors)
        check_fail(__FILE__, __LINE__, "%d errors, first: %s", tally->errors,
                   tally->error);
    for (int id = 0; id < PRODUCERS; id++)
        for (int seq = 0; seq < 512; seq++) {
            if (tally->seen[id][seq] > 1)
                check_fail(__FILE__, __LINE__, "id %d seq %d got %d times",
                           id, seq, tally->seen[id][seq]);
            lost += tally->seen[id][seq] == 0;
        }
    check_diag("%d consumers killed, %d of %d messages lost", kills, lost,
               PRODUCERS * 512);
    ASSERT_EQ(0, mp_queue_qsize(fq)); /* the counters were repaired */
    ASSERT_TRUE(lost <= kills);
    mp_queue_free(fq);
}

/* Checks per-producer order as seen by this consumer; marks each message. */
MP_TARGET(mpmc_consumer)
{
    int64_t last[8];
    struct checked_head h;
    int r;

    (void)arg; (void)len;
    for (int i = 0; i < 8; i++)
        last[i] = -1;
    while ((r = next_msg(&h)) == 0) {
        if (h.id >= 8 || (int64_t)h.seq <= last[h.id])
            tally_error("a producer's messages out of order", h.id, h.seq);
        else
            last[h.id] = h.seq;
        mark(&h);
    }
    return r < 0;
}

TEST(four_producers_four_consumers_bounded)
{
    enum { P = 4, C = 4 };
    mp_process *prod[P], *cons[C];

    tally = shared_map(sizeof(*tally));
    ASSERT_OK(mp_queue_new(&fq, 16)); /* bounded: puts wait for room */
    for (int i = 0; i < C; i++) {
        ASSERT_OK(mp_process_new(&cons[i], "mpmc_consumer", NULL, 0, NULL));
        ASSERT_OK(mp_process_start(cons[i]));
    }
    for (uint32_t i = 0; i < P; i++) {
        ASSERT_OK(start_producer(&prod[i], i, 500));
    }
    for (int i = 0; i < P; i++) {
        ASSERT_OK(mp_process_join(prod[i], 60));
        mp_process_free(prod[i]);
    }
    for (int i = 0; i < C; i++)
        put_stop();
    for (int i = 0; i < C; i++) {
        int code = -1;

        ASSERT_OK(mp_process_join(cons[i], 60));
        ASSERT_EQ(1, mp_process_exitcode(cons[i], &code));
        ASSERT_EQ(0, code);
        mp_process_free(cons[i]);
    }
    if (tally->errors)
        check_fail(__FILE__, __LINE__, "%d errors, first: %s", tally->errors,
                   tally->error);
    for (int id = 0; id < P; id++)
        for (int seq = 0; seq < 500; seq++)
            if (tally->seen[id][seq] != 1)
                check_fail(__FILE__, __LINE__, "id %d seq %d got %d times",
                           id, seq, tally->seen[id][seq]);
    mp_queue_free(fq);
}

/*
 * Biases handed around: four producer processes of two threads each and
 * four consumer processes, small messages, so that sides are biased and
 * revoked thousands of times, between processes and between threads of one
 * process.  Every message arrives once, intact, in its producer's order.
 */
enum { BP = 4, BT = 2, BC = 4 };

struct bias_tally {
    int stall; /* the producers' biased entries pause (queue.c's fault 21) */
    uint32_t n;
    uint64_t got[BP * BT];
    uint64_t revokes;
    int errors;
};

static struct bias_tally *btally;

struct bmsg {
    uint32_t id, seq;
    uint64_t check;
};

static uint64_t bcheck(uint32_t id, uint32_t seq)
{
    return ((uint64_t)id * 0x9e3779b97f4a7c15ULL) ^ (seq * 0xc2b2ae3d27d4eb4fULL);
}

static void *bias_producer_thread(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg;

    for (uint32_t seq = 0; seq < btally->n; seq++) {
        struct bmsg m = { id, seq, bcheck(id, seq) };
        if (mp_queue_put(fq, &m, sizeof(m), 1, MP_FOREVER) < 0)
            return (void *)1;
        if (seq % 128 == 127)
            sched_yield(); /* let another thread win a streak */
    }
    return NULL;
}

MP_TARGET(bias_producer)
{
    pthread_t t[BT];
    uint32_t base;
    void *res;
    int bad = 0;

    memcpy(&base, arg, sizeof(base));
    (void)len;
    if (btally->stall)
        mp__queue_fault = 21; /* owners pause before they raise busy */
    for (int i = 0; i < BT; i++)
        if (pthread_create(&t[i], NULL, bias_producer_thread,
                           (void *)(uintptr_t)(base * BT + (uint32_t)i)) != 0)
            return 2;
    for (int i = 0; i < BT; i++) {
        pthread_join(t[i], &res);
        bad |= res != NULL;
    }
    __atomic_fetch_add(&btally->revokes, mp__queue_revoke_count(), __ATOMIC_SEQ_CST);
    return bad;
}

MP_TARGET(bias_consumer)
{
    int64_t last[BP * BT];
    struct bmsg m;
    size_t n;

    (void)arg; (void)len;
    for (int i = 0; i < BP * BT; i++)
        last[i] = -1;
    for (;;) {
        if (mp_queue_get_into(fq, &m, sizeof(m), &n, 1, 60) < 0 ||
            n != sizeof(m))
            return 1;
        if (m.id == STOP_ID)
            break;
        if (m.id >= BP * BT || (int64_t)m.seq <= last[m.id] ||
            m.check != bcheck(m.id, m.seq)) {
            __atomic_fetch_add(&btally->errors, 1, __ATOMIC_SEQ_CST);
            continue;
        }
        last[m.id] = m.seq;
        __atomic_fetch_add(&btally->got[m.id], 1, __ATOMIC_SEQ_CST);
        if (m.seq % 128 == 127)
            sched_yield();
    }
    __atomic_fetch_add(&btally->revokes, mp__queue_revoke_count(), __ATOMIC_SEQ_CST);
    return 0;
}

static void hand_biases_around(int stall, uint32_t n)
{
    mp_process *prod[BP], *cons[BC];
    struct bmsg stop = { STOP_ID, 0, 0 };

    btally = shared_map(sizeof(*btally));
    btally->stall = stall;
    btally->n = n;
    ASSERT_OK(mp_queue_new(&fq, 0));
    for (int i = 0; i < BC; i++) {
        ASSERT_OK(mp_process_new(&cons[i], "bias_consumer", NULL, 0, NULL));
        ASSERT_OK(mp_process_start(cons[i]));
    }
    for (uint32_t i = 0; i < BP; i++) {
        ASSERT_OK(mp_process_new(&prod[i], "bias_producer", &i, sizeof(i),
                                 NULL));
        ASSERT_OK(mp_process_start(prod[i]));
    }
    for (int i = 0; i < BP; i++) {
        int code = -1;
        ASSERT_OK(mp_process_join(prod[i], 120));
        ASSERT_EQ(1, mp_process_exitcode(prod[i], &code));
        ASSERT_EQ(0, code);
        mp_process_free(prod[i]);
    }
    for (int i = 0; i < BC; i++)
        ASSERT_OK(mp_queue_put(fq, &stop, sizeof(stop), 1, MP_FOREVER));
    for (int i = 0; i < BC; i++) {
        int code = -1;
        ASSERT_OK(mp_process_join(cons[i], 120));
        ASSERT_EQ(1, mp_process_exitcode(cons[i], &code));
        ASSERT_EQ(0, code);
        mp_process_free(cons[i]);
    }
    ASSERT_EQ(0, btally->errors);
    for (int id = 0; id < BP * BT; id++)
        ASSERT_EQ(n, btally->got[id]);
    check_diag("%u messages; sides revoked %llu times", BP * BT * n,
               (unsigned long long)btally->revokes);
    if (mp__queue_membarrier())
        ASSERT_TRUE(btally->revokes >= 10); /* the biases did move */
    ASSERT_EQ(0, mp_queue_qsize(fq));
    mp_queue_free(fq);
}

TEST(biases_handed_between_processes_and_threads)
{
    hand_biases_around(0, 30000);
}

/* The same with owners that stop between their look at the owner and their
 * busy = 1, so that many come back after their bias went elsewhere. */
TEST(biases_handed_to_owners_that_pause)
{
    hand_biases_around(1, 3000);
}

/*
 * A process that dies at each point of a put or a get (queue.c's fault
 * injection: it _exit()s there, as a SIGKILL would leave it): whoever comes
 * next repairs the counters, a waiter that was owed a wake-up gets it within
 * the re-check interval (0.1 s), and nothing is lost or counted twice.
 */
MP_TARGET(die_putting)
{
    memcpy(&mp__queue_fault, arg, sizeof(int));
    (void)len;
    mp_queue_put_str(fq, "cut");
    return 1; /* not reached */
}

MP_TARGET(die_getting)
{
    char buf[16];
    size_t n;

    memcpy(&mp__queue_fault, arg, sizeof(int));
    (void)len;
    mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10);
    return 1; /* not reached */
}

/* Gets one message, sends it on its connection, marks it done. */
MP_TARGET(get_report_done)
{
    char buf[16];
    size_t n;

    (void)arg; (void)len;
    if (mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10) < 0 ||
        mp_conn_send_bytes(mp_child_conn(0), buf, n) < 0 ||
        mp_queue_task_done(fq) < 0)
        return 1;
    return 0;
}

MP_TARGET(put_c)
{
    (void)arg; (void)len;
    return mp_queue_put(fq, "c", 1, 1, 10) < 0;
}

/* Waits (bounded) until process p sleeps in the kernel. */
static void wait_sleeping(mp_process *p)
{
    pid_t pid;
    char path[64], stat[512];

    ASSERT_OK(mp_process_pid(p, &pid));
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    for (int i = 0; i < 2000; i++) {
        FILE *f = fopen(path, "r");
        char *e = NULL;

        if (f != NULL && fgets(stat, sizeof(stat), f) != NULL)
            e = strrchr(stat, ')');
        if (f != NULL)
            fclose(f);
        if (e != NULL && e[2] == 'S')
            return;
        usleep(1000);
    }
    check_fail(__FILE__, __LINE__, "the consumer never went to sleep");
}

static int run_to_death(const char *target, int point)
{
    mp_process *p;
    int code = -1;

    ASSERT_OK(mp_process_new(&p, target, &point, sizeof(point), NULL));
    ASSERT_OK(mp_process_start(p));
    ASSERT_OK(mp_process_join(p, 10));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    mp_process_free(p);
    return code;
}

TEST(a_put_cut_short_at_each_point)
{
    for (int point = 1; point <= 5; point++) {
        mp_process *c;
        mp_conn *r, *w;
        void *got;
        size_t n;
        int code = -1;
        double t;

        ASSERT_OK(mp_joinable_queue_new(&fq, 0));
        ASSERT_OK(mp_pipe(&r, &w, 0));
        ASSERT_OK(mp_process_new(&c, "get_report_done", NULL, 0, NULL));
        ASSERT_OK(mp_process_add_conn(c, w));
        ASSERT_OK(mp_process_start(c));
        wait_sleeping(c); /* so a lost wake-up would matter */
        ASSERT_EQ(86, run_to_death("die_putting", point));
        t = check_now();
        if (point <= 2) /* not committed: never seen */
            ASSERT_OK(mp_queue_put_str(fq, "after"));
        ASSERT_OK(mp_conn_recv_bytes(r, &got, &n, MP_NOLIMIT));
        if (point <= 2) {
            ASSERT_STREQ("after", got);
        } else {
            ASSERT_STREQ("cut", got);
            ASSERT_WITHIN(0, 2.0, check_now() - t); /* 0.1 s re-check */
        }
        free(got);
        ASSERT_OK(mp_process_join(c, 10));
        ASSERT_EQ(1, mp_process_exitcode(c, &code));
        ASSERT_EQ(0, code);
        ASSERT_OK(mp_queue_join(fq, 5)); /* the counts agree again */
        ASSERT_EQ(0, mp_queue_qsize(fq));
        ASSERT_EQ(1, mp_queue_empty(fq));
        mp_process_free(c);
        mp_conn_free(r);
        mp_conn_free(w);
        mp_queue_free(fq);
    }
}

/* Puts (or gets) 200 messages, so that its side is biased to it, then dies
 * at a point of the next put (or get): inside the biased side. */
MP_TARGET(die_biased)
{
    int point;
    char buf[16];
    size_t n;

    memcpy(&point, arg, sizeof(point));
    (void)len;
    for (int i = 0; i < 200; i++)
        if ((point < 10 ? mp_queue_put_str(fq, "pre")
                        : mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10)) < 0)
            return 2;
    if (mp__queue_membarrier() && !mp__queue_biased(fq, point < 10))
        return 3;
    mp__queue_fault = point;
    if (point < 10)
        mp_queue_put_str(fq, "cut");
    else
        mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10);
    return 1; /* not reached */
}

/* The biased owner of a side dies inside it, at each point of a put and of
 * a get: the next thread to want the side finds it dead (its start time),
 * repairs the counters, and the queue goes on. */
TEST(a_biased_owner_cut_short_at_each_point)
{
    static const int points[] = { 1, 2, 3, 4, 11, 12, 13, 14 }; /* 5: wake */

    for (size_t k = 0; k < sizeof(points) / sizeof(*points); k++) {
        int point = points[k], left = 0;
        char buf[16];
        size_t n;

        ASSERT_OK(mp_queue_new(&fq, 0));
        if (point > 10)
            for (int i = 0; i < 201; i++)
                ASSERT_OK(mp_queue_put_str(fq, "m"));
        ASSERT_EQ(86, run_to_death("die_biased", point));
        /* Wanting the side revokes the dead owner's bias. */
        if (point < 10)
            ASSERT_OK(mp_queue_put_str(fq, "after"));
        while (mp_queue_get_into(fq, buf, sizeof(buf), &n, 0, 0) == 0)
            left++;
        if (point < 10) /* 200, the cut one if committed, "after" */
            ASSERT_EQ(point <= 2 ? 201 : 202, left);
        else /* the last one, unless the get had committed */
            ASSERT_EQ(point <= 12 ? 1 : 0, left);
        ASSERT_EQ(0, mp_queue_qsize(fq));
        ASSERT_OK(mp_queue_put_str(fq, "x"));
        ASSERT_EQ(1, mp_queue_qsize(fq));
        mp_queue_free(fq);
    }
}

TEST(a_get_cut_short_at_each_point)
{
    for (int point = 11; point <= 14; point++) {
        mp_process *wr;
        int code = -1;
        double t;

        ASSERT_OK(mp_queue_new(&fq, 2));
        ASSERT_OK(mp_queue_put_str(fq, "a"));
        ASSERT_OK(mp_queue_put_str(fq, "b"));
        ASSERT_OK(mp_process_new(&wr, "put_c", NULL, 0, NULL));
        ASSERT_OK(mp_process_start(wr));
        wait_sleeping(wr); /* waiting for room */
        ASSERT_EQ(86, run_to_death("die_getting", point));
        t = check_now();
        if (point <= 12) { /* not committed: "a" is still first */
            expect_get(fq, "a", 1);
        } else { /* "a" was taken: room for "c", a lost wake-up or not */
            ASSERT_OK(mp_process_join(wr, 5));
            ASSERT_WITHIN(0, 2.0, check_now() - t);
        }
        expect_get(fq, "b", 1);
        expect_get(fq, "c", 1);
        ASSERT_OK(mp_process_join(wr, 10));
        ASSERT_EQ(1, mp_process_exitcode(wr, &code));
        ASSERT_EQ(0, code);
        ASSERT_EQ(0, mp_queue_qsize(fq));
        ASSERT_EQ(0, mp_queue_full(fq));
        mp_process_free(wr);
        mp_queue_free(fq);
    }
}

/* A get of many (a pool's result thread's): the whole messages waiting
 * that fit the buffer, up to max, in one commit; the first one that does
 * not fit stays, as a get's does. */
TEST(a_get_of_many_takes_what_waits_that_fits)
{
    static const char *const msgs[] = { "a", "bb", "ccc", "dddd" };
    size_t lens[8], count = 9;
    char buf[64];
    mp_queue *q;

    ASSERT_OK(mp_queue_new(&q, 0));
    for (size_t i = 0; i < ARRAY_LEN(msgs); i++)
        ASSERT_OK(mp_queue_put_str(q, msgs[i]));
    ASSERT_OK(mp__queue_get_many(q, buf, sizeof(buf), lens, 3, &count));
    ASSERT_EQ(3, count);
    ASSERT_EQ(1, lens[0]);
    ASSERT_EQ(2, lens[1]);
    ASSERT_EQ(3, lens[2]);
    ASSERT_TRUE(memcmp(buf, "abbccc", 6) == 0);
    ASSERT_EQ(1, mp_queue_qsize(q));
    ASSERT_EQ(MP_ETOOSHORT, mp__queue_get_many(q, buf, 2, lens, 8, &count));
    ASSERT_EQ(4, lens[0]);
    ASSERT_EQ(0, count);
    ASSERT_EQ(1, mp_queue_qsize(q));
    ASSERT_OK(mp_queue_put_str(q, "ee"));
    /* "dddd" fits, "ee" after it does not */
    ASSERT_OK(mp__queue_get_many(q, buf, 5, lens, 8, &count));
    ASSERT_EQ(1, count);
    ASSERT_EQ(4, lens[0]);
    ASSERT_TRUE(memcmp(buf, "dddd", 4) == 0);
    ASSERT_OK(mp__queue_get_many(q, buf, sizeof(buf), lens, 8, &count));
    ASSERT_EQ(1, count);
    ASSERT_TRUE(lens[0] == 2 && memcmp(buf, "ee", 2) == 0);
    ASSERT_EQ(0, mp_queue_qsize(q));
    mp_queue_free(q);
}

MP_TARGET(die_getting_many)
{
    char buf[16];
    size_t lens[4], n;

    memcpy(&mp__queue_fault, arg, sizeof(int));
    (void)len;
    mp__queue_get_many(fq, buf, sizeof(buf), lens, 2, &n);
    return 1; /* not reached */
}

/* A get of two killed at each point of its commit takes both or none. */
TEST(a_get_of_many_cut_short_at_each_point)
{
    for (int point = 11; point <= 14; point++) {
        ASSERT_OK(mp_queue_new(&fq, 0));
        ASSERT_OK(mp_queue_put_str(fq, "a"));
        ASSERT_OK(mp_queue_put_str(fq, "b"));
        ASSERT_OK(mp_queue_put_str(fq, "c"));
        ASSERT_EQ(86, run_to_death("die_getting_many", point));
        if (point <= 12) { /* not committed */
            expect_get(fq, "a", 1);
            expect_get(fq, "b", 1);
        }
        expect_get(fq, "c", 1);
        ASSERT_EQ(0, mp_queue_qsize(fq));
        ASSERT_OK(mp_queue_put_str(fq, "d"));
        expect_get(fq, "d", 1);
        mp_queue_free(fq);
    }
}

/*
 * A waiter keeps its deadline while a live biased owner stays inside the
 * other side for long (a big copy, or a stopped process): its look for the
 * dead every 0.1 s leaves a live owner alone instead of waiting for it.
 */
MP_TARGET(stay_inside)
{
    (void)arg; (void)len;
    for (int i = 0; i < 200; i++)
        if (mp_queue_put_str(fq, "pre") < 0)
            return 2;
    if (!mp__queue_biased(fq, 1))
        return 3;
    mp__queue_fault = 22; /* the next put stays inside for 2 s */
    return mp_queue_put_str(fq, "long") < 0;
}

/* Waits (bounded, 10 s) until the producers' biased owner is inside. */
static void wait_inside(void)
{
    for (int i = 0; i < 10000 && !mp__queue_biased_inside(fq, 1); i++)
        usleep(1000);
    ASSERT_EQ(1, mp__queue_biased_inside(fq, 1));
}

/* Waits until the child that put 200 messages is inside its long put (a
 * look while it is inside one of the 200 would pass too early). */
static void wait_long_put(void)
{
    for (int i = 0; i < 10000 && mp_queue_qsize(fq) < 200; i++)
        usleep(1000);
    wait_inside();
}

/* Skips without biased sides; else makes fq (joinable or not) and starts
 * the target, a child that will stay inside a side. */
static mp_process *start_stayer(const char *target, bool joinable)
{
    mp_process *p;

    if (!mp__queue_membarrier())
        check_skip("no membarrier(2): no biased sides");
    ASSERT_OK(joinable ? mp_joinable_queue_new(&fq, 0)
                       : mp_queue_new(&fq, 0));
    ASSERT_OK(mp_process_new(&p, target, NULL, 0, NULL));
    ASSERT_OK(mp_process_start(p));
    return p;
}

TEST(a_waiter_keeps_its_timeout_while_a_live_owner_stays_inside)
{
    mp_process *p;
    char buf[16];
    size_t n;
    int code = -1;
    double t;

    p = start_stayer("stay_inside", false);
    for (int i = 0; i < 200; i++)
        ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10));
    wait_inside();
    t = check_now();
    ASSERT_EQ(MP_EEMPTY, mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 0.3));
    ASSERT_WITHIN(0.29, 1.5, check_now() - t); /* the owner stays 2 s */
    ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10));
    ASSERT_EQ(4, n);
    ASSERT_TRUE(memcmp(buf, "long", 4) == 0);
    ASSERT_OK(mp_process_join(p, 10));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    mp_process_free(p);
    mp_queue_free(fq);
}

/* Gets 200 messages, so that the consumers' side is biased to it, then
 * stays inside its next get for 2 s. */
MP_TARGET(stay_inside_getting)
{
    char buf[16];
    size_t n;

    (void)arg; (void)len;
    for (int i = 0; i < 200; i++)
        if (mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10) < 0)
            return 2;
    if (!mp__queue_biased(fq, 0))
        return 3;
    mp__queue_fault = 22;
    return mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10) < 0;
}

/*
 * Timeouts hold whatever another process of the same side does: while a
 * producer stays inside a put (a big copy, a stopped process), another's
 * put_nowait gives up within PUT_GRACE (10 ms) and put(timeout=0.3) after
 * 0.3 s, with Full; while a consumer stays inside a get, get_nowait is
 * Empty at once, as CPython's reader lock taken without blocking, and
 * get(timeout=0.3) after 0.3 s.  Both used to wait the 2 s out.
 */
TEST(timeouts_hold_while_the_same_side_is_held)
{
    mp_process *p;
    char buf[16];
    size_t n;
    int code = -1;
    double t;

    /* producers */
    p = start_stayer("stay_inside", false);
    wait_long_put();
    t = check_now();
    ASSERT_EQ(MP_EFULL, mp_queue_put_nowait(fq, "x", 1));
    ASSERT_WITHIN(0, 0.5, check_now() - t);
    t = check_now();
    ASSERT_EQ(MP_EFULL, mp_queue_put(fq, "x", 1, 1, 0.3));
    ASSERT_WITHIN(0.29, 1.5, check_now() - t);
    ASSERT_OK(mp_queue_put(fq, "y", 1, 1, 10)); /* it leaves: the side is ours */
    ASSERT_OK(mp_process_join(p, 10));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    mp_process_free(p);
    for (int i = 0; i < 201; i++)
        ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10));
    ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10));
    ASSERT_EQ(1, n);
    ASSERT_EQ('y', buf[0]);
    mp_queue_free(fq);

    /* consumers */
    ASSERT_OK(mp_queue_new(&fq, 0));
    for (int i = 0; i < 202; i++)
        ASSERT_OK(mp_queue_put_str(fq, "m"));
    ASSERT_OK(mp_process_new(&p, "stay_inside_getting", NULL, 0, NULL));
    ASSERT_OK(mp_process_start(p));
    /* Inside the long get, not one of the 200 before it. */
    for (int i = 0; i < 10000 && (mp_queue_qsize(fq) > 2 ||
                                  !mp__queue_biased_inside(fq, 0)); i++)
        usleep(1000);
    ASSERT_EQ(1, mp__queue_biased_inside(fq, 0));
    t = check_now();
    ASSERT_EQ(MP_EEMPTY, mp_queue_get_into(fq, buf, sizeof(buf), &n, 0, 0));
    ASSERT_WITHIN(0, 0.5, check_now() - t);
    t = check_now();
    ASSERT_EQ(MP_EEMPTY, mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 0.3));
    ASSERT_WITHIN(0.29, 1.5, check_now() - t);
    ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10));
    ASSERT_OK(mp_process_join(p, 10));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    ASSERT_EQ(0, mp_queue_qsize(fq));
    mp_process_free(p);
    mp_queue_free(fq);
}

/* A get_nowait that finds the consumers' side busy, while its holder is
 * killed: the holder's death must reach side.c's take_over() however the
 * second look at the mutex went (a death between the looks was taken for a
 * clean lock, and the robust mutex was then unrecoverable for good). */
TEST(a_get_nowait_racing_a_dying_holder_leaves_the_queue_usable)
{
    enum { BIG = 8 << 20 };
    char *big = calloc(1, BIG), buf[16];

    ASSERT_TRUE(big != NULL);
    for (int trial = 0; trial < 30; trial++) {
        mp_queue *q;
        void *got;
        size_t n;
        pid_t pid;
        int r, st;
        double t;

        ASSERT_OK(mp_queue_new(&q, 0));
        ASSERT_OK(mp_queue_put(q, big, BIG, 1, 10));
        pid = fork();
        ASSERT_TRUE(pid >= 0);
        if (pid == 0) {
            void *m;
            size_t len;
            for (;;) { /* copies out under the lock, again and again */
                if (mp_queue_get(q, &m, &len, 1, 10) < 0 ||
                    mp_queue_put(q, m, len, 1, 10) < 0)
                    _exit(1);
                free(m);
            }
        }
        while ((r = mp_queue_get_into(q, buf, sizeof(buf), &n, 0, 0)) !=
               MP_EEMPTY)
            ASSERT_EQ(MP_ETOOSHORT, r);
        kill(pid, SIGKILL);
        for (t = check_now(); check_now() - t < 0.02;) {
            r = mp_queue_get_into(q, buf, sizeof(buf), &n, 0, 0);
            ASSERT_TRUE(r == MP_EEMPTY || r == MP_ETOOSHORT);
        }
        ASSERT_EQ(pid, waitpid(pid, &st, 0));
        ASSERT_OK(mp_queue_put_str(q, "x"));
        /* The big one (unless the child died between its get and its
         * put), then "x". */
        ASSERT_OK(mp_queue_get(q, &got, &n, 1, 10));
        if (n == BIG) {
            free(got);
            ASSERT_OK(mp_queue_get(q, &got, &n, 1, 10));
        }
        ASSERT_EQ(1, n);
        free(got);
        mp_queue_free(q);
    }
    free(big);
}

/* Puts 200 messages (the producers' side is then biased to it), stays
 * inside its next put for 2 s, and dies there, after counting the message
 * and before publishing it, once another producer has given up on it. */
static void *fault_later(void *unused)
{
    struct timespec t = { 0, 500000000 };

    (void)unused;
    nanosleep(&t, NULL);
    mp__queue_fault = 2;
    return NULL;
}

MP_TARGET(stay_inside_then_die)
{
    pthread_t th;

    (void)arg; (void)len;
    for (int i = 0; i < 200; i++)
        if (mp_queue_put_str(fq, "pre") < 0)
            return 2;
    if (!mp__queue_biased(fq, 1))
        return 3;
    if (pthread_create(&th, NULL, fault_later, NULL) != 0)
        return 4;
    pthread_detach(th); /* the put it cuts short ends the process */
    mp__queue_fault = 22;
    mp_queue_put_str(fq, "cut");
    return 5; /* not reached */
}

/* A revocation that timed out is owed to the next holder; if the owner
 * then dies inside and no producer comes again, a waiter's look for the
 * dead must still repair it: join() waited for a message that was never
 * published. */
TEST(an_owed_revocation_is_repaired_for_a_waiter)
{
    mp_process *p;
    char buf[16];
    size_t n;
    int code = -1;

    p = start_stayer("stay_inside_then_die", true);
    wait_long_put();
    ASSERT_EQ(MP_EFULL, mp_queue_put_nowait(fq, "x", 1)); /* owed now */
    for (int i = 0; i < 200; i++) {
        ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 1, 10));
        ASSERT_OK(mp_queue_task_done(fq));
    }
    ASSERT_OK(mp_process_join(p, 10));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(86, code);
    ASSERT_OK(mp_queue_join(fq, 3)); /* the cut message is not counted */
    ASSERT_EQ(0, mp_queue_qsize(fq));
    mp_process_free(p);
    mp_queue_free(fq);
}

/*
 * Where /proc would mislead, a thread is taken for alive: in another time
 * namespace /proc shifts every start time by that namespace's boot-time
 * offset, so a live owner's looks changed.  A process there that wants the
 * side while the owner is inside must wait for it, not repair around it
 * (which let both in: the owner's message then came second).
 */
static pid_t fork_checked(void)
{
    pid_t pid = fork();

    ASSERT_TRUE(pid >= 0);
    return pid;
}

/* In a child: makes the children it forks next start in a new namespace
 * (CLONE_NEWTIME with a boot-time offset, or CLONE_NEWPID); 77 when it
 * cannot. */
static void unshare_or_exit(int flag)
{
    int fd;

    if (unshare(flag) < 0)
        _exit(77);
    if (flag == CLONE_NEWTIME &&
        ((fd = open("/proc/self/timens_offsets", O_WRONLY)) < 0 ||
         write(fd, "boottime 1000 0\n", 16) != 16))
        _exit(77);
}

static int wait_exit_code(pid_t pid)
{
    int st;

    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    ASSERT_TRUE(WIFEXITED(st));
    return WEXITSTATUS(st);
}

/* Forks a child that makes a namespace (unshare_or_exit) and runs fn in a
 * grandchild there; returns that child, whose exit code is fn's (77: no such
 * namespace here, and the test skips: see ns_child_wait). */
static pid_t ns_child_start(int flag, int (*fn)(void))
{
    pid_t c = fork_checked(), g;

    if (c != 0)
        return c;
    unshare_or_exit(flag);
    if ((g = fork()) == 0)
        _exit(fn());
    _exit(g < 0 ? 2 : wait_exit_code(g));
}

static void ns_child_wait(pid_t c, const char *what)
{
    int code = wait_exit_code(c);

    if (code == 77)
        check_skip(what);
    ASSERT_EQ(0, code);
}

static int put_other_when_inside(void)
{
    wait_inside();
    return mp_queue_put_str(fq, "other") < 0;
}

static int put_200_unbiased(void)
{
    for (int i = 0; i < 200; i++)
        if (mp_queue_put_str(fq, "ns") < 0)
            return 2;
    return mp__queue_biased(fq, 1) ? 3 : 0;
}

TEST(an_owner_seen_from_another_time_namespace_is_alive)
{
    char buf[16];
    size_t n;
    pid_t c;

    if (!mp__queue_membarrier())
        check_skip("no membarrier(2): no biased sides");
    ASSERT_OK(mp_queue_new(&fq, 0));
    for (int i = 0; i < 200; i++)
        ASSERT_OK(mp_queue_put_str(fq, "pre"));
    ASSERT_EQ(1, mp__queue_biased(fq, 1));
    c = ns_child_start(CLONE_NEWTIME, put_other_when_inside);
    mp__queue_fault = 22; /* inside for 2 s */
    ASSERT_OK(mp_queue_put_str(fq, "owner"));
    ns_child_wait(c, "no time namespace here (unshare(CLONE_NEWTIME))");
    for (int i = 0; i < 200; i++)
        ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 0, 0));
    ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 0, 0));
    ASSERT_EQ(5, n);
    ASSERT_TRUE(memcmp(buf, "owner", 5) == 0);
    ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 0, 0));
    ASSERT_EQ(5, n);
    ASSERT_TRUE(memcmp(buf, "other", 5) == 0);
    ASSERT_EQ(0, mp_queue_qsize(fq));
    mp_queue_free(fq);
}

/* A process in a PID namespace whose /proc is another namespace's (made
 * without remounting /proc) cannot read its own threads there: it gets no
 * bias, which nobody could tell dead, and the queue still works. */
TEST(no_bias_where_proc_is_another_namespaces)
{
    char buf[16];
    size_t n;
    pid_t c;

    if (!mp__queue_membarrier())
        check_skip("no membarrier(2): no biased sides");
    ASSERT_OK(mp_queue_new(&fq, 0));
    c = ns_child_start(CLONE_NEWPID, put_200_unbiased);
    ns_child_wait(c, "no PID namespace here (unshare(CLONE_NEWPID))");
    for (int i = 0; i < 200; i++)
        ASSERT_OK(mp_queue_get_into(fq, buf, sizeof(buf), &n, 0, 0));
    ASSERT_EQ(0, mp_queue_qsize(fq));
    /* Here /proc is right: this process gets the bias. */
    for (int i = 0; i < 200; i++)
        ASSERT_OK(mp_queue_put_str(fq, "here"));
    ASSERT_EQ(1, mp__queue_biased(fq, 1));
    mp_queue_free(fq);
}

/*
 * A ring that a consumer is draining stays small while a faster producer
 * streams through it: the producer waits for room instead of growing the
 * ring to the whole backlog, on pages never touched before (CPython's
 * unbounded put never waits; libmp's waits for a consumer that is taking,
 * never for one that is not, and at most 20 ms a put).
 */
enum { STREAM_N = 40000, STREAM_SIZE = 4096 };

MP_TARGET(stream_4k)
{
    static uint32_t msg[STREAM_SIZE / 4];
    uint32_t count;

    memcpy(&count, arg, sizeof(count));
    (void)len;
    for (uint32_t i = 0; i < count; i++) {
        for (size_t k = 0; k < ARRAY_LEN(msg); k++)
            msg[k] = i * 2654435761u + (uint32_t)k;
        if (mp_queue_put(fq, msg, sizeof(msg), 1, MP_FOREVER) < 0)
            return 1;
    }
    return 0;
}

TEST(a_drained_ring_stays_small_while_a_producer_streams)
{
    static uint32_t msg[STREAM_SIZE / 4];
    mp_process *p;
    size_t n;
    int code = -1;
    /* Under valgrind (CHECK_SLOWDOWN), a tenth: there the test is for
     * memory errors, and 16 MiB never grows past the bound below. */
    uint32_t count = check_slowdown() > 1 ? STREAM_N / 10 : STREAM_N;

    ASSERT_OK(mp_queue_new(&fq, 0));
    ASSERT_OK(mp_process_new(&p, "stream_4k", &count, sizeof(count), NULL));
    ASSERT_OK(mp_process_start(p));
    for (uint32_t i = 0; i < count; i++) {
        ASSERT_OK(mp_queue_get_into(fq, msg, sizeof(msg), &n, 1, 30));
        ASSERT_EQ(sizeof(msg), n);
        for (size_t k = 0; k < ARRAY_LEN(msg); k++)
            if (msg[k] != i * 2654435761u + (uint32_t)k)
                check_fail(__FILE__, __LINE__, "message %u word %zu", i, k);
    }
    ASSERT_OK(mp_process_join(p, 30));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    check_diag("ring: %llu KiB after %u MiB streamed",
               mp__queue_capacity(fq) >> 10, count * STREAM_SIZE >> 20);
    /* 256 KiB at first; each stall of the consumer over 10 ms may double
     * it (seen: 4 MiB with both CPUs loaded from outside, over 16 MiB with
     * several test suites running beside); the whole backlog would be
     * 160 MiB (a ring that grows whenever it is full reaches 128-256 MiB),
     * so 64 MiB still tells the two apart. */
    ASSERT_TRUE(mp__queue_capacity(fq) <= (64u << 20));
    mp_process_free(p);
    mp_queue_free(fq);
}

/* A queue nobody gets from grows without waiting for a consumer. */
TEST(a_ring_nobody_drains_grows_at_once)
{
    static char msg[STREAM_SIZE];
    double t;

    ASSERT_OK(mp_queue_new(&fq, 0));
    t = check_now();
    for (int i = 0; i < 4096; i++) /* 16 MiB: six doublings */
        ASSERT_OK(mp_queue_put(fq, msg, sizeof(msg), 1, MP_FOREVER));
    ASSERT_WITHIN(0, 2.0 * check_slowdown(), check_now() - t);
    ASSERT_TRUE(mp__queue_capacity(fq) >= (16u << 20));
    ASSERT_EQ(4096, mp_queue_qsize(fq));
    mp_queue_free(fq);
}

/*
 * Under an address-space limit (RLIMIT_AS, `ulimit -v`), queues reserve
 * what the limit leaves: several can be made, their rings grow past
 * 256 KiB and past what was reserved at first, and children that map the
 * ring anew (a fork child attaching after the ring grew, a spawned child)
 * get every message.  ASan and valgrind reserve terabytes of their own.
 */

enum { BIG_MSG = 4 << 20, BIG_COUNT = 40 }; /* 160 MiB of backlog */

static void fill_big(unsigned char *m, size_t size, uint32_t i)
{
    for (size_t k = 0; k < size; k += 4096)
        memcpy(m + k, &(uint32_t){ i * 2654435761u + (uint32_t)k }, 4);
}

/* Waits for a word on queue 1, then takes `count` messages of `size`
 * bytes from queue 0 and checks them. */
MP_TARGET(drain_checked)
{
    mp_queue *q = mp_child_queue(0), *go = mp_child_queue(1);
    uint32_t hdr[2];
    unsigned char *want, *got;
    size_t n;
    int r = 0;

    if (len != sizeof(hdr) || q == NULL || go == NULL)
        return 2;
    memcpy(hdr, arg, sizeof(hdr));
    want = malloc(hdr[1]);
    got = malloc(hdr[1]);
    if (want == NULL || got == NULL || mp_queue_get_into(go, want, 8, &n, 1,
                                                         30) < 0)
        r = 3;
    for (uint32_t i = 0; r == 0 && i < hdr[0]; i++) {
        memset(want, 0, hdr[1]);
        fill_big(want, hdr[1], i);
        if (mp_queue_get_into(q, got, hdr[1], &n, 1, 30) < 0)
            r = 4;
        else if (n != hdr[1] || memcmp(got, want, n) != 0)
            r = 5;
    }
    free(want);
    free(got);
    return r;
}

static mp_process *start_drain(const char *method, mp_queue *q, mp_queue *go,
                               uint32_t count, uint32_t size)
{
    uint32_t hdr[2] = { count, size };
    mp_context *ctx;
    mp_process *p;

    ASSERT_OK(mp_get_context(&ctx, method));
    ASSERT_OK(mp_context_process_new(ctx, &p, "drain_checked", hdr,
                                     sizeof(hdr), NULL));
    ASSERT_OK(mp_process_add_queue(p, q));
    ASSERT_OK(mp_process_add_queue(p, go));
    ASSERT_OK(mp_process_start(p));
    return p;
}

static void put_checked(mp_queue *q, unsigned char *m, uint32_t count,
                        uint32_t size)
{
    for (uint32_t i = 0; i < count; i++) {
        memset(m, 0, size);
        fill_big(m, size, i);
        ASSERT_OK(mp_queue_put(q, m, size, 1, 30));
    }
}

static void join_zero(mp_process *p)
{
    int code = -1;

    ASSERT_EQ(0, mp_process_join(p, 60));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    mp_process_free(p);
}

/* Messages of 64 KiB to 64 MiB, each twice, sizes doubling: each record
 * larger than half the ring grows it at once, past a first reservation
 * while the other thread copies. */
#define GROWING_SIZE(i) ((size_t)65536 << ((i) / 2))
enum { GROWING_N = 22 };

static void *drain_growing(void *arg)
{
    mp_queue *q = arg;
    unsigned char *want = malloc(GROWING_SIZE(GROWING_N - 1));

    for (uint32_t i = 0; want != NULL && i < GROWING_N; i++) {
        void *got;
        size_t n, size = GROWING_SIZE(i);

        memset(want, 0, size);
        fill_big(want, size, i);
        if (mp_queue_get(q, &got, &n, 1, 30) < 0)
            break;
        if (n != size || memcmp(got, want, n) != 0) {
            free(got);
            break;
        }
        free(got);
        if (i == GROWING_N - 1) {
            free(want);
            return q;
        }
    }
    free(want);
    return NULL;
}

TEST(queues_work_under_an_address_space_limit)
{
    enum { NQ = 6 };
    unsigned long long pages = 0;
    const char *preload = getenv("LD_PRELOAD");
    unsigned char *m;
    mp_queue *q[NQ], *go;
    mp_process *fork_child, *spawn_child;
    struct rlimit rl;
    FILE *f;

#if CHECK_ASAN
    check_skip("ASan reserves terabytes of shadow memory");
#endif
#if CHECK_TSAN
    check_skip("TSan re-executes a process whose address space is limited, "
               "lifting the limit this test sets");
#endif
    if (preload != NULL && strstr(preload, "vgpreload") != NULL)
        check_skip("valgrind's own memory counts against the limit");
    f = fopen("/proc/self/statm", "r");
    ASSERT_TRUE(f != NULL && fscanf(f, "%llu", &pages) == 1);
    fclose(f);
    ASSERT_OK(getrlimit(RLIMIT_AS, &rl));
    rl.rlim_cur = pages * (unsigned long long)sysconf(_SC_PAGESIZE) +
                  (1ULL << 30);
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur)
        check_skip("the hard RLIMIT_AS is lower than this test needs");
    ASSERT_OK(setrlimit(RLIMIT_AS, &rl));

    ASSERT_OK(mp_queue_new(&go, 0));
    for (int i = 0; i < NQ; i++)
        ASSERT_OK(mp_queue_new(&q[i], 0));
    ASSERT_TRUE((m = malloc(BIG_MSG)) != NULL);
    /* Every queue's ring grows past 256 KiB, and its records wrap. */
    for (int i = 0; i < NQ; i++) {
        for (int round = 0; round < 3; round++) {
            void *buf;
            size_t n;

            put_checked(q[i], m, 2, 1 << 20);
            ASSERT_OK(mp_queue_get(q[i], &buf, &n, 1, 10));
            ASSERT_EQ(1 << 20, n);
            free(buf);
            ASSERT_OK(mp_queue_get(q[i], &buf, &n, 1, 10));
            free(buf);
        }
        ASSERT_TRUE(mp__queue_capacity(q[i]) >= (2u << 20));
    }
    /* 160 MiB of backlog: more than an eighth of what the limit leaves,
     * so the ring outgrows what each process reserved for it at first,
     * the children's included (they map it before it grows). */
    fork_child = start_drain("fork", q[0], go, BIG_COUNT, BIG_MSG);
    spawn_child = start_drain("spawn", q[1], go, 4, 1 << 20);
    put_checked(q[0], m, BIG_COUNT, BIG_MSG);
    ASSERT_TRUE(mp__queue_capacity(q[0]) >= (160u << 20));
    put_checked(q[1], m, 4, 1 << 20);
    ASSERT_OK(mp_queue_put_i64(go, 1));
    ASSERT_OK(mp_queue_put_i64(go, 1));
    join_zero(fork_child);
    join_zero(spawn_child);
    ASSERT_EQ(0, mp_queue_qsize(q[0]));
    free(m);
    q[0] = mp_queue_free(q[0]);
    q[1] = mp_queue_free(q[1]);

    /* Two threads: the ring outgrows its view while one copies out. */
    {
        unsigned char *big = malloc(GROWING_SIZE(GROWING_N - 1));
        pthread_t t;
        void *res = NULL;

        ASSERT_TRUE(big != NULL);
        ASSERT_OK(pthread_create(&t, NULL, drain_growing, q[2]));
        for (uint32_t i = 0; i < GROWING_N; i++) {
            memset(big, 0, GROWING_SIZE(i));
            fill_big(big, GROWING_SIZE(i), i);
            ASSERT_OK(mp_queue_put(q[2], big, GROWING_SIZE(i), 1, 30));
        }
        ASSERT_OK(pthread_join(t, &res));
        ASSERT_TRUE(res == q[2]);
        ASSERT_TRUE(mp__queue_capacity(q[2]) >= (128u << 20));
        free(big);
    }
    for (int i = 0; i < NQ; i++)
        mp_queue_free(q[i]);
    mp_queue_free(go);
}

/* A waiting get's spin (spin.h): it shrinks to none while the putter
 * wakes it from the CPU it waits on, and grows while the putter runs on
 * another. */
struct spin_consumer {
    mp_queue *q;
    int cpu;
};

static double mono_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void pin(int cpu)
{
    cpu_set_t set;

    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    ASSERT_OK(pthread_setaffinity_np(pthread_self(), sizeof(set), &set));
}

static void *spin_consume(void *arg)
{
    struct spin_consumer *c = arg;
    char buf[8];
    size_t len = 1;

    pin(c->cpu);
    while (len != 0)
        if (mp_queue_get_into(c->q, buf, sizeof(buf), &len, 1, 30) < 0)
            return NULL;
    return c;
}

/* Rounds of: wait until the consumer sleeps (its flag raised), put one;
 * until its spin is at least `least` (or at most `most`). */
static int spin_rounds(mp_queue *q, int least, int most)
{
    const struct mp__queue_field *f = NULL;
    size_t n;
    const struct mp__queue_field *all = mp__queue_fields(&n);
    char *hdr = mp__queue_header(q);

    for (size_t i = 0; i < n; i++)
        if (strcmp(all[i].name, "data_wait") == 0)
            f = &all[i];
    ASSERT_TRUE(f != NULL);
    for (int round = 0; round < 50; round++) {
        int s = mp__queue_get_spin(q);
        double until = mono_now() + 30;

        if (s >= least && s <= most)
            break;
        while (__atomic_load_n((uint32_t *)(hdr + f->offset),
                               __ATOMIC_ACQUIRE) == 0) {
            ASSERT_TRUE(mono_now() < until);
            sched_yield();
        }
        ASSERT_OK(mp_queue_put(q, "x", 1, 1, MP_FOREVER));
    }
    return mp__queue_get_spin(q);
}

TEST(a_waiting_gets_spin_adapts_to_where_its_waker_runs)
{
    struct spin_consumer c;
    cpu_set_t old;
    int cpus[2], k = 0;
    pthread_t t;
    void *res = NULL;

    ASSERT_OK(sched_getaffinity(0, sizeof(old), &old));
    for (int i = 0; i < CPU_SETSIZE && k < 2; i++)
        if (CPU_ISSET(i, &old))
            cpus[k++] = i;
    ASSERT_OK(mp_simple_queue_new(&c.q));
    c.cpu = cpus[0];
    pin(cpus[0]);
    ASSERT_OK(pthread_create(&t, NULL, spin_consume, &c));
    /* One CPU: every wake-up comes from the sleeper's own. */
    ASSERT_EQ(0, spin_rounds(c.q, 0, 0));
    if (k == 2) { /* another CPU: a spin can succeed, so it grows */
        pin(cpus[1]);
        ASSERT_TRUE(spin_rounds(c.q, 2000, INT_MAX) >= 2000);
    } else {
        printf("# one CPU: the spin's growth not tested\n");
    }
    ASSERT_OK(mp_queue_put(c.q, "", 0, 1, MP_FOREVER)); /* the end */
    ASSERT_OK(pthread_join(t, &res));
    ASSERT_TRUE(res == &c);
    ASSERT_OK(pthread_setaffinity_np(pthread_self(), sizeof(old), &old));
    mp_queue_free(c.q);
}
