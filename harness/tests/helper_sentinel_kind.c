/*
 * helper_sentinel_kind.c - starts a fork child and prints what its sentinel
 * is ("anon_inode:[pidfd]", or "pipe:[...]" when LIBMP_NO_PIDFD=1 is
 * obeyed).  test_context.c runs a setuid copy of it, to check that libmp
 * reads its variables with secure_getenv().
 */
#include <stdio.h>
#include <unistd.h>

#include "mp.h"

int main(int argc, char **argv)
{
    char link[64], target[128];
    mp_process *p;
    ssize_t n;
    int fd;

    mp_main(argc, argv);
    if (mp_process_new(&p, NULL, NULL, 0, NULL) < 0 || mp_process_start(p) < 0)
        return 1;
    fd = mp_process_sentinel(p);
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    printf("%.4s\n", target);
    mp_process_join(p, MP_FOREVER);
    mp_process_free(p);
    return 0;
}
