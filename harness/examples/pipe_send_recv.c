/* pipe_send_recv.c - the child sends on a pipe, the parent polls and
 * receives. */
#include <stdio.h>
#include <stdlib.h>

#include <mp.h>

MP_TARGET(task)
{
    return mp_conn_send_str(mp_args_conn(args, 0), "Hello world");
}

int main(int argc, char **argv)
{
    mp_conn *conn1, *conn2;
    mp_process *process;
    char *object;

    mp_main(argc, argv);
    mp_check(mp_pipe(&conn1, &conn2, 1));
    mp_check(mp_process_create(&process, &task_target, MP_ARGS(conn2), NULL));
    mp_check(mp_process_start(process));
    if (mp_check(mp_conn_poll(conn1, 5))) {
        mp_check(mp_conn_recv_str(conn1, &object));
        puts(object);
        free(object);
    }
    mp_check(mp_process_join(process, MP_FOREVER));
    return 0;
}
