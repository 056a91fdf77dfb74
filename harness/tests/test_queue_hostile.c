/*
 * test_queue_hostile.c - a queue whose shared memory a peer scribbles on
 * (queue.c; "A peer that scribbles" in harness/lib/README.md).
 *
 * Every field of the shared header (test_hooks.h lists them, with their
 * offsets and sizes), and the record headers at the ring's head, at its
 * wrap and in the middle, is overwritten with hostile values in a queue
 * that holds records and whose sides this process has biased.  Then a fork
 * child calls every queue operation, and this process, a second user of
 * the queue, does the same.  Neither may die of a signal, wait past its
 * timeout by more than a generous bound, or get anything but a result or a
 * documented error (MP_EQCORRUPT among them).  Failures are gathered, so
 * that one run names every field that breaks a process.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"
#include "internal.h" /* mp__queue_view(): attach as another process would */
#include "test_hooks.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#define T 0.02            /* the timeout of the timed operations */
#define GRACE 0.01        /* a non-blocking put's wait for a producer */
#define MSG 64
#define BIG (300 * 1024)  /* more than the first ring: it grows */
#define NREC 4            /* records left in the queue: see setup() */

/* Over a call's own timeout, what it may take on a loaded machine. */
static double slack(void)
{
    return 1.0 * check_slowdown();
}

static char big[BIG];
static unsigned char sink[BIG + 64];

/*
 * Where a scenario writes: a header field (offset, width) or the length of
 * the record at ring position rec[].  The queue is new in each scenario.
 */
struct target {
    char name[80];
    size_t offset, width; /* header: offset in it; width 4 or 8 */
    int rec;              /* >= 0: that record's header instead */
    char type;            /* as mp__queue_field's */
};

struct queue_state {
    mp_queue *q;
    unsigned long long rec[NREC]; /* the records' positions */
    unsigned long long cap;
};

static const struct mp__queue_field *field(const char *name)
{
    size_t n;
    const struct mp__queue_field *f = mp__queue_fields(&n);

    for (size_t i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0)
            return &f[i];
    check_fail(__FILE__, __LINE__, "no field %s", name);
}

static unsigned long long u64(mp_queue *q, const char *name)
{
    const struct mp__queue_field *f = field(name);
    unsigned char *h = mp__queue_header(q);
    uint64_t v64;
    uint32_t v32;

    if (f->size == 4) {
        memcpy(&v32, h + f->offset, 4);
        return v32;
    }
    memcpy(&v64, h + f->offset, 8);
    return v64;
}

/*
 * A JoinableQueue whose sides this thread has biased (where membarrier(2)
 * allows), holding NREC records of MSG bytes: the first (at the head) ends
 * 40 bytes before the ring's end, the second's body wraps round it, the
 * third starts just after the wrap and the fourth is the last.
 */
static void setup(struct queue_state *st)
{
    char m[MSG] = { 0 };
    size_t n;
    unsigned long long tail, base, phys, adv;

    ASSERT_OK(mp_joinable_queue_new(&st->q, 0));
    for (int i = 0; i < 100; i++) {
        ASSERT_OK(mp_queue_put(st->q, m, MSG, 1, 10));
        ASSERT_OK(mp_queue_get_into(st->q, sink, sizeof(sink), &n, 1, 10));
        ASSERT_OK(mp_queue_task_done(st->q));
    }
    st->cap = mp__queue_capacity(st->q);
    tail = u64(st->q, "tail");
    base = u64(st->q, u64(st->q, "gen") & 1 ? "layout[1].base"
                                             : "layout[0].base");
    phys = (tail - base) & (st->cap - 1);
    /* Put and get fillers (each under half the ring, so it does not grow)
     * until the tail is (cap - 112) into the ring. */
    for (adv = (st->cap - 112 - phys) & (st->cap - 1); adv > 0;) {
        size_t rec = adv > 65536 ? 65536 : (size_t)adv;

        ASSERT_OK(mp_queue_put(st->q, big, rec - 8, 1, 10));
        ASSERT_OK(mp_queue_get_into(st->q, sink, sizeof(sink), &n, 1, 10));
        ASSERT_OK(mp_queue_task_done(st->q));
        adv -= rec;
    }
    for (int i = 0; i < NREC; i++) {
        st->rec[i] = u64(st->q, "tail");
        memset(m, 'a' + i, sizeof(m));
        ASSERT_OK(mp_queue_put(st->q, m, MSG, 1, 10));
    }
    ASSERT_TRUE(mp__queue_ring_at(st->q, st->rec[1]) + 8 + MSG >
                mp__queue_ring_at(st->q, st->rec[0]) + 112);
    ASSERT_TRUE(mp__queue_ring_at(st->q, st->rec[2]) <
                mp__queue_ring_at(st->q, st->rec[1]));
}

