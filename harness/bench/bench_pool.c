/*
 * bench_pool.c - libmp's Pool against CPython's multiprocessing.Pool, its
 * concurrent.futures.ProcessPoolExecutor and the least a pool can be: N
 * worker Processes that take tasks from one libmp Queue and put results on
 * another, with no pool machinery (the "limit").
 *
 *   map_c1          map(square, range(N), chunksize=1): tasks/s (the
 *                   executor's map with chunksize 1)
 *   map_auto        the same with Pool's default chunksize, N / (4 *
 *                   workers) rounded up (the executor and the limit are
 *                   given that chunksize): tasks/s
 *   apply_rtt       one apply_async(square, 3).get() on an idle pool
 *                   (executor: submit().result(); limit: one task out, its
 *                   result back): seconds, the median of a run's samples
 *   imap_unordered  N tasks that sleep a fixed pseudo-random mix of
 *                   durations (mix(): 7 in 8 under 0.1 ms, the rest 1 to
 *                   3 ms) through imap_unordered (executor: submit() each,
 *                   then as_completed()): seconds for all of them
 *   startup (2, 8, 32 workers)
 *                   Pool(W), one task's result, close(), join(): seconds
 *                   (the median of a run's samples); the limit is starting
 *                   W libmp Processes that do nothing and joining them
 *   scaling (1, 2, 4, 8 workers)
 *                   map_c1's tasks/s against the number of workers (the
 *                   executor is not run)
 *
 * Every scenario but startup runs two workers (this host's CPUs: Pool()'s
 * default here; fixed, so that two hosts run the same thing), started and
 * warmed up with a map of a hundred tasks before the clock starts; a map
 * is also run once untimed before the timed one, so that the rings of
 * libmp's queues have grown to what it needs (the first map into a fresh
 * queue pays the page faults of the growth: here 2.6-5 M tasks/s at
 * chunksize 1 against 6-7 M after).
 *
 * One run; in every round each scenario runs the implementations in an
 * order that rotates from round to round, so the machine's load falls on
 * all alike.  Everything uses the fork context: libmp's Pool and the
 * limit's Processes are made with it, and CPython runs
 * scripts/bench_pool.py (one interpreter a scenario, implementation and
 * round) with multiprocessing.get_context("fork"), timed inside it.  The
 * results are checked (the sum of the squares, of the durations) outside
 * the timed span.
 *
 *   mp-bench-pool [--rounds R] [--scale F] [--python PATH] [--out FILE]
 *                 [--quick]
 */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "children.h"
#include "common.h"
#include "mp.h"

#define MAX_WORKERS 32
#define WARMUP 100
#define WORKERS 2

enum impl { RAW, LIBMP, CPY, CPY_EX, NIMPL };
static const char *const impl_keys[NIMPL] = { "raw", "libmp", "cpython",
                                              "cpython_executor" };
static const char *const impl_names[NIMPL] = { "limit", "libmp",
                                               "CPython Pool",
                                               "CPython executor" };
/* bench_pool.py's --impl */
static const char *const py_impls[NIMPL] = { NULL, NULL, "pool",
                                             "executor" };

enum kind { MAP_C1, MAP_AUTO, APPLY_RTT, IMAP_UNORD, STARTUP, SCALING };
static const char *const kind_names[] = { "map_c1", "map_auto", "apply_rtt",
                                          "imap_unordered", "startup",
                                          "scaling" };

enum scen { S_MAP_C1, S_MAP_AUTO, S_APPLY, S_IMAP, S_START2, S_START8,
            S_START32, S_SCALE1, S_SCALE2, S_SCALE4, S_SCALE8, NSCEN };
