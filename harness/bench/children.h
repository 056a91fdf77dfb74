/*
 * children.h - what a benchmark that starts Processes needs around them:
 * starting a daemonic child of a given context under a watchdog that kills
 * every watched child and exits when a run hangs, joining a set and
 * insisting on exit code 0, and saying what failed.  Benchmarks give up
 * loudly (exit 2): a figure from a run that went wrong is worse than none.
 */
#ifndef BENCH_CHILDREN_H
#define BENCH_CHILDREN_H

#include "mp.h"

/* Seconds a run of children may take before the watchdog gives up on it. */
#define BENCH_RUN_LIMIT 300

/* "<prog>: what: <the exception line for err>", exit 2. */
_Noreturn void bench_fail(const char *what, int err);
/* r must be want, else bench_fail(what). */
void bench_check(int r, int want, const char *what);
/* In a child: says what went wrong (as bench_fail) and gives the exit code
 * that reports it (3). */
int bench_child_fail(const char *what, int r);
/* A started daemonic child of ctx running t(args); the first child of a
 * run arms the watchdog (SIGALRM after BENCH_RUN_LIMIT seconds). */
mp_process *bench_child(mp_context *ctx, const mp_target *t,
                        const mp_arg *args, size_t n);
/* Joins and frees ps[0..n); each must have exited with 0.  Disarms the
 * watchdog: the run is over. */
void bench_children_join(mp_process **ps, int n);
/* Arms (on) or disarms the watchdog by hand, for a run whose processes
 * are not bench_child()'s (a Pool's workers die with this process). */
void bench_watchdog(int on);

#endif
