/*
 * spawn.c - the "spawn" start method and what it shares with forkserver
 * (CPython: popen_spawn_posix.py, spawn.py).
 *
 * A spawned child is a fresh run of this very program (/proc/self/exe), made
 * with posix_spawn (vfork speed, whatever the parent's size).  It inherits
 * stdin, stdout, stderr and the descriptors libmp places at 3, 4, ...:
 *   3  a socket: the parent sends the blob that describes the process
 *      (target name, argument bytes, name, identity, daemon flag, parent),
 *      the child answers one byte once it has it;
 *   4  the parent's sentinel, for parent_process() (a pidfd of the parent, or
 *      the read end of a pipe whose write end the parent holds);
 *   5  (no pidfds only) the write end of the child's own sentinel pipe.
 * The program must call mp_main() first thing in main(); start() waits for
 * the child's answer, so a program that does not is a clear error from
 * start() (MP_ENOMPMAIN), never a silent wrong child.  Such a child runs
 * main() once, as CPython re-runs a main module that lacks the
 * `if __name__ == '__main__'` guard, and cannot multiply: a constructor
 * recognises a libmp child from its arguments before main() runs, and every
 * spawn or forkserver start() it (or a fork child of it) attempts fails with
 * CPython's bootstrapping RuntimeError (MP_EBOOTSTRAP).  Until it answers,
 * the child is in a process group of its own, so a parent that gives up on
 * it kills whatever it started too, and it dies with the parent's starting
 * thread (PR_SET_PDEATHSIG).  It answers only a parent with its own
 * credentials (SO_PEERCRED on descriptor 3), so a setuid or setgid program
 * cannot be made to run a target for a less privileged caller.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

#define BLOB_MAGIC 0x33504d4cu /* "LMP3" */

extern char **environ;

/* the blob */

int mp__blob_build(const mp_process *p, char **out, size_t *len)
{
    struct mp__out b = { 0 };
    const char *target = p->fn != NULL ? p->target_name : "";

    mp__put_u64(&b, BLOB_MAGIC);
    mp__put_str(&b, p->method, strlen(p->method));
    mp__put_str(&b, p->type_name, strlen(p->type_name));
    mp__put_str(&b, target, strlen(target));
    mp__put_str(&b, p->arg, p->arg_len);
    mp__put_str(&b, p->name, strlen(p->name));
    mp__put_u64(&b, p->identity_len);
    for (size_t i = 0; i < p->identity_len; i++)
        mp__put_u64(&b, p->identity[i]);
    mp__put_u64(&b, (uint64_t)(int64_t)p->daemon);
    mp__put_u64(&b, (uint64_t)p->parent_pid);
    mp__put_str(&b, p->parent_name, strlen(p->parent_name));
    mp__put_u64(&b, (uint64_t)(p->daemon ? mp__daemon_death_signal() : 0));
    mp__put_u64(&b, mp__use_pidfd() ? 0 : 1); /* fd 5 is our sentinel's end */
    {   /* the parent's directory (a forkserver child moves there) */
        char cwd[4096];
        const char *d = getcwd(cwd, sizeof(cwd)) != NULL ? cwd : "";
        mp__put_str(&b, d, strlen(d));
    }
    mp__put_u64(&b, p->nconns); /* the connections, right after those */
    for (size_t i = 0; i < p->nconns; i++)
        mp__put_u64(&b, mp__conn_flags(p->conns[i]) |
                        (uint64_t)p->conn_use[i] << 8);
    mp__put_str(&b, p->targs != NULL ? p->targs : "", p->targs_len);
    /* The environment option: its mode, then 0 (none given) or 1 + the
     * number of entries, each a string. */
    mp__put_u64(&b, (uint64_t)p->env_mode);
    mp__put_u64(&b, p->env != NULL ? p->nenv + 1 : 0);
    for (size_t i = 0; p->env != NULL && i < p->nenv; i++)
        mp__put_str(&b, p->env[i], strlen(p->env[i]));
    if (b.failed) {
        free(b.p);
        return -ENOMEM;
    }
    *out = b.p;
    *len = b.len;
    return 0;
}

/* Fields the child needs beyond the process object. */
struct blob_extra {
    int deathsig;
    bool sentinel_fd;
    size_t nconns;
    unsigned flags[MP__MAX_CONNS];
    unsigned char use[MP__MAX_CONNS];
};