static const struct scenario {
    enum kind kind;
    const char *key;   /* the ratios': pool.<key>.X_over_Y */
    const char *label; /* the printed table's */
    int workers;
    bool rate;         /* tasks/s, else seconds */
    double shown;      /* the printed table's unit, in the figure's */
    const char *unit;
    double count;      /* tasks, or samples, a run at scale 1 */
    bool executor;     /* the executor runs it */
} scens[NSCEN] = {
    { MAP_C1, "map_c1", "map, chunksize 1, tasks/s", WORKERS, true, 1,
      "tasks/s", 1e5, true },
    { MAP_AUTO, "map_auto", "map, default chunksize, tasks/s", WORKERS, true,
      1, "tasks/s", 1e5, true },
    { APPLY_RTT, "apply_rtt", "apply_async().get() round trip, us", WORKERS,
      false, 1e6, "s", 2000, true },
    { IMAP_UNORD, "imap_unordered", "imap_unordered, mixed sleeps, ms",
      WORKERS, false, 1e3, "s", 2000, true },
    { STARTUP, "startup.2w", "start-up+shutdown, 2 workers, ms", 2, false,
      1e3, "s", 20, true },
    { STARTUP, "startup.8w", "start-up+shutdown, 8 workers, ms", 8, false,
      1e3, "s", 10, true },
    { STARTUP, "startup.32w", "start-up+shutdown, 32 workers, ms", 32,
      false, 1e3, "s", 6, true },
    { SCALING, "scaling.1w", "map, chunksize 1, 1 worker, tasks/s", 1, true,
      1, "tasks/s", 2e4, false },
    { SCALING, "scaling.2w", "map, chunksize 1, 2 workers, tasks/s", 2, true,
      1, "tasks/s", 2e4, false },
    { SCALING, "scaling.4w", "map, chunksize 1, 4 workers, tasks/s", 4, true,
      1, "tasks/s", 2e4, false },
    { SCALING, "scaling.8w", "map, chunksize 1, 8 workers, tasks/s", 8, true,
      1, "tasks/s", 2e4, false },
};

/* One figure a round: [scenario][impl][round]. */
static double fig[NSCEN][NIMPL][64];
static int rounds = 5;
static double scale = 1.0;
static char py_version[32] = "?";
static mp_context *fork_ctx;

static long count_for(enum scen s)
{
    double floor = scens[s].kind == STARTUP ? 3 : 100;

    return (long)fmax(floor, scens[s].count * scale);
}

static bool is_map(enum kind k)
{
    return k == MAP_C1 || k == MAP_AUTO || k == SCALING;
}

static bool runs(enum scen s, enum impl i)
{
    return i != CPY_EX || scens[s].executor;
}

/* Pool.map's default chunksize: n / (4 * workers), rounded up. */
static long default_chunksize(long n, int workers)
{
    long per = 4L * workers;

    return n / per + (n % per != 0);
}

/* The durations of the mixed tasks, microseconds: scripts/bench_pool.py's
 * mix(), the same numbers. */
static void mix(long long *us, long n)
{
    uint32_t x = 12345;

    for (long k = 0; k < n; k++) {
        x = (x * 1103515245u + 12345u) & 0x7fffffffu;
        us[k] = (x >> 8) % 8 == 0 ? 1000 + (x >> 4) % 2000 : (x >> 4) % 100;
    }
}

static void nap_us(long long us)
{
    struct timespec ts = { (time_t)(us / 1000000), (long)(us % 1000000) * 1000 };

    while (clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, &ts) == EINTR)
        ;
}

/* failures (children.h; the watchdog kills the limit's workers on a hang,
 * the Pool's die with this process: PR_SET_PDEATHSIG) */

static void check_sum(long long got, long long want, const char *what)
{
    if (got != want) {
        fprintf(stderr, "mp-bench-pool: %s: the results add up to %lld, not "
                "%lld\n", what, got, want);
        exit(2);
    }
}

/* the tasks */

MP_TARGET(square)
{
    long long x = mp_args_int(args, 0);

    return mp_task_return(MP_ARG(x * x));
}

MP_TARGET(nap)
{
    long long us = mp_args_int(args, 0);

    nap_us(us);
    return mp_task_return(MP_ARG(us));
}

