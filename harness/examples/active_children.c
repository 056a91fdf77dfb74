/* active_children.c - list the running children: their names, sorted (the
 * order of the list and the pids change from run to run). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mp.h>

MP_TARGET(task)
{
    sleep(1);
    return 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(mp_process_name(*(mp_process *const *)a),
                  mp_process_name(*(mp_process *const *)b));
}

int main(int argc, char **argv)
{
    mp_process *processes[5], **children;
    size_t n;

    mp_main(argc, argv);
    for (int i = 0; i < 5; i++)
        mp_check(mp_process_create(&processes[i], &task_target, NULL, 0, NULL));
    for (int i = 0; i < 5; i++)
        mp_check(mp_process_start(processes[i]));
    mp_check(mp_active_children(&children, &n));
    printf("Active Children Count: %zu\n", n);
    qsort(children, n, sizeof *children, by_name);
    for (size_t i = 0; i < n; i++)
        puts(mp_process_name(children[i]));
    mp_process_list_free(children, n);
    return 0;
}
