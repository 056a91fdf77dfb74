/*
 * common.c - the benchmarks' shared helpers (common.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "mp.h"

const char *bench_prog = "mp-bench";

double bench_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *what)
{
    fprintf(stderr, "%s: %s\n", bench_prog, what);
    exit(2);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

double bench_quantile(const double *v, size_t n, double q)
{
    double *c, r;
    size_t i;

    if (n == 0)
        return NAN;
    if ((c = malloc(n * sizeof(*c))) == NULL)
        bench_die("out of memory");
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

json_t *bench_round_ratios(const double *num, const double *den, int rounds,
                           double *median)
{
    json_t *rs = json_array();
    double v[64];

    if (rounds > 64)
        bench_die("more than 64 rounds");
    for (int r = 0; r < rounds; r++) {
        v[r] = num[r] / den[r];
        json_array_append_new(rs, json_real(v[r]));
    }
    *median = bench_quantile(v, (size_t)rounds, 0.5);
    return json_pack("{s:f, s:o}", "median", *median, "rounds", rs);
}

char *bench_capture(char *const argv[])
{
    int fds[2], status;
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    ssize_t r;
    pid_t pid;

    if (buf == NULL || pipe2(fds, O_CLOEXEC) < 0)
        bench_die("pipe failed");
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
            bench_die("out of memory");
    }
    buf[len] = '\0';
    close(fds[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (pid < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

double bench_cpython(char *const argv[], char *version, size_t size,
                     json_t **root)
{
    char what[256], *out;
    json_t *doc;
    double v;

    snprintf(what, sizeof(what), "the CPython side failed (%s)", argv[1]);
    if ((out = bench_capture(argv)) == NULL)
        bench_die(what);
    snprintf(what, sizeof(what), "the CPython side (%s) printed no JSON",
             argv[1]);
    if ((doc = json_loads(out, 0, NULL)) == NULL)
        bench_die(what);
    free(out);
    snprintf(version, size, "%s",
             json_string_value(json_object_get(doc, "python")) != NULL
                 ? json_string_value(json_object_get(doc, "python")) : "?");
    v = json_number_value(json_object_get(doc, "value"));
    if (!(v > 0))
        bench_die("the CPython side gave no figure");
    if (root != NULL)
        *root = doc;
    else
        json_decref(doc);
    return v;
}

const char *bench_python(const char *given, char *buf, size_t size)
{
    char *argv_fp[] = { "scripts/find-python", NULL };
    char *p;

    if (given != NULL)
        return given;
    if ((p = bench_capture(argv_fp)) == NULL)
        bench_die("no CPython found (scripts/find-python); give --python");
    snprintf(buf, size, "%s", p);
    buf[strcspn(buf, "\n")] = '\0';
    free(p);
    return buf;
}

void bench_options(int argc, char **argv, double quick_scale,
                   struct bench_opts *o)
{
    char usage[256];

    o->rounds = 5, o->scale = 1.0, o->quick = false;
    o->python = o->out = NULL;
    snprintf(usage, sizeof(usage), "usage: %s [--rounds R] [--scale F] "
             "[--python PATH] [--out FILE] [--quick]", bench_prog);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--quick") == 0) {
            o->rounds = 2, o->scale = quick_scale, o->quick = true;
            continue;
        }
        if (v == NULL)
            bench_die(usage);
        if (strcmp(a, "--rounds") == 0) o->rounds = atoi(v);
        else if (strcmp(a, "--scale") == 0) o->scale = atof(v);
        else if (strcmp(a, "--python") == 0) o->python = v;
        else if (strcmp(a, "--out") == 0) o->out = v;
        else bench_die(usage);
        i++;
    }
    if (o->rounds < 1 || o->rounds > 64 || !(o->scale > 0))
        bench_die("--rounds must be 1..64 and --scale positive");
    o->python = bench_python(o->python, o->pybuf, sizeof(o->pybuf));
}

void bench_env_json(json_t *root, const char *py_version)
{
    bench_host_json(root);
    json_object_set_new(root, "python", json_string(py_version));
}

void bench_host_json(json_t *root)
{
    struct utsname u;
    char line[256], model[256] = "?", date[32];
    FILE *f = fopen("/proc/cpuinfo", "r");
    time_t t = time(NULL);

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
}

void bench_progress(const char *fmt, ...)
{
    va_list ap;

    if (!isatty(2))
        return;
    fputs("\r\033[K", stderr);
    if (fmt != NULL) {
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
}
