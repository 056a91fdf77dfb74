/*
 * queue_kill.c - the "queue-kill" part: queue users killed with SIGKILL at
 * random instants, for a set time, under each start method.
 *
 * Three producers put checked messages (checked_msg.h: producer id,
 * sequence number, bytes with a sum) into one queue, each noting in a
 * shared tally the last sequence number whose put returned; two consumers
 * get them, check each one's bytes and that each producer's come in order,
 * and count in the tally how often each (id, seq) arrived.  The part kills
 * a random producer or consumer every 0 to 4 ms and starts a new one (a
 * producer gets a new id, and one that put all its QK_SEQS messages is
 * replaced as well).  At the end it kills them all, drains what is left
 * (as many messages as qsize() said, each after every message of its
 * producer got before), and holds the tally to what libmp promises
 * (harness/lib/README.md, "Queues that survive kill -9"), as test_queue's
 * kill tests do:
 *   - every message whose put returned arrived exactly once, but at most
 *     one per killed consumer (the one it was taking), in order;
 *   - a put cut short arrived once or not at all, and nothing after it;
 *   - no message arrived corrupt or twice; qsize() is 0 once drained.
 *
 * The tally is a memfd the part maps; a spawned or forkserver child opens
 * it through /proc/<part>/fd/<n>, a fork child has its mapping already.
 */
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "checked_msg.h"
#include "stress.h"

#define PRODUCERS 3
#define CONSUMERS 2
#define QK_IDS 16384 /* producers a run may start */
#define QK_SEQS 2048 /* messages a producer puts, then it ends */

struct tally {
    int64_t returned[QK_IDS];      /* last seq whose put returned, or -1 */
    uint8_t seen[QK_IDS][QK_SEQS]; /* times each (id, seq) arrived */
    int errors;
    char error[256];
};

static struct tally *tally;

static void tally_error(const char *what, uint32_t id, uint32_t seq)
{
    if (__atomic_fetch_add(&tally->errors, 1, __ATOMIC_SEQ_CST) == 0)
        snprintf(tally->error, sizeof(tally->error), "%s (id %u seq %u)",
                 what, id, seq);
}

/* In a child: the tally, mapped through the part's descriptor unless a
 * fork already gave it. */
static int attach(const mp_args *args)
{
    char path[64];
    void *m;
    int fd;

    if (tally != NULL)
        return 0;
    snprintf(path, sizeof(path), "/proc/%lld/fd/%lld", mp_args_int(args, 1),
             mp_args_int(args, 2));
    if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0)
        return mp_raise("OSError", "%s: %s", path, strerror(errno));
    m = mmap(NULL, sizeof(*tally), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return mp_raise("OSError", "mmap of the tally failed");
    tally = m;
    return 0;
}

/* args: queue, part pid, tally fd, id */
MP_TARGET(qk_producer)
{
    static unsigned char buf[CHECKED_MSG_MAX];
    mp_queue *q = mp_args_queue(args, 0);
    uint32_t id = (uint32_t)mp_args_int(args, 3);
    int r = attach(args);

    for (uint32_t seq = 0; r == 0 && seq < QK_SEQS; seq++) {
        if ((r = mp_queue_put(q, buf, checked_msg_make(buf, id, seq), 1,
                              MP_FOREVER)) < 0)
            return r;
        __atomic_store_n(&tally->returned[id], seq, __ATOMIC_SEQ_CST);
    }
    return r;
}

/* Marks one arrival of h, which must come after every message of its
 * producer that this process got before (last: per id). */
static void arrived(const struct checked_head *h, int32_t *last)
{
    if (h->seq >= QK_SEQS) {
        tally_error("sequence number out of range", h->id, h->seq);
        return;
    }
    if ((int32_t)h->seq <= last[h->id])
        tally_error("a producer's messages out of order", h->id, h->seq);
    last[h->id] = (int32_t)h->seq;
    __atomic_fetch_add(&tally->seen[h->id][h->seq], 1, __ATOMIC_SEQ_CST);
}

/* args: queue, part pid, tally fd; gets until a stop message. */
MP_TARGET(qk_consumer)
{
    static unsigned char buf[CHECKED_MSG_MAX];
    static int32_t last[QK_IDS];
    mp_queue *q = mp_args_queue(args, 0);
    struct checked_head h;
    const char *bad;
    size_t n;
    int r = attach(args);

    for (size_t i = 0; i < QK_IDS; i++)
        last[i] = -1;
    while (r == 0) {
        if ((r = mp_queue_get_into(q, buf, sizeof(buf), &n, 1,
                                   MP_FOREVER)) < 0)
            break;
        if ((bad = checked_msg_check(buf, n, QK_IDS, &h)) != NULL)
            tally_error(bad, h.id, h.seq);
        else if (h.id == CHECKED_STOP_ID)
            return 0;
        else
            arrived(&h, last);
    }
    return r;
}

