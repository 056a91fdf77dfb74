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
    int r;

    mp_main(argc, argv);
    r = mp_process_create(&p, &worker_target, MP_ARGS("Worker-1", 2), NULL);
    if (r < 0 || (r = mp_process_start(p)) < 0 ||
        (r = mp_process_join(p, MP_FOREVER)) < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    puts("Main process finished");
    return 0;
}
