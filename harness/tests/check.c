/*
 * check.c - the runner behind check.h: TAP 13 output, one forked process and
 * process group per test, a deadline, and a sweep for leftover processes
 * (kselftest's harness: __wait_for_test, the per-test fork).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

#define EXIT_SKIP 4

struct test {
    const char *name;
    check_fn fn;
};

static struct test tests[256];
static size_t ntests;

void check_register(const char *name, check_fn fn)
{
    if (ntests == sizeof(tests) / sizeof(tests[0])) {
        fprintf(stderr, "check: too many tests\n");
        abort();
    }
    tests[ntests].name = name;
    tests[ntests].fn = fn;
    ntests++;
}

void check_diag(const char *fmt, ...)
{
    va_list ap;

    fputs("# ", stdout);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

void check_say(int fd, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof(buf) || write(fd, buf, (size_t)n) != n)
        _exit(99);
}

void check_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    printf("# %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    _exit(1);
}

void check_skip(const char *reason)
{
    printf("# SKIP %s\n", reason);
    fflush(stdout);
    _exit(EXIT_SKIP);
}

double check_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void check_sleeper_init(struct check_sleeper *s)
{
    s->tid = 0;
    if (sem_init(&s->ready, 0, 0) != 0)
        check_fail(__FILE__, __LINE__, "sem_init: %s", strerror(errno));
}

void check_sleeper_destroy(struct check_sleeper *s)
{
    sem_destroy(&s->ready);
}

void check_announce(struct check_sleeper *s)
{
    s->tid = (int)syscall(SYS_gettid);
    sem_post(&s->ready);
}

void check_await_asleep(struct check_sleeper *s)
{
    double end = check_now() + 30 * check_slowdown();
    char path[64], buf[512], *p;
    FILE *f;

    while (sem_wait(&s->ready) != 0)
        if (errno != EINTR)
            check_fail(__FILE__, __LINE__, "sem_wait: %s", strerror(errno));
    snprintf(path, sizeof(path), "/proc/self/task/%d/stat", s->tid);
    for (;;) {
        if ((f = fopen(path, "r")) == NULL)
            check_fail(__FILE__, __LINE__, "%s: %s", path, strerror(errno));
        p = fgets(buf, sizeof(buf), f);
        fclose(f);
        if (p == NULL || (p = strrchr(buf, ')')) == NULL)
            check_fail(__FILE__, __LINE__, "%s: no state", path);
        if (p[1] == ' ' && p[2] == 'S')
            return;
        if (check_now() >= end)
            check_fail(__FILE__, __LINE__, "thread %d never slept", s->tid);
        usleep(1000);
    }
}

int check_output(void (*child)(void *), void *arg, char *out, size_t size)
{
    size_t len = 0;
    ssize_t n;
    int fds[2], status = -1;
    pid_t pid;

    if (pipe(fds) < 0 || (pid = fork()) < 0)
        check_fail(__FILE__, __LINE__, "pipe or fork: %s", strerror(errno));
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        child(arg);
        _exit(127);
    }
    close(fds[1]);
    while (len + 1 < size &&
           ((n = read(fds[0], out + len, size - 1 - len)) > 0 ||
            (n < 0 && errno == EINTR)))
        len += n > 0 ? (size_t)n : 0;
    out[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

int check_uses_pidfds(void)
{
    const char *off = getenv("LIBMP_NO_PIDFD");
    int fd;

    if (off != NULL && off[0] != '\0' && strcmp(off, "0") != 0)
        return 0;
    fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    if (fd < 0)
        return 0;
    close(fd);
    return 1;
}

double check_slowdown(void)
{
    const char *s = getenv("CHECK_SLOWDOWN");
    double f = s != NULL ? atof(s) : 1.0;

    return f >= 1.0 ? f : 1.0;
}

double check_stress_seconds(void)
{
    const char *s = getenv("STRESS_SECONDS");
    double v = s != NULL ? atof(s) : 0;

    return v > 0 ? v : 0;
}

static bool selected(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return true;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i]) != NULL)
            return true;
    return false;
}

static void on_alarm(int sig) { (void)sig; }

/* Waits for pid up to `timeout` seconds; 1 and *status once it exited. */
static int wait_deadline(pid_t pid, int timeout, int *status)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int r;

    if (fd >= 0) {
        do
            r = poll(&pfd, 1, timeout * 1000);
        while (r < 0 && errno == EINTR);
        close(fd);
        if (r == 0)
            return 0;
    } else { /* no pidfds (valgrind 3.19): a timer interrupts waitpid */
        struct sigaction sa = { .sa_handler = on_alarm }, old;
        struct itimerval it = { { 0, 0 }, { timeout, 0 } };
        sigaction(SIGALRM, &sa, &old);
        setitimer(ITIMER_REAL, &it, NULL);
        r = (int)waitpid(pid, status, 0);
        memset(&it, 0, sizeof(it));
        setitimer(ITIMER_REAL, &it, NULL);
        sigaction(SIGALRM, &old, NULL);
        return r == pid ? 1 : 0;
    }
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return 1;
}

