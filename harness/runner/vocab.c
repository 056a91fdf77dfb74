/*
 * vocab.c - the case vocabulary: every op, its arguments and its outcome,
 * read from harness/runner/ops.json (cases/README.md).
 *
 * The file is compiled into the program (the Makefile turns it into a C
 * string), so mp-harness finds it wherever it is installed or run from, and
 * a stale copy cannot be: the build depends on it.  It is parsed once, on
 * first use, into the tables below, rejecting any key or type this file does
 * not know, so that a field added for the recorder cannot be silently
 * ignored here.  scripts/record_reference.py reads the same file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

static const char ops_json[] =
#include "ops_json.inc"
    ;

static const struct { const char *name; unsigned bit; } type_names[] = {
    { "string", VT_STRING }, { "number", VT_NUMBER }, { "integer", VT_INTEGER },
    { "boolean", VT_BOOLEAN }, { "null", VT_NULL }, { "array", VT_ARRAY },
    { "object", VT_OBJECT }, { "any", VT_ANY },
};

static const char *const object_kinds[] = {
    "process", "connection", "queue", "thread", "lock", "condition", "event",
    "barrier", "value", "shm", "pool", "result", "iterator",
};
#define NKINDS (sizeof(object_kinds) / sizeof(*object_kinds))

static json_t *root;
static struct vocab_op *ops;
static size_t nops;

_Noreturn static void bad(const char *op, const char *arg, const char *what)
{
    fprintf(stderr, "mp-harness: the built-in ops.json: %s%s%s%s: %s\n",
            op != NULL ? "op " : "", op != NULL ? op : "",
            arg != NULL ? ", argument " : "", arg != NULL ? arg : "", what);
    exit(2);
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
    for (size_t i = 0; s != NULL && i < n; i++)
        if (strcmp(s, list[i]) == 0)
            return true;
    return false;
}

static void check_keys(json_t *o, const char *const *known, size_t n,
                       const char *op, const char *arg)
{
    const char *key;
    json_t *v;
    char msg[128];

    if (!json_is_object(o))
        bad(op, arg, "not an object");
    json_object_foreach(o, key, v)
        if (!in_list(key, known, n)) {
            snprintf(msg, sizeof(msg), "unknown key \"%s\"", key);
            bad(op, arg, msg);
        }
}

static unsigned parse_types(json_t *t, const char *op, const char *arg)
{
    unsigned bits = 0;
    size_t i, k;
    json_t *e;

    if (json_is_string(t))
        t = json_pack("[O]", t);
    else
        json_incref(t);
    if (!json_is_array(t) || json_array_size(t) == 0)
        bad(op, arg, "\"type\" must be a type or a list of types");
    json_array_foreach(t, i, e) {
        for (k = 0; k < sizeof(type_names) / sizeof(*type_names); k++)
            if (json_is_string(e) &&
                strcmp(json_string_value(e), type_names[k].name) == 0)
                break;
        if (k == sizeof(type_names) / sizeof(*type_names))
            bad(op, arg, "unknown type");
        bits |= type_names[k].bit;
    }
    json_decref(t);
    return bits;
}

static const char *kind_field(json_t *a, const char *key,
                              const char *const *kinds, size_t n,
                              const char *op, const char *arg)
{
    json_t *v = json_object_get(a, key);

    if (v == NULL)
        return NULL;
    if (!in_list(json_string_value(v), kinds, n))
        bad(op, arg, "unknown object kind");
    return json_string_value(v);
}

static json_t *types_json(unsigned bits)
{
    json_t *types = json_array();

    for (size_t k = 0; k < sizeof(type_names) / sizeof(*type_names); k++)
        if (bits & type_names[k].bit)
            json_array_append_new(types, json_string(type_names[k].name));
    return types;
}

/* An "items" spec, checked and made canonical: {"type": [names in this
 * file's order], "min", "max" (reals), "items"}, what `ops --json` shows. */
