/*
 * fuzz_norm.c - fuzz target: bytes a run's processes print, and the bytes
 * a recv_bytes or get step returns, as mp-harness normalises them
 * (harness/runner/norm.c): norm_output_n() in each output mode, as exec.c
 * reads a run's stdout and stderr; utf8_text(), as steps.c turns a message
 * into text; bytes_repr(), as BufferTooShort's message is written;
 * norm_line(), as an exception's text is.
 *
 * Besides the sanitizers it checks what the callers rely on: every text is
 * UTF-8 that jansson accepts (json_stringn() would otherwise give NULL),
 * valid UTF-8 comes through utf8_text() unchanged, "lines" are sorted, and
 * a bytes repr is printable ASCII in quotes of at most 4 bytes an input
 * byte.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

static void check_lines(json_t *lines, const char *mode)
{
    size_t i;
    json_t *e, *prev = NULL;

    if (strcmp(mode, "ignore") == 0) {
        if (!json_is_null(lines))
            abort();
        return;
    }
    if (!json_is_array(lines))
        abort();
    json_array_foreach(lines, i, e) {
        if (!json_is_string(e) || json_string_length(e) == 0)
            abort();
        if (strcmp(mode, "lines") == 0 && prev != NULL) {
            size_t a = json_string_length(prev), b = json_string_length(e);
            int r = memcmp(json_string_value(prev), json_string_value(e),
                           a < b ? a : b);
            if (r > 0 || (r == 0 && a > b))
                abort();
        }
        prev = e;
    }
}

static void check_repr(const char *r, size_t n)
{
    size_t len = strlen(r);

    if (len < 3 || len > 4 * n + 3 || r[0] != 'b' ||
        (r[1] != '\'' && r[1] != '"') || r[len - 1] != r[1])
        abort();
    for (size_t i = 0; i < len; i++)
        if (r[i] < ' ' || r[i] > '~')
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const modes[] = { "exact", "lines", "ignore" };
    const char *s = (const char *)data;
    char *text, *copy, *line;
    size_t len;
    json_t *v;

    for (int m = 0; m < 3; m++) {
        v = norm_output_n(s, size, modes[m]);
        check_lines(v, modes[m]);
        json_decref(v);
    }

    text = utf8_text(s, size, &len);
    if (text == NULL || (v = json_stringn(text, len)) == NULL)
        abort();
    json_decref(v);
    if ((v = json_stringn(s, size)) != NULL &&
        (len != size || memcmp(text, s, size) != 0))
        abort(); /* valid UTF-8 must come through as it is */
    json_decref(v);
    free(text);

    text = bytes_repr(s, size);
    if (text == NULL)
        abort();
    check_repr(text, size);
    free(text);

    /* An exception's text is a C string: up to the first NUL. */
    if ((copy = malloc(size + 1)) == NULL)
        abort();
    memcpy(copy, s, size);
    copy[size] = '\0';
    line = norm_line(copy);
    if (line != NULL && (v = json_string(line)) == NULL)
        abort();
    if (line != NULL)
        json_decref(v);
    free(line);
    free(copy);
    return 0;
}
