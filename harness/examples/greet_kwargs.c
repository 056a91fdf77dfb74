/* greet_kwargs.c - a keyword argument: a value reached by its name. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(greet)
{
    const char *greeting = "Hello";

    if (mp_args_index(args, "greeting") >= 0)
        greeting = mp_args_str(args, mp_args_at(args, "greeting"));
    printf("%s, %s!\n", greeting, mp_args_str(args, 0));
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p;
    int r;

    mp_main(argc, argv);
    r = mp_process_create(&p, &greet_target,
                          MP_ARGS("Alice", MP_NAMED("greeting", "Hi")), NULL);
    if (r < 0 || (r = mp_process_start(p)) < 0 ||
        (r = mp_process_join(p, MP_FOREVER)) < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    return 0;
}
