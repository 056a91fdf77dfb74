/*
 * test_harness.c - the conformance harness's own parts: normalising output
 * (norm.c) and validating case files (case.c).
 */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "runner.h"

static char *write_case(const char *text)
{
    static char path[128];
    FILE *f;

    snprintf(path, sizeof(path), "/tmp/test-harness-%ld", (long)getpid());
    mkdir(path, 0700);
    strcat(path, "/cases");
    mkdir(path, 0700);
    strcat(path, "/t");
    mkdir(path, 0700);
    strcat(path, "/case.json");
    f = fopen(path, "w");
    ASSERT_TRUE(f != NULL);
    fputs(text, f);
    fclose(f);
    return path;
}

/* Loads text as a case; returns its error ("" when valid). */
static char *case_error(const char *text)
{
    static char err[512];
    char *path = write_case(text);
    struct hcase *c = case_load(path);

    snprintf(err, sizeof(err), "%s", c->error != NULL ? c->error : "");
    case_free(c);
    unlink(path);
    return err;
}

#define ASSERT_CONTAINS(needle, hay)                                          \
    do {                                                                      \
        if (strstr((hay), (needle)) == NULL)                                  \
            check_fail(__FILE__, __LINE__, "\"%s\" not in \"%s\"", (needle),  \
                       (hay));                                                \
    } while (0)

static void assert_norm(const char *in, const char *want, int line)
{
    char *got = norm_line(in);

    if ((want == NULL) != (got == NULL) ||
        (want != NULL && strcmp(want, got) != 0))
        check_fail(__FILE__, line, "norm_line(\"%s\") = %s%s%s, expected %s",
                   in, got ? "\"" : "", got ? got : "NULL", got ? "\"" : "",
                   want ? want : "NULL");
    free(got);
}

TEST(norm_drops_traceback_noise_and_masks_pids)
{
    assert_norm("Traceback (most recent call last):", NULL, __LINE__);
    assert_norm("  File \"x.py\", line 3, in f", NULL, __LINE__);
    assert_norm("    ^^^^^^^^", NULL, __LINE__);
    assert_norm("", NULL, __LINE__);
    assert_norm("   ", NULL, __LINE__);
    assert_norm("<Process name='Process-1' pid=12345 parent=12000 started>",
                "<Process name='Process-1' pid=N parent=N started>", __LINE__);
    assert_norm("parent=None pid=", "parent=None pid=", __LINE__);
    assert_norm("at 0x7f3a2b1c0d90>", "at 0xADDR>", __LINE__);
    assert_norm("0x1 0xg", "0xADDR 0xg", __LINE__); /* it may grow */
    assert_norm("ValueError: boom", "ValueError: boom", __LINE__);
    assert_norm("caf\xc3\xa9 \xff", "caf\xc3\xa9 \\xff", __LINE__);
}

TEST(norm_output_modes)
{
    const char *text = "Process Process-1:\nTraceback (most recent call "
                       "last):\n  File \"a\", line 1\nValueError: boom\nb\na\n";
    json_t *lines = norm_output(text, "lines");
    json_t *exact = norm_output(text, "exact");
    json_t *ignore = norm_output(text, "ignore");
    char *l = json_dumps(lines, JSON_COMPACT);
    char *x = json_dumps(exact, JSON_COMPACT);

    ASSERT_STREQ("[\"Process Process-1:\",\"ValueError: boom\",\"a\",\"b\"]",
                 l);
    ASSERT_STREQ("[\"Process Process-1:\",\"ValueError: boom\",\"b\",\"a\"]",
                 x);
    ASSERT_TRUE(json_is_null(ignore));
    free(l);
    free(x);
    json_decref(lines);
    json_decref(exact);
}

