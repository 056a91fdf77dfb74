/*
 * test_context.c - start methods and contexts (context.c), the spawn method
 * (spawn.c) and the fork server (start_forkserver.c): what each child
 * inherits, who its OS parent is, who reaps it, and the errors.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

static int counter; /* a global: fork children see its value, others 0 */

#define say check_say

/* Reports the global, the OS parent and the logical parent, to the file
 * whose path it gets (a spawned child inherits no descriptor). */
MP_TARGET(report_inheritance)
{
    char path[256];
    pid_t ppid = 0;
    int fd;

    snprintf(path, sizeof(path), "%.*s", (int)len, (const char *)arg);
    fd = open(path, O_WRONLY | O_APPEND);
    if (fd < 0)
        return 3;
    mp_process_pid(mp_parent_process(), &ppid);
    say(fd, "counter=%d os_parent=%ld parent=%ld parent_alive=%d name=%s "
        "method=%s\n", counter, (long)getppid(), (long)ppid,
        mp_process_is_alive(mp_parent_process()),
        mp_process_name(mp_current_process()), mp_get_start_method(1));
    close(fd);
    return 0;
}

MP_TARGET(exit_7) { (void)arg; (void)len; return 7; }

MP_TARGET(block_forever)
{
    (void)arg; (void)len;
    for (;;)
        pause();
    return 0;
}

/* Starts target (no argument) under method, joins it and checks its exit
 * code; returns the process (free it). */
static mp_process *run_to_end(const char *method, const char *target,
                              int want_code)
{
    mp_context *ctx;
    mp_process *p;
    int code = -1;

    ASSERT_OK(mp_get_context(&ctx, method));
    ASSERT_OK(mp_context_process_new(ctx, &p, target, NULL, 0, NULL));
    ASSERT_OK(mp_process_start(p));
    ASSERT_EQ(0, mp_process_join(p, 30.0));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(want_code, code);
    return p;
}

/* Runs target under method with a scratch file's path as its argument;
 * returns what the child wrote there. */
