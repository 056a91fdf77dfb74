/* daemon_exit.c - the main process ends its daemonic child as it exits.
 * Under a pipe, the daemon's buffered lines die with it. */
#include <stdio.h>
#include <unistd.h>

#include <mp.h>

MP_TARGET(long_running)
{
    for (int i = 0; i < 10; i++) {
        printf("Iteration %d\n", i);
        sleep(1);
    }
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p_normal, *p_daemon;
    int r;

    mp_main(argc, argv);
    r = mp_process_create(&p_normal, &long_running_target, NULL, 0,
                          &(mp_process_options){ .daemon = MP_DAEMON_NO });
    if (r == 0)
        r = mp_process_create(&p_daemon, &long_running_target, NULL, 0,
                              &(mp_process_options){ .daemon = MP_DAEMON_YES });
    if (r == 0)
        r = mp_process_start(p_daemon);
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    mp_wait(NULL, 0, 0.1, NULL); /* sleep(0.1) */
    puts("Main exiting (daemon is terminated)");
    return 0;
}
