/*
 * test_connection.c - Pipe/Connection and wait() (connection.c) against
 * CPython's observed behaviour (../shared/SCENARIOS.md section 13).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* Receives one message and checks it. */
static void expect_msg(mp_conn *c, const char *want, size_t want_len)
{
    void *buf = NULL;
    size_t len = 0;

    ASSERT_OK(mp_conn_recv_bytes(c, &buf, &len, MP_NOLIMIT));
    ASSERT_EQ(want_len, len);
    ASSERT_TRUE(memcmp(buf, want, len) == 0);
    free(buf);
}

TEST(duplex_by_default_and_boundaries_kept)
{
    mp_conn *a, *b;

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_TRUE(mp_conn_readable(a) && mp_conn_writable(a));
    ASSERT_TRUE(mp_conn_readable(b) && mp_conn_writable(b));
    ASSERT_OK(mp_conn_send_bytes(a, "from a", 6));
    ASSERT_OK(mp_conn_send_bytes(a, "", 0)); /* an empty message is one */
    ASSERT_OK(mp_conn_send_bytes(a, "x", 1));
    ASSERT_OK(mp_conn_send_bytes(b, "from b", 6));
    expect_msg(b, "from a", 6);
    expect_msg(b, "", 0);
    expect_msg(b, "x", 1);
    expect_msg(a, "from b", 6);
    mp_conn_free(a);
    mp_conn_free(b);
}

TEST(strings_as_messages)
{
    mp_conn *a, *b;
    char *s = NULL;

    ASSERT_OK(mp_pipe(&a, &b, 0));
    ASSERT_OK(mp_conn_send_str(b, "hello"));
    ASSERT_OK(mp_conn_send_str(b, ""));
    ASSERT_EQ(MP_EINVAL, mp_conn_send_str(b, NULL));
    ASSERT_OK(mp_conn_recv_str(a, &s));
    ASSERT_STREQ("hello", s);
    free(s);
    ASSERT_OK(mp_conn_recv_str(a, &s));
    ASSERT_STREQ("", s);
    free(s);
    mp_conn_close(b);
    ASSERT_EQ(MP_EEOF, mp_conn_recv_str(a, &s));
    ASSERT_TRUE(s == NULL);
    ASSERT_EQ(MP_EINVAL, mp_conn_recv_str(a, NULL));
    mp_conn_free(a);
    mp_conn_free(b);
}

TEST(wire_format_is_cpythons)
{
    mp_conn *a, *b;
    unsigned char raw[16];

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_OK(mp_conn_send_bytes(a, "hello", 5));
    ASSERT_EQ(9, read(mp_conn_fileno(b), raw, sizeof(raw)));
    ASSERT_TRUE(memcmp(raw, "\0\0\0\5hello", 9) == 0);
    mp_conn_free(a);
    mp_conn_free(b);
}

TEST(one_way_pipe)
{
    mp_conn *r, *w;
    void *buf;
    size_t len;

    ASSERT_OK(mp_pipe(&r, &w, 0));
    ASSERT_TRUE(mp_conn_readable(r) && !mp_conn_writable(r));
    ASSERT_TRUE(!mp_conn_readable(w) && mp_conn_writable(w));
    ASSERT_OK(mp_conn_send_bytes(w, "one way", 7));
    expect_msg(r, "one way", 7);
    ASSERT_EQ(MP_EREADONLY, mp_conn_send_bytes(r, "x", 1));
    ASSERT_EQ(MP_EWRITEONLY, mp_conn_recv_bytes(w, &buf, &len, MP_NOLIMIT));
    ASSERT_EQ(MP_EWRITEONLY, mp_conn_poll(w, 0));
    mp_conn_free(r);
    mp_conn_free(w);
}

