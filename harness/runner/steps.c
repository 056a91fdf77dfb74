/*
 * steps.c - the step interpreter: runs a case's steps over libmp, in the main
 * process of a run and in every child (cases/README.md; its Python twin is
 * scripts/record_reference.py).
 *
 * Each process appends one JSON line per step to <dir>/out/<path>.jsonl as it
 * goes ({"value": ...} or {"raises": "Name: message"}, plus "t", the step's
 * wall time), so a process that is killed keeps what it did.  A harness
 * problem (a wait_event that times out) is a {"harness_error": ...} line.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mp.h"
#include "runner.h"

#define STOP_RAISED INT_MIN /* steps_run: a `raise` step ends the process */

/* SIGINT's Python default: the handler sets a flag, and the step that
 * caused it raises KeyboardInterrupt (signal_self); the process survives. */
static volatile sig_atomic_t sigint_pending;
static bool exit_by_sigint; /* an uncaught KeyboardInterrupt in the main */

static void on_sigint(int sig)
{
    (void)sig;
    sigint_pending = 1;
}

static void python_sigint(void)
{
    struct sigaction sa = { .sa_handler = on_sigint, .sa_flags = SA_RESTART };

    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
}

/* Registered before libmp's own teardown, so it runs after it. */
static void sigint_exit(void)
{
    if (!exit_by_sigint)
        return;
    fflush(NULL);
    signal(SIGINT, SIG_DFL);
    raise(SIGINT);
}

static struct interp *main_interp;
json_int_t steps_global; /* set_global/get_global, init_global */

/* register_atexit: prints its text, as atexit.register(print, text): a
 * JSON string, which may hold NULs. */
static void print_text(void *text)
{
    fwrite(json_string_value(text), 1, json_string_length(text), stdout);
    fputc('\n', stdout);
    fflush(stdout);
    json_decref(text);
}

static struct hcase *main_case;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void write_line(struct interp *in, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT), *line;
    int len = asprintf(&line, "%s\n", s != NULL ? s : "{}");

    /* One write per line: O_APPEND keeps lines whole. */
    if (len < 0 || write(in->out_fd, line, (size_t)len) != len)
        _exit(126);
    free(line);
    free(s);
}

/* threads: a thread's steps run with an interpreter of their own, which
 * holds copies of the objects passed to it (its parent's to free) */

struct hthread {
    pthread_t id;
    char name[16];   /* its `as`, as far as a thread's name goes */
    bool joined;
    json_t *steps;
    struct interp in;
};

static void free_thread(struct hthread *t)
{
    if (t != NULL && t->joined) /* else it may still run: leave it */
        free(t);
}

/* Drops what this process holds of an object it made. */
static void free_obj(struct obj *o)
{
    mp_process_free(o->p);
    mp_conn_free(o->c);
    mp_queue_free(o->q);
    free_thread(o->t);
    if (!o->lock_of_value)
        mp_lock_free(o->l);
    mp_cond_free(o->cv);
    mp_event_free(o->ev);
    mp_barrier_free(o->b);
    steps_pool_free_obj(o);
    steps_shared_free_obj(o);
}

/* Frees what the main process holds, so leak checkers see a clean exit; the
 * children still running stay in libmp's registry and are joined at exit. */
static void main_cleanup(void)
{
    if (main_interp == NULL)
        return;
    for (size_t i = 0; i < main_interp->nobj; i++)
        free_obj(&main_interp->objs[i]);
    free(main_interp->objs);
    main_interp->objs = NULL;
    close(main_interp->out_fd);
    main_interp = NULL;
    case_free(main_case);
    main_case = NULL;
}

_Noreturn void steps_harness_error(struct interp *in, const char *msg)
{
    json_t *o = json_pack("{s:s}", "harness_error", msg);

    write_line(in, o);
    json_decref(o);
    if (in->child)
        _exit(125);
    main_cleanup();
    fflush(NULL);
    _exit(125);
}

static void join_threads(struct interp *in);

/* Ends the process as sys.exit(code) would: CPython joins the threads
 * still running first (threading._shutdown). */
_Noreturn static void do_exit(struct interp *in, int code)
{
    join_threads(in);
    if (!in->child) {
        main_cleanup();
        exit(code);
    }
    mp_exit(code);
}

static char *raises_text(int err)
{
    char line[1024];

    mp_format_exception(err, line, sizeof(line));
    return strdup(line);
}

/* An OSError raised by a plain system call, as CPython words it (libmp
 * words EINVAL and ENOMEM as ValueError and MemoryError; a syscall's are
 * OSErrors). */
static char *oserror_text(int err)
{
    const char *exc = mp_exception_name(-err);
    char *s;

    if (strcmp(exc, "ValueError") == 0 || strcmp(exc, "MemoryError") == 0)
        exc = "OSError";
    if (asprintf(&s, "%s: [Errno %d] %s", exc, err, strerror(err)) < 0)
        s = NULL;
    return s;
}

static const char *type_name(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_INTEGER: return "int";
    case JSON_REAL: return "float";
    case JSON_STRING: return "str";
    case JSON_TRUE: case JSON_FALSE: return "bool";
    case JSON_ARRAY: return "list";
    case JSON_OBJECT: return "dict";
    default: return "NoneType";
    }
}

/* The order Python's sorted() gives with the recorder's key: None, bools,
 * numbers, strings (by code point), lists, dicts. */
static int rank(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL: return 0;
    case JSON_TRUE: case JSON_FALSE: return 1;
    case JSON_INTEGER: case JSON_REAL: return 2;
    case JSON_STRING: return 3;
    case JSON_ARRAY: return 4;
    default: return 5;
    }
}

static int cmp_json(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int rx = rank(x), ry = rank(y), r;
    char *sx, *sy;

    if (rx != ry)
        return rx - ry;
    if (rx == 1)
        return json_is_true(x) - json_is_true(y);
    if (rx == 2) {
        double d = json_number_value(x) - json_number_value(y);
        return (d > 0) - (d < 0);
    }
    if (rx == 3)
        return strcmp(json_string_value(x), json_string_value(y));
    if (rx == 0)
        return 0;
    sx = json_dumps(x, JSON_SORT_KEYS | JSON_COMPACT);
    sy = json_dumps(y, JSON_SORT_KEYS | JSON_COMPACT);
    r = strcmp(sx, sy);
    free(sx);
    free(sy);
    return r;
}

/* The compare mode, applied when the outcome is recorded (cases/README.md). */
static json_t *apply_compare(json_t *v, const char *mode)
{
    if (mode == NULL || strcmp(mode, "exact") == 0)
        return v;
    if (strcmp(mode, "type") == 0) {
        json_t *t = json_string(type_name(v));
        json_decref(v);
        return t;
    }
    if (strcmp(mode, "ignore") == 0) {
        json_decref(v);
        return json_null();
    }
    if (json_is_array(v) && json_array_size(v) > 1) { /* set */
        size_t n = json_array_size(v);
        json_t **items = malloc(n * sizeof(*items)), *sorted = json_array();
        for (size_t i = 0; i < n; i++)
            items[i] = json_array_get(v, i);
        qsort(items, n, sizeof(*items), cmp_json);
        for (size_t i = 0; i < n; i++)
            json_array_append(sorted, items[i]);
        free(items);
        json_decref(v);
        return sorted;
    }
    return v;
}

struct obj *steps_find_obj(struct interp *in, const char *name)
{
    for (size_t i = in->nobj; i-- > 0;)
        if (strcmp(in->objs[i].name, name) == 0)
            return &in->objs[i];
    return NULL;
}

/* The process a step names; NULL for a None (@parent in the main process).
 * *o is the harness's record of it, if any. */
static mp_process *resolve(struct interp *in, json_t *step, struct obj **o)
{
    const char *name = json_string_value(json_object_get(step, "proc"));
    struct obj *found;

    *o = NULL;
    if (strcmp(name, "@current") == 0)
        return mp_current_process();
    if (strcmp(name, "@parent") == 0)
        return mp_parent_process();
    found = steps_find_obj(in, name);
    if (found == NULL)
        steps_harness_error(in, "unknown object (the case validator missed "
                            "it)");
    *o = found;
    return found->p;
}

/* The attribute CPython looks up for an op, for errors on None. */
static const char *attribute_of(const char *op)
{
    if (strcmp(op, "set_name") == 0) return "name";
    if (strcmp(op, "set_daemon") == 0) return "daemon";
    if (strcmp(op, "pid_is") == 0) return "pid";
    if (strcmp(op, "wait_sentinel") == 0) return "sentinel";
    return op;
}

void steps_sleep_for(double seconds)
{
    double end = now() + seconds;
    struct timespec ts;

    for (double left = seconds; left > 0; left = end - now()) {
        ts.tv_sec = (time_t)left;
        ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
        nanosleep(&ts, NULL);
    }
}

static char *fifo_path(struct interp *in, const char *name)
{
    char *s;

    if (asprintf(&s, "%s/ev/%s", in->dir, name) < 0)
        steps_harness_error(in, "out of memory");
    return s;
}

static int do_event(struct interp *in, const char *name, json_int_t count)
{
    char *path = fifo_path(in, name);
    int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC), r = 0;

    free(path);
    if (fd < 0)
        return -errno;
    for (json_int_t i = 0; i < count; i++)
        if (write(fd, "e", 1) != 1) {
            r = -errno;
            break;
        }
    close(fd);
    return r;
}