static json_t *parse_items(json_t *spec, const char *op, const char *arg,
                           int depth)
{
    static const char *const keys[] = { "type", "min", "max", "items" };
    json_t *out, *v;
    unsigned bits;

    if (depth > 4)
        bad(op, arg, "\"items\" nested too deep");
    check_keys(spec, keys, sizeof(keys) / sizeof(*keys), op, arg);
    bits = parse_types(json_object_get(spec, "type"), op, arg);
    if ((bits & VT_ANY) != 0)
        bad(op, arg, "\"items\" must say which types");
    out = json_pack("{s:o}", "type", types_json(bits));
    if ((v = json_object_get(spec, "min")) != NULL) {
        if (!json_is_number(v))
            bad(op, arg, "\"items\": \"min\" must be a number");
        json_object_set_new(out, "min", json_real(json_number_value(v)));
    }
    if ((v = json_object_get(spec, "max")) != NULL) {
        if (!json_is_number(v))
            bad(op, arg, "\"items\": \"max\" must be a number");
        json_object_set_new(out, "max", json_real(json_number_value(v)));
    }
    if ((v = json_object_get(spec, "items")) != NULL) {
        if ((bits & (VT_ARRAY | VT_OBJECT)) == 0)
            bad(op, arg, "\"items\" of items that hold none");
        json_object_set_new(out, "items", parse_items(v, op, arg, depth + 1));
    }
    return out;
}

static void parse_arg(struct vocab_arg *va, json_t *a, const char *op)
{
    static const char *const keys[] = {
        "name", "type", "required", "default", "min", "max", "enum", "object",
        "objects", "kinds", "new", "length", "steps", "event", "items", "doc",
    };
    static const char *const scopes[] = { "any", "own" };
    const char *name = json_string_value(json_object_get(a, "name"));
    json_t *v;
    size_t i;

    check_keys(a, keys, sizeof(keys) / sizeof(*keys), op, name);
    if (name == NULL)
        bad(op, NULL, "an argument without a name");
    va->name = name;
    va->types = parse_types(json_object_get(a, "type"), op, name);
    if (!json_is_boolean(json_object_get(a, "required")))
        bad(op, name, "\"required\" must be true or false");
    va->required = json_is_true(json_object_get(a, "required"));
    va->dflt = json_object_get(a, "default");
    if ((v = json_object_get(a, "min")) != NULL) {
        if (!json_is_number(v))
            bad(op, name, "\"min\" must be a number");
        va->has_min = true;
        va->min = json_number_value(v);
    }
    if ((v = json_object_get(a, "max")) != NULL) {
        if (!json_is_number(v))
            bad(op, name, "\"max\" must be a number");
        va->has_max = true;
        va->max = json_number_value(v);
    }
    if ((v = json_object_get(a, "enum")) != NULL) {
        json_t *e;
        size_t n = 0;
        if (json_is_string(v)) { /* a list of the file's: "signals" */
            va->enum_name = json_string_value(v);
            v = json_object_get(root, va->enum_name);
        }
        if (!json_is_array(v) || json_array_size(v) == 0)
            bad(op, name, "\"enum\" must be a list or name one");
        json_array_foreach(v, i, e)
            if (!json_is_string(e))
                bad(op, name, "\"enum\" lists strings");
        va->enumv = v;
        json_array_foreach(v, i, e)
            n += strlen(json_string_value(e)) + 4;
        if ((va->enum_text = malloc(n + 1)) == NULL)
            bad(op, name, "out of memory");
        n = 0;
        json_array_foreach(v, i, e)
            n += (size_t)sprintf(va->enum_text + n, "%s\"%s\"",
                                 i > 0 ? ", " : "", json_string_value(e));
    }
    va->object = kind_field(a, "object", object_kinds, NKINDS, op,
                            name);
    va->new_kind = kind_field(a, "new", object_kinds, NKINDS, op,
                              name);
    va->objects = kind_field(a, "objects", scopes, 2, op, name);
    if ((v = json_object_get(a, "kinds")) != NULL) {
        json_t *e;
        if (va->objects == NULL || !json_is_array(v) ||
            json_array_size(v) == 0)
            bad(op, name, "\"kinds\" is a list, with \"objects\"");
        json_array_foreach(v, i, e)
            if (!in_list(json_string_value(e), object_kinds, NKINDS))
                bad(op, name, "unknown object kind in \"kinds\"");
        va->kinds = v;
    }
    if ((v = json_object_get(a, "items")) != NULL) {
        if ((va->types & (VT_ARRAY | VT_OBJECT)) == 0)
            bad(op, name, "\"items\" is for an array or an object");
        va->items = parse_items(v, op, name, 0);
    }
    va->length = (size_t)json_integer_value(json_object_get(a, "length"));
    va->steps = json_is_true(json_object_get(a, "steps"));
    va->event = json_is_true(json_object_get(a, "event"));
    if (va->new_kind != NULL &&
        (va->length > 0 ? va->types != VT_ARRAY : va->types != VT_STRING))
        bad(op, name, "\"new\" names are a string, or an array of \"length\"");
    /* Value(lock=True | False | a lock): a boolean or an object's name */
    if ((va->object != NULL && (va->types & ~VT_BOOLEAN) != VT_STRING) ||
        (va->event && va->types != VT_STRING))
        bad(op, name, "an object or event name is a string");
    if ((va->objects != NULL || va->steps) && va->types != VT_ARRAY)
        bad(op, name, "\"objects\" and \"steps\" are arrays");
}