/* The environment option, as mp__blob_build() put it: every count is
 * checked against what is left, every entry is a name without a NUL. */
static void get_env(struct mp__in *r, mp_process *p)
{
    uint64_t mode = mp__get_u64(r), n = mp__get_u64(r);

    if (r->failed || mode > MP_ENV_REPLACE ||
        n > r->left / sizeof(uint64_t) + 1) {
        r->failed = true;
        return;
    }
    p->env_mode = (int)mode;
    if (n == 0)
        return;
    if ((p->env = calloc((size_t)n, sizeof(*p->env))) == NULL) {
        r->failed = true;
        return;
    }
    for (; !r->failed && p->nenv < n - 1; p->nenv++) {
        size_t len = 0;
        char *e = mp__get_str(r, SIZE_MAX, &len);
        p->env[p->nenv] = e;
        if (e == NULL || len == 0 || e[0] == '=' || strlen(e) != len)
            r->failed = true;
    }
}

static int blob_parse(const char *buf, size_t len, mp_process **out,
                      struct blob_extra *x)
{
    struct mp__in r = { buf, len, false };
    mp_process *p = mp__process_alloc();
    char *method, *type, *target;
    int err = -EPROTO;

    if (p == NULL)
        return -ENOMEM;
    if (mp__get_u64(&r) != BLOB_MAGIC)
        goto fail;
    method = mp__get_str(&r, SIZE_MAX, NULL);
    type = mp__get_str(&r, SIZE_MAX, NULL);
    target = mp__get_str(&r, SIZE_MAX, NULL);
    p->arg = mp__get_str(&r, SIZE_MAX, &p->arg_len);
    p->name = p->name_buf = mp__get_str(&r, SIZE_MAX, NULL);
    p->identity_len = (size_t)mp__get_u64(&r);
    if (!r.failed && p->identity_len <= 1024 &&
        (p->identity = calloc(p->identity_len + 1, sizeof(unsigned))) != NULL)
        for (size_t i = 0; i < p->identity_len; i++)
            p->identity[i] = (unsigned)mp__get_u64(&r);
    else
        r.failed = true;
    p->daemon = (int)(int64_t)mp__get_u64(&r);
    p->parent_pid = (pid_t)mp__get_u64(&r);
    p->parent_name = mp__get_str(&r, SIZE_MAX, NULL);
    x->deathsig = (int)mp__get_u64(&r);
    x->sentinel_fd = mp__get_u64(&r) != 0;
    p->cwd = mp__get_str(&r, SIZE_MAX, NULL);
    if (p->cwd != NULL && p->cwd[0] == '\0') {
        free(p->cwd);
        p->cwd = NULL;
    }
    x->nconns = (size_t)mp__get_u64(&r);
    if (x->nconns > MP__MAX_CONNS)
        r.failed = true;
    for (size_t i = 0; !r.failed && i < x->nconns; i++) {
        uint64_t v = mp__get_u64(&r);
        x->flags[i] = (unsigned)(v & 0xff);
        x->use[i] = (unsigned char)(v >> 8);
        if (v >> 16 != 0)
            r.failed = true;
    }
    p->targs = mp__get_str(&r, SIZE_MAX, &p->targs_len);
    get_env(&r, p);
    if (r.failed || method == NULL || type == NULL || target == NULL) {
        free(method);
        free(type);
        free(target);
        goto fail;
    }
    /* The names the contexts use are static strings: keep theirs. */
    p->method = strcmp(method, "spawn") == 0        ? "spawn"
                : strcmp(method, "forkserver") == 0 ? "forkserver"
                                                    : "fork";
    p->type_name = strcmp(type, "SpawnProcess") == 0        ? "SpawnProcess"
                   : strcmp(type, "ForkServerProcess") == 0 ? "ForkServerProcess"
                   : strcmp(type, "ForkProcess") == 0       ? "ForkProcess"
                                                            : "Process";
    free(method);
    free(type);
    if (target[0] != '\0') {
        p->fn = mp_target_lookup(target);
        if (p->fn == NULL) {
            free(target);
            err = MP_ENOTARGET;
            goto fail;
        }
        snprintf(p->target_name, sizeof(p->target_name), "%s", target);
    }
    free(target);
    *out = p;
    return 0;
fail:
    mp_process_free(p);
    return err;
}

