/*
 * norm.c - normalising what processes print, and repr strings, so that
 * CPython's and libmp's compare (cases/README.md, "Normalising"; the Python
 * twin is normalise_output() in scripts/record_reference.py): traceback
 * frames and blank lines go, pids and addresses become placeholders, bytes
 * that are not UTF-8 become \xNN as Python's "backslashreplace" writes them.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

/* Length of the valid UTF-8 sequence at s (of `avail` bytes), or 0.  The
 * second byte's range is the lead byte's, as in CPython's decoder (and RFC
 * 3629): E0 and F0 refuse overlong forms, ED the surrogates D800-DFFF, F4
 * anything past U+10FFFF; jansson refuses all of these too. */
static size_t utf8_len(const unsigned char *s, size_t avail)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (avail == 0)
        return 0;
    if (s[0] < 0x80)
        return 1;
    if (s[0] >= 0xc2 && s[0] <= 0xdf)
        n = 2;
    else if (s[0] >= 0xe0 && s[0] <= 0xef)
        n = 3;
    else if (s[0] >= 0xf0 && s[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xe0)
        lo = 0xa0;
    else if (s[0] == 0xed)
        hi = 0x9f;
    else if (s[0] == 0xf0)
        lo = 0x90;
    else if (s[0] == 0xf4)
        hi = 0x8f;
    if (n > avail || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* If s starts with prefix and one or more `is` characters: their count. */
static size_t run_after(const char *s, const char *prefix, int (*is)(int))
{
    size_t p = strlen(prefix), n = 0;

    if (strncmp(s, prefix, p) != 0)
        return 0;
    while (is((unsigned char)s[p + n]))
        n++;
    return n > 0 ? p + n : 0;
}

char *utf8_text(const char *s, size_t n, size_t *out_len)
{
    const char *end = s + n;
    char *out;
    size_t len;
    FILE *f = open_memstream(&out, &len);

    while (s < end) {
        size_t u = utf8_len((const unsigned char *)s, (size_t)(end - s));
        if (u != 0) {
            fwrite(s, 1, u, f);
            s += u;
        } else {
            fprintf(f, "\\x%02x", (unsigned char)*s++);
        }
    }
    fclose(f);
    *out_len = len;
    return out;
}

char *norm_line(const char *s)
{
    const char *c;
    char *out;
    size_t len;
    FILE *f;

    if (strcmp(s, "Traceback (most recent call last):") == 0 ||
        strncmp(s, "  ", 2) == 0)
        return NULL;
    for (c = s; *c == ' ' || *c == '^' || *c == '~'; c++)
        ;
    if (*c == '\0') /* blank, or a caret line */
        return NULL;
    f = open_memstream(&out, &len);
    while (*s) {
        size_t n, u;
        if ((n = run_after(s, "pid=", isdigit)) != 0) {
            fputs("pid=N", f);
        } else if ((n = run_after(s, "parent=", isdigit)) != 0) {
            fputs("parent=N", f);
        } else if ((n = run_after(s, "0x", isxdigit)) != 0) {
            fputs("0xADDR", f);
        } else if ((u = utf8_len((const unsigned char *)s,
                                 strnlen(s, 4))) != 0) {
            fwrite(s, 1, u, f);
            n = u;
        } else {
            fprintf(f, "\\x%02x", (unsigned char)*s);
            n = 1;
        }
        s += n;
    }
    fclose(f);
    return out;
}

static int cmp_json_str(const void *a, const void *b)
{
    return strcmp(json_string_value(*(json_t *const *)a),
                  json_string_value(*(json_t *const *)b));
}

json_t *norm_output(const char *text, const char *mode)
{
    json_t **v = NULL, *lines;
    char *copy, *line, *next;
    size_t n = 0, cap = 0;

    if (strcmp(mode, "ignore") == 0)
        return json_null();
    copy = strdup(text != NULL ? text : "");
    for (line = copy; line != NULL && *line != '\0'; line = next) {
        char *norm;
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        if ((norm = norm_line(line)) == NULL)
            continue;
        if (n == cap && (v = realloc(v, (cap = cap ? 2 * cap : 16) *
                                            sizeof(*v))) == NULL)
            abort();
        v[n++] = json_string(norm);
        free(norm);
    }
    free(copy);
    if (strcmp(mode, "lines") == 0 && n > 1)
        qsort(v, n, sizeof(*v), cmp_json_str);
    lines = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(lines, v[i]);
    free(v);
    return lines;
}

char *bytes_repr(const void *data, size_t n)
{
    const unsigned char *s = data;
    char *out = malloc(4 * n + 4), *o = out, quote = '\'';

    if (out == NULL)
        return NULL;
    /* Python's choice: double quotes only when that saves escaping. */
    if (memchr(s, '\'', n) != NULL && memchr(s, '"', n) == NULL)
        quote = '"';
    *o++ = 'b';
    *o++ = quote;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == (unsigned char)quote || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c == '\t' || c == '\n' || c == '\r') {
            *o++ = '\\';
            *o++ = c == '\t' ? 't' : c == '\n' ? 'n' : 'r';
        } else if (c < ' ' || c >= 0x7f) {
            o += sprintf(o, "\\x%02x", c);
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = quote;
    *o = '\0';
    return out;
}