static void do_wait_event(struct interp *in, const char *name, double timeout)
{
    char *path = fifo_path(in, name), c, msg[128];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    double end = now() + timeout;

    free(path);
    if (fd < 0)
        steps_harness_error(in, "wait_event: cannot open the event's FIFO");
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        double left = end - now();
        if (read(fd, &c, 1) == 1)
            break;
        if (left <= 0) {
            snprintf(msg, sizeof(msg), "wait_event \"%s\" timed out after "
                     "%gs", name, timeout);
            steps_harness_error(in, msg);
        }
        poll(&pfd, 1, (int)ceil(left * 1000));
    }
    close(fd);
}

static int steps_run(struct interp *in, json_t *steps);

MP_TARGET_DECLARE(harness_child);

/* A synchronisation object or a shared value, as a typed argument of a
 * child; type 0 for any other kind of object. */
static mp_arg sync_arg(const struct obj *o)
{
    mp_arg none = { .type = 0 };

    if (o == NULL)
        return none;
    return o->l != NULL ? mp_arg_lock(o->l) : o->cv != NULL
           ? mp_arg_cond(o->cv) : o->ev != NULL ? mp_arg_event(o->ev)
           : o->b != NULL ? mp_arg_barrier(o->b)
           : o->val != NULL ? mp_arg_value(o->val) : none;
}

/* The text a child gets (its first typed argument): its path, the run's
 * directory, its steps and the objects passed to it: a connection or queue
 * by its index among those added to the process, a synchronisation object
 * by its place among the typed arguments (from 1), a SharedMemory by its
 * name (CPython pickles it so) or, to a fork child, as the object it
 * inherits, and a process as a pointer (the fork start method shares
 * memory). */
static char *child_arg(struct interp *in, json_t *step, const char *as)
{
    json_t *a = json_object(), *passed = json_object(), *e;
    char path[256], ptr[32], *text;
    size_t i;

    if (snprintf(path, sizeof(path), "%s%s%s", in->child ? in->path : "",
                 in->child ? "." : "", as) >= (int)sizeof(path))
        steps_harness_error(in, "processes nested too deep");
    size_t nconn = 0, nqueue = 0, nsync = 1;
    json_array_foreach(json_object_get(step, "pass"), i, e) {
        struct obj *o = steps_find_obj(in, json_string_value(e));
        if (sync_arg(o).type != 0) { /* mp_args_get_lock(args, index)... */
            json_object_set_new(passed, json_string_value(e),
                                json_pack("{s:I, s:b}", "arg",
                                          (json_int_t)nsync++, "array",
                                          o->val_array));
            continue;
        }
        if (o != NULL && o->shm != NULL) {
            const char *m = json_string_value(json_object_get(step,
                                                              "context"));
            if (strcmp(m != NULL ? m : mp_get_start_method(0), "fork") == 0) {
                snprintf(ptr, sizeof(ptr), "%p", (void *)o->shm);
                json_object_set_new(passed, json_string_value(e),
                                    json_pack("{s:s}", "shm_ptr", ptr));
            } else {
                json_object_set_new(passed, json_string_value(e),
                                    json_pack("{s:s}", "shm",
                                              mp_shm_name(o->shm)));
            }
            continue;
        }
        if (o != NULL && o->c != NULL) { /* mp_child_conn(index) */
            json_object_set_new(passed, json_string_value(e),
                                json_pack("{s:I}", "conn",
                                          (json_int_t)nconn++));
            continue;
        }
        if (o != NULL && o->q != NULL) { /* mp_child_queue(index) */
            json_object_set_new(passed, json_string_value(e),
                                json_pack("{s:I}", "queue",
                                          (json_int_t)nqueue++));
            continue;
        }
        snprintf(ptr, sizeof(ptr), "%p", (void *)(o != NULL ? o->p : NULL));
        json_object_set_new(passed, json_string_value(e),
                            json_pack("{s:s}", "ptr", ptr));
    }
    json_object_set_new(a, "path", json_string(path));
    json_object_set_new(a, "dir", json_string(in->dir));
    json_object_set(a, "steps", json_object_get(step, "target"));
    json_object_set_new(a, "pass", passed);
    text = json_dumps(a, JSON_COMPACT);
    json_decref(a);
    return text;
}

/* A JSON integer that CPython hands to a C int parameter ("i"). */
static bool int_overflows(json_t *v)
{
    return json_is_integer(v) && (json_integer_value(v) > INT_MAX ||
                                  json_integer_value(v) < INT_MIN);
}

#define INT_OVERFLOW "OverflowError: Python int too large to convert to C int"

/* A size no allocator can give on Linux (user space has at most 2**57
 * bytes): MemoryError without asking, as CPython's malloc would fail, and
 * with no allocator's warning on stderr (ASan's). */
#define NEVER_ALLOCATED ((size_t)1 << 57)

/* The OverflowError CPython's poll-based waits (connection.wait(): join,
 * poll, wait, a queue's get) raise for a timeout the selector cannot take,
 * or NULL: math.ceil(timeout * 1e3) milliseconds must be a PyTime_t in
 * nanoseconds, then a C int. */
static const char *wait_overflow(json_t *t)
{
    double ms;

    if (t == NULL || json_is_null(t) || !(json_number_value(t) > 0))
        return NULL;
    ms = ceil(json_number_value(t) * 1e3);
    if (ms > 9223372036854.0) /* INT64_MAX / 1e6 */
        return "OverflowError: timestamp too large to convert to C PyTime_t";
    if (ms > INT_MAX)
        return "OverflowError: timeout is too large";
    return NULL;
}

struct obj *steps_new_obj(struct interp *in, const char *name)
{
    struct obj *o;

    if (in->nobj == in->cap) {
        size_t cap = in->cap > 0 ? 2 * in->cap : 16;
        struct obj *grown = realloc(in->objs, cap * sizeof(*grown));
        if (grown == NULL)
            steps_harness_error(in, "out of memory");
        in->objs = grown;
        in->cap = cap;
    }
    o = &in->objs[in->nobj++];
    memset(o, 0, sizeof(*o));
    snprintf(o->name, sizeof(o->name), "%s", name);
    return o;
}

/* objects */

static json_t *op_process(struct call *c)
{
    struct interp *in = c->in;
    const char *as = arg_str(c, "as"), *cname = arg_str(c, "context");
    json_t *daemon = arg(c, "daemon"), *e;
    mp_process_options opt = {
        .name = arg_str(c, "name"),
        .daemon = daemon == NULL ? MP_DAEMON_INHERIT
                  : json_is_true(daemon) ? MP_DAEMON_YES : MP_DAEMON_NO,
    };
    mp_context *cx = NULL;
    mp_process *np = NULL;
    char *text = NULL;
    mp_arg *args = NULL;
    size_t k, nargs = 0;
    int r;

    json_array_foreach(arg(c, "pass"), k, e) {
        struct obj *po = steps_find_obj(in, json_string_value(e));
        if (po != NULL && po->p != NULL &&
            strcmp(mp_get_start_method(0), "fork") != 0)
            steps_harness_error(in, "libmp cannot hand a process object to a "
                                "child that is not forked: arguments are "
                                "bytes, and a process object is not (CPython "
                                "pickles it)");
    }
    if (cname != NULL && (r = mp_get_context(&cx, cname)) < 0)
        return failed(c, r); /* ValueError: cannot find context for 'x' */
    opt.context = cx;
    /* the target's arguments: its steps as text, then the synchronisation
     * objects passed to it (CPython: only a process with a target gets
     * args) */
    if (arg(c, "target") != NULL) {
        json_t *pass = arg(c, "pass");
        text = child_arg(in, c->step, as);
        if ((args = calloc(json_array_size(pass) + 1, sizeof(*args))) ==
            NULL) {
            free(text);
            return failed(c, -ENOMEM);
        }
        args[nargs++] = mp_arg_str(text);
        json_array_foreach(pass, k, e) {
            mp_arg a = sync_arg(steps_find_obj(in, json_string_value(e)));
            if (a.type != 0)
                args[nargs++] = a;
        }
    }
    r = mp_process_create(&np, text != NULL ? &harness_child_target : NULL,
                          args, nargs, &opt);
    free(args);
    free(text);
    if (r < 0)
        return failed(c, r);
    /* connections and queues reach the child under every start method */
    json_array_foreach(arg(c, "pass"), k, e) {
        struct obj *co = steps_find_obj(in, json_string_value(e));
        if (co != NULL && (co->c != NULL || co->q != NULL) &&
            (r = co->c != NULL ? mp_process_add_conn(np, co->c)
                               : mp_process_add_queue(np, co->q)) < 0) {
            mp_process_free(np);
            return failed(c, r);
        }
    }
    {
        struct obj *o = steps_new_obj(in, as);
        o->p = np;
        if (daemon == NULL) { /* the current process's flag, as it is */
            o->daemon_int = in->daemon_int;
            o->daemon_value = in->daemon_value;
        }
    }
    return json_null();
}

static json_t *op_pipe(struct call *c)
{
    json_t *ends = arg(c, "ends");
    mp_conn *a, *b;
    int r;

    if ((r = mp_pipe(&a, &b, json_is_true(arg(c, "duplex")))) < 0)
        return failed(c, r);
    steps_new_obj(c->in, json_string_value(json_array_get(ends, 0)))->c = a;
    steps_new_obj(c->in, json_string_value(json_array_get(ends, 1)))->c = b;
    return json_null();
}

