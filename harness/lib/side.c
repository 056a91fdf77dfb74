/*
 * side.c - a queue's side: a robust mutex with a bias (side.h).
 *
 * A side is held through its robust mutex, or through its bias.  Taking the
 * mutex STREAK times in a row, uncontended, from one thread gives that
 * thread the bias: a slot of the side is the thread's, and side.owner names
 * the slot.  From then on the thread enters with
 *
 *     slot.busy = 1; (compiler barrier) if owner still names my slot: inside
 *
 * and leaves with slot.busy = 0: plain stores and loads.  Anyone else takes
 * the mutex, then revokes: owner = 0, membarrier(GLOBAL_EXPEDITED), then
 * waits for that slot's busy to be 0.  The membarrier runs a full barrier on
 * the owner's CPU at some point P of its program: if its busy = 1 came
 * before P, the revoker sees it; if after, its look at owner (later still)
 * sees 0, and it backs out to the mutex.  So the owner never pays for the
 * store-load fence that every lock needs; the revoker pays, once.
 *
 * A slot is a thread's for as long as it lives, because a thread that read
 * owner, was preempted, and comes back after the bias has gone elsewhere
 * still stores busy = 1 (then backs out): into its own slot, where it
 * cannot hide the current owner's.  An owner killed inside leaves busy at
 * 1: after OWNER_CHECK without progress the revoker asks whether that thread
 * still lives (live.h), and if not has the user repair what it left, as for
 * a mutex whose holder died.  A side remembers MP__SIDE_SLOTS threads; the
 * slots of dead threads are taken again, and when all are live no more
 * biases are given (the mutex still works).
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <linux/membarrier.h>

#include "futex.h"
#include "internal.h"
#include "live.h"
#include "robust.h"
#include "side.h"

#define STREAK 64         /* uncontended takes in a row that earn a bias */
#define SPIN 512          /* pauses a revoker spins before it sleeps */
#define OWNER_CHECK 0.002 /* seconds a revoker waits before it asks whether
                             the biased owner is alive */
#define CHECK_MAX 0.1     /* the longest it waits between two asks (a
                             queue's waiter looks for the dead as often) */

/*
 * This process and thread.  A thread's token names it as a side's biased
 * owner: random, so that no other thread (of any process, or later) can
 * take it for its own.  A fork child starts again: its only thread gets a
 * token of its own, and it registers for membarrier(2) anew.
 */
_Thread_local uint64_t mp__side_token;
atomic_int mp__membarrier_state;
/* A fork child's thread gets a token of its own, and registers anew. */
void mp__side_forked(void)
{
    mp__side_token = 0;
    atomic_store(&mp__membarrier_state, 0);
}

void mp__membarrier_setup(void)
{
    long cmds;
    int mb = -1;

    cmds = mp__membarrier(MEMBARRIER_CMD_QUERY);
    if (cmds > 0 && (cmds & MEMBARRIER_CMD_GLOBAL_EXPEDITED) &&
        mp__membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0)
        mb = 1;
    atomic_store(&mp__membarrier_state, mb);
}

/* The thread's token, made on first need.  Its identity (/proc: six
 * system calls) is read later, when a slot is claimed or a slot's thread
 * is asked about: a thread that only ever takes a side a few times, as a
 * pool's worker that takes one task does, never needs it. */
static uint64_t thread_token(void)
{
    if (mp__side_token == 0) {
        uint64_t t = 0;
        if (getrandom(&t, sizeof(t), GRND_NONBLOCK) != (ssize_t)sizeof(t))
            t = (uint64_t)(mp__now() * 1e9) * 0x9e3779b97f4a7c15ULL ^
                (uint64_t)(uintptr_t)&t ^
                (uint64_t)syscall(SYS_gettid) << 32;
        mp__side_token = t | 1;
    }
    return mp__side_token;
}

/* Whether the slot's thread is surely dead (mp__thread_dead()), or is
 * this thread's ids with another token: a thread before this one's
 * execve(), or a peer's scribble; no one's, so dead.  The ids are read
 * once: what is checked is what is looked up. */
static bool slot_dead(const struct mp__side_slot *sl)
{
    struct mp__thread_id id = mp__thread_id_read(&sl->id), me;

    if (mp__thread_self(&me) && id.pid == me.pid && id.tid == me.tid &&
        id.ns == me.ns && id.tns == me.tns)
        return atomic_load(&sl->token) != thread_token();
    return mp__thread_dead(&id);
}

#ifdef MP_TEST_HOOKS
void (*mp__queue_locked_hook)(void);
static atomic_ulong revokes;