static char *run_reporting(const char *method, const char *target)
{
    static char buf[600];
    char path[] = "/tmp/test-context-XXXXXX";
    mp_context *ctx;
    mp_process *p;
    int code = -1, fd = mkstemp(path);
    ssize_t n;

    ASSERT_TRUE(fd >= 0);
    ASSERT_OK(mp_get_context(&ctx, method));
    ASSERT_OK(mp_context_process_new(ctx, &p, target, path, strlen(path),
                                     NULL));
    ASSERT_OK(mp_process_start(p));
    ASSERT_EQ(0, mp_process_join(p, 30.0));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    n = read(fd, buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    close(fd);
    unlink(path);
    mp_process_free(p);
    return buf;
}

static char *run_report(const char *method)
{
    return run_reporting(method, "report_inheritance");
}

TEST(default_context_is_fork_and_is_fixed_by_use)
{
    const char *all[4];
    mp_context *ctx;

    ASSERT_TRUE(mp_get_start_method(1) == NULL);
    ASSERT_EQ(3, mp_get_all_start_methods(all, 4));
    ASSERT_STREQ("fork", all[0]);
    ASSERT_STREQ("spawn", all[1]);
    ASSERT_STREQ("forkserver", all[2]);
    ASSERT_STREQ("fork", mp_get_start_method(0)); /* fixes it */
    ASSERT_STREQ("fork", mp_get_start_method(1));
    ASSERT_EQ(MP_ECONTEXTSET, mp_set_start_method("spawn", 0));
    ASSERT_OK(mp_set_start_method("spawn", 1));
    ASSERT_STREQ("spawn", mp_get_start_method(1));
    ASSERT_OK(mp_set_start_method(NULL, 1)); /* unset */
    ASSERT_TRUE(mp_get_start_method(1) == NULL);
    ASSERT_OK(mp_set_start_method("forkserver", 0));
    ASSERT_EQ(MP_ECONTEXTSET, mp_set_start_method("forkserver", 0));
    ASSERT_OK(mp_get_context(&ctx, NULL));
    ASSERT_STREQ("forkserver", mp_context_name(ctx));
    ASSERT_EQ(MP_ECONCRETE, mp_context_set_start_method(ctx, "fork", 1));
}

/* Queue(), JoinableQueue() and SimpleQueue() are the default context's
 * methods in CPython: making one fixes the default start method. */
TEST(making_a_queue_fixes_the_default_method)
{
    mp_queue *q;

    ASSERT_TRUE(mp_get_start_method(1) == NULL);
    ASSERT_OK(mp_simple_queue_new(&q));
    mp_queue_free(q);
    ASSERT_STREQ("fork", mp_get_start_method(1));
    ASSERT_EQ(MP_ECONTEXTSET, mp_set_start_method("spawn", 0));
    ASSERT_OK(mp_set_start_method(NULL, 1)); /* unset */
    ASSERT_OK(mp_queue_new(&q, 0));
    mp_queue_free(q);
    ASSERT_STREQ("fork", mp_get_start_method(1));
}

TEST(bad_method_names)
{
    mp_context *ctx = NULL;
    char line[128];

    ASSERT_EQ(MP_ERAISED, mp_get_context(&ctx, "bogus"));
    mp_format_exception(MP_ERAISED, line, sizeof(line));
    ASSERT_STREQ("ValueError: cannot find context for 'bogus'", line);
    ASSERT_EQ(MP_ERAISED, mp_set_start_method("bogus", 1));
    ASSERT_TRUE(mp_get_start_method(1) == NULL); /* unchanged */
}

TEST(context_processes_are_named_by_method)
{
    mp_context *f, *s, *fs;
    mp_process *p[4];

    ASSERT_OK(mp_get_context(&f, "fork"));
    ASSERT_OK(mp_get_context(&s, "spawn"));
    ASSERT_OK(mp_get_context(&fs, "forkserver"));
    ASSERT_OK(mp_context_process_new(f, &p[0], NULL, NULL, 0, NULL));
    ASSERT_OK(mp_context_process_new(s, &p[1], NULL, NULL, 0, NULL));
    ASSERT_OK(mp_context_process_new(fs, &p[2], NULL, NULL, 0, NULL));
    ASSERT_OK(mp_process_new(&p[3], NULL, NULL, 0, NULL));
    ASSERT_STREQ("ForkProcess-1", mp_process_name(p[0]));
    ASSERT_STREQ("SpawnProcess-2", mp_process_name(p[1]));
    ASSERT_STREQ("ForkServerProcess-3", mp_process_name(p[2]));
    ASSERT_STREQ("Process-4", mp_process_name(p[3]));
    /* Making a process does not fix the default method; starting does. */
    ASSERT_TRUE(mp_get_start_method(1) == NULL);
    ASSERT_OK(mp_process_start(p[3]));
    ASSERT_STREQ("fork", mp_get_start_method(1));
    ASSERT_EQ(0, mp_process_join(p[3], MP_FOREVER));
    for (int i = 0; i < 4; i++)
        mp_process_free(p[i]);
}

TEST(what_each_method_inherits)
{
    char want[256], *got;

    counter = 42;
    got = run_report("fork");
    /* _bootstrap forces a context process's method: fork. */
    snprintf(want, sizeof(want), "counter=42 os_parent=%ld parent=%ld "
             "parent_alive=1 name=ForkProcess-1 method=fork\n",
             (long)getpid(), (long)getpid());
    ASSERT_STREQ(want, got);

    got = run_report("spawn"); /* a fresh program: the global is 0 */
    snprintf(want, sizeof(want), "counter=0 os_parent=%ld parent=%ld "
             "parent_alive=1 name=SpawnProcess-2 method=spawn\n",
             (long)getpid(), (long)getpid());
    ASSERT_STREQ(want, got);

    got = run_report("forkserver"); /* forked by the server */
    ASSERT_TRUE(strncmp(got, "counter=0 os_parent=", 20) == 0);
    ASSERT_TRUE(atol(got + 20) != (long)getpid());
    snprintf(want, sizeof(want), " parent=%ld parent_alive=1 "
             "name=ForkServerProcess-3 method=forkserver\n", (long)getpid());
    ASSERT_STREQ(want, strchr(got + 20, ' '));
}

static void exit_codes_and_signals(const char *method)
{
    mp_context *ctx;
    mp_process *p;
    int code = -1;
    pid_t pid;
    siginfo_t si;

    ASSERT_OK(mp_get_context(&ctx, method));
    ASSERT_OK(mp_context_process_new(ctx, &p, "exit_7", NULL, 0, NULL));
    ASSERT_OK(mp_process_start(p));
    ASSERT_EQ(0, mp_process_join(p, 30.0));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(7, code);
    mp_process_free(p);

    ASSERT_OK(mp_context_process_new(ctx, &p, "block_forever", NULL, 0,
                                     NULL));
    ASSERT_OK(mp_process_start(p));
    ASSERT_EQ(MP_ETIMEDOUT, mp_process_join(p, 0.1));
    ASSERT_EQ(1, mp_process_is_alive(p));
    ASSERT_OK(mp_process_terminate(p));
    ASSERT_EQ(0, mp_process_join(p, 30.0));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(-SIGTERM, code);
    ASSERT_OK(mp_process_terminate(p)); /* after the end: nothing */
    mp_process_pid(p, &pid);
    /* The fork server reaps its children: none is ours to wait for. */
    if (strcmp(method, "forkserver") == 0) {
        ASSERT_EQ(-1, waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG));
        ASSERT_EQ(ECHILD, errno);
    }
    mp_process_free(p);
}

