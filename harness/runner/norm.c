/*
 * norm.c - normalising what processes print, and repr strings, so that
 * CPython's and libmp's compare (cases/README.md, "Normalising"; the Python
 * twin is normalise_output() in scripts/record_reference.py): traceback
 * frames and blank lines go, pids and addresses become placeholders, bytes
 * that are not UTF-8 become \xNN as Python's "backslashreplace" writes them,
 * and the random part of a SharedMemory name (psm_<hex>) a placeholder.
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

/* If s (of `avail` bytes) starts with prefix and one or more `is`
 * characters: their count. */
static size_t run_after(const char *s, size_t avail, const char *prefix,
                        int (*is)(int))
{
    size_t p = strlen(prefix), n = 0;

    if (avail < p || memcmp(s, prefix, p) != 0)
        return 0;
    while (p + n < avail && is((unsigned char)s[p + n]))
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

/* One line of `size` bytes (NULs are characters, as in Python's str),
 * normalised; NULL when the rules drop it. */
static char *norm_text(const char *s, size_t size, size_t *out_len)
{
    static const char tb[] = "Traceback (most recent call last):";
    const char *c, *end = s + size;
    char *out;
    size_t len;
    FILE *f;

    if ((size == sizeof(tb) - 1 && memcmp(s, tb, size) == 0) ||
        (size >= 2 && memcmp(s, "  ", 2) == 0))
        return NULL;
    for (c = s; c < end && (*c == ' ' || *c == '^' || *c == '~'); c++)
        ;
    if (c == end) /* blank, or a caret line */
        return NULL;
    f = open_memstream(&out, &len);
    while (s < end) {
        size_t n, u, avail = (size_t)(end - s);
        if ((n = run_after(s, avail, "pid=", isdigit)) != 0) {
            fputs("pid=N", f);
        } else if ((n = run_after(s, avail, "parent=", isdigit)) != 0) {
            fputs("parent=N", f);
        } else if ((n = run_after(s, avail, "0x", isxdigit)) != 0) {
            fputs("0xADDR", f);
        } else if ((n = run_after(s, avail, "psm_", isxdigit)) != 0) {
            fputs("psm_N", f); /* a SharedMemory name made at random */
        } else if ((u = utf8_len((const unsigned char *)s, avail)) != 0) {
            fwrite(s, 1, u, f);
            n = u;
        } else {
            fprintf(f, "\\x%02x", (unsigned char)*s);
            n = 1;
        }
        s += n;
    }
    fclose(f);
    *out_len = len;
    return out;
}

char *norm_line(const char *s)
{
    size_t len;

    return norm_text(s, strlen(s), &len);
}

/* Python's sorted() on str: by code point, which UTF-8's bytes keep; a
 * NUL is a character like any other. */
static int cmp_json_str(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    size_t nx = json_string_length(x), ny = json_string_length(y);
    int r = memcmp(json_string_value(x), json_string_value(y),
                   nx < ny ? nx : ny);

    return r != 0 ? r : (nx > ny) - (nx < ny);
}

json_t *norm_output(const char *text, const char *mode)
{
    return norm_output_n(text, text != NULL ? strlen(text) : 0, mode);
}

json_t *norm_output_n(const char *text, size_t size, const char *mode)
{
    json_t **v = NULL, *lines;
    const char *line, *end = text + size, *next;
    size_t n = 0, cap = 0;

    if (strcmp(mode, "ignore") == 0)
        return json_null();
    for (line = text; size > 0 && line < end; line = next) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len;
        char *norm;
        next = nl != NULL ? nl + 1 : end;
        if ((norm = norm_text(line, (size_t)((nl != NULL ? nl : end) - line),
                              &len)) == NULL)
            continue;
        if (n == cap && (v = realloc(v, (cap = cap ? 2 * cap : 16) *
                                            sizeof(*v))) == NULL)
            abort();
        v[n++] = json_stringn(norm, len);
        free(norm);
    }
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
