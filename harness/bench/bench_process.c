/*
 * bench_process.c - what a process costs, per start method: start+join of an
 * empty child for libmp, CPython's multiprocessing and the system's limit;
 * N children started then all joined (N = 1 to 10 000; CPython while its
 * next N stays within a few seconds); the overshoot of join(timeout) for
 * 0.01, 0.1 and 1 s and the CPU it burns; terminate() to join() returning;
 * daemon teardown, from the main process's exit to every daemon reaped, for
 * 1, 10 and 100 daemons; 64-byte messages through a pipe; and how
 * start+join grows with the parent's memory.  One run; the implementations
 * interleave round by round in a rotating order, so the load of this shared
 * machine falls on all alike.
 *
 * The limits ("raw"): fork()+waitpid() for fork; posix_spawn() of a small
 * static program + waitpid() for spawn; a request to a pre-forked server that
 * forks, reaps and answers, for forkserver; ppoll() on a pidfd for a timed
 * wait; kill(SIGTERM)+waitpid() for terminate; SIGTERM to each forked child
 * and waitpid() for daemon teardown (the last three on forked children only:
 * how a child started does not change them).  CPython runs
 * scripts/bench_process.py, timed inside it: one interpreter per measurement
 * (per method, timeout, batch size or parent size, each round).
 *
 *   mp-bench-process [--rounds R] [--scale F] [--python PATH] [--out FILE]
 *                    [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "mp.h"

#define TIMEOUT 0.1
#define MAX_SERIES 400

extern char **environ;

MP_TARGET(empty) { (void)arg; (void)len; return 0; }

MP_TARGET(pause_forever)
{
    (void)arg; (void)len;
    for (;;)
        pause();
    return 0;
}

struct series {
    char scenario[32], method[16], impl[16];
    int mem_mb;
    double *v;
    size_t n, cap, round_start;
    double round_med[64];
    int rounds;
};

static struct series table[MAX_SERIES];
static int nseries;
static char py_version[32] = "?";
static char here[4096]; /* the directory of this program */

static double cpu_now(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static struct series *get(const char *scenario, const char *method,
                          const char *impl, int mem)
{
    for (int i = 0; i < nseries; i++)
        if (strcmp(table[i].scenario, scenario) == 0 &&
            strcmp(table[i].method, method) == 0 &&
            strcmp(table[i].impl, impl) == 0 && table[i].mem_mb == mem)
            return &table[i];
    if (nseries == MAX_SERIES)
        bench_die("too many series");
    snprintf(table[nseries].scenario, 32, "%s", scenario);
    snprintf(table[nseries].method, 16, "%s", method);
    snprintf(table[nseries].impl, 16, "%s", impl);
    table[nseries].mem_mb = mem;
    return &table[nseries++];
}

static void add(struct series *s, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        if ((s->v = realloc(s->v, s->cap * sizeof(*s->v))) == NULL)
            bench_die("out of memory");
    }
    s->v[s->n++] = v;
}

static void end_round(struct series *s)
{
    if (s->n > s->round_start && s->rounds < 64)
        s->round_med[s->rounds++] =
            bench_quantile(s->v + s->round_start, s->n - s->round_start, 0.5);
    s->round_start = s->n;
}

/* A round is over for every series. */
static void end_rounds(void)
{
    for (int i = 0; i < nseries; i++)
        end_round(&table[i]);
}

static double med(const struct series *s)
{
    return bench_quantile(s->v, s->n, 0.5);
}

/* the limits */

static void raw_fork(struct series *s, int n)
{
    for (int i = 0; i < n; i++) {
        double t0 = bench_now();
        int status;
        pid_t pid = fork();

        if (pid == 0)
            _exit(0);
        if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
            bench_die("fork+waitpid failed");
        add(s, bench_now() - t0);
    }
}

/* posix_spawn of the smallest static program, or (self) of this very
 * program, which returns at once: the exec and dynamic loading every spawned
 * child of this program pays, whatever libmp does. */
static void raw_spawn(struct series *s, int n, bool self)
{
    char path[4200];
    char *argv[] = { "mp-bench-true", self ? "--noop" : NULL, NULL };

    if (self)
        snprintf(path, sizeof(path), "/proc/self/exe");
    else
        snprintf(path, sizeof(path), "%s/mp-bench-true", here);
    for (int i = 0; i < n; i++) {
        double t0 = bench_now();
        int status;
        pid_t pid;

        if (posix_spawn(&pid, path, NULL, NULL, argv, environ) != 0 ||
            waitpid(pid, &status, 0) != pid || status != 0)
            bench_die("posix_spawn of mp-bench-true failed");
        add(s, bench_now() - t0);
    }
}

/* A pre-forked server, forked while this program is small: one byte asks
 * it to fork a child, reap it and answer one byte. */
static int server_sock = -1;
static pid_t server_pid;

static void server_start(void)
{
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        bench_die("socketpair failed");
    server_pid = fork();
    if (server_pid == 0) {
        char c;
        close(sv[0]);
        while (read(sv[1], &c, 1) == 1) {
            int status;
            pid_t pid = fork();
            if (pid == 0)
                _exit(0);
            waitpid(pid, &status, 0);
            if (write(sv[1], &c, 1) != 1)
                break;
        }
        _exit(0);
    }
    close(sv[1]);
    server_sock = sv[0];
}

static void raw_server(struct series *s, int n)
{
    for (int i = 0; i < n; i++) {
        double t0 = bench_now();
        char c = 'x';

        if (write(server_sock, &c, 1) != 1 || read(server_sock, &c, 1) != 1)
            bench_die("the pre-forked server failed");
        add(s, bench_now() - t0);
    }
}

static void raw_join_timeout(struct series *over, struct series *cpu, int n,
                             double timeout)
{
    for (int i = 0; i < n; i++) {
        struct timespec ts = { (time_t)timeout,
                               (long)((timeout - (double)(time_t)timeout) *
                                      1e9) };
        struct pollfd pfd = { .events = POLLIN };
        double t0, c0;
        int status;
        pid_t pid = fork();

        if (pid == 0) {
            for (;;)
                pause();
        }
        pfd.fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pid < 0 || pfd.fd < 0)
            bench_die("fork/pidfd_open failed");
        c0 = cpu_now();
        t0 = bench_now();
        if (ppoll(&pfd, 1, &ts, NULL) != 0)
            bench_die("ppoll did not time out");
        add(over, bench_now() - t0 - timeout);
        add(cpu, cpu_now() - c0);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        close(pfd.fd);
    }
}

