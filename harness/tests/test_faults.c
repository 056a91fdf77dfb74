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
 * The operations: a start under each method (the fork server running, and
 * started anew), a start handing a queue and a connection as typed
 * arguments, a start with stdin, stdout and stderr piped and a working
 * directory (and capture()), a pipe of each kind with its receives, a
 * queue of each kind made, put to, grown (from empty, and around a record)
 * and got from, every kind of synchronisation object made, used and
 * handed to a child under each method, and so every kind of shared value.  For each N: the operation returns a clean error (-EMFILE,
 * -ENOMEM or -EAGAIN: what was injected, or an alternative the step names,
 * as MP_EFULL for a put that may wait for room), leaves no descriptor open
 * that it did not leave open before (/proc/self/fd), no child running or
 * unreaped (/proc/self/task/N/children, waitid(WNOWAIT); a fork server is
 * allowed), and no allocation live that it made (the wrappers count
 * malloc's against free's; LeakSanitizer and valgrind see the rest).  The
 * step that failed is made again at once and must then work as if nothing
 * had happened (a start on the same object, a receive, a get, a capture);
 * and the whole operation then runs again without a fault.  A "cold" loop
 * runs each N in a fresh fork of the test, where libmp has done nothing
 * yet, so that its first-use steps (the pidfd probe, a queue's first
 * setup) fail too; there, a start must still give the child a pidfd
 * sentinel wherever the kernel has pidfds.
 *
 * Real exhaustion too: each operation under RLIMIT_NOFILE with 0, 1, 2,
 * ... descriptors free until it runs through (the step that finds none
 * fails with EMFILE, the limit is lifted, the step made again), and a start
 * under each method with RLIMIT_NPROC, in a child that has become nobody
 * (root is not held to it).  The tests above the loops are the focused
 * ones for what the loops found.
 *
 * With STRESS_SECONDS set, each test repeats its loops until that time has
 * passed (the cold one, for every operation, in the first half), and
 * prints a "stress: faults [...]" line.
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
#include "test_hooks.h"

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
 * makes that way (futex, membarrier, gettid, ...) make nothing.  Where the
 * kernel (or valgrind) has no pidfd_open, it fails with ENOSYS whatever is
 * left: nothing to inject. */
