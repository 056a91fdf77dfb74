/*
 * test_value_death.c - a value whose lock is robust (mp_rlock_new_robust())
 * outlives a writer SIGKILLed in the middle of an update: the next acquire,
 * or the next one-call access, gets the lock and MP_EOWNERDEAD, sees what
 * the dead writer left half-written, and the value goes on working.  With
 * the default RLock, CPython's and libmp's alike, the next access would
 * wait for ever.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"

static const char *const methods[] = { "fork", "spawn", "forkserver" };

static mp_process *start(const char *method, const mp_target *t,
                         const mp_arg *v, size_t n)
{
    mp_process_options o = { 0 };
    mp_process *p;

    ASSERT_OK(mp_get_context(&o.context, method));
    ASSERT_OK(mp_process_create(&p, t, v, n, &o));
    ASSERT_OK(mp_process_start(p));
    return p;
}

static void kill_and_reap(mp_process *p)
{
    int code = 0;

    ASSERT_OK(mp_process_kill(p));
    ASSERT_OK(mp_process_join(p, 60));
    ASSERT_EQ(1, mp_process_exitcode(p, &code));
    ASSERT_EQ(-SIGKILL, code);
    mp_process_free(p);
}

/* An update of both elements to 1, cut after the first: the writer says
 * so, then waits to be killed, the lock held. */
MP_TARGET(half_update)
{
    mp_value *a = mp_args_value(args, 0);

    if (mp_value_acquire(a, 1, MP_FOREVER) != 1)
        return 2;
    mp_value_i32(a)[0] = 1;
    mp_check(mp_event_set(mp_args_event(args, 1)));
    for (;;)
        pause();
}

TEST(a_writer_killed_mid_update_hands_the_value_over_with_eownerdead)
{
    for (int m = 0; m < 3; m++) {
        mp_value *a;
        mp_lock *l;
        mp_event *held;
        mp_process *p;
        long long x;

        ASSERT_OK(mp_rlock_new_robust(&l));
        ASSERT_OK(mp_array_new(&a, 'i', 2, &(mp_value_options){ .lock = l }));
        mp_lock_free(l);
        ASSERT_OK(mp_event_new(&held));
        p = start(methods[m], &half_update_target, MP_ARGS(a, held));
        ASSERT_EQ(1, mp_event_wait(held, 30));
        kill_and_reap(p);
        ASSERT_EQ(MP_EOWNERDEAD, mp_value_acquire(a, 1, 30));
        /* What the dead writer left: half the update, to repair. */
        ASSERT_EQ(1, mp_value_i32(a)[0]);
        ASSERT_EQ(0, mp_value_i32(a)[1]);
        mp_value_i32(a)[1] = 1;
        ASSERT_EQ(0, mp_value_release(a));
        /* And the value works as before. */
        ASSERT_EQ(0, mp_array_get_int(a, 1, &x));
        ASSERT_EQ(1, x);
        ASSERT_EQ(1, mp_value_acquire(a, 0, 0));
        ASSERT_EQ(0, mp_value_release(a));
        ASSERT_OK(mp_array_set(a, 0, MP_ARG(5)));
        mp_value_free(a);
        mp_event_free(held);
    }
}

/* Holds the value's lock until killed. */
MP_TARGET(hold_value)
{
    mp_value *v = mp_args_value(args, 0);

    if (mp_value_acquire(v, 1, MP_FOREVER) != 1)
        return 2;
    mp_check(mp_event_set(mp_args_event(args, 1)));
    for (;;)
        pause();
}

struct reader {
    mp_value *v;
    struct check_sleeper me;
    long long x;
    int r;
};

static void *read_value(void *arg)
{
    struct reader *rd = arg;

    check_announce(&rd->me);
    rd->r = mp_value_get_int(rd->v, &rd->x);
    return NULL;
}

/* A one-call access asleep on the lock when its holder dies is woken by
 * the kernel, reads the value and says MP_EOWNERDEAD; the next is plain. */
TEST(a_one_call_access_waiting_on_a_dead_holder_gets_eownerdead)
{
    mp_value *v;
    mp_lock *l;
    mp_event *held;
    mp_process *p;
    struct reader rd = { 0 };
    pthread_t th;
    double t0;
    long long x;

    ASSERT_OK(mp_lock_new_robust(&l));
    ASSERT_OK(mp_value_new(&v, 'q', MP_ARG(42), &(mp_value_options){
                                                    .lock = l }));
    mp_lock_free(l);
    ASSERT_OK(mp_event_new(&held));
    p = start("fork", &hold_value_target, MP_ARGS(v, held));
    ASSERT_EQ(1, mp_event_wait(held, 30));
    rd.v = v;
    check_sleeper_init(&rd.me);
    ASSERT_EQ(0, pthread_create(&th, NULL, read_value, &rd));
    check_await_asleep(&rd.me);
    t0 = check_now();
    kill_and_reap(p);
    ASSERT_EQ(0, pthread_join(th, NULL));
    ASSERT_EQ(MP_EOWNERDEAD, rd.r);
    ASSERT_EQ(42, rd.x);
    ASSERT_WITHIN(0, 2.0, check_now() - t0);
    ASSERT_EQ(0, mp_value_get_int(v, &x));
    ASSERT_EQ(42, x);
    ASSERT_EQ(0, mp_value_set(v, MP_ARG(43)));
    mp_value_free(v);
    mp_event_free(held);
    check_sleeper_destroy(&rd.me);
}
