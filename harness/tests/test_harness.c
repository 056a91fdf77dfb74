/*
 * test_harness.c - the conformance harness's own parts: normalising output
 * (norm.c) and validating case files (case.c).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
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
    assert_norm("File exists: '/psm_1a2b3c4d'", "File exists: '/psm_N'",
                __LINE__);
    assert_norm("psm_ psm_x", "psm_ psm_x", __LINE__);
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

/* Python's bytes.decode("utf-8", "backslashreplace"), written apart from
 * norm.c's: decode a code point, then check it against the ranges UTF-8
 * allows (no overlong forms, no surrogates, nothing past U+10FFFF). */
static size_t ref_utf8_len(const unsigned char *s, size_t avail)
{
    static const unsigned long min[5] = { 0, 0, 0x80, 0x800, 0x10000 };
    unsigned long cp;
    size_t n;

    if (s[0] < 0x80)
        return 1;
    n = (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
      : (s[0] & 0xf8) == 0xf0 ? 4 : 0;
    if (n == 0 || n > avail)
        return 0;
    cp = s[0] & (0x7f >> n);
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3f);
    }
    if (cp < min[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static char *ref_backslashreplace(const unsigned char *s, size_t n,
                                  size_t *len)
{
    char *out = malloc(4 * n + 1);
    size_t o = 0;

    for (size_t i = 0; i < n;) {
        size_t u = ref_utf8_len(s + i, n - i);
        if (u == 0) {
            o += (size_t)sprintf(out + o, "\\x%02x", s[i]);
            i++;
        } else {
            memcpy(out + o, s + i, u);
            o += u;
            i += u;
        }
    }
    out[o] = '\0';
    *len = o;
    return out;
}

static void assert_text(const char *in, size_t n, const char *want,
                        size_t want_len, int line)
{
    size_t len;
    char *got = utf8_text(in, n, &len);

    if (len != want_len || memcmp(got, want, len) != 0)
        check_fail(__FILE__, line, "utf8_text: got \"%.*s\", expected "
                   "\"%.*s\"", (int)len, got, (int)want_len, want);
    free(got);
}

TEST(norm_invalid_utf8_is_backslashreplaced)
{
    /* A surrogate (ED A0 80), overlong forms and code points past U+10FFFF
     * are not UTF-8: CPython escapes each of their bytes. */
    assert_norm("a\xed\xa0\x80z", "a\\xed\\xa0\\x80z", __LINE__);
    assert_norm("\xe0\x80\xaf", "\\xe0\\x80\\xaf", __LINE__);
    assert_norm("\xc0\xaf \xc1\xbf", "\\xc0\\xaf \\xc1\\xbf", __LINE__);
    assert_norm("\xf0\x8f\xbf\xbf", "\\xf0\\x8f\\xbf\\xbf", __LINE__);
    assert_norm("\xf4\x90\x80\x80", "\\xf4\\x90\\x80\\x80", __LINE__);
    assert_norm("\xe2\x82", "\\xe2\\x82", __LINE__); /* cut short */
    assert_norm("\xed\x9f\xbf \xf4\x8f\xbf\xbf",     /* the last valid ones */
                "\xed\x9f\xbf \xf4\x8f\xbf\xbf", __LINE__);
    assert_text("\xed\xa0\x80", 3, "\\xed\\xa0\\x80", 12, __LINE__);
    assert_text("\xe2\x82\xac\0\xff", 5, "\xe2\x82\xac\0\\xff", 8, __LINE__);
}

/* Two processes' output meeting mid-character: every line is kept, in
 * order, and sorting ("lines") does not meet a line jansson refused. */
TEST(norm_output_keeps_lines_with_invalid_utf8)
{
    const char *text = "b\xed\xa0\x80\na\xe2\x82\n\xe2\x82\xac ok\n";
    json_t *lines = norm_output(text, "lines");
    json_t *exact = norm_output(text, "exact");
    char *l = json_dumps(lines, JSON_COMPACT);
    char *x = json_dumps(exact, JSON_COMPACT);

    ASSERT_STREQ("[\"a\\\\xe2\\\\x82\",\"b\\\\xed\\\\xa0\\\\x80\","
                 "\"\xe2\x82\xac ok\"]", l);
    ASSERT_STREQ("[\"b\\\\xed\\\\xa0\\\\x80\",\"a\\\\xe2\\\\x82\","
                 "\"\xe2\x82\xac ok\"]", x);
    free(l);
    free(x);
    json_decref(lines);
    json_decref(exact);
}

/* An invalid byte with at least four more after it (utf8_text once copied
 * all of them into a four-byte buffer). */
TEST(utf8_text_invalid_byte_before_a_long_tail)
{
    char in[4097], *want;
    size_t wlen;

    memset(in, 'x', sizeof(in));
    in[0] = (char)0xff;
    in[100] = (char)0xc3; /* an invalid one within, before 'x' */
    want = ref_backslashreplace((const unsigned char *)in, sizeof(in), &wlen);
    assert_text(in, sizeof(in), want, wlen, __LINE__);
    free(want);
}

/* Random bytes, mostly the ones UTF-8's rules turn on, through utf8_text
 * and norm_line: the first must equal the independent decoder above, and
 * both must give text jansson takes.  Seeded: every run checks the same
 * inputs, so a failure reproduces. */
TEST(norm_randomized_against_reference_decoder)
{
    static const unsigned char pick[] = {
        'a', ' ', '\n', '\0', 'p', 'i', 'd', '=', '0', 'x', '7', 0x7f, 0x80,
        0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1,
        0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff,
    };
    unsigned long long x = 0x9e3779b97f4a7c15ull;
    unsigned char in[48]; /* room for a NUL after the longest */

    for (int iter = 0; iter < 200000; iter++) {
        size_t n, len, wlen;
        char *got, *want, *line;
        json_t *j;

        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        n = (size_t)(x % (sizeof(in) - 1));
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            in[i] = (x >> 8) % 4 == 0 ? (unsigned char)(x >> 16)
                                      : pick[(x >> 16) % sizeof(pick)];
        }
        got = utf8_text((const char *)in, n, &len);
        want = ref_backslashreplace(in, n, &wlen);
        if (len != wlen || memcmp(got, want, len) != 0)
            check_fail(__FILE__, __LINE__, "input %d: utf8_text differs "
                       "from the reference decoder", iter);
        if ((j = json_stringn(got, len)) == NULL)
            check_fail(__FILE__, __LINE__, "input %d: not UTF-8", iter);
        json_decref(j);
        free(got);
        free(want);
        in[n] = '\0';
        if ((line = norm_line((const char *)in)) != NULL) {
            if ((j = json_string(line)) == NULL)
                check_fail(__FILE__, __LINE__, "input %d: norm_line gave "
                           "text that is not UTF-8", iter);
            json_decref(j);
            free(line);
        }
        json_decref(norm_output((const char *)in, iter % 2 ? "lines"
                                                            : "exact"));
    }
}

/* A case's timeout above 24.8 days once overflowed poll's int, which made
 * the deadline negative: no deadline at all. */
TEST(exec_deadline_beyond_polls_range)
{
    ASSERT_EQ(INT_MAX, exec_poll_ms(3e6));   /* 34.7 days */
    ASSERT_EQ(INT_MAX, exec_poll_ms(1e300));
    ASSERT_EQ(INT_MAX, exec_poll_ms(INT_MAX / 1000.0));
    ASSERT_EQ(2001, exec_poll_ms(2.0));
    ASSERT_EQ(1, exec_poll_ms(1e-9));        /* never early */
    ASSERT_EQ(0, exec_poll_ms(0));
    ASSERT_EQ(0, exec_poll_ms(-1e300));
}

/* Names are kept in 64 bytes: a longer one must be refused, not cut (cut,
 * a 64-character name was the 63-character one before it). */
TEST(names_longer_than_63_characters_are_refused)
{
    char name[80], text[512];

    memset(name, 'n', sizeof(name));
    name[63] = '\0';
    snprintf(text, sizeof(text), "{\"about\":\"x\",\"steps\":[{\"op\":\"process"
             "\",\"as\":\"%s\"},{\"op\":\"start\",\"proc\":\"%s\"}]}", name,
             name);
    ASSERT_STREQ("", case_error(text));
    name[63] = 'n';
    name[64] = '\0';
    snprintf(text, sizeof(text), "{\"about\":\"x\",\"steps\":[{\"op\":\"process"
             "\",\"as\":\"%.63s\"},{\"op\":\"process\",\"as\":\"%s\"}]}", name,
             name);
    ASSERT_CONTAINS("of at most 63 characters", case_error(text));
    snprintf(text, sizeof(text), "{\"about\":\"x\",\"steps\":[{\"op\":"
             "\"event\",\"name\":\"%s\"}]}", name);
    ASSERT_CONTAINS("of at most 63 characters", case_error(text));
}

static double mono(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Validation grows with the case, not with its square: 50 000 events and a
 * `wait` on 20 000 objects took 15 s when each name was compared with every
 * other. */
/* A case of k units: 5k events, k pipes, and a wait on all 2k ends. */
static char *big_case(int k)
{
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);

    fputs("{\"about\":\"x\",\"steps\":[", f);
    for (int i = 0; i < 5 * k; i++)
        fprintf(f, "{\"op\":\"event\",\"name\":\"e%d\"},", i);
    for (int i = 0; i < k; i++)
        fprintf(f, "{\"op\":\"pipe\",\"ends\":[\"a%d\",\"b%d\"]},", i, i);
    fputs("{\"op\":\"wait\",\"timeout\":0,\"objects\":[", f);
    for (int i = 0; i < k; i++)
        fprintf(f, "%s\"a%d\",\"b%d\"", i > 0 ? "," : "", i, i);
    fputs("]}]}", f);
    fclose(f);
    return text;
}

/* The fastest of three validations of a case of k units, in seconds. */
static double validation_time(int k)
{
    char *text = big_case(k);
    double best = INFINITY;

    for (int run = 0; run < 3; run++) {
        double t0 = mono();
        ASSERT_STREQ("", case_error(text));
        if (mono() - t0 < best)
            best = mono() - t0;
    }
    free(text);
    return best;
}

/* Four times the case takes about four times as long (a quadratic
 * validator: sixteen).  A ratio of times measured side by side holds on a
 * loaded machine and under valgrind, where an absolute bound does not. */
TEST(validation_is_near_linear)
{
    double small = validation_time(2500), large = validation_time(10000);

    if (large > 8 * small)
        check_fail(__FILE__, __LINE__, "4x the case took %.1fx the time "
                   "(%.3f s, %.3f s)", large / small, small, large);
}

/* Runs mp-harness (MP_HARNESS) with argv[1..], its stdout and stderr read
 * into out (NUL-terminated); returns its wait status. */
static int harness_output(char *const argv[], char *out, size_t size)
{
    const char *exe = getenv("MP_HARNESS");
    int fds[2], status;
    size_t len = 0;
    ssize_t n;
    pid_t pid;

    if (exe == NULL)
        check_skip("MP_HARNESS is not set (run through make check)");
    ASSERT_EQ(0, pipe(fds));
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        execv(exe, argv);
        _exit(127);
    }
    close(fds[1]);
    while (len + 1 < size && (n = read(fds[0], out + len, size - 1 - len)) > 0)
        len += (size_t)n;
    out[len] = '\0';
    close(fds[0]);
    waitpid(pid, &status, 0);
    return status;
}

