/* greet_kwargs.c - a keyword argument: a value reached by its name. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(greet)
{
    const char *greeting = mp_args_str_or(args, "greeting", "Hello");

    printf("%s, %s!\n", greeting, mp_args_str(args, 0));
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p;

    mp_main(argc, argv);
    mp_check(mp_process_create(&p, &greet_target,
                               MP_ARGS("Alice", MP_NAMED("greeting", "Hi")),
                               NULL));
    mp_check(mp_process_start(p));
    mp_check(mp_process_join(p, MP_FOREVER));
    return 0;
}