long __real_syscall(long n, ...);
long __wrap_syscall(long n, ...)
{
    static int have_pidfd = -1;
    va_list ap;
    long a[6];

    va_start(ap, n);
    for (int i = 0; i < 6; i++)
        a[i] = va_arg(ap, long);
    va_end(ap);
    if (n == SYS_pidfd_open && inj.armed) {
        if (have_pidfd < 0) {
            long fd = __real_syscall(SYS_pidfd_open, (long)getpid(), 0L);
            have_pidfd = fd >= 0 || errno != ENOSYS;
            if (fd >= 0)
                close((int)fd);
        }
        if (have_pidfd)
            FAIL_ERRNO("pidfd_open", EMFILE, -1);
    }
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

/* An Event's set() and the last party of a Barrier wake their sleepers
 * with no memory to spare: a set() that failed there would leave the flag
 * up and its sleepers asleep to their timeout. */
struct sync_sleeper {
    void *obj;
    int barrier;
    struct check_sleeper me;
    int result;
    double at;
};

static void *sync_sleep(void *arg)
{
    struct sync_sleeper *t = arg;

    check_announce(&t->me);
    t->result = t->barrier ? mp_barrier_wait(t->obj, 30)
                           : mp_event_wait(t->obj, 30);
    t->at = check_now();
    return NULL;
}

TEST(notify_all_without_memory_still_wakes_every_sleeper)
{
    for (int barrier = 0; barrier < 2; barrier++) {
        struct sync_sleeper t = { 0 };
        mp_event *e = NULL;
        mp_barrier *b = NULL;
        pthread_t th;
        double t0;
        int r;

        if (barrier)
            ASSERT_OK(mp_barrier_new(&b, 2, NULL, MP_FOREVER));
        else
            ASSERT_OK(mp_event_new(&e));
        t.obj = barrier ? (void *)b : (void *)e;
        t.barrier = barrier;
        check_sleeper_init(&t.me);
        ASSERT_EQ(0, pthread_create(&th, NULL, sync_sleep, &t));
        check_await_asleep(&t.me);
        t0 = check_now();
        arm_only("calloc", 1);
        r = barrier ? mp_barrier_wait(b, 5) : mp_event_set(e);
        disarm();
        ASSERT_EQ(barrier ? 1 : 0, r);
        ASSERT_EQ(0, pthread_join(th, NULL));
        ASSERT_EQ(barrier ? 0 : 1, t.result);
        ASSERT_WITHIN(0, 2.0, t.at - t0);
        mp_barrier_free(b);
        mp_event_free(e);
        check_sleeper_destroy(&t.me);
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

/* Memory that runs out partway through a message (the buffer grows with
 * the bytes that arrive) loses that message, read past to its end, and
 * nothing else: the next receive gets the next message. */
static void *send_big_then_last(void *arg)
{
    static char huge[300000];
    mp_conn *b = arg;

    memset(huge, 'y', sizeof(huge));
    if (mp_conn_send_bytes(b, huge, sizeof(huge)) < 0 ||
        mp_conn_send_bytes(b, "last", 4) < 0)
        _exit(97);
    return NULL;
}

TEST(recv_out_of_memory_partway_reads_past_the_message)
{
    mp_conn *a, *b;
    pthread_t t;
    void *got = NULL;
    size_t len = 0;

    ASSERT_OK(mp_pipe(&a, &b, 0));
    ASSERT_EQ(0, pthread_create(&t, NULL, send_big_then_last, b));
    arm_only("realloc", 1);
    ASSERT_EQ(-ENOMEM, mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
    ASSERT_TRUE(disarm());
    ASSERT_TRUE(got == NULL);
    ASSERT_OK(mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
    ASSERT_EQ(4, len);
    ASSERT_TRUE(memcmp(got, "last", 4) == 0);
    free(got);
    ASSERT_EQ(0, pthread_join(t, NULL));
    mp_conn_free(a);
    mp_conn_free(b);
}

/* Where the failed call came from, as addr2line takes it. */
static const char *injected(void)
{
    static char buf[160];
    Dl_info info;
    uintptr_t off = (uintptr_t)inj.caller;

    if (dladdr(inj.caller, &info) != 0 && info.dli_fbase != NULL)
        off -= (uintptr_t)info.dli_fbase;
    snprintf(buf, sizeof(buf), "call %ld, %s (%s) from +%#lx", inj.fail_at,
             inj.fn != NULL ? inj.fn : "none", strerror(inj.err),
             (unsigned long)off);
    return buf;
}

/* A failure in an operation: names the call that was failed. */
#define OP_FAIL(...)                                                          \
    do {                                                                      \
        inj.armed = false;                                                    \
        check_diag("after the failure of %s:", injected());                   \
        check_fail(__FILE__, __LINE__, __VA_ARGS__);                          \
    } while (0)
#define OP_ASSERT(cond)                                                       \
    do {                                                                      \
        if (!(cond))                                                          \
            OP_FAIL("expected true: %s", #cond);                              \
    } while (0)
#define OP_EXPECT(want, call)                                                 \
    do {                                                                      \
        int w_ = (want), g_ = (call);                                         \
        if (w_ != g_)                                                         \
            OP_FAIL("%s: expected %s, got %s", #call, mp_err_name(w_),        \
                    mp_err_name(g_));                                         \
    } while (0)

/* A thread looks up its own start time in /proc (how others tell it dead
 * if it dies holding a queue's side) when its first streak of takes earns
 * it a bias: that look failing for want of a descriptor must not leave
 * the thread for good without a bias, and unable to tell a dead owner
 * from a live one. */
TEST(a_first_streak_without_descriptors_still_earns_a_bias)
{
    mp_queue *q;
    size_t len;
    char c;

    if (!mp__queue_membarrier())
        check_skip("no membarrier(2) here: no bias is ever given");
    ASSERT_OK(mp_queue_new(&q, 0));
    arm_only("open", 1);
    for (int i = 0; i < 100; i++) { /* the first streak's claim */
        ASSERT_OK(mp_queue_put(q, "x", 1, 1, 1));
        ASSERT_OK(mp_queue_get_into(q, &c, 1, &len, 1, 1));
    }
    ASSERT_TRUE(disarm());
    for (int i = 0; i < 200; i++) { /* STREAK takes in a row, and more */
        ASSERT_OK(mp_queue_put(q, "x", 1, 1, 1));
        ASSERT_OK(mp_queue_get_into(q, &c, 1, &len, 1, 1));
    }
    ASSERT_EQ(1, mp__queue_biased(q, 1));
    ASSERT_EQ(1, mp__queue_biased(q, 0));
    mp_queue_free(q);
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

/* A reaper that could not be started for want of a descriptor, memory or
 * a process is started by the next create: the first create goes on
 * without one (its segment left to unlink()), and only that one. */
static int reaper_after(const char *fn)
{
    mp_shm *s = NULL, *t = NULL;
    int r = 0;

    arm_only(fn, 1);
    if (mp_shm_new(&s, NULL, 1, 10) < 0)
        r = 2;
    if (!disarm())
        r = 3;
    if (r == 0 && mp__shm_reaper_pid() != 0)
        r = 4;
    if (r == 0 && mp_shm_new(&t, NULL, 1, 10) < 0)
        r = 5;
    if (r == 0 && mp__shm_reaper_pid() <= 0)
        r = 1;
    if (s != NULL)
        mp_shm_unlink(s);
    if (t != NULL)
        mp_shm_unlink(t);
    mp_shm_free(s);
    mp_shm_free(t);
    return r;
}

TEST(a_failed_reaper_start_is_tried_again)
{
    static const char *const fns[] = {
        "socketpair", "posix_spawn", "posix_spawn_file_actions_adddup2",
        "posix_spawn_file_actions_addclosefrom_np",
    };

    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        int status;
        pid_t pid;

        fflush(NULL);
        /* A fork child has no reaper until it creates. */
        if ((pid = __real_fork()) == 0)
            _exit(reaper_after(fns[i]));
        ASSERT_TRUE(pid > 0);
        ASSERT_EQ(pid, waitpid(pid, &status, 0));
        ASSERT_TRUE(WIFEXITED(status));
        if (WEXITSTATUS(status) != 0)
            check_fail(__FILE__, __LINE__, "%s failed once: %d", fns[i],
                       WEXITSTATUS(status));
    }
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

/* what the process has */

struct snapshot {
    char fds[256][80]; /* "N -> target" */
    int nfds;
    long live;
};

static void snap(struct snapshot *s)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;

    ASSERT_TRUE(d != NULL);
    s->nfds = 0;
    while ((e = readdir(d)) != NULL) {
        char link[64], target[64];
        ssize_t n;
        int fd = atoi(e->d_name);
        if (e->d_name[0] == '.' || fd == dirfd(d))
            continue;
        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, target, sizeof(target) - 1);
        target[n > 0 ? n : 0] = '\0';
        if (s->nfds < 256)
            snprintf(s->fds[s->nfds++], sizeof(s->fds[0]), "%d -> %.60s", fd,
                     target);
    }
    closedir(d);
    s->live = inj.live;
}

/* Whether pid is a fork server (its argv[1] says so). */
static bool is_fork_server(long pid)
{
    char path[64], buf[256];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%ld/cmdline", pid);
    if ((fd = __real_open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return false;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return false;
    buf[n] = '\0';
    n = (ssize_t)strlen(buf) + 1;
    return n < (ssize_t)sizeof(buf) && strcmp(buf + n, MP__FORKSERVER_MODE) == 0;
}

/* No child but a fork server, running or not, and none unreaped. */
static void check_children(const char *when)
{
    char path[64], buf[512];
    siginfo_t si;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int r;

    ASSERT_TRUE(d != NULL);
    while ((e = readdir(d)) != NULL) {
        ssize_t n;
        int fd;
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%d/children",
                 atoi(e->d_name));
        if ((fd = __real_open(path, O_RDONLY | O_CLOEXEC)) < 0)
            continue;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        for (char *p = buf, *end; *p != '\0'; p = end) {
            long pid = strtol(p, &end, 10);
            if (end == p)
                break;
            if (!is_fork_server(pid))
                OP_FAIL("%s: child %ld is left", when, pid);
        }
    }
    closedir(d);
    si.si_pid = 0;
    do
        r = waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT);
    while (r < 0 && errno == EINTR);
    if (r == 0 && si.si_pid != 0)
        OP_FAIL("%s: child %d is left unreaped", when, (int)si.si_pid);
}

static void check_same(const struct snapshot *before, const char *when,
                       bool count_live)
{
    struct snapshot after;

    snap(&after);
    for (int i = 0; i < after.nfds; i++) {
        bool found = false;
        for (int j = 0; j < before->nfds && !found; j++)
            found = strcmp(after.fds[i], before->fds[j]) == 0;
        if (!found)
            OP_FAIL("%s: descriptor %s is left open", when, after.fds[i]);
    }
    for (int j = 0; j < before->nfds; j++) {
        bool found = false;
        for (int i = 0; i < after.nfds && !found; i++)
            found = strcmp(after.fds[i], before->fds[j]) == 0;
        if (!found)
            OP_FAIL("%s: descriptor %s was closed", when, before->fds[j]);
    }
    if (count_live && after.live != before->live)
        OP_FAIL("%s: %ld allocations left live", when,
                after.live - before->live);
    check_children(when);
}

/* Real exhaustion: RLIMIT_NOFILE lowered, and every descriptor under it
 * taken but `free_n`; relieve() puts things back, as soon as a step has
 * failed (then the step is made again). */
static int fillers[1024], nfill;
static struct rlimit nofile;
static bool squeezed;

static void squeeze(int free_n)
{
    struct rlimit low;
    int d;

    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &nofile));
    low = nofile;
    low.rlim_cur = 256;
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &low));
    nfill = 0;
    while (nfill < 1024 && (d = __real_fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0)
        fillers[nfill++] = d;
    ASSERT_EQ(EMFILE, errno);
    while (free_n-- > 0 && nfill > 0)
        close(fillers[--nfill]);
    squeezed = true;
}

static void relieve(void)
{
    if (!squeezed)
        return;
    while (nfill > 0)
        close(fillers[--nfill]);
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &nofile));
    squeezed = false;
}

