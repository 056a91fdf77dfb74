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
    diff_values(diffs, "leftover", json_object_get(ref, "leftover"),
                r->leftover);
    diff_values(diffs, "stdout", json_object_get(ref, "stdout"), r->out[0]);
    diff_values(diffs, "stderr", json_object_get(ref, "stderr"), r->out[1]);
    return (int)(json_array_size(diffs) - before);
}
