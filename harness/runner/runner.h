/*
 * runner.h - the conformance harness (mp-harness): declarations shared by
 * its files.  The case format is cases/README.md.
 *
 *   main.c     command line: run | list | case-run (internal)
 *   vocab.c    the ops a case may use, from ops.json (built in)
 *   case.c     loading and validating case files (jansson)
 *   steps.c    the step interpreter over libmp (main process and children)
 *   steps_pool.c  its ops on pools, results and imap iterators
 *   steps_shared.c  its ops on shared values and SharedMemory
 *   exec.c     one run: scratch dir, process group, deadline, collection
 *   ref.c      loading and validating reference files (jansson)
 *   compare.c  a run against its reference: mismatches, timing windows
 *   report.c   TAP 13 and the JSON report
 *   norm.c     normalising output lines and repr strings
 *   pyrepr.c   str() of a JSON value as CPython prints the object
 */
#ifndef MP_RUNNER_H
#define MP_RUNNER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "mp.h"

#define HARNESS_METHODS 3
extern const char *const harness_methods[HARNESS_METHODS];

/* vocab.c */

/* JSON types an argument may have (ops.json's "type"). */
enum {
    VT_STRING = 1, VT_NUMBER = 2, VT_INTEGER = 4, VT_BOOLEAN = 8,
    VT_NULL = 16, VT_ARRAY = 32, VT_ANY = 64, VT_OBJECT = 128,
};

struct vocab_arg {
    const char *name;
    unsigned types;       /* VT_* bits */
    bool required;
    json_t *dflt;         /* the value an omitted argument means, or NULL */
    bool has_min;
    double min;
    bool has_max;
    double max;
    json_t *enumv;        /* the strings it may be, or NULL */
    const char *enum_name; /* the list's name in ops.json ("signals") */
    char *enum_text;      /* "\"self\", \"parent\"", for messages */
    const char *object;   /* names an object of this kind, or NULL */
    const char *objects;  /* a list of names: "any" or "own", or NULL */
    json_t *kinds;        /* with objects: the kinds they may be, or NULL */
    json_t *items;        /* an array's items (an object's values): a spec
                           * {"type": [...], "min", "max", "items"}, or NULL */
    const char *new_kind; /* makes an object of this kind, or NULL */
    size_t length;        /* with new_kind: an array of this many names */
    bool steps;           /* a child's steps */
    bool event;           /* an event's name */
};

struct vocab_op {
    const char *op;
    bool child;           /* a child's steps may use it */
    const char *outcome;  /* "value", "none" (ends the process), "first" */
    size_t nargs;
    struct vocab_arg *args;
};

size_t vocab_count(void);
const struct vocab_op *vocab_at(size_t i);
const struct vocab_op *vocab_find(const char *op);     /* NULL: unknown */
const struct vocab_arg *vocab_arg(const struct vocab_op *vo,
                                  const char *name);  /* NULL: unknown */
bool vocab_enum_has(const struct vocab_arg *a, const char *s);
/* mp-harness ops [--json]: prints the vocabulary; returns the exit code. */
int vocab_command(int argc, char **argv);

/* case.c */

struct hcase {
    char *id;    /* "process/join_timeout" */
    char *file;  /* the path it was loaded from */
    json_t *root;
    json_t *steps;
    unsigned methods;       /* bit i: harness_methods[i] */
    double timeout;
    const char *out_mode[2]; /* stdout, stderr: "exact", "lines", "ignore" */
    const char *xfail;       /* reason, or NULL */
    unsigned xfail_methods;
    char *error; /* why the file is unusable, or NULL */
    json_t *events; /* array of every event name the case uses */
};

/* Loads and validates a case file; never NULL (c->error says what is
 * wrong).  `id` may be NULL: derived from the path under "cases/". */
struct hcase *case_load(const char *file);
/* The same for a file's text, already read (`file` names it in messages
 * and gives the id). */
struct hcase *case_load_text(const char *file, const char *text, size_t len);
void case_free(struct hcase *c);
/* Collects case files below each path (files or directories), sorted. */
int case_collect(char **paths, int n, char ***files, size_t *count);
int method_index(const char *name);
/* A signal by its CPython name ("SIGTERM"), or 0. */
int signal_by_name(const char *name);
/* The step list a child path runs ("main": the case's steps; "p.q": the
 * target of q inside p), or NULL. */
