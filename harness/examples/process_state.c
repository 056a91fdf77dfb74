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
    int code, r;

    mp_main(argc, argv);
    r = mp_process_create(&p, &worker_target, NULL, 0, NULL);
    if (r < 0)
        goto fail;
    printf("is_alive() before start: %s\n",
           mp_process_is_alive(p) == 1 ? "True" : "False");
    if ((r = mp_process_start(p)) < 0)
        goto fail;
    printf("is_alive() after start: %s\n",
           mp_process_is_alive(p) == 1 ? "True" : "False");
    printf("pid: %s\n", mp_process_pid(p, &pid) == 1 ? "<pid>" : "None");
    if ((r = mp_process_join(p, MP_FOREVER)) < 0)
        goto fail;
    printf("is_alive() after join: %s\n",
           mp_process_is_alive(p) == 1 ? "True" : "False");
    mp_process_exitcode(p, &code);
    printf("exitcode: %d\n", code);
    return 0;
fail:
    fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
    return 1;
}
