/*
 * test_sync_death.c - what sync.c's objects do when a process using them
 * dies (SIGKILL) or writes over their shared memory: robust locks hand a
 * dead holder's lock on with MP_EOWNERDEAD, at every point of acquire and
 * release (the fault points of test_hooks.h); default locks keep CPython's
 * behaviour; a Barrier breaks for a dead waiter; an Event's set() is done
 * or not done, never half done; a scribbled page is MP_ESYNCCORRUPT.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <linux/futex.h>
#include <limits.h>
#include <stdio.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "check.h"
#include "internal.h"
#include "test_hooks.h"

static mp_process *start_fork(const mp_target *t, const mp_arg *v, size_t n)
{
    mp_process_options o = { 0 };
    mp_process *p;

    ASSERT_OK(mp_get_context(&o.context, "fork"));
    ASSERT_OK(mp_process_create(&p, t, v, n, &o));
    ASSERT_OK(mp_process_start(p));
    return p;
}

/* Ends p with SIGKILL if it still runs, and checks how it ended. */
static void kill_and_reap(mp_process *p)
{
    int code = 0;

    ASSERT_OK(mp_process_kill(p));
    ASSERT_OK(mp_process_join(p, 30));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(-SIGKILL, code);
    mp_process_free(p);
}

/* Holds the lock (argument 0), says so on the event (1), and sleeps until
 * it is killed. */
MP_TARGET(hold_and_sleep)
{
    mp_lock *l = mp_args_lock(args, 0);

    if (mp_lock_acquire(l, 1, MP_FOREVER) != 1)
        return 2;
    mp_check(mp_event_set(mp_args_event(args, 1)));
    for (;;)
        pause();
}

/* Takes the lock as the next holder, checks that it holds it, and gives
 * it back. */
static void *acquire_for_ever(void *arg)
{
    int r = mp_lock_acquire(arg, 1, MP_FOREVER);

    if (r == MP_EOWNERDEAD) {
        ASSERT_EQ(0, mp_lock_get_value(arg));
        ASSERT_EQ(1, mp_lock_is_mine(arg));
        ASSERT_EQ(0, mp_lock_release(arg));
    }
    return (void *)(intptr_t)r;
}

static void holder_killed(int (*make)(mp_lock **))
{
    mp_lock *l;
    mp_event *held;
    mp_process *p;
    pthread_t th;
    void *res;
    double t0;

    ASSERT_OK(make(&l));
    ASSERT_OK(mp_event_new(&held));
    p = start_fork(&hold_and_sleep_target, MP_ARGS(l, held));
    ASSERT_EQ(1, mp_event_wait(held, 30));
    /* A waiter asleep when the holder dies is woken by the kernel. */
    ASSERT_EQ(0, pthread_create(&th, NULL, acquire_for_ever, l));
    usleep(50000);
    t0 = check_now();
    kill_and_reap(p);
    ASSERT_EQ(0, pthread_join(th, &res));
    ASSERT_EQ(MP_EOWNERDEAD, (int)(intptr_t)res);
    ASSERT_WITHIN(0, 2.0, check_now() - t0);
    ASSERT_EQ(1, mp_lock_get_value(l));
    ASSERT_EQ(1, mp_lock_acquire(l, 0, 0));
    ASSERT_EQ(0, mp_lock_release(l));
    mp_lock_free(l);
    mp_event_free(held);
}

static void *release_it(void *arg)
{
    return (void *)(intptr_t)mp_lock_release(arg);
}

TEST(a_robust_lock_whose_holder_died_goes_to_the_next_with_eownerdead)
{
    holder_killed(mp_lock_new_robust);
    holder_killed(mp_rlock_new_robust);
}

