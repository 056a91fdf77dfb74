/*
 * options.c - a child's environment, working directory and standard
 * streams (mp_process_options' env, cwd and stdio), and capture() of its
 * output (CPython has none of these per Process; the shape is
 * subprocess.Popen's: _get_handles() and communicate()).
 *
 * Everything is resolved in the parent, by start(), so that a bad path is
 * start()'s error under every start method: files, /dev/null and the
 * directory (O_PATH) are opened and pipes made there, each descriptor
 * close-on-exec.  The child's descriptors travel exactly as a typed
 * argument's handles do, appended to p->conns with a tag (MP__USE_STDIN
 * ...): inherited under fork, placed by posix_spawn under spawn, sent with
 * SCM_RIGHTS under forkserver.  The child, in one place for all three
 * (mp__options_apply(), before its target), moves them onto 0, 1, 2,
 * enters the directory and changes its environment (copied at creation;
 * in the spawn blob for the methods that exec).
 *
 * A fork child that another thread starts meanwhile, or a fork() of the
 * program's own, would inherit these descriptors: a capture pipe's write
 * end held there keeps capture() from ever seeing EOF, and a stdin pipe's
 * parent end held there keeps the child from seeing its input end.  So
 * every descriptor made here is listed (the list's lock is held across
 * fork(), and a pipe is made and listed, and closed and forgotten, under
 * it; posix_spawn's copies are listed too), and a fork child finds
 * /dev/null in place of each, but for the descriptors of the very process
 * it is the child of.  The numbers stay taken, so the copies of process
 * objects in that child may still close them.  A lock held from making the
 * pipes until the launch (what spawn's sentinel pipe uses without pidfds)
 * would make every fork() in the program wait for a spawned child's
 * answer; the list costs a fork() one pass instead.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

/* the descriptors no other fork child may keep */

struct made {
    int fd;
    const mp_process *owner;
    bool child_end; /* the child's side: kept in the owner's fork child */
};

static pthread_mutex_t made_lock = PTHREAD_MUTEX_INITIALIZER;
static struct made *made;
static size_t nmade, capmade;
static _Thread_local const mp_process *fork_keep;

static void made_prepare(void) { pthread_mutex_lock(&made_lock); }
static void made_parent(void) { pthread_mutex_unlock(&made_lock); }

static void made_child(void)
{
    int null = -1;

    for (size_t i = 0; i < nmade; i++) {
        if (made[i].child_end && made[i].owner == fork_keep)
            continue;
        if (null < 0 && (null = open("/dev/null", O_RDWR | O_CLOEXEC)) < 0)
            break;
        dup3(null, made[i].fd, O_CLOEXEC);
    }
    mp__fd_close(null);
    nmade = 0; /* this child's own list starts empty */
    if (fork_keep != NULL)
        fork_keep = NULL;
    pthread_mutex_unlock(&made_lock);
}

/* made_lock is a leaf: code takes it while holding the fork server's
 * lock and the pipes lock (spawning places descriptors with it), never the
 * other way round.  fork() takes the prepare handlers' locks in the reverse
 * order of registration, so this one must be registered before any other
 * libmp handler, which registers lazily: at load time, before the
 * program's own constructors. */
__attribute__((constructor(101))) static void made_init(void)
{
    pthread_atfork(made_prepare, made_parent, made_child);
}

static void made_lock_take(void)
{
    pthread_mutex_lock(&made_lock);
}

/* With the lock held.  On failure fd is closed. */
static int made_add(int fd, const mp_process *owner, bool child_end)
{
    if (nmade == capmade) {
        size_t c = capmade ? capmade * 2 : 16;
        struct made *grown = realloc(made, c * sizeof(*grown));
        if (grown == NULL) {
            mp__fd_close(fd);
            return -ENOMEM;
        }
        made = grown;
        capmade = c;
    }
    made[nmade].fd = fd;
    made[nmade].owner = owner;
    made[nmade++].child_end = child_end;
    return 0;
}

/* With the lock held: drops fd from the list. */
static void made_remove(int fd)
{
    for (size_t i = 0; i < nmade; i++)
        if (made[i].fd == fd) {
            made[i] = made[--nmade];
            break;
        }
}

/* Whether start() lists descriptors of p's own (mp__options_open()). */
static bool has_own(const mp_process *p)
{
    return p->stdio[0].how != MP_STDIO_DEFAULT ||
           p->stdio[1].how != MP_STDIO_DEFAULT ||
           p->stdio[2].how != MP_STDIO_DEFAULT || p->workdir != NULL;
}

