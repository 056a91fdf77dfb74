/*
 * test_args.c - typed arguments (args.c) and target objects: every type
 * reaches a child under fork, spawn and forkserver, handed-over objects
 * outlive the caller's references, mismatches name the argument, and a
 * malformed encoding is refused whole.
 */
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

static const char *const methods[] = { "fork", "spawn", "forkserver" };

static const unsigned char raw[] = { 0, 1, 2, 0, 255, 'x' };

/* Checks every value it was given and answers on its queue (argument 5,
 * also named "out") and its connection (argument 6): a reply names the
 * first mismatch, so a failure says which value went wrong. */
MP_TARGET(all_types)
{
    char reply[256] = "ok";
    long long i;
    double d;
    const char *s;
    const void *b;
    size_t blen;
    mp_queue *out;
    mp_conn *c;

    if (mp_args_count(args) != 7)
        snprintf(reply, sizeof(reply), "count %zu", mp_args_count(args));
    else if (mp_args_get_int(args, 0, &i) < 0 || i != LLONG_MIN)
        snprintf(reply, sizeof(reply), "int %lld", i);
    else if (mp_args_get_double(args, 1, &d) < 0 || d != -2.5)
        snprintf(reply, sizeof(reply), "double %g", d);
    else if (mp_args_get_str(args, 2, &s) < 0 || strcmp(s, "na\xc3\xafve") != 0)
        snprintf(reply, sizeof(reply), "str");
    else if (mp_args_get_bytes(args, 3, &b, &blen) < 0 ||
             blen != sizeof(raw) || memcmp(b, raw, blen) != 0 ||
             ((const char *)b)[blen] != '\0')
        snprintf(reply, sizeof(reply), "bytes %zu", blen);
    else if (mp_args_int(args, mp_args_at(args, "n")) != 42 ||
             mp_args_at(args, "n") != 4 || mp_args_name(args, 0) != NULL)
        snprintf(reply, sizeof(reply), "named");
    out = mp_args_queue(args, mp_args_at(args, "out"));
    c = mp_args_conn(args, 6);
    if (mp_queue_put_str(out, reply) < 0)
        return 2;
    return mp_conn_send_bytes(c, "conn", 4) < 0 ? 3 : 0;
}

TEST(every_type_reaches_the_child_under_every_method)
{
    for (int m = 0; m < 3; m++) {
        mp_context *ctx;
        mp_queue *q;
        mp_conn *a, *b;
        mp_process *p;
        char str[] = "na\xc3\xafve";
        unsigned char bytes[sizeof(raw)];
        mp_process_options o = { 0 };
        void *buf;
        size_t n;
        int code = -1;

        memcpy(bytes, raw, sizeof(raw));
        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        o.context = ctx;
        ASSERT_OK(mp_queue_new(&q, 0));
        ASSERT_OK(mp_pipe(&a, &b, 1));
        {
            mp_arg v[] = { MP_ARG(LLONG_MIN), MP_ARG(-2.5), MP_ARG(str),
                           mp_arg_bytes(bytes, sizeof(bytes)),
                           MP_NAMED("n", 42), MP_NAMED("out", q),
                           MP_ARG(b) };
            ASSERT_OK(mp_process_create(&p, &all_types_target, v, 7, &o));
            /* Everything was copied: the caller's array, buffers and
             * references may all go before start(). */
            memset(v, 0, sizeof(v));
        }
        memset(str, '?', sizeof(str) - 1);
        memset(bytes, 0xee, sizeof(bytes));
        b = mp_conn_free(b);
        ASSERT_OK(mp_process_start(p));
        ASSERT_TRUE(strncmp(mp_process_name(p), m == 0 ? "ForkProcess"
                                                : m == 1 ? "SpawnProcess"
                                                         : "ForkServerProcess",
                            8) == 0);
        ASSERT_OK(mp_queue_get(q, &buf, &n, 1, 30));
        ASSERT_STREQ("ok", (char *)buf);
        free(buf);
        ASSERT_OK(mp_conn_recv_bytes(a, &buf, &n, MP_NOLIMIT));
        ASSERT_EQ(4, n);
        free(buf);
        ASSERT_OK(mp_process_join(p, 30));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
        mp_conn_free(a);
        mp_queue_free(q);
    }
}

/* The queue was freed by the parent right after create(): the child's
 * handle keeps the queue's memory alive. */
