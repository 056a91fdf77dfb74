/*
 * test_options.c - a child's environment, working directory and standard
 * streams (options.c), under fork, spawn and forkserver: pipes captured
 * without deadlock, stdin fed and closed, files, /dev/null, descriptors,
 * the defaults kept, bad paths refused by start(), and a pipe's end kept
 * from every other fork child.
 */
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

static const char *const methods[] = { "fork", "spawn", "forkserver" };

#define BIG (1024 * 1024)

/* Makes a process of method m (0..2) with options o (o->context set). */
static mp_process *make(int m, const mp_target *t, const mp_arg *a, size_t n,
                        mp_process_options *o)
{
    mp_context *ctx;
    mp_process *p = NULL;

    ASSERT_OK(mp_get_context(&ctx, methods[m]));
    o->context = ctx;
    ASSERT_OK(mp_process_create(&p, t, a, n, o));
    return p;
}

static void join_ok(mp_process *p)
{
    int code = -1;

    ASSERT_OK(mp_process_join(p, MP_FOREVER));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
}

static int write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w < 0)
            return -1;
        buf += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Whether descriptor fd is /dev/null. */
static int is_devnull(int fd)
{
    struct stat a, b;

    return fstat(fd, &a) == 0 && stat("/dev/null", &b) == 0 &&
           S_ISCHR(a.st_mode) && a.st_rdev == b.st_rdev;
}

static size_t open_fds(void)
{
    size_t n = 0;

    for (int fd = 0; fd < 1024; fd++)
        n += fcntl(fd, F_GETFD) >= 0;
    return n;
}

MP_TARGET(say)
{
    printf("out %s\n", mp_args_str(args, 0));
    fprintf(stderr, "err %s\n", mp_args_str(args, 0));
    return 0;
}

TEST(capture_reads_stdout_and_stderr)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        char *out, *err, want[64];
        size_t outlen, errlen;

        o.stdio[1].how = o.stdio[2].how = MP_STDIO_PIPE;
        p = make(m, &say_target, MP_ARGS(methods[m]), &o);
        ASSERT_EQ(MP_ENOTSTARTED, mp_process_stdio(p, 1));
        ASSERT_EQ(MP_ENOTSTARTED,
                  mp_process_capture(p, &out, NULL, &err, NULL, 0));
        ASSERT_OK(mp_process_start(p));
        ASSERT_TRUE(mp_process_stdio(p, 1) >= 0);
        ASSERT_EQ(MP_EINVAL, mp_process_stdio(p, 0)); /* not a pipe */
        ASSERT_EQ(MP_EINVAL, mp_process_stdio(p, 3));
        ASSERT_OK(mp_process_capture(p, &out, &outlen, &err, &errlen,
                                     MP_FOREVER));
        snprintf(want, sizeof(want), "out %s\n", methods[m]);
        ASSERT_STREQ(want, out);
        ASSERT_EQ(strlen(want), outlen);
        snprintf(want, sizeof(want), "err %s\n", methods[m]);
        ASSERT_STREQ(want, err);
        ASSERT_EQ(strlen(want), errlen);
        free(out);
        free(err);
        /* Both ends reached: closed, and another capture is empty. */
        ASSERT_EQ(MP_EHANDLECLOSED, mp_process_stdio(p, 1));
        ASSERT_OK(mp_process_capture(p, &out, &outlen, NULL, NULL, 0));
        ASSERT_STREQ("", out);
        ASSERT_EQ(0, outlen);
        free(out);
        join_ok(p);
        ASSERT_OK(mp_process_close(p));
        ASSERT_EQ(MP_ECLOSED, mp_process_stdio(p, 1));
        mp_process_free(p);
    }
}

/* Writes BIG bytes to each of stdout and stderr, in turns of 64 KiB: a
 * parent that read one to its end before the other would never finish. */
