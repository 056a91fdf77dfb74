/*
 * start_forkserver.c - the "forkserver" start method (CPython:
 * popen_forkserver.py, forkserver.py).
 *
 * The server is a fresh run of this program (mp_main() hands it over),
 * started on first use and again if it has died.  It holds:
 *   3  its end of a SOCK_SEQPACKET socketpair with the process that started
 *      it: no path, no address, nobody else can connect;
 *   4  the read end of a pipe: EOF means that process ended, and so does the
 *      server (its children live on, as CPython's do).
 * For each child, the parent sends a one-byte request carrying two
 * descriptors (SCM_RIGHTS): its end of a fresh stream socket, and its own
 * pidfd (the child's parent_process() sentinel).  On that stream socket the
 * parent sends the blob; the server forks the child, answers with its pid
 * (or, if it could not, with -errno: EAGAIN at the process limit), and
 * when the child has ended sends its exit code and closes the socket.
 * The parent's sentinel is its end of that socket: readable when the exit
 * code arrives, or at EOF if the server died first.  The server is small
 * and fresh, so a child costs the same whatever the parent's size.
 *
 * That socket is all the parent holds for a running child: one descriptor,
 * as CPython's sentinel, so RLIMIT_NOFILE bounds the children a parent can
 * run as it does in CPython.  Signals still never reach a recycled pid:
 * terminate() and kill() open a pidfd by the pid for the call, then look at
 * the socket without reading it, and signal through the pidfd only if
 * neither the exit code nor EOF is there.  The server sends the code and
 * closes the socket before it reaps the child (waitid(WNOWAIT) first), and a
 * dying server closes it before its children are handed to another reaper
 * (but for a child it forks at that instant, which closes its copies of the
 * sockets a few instructions later); so while the socket is silent the pid is not free, and a pidfd opened
 * before that look names the child for good.  The call needs a descriptor
 * free (EMFILE rather than a signal by pid).  The alternatives: a pidfd
 * kept for each child costs a second descriptor; signals sent by the server
 * on request would be asynchronous and need the server alive.  Without
 * pidfds the look comes first and the signal goes by pid, as CPython's
 * does: a window remains between the two.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

static struct {
    pthread_mutex_t lock;
    pid_t owner; /* the process that started it: only it stops it */
    pid_t pid;
    int pidfd;   /* of the server (-1 without pidfds) */
    int ctl;     /* SOCK_SEQPACKET to the server */
    int alive_w; /* the server ends at EOF on the other end */
} server = { PTHREAD_MUTEX_INITIALIZER, 0, 0, -1, -1, -1 };

/* Sends one byte with descriptors attached. */
static int send_fds(int sock, const void *data, size_t len, const int *fds,
                    int n)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 64)] = { 0 };
    struct iovec iov = { .iov_base = (void *)data, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
    struct cmsghdr *c;

    if (n > 0) {
        msg.msg_control = cbuf;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n);
        c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n);
    }
    while (sendmsg(sock, &msg, MSG_NOSIGNAL) < 0)
        if (errno != EINTR)
            return -errno;
    return 0;
}

/* Receives up to len bytes and up to n descriptors (the rest -1). */
static ssize_t recv_fds(int sock, void *data, size_t len, int *fds, int n,
                        int flags)
{
    char cbuf[CMSG_SPACE(sizeof(int) * 64)];
    struct iovec iov = { .iov_base = data, .iov_len = len };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
                          .msg_control = cbuf,
                          .msg_controllen = sizeof(cbuf) };
    struct cmsghdr *c;
    ssize_t r;

    for (int i = 0; i < n; i++)
        fds[i] = -1;
    do
        r = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c))
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
            int got = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
            for (int i = 0; i < got; i++) {
                int fd;
                memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                if (i < n)
                    fds[i] = fd;
                else
                    close(fd);
            }
        }
    return r;
}

/* the parent's side */

/* Ends our server: EOF on its pipe makes it exit; one that has not within
 * `grace` seconds is killed; either way it is reaped, never left a zombie.
 * Called with server.lock held. */