MP_TARGET(idle)
{
    return 0;
}

/*
 * The limit: workers that take a message (op, index, count, then count
 * values) from one queue, square or sleep each value, and put (index,
 * count, values) on the other; op 0 ends them.  What the Pool adds to this
 * is its bookkeeping: the job table, the result thread, the slots that
 * survive a worker's death, the callbacks, the typed values.
 */
enum { OP_STOP, OP_SQUARE, OP_NAP };
#define HDR 3 /* op, index, count */

/* The next message into *buf, grown to fit. */
static int get_msg(mp_queue *q, long long **buf, size_t *cap, size_t *len)
{
    for (;;) {
        int r = mp_queue_get_into(q, *buf, *cap, len, 1, MP_FOREVER);
        long long *grown;

        if (r != MP_ETOOSHORT)
            return r;
        if ((grown = realloc(*buf, *len)) == NULL)
            return -ENOMEM;
        *buf = grown;
        *cap = *len;
    }
}

MP_TARGET(raw_worker)
{
    mp_queue *tasks = mp_args_queue(args, 0), *results = mp_args_queue(args, 1);
    size_t cap = 64 * sizeof(long long), got;
    long long *m = malloc(cap);
    int r = 0;

    while (m != NULL && (r = get_msg(tasks, &m, &cap, &got)) == 0) {
        long long n;
        if (got < HDR * sizeof(*m) || m[0] == OP_STOP)
            break;
        n = m[2];
        if (n < 0 || got != (size_t)(HDR + n) * sizeof(*m))
            return 3;
        for (long long k = 0; k < n; k++) {
            if (m[0] == OP_NAP)
                nap_us(m[HDR + k]);
            else
                m[HDR + k] *= m[HDR + k];
        }
        /* the index and count stay, just before the values */
        if ((r = mp_queue_put(results, m + 1, got - sizeof(*m), 1,
                              MP_FOREVER)) < 0)
            break;
    }
    free(m);
    return r < 0 ? 3 : 0;
}

struct raw_pool {
    mp_queue *tasks, *results;
    mp_process *ps[MAX_WORKERS];
    int workers;
    long long *buf; /* a message, reused */
    size_t cap;
};

static void raw_put(struct raw_pool *rp, int op, long long idx,
                    const long long *v, long long n)
{
    size_t len = (size_t)(HDR + n) * sizeof(long long);

    if (len > rp->cap) {
        free(rp->buf);
        if ((rp->buf = malloc(len)) == NULL)
            bench_die("out of memory");
        rp->cap = len;
    }
    rp->buf[0] = op, rp->buf[1] = idx, rp->buf[2] = n;
    if (n > 0) /* a stop has no values, and v is NULL */
        memcpy(rp->buf + HDR, v, (size_t)n * sizeof(*v));
    bench_check(mp_queue_put(rp->tasks, rp->buf, len, 1, MP_FOREVER), 0,
          "the limit's put");
}

/* The next result: its values into out[index...]; returns their sum. */
static long long raw_collect(struct raw_pool *rp, long long *out, long n)
{
    long long sum = 0, idx, cnt;
    size_t len;

    bench_check(get_msg(rp->results, &rp->buf, &rp->cap, &len), 0,
          "the limit's get");
    if (len < 2 * sizeof(long long))
        bench_die("the limit: a short result");
    idx = rp->buf[0], cnt = rp->buf[1];
    if (idx < 0 || cnt < 0 || idx + cnt > n ||
        len != (size_t)(2 + cnt) * sizeof(long long))
        bench_die("the limit: a malformed result");
    for (long long k = 0; k < cnt; k++) {
        if (out != NULL)
            out[idx + k] = rp->buf[2 + k];
        sum += rp->buf[2 + k];
    }
    return sum;
}

