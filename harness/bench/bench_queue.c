/*
 * bench_queue.c - messages/s through queues and pipes: libmp's Queue and
 * Pipe, CPython's Queue, SimpleQueue and Pipe, and the system's limits, for
 * 8 B, 64 B, 4 KiB and 64 KiB messages, 1 -> 1 and 4 -> 4 processes; and the
 * round-trip time of a 64 B message.  One run; rounds interleave the
 * implementations in a rotating order.
 *
 * The limits ("raw"): a minimal single-producer single-consumer ring in
 * shared memory (records of a length and the bytes, spinning then yielding
 * when it must wait: no locks, no sleeping, no kill safety), and a pipe(2)
 * with one write() and one read() per message.  With 4 -> 4, libmp's Queue
 * (like CPython's Queue and SimpleQueue) is one queue shared by all eight
 * processes; the pipes and the raw ring are four independent pairs, which
 * flatters them.
 *
 * Producers and consumers are forked, then wait at a gate; the clock starts
 * when the gate opens and stops at the last consumer's last message.
 * CPython runs scripts/bench_queue.py, once per round.
 *
 *   mp-bench-queue [--rounds R] [--scale F] [--python PATH] [--out FILE]
 *                  [--quick]
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"
#include "mp.h"

#define MAX_PROCS 16
#define MAX_SIZE 65536
#define RAW_RING (256u * 1024) /* as libmp's first ring */

static const int sizes[] = { 8, 64, 4096, 65536 };
static const int procs_list[] = { 1, 4 };
#define NSIZES (int)(sizeof(sizes) / sizeof(sizes[0]))
#define NPROCS (int)(sizeof(procs_list) / sizeof(procs_list[0]))
/* The curve of 64 B messages against the number of producers (as many
 * consumers): 1 and 4 come from the table above. */
static const int curve_procs[] = { 2, 8, 16 };
#define NCURVE (int)(sizeof(curve_procs) / sizeof(curve_procs[0]))
/* Children started by each start method (libmp's Process, CPython's
 * context), 64 B, 1 -> 1 and 4 -> 4; the limit is the forked raw ring. */
static const char *const methods[] = { "fork", "spawn", "forkserver" };
#define NMETH 3

enum impl { RAW_RING_I, RAW_PIPE, LIBMP_QUEUE, LIBMP_PIPE, CPY_QUEUE,
            CPY_SIMPLE, CPY_PIPE, NIMPL };
static const char *const impl_names[NIMPL] = {
    "raw ring", "raw pipe", "libmp Queue", "libmp Pipe", "CPython Queue",
    "CPython SimpleQueue", "CPython Pipe",
};
static const char *const impl_keys[NIMPL] = {
    "raw_ring", "raw_pipe", "libmp_queue", "libmp_pipe", "cpython_queue",
    "cpython_simplequeue", "cpython_pipe",
};

/* Messages/s per round: [impl][size][procs][round]. */
static double thr[NIMPL][NSIZES][NPROCS][64];
/* Round-trip seconds per round: [impl][round]. */
static double rtt[NIMPL][64];
/* The curve: [impl][curve_procs][round]; by start method:
 * [impl][method][procs_list][round]. */
static double curve[NIMPL][NCURVE][64];
static double by_method[NIMPL][NMETH][NPROCS][64];
static int rounds = 5;
static double scale = 1.0;
static char py_version[32] = "?";

/* How many messages: a count at 64 B and a byte budget, by implementation,
 * so every run takes a few tenths of a second here. */
static long count_for(enum impl i, int size)
{
    static const double base[NIMPL] = { 4e6, 6e5, 2e6, 6e5, 4e4, 4e4, 4e4 };
    static const double budget[NIMPL] = { 2e9, 6e8, 2e9, 6e8, 1.5e8, 1.5e8,
                                          1.5e8 };
    double n = fmin(base[i], budget[i] / size) * scale;

    return (long)fmax(64, n);
}

/* the raw ring */

struct ring {
    alignas(64) _Atomic uint64_t head;
    alignas(64) _Atomic uint64_t tail;
    alignas(64) unsigned char data[RAW_RING];
};

static void relax(int *spins)
{
    if (++*spins < 200) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        sched_yield(); /* two cores, up to eight processes */
    }
}

