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
    mp_process_options normal = { .daemon = MP_DAEMON_NO };
    mp_process_options daemon = { .daemon = MP_DAEMON_YES };
    mp_process *p_normal, *p_daemon;

    mp_main(argc, argv);
    mp_check(mp_process_create(&p_normal, &long_running_target, NULL, 0,
                               &normal));
    mp_check(mp_process_create(&p_daemon, &long_running_target, NULL, 0,
                               &daemon));
    mp_check(mp_process_start(p_daemon));
    mp_wait(NULL, 0, 0.1, NULL); /* sleep(0.1) */
    puts("Main exiting (daemon is terminated)");
    return 0;
}
