/* hello_many.c - one process per name; the lines come back on a queue and
 * are printed sorted, as the children may run in any order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <mp.h>

MP_TARGET(say_hello)
{
    char line[64];

    snprintf(line, sizeof line, "Hello from %s!", mp_args_str(args, 0));
    return mp_queue_put_str(mp_args_queue(args, 1), line);
}

static int by_text(const void *a, const void *b)
{
    return strcmp(*(void *const *)a, *(void *const *)b);
}

int main(int argc, char **argv)
{
    const char *names[] = { "Lucia", "Cherish", "Stephen", "Mary" };
    mp_process *processes[4];
    void *lines[4];
    mp_queue *q;
    size_t len;

    mp_main(argc, argv);
    mp_check(mp_queue_new(&q, 0));
    for (int i = 0; i < 4; i++) {
        mp_check(mp_process_create(&processes[i], &say_hello_target,
                                   MP_ARGS(names[i], q), NULL));
        mp_check(mp_process_start(processes[i]));
    }
    for (int i = 0; i < 4; i++)
        mp_check(mp_process_join(processes[i], MP_FOREVER));
    for (int i = 0; i < 4; i++)
        mp_check(mp_queue_get(q, &lines[i], &len, 1, MP_FOREVER));
    qsort(lines, 4, sizeof *lines, by_text);
    for (int i = 0; i < 4; i++)
        puts(lines[i]);
    return 0;
}
