/*
 * bench_shared.c - libmp's shared values and SharedMemory against CPython's
 * multiprocessing.Value, Array and shared_memory.SharedMemory, and against
 * the least the machine can do:
 *
 *   incr (1, 2, 4 processes)  increments of one shared int, each under the
 *                         value's lock (CPython: `with v.get_lock():
 *                         v.value += 1`; libmp: mp_value_acquire, the int
 *                         through mp_value_ptr, mp_value_release):
 *                         increments a second, all processes together.
 *                         Two limits: an atomic add (raw_atomic: no lock
 *                         at all) and a futex mutex around a plain add
 *                         (raw: the least a lock can cost)
 *   copy_in, copy_out     a whole Array('d', 2^20) (8 MiB) written from and
 *                         read into a private buffer (CPython: `a[:] =
 *                         list` and `a[:]`; libmp: mp_array_write and
 *                         mp_array_read): bytes a second; the limit is
 *                         memcpy() to and from a MAP_SHARED mapping
 *   shm_cycle             SharedMemory(create=True, size=4096), a second
 *                         SharedMemory(name) attached, both closed, then
 *                         unlink(): seconds a cycle; the limit is the
 *                         system calls themselves (shm_open, ftruncate,
 *                         mmap, fstat, munmap, close, shm_unlink)
 *
 * One run; in every round each scenario runs every implementation in an
 * order that rotates from round to round, so the machine's load falls on
 * all alike.  Children are Processes of the fork context; they wait for a
 * word in shared memory before they start counting and the parent times
 * from that word to the last child's "done" (a futex wake).  CPython runs
 * scripts/bench_shared.py, one interpreter per scenario and round, which
 * times the same inside the interpreter.  Every run checks its result: the
 * locked counts must be exact, the copies equal.
 *
 *   mp-bench-shared [--rounds R] [--scale F] [--python PATH] [--out FILE]
 *                   [--quick]
 */
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "children.h"
#include "common.h"
#include "mp.h"
#include "rawsync.h"

#define MAX_PROCS 4
#define CHUNKS 5
#define COPY_ELEMS (1 << 20)
#define SHM_SIZE 4096

enum impl { RAW, RAW_ATOMIC, LIBMP, CPY, NIMPL };
static const char *const impl_keys[NIMPL] = { "raw", "raw_atomic", "libmp",
                                              "cpython" };
static const char *const impl_names[NIMPL] = { "limit", "atomic add",
                                               "libmp", "CPython" };

enum scen { INCR_1, INCR_2, INCR_4, COPY_IN, COPY_OUT, SHM_CYCLE, NSCEN };
static const struct scenario {
    const char *name;    /* bench_shared.py's --scenario */
    const char *key;     /* the ratios': shared.<key>.X_over_Y */
    const char *label;   /* the printed table's */
    int procs;
    bool rate;           /* a figure per second, else seconds an operation */
    double shown;        /* the printed table's unit, in the figure's */
    const char *unit;
    double count[NIMPL]; /* operations a run at scale 1 (0: not run) */
} scens[NSCEN] = {
    { "incr", "incr.1p", "locked increments, 1 process, M/s", 1, true, 1e-6,
      "increments/s", { 2e7, 2e7, 2e7, 1e6 } },
    { "incr", "incr.2p", "locked increments, 2 processes, M/s", 2, true,
      1e-6, "increments/s", { 1e7, 1e7, 1e7, 4e5 } },
    { "incr", "incr.4p", "locked increments, 4 processes, M/s", 4, true,
      1e-6, "increments/s", { 1e7, 1e7, 1e7, 4e5 } },
    { "copy_in", "copy_in", "Array('d', 2^20) copied in, GB/s", 1, true,
      1e-9, "bytes/s", { 200, 0, 200, 4 } },
    { "copy_out", "copy_out", "Array('d', 2^20) copied out, GB/s", 1, true,
      1e-9, "bytes/s", { 200, 0, 200, 4 } },
    { "shm_cycle", "shm_cycle", "SharedMemory create+attach+close+unlink, "
      "us", 1, false, 1e6, "s", { 2e4, 0, 2e4, 2e3 } },
};

/* One figure a round: [scenario][impl][round]. */
static double fig[NSCEN][NIMPL][64];
static int rounds = 5;
static double scale = 1.0;
static char py_version[32] = "?";
static mp_context *fork_ctx;

static bool runs(enum scen s, enum impl i)
{
    return scens[s].count[i] > 0;
}

static long count_for(enum scen s, enum impl i)
{
    return (long)fmax(scens[s].procs * 10.0, scens[s].count[i] * scale);
}