MP_TARGET(put_back)
{
    return mp_queue_put_i64(mp_args_queue(args, 0), mp_args_int(args, 1) * 2);
}

TEST(a_queue_freed_right_after_create_still_reaches_the_child)
{
    for (int m = 0; m < 3; m++) {
        mp_context *ctx;
        mp_queue *q, *mine;
        mp_process *p;
        mp_process_options o = { 0 };
        long long v = 0;

        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        o.context = ctx;
        ASSERT_OK(mp_queue_new(&q, 0));
        /* A second object on the same queue, as a fork child would have:
         * the one handed over is freed before start(). */
        ASSERT_OK(mp_process_create(&p, &put_back_target, MP_ARGS(q, 21),
                                    &o));
        {
            mp_process *reader;
            /* The parent keeps reading through a queue it got the same
             * way: its own handle. */
            ASSERT_OK(mp_process_create(&reader, NULL, MP_ARGS(q), NULL));
            mine = q;
            q = NULL;
            mp_process_free(reader);
        }
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_queue_get_i64(mine, &v, 30));
        ASSERT_EQ(42, v);
        ASSERT_OK(mp_process_join(p, 30));
        mp_process_free(p);
        mp_queue_free(mine);
    }
}

/* Reports what reading argument 0 as an int gives, and then how the other
 * lookups fail, as exception lines on the queue. */
MP_TARGET(mismatch)
{
    mp_queue *q = mp_args_queue(args, 1);
    char line[256];
    long long v;

    mp_format_exception(mp_args_get_int(args, 0, &v), line, sizeof(line));
    mp_queue_put_str(q, line);
    mp_format_exception(mp_args_get_conn(args, 1, NULL), line, sizeof(line));
    mp_queue_put_str(q, line);
    mp_format_exception(mp_args_get_str(args, 7, NULL), line, sizeof(line));
    mp_queue_put_str(q, line);
    mp_format_exception(mp_args_index(args, "nope"), line, sizeof(line));
    mp_queue_put_str(q, line);
    mp_queue_put_str(q, mp_args_get_double(args, 2, NULL) == 0 ? "float ok"
                                                                : "no float");
    /* The raising form ends the child: exit code 1. */
    mp_args_str(args, 2);
    return 0;
}

static void expect_line(mp_queue *q, const char *want)
{
    void *buf;
    size_t n;

    ASSERT_OK(mp_queue_get(q, &buf, &n, 1, 30));
    ASSERT_STREQ(want, (char *)buf);
    free(buf);
}

TEST(a_mismatch_names_the_argument)
{
    for (int m = 0; m < 3; m++) {
        mp_context *ctx;
        mp_queue *q;
        mp_process *p;
        mp_process_options o = { 0 };
        int code = -1;

        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        o.context = ctx;
        ASSERT_OK(mp_queue_new(&q, 0));
        ASSERT_OK(mp_process_create(
            &p, &mismatch_target,
            MP_ARGS(MP_NAMED("word", "text"), MP_NAMED("q", q), 7), &o));
        ASSERT_OK(mp_process_start(p));
        expect_line(q, "TypeError: argument 0 ('word') is str, not int");
        expect_line(q, "TypeError: argument 1 ('q') is Queue, not Connection");
        expect_line(q, "IndexError: argument 7 is out of range (3 given)");
        expect_line(q, "KeyError: 'nope'");
        /* An int reads as a float, as Python's float operations take it. */
        expect_line(q, "float ok");
        ASSERT_OK(mp_process_join(p, 30));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(1, code);
        mp_process_free(p);
        mp_queue_free(q);
    }
}

MP_TARGET(read_str)
{
    return mp_queue_put_str(mp_args_queue(args, 1), mp_args_str(args, 0));
}

/* In a forked test child whose stderr is the captured pipe: a spawned
 * child reading an int as a str. */
static void run_raising_child(void *arg)
{
    mp_process_options o = { 0 };
    mp_process *p;
    mp_queue *q;
    int code = -1;

    (void)arg;
    dup2(1, 2);
    if (mp_get_context(&o.context, "spawn") < 0 || mp_queue_new(&q, 0) < 0 ||
        mp_process_create(&p, &read_str_target, MP_ARGS(7, q), &o) < 0 ||
        mp_process_start(p) < 0 || mp_process_join(p, 30) < 0 ||
        mp_process_exitcode(p, &code) != 1)
        _exit(98);
    printf("exitcode %d\n", code);
    fflush(stdout);
    _exit(0);
}