MP_TARGET(flood)
{
    static char a[65536], b[65536];

    for (size_t i = 0; i < sizeof(a); i++) {
        a[i] = (char)('a' + i % 26);
        b[i] = (char)('A' + i % 26);
    }
    for (size_t done = 0; done < BIG; done += sizeof(a))
        if (write_all(1, a, sizeof(a)) < 0 || write_all(2, b, sizeof(b)) < 0)
            return 3;
    return 0;
}

TEST(capture_of_more_than_a_pipe_holds_does_not_deadlock)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        char *out, *err;
        size_t outlen, errlen;

        o.stdio[1].how = o.stdio[2].how = MP_STDIO_PIPE;
        p = make(m, &flood_target, NULL, 0, &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_capture(p, &out, &outlen, &err, &errlen,
                                     30 * check_slowdown()));
        ASSERT_EQ(BIG, outlen);
        ASSERT_EQ(BIG, errlen);
        for (size_t i = 0; i < BIG; i++)
            if (out[i] != (char)('a' + i % 65536 % 26) ||
                err[i] != (char)('A' + i % 65536 % 26))
                check_fail(__FILE__, __LINE__, "byte %zu differs", i);
        free(out);
        free(err);
        join_ok(p);
        mp_process_free(p);

        /* Not taken: read all the same, so the child can end. */
        p = make(m, &flood_target, NULL, 0, &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_capture(p, NULL, NULL, &err, &errlen,
                                     30 * check_slowdown()));
        ASSERT_EQ(BIG, errlen);
        free(err);
        join_ok(p);
        mp_process_free(p);
    }
}

/* Echoes stdin to stdout, then says where its input ended. */
MP_TARGET(echo)
{
    char buf[256];
    ssize_t n;

    while ((n = read(0, buf, sizeof(buf))) > 0)
        if (write_all(1, buf, (size_t)n) < 0)
            return 3;
    return n == 0 ? write_all(1, "|eof", 4) < 0 : 4;
}

TEST(stdin_from_a_pipe_the_parent_writes)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        char *out;
        int fd;

        o.stdio[0].how = o.stdio[1].how = MP_STDIO_PIPE;
        p = make(m, &echo_target, NULL, 0, &o);
        ASSERT_OK(mp_process_start(p));
        fd = mp_process_stdio(p, 0);
        ASSERT_TRUE(fd >= 0);
        ASSERT_EQ(0, write_all(fd, "hello", 5));
        /* capture() closes stdin first, or this would never end */
        ASSERT_OK(mp_process_capture(p, &out, NULL, NULL, NULL, MP_FOREVER));
        ASSERT_STREQ("hello|eof", out);
        free(out);
        ASSERT_EQ(MP_EHANDLECLOSED, mp_process_stdio(p, 0));
        join_ok(p);
        mp_process_free(p);
    }
}

static char *slurp(const char *path)
{
    static char buf[4096];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    ASSERT_TRUE(fd >= 0);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    ASSERT_TRUE(n >= 0);
    buf[n] = '\0';
    return buf;
}

static void spit(const char *path, const char *s)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(0, write_all(fd, s, strlen(s)));
    close(fd);
}

TEST(stdout_to_a_file_truncated_or_appended)
{
    char dir[] = "/tmp/mp-options-XXXXXX", out[64], err[64];

    ASSERT_TRUE(mkdtemp(dir) != NULL);
    snprintf(out, sizeof(out), "%s/out", dir);
    snprintf(err, sizeof(err), "%s/err", dir);
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;

        spit(out, "old contents\n");
        spit(err, "old\n");
        o.stdio[1].how = o.stdio[2].how = MP_STDIO_FILE;
        o.stdio[1].path = out;
        o.stdio[2].path = err;
        o.stdio[2].append = 1;
        p = make(m, &say_target, MP_ARGS("one"), &o);
        o.stdio[1].path = o.stdio[2].path = "changed after creation";
        ASSERT_OK(mp_process_start(p));
        join_ok(p);
        mp_process_free(p);
        ASSERT_STREQ("out one\n", slurp(out));
        ASSERT_STREQ("old\nerr one\n", slurp(err));

        o.stdio[1].path = out;
        o.stdio[1].append = 1;
        o.stdio[2].how = MP_STDIO_DEVNULL;
        p = make(m, &say_target, MP_ARGS("two"), &o);
        ASSERT_OK(mp_process_start(p));
        join_ok(p);
        mp_process_free(p);
        ASSERT_STREQ("out one\nout two\n", slurp(out));
    }
    unlink(out);
    unlink(err);
    rmdir(dir);
}