/* What an operation may return on a scribbled queue. */
enum allowed {
    A_COUNT,  /* >= 0, MP_EQCORRUPT */
    A_BOOL,   /* 0, 1, MP_EQCORRUPT */
    A_GET,    /* 0, MP_EEMPTY, MP_EQCORRUPT */
    A_PUT,    /* 0, MP_EFULL, MP_EQCORRUPT */
    A_DONE,   /* 0, MP_ETASKDONE */
    A_JOIN,   /* 0, MP_ETIMEDOUT */
};

static bool allowed(enum allowed a, int r)
{
    switch (a) {
    case A_COUNT:
        return r >= 0 || r == MP_EQCORRUPT;
    case A_BOOL:
        return r == 0 || r == 1 || r == MP_EQCORRUPT;
    case A_GET:
        return r == 0 || r == MP_EEMPTY || r == MP_EQCORRUPT;
    case A_PUT:
        return r == 0 || r == MP_EFULL || r == MP_EQCORRUPT;
    case A_DONE:
        return r == 0 || r == MP_ETASKDONE;
    case A_JOIN:
        return r == 0 || r == MP_ETIMEDOUT;
    }
    return false;
}

/* One user's operations: why the first one misbehaved (into why), or 0.
 * *corrupt counts the MP_EQCORRUPT results. */
static int use(mp_queue *q, bool full_set, char *why, size_t size,
               int *corrupt)
{
    char m[MSG] = "x";
    void *got;
    size_t n;
    int r, gets = 0;
    double t0, limit;

#define OP(call, kind, timeout)                                               \
    do {                                                                      \
        t0 = check_now();                                                     \
        r = (call);                                                           \
        limit = (timeout) + slack();                                          \
        if (!allowed(kind, r) || check_now() - t0 > limit) {                  \
            snprintf(why, size, "%s returned %d (%s) after %.3f s", #call, r, \
                     r < 0 ? mp_err_name(r) : "", check_now() - t0);          \
            return -1;                                                        \
        }                                                                     \
        *corrupt += r == MP_EQCORRUPT;                                        \
    } while (0)

    OP(mp_queue_empty(q), A_BOOL, 0);
    OP(mp_queue_put_nowait(q, m, MSG), A_PUT, GRACE);
    OP(mp_queue_get_nowait(q, &got, &n), A_GET, 0);
    if (r == 0)
        free(got);
    if (!full_set) /* a view's kind comes from the header: it may say
                      SimpleQueue, which has no qsize() */
        return 0;
    OP(mp_queue_qsize(q), A_COUNT, 0);
    OP(mp_queue_full(q), A_BOOL, 0);
    OP(mp_queue_put(q, m, MSG, 1, T), A_PUT, T);
    OP(mp_queue_put(q, big, BIG, 1, T), A_PUT, T); /* the ring grows */
    OP(mp_queue_get(q, &got, &n, 1, T), A_GET, T);
    if (r == 0)
        free(got);
    OP(mp_queue_get_into(q, sink, sizeof(sink), &n, 1, T), A_GET, T);
    do { /* the rest, without waiting */
        OP(mp_queue_get_nowait(q, &got, &n), A_GET, 0);
        if (r == 0)
            free(got);
    } while (r == 0 && ++gets < 12);
    for (int i = 0; i < 16; i++) {
        OP(mp_queue_task_done(q), A_DONE, 0);
        if (r != 0)
            break;
    }
    OP(mp_queue_join(q, T), A_JOIN, T);
    OP(mp_queue_qsize(q), A_COUNT, 0);
    OP(mp_queue_empty(q), A_BOOL, 0);
    OP(mp_queue_full(q), A_BOOL, 0);
    return 0;
#undef OP
}

