/*
 * shm_reaper.c - the process that removes a SharedMemory segment's name
 * once nobody uses it (CPython: resource_tracker.py, which unlinks at exit
 * what its processes registered, used elsewhere or not).
 *
 * A process's first create starts its reaper: this very program run again
 * (/proc/self/exe) with a mode argument that a constructor below
 * recognises before main(); it forks once more and runs in the grandchild,
 * detached by setsid(), stdin, stdout and stderr on /dev/null, so no
 * wait() of the creator's reaps it, no signal to the creator's process
 * group reaches it, and no pipe of the creator's stays open in it.  The two
 * share a SOCK_SEQPACKET socket (close-on-exec).  Each create sends the
 * segment's name and its open file description (SCM_RIGHTS), whose shared
 * flock is the creator's: the reaper keeps that description, and so holds
 * the creator's lock for it until the creating process exits (a pidfd of
 * it; without pidfds, EOF on the socket, whose end fork children close),
 * which keeps the name attachable meanwhile, as CPython's tracker keeps it
 * until its processes are gone.  A fork child that creates gets a reaper of
 * its own.  A name unlinked meanwhile is forgotten at once (inotify on
 * /dev/shm; without it, a sweep each time the table doubles), so its
 * memory is not held.
 *
 * Once the creator has exited, for each segment still named the reaper
 * closes the creator's description, opens the name again (a description
 * of its own, without a lock), and takes an exclusive flock: granted when
 * no description holding a shared lock is left, i.e. when the last process
 * that had the segment mapped unmapped it, exited or was killed (the
 * kernel drops a description's lock with its last reference, a mapping's
 * included).  Under that lock it unlinks the name if the name still refers
 * to that segment (fstatat against fstat).  A segment free by then goes at
 * once; each one still in use gets a thread blocked in flock(LOCK_EX), a
 * kernel wake-up (inotify's close event comes before the closing
 * description drops its lock: a try on it could miss the last user).  The
 * reaper exits when the last one is done.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"
#ifdef MP_TEST_HOOKS
#include "test_hooks.h"
#endif

#define REAPER_MODE "--libmp-shm-reaper"

extern char **environ;

/* the creator's side */

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int sock = -1;     /* our end of the reaper's socket */
static bool unavailable;  /* none could be started: CPython's lifetime */
static pid_t reaper_pid;

static void atfork_prepare(void) { pthread_mutex_lock(&lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&lock); }
/* A fork child is a creator of its own, with its own reaper: the parent's
 * holds what the parent made, until the parent exits.  The parent's socket
 * goes at once, while its number is still this library's: a child that
 * closes what it inherited may have given the number to a file since. */
static void atfork_child(void)
{
    sock = mp__fd_close(sock);
    unavailable = false;
    reaper_pid = 0;
    pthread_mutex_unlock(&lock);
}

__attribute__((constructor)) static void shm_init(void)
{
    pthread_atfork(atfork_prepare, atfork_parent, atfork_child);
}

#ifdef MP_TEST_HOOKS
pid_t mp__shm_reaper_pid(void)
{
    pid_t pid;

    pthread_mutex_lock(&lock);
    pid = sock >= 0 ? reaper_pid : 0;
    pthread_mutex_unlock(&lock);
    return pid;
}
#endif

static int spawn_reaper(int end, pid_t *pid)
{
    char *argv[] = { program_invocation_name, REAPER_MODE, NULL };
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    int r;

    if ((r = posix_spawn_file_actions_init(&fa)) != 0)
        return -r;
    /* The socket first: in a process without standard streams it has one
     * of their numbers, which /dev/null then takes. */
    r = posix_spawn_file_actions_adddup2(&fa, end, 3);
    if (r == 0)
        r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY,
                                             0);
    for (int i = 1; r == 0 && i <= 2; i++)
        r = posix_spawn_file_actions_addopen(&fa, i, "/dev/null", O_WRONLY, 0);
    if (r == 0)
        r = posix_spawn_file_actions_addclosefrom_np(&fa, 4);
    if (r == 0 && (r = posix_spawnattr_init(&attr)) == 0) {
        sigemptyset(&none);
        sigfillset(&all);
        r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID |
                                                POSIX_SPAWN_SETSIGMASK |
                                                POSIX_SPAWN_SETSIGDEF);
        if (r == 0)
            r = posix_spawnattr_setsigmask(&attr, &none);
        if (r == 0)
            r = posix_spawnattr_setsigdefault(&attr, &all);
        if (r == 0)
            r = posix_spawn(pid, mp__self_exe(), &fa, &attr, argv, environ);
        posix_spawnattr_destroy(&attr);
    }
    posix_spawn_file_actions_destroy(&fa);
    return -r;
}

