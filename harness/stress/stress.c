/*
 * stress.c - the stress suite's driver (stress.h): runs every registered
 * part under each of its start methods, each run in a forked process and
 * process group of its own under a deadline, prints a summary line per
 * run, and writes the figures and the host record to a JSON file after
 * every run, so a crash loses nothing.
 *
 *   mp-stress [--short] [--out FILE] [--nproc N] [--list] [PATTERN...]
 *
 * A PATTERN selects the runs whose "part [method]" contains it.  The driver
 * is a child subreaper: whatever a run leaves behind comes back to it, is
 * counted, fails the run ("stray processes") and is killed.  It limits the
 * processes of the whole suite (README.md: "Process limit").  Exits 0 when
 * every run passed, 1 on a failure, 2 on bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "stress.h"
#include "test_hooks.h"

#define MAX_PARTS 64

/* AddressSanitizer's allocator keeps what is freed in quarantine and maps
 * memory of its own as it goes: RSS and mappings say nothing under it. */
#ifdef STRESS_UNDER_ASAN
static const bool judge_memory = false;
#else
static const bool judge_memory = true;
#endif

static const struct stress_part *parts[MAX_PARTS];
static size_t nparts;
static unsigned long long run_seed;
static _Thread_local unsigned long long rand_state;
static pthread_mutex_t fail_lock = PTHREAD_MUTEX_INITIALIZER;

static const char *const method_names[] = { "fork", "spawn", "forkserver" };
/* SIGINT, SIGTERM or SIGHUP to the driver: the run going on is killed with
 * all it started, the process limit undone, then the driver dies of it. */
static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

void stress_register(const struct stress_part *p)
{
    if (nparts == MAX_PARTS) {
        fprintf(stderr, "mp-stress: too many parts\n");
        abort();
    }
    parts[nparts++] = p;
}

long stress_size(const struct stress_run *r, long full, long short_)
{
    return r->full ? full : short_;
}