TEST(a_raising_getter_ends_the_child_as_an_uncaught_exception)
{
    char out[1024];
    int status = check_output(run_raising_child, NULL, out, sizeof(out));

    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    ASSERT_STREQ("Process SpawnProcess-1:\n"
                 "TypeError: argument 0 is int, not str\n"
                 "exitcode 1\n",
                 out);
}

TEST(create_rejects_what_cannot_be_handed_over)
{
    mp_process *p = NULL;
    mp_queue *q;
    mp_conn *a, *b;
    mp_arg bad = mp_arg_int(1);
    mp_target stray = { "all_types", NULL };
    mp_arg many[MP__MAX_HANDLES + 1];

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_EQ(MP_EINVAL, mp_process_create(&p, NULL,
                                           MP_ARGS(MP_NAMED("x", 1),
                                                   MP_NAMED("x", 2)),
                                           NULL));
    ASSERT_EQ(MP_EINVAL, mp_process_create(&p, NULL,
                                           MP_ARGS(mp_arg_str(NULL)), NULL));
    ASSERT_EQ(MP_EINVAL, mp_process_create(
                             &p, NULL, MP_ARGS(mp_arg_bytes(NULL, 1)), NULL));
    ASSERT_EQ(MP_EINVAL, mp_process_create(
                             &p, NULL, MP_ARGS(mp_arg_queue(NULL)), NULL));
    ASSERT_EQ(MP_EINVAL, mp_process_create(&p, NULL, MP_ARGS(MP_NAMED("", 1)),
                                           NULL));
    bad.type = 99;
    ASSERT_EQ(MP_EINVAL, mp_process_create(&p, NULL, &bad, 1, NULL));
    ASSERT_EQ(MP_EINVAL, mp_process_create(&p, NULL, NULL, 1, NULL));
    for (size_t i = 0; i < MP__MAX_HANDLES + 1; i++)
        many[i] = mp_arg_conn(a);
    ASSERT_EQ(MP_EINVAL, mp_process_create(&p, NULL, many,
                                           MP__MAX_HANDLES + 1, NULL));
    ASSERT_OK(mp_process_create(&p, NULL, many, MP__MAX_HANDLES, NULL));
    p = mp_process_free(p);
    /* A target object must be the function registered under its name. */
    ASSERT_EQ(MP_EINVAL, mp_process_create(&p, &stray, NULL, 0, NULL));
    stray.fn = put_back_target.fn;
    ASSERT_EQ(MP_ERAISED, mp_process_create(&p, &stray, NULL, 0, NULL));
    ASSERT_STREQ("target 'all_types' is not the function registered under "
                 "that name", mp_strerror(MP_ERAISED));
    stray.name = "no_such_target";
    ASSERT_EQ(MP_ENOTARGET, mp_process_create(&p, &stray, NULL, 0, NULL));
    ASSERT_TRUE(p == NULL);
    mp_conn_free(a);
    mp_conn_free(b);
    mp_queue_free(q);
}

/* The old accessors count only what mp_process_add_conn()/add_queue()
 * handed over: typed arguments' handles do not shift them. */
MP_TARGET(both_ways)
{
    mp_conn *added = mp_child_conn(0);
    mp_queue *q = mp_child_queue(0);

    if (added == NULL || q == NULL || mp_child_conn(1) != NULL ||
        mp_child_queue(1) != NULL)
        return 2;
    if (mp_conn_send_bytes(added, "added", 5) < 0 ||
        mp_conn_send_bytes(mp_args_conn(args, 0), "arg", 3) < 0)
        return 3;
    return mp_queue_put_str(q, "added queue") < 0 ? 4 : 0;
}