TEST(valid_case_loads)
{
    char *path = write_case(
        "{\"about\": \"x\", \"methods\": [\"fork\", \"spawn\"],"
        " \"xfail\": {\"reason\": \"why\", \"methods\": [\"spawn\"]},"
        " \"steps\": [{\"op\": \"process\", \"as\": \"p\", \"target\": ["
        "   {\"op\": \"event\", \"name\": \"go\"},"
        "   {\"op\": \"process\", \"as\": \"q\"},"
        "   {\"op\": \"start\", \"proc\": \"q\"}]},"
        "  {\"op\": \"wait_event\", \"name\": \"go\"},"
        "  {\"op\": \"join\", \"proc\": \"p\", \"timeout\": -1,"
        "   \"duration\": [0, 1], \"compare\": \"type\"}]}");
    struct hcase *c = case_load(path);

    ASSERT_TRUE(c->error == NULL);
    ASSERT_EQ(3, c->methods); /* fork, spawn */
    ASSERT_EQ(2, c->xfail_methods);
    ASSERT_STREQ("why", c->xfail);
    ASSERT_EQ(1, json_array_size(c->events));
    ASSERT_EQ(3, json_array_size(case_steps_for(c, "p")));
    ASSERT_TRUE(case_steps_for(c, "p.q") == NULL); /* q has no target */
    ASSERT_TRUE(case_steps_for(c, "main") == c->steps);
    case_free(c);
    unlink(path);
}

TEST(bad_cases_name_the_problem)
{
    ASSERT_CONTAINS(":1:", case_error("{\"about\": \"x\", \"steps\": [}"));
    ASSERT_CONTAINS("steps[1]: unknown op \"frobnicate\"",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"cpu_count"
                               "\"},{\"op\":\"frobnicate\"}]}"));
    ASSERT_CONTAINS("steps[0] (join): unknown object \"q\"",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"join\","
                               "\"proc\":\"q\"}]}"));
    ASSERT_CONTAINS("steps[0].target[0] (sleep): \"seconds\" is missing",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"process"
                               "\",\"as\":\"p\",\"target\":[{\"op\":\"sleep\"}"
                               "]}]}"));
    ASSERT_CONTAINS("\"seconds\" must be a number",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"sleep\","
                               "\"seconds\":\"1\"}]}"));
    ASSERT_CONTAINS("unknown key \"secs\"",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"sleep\","
                               "\"seconds\":1,\"secs\":1}]}"));
    ASSERT_CONTAINS("\"p\" is already used",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"process"
                               "\",\"as\":\"p\"},{\"op\":\"process\",\"as\":"
                               "\"p\"}]}"));
    ASSERT_CONTAINS("unknown signal SIGFOO",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":"
                               "\"signal_self\",\"signal\":\"SIGFOO\"}]}"));
    ASSERT_CONTAINS("case: unknown key \"stpes\"",
                    case_error("{\"about\":\"x\",\"stpes\":[]}"));
    ASSERT_CONTAINS("about: missing", case_error("{\"steps\":[]}"));
    ASSERT_CONTAINS("\"main\" names the main process's outcomes",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"process"
                               "\",\"as\":\"main\"}]}"));
    ASSERT_CONTAINS("a built-in name, which cannot be passed",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"process"
                               "\",\"as\":\"p\",\"pass\":[\"@current\"]}]}"));
    ASSERT_CONTAINS("\"count\" must be an integer of at least 1",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"event"
                               "\",\"name\":\"e\",\"count\":0}]}"));
    ASSERT_CONTAINS("methods: unknown start method",
                    case_error("{\"about\":\"x\",\"methods\":[\"vfork\"],"
                               "\"steps\":[{\"op\":\"cpu_count\"}]}"));
    /* A child sees only what its parent passed it. */
    ASSERT_CONTAINS("steps[1].target[0] (start): unknown object \"p\"",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"process"
                               "\",\"as\":\"p\"},{\"op\":\"process\",\"as\":"
                               "\"q\",\"target\":[{\"op\":\"start\",\"proc\":"
                               "\"p\"}]}]}"));
    ASSERT_STREQ("", case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"process"
                                "\",\"as\":\"p\"},{\"op\":\"process\",\"as\":"
                                "\"q\",\"pass\":[\"p\"],\"target\":[{\"op\":"
                                "\"start\",\"proc\":\"p\"}]}]}"));
}