/* Starts a reaper and waits for its pid, which it sends once it watches;
 * the process spawned (its parent) exits at once and is reaped here. */
static int start_reaper(void)
{
    int sv[2] = { -1, -1 }, r, status;
    int32_t got = 0;
    pid_t pid = 0;

    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    r = spawn_reaper(sv[1], &pid);
    sv[1] = mp__fd_close(sv[1]);
    if (r == 0) {
        r = mp__wait_readable(sv[0], mp__now() + mp__start_timeout());
        if (r > 0)
            r = recv(sv[0], &got, sizeof(got), MSG_DONTWAIT) ==
                            (ssize_t)sizeof(got) && got > 0
                    ? 0 : -ECHILD;
        else if (r == 0)
            r = -ETIMEDOUT;
        if (r < 0)
            mp__launch_kill(pid, -1); /* and its group, which setsid() made */
        else
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
    }
    if (r < 0) {
        sv[0] = mp__fd_close(sv[0]);
        return r;
    }
    sock = sv[0];
    reaper_pid = (pid_t)got;
    return 0;
}

static int send_segment(int fd, const char *name)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = (void *)name, .iov_len = strlen(name) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = u.buf,
                        .msg_controllen = sizeof(u.buf) };
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    ssize_t n;

    memset(u.buf, 0, sizeof(u.buf));
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(c), &fd, sizeof(fd));
    do
        n = sendmsg(sock, &m, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

void mp__shm_track(int fd, const char *name)
{
    int r;

    pthread_mutex_lock(&lock);
    /* A reaper that died (killed: it never exits while its creator
     * lives) is replaced once; what it held is no longer watched. */
    for (int attempt = 0; attempt < 2 && !unavailable; attempt++) {
        if (sock < 0 && (r = start_reaper()) < 0) {
            /* Short of descriptors, memory or processes: the next create
             * tries again.  A program that does not run as a reaper, or
             * one too slow to answer, is not made to wait for again. */
            unavailable = r != -EMFILE && r != -ENFILE && r != -ENOMEM &&
                          r != -EAGAIN;
            break;
        }
        r = send_segment(fd, name);
        if (r != -EPIPE && r != -ECONNRESET && r != -ENOTCONN)
            break; /* sent, or not for a dead reaper: that one untracked */
        sock = mp__fd_close(sock);
    }
    pthread_mutex_unlock(&lock);
}

/* the reaper */

struct entry {
    int fd;
    dev_t dev;
    ino_t ino;
    char name[NAME_MAX + 1];
};

static struct entry *tab;
static size_t n_tab, cap_tab, next_sweep = 64;
static int dir = -1; /* /dev/shm */

/* Whether the entry's name still refers to its segment. */
static bool names_it(const struct entry *e)
{
    struct stat st;

    return fstatat(dir, e->name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
           st.st_dev == e->dev && st.st_ino == e->ino;
}

static void drop(size_t i)
{
    if (tab[i].fd >= 0)
        close(tab[i].fd);
    tab[i] = tab[--n_tab];
}

static void sweep(void)
{
    for (size_t i = n_tab; i-- > 0;)
        if (!names_it(&tab[i]))
            drop(i);
    next_sweep = n_tab * 2 > 64 ? n_tab * 2 : 64;
}

static void add(int fd, const char *name, size_t len)
{
    struct entry *e;
    struct stat st;

    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || len == 0 ||
        len > NAME_MAX || memchr(name, '/', len) != NULL ||
        memchr(name, '\0', len) != NULL) {
        close(fd);
        return;
    }
    if (n_tab == cap_tab) {
        size_t cap = cap_tab ? cap_tab * 2 : 16;
        struct entry *t = realloc(tab, cap * sizeof(*t));
        if (t == NULL) {
            close(fd); /* untracked: it lives as CPython's would */
            return;
        }
        tab = t;
        cap_tab = cap;
    }
    e = &tab[n_tab];
    e->fd = fd;
    e->dev = st.st_dev;
    e->ino = st.st_ino;
    memcpy(e->name, name, len);
    e->name[len] = '\0';
    if (!names_it(e)) { /* unlinked before it reached us */
        close(fd);
        return;
    }
    if (++n_tab >= next_sweep)
        sweep();
}

/* One message: 1, or 0 at EOF (every creator is gone). */
static int receive(int s)
{
    char name[NAME_MAX + 1];
    union {
        char buf[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } u;
    struct iovec iov = { .iov_base = name, .iov_len = sizeof(name) };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = u.buf,
                        .msg_controllen = sizeof(u.buf) };
    int fd = -1;
    ssize_t len = recvmsg(s, &m, MSG_CMSG_CLOEXEC);

    if (len < 0)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c != NULL;
         c = CMSG_NXTHDR(&m, c)) {
        size_t k;
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0))
            continue;
        k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(f));
            if (fd < 0)
                fd = f;
            else
                close(f);
        }
    }
    if (len == 0 && fd < 0)
        return 0;
    if (fd < 0 || (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
        if (fd >= 0)
            close(fd);
        return 1;
    }
    add(fd, name, (size_t)len);
    return 1;
}