/* libmp */

static void libmp_start_join(struct series *s, const char *method, int n)
{
    mp_context *ctx;

    if (mp_get_context(&ctx, method) < 0)
        bench_die("no such start method");
    for (int i = 0; i < n; i++) {
        mp_process *p = NULL;
        double t0 = bench_now();
        int code = -1;

        int r = mp_context_process_new(ctx, &p, "empty", NULL, 0, NULL);
        if (r == 0)
            r = mp_process_start(p);
        if (r == 0)
            r = mp_process_join(p, MP_FOREVER);
        if (r < 0 || mp_process_exitcode(p, &code) != 1 || code != 0) {
            char line[256];
            mp_format_exception(r, line, sizeof(line));
            fprintf(stderr, "mp-bench-process: libmp start+join [%s] failed: "
                    "%s (exit code %d)\n", method, r < 0 ? line : "-", code);
            exit(2);
        }
        add(s, bench_now() - t0);
        mp_process_free(p);
    }
}

static void libmp_join_timeout(struct series *over, struct series *cpu,
                               const char *method, int n, double timeout)
{
    mp_context *ctx;

    if (mp_get_context(&ctx, method) < 0)
        bench_die("no such start method");
    for (int i = 0; i < n; i++) {
        mp_process *p = NULL;
        double t0, c0;

        if (mp_context_process_new(ctx, &p, "pause_forever", NULL, 0,
                                   NULL) < 0 || mp_process_start(p) < 0)
            bench_die("libmp start failed");
        c0 = cpu_now();
        t0 = bench_now();
        if (mp_process_join(p, timeout) != MP_ETIMEDOUT)
            bench_die("libmp join(timeout) did not time out");
        add(over, bench_now() - t0 - timeout);
        add(cpu, cpu_now() - c0);
        mp_process_kill(p);
        mp_process_join(p, MP_FOREVER);
        mp_process_free(p);
    }
}

/* N children started, then all joined: one sample */
static void libmp_start_n(struct series *s, const char *method, int n)
{
    mp_process **ps = calloc((size_t)n, sizeof(*ps));
    mp_context *ctx;
    double t0;

    if (ps == NULL || mp_get_context(&ctx, method) < 0)
        bench_die("start_n set-up failed");
    t0 = bench_now();
    for (int i = 0; i < n; i++)
        if (mp_context_process_new(ctx, &ps[i], "empty", NULL, 0, NULL) < 0 ||
            mp_process_start(ps[i]) < 0)
            bench_die("libmp start_n: start failed");
    for (int i = 0; i < n; i++) {
        int code = -1;
        if (mp_process_join(ps[i], MP_FOREVER) < 0 ||
            mp_process_exitcode(ps[i], &code) != 1 || code != 0)
            bench_die("libmp start_n: a child failed");
    }
    add(s, bench_now() - t0);
    for (int i = 0; i < n; i++)
        mp_process_free(ps[i]);
    free(ps);
}

/* The limit: fork() (or posix_spawn() of the static program) n times, then
 * waitpid() each. */
static void raw_start_n(struct series *s, bool spawn, int n)
{
    pid_t *pids = calloc((size_t)n, sizeof(*pids));
    char path[4200];
    char *argv[] = { "mp-bench-true", NULL };
    double t0;

    if (pids == NULL)
        bench_die("out of memory");
    snprintf(path, sizeof(path), "%s/mp-bench-true", here);
    t0 = bench_now();
    for (int i = 0; i < n; i++) {
        if (spawn) {
            if (posix_spawn(&pids[i], path, NULL, NULL, argv, environ) != 0)
                bench_die("posix_spawn failed");
        } else if ((pids[i] = fork()) == 0) {
            _exit(0);
        } else if (pids[i] < 0) {
            bench_die("fork failed");
        }
    }
    for (int i = 0; i < n; i++) {
        int status;
        if (waitpid(pids[i], &status, 0) != pids[i] || status != 0)
            bench_die("raw start_n: a child failed");
    }
    add(s, bench_now() - t0);
    free(pids);
}

/* terminate() -> join() on a child known to be running (it said so on a
 * pipe), exit code checked. */
MP_TARGET(ready_then_pause)
{
    (void)arg; (void)len;
    if (mp_conn_send_bytes(mp_child_conn(0), "r", 1) < 0)
        return 1;
    for (;;)
        pause();
    return 0;
}

static void libmp_terminate(struct series *s, const char *method, int n)
{
    mp_context *ctx;

    if (mp_get_context(&ctx, method) < 0)
        bench_die("no such start method");
    for (int i = 0; i < n; i++) {
        mp_process *p;
        mp_conn *r, *w;
        char c;
        size_t got;
        int code = 0;
        double t0;

        if (mp_pipe(&r, &w, 0) < 0 ||
            mp_context_process_new(ctx, &p, "ready_then_pause", NULL, 0,
                                   NULL) < 0 ||
            mp_process_add_conn(p, w) < 0 || mp_process_start(p) < 0 ||
            mp_conn_recv_bytes_into(r, &c, 1, &got) < 0)
            bench_die("libmp terminate: set-up failed");
        t0 = bench_now();
        if (mp_process_terminate(p) < 0 || mp_process_join(p, MP_FOREVER) < 0)
            bench_die("libmp terminate failed");
        add(s, bench_now() - t0);
        if (mp_process_exitcode(p, &code) != 1 || code != -SIGTERM)
            bench_die("libmp terminate: the exit code is not -15");
        mp_process_free(p);
        mp_conn_free(r);
        mp_conn_free(w);
    }
}

static void raw_terminate(struct series *s, int n)
{
    for (int i = 0; i < n; i++) {
        int fds[2], status;
        char c = 'r';
        pid_t pid;
        double t0;

        if (pipe(fds) < 0)
            bench_die("pipe failed");
        if ((pid = fork()) == 0) {
            if (write(fds[1], &c, 1) != 1)
                _exit(1);
            for (;;)
                pause();
        }
        if (pid < 0 || read(fds[0], &c, 1) != 1)
            bench_die("raw terminate: set-up failed");
        t0 = bench_now();
        kill(pid, SIGTERM);
        if (waitpid(pid, &status, 0) != pid)
            bench_die("waitpid failed");
        add(s, bench_now() - t0);
        if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGTERM)
            bench_die("raw terminate: not ended by SIGTERM");
        close(fds[0]);
        close(fds[1]);
    }
}