/* Runs `mp-harness show --method fork` on a case; returns its exit status,
 * its output in out. */
static int harness_show(const char *text, char *out, size_t size)
{
    char *path, dir[64];
    int status;

    if (getenv("MP_HARNESS") == NULL) /* before the case file is written */
        check_skip("MP_HARNESS is not set (run through make check)");
    path = write_case(text);
    status = harness_output((char *[]){ "mp-harness", "show", "--method",
                                        "fork", path, NULL },
                            out, size);

    snprintf(dir, sizeof(dir), "/tmp/test-harness-%ld", (long)getpid());
    rm_rf(dir);
    { /* compact, for the assertions */
        json_t *j = json_loads(out, JSON_ALLOW_NUL, NULL);
        char *flat = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
        if (flat != NULL)
            snprintf(out, size, "%s", flat);
        free(flat);
        json_decref(j);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

/* `wait` on more objects than the interpreter's first table held (128)
 * wrote past its stack arrays. */
TEST(wait_on_many_objects)
{
    static char out[1 << 16];
    char *text;
    size_t len;
    FILE *f = open_memstream(&text, &len);
    int i;

    fputs("{\"about\":\"x\",\"timeout\":30,\"steps\":[", f);
    for (i = 0; i < 100; i++)
        fprintf(f, "{\"op\":\"pipe\",\"ends\":[\"a%d\",\"b%d\"]},", i, i);
    fputs("{\"op\":\"send_bytes\",\"conn\":\"a99\",\"data\":\"x\"},", f);
    fputs("{\"op\":\"send_bytes\",\"conn\":\"b0\",\"data\":\"x\"},", f);
    fputs("{\"op\":\"wait\",\"timeout\":0,\"objects\":[", f);
    for (i = 0; i < 100; i++)
        fprintf(f, "%s\"a%d\",\"b%d\"", i > 0 ? "," : "", i, i);
    fputs("]}]}", f);
    fclose(f);
    ASSERT_EQ(0, harness_show(text, out, sizeof(out)));
    ASSERT_CONTAINS("{\"value\":[\"a0\",\"b99\"]}", out);
    free(text);
}

/* What CPython raises at C's limits, and no overflow of the interpreter's
 * own: `put`'s len * repeat wrapped and overflowed the heap; huge timeouts
 * were undefined casts (sleep 1e300 spun); text with NUL was cut. */
TEST(arguments_at_c_limits)
{
    static char out[1 << 16];

    ASSERT_EQ(0, harness_show(
        "{\"about\":\"x\",\"timeout\":10,\"output\":{\"stdout\":\"exact\"},"
        "\"steps\":["
        "{\"op\":\"queue\",\"as\":\"q\"},"
        "{\"op\":\"put\",\"queue\":\"q\",\"data\":\"ab\","
        "\"repeat\":4611686018427387905},"
        "{\"op\":\"put\",\"queue\":\"q\",\"data\":\"a\","
        "\"repeat\":4611686018427387904},"
        "{\"op\":\"sleep\",\"seconds\":1e300},"
        "{\"op\":\"join\",\"proc\":\"@current\",\"timeout\":1e300},"
        "{\"op\":\"queue\",\"as\":\"m\",\"maxsize\":2147483648},"
        "{\"op\":\"print\",\"text\":\"a\\u0000b\"}]}", out, sizeof(out)));
    ASSERT_CONTAINS("{\"raises\":\"OverflowError: repeated bytes are too "
                    "long\"},{\"raises\":\"MemoryError\"},{\"raises\":"
                    "\"OverflowError: timestamp out of range for platform "
                    "time_t\"}", out);
    ASSERT_CONTAINS("{\"raises\":\"OverflowError: Python int too large to "
                    "convert to C int\"}", out);
    ASSERT_CONTAINS("\"a\\u0000b\"", out);
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
    ASSERT_CONTAINS("\"ends\" needs distinct names",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"pipe\","
                               "\"ends\":[\"a\",\"a\"]}]}"));
    /* What CPython accepts or refuses, the validator does (ops.json). */
    ASSERT_CONTAINS("steps[0] (raise): \"exception\": unknown exception "
                    "FooError",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"raise"
                               "\",\"exception\":\"FooError\"}]}"));
    ASSERT_STREQ("", case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"sleep"
                                "\",\"seconds\":-1},{\"op\":\"signal_self"
                                "\",\"signal\":\"SIGSTKFLT\"}]}"));
    ASSERT_CONTAINS("\"kind\" must be one of \"Queue\", \"JoinableQueue\", "
                    "\"SimpleQueue\"",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"queue"
                               "\",\"as\":\"q\",\"kind\":\"Deque\"}]}"));
    /* A passed connection keeps its kind in the child. */
    ASSERT_STREQ("", case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"pipe"
                                "\",\"ends\":[\"a\",\"b\"]},{\"op\":\"process"
                                "\",\"as\":\"q\",\"pass\":[\"b\"],\"target\":"
                                "[{\"op\":\"recv_bytes\",\"conn\":\"b\"}]},"
                                "{\"op\":\"wait\",\"objects\":[\"a\",\"q\"],"
                                "\"timeout\":null}]}"));
    /* A bound above is the validator's too (CPython misbehaves beyond), and
     * null is no number to bound. */
    ASSERT_CONTAINS("steps[1] (acquire): \"timeout\" must be a number or "
                    "null of at most 86400",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"lock"
                               "\",\"as\":\"l\"},{\"op\":\"acquire\","
                               "\"lock\":\"l\",\"timeout\":86401}]}"));
    ASSERT_CONTAINS("\"value\" must be an integer of at most 2147483647",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"lock"
                               "\",\"as\":\"s\",\"kind\":\"Semaphore\","
                               "\"value\":2147483648}]}"));
    ASSERT_STREQ("", case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"lock"
                                "\",\"as\":\"l\"},{\"op\":\"acquire\","
                                "\"lock\":\"l\",\"timeout\":null}]}"));
    /* Synchronisation objects keep their kind, in a child too. */
    ASSERT_CONTAINS("steps[1] (cond_wait): \"l\" is not a condition",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":\"lock"
                               "\",\"as\":\"l\"},{\"op\":\"cond_wait\","
                               "\"cond\":\"l\"}]}"));
    ASSERT_CONTAINS("steps[1].target[0] (event_set): \"b\" is not an event",
                    case_error("{\"about\":\"x\",\"steps\":[{\"op\":"
                               "\"barrier\",\"as\":\"b\",\"parties\":2},"
                               "{\"op\":\"process\",\"as\":\"p\",\"pass"
                               "\":[\"b\"],\"target\":[{\"op\":"
                               "\"event_set\",\"event\":\"b\"}]}]}"));
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
    /* A task's arguments: numbers in range, by position and by name. */
