/*
 * helper_no_mp_main.c - a program that forgets to call mp_main(): its spawn
 * and forkserver children run main() again instead of their target, and
 * each copy tries to start another, as a real program would.  Used by
 * test_context.c.
 *
 * Environment:
 *   MP_NO_MAIN_METHOD  the start method ("spawn" or "forkserver")
 *   MP_NO_MAIN_DEPTH   set by the program: 0 in the first copy, 1 in the
 *                      copy its child runs, ...  A copy at depth 5 stops at
 *                      once with exit code 99, so that a libmp that let the
 *                      copies multiply fails the test instead of taking the
 *                      machine down.
 *   MP_NO_MAIN_CTOR    set: all this happens in a constructor of the
 *                      program's, before main() (C++ static initialisers
 *                      start processes there too).
 *   MP_NO_MAIN_HANG    a file: the copy at depth 1 forks a grandchild that
 *                      writes its pid there and sleeps, then sleeps itself
 *                      instead of starting anything; the first copy then
 *                      says whether the grandchild outlived its start().
 * Each copy prints "<depth>: <what start() said>".
 */
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "mp.h"

MP_TARGET(nothing) { (void)arg; (void)len; return 0; }

/* The copy at depth 1 in hang mode: a grandchild that outlives its parent's
 * start() unless libmp kills it. */
static void hang(const char *pidfile)
{
    pid_t pid = fork();

    if (pid == 0) {
        FILE *f = fopen(pidfile, "w");
        if (f != NULL) {
            fprintf(f, "%ld\n", (long)getpid());
            fclose(f);
        }
        for (;;)
            pause();
    }
    for (;;)
        pause();
}

/* After a start() that gave up: has the grandchild of hang() ended? */
static const char *grandchild_fate(const char *pidfile)
{
    FILE *f = fopen(pidfile, "r");
    long pid = 0;
    int fd;
    struct pollfd pfd;

    if (f == NULL)
        return "no grandchild";
    if (fscanf(f, "%ld", &pid) != 1)
        pid = 0;
    fclose(f);
    if (pid <= 0)
        return "no grandchild";
    fd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
    if (fd < 0)
        return "grandchild ended";
    pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
    if (poll(&pfd, 1, 5000) == 1) {
        close(fd);
        return "grandchild ended";
    }
    syscall(SYS_pidfd_send_signal, fd, 9, NULL, 0);
    close(fd);
    return "grandchild still running";
}

static int run(void);

__attribute__((constructor)) static void early(void)
{
    if (getenv("MP_NO_MAIN_CTOR") != NULL)
        exit(run());
}

int main(void)
{
    return run();
}

static int run(void)
{
    const char *method = getenv("MP_NO_MAIN_METHOD");
    const char *d = getenv("MP_NO_MAIN_DEPTH");
    const char *pidfile = getenv("MP_NO_MAIN_HANG");
    int depth = d != NULL ? atoi(d) : 0;
    char next[16], line[1024];
    mp_context *ctx;
    mp_process *p = NULL;
    int r;

    setvbuf(stdout, NULL, _IOLBF, 0);
    if (depth >= 5)
        return 99;
    if (pidfile != NULL && depth == 1)
        hang(pidfile);
    snprintf(next, sizeof(next), "%d", depth + 1);
    setenv("MP_NO_MAIN_DEPTH", next, 1);
    r = mp_get_context(&ctx, method != NULL ? method : "spawn");
    if (r == 0)
        r = mp_context_process_new(ctx, &p, "nothing", NULL, 0, NULL);
    if (r == 0)
        r = mp_process_start(p);
    if (r == 0)
        r = mp_process_join(p, MP_FOREVER);
    mp_format_exception(r, line, sizeof(line));
    printf("%d: %s\n", depth, r < 0 ? line : "started");
    if (pidfile != NULL && depth == 0)
        printf("%s\n", grandchild_fate(pidfile));
    mp_process_free(p);
    return r < 0 ? 1 : 0;
}