/* the operations */

/* An operation: 0, or the first error one of its steps returned.  A step
 * that fails is made again at once, and must then work: what failed left
 * things as they were (a start that failed may be made again, as
 * CPython's start() raises before it sets _popen; a message that could
 * not be received is still there).  Every result is checked; whatever the
 * operation made is released.  *alt: another error the step it is in may
 * return for an injected ENOMEM (0: none). */
typedef int (*op_fn)(int m, int *alt);

#define STEP(r, call)                                                         \
    do {                                                                      \
        int s_ = (call);                                                      \
        if (s_ < 0) {                                                         \
            if ((r) == 0)                                                     \
                (r) = s_;                                                     \
            relieve();                                                        \
            if ((s_ = (call)) < 0)                                            \
                OP_FAIL("%s: %s, and again %s", #call, mp_err_name(r),       \
                        mp_err_name(s_));                                     \
        }                                                                     \
    } while (0)

static mp_process_options opts(int m)
{
    mp_process_options o = { 0 };
    mp_context *ctx;

    ASSERT_OK(mp_get_context(&ctx, methods[m]));
    o.context = ctx;
    return o;
}

static int exitcode(mp_process *p)
{
    int code = -1000;

    OP_EXPECT(1, mp_process_exitcode(p, &code));
    return code;
}