#define POOL "{\"about\":\"x\",\"steps\":[{\"op\":\"pool\",\"as\":\"p\"},"
    ASSERT_STREQ("", case_error(POOL "{\"op\":\"apply\",\"pool\":\"p\","
                                "\"func\":\"add\",\"args\":[1,2.5],\"kwds\":"
                                "{\"b\":-2147483648}}]}"));
    ASSERT_CONTAINS("steps[1] (apply): \"args\"[1] must be a number",
                    case_error(POOL "{\"op\":\"apply\",\"pool\":\"p\","
                               "\"func\":\"add\",\"args\":[1,\"2\"]}]}"));
    ASSERT_CONTAINS("\"kwds\"[\"b\"] must be a number of at most 2147483647",
                    case_error(POOL "{\"op\":\"apply\",\"pool\":\"p\","
                               "\"func\":\"add\",\"kwds\":{\"b\":2147483648}"
                               "}]}"));
    ASSERT_CONTAINS("\"kwds\": key \"1b\" must be a name",
                    case_error(POOL "{\"op\":\"apply\",\"pool\":\"p\","
                               "\"func\":\"add\",\"kwds\":{\"1b\":2}}]}"));
    ASSERT_CONTAINS("\"kwds\" must be an object",
                    case_error(POOL "{\"op\":\"apply\",\"pool\":\"p\","
                               "\"func\":\"add\",\"kwds\":[2]}]}"));
    ASSERT_CONTAINS("\"items\"[1][0] must be a number",
                    case_error(POOL "{\"op\":\"starmap\",\"pool\":\"p\","
                               "\"func\":\"add\",\"items\":[[1],[null]]}]}"));
    ASSERT_CONTAINS("\"items\"[0] must be a list",
                    case_error(POOL "{\"op\":\"starmap\",\"pool\":\"p\","
                               "\"func\":\"add\",\"items\":[1]}]}"));
    ASSERT_CONTAINS("\"func\": unknown task cube",
                    case_error(POOL "{\"op\":\"map\",\"pool\":\"p\","
                               "\"func\":\"cube\",\"items\":[]}]}"));
    /* A pool reaches a thread, never a process (CPython cannot pickle it). */
    ASSERT_STREQ("", case_error(POOL "{\"op\":\"thread\",\"as\":\"t\","
                                "\"pass\":[\"p\"],\"target\":[{\"op\":"
                                "\"pool_repr\",\"pool\":\"p\"}]}]}"));
    ASSERT_CONTAINS("steps[1] (process): \"pass\"[0]: \"p\" is a pool, "
                    "which cannot be listed here",
                    case_error(POOL "{\"op\":\"process\",\"as\":\"c\","
                               "\"pass\":[\"p\"],\"target\":[{\"op\":"
                               "\"pool_repr\",\"pool\":\"p\"}]}]}"));
    ASSERT_CONTAINS("steps[2] (result_get): \"i\" is not a result",
                    case_error(POOL "{\"op\":\"imap\",\"as\":\"i\","
                               "\"pool\":\"p\",\"func\":\"square\","
                               "\"items\":[]},{\"op\":\"result_get\","
                               "\"result\":\"i\"}]}"));