/* Puts n values in chunks of cs, then takes every result: their sum. */
static long long raw_run(struct raw_pool *rp, int op, const long long *v,
                         long n, long cs, long long *out)
{
    long chunks = 0;
    long long sum = 0;

    for (long lo = 0; lo < n; lo += cs, chunks++)
        raw_put(rp, op, lo, v + lo, lo + cs < n ? cs : n - lo);
    while (chunks-- > 0)
        sum += raw_collect(rp, out, n);
    return sum;
}

static void raw_start(struct raw_pool *rp, int workers)
{
    memset(rp, 0, sizeof(*rp));
    rp->workers = workers;
    bench_check(mp_queue_new(&rp->tasks, 0), 0, "Queue()");
    bench_check(mp_queue_new(&rp->results, 0), 0, "Queue()");
    for (int k = 0; k < workers; k++)
        rp->ps[k] = bench_child(fork_ctx, &raw_worker_target,
                                MP_ARGS(rp->tasks, rp->results));
}

static void raw_stop(struct raw_pool *rp)
{
    for (int k = 0; k < rp->workers; k++)
        raw_put(rp, OP_STOP, 0, NULL, 0);
    bench_children_join(rp->ps, rp->workers);
    mp_queue_free(rp->tasks);
    mp_queue_free(rp->results);
    free(rp->buf);
}

/* libmp's Pool */

static mp_pool *pool_start(int workers)
{
    mp_pool_options o = { .context = fork_ctx };
    mp_pool *p;

    bench_check(mp_pool_new(&p, workers, &o), 0, "Pool()");
    return p;
}

static void pool_stop(mp_pool *p)
{
    bench_check(mp_pool_close(p), 0, "Pool.close()");
    bench_check(mp_pool_join(p), 0, "Pool.join()");
    mp_pool_free(p);
}

/* map(): the sum of the results' values. */
static long long pool_map(mp_pool *p, const mp_arg *items, long n, long cs)
{
    mp_result *res;
    long long sum = 0;

    bench_check(mp_pool_map(p, &square_target, items, (size_t)n, cs, &res), 0,
          "Pool.map()");
    if (mp_result_len(res) != (size_t)n)
        bench_die("Pool.map(): a result of the wrong length");
    for (long k = 0; k < n; k++)
        sum += mp_result_value(res, (size_t)k)->u.i;
    mp_result_free(res);
    return sum;
}

static long long one_apply(mp_pool *p)
{
    mp_result *res;
    long long v;

    bench_check(mp_pool_apply_async(p, &square_target, MP_ARGS(3), NULL, &res), 0,
          "Pool.apply_async()");
    bench_check(mp_result_get(res, MP_FOREVER), 0, "AsyncResult.get()");
    v = mp_result_value(res, 0)->u.i;
    mp_result_free(res);
    return v;
}

static long long one_raw(struct raw_pool *rp)
{
    static const long long three = 3;

    raw_put(rp, OP_SQUARE, 0, &three, 1);
    return raw_collect(rp, NULL, 1);
}

/* runs */

static double median_of(double *v, long n)
{
    return bench_quantile(v, (size_t)n, 0.5);
}

/* start-up: Pool(W), one task, close(), join(); the limit: W Processes
 * started and joined */
static double run_startup(enum impl i, int workers, long samples)
{
    mp_process_options o = { .context = fork_ctx };
    double *t = malloc((size_t)samples * sizeof(*t)), m;

    if (t == NULL)
        bench_die("out of memory");
    for (long s = 0; s < samples; s++) {
        double t0 = bench_now();
        if (i == LIBMP) {
            mp_pool *p = pool_start(workers);
            check_sum(one_apply(p), 9, "Pool.apply()");
            pool_stop(p);
        } else {
            mp_process *ps[MAX_WORKERS];
            for (int k = 0; k < workers; k++) {
                int r;
                if ((r = mp_process_create(&ps[k], &idle_target, NULL, 0,
                                           &o)) < 0 ||
                    (r = mp_process_start(ps[k])) < 0)
                    bench_fail("cannot start a Process", r);
            }
            for (int k = 0; k < workers; k++) {
                int code = -1;
                bench_check(mp_process_join(ps[k], MP_FOREVER), 0, "join");
                if (mp_process_exitcode(ps[k], &code) != 1 || code != 0)
                    bench_die("a Process failed");
                mp_process_free(ps[k]);
            }
        }
        t[s] = bench_now() - t0;
    }
    m = median_of(t, samples);
    free(t);
    return m;
}