/* The fork child's part: the operations, on its copy of the object and on
 * a view attached afresh, as a spawned child would; then close(). */
static _Noreturn void victim(mp_queue *q, int report)
{
    char why[256];
    int corrupt = 0;
    mp_queue *v;

    if (use(q, true, why, sizeof(why), &corrupt) < 0) {
        check_say(report, "child: %s", why);
        _exit(1);
    }
    v = mp__queue_view(mp__queue_handle(q));
    if (v != NULL && use(v, false, why, sizeof(why), &corrupt) < 0) {
        check_say(report, "child, attached: %s", why);
        _exit(1);
    }
    mp__queue_view_free(v);
    if (mp_queue_close(q) != 0 || mp_queue_join_thread(q) != 0 ||
        mp_queue_put_nowait(q, "x", 1) != MP_EQCLOSED) {
        check_say(report, "child: close() or join_thread() misbehaved");
        _exit(1);
    }
    _exit(corrupt > 0 ? 3 : 0); /* 3: fine, and it saw MP_EQCORRUPT */
}

/* Waits for the child, at most `limit` seconds: 0, or why it failed. */
static int reap(pid_t pid, int report, double limit, char *why, size_t size,
                int *corrupt)
{
    struct pollfd p = { report, POLLIN, 0 };
    double deadline = check_now() + limit;
    size_t got = 0;
    int status;

    why[0] = '\0';
    for (;;) { /* EOF: the child has exited (it alone holds the end) */
        double left = deadline - check_now();
        ssize_t k;

        if (left <= 0 || poll(&p, 1, (int)(left * 1000) + 1) == 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            snprintf(why, size, "child: still running after %.1f s", limit);
            return -1;
        }
        k = read(report, why + got, size - 1 - got);
        if (k <= 0)
            break;
        got += (size_t)k;
        if (got == size - 1)
            break;
    }
    why[got] = '\0';
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status)) {
        snprintf(why + got, size - got, "%schild: killed by signal %d (%s)",
                 got ? "; " : "", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
        return -1;
    }
    if (WEXITSTATUS(status) == 3) {
        (*corrupt)++;
        return 0;
    }
    if (WEXITSTATUS(status) != 0) {
        if (got == 0)
            snprintf(why, size, "child: exit code %d", WEXITSTATUS(status));
        return -1;
    }
    return 0;
}

struct tally {
    int scenarios, failures, corrupt;
};

static void write_over(struct queue_state *st, const struct target *t,
                       uint64_t value)
{
    unsigned char *at = t->rec >= 0
                            ? mp__queue_ring_at(st->q, st->rec[t->rec])
                            : (unsigned char *)mp__queue_header(st->q) +
                                  t->offset;

    if (t->width == 4) {
        uint32_t v32 = (uint32_t)value;
        memcpy(at, &v32, 4);
    } else {
        memcpy(at, &value, 8);
    }
}

/* One scenario: a new queue, values[i] written over t[i], the child's use,
 * then this process's. */
static void scenario(const char *label, const struct target *t,
                     const uint64_t *values, size_t n, struct tally *y)
{
    struct queue_state st;
    char why[512];
    int report[2], corrupt = 0;
    pid_t pid;

    setup(&st);
    for (size_t i = 0; i < n; i++)
        write_over(&st, &t[i], values[i]);
    ASSERT_EQ(0, pipe(report));
    fflush(stdout);
    pid = fork();
    ASSERT_TRUE(pid >= 0);
    if (pid == 0) {
        close(report[0]);
        victim(st.q, report[1]);
    }
    close(report[1]);
    y->scenarios++;
    /* The child's timed calls add up to under 0.2 s. */
    if (reap(pid, report[0], 1.0 + 20 * slack(), why, sizeof(why),
             &corrupt) < 0) {
        check_diag("%s: %s", label, why);
        y->failures++;
    } else if (use(st.q, true, why, sizeof(why), &corrupt) < 0) {
        check_diag("%s: parent: %s", label, why);
        y->failures++;
    }
    y->corrupt += corrupt > 0;
    close(report[0]);
    mp_queue_free(st.q);
}

/* A pid that no process has: a child's, once reaped. */
static pid_t dead_pid(void)
{
    static pid_t dead;
    int status;

    if (dead == 0) {
        fflush(stdout);
        if ((dead = fork()) == 0)
            _exit(0);
        ASSERT_TRUE(dead > 0);
        ASSERT_EQ(dead, waitpid(dead, &status, 0));
    }
    return dead;
}

