/*
 * case.c - loading and validating case files (cases/README.md).
 *
 * Everything a run relies on is checked here, before anything runs: unknown
 * keys and ops, missing or mistyped arguments, names no earlier step created.
 * A bad file becomes a case with c->error set, reported as an error; the run
 * goes on with the others.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "runner.h"

const char *const harness_methods[HARNESS_METHODS] = { "fork", "spawn",
                                                        "forkserver" };

int method_index(const char *name)
{
    for (int i = 0; i < HARNESS_METHODS; i++)
        if (name != NULL && strcmp(name, harness_methods[i]) == 0)
            return i;
    return -1;
}

/* signal names, as CPython's signal module spells them */

static const struct { const char *name; int sig; } signals[] = {
    { "SIGHUP", SIGHUP },   { "SIGINT", SIGINT },     { "SIGQUIT", SIGQUIT },
    { "SIGILL", SIGILL },   { "SIGTRAP", SIGTRAP },   { "SIGABRT", SIGABRT },
    { "SIGBUS", SIGBUS },   { "SIGFPE", SIGFPE },     { "SIGKILL", SIGKILL },
    { "SIGUSR1", SIGUSR1 }, { "SIGSEGV", SIGSEGV },   { "SIGUSR2", SIGUSR2 },
    { "SIGPIPE", SIGPIPE }, { "SIGALRM", SIGALRM },   { "SIGTERM", SIGTERM },
    { "SIGCHLD", SIGCHLD }, { "SIGCONT", SIGCONT },   { "SIGSTOP", SIGSTOP },
    { "SIGTSTP", SIGTSTP }, { "SIGTTIN", SIGTTIN },   { "SIGTTOU", SIGTTOU },
    { "SIGURG", SIGURG },   { "SIGXCPU", SIGXCPU },   { "SIGXFSZ", SIGXFSZ },
    { "SIGVTALRM", SIGVTALRM }, { "SIGPROF", SIGPROF }, { "SIGWINCH", SIGWINCH },
    { "SIGIO", SIGIO },     { "SIGPOLL", SIGPOLL },   { "SIGPWR", SIGPWR },
    { "SIGSYS", SIGSYS },   { "SIGIOT", SIGIOT },     { "SIGCLD", SIGCHLD },
};

int signal_by_name(const char *name)
{
    for (size_t i = 0; i < sizeof(signals) / sizeof(signals[0]); i++)
        if (name != NULL && strcmp(name, signals[i].name) == 0)
            return signals[i].sig;
    if (name != NULL && strcmp(name, "SIGRTMIN") == 0)
        return SIGRTMIN;
    if (name != NULL && strcmp(name, "SIGRTMAX") == 0)
        return SIGRTMAX;
    return 0;
}

/* the vocabulary */

enum argtype {
    T_NONE, T_NUM, T_INT, T_STR, T_BOOL, T_STEPS, T_NAMES, T_ANY, T_CODE,
    T_SIG, T_PROC, T_AS, T_DAEMON, T_STREAM, T_OF, T_EVENT, T_EXC, T_STRNULL,
    T_CONN, T_ENDS, T_OBJECTS, T_NUMNULL, T_QUEUE, T_QKIND, T_POSINT,
};

struct argspec {
    const char *key;
    enum argtype type;
    bool required;
};

struct opspec {
    const char *op;
    struct argspec args[6];
};