static void server_end(double grace)
{
    siginfo_t si;

    server.alive_w = mp__fd_close(server.alive_w);
    if (server.pid > 0 && server.owner == getpid()) {
        /* Through the pidfd: a SIGCHLD handler of the program's may have
         * reaped the server, and its pid may name another child of ours
         * now (waitid then says ECHILD, and we are done). */
        if (server.pidfd >= 0) {
            server.ctl = mp__fd_close(server.ctl);
            if (mp__wait_readable(server.pidfd, mp__now() + grace) != 1)
                mp__pidfd_send_signal(server.pidfd, SIGKILL);
            while (waitid(P_PIDFD, (id_t)server.pidfd, &si, WEXITED) < 0 &&
                   errno == EINTR)
                ;
        } else {
            /* No pidfd to wait on: the server's end of ctl closes when it
             * ends (its children close their copies as they start).  The
             * server, too, is given its grace: killed at once, it could
             * leave a child it had just told of unreaped, to be adopted
             * by a subreaper or init. */
            if (server.ctl >= 0)
                mp__wait_readable(server.ctl, mp__now() + grace);
            if (waitid(P_PID, (id_t)server.pid, &si,
                       WEXITED | WNOHANG | WNOWAIT) == 0) {
                kill(server.pid, SIGKILL); /* unreaped: still ours */
                while (waitid(P_PID, (id_t)server.pid, &si, WEXITED) < 0 &&
                       errno == EINTR)
                    ;
            }
        }
    }
    server.ctl = mp__fd_close(server.ctl);
    server.pidfd = mp__fd_close(server.pidfd);
    server.pid = server.owner = 0;
}

static void server_forget(void)
{
    server_end(0); /* it is dead or broken */
}

/* A fork child must not use, keep alive or wait for its parent's server
 * (it starts its own if it needs one), nor inherit its lock held. */
static void atfork_prepare(void) { pthread_mutex_lock(&server.lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&server.lock); }

static void atfork_child(void)
{
    server.ctl = mp__fd_close(server.ctl);
    server.alive_w = mp__fd_close(server.alive_w);
    server.pidfd = mp__fd_close(server.pidfd);
    server.pid = server.owner = 0;
    pthread_mutex_unlock(&server.lock);
}

static void init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

/* Every taker of server.lock registers the fork handlers first: a fork
 * child must never inherit the lock held (a reap from cleanup() in one
 * thread while another forks: the child then hung at its exit). */
static void server_atfork_once(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, init);
}

static bool server_alive(void)
{
    struct pollfd pfd = { .fd = server.pidfd, .events = POLLIN };

    if (server.ctl < 0)
        return false;
    return server.pidfd < 0 || poll(&pfd, 1, 0) == 0;
}

/* Called with server.lock held. */
static int server_start(void)
{
    int ctl[2] = { -1, -1 }, alive[2] = { -1, -1 }, fds[2], r;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 ||
        pipe2(alive, O_CLOEXEC) < 0) {
        r = -errno;
        goto fail;
    }
    fds[0] = ctl[1];
    fds[1] = alive[0];
    r = mp__spawn_self(MP__FORKSERVER_MODE, fds, 2, &pid);
    if (r < 0)
        goto fail;
    ctl[1] = mp__fd_close(ctl[1]);
    alive[0] = mp__fd_close(alive[0]);
    server.pid = pid;
    server.owner = getpid();
    server.pidfd = mp__use_pidfd() ? mp__pidfd_open(pid) : -1;
    server.ctl = ctl[0];
    server.alive_w = alive[1];
    r = mp__wait_ack(server.ctl, server.pidfd, pid);
    if (r < 0) {
        mp__launch_kill(pid, server.pidfd);
        server.pid = 0; /* reaped */
        server_forget();
    }
    return r;
fail:
    mp__fd_close(ctl[0]);
    mp__fd_close(ctl[1]);
    mp__fd_close(alive[0]);
    mp__fd_close(alive[1]);
    return r;
}

