/*
 * exec.c - one run of one case under one start method (kselftest's
 * __wait_for_test; cases/README.md, "The environment each run gets").
 *
 * The run is a fresh exec of mp-harness ("case-run") in its own process
 * group, with stdin /dev/null, stdout and stderr in files, signals at their
 * defaults, under the case's deadline.  mp-harness is a child subreaper: when
 * the run's main process has ended, whatever it left running comes back to
 * us, is listed as `leftover`, killed and reaped.  Nothing outlives a run.
 *
 * Nothing outlives mp-harness either, even killed with SIGKILL (as a CI
 * timeout does), which no handler sees:
 *   - the run's leader dies with mp-harness (PR_SET_PDEATHSIG);
 *   - a keeper, forked for each run into a process group of its own (a
 *     kill of mp-harness's group misses it), reads a pipe only mp-harness
 *     writes: a byte means the run ended normally; end of file means
 *     mp-harness died, and the keeper kills the run's process group, removes
 *     its scratch directory and exits;
 *   - scratch directories are made under one root per user,
 *     ${TMPDIR:-/tmp}/mp-harness-<uid>/run-XXXXXX, each holding a `lock`
 *     that its mp-harness (and keeper) hold with flock(); every mp-harness
 *     first removes the directories whose lock nobody holds, which catches
 *     what a keeper killed too left, and what a process killed while still
 *     in a system call wrote after the keeper's removal.
 * A PID namespace would make the kernel kill the run's processes, but it
 * needs privileges or user namespaces, and would change what a case sees:
 * its leader would be pid 1, which ignores signals it has no handler for
 * (a case's main process killing itself with SIGTERM would live on), and
 * the pids a run records would not be the pids mp-harness sees.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "runner.h"

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The longest interval handed to setitimer (years; a deadline beyond is
 * as good as none, and the cast to time_t stays defined). */
#define TIMER_MAX 1e9

static void on_alarm(int sig) { (void)sig; }

int exec_poll_ms(double seconds)
{
    if (!(seconds > 0)) /* NaN too */
        return 0;
    if (seconds >= (INT_MAX - 1) / 1000.0)
        return INT_MAX;
    return (int)(seconds * 1000) + 1; /* rounded up: never early */
}

/* Waits for pid until the deadline; 1 and *status, or 0 on timeout. */
static int wait_deadline(pid_t pid, double timeout, int *status)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0), r;

    if (fd >= 0) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        double end = now() + timeout;
        /* A deadline past poll's range (24.8 days) takes several polls. */
        do
            r = poll(&pfd, 1, exec_poll_ms(end - now()));
        while ((r < 0 && errno == EINTR) || (r == 0 && now() < end));
        close(fd);
        if (r == 0)
            return 0;
    } else { /* no pidfds (old kernel, valgrind): a timer interrupts wait */
        struct sigaction sa = { .sa_handler = on_alarm }, old;
        double t = timeout < TIMER_MAX ? timeout : TIMER_MAX;
        struct itimerval it = { { 0, 0 }, { (time_t)t,
            (suseconds_t)((t - (double)(time_t)t) * 1e6) } };
        sigaction(SIGALRM, &sa, &old);
        setitimer(ITIMER_REAL, &it, NULL);
        r = waitpid(pid, status, 0);
        memset(&it, 0, sizeof(it));
        setitimer(ITIMER_REAL, &it, NULL);
        sigaction(SIGALRM, &old, NULL);
        if (r == pid)
            return 1;
        return 0;
    }
    while (waitpid(pid, status, 0) < 0)
        if (errno != EINTR)
            return -errno;
    return 1;
}

static char *slurp_n(const char *file, size_t *size)
{
    FILE *f = fopen(file, "r");
    char *buf = NULL;
    size_t len = 0;

    *size = 0;
    if (f == NULL)
        return strdup("");
    {
        FILE *m = open_memstream(&buf, &len);
        char chunk[4096];
        size_t n;
        while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
            fwrite(chunk, 1, n, m);
        fclose(m);
    }
    fclose(f);
    *size = len;
    return buf;
}

static char *slurp(const char *file)
{
    size_t size;

    return slurp_n(file, &size);
}

