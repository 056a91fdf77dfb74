/*
 * report.c - TAP 13 on stdout (and conformance.tap) and the JSON report
 * (conformance.json, rewritten after every test point so a crash loses
 * nothing; schema in results/README.md), plus a progress line on a terminal.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "build_git.h" /* HARNESS_GIT: the commit built from (Makefile) */
#include "mp.h"
#include "runner.h"

const char *const status_names[] = { "pass", "fail", "todo", "skip", "error",
                                     "timeout" };

struct report {
    char dir[4096];
    FILE *tap;
    json_t *root, *results;
    int n, total;
    int counts[6];
    bool progress;
};

static void out(struct report *rep, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void out(struct report *rep, const char *fmt, ...)
{
    va_list ap;

    if (rep->progress)
        fputs("\r\033[K", stderr);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (rep->tap != NULL) {
        va_start(ap, fmt);
        vfprintf(rep->tap, fmt, ap);
        va_end(ap);
    }
}

static char *command_line(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    char buf[256] = "";

    if (p != NULL) {
        if (fgets(buf, sizeof(buf), p) == NULL)
            buf[0] = '\0';
        pclose(p);
    }
    buf[strcspn(buf, "\n")] = '\0';
    return strdup(buf);
}

static json_t *environment(const char *ref)
{
    struct utsname u;
    char date[32];
    char *cpu = command_line("sed -n 's/^model name[^:]*: //p' /proc/cpuinfo "
                             "| head -n 1");
    time_t t = time(NULL);
    json_t *env;

    uname(&u);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    env = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "date", date,
                    "git", HARNESS_GIT, "kernel", u.release, "cpu", cpu, "cpus",
                    (int)sysconf(_SC_NPROCESSORS_ONLN), "libmp", MP_VERSION,
                    "reference", ref);
    free(cpu);
    return env;
}

static int mkdirs(const char *path)
{
    char buf[4096];

    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    return mkdir(buf, 0755) == 0 || errno == EEXIST ? 0 : -errno;
}

struct report *report_open(const char *dir, const char *ref, int total)
{
    struct report *rep = calloc(1, sizeof(*rep));
    char file[4200];

    rep->total = total;
    rep->progress = isatty(2);
    if (dir != NULL) {
        snprintf(rep->dir, sizeof(rep->dir), "%s", dir);
        if (mkdirs(dir) < 0)
            fprintf(stderr, "mp-harness: cannot create %s\n", dir);
        snprintf(file, sizeof(file), "%s/conformance.tap", dir);
        rep->tap = fopen(file, "w");
    }
    rep->results = json_array();
    rep->root = json_pack("{s:o, s:{}, s:O}", "environment", environment(ref),
                          "summary", "results", rep->results);
    setvbuf(stdout, NULL, _IOLBF, 0);
    out(rep, "TAP version 13\n1..%d\n", total);
    return rep;
}

static void save(struct report *rep)
{
    char file[4200], tmp[4300];

    if (rep->dir[0] == '\0')
        return;
    snprintf(file, sizeof(file), "%s/conformance.json", rep->dir);
    snprintf(tmp, sizeof(tmp), "%s.tmp", file);
    if (json_dump_file(rep->root, tmp, JSON_INDENT(2)) == 0)
        rename(tmp, file);
}

/* Expected next to actual, per process and step, with the step's time. */
static json_t *outcome_table(const struct run *r, json_t *ref)
{
    json_t *table = json_object(), *want = json_object_get(ref, "outcomes");
    json_t *list, *got;
    const char *path;

    json_object_foreach(r->outcomes, path, got) {
        json_t *rows = json_array(), *w = json_object_get(want, path), *g;
        size_t i;
        json_array_foreach(got, i, g) {
            json_t *actual = json_deep_copy(g), *row;
            json_t *t = json_object_get(g, "t");
            json_object_del(actual, "t");
            row = json_pack("{s:O?, s:o}", "expected",
                            json_array_get(w, i), "actual", actual);
            if (t != NULL)
                json_object_set(row, "elapsed", t);
            json_array_append_new(rows, row);
        }
        json_object_set_new(table, path, rows);
    }
    /* Processes the reference has and the run did not produce. */
    json_object_foreach(want, path, list)
        if (json_object_get(r->outcomes, path) == NULL)
            json_object_set_new(table, path, json_pack("{s:O}", "expected",
                                                       list));
    return table;
}

/* A double-quoted YAML scalar that Perl's TAP::Parser::YAMLish::Reader
 * reads back as the same bytes: it knows only \" \\ \t \n \r \xNN (and a
 * few letters), and a raw control byte could end the TAP line. */
static char *yaml_quote(const char *s, size_t n)
{
    char *buf = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&buf, &size);

    if (f == NULL)
        return strdup("\"\"");
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        switch (ch) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\t': fputs("\\t", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        default:
            if (ch < 0x20 || ch == 0x7f)
                fprintf(f, "\\x%02x", ch);
            else
                fputc(ch, f);
        }
    }
    fputc('"', f);
    fclose(f);
    return buf;
}

/* Each difference is the one-entry mapping {line: text}: the reader takes
 * a list item whose first word ends in ": " for a mapping whatever the
 * quoting, and most differences begin "where: ". */
