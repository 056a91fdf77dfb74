/*
 * start_fork.c - the "fork" start method (CPython: popen_fork.py).
 *
 * The parent holds a pidfd of the child, opened right after fork() while the
 * child cannot have been reaped yet, so it always names this child.  The pidfd
 * is the sentinel (readable once the child has exited), the handle waitid()
 * reaps through and the handle signals go through: no step can reach a
 * recycled pid.  Where the kernel has no pidfds, the sentinel is the read end
 * of a pipe whose write end only the child holds, as in CPython, and the pid
 * is pinned by not being reaped yet.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

/* Fallback: in a child, the write end of its own sentinel, which it must not
 * hand down to its children. */
static int self_sentinel_w = -1;

void mp__set_self_sentinel(int fd)
{
    self_sentinel_w = fd;
}

/* Fallback: held from making a child's pipes until the parent has closed
 * the child's ends, so that a child another thread forks meanwhile never
 * holds the write end of this one's sentinel (which would then fire only
 * when both had ended).  Any fork() waits for it (its atfork handlers),
 * but the one its holder makes; a fork child gets it afresh. */
static pthread_mutex_t pipes_lock = PTHREAD_MUTEX_INITIALIZER;
static _Thread_local bool pipes_mine;

static void pipes_prepare(void)
{
    if (!pipes_mine)
        pthread_mutex_lock(&pipes_lock);
}

static void pipes_parent(void)
{
    if (!pipes_mine)
        pthread_mutex_unlock(&pipes_lock);
}

static void pipes_child(void)
{
    pthread_mutex_init(&pipes_lock, NULL);
    pipes_mine = false;
}

static void pipes_init(void)
{
    pthread_atfork(pipes_prepare, pipes_parent, pipes_child);
}

void mp__pipes_lock(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, pipes_init);
    pthread_mutex_lock(&pipes_lock);
    pipes_mine = true;
}

void mp__pipes_unlock(void)
{
    pipes_mine = false;
    pthread_mutex_unlock(&pipes_lock);
}

/* Whether only we reap our children: SIGCHLD neither ignored (the kernel
 * reaps) nor handled (a handler may call waitpid(-1)). */
bool mp__only_we_reap(void)
{
    struct sigaction sa;

    return sigaction(SIGCHLD, NULL, &sa) == 0 &&
           !(sa.sa_flags & (SA_SIGINFO | SA_NOCLDWAIT)) &&
           sa.sa_handler == SIG_DFL;
}

static int fork_launch(mp_process *p)
{
    int sent[2] = { -1, -1 };   /* fallback: the child's exit sentinel */
    int parent[2] = { -1, -1 }; /* fallback: the parent's, for the child */
    int gate[2] = { -1, -1 };   /* holds the child until we have its pidfd */
    bool use_pidfd = mp__use_pidfd();
    int deathsig = p->daemon ? mp__daemon_death_signal() : 0;
    pid_t ppid = deathsig != 0 ? getpid() : 0;
    int r = 0;
    pid_t pid;
    char c;

    if (!use_pidfd)
        mp__pipes_lock();
    if (!use_pidfd && (pipe2(sent, O_CLOEXEC) < 0 ||
                       pipe2(parent, O_CLOEXEC) < 0)) {
        r = -errno;
        goto out;
    }
    /* A child that someone else may reap must not end before its pidfd is
     * open, or the pid could be recycled under us. */
    if (use_pidfd && !mp__only_we_reap() && pipe2(gate, O_CLOEXEC) < 0) {
        r = -errno;
        goto out;
    }
    mp__options_fork_keep(p); /* its streams are this child's */
    pid = fork();
    mp__options_fork_keep(NULL);
    if (pid < 0) {
        r = -errno;
        goto out;
    }
    if (pid == 0) {
        if (gate[0] >= 0) {
            close(gate[1]);
            while (read(gate[0], &c, 1) < 0 && errno == EINTR)
                ;
            close(gate[0]);
        }
        if (deathsig != 0) {
            prctl(PR_SET_PDEATHSIG, deathsig);
            if (getppid() != ppid) /* the parent died before prctl */
                raise(deathsig);
        }
        self_sentinel_w = mp__fd_close(self_sentinel_w);
        if (!use_pidfd) {
            close(sent[0]);
            close(parent[1]);
            self_sentinel_w = sent[1]; /* open until the child exits */
        }
        /* _bootstrap forces a context process's method (ForkProcess). */
        if (p->ctx != NULL)
            mp__force_start_method(p->method);
        mp__child_init(p, use_pidfd ? -1 : parent[0]);
        mp__child_run(p);
    }
    p->pid = pid;
    if (use_pidfd) {
        r = mp__pidfd_open(pid);
        if (r == -ESRCH) {
            /* Reaped already by a waitpid(-1) elsewhere: it ran, and its
             * status is lost.  The sentinel is a readable eventfd. */
            p->lost = true;
            r = p->sentinel = eventfd(1, EFD_CLOEXEC);
            if (r >= 0)
                r = 0;
            else
                r = -errno;
            goto out;
        }
        if (r < 0) { /* e.g. EMFILE: undo the child rather than lose it */
            int status;
            kill(pid, SIGKILL); /* unreaped (or held at the gate): ours */
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
            goto out;
        }
        p->pidfd = p->sentinel = r;
        r = 0;
        if (gate[1] >= 0 && write(gate[1], "g", 1) != 1)
            r = 0; /* the child runs on anyway once the gate closes */
    } else {
        p->sentinel = sent[0];
        sent[0] = -1;
        p->parent_w = parent[1];
        parent[1] = -1;
    }
out:
    mp__fd_close(sent[0]);
    mp__fd_close(sent[1]);
    mp__fd_close(parent[0]);
    mp__fd_close(parent[1]);
    if (!use_pidfd)
        mp__pipes_unlock();
    mp__fd_close(gate[0]);
    mp__fd_close(gate[1]);
    return r;
}