/* Exit code: 0 when stdin, stdout and stderr are what args 0..2 say (1:
 * /dev/null, 0: not), 5 + the first that is not. */
MP_TARGET(check_null)
{
    for (int i = 0; i < 3; i++)
        if (is_devnull(i) != mp_args_int(args, (size_t)i))
            return 5 + i;
    return 0;
}

TEST(devnull_for_any_stream)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        int code = -1;

        o.stdio[0].how = MP_STDIO_PIPE;
        o.stdio[1].how = MP_STDIO_DEVNULL;
        o.stdio[2].how = MP_STDIO_DEVNULL;
        p = make(m, &check_null_target, MP_ARGS(0, 1, 1), &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
    }
}

TEST(stdout_to_a_descriptor_of_the_callers)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        char buf[128] = "";
        size_t got = 0;
        ssize_t n;
        int fds[2];

        ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
        o.stdio[1].how = MP_STDIO_FD;
        o.stdio[1].fd = fds[1];
        o.stdio[2].how = MP_STDIO_DEVNULL;
        p = make(m, &say_target, MP_ARGS("fd"), &o);
        ASSERT_OK(mp_process_start(p));
        close(fds[1]); /* start() made its own copy, and closed it */
        while ((n = read(fds[0], buf + got, sizeof(buf) - 1 - got)) > 0)
            got += (size_t)n;
        buf[got] = '\0';
        ASSERT_STREQ("out fd\n", buf);
        close(fds[0]);
        join_ok(p);
        mp_process_free(p);
    }
}

MP_TARGET(report_cwd)
{
    char buf[PATH_MAX];

    if (getcwd(buf, sizeof(buf)) == NULL)
        return 3;
    return mp_queue_put_str(mp_args_queue(args, 0), buf);
}

TEST(cwd_is_the_childs_directory)
{
    char dir[] = "/tmp/mp-options-XXXXXX", real[PATH_MAX];

    ASSERT_TRUE(mkdtemp(dir) != NULL);
    ASSERT_TRUE(realpath(dir, real) != NULL);
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        mp_queue *q;
        char parent[PATH_MAX];
        void *got;
        size_t len;

        ASSERT_OK(mp_queue_new(&q, 0));
        o.cwd = dir;
        p = make(m, &report_cwd_target, MP_ARGS(q), &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_queue_get(q, &got, &len, 1, MP_FOREVER));
        ASSERT_STREQ(real, (char *)got);
        free(got);
        join_ok(p);
        mp_process_free(p);

        /* Without the option: the parent's (the fork server's child too,
         * whatever directory the server runs in). */
        o.cwd = NULL;
        p = make(m, &report_cwd_target, MP_ARGS(q), &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_queue_get(q, &got, &len, 1, MP_FOREVER));
        ASSERT_TRUE(getcwd(parent, sizeof(parent)) != NULL);
        ASSERT_STREQ(parent, (char *)got);
        free(got);
        join_ok(p);
        mp_process_free(p);
        mp_queue_free(q);
    }
    rmdir(dir);
}

/* Puts "NAME=value" or "NAME unset" for each name in args 1.. on the queue
 * in arg 0, then the number of variables. */
MP_TARGET(report_env)
{
    extern char **environ;
    mp_queue *q = mp_args_queue(args, 0);
    char line[256];
    size_t n = 0;

    for (size_t i = 1; i < mp_args_count(args); i++) {
        const char *name = mp_args_str(args, i), *v = getenv(name);
        if (v != NULL)
            snprintf(line, sizeof(line), "%s=%s", name, v);
        else
            snprintf(line, sizeof(line), "%s unset", name);
        if (mp_queue_put_str(q, line) < 0)
            return 3;
    }
    while (environ[n] != NULL)
        n++;
    return mp_queue_put_i64(q, (long long)n);
}