/* Daemon teardown, in the process: a fresh main process (this program with
 * --daemon-main, or scripts/bench_process.py --daemon-main) starts k daemonic
 * children, waits until each has said it runs, writes the clock and their
 * pids on its stdout and exits.  A sample runs from that clock to the moment
 * the stdout pipe reads EOF (every process that inherited it, the daemons
 * and any server, has ended) and waitpid() has returned.  A daemon still
 * holding the pipe DAEMON_LIMIT seconds after the main process exited
 * fails the run (after a SIGKILL to each daemon named). */
#define DAEMON_LIMIT 30
static double daemon_sample(char *const argv[], const char *what)
{
    posix_spawn_file_actions_t fa;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap), *at, *end;
    int fds[2], status = 0, left = 0;
    bool exited = false;
    double t0, t1, limit = INFINITY;
    ssize_t r;
    pid_t pid;

    if (buf == NULL || pipe2(fds, O_CLOEXEC) < 0 ||
        posix_spawn_file_actions_init(&fa) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, fds[1], 1) != 0)
        bench_die("daemon teardown: set-up failed");
    fflush(NULL);
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0)
        bench_die("daemon teardown: cannot start the main process");
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    for (;;) {
        struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
        /* while the main process runs, look at it every 100 ms */
        int wait_ms = exited ? (int)fmax(0, (limit - bench_now()) * 1000)
                             : 100;

        if (!exited && waitpid(pid, &status, WNOHANG) == pid) {
            exited = true;
            limit = bench_now() + DAEMON_LIMIT;
        }
        int ready = poll(&pfd, 1, wait_ms);

        if (ready < 0)
            continue; /* EINTR */
        if (ready == 0) {
            if (exited && bench_now() >= limit) {
                left = -1;
                break;
            }
            continue;
        }
        if ((r = read(fds[0], buf + len, cap - len - 1)) == 0)
            break;
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            bench_die("daemon teardown: read failed");
        len += (size_t)r;
        if (cap - len < 2 && (buf = realloc(buf, cap *= 2)) == NULL)
            bench_die("out of memory");
    }
    while (!exited && waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    t1 = bench_now();
    close(fds[0]);
    buf[len] = '\0';
    t0 = strtod(buf, &end);
    if (end == buf || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "mp-bench-process: daemon teardown [%s]: the main "
                "process failed (status %d, printed \"%.80s\")\n", what,
                status, buf);
        exit(2);
    }
    if (left < 0) {
        for (left = 0, at = end; *at != '\0'; left++) {
            long d = strtol(at, &end, 10);
            if (end == at)
                break;
            at = end;
            if (d > 0)
                kill((pid_t)d, SIGKILL);
        }
        fprintf(stderr, "mp-bench-process: daemon teardown [%s]: the "
                "daemons (%d) outlived the main process by %d s\n", what,
                left, DAEMON_LIMIT);
        exit(2);
    }
    free(buf);
    return t1 - t0;
}

/* The main process of a daemon teardown sample: "raw" forks k children
 * that pause and, at its exit, sends each SIGTERM and reaps it (the
 * limit); "libmp" starts k daemons under `method` and returns, leaving the
 * teardown to libmp's exit handler. */
static int daemon_main(const char *impl, const char *method, int k)
{
    pid_t *pids = calloc((size_t)k + 1, sizeof(*pids));
    char *line = malloc((size_t)k * 12 + 64);
    size_t at;
    char c;

    if (pids == NULL || line == NULL || k < 1)
        bench_die("daemon main: bad arguments");
    if (strcmp(impl, "raw") == 0) {
        int fds[2];
        if (pipe(fds) < 0)
            bench_die("pipe failed");
        for (int i = 0; i < k; i++) {
            if ((pids[i] = fork()) == 0) {
                if (write(fds[1], "r", 1) != 1)
                    _exit(1);
                for (;;)
                    pause();
            }
            if (pids[i] < 0)
                bench_die("fork failed");
        }
        for (int i = 0; i < k; i++)
            if (read(fds[0], &c, 1) != 1)
                bench_die("a raw daemon failed");
    } else {
        mp_process_options opt = { .daemon = MP_DAEMON_YES };
        mp_context *ctx;
        mp_conn *r, *w;
        size_t got;

        if (mp_get_context(&ctx, method) < 0 || mp_pipe(&r, &w, 0) < 0)
            bench_die("daemon main: set-up failed");
        for (int i = 0; i < k; i++) {
            mp_process *p;
            if (mp_context_process_new(ctx, &p, "ready_then_pause", NULL, 0,
                                       &opt) < 0 ||
                mp_process_add_conn(p, w) < 0 || mp_process_start(p) < 0 ||
                mp_process_pid(p, &pids[i]) < 0)
                bench_die("daemon main: start failed");
        }
        for (int i = 0; i < k; i++)
            if (mp_conn_recv_bytes_into(r, &c, 1, &got) < 0)
                bench_die("daemon main: a daemon failed");
    }
    at = (size_t)snprintf(line, 64, "%.9f", bench_now());
    for (int i = 0; i < k; i++)
        at += (size_t)sprintf(line + at, " %d", (int)pids[i]);
    line[at++] = '\n';
    if (write(1, line, at) != (ssize_t)at)
        return 1;
    if (strcmp(impl, "raw") == 0) {
        for (int i = 0; i < k; i++)
            kill(pids[i], SIGTERM);
        for (int i = 0; i < k; i++)
            waitpid(pids[i], NULL, 0);
    }
    return 0;
}

static void daemon_teardown(struct series *s, const char *python,
                            const char *impl, const char *method, int k,
                            int samples)
{
    char ks[16], what[64];
    char *lib[] = { "/proc/self/exe", "--daemon-main", (char *)impl,
                    (char *)method, ks, NULL };
    char *py[] = { (char *)python, "scripts/bench_process.py", "--method",
                   (char *)method, "--daemon-main", ks, NULL };

    snprintf(ks, sizeof(ks), "%d", k);
    snprintf(what, sizeof(what), "%s %s %d", impl, method, k);
    for (int i = 0; i < samples; i++)
        add(s, daemon_sample(strcmp(impl, "cpython") == 0 ? py : lib, what));
}