#define PROC { "proc", T_PROC, true }
#define QUEUE { "queue", T_QUEUE, true }
static const struct opspec ops[] = {
    { "process", { { "as", T_AS, true }, { "target", T_STEPS, false },
                   { "name", T_STR, false }, { "daemon", T_BOOL, false },
                   { "pass", T_NAMES, false }, { "context", T_STR, false } } },
    { "start", { PROC } },
    { "join", { PROC, { "timeout", T_NUM, false } } },
    { "is_alive", { PROC } },
    { "exitcode", { PROC } },
    { "pid", { PROC } },
    { "pid_is", { PROC, { "of", T_OF, true } } },
    { "name", { PROC } },
    { "set_name", { PROC, { "value", T_ANY, true } } },
    { "daemon", { PROC } },
    { "set_daemon", { PROC, { "value", T_DAEMON, true } } },
    { "sentinel", { PROC } },
    { "wait_sentinel", { PROC, { "timeout", T_NUM, true } } },
    { "terminate", { PROC } },
    { "kill", { PROC } },
    { "close", { PROC } },
    { "repr", { PROC } },
    { "is_none", { PROC } },
    { "active_children", { { NULL, T_NONE, false } } },
    { "cpu_count", { { NULL, T_NONE, false } } },
    { "sleep", { { "seconds", T_NUM, true } } },
    { "exit", { { "code", T_CODE, false } } },
    { "os_exit", { { "code", T_INT, true } } },
    { "raise", { { "exception", T_EXC, true }, { "message", T_STR, false } } },
    { "signal_self", { { "signal", T_SIG, true } } },
    { "ignore_signal", { { "signal", T_SIG, true } } },
    { "default_signal", { { "signal", T_SIG, true } } },
    { "abort", { { NULL, T_NONE, false } } },
    { "print", { { "text", T_STR, true }, { "stream", T_STREAM, false },
                 { "flush", T_BOOL, false } } },
    { "event", { { "name", T_EVENT, true }, { "count", T_EVENT, false } } },
    { "set_global", { { "value", T_INT, true } } },
    { "pipe", { { "ends", T_ENDS, true }, { "duplex", T_BOOL, false } } },
    { "send_bytes", { { "conn", T_CONN, true }, { "data", T_STR, true } } },
    { "recv_bytes", { { "conn", T_CONN, true },
                      { "maxlength", T_INT, false } } },
    { "recv_bytes_into", { { "conn", T_CONN, true },
                           { "size", T_INT, true } } },
    { "poll", { { "conn", T_CONN, true }, { "timeout", T_NUMNULL, false } } },
    { "conn_close", { { "conn", T_CONN, true } } },
    { "conn_state", { { "conn", T_CONN, true } } },
    { "queue", { { "as", T_AS, true }, { "kind", T_QKIND, false },
                 { "maxsize", T_INT, false } } },
    { "put", { QUEUE, { "data", T_STR, true }, { "repeat", T_POSINT, false },
               { "block", T_BOOL, false }, { "timeout", T_NUMNULL, false } } },
    { "put_nowait", { QUEUE, { "data", T_STR, true } } },
    { "get", { QUEUE, { "block", T_BOOL, false },
               { "timeout", T_NUMNULL, false },
               { "length_only", T_BOOL, false } } },
    { "get_nowait", { QUEUE } },
    { "qsize", { QUEUE } },
    { "empty", { QUEUE } },
    { "full", { QUEUE } },
    { "queue_close", { QUEUE } },
    { "join_thread", { QUEUE } },
    { "cancel_join_thread", { QUEUE } },
    { "task_done", { QUEUE } },
    { "queue_join", { QUEUE } },
    { "wait", { { "objects", T_OBJECTS, true },
                { "timeout", T_NUMNULL, true } } },
    { "get_global", { { NULL, T_NONE, false } } },
    { "get_start_method", { { "allow_none", T_BOOL, false } } },
    { "set_start_method", { { "method", T_STRNULL, true },
                            { "force", T_BOOL, false } } },
    { "register_atexit", { { "text", T_STR, true } } },
    { "wait_event", { { "name", T_EVENT, true }, { "timeout", T_NUM, false } } },
};
#undef PROC
#undef QUEUE

static const char *const common_keys[] = { "op", "compare", "duration",
                                           "note" };
static const char *const compare_modes[] = { "exact", "type", "set",
                                             "ignore" };
static const char *const output_modes[] = { "exact", "lines", "ignore" };

static const struct opspec *find_op(const char *op)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        if (op != NULL && strcmp(ops[i].op, op) == 0)
            return &ops[i];
    return NULL;
}

static bool one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s != NULL && strcmp(s, set[i]) == 0)
            return true;
    return false;
}

static bool is_identifier(const char *s)
{
    if (s == NULL || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
                       *s == '_'))
        return false;
    for (s++; *s; s++)
        if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
              (*s >= '0' && *s <= '9') || *s == '_'))
            return false;
    return strlen(s) < 64;
}

/* validation */

struct vctx {
    struct hcase *c;
    char err[512];
};