static void appendf(char *buf, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void appendf(char *buf, size_t size, const char *fmt, ...)
{
    size_t len = strlen(buf);
    va_list ap;

    if (len + 1 >= size)
        return;
    va_start(ap, fmt);
    vsnprintf(buf + len, size - len, fmt, ap);
    va_end(ap);
}

void stress_figure(struct stress_run *r, const char *key, double v,
                   const char *fmt)
{
    json_object_set_new(r->figures, key, json_real(v));
    if (fmt == NULL)
        return;
    if (r->text[0] != '\0')
        appendf(r->text, sizeof(r->text), ", ");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
    appendf(r->text, sizeof(r->text), fmt, v);
#pragma GCC diagnostic pop
}

bool stress_fail(struct stress_run *r, const char *fmt, ...)
{
    va_list ap;

    pthread_mutex_lock(&fail_lock);
    if (!r->failed) {
        va_start(ap, fmt);
        vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
        va_end(ap);
        r->failed = true;
    }
    pthread_mutex_unlock(&fail_lock);
    return false;
}

bool stress_ok_(struct stress_run *r, int err, const char *call,
                const char *file, int line)
{
    if (err >= 0)
        return true;
    return stress_fail(r, "%s:%d: %s: %s (%s)", file, line, call,
                       mp_err_name(err), mp_strerror(err));
}

unsigned long long stress_rand(void)
{
    static unsigned long long threads;
    unsigned long long x = rand_state;

    if (x == 0) /* this thread's first: the run's seed, then others' */
        x = run_seed ^ (__atomic_fetch_add(&threads, 1, __ATOMIC_RELAXED) *
                        0x9e3779b97f4a7c15ull);
    x = x != 0 ? x : 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rand_state = x;
}

unsigned long stress_below(unsigned long n)
{
    return n == 0 ? 0 : (unsigned long)(stress_rand() % n);
}

MP_TARGET(stress_nothing)
{
    return 0;
}

pid_t stress_warm_up(struct stress_run *r)
{
    mp_process *p = NULL;
    int code = -1;

    if (r->method == NULL)
        return 0;
    if (STRESS_OK(r, mp_process_create(&p, &stress_nothing_target, NULL, 0,
                                       NULL)) &&
        STRESS_OK(r, mp_process_start(p)) &&
        STRESS_OK(r, mp_process_join(p, 30)) &&
        (mp_process_exitcode(p, &code) != 1 || code != 0))
        stress_fail(r, "a process that does nothing: exit code %d", code);
    mp_process_free(p);
    return strcmp(r->method, "forkserver") == 0 ? mp__forkserver_pid() : 0;
}

/* resources */

static long count_lines(const char *path)
{
    char buf[65536];
    long n = 0;
    ssize_t k;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return -1;
    while ((k = read(fd, buf, sizeof(buf))) != 0) {
        if (k < 0 && errno == EINTR)
            continue;
        if (k < 0) {
            n = -1;
            break;
        }
        for (ssize_t i = 0; i < k; i++)
            n += buf[i] == '\n';
    }
    close(fd);
    return n;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;

    return (x > y) - (x < y);
}

static void fd_target(char *buf, size_t size, int fd)
{
    char path[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, buf, size - 1);
    buf[n > 0 ? n : 0] = '\0';
}

static int cmp_kind(const void *a, const void *b)
{
    return strcmp(a, b);
}

void stress_snap(struct stress_snap *s)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    long pages = 0, resident = 0;
    FILE *f;
    int self = d != NULL ? dirfd(d) : -1;

    memset(s, 0, sizeof(*s));
    while (d != NULL && (e = readdir(d)) != NULL) {
        char *end;
        long fd = strtol(e->d_name, &end, 10);

        if (e->d_name[0] == '.' || *end != '\0' || fd == self)
            continue;
        if (s->nfds < STRESS_SNAP_FDS)
            s->fds[s->nfds] = (int)fd;
        s->nfds++;
    }
    if (d != NULL)
        closedir(d);
    qsort(s->fds, (size_t)(s->nfds < STRESS_SNAP_FDS ? s->nfds
                                                      : STRESS_SNAP_FDS),
          sizeof(int), cmp_int);
    for (int i = 0; i < s->nfds && i < STRESS_SNAP_FDS; i++) {
        char *k = s->kinds[i];
        size_t len;

        fd_target(k, sizeof(s->kinds[i]), s->fds[i]);
        len = strncmp(k, "socket:", 7) == 0 || strncmp(k, "pipe:", 5) == 0
                  ? strcspn(k, ":") : strlen(k);
        memset(k + len, 0, sizeof(s->kinds[i]) - len); /* memcmp'd whole */
    }
    qsort(s->kinds, (size_t)(s->nfds < STRESS_SNAP_FDS ? s->nfds
                                                        : STRESS_SNAP_FDS),
          sizeof(s->kinds[0]), cmp_kind);
    s->maps = count_lines("/proc/self/maps");
    if ((f = fopen("/proc/self/statm", "re")) != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    s->rss_kib = resident * (sysconf(_SC_PAGESIZE) / 1024);
}

size_t stress_children(pid_t *pids, size_t n)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    size_t count = 0;

    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[64];
        long pid;
        FILE *f;

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%.20s/children",
                 e->d_name);
        if ((f = fopen(path, "re")) == NULL)
            continue;
        while (fscanf(f, "%ld", &pid) == 1) {
            if (count < n)
                pids[count] = (pid_t)pid;
            count++;
        }
        fclose(f);
    }
    if (d != NULL)
        closedir(d);
    return count;
}

pid_t stress_zombie(void)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0)
        return 0;
    return si.si_pid;
}

