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
    { "SIGSTKFLT", SIGSTKFLT },
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

/* validation against the vocabulary (vocab.c) */

static const char *const common_keys[] = { "op", "compare", "duration",
                                           "note", "gather" };
static const char *const compare_modes[] = { "exact", "type", "set",
                                             "ignore" };
static const char *const output_modes[] = { "exact", "lines", "ignore" };

static bool one_of(const char *s, const char *const *set, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s != NULL && strcmp(s, set[i]) == 0)
            return true;
    return false;
}

/* The interpreter keeps a name in 64 bytes (steps.c): a longer one would
 * be cut, and two names that differ past the cut would be one object. */
#define NAME_MAX_LEN 63

static bool is_identifier(const char *s)
{
    size_t n;

    if (s == NULL || !((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
                       *s == '_'))
        return false;
    for (n = 1; s[n]; n++)
        if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z') ||
              (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
            return false;
    return n <= NAME_MAX_LEN;
}

/* validation */

struct vctx {
    struct hcase *c;
    json_t *event_set; /* the names in c->events, as keys */
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

/* "process", "connection" or "queue"; the built-in names are processes. */
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
                    "[A-Za-z_][A-Za-z0-9_]* of at most %d characters", key,
                    NAME_MAX_LEN);
    if (json_object_get(scope, s) != NULL)
        return fail(v, where, op, "\"%s\" is already used in this step "
                    "list", s);
    if (process && strcmp(s, "main") == 0 &&
        json_object_get(scope, "@main") != NULL)
        return fail(v, where, op, "\"main\" names the main process's "
                    "outcomes; choose another name");
    return true;
}

/* Each event once, in the order first used; the set keeps a case of many
 * events linear to check. */
static void add_event(struct vctx *v, const char *name)
{
    if (json_object_get(v->event_set, name) != NULL)
        return;
    json_object_set_new(v->event_set, name, json_true());
    json_array_append_new(v->c->events, json_string(name));
}


static bool check_steps(struct vctx *v, json_t *steps, const char *where,
                        json_t *scope);

static bool type_ok(unsigned types, json_t *val)
{
    switch (json_typeof(val)) {
    case JSON_STRING: return types & (VT_STRING | VT_ANY);
    case JSON_INTEGER: return types & (VT_INTEGER | VT_NUMBER | VT_ANY);
    case JSON_REAL: return types & (VT_NUMBER | VT_ANY);
    case JSON_TRUE: case JSON_FALSE: return types & (VT_BOOLEAN | VT_ANY);
    case JSON_NULL: return types & (VT_NULL | VT_ANY);
    case JSON_ARRAY: return types & (VT_ARRAY | VT_ANY);
    case JSON_OBJECT: return types & (VT_OBJECT | VT_ANY);
    default: return types & VT_ANY;
    }
}

/* "an integer, null, a boolean or a string" */
static void type_text(unsigned types, char *buf, size_t size)
{
    static const struct { unsigned bit; const char *text; } words[] = {
        { VT_INTEGER, "an integer" }, { VT_NUMBER, "a number" },
        { VT_NULL, "null" }, { VT_BOOLEAN, "a boolean" },
        { VT_STRING, "a string" }, { VT_ARRAY, "a list" },
        { VT_OBJECT, "an object" },
    };
    size_t n = 0, left = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++)
        left += (types & words[i].bit) != 0;
    for (size_t i = 0; i < sizeof(words) / sizeof(*words); i++) {
        if (!(types & words[i].bit))
            continue;
        left--;
        n += (size_t)snprintf(buf + n, n < size ? size - n : 0, "%s%s",
                              words[i].text, left > 1 ? ", "
                              : left == 1 ? " or " : "");
    }
}

static bool check_value(struct vctx *v, json_t *spec, json_t *val,
                        const char *what, const char *where, const char *op,
                        int depth);

/* Each item of an array, or each value of an object (whose keys are
 * names), against spec; `what` places the container in messages. */
static bool check_items(struct vctx *v, json_t *spec, json_t *val,
                        const char *what, const char *where, const char *op,
                        int depth)
{
    char sub[192];
    const char *key;
    json_t *e;
    size_t i;

    if (json_is_object(val)) {
        json_object_foreach(val, key, e) {
            if (!is_identifier(key))
                return fail(v, where, op, "%s: key \"%s\" must be a name "
                            "matching [A-Za-z_][A-Za-z0-9_]* of at most %d "
                            "characters", what, key, NAME_MAX_LEN);
            snprintf(sub, sizeof(sub), "%s[\"%s\"]", what, key);
            if (!check_value(v, spec, e, sub, where, op, depth))
                return false;
        }
        return true;
    }
    json_array_foreach(val, i, e) {
        snprintf(sub, sizeof(sub), "%s[%zu]", what, i);
        if (!check_value(v, spec, e, sub, where, op, depth))
            return false;
    }
    return true;
}