TEST(spawn_exit_codes_and_signals)
{
    exit_codes_and_signals("spawn");
}

TEST(forkserver_exit_codes_and_signals)
{
    exit_codes_and_signals("forkserver");
}

/* The fork server is started again when it has died. */
TEST(forkserver_restarts_after_being_killed)
{
    char *got;
    long server;
    int fd;

    got = run_report("forkserver");
    server = atol(got + 20);
    ASSERT_TRUE(server > 0);
    fd = (int)syscall(SYS_pidfd_open, (pid_t)server, 0);
    if (fd < 0)
        check_skip("no pidfd_open here (valgrind < 3.20?)");
    ASSERT_EQ(0, kill((pid_t)server, SIGKILL));
    {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ASSERT_EQ(1, poll(&pfd, 1, 10000)); /* it is gone */
    }
    close(fd);
    got = run_report("forkserver");
    ASSERT_TRUE(atol(got + 20) != server);
}

struct no_main_run {
    const char *helper, *method, *hangfile;
    bool in_ctor;
};

/* In check_output()'s child: a PID namespace where the kernel allows one,
 * whose first process runs the helper, so that whatever it leaves dies
 * with it. */
static void no_main_child(void *arg)
{
    const struct no_main_run *nm = arg;
    int status;
    pid_t init;

    if (unshare(CLONE_NEWPID) < 0)
        (void)unshare(CLONE_NEWUSER | CLONE_NEWPID);
    if ((init = fork()) == 0) {
        setenv("MP_NO_MAIN_METHOD", nm->method, 1);
        unsetenv("MP_NO_MAIN_DEPTH");
        if (nm->in_ctor)
            setenv("MP_NO_MAIN_CTOR", "1", 1);
        if (nm->hangfile != NULL) {
            setenv("MP_NO_MAIN_HANG", nm->hangfile, 1);
            setenv("LIBMP_START_TIMEOUT", "1", 1);
        }
        execl(nm->helper, nm->helper, (char *)NULL);
        _exit(127);
    }
    while (waitpid(init, &status, 0) < 0 && errno == EINTR)
        ;
    _exit(0);
}

/* Runs the helper that forgets mp_main() (MP_NO_MAIN_HELPER) with the
 * given method and, if hangfile is set, in hang mode; returns its stdout.
 * Its depth guard bounds it even without a PID namespace.  *secs gets how
 * long it ran. */
static char *run_no_main(const char *method, const char *hangfile,
                         double *secs)
{
    static char out[4096];
    struct no_main_run nm = { getenv("MP_NO_MAIN_HELPER"), method, hangfile,
                              false };
    double t0 = check_now();

    if (nm.helper == NULL)
        check_skip("MP_NO_MAIN_HELPER is not set (run through make check)");
    check_output(no_main_child, &nm, out, sizeof(out));
    *secs = check_now() - t0;
    return out;
}

#define NO_MAIN_CHILD                                                         \
    "1: RuntimeError: An attempt has been made to start a new process "      \
    "before the current process has finished its bootstrapping phase.  This " \
    "probably means that you are not using fork to start your child "        \
    "processes and you have forgotten to call mp_main(argc, argv) first "    \
    "thing in main().\n"