static void fd_list(char *buf, size_t size, const struct stress_snap *a,
                    const struct stress_snap *b)
{
    /* what a has and b has not (both ascending) */
    int na = a->nfds < STRESS_SNAP_FDS ? a->nfds : STRESS_SNAP_FDS;
    int nb = b->nfds < STRESS_SNAP_FDS ? b->nfds : STRESS_SNAP_FDS;

    buf[0] = '\0';
    for (int i = 0, j = 0; i < na; i++) {
        while (j < nb && b->fds[j] < a->fds[i])
            j++;
        if (j < nb && b->fds[j] == a->fds[i])
            continue;
        appendf(buf, size, "%s%d", buf[0] != '\0' ? " " : "", a->fds[i]);
    }
}

void stress_check(struct stress_run *r, const struct stress_snap *before,
                  long rss_slack_kib, const pid_t *allowed, size_t nallowed)
{
    stress_check_how(r, before, rss_slack_kib, allowed, nallowed, 0);
}

void stress_check_how(struct stress_run *r, const struct stress_snap *before,
                      long rss_slack_kib, const pid_t *allowed,
                      size_t nallowed, unsigned how)
{
    struct stress_snap now;
    pid_t kids[16], z;
    size_t nk;

    stress_snap(&now);
    stress_figure(r, "fds_before", before->nfds, NULL);
    stress_figure(r, "fds_after", now.nfds, "fds %.0f");
    stress_figure(r, "maps_before", (double)before->maps, NULL);
    stress_figure(r, "maps_after", (double)now.maps, "maps %.0f");
    stress_figure(r, "rss_before_kib", (double)before->rss_kib, NULL);
    stress_figure(r, "rss_growth_kib", (double)(now.rss_kib - before->rss_kib),
                  "RSS %+.0f KiB");
    if (now.nfds != before->nfds ||
        memcmp((how & STRESS_RENUMBERED) ? (void *)now.kinds : now.fds,
               (how & STRESS_RENUMBERED) ? (const void *)before->kinds
                                         : before->fds,
               (how & STRESS_RENUMBERED) ? sizeof(now.kinds)
                                         : sizeof(now.fds)) != 0) {
        char more[256], fewer[128], what[256] = "";

        fd_list(more, sizeof(more), &now, before);
        fd_list(fewer, sizeof(fewer), before, &now);
        if (more[0] != '\0')
            fd_target(what, sizeof(what), atoi(more));
        stress_fail(r, "descriptors: %d at the start, %d now (new: %s%s%s%s; "
                    "gone: %s)", before->nfds, now.nfds,
                    more[0] ? more : "none", what[0] ? " (first: " : "",
                    what, what[0] ? ")" : "", fewer[0] ? fewer : "none");
    }
    if (judge_memory && now.maps != before->maps)
        stress_fail(r, "mappings: %ld lines of /proc/self/maps at the start, "
                    "%ld now", before->maps, now.maps);
    if (judge_memory && now.rss_kib - before->rss_kib > rss_slack_kib)
        stress_fail(r, "RSS grew by %ld KiB (%ld -> %ld), more than the %ld "
                    "KiB allowed", now.rss_kib - before->rss_kib,
                    before->rss_kib, now.rss_kib, rss_slack_kib);
    if ((z = stress_zombie()) != 0)
        stress_fail(r, "an unreaped child: pid %d", (int)z);
    nk = stress_children(kids, 16);
    for (size_t i = 0; i < nk && i < 16; i++) {
        bool ok = false;

        for (size_t j = 0; j < nallowed; j++)
            ok = ok || kids[i] == allowed[j];
        if (!ok)
            stress_fail(r, "%zu children left (pid %d among them)", nk,
                        (int)kids[i]);
    }
}

/* the driver */

struct options {
    bool full, list;
    const char *out;
    long nproc;
    char **patterns;
    int npatterns;
};

static int cmp_part(const void *a, const void *b)
{
    const struct stress_part *x = *(const struct stress_part *const *)a;
    const struct stress_part *y = *(const struct stress_part *const *)b;

    if (x->order != y->order)
        return (x->order > y->order) - (x->order < y->order);
    return strcmp(x->name, y->name);
}

static bool selected(const struct options *o, const char *label)
{
    if (o->npatterns == 0)
        return true;
    for (int i = 0; i < o->npatterns; i++)
        if (strstr(label, o->patterns[i]) != NULL)
            return true;
    return false;
}