static bool fail(struct vctx *v, const char *where, const char *op,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static bool fail(struct vctx *v, const char *where, const char *op,
                 const char *fmt, ...)
{
    char msg[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (op != NULL)
        snprintf(v->err, sizeof(v->err), "%s (%s): %s", where, op, msg);
    else
        snprintf(v->err, sizeof(v->err), "%s: %s", where, msg);
    return false;
}

static bool in_scope(json_t *scope, const char *name)
{
    if (name[0] == '@')
        return strcmp(name, "@current") == 0 || strcmp(name, "@parent") == 0;
    return json_object_get(scope, name) != NULL;
}

/* "process" or "conn"; the built-in names are processes. */
static const char *kind_of(json_t *scope, const char *name)
{
    if (name[0] == '@')
        return "process";
    return json_string_value(json_object_get(scope, name));
}

static bool new_name(struct vctx *v, json_t *scope, const char *s,
                     const char *key, const char *where, const char *op,
                     bool process)
{
    if (!is_identifier(s))
        return fail(v, where, op, "\"%s\" must be a name matching "
                    "[A-Za-z_][A-Za-z0-9_]*", key);
    if (json_object_get(scope, s) != NULL)
        return fail(v, where, op, "\"%s\" is already used in this step "
                    "list", s);
    if (process && strcmp(s, "main") == 0 &&
        json_object_get(scope, "@main") != NULL)
        return fail(v, where, op, "\"main\" names the main process's "
                    "outcomes; choose another name");
    return true;
}

static void add_event(struct hcase *c, const char *name)
{
    size_t i;
    json_t *e;

    json_array_foreach(c->events, i, e)
        if (strcmp(json_string_value(e), name) == 0)
            return;
    json_array_append_new(c->events, json_string(name));
}

static bool check_steps(struct vctx *v, json_t *steps, const char *where,
                        json_t *scope);

static bool check_arg(struct vctx *v, const struct argspec *a, json_t *val,
                      const char *where, const char *op, json_t *scope)
{
    const char *s = json_string_value(val);
    char sub[256];
    size_t i;
    json_t *e;

    switch (a->type) {
    case T_NONE:
        return true;
    case T_NUM:
        if (!json_is_number(val))
            return fail(v, where, op, "\"%s\" must be a number", a->key);
        if (json_number_value(val) < 0 && strcmp(op, "join") != 0)
            return fail(v, where, op, "\"%s\" must not be negative", a->key);
        return true;
    case T_INT:
        if (!json_is_integer(val))
            return fail(v, where, op, "\"%s\" must be an integer", a->key);
        return true;
    case T_STR:
    case T_EXC:
        if (s == NULL)
            return fail(v, where, op, "\"%s\" must be a string", a->key);
        if (a->type == T_EXC && !is_identifier(s))
            return fail(v, where, op, "\"%s\" is not an exception name",
                        a->key);
        return true;
    case T_BOOL:
        if (!json_is_boolean(val))
            return fail(v, where, op, "\"%s\" must be true or false", a->key);
        return true;
    case T_ANY:
        return true;
    case T_STRNULL:
        if (!json_is_string(val) && !json_is_null(val))
            return fail(v, where, op, "\"%s\" must be a string or null",
                        a->key);
        return true;
    case T_CODE:
        if (!json_is_integer(val) && !json_is_null(val) &&
            !json_is_boolean(val) && !json_is_string(val))
            return fail(v, where, op, "\"%s\" must be an integer, null, a "
                        "boolean or a string", a->key);
        return true;
    case T_DAEMON:
        if (!json_is_integer(val) && !json_is_boolean(val))
            return fail(v, where, op, "\"%s\" must be a boolean or an "
                        "integer", a->key);
        return true;
    case T_SIG:
        if (signal_by_name(s) == 0)
            return fail(v, where, op, "\"%s\": unknown signal %s", a->key,
                        s != NULL ? s : "(not a string)");
        return true;
    case T_STREAM:
        if (s == NULL || (strcmp(s, "stdout") != 0 && strcmp(s, "stderr") != 0))
            return fail(v, where, op, "\"%s\" must be \"stdout\" or "
                        "\"stderr\"", a->key);
        return true;
    case T_OF:
        if (s == NULL || (strcmp(s, "self") != 0 && strcmp(s, "parent") != 0))
            return fail(v, where, op, "\"%s\" must be \"self\" or \"parent\"",
                        a->key);
        return true;
    case T_EVENT:
        if (strcmp(a->key, "count") == 0) {
            if (!json_is_integer(val) || json_integer_value(val) < 1)
                return fail(v, where, op, "\"count\" must be an integer of "
                            "at least 1");
            return true;
        }
        if (!is_identifier(s))
            return fail(v, where, op, "\"%s\" must be a name matching "
                        "[A-Za-z_][A-Za-z0-9_]*", a->key);
        add_event(v->c, s);
        return true;
    case T_PROC:
    case T_CONN:
    case T_QUEUE: {
        const char *kind = a->type == T_PROC   ? "process"
                           : a->type == T_CONN ? "conn"
                                               : "queue";
        if (s == NULL)
            return fail(v, where, op, "\"%s\" must be a string", a->key);
        if (!in_scope(scope, s))
            return fail(v, where, op, "unknown object \"%s\"", s);
        if (strcmp(kind_of(scope, s), kind) != 0)
            return fail(v, where, op, "\"%s\" is not a %s", s,
                        a->type == T_CONN ? "connection" : kind);
        return true;
    }
    case T_QKIND:
        if (s == NULL || (strcmp(s, "Queue") != 0 &&
                          strcmp(s, "JoinableQueue") != 0 &&
                          strcmp(s, "SimpleQueue") != 0))
            return fail(v, where, op, "\"%s\" must be \"Queue\", "
                        "\"JoinableQueue\" or \"SimpleQueue\"", a->key);
        return true;
    case T_POSINT:
        if (!json_is_integer(val) || json_integer_value(val) < 1)
            return fail(v, where, op, "\"%s\" must be a positive integer",
                        a->key);
        return true;
    case T_AS:
        return new_name(v, scope, s, a->key, where, op,
                        strcmp(op, "process") == 0);
    case T_ENDS:
        if (json_array_size(val) != 2)
            return fail(v, where, op, "\"%s\" must be two new names",
                        a->key);
        if (!new_name(v, scope, json_string_value(json_array_get(val, 0)),
                      a->key, where, op, false) ||
            !new_name(v, scope, json_string_value(json_array_get(val, 1)),
                      a->key, where, op, false))
            return false;
        if (strcmp(json_string_value(json_array_get(val, 0)),
                   json_string_value(json_array_get(val, 1))) == 0)
            return fail(v, where, op, "the two ends need two names");
        return true;
    case T_OBJECTS:
        if (!json_is_array(val))
            return fail(v, where, op, "\"%s\" must be a list of names",
                        a->key);
        json_array_foreach(val, i, e) {
            if (!json_is_string(e) || !in_scope(scope, json_string_value(e)))
                return fail(v, where, op, "\"%s\"[%zu]: unknown object",
                            a->key, i);
            for (size_t k = 0; k < i; k++)
                if (json_equal(json_array_get(val, k), e))
                    return fail(v, where, op, "object \"%s\" listed twice "
                                "in \"%s\"", json_string_value(e), a->key);
        }
        return true;
    case T_NUMNULL:
        if (!json_is_number(val) && !json_is_null(val))
            return fail(v, where, op, "\"%s\" must be a number or null",
                        a->key);
        return true;
    case T_NAMES:
        if (!json_is_array(val))
            return fail(v, where, op, "\"%s\" must be a list of names", a->key);
        json_array_foreach(val, i, e) {
            const char *nm = json_string_value(e);
            if (nm == NULL || nm[0] == '@' || !in_scope(scope, nm))
                return fail(v, where, op, "\"%s\"[%zu]: unknown object (or a "
                            "built-in name, which cannot be passed)", a->key,
                            i);
            for (size_t k = 0; k < i; k++)
                if (json_equal(json_array_get(val, k), e))
                    return fail(v, where, op, "object \"%s\" listed twice "
                                "in \"%s\"", nm, a->key);
        }
        return true;
    case T_STEPS:
        if (snprintf(sub, sizeof(sub), "%s.%s", where, a->key) >=
            (int)sizeof(sub))
            return fail(v, where, op, "steps nested too deep");
        return check_steps(v, val, sub, NULL);
    }
    return true;
}

static bool check_step(struct vctx *v, json_t *step, const char *where,
                       json_t *scope)
{
    const char *op = json_string_value(json_object_get(step, "op"));
    const struct opspec *spec;
    json_t *val, *child_scope, *target;
    const char *key;

    if (!json_is_object(step))
        return fail(v, where, NULL, "a step must be an object");
    if (op == NULL)
        return fail(v, where, NULL, "\"op\" is missing or not a string");
    if ((spec = find_op(op)) == NULL)
        return fail(v, where, NULL, "unknown op \"%s\"", op);
    json_object_foreach(step, key, val) {
        bool known = one_of(key, common_keys, 4);
        for (size_t i = 0; !known && i < 6 && spec->args[i].key; i++)
            known = strcmp(key, spec->args[i].key) == 0;
        if (!known)
            return fail(v, where, op, "unknown key \"%s\"", key);
    }
    val = json_object_get(step, "compare");
    if (val != NULL && !one_of(json_string_value(val), compare_modes, 4))
        return fail(v, where, op, "\"compare\" must be exact, type, set or "
                    "ignore");
    val = json_object_get(step, "note");
    if (val != NULL && !json_is_string(val))
        return fail(v, where, op, "\"note\" must be a string");
    val = json_object_get(step, "duration");
    if (val != NULL &&
        (json_array_size(val) != 2 ||
         json_number_value(json_array_get(val, 0)) < 0 ||
         !json_is_number(json_array_get(val, 0)) ||
         !json_is_number(json_array_get(val, 1)) ||
         json_number_value(json_array_get(val, 0)) >
             json_number_value(json_array_get(val, 1))))
        return fail(v, where, op, "\"duration\" must be [lo, hi] seconds");
    for (size_t i = 0; i < 6 && spec->args[i].key; i++) {
        const struct argspec *a = &spec->args[i];
        val = json_object_get(step, a->key);
        if (val == NULL) {
            if (a->required)
                return fail(v, where, op, "\"%s\" is missing", a->key);
            continue;
        }
        if (a->type == T_STEPS)
            continue; /* after pass is known */
        if (!check_arg(v, a, val, where, op, scope))
            return false;
    }
    if (strcmp(op, "process") == 0) {
        target = json_object_get(step, "target");
        if (target != NULL) {
            char sub[256];
            size_t i;
            json_t *e;
            child_scope = json_object();
            json_array_foreach(json_object_get(step, "pass"), i, e)
                json_object_set_new(child_scope, json_string_value(e),
                                    json_string(kind_of(scope,
                                                json_string_value(e))));
            if (snprintf(sub, sizeof(sub), "%s.target", where) >=
                (int)sizeof(sub)) {
                json_decref(child_scope);
                return fail(v, where, op, "steps nested too deep");
            }
            bool ok = check_steps(v, target, sub, child_scope);
            json_decref(child_scope);
            if (!ok)
                return false;
        }
        json_object_set_new(scope, json_string_value(json_object_get(step,
                            "as")), json_string("process"));
    }
    if (strcmp(op, "queue") == 0)
        json_object_set_new(scope, json_string_value(json_object_get(step,
                            "as")), json_string("queue"));
    if (strcmp(op, "pipe") == 0) {
        json_t *ends = json_object_get(step, "ends");
        json_object_set_new(scope, json_string_value(json_array_get(ends, 0)),
                            json_string("conn"));
        json_object_set_new(scope, json_string_value(json_array_get(ends, 1)),
                            json_string("conn"));
    }
    return true;
}

/* scope NULL: a fresh one (a child's, with the passed names) */
static bool check_steps(struct vctx *v, json_t *steps, const char *where,
                        json_t *scope)
{
    char sub[256];
    size_t i;
    json_t *step;
    bool ok = true, own = scope == NULL;

    if (!json_is_array(steps) || json_array_size(steps) == 0)
        return fail(v, where, NULL, "must be a non-empty list of steps");
    if (own)
        scope = json_object();
    json_array_foreach(steps, i, step) {
        if (snprintf(sub, sizeof(sub), "%s[%zu]", where, i) >=
            (int)sizeof(sub)) {
            ok = fail(v, where, NULL, "steps nested too deep");
            break;
        }
        if (!(ok = check_step(v, step, sub, scope)))
            break;
    }
    if (own)
        json_decref(scope);
    return ok;
}

static const char *const case_keys[] = { "about", "seeds", "steps", "methods",
                                         "timeout", "output", "xfail" };

static bool check_case(struct vctx *v, json_t *root)
{
    struct hcase *c = v->c;
    const char *key;
    json_t *val, *scope;
    size_t i;
    bool ok;

    if (!json_is_object(root))
        return fail(v, "case", NULL, "the file must hold a JSON object");
    json_object_foreach(root, key, val)
        if (!one_of(key, case_keys, 7))
            return fail(v, "case", NULL, "unknown key \"%s\"", key);
    if (!json_is_string(json_object_get(root, "about")))
        return fail(v, "about", NULL, "missing, or not a string");
    val = json_object_get(root, "seeds");
    if (val != NULL && !json_is_string(val))
        return fail(v, "seeds", NULL, "must be a string");
    c->methods = (1u << HARNESS_METHODS) - 1;
    if ((val = json_object_get(root, "methods")) != NULL) {
        json_t *e;
        c->methods = 0;
        if (!json_is_array(val) || json_array_size(val) == 0)
            return fail(v, "methods", NULL, "must be a non-empty list");
        json_array_foreach(val, i, e) {
            int m = method_index(json_string_value(e));
            if (m < 0)
                return fail(v, "methods", NULL, "unknown start method");
            if (c->methods & (1u << m))
                return fail(v, "methods", NULL, "a method listed twice");
            c->methods |= 1u << m;
        }
    }
    c->timeout = 20;
    if ((val = json_object_get(root, "timeout")) != NULL) {
        if (!json_is_number(val) || json_number_value(val) <= 0)
            return fail(v, "timeout", NULL, "must be a positive number");
        c->timeout = json_number_value(val);
    }
    c->out_mode[0] = c->out_mode[1] = "lines";
    if ((val = json_object_get(root, "output")) != NULL) {
        json_t *m;
        if (!json_is_object(val))
            return fail(v, "output", NULL, "must be an object");
        json_object_foreach(val, key, m) {
            int k = strcmp(key, "stdout") == 0 ? 0
                  : strcmp(key, "stderr") == 0 ? 1 : -1;
            if (k < 0)
                return fail(v, "output", NULL, "unknown key \"%s\"", key);
            if (!one_of(json_string_value(m), output_modes, 3))
                return fail(v, "output", NULL, "\"%s\" must be exact, lines "
                            "or ignore", key);
            c->out_mode[k] = json_string_value(m);
        }
    }
    if ((val = json_object_get(root, "xfail")) != NULL) {
        json_t *ms = json_object_get(val, "methods"), *e;
        json_object_foreach(val, key, e)
            if (strcmp(key, "reason") != 0 && strcmp(key, "methods") != 0)
                return fail(v, "xfail", NULL, "unknown key \"%s\"", key);
        c->xfail = json_string_value(json_object_get(val, "reason"));
        if (c->xfail == NULL || c->xfail[0] == '\0')
            return fail(v, "xfail", NULL, "\"reason\" must say why");
        c->xfail_methods = ms == NULL ? (1u << HARNESS_METHODS) - 1 : 0;
        if (ms != NULL && (!json_is_array(ms) || json_array_size(ms) == 0))
            return fail(v, "xfail", NULL, "\"methods\" must be a non-empty "
                        "list of start methods");
        json_array_foreach(ms, i, e) {
            int m = method_index(json_string_value(e));
            if (m < 0)
                return fail(v, "xfail", NULL, "unknown start method");
            c->xfail_methods |= 1u << m;
        }
    }
    c->steps = json_object_get(root, "steps");
    scope = json_object();
    json_object_set_new(scope, "@main", json_true()); /* the main's list */
    ok = check_steps(v, c->steps, "steps", scope);
    json_decref(scope);
    return ok;
}

static char *id_from_path(const char *file)
{
    const char *p = file, *hit = NULL, *end;
    char *id;

    while ((p = strstr(p, "cases/")) != NULL) {
        if (p == file || p[-1] == '/')
            hit = p + 6;
        p += 6;
    }
    if (hit == NULL)
        hit = strrchr(file, '/') != NULL ? strrchr(file, '/') + 1 : file;
    end = hit + strlen(hit);
    if (end - hit > 5 && strcmp(end - 5, ".json") == 0)
        end -= 5;
    id = strndup(hit, (size_t)(end - hit));
    return id;
}

static bool valid_id(const char *id)
{
    const char *slash = strchr(id, '/');

    if (slash == NULL || slash == id || slash[1] == '\0' ||
        strchr(slash + 1, '/') != NULL)
        return false;
    for (const char *c = id; *c; c++)
        if (*c != '/' && !((*c >= 'a' && *c <= 'z') ||
                           (*c >= '0' && *c <= '9') || *c == '_'))
            return false;
    return true;
}

struct hcase *case_load(const char *file)
{
    struct hcase *c = calloc(1, sizeof(*c));
    struct vctx v = { .c = c };
    json_error_t err;

    if (c == NULL) {
        perror("mp-harness");
        exit(2);
    }
    c->file = strdup(file);
    c->id = id_from_path(file);
    c->events = json_array();
    c->root = json_load_file(file, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                             &err);
    if (c->root == NULL) {
        if (asprintf(&c->error, "%s:%d:%d: %s", file, err.line, err.column,
                     err.text) < 0)
            c->error = NULL;
        return c;
    }
    if (!valid_id(c->id)) {
        if (asprintf(&c->error, "%s: the case id \"%s\" must be <area>/<name>"
                     " in [a-z0-9_] (a file cases/<area>/<name>.json)", file,
                     c->id) < 0)
            c->error = NULL;
        return c;
    }
    if (!check_case(&v, c->root) &&
        asprintf(&c->error, "%s: %s", file, v.err) < 0)
        c->error = NULL;
    return c;
}

void case_free(struct hcase *c)
{
    if (c == NULL)
        return;
    json_decref(c->root);
    json_decref(c->events);
    free(c->id);
    free(c->file);
    free(c->error);
    free(c);
}

json_t *case_steps_for(const struct hcase *c, const char *path)
{
    json_t *steps = c->steps;
    char *copy, *name, *save = NULL;

    if (strcmp(path, "main") == 0)
        return steps;
    copy = strdup(path);
    for (name = strtok_r(copy, ".", &save); name != NULL && steps != NULL;
         name = strtok_r(NULL, ".", &save)) {
        json_t *found = NULL, *step;
        size_t i;
        json_array_foreach(steps, i, step) {
            const char *as = json_string_value(json_object_get(step, "as"));
            if (as != NULL && strcmp(as, name) == 0 &&
                strcmp(json_string_value(json_object_get(step, "op")),
                       "process") == 0)
                found = json_object_get(step, "target");
        }
        steps = found;
    }
    free(copy);
    return steps;
}

/* collecting files */

static int add_file(char ***files, size_t *n, size_t *cap, const char *path)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 64;
        char **grown = realloc(*files, c * sizeof(*grown));
        if (grown == NULL)
            return -ENOMEM;
        *files = grown;
        *cap = c;
    }
    (*files)[(*n)++] = strdup(path);
    return 0;
}