/* messages through a pipe: a child sends n messages of `size` bytes, the
 * parent receives them; one sample, seconds per message */

MP_TARGET(pipe_sender)
{
    int n, size;
    mp_conn *w = mp_child_conn(0);
    char *msg;

    memcpy(&n, arg, sizeof(n));
    memcpy(&size, (const char *)arg + sizeof(n), sizeof(size));
    (void)len;
    if ((msg = calloc(1, (size_t)size)) == NULL)
        return 1;
    for (int i = 0; i < n; i++)
        if (mp_conn_send_bytes(w, msg, (size_t)size) < 0)
            return 2;
    free(msg);
    return 0;
}

static void libmp_pipe(struct series *s, int n, int size)
{
    mp_conn *r, *w;
    mp_process *p;
    int arg[2] = { n, size };
    double t0;
    char *buf = malloc((size_t)size + 1);
    size_t len;

    if (buf == NULL || mp_pipe(&r, &w, 0) < 0 ||
        mp_process_new(&p, "pipe_sender", arg, sizeof(arg), NULL) < 0 ||
        mp_process_add_conn(p, w) < 0)
        bench_die("libmp pipe set-up failed");
    t0 = bench_now();
    if (mp_process_start(p) < 0)
        bench_die("libmp pipe start failed");
    mp_conn_close(w);
    for (int i = 0; i < n; i++)
        if (mp_conn_recv_bytes_into(r, buf, (size_t)size, &len) < 0)
            bench_die("libmp pipe recv failed");
    add(s, (bench_now() - t0) / n);
    mp_process_join(p, MP_FOREVER);
    mp_process_free(p);
    mp_conn_free(r);
    mp_conn_free(w);
    free(buf);
}

/* The limit: a raw pipe(2), one write() per message, one read() each. */
static void raw_pipe(struct series *s, int n, int size)
{
    int fds[2], status;
    char *buf = calloc(1, (size_t)size);
    double t0;
    pid_t pid;

    if (buf == NULL || pipe(fds) < 0)
        bench_die("pipe failed");
    t0 = bench_now();
    pid = fork();
    if (pid == 0) {
        close(fds[0]);
        for (int i = 0; i < n; i++)
            if (write(fds[1], buf, (size_t)size) != size)
                _exit(1);
        _exit(0);
    }
    close(fds[1]);
    for (int i = 0; i < n; i++) {
        size_t got = 0;
        while (got < (size_t)size) {
            ssize_t k = read(fds[0], buf + got, (size_t)size - got);
            if (k <= 0)
                bench_die("raw pipe read failed");
            got += (size_t)k;
        }
    }
    add(s, (bench_now() - t0) / n);
    waitpid(pid, &status, 0);
    close(fds[0]);
    free(buf);
}

/* CPython */

static void add_json(struct series *s, json_t *a)
{
    size_t i;
    json_t *v;

    if (s != NULL)
        json_array_foreach(a, i, v)
            add(s, json_real_value(v));
}

/* One interpreter: `n` start+joins under `method` from a parent holding
 * `mem` MB, and `joins` join(timeout) samples. */
static int pipe_msgs; /* >0: the CPython call measures its Pipe too */
static struct series *pipe_series;
/* > 0: the call also measures start-N-then-join-all, terminate latency */
static int startn_n, startn_samples, term_n;
static struct series *startn_series, *term_series;
static double py_timeout = TIMEOUT;

static void cpython(const char *python, const char *method, int n, int joins,
                    int mem, bool no_site, struct series *sj,
                    struct series *over, struct series *cpu)
{
    char ns[16], js[16], ms[16], ps[16], sn[16], ss[16], ts[16], to[32];
    char *argv[32];
    int k = 0;
    json_t *root;
    char *out;

    snprintf(ns, sizeof(ns), "%d", n);
    snprintf(js, sizeof(js), "%d", joins);
    snprintf(ms, sizeof(ms), "%d", mem);
    argv[k++] = (char *)python;
    if (no_site)
        argv[k++] = "-S";
    argv[k++] = "scripts/bench_process.py";
    argv[k++] = "--method";
    argv[k++] = (char *)method;
    argv[k++] = "--n";
    argv[k++] = ns;
    argv[k++] = "--joins";
    argv[k++] = js;
    argv[k++] = "--mem";
    argv[k++] = ms;
    snprintf(ps, sizeof(ps), "%d", pipe_msgs);
    argv[k++] = "--pipe";
    argv[k++] = ps;
    snprintf(sn, sizeof(sn), "%d", startn_n);
    snprintf(ss, sizeof(ss), "%d", startn_samples);
    snprintf(ts, sizeof(ts), "%d", term_n);
    snprintf(to, sizeof(to), "%.3f", py_timeout);
    argv[k++] = "--start-n";
    argv[k++] = sn;
    argv[k++] = "--start-n-samples";
    argv[k++] = ss;
    argv[k++] = "--terminate";
    argv[k++] = ts;
    argv[k++] = "--timeout";
    argv[k++] = to;
    argv[k] = NULL;
    if ((out = bench_capture(argv)) == NULL)
        bench_die("the CPython side failed (scripts/bench_process.py)");
    if ((root = json_loads(out, 0, NULL)) == NULL)
        bench_die("the CPython side printed no JSON");
    snprintf(py_version, sizeof(py_version), "%s",
             json_string_value(json_object_get(root, "python")));
    add_json(sj, json_object_get(root, "start_join"));
    add_json(over, json_object_get(root, "join_overshoot"));
    add_json(cpu, json_object_get(root, "join_cpu"));
    add_json(pipe_msgs > 0 ? pipe_series : NULL,
             json_object_get(root, "pipe_per_msg"));
    add_json(startn_n > 0 ? startn_series : NULL,
             json_object_get(root, "start_n"));
    add_json(term_n > 0 ? term_series : NULL,
             json_object_get(root, "terminate"));
    json_decref(root);
    free(out);
}

/* reporting */