static double run_c(enum scen s, enum impl i)
{
    const struct scenario *sc = &scens[s];
    long n = count_for(s), cs = sc->kind == MAP_AUTO
                                    ? default_chunksize(n, sc->workers) : 1;
    long long *v = NULL, *out = NULL, want = 0, sum = 0;
    mp_arg *items = NULL, warm[WARMUP];
    struct raw_pool rp;
    mp_pool *p = NULL;
    double t0, t, *lat = NULL;

    bench_watchdog(1);
    if (sc->kind == STARTUP) {
        t = run_startup(i, sc->workers, n);
        bench_watchdog(0);
        return t;
    }
    if ((v = malloc((size_t)n * sizeof(*v))) == NULL ||
        (out = malloc((size_t)n * sizeof(*out))) == NULL ||
        (items = malloc((size_t)n * sizeof(*items))) == NULL ||
        (lat = malloc((size_t)n * sizeof(*lat))) == NULL)
        bench_die("out of memory");
    if (sc->kind == IMAP_UNORD)
        mix(v, n);
    else
        for (long k = 0; k < n; k++)
            v[k] = k;
    for (long k = 0; k < n; k++) {
        items[k] = mp_arg_int(v[k]);
        want += sc->kind == IMAP_UNORD ? v[k] : v[k] * v[k];
    }
    for (long k = 0; k < WARMUP; k++)
        warm[k] = mp_arg_int(k);
    /* the workers, up and running; before a map, the same map once, so
     * that the queues' rings have grown to what it needs (a fresh ring
     * pays its page faults in the first map) */
    if (i == LIBMP) {
        p = pool_start(sc->workers);
        pool_map(p, warm, WARMUP, 1);
        if (is_map(sc->kind))
            pool_map(p, items, n, cs);
    } else {
        raw_start(&rp, sc->workers);
        raw_run(&rp, OP_SQUARE, v, WARMUP, 1, out);
        if (is_map(sc->kind))
            raw_run(&rp, OP_SQUARE, v, n, cs, out);
    }
    t0 = bench_now();
    switch (sc->kind) {
    case MAP_C1:
    case MAP_AUTO:
    case SCALING:
        sum = i == LIBMP ? pool_map(p, items, n, cs)
                         : raw_run(&rp, OP_SQUARE, v, n, cs, out);
        t = (double)n / (bench_now() - t0);
        break;
    case APPLY_RTT:
        for (long k = 0; k < n; k++) {
            double a = bench_now();
            sum += i == LIBMP ? one_apply(p) : one_raw(&rp);
            lat[k] = bench_now() - a;
        }
        want = 9 * (long long)n;
        t = median_of(lat, n);
        break;
    default: /* IMAP_UNORD */
        if (i == LIBMP) {
            mp_imap *it;
            const mp_arg *val;
            int r;
            bench_check(mp_pool_imap_unordered(p, &nap_target, items, (size_t)n, 1,
                                         &it), 0, "Pool.imap_unordered()");
            while ((r = mp_imap_next(it, MP_FOREVER, &val)) == 1)
                sum += val->u.i;
            bench_check(r, 0, "IMapIterator.next()");
            mp_imap_free(it);
        } else {
            sum = raw_run(&rp, OP_NAP, v, n, 1, NULL);
        }
        t = bench_now() - t0;
        break;
    }
    check_sum(sum, want, kind_names[sc->kind]);
    if (i == LIBMP)
        pool_stop(p);
    else
        raw_stop(&rp);
    bench_watchdog(0);
    free(v);
    free(out);
    free(items);
    free(lat);
    return t;
}

