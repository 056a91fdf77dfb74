/* pipe_send_recv.c - the child sends on a pipe, the parent polls and
 * receives. */
#include <stdio.h>
#include <stdlib.h>

#include <mp.h>

MP_TARGET(task)
{
    return mp_conn_send_bytes(mp_args_conn(args, 0), "Hello world", 11);
}

int main(int argc, char **argv)
{
    mp_conn *conn1, *conn2;
    mp_process *process;
    void *object;
    size_t len;
    int r;

    mp_main(argc, argv);
    r = mp_pipe(&conn1, &conn2, 1);
    if (r == 0)
        r = mp_process_create(&process, &task_target, MP_ARGS(conn2), NULL);
    if (r == 0)
        r = mp_process_start(process);
    if (r == 0 && (r = mp_conn_poll(conn1, 5)) == 1 &&
        (r = mp_conn_recv_bytes(conn1, &object, &len, MP_NOLIMIT)) == 0) {
        puts(object);
        free(object);
    }
    if (r < 0 || (r = mp_process_join(process, MP_FOREVER)) < 0) {
        fprintf(stderr, "%s: %s\n", mp_exception_name(r), mp_strerror(r));
        return 1;
    }
    return 0;
}