static void ring_put(struct ring *r, const void *buf, uint32_t n,
                     uint64_t *head_cache)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t rec = 8 + ((n + 7u) & ~7u);
    int spins = 0;

    while (RAW_RING - (tail - *head_cache) < rec) {
        *head_cache = atomic_load_explicit(&r->head, memory_order_acquire);
        if (RAW_RING - (tail - *head_cache) < rec)
            relax(&spins);
    }
    for (uint64_t done = 0, len = n; done < 8 + len;) {
        size_t at = (size_t)((tail + done) % RAW_RING);
        size_t k = RAW_RING - at;
        if (done == 0) {
            memcpy(r->data + at, &len, 8); /* records are 8-aligned */
            done = 8;
            continue;
        }
        if (k > 8 + len - done)
            k = (size_t)(8 + len - done);
        memcpy(r->data + at, (const char *)buf + (done - 8), k);
        done += k;
    }
    atomic_store_explicit(&r->tail, tail + rec, memory_order_release);
}

static uint32_t ring_get(struct ring *r, void *buf, uint64_t *tail_cache)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t len, rec;
    int spins = 0;

    while (*tail_cache == head) {
        *tail_cache = atomic_load_explicit(&r->tail, memory_order_acquire);
        if (*tail_cache == head)
            relax(&spins);
    }
    memcpy(&len, r->data + head % RAW_RING, 8);
    for (uint64_t done = 0; done < len;) {
        size_t at = (size_t)((head + 8 + done) % RAW_RING);
        size_t k = RAW_RING - at;
        if (k > len - done)
            k = (size_t)(len - done);
        memcpy((char *)buf + done, r->data + at, k);
        done += k;
    }
    rec = 8 + ((len + 7) & ~(uint64_t)7);
    atomic_store_explicit(&r->head, head + rec, memory_order_release);
    return (uint32_t)len;
}

/* the set-up every implementation shares */

struct ctx {
    enum impl impl;
    int size;
    struct ring *rings;           /* raw ring: one per pair */
    int pipes[MAX_PROCS][2];      /* raw pipe: one per pair */
    mp_conn *conns[MAX_PROCS][2]; /* libmp Pipe: (read end, write end) */
    mp_queue *q;                  /* libmp Queue: shared */
    uint64_t head_cache[MAX_PROCS], tail_cache[MAX_PROCS]; /* ring ends */
};

static void check_len(size_t got, int size)
{
    if (got != (size_t)size) {
        fprintf(stderr, "mp-bench-queue: a message of %zu bytes, not %d\n",
                got, size);
        _exit(3);
    }
}

/* A benchmark child's failure: says which call and why, then exits 4. */
static _Noreturn void child_fail(const char *what, int err)
{
    fprintf(stderr, "mp-bench-queue: %s: %s\n", what,
            err < 0 ? mp_strerror(err) : "wrong length");
    _exit(4);
}

static void produce(struct ctx *c, int idx, long n)
{
    int r;

    static char buf[MAX_SIZE];

    memset(buf, 'p', sizeof(buf));
    for (long i = 0; i < n; i++) {
        switch (c->impl) {
        case RAW_RING_I:
            ring_put(&c->rings[idx], buf, (uint32_t)c->size,
                     &c->head_cache[idx]);
            break;
        case RAW_PIPE:
            if (write(c->pipes[idx][1], buf, (size_t)c->size) != c->size)
                child_fail("write", -errno);
            break;
        case LIBMP_PIPE:
            if ((r = mp_conn_send_bytes(c->conns[idx][1], buf,
                                        (size_t)c->size)) < 0)
                child_fail("mp_conn_send_bytes", r);
            break;
        case LIBMP_QUEUE:
            if ((r = mp_queue_put(c->q, buf, (size_t)c->size, 1,
                                  MP_FOREVER)) < 0)
                child_fail("mp_queue_put", r);
            break;
        default:
            _exit(5);
        }
    }
}

static void consume(struct ctx *c, int idx, long n)
{
    static char buf[MAX_SIZE];
    size_t len;
    int r;

    for (long i = 0; i < n; i++) {
        switch (c->impl) {
        case RAW_RING_I:
            check_len(ring_get(&c->rings[idx], buf, &c->tail_cache[idx]),
                      c->size);
            break;
        case RAW_PIPE: {
            size_t got = 0;
            while (got < (size_t)c->size) { /* > PIPE_BUF: in pieces */
                ssize_t k = read(c->pipes[idx][0], buf + got,
                                 (size_t)c->size - got);
                if (k <= 0)
                    child_fail("read", k < 0 ? -errno : MP_EEOF);
                got += (size_t)k;
            }
            break;
        }
        case LIBMP_PIPE:
            if ((r = mp_conn_recv_bytes_into(c->conns[idx][0], buf,
                                             sizeof(buf), &len)) < 0)
                child_fail("mp_conn_recv_bytes_into", r);
            check_len(len, c->size);
            break;
        case LIBMP_QUEUE:
            if ((r = mp_queue_get_into(c->q, buf, sizeof(buf), &len, 1,
                                       MP_FOREVER)) < 0)
                child_fail("mp_queue_get_into", r);
            check_len(len, c->size);
            break;
        default:
            _exit(5);
        }
    }
}

