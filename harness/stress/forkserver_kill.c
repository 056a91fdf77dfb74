/*
 * forkserver_kill.c - the "forkserver-kill" part: the fork server SIGKILLed
 * hundreds of times while two threads start forkserver children
 * continuously, in batches of 1 to 4 that run together (each child sleeps
 * 0 to 10 ms and returns 3).
 *
 * The run's process makes itself a child subreaper and forks the process
 * that uses libmp (the "user"), so that the children of every server that
 * dies are reparented to it: it reaps them and knows each one's pid and how
 * it ended.  In the user a third thread waits until a server runs (the
 * test hook mp__forkserver_pid()) that it has not killed yet, waits 0 to
 * 8 ms more and kills it.  What must hold:
 *   - every start succeeds or fails with MP_EFORKSERVER (the server died
 *     before answering);
 *   - every child started is joined, with its exit code 3, or 255 when its
 *     server died before telling it (as CPython);
 *   - a child given 255 really was orphaned (the run reaped it, and it
 *     ended with 3, or 1 if the server died before letting it run); the
 *     other orphans are children whose server died after telling (one per
 *     kill at most) or whose start failed;
 *   - after the last kill a new server comes up and starts work;
 *   - the user ends with the descriptors, mappings and RSS it had, no
 *     zombie (every dead server reaped), no child but the last server; the
 *     run, once the user has ended, has no child left at all.
 * It runs under forkserver only.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "stress.h"
#include "test_hooks.h"

#define STARTERS 2
#define BATCH 4
#define MAX_STARTS 65536
#define CODE 3
#define RSS_SLACK_KIB 1024

/* What the user tells the run, in shared memory. */
struct shared {
    struct {
        pid_t pid;
        int code;
    } started[MAX_STARTS];
    int nstarted;
    long kills, failed_starts, final_starts, other_errors;
    int first_error;
    bool failed;
    char reason[512], text[768], figures[4096];
};

static struct shared *sh;

MP_TARGET(fk_child)
{
    struct timespec ts = { 0, (long)mp_args_int(args, 0) * 1000 };

    nanosleep(&ts, NULL);
    return CODE;
}

struct user {
    struct stress_run *r;
    pthread_mutex_t lock;
    pthread_cond_t started; /* a start succeeded */
    pthread_barrier_t gate;
    bool stop;
};

static void note(int r)
{
    if (r == MP_EFORKSERVER) {
        __atomic_fetch_add(&sh->failed_starts, 1, __ATOMIC_RELAXED);
    } else {
        if (__atomic_fetch_add(&sh->other_errors, 1, __ATOMIC_RELAXED) == 0)
            sh->first_error = r;
    }
}

/* Starts and joins n children; false on a failure other than a start's
 * MP_EFORKSERVER. */
static bool batch(struct user *u, int n)
{
    mp_process *p[BATCH] = { 0 };
    struct stress_run *r = u->r;
    bool ok = true;
    int e, code;

    for (int i = 0; i < n; i++) {
        long long us = (long long)stress_below(10000);

        if (!STRESS_OK(r, mp_process_create(&p[i], &fk_child_target,
                                            MP_ARGS(us), NULL)))
            return false;
        if ((e = mp_process_start(p[i])) < 0) {
            note(e);
            p[i] = mp_process_free(p[i]);
            continue;
        }
        pthread_mutex_lock(&u->lock);
        pthread_cond_broadcast(&u->started);
        pthread_mutex_unlock(&u->lock);
    }
    for (int i = 0; i < n; i++) {
        pid_t pid = 0;
        int k;

        if (p[i] == NULL)
            continue;
        mp_process_pid(p[i], &pid);
        code = -1000;
        if (!STRESS_OK(r, mp_process_join(p[i], 60)) ||
            mp_process_exitcode(p[i], &code) != 1)
            ok = stress_fail(r, "child %d: not ended after join",
                             (int)pid);
        else if (code != CODE && code != 255)
            ok = stress_fail(r, "child %d: exit code %d, expected %d or "
                             "255", (int)pid, code, CODE);
        k = __atomic_fetch_add(&sh->nstarted, 1, __ATOMIC_RELAXED);
        if (k < MAX_STARTS) {
            sh->started[k].pid = pid;
            sh->started[k].code = code;
        }
        p[i] = mp_process_free(p[i]);
    }
    return ok;
}