#undef POOL
}

/* Writes text as dir/t/x.json and loads it as the reference of "t/x";
 * returns the error ("" when it is usable). */
static char *ref_error(const char *text)
{
    static char err[1024];
    char dir[64], path[128], *why = NULL;
    json_t *root;
    FILE *f;

    snprintf(dir, sizeof(dir), "/tmp/test-ref-%ld", (long)getpid());
    snprintf(path, sizeof(path), "%s/t", dir);
    mkdir(dir, 0700);
    mkdir(path, 0700);
    strcat(path, "/x.json");
    ASSERT_TRUE((f = fopen(path, "w")) != NULL);
    fputs(text, f);
    fclose(f);
    root = ref_load(dir, "t/x", "cases/t/x.json", &why);
    ASSERT_TRUE((root == NULL) == (why != NULL));
    snprintf(err, sizeof(err), "%s", why != NULL ? why : "");
    free(why);
    json_decref(root);
    rm_rf(dir);
    return err;
}

#define REF_HEAD "{\"case\": \"t/x\", \"implementation\": \"CPython\",\n" \
                 " \"python\": \"3.13.0\", \"platform\": \"p\",\n"          \
                 " \"recorded\": \"2026-01-01\",\n"
#define REF_FORK(exit) " \"methods\": {\"fork\": {\n  \"exit\": " exit ",\n" \
                 "  \"outcomes\": {\"main\": [{\"value\": 1}, "             \
                 "{\"raises\": \"E\"}]},\n"                                 \
                 "  \"leftover\": [], \"stdout\": [\"a\"], \"stderr\": null}}"

