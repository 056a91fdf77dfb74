/* basic_worker.c - a target with arguments, start() and join(). */
#include <stdio.h>
#include <unistd.h>

#include <mp.h>

MP_TARGET(worker)
{
    const char *name = mp_args_str(args, 0);
    long long duration = mp_args_int(args, 1);

    printf("[%s] Starting\n", name);
    sleep(duration);
    printf("[%s] Done after %llds\n", name, duration);
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p;

    mp_main(argc, argv);
    mp_check(mp_process_create(&p, &worker_target, MP_ARGS("Worker-1", 2),
                               NULL));
    mp_check(mp_process_start(p));
    mp_check(mp_process_join(p, MP_FOREVER));
    puts("Main process finished");
    return 0;
}
