/*
 * internal.h - declarations shared by libmp's source files (mp__ prefix) and
 * the bodies of its opaque types.  Not installed.
 */
#ifndef MP_INTERNAL_H
#define MP_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "mp.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct mp_start_ops;

enum mp__kind {
    MP__KIND_CHILD,  /* made by mp_process_new() */
    MP__KIND_MAIN,   /* the main process's own object */
    MP__KIND_PARENT, /* a child's view of its parent */
};

struct mp__name;

/* An mp_stdio option, its path copied. */
struct mp__stdio {
    int how;
    char *path;
    int append;
    int fd;
};

/* What mp_process_capture() has read from one pipe so far. */
struct mp__captured {
    char *buf;
    size_t len, cap;
};

/*
 * Threads: the fields a call may change while other threads hold the object
 * (started, closed, starting, daemon, name, renamed, names, users, release,
 * nconns, conns) change under process.c's reg_lock, which fork() never
 * copies held; readers load started, closed, daemon, name and renamed
 * atomically.  started and closed only ever become true.  What launch()
 * sets (ops, method, pid, pidfd, sentinel) is published by started.
 */
struct mp_process {
    int refs;
    enum mp__kind kind;
    const struct mp_start_ops *ops; /* set by start() */
    const mp_context *ctx; /* NULL: the default context, looked up at start */
    const char *method;    /* the start method it was started with */
    const char *type_name; /* "Process": the repr and default name prefix */
    char *name;
    char *name_buf; /* what name points to when it is ours to free */
    /* set_name()'s names, each kept until the object is freed, since
     * another thread may still read one mp_process_name() returned */
    struct mp__name *names;
    char *renamed; /* set while start() runs; the name once it returns */
    int daemon;
    unsigned *identity; /* Process-1:2 is {1, 2} */
    size_t identity_len;
    pid_t parent_pid; /* the creating process; 0 is None */
    char *parent_name;

    mp_target_fn fn; /* NULL: run nothing */
    char target_name[64];
    char *cwd;       /* a child from a blob: its parent's directory */
    /* The per-process options (options.c): the environment, as given
     * (NULL: the parent's), the directory and the streams are copied at
     * creation; the streams and the directory are opened by start(). */
    char **env;
    size_t nenv;
    int env_mode;
    char *workdir;
    struct mp__stdio stdio[3];
    int stdio_fd[3]; /* the parent's ends of MP_STDIO_PIPE streams, or -1 */
    struct mp__captured captured[2]; /* stdout, stderr */
    /* Descriptors handed to the child, with what each is for (MP__USE_*):
     * the typed arguments' handles first, then mp_process_add_conn()'s. */
    mp_conn **conns;
    unsigned char *conn_use;
    size_t nconns;
    void *arg;
    size_t arg_len;
    char *targs; /* the typed arguments, encoded (args.c) */
    size_t targs_len;
    mp_args *args_view; /* in the process itself: targs decoded */

    /* What CPython keeps in its Popen object.  wait_lock serialises reaping,
     * so two threads never race to reap one child. */
    pthread_mutex_t wait_lock;
    bool started;
    bool closed;
    bool starting; /* a start() is launching the child */
    bool release;  /* close() left the descriptors to the last user */
    unsigned users; /* calls using the descriptors: close() waits for them */
    bool has_code;
    bool lost; /* reaped by someone else before we held it: status lost */
    int code;
    pid_t pid;
    int pidfd;      /* -1 when pidfds are not used */
    int sentinel;   /* pidfd, or the read end of a pipe (fallback) */
    int parent_w;   /* fallback: write end of the child's parent sentinel */