static json_t *op_queue(struct call *c)
{
    const char *kind = arg_str(c, "kind");
    json_t *m = arg(c, "maxsize");
    int maxsize = (int)json_integer_value(m);
    mp_queue *nq;
    int r;

    /* Queue(maxsize) makes BoundedSemaphore(maxsize): a C int, or
     * SEM_VALUE_MAX for 0 or less.  SimpleQueue() takes no maxsize. */
    if (strcmp(kind, "SimpleQueue") != 0 && int_overflows(m) &&
        json_integer_value(m) > 0)
        return raise_text(c, strdup(INT_OVERFLOW));
    if (json_integer_value(m) < 0)
        maxsize = 0;

    r = strcmp(kind, "Queue") == 0 ? mp_queue_new(&nq, maxsize)
        : strcmp(kind, "JoinableQueue") == 0
            ? mp_joinable_queue_new(&nq, maxsize)
            : mp_simple_queue_new(&nq);
    if (r < 0)
        return failed(c, r);
    steps_new_obj(c->in, arg_str(c, "as"))->q = nq;
    return json_null();
}

static json_t *op_wait(struct call *c)
{
    json_t *objs = arg(c, "objects"), *t = arg(c, "timeout"), *e, *names;
    size_t n = json_array_size(objs), k;
    int *fds = calloc(n + 1, sizeof(*fds)), *ready = calloc(n + 1,
                                                            sizeof(*ready));
    int r = 0; /* an empty list waits on nothing */

    if (fds == NULL || ready == NULL) {
        free(fds);
        free(ready);
        return raise_text(c, strdup("MemoryError"));
    }
    json_array_foreach(objs, k, e) {
        const char *nm = json_string_value(e);
        struct obj *wo = nm[0] == '@' ? NULL : steps_find_obj(c->in, nm);
        mp_process *wp = nm[0] == '@' ? (strcmp(nm, "@current") == 0
                                         ? mp_current_process()
                                         : mp_parent_process())
                                      : wo->p;
        r = wo != NULL && wo->c != NULL ? mp_conn_fileno(wo->c)
                                        : mp_process_sentinel(wp);
        if (r < 0)
            break;
        fds[k] = r;
    }
    if (r >= 0 && wait_overflow(t) != NULL) {
        free(fds);
        free(ready);
        return raise_text(c, strdup(wait_overflow(t)));
    }
    if (r >= 0)
        r = mp_wait(fds, n, json_is_null(t) ? MP_FOREVER
                                            : json_number_value(t), ready);
    names = r < 0 ? NULL : json_array();
    json_array_foreach(objs, k, e)
        if (r >= 0 && ready[k])
            json_array_append(names, e);
    free(fds);
    free(ready);
    return r < 0 ? failed(c, r) : apply_compare(names, "set");
}

/* processes: c->p is the process "proc" names, never None here */

/* A daemon flag that is an int reaches the child as the child's own
 * current_process().daemon: <dir>/daemon/<path> holds it. */
static void pass_daemon_int(struct call *c)
{
    char file[4096];
    FILE *f;

    if (c->o == NULL || !c->o->daemon_int)
        return;
    snprintf(file, sizeof(file), "%s/daemon", c->in->dir);
    mkdir(file, 0700);
    snprintf(file, sizeof(file), "%s/daemon/%s%s%s", c->in->dir,
             c->in->child ? c->in->path : "", c->in->child ? "." : "",
             c->o->name);
    if ((f = fopen(file, "w")) == NULL)
        steps_harness_error(c->in, "cannot pass the daemon flag to the child");
    fprintf(f, "%" JSON_INTEGER_FORMAT "\n", c->o->daemon_value);
    fclose(f);
}

static json_t *op_start(struct call *c)
{
    pass_daemon_int(c);
    return null_or_failed(c, mp_process_start(c->p));
}

static json_t *op_join(struct call *c)
{
    json_t *t = arg(c, "timeout");
    pid_t pid;
    int r;

    if (wait_overflow(t) != NULL) {
        /* CPython checks the process, then waits only while its
         * returncode is unknown: a child seen to end returns at once. */
        r = c->o == NULL || c->o->inherited ? mp_process_join(c->p, 0)
                                            : mp_process_pid(c->p, &pid);
        if (r == 0 && c->o != NULL && !c->o->inherited)
            r = mp_process_join(c->p, 0); /* not started: its error */
        else if (r >= 0 && (c->o == NULL || !c->o->ended_seen))
            return raise_text(c, strdup(wait_overflow(t)));
        return r < 0 && r != MP_ETIMEDOUT ? failed(c, r) : json_null();
    }
    r = mp_process_join(c->p, t != NULL ? json_number_value(t) : MP_FOREVER);
    if (r == 0 && c->o != NULL)
        c->o->ended_seen = true;
    /* CPython's join returns None on a timeout too */
    return r < 0 && r != MP_ETIMEDOUT ? failed(c, r) : json_null();
}

