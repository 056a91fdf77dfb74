/*
 * mp.h - libmp: the process semantics of Python's multiprocessing, in C.
 *
 * Every call mirrors a method of CPython's multiprocessing (Lib/multiprocessing/
 * process.py, popen_fork.py, util.py) and gives the same observable result: the
 * same exit codes, states, names, errors and timeouts.  Where CPython is weak,
 * libmp does better and says so next to the declaration ("Beyond CPython").
 *
 * Conventions
 *  - Functions returning int return >= 0 on success and a negative error code on
 *    failure: -errno for system errors, or one of the MP_E* codes below, each of
 *    which carries CPython's exception name and message (mp_exception_name(),
 *    mp_strerror()).  errno is never the channel.
 *  - Objects are opaque.  *_new(&out, ...) creates, *_free(p) releases, accepts
 *    NULL and returns NULL: `p = mp_process_free(p);`.
 *  - Threads.  Any call on a process object may be made from any thread at
 *    the same time as any other call on the same object, as CPython's
 *    Process methods may; mp_active_children() hands each caller references
 *    to children their owners go on using.  A call sees another thread's
 *    change whole or not at all: a start() in progress counts as started (a
 *    second start() is MP_ESTARTTWICE, close() is MP_ERUNNING), and a close()
 *    lets the calls already using the descriptors finish first.  The one
 *    rule is the reference: a thread holds one (mp_process_new()'s, or a
 *    listed child's) for as long as it uses the object, and no call may use
 *    an object after mp_process_free() has dropped the last.  A name
 *    mp_process_name() returned stays valid until the object is freed,
 *    renamed or not.  The library's own state (the registry of children, the
 *    start method, the daemon death signal) is thread-safe, and a fork() of
 *    the program's own while other threads are inside libmp leaves the child
 *    none of libmp's locks held.  A connection may have one thread sending
 *    and another receiving at once; anything else on one connection, one
 *    thread at a time.  A queue may be used by any number of threads.
 *
 * Start with the section "processes, targets and arguments: the way in".
 */
#ifndef MP_H
#define MP_H

#include <errno.h>
#include <stddef.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

/* C11's _Noreturn is not C++'s; gcc and clang (this header already needs
 * their attributes) take the attribute in either language. */
#ifdef __cplusplus
#define MP__NORETURN __attribute__((noreturn))
#else
#define MP__NORETURN _Noreturn
#endif

#define MP_VERSION_MAJOR 0
#define MP_VERSION_MINOR 1
#define MP_VERSION_PATCH 0
#define MP_VERSION "0.1.0"

/* errors */

/*
 * X(name, code, CPython exception, CPython message).  The messages are CPython's
 * own texts, from Lib/multiprocessing/process.py, letter for letter.
 */
#define MP_ERROR_MAP(X)                                                       \
    X(ESTARTTWICE, -4000, "AssertionError", "cannot start a process twice")  \
    X(ENOTCREATOR, -4001, "AssertionError",                                   \
      "can only start a process object created by current process")           \
    X(EDAEMONIC, -4002, "AssertionError",                                     \
      "daemonic processes are not allowed to have children")                  \
    X(ENOTSTARTEDJOIN, -4003, "AssertionError",                               \
      "can only join a started process")                                      \
    X(ENOTCHILD, -4004, "AssertionError", "can only join a child process")    \
    X(ENOTCHILDTEST, -4005, "AssertionError", "can only test a child process")\
    X(EHASSTARTED, -4006, "AssertionError", "process has already started")   \
    X(ENAME, -4007, "AssertionError", "name must be a string")               \
    X(ERUNNING, -4008, "ValueError",                                          \
      "Cannot close a process while it is still running. "                    \
      "You should first call join() or terminate().")                         \
    X(ECLOSED, -4009, "ValueError", "process object is closed")              \
    X(ENOTSTARTED, -4010, "ValueError", "process not started")               \
    X(ENOPOPENTERM, -4011, "AttributeError",                                  \
      "'NoneType' object has no attribute 'terminate'")                       \
    X(ENOPOPENKILL, -4012, "AttributeError",                                  \
      "'NoneType' object has no attribute 'kill'")                            \
    X(ENOTARGET, -4013, "AttributeError", "no target registered by that name")\
    X(ENOCPU, -4014, "NotImplementedError", "cannot determine number of cpus")\
    X(ERAISED, -4015, "Exception", "an exception raised with mp_raise()")   \
    X(ECONTEXTSET, -4016, "RuntimeError", "context has already been set")    \
    X(ECONCRETE, -4017, "ValueError",                                         \
      "cannot set start method of concrete context")                          \
    X(ENOMPMAIN, -4018, "RuntimeError",                                       \
      "the child did not reach mp_main(): a program that uses the spawn or "  \
      "forkserver start method must call mp_main(argc, argv) first thing in " \
      "main()")                                                               \
    X(EFORKSERVER, -4019, "RuntimeError",                                     \
      "the fork server failed or died before answering")                      \
    X(EHANDLECLOSED, -4020, "OSError", "handle is closed")                    \
    X(EREADONLY, -4021, "OSError", "connection is read-only")                 \
    X(EWRITEONLY, -4022, "OSError", "connection is write-only")               \
    X(EBADLENGTH, -4023, "OSError", "bad message length")                     \
    X(EEOF, -4024, "EOFError", "")                                            \
    X(EEOFMSG, -4025, "OSError", "got end of file during message")           \
    X(ETOOSHORT, -4026, "multiprocessing.context.BufferTooShort",             \
      "the message is longer than the buffer")                                \
    X(EEMPTY, -4027, "queue.Empty", "")                                       \
    X(EFULL, -4028, "queue.Full", "")                                         \
    X(EQCLOSED, -4029, "ValueError", "Queue is closed")                      \
    X(EQNOTCLOSED, -4030, "AssertionError", "Queue not closed")              \
    X(ETASKDONE, -4031, "ValueError", "task_done() called too many times")   \
    X(EQCORRUPT, -4032, "OSError", "not a libmp queue (bad shared memory)") \
    X(EBOOTSTRAP, -4033, "RuntimeError",                                      \
      "An attempt has been made to start a new process before the current "  \
      "process has finished its bootstrapping phase.  This probably means "  \
      "that you are not using fork to start your child processes and you "   \
      "have forgotten to call mp_main(argc, argv) first thing in main().")   \
    X(ERELEASED, -4034, "ValueError",                                         \
      "semaphore or lock released too many times")                            \
    X(ENOTOWNER, -4035, "AssertionError",                                     \
      "attempt to release recursive lock not owned by thread")                \
    X(ENOTOWNED, -4036, "AssertionError", "lock is not owned")               \
    X(EWAITNOTOWNED, -4037, "AssertionError",                                 \
      "must acquire() condition before using wait()")                         \
    X(EBROKENBARRIER, -4038, "threading.BrokenBarrierError", "")             \
    X(ESEMVALUE, -4039, "OSError", "[Errno 22] Invalid argument")            \
    X(EOWNERDEAD, -4040, "OwnerDiedError",                                    \
      "the lock's holder died holding it; the caller holds it now")           \
    X(EROBUSTOWNER, -4041, "RuntimeError",                                    \
      "a robust lock can only be released by the thread that holds it")      \
    X(ESYNCCORRUPT, -4042, "OSError",                                         \
      "not a libmp synchronisation object (bad shared memory)")               \
    X(EPOOLPROCS, -4043, "ValueError",                                        \
      "Number of processes must be at least 1")                               \
    X(EPOOLNOTRUNNING, -4044, "ValueError", "Pool not running")              \
    X(EPOOLRUNNING, -4045, "ValueError", "Pool is still running")            \
    X(EMAXTASKS, -4046, "ValueError",                                         \
      "maxtasksperchild must be a positive int or None")                      \
    X(ERESULTTIMEOUT, -4047, "multiprocessing.context.TimeoutError", "")     \
    X(EWORKERLOST, -4048, "WorkerLostError",                                  \
      "a pool worker died running the task")                                  \
    X(EPOOLTERMINATED, -4049, "RuntimeError",                                 \
      "the pool was terminated before the task ended")                        \
    X(EVALINDEX, -4050, "IndexError", "invalid index")                        \
    X(EVALSLICE, -4051, "ValueError",                                         \
      "Can only assign sequence of same size")                                \
    X(EVALSIZE, -4052, "TypeError", "this type has no size")                 \
    X(EVALSHARE, -4054, "RuntimeError",                                       \
      "Synchronized objects should only be shared between processes "        \
      "through inheritance")

#define MP__ERROR_ENUM(name, code, exc, msg) MP_##name = (code),
enum { MP_ERROR_MAP(MP__ERROR_ENUM) MP__ERROR_END };
#undef MP__ERROR_ENUM

/*
 * MP_EQCORRUPT: a queue's shared memory holds what no libmp process can have
 * written there: a descriptor handed over as a queue is not one, or a
 * process using the queue wrote over its header or ring (a bug, a stray
 * write).  Every value libmp reads from that memory is bounded before it is
 * used, so such a queue never makes a caller crash, write, map or unmap
 * outside the queue's own mappings, signal anyone, or wait past its timeout:
 * a put, get, qsize or full that finds positions, a record, the ring's
 * layout, a lock or the counters as no queue can hold them returns
 * MP_EQCORRUPT (and may go on doing so: the queue is lost).  What a scribble
 * can still do is in the queues section below.
 */

/* System errors are -errno; these are the ones callers test for most. */
#define MP_EINVAL (-EINVAL)       /* a bad argument (ValueError) */
#define MP_ETIMEDOUT (-ETIMEDOUT) /* a timed wait ran out */
#define MP_ECHILD (-ECHILD)       /* the child was reaped behind libmp's back */

/*
 * The message of an error code: CPython's text for MP_E* codes, strerror() for
 * -errno codes.  For MP_ERAISED, the message given to the last mp_raise() in
 * this thread.  Never NULL.
 */
const char *mp_strerror(int err);
/*
 * The CPython exception an error code stands for: "AssertionError",
 * "ValueError", ...; -errno codes map as CPython maps errno to OSError
 * subclasses (ECHILD -> "ChildProcessError", ETIMEDOUT -> "TimeoutError", ...).
 * For MP_ERAISED, the name given to the last mp_raise() in this thread.
 */
const char *mp_exception_name(int err);
/* The symbolic name of an error code: "MP_ECLOSED", "ETIMEDOUT", ... */
const char *mp_err_name(int err);
/*
 * The last line CPython prints for the exception an error code stands for:
 * "AssertionError: cannot start a process twice", "ChildProcessError: [Errno
 * 10] No child processes", "KeyboardInterrupt" (no message).  Like snprintf:
 * returns the length the whole line needs.
 */
int mp_format_exception(int err, char *buf, size_t size);

/*
 * Raises an exception from a target: records `exc` (e.g. "ValueError") and the
 * formatted message for this thread and returns MP_ERAISED, so a target writes
 * `return mp_raise("ValueError", "boom");`.  A target that returns it exits
 * with code 1 after printing "Process <name>:" and "ValueError: boom" on
 * stderr, as CPython does for an uncaught exception (minus the traceback).
 */
