/* daemon_property.c - setting the daemon flag after construction. */
#include <stdio.h>

#include <mp.h>

int main(int argc, char **argv)
{
    mp_process *process;

    mp_main(argc, argv);
    mp_check(mp_process_create(&process, NULL, NULL, 0, NULL));
    mp_check(mp_process_set_daemon(process, 1));
    puts(mp_process_daemon(process) ? "True" : "False");
    return 0;
}