static json_t *op_is_alive(struct call *c)
{
    int r = mp_process_is_alive(c->p);
    pid_t pid;

    if (r == 0 && c->o != NULL && mp_process_pid(c->p, &pid) == 1)
        c->o->ended_seen = true;
    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_exitcode(struct call *c)
{
    int code, r = mp_process_exitcode(c->p, &code);

    if (r < 0)
        return failed(c, r);
    if (r == 1 && c->o != NULL)
        c->o->ended_seen = true;
    return r == 1 ? json_integer(code) : json_null();
}

static json_t *op_pid(struct call *c)
{
    pid_t pid;
    int r = mp_process_pid(c->p, &pid);

    return r < 0 ? failed(c, r) : json_string(r == 1 ? "int" : "NoneType");
}

static json_t *op_pid_is(struct call *c)
{
    bool self = strcmp(arg_str(c, "of"), "self") == 0;
    pid_t pid;
    int r = mp_process_pid(c->p, &pid);

    if (r < 0)
        return failed(c, r);
    return json_boolean(r == 1 && pid == (self ? getpid() : getppid()));
}

static json_t *op_name(struct call *c)
{
    return json_string(mp_process_name(c->p));
}

static json_t *op_set_name(struct call *c)
{
    return null_or_failed(c, mp_process_set_name(c->p, arg_str(c, "value")));
}

static json_t *op_daemon(struct call *c)
{
    int d = mp_process_daemon(c->p);

    if (c->o != NULL ? c->o->daemon_int
                     : c->p == mp_current_process() && c->in->daemon_int)
        return json_integer(c->o != NULL ? c->o->daemon_value
                                         : c->in->daemon_value);
    return json_boolean(d);
}

static json_t *op_set_daemon(struct call *c)
{
    json_t *v = arg(c, "value");
    /* libmp keeps a flag; CPython keeps the value and tests its truth */
    int r = mp_process_set_daemon(c->p, json_is_integer(v)
                                            ? json_integer_value(v) != 0
                                            : json_is_true(v));

    if (r < 0)
        return failed(c, r);
    if (c->o != NULL) {
        c->o->daemon_int = json_is_integer(v);
        c->o->daemon_value = json_integer_value(v);
    } else if (c->p == mp_current_process()) {
        c->in->daemon_int = json_is_integer(v);
        c->in->daemon_value = json_integer_value(v);
    }
    return json_null();
}

static json_t *op_sentinel(struct call *c)
{
    int r = mp_process_sentinel(c->p);

    return r < 0 ? failed(c, r) : json_string("int");
}

static json_t *op_wait_sentinel(struct call *c)
{
    int fd = mp_process_sentinel(c->p), r;
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    double end = now() + json_number_value(arg(c, "timeout"));

    if (fd < 0)
        return failed(c, fd);
    if (wait_overflow(arg(c, "timeout")) != NULL)
        return raise_text(c, strdup(wait_overflow(arg(c, "timeout"))));
    do
        r = poll(&pfd, 1, (int)ceil(fmax(0, end - now()) * 1000));
    while (r < 0 && errno == EINTR);
    return json_boolean(r == 1);
}

static json_t *op_terminate(struct call *c)
{
    return null_or_failed(c, mp_process_terminate(c->p));
}

static json_t *op_kill(struct call *c)
{
    return null_or_failed(c, mp_process_kill(c->p));
}

static json_t *op_close(struct call *c)
{
    return null_or_failed(c, mp_process_close(c->p));
}

static json_t *op_repr(struct call *c)
{
    char buf[1024], *norm;
    json_t *v;

    mp_process_repr(c->p, buf, sizeof(buf));
    norm = norm_line(buf);
    v = json_string(norm != NULL ? norm : "");
    free(norm);
    return v;
}

static json_t *op_is_none(struct call *c)
{
    (void)c;
    return json_false();
}

static json_t *op_active_children(struct call *c)
{
    mp_process **list;
    size_t n;
    json_t *names;
    int r;

    if ((r = mp_active_children(&list, &n)) < 0)
        return failed(c, r);
    names = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(names, json_string(mp_process_name(list[i])));
    mp_process_list_free(list, n);
    return apply_compare(names, "set");
}

static json_t *op_cpu_count(struct call *c)
{
    (void)c;
    return json_boolean(mp_cpu_count() == sysconf(_SC_NPROCESSORS_ONLN));
}

/* start methods and program state */

static json_t *op_get_start_method(struct call *c)
{
    const char *m = mp_get_start_method(json_is_true(arg(c, "allow_none")));

    return m != NULL ? json_string(m) : json_null();
}

static json_t *op_set_start_method(struct call *c)
{
    return null_or_failed(c, mp_set_start_method(arg_str(c, "method"),
                                                 json_is_true(arg(c,
                                                              "force"))));
}

static json_t *op_set_global(struct call *c)
{
    steps_global = json_integer_value(arg(c, "value"));
    return json_null();
}

static json_t *op_get_global(struct call *c)
{
    (void)c;
    return json_integer(steps_global);
}

static json_t *op_register_atexit(struct call *c)
{
    json_t *text = json_incref(arg(c, "text"));
    int r = mp_atexit(print_text, text);

    if (r < 0)
        json_decref(text);
    return null_or_failed(c, r);
}

/* connections */

static mp_conn *conn_of(struct call *c)
{
    struct obj *o = steps_find_obj(c->in, arg_str(c, "conn"));

    if (o == NULL || o->c == NULL)
        steps_harness_error(c->in, "not a connection (the case validator "
                            "missed it)");
    return o->c;
}

/* A message as text, as the recorder decodes it (backslashreplace). */
static json_t *message_text(void *buf, size_t len)
{
    size_t tlen;
    char *text = utf8_text(buf, len, &tlen);
    json_t *v = json_stringn(text, tlen);

    free(text);
    free(buf);
    return v;
}

/* A step's "data" times its "repeat", as CPython's bytes * n makes it
 * (malloc'd, *len its length); NULL with the outcome set when it fails. */
static char *repeated_data(struct call *c, size_t *len)
{
    json_t *d = arg(c, "data"); /* may hold NULs */
    size_t n = json_string_length(d);
    json_int_t times = json_integer_value(arg(c, "repeat"));
    char *buf;

    if (n > 0 && (uintmax_t)times > (uintmax_t)PTRDIFF_MAX / n) {
        c->raised = strdup("OverflowError: repeated bytes are too long");
        return NULL;
    }
    *len = n * (size_t)times;
    if ((buf = malloc(*len + 1)) == NULL) {
        c->err = -ENOMEM;
        return NULL;
    }
    for (json_int_t i = 0; n > 0 && i < times; i++)
        memcpy(buf + (size_t)i * n, json_string_value(d), n);
    return buf;
}

static json_t *op_send_bytes(struct call *c)
{
    mp_conn *conn = conn_of(c);
    size_t len;
    char *buf = repeated_data(c, &len);
    int r;

    if (buf == NULL)
        return NULL;
    r = mp_conn_send_bytes(conn, buf, len);
    free(buf);
    return null_or_failed(c, r);
}

static json_t *op_recv_bytes(struct call *c)
{
    mp_conn *conn = conn_of(c);
    json_t *m = arg(c, "maxlength");
    void *buf;
    size_t len;
    int r;

    /* CPython checks closed, then readable, then the argument. */
    if (m != NULL && json_integer_value(m) < 0 && !mp_conn_closed(conn) &&
        mp_conn_readable(conn))
        return raise_text(c, strdup("ValueError: negative maxlength"));
    r = mp_conn_recv_bytes(conn, &buf, &len, m != NULL ?
                           (size_t)json_integer_value(m) : MP_NOLIMIT);
    return r < 0 ? failed(c, r) : message_text(buf, len);
}

static json_t *op_recv_bytes_into(struct call *c)
{
    mp_conn *conn = conn_of(c);
    json_int_t size = json_integer_value(arg(c, "size"));
    size_t len = 0;
    void *whole = NULL;
    char *buf, *repr, *text = NULL;
    int r;

    if (size < 0) /* bytearray(size) fails first */
        return raise_text(c, strdup("ValueError: negative count"));
    if ((size_t)size >= NEVER_ALLOCATED ||
        (buf = malloc(size > 0 ? (size_t)size : 1)) == NULL)
        return raise_text(c, strdup("MemoryError")); /* bytearray's */
    r = mp_conn_recv_bytes_into_ex(conn, buf, (size_t)size, &len, &whole);
    free(buf);
    if (r != MP_ETOOSHORT)
        return r < 0 ? failed(c, r) : json_integer((json_int_t)len);
    /* BufferTooShort carries the message: str(e) is repr(e.args[0]). */
    repr = bytes_repr(whole, len);
    free(whole);
    if (repr == NULL ||
        asprintf(&text, "%s: %s", mp_exception_name(r), repr) < 0)
        text = NULL;
    free(repr);
    return text != NULL ? raise_text(c, text) : failed(c, -ENOMEM);
}

static json_t *op_poll(struct call *c)
{
    json_t *t = arg(c, "timeout");
    mp_conn *conn = conn_of(c);
    int r;

    /* the connection's own checks come first (closed, readable) */
    if (wait_overflow(t) != NULL)
        return (r = mp_conn_poll(conn, 0)) < 0
                   ? failed(c, r) : raise_text(c, strdup(wait_overflow(t)));
    r = mp_conn_poll(conn, json_is_null(t) ? MP_FOREVER
                                           : json_number_value(t));
    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_conn_close(struct call *c)
{
    return null_or_failed(c, mp_conn_close(conn_of(c)));
}

static json_t *op_conn_state(struct call *c)
{
    mp_conn *conn = conn_of(c);

    return json_pack("[b, b, b]", mp_conn_closed(conn),
                     mp_conn_readable(conn), mp_conn_writable(conn));
}

/* queues */

/* A queue method libmp's C API does not offer for this kind of queue (it
 * returns MP_EINVAL), raised as CPython's missing attribute. */
static const char *missing_method(const char *kind, const char *op)
{
    static const char *const not_simple[] = {
        "put_nowait", "get_nowait", "qsize", "full", "join_thread",
        "cancel_join_thread",
    };
    bool joinable = strcmp(kind, "JoinableQueue") == 0;
    if (strcmp(op, "task_done") == 0 || strcmp(op, "queue_join") == 0)
        return joinable ? NULL : op;
    if (strcmp(kind, "SimpleQueue") == 0)
        for (size_t i = 0; i < sizeof(not_simple) / sizeof(*not_simple); i++)
            if (strcmp(op, not_simple[i]) == 0)
                return op;
    return NULL;
}

/* The queue a step names, with its repr; NULL when this kind of queue has
 * no such method (c->raised says so). */
static mp_queue *queue_of(struct call *c, char *repr, size_t size)
{
    struct obj *o = steps_find_obj(c->in, arg_str(c, "queue"));
    const char *missing;
    char kind[32] = "";

    if (o == NULL || o->q == NULL)
        steps_harness_error(c->in, "not a queue (the case validator missed "
                            "it)");
    mp_queue_repr(o->q, repr, size);
    sscanf(repr, "<multiprocessing.queues.%31[A-Za-z]", kind);
    if ((missing = missing_method(kind, c->vo->op)) != NULL) {
        if (asprintf(&c->raised, "AttributeError: '%s' object has no "
                     "attribute '%s'", kind, strcmp(missing, "queue_join") == 0
                     ? "join" : missing) < 0)
            c->raised = NULL;
        return NULL;
    }
    return o->q;
}

/* A queue call's outcome.  A closed queue's errors carry its repr, as
 * CPython's do ("Queue <multiprocessing.queues.Queue object at 0x...> is
 * closed"): libmp gives the repr, the message is put together here. */
static json_t *queue_failed(struct call *c, int r, const char *repr)
{
    if (r != MP_EQCLOSED && r != MP_EQNOTCLOSED)
        return failed(c, r);
    if (asprintf(&c->raised, "%s: Queue %s %s", mp_exception_name(r), repr,
                 r == MP_EQCLOSED ? "is closed" : "not closed") < 0)
        c->raised = NULL;
    return NULL;
}

static json_t *queue_null(struct call *c, int r, const char *repr)
{
    return r < 0 ? queue_failed(c, r, repr) : json_null();
}

/* put's and get's optional block and timeout */
static int blocking(struct call *c, double *timeout)
{
    json_t *t = arg(c, "timeout");

    *timeout = t == NULL || json_is_null(t) ? MP_FOREVER
                                            : json_number_value(t);
    return arg(c, "block") == NULL || json_is_true(arg(c, "block"));
}

static json_t *put(struct call *c, bool nowait)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));
    json_t *d = arg(c, "data"), *rep = arg(c, "repeat");
    size_t n = json_string_length(d), times = rep == NULL ? 1
               : (size_t)json_integer_value(rep);
    double timeout;
    int block = blocking(c, &timeout), r;
    char *buf;

    if (q == NULL)
        return NULL;
    /* data * repeat, as CPython's bytes repetition fails */
    if (n > 0 && times > (size_t)PTRDIFF_MAX / n)
        return raise_text(c, strdup("OverflowError: repeated bytes are too "
                                    "long"));
    if (n * times >= NEVER_ALLOCATED || (buf = malloc(n * times + 1)) == NULL)
        return raise_text(c, strdup("MemoryError"));
    for (size_t i = 0; n > 0 && i < times; i++)
        memcpy(buf + i * n, json_string_value(d), n);
    r = nowait ? mp_queue_put_nowait(q, buf, n * times)
               : mp_queue_put(q, buf, n * times, block, timeout);
    free(buf);
    return queue_null(c, r, repr);
}

static json_t *op_put(struct call *c)
{
    return put(c, false);
}

static json_t *op_put_nowait(struct call *c)
{
    return put(c, true);
}

