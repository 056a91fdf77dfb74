/*
 * main.c - mp-harness, the conformance harness (cases/README.md).
 *
 *   mp-harness run [--ref DIR] [--method M]... [--out DIR] [CASE|DIR ...]
 *   mp-harness list [CASE|DIR ...]
 *   mp-harness new [--dir DIR] AREA/NAME   (a template case to start from)
 *   mp-harness show [--method M] CASE   (what libmp does, reference-shaped)
 *   mp-harness ops [--json]             (the ops it knows: scripts/test-vocab)
 *   mp-harness case-run FILE METHOD DIR     (internal: one run's process)
 *
 * run: every case under every start method it applies to, against the
 * reference; TAP on stdout; exit 1 on any fail, error or timeout, 2 on bad
 * usage.  list: exit 1 when a case file is broken.  Paths default to "cases".
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mp.h"
#include "runner.h"

/* The start methods libmp has; others would be reported as SKIP. */
static bool libmp_has(const char *method)
{
    const char *all[8];
    size_t n = mp_get_all_start_methods(all, 8);

    for (size_t i = 0; i < n && i < 8; i++)
        if (strcmp(all[i], method) == 0)
            return true;
    return false;
}

static void usage(void)
{
    fputs("usage: mp-harness run [--ref DIR] [--method M]... [--out DIR] "
          "[CASE|DIR ...]\n"
          "       mp-harness list [CASE|DIR ...]\n"
          "       mp-harness new [--dir DIR] AREA/NAME\n"
          "       mp-harness show [--method M] CASE\n"
          "       mp-harness ops [--json]\n", stderr);
    exit(2);
}

static int cmd_list(char **paths, int n)
{
    char **files;
    size_t count, broken = 0;

    if (case_collect(paths, n, &files, &count) < 0)
        return 2;
    for (size_t i = 0; i < count; i++) {
        struct hcase *c = case_load(files[i]);
        printf("%-48s", c->id);
        if (c->error != NULL) {
            printf(" ERROR %s\n", c->error);
            broken++;
        } else {
            for (int m = 0; m < HARNESS_METHODS; m++)
                if (c->methods & (1u << m))
                    printf(" %s", harness_methods[m]);
            printf("  %s\n", json_string_value(json_object_get(c->root,
                                                                "about")));
        }
        case_free(c);
        free(files[i]);
    }
    free(files);
    if (broken > 0)
        fprintf(stderr, "mp-harness: %zu of %zu case file(s) broken\n",
                broken, count);
    return broken > 0 ? 1 : 0;
}

static bool case_part(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') ||
              s[i] == '_'))
            return false;
    return true;
}

/* The smallest case that does something and validates: a child that prints,
 * started, joined, its exit code compared. */
static const char case_template[] =
    "{\n"
    "  \"about\": \"one line: the behaviour this case pins\",\n"
    "  \"seeds\": \"where it comes from\",\n"
    "  \"steps\": [\n"
    "    {\"op\": \"process\", \"as\": \"p\", \"target\": [\n"
    "      {\"op\": \"print\", \"text\": \"hello from the child\"}\n"
    "    ]},\n"
    "    {\"op\": \"start\", \"proc\": \"p\"},\n"
    "    {\"op\": \"join\", \"proc\": \"p\", \"timeout\": 10},\n"
    "    {\"op\": \"exitcode\", \"proc\": \"p\"}\n"
    "  ]\n"
    "}\n";

/* Writes DIR/AREA/NAME.json from the template, never over a file. */
static int cmd_new(int argc, char **argv)
{
    const char *dir = "cases", *id, *slash;
    char path[4096];
    FILE *f;
    int fd;

    if (argc == 3 && strcmp(argv[0], "--dir") == 0) {
        dir = argv[1];
        argv += 2;
        argc -= 2;
    }
    if (argc != 1)
        usage();
    id = argv[0];
    slash = strchr(id, '/');
    if (slash == NULL || !case_part(id, (size_t)(slash - id)) ||
        !case_part(slash + 1, strlen(slash + 1))) {
        fprintf(stderr, "mp-harness: new: \"%s\" is not AREA/NAME, each in "
                "[a-z0-9_]\n", id);
        return 2;
    }
    snprintf(path, sizeof(path), "%s/%.*s", dir, (int)(slash - id), id);
    if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "mp-harness: new: %s: %s\n", dir, strerror(errno));
        return 1;
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "mp-harness: new: %s: %s\n", path, strerror(errno));
        return 1;
    }
    snprintf(path, sizeof(path), "%s/%s.json", dir, id);
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "mp-harness: new: %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (not overwritten)" : "");
        return 1;
    }
    f = fdopen(fd, "w");
    if (f == NULL || fputs(case_template, f) < 0 || fclose(f) != 0) {
        fprintf(stderr, "mp-harness: new: %s: %s\n", path, strerror(errno));
        return 1;
    }
    printf("%s\n", path);
    fprintf(stderr, "next: edit it; mp-harness list %s checks it; "
            "scripts/record_reference.py %s records CPython's outcomes\n",
            path, path);
    return 0;
}

static bool self_exe(char *buf, size_t size)
{
    ssize_t len = readlink("/proc/self/exe", buf, size - 1);

    if (len < 0) {
        perror("mp-harness: /proc/self/exe");
        return false;
    }
    buf[len] = '\0';
    return true;
}

