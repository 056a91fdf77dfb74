/*
 * ref.c - loading and validating reference files (cases/README.md, "A
 * reference file"; scripts/record_reference.py's write_reference() writes
 * them).
 *
 * A reference is checked before it is compared with anything: duplicate
 * keys, unknown keys and values of the wrong type make it unusable, and the
 * error names the file, the line and column of the offending key or value,
 * and its key path ("methods.fork.exit").  jansson gives positions for
 * syntax errors only, so a type error is placed by walking the file's text
 * again to the value's position: with duplicates refused, an object's n-th
 * member in the text is the n-th jansson holds (jansson keeps keys in the
 * order they were read).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

#define REF_DEPTH 8

struct rv {
    const char *text;
    size_t len;
    int path[REF_DEPTH]; /* a member's or an element's ordinal, each level */
    int depth;
    bool at_key;     /* point at the last member's key, not its value */
    char keys[512];  /* the same path, readable */
    char msg[256];
};

/* position: walking well-formed JSON text (jansson has parsed it) */

static size_t skip_ws(const char *t, size_t len, size_t i)
{
    while (i < len && (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' ||
                       t[i] == '\r'))
        i++;
    return i;
}

/* Whether c ends a number or a literal.  A NUL does not: jansson takes
 * one right after a number or a literal (it reads as the end of its
 * look-ahead), so the walk steps over it as part of the token, where it
 * used to stop for good. */
static bool ends_token(char c)
{
    return c != '\0' && strchr(" \t\r\n,:]}", c) != NULL;
}

static size_t skip_value(const char *t, size_t len, size_t i)
{
    int nest = 0;

    do {
        i = skip_ws(t, len, i);
        if (i >= len)
            return len;
        if (t[i] == '"') {
            for (i++; i < len && t[i] != '"'; i++)
                if (t[i] == '\\')
                    i++;
            i++;
        } else if (t[i] == '{' || t[i] == '[') {
            nest++;
            i++;
        } else if (t[i] == '}' || t[i] == ']') {
            nest--;
            i++;
        } else if (t[i] == ',' || t[i] == ':') {
            i++;
        } else { /* a number or a literal */
            while (i < len && !ends_token(t[i]))
                i++;
        }
    } while (nest > 0 && i < len);
    return i;
}

/* The byte offset of what v->path names. */
static size_t locate(const struct rv *v)
{
    const char *t = v->text;
    size_t i = skip_ws(t, v->len, 0);

    for (int d = 0; d < v->depth && i < v->len; d++) {
        bool object = t[i] == '{';
        i++;
        for (int k = 0;; k++) {
            size_t key = skip_ws(t, v->len, i);
            if (object) /* the key, then ':' */
                i = skip_ws(t, v->len, skip_value(t, v->len, key)) + 1;
            if (k == v->path[d]) {
                if (object && v->at_key && d == v->depth - 1)
                    return key;
                i = skip_ws(t, v->len, i);
                break;
            }
            i = skip_ws(t, v->len, skip_value(t, v->len, i)) + 1; /* ',' */
            if (i >= v->len)
                return v->len;
        }
    }
    return i;
}

/* jansson's line and column: 1-based, the column counting characters. */
static void line_col(const char *t, size_t pos, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos; i++) {
        if (t[i] == '\n') {
            ++*line;
            *col = 1;
        } else if (((unsigned char)t[i] & 0xc0) != 0x80) {
            ++*col;
        }
    }
}

/* validation */