/* Asks the server for a child (with the connections p hands it): the stream
 * socket comes back in *sock. */
static int request(mp_process *p, int *sock)
{
    int st[2] = { -1, -1 }, keep = -1, pw = -1, r = 0, fds[64], nfds = 2;

    server_atfork_once();
    /* Held until the server's end of the stream socket is closed here: a
     * fork (libmp's or the program's: server.lock is held across fork())
     * must not inherit it, or the child's sentinel would not see the
     * server close it while that fork child lives. */
    pthread_mutex_lock(&server.lock);
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st) < 0) {
        r = -errno;
        goto out;
    }
    /* The child's view of us: our pidfd, or a pipe we hold (no pidfds). */
    if (mp__use_pidfd()) {
        pw = mp__pidfd_open(getpid());
    } else {
        int pp[2];
        pw = pipe2(pp, O_CLOEXEC) < 0 ? -errno : pp[0];
        keep = pw >= 0 ? pp[1] : -1;
    }
    if (pw < 0) {
        r = pw;
        goto out;
    }
    fds[0] = st[1];
    fds[1] = pw;
    for (size_t i = 0; i < p->nconns; i++)
        if ((fds[nfds++] = mp_conn_fileno(p->conns[i])) < 0) {
            r = MP_EHANDLECLOSED;
            goto out;
        }
    for (int attempt = 0; attempt < 2; attempt++) {
        if (!server_alive()) { /* first use, or it died: (re)start it */
            server_forget();
            if ((r = server_start()) < 0)
                break;
        }
        r = send_fds(server.ctl, "L", 1, fds, nfds);
        if (r == 0)
            break;
        server_forget();
    }
    if (r < 0)
        goto out;
    *sock = st[0];
    st[0] = -1;
    mp__fd_close(p->parent_w); /* a start that failed before */
    p->parent_w = keep; /* no pidfds: held until close(), as fork's */
    keep = -1;
out:
    mp__fd_close(st[1]);
    pw = mp__fd_close(pw);
    pthread_mutex_unlock(&server.lock);
    mp__fd_close(st[0]);
    mp__fd_close(keep);
    return r;
}

/* A server that died (SIGKILL, say) is a zombie of ours until reaped: this
 * reaps it without waiting, from where libmp reaps children anyway, and
 * when a child's sentinel shows that its server is gone.  A thread that
 * holds the lock is dealing with the server already. */
void mp__forkserver_reap(void)
{
    siginfo_t si = { 0 };
    int r;

    server_atfork_once();
    if (pthread_mutex_trylock(&server.lock) != 0)
        return;
    /* By pid only where nobody else reaps: another's reaping would free
     * the pid for a child of ours whose status we would then take. */
    if (server.pid > 0 && server.owner == getpid() &&
        (server.pidfd >= 0 || mp__only_we_reap())) {
        do
            r = server.pidfd >= 0
                    ? waitid(P_PIDFD, (id_t)server.pidfd, &si,
                             WEXITED | WNOHANG)
                    : waitid(P_PID, (id_t)server.pid, &si,
                             WEXITED | WNOHANG);
        while (r < 0 && errno == EINTR);
        if (r == 0 && si.si_pid != 0) {
            server.pid = 0; /* reaped: server_end() must not wait */
            server_forget();
        }
    }
    pthread_mutex_unlock(&server.lock);
}

void mp__forkserver_stop(void)
{
    server_atfork_once();
    pthread_mutex_lock(&server.lock);
    if (server.pid > 0 && server.owner == getpid())
        server_end(1.0);
    pthread_mutex_unlock(&server.lock);
}

#ifdef MP_TEST_HOOKS
pid_t mp__forkserver_pid(void)
{
    pid_t pid = 0;

    server_atfork_once();
    pthread_mutex_lock(&server.lock);
    if (server.pid > 0 && server.owner == getpid() && server_alive())
        pid = server.pid;
    pthread_mutex_unlock(&server.lock);
    return pid;
}
#endif

