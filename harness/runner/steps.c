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
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mp.h"
#include "runner.h"

#define MAX_OBJECTS 128
#define STOP_RAISED INT_MIN /* steps_run: a `raise` step ends the process */

struct obj {
    char name[64];
    mp_process *p;   /* a process, */
    mp_conn *c;      /* or a connection, */
    mp_queue *q;     /* or a queue */
    bool inherited;  /* handed over by the parent: not ours to free */
    bool daemon_int; /* set_daemon was given an int: report it as one */
};

struct interp {
    const char *dir;
    char path[256]; /* "main", "p", "p.q" */
    bool child;
    int out_fd;
    struct obj objs[MAX_OBJECTS];
    size_t nobj;
    int raised; /* the MP_ERAISED code a `raise` step made */
};

static struct interp *main_interp;
static json_int_t global_value; /* set_global/get_global */

/* register_atexit: prints its text, as atexit.register(print, text). */
static void print_text(void *text)
{
    printf("%s\n", (char *)text);
    fflush(stdout);
    free(text);
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

/* Frees what the main process holds, so leak checkers see a clean exit; the
 * children still running stay in libmp's registry and are joined at exit. */
static void main_cleanup(void)
{
    if (main_interp == NULL)
        return;
    for (size_t i = 0; i < main_interp->nobj; i++) {
        mp_process_free(main_interp->objs[i].p);
        mp_conn_free(main_interp->objs[i].c);
        mp_queue_free(main_interp->objs[i].q);
    }
    close(main_interp->out_fd);
    main_interp = NULL;
    case_free(main_case);
    main_case = NULL;
}

_Noreturn static void harness_error(struct interp *in, const char *msg)
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

/* Ends the process as sys.exit(code) would. */
_Noreturn static void do_exit(struct interp *in, int code)
{
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

static struct obj *find_obj(struct interp *in, const char *name)
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
    found = find_obj(in, name);
    if (found == NULL)
        harness_error(in, "unknown object (the case validator missed it)");
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

static void sleep_for(double seconds)
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
        harness_error(in, "out of memory");
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
        harness_error(in, "wait_event: cannot open the event's FIFO");
    for (;;) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        double left = end - now();
        if (read(fd, &c, 1) == 1)
            break;
        if (left <= 0) {
            snprintf(msg, sizeof(msg), "wait_event \"%s\" timed out after "
                     "%gs", name, timeout);
            harness_error(in, msg);
        }
        poll(&pfd, 1, (int)ceil(left * 1000));
    }
    close(fd);
}

static int steps_run(struct interp *in, json_t *steps);

/* The argument a child gets: its path, the run's directory, its steps and
 * the objects passed to it (pointers: the fork start method shares memory). */
