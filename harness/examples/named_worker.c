/* named_worker.c - a process given a name, which it reads as its own. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(worker)
{
    printf("Running in process: %s\n", mp_process_name(mp_current_process()));
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p;
    int r;

    mp_main(argc, argv);
    r = mp_process_create(&p, &worker_target, NULL, 0,
                          &(mp_process_options){ .name = "MyWorker" });
    if (r < 0 || (r = mp_process_start(p)) < 0 ||
        (r = mp_process_join(p, MP_FOREVER)) < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    return 0;
}