/* CPython: scripts/bench_pool.py, one scenario and implementation */

static double run_cpython(const char *python, enum scen s, enum impl i)
{
    const struct scenario *sc = &scens[s];
    char n[32], w[16];
    char *argv[] = { (char *)python, "scripts/bench_pool.py", "--scenario",
                     (char *)(sc->kind == SCALING ? "map_c1"
                                                  : kind_names[sc->kind]),
                     "--impl", (char *)py_impls[i], "--n", n, "--workers", w,
                     NULL };
    long long want = 0;
    json_t *root;
    double v;

    snprintf(n, sizeof(n), "%ld", count_for(s));
    snprintf(w, sizeof(w), "%d", sc->workers);
    v = bench_cpython(argv, py_version, sizeof(py_version), &root);
    /* the same work as libmp's: the same results, the same mix */
    if (sc->kind == IMAP_UNORD) {
        long long *d = malloc((size_t)count_for(s) * sizeof(*d));
        if (d == NULL)
            bench_die("out of memory");
        mix(d, count_for(s));
        for (long k = 0; k < count_for(s); k++)
            want += d[k];
        free(d);
    } else if (sc->kind == APPLY_RTT || sc->kind == STARTUP) {
        want = 9 * (long long)count_for(s);
    } else {
        for (long long k = 0; k < count_for(s); k++)
            want += k * k;
    }
    check_sum(json_integer_value(json_object_get(root, "check")), want,
              "the CPython side");
    json_decref(root);
    return v;
}

/* reporting */

static double med(const double *v)
{
    return bench_quantile(v, (size_t)rounds, 0.5);
}

/* The time a task (a rate's inverse) or a sample takes, round r. */
static double time_of(enum scen s, enum impl i, int r)
{
    return scens[s].rate ? 1 / fig[s][i][r] : fig[s][i][r];
}

/* a's time over b's, round by round; the median of those. */
static json_t *ratio(enum scen s, enum impl a, enum impl b, double *m)
{
    double ta[64], tb[64];

    for (int r = 0; r < rounds; r++)
        ta[r] = time_of(s, a, r), tb[r] = time_of(s, b, r);
    return bench_round_ratios(ta, tb, rounds, m);
}

static void print_fig(enum scen s, enum impl i)
{
    double v = med(fig[s][i]);

    if (!runs(s, i))
        printf(" %12s", "-");
    else if (!scens[s].rate)
        printf(" %12.3f", v * scens[s].shown);
    else
        printf(" %12.0f", v);
}

static void add_ratio(json_t *ratios, enum scen s, const char *name,
                      enum impl a, enum impl b, double *m)
{
    char key[128];

    *m = NAN;
    if (!runs(s, a) || !runs(s, b))
        return;
    snprintf(key, sizeof(key), "pool.%s.%s", scens[s].key, name);
    json_object_set_new(ratios, key, ratio(s, a, b, m));
}