/* Tests: revocations this process made. */
unsigned long mp__queue_revoke_count(void)
{
    return atomic_load(&revokes);
}
#define COUNT_REVOKE() atomic_fetch_add_explicit(&revokes, 1, \
                                                 memory_order_relaxed)
#else
#define COUNT_REVOKE() ((void)0)
#endif

/* With the mutex held: takes the bias back from slot o - 1 (see above). */
static int bias_revoke(struct mp__side *sd, uint32_t o, double deadline,
                       mp__side_repair_fn *repair, void *ctx)
{
    struct mp__side_slot *sl = &sd->slot[o - 1];
    uint32_t busy;

    COUNT_REVOKE();
    atomic_store(&sd->owner, 0);
    if (mp__side_token != 0 && atomic_load(&sl->token) == mp__side_token) {
        /* This thread's own slot: it is not inside (it is here), so a
         * raised busy is a scribble, which it would wait for forever. */
        atomic_store(&sl->busy, 0);
        return 0;
    }
    for (int tries = 0;
         mp__membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED) < 0; tries++) {
        /* ENOMEM and EINTR pass: try again.  Only a process that could
         * register gets a bias; one that cannot run membarrier() at all (a
         * seccomp filter) waits a millisecond for the owner's store buffer
         * to drain: a heuristic (store buffers drain in nanoseconds), not a
         * guarantee. */
        struct timespec ms = { 0, 1000000 };
        if ((errno == ENOMEM || errno == EINTR) && tries < 1000) {
            sched_yield();
            continue;
        }
        nanosleep(&ms, NULL);
        break;
    }
    /* A live owner wakes us when it leaves; a dead one is looked for after
     * OWNER_CHECK, then less and less often (a stopped owner may be back).
     * The caller's deadline bounds the wait: a live owner may stay inside
     * for long (a big copy, a stopped process). */
    double check = OWNER_CHECK, next_check = 0;
    for (int i = 0;
         (busy = atomic_load_explicit(&sl->busy, memory_order_acquire)) != 0;) {
        double now;

        if (i < SPIN) {
            i++;
            mp__cpu_relax();
            continue;
        }
        now = mp__now();
        if (now >= deadline) { /* one last look: a dead owner is no wait */
            if (!slot_dead(sl))
                return -ETIMEDOUT;
            repair(ctx);
            atomic_store(&sl->busy, 0);
            break;
        }
        if (next_check == 0) {
            next_check = now + check;
        } else if (now >= next_check) { /* by the clock: signals that cut
                                           the sleeps short do not delay it */
            if (slot_dead(sl)) {
                repair(ctx); /* killed inside */
                atomic_store(&sl->busy, 0);
                break;
            }
            check = check * 2 < CHECK_MAX ? check * 2 : CHECK_MAX;
            next_check = now + check;
        }
        /* The value seen, not 1: a busy a peer set to anything else would
         * make the wait return at once, a spin until the deadline. */
        mp__futex_wait(&sl->busy, busy, next_check < deadline ? next_check
                                                           : deadline);
    }
    return 0;
}

/* What a holder of the mutex may leave owed to the next one. */
enum {
    PENDING_REVOKE = 1, /* wait for the last biased owner to leave */
    PENDING_REPAIR = 2, /* then repair what a dead holder left */
};

/*
 * After the side's mutex was taken (r: what pthread_mutex_*lock() said):
 * revokes a bias, and repairs what a dead holder left.  A holder that died
 * in the middle of a revocation may have cleared owner before the owner had
 * left: so after a death, the last bias is revoked again in full, before the
 * repair.  A live owner that stays inside past the deadline keeps the side:
 * the revocation and the repair are then owed to the next holder (pending),
 * and the mutex is given back: ETIMEDOUT.
 */
static int take_over(struct mp__side *sd, int r, double deadline,
                     mp__side_repair_fn *repair, void *ctx)
{
    uint32_t o;

    if (r == EOWNERDEAD) {
        if ((r = pthread_mutex_consistent(&sd->m)) != 0) {
            mp__robust_unlock(&sd->m);
            return r;
        }
        mp__robust_held(&sd->m); /* its owner changed */
        sd->pending |= PENDING_REVOKE | PENDING_REPAIR;
    }
    if (r != 0)
        return r;
    o = mp__side_slot_index(
        atomic_load_explicit(&sd->owner, memory_order_relaxed));
    if (o == 0 && (sd->pending & PENDING_REVOKE))
        o = mp__side_slot_index(sd->last);
    if (o != 0) { /* first: an owner may still be inside */
        if (bias_revoke(sd, o, deadline, repair, ctx) < 0) {
            sd->pending |= PENDING_REVOKE;
            mp__robust_unlock(&sd->m);
            return ETIMEDOUT;
        }
    }
    sd->pending &= ~(uint32_t)PENDING_REVOKE;
    if (sd->pending & PENDING_REPAIR) {
        repair(ctx);
        sd->pending = 0;
    }
    return 0;
}