struct value {
    const char *name;
    uint64_t v;
};

/* The hostile values for a target whose current value is orig. */
static size_t values(const struct target *t, uint64_t orig, uint64_t cap,
                     struct value *out)
{
    size_t n = 0;

#define V(label, x) (out[n].name = (label), out[n++].v = (uint64_t)(x))
    V("0", 0);
    V("1", 1);
    V("-1", -1);
    V("orig+1", orig + 1);
    if (t->type == 'd') {
        double d[] = { NAN, INFINITY, -INFINITY, 1e300, -1e300, DBL_MIN };
        const char *names[] = { "NaN", "inf", "-inf", "1e300", "-1e300",
                                "DBL_MIN" };

        n = 0;
        for (size_t i = 0; i < ARRAY_LEN(d); i++) {
            uint64_t bits;
            memcpy(&bits, &d[i], 8);
            V(names[i], bits);
        }
        return n;
    }
    if (t->type == 'i' || t->type == 'm') { /* pids, tids, lock words */
        V("init", 1);
        V("self", getpid());
        V("thread", syscall(SYS_gettid));
        V("dead pid", dead_pid());
        V("PID_MAX_LIMIT+1", (1 << 22) + 1);
        V("INT_MAX", INT_MAX);
        V("INT_MIN", (uint32_t)INT_MIN);
    }
    if (t->type == 'm') { /* a robust mutex's words */
        V("owner died", 0x40000000u | (uint32_t)getpid());
        V("waiters|dead", 0x80000000u | (uint32_t)dead_pid());
        V("inconsistent", 0x7fffffff);
        V("not recoverable", 0x7ffffffe);
        V("PI", 32);
        V("PP", 64);
        V("elision", 256);
        V("errorcheck", 2);
    }
    if (t->width == 4 && t->type == 'u') {
        V("2", 2);
        V("16", 16);
        V("17", 17);
        V("-2", -2);
        V("INT_MIN", (uint32_t)INT_MIN);
        V("INT_MAX", INT_MAX);
    }
    if (t->rec >= 0) { /* a record's length */
        V("7", 7);
        V("8", 8);
        V("MAX_MSG", 1ULL << 30);
        V("MAX_MSG+1", (1ULL << 30) + 1);
    }
    if (t->width == 8) {
        V("-2", -2);
        V("INT64_MIN", (uint64_t)INT64_MIN);
        V("INT64_MAX", INT64_MAX);
        V("cap-1", cap - 1);
        V("cap", cap);
        V("cap+8", cap + 8);
        V("2cap", 2 * cap);
        V("huge", 1ULL << 40);
        V("orig+3", orig + 3);
        V("orig-8", orig - 8);
        V("orig+cap+8", orig + cap + 8);
        V("orig+cap/8", orig + cap / 8); /* head past tail, a little */
        V("orig-cap/8", orig - cap / 8);
    }
    return n;
#undef V
}

/* Under valgrind and the sanitizers (CHECK_SLOWDOWN), where a fork costs
 * ten times as much, one value in `thin` is tried for each target, a
 * different one from target to target. */
static size_t thin(void)
{
    return check_slowdown() > 1 ? 4 : 1;
}

static size_t targets_seen;

/* Every value for the target, one scenario each. */
static void attack(const struct target *t, struct tally *y)
{
    struct queue_state st;
    struct value v[40];
    uint64_t orig = 0;
    size_t n;

    setup(&st); /* what the target holds before it is written over */
    if (t->rec >= 0)
        memcpy(&orig, mp__queue_ring_at(st.q, st.rec[t->rec]), 8);
    else
        memcpy(&orig, (unsigned char *)mp__queue_header(st.q) + t->offset,
               t->width);
    n = values(t, orig, st.cap, v);
    mp_queue_free(st.q);
    targets_seen++;
    for (size_t i = 0; i < n; i++) {
        char label[128];

        if ((i + targets_seen) % thin() != 0)
            continue;
        snprintf(label, sizeof(label), "%s = %s", t->name, v[i].name);
        scenario(label, t, &v[i].v, 1, y);
    }
}