int main(int argc, char **argv)
{
    struct bench_opts opt;
    json_t *root, *results, *ratios;

    bench_prog = "mp-bench-pool";
    mp_main(argc, argv);
    bench_options(argc, argv, 0.1, &opt);
    rounds = opt.rounds, scale = opt.scale;
    bench_check(mp_get_context(&fork_ctx, "fork"), 0, "get_context");

    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < NSCEN; s++)
            for (int k = 0; k < NIMPL; k++) {
                enum impl i = (enum impl)((r + s + k) % NIMPL);
                if (!runs((enum scen)s, i))
                    continue;
                bench_progress("round %d/%d: %s, %s", r + 1, rounds,
                               scens[s].label, impl_names[i]);
                fig[s][i][r] = i >= CPY ? run_cpython(opt.python,
                                                      (enum scen)s, i)
                                        : run_c((enum scen)s, i);
            }
    bench_progress(NULL);

    root = json_object();
    results = json_array();
    ratios = json_object();
    printf("Pool (median of %d rounds, min-max of rounds; CPython %s, fork "
           "context)\n", rounds, py_version);
    printf("  %-40s %12s %12s %12s %12s %9s %9s %9s\n", "", "limit", "libmp",
           "CPy Pool", "CPy exec", "CPy/libmp", "exec/libmp", "libmp/lim");
    for (int s = 0; s < NSCEN; s++) {
        double cpy_lib, ex_lib, lib_raw, cpy_raw;

        printf("  %-40s", scens[s].label);
        for (int i = 0; i < NIMPL; i++) {
            json_t *rs = json_array(), *e;
            if (!runs((enum scen)s, (enum impl)i)) {
                print_fig((enum scen)s, (enum impl)i);
                json_decref(rs);
                continue;
            }
            for (int r = 0; r < rounds; r++)
                json_array_append_new(rs, json_real(fig[s][i][r]));
            e = json_pack("{s:s, s:i, s:s, s:s, s:I, s:f, s:f, s:f, s:o}",
                          "scenario", kind_names[scens[s].kind], "workers",
                          scens[s].workers, "impl", impl_keys[i], "unit",
                          scens[s].unit, "n", (json_int_t)count_for(
                              (enum scen)s),
                          "median", med(fig[s][i]), "min",
                          bench_quantile(fig[s][i], (size_t)rounds, 0), "max",
                          bench_quantile(fig[s][i], (size_t)rounds, 1),
                          "rounds", rs);
            if (scens[s].kind == MAP_AUTO)
                json_object_set_new(e, "chunksize", json_integer(
                    default_chunksize(count_for((enum scen)s),
                                      scens[s].workers)));
            else if (scens[s].kind != STARTUP)
                json_object_set_new(e, "chunksize", json_integer(1));
            json_array_append_new(results, e);
            print_fig((enum scen)s, (enum impl)i);
        }
        add_ratio(ratios, (enum scen)s, "cpython_over_libmp", CPY, LIBMP,
                  &cpy_lib);
        add_ratio(ratios, (enum scen)s, "cpython_executor_over_libmp",
                  CPY_EX, LIBMP, &ex_lib);
        add_ratio(ratios, (enum scen)s, "libmp_over_raw", LIBMP, RAW,
                  &lib_raw);
        /* how far the limit itself is from CPython: information */
        add_ratio(ratios, (enum scen)s, "cpython_over_raw", CPY, RAW,
                  &cpy_raw);
        printf(" %9.2f", cpy_lib);
        if (isnan(ex_lib))
            printf(" %9s", "-");
        else
            printf(" %9.2f", ex_lib);
        printf(" %9.3f\n", lib_raw);
        printf("  %-40s", "  (min-max of rounds)");
        for (int i = 0; i < NIMPL; i++) {
            double lo = bench_quantile(fig[s][i], (size_t)rounds, 0);
            double hi = bench_quantile(fig[s][i], (size_t)rounds, 1);
            double k = scens[s].rate ? 1 : scens[s].shown;
            if (!runs((enum scen)s, (enum impl)i))
                printf(" %12s", "");
            else
                printf(" %5.*f-%-6.*f", scens[s].rate ? 0 : 1, lo * k,
                       scens[s].rate ? 0 : 1, hi * k);
        }
        printf("\n");
    }
    bench_env_json(root, py_version);
    json_object_set_new(root, "rounds", json_integer(rounds));
    json_object_set_new(root, "scale", json_real(scale));
    json_object_set_new(root, "context", json_string("fork"));
    json_object_set_new(root, "results", results);
    json_object_set_new(root, "ratios", ratios);
    if (opt.out != NULL && json_dump_file(root, opt.out, JSON_INDENT(1)) < 0)
        bench_die("cannot write the results");
    json_decref(root);
    return 0;
}
