/* sleep_message.c - a float and a str as arguments. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(task)
{
    mp_wait(NULL, 0, mp_args_double(args, 0), NULL); /* sleep(sleep_time) */
    puts(mp_args_str(args, 1));
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p;

    mp_main(argc, argv);
    mp_check(mp_process_create(
        &p, &task_target, MP_ARGS(1.5, "New message from another process"),
        NULL));
    mp_check(mp_process_start(p));
    puts("Waiting for the process...");
    mp_check(mp_process_join(p, MP_FOREVER));
    return 0;
}