/* Kills and reaps what is left of a test's process group; the count of
 * processes that were still running. */
static int sweep(pid_t pgid)
{
    int left = 0, status;

    while (waitpid(-1, &status, WNOHANG) > 0) /* zombies handed to us */
        ;
    if (kill(-pgid, 0) == 0) {
        left = 1;
        kill(-pgid, SIGKILL);
    }
    while (waitpid(-pgid, &status, 0) > 0 || errno == EINTR)
        ;
    while (waitpid(-1, &status, WNOHANG) > 0)
        ;
    return left;
}

int main(int argc, char **argv)
{
    const char *t = getenv("CHECK_TIMEOUT");
    int timeout = t != NULL && atoi(t) > 0
                      ? atoi(t)
                      : 60 + 2 * (int)check_stress_seconds();
    int failed = 0, passed = 0, skipped = 0, planned = 0, n = 0;

    mp_main(argc, argv); /* spawned children and the fork server */
    setvbuf(stdout, NULL, _IOLBF, 0);
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    for (size_t i = 0; i < ntests; i++)
        planned += selected(tests[i].name, argc, argv);
    printf("TAP version 13\n1..%d\n", planned);

    for (size_t i = 0; i < ntests; i++) {
        int status = 0, r, left;
        const char *verdict;
        pid_t pid;

        if (!selected(tests[i].name, argc, argv))
            continue;
        n++;
        fflush(NULL);
        pid = fork();
        if (pid < 0) {
            printf("not ok %d - %s # fork: %s\n", n, tests[i].name,
                   strerror(errno));
            failed++;
            continue;
        }
        if (pid == 0) {
            setpgid(0, 0);
            tests[i].fn();
            exit(0); /* runs libmp's teardown, as a program's end would */
        }
        setpgid(pid, pid);
        r = wait_deadline(pid, timeout, &status);
        if (r == 0) {
            kill(-pid, SIGKILL);
            wait_deadline(pid, timeout, &status);
        }
        left = sweep(pid);
        if (r == 0) {
            printf("not ok %d - %s # TIMEOUT %ds\n", n, tests[i].name,
                   timeout);
            failed++;
            continue;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == EXIT_SKIP) {
            printf("ok %d - %s # SKIP\n", n, tests[i].name);
            skipped++;
            continue;
        }
        if (WIFSIGNALED(status)) {
            printf("# %s: killed by signal %d (%s)\n", tests[i].name,
                   WTERMSIG(status), strsignal(WTERMSIG(status)));
        }
        if (left)
            printf("# %s: left processes behind\n", tests[i].name);
        verdict = WIFEXITED(status) && WEXITSTATUS(status) == 0 && !left
                      ? "ok" : "not ok";
        printf("%s %d - %s\n", verdict, n, tests[i].name);
        if (verdict[0] == 'o')
            passed++;
        else
            failed++;
    }
    printf("# Totals: pass:%d fail:%d skip:%d\n", passed, failed, skipped);
    return failed != 0;
}