/* What the children and the limits share: mapped before any child exists. */
static struct area {
    alignas(64) _Atomic uint32_t go;
    alignas(64) _Atomic uint32_t left; /* children still counting */
    alignas(64) _Atomic uint32_t mutex;
    alignas(64) int32_t counter;        /* the limit's, under mutex */
    alignas(64) _Atomic int32_t atomic_counter;
    alignas(64) double copy[COPY_ELEMS]; /* the copy limit's "array" */
} *area;

/* increments */

static int incr_libmp(mp_value *v, long n)
{
    int32_t *x = mp_value_ptr(v);
    int r;

    for (long k = 0; k < n; k++) {
        if ((r = mp_value_acquire(v, 1, MP_FOREVER)) != 1)
            return r < 0 ? r : MP_EINVAL;
        (*x)++;
        if ((r = mp_value_release(v)) < 0)
            return r;
    }
    return 0;
}

static void incr_raw(enum impl i, long n)
{
    if (i == RAW_ATOMIC) {
        for (long k = 0; k < n; k++)
            atomic_fetch_add_explicit(&area->atomic_counter, 1,
                                      memory_order_relaxed);
        return;
    }
    for (long k = 0; k < n; k++) {
        raw_mutex_lock(&area->mutex);
        area->counter++;
        raw_mutex_unlock(&area->mutex);
    }
}

/* A child: wait for the word, count, say done. */
static int incr_child(enum impl i, mp_value *v, long n)
{
    int r = 0;

    while (atomic_load(&area->go) == 0)
        raw_futex_wait(&area->go, 0);
    if (i == LIBMP)
        r = incr_libmp(v, n);
    else
        incr_raw(i, n);
    if (atomic_fetch_sub(&area->left, 1) == 1)
        raw_futex_wake(&area->left, 1);
    return r < 0 ? bench_child_fail("a locked increment", r) : 0;
}

MP_TARGET(incr_child)
{
    mp_value *v = mp_args_type(args, 1) == MP_ARG_VALUE
                      ? mp_args_value(args, 1) : NULL;

    return incr_child((enum impl)mp_args_int(args, 0), v,
                      (long)mp_args_int(args, 2));
}

static double run_incr(enum impl i, int procs, long n)
{
    mp_process *ps[MAX_PROCS];
    mp_value *v = NULL;
    long per = n / procs, total = per * procs, got;
    double t0, t;

    atomic_store(&area->go, 0);
    atomic_store(&area->left, (uint32_t)procs);
    area->counter = 0;
    atomic_store(&area->atomic_counter, 0);
    if (i == LIBMP)
        bench_check(mp_value_new(&v, 'i', MP_ARG(0), NULL), 0, "Value('i')");
    if (procs == 1) {
        int r = 0;
        t0 = bench_now();
        if (i == LIBMP)
            r = incr_libmp(v, per);
        else
            incr_raw(i, per);
        t = bench_now() - t0;
        bench_check(r, 0, "a locked increment");
    } else {
        mp_arg args[3] = { mp_arg_int(i), i == LIBMP ? mp_arg_value(v)
                                                     : mp_arg_int(0),
                           mp_arg_int(per) };
        for (int k = 0; k < procs; k++)
            ps[k] = bench_child(fork_ctx, &incr_child_target, args, 3);
        t0 = bench_now();
        atomic_store(&area->go, 1);
        raw_futex_wake(&area->go, INT32_MAX);
        for (uint32_t left; (left = atomic_load(&area->left)) != 0;)
            raw_futex_wait(&area->left, left);
        t = bench_now() - t0;
        bench_children_join(ps, procs);
    }
    if (i == LIBMP)
        got = *(int32_t *)mp_value_ptr(v);
    else
        got = i == RAW ? area->counter : atomic_load(&area->atomic_counter);
    if (got != total) {
        fprintf(stderr, "mp-bench-shared: %ld locked increments made %ld\n",
                total, got);
        exit(2);
    }
    mp_value_free(v);
    return (double)total / t;
}

/* copies: the fastest of CHUNKS chunks, as for any loop without a system
 * call, so that what else runs only ever slows it */

