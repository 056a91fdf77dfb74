/*
 * object_churn.c - the "object-churn" part: queues (Queue, bounded Queue,
 * JoinableQueue, SimpleQueue in turn) and pipes (duplex and one-way in
 * turn) made, used once (one put and get, one send and receive, of a
 * message checked byte for byte) and freed, by the hundred thousand.  At
 * the end the process must hold what it held at the start: the same
 * descriptors, as many mappings (a queue maps its ring and reserves room
 * for it to grow: all of it must go), RSS within RSS_SLACK_KIB.  No
 * processes: it runs once, without a start method.
 */
#include <stdlib.h>
#include <string.h>

#include "checked_msg.h"
#include "stress.h"

/* What RSS may grow by: the allocator keeps some of what it was given
 * back (malloc's trim threshold). */
#define RSS_SLACK_KIB 1024
#define MSG_MAX 1024

static unsigned char out[MSG_MAX], in[MSG_MAX];

static size_t fill(uint32_t i)
{
    size_t n = stress_below(MSG_MAX);

    for (size_t k = 0; k < n; k++)
        out[k] = checked_pat(i, 1, k);
    return n;
}

static bool same(struct stress_run *r, const char *what, uint32_t i,
                 size_t want, size_t got)
{
    if (got != want || memcmp(in, out, got) != 0)
        return stress_fail(r, "%s %u: sent %zu bytes, got %zu %s", what, i,
                           want, got, got == want ? "that differ" : "");
    return true;
}

static bool one_queue(struct stress_run *r, uint32_t i)
{
    size_t n = fill(i), got = 0;
    mp_queue *q = NULL;
    bool ok;

    switch (i % 4) {
    case 0: ok = STRESS_OK(r, mp_queue_new(&q, 0)); break;
    case 1: ok = STRESS_OK(r, mp_queue_new(&q, 4)); break;
    case 2: ok = STRESS_OK(r, mp_joinable_queue_new(&q, 0)); break;
    default: ok = STRESS_OK(r, mp_simple_queue_new(&q)); break;
    }
    ok = ok && STRESS_OK(r, mp_queue_put(q, out, n, 1, 10));
    ok = ok && STRESS_OK(r, mp_queue_get_into(q, in, sizeof(in), &got, 1,
                                              10));
    ok = ok && same(r, "queue", i, n, got);
    if (ok && i % 4 == 2)
        ok = STRESS_OK(r, mp_queue_task_done(q)) &&
             STRESS_OK(r, mp_queue_join(q, 10));
    mp_queue_free(q);
    return ok;
}

static bool one_pipe(struct stress_run *r, uint32_t i)
{
    size_t n = fill(i), got = 0;
    mp_conn *a = NULL, *b = NULL;
    int duplex = i % 2 == 0;
    bool ok;

    /* one-way: (a, b) = (read end, write end); duplex: b sends to a */
    ok = STRESS_OK(r, mp_pipe(&a, &b, duplex));
    ok = ok && STRESS_OK(r, mp_conn_send_bytes(b, out, n));
    ok = ok && STRESS_OK(r, mp_conn_recv_bytes_into(a, in, sizeof(in), &got));
    ok = ok && same(r, duplex ? "duplex pipe" : "pipe", i, n, got);
    mp_conn_free(a);
    mp_conn_free(b);
    return ok;
}

static void object_churn(struct stress_run *r)
{
    long count = stress_size(r, 100000, 5000);
    struct stress_snap before;
    double t0, t1, t2;
    long q = 0, p = 0;

    for (uint32_t i = 0; i < 4; i++) /* every kind once before the snapshot */
        if (!one_queue(r, i) || !one_pipe(r, i))
            return;
    stress_snap(&before);
    t0 = bench_now();
    while (q < count && one_queue(r, (uint32_t)q))
        q++;
    t1 = bench_now();
    while (p < count && one_pipe(r, (uint32_t)p))
        p++;
    t2 = bench_now();
    stress_figure(r, "queues", (double)q, "%.0f queues");
    stress_figure(r, "queues_per_s", q / (t1 - t0), "%.0f queues/s");
    stress_figure(r, "pipes", (double)p, "%.0f pipes");
    stress_figure(r, "pipes_per_s", p / (t2 - t1), "%.0f pipes/s");
    stress_check(r, &before, RSS_SLACK_KIB, NULL, 0);
}

STRESS_PART(object_churn,
            .name = "object-churn",
            .about = "queues and pipes made, used once and freed",
            .methods = 0, .order = 20,
            .timeout_full = 120, .timeout_short = 20,
            .run = object_churn)