/* Slots 0 (this process's bias), 1 (a free one) and the last: the others
 * are alike, and each scenario takes a fork. */
static bool slot_wanted(const char *name)
{
    const char *p = strstr(name, "slot[");

    return p == NULL || strncmp(p, "slot[0]", 7) == 0 ||
           strncmp(p, "slot[1]", 7) == 0 || strncmp(p, "slot[15]", 8) == 0;
}

/* The header's fields whose name starts with one of the prefixes (NULL:
 * those that start with none of the others'). */
static void attack_fields(const char *const *prefixes, bool others)
{
    static const char *const all[] = { "w.", "r.", NULL };
    const struct mp__queue_field *f;
    struct tally y = { 0, 0, 0 };
    size_t n;

    f = mp__queue_fields(&n);
    for (size_t i = 0; i < n; i++) {
        bool match = false;
        const char *const *p = others ? all : prefixes;

        for (; *p != NULL; p++)
            match |= strncmp(f[i].name, *p, strlen(*p)) == 0;
        if (match == others || !slot_wanted(f[i].name))
            continue;
        for (size_t off = 0; off < f[i].size;) { /* a mutex: each word */
            struct target t;
            size_t w = f[i].type == 'm' ? 4 : f[i].size;

            snprintf(t.name, sizeof(t.name), f[i].type == 'm' ? "%s+%zu"
                     : "%s", f[i].name, off);
            t.offset = f[i].offset + off;
            t.width = w;
            t.rec = -1;
            t.type = f[i].type;
            attack(&t, &y);
            off += w;
        }
    }
    check_diag("%d scenarios, %d failed, %d saw MP_EQCORRUPT", y.scenarios,
               y.failures, y.corrupt);
    ASSERT_EQ(0, y.failures);
}

TEST(scribbled_header_positions_layout_and_counts)
{
    attack_fields(NULL, true);
}

TEST(scribbled_producers_side)
{
    static const char *const w[] = { "w.", NULL };

    attack_fields(w, false);
}

TEST(scribbled_consumers_side)
{
    static const char *const r[] = { "r.", NULL };

    attack_fields(r, false);
}

TEST(scribbled_record_lengths)
{
    static const char *const names[NREC] = {
        "record at the head", "record wrapping round the ring's end",
        "record just after the wrap", "last record",
    };
    struct tally y = { 0, 0, 0 };

    for (int i = 0; i < NREC; i++) {
        struct target t = { "", 0, 8, i, 'u' };
        snprintf(t.name, sizeof(t.name), "%s", names[i]);
        attack(&t, &y);
    }
    check_diag("%d scenarios, %d failed, %d saw MP_EQCORRUPT", y.scenarios,
               y.failures, y.corrupt);
    ASSERT_EQ(0, y.failures);
}

static struct target target_of(const char *name)
{
    const struct mp__queue_field *f = field(name);
    struct target t = { "", f->offset, f->size, -1, f->type };

    snprintf(t.name, sizeof(t.name), "%s", name);
    return t;
}

/* Field 22 of /proc/PID/stat, a process's start time (0: unknown). */
static uint64_t start_of(pid_t pid)
{
    char path[64], buf[1024], *p;
    unsigned long long start = 0;
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if ((f = fopen(path, "r")) == NULL)
        return 0;
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    if ((p = strrchr(buf, ')')) == NULL)
        return 0;
    for (int field = 2; field < 22 && p != NULL; field++)
        if ((p = strchr(p + 1, ' ')) == NULL)
            return 0;
    return sscanf(p, "%llu", &start) == 1 ? start : 0;
}

/* Fields a peer may write together: a side's owner gone with a revocation
 * owed to a slot that is no slot; a biased owner inside that is dead, is
 * init, is this process; the other layout made current; both copies of a
 * position. */
