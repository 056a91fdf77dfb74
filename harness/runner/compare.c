/*
 * compare.c - a run against its reference: every outcome of every process,
 * the main process's exit code, leftovers and output must be equal (after
 * the normalisation both sides apply); step durations must fall in the
 * windows the case declares.  Each difference becomes one readable line.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

static void diff(json_t *diffs, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void diff(json_t *diffs, const char *fmt, ...)
{
    char *s;
    va_list ap;

    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) >= 0) {
        json_array_append_new(diffs, json_string(s));
        free(s);
    }
    va_end(ap);
}

static char *text(json_t *v)
{
    return v != NULL ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY)
                     : strdup("nothing");
}

static void diff_values(json_t *diffs, const char *what, json_t *want,
                        json_t *got)
{
    char *w, *g;

    if (json_equal(want, got) || (want == NULL && got == NULL))
        return;
    w = text(want);
    g = text(got);
    diff(diffs, "%s: expected %s, got %s", what, w, g);
    free(w);
    free(g);
}

/* One process's outcome lists: values, then timing windows. */
static void compare_path(const struct hcase *c, const char *path,
                         json_t *want, json_t *got, json_t *diffs)
{
    json_t *steps = case_steps_for(c, path);
    size_t n = json_array_size(want) > json_array_size(got)
                   ? json_array_size(want) : json_array_size(got);

    for (size_t i = 0; i < n; i++) {
        json_t *step = json_array_get(steps, i);
        json_t *w = json_array_get(want, i), *g = json_array_get(got, i);
        json_t *gv = g != NULL ? json_deep_copy(g) : NULL;
        json_t *win = json_object_get(step, "duration");
        const char *op = json_string_value(json_object_get(step, "op"));
        char where[300];

        snprintf(where, sizeof(where), "%s[%zu] (%s)", path, i,
                 op != NULL ? op : "?");
        if (gv != NULL)
            json_object_del(gv, "t");
        diff_values(diffs, where, w, gv);
        json_decref(gv);
        if (g != NULL && win != NULL) {
            double t = json_number_value(json_object_get(g, "t"));
            double lo = json_number_value(json_array_get(win, 0));
            double hi = json_number_value(json_array_get(win, 1));
            if (t < lo || t > hi)
                diff(diffs, "%s: took %.3fs, outside the window [%g, %g]",
                     where, t, lo, hi);
        }
    }
}

/* gather: outcomes compared as a multiset (cases/README.md) */

/* Every gather name of a step list and of the step lists inside it. */
static void gather_names(json_t *steps, json_t *names)
{
    size_t i;
    json_t *step;

    json_array_foreach(steps, i, step) {
        json_t *g = json_object_get(step, "gather");
        if (g != NULL && json_object_get(names, json_string_value(g)) == NULL)
            json_object_set_new(names, json_string_value(g), json_array());
        if (json_is_array(json_object_get(step, "target")))
            gather_names(json_object_get(step, "target"), names);
    }
}

json_t *compare_gather(const struct hcase *c, json_t *outcomes)
{
    json_t *gathered = json_object(), *list;
    const char *path;

    gather_names(c->steps, gathered);
    if (json_object_size(gathered) == 0) {
        json_decref(gathered);
        return NULL;
    }
    json_object_foreach(outcomes, path, list) {
        json_t *steps = case_steps_for(c, path), *o;
        size_t i;
        json_array_foreach(list, i, o) {
            json_t *g = json_object_get(json_array_get(steps, i), "gather");
            json_t *moved, *mark;
            if (g == NULL)
                continue;
            moved = json_deep_copy(o);
            json_object_del(moved, "t");
            json_array_append_new(json_object_get(gathered,
                                                  json_string_value(g)),
                                  moved);
            /* the step's time stays, for its duration window */
            mark = json_pack("{s:O}", "gathered", g);
            if (json_object_get(o, "t") != NULL)
                json_object_set(mark, "t", json_object_get(o, "t"));
            json_array_set_new(list, i, mark);
        }
    }
    return gathered;
}

static int cmp_text(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A list of outcomes as sorted JSON texts, one string: the same items in
 * any order give the same text. */
static char *multiset_text(json_t *list)
{
    size_t n = json_array_size(list), len = 3, i;
    char **items = calloc(n > 0 ? n : 1, sizeof(*items)), *text, *end;

    if (items == NULL)
        return NULL;
    for (i = 0; i < n; i++) {
        items[i] = json_dumps(json_array_get(list, i),
                              JSON_SORT_KEYS | JSON_COMPACT);
        len += (items[i] != NULL ? strlen(items[i]) : 0) + 1;
    }
    qsort(items, n, sizeof(*items), cmp_text);
    end = text = malloc(len);
    if (text != NULL) {
        *end++ = '[';
        for (i = 0; i < n; i++)
            end += sprintf(end, "%s%s", i > 0 ? "," : "",
                           items[i] != NULL ? items[i] : "");
        strcpy(end, "]");
    }
    for (i = 0; i < n; i++)
        free(items[i]);
    free(items);
    return text;
}

static void diff_gathered(json_t *diffs, json_t *want, json_t *got)
{
    json_t *names = json_object(), *v;
    const char *name;

    if (want != NULL)
        json_object_update(names, want);
    if (got != NULL)
        json_object_update_missing(names, got);
    json_object_foreach(names, name, v) {
        char *w = multiset_text(json_object_get(want, name));
        char *g = multiset_text(json_object_get(got, name));
        if (w == NULL || g == NULL || strcmp(w, g) != 0)
            diff(diffs, "gathered %s (in any order): expected %s, got %s",
                 name, w != NULL ? w : "?", g != NULL ? g : "?");
        free(w);
        free(g);
    }
    json_decref(names);
}

int compare_run(const struct hcase *c, const struct run *r, json_t *ref,
                json_t *diffs)
{
    json_t *want = json_object_get(ref, "outcomes"), *got = r->outcomes;
    json_t *paths = json_array(), *v, *actual;
    const char *path;
    size_t before = json_array_size(diffs), i;

    actual = json_integer(r->exit_code);
    diff_values(diffs, "exit code of the main process",
                json_object_get(ref, "exit"), actual);
    json_decref(actual);
    /* Every path either side has, in sorted order. */
    json_object_foreach(want, path, v)
        json_array_append_new(paths, json_string(path));
    json_object_foreach(got, path, v)
        if (json_object_get(want, path) == NULL)
            json_array_append_new(paths, json_string(path));
    json_array_foreach(paths, i, v) {
        const char *p = json_string_value(v);
        compare_path(c, p, json_object_get(want, p), json_object_get(got, p),
                     diffs);
    }
    json_decref(paths);
    diff_gathered(diffs, json_object_get(ref, "gathered"), r->gathered);
    diff_values(diffs, "leftover", json_object_get(ref, "leftover"),
                r->leftover);
    diff_values(diffs, "stdout", json_object_get(ref, "stdout"), r->out[0]);
    diff_values(diffs, "stderr", json_object_get(ref, "stderr"), r->out[1]);
    return (int)(json_array_size(diffs) - before);
}