/* One item against its spec: {"type", "min", "max", "items"} (vocab.c). */
static bool check_value(struct vctx *v, json_t *spec, json_t *val,
                        const char *what, const char *where, const char *op,
                        int depth)
{
    json_t *types = json_object_get(spec, "type"), *lim, *e;
    unsigned bits = 0;
    char text[128];
    size_t i;

    json_array_foreach(types, i, e) {
        const char *t = json_string_value(e);
        bits |= strcmp(t, "string") == 0 ? VT_STRING
                : strcmp(t, "number") == 0 ? VT_NUMBER
                : strcmp(t, "integer") == 0 ? VT_INTEGER
                : strcmp(t, "boolean") == 0 ? VT_BOOLEAN
                : strcmp(t, "null") == 0 ? VT_NULL
                : strcmp(t, "array") == 0 ? VT_ARRAY
                : strcmp(t, "object") == 0 ? VT_OBJECT : 0;
    }
    type_text(bits, text, sizeof(text));
    if (!type_ok(bits, val))
        return fail(v, where, op, "%s must be %s", what, text);
    if ((lim = json_object_get(spec, "min")) != NULL && json_is_number(val) &&
        json_number_value(val) < json_number_value(lim))
        return fail(v, where, op, "%s must be %s of at least %.15g", what,
                    text, json_number_value(lim));
    if ((lim = json_object_get(spec, "max")) != NULL && json_is_number(val) &&
        json_number_value(val) > json_number_value(lim))
        return fail(v, where, op, "%s must be %s of at most %.15g", what,
                    text, json_number_value(lim));
    if ((e = json_object_get(spec, "items")) != NULL &&
        (json_is_array(val) || json_is_object(val)))
        return check_items(v, e, val, what, where, op, depth + 1);
    return true;
}

/* A list of distinct names, each known: "own" objects of this process, or
 * "any", the built-in names included. */
static bool kind_allowed(json_t *kinds, const char *kind)
{
    size_t i;
    json_t *e;

    json_array_foreach(kinds, i, e)
        if (kind != NULL && strcmp(json_string_value(e), kind) == 0)
            return true;
    return false;
}

static bool check_names(struct vctx *v, const struct vocab_arg *a,
                        json_t *val, const char *where, const char *op,
                        json_t *scope)
{
    bool own = strcmp(a->objects, "own") == 0;
    json_t *e, *seen = json_object(); /* a set: linear in the list */
    size_t i;

    json_array_foreach(val, i, e) {
        const char *nm = json_string_value(e);
        if (nm == NULL || (own && nm[0] == '@') || !in_scope(scope, nm)) {
            json_decref(seen);
            return fail(v, where, op, "\"%s\"[%zu]: unknown object%s",
                        a->name, i, own ? " (or a built-in name, which "
                        "cannot be passed)" : "");
        }
        if (json_object_get(seen, nm) != NULL) {
            json_decref(seen);
            return fail(v, where, op, "object \"%s\" listed twice in "
                        "\"%s\"", nm, a->name);
        }
        if (a->kinds != NULL && !kind_allowed(a->kinds,
                                              kind_of(scope, nm))) {
            json_decref(seen);
            return fail(v, where, op, "\"%s\"[%zu]: \"%s\" is %s %s, "
                        "which cannot be listed here", a->name, i, nm,
                        strchr("aeiou", kind_of(scope, nm)[0]) != NULL
                            ? "an" : "a", kind_of(scope, nm));
        }
        json_object_set_new(seen, nm, json_true());
    }
    json_decref(seen);
    return true;
}