static int fs_launch(mp_process *p)
{
    char *blob = NULL;
    size_t len;
    int64_t pid;
    int sock = -1, r;
    double deadline = mp__now() + mp__start_timeout();

    r = mp__blob_build(p, &blob, &len);
    if (r == 0)
        r = request(p, &sock);
    if (r == 0)
        r = mp__blob_send(sock, blob, len, deadline);
    free(blob);
    if (r < 0)
        goto fail;
    /* The answer: the pid.  If we give up first, we close the socket; the
     * server then cannot answer and kills the child before it has run
     * anything. */
    for (;;) {
        struct pollfd pfd = { .fd = sock, .events = POLLIN };
        double left = deadline - mp__now();
        ssize_t n;
        if (left <= 0) {
            r = MP_EFORKSERVER;
            goto fail;
        }
        if (poll(&pfd, 1, mp__ms_ceil(left)) < 0 && errno != EINTR) {
            r = -errno;
            goto fail;
        }
        n = recv_fds(sock, &pid, sizeof(pid), NULL, 0, MSG_DONTWAIT);
        if (n == sizeof(pid) && pid > 0)
            break;
        if (n == sizeof(pid)) {
            /* Why the server made no child: -errno (its fork() at the
             * process limit, say); anything else makes no sense. */
            r = pid < 0 && pid > -4000 ? (int)pid : MP_EFORKSERVER;
            goto fail;
        }
        if (n == 0 || (n > 0) || (n < 0 && n != -EAGAIN && n != -EINTR)) {
            r = MP_EFORKSERVER; /* EOF, a short answer, an error */
            goto fail;
        }
    }
    p->pid = (pid_t)pid;
    p->sentinel = sock;
    return 0;
fail:
    mp__fd_close(sock);
    return r == MP_ENOMPMAIN ? MP_EFORKSERVER : r;
}

static int fs_reap(mp_process *p, double timeout)
{
    int32_t code;
    ssize_t n;
    int r;

    if (timeout > 0) {
        r = mp__wait_readable(p->sentinel, isinf(timeout) ? timeout
                                                         : mp__now() + timeout);
        if (r <= 0)
            return r;
    }
    /* Peeked, not read: the exit code stays in the socket, so the sentinel
     * stays readable for good, as a pidfd does after the end. */
    do
        n = recv(p->sentinel, &code, sizeof(code), MSG_DONTWAIT | MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if ((n < 0 && errno == EAGAIN) || (n > 0 && n < (ssize_t)sizeof(code)))
        return 0;
    /* CPython: a server that died before telling gives 255. */
    p->code = n == sizeof(code) ? code : 255;
    if (n == 0)
        mp__forkserver_reap();
    __atomic_store_n(&p->has_code, true, __ATOMIC_RELEASE);
    return 1;
}

static int fs_wait(mp_process *p, double timeout)
{
    int r;

    if (__atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE))
        return 1;
    if (!(timeout > 0)) {
        if (pthread_mutex_trylock(&p->wait_lock) != 0)
            return 0;
        r = __atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE) ? 1
                                                              : fs_reap(p, 0);
    } else {
        /* Sleep on the socket first, then read under the lock. */
        r = mp__wait_readable(p->sentinel, isinf(timeout)
                                               ? timeout
                                               : mp__now() + timeout);
        if (r <= 0)
            return r;
        pthread_mutex_lock(&p->wait_lock);
        r = __atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE) ? 1
                                                              : fs_reap(p, 0);
    }
    pthread_mutex_unlock(&p->wait_lock);
    return r;
}

/* Whether the server has said nothing yet on the sentinel (neither the exit
 * code nor EOF): then the child has not been reaped.  < 0: error. */
static int silent(mp_process *p)
{
    int32_t code;
    ssize_t n;

    do
        n = recv(p->sentinel, &code, sizeof(code), MSG_DONTWAIT | MSG_PEEK);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? 1 : -errno;
    return 0;
}