static json_t *series_json(const struct series *s)
{
    json_t *rm = json_array();

    for (int i = 0; i < s->rounds; i++)
        json_array_append_new(rm, json_real(s->round_med[i]));
    return json_pack("{s:s, s:s, s:s, s:i, s:s, s:i, s:f, s:f, s:f, s:f, "
                     "s:o}", "scenario", s->scenario, "method", s->method,
                     "impl", s->impl, "param", s->mem_mb, "unit", "s",
                     "n", (int)s->n, "median", med(s), "min",
                     bench_quantile(s->v, s->n, 0), "max", bench_quantile(s->v, s->n, 1),
                     "p99", bench_quantile(s->v, s->n, 0.99), "round_medians", rm);
}

static void print_row(const struct series *s, const char *label)
{
    double lo = INFINITY, hi = -INFINITY;

    if (s->n == 0)
        return;
    for (int i = 0; i < s->rounds; i++) {
        lo = fmin(lo, s->round_med[i]);
        hi = fmax(hi, s->round_med[i]);
    }
    printf("  %-34s %9.1f %9.1f %9.1f %9.1f  %9.1f-%-9.1f %5zu\n", label,
           med(s) * 1e6, bench_quantile(s->v, s->n, 0) * 1e6,
           bench_quantile(s->v, s->n, 0.99) * 1e6, bench_quantile(s->v, s->n, 1) * 1e6,
           lo * 1e6, hi * 1e6, s->n);
}

static json_t *ratios;

/* A ratio of medians, with the same ratio round by round (the rounds ran
 * interleaved, so each round's ratio is one noisy measurement of it). */
static void ratio(const char *key, struct series *a, struct series *b)
{
    json_t *rounds;

    if (a->n == 0 || b->n == 0)
        return;
    rounds = json_array();
    for (int i = 0; i < a->rounds && i < b->rounds; i++)
        json_array_append_new(rounds, json_real(a->round_med[i] /
                                                b->round_med[i]));
    json_object_set_new(ratios, key, json_pack("{s:f, s:o}", "median",
                                               med(a) / med(b), "rounds",
                                               rounds));
}

/* The two ratios of a scenario: prefix.cpython_over_libmp and
 * prefix.libmp_over_raw (each only if both series were measured). */
static void ratios_of(const char *prefix, const char *scenario,
                      const char *method, int param)
{
    char key[128];
    struct series *lib = get(scenario, method, "libmp", param);
    struct series *raw = get(scenario, method, "raw", param);

    /* a limit that does not depend on the start method (a timed wait,
     * a signal, a teardown) is measured on forked children only */
    if (raw->n == 0 && (strcmp(scenario, "join_overshoot") == 0 ||
                        strcmp(scenario, "terminate") == 0 ||
                        strcmp(scenario, "daemon_teardown") == 0))
        raw = get(scenario, "fork", "raw", param);
    snprintf(key, sizeof(key), "%s.cpython_over_libmp", prefix);
    ratio(key, get(scenario, method, "cpython", param), lib);
    snprintf(key, sizeof(key), "%s.libmp_over_raw", prefix);
    ratio(key, lib, raw);
}

/* Touched memory the parent holds for the scaling rounds. */
static char *ballast;

static void hold_memory(int mb)
{
    free(ballast);
    ballast = NULL;
    if (mb > 0) {
        if ((ballast = malloc((size_t)mb << 20)) == NULL)
            bench_die("cannot allocate the parent's memory");
        memset(ballast, 1, (size_t)mb << 20);
    }
}