TEST(eof_once_the_peer_is_closed_and_drained)
{
    mp_conn *a, *b;
    void *buf;
    size_t len;
    char line[128];

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_OK(mp_conn_send_bytes(b, "last", 4));
    ASSERT_OK(mp_conn_close(b));
    ASSERT_EQ(1, mp_conn_poll(a, 0));
    expect_msg(a, "last", 4);
    ASSERT_EQ(1, mp_conn_poll(a, 0)); /* still readable: EOF */
    ASSERT_EQ(MP_EEOF, mp_conn_recv_bytes(a, &buf, &len, MP_NOLIMIT));
    mp_format_exception(MP_EEOF, line, sizeof(line));
    ASSERT_STREQ("EOFError", line);
    /* Sending to the closed peer: BrokenPipeError, and no SIGPIPE. */
    ASSERT_EQ(-EPIPE, mp_conn_send_bytes(a, "x", 1));
    mp_format_exception(-EPIPE, line, sizeof(line));
    ASSERT_STREQ("BrokenPipeError: [Errno 32] Broken pipe", line);
    mp_conn_free(a);
    mp_conn_free(b);
}

/* A one-way pipe is a pipe(2): its closed reader gives EPIPE, and neither
 * kills us with SIGPIPE nor leaves one pending. */
TEST(one_way_pipe_broken_without_sigpipe)
{
    mp_conn *r, *w;
    sigset_t pending;

    ASSERT_OK(mp_pipe(&r, &w, 0));
    ASSERT_OK(mp_conn_close(r));
    ASSERT_EQ(-EPIPE, mp_conn_send_bytes(w, "x", 1));
    ASSERT_EQ(-EPIPE, mp_conn_send_bytes(w, "", 0));
    sigpending(&pending);
    ASSERT_TRUE(!sigismember(&pending, SIGPIPE));
    mp_conn_free(r);
    mp_conn_free(w);
}

static void dispose_sigpipe(void (*handler)(int))
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = handler;
    sigemptyset(&sa.sa_mask);
    ASSERT_OK(sigaction(SIGPIPE, &sa, NULL));
}

static void (*sigpipe_disposition(void))(int)
{
    struct sigaction sa;

    ASSERT_OK(sigaction(SIGPIPE, NULL, &sa));
    return sa.sa_handler;
}

/* The default policy is CPython's: SIGPIPE at its default is ignored from
 * the first pipe send on, and the send is EPIPE. */
TEST(sigpipe_default_becomes_ignored_as_cpythons)
{
    mp_conn *r, *w;

    dispose_sigpipe(SIG_DFL);
    ASSERT_OK(mp_pipe(&r, &w, 0));
    ASSERT_TRUE(sigpipe_disposition() == SIG_DFL); /* not before a send */
    ASSERT_OK(mp_conn_send_bytes(w, "x", 1));
    ASSERT_TRUE(sigpipe_disposition() == SIG_IGN);
    ASSERT_OK(mp_conn_close(r));
    ASSERT_EQ(-EPIPE, mp_conn_send_bytes(w, "y", 1));
    mp_conn_free(r);
    mp_conn_free(w);
}

/* Writes to a pipe with no reader, with write(2): 0 if that was EPIPE. */
MP_TARGET(write_to_a_broken_pipe)
{
    int fds[2];
    ssize_t w;

    (void)arg;
    (void)len;
    if (pipe(fds) < 0)
        return 3;
    close(fds[0]);
    w = write(fds[1], "x", 1);
    return w < 0 && errno == EPIPE ? 0 : 4;
}

/* Every CPython process ignores SIGPIPE (its interpreter does at start),
 * so a child that writes to a broken pipe gets EPIPE, under every method.
 * A libmp child does the same from its start: one used to die of SIGPIPE
 * unless it had sent on a pipe first. */
TEST(a_child_ignores_sigpipe_from_its_start)
{
    static const char *const methods[] = { "fork", "spawn", "forkserver" };

    dispose_sigpipe(SIG_DFL);
    for (int m = 0; m < 3; m++) {
        mp_context *ctx;
        mp_process *p;
        int code = 99;

        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        ASSERT_OK(mp_context_process_new(ctx, &p, "write_to_a_broken_pipe",
                                         NULL, 0, NULL));
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_join(p, 30));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
    }
    ASSERT_TRUE(sigpipe_disposition() == SIG_DFL); /* the parent's is its own */
}

static volatile sig_atomic_t sigpipes;

static void count_sigpipe(int sig)
{
    (void)sig;
    sigpipes++;
}