TEST(scribbled_fields_together)
{
    struct queue_state st;
    struct tally y = { 0, 0, 0 };
    uint64_t cap, head, tail, init_start = start_of(1);

    setup(&st);
    cap = st.cap;
    head = u64(st.q, "head");
    tail = u64(st.q, "tail");
    mp_queue_free(st.q);
    for (int side = 0; side < 2; side++) {
        const char *p = side == 0 ? "w." : "r.";
        char n1[40], n2[40], n3[40], n4[40], n5[40];
        struct target t[5];
        uint64_t v[5];

#define NAME(buf, f) (snprintf(buf, sizeof(buf), "%s%s", p, f), buf)
        t[0] = target_of(NAME(n1, "owner"));
        t[1] = target_of(NAME(n2, "pending"));
        t[2] = target_of(NAME(n3, "last"));
        for (int k = 0; k < 3; k++) {
            uint64_t last[] = { 17, UINT32_MAX, 1u << 31 };
            char label[128];

            v[0] = 0;
            v[1] = 1; /* a revocation owed */
            v[2] = last[k];
            snprintf(label, sizeof(label), "%sowner = 0, pending = 1, "
                     "last = %llu", p, (unsigned long long)last[k]);
            scenario(label, t, v, 3, &y);
        }
        t[0] = target_of(NAME(n1, "slot[0].busy"));
        t[1] = target_of(NAME(n2, "slot[0].id.pid"));
        t[2] = target_of(NAME(n3, "slot[0].id.tid"));
        t[3] = target_of(NAME(n4, "slot[0].id.start"));
        t[4] = target_of(NAME(n5, "slot[0].token"));
        v[0] = 1;
        v[1] = v[2] = (uint64_t)dead_pid();
        scenario("biased owner inside, dead", t, v, 3, &y);
        if (init_start != 0) {
            v[1] = v[2] = 1;
            v[3] = init_start;
            scenario("biased owner inside, init", t, v, 4, &y);
        }
        v[4] = 12345; /* this process's ids, not its thread's token */
        v[1] = v[2] = (uint64_t)getpid();
        v[3] = start_of(getpid());
        scenario("biased owner inside, this process, another token", t, v,
                 5, &y);
#undef NAME
    }
    {
        struct target t[3] = { target_of("gen"), target_of("layout[1].cap"),
                               target_of("layout[1].base") };
        uint64_t v[3] = { 1, 2 * cap, 0 };

        scenario("gen = 1, layout[1] twice the file", t, v, 2, &y);
        v[1] = cap;
        v[2] = head + 12345;
        scenario("gen = 1, layout[1] elsewhere", t, v, 3, &y);
        v[1] = cap / 2;
        scenario("gen = 1, layout[1] smaller", t, v, 2, &y);
    }
    {
        struct target t[2] = { target_of("tail"), target_of("tail_cache") };
        uint64_t v[2] = { head + 3 * cap, head + 3 * cap };

        scenario("tail and tail_cache 3 rings ahead", t, v, 2, &y);
        v[0] = v[1] = head - 8;
        scenario("tail and tail_cache behind head", t, v, 2, &y);
        v[0] = v[1] = tail + 4;
        scenario("tail and tail_cache misaligned", t, v, 2, &y);
    }
    check_diag("%d scenarios, %d failed, %d saw MP_EQCORRUPT", y.scenarios,
               y.failures, y.corrupt);
    ASSERT_EQ(0, y.failures);
}

/* A live biased owner's busy word set to 2 (no thread stores 2): a revoker
 * waits for it to clear, sleeping on it until its deadline, not spinning
 * (a futex wait for the value 1 returns at once). */