static bool fail(struct rv *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool fail(struct rv *v, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
    va_end(ap);
    return false;
}

/* Enters member `ordinal` (key `key`) or element `ordinal` (key NULL). */
static void push(struct rv *v, int ordinal, const char *key)
{
    size_t n = strlen(v->keys);

    if (v->depth < REF_DEPTH)
        v->path[v->depth] = ordinal;
    v->depth++;
    if (key != NULL)
        snprintf(v->keys + n, sizeof(v->keys) - n, "%s%s", n > 0 ? "." : "",
                 key);
    else
        snprintf(v->keys + n, sizeof(v->keys) - n, "[%d]", ordinal);
}

static void pop(struct rv *v)
{
    char *dot = strrchr(v->keys, '.'), *br = strrchr(v->keys, '[');
    char *cut = dot > br ? dot : br;

    v->depth--;
    if (cut == NULL)
        cut = v->keys;
    *cut = '\0';
}

static bool check_strings(struct rv *v, json_t *list, bool or_null)
{
    size_t i;
    json_t *e;

    if (or_null && json_is_null(list))
        return true;
    if (!json_is_array(list))
        return fail(v, "must be a list of strings%s",
                    or_null ? ", or null" : "");
    json_array_foreach(list, i, e) {
        if (!json_is_string(e)) {
            push(v, (int)i, NULL);
            return fail(v, "must be a string");
        }
    }
    return true;
}

/* One process's outcomes: {"value": any} or {"raises": "Name: text"};
 * in a process's list, also {"gathered": "name"}. */
static bool check_outcomes(struct rv *v, json_t *list, bool marks)
{
    size_t i;
    json_t *o;

    if (!json_is_array(list))
        return fail(v, "must be a list of outcomes");
    json_array_foreach(list, i, o) {
        json_t *raises = json_object_get(o, "raises");
        json_t *mark = marks ? json_object_get(o, "gathered") : NULL;
        push(v, (int)i, NULL);
        if (!json_is_object(o) || json_object_size(o) != 1 ||
            (json_object_get(o, "value") == NULL && raises == NULL &&
             mark == NULL))
            return fail(v, marks ? "an outcome must be {\"value\": ...}, "
                        "{\"raises\": \"...\"} or {\"gathered\": \"...\"}"
                        : "an outcome must be {\"value\": ...} or "
                        "{\"raises\": \"...\"}");
        if ((raises != NULL && !json_is_string(raises)) ||
            (mark != NULL && !json_is_string(mark))) {
            push(v, 0, raises != NULL ? "raises" : "gathered");
            return fail(v, "must be a string");
        }
        pop(v);
    }
    return true;
}

static bool check_method(struct rv *v, json_t *m)
{
    static const char *const keys[] = { "exit", "outcomes", "leftover",
                                        "stdout", "stderr" };
    const char *key;
    json_t *val;
    int k = 0;

    if (!json_is_object(m))
        return fail(v, "must be an object");
    json_object_foreach(m, key, val) {
        bool ok = true;
        push(v, k++, key);
        if (strcmp(key, "exit") == 0) {
            if (!json_is_integer(val))
                ok = fail(v, "must be an integer");
        } else if (strcmp(key, "outcomes") == 0) {
            const char *path;
            json_t *list;
            int p = 0;
            if (!json_is_object(val))
                return fail(v, "must be an object of outcome lists");
            json_object_foreach(val, path, list) {
                push(v, p++, path);
                if (!check_outcomes(v, list, true))
                    return false;
                pop(v);
            }
        } else if (strcmp(key, "gathered") == 0) {
            const char *name;
            json_t *list;
            int p = 0;
            if (!json_is_object(val))
                return fail(v, "must be an object of outcome lists");
            json_object_foreach(val, name, list) {
                push(v, p++, name);
                if (!check_outcomes(v, list, false))
                    return false;
                pop(v);
            }
        } else if (strcmp(key, "leftover") == 0) {
            ok = check_strings(v, val, false);
        } else if (strcmp(key, "stdout") == 0 || strcmp(key, "stderr") == 0) {
            ok = check_strings(v, val, true);
        } else {
            v->at_key = true;
            return fail(v, "unknown key");
        }
        if (!ok)
            return false;
        pop(v);
    }
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (json_object_get(m, keys[i]) == NULL)
            return fail(v, "\"%s\" is missing", keys[i]);
    return true;
}

static bool check_ref(struct rv *v, json_t *root, const char *id)
{
    static const char *const strings[] = { "case", "implementation", "python",
                                           "platform", "recorded" };
    const char *key;
    json_t *val;
    int k = 0;

    if (!json_is_object(root))
        return fail(v, "the file must hold a JSON object");
    json_object_foreach(root, key, val) {
        bool known = strcmp(key, "methods") == 0;
        push(v, k++, key);
        for (size_t i = 0; !known && i < sizeof(strings) / sizeof(*strings);
             i++)
            known = strcmp(key, strings[i]) == 0;
        if (!known) {
            v->at_key = true;
            return fail(v, "unknown key");
        }
        if (strcmp(key, "methods") != 0 && !json_is_string(val))
            return fail(v, "must be a string");
        if (strcmp(key, "case") == 0 && strcmp(json_string_value(val), id) != 0)
            return fail(v, "is \"%s\", not this case's id \"%s\"",
                        json_string_value(val), id);
        if (strcmp(key, "methods") == 0) {
            const char *name;
            json_t *m;
            int n = 0;
            if (!json_is_object(val))
                return fail(v, "must be an object");
            json_object_foreach(val, name, m) {
                push(v, n++, name);
                if (method_index(name) < 0) {
                    v->at_key = true;
                    return fail(v, "unknown start method");
                }
                if (!check_method(v, m))
                    return false;
                pop(v);
            }
        }
        pop(v);
    }
    for (size_t i = 0; i < sizeof(strings) / sizeof(*strings); i++)
        if (json_object_get(root, strings[i]) == NULL)
            return fail(v, "\"%s\" is missing", strings[i]);
    if (json_object_get(root, "methods") == NULL)
        return fail(v, "\"methods\" is missing");
    return true;
}

static char *slurp(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb"), *m;
    char *buf = NULL, chunk[8192];
    size_t n;

    if (f == NULL)
        return NULL;
    m = open_memstream(&buf, len);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(m);
    fclose(f);
    return buf;
}

json_t *ref_load_text(const char *file, const char *id, const char *text,
                      size_t len, char **why)
{
    struct rv v = { .text = text, .len = len };
    json_error_t err;
    json_t *root;
    int line, col, r = 0;

    *why = NULL;
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                      &err);
    if (root == NULL) {
        r = asprintf(why, "unusable reference %s:%d:%d: %s", file, err.line,
                     err.column, err.text);
    } else if (!check_ref(&v, root, id)) {
        line_col(text, v.depth <= REF_DEPTH ? locate(&v) : 0, &line, &col);
        r = asprintf(why, "unusable reference %s:%d:%d: %s: %s", file, line,
                     col, v.keys[0] != '\0' ? v.keys : "(top)", v.msg);
        root = (json_decref(root), NULL);
    }
    if (r < 0)
        *why = NULL;
    return root;
}

json_t *ref_load(const char *dir, const char *id, const char *case_file,
                 char **why)
{
    char file[4096], *text;
    json_t *root;
    size_t len;

    *why = NULL;
    snprintf(file, sizeof(file), "%s/%s.json", dir, id);
    text = slurp(file, &len);
    if (text == NULL) {
        if (asprintf(why, "no reference %s (record it into %s: "
                     "scripts/record_reference.py --out %s %s, run by the "
                     "CPython %s is for)", file, dir, dir, case_file, dir) < 0)
            *why = NULL;
        return NULL;
    }
    root = ref_load_text(file, id, text, len, why);
    free(text);
    return root;
}
