/* restart.c - a process cannot be started twice: the second start() is
 * AssertionError, which ends the program as Python's uncaught one does. */
#include <stdio.h>
#include <unistd.h>

#include <mp.h>

MP_TARGET(task)
{
    sleep(1);
    puts("Hello from the new process");
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *process;
    int r;

    mp_main(argc, argv);
    r = mp_process_create(&process, &task_target, NULL, 0, NULL);
    if (r == 0)
        r = mp_process_start(process);
    if (r == 0)
        r = mp_process_join(process, MP_FOREVER);
    if (r == 0)
        r = mp_process_start(process); /* MP_ESTARTTWICE */
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    return 0;
}