/* A program that forgets mp_main() runs main() once more in its child, as
 * CPython re-runs an unguarded main module, and no further: the child's own
 * start() refuses (CPython's bootstrapping RuntimeError), and the parent's
 * start() fails as soon as that child ends, instead of a chain of copies. */
TEST(spawn_without_mp_main_cannot_multiply)
{
    double secs;
    char *out = run_no_main("spawn", NULL, &secs);

    ASSERT_STREQ(NO_MAIN_CHILD
                 "0: RuntimeError: the child did not reach mp_main(): a "
                 "program that uses the spawn or forkserver start method must "
                 "call mp_main(argc, argv) first thing in main()\n", out);
    ASSERT_TRUE(secs < 8.0); /* not the 10 s start timeout */
}

/* The same from a constructor of the program's, which runs before main():
 * libmp's own look at its arguments runs before it (constructor priority
 * 101), with the static library too. */
TEST(a_start_in_a_constructor_cannot_multiply_either)
{
    static char out[4096];
    struct no_main_run nm = { getenv("MP_NO_MAIN_HELPER"), "spawn", NULL,
                              true };

    if (nm.helper == NULL)
        check_skip("MP_NO_MAIN_HELPER is not set (run through make check)");
    check_output(no_main_child, &nm, out, sizeof(out));
    ASSERT_STREQ(NO_MAIN_CHILD
                 "0: RuntimeError: the child did not reach mp_main(): a "
                 "program that uses the spawn or forkserver start method must "
                 "call mp_main(argc, argv) first thing in main()\n", out);
}

TEST(forkserver_without_mp_main_cannot_multiply)
{
    double secs;
    char *out = run_no_main("forkserver", NULL, &secs);

    ASSERT_STREQ(NO_MAIN_CHILD "0: RuntimeError: the fork server failed or "
                 "died before answering\n", out);
    ASSERT_TRUE(secs < 8.0);
}

/* A child that never answers is killed when its start() gives up, and so is
 * everything it started meanwhile. */
TEST(start_timeout_leaves_no_descendant)
{
    char hangfile[] = "/tmp/libmp-test-hang-XXXXXX";
    double secs;
    int fd = mkstemp(hangfile);
    char *out;

    ASSERT_TRUE(fd >= 0);
    close(fd);
    out = run_no_main("spawn", hangfile, &secs);
    unlink(hangfile);
    ASSERT_STREQ("0: RuntimeError: the child did not reach mp_main(): a "
                 "program that uses the spawn or forkserver start method must "
                 "call mp_main(argc, argv) first thing in main()\n"
                 "grandchild ended\n", out);
}

/* spawn.c, internal: the bytes a spawned child is told. */
int mp__blob_build(const mp_process *p, char **out, size_t *len);
int mp__blob_send(int fd, const char *buf, size_t len, double deadline);

int mp__blob_recv(int fd, char **buf, size_t *len);

/* A parent that dies in the middle of sending a blob leaves the reader
 * (a spawned child, the fork server) nothing to free: the buffer used to
 * be freed and left set, and its caller freed it again. */
TEST(a_blob_cut_short_leaves_nothing_to_free)
{
    uint64_t n = 100;
    char *blob = (char *)&n;
    size_t len = 0;
    int sp[2];

    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    ASSERT_EQ(sizeof(n), write(sp[0], &n, sizeof(n)));
    ASSERT_EQ(10, write(sp[0], "0123456789", 10));
    close(sp[0]);
    ASSERT_TRUE(mp__blob_recv(sp[1], &blob, &len) < 0);
    ASSERT_TRUE(blob == NULL);
    free(blob);
    close(sp[1]);
}

/* A blob's length costs memory only once its bytes arrive: 1 TiB said
 * (the most a child accepts) and 10 bytes sent is the end of the stream,
 * not an allocation of what was said (-ENOMEM, or an abort under ASan);
 * a blob longer than the first 64 KiB of buffer arrives whole. */