/* fork_keep matters only to a process with descriptors listed, and is
 * stored only when it changes: the page of the thread's TLS is then not
 * one that every fork() of a plain child makes the parent copy. */
void mp__options_fork_keep(const mp_process *p)
{
    if (p != NULL && !has_own(p))
        p = NULL;
    if (fork_keep != p)
        fork_keep = p;
}

/* Forgets and closes, under the lock: a fork() in between would give its
 * child the end unreplaced.  Returns -1. */
static int drop(int fd)
{
    if (fd < 0)
        return -1;
    made_lock_take();
    made_remove(fd);
    mp__fd_close(fd);
    pthread_mutex_unlock(&made_lock);
    return -1;
}

int mp__options_dup(int fd, int min)
{
    int r;

    made_lock_take();
    if ((r = fcntl(fd, F_DUPFD_CLOEXEC, min)) < 0)
        r = -errno;
    else if (made_add(r, NULL, false) < 0)
        r = -ENOMEM;
    pthread_mutex_unlock(&made_lock);
    return r;
}

int mp__options_drop(int fd)
{
    return drop(fd);
}

/* creation */

static bool stdio_valid(const mp_stdio *s)
{
    return s->how >= MP_STDIO_DEFAULT && s->how <= MP_STDIO_PIPE &&
           (s->how != MP_STDIO_FILE || s->path != NULL) &&
           (s->how != MP_STDIO_FD || s->fd >= 0);
}

/* "NAME=value" or "NAME": a name, and never an empty one. */
static bool env_entry_valid(const char *e)
{
    return e[0] != '\0' && e[0] != '=';
}

int mp__options_copy(mp_process *p, const mp_process_options *o)
{
    size_t n = 0;

    if (o == NULL)
        return 0;
    if (o->env_mode < MP_ENV_EXTEND || o->env_mode > MP_ENV_REPLACE)
        return MP_EINVAL;
    for (int i = 0; i < 3; i++)
        if (!stdio_valid(&o->stdio[i]))
            return MP_EINVAL;
    if (o->env != NULL)
        for (; o->env[n] != NULL; n++)
            if (!env_entry_valid(o->env[n]))
                return MP_EINVAL;
    p->env_mode = o->env_mode;
    if (o->env != NULL) {
        if ((p->env = calloc(n + 1, sizeof(*p->env))) == NULL)
            return -ENOMEM;
        for (; p->nenv < n; p->nenv++)
            if ((p->env[p->nenv] = strdup(o->env[p->nenv])) == NULL)
                return -ENOMEM;
    }
    if (o->cwd != NULL && (p->workdir = strdup(o->cwd)) == NULL)
        return -ENOMEM;
    for (int i = 0; i < 3; i++) {
        p->stdio[i].how = o->stdio[i].how;
        p->stdio[i].append = o->stdio[i].append;
        p->stdio[i].fd = o->stdio[i].fd;
        if (o->stdio[i].how == MP_STDIO_FILE &&
            (p->stdio[i].path = strdup(o->stdio[i].path)) == NULL)
            return -ENOMEM;
    }
    return 0;
}

void mp__options_close(mp_process *p)
{
    for (int i = 0; i < 3; i++)
        p->stdio_fd[i] = drop(p->stdio_fd[i]);
    for (int i = 0; i < 2; i++) {
        free(p->captured[i].buf);
        memset(&p->captured[i], 0, sizeof(p->captured[i]));
    }
}

void mp__options_free(mp_process *p)
{
    mp__options_close(p);
    for (size_t i = 0; i < p->nenv; i++)
        free(p->env[i]);
    free(p->env);
    p->env = NULL;
    p->nenv = 0;
    free(p->workdir);
    p->workdir = NULL;
    for (int i = 0; i < 3; i++) {
        free(p->stdio[i].path);
        p->stdio[i].path = NULL;
    }
}

/* start(), in the parent */

/* Opens stream i: the child's descriptor in *child (-1: leave the
 * child's as it is), the parent's end of a pipe in *mine.  A file is
 * opened without the list's lock (opening a FIFO may wait for its other
 * end), so a fork child made at that instant may keep a copy of it: a
 * file has no end for a copy to hold back. */
