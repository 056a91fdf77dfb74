/*
 * test_faults.c - EMFILE, EAGAIN and ENOMEM at every step (SQLite's fault
 * loops): each operation is run with its Nth call to a resource-making
 * function failed, for N = 1, 2, 3, ... until it runs through with no
 * failure injected.
 *
 * The program is linked with ld --wrap for the C library functions libmp's
 * objects call that make a descriptor (open, pipe2, socketpair,
 * memfd_create, eventfd, signalfd, fcntl's F_DUPFD*, pidfd_open through
 * syscall()), memory (malloc, calloc, realloc, strdup, strndup, mmap,
 * mprotect, ftruncate of a memfd, posix_spawn's file actions) or a process
 * or thread (fork, posix_spawn, pthread_create), so the library under test
 * is libmp-test.a unchanged.  A failed call fails as real exhaustion makes
 * it fail: EMFILE for a descriptor, ENOMEM for memory, EAGAIN for a
 * process or thread (the errno, or the returned error number).
 *
 * For each N: the operation returns a clean error (-EMFILE, -ENOMEM or
 * -EAGAIN: what was injected, or an alternative the operation names, as
 * MP_EFULL for a put that may wait for room), leaves no descriptor open
 * that it did not leave open before (/proc/self/fd), no child running or
 * unreaped (/proc/self/task/N/children, waitid(WNOWAIT); a fork server is
 * allowed), and no allocation live that it made (the wrappers count
 * malloc's against free's; LeakSanitizer and valgrind see the rest); a
 * start that failed is started again on the same object, which must then
 * run the child as if nothing had happened; and the whole operation then
 * succeeds without faults.  A "cold" loop runs each N in a fresh fork of
 * the test, where libmp has done nothing yet, so its first-use steps (the
 * pidfd probe, finding its own program, a queue's first process setup)
 * fail too; there, a start must still give the child a pidfd sentinel
 * wherever the kernel has pidfds.
 *
 * Real exhaustion too: RLIMIT_NOFILE lowered to each number of descriptors
 * from none free to enough, and RLIMIT_NPROC in a child that has become
 * nobody (root is not held to it).
 *
 * With STRESS_SECONDS set, every loop is repeated (and the cold loops run
 * for every operation) until that time has passed, and each test prints a
 * "stress: faults [...]" line.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"

static const char *const methods[] = { "fork", "spawn", "forkserver" };

/* the injector */

static struct {
    bool armed;
    long calls;     /* calls to wrapped functions since armed */
    long fail_at;   /* the call to fail (1-based) */
    const char *only; /* NULL, or the one function whose calls count */
    const char *fn; /* the one failed, and from where */
    void *caller;
    int err;
    long live;      /* allocations made through the wrappers, not freed */
} inj;

/* Whether this call (to fn, from caller) is the one to fail. */
static bool inject(const char *fn, void *caller, int err)
{
    if (!inj.armed || (inj.only != NULL && strcmp(fn, inj.only) != 0) ||
        ++inj.calls != inj.fail_at)
        return false;
    inj.fn = fn;
    inj.caller = caller;
    inj.err = err;
    return true;
}

#define CALLER __builtin_return_address(0)
#define FAIL_ERRNO(fn, e, ret)                                                \
    do {                                                                      \
        if (inject(fn, CALLER, (e))) {                                        \
            errno = (e);                                                      \
            return ret;                                                       \
        }                                                                     \
    } while (0)

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
char *__real_strndup(const char *s, size_t n);
void __real_free(void *p);

void *__wrap_malloc(size_t n)
{
    void *p;

    FAIL_ERRNO("malloc", ENOMEM, NULL);
    if ((p = __real_malloc(n)) != NULL)
        inj.live++;
    return p;
}

void *__wrap_calloc(size_t n, size_t size)
{
    void *p;

    FAIL_ERRNO("calloc", ENOMEM, NULL);
    if ((p = __real_calloc(n, size)) != NULL)
        inj.live++;
    return p;
}

