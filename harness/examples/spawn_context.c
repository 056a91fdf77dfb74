/* spawn_context.c - a process from the "spawn" context: a fresh run of
 * this program, which is why main() calls mp_main() first. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(say_hello)
{
    printf("Hello from %s!\n", mp_args_str(args, 0));
    return 0;
}

int main(int argc, char **argv)
{
    mp_context *ctx;
    mp_process *p;

    mp_main(argc, argv);
    mp_check(mp_get_context(&ctx, "spawn"));
    mp_check(mp_process_create(&p, &say_hello_target, MP_ARGS("Samantha"),
                               &(mp_process_options){ .context = ctx }));
    mp_check(mp_process_start(p));
    mp_check(mp_process_join(p, MP_FOREVER));
    return 0;
}