/* A handler of the program's own is left alone, and runs. */
TEST(sigpipe_handler_left_alone)
{
    mp_conn *r, *w;

    dispose_sigpipe(count_sigpipe);
    ASSERT_OK(mp_pipe(&r, &w, 0));
    ASSERT_OK(mp_conn_close(r));
    ASSERT_EQ(-EPIPE, mp_conn_send_bytes(w, "x", 1));
    ASSERT_EQ(1, sigpipes);
    ASSERT_TRUE(sigpipe_disposition() == count_sigpipe);
    mp_conn_free(r);
    mp_conn_free(w);
}

/* MP_SIGPIPE_KEEP: the disposition stays the default, the send is EPIPE,
 * nothing is left pending, and a SIGPIPE pending before stays pending. */
TEST(sigpipe_keep_policy)
{
    mp_conn *r, *w;
    sigset_t set, pending;

    ASSERT_EQ(MP_EINVAL, mp_set_sigpipe_policy(7));
    ASSERT_EQ(MP_SIGPIPE_IGNORE, mp_set_sigpipe_policy(MP_SIGPIPE_KEEP));
    dispose_sigpipe(SIG_DFL);
    ASSERT_OK(mp_pipe(&r, &w, 0));
    ASSERT_OK(mp_conn_send_bytes(w, "x", 1));
    ASSERT_OK(mp_conn_close(r));
    ASSERT_EQ(-EPIPE, mp_conn_send_bytes(w, "y", 1));
    ASSERT_TRUE(sigpipe_disposition() == SIG_DFL);
    sigpending(&pending);
    ASSERT_TRUE(!sigismember(&pending, SIGPIPE));
    /* One already pending (blocked here) is not taken. */
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    ASSERT_OK(pthread_sigmask(SIG_BLOCK, &set, NULL));
    ASSERT_OK(raise(SIGPIPE));
    ASSERT_EQ(-EPIPE, mp_conn_send_bytes(w, "z", 1));
    sigpending(&pending);
    ASSERT_TRUE(sigismember(&pending, SIGPIPE));
    ASSERT_EQ(MP_SIGPIPE_KEEP, mp_set_sigpipe_policy(MP_SIGPIPE_IGNORE));
    ASSERT_TRUE(sigpipe_disposition() == SIG_DFL);
    mp_conn_free(r);
    mp_conn_free(w);
}

/* A read asks for one message (the header and as many bytes as the last
 * message had): a stream of same-sized messages is read one per call, the
 * rest staying in the pipe; sizes that change keep their boundaries. */
TEST(reads_take_one_message_and_keep_boundaries)
{
    static const size_t sizes[] = { 64, 64, 64, 0, 1, 64, 8192, 8193, 3,
                                    70000, 5, 5, 1024, 1025, 0, 0, 200000, 7 };
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    unsigned char *msg = malloc(200000), *got = malloc(200000);
    mp_conn *r, *w;
    size_t len;
    int avail, status;
    pid_t pid;

    ASSERT_TRUE(msg != NULL && got != NULL);
    ASSERT_OK(mp_pipe(&r, &w, 0));
    for (size_t k = 0; k < 3; k++) {
        memset(msg, 'a' + (int)k, 64);
        ASSERT_OK(mp_conn_send_bytes(w, msg, 64));
    }
    /* The first read knows no size: it takes a header; then 64 bytes and
     * the next header... (4 + 64) * 2 bytes stay in the pipe. */
    ASSERT_OK(mp_conn_recv_bytes_into(r, got, 200000, &len));
    ASSERT_EQ(64, len);
    ASSERT_OK(ioctl(mp_conn_fileno(r), FIONREAD, &avail));
    ASSERT_EQ(2 * 68, avail);
    ASSERT_OK(mp_conn_recv_bytes_into(r, got, 200000, &len));
    ASSERT_EQ(64, len);
    ASSERT_TRUE(got[0] == 'b' && got[63] == 'b');
    ASSERT_OK(ioctl(mp_conn_fileno(r), FIONREAD, &avail));
    ASSERT_EQ(68, avail); /* one message per read, no more */
    ASSERT_OK(mp_conn_recv_bytes_into(r, got, 200000, &len));
    ASSERT_TRUE(len == 64 && got[0] == 'c');
    pid = fork(); /* the rest, too big for the pipe, from a writer */
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        for (size_t k = 3; k < N; k++) {
            for (size_t i = 0; i < sizes[k]; i++)
                msg[i] = (unsigned char)(k * 31 + i * 7);
            if (mp_conn_send_bytes(w, msg, sizes[k]) < 0)
                _exit(1);
        }
        free(msg);
        free(got);
        mp_conn_free(r);
        mp_conn_free(w);
        _exit(0);
    }
    for (size_t k = 3; k < N; k++) {
        ASSERT_OK(mp_conn_recv_bytes_into(r, got, 200000, &len));
        ASSERT_EQ(sizes[k], len);
        for (size_t i = 0; i < len; i++)
            if (got[i] != (unsigned char)(k * 31 + i * 7))
                ASSERT_EQ((unsigned char)(k * 31 + i * 7), got[i]);
    }
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_EQ(0, status);
    mp_conn_free(w);
    ASSERT_EQ(MP_EEOF, mp_conn_recv_bytes_into(r, got, 200000, &len));
    mp_conn_free(r);
    free(msg);
    free(got);
}

