/*
 * robust.c - the process-shared robust mutex of libmp's shared-memory
 * objects, hardened against a peer that writes over it.
 *
 * The mutex is glibc's, in a page every process that uses the object may
 * write, and glibc trusts what it finds there: the kind chooses how to lock
 * and unlock (a priority-protected kind fails an assertion, an elided one
 * runs XEND outside a transaction: SIGABRT, SIGILL), and while the mutex is
 * held, its links in the holder's list of robust mutexes are what the
 * unlock follows to write.  So before a lock the kind is checked against
 * that of a mutex this process made alike; the holder keeps a copy of the
 * mutex as its lock left it, in its own memory, and before the unlock puts
 * every field but the lock word back, and makes the lock word name itself
 * again (the waiters bit set: a waiter may have set it meanwhile, and a
 * wake-up too many is harmless).  A peer that writes the mutex at the very
 * instant glibc reads it is beyond what a check can catch.  Other C
 * libraries lay the mutex out otherwise, and get none of this.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/futex.h>

#include "internal.h"
#include "robust.h"

#if defined(__SANITIZE_THREAD__)
#define ROBUST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ROBUST_TSAN 1
#endif
#endif
#ifndef ROBUST_TSAN
#define ROBUST_TSAN 0
#endif

int mp__robust_init(pthread_mutex_t *m, int type)
{
    pthread_mutexattr_t a;
    int r;

    if ((r = pthread_mutexattr_init(&a)) != 0)
        return -r;
    r = pthread_mutexattr_setpshared(&a, PTHREAD_PROCESS_SHARED);
    if (r == 0)
        r = pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
    if (r == 0 && type != PTHREAD_MUTEX_DEFAULT)
        r = pthread_mutexattr_settype(&a, type);
    if (r == 0)
        r = pthread_mutex_init(m, &a);
    pthread_mutexattr_destroy(&a);
    return -r;
}

#ifdef __GLIBC__
/*
 * The links.  While a thread holds a robust mutex, glibc keeps the mutex in
 * the thread's list of robust mutexes (the kernel walks it when the thread
 * dies) through links stored in the mutex: the newest first, each one's
 * next naming the one locked before it, the last one naming the list's
 * head, which lives in the thread.  Its unlock takes the mutex out through
 * those links, writing to where they point.  A lock or unlock of another
 * mutex of the same thread changes them lawfully (the newest's neighbours),
 * so the copy cannot simply be put back: a thread that unlocks in another
 * order than it locked would put back links that name a mutex no longer
 * there, and cut the list (a mutex its death then leaves locked for good).
 * So the copies' links follow the thread's own changes, and are put back
 * only while they are known to be the list as glibc keeps it: the chain of
 * copies, from the head (in the thread's memory, where no peer writes),
 * names every held copy once and ends at the head.  A robust mutex the
 * thread holds without a copy (one beyond the table, or one taken without
 * this file) breaks the chain: links are then left as found (the other
 * fields are still put back) while it is held, and, once one such is
 * unlocked out of order, until the thread holds no robust mutex at all.
 */
#define HELD_MAX 8 /* a queue's two sides, and a few nested locks */

static pthread_once_t kind_once = PTHREAD_ONCE_INIT;
/* The kinds mp__robust_init() makes: [0] the default type's, [1] the
 * error-checking one's. */
static int good_kind[2] = { -1, -1 };

struct held_copy {
    pthread_mutex_t *m; /* NULL: free */
    pthread_mutex_t copy;
};

static _Thread_local struct {
    struct held_copy h[HELD_MAX];
    struct robust_list_head *head; /* this thread's; NULL: not known */
    bool asked;                    /* whether head was asked for */
    bool lost;                     /* the copies' links may be stale */
} held;

static void kind_init(void)
{
    static const int types[2] = { PTHREAD_MUTEX_DEFAULT,
                                  PTHREAD_MUTEX_ERRORCHECK };
    pthread_mutex_t m;

    for (int i = 0; i < 2; i++) {
        /* Zeroed first: the C library's initialisation is not
         * instrumented, and MemorySanitizer would take the kind it wrote
         * for uninitialised. */
        memset(&m, 0, sizeof(m));
        if (mp__robust_init(&m, types[i]) == 0) {
            good_kind[i] = m.__data.__kind;
            pthread_mutex_destroy(&m);
        }
    }
}

/* A fork child holds none of its parent's mutexes (glibc empties the
 * list). */
void mp__robust_forked(void)
{
    memset(&held, 0, sizeof(held));
}

int mp__robust_check(pthread_mutex_t *m, int type)
{
    pthread_once(&kind_once, kind_init);
    return __atomic_load_n(&m->__data.__kind, __ATOMIC_RELAXED) ==
                   good_kind[type == PTHREAD_MUTEX_ERRORCHECK]
               ? 0 : -EINVAL;
}

/* Where the list links a mutex: the address its neighbours' links hold. */
static uintptr_t entry_of(const pthread_mutex_t *m)
{
    return (uintptr_t)&m->__data.__list.__next;
}

static uintptr_t link_of(const void *p)
{
    return (uintptr_t)p & ~(uintptr_t)1; /* bit 0 marks a PI mutex */
}

static struct held_copy *held_find(const pthread_mutex_t *m)
{
    for (int i = 0; i < HELD_MAX; i++)
        if (held.h[i].m == m)
            return &held.h[i];
    return NULL;
}

static struct held_copy *held_at(uintptr_t entry)
{
    for (int i = 0; i < HELD_MAX; i++)
        if (held.h[i].m != NULL && entry_of(held.h[i].m) == entry)
            return &held.h[i];
    return NULL;
}