TEST(a_robust_lock_has_an_owner)
{
    mp_lock *l;
    pthread_t th;
    void *res;
    double t0;
    char buf[128];

    ASSERT_OK(mp_lock_new_robust(&l));
    ASSERT_EQ(MP_ERELEASED, mp_lock_release(l));
    ASSERT_EQ(1, mp_lock_acquire(l, 1, MP_FOREVER));
    ASSERT_TRUE(mp_lock_repr(l, buf, sizeof(buf)) > 0);
    ASSERT_STREQ("<Lock(owner=MainProcess)>", buf);
    ASSERT_EQ(0, pthread_create(&th, NULL, release_it, l));
    ASSERT_EQ(0, pthread_join(th, &res));
    ASSERT_EQ(MP_EROBUSTOWNER, (int)(intptr_t)res);
    /* The holder waits for itself, as CPython's Lock. */
    t0 = check_now();
    ASSERT_EQ(0, mp_lock_acquire(l, 1, 0.2));
    ASSERT_WITHIN(0.19, 1.0, check_now() - t0);
    ASSERT_EQ(0, mp_lock_acquire(l, 0, 0));
    ASSERT_EQ(0, mp_lock_release(l));
    ASSERT_EQ(1, mp_lock_get_value(l));
    ASSERT_STREQ("OwnerDiedError", mp_exception_name(MP_EOWNERDEAD));
    ASSERT_STREQ("RuntimeError", mp_exception_name(MP_EROBUSTOWNER));
    ASSERT_STREQ("a robust lock can only be released by the thread that "
                 "holds it", mp_strerror(MP_EROBUSTOWNER));
    ASSERT_STREQ("OSError", mp_exception_name(MP_ESYNCCORRUPT));
    mp_lock_free(l);
}

/* A thread of this process that ended holding a robust lock leaves this
 * process's count at 1: the next holder's count is its own, 1, so one
 * release frees the lock (an RLock's too) and leaves it not mine.  A new
 * thread that glibc gives the ended one's pthread_t (its cached stack)
 * is another thread all the same: its acquire is MP_EOWNERDEAD, not a
 * level of an RLock it never took. */
static void *take_and_end(void *arg)
{
    return (void *)(intptr_t)mp_lock_acquire(arg, 1, MP_FOREVER);
}

static void *take_after_end(void *arg)
{
    mp_lock *l = arg;
    int r = mp_lock_acquire(l, 1, 5);

    if (r == MP_EOWNERDEAD) {
        ASSERT_EQ(1, mp_lock_count(l));
        ASSERT_EQ(0, mp_lock_release(l));
        ASSERT_EQ(0, mp_lock_is_mine(l));
    }
    return (void *)(intptr_t)r;
}

TEST(a_robust_lock_left_by_a_thread_that_ended_counts_once)
{
    for (int kind = 0; kind < 2; kind++) {
        mp_lock *l;
        pthread_t th;
        void *res;

        ASSERT_OK(kind == 0 ? mp_lock_new_robust(&l)
                            : mp_rlock_new_robust(&l));
        ASSERT_EQ(0, pthread_create(&th, NULL, take_and_end, l));
        ASSERT_EQ(0, pthread_join(th, &res));
        ASSERT_EQ(1, (int)(intptr_t)res);
        ASSERT_EQ(MP_EOWNERDEAD, mp_lock_acquire(l, 1, 5));
        ASSERT_EQ(1, mp_lock_count(l));
        ASSERT_EQ(1, mp_lock_is_mine(l));
        ASSERT_EQ(0, mp_lock_release(l));
        ASSERT_EQ(1, mp_lock_get_value(l));
        ASSERT_EQ(0, mp_lock_is_mine(l));
        ASSERT_EQ(0, mp_lock_count(l));

        ASSERT_EQ(0, pthread_create(&th, NULL, take_and_end, l));
        ASSERT_EQ(0, pthread_join(th, &res));
        ASSERT_EQ(1, (int)(intptr_t)res);
        ASSERT_EQ(0, pthread_create(&th, NULL, take_after_end, l));
        ASSERT_EQ(0, pthread_join(th, &res));
        ASSERT_EQ(MP_EOWNERDEAD, (int)(intptr_t)res);
        ASSERT_EQ(1, mp_lock_get_value(l));
        mp_lock_free(l);
    }
}

/* The default Lock keeps CPython's behaviour: a dead holder's lock stays
 * taken, and acquire() times out. */
TEST(a_default_lock_whose_holder_died_stays_taken)
{
    mp_lock *l;
    mp_event *held;
    mp_process *p;
    double t0;

    ASSERT_OK(mp_lock_new(&l));
    ASSERT_OK(mp_event_new(&held));
    p = start_fork(&hold_and_sleep_target, MP_ARGS(l, held));
    ASSERT_EQ(1, mp_event_wait(held, 30));
    kill_and_reap(p);
    t0 = check_now();
    ASSERT_EQ(0, mp_lock_acquire(l, 1, 0.2));
    ASSERT_WITHIN(0.19, 1.0, check_now() - t0);
    ASSERT_EQ(0, mp_lock_get_value(l));
    mp_lock_free(l);
    mp_event_free(held);
}