static void expect_str(mp_queue *q, const char *want)
{
    void *got;
    size_t len;

    ASSERT_OK(mp_queue_get(q, &got, &len, 1, MP_FOREVER));
    ASSERT_STREQ(want, (char *)got);
    free(got);
}

TEST(env_extends_or_replaces_the_parents)
{
    static const char *const extend[] = { "MPT_NEW=n", "MPT_OVER=new",
                                          "MPT_GONE", "MPT_EQ=a=b", NULL };
    static const char *const replace[] = { "ONLY=1", "MPT_GONE", NULL };

    setenv("MPT_KEEP", "k", 1);
    setenv("MPT_OVER", "old", 1);
    setenv("MPT_GONE", "g", 1);
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        mp_queue *q;
        long long n;

        ASSERT_OK(mp_queue_new(&q, 0));
        o.env = extend;
        p = make(m, &report_env_target,
                 MP_ARGS(q, "MPT_KEEP", "MPT_OVER", "MPT_NEW", "MPT_GONE",
                         "MPT_EQ"),
                 &o);
        ASSERT_OK(mp_process_start(p));
        expect_str(q, "MPT_KEEP=k");
        expect_str(q, "MPT_OVER=new");
        expect_str(q, "MPT_NEW=n");
        expect_str(q, "MPT_GONE unset");
        expect_str(q, "MPT_EQ=a=b");
        ASSERT_OK(mp_queue_get_i64(q, &n, MP_FOREVER));
        join_ok(p);
        mp_process_free(p);

        o.env = replace;
        o.env_mode = MP_ENV_REPLACE;
        p = make(m, &report_env_target, MP_ARGS(q, "ONLY", "MPT_KEEP"), &o);
        ASSERT_OK(mp_process_start(p));
        expect_str(q, "ONLY=1");
        expect_str(q, "MPT_KEEP unset");
        ASSERT_OK(mp_queue_get_i64(q, &n, MP_FOREVER));
        ASSERT_EQ(1, n);
        join_ok(p);
        mp_process_free(p);

        /* No env: the parent's, whatever the mode says. */
        o.env = NULL;
        p = make(m, &report_env_target, MP_ARGS(q, "MPT_OVER"), &o);
        ASSERT_OK(mp_process_start(p));
        expect_str(q, "MPT_OVER=old");
        ASSERT_OK(mp_queue_get_i64(q, &n, MP_FOREVER));
        join_ok(p);
        mp_process_free(p);
        mp_queue_free(q);
    }
    ASSERT_STREQ("old", getenv("MPT_OVER")); /* the parent's is untouched */
}

/* Puts the start timeout libmp uses in this child. */
MP_TARGET(report_start_timeout)
{
    return mp_queue_put_double(mp_args_queue(args, 0), mp__start_timeout());
}

TEST(libmps_own_settings_survive_a_replaced_environment)
{
    static const char *const replace[] = { "ONLY=1", NULL };

    /* Read by the spawned child and the fork server from what they
     * started with (this test process's own setting may be latched). */
    setenv("LIBMP_START_TIMEOUT", "7", 1);
    for (int m = 1; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        mp_queue *q;
        double t = 0;

        ASSERT_OK(mp_queue_new(&q, 0));
        o.env = replace;
        o.env_mode = MP_ENV_REPLACE;
        p = make(m, &report_start_timeout_target, MP_ARGS(q), &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_queue_get_double(q, &t, MP_FOREVER));
        ASSERT_TRUE(t == 7.0);
        join_ok(p);
        mp_process_free(p);
        mp_queue_free(q);
    }
}

/* Reads stdin to its end and exits with how many bytes came (up to 100),
 * after checking that stdout and stderr are the parent's (args 0..3:
 * st_dev and st_ino of each): 200 + the stream that is not. */