/* Whether the thread holds no robust mutex (false when unknown). */
static bool list_empty(void)
{
    return held.head != NULL &&
           link_of(held.head->list.next) == (uintptr_t)&held.head->list;
}

void mp__robust_held(pthread_mutex_t *m)
{
    /* Its own entry first: a lock after EOWNERDEAD comes here twice. */
    struct held_copy *h = held_find(m);

    if (!held.asked) {
        size_t len;
        if (syscall(SYS_get_robust_list, 0, &held.head, &len) < 0)
            held.head = NULL;
        held.asked = true;
    }
    /* None free: this one's links are left to glibc; the copies' chain
     * does not reach it, so links are left as found while it is held. */
    if (h == NULL && (h = held_find(NULL)) == NULL)
        return;
    h->m = m;
    memcpy(&h->copy, m, sizeof(*m));
}

/*
 * With h held: whether the copies' links are the list as glibc keeps it
 * (see above); then *prev is the link h's mutex must have to the newer one
 * (or the head), and *before that one's copy (NULL: the head).
 */
static bool links_known(const struct held_copy *h, uintptr_t *prev,
                        struct held_copy **before)
{
    uintptr_t head, at;
    int n = 0, steps = 0;

    if (held.lost || held.head == NULL)
        return false;
    for (int i = 0; i < HELD_MAX; i++)
        n += held.h[i].m != NULL;
    head = (uintptr_t)&held.head->list;
    *prev = head;
    *before = NULL;
    for (at = link_of(held.head->list.next); at != head; steps++) {
        struct held_copy *c = held_at(at);

        if (c == NULL || steps == n)
            return false; /* a mutex of another's, or a cycle */
        if (link_of(c->copy.__data.__list.__next) == entry_of(h->m)) {
            *prev = at;
            *before = c;
        }
        at = link_of(c->copy.__data.__list.__next);
    }
    /* Every copy once (one seen twice would have made a cycle), h too. */
    return steps == n;
}

void mp__robust_unlock(pthread_mutex_t *m)
{
    struct held_copy *h = held_find(m), *before = NULL;
    unsigned char *p = (unsigned char *)m, *c;
    size_t lk = offsetof(pthread_mutex_t, __data.__lock);
    size_t rest = lk + sizeof(m->__data.__lock);
    size_t ls = offsetof(pthread_mutex_t, __data.__list);
    int *w = &m->__data.__lock;
    uintptr_t prev;

    if (h == NULL) {
        /* Not the newest: glibc links the newer one to the older one, and
         * a copy may be that newer one. */
        if (held.head == NULL || link_of(held.head->list.next) != entry_of(m))
            held.lost = true;
        pthread_mutex_unlock(m);
        goto out;
    }
    c = (unsigned char *)&h->copy;
    if (links_known(h, &prev, &before)) {
#if __PTHREAD_MUTEX_HAVE_PREV
        h->copy.__data.__list.__prev = (void *)prev;
#else
        (void)prev;
#endif
    } else { /* left as found, from now until the list is empty */
        memcpy(c + ls, p + ls, sizeof(m->__data.__list));
        held.lost = true;
        before = NULL;
    }
    /* Written only where it differs: nothing, unless a peer wrote. */
    if (memcmp(p, c, lk) != 0)
        memcpy(p, c, lk);
    if (memcmp(p + rest, c + rest, sizeof(*m) - rest) != 0)
        memcpy(p + rest, c + rest, sizeof(*m) - rest);
    if ((__atomic_load_n(w, __ATOMIC_RELAXED) & FUTEX_TID_MASK) !=
        (h->copy.__data.__lock & FUTEX_TID_MASK))
        __atomic_store_n(w, (h->copy.__data.__lock & FUTEX_TID_MASK) |
                                (int)FUTEX_WAITERS, __ATOMIC_RELAXED);
    pthread_mutex_unlock(m);
    /* glibc has linked the newer one to the older one. */
    if (before != NULL)
        before->copy.__data.__list.__next = h->copy.__data.__list.__next;
    h->m = NULL;
out:
    if (list_empty()) { /* nothing held: no copy is left, none is stale */
        memset(held.h, 0, sizeof(held.h));
        held.lost = false;
    }
}
#else
int mp__robust_check(pthread_mutex_t *m, int type)
{
    (void)m;
    (void)type;
    return 0;
}

void mp__robust_held(pthread_mutex_t *m)
{
    (void)m;
}

void mp__robust_unlock(pthread_mutex_t *m)
{
    pthread_mutex_unlock(m);
}
#endif

int mp__robust_lock_until(pthread_mutex_t *m, double deadline)
{
    struct timespec ts;

    if (isinf(deadline))
        return pthread_mutex_lock(m);
    if (!(deadline > 0)) {
        int r = pthread_mutex_trylock(m);
        return r == EBUSY ? ETIMEDOUT : r;
    }
#if ROBUST_TSAN
    /* ThreadSanitizer does not intercept pthread_mutex_clocklock(): it
     * would take the lock for unlocked and report its unlock.  Its build
     * uses the CLOCK_REALTIME call instead (a clock step moves the
     * deadline). */
    {
        struct timespec rt;
        double left = deadline - mp__now();
        clock_gettime(CLOCK_REALTIME, &rt);
        deadline = (double)rt.tv_sec + rt.tv_nsec / 1e9 + (left > 0 ? left : 0);
    }
#endif
    ts.tv_sec = (time_t)deadline;
    ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
#if ROBUST_TSAN
    return pthread_mutex_timedlock(m, &ts);
#else
    return pthread_mutex_clocklock(m, CLOCK_MONOTONIC, &ts);
#endif
}
