/*
 * bench_process.c - what a process costs: start+join of an empty child and
 * the overshoot of join(timeout=0.1), for libmp (fork), raw fork()+waitpid()
 * (the system's limit) and CPython's multiprocessing (fork), in one run.
 *
 * The three are interleaved round by round, in a rotating order, so that the
 * load of this shared 2-core machine falls on all of them alike; CPython runs
 * in scripts/bench_process.py, one interpreter per round, timed in-process.
 * Prints a table (medians, ranges, ratios) and writes JSON (--out).
 *
 *   mp-bench-process [--rounds R] [--n N] [--py-n N] [--joins K]
 *                    [--python PATH] [--out FILE] [--quick]
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mp.h"

#define TIMEOUT 0.1

MP_TARGET(empty) { (void)arg; (void)len; return 0; }

MP_TARGET(pause_forever)
{
    (void)arg; (void)len;
    for (;;)
        pause();
    return 0;
}

struct series {
    const char *scenario, *impl;
    double *v;
    size_t n, cap;
    double round_med[64];
    int rounds;
    size_t round_start;
};

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double cpu_now(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static void die(const char *what)
{
    fprintf(stderr, "mp-bench-process: %s\n", what);
    exit(2);
}

static void add(struct series *s, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 256;
        s->v = realloc(s->v, s->cap * sizeof(*s->v));
        if (s->v == NULL)
            die("out of memory");
    }
    s->v[s->n++] = v;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Quantile q of v[0..n) (sorts a copy), nearest rank. */
static double quantile(const double *v, size_t n, double q)
{
    double *c, r;
    size_t i;

    if (n == 0)
        return NAN;
    c = malloc(n * sizeof(*c));
    if (c == NULL)
        die("out of memory");
    memcpy(c, v, n * sizeof(*c));
    qsort(c, n, sizeof(*c), cmp_double);
    i = (size_t)ceil(q * (double)n);
    i = i > 0 ? i - 1 : 0;
    if (q == 0.5 && n % 2 == 0)
        r = (c[n / 2 - 1] + c[n / 2]) / 2;
    else
        r = c[i < n ? i : n - 1];
    free(c);
    return r;
}

static void end_round(struct series *s)
{
    if (s->rounds < 64)
        s->round_med[s->rounds++] =
            quantile(s->v + s->round_start, s->n - s->round_start, 0.5);
    s->round_start = s->n;
}

/* the three implementations */

static void libmp_start_join(struct series *s, int n)
{
    for (int i = 0; i < n; i++) {
        mp_process *p = NULL;
        double t0 = now();
        int code = -1;

        if (mp_process_new(&p, "empty", NULL, 0, NULL) < 0 ||
            mp_process_start(p) < 0 || mp_process_join(p, MP_FOREVER) < 0 ||
            mp_process_exitcode(p, &code) != 1 || code != 0)
            die("libmp start+join failed");
        add(s, now() - t0);
        mp_process_free(p);
    }
}

static void libmp_join_timeout(struct series *over, struct series *cpu, int n)
{
    for (int i = 0; i < n; i++) {
        mp_process *p = NULL;
        double t0, c0;

        if (mp_process_new(&p, "pause_forever", NULL, 0, NULL) < 0 ||
            mp_process_start(p) < 0)
            die("libmp start failed");
        c0 = cpu_now();
        t0 = now();
        if (mp_process_join(p, TIMEOUT) != MP_ETIMEDOUT)
            die("libmp join(timeout) did not time out");
        add(over, now() - t0 - TIMEOUT);
        add(cpu, cpu_now() - c0);
        mp_process_kill(p);
        mp_process_join(p, MP_FOREVER);
        mp_process_free(p);
    }
}

static void raw_start_join(struct series *s, int n)
{
    for (int i = 0; i < n; i++) {
        double t0 = now();
        int status;
        pid_t pid = fork();

        if (pid == 0)
            _exit(0);
        if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
            die("fork+waitpid failed");
        add(s, now() - t0);
    }
}

/* The limit for a timed wait: ppoll() on a pidfd. */
static void raw_join_timeout(struct series *over, struct series *cpu, int n)
{
    for (int i = 0; i < n; i++) {
        struct timespec ts = { 0, (long)(TIMEOUT * 1e9) };
        struct pollfd pfd = { .events = POLLIN };
        double t0, c0;
        int status;
        pid_t pid = fork();

        if (pid == 0) {
            for (;;)
                pause();
        }
        pfd.fd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (pid < 0 || pfd.fd < 0)
            die("fork/pidfd_open failed");
        c0 = cpu_now();
        t0 = now();
        if (ppoll(&pfd, 1, &ts, NULL) != 0)
            die("ppoll did not time out");
        add(over, now() - t0 - TIMEOUT);
        add(cpu, cpu_now() - c0);
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        close(pfd.fd);
    }
}

