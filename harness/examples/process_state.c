/* process_state.c - is_alive(), pid and exitcode around start() and
 * join().  The pid differs from run to run: it is printed as <pid>. */
#include <stdio.h>
#include <unistd.h>

#include <mp.h>

MP_TARGET(worker)
{
    sleep(2);
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p;
    pid_t pid;
    int code;

    mp_main(argc, argv);
    mp_check(mp_process_create(&p, &worker_target, NULL, 0, NULL));
    printf("is_alive() before start: %s\n",
           mp_check(mp_process_is_alive(p)) ? "True" : "False");
    mp_check(mp_process_start(p));
    printf("is_alive() after start: %s\n",
           mp_check(mp_process_is_alive(p)) ? "True" : "False");
    printf("pid: %s\n", mp_check(mp_process_pid(p, &pid)) ? "<pid>" : "None");
    mp_check(mp_process_join(p, MP_FOREVER));
    printf("is_alive() after join: %s\n",
           mp_check(mp_process_is_alive(p)) ? "True" : "False");
    mp_check(mp_process_exitcode(p, &code));
    printf("exitcode: %d\n", code);
    return 0;
}
