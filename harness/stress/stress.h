/*
 * stress.h - what the stress parts share: their registration, the run of a
 * part under a start method, its figures and verdict, and snapshots of a
 * process's resources (descriptors, mappings, RSS, children) to hold the
 * end of a part to its start.
 *
 * A part is one file that ends with STRESS_PART(): nothing else names it, so
 * parts are added without touching another's file.  stress.c's main() runs
 * each part once per start method it names, each run in a forked process of
 * its own (own process group, a deadline, the driver a child subreaper that
 * counts what the run left behind), prints one line per run
 *     stress: <part> [<method>]: <figures> ... ok|FAIL: <reason>
 * and writes every figure to a JSON file (README.md beside this file).
 */
#ifndef STRESS_H
#define STRESS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common.h" /* the benchmarks' bench_now() */
#include "mp.h"

/* Defined in a build with AddressSanitizer (make sanitize). */
#if defined(__SANITIZE_ADDRESS__)
#define STRESS_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRESS_UNDER_ASAN 1
#endif
#endif

/* The start methods a part runs under (struct stress_part.methods). */
enum {
    STRESS_FORK = 1,
    STRESS_SPAWN = 2,
    STRESS_FORKSERVER = 4,
    STRESS_ALL_METHODS = 7
};

/* One run of a part: what the part reads, and what it reports. */
struct stress_run {
    const char *part;
    /* "fork", "spawn", "forkserver"; NULL for a part with no methods. */
    const char *method;
    /* The method's context: processes made with it use that method (the
     * default start method is set to it as well).  NULL without a method. */
    mp_context *ctx;
    /* The full run (make stress), or the short one (make check). */
    bool full;
    /* The figures: a JSON object, and the text of the summary line. */
    json_t *figures;
    char text[768];
    /* The first failure, if any. */
    char reason[512];
    bool failed;
};

struct stress_part {
    const char *name;  /* "process-churn" */
    const char *about; /* one line, for --list */
    unsigned methods;  /* STRESS_* bits; 0: runs once, without a method */
    int order;         /* parts run by order, then name */
    /* Seconds a run may take before it is killed and fails. */
    double timeout_full, timeout_short;
    void (*run)(struct stress_run *r);
};

void stress_register(const struct stress_part *p);

/* Registers a part before main() runs:
 *     STRESS_PART(process_churn, .name = "process-churn", .run = churn, ...);
 */
#define STRESS_PART(id, ...)                                                  \
    static const struct stress_part stress_part_##id = { __VA_ARGS__ };      \
    __attribute__((constructor)) static void stress_reg_##id(void)           \
    {                                                                         \
        stress_register(&stress_part_##id);                                   \
    }

/* full in a full run, short otherwise. */
long stress_size(const struct stress_run *r, long full, long short_);

/* Adds a figure: `key` in the JSON, and `fmt` (one %-conversion of a
 * double, e.g. "%.0f starts/s"; NULL: the JSON only) on the summary line.
 * From the run's main thread only (stress_fail() may be called from any). */
void stress_figure(struct stress_run *r, const char *key, double v,
                   const char *fmt);
/* Records a failure (the first one's text is the reason) and returns
 * false, so a part may write `return stress_fail(r, ...);` in a bool
 * helper.  The run goes on: what follows is still measured. */
bool stress_fail(struct stress_run *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* When a libmp call fails: stress_fail() with the call's text and error,
 * and false; true when r >= 0. */
#define STRESS_OK(run, call)                                                  \
    stress_ok_((run), (call), #call, __FILE__, __LINE__)
bool stress_ok_(struct stress_run *r, int err, const char *call,
                const char *file, int line);

/* Random numbers for a part (xorshift, a state per thread; the run's seed
 * comes from the clock and pid unless STRESS_SEED is set, and is in the
 * JSON file; the first thread to draw starts from the seed itself). */
unsigned long long stress_rand(void);
/* Uniform in [0, n). */
unsigned long stress_below(unsigned long n);

/* Starts and joins one process that does nothing, so that what a method
 * keeps for later starts (the fork server) is there before a snapshot;
 * returns the fork server's pid under forkserver, else 0. */
pid_t stress_warm_up(struct stress_run *r);

/* A process's resources. */
#define STRESS_SNAP_FDS 256
struct stress_snap {
    int nfds;                    /* open descriptors (/proc/self/fd) */
    int fds[STRESS_SNAP_FDS];    /* the first ones, ascending */
    /* what each is ("socket", "pipe", "anon_inode:[pidfd]", a path),
     * sorted */
    char kinds[STRESS_SNAP_FDS][40];
    long maps;                   /* lines of /proc/self/maps */
    long rss_kib;                /* resident set (/proc/self/statm) */
};

/* Takes a snapshot; a part takes one once its own set-up is done. */
void stress_snap(struct stress_snap *s);
/* The children of this process, all its threads' (the children files
 * under /proc/self/task): up to n pids into pids; returns how many there
 * are (may exceed n). */
size_t stress_children(pid_t *pids, size_t n);
/* A child of this process that has ended and is not reaped (waitid(P_ALL,
 * WNOHANG | WNOWAIT)), or 0. */
pid_t stress_zombie(void);
/* Holds the present to `before`: the same descriptors, as many mappings,
 * RSS grown by at most rss_slack_kib, no zombie, and no child but the
 * `nallowed` pids in allowed (a fork server).  Each difference is a failure
 * that names what differs; the counts become figures. */
void stress_check(struct stress_run *r, const struct stress_snap *before,
                  long rss_slack_kib, const pid_t *allowed, size_t nallowed);
/* stress_check() with `how`: STRESS_RENUMBERED lets descriptors have other
 * numbers, as long as as many of each kind are open (a fork server started
 * again holds new ones). */
#define STRESS_RENUMBERED 1u
void stress_check_how(struct stress_run *r, const struct stress_snap *before,
                      long rss_slack_kib, const pid_t *allowed,
                      size_t nallowed, unsigned how);

/* The driver's (limit.c): limits the processes and threads the suite may
 * have to n more than there are now, and says in buf how (README.md:
 * "Process limit"); stress_unlimit_procs() undoes what it can. */
void stress_limit_procs(long n, char *buf, size_t size);
void stress_unlimit_procs(void);

#endif /* STRESS_H */
