/* hello.c - the README's example: start a child, join it, read its exitcode.
 *   cc hello.c $(pkg-config --cflags --libs mp) -o hello */
#include <stdio.h>

#include <mp.h>

MP_TARGET(greet)
{
    printf("Hello from %s: %.*s\n", mp_process_name(mp_current_process()),
           (int)len, (const char *)arg);
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *p = NULL;
    int code = 0;
    int r;

    mp_main(argc, argv); /* first: spawned children start here */
    r = mp_process_new(&p, "greet", "world", 5, NULL);

    if (r == 0)
        r = mp_process_start(p);
    if (r == 0)
        r = mp_process_join(p, MP_FOREVER);
    if (r < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    mp_process_exitcode(p, &code);
    printf("exitcode %d\n", code);
    p = mp_process_free(p);
    return 0;
}
