/*
 * test_robust.c - the hardened robust mutex of libmp's shared-memory objects
 * (robust.c): a kind a peer wrote is refused, a holder's unlock survives a
 * peer's writes over the mutex however many mutexes it holds, a lock by a
 * deadline times out or takes over from a dead holder, and the
 * error-checking kind refuses its holder's relock.
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/futex.h>

#include "check.h"
#include "internal.h"
#include "robust.h"

#define NMUTEX 32 /* more than a thread's table of copies holds */

/* Mutexes in memory a fork child shares, made as a queue makes its own. */
static pthread_mutex_t *shared_mutexes(int n)
{
    pthread_mutex_t *m = mmap(NULL, (size_t)n * sizeof(*m),
                              PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    ASSERT_TRUE(m != MAP_FAILED);
    for (int i = 0; i < n; i++)
        ASSERT_EQ(0, mp__robust_init(&m[i], PTHREAD_MUTEX_DEFAULT));
    return m;
}

static void lock(pthread_mutex_t *m)
{
    ASSERT_EQ(0, mp__robust_check(m, PTHREAD_MUTEX_DEFAULT));
    ASSERT_EQ(0, mp__robust_lock_until(m, INFINITY));
    mp__robust_held(m);
}

/* Unlocked: another lock takes it at once. */
static void assert_free(pthread_mutex_t *m)
{
    ASSERT_EQ(0, pthread_mutex_trylock(m));
    ASSERT_EQ(0, pthread_mutex_unlock(m));
}

#ifdef __GLIBC__
/* Whether this thread's list of robust mutexes (which the kernel walks
 * when the thread dies, and which glibc's unlock takes a mutex out of) is
 * exactly m[i] for each i whose bit is set in `want`. */
static bool list_is(pthread_mutex_t *m, int n, uint64_t want)
{
    struct robust_list_head *head = NULL; /* MemorySanitizer does not */
    struct robust_list *at;               /* see the kernel write them */
    uint64_t seen = 0;
    size_t len = 0;

    if (syscall(SYS_get_robust_list, 0, &head, &len) < 0)
        return false;
    for (at = head->list.next; at != &head->list; at = at->next) {
        int i = 0;

        while (i < n && (void *)at != (void *)&m[i].__data.__list.__next)
            i++;
        if (i == n || (seen & (1ULL << i)))
            return false; /* not ours, or a cycle */
        seen |= 1ULL << i;
    }
    return seen == want;
}

/* What a peer may write over a held mutex: the links of the holder's
 * robust list that glibc's unlock follows (a write through them anywhere,
 * here a fault), and the owner in the lock word (the unlock would fail
 * with EPERM and leave it held). */
static void scribble(pthread_mutex_t *m)
{
    memset(&m->__data.__list, 0x41, sizeof(m->__data.__list));
    __atomic_store_n(&m->__data.__lock, 0x3fffffff, __ATOMIC_RELAXED);
}

TEST(a_kind_a_peer_wrote_is_refused)
{
    pthread_mutex_t *m = shared_mutexes(1);
    int kind = m->__data.__kind;

    ASSERT_EQ(0, mp__robust_check(m, PTHREAD_MUTEX_DEFAULT));
    m->__data.__kind = kind ^ 0x40; /* priority-protected */
    ASSERT_EQ(-EINVAL, mp__robust_check(m, PTHREAD_MUTEX_DEFAULT));
    m->__data.__kind = kind;
    ASSERT_EQ(0, mp__robust_check(m, PTHREAD_MUTEX_DEFAULT));
}

/* The error-checking kind (a robust lock's): its holder's relock is
 * EDEADLK, and each kind's check refuses the other's. */
TEST(an_error_checking_mutex_refuses_its_holders_relock)
{
    pthread_mutex_t *m = mmap(NULL, sizeof(*m), PROT_READ | PROT_WRITE,
                              MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pthread_mutex_t *d = shared_mutexes(1);

    ASSERT_TRUE(m != MAP_FAILED);
    ASSERT_EQ(0, mp__robust_init(m, PTHREAD_MUTEX_ERRORCHECK));
    ASSERT_EQ(0, mp__robust_check(m, PTHREAD_MUTEX_ERRORCHECK));
    ASSERT_EQ(-EINVAL, mp__robust_check(m, PTHREAD_MUTEX_DEFAULT));
    ASSERT_EQ(-EINVAL, mp__robust_check(d, PTHREAD_MUTEX_ERRORCHECK));
    ASSERT_EQ(0, mp__robust_lock_until(m, INFINITY));
    mp__robust_held(m);
    ASSERT_EQ(EDEADLK, mp__robust_lock_until(m, INFINITY));
    ASSERT_EQ(EDEADLK, mp__robust_lock_until(m, 0));
    mp__robust_unlock(m);
    assert_free(m);
    munmap(m, sizeof(*m));
}

TEST(held_mutexes_are_put_back_before_the_unlock)
{
    pthread_mutex_t *m = shared_mutexes(4);

    for (int i = 0; i < 4; i++)
        lock(&m[i]);
    for (int i = 0; i < 4; i++)
        scribble(&m[i]);
    for (int i = 0; i < 4; i++) /* in the order they were taken */
        mp__robust_unlock(&m[i]);
    for (int i = 0; i < 4; i++)
        assert_free(&m[i]);
}

/* Unlocked in every order three can be: each unlock takes out only its
 * own mutex, whose links glibc changed as the others came and went, even
 * when a peer wrote over them all. */
TEST(unlocks_in_any_order_keep_the_list_whole)
{
    static const int order[6][3] = { { 0, 1, 2 }, { 0, 2, 1 }, { 1, 0, 2 },
                                     { 1, 2, 0 }, { 2, 0, 1 }, { 2, 1, 0 } };
    pthread_mutex_t *m = shared_mutexes(3);

    for (int k = 0; k < 6; k++) {
        for (int scribbled = 0; scribbled < 2; scribbled++) {
            uint64_t want = 7;

            for (int i = 0; i < 3; i++)
                lock(&m[i]);
            ASSERT_TRUE(list_is(m, 3, want));
            for (int j = 0; j < 3; j++) {
                int i = order[k][j];

                if (scribbled)
                    scribble(&m[i]);
                mp__robust_unlock(&m[i]);
                want &= ~(1ULL << i);
                if (!list_is(m, 3, want))
                    check_fail(__FILE__, __LINE__, "order %d %d %d, "
                               "scribbled %d: the list after %d unlocks",
                               order[k][0], order[k][1], order[k][2],
                               scribbled, j + 1);
            }
            for (int i = 0; i < 3; i++)
                assert_free(&m[i]);
        }
    }
}

/* A robust mutex this thread took without robust.c (a program's own)
 * comes and goes in the list: links are left to glibc, and the list
 * stays whole. */
TEST(a_mutex_taken_without_it_keeps_the_list_whole)
{
    pthread_mutex_t *m = shared_mutexes(3);

    lock(&m[0]);
    ASSERT_EQ(0, pthread_mutex_lock(&m[1]));
    lock(&m[2]);
    ASSERT_EQ(0, pthread_mutex_unlock(&m[1]));
    ASSERT_TRUE(list_is(m, 3, 5));
    mp__robust_unlock(&m[0]);
    ASSERT_TRUE(list_is(m, 3, 4));
    mp__robust_unlock(&m[2]);
    ASSERT_TRUE(list_is(m, 3, 0));
    /* And with the list empty again, copies are trusted again. */
    lock(&m[0]);
    lock(&m[1]);
    scribble(&m[0]);
    scribble(&m[1]);
    mp__robust_unlock(&m[0]);
    mp__robust_unlock(&m[1]);
    ASSERT_TRUE(list_is(m, 3, 0));
}

/* More held than the table has room for: the newest unlock as glibc's
 * own, and then the first ones (the table has room for 4 at least) are
 * put back from their copies; in any order, the list stays whole. */
TEST(more_held_than_the_table_holds)
{
    pthread_mutex_t *m = shared_mutexes(NMUTEX);

    for (int i = 0; i < NMUTEX; i++)
        lock(&m[i]);
    for (int i = 0; i < 4; i++)
        scribble(&m[i]);
    for (int i = NMUTEX - 1; i >= 0; i--)
        mp__robust_unlock(&m[i]);
    for (int i = 0; i < NMUTEX; i++)
        assert_free(&m[i]);
    ASSERT_TRUE(list_is(m, NMUTEX, 0));
    /* Taken out in another order than they were taken. */
    for (int i = 0; i < NMUTEX; i++)
        lock(&m[i]);
    for (int i = 0; i < NMUTEX; i += 2)
        mp__robust_unlock(&m[i]);
    for (int i = 1; i < NMUTEX; i += 2)
        mp__robust_unlock(&m[i]);
    ASSERT_TRUE(list_is(m, NMUTEX, 0));
}

/* An unlock gives its copy's place back: holding many mutexes one after
 * the other never fills the table. */
TEST(the_table_does_not_fill_up)
{
    pthread_mutex_t *m = shared_mutexes(NMUTEX);

    /* Always in the order of the array: no cycle for ThreadSanitizer's
     * deadlock detector. */
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i + 1 < NMUTEX; i++) {
            lock(&m[i]);
            lock(&m[i + 1]);
            scribble(&m[i]);
            scribble(&m[i + 1]);
            mp__robust_unlock(&m[i]);
            mp__robust_unlock(&m[i + 1]);
        }
    }
    for (int i = 0; i < NMUTEX; i++)
        assert_free(&m[i]);
    ASSERT_TRUE(list_is(m, NMUTEX, 0));
}
#endif