/* A child is still running: it exists, is no zombie, and is in the run's
 * process group (so the pid was not reused by a stranger). */
static bool running_in_group(pid_t pid, pid_t pgid)
{
    char file[64], *text, *p, state;
    long grp = -1;
    bool yes = false;

    snprintf(file, sizeof(file), "/proc/%ld/stat", (long)pid);
    text = slurp(file);
    p = strrchr(text, ')'); /* the command may hold spaces and parens */
    if (p != NULL && sscanf(p + 1, " %c %*d %ld", &state, &grp) == 2)
        yes = state != 'Z' && state != 'X' && grp == (long)pgid;
    free(text);
    return yes;
}

static json_t *find_leftover(const char *dir, pid_t pgid)
{
    char sub[4096];
    struct dirent **list;
    json_t *left = json_array();
    int n;

    snprintf(sub, sizeof(sub), "%s/pids", dir);
    n = scandir(sub, &list, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        char file[8192], *text;
        if (list[i]->d_name[0] != '.') {
            snprintf(file, sizeof(file), "%s/%s", sub, list[i]->d_name);
            text = slurp(file);
            if (running_in_group((pid_t)atol(text), pgid))
                json_array_append_new(left, json_string(list[i]->d_name));
            free(text);
        }
        free(list[i]);
    }
    if (n > 0)
        free(list);
    return left; /* sorted: scandir's alphasort */
}

/* Reads out/<path>.jsonl for every process of the run. */
static void collect_outcomes(const char *dir, struct run *r)
{
    char sub[4096];
    struct dirent **list;
    int n;

    r->outcomes = json_object();
    snprintf(sub, sizeof(sub), "%s/out", dir);
    n = scandir(sub, &list, NULL, alphasort);
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        size_t len = strlen(name);
        if (len > 6 && strcmp(name + len - 6, ".jsonl") == 0) {
            char file[8192], *text, *line, *next;
            json_t *arr = json_array();
            snprintf(file, sizeof(file), "%s/%s", sub, name);
            text = slurp(file);
            for (line = text; line != NULL && *line; line = next) {
                json_t *o, *he;
                next = strchr(line, '\n');
                if (next != NULL)
                    *next++ = '\0';
                o = json_loads(line, JSON_ALLOW_NUL, NULL);
                if (o == NULL)
                    continue; /* a line cut short by a kill */
                if ((he = json_object_get(o, "harness_error")) != NULL) {
                    if (r->error == NULL &&
                        asprintf(&r->error, "%.*s: %s", (int)(len - 6), name,
                                 json_string_value(he)) < 0)
                        r->error = NULL;
                    json_decref(o);
                    continue;
                }
                json_array_append_new(arr, o);
            }
            free(text);
            /* A process appears once it has recorded an outcome (a child
             * terminated before its target ran has none). */
            snprintf(file, sizeof(file), "%.*s", (int)(len - 6), name);
            if (json_array_size(arr) > 0 || strcmp(file, "main") == 0)
                json_object_set_new(r->outcomes, file, arr);
            else
                json_decref(arr);
        }
        free(list[i]);
    }
    if (n > 0)
        free(list);
}

/* scratch directories */

#define SCRATCH_MAX 1024 /* a run directory's path, so its files' fit 4096 */

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    remove(path);
    return 0;
}


static bool swept;

/* ${TMPDIR:-/tmp}/mp-harness-<uid>, made if missing; a directory this user
 * owns that nobody else can write, else an error. */
