/* queue_producer_consumer.c - a producer process puts items on a queue, a
 * consumer process gets them until it gets -1 (Python's None). */
#include <stdio.h>

#include <mp.h>

MP_TARGET(producer)
{
    mp_queue *queue = mp_args_queue(args, 0);
    int r = 0;

    for (long long item = 0; r == 0 && item < 5; item++)
        r = mp_queue_put_i64(queue, item);
    return r < 0 ? r : mp_queue_put_i64(queue, -1);
}

MP_TARGET(consumer)
{
    mp_queue *queue = mp_args_queue(args, 0);
    long long item;
    int r;

    while ((r = mp_queue_get_i64(queue, &item, MP_FOREVER)) == 0 && item != -1)
        printf("Got %lld\n", item);
    return r;
}

int main(int argc, char **argv)
{
    mp_process *consumer_process, *producer_process;
    mp_queue *queue;
    int r;

    mp_main(argc, argv);
    r = mp_queue_new(&queue, 100);
    if (r == 0)
        r = mp_process_create(&consumer_process, &consumer_target,
                              MP_ARGS(queue), NULL);
    if (r == 0)
        r = mp_process_start(consumer_process);
    if (r == 0)
        r = mp_process_create(&producer_process, &producer_target,
                              MP_ARGS(queue), NULL);
    if (r < 0 || (r = mp_process_start(producer_process)) < 0 ||
        (r = mp_process_join(producer_process, MP_FOREVER)) < 0 ||
        (r = mp_process_join(consumer_process, MP_FOREVER)) < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    puts("Done");
    return 0;
}
