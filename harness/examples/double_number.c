/* double_number.c - a result back from a child, through a queue. */
#include <stdio.h>

#include <mp.h>

MP_TARGET(double_number)
{
    return mp_queue_put_i64(mp_args_queue(args, 1), mp_args_int(args, 0) * 2);
}

int main(int argc, char **argv)
{
    mp_process *p;
    mp_queue *q;
    long long result;

    mp_main(argc, argv);
    mp_check(mp_queue_new(&q, 0));
    mp_check(mp_process_create(&p, &double_number_target, MP_ARGS(10, q),
                               NULL));
    mp_check(mp_process_start(p));
    mp_check(mp_process_join(p, MP_FOREVER));
    mp_check(mp_queue_get_i64(q, &result, MP_FOREVER));
    printf("Doubled number: %lld\n", result);
    return 0;
}