/* A process that dies at fault point n of a robust acquire or release. */
MP_TARGET(die_at)
{
    mp_lock *l = mp_args_lock(args, 0);
    int point = (int)mp_args_int(args, 1);

    if (point <= 2)
        mp__sync_fault = point;
    if (mp_lock_acquire(l, 1, MP_FOREVER) != 1)
        return 2;
    mp__sync_fault = point;
    mp_check(mp_lock_release(l));
    return 3; /* not reached: the fault kills it */
}

TEST(a_process_killed_at_each_point_of_robust_acquire_and_release)
{
    for (int kind = 0; kind < 2; kind++) {
        for (int point = 1; point <= 4; point++) {
            mp_lock *l;
            mp_process *p;
            int code = 0, r;

            ASSERT_OK(kind == 0 ? mp_lock_new_robust(&l)
                                : mp_rlock_new_robust(&l));
            p = start_fork(&die_at_target, MP_ARGS(l, point));
            ASSERT_OK(mp_process_join(p, 30));
            ASSERT_EQ(1, mp_process_exitcode(p, &code));
            ASSERT_EQ(-SIGKILL, code);
            mp_process_free(p);
            /* Died holding it (1-3): the next acquirer gets it with
             * MP_EOWNERDEAD; after the unlock (4): free. */
            r = mp_lock_acquire(l, 1, 5);
            ASSERT_EQ(point <= 3 ? MP_EOWNERDEAD : 1, r);
            ASSERT_EQ(1, mp_lock_is_mine(l));
            ASSERT_EQ(0, mp_lock_release(l));
            ASSERT_EQ(1, mp_lock_get_value(l));
            ASSERT_EQ(1, mp_lock_acquire(l, 0, 0));
            ASSERT_EQ(0, mp_lock_release(l));
            mp_lock_free(l);
        }
    }
}

/* Barrier: a waiter killed while it waits breaks the barrier for the
 * others at once, not at their timeout (they have none here). */
MP_TARGET(barrier_wait_for_ever)
{
    mp_barrier *b = mp_args_barrier(args, 0);

    mp_check(mp_event_set(mp_args_event(args, 1)));
    return mp_barrier_wait(b, MP_FOREVER) < 0 ? 4 : 0;
}

struct bwait {
    mp_barrier *b;
    int result;
    double at;
};

static void *barrier_waiter(void *arg)
{
    struct bwait *w = arg;

    w->result = mp_barrier_wait(w->b, MP_FOREVER);
    w->at = check_now();
    return NULL;
}

TEST(a_barrier_waiter_killed_breaks_the_barrier_for_the_others)
{
    struct bwait w[2];
    pthread_t th[2];
    mp_barrier *b;
    mp_event *ready;
    mp_process *p;
    double killed, end;

    ASSERT_OK(mp_barrier_new(&b, 4, NULL, MP_FOREVER));
    ASSERT_OK(mp_event_new(&ready));
    p = start_fork(&barrier_wait_for_ever_target, MP_ARGS(b, ready));
    ASSERT_EQ(1, mp_event_wait(ready, 30));
    for (int i = 0; i < 2; i++) {
        w[i] = (struct bwait){ b, 99, 0 };
        ASSERT_EQ(0, pthread_create(&th[i], NULL, barrier_waiter, &w[i]));
    }
    end = check_now() + 30;
    while (mp_barrier_n_waiting(b) != 3) {
        ASSERT_TRUE(check_now() < end);
        usleep(1000);
    }
    killed = check_now();
    kill_and_reap(p);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_EQ(MP_EBROKENBARRIER, w[i].result);
        ASSERT_WITHIN(0, 2.0, w[i].at - killed);
    }
    ASSERT_EQ(1, mp_barrier_broken(b));
    ASSERT_EQ(0, mp_barrier_n_waiting(b));
    /* reset() makes it whole again: the dead one is not counted. */
    ASSERT_OK(mp_barrier_reset(b));
    ASSERT_EQ(0, mp_barrier_broken(b));
    mp_barrier_free(b);
    mp_event_free(ready);
}

/* Barrier: a party killed as it arrives (counted, before it sleeps), or
 * as the last one after its action and before it lets the round go,
 * breaks the round for the others, who look for the dead every 0.1 s. */
MP_TARGET(arrive_and_die)
{
    mp__sync_fault = (int)mp_args_int(args, 1);
    mp_barrier_wait(mp_args_barrier(args, 0), MP_FOREVER);
    return 3;
}

