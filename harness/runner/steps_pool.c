/*
 * steps_pool.c - the step interpreter's ops on pools (cases/README.md,
 * "Operations on pools"): Pool, its AsyncResults and imap iterators, over
 * libmp's mp_pool (CPython: multiprocessing/pool.py; the recorder's twin
 * is in scripts/record_reference.py).
 *
 * Tasks come from a small library both interpreters implement alike:
 * MP_TARGETs here, module-level functions there.  Each binds its
 * arguments as a Python function of that signature would, so a wrong count
 * or keyword fails with CPython's TypeError, in the worker.
 *
 * A task that reports its worker's pid is recorded as the pid's class: the
 * order in which this process first recorded it, so that runs compare.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mp.h"
#include "runner.h"

/* what a pool, a result and an iterator are to the steps */

struct hresult {
    mp_result *r;
    const char *func;        /* the task's name (the step's string) */
    bool is_map;             /* a map's value is the list of its values */
    pthread_mutex_t lock;    /* calls: the result thread appends */
    json_t *calls;           /* what the callbacks received, in order */
    struct hpool *pool;
    struct hresult *next;    /* in the pool's list of orphans */
};

/* A result freed while pending may still see its callbacks run (libmp
 * fails it when the pool ends): its record lives until the pool's does. */
struct hpool {
    mp_pool *p;
    pthread_mutex_t lock;
    struct hresult *orphans;
};

struct hiter {
    mp_imap *it;
    const char *func;
    bool generator; /* chunksize above 1: CPython's is a generator */
};