/* Wraps the descriptors the child got for its connections. */
static int wrap_conns(mp_process *p, const struct blob_extra *x,
                      const int *fds)
{
    if (x->nconns == 0)
        return 0;
    if ((p->conns = calloc(x->nconns, sizeof(*p->conns))) == NULL ||
        (p->conn_use = malloc(x->nconns)) == NULL)
        return -ENOMEM;
    memcpy(p->conn_use, x->use, x->nconns);
    for (size_t i = 0; i < x->nconns; i++) {
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
        p->conns[i] = mp__conn_wrap(fds[i], x->flags[i]);
        if (p->conns[i] == NULL)
            return -ENOMEM;
        p->nconns++;
    }
    return 0;
}

int mp__blob_child(const char *buf, size_t len, mp_process **out,
                   const int *conn_fds, size_t nfds)
{
    struct blob_extra x;
    int r = blob_parse(buf, len, out, &x);

    if (r == 0 && x.nconns > nfds)
        r = -EPROTO;
    if (r == 0)
        r = wrap_conns(*out, &x, conn_fds);
    return r;
}

int mp__blob_send(int fd, const char *buf, size_t len, double deadline)
{
    uint64_t n = len;
    const char *parts[2] = { (const char *)&n, buf };
    size_t sizes[2] = { sizeof(n), len };

    for (int i = 0; i < 2; i++) {
        size_t done = 0;
        while (done < sizes[i]) {
            ssize_t w = send(fd, parts[i] + done, sizes[i] - done,
                             MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) {
                done += (size_t)w;
            } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
                struct pollfd pfd = { .fd = fd, .events = POLLOUT };
                double left = deadline - mp__now();
                if (left <= 0)
                    return MP_ENOMPMAIN; /* the child does not read */
                poll(&pfd, 1, mp__ms_ceil(left));
            } else {
                return w < 0 && errno != EPIPE && errno != ECONNRESET
                           ? -errno : MP_ENOMPMAIN;
            }
        }
    }
    return 0;
}

static int read_full(int fd, void *buf, size_t n)
{
    size_t done = 0;

    while (done < n) {
        ssize_t r = read(fd, (char *)buf + done, n - done);
        if (r > 0)
            done += (size_t)r;
        else if (r == 0)
            return -EPIPE;
        else if (errno != EINTR)
            return -errno;
    }
    return 0;
}

/* The blob grows with the bytes that arrive (from 64 KiB, doubling),
 * never ahead of them: its length costs memory only once the bytes are
 * here. */
int mp__blob_recv(int fd, char **buf, size_t *len)
{
    uint64_t n;
    size_t have = 0, cap;
    char *b, *grown;
    int r;

    *buf = NULL;
    if ((r = read_full(fd, &n, sizeof(n))) < 0)
        return r;
    if (n > ((uint64_t)1 << 40))
        return -ENOMEM;
    cap = n < 65536 ? (size_t)n : 65536;
    if ((b = malloc(cap + 1)) == NULL)
        return -ENOMEM;
    for (;;) {
        if ((r = read_full(fd, b + have, cap - have)) < 0) {
            free(b);
            return r;
        }
        have = cap;
        if (have == n)
            break;
        cap = n - have > cap ? 2 * cap : (size_t)n;
        if ((grown = realloc(b, cap + 1)) == NULL) {
            free(b);
            return -ENOMEM;
        }
        b = grown;
    }
    *buf = b;
    *len = have;
    return 0;
}

/* bootstrapping */

/* This process is a libmp child (spawned, or the fork server) that has not
 * reached mp_main(), or a fork child of one.  mp_main() never returns in a
 * libmp child, so nothing clears it. */
static bool bootstrapping;

static bool is_child_mode(const char *arg)
{
    return strcmp(arg, MP__SPAWN_MODE) == 0 ||
           strcmp(arg, MP__FORKSERVER_MODE) == 0;
}

/* argv[2] is the pid of the parent that spawned us: a parent that is gone
 * already (PR_SET_PDEATHSIG came too late) has nobody to answer. */