TEST(typed_arguments_leave_the_old_indexes_alone)
{
    for (int m = 0; m < 3; m++) {
        mp_context *ctx;
        mp_process_options o = { 0 };
        mp_conn *a1, *b1, *a2, *b2;
        mp_queue *argq, *q;
        mp_process *p;
        void *buf;
        size_t n;
        int code = -1;

        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        o.context = ctx;
        ASSERT_OK(mp_pipe(&a1, &b1, 1));
        ASSERT_OK(mp_pipe(&a2, &b2, 1));
        ASSERT_OK(mp_queue_new(&argq, 0));
        ASSERT_OK(mp_queue_new(&q, 0));
        ASSERT_OK(mp_process_create(&p, &both_ways_target,
                                    MP_ARGS(b1, argq), &o));
        ASSERT_OK(mp_process_add_conn(p, b2));
        ASSERT_OK(mp_process_add_queue(p, q));
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_conn_recv_bytes(a1, &buf, &n, MP_NOLIMIT));
        ASSERT_STREQ("arg", (char *)buf);
        free(buf);
        ASSERT_OK(mp_conn_recv_bytes(a2, &buf, &n, MP_NOLIMIT));
        ASSERT_STREQ("added", (char *)buf);
        free(buf);
        expect_line(q, "added queue");
        ASSERT_OK(mp_process_join(p, 30));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
        mp_conn_free(a1);
        mp_conn_free(b1);
        mp_conn_free(a2);
        mp_conn_free(b2);
        mp_queue_free(argq);
        mp_queue_free(q);
    }
}

TEST(the_main_process_has_no_arguments)
{
    const mp_args *a = mp_child_args();

    ASSERT_TRUE(a != NULL);
    ASSERT_EQ(0, mp_args_count(a));
    ASSERT_EQ(MP_ERAISED, mp_args_get_int(a, 0, NULL));
    ASSERT_STREQ("IndexError", mp_exception_name(MP_ERAISED));
}

/* The encoding, as a child receives it from another process: every
 * truncation and every flipped byte is refused or decoded within bounds,
 * never read past. */
TEST(a_malformed_encoding_is_refused)
{
    mp_conn *handles[MP__MAX_HANDLES], *a, *b;
    unsigned char use[1] = { MP__USE_ARG };
    size_t nh, len;
    char *enc;
    mp_args *out;
    mp_arg v[] = { mp_arg_int(5), mp_arg_named("s", mp_arg_str("hello")),
                   mp_arg_bytes("\0\1", 2), mp_arg_double(0.5) };

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_OK(mp__args_encode(v, 4, &enc, &len, handles, &nh));
    ASSERT_EQ(0, nh);
    ASSERT_OK(mp__args_decode(enc, len, handles, use, 0, &out));
    ASSERT_EQ(4, mp_args_count(out));
    ASSERT_STREQ("hello", mp_args_str(out, mp_args_at(out, "s")));
    mp__args_free(out);
    for (size_t cut = 1; cut < len; cut++) {
        char *copy = malloc(cut); /* exactly cut bytes: ASan sees overreads */
        ASSERT_TRUE(copy != NULL);
        memcpy(copy, enc, cut);
        ASSERT_EQ(-EPROTO, mp__args_decode(copy, cut, handles, use, 0, &out));
        ASSERT_TRUE(out == NULL);
        free(copy);
    }
    for (size_t at = 0; at < len; at++) {
        for (int bit = 0; bit < 8; bit++) {
            char *copy = malloc(len);
            int r;
            ASSERT_TRUE(copy != NULL);
            memcpy(copy, enc, len);
            copy[at] ^= (char)(1 << bit);
            r = mp__args_decode(copy, len, handles, use, 0, &out);
            ASSERT_TRUE(r == 0 || r == -EPROTO);
            mp__args_free(out);
            free(copy);
        }
    }
    free(enc);
    /* A handle's index must name a handle given as an argument, of the
     * kind the value says. */
    {
        mp_arg h[] = { mp_arg_conn(a) };
        unsigned char added[1] = { MP__USE_ADDED };
        ASSERT_OK(mp__args_encode(h, 1, &enc, &len, handles, &nh));
        ASSERT_EQ(1, nh);
        ASSERT_OK(mp__args_decode(enc, len, handles, use, 1, &out));
        mp__args_free(out);
        ASSERT_EQ(-EPROTO, mp__args_decode(enc, len, handles, added, 1, &out));
        ASSERT_EQ(-EPROTO, mp__args_decode(enc, len, handles, use, 0, &out));
        free(enc);
    }
    mp_conn_free(a);
    mp_conn_free(b);
}

/* A str or a name is what strlen() gave the encoder: one with a NUL
 * inside was not written by it, and would reach the target cut short
 * ("he" for "he\0lo"), so it is refused; bytes hold NULs as they are. */