MP_TARGET(read_count)
{
    char buf[256];
    ssize_t n, total = 0;

    for (int i = 1; i < 3; i++) {
        struct stat st;
        if (fstat(i, &st) < 0 ||
            (long long)st.st_dev != mp_args_int(args, (size_t)(i - 1) * 2) ||
            (long long)st.st_ino != mp_args_int(args, (size_t)(i - 1) * 2 + 1))
            return 200 + i;
    }
    while ((n = read(0, buf, sizeof(buf))) > 0)
        total += n;
    return is_devnull(0) ? 150 + (int)total : (int)total;
}

/* 0 when stdin, as the target finds it, has no end or error flagged and
 * nothing buffered: its first read is /dev/null's end. */
MP_TARGET(stdin_fresh)
{
    (void)arg;
    (void)len;
    (void)args;
    if (feof(stdin))
        return 1;
    if (ferror(stdin))
        return 2;
    if (getchar() != EOF)
        return 3; /* the parent's buffered input */
    return feof(stdin) && !ferror(stdin) ? 0 : 4;
}

static void start_stdin_fresh(const char *why)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p = make(m, &stdin_fresh_target, NULL, 0, &o);
        int code = -1;

        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        if (code != 0)
            check_fail(__FILE__, __LINE__, "%s, %s: child's stdin state %d",
                       why, methods[m], code);
        mp_process_free(p);
    }
}

/* CPython's child gets a new sys.stdin on /dev/null; a C child gets the
 * parent's FILE, which start() leaves with no input buffered and no end
 * or error flagged. */
TEST(child_stdin_has_no_buffered_input_end_or_error)
{
    int in[2];

    ASSERT_EQ(0, pipe(in));
    ASSERT_EQ(0, dup2(in[0], 0));
    close(in[0]);
    ASSERT_EQ(0, write_all(in[1], "abcdef", 6));
    close(in[1]);
    ASSERT_EQ('a', getchar()); /* "bcdef" stays in stdin's buffer */
    start_stdin_fresh("input buffered");
    while (getchar() != EOF)
        ;
    ASSERT_TRUE(feof(stdin));
    start_stdin_fresh("at its end");
    ASSERT_EQ(0, pipe(in));
    ASSERT_EQ(0, dup2(in[1], 0)); /* reading a write end fails */
    close(in[0]);
    close(in[1]);
    clearerr(stdin);
    ASSERT_EQ(EOF, getchar());
    ASSERT_TRUE(ferror(stdin));
    start_stdin_fresh("in error");
}

TEST(defaults_are_cpythons_and_inherit_keeps_stdin)
{
    struct stat o1, o2;
    int in[2];

    /* Our stdin is a pipe with 5 bytes and then its end. */
    ASSERT_EQ(0, pipe(in));
    ASSERT_EQ(0, dup2(in[0], 0));
    close(in[0]);
    ASSERT_EQ(0, write_all(in[1], "input", 5));
    close(in[1]);
    ASSERT_EQ(0, fstat(1, &o1));
    ASSERT_EQ(0, fstat(2, &o2));
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        int code = -1;

        /* The default: /dev/null, nothing read; stdout and stderr ours. */
        p = make(m, &read_count_target,
                 MP_ARGS((long long)o1.st_dev, (long long)o1.st_ino,
                         (long long)o2.st_dev, (long long)o2.st_ino),
                 &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(150, code);
        mp_process_free(p);
    }
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        int code = -1;

        /* Inherited: the first reads the 5 bytes, the others the end. */
        o.stdio[0].how = o.stdio[1].how = o.stdio[2].how = MP_STDIO_INHERIT;
        p = make(m, &read_count_target,
                 MP_ARGS((long long)o1.st_dev, (long long)o1.st_ino,
                         (long long)o2.st_dev, (long long)o2.st_ino),
                 &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_join(p, MP_FOREVER));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(m == 0 ? 5 : 0, code);
        mp_process_free(p);
    }
}