TEST(a_blob_length_costs_nothing_before_its_bytes)
{
    uint64_t n = (uint64_t)1 << 40;
    size_t len = 0, big = 300000;
    char *blob = NULL, *want = malloc(big);
    int sp[2], status;
    pid_t pid;

    ASSERT_TRUE(want != NULL);
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    ASSERT_EQ(sizeof(n), write(sp[0], &n, sizeof(n)));
    ASSERT_EQ(10, write(sp[0], "0123456789", 10));
    close(sp[0]);
    ASSERT_EQ(-EPIPE, mp__blob_recv(sp[1], &blob, &len));
    ASSERT_TRUE(blob == NULL);
    close(sp[1]);

    for (size_t i = 0; i < big; i++)
        want[i] = (char)(i * 31 + i / 977);
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM, 0, sp));
    if ((pid = fork()) == 0) { /* more than the socket holds: a writer */
        close(sp[1]);
        _exit(mp__blob_send(sp[0], want, big, check_now() + 30) == 0 ? 0 : 1);
    }
    ASSERT_TRUE(pid > 0);
    close(sp[0]);
    ASSERT_EQ(0, mp__blob_recv(sp[1], &blob, &len));
    ASSERT_EQ(big, len);
    ASSERT_TRUE(memcmp(blob, want, big) == 0);
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_EQ(0, status);
    free(blob);
    free(want);
    close(sp[1]);
}

/* Creates the file it is given. */
MP_TARGET(create_file)
{
    char path[256];
    int fd;

    snprintf(path, sizeof(path), "%.*s", (int)len, (const char *)arg);
    if ((fd = open(path, O_WRONLY | O_CREAT, 0666)) < 0)
        return 3;
    close(fd);
    return 0;
}

/* A process that can exec this program must not be able to make it run a
 * target of its choosing with privileges it lacks (a setuid program): a
 * spawned child takes its orders only from a parent with its own
 * credentials.  Here the child runs as nobody, and the socket at its
 * descriptor 3 comes from root. */
TEST(spawned_child_refuses_a_parent_with_other_credentials)
{
    char dir[] = "/tmp/libmp-test-trust-XXXXXX", path[64], ppid[24];
    mp_process *p = NULL;
    char *blob = NULL;
    size_t len;
    int sp[2], status;
    pid_t pid;

    if (geteuid() != 0)
        check_skip("needs root, to run a child as another user");
    ASSERT_TRUE(mkdtemp(dir) != NULL);
    ASSERT_EQ(0, chmod(dir, 0777));
    snprintf(path, sizeof(path), "%s/ran", dir);
    ASSERT_OK(mp_process_new(&p, "create_file", path, strlen(path), NULL));
    ASSERT_OK(mp__blob_build(p, &blob, &len));
    ASSERT_EQ(0, socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp));
    snprintf(ppid, sizeof(ppid), "%ld", (long)getpid());
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        int null = open("/dev/null", O_RDONLY);
        dup2(sp[1], 3);
        dup2(null, 4);
        if (setgid(65534) < 0 || setuid(65534) < 0)
            _exit(126);
        execl("/proc/self/exe", "test_context", "--libmp-spawn", ppid,
              (char *)NULL);
        _exit(127);
    }
    close(sp[1]);
    (void)mp__blob_send(sp[0], blob, len, check_now() + 10);
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    close(sp[0]);
    free(blob);
    mp_process_free(p);
    if (WIFEXITED(status) && WEXITSTATUS(status) >= 126) {
        rmdir(dir);
        check_skip("nobody cannot run this test program here");
    }
    ASSERT_EQ(-1, access(path, F_OK)); /* the target never ran */
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    rmdir(dir);
}

/* Exits 0 if its argument is what a NULL argument must become under every
 * method: a non-NULL, empty, NUL-terminated string. */
MP_TARGET(arg_is_empty_string)
{
    return arg != NULL && len == 0 && ((const char *)arg)[0] == '\0' ? 0 : 5;
}

/* Exits 0 if its 3 argument bytes "abc" are followed by a NUL. */
MP_TARGET(arg_is_terminated)
{
    return arg != NULL && len == 3 && memcmp(arg, "abc", 4) == 0 ? 0 : 5;
}

/* A target sees the same argument under every method: never NULL, with a
 * NUL after its bytes (the NULL argument reached a fork child as NULL, and
 * spawn and forkserver children as ""). */
