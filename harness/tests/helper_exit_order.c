/*
 * helper_exit_order.c - a main process that prints a line (buffered: its
 * stdout is a pipe) and exits without joining a child that prints later.
 * CPython's main flushes its stdout before it joins its children at exit,
 * so its last line comes first.  Used by test_process.c.
 */
#include <stdio.h>
#include <time.h>

#include "mp.h"

MP_TARGET(late_line)
{
    struct timespec t = { 0, 300000000 };

    (void)arg; (void)len;
    nanosleep(&t, NULL);
    printf("child\n");
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p;

    mp_main(argc, argv);
    if (mp_process_new(&p, "late_line", NULL, 0, NULL) < 0 ||
        mp_process_start(p) < 0)
        return 1;
    printf("parent last line\n");
    mp_process_free(p);
    return 0;
}