static int scratch_root(char *root, size_t size)
{
    const char *tmp = getenv("TMPDIR");
    struct stat st;

    snprintf(root, size, "%s/mp-harness-%ld",
             tmp != NULL && tmp[0] == '/' ? tmp : "/tmp", (long)getuid());
    if (mkdir(root, 0700) < 0 && errno != EEXIST)
        return -errno;
    if (lstat(root, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() ||
        (st.st_mode & 022) != 0)
        return -EPERM;
    return 0;
}

/* Removes the run directories whose lock nobody holds (their mp-harness
 * and keeper are gone); one without a lock is being made, or was left by a
 * kill between its mkdtemp() and its lock: removed once a minute old. */
static void scratch_sweep(const char *root)
{
    DIR *d = opendir(root);
    struct dirent *e;

    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[SCRATCH_MAX + 256], lock[SCRATCH_MAX + 264];
        struct stat st;
        bool stale;
        int fd;

        if (strncmp(e->d_name, "run-", 4) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
        snprintf(lock, sizeof(lock), "%s/lock", path);
        fd = open(lock, O_RDONLY | O_CLOEXEC);
        if (fd >= 0)
            stale = flock(fd, LOCK_EX | LOCK_NB) == 0;
        else
            stale = errno == ENOENT && lstat(path, &st) == 0 &&
                    st.st_mtime < time(NULL) - 60;
        if (stale)
            nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        if (fd >= 0)
            close(fd);
    }
    if (d != NULL)
        closedir(d);
}

/* Makes dir under the root and locks it: *lock is the descriptor holding
 * the lock. */
static int scratch_make(char dir[SCRATCH_MAX], int *lock)
{
    char root[SCRATCH_MAX - 16], file[SCRATCH_MAX + 8];
    int r;

    if ((r = scratch_root(root, sizeof(root))) < 0)
        return r;
    if (!swept) {
        scratch_sweep(root);
        swept = true;
    }
    snprintf(dir, SCRATCH_MAX, "%s/run-XXXXXX", root);
    if (mkdtemp(dir) == NULL)
        return -errno;
    snprintf(file, sizeof(file), "%s/lock", dir);
    *lock = open(file, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (*lock < 0 || flock(*lock, LOCK_EX) < 0)
        return -errno;
    return 0;
}

/* The keeper: see the top of the file.  Runs in its own process group. */
_Noreturn static void keeper_main(int fd, pid_t pgid, const char *dir)
{
    ssize_t n;
    char c;

    setpgid(0, 0);
    do
        n = read(fd, &c, 1);
    while (n < 0 && errno == EINTR);
    if (n != 1) {
        kill(-pgid, SIGKILL);
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    _exit(0);
}

_Noreturn static void exec_child(const char *self_exe, const struct hcase *c,
                                 const char *method, const char *dir,
                                 pid_t parent)
{
    char file[4096], abs[4096];
    struct rlimit core = { 0, 0 };
    sigset_t none;
    int fd;

    setpgid(0, 0);
    /* Dies with mp-harness, even if that was before the prctl. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
        _exit(127);
    /* Scratch files (core dumps: none) stay in the run's directory. */
    if (realpath(c->file, abs) == NULL)
        _exit(127);
    if (chdir(dir) < 0)
        _exit(127);
    setenv("TMPDIR", dir, 1);
    setrlimit(RLIMIT_CORE, &core);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            signal(sig, SIG_DFL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    fd = open("/dev/null", O_RDONLY);
    dup2(fd, 0);
    snprintf(file, sizeof(file), "%s/stdout", dir);
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 1);
    snprintf(file, sizeof(file), "%s/stderr", dir);
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(fd, 2);
    unsetenv("PYTHONUNBUFFERED");
    execl(self_exe, self_exe, "case-run", abs, method, dir, (char *)NULL);
    _exit(127);
}

int exec_run(const char *self_exe, const struct hcase *c, const char *method,
             struct run *r)
{
    char dir[SCRATCH_MAX], sub[4096];
    size_t nev = json_array_size(c->events), i;
    int *evfd = calloc(nev + 1, sizeof(int)), status = 0, w, lock = -1;
    int keep[2] = { -1, -1 };
    json_t *e;
    double t0;
    pid_t pid, keeper = -1, self = getpid();

    memset(r, 0, sizeof(*r));
    if ((w = scratch_make(dir, &lock)) < 0) {
        if (asprintf(&r->error, "cannot make a scratch directory under "
                     "%s: %s", getenv("TMPDIR") != NULL ? getenv("TMPDIR")
                     : "/tmp", strerror(-w)) < 0)
            r->error = NULL;
        if (lock >= 0)
            close(lock);
        free(evfd);
        return -1;
    }
    for (const char *const *s = (const char *const[]){ "out", "pids", "ev",
                                                       NULL }; *s; s++) {
        snprintf(sub, sizeof(sub), "%s/%s", dir, *s);
        mkdir(sub, 0700);
    }
    /* Every event's FIFO, held open so signals are kept and writers never
     * block or meet EPIPE. */
    json_array_foreach(c->events, i, e) {
        snprintf(sub, sizeof(sub), "%s/ev/%s", dir, json_string_value(e));
        mkfifo(sub, 0600);
        evfd[i] = open(sub, O_RDWR | O_NONBLOCK | O_CLOEXEC);
    }

    fflush(NULL);
    t0 = now();
    pid = fork();
    if (pid < 0) {
        r->error = strdup("fork failed");
        goto out;
    }
    if (pid == 0)
        exec_child(self_exe, c, method, dir, self);
    setpgid(pid, pid);
    if (pipe2(keep, O_CLOEXEC) == 0 && (keeper = fork()) == 0) {
        close(keep[1]);
        keeper_main(keep[0], pid, dir);
    }
    keep[0] = keep[0] >= 0 ? (close(keep[0]), -1) : -1;
    w = wait_deadline(pid, c->timeout, &status);
    if (w == 0) {
        r->timed_out = true;
        killpg(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    r->wall = now() - t0;
    r->exit_code = WIFSIGNALED(status) ? -WTERMSIG(status)
                                       : WEXITSTATUS(status);
    r->leftover = find_leftover(dir, pid);
    /* Now nothing of the run may live on. */
    killpg(pid, SIGKILL);
    while (waitpid(-pid, &status, 0) > 0 || errno == EINTR)
        ;
    while (waitpid(-1, &status, WNOHANG) > 0)
        ;
    collect_outcomes(dir, r);
    r->gathered = compare_gather(c, r->outcomes);
    for (int k = 0; k < 2; k++) {
        char *text;
        size_t size;
        snprintf(sub, sizeof(sub), "%s/%s", dir, k == 0 ? "stdout" : "stderr");
        text = slurp_n(sub, &size);
        r->out[k] = norm_output_n(text, size, c->out_mode[k]);
        free(text);
    }
    if (r->exit_code == 127 && r->error == NULL)
        r->error = strdup("cannot exec the harness for the run");
out:
    if (keep[1] >= 0) { /* the run ended here: the keeper goes quietly */
        if (write(keep[1], "x", 1) != 1)
            keeper = keeper > 0 ? (kill(keeper, SIGKILL), keeper) : keeper;
        close(keep[1]);
    }
    if (keeper > 0)
        while (waitpid(keeper, &status, 0) < 0 && errno == EINTR)
            ;
    for (i = 0; i < nev; i++)
        if (evfd[i] > 0)
            close(evfd[i]);
    free(evfd);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    close(lock);
    return r->error != NULL ? -1 : 0;
}

void run_clear(struct run *r)
{
    free(r->error);
    json_decref(r->outcomes);
    json_decref(r->gathered);
    json_decref(r->leftover);
    json_decref(r->out[0]);
    json_decref(r->out[1]);
    memset(r, 0, sizeof(*r));
}

json_t *run_to_json(const struct run *r)
{
    json_t *outcomes = json_object(), *list, *o;
    const char *path;
    size_t i;

    json_object_foreach(r->outcomes, path, list) {
        json_t *clean = json_array();
        json_array_foreach(list, i, o) {
            json_t *c = json_deep_copy(o);
            json_object_del(c, "t");
            json_array_append_new(clean, c);
        }
        json_object_set_new(outcomes, path, clean);
    }
    o = json_pack("{s:i, s:o}", "exit", r->exit_code, "outcomes", outcomes);
    if (r->gathered != NULL)
        json_object_set(o, "gathered", r->gathered);
    json_object_set_new(o, "leftover", r->leftover ? json_incref(r->leftover)
                                                   : json_array());
    json_object_set_new(o, "stdout", r->out[0] ? json_incref(r->out[0])
                                               : json_null());
    json_object_set_new(o, "stderr", r->out[1] ? json_incref(r->out[1])
                                               : json_null());
    return o;
}