/* Runs one case under libmp and prints the result as a reference entry
 * would hold it (with the step times), for looking, never for recording. */
static int cmd_show(int argc, char **argv)
{
    const char *method = "fork";
    char self[4096];
    struct hcase *c;
    struct run r;
    json_t *j;

    if (argc == 3 && strcmp(argv[0], "--method") == 0) {
        method = argv[1];
        argv += 2;
        argc -= 2;
    }
    if (argc != 1 || !self_exe(self, sizeof(self)))
        usage();
    c = case_load(argv[0]);
    if (c->error != NULL) {
        fprintf(stderr, "%s\n", c->error);
        case_free(c);
        return 1;
    }
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    exec_run(self, c, method, &r);
    j = run_to_json(&r);
    json_object_set(j, "timings", r.outcomes);
    json_object_set_new(j, "wall", json_real(r.wall));
    if (r.timed_out)
        json_object_set_new(j, "timed_out", json_true());
    if (r.error != NULL)
        json_object_set_new(j, "error", json_string(r.error));
    json_dumpf(j, stdout, JSON_INDENT(2));
    putchar('\n');
    json_decref(j);
    run_clear(&r);
    case_free(c);
    return 0;
}

static int cmd_run(int argc, char **argv)
{
    const char *ref = "reference/cpython-3.13", *outdir = NULL;
    unsigned want = (1u << HARNESS_METHODS) - 1;
    char **files, self[4096], *def[] = { "cases" };
    struct hcase **cases;
    struct report *rep;
    size_t count;
    int total = 0, i, failed;

    for (i = 0; i < argc && argv[i][0] == '-'; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--ref") == 0) {
            ref = argv[++i];
        } else if (strcmp(argv[i], "--out") == 0) {
            outdir = argv[++i];
        } else if (strcmp(argv[i], "--method") == 0) {
            int m = method_index(argv[++i]);
            if (m < 0) {
                fprintf(stderr, "mp-harness: unknown start method %s\n",
                        argv[i]);
                return 2;
            }
            want = (want == (1u << HARNESS_METHODS) - 1 ? 0 : want) | 1u << m;
        } else {
            usage();
        }
    }
    if (case_collect(i < argc ? argv + i : def, i < argc ? argc - i : 1,
                     &files, &count) < 0)
        return 2;
    if (!self_exe(self, sizeof(self)))
        return 2;
    /* Orphans of a run come back to us, to be listed and reaped. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);

    cases = calloc(count + 1, sizeof(*cases));
    for (size_t k = 0; k < count; k++) {
        cases[k] = case_load(files[k]);
        total += cases[k]->error != NULL
                     ? 1 : __builtin_popcount(cases[k]->methods & want);
    }
    rep = report_open(outdir, ref, total);
    for (size_t k = 0; k < count; k++) {
        struct hcase *c = cases[k];
        json_t *refroot = NULL;
        char *why = NULL;

        if (c->error != NULL) {
            report_add(rep, c, "*", ST_ERROR, c->error, NULL, NULL, NULL);
            goto next;
        }
        refroot = ref_load(ref, c->id, c->file, &why);
        for (int m = 0; m < HARNESS_METHODS; m++) {
            const char *method = harness_methods[m];
            json_t *refm, *diffs;
            struct run r;
            enum status st;

            if (!(c->methods & want & (1u << m)))
                continue;
            if (!libmp_has(method)) {
                report_add(rep, c, method, ST_SKIP, "libmp has no such start "
                           "method yet", NULL, NULL, NULL);
                continue;
            }
            refm = json_object_get(json_object_get(refroot, "methods"),
                                   method);
            if (refm == NULL) {
                report_add(rep, c, method, ST_ERROR, why != NULL ? why
                           : "the reference has no result for this method",
                           NULL, NULL, NULL);
                continue;
            }
            diffs = json_array();
            exec_run(self, c, method, &r);
            if (r.timed_out)
                st = ST_TIMEOUT;
            else if (r.error != NULL)
                st = ST_ERROR;
            else
                st = compare_run(c, &r, refm, diffs) > 0 ? ST_FAIL : ST_PASS;
            if (c->xfail != NULL && (c->xfail_methods & (1u << m)))
                st = ST_TODO;
            report_add(rep, c, method, st, r.error, &r, refm, diffs);
            json_decref(diffs);
            run_clear(&r);
        }
    next:
        free(why);
        json_decref(refroot);
        case_free(c);
        free(files[k]);
    }
    free(cases);
    free(files);
    failed = report_close(rep);
    return failed > 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
    char *def[] = { "cases" };

    mp_main(argc, argv); /* spawned children and the fork server start here */
    if (argc < 2)
        usage();
    if (strcmp(argv[1], "case-run") == 0) {
        if (argc != 5)
            usage();
        steps_main(argv[2], argv[3], argv[4]);
    }
    if (strcmp(argv[1], "list") == 0)
        return argc > 2 ? cmd_list(argv + 2, argc - 2) : cmd_list(def, 1);
    if (strcmp(argv[1], "new") == 0)
        return cmd_new(argc - 2, argv + 2);
    if (strcmp(argv[1], "ops") == 0)
        return vocab_command(argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return cmd_show(argc - 2, argv + 2);
    if (strcmp(argv[1], "run") == 0)
        return cmd_run(argc - 2, argv + 2);
    usage();
}
