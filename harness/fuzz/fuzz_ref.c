/*
 * fuzz_ref.c - fuzz target: a reference file's bytes, as mp-harness loads
 * them (harness/runner/ref.c through ref_load_text(): jansson, the shape
 * check, and the walk over the text that places an error at its line and
 * column).
 *
 * The case id is the file's own "case" when it is a string, so the check
 * goes past that key; an input of odd length uses a fixed id instead, so
 * the mismatch is reached too.  Besides the sanitizers it checks that a
 * reference jansson can read but the check refuses has a message whose
 * line and column, which ref.c finds itself, point at a key or a value.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

#define FILE_NAME "reference/fuzz/input.json"

/* Whether line:col (1-based, col counting UTF-8 characters) is the start
 * of a key or a value in text: what an error names is one of them. */
static int at_token(const char *text, size_t len, int line, int col)
{
    size_t i = 0;

    for (int l = 1; l < line; l++) {
        const char *nl = memchr(text + i, '\n', len - i);
        if (nl == NULL)
            return 0;
        i = (size_t)(nl - text) + 1;
    }
    for (int k = 1; k < col; k++) {
        if (i >= len || text[i] == '\n')
            return 0;
        do
            i++;
        while (i < len && ((unsigned char)text[i] & 0xc0) == 0x80);
    }
    return i < len && strchr("\"{[-0123456789tfn", text[i]) != NULL &&
           text[i] != '\0';
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    json_t *doc = json_loadb(text, size,
                             JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, NULL);
    const char *id = json_string_value(json_object_get(doc, "case"));
    char *why = NULL, *copy;
    bool parsed = doc != NULL;
    int line, col;
    json_t *root;

    if (id == NULL || size % 2 == 1)
        id = "fuzz/input";
    copy = strdup(id); /* doc goes before the check ends */
    json_decref(doc);
    root = ref_load_text(FILE_NAME, copy, text, size, &why);
    if ((root == NULL) == (why == NULL))
        abort(); /* a reference, or why there is none */
    if (why != NULL && parsed) {
        if (sscanf(why, "unusable reference " FILE_NAME ":%d:%d:", &line,
                   &col) != 2 || !at_token(text, size, line, col))
            abort();
    }
    json_decref(root);
    free(why);
    free(copy);
    return 0;
}
