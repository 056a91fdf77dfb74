/* start_methods.c - list the start methods, set one (once only), and start
 * a process from each one's context. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(task)
{
    printf("Hello from a %s child\n", mp_args_str(args, 0));
    return 0;
}

int main(int argc, char **argv)
{
    const char *methods[3];
    size_t n;
    int r;

    mp_main(argc, argv);
    n = mp_get_all_start_methods(methods, 3);
    for (size_t i = 0; i < n; i++)
        printf("%s'%s'%s", i ? ", " : "[", methods[i], i + 1 < n ? "" : "]\n");
    mp_check(mp_set_start_method("spawn", 0));
    puts(mp_get_start_method(0));
    if ((r = mp_set_start_method("fork", 0)) == MP_ECONTEXTSET)
        printf("RuntimeError: %s\n", mp_strerror(r));
    for (size_t i = 0; i < n; i++) {
        mp_process_options options = { 0 };
        mp_process *process;

        mp_check(mp_get_context(&options.context, methods[i]));
        mp_check(mp_process_create(&process, &task_target, MP_ARGS(methods[i]),
                                   &options));
        mp_check(mp_process_start(process));
        mp_check(mp_process_join(process, MP_FOREVER));
        puts(mp_process_name(process));
    }
    return 0;
}