static void *starter(void *arg)
{
    struct user *u = arg;

    batch(u, 1);
    pthread_barrier_wait(&u->gate);
    pthread_barrier_wait(&u->gate); /* the snapshot is taken */
    while (!__atomic_load_n(&u->stop, __ATOMIC_RELAXED) &&
           __atomic_load_n(&sh->nstarted, __ATOMIC_RELAXED) <
               MAX_STARTS - 2 * BATCH &&
           batch(u, 1 + (int)stress_below(BATCH)))
        ;
    pthread_mutex_lock(&u->lock);
    u->stop = true; /* the killer waits no more */
    pthread_cond_broadcast(&u->started);
    pthread_mutex_unlock(&u->lock);
    return NULL;
}

/* The next server that runs and was not killed yet (0: the starters
 * stopped). */
static pid_t next_server(struct user *u, pid_t last)
{
    pid_t pid = 0;

    pthread_mutex_lock(&u->lock);
    while (!u->stop && ((pid = mp__forkserver_pid()) == 0 || pid == last)) {
        struct timespec ts;

        /* A server starts with a start that follows; the timeout only
         * covers a start made between the look and the wait. */
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 20 * 1000 * 1000;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_cond_timedwait(&u->started, &u->lock, &ts);
    }
    if (u->stop)
        pid = 0;
    pthread_mutex_unlock(&u->lock);
    return pid;
}

/* The process that uses libmp; ends with exit(). */
static _Noreturn void user(struct stress_run *r)
{
    long kills = stress_size(r, 300, 10);
    struct user u = { .r = r, .lock = PTHREAD_MUTEX_INITIALIZER,
                      .started = PTHREAD_COND_INITIALIZER };
    pthread_t t[STARTERS];
    struct stress_snap before;
    pid_t last = 0, server;
    char *fig;

    /* The starters run, each with its stack and allocator arena, and have
     * started the server, before the snapshot. */
    pthread_barrier_init(&u.gate, NULL, STARTERS + 1);
    for (int i = 0; i < STARTERS; i++)
        if (pthread_create(&t[i], NULL, starter, &u) != 0) {
            stress_fail(r, "pthread_create failed");
            goto out;
        }
    pthread_barrier_wait(&u.gate);
    server = mp__forkserver_pid();
    stress_snap(&before);
    pthread_barrier_wait(&u.gate);
    while (sh->kills < kills && (last = next_server(&u, last)) != 0) {
        usleep((useconds_t)stress_below(8000)); /* a random instant */
        kill(last, SIGKILL); /* our child until libmp reaps it: see hook */
        sh->kills++;
    }
    pthread_mutex_lock(&u.lock);
    u.stop = true;
    pthread_mutex_unlock(&u.lock);
    for (int i = 0; i < STARTERS; i++)
        pthread_join(t[i], NULL);
    if (sh->kills < kills)
        stress_fail(r, "the starters stopped after %ld kills", sh->kills);
    /* A start that races the kill may fail; one made once the server is
     * dead must start a new one and succeed.  Not reaped here (WNOWAIT):
     * that is libmp's to do (ECHILD: it has). */
    if (last != 0) {
        siginfo_t si;

        while (waitid(P_PID, (id_t)last, &si, WEXITED | WNOWAIT) < 0 &&
               errno == EINTR)
            ;
    }
    for (int i = 0; i < 8; i++) {
        int before_errors = (int)(sh->failed_starts + sh->other_errors);

        if (!batch(&u, 1) || sh->failed_starts + sh->other_errors >
                                 before_errors) {
            stress_fail(r, "a start after the last kill failed");
            break;
        }
        sh->final_starts++;
    }
    server = mp__forkserver_pid();
    if (server == 0 || server == last)
        stress_fail(r, "no new fork server after the last kill");
    stress_check_how(r, &before, RSS_SLACK_KIB, &server, 1,
                     STRESS_RENUMBERED);
out:
    sh->failed = r->failed;
    memcpy(sh->reason, r->reason, sizeof(sh->reason));
    memcpy(sh->text, r->text, sizeof(sh->text));
    fig = json_dumps(r->figures, JSON_COMPACT);
    if (fig != NULL)
        snprintf(sh->figures, sizeof(sh->figures), "%s", fig);
    free(fig);
    exit(0);
}

struct orphan {
    pid_t pid;
    int status;
};

static int cmp_pid(const void *a, const void *b)
{
    pid_t x = *(const pid_t *)a, y = *(const pid_t *)b;

    return (x > y) - (x < y);
}

static struct orphan *find(struct orphan *o, size_t n, pid_t pid)
{
    return bsearch(&pid, o, n, sizeof(*o), cmp_pid);
}