static double run_copy(enum impl i, bool in, long n)
{
    static double buf[COPY_ELEMS];
    long per = n / CHUNKS > 0 ? n / CHUNKS : 1;
    double best = INFINITY;
    mp_value *a = NULL;

    for (long k = 0; k < COPY_ELEMS; k++)
        buf[k] = (double)k;
    if (i == LIBMP)
        bench_check(mp_array_new(&a, 'd', COPY_ELEMS, NULL), 0,
                    "Array('d', 2^20)");
    else
        memset(area->copy, 0, sizeof(area->copy));
    if (!in) { /* the array holds the values the copies must bring out */
        if (i == LIBMP)
            bench_check(mp_array_write(a, 0, COPY_ELEMS, buf, COPY_ELEMS), 0,
                        "a[:] = values");
        else
            memcpy(area->copy, buf, sizeof(buf));
        memset(buf, 0, sizeof(buf));
    }
    for (int c = 0; c < CHUNKS; c++) {
        double t0 = bench_now();
        for (long k = 0; k < per; k++) {
            if (i == RAW && in)
                memcpy(area->copy, buf, sizeof(buf));
            else if (i == RAW)
                memcpy(buf, area->copy, sizeof(buf));
            else if (in)
                bench_check(mp_array_write(a, 0, COPY_ELEMS, buf,
                                           COPY_ELEMS), 0, "a[:] = values");
            else if (mp_array_read(a, 0, COPY_ELEMS, buf, COPY_ELEMS) !=
                     COPY_ELEMS)
                bench_fail("a[:]", MP_EINVAL);
            /* the compiler must not drop a copy nobody reads */
            __asm__ volatile("" : : "r"(buf), "r"(area) : "memory");
        }
        best = fmin(best, (bench_now() - t0) / (double)per);
    }
    for (long k = 0; k < COPY_ELEMS; k++) {
        double want = (double)k, got = buf[k];
        if (in)
            got = i == RAW ? area->copy[k] : NAN;
        if (in && i == LIBMP &&
            mp_array_get_double(a, k, &got) < 0)
            bench_fail("a[k]", MP_EINVAL);
        if (got != want) {
            fprintf(stderr, "mp-bench-shared: element %ld copied as %g, "
                    "not %g\n", k, got, want);
            exit(2);
        }
    }
    mp_value_free(a);
    return (double)sizeof(buf) / best;
}

/* SharedMemory: a whole cycle, the median of a run's cycles */

static void shm_raw_cycle(const char *name)
{
    int fd = shm_open(name, O_CREAT | O_EXCL | O_RDWR, 0600), fd2;
    void *m, *m2;
    struct stat st;

    if (fd < 0 || ftruncate(fd, SHM_SIZE) < 0)
        bench_fail("shm_open(O_CREAT)", -errno);
    m = mmap(NULL, SHM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if ((fd2 = shm_open(name, O_RDWR, 0600)) < 0 || fstat(fd2, &st) < 0)
        bench_fail("shm_open", -errno);
    m2 = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED,
              fd2, 0);
    if (m == MAP_FAILED || m2 == MAP_FAILED)
        bench_fail("mmap", -errno);
    munmap(m2, (size_t)st.st_size);
    close(fd2);
    munmap(m, SHM_SIZE);
    close(fd);
    if (shm_unlink(name) < 0)
        bench_fail("shm_unlink", -errno);
}

static double run_shm(enum impl i, long n)
{
    double *t = malloc((size_t)n * sizeof(*t)), m;
    char name[64];

    if (t == NULL)
        bench_die("out of memory");
    snprintf(name, sizeof(name), "/mp_bench_%d", (int)getpid());
    for (long k = 0; k < n; k++) {
        double t0 = bench_now();
        if (i == RAW) {
            shm_raw_cycle(name);
        } else {
            mp_shm *s = NULL, *s2 = NULL;
            bench_check(mp_shm_new(&s, NULL, 1, SHM_SIZE), 0,
                        "SharedMemory(create=True)");
            bench_check(mp_shm_new(&s2, mp_shm_name(s), 0, 0), 0,
                        "SharedMemory(name)");
            bench_check(mp_shm_close(s2), 0, "close()");
            bench_check(mp_shm_close(s), 0, "close()");
            bench_check(mp_shm_unlink(s), 0, "unlink()");
            mp_shm_free(s2);
            mp_shm_free(s);
        }
        t[k] = bench_now() - t0;
    }
    m = bench_quantile(t, (size_t)n, 0.5);
    free(t);
    return m;
}

static double run_c(enum scen s, enum impl i)
{
    long n = count_for(s, i);

    switch (s) {
    case COPY_IN: return run_copy(i, true, n);
    case COPY_OUT: return run_copy(i, false, n);
    case SHM_CYCLE: return run_shm(i, n);
    default: return run_incr(i, scens[s].procs, n);
    }
}

/* CPython: scripts/bench_shared.py, one scenario */

static double run_cpython(const char *python, enum scen s)
{
    char n[32], procs[16];
    char *argv[] = { (char *)python, "scripts/bench_shared.py", "--scenario",
                     (char *)scens[s].name, "--n", n, "--procs", procs,
                     NULL };

    snprintf(n, sizeof(n), "%ld", count_for(s, CPY));
    snprintf(procs, sizeof(procs), "%d", scens[s].procs);
    return bench_cpython(argv, py_version, sizeof(py_version), NULL);
}

/* reporting */

static double med(const double *v)
{
    return bench_quantile(v, (size_t)rounds, 0.5);
}

/* The time an operation takes, round r. */
static double time_of(enum scen s, enum impl i, int r)
{
    return scens[s].rate ? 1 / fig[s][i][r] : fig[s][i][r];
}