TEST(a_bad_path_is_starts_error_and_leaves_nothing)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p, **list;
        size_t n, fds;

        fds = open_fds();
        o.cwd = "/nonexistent/mp-options";
        o.stdio[1].how = MP_STDIO_PIPE; /* made first, then given back */
        p = make(m, &say_target, MP_ARGS("x"), &o);
        ASSERT_EQ(-ENOENT, mp_process_start(p));
        ASSERT_EQ(MP_ENOTSTARTED, mp_process_stdio(p, 1));
        mp_process_free(p);

        o.cwd = NULL;
        o.stdio[0].how = MP_STDIO_FILE;
        o.stdio[0].path = "/nonexistent/mp-options-in";
        p = make(m, &say_target, MP_ARGS("x"), &o);
        ASSERT_EQ(-ENOENT, mp_process_start(p));
        mp_process_free(p);

        o.stdio[0].how = MP_STDIO_DEFAULT;
        o.stdio[2].how = MP_STDIO_FILE;
        o.stdio[2].path = "/nonexistent/mp-options-err";
        p = make(m, &say_target, MP_ARGS("x"), &o);
        ASSERT_EQ(-ENOENT, mp_process_start(p));
        mp_process_free(p);

        o.stdio[2].how = MP_STDIO_DEFAULT;
        o.cwd = "/dev/null";
        p = make(m, &say_target, MP_ARGS("x"), &o);
        ASSERT_EQ(-ENOTDIR, mp_process_start(p));
        mp_process_free(p);

        ASSERT_EQ(fds, open_fds());
        ASSERT_OK(mp_active_children(&list, &n));
        ASSERT_EQ(0, n);
        mp_process_list_free(list, n);
    }
}

TEST(invalid_options_are_refused_by_every_creation_call)
{
    static const char *const empty[] = { "", NULL };
    static const char *const noname[] = { "=x", NULL };
    mp_process_options bad[7];
    mp_context *ctx;
    mp_process *p = NULL;

    memset(bad, 0, sizeof(bad));
    bad[0].stdio[1].how = 99;
    bad[1].stdio[0].how = -1;
    bad[2].stdio[2].how = MP_STDIO_FILE; /* no path */
    bad[3].stdio[1].how = MP_STDIO_FD;
    bad[3].stdio[1].fd = -1;
    bad[4].env_mode = 2;
    bad[5].env = empty;
    bad[6].env = noname;
    ASSERT_OK(mp_get_context(&ctx, "spawn"));
    for (int i = 0; i < 7; i++) {
        ASSERT_EQ(MP_EINVAL, mp_process_new(&p, "say", NULL, 0, &bad[i]));
        ASSERT_EQ(MP_EINVAL,
                  mp_context_process_new(ctx, &p, "say", NULL, 0, &bad[i]));
        ASSERT_EQ(MP_EINVAL,
                  mp_process_create(&p, &say_target, NULL, 0, &bad[i]));
        ASSERT_TRUE(p == NULL);
    }
    /* Refused ones take no number. */
    ASSERT_OK(mp_process_new(&p, "say", NULL, 0, NULL));
    ASSERT_STREQ("Process-1", mp_process_name(p));
    mp_process_free(p);
    ASSERT_EQ(MP_EINVAL, mp_process_stdio(NULL, 0));
    ASSERT_EQ(MP_EINVAL, mp_process_capture(NULL, NULL, NULL, NULL, NULL, 0));
}

/* Writes "partial", waits for a word on its connection, writes "rest". */
MP_TARGET(in_two_parts)
{
    void *buf;
    size_t n;

    if (write_all(1, "partial", 7) < 0)
        return 3;
    if (mp_conn_recv_bytes(mp_args_conn(args, 0), &buf, &n, 64) < 0)
        return 4;
    free(buf);
    return write_all(1, "rest", 4) < 0 ? 5 : 0;
}