/* Reaps the child if it has exited; `block`: wait until it has.  Called with
 * wait_lock held. */
static int fork_reap(mp_process *p, bool block)
{
    int r, code;

    if (__atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE))
        return 1;
    if (p->pidfd >= 0) {
        siginfo_t si = { 0 };
        do
            r = waitid(P_PIDFD, (id_t)p->pidfd, &si,
                       WEXITED | (block ? 0 : WNOHANG));
        while (r < 0 && errno == EINTR);
        if (r < 0)
            return -errno;
        if (si.si_pid == 0)
            return 0;
        code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
    } else {
        int status;
        pid_t got;
        do
            got = waitpid(p->pid, &status, block ? 0 : WNOHANG);
        while (got < 0 && errno == EINTR);
        if (got < 0)
            return -errno;
        if (got == 0)
            return 0;
        code = mp__status_to_code(status);
    }
    p->code = code;
    __atomic_store_n(&p->has_code, true, __ATOMIC_RELEASE);
    return 1;
}

int mp__fork_wait(mp_process *p, double timeout)
{
    int r;

    if (__atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE))
        return 1;
    if (p->lost)
        return -ECHILD;
    if (!(timeout > 0)) {
        /* 0, negative: CPython polls with WNOHANG.  A thread already
         * reaping this child means it has not been seen to end yet. */
        if (pthread_mutex_trylock(&p->wait_lock) != 0)
            return 0;
    } else {
        if (!isinf(timeout)) {
            /* Sleep on the sentinel against an absolute deadline; once it
             * fires, the child has exited and reaping returns at once. */
            r = mp__wait_readable(p->sentinel, mp__now() + timeout);
            if (r <= 0)
                return r;
        }
        pthread_mutex_lock(&p->wait_lock);
    }
    r = fork_reap(p, timeout > 0);
    pthread_mutex_unlock(&p->wait_lock);
    return r;
}

int mp__fork_send_signal(mp_process *p, int sig)
{
    int r;

    if (__atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE) || p->lost)
        return 0;
    if (p->pidfd >= 0)
        r = mp__pidfd_send_signal(p->pidfd, sig);
    else
        r = kill(p->pid, sig) < 0 ? -errno : 0;
    /* CPython: ProcessLookupError is ignored (the child already exited). */
    return r == -ESRCH ? 0 : r;
}

void mp__fork_close(mp_process *p)
{
    if (p->sentinel != p->pidfd)
        p->sentinel = mp__fd_close(p->sentinel);
    p->pidfd = mp__fd_close(p->pidfd);
    p->sentinel = -1;
    p->parent_w = mp__fd_close(p->parent_w);
}

const struct mp_start_ops mp__start_fork = {
    .name = "fork",
    .launch = fork_launch,
    .wait = mp__fork_wait,
    .send_signal = mp__fork_send_signal,
    .close = mp__fork_close,
};