/* Holds what the user recorded to the orphans the run reaped. */
static void judge(struct stress_run *r, struct orphan *o, size_t no)
{
    long gone = 0, told_after = 0, unknown = 0;
    int n = sh->nstarted < MAX_STARTS ? sh->nstarted : MAX_STARTS;
    size_t matched = 0;

    qsort(o, no, sizeof(*o), cmp_pid);
    for (size_t i = 0; i < no; i++)
        if (!WIFEXITED(o[i].status) || (WEXITSTATUS(o[i].status) != CODE &&
                                        WEXITSTATUS(o[i].status) != 1))
            stress_fail(r, "orphan %d ended with wait status 0x%x "
                        "(%d pids started, first %d)", (int)o[i].pid,
                        o[i].status, sh->nstarted, sh->started[0].pid);
    for (int i = 0; i < n; i++) {
        struct orphan *f = find(o, no, sh->started[i].pid);

        if (sh->started[i].code == 255) {
            gone++;
            if (f == NULL)
                stress_fail(r, "child %d: exit code 255, but it was never "
                            "orphaned", (int)sh->started[i].pid);
        } else if (f != NULL) {
            told_after++;
        }
        matched += f != NULL;
    }
    unknown = (long)(no - matched);
    if (told_after > sh->kills)
        stress_fail(r, "%ld children orphaned after their code was told, "
                    "more than one per kill", told_after);
    if (unknown > sh->failed_starts)
        stress_fail(r, "%ld orphans that no start returned, more than the "
                    "%ld failed starts", unknown, sh->failed_starts);
    stress_figure(r, "exit_255", (double)gone, "%.0f got 255");
    stress_figure(r, "orphans", (double)no, "%.0f orphans reaped");
}

static void forkserver_kill(struct stress_run *r)
{
    struct orphan *o = calloc(MAX_STARTS, sizeof(*o));
    size_t no = 0;
    pid_t u, w, kids[4];
    int status, ustatus = -1;
    double t0;
    json_t *uf;

    sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE,
              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED || o == NULL ||
        prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
        stress_fail(r, "set-up failed: %s", strerror(errno));
        return;
    }
    t0 = bench_now();
    fflush(NULL);
    if ((u = fork()) == 0)
        user(r);
    if (u < 0) {
        stress_fail(r, "fork failed: %s", strerror(errno));
        return;
    }
    while ((w = waitpid(-1, &status, 0)) > 0 || errno == EINTR) {
        if (w == u)
            ustatus = status;
        else if (w > 0 && no < MAX_STARTS)
            o[no++] = (struct orphan){ w, status };
    }
    if (ustatus != 0)
        stress_fail(r, "the process using libmp ended with wait status "
                    "0x%x", ustatus);
    if ((uf = json_loads(sh->figures, 0, NULL)) != NULL) {
        json_object_update(r->figures, uf);
        json_decref(uf);
    }
    if (sh->failed)
        stress_fail(r, "%s", sh->reason);
    stress_figure(r, "kills", (double)sh->kills, "%.0f kills");
    stress_figure(r, "starts", (double)sh->nstarted, "%.0f starts");
    stress_figure(r, "starts_per_s", sh->nstarted / (bench_now() - t0),
                  "%.0f starts/s");
    stress_figure(r, "failed_starts", (double)sh->failed_starts,
                  "%.0f failed (MP_EFORKSERVER)");
    judge(r, o, no);
    if (sh->other_errors > 0)
        stress_fail(r, "%ld starts failed otherwise than with "
                    "MP_EFORKSERVER, first: %s (%s)", sh->other_errors,
                    mp_err_name(sh->first_error),
                    mp_strerror(sh->first_error));
    if (stress_children(kids, 4) > 0)
        stress_fail(r, "a child left: pid %d", (int)kids[0]);
    /* the user's figures (its resources) last */
    if (sh->text[0] != '\0') {
        size_t len = strlen(r->text);

        if (len + 2 + strlen(sh->text) < sizeof(r->text)) {
            memcpy(r->text + len, ", ", 2);
            memcpy(r->text + len + 2, sh->text, strlen(sh->text) + 1);
        }
    }
    munmap(sh, sizeof(*sh));
    free(o);
}

STRESS_PART(forkserver_kill,
            .name = "forkserver-kill",
            .about = "the fork server SIGKILLed again and again under load",
            .methods = STRESS_FORKSERVER, .order = 40,
            .timeout_full = 240, .timeout_short = 30,
            .run = forkserver_kill)
