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
    int code, r;

    mp_main(argc, argv);
    r = mp_process_create(&process, &example_target, MP_ARGS("Hi"), NULL);
    if (r < 0 || (r = mp_process_start(process)) < 0 ||
        (r = mp_process_join(process, MP_FOREVER)) < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    mp_process_exitcode(process, &code);
    printf("%d\n", code);
    return 0;
}