static void bootstrap_begin(const char *mode, const char *ppid)
{
    if (!is_child_mode(mode))
        return;
    bootstrapping = true;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (ppid != NULL && getppid() != (pid_t)atol(ppid))
        _exit(1);
}

#ifdef __GLIBC__
/* glibc passes main()'s arguments to ELF constructors. */
/* Priority 101: before the program's own constructors and C++ static
 * initialisers, which may start processes too. */
__attribute__((constructor(101))) static void detect_child(int argc,
                                                           char **argv,
                                                           char **envp)
{
    (void)envp;
    if (argc >= 2 && argv != NULL && argv[1] != NULL)
        bootstrap_begin(argv[1], argc >= 3 ? argv[2] : NULL);
}
#else
__attribute__((constructor(101))) static void detect_child(void)
{
    char buf[512];
    ssize_t n;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n > 0) {
        const char *mode, *ppid, *end;
        buf[n] = '\0';
        end = memchr(buf, '\0', (size_t)n);
        mode = end != NULL ? end + 1 : buf + n;
        if (mode < buf + n) {
            ppid = mode + strlen(mode) + 1;
            bootstrap_begin(mode, ppid < buf + n ? ppid : NULL);
        }
    }
}
#endif

bool mp__bootstrapping(void) { return bootstrapping; }

/* A libmp child reads nothing from descriptor 3 until it knows that
 * whoever made it has its own credentials: a setuid or setgid program run
 * by someone else, with a socket of theirs at 3, would otherwise run the
 * target they name with the argument they choose. */
static void check_parent(int sock)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);

    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 ||
        uc.pid != getppid() || uc.uid != geteuid() || uc.gid != getegid()) {
        fprintf(stderr, "libmp: refusing to run as a child: descriptor 3 "
                        "does not come from a parent with this process's "
                        "credentials\n");
        _exit(1);
    }
}

/* Before it answers, a child rejoins its parent's process group and stops
 * dying with the parent's thread (its daemon death signal, if any, is set
 * again by the caller). */
static void bootstrap_end(void)
{
    setpgid(0, getpgid(getppid()));
    prctl(PR_SET_PDEATHSIG, 0);
    bootstrapping = false; /* mp_main() has taken over */
}

void mp__bootstrap_end(int sock)
{
    check_parent(sock);
    bootstrap_end();
}

/* Kills a child that did not answer, and everything it started (its own
 * process group until it answers), then reaps it. */
void mp__launch_kill(pid_t pid, int pidfd)
{
    siginfo_t si = { 0 };

    /* Its group is its pid's only while the pid is not free: not after
     * someone else reaped it (SIGCHLD ignored, a waitpid(-1) of the
     * program's). */
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0)
        kill(-pid, SIGKILL);
    if (pidfd >= 0)
        mp__pidfd_send_signal(pidfd, SIGKILL);
    else
        kill(pid, SIGKILL); /* unreaped: still ours */
    while (waitid(P_PID, (id_t)pid, &si, WEXITED) < 0 && errno == EINTR)
        ;
}

static char exe_path[4096] = "/proc/self/exe";

/* The program to run again: /proc/self/exe, which still names our program
 * if its file is replaced or deleted.  Under an emulator that intercepts
 * readlink() (valgrind), /proc/self/exe is the emulator itself: then the
 * path readlink() gives is the program. */
static void find_exe(void)
{
    char path[sizeof(exe_path)];
    struct stat a, b;
    ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);

    if (n <= 0)
        return;
    path[n] = '\0';
    if (stat("/proc/self/exe", &a) == 0 && stat(path, &b) == 0 &&
        (a.st_dev != b.st_dev || a.st_ino != b.st_ino))
        memcpy(exe_path, path, (size_t)n + 1);
}

const char *mp__self_exe(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, find_exe);
    return exe_path;
}