TEST(capture_keeps_what_it_read_across_a_timeout)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 };
        mp_process *p;
        mp_conn *a, *b;
        char *out = (char *)"unset", *err = (char *)"unset";
        size_t len;
        int fd, ready = 0;

        ASSERT_OK(mp_pipe(&a, &b, 1));
        o.stdio[1].how = MP_STDIO_PIPE;
        p = make(m, &in_two_parts_target, MP_ARGS(b), &o);
        mp_conn_free(b);
        ASSERT_OK(mp_process_start(p));
        fd = mp_process_stdio(p, 1);
        ASSERT_EQ(1, mp_wait(&fd, 1, MP_FOREVER, &ready)); /* "partial" */
        ASSERT_EQ(MP_ETIMEDOUT, mp_process_capture(p, &out, &len, NULL,
                                                   NULL, 0));
        ASSERT_OK(mp_conn_send_bytes(a, "go", 2));
        ASSERT_OK(mp_process_capture(p, &out, &len, &err, NULL, MP_FOREVER));
        ASSERT_STREQ("partialrest", out);
        ASSERT_EQ(11, len);
        ASSERT_TRUE(err == NULL); /* stderr is not a pipe: None */
        free(out);
        join_ok(p);
        mp_process_free(p);
        mp_conn_free(a);
    }
}

MP_TARGET(wait_for_word)
{
    void *buf;
    size_t n;

    if (mp_conn_recv_bytes(mp_args_conn(args, 0), &buf, &n, 64) < 0)
        return 4;
    free(buf);
    return 0;
}

/* The parent's end of a stdin pipe outlives the start: a fork child made
 * later, by libmp or by the program, must not hold it, or the child whose
 * stdin it is never sees the end. */
TEST(no_other_fork_child_holds_a_pipes_end)
{
    for (int m = 0; m < 3; m++) {
        mp_process_options o = { 0 }, plain = { 0 };
        mp_process *p, *other;
        mp_conn *a, *b;
        char *out;
        int gate[2], r;
        pid_t raw;

        o.stdio[0].how = o.stdio[1].how = MP_STDIO_PIPE;
        p = make(m, &echo_target, NULL, 0, &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_pipe(&a, &b, 1));
        other = make(0, &wait_for_word_target, MP_ARGS(b), &plain);
        ASSERT_OK(mp_process_start(other));
        ASSERT_EQ(0, pipe2(gate, O_CLOEXEC));
        raw = fork();
        if (raw == 0) {
            char c;
            close(gate[1]);
            while (read(gate[0], &c, 1) < 0)
                ;
            _exit(0);
        }
        ASSERT_TRUE(raw > 0);
        close(gate[0]);
        r = mp_process_capture(p, &out, NULL, NULL, NULL,
                               10 * check_slowdown());
        ASSERT_OK(mp_conn_send_bytes(a, "go", 2));
        close(gate[1]);
        ASSERT_OK(r);
        ASSERT_STREQ("|eof", out);
        free(out);
        join_ok(p);
        join_ok(other);
        ASSERT_EQ(raw, waitpid(raw, NULL, 0));
        mp_process_free(p);
        mp_process_free(other);
        mp_conn_free(a);
        mp_conn_free(b);
    }
}

/* A program's own fork() in another thread, while a spawn start places
 * the child's descriptors: its child must hold no pipe end that start()
 * made.  The forking thread's children look for a pipe the test did not
 * have before (the only ones that can be a capture pipe's end): one that
 * holds one stays until the end, and the capture never sees its EOF. */

static ino_t known_pipes[64];
static size_t nknown;
static int forker_gate[2];
static bool forker_stop;

/* Whether fd 3.. holds the write end of a pipe this test had not made
 * before: what would keep a capture from its EOF (a read end delays
 * nothing, and holding every fork child that has one would pile them up
 * on a loaded machine). */
static bool holds_a_new_pipe(void)
{
    for (int fd = 3; fd < 1024; fd++) {
        struct stat st;
        bool known = false;
        if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode) ||
            (fcntl(fd, F_GETFL) & O_ACCMODE) != O_WRONLY)
            continue;
        for (size_t i = 0; i < nknown; i++)
            known |= known_pipes[i] == st.st_ino;
        if (!known)
            return true;
    }
    return false;
}