TEST(a_barrier_party_killed_arriving_or_releasing_breaks_the_round)
{
    for (int point = 7; point <= 8; point++) {
        struct bwait w[2];
        pthread_t th[2];
        mp_barrier *b;
        mp_process *p;
        int code = 0;
        double t0, end;

        ASSERT_OK(mp_barrier_new(&b, 3, NULL, MP_FOREVER));
        for (int i = 0; i < 2; i++) {
            w[i] = (struct bwait){ b, 99, 0 };
            ASSERT_EQ(0, pthread_create(&th[i], NULL, barrier_waiter, &w[i]));
        }
        end = check_now() + 30;
        while (mp_barrier_n_waiting(b) != 2) {
            ASSERT_TRUE(check_now() < end);
            usleep(1000);
        }
        t0 = check_now();
        p = start_fork(&arrive_and_die_target, MP_ARGS(b, point));
        ASSERT_OK(mp_process_join(p, 30));
        ASSERT_EQ(1, mp_process_exitcode(p, &code));
        ASSERT_EQ(-SIGKILL, code);
        mp_process_free(p);
        for (int i = 0; i < 2; i++) {
            ASSERT_EQ(0, pthread_join(th[i], NULL));
            ASSERT_EQ(MP_EBROKENBARRIER, w[i].result);
            ASSERT_WITHIN(0, 2.0, w[i].at - t0);
        }
        ASSERT_EQ(1, mp_barrier_broken(b));
        /* Whole again after reset(), the dead one not counted. */
        ASSERT_OK(mp_barrier_reset(b));
        ASSERT_EQ(0, mp_barrier_broken(b));
        ASSERT_EQ(0, mp_barrier_n_waiting(b));
        mp_barrier_free(b);
    }
}

/* Barrier: an abort() killed with the barrier broken and nobody woken
 * still wakes every sleeper: whoever takes the dead holder's lock wakes
 * them all, to look at the state it left. */
MP_TARGET(abort_and_die)
{
    mp__sync_fault = 6;
    mp_barrier_abort(mp_args_barrier(args, 0));
    return 3;
}

TEST(a_barrier_abort_killed_half_way_still_wakes_the_sleepers)
{
    struct bwait w[3];
    pthread_t th[3];
    mp_barrier *b;
    mp_process *p;
    int code = 0;
    double t0, end;

    ASSERT_OK(mp_barrier_new(&b, 4, NULL, MP_FOREVER));
    for (int i = 0; i < 3; i++) {
        w[i] = (struct bwait){ b, 99, 0 };
        ASSERT_EQ(0, pthread_create(&th[i], NULL, barrier_waiter, &w[i]));
    }
    end = check_now() + 30;
    while (mp_barrier_n_waiting(b) != 3) {
        ASSERT_TRUE(check_now() < end);
        usleep(1000);
    }
    t0 = check_now();
    p = start_fork(&abort_and_die_target, MP_ARGS(b));
    ASSERT_OK(mp_process_join(p, 30));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(-SIGKILL, code);
    mp_process_free(p);
    for (int i = 0; i < 3; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_EQ(MP_EBROKENBARRIER, w[i].result);
        ASSERT_WITHIN(0, 2.0, w[i].at - t0);
    }
    ASSERT_EQ(1, mp_barrier_broken(b));
    mp_barrier_free(b);
}

/* Barrier: a /proc that cannot say whether a party lives (no descriptor
 * left to read it, or no /proc at all) says nothing of its death: the
 * sleepers' looks (every 0.1 s) break nothing, and the round ends whole. */
static void barrier_round_unseen(void (*blind)(void), void (*restore)(void))
{
    struct bwait w[2];
    pthread_t th[2];
    mp_barrier *b;
    double end;

    ASSERT_OK(mp_barrier_new(&b, 3, NULL, MP_FOREVER));
    for (int i = 0; i < 2; i++) {
        w[i] = (struct bwait){ b, 99, 0 };
        ASSERT_EQ(0, pthread_create(&th[i], NULL, barrier_waiter, &w[i]));
    }
    end = check_now() + 30;
    while (mp_barrier_n_waiting(b) != 2) {
        ASSERT_TRUE(check_now() < end);
        usleep(1000);
    }
    blind();
    usleep(500000); /* a few looks by each sleeper: nothing to wait for */
    if (restore != NULL)
        restore();
    ASSERT_EQ(0, mp_barrier_broken(b));
    ASSERT_EQ(2, mp_barrier_wait(b, 10));
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_TRUE(w[i].result == 0 || w[i].result == 1);
    }
    mp_barrier_free(b);
}

static int fillers[4096], nfill;