static int walk(const char *dir, char ***files, size_t *n, size_t *cap)
{
    struct dirent **list;
    int k = scandir(dir, &list, NULL, alphasort);

    if (k < 0)
        return -errno;
    for (int i = 0; i < k; i++) {
        const char *nm = list[i]->d_name;
        size_t len = strlen(nm);
        char path[4096];
        struct stat st;

        if (nm[0] != '.') {
            snprintf(path, sizeof(path), "%s/%s", dir, nm);
            if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
                walk(path, files, n, cap);
            else if (len > 5 && strcmp(nm + len - 5, ".json") == 0)
                add_file(files, n, cap, path);
        }
        free(list[i]);
    }
    free(list);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int case_collect(char **paths, int n, char ***files, size_t *count)
{
    size_t cap = 0;
    struct stat st;

    *files = NULL;
    *count = 0;
    for (int i = 0; i < n; i++) {
        if (stat(paths[i], &st) < 0) {
            int err = errno;
            fprintf(stderr, "mp-harness: %s: %s\n", paths[i], strerror(err));
            for (size_t k = 0; k < *count; k++)
                free((*files)[k]);
            free(*files);
            *files = NULL;
            *count = 0;
            return -err;
        }
        if (S_ISDIR(st.st_mode))
            walk(paths[i], files, count, &cap);
        else
            add_file(files, count, &cap, paths[i]);
    }
    if (*count > 0)
        qsort(*files, *count, sizeof(**files), cmp_str);
    return 0;
}