void *__wrap_realloc(void *old, size_t n)
{
    void *p;

    FAIL_ERRNO("realloc", ENOMEM, NULL);
    if ((p = __real_realloc(old, n)) != NULL && old == NULL)
        inj.live++;
    return p;
}

char *__wrap_strdup(const char *s)
{
    char *p;

    FAIL_ERRNO("strdup", ENOMEM, NULL);
    if ((p = __real_strdup(s)) != NULL)
        inj.live++;
    return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
    char *p;

    FAIL_ERRNO("strndup", ENOMEM, NULL);
    if ((p = __real_strndup(s, n)) != NULL)
        inj.live++;
    return p;
}

void __wrap_free(void *p)
{
    if (p != NULL)
        inj.live--;
    __real_free(p);
}

int __real_open(const char *path, int flags, ...);
int __wrap_open(const char *path, int flags, ...)
{
    mode_t mode = 0;

    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = (mode_t)va_arg(ap, int);
        va_end(ap);
    }
    FAIL_ERRNO("open", EMFILE, -1);
    return __real_open(path, flags, mode);
}

int __real_pipe2(int fds[2], int flags);
int __wrap_pipe2(int fds[2], int flags)
{
    FAIL_ERRNO("pipe2", EMFILE, -1);
    return __real_pipe2(fds, flags);
}

int __real_socketpair(int domain, int type, int protocol, int sv[2]);
int __wrap_socketpair(int domain, int type, int protocol, int sv[2])
{
    FAIL_ERRNO("socketpair", EMFILE, -1);
    return __real_socketpair(domain, type, protocol, sv);
}

int __real_memfd_create(const char *name, unsigned flags);
int __wrap_memfd_create(const char *name, unsigned flags)
{
    FAIL_ERRNO("memfd_create", EMFILE, -1);
    return __real_memfd_create(name, flags);
}

int __real_eventfd(unsigned initval, int flags);
int __wrap_eventfd(unsigned initval, int flags)
{
    FAIL_ERRNO("eventfd", EMFILE, -1);
    return __real_eventfd(initval, flags);
}

int __real_signalfd(int fd, const sigset_t *mask, int flags);
int __wrap_signalfd(int fd, const sigset_t *mask, int flags)
{
    FAIL_ERRNO("signalfd", EMFILE, -1);
    return __real_signalfd(fd, mask, flags);
}

/* Only the commands that make a descriptor count. */
int __real_fcntl(int fd, int cmd, ...);
int __wrap_fcntl(int fd, int cmd, ...)
{
    va_list ap;
    void *arg;

    va_start(ap, cmd);
    arg = va_arg(ap, void *);
    va_end(ap);
    if (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)
        FAIL_ERRNO("fcntl(F_DUPFD)", EMFILE, -1);
    return __real_fcntl(fd, cmd, arg);
}

/* pidfd_open is reached through syscall(); the other system calls libmp
 * makes that way (futex, membarrier, gettid, ...) make nothing. */
long __real_syscall(long n, ...);
long __wrap_syscall(long n, ...)
{
    va_list ap;
    long a[6];

    va_start(ap, n);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (n == SYS_pidfd_open)
        FAIL_ERRNO("pidfd_open", EMFILE, -1);
    return __real_syscall(n, a[0], a[1], a[2], a[3], a[4], a[5]);
}

void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off);
void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd,
                  off_t off)
{
    FAIL_ERRNO("mmap", ENOMEM, MAP_FAILED);
    return __real_mmap(addr, len, prot, flags, fd, off);
}

int __real_mprotect(void *addr, size_t len, int prot);
int __wrap_mprotect(void *addr, size_t len, int prot)
{
    FAIL_ERRNO("mprotect", ENOMEM, -1);
    return __real_mprotect(addr, len, prot);
}

int __real_ftruncate(int fd, off_t len);
int __wrap_ftruncate(int fd, off_t len)
{
    FAIL_ERRNO("ftruncate", ENOMEM, -1);
    return __real_ftruncate(fd, len);
}

/* A fork child injects nothing: the failures are the parent's. */
pid_t __real_fork(void);
pid_t __wrap_fork(void)
{
    pid_t pid;

    FAIL_ERRNO("fork", EAGAIN, -1);
    if ((pid = __real_fork()) == 0)
        inj.armed = false;
    return pid;
}