static void use_every_descriptor(void)
{
    int d;

    while (nfill < 4096 && (d = fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0)
        fillers[nfill++] = d;
    ASSERT_EQ(EMFILE, errno);
}

static void give_descriptors_back(void)
{
    while (nfill > 0)
        close(fillers[--nfill]);
}

static void unmount_proc(void)
{
    ASSERT_EQ(0, umount2("/proc", MNT_DETACH));
    ASSERT_TRUE(access("/proc/self", F_OK) < 0);
}

/* Back for what reads it at exit (LeakSanitizer). */
static void mount_proc(void)
{
    ASSERT_EQ(0, mount("proc", "/proc", "proc", 0, NULL));
}

TEST(a_barrier_does_not_take_a_party_proc_cannot_see_for_dead)
{
    struct rlimit lim;

    ASSERT_EQ(0, getrlimit(RLIMIT_NOFILE, &lim));
    lim.rlim_cur = lim.rlim_cur < 1024 ? lim.rlim_cur : 1024;
    ASSERT_EQ(0, setrlimit(RLIMIT_NOFILE, &lim));
    barrier_round_unseen(use_every_descriptor, give_descriptors_back);
    /* This test's process in a mount namespace of its own, with /proc
     * unmounted there. */
    if (unshare(CLONE_NEWNS) < 0 ||
        mount("none", "/", "none", MS_REC | MS_PRIVATE, NULL) < 0)
        check_skip("no mount namespace of our own here");
    barrier_round_unseen(unmount_proc, mount_proc);
}

/* Event: a set() killed as soon as the flag is up has woken every sleeper
 * too: the flag and the wake-up are one step. */
MP_TARGET(set_and_die)
{
    mp__sync_fault = 5;
    mp_event_set(mp_args_event(args, 0));
    return 3;
}

static void *event_waiter(void *arg)
{
    struct bwait *w = arg;

    w->result = mp_event_wait((mp_event *)(void *)w->b, 60);
    w->at = check_now();
    return NULL;
}

TEST(an_event_set_killed_half_way_still_wakes_the_sleepers)
{
    struct bwait w[2];
    pthread_t th[2];
    mp_event *e;
    mp_process *p;
    int code = 0;
    double t0;

    ASSERT_OK(mp_event_new(&e));
    for (int i = 0; i < 2; i++) {
        w[i] = (struct bwait){ (mp_barrier *)(void *)e, 99, 0 };
        ASSERT_EQ(0, pthread_create(&th[i], NULL, event_waiter, &w[i]));
    }
    usleep(50000);
    t0 = check_now();
    p = start_fork(&set_and_die_target, MP_ARGS(e));
    ASSERT_OK(mp_process_join(p, 30));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(-SIGKILL, code);
    mp_process_free(p);
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(0, pthread_join(th[i], NULL));
        ASSERT_EQ(1, w[i].result);
        ASSERT_WITHIN(0, 2.0, w[i].at - t0);
    }
    ASSERT_EQ(1, mp_event_is_set(e));
    mp_event_free(e);
}

/* Event: a waiter killed asleep leaves nothing set() waits for. */
MP_TARGET(wait_event_for_ever)
{
    mp_check(mp_event_set(mp_args_event(args, 1)));
    mp_event_wait(mp_args_event(args, 0), MP_FOREVER);
    return 3;
}

TEST(an_event_waiter_killed_asleep_does_not_hang_set)
{
    mp_event *e, *ready;
    mp_process *p;
    double t0;

    ASSERT_OK(mp_event_new(&e));
    ASSERT_OK(mp_event_new(&ready));
    p = start_fork(&wait_event_for_ever_target, MP_ARGS(e, ready));
    ASSERT_EQ(1, mp_event_wait(ready, 30));
    usleep(50000); /* asleep by now, or soon */
    kill_and_reap(p);
    t0 = check_now();
    ASSERT_OK(mp_event_set(e));
    ASSERT_WITHIN(0, 2.0, check_now() - t0);
    ASSERT_EQ(1, mp_event_wait(e, 0));
    mp_event_free(e);
    mp_event_free(ready);
}

/* A page written over: every value read from it is checked. */

/* The offset of the last 32-bit word that `change` makes differ in the
 * page, found by comparing copies, so the tests need no layout (a robust
 * mutex's words before it change too: glibc's own). */
static size_t word_changed_by(unsigned char *page, size_t len,
                              void (*change)(void *), void *obj)
{
    unsigned char *before = malloc(len);
    size_t at = len;

    ASSERT_TRUE(before != NULL);
    memcpy(before, page, len);
    change(obj);
    for (size_t i = 0; i + 4 <= len; i += 4)
        if (memcmp(before + i, page + i, 4) != 0)
            at = i;
    free(before);
    ASSERT_TRUE(at < len);
    return at;
}