TEST(operations_on_a_closed_handle)
{
    mp_conn *a, *b;
    void *buf;
    size_t len;
    char line[128];

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_OK(mp_conn_close(a));
    ASSERT_OK(mp_conn_close(a)); /* twice is fine */
    ASSERT_EQ(1, mp_conn_closed(a));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_conn_send_bytes(a, "x", 1));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_conn_recv_bytes(a, &buf, &len, 10));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_conn_poll(a, 0));
    ASSERT_EQ(MP_EHANDLECLOSED, mp_conn_fileno(a));
    mp_format_exception(MP_EHANDLECLOSED, line, sizeof(line));
    ASSERT_STREQ("OSError: handle is closed", line);
    mp_conn_free(a);
    mp_conn_free(b);
}

TEST(maxlength_and_buffer_too_short)
{
    mp_conn *a, *b, *r, *w;
    void *buf;
    size_t len;
    char small[4], big[32];

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_OK(mp_conn_send_bytes(a, "0123456789", 10));
    ASSERT_EQ(MP_EBADLENGTH, mp_conn_recv_bytes(b, &buf, &len, 5));
    /* As CPython: the duplex end is no longer readable, still writable. */
    ASSERT_TRUE(!mp_conn_readable(b) && mp_conn_writable(b) &&
                !mp_conn_closed(b));
    ASSERT_EQ(MP_EWRITEONLY, mp_conn_recv_bytes(b, &buf, &len, MP_NOLIMIT));
    mp_conn_free(a);
    mp_conn_free(b);

    ASSERT_OK(mp_pipe(&r, &w, 0)); /* a read-only end is closed instead */
    ASSERT_OK(mp_conn_send_bytes(w, "0123456789", 10));
    ASSERT_EQ(MP_EBADLENGTH, mp_conn_recv_bytes(r, &buf, &len, 5));
    ASSERT_EQ(1, mp_conn_closed(r));
    mp_conn_free(r);
    mp_conn_free(w);

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_OK(mp_conn_send_bytes(a, "hello world", 11));
    ASSERT_OK(mp_conn_send_bytes(a, "abc", 3));
    ASSERT_EQ(MP_ETOOSHORT, mp_conn_recv_bytes_into(b, small, sizeof(small),
                                                    &len));
    ASSERT_EQ(11, len);
    ASSERT_OK(mp_conn_recv_bytes_into(b, big, sizeof(big), &len)); /* next */
    ASSERT_EQ(3, len);
    ASSERT_TRUE(memcmp(big, "abc", 3) == 0);
    mp_conn_free(a);
    mp_conn_free(b);
}

struct sender {
    mp_conn *c;
    const char *buf;
    size_t len;
};

static void *send_thread(void *arg)
{
    struct sender *s = arg;

    return (void *)(intptr_t)mp_conn_send_bytes(s->c, s->buf, s->len);
}

/* BufferTooShort's args[0]: the whole message, whatever the buffer's size
 * and the message's, and the next message unaffected. */