TEST(target_argument_is_the_same_under_every_method)
{
    static const char *const methods[] = { "fork", "spawn", "forkserver" };

    for (int m = 0; m < 3; m++) {
        mp_context *ctx;
        mp_process *p;
        int code = -1;

        mp_process_free(run_to_end(methods[m], "arg_is_empty_string", 0));
        ASSERT_OK(mp_get_context(&ctx, methods[m]));
        ASSERT_OK(mp_context_process_new(ctx, &p, "arg_is_terminated", "abcd",
                                         3, NULL));
        ASSERT_OK(mp_process_start(p));
        ASSERT_EQ(0, mp_process_join(p, 30.0));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(0, code);
        mp_process_free(p);
    }
}

/* In check_output()'s child: runs the program as nobody with
 * LIBMP_NO_PIDFD=1 (126: cannot become nobody). */
static void run_as_nobody(void *path)
{
    setenv("LIBMP_NO_PIDFD", "1", 1);
    if (setgid(65534) < 0 || setuid(65534) < 0)
        _exit(126);
    execl(path, path, (char *)NULL);
}

/* Runs `path` as nobody with LIBMP_NO_PIDFD=1; returns the first 4 bytes of
 * what its sentinel is ("anon", "pipe"), or NULL if nobody cannot run it. */
static const char *sentinel_kind_as_nobody(char *path)
{
    static char out[64];
    int status = check_output(run_as_nobody, path, out, sizeof(out));

    if (!WIFEXITED(status) || WEXITSTATUS(status) >= 126)
        return NULL;
    ASSERT_EQ(0, WEXITSTATUS(status));
    return out;
}

/* A setuid program obeys no LIBMP_* variable of its caller's (they are
 * read with secure_getenv()); the same program, not setuid, does. */
TEST(a_setuid_program_ignores_libmp_variables)
{
    const char *dir = getenv("MP_HELPERS"), *kind;
    char src[512], copy[] = "/tmp/libmp-test-setuid-XXXXXX", cmd[1200];
    int fd;

    if (dir == NULL)
        check_skip("MP_HELPERS is not set (run through make check)");
    if (geteuid() != 0)
        check_skip("needs root, to make a setuid copy and run it as nobody");
    snprintf(src, sizeof(src), "%s/helper_sentinel_kind", dir);
    ASSERT_TRUE((fd = mkstemp(copy)) >= 0);
    close(fd);
    snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", src, copy);
    ASSERT_EQ(0, system(cmd));
    ASSERT_EQ(0, chmod(copy, 0755));
    kind = sentinel_kind_as_nobody(copy);
    if (kind == NULL) {
        unlink(copy);
        check_skip("nobody cannot run a program in /tmp here");
    }
    ASSERT_STREQ("pipe\n", kind); /* not setuid: the variable is obeyed */
    ASSERT_EQ(0, chmod(copy, 04755));
    kind = sentinel_kind_as_nobody(copy);
    unlink(copy);
    ASSERT_TRUE(kind != NULL);
    ASSERT_STREQ("anon\n", kind);
}

/* Many children that end as soon as they have answered: the answer and the
 * end can arrive together, and must still count as an answer. */
TEST(many_short_spawn_and_forkserver_children)
{
    static const char *const methods[] = { "spawn", "forkserver" };

    for (int m = 0; m < 2; m++)
        for (int i = 0; i < 150; i++)
            mp_process_free(run_to_end(methods[m], "exit_7", 7));
}

/* Reports its working directory and its start method to a file. */
MP_TARGET(report_cwd_and_method)
{
    char path[256], cwd[512];
    int fd;

    snprintf(path, sizeof(path), "%.*s", (int)len, (const char *)arg);
    if ((fd = open(path, O_WRONLY | O_APPEND)) < 0)
        return 3;
    say(fd, "%s %s\n", getcwd(cwd, sizeof(cwd)) != NULL ? cwd : "?",
        mp_get_start_method(1) != NULL ? mp_get_start_method(1) : "None");
    close(fd);
    return 0;
}

static char *run_cwd_report(const char *method)
{
    return run_reporting(method, "report_cwd_and_method");
}

/* Every child runs in its parent's current directory, with its context's
 * start method; the fork server was started elsewhere. */
TEST(children_run_in_the_parents_directory_with_their_method)
{
    ASSERT_EQ(0, chdir("/"));
    run_cwd_report("forkserver"); /* the server starts in / */
    ASSERT_EQ(0, chdir("/tmp"));
    ASSERT_STREQ("/tmp forkserver\n", run_cwd_report("forkserver"));
    ASSERT_STREQ("/tmp spawn\n", run_cwd_report("spawn"));
    ASSERT_STREQ("/tmp fork\n", run_cwd_report("fork")); /* ForkProcess */
}

