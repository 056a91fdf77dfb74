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
    int code, r;

    mp_main(argc, argv);
    r = mp_process_create(&process, &task_target, NULL, 0, NULL);
    if (r < 0 || (r = mp_process_start(process)) < 0 ||
        (r = mp_process_join(process, MP_FOREVER)) < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    mp_process_exitcode(process, &code);
    printf("%d\n", code);
    return 0;
}
