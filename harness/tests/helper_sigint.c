/*
 * helper_sigint.c - a main process that gets SIGINT while a non-daemonic
 * child waits for a byte on descriptor argv[1] and a daemonic child sleeps.
 * It prints "ready <main pid> <child pid> <daemon pid>" and then waits for
 * a signal.  With argv[2] "handle" it calls mp_handle_sigint() first;
 * otherwise SIGINT keeps its default.  Used by test_process.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mp.h"

static int go_fd;

MP_TARGET(waits_for_go)
{
    char b;

    (void)arg; (void)len; (void)args;
    if (read(go_fd, &b, 1) != 1)
        return 3;
    printf("child done\n");
    fflush(stdout);
    return 0;
}

MP_TARGET(sleeps)
{
    (void)arg; (void)len; (void)args;
    pause(); /* until the teardown's SIGTERM */
    return 0;
}

int main(int argc, char **argv)
{
    mp_process_options daemon = { .daemon = MP_DAEMON_YES };
    mp_process *child, *d;
    pid_t cpid, dpid;

    mp_main(argc, argv);
    if (argc < 3)
        return 2;
    go_fd = atoi(argv[1]);
    if (strcmp(argv[2], "handle") == 0 && mp_handle_sigint() != 0)
        return 4;
    mp_check(mp_process_create(&child, &waits_for_go_target, NULL, 0, NULL));
    mp_check(mp_process_create(&d, &sleeps_target, NULL, 0, &daemon));
    mp_check(mp_process_start(child));
    mp_check(mp_process_start(d));
    mp_check(mp_process_pid(child, &cpid));
    mp_check(mp_process_pid(d, &dpid));
    close(go_fd); /* the child's copy is the only reader */
    printf("ready %d %d %d\n", (int)getpid(), (int)cpid, (int)dpid);
    fflush(stdout);
    for (;;)
        pause(); /* the program's own work, which SIGINT interrupts */
}