static char *child_arg(struct interp *in, json_t *step, const char *as)
{
    json_t *a = json_object(), *passed = json_object(), *e;
    char path[256], ptr[32], *text;
    size_t i;

    if (snprintf(path, sizeof(path), "%s%s%s", in->child ? in->path : "",
                 in->child ? "." : "", as) >= (int)sizeof(path))
        harness_error(in, "processes nested too deep");
    size_t nconn = 0, nqueue = 0;
    json_array_foreach(json_object_get(step, "pass"), i, e) {
        struct obj *o = find_obj(in, json_string_value(e));
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

/* The steps on a connection. */
static json_t *conn_step(struct interp *in, json_t *step, const char *op,
                         int *err, char **raised_text)
{
    const char *name = json_string_value(json_object_get(step, "conn"));
    struct obj *o = find_obj(in, name);
    mp_conn *c;
    int r;

    if (o == NULL || o->c == NULL)
        harness_error(in, "not a connection (the case validator missed it)");
    c = o->c;
    if (strcmp(op, "send_bytes") == 0) {
        json_t *d = json_object_get(step, "data"); /* may hold NULs */
        r = mp_conn_send_bytes(c, json_string_value(d), json_string_length(d));
        return r < 0 ? (*err = r, NULL) : json_null();
    }
    if (strcmp(op, "recv_bytes") == 0) {
        json_t *m = json_object_get(step, "maxlength");
        void *buf;
        size_t len;
        char *text;
        json_t *v;
        /* CPython checks closed, then readable, then the argument. */
        if (m != NULL && json_integer_value(m) < 0 && !mp_conn_closed(c) &&
            mp_conn_readable(c)) {
            *raised_text = strdup("ValueError: negative maxlength");
            return NULL;
        }
        r = mp_conn_recv_bytes(c, &buf, &len, m != NULL ?
                               (size_t)json_integer_value(m) : MP_NOLIMIT);
        if (r < 0)
            return *err = r, NULL;
        size_t tlen;
        text = utf8_text(buf, len, &tlen);
        v = json_stringn(text, tlen);
        free(text);
        free(buf);
        return v;
    }
    if (strcmp(op, "recv_bytes_into") == 0) {
        json_int_t size = json_integer_value(json_object_get(step, "size"));
        size_t len = 0;
        char *buf;
        if (size < 0) { /* bytearray(size) fails first */
            *raised_text = strdup("ValueError: negative count");
            return NULL;
        }
        void *whole = NULL;
        buf = malloc(size > 0 ? (size_t)size : 1);
        r = buf == NULL ? -ENOMEM
                        : mp_conn_recv_bytes_into_ex(c, buf, size > 0 ?
                                                     (size_t)size : 0, &len,
                                                     &whole);
        free(buf);
        if (r == MP_ETOOSHORT) { /* str(e) is repr(e.args[0]) */
            char *repr = bytes_repr(whole, len);
            free(whole);
            if (repr == NULL ||
                asprintf(raised_text, "%s: %s", mp_exception_name(r),
                         repr) < 0) {
                *raised_text = NULL;
                *err = -ENOMEM;
            }
            free(repr);
            return NULL;
        }
        return r < 0 ? (*err = r, NULL) : json_integer((json_int_t)len);
    }
    if (strcmp(op, "poll") == 0) {
        json_t *t = json_object_get(step, "timeout");
        r = mp_conn_poll(c, t == NULL ? 0 : json_is_null(t) ? MP_FOREVER
                                                           : json_number_value(t));
        return r < 0 ? (*err = r, NULL) : json_boolean(r);
    }
    if (strcmp(op, "conn_close") == 0) {
        r = mp_conn_close(c);
        return r < 0 ? (*err = r, NULL) : json_null();
    }
    if (strcmp(op, "conn_state") == 0)
        return json_pack("[b, b, b]", mp_conn_closed(c), mp_conn_readable(c),
                         mp_conn_writable(c));
    (void)raised_text;
    harness_error(in, "an op on a connection the interpreter does not know");
}

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

/* The steps on a queue.  A closed queue's errors carry its repr, as
 * CPython's do ("Queue <multiprocessing.queues.Queue object at 0x...> is
 * closed"): libmp gives the repr, the message is put together here. */
static json_t *queue_step(struct interp *in, json_t *step, const char *op,
                          int *err, char **raised_text)
{
    struct obj *o = find_obj(in, json_string_value(json_object_get(step,
                                                                   "queue")));
    json_t *blk = json_object_get(step, "block");
    json_t *tmo = json_object_get(step, "timeout");
    int block = blk == NULL || json_is_true(blk);
    double timeout = tmo == NULL || json_is_null(tmo) ? MP_FOREVER
                                                      : json_number_value(tmo);
    char repr[128], kind[32];
    const char *missing;
    mp_queue *q;
    int r;

    if (o == NULL || o->q == NULL)
        harness_error(in, "not a queue (the case validator missed it)");
    q = o->q;
    mp_queue_repr(q, repr, sizeof(repr));
    sscanf(repr, "<multiprocessing.queues.%31[A-Za-z]", kind);
    if ((missing = missing_method(kind, op)) != NULL) {
        if (asprintf(raised_text, "AttributeError: '%s' object has no "
                     "attribute '%s'", kind, strcmp(missing, "queue_join") == 0
                     ? "join" : missing) < 0)
            *raised_text = NULL;
        return NULL;
    }
    if (strcmp(op, "put") == 0 || strcmp(op, "put_nowait") == 0) {
        json_t *d = json_object_get(step, "data");
        json_t *rep = json_object_get(step, "repeat");
        size_t n = json_string_length(d), times = rep == NULL ? 1
                   : (size_t)json_integer_value(rep);
        char *buf = malloc(n * times + 1);
        if (buf == NULL)
            return *err = -ENOMEM, NULL;
        for (size_t i = 0; i < times; i++)
            memcpy(buf + i * n, json_string_value(d), n);
        r = strcmp(op, "put_nowait") == 0 ? mp_queue_put_nowait(q, buf, n * times)
            : mp_queue_put(q, buf, n * times, block, timeout);
        free(buf);
        if (r == 0)
            return json_null();
    } else if (strcmp(op, "get") == 0 || strcmp(op, "get_nowait") == 0) {
        void *buf;
        size_t len, tlen;
        char *text;
        json_t *v;
        r = strcmp(op, "get_nowait") == 0 ? mp_queue_get_nowait(q, &buf, &len)
            : mp_queue_get(q, &buf, &len, block, timeout);
        if (r == 0) {
            if (json_is_true(json_object_get(step, "length_only"))) {
                free(buf);
                return json_integer((json_int_t)len);
            }
            text = utf8_text(buf, len, &tlen);
            v = json_stringn(text, tlen);
            free(text);
            free(buf);
            return v;
        }
    } else if (strcmp(op, "qsize") == 0) {
        if ((r = mp_queue_qsize(q)) >= 0)
            return json_integer(r);
    } else if (strcmp(op, "empty") == 0 || strcmp(op, "full") == 0) {
        r = op[0] == 'e' ? mp_queue_empty(q) : mp_queue_full(q);
        if (r >= 0)
            return json_boolean(r);
    } else {
        r = strcmp(op, "queue_close") == 0          ? mp_queue_close(q)
            : strcmp(op, "join_thread") == 0        ? mp_queue_join_thread(q)
            : strcmp(op, "cancel_join_thread") == 0 ? mp_queue_cancel_join_thread(q)
            : strcmp(op, "task_done") == 0          ? mp_queue_task_done(q)
            : strcmp(op, "queue_join") == 0 ? mp_queue_join(q, MP_FOREVER)
                                                  : INT_MIN;
        if (r == INT_MIN)
            harness_error(in, "an op on a queue the interpreter does not know");
        if (r == 0)
            return json_null();
    }
    if (r == MP_EQCLOSED || r == MP_EQNOTCLOSED) {
        if (asprintf(raised_text, "%s: Queue %s %s", mp_exception_name(r),
                     repr, r == MP_EQCLOSED ? "is closed" : "not closed") < 0)
            *raised_text = NULL;
        return NULL;
    }
    *err = r;
    return NULL;
}

/* Runs one step; returns the outcome's value (new reference) or sets *err. */
static json_t *run_step(struct interp *in, json_t *step, int *err,
                        char **raised_text)
{
    const char *op = json_string_value(json_object_get(step, "op"));
    struct obj *o = NULL;
    mp_process *p = NULL;
    pid_t pid;
    int r, code;

    *err = 0;
    if (json_object_get(step, "proc") != NULL) {
        p = resolve(in, step, &o);
        if (p == NULL) {
            if (strcmp(op, "is_none") == 0)
                return json_true();
            if (strcmp(op, "repr") == 0)
                return json_string("None");
            if (asprintf(raised_text, "AttributeError: 'NoneType' object has "
                         "no attribute '%s'", attribute_of(op)) < 0)
                *raised_text = NULL;
            return NULL;
        }
    }

    if (strcmp(op, "process") == 0) {
        const char *as = json_string_value(json_object_get(step, "as"));
        json_t *name = json_object_get(step, "name");
        json_t *daemon = json_object_get(step, "daemon");
        mp_process_options opt = {
            .name = json_string_value(name),
            .daemon = daemon == NULL ? MP_DAEMON_INHERIT
                      : json_is_true(daemon) ? MP_DAEMON_YES : MP_DAEMON_NO,
        };
        char *arg = NULL;
        mp_process *np = NULL;

        if (in->nobj == MAX_OBJECTS)
            harness_error(in, "too many objects in one process");
        {
            size_t k;
            json_t *e;
            json_array_foreach(json_object_get(step, "pass"), k, e) {
                struct obj *po = find_obj(in, json_string_value(e));
                if (po != NULL && po->p != NULL &&
                    strcmp(mp_get_start_method(0), "fork") != 0)
                    harness_error(in, "libmp cannot hand a process object to "
                                  "a child that is not forked: arguments are "
                                  "bytes, and a process object is not "
                                  "(CPython pickles it)");
            }
        }
        const char *cname = json_string_value(json_object_get(step,
                                                              "context"));
        mp_context *cx = NULL;
        if (cname != NULL && (r = mp_get_context(&cx, cname)) < 0) {
            *err = r; /* ValueError: cannot find context for 'x' */
            return NULL;
        }
        if (json_object_get(step, "target") != NULL)
            arg = child_arg(in, step, as);
        if (cx != NULL)
            r = mp_context_process_new(cx, &np, arg != NULL ? "harness_child"
                                       : NULL, arg, arg != NULL ?
                                       strlen(arg) + 1 : 0, &opt);
        else
            r = mp_process_new(&np, arg != NULL ? "harness_child" : NULL, arg,
                               arg != NULL ? strlen(arg) + 1 : 0, &opt);
        free(arg);
        if (r < 0) {
            *err = r;
            return NULL;
        }
        {   /* connections reach the child under every start method */
            size_t k;
            json_t *e;
            json_array_foreach(json_object_get(step, "pass"), k, e) {
                struct obj *co = find_obj(in, json_string_value(e));
                if (co != NULL && (co->c != NULL || co->q != NULL) &&
                    (r = co->c != NULL ? mp_process_add_conn(np, co->c)
                                       : mp_process_add_queue(np, co->q)) < 0) {
                    mp_process_free(np);
                    *err = r;
                    return NULL;
                }
            }
        }
        memset(&in->objs[in->nobj], 0, sizeof(in->objs[0]));
        snprintf(in->objs[in->nobj].name, sizeof(in->objs[0].name), "%s", as);
        in->objs[in->nobj++].p = np;
        return json_null();
    }
    if (strcmp(op, "pipe") == 0) {
        json_t *ends = json_object_get(step, "ends");
        json_t *dup = json_object_get(step, "duplex");
        mp_conn *a, *b;
        if (in->nobj + 2 > MAX_OBJECTS)
            harness_error(in, "too many objects in one process");
        if ((r = mp_pipe(&a, &b, dup == NULL || json_is_true(dup))) < 0)
            return *err = r, NULL;
        for (int k = 0; k < 2; k++) {
            memset(&in->objs[in->nobj], 0, sizeof(in->objs[0]));
            snprintf(in->objs[in->nobj].name, sizeof(in->objs[0].name), "%s",
                     json_string_value(json_array_get(ends, (size_t)k)));
            in->objs[in->nobj++].c = k == 0 ? a : b;
        }
        return json_null();
    }
    if (strcmp(op, "queue") == 0) {
        const char *kind = json_string_value(json_object_get(step, "kind"));
        int maxsize = (int)json_integer_value(json_object_get(step,
                                                               "maxsize"));
        mp_queue *nq;
        if (in->nobj == MAX_OBJECTS)
            harness_error(in, "too many objects in one process");
        r = kind == NULL || strcmp(kind, "Queue") == 0
                ? mp_queue_new(&nq, maxsize)
            : strcmp(kind, "JoinableQueue") == 0
                ? mp_joinable_queue_new(&nq, maxsize)
                : mp_simple_queue_new(&nq);
        if (r < 0)
            return *err = r, NULL;
        memset(&in->objs[in->nobj], 0, sizeof(in->objs[0]));
        snprintf(in->objs[in->nobj].name, sizeof(in->objs[0].name), "%s",
                 json_string_value(json_object_get(step, "as")));
        in->objs[in->nobj++].q = nq;
        return json_null();
    }
    if (json_object_get(step, "conn") != NULL)
        return conn_step(in, step, op, err, raised_text);
    if (json_object_get(step, "queue") != NULL)
        return queue_step(in, step, op, err, raised_text);
    if (strcmp(op, "wait") == 0) {
        json_t *objs = json_object_get(step, "objects"), *e, *t, *names;
        size_t n = json_array_size(objs), k;
        int fds[MAX_OBJECTS], ready[MAX_OBJECTS];
        t = json_object_get(step, "timeout");
        json_array_foreach(objs, k, e) {
            const char *nm = json_string_value(e);
            struct obj *wo = nm[0] == '@' ? NULL : find_obj(in, nm);
            mp_process *wp = nm[0] == '@' ? (strcmp(nm, "@current") == 0
                                             ? mp_current_process()
                                             : mp_parent_process())
                                          : wo->p;
            r = wo != NULL && wo->c != NULL ? mp_conn_fileno(wo->c)
                                            : mp_process_sentinel(wp);
            if (r < 0)
                return *err = r, NULL;
            fds[k] = r;
        }
        r = mp_wait(fds, n, json_is_null(t) ? MP_FOREVER
                                            : json_number_value(t), ready);
        if (r < 0)
            return *err = r, NULL;
        names = json_array();
        json_array_foreach(objs, k, e)
            if (ready[k])
                json_array_append(names, e);
        return apply_compare(names, "set");
    }
    if (strcmp(op, "start") == 0)
        return (*err = mp_process_start(p)) < 0 ? NULL : json_null();
    if (strcmp(op, "join") == 0) {
        json_t *t = json_object_get(step, "timeout");
        r = mp_process_join(p, t != NULL ? json_number_value(t) : MP_FOREVER);
        if (r < 0 && r != MP_ETIMEDOUT) {
            *err = r;
            return NULL;
        }
        return json_null(); /* CPython's join returns None either way */
    }
    if (strcmp(op, "is_alive") == 0)
        return (*err = mp_process_is_alive(p)) < 0 ? NULL
                                                   : json_boolean(*err);
    if (strcmp(op, "exitcode") == 0) {
        r = mp_process_exitcode(p, &code);
        if (r < 0)
            return *err = r, NULL;
        *err = 0;
        return r == 1 ? json_integer(code) : json_null();
    }
    if (strcmp(op, "pid") == 0 || strcmp(op, "pid_is") == 0) {
        r = mp_process_pid(p, &pid);
        if (r < 0)
            return *err = r, NULL;
        if (strcmp(op, "pid") == 0)
            return json_string(r == 1 ? "int" : "NoneType");
        bool self = strcmp(json_string_value(json_object_get(step, "of")),
                           "self") == 0;
        return json_boolean(r == 1 && pid == (self ? getpid() : getppid()));
    }
    if (strcmp(op, "name") == 0)
        return json_string(mp_process_name(p));
    if (strcmp(op, "set_name") == 0) {
        const char *v = json_string_value(json_object_get(step, "value"));
        return (*err = mp_process_set_name(p, v)) < 0 ? NULL : json_null();
    }
    if (strcmp(op, "daemon") == 0) {
        int d = mp_process_daemon(p);
        return o != NULL && o->daemon_int ? json_integer(d)
                                          : json_boolean(d);
    }
    if (strcmp(op, "set_daemon") == 0) {
        json_t *v = json_object_get(step, "value");
        r = mp_process_set_daemon(p, json_is_integer(v)
                                         ? (int)json_integer_value(v)
                                         : json_is_true(v));
        if (r < 0)
            return *err = r, NULL;
        if (o != NULL)
            o->daemon_int = json_is_integer(v);
        return json_null();
    }
    if (strcmp(op, "sentinel") == 0)
        return (*err = mp_process_sentinel(p)) < 0 ? NULL : json_string("int");
    if (strcmp(op, "wait_sentinel") == 0) {
        int fd = mp_process_sentinel(p);
        double t = json_number_value(json_object_get(step, "timeout"));
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        double end = now() + t;
        if (fd < 0)
            return *err = fd, NULL;
        do
            r = poll(&pfd, 1, (int)ceil(fmax(0, end - now()) * 1000));
        while (r < 0 && errno == EINTR);
        return json_boolean(r == 1);
    }
    if (strcmp(op, "terminate") == 0)
        return (*err = mp_process_terminate(p)) < 0 ? NULL : json_null();
    if (strcmp(op, "kill") == 0)
        return (*err = mp_process_kill(p)) < 0 ? NULL : json_null();
    if (strcmp(op, "close") == 0)
        return (*err = mp_process_close(p)) < 0 ? NULL : json_null();
    if (strcmp(op, "repr") == 0) {
        char buf[1024], *norm;
        json_t *v;
        mp_process_repr(p, buf, sizeof(buf));
        norm = norm_line(buf);
        v = json_string(norm != NULL ? norm : "");
        free(norm);
        return v;
    }
    if (strcmp(op, "is_none") == 0)
        return json_false();
    if (strcmp(op, "active_children") == 0) {
        mp_process **list;
        size_t n;
        json_t *names;
        if ((r = mp_active_children(&list, &n)) < 0)
            return *err = r, NULL;
        names = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(names, json_string(mp_process_name(list[i])));
        mp_process_list_free(list, n);
        return apply_compare(names, "set");
    }
    if (strcmp(op, "cpu_count") == 0)
        return json_boolean(mp_cpu_count() == sysconf(_SC_NPROCESSORS_ONLN));
    if (strcmp(op, "sleep") == 0) {
        sleep_for(json_number_value(json_object_get(step, "seconds")));
        return json_null();
    }
    if (strcmp(op, "exit") == 0) {
        json_t *c = json_object_get(step, "code");
        if (json_is_string(c)) { /* sys.exit("msg") */
            fprintf(stderr, "%s\n", json_string_value(c));
            do_exit(in, 1);
        }
        do_exit(in, json_is_integer(c) ? (int)json_integer_value(c)
                                       : json_is_true(c));
    }
    if (strcmp(op, "os_exit") == 0) {
        _exit((int)json_integer_value(json_object_get(step, "code")));
    }
    if (strcmp(op, "raise") == 0) {
        const char *exc = json_string_value(json_object_get(step,
                                                            "exception"));
        const char *msg = json_string_value(json_object_get(step, "message"));
        if (!in->child) { /* uncaught in the main program */
            fprintf(stderr, "%s%s%s\n", exc, msg && *msg ? ": " : "",
                    msg ? msg : "");
            do_exit(in, 1);
        }
        in->raised = mp_raise(exc, "%s", msg != NULL ? msg : "");
        *err = STOP_RAISED;
        return NULL;
    }
    if (strcmp(op, "signal_self") == 0) {
        int sig = signal_by_name(json_string_value(json_object_get(step,
                                                                   "signal")));
        fflush(NULL);
        if (kill(getpid(), sig) < 0) {
            *raised_text = oserror_text(errno);
            return NULL;
        }
        return json_null();
    }
    if (strcmp(op, "ignore_signal") == 0 || strcmp(op, "default_signal") == 0) {
        int sig = signal_by_name(json_string_value(json_object_get(step,
                                                                   "signal")));
        if (signal(sig, op[0] == 'i' ? SIG_IGN : SIG_DFL) == SIG_ERR) {
            *raised_text = oserror_text(errno);
            return NULL;
        }
        return json_null();
    }
    if (strcmp(op, "abort") == 0) {
        abort();
    }
    if (strcmp(op, "print") == 0) {
        const char *stream = json_string_value(json_object_get(step,
                                                               "stream"));
        FILE *f = stream != NULL && strcmp(stream, "stderr") == 0 ? stderr
                                                                  : stdout;
        fprintf(f, "%s\n", json_string_value(json_object_get(step, "text")));
        if (json_is_true(json_object_get(step, "flush")))
            fflush(f);
        return json_null();
    }

    if (strcmp(op, "set_global") == 0) {
        global_value = json_integer_value(json_object_get(step, "value"));
        return json_null();
    }
    if (strcmp(op, "get_global") == 0)
        return json_integer(global_value);
    if (strcmp(op, "get_start_method") == 0) {
        const char *m = mp_get_start_method(json_is_true(
            json_object_get(step, "allow_none")));
        return m != NULL ? json_string(m) : json_null();
    }
    if (strcmp(op, "set_start_method") == 0) {
        r = mp_set_start_method(json_string_value(json_object_get(step,
                                "method")),
                                json_is_true(json_object_get(step, "force")));
        return r < 0 ? (*err = r, NULL) : json_null();
    }
    if (strcmp(op, "register_atexit") == 0) {
        char *text = strdup(json_string_value(json_object_get(step, "text")));
        if ((r = mp_atexit(print_text, text)) < 0) {
            free(text);
            return *err = r, NULL;
        }
        return json_null();
    }
    if (strcmp(op, "wait_event") == 0) {
        json_t *t = json_object_get(step, "timeout");
        do_wait_event(in, json_string_value(json_object_get(step, "name")),
                      t != NULL ? json_number_value(t) : 10.0);
        return json_null();
    }
    harness_error(in, "an op the interpreter does not know");
}

/* Runs a step list: 0 when done, STOP_RAISED after a `raise` step. */
static int steps_run(struct interp *in, json_t *steps)
{
    size_t i;
    json_t *step;

    json_array_foreach(steps, i, step) {
        const char *mode = json_string_value(json_object_get(step, "compare"));
        const char *op = json_string_value(json_object_get(step, "op"));
        char *raised = NULL;
        double t0 = now();
        int err = 0;
        json_t *value, *o;

        if (strcmp(op, "event") == 0) {
            /* Recorded before the signal goes out: a process killed as soon
             * as its event is seen has still recorded the step (so does the
             * recorder).  A signal that cannot be sent is a harness error. */
            json_t *n = json_object_get(step, "count");
            o = json_pack("{s:n, s:f}", "value", "t", 0.0);
            write_line(in, o);
            json_decref(o);
            if (do_event(in, json_string_value(json_object_get(step, "name")),
                         n != NULL ? json_integer_value(n) : 1) < 0)
                harness_error(in, "event: cannot signal the event's FIFO");
            continue;
        }
        value = run_step(in, step, &err, &raised);

        if (err == STOP_RAISED)
            return STOP_RAISED;
        if (value != NULL) {
            o = json_pack("{s:o}", "value", apply_compare(value, mode));
        } else {
            if (raised == NULL)
                raised = raises_text(err);
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

/* A child: its steps arrive as JSON text. */
MP_TARGET(harness_child)
{
    struct interp in = { .child = true };
    json_t *a = json_loadb(arg, len > 0 ? len - 1 : 0, JSON_ALLOW_NUL, NULL);
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
    passed = json_object_get(a, "pass");
    json_object_foreach(passed, name, ptr) {
        void *pp = NULL;
        json_t *ci = json_object_get(ptr, "conn");
        json_t *qi = json_object_get(ptr, "queue");
        memset(&in.objs[in.nobj], 0, sizeof(in.objs[0]));
        snprintf(in.objs[in.nobj].name, sizeof(in.objs[0].name), "%s", name);
        in.objs[in.nobj].inherited = true;
        if (ci != NULL) {
            in.objs[in.nobj++].c = mp_child_conn((size_t)json_integer_value(ci));
        } else if (qi != NULL) {
            in.objs[in.nobj++].q =
                mp_child_queue((size_t)json_integer_value(qi));
        } else {
            sscanf(json_string_value(json_object_get(ptr, "ptr")), "%p", &pp);
            in.objs[in.nobj++].p = pp;
        }
    }
    r = steps_run(&in, json_object_get(a, "steps"));
    /* A spawned child ends with exit(): leave nothing unreachable behind
     * (leak checkers look), the objects it made included. */
    for (size_t i = 0; i < in.nobj; i++)
        if (!in.objs[i].inherited) {
            mp_process_free(in.objs[i].p);
            mp_conn_free(in.objs[i].c);
            mp_queue_free(in.objs[i].q);
        }
    close(in.out_fd);
    json_decref(a);
    return r == STOP_RAISED ? in.raised : 0;
}

void steps_main(const char *file, const char *method, const char *dir)
{
    static struct interp in;

    in.dir = dir;
    snprintf(in.path, sizeof(in.path), "main");
    if (open_outputs(&in) < 0) {
        fprintf(stderr, "mp-harness: %s: cannot write outcomes\n", dir);
        _exit(125);
    }
    main_interp = &in;
    main_case = case_load(file);
    if (main_case->error != NULL)
        harness_error(&in, main_case->error);
    if (mp_set_start_method(method, 1) < 0)
        harness_error(&in, "libmp has no such start method");
    if (steps_run(&in, main_case->steps) == STOP_RAISED)
        harness_error(&in, "raise escaped the main process");
    main_cleanup();
    exit(0);
}