static void make_ctx(struct ctx *c, enum impl impl, int size, int procs)
{
    memset(c, 0, sizeof(*c));
    c->impl = impl;
    c->size = size;
    if (impl == RAW_RING_I) {
        c->rings = mmap(NULL, sizeof(struct ring) * (size_t)procs,
                        PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                        -1, 0);
        if (c->rings == MAP_FAILED)
            bench_die("mmap failed");
    }
    for (int i = 0; i < procs; i++) {
        if (impl == RAW_PIPE && pipe(c->pipes[i]) < 0)
            bench_die("pipe failed");
        if (impl == LIBMP_PIPE &&
            mp_pipe(&c->conns[i][0], &c->conns[i][1], 0) < 0)
            bench_die("mp_pipe failed");
    }
    if (impl == LIBMP_QUEUE && mp_queue_new(&c->q, 0) < 0)
        bench_die("mp_queue_new failed");
}

static void free_ctx(struct ctx *c, int procs)
{
    if (c->rings != NULL)
        munmap(c->rings, sizeof(struct ring) * (size_t)procs);
    for (int i = 0; i < procs; i++) {
        if (c->impl == RAW_PIPE) {
            close(c->pipes[i][0]);
            close(c->pipes[i][1]);
        }
        mp_conn_free(c->conns[i][0]);
        mp_conn_free(c->conns[i][1]);
    }
    mp_queue_free(c->q);
}