TEST(a_nul_inside_a_str_or_a_name_is_refused)
{
    mp_conn *handles[MP__MAX_HANDLES];
    mp_arg v[] = { mp_arg_named("name", mp_arg_str("hello")),
                   mp_arg_bytes("\0\1", 2) };
    const char *const spots[] = { "hello", "name" };
    size_t nh, len;
    char *enc;
    mp_args *out;

    ASSERT_OK(mp__args_encode(v, 2, &enc, &len, handles, &nh));
    for (int k = 0; k < 2; k++) {
        char *copy = malloc(len), *at;
        ASSERT_TRUE(copy != NULL);
        memcpy(copy, enc, len);
        at = memmem(copy, len, spots[k], strlen(spots[k]));
        ASSERT_TRUE(at != NULL);
        at[2] = '\0';
        ASSERT_EQ(-EPROTO, mp__args_decode(copy, len, handles, NULL, 0, &out));
        ASSERT_TRUE(out == NULL);
        free(copy);
    }
    ASSERT_OK(mp__args_decode(enc, len, handles, NULL, 0, &out));
    mp__args_free(out);
    free(enc);
}

MP_TARGET(check_fails)
{
    mp_queue *q = mp_args_queue(args, 0);

    mp_check(mp_queue_put_str(q, "before"));
    mp_check(mp_queue_close(q));
    mp_check(mp_queue_put_str(q, "after")); /* ValueError: Queue is closed */
    return 0;
}

static void run_check_child(void *arg)
{
    mp_process *p;
    mp_queue *q;
    int code = -1;

    (void)arg;
    dup2(1, 2);
    mp_check(mp_queue_new(&q, 0));
    mp_check(mp_process_create(&p, &check_fails_target, MP_ARGS(q), NULL));
    mp_check(mp_process_start(p));
    mp_check(mp_process_join(p, 30));
    mp_process_exitcode(p, &code);
    printf("exitcode %d\n", code);
    mp_check(mp_process_join(mp_current_process(), 1)); /* can't join self */
    printf("not reached\n");
    _exit(0);
}

TEST(mp_check_raises_as_an_uncaught_exception)
{
    char out[1024];
    int status = check_output(run_check_child, NULL, out, sizeof(out));

    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(1, WEXITSTATUS(status));
    ASSERT_STREQ("Process Process-1:\n"
                 "ValueError: Queue is closed\n"
                 "exitcode 1\n"
                 "AssertionError: can only join a child process\n",
                 out);
}

static void run_default_mismatch(void *arg)
{
    dup2(1, 2);
    mp_args_int_or(arg, "s", 3); /* "s" is a str: raises */
    _exit(0);
}

TEST(a_keyword_with_a_default)
{
    mp_conn *handles[MP__MAX_HANDLES];
    size_t nh, len;
    char *enc, out[256];
    mp_args *a;
    mp_arg v[] = { mp_arg_named("n", mp_arg_int(5)),
                   mp_arg_named("s", mp_arg_str("given")) };
    int status;

    ASSERT_OK(mp__args_encode(v, 2, &enc, &len, handles, &nh));
    ASSERT_OK(mp__args_decode(enc, len, handles, NULL, 0, &a));
    free(enc);
    ASSERT_EQ(5, mp_args_int_or(a, "n", 7));
    ASSERT_EQ(7, mp_args_int_or(a, "m", 7));
    ASSERT_TRUE(mp_args_double_or(a, "n", 0.5) == 5.0);
    ASSERT_TRUE(mp_args_double_or(a, "x", 0.5) == 0.5);
    ASSERT_STREQ("given", mp_args_str_or(a, "s", "default"));
    ASSERT_STREQ("default", mp_args_str_or(a, "t", "default"));
    status = check_output(run_default_mismatch, a, out, sizeof(out));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(1, WEXITSTATUS(status));
    ASSERT_STREQ("TypeError: argument 1 ('s') is str, not int\n", out);
    mp__args_free(a);
}

/* Python's int has no upper bound, a long long has: an unsigned value above
 * LLONG_MAX is refused rather than read back negative. */
