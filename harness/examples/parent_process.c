/* parent_process.c - a child reports its parent process. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(task)
{
    char repr[256];

    mp_process_repr(mp_parent_process(), repr, sizeof repr);
    puts(repr);
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *process;

    mp_main(argc, argv);
    mp_check(mp_process_create(&process, &task_target, NULL, 0, NULL));
    mp_check(mp_process_start(process));
    mp_check(mp_process_join(process, MP_FOREVER));
    return 0;
}