static json_t *get(struct call *c, bool nowait)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));
    double timeout;
    int block = blocking(c, &timeout), r;
    void *buf;
    size_t len;

    if (q == NULL)
        return NULL;
    /* get(True, timeout) polls with the timeout once the queue is open */
    if (!nowait && block && wait_overflow(arg(c, "timeout")) != NULL)
        return steps_find_obj(c->in, arg_str(c, "queue"))->closed
                   ? queue_failed(c, MP_EQCLOSED, repr)
                   : raise_text(c, strdup(wait_overflow(arg(c, "timeout"))));
    r = nowait ? mp_queue_get_nowait(q, &buf, &len)
               : mp_queue_get(q, &buf, &len, block, timeout);
    if (r < 0)
        return queue_failed(c, r, repr);
    if (json_is_true(arg(c, "length_only"))) {
        free(buf);
        return json_integer((json_int_t)len);
    }
    return message_text(buf, len);
}

static json_t *op_get(struct call *c)
{
    return get(c, false);
}

static json_t *op_get_nowait(struct call *c)
{
    return get(c, true);
}

static json_t *op_qsize(struct call *c)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));
    int r = q != NULL ? mp_queue_qsize(q) : 0;

    if (q == NULL)
        return NULL;
    return r < 0 ? queue_failed(c, r, repr) : json_integer(r);
}

static json_t *op_empty(struct call *c)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));
    int r = q != NULL ? mp_queue_empty(q) : 0;

    if (q == NULL)
        return NULL;
    return r < 0 ? queue_failed(c, r, repr) : json_boolean(r);
}

static json_t *op_full(struct call *c)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));
    int r = q != NULL ? mp_queue_full(q) : 0;

    if (q == NULL)
        return NULL;
    return r < 0 ? queue_failed(c, r, repr) : json_boolean(r);
}

static json_t *op_queue_close(struct call *c)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));
    int r = q != NULL ? mp_queue_close(q) : 0;

    if (q != NULL && r == 0)
        steps_find_obj(c->in, arg_str(c, "queue"))->closed = true;
    return q == NULL ? NULL : queue_null(c, r, repr);
}

static json_t *op_join_thread(struct call *c)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));

    return q == NULL ? NULL : queue_null(c, mp_queue_join_thread(q), repr);
}

static json_t *op_cancel_join_thread(struct call *c)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));

    return q == NULL ? NULL
                     : queue_null(c, mp_queue_cancel_join_thread(q), repr);
}

static json_t *op_task_done(struct call *c)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));

    return q == NULL ? NULL : queue_null(c, mp_queue_task_done(q), repr);
}

static json_t *op_queue_join(struct call *c)
{
    char repr[128];
    mp_queue *q = queue_of(c, repr, sizeof(repr));

    return q == NULL ? NULL
                     : queue_null(c, mp_queue_join(q, MP_FOREVER), repr);
}

static void put_text_line(FILE *f, const char *text, size_t n);

/* synchronisation objects: Lock, RLock, Semaphore, BoundedSemaphore,
 * Condition, Event, Barrier */

/* The context a making step names, checked as get_context() checks it;
 * without one, the default context, which that fixes (CPython's
 * multiprocessing.Lock() asks for it).  libmp's objects serve every start
 * method: the context changes nothing else.  false with the outcome set. */
static bool sync_context(struct call *c)
{
    mp_context *cx;
    int r = mp_get_context(&cx, arg_str(c, "context"));

    if (r < 0)
        c->err = r;
    return r >= 0;
}

/* The object a step's `key` names, of the kind ops.json says. */
static struct obj *sync_obj(struct call *c, const char *key)
{
    struct obj *o = steps_find_obj(c->in, arg_str(c, key));

    if (o == NULL || sync_arg(o).type == 0)
        steps_harness_error(c->in, "not a synchronisation object (the case "
                            "validator missed it)");
    return o;
}

static mp_lock *lock_of(struct call *c, const char *key)
{
    struct obj *o = sync_obj(c, key);

    if (o->l == NULL)
        steps_harness_error(c->in, "not a lock (the case validator missed it)");
    return o->l;
}

static mp_cond *cond_of(struct call *c)
{
    struct obj *o = sync_obj(c, "cond");

    if (o->cv == NULL)
        steps_harness_error(c->in, "not a condition (the case validator missed "
                            "it)");
    return o->cv;
}

static mp_event *event_of(struct call *c)
{
    struct obj *o = sync_obj(c, "event");

    if (o->ev == NULL)
        steps_harness_error(c->in, "not an event (the case validator missed "
                            "it)");
    return o->ev;
}

static mp_barrier *barrier_of(struct call *c)
{
    struct obj *o = sync_obj(c, "barrier");

    if (o->b == NULL)
        steps_harness_error(c->in, "not a barrier (the case validator missed "
                            "it)");
    return o->b;
}

/* A wait's timeout: null or omitted is None (ops.json bounds the rest). */
static double timeout_arg(struct call *c, double none)
{
    json_t *t = arg(c, "timeout");

    return t == NULL || json_is_null(t) ? none : json_number_value(t);
}

/* A repr libmp formats, normalised as CPython's is. */
static json_t *repr_value(const char *buf)
{
    char *norm = norm_line(buf);
    json_t *v = json_string(norm != NULL ? norm : "");

    free(norm);
    return v;
}

/* The class of an mp_lock, "Lock", "RLock", "Semaphore" or
 * "BoundedSemaphore", as its repr begins. */
static void lock_kind(mp_lock *l, char *kind, size_t size)
{
    char repr[256];
    size_t n = 0;

    mp_lock_repr(l, repr, sizeof(repr));
    while (n + 1 < size && isalpha((unsigned char)repr[n + 1])) {
        kind[n] = repr[n + 1];
        n++;
    }
    kind[n] = '\0';
}

/* Only the semaphores have get_value() (SemLock's own is _get_value()). */
static bool has_get_value(const char *kind)
{
    return strcmp(kind, "Semaphore") == 0 ||
           strcmp(kind, "BoundedSemaphore") == 0;
}

static char *no_get_value(const char *kind)
{
    char *s;

    if (asprintf(&s, "AttributeError: '%s' object has no attribute "
                 "'get_value'", kind) < 0)
        s = NULL;
    return s;
}

static json_t *op_lock(struct call *c)
{
    const char *kind = arg_str(c, "kind");
    int value = (int)json_integer_value(arg(c, "value")), r;
    mp_lock *l;

    if (!sync_context(c))
        return NULL;
    r = strcmp(kind, "Lock") == 0 ? mp_lock_new(&l)
        : strcmp(kind, "RLock") == 0 ? mp_rlock_new(&l)
        : strcmp(kind, "Semaphore") == 0 ? mp_semaphore_new(&l, value)
        : mp_bounded_semaphore_new(&l, value);
    if (r < 0)
        return failed(c, r);
    steps_new_obj(c->in, arg_str(c, "as"))->l = l;
    return json_null();
}