/* A holder that unlocked in another order than it locked, then died,
 * still leaves the mutexes it held to the next one as EOWNERDEAD. */
TEST(a_holder_dead_after_unlocks_out_of_order)
{
    pthread_mutex_t *m = shared_mutexes(3);
    int st;
    pid_t pid;

    fflush(stdout);
    if ((pid = fork()) == 0) {
        for (int i = 0; i < 3; i++)
            lock(&m[i]);
        mp__robust_unlock(&m[0]);
        _exit(0); /* holding m[1] and m[2] */
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    ASSERT_EQ(0, st);
    assert_free(&m[0]);
    for (int i = 1; i < 3; i++) {
        ASSERT_EQ(EOWNERDEAD, mp__robust_lock_until(&m[i], mp__now() + 2));
        ASSERT_EQ(0, pthread_mutex_consistent(&m[i]));
        mp__robust_held(&m[i]);
        mp__robust_unlock(&m[i]);
    }
}

TEST(lock_until_times_out_then_takes_over_from_the_dead)
{
    pthread_mutex_t *m = shared_mutexes(1);
    int go[2], held[2], st;
    double t0;
    char c = 'x';
    pid_t pid;

    ASSERT_EQ(0, pipe(go));
    ASSERT_EQ(0, pipe(held));
    fflush(stdout);
    if ((pid = fork()) == 0) {
        lock(m);
        if (write(held[1], &c, 1) != 1 || read(go[0], &c, 1) != 1)
            _exit(1);
        _exit(0); /* holding it */
    }
    ASSERT_TRUE(pid > 0);
    ASSERT_EQ(1, read(held[0], &c, 1));
    ASSERT_EQ(ETIMEDOUT, mp__robust_lock_until(m, 0));
    t0 = mp__now();
    ASSERT_EQ(ETIMEDOUT, mp__robust_lock_until(m, t0 + 0.05));
    ASSERT_WITHIN(0.05, 1.0, mp__now() - t0);
    ASSERT_EQ(1, write(go[1], &c, 1));
    ASSERT_EQ(pid, waitpid(pid, &st, 0));
    ASSERT_EQ(EOWNERDEAD, mp__robust_lock_until(m, mp__now() + 10));
    mp__robust_held(m);
    ASSERT_EQ(0, pthread_mutex_consistent(m));
    mp__robust_held(m);
    mp__robust_unlock(m);
    assert_free(m);
}