static void on_events(int ino)
{
    union {
        char buf[4096];
        struct inotify_event align;
    } u;
    ssize_t len = read(ino, u.buf, sizeof(u.buf));
    size_t off = 0;

    while (len > 0 && off + sizeof(struct inotify_event) <= (size_t)len) {
        struct inotify_event ev;
        const char *name = u.buf + off + sizeof(ev);
        memcpy(&ev, u.buf + off, sizeof(ev));
        if (ev.len > (size_t)len - off - sizeof(ev))
            break;
        off += sizeof(ev) + ev.len;
        if (ev.mask & IN_Q_OVERFLOW) {
            sweep();
            continue;
        }
        if (ev.len == 0 || memchr(name, '\0', ev.len) == NULL)
            continue;
        for (size_t i = n_tab; i-- > 0;)
            if (strcmp(tab[i].name, name) == 0 && !names_it(&tab[i]))
                drop(i);
    }
}

/* Under the exclusive lock: nobody else has the segment open or mapped. */
static void reap_locked(struct entry *e)
{
    if (names_it(e))
        unlinkat(dir, e->name, 0);
    close(e->fd);
    e->fd = -1;
}

static void *reap_blocking(void *arg)
{
    struct entry *e = arg;

    while (flock(e->fd, LOCK_EX) < 0 && errno == EINTR)
        ;
    reap_locked(e);
    return NULL;
}

/* Every creator is gone: the holds go, each segment is removed once its
 * last user is. */
static _Noreturn void reap_all(void)
{
    pthread_t *threads = calloc(n_tab ? n_tab : 1, sizeof(*threads));
    bool *started = calloc(n_tab ? n_tab : 1, sizeof(*started));
    pthread_attr_t attr;

    /* The creator's description goes first: at the descriptor limit there
     * is no room for both, and the name outlives it (device and inode
     * tell whether it is still the segment's). */
    for (size_t i = n_tab; i-- > 0;) {
        struct entry *e = &tab[i];
        struct stat st;
        int fd;

        close(e->fd);
        e->fd = fd = openat(dir, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC |
                                              O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0 || st.st_dev != e->dev ||
            st.st_ino != e->ino) {
            drop(i);
        }
    }
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    for (size_t i = 0; i < n_tab; i++) {
        if (flock(tab[i].fd, LOCK_EX | LOCK_NB) == 0)
            reap_locked(&tab[i]);
        else if (threads != NULL && started != NULL)
            started[i] = pthread_create(&threads[i], &attr, reap_blocking,
                                        &tab[i]) == 0;
    }
    /* Without a thread (none could be made), one wait after the other:
     * later, never missed. */
    for (size_t i = 0; i < n_tab; i++) {
        if (started != NULL && started[i])
            pthread_join(threads[i], NULL);
        else if (tab[i].fd >= 0)
            reap_blocking(&tab[i]);
    }
    _exit(0);
}