/* a's time over b's, round by round, into ratios as shared.<key>.<name>. */
static double add_ratio(json_t *ratios, enum scen s, enum impl a,
                        enum impl b)
{
    double ta[64], tb[64], m;
    char key[128];

    for (int r = 0; r < rounds; r++)
        ta[r] = time_of(s, a, r), tb[r] = time_of(s, b, r);
    snprintf(key, sizeof(key), "shared.%s.%s_over_%s", scens[s].key,
             impl_keys[a], impl_keys[b]);
    json_object_set_new(ratios, key, bench_round_ratios(ta, tb, rounds, &m));
    return m;
}

int main(int argc, char **argv)
{
    struct bench_opts opt;
    json_t *root, *results, *ratios;

    bench_prog = "mp-bench-shared";
    mp_main(argc, argv);
    bench_options(argc, argv, 0.25, &opt);
    rounds = opt.rounds, scale = opt.scale;
    area = mmap(NULL, sizeof(*area), PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED)
        bench_die("mmap failed");
    bench_check(mp_get_context(&fork_ctx, "fork"), 0, "get_context");

    for (int r = 0; r < rounds; r++)
        for (int s = 0; s < NSCEN; s++)
            for (int k = 0; k < NIMPL; k++) {
                enum impl i = (enum impl)((r + s + k) % NIMPL);
                if (!runs((enum scen)s, i))
                    continue;
                bench_progress("round %d/%d: %s, %s", r + 1, rounds,
                               scens[s].label, impl_names[i]);
                fig[s][i][r] = i == CPY ? run_cpython(opt.python,
                                                      (enum scen)s)
                                        : run_c((enum scen)s, i);
            }
    bench_progress(NULL);

    root = json_object();
    results = json_array();
    ratios = json_object();
    printf("Shared values and memory (median of %d rounds, min-max of "
           "rounds; CPython %s)\n", rounds, py_version);
    printf("  %-46s %10s %10s %10s %10s %9s %9s %9s\n", "", "limit",
           "atomic add", "libmp", "CPython", "CPy/libmp", "libmp/lim",
           "libmp/atm");
    for (int s = 0; s < NSCEN; s++) {
        double cpy_lib, lib_raw, lib_atomic = NAN;

        printf("  %-46s", scens[s].label);
        for (int i = 0; i < NIMPL; i++) {
            json_t *rs;
            if (!runs((enum scen)s, (enum impl)i)) {
                printf(" %10s", "-");
                continue;
            }
            rs = json_array();
            for (int r = 0; r < rounds; r++)
                json_array_append_new(rs, json_real(fig[s][i][r]));
            json_array_append_new(results, json_pack(
                "{s:s, s:s, s:s, s:i, s:s, s:f, s:f, s:f, s:o}", "area",
                "shared", "scenario", scens[s].name, "impl", impl_keys[i], "procs", scens[s].procs,
                "unit", scens[s].unit, "median", med(fig[s][i]), "min",
                bench_quantile(fig[s][i], (size_t)rounds, 0), "max",
                bench_quantile(fig[s][i], (size_t)rounds, 1), "rounds", rs));
            printf(" %10.3f", med(fig[s][i]) * scens[s].shown);
        }
        cpy_lib = add_ratio(ratios, (enum scen)s, CPY, LIBMP);
        lib_raw = add_ratio(ratios, (enum scen)s, LIBMP, RAW);
        if (runs((enum scen)s, RAW_ATOMIC))
            lib_atomic = add_ratio(ratios, (enum scen)s, LIBMP, RAW_ATOMIC);
        /* how far the limit itself is from CPython: information */
        add_ratio(ratios, (enum scen)s, CPY, RAW);
        printf(" %9.2f %9.3f %9.3f\n", cpy_lib, lib_raw, lib_atomic);
        printf("  %-46s", "  (min-max of rounds)");
        for (int i = 0; i < NIMPL; i++) {
            double k = scens[s].shown;
            if (!runs((enum scen)s, (enum impl)i)) {
                printf(" %10s", "");
                continue;
            }
            printf(" %4.*f-%-5.*f", k < 1e-6 ? 1 : 2,
                   bench_quantile(fig[s][i], (size_t)rounds, 0) * k,
                   k < 1e-6 ? 1 : 2,
                   bench_quantile(fig[s][i], (size_t)rounds, 1) * k);
        }
        printf("\n");
    }
    bench_env_json(root, py_version);
    json_object_set_new(root, "rounds", json_integer(rounds));
    json_object_set_new(root, "scale", json_real(scale));
    json_object_set_new(root, "results", results);
    json_object_set_new(root, "ratios", ratios);
    if (opt.out != NULL && json_dump_file(root, opt.out, JSON_INDENT(1)) < 0)
        bench_die("cannot write the results");
    json_decref(root);
    return 0;
}
