/*
 * norm.c - normalising what processes print, and repr strings, so that
 * CPython's and libmp's compare (cases/README.md, "Normalising"): traceback
 * frames go, pids and addresses become placeholders.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

/* Replaces every `prefix` followed by one or more characters of `set` with
 * `prefix` + `with`. */
static void replace_runs(char *s, const char *prefix, int (*is)(int),
                         const char *with)
{
    size_t plen = strlen(prefix), wlen = strlen(with);
    char *p = s;

    while ((p = strstr(p, prefix)) != NULL) {
        char *q = p + plen, *r = q;
        while (*r && is((unsigned char)*r))
            r++;
        if (r == q) {
            p = q;
            continue;
        }
        if ((size_t)(r - q) >= wlen) { /* the text never grows */
            memcpy(q, with, wlen);
            memmove(q + wlen, r, strlen(r) + 1);
            p = q + wlen;
        } else {
            p = r;
        }
    }
}

bool norm_line(char *s)
{
    const char *c;

    if (strcmp(s, "Traceback (most recent call last):") == 0)
        return false;
    if (s[0] == ' ' && s[1] == ' ')
        return false;
    for (c = s; *c == ' ' || *c == '^' || *c == '~'; c++)
        ;
    if (*c == '\0' && c != s)
        return false;
    replace_runs(s, "pid=", isdigit, "N");
    replace_runs(s, "parent=", isdigit, "N");
    replace_runs(s, "0x", isxdigit, "ADDR");
    return true;
}

static int cmp_json_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a),
                  json_string_value(*(json_t *const *)b));
}

json_t *norm_output(const char *text, const char *mode)
{
    json_t *lines, *sorted;
    char *copy, *line, *next;
    size_t n;

    if (strcmp(mode, "ignore") == 0)
        return json_null();
    lines = json_array();
    copy = strdup(text != NULL ? text : "");
    for (line = copy; line != NULL && *line != '\0'; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if (norm_line(line))
            json_array_append_new(lines, json_string(line));
    }
    free(copy);
    if (strcmp(mode, "lines") != 0 || (n = json_array_size(lines)) < 2)
        return lines;
    {
        json_t **v = malloc(n * sizeof(*v));
        for (size_t i = 0; i < n; i++)
            v[i] = json_incref(json_array_get(lines, i));
        qsort(v, n, sizeof(*v), cmp_json_str);
        sorted = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(sorted, v[i]);
        free(v);
    }
    json_decref(lines);
    return sorted;
}