/* Reads what is still queued: segments sent just before the creator
 * exited. */
static void drain(int s)
{
    struct pollfd p = { .fd = s, .events = POLLIN };

    while (poll(&p, 1, 0) > 0 && (p.revents & POLLIN) && receive(s) == 1)
        ;
}

/* Runs until the creator has exited (its pidfd, or without one, EOF on
 * the socket: every holder of the creator's end has closed it). */
static _Noreturn void reaper_run(int s, int creator)
{
    int ino = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    int32_t self = (int32_t)getpid();
    struct rlimit rl;

    if (ino >= 0 && inotify_add_watch(ino, "/dev/shm", IN_DELETE |
                                      IN_MOVED_FROM | IN_MOVED_TO) < 0)
        ino = mp__fd_close(ino);
    /* One descriptor a segment: as many as the hard limit allows. */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (send(s, &self, sizeof(self), MSG_NOSIGNAL) != (ssize_t)sizeof(self))
        _exit(1);
    for (;;) {
        struct pollfd p[3] = { { .fd = s, .events = POLLIN },
                               { .fd = creator, .events = POLLIN },
                               { .fd = ino, .events = POLLIN } };
        if (poll(p, 3, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (p[2].revents & POLLIN)
            on_events(ino);
        if (p[1].revents & POLLIN)
            break;
        if (p[0].revents & (POLLIN | POLLHUP | POLLERR) && receive(s) == 0)
            break;
    }
    drain(s);
    reap_all();
}

/* Only a creator with this process's credentials may hand it segments
 * (a setuid program run by someone else must not unlink for them).  A
 * start without the creator's socket as descriptor 3 is the program run
 * with this argument by hand: it runs as it would. */
static void reaper_main(void)
{
    struct ucred uc;
    socklen_t len = sizeof(uc);
    pid_t pid;
    int creator, type = 0;
    socklen_t tlen = sizeof(type);

    if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 ||
        type != SOCK_SEQPACKET)
        return;
    if (getsockopt(3, SOL_SOCKET, SO_PEERCRED, &uc, &len) < 0 ||
        uc.pid != getppid() || uc.uid != geteuid() || uc.gid != getegid())
        _exit(1);
    fcntl(3, F_SETFD, FD_CLOEXEC);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, SIG_IGN);
    signal(SIGHUP, SIG_IGN);
    if (chdir("/") < 0)
        _exit(1);
    dir = open("/dev/shm", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0)
        _exit(1);
    /* Our parent cannot be reaped before we are: its pid is its own. */
    creator = mp__pidfd_open(uc.pid);
    pid = fork(); /* not the creator's child: its wait() must not see us */
    if (pid != 0)
        _exit(pid < 0);
    reaper_run(3, creator);
}

#ifdef __GLIBC__
/* glibc passes main()'s arguments to ELF constructors; priority 101: before
 * the program's own constructors run anything. */
__attribute__((constructor(101))) static void detect_reaper(int argc,
                                                            char **argv,
                                                            char **envp)
{
    (void)envp;
    if (argc == 2 && argv != NULL && argv[1] != NULL &&
        strcmp(argv[1], REAPER_MODE) == 0)
        reaper_main();
}
#else
__attribute__((constructor(101))) static void detect_reaper(void)
{
    char buf[256];
    ssize_t n;
    int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
    const char *end;

    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = '\0';
    end = memchr(buf, '\0', (size_t)n);
    if (end != NULL && end + 1 < buf + n && strcmp(end + 1, REAPER_MODE) == 0)
        reaper_main();
}
#endif
