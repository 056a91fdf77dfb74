/* daemon_property.c - setting the daemon flag after construction. */
#include <stdio.h>

#include <mp.h>

int main(int argc, char **argv)
{
    mp_process *process;
    int r;

    mp_main(argc, argv);
    r = mp_process_create(&process, NULL, NULL, 0, NULL);
    if (r == 0)
        r = mp_process_set_daemon(process, 1);
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    puts(mp_process_daemon(process) ? "True" : "False");
    return 0;
}