int mp__spawn_self(const char *mode, const int *fds, int nfds, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    char ppid[24];
    char *argv[] = { program_invocation_name, (char *)mode, ppid, NULL };
    int moved[64], r, i;

    if (nfds > 64)
        return MP_EINVAL;
    /* Out of the way of 3..3+nfds first, so no dup2 clobbers a source;
     * listed as options.c lists the child's streams, or a fork() of
     * another thread before they are closed would hold them (a capture
     * pipe's write end: no EOF while that fork child lives). */
    for (i = 0; i < nfds; i++)
        if ((moved[i] = mp__options_dup(fds[i], 3 + nfds)) < 0) {
            r = moved[i];
            while (i-- > 0)
                mp__options_drop(moved[i]);
            return r;
        }
    /* Each action is memory the C library allocates (ENOMEM): one left
     * out would start a child without its descriptors, which could only
     * say that it never reached mp_main(). */
    r = posix_spawn_file_actions_init(&fa);
    if (r != 0) {
        r = -r;
        goto drop;
    }
    for (i = 0; r == 0 && i < nfds; i++)
        r = posix_spawn_file_actions_adddup2(&fa, moved[i], 3 + i);
    if (r == 0)
        r = posix_spawn_file_actions_addclosefrom_np(&fa, 3 + nfds);
    /* A group of its own until it answers: see bootstrap_end(). */
    if (r == 0 && (r = posix_spawnattr_init(&attr)) == 0) {
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
        if (r == 0)
            r = posix_spawnattr_setpgroup(&attr, 0);
        snprintf(ppid, sizeof(ppid), "%ld", (long)getpid());
        if (r == 0)
            r = posix_spawn(pid, mp__self_exe(), &fa, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
    }
    posix_spawn_file_actions_destroy(&fa);
    r = -r;
drop:
    for (i = 0; i < nfds; i++)
        mp__options_drop(moved[i]);
    return r;
}

static double start_timeout = 10.0;

static void read_start_timeout(void)
{
    const char *s = secure_getenv("LIBMP_START_TIMEOUT");
    char *end;
    double v = s != NULL ? strtod(s, &end) : 0;

    if (s != NULL && end != s && *end == '\0' && v > 0)
        start_timeout = v;
}

/* Seconds a spawned child or the fork server may take to reach mp_main()
 * and answer: 10, or LIBMP_START_TIMEOUT (a slow host, valgrind). */
double mp__start_timeout(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, read_start_timeout);
    return start_timeout;
}

int mp__wait_ack(int sock, int pidfd, pid_t pid)
{
    double deadline = mp__now() + mp__start_timeout();
    char c;

    (void)pid;
    for (;;) {
        struct pollfd pfd[2] = { { .fd = sock, .events = POLLIN },
                                 { .fd = pidfd, .events = POLLIN } };
        double left = deadline - mp__now();
        ssize_t n = recv(sock, &c, 1, MSG_DONTWAIT);
        if (n == 1)
            return 0;
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            return MP_ENOMPMAIN; /* it ended, or closed fd 3, unanswered */
        if (left <= 0)
            return MP_ENOMPMAIN;
        poll(pfd, pidfd >= 0 ? 2 : 1, mp__ms_ceil(left));
        if (pidfd >= 0 && (pfd[1].revents & POLLIN)) /* it has ended */
            return recv(sock, &c, 1, MSG_DONTWAIT) == 1 ? 0 : MP_ENOMPMAIN;
    }
}

/* The descriptor a child watches its parent with: a pidfd of ourselves, or
 * the read end of a pipe whose write end *keep gets (no pidfds). */
static int parent_watch_fd(int *keep)
{
    int fds[2];

    *keep = -1;
    if (mp__use_pidfd())
        return mp__pidfd_open(getpid());
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    *keep = fds[1];
    return fds[0];
}

/* the spawn method */

