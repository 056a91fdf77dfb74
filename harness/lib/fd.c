/*
 * fd.c - descriptors: close, pidfds, waiting for readability against a
 * deadline, exit statuses (CPython: util.close_fds, connection.wait,
 * os.waitstatus_to_exitcode).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

int mp__fd_close(int fd)
{
    if (fd >= 0) {
        int saved = errno;
        close(fd); /* never retried on EINTR: Linux closed it anyway */
        /* Stored only when close() changed it: errno's page of the TLS
         * is then not one a parent copies after every fork(). */
        if (errno != saved)
            errno = saved;
    }
    return -1;
}

/* A call through the PLT to a function the process has not called yet is
 * bound on the spot, and a fork child's binding is lost when it exits: so
 * every child paid again for what only children call (the symbol lookup, a
 * few thousand instructions, and the page faults of reading the dynamic
 * linker's code and the C library's symbol tables and of writing its own
 * copy of the GOT, about ten a child: a third of what libmp added to a bare
 * fork()+waitpid()).  These addresses are bound once, when the program is
 * loaded; reading them through a volatile pointer keeps the compiler from
 * turning the calls back into PLT calls. */
static const struct mp__child_calls child_calls = {
    .open = open,
    .dup2 = dup2,
    .fpurge = __fpurge,
    .fbufsize = __fbufsize,
    .clearerr = clearerr,
    .exit_now = _exit,
};
const struct mp__child_calls *volatile mp__child_calls = &child_calls;

int mp__pidfd_open(pid_t pid)
{
#ifdef SYS_pidfd_open
    long r = syscall(SYS_pidfd_open, pid, 0);
    return r < 0 ? -errno : (int)r;
#else
    (void)pid;
    return -ENOSYS;
#endif
}

int mp__pidfd_send_signal(int pidfd, int sig)
{
#ifdef SYS_pidfd_send_signal
    return syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0 ? -errno
                                                                   : 0;
#else
    (void)pidfd;
    (void)sig;
    return -ENOSYS;
#endif
}

static bool pidfd_ok;

static void probe_pidfd(void)
{
    const char *off = secure_getenv("LIBMP_NO_PIDFD");
    int fd;

    if (off != NULL && off[0] != '\0' && strcmp(off, "0") != 0)
        return;
    /* The answer holds for the life of the process: a kernel that merely
     * had no descriptor or memory to spare at this instant has pidfds
     * all the same (only ENOSYS, or a filter's EPERM, says it has not). */
    fd = mp__pidfd_open(getpid());
    pidfd_ok = fd >= 0 || fd == -EMFILE || fd == -ENFILE || fd == -ENOMEM;
    mp__fd_close(fd);
}

/*
 * pidfds (Linux 5.3) are used when the kernel has them; LIBMP_NO_PIDFD=1 in
 * the environment forces the pipe fallback, which the tests also exercise.
 */
bool mp__use_pidfd(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    pthread_once(&once, probe_pidfd);
    return pidfd_ok;
}

int mp__ppoll_until(struct pollfd *pfd, size_t n, double deadline)
{
    for (;;) {
        struct timespec ts, *tsp = NULL;
        int r;

        /* Recomputed from the absolute deadline after every EINTR, so
         * signals never stretch the wait. */
        if (!isinf(deadline)) {
            double left = deadline - mp__now();
            if (left < 0)
                left = 0;
            if (left > 1e9) /* beyond time_t's reach on some systems */
                left = 1e9;
            ts.tv_sec = (time_t)left;
            ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
            tsp = &ts;
        }
        r = ppoll(pfd, n, tsp, NULL);
        if (r >= 0)
            return r;
        if (errno != EINTR)
            return -errno;
    }
}

int mp__wait_readable(int fd, double deadline)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int r = mp__ppoll_until(&pfd, 1, deadline);

    if (r > 0) /* a closed descriptor is an error, not an event */
        return pfd.revents & POLLNVAL ? -EBADF : 1;
    return r;
}

int mp__status_to_code(int status)
{
    if (WIFSIGNALED(status))
        return -WTERMSIG(status);
    return WEXITSTATUS(status);
}
