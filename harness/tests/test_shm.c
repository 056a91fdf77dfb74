/*
 * test_shm.c - SharedMemory as CPython's (shm.c): names, sizes, buf,
 * close, unlink, repr and every error with CPython's message (as CPython
 * 3.8 and 3.13 print them); attaching from fork, spawn and forkserver
 * children, from an unrelated program, and from and to CPython itself.
 * What happens when processes die is test_shm_death.c's.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "shm_check.h"
#include "test_hooks.h"

static void expect_raise(const char *line, int r)
{
    ASSERT_EQ(MP_ERAISED, r);
    ASSERT_STREQ(line, shm_exc(r));
}

static int is_generated(const char *name)
{
    if (strlen(name) != 12 || strncmp(name, "psm_", 4) != 0)
        return 0;
    for (int i = 4; i < 12; i++)
        if (strchr("0123456789abcdef", name[i]) == NULL)
            return 0;
    return 1;
}

TEST(create_names_sizes_buf_repr_close_unlink)
{
    mp_shm *s, *a, *t;
    char line[200], want[200];
    unsigned char *buf;

    ASSERT_OK(shm_new_rec(&s, NULL, 1, 1));
    ASSERT_TRUE(is_generated(mp_shm_name(s)));
    ASSERT_TRUE(shm_exists(mp_shm_name(s)));
    /* Not rounded to a page, in 3.8 as in 3.13. */
    ASSERT_EQ(1, mp_shm_size(s));
    buf = mp_shm_buf(s);
    ASSERT_TRUE(buf != NULL);
    ASSERT_EQ(0, buf[0]);
    buf[0] = 42;
    snprintf(want, sizeof(want), "SharedMemory('%s', size=1)",
             mp_shm_name(s));
    ASSERT_EQ((int)strlen(want), mp_shm_repr(s, line, sizeof(line)));
    ASSERT_STREQ(want, line);
    /* An attach takes the segment's size, whatever it is asked. */
    ASSERT_OK(mp_shm_new(&a, mp_shm_name(s), 0, 100000));
    ASSERT_EQ(1, mp_shm_size(a));
    ASSERT_EQ(42, ((unsigned char *)mp_shm_buf(a))[0]);
    ASSERT_TRUE(mp_shm_buf(a) != mp_shm_buf(s));
    ASSERT_EQ(0, mp_shm_close(a));
    ASSERT_TRUE(mp_shm_buf(a) == NULL);
    ASSERT_EQ(0, mp_shm_close(a)); /* twice is fine */
    ASSERT_EQ(1, mp_shm_size(a));
    mp_shm_repr(a, line, sizeof(line));
    ASSERT_STREQ(want, line);
    a = mp_shm_free(a);
    ASSERT_TRUE(a == NULL);
    /* A creator that closes without unlinking: still attachable. */
    ASSERT_EQ(0, mp_shm_close(s));
    ASSERT_TRUE(shm_exists(mp_shm_name(s)));
    ASSERT_OK(mp_shm_new(&a, mp_shm_name(s), 0, 0));
    ASSERT_EQ(42, ((unsigned char *)mp_shm_buf(a))[0]);
    ASSERT_EQ(0, mp_shm_unlink(s));
    ASSERT_TRUE(!shm_exists(mp_shm_name(s)));
    /* The mapping outlives the name. */
    ASSERT_EQ(42, ((unsigned char *)mp_shm_buf(a))[0]);
    snprintf(want, sizeof(want),
             "FileNotFoundError: [Errno 2] No such file or directory: '/%s'",
             mp_shm_name(s));
    expect_raise(want, mp_shm_unlink(s));
    expect_raise(want, mp_shm_unlink(a));
    expect_raise(want, mp_shm_new(&t, mp_shm_name(s), 0, 0));
    ASSERT_TRUE(t == NULL);
    mp_shm_free(a);
    mp_shm_free(s);
    ASSERT_TRUE(mp_shm_free(NULL) == NULL);
}