static json_t *op_acquire(struct call *c)
{
    int r = mp_lock_acquire(lock_of(c, "lock"),
                            json_is_true(arg(c, "block")),
                            timeout_arg(c, MP_FOREVER));

    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_release(struct call *c)
{
    return null_or_failed(c, mp_lock_release(lock_of(c, "lock")));
}

static json_t *op_get_value(struct call *c)
{
    mp_lock *l = lock_of(c, "lock");
    char kind[32];
    int r;

    lock_kind(l, kind, sizeof(kind));
    if (!has_get_value(kind))
        return raise_text(c, no_get_value(kind));
    r = mp_lock_get_value(l);
    return r < 0 ? failed(c, r) : json_integer(r);
}

static json_t *op_lock_repr(struct call *c)
{
    char buf[256];

    mp_lock_repr(lock_of(c, "lock"), buf, sizeof(buf));
    return repr_value(buf);
}

static json_t *op_condition(struct call *c)
{
    mp_lock *l = arg(c, "lock") != NULL ? lock_of(c, "lock") : NULL;
    mp_cond *cv;
    int r;

    if (!sync_context(c))
        return NULL;
    if ((r = mp_cond_new(&cv, l)) < 0)
        return failed(c, r);
    steps_new_obj(c->in, arg_str(c, "as"))->cv = cv;
    return json_null();
}

static json_t *op_cond_acquire(struct call *c)
{
    int r = mp_cond_acquire(cond_of(c), json_is_true(arg(c, "block")),
                            timeout_arg(c, MP_FOREVER));

    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_cond_release(struct call *c)
{
    return null_or_failed(c, mp_cond_release(cond_of(c)));
}

static json_t *op_cond_wait(struct call *c)
{
    int r = mp_cond_wait(cond_of(c), timeout_arg(c, MP_FOREVER));

    return r < 0 ? failed(c, r) : json_boolean(r);
}

/* cond_wait_for's predicate: a semaphore's get_value(), or a constant. */
struct predicate {
    mp_lock *sem;  /* NULL: the constant */
    int value;
    char kind[32]; /* the lock's class */
};

static int predicate(void *arg)
{
    struct predicate *p = arg;

    if (p->sem == NULL)
        return p->value;
    if (!has_get_value(p->kind)) /* CPython's lambda raises it */
        return mp_raise("AttributeError", "'%s' object has no attribute "
                        "'get_value'", p->kind);
    return mp_lock_get_value(p->sem);
}

static json_t *op_cond_wait_for(struct call *c)
{
    struct predicate p = {
        .sem = arg(c, "value_of") != NULL ? lock_of(c, "value_of") : NULL,
        .value = (int)json_integer_value(arg(c, "value")),
    };
    int r;

    if (p.sem != NULL)
        lock_kind(p.sem, p.kind, sizeof(p.kind));
    r = mp_cond_wait_for(cond_of(c), predicate, &p,
                         timeout_arg(c, MP_FOREVER));
    return r < 0 ? failed(c, r) : json_integer(r);
}

static json_t *op_cond_notify(struct call *c)
{
    json_int_t n = json_integer_value(arg(c, "n"));

    /* notify(n) wakes at most n: any n beyond a C int wakes them all, and
     * none below 1 wakes any */
    return null_or_failed(c, mp_cond_notify(cond_of(c), n > INT_MAX ? INT_MAX
                                            : n < 0 ? 0 : (int)n));
}

static json_t *op_cond_notify_all(struct call *c)
{
    return null_or_failed(c, mp_cond_notify_all(cond_of(c)));
}

static json_t *op_cond_repr(struct call *c)
{
    char buf[512];

    mp_cond_repr(cond_of(c), buf, sizeof(buf));
    return repr_value(buf);
}

static json_t *op_event_object(struct call *c)
{
    mp_event *ev;
    int r;

    if (!sync_context(c))
        return NULL;
    if ((r = mp_event_new(&ev)) < 0)
        return failed(c, r);
    steps_new_obj(c->in, arg_str(c, "as"))->ev = ev;
    return json_null();
}

static json_t *op_event_is_set(struct call *c)
{
    int r = mp_event_is_set(event_of(c));

    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_event_set(struct call *c)
{
    return null_or_failed(c, mp_event_set(event_of(c)));
}

static json_t *op_event_clear(struct call *c)
{
    return null_or_failed(c, mp_event_clear(event_of(c)));
}

static json_t *op_event_wait(struct call *c)
{
    int r = mp_event_wait(event_of(c), timeout_arg(c, MP_FOREVER));

    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_event_repr(struct call *c)
{
    char buf[256];

    mp_event_repr(event_of(c), buf, sizeof(buf));
    return repr_value(buf);
}

/* The barrier actions ops.json names: run by the last party to arrive, in
 * whichever process that is (every process of this program registers
 * them). */
MP_TARGET(harness_barrier_print_name)
{
    const char *name = mp_process_name(mp_current_process());

    put_text_line(stdout, name, strlen(name));
    return 0;
}

MP_TARGET(harness_barrier_raise)
{
    return mp_raise("ValueError", "barrier action failed");
}

static json_t *op_barrier(struct call *c)
{
    const char *action = arg_str(c, "action");
    const mp_target *t = action == NULL ? NULL
                         : strcmp(action, "print_name") == 0
                             ? &harness_barrier_print_name_target
                             : &harness_barrier_raise_target;
    mp_barrier *b;
    int r;

    if (!sync_context(c))
        return NULL;
    r = mp_barrier_new(&b, (int)json_integer_value(arg(c, "parties")), t,
                       timeout_arg(c, MP_FOREVER));
    if (r < 0)
        return failed(c, r);
    steps_new_obj(c->in, arg_str(c, "as"))->b = b;
    return json_null();
}

static json_t *op_barrier_wait(struct call *c)
{
    int r = mp_barrier_wait(barrier_of(c), timeout_arg(c, MP_BARRIER_DEFAULT));

    return r < 0 ? failed(c, r) : json_integer(r);
}

static json_t *op_barrier_reset(struct call *c)
{
    return null_or_failed(c, mp_barrier_reset(barrier_of(c)));
}

static json_t *op_barrier_abort(struct call *c)
{
    return null_or_failed(c, mp_barrier_abort(barrier_of(c)));
}

static json_t *op_barrier_parties(struct call *c)
{
    int r = mp_barrier_parties(barrier_of(c));

    return r < 0 ? failed(c, r) : json_integer(r);
}

static json_t *op_barrier_n_waiting(struct call *c)
{
    int r = mp_barrier_n_waiting(barrier_of(c));

    return r < 0 ? failed(c, r) : json_integer(r);
}

static json_t *op_barrier_broken(struct call *c)
{
    int r = mp_barrier_broken(barrier_of(c));

    return r < 0 ? failed(c, r) : json_boolean(r);
}

/* making a process behave */

static json_t *op_sleep(struct call *c)
{
    json_t *v = arg(c, "seconds");
    double s = json_number_value(v);

    /* time.sleep converts to nanoseconds in a 64-bit PyTime_t first; an
     * int and a float that do not fit are worded differently */
    if (json_is_integer(v) && (json_integer_value(v) > INT64_MAX / 1000000000 ||
                               json_integer_value(v) < INT64_MIN / 1000000000))
        return raise_text(c, strdup("OverflowError: timestamp too large to "
                                    "convert to C PyTime_t"));
    if (json_is_real(v) && !(fabs(ceil(s * 1e9)) < 9223372036854775808.0))
        return raise_text(c, strdup("OverflowError: timestamp out of range "
                                    "for platform time_t"));
    if (s < 0) /* time.sleep's own check */
        return raise_text(c, strdup("ValueError: sleep length must be "
                                    "non-negative"));
    steps_sleep_for(s);
    return json_null();
}

/* n bytes that may hold NULs, and a newline, to a stream in one write:
 * stderr is unbuffered in C and line-buffered in CPython, so a line made
 * of several writes could be split by another process's line where
 * CPython's never is. */
static void put_text_line(FILE *f, const char *text, size_t n)
{
    char *line = malloc(n + 1);

    if (line == NULL) {
        fwrite(text, 1, n, f);
        fputc('\n', f);
        return;
    }
    memcpy(line, text, n);
    line[n] = '\n';
    fwrite(line, 1, n + 1, f);
    free(line);
}

static void put_line(FILE *f, json_t *text)
{
    put_text_line(f, json_string_value(text), json_string_length(text));
}

static json_t *op_exit(struct call *c)
{
    json_t *code = arg(c, "code");

    if (json_is_string(code)) { /* sys.exit("msg") */
        put_line(stderr, code);
        do_exit(c->in, 1);
    }
    if (json_is_real(code) || json_is_array(code) || json_is_object(code)) {
        /* not an int: CPython prints str(code) and exits 1 */
        size_t len;
        char *text = pyrepr_str(code, &len);
        if (text == NULL)
            steps_harness_error(c->in, "out of memory");
        put_text_line(stderr, text, len);
        free(text);
        do_exit(c->in, 1);
    }
    do_exit(c->in, json_is_integer(code) ? (int)json_integer_value(code)
                                         : json_is_true(code));
}

/* An exception this step raises and nothing catches: the process ends as
 * CPython's does, exit code 1 after "Process <name>:" (a child) and the
 * exception's line.  The text may hold NULs. */
_Noreturn static void uncaught(struct interp *in, const char *exc,
                               json_t *msg)
{
    size_t mlen = msg != NULL ? json_string_length(msg) : 0;
    size_t elen = strlen(exc), n = elen + (mlen > 0 ? 2 + mlen : 0);
    char *line = malloc(n + 1);

    if (in->child)
        fprintf(stderr, "Process %s:\n", mp_process_name(
                                             mp_current_process()));
    if (line == NULL)
        steps_harness_error(in, "out of memory");
    memcpy(line, exc, elen);
    if (mlen > 0) {
        memcpy(line + elen, ": ", 2);
        memcpy(line + elen + 2, json_string_value(msg), mlen);
    }
    put_text_line(stderr, line, n);
    free(line);
    do_exit(in, 1);
}

/* os._exit(code): no teardown, no flush; a code that is no C int raises
 * before it exits, uncaught. */
static json_t *op_os_exit(struct call *c)
{
    json_t *code = arg(c, "code");

    if (int_overflows(code)) {
        json_t *msg = json_string("Python int too large to convert to C "
                                  "int");
        uncaught(c->in, "OverflowError", msg);
    }
    _exit((int)json_integer_value(code));
}

static json_t *op_raise(struct call *c)
{
    const char *exc = arg_str(c, "exception");
    json_t *msg = arg(c, "message");
    size_t mlen = msg != NULL ? json_string_length(msg) : 0;

    /* SystemExit(msg) is sys.exit(msg): the message alone on stderr, exit
     * code 1; SystemExit() exits 0 (a child: CPython 3.11 and later). */
    if (strcmp(exc, "SystemExit") == 0) {
        if (msg != NULL)
            put_line(stderr, msg);
        do_exit(c->in, msg != NULL);
    }
    /* CPython ends a main process that an uncaught KeyboardInterrupt ends
     * by SIGINT, after its teardown (sigint_exit). */
    if (!c->in->child && strcmp(exc, "KeyboardInterrupt") == 0)
        exit_by_sigint = true;
    if (!c->in->child ||
        (msg != NULL && memchr(json_string_value(msg), '\0', mlen) != NULL) ||
        mlen >= 500 || strlen(exc) >= 60)
        uncaught(c->in, exc, msg); /* beyond what mp_raise() keeps */
    c->in->raised = mp_raise(exc, "%s", msg != NULL ? json_string_value(msg)
                                                    : "");
    return failed(c, STOP_RAISED);
}

/* os.kill(os.getpid(), sig): nothing is flushed first, so a signal that
 * kills loses what stdio holds, as CPython's buffers are lost.  SIGINT at
 * Python's default handler raises KeyboardInterrupt in this step. */
static json_t *op_signal_self(struct call *c)
{
    int sig = signal_by_name(arg_str(c, "signal"));

    sigint_pending = 0;
    if (kill(getpid(), sig) < 0)
        return raise_text(c, oserror_text(errno));
    if (sigint_pending) {
        sigint_pending = 0;
        return raise_text(c, strdup("KeyboardInterrupt"));
    }
    return json_null();
}

/* CPython's signal.signal() refuses any thread but the main one. */
static json_t *not_main_thread(struct call *c)
{
    return raise_text(c, strdup("ValueError: signal only works in main "
                                "thread of the main interpreter"));
}

static json_t *set_signal(struct call *c, void (*handler)(int))
{
    int sig = signal_by_name(arg_str(c, "signal"));

    if (c->in->thread)
        return not_main_thread(c);
    if (signal(sig, handler) == SIG_ERR)
        return raise_text(c, oserror_text(errno));
    return json_null();
}

static json_t *op_ignore_signal(struct call *c)
{
    return set_signal(c, SIG_IGN);
}

static json_t *op_default_signal(struct call *c)
{
    return set_signal(c, SIG_DFL);
}

/* signal_handler: what a handler does, one per signal.  A handler reads
 * its action once, atomically; an action it may still be reading when a
 * step replaces it stays allocated (chained to its successor), so a step
 * never frees what a handler in another thread uses. */
enum { ACT_WRITE, ACT_EXIT, ACT_RETURN };

struct sig_action {
    int action;
    int fd;     /* ACT_WRITE: where */
    int code;   /* ACT_EXIT: the exit code */
    size_t len; /* ACT_WRITE: the text's length */
    struct sig_action *older;
    char text[];
};

static _Atomic(struct sig_action *) sig_actions[NSIG];

/* Only async-signal-safe calls: CPython's handler does the same work with
 * os.write() and os._exit(), which touch no buffer either. */
static void on_signal(int sig)
{
    struct sig_action *a = atomic_load(&sig_actions[sig]);
    int saved = errno;
    size_t done = 0;
    ssize_t n;

    if (a == NULL)
        return;
    if (a->action == ACT_EXIT)
        _exit(a->code);
    while (a->action == ACT_WRITE && done < a->len) {
        n = write(a->fd, a->text + done, a->len - done);
        if (n < 0 && errno != EINTR)
            break;
        done += n > 0 ? (size_t)n : 0;
    }
    errno = saved;
}

static json_t *op_signal_handler(struct call *c)
{
    static const char *const actions[] = { "write", "exit", "return" };
    int sig = signal_by_name(arg_str(c, "signal")), act = 0;
    const char *text = arg_str(c, "text");
    size_t len = strlen(text);
    struct sig_action *a = malloc(sizeof(*a) + len + 2);
    struct sigaction sa = { .sa_handler = on_signal };

    if (c->in->thread) {
        free(a);
        return not_main_thread(c);
    }
    if (a == NULL)
        return failed(c, -ENOMEM);
    while (strcmp(actions[act], arg_str(c, "action")) != 0)
        act++;
    a->action = act;
    a->fd = strcmp(arg_str(c, "stream"), "stderr") == 0 ? 2 : 1;
    a->code = (int)json_integer_value(arg(c, "code"));
    memcpy(a->text, text, len);
    a->text[len] = '\n';
    a->len = len + 1;
    a->older = sig >= 0 && sig < NSIG ? atomic_load(&sig_actions[sig]) : NULL;
    /* CPython's handlers restart what they interrupt (PEP 475) */
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sig <= 0 || sig >= NSIG || sigaction(sig, &sa, NULL) < 0) {
        free(a);
        return raise_text(c, oserror_text(sig <= 0 || sig >= NSIG ? EINVAL
                                                                  : errno));
    }
    atomic_store(&sig_actions[sig], a);
    return json_null();
}

static json_t *op_abort(struct call *c)
{
    (void)c;
    abort();
}

static json_t *op_print(struct call *c)
{
    FILE *f = strcmp(arg_str(c, "stream"), "stderr") == 0 ? stderr : stdout;

    put_line(f, arg(c, "text"));
    if (json_is_true(arg(c, "flush")))
        fflush(f);
    return json_null();
}

/* Its outcome is recorded before it runs (ops.json: "first"). */
static json_t *op_event(struct call *c)
{
    if (do_event(c->in, arg_str(c, "name"),
                 json_integer_value(arg(c, "count"))) < 0)
        steps_harness_error(c->in, "event: cannot signal the event's FIFO");
    return json_null();
}

static json_t *op_wait_event(struct call *c)
{
    do_wait_event(c->in, arg_str(c, "name"),
                  json_number_value(arg(c, "timeout")));
    return json_null();
}

static void *thread_main(void *arg)
{
    struct hthread *t = arg;

    /* Named before its first step, as CPython's Thread(name=...) is: a
     * lock's repr names the thread that holds it. */
    pthread_setname_np(pthread_self(), t->name);
    steps_run(&t->in, t->steps);
    join_threads(&t->in);
    for (size_t i = 0; i < t->in.nobj; i++)
        if (!t->in.objs[i].inherited)
            free_obj(&t->in.objs[i]);
    free(t->in.objs);
    t->in.objs = NULL;
    t->in.nobj = t->in.cap = 0;
    close(t->in.out_fd);
    return NULL;
}

static json_t *op_thread(struct call *c)
{
    struct interp *in = c->in;
    const char *as = arg_str(c, "as");
    struct hthread *t = calloc(1, sizeof(*t));
    char file[4096];
    json_t *e;
    size_t k;
    int r;

    if (t == NULL)
        return failed(c, -ENOMEM);
    t->steps = arg(c, "target");
    snprintf(t->name, sizeof(t->name), "%s", as);
    t->in.dir = in->dir;
    t->in.child = t->in.thread = true;
    if (snprintf(t->in.path, sizeof(t->in.path), "%s%s%s",
                 in->child ? in->path : "", in->child ? "." : "", as) >=
        (int)sizeof(t->in.path))
        steps_harness_error(in, "threads nested too deep");
    json_array_foreach(arg(c, "pass"), k, e) {
        struct obj *o = steps_find_obj(in, json_string_value(e));
        if (o == NULL)
            steps_harness_error(in, "unknown object (the case validator missed "
                                "it)");
        struct obj *d = steps_new_obj(&t->in, o->name);
        *d = *o;
        d->inherited = true;
    }
    /* outcomes only: a thread has no pid of its own to leave behind */
    snprintf(file, sizeof(file), "%s/out/%s.jsonl", in->dir, t->in.path);
    t->in.out_fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                        0644);
    if (t->in.out_fd < 0)
        steps_harness_error(in, "thread: cannot write its outcomes");
    if ((r = pthread_create(&t->id, NULL, thread_main, t)) != 0) {
        close(t->in.out_fd);
        free(t->in.objs);
        free(t);
        return failed(c, -r);
    }
    steps_new_obj(in, as)->t = t;
    return json_null();
}

static json_t *op_thread_join(struct call *c)
{
    struct obj *o = steps_find_obj(c->in, arg_str(c, "thread"));

    if (o == NULL || o->t == NULL)
        steps_harness_error(c->in, "not a thread (the case validator missed "
                            "it)");
    if (!o->t->joined) { /* joining a joined thread returns at once */
        pthread_join(o->t->id, NULL);
        o->t->joined = true;
    }
    return json_null();
}

/* The threads a step list started and did not join; each thread joins its
 * own, so a thread passed to another is joined by its starter only. */
static void join_threads(struct interp *in)
{
    for (size_t i = 0; i < in->nobj; i++)
        if (in->objs[i].t != NULL && !in->objs[i].inherited &&
            !in->objs[i].t->joined) {
            pthread_join(in->objs[i].t->id, NULL);
            in->objs[i].t->joined = true;
        }
}

/* The handlers, one per op of ops.json with steps_pool_handlers and
 * steps_shared_handlers (scripts/test-vocab checks it). */
static const struct step_handler handlers[] = {
    OP(process), OP(start), OP(join), OP(is_alive), OP(exitcode), OP(pid),
    OP(pid_is), OP(name), OP(set_name), OP(daemon), OP(set_daemon),
    OP(sentinel), OP(wait_sentinel), OP(terminate), OP(kill), OP(close),
    OP(repr), OP(is_none), OP(active_children), OP(cpu_count),
    OP(get_start_method), OP(set_start_method), OP(set_global),
    OP(get_global), OP(register_atexit),
    OP(pipe), OP(send_bytes), OP(recv_bytes), OP(recv_bytes_into), OP(poll),
    OP(conn_close), OP(conn_state), OP(wait),
    OP(queue), OP(put), OP(put_nowait), OP(get), OP(get_nowait), OP(qsize),
    OP(empty), OP(full), OP(queue_close), OP(join_thread),
    OP(cancel_join_thread), OP(task_done), OP(queue_join),
    OP(lock), OP(acquire), OP(release), OP(get_value), OP(lock_repr),
    OP(condition), OP(cond_acquire), OP(cond_release), OP(cond_wait),
    OP(cond_wait_for), OP(cond_notify), OP(cond_notify_all), OP(cond_repr),
    OP(event_object), OP(event_is_set), OP(event_set), OP(event_clear),
    OP(event_wait), OP(event_repr),
    OP(barrier), OP(barrier_wait), OP(barrier_reset), OP(barrier_abort),
    OP(barrier_parties), OP(barrier_n_waiting), OP(barrier_broken),
    OP(sleep), OP(exit), OP(os_exit), OP(raise), OP(signal_self),
    OP(ignore_signal), OP(default_signal), OP(signal_handler), OP(abort), OP(print), OP(event),
    OP(wait_event), OP(thread), OP(thread_join),
};

json_t *steps_handlers(void)
{
    json_t *names = json_array();

    for (size_t i = 0; i < sizeof(handlers) / sizeof(*handlers); i++)
        json_array_append_new(names, json_string(handlers[i].op));
    for (size_t i = 0; i < steps_pool_nhandlers; i++)
        json_array_append_new(names, json_string(steps_pool_handlers[i].op));
    for (size_t i = 0; i < steps_shared_nhandlers; i++)
        json_array_append_new(names,
                              json_string(steps_shared_handlers[i].op));
    return names;
}

static const struct step_handler *handler_for(const char *op)
{
    for (size_t i = 0; i < sizeof(handlers) / sizeof(*handlers); i++)
        if (strcmp(handlers[i].op, op) == 0)
            return &handlers[i];
    for (size_t i = 0; i < steps_pool_nhandlers; i++)
        if (strcmp(steps_pool_handlers[i].op, op) == 0)
            return &steps_pool_handlers[i];
    for (size_t i = 0; i < steps_shared_nhandlers; i++)
        if (strcmp(steps_shared_handlers[i].op, op) == 0)
            return &steps_shared_handlers[i];
    return NULL;
}

/* Runs one step; returns the outcome's value (new reference), or NULL with
 * c->err or c->raised set. */
static json_t *run_step(struct call *c)
{
    const struct step_handler *h = handler_for(c->vo->op);

    if (h == NULL)
        steps_harness_error(c->in, "an op the interpreter does not know");
    if (json_object_get(c->step, "proc") != NULL) {
        c->p = resolve(c->in, c->step, &c->o);
        if (c->p == NULL) { /* None: @parent in the main process */
            if (h->run == op_is_none)
                return json_true();
            if (h->run == op_repr)
                return json_string("None");
            if (asprintf(&c->raised, "AttributeError: 'NoneType' object has "
                         "no attribute '%s'", attribute_of(c->vo->op)) < 0)
                c->raised = NULL;
            return NULL;
        }
    }
    return h->run(c);
}

/* Runs a step list: 0 when done, STOP_RAISED after a `raise` step. */
static int steps_run(struct interp *in, json_t *steps)
{
    size_t i;
    json_t *step;

    json_array_foreach(steps, i, step) {
        const char *mode = json_string_value(json_object_get(step, "compare"));
        struct call c = {
            .in = in, .step = step,
            .vo = vocab_find(json_string_value(json_object_get(step, "op"))),
        };
        double t0 = now();
        json_t *value, *o;

        if (c.vo == NULL)
            steps_harness_error(in, "an op the vocabulary does not know");
        if (strcmp(c.vo->outcome, "first") == 0) {
            /* Recorded before the op acts: a process killed as soon as its
             * event is seen has still recorded the step (so does the
             * recorder).  Such an op cannot fail but as a harness error. */
            o = json_pack("{s:n, s:f}", "value", "t", 0.0);
            write_line(in, o);
            json_decref(o);
            json_decref(run_step(&c));
            continue;
        }
        value = run_step(&c);

        if (c.err == STOP_RAISED)
            return STOP_RAISED;
        if (value != NULL) {
            o = json_pack("{s:o}", "value", apply_compare(value, mode));
        } else {
            char *raised = c.raised != NULL ? c.raised : raises_text(c.err);
            if (raised != NULL) { /* addresses, pids: as output lines */
                char *norm = norm_line(raised);
                if (norm != NULL) {
                    free(raised);
                    raised = norm;
                }
            }
            o = json_pack("{s:s}", "raises", raised != NULL ? raised : "?");
            free(raised);
        }
        json_object_set_new(o, "t", json_real(now() - t0));
        write_line(in, o);
        json_decref(o);
    }
    return 0;
}

static int open_outputs(struct interp *in)
{
    char file[4096];
    int fd;

    snprintf(file, sizeof(file), "%s/out/%s.jsonl", in->dir, in->path);
    in->out_fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (in->out_fd < 0)
        return -errno;
    snprintf(file, sizeof(file), "%s/pids/%s", in->dir, in->path);
    fd = open(file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd >= 0) {
        dprintf(fd, "%ld\n", (long)getpid());
        close(fd);
    }
    return 0;
}

/* This process's daemon flag as its parent set it, when it is an int. */
static void read_daemon_int(struct interp *in)
{
    char file[4096];
    FILE *f;

    snprintf(file, sizeof(file), "%s/daemon/%s", in->dir, in->path);
    if ((f = fopen(file, "r")) == NULL)
        return;
    in->daemon_int = fscanf(f, "%" JSON_INTEGER_FORMAT,
                            &in->daemon_value) == 1;
    fclose(f);
}

/* A child: its steps arrive as JSON text, its first argument. */
MP_TARGET(harness_child)
{
    struct interp in = { .child = true };
    const char *text = NULL;
    json_t *a = mp_args_get_str(args, 0, &text) < 0 ? NULL
                : json_loads(text, JSON_ALLOW_NUL, NULL);
    json_t *passed;
    const char *name;
    json_t *ptr;
    int r;

    if (a == NULL)
        return mp_raise("RuntimeError", "harness: bad child argument");
    in.dir = json_string_value(json_object_get(a, "dir"));
    snprintf(in.path, sizeof(in.path), "%s",
             json_string_value(json_object_get(a, "path")));
    if (open_outputs(&in) < 0)
        return mp_raise("RuntimeError", "harness: cannot open outputs");
    python_sigint();
    read_daemon_int(&in);
    passed = json_object_get(a, "pass");
    json_object_foreach(passed, name, ptr) {
        void *pp = NULL;
        json_t *ci = json_object_get(ptr, "conn");
        json_t *qi = json_object_get(ptr, "queue");
        json_t *ai = json_object_get(ptr, "arg");
        struct obj *o = steps_new_obj(&in, name);
        o->inherited = true;
        if (ai != NULL) { /* the typed arguments own it */
            size_t at = (size_t)json_integer_value(ai);
            int type = mp_args_type(args, at);
            if ((type == MP_ARG_LOCK && mp_args_get_lock(args, at, &o->l) < 0)
                || (type == MP_ARG_COND &&
                    mp_args_get_cond(args, at, &o->cv) < 0) ||
                (type == MP_ARG_EVENT &&
                 mp_args_get_event(args, at, &o->ev) < 0) ||
                (type == MP_ARG_BARRIER &&
                 mp_args_get_barrier(args, at, &o->b) < 0) ||
                (type == MP_ARG_VALUE &&
                 mp_args_get_value(args, at, &o->val) < 0) ||
                sync_arg(o).type == 0)
                steps_harness_error(&in, "a passed object did not arrive");
            o->val_array = json_is_true(json_object_get(ptr, "array"));
        } else if (json_object_get(ptr, "shm") != NULL) {
            /* attached by name, as CPython unpickles it: this process's */
            o->inherited = false;
            if (mp_shm_new(&o->shm, json_string_value(json_object_get(
                               ptr, "shm")), 0, 0) < 0)
                steps_harness_error(&in, "a passed SharedMemory did not "
                                    "attach");
        } else if (json_object_get(ptr, "shm_ptr") != NULL) {
            sscanf(json_string_value(json_object_get(ptr, "shm_ptr")), "%p",
                   &pp);
            o->shm = pp;
        } else if (ci != NULL) {
            o->c = mp_child_conn((size_t)json_integer_value(ci));
        } else if (qi != NULL) {
            o->q = mp_child_queue((size_t)json_integer_value(qi));
        } else {
            sscanf(json_string_value(json_object_get(ptr, "ptr")), "%p", &pp);
            o->p = pp;
        }
    }
    r = steps_run(&in, json_object_get(a, "steps"));
    join_threads(&in); /* as _bootstrap's threading._shutdown() */
    /* A spawned child ends with exit(): leave nothing unreachable behind
     * (leak checkers look), the objects it made included. */
    for (size_t i = 0; i < in.nobj; i++)
        if (!in.objs[i].inherited)
            free_obj(&in.objs[i]);
    free(in.objs);
    close(in.out_fd);
    json_decref(a);
    return r == STOP_RAISED ? in.raised : 0;
}

void steps_main(const char *file, const char *method, const char *dir)
{
    static struct interp in;

    atexit(sigint_exit); /* first: runs after libmp's teardown */
    python_sigint();
    in.dir = dir;
    snprintf(in.path, sizeof(in.path), "main");
    if (open_outputs(&in) < 0) {
        fprintf(stderr, "mp-harness: %s: cannot write outcomes\n", dir);
        _exit(125);
    }
    main_interp = &in;
    main_case = case_load(file);
    if (main_case->error != NULL)
        steps_harness_error(&in, main_case->error);
    if (mp_set_start_method(method, 1) < 0)
        steps_harness_error(&in, "libmp has no such start method");
    if (steps_run(&in, main_case->steps) == STOP_RAISED)
        steps_harness_error(&in, "raise escaped the main process");
    join_threads(&in); /* the interpreter's threading._shutdown() */
    main_cleanup();
    exit(0);
}