TEST(what_fixes_the_default_method)
{
    mp_context *ctx;
    mp_process *p;

    ASSERT_OK(mp_set_start_method(NULL, 0)); /* unset: sets the default */
    ASSERT_STREQ("fork", mp_get_start_method(1));
    ASSERT_OK(mp_set_start_method(NULL, 1));
    /* Starting a spawn process fixes the default too, as CPython's
     * get_preparation_data() does; a fork one does not. */
    ASSERT_OK(mp_get_context(&ctx, "spawn"));
    ASSERT_OK(mp_context_process_new(ctx, &p, "exit_7", NULL, 0, NULL));
    ASSERT_TRUE(mp_get_start_method(1) == NULL);
    ASSERT_OK(mp_process_start(p));
    ASSERT_STREQ("fork", mp_get_start_method(1));
    ASSERT_EQ(0, mp_process_join(p, 30.0));
    mp_process_free(p);
}

/* A program that ignores SIGCHLD still gets its forkserver children's exit
 * codes: the server handles SIGCHLD itself; the child gets SIG_IGN back. */
MP_TARGET(report_sigchld)
{
    struct sigaction sa;

    (void)arg;
    (void)len;
    sigaction(SIGCHLD, NULL, &sa);
    return sa.sa_handler == SIG_IGN ? 9 : 8;
}

TEST(forkserver_with_sigchld_ignored)
{
    signal(SIGCHLD, SIG_IGN);
    mp_process_free(run_to_end("forkserver", "report_sigchld", 9));
}

/* A sentinel stays readable once the child has ended, under every method
 * (a forkserver child's is a socket: reading the exit code must not drain
 * it). */
TEST(sentinel_stays_readable_after_join)
{
    static const char *const methods[] = { "fork", "spawn", "forkserver" };

    for (int m = 0; m < 3; m++) {
        mp_process *p = run_to_end(methods[m], "exit_7", 7);
        int fd, ready;

        fd = mp_process_sentinel(p);
        for (int k = 0; k < 3; k++)
            ASSERT_EQ(1, mp_wait(&fd, 1, 0, &ready));
        mp_process_free(p);
    }
}

/* Descriptors this process has open. */
static int open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    ASSERT_TRUE(d != NULL);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n - 1; /* the directory's own */
}

/* Waits for a word on the queue it was handed, then exits with the code
 * it was given. */
MP_TARGET(exit_when_told)
{
    long long word;
    int code;

    if (len != sizeof(code) || mp_child_queue(0) == NULL ||
        mp_queue_get_i64(mp_child_queue(0), &word, 60) < 0)
        return 99;
    memcpy(&code, arg, sizeof(code));
    return code;
}

/* A running forkserver child costs its parent one descriptor (CPython's
 * costs one: its sentinel), so a parent under a low RLIMIT_NOFILE can run
 * many at once; signals still reach them, and exit codes come back.  (The
 * pipe fallback adds the child's parent sentinel, as for fork.) */
TEST(forkserver_children_cost_one_descriptor_each)
{
    enum { N = 40, FIRST = 8 };
    int per = check_uses_pidfds() ? 1 : 2;
    mp_context *ctx;
    mp_process *p[N];
    mp_queue *go;
    struct rlimit rl;
    int before = 0;

    ASSERT_OK(mp_get_context(&ctx, "forkserver"));
    ASSERT_OK(mp_queue_new(&go, 0));
    for (int i = 0; i < N; i++) {
        int code = 10 + i;

        if (i == 1) /* the server is running: from here on, children only */
            before = open_fds();
        if (i == FIRST) {
            ASSERT_EQ(before + (FIRST - 1) * per, open_fds());
            /* Room for the rest, one each, and a few to start them with:
             * two each would not fit. */
            ASSERT_OK(getrlimit(RLIMIT_NOFILE, &rl));
            rl.rlim_cur = (rlim_t)(open_fds() + (N - FIRST) * per + 12);
            ASSERT_OK(setrlimit(RLIMIT_NOFILE, &rl));
        }
        ASSERT_OK(mp_context_process_new(ctx, &p[i], "exit_when_told", &code,
                                         sizeof(code), NULL));
        ASSERT_OK(mp_process_add_queue(p[i], go));
        ASSERT_OK(mp_process_start(p[i]));
    }
    ASSERT_EQ(before + (N - 1) * per, open_fds());
    for (int i = 0; i < N; i += 4)
        ASSERT_OK(mp_process_terminate(p[i]));
    for (int i = 0; i < N; i++)
        ASSERT_OK(mp_queue_put_i64(go, i));
    for (int i = 0; i < N; i++) {
        int code = -1;

        ASSERT_EQ(0, mp_process_join(p[i], 60.0));
        ASSERT_EQ(1, mp_process_exitcode(p[i], &code));
        ASSERT_EQ(i % 4 == 0 ? -SIGTERM : 10 + i, code);
        mp_process_free(p[i]);
    }
    mp_queue_free(go);
}

