/* hello.c - the README's example: start a child with an argument, join it,
 * read its exitcode.
 *   cc hello.c $(pkg-config --cflags --libs mp) -o hello */
#include <stdio.h>

#include <mp.h>

MP_TARGET(greet)
{
    printf("Hello from %s: %s\n", mp_process_name(mp_current_process()),
           mp_args_str(args, 0));
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p;
    int code = -1;

    mp_main(argc, argv); /* first: spawned children start here */
    mp_check(mp_process_create(&p, &greet_target, MP_ARGS("world"), NULL));
    mp_check(mp_process_start(p));
    mp_check(mp_process_join(p, MP_FOREVER));
    mp_process_exitcode(p, &code);
    printf("exitcode %d\n", code);
    mp_process_free(p);
    return 0;
}