TEST(errors_are_cpythons)
{
    mp_shm *s, *t = (mp_shm *)&t;
    char want[300], name[40], longname[300];

    expect_raise("ValueError: 'size' must be a positive integer",
                 mp_shm_new(&t, NULL, 1, (size_t)-1));
    ASSERT_TRUE(t == NULL);
    expect_raise("ValueError: 'size' must be a positive integer",
                 mp_shm_new(&t, "x", 0, (size_t)-5));
    expect_raise("ValueError: 'size' must be a positive number different "
                 "from zero", mp_shm_new(&t, NULL, 1, 0));
    expect_raise("ValueError: 'size' must be a positive number different "
                 "from zero", mp_shm_new(&t, "x", 1, 0));
    expect_raise("ValueError: 'name' can only be None if create=True",
                 mp_shm_new(&t, NULL, 0, 0));
    expect_raise("ValueError: 'name' can only be None if create=True",
                 mp_shm_new(&t, NULL, 0, 5));
    ASSERT_EQ(MP_EINVAL, mp_shm_new(NULL, NULL, 1, 1));

    snprintf(name, sizeof(name), "psm_err_%d", (int)getpid());
    expect_raise("FileNotFoundError: [Errno 2] No such file or directory: "
                 "'/psm_nonexistent_x'",
                 mp_shm_new(&t, "psm_nonexistent_x", 0, 0));
    /* CPython adds a '/' to a name that has one already. */
    expect_raise("FileNotFoundError: [Errno 2] No such file or directory: "
                 "'//psm_nonexistent_x'",
                 mp_shm_new(&t, "/psm_nonexistent_x", 0, 0));
    ASSERT_OK(shm_new_rec(&s, name, 1, 10));
    ASSERT_STREQ(name, mp_shm_name(s));
    snprintf(want, sizeof(want),
             "FileExistsError: [Errno 17] File exists: '/%s'", name);
    expect_raise(want, mp_shm_new(&t, name, 1, 10));
    ASSERT_TRUE(t == NULL);
    ASSERT_OK(mp_shm_unlink(s));
    mp_shm_free(s);

    expect_raise("OSError: [Errno 22] Invalid argument: '/a/b'",
                 mp_shm_new(&t, "a/b", 1, 10));
    expect_raise("OSError: [Errno 22] Invalid argument: '/'",
                 mp_shm_new(&t, "", 1, 10));
    memset(longname, 'x', 299);
    longname[299] = '\0';
    ASSERT_EQ(MP_ERAISED, mp_shm_new(&t, longname, 1, 10));
    ASSERT_TRUE(strncmp(shm_exc(MP_ERAISED), "OSError: [Errno 22] Invalid "
                        "argument: '/xxx", 40) == 0);
}

TEST(names_with_a_slash_or_a_quote_as_cpython_reports_them)
{
    mp_shm *s, *a;
    char name[64], line[200], want[200];

    /* "/x" opens "//x": the file is "x", the name stays "/x". */
    snprintf(name, sizeof(name), "/psm_slash_%d", (int)getpid());
    ASSERT_OK(shm_new_rec(&s, name, 1, 10));
    ASSERT_STREQ(name, mp_shm_name(s));
    ASSERT_TRUE(shm_exists(name + 1));
    ASSERT_OK(mp_shm_new(&a, name + 1, 0, 0));
    ASSERT_EQ(10, mp_shm_size(a));
    mp_shm_free(a);
    ASSERT_OK(mp_shm_unlink(s));
    ASSERT_TRUE(!shm_exists(name + 1));
    mp_shm_free(s);

    snprintf(name, sizeof(name), "psm_it's_%d", (int)getpid());
    ASSERT_OK(shm_new_rec(&s, name, 1, 3));
    snprintf(want, sizeof(want), "SharedMemory(\"%s\", size=3)", name);
    mp_shm_repr(s, line, sizeof(line));
    ASSERT_STREQ(want, line);
    ASSERT_OK(mp_shm_unlink(s));
    mp_shm_free(s);

    /* what str.isprintable() refuses is escaped, as CPython's repr does */
    snprintf(name, sizeof(name), "psm_\xc2\xa0_%d", (int)getpid());
    ASSERT_OK(shm_new_rec(&s, name, 1, 3));
    snprintf(want, sizeof(want), "SharedMemory('psm_\\xa0_%d', size=3)",
             (int)getpid());
    mp_shm_repr(s, line, sizeof(line));
    ASSERT_STREQ(want, line);
    ASSERT_OK(mp_shm_unlink(s));
    mp_shm_free(s);
}