static void take(void *l)
{
    ASSERT_EQ(1, mp_lock_acquire(l, 0, 0));
}

static void set_event(void *e)
{
    ASSERT_OK(mp_event_set(e));
}

static void abort_barrier(void *b)
{
    ASSERT_OK(mp_barrier_abort(b));
}

TEST(a_scribbled_page_is_esynccorrupt)
{
    mp_lock *l, *r;
    mp_event *e;
    mp_barrier *b;
    unsigned char *page;
    size_t at;
    char buf[128];

    ASSERT_OK(mp_bounded_semaphore_new(&l, 3));
    page = mp__sync_page(l, MP_ARG_LOCK);
    at = word_changed_by(page, 4096, take, l);
    *(uint32_t *)(void *)(page + at) = 4; /* above the maximum */
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_lock_acquire(l, 1, 1));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_lock_release(l));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_lock_get_value(l));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_lock_repr(l, buf, sizeof(buf)));
    *(uint32_t *)(void *)(page + at) = 0xffffffffu;
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_lock_acquire(l, 1, 1));
    mp_lock_free(l);

    /* A robust lock's mutex of a kind this library does not make. */
    ASSERT_OK(mp_lock_new_robust(&r));
    page = mp__sync_page(r, MP_ARG_LOCK);
    for (size_t i = 40; i < 128; i++)
        page[i] ^= 0x5a;
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_lock_acquire(r, 1, 1));
    mp_lock_free(r);

    ASSERT_OK(mp_event_new(&e));
    page = mp__sync_page(e, MP_ARG_EVENT);
    at = word_changed_by(page, 4096, set_event, e);
    *(uint32_t *)(void *)(page + at) = 7;
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_event_is_set(e));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_event_wait(e, 0));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_event_set(e));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_event_clear(e));
    mp_event_free(e);

    ASSERT_OK(mp_barrier_new(&b, 3, NULL, MP_FOREVER));
    page = mp__sync_page(b, MP_ARG_BARRIER);
    at = word_changed_by(page, 4096, abort_barrier, b);
    *(int32_t *)(void *)(page + at) = 9;
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_barrier_n_waiting(b));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_barrier_broken(b));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_barrier_wait(b, 0));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_barrier_reset(b));
    mp_barrier_free(b);
}

/* A Barrier call that meets a scribbled page returns MP_ESYNCCORRUPT with
 * the object's lock let go: its thread lives on, and the next caller in
 * another thread gets an answer, not a wait for ever on a lock that nobody
 * will let go.  An Event has no lock: a sleeper woken to a scribbled word
 * returns MP_ESYNCCORRUPT, and so does every later call. */
struct stay {
    void *obj;
    int op; /* 0: Event wait(30); 1: Event is_set(); 2: Barrier wait(30) */
    int result;
    struct check_sleeper me;
    sem_t returned;
    int hold[2]; /* a pipe: the thread ends once it is closed */
};

static void *call_and_stay(void *arg)
{
    struct stay *t = arg;
    char c;

    check_announce(&t->me);
    t->result = t->op == 0   ? mp_event_wait(t->obj, 30)
                : t->op == 1 ? mp_event_is_set(t->obj)
                             : mp_barrier_wait(t->obj, 30);
    sem_post(&t->returned);
    while (read(t->hold[0], &c, 1) < 0)
        ;
    return NULL;
}

static void stay_start(struct stay *t, pthread_t *th, void *obj, int op)
{
    *t = (struct stay){ .obj = obj, .op = op, .result = 99 };
    check_sleeper_init(&t->me);
    ASSERT_EQ(0, sem_init(&t->returned, 0, 0));
    ASSERT_EQ(0, pipe(t->hold));
    ASSERT_EQ(0, pthread_create(th, NULL, call_and_stay, t));
}

static void stay_returned(struct stay *t)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(10 * check_slowdown());
    while (sem_timedwait(&t->returned, &ts) != 0)
        ASSERT_EQ(EINTR, errno);
}

static void stay_end(struct stay *t, pthread_t th)
{
    close(t->hold[1]);
    ASSERT_EQ(0, pthread_join(th, NULL));
    close(t->hold[0]);
    sem_destroy(&t->returned);
    check_sleeper_destroy(&t->me);
}

/* The tag of t's thread's slot, once it is inside a round: a slot is a
 * 64-bit tag (odd for a thread inside a round), then the thread's pid and
 * tid. */