static int open_stream(mp_process *p, int i, int *child, int *mine)
{
    const struct mp__stdio *s = &p->stdio[i];
    int fd = -1, r = 0, pipefd[2];

    if (s->how == MP_STDIO_DEFAULT)
        return 0;
    if (s->how == MP_STDIO_FILE) {
        int flags = i == 0 ? O_RDONLY
                           : O_WRONLY | O_CREAT |
                                 (s->append ? O_APPEND : O_TRUNC);
        if ((fd = open(s->path, flags | O_CLOEXEC, 0666)) < 0)
            return -errno;
        made_lock_take();
        r = made_add(fd, p, true);
        pthread_mutex_unlock(&made_lock);
        *child = r < 0 ? -1 : fd;
        return r;
    }
    made_lock_take();
    switch (s->how) {
    case MP_STDIO_INHERIT: /* the forkserver's child is not our child */
        fd = fcntl(i, F_DUPFD_CLOEXEC, 3);
        break;
    case MP_STDIO_FD:
        fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 3);
        break;
    case MP_STDIO_DEVNULL:
        fd = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
        break;
    case MP_STDIO_PIPE:
        if (pipe2(pipefd, O_CLOEXEC) < 0)
            break;
        fd = pipefd[i == 0 ? 0 : 1];
        *mine = pipefd[i == 0 ? 1 : 0];
        if ((r = made_add(*mine, p, false)) < 0) {
            *mine = -1;
            mp__fd_close(fd);
            pthread_mutex_unlock(&made_lock);
            return r;
        }
        break;
    }
    if (fd < 0)
        r = -errno;
    else if ((r = made_add(fd, p, true)) == 0)
        *child = fd;
    pthread_mutex_unlock(&made_lock);
    if (r < 0)
        *mine = drop(*mine);
    return r;
}

/* The directory, as chdir() would take it: a directory we may search. */
static int open_dir(mp_process *p, int *child)
{
    int fd = open(p->workdir, O_PATH | O_DIRECTORY | O_CLOEXEC), r;

    if (fd < 0)
        return -errno;
    if (faccessat(fd, ".", X_OK, AT_EACCESS) < 0) {
        r = -errno;
        mp__fd_close(fd);
        return r;
    }
    made_lock_take();
    r = made_add(fd, p, true);
    pthread_mutex_unlock(&made_lock);
    if (r == 0)
        *child = fd;
    return r;
}

/* Appends fd to what p hands its child (p is starting: no add_conn()
 * meanwhile).  On failure fd is forgotten and closed. */
static int append(mp_process *p, int fd, unsigned char use)
{
    mp_conn **grown, *c;
    unsigned char *grown_use;

    if ((grown = realloc(p->conns, (p->nconns + 1) * sizeof(*grown))) != NULL)
        p->conns = grown;
    if ((grown_use = realloc(p->conn_use, p->nconns + 1)) != NULL)
        p->conn_use = grown_use;
    if (grown == NULL || grown_use == NULL ||
        (c = mp__conn_wrap(fd, 0)) == NULL) {
        drop(fd);
        return -ENOMEM;
    }
    p->conn_use[p->nconns] = use;
    p->conns[p->nconns++] = c;
    return 0;
}

int mp__options_open(mp_process *p)
{
    int child[4] = { -1, -1, -1, -1 }, mine[3] = { -1, -1, -1 }, r = 0;
    size_t from = p->nconns;
    int k = 0;

    if (!has_own(p))
        return 0;
    for (int i = 0; r == 0 && i < 3; i++)
        r = open_stream(p, i, &child[i], &mine[i]);
    if (r == 0 && p->workdir != NULL)
        r = open_dir(p, &child[3]);
    for (; r == 0 && k < 4; k++)
        if (child[k] >= 0)
            r = append(p, child[k], (unsigned char)(MP__USE_STDIN + k));
    if (r < 0) {
        /* Those appended are p->conns'; append() released the one it
         * failed on; the rest are still ours. */
        mp__options_launched(p, from, false);
        for (; k < 4; k++)
            drop(child[k]);
        for (int i = 0; i < 3; i++)
            drop(mine[i]);
        return r;
    }
    for (int i = 0; i < 3; i++)
        p->stdio_fd[i] = mine[i];
    return 0;
}

void mp__options_launched(mp_process *p, size_t from, bool ok)
{
    for (size_t i = from; i < p->nconns; i++) {
        drop(mp__conn_take_fd(p->conns[i]));
        mp_conn_free(p->conns[i]);
    }
    if (from < p->nconns)
        p->nconns = from;
    if (!ok)
        for (int i = 0; i < 3; i++)
            p->stdio_fd[i] = drop(p->stdio_fd[i]);
}