static void too_short_keeps_message(int duplex)
{
    const size_t large = 300000; /* over a pipe's capacity: a sender thread */
    char *msg = malloc(large), buf[16];
    size_t sizes[][2] = { /* { message, buffer } */
        { 1, 0 }, { 5, 0 }, { 5, 1 }, { 5, 4 }, { 16, 15 }, { large, 16 },
    };
    mp_conn *r, *w;

    ASSERT_TRUE(msg != NULL);
    for (size_t i = 0; i < large; i++)
        msg[i] = (char)('a' + (i * 7 + i / 251) % 26);
    msg[2] = '\0'; /* a NUL inside is data */
    ASSERT_OK(mp_pipe(&r, &w, duplex));
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        size_t n = sizes[k][0], size = sizes[k][1], len = 0;
        struct sender s = { w, msg, n };
        void *whole = (void *)&s, *res;
        pthread_t t;

        ASSERT_EQ(0, pthread_create(&t, NULL, send_thread, &s));
        memset(buf, 'Z', sizeof(buf));
        ASSERT_EQ(MP_ETOOSHORT,
                  mp_conn_recv_bytes_into_ex(r, buf, size, &len, &whole));
        ASSERT_EQ(0, pthread_join(t, &res));
        ASSERT_EQ(0, (intptr_t)res);
        ASSERT_EQ(n, len);
        ASSERT_TRUE(whole != NULL);
        ASSERT_TRUE(memcmp(whole, msg, n) == 0);
        ASSERT_EQ(0, ((char *)whole)[n]);
        free(whole);
        for (size_t i = 0; i < sizeof(buf); i++)
            ASSERT_EQ('Z', buf[i]); /* untouched, as CPython's */
        /* The next message, into a buffer it fits exactly. */
        ASSERT_OK(mp_conn_send_bytes(w, "next", 4));
        whole = (void *)&s;
        ASSERT_OK(mp_conn_recv_bytes_into_ex(r, buf, 4, &len, &whole));
        ASSERT_EQ(4, len);
        ASSERT_TRUE(whole == NULL && memcmp(buf, "next", 4) == 0);
    }
    /* Fits: empty into nothing, and exactly. */
    ASSERT_OK(mp_conn_send_bytes(w, "", 0));
    ASSERT_OK(mp_conn_send_bytes(w, msg, sizeof(buf)));
    ASSERT_OK(mp_conn_recv_bytes_into_ex(r, NULL, 0, &(size_t){ 9 }, NULL));
    {
        size_t len = 0;
        void *whole = buf;
        ASSERT_OK(mp_conn_recv_bytes_into_ex(r, buf, sizeof(buf), &len,
                                             &whole));
        ASSERT_EQ(sizeof(buf), len);
        ASSERT_TRUE(whole == NULL && memcmp(buf, msg, sizeof(buf)) == 0);
    }
    /* Without `whole`, the old call: the message is dropped, the next kept. */
    ASSERT_OK(mp_conn_send_bytes(w, msg, 20));
    ASSERT_OK(mp_conn_send_bytes(w, "after", 5));
    {
        size_t len = 0;
        ASSERT_EQ(MP_ETOOSHORT, mp_conn_recv_bytes_into(r, buf, 3, &len));
        ASSERT_EQ(20, len);
        ASSERT_OK(mp_conn_recv_bytes_into(r, buf, sizeof(buf), &len));
        ASSERT_TRUE(len == 5 && memcmp(buf, "after", 5) == 0);
    }
    mp_conn_free(r);
    mp_conn_free(w);
    free(msg);
}

TEST(buffer_too_short_hands_back_the_message)
{
    too_short_keeps_message(1);
    too_short_keeps_message(0);
}

/* A message cut short by the peer's end is no BufferTooShort, and nothing
 * is handed back. */
TEST(buffer_too_short_message_cut_by_eof)
{
    for (size_t sent = 4; sent <= 7; sent += 3) { /* none of it, or some */
        mp_conn *r, *w;
        size_t len = 0;
        char buf[2];
        void *whole = buf;

        ASSERT_OK(mp_pipe(&r, &w, 0));
        ASSERT_EQ(sent, write(mp_conn_fileno(w), "\0\0\0\12abc", sent));
        mp_conn_free(w); /* 10 bytes said, fewer sent */
        ASSERT_EQ(MP_EEOFMSG, mp_conn_recv_bytes_into_ex(r, buf, sizeof(buf),
                                                         &len, &whole));
        ASSERT_TRUE(whole == NULL);
        mp_conn_free(r);
    }
}