/* The calls that return an error number instead of setting errno. */
#define FAIL_RETURN(fn, e)                                                    \
    do {                                                                      \
        if (inject(fn, CALLER, (e)))                                          \
            return (e);                                                       \
    } while (0)

int __real_posix_spawn(pid_t *pid, const char *path,
                       const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[],
                       char *const envp[]);
int __wrap_posix_spawn(pid_t *pid, const char *path,
                       const posix_spawn_file_actions_t *fa,
                       const posix_spawnattr_t *attr, char *const argv[],
                       char *const envp[])
{
    FAIL_RETURN("posix_spawn", EAGAIN);
    return __real_posix_spawn(pid, path, fa, attr, argv, envp);
}

int __real_posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa,
                                            int fd, int to);
int __wrap_posix_spawn_file_actions_adddup2(posix_spawn_file_actions_t *fa,
                                            int fd, int to)
{
    FAIL_RETURN("posix_spawn_file_actions_adddup2", ENOMEM);
    return __real_posix_spawn_file_actions_adddup2(fa, fd, to);
}

int __real_posix_spawn_file_actions_addclosefrom_np(
    posix_spawn_file_actions_t *fa, int from);
int __wrap_posix_spawn_file_actions_addclosefrom_np(
    posix_spawn_file_actions_t *fa, int from)
{
    FAIL_RETURN("posix_spawn_file_actions_addclosefrom_np", ENOMEM);
    return __real_posix_spawn_file_actions_addclosefrom_np(fa, from);
}

int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg);
int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr,
                          void *(*fn)(void *), void *arg)
{
    FAIL_RETURN("pthread_create", EAGAIN);
    return __real_pthread_create(t, attr, fn, arg);
}

static void arm(long n)
{
    inj.calls = 0;
    inj.fail_at = n;
    inj.fn = NULL;
    inj.only = NULL;
    inj.armed = true;
}

/* Fails the nth call to fn alone. */
static void arm_only(const char *fn, long n)
{
    arm(n);
    inj.only = fn;
}

/* Disarms; whether the failure was injected. */
static bool disarm(void)
{
    inj.armed = false;
    return inj.fn != NULL;
}

/* one call failed: each bug the loops below found */

MP_TARGET(exit_with) { return (int)mp_args_int(args, 0); }

static mp_process *make(int m, const mp_target *t, const mp_arg *a, size_t n)
{
    mp_process_options o = { 0 };
    mp_context *ctx;
    mp_process *p = NULL;

    ASSERT_OK(mp_get_context(&ctx, methods[m]));
    o.context = ctx;
    ASSERT_OK(mp_process_create(&p, t, a, n, &o));
    return p;
}

static void join_code(mp_process *p, int want)
{
    int code = -1000;

    ASSERT_OK(mp_process_join(p, 60));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(want, code);
}

/* posix_spawn's file actions are memory the C library allocates: without
 * it, a spawned child (or the fork server) must not be started without
 * its descriptors, which would look like a child that never reached
 * mp_main().  The start fails with ENOMEM, and can be made again. */
TEST(spawn_without_memory_for_its_file_actions)
{
    static const char *const calls[] = {
        "posix_spawn_file_actions_adddup2",
        "posix_spawn_file_actions_addclosefrom_np",
    };

    for (int m = 1; m < 3; m++)
        for (int k = 0; k < 2; k++) {
            mp_process *p = make(m, &exit_with_target, MP_ARGS(5));

            mp__forkserver_stop(); /* its start spawns it */
            arm_only(calls[k], 1);
            ASSERT_EQ(-ENOMEM, mp_process_start(p));
            ASSERT_TRUE(disarm());
            ASSERT_OK(mp_process_start(p));
            join_code(p, 5);
            mp_process_free(p);
        }
}

/* A message that no memory could be found for stays in the connection
 * for the next receive: its length had been read, and reading the rest
 * as the next message would take its bytes for a length. */