TEST(reference_loads_when_well_formed)
{
    ASSERT_STREQ("", ref_error(REF_HEAD REF_FORK("0") "}"));
}

TEST(bad_references_name_file_line_column_and_key)
{
    ASSERT_CONTAINS("/t/x.json:1:", ref_error("{\"case\": [}"));
    {
        char *why = NULL;
        ASSERT_TRUE(ref_load("/nonexistent", "t/x", "cases/t/x.json",
                             &why) == NULL);
        ASSERT_STREQ("no reference /nonexistent/t/x.json (record it into "
                     "/nonexistent: scripts/record_reference.py --out "
                     "/nonexistent cases/t/x.json, run by the CPython "
                     "/nonexistent is for)", why);
        free(why);
    }
    ASSERT_CONTAINS("/t/x.json:8:10: duplicate object key near '\"methods\"'",
                    ref_error(REF_HEAD REF_FORK("0") ",\n \"methods\": {}}"));
    ASSERT_CONTAINS("/t/x.json:5:11: methods.fork.exit: must be an integer",
                    ref_error(REF_HEAD REF_FORK("\"0\"") "}"));
    ASSERT_CONTAINS("/t/x.json:1:1: (top): the file must hold a JSON object",
                    ref_error("[1]"));
    ASSERT_CONTAINS("/t/x.json:1:10: case: is \"t/y\", not this case's id",
                    ref_error("{\"case\": \"t/y\"}"));
    ASSERT_CONTAINS("/t/x.json:4:2: Methods: unknown key",
                    ref_error(REF_HEAD " \"Methods\": {}}"));
    ASSERT_CONTAINS("/t/x.json:4:14: methods.vfork: unknown start method",
                    ref_error(REF_HEAD " \"methods\": {\"vfork\": {}}}"));
    ASSERT_CONTAINS("/t/x.json:4:22: methods.fork: \"exit\" is missing",
                    ref_error(REF_HEAD " \"methods\": {\"fork\": {}}}"));
    ASSERT_CONTAINS(":6:11: methods.fork.outcomes.main[1].raises: must be a "
                    "string",
                    ref_error(REF_HEAD "\"methods\":{\"fork\":{\"exit\":0,\n"
                              "\"outcomes\":{\"main\":[{\"value\":[]},\n"
                              "{\"raises\":1}]}}}}"));
    ASSERT_CONTAINS("methods.fork.outcomes.main[0]: an outcome must be",
                    ref_error(REF_HEAD "\"methods\":{\"fork\":{\"exit\":0,"
                              "\"outcomes\":{\"main\":[{\"t\":0}]}}}}"));
    ASSERT_CONTAINS(":4:48: methods.fork.stdout[1]: must be a string",
                    ref_error(REF_HEAD "\"methods\":{\"fork\":{\"exit\":0,"
                              "\"stdout\":[\"\\u00e9\",1]}}}"));
    ASSERT_CONTAINS("methods.fork.leftover: must be a list of strings",
                    ref_error(REF_HEAD "\"methods\":{\"fork\":{\"leftover\":"
                              "null}}}"));
    ASSERT_CONTAINS(":4:43: methods.fork.stdout[1]: must be a string",
                    ref_error(REF_HEAD "\"methods\":{\"fork\":{\"exit\":0,"
                              "\"stdout\":[\"\xc3\xa9\",1]}}}"));
    ASSERT_CONTAINS(": (top): \"implementation\" is missing",
                    ref_error("{\"case\": \"t/x\"}"));
}

