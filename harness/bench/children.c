/* children.c - starting, watching and joining a benchmark's children. */
#include "children.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

#define MAX_WATCHED 64

static pid_t watched[MAX_WATCHED];
static volatile sig_atomic_t nwatched;

static void on_alarm(int sig)
{
    static const char msg[] = ": a run took too long: a child hung or "
                              "died; giving up\n";
    size_t len = 0;

    (void)sig;
    for (int k = 0; k < nwatched; k++)
        kill(watched[k], SIGKILL);
    while (bench_prog[len] != '\0')
        len++;
    if (write(2, bench_prog, len) < 0 || write(2, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to say */
    }
    _exit(1);
}

void bench_fail(const char *what, int err)
{
    char line[256];

    mp_format_exception(err, line, sizeof(line));
    fprintf(stderr, "%s: %s: %s\n", bench_prog, what, line);
    exit(2);
}

void bench_check(int r, int want, const char *what)
{
    if (r != want)
        bench_fail(what, r < 0 ? r : MP_EINVAL);
}

int bench_child_fail(const char *what, int r)
{
    char line[256];

    mp_format_exception(r < 0 ? r : MP_EINVAL, line, sizeof(line));
    fprintf(stderr, "%s: %s: %s\n", bench_prog, what, line);
    return 3;
}

mp_process *bench_child(mp_context *ctx, const mp_target *t,
                        const mp_arg *args, size_t n)
{
    mp_process_options o = { .daemon = MP_DAEMON_YES, .context = ctx };
    mp_process *p;
    pid_t pid = 0;
    int r;

    if ((r = mp_process_create(&p, t, args, n, &o)) < 0 ||
        (r = mp_process_start(p)) < 0 || (r = mp_process_pid(p, &pid)) < 0)
        bench_fail("cannot start a child", r);
    if (nwatched == 0)
        bench_watchdog(1);
    if (nwatched < MAX_WATCHED)
        watched[nwatched++] = pid;
    return p;
}

void bench_children_join(mp_process **ps, int n)
{
    for (int k = 0; k < n; k++) {
        int code = -1, r;
        if ((r = mp_process_join(ps[k], MP_FOREVER)) < 0)
            bench_fail("join", r);
        if (mp_process_exitcode(ps[k], &code) != 1 || code != 0) {
            fprintf(stderr, "%s: a child exited with %d\n", bench_prog, code);
            exit(2);
        }
        mp_process_free(ps[k]);
    }
    bench_watchdog(0);
}

void bench_watchdog(int on)
{
    if (on) {
        signal(SIGALRM, on_alarm);
        alarm(BENCH_RUN_LIMIT);
    } else {
        alarm(0);
        nwatched = 0;
    }
}