static void read_full(int fd, void *buf, size_t n)
{
    size_t got = 0;

    while (got < n) {
        ssize_t r = read(fd, (char *)buf + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            bench_die("a benchmark child died");
        got += (size_t)r;
    }
}

/* A watchdog: a run that takes longer than RUN_LIMIT seconds (a child hung,
 * or died leaving its peers waiting) is named, its children are killed, and
 * the benchmark fails instead of hanging. */
#define RUN_LIMIT 600
static pid_t watched[2 * MAX_PROCS];
static int nwatched;

static void on_alarm(int sig)
{
    static const char msg[] = "mp-bench-queue: a run took over 600 s: a "
                              "child hung or died; giving up\n";

    (void)sig;
    for (int k = 0; k < nwatched; k++)
        kill(watched[k], SIGKILL);
    if (write(2, msg, sizeof(msg) - 1) < 0) {
        /* nothing more to say */
    }
    _exit(1);
}

static void watch(pid_t pid)
{
    if (nwatched == 0) {
        signal(SIGALRM, on_alarm);
        alarm(RUN_LIMIT);
    }
    watched[nwatched++] = pid;
}

static void unwatch(void)
{
    alarm(0);
    nwatched = 0;
}

/* n messages of `size` bytes from procs producers to procs consumers:
 * messages/s. */
static double run_throughput(enum impl impl, int size, int procs, long n)
{
    struct ctx c;
    int ready[2], go[2], done[2];
    pid_t pids[2 * MAX_PROCS];
    long per = n / procs;
    double t0, last = 0;

    make_ctx(&c, impl, size, procs);
    if (pipe(ready) < 0 || pipe(go) < 0 || pipe(done) < 0)
        bench_die("pipe failed");
    fflush(NULL);
    for (int k = 0; k < 2 * procs; k++) {
        pid_t pid = fork();
        char b = 0;

        if (pid < 0)
            bench_die("fork failed");
        if (pid == 0) {
            close(go[1]);
            if (write(ready[1], &b, 1) != 1 || read(go[0], &b, 1) != 0)
                _exit(6);
            if (k % 2 == 0) {
                produce(&c, k / 2, per);
            } else {
                double t;
                consume(&c, k / 2, per);
                t = bench_now();
                if (write(done[1], &t, sizeof(t)) != sizeof(t))
                    _exit(6);
            }
            _exit(0);
        }
        pids[k] = pid;
        watch(pid);
    }
    for (int k = 0; k < 2 * procs; k++) {
        char b;
        read_full(ready[0], &b, 1);
    }
    t0 = bench_now();
    close(go[1]); /* the gate opens: every child reads EOF */
    close(done[1]); /* consumers that die give EOF, not a hang */
    for (int k = 0; k < procs; k++) {
        double t;
        read_full(done[0], &t, sizeof(t));
        last = fmax(last, t);
    }
    for (int k = 0; k < 2 * procs; k++) {
        int status;
        if (waitpid(pids[k], &status, 0) != pids[k] || status != 0)
            bench_die("a benchmark child failed");
    }
    unwatch();
    close(go[0]);
    close(ready[0]);
    close(ready[1]);
    close(done[0]);
    free_ctx(&c, procs);
    return (double)(per * procs) / (last - t0);
}

/* Round trips of a 64 B message through a child that echoes it: seconds
 * each. */
static double run_rtt(enum impl impl, long count)
{
    struct ctx there, back;
    char buf[64] = { 0 };
    double t0 = 0;
    pid_t pid;
    int status;

    make_ctx(&there, impl, 64, 1);
    make_ctx(&back, impl, 64, 1);
    fflush(NULL);
    if ((pid = fork()) < 0)
        bench_die("fork failed");
    if (pid == 0) {
        for (long i = 0; i <= count; i++) {
            consume(&there, 0, 1);
            produce(&back, 0, 1);
        }
        _exit(0);
    }
    watch(pid);
    for (long i = 0; i <= count; i++) {
        if (i == 1)
            t0 = bench_now(); /* the first one warms up */
        produce(&there, 0, 1);
        consume(&back, 0, 1);
    }
    t0 = (bench_now() - t0) / (double)count;
    unwatch();
    if (waitpid(pid, &status, 0) != pid || status != 0)
        bench_die("the echo child failed");
    free_ctx(&there, 1);
    free_ctx(&back, 1);
    (void)buf;
    return t0;
}

/* Producers and consumers as libmp Processes under a start method: they
 * say they are ready on `back`, wait for a message on `go`, and each
 * consumer puts the clock on `back` after its last message. */
MP_TARGET(q_producer)
{
    mp_queue *q = mp_args_queue(args, 0), *go = mp_args_queue(args, 3);
    mp_queue *back = mp_args_queue(args, 4);
    long n = (long)mp_args_int(args, 1);
    size_t size = (size_t)mp_args_int(args, 2), got;
    static char buf[MAX_SIZE];
    char g;
    int r;

    (void)arg; (void)len;
    memset(buf, 'p', size);
    if (mp_queue_put_double(back, -1) < 0 ||
        mp_queue_get_into(go, &g, 1, &got, 1, MP_FOREVER) < 0)
        return 6;
    for (long i = 0; i < n; i++)
        if ((r = mp_queue_put(q, buf, size, 1, MP_FOREVER)) < 0)
            child_fail("mp_queue_put", r);
    return 0;
}

MP_TARGET(q_consumer)
{
    mp_queue *q = mp_args_queue(args, 0), *go = mp_args_queue(args, 3);
    mp_queue *back = mp_args_queue(args, 4);
    long n = (long)mp_args_int(args, 1);
    int size = (int)mp_args_int(args, 2), r;
    static char buf[MAX_SIZE];
    size_t got;
    char g;

    (void)arg; (void)len;
    if (mp_queue_put_double(back, -1) < 0 ||
        mp_queue_get_into(go, &g, 1, &got, 1, MP_FOREVER) < 0)
        return 6;
    for (long i = 0; i < n; i++) {
        if ((r = mp_queue_get_into(q, buf, sizeof(buf), &got, 1,
                                   MP_FOREVER)) < 0)
            child_fail("mp_queue_get_into", r);
        check_len(got, size);
    }
    return mp_queue_put_double(back, bench_now()) < 0 ? 6 : 0;
}

static double run_method_throughput(const char *method, int size, int procs,
                                    long n)
{
    mp_process_options opt = { 0 };
    mp_process *ps[2 * MAX_PROCS];
    mp_queue *q, *go, *back;
    long per = n / procs;
    double t0, t, last = 0;

    if (mp_get_context(&opt.context, method) < 0 ||
        mp_queue_new(&q, 0) < 0 || mp_queue_new(&go, 0) < 0 ||
        mp_queue_new(&back, 0) < 0)
        bench_die("queue set-up failed");
    for (int k = 0; k < 2 * procs; k++)
        if (mp_process_create(&ps[k], k % 2 == 0 ? &q_producer_target
                                                 : &q_consumer_target,
                              MP_ARGS(q, per, size, go, back), &opt) < 0 ||
            mp_process_start(ps[k]) < 0)
            bench_die("cannot start a queue benchmark child");
    for (int k = 0; k < 2 * procs; k++)
        if (mp_queue_get_double(back, &t, RUN_LIMIT) < 0)
            bench_die("a queue benchmark child did not start");
    t0 = bench_now();
    for (int k = 0; k < 2 * procs; k++)
        if (mp_queue_put(go, "g", 1, 1, MP_FOREVER) < 0)
            bench_die("mp_queue_put failed");
    for (int k = 0; k < procs; k++) {
        if (mp_queue_get_double(back, &t, RUN_LIMIT) < 0)
            bench_die("a queue benchmark consumer did not finish");
        last = fmax(last, t);
    }
    for (int k = 0; k < 2 * procs; k++) {
        int code = -1;
        if (mp_process_join(ps[k], MP_FOREVER) < 0 ||
            mp_process_exitcode(ps[k], &code) != 1 || code != 0)
            bench_die("a queue benchmark child failed");
        mp_process_free(ps[k]);
    }
    mp_queue_free(q);
    mp_queue_free(go);
    mp_queue_free(back);
    return (double)(per * procs) / (last - t0);
}

/* CPython */

/* Queue only, 64 B: the curve (`method` NULL), or the table by start
 * method (1 -> 1 and 4 -> 4). */
static void cpython_extra(const char *python, const char *method, int r)
{
    char n[32], procs[64] = "", m[16];
    char *argv[] = { (char *)python, "scripts/bench_queue.py", "--n", n,
                     "--impls", "queue", "--sizes", "64", "--procs", procs,
                     "--method", m, method == NULL ? "--flat" : NULL, NULL };
    json_t *root, *e;
    char *out;
    size_t i;

    snprintf(n, sizeof(n), "%ld", count_for(CPY_QUEUE, 64));
    snprintf(m, sizeof(m), "%s", method != NULL ? method : "fork");
    for (int k = 0; k < (method == NULL ? NCURVE : NPROCS); k++)
        snprintf(procs + strlen(procs), sizeof(procs) - strlen(procs), "%s%d",
                 k ? "," : "", method == NULL ? curve_procs[k]
                                              : procs_list[k]);
    if ((out = bench_capture(argv)) == NULL)
        bench_die("the CPython side failed (scripts/bench_queue.py)");
    if ((root = json_loads(out, 0, NULL)) == NULL)
        bench_die("the CPython side printed no JSON");
    json_array_foreach(json_object_get(root, "results"), i, e) {
        int p = (int)json_integer_value(json_object_get(e, "procs"));
        double v = json_number_value(json_object_get(e, "msgs_per_s"));
        for (int k = 0; k < NCURVE; k++)
            if (method == NULL && curve_procs[k] == p)
                curve[CPY_QUEUE][k][r] = v;
        for (int mi = 0; mi < NMETH; mi++)
            for (int k = 0; k < NPROCS; k++)
                if (method != NULL && strcmp(methods[mi], method) == 0 &&
                    procs_list[k] == p)
                    by_method[CPY_QUEUE][mi][k][r] = v;
    }
    json_decref(root);
    free(out);
}

static void cpython_round(const char *python, int r)
{
    char n[32], budget[32], nrtt[32];
    char *argv[] = { (char *)python, "scripts/bench_queue.py", "--n", n,
                     "--budget", budget, "--rtt", nrtt, NULL };
    json_t *root, *e;
    char *out;
    size_t i;

    snprintf(n, sizeof(n), "%ld", count_for(CPY_QUEUE, 64));
    snprintf(budget, sizeof(budget), "%.0f", 1.5e8 * scale);
    snprintf(nrtt, sizeof(nrtt), "%ld", (long)fmax(50, 5000 * scale));
    if ((out = bench_capture(argv)) == NULL)
        bench_die("the CPython side failed (scripts/bench_queue.py)");
    if ((root = json_loads(out, 0, NULL)) == NULL)
        bench_die("the CPython side printed no JSON");
    snprintf(py_version, sizeof(py_version), "%s",
             json_string_value(json_object_get(root, "python")));
    json_array_foreach(json_object_get(root, "results"), i, e) {
        const char *impl = json_string_value(json_object_get(e, "impl"));
        int size = (int)json_integer_value(json_object_get(e, "size"));
        int procs = (int)json_integer_value(json_object_get(e, "procs"));
        enum impl k = strcmp(impl, "queue") == 0         ? CPY_QUEUE
                      : strcmp(impl, "simplequeue") == 0 ? CPY_SIMPLE
                                                         : CPY_PIPE;
        for (int s = 0; s < NSIZES; s++)
            for (int p = 0; p < NPROCS; p++)
                if (sizes[s] == size && procs_list[p] == procs)
                    thr[k][s][p][r] = json_number_value(
                        json_object_get(e, "msgs_per_s"));
    }
    json_array_foreach(json_object_get(root, "rtt"), i, e) {
        const char *impl = json_string_value(json_object_get(e, "impl"));
        enum impl k = strcmp(impl, "queue") == 0         ? CPY_QUEUE
                      : strcmp(impl, "simplequeue") == 0 ? CPY_SIMPLE
                                                         : CPY_PIPE;
        rtt[k][r] = json_number_value(json_object_get(e, "seconds"));
    }
    json_decref(root);
    free(out);
}

/* reporting */

static double med(const double *v)
{
    return bench_quantile(v, (size_t)rounds, 0.5);
}

static json_t *ratios;

/* time(a) / time(b) per message, round by round: the gate's convention
 * (X_over_libmp higher is better, libmp_over_X lower is better). */
static void ratio(const char *key, const double *thr_a, const double *thr_b)
{
    double m;

    json_object_set_new(ratios, key,
                        bench_round_ratios(thr_b, thr_a, rounds, &m));
}

static json_t *series(const char *impl, int size, int procs, const char *unit,
                      const double *v)
{
    json_t *rs = json_array();

    for (int r = 0; r < rounds; r++)
        json_array_append_new(rs, json_real(v[r]));
    return json_pack("{s:s, s:i, s:i, s:s, s:f, s:f, s:f, s:o}", "impl",
                     impl, "size", size, "procs", procs, "unit", unit,
                     "median", med(v), "min",
                     bench_quantile(v, (size_t)rounds, 0),
                     "max", bench_quantile(v, (size_t)rounds, 1), "rounds",
                     rs);
}

static void print_thr(const double *v, int width)
{
    double m = med(v);

    if (m >= 1e6)
        printf(" %*.2fM", width - 1, m / 1e6);
    else
        printf(" %*.0fk", width - 1, m / 1e3);
}

int main(int argc, char **argv)
{
    struct bench_opts opt;
    const char *python, *out;
    json_t *root, *results, *rtts, *by_methods = json_array();

    bench_prog = "mp-bench-queue";
    mp_main(argc, argv);
    bench_options(argc, argv, 0.05, &opt);
    rounds = opt.rounds, scale = opt.scale, python = opt.python, out = opt.out;
    signal(SIGPIPE, SIG_IGN); /* as CPython runs; libmp needs no help */

    for (int r = 0; r < rounds; r++) {
        /* C implementations, then CPython, or the other way round */
        for (int half = 0; half < 2; half++) {
            if ((r + half) % 2 == 1) {
                bench_progress("round %d/%d: CPython", r + 1, rounds);
                cpython_round(python, r);
                continue;
            }
            for (int p = 0; p < NPROCS; p++)
                for (int s = 0; s < NSIZES; s++)
                    for (int k = 0; k < 4; k++) {
                        enum impl i = (enum impl)((r + k) % 4);
                        bench_progress("round %d/%d: %s, %d B, %d -> %d",
                                       r + 1, rounds, impl_names[i], sizes[s],
                                       procs_list[p], procs_list[p]);
                        thr[i][s][p][r] = run_throughput(
                            i, sizes[s], procs_list[p],
                            count_for(i, sizes[s]) * procs_list[p] /
                                (procs_list[p] > 1 ? 2 : 1));
                    }
            for (int k = 0; k < 4; k++) {
                enum impl i = (enum impl)((r + k) % 4);
                bench_progress("round %d/%d: round trips, %s", r + 1, rounds,
                               impl_names[i]);
                rtt[i][r] = run_rtt(i, (long)fmax(50, (i == RAW_RING_I ||
                                                       i == LIBMP_QUEUE
                                                       ? 100000 : 20000) *
                                                          scale));
            }
        }
        /* the curve, 64 B: the ring, libmp's Queue and CPython's, rotating;
         * the same number of messages whatever the number of processes */
        for (int k = 0; k < 3; k++) {
            int which = (r + k) % 3;
            if (which == 2) {
                bench_progress("round %d/%d: CPython Queue, 2-16 -> 2-16",
                               r + 1, rounds);
                cpython_extra(python, NULL, r);
                continue;
            }
            for (int c = 0; c < NCURVE; c++) {
                enum impl i = which == 0 ? RAW_RING_I : LIBMP_QUEUE;
                bench_progress("round %d/%d: %s, 64 B, %d -> %d", r + 1,
                               rounds, impl_names[i], curve_procs[c],
                               curve_procs[c]);
                curve[i][c][r] = run_throughput(i, 64, curve_procs[c],
                                                count_for(i, 64));
            }
        }
        /* children started by each method: libmp's Process and CPython's
         * context, rotating, with the forked ring as the limit */
        for (int mi = 0; mi < NMETH; mi++)
            for (int k = 0; k < 3; k++) {
                int which = (r + mi + k) % 3;
                if (which == 2) {
                    bench_progress("round %d/%d: CPython Queue [%s]", r + 1,
                                   rounds, methods[mi]);
                    cpython_extra(python, methods[mi], r);
                    continue;
                }
                for (int p = 0; p < NPROCS; p++) {
                    long n = count_for(LIBMP_QUEUE, 64) * procs_list[p] /
                             (procs_list[p] > 1 ? 2 : 1);
                    bench_progress("round %d/%d: %s, 64 B, %d -> %d [%s]",
                                   r + 1, rounds, which ? "libmp Queue"
                                   : "raw ring", procs_list[p], procs_list[p],
                                   methods[mi]);
                    if (which == 1)
                        by_method[LIBMP_QUEUE][mi][p][r] =
                            run_method_throughput(methods[mi], 64,
                                                  procs_list[p], n);
                    else if (mi == 0)
                        by_method[RAW_RING_I][mi][p][r] = run_throughput(
                            RAW_RING_I, 64, procs_list[p],
                            count_for(RAW_RING_I, 64) * procs_list[p] /
                                (procs_list[p] > 1 ? 2 : 1));
                }
            }
    }
    bench_progress(NULL);

    root = json_object();
    results = json_array();
    rtts = json_array();
    ratios = json_object();
    printf("Messages/s (median of %d rounds; CPython %s; 4 -> 4: Queues shared "
           "by all, pipes and rings in pairs)\n", rounds, py_version);
    printf("  %-22s", "");
    for (int p = 0; p < NPROCS; p++)
        for (int s = 0; s < NSIZES; s++)
            printf(" %5dB/%d", sizes[s], procs_list[p]);
    printf("\n");
    for (int i = 0; i < NIMPL; i++) {
        printf("  %-22s", impl_names[i]);
        for (int p = 0; p < NPROCS; p++)
            for (int s = 0; s < NSIZES; s++) {
                print_thr(thr[i][s][p], 8);
                json_array_append_new(results, series(
                    impl_keys[i], sizes[s], procs_list[p], "msgs/s",
                    thr[i][s][p]));
            }
        printf("\n");
    }
    for (int p = 0; p < NPROCS; p++)
        for (int s = 0; s < NSIZES; s++) {
            char key[128], pre[32];
            snprintf(pre, sizeof(pre), "queue.%dB.%dx%d", sizes[s],
                     procs_list[p], procs_list[p]);
            snprintf(key, sizeof(key), "%s.cpython_queue_over_libmp", pre);
            ratio(key, thr[CPY_QUEUE][s][p], thr[LIBMP_QUEUE][s][p]);
            snprintf(key, sizeof(key), "%s.cpython_simplequeue_over_libmp",
                     pre);
            ratio(key, thr[CPY_SIMPLE][s][p], thr[LIBMP_QUEUE][s][p]);
            snprintf(key, sizeof(key), "%s.libmp_over_raw_ring", pre);
            ratio(key, thr[LIBMP_QUEUE][s][p], thr[RAW_RING_I][s][p]);
            snprintf(pre, sizeof(pre), "pipe.%dB.%dx%d", sizes[s],
                     procs_list[p], procs_list[p]);
            snprintf(key, sizeof(key), "%s.cpython_pipe_over_libmp", pre);
            ratio(key, thr[CPY_PIPE][s][p], thr[LIBMP_PIPE][s][p]);
            snprintf(key, sizeof(key), "%s.libmp_over_raw_pipe", pre);
            ratio(key, thr[LIBMP_PIPE][s][p], thr[RAW_PIPE][s][p]);
        }
    {   /* the curve: into the table, as procs 2, 8, 16 at 64 B */
        static const enum impl who[] = { RAW_RING_I, LIBMP_QUEUE, CPY_QUEUE };
        printf("Messages/s at 64 B against producers -> consumers "
               "(median, min-max of rounds)\n");
        for (int c = 0; c < NCURVE; c++) {
            char key[128];
            for (int k = 0; k < 3; k++) {
                const double *v = curve[who[k]][c];
                printf("  %2d -> %-2d %-16s %10.0f  %.0f-%.0f\n",
                       curve_procs[c], curve_procs[c], impl_names[who[k]],
                       med(v), bench_quantile(v, (size_t)rounds, 0),
                       bench_quantile(v, (size_t)rounds, 1));
                json_array_append_new(results, series(
                    impl_keys[who[k]], 64, curve_procs[c], "msgs/s", v));
            }
            snprintf(key, sizeof(key),
                     "queue.64B.%dx%d.cpython_queue_over_libmp",
                     curve_procs[c], curve_procs[c]);
            ratio(key, curve[CPY_QUEUE][c], curve[LIBMP_QUEUE][c]);
            snprintf(key, sizeof(key), "queue.64B.%dx%d.libmp_over_raw_ring",
                     curve_procs[c], curve_procs[c]);
            ratio(key, curve[LIBMP_QUEUE][c], curve[RAW_RING_I][c]);
        }
    }
    {   /* by start method */
        static const enum impl who[] = { RAW_RING_I, LIBMP_QUEUE, CPY_QUEUE };
        printf("Messages/s at 64 B, children started by each method "
               "(median, min-max of rounds)\n");
        for (int mi = 0; mi < NMETH; mi++)
            for (int p = 0; p < NPROCS; p++) {
                char key[128];
                for (int k = 0; k < 3; k++) {
                    const double *v = by_method[who[k]][mi][p];
                    json_t *e;
                    if (who[k] == RAW_RING_I && mi > 0)
                        continue;
                    printf("  %-10s %d -> %d %-16s %10.0f  %.0f-%.0f\n",
                           methods[mi], procs_list[p], procs_list[p],
                           impl_names[who[k]], med(v),
                           bench_quantile(v, (size_t)rounds, 0),
                           bench_quantile(v, (size_t)rounds, 1));
                    e = series(impl_keys[who[k]], 64, procs_list[p],
                               "msgs/s", v);
                    json_object_set_new(e, "method",
                                        json_string(methods[mi]));
                    json_array_append_new(by_methods, e);
                }
                snprintf(key, sizeof(key),
                         "queue_method.%s.64B.%dx%d.cpython_queue_over_libmp",
                         methods[mi], procs_list[p], procs_list[p]);
                ratio(key, by_method[CPY_QUEUE][mi][p],
                      by_method[LIBMP_QUEUE][mi][p]);
                snprintf(key, sizeof(key),
                         "queue_method.%s.64B.%dx%d.libmp_over_raw_ring",
                         methods[mi], procs_list[p], procs_list[p]);
                ratio(key, by_method[LIBMP_QUEUE][mi][p],
                      by_method[RAW_RING_I][0][p]);
            }
    }
    printf("Round trip of a 64 B message, microseconds (median, min-max)\n");
    for (int i = 0; i < NIMPL; i++) {
        printf("  %-22s %8.1f  %.1f-%.1f\n", impl_names[i], med(rtt[i]) * 1e6,
               bench_quantile(rtt[i], (size_t)rounds, 0) * 1e6,
               bench_quantile(rtt[i], (size_t)rounds, 1) * 1e6);
        json_array_append_new(rtts, series(impl_keys[i], 64, 1, "s", rtt[i]));
    }
    {   /* round-trip ratios, on times directly */
        double inv[NIMPL][64];
        for (int i = 0; i < NIMPL; i++)
            for (int r = 0; r < rounds; r++)
                inv[i][r] = 1 / rtt[i][r];
        ratio("rtt.64B.cpython_queue_over_libmp", inv[CPY_QUEUE],
              inv[LIBMP_QUEUE]);
        ratio("rtt.64B.libmp_queue_over_raw_pipe", inv[LIBMP_QUEUE],
              inv[RAW_PIPE]);
        ratio("rtt.64B.cpython_pipe_over_libmp", inv[CPY_PIPE],
              inv[LIBMP_PIPE]);
    }
    printf("Ratios at 64 B, 1 -> 1 (median of per-round ratios, min-max):\n");
    {
        static const char *const keys[] = {
            "queue.64B.1x1.cpython_queue_over_libmp",
            "queue.64B.1x1.libmp_over_raw_ring",
            "pipe.64B.1x1.libmp_over_raw_pipe",
            "queue.64B.4x4.cpython_queue_over_libmp",
        };
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            json_t *o = json_object_get(ratios, keys[k]), *v;
            double lo = INFINITY, hi = -INFINITY;
            size_t i;
            json_array_foreach(json_object_get(o, "rounds"), i, v) {
                lo = fmin(lo, json_real_value(v));
                hi = fmax(hi, json_real_value(v));
            }
            printf("  %-42s %8.3f  %.3f-%.3f\n", keys[k],
                   json_real_value(json_object_get(o, "median")), lo, hi);
        }
    }
    bench_env_json(root, py_version);
    json_object_set_new(root, "rounds", json_integer(rounds));
    json_object_set_new(root, "scale", json_real(scale));
    json_object_set_new(root, "throughput", results);
    json_object_set_new(root, "rtt", rtts);
    json_object_set_new(root, "throughput_methods", by_methods);
    json_object_set_new(root, "ratios", ratios);
    if (out != NULL && json_dump_file(root, out, JSON_INDENT(1)) < 0)
        bench_die("cannot write the results");
    json_decref(root);
    return 0;
}