/* See the header: a pidfd opened before the sentinel was seen silent. */
static int fs_send_signal(mp_process *p, int sig)
{
    int fd = -1, r;

    if (__atomic_load_n(&p->has_code, __ATOMIC_ACQUIRE))
        return 0;
    if (mp__use_pidfd() && (fd = mp__pidfd_open(p->pid)) < 0)
        return fd == -ESRCH ? 0 : fd; /* gone: reaped, or being reaped */
    r = silent(p);
    if (r > 0)
        r = fd >= 0 ? mp__pidfd_send_signal(fd, sig)
                    : kill(p->pid, sig) < 0 ? -errno : 0;
    mp__fd_close(fd);
    /* CPython: ProcessLookupError is ignored (the child already exited). */
    return r == -ESRCH ? 0 : r;
}

static void fs_close(mp_process *p)
{
    p->sentinel = mp__fd_close(p->sentinel);
    p->pidfd = mp__fd_close(p->pidfd);
    p->parent_w = mp__fd_close(p->parent_w);
}

const struct mp_start_ops mp__start_forkserver = {
    .name = "forkserver",
    .launch = fs_launch,
    .wait = fs_wait,
    .send_signal = fs_send_signal,
    .close = fs_close,
};

/* the server */

struct kid {
    pid_t pid;
    int sock;
};

static struct kid *kids;
static size_t nkids, capkids;

/* Tells each ended child's parent its exit code, and only then reaps the
 * child: until the parent sees the code, the pid is not free (see the
 * header). */
static void report_exits(void)
{
    for (;;) {
        siginfo_t si = { 0 };
        pid_t pid;
        int32_t code;

        if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if ((pid = si.si_pid) == 0)
            break;
        code = si.si_code == CLD_EXITED ? si.si_status : -si.si_status;
        for (size_t i = 0; i < nkids; i++)
            if (kids[i].pid == pid) {
                send(kids[i].sock, &code, sizeof(code), MSG_NOSIGNAL);
                close(kids[i].sock);
                kids[i] = kids[--nkids];
                break;
            }
        while (waitid(P_PID, (id_t)pid, &si, WEXITED) < 0 && errno == EINTR)
            ;
    }
}

/* The dispositions the server found, which its children get back. */
static struct sigaction orig_int, orig_chld;

