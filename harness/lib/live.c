/*
 * live.c - telling a thread of any process dead, by its ids and its start
 * time in /proc (live.h).
 *
 * Each thread reads its own identity once, on first need (its start time
 * again later if /proc could not be read for want of a descriptor or
 * memory); a fork child's thread reads its own anew.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "live.h"

#define PID_LIMIT (1 << 22) /* the kernel's PID_MAX_LIMIT: no pid or tid is
                               larger */

/* A thread's start time as start_time() gives it: START_DEAD when the
 * thread is gone or a zombie, START_UNKNOWN when /proc cannot say (no
 * descriptor left, hidden, ...): never taken for dead. */
#define START_DEAD 0
#define START_UNKNOWN UINT64_MAX

static _Thread_local struct {
    struct mp__thread_id id; /* start 0: unknown */
    bool read;               /* id is this thread's */
    bool later;              /* start to be read again when next needed */
} me;

/* A fork child's one thread is not its parent's thread (mp__forked()). */
void mp__live_forked(void)
{
    memset(&me, 0, sizeof(me));
}

/* Field 22 of /proc/PID/task/TID/stat.  A zombie is dead unless
 * zombie_ok: a process's leader stays a zombie while its other threads
 * run, and keeps its start time until the process is reaped. */
static uint64_t start_time(pid_t pid, pid_t tid, bool zombie_ok)
{
    char path[64], buf[1024], *p;
    unsigned long long start = 0;
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/task/%d/stat", (int)pid,
             (int)tid);
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        /* Gone, if the kernel agrees that no such thread is in that
         * process (/proc may hide a live one). */
        if ((errno == ENOENT || errno == ESRCH) &&
            syscall(SYS_tgkill, pid, tid, 0) < 0 && errno == ESRCH)
            return START_DEAD;
        return START_UNKNOWN;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return n == 0 || errno == ESRCH ? START_DEAD : START_UNKNOWN;
    buf[n] = '\0';
    /* After the name (which may hold anything but ends at the last ')'):
     * the state, then fields 4 to 21, then the start time. */
    if ((p = strrchr(buf, ')')) == NULL || p[1] != ' ')
        return START_UNKNOWN;
    if (!zombie_ok && (p[2] == 'Z' || p[2] == 'X' || p[2] == 'x'))
        return START_DEAD;
    p += 3;
    for (int field = 3; field < 22 && p != NULL; field++)
        if ((p = strchr(p, ' ')) != NULL)
            p++;
    if (p == NULL || sscanf(p, "%llu", &start) != 1 || start == START_DEAD ||
        start == START_UNKNOWN)
        return START_UNKNOWN;
    return start;
}

/* The inode of this process's namespace of that name (pid, time): a
 * thread's ids mean nothing in another PID namespace, and its start time is
 * shifted by the reader's time namespace.  0: unknown. */
static uint64_t ns_inode(const char *name)
{
    char path[64];
    struct stat st;

    snprintf(path, sizeof(path), "/proc/self/ns/%s", name);
    return stat(path, &st) == 0 ? (uint64_t)st.st_ino : 0;
}

/* Whether this thread's /proc is its own PID namespace's: a /proc mounted
 * for another one (a PID namespace made without remounting /proc) names
 * other tasks by these numbers. */
static bool proc_is_mine(pid_t pid, pid_t tid)
{
    char want[64], got[64];
    ssize_t n;

    snprintf(want, sizeof(want), "%d/task/%d", (int)pid, (int)tid);
    n = readlink("/proc/thread-self", got, sizeof(got) - 1);
    if (n < 0)
        return false;
    got[n] = '\0';
    return strcmp(got, want) == 0;
}

/* This thread's start time, or 0.  A /proc that could not be opened for
 * want of a descriptor or memory is asked again later: the thread must not
 * stay one that cannot be told dead, or blind to the dead, because its
 * first question came at such a moment. */
static void read_start(void)
{
    uint64_t start;
    int err;

    errno = 0;
    start = proc_is_mine(me.id.pid, me.id.tid)
                ? start_time(me.id.pid, me.id.tid, false) : START_UNKNOWN;
    err = errno;
    me.later = start == START_UNKNOWN &&
               (err == EMFILE || err == ENFILE || err == ENOMEM);
    me.id.start = start == START_UNKNOWN ? 0 : start;
}

/* This thread's identity, read on first need. */
static void read_me(void)
{
    if (!me.read) {
        me.id.pid = getpid();
        me.id.tid = (pid_t)syscall(SYS_gettid);
        read_start();
        me.id.ns = ns_inode("pid");
        me.id.tns = ns_inode("time"); /* 0 before Linux 5.6: none to differ */
        me.read = true;
    } else if (me.later) {
        read_start();
    }
}

bool mp__thread_self(struct mp__thread_id *id)
{
    read_me();
    *id = me.id;
    return me.id.start != 0 && me.id.ns != 0;
}

bool mp__thread_dead(const struct mp__thread_id *id)
{
    struct mp__thread_id t = mp__thread_id_read(id);
    uint64_t start;

    read_me();
    if (me.id.start == 0 || t.ns == 0 || t.ns != me.id.ns ||
        t.tns != me.id.tns)
        return false;
    if (t.pid <= 0 || t.pid > PID_LIMIT || t.tid <= 0 || t.tid > PID_LIMIT)
        return true;
    if (t.pid == me.id.pid && t.tid == me.id.tid)
        return t.start != me.id.start;
    start = start_time(t.pid, t.tid, false);
    return start != START_UNKNOWN && start != t.start;
}

bool mp__process_self(struct mp__thread_id *id)
{
    uint64_t start = START_UNKNOWN;

    read_me();
    if (me.id.start != 0 && me.id.ns != 0)
        start = start_time(me.id.pid, me.id.pid, true);
    *id = (struct mp__thread_id){ me.id.pid, me.id.pid, 0, me.id.ns,
                                  me.id.tns };
    if (start == START_DEAD || start == START_UNKNOWN)
        return false;
    id->start = start;
    return true;
}

int mp__process_check(const struct mp__thread_id *id)
{
    uint64_t start;

    read_me();
    if (me.id.start == 0 || id->ns == 0 || id->start == 0 ||
        id->ns != me.id.ns || id->tns != me.id.tns)
        return -1;
    if (id->pid <= 0 || id->pid > PID_LIMIT)
        return 0;
    start = start_time(id->pid, id->pid, true);
    if (start == START_UNKNOWN)
        return -1;
    return start == id->start;
}