static bool check_arg(struct vctx *v, const struct vocab_arg *a, json_t *val,
                      const char *where, const char *op, json_t *scope)
{
    const char *s = json_string_value(val);
    char text[128];

    if (!type_ok(a->types, val)) {
        type_text(a->types, text, sizeof(text));
        if ((a->object != NULL && a->types == VT_STRING) ||
            a->new_kind != NULL || a->event)
            return fail(v, where, op, "\"%s\" must be a name", a->name);
        return fail(v, where, op, "\"%s\" must be %s", a->name, text);
    }
    if (a->has_min && json_is_number(val) &&
        json_number_value(val) < a->min) {
        type_text(a->types, text, sizeof(text));
        return fail(v, where, op, "\"%s\" must be %s of at least %g", a->name,
                    text, a->min);
    }
    if (a->has_max && json_is_number(val) &&
        json_number_value(val) > a->max) {
        type_text(a->types, text, sizeof(text));
        return fail(v, where, op, "\"%s\" must be %s of at most %.15g",
                    a->name, text, a->max);
    }
    if (a->enumv != NULL && !vocab_enum_has(a, s)) {
        if (a->enum_name != NULL)
            return fail(v, where, op, "\"%s\": unknown %.*s %s", a->name,
                        (int)strlen(a->enum_name) - 1, a->enum_name, s);
        return fail(v, where, op, "\"%s\" must be one of %s", a->name,
                    a->enum_text);
    }
    if (a->object != NULL && s != NULL) { /* else a boolean (lock=False) */
        if (!in_scope(scope, s))
            return fail(v, where, op, "unknown object \"%s\"", s);
        if (strcmp(kind_of(scope, s), a->object) != 0)
            return fail(v, where, op, "\"%s\" is not %s %s", s,
                        strchr("aeiou", a->object[0]) != NULL ? "an" : "a",
                        a->object);
    }
    if (a->new_kind != NULL && a->length == 0)
        return new_name(v, scope, s, a->name, where, op,
                        strcmp(a->new_kind, "process") == 0 ||
                        strcmp(a->new_kind, "thread") == 0);
    if (a->new_kind != NULL) {
        if (json_array_size(val) != a->length)
            return fail(v, where, op, "\"%s\" must be %zu new names",
                        a->name, a->length);
        for (size_t i = 0; i < a->length; i++) {
            if (!new_name(v, scope, json_string_value(json_array_get(val, i)),
                          a->name, where, op, false))
                return false;
            for (size_t k = 0; k < i; k++)
                if (json_equal(json_array_get(val, k),
                               json_array_get(val, i)))
                    return fail(v, where, op, "\"%s\" needs distinct names",
                                a->name);
        }
    }
    if (a->event) {
        if (!is_identifier(s))
            return fail(v, where, op, "\"%s\" must be a name matching "
                        "[A-Za-z_][A-Za-z0-9_]* of at most %d characters",
                        a->name, NAME_MAX_LEN);
        add_event(v, s);
    }
    if (json_is_object(val) && a->items == NULL) {
        const char *key;
        json_t *e;
        json_object_foreach(val, key, e)
            if (!is_identifier(key))
                return fail(v, where, op, "\"%s\": key \"%s\" must be a "
                            "name matching [A-Za-z_][A-Za-z0-9_]* of at most "
                            "%d characters", a->name, key, NAME_MAX_LEN);
    }
    if (a->items != NULL && (json_is_array(val) || json_is_object(val))) {
        char what[80];
        snprintf(what, sizeof(what), "\"%s\"", a->name);
        if (!check_items(v, a->items, val, what, where, op, 0))
            return false;
    }
    if (a->objects != NULL)
        return check_names(v, a, val, where, op, scope);
    return true;
}

/* The names a step makes, in the scope of the steps that follow it. */
static void add_names(const struct vocab_op *vo, json_t *step, json_t *scope)
{
    for (size_t i = 0; i < vo->nargs; i++) {
        const struct vocab_arg *a = &vo->args[i];
        json_t *val = json_object_get(step, a->name), *e;
        size_t k;
        if (a->new_kind == NULL || val == NULL)
            continue;
        if (json_is_string(val))
            json_object_set_new(scope, json_string_value(val),
                                json_string(a->new_kind));
        json_array_foreach(val, k, e)
            json_object_set_new(scope, json_string_value(e),
                                json_string(a->new_kind));
    }
}

/* A child's steps: its scope holds what the step passes it. */
static bool check_child(struct vctx *v, const struct vocab_op *vo,
                        const struct vocab_arg *a, json_t *step,
                        const char *where, json_t *scope)
{
    json_t *child_scope = json_object(), *e;
    char sub[256];
    size_t i;
    bool ok;

    for (size_t k = 0; k < vo->nargs; k++)
        if (vo->args[k].objects != NULL &&
            strcmp(vo->args[k].objects, "own") == 0)
            json_array_foreach(json_object_get(step, vo->args[k].name), i, e)
                json_object_set_new(child_scope, json_string_value(e),
                                    json_string(kind_of(scope,
                                                json_string_value(e))));
    /* a thread's steps may not end the process (check_step) */
    for (size_t k = 0; k < vo->nargs; k++)
        if (vo->args[k].new_kind != NULL &&
            strcmp(vo->args[k].new_kind, "thread") == 0)
            json_object_set_new(child_scope, "@thread", json_true());
    if (snprintf(sub, sizeof(sub), "%s.%s", where, a->name) >=
        (int)sizeof(sub)) {
        json_decref(child_scope);
        return fail(v, where, vo->op, "steps nested too deep");
    }
    ok = check_steps(v, json_object_get(step, a->name), sub, child_scope);
    json_decref(child_scope);
    return ok;
}