/* A length header costs memory only once its bytes arrive: a peer that
 * announces 1 TiB (the largest length ASan would allocate) and sends five
 * bytes gets "got end of file during message", not an allocation of what
 * it claimed (-ENOMEM, or an abort under ASan). */
TEST(a_huge_length_without_its_bytes_costs_nothing)
{
    static const unsigned char head[] = { 0xff, 0xff, 0xff, 0xff, 0, 0, 1,
                                          0, 0, 0, 0, 0, 'h', 'e', 'l',
                                          'l', 'o' }; /* -1, then 2^40 */

    for (int how = 0; how < 2; how++) {
        mp_conn *r, *w;
        void *got = NULL;
        size_t len = 0;
        char buf[4];
        int ret;

        ASSERT_OK(mp_pipe(&r, &w, 0));
        ASSERT_EQ(sizeof(head), write(mp_conn_fileno(w), head, sizeof(head)));
        mp_conn_free(w);
        ret = how == 0 ? mp_conn_recv_bytes(r, &got, &len, MP_NOLIMIT)
                       : mp_conn_recv_bytes_into_ex(r, buf, sizeof(buf),
                                                    &len, &got);
        ASSERT_EQ(MP_EEOFMSG, ret);
        ASSERT_TRUE(got == NULL);
        ASSERT_EQ(MP_EEOF, mp_conn_recv_bytes(r, &got, &len, MP_NOLIMIT));
        mp_conn_free(r);
    }
}

TEST(poll_timeouts)
{
    mp_conn *a, *b;
    double t0;

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_EQ(0, mp_conn_poll(a, 0));
    t0 = check_now();
    ASSERT_EQ(0, mp_conn_poll(a, -1)); /* negative: at once */
    ASSERT_WITHIN(0, 0.05, check_now() - t0);
    t0 = check_now();
    ASSERT_EQ(0, mp_conn_poll(a, 0.2));
    ASSERT_WITHIN(0.2, 0.2 + 0.25, check_now() - t0);
    ASSERT_OK(mp_conn_send_bytes(b, "x", 1));
    ASSERT_EQ(1, mp_conn_poll(a, MP_FOREVER));
    ASSERT_EQ(MP_EINVAL, mp_conn_poll(a, 0.0 / 0.0));
    mp_conn_free(a);
    mp_conn_free(b);
}

/* A child echoes messages back until EOF (fork: it inherits the end). */
MP_TARGET(echo)
{
    mp_conn *c;
    void *buf;
    size_t n;
    int r;

    mp_conn *other;

    memcpy(&c, arg, sizeof(c));
    memcpy(&other, (const char *)arg + sizeof(c), sizeof(other));
    (void)len;
    /* A forked child holds copies of both ends: without closing the
     * parent's, it would never see EOF (SCENARIOS #137). */
    mp_conn_close(other);
    while ((r = mp_conn_recv_bytes(c, &buf, &n, MP_NOLIMIT)) == 0) {
        r = mp_conn_send_bytes(c, buf, n);
        free(buf);
        if (r < 0)
            return r;
    }
    return r == MP_EEOF ? 0 : r;
}