int mp_raise(const char *exc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Python's default for a call that fails: r when r >= 0; otherwise the
 * error is raised and not caught, so the process ends as CPython's does
 * on an uncaught exception: in a child, "Process <name>:" and the
 * exception line on stderr, then the child's normal teardown and exit code
 * 1; in the main process, the exception line on stderr and exit(1) (atexit
 * handlers run, children are joined).  For the calls a program has no
 * way to recover from:  `mp_check(mp_process_start(p));`.
 */
int mp_check(int r);

/* processes, targets and arguments: the way in */

typedef struct mp_process mp_process;
typedef struct mp_context mp_context;
typedef struct mp_queue mp_queue;
typedef struct mp_conn mp_conn;
typedef struct mp_lock mp_lock;
typedef struct mp_cond mp_cond;
typedef struct mp_event mp_event;
typedef struct mp_barrier mp_barrier;
typedef struct mp_value mp_value;
/* What a child reads its arguments from (see "arguments" below). */
typedef struct mp_args mp_args;

/* A timeout that never runs out (CPython's None). */
#define MP_FOREVER (__builtin_inf())

/*
 * The shape of every program (CPython's
 * `Process(target=worker, args=(1.5, 'text', q)).start()`):
 *
 *     MP_TARGET(worker)
 *     {
 *         double x = mp_args_double(args, 0);
 *         const char *s = mp_args_str(args, 1);
 *         return mp_queue_put_str(mp_args_queue(args, 2), s);
 *     }
 *
 *     int main(int argc, char **argv)
 *     {
 *         mp_main(argc, argv);
 *         mp_queue *q;
 *         mp_process *p;
 *         mp_queue_new(&q, 0);
 *         mp_process_create(&p, &worker_target, MP_ARGS(1.5, "text", q), NULL);
 *         mp_process_start(p);
 *         ...
 *     }
 *
 * A target is found by an object the compiler checks (worker_target), its
 * arguments are typed values that reach the child the same way under fork,
 * spawn and forkserver, and a queue or connection among them is handed over
 * with its own reference.
 */

/* targets */

/*
 * The function a child runs: a target defined with MP_TARGET() also reads
 * its typed arguments (`args`); every target receives the single argument
 * blob of mp_process_new(): a copy, never NULL, followed by a NUL byte that
 * `len` does not count (no blob is "", 0).  Its return value decides the
 * child's exit code, as the end of CPython's _bootstrap does:
 *   0         exit code 0 (the target returned);
 *   n > 0     exit code n, truncated to 8 bits by the OS (sys.exit(n));
 *   n < 0     an error code (MP_ERAISED, or any libmp/-errno code the target
 *             propagates): stderr gets "Process <name>:" and "<Exception>:
 *             <message>", exit code 1 (an uncaught exception).
 */
typedef int (*mp_target_fn)(const void *arg, size_t len);

/* The longest target name, in bytes. */
#define MP_TARGET_NAME_MAX 63

/* A target as an object: what MP_TARGET(worker) defines as worker_target. */
typedef struct mp_target {
    const char *name;
    mp_target_fn fn;
} mp_target;

/*
 * Registers `fn` under `name` so processes can be made from the name (start
 * methods that exec a new program can only pass names, as CPython pickles
 * functions by qualified name).  MP_EINVAL for a NULL or empty name, or one
 * over MP_TARGET_NAME_MAX bytes; -EEXIST for a name already taken by another
 * function (the first keeps it).  Registering the same pair again is 0.
 */
int mp_target_register(const char *name, mp_target_fn fn);
/*
 * What MP_TARGET() registers with: mp_target_register(), except that a name
 * another function has taken is a bug that link order would settle
 * silently, so it is reported on stderr and the name is withdrawn: from then
 * on making a process of that name fails with a ValueError (MP_ERAISED)
 * that names the conflict, and mp_target_lookup() returns NULL.
 */
int mp_target_define(const char *name, mp_target_fn fn);
/* The function registered under `name`, or NULL (also for a withdrawn
 * name). */
mp_target_fn mp_target_lookup(const char *name);

#define MP__UNUSED __attribute__((unused))
#ifdef __cplusplus
#define MP__STATIC_ASSERT static_assert
#else
#define MP__STATIC_ASSERT _Static_assert
#endif

/*
 * Defines a target, registers it before main() runs, and defines the object
 * `<name>_target` (an mp_target) to make processes from:
 *     MP_TARGET(worker) { ... return 0; }
 *     mp_process_create(&p, &worker_target, MP_ARGS(...), NULL);
 * so a misspelt target does not compile.  The body sees `args` (the typed
 * arguments, never NULL: an empty list when none were given), and `arg` and
 * `len` (the blob); it may ignore any of them without a warning.  Another
 * file names it after MP_TARGET_DECLARE(worker);.  A name over
 * MP_TARGET_NAME_MAX bytes does not compile; the same name defined twice in
 * one program does not link ("multiple definition of
 * mp_target__reg_worker"), and across shared objects it is withdrawn at load
 * time (mp_target_define()).
 */
#define MP_TARGET_DECLARE(name)                                               \
    extern __attribute__((visibility("hidden"))) const mp_target name##_target
#define MP_TARGET(name)                                                       \
    MP__STATIC_ASSERT(sizeof(#name) <= MP_TARGET_NAME_MAX + 1,                \
                      "MP_TARGET(" #name "): the name is too long");          \
    static int mp_target__body_##name(const void *arg, size_t len,            \
                                      const mp_args *args);                  \
    static int mp_target__fn_##name(const void *arg, size_t len)              \
    {                                                                         \
        return mp_target__body_##name(arg, len, mp_child_args());             \
    }                                                                         \
    MP_TARGET_DECLARE(name);                                                  \
    const mp_target name##_target = { #name, mp_target__fn_##name };          \
    __attribute__((visibility("hidden"))) void mp_target__reg_##name(void);  \
    __attribute__((constructor)) void mp_target__reg_##name(void)             \
    {                                                                         \
        (void)mp_target_define(#name, mp_target__fn_##name);                  \
    }                                                                         \
    static int mp_target__body_##name(const void *arg MP__UNUSED,             \
                                      size_t len MP__UNUSED,                  \
                                      const mp_args *args MP__UNUSED)

/* arguments */

/*
 * Process(args=(...), kwargs={...}) for C.  The parent gives a child an
 * array of typed values; the child reads them, by position or by name, from
 * the mp_args its target receives.  The types are Python's: int (long long),
 * float (double), str (a C string, copied), bytes (a buffer, copied), and
 * handles to shareable objects (Queue, Connection, Lock, Condition, Event,
 * Barrier, Value/Array): a value that is none of
 * these, a pointer to the parent's memory in particular, cannot be passed
 * (it would be an address in another process under spawn and forkserver).
 * Values are copied when the process is made, and a handle takes a
 * reference of its own then: the caller may free or change its array, its
 * buffers, its queue and its connection at once.  The same array may make
 * any number of processes.
 */
enum {
    MP_ARG_INT = 1,
    MP_ARG_DOUBLE = 2,
    MP_ARG_STR = 3,
    MP_ARG_BYTES = 4,
    MP_ARG_QUEUE = 5,
    MP_ARG_CONN = 6,
    MP_ARG_LOCK = 7,
    MP_ARG_COND = 8,
    MP_ARG_EVENT = 9,
    MP_ARG_BARRIER = 10,
    MP_ARG_VALUE = 11
};
typedef struct mp_arg {
    int type;         /* MP_ARG_* */
    const char *name; /* NULL: reachable by position only */
    union {
        long long i;
        double d;
        const char *s;
        struct {
            const void *buf;
            size_t len;
        } b;
        mp_queue *q;
        mp_conn *c;
        mp_lock *l;
        mp_cond *cv;
        mp_event *e;
        mp_barrier *br;
        mp_value *v;
    } u;
} mp_arg;

/* One value each.  mp_arg_str(NULL) and mp_arg_bytes(NULL, n > 0) are
 * rejected when the process is made (MP_EINVAL). */
mp_arg mp_arg_int(long long v);
/* An int from an unsigned value: one above LLONG_MAX has no long long to
 * read back as, and is rejected when the process is made (MP_EINVAL). */
mp_arg mp_arg_uint(unsigned long long v);
mp_arg mp_arg_double(double v);
mp_arg mp_arg_str(const char *s);
mp_arg mp_arg_bytes(const void *buf, size_t len);
mp_arg mp_arg_queue(mp_queue *q);
mp_arg mp_arg_conn(mp_conn *c);
mp_arg mp_arg_lock(mp_lock *l);
mp_arg mp_arg_cond(mp_cond *c);
mp_arg mp_arg_event(mp_event *e);
mp_arg mp_arg_barrier(mp_barrier *b);
/* A Value or Array (raw or synchronized; see "shared values" below): the
 * child maps the same memory, and a synchronized one's lock comes with
 * it. */
mp_arg mp_arg_value(mp_value *v);
/* The value a, reachable by `name` as well (kwargs): names are unique
 * within a list, at most MP_TARGET_NAME_MAX bytes. */
mp_arg mp_arg_named(const char *name, mp_arg a);

#ifndef __cplusplus
/*
 * MP_ARG(x): the value for x, chosen by x's type at compile time: integers
 * (an unsigned one through mp_arg_uint()), floating point, char * (a
 * string), mp_queue *, mp_conn *, mp_lock *, mp_cond *, mp_event *,
 * mp_barrier *, mp_value *, or an mp_arg
 * already made (mp_arg_bytes(), mp_arg_named()).  Any other type does not
 * compile.  MP_ARGS(x, y, ...) (1 to 16 values) gives the two parameters
 * mp_process_create() takes, the array and its length:
 *     mp_process_create(&p, &worker_target,
 *                       MP_ARGS(1.5, "text", q, MP_NAMED("n", 3)), NULL);
 */
#define MP_ARG(x)                                                             \
    _Generic((x),                                                             \
        _Bool: mp_arg_int, char: mp_arg_int, signed char: mp_arg_int,         \
        unsigned char: mp_arg_int, short: mp_arg_int,                         \
        unsigned short: mp_arg_int, int: mp_arg_int, unsigned: mp_arg_int,    \
        long: mp_arg_int, unsigned long: mp_arg_uint, long long: mp_arg_int,  \
        unsigned long long: mp_arg_uint, float: mp_arg_double,                \
        double: mp_arg_double, char *: mp_arg_str, const char *: mp_arg_str,  \
        mp_queue *: mp_arg_queue, mp_conn *: mp_arg_conn,                     \
        mp_lock *: mp_arg_lock, mp_cond *: mp_arg_cond,                       \
        mp_event *: mp_arg_event, mp_barrier *: mp_arg_barrier,               \
        mp_value *: mp_arg_value, mp_arg: mp_arg_of)(x)
#define MP_NAMED(name, x) mp_arg_named((name), MP_ARG(x))
#define MP__NARGS(...)                                                        \
    MP__NARGS_(__VA_ARGS__, 16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3,  \
               2, 1, 0)
#define MP__NARGS_(a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11, a12, a13,    \
                   a14, a15, a16, n, ...) n
#define MP__CAT(a, b) MP__CAT_(a, b)
#define MP__CAT_(a, b) a##b
#define MP__MAP1(x) MP_ARG(x)
#define MP__MAP2(x, ...) MP_ARG(x), MP__MAP1(__VA_ARGS__)
#define MP__MAP3(x, ...) MP_ARG(x), MP__MAP2(__VA_ARGS__)
#define MP__MAP4(x, ...) MP_ARG(x), MP__MAP3(__VA_ARGS__)
#define MP__MAP5(x, ...) MP_ARG(x), MP__MAP4(__VA_ARGS__)
#define MP__MAP6(x, ...) MP_ARG(x), MP__MAP5(__VA_ARGS__)
#define MP__MAP7(x, ...) MP_ARG(x), MP__MAP6(__VA_ARGS__)
#define MP__MAP8(x, ...) MP_ARG(x), MP__MAP7(__VA_ARGS__)
#define MP__MAP9(x, ...) MP_ARG(x), MP__MAP8(__VA_ARGS__)
#define MP__MAP10(x, ...) MP_ARG(x), MP__MAP9(__VA_ARGS__)
#define MP__MAP11(x, ...) MP_ARG(x), MP__MAP10(__VA_ARGS__)
#define MP__MAP12(x, ...) MP_ARG(x), MP__MAP11(__VA_ARGS__)
#define MP__MAP13(x, ...) MP_ARG(x), MP__MAP12(__VA_ARGS__)
#define MP__MAP14(x, ...) MP_ARG(x), MP__MAP13(__VA_ARGS__)
#define MP__MAP15(x, ...) MP_ARG(x), MP__MAP14(__VA_ARGS__)
#define MP__MAP16(x, ...) MP_ARG(x), MP__MAP15(__VA_ARGS__)
#define MP_ARGS(...)                                                          \
    (const mp_arg[]){ MP__CAT(MP__MAP, MP__NARGS(__VA_ARGS__))(__VA_ARGS__) }, \
        (size_t)MP__NARGS(__VA_ARGS__)
#endif
/* The value itself: what MP_ARG() makes of an mp_arg already made. */
mp_arg mp_arg_of(mp_arg a);

/*
 * Reading the arguments, in the child (or in any process: the list a
 * process was made with).  Positions count from 0, named values included.
 * mp_args_get_*() return 0 and the value, or an error that names the
 * argument: MP_ERAISED with "IndexError: argument 3 is out of range (3
 * given)", "TypeError: argument 1 ('n') is str, not int" (the names are
 * Python's: int, float, str, bytes, Queue, Connection, Lock (for every
 * mp_lock: "RLock", "Semaphore", "BoundedSemaphore" in messages), Condition,
 * Event, Barrier, Value (any of the four kinds); an int is read as a
 * float too, as Python's float operations take it).  A string and bytes
 * point into the list, with a NUL after their length, valid as long as
 * the list; a queue, connection, synchronisation object or value belongs
 * to the list (do not free it): in the child it lives as long as the
 * child.  Values that name one object give one
 * object (a lock passed twice, or passed and used by a condition or a
 * value passed too, is one mp_lock in the child, so its owner checks
 * hold).  A value whose memory is not a libmp shared value (a descriptor
 * of another kind, a header a peer wrote over) is refused when the child
 * first reads it: MP_ERAISED "OSError: argument 0: not a libmp shared
 * value (bad shared memory)".
 */
size_t mp_args_count(const mp_args *args);
/* The position of the value named `name`, or MP_ERAISED with "KeyError:
 * 'name'". */
int mp_args_index(const mp_args *args, const char *name);
/* Its type (MP_ARG_*) and name (NULL if none); MP_ERAISED IndexError /
 * NULL for a position out of range. */
int mp_args_type(const mp_args *args, size_t i);
const char *mp_args_name(const mp_args *args, size_t i);
int mp_args_get_int(const mp_args *args, size_t i, long long *v);
int mp_args_get_double(const mp_args *args, size_t i, double *v);
int mp_args_get_str(const mp_args *args, size_t i, const char **s);
int mp_args_get_bytes(const mp_args *args, size_t i, const void **buf,
                      size_t *len);
int mp_args_get_queue(const mp_args *args, size_t i, mp_queue **q);
int mp_args_get_conn(const mp_args *args, size_t i, mp_conn **c);
int mp_args_get_lock(const mp_args *args, size_t i, mp_lock **l);
int mp_args_get_cond(const mp_args *args, size_t i, mp_cond **c);
int mp_args_get_event(const mp_args *args, size_t i, mp_event **e);
int mp_args_get_barrier(const mp_args *args, size_t i, mp_barrier **b);
int mp_args_get_value(const mp_args *args, size_t i, mp_value **v);
/*
 * The same, for a target's body, where a wrong argument is a bug: on an
 * error they raise it, as Python's `args[3]` or `q.put` on a str would: the
 * process ends as a target that returned the error does ("Process
 * <name>:", "TypeError: ...", exit code 1; in the main process, the line
 * on stderr and exit(1)).  mp_args_at() is mp_args_index() that raises, so
 * `mp_args_int(args, mp_args_at(args, "n"))` reads the value named n.
 */
size_t mp_args_at(const mp_args *args, const char *name);
/* A keyword argument with a default (`def f(n=3)`): the value named
 * `name` if there is one (raising if it has another type), else dflt. */
long long mp_args_int_or(const mp_args *args, const char *name,
                         long long dflt);
double mp_args_double_or(const mp_args *args, const char *name, double dflt);
const char *mp_args_str_or(const mp_args *args, const char *name,
                           const char *dflt);
long long mp_args_int(const mp_args *args, size_t i);
double mp_args_double(const mp_args *args, size_t i);
const char *mp_args_str(const mp_args *args, size_t i);
const void *mp_args_bytes(const mp_args *args, size_t i, size_t *len);
mp_queue *mp_args_queue(const mp_args *args, size_t i);
mp_conn *mp_args_conn(const mp_args *args, size_t i);
mp_lock *mp_args_lock(const mp_args *args, size_t i);
mp_cond *mp_args_cond(const mp_args *args, size_t i);
mp_event *mp_args_event(const mp_args *args, size_t i);
mp_barrier *mp_args_barrier(const mp_args *args, size_t i);
mp_value *mp_args_value(const mp_args *args, size_t i);
/* The arguments of the current process: what a target receives as `args`
 * (never NULL; empty in the main process or with none given). */
const mp_args *mp_child_args(void);

/*
 * Results back ("how do I return a value from a process"): hand the child
 * a queue and put the result there; the parent gets it:
 *     MP_TARGET(square) {
 *         long long x = mp_args_int(args, 0);
 *         return mp_queue_put_i64(mp_args_queue(args, 1), x * x);
 *     }
 *     ...  mp_process_create(&p, &square_target, MP_ARGS(7, q), NULL); ...
 *     mp_queue_get_i64(q, &result, MP_FOREVER);
 * A libmp put copies the message into shared memory and returns, so the
 * parent may join the child before or after getting: CPython's deadlock of
 * joining a child whose queue's feeder still holds data cannot happen.
 * Several children may share one queue (tag results with mp_args' values
 * if order matters).
 */

/* per-process options */

/* mp_process_options.daemon: 0 inherits the creating process's flag. */
enum { MP_DAEMON_INHERIT = 0, MP_DAEMON_YES = 1, MP_DAEMON_NO = 2 };

/*
 * Beyond CPython: a child's environment, working directory and standard
 * streams.  CPython's Process has none of them (a child inherits all
 * three); with every field zero, libmp's defaults are CPython's.  They
 * apply under every start method alike: start() opens what they name in
 * the parent, and the child puts them in place after its bootstrap, just
 * before its target runs (a spawned child's program, and the fork
 * server's, start in the parent's directory and environment, so that
 * what the C library or the dynamic loader reads at startup is the
 * parent's).
 */

/* mp_process_options.env_mode */
enum { MP_ENV_EXTEND = 0, MP_ENV_REPLACE = 1 };

/*
 * mp_process_options.stdio[0..2] (stdin, stdout, stderr).  Each is opened
 * by start() in the parent, so a bad path is start()'s error, under every
 * method (-ENOENT is FileNotFoundError, -EACCES PermissionError):
 *   MP_STDIO_DEFAULT  CPython's: stdin /dev/null (CPython closes it and
 *                     opens os.devnull), stdout and stderr inherited
 *                     (under forkserver, from the fork server, which has
 *                     those of the process that started it);
 *   MP_STDIO_INHERIT  the parent's descriptor 0, 1 or 2 as it is at
 *                     start() (stdin too; -EBADF if it is closed);
 *   MP_STDIO_DEVNULL  /dev/null;
 *   MP_STDIO_FILE     `path`: read for stdin; for output, created
 *                     (0666 & ~umask) and truncated, or appended to if
 *                     `append`;
 *   MP_STDIO_FD       a duplicate of the caller's descriptor `fd`, made
 *                     by start() (-EBADF if it is not open then);
 *   MP_STDIO_PIPE     a pipe whose other end the parent holds:
 *                     mp_process_stdio() gives it, mp_process_capture()
 *                     reads output to the end.
 * The child's stdio FILE streams follow their descriptors: what the child
 * wrote before its streams were put in place went to the old ones, and
 * stdin's buffer is dropped, as util._close_stdin() does.  A descriptor
 * start() makes reaches no other child: a fork child started at the same
 * time by another thread, or a fork() of the program's own, finds
 * /dev/null in its place, so a capture sees EOF when this child (and
 * whatever it started with its streams) has ended.
 */
enum {
    MP_STDIO_DEFAULT = 0,
    MP_STDIO_INHERIT = 1,
    MP_STDIO_DEVNULL = 2,
    MP_STDIO_FILE = 3,
    MP_STDIO_FD = 4,
    MP_STDIO_PIPE = 5
};
typedef struct mp_stdio {
    int how; /* MP_STDIO_* */
    const char *path;
    int append;
    int fd;
} mp_stdio;

/* Every field zero is CPython's default: `mp_process_options o = {0};` or
 * designated initialisers for the fields wanted.  The strings are copied. */
typedef struct mp_process_options {
    /* NULL or "": the default name, "Process-N" (N from a counter that every
     * construction advances, named processes included; "Process-N:M" in a
     * child of Process-N). */
    const char *name;
    /* MP_DAEMON_INHERIT (the default), MP_DAEMON_YES or MP_DAEMON_NO. */
    int daemon;
    /* ctx.Process(): NULL is the default context (a plain "Process-N"). */
    mp_context *context;
    /* "NAME=value" strings, NULL-terminated; NULL: the parent's
     * environment (env_mode ignored).  MP_ENV_EXTEND sets each on top of
     * the parent's environment, in order (an entry "NAME" without '='
     * removes NAME); MP_ENV_REPLACE makes them the whole environment (an
     * entry without '=' then does nothing).  An empty entry, or one that
     * starts with '=', is MP_EINVAL.  libmp's own settings in the child
     * (LIBMP_*) are read before its environment changes: a replaced
     * environment does not turn them off. */
    const char *const *env;
    int env_mode;
    /* The child's working directory, relative to the parent's at start();
     * NULL: the parent's.  start() fails as chdir() would (-ENOENT,
     * -ENOTDIR, -EACCES). */
    const char *cwd;
    /* how each of stdin, stdout, stderr is set up (MP_STDIO_*); MP_EINVAL
     * for a `how` out of range, MP_STDIO_FILE without a path, MP_STDIO_FD
     * with fd < 0 */
    mp_stdio stdio[3];
} mp_process_options;

/*
 * Process(target=target, args=..., name=..., daemon=...), with the target
 * as an object (MP_TARGET()'s <name>_target) and typed arguments: `args`
 * is an array of n values (MP_ARGS(...) gives both; NULL, 0 for none),
 * copied, with handles referenced, before it returns.  `target` NULL makes
 * a process that runs nothing and exits 0.  `options` may be NULL.
 * Errors: MP_EINVAL (a bad value, a duplicate or overlong name, over 56
 * handles, an option out of range), MP_ENOTARGET (a target whose name is
 * not registered), MP_ERAISED (ValueError: another function is registered
 * under its name, or two were), -ENOMEM.  A closed
 * connection is accepted, as CPython's args take one: a fork child gets it
 * closed, and start() under spawn and forkserver fails with
 * MP_EHANDLECLOSED.  No OS process exists until mp_process_start().
 */
int mp_process_create(mp_process **out, const mp_target *target,
                      const mp_arg *args, size_t n,
                      const mp_process_options *options);

/*
 * Popen.stdin/.stdout/.stderr for a child whose stream `which` (0, 1, 2) is
 * MP_STDIO_PIPE: the parent's end of the pipe (the write end for stdin, the
 * read end for the others), a descriptor p owns: do not close it;
 * mp_process_close() and mp_process_free() do.  Errors: MP_EINVAL (which
 * out of range, or that stream is not a pipe), MP_ENOTSTARTED before
 * start, MP_ENOTCHILD for a process this process did not create,
 * MP_ECLOSED after close, MP_EHANDLECLOSED once mp_process_capture() has
 * closed it (stdin first thing, an output at its end).
 */
int mp_process_stdio(mp_process *p, int which);
/*
 * Popen.communicate(timeout=...) without input: closes the stdin pipe, if
 * stdin is one (so a child reading it sees EOF; that is all it does when
 * neither output is a pipe), then reads the stdout and stderr pipes
 * together, with poll(), until both are at their end, so a child that
 * fills one while the parent waits on the other never deadlocks.  Returns
 * 0 with *out and *err set to malloc'd buffers (free them), each followed
 * by a NUL that *outlen and *errlen do not count; a stream that is not a pipe
 * gives NULL and 0 (CPython's None).  out, err and the lengths may each be
 * NULL: a pipe whose buffer is NULL is read all the same, and what it
 * gives is dropped, so the child never blocks on it.  The end comes when
 * every holder of the pipe's other end has closed it: the child, and any
 * child of its own that kept the stream.  `timeout` is seconds
 * (MP_FOREVER: none; 0 or negative: what is there now): MP_ETIMEDOUT when
 * it runs out, and what was read so far is kept for the next call, which
 * returns all of it, as CPython keeps it across TimeoutExpired (the usual
 * sequence: capture(t), on MP_ETIMEDOUT kill(), then capture(MP_FOREVER)).
 * Once both ends are reached the pipes are closed, and another call
 * returns empty buffers.  It does not join the child.  Errors: those of
 * mp_process_stdio() but MP_EINVAL for a stream that is not a pipe,
 * MP_EINVAL for a NaN timeout, -ENOMEM (what was read is kept).  One
 * thread at a time for one process.
 */
int mp_process_capture(mp_process *p, char **out, size_t *outlen,
                       char **err, size_t *errlen, double timeout);

/* start methods and contexts */

/*
 * The start methods, as CPython's: "fork" (the default, as CPython 3.13's on
 * Linux), "spawn" (a fresh run of this program, which must call mp_main()
 * first thing in main()) and "forkserver" (children forked by a small server,
 * itself a fresh run of this program, started on first use).
 */
/*
 * Call first thing in main(), before anything else runs:
 *     int main(int argc, char **argv) { mp_main(argc, argv); ... }
 * In a process started by the spawn method, or in the fork server, it does
 * that process's work and never returns; otherwise it returns 0 at once
 * (CPython's freeze_support() / spawn_main()).  A program that forgets it
 * runs main() once more in such a child, as CPython re-runs a main module
 * that lacks the `if __name__ == '__main__'` guard, and no further: every
 * spawn or forkserver start() in that copy (and in its fork children) fails
 * with MP_EBOOTSTRAP, CPython's RuntimeError, and the parent's start()
 * fails with MP_ENOMPMAIN (MP_EFORKSERVER for the fork server) once the
 * copy ends or the start timeout (10 s, LIBMP_START_TIMEOUT) runs out,
 * killing the copy and whatever it started.  A child takes its orders only
 * from a parent with its own effective user and group (SO_PEERCRED), so
 * running a setuid program by hand with a socket at descriptor 3 runs no
 * target.
 */
int mp_main(int argc, char **argv);

/*
 * get_context(method): a start method's context; NULL asks for the default
 * context's method, which fixes it as CPython's get_context() does.
 * Error: MP_ERAISED with "ValueError: cannot find context for 'bogus'".
 */
int mp_get_context(mp_context **out, const char *method);
/* The context's method name: "fork", "spawn" or "forkserver". */
const char *mp_context_name(const mp_context *ctx);
/* A concrete context's set_start_method() always fails: MP_ECONCRETE. */
int mp_context_set_start_method(mp_context *ctx, const char *method,
                                int force);
/*
 * set_start_method(method, force): MP_ECONTEXTSET once the default method is
 * fixed (by an earlier set, get_start_method(), mp_get_context(NULL) or a
 * start()) unless `force`; NULL with force unsets it.
 */
int mp_set_start_method(const char *method, int force);
/* get_start_method(allow_none): NULL only when allow_none and unset;
 * otherwise it fixes the default. */
const char *mp_get_start_method(int allow_none);
/* get_all_start_methods(): fills out[0..n) and returns how many there are
 * (3: fork, spawn, forkserver). */
size_t mp_get_all_start_methods(const char **out, size_t n);

/* process */

/*
 * The single-blob form: Process(target=..., args=(b'...',), ...) with the
 * target by name.  `target` is a name registered with
 * MP_TARGET()/mp_target_register() (for names chosen at run time), or NULL
 * for a process that runs nothing and exits 0.  `arg`/`len` are copied and
 * reach the target as its `arg` and `len` (its `args` are empty).
 * `options` may be NULL.  Errors: MP_ENOTARGET (no such target), MP_EINVAL,
 * -ENOMEM.  No OS process exists until mp_process_start().
 */
int mp_process_new(mp_process **out, const char *target, const void *arg,
                   size_t len, const mp_process_options *options);
/*
 * ctx.Process(...): a process of one start method, named "ForkProcess-N",
 * "SpawnProcess-N" or "ForkServerProcess-N".  mp_process_new() makes a plain
 * "Process-N", which uses the default context's method when it starts.
 */
int mp_context_process_new(mp_context *ctx, mp_process **out,
                           const char *target, const void *arg, size_t len,
                           const mp_process_options *options);
/*
 * Drops the caller's reference.  A child that is still running is not
 * affected: libmp keeps track of it, reaps it, and joins it at exit as
 * CPython does with an unreferenced Process.  Returns NULL.
 */
mp_process *mp_process_free(mp_process *p);

/*
 * start(): runs the target in a new child process.  Flushes every stdio
 * output stream first, so buffered output is never duplicated in the child,
 * and reaps finished children first, as CPython's _cleanup() does.
 * Errors: MP_ECLOSED, MP_ESTARTTWICE, MP_ENOTCREATOR, MP_EDAEMONIC, -errno
 * (fork failed: -EAGAIN at the process limit, -ENOMEM; a file, descriptor
 * or directory the options name could not be opened: -ENOENT, -EACCES,
 * -ENOTDIR, -EBADF, and then no child was made and the start may be
 * tried again).  Of two threads
 * starting one object at once, one starts it and the other gets
 * MP_ESTARTTWICE.
 */
int mp_process_start(mp_process *p);
/*
 * join(timeout): waits up to `timeout` seconds for the child to end
 * (MP_FOREVER: no limit; 0 or negative: do not wait).  Returns 0 once the
 * child has ended and is reaped, MP_ETIMEDOUT while it still runs (CPython's
 * join returns None in both cases).  Errors: MP_ECLOSED, MP_ENOTCHILD (the
 * process itself, or one this process did not create), MP_ENOTSTARTEDJOIN.
 * Never polls: it sleeps on a pidfd (the sentinel) against an absolute
 * deadline, so the overshoot does not grow with the timeout; EINTR is retried.
 * On the main process's view of its parent (mp_parent_process()), waits for
 * the parent to end.
 */
int mp_process_join(mp_process *p, double timeout);
/* is_alive(): 1 or 0, reaping a finished child.  MP_ECLOSED,
 * MP_ENOTCHILDTEST for a process this process did not create. */
int mp_process_is_alive(mp_process *p);
/*
 * exitcode: returns 1 and sets *code once the child has ended (0 or a
 * positive exit status; -N when killed by signal N), 0 while it is not
 * started or still running (CPython's None).  Reaps a finished child.
 * MP_ECLOSED after close.
 */
int mp_process_exitcode(mp_process *p, int *code);
/* pid: 1 and *pid once started (the current process: getpid()), 0 before
 * (None).  MP_ECLOSED after close. */
int mp_process_pid(mp_process *p, pid_t *pid);
/*
 * sentinel: a descriptor that becomes readable when the child ends, for
 * poll()/select().  Owned by the process object; valid until close/free
 * (by any thread: a program that closes in one thread and polls in another
 * orders the two itself).  MP_ENOTSTARTED before start, MP_ECLOSED after
 * close.
 * Beyond CPython: it is a pidfd, which no grandchild can hold open, so it
 * fires when the child ends even if the child left descendants behind.
 */
int mp_process_sentinel(mp_process *p);
/*
 * terminate() / kill(): send SIGTERM / SIGKILL.  No effect once the child has
 * been reaped (CPython ignores ProcessLookupError).  MP_ENOPOPENTERM /
 * MP_ENOPOPENKILL before start, MP_ECLOSED after close.
 * Beyond CPython: the signal goes through the pidfd (pidfd_send_signal), so it
 * can never reach an unrelated process that reused the pid.  A forkserver
 * child's pidfd is opened for the call (its parent keeps only the sentinel):
 * -EMFILE if no descriptor is free; a child whose server died is taken as
 * ended and not signalled.
 */
int mp_process_terminate(mp_process *p);
int mp_process_kill(mp_process *p);

/*
 * The stop sequence (reproc's reproc_stop): up to three steps, each an
 * action and the seconds to wait after it for the child to end, taken in
 * order until the child has ended:
 *   MP_STOP_WAIT       join(timeout);
 *   MP_STOP_TERMINATE  terminate(), then join(timeout);
 *   MP_STOP_KILL       kill(), then join(timeout);
 *   MP_STOP_NOOP       nothing (ends the sequence early).
 * The usual one: wait 5 s for the child to finish, then SIGTERM and 1 s,
 * then SIGKILL:
 *     mp_stop_actions stop = { { MP_STOP_WAIT, 5 }, { MP_STOP_TERMINATE, 1 },
 *                              { MP_STOP_KILL, MP_FOREVER } };
 *     r = mp_process_stop(p, &stop, &code);
 * Returns 0 with *code (may be NULL) the exit code, as mp_process_exitcode()
 * gives it, once the child has ended; MP_ETIMEDOUT if it still runs after
 * the last step; MP_EINVAL for an unknown action or a NaN timeout; the
 * errors of join() (MP_ENOTSTARTEDJOIN, MP_ENOTCHILD, MP_ECLOSED).
 */
enum {
    MP_STOP_NOOP = 0,
    MP_STOP_WAIT = 1,
    MP_STOP_TERMINATE = 2,
    MP_STOP_KILL = 3
};
typedef struct mp_stop_step {
    int action;     /* MP_STOP_* */
    double timeout; /* seconds to wait after the action; MP_FOREVER */
} mp_stop_step;
typedef struct mp_stop_actions {
    mp_stop_step first, second, third;
} mp_stop_actions;
int mp_process_stop(mp_process *p, const mp_stop_actions *stop, int *code);
/*
 * close(): releases the sentinel.  MP_ERUNNING while the child runs (or
 * another thread is starting it).  Afterwards every call but name, daemon,
 * their setters, repr and close returns MP_ECLOSED.  Calls other threads are making on the
 * object meanwhile (a join, a terminate) finish on its descriptors, which
 * are released when the last of them returns.
 */
int mp_process_close(mp_process *p);

/* name: never NULL.  Valid until the object is freed, even once another
 * thread has renamed it. */
const char *mp_process_name(const mp_process *p);
/*
 * name = ...: MP_ENAME for NULL ("name must be a string"); -ENOMEM.  A child
 * that is already running keeps the name it started with; so does one whose
 * start() another thread is making meanwhile.  The names an object had stay
 * allocated until it is freed (another thread may be reading one): each
 * distinct name once, however often it is given again.
 */
int mp_process_set_name(mp_process *p, const char *name);
/* daemon: the flag as set (0 is False). */
int mp_process_daemon(const mp_process *p);
/* daemon = ...: MP_EHASSTARTED once started (or while another thread starts
 * it); the value is stored as given. */
int mp_process_set_daemon(mp_process *p, int daemon);
/*
 * repr(): writes CPython's repr into buf (truncated to size, always
 * terminated), e.g. "<Process name='Process-1' pid=123 parent=122 started>".
 * Returns the length the full text needs, like snprintf.
 */
int mp_process_repr(mp_process *p, char *buf, size_t size);

/* identity */

/* current_process(): the object for this process; "MainProcess" in the main
 * process, the child's own object in a child.  Owned by libmp. */
mp_process *mp_current_process(void);
/* parent_process(): NULL in the main process; in a child, an object named
 * after the parent, whose pid is the parent's, whose is_alive() tells whether
 * it still runs and whose join() waits for it to end.  Owned by libmp. */
mp_process *mp_parent_process(void);
/*
 * active_children(): reaps finished children, then sets *out to a new array
 * of the children still running (each a new reference) and *n to its length.
 * Release with mp_process_list_free().  Order is unspecified, as in CPython.
 * It (and start()) also reaps this process's fork server if that has died,
 * as does seeing the end of one of the server's children; CPython's stays a
 * zombie until the next forkserver start().
 */
int mp_active_children(mp_process ***out, size_t *n);
void mp_process_list_free(mp_process **list, size_t n);
/* cpu_count(): the number of online CPUs, or MP_ENOCPU. */
int mp_cpu_count(void);

/*
 * sys.exit(code) for C: in a child, ends the child as a target's return would
 * (terminates daemonic children and joins all children, flushes stdio, then
 * _exit(code)); in the main process, exit(code).  Use it instead of exit() in
 * a child: exit() would also run the atexit handlers the child inherited
 * from its parent, which CPython's children never run.
 */
MP__NORETURN void mp_exit(int code);

/*
 * atexit.register(fn, arg) as a child sees it: the handlers run, last
 * registered first, when the process ends normally (its target returns or it
 * calls mp_exit(); exit() in the main process), before the teardown that
 * joins its children.  A child starts with an empty list: it never runs its
 * parent's handlers, and runs its own under every start method, as CPython
 * 3.13 does (plain atexit() handlers run in a spawned child only).
 * -ENOMEM, or MP_EINVAL for a NULL fn.
 */
int mp_atexit(void (*fn)(void *), void *arg);

/*
 * SIGINT in the main process, as CPython's main meets it, for a program
 * that asks.  libmp installs no SIGINT handler of its own accord, so by
 * default SIGINT ends a C program at once, as a C programmer expects: no
 * teardown, and its children, daemonic or not, run on (a terminal's Ctrl-C
 * reaches the whole foreground process group, children included; a kill of
 * the main process alone does not).  CPython's main raises
 * KeyboardInterrupt instead; uncaught, it prints it, runs its atexit
 * handlers, util._exit_function last (SIGTERM to the daemonic children,
 * then a join of every child), and ends killed by SIGINT (3.8 and later).
 *
 * mp_handle_sigint() gives the main process that ending: on SIGINT it
 * prints "KeyboardInterrupt" on stderr, runs the mp_atexit() handlers and
 * the teardown (waiting for every non-daemonic child to finish), flushes
 * stdio and ends the process by SIGINT (a parent sees a death by SIGINT; a
 * shell, status 130).  The program's own atexit() handlers do not run, as
 * for any death by a signal.  A thread that the call starts does the work
 * (the handler only wakes it), so no code runs in a signal handler; the
 * program's other threads run on meanwhile, and one that returns from
 * main() or calls exit() waits for the teardown, then the process ends by
 * SIGINT all the same.  A second SIGINT, or one during an exit teardown
 * already under way, ends the process at once (SIGINT at its default).
 * SIGINT is handled with SA_RESTART: system calls it interrupts resume.
 *
 * As CPython's, it leaves alone a SIGINT that the program handles or
 * ignores (a program started by `nohup`, or in the background by a
 * non-interactive shell): returns 1 then, 0 once installed (again: 0).
 * Children never inherit it: a fork child starts with SIGINT at its
 * default, so it still dies with exit code -2 where CPython's child raises
 * KeyboardInterrupt and exits with 1.  MP_EINVAL in a child process;
 * -errno when the thread cannot be started.
 */
int mp_handle_sigint(void);

/*
 * Beyond CPython: when `sig` is nonzero, every daemonic child this process
 * starts from now on receives `sig` (SIGKILL is the sure choice) as soon as
 * this process dies, however it dies: SIGKILL included, where CPython's
 * daemons are orphaned and keep running.  0 turns it off (the default).
 * Uses PR_SET_PDEATHSIG, which fires when the *thread* that started the child
 * ends: start such children from a thread that lives as long as the process.
 * A start() in another thread meanwhile uses the old setting or the new.
 * Returns the previous setting, or MP_EINVAL for a bad signal number.
 */
int mp_set_daemon_death_signal(int sig);

/* pipes and connections */

/*
 * Pipe(duplex) and Connection (CPython: connection.py): messages of bytes,
 * boundaries kept (empty messages too), on CPython's wire format (a 4-byte
 * big-endian length); duplex pipes are socketpairs, one-way pipes pipe(2), as
 * CPython's.  A connection's descriptor is inherited by fork children.  A
 * send to a closed peer is -EPIPE (BrokenPipeError), never a SIGPIPE: see
 * mp_set_sigpipe_policy().
 */

/*
 * How a send on a one-way pipe keeps SIGPIPE away (a duplex pipe is a socket
 * and needs nothing).  MP_SIGPIPE_IGNORE, the default, is CPython's: a
 * child ignores SIGPIPE (at its default) from its start, as every CPython
 * process does; in the main process, which libmp does not touch merely by
 * being linked, the first such send turns SIGPIPE from its default to
 * ignored (a
 * handler of the program's own, or SIG_IGN, is left alone, and a handler
 * then runs on a broken pipe), and each send is one write(2).  A program
 * that sets SIGPIPE back to its default afterwards is killed by a send to a
 * closed reader, as a CPython program that does so is.  MP_SIGPIPE_KEEP
 * never changes the disposition: each send checks it, and unless SIGPIPE is
 * ignored, blocks it in the sending thread, writes, takes back the SIGPIPE
 * the write raised and unblocks it (four more system calls a message).
 * Returns the previous policy, or MP_EINVAL.
 */
#define MP_SIGPIPE_IGNORE 0
#define MP_SIGPIPE_KEEP 1
int mp_set_sigpipe_policy(int policy);

/* No limit for mp_conn_recv_bytes(). */
#define MP_NOLIMIT ((size_t)-1)

/* Pipe(duplex): both ends can send and receive; duplex 0 gives (*a, *b) =
 * (read end, write end), as CPython's. */
int mp_pipe(mp_conn **a, mp_conn **b, int duplex);
/* close(): twice is fine.  Afterwards every call but close/free returns
 * MP_EHANDLECLOSED ("OSError: handle is closed"). */
int mp_conn_close(mp_conn *c);
/* Drops the caller's reference, closing c unless a process that has not
 * started yet was handed it (mp_process_add_conn()); accepts NULL; returns
 * NULL. */
mp_conn *mp_conn_free(mp_conn *c);
/* closed, readable, writable: 1 or 0. */
int mp_conn_closed(const mp_conn *c);
int mp_conn_readable(const mp_conn *c);
int mp_conn_writable(const mp_conn *c);
/* fileno(): the descriptor (for mp_wait/poll), or MP_EHANDLECLOSED. */
int mp_conn_fileno(const mp_conn *c);
/* send_bytes(buf): blocks until the whole message is written.  Errors:
 * MP_EREADONLY, MP_EHANDLECLOSED, -EPIPE. */
int mp_conn_send_bytes(mp_conn *c, const void *buf, size_t n);
/*
 * recv_bytes(maxlength): blocks for the next message; *out is malloc'd (free
 * it; a NUL follows the *len bytes), and NULL on an error.  Errors: MP_EEOF (EOFError: the peer is
 * closed and everything was read), MP_EEOFMSG (the peer closed within a
 * message), MP_EBADLENGTH (longer than maxlength: afterwards the
 * connection is not readable, or closed if it was read-only, as in
 * CPython), MP_EWRITEONLY, MP_EHANDLECLOSED, -ENOMEM (no memory for the
 * message: when none of it was read yet it stays for the next receive,
 * otherwise it is read past; either way the stream stays in step, where
 * CPython's MemoryError leaves it out of step).  Memory grows with the
 * bytes that arrive, not with the length the peer announces.
 */
int mp_conn_recv_bytes(mp_conn *c, void **out, size_t *len, size_t maxlength);
/*
 * recv_bytes_into(buf): blocks for the next message and copies it to buf;
 * *len is its length.  When it is longer than size: MP_ETOOSHORT
 * (BufferTooShort), *len its length, buf untouched, the message consumed
 * (as CPython's) and dropped; mp_conn_recv_bytes_into_ex() keeps it.
 * Errors: those of mp_conn_recv_bytes(); MP_EBADLENGTH only for a length
 * no message can have (negative but -1, or over SIZE_MAX / 2).
 */
int mp_conn_recv_bytes_into(mp_conn *c, void *buf, size_t size, size_t *len);
/*
 * recv_bytes_into(buf) with BufferTooShort's message: as
 * mp_conn_recv_bytes_into(), and on MP_ETOOSHORT *whole is the whole
 * message, malloc'd (free it; a NUL follows the *len bytes), which CPython
 * hands back as the exception's args[0].  *whole is NULL after any other
 * result.  The connection stays usable: the next call reads the next
 * message.  -ENOMEM, *len still the length, when the copy cannot be
 * allocated: the message is consumed all the same.  whole may be NULL:
 * then this is mp_conn_recv_bytes_into().
 */
int mp_conn_recv_bytes_into_ex(mp_conn *c, void *buf, size_t size,
                               size_t *len, void **whole);
/* A string as a message (without its NUL), and the next message as a
 * malloc'd, NUL-terminated string (free it): send_bytes and recv_bytes
 * with their errors. */
int mp_conn_send_str(mp_conn *c, const char *s);
int mp_conn_recv_str(mp_conn *c, char **s);
/* poll(timeout): 1 when a message (or EOF) can be read, 0 when the timeout
 * (seconds; 0 or negative: none; MP_FOREVER) ran out.  Never polls. */
int mp_conn_poll(mp_conn *c, double timeout);

/*
 * The older way to hand a connection over (a typed argument, mp_arg_conn()
 * or MP_ARGS(c), is the one to use: it names it and checks its type).
 * Hands c to the child p will start, as CPython hands a Connection passed
 * in args: in the child, mp_child_conn(i) returns it, i counting the calls
 * from 0 (typed arguments do not count).  Works under every start method (the child gets a descriptor of its
 * own: inherited under fork, placed by posix_spawn for spawn, sent with
 * SCM_RIGHTS under forkserver).  p takes a reference of its own, as a
 * Process holds its args: the caller may mp_conn_free() c at once, and c
 * stays open for the child until start() has handed it over (then p drops
 * it, as CPython's start() drops its args).  Closing c (mp_conn_close())
 * before start() hands over a closed connection: a fork child gets it
 * closed; spawn and forkserver fail at start() with MP_EHANDLECLOSED, as
 * CPython's pickling does.  MP_EHASSTARTED after start (or while another
 * thread starts p).
 */
int mp_process_add_conn(mp_process *p, mp_conn *c);
/* In a child: the i-th connection its parent added; NULL if none. */
mp_conn *mp_child_conn(size_t i);

/*
 * connection.wait(objects, timeout) on descriptors: connections'
 * (mp_conn_fileno) and processes' sentinels (mp_process_sentinel).  Sleeps
 * until one is ready or the timeout ends; sets ready[i] and returns how many
 * are ready (0: timed out).  A connection's descriptor is ready, too, while
 * the connection holds bytes a receive read ahead of the next message.  -EBADF for a closed descriptor.  With n = 0
 * (fds and ready may then be NULL) it sleeps out the timeout and returns 0,
 * as CPython's wait([], timeout) returns [] (MP_FOREVER: for ever).
 */
int mp_wait(const int *fds, size_t n, double timeout, int *ready);

/* queues */

/*
 * Queue, JoinableQueue and SimpleQueue (CPython: queues.py): messages of
 * bytes (0 bytes to 1 GiB each) between any number of producer and consumer
 * processes, FIFO for each producer.  A queue lives in shared memory (a memfd
 * ring): a put copies the message in and returns, a get copies it out; there
 * is no feeder thread and no pipe, so put() never leaves data behind in the
 * producer, and a child that put() can always exit (CPython's child cannot
 * until its feeder has flushed into a full pipe).  The ring (256 KiB at
 * first) grows when a message does not fit, up to 4 GiB of backlog (beyond
 * that a put waits for room, or returns MP_EFULL if it may not wait); its
 * memory stays at its high-water mark until the last process frees the
 * queue.  Each process reserves address space for the ring to grow in:
 * 1 GiB, or under RLIMIT_AS (ulimit -v) an eighth of what the limit leaves,
 * never less than the ring needs; a ring that outgrows it is mapped again,
 * larger.  Where RLIMIT_AS leaves no room for a larger ring, a put waits for
 * room as at 4 GiB (-ENOMEM if the message could never fit the ring), and a
 * process that cannot map a ring that another one grew gets -ENOMEM from
 * put and get.  A blocking put that finds the ring full while consumers are
 * draining it (a get within the last 10 ms) first waits for them, 20 ms at
 * most, so that a ring a slightly slower consumer keeps up with stays small
 * and in the cache; it never waits for consumers that are not getting (then
 * the ring grows at once), nor in a non-blocking put.  CPython's unbounded
 * put never waits: its backlog grows in the producer's memory instead.
 *
 * Beyond CPython, a queue survives the death of any process using it, SIGKILL
 * included, at any instant: a message whose put() returned is delivered
 * exactly once; a put that was cut short is never seen, in part or at all; a
 * get that was cut short loses at most the message it was taking (it is
 * still in the queue unless the get had finished copying it); and nobody
 * waits forever on a lock the dead process held (robust mutexes; the state
 * is repaired by the next process to take the lock), or for a wake-up it
 * owed (a waiter re-checks every 0.1 s: the kernel has no wake-up for a
 * death in the middle of a put or get).  CPython's docs warn that its queues
 * may become corrupted in that case.
 *
 * Producers and consumers each share a side: a robust mutex with a bias.  A
 * thread that took it 64 times in a row, uncontended, then enters it with
 * plain stores and loads until another thread revokes the bias with
 * membarrier(2) (without membarrier, the mutex alone).  A biased owner
 * killed inside is recognised by its thread's start time in /proc (where
 * /proc cannot tell or would mislead, as from another PID or time
 * namespace, it is taken as alive, and others wait); one killed
 * inside by another thread's execve() is not, and the side's other users
 * then wait.  A child made without fork()'s atfork handlers (_Fork(), a raw
 * clone()) must not use a queue its parent used before it execs.  Waits
 * sleep on futexes, with a short bounded spin first; when the other side is
 * awake, a put or get makes no system call.  Timeouts are seconds
 * (MP_FOREVER: none; 0 or negative: do not wait), and hold whatever other
 * processes do: a get whose deadline passes while another consumer is
 * inside a get (a big copy, a stopped process) is MP_EEMPTY, get_nowait()
 * at once, as CPython's reader lock taken with the same block and timeout;
 * a put waits for a producer inside a put up to its deadline, a
 * non-blocking one for 10 ms (a copy, not a stopped process), then
 * MP_EFULL (CPython's put never waits for other producers: its feeder
 * thread writes later).  A queue reaches a child
 * as a typed argument (MP_ARGS(q)) under every start method; a fork child
 * may also use the parent's object directly.  One mp_queue may be used by
 * several threads at once.
 *
 * A process that writes over a queue's shared memory cannot crash or hang
 * the others (MP_EQCORRUPT above), but it can still make the queue look
 * full, empty or busy (calls with a timeout then time out; MP_FOREVER waits
 * as on a queue nobody drains), lose messages, hand out bytes it wrote as
 * a message, and let two processes into a side at once (their copies stay
 * inside the ring).  Under glibc, a side's robust mutex is checked before
 * a lock and put back as the lock left it before the unlock; a write that
 * lands at the very instant another process's glibc reads the mutex is
 * beyond any check.
 */

/* Queue(maxsize): maxsize <= 0 is unbounded.  As CPython's, making a queue
 * of any kind fixes the default start method (set_start_method() without
 * force is then MP_ECONTEXTSET). */
int mp_queue_new(mp_queue **q, int maxsize);
/* JoinableQueue(maxsize): a Queue with task_done() and join(). */
int mp_joinable_queue_new(mp_queue **q, int maxsize);
/* SimpleQueue(): unbounded; no qsize, full, join_thread, cancel_join_thread
 * (MP_EINVAL); after close(), put, get and empty are MP_EHANDLECLOSED
 * ("OSError: handle is closed"), as CPython's. */
int mp_simple_queue_new(mp_queue **q);

/*
 * put(buf, block, timeout): MP_EFULL (queue.Full) when a bounded queue stays
 * full (block = 0: at once, the timeout ignored); MP_EQCLOSED after close();
 * -EMSGSIZE for a message over 1 GiB.
 */
int mp_queue_put(mp_queue *q, const void *buf, size_t n, int block,
                 double timeout);
/* put_nowait(): put(buf, 0, 0). */
int mp_queue_put_nowait(mp_queue *q, const void *buf, size_t n);
/*
 * get(block, timeout): the oldest message; *out is malloc'd (free it; a NUL
 * follows the *len bytes).  MP_EEMPTY (queue.Empty) when none comes in time
 * (block = 0: at once; get(timeout=0) does not wait); MP_EQCLOSED after
 * close().
 */
int mp_queue_get(mp_queue *q, void **out, size_t *len, int block,
                 double timeout);
/* get_nowait(): get(out, len, 0, 0). */
int mp_queue_get_nowait(mp_queue *q, void **out, size_t *len);
/*
 * get() into the caller's buffer, without malloc: *len is the message's
 * length.  A message longer than size is left in the queue (MP_ETOOSHORT,
 * *len its length), so the caller can retry with a larger buffer.
 */
int mp_queue_get_into(mp_queue *q, void *buf, size_t size, size_t *len,
                      int block, double timeout);
/* qsize(): the number of messages in the queue (approximate while others
 * put or get).  MP_EINVAL for a SimpleQueue (it has none); MP_EQCORRUPT
 * when the counters say more were got than put. */
int mp_queue_qsize(mp_queue *q);
/* empty(), full(): 1 or 0 (full: a bounded queue holds maxsize messages;
 * full() may also be MP_EQCORRUPT, as qsize()).  As CPython's, empty() is MP_EHANDLECLOSED ("OSError: handle is closed")
 * after close() and join_thread() on a queue this process has put to (its
 * feeder thread closes the reader as it ends). */
int mp_queue_empty(mp_queue *q);
int mp_queue_full(mp_queue *q);
/*
 * close(): this process's object puts and gets no more (MP_EQCLOSED); others,
 * and other processes' objects, are unaffected; the messages stay.  Twice is
 * fine.  join_thread() is MP_EQNOTCLOSED (AssertionError) before close() and
 * returns at once after it: there is no feeder thread to wait for.
 * cancel_join_thread() does nothing, for the same reason.
 */
int mp_queue_close(mp_queue *q);
int mp_queue_join_thread(mp_queue *q);
int mp_queue_cancel_join_thread(mp_queue *q);
/*
 * JoinableQueue: task_done() marks one message got earlier as processed
 * (MP_ETASKDONE when there are more task_done() calls than puts); join()
 * waits until every message put has been marked (MP_ETIMEDOUT when the
 * timeout runs out; CPython's join() has no timeout: pass MP_FOREVER).
 * MP_EINVAL on other queues.
 */
int mp_queue_task_done(mp_queue *q);
int mp_queue_join(mp_queue *q, double timeout);
/* repr(): CPython's, "<multiprocessing.queues.Queue object at 0x...>"
 * (JoinableQueue, SimpleQueue).  Like snprintf. */
int mp_queue_repr(const mp_queue *q, char *buf, size_t size);
/* Unmaps and frees this process's object (the queue lives on in others);
 * accepts NULL; returns NULL. */
mp_queue *mp_queue_free(mp_queue *q);

/* Small helpers: C values as messages (native byte order). */
int mp_queue_put_str(mp_queue *q, const char *s); /* without its NUL */
int mp_queue_put_i64(mp_queue *q, long long v);
int mp_queue_put_double(mp_queue *q, double v);
/* get(block=True, timeout): MP_EBADLENGTH if the oldest message is not 8
 * bytes long; it then stays in the queue, for mp_queue_get(). */
int mp_queue_get_i64(mp_queue *q, long long *v, double timeout);
int mp_queue_get_double(mp_queue *q, double *v, double timeout);
/* get(block=True, timeout) of a message as a string: *s is malloc'd and
 * NUL-terminated (free it); a message holding NUL bytes reads as its first
 * part. */
int mp_queue_get_str(mp_queue *q, char **s, double timeout);

/*
 * The older way to hand a queue over (a typed argument, mp_arg_queue() or
 * MP_ARGS(q), is the one to use).  Hands q to the child p will start, as
 * mp_process_add_conn() does for a connection: in the child,
 * mp_child_queue(i) returns it, i counting the queues added from 0.  p takes a reference of its own to q's shared
 * memory: the caller may mp_queue_free() q at once.  MP_EHASSTARTED after
 * start.
 */
int mp_process_add_queue(mp_process *p, mp_queue *q);
/* In a child: the i-th queue its parent added; NULL if none.  Owned by
 * libmp. */
mp_queue *mp_child_queue(size_t i);

/* synchronisation: Lock, RLock, Semaphore, BoundedSemaphore, Condition,
 * Event, Barrier */

/*
 * CPython's synchronize.py.  Each object lives in shared memory (a memfd)
 * and is shared by every thread of the processes that hold it: the creating
 * process, and children it hands the object to as a typed argument
 * (MP_ARGS(lock, cond, ev, bar)) under every start method (a fork child may
 * also use the parent's object directly).  Waits sleep on futexes against
 * an absolute CLOCK_MONOTONIC deadline: no polling, no lost wake-ups, and a
 * signal or a spurious wake-up never makes a wait longer than asked.
 *
 * Timeouts are CPython's: seconds, MP_FOREVER for None; a negative timeout
 * is 0 (do not wait); with block = 0 the timeout is ignored.  A NaN is
 * MP_EINVAL where the call would wait (CPython's sem_timedwait() fails),
 * and goes unseen where it need not (a free lock, a set Event), after the
 * owner checks, as CPython's; Barrier's wait() takes it for its default.
 *
 * Lock, RLock, Semaphore and BoundedSemaphore are one C type, mp_lock, as
 * they are one class in CPython (_multiprocessing.SemLock): a counter with
 * a maximum, and, per process, the thread that last acquired it and how
 * many times this process holds it (what repr() and RLock's owner checks
 * read).  A Lock has no owner: any thread or process may release it.
 *
 * Beyond CPython: robust locks (mp_lock_new_robust()).  CPython leaves a
 * Lock whose holder died locked for good: every later acquire() hangs.
 * A robust Lock or RLock is owned by the thread that acquired it; when that
 * thread dies holding it (SIGKILL included), the next acquirer gets the
 * lock and MP_EOWNERDEAD instead of 1 (the kernel's robust futex list wakes
 * it: nobody polls).  What the lock protected may be half-updated: the
 * acquirer repairs it, as after pthread's EOWNERDEAD.  The price of an
 * owner: a robust lock is released only by the thread that holds it
 * (MP_EROBUSTOWNER otherwise), unlike CPython's Lock.  The default locks
 * keep CPython's behaviour exactly, dead holders included.
 *
 * A Barrier never hangs on the dead: a waiter that dies while waiting
 * breaks the barrier (MP_EBROKENBARRIER for the others), where CPython's
 * others wait for their timeout, or for ever, and the barrier stays stuck.
 * An Event is one word that set(), clear() and wait() each change in one
 * atomic step (set()'s wake-up of the sleepers included), so a process
 * killed inside them leaves the Event set or unset, never half done, and
 * holds nothing another waits for.  A Barrier's state is one word too, so
 * a process killed inside its calls leaves it whole; its sleepers look
 * every 0.1 s for a party that died (the kernel wakes no futex sleeper for
 * another process's death; in /proc: a thread's ids and start time; in a
 * PID namespace other than the dead party's, /proc cannot tell, and they
 * wait).  A Barrier round in
 * which nobody dies reads nothing from /proc beyond each thread's first
 * arrival.  A Condition keeps CPython's algorithm exactly, and with it
 * CPython's weakness: a waiter that dies inside wait() makes the next
 * notify() that counts it wait for ever, whatever its lock.
 *
 * MP_ESYNCCORRUPT: an object's shared memory holds what no libmp process
 * wrote there (a peer's stray write); every value read from it is bounded
 * before use, so such an object makes no caller crash or wait past its
 * timeout (a call without one, as set(), may wait as for a holder that
 * never lets go); a descriptor handed over that is not such an object is
 * refused when the child first reads the argument (OSError).
 */

/* Lock() and RLock(): MP_ENOMEM, -EMFILE and the like when the shared
 * memory cannot be made. */
int mp_lock_new(mp_lock **l);
int mp_rlock_new(mp_lock **l);
/* Robust Lock and RLock (above). */
int mp_lock_new_robust(mp_lock **l);
int mp_rlock_new_robust(mp_lock **l);
/* Semaphore(value) and BoundedSemaphore(value) (CPython's default value is
 * 1): a negative value is MP_ESEMVALUE ("OSError: [Errno 22] Invalid
 * argument"), as CPython's sem_open() gives. */
int mp_semaphore_new(mp_lock **s, int value);
int mp_bounded_semaphore_new(mp_lock **s, int value);

/*
 * acquire(block, timeout): 1 when acquired, 0 when not (block = 0 and
 * taken; the timeout ran out).  An RLock its thread holds is acquired again
 * at once (the count goes up).  A robust lock whose holder died: acquired,
 * MP_EOWNERDEAD.  A Lock is not reentrant: the same thread waits for itself
 * (CPython: "will result in a deadlock" without a timeout).
 */
int mp_lock_acquire(mp_lock *l, int block, double timeout);
/*
 * release(): 0.  Lock, Semaphore: MP_ERELEASED when the value is at its
 * maximum (a Lock not held; a BoundedSemaphore at its initial value; a
 * Semaphore at INT_MAX).  RLock: MP_ENOTOWNER when this thread does not
 * hold it.  A robust lock: MP_EROBUSTOWNER when another thread holds it
 * (or a dead one, until the next acquire takes it over).  Beyond CPython:
 * the check and the release are one atomic step, so racing releases never
 * carry a BoundedSemaphore past its maximum (CPython's can).
 */
int mp_lock_release(mp_lock *l);
/* get_value() (Semaphore's; SemLock._get_value() for the others): the
 * counter, >= 0 (a robust lock: 1 free, 0 held). */
int mp_lock_get_value(mp_lock *l);
/* Whether this thread holds l (SemLock._is_mine()): 1 or 0; and how many
 * times this process holds it (SemLock._count()).  As CPython's, the count
 * is this process's acquires less its releases: a Lock or Semaphore that
 * another process acquired and this one released counts below 0 here.  A
 * fork child, and a child given the lock as an argument, starts at 0. */
int mp_lock_is_mine(mp_lock *l);
int mp_lock_count(mp_lock *l);
/*
 * repr(): "<Lock(owner=None)>", "<Lock(owner=MainProcess)>" (this thread:
 * the process's name, then "|" and the thread's name outside the main
 * thread), "<Lock(owner=SomeOtherThread)>", "<Lock(owner=SomeOtherProcess)>";
 * "<RLock(None, 0)>", "<RLock(MainProcess, 2)>", "<RLock(SomeOtherThread,
 * nonzero)>"; "<Semaphore(value=2)>"; "<BoundedSemaphore(value=2,
 * maxvalue=2)>".  Like snprintf.  A C thread has no Python name: its name
 * is the one pthread_setname_np() gave it, if any (one other than the
 * program's, which every thread starts with), else "Thread-<kernel thread
 * id>": "<Lock(owner=MainProcess|Thread-4242)>".
 */
int mp_lock_repr(mp_lock *l, char *buf, size_t size);
/* This process's reference: the object lives on in others; accepts NULL;
 * returns NULL.  A lock this process holds stays held. */
mp_lock *mp_lock_free(mp_lock *l);

/*
 * Condition(lock): lock NULL makes a new RLock; otherwise the condition
 * takes a reference of its own to the given Lock or RLock (robust or not).
 */
int mp_cond_new(mp_cond **c, mp_lock *lock);
/* The condition's lock (owned by the condition). */
mp_lock *mp_cond_lock(mp_cond *c);
/* acquire() and release() of the condition's lock. */
int mp_cond_acquire(mp_cond *c, int block, double timeout);
int mp_cond_release(mp_cond *c);
/*
 * wait(timeout): releases the lock (all of an RLock's levels), sleeps until
 * notified or the timeout, takes the lock back as it was; 1 when notified,
 * 0 when the timeout ran out.  MP_EWAITNOTOWNED when this thread does not
 * hold the lock.  A robust lock whose holder died while this waited:
 * MP_EOWNERDEAD, the lock held again.
 */
int mp_cond_wait(mp_cond *c, double timeout);
/*
 * wait_for(predicate, timeout): calls pred(arg) (with the lock held) until
 * it returns non-zero or the timeout runs out, waiting in between; returns
 * the predicate's last value (0 after a timeout, as CPython returns the
 * predicate's falsy value).  A negative value from pred is returned as an
 * error at once.  MP_EWAITNOTOWNED as wait().
 */
typedef int (*mp_predicate)(void *arg);
int mp_cond_wait_for(mp_cond *c, mp_predicate pred, void *arg,
                     double timeout);
/*
 * notify(n), notify_all(): wakes up to n of the threads waiting (n <= 0:
 * none) and returns once each of them has woken, as CPython's does.
 * MP_ENOTOWNED when this thread does not hold the lock.  Where CPython
 * asserts that no wake-up is left over from an earlier notify (one that
 * a notifier killed half-way leaves), libmp drops it.
 */
int mp_cond_notify(mp_cond *c, int n);
int mp_cond_notify_all(mp_cond *c);
/* repr(): "<Condition(<RLock(None, 0)>, 0)>": the lock's repr and the
 * number of waiters.  Like snprintf. */
int mp_cond_repr(mp_cond *c, char *buf, size_t size);
mp_cond *mp_cond_free(mp_cond *c);

/* Event(): unset. */
int mp_event_new(mp_event **e);
/* is_set(): 1 or 0. */
int mp_event_is_set(mp_event *e);
/* set() wakes every waiter; clear() unsets.  0. */
int mp_event_set(mp_event *e);
int mp_event_clear(mp_event *e);
/* wait(timeout): 1 when the event is set (at once if it is), 0 when the
 * timeout ran out.  1 also when it was set and cleared again while this
 * wait slept (CPython's may return either, as its waiter needs a lock
 * back before it looks at the flag). */
int mp_event_wait(mp_event *e, double timeout);
/* repr() as CPython 3.12 and later: "<Event at 0x... set>" or "unset". */
int mp_event_repr(mp_event *e, char *buf, size_t size);
mp_event *mp_event_free(mp_event *e);

/*
 * Barrier(parties, action, timeout): threading.Barrier's semantics, shared
 * by processes.  parties is not checked (CPython accepts 0: every wait then
 * times out).  action, if not NULL, is a target run once a round, with no
 * arguments, by the last party to arrive, before any is released; it is
 * found by name in that process, so it must be registered there (MP_TARGET
 * does that in every process of the program); while it runs, late
 * arrivals, reset() and abort() wait for it, as CPython's wait for the
 * lock it runs under (do not call the barrier from it), and a negative
 * return is its failure, as a raise is CPython's.  timeout is the default for wait()
 * (MP_FOREVER: none).  MP_EINVAL for a NaN timeout, an action without a
 * name or one over MP_TARGET_NAME_MAX bytes, or over 65472 parties (each
 * has a slot in shared memory); MP_ENOTARGET for an action not registered
 * here.
 */
int mp_barrier_new(mp_barrier **b, int parties, const mp_target *action,
                   double timeout);
/* wait()'s timeout argument left out (None): the barrier's default. */
#define MP_BARRIER_DEFAULT (__builtin_nan(""))
/*
 * wait(timeout): the arrival index (0 for the first to arrive, parties - 1
 * for the last).  MP_EBROKENBARRIER when the barrier is or becomes broken
 * (abort(), a waiter's timeout, a failed action, a waiter that died);
 * a wait that times out breaks the barrier.  The action's own error is
 * returned to the party that ran it (the others get MP_EBROKENBARRIER).
 */
int mp_barrier_wait(mp_barrier *b, double timeout);
/* reset(): back to the empty state; waiters get MP_EBROKENBARRIER.
 * abort(): broken until reset().  0. */
int mp_barrier_reset(mp_barrier *b);
int mp_barrier_abort(mp_barrier *b);
/* parties, n_waiting (0 while resetting or broken), broken (1 or 0);
 * n_waiting and broken read the shared state without a lock, as
 * CPython's (MP_ESYNCCORRUPT if it holds what no barrier can).  libmp's
 * Barrier has no draining phase: a party of the next round counts in
 * n_waiting at once. */
int mp_barrier_parties(mp_barrier *b);
int mp_barrier_n_waiting(mp_barrier *b);
int mp_barrier_broken(mp_barrier *b);
mp_barrier *mp_barrier_free(mp_barrier *b);

/* shared values: Value, RawValue, Array, RawArray */

/*
 * CPython's sharedctypes.py: a C value, or an array of them, in shared
 * memory (a sealed memfd), with CPython's ctypes conversions on the way
 * in.  One type, mp_value, is all four: Value and Array are synchronized
 * (every access through these calls takes their lock: CPython's
 * Synchronized, SynchronizedArray and SynchronizedString wrappers), and
 * RawValue and RawArray are raw (no lock; options .raw = 1).  A value
 * reaches a child as a typed argument (MP_ARGS(v)) under every start
 * method, its lock with it (the child's value and lock are one object,
 * and a lock handed over on its own too is the same mp_lock there); a
 * fork child may also use the parent's object directly.  The memory's
 * layout is read once, when a process maps it, and bounded then: a peer
 * that writes over the header later changes nothing here, and what it
 * writes over the elements is what they read.
 *
 * The typecodes are CPython's (array's and sharedctypes' typecode_to_type):
 *   b c_byte  B c_ubyte  h c_short  H c_ushort  i c_int  I c_uint
 *   l c_long  L c_ulong  q Q c_long / c_ulong (CPython's aliases where long
 *   is 64 bits: c_longlong is c_long)  f c_float (4 bytes)  d c_double
 *   c c_char (1 byte)  u c_wchar (wchar_t: 4 bytes)
 * Any other typecode is MP_EVALSIZE ("TypeError: this type has no size",
 * as ctypes.sizeof('x') gives).
 *
 * Conversions, as ctypes makes them (CPython 3.10 and later; 3.8 and 3.9
 * word the TypeErrors "int expected instead of float" and "an integer is
 * required (got type str)"):
 *   integer types  an int, wrapped to the type's width without a word
 *                  (Value('i', 2**31) is -2147483648, Value('b', 200) is
 *                  -56; mp_arg_uint() above LLONG_MAX counts as its value);
 *                  any other value is MP_ERAISED "TypeError: 'float' object
 *                  cannot be interpreted as an integer" (str, bytes,
 *                  NoneType for mp_arg_none() in a set, Queue, ...);
 *   f, d           an int or a float; 'f' keeps the float32 nearest (0.1
 *                  reads 0.10000000149011612; beyond its range, inf);
 *                  else "TypeError: must be real number, not str";
 *   c              bytes of length 1, or an int 0..255; else "TypeError:
 *                  one character bytes, bytearray or integer expected";
 *   u              a str (UTF-8) of one character; "TypeError: one
 *                  character unicode string expected" for another length,
 *                  "TypeError: unicode string expected instead of int
 *                  instance" for another type; MP_EINVAL for a str that is
 *                  not UTF-8 (a surrogate included: C has no such str).
 *
 * Locks.  Every read and write through these calls takes the lock and
 * gives it back (CPython's properties do, `with self._lock`), so a single
 * access is atomic, and `v.value += 1` is not: take the lock around the
 * two (mp_value_acquire()) for that.  With the default RLock, an access
 * while this thread holds it is fine; with a given Lock it waits for
 * itself, as CPython's does.  A lock whose acquire fails (MP_ESYNCCORRUPT)
 * fails the access.  Beyond CPython: a robust lock given as the lock
 * (mp_rlock_new_robust()) survives a holder killed mid-update: the next
 * access or acquire gets MP_EOWNERDEAD, with the lock, and the access
 * done all the same (what the dead holder left half-written is for the
 * caller to repair).  An access takes no system call when the lock is
 * free: an uncontended RLock is two atomic operations.
 *
 * Not provided (Python only): `lock=` anything but a Lock or RLock (any
 * mp_lock is taken; CPython's "AttributeError: 'x' has no method
 * 'acquire'" has no C form), ctypes structures and types given as the
 * typecode (Value(c_int, 7): use its typecode), slices with a step, and
 * len() of a Value (CPython's TypeError; mp_value_len() gives 1).
 */

/* The lock argument of Value() and Array(): every field zero (or NULL
 * options) is lock=True, a new RLock. */
typedef struct mp_value_options {
    int raw;       /* 1: lock=False, the raw object (RawValue, RawArray) */
    mp_lock *lock; /* a given Lock or RLock, used as given (the value takes
                      a reference of its own); NULL: a new RLock.  MP_EINVAL
                      with raw. */
} mp_value_options;

/* "No value": Value('i') without an initial value (zero), and None where
 * a value is set (a TypeError). */
mp_arg mp_arg_none(void);

/*
 * Value(typecode, init, lock=...): one element, init converted as above
 * (mp_arg_none(): zero).  Errors: MP_EVALSIZE, the conversion's
 * TypeError (MP_ERAISED), MP_EINVAL (v NULL, raw with a lock), -ENOMEM,
 * -EMFILE and the like when the shared memory cannot be made.
 */
int mp_value_new(mp_value **v, char typecode, mp_arg init,
                 const mp_value_options *opts);
/*
 * Array(typecode, size): n elements, zero.  Array(typecode, [x, y, ...]):
 * n elements converted as above (the first that fails is the error, and
 * no array is made).  Array from a native C buffer of n elements of the
 * typecode's C type (signed char, unsigned char, short, ..., float,
 * double, char for 'c' (Array('c', b'hello') is "hello", 5), wchar_t for
 * 'u'): copied as it is, the fast way.  Errors: those of mp_value_new();
 * MP_EINVAL for a NULL init with n > 0; -ENOMEM for a size no memory can
 * hold.
 */
int mp_array_new(mp_value **a, char typecode, size_t n,
                 const mp_value_options *opts);
int mp_array_from(mp_value **a, char typecode, const mp_arg *init, size_t n,
                  const mp_value_options *opts);
int mp_array_from_native(mp_value **a, char typecode, const void *init,
                         size_t n, const mp_value_options *opts);

/*
 * .value of a Value, each under the lock.  get_int: the integer types'
 * value (the unsigned 64-bit ones as their bits: cast *out to unsigned
 * long long), 'c' the byte, 'u' the code point ("ValueError: character
 * U+110000 is not in range [U+0000; U+10ffff]" for one no str can hold,
 * as CPython's); 'f' and 'd' are "TypeError: 'float' object cannot be
 * interpreted as an integer".  get_double: 'f' and 'd', and the integer
 * types converted; 'c' and 'u' are "TypeError: must be real number, not
 * bytes" ("str").  set: x converted as above; on a 'c' Array, set is
 * .value = bytes (mp_array_set_value()); on a raw 'u' Array, .value = str
 * (a UTF-8 str's code points, and a 0 after them if they are fewer than
 * the elements; "ValueError: string too long", "TypeError: unicode
 * string expected instead of int instance", MP_EINVAL for a str that is
 * not UTF-8; nothing written on an error).  On an array (other calls):
 * MP_ERAISED "AttributeError: 'SynchronizedArray' object has no attribute
 * 'value'" ('c_int_Array_3' for a raw one), as CPython's reading gives
 * (its `a.value = x` adds an attribute of that name to the Python object
 * and raises nothing: no C value has room for one, so set raises the
 * reading's error).  MP_EOWNERDEAD: done, under a robust lock whose
 * holder died (above).
 */
int mp_value_get_int(mp_value *v, long long *out);
int mp_value_get_double(mp_value *v, double *out);
int mp_value_set(mp_value *v, mp_arg x);

/*
 * a[index] and a[index] = x, each under the lock: Python's indexing (a
 * negative index counts from the end); MP_EVALINDEX ("IndexError: invalid
 * index") out of range; values read and converted as a Value's.  On a
 * Value: MP_ERAISED "TypeError: 'Synchronized' object is not
 * subscriptable" ('c_int' for a raw one); "... object does not support
 * item assignment" for a set (and mp_array_write()).
 */
int mp_array_get_int(mp_value *a, long long index, long long *out);
int mp_array_get_double(mp_value *a, long long index, double *out);
int mp_array_set(mp_value *a, long long index, mp_arg x);

/* a[start:stop] to the end (stop: this, or anything at least the length;
 * a start of 0 or below -len is the beginning). */
#define MP_SLICE_END __LONG_LONG_MAX__
/*
 * a[start:stop] (step 1) under the lock, with Python's clamping (negatives
 * count from the end; bounds beyond it are clamped; stop <= start is
 * empty), as native elements.  read: copies the slice's first out_elems
 * elements at most to out and returns the slice's length (>= 0: like
 * snprintf, NULL and 0 ask the length).  write: a[start:stop] = in, which
 * must hold exactly the slice's length of elements (MP_EVALSLICE, "Can
 * only assign sequence of same size", otherwise; nothing is written); 0.
 * MP_EINVAL for a NULL buffer with a count; the errors of indexing a
 * Value; MP_EOWNERDEAD as above (a read then returns that, not the
 * length: ask again).
 */
long long mp_array_read(mp_value *a, long long start, long long stop,
                        void *out, size_t out_elems);
int mp_array_write(mp_value *a, long long start, long long stop,
                   const void *in, size_t n);

/*
 * A 'c' array's .value (its bytes up to the first NUL) and .raw (all of
 * them), under the lock: the first cap bytes at most copied to out, a NUL
 * after them if there is room, and the length returned, like
 * mp_array_read().  A raw 'u' array has .value too (wchar_t elements up to
 * the first 0; cap counts elements), as ctypes' c_wchar arrays.  On other
 * arrays, MP_ERAISED "AttributeError: 'SynchronizedArray' object has no
 * attribute 'value'" ('raw'; 'c_int_Array_3' for a raw one), as CPython's.
 * The setters (.value = b'...', .raw = b'...'): len bytes (elements for
 * 'u') copied; .value puts a NUL after them when they are shorter than
 * the array; longer than the array is MP_ERAISED "ValueError: byte string
 * too long" ("string too long" for 'u'), nothing written.  0.
 */
long long mp_array_value(mp_value *a, void *out, size_t cap);
long long mp_array_raw(mp_value *a, void *out, size_t cap);
int mp_array_set_value(mp_value *a, const void *buf, size_t len);
int mp_array_set_raw(mp_value *a, const void *buf, size_t len);

/* len() of an array (a Value: 1), the typecode, sizeof one element; 0 for
 * NULL. */
size_t mp_value_len(const mp_value *v);
char mp_value_typecode(const mp_value *v);
size_t mp_value_itemsize(const mp_value *v);
/* Whether v is raw (RawValue, RawArray, lock=False): 1 or 0. */
int mp_value_is_raw(const mp_value *v);

/*
 * get_obj() as C sees it: the shared elements themselves (len() of them,
 * of the typecode's C type), valid as long as v; read and write them
 * holding the lock (mp_value_acquire()) when other processes may.  A raw
 * value's too.  NULL for NULL.
 */
void *mp_value_ptr(mp_value *v);
/*
 * get_lock(): 0 and the lock (owned by v: do not free it).  A raw value:
 * MP_ERAISED "AttributeError: 'c_int' object has no attribute
 * 'get_lock'", with its ctypes type's name ('c_double_Array_3' ...).
 */
int mp_value_get_lock(mp_value *v, mp_lock **lock);
/*
 * acquire(block, timeout) and release() of the wrapper (`with v:`): its
 * lock's, with mp_lock_acquire()'s and mp_lock_release()'s results.  A raw
 * value: MP_ERAISED "AttributeError: 'c_int' object has no attribute
 * 'acquire'" ('release').
 */
int mp_value_acquire(mp_value *v, int block, double timeout);
int mp_value_release(mp_value *v);

/*
 * repr(), like snprintf: "<Synchronized wrapper for c_int(0)>", "c_int(3)"
 * (raw), "c_double(1.5)", "c_char(b'a')", "c_wchar('z')";
 * "<SynchronizedArray wrapper for <multiprocessing.sharedctypes.
 * c_int_Array_5 object at 0x...>>" ("<SynchronizedString wrapper ..." for
 * a 'c' array; the object alone for a raw one).  It reads the value
 * without the lock, as CPython's.  Non-ASCII characters of a 'u' value
 * show as they are, but for the spaces, controls, format characters,
 * surrogates and private-use ones, escaped as CPython escapes them
 * (CPython also escapes the code points Unicode leaves unassigned).
 */
int mp_value_repr(mp_value *v, char *buf, size_t size);

/*
 * This process's object: unmaps it and drops its lock reference (the
 * memory lives on in the processes that hold it).  A child's argument
 * belongs to its list: freeing it does nothing.  Accepts NULL; returns
 * NULL.
 */
mp_value *mp_value_free(mp_value *v);

/*
 * Typed access for the caller that holds the lock (or a raw value's
 * owner): a pointer to the first element as its C type, or NULL when the
 * value's C type is another.  `*mp_value_i32(v) += 1;` between
 * mp_value_acquire() and mp_value_release() is CPython's
 * `with v.get_lock(): v.value += 1`.  i8 'b', u8 'B' and 'c', i16 'h',
 * u16 'H', i32 'i', u32 'I', i64 'q' and 'l', u64 'Q' and 'L' (where long
 * is 64 bits; 'l' and 'L' are i32 and u32 where it is 32), f32 'f', f64
 * 'd'.
 */
#define MP__VALUE_TYPED(name, ctype, ok)                                      \
    static inline ctype *mp_value_##name(mp_value *v)                         \
    {                                                                         \
        char t = mp_value_typecode(v);                                        \
        return (ok) ? (ctype *)mp_value_ptr(v) : (ctype *)0;                  \
    }
#define MP__LONG64 (sizeof(long) == 8)
MP__VALUE_TYPED(i8, signed char, t == 'b')
MP__VALUE_TYPED(u8, unsigned char, t == 'B' || t == 'c')
MP__VALUE_TYPED(i16, short, t == 'h')
MP__VALUE_TYPED(u16, unsigned short, t == 'H')
MP__VALUE_TYPED(i32, int, t == 'i' || (t == 'l' && !MP__LONG64))
MP__VALUE_TYPED(u32, unsigned, t == 'I' || (t == 'L' && !MP__LONG64))
MP__VALUE_TYPED(i64, long long, t == 'q' || (t == 'l' && MP__LONG64))
MP__VALUE_TYPED(u64, unsigned long long, t == 'Q' || (t == 'L' && MP__LONG64))
MP__VALUE_TYPED(f32, float, t == 'f')
MP__VALUE_TYPED(f64, double, t == 'd')

/* pools */

/*
 * Pool(processes, initializer, initargs, maxtasksperchild, context):
 * CPython's multiprocessing.Pool, whose tasks are targets (MP_TARGET) found
 * by name in the worker, with typed arguments in (mp_arg, as a Process's)
 * and one typed value out (mp_task_return()).
 *
 * A task is a target run in a worker with the task's arguments as `args`
 * (the blob is empty).  What it returns decides its result, as CPython's
 * worker does:
 *   0       success; the value is the last mp_task_return()'s, or None
 *           (MP_ARG_NONE) if it made none;
 *   n < 0   the task raised: the caller's get() returns that code, and for
 *           MP_ERAISED mp_exception_name() and mp_exception_message() give
 *           the task's ("ValueError", "bad 3"), as CPython re-raises the
 *           worker's exception in the caller;
 *   n > 0   sys.exit(n): the worker exits with n, as CPython's does
 *           (SystemExit is no Exception), and is replaced.
 * An error raised where no caller can take it (mp_check(), mp_args_int()
 * on a str, ...) is sent as the task's, then ends the worker as it would
 * any process (C cannot unwind the task), and the worker is replaced.
 *
 * Tasks and results travel through libmp queues (no pickling, no feeder
 * thread); two threads of the pool's process collect results and watch the
 * workers (pidfds: nobody polls).  Callbacks run in the result thread, as
 * CPython's run in its result-handler thread; a callback must not wait on
 * the pool's results.
 *
 * Beyond CPython: nothing waits for a result that cannot come.  A worker
 * that dies running a task (SIGKILL, _exit(), a crash, sys.exit) makes that
 * task's result MP_EWORKERLOST (every item of its chunk), the worker is
 * replaced and every other task goes on; CPython loses the result, and a
 * get() without a timeout hangs for ever.  terminate() makes the results
 * still pending MP_EPOOLTERMINATED, where CPython's never become ready.
 *
 * Workers are daemonic Processes of the pool's context, named as
 * CPython's: "ForkPoolWorker-N", "SpawnPoolWorker-N",
 * "ForkServerPoolWorker-N"; they die with the pool's process (CPython's
 * see EOF on their pipe then and exit).  A pool is used by the process
 * that made it, from any of its threads: in a fork child, its copy's
 * calls (and a wait on a result that was not ready at the fork) return
 * MP_EPOOLNOTRUNNING, and mp_pool_free() releases the copy's memory and
 * touches no worker.
 */
typedef struct mp_pool mp_pool;
/* AsyncResult (ApplyResult, MapResult). */
typedef struct mp_result mp_result;
/* IMapIterator: imap() and imap_unordered(). */
typedef struct mp_imap mp_imap;

/* A result value that is None (a task that made no mp_task_return()), or a
 * map chunk's item under chunksize 0. */
enum { MP_ARG_NONE = 0 };

/* Pool(processes=None): os.cpu_count() workers (mp_cpu_count(); 1 when
 * unknown). */
#define MP_POOL_CPUS (-__INT_MAX__ - 1)
/* chunksize=None: map()'s CPython default (len / (4 * processes), rounded
 * up), imap()'s 1. */
#define MP_CHUNKSIZE_AUTO (-__LONG_MAX__ - 1L)

/* Every field zero is CPython's default. */
typedef struct mp_pool_options {
    /* run in each worker before its first task, with initargs (which may
     * hold queues, connections and the synchronisation objects: they reach
     * the worker as a Process's arguments do); a negative return ends the
     * worker as an uncaught exception (exit code 1), and it is replaced, as
     * CPython's */
    const mp_target *initializer;
    const mp_arg *initargs;
    size_t n_initargs;
    /* tasks a worker runs before it exits and is replaced; 0 is None
     * (C has no None): a negative value is MP_EMAXTASKS, as CPython's 0
     * and negatives are */
    long maxtasksperchild;
    mp_context *context; /* NULL: the default context */
} mp_pool_options;

/*
 * Starts the workers.  MP_EPOOLPROCS for processes < 1 (other than
 * MP_POOL_CPUS), MP_EMAXTASKS, MP_ENOTARGET for an initializer not
 * registered, MP_EINVAL for bad initargs; a worker that cannot start is
 * start()'s error.
 */
int mp_pool_new(mp_pool **pool, int processes, const mp_pool_options *opts);
/* The number of workers. */
int mp_pool_processes(const mp_pool *pool);
/* repr(): "<multiprocessing.pool.Pool state=RUN pool_size=2>" (RUN, CLOSE
 * or TERMINATE).  Like snprintf. */
int mp_pool_repr(const mp_pool *pool, char *buf, size_t size);

/* One call's arguments: apply()'s, and each item of starmap(). */
typedef struct mp_call {
    const mp_arg *args;
    size_t n;
} mp_call;

/*
 * callback(result) and error_callback(exception), run in the pool's result
 * thread once the result is in, before it is ready (so a get() that
 * returns finds its callback done), as CPython's.  callback runs on
 * success, error_callback on failure with the code get() will return (the
 * task's exception set in the calling thread for MP_ERAISED).  `arg` is
 * passed through.  A map's callbacks get the whole result.
 */
typedef struct mp_pool_callbacks {
    void (*callback)(mp_result *r, void *arg);
    void (*error_callback)(mp_result *r, int err, void *arg);
    void *arg;
} mp_pool_callbacks;

/*
 * The submitting calls.  Each returns 0 and a new result in *out (the
 * caller frees it; freeing one still pending is allowed), or an error and
 * no result: MP_EPOOLNOTRUNNING after close() or terminate(), the error
 * that broke the pool's result queue (MP_EQCORRUPT: a peer wrote over
 * it; no result could come, and those pending failed with it), MP_ENOTARGET
 * for a target not registered, MP_EINVAL for a NULL target or a bad value;
 * a queue, connection or synchronisation object among a task's arguments
 * is MP_ERAISED "RuntimeError: Queue objects should only be shared between
 * processes through inheritance" (Lock, Condition, ... for the others), as
 * CPython's pickling refuses them (initargs can hold them).  cb may be
 * NULL.
 *
 * apply_async(f, args): one call.
 * map_async(f, items): one call per item, with that item as its only
 * argument; chunksize is MP_CHUNKSIZE_AUTO or the items a worker takes at
 * once; chunksize <= 0 makes a result of n None values at once, no task
 * run, as CPython's map does (an empty map's result is ready at once).
 * starmap_async(f, calls): one call per mp_call, with its arguments.
 */
int mp_pool_apply_async(mp_pool *pool, const mp_target *f, const mp_arg *args,
                        size_t n, const mp_pool_callbacks *cb,
                        mp_result **out);
int mp_pool_map_async(mp_pool *pool, const mp_target *f, const mp_arg *items,
                      size_t n, long chunksize, const mp_pool_callbacks *cb,
                      mp_result **out);
int mp_pool_starmap_async(mp_pool *pool, const mp_target *f,
                          const mp_call *calls, size_t n, long chunksize,
                          const mp_pool_callbacks *cb, mp_result **out);
/*
 * apply(), map(), starmap(): the above, then mp_result_get(*out,
 * MP_FOREVER); they return get()'s code.  *out is set whenever the task
 * was submitted (free it even on a task's failure), else NULL.
 */
int mp_pool_apply(mp_pool *pool, const mp_target *f, const mp_arg *args,
                  size_t n, mp_result **out);
int mp_pool_map(mp_pool *pool, const mp_target *f, const mp_arg *items,
                size_t n, long chunksize, mp_result **out);
int mp_pool_starmap(mp_pool *pool, const mp_target *f, const mp_call *calls,
                    size_t n, long chunksize, mp_result **out);

/*
 * imap(f, items, chunksize) and imap_unordered(): an iterator over the
 * results, in the items' order or as they come.  chunksize
 * MP_CHUNKSIZE_AUTO is 1; below 1 is MP_ERAISED "ValueError: Chunksize
 * must be 1+, not 0", as CPython's.
 */
int mp_pool_imap(mp_pool *pool, const mp_target *f, const mp_arg *items,
                 size_t n, long chunksize, mp_imap **out);
int mp_pool_imap_unordered(mp_pool *pool, const mp_target *f,
                           const mp_arg *items, size_t n, long chunksize,
                           mp_imap **out);
/*
 * next(timeout): 1 and the next value in *value (owned by the iterator,
 * valid until its next call), 0 at the end (StopIteration),
 * MP_ERESULTTIMEOUT when none came in time, or that item's task's error
 * (iteration goes on with the next item, as CPython's).  With a chunksize
 * above 1, a failed chunk's error comes once, at its first item, and the
 * iteration ends there, as CPython's generator ends when it raises.
 */
int mp_imap_next(mp_imap *it, double timeout, const mp_arg **value);
mp_imap *mp_imap_free(mp_imap *it);

/*
 * AsyncResult.get(timeout): 0 once the result is in and successful (its
 * values then readable), MP_ERESULTTIMEOUT when it is not ready in time,
 * else the task's error (a map's: the first failed item's), MP_EWORKERLOST
 * or MP_EPOOLTERMINATED.
 */
int mp_result_get(mp_result *r, double timeout);
/* wait(timeout): 1 if ready, 0 if not in time. */
int mp_result_wait(mp_result *r, double timeout);
/* ready(): 1 or 0. */
int mp_result_ready(mp_result *r);
/* successful(): 1 or 0; MP_ERAISED "ValueError: <multiprocessing.pool.
 * ApplyResult object at 0x...> not ready" (MapResult for a map) before it
 * is ready. */
int mp_result_successful(mp_result *r);
/* The number of values of a successful result: 1 for apply, n for a map. */
size_t mp_result_len(const mp_result *r);
/* The i-th value (owned by r), or NULL if r is not successful or i is out
 * of range. */
const mp_arg *mp_result_value(const mp_result *r, size_t i);
mp_result *mp_result_free(mp_result *r);

/*
 * In a task: its result, a copy of v (int, float, str, bytes or
 * MP_ARG_NONE; a handle is MP_EINVAL); the last call wins.  0, or
 * MP_EINVAL outside a pool's task.  `return mp_task_return(MP_ARG(x * x));`
 */
int mp_task_return(mp_arg v);

/*
 * close(): no more tasks; the workers exit once the queued ones are done.
 * terminate(): the workers are stopped at once (SIGTERM, as CPython's;
 * one still running 1 s later gets SIGKILL) and reaped, and pending
 * results fail with MP_EPOOLTERMINATED (no callback runs for them); it
 * may be called from a callback.  join(): waits for every worker to exit;
 * MP_EPOOLRUNNING before close() or terminate(), as CPython's.  Each 0
 * otherwise.  At the exit of the process that made them, pools still
 * running are terminated, as CPython's finalizer does.
 */
int mp_pool_close(mp_pool *pool);
int mp_pool_terminate(mp_pool *pool);
int mp_pool_join(mp_pool *pool);
/* terminate() if still running, join(), and free; results outlive it
 * (pending ones failed).  Not from a callback (nor join()): they wait for
 * the thread that runs it. */
mp_pool *mp_pool_free(mp_pool *pool);
/* `with Pool() as p:`: MP_POOL_SCOPED mp_pool *p = NULL; frees the pool
 * (terminating it) when p goes out of scope, as CPython's __exit__ calls
 * terminate(). */
void mp_pool_cleanup(mp_pool **pool);
#define MP_POOL_SCOPED __attribute__((cleanup(mp_pool_cleanup)))

/* SharedMemory */

/*
 * multiprocessing.shared_memory.SharedMemory: a named POSIX shared memory
 * segment (shm_open(3): a file under /dev/shm), mapped whole into this
 * process.  A process attaches by name, whatever made the segment: libmp
 * and CPython attach each other's.  An mp_shm is used by one thread at a
 * time; its buffer, like any memory, by any number.  A fork child inherits
 * the mapping (its copy of the object is its own to close and free); other
 * children attach by the name (pass mp_shm_name() as an argument), as
 * CPython pickles a SharedMemory by name.
 *
 * Beyond CPython: the lifetime of a segment.  CPython leaves it to unlink()
 * (its resource tracker unlinks at exit what was not, warning about
 * "leaked shared_memory objects", and an attaching process's tracker
 * too, 3.8 to 3.13 unless 3.13's track=False, while others may still use
 * it).  libmp removes a segment's name, after the creating process has
 * exited, once no process has the segment mapped any more, killed
 * processes included: each attacher and the creator hold a shared
 * flock(2) on the segment while it is mapped, the creating process holds
 * one more until it has exited, and a reaper, one process per creating
 * process (started by its first create, outliving it), removes the name
 * when it can take the exclusive lock.  So a segment is never removed
 * while a libmp process maps it (a CPython process attached to it does
 * not count: its mapping stays valid, the name may go), a creator that
 * closes without unlinking keeps it attachable while it lives, as in
 * CPython, and none is left in /dev/shm after every user has gone.
 * unlink() is immediate, as in CPython.  harness/lib/README.md
 * ("SharedMemory") has the details and the limits (a killed reaper, a
 * program that cannot be run again).
 */
typedef struct mp_shm mp_shm;

/*
 * SharedMemory(name=None, create=False, size=0).  create: a new segment of
 * `size` bytes (zeroed), named `name`, or NULL for a generated name ("psm_"
 * and 8 hex digits, CPython's _make_filename(), drawn again while taken);
 * else attaches to the segment `name`, whose size it takes (`size` is then
 * only checked, as CPython's).  The name is given without the leading '/',
 * which is added as CPython adds it (so "/x" opens "//x", which the C
 * library reads as "x"; mp_shm_name() gives "/x" back).  The size is the
 * byte count asked for, not rounded to pages (CPython 3.8 to 3.13 alike).
 * Errors, raised as CPython's (MP_ERAISED; mp_format_exception() gives the
 * line), in CPython's order:
 *   "ValueError: 'size' must be a positive integer": size above SSIZE_MAX
 *     (a negative size converted to size_t);
 *   "ValueError: 'size' must be a positive number different from zero":
 *     create with size 0;
 *   "ValueError: 'name' can only be None if create=True";
 *   "FileExistsError: [Errno 17] File exists: '/name'": create, name taken;
 *   "FileNotFoundError: [Errno 2] No such file or directory: '/name'": no
 *     such segment to attach (or its name was just removed: see above);
 *   "OSError: [Errno 22] Invalid argument: '/a/b'": a name the C library
 *     refuses (empty, a '/' inside, too long); "PermissionError: ...";
 *   "ValueError: cannot mmap an empty file": attaching a segment of size 0
 *     (not made by SharedMemory);
 *   OSError "[Errno N] text" without a name when sizing or mapping fails
 *     (a segment just created is then unlinked; CPython also unlinks one it
 *     failed to attach, libmp does not); MP_EINVAL for a NULL `s`.
 */
int mp_shm_new(mp_shm **s, const char *name, int create, size_t size);
/* .name: without the leading '/' (CPython strips one).  Valid until the
 * object is freed; after close() and unlink() too. */
const char *mp_shm_name(const mp_shm *s);
/* .size: the segment's size in bytes; unchanged by close(). */
size_t mp_shm_size(const mp_shm *s);
/* .buf: the mapping, size bytes; NULL after close() (CPython's None). */
void *mp_shm_buf(mp_shm *s);
/* close(): unmaps (any pointer into buf is invalid after it); the segment
 * and its name stay.  Twice is fine.  0, or MP_EINVAL for NULL. */
int mp_shm_close(mp_shm *s);
/*
 * unlink(): removes the name at once, as CPython's (closed or not; a
 * mapping stays valid until closed).  "FileNotFoundError: [Errno 2] No
 * such file or directory: '/name'" (MP_ERAISED) when the name is gone
 * already: a second unlink(), anyone's unlink, or the reaper's removal.
 */
int mp_shm_unlink(mp_shm *s);
/* repr(): "SharedMemory('psm_1a2b3c4d', size=4096)" (the name as Python's
 * repr of a str), also after close().  Like snprintf. */
int mp_shm_repr(const mp_shm *s, char *buf, size_t size);
/* close() if not closed, and frees; never unlinks.  NULL is fine. */
mp_shm *mp_shm_free(mp_shm *s);

#ifdef __cplusplus
}
#endif

#endif /* MP_H */