TEST(attaching_an_empty_segment_is_cpythons_valueerror)
{
    char name[64];
    mp_shm *t;
    int fd;

    snprintf(name, sizeof(name), "/psm_empty_%d", (int)getpid());
    fd = shm_open(name, O_RDWR | O_CREAT | O_EXCL, 0600);
    ASSERT_TRUE(fd >= 0);
    shm_record(name + 1);
    close(fd);
    expect_raise("ValueError: cannot mmap an empty file",
                 mp_shm_new(&t, name + 1, 0, 0));
    ASSERT_TRUE(shm_exists(name + 1)); /* not unlinked for it */
    ASSERT_EQ(0, shm_unlink(name));
}

/* Attaches to args[0], checks that it begins with args[1], writes args[3]
 * at offset args[2]. */
MP_TARGET(attach_and_write)
{
    const char *expect = mp_args_str(args, 1), *reply = mp_args_str(args, 3);
    long long off = mp_args_int(args, 2);
    mp_shm *s;
    int r = mp_shm_new(&s, mp_args_str(args, 0), 0, 0);

    if (r < 0)
        return r;
    if (memcmp(mp_shm_buf(s), expect, strlen(expect)) != 0)
        return 3;
    if (off < 0 || (size_t)off + strlen(reply) + 1 > mp_shm_size(s))
        return 4;
    memcpy((char *)mp_shm_buf(s) + off, reply, strlen(reply) + 1);
    mp_shm_free(s);
    return 0;
}

static void attach_from(const char *method)
{
    mp_process_options o = { 0 };
    mp_process *p;
    mp_shm *s;
    int code = -1;

    ASSERT_OK(shm_new_rec(&s, NULL, 1, 4096));
    strcpy(mp_shm_buf(s), "from the parent");
    ASSERT_OK(mp_get_context(&o.context, method));
    ASSERT_OK(mp_process_create(&p, &attach_and_write_target,
                                MP_ARGS(mp_shm_name(s), "from the parent",
                                        1000, method), &o));
    ASSERT_OK(mp_process_start(p));
    ASSERT_OK(mp_process_join(p, 60));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    ASSERT_STREQ(method, (char *)mp_shm_buf(s) + 1000);
    mp_process_free(p);
    ASSERT_OK(mp_shm_unlink(s));
    mp_shm_free(s);
}

TEST(a_fork_child_attaches_by_name) { attach_from("fork"); }
TEST(a_spawn_child_attaches_by_name) { attach_from("spawn"); }
TEST(a_forkserver_child_attaches_by_name) { attach_from("forkserver"); }

static char *inherited;

MP_TARGET(write_inherited)
{
    strcpy(inherited + 2000, "through the inherited mapping");
    return 0;
}

TEST(a_fork_child_uses_the_mapping_it_inherits)
{
    mp_process_options o = { 0 };
    mp_process *p;
    mp_shm *s;
    int code = -1;

    ASSERT_OK(shm_new_rec(&s, NULL, 1, 4096));
    inherited = mp_shm_buf(s);
    ASSERT_OK(mp_get_context(&o.context, "fork"));
    ASSERT_OK(mp_process_create(&p, &write_inherited_target, NULL, 0, &o));
    ASSERT_OK(mp_process_start(p));
    ASSERT_OK(mp_process_join(p, 60));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(0, code);
    ASSERT_STREQ("through the inherited mapping", inherited + 2000);
    mp_process_free(p);
    ASSERT_OK(mp_shm_unlink(s));
    mp_shm_free(s);
}

static void exec_helper(void *arg)
{
    char path[4096];
    const char *name = arg;

    snprintf(path, sizeof(path), "%s/helper_shm", getenv("MP_HELPERS"));
    execl(path, path, "attach", name, (char *)NULL);
}