static bool check_step(struct vctx *v, json_t *step, const char *where,
                       json_t *scope)
{
    const char *op = json_string_value(json_object_get(step, "op"));
    const struct vocab_op *vo;
    json_t *val;
    const char *key;

    if (!json_is_object(step))
        return fail(v, where, NULL, "a step must be an object");
    if (op == NULL)
        return fail(v, where, NULL, "\"op\" is missing or not a string");
    if ((vo = vocab_find(op)) == NULL)
        return fail(v, where, NULL, "unknown op \"%s\"", op);
    if (!vo->child && json_object_get(scope, "@main") == NULL)
        return fail(v, where, op, "only the main process's steps may use it");
    /* in a thread, sys.exit() ends the thread only and an uncaught
     * exception goes to threading.excepthook: not what these ops mean */
    if (strcmp(vo->outcome, "none") == 0 &&
        json_object_get(scope, "@thread") != NULL)
        return fail(v, where, op, "a thread's steps cannot end the process");
    json_object_foreach(step, key, val)
        if (!one_of(key, common_keys, 5) && vocab_arg(vo, key) == NULL)
            return fail(v, where, op, "unknown key \"%s\"", key);
    val = json_object_get(step, "compare");
    if (val != NULL && !one_of(json_string_value(val), compare_modes, 4))
        return fail(v, where, op, "\"compare\" must be exact, type, set or "
                    "ignore");
    val = json_object_get(step, "note");
    if (val != NULL && !json_is_string(val))
        return fail(v, where, op, "\"note\" must be a string");
    val = json_object_get(step, "gather");
    if (val != NULL && !is_identifier(json_string_value(val)))
        return fail(v, where, op, "\"gather\" must be a name matching "
                    "[A-Za-z_][A-Za-z0-9_]*");
    val = json_object_get(step, "duration");
    if (val != NULL &&
        (json_array_size(val) != 2 ||
         json_number_value(json_array_get(val, 0)) < 0 ||
         !json_is_number(json_array_get(val, 0)) ||
         !json_is_number(json_array_get(val, 1)) ||
         json_number_value(json_array_get(val, 0)) >
             json_number_value(json_array_get(val, 1))))
        return fail(v, where, op, "\"duration\" must be [lo, hi] seconds");
    for (size_t i = 0; i < vo->nargs; i++) {
        const struct vocab_arg *a = &vo->args[i];
        val = json_object_get(step, a->name);
        if (val == NULL) {
            if (a->required)
                return fail(v, where, op, "\"%s\" is missing", a->name);
            continue;
        }
        if (!check_arg(v, a, val, where, op, scope))
            return false;
    }
    for (size_t i = 0; i < vo->nargs; i++) /* once the passed names are known */
        if (vo->args[i].steps &&
            json_object_get(step, vo->args[i].name) != NULL &&
            !check_child(v, vo, &vo->args[i], step, where, scope))
            return false;
    add_names(vo, step, scope);
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

/* A case from what jansson made of its file (root NULL: err says why). */
static struct hcase *case_build(const char *file, json_t *root,
                                const json_error_t *err)
{
    struct hcase *c = calloc(1, sizeof(*c));
    struct vctx v = { .c = c };

    if (c == NULL) {
        perror("mp-harness");
        exit(2);
    }
    c->file = strdup(file);
    c->id = id_from_path(file);
    c->events = json_array();
    c->root = root;
    if (c->root == NULL) {
        if (asprintf(&c->error, "%s:%d:%d: %s", file, err->line, err->column,
                     err->text) < 0)
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
    v.event_set = json_object();
    if (!check_case(&v, c->root) &&
        asprintf(&c->error, "%s: %s", file, v.err) < 0)
        c->error = NULL;
    json_decref(v.event_set);
    return c;
}

#define CASE_JSON_FLAGS (JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL)

struct hcase *case_load(const char *file)
{
    json_error_t err;

    return case_build(file, json_load_file(file, CASE_JSON_FLAGS, &err),
                      &err);
}

struct hcase *case_load_text(const char *file, const char *text, size_t len)
{
    json_error_t err;

    return case_build(file, json_loadb(text, len, CASE_JSON_FLAGS, &err),
                      &err);
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
            const char *op = json_string_value(json_object_get(step, "op"));
            if (as != NULL && strcmp(as, name) == 0 &&
                (strcmp(op, "process") == 0 || strcmp(op, "thread") == 0))
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
