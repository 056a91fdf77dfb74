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

    mp_main(argc, argv);
    mp_check(mp_process_create(&process, &task_target, NULL, 0, NULL));
    mp_check(mp_process_start(process));
    mp_check(mp_process_join(process, MP_FOREVER));
    mp_check(mp_process_start(process));
    return 0;
}