struct slot {
    mp_process *p;
    bool producer;
    int64_t id; /* a producer's */
};

struct state {
    struct stress_run *r;
    mp_queue *q;
    int tfd;
    uint32_t next_id;
    long pkills, ckills, restarts;
};

static bool start(struct state *s, struct slot *sl)
{
    struct stress_run *r = s->r;
    long long self = getpid(), fd = s->tfd;

    if (sl->producer) {
        if (s->next_id == QK_IDS)
            return stress_fail(r, "more than %d producers", QK_IDS);
        sl->id = s->next_id++;
        if (!STRESS_OK(r, mp_process_create(&sl->p, &qk_producer_target,
                                            MP_ARGS(s->q, self, fd,
                                                    (long long)sl->id),
                                            NULL)))
            return false;
    } else if (!STRESS_OK(r, mp_process_create(&sl->p, &qk_consumer_target,
                                               MP_ARGS(s->q, self, fd),
                                               NULL))) {
        return false;
    }
    return STRESS_OK(r, mp_process_start(sl->p));
}

/* Kills the slot's process (one that ended by itself is only joined) and
 * checks how it ended. */
static bool stop(struct state *s, struct slot *sl)
{
    struct stress_run *r = s->r;
    int code = 0;
    bool ok;

    ok = STRESS_OK(r, mp_process_kill(sl->p)) &&
         STRESS_OK(r, mp_process_join(sl->p, 30)) &&
         mp_process_exitcode(sl->p, &code) == 1;
    if (ok && code == -SIGKILL)
        *(sl->producer ? &s->pkills : &s->ckills) += 1;
    else if (ok && !(sl->producer && code == 0))
        ok = stress_fail(r, "a %s ended with exit code %d",
                         sl->producer ? "producer" : "consumer", code);
    else if (!ok)
        stress_fail(r, "a %s could not be killed and joined",
                    sl->producer ? "producer" : "consumer");
    sl->p = mp_process_free(sl->p);
    return ok;
}

/* Drains the queue here: qsize() messages, each after all its producer's
 * messages got so far. */
static long drain(struct state *s)
{
    static unsigned char buf[CHECKED_MSG_MAX];
    static int32_t last[QK_IDS];
    struct checked_head h;
    int size = mp_queue_qsize(s->q);
    const char *bad;
    long n = 0;
    size_t len;

    for (uint32_t id = 0; id < s->next_id; id++) {
        last[id] = -1;
        for (int32_t seq = 0; seq < QK_SEQS; seq++)
            if (tally->seen[id][seq] > 0)
                last[id] = seq;
    }
    while (mp_queue_get_into(s->q, buf, sizeof(buf), &len, 0, 0) == 0) {
        n++;
        if ((bad = checked_msg_check(buf, len, QK_IDS, &h)) != NULL)
            tally_error(bad, h.id, h.seq);
        else if (h.id != CHECKED_STOP_ID)
            arrived(&h, last);
    }
    if (n != size)
        stress_fail(s->r, "qsize() was %d with nobody using the queue, but "
                    "%ld messages were in it", size, n);
    if (mp_queue_qsize(s->q) != 0 || mp_queue_empty(s->q) != 1)
        stress_fail(s->r, "drained, but qsize() is %d and empty() %d",
                    mp_queue_qsize(s->q), mp_queue_empty(s->q));
    return n;
}

/* Holds the tally to the promise; returns the messages delivered. */
static long judge(struct state *s, long *put, long *lost, long *cut)
{
    long delivered = 0;

    *put = *lost = *cut = 0;
    if (tally->errors)
        stress_fail(s->r, "%d bad messages, first: %s", tally->errors,
                    tally->error);
    for (uint32_t id = 0; id < s->next_id; id++) {
        int64_t ret = tally->returned[id];

        *put += ret + 1;
        for (int64_t seq = 0; seq < QK_SEQS; seq++) {
            int seen = tally->seen[id][seq];

            delivered += seen;
            if (seen > 1)
                stress_fail(s->r, "producer %u message %lld arrived %d "
                            "times", id, (long long)seq, seen);
            else if (seq <= ret && seen == 0)
                (*lost)++;
            else if (seq == ret + 1)
                *cut += seen;
            else if (seq > ret + 1 && seen > 0)
                stress_fail(s->r, "producer %u message %lld arrived, but "
                            "its put %lld had not returned", id,
                            (long long)seq, (long long)ret + 1);
        }
    }
    if (*lost > s->ckills)
        stress_fail(s->r, "%ld messages whose put returned were lost, with "
                    "%ld consumers killed (at most one each)", *lost,
                    s->ckills);
    return delivered;
}