/* jansson takes a NUL byte right after a number or a literal: the walk
 * that places an error steps over it and finds the right place.  It used
 * to take the NUL for the comma that follows (a wrong place), and inside
 * a value it skipped whole it stopped there and never ended. */
TEST(a_nul_after_a_literal_is_stepped_over)
{
    static const char after_exit[] =
        REF_HEAD "\"methods\":{\"fork\":{\"exit\":0\0,\n"
        "\"outcomes\":{\"main\":[{\"value\":null},\n{\"raises\":1}]}}}}";
    static const char inside[] =
        REF_HEAD "\"methods\":{\"fork\":{\"exit\":0,\n"
        "\"outcomes\":{\"main\":[{\"value\":[true\0]},\n{\"raises\":1}]}}}}";
    const char *texts[] = { after_exit, inside };
    size_t sizes[] = { sizeof(after_exit) - 1, sizeof(inside) - 1 };

    alarm(10); /* a walk that never ends fails here, not at the deadline */
    for (int i = 0; i < 2; i++) {
        char *why = NULL;
        ASSERT_TRUE(ref_load_text("r.json", "t/x", texts[i], sizes[i],
                                  &why) == NULL);
        ASSERT_CONTAINS("r.json:6:11: methods.fork.outcomes.main[1].raises: "
                        "must be a string", why);
        free(why);
    }
}

/* Every reference in the tree is one the harness accepts. */
TEST(committed_references_are_well_formed)
{
    char **files;
    size_t count;
    char *dirs[] = { "reference" };
    int bad = 0;

    if (case_collect(dirs, 1, &files, &count) < 0 || count == 0)
        check_skip("no reference/ here");
    for (size_t i = 0; i < count; i++) {
        char *slash = strchr(files[i] + strlen("reference/"), '/');
        char *why = NULL, *id;
        json_t *root;
        *slash = '\0'; /* files[i]: the directory, slash + 1: the id */
        id = strndup(slash + 1, strlen(slash + 1) - strlen(".json"));
        root = ref_load(files[i], id, "case.json", &why);
        if (root == NULL) {
            check_diag("%s", why);
            bad++;
        }
        json_decref(root);
        free(why);
        free(id);
        free(files[i]);
    }
    free(files);
    ASSERT_EQ(0, bad);
}

/* Changing any one value of a reference makes the run fail, with the
 * difference spelled out.  Runs the real mp-harness (MP_HARNESS, set by the
 * Makefile) on one case against mutated copies of its reference. */