static uint32_t *sleeping_slot(unsigned char *page, struct stay *t)
{
    double end = check_now() + 10 * check_slowdown();

    while (sem_wait(&t->me.ready) != 0)
        ASSERT_EQ(EINTR, errno);

    for (;;) {
        for (size_t i = 0; i + 16 <= 4096; i += 8) {
            uint64_t *tag = (uint64_t *)(void *)(page + i);
            int32_t *ids = (int32_t *)(void *)(page + i + 8);
            uint64_t v = __atomic_load_n(tag, __ATOMIC_RELAXED);
            if ((v & 1) != 0 && v > 1 &&
                __atomic_load_n(&ids[0], __ATOMIC_RELAXED) == getpid() &&
                __atomic_load_n(&ids[1], __ATOMIC_RELAXED) == t->me.tid)
                return (uint32_t *)(void *)tag;
        }
        ASSERT_TRUE(check_now() < end);
        usleep(1000);
    }
}

static void *other_call(void *arg)
{
    struct stay *t = arg;

    t->result = t->op == 1 ? mp_event_is_set(t->obj)
                           : mp_barrier_abort(t->obj);
    return NULL;
}

/* is_set() (op 1) or abort() (op 2) from a new thread: answered within
 * 5 s times CHECK_SLOWDOWN.  The answer comes back in the struct, which
 * the thread writes: MemorySanitizer cannot see pthread_timedjoin_np()
 * write a thread's return value. */
static int call_elsewhere(void *obj, int op)
{
    struct stay t = { .obj = obj, .op = op, .result = 99 };
    struct timespec ts;
    pthread_t th;

    ASSERT_EQ(0, pthread_create(&th, NULL, other_call, &t));
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(5 * check_slowdown());
    ASSERT_EQ(0, pthread_timedjoin_np(th, NULL, &ts));
    return t.result;
}

TEST(an_object_that_finds_a_scribble_lets_its_lock_go)
{
    struct stay t;
    pthread_t th;
    mp_event *e;
    mp_barrier *b;
    unsigned char *page;
    uint32_t *word;

    /* An Event's sleeper, woken by a peer that wrote over the word. */
    ASSERT_OK(mp_event_new(&e));
    page = mp__sync_page(e, MP_ARG_EVENT);
    word = (uint32_t *)(void *)(page + word_changed_by(page, 4096,
                                                       set_event, e));
    ASSERT_OK(mp_event_clear(e));
    stay_start(&t, &th, e, 0);
    check_await_asleep(&t.me);
    __atomic_store_n(word, 0xffffffffu, __ATOMIC_RELAXED);
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
    stay_returned(&t);
    ASSERT_EQ(MP_ESYNCCORRUPT, t.result);
    ASSERT_EQ(MP_ESYNCCORRUPT, call_elsewhere(e, 1));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_event_set(e));
    ASSERT_EQ(MP_ESYNCCORRUPT, mp_event_clear(e));
    stay_end(&t, th);
    mp_event_free(e);

    ASSERT_OK(mp_barrier_new(&b, 2, NULL, MP_FOREVER));
    stay_start(&t, &th, b, 2);
    __atomic_store_n(sleeping_slot(mp__sync_page(b, MP_ARG_BARRIER), &t), 7,
                     __ATOMIC_RELAXED);
    stay_returned(&t);
    ASSERT_EQ(MP_ESYNCCORRUPT, t.result);
    ASSERT_EQ(0, call_elsewhere(b, 2));
    stay_end(&t, th);
    mp_barrier_free(b);
}

/* A descriptor handed over as an object must be one: sealed, of this
 * size, with the header and cells libmp writes. */
