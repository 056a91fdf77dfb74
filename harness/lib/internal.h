/*
 * internal.h - declarations shared by libmp's source files (mp__ prefix) and
 * the bodies of its opaque types.  Not installed.
 */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "mp.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct mp_start_ops;

enum mp__kind {
    MP__KIND_CHILD,  /* made by mp_process_new() */
    MP__KIND_MAIN,   /* the main process's own object */
    MP__KIND_PARENT, /* a child's view of its parent */
};

struct mp_process {
    int refs;
    enum mp__kind kind;
    const struct mp_start_ops *ops;
    const char *type_name; /* "Process": the repr and default name prefix */
    char *name;
    char *name_buf; /* what name points to when it is ours to free */
    int daemon;
    unsigned *identity; /* Process-1:2 is {1, 2} */
    size_t identity_len;
    pid_t parent_pid; /* the creating process; 0 is None */
    char *parent_name;

    mp_target_fn fn; /* NULL: run nothing */
    void *arg;
    size_t arg_len;

    /* What CPython keeps in its Popen object.  wait_lock serialises reaping,
     * so two threads never race to reap one child. */
    pthread_mutex_t wait_lock;
    bool started;
    bool closed;
    bool has_code;
    bool lost; /* reaped by someone else before we held it: status lost */
    int code;
    pid_t pid;
    int pidfd;      /* -1 when pidfds are not used */
    int sentinel;   /* pidfd, or the read end of a pipe (fallback) */
    int parent_w;   /* fallback: write end of the child's parent sentinel */

    /* The registry of started, unreaped children (CPython's _children). */
    bool registered;
    struct mp_process *prev, *next;
};

/* A start method (CPython's Popen classes). */
struct mp_start_ops {
    const char *name;
    /* Creates the child; sets pid, pidfd, sentinel.  Never returns in the
     * child. */
    int (*launch)(mp_process *p);
    /* Waits up to timeout seconds (<= 0: not at all, INFINITY: no limit).
     * 1 once reaped (p->has_code, p->code set), 0 while running, < 0 error. */
    int (*wait)(mp_process *p, double timeout);
    /* Sends sig unless the child was reaped. */
    int (*send_signal)(mp_process *p, int sig);
    /* Releases descriptors. */
    void (*close)(mp_process *p);
};

extern const struct mp_start_ops mp__start_fork;

/* process.c */
mp_process *mp__process_ref(mp_process *p);
/* Sets up a freshly forked child: registry, counter, current and parent
 * objects, stdin. */
void mp__child_init(mp_process *self, int parent_sentinel);
/* Runs the target of the current (child) process and ends it.  Never
 * returns. */
_Noreturn void mp__child_run(mp_process *self);
int mp__daemon_death_signal(void);

/* fd.c */
int mp__fd_close(int fd); /* returns -1 */
bool mp__use_pidfd(void);
int mp__pidfd_open(pid_t pid);
int mp__pidfd_send_signal(int pidfd, int sig);
/* Waits until fd is readable or the absolute CLOCK_MONOTONIC deadline
 * passes: 1 readable, 0 timed out, < 0 error.  EINTR is retried. */
int mp__wait_readable(int fd, double deadline);
/* An exit status as CPython's os.waitstatus_to_exitcode gives it. */
int mp__status_to_code(int status);

/* clock.c */
double mp__now(void); /* CLOCK_MONOTONIC seconds */

/* error.c */
int mp__set_raised(const char *exc, const char *msg);

#endif /* MP_INTERNAL_H */