static int spawn_launch(mp_process *p)
{
    int sock[2] = { -1, -1 }, sent[2] = { -1, -1 }, fds[64], nfds;
    int pw = -1, keep = -1, pidfd = -1, r;
    bool use_pidfd = mp__use_pidfd(), locked = false;
    char *blob = NULL;
    size_t len;
    pid_t pid;

    r = mp__blob_build(p, &blob, &len);
    if (r < 0)
        goto out;
    /* No pidfds: no fork child may hold the child's ends (its sentinel's
     * write end, its socket) while we wait for their EOF. */
    if (!use_pidfd) {
        mp__pipes_lock();
        locked = true;
    }
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sock) < 0 ||
        (!use_pidfd && pipe2(sent, O_CLOEXEC) < 0)) {
        r = -errno;
        goto out;
    }
    if ((pw = parent_watch_fd(&keep)) < 0) {
        r = pw;
        goto out;
    }
    fds[0] = sock[1];
    fds[1] = pw;
    nfds = 2;
    if (!use_pidfd)
        fds[nfds++] = sent[1];
    for (size_t i = 0; i < p->nconns; i++) {
        if ((fds[nfds++] = mp_conn_fileno(p->conns[i])) < 0) {
            r = MP_EHANDLECLOSED;
            goto out;
        }
    }
    r = mp__spawn_self(MP__SPAWN_MODE, fds, nfds, &pid);
    if (r < 0)
        goto out;
    sock[1] = mp__fd_close(sock[1]);
    sent[1] = mp__fd_close(sent[1]);
    if (locked) {
        mp__pipes_unlock();
        locked = false;
    }
    p->pid = pid;
    if (use_pidfd) {
        pidfd = mp__pidfd_open(pid);
        if (pidfd == -ESRCH) { /* reaped by another: it never answered */
            r = MP_ENOMPMAIN;
            goto out;
        }
        if (pidfd < 0) { /* out of descriptors, say: the child is ours and
                            unreaped, so its pid is safe to kill */
            r = pidfd;
            mp__launch_kill(pid, -1);
            goto out;
        }
    }
    r = mp__blob_send(sock[0], blob, len, mp__now() + mp__start_timeout());
    if (r == 0)
        r = mp__wait_ack(sock[0], pidfd, pid);
    if (r < 0) { /* whatever that child is, it is not ours to keep */
        mp__launch_kill(pid, pidfd);
        goto out;
    }
    if (use_pidfd) {
        p->pidfd = p->sentinel = pidfd;
        pidfd = -1;
    } else {
        p->sentinel = sent[0];
        sent[0] = -1;
    }
    p->parent_w = keep;
    keep = -1;
out:
    free(blob);
    mp__fd_close(sock[0]);
    mp__fd_close(sock[1]);
    mp__fd_close(sent[0]);
    mp__fd_close(sent[1]);
    if (locked)
        mp__pipes_unlock();
    mp__fd_close(pw);
    mp__fd_close(keep);
    mp__fd_close(pidfd);
    return r;
}

const struct mp_start_ops mp__start_spawn = {
    .name = "spawn",
    .launch = spawn_launch,
    .wait = mp__fork_wait,
    .send_signal = mp__fork_send_signal,
    .close = mp__fork_close,
};

/* the spawned child */

_Noreturn static void spawned_child(void)
{
    struct blob_extra x = { 0 };
    mp_process *self = NULL;
    char *blob = NULL;
    size_t len = 0;
    int r;

    check_parent(3);
    fcntl(4, F_SETFD, FD_CLOEXEC);
    fcntl(5, F_SETFD, FD_CLOEXEC);
    r = mp__blob_recv(3, &blob, &len);
    if (r == 0)
        r = blob_parse(blob, len, &self, &x);
    if (r == 0) {
        int conn_fds[MP__MAX_CONNS];
        for (size_t i = 0; i < x.nconns; i++)
            conn_fds[i] = (x.sentinel_fd ? 6 : 5) + (int)i;
        r = wrap_conns(self, &x, conn_fds);
    }
    free(blob);
    if (r < 0) {
        char line[256];
        mp_format_exception(r, line, sizeof(line));
        fprintf(stderr, "libmp: spawned child: %s\n", line);
        _exit(1);
    }
    bootstrap_end();
    if (send(3, "A", 1, MSG_NOSIGNAL) != 1)
        _exit(1); /* the parent gave up on us */
    close(3);
    if (x.deathsig != 0) {
        prctl(PR_SET_PDEATHSIG, x.deathsig);
        if (getppid() != self->parent_pid)
            raise(x.deathsig);
    }
    if (x.sentinel_fd)
        mp__set_self_sentinel(5);
    mp__set_spawned_child();
    mp__force_start_method(self->method);
    mp__child_init(self, 4);
    mp__child_run(self);
}

int mp_main(int argc, char **argv)
{
    if (argc >= 2 && argv != NULL && argv[1] != NULL) {
        if (strcmp(argv[1], MP__SPAWN_MODE) == 0)
            spawned_child();
        if (strcmp(argv[1], MP__FORKSERVER_MODE) == 0)
            mp__forkserver_main();
    }
    return 0;
}