json_t *case_steps_for(const struct hcase *c, const char *path);

/* steps.c: the step interpreter; steps_pool.c, steps_shared.c: its pool,
 * shared value and SharedMemory ops */

/* The ops the interpreter has a handler for (a new array of names). */
json_t *steps_handlers(void);
/* Runs a case's main steps in this (fresh) process; never returns. */
_Noreturn void steps_main(const char *file, const char *method,
                          const char *dir);

/* An object a process's (or a thread's) steps made or were passed. */
struct hthread;
struct hpool;
struct hresult;
struct hiter;

struct obj {
    char name[64];
    mp_process *p;   /* a process, */
    mp_conn *c;      /* or a connection, */
    mp_queue *q;     /* or a queue, */
    struct hthread *t; /* or a thread, */
    mp_lock *l;      /* or a Lock, RLock, Semaphore or BoundedSemaphore, */
    mp_cond *cv;     /* or a Condition, */
    mp_event *ev;    /* or an Event, */
    mp_barrier *b;   /* or a Barrier, */
    struct hpool *pool;  /* or a Pool, */
    struct hresult *res; /* or an AsyncResult, */
    struct hiter *iter;  /* or an imap iterator, */
    mp_value *val;   /* or a Value, RawValue, Array or RawArray */
    mp_shm *shm;     /* or a SharedMemory */
    bool val_array;  /* val: made by array or raw_array */
    bool lock_of_value; /* l: a value's own lock (get_lock), freed with it */
    bool inherited;  /* handed over by the parent: not ours to free */
    bool daemon_int; /* the daemon flag is an int (set_daemon, or inherited
                      * from the process that made it): report it as one */
    json_int_t daemon_value;
    bool ended_seen; /* a step saw it end: CPython's popen.returncode */
    bool closed;     /* queue_close succeeded here: CPython's q._closed */
};

struct interp {
    const char *dir;
    char path[256]; /* "main", "p", "p.q" */
    bool child;      /* a child process's steps, or a thread's */
    bool thread;     /* a thread's steps */
    int out_fd;
    struct obj *objs; /* grown as steps make objects: no fixed limit */
    size_t nobj, cap;
    int raised; /* the MP_ERAISED code a `raise` step made */
    /* current_process().daemon as an int, when it is one: CPython copies
     * the flag into every Process() this process makes. */
    bool daemon_int;
    json_int_t daemon_value;
};

/* The steps of one process, or of one thread. */

/* One step being run: what a handler reads, and where it leaves a failure. */
struct call {
    struct interp *in;
    json_t *step;
    const struct vocab_op *vo;
    struct obj *o;   /* the harness's record of the process "proc" names */
    mp_process *p;   /* that process */
    int err;         /* a libmp error: the outcome raises it */
    char *raised;    /* or the exception's text, put together here */
};

/* A step's argument, or the default ops.json gives for it (NULL: none). */
static inline json_t *arg(struct call *c, const char *name)
{
    json_t *v = json_object_get(c->step, name);
    const struct vocab_arg *a;

    if (v == NULL && (a = vocab_arg(c->vo, name)) != NULL)
        v = a->dflt;
    return v;
}

static inline const char *arg_str(struct call *c, const char *name)
{
    return json_string_value(arg(c, name));
}

static inline json_t *failed(struct call *c, int r)
{
    c->err = r;
    return NULL;
}

static inline json_t *null_or_failed(struct call *c, int r)
{
    return r < 0 ? failed(c, r) : json_null();
}

static inline json_t *raise_text(struct call *c, char *text)
{
    c->raised = text;
    return NULL;
}

/* An op's handler: the outcome's value (a new reference), or NULL with
 * c->err or c->raised set.  OP(x) registers op_x as op "x". */
struct step_handler {
    const char *op;
    json_t *(*run)(struct call *c);
};
#define OP(name) { #name, op_##name }

/* The pool ops' handlers (steps_pool.c), looked up after steps.c's own. */
extern const struct step_handler steps_pool_handlers[];
extern const size_t steps_pool_nhandlers;
/* Drops what this process holds of a pool, result or iterator it made. */
void steps_pool_free_obj(struct obj *o);

/* The shared values' and SharedMemory's handlers (steps_shared.c). */
extern const struct step_handler steps_shared_handlers[];
extern const size_t steps_shared_nhandlers;
/* Drops what this process holds of a shared value or SharedMemory. */
void steps_shared_free_obj(struct obj *o);