TEST(a_handle_that_is_not_an_object_is_refused)
{
    mp_lock *l;
    mp_event *e;
    mp_conn *h;
    int fd;

    /* Not sealed. */
    fd = memfd_create("not-sync", MFD_CLOEXEC);
    ASSERT_TRUE(fd >= 0);
    ASSERT_EQ(0, ftruncate(fd, 4096));
    h = mp__conn_wrap(fd, MP__CONN_SYNC);
    ASSERT_TRUE(mp__lock_view(h) == NULL);
    ASSERT_TRUE(mp__event_view(h) == NULL);
    mp_conn_free(h);

    /* A real one, viewed as what it is and as what it is not. */
    ASSERT_OK(mp_lock_new(&l));
    ASSERT_OK(mp_event_new(&e));
    {
        mp_lock *v = mp__lock_view(mp__lock_handle(l));
        ASSERT_TRUE(v != NULL);
        ASSERT_EQ(1, mp_lock_acquire(v, 0, 0));
        ASSERT_EQ(0, mp_lock_get_value(l)); /* one lock */
        ASSERT_EQ(0, mp_lock_release(v));
        mp__lock_view_free(v);
    }
    ASSERT_TRUE(mp__event_view(mp__lock_handle(l)) == NULL);
    ASSERT_TRUE(mp__barrier_view(mp__event_handle(e)) == NULL);
    ASSERT_TRUE(mp__lock_view(mp__event_handle(e)) == NULL);
    /* A kind no lock has. */
    {
        unsigned char *page = mp__sync_page(l, MP_ARG_LOCK);
        unsigned char save[64];
        memcpy(save, page, sizeof(save));
        for (size_t i = 24; i < 40; i++)
            page[i] = 0xee;
        ASSERT_TRUE(mp__lock_view(mp__lock_handle(l)) == NULL);
        memcpy(page, save, sizeof(save));
        page[0] ^= 1; /* the magic */
        ASSERT_TRUE(mp__lock_view(mp__lock_handle(l)) == NULL);
        memcpy(page, save, sizeof(save));
    }
    mp_lock_free(l);
    mp_event_free(e);
}

/* The encoding of synchronisation objects, as a child receives it from
 * another process: every truncation and flipped bit is refused or decoded
 * within bounds, and a handle must be a synchronisation object's (a
 * Condition's lock's too). */
TEST(a_malformed_encoding_of_objects_is_refused)
{
    mp_conn *handles[MP__MAX_HANDLES];
    unsigned char use[MP__MAX_HANDLES];
    size_t nh, len;
    char *enc;
    mp_args *out;
    mp_lock *l;
    mp_cond *c;
    mp_event *e;
    mp_queue *q;

    ASSERT_OK(mp_lock_new(&l));
    ASSERT_OK(mp_cond_new(&c, l));
    ASSERT_OK(mp_event_new(&e));
    ASSERT_OK(mp_queue_new(&q, 0));
    memset(use, MP__USE_ARG, sizeof(use));
    {
        mp_arg v[] = { mp_arg_cond(c), mp_arg_lock(l), mp_arg_event(e),
                       mp_arg_queue(q) };
        ASSERT_OK(mp__args_encode(v, 4, &enc, &len, handles, &nh));
    }
    ASSERT_EQ(4, nh); /* the condition's page, its lock's, the event's, q */
    ASSERT_OK(mp__args_decode(enc, len, handles, use, nh, &out));
    {
        mp_cond *dc;
        mp_lock *dl;
        ASSERT_OK(mp_args_get_cond(out, 0, &dc));
        ASSERT_OK(mp_args_get_lock(out, 1, &dl));
        ASSERT_TRUE(mp_cond_lock(dc) == dl);
        ASSERT_EQ(1, mp_lock_acquire(dl, 0, 0));
        ASSERT_EQ(0, mp_lock_get_value(l));
        ASSERT_EQ(0, mp_lock_release(dl));
    }
    mp__args_free(out);
    for (size_t cut = 1; cut < len; cut++) {
        char *copy = malloc(cut);
        ASSERT_TRUE(copy != NULL);
        memcpy(copy, enc, cut);
        ASSERT_EQ(-EPROTO, mp__args_decode(copy, cut, handles, use, nh, &out));
        free(copy);
    }
    for (size_t at = 0; at < len; at++) {
        for (int bit = 0; bit < 8; bit++) {
            char *copy = malloc(len);
            int r;
            ASSERT_TRUE(copy != NULL);
            memcpy(copy, enc, len);
            copy[at] ^= (char)(1 << bit);
            r = mp__args_decode(copy, len, handles, use, nh, &out);
            ASSERT_TRUE(r == 0 || r == -EPROTO);
            /* What decodes maps only what it names, or refuses it. */
            for (size_t i = 0; r == 0 && i < mp_args_count(out); i++) {
                int t = mp_args_type(out, i);
                if (t == MP_ARG_LOCK || t == MP_ARG_COND)
                    (void)(t == MP_ARG_LOCK
                               ? mp_args_get_lock(out, i, NULL)
                               : mp_args_get_cond(out, i, NULL));
            }
            mp__args_free(out);
            free(copy);
        }
    }
    /* The queue's handle given where the lock's is: refused. */
    {
        mp_conn *swapped[4] = { handles[0], handles[3], handles[2],
                                handles[1] };
        ASSERT_EQ(-EPROTO,
                  mp__args_decode(enc, len, swapped, use, nh, &out));
    }
    free(enc);
    mp_lock_free(l);
    mp_cond_free(c);
    mp_event_free(e);
    mp_queue_free(q);
}
