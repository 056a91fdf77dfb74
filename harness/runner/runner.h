/*
 * runner.h - the conformance harness (mp-harness): declarations shared by
 * its files.  The case format is cases/README.md.
 *
 *   main.c     command line: run | list | case-run (internal)
 *   case.c     loading and validating case files (jansson)
 *   steps.c    the step interpreter over libmp (main process and children)
 *   exec.c     one run: scratch dir, process group, deadline, collection
 *   compare.c  a run against its reference: mismatches, timing windows
 *   report.c   TAP 13 and the JSON report
 *   norm.c     normalising output lines and repr strings
 */
#ifndef MP_RUNNER_H
#define MP_RUNNER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define HARNESS_METHODS 3
extern const char *const harness_methods[HARNESS_METHODS];

/* case.c */

struct hcase {
    char *id;    /* "process/join_timeout" */
    char *file;  /* the path it was loaded from */
    json_t *root;
    json_t *steps;
    unsigned methods;       /* bit i: harness_methods[i] */
    double timeout;
    const char *out_mode[2]; /* stdout, stderr: "exact", "lines", "ignore" */
    const char *xfail;       /* reason, or NULL */
    unsigned xfail_methods;
    char *error; /* why the file is unusable, or NULL */
    json_t *events; /* array of every event name the case uses */
};

/* Loads and validates a case file; never NULL (c->error says what is
 * wrong).  `id` may be NULL: derived from the path under "cases/". */
struct hcase *case_load(const char *file);
void case_free(struct hcase *c);
/* Collects case files below each path (files or directories), sorted. */
int case_collect(char **paths, int n, char ***files, size_t *count);
int method_index(const char *name);
/* A signal by its CPython name ("SIGTERM"), or 0. */
int signal_by_name(const char *name);
/* The step list a child path runs ("main": the case's steps; "p.q": the
 * target of q inside p), or NULL. */
json_t *case_steps_for(const struct hcase *c, const char *path);

/* steps.c */

/* Runs a case's main steps in this (fresh) process; never returns. */
_Noreturn void steps_main(const char *file, const char *method,
                          const char *dir);

/* exec.c */

struct run {
    bool timed_out;
    char *error;         /* a harness error (bad case, wait_event...) */
    int exit_code;       /* the main process's; -N: killed by signal N */
    json_t *outcomes;    /* {"main": [...], "p": [...]}, with "t" fields */
    json_t *leftover;    /* sorted paths */
    json_t *out[2];      /* stdout, stderr: normalised lines or null */
    double wall;         /* seconds */
};

int exec_run(const char *self_exe, const struct hcase *c, const char *method,
             struct run *r);
void run_clear(struct run *r);
/* The run as a reference method entry ({exit, outcomes, leftover, stdout,
 * stderr}), without timings. */
json_t *run_to_json(const struct run *r);

/* compare.c */

/* Compares r with the reference entry ref; returns the number of
 * differences and appends a readable line for each to diffs (array). */
int compare_run(const struct hcase *c, const struct run *r, json_t *ref,
                json_t *diffs);

/* norm.c */

/* Bytes as text, as Python's decode("utf-8", "backslashreplace") gives
 * them (malloc'd). */
char *utf8_text(const char *s, size_t n, size_t *out_len); /* NULs kept */
/* One line or string, normalised (malloc'd); NULL when the rules drop it
 * (traceback noise, blank). */
char *norm_line(const char *s);
/* Splits text into normalised lines; mode "lines" sorts them; "ignore"
 * gives json null. */
json_t *norm_output(const char *text, const char *mode);
/* Python's repr() of bytes: b'...' (malloc'd; NULL without memory). */
char *bytes_repr(const void *data, size_t n);

/* report.c */

enum status { ST_PASS, ST_FAIL, ST_TODO, ST_SKIP, ST_ERROR, ST_TIMEOUT };
extern const char *const status_names[];

struct report;
struct report *report_open(const char *dir, const char *ref, int total);
/* Records and prints one test point. */
void report_add(struct report *rep, const struct hcase *c, const char *method,
                enum status st, const char *why, const struct run *r,
                json_t *ref, json_t *diffs);
/* Prints the plan's end and the summary line; returns failures. */
int report_close(struct report *rep);

#endif /* MP_RUNNER_H */