TEST(recv_without_memory_keeps_the_message)
{
    static char big[50000]; /* read straight to the caller; all three fit
                               the pipe */
    const size_t sizes[] = { 5, sizeof(big) };

    for (int duplex = 0; duplex < 2; duplex++)
        for (int k = 0; k < 2; k++) {
            mp_conn *a, *b;
            void *got = NULL;
            size_t len = 0;

            memset(big, 'x', sizeof(big));
            ASSERT_OK(mp_pipe(&a, &b, duplex));
            ASSERT_OK(mp_conn_send_bytes(b, "first", 5));
            ASSERT_OK(mp_conn_send_bytes(b, big, sizes[k]));
            ASSERT_OK(mp_conn_send_bytes(b, "last", 4));
            ASSERT_OK(mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
            free(got);
            arm_only("malloc", 1);
            ASSERT_EQ(-ENOMEM, mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
            ASSERT_TRUE(disarm());
            ASSERT_TRUE(got == NULL);
            ASSERT_EQ(1, mp_conn_poll(a, 0));
            /* Out of step, it would read "xxxx" as a length. */
            ASSERT_OK(mp_conn_recv_bytes(a, &got, &len, 1 << 20));
            ASSERT_EQ(sizes[k], len);
            ASSERT_TRUE(memcmp(got, big, len) == 0);
            free(got);
            ASSERT_OK(mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
            ASSERT_EQ(4, len);
            ASSERT_TRUE(memcmp(got, "last", 4) == 0);
            free(got);
            mp_conn_free(a);
            mp_conn_free(b);
        }
}

/* Real exhaustion: the process limit.  Root is not held to it, so a fork
 * of the test becomes nobody first.  Every method's start fails with
 * EAGAIN, the fork server's too when the server could be started but
 * cannot fork (it answers with its errno), and works once the limit is
 * raised (a server started under the limit keeps it: it is ended). */
static long nobody_tasks(void)
{
    DIR *d = opendir("/proc");
    struct dirent *e;
    long n = 0;

    ASSERT_TRUE(d != NULL);
    while ((e = readdir(d)) != NULL) {
        char path[64], buf[2048], *uid, *threads;
        ssize_t len;
        int fd;
        if (atoi(e->d_name) <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/status", atoi(e->d_name));
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        len = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[len > 0 ? len : 0] = '\0';
        uid = strstr(buf, "\nUid:");
        threads = strstr(buf, "\nThreads:");
        if (uid != NULL && atol(uid + 5) == 65534)
            n += threads != NULL ? atol(threads + 9) : 1;
    }
    closedir(d);
    return n;
}

static void set_nproc(rlim_t soft)
{
    struct rlimit rl;

    ASSERT_EQ(0, getrlimit(RLIMIT_NPROC, &rl));
    rl.rlim_cur = soft;
    ASSERT_EQ(0, setrlimit(RLIMIT_NPROC, &rl));
}

TEST(process_limit_under_each_method)
{
    int status;
    pid_t pid;

    if (geteuid() != 0)
        check_skip("needs root, to become nobody: root is not held to "
                   "RLIMIT_NPROC");
    fflush(NULL);
    if ((pid = fork()) == 0) {
        long n;

        if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
            setresuid(65534, 65534, 65534) < 0)
            _exit(126);
        prctl(PR_SET_DUMPABLE, 1); /* its /proc, and /proc/self/exe */
        n = nobody_tasks();
        for (int m = 0; m < 3; m++)
            for (long extra = 0; extra < (m == 2 ? 2 : 1); extra++) {
                mp_process *p = make(m, &exit_with_target, MP_ARGS(5));

                mp__forkserver_stop();
                set_nproc((rlim_t)(n + extra));
                ASSERT_EQ(-EAGAIN, mp_process_start(p));
                set_nproc((rlim_t)(n + 100));
                mp__forkserver_stop();
                ASSERT_OK(mp_process_start(p));
                join_code(p, 5);
                mp_process_free(p);
            }
        exit(0);
    }
    ASSERT_TRUE(pid > 0);
    while (waitpid(pid, &status, 0) < 0)
        ASSERT_EQ(EINTR, errno);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 126)
        check_skip("cannot become nobody here");
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