/* Whether p's sentinel is a pidfd. */
static bool pidfd_sentinel(mp_process *p)
{
    char link[64], target[64];
    ssize_t n;

    snprintf(link, sizeof(link), "/proc/self/fd/%d", mp_process_sentinel(p));
    n = readlink(link, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    return strcmp(target, "anon_inode:[pidfd]") == 0;
}

static bool expect_pidfd; /* the kernel has pidfds, and libmp may use them */

/* Joins p, which must exit with `code`; frees it. */
static void join_free(mp_process *p, int code)
{
    OP_EXPECT(0, mp_process_join(p, 60));
    OP_EXPECT(code, exitcode(p));
    mp_process_free(p);
}

static int op_start(int m, int *alt)
{
    mp_process_options o = opts(m);
    mp_process *p = NULL;
    int r = 0;

    (void)alt;
    STEP(r, mp_process_create(&p, &exit_with_target, MP_ARGS(11), &o));
    STEP(r, mp_process_start(p));
    /* A fork or spawn child's sentinel is a pidfd wherever the kernel has
     * them, whatever failed in libmp's first look at them. */
    if (m != 2 && expect_pidfd)
        OP_ASSERT(pidfd_sentinel(p));
    join_free(p, 11);
    return r;
}

/* Uses the queue and the connection it was handed. */
MP_TARGET(use_handles)
{
    mp_queue *q = mp_args_queue(args, 0);
    mp_conn *c = mp_args_conn(args, 1);
    char msg[64];

    snprintf(msg, sizeof(msg), "%s %lld", mp_args_str(args, 2),
             mp_args_int(args, 3));
    if (mp_queue_put_str(q, msg) < 0 || mp_conn_send_str(c, msg) < 0)
        return 3;
    return 0;
}

static int op_args(int m, int *alt)
{
    mp_process_options o = opts(m);
    mp_process *p = NULL;
    mp_queue *q = NULL;
    mp_conn *a = NULL, *b = NULL;
    char *got = NULL;
    int r = 0;

    (void)alt;
    STEP(r, mp_queue_new(&q, 0));
    STEP(r, mp_pipe(&a, &b, 1));
    STEP(r, mp_process_create(&p, &use_handles_target,
                              MP_ARGS(q, b, "handed", 42), &o));
    b = mp_conn_free(b); /* p has a reference of its own */
    STEP(r, mp_process_start(p));
    join_free(p, 0);
    STEP(r, mp_queue_get_str(q, &got, 0));
    OP_ASSERT(strcmp(got, "handed 42") == 0);
    free(got);
    STEP(r, mp_conn_recv_str(a, &got));
    OP_ASSERT(strcmp(got, "handed 42") == 0);
    free(got);
    mp_conn_free(a);
    mp_queue_free(q);
    return r;
}

/* Uses the synchronisation objects it was handed. */
MP_TARGET(use_sync)
{
    mp_lock *l = mp_args_lock(args, 0), *r = mp_args_lock(args, 4);
    mp_cond *c = mp_args_cond(args, 1);
    mp_event *e = mp_args_event(args, 2);
    mp_barrier *b = mp_args_barrier(args, 3);

    if (mp_lock_acquire(l, 1, 30) != 1 || mp_lock_release(l) != 0)
        return 3;
    if (mp_cond_acquire(c, 1, 30) != 1 || mp_cond_notify_all(c) != 0 ||
        mp_cond_release(c) != 0)
        return 4;
    if (mp_lock_acquire(r, 1, 30) != 1 || mp_lock_release(r) != 0)
        return 5;
    if (mp_barrier_wait(b, 30) != 0 || mp_event_set(e) != 0)
        return 6;
    return 0;
}

/* Every kind of synchronisation object made, used here and handed to a
 * child (a Condition with a lock of its own, a robust RLock). */
static int op_sync(int m, int *alt)
{
    mp_process_options o = opts(m);
    mp_process *p = NULL;
    mp_lock *l = NULL, *s = NULL, *r = NULL;
    mp_cond *c = NULL, *c2 = NULL;
    mp_event *e = NULL;
    mp_barrier *b = NULL;
    int res = 0;

    (void)alt;
    STEP(res, mp_lock_new(&l));
    STEP(res, mp_bounded_semaphore_new(&s, 2));
    STEP(res, mp_rlock_new_robust(&r));
    STEP(res, mp_cond_new(&c, NULL));
    STEP(res, mp_cond_new(&c2, l));
    STEP(res, mp_event_new(&e));
    STEP(res, mp_barrier_new(&b, 1, NULL, MP_FOREVER));
    OP_EXPECT(1, mp_lock_acquire(s, 1, 0));
    OP_EXPECT(0, mp_lock_release(s));
    OP_EXPECT(1, mp_cond_acquire(c2, 1, 0));
    OP_EXPECT(0, mp_cond_wait(c2, 0));
    OP_EXPECT(0, mp_cond_release(c2));
    STEP(res, mp_process_create(&p, &use_sync_target,
                                MP_ARGS(l, c, e, b, r), &o));
    STEP(res, mp_process_start(p));
    join_free(p, 0);
    OP_EXPECT(1, mp_event_wait(e, 0));
    OP_EXPECT(0, mp_barrier_wait(b, 0));
    mp_lock_free(l);
    mp_lock_free(s);
    mp_lock_free(r);
    mp_cond_free(c);
    mp_cond_free(c2);
    mp_event_free(e);
    mp_barrier_free(b);
    return res;
}

/* Checks the values it was handed and writes to them. */
MP_TARGET(use_values)
{
    mp_value *v = mp_args_value(args, 0), *a = mp_args_value(args, 1);
    mp_value *r = mp_args_value(args, 2);
    long long x = 0;

    if (mp_value_get_int(v, &x) != 0 || x != 7 ||
        mp_value_set(v, MP_ARG(8)) != 0)
        return 3;
    if (mp_array_set(a, -1, MP_ARG(9)) != 0 ||
        mp_value_set(r, MP_ARG(1.5)) != 0)
        return 4;
    return 0;
}

/* Every kind of value made, used here and handed to a child: a Value with
 * its own RLock, an Array from values sharing a given lock, a RawValue. */
static int op_value(int m, int *alt)
{
    mp_process_options o = opts(m);
    mp_process *p = NULL;
    mp_value *v = NULL, *a = NULL, *r = NULL;
    mp_lock *l = NULL;
    long long x = 0;
    double d = 0;
    char buf[128];
    int res = 0;

    (void)alt;
    STEP(res, mp_value_new(&v, 'i', MP_ARG(7), NULL));
    STEP(res, mp_lock_new(&l));
    STEP(res, mp_array_from(&a, 'q', MP_ARGS(1, 2, 3),
                            &(mp_value_options){ .lock = l }));
    STEP(res, mp_value_new(&r, 'd', mp_arg_none(),
                           &(mp_value_options){ .raw = 1 }));
    OP_ASSERT(mp_value_repr(v, buf, sizeof(buf)) > 0);
    STEP(res, mp_process_create(&p, &use_values_target, MP_ARGS(v, a, r),
                                &o));
    STEP(res, mp_process_start(p));
    join_free(p, 0);
    OP_EXPECT(0, mp_value_get_int(v, &x));
    OP_ASSERT(x == 8);
    OP_EXPECT(0, mp_array_get_int(a, 2, &x));
    OP_ASSERT(x == 9);
    OP_EXPECT(0, mp_value_get_double(r, &d));
    OP_ASSERT(d == 1.5);
    mp_value_free(v);
    mp_value_free(a);
    mp_value_free(r);
    mp_lock_free(l);
    return res;
}

/* Copies stdin to stdout, says "err" on stderr and where it runs. */
MP_TARGET(streams)
{
    char buf[256], cwd[256];
    ssize_t n;

    while ((n = read(0, buf, sizeof(buf))) > 0)
        if (write(1, buf, (size_t)n) != n)
            return 3;
    fprintf(stderr, "err %s", getcwd(cwd, sizeof(cwd)));
    return 0;
}

static int op_stdio(int m, int *alt)
{
    mp_process_options o = opts(m);
    mp_process *p = NULL;
    char *out = NULL, *err = NULL;
    size_t outlen = 0, errlen = 0;
    int r = 0, fd;

    (void)alt;
    o.stdio[0].how = o.stdio[1].how = o.stdio[2].how = MP_STDIO_PIPE;
    o.cwd = "/";
    STEP(r, mp_process_create(&p, &streams_target, NULL, 0, &o));
    STEP(r, mp_process_start(p));
    fd = mp_process_stdio(p, 0);
    OP_ASSERT(fd >= 0);
    OP_ASSERT(write(fd, "in", 2) == 2);
    /* What it read before it failed is kept for the next call. */
    STEP(r, mp_process_capture(p, &out, &outlen, &err, &errlen, 60));
    OP_ASSERT(outlen == 2 && memcmp(out, "in", 2) == 0);
    OP_ASSERT(strcmp(err, "err /") == 0);
    free(out);
    free(err);
    join_free(p, 0);
    return r;
}

static int op_pipe(int m, int *alt)
{
    static char big[50000]; /* the three messages fit a pipe */
    mp_conn *a = NULL, *b = NULL;
    void *got = NULL;
    size_t len;
    int r = 0;

    (void)alt;
    STEP(r, mp_pipe(&a, &b, m));
    OP_EXPECT(0, mp_conn_send_bytes(b, "small", 5));
    OP_EXPECT(0, mp_conn_send_bytes(b, big, sizeof(big)));
    OP_EXPECT(0, mp_conn_send_bytes(b, "last", 4));
    OP_EXPECT(1, mp_conn_poll(a, 0));
    STEP(r, mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
    OP_ASSERT(len == 5 && memcmp(got, "small", 5) == 0);
    free(got);
    STEP(r, mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
    OP_ASSERT(len == sizeof(big) && memcmp(got, big, len) == 0);
    free(got);
    STEP(r, mp_conn_recv_bytes(a, &got, &len, MP_NOLIMIT));
    OP_ASSERT(len == 4 && memcmp(got, "last", 4) == 0);
    free(got);
    OP_EXPECT(0, mp_conn_poll(a, 0));
    mp_conn_free(a);
    mp_conn_free(b);
    return r;
}

#define BIG_MSG (300 * 1024) /* more than the first ring holds */

static unsigned char big_msg[4 * BIG_MSG];

/* Puts, gets and the ring's growth, in a Queue (m 0), a JoinableQueue (1)
 * or a SimpleQueue (2). */
static int op_queue(int m, int *alt)
{
    mp_queue *q = NULL;
    char buf[16];
    void *got = NULL;
    size_t len;
    int r = 0;

    STEP(r, m == 0   ? mp_queue_new(&q, 0)
            : m == 1 ? mp_joinable_queue_new(&q, 3)
                     : mp_simple_queue_new(&q));
    /* A record the ring grows for from empty (no copy), then one it grows
     * for while a record is in it (a copy).  A put may wait for room
     * rather than fail when it has no memory to grow with and the record
     * will fit the ring once it drains: here MP_EFULL, as it may not wait.
     */
    STEP(r, mp_queue_put(q, big_msg, BIG_MSG, 1, 60));
    STEP(r, mp_queue_get(q, &got, &len, 1, 60));
    OP_ASSERT(len == BIG_MSG && memcmp(got, big_msg, len) == 0);
    free(got);
    STEP(r, mp_queue_put(q, "first", 5, 1, 60));
    *alt = MP_EFULL;
    STEP(r, mp_queue_put(q, big_msg, BIG_MSG, 0, 0));
    *alt = 0;
    STEP(r, mp_queue_put(q, big_msg, sizeof(big_msg), 1, 60));
    STEP(r, mp_queue_get_into(q, buf, sizeof(buf), &len, 1, 60));
    OP_ASSERT(len == 5 && memcmp(buf, "first", 5) == 0);
    STEP(r, mp_queue_get(q, &got, &len, 1, 60));
    OP_ASSERT(len == BIG_MSG && memcmp(got, big_msg, len) == 0);
    free(got);
    STEP(r, mp_queue_get(q, &got, &len, 1, 60));
    OP_ASSERT(len == sizeof(big_msg) && memcmp(got, big_msg, len) == 0);
    free(got);
    if (m == 1) {
        for (int i = 0; i < 4; i++)
            OP_EXPECT(0, mp_queue_task_done(q));
        OP_EXPECT(0, mp_queue_join(q, 0));
    }
    mp_queue_free(q);
    return r;
}

/* A SharedMemory made by name (a failed create must leave the name free
 * for the retry), attached, written through both mappings, closed,
 * unlinked; a second create must have a reaper whatever failed in the
 * first's start of one.  The C library's failures surface as CPython's
 * OSError (MP_ERAISED), for an injected ENOMEM too. */
static int op_shm(int m, int *alt)
{
    mp_shm *s = NULL, *a = NULL, *t = NULL;
    char name[64];
    int r = 0;

    (void)m;
    snprintf(name, sizeof(name), "psm_faults_%d", (int)getpid());
    *alt = MP_ERAISED; /* every step's */
    STEP(r, mp_shm_new(&s, name, 1, 5000));
    STEP(r, mp_shm_new(&t, NULL, 1, 100));
    OP_ASSERT(mp__shm_reaper_pid() > 0);
    memcpy(mp_shm_buf(s), "made", 5);
    STEP(r, mp_shm_new(&a, name, 0, 0));
    OP_ASSERT(mp_shm_size(a) == 5000);
    OP_ASSERT(strcmp(mp_shm_buf(a), "made") == 0);
    OP_EXPECT(0, mp_shm_close(s));
    OP_EXPECT(0, mp_shm_unlink(a));
    OP_EXPECT(0, mp_shm_unlink(t));
    mp_shm_free(a);
    mp_shm_free(s);
    mp_shm_free(t);
    return r;
}

/* the loops */

struct figures {
    long points;   /* calls that can fail, in the whole operation */
    long errors;   /* faults that made it fail cleanly */
    long absorbed; /* faults it recovered from, and succeeded */
};

/* Whether each run ends the fork server it used: then the next one
 * starts it anew (in a fresh process, libmp's first start does). */
static bool server_anew;

static int run_op(op_fn op, int m, int *alt)
{
    int r = op(m, alt);

    if (server_anew)
        mp__forkserver_stop();
    return r;
}

/* One N: the operation with its Nth call failed, and every check.  Returns
 * whether a failure was injected. */
static bool one_fault(op_fn op, int m, long n, bool count_live,
                      struct figures *f)
{
    struct snapshot before;
    int alt = 0, r, want;
    bool hit;

    snap(&before);
    arm(n);
    r = run_op(op, m, &alt);
    hit = disarm();
    if (!hit) {
        if (r != 0)
            OP_FAIL("without a fault: %s", mp_err_name(r));
        check_same(&before, "without a fault", count_live);
        f->points = n - 1;
        return false;
    }
    want = -inj.err;
    if (getenv("FAULTS_VERBOSE") != NULL)
        check_diag("%s: %s", injected(), mp_err_name(r));
    if (r == 0) {
        f->absorbed++;
    } else if (r == want || (alt != 0 && r == alt && inj.err == ENOMEM)) {
        f->errors++;
        if (mp_strerror(r)[0] == '\0' && r != MP_EFULL)
            OP_FAIL("%s has no message", mp_err_name(r));
    } else {
        OP_FAIL("returned %s (%s), not %s", mp_err_name(r), mp_strerror(r),
                mp_err_name(want));
    }
    check_same(&before, "after the fault", count_live);
    /* And then without one. */
    if ((r = run_op(op, m, &alt)) != 0)
        OP_FAIL("the next run, without a fault: %s", mp_err_name(r));
    check_same(&before, "the next run", count_live);
    return true;
}

/* N = 1, 2, ... until the operation runs through. */
static void warm_loop(op_fn op, int m, struct figures *f)
{
    int alt = 0;

    /* What libmp does once per process, done first. */
    ASSERT_OK(run_op(op, m, &alt));
    ASSERT_OK(run_op(op, m, &alt));
    for (long n = 1; one_fault(op, m, n, true, f); n++)
        if (n > 100000)
            check_fail(__FILE__, __LINE__, "the loop does not end");
}

/* Valgrind keeps descriptors of its own above the limit it shows, and
 * does not follow a lowered RLIMIT_NOFILE faithfully (EBADF for what it
 * gave out). */
static bool under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");

    return p != NULL && strstr(p, "vgpreload") != NULL;
}

/* Under RLIMIT_NOFILE with k descriptors free, k = 0, 1, ... until the
 * operation runs through: the step that finds none fails with EMFILE. */
static void rlimit_loop(op_fn op, int m, struct figures *f)
{
    int alt = 0;

    if (under_valgrind()) {
        f->points = -1;
        return;
    }
    ASSERT_OK(run_op(op, m, &alt));
    for (int k = 0;; k++) {
        struct snapshot before;
        bool hit;
        int r;

        if (k > 200)
            check_fail(__FILE__, __LINE__, "the loop does not end");
        snap(&before);
        squeeze(k);
        inj.fail_at = 0;
        inj.fn = "(RLIMIT_NOFILE)";
        inj.err = EMFILE;
        r = run_op(op, m, &alt);
        hit = !squeezed; /* a step failed, and relieved it */
        relieve();
        if (!hit) {
            if (r != 0)
                OP_FAIL("with %d descriptors free: %s", k, mp_err_name(r));
            check_same(&before, "with enough descriptors", true);
            f->points = k;
            return;
        }
        if (r != -EMFILE)
            OP_FAIL("with %d descriptors free: %s, not EMFILE", k,
                    mp_err_name(r));
        f->errors++;
        check_same(&before, "after EMFILE", true);
    }
}

/* The same, each N in a fresh fork of the test, where libmp has done
 * nothing yet; the fork server is ended after each run there. */
static void cold_loop(op_fn op, int m, struct figures *f)
{
    for (long n = 1;; n++) {
        int fds[2], status;
        struct figures got = { 0 };
        pid_t pid;

        ASSERT_EQ(0, pipe2(fds, O_CLOEXEC));
        fflush(NULL);
        if ((pid = __real_fork()) == 0) {
            close(fds[0]);
            server_anew = true;
            if (!one_fault(op, m, n, false, &got))
                got.points = -got.points - 1; /* the last N */
            if (write(fds[1], &got, sizeof(got)) != sizeof(got))
                _exit(99);
            exit(0); /* libmp's teardown, and LeakSanitizer's check */
        }
        close(fds[1]);
        ASSERT_TRUE(pid > 0);
        if (read(fds[0], &got, sizeof(got)) != sizeof(got))
            got.points = LONG_MIN;
        close(fds[0]);
        while (waitpid(pid, &status, 0) < 0)
            ASSERT_EQ(EINTR, errno);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
            got.points == LONG_MIN)
            check_fail(__FILE__, __LINE__,
                       "the fresh process that failed call %ld ended with "
                       "status %#x", n, status);
        f->errors += got.errors;
        f->absorbed += got.absorbed;
        if (got.points < 0) {
            f->points = -got.points - 1;
            return;
        }
    }
}

static void report(const char *part, const struct figures *warm,
                   unsigned rounds, const struct figures *cold,
                   unsigned cold_rounds, const struct figures *lim)
{
    char text[256];
    int n = snprintf(text, sizeof(text),
                     "%ld fault points, %ld clean errors, %ld absorbed",
                     warm->points, warm->errors / rounds,
                     warm->absorbed / rounds);

    if (cold != NULL)
        n += snprintf(text + n, sizeof(text) - (size_t)n,
                      "; in a fresh process %ld, %ld, %ld", cold->points,
                      cold->errors / cold_rounds,
                      cold->absorbed / cold_rounds);
    if (lim->points >= 0 && n < (int)sizeof(text))
        snprintf(text + n, sizeof(text) - (size_t)n,
                 "; RLIMIT_NOFILE: EMFILE until %ld free", lim->points);
    if (check_stress_seconds() > 0) {
        printf("stress: faults [%s]: %s; %u rounds (%u fresh), ok\n", part,
               text, rounds, cold_rounds);
        fflush(stdout);
    } else {
        check_diag("faults [%s]: %s", part, text);
    }
}

/* The loops for one operation: again and again for STRESS_SECONDS; the
 * fresh-process loop in make check only where `cold`. */
static void run_loops(const char *part, op_fn op, int m, bool cold)
{
    double now = check_now(), stress = check_stress_seconds();
    struct figures warm = { 0 }, fresh = { 0 }, lim = { 0 };
    unsigned rounds = 0, fresh_rounds = 0;

    for (size_t i = 0; i < sizeof(big_msg); i++)
        big_msg[i] = (unsigned char)(i * 7 + i / 4096);
    /* libmp looks once whether the kernel has pidfds. */
    expect_pidfd = check_uses_pidfds();
    /* The fresh-process loops first: once the test has used libmp, a fork
     * of it is fresh no more. */
    if (cold || stress > 0)
        do {
            cold_loop(op, m, &fresh);
            fresh_rounds++;
        } while (check_now() < now + stress / 2);
    do {
        warm_loop(op, m, &warm);
        rlimit_loop(op, m, &lim);
        rounds++;
    } while (check_now() < now + stress);
    report(part, &warm, rounds, fresh_rounds > 0 ? &fresh : NULL,
           fresh_rounds, &lim);
}

TEST(faults_start_fork) { run_loops("start fork", op_start, 0, true); }
TEST(faults_start_spawn) { run_loops("start spawn", op_start, 1, true); }
TEST(faults_start_forkserver)
{
    run_loops("start forkserver", op_start, 2, true);
}

TEST(faults_start_forkserver_anew)
{
    /* The server ended after each run: its start is in every one. */
    server_anew = true;
    run_loops("start forkserver, server anew", op_start, 2, false);
}

TEST(faults_typed_arguments_fork) { run_loops("args fork", op_args, 0, false); }
TEST(faults_typed_arguments_spawn)
{
    run_loops("args spawn", op_args, 1, false);
}
TEST(faults_typed_arguments_forkserver)
{
    run_loops("args forkserver", op_args, 2, false);
}

TEST(faults_sync_objects_fork) { run_loops("sync fork", op_sync, 0, false); }
TEST(faults_sync_objects_spawn)
{
    run_loops("sync spawn", op_sync, 1, false);
}
TEST(faults_sync_objects_forkserver)
{
    run_loops("sync forkserver", op_sync, 2, false);
}
TEST(faults_values_fork) { run_loops("value fork", op_value, 0, false); }
TEST(faults_values_spawn)
{
    run_loops("value spawn", op_value, 1, false);
}
TEST(faults_values_forkserver)
{
    run_loops("value forkserver", op_value, 2, false);
}
TEST(faults_stdio_fork) { run_loops("stdio fork", op_stdio, 0, false); }
TEST(faults_stdio_spawn) { run_loops("stdio spawn", op_stdio, 1, false); }
TEST(faults_stdio_forkserver)
{
    run_loops("stdio forkserver", op_stdio, 2, false);
}

TEST(faults_pipe_one_way) { run_loops("pipe one-way", op_pipe, 0, true); }
TEST(faults_pipe_duplex) { run_loops("pipe duplex", op_pipe, 1, false); }
TEST(faults_queue) { run_loops("Queue", op_queue, 0, true); }
TEST(faults_joinable_queue)
{
    run_loops("JoinableQueue", op_queue, 1, false);
}
TEST(faults_simple_queue) { run_loops("SimpleQueue", op_queue, 2, false); }

/* SharedMemory's own loop: its errors are CPython's OSError, not the
 * -EMFILE the descriptor limit's loop expects, and its first create
 * leaves a reaper's socket open, which the fresh-process loop would count
 * as a leak (a_failed_reaper_start_is_tried_again covers that start). */
TEST(faults_shared_memory)
{
    struct figures warm = { 0 }, lim = { .points = -1 };
    unsigned rounds = 0;
    double end = check_now() + check_stress_seconds();

    do {
        warm_loop(op_shm, 0, &warm);
        rounds++;
    } while (check_now() < end);
    report("SharedMemory", &warm, rounds, NULL, 0, &lim);
}