/* Runs argv, returns its stdout (malloc'd) or NULL. */
static char *capture(char *const argv[])
{
    int fds[2], status;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ssize_t r;
    pid_t pid;

    if (buf == NULL || pipe2(fds, O_CLOEXEC) < 0)
        die("pipe failed");
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fds[1]);
    while ((r = read(fds[0], buf + len, cap - len - 1)) != 0) {
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            break;
        len += (size_t)r;
        if (cap - len < 2 && (buf = realloc(buf, cap *= 2)) == NULL)
            die("out of memory");
    }
    buf[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

static void add_json_array(struct series *s, json_t *a)
{
    size_t i;
    json_t *v;

    json_array_foreach(a, i, v)
        add(s, json_real_value(v));
}

static char py_version[32] = "?";

static void cpython_round(const char *python, const char *script, int n,
                          int joins, struct series *sj, struct series *over,
                          struct series *cpu)
{
    char ns[16], js[16];
    char *argv[] = { (char *)python, (char *)script, "--n", ns, "--joins",
                     js, NULL };
    json_error_t err;
    json_t *root;
    char *out;

    snprintf(ns, sizeof(ns), "%d", n);
    snprintf(js, sizeof(js), "%d", joins);
    out = capture(argv);
    if (out == NULL)
        die("the CPython side failed (scripts/bench_process.py)");
    root = json_loads(out, 0, &err);
    if (root == NULL)
        die("the CPython side printed no JSON");
    snprintf(py_version, sizeof(py_version), "%s",
             json_string_value(json_object_get(root, "python")));
    add_json_array(sj, json_object_get(root, "start_join"));
    add_json_array(over, json_object_get(root, "join_overshoot"));
    add_json_array(cpu, json_object_get(root, "join_cpu"));
    json_decref(root);
    free(out);
}

/* reporting */

static json_t *series_json(const struct series *s)
{
    json_t *o = json_object(), *rm = json_array();

    for (int i = 0; i < s->rounds; i++)
        json_array_append_new(rm, json_real(s->round_med[i]));
    json_object_set_new(o, "scenario", json_string(s->scenario));
    json_object_set_new(o, "impl", json_string(s->impl));
    json_object_set_new(o, "unit", json_string("s"));
    json_object_set_new(o, "n", json_integer((json_int_t)s->n));
    json_object_set_new(o, "median", json_real(quantile(s->v, s->n, 0.5)));
    json_object_set_new(o, "min", json_real(quantile(s->v, s->n, 0)));
    json_object_set_new(o, "max", json_real(quantile(s->v, s->n, 1)));
    json_object_set_new(o, "p99", json_real(quantile(s->v, s->n, 0.99)));
    json_object_set_new(o, "round_medians", rm);
    return o;
}

static void print_row(const struct series *s, const char *label)
{
    double lo = INFINITY, hi = -INFINITY;

    for (int i = 0; i < s->rounds; i++) {
        lo = fmin(lo, s->round_med[i]);
        hi = fmax(hi, s->round_med[i]);
    }
    printf("  %-28s %9.1f %9.1f %9.1f %9.1f   %7.1f-%-7.1f %5zu\n", label,
           quantile(s->v, s->n, 0.5) * 1e6, quantile(s->v, s->n, 0) * 1e6,
           quantile(s->v, s->n, 0.99) * 1e6, quantile(s->v, s->n, 1) * 1e6,
           lo * 1e6, hi * 1e6, s->n);
}

static double med(const struct series *s)
{
    return quantile(s->v, s->n, 0.5);
}

static void env_json(json_t *root)
{
    struct utsname u;
    char line[256], model[256] = "?";
    FILE *f = fopen("/proc/cpuinfo", "r");
    time_t t = time(NULL);
    char date[32];

    while (f != NULL && fgets(line, sizeof(line), f) != NULL)
        if (strncmp(line, "model name", 10) == 0) {
            char *c = strchr(line, ':');
            snprintf(model, sizeof(model), "%s", c != NULL ? c + 2 : line);
            model[strcspn(model, "\n")] = '\0';
            break;
        }
    if (f != NULL)
        fclose(f);
    uname(&u);
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
    json_object_set_new(root, "date", json_string(date));
    json_object_set_new(root, "kernel", json_string(u.release));
    json_object_set_new(root, "cpu", json_string(model));
    json_object_set_new(root, "cpus", json_integer(mp_cpu_count()));
    json_object_set_new(root, "libmp", json_string(MP_VERSION));
    json_object_set_new(root, "python", json_string(py_version));
}

int main(int argc, char **argv)
{
    int rounds = 5, n = 200, py_n = 40, joins = 5;
    const char *python = NULL, *out = NULL;
    const char *script = "scripts/bench_process.py";
    char pybuf[4096];
    static const char *const impl[3] = { "raw", "libmp", "cpython" };
    struct series sj[3] = { 0 }, ov[3] = { 0 }, cpu[3] = { 0 };
    json_t *root, *results;

    mp_main(argc, argv);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--quick") == 0) {
            rounds = 2, n = 20, py_n = 5, joins = 2;
            continue;
        }
        if (v == NULL)
            die("usage: mp-bench-process [--rounds R] [--n N] [--py-n N] "
                "[--joins K] [--python PATH] [--out FILE] [--quick]");
        if (strcmp(a, "--rounds") == 0) rounds = atoi(v);
        else if (strcmp(a, "--n") == 0) n = atoi(v);
        else if (strcmp(a, "--py-n") == 0) py_n = atoi(v);
        else if (strcmp(a, "--joins") == 0) joins = atoi(v);
        else if (strcmp(a, "--python") == 0) python = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else die("unknown option (see the comment at the top of the source)");
        i++;
    }
    for (int k = 0; k < 3; k++) {
        sj[k].impl = ov[k].impl = cpu[k].impl = impl[k];
        sj[k].scenario = "start_join";
        ov[k].scenario = "join_overshoot";
        cpu[k].scenario = "join_cpu";
    }
    if (rounds < 1 || rounds > 64 || n < 1 || py_n < 1 || joins < 1)
        die("--rounds must be 1..64, --n, --py-n and --joins positive");
    if (python == NULL) {
        char *argv_fp[] = { "scripts/find-python", NULL };
        char *p = capture(argv_fp);
        if (p == NULL)
            die("no CPython found (scripts/find-python); give --python");
        snprintf(pybuf, sizeof(pybuf), "%s", p);
        pybuf[strcspn(pybuf, "\n")] = '\0';
        free(p);
        python = pybuf;
    }

    /* warm-up: page in libmp, the allocator, the fork path */
    {
        struct series w = { .scenario = "warmup" };
        libmp_start_join(&w, 3);
        raw_start_join(&w, 3);
        free(w.v);
    }
    for (int r = 0; r < rounds; r++) {
        if (isatty(2)) /* progress on a terminal only */
            fprintf(stderr, "\rround %d/%d", r + 1, rounds);
        for (int k = 0; k < 3; k++) {
            switch ((r + k) % 3) { /* rotate the order each round */
            case 0:
                raw_start_join(&sj[0], n);
                raw_join_timeout(&ov[0], &cpu[0], joins);
                break;
            case 1:
                libmp_start_join(&sj[1], n);
                libmp_join_timeout(&ov[1], &cpu[1], joins);
                break;
            case 2:
                cpython_round(python, script, py_n, joins, &sj[2], &ov[2],
                              &cpu[2]);
                break;
            }
        }
        for (int k = 0; k < 3; k++) {
            end_round(&sj[k]);
            end_round(&ov[k]);
            end_round(&cpu[k]);
        }
    }
    if (isatty(2))
        fprintf(stderr, "\r%20s\r", "");

    printf("Process costs, microseconds (%d rounds interleaved; CPython %s "
           "multiprocessing, fork)\n", rounds, py_version);
    printf("  %-28s %9s %9s %9s %9s   %-15s %5s\n", "", "median", "min",
           "p99", "max", "round medians", "n");
    printf("start+join of an empty child\n");
    print_row(&sj[0], "raw fork+waitpid");
    print_row(&sj[1], "libmp");
    print_row(&sj[2], "CPython");
    printf("join(timeout=0.1) overshoot\n");
    print_row(&ov[0], "raw ppoll(pidfd)");
    print_row(&ov[1], "libmp");
    print_row(&ov[2], "CPython");
    printf("CPU time spent in join(timeout=0.1)\n");
    print_row(&cpu[0], "raw ppoll(pidfd)");
    print_row(&cpu[1], "libmp");
    print_row(&cpu[2], "CPython");
    printf("ratios of medians: start+join CPython/libmp %.1fx, libmp/raw "
           "%.2fx; overshoot CPython/libmp %.1fx\n", med(&sj[2]) / med(&sj[1]),
           med(&sj[1]) / med(&sj[0]), med(&ov[2]) / med(&ov[1]));

    root = json_object();
    results = json_array();
    env_json(root);
    json_object_set_new(root, "rounds", json_integer(rounds));
    for (int k = 0; k < 3; k++) {
        json_array_append_new(results, series_json(&sj[k]));
        json_array_append_new(results, series_json(&ov[k]));
        json_array_append_new(results, series_json(&cpu[k]));
    }
    json_object_set_new(root, "results", results);
    json_object_set_new(root, "ratios", json_pack(
        "{s:f, s:f, s:f}",
        "start_join_cpython_over_libmp", med(&sj[2]) / med(&sj[1]),
        "start_join_libmp_over_raw", med(&sj[1]) / med(&sj[0]),
        "join_overshoot_cpython_over_libmp", med(&ov[2]) / med(&ov[1])));
    if (out != NULL) {
        if (json_dump_file(root, out, JSON_INDENT(2)) != 0)
            die("cannot write the --out file");
        printf("wrote %s\n", out);
    }
    json_decref(root);
    for (int k = 0; k < 3; k++) {
        free(sj[k].v);
        free(ov[k].v);
        free(cpu[k].v);
    }
    return 0;
}
