/*
 * test_connection.c - Pipe/Connection and wait() (connection.c) against
 * CPython's observed behaviour (../shared/SCENARIOS.md section 13).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
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

TEST(connections_reach_children_under_every_method)
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
        ASSERT_OK(mp_process_start(p));
        ASSERT_EQ(MP_EHASSTARTED, mp_process_add_conn(p, b));
        ASSERT_OK(mp_conn_close(b)); /* the child has its own */
        ASSERT_OK(mp_conn_send_bytes(a, "ping", 4));
        snprintf(want, sizeof(want), "ping back from %s", methods[m]);
        expect_msg(a, want, strlen(want));
        ASSERT_EQ(0, mp_process_join(p, 30.0));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        /* Under spawn and forkserver the child held the only other copy:
         * now it is gone, the peer reads EOF. */
        if (m > 0) {
            void *buf;
            size_t n;
            ASSERT_EQ(MP_EEOF, mp_conn_recv_bytes(a, &buf, &n, MP_NOLIMIT));
        }
        mp_process_free(p);
        mp_conn_free(a);
        mp_conn_free(b);
    }
}