static void yaml_item(struct report *rep, json_t *d)
{
    char *j = json_is_string(d) ? NULL
                                : json_dumps(d, JSON_ENCODE_ANY | JSON_COMPACT);
    char *v = j != NULL ? yaml_quote(j, strlen(j))
                        : yaml_quote(json_string_value(d),
                                     json_string_length(d));

    out(rep, "    - line: %s\n", v);
    free(v);
    free(j);
}

static void yaml_block(struct report *rep, const char *message, json_t *diffs)
{
    char *m = yaml_quote(message, strlen(message));
    json_t *d;
    size_t i;

    out(rep, "  ---\n  message: %s\n", m);
    free(m);
    if (json_array_size(diffs) > 0) {
        out(rep, "  differences:\n");
        json_array_foreach(diffs, i, d)
            yaml_item(rep, d);
    }
    out(rep, "  ...\n");
}

/* A directive's reason ends at the end of the TAP line: a control byte in
 * it becomes a space. */
static const char *one_line(const char *s, char buf[512])
{
    size_t i;

    for (i = 0; s != NULL && s[i] != '\0' && i < 511; i++)
        buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? ' ' : s[i];
    buf[i] = '\0';
    return buf;
}

void report_add(struct report *rep, const struct hcase *c, const char *method,
                enum status st, const char *why, const struct run *r,
                json_t *ref, json_t *diffs)
{
    bool ok = st == ST_PASS || st == ST_SKIP ||
              (st == ST_TODO && json_array_size(diffs) == 0 && why == NULL);
    json_t *res;
    char tmp[512];

    rep->n++;
    rep->counts[st]++;
    out(rep, "%s %d - %s [%s]", ok ? "ok" : "not ok", rep->n, c->id, method);
    switch (st) {
    case ST_TODO: out(rep, " # TODO %s\n", one_line(c->xfail, tmp)); break;
    case ST_SKIP: out(rep, " # SKIP %s\n", one_line(why, tmp)); break;
    case ST_TIMEOUT: out(rep, " # TIMEOUT %gs\n", c->timeout); break;
    default: out(rep, "\n");
    }
    if (st == ST_FAIL || (st == ST_TODO && !ok)) {
        char msg[128];
        snprintf(msg, sizeof(msg), "%zu difference(s) from the reference",
                 json_array_size(diffs));
        yaml_block(rep, why != NULL ? why : msg, diffs);
    } else if (st == ST_ERROR || st == ST_TIMEOUT) {
        yaml_block(rep, why != NULL ? why : "timed out", diffs);
    }

    res = json_pack("{s:s, s:s, s:s}", "case", c->id, "method", method,
                    "status", status_names[st]);
    if (why != NULL)
        json_object_set_new(res, "reason", json_string(why));
    if (st == ST_TODO)
        json_object_set_new(res, "divergence", json_string(c->xfail));
    if (r != NULL && r->outcomes != NULL) {
        json_object_set_new(res, "duration", json_real(r->wall));
        json_object_set_new(res, "exit", json_integer(r->exit_code));
        json_object_set_new(res, "expected_exit",
                            json_deep_copy(json_object_get(ref, "exit")));
        json_object_set_new(res, "outcomes", outcome_table(r, ref));
        if (r->gathered != NULL)
            json_object_set(res, "gathered", r->gathered);
        json_object_set(res, "leftover", r->leftover);
        json_object_set(res, "stdout", r->out[0]);
        json_object_set(res, "stderr", r->out[1]);
    }
    if (json_array_size(diffs) > 0)
        json_object_set(res, "differences", diffs);
    json_array_append_new(rep->results, res);
    save(rep);
    if (rep->progress)
        fprintf(stderr, "\r\033[K[%d/%d] %s [%s]", rep->n, rep->total, c->id,
                method);
}

int report_close(struct report *rep)
{
    int failed = rep->counts[ST_FAIL] + rep->counts[ST_ERROR] +
                 rep->counts[ST_TIMEOUT];
    json_t *summary = json_object_get(rep->root, "summary");

    for (int i = 0; i < 6; i++)
        json_object_set_new(summary, status_names[i],
                            json_integer(rep->counts[i]));
    json_object_set_new(summary, "total", json_integer(rep->n));
    save(rep);
    out(rep, "# pass %d, todo %d (known divergences), skip %d, fail %d, "
        "error %d, timeout %d\n", rep->counts[ST_PASS], rep->counts[ST_TODO],
        rep->counts[ST_SKIP], rep->counts[ST_FAIL], rep->counts[ST_ERROR],
        rep->counts[ST_TIMEOUT]);
    if (rep->dir[0] != '\0')
        out(rep, "# report: %s/conformance.json\n", rep->dir);
    out(rep, "%d passed, %d failed, %d skipped\n",
        rep->counts[ST_PASS] + rep->counts[ST_TODO], failed,
        rep->counts[ST_SKIP]);
    if (rep->tap != NULL)
        fclose(rep->tap);
    json_decref(rep->root);
    json_decref(rep->results);
    free(rep);
    return failed;
}