int main(int argc, char **argv)
{
    static const char *const methods[] = { "fork", "spawn", "forkserver" };
    static const int mems[] = { 1, 256, 1024 };
    static const double timeouts[] = { 0.01, 0.1, 1.0 };
    static const int start_ns[] = { 1, 10, 100, 1000, 10000 };
    static const int daemon_ks[] = { 1, 10, 100 };
    /* CPython's start_n, per method: the largest N it is given (set in the
     * first round, when the next N would take over cpy_budget seconds), and
     * the last batch it took */
    int cpy_max_n[3] = { INT_MAX, INT_MAX, INT_MAX }, cpy_last_n[3] = { 0 };
    double cpy_last_t[3] = { 0 }, cpy_budget;
    struct rlimit nofile;
    struct bench_opts o;
    bool quick;
    int rounds, joins = 5;
    double scale;
    const char *python, *out;
    json_t *root, *results;
    ssize_t len;

    if (argc == 2 && strcmp(argv[1], "--noop") == 0)
        return 0; /* the "raw self" spawn limit: exec and loading only */
    bench_prog = "mp-bench-process";
    mp_main(argc, argv);
    if (argc == 5 && strcmp(argv[1], "--daemon-main") == 0)
        return daemon_main(argv[2], argv[3], atoi(argv[4]));
    /* 10 000 children alive at once hold a descriptor each */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
        nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    bench_options(argc, argv, 0.1, &o);
    rounds = o.rounds, scale = o.scale, quick = o.quick;
    python = o.python, out = o.out;
    if (quick)
        joins = 2;
    cpy_budget = quick ? 1.0 : 4.0;
    len = readlink("/proc/self/exe", here, sizeof(here) - 1);
    here[len > 0 ? len : 0] = '\0';
    if (strrchr(here, '/') != NULL)
        *strrchr(here, '/') = '\0';
#define N(x) ((int)fmax(2, (x) * scale))
    server_start(); /* while we are small */
    {
        struct series w = { .scenario = "warmup" };
        for (int m = 0; m < 3; m++)
            libmp_start_join(&w, methods[m], 3); /* also starts the server */
        raw_fork(&w, 3);
        free(w.v);
    }

    /* start+join of an empty child, per method */
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < 3; m++) {
            const char *meth = methods[m];
            int nl = m == 1 ? N(50) : N(200), np = m == 0 ? N(40)
                                                : m == 1 ? N(8) : N(20);
            if (isatty(2))
                fprintf(stderr, "\r\033[Kround %d/%d: start+join [%s]", r + 1,
                        rounds, meth);
            for (int k = 0; k < 3; k++) {
                switch ((r + k) % 3) {
                case 0:
                    if (m == 0) raw_fork(get("start_join", meth, "raw", 0), nl);
                    if (m == 1) {
                        raw_spawn(get("start_join", meth, "raw", 0), nl, false);
                        raw_spawn(get("start_join", meth, "raw self", 0), nl,
                                  true);
                    }
                    if (m == 2) raw_server(get("start_join", meth, "raw", 0), nl);
                    break;
                case 1:
                    libmp_start_join(get("start_join", meth, "libmp", 0), meth,
                                     nl);
                    break;
                case 2:
                    cpython(python, meth, np, 0, 0, false,
                            get("start_join", meth, "cpython", 0), NULL,
                            NULL);
                    if (m == 1) /* CPython's start-up without site */
                        cpython(python, meth, np, 0, 0, true,
                                get("start_join", meth, "cpython -S", 0),
                                NULL, NULL);
                    break;
                }
            }
        }
        end_rounds();
    }

    /* join(timeout): the overshoot and the CPU spent waiting, per timeout
     * (param: the timeout in ms) and start method; the limit, ppoll() on a
     * pidfd, does not depend on how the child started: fork only */
    for (int r = 0; r < rounds; r++) {
        for (size_t t = 0; t < sizeof(timeouts) / sizeof(*timeouts); t++) {
            double to = timeouts[t];
            int ms = (int)(to * 1000 + 0.5), jn = to >= 1 ? (joins + 2) / 3
                                                           : joins;
            if (quick && to >= 1 && r > 0)
                continue; /* one second a sample: one round will do */
            for (int m = 0; m < 3; m++) {
                const char *meth = methods[m];
                bench_progress("round %d/%d: join(timeout=%g) [%s]", r + 1,
                               rounds, to, meth);
                for (int k = 0; k < 3; k++) {
                    switch ((r + m + k) % 3) {
                    case 0: if (m == 0)
                                raw_join_timeout(
                                    get("join_overshoot", meth, "raw", ms),
                                    get("join_cpu", meth, "raw", ms), jn, to);
                            break;
                    case 1: libmp_join_timeout(
                                get("join_overshoot", meth, "libmp", ms),
                                get("join_cpu", meth, "libmp", ms), meth, jn,
                                to);
                            break;
                    case 2: py_timeout = to;
                            cpython(python, meth, 0, jn, 0, false, NULL,
                                    get("join_overshoot", meth, "cpython", ms),
                                    get("join_cpu", meth, "cpython", ms));
                            py_timeout = TIMEOUT;
                            break;
                    }
                }
            }
        }
        end_rounds();
    }

    /* N children started, then all joined (param: N, up to 10 000);
     * CPython gets the next N while the last batch,
     * scaled to it, stays within cpy_budget seconds (so its spawn stops at
     * tens of children, 70 ms each) */
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < 3; m++) {
            const char *meth = methods[m];
            for (size_t j = 0; j < sizeof(start_ns) / sizeof(*start_ns); j++) {
                int n = start_ns[j], samples = n <= 10 ? 5 : n <= 100 ? 2 : 1;
                double guess = cpy_last_n[m] > 0
                               ? cpy_last_t[m] * n / cpy_last_n[m] : 0;
                /* 10 000 spawned children take half a minute: the first
                 * round only; the others' the first two */
                if ((quick && n > 100) || (n > 1000 && r >= (m == 1 ? 1 : 2)) ||
                    (rlim_t)n + 256 > nofile.rlim_cur)
                    continue;
                if (r == 0 && guess > cpy_budget && n < cpy_max_n[m])
                    cpy_max_n[m] = cpy_last_n[m];
                bench_progress("round %d/%d: start %d, join all [%s]", r + 1,
                               rounds, n, meth);
                for (int k = 0; k < 3; k++) {
                    switch ((r + k) % 3) {
                    case 0:
                        for (int i = 0; m < 2 && i < samples; i++)
                            raw_start_n(get("start_n", meth, "raw", n), m == 1,
                                        n);
                        break;
                    case 1:
                        for (int i = 0; i < samples; i++)
                            libmp_start_n(get("start_n", meth, "libmp", n),
                                          meth, n);
                        break;
                    case 2:
                        if (n > cpy_max_n[m])
                            break;
                        startn_n = n;
                        startn_samples = guess * samples > cpy_budget
                                         ? 1 : samples;
                        startn_series = get("start_n", meth, "cpython", n);
                        cpython(python, meth, 0, 0, 0, false, NULL, NULL,
                                NULL);
                        startn_n = 0;
                        if (r == 0) {
                            cpy_last_n[m] = n;
                            cpy_last_t[m] = startn_series->v[
                                startn_series->n - 1];
                        }
                        break;
                    }
                }
            }
        }
        end_rounds();
    }

    /* terminate() -> join() returning, on a running child */
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < 3; m++) {
            const char *meth = methods[m];
            bench_progress("round %d/%d: terminate [%s]", r + 1, rounds, meth);
            for (int k = 0; k < 3; k++) {
                switch ((r + k) % 3) {
                case 0: if (m == 0)
                            raw_terminate(get("terminate", meth, "raw", 0),
                                          N(20));
                        break;
                case 1: libmp_terminate(get("terminate", meth, "libmp", 0),
                                        meth, N(20));
                        break;
                case 2: term_n = m == 1 ? N(5) : N(10);
                        term_series = get("terminate", meth, "cpython", 0);
                        cpython(python, meth, 0, 0, 0, false, NULL, NULL, NULL);
                        term_n = 0;
                        break;
                }
            }
        }
        end_rounds();
    }

    /* daemon teardown: the main process's exit to every daemon reaped
     * (param: daemons); the limit, SIGTERM to each and waitpid(), with
     * forked children only */
    for (int r = 0; r < rounds; r++) {
        for (int m = 0; m < 3; m++) {
            const char *meth = methods[m];
            for (size_t j = 0; j < sizeof(daemon_ks) / sizeof(*daemon_ks);
                 j++) {
                int dk = daemon_ks[j], ns = quick || dk >= 100 ? 1
                                            : dk >= 10 ? 3 : 5;
                bench_progress("round %d/%d: daemon teardown, %d [%s]", r + 1,
                               rounds, dk, meth);
                for (int k = 0; k < 3; k++) {
                    switch ((r + m + k) % 3) {
                    case 0: if (m == 0)
                                daemon_teardown(get("daemon_teardown", meth,
                                                    "raw", dk),
                                                python, "raw", meth, dk, ns);
                            break;
                    case 1: daemon_teardown(get("daemon_teardown", meth,
                                                "libmp", dk),
                                            python, "libmp", meth, dk, ns);
                            break;
                    case 2: daemon_teardown(get("daemon_teardown", meth,
                                                "cpython", dk),
                                            python, "cpython", meth, dk,
                                            ns > 3 ? 3 : ns);
                            break;
                    }
                }
            }
        }
        end_rounds();
    }

    /* 64-byte messages through a pipe, 1 -> 1 */
    for (int r = 0; r < rounds; r++) {
        if (isatty(2))
            fprintf(stderr, "\r\033[Kround %d/%d: pipe", r + 1, rounds);
        for (int k = 0; k < 3; k++) {
            switch ((r + k) % 3) {
            case 0: raw_pipe(get("pipe_msg", "fork", "raw", 0), N(200000), 64);
                    break;
            case 1: libmp_pipe(get("pipe_msg", "fork", "libmp", 0), N(200000),
                               64);
                    /* ... and never touching SIGPIPE's disposition */
                    mp_set_sigpipe_policy(MP_SIGPIPE_KEEP);
                    libmp_pipe(get("pipe_msg", "fork", "libmp keep", 0),
                               N(200000), 64);
                    mp_set_sigpipe_policy(MP_SIGPIPE_IGNORE);
                    break;
            case 2: pipe_msgs = N(50000);
                    pipe_series = get("pipe_msg", "fork", "cpython", 0);
                    cpython(python, "fork", 2, 0, 0, false, NULL, NULL, NULL);
                    pipe_msgs = 0;
                    break;
            }
        }
        end_rounds();
    }

    /* start+join against the parent's size (touched memory), per method;
     * the limits: fork(), posix_spawn() of the static program, and the
     * pre-forked server (forked while this program was small) */
    for (size_t k = 0; k < sizeof(mems) / sizeof(mems[0]); k++) {
        int mb = mems[k], n = mb >= 1024 ? N(20) : N(60);
        hold_memory(mb);
        for (int r = 0; r < rounds; r++) {
            bench_progress("round %d/%d: parent of %d MB", r + 1, rounds, mb);
            for (int j = 0; j < 9; j++) {
                switch ((r + j) % 9) {
                case 0: raw_fork(get("start_join_mem", "fork", "raw", mb), n);
                        break;
                case 1: libmp_start_join(get("start_join_mem", "fork", "libmp",
                                             mb), "fork", n);
                        break;
                case 2: libmp_start_join(get("start_join_mem", "forkserver",
                                             "libmp", mb), "forkserver", n);
                        break;
                case 3: cpython(python, "fork", N(10), 0, mb, false,
                                get("start_join_mem", "fork", "cpython", mb),
                                NULL, NULL);
                        break;
                case 4: raw_spawn(get("start_join_mem", "spawn", "raw", mb), n,
                                  false);
                        break;
                case 5: libmp_start_join(get("start_join_mem", "spawn", "libmp",
                                             mb), "spawn", n);
                        break;
                case 6: cpython(python, "spawn", N(4), 0, mb, false,
                                get("start_join_mem", "spawn", "cpython", mb),
                                NULL, NULL);
                        break;
                case 7: cpython(python, "forkserver", N(10), 0, mb, false,
                                get("start_join_mem", "forkserver", "cpython",
                                    mb), NULL, NULL);
                        break;
                case 8: raw_server(get("start_join_mem", "forkserver", "raw",
                                       mb), n);
                        break;
                }
            }
            end_rounds();
        }
    }
    hold_memory(0);
    if (isatty(2))
        fprintf(stderr, "\r\033[K");

    printf("Process costs in microseconds: %d rounds interleaved, CPython %s; "
           "median, min, p99, max, range of round medians, samples\n",
           rounds, py_version);
    for (int m = 0; m < 3; m++) {
        struct series *raw = get("start_join", methods[m], "raw", 0);
        struct series *lib = get("start_join", methods[m], "libmp", 0);
        struct series *cpy = get("start_join", methods[m], "cpython", 0);
        printf("start+join of an empty child [%s]\n", methods[m]);
        print_row(raw, m == 0 ? "raw fork+waitpid"
                       : m == 1 ? "raw posix_spawn(static)+waitpid"
                                : "raw pre-forked server");
        print_row(get("start_join", methods[m], "raw self", 0),
                  "raw posix_spawn(this program)+wait");
        print_row(lib, "libmp");
        print_row(cpy, "CPython");
        print_row(get("start_join", methods[m], "cpython -S", 0),
                  "CPython -S (no site)");
        printf("  CPython/libmp %.1fx, libmp/raw %.2fx\n", med(cpy) / med(lib),
               med(lib) / med(raw));
    }
    for (size_t t = 0; t < sizeof(timeouts) / sizeof(*timeouts); t++)
        for (int m = 0; m < 3; m++) {
            int ms = (int)(timeouts[t] * 1000 + 0.5);
            const char *meth = methods[m];
            printf("join(timeout=%g): overshoot, and CPU time spent waiting "
                   "[%s]\n", timeouts[t], meth);
            print_row(get("join_overshoot", meth, "raw", ms),
                      "raw ppoll(pidfd) over");
            print_row(get("join_overshoot", meth, "libmp", ms),
                      "libmp overshoot");
            print_row(get("join_overshoot", meth, "cpython", ms),
                      "CPython overshoot");
            print_row(get("join_cpu", meth, "raw", ms), "raw ppoll(pidfd) CPU");
            print_row(get("join_cpu", meth, "libmp", ms), "libmp CPU");
            print_row(get("join_cpu", meth, "cpython", ms), "CPython CPU");
        }
    for (int m = 0; m < 3; m++) {
        printf("start N children, then join them all [%s]\n", methods[m]);
        for (size_t j = 0; j < sizeof(start_ns) / sizeof(*start_ns); j++) {
            static const char *const impls[] = { "raw", "libmp", "cpython" };
            for (int k = 0; k < 3; k++) {
                char label[64];
                snprintf(label, sizeof(label), "N=%-5d %s", start_ns[j],
                         impls[k]);
                print_row(get("start_n", methods[m], impls[k], start_ns[j]),
                          label);
            }
        }
    }
    for (int m = 0; m < 3; m++) {
        printf("terminate() -> join() returning [%s]\n", methods[m]);
        print_row(get("terminate", methods[m], "raw", 0),
                  "raw kill(SIGTERM)+waitpid");
        print_row(get("terminate", methods[m], "libmp", 0), "libmp");
        print_row(get("terminate", methods[m], "cpython", 0), "CPython");
    }
    for (int m = 0; m < 3; m++) {
        printf("daemon teardown: the main process's exit to every daemon "
               "reaped [%s]\n", methods[m]);
        for (size_t j = 0; j < sizeof(daemon_ks) / sizeof(*daemon_ks); j++) {
            static const char *const impls[] = { "raw", "libmp", "cpython" };
            for (int k = 0; k < 3; k++) {
                char label[64];
                snprintf(label, sizeof(label), "%3d daemons %s", daemon_ks[j],
                         impls[k]);
                print_row(get("daemon_teardown", methods[m], impls[k],
                              daemon_ks[j]), label);
            }
        }
    }
    printf("64-byte messages through a Pipe, 1 -> 1: microseconds per message "
           "(messages/s = 1e6 / median)\n");
    print_row(get("pipe_msg", "fork", "raw", 0), "raw pipe, 1 write+read/msg");
    print_row(get("pipe_msg", "fork", "libmp", 0), "libmp Pipe");
    print_row(get("pipe_msg", "fork", "libmp keep", 0),
              "libmp Pipe, MP_SIGPIPE_KEEP");
    print_row(get("pipe_msg", "fork", "cpython", 0), "CPython Pipe (bytes)");
    printf("start+join against the parent's touched memory\n");
    for (size_t k = 0; k < sizeof(mems) / sizeof(mems[0]); k++) {
        char label[64];
        static const char *const who[][2] = {
            { "fork", "raw" }, { "fork", "libmp" }, { "fork", "cpython" },
            { "spawn", "raw" }, { "spawn", "libmp" }, { "spawn", "cpython" },
            { "forkserver", "raw" }, { "forkserver", "libmp" },
            { "forkserver", "cpython" } };
        for (int j = 0; j < 9; j++) {
            snprintf(label, sizeof(label), "%4d MB %s %s", mems[k], who[j][1],
                     who[j][0]);
            print_row(get("start_join_mem", who[j][0], who[j][1], mems[k]),
                      label);
        }
    }

    ratios = json_object();
    for (int m = 0; m < 3; m++) {
        char key[96];
        snprintf(key, sizeof(key), "start_join.%s", methods[m]);
        ratios_of(key, "start_join", methods[m], 0);
        if (m == 1)
            ratio("start_join.spawn.libmp_over_raw_self",
                  get("start_join", methods[m], "libmp", 0),
                  get("start_join", methods[m], "raw self", 0));
    }
    ratio("pipe_msg.libmp_over_raw", get("pipe_msg", "fork", "libmp", 0),
          get("pipe_msg", "fork", "raw", 0));
    ratio("pipe_msg.libmp_sigpipe_keep_over_raw",
          get("pipe_msg", "fork", "libmp keep", 0),
          get("pipe_msg", "fork", "raw", 0));
    ratio("pipe_msg.cpython_over_libmp", get("pipe_msg", "fork", "cpython", 0),
          get("pipe_msg", "fork", "libmp", 0));
    for (size_t t = 0; t < sizeof(timeouts) / sizeof(*timeouts); t++)
        for (int m = 0; m < 3; m++) {
            char key[96];
            int ms = (int)(timeouts[t] * 1000 + 0.5);
            snprintf(key, sizeof(key), "join_overshoot.%s.%dms", methods[m],
                     ms);
            ratios_of(key, "join_overshoot", methods[m], ms);
        }
    for (int m = 0; m < 3; m++) {
        char key[96];
        for (size_t j = 0; j < sizeof(start_ns) / sizeof(*start_ns); j++) {
            snprintf(key, sizeof(key), "start_n.%s.%d", methods[m],
                     start_ns[j]);
            ratios_of(key, "start_n", methods[m], start_ns[j]);
        }
        snprintf(key, sizeof(key), "terminate.%s", methods[m]);
        ratios_of(key, "terminate", methods[m], 0);
        for (size_t j = 0; j < sizeof(daemon_ks) / sizeof(*daemon_ks); j++) {
            snprintf(key, sizeof(key), "daemon_teardown.%s.%d", methods[m],
                     daemon_ks[j]);
            ratios_of(key, "daemon_teardown", methods[m], daemon_ks[j]);
        }
    }
    for (int m = 0; m < 3; m++) {
        char key[96];
        snprintf(key, sizeof(key), "start_join_mem.%s.1024mb", methods[m]);
        ratios_of(key, "start_join_mem", methods[m], 1024);
        if (m > 0) {
            snprintf(key, sizeof(key),
                     "start_join_mem.%s.libmp_1024mb_over_1mb", methods[m]);
            ratio(key, get("start_join_mem", methods[m], "libmp", 1024),
                  get("start_join_mem", methods[m], "libmp", 1));
        }
    }
    ratio("start_join_mem.fork.raw_1024mb_over_1mb",
          get("start_join_mem", "fork", "raw", 1024),
          get("start_join_mem", "fork", "raw", 1));
    {
        const char *key;
        json_t *v;
        printf("ratios of medians (range of the per-round ratios):\n");
        json_object_foreach(ratios, key, v) {
            double lo = INFINITY, hi = -INFINITY;
            size_t i;
            json_t *x;
            json_array_foreach(json_object_get(v, "rounds"), i, x) {
                lo = fmin(lo, json_real_value(x));
                hi = fmax(hi, json_real_value(x));
            }
            printf("  %-48s %8.3f  (%.3f-%.3f)\n", key,
                   json_real_value(json_object_get(v, "median")), lo, hi);
        }
    }

    root = json_object();
    results = json_array();
    bench_env_json(root, py_version);
    json_object_set_new(root, "rounds", json_integer(rounds));
    json_object_set_new(root, "scale", json_real(scale));
    for (int i = 0; i < nseries; i++)
        if (table[i].n > 0)
            json_array_append_new(results, series_json(&table[i]));
    json_object_set_new(root, "results", results);
    json_object_set_new(root, "ratios", ratios);
    if (out != NULL) {
        if (json_dump_file(root, out, JSON_INDENT(2)) != 0)
            bench_die("cannot write the --out file");
        printf("wrote %s\n", out);
    }
    json_decref(root);
    for (int i = 0; i < nseries; i++)
        free(table[i].v);
    close(server_sock);
    waitpid(server_pid, NULL, 0);
    return 0;
}
