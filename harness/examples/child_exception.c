/* child_exception.c - a target that raises: the child prints the exception
 * on stderr and its exit code is 1. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(example)
{
    return mp_raise("NameError", "name 'name' is not defined");
}

int main(int argc, char **argv)
{
    mp_process *process;
    int code;

    mp_main(argc, argv);
    mp_check(mp_process_create(&process, &example_target, MP_ARGS("Hi"),
                               NULL));
    mp_check(mp_process_start(process));
    mp_check(mp_process_join(process, MP_FOREVER));
    mp_check(mp_process_exitcode(process, &code));
    printf("%d\n", code);
    return 0;
}