/* One request: read the blob, fork the child, answer. */
static void serve_one(int ctl, int alive, int sfd, const sigset_t *old)
{
    struct timeval tv = { 10, 0 }; /* a client that stalls is dropped */
    int gate[2] = { -1, -1 };
    char go;
    int fds[64], nfds = 0;
    char byte, *blob = NULL;
    size_t len = 0;
    mp_process *self = NULL;
    int64_t pid64;
    pid_t pid;
    int err;
    ssize_t n = recv_fds(ctl, &byte, 1, fds, 64, 0);

    if (n == 0)
        _exit(0); /* the process that started us closed its end */
    while (nfds < 64 && fds[nfds] >= 0)
        nfds++;
    if (n < 0 || nfds < 2)
        goto out;
    setsockopt(fds[0], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if ((err = mp__blob_recv(fds[0], &blob, &len)) < 0 ||
        (err = mp__blob_child(blob, len, &self, fds + 2,
                              (size_t)nfds - 2)) < 0)
        goto answer;
    if (pipe2(gate, O_CLOEXEC) < 0) {
        err = -errno;
        goto answer;
    }
    /* Room to keep the child, before there is one to keep. */
    if (nkids == capkids) {
        size_t c = capkids ? capkids * 2 : 16;
        struct kid *grown = realloc(kids, c * sizeof(*grown));
        if (grown == NULL) {
            err = -ENOMEM;
            goto answer;
        }
        kids = grown;
        capkids = c;
    }
    pid = fork();
    if (pid == 0) {
        close(ctl);
        close(alive);
        close(sfd);
        close(fds[0]);
        close(gate[1]);
        for (size_t i = 0; i < nkids; i++)
            close(kids[i].sock);
        sigaction(SIGINT, &orig_int, NULL);
        sigaction(SIGCHLD, &orig_chld, NULL);
        sigprocmask(SIG_SETMASK, old, NULL);
        /* Held until the parent has our pid: if it gave up, we die here,
         * having run nothing. */
        if (read(gate[0], &go, 1) != 1)
            _exit(1);
        close(gate[0]);
        if (self->cwd != NULL && chdir(self->cwd) < 0) {
            /* CPython: the child runs in the parent's directory (a cwd
             * option is entered after this, by mp__child_init()) */
        }
        fcntl(fds[1], F_SETFD, FD_CLOEXEC);
        mp__force_start_method(self->method);
        mp__child_init(self, fds[1]);
        mp__child_run(self);
    }
    if (pid < 0) {
        err = -errno; /* EAGAIN at the process limit */
        goto answer;
    }
    pid64 = pid;
    if (send_fds(fds[0], &pid64, sizeof(pid64), NULL, 0) < 0 ||
        write(gate[1], "g", 1) != 1) {
        kill(pid, SIGKILL); /* nobody will ever wait for it */
        close(fds[0]);
        fds[0] = -1;
        goto out; /* reaped by report_exits(), answering no one */
    }
    kids[nkids].pid = pid;
    kids[nkids++].sock = fds[0];
    fds[0] = -1;
    goto out;
answer:
    /* The reason, in place of a pid, so that the start fails with it
     * rather than with a server that went silent (libmp's own codes are
     * not the parent's business: those stay silent). */
    pid64 = err;
    if (err > -4000)
        send_fds(fds[0], &pid64, sizeof(pid64), NULL, 0);
out:
    mp__fd_close(gate[0]);
    mp__fd_close(gate[1]);
    free(blob);
    if (self != NULL) { /* the wrappers own the connection descriptors,
                           and mp_process_free() frees them */
        for (int i = 2 + (int)self->nconns; i < nfds; i++)
            mp__fd_close(fds[i]);
    } else {
        for (int i = 2; i < nfds; i++)
            mp__fd_close(fds[i]);
    }
    mp_process_free(self);
    mp__fd_close(fds[0]);
    mp__fd_close(fds[1]);
}

_Noreturn void mp__forkserver_main(void)
{
    int ctl = 3, alive = 4, sfd;
    sigset_t chld, old;

    /* As CPython's: the server ignores SIGINT (a Ctrl-C to the process
     * group is for the program) and handles SIGCHLD itself (an ignored one
     * would let the kernel reap its children unreported); its children get
     * the dispositions back. */
    struct sigaction ign = { .sa_handler = SIG_IGN }, dfl = {
        .sa_handler = SIG_DFL };
    sigaction(SIGINT, &ign, &orig_int);
    sigaction(SIGCHLD, &dfl, &orig_chld);
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, &old);
    sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    fcntl(ctl, F_SETFD, FD_CLOEXEC);
    fcntl(alive, F_SETFD, FD_CLOEXEC);
    mp__bootstrap_end(ctl);
    if (sfd < 0 || send(ctl, "R", 1, MSG_NOSIGNAL) != 1)
        _exit(1);
    for (;;) {
        struct pollfd pfd[3] = { { .fd = ctl, .events = POLLIN },
                                 { .fd = alive, .events = POLLIN },
                                 { .fd = sfd, .events = POLLIN } };
        if (poll(pfd, 3, -1) < 0)
            continue;
        if (pfd[2].revents & POLLIN) {
            struct signalfd_siginfo si;
            while (read(sfd, &si, sizeof(si)) > 0)
                ;
            report_exits();
        }
        if (pfd[1].revents & (POLLIN | POLLHUP))
            _exit(0); /* the process that started us has ended */
        if (pfd[0].revents & (POLLIN | POLLHUP))
            serve_one(ctl, alive, sfd, &old);
    }
}