static void free_result(struct hresult *h)
{
    json_decref(h->calls);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void steps_pool_free_obj(struct obj *o)
{
    if (o->pool != NULL) {
        struct hpool *hp = o->pool;
        mp_pool_free(hp->p); /* pending results fail: callbacks are done */
        while (hp->orphans != NULL) {
            struct hresult *h = hp->orphans;
            hp->orphans = h->next;
            free_result(h);
        }
        pthread_mutex_destroy(&hp->lock);
        free(hp);
        o->pool = NULL;
    }
    if (o->res != NULL) {
        struct hresult *h = o->res;
        bool done = mp_result_ready(h->r) == 1;
        mp_result_free(h->r);
        if (done) {
            free_result(h);
        } else {
            pthread_mutex_lock(&h->pool->lock);
            h->next = h->pool->orphans;
            h->pool->orphans = h;
            pthread_mutex_unlock(&h->pool->lock);
        }
        o->res = NULL;
    }
    if (o->iter != NULL) {
        mp_imap_free(o->iter->it);
        free(o->iter);
        o->iter = NULL;
    }
}

/* the task library */

/*
 * Binds a task's arguments as Python binds f(p0, p1=default, ...):
 * positional ones first, then keywords by name.  idx[k] is the position
 * in args of parameter k, or -1 for its default.  The errors, and their
 * order (keywords, then too many, then missing), are CPython's.
 */
static int bind(const mp_args *args, const char *fname,
                const char *const *params, int nparams, int nrequired,
                int *idx)
{
    int given = 0, n = (int)mp_args_count(args);
    char names[256] = "";
    int missing = 0, k, i;

    for (k = 0; k < nparams; k++)
        idx[k] = -1;
    for (i = 0; i < n; i++) {
        const char *name = mp_args_name(args, (size_t)i);
        if (name == NULL) {
            if (given < nparams)
                idx[given] = i;
            given++;
            continue;
        }
        for (k = 0; k < nparams && strcmp(params[k], name) != 0; k++)
            ;
        if (k == nparams)
            return mp_raise("TypeError", "%s() got an unexpected keyword "
                            "argument '%s'", fname, name);
        if (idx[k] >= 0)
            return mp_raise("TypeError", "%s() got multiple values for "
                            "argument '%s'", fname, name);
        idx[k] = i;
    }
    if (given > nparams) {
        char takes[64];
        if (nrequired < nparams)
            snprintf(takes, sizeof(takes), "from %d to %d", nrequired,
                     nparams);
        else
            snprintf(takes, sizeof(takes), "%d", nparams);
        return mp_raise("TypeError", "%s() takes %s positional argument%s "
                        "but %d %s given", fname, takes,
                        nparams != 1 || nrequired < nparams ? "s" : "",
                        given, given == 1 ? "was" : "were");
    }
    for (k = 0; k < nrequired; k++)
        missing += idx[k] < 0;
    for (k = 0, i = 0; k < nrequired; k++) {
        size_t len = strlen(names);
        if (idx[k] >= 0)
            continue;
        i++;
        snprintf(names + len, sizeof(names) - len, "%s'%s'",
                 i == 1 ? "" : missing == 2 ? " and "
                 : i == missing ? ", and " : ", ", params[k]);
    }
    if (missing > 0)
        return mp_raise("TypeError", "%s() missing %d required positional "
                        "argument%s: %s", fname, missing,
                        missing == 1 ? "" : "s", names);
    return 0;
}

/* The cases give numbers only (ops.json): an int or a float. */
static bool is_int(const mp_args *args, int i)
{
    return mp_args_type(args, (size_t)i) == MP_ARG_INT;
}

static double num(const mp_args *args, int i)
{
    return is_int(args, i) ? (double)mp_args_int(args, (size_t)i)
                           : mp_args_double(args, (size_t)i);
}

static mp_arg same(const mp_args *args, int i)
{
    return is_int(args, i) ? mp_arg_int(mp_args_int(args, (size_t)i))
                           : mp_arg_double(mp_args_double(args, (size_t)i));
}

#define BIND(fname, nreq, ...)                                                \
    static const char *const params[] = { __VA_ARGS__ };                      \
    int idx[sizeof(params) / sizeof(*params)];                                \
    int r = bind(args, fname, params, sizeof(params) / sizeof(*params),      \
                 nreq, idx);                                                  \
    if (r < 0)                                                                \
        return r

MP_TARGET(harness_task_square)
{
    BIND("square", 1, "x");
    if (is_int(args, idx[0])) {
        long long x = mp_args_int(args, (size_t)idx[0]);
        return mp_task_return(mp_arg_int(x * x)); /* |x| <= 2**31 */
    }
    return mp_task_return(mp_arg_double(num(args, idx[0]) *
                                        num(args, idx[0])));
}

MP_TARGET(harness_task_add)
{
    BIND("add", 2, "a", "b");
    if (is_int(args, idx[0]) && is_int(args, idx[1]))
        return mp_task_return(mp_arg_int(mp_args_int(args, (size_t)idx[0]) +
                                         mp_args_int(args, (size_t)idx[1])));
    return mp_task_return(mp_arg_double(num(args, idx[0]) +
                                        num(args, idx[1])));
}

MP_TARGET(harness_task_sleep_then_return)
{
    BIND("sleep_then_return", 1, "seconds", "value");
    if (num(args, idx[0]) < 0)
        return mp_raise("ValueError", "sleep length must be non-negative");
    steps_sleep_for(num(args, idx[0]));
    /* value=None: the seconds slept (a case's values are never None) */
    return mp_task_return(same(args, idx[idx[1] < 0 ? 0 : 1]));
}

MP_TARGET(harness_task_fail_on)
{
    BIND("fail_on", 1, "x", "k");
    double k = idx[1] < 0 ? 3 : num(args, idx[1]);
    if (num(args, idx[0]) == k) /* ints up to 2**31: exact as doubles */
        return mp_raise("ValueError", "bad %lld",
                        (long long)num(args, idx[0])); /* "%d" % x */
    return mp_task_return(same(args, idx[0]));
}

/* sys.exit(n) in the worker: an int is its exit code; a float goes to
 * stderr as str(n) and the code is 1, as CPython's _bootstrap does. */
MP_TARGET(harness_task_exit_with)
{
    BIND("exit_with", 1, "n");
    if (!is_int(args, idx[0])) {
        json_t *v = json_real(num(args, idx[0]));
        size_t n;
        char *text = pyrepr_str(v, &n);
        if (text != NULL) {
            fwrite(text, 1, n, stderr);
            fputc('\n', stderr);
        }
        free(text);
        json_decref(v);
        return 1;
    }
    long long n = mp_args_int(args, (size_t)idx[0]);
    if (n > 0)
        return (int)n;
    mp_exit((int)n); /* 0 and below: a target's return means otherwise */
}

MP_TARGET(harness_task_worker_name)
{
    BIND("worker_name", 0, "x");
    return mp_task_return(mp_arg_str(mp_process_name(mp_current_process())));
}

MP_TARGET(harness_task_worker_pid)
{
    BIND("worker_pid", 0, "x");
    return mp_task_return(mp_arg_int(getpid()));
}

MP_TARGET(harness_task_get_global)
{
    BIND("get_global", 0, "x");
    return mp_task_return(mp_arg_int(steps_global));
}

MP_TARGET(harness_init_global)
{
    BIND("init_global", 1, "value");
    steps_global = mp_args_int(args, (size_t)idx[0]);
    return 0;
}

static const struct {
    const char *name;
    const mp_target *t;
} tasks[] = {
    { "square", &harness_task_square_target },
    { "add", &harness_task_add_target },
    { "sleep_then_return", &harness_task_sleep_then_return_target },
    { "fail_on", &harness_task_fail_on_target },
    { "exit_with", &harness_task_exit_with_target },
    { "worker_name", &harness_task_worker_name_target },
    { "worker_pid", &harness_task_worker_pid_target },
    { "get_global", &harness_task_get_global_target },
};

static const mp_target *task(struct call *c)
{
    const char *name = arg_str(c, "func");

    for (size_t i = 0; i < sizeof(tasks) / sizeof(*tasks); i++)
        if (strcmp(tasks[i].name, name) == 0)
            return tasks[i].t;
    steps_harness_error(c->in, "a task the interpreter does not know");
}

/* values */

/* A task's number argument (ops.json: numbers only). */
static mp_arg number_arg(json_t *v)
{
    return json_is_integer(v) ? mp_arg_int(json_integer_value(v))
                              : mp_arg_double(json_number_value(v));
}

/* A result value as JSON: None, int, float or str. */
static json_t *value_json(const mp_arg *a)
{
    if (a == NULL)
        return json_null();
    switch (a->type) {
    case MP_ARG_INT: return json_integer(a->u.i);
    case MP_ARG_DOUBLE: return json_real(a->u.d);
    case MP_ARG_STR: return json_string(a->u.s);
    default: return json_null();
    }
}

/* A successful result's value: a map's list, or the one value. */
static json_t *result_json(mp_result *r, bool is_map)
{
    json_t *list;

    if (!is_map)
        return value_json(mp_result_value(r, 0));
    list = json_array();
    for (size_t i = 0; i < mp_result_len(r); i++)
        json_array_append_new(list, value_json(mp_result_value(r, i)));
    return list;
}

static pthread_mutex_t pid_lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *pid_classes; /* {"pid": class} */

/* A worker_pid task's value (a list's items) made a class, in place. */
static json_t *classed(const char *func, json_t *v)
{
    size_t i;
    json_t *e, *cls;
    char key[32];

    if (strcmp(func, "worker_pid") != 0)
        return v;
    if (json_is_array(v)) {
        json_array_foreach(v, i, e)
            json_array_set_new(v, i, classed(func, json_incref(e)));
        return v;
    }
    if (!json_is_integer(v))
        return v;
    snprintf(key, sizeof(key), "%" JSON_INTEGER_FORMAT,
             json_integer_value(v));
    pthread_mutex_lock(&pid_lock);
    if (pid_classes == NULL)
        pid_classes = json_object();
    if ((cls = json_object_get(pid_classes, key)) == NULL) {
        cls = json_integer((json_int_t)json_object_size(pid_classes));
        json_object_set_new(pid_classes, key, cls);
    }
    json_decref(v);
    v = json_incref(cls);
    pthread_mutex_unlock(&pid_lock);
    return v;
}

/* An error as an exception's line ("ValueError: bad 3"); steps.c
 * normalises what a step raises. */
static char *raw_error_text(int err)
{
    char line[1024];

    mp_format_exception(err, line, sizeof(line));
    return strdup(line);
}

/* The same, normalised, for an error kept inside a value. */
static char *error_text(int err)
{
    char *raw = raw_error_text(err), *norm = raw != NULL ? norm_line(raw)
                                                         : NULL;

    if (norm == NULL)
        return raw;
    free(raw);
    return norm;
}

/* callbacks: they run in the pool's result thread */

static void on_callback(mp_result *r, void *arg)
{
    struct hresult *h = arg;
    json_t *v = result_json(r, h->is_map);

    pthread_mutex_lock(&h->lock);
    json_array_append_new(h->calls, json_pack("[s,o]", "callback", v));
    pthread_mutex_unlock(&h->lock);
}

static void on_error_callback(mp_result *r, int err, void *arg)
{
    struct hresult *h = arg;
    char *text = error_text(err);

    (void)r;
    pthread_mutex_lock(&h->lock);
    json_array_append_new(h->calls, json_pack("[s,s]", "error_callback",
                                              text != NULL ? text : "?"));
    pthread_mutex_unlock(&h->lock);
    free(text);
}

/* the objects a step names */

static struct obj *named(struct call *c, const char *key)
{
    struct obj *o = steps_find_obj(c->in, arg_str(c, key));

    if (o == NULL)
        steps_harness_error(c->in, "unknown object (the case validator "
                            "missed it)");
    return o;
}

static struct hpool *pool_of(struct call *c)
{
    struct obj *o = named(c, "pool");

    if (o->pool == NULL)
        steps_harness_error(c->in, "not a pool (the validator missed it)");
    return o->pool;
}

static struct hresult *result_of(struct call *c)
{
    struct obj *o = named(c, "result");

    if (o->res == NULL)
        steps_harness_error(c->in, "not a result (the validator missed it)");
    return o->res;
}

static struct hiter *iter_of(struct call *c)
{
    struct obj *o = named(c, "iterator");

    if (o->iter == NULL)
        steps_harness_error(c->in, "not an iterator (the validator missed "
                            "it)");
    return o->iter;
}

/* omitted or null: None */
static double timeout_of(struct call *c)
{
    json_t *t = arg(c, "timeout");

    return t == NULL || json_is_null(t) ? MP_FOREVER : json_number_value(t);
}

static long chunksize_of(struct call *c)
{
    json_t *v = arg(c, "chunksize");

    return v == NULL || json_is_null(v) ? MP_CHUNKSIZE_AUTO
                                        : (long)json_integer_value(v);
}

/* ops on pools */

static json_t *op_pool(struct call *c)
{
    json_t *procs = arg(c, "processes"), *mt = arg(c, "maxtasksperchild");
    json_t *ia = arg(c, "initargs"), *e;
    const char *cname = arg_str(c, "context");
    mp_pool_options opt = { 0 };
    mp_arg *initargs = NULL;
    struct hpool *hp = NULL;
    mp_pool *p = NULL;
    int processes = MP_POOL_CPUS, r;
    size_t i;

    if (procs != NULL && !json_is_null(procs)) /* at most 32 (ops.json) */
        processes = json_integer_value(procs) < 1
                        ? 0 : (int)json_integer_value(procs);
    /* C has no None: libmp's 0 is it, and any other value below 1 is
     * refused as CPython refuses 0 and below */
    if (mt != NULL && !json_is_null(mt))
        opt.maxtasksperchild = json_integer_value(mt) < 1
                                   ? -1 : (long)json_integer_value(mt);
    if (cname != NULL && (r = mp_get_context(&opt.context, cname)) < 0)
        return failed(c, r); /* ValueError: cannot find context for 'x' */
    if (arg_str(c, "initializer") != NULL) {
        opt.initializer = &harness_init_global_target;
        if ((initargs = calloc(json_array_size(ia) + 1,
                               sizeof(*initargs))) == NULL)
            return failed(c, -ENOMEM);
        json_array_foreach(ia, i, e)
            initargs[i] = number_arg(e);
        opt.initargs = initargs;
        opt.n_initargs = json_array_size(ia);
    }
    r = mp_pool_new(&p, processes, &opt);
    free(initargs);
    if (r < 0)
        return failed(c, r);
    if ((hp = calloc(1, sizeof(*hp))) == NULL) {
        mp_pool_free(p);
        return failed(c, -ENOMEM);
    }
    hp->p = p;
    pthread_mutex_init(&hp->lock, NULL);
    steps_new_obj(c->in, arg_str(c, "as"))->pool = hp;
    return json_null();
}

/* One call's arguments: `args` (numbers), then `kwds` by name; *n their
 * count.  NULL without memory. */
static mp_arg *call_args(struct call *c, size_t *n)
{
    json_t *a = arg(c, "args"), *k = arg(c, "kwds"), *e;
    mp_arg *out = calloc(json_array_size(a) + json_object_size(k) + 1,
                         sizeof(*out));
    const char *key;
    size_t i;

    *n = 0;
    if (out == NULL)
        return NULL;
    json_array_foreach(a, i, e)
        out[(*n)++] = number_arg(e);
    json_object_foreach(k, key, e)
        out[(*n)++] = mp_arg_named(key, number_arg(e));
    return out;
}

/* Each item of `items` as one call's only argument. */
static mp_arg *item_args(struct call *c, size_t *n)
{
    json_t *items = arg(c, "items"), *e;
    mp_arg *out = calloc(json_array_size(items) + 1, sizeof(*out));
    size_t i;

    *n = json_array_size(items);
    if (out != NULL)
        json_array_foreach(items, i, e)
            out[i] = number_arg(e);
    return out;
}

/* starmap's calls: each item a list of arguments, all in one array. */
static mp_call *star_calls(struct call *c, size_t *n, mp_arg **flat)
{
    json_t *items = arg(c, "items"), *e, *x;
    size_t total = 0, i, k, at = 0;
    mp_call *calls;

    json_array_foreach(items, i, e)
        total += json_array_size(e);
    *n = json_array_size(items);
    calls = calloc(*n + 1, sizeof(*calls));
    *flat = calloc(total + 1, sizeof(**flat));
    if (calls == NULL || *flat == NULL) {
        free(calls);
        free(*flat);
        *flat = NULL;
        return NULL;
    }
    json_array_foreach(items, i, e) {
        calls[i].args = *flat + at;
        calls[i].n = json_array_size(e);
        json_array_foreach(e, k, x)
            (*flat)[at++] = number_arg(x);
    }
    return calls;
}

static struct hresult *new_result(struct call *c, struct hpool *hp,
                                  bool is_map)
{
    struct hresult *h = calloc(1, sizeof(*h));

    if (h == NULL)
        return NULL;
    h->func = arg_str(c, "func");
    h->is_map = is_map;
    h->calls = json_array();
    h->pool = hp;
    pthread_mutex_init(&h->lock, NULL);
    return h;
}

enum submit { APPLY, MAP, STARMAP };

/* apply, map, starmap and their _async forms: `as` given, an async one */
static json_t *submit(struct call *c, enum submit how, bool async)
{
    struct hpool *hp = pool_of(c);
    const mp_target *t = task(c);
    mp_pool_callbacks cb = { 0 };
    struct hresult *h = NULL;
    mp_result *res = NULL;
    mp_call *calls = NULL;
    mp_arg *args = NULL;
    size_t n = 0;
    json_t *v;
    int r;

    if (how == STARMAP)
        calls = star_calls(c, &n, &args);
    else
        args = how == APPLY ? call_args(c, &n) : item_args(c, &n);
    if (args == NULL || (async && (h = new_result(c, hp, how != APPLY)) ==
                         NULL)) {
        free(args);
        free(calls);
        return failed(c, -ENOMEM);
    }
    if (async) {
        cb.callback = json_is_true(arg(c, "callback")) ? on_callback : NULL;
        cb.error_callback = json_is_true(arg(c, "error_callback"))
                                ? on_error_callback : NULL;
        cb.arg = h;
    }
    if (how == APPLY)
        r = async ? mp_pool_apply_async(hp->p, t, args, n, &cb, &res)
                  : mp_pool_apply(hp->p, t, args, n, &res);
    else if (how == MAP)
        r = async ? mp_pool_map_async(hp->p, t, args, n, chunksize_of(c),
                                      &cb, &res)
                  : mp_pool_map(hp->p, t, args, n, chunksize_of(c), &res);
    else
        r = async ? mp_pool_starmap_async(hp->p, t, calls, n,
                                          chunksize_of(c), &cb, &res)
                  : mp_pool_starmap(hp->p, t, calls, n, chunksize_of(c),
                                    &res);
    free(args);
    free(calls);
    if (async) {
        if (r < 0) {
            free_result(h);
            return failed(c, r);
        }
        h->r = res;
        steps_new_obj(c->in, arg_str(c, "as"))->res = h;
        return json_null();
    }
    /* the task's exception is this thread's until the next call */
    v = r < 0 ? raise_text(c, raw_error_text(r))
              : classed(arg_str(c, "func"), result_json(res, how != APPLY));
    mp_result_free(res);
    return v;
}

static json_t *op_apply(struct call *c) { return submit(c, APPLY, false); }
static json_t *op_apply_async(struct call *c) { return submit(c, APPLY, true); }
static json_t *op_map(struct call *c) { return submit(c, MAP, false); }
static json_t *op_map_async(struct call *c) { return submit(c, MAP, true); }
static json_t *op_starmap(struct call *c) { return submit(c, STARMAP, false); }

static json_t *op_starmap_async(struct call *c)
{
    return submit(c, STARMAP, true);
}

static json_t *imap(struct call *c, bool unordered)
{
    struct hpool *hp = pool_of(c);
    const mp_target *t = task(c);
    long chunksize = (long)json_integer_value(arg(c, "chunksize"));
    struct hiter *hi = calloc(1, sizeof(*hi));
    size_t n;
    mp_arg *items = item_args(c, &n);
    int r;

    if (hi == NULL || items == NULL) {
        free(hi);
        free(items);
        return failed(c, -ENOMEM);
    }
    r = unordered ? mp_pool_imap_unordered(hp->p, t, items, n, chunksize,
                                           &hi->it)
                  : mp_pool_imap(hp->p, t, items, n, chunksize, &hi->it);
    free(items);
    if (r < 0) {
        free(hi);
        return failed(c, r);
    }
    hi->func = arg_str(c, "func");
    hi->generator = chunksize > 1;
    steps_new_obj(c->in, arg_str(c, "as"))->iter = hi;
    return json_null();
}

static json_t *op_imap(struct call *c) { return imap(c, false); }
static json_t *op_imap_unordered(struct call *c) { return imap(c, true); }

static json_t *op_pool_close(struct call *c)
{
    return null_or_failed(c, mp_pool_close(pool_of(c)->p));
}

static json_t *op_pool_terminate(struct call *c)
{
    return null_or_failed(c, mp_pool_terminate(pool_of(c)->p));
}

static json_t *op_pool_join(struct call *c)
{
    return null_or_failed(c, mp_pool_join(pool_of(c)->p));
}

/* The end of `with Pool() as pool:`: CPython's __exit__ terminates.  The
 * object stays, as CPython's does after the block (MP_POOL_SCOPED would
 * free it, and later steps may use it). */
static json_t *op_pool_exit(struct call *c)
{
    return null_or_failed(c, mp_pool_terminate(pool_of(c)->p));
}

static json_t *op_pool_repr(struct call *c)
{
    char buf[256];
    int r = mp_pool_repr(pool_of(c)->p, buf, sizeof(buf));

    return r < 0 ? failed(c, r) : json_string(buf);
}

/* ops on results */

static json_t *op_result_get(struct call *c)
{
    struct hresult *h = result_of(c);
    int r = mp_result_get(h->r, timeout_of(c));

    return r < 0 ? failed(c, r) : classed(h->func, result_json(h->r,
                                                               h->is_map));
}

static json_t *op_result_wait(struct call *c)
{
    int r = mp_result_wait(result_of(c)->r, timeout_of(c));

    return null_or_failed(c, r);
}

static json_t *op_result_ready(struct call *c)
{
    int r = mp_result_ready(result_of(c)->r);

    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_result_successful(struct call *c)
{
    int r = mp_result_successful(result_of(c)->r);

    return r < 0 ? failed(c, r) : json_boolean(r);
}

static json_t *op_result_callbacks(struct call *c)
{
    struct hresult *h = result_of(c);
    json_t *out, *e;
    size_t i;

    pthread_mutex_lock(&h->lock);
    out = json_deep_copy(h->calls);
    pthread_mutex_unlock(&h->lock);
    json_array_foreach(out, i, e)
        if (strcmp(json_string_value(json_array_get(e, 0)), "callback") == 0)
            json_array_set_new(e, 1, classed(h->func, json_incref(
                                                 json_array_get(e, 1))));
    return out;
}

static json_t *op_imap_next(struct call *c)
{
    struct hiter *hi = iter_of(c);
    double timeout = MP_FOREVER;
    const mp_arg *v = NULL;
    int r;

    if (json_object_get(c->step, "timeout") != NULL) {
        /* it.next(timeout): a generator has no such method */
        if (hi->generator)
            return raise_text(c, strdup("AttributeError: 'generator' object "
                                        "has no attribute 'next'"));
        timeout = timeout_of(c);
    }
    r = mp_imap_next(hi->it, timeout, &v);
    if (r == 0)
        return raise_text(c, strdup("StopIteration"));
    return r < 0 ? failed(c, r) : classed(hi->func, value_json(v));
}

static json_t *op_imap_drain(struct call *c)
{
    struct hiter *hi = iter_of(c);
    json_t *out = json_array();
    const mp_arg *v;
    int r;

    while ((r = mp_imap_next(hi->it, MP_FOREVER, &v)) != 0) {
        if (r > 0) {
            json_array_append_new(out, json_pack("{s:o}", "value",
                                                 classed(hi->func,
                                                         value_json(v))));
        } else {
            char *text = error_text(r);
            json_array_append_new(out, json_pack("{s:s}", "raises",
                                                 text != NULL ? text : "?"));
            free(text);
        }
    }
    return out;
}

const struct step_handler steps_pool_handlers[] = {
    OP(pool), OP(apply), OP(apply_async), OP(map), OP(map_async),
    OP(starmap), OP(starmap_async), OP(imap), OP(imap_unordered),
    OP(pool_close), OP(pool_terminate), OP(pool_join), OP(pool_exit),
    OP(pool_repr), OP(result_get), OP(result_wait), OP(result_ready),
    OP(result_successful), OP(result_callbacks), OP(imap_next),
    OP(imap_drain),
};
const size_t steps_pool_nhandlers =
    sizeof(steps_pool_handlers) / sizeof(*steps_pool_handlers);