TEST(an_unrelated_program_attaches_by_name)
{
    char out[512], want[256];
    mp_shm *s;
    int status;

    if (getenv("MP_HELPERS") == NULL)
        check_skip("MP_HELPERS is not set (run through make check)");
    ASSERT_OK(shm_new_rec(&s, NULL, 1, 5000));
    strcpy(mp_shm_buf(s), "made by the test");
    status = check_output(exec_helper, (void *)mp_shm_name(s), out,
                          sizeof(out));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    snprintf(want, sizeof(want), "size=5000 data=made by the test\n");
    ASSERT_STREQ(want, out);
    ASSERT_STREQ("written by helper_shm", (char *)mp_shm_buf(s) + 300);
    ASSERT_OK(mp_shm_unlink(s));
    mp_shm_free(s);
}

/* Runs fn in a raw fork child; its exit status (0: it held). */
static int in_fork_child(int (*fn)(void))
{
    int status;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0)
        _exit(fn());
    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    ASSERT_TRUE(WIFEXITED(status));
    return WEXITSTATUS(status);
}

/* A daemon's way: no standard streams.  The socket made for the reaper
 * then takes their numbers, which the reaper's own streams must not
 * replace. */
static int create_without_streams(void)
{
    mp_shm *s;
    int ok;

    close(0);
    close(1);
    close(2);
    if (mp_shm_new(&s, NULL, 1, 10) < 0)
        return 2;
    shm_record(mp_shm_name(s));
    ok = mp__shm_reaper_pid() > 0;
    mp_shm_unlink(s);
    mp_shm_free(s);
    return ok ? 0 : 1;
}

TEST(a_process_without_standard_streams_gets_a_reaper)
{
    ASSERT_EQ(0, in_fork_child(create_without_streams));
}

/* A fork child that closes what it inherited (as daemons and servers do)
 * and opens its own files, which take the numbers: its first create must
 * close none of them. */
static int create_after_closing_everything(void)
{
    mp_shm *s;
    int bad = 0;

    close_range(3, ~0U, 0);
    for (int i = 3; i < 256; i++)
        if (open("/dev/null", O_RDONLY | O_CLOEXEC) != i)
            return 2;
    if (mp_shm_new(&s, NULL, 1, 10) < 0)
        return 3;
    shm_record(mp_shm_name(s));
    for (int i = 3; i < 256; i++) {
        struct stat st;
        bad |= fstat(i, &st) < 0 || !S_ISCHR(st.st_mode);
    }
    mp_shm_unlink(s);
    mp_shm_free(s);
    return bad;
}

TEST(a_fork_child_creating_closes_no_descriptor_of_its_own)
{
    mp_shm *s;

    /* The parent has a reaper, hence a socket the child inherits. */
    ASSERT_OK(shm_new_rec(&s, NULL, 1, 10));
    ASSERT_TRUE(mp__shm_reaper_pid() > 0);
    ASSERT_EQ(0, in_fork_child(create_after_closing_everything));
    ASSERT_OK(mp_shm_unlink(s));
    mp_shm_free(s);
}

static void exec_helper_as_reaper(void *arg)
{
    char path[4096];

    (void)arg;
    close(3); /* no socket where a reaper's would be */
    dup2(open("/dev/null", O_WRONLY | O_CLOEXEC), 2); /* its usage */
    snprintf(path, sizeof(path), "%s/helper_shm", getenv("MP_HELPERS"));
    execl(path, path, "--libmp-shm-reaper", (char *)NULL);
}

/* The reaper's argument, given by hand: the program runs as it would
 * (helper_shm's usage, status 2), it is not taken over before main(). */
TEST(a_program_given_the_reapers_argument_runs_its_main)
{
    char out[512];
    int status;

    if (getenv("MP_HELPERS") == NULL)
        check_skip("MP_HELPERS is not set (run through make check)");
    status = check_output(exec_helper_as_reaper, NULL, out, sizeof(out));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(2, WEXITSTATUS(status));
}

/* CPython, if there is one: PYTHON (make check sets it), 3.8 or later. */
static const char *python(void)
{
    const char *py = getenv("PYTHON");

    if (py == NULL || py[0] == '\0' || access(py, X_OK) != 0)
        check_skip("no CPython (PYTHON is not set or not runnable)");
    return py;
}

/* Runs `python -c script arg` with pipes to its stdin and from its
 * stdout. */