static void parse_op(struct vocab_op *vo, json_t *o)
{
    static const char *const keys[] = { "op", "group", "child", "outcome",
                                        "does", "value", "args" };
    static const char *const outcomes[] = { "value", "none", "first" };
    const char *name = json_string_value(json_object_get(o, "op"));
    json_t *args = json_object_get(o, "args"), *a;
    size_t i;

    check_keys(o, keys, sizeof(keys) / sizeof(*keys), name, NULL);
    if (name == NULL)
        bad(NULL, NULL, "an op without a name");
    for (struct vocab_op *p = ops; p < vo; p++)
        if (strcmp(p->op, name) == 0)
            bad(name, NULL, "listed twice");
    vo->op = name;
    if (!json_is_boolean(json_object_get(o, "child")))
        bad(name, NULL, "\"child\" must be true or false");
    vo->child = json_is_true(json_object_get(o, "child"));
    vo->outcome = json_string_value(json_object_get(o, "outcome"));
    if (!in_list(vo->outcome, outcomes, 3))
        bad(name, NULL, "\"outcome\" must be value, none or first");
    if (!json_is_array(args))
        bad(name, NULL, "\"args\" must be a list");
    vo->nargs = json_array_size(args);
    vo->args = calloc(vo->nargs + 1, sizeof(*vo->args));
    if (vo->args == NULL)
        bad(name, NULL, "out of memory");
    json_array_foreach(args, i, a) {
        parse_arg(&vo->args[i], a, name);
        for (size_t k = 0; k < i; k++)
            if (strcmp(vo->args[k].name, vo->args[i].name) == 0)
                bad(name, vo->args[i].name, "listed twice");
    }
}

static void load(void)
{
    json_error_t err;
    json_t *list, *o, *s;
    size_t i;

    root = json_loads(ops_json, JSON_REJECT_DUPLICATES, &err);
    if (root == NULL) {
        fprintf(stderr, "mp-harness: the built-in ops.json:%d:%d: %s\n",
                err.line, err.column, err.text);
        exit(2);
    }
    json_array_foreach(json_object_get(root, "signals"), i, s)
        if (signal_by_name(json_string_value(s)) == 0)
            bad(NULL, NULL, "a signal this program cannot map");
    list = json_object_get(root, "ops");
    nops = json_array_size(list);
    ops = calloc(nops + 1, sizeof(*ops));
    if (ops == NULL || nops == 0)
        bad(NULL, NULL, "no ops, or out of memory");
    json_array_foreach(list, i, o)
        parse_op(&ops[i], o);
}

size_t vocab_count(void)
{
    if (root == NULL)
        load();
    return nops;
}

const struct vocab_op *vocab_at(size_t i)
{
    return i < vocab_count() ? &ops[i] : NULL;
}