int mp__side_init(struct mp__side *sd)
{
    return mp__robust_init(&sd->m, PTHREAD_MUTEX_DEFAULT);
}

int mp__side_lock(struct mp__side *sd, double deadline, bool bias,
                  mp__side_repair_fn *repair, void *ctx)
{
    bool contended;
    int r;

    if (mp__robust_check(&sd->m, PTHREAD_MUTEX_DEFAULT) < 0)
        return MP_EQCORRUPT;
    r = pthread_mutex_trylock(&sd->m);
    contended = r == EBUSY;
    if (deadline < 0) /* -t: t seconds from now, looked up only here */
        deadline = mp__now() - deadline;
    if (contended)
        r = mp__robust_lock_until(&sd->m, deadline);
    if (r == ETIMEDOUT)
        return -ETIMEDOUT;
    if (r != 0 && r != EOWNERDEAD) /* as made, it gives no other error */
        return MP_EQCORRUPT;
    mp__robust_held(&sd->m);
    if ((r = take_over(sd, r, deadline, repair, ctx)) != 0)
        return r == ETIMEDOUT ? -r : MP_EQCORRUPT;
#ifdef MP_TEST_HOOKS
    if (mp__queue_locked_hook != NULL)
        mp__queue_locked_hook();
#endif
    if (!contended && bias && mp__membarrier_ok()) {
        uint64_t me = thread_token();
        sd->streak = sd->streak_token == me ? sd->streak + 1 : 1;
        sd->streak_token = me;
    } else {
        sd->streak = 0;
    }
    return MP__SIDE_MUTEX;
}

/* With the mutex held: the slot this thread may own the side from (its
 * own, a free one, or a dead thread's), + 1; 0: none. */
static uint32_t claim_slot(struct mp__side *sd)
{
    struct mp__thread_id me;
    int free_slot = -1;

    if (!mp__thread_self(&me))
        return 0; /* it could not be told dead */
    for (int i = 0; i < MP__SIDE_SLOTS; i++) {
        uint64_t t = atomic_load(&sd->slot[i].token);
        if (t == mp__side_token)
            return (uint32_t)i + 1;
        if (free_slot < 0 && (t == 0 || slot_dead(&sd->slot[i])))
            free_slot = i;
    }
    if (free_slot < 0)
        return 0;
    struct mp__side_slot *sl = &sd->slot[free_slot];
    sl->id = me;
    atomic_store(&sl->busy, 0); /* a dead thread may have left it raised */
    atomic_store(&sl->token, mp__side_token);
    return (uint32_t)free_slot + 1;
}

void mp__side_unlock_mutex(struct mp__side *sd)
{
    uint32_t o;

    if (sd->streak >= STREAK && sd->streak_token == mp__side_token) {
        sd->streak = 0; /* no slot: not again before another streak */
        if ((o = claim_slot(sd)) != 0) {
            sd->last = o;
            atomic_store_explicit(&sd->owner, o, memory_order_release);
        }
    }
    mp__robust_unlock(&sd->m);
}

void mp__side_repair_dead(struct mp__side *sd, double deadline,
                          mp__side_repair_fn *repair, void *ctx)
{
    int r = mp__robust_check(&sd->m, PTHREAD_MUTEX_DEFAULT) < 0
                ? EINVAL
                : pthread_mutex_trylock(&sd->m);
    uint32_t o;

    if (r == 0 || r == EOWNERDEAD)
        mp__robust_held(&sd->m);
    if (r == EOWNERDEAD || (r == 0 && sd->pending != 0)) {
        /* A death, or a revocation or repair a holder left owed: a live
         * owner still inside keeps it owed. */
        r = take_over(sd, r, 0, repair, ctx);
    } else if (r == 0 &&
               (o = mp__side_slot_index(atomic_load(&sd->owner))) != 0 &&
               atomic_load(&sd->slot[o - 1].busy) &&
               slot_dead(&sd->slot[o - 1])) {
        /* It is dead; but a peer may change the slot meanwhile, so the
         * waiter's deadline still bounds the wait. */
        (void)bias_revoke(sd, o, deadline, repair, ctx);
    }
    if (r == 0)
        mp__robust_unlock(&sd->m);
}
