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

    mp_main(argc, argv);
    mp_check(mp_process_create(&p, &worker_target, NULL, 0,
                               &(mp_process_options){ .name = "MyWorker" }));
    mp_check(mp_process_start(p));
    mp_check(mp_process_join(p, MP_FOREVER));
    return 0;
}
