/*
 * fuzz_case.c - fuzz target: a case file's bytes, as mp-harness loads them
 * (harness/runner/case.c through case_load_text(): jansson, then the
 * validator against the built-in vocabulary), then what the interpreter
 * asks of a valid case (each child's steps by path) and str() of the
 * parsed document (pyrepr.c, as sys.exit(obj) prints a case's value).
 *
 * Besides the sanitizers it checks the loader's promises: a case is either
 * an error naming the file or fully usable (steps, methods, timeout, output
 * modes, events that are names).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runner.h"

#define FILE_NAME "cases/fuzz/input.json"

/* Every step list reachable through processes' and threads' "as" names,
 * as exec.c and steps.c ask for them ("p", "p.q", ...). */
static void walk(const struct hcase *c, json_t *steps, char *path,
                 size_t len, int depth)
{
    size_t i;
    json_t *step;

    if (depth > 8)
        return;
    json_array_foreach(steps, i, step) {
        const char *as = json_string_value(json_object_get(step, "as"));
        json_t *target = json_object_get(step, "target");
        size_t n;
        if (as == NULL || !json_is_array(target))
            continue;
        n = strlen(as);
        if (len + n + 2 > 1024)
            continue;
        if (len > 0)
            path[len] = '.';
        memcpy(path + len + (len > 0), as, n + 1);
        if (case_steps_for(c, path) == NULL)
            abort(); /* a validated child's steps must be found */
        walk(c, target, path, len + (len > 0) + n, depth + 1);
        path[len] = '\0';
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct hcase *c = case_load_text(FILE_NAME, (const char *)data, size);
    char path[1024] = "";
    size_t i, len;
    json_t *e;

    if (c->root != NULL) {
        char *s = pyrepr_str(c->root, &len);
        if (s == NULL)
            abort();
        free(s);
    }
    if (c->error != NULL) {
        if (strncmp(c->error, FILE_NAME, strlen(FILE_NAME)) != 0)
            abort(); /* every error names its file */
    } else {
        if (!json_is_array(c->steps) || json_array_size(c->steps) == 0 ||
            c->methods == 0 || !(c->timeout > 0) || c->out_mode[0] == NULL ||
            c->out_mode[1] == NULL || case_steps_for(c, "main") != c->steps)
            abort();
        json_array_foreach(c->events, i, e)
            if (!json_is_string(e) || json_string_length(e) == 0)
                abort();
        walk(c, c->steps, path, 0, 0);
    }
    case_free(c);
    return 0;
}
