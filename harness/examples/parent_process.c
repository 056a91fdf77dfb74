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
    int r;

    mp_main(argc, argv);
    r = mp_process_create(&process, &task_target, NULL, 0, NULL);
    if (r < 0 || (r = mp_process_start(process)) < 0 ||
        (r = mp_process_join(process, MP_FOREVER)) < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    return 0;
}