static void write_all(int fd, const char *s)
{
    size_t len = strlen(s);

    while (len > 0) {
        ssize_t n = write(fd, s, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        s += n, len -= (size_t)n;
    }
}

/* In the run's own process: the part, then its report down the pipe.  It
 * leaves by exit(), so libmp's teardown (joining children, stopping the
 * fork server) is part of what the driver checks. */
static _Noreturn void run_child(const struct stress_part *p,
                                const char *method, bool full, int fd,
                                unsigned long long seed)
{
    struct stress_run r = { .part = p->name, .method = method, .full = full };
    json_t *rep;
    char *text;

    setpgid(0, 0);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    /* a driver killed outright (SIGKILL) takes the run with it */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    run_seed = seed;
    r.figures = json_object();
    if (method != NULL) {
        int e = mp_get_context(&r.ctx, method);

        if (e < 0 || (e = mp_set_start_method(method, 1)) < 0)
            stress_fail(&r, "start method %s: %s", method, mp_strerror(e));
    }
    if (!r.failed)
        p->run(&r);
    rep = json_pack("{s:b, s:s, s:s, s:O}", "ok", !r.failed, "reason",
                    r.reason, "text", r.text, "figures", r.figures);
    text = rep != NULL ? json_dumps(rep, JSON_COMPACT) : NULL;
    if (text != NULL)
        write_all(fd, text);
    close(fd);
    json_decref(rep);
    json_decref(r.figures);
    free(text);
    exit(rep != NULL ? 0 : 3);
}

/* Kills and reaps every child of the driver, and theirs as they come back
 * to it; returns how many there were. */
/* "pid (comm) state, process group g", from /proc/<pid>/stat. */
static void describe(pid_t pid, char *buf, size_t size)
{
    char path[64], stat[256] = "";
    int pgrp = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "re")) != NULL) {
        if (fgets(stat, sizeof(stat), f) == NULL)
            stat[0] = '\0';
        fclose(f);
    }
    {
        char *close_paren = strrchr(stat, ')');
        char state = '?';

        if (close_paren != NULL) {
            sscanf(close_paren + 1, " %c %*d %d", &state, &pgrp);
            close_paren[1] = '\0';
        }
        snprintf(buf, size, "%s %c, process group %d", stat[0] ? stat : "?",
                 state, pgrp);
    }
}

static size_t sweep(char *first, size_t size)
{
    size_t total = 0;
    pid_t kids[64];
    size_t n;

    while ((n = stress_children(kids, 64)) > 0) {
        for (size_t i = 0; i < n && i < 64; i++) {
            if (total == 0 && first != NULL)
                describe(kids[i], first, size);
            kill(kids[i], SIGKILL);
            total++;
        }
        while (waitpid(-1, NULL, __WALL) > 0 || errno == EINTR)
            ;
    }
    return total;
}

