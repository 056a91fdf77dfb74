/*
 * test_harness.c - the conformance harness's own parts: normalising output
 * (norm.c) and validating case files (case.c).
 */
#include <ftw.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "runner.h"

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void rm_rf(const char *dir)
{
    nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

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
    snprintf(path, 64, "/tmp/test-harness-%ld", (long)getpid());
    rm_rf(path);
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

static void assert_bytes_repr(const char *in, size_t n, const char *want,
                              int line)
{
    char *got = bytes_repr(in, n);

    if (got == NULL || strcmp(got, want) != 0)
        check_fail(__FILE__, line, "bytes_repr = %s, expected %s",
                   got ? got : "NULL", want);
    free(got);
}

/* The expected strings are what CPython's repr() of the same bytes gives. */
TEST(bytes_repr_is_pythons)
{
    assert_bytes_repr("", 0, "b''", __LINE__);
    assert_bytes_repr("hello", 5, "b'hello'", __LINE__);
    assert_bytes_repr("don't", 5, "b\"don't\"", __LINE__);
    assert_bytes_repr("it's \"q\"", 8, "b'it\\'s \"q\"'", __LINE__);
    assert_bytes_repr("\t\n\r\\", 4, "b'\\t\\n\\r\\\\'", __LINE__);
    assert_bytes_repr("\0\x1f\x7f\xe2\x98\x83 ~", 8,
                      "b'\\x00\\x1f\\x7f\\xe2\\x98\\x83 ~'", __LINE__);
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
    snprintf(path, 64, "/tmp/test-harness-%ld", (long)getpid());
    rm_rf(path);
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
    ASSERT_CONTAINS("steps[1] (send_bytes): \"p\" is not a connection",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"process"
                               "\",\"as\":\"p\"},{\"op\":\"send_bytes\","
                               "\"conn\":\"p\",\"data\":\"\"}]}"));
    ASSERT_CONTAINS("steps[1] (start): \"a\" is not a process",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"pipe\","
                               "\"ends\":[\"a\",\"b\"]},{\"op\":\"start\","
                               "\"proc\":\"a\"}]}"));
    ASSERT_CONTAINS("the two ends need two names",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"pipe\","
                               "\"ends\":[\"a\",\"a\"]}]}"));
    /* A passed connection keeps its kind in the child. */
    ASSERT_STREQ("", case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"pipe"
                                "\",\"ends\":[\"a\",\"b\"]},{\"op\":\"process"
                                "\",\"as\":\"q\",\"pass\":[\"b\"],\"target\":"
                                "[{\"op\":\"recv_bytes\",\"conn\":\"b\"}]},"
                                "{\"op\":\"wait\",\"objects\":[\"a\",\"q\"],"
                                "\"timeout\":null}]}"));
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

/* Changing any one value of a reference makes the run fail, with the
 * difference spelled out.  Runs the real mp-harness (MP_HARNESS, set by the
 * Makefile) on one case against mutated copies of its reference. */

#define GATE_CASE "process/seed000_basic_worker"

static int run_harness(const char *ref, char *out, size_t size)
{
    const char *exe = getenv("MP_HARNESS");
    char file[256];
    int fds[2], status;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    snprintf(file, sizeof(file), "cases/%s.json", GATE_CASE);
    ASSERT_EQ(0, pipe(fds));
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        execl(exe, exe, "run", "--method", "fork", "--ref", ref, file,
              (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    while (len + 1 < size && (n = read(fds[0], out + len, size - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* Writes ref (a reference file's JSON) as dir/GATE_CASE.json. */
static void write_ref(const char *dir, json_t *ref)
{
    char path[512];

    snprintf(path, sizeof(path), "%s/process", dir);
    mkdir(dir, 0700);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/%s.json", dir, GATE_CASE);
    ASSERT_EQ(0, json_dump_file(ref, path, JSON_INDENT(2)));
}

TEST(a_changed_reference_value_fails_the_run)
{
    static char out[65536];
    char dir[64];
    json_t *ref, *m, *copy;
    struct {
        const char *what, *expect; /* a mutation, and the diff it must show */
    } muts[] = {
        { "main outcome", "main[0] (process): expected {\\\"value\\\":"
                          "\\\"changed\\\"}, got {\\\"value\\\":null}" },
        { "child outcome", "expected {\\\"value\\\":\\\"changed\\\"}" },
        { "exit", "exit code of the main process: expected 99, got 0" },
        { "leftover", "leftover: expected [\\\"ghost\\\"], got []" },
        { "stdout", "stdout: expected [\\\"ghost\\\"]" },
        { "one outcome fewer", ", got {\\\"value\\\":" },
    };

    if (getenv("MP_HARNESS") == NULL)
        check_skip("MP_HARNESS is not set (run through make check)");
    ref = json_load_file("reference/cpython-3.13/" GATE_CASE ".json", 0, NULL);
    if (ref == NULL)
        check_skip("no reference for " GATE_CASE);
    snprintf(dir, sizeof(dir), "/tmp/test-gate-%ld", (long)getpid());

    write_ref(dir, ref);
    ASSERT_EQ(0, run_harness(dir, out, sizeof(out))); /* unchanged: passes */

    for (size_t i = 0; i < sizeof(muts) / sizeof(muts[0]); i++) {
        const char *path;
        json_t *list;
        copy = json_deep_copy(ref);
        m = json_object_get(json_object_get(copy, "methods"), "fork");
        switch (i) {
        case 0:
            json_array_set_new(json_object_get(json_object_get(m, "outcomes"),
                                               "main"), 0,
                               json_pack("{s:s}", "value", "changed"));
            break;
        case 1: /* the first child's first outcome */
            json_object_foreach(json_object_get(m, "outcomes"), path, list)
                if (strcmp(path, "main") != 0) {
                    json_array_set_new(list, 0, json_pack("{s:s}", "value",
                                                          "changed"));
                    break;
                }
            break;
        case 2:
            json_object_set_new(m, "exit", json_integer(99));
            break;
        case 3:
            json_object_set_new(m, "leftover", json_pack("[s]", "ghost"));
            break;
        case 4:
            json_object_set_new(m, "stdout", json_pack("[s]", "ghost"));
            break;
        case 5:
            list = json_object_get(json_object_get(m, "outcomes"), "main");
            json_array_remove(list, json_array_size(list) - 1);
            break;
        }
        write_ref(dir, copy);
        json_decref(copy);
        if (run_harness(dir, out, sizeof(out)) != 1 ||
            strstr(out, muts[i].expect) == NULL)
            check_fail(__FILE__, __LINE__, "%s changed: exit status or diff "
                       "wrong; wanted %s in:\n%s", muts[i].what,
                       muts[i].expect, out);
    }
    json_decref(ref);
    rm_rf(dir);
}
