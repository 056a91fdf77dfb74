/* queue_nonblocking.c - a size limited queue: put and get without blocking
 * or with a timeout, qsize(), full() and empty(). */
#include <stdio.h>

#include <mp.h>

int main(int argc, char **argv)
{
    mp_queue *queue;
    char a[8], b[8];
    size_t len;
    int r;

    mp_main(argc, argv);
    r = mp_queue_new(&queue, 2);
    if (r == 0)
        r = mp_queue_put_str(queue, "A");
    if (r == 0)
        r = mp_queue_put(queue, "B", 1, 1, MP_FOREVER);
    if (r < 0)
        goto fail;
    if (mp_queue_full(queue) == 1)
        puts("full");
    if (mp_queue_put_nowait(queue, "C", 1) == MP_EFULL)
        puts("Full");
    if (mp_queue_put(queue, "C", 1, 1, 0.1) == MP_EFULL)
        puts("Full after the timeout");
    printf("%d\n", mp_queue_qsize(queue));
    r = mp_queue_get_into(queue, a, sizeof a - 1, &len, 1, MP_FOREVER);
    if (r < 0)
        goto fail;
    a[len] = '\0';
    r = mp_queue_get_into(queue, b, sizeof b - 1, &len, 1, MP_FOREVER);
    if (r < 0)
        goto fail;
    b[len] = '\0';
    printf("%s %s\n", a, b);
    if (mp_queue_get_into(queue, a, sizeof a, &len, 0, 0) == MP_EEMPTY)
        puts("Empty");
    if (mp_queue_get_into(queue, a, sizeof a, &len, 1, 0.1) == MP_EEMPTY)
        puts("Empty after the timeout");
    if (mp_queue_empty(queue) == 1)
        puts("empty");
    return 0;
fail:
    fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
    return 1;
}