TEST(large_messages_through_a_child)
{
    mp_conn *a, *b;
    mp_process *p;
    size_t n = 3 << 20, len;
    unsigned char *big = malloc(n);
    void *got;
    int code;

    ASSERT_TRUE(big != NULL);
    for (size_t i = 0; i < n; i++)
        big[i] = (unsigned char)(i * 7 + i / 251);
    ASSERT_OK(mp_pipe(&a, &b, 1));
    mp_conn *ends[2] = { b, a };
    ASSERT_OK(mp_process_new(&p, "echo", ends, sizeof(ends), NULL));
    ASSERT_OK(mp_process_start(p));
    ASSERT_OK(mp_conn_close(b)); /* the child's copy is its own */
    for (int round = 0; round < 3; round++) {
        /* 3 MiB is far above the socket buffer: send and echo overlap. */
        ASSERT_OK(mp_conn_send_bytes(a, big, n));
        ASSERT_OK(mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
        ASSERT_EQ(n, len);
        ASSERT_TRUE(memcmp(got, big, n) == 0);
        free(got);
        ASSERT_OK(mp_conn_send_bytes(a, "small", 5));
        expect_msg(a, "small", 5);
    }
    ASSERT_OK(mp_conn_close(a)); /* EOF ends the echo */
    ASSERT_EQ(0, mp_process_join(p, 30.0));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    mp_process_free(p);
    mp_conn_free(a);
    mp_conn_free(b);
    free(big);
}

MP_TARGET(send_after_event)
{
    mp_conn *c, *go;
    void *buf;
    size_t n;

    memcpy(&c, arg, sizeof(c));
    memcpy(&go, (const char *)arg + sizeof(c), sizeof(go));
    (void)len;
    if (mp_conn_recv_bytes(go, &buf, &n, MP_NOLIMIT) == 0)
        free(buf);
    return mp_conn_send_bytes(c, "late", 4);
}

/* wait([], timeout) in CPython sleeps out the timeout and returns []; it
 * used to fail at once. */
TEST(wait_on_nothing_sleeps_out_the_timeout)
{
    double t0 = check_now(), took;

    ASSERT_EQ(0, mp_wait(NULL, 0, 0.2, NULL));
    took = check_now() - t0;
    ASSERT_TRUE(took >= 0.19);
    ASSERT_TRUE(took < 0.2 + 2 * check_slowdown());
    ASSERT_EQ(0, mp_wait(NULL, 0, 0, NULL));
    ASSERT_EQ(MP_EINVAL, mp_wait(NULL, 1, 0, NULL));
}

/* A receive reads as far as the previous message's length, so a shorter
 * message can leave the next one, whole or in part, read ahead: wait()
 * must count it ready (poll() cannot see it), then stop counting it once
 * it is taken.  Both kinds of pipe. */
TEST(wait_sees_a_message_already_read_ahead)
{
    static char big[1000];

    for (int duplex = 0; duplex < 2; duplex++) {
        mp_conn *a, *b;
        void *got;
        size_t len;
        int fd, ready = -1;
        double t0;

        ASSERT_OK(mp_pipe(&a, &b, duplex));
        fd = mp_conn_fileno(a);
        ASSERT_OK(mp_conn_send_bytes(b, big, sizeof(big)));
        ASSERT_OK(mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
        free(got);
        ASSERT_OK(mp_conn_send_bytes(b, "one", 3));
        ASSERT_OK(mp_conn_send_bytes(b, "two", 3));
        ASSERT_OK(mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
        ASSERT_TRUE(len == 3 && memcmp(got, "one", 3) == 0);
        free(got);
        t0 = check_now();
        ASSERT_EQ(1, mp_wait(&fd, 1, 10.0, &ready));
        ASSERT_EQ(1, ready);
        ASSERT_TRUE(check_now() - t0 < 5.0); /* at once, not the timeout */
        ASSERT_OK(mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
        ASSERT_TRUE(len == 3 && memcmp(got, "two", 3) == 0);
        free(got);
        ASSERT_EQ(0, mp_wait(&fd, 1, 0.01, &ready));
        ASSERT_EQ(0, ready);
        mp_conn_free(a);
        mp_conn_free(b);
    }
}

TEST(wait_on_connections_and_sentinels)
{
    mp_conn *a1, *b1, *a2, *b2, *ga, *gb;
    mp_process *p;
    mp_conn *arg[2];
    int fds[3], ready[3];
    double t0;

    ASSERT_OK(mp_pipe(&a1, &b1, 1));
    ASSERT_OK(mp_pipe(&a2, &b2, 1));
    ASSERT_OK(mp_pipe(&ga, &gb, 1));
    arg[0] = b2;
    arg[1] = gb;
    ASSERT_OK(mp_process_new(&p, "send_after_event", arg, sizeof(arg), NULL));
    ASSERT_OK(mp_process_start(p));
    fds[0] = mp_conn_fileno(a1);
    fds[1] = mp_conn_fileno(a2);
    fds[2] = mp_process_sentinel(p);
    t0 = check_now();
    ASSERT_EQ(0, mp_wait(fds, 3, 0.2, ready)); /* nothing yet */
    ASSERT_WITHIN(0.2, 0.2 + 0.25, check_now() - t0);
    ASSERT_OK(mp_conn_send_bytes(ga, "go", 2));
    ASSERT_TRUE(mp_wait(fds, 3, 30.0, ready) >= 1);
    ASSERT_EQ(0, ready[0]);
    ASSERT_EQ(1, ready[1] || ready[2]); /* the data, maybe the end too */
    ASSERT_EQ(0, mp_process_join(p, 30.0));
    ASSERT_EQ(2, mp_wait(fds, 3, 0, ready));
    ASSERT_TRUE(!ready[0] && ready[1] && ready[2]);
    expect_msg(a2, "late", 4);
    fds[0] = 1000; /* not open */
    ASSERT_EQ(-EBADF, mp_wait(fds, 1, 0, ready));
    mp_process_free(p);
    mp_conn_free(a1);
    mp_conn_free(b1);
    mp_conn_free(a2);
    mp_conn_free(b2);
    mp_conn_free(ga);
    mp_conn_free(gb);
}

/* The child answers on the connection its parent handed it. */
MP_TARGET(answer_on_conn0)
{
    mp_conn *c = mp_child_conn(0);
    void *buf;
    size_t n;
    char reply[128];
    int r;

    (void)arg;
    (void)len;
    if (c == NULL || mp_child_conn(1) != NULL)
        return 3;
    if ((r = mp_conn_recv_bytes(c, &buf, &n, MP_NOLIMIT)) < 0)
        return r;
    snprintf(reply, sizeof(reply), "%s back from %s", (char *)buf,
             mp_get_start_method(0));
    free(buf);
    return mp_conn_send_bytes(c, reply, strlen(reply));
}

/* Hands one end of a duplex pipe to an answer_on_conn0 child of each
 * method and talks to it through the other.  free_first: the caller frees
 * its end right after handing it over (a process holds a reference of its
 * own, as a Process holds its args; it was a use-after-free), so after the
 * child has ended, the peer reads EOF under every method. */
static void talk_to_children(bool free_first)
{
    static const char *const methods[] = { "fork", "spawn", "forkserver" };

    for (int m = 0; m < 3; m++) {
        char want[128];
        mp_context *ctx;
        mp_conn *a, *b;
        mp_process *p;
        int code = -1;

        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        ASSERT_OK(mp_pipe(&a, &b, 1));
        ASSERT_OK(mp_context_process_new(ctx, &p, "answer_on_conn0", NULL, 0,
                                         NULL));
        ASSERT_OK(mp_process_add_conn(p, b));
        if (free_first)
            b = mp_conn_free(b);
        ASSERT_OK(mp_process_start(p));
        if (!free_first) {
            ASSERT_EQ(MP_EHASSTARTED, mp_process_add_conn(p, b));
            ASSERT_OK(mp_conn_close(b)); /* the child has its own */
        }
        ASSERT_OK(mp_conn_send_bytes(a, "ping", 4));
        snprintf(want, sizeof(want), "ping back from %s", methods[m]);
        expect_msg(a, want, strlen(want));
        ASSERT_EQ(0, mp_process_join(p, 30.0));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        /* Unless a fork child's copy is still ours (b, not freed), the
         * child held the only other copy: now it is gone, a reads EOF. */
        if (m > 0 || free_first) {
            void *buf;
            size_t n;
            ASSERT_EQ(MP_EEOF, mp_conn_recv_bytes(a, &buf, &n, MP_NOLIMIT));
        }
        mp_process_free(p);
        mp_conn_free(a);
        mp_conn_free(b);
    }
}

TEST(connections_reach_children_under_every_method)
{
    talk_to_children(false);
}

TEST(a_connection_freed_before_start_still_reaches_the_child)
{
    talk_to_children(true);
}

/* A process freed before it starts drops its reference too. */
TEST(a_process_freed_unstarted_releases_its_connections)
{
    mp_conn *a, *b;
    mp_process *p;
    void *buf;
    size_t n;

    ASSERT_OK(mp_pipe(&a, &b, 1));
    ASSERT_OK(mp_process_new(&p, "answer_on_conn0", NULL, 0, NULL));
    ASSERT_OK(mp_process_add_conn(p, b));
    mp_conn_free(b);
    mp_process_free(p);
    ASSERT_EQ(MP_EEOF, mp_conn_recv_bytes(a, &buf, &n, MP_NOLIMIT));
    mp_conn_free(a);
}