static void queue_kill(struct stress_run *r)
{
    double seconds = stress_size(r, 60, 3), t0, end, t1;
    struct slot slots[PRODUCERS + CONSUMERS];
    struct state s = { .r = r, .tfd = -1 };
    struct stress_snap before;
    pid_t server;
    long put, lost, cut, delivered, drained;

#ifdef STRESS_UNDER_ASAN
    {
        /* A producer that ends by itself runs LeakSanitizer, whose tracer
         * is a process of its own: killed then, it leaves the tracer to
         * the driver, a stray.  The children it starts check no leaks. */
        const char *o = getenv("ASAN_OPTIONS");
        char opts[1024];

        snprintf(opts, sizeof(opts), "%s%sdetect_leaks=0", o ? o : "",
                 o && *o ? ":" : "");
        setenv("ASAN_OPTIONS", opts, 1);
    }
#endif
    server = stress_warm_up(r);
    stress_snap(&before);

    s.tfd = memfd_create("mp-stress-tally", MFD_CLOEXEC);
    if (s.tfd < 0 || ftruncate(s.tfd, sizeof(*tally)) < 0 ||
        (tally = mmap(NULL, sizeof(*tally), PROT_READ | PROT_WRITE,
                      MAP_SHARED, s.tfd, 0)) == MAP_FAILED) {
        stress_fail(r, "the tally: %s", strerror(errno));
        return;
    }
    for (size_t i = 0; i < QK_IDS; i++)
        tally->returned[i] = -1;
    if (!STRESS_OK(r, mp_queue_new(&s.q, 0)))
        return;
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++) {
        slots[i] = (struct slot){ .producer = i < PRODUCERS };
        if (!start(&s, &slots[i]))
            return;
    }
    t0 = bench_now();
    end = t0 + seconds;
    while (!r->failed && bench_now() < end) {
        struct slot *sl = &slots[stress_below(PRODUCERS + CONSUMERS)];

        /* a random instant */
        usleep((useconds_t)stress_below(4000));
        for (int i = 0; i < PRODUCERS; i++)
            if (mp_process_is_alive(slots[i].p) == 0 &&
                (!stop(&s, &slots[i]) || !start(&s, &slots[i])))
                break;
        if (r->failed || !stop(&s, sl) || !start(&s, sl))
            break;
        s.restarts++;
    }
    for (int i = 0; i < PRODUCERS + CONSUMERS; i++)
        if (slots[i].p != NULL)
            stop(&s, &slots[i]);
    t1 = bench_now();
    drained = drain(&s);
    delivered = judge(&s, &put, &lost, &cut);
    stress_figure(r, "producer_kills", (double)s.pkills,
                  "%.0f producers killed");
    stress_figure(r, "consumer_kills", (double)s.ckills,
                  "%.0f consumers killed");
    stress_figure(r, "kills_per_s", (s.pkills + s.ckills) / (t1 - t0),
                  "%.0f kills/s");
    stress_figure(r, "puts_returned", (double)put, "%.0f puts");
    stress_figure(r, "delivered", (double)delivered, NULL);
    stress_figure(r, "drained_at_end", (double)drained, NULL);
    stress_figure(r, "cut_short_delivered", (double)cut, NULL);
    stress_figure(r, "lost", (double)lost, "%.0f lost");
    stress_figure(r, "msgs_per_s", delivered / (t1 - t0), "%.0f msgs/s");
    s.q = mp_queue_free(s.q);
    munmap(tally, sizeof(*tally));
    tally = NULL;
    close(s.tfd);
    /* a consumer's pages of the ring, our own: what the allocator keeps */
    stress_check(r, &before, 1024, &server, server != 0);
}

STRESS_PART(queue_kill,
            .name = "queue-kill",
            .about = "producers and consumers SIGKILLed at random instants",
            .methods = STRESS_ALL_METHODS, .order = 30,
            .timeout_full = 150, .timeout_short = 30,
            .run = queue_kill)