static void *forker(void *arg)
{
    static pid_t held[4096];
    size_t nheld = 0;

    (void)arg;
    while (!__atomic_load_n(&forker_stop, __ATOMIC_ACQUIRE) &&
           nheld < sizeof(held) / sizeof(held[0])) {
        int status;
        pid_t k = fork();
        if (k == 0) {
            char c;
            close(forker_gate[1]);
            if (holds_a_new_pipe())
                while (read(forker_gate[0], &c, 1) < 0)
                    ;
            _exit(0);
        }
        if (k < 0)
            break;
        if (waitpid(k, &status, WNOHANG) == 0)
            held[nheld++] = k;
        /* the others, reaped as they end */
        for (size_t i = 0; i < nheld;)
            if (waitpid(held[i], &status, WNOHANG) == held[i])
                held[i] = held[--nheld];
            else
                i++;
    }
    __atomic_store_n(&forker_stop, true, __ATOMIC_RELEASE);
    close(forker_gate[1]);
    for (size_t i = 0; i < nheld; i++)
        waitpid(held[i], NULL, 0);
    return NULL;
}

MP_TARGET(quiet)
{
    (void)args;
    return 0;
}

TEST(no_fork_of_the_programs_holds_a_pipe_spawn_places)
{
    mp_context *ctx;
    pthread_t t;

    if (CHECK_MSAN)
        check_skip("a fork storm outlasts the deadline under MemorySanitizer");
    ASSERT_OK(mp_get_context(&ctx, "spawn"));
    ASSERT_EQ(0, pipe2(forker_gate, O_CLOEXEC));
    for (int fd = 3; fd < 1024 && nknown < 64; fd++) {
        struct stat st;
        if (fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode))
            known_pipes[nknown++] = st.st_ino;
    }
    ASSERT_EQ(0, pthread_create(&t, NULL, forker, NULL));
    for (int run = 0; run < 20 &&
                      !__atomic_load_n(&forker_stop, __ATOMIC_ACQUIRE);
         run++) {
        mp_process_options o = { 0 };
        mp_process *p;
        char *out;

        o.context = ctx;
        o.stdio[1].how = MP_STDIO_PIPE;
        ASSERT_OK(mp_process_create(&p, &quiet_target, NULL, 0, &o));
        ASSERT_OK(mp_process_start(p));
        /* the child ends at once: only another holder delays the EOF */
        ASSERT_OK(mp_process_capture(p, &out, NULL, NULL, NULL,
                                     10 * check_slowdown()));
        free(out);
        join_ok(p);
        mp_process_free(p);
    }
    /* every run done beside the forks */
    ASSERT_TRUE(!__atomic_exchange_n(&forker_stop, true, __ATOMIC_ACQ_REL));
    ASSERT_EQ(0, pthread_join(t, NULL));
    close(forker_gate[0]);
}

/* The most handles a process may be given, and every option's
 * descriptor on top: they fit what spawn places and the fork server
 * receives. */
TEST(the_options_fit_beside_the_most_handles)
{
    char dir[] = "/tmp/mp-options-XXXXXX";

    ASSERT_TRUE(mkdtemp(dir) != NULL);
    for (int m = 0; m < 3; m++) {
        mp_arg many[MP__MAX_HANDLES + 1];
        mp_process_options o = { 0 };
        mp_process *p;
        mp_conn *a, *b;
        char *out, *err;

        ASSERT_OK(mp_pipe(&a, &b, 1));
        many[0] = mp_arg_str("many");
        for (size_t i = 1; i <= MP__MAX_HANDLES; i++)
            many[i] = mp_arg_conn(a);
        o.stdio[0].how = o.stdio[1].how = o.stdio[2].how = MP_STDIO_PIPE;
        o.cwd = dir;
        p = make(m, &say_target, many, MP__MAX_HANDLES + 1, &o);
        ASSERT_OK(mp_process_start(p));
        ASSERT_OK(mp_process_capture(p, &out, NULL, &err, NULL, MP_FOREVER));
        ASSERT_STREQ("out many\n", out);
        ASSERT_STREQ("err many\n", err);
        free(out);
        free(err);
        join_ok(p);
        mp_process_free(p);
        mp_conn_free(a);
        mp_conn_free(b);
    }
    rmdir(dir);
}