/* The program's global of set_global/get_global (a pool's initializer
 * sets it too). */
extern json_int_t steps_global;
/* The named object of this step list (the last made of that name), or
 * NULL. */
struct obj *steps_find_obj(struct interp *in, const char *name);
/* A new object record of that name, zeroed. */
struct obj *steps_new_obj(struct interp *in, const char *name);
/* Records a harness problem (not an outcome) and ends the process. */
_Noreturn void steps_harness_error(struct interp *in, const char *msg);
/* Sleeps that long, whatever interrupts it. */
void steps_sleep_for(double seconds);

/* exec.c */

struct run {
    bool timed_out;
    char *error;         /* a harness error (bad case, wait_event...) */
    int exit_code;       /* the main process's; -N: killed by signal N */
    json_t *outcomes;    /* {"main": [...], "p": [...]}, with "t" fields */
    json_t *gathered;    /* {"name": [outcomes]}: a case's gather steps */
    json_t *leftover;    /* sorted paths */
    json_t *out[2];      /* stdout, stderr: normalised lines or null */
    double wall;         /* seconds */
};

int exec_run(const char *self_exe, const struct hcase *c, const char *method,
             struct run *r);
void run_clear(struct run *r);
/* poll()'s timeout for a wait of `seconds`: rounded up to whole
 * milliseconds, 0 for none or less, INT_MAX for what poll cannot take. */
int exec_poll_ms(double seconds);
/* The run as a reference method entry ({exit, outcomes, leftover, stdout,
 * stderr}), without timings. */
json_t *run_to_json(const struct run *r);

/* ref.c */

/* Loads the reference of case `id` from dir/<id>.json and checks its shape
 * (keys, types, no duplicate keys).  NULL when it is missing or unusable,
 * with *why (malloc'd) saying where: "file:line:column: key.path: text",
 * or, when it is missing, how to record it from case_file. */
json_t *ref_load(const char *dir, const char *id, const char *case_file,
                 char **why);
/* The same for a reference's text, already read (`file` names it in
 * messages). */
json_t *ref_load_text(const char *file, const char *id, const char *text,
                      size_t len, char **why);

/* compare.c */

/* Moves the outcome of every step with a "gather" key into a new
 * {"name": [outcomes]} (each name the case uses; NULL if none), leaving
 * {"gathered": "name"} in its place (cases/README.md). */
json_t *compare_gather(const struct hcase *c, json_t *outcomes);
/* Compares r with the reference entry ref; returns the number of
 * differences and appends a readable line for each to diffs (array). */
int compare_run(const struct hcase *c, const struct run *r, json_t *ref,
                json_t *diffs);

/* norm.c */

/* Bytes as text, as Python's decode("utf-8", "backslashreplace") gives
 * them (malloc'd). */
char *utf8_text(const char *s, size_t n, size_t *out_len); /* NULs kept */
/* One line or string, normalised (malloc'd); NULL when the rules drop it
 * (traceback noise, blank). */
char *norm_line(const char *s);
/* Splits text into normalised lines; mode "lines" sorts them; "ignore"
 * gives json null. */
json_t *norm_output(const char *text, const char *mode);
/* Python's repr() of bytes: b'...' (malloc'd; NULL without memory). */
char *bytes_repr(const void *data, size_t n);

/* pyrepr.c */

/* str(obj) of the object CPython's json.loads() makes of v: a string
 * itself, anything else its repr ('a', [1, 2.5, None], {'k': True}).
 * malloc'd, *len its length; NULL when out of memory. */
char *pyrepr_str(json_t *v, size_t *len);

/* The same for `size` bytes of text, NULs kept as characters. */
json_t *norm_output_n(const char *text, size_t size, const char *mode);

/* report.c */

enum status { ST_PASS, ST_FAIL, ST_TODO, ST_SKIP, ST_ERROR, ST_TIMEOUT };
extern const char *const status_names[];

struct report;
struct report *report_open(const char *dir, const char *ref, int total);
/* Records and prints one test point. */
void report_add(struct report *rep, const struct hcase *c, const char *method,
                enum status st, const char *why, const struct run *r,
                json_t *ref, json_t *diffs);
/* Prints the plan's end and the summary line; returns failures. */
int report_close(struct report *rep);

#endif /* MP_RUNNER_H */
