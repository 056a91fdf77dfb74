/* terminate.c - terminate() and join(): exitcode -15 (SIGTERM).  Under a
 * pipe, the child's buffered lines die with it. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(long_task)
{
    for (int i = 0; i < 100; i++) {
        printf("Step %d\n", i);
        mp_wait(NULL, 0, 0.1, NULL); /* sleep(0.1) */
    }
    return 0;
}

int main(int argc, char **argv)
{
    mp_stop_actions stop = { .first = { MP_STOP_TERMINATE, MP_FOREVER } };
    mp_process *p;
    int code;

    mp_main(argc, argv);
    mp_check(mp_process_create(&p, &long_task_target, NULL, 0, NULL));
    mp_check(mp_process_start(p));
    mp_wait(NULL, 0, 1, NULL); /* let it run for about a second */
    mp_check(mp_process_stop(p, &stop, &code));
    printf("Process exitcode: %d\n", code);
    return 0;
}