/* Whether pid is a zombie child of this process (/proc/PID/stat). */
static bool zombie_child(pid_t pid)
{
    char path[64], buf[512], *p;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
        return false;
    return p[2] == 'Z' && atol(p + 4) == (long)getpid();
}

/* Starts a forkserver child that blocks, kills the server with SIGKILL and
 * waits until it is dead, a zombie of ours: its pid in *server, the child's
 * pidfd (opened while the server, its OS parent, still held it) in
 * *child_fd. */
static mp_process *kill_the_server(pid_t *server, int *child_fd)
{
    char path[64], buf[512], *s;
    mp_context *ctx;
    mp_process *p;
    pid_t pid;
    int fd;
    ssize_t n;
    struct pollfd pfd = { .events = POLLIN };

    ASSERT_OK(mp_get_context(&ctx, "forkserver"));
    ASSERT_OK(mp_context_process_new(ctx, &p, "block_forever", NULL, 0,
                                     NULL));
    ASSERT_OK(mp_process_start(p));
    ASSERT_OK(mp_process_pid(p, &pid));
    *child_fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (*child_fd < 0)
        check_skip("no pidfd_open here (valgrind < 3.20?)");
    /* The child's OS parent is the server. */
    snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    ASSERT_TRUE((fd = open(path, O_RDONLY)) >= 0);
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    buf[n > 0 ? n : 0] = '\0';
    ASSERT_TRUE((s = strrchr(buf, ')')) != NULL);
    *server = (pid_t)atol(s + 4);
    ASSERT_TRUE(*server > 0 && *server != getpid());
    pfd.fd = (int)syscall(SYS_pidfd_open, *server, 0);
    ASSERT_TRUE(pfd.fd >= 0);
    ASSERT_OK(kill(*server, SIGKILL));
    ASSERT_EQ(1, poll(&pfd, 1, 10000)); /* dead: now a zombie */
    close(pfd.fd);
    ASSERT_TRUE(zombie_child(*server));
    return p;
}

static void end_orphan(int child_fd)
{
    struct pollfd pfd = { .fd = child_fd, .events = POLLIN };

    ASSERT_OK((int)syscall(SYS_pidfd_send_signal, child_fd, SIGKILL, NULL,
                           0));
    ASSERT_EQ(1, poll(&pfd, 1, 10000));
    close(child_fd);
}

/* A fork server killed with SIGKILL does not stay a zombie of ours: the
 * calls that reap finished children (here active_children()) reap it. */
TEST(a_killed_server_is_reaped_by_active_children)
{
    mp_process **list;
    size_t n;
    pid_t server;
    int child_fd;
    mp_process *p = kill_the_server(&server, &child_fd);

    ASSERT_OK(mp_active_children(&list, &n));
    mp_process_list_free(list, n);
    ASSERT_TRUE(!zombie_child(server));
    end_orphan(child_fd);
    mp_process_free(p);
}

/* ... and so does joining a child of that server, which then reports 255
 * (CPython's code for a server that died before telling). */
TEST(a_killed_server_is_reaped_when_its_childs_end_is_seen)
{
    pid_t server;
    int child_fd, code = -1;
    mp_process *p = kill_the_server(&server, &child_fd);

    ASSERT_EQ(0, mp_process_join(p, 30.0));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(255, code);
    ASSERT_TRUE(!zombie_child(server));
    end_orphan(child_fd);
    mp_process_free(p);
}