    /* The registry of started, unreaped children (CPython's _children):
     * linked into it while registered is set and reg_gen is the process's
     * current generation (a fork child's copy of its parent's list is
     * abandoned by moving to the next, not by writing to every object). */
    bool registered;
    unsigned reg_gen;
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
extern const struct mp_start_ops mp__start_spawn;
extern const struct mp_start_ops mp__start_forkserver;

/* start_fork.c: what spawn shares (its children are ours, as fork's) */
int mp__fork_wait(mp_process *p, double timeout);
int mp__fork_send_signal(mp_process *p, int sig);
void mp__fork_close(mp_process *p);
/* SIGCHLD is neither ignored (the kernel reaps) nor handled (a handler may
 * waitpid(-1)): nobody but libmp reaps this process's children. */
bool mp__only_we_reap(void);
/* No pidfds: held from making a child's sentinel pipe until the parent has
 * closed the child's end, so no fork child holds it meanwhile. */
/*
 * A fork child's reset of what shared-memory objects keep per thread and
 * per process (its one thread is none of its parent's): live.c's identity,
 * robust.c's held mutexes, side.c's bias token, sync.c's fork generation.
 * One handler, queue.c's, registered before main(), runs them all, so that
 * a fork walks one handler for them, not one each.
 */
void mp__live_forked(void);
void mp__robust_forked(void);
void mp__side_forked(void);
void mp__sync_forked(void);
void mp__pool_forked(void);
void mp__forked(void);
void mp__pipes_lock(void);
void mp__pipes_unlock(void);
/* No pidfds: the write end of this child's own sentinel, kept from its
 * children. */
void mp__set_self_sentinel(int fd);

/* context.c */
const mp_context *mp__default_context(void); /* fixes it */
void mp__force_start_method(const char *method);
const struct mp_start_ops *mp__context_ops(const mp_context *ctx);
const char *mp__context_type(const mp_context *ctx);

/* spawn.c: what a child started by exec is told, as bytes */
int mp__blob_build(const mp_process *p, char **out, size_t *len);
/* Makes the process object a blob describes, in the new child. */
int mp__blob_child(const char *buf, size_t len, mp_process **out,
                   const int *conn_fds, size_t nfds);
/* Writes/reads a length-prefixed blob on a (blocking) descriptor; on a
 * failed read, *buf is NULL.  A read's memory grows with the bytes that
 * arrive, whatever the length says. */
int mp__blob_send(int fd, const char *buf, size_t len, double deadline);
int mp__blob_recv(int fd, char **buf, size_t *len);
/* argv[1] of a libmp child: a spawned child, the fork server. */
#define MP__SPAWN_MODE "--libmp-spawn"
#define MP__FORKSERVER_MODE "--libmp-forkserver"
/* posix_spawn of this program with `mode` (MP__SPAWN_MODE) and the given
 * descriptors placed at 3, 4, ... in the child; nothing else is inherited
 * but stdin, stdout and stderr.  The child is in a process group of its
 * own until mp__bootstrap_end(). */
int mp__spawn_self(const char *mode, const int *fds, int nfds, pid_t *pid);
/* The program to run again (the spawn method's, the SharedMemory
 * reaper's): /proc/self/exe, or what it names under an emulator. */
const char *mp__self_exe(void);
/* A libmp child that has not reached mp_main() (or a fork child of one):
 * it may not start spawn or forkserver children (MP_EBOOTSTRAP). */
bool mp__bootstrapping(void);
/* The fork server, before it answers: checks the credentials of the
 * parent on `sock` (_exit(1) if they are not its own), rejoins the
 * parent's process group and stops dying with the parent's thread. */
void mp__bootstrap_end(int sock);
/* Kills a child that did not answer with its process group, and reaps it. */
void mp__launch_kill(pid_t pid, int pidfd);
/* Seconds a child or the fork server may take to answer: 10, or
 * LIBMP_START_TIMEOUT. */
double mp__start_timeout(void);
/* Waits for the one-byte ack of a child that reached mp_main(). */
int mp__wait_ack(int sock, int pidfd, pid_t pid);

/* wire.c: what a parent tells a child (the spawn blob, typed arguments),
 * as native-endian 64-bit words and length-prefixed strings.  A failed
 * write (no memory) or read (past the end, over a limit) sets `failed`,
 * and every later call does nothing: check once, at the end. */
struct mp__out {
    char *p;
    size_t len, cap;
    bool failed;
};
struct mp__in {
    const char *p;
    size_t left;
    bool failed;
};
/* Makes room for n more bytes: false (and failed) without memory. */
bool mp__out_grow(struct mp__out *o, size_t n);
/* Inline: a pool's task and its result are a handful of these each. */
static inline void mp__put(struct mp__out *o, const void *data, size_t n)
{
    if (o->failed || n == 0 || (n > o->cap - o->len && !mp__out_grow(o, n)))
        return;
    memcpy(o->p + o->len, data, n);
    o->len += n;
}
static inline void mp__put_u64(struct mp__out *o, uint64_t v)
{
    mp__put(o, &v, sizeof(v));
}
void mp__put_str(struct mp__out *o, const void *s, size_t n);
static inline uint64_t mp__get_u64(struct mp__in *r) /* 0 once failed */
{
    uint64_t v = 0;

    if (r->failed || r->left < sizeof(v)) {
        r->failed = true;
        return 0;
    }
    memcpy(&v, r->p, sizeof(v));
    r->p += sizeof(v);
    r->left -= sizeof(v);
    return v;
}
/* A terminated copy (malloc'd) of a string of at most max bytes; *n_out
 * (may be NULL) its length.  NULL once failed. */
char *mp__get_str(struct mp__in *r, size_t max, size_t *n_out);

/* args.c */
/* The most descriptors a process may be handed, and with the options'
 * streams and directory: all must fit in one SCM_RIGHTS message with the
 * fork server's own (64), and in spawn's 64 with its three. */
#define MP__MAX_HANDLES 56
#define MP__MAX_CONNS (MP__MAX_HANDLES + 4)
/* What a descriptor handed to a child is for. */
enum {
    MP__USE_ADDED = 0, /* mp_process_add_conn(), mp_process_add_queue() */
    MP__USE_ARG = 1,   /* a typed argument's queue or connection */
    MP__USE_STDIN = 2, /* the options' streams: 2 + the descriptor */
    MP__USE_STDOUT = 3,
    MP__USE_STDERR = 4,
    MP__USE_CWD = 5,   /* the options' directory (O_PATH) */
};
/* Encodes n values; the queues' and connections' handles go to
 * handles[0..*nhandles) (room for MP__MAX_HANDLES), in the order the
 * encoding numbers them.  MP_EINVAL for a bad value, -ENOMEM. */
int mp__args_encode(const mp_arg *v, size_t n, char **out, size_t *len,
                    mp_conn **handles, size_t *nhandles);
/* Decodes what mp__args_encode() made, in the process it was made for:
 * conns and use are that process's handles.  -EPROTO for anything
 * malformed (every length and index is checked), -ENOMEM. */
int mp__args_decode(const char *buf, size_t len, mp_conn *const *conns,
                    const unsigned char *use, size_t nconns, mp_args **out);
void mp__args_free(mp_args *a);
/* Pool tasks (pool*.c): a list of values without handles.  check_plain()
 * is check() that refuses a handle as CPython's pickling does
 * (MP_ERAISED "RuntimeError: Queue objects should only be shared between
 * processes through inheritance"); encode_plain() appends the encoding
 * of a list check_plain() passed. */
int mp__args_check_plain(const mp_arg *v, size_t n);
void mp__args_encode_plain(struct mp__out *o, const mp_arg *v, size_t n);
/* Decodes such a list into *a (NULL at first), reusing its memory from
 * one call to the next: a worker's tasks make no allocation once it has
 * grown.  -EPROTO for anything malformed or a handle, -ENOMEM.  Freed by
 * mp__args_reuse_free(). */
int mp__args_decode_reuse(mp_args **a, const char *buf, size_t len);
void mp__args_reuse_free(mp_args *a);
/* A list of a's first n values, sharing them (free() it; a outlives it). */
mp_args *mp__args_prefix(const mp_args *a, size_t n);
/* What mp_child_args() returns in this thread (NULL: the process's own
 * list): a pool worker's task's or initializer's arguments. */
void mp__set_task_args(const mp_args *a);
/* Whether the current process was given typed arguments. */
bool mp__current_has_args(void);
/* process.c: the current process's arguments, decoded on first use (with
 * args.c's lock held); NULL when it has none. */
const mp_args *mp__current_args(void);
/* An error raised where no caller can take it: ends the process as an
 * uncaught exception does (a child: "Process <name>:" and the exception,
 * exit code 1; the main process: the exception and exit(1)). */
_Noreturn void mp__uncaught(int err);

/* queue.c: a queue's handle (its memfd), and a view of the queue another
 * process's handle names, freed by mp__queue_view_free() (NULL: none). */
mp_conn *mp__queue_handle(mp_queue *q);
mp_queue *mp__queue_view(mp_conn *handle);
void mp__queue_view_free(mp_queue *q);
/* A blocking get into buf that calls claim(ctx, pos, msg, n) with the
 * consumers' side held, after the copy and before the commit: pos is
 * where the record starts, and the record is taken once mp__queue_head()
 * has passed pos (pool workers note the task they take: pool_worker.c). */
typedef void (*mp__queue_claim_fn)(void *ctx, uint64_t pos, const void *msg,
                                   size_t n);
/* It waits until a message comes or *stop (in shared memory) is not 0:
 * then -ECANCELED, once whoever stored it has called
 * mp__queue_wake_getters(). */
int mp__queue_get_claim(mp_queue *q, void *buf, size_t size, size_t *len,
                        mp__queue_claim_fn claim, void *ctx,
                        const _Atomic uint32_t *stop);
void mp__queue_wake_getters(mp_queue *q);
/* A blocking get of up to max messages at once, into buf one after
 * another, their lengths in lens (*count of them: 1 or more): those
 * waiting whole that fit buf, taken in one commit.  MP_ETOOSHORT, *lens
 * the first one's length, when it does not fit. */
int mp__queue_get_many(mp_queue *q, void *buf, size_t size, size_t *lens,
                       size_t max, size_t *count);
uint64_t mp__queue_head(mp_queue *q);
/* Up to n puts of an unbounded queue in one commit, the messages one after
 * another in buf: those that fit the ring as it is (*done; none, maybe:
 * then mp_queue_put() the next, which waits or grows). */
int mp__queue_put_many(mp_queue *q, const char *buf, const size_t *lens,
                       size_t n, size_t *done);
/* "Queue", "JoinableQueue" or "SimpleQueue". */
const char *mp__queue_kind_name(const mp_queue *q);

/* sync.c: the handle (memfd) each object is handed to a child with, and
 * the objects another process's handles name (views), which the argument
 * list owns and frees (NULL: none).  A condition's lock is viewed first:
 * mp__cond_view() refers to it. */
mp_conn *mp__lock_handle(mp_lock *l);
mp_conn *mp__cond_handle(mp_cond *c);
mp_conn *mp__event_handle(mp_event *e);
mp_conn *mp__barrier_handle(mp_barrier *b);
int mp__lock_kind(mp_lock *l); /* 1 Lock, 2 RLock, 3 Semaphore, 4 Bounded */
mp_lock *mp__lock_view(mp_conn *handle);
mp_cond *mp__cond_view(mp_conn *handle, mp_lock *lock);
mp_event *mp__event_view(mp_conn *handle);
mp_barrier *mp__barrier_view(mp_conn *handle);
void mp__lock_view_free(mp_lock *l);
void mp__cond_view_free(mp_cond *c);
void mp__event_view_free(mp_event *e);
void mp__barrier_view_free(mp_barrier *b);
/* A reference of a value's own to its lock (any process's lock, a view
 * included), and its release (NULL: none). */
mp_lock *mp__lock_ref(mp_lock *l);
void mp__lock_unref(mp_lock *l);

/* value.c: a value's handle (its memfd) and lock (NULL: raw); the error
 * that pickling it gives (a pool task's argument); the value another
 * process's handle names, with the lock view given (NULL for a raw one),
 * freed by mp__value_view_free() (NULL: not a libmp value, or no
 * memory). */
mp_conn *mp__value_handle(mp_value *v);
mp_lock *mp__value_lock(mp_value *v);
int mp__value_refuse(mp_value *v);
mp_value *mp__value_view(mp_conn *handle, mp_lock *lock);
void mp__value_view_free(mp_value *v);

/* connection.c */
/* flags: 1 readable, 2 writable, 4 a pipe(2) rather than a socket, 8 a
 * queue's memfd (the handle a queue is handed to a child with), 16 a
 * synchronisation object's memfd (sync.c) */
#define MP__CONN_QUEUE 8u
#define MP__CONN_SYNC 16u
mp_conn *mp__conn_wrap(int fd, unsigned flags);
/* The descriptor, which the caller now owns: c is closed. */
int mp__conn_take_fd(mp_conn *c);
/* Another reference, released by mp_conn_free(). */
mp_conn *mp__conn_ref(mp_conn *c);
/* In a new child, under MP_SIGPIPE_IGNORE: SIGPIPE at its default becomes
 * ignored, as in every CPython process (its interpreter does it at start,
 * and a fork child inherits it). */
void mp__sigpipe_child(void);
/* process.c: drops the references a process holds on what it was handed
 * (once started: CPython's start() drops its args). */
void mp__process_release_conns(mp_process *p);
unsigned mp__conn_flags(const mp_conn *c);
/* In a child: what its parent handed it (connections and queues' handles,
 * in the order they were added). */
void mp__set_child_conns(mp_conn **conns, const unsigned char *use,
                         size_t n);
size_t mp__child_conn_count(void);
/* The i-th of them if mp_process_add_conn()/add_queue() handed it, else
 * NULL. */
mp_conn *mp__child_conn_raw(size_t i);

/* start_forkserver.c */
_Noreturn void mp__forkserver_main(void);
/* At exit: ends the fork server this process started, and reaps it. */
void mp__forkserver_stop(void);
/* Reaps the fork server this process started if it has died, without
 * waiting (for the places that reap finished children). */
void mp__forkserver_reap(void);

/* process.c */
mp_process *mp__process_ref(mp_process *p);
/* mp_process_create() of arguments already encoded (mp__args_encode()),
 * with a blob: handles[0..nh) are referenced, targs and blob copied. */
int mp__process_create_encoded(mp_process **out, const char *target,
                               const void *blob, size_t blob_len,
                               const char *targs, size_t targs_len,
                               mp_conn *const *handles, size_t nh,
                               const mp_process_options *options);
/* Sets up a freshly forked child: registry, counter, current and parent
 * objects, stdin. */
void mp__child_init(mp_process *self, int parent_sentinel);
/* Runs the target of the current (child) process and ends it.  Never
 * returns. */
_Noreturn void mp__child_run(mp_process *self);
/* A spawned child leaves with exit(), which runs its own atexit handlers as
 * CPython's spawn children do; fork and forkserver children use _exit(). */
void mp__set_spawned_child(void);
bool mp__spawned(void); /* this process is a spawned child */
mp_process *mp__process_alloc(void);
/* Holds p's descriptors (sentinel, pipes) for a call: MP_ECLOSED once
 * closed; close() then leaves them to the last holder. */
int mp__process_hold(mp_process *p);
void mp__process_unhold(mp_process *p);
int mp__daemon_death_signal(void);

/* options.c (mp_process_options' env, cwd and stdio) */
/* Checks and copies the options into a new process: MP_EINVAL, -ENOMEM. */
int mp__options_copy(mp_process *p, const mp_process_options *o);
/* Frees the copies and releases the pipes (mp__options_close()). */
void mp__options_free(mp_process *p);
/* At start(): opens the streams and the directory and appends the child's
 * descriptors to p->conns (after every handle); -errno for a path that
 * cannot be opened. */
int mp__options_open(mp_process *p);
/* After the launch: drops the child's descriptors appended from `from` on
 * (the conns they were), and on failure the parent's pipe ends too. */
void mp__options_launched(mp_process *p, size_t from, bool ok);
/* close(): releases the parent's pipe ends and what capture() kept. */
void mp__options_close(mp_process *p);
/* In the child, before its target: the streams, directory and
 * environment its parent chose. */
void mp__options_apply(mp_process *self);
/* fork(): the child of p keeps p's descriptors; every other fork child of
 * this process gets /dev/null in place of any that options.c made. */
void mp__options_fork_keep(const mp_process *p);
/* A duplicate of fd at min or above, listed so: posix_spawn's copies of a
 * child's descriptors reach no other fork child either.  -errno. */
int mp__options_dup(int fd, int min);
/* Closes a descriptor mp__options_dup() made; returns -1. */
int mp__options_drop(int fd);

/* fd.c */
int mp__fd_close(int fd); /* returns -1 */

/* shm_reaper.c: hands a segment this process just created (its open
 * description, whose shared flock is the creator's hold, and its name
 * under /dev/shm) to this process's reaper, starting one if needed.  Never
 * fails: without a reaper the segment lives as CPython's do. */
void mp__shm_track(int fd, const char *name);
/* The C library calls a child makes between its fork and its exit that its
 * parent may never have made (see fd.c). */
struct mp__child_calls {
    int (*open)(const char *path, int flags, ...);
    int (*dup2)(int fd, int to);
    void (*fpurge)(FILE *f);
    size_t (*fbufsize)(FILE *f);
    void (*clearerr)(FILE *f);
    void (*exit_now)(int code) __attribute__((noreturn));
};
extern const struct mp__child_calls *volatile mp__child_calls;
bool mp__use_pidfd(void);
int mp__pidfd_open(pid_t pid);
int mp__pidfd_send_signal(int pidfd, int sig);
/* ppoll() until the absolute CLOCK_MONOTONIC deadline (INFINITY: none):
 * its count, or -errno.  EINTR is retried. */
struct pollfd;
int mp__ppoll_until(struct pollfd *pfd, size_t n, double deadline);
/* Waits until fd is readable or the absolute CLOCK_MONOTONIC deadline
 * passes: 1 readable, 0 timed out, < 0 error.  EINTR is retried. */
int mp__wait_readable(int fd, double deadline);
/* An exit status as CPython's os.waitstatus_to_exitcode gives it. */
int mp__status_to_code(int status);

/* clock.c */
double mp__now(void); /* CLOCK_MONOTONIC seconds */
/* Seconds as poll()'s milliseconds, rounded up (libm-free ceil). */
int mp__ms_ceil(double seconds);

/* target.c: why there is no target by that name: MP_ENOTARGET, or an
 * MP_ERAISED ValueError naming a name that two functions claimed. */
int mp__target_missing(const char *name);

/* error.c */
int mp__set_raised(const char *exc, const char *msg);

/* pool_worker.c: in a pool worker's task, an uncaught error (mp_check(),
 * mp_args_int()...) is first sent as the task's result; elsewhere,
 * nothing. */
void mp__pool_task_uncaught(int err);

#endif /* MP_INTERNAL_H */
