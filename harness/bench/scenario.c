/*
 * scenario.c - whole programs for hyperfine: each scenario as one run of a
 * libmp program, to set beside the same scenario as one run of CPython
 * (scripts/scenario.py).  Timing is hyperfine's (scripts/bench_whole).
 *
 *   mp-scenario [--method M] none                  start and exit
 *   mp-scenario [--method M] start_join            one empty child
 *   mp-scenario [--method M] start_n N             N children, then join all
 *   mp-scenario [--method M] daemon_teardown K     K daemonic children that
 *                                                  never end; exit (libmp
 *                                                  terminates and joins them)
 *   mp-scenario [--method M] queue N               N 64-byte messages from a
 *                                                  child through a Queue
 *   mp-scenario queue_ops N                        N put+get pairs of 64 bytes
 *   mp-scenario pipe_ops N                         N send+recv pairs of 64
 *                                                  bytes on a duplex Pipe
 *   mp-scenario [--method M] start_join_ops N      N times: start an empty
 *                                                  child, join it
 *   mp-scenario lock_ops N | rlock_ops N           N acquire+release pairs
 *                                                  of a Lock (an RLock)
 *   mp-scenario raw_lock_ops N                     the same on the bare futex
 *                                                  mutex of rawsync.h
 *   (the *_ops for instruction counts under callgrind,
 *   scripts/bench_callgrind: one child at a time, so that a forked child,
 *   which callgrind runs too, never piles up)
 *
 * Exit status 0 when the scenario ran as it should, 1 (with a message)
 * otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "mp.h"
#include "rawsync.h"

MP_TARGET(empty) { (void)arg; (void)len; return 0; }

MP_TARGET(forever)
{
    (void)arg; (void)len;
    for (;;)
        pause();
    return 0;
}

MP_TARGET(producer)
{
    long n;
    char msg[64] = { 0 };

    memcpy(&n, arg, sizeof(n));
    (void)len;
    for (long i = 0; i < n; i++)
        if (mp_queue_put(mp_child_queue(0), msg, sizeof(msg), 1,
                         MP_FOREVER) < 0)
            return 1;
    return 0;
}

static int fail(const char *what, int err)
{
    char line[256];

    mp_format_exception(err, line, sizeof(line));
    fprintf(stderr, "mp-scenario: %s: %s\n", what, line);
    return 1;
}

static int start_n(mp_context *ctx, long n, const char *target, int daemon,
                   mp_process **ps)
{
    mp_process_options opt = { .daemon = daemon ? MP_DAEMON_YES
                                                : MP_DAEMON_INHERIT };
    int r;

    for (long i = 0; i < n; i++)
        if ((r = mp_context_process_new(ctx, &ps[i], target, NULL, 0,
                                        &opt)) < 0 ||
            (r = mp_process_start(ps[i])) < 0)
            return r;
    return 0;
}

int main(int argc, char **argv)
{
    const char *method = NULL, *what;
    mp_context *ctx;
    long n = 1;
    int r, a = 1;

    mp_main(argc, argv);
    if (argc > 2 && strcmp(argv[1], "--method") == 0) {
        method = argv[2];
        a = 3;
    }
    if (a >= argc) {
        fprintf(stderr, "usage: mp-scenario [--method M] none|start_join|"
                "start_n N|daemon_teardown K|queue N\n");
        return 2;
    }
    what = argv[a];
    if (a + 1 < argc && (n = atol(argv[a + 1])) < 1) {
        fprintf(stderr, "mp-scenario: N must be a positive integer\n");
        return 2;
    }
    if ((r = mp_get_context(&ctx, method)) < 0)
        return fail("get_context", r);
    if (strcmp(what, "none") == 0)
        return 0;
    if (strcmp(what, "start_join") == 0 || strcmp(what, "start_n") == 0) {
        mp_process **ps = calloc((size_t)n, sizeof(*ps));
        if (ps == NULL || (r = start_n(ctx, n, "empty", 0, ps)) < 0)
            return fail("start", ps == NULL ? -12 : r);
        for (long i = 0; i < n; i++) {
            int code = -1;
            if ((r = mp_process_join(ps[i], MP_FOREVER)) < 0)
                return fail("join", r);
            if (mp_process_exitcode(ps[i], &code) != 1 || code != 0)
                return fail("a child's exit code", -5);
            mp_process_free(ps[i]);
        }
        free(ps);
        return 0;
    }
    if (strcmp(what, "start_join_ops") == 0) {
        for (long i = 0; i < n; i++) {
            mp_process *p;
            int code = -1;
            if ((r = start_n(ctx, 1, "empty", 0, &p)) < 0)
                return fail("start", r);
            if ((r = mp_process_join(p, MP_FOREVER)) < 0)
                return fail("join", r);
            if (mp_process_exitcode(p, &code) != 1 || code != 0)
                return fail("a child's exit code", -5);
            mp_process_free(p);
        }
        return 0;
    }
    if (strcmp(what, "daemon_teardown") == 0) {
        mp_process **ps = calloc((size_t)n, sizeof(*ps));
        if (ps == NULL || (r = start_n(ctx, n, "forever", 1, ps)) < 0)
            return fail("start", ps == NULL ? -12 : r);
        free(ps); /* still tracked: terminated and joined at exit */
        return 0;
    }
    if (strcmp(what, "queue") == 0) {
        mp_queue *q;
        mp_process *p;
        char buf[64];
        size_t len;
        if ((r = mp_queue_new(&q, 0)) < 0 ||
            (r = mp_context_process_new(ctx, &p, "producer", &n, sizeof(n),
                                        NULL)) < 0 ||
            (r = mp_process_add_queue(p, q)) < 0 ||
            (r = mp_process_start(p)) < 0)
            return fail("queue set-up", r);
        for (long i = 0; i < n; i++)
            if ((r = mp_queue_get_into(q, buf, sizeof(buf), &len, 1,
                                       MP_FOREVER)) < 0)
                return fail("get", r);
        if ((r = mp_process_join(p, MP_FOREVER)) < 0)
            return fail("join", r);
        mp_process_free(p);
        mp_queue_free(q);
        return 0;
    }
    if (strcmp(what, "queue_ops") == 0 || strcmp(what, "pipe_ops") == 0) {
        char msg[64] = { 0 }, buf[64];
        size_t len;
        mp_queue *q = NULL;
        mp_conn *ca = NULL, *cb = NULL;
        if ((r = what[0] == 'q' ? mp_queue_new(&q, 0)
                                : mp_pipe(&ca, &cb, 1)) < 0)
            return fail("set-up", r);
        for (long i = 0; i < n; i++) {
            if (q != NULL)
                r = mp_queue_put(q, msg, sizeof(msg), 1, MP_FOREVER) < 0
                    ? -1 : mp_queue_get_into(q, buf, sizeof(buf), &len, 1,
                                             MP_FOREVER);
            else
                r = mp_conn_send_bytes(ca, msg, sizeof(msg)) < 0
                    ? -1 : mp_conn_recv_bytes_into(cb, buf, sizeof(buf), &len);
            if (r < 0)
                return fail(what, r);
        }
        mp_queue_free(q);
        mp_conn_free(ca);
        mp_conn_free(cb);
        return 0;
    }
    if (strcmp(what, "lock_ops") == 0 || strcmp(what, "rlock_ops") == 0) {
        mp_lock *l;
        if ((r = what[0] == 'l' ? mp_lock_new(&l) : mp_rlock_new(&l)) < 0)
            return fail("set-up", r);
        for (long i = 0; i < n; i++)
            if ((r = mp_lock_acquire(l, 1, MP_FOREVER)) != 1 ||
                (r = mp_lock_release(l)) != 0)
                return fail(what, r < 0 ? r : MP_EINVAL);
        mp_lock_free(l);
        return 0;
    }
    if (strcmp(what, "raw_lock_ops") == 0) {
        /* shared, as a lock between processes lives */
        _Atomic uint32_t *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE,
                                   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (m == MAP_FAILED)
            return fail("mmap", -12);
        for (long i = 0; i < n; i++) {
            raw_mutex_lock(m);
            raw_mutex_unlock(m);
        }
        munmap((void *)m, sizeof(*m));
        return 0;
    }
    fprintf(stderr, "mp-scenario: unknown scenario \"%s\"\n", what);
    return 2;
}