#define GATE_CASE "process/seed000_basic_worker"

static int run_harness(const char *ref, char *out, size_t size)
{
    char file[256];
    char *argv[] = { "mp-harness", "run", "--method", "fork", "--ref",
                     (char *)ref, file, NULL };
    int status;

    snprintf(file, sizeof(file), "cases/%s.json", GATE_CASE);
    status = harness_output(argv, out, size);
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

/* A reference that says two things for one key is not used: jansson keeps
 * the last, so "exit" 99 then 0 once passed as 0. */
TEST(a_reference_with_a_duplicate_key_is_an_error)
{
    static char out[65536];
    char dir[64], path[256], *text, *hit;
    json_t *ref;
    FILE *f;

    if (getenv("MP_HARNESS") == NULL)
        check_skip("MP_HARNESS is not set (run through make check)");
    ref = json_load_file("reference/cpython-3.13/" GATE_CASE ".json", 0, NULL);
    if (ref == NULL)
        check_skip("no reference for " GATE_CASE);
    snprintf(dir, sizeof(dir), "/tmp/test-dup-%ld", (long)getpid());
    write_ref(dir, ref);
    text = json_dumps(ref, JSON_INDENT(2));
    ASSERT_TRUE((hit = strstr(text, "\"exit\": 0")) != NULL);
    snprintf(path, sizeof(path), "%s/%s.json", dir, GATE_CASE);
    ASSERT_TRUE((f = fopen(path, "w")) != NULL);
    fprintf(f, "%.*s\"exit\": 99, %s", (int)(hit - text), text, hit);
    fclose(f);
    if (run_harness(dir, out, sizeof(out)) != 1 ||
        strstr(out, "duplicate object key near '\\\"exit\\\"'") == NULL ||
        strstr(out, GATE_CASE ".json:") == NULL)
        check_fail(__FILE__, __LINE__, "a duplicate key was not an error "
                   "naming the file and the key:\n%s", out);
    free(text);
    json_decref(ref);
    rm_rf(dir);
}

/* A killed mp-harness leaves nothing behind.  Watched with inotify: the
 * run's scratch directory (under TMPDIR) appears, its child records its
 * pid; then mp-harness gets SIGKILL, and the child must die and the
 * directory go. */

struct entry {
    const char *prefix;
    const char *except[2];
    char name[256];
};

static bool has_entry(const char *dir, void *arg)
{
    struct entry *e = arg;
    struct dirent *d;
    DIR *h = opendir(dir);
    bool found = false;

    while (h != NULL && !found && (d = readdir(h)) != NULL)
        if (strncmp(d->d_name, e->prefix, strlen(e->prefix)) == 0 &&
            (e->except[0] == NULL || strcmp(d->d_name, e->except[0])) &&
            (e->except[1] == NULL || strcmp(d->d_name, e->except[1]))) {
            snprintf(e->name, sizeof(e->name), "%s", d->d_name);
            found = true;
        }
    if (h != NULL)
        closedir(h);
    return found;
}

static bool pid_written(const char *dir, void *arg)
{
    char file[1024];
    long pid = 0;
    FILE *f;

    snprintf(file, sizeof(file), "%s/p", dir);
    if ((f = fopen(file, "r")) != NULL) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    *(pid_t *)arg = (pid_t)pid;
    return pid > 0;
}

static bool is_gone(const char *dir, void *arg)
{
    char path[1024];
    struct stat st;

    snprintf(path, sizeof(path), "%s/%s", dir, (const char *)arg);
    return lstat(path, &st) < 0 && errno == ENOENT;
}

/* Waits on inotify events in dir until holds(dir, arg), at most `seconds`
 * (times CHECK_SLOWDOWN). */
static bool wait_for(int in, const char *dir, bool (*holds)(const char *,
                     void *), void *arg, double seconds)
{
    double end = check_now() + seconds * check_slowdown();
    int wd = inotify_add_watch(in, dir, IN_CREATE | IN_MOVED_TO |
                                        IN_CLOSE_WRITE | IN_DELETE);
    char buf[4096];
    bool ok;

    ASSERT_TRUE(wd >= 0);
    while (!(ok = holds(dir, arg)) && check_now() < end) {
        struct pollfd p = { .fd = in, .events = POLLIN };
        if (poll(&p, 1, (int)((end - check_now()) * 1000) + 1) > 0 &&
            read(in, buf, sizeof(buf)) < 0)
            break;
    }
    inotify_rm_watch(in, wd);
    return ok;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ASSERT_TRUE(f != NULL);
    fputs(text, f);
    fclose(f);
}

TEST(a_killed_harness_leaves_nothing_behind)
{
    const char *exe = getenv("MP_HARNESS");
    char base[64], path[768], root[640], run[1024], pids[1100], tmp[128];
    struct entry top = { .prefix = "mp-harness-" };
    struct entry dir = { "run-", { "run-stale", "run-held" }, "" };
    struct entry sub = { .prefix = "pids" };
    struct pollfd pfd = { .events = POLLIN };
    pid_t harness, child = 0;
    int in, held;

    if (exe == NULL)
        check_skip("MP_HARNESS is not set (run through make check)");
    snprintf(base, sizeof(base), "/tmp/test-kill-%ld", (long)getpid());
    for (const char *const *d = (const char *const[]){ "", "/cases",
             "/cases/t", "/ref", "/ref/t", "/tmp", NULL }; *d; d++) {
        snprintf(path, sizeof(path), "%s%s", base, *d);
        ASSERT_EQ(0, mkdir(path, 0700));
    }
    snprintf(path, sizeof(path), "%s/cases/t/kill.json", base);
    write_file(path, "{\"about\": \"x\", \"methods\": [\"fork\"], \"timeout\": "
               "300, \"steps\": [{\"op\": \"process\", \"as\": \"p\", "
               "\"target\": [{\"op\": \"sleep\", \"seconds\": 300}]}, "
               "{\"op\": \"start\", \"proc\": \"p\"}, "
               "{\"op\": \"join\", \"proc\": \"p\"}]}");
    snprintf(tmp, sizeof(tmp), "%s/ref/t/kill.json", base);
    write_file(tmp, "{\"case\": \"t/kill\", \"implementation\": \"C\", "
               "\"python\": \"3\", \"platform\": \"x\", \"recorded\": \"x\", "
               "\"methods\": {\"fork\": {\"exit\": 0, \"outcomes\": {}, "
               "\"leftover\": [], \"stdout\": [], \"stderr\": []}}}");
    /* The run's leader and the keeper come back here once mp-harness is
     * killed, to be reaped. */
    ASSERT_EQ(0, prctl(PR_SET_CHILD_SUBREAPER, 1));
    ASSERT_TRUE((in = inotify_init1(IN_CLOEXEC)) >= 0);
    snprintf(tmp, sizeof(tmp), "%s/tmp", base);
    /* What an earlier mp-harness left, killed with its keeper; and the
     * directory of one still running (this test holds its lock). */
    snprintf(root, sizeof(root), "%s/mp-harness-%ld", tmp, (long)getuid());
    ASSERT_EQ(0, mkdir(root, 0700));
    for (int k = 0; k < 2; k++) {
        snprintf(path, sizeof(path), "%s/run-%s", root, k ? "held" : "stale");
        ASSERT_EQ(0, mkdir(path, 0700));
        strcat(path, "/lock");
        held = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        ASSERT_TRUE(held >= 0);
        if (k == 0)
            close(held);
    }
    ASSERT_EQ(0, flock(held, LOCK_EX));
    snprintf(path, sizeof(path), "%s/cases/t/kill.json", base);
    fflush(NULL);
    if ((harness = fork()) == 0) {
        int null = open("/dev/null", O_WRONLY);
        snprintf(root, sizeof(root), "%s/ref", base);
        setenv("TMPDIR", tmp, 1);
        dup2(null, 1);
        dup2(null, 2);
        execl(exe, exe, "run", "--ref", root, path, (char *)NULL);
        _exit(127);
    }
    ASSERT_TRUE(harness > 0);
    ASSERT_TRUE(wait_for(in, tmp, has_entry, &top, 30));
    snprintf(root, sizeof(root), "%s/%s", tmp, top.name);
    ASSERT_TRUE(wait_for(in, root, has_entry, &dir, 30));
    /* Swept first: the directory whose lock nobody held. */
    ASSERT_TRUE(is_gone(root, "run-stale"));
    ASSERT_TRUE(!is_gone(root, "run-held"));
    snprintf(run, sizeof(run), "%s/%s", root, dir.name);
    ASSERT_TRUE(wait_for(in, run, has_entry, &sub, 30));
    snprintf(pids, sizeof(pids), "%s/pids", run);
    ASSERT_TRUE(wait_for(in, pids, pid_written, &child, 30));
    if ((pfd.fd = (int)syscall(SYS_pidfd_open, child, 0)) < 0)
        check_skip("no pidfd_open here");

    ASSERT_EQ(0, kill(harness, SIGKILL));
    ASSERT_EQ(harness, waitpid(harness, NULL, 0));
    if (poll(&pfd, 1, (int)(10000 * check_slowdown())) != 1)
        check_fail(__FILE__, __LINE__, "the run's child outlived mp-harness");
    if (!wait_for(in, root, is_gone, dir.name, 10))
        check_fail(__FILE__, __LINE__, "%s outlived mp-harness", run);
    while (waitpid(-1, NULL, 0) > 0 || errno == EINTR)
        ;
    close(pfd.fd);
    close(in);
    close(held);
    rm_rf(base);
}