/* in the child */

static int apply_env(mp_process *self)
{
    if (self->env == NULL)
        return 0;
    if (self->env_mode == MP_ENV_REPLACE && clearenv() != 0)
        return -ENOMEM;
    for (size_t i = 0; i < self->nenv; i++) {
        const char *e = self->env[i], *eq = strchr(e, '=');
        char *name;
        int r;
        if (eq == NULL) {
            if (unsetenv(e) < 0)
                return -errno;
            continue;
        }
        if ((name = strndup(e, (size_t)(eq - e))) == NULL)
            return -ENOMEM;
        r = setenv(name, eq + 1, 1);
        free(name);
        if (r < 0)
            return -errno;
    }
    return 0;
}

void mp__options_apply(mp_process *self)
{
    const struct mp__child_calls *calls = mp__child_calls;
    int fds[4] = { -1, -1, -1, -1 }, r = 0;

    /* A fork child's copy of its parent's pipe ends (/dev/null by now). */
    for (int i = 0; i < 3; i++)
        self->stdio_fd[i] = mp__fd_close(self->stdio_fd[i]);
    for (size_t i = 0; i < self->nconns; i++)
        if (self->conn_use[i] >= MP__USE_STDIN &&
            self->conn_use[i] <= MP__USE_CWD)
            fds[self->conn_use[i] - MP__USE_STDIN] =
                mp__conn_take_fd(self->conns[i]);
    /* Where the parent had 0, 1 or 2 closed, one of ours may be there:
     * moved out of the way first, so that no dup2() overwrites a source. */
    for (int k = 0; k < 4; k++)
        if (fds[k] >= 0 && fds[k] < 3) {
            int moved = fcntl(fds[k], F_DUPFD_CLOEXEC, 3);
            close(fds[k]);
            fds[k] = moved;
        }
    /* What a stream that is replaced holds: a spawned child's own (written
     * before mp_main()) goes where it was written; a fork child's can only
     * be what another thread of the parent wrote after start() flushed,
     * which the parent writes itself. */
    for (int i = 1; i < 3; i++) {
        FILE *f = i == 1 ? stdout : stderr;
        if (fds[i] < 0)
            continue;
        if (mp__spawned())
            fflush(f);
        else
            calls->fpurge(f);
    }
    for (int i = 0; i < 3; i++) {
        if (fds[i] >= 0) {
            calls->dup2(fds[i], i);
            fds[i] = mp__fd_close(fds[i]);
        } else if (i == 0) {
            /* util._close_stdin(): the child reads from /dev/null.  The
             * path is on the stack, whose page the child has already
             * copied: read from .rodata, it would cost a page fault. */
            char null_path[] = "/dev/null";
            int fd = calls->open(null_path, O_RDONLY | O_CLOEXEC);
            if (fd > 0) {
                calls->dup2(fd, 0);
                close(fd);
            } else if (fd == 0) {
                fcntl(0, F_SETFD, 0);
            }
        }
    }
    /* Each only when there is something to drop or clear (read without the
     * lock: no other thread exists yet in a fork child): a FILE written to
     * is a page the child copies, and stdin is seldom read before a
     * start(). */
    if (calls->fbufsize(stdin) > 0)
        calls->fpurge(stdin);
    for (int i = 0; i < 3; i++) {
        FILE *f = i == 0 ? stdin : i == 1 ? stdout : stderr;
        if (ferror_unlocked(f) || feof_unlocked(f))
            calls->clearerr(f);
    }
    /* After the fork server's chdir() to the parent's directory. */
    if (fds[3] >= 0 && fchdir(fds[3]) < 0)
        r = -errno;
    mp__fd_close(fds[3]);
    if (r == 0)
        r = apply_env(self);
    if (r < 0)
        mp__uncaught(r);
}

/* the parent's ends */

static int check_child(mp_process *p)
{
    if (__atomic_load_n(&p->closed, __ATOMIC_ACQUIRE))
        return MP_ECLOSED;
    if (p->kind != MP__KIND_CHILD || p->parent_pid != getpid())
        return MP_ENOTCHILD;
    if (!__atomic_load_n(&p->started, __ATOMIC_ACQUIRE))
        return MP_ENOTSTARTED;
    return 0;
}