TEST(a_scribbled_busy_word_is_slept_on)
{
    struct queue_state st;
    struct target t = target_of("w.slot[0].busy");
    struct rusage ru;
    int status;
    pid_t pid;

    if (!mp__queue_membarrier())
        check_skip("no membarrier(2): no biased sides");
    setup(&st);
    ASSERT_TRUE(mp__queue_biased(st.q, 1));
    write_over(&st, &t, 2);
    fflush(stdout);
    if ((pid = fork()) == 0) {
        double t0 = check_now();
        int r = mp_queue_put(st.q, "x", 1, 1, 0.3);

        _exit(r == MP_EFULL && check_now() - t0 >= 0.3 ? 0 : 1);
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(pid, wait4(pid, &status, 0, &ru));
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(0, WEXITSTATUS(status));
    ASSERT_WITHIN(0, 0.1, ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                              ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
    mp_queue_free(st.q);
}

/* The child's hook, run with a side's mutex just taken: at the
 * pause_at-th, tells the parent and waits for it to write over the mutex. */
static int held_pipe[2], go_pipe[2], pause_at, locks;

static void pause_holding(void)
{
    char c = 'L';

    if (++locks != pause_at)
        return;
    if (write(held_pipe[1], &c, 1) != 1 || read(go_pipe[0], &c, 1) != 1)
        _exit(98);
}

/* One byte from fd within a generous bound: 1, or 0 (the child did not
 * get there). */
static int byte_within(int fd)
{
    struct pollfd p = { fd, POLLIN, 0 };
    char c;

    return poll(&p, 1, (int)(10000 * check_slowdown())) == 1 &&
           read(fd, &c, 1) == 1;
}

/*
 * A word of a side's mutex written over while a process holds it (the
 * robust list links glibc follows at the unlock, the kind it dispatches
 * on, the owner, the lock word): the holder unlocks safely, and the
 * queue goes on for it and for this process.
 */
TEST(a_mutex_scribbled_while_held)
{
    struct tally y = { 0, 0, 0 };
    const uint32_t values[] = { 0, UINT32_MAX, 0x41414141, 0x7fffffff };

    for (int side = 0; side < 2; side++) {
        struct target t = target_of(side == 0 ? "w.m" : "r.m");
        size_t size = t.width;

        for (size_t off = 0; off < size; off += 4) {
            for (size_t k = 0; k < ARRAY_LEN(values); k++) {
                struct queue_state st;

                if ((k + off / 4) % thin() != 0)
                    continue;
                struct target w = t;
                char why[512], label[160], c = 'G';
                int report[2], corrupt = 0;
                pid_t pid;

                setup(&st);
                w.offset += off;
                w.width = 4;
                ASSERT_EQ(0, pipe(report));
                ASSERT_EQ(0, pipe(held_pipe));
                ASSERT_EQ(0, pipe(go_pipe));
                fflush(stdout);
                /* The child's first put takes the producers' mutex (a
                 * fork child has no bias), then its first get the
                 * consumers'. */
                pause_at = side + 1;
                locks = 0;
                if ((pid = fork()) == 0) {
                    close(report[0]);
                    mp__queue_locked_hook = pause_holding;
                    victim(st.q, report[1]);
                }
                ASSERT_TRUE(pid > 0);
                close(report[1]);
                if (!byte_within(held_pipe[0]))
                    kill(pid, SIGKILL); /* reap() tells */
                write_over(&st, &w, values[k]);
                ASSERT_EQ(1, write(go_pipe[1], &c, 1));
                snprintf(label, sizeof(label), "%s+%zu = %#x, held",
                         t.name, off, values[k]);
                y.scenarios++;
                if (reap(pid, report[0], 1.0 + 20 * slack(), why,
                         sizeof(why), &corrupt) < 0) {
                    check_diag("%s: %s", label, why);
                    y.failures++;
                } else if (use(st.q, true, why, sizeof(why), &corrupt) < 0) {
                    check_diag("%s: parent: %s", label, why);
                    y.failures++;
                }
                y.corrupt += corrupt > 0;
                close(report[0]);
                close(held_pipe[0]);
                close(held_pipe[1]);
                close(go_pipe[0]);
                close(go_pipe[1]);
                mp_queue_free(st.q);
            }
        }
    }
    check_diag("%d scenarios, %d failed, %d saw MP_EQCORRUPT", y.scenarios,
               y.failures, y.corrupt);
    ASSERT_EQ(0, y.failures);
}

/* The memfd is sealed: nobody holding it can cut the ring short under
 * another process's mapping (a SIGBUS there), nor seal it further. */
TEST(the_memfd_cannot_be_cut_short)
{
    mp_queue *q;
    int fd;
    size_t n;

    ASSERT_OK(mp_queue_new(&q, 0));
    ASSERT_OK(mp_queue_put(q, "x", 1, 1, 1));
    fd = mp_conn_fileno(mp__queue_handle(q));
    ASSERT_EQ(-1, ftruncate(fd, 4096));
    ASSERT_EQ(EPERM, errno);
    ASSERT_EQ(-1, fcntl(fd, F_ADD_SEALS, F_SEAL_GROW));
    ASSERT_EQ(EPERM, errno);
    ASSERT_OK(mp_queue_get_into(q, sink, sizeof(sink), &n, 1, 1));
    ASSERT_OK(mp_queue_put(q, big, BIG, 1, 1)); /* it still grows */
    mp_queue_free(q);
}
