/* queue_nonblocking.c - a size limited queue: put and get without blocking
 * or with a timeout, qsize(), full() and empty(). */
#include <stdio.h>
#include <stdlib.h>

#include <mp.h>

int main(int argc, char **argv)
{
    mp_queue *queue;
    char *a, *b;
    size_t len;

    mp_main(argc, argv);
    mp_check(mp_queue_new(&queue, 2));
    mp_check(mp_queue_put_str(queue, "A"));
    mp_check(mp_queue_put(queue, "B", 1, 1, MP_FOREVER));
    if (mp_check(mp_queue_full(queue)))
        puts("full");
    if (mp_queue_put_nowait(queue, "C", 1) == MP_EFULL)
        puts("Full");
    if (mp_queue_put(queue, "C", 1, 1, 0.1) == MP_EFULL)
        puts("Full after the timeout");
    printf("%d\n", mp_check(mp_queue_qsize(queue)));
    mp_check(mp_queue_get_str(queue, &a, MP_FOREVER));
    mp_check(mp_queue_get_str(queue, &b, MP_FOREVER));
    printf("%s %s\n", a, b);
    free(a);
    free(b);
    if (mp_queue_get_nowait(queue, (void **)&a, &len) == MP_EEMPTY)
        puts("Empty");
    if (mp_queue_get_str(queue, &a, 0.1) == MP_EEMPTY)
        puts("Empty after the timeout");
    if (mp_check(mp_queue_empty(queue)))
        puts("empty");
    return 0;
}