static const char *status_text(int status, char *buf, size_t size)
{
    if (WIFSIGNALED(status))
        snprintf(buf, size, "killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
    return buf;
}

/* Runs one part under one method in a forked process; returns its record
 * for the JSON file, and prints its line. */
static json_t *run_one(const struct stress_part *p, const char *method,
                       bool full)
{
    double timeout = full ? p->timeout_full : p->timeout_short;
    double t0 = bench_now(), deadline = t0 + timeout;
    char *buf = NULL, why[400] = "";
    size_t len = 0, cap = 0;
    unsigned long long seed;
    json_t *rep = NULL, *rec;
    bool timed_out = false, ok;
    int fds[2], status = 0, pidfd;
    char stray[300] = "";
    pid_t pid;
    size_t strays;
    const char *env = getenv("STRESS_SEED");

    seed = env != NULL ? strtoull(env, NULL, 0)
                       : ((unsigned long long)time(NULL) << 20) ^
                             (unsigned long long)getpid() ^
                             (unsigned long long)(t0 * 1e9);
    seed = seed != 0 ? seed : 1;
    if (pipe2(fds, O_CLOEXEC) < 0)
        bench_die("pipe failed");
    fflush(NULL);
    if ((pid = fork()) < 0)
        bench_die("fork failed");
    if (pid == 0) {
        close(fds[0]);
        run_child(p, method, full, fds[1], seed);
    }
    setpgid(pid, pid);
    close(fds[1]);
    for (;;) {
        struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
        double left = deadline - bench_now();
        ssize_t n;

        if (left <= 0 || stop_signal) {
            timed_out = true;
            break;
        }
        if (poll(&pfd, 1, (int)(left * 1000) + 1) <= 0)
            continue;
        if (cap - len < 4096 && (buf = realloc(buf, cap += 65536)) == NULL)
            bench_die("out of memory");
        n = read(fds[0], buf + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fds[0]);
    /* the run's exit (libmp's teardown) is under the same deadline */
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    for (;;) {
        struct pollfd pfd = { .fd = pidfd, .events = POLLIN };
        pid_t w = waitpid(pid, &status, WNOHANG);
        double left = deadline - bench_now();

        if (w == pid)
            break;
        if (w < 0 && errno != EINTR)
            break;
        if (timed_out || left <= 0 || stop_signal) {
            timed_out = true;
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        if (pidfd >= 0)
            poll(&pfd, 1, (int)(left * 1000) + 1);
        else /* no pidfds (Linux < 5.3): no event but SIGCHLD */
            usleep(2000);
    }
    if (pidfd >= 0)
        close(pidfd);
    if (buf != NULL) {
        buf[len] = '\0';
        rep = json_loads(buf, 0, NULL);
    }
    free(buf);
    strays = sweep(stray, sizeof(stray));

    ok = rep != NULL && json_is_true(json_object_get(rep, "ok")) &&
         !timed_out && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
         strays == 0;
    if (timed_out && stop_signal)
        snprintf(why, sizeof(why), "stopped by signal %d", (int)stop_signal);
    else if (timed_out)
        snprintf(why, sizeof(why), "timed out after %.0f s", timeout);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        status_text(status, why, sizeof(why));
    else if (rep == NULL)
        snprintf(why, sizeof(why), "no report from the run");
    else if (strays > 0)
        snprintf(why, sizeof(why), "%zu stray processes left behind (the "
                 "first: %s)", strays, stray);
    if (rep == NULL)
        rep = json_pack("{s:s, s:s, s:{}}", "reason", "", "text", "",
                        "figures");
    if (why[0] != '\0') {
        const char *prev = json_string_value(json_object_get(rep, "reason"));
        char both[800];

        snprintf(both, sizeof(both), "%s%s%s", why,
                 prev != NULL && prev[0] ? "; " : "", prev ? prev : "");
        json_object_set_new(rep, "reason", json_string(both));
    }
    printf("stress: %s%s%s%s: %s%s%.1f s ... %s%s\n", p->name,
           method ? " [" : "", method ? method : "", method ? "]" : "",
           json_string_value(json_object_get(rep, "text")),
           json_string_length(json_object_get(rep, "text")) ? ", " : "",
           bench_now() - t0, ok ? "ok" : "FAIL: ",
           ok ? "" : json_string_value(json_object_get(rep, "reason")));
    fflush(stdout);
    rec = json_pack("{s:s, s:s?, s:s, s:s, s:s, s:f, s:f, s:I, s:O}",
                    "part", p->name, "method", method, "status",
                    ok ? "ok" : "fail", "reason",
                    json_string_value(json_object_get(rep, "reason")),
                    "summary", json_string_value(json_object_get(rep, "text")),
                    "seconds", bench_now() - t0, "timeout", timeout, "seed",
                    (json_int_t)seed, "figures",
                    json_object_get(rep, "figures"));
    json_decref(rep);
    return rec;
}

static void save(const char *path, json_t *root)
{
    char tmp[4096];

    if (path == NULL)
        return;
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (json_dump_file(root, tmp, JSON_INDENT(1)) < 0 || rename(tmp, path) < 0)
        fprintf(stderr, "mp-stress: cannot write %s\n", path);
}

static void usage(void)
{
    fprintf(stderr, "usage: mp-stress [--short] [--out FILE] [--nproc N] "
            "[--list] [PATTERN...]\n");
    exit(2);
}

static void parse(int argc, char **argv, struct options *o)
{
    o->full = true, o->list = false, o->out = NULL, o->nproc = 1024;
    o->patterns = calloc((size_t)argc, sizeof(char *));
    o->npatterns = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--short") == 0)
            o->full = false;
        else if (strcmp(a, "--list") == 0)
            o->list = true;
        else if (strcmp(a, "--out") == 0 && i + 1 < argc)
            o->out = argv[++i];
        else if (strcmp(a, "--nproc") == 0 && i + 1 < argc)
            o->nproc = atol(argv[++i]);
        else if (a[0] == '-')
            usage();
        else
            o->patterns[o->npatterns++] = argv[i];
    }
    if (o->nproc < 64)
        usage();
}

int main(int argc, char **argv)
{
    struct options o;
    json_t *root, *results;
    char limit[256];
    int failed = 0, total = 0;
    double t0;

    mp_main(argc, argv);
    bench_prog = "mp-stress";
    parse(argc, argv, &o);
    qsort(parts, nparts, sizeof(parts[0]), cmp_part);
    if (o.list) {
        for (size_t i = 0; i < nparts; i++)
            printf("%-18s %s\n", parts[i]->name, parts[i]->about);
        return 0;
    }
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGINT, &(struct sigaction){ .sa_handler = on_stop }, NULL);
    sigaction(SIGTERM, &(struct sigaction){ .sa_handler = on_stop }, NULL);
    sigaction(SIGHUP, &(struct sigaction){ .sa_handler = on_stop }, NULL);
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0)
        bench_die("PR_SET_CHILD_SUBREAPER failed");
    stress_limit_procs(o.nproc, limit, sizeof(limit));
    printf("stress: %s run, %s\n", o.full ? "full" : "short", limit);
    fflush(stdout);

    root = json_object();
    bench_host_json(root);
    json_object_set_new(root, "run", json_string(o.full ? "full" : "short"));
    json_object_set_new(root, "process_limit", json_string(limit));
    results = json_array();
    json_object_set_new(root, "results", results);
    t0 = bench_now();
    for (size_t i = 0; i < nparts; i++) {
        const struct stress_part *p = parts[i];

        for (int m = -1; m < 3; m++) {
            const char *method = m < 0 ? NULL : method_names[m];
            char label[128];
            json_t *rec;

            if ((m < 0) != (p->methods == 0) ||
                (m >= 0 && !(p->methods & (1u << m))))
                continue;
            snprintf(label, sizeof(label), "%s [%s]", p->name,
                     method ? method : "");
            if (!selected(&o, label))
                continue;
            rec = run_one(p, method, o.full);
            failed += strcmp(json_string_value(json_object_get(rec, "status")),
                             "ok") != 0;
            total++;
            json_array_append_new(results, rec);
            json_object_set_new(root, "seconds",
                                json_real(bench_now() - t0));
            save(o.out, root);
            if (stop_signal) {
                stress_unlimit_procs();
                signal(stop_signal, SIG_DFL);
                raise(stop_signal);
            }
        }
    }
    json_object_set_new(root, "summary", json_pack("{s:i, s:i}", "ok",
                                                   total - failed, "fail",
                                                   failed));
    save(o.out, root);
    printf("stress: %d runs, %d ok, %d failed, %.0f s%s%s\n", total,
           total - failed, failed, bench_now() - t0,
           o.out ? "; figures in " : "", o.out ? o.out : "");
    stress_unlimit_procs();
    json_decref(root);
    free(o.patterns);
    return failed > 0 || total == 0;
}
