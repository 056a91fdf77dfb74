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
    int r;

    mp_main(argc, argv);
    r = mp_process_create(&p, &task_target,
                          MP_ARGS(1.5, "New message from another process"),
                          NULL);
    if (r == 0)
        r = mp_process_start(p);
    puts("Waiting for the process...");
    if (r == 0)
        r = mp_process_join(p, MP_FOREVER);
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    return 0;
}