TEST(an_unsigned_value_beyond_long_long_is_refused)
{
    mp_conn *handles[MP__MAX_HANDLES];
    mp_process *p = NULL;
    size_t nh, len;
    char *enc;
    mp_args *a;
    mp_arg v[] = { MP_ARG((unsigned long long)LLONG_MAX), MP_ARG((size_t)7),
                   MP_ARG(UINT_MAX) };

    ASSERT_EQ(MP_EINVAL, mp_process_create(&p, NULL, MP_ARGS(UINT64_MAX),
                                           NULL));
    ASSERT_EQ(MP_EINVAL,
              mp_process_create(&p, NULL,
                                MP_ARGS((size_t)LLONG_MAX + 1), NULL));
    ASSERT_TRUE(p == NULL);
    ASSERT_OK(mp__args_encode(v, 3, &enc, &len, handles, &nh));
    ASSERT_OK(mp__args_decode(enc, len, handles, NULL, 0, &a));
    free(enc);
    ASSERT_EQ(LLONG_MAX, mp_args_int(a, 0));
    ASSERT_EQ(7, mp_args_int(a, 1));
    ASSERT_EQ((long long)UINT_MAX, mp_args_int(a, 2));
    mp__args_free(a);
}

/* One object given twice is one object in the child, as CPython's pickle
 * keeps args[0] is args[1]: closing it through one value closes it for
 * both, under every method alike. */
MP_TARGET(twice)
{
    mp_conn *c0 = mp_args_conn(args, 0), *c1 = mp_args_conn(args, 1);
    mp_queue *q0 = mp_args_queue(args, 2), *q1 = mp_args_queue(args, 3);

    mp_check(mp_queue_put_str(q0, c0 == c1 ? "same conn" : "two conns"));
    mp_check(mp_queue_put_str(q1, q0 == q1 ? "same queue" : "two queues"));
    return 0;
}

TEST(one_object_given_twice_is_one_object_in_the_child)
{
    for (int m = 0; m < 3; m++) {
        mp_context *ctx;
        mp_process_options o = { 0 };
        mp_conn *a, *b;
        mp_queue *q;
        mp_process *p;
        int code = -1;

        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        o.context = ctx;
        ASSERT_OK(mp_pipe(&a, &b, 1));
        ASSERT_OK(mp_queue_new(&q, 0));
        ASSERT_OK(mp_process_create(&p, &twice_target, MP_ARGS(b, b, q, q),
                                    &o));
        ASSERT_OK(mp_process_start(p));
        expect_line(q, "same conn");
        expect_line(q, "same queue");
        ASSERT_OK(mp_process_join(p, 30));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
        mp_conn_free(a);
        mp_conn_free(b);
        mp_queue_free(q);
    }
}

/* A closed connection is a value CPython's args take: the error, if any,
 * is start()'s, where the descriptor must be handed over. */
TEST(a_closed_connection_fails_at_start_under_spawn)
{
    mp_context *ctx;
    mp_process_options o = { 0 };
    mp_conn *a, *b;
    mp_process *p;

    ASSERT_OK(mp_get_context(&ctx, "spawn"));
    o.context = ctx;
    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_OK(mp_conn_close(b));
    ASSERT_OK(mp_process_create(&p, NULL, MP_ARGS(b), &o));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_process_start(p));
    mp_process_free(p);
    mp_conn_free(a);
    mp_conn_free(b);
}

MP_TARGET(never_runs)
{
    return 5;
}

/* In a forked test child whose stderr is the captured pipe: the arguments
 * of a spawned child, cut short before start(). */
static void run_cut_arguments(void *arg)
{
    mp_process_options o = { 0 };
    mp_process *p;
    int code = -1;

    dup2(1, 2);
    if (mp_get_context(&o.context, arg) < 0 ||
        mp_process_create(&p, &never_runs_target, MP_ARGS(1, "two"), &o) < 0)
        _exit(98);
    p->targs_len--; /* what a corrupted blob would carry */
    if (mp_process_start(p) < 0 || mp_process_join(p, 30) < 0 ||
        mp_process_exitcode(p, &code) != 1)
        _exit(97);
    printf("exitcode %d\n", code);
    fflush(stdout);
    _exit(0);
}

TEST(arguments_that_cannot_be_read_fail_the_child_before_its_target)
{
    for (int m = 0; m < 2; m++) {
        char out[1024], want[256];
        int status = check_output(run_cut_arguments, (void *)methods[m], out,
                                  sizeof(out));

        ASSERT_TRUE(WIFEXITED(status));
        ASSERT_EQ(0, WEXITSTATUS(status));
        snprintf(want, sizeof(want),
                 "Process %s-1:\nOSError: [Errno %d] Protocol error\n"
                 "exitcode 1\n", m == 0 ? "ForkProcess" : "SpawnProcess",
                 EPROTO);
        ASSERT_STREQ(want, out);
    }
}