static pid_t run_python(const char *script, const char *arg, int *in,
                        int *out)
{
    const char *py = python();
    int a[2], b[2];
    pid_t pid;

    ASSERT_EQ(0, pipe2(a, O_CLOEXEC));
    ASSERT_EQ(0, pipe2(b, O_CLOEXEC));
    fflush(NULL);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        dup2(a[0], 0);
        dup2(b[1], 1);
        execl(py, py, "-c", script, arg, (char *)NULL);
        _exit(127);
    }
    close(a[0]);
    close(b[1]);
    *in = a[1];
    *out = b[0];
    return pid;
}

static void read_line(int fd, char *buf, size_t size)
{
    size_t n = 0;

    while (n + 1 < size) {
        ssize_t k = read(fd, buf + n, 1);
        if (k <= 0 || buf[n] == '\n')
            break;
        n++;
    }
    buf[n] = '\0';
}

static int python_status(pid_t pid)
{
    int status;

    ASSERT_EQ(pid, waitpid(pid, &status, 0));
    if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
        check_skip("this CPython has no multiprocessing.shared_memory");
    return status;
}

/* Python without its resource tracker: it would unlink at exit what an
 * attach registered (3.8 to 3.13 register one), and it outlives python
 * for a moment, in the test's process group. */
#define PY_PRELUDE                                                           \
    "import sys\n"                                                            \
    "try:\n"                                                                  \
    "    from multiprocessing import shared_memory, resource_tracker\n"      \
    "except ImportError:\n"                                                   \
    "    sys.exit(3)\n"                                                       \
    "resource_tracker.register = lambda *a: None\n"                          \
    "resource_tracker.unregister = lambda *a: None\n"

TEST(cpython_attaches_what_libmp_made)
{
    static const char script[] =
        PY_PRELUDE
        "s = shared_memory.SharedMemory(sys.argv[1])\n"
        "print(s.size, bytes(s.buf[:12]).decode(), flush=True)\n"
        "s.buf[100:115] = b'python was here'\n"
        "s.close()\n";
    char line[256];
    int in, out, status;
    mp_shm *s;
    pid_t pid;

    python();
    ASSERT_OK(shm_new_rec(&s, NULL, 1, 333));
    memcpy(mp_shm_buf(s), "made by libmp", 13);
    pid = run_python(script, mp_shm_name(s), &in, &out);
    close(in);
    read_line(out, line, sizeof(line));
    close(out);
    status = python_status(pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    ASSERT_STREQ("333 made by libm", line);
    ASSERT_TRUE(memcmp((char *)mp_shm_buf(s) + 100, "python was here", 15)
                == 0);
    ASSERT_TRUE(shm_exists(mp_shm_name(s)));
    ASSERT_OK(mp_shm_unlink(s));
    mp_shm_free(s);
}

TEST(libmp_attaches_what_cpython_made)
{
    static const char script[] =
        PY_PRELUDE
        "s = shared_memory.SharedMemory(create=True, size=1000)\n"
        "s.buf[:11] = b'from python'\n"
        "print(s.name, flush=True)\n"
        "sys.stdin.readline()\n"
        "ok = bytes(s.buf[200:210]) == b'from libmp'\n"
        "s.close()\n"
        "s.unlink()\n"
        "print('ok' if ok else 'bad', flush=True)\n";
    char name[256], verdict[64];
    int in, out, status;
    mp_shm *s;
    pid_t pid;

    python();
    pid = run_python(script, "", &in, &out);
    read_line(out, name, sizeof(name));
    if (name[0] == '\0') {
        close(in);
        close(out);
        python_status(pid);
        check_fail(__FILE__, __LINE__, "CPython printed no name");
    }
    shm_record(name);
    ASSERT_OK(mp_shm_new(&s, name, 0, 0));
    ASSERT_EQ(1000, mp_shm_size(s));
    ASSERT_TRUE(memcmp(mp_shm_buf(s), "from python", 11) == 0);
    memcpy((char *)mp_shm_buf(s) + 200, "from libmp", 10);
    mp_shm_free(s);
    ASSERT_EQ(1, write(in, "\n", 1));
    close(in);
    read_line(out, verdict, sizeof(verdict));
    close(out);
    status = python_status(pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    ASSERT_STREQ("ok", verdict);
    ASSERT_TRUE(!shm_exists(name));
}