const struct vocab_op *vocab_find(const char *op)
{
    for (size_t i = 0; op != NULL && i < vocab_count(); i++)
        if (strcmp(ops[i].op, op) == 0)
            return &ops[i];
    return NULL;
}

const struct vocab_arg *vocab_arg(const struct vocab_op *vo, const char *name)
{
    for (size_t i = 0; vo != NULL && i < vo->nargs; i++)
        if (strcmp(vo->args[i].name, name) == 0)
            return &vo->args[i];
    return NULL;
}

bool vocab_enum_has(const struct vocab_arg *a, const char *s)
{
    size_t i;
    json_t *e;

    json_array_foreach(a->enumv, i, e)
        if (s != NULL && strcmp(json_string_value(e), s) == 0)
            return true;
    return false;
}

static json_t *arg_json(const struct vocab_arg *a)
{
    json_t *o = json_object();

    json_object_set_new(o, "name", json_string(a->name));
    json_object_set_new(o, "type", types_json(a->types));
    json_object_set_new(o, "required", json_boolean(a->required));
    if (a->dflt != NULL)
        json_object_set(o, "default", a->dflt);
    if (a->has_min)
        json_object_set_new(o, "min", json_real(a->min));
    if (a->has_max)
        json_object_set_new(o, "max", json_real(a->max));
    if (a->enumv != NULL)
        json_object_set(o, "enum", a->enumv);
    if (a->object != NULL)
        json_object_set_new(o, "object", json_string(a->object));
    if (a->objects != NULL)
        json_object_set_new(o, "objects", json_string(a->objects));
    if (a->kinds != NULL)
        json_object_set(o, "kinds", a->kinds);
    if (a->items != NULL)
        json_object_set(o, "items", a->items);
    if (a->new_kind != NULL)
        json_object_set_new(o, "new", json_string(a->new_kind));
    if (a->length > 0)
        json_object_set_new(o, "length", json_integer((json_int_t)a->length));
    if (a->steps)
        json_object_set_new(o, "steps", json_true());
    if (a->event)
        json_object_set_new(o, "event", json_true());
    return o;
}

/* mp-harness ops [--json]: the vocabulary as this program understands it,
 * for scripts/test-vocab to compare with ops.json and the recorder. */
int vocab_command(int argc, char **argv)
{
    json_t *handlers = steps_handlers(), *out, *list, *extra, *e;
    size_t i;

    if (argc > 1 && strcmp(argv[1], "--json") != 0) {
        fputs("usage: mp-harness ops [--json]\n", stderr);
        return 2;
    }
    if (argc <= 1) {
        for (i = 0; i < vocab_count(); i++) {
            printf("%-20s", ops[i].op);
            for (size_t k = 0; k < ops[i].nargs; k++)
                printf(" %s%s%s", ops[i].args[k].required ? "" : "[",
                       ops[i].args[k].name,
                       ops[i].args[k].required ? "" : "]");
            printf("\n");
        }
        json_decref(handlers);
        return 0;
    }
    list = json_array();
    extra = json_array();
    for (i = 0; i < vocab_count(); i++) {
        const struct vocab_op *vo = &ops[i];
        json_t *o = json_object(), *args = json_array();
        bool has = false;
        size_t k;
        for (k = 0; k < vo->nargs; k++)
            json_array_append_new(args, arg_json(&vo->args[k]));
        json_array_foreach(handlers, k, e)
            has = has || strcmp(json_string_value(e), vo->op) == 0;
        json_object_set_new(o, "op", json_string(vo->op));
        json_object_set_new(o, "child", json_boolean(vo->child));
        json_object_set_new(o, "outcome", json_string(vo->outcome));
        json_object_set_new(o, "args", args);
        json_object_set_new(o, "implemented", json_boolean(has));
        json_array_append_new(list, o);
    }
    json_array_foreach(handlers, i, e)
        if (vocab_find(json_string_value(e)) == NULL)
            json_array_append(extra, e);
    out = json_pack("{s:o, s:o}", "ops", list, "unlisted", extra);
    json_dumpf(out, stdout, JSON_INDENT(1));
    printf("\n");
    json_decref(out);
    json_decref(handlers);
    return 0;
}