int mp_process_stdio(mp_process *p, int which)
{
    int r;

    if (p == NULL || which < 0 || which > 2)
        return MP_EINVAL;
    if ((r = check_child(p)) < 0)
        return r;
    if (p->stdio[which].how != MP_STDIO_PIPE)
        return MP_EINVAL;
    r = __atomic_load_n(&p->stdio_fd[which], __ATOMIC_RELAXED);
    return r >= 0 ? r : MP_EHANDLECLOSED;
}

/* Reads what one pipe has (one read: poll said it would not block) into
 * c, or into nothing when nobody takes it.  1 at EOF. */
static int read_some(int fd, struct mp__captured *c, bool keep)
{
    char scratch[16384], *to = scratch;
    size_t room = sizeof(scratch);
    ssize_t n;

    if (keep) {
        if (c->cap - c->len < 65536 + 1) {
            size_t cap = c->cap ? c->cap * 2 : 65536 + 1;
            char *grown;
            while (cap - c->len < 65536 + 1)
                cap *= 2;
            if ((grown = realloc(c->buf, cap)) == NULL)
                return -ENOMEM;
            c->buf = grown;
            c->cap = cap;
        }
        to = c->buf + c->len;
        room = c->cap - c->len - 1;
    }
    do
        n = read(fd, to, room);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? 0 : -errno;
    if (n == 0)
        return 1;
    if (keep)
        c->len += (size_t)n;
    return 0;
}

/* Hands out what streams 1 and 2 gave, whole: NULL for one that is not
 * a pipe; what nobody takes is dropped. */
static int hand_out(mp_process *p, char **dst[2], size_t *len[2])
{
    for (int k = 0; k < 2; k++) {
        struct mp__captured *c = &p->captured[k];
        if (dst[k] != NULL && p->stdio[1 + k].how == MP_STDIO_PIPE &&
            c->buf == NULL && (c->buf = malloc(1)) == NULL)
            return -ENOMEM;
    }
    for (int k = 0; k < 2; k++) {
        struct mp__captured *c = &p->captured[k];
        bool give = dst[k] != NULL && p->stdio[1 + k].how == MP_STDIO_PIPE;
        if (dst[k] != NULL)
            *dst[k] = give ? c->buf : NULL;
        if (len[k] != NULL)
            *len[k] = give ? c->len : 0;
        if (give)
            c->buf[c->len] = '\0';
        else
            free(c->buf);
        memset(c, 0, sizeof(*c));
    }
    return 0;
}

static int capture(mp_process *p, char **out, char **err, double timeout)
{
    double deadline = isinf(timeout) && timeout > 0
                          ? timeout
                          : mp__now() + (timeout > 0 ? timeout : 0);
    char **dst[2] = { out, err };

    /* communicate(): the child's input ends first. */
    if (p->stdio[0].how == MP_STDIO_PIPE)
        __atomic_store_n(&p->stdio_fd[0], drop(p->stdio_fd[0]),
                         __ATOMIC_RELAXED);
    for (;;) {
        struct pollfd pfd[2];
        int which[2], n = 0, r;
        for (int k = 0; k < 2; k++)
            if (p->stdio_fd[1 + k] >= 0) {
                pfd[n].fd = p->stdio_fd[1 + k];
                pfd[n].events = POLLIN;
                which[n++] = k;
            }
        if (n == 0)
            return 0;
        r = mp__ppoll_until(pfd, (size_t)n, deadline);
        if (r < 0)
            return r;
        if (r == 0)
            return MP_ETIMEDOUT;
        for (int i = 0; i < n; i++) {
            int k = which[i];
            if (pfd[i].revents & POLLNVAL)
                return -EBADF;
            if (!(pfd[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            r = read_some(pfd[i].fd, &p->captured[k], dst[k] != NULL);
            if (r < 0)
                return r;
            if (r == 1)
                __atomic_store_n(&p->stdio_fd[1 + k],
                                 drop(p->stdio_fd[1 + k]), __ATOMIC_RELAXED);
        }
    }
}

int mp_process_capture(mp_process *p, char **out, size_t *outlen,
                       char **err, size_t *errlen, double timeout)
{
    int r;

    if (p == NULL || isnan(timeout))
        return MP_EINVAL;
    if ((r = check_child(p)) < 0)
        return r;
    if ((r = mp__process_hold(p)) < 0)
        return r;
    r = capture(p, out, err, timeout);
    if (r == 0)
        r = hand_out(p, (char **[2]){ out, err },
                     (size_t *[2]){ outlen, errlen });
    mp__process_unhold(p);
    return r;
}
