/* queue_producer_consumer.c - a producer process puts items on a queue, a
 * consumer process gets them until it gets -1 (Python's None). */
#include <stdio.h>

#include <mp.h>

MP_TARGET(producer)
{
    mp_queue *queue = mp_args_queue(args, 0);

    for (long long item = 0; item < 5; item++)
        mp_check(mp_queue_put_i64(queue, item));
    return mp_queue_put_i64(queue, -1);
}

MP_TARGET(consumer)
{
    mp_queue *queue = mp_args_queue(args, 0);
    long long item;

    while (mp_check(mp_queue_get_i64(queue, &item, MP_FOREVER)) == 0 &&
           item != -1)
        printf("Got %lld\n", item);
    return 0;
}

int main(int argc, char **argv)
{
    mp_process *consumer_process, *producer_process;
    mp_queue *queue;

    mp_main(argc, argv);
    mp_check(mp_queue_new(&queue, 100));
    mp_check(mp_process_create(&consumer_process, &consumer_target,
                               MP_ARGS(queue), NULL));
    mp_check(mp_process_start(consumer_process));
    mp_check(mp_process_create(&producer_process, &producer_target,
                               MP_ARGS(queue), NULL));
    mp_check(mp_process_start(producer_process));
    mp_check(mp_process_join(producer_process, MP_FOREVER));
    mp_check(mp_process_join(consumer_process, MP_FOREVER));
    puts("Done");
    return 0;
}
