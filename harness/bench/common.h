/*
 * common.h - what the benchmark programs share: the clock, quantiles, running
 * CPython and capturing its output, and the environment in the results
 * (the stress suite, harness/stress/, takes the clock and the host record).
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The program's name in messages ("mp-bench-queue"). */
extern const char *bench_prog;

/* CLOCK_MONOTONIC seconds (CPython's time.monotonic()). */
double bench_now(void);
/* Prints "<prog>: what" and exits 2. */
_Noreturn void bench_die(const char *what);
/* Quantile q of v[0..n): nearest rank; the median averages the middle two. */
double bench_quantile(const double *v, size_t n, double q);
/* A ratio as bench-*.json holds it: {"median": m, "rounds": [...]}, the
 * rounds' num[r] / den[r] and their median (also in *median). */
json_t *bench_round_ratios(const double *num, const double *den, int rounds,
                           double *median);
/* Runs argv[0] (a path) and returns what it printed on stdout (malloc'd),
 * or NULL if it failed. */
char *bench_capture(char *const argv[]);
/* Runs a benchmark's CPython side (argv: the interpreter, the script
 * (scripts/bench_*.py), its options) and reads the one JSON object it
 * prints: its "python" into version, its "value", which must be above 0,
 * returned.  The object itself into *root if root is not NULL (the caller
 * frees it).  Dies when the script fails or prints anything else. */
double bench_cpython(char *const argv[], char *version, size_t size,
                     json_t **root);
/* The interpreter to compare with: `given`, or what scripts/find-python
 * prints (written to buf). */
const char *bench_python(const char *given, char *buf, size_t size);
/* The options both benchmark programs take: [--rounds R] [--scale F]
 * [--python PATH] [--out FILE] [--quick] (2 rounds, scale quick_scale).
 * Exits 2 with a message on a bad one; resolves python (bench_python). */
struct bench_opts {
    int rounds;
    double scale;
    bool quick;
    const char *python, *out;
    char pybuf[4096];
};
void bench_options(int argc, char **argv, double quick_scale,
                   struct bench_opts *o);
/* date, kernel, cpu, cpus, libmp and python into root. */
void bench_env_json(json_t *root, const char *py_version);
/* The same but python: the host record (scripts/gate's host_of() reads
 * cpu, cpus and kernel), also for programs that run no CPython. */
void bench_host_json(json_t *root);
/* Progress on stderr when it is a terminal ("\r" line, cleared by NULL). */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
