/* sys_exit.c - a child that exits with mp_exit(1), Python's sys.exit(1),
 * sets its exitcode. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(task)
{
    mp_exit(1);
}

int main(int argc, char **argv)
{
    mp_process *process;
    int code;

    mp_main(argc, argv);
    mp_check(mp_process_create(&process, &task_target, NULL, 0, NULL));
    mp_check(mp_process_start(process));
    mp_check(mp_process_join(process, MP_FOREVER));
    mp_check(mp_process_exitcode(process, &code));
    printf("%d\n", code);
    return 0;
}
