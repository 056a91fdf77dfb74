/*
 * process_churn.c - the "process-churn" part: thousands of processes
 * started and joined under each start method, by two threads at once, in
 * batches of 1 to 16 running together: targets that return 0, that return
 * an exit code, and that wait to be terminated (SIGTERM) or killed
 * (SIGKILL).  Every exit code must be the one expected, and at the end the
 * process must hold what it held at the start: the same descriptors, as
 * many mappings, RSS within RSS_SLACK_KIB, no zombie, no child but the
 * fork server, which must still be the one it was.
 */
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "stress.h"
#include "test_hooks.h"

#define THREADS 2
#define BATCH 16
/* What RSS may grow by: the allocator keeps some of what it was given
 * back (malloc's trim threshold, per thread arena). */
#define RSS_SLACK_KIB 1024

MP_TARGET(churn_exit)
{
    return (int)mp_args_int(args, 0);
}

MP_TARGET(churn_wait)
{
    for (;;)
        pause();
    return 0;
}

struct churner {
    pthread_t thread;
    struct stress_run *r;
    pthread_barrier_t *gate;
    long starts; /* to make */
    long made;
};

enum kind { EXIT_ZERO, EXIT_CODE, TERMINATED, KILLED };

/* One batch of n processes running together; false on a failure. */
static bool batch(struct stress_run *r, int n, long *made)
{
    mp_process *p[BATCH] = { 0 };
    int want[BATCH], code, e;
    enum kind kind[BATCH];
    bool ok = true;
    int i;

    for (i = 0; i < n && ok; i++) {
        unsigned long roll = stress_below(8);
        long c = 0;

        kind[i] = roll < 3 ? EXIT_ZERO : roll < 6 ? EXIT_CODE
                : roll < 7 ? TERMINATED : KILLED;
        if (kind[i] == EXIT_CODE)
            c = 1 + (long)stress_below(255);
        want[i] = kind[i] == TERMINATED ? -SIGTERM
                : kind[i] == KILLED ? -SIGKILL : (int)c;
        ok = kind[i] >= TERMINATED
                 ? STRESS_OK(r, mp_process_create(&p[i], &churn_wait_target,
                                                  NULL, 0, NULL))
                 : STRESS_OK(r, mp_process_create(&p[i], &churn_exit_target,
                                                  MP_ARGS(c), NULL));
        ok = ok && STRESS_OK(r, mp_process_start(p[i]));
        *made += ok;
    }
    n = ok ? n : i;
    for (i = 0; i < n && ok; i++) {
        if (kind[i] == TERMINATED)
            ok = STRESS_OK(r, mp_process_terminate(p[i]));
        else if (kind[i] == KILLED)
            ok = STRESS_OK(r, mp_process_kill(p[i]));
    }
    for (i = 0; i < n; i++) {
        if (p[i] == NULL)
            continue;
        if (!ok && kind[i] >= TERMINATED)
            mp_process_kill(p[i]);
        if (STRESS_OK(r, mp_process_join(p[i], 60)) &&
            (e = mp_process_exitcode(p[i], &code)) != 1)
            ok = stress_fail(r, "exitcode() after join: %d", e);
        else if (ok && code != want[i])
            ok = stress_fail(r, "exit code %d, expected %d", code, want[i]);
        p[i] = mp_process_free(p[i]);
    }
    return ok;
}

static void *churn(void *arg)
{
    struct churner *c = arg;
    long warm = 0;

    /* One process first, so that this thread's allocator arena exists
     * before the snapshot. */
    batch(c->r, 1, &warm);
    pthread_barrier_wait(c->gate);
    pthread_barrier_wait(c->gate); /* the snapshot is taken */
    while (c->made < c->starts &&
           !__atomic_load_n(&c->r->failed, __ATOMIC_RELAXED)) {
        long n = 1 + (long)stress_below(BATCH);

        if (n > c->starts - c->made)
            n = c->starts - c->made;
        if (!batch(c->r, (int)n, &c->made))
            break;
    }
    pthread_barrier_wait(c->gate); /* done; checked while still alive */
    pthread_barrier_wait(c->gate);
    return NULL;
}

static void process_churn(struct stress_run *r)
{
    long total = stress_size(r, 5000, 200), made = 0;
    struct churner c[THREADS];
    pthread_barrier_t gate;
    struct stress_snap before;
    pid_t server = 0, now;
    double t0, t1;

    pthread_barrier_init(&gate, NULL, THREADS + 1);
    for (int i = 0; i < THREADS; i++) {
        c[i] = (struct churner){ .r = r, .gate = &gate,
                                 .starts = total / THREADS +
                                           (i < total % THREADS) };
        if (pthread_create(&c[i].thread, NULL, churn, &c[i]) != 0) {
            stress_fail(r, "pthread_create failed");
            exit(1);
        }
    }
    pthread_barrier_wait(&gate); /* warmed up */
    server = stress_warm_up(r);
    stress_snap(&before);
    t0 = bench_now();
    pthread_barrier_wait(&gate);
    pthread_barrier_wait(&gate); /* all done */
    t1 = bench_now();
    for (int i = 0; i < THREADS; i++)
        made += c[i].made;
    stress_figure(r, "starts", (double)made, "%.0f starts");
    stress_figure(r, "starts_per_s", made / (t1 - t0), "%.0f starts/s");
    stress_check(r, &before, RSS_SLACK_KIB, &server, server != 0);
    if (server != 0 && (now = mp__forkserver_pid()) != server)
        stress_fail(r, "the fork server was pid %d, now %d", (int)server,
                    (int)now);
    pthread_barrier_wait(&gate);
    for (int i = 0; i < THREADS; i++)
        pthread_join(c[i].thread, NULL);
    pthread_barrier_destroy(&gate);
}

STRESS_PART(process_churn,
            .name = "process-churn",
            .about = "thousands of processes started, ended and joined",
            .methods = STRESS_ALL_METHODS, .order = 10,
            .timeout_full = 180, .timeout_short = 30,
            .run = process_churn)
